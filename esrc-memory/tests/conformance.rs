//! The memory store against the whole shared suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_conformance::StoreFactory;
use esrc_memory::MemoryStore;

struct Memory;

impl StoreFactory for Memory {
    type Store = MemoryStore;

    async fn store(&self) -> MemoryStore {
        MemoryStore::new()
    }
}

esrc_conformance::conformance_tests!(async { Some(Memory) });
