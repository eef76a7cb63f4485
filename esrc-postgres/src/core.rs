//! The ground floor: the store (pool, statements, options, wake-up signals, the cache of
//! stream tails), connecting, and the low-level round trips that appends, reads,
//! subscriptions, snapshots and checkpoints stand on. It imports none of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::backend::{Backoff, TailCache, invalid_config};
use esrc_core::{Envelope, Error, Version};
use futures::{Stream, StreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use crate::codec::{envelope, to_u64};
use crate::config::PgStoreBuilder;
use crate::error::{BACKEND, PgError, backend, backend_retryable, connect_hint, is_not_migrated};
use crate::notify::Signals;
use crate::schema::Sql;

/// A PostgreSQL event store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
    pub(crate) config: PgStoreBuilder,
    pub(crate) signals: Signals,
    /// The last event this store appended to recently used streams: an append expecting
    /// that very event needs no guard (see `store.rs`).
    pub(crate) tails: TailCache,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.sql.schema)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A builder for the schema, pool and subscription options.
    pub fn builder() -> PgStoreBuilder {
        PgStoreBuilder::default()
    }

    /// Connects to `url` with the default options (schema `esrc`). Run
    /// [`PgStore::migrate`] once before the first use: it creates the store's tables (and
    /// is harmless when they exist); `esrc::connect` does it with `?migrate=true`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// A store on an existing pool with the default options (schema `esrc`).
    pub fn new(pool: PgPool) -> Result<Self, Error> {
        Self::builder().build(pool)
    }

    pub(crate) fn from_parts(pool: PgPool, sql: Arc<Sql>, config: PgStoreBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                sql,
                config,
                signals: Signals::default(),
                tails: TailCache::default(),
            }),
        }
    }

    /// Creates the schema and its tables, or upgrades them. Idempotent, and safe when
    /// several processes run it at once (it takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), Error> {
        self.inner.sql.migrate(&self.inner.pool).await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.sql.schema
    }

    /// The stream's version, read through `executor` (the connection an append holds, so
    /// that a pool of one connection never waits on itself).
    pub(crate) async fn stream_version<'e>(
        &self,
        executor: impl sqlx::PgExecutor<'e>,
        category: &str,
        id: Uuid,
    ) -> Result<Version, Error> {
        let version: i64 =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.stream_version)))
                .bind(category)
                .bind(id)
                .fetch_one(executor)
                .await
                .map_err(backend)?;
        Ok(Version(to_u64("version", version)?))
    }

    /// Fetches one page of envelopes with a prepared read statement.
    /// `result`, its [`PgError::NotMigrated`] completed with the other schemas of the
    /// database that hold esrc's tables (a `schema` option forgotten or misspelt). Only
    /// the error path asks the server.
    pub(crate) async fn explain<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        let Err(error) = result else {
            return result;
        };
        if !is_not_migrated(&error) {
            return Err(error);
        }
        let elsewhere: Vec<String> = sqlx::query_scalar(
            "SELECT e.table_schema::text FROM information_schema.tables e
             JOIN information_schema.tables c
               ON c.table_schema = e.table_schema AND c.table_name = 'checkpoints'
             WHERE e.table_name = 'events' AND e.table_schema <> $1
             ORDER BY 1",
        )
        .bind(&self.inner.sql.schema)
        .fetch_all(&self.inner.pool)
        .await
        .unwrap_or_default();
        if elsewhere.is_empty() {
            return Err(error);
        }
        let Error::Backend { source, .. } = &error else {
            return Err(error);
        };
        let Some(PgError::NotMigrated { message, .. }) = source.downcast_ref::<PgError>() else {
            return Err(error);
        };
        let message = message.clone();
        Err(Error::backend(
            BACKEND,
            false,
            PgError::NotMigrated { message, elsewhere },
        ))
    }

    pub(crate) async fn page(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<Envelope>, Error> {
        let rows = query.fetch_all(&self.inner.pool).await.map_err(backend);
        self.explain(rows).await?.iter().map(envelope).collect()
    }

    /// The exclusive upper bound of a replay: above every event committed when it was
    /// called, and below the horizon, so that no event can still appear beneath it.
    ///
    /// When an older transaction still holds the horizon below committed events, the
    /// replay waits for it to finish (polling, with backoff up to the poll interval):
    /// returning those events now could let a later commit land behind them.
    pub(crate) async fn replay_limit(&self) -> Result<i64, Error> {
        let mut waits = Backoff::new(Duration::from_millis(2), self.inner.config.poll_interval);
        loop {
            let found = sqlx::query_as(AssertSqlSafe(Arc::clone(&self.inner.sql.horizon)))
                .fetch_one(&self.inner.pool)
                .await
                .map_err(backend);
            let (horizon, head): (i64, Option<i64>) = self.explain(found).await?;
            match head {
                None => return Ok(horizon),
                Some(head) if head < horizon => return Ok(head + 1),
                Some(_) => {
                    let wait = waits.pause();
                    tracing::debug!(?wait, "esrc: an open transaction holds the horizon back");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    pub(crate) fn page_size(&self) -> i64 {
        i64::from(self.inner.config.page_size)
    }
}

impl PgStoreBuilder {
    /// Connects a new pool to `url` and builds the store. Call
    /// [`PgStore::migrate`] once before using it (it creates the store's tables).
    ///
    /// A server that cannot be reached fails within the
    /// [`connect_timeout`](Self::connect_timeout), with an error that names the host,
    /// port and database tried and why (refused, unknown host, authentication…).
    pub async fn connect(self, url: &str) -> Result<PgStore, Error> {
        let url = self.url_with_parameters(url);
        // sqlx's message says what is wrong without repeating the URL (which may hold a
        // password).
        let options: PgConnectOptions = url.parse().map_err(|error: sqlx::Error| {
            invalid_config(format!(
                "not a PostgreSQL URL (postgres://user:password@host:port/database): {error}"
            ))
        })?;
        let options = options.application_name("esrc");
        let tried = || {
            (
                options.get_host().to_owned(),
                options.get_port(),
                options.get_database().unwrap_or("postgres").to_owned(),
            )
        };
        // One connection first, so that its error (not a pool timeout) is what a failure
        // says.
        match tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&options)).await
        {
            Ok(Ok(probe)) => {
                let _ = probe.close().await;
            }
            Ok(Err(source)) => {
                let retryable = backend_retryable(&source);
                let (host, port, database) = tried();
                return Err(Error::backend(
                    BACKEND,
                    retryable,
                    PgError::Connect {
                        hint: connect_hint(&source),
                        host,
                        port,
                        database,
                        source,
                    },
                ));
            }
            Err(_) => {
                let (host, port, database) = tried();
                return Err(Error::backend(
                    BACKEND,
                    true,
                    PgError::ConnectTimeout {
                        host,
                        port,
                        database,
                        timeout: self.connect_timeout,
                    },
                ));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect_with(options)
            .await
            .map_err(backend)?;
        let migrate = self.migrate;
        let store = self.build(pool)?;
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Builds the store on an existing pool.
    pub fn build(self, pool: PgPool) -> Result<PgStore, Error> {
        let sql = self.sql()?;
        Ok(PgStore::from_parts(pool, sql, self))
    }
}

/// What `decode` makes of each of `rows`: a row that does not decode is its error and
/// the stream goes on (the data stays readable); a failed fetch is the stream's last
/// item.
pub(crate) fn decoded<'a, T: Send + 'a>(
    store: &'a PgStore,
    rows: impl Stream<Item = Result<PgRow, sqlx::Error>> + Send + 'a,
    decode: impl Fn(&PgRow) -> Result<T, Error> + Send + 'a,
) -> impl Stream<Item = Result<T, Error>> + Send + 'a {
    async_stream::stream! {
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => yield decode(&row),
                Err(error) => {
                    yield store.explain(Err(backend(error))).await;
                    return;
                }
            }
        }
    }
}
