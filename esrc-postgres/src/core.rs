//! The ground floor: the store (pool, statements, options, wake-up signals, the cache of
//! stream tails), connecting, and the low-level round trips that appends, reads,
//! subscriptions, snapshots and checkpoints stand on. It imports none of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::backend::{Backoff, TailCache};
use esrc_core::{Envelope, Error, Version};
use futures::{Stream, StreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool, Row as _};
use uuid::Uuid;

use crate::codec::{envelope, to_u64};
use crate::config::PgStoreBuilder;
use crate::error::{
    BACKEND, ClientError, PgError, backend, backend_retryable, connect_hint, is_not_migrated,
};
use crate::notify::Signals;
use crate::schema::{PAGE_SETTINGS, Sql, lock_key};

/// What the store's spans say it is (`esrc_core::trace`).
pub(crate) const SYSTEM: esrc_core::backend::System =
    esrc_core::backend::System::Database("postgresql");

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

    /// One page of a group's events: positions after `after` and below `until`, at most
    /// [`page_size`](PgStoreBuilder::page_size) rows, each with its position (or the
    /// error of a row whose position cannot be read; see [`envelope`] for the others).
    /// A `long` read (more pages likely to follow) runs in a transaction with
    /// [`PAGE_SETTINGS`]; a short one is one round trip.
    pub(crate) async fn page(
        &self,
        after: i64,
        until: i64,
        categories: &[String],
        long: bool,
    ) -> Result<Page, Error> {
        let query = self.page_query(after, categories);
        let rows = if long {
            let mut transaction = self.page_transaction().await?;
            query.fetch_all(&mut *transaction).await
        } else {
            query.fetch_all(&self.inner.pool).await
        };
        let rows = self.explain(rows.map_err(backend)).await?;
        let mut full = rows.len() as i64 == self.page_size();
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let position = row_position(row)?;
            if position >= until {
                full = false;
                break;
            }
            events.push((position, envelope(row)));
        }
        Ok(Page { events, full })
    }

    /// The statement of one page: the group's events after `after`, at most
    /// [`page_size`](PgStoreBuilder::page_size), in position order.
    pub(crate) fn page_query<'q>(
        &self,
        after: i64,
        categories: &'q [String],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.page)))
            .bind(after)
            .bind(categories)
            .bind(self.page_size())
    }

    /// A transaction for a long page read, with [`PAGE_SETTINGS`] (it ends when dropped).
    pub(crate) async fn page_transaction(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, Error> {
        let mut transaction = self.inner.pool.begin().await.map_err(backend)?;
        sqlx::raw_sql(PAGE_SETTINGS)
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
        Ok(transaction)
    }

    /// How far readers may read now: one statement (see `horizon` in `schema.rs`). Read
    /// the rows below [`Reach::limit`] with a later statement.
    pub(crate) async fn reach(&self) -> Result<Reach, Error> {
        let found = sqlx::query_as(AssertSqlSafe(Arc::clone(&self.inner.sql.horizon)))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(backend);
        let (horizon, head, blocker): (i64, Option<i64>, Option<i64>) = self.explain(found).await?;
        Ok(match head {
            Some(head) if head >= horizon => Reach {
                limit: horizon,
                held_by: Some(blocker.unwrap_or_default()),
            },
            Some(head) => Reach {
                limit: head + 1,
                held_by: None,
            },
            None => Reach {
                limit: horizon,
                held_by: None,
            },
        })
    }

    /// The exclusive upper bound of a replay: above every event committed when it was
    /// called, and below the horizon, so that no event can still appear beneath it.
    ///
    /// When an append still in flight holds the horizon below committed events, the
    /// replay waits for it to finish (polling, with backoff up to the poll interval),
    /// warning after [`held_warning`](PgStoreBuilder::held_warning): returning those
    /// events now could let the append's events land behind them.
    pub(crate) async fn replay_limit(&self) -> Result<i64, Error> {
        let mut waits = Backoff::new(Duration::from_millis(2), self.inner.config.poll_interval);
        let mut watch = HeldWatch::default();
        loop {
            let reach = self.reach().await?;
            if reach.held_by.is_none() {
                return Ok(reach.limit);
            }
            watch.observe(self, &reach).await;
            tokio::time::sleep(waits.pause()).await;
        }
    }

    /// The session whose open append holds readers back, if one does: committed events
    /// wait behind an append that has not committed yet (see
    /// [`held_warning`](PgStoreBuilder::held_warning)).
    pub async fn held_back_by(&self) -> Result<Option<Blocker>, Error> {
        match self.reach().await?.held_by {
            Some(xid) => self.blocker(xid).await,
            None => Ok(None),
        }
    }

    async fn blocker(&self, xid: i64) -> Result<Option<Blocker>, Error> {
        let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.blocker)))
            .bind(xid)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seconds = |column: usize| -> Result<Option<Duration>, Error> {
            let age: Option<f64> = row.try_get(column).map_err(backend)?;
            Ok(age.map(|age| Duration::from_secs_f64(age.max(0.0))))
        };
        Ok(Some(Blocker {
            pid: row.try_get(0).map_err(backend)?,
            transaction_age: seconds(1)?.unwrap_or_default(),
            statement_age: seconds(2)?,
            state: row.try_get(3).map_err(backend)?,
            application_name: row.try_get(4).map_err(backend)?,
        }))
    }

    /// The keys of the transaction-scoped advisory locks on `tags` in this store's
    /// schema, sorted (every writer takes its locks in this order, so that none waits in
    /// a cycle): appends of tagged events hold them shared, conditional appends whose
    /// condition names a tag hold its lock exclusively (see `decide.rs`).
    pub(crate) fn tag_keys(&self, tags: &[&str]) -> Vec<i64> {
        let mut keys: Vec<i64> = tags
            .iter()
            .map(|tag| lock_key(&self.inner.sql.schema, tag))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    pub(crate) fn page_size(&self) -> i64 {
        i64::from(self.inner.config.page_size)
    }
}

/// The position of a page's row, read before the rest of it is decoded (a page goes on
/// after the last position it read).
pub(crate) fn row_position(row: &PgRow) -> Result<i64, Error> {
    row.try_get_unchecked(3).map_err(backend)
}

/// A page of events: each row's position and what it decodes to.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) events: Vec<(i64, Result<Envelope, Error>)>,
    /// Whether the page is full: more may follow at once.
    pub(crate) full: bool,
}

/// How far a reader may read: what one horizon statement found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reach {
    /// Rows below this position are final.
    pub(crate) limit: i64,
    /// When committed events wait above the limit: the id of the transaction holding
    /// them (0 when it ended meanwhile).
    pub(crate) held_by: Option<i64>,
}

/// A reader's watch over what holds it back: a warning once one transaction has held
/// it for [`held_warning`](PgStoreBuilder::held_warning), repeated at that interval.
#[derive(Debug, Default)]
pub(crate) struct HeldWatch {
    /// The transaction holding the reader back, and since when (or since the last
    /// warning).
    held: Option<(i64, tokio::time::Instant)>,
}

impl HeldWatch {
    pub(crate) async fn observe(&mut self, store: &PgStore, reach: &Reach) {
        let now = tokio::time::Instant::now();
        let xid = match (reach.held_by, self.held) {
            (None | Some(0), _) => {
                self.held = None;
                return;
            }
            (Some(xid), Some((same, since))) if xid == same => {
                if now.duration_since(since) < store.inner.config.held_warning {
                    return;
                }
                xid
            }
            (Some(xid), _) => {
                self.held = Some((xid, now));
                return;
            }
        };
        self.held = Some((xid, now));
        match store.blocker(xid).await {
            Ok(Some(blocker)) => tracing::warn!(
                schema = %store.schema(),
                %blocker,
                "esrc: readers wait for an append whose transaction is still open"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(error = %esrc_core::Chain(&error), "esrc: cannot name what holds readers back")
            }
        }
    }
}

/// The session whose open append holds readers back: what
/// [`PgStore::held_back_by`] returns and the warning after
/// [`held_warning`](PgStoreBuilder::held_warning) names.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Blocker {
    /// The server process of the session (`pg_stat_activity.pid`).
    pub pid: i32,
    /// How long its transaction has been open.
    pub transaction_age: Duration,
    /// How long ago its last statement started, if the server says.
    pub statement_age: Option<Duration>,
    /// Its state (`active`, `idle in transaction`…).
    pub state: String,
    /// Its `application_name`.
    pub application_name: String,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} ({}, application `{}`), transaction open for {:.1?}",
            self.pid, self.state, self.application_name, self.transaction_age
        )?;
        if let Some(age) = self.statement_age {
            write!(f, ", last statement started {age:.1?} ago")?;
        }
        Ok(())
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
            Error::invalid_config(format!(
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
                        source: ClientError::new(source),
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
