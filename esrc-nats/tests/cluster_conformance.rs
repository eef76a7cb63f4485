//! The whole shared suite against a three-node cluster, every stream and bucket with
//! three replicas (`ESRC_NATS_CLUSTER_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use esrc_conformance::{Capabilities, StoreFactory};
use esrc_nats::NatsStore;

struct Cluster {
    nats: common::Nats,
    /// The stores this test made, destroyed by `cleanup`.
    stores: Mutex<Vec<NatsStore>>,
}

impl StoreFactory for Cluster {
    type Store = NatsStore;

    async fn store(&self) -> NatsStore {
        let store = self.nats.store().await;
        self.stores.lock().unwrap().push(store.clone());
        store
    }

    fn capabilities(&self) -> Capabilities {
        // As on one server: a sequence is given at commit, so positions become visible in
        // order.
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
    common::cluster().await.map(|nats| Cluster {
        nats,
        stores: Mutex::default(),
    })
});
