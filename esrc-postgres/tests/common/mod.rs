//! Reaching a real PostgreSQL: `ESRC_POSTGRES_URL`, else a testcontainers container where a
//! Docker daemon answers (image `ESRC_POSTGRES_IMAGE`, by default `postgres:15-alpine`),
//! else a `skipped:` line (or a failure with `ESRC_REQUIRE_BACKENDS=1`).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use esrc_conformance::{backend_unavailable, container_image};
use esrc_postgres::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use uuid::Uuid;

/// A reachable server; keeps its container (if any) alive, and drops the schemas it
/// handed out when it goes (at the end of the test, also when the test failed).
pub struct Postgres {
    pub url: String,
    schemas: Mutex<Vec<String>>,
    _container: Option<ContainerAsync<GenericImage>>,
}

pub async fn postgres() -> Option<Postgres> {
    if let Ok(url) = std::env::var("ESRC_POSTGRES_URL") {
        return Some(Postgres {
            url,
            schemas: Mutex::default(),
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
    let (name, tag) = container_image("ESRC_POSTGRES_IMAGE", "postgres:15-alpine");
    let container = GenericImage::new(name, tag)
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
    // The official image restarts the server once after initdb: wait until it really
    // answers.
    for _ in 0..60 {
        if PgPool::connect(&url).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Postgres {
        url,
        schemas: Mutex::default(),
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
        let schema = self.fresh_schema();
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

impl Postgres {
    /// A new schema name, dropped with this handle.
    pub fn fresh_schema(&self) -> String {
        let schema = format!("test_{}", Uuid::new_v4().simple());
        self.schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(schema.clone());
        schema
    }

    /// Drops the schemas handed out so far. It never waits long: it first ends the
    /// test's own sessions (their `application_name` is the schema's name), since one
    /// left idle in a transaction — by a task the test aborted — would hold its locks
    /// until its pool is dropped; and it gives up on a lock after a few seconds.
    pub async fn drop_schemas(&self) {
        let schemas =
            std::mem::take(&mut *self.schemas.lock().unwrap_or_else(PoisonError::into_inner));
        if schemas.is_empty() {
            return;
        }
        let mut connection = match PgConnection::connect(&self.url).await {
            Ok(connection) => connection,
            Err(error) => return eprintln!("cleanup: cannot connect: {error}"),
        };
        let ended = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = ANY($1) AND pid <> pg_backend_pid()",
        )
        .bind(&schemas)
        .execute(&mut connection)
        .await;
        let limited = sqlx::query("SET lock_timeout = '5s'")
            .execute(&mut connection)
            .await;
        if let Some(error) = ended.err().or(limited.err()) {
            eprintln!("cleanup: {error}");
        }
        for schema in schemas {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut connection)
                .await
            {
                eprintln!("cleanup of schema {schema} failed: {error}");
            }
        }
        let _ = connection.close().await;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self
            .schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
        {
            return;
        }
        // Dropped inside the test's runtime, which cannot block on a future: clean up
        // on a thread with a runtime of its own.
        let this = Postgres {
            url: self.url.clone(),
            schemas: Mutex::new(std::mem::take(
                &mut *self.schemas.lock().unwrap_or_else(PoisonError::into_inner),
            )),
            _container: None,
        };
        let cleanup =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(this.drop_schemas()),
                    Err(error) => eprintln!("cleanup: no runtime: {error}"),
                }
            });
        let _ = cleanup.join();
    }
}
