//! Format 3: an event's metadata in a compact binary head in front of its payload, so
//! that a message carries no header of esrc's own (`codec.rs` chooses the format, and
//! reads formats 1 and 2 from headers). The crate README documents the layout:
//!
//! ```text
//! 0xE5 0x03                 the format (0xE5 then a byte below 0x80 starts no UTF-8 text)
//! flags                     1 byte: which optional fields follow
//! [event id]                16 bytes, if flags & 32 (else the message's `Nats-Msg-Id`)
//! version                   varint
//! schema version            varint
//! time                      varint, zigzag: µs since the Unix epoch; with flags & 64, µs
//!                           since the millisecond of the event id (a UUIDv7)
//! [correlation id]          16 bytes, if flags & 1
//! [causation id]            16 bytes, if flags & 2
//! [key/values]              varint count, then each key and value as varint length + UTF-8, if flags & 4
//! [type]                    varint length + UTF-8, if flags & 8
//! [tags]                    varint count, then each as varint length + UTF-8, if flags & 16
//! payload                   the rest: the event's payload as the application encoded it
//! ```
//!
//! Varints are unsigned LEB128 (7 bits a byte, low first). A flag this crate does not know
//! is an error, never a field skipped.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use esrc_core::{Metadata, NewEvent, Tag};
use uuid::Uuid;

/// The first byte of a payload in format 3 or later.
pub(crate) const MAGIC: u8 = 0xE5;
/// The format written here.
pub(crate) const FORMAT: u8 = 3;

const CORRELATION: u8 = 1;
const CAUSATION: u8 = 2;
const VALUES: u8 = 4;
const TYPE: u8 = 8;
const TAGS: u8 = 16;
const ID: u8 = 32;
const SINCE_ID: u8 = 64;
const KNOWN: u8 = CORRELATION | CAUSATION | VALUES | TYPE | TAGS | ID | SINCE_ID;

/// The µs since the Unix epoch of the millisecond a UUIDv7 was made in.
fn id_micros(id: Uuid) -> Option<i64> {
    if id.get_version_num() != 7 {
        return None;
    }
    let bytes = id.as_bytes();
    let millis = bytes[..6]
        .iter()
        .fold(0_i64, |millis, byte| (millis << 8) | i64::from(*byte));
    Some(millis * 1_000)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// The format a payload declares, if it starts with [`MAGIC`] and a format byte.
pub(crate) fn format_of(payload: &[u8]) -> Option<u8> {
    match payload {
        [MAGIC, format, ..] if *format < 0x80 => Some(*format),
        _ => None,
    }
}

/// The payload of `event`, stored at `version`, with its head in front; the head holds
/// the event id only if `with_id` (else the message's `Nats-Msg-Id` header does).
pub(crate) fn encode(event: &NewEvent, version: u64, with_id: bool) -> Bytes {
    let metadata = &event.metadata;
    let time = event.timestamp.as_micros();
    // An event made with its id (a UUIDv7) usually within a millisecond of it: its time
    // as the µs since the id's millisecond takes 2 bytes instead of 8.
    let since_id = id_micros(event.event_id)
        .and_then(|base| time.checked_sub(base))
        .filter(|delta| delta.unsigned_abs() < 1 << 20);
    let mut flags = 0;
    for (present, flag) in [
        (with_id, ID),
        (since_id.is_some(), SINCE_ID),
        (metadata.correlation_id.is_some(), CORRELATION),
        (metadata.causation_id.is_some(), CAUSATION),
        (!metadata.values.is_empty(), VALUES),
        (!event.event_type.is_empty(), TYPE),
        (!event.tags.is_empty(), TAGS),
    ] {
        if present {
            flags |= flag;
        }
    }
    let mut out = BytesMut::with_capacity(40 + event.payload.len());
    out.put_slice(&[MAGIC, FORMAT, flags]);
    if with_id {
        out.put_slice(event.event_id.as_bytes());
    }
    varint(&mut out, version);
    varint(&mut out, u64::from(event.schema_version));
    varint(&mut out, zigzag(since_id.unwrap_or(time)));
    for id in [metadata.correlation_id, metadata.causation_id]
        .into_iter()
        .flatten()
    {
        out.put_slice(id.as_bytes());
    }
    if !metadata.values.is_empty() {
        varint(&mut out, metadata.values.len() as u64);
        for (key, value) in &metadata.values {
            text(&mut out, key);
            text(&mut out, value);
        }
    }
    if !event.event_type.is_empty() {
        text(&mut out, &event.event_type);
    }
    if !event.tags.is_empty() {
        varint(&mut out, event.tags.len() as u64);
        for tag in &event.tags {
            text(&mut out, tag.as_str());
        }
    }
    out.put_slice(&event.payload);
    out.freeze()
}

fn varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn text(out: &mut BytesMut, text: &str) {
    varint(out, text.len() as u64);
    out.put_slice(text.as_bytes());
}

/// What a format-3 head holds.
#[derive(Debug)]
pub(crate) struct Head {
    /// The event id, if the head holds it.
    pub(crate) event_id: Option<Uuid>,
    pub(crate) version: u64,
    pub(crate) schema: u32,
    /// The time field: µs since the epoch, or since the event id's millisecond.
    time: i64,
    /// Whether `time` counts from the event id's millisecond.
    since_id: bool,
    pub(crate) metadata: Metadata,
    pub(crate) event_type: String,
    pub(crate) tags: Vec<Tag>,
    /// Where the payload starts.
    pub(crate) payload_at: usize,
}

impl Head {
    /// The event's time in µs since the Unix epoch, given its id (from the head or the
    /// message's `Nats-Msg-Id`); `None` when the time counts from an id that is not a
    /// UUIDv7.
    pub(crate) fn time(&self, event_id: Uuid) -> Option<i64> {
        if !self.since_id {
            return Some(self.time);
        }
        id_micros(event_id)?.checked_add(self.time)
    }
}

/// Why a head cannot be read: the field that is wrong, and what was found if it helps.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) field: &'static str,
    pub(crate) found: Option<String>,
}

fn bad(field: &'static str) -> Bad {
    Bad { field, found: None }
}

/// Reads the head of a format-3 payload (the caller checked the format).
pub(crate) fn decode(payload: &[u8]) -> Result<Head, Bad> {
    let mut reader = Reader {
        bytes: payload,
        at: 2,
    };
    let (flags, event_id, version) = reader.lead()?;
    if flags & !KNOWN != 0 {
        return Err(Bad {
            field: "flags",
            found: Some(format!("{flags:#04x}")),
        });
    }
    let schema =
        u32::try_from(reader.varint("schema version")?).map_err(|_| bad("schema version"))?;
    let time = unzigzag(reader.varint("time")?);
    let mut metadata = Metadata::default();
    if flags & CORRELATION != 0 {
        metadata.correlation_id = Some(reader.uuid("correlation id")?);
    }
    if flags & CAUSATION != 0 {
        metadata.causation_id = Some(reader.uuid("causation id")?);
    }
    if flags & VALUES != 0 {
        let count = reader.varint("key/values")?;
        let mut values = BTreeMap::new();
        for _ in 0..count {
            let key = reader.text("key/values")?;
            let value = reader.text("key/values")?;
            values.insert(key.to_owned(), value.to_owned());
        }
        metadata.values = values;
    }
    let event_type = if flags & TYPE != 0 {
        let name = reader.text("type")?;
        if esrc_core::backend::validate_name(name).is_err() {
            return Err(Bad {
                field: "type",
                found: Some(name.to_owned()),
            });
        }
        name.to_owned()
    } else {
        String::new()
    };
    let mut tags = Vec::new();
    if flags & TAGS != 0 {
        let count = reader.varint("tags")?;
        for _ in 0..count {
            let tag = reader.text("tags")?;
            tags.push(Tag::new(tag).map_err(|_| Bad {
                field: "tags",
                found: Some(tag.to_owned()),
            })?);
        }
    }
    Ok(Head {
        event_id,
        version,
        schema,
        time,
        since_id: flags & SINCE_ID != 0,
        metadata,
        event_type,
        tags,
        payload_at: reader.at,
    })
}

/// The event id (if the head holds it) and version of a format-3 payload, without the
/// rest of its head.
pub(crate) fn identity(payload: &[u8]) -> Option<(Option<Uuid>, u64)> {
    let mut reader = Reader {
        bytes: payload,
        at: 2,
    };
    let (_, event_id, version) = reader.lead().ok()?;
    Some((event_id, version))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The fields every head starts with, after the format: the flags, the event id if
    /// the head holds it, the version.
    fn lead(&mut self) -> Result<(u8, Option<Uuid>, u64), Bad> {
        let flags = self.byte("flags")?;
        let event_id = if flags & ID != 0 {
            Some(self.uuid("event id")?)
        } else {
            None
        };
        Ok((flags, event_id, self.varint("version")?))
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], Bad> {
        let end = self.at.checked_add(len).ok_or_else(|| bad(field))?;
        let taken = self.bytes.get(self.at..end).ok_or_else(|| bad(field))?;
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, Bad> {
        Ok(self.take(1, field)?[0])
    }

    fn uuid(&mut self, field: &'static str) -> Result<Uuid, Bad> {
        let bytes = self.take(16, field)?;
        Uuid::from_slice(bytes).map_err(|_| bad(field))
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, Bad> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte(field)?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(field))
    }

    fn text(&mut self, field: &'static str) -> Result<&'a str, Bad> {
        let len = usize::try_from(self.varint(field)?).map_err(|_| bad(field))?;
        std::str::from_utf8(self.take(len, field)?).map_err(|_| bad(field))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esrc_core::Timestamp;

    fn roundtrip(event: &NewEvent, version: u64) -> (Head, Bytes) {
        let bytes = encode(event, version, true);
        assert_eq!(format_of(&bytes), Some(FORMAT));
        (decode(&bytes).unwrap(), bytes)
    }

    #[test]
    fn a_plain_event_costs_13_bytes_and_its_id_16_more() {
        let event = NewEvent::from_payload(1, r#"{"n":1}"#)
            .with_timestamp(Timestamp::from_micros(1_700_000_000_123_457));
        let (head, bytes) = roundtrip(&event, 1);
        // The time is 52 bits zigzagged: 8 bytes of 7 bits.
        assert_eq!(bytes.len(), 3 + 16 + 1 + 1 + 8 + 7, "{bytes:?}");
        assert_eq!(
            (head.event_id, head.version, head.schema),
            (Some(event.event_id), 1, 1)
        );
        assert_eq!(head.time, 1_700_000_000_123_457);
        assert_eq!(&bytes[head.payload_at..], br#"{"n":1}"#);
        assert_eq!(identity(&bytes), Some((Some(event.event_id), 1)));

        let without = encode(&event, 1, false);
        assert_eq!(without.len(), 3 + 1 + 1 + 8 + 7, "{without:?}");
        let head = decode(&without).unwrap();
        assert_eq!(
            (head.event_id, head.version, head.time),
            (None, 1, event.timestamp.as_micros())
        );
        assert_eq!(&without[head.payload_at..], br#"{"n":1}"#);
        assert_eq!(identity(&without), Some((None, 1)));
    }

    #[test]
    fn a_time_near_its_uuidv7_id_takes_two_bytes() {
        let id = Uuid::now_v7();
        let base = id_micros(id).unwrap();
        for delta in [0, 999, 1_234, -5, (1 << 20) - 1] {
            let event = NewEvent::from_payload(1, "")
                .with_event_id(id)
                .with_timestamp(Timestamp::from_micros(base + delta));
            let bytes = encode(&event, 1, false);
            let head = decode(&bytes).unwrap();
            assert_eq!(head.time(id), Some(base + delta), "{delta}");
            assert!(head.since_id, "{delta}");
            assert!(bytes.len() <= 3 + 1 + 1 + 3, "{delta}: {bytes:?}");
        }
        // Far from its id: the whole time.
        let far = NewEvent::from_payload(1, "")
            .with_event_id(id)
            .with_timestamp(Timestamp::from_micros(base + (1 << 20)));
        let head = decode(&encode(&far, 1, false)).unwrap();
        assert!(!head.since_id);
        assert_eq!(head.time(id), Some(base + (1 << 20)));
        // The same head read with an id that is no UUIDv7 has no time.
        let near = NewEvent::from_payload(1, "").with_event_id(id);
        let head = decode(&encode(&near, 1, false)).unwrap();
        assert_eq!(head.time(Uuid::new_v4()), None);
    }

    #[test]
    fn every_field_comes_back() {
        let event = NewEvent::from_payload(300, "payload")
            .with_event_id(Uuid::new_v4())
            .with_timestamp(Timestamp::from_micros(-5))
            .with_type("Enrolled")
            .with_tags([
                Tag::new("course:c.1").unwrap(),
                Tag::new("student:é").unwrap(),
            ])
            .with_metadata(
                Metadata::new()
                    .with_correlation_id(Uuid::now_v7())
                    .with_causation_id(Uuid::now_v7())
                    .with("user", "alice")
                    .with("", "empty key"),
            );
        let (head, bytes) = roundtrip(&event, u64::MAX);
        assert_eq!(head.version, u64::MAX);
        assert_eq!((head.schema, head.time(event.event_id)), (300, Some(-5)));
        assert_eq!(head.metadata, event.metadata);
        assert_eq!(head.event_type, "Enrolled");
        assert_eq!(head.tags, event.tags);
        assert_eq!(&bytes[head.payload_at..], b"payload");
    }

    #[test]
    fn a_cut_or_unknown_head_names_its_field() {
        let event = NewEvent::from_payload(1, "").with_type("Enrolled");
        let bytes = encode(&event, 7, true);
        for cut in 2..bytes.len() {
            let error = decode(&bytes[..cut]).unwrap_err();
            assert!(!error.field.is_empty(), "cut at {cut}");
        }
        let mut unknown = bytes.to_vec();
        unknown[2] |= 0x80;
        assert_eq!(decode(&unknown).unwrap_err().field, "flags");
        let mut long = vec![MAGIC, FORMAT, 0];
        long.extend_from_slice(&[0xff; 11]);
        assert_eq!(decode(&long).unwrap_err().field, "version");
    }

    #[test]
    fn text_never_looks_like_a_head() {
        for text in ["{}", "[1]", "\"x\"", "é", "\u{5000}"] {
            assert_eq!(format_of(text.as_bytes()), None, "{text}");
        }
    }
}
