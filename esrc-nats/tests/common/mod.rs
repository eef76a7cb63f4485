//! Reaching a real NATS server (≥ 2.12, JetStream): `ESRC_NATS_URL`, else a
//! testcontainers container where a Docker daemon answers (image `ESRC_NATS_IMAGE`, by
//! default `nats:2.12-alpine`), else a `skipped:` line (or a failure with
//! `ESRC_REQUIRE_BACKENDS=1`).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use esrc_conformance::{Capabilities, StoreFactory, backend_unavailable, container_image};
use esrc_nats::NatsStore;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use uuid::Uuid;

/// A reachable server; keeps its container (if any) alive.
pub struct Nats {
    pub url: String,
    /// How many replicas the stores of a test keep.
    pub replicas: usize,
    _container: Option<ContainerAsync<GenericImage>>,
}

pub async fn nats() -> Option<Nats> {
    if let Ok(url) = std::env::var("ESRC_NATS_URL") {
        return Some(Nats {
            url,
            replicas: 1,
            _container: None,
        });
    }
    match start_container().await {
        Ok(nats) => Some(nats),
        Err(why) => backend_unavailable(&format!(
            "ESRC_NATS_URL is not set and no NATS container could start ({why})"
        )),
    }
}

async fn start_container() -> Result<Nats, String> {
    let (name, tag) = container_image("ESRC_NATS_IMAGE", "nats:2.12-alpine");
    let container = GenericImage::new(name, tag)
        .with_exposed_port(4222.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
        .with_cmd(["-js"])
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let host = container.get_host().await.map_err(|e| e.to_string())?;
    let port = container
        .get_host_port_ipv4(4222)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Nats {
        url: format!("nats://{host}:{port}"),
        replicas: 1,
        _container: Some(container),
    })
}

/// The cluster CI starts beside the single server (`ESRC_NATS_CLUSTER_URL`: every node's
/// URL, comma-separated), where stores keep three replicas.
pub async fn cluster() -> Option<Nats> {
    match std::env::var("ESRC_NATS_CLUSTER_URL") {
        Ok(url) => Some(Nats {
            url,
            replicas: 3,
            _container: None,
        }),
        Err(_) => backend_unavailable(
            "ESRC_NATS_CLUSTER_URL (the client URLs of a 3-node nats-server cluster) is not set",
        ),
    }
}

impl Nats {
    pub async fn client(&self) -> async_nats::Client {
        let servers: Vec<async_nats::ServerAddr> = self
            .url
            .split(',')
            .map(|server| server.trim().parse().expect("a server address"))
            .collect();
        async_nats::ConnectOptions::new()
            .connect(servers)
            .await
            .expect("connect to NATS")
    }

    /// A store with its own stream, prefix and buckets. A cluster that cannot place the
    /// replicas for now (a node busy or rejoining: a retryable error) is asked again for
    /// up to 30 seconds.
    pub async fn store(&self) -> NatsStore {
        let name = Uuid::new_v4().simple().to_string();
        let builder = NatsStore::builder()
            .stream(format!("T{name}"))
            .prefix(format!("t{name}"))
            .replicas(self.replicas);
        build(builder, self.client().await).await
    }
}

/// The store `builder` makes on `client`. A cluster that cannot place the replicas for
/// now (a node busy or rejoining, or a cluster just formed whose peers are not all known
/// to its leader yet: a retryable error) is asked again for up to 30 seconds.
#[allow(dead_code)] // not every test file builds stores this way
pub async fn build(builder: esrc_nats::NatsStoreBuilder, client: async_nats::Client) -> NatsStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match builder.clone().build(client.clone()).await {
            Err(error) if error.is_retryable() && std::time::Instant::now() < deadline => {
                eprintln!("building a NATS store: {error}; asking again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            built => return built.expect("build a NATS store"),
        }
    }
}
pub mod cluster;

/// The conformance suite's factory: a store of its own per call on `nats`, every one
/// destroyed when the case ends.
pub struct Stores {
    nats: Nats,
    made: Mutex<Vec<NatsStore>>,
}

impl Stores {
    pub fn new(nats: Nats) -> Self {
        Self {
            nats,
            made: Mutex::default(),
        }
    }
}

impl StoreFactory for Stores {
    type Store = NatsStore;

    async fn store(&self) -> NatsStore {
        let store = self.nats.store().await;
        self.made.lock().unwrap().push(store.clone());
        store
    }

    fn capabilities(&self) -> Capabilities {
        // JetStream gives a message (or an atomic batch) its sequence when it commits,
        // on one server or a cluster: positions become visible in order, so no append
        // can be pending below another.
        Capabilities::all().without_pending_appends()
    }

    async fn remove_namespace(&self, store: &NatsStore) -> Result<(), esrc_core::Error> {
        store.destroy().await
    }

    async fn cleanup(&self) {
        let stores = std::mem::take(&mut *self.made.lock().unwrap());
        for store in stores {
            if let Err(error) = store.destroy().await {
                eprintln!("cleanup of stream {} failed: {error}", store.stream_name());
            }
        }
    }
}
