//! Appends: expectations, batches, races and retries.

use std::sync::Arc;

use esrc_core::{
    Error, Expected, Metadata, Position, Publish, PublishExt, ReadExt, Replay, Root, Version,
};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

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
        matches!(result, Err(Error::DuplicateEvent { event_id, .. }) if event_id == batch[1].event_id),
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

/// A command whose outcome was lost (its future dropped mid-append, a timeout, a crash)
/// and that is sent again with the same idempotency key from the same root is stored
/// once: the store recognises the keyed event ids, and the root ends as the first try's
/// would have. Another key is another command.
pub async fn a_keyed_command_sent_again_is_stored_once<F: StoreFactory>(factory: &F) {
    let store = Arc::new(factory.store().await);
    let id = Uuid::now_v7();
    let none = Metadata::default();
    let mut root = Root::<Tally>::new(id);
    store.try_write(&mut root, 5).await.unwrap();

    let (mut first, mut again) = (root.clone(), root.clone());
    store
        .try_write_keyed(&mut first, 7, "request-1", &none)
        .await
        .unwrap();
    store
        .try_write_keyed(&mut again, 7, "request-1", &none)
        .await
        .unwrap();
    assert_eq!(again, first, "the retry ends where the first try did");
    assert_eq!(
        store.load::<Tally>(id).await.unwrap().total,
        12,
        "stored once"
    );

    // Dropped mid-append, wherever that was: sent again, it is stored exactly once.
    let mut root = store.load::<Tally>(id).await.unwrap();
    let dropped = {
        let (store, mut copy) = (Arc::clone(&store), root.clone());
        tokio::spawn(async move {
            let none = Metadata::default();
            let _ = store
                .try_write_keyed(&mut copy, 3, "request-2", &none)
                .await;
        })
    };
    tokio::task::yield_now().await;
    dropped.abort();
    let _ = dropped.await;
    store
        .try_write_keyed(&mut root, 3, "request-2", &none)
        .await
        .unwrap();
    let loaded = store.load::<Tally>(id).await.unwrap();
    assert_eq!(
        loaded.total, 15,
        "the dropped try and the retry stored it once"
    );
    assert_eq!(loaded.version(), root.version());

    // Another key from the up-to-date root is another command.
    store
        .try_write_keyed(&mut root, 3, "request-3", &none)
        .await
        .unwrap();
    assert_eq!(store.load::<Tally>(id).await.unwrap().total, 18);
}
