//! How an event travels in a NATS message, and back.
//!
//! Subject: `<prefix>.<category>.<aggregate id>`. Format 3, written since 0.2: the payload
//! is a compact binary head holding the event's version, schema version, time, metadata,
//! type and tags (and its id, when no `Nats-Msg-Id` header holds it), followed by the
//! event's own payload (`format3.rs` has the
//! layout; the crate README documents it for other NATS tools). esrc adds no header of its
//! own; the server keeps what the append needs it to:
//!
//! - `Nats-Msg-Id: <event id>` on every event: the server deduplicates retries by it, and
//!   refuses an id reused by another append, within its duplicate window;
//! - `Nats-Expected-Last-Subject-Sequence` on an append's first message (the concurrency
//!   check);
//! - `Nats-Batch-Id` / `Nats-Batch-Sequence` / `Nats-Batch-Commit` on the events of a
//!   multi-event append (an atomic batch), which tell an idempotent retry which append an
//!   event belongs to.
//!
//! Each tag of an event is also written, in the same atomic batch, as an empty **tag
//! marker** `<prefix>.~t.<tag token>.<category>.<type>` (`~` for an untyped event) with
//! `Esrc-Marker: tag <n>`: the event is the message `n` sequences before the marker. The
//! tag token keeps ASCII letters, digits, `_`, `-` and `:`, and writes every other byte
//! as `~` and two hex digits. No category can start with `~`, so no stream's subject is
//! ever a marker's. A conditional append that needs more messages to carry its checks
//! than it writes adds empty **check markers** (`<prefix>.~c`, `Esrc-Marker: check`).
//! A truncation that removed every event leaves a marker message (`Esrc-Marker:
//! truncated`, `Esrc: 2 <version>`); readers skip it.
//!
//! Formats 1 and 2 are still read, from headers. Format 2: `Nats-Msg-Id: <event id>`,
//! `Esrc: 2 <version> <schema version> <timestamp in µs>`, and `Esrc-Correlation-Id`,
//! `Esrc-Causation-Id`, `Esrc-Meta` (the key/values as JSON), `Esrc-Type`, `Esrc-Tags`
//! each only when the event has one; the payload is the event's own. Format 1, the one
//! written before formats had numbers: `Esrc-Version`, `Esrc-Schema`, `Esrc-Time` in
//! headers of their own, and `Esrc-Batch` / `Esrc-Batch-Size` on every event. A message
//! with an `Esrc` or `Esrc-Version` header is read as format 2 or 1, whatever its payload
//! holds. (The `esrc import-0.1` command of esrc-cli reads the unrelated format of the
//! original esrc 0.1.)

use std::str::FromStr;

use async_nats::HeaderMap;
use bytes::Bytes;
use esrc_core::{
    DecodeError, Envelope, Error, Metadata, NewEvent, Position, Tag, Timestamp, Version,
};
use uuid::Uuid;

use crate::format3;

pub(crate) const MSG_ID: &str = "Nats-Msg-Id";
pub(crate) const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
pub(crate) const BATCH_ID: &str = "Nats-Batch-Id";
pub(crate) const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
pub(crate) const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// Format 2's one header: the format, then the version, schema version and time.
pub(crate) const ESRC: &str = "Esrc";
/// The last format kept in headers (markers are still written in it).
pub(crate) const FORMAT: &str = "2";
const CORRELATION: &str = "Esrc-Correlation-Id";
const CAUSATION: &str = "Esrc-Causation-Id";
const META: &str = "Esrc-Meta";
const TYPE: &str = "Esrc-Type";
const TAGS: &str = "Esrc-Tags";
/// Names the filter a message's `Nats-Expected-Last-Subject-Sequence` is checked on.
pub(crate) const EXPECTED_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// The subject token under the prefix that tag markers are written under.
pub(crate) const TAG_MARKERS: &str = "~t";
/// The subject token under the prefix that check markers are written on.
pub(crate) const CHECK_MARKERS: &str = "~c";
pub(crate) const MARKER: &str = "Esrc-Marker";
// Format 1.
pub(crate) const VERSION: &str = "Esrc-Version";
const SCHEMA: &str = "Esrc-Schema";
const TIME: &str = "Esrc-Time";
const BATCH: &str = "Esrc-Batch";
const BATCH_SIZE: &str = "Esrc-Batch-Size";

/// The message of one event stored at `version`, in format 3: the headers (only
/// `Nats-Msg-Id`, by which the server deduplicates retries and refuses reused ids within
/// its duplicate window) and the payload with the event's head in front.
pub(crate) fn event_message(event: &NewEvent, version: Version) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, event.event_id.to_string().as_str());
    (headers, format3::encode(event, version.get(), false))
}

/// The subject token of `tag`: ASCII letters, digits, `_`, `-` and `:` as they are,
/// every other byte as `~` and two hex digits (so `.`, `*`, `>` and `~` never appear).
pub(crate) fn tag_token(tag: &Tag) -> String {
    use std::fmt::Write;
    let mut token = String::with_capacity(tag.as_str().len());
    for byte in tag.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b':') {
            token.push(char::from(byte));
        } else {
            let _ = write!(token, "~{byte:02x}");
        }
    }
    token
}

/// The subject of the marker of `tag` on an event of `category` and `event_type`.
pub(crate) fn tag_marker_subject(
    prefix: &str,
    tag: &Tag,
    category: &str,
    event_type: &str,
) -> String {
    let event_type = if event_type.is_empty() {
        "~"
    } else {
        event_type
    };
    format!(
        "{prefix}.{TAG_MARKERS}.{}.{category}.{event_type}",
        tag_token(tag)
    )
}

/// The headers of a tag marker whose event is `back` messages before it.
pub(crate) fn tag_marker_headers(back: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(MARKER, format!("tag {back}").as_str());
    headers
}

/// The headers of a check marker.
pub(crate) fn check_marker_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(MARKER, "check");
    headers
}

/// The sequence of the event a tag marker at `sequence` points at; `None` for any other
/// message.
pub(crate) fn marked_event(headers: Option<&HeaderMap>, sequence: u64) -> Option<u64> {
    let value = headers?.get(MARKER)?.as_str();
    let back: u64 = value.strip_prefix("tag ")?.parse().ok()?;
    sequence.checked_sub(back)
}

/// The headers of a truncation marker holding the stream's `version`.
pub(crate) fn marker_headers(version: Version) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(MARKER, "truncated");
    headers.insert(ESRC, format!("{FORMAT} {version}").as_str());
    headers.insert(MSG_ID, Uuid::now_v7().to_string().as_str());
    headers
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
    format_error(
        subject,
        sequence,
        DecodeError::Field {
            field,
            found: found.map(str::to_owned),
        },
    )
}

fn format_error(subject: &str, sequence: u64, source: DecodeError) -> Error {
    Error::format(
        subject.split('.').nth(1).unwrap_or(subject).to_owned(),
        Position(sequence),
        0,
        source,
    )
}

/// A header parsed as `T`, if present.
pub(crate) fn header<T: FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers
        .get(name)
        .and_then(|value| value.as_str().parse().ok())
}

/// A required header parsed as `T`.
fn required<T: FromStr>(
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
fn is_marker(headers: &HeaderMap) -> bool {
    headers.get(MARKER).is_some()
}

/// What esrc records of every event: its version, schema version and time.
struct Stamp {
    version: u64,
    schema: u32,
    time: i64,
}

/// The fields of format 2's `Esrc` header (`esrc`, looked up by the caller) after the
/// format, or `None` for a format-1 message. A later format is an error that says so,
/// rather than a misread; a message with neither format's headers is an error naming
/// `Esrc`.
fn esrc_fields<'a>(
    esrc: Option<&'a str>,
    headers: &HeaderMap,
    subject: &str,
    sequence: u64,
) -> Result<Option<std::str::Split<'a, char>>, Error> {
    let Some(value) = esrc else {
        if headers.get(VERSION).is_some() {
            return Ok(None);
        }
        return Err(malformed(subject, sequence, ESRC, None));
    };
    let mut fields = value.split(' ');
    match fields.next() {
        Some(FORMAT) => Ok(Some(fields)),
        Some(format) => match format.parse::<u64>() {
            Ok(format) if format > u64::from(format3::FORMAT) => {
                Err(newer(subject, sequence, format))
            }
            _ => Err(malformed(subject, sequence, ESRC, Some(value))),
        },
        None => Err(malformed(subject, sequence, ESRC, Some(value))),
    }
}

/// A message stored in a format newer than this crate reads.
fn newer(subject: &str, sequence: u64, format: u64) -> Error {
    format_error(
        subject,
        sequence,
        DecodeError::Envelope(format!(
            "stored in format {format}, newer than format {}, the newest this esrc-nats \
             reads; upgrade esrc-nats",
            format3::FORMAT
        )),
    )
}

/// Where a message keeps its event's fields.
enum Kept {
    /// In headers: formats 1 and 2, markers, and messages esrc did not write.
    Headers,
    /// In a head in front of the payload, in this format (3 or later).
    Payload(u8),
}

fn kept(headers: &HeaderMap, payload: &[u8]) -> Kept {
    // Markers have empty payloads: only a head can make a message kept in its payload,
    // and only the headers of formats 1 and 2 overrule one.
    match format3::format_of(payload) {
        Some(format) if headers.get(ESRC).is_none() && headers.get(VERSION).is_none() => {
            Kept::Payload(format)
        }
        _ => Kept::Headers,
    }
}

/// The event id of a format-3 event: in its head, or else its `Nats-Msg-Id`.
fn head_event_id(in_head: Option<Uuid>, headers: &HeaderMap) -> Option<Uuid> {
    in_head.or_else(|| header::<Uuid>(headers, MSG_ID))
}

/// The head of a message kept in format 3, or the error naming what is wrong with it.
fn head(format: u8, payload: &[u8], subject: &str, sequence: u64) -> Result<format3::Head, Error> {
    if format != format3::FORMAT {
        return Err(newer(subject, sequence, u64::from(format)));
    }
    format3::decode(payload).map_err(|bad| {
        format_error(
            subject,
            sequence,
            DecodeError::Field {
                field: bad.field,
                found: bad.found,
            },
        )
    })
}

/// The version of a stored event or marker, checking the whole `Esrc` header.
pub(crate) fn version(
    headers: &HeaderMap,
    payload: &[u8],
    subject: &str,
    sequence: u64,
) -> Result<u64, Error> {
    if let Kept::Payload(format) = kept(headers, payload) {
        return head(format, payload, subject, sequence).map(|head| head.version);
    }
    let esrc = headers.get(ESRC).map(|value| value.as_str());
    if !is_marker(headers) {
        return stamp(esrc, headers, subject, sequence).map(|stamp| stamp.version);
    }
    match esrc_fields(esrc, headers, subject, sequence)? {
        Some(mut fields) => match (parsed(fields.next()), fields.next()) {
            (Some(version), None) => Ok(version),
            _ => Err(malformed(subject, sequence, ESRC, esrc)),
        },
        None => required(headers, VERSION, subject, sequence),
    }
}

/// The event id and version of a stored event, in any format; `None` for a marker or a
/// message esrc cannot read.
pub(crate) fn identity(
    headers: &HeaderMap,
    payload: &[u8],
    subject: &str,
    sequence: u64,
) -> Option<(Uuid, u64)> {
    match kept(headers, payload) {
        Kept::Payload(format3::FORMAT) => {
            let (event_id, version) = format3::identity(payload)?;
            Some((head_event_id(event_id, headers)?, version))
        }
        Kept::Payload(_) => None,
        Kept::Headers => {
            let event_id = header::<Uuid>(headers, MSG_ID)?;
            let version = version(headers, payload, subject, sequence).unwrap_or(0);
            Some((event_id, version))
        }
    }
}

/// The version, schema version and time of an event, from its `Esrc` header (`esrc`) or
/// format 1's headers.
fn stamp(
    esrc: Option<&str>,
    headers: &HeaderMap,
    subject: &str,
    sequence: u64,
) -> Result<Stamp, Error> {
    let Some(mut fields) = esrc_fields(esrc, headers, subject, sequence)? else {
        return Ok(Stamp {
            version: required(headers, VERSION, subject, sequence)?,
            schema: required(headers, SCHEMA, subject, sequence)?,
            time: required(headers, TIME, subject, sequence)?,
        });
    };
    let mut next = || fields.next();
    let (version, schema, time, extra) = (next(), next(), next(), next());
    match (parsed(version), parsed(schema), parsed(time), extra) {
        (Some(version), Some(schema), Some(time), None) => Ok(Stamp {
            version,
            schema,
            time,
        }),
        _ => Err(malformed(subject, sequence, ESRC, esrc)),
    }
}

fn parsed<T: FromStr>(field: Option<&str>) -> Option<T> {
    field?.parse().ok()
}

/// Which append stored an event, as far as its own headers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendTag {
    /// A one-event append (formats 2 and 3: no batch headers).
    Alone,
    /// Part of an atomic batch (how many of its events a subject holds is counted by
    /// the reader: a batch may write several subjects).
    Batch { id: u128 },
    /// Format 1: the append's tag and size on every event.
    Tagged { id: u128, len: usize },
    /// Not written by esrc: it matches no append.
    Foreign,
}

/// The append a stored message came from.
pub(crate) fn append_tag(headers: &HeaderMap, payload: &[u8]) -> AppendTag {
    let current = match kept(headers, payload) {
        Kept::Payload(format) => format == format3::FORMAT,
        Kept::Headers => headers.get(ESRC).is_some(),
    };
    if current {
        return match header::<Uuid>(headers, BATCH_ID) {
            None if headers.get(BATCH_ID).is_none() => AppendTag::Alone,
            None => AppendTag::Foreign,
            Some(id) => match header::<usize>(headers, BATCH_SEQUENCE) {
                Some(_) => AppendTag::Batch { id: id.as_u128() },
                None => AppendTag::Foreign,
            },
        };
    }
    match (
        header::<Uuid>(headers, BATCH),
        header::<usize>(headers, BATCH_SIZE),
    ) {
        (Some(id), Some(len)) => AppendTag::Tagged {
            id: id.as_u128(),
            len,
        },
        _ => AppendTag::Foreign,
    }
}

/// Rebuilds an envelope from a stored message; `None` for a truncation marker.
///
/// The headers are walked once (a format-1 message falls back to lookups by name).
pub(crate) fn envelope(
    prefix_len: usize,
    subject: &str,
    sequence: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<Option<Envelope>, Error> {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    if let Kept::Payload(format) = kept(headers, &payload) {
        let head = head(format, &payload, subject, sequence)?;
        return from_head(head, prefix_len, subject, sequence, headers, payload).map(Some);
    }
    let mut found = Found::default();
    for (name, values) in headers.iter() {
        let Some(value) = values.first().map(|value| value.as_str()) else {
            continue;
        };
        match AsRef::<str>::as_ref(name) {
            MSG_ID => found.event_id = Some(value),
            ESRC => found.esrc = Some(value),
            META => found.meta = Some(value),
            CORRELATION => found.correlation = Some(value),
            CAUSATION => found.causation = Some(value),
            TYPE => found.event_type = Some(value),
            TAGS => found.tags = Some(value),
            MARKER => return Ok(None),
            _ => {}
        }
    }
    let (category, aggregate_id) = stream_of(prefix_len, subject, sequence)?;
    let stamp = stamp(found.esrc, headers, subject, sequence)?;
    let values = match found.meta {
        None => Default::default(),
        Some(value) => serde_json::from_str(value)
            .map_err(|_| malformed(subject, sequence, META, Some(value)))?,
    };
    let event_id = found
        .event_id
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed(subject, sequence, MSG_ID, found.event_id))?;
    let mut metadata = Metadata::default();
    metadata.correlation_id = found.correlation.and_then(|value| value.parse().ok());
    metadata.causation_id = found.causation.and_then(|value| value.parse().ok());
    metadata.values = values;
    let tags = match found.tags {
        None => Vec::new(),
        Some(value) => value
            .split(' ')
            .map(Tag::new)
            .collect::<Result<_, _>>()
            .map_err(|_| malformed(subject, sequence, TAGS, Some(value)))?,
    };
    let event_type = match found.event_type {
        Some(value) if esrc_core::backend::validate_name(value).is_err() => {
            return Err(malformed(subject, sequence, TYPE, Some(value)));
        }
        value => value.unwrap_or_default(),
    };
    let timestamp = Timestamp::from_micros(stamp.time);
    let event = NewEvent::from_parts(event_id, timestamp, stamp.schema, payload)
        .with_type(event_type)
        .with_tags(tags)
        .with_metadata(metadata);
    Ok(Some(event.into_envelope(
        category,
        aggregate_id,
        Version(stamp.version),
        Position(sequence),
    )))
}

/// Rebuilds the envelope of a format-3 event from its head.
fn from_head(
    head: format3::Head,
    prefix_len: usize,
    subject: &str,
    sequence: u64,
    headers: &HeaderMap,
    payload: Bytes,
) -> Result<Envelope, Error> {
    let (category, aggregate_id) = stream_of(prefix_len, subject, sequence)?;
    let event_id = head_event_id(head.event_id, headers).ok_or_else(|| {
        let value = headers.get(MSG_ID).map(|value| value.as_str());
        malformed(subject, sequence, MSG_ID, value)
    })?;
    // A time counted from an id that is not a UUIDv7 cannot be placed.
    let time = head
        .time(event_id)
        .ok_or_else(|| malformed(subject, sequence, "time", None))?;
    let body = payload.slice(head.payload_at..);
    let event = NewEvent::from_parts(event_id, Timestamp::from_micros(time), head.schema, body)
        .with_type(head.event_type)
        .with_tags(head.tags)
        .with_metadata(head.metadata);
    Ok(event.into_envelope(
        category,
        aggregate_id,
        Version(head.version),
        Position(sequence),
    ))
}

/// The category and aggregate id a stream's subject names.
fn stream_of(prefix_len: usize, subject: &str, sequence: u64) -> Result<(&str, Uuid), Error> {
    let rest = subject.get(prefix_len + 1..).unwrap_or_default();
    let (category, id) = rest
        .split_once('.')
        .ok_or_else(|| malformed(subject, sequence, "subject", Some(subject)))?;
    let aggregate_id =
        Uuid::parse_str(id).map_err(|_| malformed(subject, sequence, "aggregate id", Some(id)))?;
    Ok((category, aggregate_id))
}

/// What [`envelope`] picks out of the headers in its one pass.
#[derive(Default)]
struct Found<'a> {
    event_id: Option<&'a str>,
    esrc: Option<&'a str>,
    meta: Option<&'a str>,
    correlation: Option<&'a str>,
    causation: Option<&'a str>,
    event_type: Option<&'a str>,
    tags: Option<&'a str>,
}
