//! Replays of categories read each category's own positions: across many chunks, among
//! other categories, with truncated events in between, nothing is lost or repeated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_core::{Expected, NewEvent, Position, Publish, Replay, Truncate, Version};
use esrc_memory::MemoryStore;
use futures::StreamExt;
use uuid::Uuid;

fn event(n: usize) -> NewEvent {
    NewEvent::from_payload(1, format!(r#"{{"n":{n}}}"#))
}

#[tokio::test]
async fn category_replays_span_chunks_other_categories_and_truncations() {
    let store = MemoryStore::new();
    let mut kept = Vec::new();
    // Streams of 300 events in `A`, interleaved with streams of `B`; every third `A`
    // stream loses its first 250 events.
    for round in 0..12 {
        let a = Uuid::now_v7();
        let appended: Vec<NewEvent> = (0..300).map(|n| event(round * 300 + n)).collect();
        let ids: Vec<Uuid> = appended.iter().map(|event| event.event_id).collect();
        store
            .publish("A", a, Expected::NoStream, appended)
            .await
            .unwrap();
        store
            .publish(
                "B",
                Uuid::now_v7(),
                Expected::NoStream,
                (0..200).map(event).collect(),
            )
            .await
            .unwrap();
        if round.is_multiple_of(3) {
            store.truncate("A", a, Version(251)).await.unwrap();
            kept.extend_from_slice(&ids[250..]);
        } else {
            kept.extend_from_slice(&ids);
        }
    }
    let replayed: Vec<_> = store
        .replay(&["A"], Position::ZERO)
        .map(|event| event.unwrap())
        .collect()
        .await;
    let ids: Vec<Uuid> = replayed.iter().map(|event| event.event_id).collect();
    assert_eq!(ids, kept, "every kept event of A once, in order");
    assert!(replayed.iter().all(|event| event.category == "A"));

    // From the middle, and with a category named twice.
    let middle = replayed[1_000].position;
    let rest: Vec<Uuid> = store
        .replay(&["A", "A"], middle)
        .map(|event| event.unwrap().event_id)
        .collect()
        .await;
    assert_eq!(
        rest,
        kept[1_001..],
        "the events after a position, once each"
    );
}
