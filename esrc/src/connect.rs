//! Opening a store named by a URL: [`connect`] and [`connect_with`].

use esrc_core::backend::StoreOptions;
use esrc_core::{AnyStore, Error};

/// Opens the store `url` names and returns it as an [`AnyStore`], so that the store can
/// be chosen by configuration.
///
/// | URL | store | feature |
/// | --- | --- | --- |
/// | `memory:` | a new, empty [`MemoryStore`] | `memory` (default) |
/// | `postgres://…`, `postgresql://…` | [`PgStore`] | `postgres` |
/// | `nats://…` (`tls://…`, `ws://…`, `wss://…`) | [`NatsStore`] | `nats` |
///
/// The query string carries the store's options, by the names its builder takes them
/// (each builder's documentation has the table: [`MemoryStoreBuilder`],
/// [`PgStoreBuilder`], [`NatsStoreBuilder`]); a PostgreSQL URL also keeps the connection
/// parameters sqlx reads (`sslmode`, `sslrootcert`, `options`, …), which are passed on.
/// An unknown option is refused, never ignored. For example:
///
/// | URL | opens |
/// | --- | --- |
/// | `postgres://app@db/app?schema=billing&migrate=true` | schema `billing`, its tables created if missing |
/// | `nats://n1:4222,n2:4222,n3:4222?replicas=3&stream=ORDERS` | a three-node cluster, a stream of three replicas |
/// | `memory:?max_batch_events=1000` | refuses what NATS would refuse |
///
/// Durations are written with a unit: `500ms`, `5s`, `2m`, `1h`, `7d`. A NATS URL may list
/// several servers of a cluster, separated by commas.
///
/// [`MemoryStore`]: https://docs.rs/esrc-memory/latest/esrc_memory/struct.MemoryStore.html
/// [`PgStore`]: https://docs.rs/esrc-postgres/latest/esrc_postgres/struct.PgStore.html
/// [`NatsStore`]: https://docs.rs/esrc-nats/latest/esrc_nats/struct.NatsStore.html
/// [`MemoryStoreBuilder`]: https://docs.rs/esrc-memory/latest/esrc_memory/struct.MemoryStoreBuilder.html
/// [`PgStoreBuilder`]: https://docs.rs/esrc-postgres/latest/esrc_postgres/struct.PgStoreBuilder.html
/// [`NatsStoreBuilder`]: https://docs.rs/esrc-nats/latest/esrc_nats/struct.NatsStoreBuilder.html
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
    let scheme = url
        .split_once(':')
        .map_or(url, |(scheme, _)| scheme)
        .to_ascii_lowercase();
    // A scheme is letters, digits, `+`, `-` and `.`, and is followed by `://` (but for
    // `memory:`): anything else is not one, and is never repeated (a typo such as
    // `postgres//user:password@…` or `user:password@host` holds a password).
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && (scheme == "memory" || url[scheme.len()..].starts_with("://"));
    if !is_scheme {
        return Err(Error::invalid_config(
            "not a store URL: it must start with `memory:`, `postgres://…` or `nats://…`",
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let options = Options {
        defaults: defaults
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect(),
        given: form_urlencoded::parse(query.as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect(),
    };
    match scheme.as_str() {
        "memory" => open_memory(options),
        "postgres" | "postgresql" => open_postgres(base, options).await,
        "nats" | "tls" | "ws" | "wss" => open_nats(base, options).await,
        other => Err(Error::invalid_config(format!(
            "unknown store scheme `{other}`: use `memory:`, `postgres://…` or `nats://…`"
        ))),
    }
}

/// A scheme whose store was left out at build time.
#[cfg_attr(
    all(feature = "memory", feature = "postgres", feature = "nats"),
    allow(dead_code)
)]
fn feature_off(scheme: &str, feature: &str) -> Error {
    Error::invalid_config(format!(
        "`{scheme}` URLs need esrc's `{feature}` feature: `cargo add esrc --features {feature}`"
    ))
}

/// The options of one URL, and the program's defaults.
#[cfg_attr(
    not(any(feature = "memory", feature = "postgres", feature = "nats")),
    allow(dead_code)
)]
struct Options {
    defaults: Vec<(String, String)>,
    given: Vec<(String, String)>,
}

#[cfg_attr(
    not(any(feature = "memory", feature = "postgres", feature = "nats")),
    allow(dead_code)
)]
impl Options {
    /// Sets the defaults the builder takes (a default for another store is ignored), then
    /// every option of the URL (one the builder does not take is refused).
    fn apply<B: StoreOptions>(self, builder: B) -> Result<B, Error> {
        let defaults = self.defaults.into_iter().filter(|(key, _)| B::takes(key));
        builder.with_options(defaults)?.with_options(self.given)
    }
}

#[cfg(feature = "memory")]
fn open_memory(options: Options) -> Result<AnyStore, Error> {
    let builder = options.apply(esrc_memory::MemoryStore::builder())?;
    Ok(std::sync::Arc::new(builder.build()))
}

#[cfg(not(feature = "memory"))]
fn open_memory(_: Options) -> Result<AnyStore, Error> {
    Err(feature_off("memory:", "memory"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(base: &str, options: Options) -> Result<AnyStore, Error> {
    let builder = options.apply(esrc_postgres::PgStore::builder())?;
    Ok(std::sync::Arc::new(builder.connect(base).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: Options) -> Result<AnyStore, Error> {
    Err(feature_off("postgres://", "postgres"))
}

#[cfg(feature = "nats")]
async fn open_nats(base: &str, options: Options) -> Result<AnyStore, Error> {
    let builder = options.apply(esrc_nats::NatsStore::builder())?;
    Ok(std::sync::Arc::new(builder.connect(base).await?))
}

#[cfg(not(feature = "nats"))]
async fn open_nats(_: &str, _: Options) -> Result<AnyStore, Error> {
    Err(feature_off("nats://", "nats"))
}
