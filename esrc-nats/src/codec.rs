//! How an event travels in NATS headers, and back.
//!
//! Subject: `<prefix>.<category>.<aggregate id>`. The payload is the event's JSON; the
//! rest is in headers: `Nats-Msg-Id` (the event id, so JetStream deduplicates retries),
//! `Esrc-Version`, `Esrc-Schema`, `Esrc-Time` (microseconds since the epoch),
//! `Esrc-Correlation-Id`, `Esrc-Causation-Id`, `Esrc-Meta` (the key/values as JSON) and
//! `Esrc-Batch` / `Esrc-Batch-Size` (the append an event belongs to, for idempotent
//! retries). A truncation that removed every event leaves a marker message
//! (`Esrc-Marker`) holding the stream's version; readers skip it.

use std::str::FromStr;

use async_nats::HeaderMap;
use bytes::Bytes;
use esrc_core::{DecodeError, Envelope, Error, Metadata, NewEvent, Position, Timestamp, Version};
use uuid::Uuid;

pub(crate) const MSG_ID: &str = "Nats-Msg-Id";
pub(crate) const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
pub(crate) const BATCH_ID: &str = "Nats-Batch-Id";
pub(crate) const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
pub(crate) const BATCH_COMMIT: &str = "Nats-Batch-Commit";
pub(crate) const VERSION: &str = "Esrc-Version";
const SCHEMA: &str = "Esrc-Schema";
const TIME: &str = "Esrc-Time";
const CORRELATION: &str = "Esrc-Correlation-Id";
const CAUSATION: &str = "Esrc-Causation-Id";
const META: &str = "Esrc-Meta";
pub(crate) const BATCH: &str = "Esrc-Batch";
pub(crate) const BATCH_SIZE: &str = "Esrc-Batch-Size";
pub(crate) const MARKER: &str = "Esrc-Marker";

/// The headers of one event of an append.
pub(crate) fn event_headers(
    event: &NewEvent,
    version: Version,
    batch: Uuid,
    batch_size: usize,
) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, event.event_id.to_string().as_str());
    headers.insert(VERSION, version.to_string().as_str());
    headers.insert(SCHEMA, event.schema_version.to_string().as_str());
    headers.insert(TIME, event.timestamp.as_micros().to_string().as_str());
    if let Some(id) = event.metadata.correlation_id {
        headers.insert(CORRELATION, id.to_string().as_str());
    }
    if let Some(id) = event.metadata.causation_id {
        headers.insert(CAUSATION, id.to_string().as_str());
    }
    // Compact JSON escapes control characters, so the value never holds CR or LF.
    if let Some(values) = event.metadata.values_json()? {
        headers.insert(META, values.as_str());
    }
    headers.insert(BATCH, batch.to_string().as_str());
    headers.insert(BATCH_SIZE, batch_size.to_string().as_str());
    Ok(headers)
}

/// The size of `headers` on the wire.
pub(crate) fn size(headers: &HeaderMap) -> usize {
    // `NATS/1.0\r\n`, then `Name: value\r\n` for each value, then `\r\n`.
    let mut size = 12;
    for (name, values) in headers.iter() {
        for value in values {
            size += AsRef::<str>::as_ref(name).len() + value.as_str().len() + 4;
        }
    }
    size
}

/// A stored message esrc cannot read, named by its category (the subject's second token,
/// or the whole subject if it has none) and position, and by the field that is wrong.
pub(crate) fn malformed(
    subject: &str,
    sequence: u64,
    field: &'static str,
    found: Option<&str>,
) -> Error {
    Error::Format {
        category: subject.split('.').nth(1).unwrap_or(subject).to_owned(),
        position: Position(sequence),
        schema_version: 0,
        source: DecodeError::Field {
            field,
            found: found.map(str::to_owned),
        },
    }
}

/// A header parsed as `T`, if present.
pub(crate) fn header<T: FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers
        .get(name)
        .and_then(|value| value.as_str().parse().ok())
}

/// A required header parsed as `T`.
pub(crate) fn required<T: FromStr>(
    headers: &HeaderMap,
    name: &'static str,
    subject: &str,
    sequence: u64,
) -> Result<T, Error> {
    let value = headers.get(name).map(|value| value.as_str());
    value
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed(subject, sequence, name, value))
}

/// Whether a stored message is a truncation marker rather than an event.
pub(crate) fn is_marker(headers: Option<&HeaderMap>) -> bool {
    headers.is_some_and(|headers| headers.get(MARKER).is_some())
}

/// Rebuilds an envelope from a stored message.
pub(crate) fn envelope(
    prefix_len: usize,
    subject: &str,
    sequence: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<Envelope, Error> {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    let rest = subject.get(prefix_len + 1..).unwrap_or_default();
    let (category, id) = rest
        .split_once('.')
        .ok_or_else(|| malformed(subject, sequence, "subject", Some(subject)))?;
    let aggregate_id =
        Uuid::parse_str(id).map_err(|_| malformed(subject, sequence, "aggregate id", Some(id)))?;
    let values = match headers.get(META) {
        None => Default::default(),
        Some(value) => serde_json::from_str(value.as_str())
            .map_err(|_| malformed(subject, sequence, META, Some(value.as_str())))?,
    };
    Ok(Envelope {
        category: category.to_owned(),
        aggregate_id,
        version: Version(required(headers, VERSION, subject, sequence)?),
        position: Position(sequence),
        event_id: required(headers, MSG_ID, subject, sequence)?,
        timestamp: Timestamp::from_micros(required(headers, TIME, subject, sequence)?),
        schema_version: required(headers, SCHEMA, subject, sequence)?,
        metadata: Metadata {
            correlation_id: header(headers, CORRELATION),
            causation_id: header(headers, CAUSATION),
            values,
        },
        payload,
    })
}
