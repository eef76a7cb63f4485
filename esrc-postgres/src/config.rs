//! Options of a [`PgStore`](crate::PgStore): the builder, its setters and its options by
//! name. Connecting is on the ground floor (`core.rs`).

use std::sync::Arc;
use std::time::Duration;

use esrc_core::Error;
use esrc_core::backend::{
    StoreOption, StoreOptions, parse_duration, parse_flag, parse_option, unknown_option,
    validate_name,
};

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
///
/// Its options by name ([`StoreOptions`]: what `esrc::connect` reads from a
/// `postgres://` URL's query string, and the `esrc` command too):
///
/// | option | meaning (the builder's method) | default |
/// | --- | --- | --- |
/// | `schema` | the schema holding esrc's tables ([`schema`](Self::schema)) | `esrc` |
/// | `migrate` | `true`: create or upgrade the tables on connect ([`migrate`](Self::migrate)) | `false` |
/// | `max_connections` | the pool's size ([`max_connections`](Self::max_connections)) | 10 |
/// | `page_size` | rows per read of a subscription or a replay of categories ([`page_size`](Self::page_size)) | 10000 |
/// | `poll_interval` | how often subscribers poll ([`poll_interval`](Self::poll_interval)) | `250ms` |
/// | `held_warning` | how long readers wait on an open append before a warning ([`held_warning`](Self::held_warning)) | `10s` |
/// | `notify` | `false`: no `NOTIFY` after appends ([`notify`](Self::notify)) | `true` |
/// | `notify_interval` | the shortest time between two `NOTIFY`s ([`notify_interval`](Self::notify_interval)) | `2ms` |
/// | `connect_timeout` | how long connecting may take ([`connect_timeout`](Self::connect_timeout)) | `5s` |
/// | `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `statement-cache-capacity`, `host`, `hostaddr`, `port`, `dbname`, `user`, `password`, `application_name`, `options` | connection parameters, passed on to the server's URL as sqlx reads them | — |
///
/// Durations are written with a unit: `500ms`, `5s`, `2m`, `1h`, `7d`; `connect_timeout` also
/// takes libpq's whole seconds (`connect_timeout=5`).
#[derive(Clone, Debug)]
pub struct PgStoreBuilder {
    pub(crate) schema: String,
    pub(crate) page_size: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) held_warning: Duration,
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    /// `None`: no `NOTIFY` at all.
    pub(crate) notify_interval: Option<Duration>,
    /// Whether `connect` runs `migrate`.
    pub(crate) migrate: bool,
    /// Connection parameters given by name, added to the URL `connect` is given.
    pub(crate) parameters: Vec<(String, String)>,
}

/// The connection parameters of a PostgreSQL URL that sqlx reads: taken by name and
/// passed on.
const CONNECTION_PARAMETERS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The shortest time between two `NOTIFY`s, unless set otherwise.
const DEFAULT_NOTIFY_INTERVAL: Duration = Duration::from_millis(2);

impl Default for PgStoreBuilder {
    fn default() -> Self {
        Self {
            schema: "esrc".to_owned(),
            page_size: 10_000,
            poll_interval: Duration::from_millis(250),
            held_warning: Duration::from_secs(10),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            notify_interval: Some(DEFAULT_NOTIFY_INTERVAL),
            migrate: false,
            parameters: Vec::new(),
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

    /// How many rows a subscription or a replay of categories reads per query (default
    /// 10,000). Each page is its own statement, so a long replay holds no statement (and
    /// no snapshot, which would keep vacuum from cleaning up) open for the whole history.
    /// Smaller pages cost replays speed: the server prepares each page whole before
    /// sending it (`esrc-bench` W6 measured 0.50 of the raw reader with pages of 1,000,
    /// 0.68 with 10,000).
    #[must_use]
    pub fn page_size(mut self, rows: u32) -> Self {
        self.page_size = rows.max(1);
        self
    }

    /// How often a live subscription reads the table when no notification came (default
    /// 250 ms): the fallback for a missed `NOTIFY`, and for the horizon moving when an
    /// append's transaction ends.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a reader may wait on one open append before it logs a warning (default
    /// 10 s). Readers never pass an append that has not committed (see the crate's docs,
    /// "Positions"); an append in a transaction left open — a `publish_in` whose caller
    /// has not committed — holds them back. The warning names the session holding them
    /// (process id, how long its transaction has been open, its last statement's start
    /// and state), as [`PgStore::held_back_by`](crate::PgStore::held_back_by) does, and
    /// repeats every such interval while it lasts. Transactions that never appended
    /// through esrc, in this database or another, hold no reader back.
    #[must_use]
    pub fn held_warning(mut self, after: Duration) -> Self {
        self.held_warning = after;
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

    /// Whether [`connect`](Self::connect) creates or upgrades the store's tables (runs
    /// [`PgStore::migrate`](crate::PgStore::migrate)) once connected (default `false`).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// `url` with the connection parameters given by name added to its query string.
    pub(crate) fn url_with_parameters(&self, url: &str) -> String {
        if self.parameters.is_empty() {
            return url.to_owned();
        }
        let added = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.parameters)
            .finish();
        let joint = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joint}{added}")
    }

    pub(crate) fn sql(&self) -> Result<Arc<Sql>, Error> {
        validate_name(&self.schema)?;
        if self.schema.len() > MAX_SCHEMA_LEN {
            return Err(Error::invalid_name(
                self.schema.clone(),
                "a PostgreSQL schema name is at most 58 bytes long",
            ));
        }
        Ok(Arc::new(Sql::new(&self.schema)))
    }
}

/// The options in the table of [`PgStoreBuilder`]'s docs, then the connection parameters
/// ([`CONNECTION_PARAMETERS`]).
const OPTIONS: &[StoreOption] = &[
    StoreOption {
        name: "schema",
        meaning: "the schema holding esrc's tables",
        default: "esrc",
        example: "orders",
    },
    StoreOption {
        name: "migrate",
        meaning: "create or upgrade the tables on connect",
        default: "false",
        example: "true",
    },
    StoreOption {
        name: "max_connections",
        meaning: "the pool's size",
        default: "10",
        example: "20",
    },
    StoreOption {
        name: "page_size",
        meaning: "rows per read of a subscription or a replay of categories",
        default: "10000",
        example: "500",
    },
    StoreOption {
        name: "poll_interval",
        meaning: "how often subscribers poll",
        default: "250ms",
        example: "100ms",
    },
    StoreOption {
        name: "held_warning",
        meaning: "how long readers wait on an open append before a warning",
        default: "10s",
        example: "30s",
    },
    StoreOption {
        name: "notify",
        meaning: "whether appends send NOTIFY",
        default: "true",
        example: "false",
    },
    StoreOption {
        name: "notify_interval",
        meaning: "the shortest time between two NOTIFYs",
        default: "2ms",
        example: "20ms",
    },
    StoreOption {
        name: "connect_timeout",
        meaning: "how long connecting may take",
        default: "5s",
        example: "10s",
    },
    StoreOption {
        name: "sslmode",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "require",
    },
    StoreOption {
        name: "sslrootcert",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "ca.pem",
    },
    StoreOption {
        name: "sslcert",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "client.pem",
    },
    StoreOption {
        name: "sslkey",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "client.key",
    },
    StoreOption {
        name: "statement-cache-capacity",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "100",
    },
    StoreOption {
        name: "host",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "localhost",
    },
    StoreOption {
        name: "hostaddr",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "127.0.0.1",
    },
    StoreOption {
        name: "port",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "5432",
    },
    StoreOption {
        name: "dbname",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "app",
    },
    StoreOption {
        name: "user",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "esrc",
    },
    StoreOption {
        name: "password",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "secret",
    },
    StoreOption {
        name: "application_name",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "esrc",
    },
    StoreOption {
        name: "options",
        meaning: "a connection parameter, passed on to the server's URL",
        default: "",
        example: "-c statement_timeout=5s",
    },
];

impl StoreOptions for PgStoreBuilder {
    const STORE: &'static str = "postgres";
    const OPTIONS: &'static [StoreOption] = OPTIONS;

    fn with_option(self, key: &str, value: &str) -> Result<Self, Error> {
        Ok(match key {
            "schema" => self.schema(value),
            "migrate" => self.migrate(parse_flag(key, value)?),
            "max_connections" => {
                self.max_connections(parse_option(key, value, "a number of connections")?)
            }
            "page_size" => self.page_size(parse_option(key, value, "a number of rows")?),
            "poll_interval" => self.poll_interval(parse_duration(key, value)?),
            "held_warning" => self.held_warning(parse_duration(key, value)?),
            "notify" => self.notify(parse_flag(key, value)?),
            "notify_interval" => self.notify_interval(parse_duration(key, value)?),
            // libpq writes it in whole seconds (`connect_timeout=5`): taken as written.
            "connect_timeout" => match value.parse::<u64>() {
                Ok(seconds) => self.connect_timeout(Duration::from_secs(seconds)),
                Err(_) => self.connect_timeout(parse_duration(key, value)?),
            },
            _ if CONNECTION_PARAMETERS.contains(&key) => {
                let mut builder = self;
                builder.parameters.retain(|(given, _)| given != key);
                builder.parameters.push((key.to_owned(), value.to_owned()));
                builder
            }
            _ => return Err(unknown_option::<Self>(key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_table_matches_the_parser() {
        esrc_core::backend::check_option_table(PgStoreBuilder::default).unwrap();
        let set = PgStoreBuilder::default()
            .with_options([
                ("schema", "billing"),
                ("sslmode", "require"),
                ("page_size", "7"),
            ])
            .unwrap();
        assert_eq!((set.schema.as_str(), set.page_size), ("billing", 7));
        assert_eq!(
            set.url_with_parameters("postgres://h/db?user=u"),
            "postgres://h/db?user=u&sslmode=require"
        );
        let libpq = PgStoreBuilder::default()
            .with_options([("connect_timeout", "7"), ("poll_interval", "1d")])
            .unwrap();
        assert_eq!(
            libpq.connect_timeout,
            Duration::from_secs(7),
            "libpq's seconds"
        );
        assert_eq!(libpq.poll_interval, Duration::from_secs(86_400));
        let error = PgStoreBuilder::default()
            .with_option("poll_interval", "5")
            .unwrap_err();
        assert!(error.to_string().contains("expected a duration"), "{error}");
    }
}
