//! Options of a [`PgStore`](crate::PgStore): the builder, its setters and its options by
//! name. Connecting is on the ground floor (`core.rs`).

use std::sync::Arc;
use std::time::Duration;

use esrc_core::Error;
use esrc_core::backend::validate_name;

use crate::schema::Sql;

/// The longest schema name: the notification channel `esrc_<schema>` must fit
/// PostgreSQL's 63-byte identifiers.
const MAX_SCHEMA_LEN: usize = 58;

/// Builds a [`PgStore`](crate::PgStore): schema, pool and subscription settings.
///
/// ```no_run
/// # async fn f() -> Result<(), esrc_core::Error> {
/// use std::time::Duration;
/// let store = esrc_postgres::PgStore::builder()
///     .schema("orders")
///     .max_connections(20)
///     .poll_interval(Duration::from_millis(200))
///     .connect("postgres://postgres@localhost/app")
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgStoreBuilder {
    pub(crate) schema: String,
    pub(crate) page_size: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    /// `None`: no `NOTIFY` at all.
    pub(crate) notify_interval: Option<Duration>,
}

/// The shortest time between two `NOTIFY`s, unless set otherwise.
const DEFAULT_NOTIFY_INTERVAL: Duration = Duration::from_millis(2);

impl Default for PgStoreBuilder {
    fn default() -> Self {
        Self {
            schema: "esrc".to_owned(),
            page_size: 1_000,
            poll_interval: Duration::from_millis(250),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            notify_interval: Some(DEFAULT_NOTIFY_INTERVAL),
        }
    }
}

impl PgStoreBuilder {
    /// The PostgreSQL schema holding the store's tables (default `esrc`). Letters, digits,
    /// `_` and `-`, at most 58 bytes; used quoted, so it is case-sensitive.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How many rows a live subscription reads per query (default 1,000). Replays are one
    /// query whose rows are streamed off the connection, so they hold no page at all.
    #[must_use]
    pub fn page_size(mut self, rows: u32) -> Self {
        self.page_size = rows.max(1);
        self
    }

    /// How often a live subscription reads the table when no notification came (default
    /// 250 ms): the fallback for a missed `NOTIFY`, and for the horizon moving when an
    /// unrelated transaction ends.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The shortest time between two `NOTIFY`s this store sends after its commits
    /// (default 2 ms): commits within it share one notification. Subscribers in other
    /// processes hear of a commit at most this much later (subscribers in the same
    /// process are woken directly). A longer interval costs the server less under a
    /// steady stream of appends.
    #[must_use]
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = Some(interval);
        self
    }

    /// Whether this store sends `NOTIFY` after its commits (default `true`). Without it,
    /// subscribers in other processes see new events on their next poll (see
    /// [`PgStoreBuilder::poll_interval`]); on a machine where the database and the writers
    /// share two cores, appends then ran 5–15% faster (`esrc-bench`, W1 and W4).
    /// Subscribers in the same process are woken either way.
    #[must_use]
    pub fn notify(mut self, enabled: bool) -> Self {
        if !enabled {
            self.notify_interval = None;
        } else if self.notify_interval.is_none() {
            self.notify_interval = Some(DEFAULT_NOTIFY_INTERVAL);
        }
        self
    }

    /// The pool size when the builder creates the pool (default 10).
    #[must_use]
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long [`connect`](Self::connect) and taking a connection from the pool may wait
    /// for the server (default 5 s): an unreachable server fails within it, with the
    /// reason and the host and port that were tried.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub(crate) fn sql(&self) -> Result<Arc<Sql>, Error> {
        validate_name(&self.schema)?;
        if self.schema.len() > MAX_SCHEMA_LEN {
            return Err(Error::InvalidName {
                name: self.schema.clone(),
                reason: "a PostgreSQL schema name is at most 58 bytes long",
            });
        }
        Ok(Arc::new(Sql::new(&self.schema)))
    }
}
