//! One trace from a command to the projections of its events (`esrc_core::trace`), seen
//! through an in-memory OpenTelemetry exporter.
#![cfg(feature = "opentelemetry")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use esrc_core::projector::Projector;
use esrc_core::trace::TRACEPARENT;
use esrc_core::{
    Aggregate, Context, Event, Expected, NewEvent, Position, Project, Publish, PublishExt, Replay,
    Versioned,
};
use esrc_memory::MemoryStore;
use futures::StreamExt;
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, esrc_core::Event)]
enum TabEvent {
    Opened,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tab;

impl Versioned for Tab {}

impl Aggregate for Tab {
    type Command = ();
    type Event = TabEvent;
    type Error = std::convert::Infallible;

    fn process(&self, (): ()) -> Result<Vec<TabEvent>, Self::Error> {
        Ok(vec![TabEvent::Opened])
    }

    fn apply(self, _: &TabEvent) -> Self {
        self
    }
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Position>>>);

impl Project for Seen {
    type EventGroup<'de> = TabEvent;
    type Error = std::convert::Infallible;

    async fn project<'de>(&mut self, context: Context<'de, TabEvent>) -> Result<(), Self::Error> {
        self.0.lock().unwrap().push(context.position());
        Ok(())
    }
}

/// Spans go to an in-memory exporter, through tracing-opentelemetry, for the whole test
/// binary (its one test).
fn exporter() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("esrc-test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only subscriber of this test binary");
    (exporter, provider)
}

fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|pair| pair.key.as_str() == key)
        .map(|pair| pair.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_are_linked_to_the_command_that_stored_their_event() {
    let (exporter, provider) = exporter();
    let store = MemoryStore::new();
    let seen = Seen::default();
    let running = Projector::new(store.clone(), "tabs", seen.clone()).spawn();

    // The command runs in a span of its own: its events carry its trace context.
    let command = tracing::info_span!("open tab");
    let id = Uuid::now_v7();
    let mut root = esrc_core::Root::<Tab>::new(id);
    store
        .try_write(&mut root, ())
        .instrument(command.clone())
        .await
        .unwrap();
    let command_context = span_context(&command);
    assert!(command_context.is_valid());
    drop(command);

    let stored = store
        .replay(&[TabEvent::NAME], Position::ZERO)
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.metadata.values.get(TRACEPARENT),
        Some(&format!(
            "00-{}-{}-01",
            command_context.trace_id(),
            command_context.span_id()
        ))
    );

    // An event whose metadata holds a malformed traceparent (data, from anywhere) is
    // projected all the same, unlinked; and with propagation off, events carry none.
    let mut foreign = NewEvent::new(&TabEvent::Opened).unwrap();
    foreign
        .metadata
        .values
        .insert(TRACEPARENT.to_owned(), "00-not-a-context".to_owned());
    store
        .publish(TabEvent::NAME, Uuid::now_v7(), Expected::Any, vec![foreign])
        .await
        .unwrap();
    esrc_core::trace::set_propagation(false);
    let quiet = tracing::info_span!("quiet command");
    let unstamped = quiet.in_scope(|| NewEvent::new(&TabEvent::Opened).unwrap());
    esrc_core::trace::set_propagation(true);
    assert!(!unstamped.metadata.values.contains_key(TRACEPARENT));
    let stamped = quiet.in_scope(|| NewEvent::new(&TabEvent::Opened).unwrap());
    assert!(stamped.metadata.values.contains_key(TRACEPARENT));
    drop(quiet);

    // A failed append: its span says why.
    let conflict = store
        .publish(
            TabEvent::NAME,
            id,
            Expected::NoStream,
            vec![NewEvent::new(&TabEvent::Opened).unwrap()],
        )
        .await
        .unwrap_err();
    assert!(conflict.is_conflict());

    for _ in 0..600 {
        if seen.0.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let projected = named(&spans, "esrc.project");
    assert_eq!(projected.len(), 2, "one span per event projected");
    let linked: Vec<_> = projected
        .iter()
        .filter(|span| {
            span.links.iter().any(|link| {
                link.span_context.trace_id() == command_context.trace_id()
                    && link.span_context.span_id() == command_context.span_id()
            })
        })
        .collect();
    assert_eq!(linked.len(), 1, "the command's event links to the command");
    assert_eq!(
        attribute(linked[0], "messaging.operation.name").as_deref(),
        Some("process")
    );
    let unlinked = projected
        .iter()
        .find(|span| span.links.is_empty())
        .expect("the foreign event's span has no link");
    assert_ne!(unlinked.span_context, linked[0].span_context);

    // The store's spans follow the database conventions; the append ran in the command.
    // (`otel.name` names them: `append Tab`.)
    let appends: Vec<_> = spans
        .iter()
        .filter(|span| attribute(span, "db.operation.name").as_deref() == Some("append"))
        .collect();
    assert!(
        appends
            .iter()
            .all(|span| span.name == format!("append {}", TabEvent::NAME)),
        "{appends:?}"
    );
    let in_command = appends
        .iter()
        .find(|span| span.parent_span_id == command_context.span_id())
        .expect("the append is a child of the command's span");
    assert_eq!(
        attribute(in_command, "db.system.name").as_deref(),
        Some("memory")
    );
    assert_eq!(
        attribute(in_command, "db.collection.name").as_deref(),
        Some(TabEvent::NAME)
    );
    let failed = appends
        .iter()
        .find(|span| attribute(span, "error.type").is_some())
        .expect("the conflict is on its span");
    assert_eq!(attribute(failed, "error.type").as_deref(), Some("conflict"));
    assert!(
        matches!(failed.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        failed.status
    );
}
