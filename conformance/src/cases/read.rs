//! Reads: one stream, and replays of a group of categories.

use esrc_core::{Expected, Position, Publish, Replay, ReplayOne, Version};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

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
