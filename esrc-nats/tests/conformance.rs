//! The NATS store against the whole shared suite, one stream and prefix per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use esrc_conformance::{Capabilities, StoreFactory};
use esrc_nats::NatsStore;

struct Nats {
    nats: common::Nats,
    /// The stores this test made, destroyed by `cleanup`.
    stores: Mutex<Vec<NatsStore>>,
}

impl StoreFactory for Nats {
    type Store = NatsStore;

    async fn store(&self) -> NatsStore {
        let store = self.nats.store().await;
        self.stores.lock().unwrap().push(store.clone());
        store
    }

    fn capabilities(&self) -> Capabilities {
        // JetStream gives a message (or an atomic batch) its sequence when it commits:
        // positions become visible in order, so no append can be pending below another.
        Capabilities::all().without_pending_appends()
    }

    async fn cleanup(&self) {
        let stores = std::mem::take(&mut *self.stores.lock().unwrap());
        for store in stores {
            if let Err(error) = store.destroy().await {
                eprintln!("cleanup of stream {} failed: {error}", store.stream_name());
            }
        }
    }
}

esrc_conformance::conformance_tests!(async {
    common::nats().await.map(|nats| Nats {
        nats,
        stores: Mutex::default(),
    })
});
