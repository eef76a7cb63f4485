//! `esrc::connect`: each scheme opens its store with the URL's options; anything it cannot
//! use is refused with a line that says what to write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc::prelude::*;
use esrc::{Error, connect};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
enum NoteEvent {
    Written { text: String },
}

#[derive(Default, Serialize, Deserialize, Versioned)]
struct Note {
    texts: Vec<String>,
}

impl Aggregate for Note {
    type Command = String;
    type Event = NoteEvent;
    type Error = std::convert::Infallible;

    fn process(&self, text: String) -> Result<Vec<NoteEvent>, Self::Error> {
        Ok(vec![NoteEvent::Written { text }])
    }

    fn apply(mut self, event: &NoteEvent) -> Self {
        let NoteEvent::Written { text } = event;
        self.texts.push(text.clone());
        self
    }
}

/// Writes two notes and reads them back through `store`.
#[allow(dead_code)]
async fn round_trip(store: &AnyStore) {
    let id = Uuid::now_v7();
    let mut root = Root::<Note>::new(id);
    store.try_write(&mut root, "one".into()).await.unwrap();
    store.try_write(&mut root, "two".into()).await.unwrap();
    let read = store.read::<Note>(id).await.unwrap();
    assert_eq!(read.texts, ["one", "two"]);
}

fn reason(error: Error) -> String {
    match error {
        Error::InvalidConfig { reason, .. } => reason,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[cfg(feature = "memory")]
#[tokio::test]
async fn memory_urls_open_a_new_memory_store() {
    for url in ["memory:", "memory", "MEMORY:"] {
        let store = connect(url).await.unwrap();
        assert!(store.downcast_ref::<esrc::memory::MemoryStore>().is_some());
        round_trip(&store).await;
    }
    let error = reason(connect("memory:?max=3").await.unwrap_err());
    assert!(
        error.contains("unknown option `max` for a `memory` store"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_without_repeating_the_url() {
    let error = connect("mongodb://admin:secret@localhost/db")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert_eq!(
        text,
        "invalid store configuration: unknown store scheme `mongodb`: use `memory:`, `postgres://…` or `nats://…`"
    );
    assert!(!text.contains("secret"));
}

#[tokio::test]
async fn a_url_without_a_scheme_is_refused_without_repeating_it() {
    for url in [
        "postgres//admin:s3cret@localhost/db",
        "//admin:s3cret@localhost",
        "admin:s3cret@localhost",
    ] {
        let text = connect(url).await.unwrap_err().to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("admin"),
            "{url}: {text}"
        );
        assert!(
            text.contains("not a store URL") || text.contains("unknown store scheme"),
            "{text}"
        );
    }
}

/// Malformed values are refused before anything is contacted (the ports are closed).
#[cfg(all(feature = "postgres", feature = "nats"))]
#[tokio::test]
async fn malformed_options_are_refused_before_connecting() {
    let cases = [
        (
            "nats://127.0.0.1:1?replicas=three",
            "option `replicas=three`: expected a number of replicas",
        ),
        (
            "nats://127.0.0.1:1?storage=disk",
            "option `storage=disk`: expected `file` or `memory`",
        ),
        (
            "nats://127.0.0.1:1?read_timeout=5",
            "option `read_timeout=5`: expected a duration",
        ),
        (
            "nats://127.0.0.1:1?strem=X",
            "unknown option `strem` for a `nats` store",
        ),
        (
            "postgres://u:pw@127.0.0.1:1/db?migrate=yes",
            "option `migrate=yes`: expected `true` or `false`",
        ),
        (
            "postgres://u:pw@127.0.0.1:1/db?shema=x",
            "unknown option `shema` for a `postgres` store",
        ),
        (
            "postgres://u:pw@127.0.0.1:1/db?poll_interval=1.5s",
            "option `poll_interval=1.5s`: expected a duration",
        ),
        ("postgres://u:pw@127.0.0.1:port/db", "not a PostgreSQL URL"),
    ];
    for (url, expected) in cases {
        let error = reason(connect(url).await.unwrap_err());
        assert!(error.contains(expected), "{url}: {error}");
        assert!(!error.contains("pw"), "{error}");
    }
}

/// A feature that is off is named, with the command that turns it on. Runs in CI as
/// `cargo test -p esrc --no-default-features --features memory,derive --test connect`.
#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_postgres_url_without_the_feature_names_it() {
    let error = reason(connect("postgres://localhost/db").await.unwrap_err());
    assert_eq!(
        error,
        "`postgres://` URLs need esrc's `postgres` feature: `cargo add esrc --features postgres`"
    );
}

#[cfg(not(feature = "nats"))]
#[tokio::test]
async fn a_nats_url_without_the_feature_names_it() {
    let error = reason(connect("nats://localhost:4222").await.unwrap_err());
    assert_eq!(
        error,
        "`nats://` URLs need esrc's `nats` feature: `cargo add esrc --features nats`"
    );
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use esrc::connect_with;
    use esrc::postgres::PgStore;

    #[esrc_conformance::requires(env = "ESRC_POSTGRES_URL")]
    #[tokio::test]
    async fn options_reach_the_store_and_the_server() {
        let Ok(url) = std::env::var("ESRC_POSTGRES_URL") else {
            esrc_conformance::backend_unavailable::<()>("ESRC_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("connect_{}", Uuid::new_v4().simple());
        let separator = if url.contains('?') { '&' } else { '?' };
        // `sslmode` is PostgreSQL's: passed on. The defaults give the schema; the URL wins.
        let with_options = format!(
            "{url}{separator}schema={schema}&migrate=true&notify=false&sslmode=disable&page_size=2"
        );
        let store = connect_with(
            &with_options,
            [("schema", "overridden"), ("max_connections", "3")],
        )
        .await
        .unwrap();
        let pg = store.downcast_ref::<PgStore>().expect("a PgStore");
        assert_eq!(pg.schema(), schema);
        assert_eq!(pg.pool().options().get_max_connections(), 3);
        round_trip(&store).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(pg.pool())
        .await
        .unwrap();
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use esrc::nats::NatsStore;
    use esrc::nats::async_nats::jetstream::{self, stream::StorageType};
    use std::time::Duration;

    #[esrc_conformance::requires(env = "ESRC_NATS_URL")]
    #[tokio::test]
    async fn options_reach_the_store_and_its_stream() {
        let Ok(url) = std::env::var("ESRC_NATS_URL") else {
            esrc_conformance::backend_unavailable::<()>("ESRC_NATS_URL is not set");
            return;
        };
        let name = format!("connect_{}", Uuid::new_v4().simple());
        let stream = name.to_uppercase();
        let store = connect(&format!(
            "{url}?stream={stream}&prefix={name}&storage=memory&duplicate_window=30s&request_timeout=2s"
        ))
        .await
        .unwrap();
        let nats = store.downcast_ref::<NatsStore>().expect("a NatsStore");
        assert_eq!(
            (nats.stream_name(), nats.prefix()),
            (stream.as_str(), name.as_str())
        );
        round_trip(&store).await;
        let context = jetstream::new(nats.client().clone());
        let mut info = context.get_stream(&stream).await.unwrap();
        let config = info.info().await.unwrap().config.clone();
        assert_eq!(config.storage, StorageType::Memory);
        assert_eq!(config.duplicate_window, Duration::from_secs(30));
        nats.destroy().await.unwrap();
    }
}

/// A URL pointed at the other server's port says that the server did not answer as the
/// store expected, in one line naming where it tried.
#[cfg(all(feature = "postgres", feature = "nats"))]
#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test]
async fn a_url_pointed_at_the_other_server_says_so() {
    let (Ok(postgres), Ok(nats)) = (
        std::env::var("ESRC_POSTGRES_URL"),
        std::env::var("ESRC_NATS_URL"),
    ) else {
        esrc_conformance::backend_unavailable::<()>(
            "ESRC_POSTGRES_URL and ESRC_NATS_URL are not set",
        );
        return;
    };
    let host_port = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
        rest.split(['/', '?']).next().unwrap_or_default().to_owned()
    };
    let nats_port = host_port(&nats);
    let error = connect(&format!("postgres://esrc@{nats_port}/db"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&nats_port) && error.contains("did not answer as PostgreSQL"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    let postgres_port = host_port(&postgres);
    let started = std::time::Instant::now();
    let error = connect(&format!("nats://{postgres_port}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&postgres_port) && error.contains("did not answer as NATS"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "not the whole 10 s connect timeout: {:?}",
        started.elapsed()
    );
}
