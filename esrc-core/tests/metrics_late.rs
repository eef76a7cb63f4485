//! A recorder installed after a store was wrapped in `Metered` and used, and after a
//! projector started, still gets their metrics: without a recorder, nothing is registered
//! (`esrc_core::metrics`).
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

#[derive(Clone, Default)]
struct Counted(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl esrc_core::Project for Counted {
    type EventGroup<'de> = LateEvent;
    type Error = std::convert::Infallible;

    async fn project<'de>(
        &mut self,
        _: esrc_core::Context<'de, LateEvent>,
    ) -> Result<(), Self::Error> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }
}

#[tokio::test]
async fn a_recorder_installed_late_gets_what_follows() {
    let store = Metered::new(MemoryStore::new(), "late");
    let counted = Counted::default();
    let running =
        esrc_core::projector::Projector::new(store.get_ref().clone(), "late", counted.clone())
            .spawn();
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
    for _ in 0..600 {
        if counted.0.load(std::sync::atomic::Ordering::Acquire) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    running.stop().await.unwrap();
    // The projector saw three events; the recorder, installed after the first, two.
    let projected = kept.counter("esrc_projector_events_total", &[("projection", "late")]);
    assert!(matches!(projected, Some(2 | 3)), "{projected:?}");
}
