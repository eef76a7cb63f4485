//! The cases: one `pub async fn` per behaviour every store must show.
//!
//! Each takes a [`StoreFactory`] and panics, with a message saying what broke, when the
//! store misbehaves. [`conformance_tests!`](crate::conformance_tests) turns them into
//! named tests.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::{
    CheckpointStore, Envelope, Error, Expected, Metadata, NewEvent, Position, Publish, PublishExt,
    ReadExt, Replay, ReplayOne, Root, Snapshot, SnapshotStore, Subscribe, Timestamp, Truncate,
    Version,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::StoreFactory;
use crate::fixtures::*;

const THING: &str = "Thing";
const OTHER: &str = "Other";

async fn replay_thing<S: ReplayOne>(store: &S, id: Uuid, after: u64) -> Vec<Envelope> {
    collect("replay_one", store.replay_one(THING, id, Version(after))).await
}

#[track_caller]
fn assert_conflict(result: Result<esrc_core::Appended, Error>, expected: Expected, actual: u64) {
    match result {
        Err(Error::Conflict {
            expected: e,
            actual: a,
            ..
        }) => {
            assert_eq!(
                e, expected,
                "the conflict must carry the writer's expectation"
            );
            assert_eq!(
                a,
                Version(actual),
                "the conflict must carry the stream's actual version"
            );
        }
        other => panic!("expected a conflict ({expected}, actual {actual}), got {other:?}"),
    }
}

/// Appending to a new stream stores the events at versions 1.. and returns the last.
pub async fn append_to_new_stream<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let appended = store
        .publish(THING, id, Expected::NoStream, vec![counted(1)])
        .await
        .expect("append to a new stream");
    assert_eq!(appended.version, Version(1));
    assert!(
        appended.position > Position::ZERO,
        "positions start above zero"
    );
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(versions(&events), [1]);
    assert_eq!(events[0].position, appended.position);
    assert_eq!(events[0].category, THING);
    assert_eq!(events[0].aggregate_id, id);
}

/// `NoStream` on a stream that has events is a conflict.
pub async fn no_stream_conflicts_on_existing_stream<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    let again = store
        .publish(THING, id, Expected::NoStream, vec![counted(2)])
        .await;
    assert_conflict(again, Expected::NoStream, 1);
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [1]);
}

/// `Exact` with a stale version conflicts, naming expected and actual; the right one works.
pub async fn exact_with_stale_version_conflicts<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 3))
        .await
        .unwrap();
    let stale = store
        .publish(THING, id, Expected::Exact(Version(2)), vec![counted(9)])
        .await;
    assert_conflict(stale, Expected::Exact(Version(2)), 3);
    let ahead = store
        .publish(THING, id, Expected::Exact(Version(4)), vec![counted(9)])
        .await;
    assert_conflict(ahead, Expected::Exact(Version(4)), 3);
    let fresh = Uuid::now_v7();
    let missing = store
        .publish(THING, fresh, Expected::Exact(Version(1)), vec![counted(9)])
        .await;
    assert_conflict(missing, Expected::Exact(Version(1)), 0);
    let ok = store
        .publish(THING, id, Expected::Exact(Version(3)), vec![counted(4)])
        .await
        .expect("the current version appends");
    assert_eq!(ok.version, Version(4));
    let created = store
        .publish(
            THING,
            fresh,
            Expected::Exact(Version::ZERO),
            vec![counted(1)],
        )
        .await
        .expect("Exact(0) is NoStream");
    assert_eq!(created.version, Version(1));
}

/// `Any` appends whatever the stream's version.
pub async fn any_always_appends<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    for expected_version in 1..=3 {
        let appended = store
            .publish(THING, id, Expected::Any, vec![counted(expected_version)])
            .await
            .expect("Any appends");
        assert_eq!(appended.version, Version(u64::from(expected_version)));
    }
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [1, 2, 3]);
}

/// An append with no events is refused.
pub async fn empty_batch_is_rejected<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let result = store.publish(THING, id, Expected::Any, Vec::new()).await;
    assert!(matches!(result, Err(Error::EmptyBatch)), "got {result:?}");
    assert!(replay_thing(&store, id, 0).await.is_empty());
}

/// Several events in one call get contiguous versions and increasing positions.
pub async fn batch_gets_contiguous_versions<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 2))
        .await
        .unwrap();
    let appended = store
        .publish(THING, id, Expected::Exact(Version(2)), counted_batch(3, 5))
        .await
        .unwrap();
    assert_eq!(appended.version, Version(7));
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(versions(&events), [1, 2, 3, 4, 5, 6, 7]);
    assert_increasing("replay_one", &events);
    assert_eq!(events[6].position, appended.position);
    let amounts: Vec<ThingEvent> = events.iter().map(|e| e.deserialize().unwrap()).collect();
    let expected: Vec<ThingEvent> = (1..=7)
        .map(|amount| ThingEvent::Counted { amount })
        .collect();
    assert_eq!(amounts, expected, "events keep their order within a batch");
}

/// A batch that conflicts stores none of its events.
pub async fn conflicting_batch_stores_nothing<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 2))
        .await
        .unwrap();
    let batch = counted_batch(10, 4);
    let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
    let result = store
        .publish(THING, id, Expected::Exact(Version(1)), batch)
        .await;
    assert_conflict(result, Expected::Exact(Version(1)), 2);
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(
        versions(&events),
        [1, 2],
        "no event of a conflicting batch is stored"
    );
    assert!(events.iter().all(|e| !ids.contains(&e.event_id)));
    let all = collect("replay", store.replay(&[THING], Position::ZERO)).await;
    assert_eq!(
        all.len(),
        2,
        "the group replay holds no event of the conflicting batch"
    );
}

/// N writers racing with the same expectation: exactly one wins, the others conflict, and
/// the stream holds the winner's batch whole, once.
pub async fn concurrent_writers_exactly_one_wins<F: StoreFactory>(factory: &F) {
    const WRITERS: usize = 10;
    const ROUNDS: u32 = 5;
    let store = Arc::new(factory.store().await);
    let id = Uuid::now_v7();
    for round in 0..ROUNDS {
        let expected = if round == 0 {
            Expected::NoStream
        } else {
            Expected::Exact(Version(u64::from(round) * 2))
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let batch = counted_batch(writer as u32 * 100, 2);
                let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
                barrier.wait().await;
                (ids, store.publish(THING, id, expected, batch).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (ids, result) = task.await.expect("writer task");
            match result {
                Ok(appended) => {
                    assert_eq!(appended.version, Version(u64::from(round + 1) * 2));
                    winners.push(ids);
                }
                Err(Error::Conflict { .. }) => {}
                Err(other) => panic!("a losing writer must get Conflict, got {other}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one writer must win"
        );
        let events = replay_thing(&store, id, u64::from(round) * 2).await;
        let stored: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(
            stored, winners[0],
            "round {round}: the stream holds the winner's batch once"
        );
    }
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(events.len(), ROUNDS as usize * 2, "nothing lost or doubled");
}

/// Appending a batch again with the same event ids stores nothing twice and reports the
/// original outcome; reusing ids in another batch is refused.
pub async fn retried_batch_is_stored_once<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let batch = counted_batch(1, 3);
    let first = store
        .publish(THING, id, Expected::NoStream, batch.clone())
        .await
        .unwrap();
    let retry = store
        .publish(THING, id, Expected::NoStream, batch.clone())
        .await
        .expect("a retry of a stored batch succeeds");
    assert_eq!(retry, first, "a retry reports the original outcome");
    store
        .publish(THING, id, Expected::Exact(Version(3)), vec![counted(4)])
        .await
        .unwrap();
    let late_retry = store
        .publish(THING, id, Expected::NoStream, batch.clone())
        .await
        .expect("a retry after later appends still succeeds");
    assert_eq!(late_retry, first);
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [1, 2, 3, 4]);

    let mixed = vec![counted(5), batch[1].clone()];
    let result = store.publish(THING, id, Expected::Any, mixed).await;
    assert!(
        matches!(result, Err(Error::DuplicateEvent { event_id }) if event_id == batch[1].event_id),
        "reusing a stored id in another batch is DuplicateEvent, got {result:?}"
    );
    let repeated = counted(6);
    let result = store
        .publish(THING, id, Expected::Any, vec![repeated.clone(), repeated])
        .await;
    assert!(
        matches!(result, Err(Error::DuplicateEvent { .. })),
        "one id twice in a batch is DuplicateEvent, got {result:?}"
    );
    assert_eq!(
        versions(&replay_thing(&store, id, 0).await),
        [1, 2, 3, 4],
        "refused batches store nothing"
    );
}

/// `replay_one` yields the versions after `after`, ascending.
pub async fn replay_one_returns_later_versions_in_order<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let other_stream = Uuid::now_v7();
    for n in 0..3 {
        store
            .publish(THING, id, Expected::Any, counted_batch(n * 2, 2))
            .await
            .unwrap();
        store
            .publish(THING, other_stream, Expected::Any, vec![counted(99)])
            .await
            .unwrap();
    }
    assert_eq!(
        versions(&replay_thing(&store, id, 0).await),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        versions(&replay_thing(&store, id, 4).await),
        [5, 6],
        "`after` is exclusive"
    );
    assert!(replay_thing(&store, id, 6).await.is_empty());
    assert!(replay_thing(&store, id, 60).await.is_empty());
    let events = replay_thing(&store, id, 0).await;
    assert!(
        events.iter().all(|e| e.aggregate_id == id),
        "only the asked stream"
    );
    assert_increasing("replay_one", &events);
}

/// An unknown stream reads as empty, not as an error.
pub async fn replay_one_of_unknown_stream_is_empty<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    assert!(replay_thing(&store, Uuid::now_v7(), 0).await.is_empty());
    store
        .publish(THING, Uuid::now_v7(), Expected::Any, vec![counted(1)])
        .await
        .unwrap();
    assert!(replay_thing(&store, Uuid::now_v7(), 0).await.is_empty());
}

/// `replay_one_from` yields what `replay_one` yields, whatever position it is given:
/// the event's own at `after`, an earlier or a later event's, one past the stream's end,
/// or none.
pub async fn replay_one_from_any_position_loses_nothing<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    for n in 0..6 {
        store
            .publish(THING, id, Expected::Any, vec![counted(n + 1)])
            .await
            .unwrap();
        // Another stream between each two, so that positions have gaps.
        store
            .publish(THING, Uuid::now_v7(), Expected::Any, vec![counted(9)])
            .await
            .unwrap();
    }
    let all = replay_thing(&store, id, 0).await;
    assert_eq!(versions(&all), [1, 2, 3, 4, 5, 6]);
    for (at, what) in [
        (all[2].position, "the event's own"),
        (all[0].position, "an earlier event's"),
        (all[4].position, "a later event's"),
        (Position(all[5].position.get() + 1_000), "past the end"),
        (Position::ZERO, "none"),
    ] {
        let events = collect(
            "replay_one_from",
            store.replay_one_from(THING, id, Version(3), at),
        )
        .await;
        assert_eq!(versions(&events), [4, 5, 6], "from {what} position");
    }
}

/// A stream longer than any page or batch a store uses reads whole and in order.
pub async fn long_stream_reads_in_order<F: StoreFactory>(factory: &F) {
    const EVENTS: u32 = 1_500;
    let store = factory.store().await;
    let id = Uuid::now_v7();
    for start in (0..EVENTS).step_by(100) {
        store
            .publish(
                THING,
                id,
                Expected::Exact(Version(u64::from(start))),
                counted_batch(start, 100),
            )
            .await
            .unwrap();
    }
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(
        versions(&events),
        (1..=u64::from(EVENTS)).collect::<Vec<_>>()
    );
    assert_increasing("replay_one", &events);
    assert_eq!(replay_thing(&store, id, 1_000).await.len(), 500);
    let middle = events[599].position;
    let group = collect("replay", store.replay(&[THING], middle)).await;
    assert_eq!(
        versions(&group),
        (601..=u64::from(EVENTS)).collect::<Vec<_>>()
    );
}

/// `replay` of a group: only its categories, strictly increasing positions, `after`
/// exclusive, and the stream ends.
pub async fn replay_reads_group_in_position_order<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut expected = Vec::new();
    for n in 0..4u32 {
        expected.push(
            store
                .publish(THING, a, Expected::Any, vec![counted(n)])
                .await
                .unwrap()
                .position,
        );
        expected.push(
            store
                .publish(OTHER, b, Expected::Any, vec![other(n.into())])
                .await
                .unwrap()
                .position,
        );
        store
            .publish("Third", c, Expected::Any, vec![counted(n)])
            .await
            .unwrap();
    }
    let all = collect("replay", store.replay(&[THING, OTHER], Position::ZERO)).await;
    assert_increasing("replay", &all);
    assert!(
        all.iter()
            .all(|e| e.category == THING || e.category == OTHER),
        "only the group's categories"
    );
    let positions: Vec<Position> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions, expected,
        "every event of the group, in position order"
    );

    let after = collect("replay", store.replay(&[THING, OTHER], expected[2])).await;
    let positions: Vec<Position> = after.iter().map(|e| e.position).collect();
    assert_eq!(positions, expected[3..], "`after` is exclusive");

    let things = collect("replay", store.replay(&[THING], Position::ZERO)).await;
    assert_eq!(things.len(), 4);
    assert!(things.iter().all(|e| e.category == THING));

    let none = collect("replay", store.replay(&["Nothing"], Position::ZERO)).await;
    assert!(none.is_empty());
    let last = *expected.last().unwrap();
    let past = collect("replay", store.replay(&[THING, OTHER], last)).await;
    assert!(past.is_empty(), "nothing after the head");
}

/// `subscribe` delivers the stored events after a position, then new ones live, in order,
/// none twice.
pub async fn subscribe_catches_up_then_goes_live<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let mut stored = Vec::new();
    for n in 0..5 {
        stored.push(
            store
                .publish(THING, id, Expected::Any, vec![counted(n)])
                .await
                .unwrap(),
        );
        store
            .publish(OTHER, id, Expected::Any, vec![other(n.into())])
            .await
            .unwrap();
    }
    let mut subscription = pin!(store.subscribe(&[THING], stored[1].position));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let envelope = within("catch-up events", subscription.next()).await;
        seen.push(
            envelope
                .expect("the subscription is live")
                .expect("no error"),
        );
    }
    assert_eq!(versions(&seen), [3, 4, 5], "catch-up starts after `after`");

    for n in 5..8 {
        store
            .publish(OTHER, id, Expected::Any, vec![other(n.into())])
            .await
            .unwrap();
        stored.push(
            store
                .publish(THING, id, Expected::Any, vec![counted(n)])
                .await
                .unwrap(),
        );
    }
    store
        .publish(THING, id, Expected::Any, counted_batch(8, 2))
        .await
        .unwrap();
    // A last event marks the end, so a store that drops events fails here instead of
    // leaving the case waiting.
    let sentinel = counted(99);
    let sentinel_id = sentinel.event_id;
    store
        .publish(THING, id, Expected::Any, vec![sentinel])
        .await
        .unwrap();
    loop {
        let envelope = within("live events", subscription.next()).await;
        let envelope = envelope
            .expect("the subscription is live")
            .expect("no error");
        let done = envelope.event_id == sentinel_id;
        seen.push(envelope);
        if done {
            break;
        }
    }
    assert_eq!(versions(&seen), [3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert!(seen.iter().all(|e| e.category == THING));
    assert_increasing("subscribe", &seen);
    let extra = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(
        extra.is_err(),
        "no event may come twice or from another category, got {extra:?}"
    );
}

/// Many writers on many streams while a subscriber follows: it sees every event of its
/// categories exactly once, in strictly increasing positions.
pub async fn subscribe_with_concurrent_writers_sees_each_event_once<F: StoreFactory>(factory: &F) {
    const WRITERS: u32 = 16;
    const APPENDS: u32 = 15;
    let store = Arc::new(factory.store().await);
    store
        .publish(THING, Uuid::now_v7(), Expected::Any, counted_batch(0, 3))
        .await
        .unwrap();
    let sentinel = other(u64::MAX);
    let sentinel_id = sentinel.event_id;
    let subscriber = {
        let store = Arc::clone(&store);
        let (ready, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subscription = pin!(store.subscribe(&[THING, OTHER], Position::ZERO));
            let _ = ready.send(());
            let mut seen: Vec<Envelope> = Vec::new();
            loop {
                match tokio::time::timeout(PATIENCE, subscription.next()).await {
                    Ok(Some(Ok(envelope))) if envelope.event_id == sentinel_id => break,
                    Ok(Some(Ok(envelope))) => seen.push(envelope),
                    Ok(Some(Err(error))) => panic!("subscription failed: {error}"),
                    Ok(None) => panic!("subscription ended early"),
                    Err(_) => panic!(
                        "the subscriber saw {} events, then nothing for {PATIENCE:?}",
                        seen.len()
                    ),
                }
            }
            seen
        });
        ready_rx.await.unwrap();
        task
    };
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let (thing, side) = (Uuid::now_v7(), Uuid::now_v7());
            for n in 0..APPENDS {
                let batch = counted_batch(n, 2);
                ids.extend(batch.iter().map(|e| e.event_id));
                store
                    .publish(THING, thing, Expected::Any, batch)
                    .await
                    .unwrap();
                store
                    .publish("Ignored", side, Expected::Any, vec![counted(n)])
                    .await
                    .unwrap();
                let single = other(u64::from(writer * 1000 + n));
                ids.push(single.event_id);
                store
                    .publish(OTHER, side, Expected::Any, vec![single])
                    .await
                    .unwrap();
            }
            ids
        }));
    }
    let mut written = BTreeSet::new();
    for writer in writers {
        for id in writer.await.expect("writer task") {
            written.insert(id);
        }
    }
    store
        .publish(OTHER, Uuid::now_v7(), Expected::Any, vec![sentinel])
        .await
        .unwrap();
    let seen = subscriber.await.expect("subscriber task");
    assert_increasing("subscribe", &seen);
    let mut unique = BTreeSet::new();
    for envelope in &seen {
        assert!(
            unique.insert(envelope.event_id),
            "event {} delivered twice",
            envelope.event_id
        );
        assert!(envelope.category == THING || envelope.category == OTHER);
    }
    let delivered = written.iter().filter(|id| unique.contains(*id)).count();
    assert_eq!(
        delivered,
        written.len(),
        "{} written events never reached the subscriber",
        written.len() - delivered
    );
    assert_eq!(seen.len(), 3 + written.len(), "nothing else was delivered");
}

/// Commit order differs from position order: while an append is written but not
/// committed, a later one commits. A subscriber must not pass the pending one: once it
/// commits, both are delivered; if it rolls back, only the later one is.
pub async fn subscriber_waits_for_an_uncommitted_earlier_append<F: StoreFactory>(factory: &F) {
    let store = Arc::new(factory.store().await);
    if !factory.capabilities().pending_appends {
        let held = factory
            .begin_append(&store, THING, Uuid::now_v7(), vec![counted(1)])
            .await;
        assert!(
            matches!(held, Err(Error::NotSupported { .. })),
            "a store without pending appends must say so"
        );
        println!("pending appends: declared impossible (appends are visible atomically, in order)");
        return;
    }
    let mut subscription = pin!(store.subscribe(&[THING], Position::ZERO));
    for commit in [true, false] {
        let held_id = Uuid::now_v7();
        let held_event = counted(1);
        let held_event_id = held_event.event_id;
        let held = factory
            .begin_append(&store, THING, held_id, vec![held_event])
            .await
            .expect("begin an append");
        let later = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .publish(THING, Uuid::now_v7(), Expected::NoStream, vec![counted(2)])
                    .await
            })
        };
        // Give the later append every chance to commit and a wrong store every chance to
        // deliver it past the pending one.
        let early = tokio::time::timeout(Duration::from_millis(700), subscription.next()).await;
        if let Ok(item) = early {
            panic!("delivered past an uncommitted append: {item:?}");
        }
        let mut expected = Vec::new();
        if commit {
            held.commit().await.expect("commit the held append");
            expected.push(held_event_id);
        } else {
            held.rollback().await.expect("roll back the held append");
        }
        let later = within("the later append", later)
            .await
            .unwrap()
            .expect("later append");
        let mut seen = Vec::new();
        while seen.last().map(|e: &Envelope| e.position) != Some(later.position) {
            let envelope = within("delivery after the commit", subscription.next()).await;
            seen.push(envelope.expect("live").expect("no error"));
        }
        assert_increasing("subscribe", &seen);
        let ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
        let later_id = seen.last().unwrap().event_id;
        expected.push(later_id);
        assert_eq!(
            ids, expected,
            "commit {commit}: the held event (if committed), then the later one"
        );
        let group = collect("replay", store.replay(&[THING], Position::ZERO)).await;
        assert_eq!(
            group.iter().any(|e| e.event_id == held_event_id),
            commit,
            "a rolled-back append is never visible"
        );
    }
}

/// The same aggregate id in two categories is two streams.
pub async fn same_id_in_two_categories_stays_apart<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 2))
        .await
        .unwrap();
    let other_stream = store
        .publish(OTHER, id, Expected::NoStream, vec![other(1)])
        .await
        .expect("the other category's stream is new");
    assert_eq!(other_stream.version, Version(1));
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [1, 2]);
    let others = collect("replay_one", store.replay_one(OTHER, id, Version::ZERO)).await;
    assert_eq!(versions(&others), [1]);
    assert_eq!(others[0].category, OTHER);
}

/// Two stores from the factory (two namespaces) share nothing.
pub async fn namespaces_stay_apart<F: StoreFactory>(factory: &F) {
    let first = factory.store().await;
    let second = factory.store().await;
    let id = Uuid::now_v7();
    first
        .publish(THING, id, Expected::NoStream, counted_batch(1, 2))
        .await
        .unwrap();
    assert!(replay_thing(&second, id, 0).await.is_empty());
    assert!(
        collect("replay", second.replay(&[THING], Position::ZERO))
            .await
            .is_empty()
    );
    second
        .publish(THING, id, Expected::NoStream, vec![counted(5)])
        .await
        .expect("the same stream is new in another namespace");
    assert_eq!(versions(&replay_thing(&first, id, 0).await), [1, 2]);
    if factory.capabilities().checkpoints {
        first.save_checkpoint("apart", Position(5)).await.unwrap();
        assert_eq!(second.load_checkpoint("apart").await.unwrap(), None);
    }
    if factory.capabilities().snapshots {
        let snapshot = Snapshot {
            version: Version(2),
            position: Position(2),
            schema_version: 1,
            payload: b"{}".as_slice().into(),
        };
        first.save_snapshot(THING, id, snapshot).await.unwrap();
        assert_eq!(second.load_snapshot(THING, id).await.unwrap(), None);
    }
}

#[track_caller]
fn assert_not_supported<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::NotSupported { .. })),
        "the store declares no {what}, so it must answer NotSupported, got {result:?}"
    );
    println!("{what}: declared unsupported, checked that the store says so");
}

/// Truncating drops the events before a version; the version and its check stay.
pub async fn truncate_drops_older_events_and_keeps_version<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let keep = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 5))
        .await
        .unwrap();
    store
        .publish(THING, keep, Expected::NoStream, counted_batch(1, 2))
        .await
        .unwrap();
    if !factory.capabilities().truncate {
        return assert_not_supported(store.truncate(THING, id, Version(3)).await, "truncate");
    }
    store
        .truncate(THING, id, Version(3))
        .await
        .expect("truncate");
    assert_eq!(
        versions(&replay_thing(&store, id, 0).await),
        [3, 4, 5],
        "versions below 3 are gone"
    );
    assert_eq!(versions(&replay_thing(&store, id, 3).await), [4, 5]);
    let group = collect("replay", store.replay(&[THING], Position::ZERO)).await;
    assert_eq!(
        group.len(),
        5,
        "the group replay no longer holds the truncated events"
    );
    assert_eq!(
        versions(&replay_thing(&store, keep, 0).await),
        [1, 2],
        "other streams untouched"
    );

    let stale = store
        .publish(THING, id, Expected::Exact(Version(2)), vec![counted(6)])
        .await;
    assert_conflict(stale, Expected::Exact(Version(2)), 5);
    let appended = store
        .publish(THING, id, Expected::Exact(Version(5)), vec![counted(6)])
        .await
        .expect("the current version still appends");
    assert_eq!(appended.version, Version(6));
    store
        .truncate(THING, id, Version(2))
        .await
        .expect("truncating less is a no-op");
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [3, 4, 5, 6]);
}

/// Truncating every event of a stream keeps its version: `NoStream` and stale versions
/// still conflict.
pub async fn truncate_of_every_event_still_checks_version<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(THING, id, Expected::NoStream, counted_batch(1, 3))
        .await
        .unwrap();
    if !factory.capabilities().truncate {
        return assert_not_supported(store.truncate(THING, id, Version(4)).await, "truncate");
    }
    store
        .truncate(THING, id, Version(4))
        .await
        .expect("truncate everything");
    assert!(
        replay_thing(&store, id, 0).await.is_empty(),
        "every event is gone"
    );
    let reopened = store
        .publish(THING, id, Expected::NoStream, vec![counted(9)])
        .await;
    assert_conflict(reopened, Expected::NoStream, 3);
    let stale = store
        .publish(THING, id, Expected::Exact(Version(2)), vec![counted(9)])
        .await;
    assert_conflict(stale, Expected::Exact(Version(2)), 3);
    let appended = store
        .publish(THING, id, Expected::Exact(Version(3)), vec![counted(4)])
        .await
        .expect("the current version appends after a full truncate");
    assert_eq!(appended.version, Version(4));
    assert_eq!(versions(&replay_thing(&store, id, 0).await), [4]);
}

/// The snapshot with the highest version is kept, per stream.
pub async fn snapshot_latest_wins<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let snapshot = |version: u64, total: u64| Snapshot {
        version: Version(version),
        position: Position(version * 10),
        schema_version: 1,
        payload: serde_json::to_vec(&Tally {
            total,
            events: version,
        })
        .unwrap()
        .into(),
    };
    if !factory.capabilities().snapshots {
        return assert_not_supported(
            store.save_snapshot(THING, id, snapshot(1, 1)).await,
            "snapshots",
        );
    }
    assert_eq!(store.load_snapshot(THING, id).await.unwrap(), None);
    store
        .save_snapshot(THING, id, snapshot(3, 30))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(3, 30))
    );
    store
        .save_snapshot(THING, id, snapshot(5, 50))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(5, 50))
    );
    store
        .save_snapshot(THING, id, snapshot(4, 40))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(5, 50)),
        "an older snapshot does not replace a newer one"
    );
    assert_eq!(
        store.load_snapshot(THING, Uuid::now_v7()).await.unwrap(),
        None
    );
    assert_eq!(store.load_snapshot(OTHER, id).await.unwrap(), None);
}

/// `read` starts from the latest snapshot and applies only the events after it.
pub async fn read_is_snapshot_then_later_events<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let mut root = Root::<Tally>::new(id);
    for amount in [1, 2, 3] {
        store.try_write(&mut root, amount).await.unwrap();
    }
    if !factory.capabilities().snapshots {
        return assert_not_supported(store.save_root_snapshot(&root).await, "snapshots");
    }
    // A snapshot that disagrees with the events on purpose: `read` must start from it.
    let marked = Root::from_parts(
        id,
        root.version(),
        root.position(),
        Tally {
            total: 1_000,
            events: 3,
        },
    );
    store.save_root_snapshot(&marked).await.unwrap();
    store.try_write(&mut root, 4).await.unwrap();
    store.try_write(&mut root, 5).await.unwrap();

    let read: Root<Tally> = store.read(id).await.unwrap();
    assert_eq!(read.version(), Version(5));
    assert_eq!(read.position(), root.position());
    assert_eq!(
        *read.aggregate(),
        Tally {
            total: 1_009,
            events: 5
        },
        "snapshot + events 4 and 5"
    );
    let loaded: Root<Tally> = store.load(id).await.unwrap();
    assert_eq!(
        *loaded.aggregate(),
        Tally {
            total: 15,
            events: 5
        },
        "load ignores snapshots"
    );

    let fresh: Root<Tally> = store.read(Uuid::now_v7()).await.unwrap();
    assert_eq!(fresh.version(), Version::ZERO);
}

/// Checkpoints are kept per projection name and never move backwards.
pub async fn checkpoints_are_per_name_and_never_move_backwards<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().checkpoints {
        return assert_not_supported(store.save_checkpoint("p", Position(1)).await, "checkpoints");
    }
    assert_eq!(store.load_checkpoint("first").await.unwrap(), None);
    store.save_checkpoint("first", Position(10)).await.unwrap();
    store.save_checkpoint("second", Position(3)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(10))
    );
    assert_eq!(
        store.load_checkpoint("second").await.unwrap(),
        Some(Position(3))
    );
    store.save_checkpoint("first", Position(4)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(10)),
        "a checkpoint never moves backwards"
    );
    store.save_checkpoint("first", Position(12)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(12))
    );
    assert_eq!(
        store.load_checkpoint("second").await.unwrap(),
        Some(Position(3))
    );
}

/// `count_after` counts the events of the categories asked for, after a position: not a
/// difference of positions, which other categories (and gaps) would inflate.
pub async fn count_after_counts_events_not_positions<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let (a, b, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = store
        .publish(THING, a, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    store
        .publish(OTHER, o, Expected::NoStream, vec![other(1), other(2)])
        .await
        .unwrap();
    store
        .publish(THING, b, Expected::NoStream, vec![counted(2)])
        .await
        .unwrap();
    let last = store
        .publish(THING, a, Expected::Exact(Version(1)), vec![counted(3)])
        .await
        .unwrap();
    let count = |categories: &'static [&'static str], after: Position| {
        let store = &store;
        async move { store.count_after(categories, after).await.unwrap() }
    };
    assert_eq!(count(&[THING], Position::ZERO).await, 3);
    assert_eq!(count(&[THING, OTHER], Position::ZERO).await, 5);
    assert_eq!(
        count(&[THING], first.position).await,
        2,
        "events after the first, of this category only"
    );
    assert_eq!(count(&[THING], last.position).await, 0);
    assert_eq!(count(&[OTHER], last.position).await, 0);
    assert!(matches!(
        store.count_after(&["bad name"], Position::ZERO).await,
        Err(Error::InvalidName { .. })
    ));
}

/// A store lists its categories with their event and stream counts, and its checkpoints;
/// an operator can set a checkpoint back or remove it.
pub async fn catalog_lists_categories_and_resets_checkpoints<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().catalog {
        return assert_not_supported(store.categories().await, "catalog");
    }
    assert!(store.categories().await.unwrap().is_empty());
    let (a, b, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    store
        .publish(THING, a, Expected::NoStream, counted_batch(0, 2))
        .await
        .unwrap();
    store
        .publish(THING, b, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    store
        .publish(OTHER, o, Expected::NoStream, vec![other(1)])
        .await
        .unwrap();
    let categories: Vec<(String, u64, u64)> = store
        .categories()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.events, c.streams))
        .collect();
    assert_eq!(
        categories,
        [(OTHER.to_owned(), 1, 1), (THING.to_owned(), 3, 2)],
        "categories by name, with their events and streams"
    );

    if !factory.capabilities().checkpoints {
        return;
    }
    assert!(store.checkpoints().await.unwrap().is_empty());
    store.save_checkpoint("first", Position(10)).await.unwrap();
    store.save_checkpoint("second", Position(3)).await.unwrap();
    assert_eq!(
        store.checkpoints().await.unwrap(),
        [
            ("first".to_owned(), Position(10)),
            ("second".to_owned(), Position(3))
        ]
    );
    store
        .reset_checkpoint("first", Some(Position(4)))
        .await
        .unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(4)),
        "a reset moves a checkpoint back"
    );
    store.save_checkpoint("first", Position(2)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(4)),
        "after a reset a checkpoint still never moves backwards"
    );
    store.reset_checkpoint("second", None).await.unwrap();
    assert_eq!(store.load_checkpoint("second").await.unwrap(), None);
    assert_eq!(
        store.checkpoints().await.unwrap(),
        [("first".to_owned(), Position(4))]
    );
    assert!(matches!(
        store.reset_checkpoint("bad name", None).await,
        Err(Error::InvalidName { .. })
    ));
}

/// Event id, timestamp (to the microsecond), schema version and metadata come back as
/// written, through every read path.
pub async fn envelope_fields_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let metadata = Metadata::new()
        .with_correlation_id(Uuid::now_v7())
        .with_causation_id(Uuid::new_v4())
        .with("user", "alice")
        .with("région", "Île-de-France ✓")
        .with("empty", "");
    let event_id = Uuid::new_v4();
    let timestamp = Timestamp::from_micros(1_700_000_000_123_457);
    let event = NewEvent::from_payload(7, br#"{"Counted":{"amount":1}}"#.as_slice())
        .with_event_id(event_id)
        .with_metadata(metadata.clone());
    let event = NewEvent { timestamp, ..event };
    let plain = counted(2);
    let appended = store
        .publish(THING, id, Expected::NoStream, vec![event, plain.clone()])
        .await
        .unwrap();

    let one = replay_thing(&store, id, 0).await;
    let group = collect("replay", store.replay(&[THING], Position::ZERO)).await;
    let mut subscription = pin!(store.subscribe(&[THING], Position::ZERO));
    let mut live = Vec::new();
    for _ in 0..2 {
        live.push(
            within("subscribe", subscription.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for (path, envelopes) in [
        ("replay_one", &one),
        ("replay", &group),
        ("subscribe", &live),
    ] {
        assert_eq!(envelopes.len(), 2, "{path}");
        let first = &envelopes[0];
        assert_eq!(first.event_id, event_id, "{path}: event id");
        assert_eq!(
            first.timestamp, timestamp,
            "{path}: timestamp to the microsecond"
        );
        assert_eq!(first.schema_version, 7, "{path}: schema version");
        assert_eq!(first.metadata, metadata, "{path}: metadata");
        assert_eq!(first.version, Version(1), "{path}");
        let second = &envelopes[1];
        assert_eq!(second.event_id, plain.event_id, "{path}");
        assert_eq!(second.timestamp, plain.timestamp, "{path}");
        assert_eq!(
            second.metadata,
            Metadata::default(),
            "{path}: empty metadata"
        );
        assert_eq!(second.position, appended.position, "{path}");
        assert_eq!(second.payload, plain.payload, "{path}: payload bytes");
    }
    assert_eq!(one, group, "replay_one and replay agree");
    assert_eq!(one, live, "replay_one and subscribe agree");
}

/// Payloads stored at schema versions 1 and 2 read as today's version 3.
pub async fn old_payload_versions_upcast<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let v1 = NewEvent::from_payload(
        1,
        serde_json::to_vec(&NoteV1 {
            text: "Hello\nworld".into(),
        })
        .unwrap(),
    );
    let v2 = NewEvent::from_payload(
        2,
        serde_json::to_vec(&NoteV2 {
            text: "Title only".into(),
            tags: vec!["a".into()],
        })
        .unwrap(),
    );
    let v3 = NewEvent::new(&Note {
        title: "t".into(),
        body: "b".into(),
        tags: vec![],
    })
    .unwrap();
    assert_eq!(v3.schema_version, 3);
    store
        .publish("Note", id, Expected::NoStream, vec![v1, v2, v3])
        .await
        .unwrap();
    let events = collect("replay_one", store.replay_one("Note", id, Version::ZERO)).await;
    let notes: Vec<Note> = events
        .iter()
        .map(|e| e.deserialize().expect("upcasts"))
        .collect();
    assert_eq!(
        notes,
        [
            Note {
                title: "Hello".into(),
                body: "world".into(),
                tags: vec!["untagged".into()]
            },
            Note {
                title: "Title only".into(),
                body: String::new(),
                tags: vec!["a".into()]
            },
            Note {
                title: "t".into(),
                body: "b".into(),
                tags: vec![]
            },
        ]
    );
    let future = NewEvent::from_payload(4, br#"{"title":"x","body":"y","tags":[]}"#.as_slice());
    store
        .publish("Note", id, Expected::Any, vec![future])
        .await
        .unwrap();
    let events = collect("replay_one", store.replay_one("Note", id, Version(3))).await;
    match events[0].deserialize::<Note>() {
        Err(Error::Format {
            source: esrc_core::DecodeError::UnknownVersion { known, found, .. },
            ..
        }) => {
            assert_eq!((known, found), (3, 4));
        }
        other => panic!("a version newer than the type knows is a Format error, got {other:?}"),
    }
}

/// A stored payload that does not decode is `Error::Format` naming category, position and
/// schema version; the data stays readable.
pub async fn malformed_payload_is_format_error<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let bad = NewEvent::from_payload(1, br#"{"Vanished":{"why":[1,2,3]}}"#.as_slice());
    let appended = store
        .publish(THING, id, Expected::NoStream, vec![counted(1), bad])
        .await
        .unwrap();
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(events.len(), 2, "a bad payload does not hide other events");
    assert!(events[0].deserialize::<ThingEvent>().is_ok());
    match events[1].deserialize::<ThingEvent>() {
        Err(Error::Format {
            category,
            position,
            schema_version,
            ..
        }) => {
            assert_eq!(category, THING);
            assert_eq!(position, appended.position);
            assert_eq!(schema_version, 1);
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
    let read = store.load::<Tally>(id).await;
    assert!(
        matches!(read, Err(Error::Format { .. })),
        "reading the aggregate fails typed: {read:?}"
    );
    let again = replay_thing(&store, id, 0).await;
    assert_eq!(again, events, "nothing was lost");
}

/// Decoding an event of a category the reader does not know is `Error::UnknownEvent`.
pub async fn unknown_category_is_typed_error<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(OTHER, id, Expected::NoStream, vec![other(1)])
        .await
        .unwrap();
    let events = collect("replay", store.replay(&[OTHER], Position::ZERO)).await;
    match events[0].deserialize::<ThingEvent>() {
        Err(Error::UnknownEvent { category, known }) => {
            assert_eq!(category, OTHER);
            assert_eq!(known, [THING]);
        }
        other => panic!("expected Error::UnknownEvent, got {other:?}"),
    }
}

/// Invalid category and projection names are refused with `Error::InvalidName`, and
/// nothing is stored.
pub async fn invalid_names_are_rejected<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    for name in ["", "a.b", "a b", "*", ">", "Tab/1", "Tåb", "a\nb"] {
        let result = store
            .publish(name, id, Expected::Any, vec![counted(1)])
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "publish {name:?}: {result:?}"
        );
        let item = first_item("replay_one", store.replay_one(name, id, Version::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "replay_one {name:?}: {item:?}"
        );
        let item = first_item("replay", store.replay(&[THING, name], Position::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "replay {name:?}: {item:?}"
        );
        let item = first_item("subscribe", store.subscribe(&[name], Position::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "subscribe {name:?}: {item:?}"
        );
        if factory.capabilities().checkpoints {
            let result = store.save_checkpoint(name, Position(1)).await;
            assert!(
                matches!(result, Err(Error::InvalidName { .. })),
                "checkpoint {name:?}: {result:?}"
            );
        }
        if factory.capabilities().truncate {
            let result = store.truncate(name, id, Version(1)).await;
            assert!(
                matches!(result, Err(Error::InvalidName { .. })),
                "truncate {name:?}: {result:?}"
            );
        }
    }
    assert!(
        collect("replay", store.replay(&[THING], Position::ZERO))
            .await
            .is_empty()
    );
}

/// A payload of about 1 MiB and payloads full of unicode round-trip byte for byte.
pub async fn large_and_unicode_payloads_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    // Just under 1 MiB with its envelope, so it fits the default message limit of NATS.
    let large = ThingEvent::Made {
        label: "x".repeat(1_040_000),
    };
    let unicode = ThingEvent::Made {
        label: "naïve café — 東京 — שלום — 🦀🎉 — e\u{301} — \u{0} — \u{feff} — \"quoted\" \\"
            .into(),
    };
    let batch = vec![
        NewEvent::new(&large).unwrap(),
        NewEvent::new(&unicode).unwrap(),
    ];
    let payloads: Vec<_> = batch.iter().map(|e| e.payload.clone()).collect();
    store
        .publish(THING, id, Expected::NoStream, batch)
        .await
        .unwrap();
    let events = replay_thing(&store, id, 0).await;
    let stored: Vec<_> = events.iter().map(|e| e.payload.clone()).collect();
    assert!(stored == payloads, "payload bytes must round-trip");
    assert_eq!(events[0].deserialize::<ThingEvent>().unwrap(), large);
    assert_eq!(events[1].deserialize::<ThingEvent>().unwrap(), unicode);
    let counts: HashMap<u64, usize> = events
        .iter()
        .map(|e| (e.version.get(), e.payload.len()))
        .collect();
    assert!(counts[&1] > 1_000_000);
}

/// Writes `count` events alternating between `Thing` and `Other`, on a few streams, and
/// returns their ids and positions in position order.
async fn write_mixed<S: Publish>(store: &S, count: u32) -> Vec<(Position, Uuid)> {
    let streams = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut written = Vec::new();
    for n in 0..count {
        let id = streams[n as usize % streams.len()];
        let (category, event) = if n % 2 == 0 {
            (THING, counted(n))
        } else {
            (OTHER, other(n.into()))
        };
        let event_id = event.event_id;
        let appended = store
            .publish(category, id, Expected::Any, vec![event])
            .await
            .unwrap();
        written.push((appended.position, event_id));
    }
    written
}

/// Waits until the projector has projected `position`.
async fn wait_for<S: Replay, P: Send + 'static, E: Send + 'static>(
    handle: &esrc_core::projector::ProjectorHandle<S, P, E>,
    position: Position,
) {
    within("the projector to catch up", async {
        while handle.progress().projected() < position {
            assert!(!handle.is_finished(), "the projector ended early");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A projector sees every event of its group once, in order, then live ones too, and
/// saves its checkpoint when stopped.
pub async fn projector_sees_every_event_once_in_order<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let mut written = write_mixed(&store, 40).await;
    store
        .publish("Ignored", Uuid::now_v7(), Expected::Any, vec![counted(1)])
        .await
        .unwrap();
    let recorder = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "every-event", recorder.clone())
        .checkpoint_every(7)
        .spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    written.extend(write_mixed(&store, 10).await);
    wait_for(&handle, written.last().unwrap().0).await;
    let lag = handle.lag().await.unwrap();
    handle.stop().await.expect("a clean stop");
    assert_eq!(
        recorder.ids(),
        written.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );
    if factory.capabilities().checkpoints {
        assert_eq!(
            store.load_checkpoint("every-event").await.unwrap(),
            Some(written.last().unwrap().0),
            "stopping saves the checkpoint of the last event"
        );
    }
    assert!(
        lag < 7,
        "lag counts the group's events after the last checkpoint, saved every 7: {lag}"
    );
}

/// Stopped and started again, a projector goes on after its checkpoint: nothing lost,
/// nothing projected twice.
pub async fn projector_resumes_after_its_checkpoint<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let first_part = write_mixed(&store, 25).await;
    let first = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "resuming", first.clone())
        .checkpoint_every(10)
        .spawn();
    wait_for(&handle, first_part.last().unwrap().0).await;
    handle.stop().await.unwrap();
    let second_part = write_mixed(&store, 12).await;
    let second = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "resuming", second.clone()).spawn();
    wait_for(&handle, second_part.last().unwrap().0).await;
    handle.stop().await.unwrap();
    assert_eq!(
        first.ids(),
        first_part.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );
    assert_eq!(
        second.ids(),
        second_part.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        "the restarted projector starts after its checkpoint"
    );
}

/// Killed mid-batch (no checkpoint saved on the way out), a projector restarted from its
/// last checkpoint loses nothing and repeats only what came after that checkpoint.
pub async fn aborted_projector_loses_nothing<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 30).await;
    let first = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "aborted", first.clone())
        .checkpoint_every(8)
        .checkpoint_interval(Duration::from_secs(3600))
        .spawn();
    wait_for(&handle, written[19].0).await;
    handle.abort();
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let checkpoint = store
        .load_checkpoint("aborted")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        checkpoint >= written[15].0,
        "two batches of 8 were checkpointed: {checkpoint}"
    );
    let projected = first.positions().last().copied().unwrap_or_default();
    assert!(
        checkpoint <= projected,
        "the checkpoint is never ahead of what was projected"
    );

    let second = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "aborted", second.clone()).spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    handle.stop().await.unwrap();
    let after: Vec<Uuid> = written
        .iter()
        .filter(|(position, _)| *position > checkpoint)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        second.ids(),
        after,
        "the restart repeats exactly what followed the checkpoint"
    );
    let mut everything: Vec<Uuid> = first.ids();
    everything.extend(second.ids());
    let mut all: Vec<Uuid> = written.iter().map(|(_, id)| *id).collect();
    all.sort();
    everything.sort();
    everything.dedup();
    assert_eq!(everything, all, "together the two runs saw every event");
}

/// Two projectors with different names each see every event.
pub async fn projectors_with_different_names_each_see_everything<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 20).await;
    let (a, b) = (Recorder::default(), Recorder::default());
    let first = Projector::new(Arc::clone(&store), "first", a.clone()).spawn();
    let second = Projector::new(Arc::clone(&store), "second", b.clone()).spawn();
    wait_for(&first, written.last().unwrap().0).await;
    wait_for(&second, written.last().unwrap().0).await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    let ids: Vec<Uuid> = written.iter().map(|(_, id)| *id).collect();
    assert_eq!(a.ids(), ids);
    assert_eq!(b.ids(), ids);
}

/// A projection that fails stops its projector (policy `Stop`) with its checkpoint
/// before the failing event; with `Retry`, the event is projected once it succeeds.
pub async fn failing_projection_does_not_advance_its_checkpoint<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::{ErrorPolicy, Projector};
    use std::sync::atomic::AtomicU32;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 10).await;
    let failing = Recorder {
        fail_at: Some(written[5].0),
        failures: Arc::new(AtomicU32::new(u32::MAX)),
        ..Recorder::default()
    };
    let outcome = Projector::new(Arc::clone(&store), "failing", failing.clone())
        .checkpoint_every(1)
        .run_until(std::future::pending())
        .await;
    match outcome {
        Err(esrc_core::ProjectError::Project { position, .. }) => {
            assert_eq!(position, written[5].0)
        }
        other => panic!(
            "the projector must stop with the projection's error, got {:?}",
            other.err()
        ),
    }
    assert_eq!(failing.ids().len(), 5);
    assert_eq!(
        store.load_checkpoint("failing").await.unwrap(),
        Some(written[4].0),
        "the checkpoint stays before the failing event"
    );

    let flaky = Recorder {
        fail_at: Some(written[5].0),
        failures: Arc::new(AtomicU32::new(2)),
        ..Recorder::default()
    };
    let policy = ErrorPolicy::Retry {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(10),
        attempts: 5,
    };
    let handle = Projector::new(Arc::clone(&store), "failing", flaky.clone())
        .on_error(policy)
        .spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    handle.stop().await.unwrap();
    let expected: Vec<Uuid> = written[5..].iter().map(|(_, id)| *id).collect();
    assert_eq!(
        flaky.ids(),
        expected,
        "after two failures the event is projected, once"
    );
}
