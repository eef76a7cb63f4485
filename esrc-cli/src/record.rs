//! The JSON Lines format of `export`, `import`, `stream --json` and `tail --json`: one
//! event a line, with every field an envelope has.

use std::time::SystemTime;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use esrc::{Envelope, Metadata, NewEvent, Tag, Timestamp, Uuid, Version};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The version of this format, in every line, so that a later esrc can still read it.
pub(crate) const FORMAT: u32 = 1;

/// One stored event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// The format's version ([`FORMAT`]).
    pub(crate) format: u32,
    pub(crate) category: String,
    pub(crate) id: Uuid,
    pub(crate) version: u64,
    /// The event's position in the store it was read from (not kept by an import: the
    /// target gives its own positions).
    pub(crate) position: u64,
    pub(crate) event_id: Uuid,
    /// RFC 3339, UTC, to the microsecond.
    pub(crate) timestamp: String,
    pub(crate) schema_version: u32,
    /// The event's type within its category (its variant), when the store kept it.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub(crate) event_type: String,
    /// The event's tags, `key:value` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub(crate) metadata: Metadata,
    /// The payload as stored, when it is JSON (always, for events esrc wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<Box<RawValue>>,
    /// The payload in base64, when it is not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload_base64: Option<String>,
}

fn is_empty(metadata: &Metadata) -> bool {
    *metadata == Metadata::default()
}

/// RFC 3339 to the microsecond; a time before 1970 as microseconds (RFC 3339 tools
/// cannot print it).
pub(crate) fn format_time(timestamp: Timestamp) -> String {
    if timestamp.as_micros() < 0 {
        return format!("{}µs", timestamp.as_micros());
    }
    humantime::format_rfc3339_micros(timestamp.to_system_time()).to_string()
}

fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    if let Some(micros) = text.strip_suffix("µs") {
        return Ok(Timestamp::from_micros(micros.parse()?));
    }
    let time: SystemTime = humantime::parse_rfc3339(text).with_context(|| {
        format!("`{text}` is not an RFC 3339 time such as 2026-11-27T17:36:49.123456Z")
    })?;
    Ok(Timestamp::from(time))
}

impl Record {
    pub(crate) fn from_envelope(envelope: &Envelope) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(&envelope.payload)
            .ok()
            .and_then(|text| RawValue::from_string(text.to_owned()).ok())
        {
            Some(json) => (Some(json), None),
            None => (None, Some(BASE64.encode(&envelope.payload))),
        };
        Record {
            format: FORMAT,
            category: envelope.category.clone(),
            id: envelope.aggregate_id,
            version: envelope.version.get(),
            position: envelope.position.get(),
            event_id: envelope.event_id,
            timestamp: format_time(envelope.timestamp),
            schema_version: envelope.schema_version,
            event_type: envelope.event_type.clone(),
            tags: envelope.tags.iter().map(ToString::to_string).collect(),
            metadata: envelope.metadata.clone(),
            payload,
            payload_base64,
        }
    }

    /// Parses one line of the format.
    pub(crate) fn parse(line: &str) -> anyhow::Result<Self> {
        let record: Record = serde_json::from_str(line)?;
        if record.format != FORMAT {
            bail!(
                "format {} is not one this esrc reads (it reads format {FORMAT})",
                record.format
            );
        }
        if record.version == 0 {
            bail!("versions start at 1");
        }
        Ok(record)
    }

    /// The event, as it is appended to another store.
    pub(crate) fn into_event(self) -> anyhow::Result<(String, Uuid, Version, NewEvent)> {
        let payload = match (self.payload, self.payload_base64) {
            (Some(json), None) => json.get().as_bytes().to_vec(),
            (None, Some(encoded)) => BASE64
                .decode(encoded)
                .context("`payload_base64` is not base64")?,
            _ => bail!("a line has either `payload` or `payload_base64`"),
        };
        let tags = self
            .tags
            .into_iter()
            .map(Tag::new)
            .collect::<Result<Vec<_>, _>>()?;
        let event = NewEvent::from_payload(self.schema_version, payload)
            .with_event_id(self.event_id)
            .with_timestamp(parse_time(&self.timestamp)?)
            .with_type(self.event_type)
            .with_tags(tags)
            .with_metadata(self.metadata);
        Ok((self.category, self.id, Version(self.version), event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esrc::Position;

    fn envelope(payload: &[u8]) -> Envelope {
        NewEvent::from_payload(3, payload.to_vec())
            .with_timestamp(Timestamp::from_micros(1_795_000_000_123_456))
            .with_type("Opened")
            .with_tags([
                Tag::new("table:7").unwrap_or_else(|error| panic!("{error}")),
                Tag::new("waiter:ada@example.org").unwrap_or_else(|error| panic!("{error}")),
            ])
            .with_metadata(
                Metadata::new()
                    .with_correlation_id(Uuid::now_v7())
                    .with("k", "v"),
            )
            .into_envelope("Tab", Uuid::now_v7(), Version(7), Position(42))
    }

    #[test]
    fn a_line_keeps_every_field_and_the_payload_bytes() {
        // Key order and spacing of the payload are kept as stored.
        for payload in [&br#"{"z":1, "a":[true]}"#[..], b"\xff\x00not json"] {
            let envelope = envelope(payload);
            let line = serde_json::to_string(&Record::from_envelope(&envelope)).unwrap_or_default();
            let (category, id, version, event) = Record::parse(&line)
                .and_then(Record::into_event)
                .unwrap_or_else(|error| panic!("{error}: {line}"));
            assert_eq!(
                (category.as_str(), id, version),
                ("Tab", envelope.aggregate_id, envelope.version)
            );
            assert_eq!(event.event_id, envelope.event_id);
            assert_eq!(event.timestamp, envelope.timestamp);
            assert_eq!(event.schema_version, 3);
            assert_eq!(event.metadata, envelope.metadata);
            assert_eq!(event.event_type, "Opened");
            assert_eq!(event.tags, envelope.tags, "tags are kept");
            assert_eq!(event.payload, envelope.payload);
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        let good =
            serde_json::to_string(&Record::from_envelope(&envelope(b"{}"))).unwrap_or_default();
        assert!(Record::parse(&good).is_ok());
        for bad in [
            "",
            "{",
            "[]",
            &good.replace("\"format\":1", "\"format\":9"),
            &good.replace("\"version\":7", "\"version\":0"),
            &good.replace("\"category\"", "\"kategory\""),
        ] {
            assert!(Record::parse(bad).is_err(), "{bad}");
        }
        let bad_tag = good.replace("table:7", "table:a b");
        assert!(
            Record::parse(&bad_tag)
                .and_then(Record::into_event)
                .is_err(),
            "an invalid tag in a line is refused"
        );
        let bad_time = good.replace("2026", "20x6");
        assert!(
            Record::parse(&bad_time)
                .and_then(Record::into_event)
                .is_err()
        );
    }
}
