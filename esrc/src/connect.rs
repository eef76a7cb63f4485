//! Opening a store named by a URL: [`connect`] and [`connect_with`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use esrc_core::{AnyStore, Error};

/// Opens the store `url` names and returns it as an [`AnyStore`], so that the store can
/// be chosen by configuration.
///
/// | URL | store | feature |
/// | --- | --- | --- |
/// | `memory:` | a new, empty [`MemoryStore`](crate::memory::MemoryStore) | `memory` (default) |
/// | `postgres://…`, `postgresql://…` | [`PgStore`](crate::postgres::PgStore) | `postgres` |
/// | `nats://…` (`tls://…`, `ws://…`, `wss://…`) | [`NatsStore`](crate::nats::NatsStore) | `nats` |
///
/// The query string carries the store's options; a PostgreSQL URL also keeps the
/// connection parameters sqlx reads (`sslmode`, `sslrootcert`, `options`, …), which are
/// passed on. An unknown option is refused, never ignored.
///
/// | option | store | meaning (the store builder's method) | default |
/// | --- | --- | --- | --- |
/// | `schema` | PostgreSQL | the schema holding esrc's tables (`schema`) | `esrc` |
/// | `migrate` | PostgreSQL | `true`: create or upgrade the tables on connect ([`PgStore::migrate`](crate::postgres::PgStore::migrate)) | `false` |
/// | `max_connections` | PostgreSQL | the pool's size (`max_connections`) | 10 |
/// | `page_size` | PostgreSQL | rows per read query (`page_size`) | 1000 |
/// | `poll_interval` | PostgreSQL | how often subscribers poll (`poll_interval`) | `250ms` |
/// | `notify` | PostgreSQL | `false`: no `NOTIFY` on append (`notify`) | `true` |
/// | `stream` | NATS | the JetStream stream (`stream`) | `ESRC` |
/// | `prefix` | NATS | the subject prefix (`prefix`) | `esrc` |
/// | `replicas` | NATS | the stream's replicas (`replicas`) | 1 |
/// | `storage` | NATS | `file` or `memory` (`storage`) | `file` |
/// | `duplicate_window` | NATS | how long retries are recognised (`duplicate_window`) | `2m` |
/// | `max_age` | NATS | how long events are kept (`max_age`) | forever |
/// | `request_timeout` | NATS | `request_timeout` | `5s` |
/// | `read_timeout` | NATS | `read_timeout` | `10s` |
/// | `connect_timeout` | PostgreSQL, NATS | how long connecting may take (`connect_timeout`) | `5s` PostgreSQL, `10s` NATS |
/// | `append_deadline` | NATS | `append_deadline` | `30s` |
///
/// Durations are written with a unit: `500ms`, `5s`, `2m`, `1h`. A NATS URL may list
/// several servers of a cluster, separated by commas:
/// `nats://n1:4222,n2:4222,n3:4222?replicas=3`.
///
/// An unknown scheme or option, a malformed value, or a scheme whose feature is off is
/// [`Error::InvalidConfig`], which names the feature to enable; connecting fails as the
/// store's own `connect` does. Error messages never repeat the URL, which may hold a
/// password.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), esrc::Error> {
/// let store = esrc::connect("memory:").await?;
///
/// let error = esrc::connect("mongodb://localhost").await.unwrap_err();
/// assert!(error.to_string().contains("unknown store scheme `mongodb`"));
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<AnyStore, Error> {
    connect_with(url, std::iter::empty::<(&str, &str)>()).await
}

/// [`connect`], with defaults for the URL's options: an option given in the URL wins over
/// the one given here. Lets a program pick its own schema or stream name while its users
/// pass plain URLs. A default the URL's store does not read is ignored (a program may give
/// defaults for every store it supports); an unknown option in the URL is refused.
///
/// ```no_run
/// # async fn run() -> Result<(), esrc::Error> {
/// let url = std::env::var("STORE_URL").unwrap_or_else(|_| "memory:".into());
/// let store = esrc::connect_with(&url, [("schema", "billing"), ("migrate", "true")]).await?;
/// # Ok(()) }
/// ```
pub async fn connect_with<K, V>(
    url: &str,
    defaults: impl IntoIterator<Item = (K, V)>,
) -> Result<AnyStore, Error>
where
    K: Into<String>,
    V: Into<String>,
{
    // A bare word is a scheme too, so that `memory` works as well as `memory:`.
    let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut options = Options {
        scheme: scheme.to_ascii_lowercase(),
        values: defaults
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect(),
        from_url: BTreeSet::new(),
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        options.from_url.insert(key.to_string());
        options.values.insert(key.into_owned(), value.into_owned());
    }
    match options.scheme.as_str() {
        "memory" => open_memory(options),
        "postgres" | "postgresql" => open_postgres(base, options).await,
        "nats" | "tls" | "ws" | "wss" => open_nats(base, options).await,
        other => Err(invalid(format!(
            "unknown store scheme `{other}`: use `memory:`, `postgres://…` or `nats://…`"
        ))),
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        reason: reason.into(),
    }
}

/// A scheme whose store was left out at build time.
#[cfg_attr(
    all(feature = "memory", feature = "postgres", feature = "nats"),
    allow(dead_code)
)]
fn feature_off(scheme: &str, feature: &str) -> Error {
    invalid(format!(
        "`{scheme}` URLs need esrc's `{feature}` feature: `cargo add esrc --features {feature}`"
    ))
}

/// The options of one URL, taken one by one; what is left at the end is refused (or, for
/// PostgreSQL, passed on to the server).
struct Options {
    scheme: String,
    values: BTreeMap<String, String>,
    /// The keys given in the URL, as opposed to defaults.
    from_url: BTreeSet<String>,
}

// With neither server store, only `take` and `finish` are used.
#[cfg_attr(not(any(feature = "postgres", feature = "nats")), allow(dead_code))]
impl Options {
    fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<Option<T>, Error> {
        self.take(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| invalid(format!("option `{key}={value}`: expected {what}")))
            })
            .transpose()
    }

    fn flag(&mut self, key: &str) -> Result<Option<bool>, Error> {
        self.parsed(key, "`true` or `false`")
    }

    fn duration(&mut self, key: &str) -> Result<Option<Duration>, Error> {
        self.take(key)
            .map(|value| {
                parse_duration(&value).ok_or_else(|| {
                    invalid(format!(
                        "option `{key}={value}`: expected a duration such as `500ms`, `5s`, `2m` or `1h`"
                    ))
                })
            })
            .transpose()
    }

    /// Refuses the options of the URL that nobody took.
    fn finish(self) -> Result<(), Error> {
        match self.values.keys().find(|key| self.from_url.contains(*key)) {
            None => Ok(()),
            Some(key) => Err(invalid(format!(
                "unknown option `{key}` for a `{}` store (see `esrc::connect` for the options)",
                self.scheme
            ))),
        }
    }
}

/// `500ms`, `5s`, `2m`, `1h`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(feature = "memory")]
fn open_memory(options: Options) -> Result<AnyStore, Error> {
    options.finish()?;
    Ok(std::sync::Arc::new(esrc_memory::MemoryStore::new()))
}

#[cfg(not(feature = "memory"))]
fn open_memory(_: Options) -> Result<AnyStore, Error> {
    Err(feature_off("memory:", "memory"))
}

/// The connection parameters of a PostgreSQL URL that sqlx reads.
#[cfg(feature = "postgres")]
const POSTGRES_PARAMETERS: &[&str] = &[
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

#[cfg(feature = "postgres")]
async fn open_postgres(base: &str, mut options: Options) -> Result<AnyStore, Error> {
    let mut builder = esrc_postgres::PgStore::builder();
    if let Some(schema) = options.take("schema") {
        builder = builder.schema(schema);
    }
    let migrate = options.flag("migrate")?.unwrap_or(false);
    if let Some(connections) = options.parsed("max_connections", "a number of connections")? {
        builder = builder.max_connections(connections);
    }
    if let Some(rows) = options.parsed("page_size", "a number of rows")? {
        builder = builder.page_size(rows);
    }
    if let Some(interval) = options.duration("poll_interval")? {
        builder = builder.poll_interval(interval);
    }
    if let Some(notify) = options.flag("notify")? {
        builder = builder.notify(notify);
    }
    if let Some(timeout) = options.duration("connect_timeout")? {
        builder = builder.connect_timeout(timeout);
    }
    // The connection parameters sqlx reads go on to it; anything else is refused, so
    // that a misspelt option is an error rather than silently ignored.
    let passed_on: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            POSTGRES_PARAMETERS
                .iter()
                .filter_map(|key| Some((*key, options.take(key)?))),
        )
        .finish();
    options.finish()?;
    let url = if passed_on.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{passed_on}")
    };
    let store = builder.connect(&url).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(std::sync::Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: Options) -> Result<AnyStore, Error> {
    Err(feature_off("postgres://", "postgres"))
}

#[cfg(feature = "nats")]
async fn open_nats(base: &str, mut options: Options) -> Result<AnyStore, Error> {
    use esrc_nats::NatsStoreBuilder;
    use esrc_nats::async_nats::jetstream::stream::StorageType;

    let mut builder = esrc_nats::NatsStore::builder();
    if let Some(stream) = options.take("stream") {
        builder = builder.stream(stream);
    }
    if let Some(prefix) = options.take("prefix") {
        builder = builder.prefix(prefix);
    }
    if let Some(replicas) = options.parsed("replicas", "a number of replicas")? {
        builder = builder.replicas(replicas);
    }
    match options.take("storage").as_deref() {
        None => {}
        Some("file") => builder = builder.storage(StorageType::File),
        Some("memory") => builder = builder.storage(StorageType::Memory),
        Some(other) => {
            return Err(invalid(format!(
                "option `storage={other}`: expected `file` or `memory`"
            )));
        }
    }
    type Setter = fn(NatsStoreBuilder, Duration) -> NatsStoreBuilder;
    let durations: [(&str, Setter); 6] = [
        ("duplicate_window", NatsStoreBuilder::duplicate_window),
        ("max_age", NatsStoreBuilder::max_age),
        ("request_timeout", NatsStoreBuilder::request_timeout),
        ("read_timeout", NatsStoreBuilder::read_timeout),
        ("connect_timeout", NatsStoreBuilder::connect_timeout),
        ("append_deadline", NatsStoreBuilder::append_deadline),
    ];
    for (key, set) in durations {
        if let Some(duration) = options.duration(key)? {
            builder = set(builder, duration);
        }
    }
    options.finish()?;
    Ok(std::sync::Arc::new(builder.connect(base).await?))
}

#[cfg(not(feature = "nats"))]
async fn open_nats(_: &str, _: Options) -> Result<AnyStore, Error> {
    Err(feature_off("nats://", "nats"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["5", "s", "", "5 s", "-1s", "1.5s", "5d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
