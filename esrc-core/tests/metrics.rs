//! Every store metric of the table moves on the memory store (`esrc_core::metrics`).
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use esrc_conformance::metrics::Kept;
use esrc_core::metrics::Metered;
use esrc_core::{
    Aggregate, Appended, Condition, Decide, DecideExt, Decision, Envelope, Error, Expected, Item,
    Metadata, NewEvent, Position, Publish, PublishExt, Query, ReadExt, Replay, ReplayOne, Retry,
    Subscribe, Tag, Version, Versioned, Write,
};
use esrc_memory::MemoryStore;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, esrc_core::Event)]
enum TabEvent {
    Opened {
        #[esrc(tag)]
        table: String,
    },
}

fn opened(table: &str) -> NewEvent {
    NewEvent::new(&TabEvent::Opened {
        table: table.to_owned(),
    })
    .unwrap()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tab {
    opened: u32,
}

impl Versioned for Tab {}

impl Aggregate for Tab {
    type Command = ();
    type Event = TabEvent;
    type Error = std::convert::Infallible;

    fn process(&self, (): ()) -> Result<Vec<TabEvent>, Self::Error> {
        Ok(vec![TabEvent::Opened {
            table: "t".to_owned(),
        }])
    }

    fn apply(mut self, _: &TabEvent) -> Self {
        self.opened += 1;
        self
    }
}

async fn drain(read: impl Stream<Item = Result<impl Sized, Error>>) -> usize {
    let mut read = std::pin::pin!(read);
    let mut count = 0;
    while let Some(item) = read.next().await {
        item.unwrap();
        count += 1;
    }
    count
}

#[tokio::test]
async fn appends_reads_and_subscriptions_are_recorded() {
    let kept = Kept::installed();
    let store = Metered::new(MemoryStore::new(), "memory-1");
    let id = Uuid::now_v7();
    let tab = [("store", "memory-1"), ("category", "Tab")];

    let events = vec![opened("1"), opened("2")];
    let bytes: usize = events.iter().map(|event| event.payload.len()).sum();
    store
        .publish("Tab", id, Expected::NoStream, events)
        .await
        .unwrap();
    let conflict = store
        .publish("Tab", id, Expected::NoStream, vec![opened("3")])
        .await
        .unwrap_err();
    assert!(conflict.is_conflict());
    store
        .publish("Tab", id, Expected::Any, Vec::new())
        .await
        .unwrap_err();
    let appends = |outcome| {
        kept.samples(
            "esrc_append_duration_seconds",
            &[
                ("store", "memory-1"),
                ("category", "Tab"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(appends("stored"), Some(1));
    // A duration in seconds: more than nothing, less than the test.
    let took = kept
        .values(
            "esrc_append_duration_seconds",
            &[
                ("store", "memory-1"),
                ("category", "Tab"),
                ("outcome", "stored"),
            ],
        )
        .unwrap();
    assert!(took[0] > 0.0 && took[0] < 10.0, "{took:?}");
    assert_eq!(appends("conflict"), Some(1));
    assert_eq!(appends("error"), Some(1));
    assert_eq!(kept.counter("esrc_append_events_total", &tab), Some(2));
    assert_eq!(
        kept.counter("esrc_append_bytes_total", &tab),
        Some(bytes as u64)
    );

    // A conditional append across two categories is labelled `*`.
    let writes = vec![
        Write::new("Tab", Uuid::now_v7(), vec![opened("4")]),
        Write::new("Bill", Uuid::now_v7(), vec![opened("5"), opened("6")]),
    ];
    store.append_if(writes, None).await.unwrap();
    let mixed = [("store", "memory-1"), ("category", "*")];
    let stored = [
        ("store", "memory-1"),
        ("category", "*"),
        ("outcome", "stored"),
    ];
    assert_eq!(
        kept.samples("esrc_append_duration_seconds", &stored),
        Some(1)
    );
    assert_eq!(kept.counter("esrc_append_events_total", &mixed), Some(3));

    // Reads: one stream (with and without its snapshot), a group, a query.
    assert_eq!(drain(store.replay_one("Tab", id, Version::ZERO)).await, 2);
    let root = store.read::<Tab>(id).await.unwrap();
    assert_eq!(root.version().get(), 2);
    let stream = [
        ("store", "memory-1"),
        ("operation", "stream"),
        ("category", "Tab"),
    ];
    assert_eq!(kept.samples("esrc_read_duration_seconds", &stream), Some(2));
    assert_eq!(kept.counter("esrc_read_events_total", &stream), Some(4));

    assert_eq!(
        drain(store.replay(&["Tab", "Bill"], Position::ZERO)).await,
        5
    );
    let group = [
        ("store", "memory-1"),
        ("operation", "categories"),
        ("category", "Tab,Bill"),
    ];
    assert_eq!(kept.samples("esrc_read_duration_seconds", &group), Some(1));
    assert_eq!(kept.counter("esrc_read_events_total", &group), Some(5));

    let query = Query::new().or(Item::types::<TabEvent>(["Opened"]).tagged(tag("table", "4")));
    let horizon = store.horizon().await.unwrap();
    assert_eq!(drain(store.query(&query, Position::ZERO, horizon)).await, 1);
    let queried = [
        ("store", "memory-1"),
        ("operation", "query"),
        ("category", "*"),
    ];
    assert_eq!(
        kept.samples("esrc_read_duration_seconds", &queried),
        Some(1)
    );
    assert_eq!(kept.counter("esrc_read_events_total", &queried), Some(1));

    // A subscription counts what it delivers, as it delivers it.
    let mut live = Box::pin(store.subscribe(&["Tab"], Position::ZERO));
    for _ in 0..3 {
        live.next().await.unwrap().unwrap();
    }
    assert_eq!(
        kept.counter("esrc_subscription_events_total", &tab),
        Some(3)
    );
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::from_parts(key, value).unwrap()
}

fn unavailable() -> Error {
    Error::backend("flaky", true, "the leader is being elected")
}

/// A memory store whose first append fails for now, and whose first conditional append
/// loses a race: an event its condition matches is stored just before it.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    publishes: AtomicU32,
    conditional: AtomicU32,
}

impl Publish for Flaky {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        if self.publishes.fetch_add(1, Ordering::AcqRel) == 0 {
            return Err(unavailable());
        }
        self.inner.publish(category, id, expected, events).await
    }
}

impl ReplayOne for Flaky {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.inner.replay_one(category, id, after)
    }
}

impl Decide for Flaky {
    async fn horizon(&self) -> Result<Position, Error> {
        self.inner.horizon().await
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.inner.query(query, after, until)
    }

    async fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        match self.conditional.fetch_add(1, Ordering::AcqRel) {
            0 => {
                let rival = Write::new("Tab", Uuid::now_v7(), vec![opened("busy")]);
                self.inner.append_if(vec![rival], None).await?;
            }
            1 => return Err(unavailable()),
            _ => {}
        }
        self.inner.append_if(writes, condition).await
    }
}

/// Whether the table `busy` is open.
#[derive(Default)]
struct Busy(bool);

impl Decision for Busy {
    fn query(&self) -> Query {
        Query::new().or(Item::types::<TabEvent>(["Opened"]).tagged(tag("table", "busy")))
    }

    fn apply(&mut self, _: &Envelope) -> Result<(), Error> {
        self.0 = true;
        Ok(())
    }
}

#[tokio::test]
async fn retries_are_counted_by_cause() {
    let kept = Kept::installed();
    let retries = |operation, cause| {
        kept.counter(
            "esrc_append_retries_total",
            &[("operation", operation), ("cause", cause)],
        )
    };
    let store = Flaky::default();
    let retry = Retry::attempts(5).pauses(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(1),
    );

    // A write: the store is unavailable once, then a rival append makes a conflict.
    let id = Uuid::now_v7();
    let mut root = store.load::<Tab>(id).await.unwrap();
    store
        .inner
        .publish("Tab", id, Expected::NoStream, vec![opened("rival")])
        .await
        .unwrap();
    store
        .try_write_retry(&mut root, (), &Metadata::default(), &retry)
        .await
        .unwrap();
    assert_eq!(root.version().get(), 2);
    assert_eq!(retries("write", "unavailable"), Some(1));
    assert_eq!(retries("write", "conflict"), Some(1));

    // A decision: its condition fails once (a rival opened the table), then the store is
    // unavailable once.
    let decided = store
        .decide(Busy::default, |_| Ok::<_, ()>(vec![]), &retry)
        .await;
    assert!(decided.unwrap().is_empty(), "nothing to write: no append");
    let appended = store
        .decide(
            Busy::default,
            |_| {
                Ok::<_, ()>(vec![Write::new(
                    "Tab",
                    Uuid::now_v7(),
                    vec![opened("busy")],
                )])
            },
            &retry,
        )
        .await
        .unwrap();
    assert_eq!(appended.len(), 1);
    assert_eq!(retries("decide", "conflict"), Some(1));
    assert_eq!(retries("decide", "unavailable"), Some(1));
}

/// The projector metrics on the memory store, lag included.
#[tokio::test]
async fn a_projectors_lag_is_recorded() {
    esrc_conformance::metrics::projector_lag_is_recorded(&Memory).await;
}

struct Memory;

impl esrc_conformance::StoreFactory for Memory {
    type Store = MemoryStore;

    async fn store(&self) -> MemoryStore {
        MemoryStore::new()
    }
}
