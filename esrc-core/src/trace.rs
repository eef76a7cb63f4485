//! Traces: the spans esrc opens, shaped for OpenTelemetry, and the trace context that
//! follows an event from the command that stored it to every projection of it.
//!
//! esrc opens spans with [`tracing`]; an application that installs
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) exports them as
//! OpenTelemetry spans. Their fields follow OpenTelemetry's semantic conventions:
//!
//! | span | when | fields |
//! | --- | --- | --- |
//! | `esrc.store`, exported as its `otel.name`: the operation and its target (`append Tab`) | each append and read of a store (memory, PostgreSQL: database conventions; NATS: messaging conventions) | `otel.kind`, `db.system.name` (`postgresql`, `memory`) or `messaging.system` (`nats`), `db.operation.name` / `messaging.operation.name` (`append`, `append_if`, `read_stream`, `read_categories`, `query`), `db.collection.name` / `messaging.destination.name` (the category, the categories joined by `,`, or `*`), `db.response.returned_rows` (a read's events); on failure `error.type` (the [`Error`] kind), `otel.status_code = "ERROR"` and `otel.status_description` |
//! | `esrc.projector.batch` | a projector's batch, from its first event to its commit | `projector`, `first`, `events`, `checkpoint` |
//! | `esrc.project` | one event projected, inside its batch | `projector`, `position`, `event_type`, `messaging.system = "esrc"`, `messaging.operation.name = "process"`; **linked** to the span that stored the event |
//!
//! **The trace context of a command.** With the `opentelemetry` feature, an event made
//! while an OpenTelemetry span is current ([`NewEvent::new`](crate::NewEvent::new), and
//! the commands of [`PublishExt`](crate::PublishExt), which give it their metadata)
//! carries that span's W3C trace context in its metadata, under
//! [`TRACEPARENT`] (`00-<trace id>-<span id>-<flags>`). Each projector's `esrc.project`
//! span of the event is linked to it, so one trace shows a command and every read model
//! it updated — across processes and stores, since the context is stored with the event.
//! Metadata that holds a `traceparent` already keeps its own; [`set_propagation`] turns
//! the stamping off for the process. Events copied by tools (`esrc copy`, import) keep
//! what they had.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Envelope, Error, Metadata, Write};

/// The metadata key of the W3C trace context of the span that made an event.
pub const TRACEPARENT: &str = "traceparent";

static PROPAGATE: AtomicBool = AtomicBool::new(true);

/// Whether new events carry the current span's trace context (on by default; only with
/// the `opentelemetry` feature). Off, events are stored without it and projections are
/// not linked.
pub fn set_propagation(on: bool) {
    PROPAGATE.store(on, Ordering::Relaxed);
}

/// Puts the current span's trace context in `metadata`, unless it holds one, propagation
/// is off, or no OpenTelemetry span is current.
pub(crate) fn stamp(metadata: &mut Metadata) {
    #[cfg(feature = "opentelemetry")]
    if PROPAGATE.load(Ordering::Relaxed) && !metadata.values.contains_key(TRACEPARENT) {
        if let Some(traceparent) = otel::current() {
            metadata.values.insert(TRACEPARENT.to_owned(), traceparent);
        }
    }
    #[cfg(not(feature = "opentelemetry"))]
    let _ = metadata;
}

/// The span of a projector's handling of `envelope`, in the span of its batch, linked to
/// the span that stored the event.
pub(crate) fn project_span(
    batch: &tracing::Span,
    projector: &str,
    envelope: &Envelope,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: batch,
        "esrc.project",
        projector = %projector,
        position = %envelope.position,
        event_type = %envelope.event_type,
        "messaging.system" = "esrc",
        "messaging.operation.name" = "process",
        "otel.kind" = "consumer",
    );
    #[cfg(feature = "opentelemetry")]
    if !span.is_disabled() {
        if let Some(stored) = envelope
            .metadata
            .values
            .get(TRACEPARENT)
            .and_then(|value| otel::parse(value))
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.add_link(stored);
        }
    }
    span
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// The current span's context as a `traceparent`, if it is a valid one.
    pub(super) fn current() -> Option<String> {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return None;
        }
        let context = span.context();
        let current = context.span();
        let context = current.span_context();
        context.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                context.trace_id(),
                context.span_id(),
                context.trace_flags().to_u8()
            )
        })
    }

    /// A `traceparent` of version `00`; `None` if it is not one (a stored value is data:
    /// it is never trusted to be well formed).
    pub(super) fn parse(traceparent: &str) -> Option<SpanContext> {
        let mut parts = traceparent.split('-');
        let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let context = SpanContext::new(
            TraceId::from_hex(trace).ok()?,
            SpanId::from_hex(span).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        context.is_valid().then_some(context)
    }

    #[cfg(test)]
    mod tests {
        use super::parse;

        #[test]
        fn only_a_well_formed_traceparent_is_read() {
            let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let context = parse(valid).unwrap();
            assert_eq!(
                context.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
            assert!(context.is_sampled());
            for invalid in [
                "",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            ] {
                assert!(parse(invalid).is_none(), "{invalid}");
            }
        }
    }
}

/// What kind of system a store is, for its spans' fields.
#[derive(Clone, Copy, Debug)]
pub enum System {
    /// A database (`db.*` fields), named as OpenTelemetry names it (`postgresql`).
    Database(&'static str),
    /// A messaging system (`messaging.*` fields), named as OpenTelemetry names it.
    Messaging(&'static str),
}

/// The span of one store operation (`operation` on `target`: a category, categories
/// joined by `,`, or `*`), for a store to run the operation in ([`traced`],
/// [`traced_read`]).
pub fn store_span(
    system: System,
    operation: &'static str,
    target: impl std::fmt::Display,
) -> tracing::Span {
    match system {
        System::Database(name) => tracing::info_span!(
            "esrc.store",
            "otel.name" = %format_args!("{operation} {target}"),
            "otel.kind" = "client",
            "db.system.name" = name,
            "db.operation.name" = operation,
            "db.collection.name" = %target,
            "db.response.returned_rows" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
            "otel.status_description" = tracing::field::Empty,
        ),
        System::Messaging(name) => tracing::info_span!(
            "esrc.store",
            "otel.name" = %format_args!("{operation} {target}"),
            "otel.kind" = if operation.starts_with("append") { "producer" } else { "client" },
            "messaging.system" = name,
            "messaging.operation.name" = operation,
            "messaging.destination.name" = %target,
            "db.response.returned_rows" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
            "otel.status_description" = tracing::field::Empty,
        ),
    }
}

/// The target of a conditional append's span and metrics: the category its writes share,
/// or `*`.
pub fn target_of(writes: &[Write]) -> &str {
    match writes.split_first() {
        Some((first, rest)) if rest.iter().all(|write| write.category == first.category) => {
            &first.category
        }
        _ => "*",
    }
}

/// Records `error` on `span`: its kind as `error.type`, and an error status.
pub fn record_error(span: &tracing::Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    span.record("error.type", error.kind());
    span.record("otel.status_code", "ERROR");
    span.record(
        "otel.status_description",
        tracing::field::display(crate::Chain(error)),
    );
}

/// Runs `operation` in `span`, recording its error if it fails.
pub async fn traced<T>(
    span: tracing::Span,
    operation: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use tracing::Instrument;
    let outcome = operation.instrument(span.clone()).await;
    if let Err(error) = &outcome {
        record_error(&span, error);
    }
    outcome
}

/// `read` in `span`: the span ends when the read is dropped, with how many items it
/// yielded and its error, if any.
pub fn traced_read<T, St>(
    span: tracing::Span,
    read: St,
) -> impl futures::Stream<Item = Result<T, Error>> + Send
where
    St: futures::Stream<Item = Result<T, Error>> + Send,
{
    use futures::StreamExt;
    let mut open = OpenRead { span, rows: 0 };
    read.map(move |item| {
        open.saw(item.as_ref().err());
        item
    })
}

/// A read's span, closed with its count when the read is dropped.
struct OpenRead {
    span: tracing::Span,
    rows: u64,
}

impl OpenRead {
    fn saw(&mut self, error: Option<&Error>) {
        match error {
            None => self.rows += 1,
            Some(error) => record_error(&self.span, error),
        }
    }
}

impl Drop for OpenRead {
    fn drop(&mut self) {
        if !self.span.is_disabled() {
            self.span.record("db.response.returned_rows", self.rows);
        }
    }
}
