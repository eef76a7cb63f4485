//! A recorder installed after a store was wrapped in `Metered` and used still gets its
//! metrics: without a recorder, `Metered` registers nothing (`esrc_core::metrics`).
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_conformance::metrics::Kept;
use esrc_core::metrics::Metered;
use esrc_core::{Expected, NewEvent, Publish};
use esrc_memory::MemoryStore;
use uuid::Uuid;

#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
enum LateEvent {
    Happened,
}

#[tokio::test]
async fn a_recorder_installed_late_gets_what_follows() {
    let store = Metered::new(MemoryStore::new(), "late");
    let publish = || async {
        let event = NewEvent::new(&LateEvent::Happened).unwrap();
        store
            .publish("Late", Uuid::now_v7(), Expected::Any, vec![event])
            .await
            .unwrap();
    };
    publish().await;
    let kept = Kept::installed();
    publish().await;
    publish().await;
    let labels = [("store", "late"), ("category", "Late")];
    assert_eq!(kept.counter("esrc_append_events_total", &labels), Some(2));
}
