//! Checks of the spans a store opens (feature `spans`): a `tracing` layer that keeps every
//! span's fields, and [`store_spans_follow_the_conventions`], which a store's tests run
//! to see its appends and reads in spans with OpenTelemetry's fields.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock, PoisonError};

use esrc_core::backend::System;
use esrc_core::{Expected, Publish, ReplayOne, Version};
use futures::StreamExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::StoreFactory;

/// A span, closed: its name and its fields as text.
#[derive(Clone, Debug)]
pub struct Closed {
    /// The span's name (`esrc.store`).
    pub name: &'static str,
    /// Its fields, recorded when it was opened or later.
    pub fields: BTreeMap<String, String>,
}

/// Every span's fields, kept by a layer of the process's subscriber, installed by
/// [`Kept::installed`].
#[derive(Debug, Default)]
pub struct Kept {
    open: Mutex<HashMap<u64, Closed>>,
    closed: Mutex<Vec<Closed>>,
}

impl Kept {
    /// The process's subscriber: installed by the first call, the same one afterwards.
    ///
    /// # Panics
    ///
    /// If another global subscriber was installed first.
    pub fn installed() -> &'static Self {
        static KEPT: OnceLock<&'static Kept> = OnceLock::new();
        KEPT.get_or_init(|| {
            let kept: &'static Kept = Box::leak(Box::default());
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(Keeping(kept)),
            )
            .expect("no other global tracing subscriber");
            kept
        })
    }

    /// The closed spans whose field `field` is `value`.
    pub fn closed_with(&self, field: &str, value: &str) -> Vec<Closed> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|span| span.fields.get(field).is_some_and(|found| found == value))
            .cloned()
            .collect()
    }
}

/// Writes fields as text.
struct Text<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Text<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The layer that fills [`Kept`] (a type of its own, so that the layer's trait stays out
/// of `Kept`'s documentation).
struct Keeping(&'static Kept);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Keeping {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Text(&mut fields));
        let span = Closed {
            name: attributes.metadata().name(),
            fields,
        };
        self.0
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self
            .0
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id.into_u64())
        {
            values.record(&mut Text(&mut span.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let span = self
            .0
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id.into_u64());
        if let Some(span) = span {
            self.0
                .closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(span);
        }
    }
}

/// Checks that a store of `factory`, which says it is `system`, runs an append, a refused
/// append and a read of one stream in `esrc.store` spans with OpenTelemetry's fields: the
/// system, the operation, the category, the events read, and the refusal's `error.type`
/// and error status. Installs [`Kept`] (so a test binary running it must not install
/// another subscriber).
///
/// # Panics
///
/// When a span is missing or a field is not what the conventions say.
pub async fn store_spans_follow_the_conventions<F: StoreFactory>(factory: &F, system: System) {
    let kept = Kept::installed();
    let store = factory.store().await;
    let category = format!("Spans{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let id = uuid::Uuid::now_v7();
    let event = || crate::fixtures::counted(1);
    store
        .publish(&category, id, Expected::NoStream, vec![event()])
        .await
        .expect("the first append is stored");
    let refused = store
        .publish(&category, id, Expected::NoStream, vec![event()])
        .await
        .expect_err("the stream exists");
    assert!(refused.is_conflict(), "{refused}");
    let read: Vec<_> = store
        .replay_one(&category, id, Version::ZERO)
        .collect()
        .await;
    assert_eq!(read.len(), 1);

    let (system_field, name, operation, target) = match system {
        System::Database(name) => (
            "db.system.name",
            name,
            "db.operation.name",
            "db.collection.name",
        ),
        System::Messaging(name) => (
            "messaging.system",
            name,
            "messaging.operation.name",
            "messaging.destination.name",
        ),
    };
    let spans = kept.closed_with(target, &category);
    let of = |wanted: &str| -> Vec<&Closed> {
        spans
            .iter()
            .filter(|span| span.fields.get(operation).map(String::as_str) == Some(wanted))
            .collect()
    };
    let appends = of("append");
    assert_eq!(appends.len(), 2, "two appends: {spans:?}");
    for span in appends.iter().chain(&of("read_stream")) {
        assert_eq!(span.name, "esrc.store");
        assert_eq!(
            span.fields.get(system_field).map(String::as_str),
            Some(name)
        );
        assert_eq!(
            span.fields.get("otel.name"),
            Some(&format!("{} {category}", span.fields[operation]))
        );
    }
    let failed: Vec<_> = appends
        .iter()
        .filter(|span| span.fields.contains_key("error.type"))
        .collect();
    assert_eq!(failed.len(), 1, "the refused append: {appends:?}");
    assert_eq!(failed[0].fields["error.type"], "conflict");
    assert_eq!(failed[0].fields["otel.status_code"], "ERROR");
    let reads = of("read_stream");
    assert!(
        reads.iter().any(|span| span
            .fields
            .get("db.response.returned_rows")
            .map(String::as_str)
            == Some("1")),
        "the read's span counts its event: {reads:?}"
    );
}
