//! Streams and namespaces apart, and truncation.

use esrc_core::{
    CheckpointStore, Expected, Position, Publish, Replay, ReplayOne, Snapshot, SnapshotStore,
    Truncate, Version,
};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

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
        let snapshot = Snapshot::new(Version(2), Position(2), 1, b"{}".as_slice());
        first.save_snapshot(THING, id, snapshot).await.unwrap();
        assert_eq!(second.load_snapshot(THING, id).await.unwrap(), None);
    }
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
