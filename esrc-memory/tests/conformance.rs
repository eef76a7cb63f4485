//! The memory store against the whole shared suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_conformance::{Capabilities, StoreFactory};
use esrc_memory::MemoryStore;

struct Memory;

impl StoreFactory for Memory {
    type Store = MemoryStore;

    async fn store(&self) -> MemoryStore {
        MemoryStore::new()
    }

    fn capabilities(&self) -> Capabilities {
        // Appends happen under one lock and are visible at once, in position order; the
        // store lives in the process, with no namespace a server could lose.
        Capabilities::all()
            .without_pending_appends()
            .without_namespace_removal()
    }
}

esrc_conformance::conformance_tests!(async { Some(Memory) });

/// The whole suite again, through `AnyStore` (`Arc<dyn DynStore>`).
mod dynamic {
    esrc_conformance::conformance_tests!(async { Some(esrc_conformance::Dynamic(super::Memory)) });
}

/// Appends and reads run in spans with OpenTelemetry's fields (`esrc_core::trace`).
#[tokio::test]
async fn store_spans_follow_the_conventions() {
    esrc_conformance::spans::store_spans_follow_the_conventions(
        &Memory,
        esrc_core::backend::System::Database("memory"),
    )
    .await;
}
