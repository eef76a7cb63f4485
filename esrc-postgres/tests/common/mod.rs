//! Reaching a real PostgreSQL: `ESRC_POSTGRES_URL`, else a testcontainers container where a
//! Docker daemon answers, else a `skipped:` line (or a failure with
//! `ESRC_REQUIRE_BACKENDS=1`).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use esrc_conformance::backend_unavailable;
use esrc_postgres::PgStore;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use uuid::Uuid;

/// A reachable server; keeps its container (if any) alive.
pub struct Postgres {
    pub url: String,
    _container: Option<ContainerAsync<GenericImage>>,
}

pub async fn postgres() -> Option<Postgres> {
    if let Ok(url) = std::env::var("ESRC_POSTGRES_URL") {
        return Some(Postgres {
            url,
            _container: None,
        });
    }
    match start_container().await {
        Ok(postgres) => Some(postgres),
        Err(why) => backend_unavailable(&format!(
            "ESRC_POSTGRES_URL is not set and no PostgreSQL container could start ({why})"
        )),
    }
}

async fn start_container() -> Result<Postgres, String> {
    let container = GenericImage::new("postgres", "15-alpine")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let host = container.get_host().await.map_err(|e| e.to_string())?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("postgres://postgres@{host}:{port}/postgres");
    // The image restarts the server once after initdb: wait until it really answers.
    for _ in 0..60 {
        if PgPool::connect(&url).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Postgres {
        url,
        _container: Some(container),
    })
}

impl Postgres {
    /// A pool whose connections carry `application_name`, so a test can find them.
    pub async fn pool(&self, application_name: &str) -> PgPool {
        let options: PgConnectOptions = self.url.parse().expect("a valid ESRC_POSTGRES_URL");
        PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.application_name(application_name))
            .await
            .expect("connect to PostgreSQL")
    }

    /// A migrated store in a new schema.
    pub async fn store(&self) -> PgStore {
        let schema = fresh_schema();
        let pool = self.pool(&schema).await;
        let store = PgStore::builder()
            .schema(schema)
            .poll_interval(Duration::from_millis(100))
            .build(pool)
            .expect("a valid schema");
        store.migrate().await.expect("migrate");
        store
    }
}

pub fn fresh_schema() -> String {
    format!("test_{}", Uuid::new_v4().simple())
}
