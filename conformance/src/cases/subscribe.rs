//! Subscriptions: catch-up then live, under concurrent writers and uncommitted appends.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::{Envelope, Error, Expected, Position, Publish, Replay, Subscribe};
use futures::StreamExt;
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

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
    let subscriber = follow_until(Arc::clone(&store), sentinel_id).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_three_categories(Arc::clone(&store), writer, APPENDS)))
        .collect();
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

/// A subscriber of `Thing` and `Other` from the start, in a task that ends with what it
/// saw before the event `sentinel`; returns once it is subscribed.
async fn follow_until<S: Subscribe + Send + Sync + 'static>(
    store: Arc<S>,
    sentinel: Uuid,
) -> tokio::task::JoinHandle<Vec<Envelope>> {
    let (ready, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut subscription = pin!(store.subscribe(&[THING, OTHER], Position::ZERO));
        let _ = ready.send(());
        let mut seen: Vec<Envelope> = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, subscription.next()).await {
                Ok(Some(Ok(envelope))) if envelope.event_id == sentinel => break,
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
}

/// `appends` rounds of a two-event `Thing` batch, an `Ignored` event and an `Other`
/// event, on two new streams; returns the ids of the `Thing` and `Other` events.
async fn write_three_categories<S: Publish>(store: Arc<S>, writer: u32, appends: u32) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let (thing, side) = (Uuid::now_v7(), Uuid::now_v7());
    for n in 0..appends {
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

/// One contract for every store: a failure a retry can fix is ridden out, a permanent one
/// ends the subscription with the error. With its namespace removed under it (a dropped
/// schema, a deleted stream), a live subscription yields a permanent error and ends,
/// rather than retrying for ever (a projector on it would never stop).
pub async fn subscription_ends_with_a_permanent_failure<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().namespace_removal {
        let refused = factory.remove_namespace(&store).await;
        return assert_not_supported(refused, "namespace removal");
    }
    store
        .publish(
            THING,
            Uuid::now_v7(),
            Expected::NoStream,
            counted_batch(0, 1),
        )
        .await
        .unwrap();
    let mut subscription = pin!(store.subscribe(&[THING], Position::ZERO));
    let first = tokio::time::timeout(PATIENCE, subscription.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(_)))),
        "the stored event first, got {first:?}"
    );
    factory.remove_namespace(&store).await.unwrap();
    let next = tokio::time::timeout(REMOVAL_PATIENCE, subscription.next()).await;
    let ended = match next {
        Ok(Some(Err(error))) => error,
        Ok(Some(Ok(envelope))) => panic!("no event was stored meanwhile: {envelope:?}"),
        Ok(None) => panic!("the subscription ended without saying why"),
        Err(_) => panic!(
            "the subscription neither failed nor ended {REMOVAL_PATIENCE:?} after its namespace was removed"
        ),
    };
    assert!(
        !ended.is_retryable(),
        "a removed namespace is permanent: {ended}"
    );
    let after = tokio::time::timeout(REMOVAL_PATIENCE, subscription.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "after a permanent error the subscription ends, got {after:?}"
    );
}

/// How long a subscription may take to notice that its namespace is gone.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(20);
