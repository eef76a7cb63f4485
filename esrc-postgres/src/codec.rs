//! An event to and from its row: the arrays an append binds, and the envelope a read
//! decodes (binary results only; a value esrc never writes is a format error naming the
//! event, never a panic).

use std::sync::Arc;

use esrc_core::{
    DecodeError, Envelope, Error, Metadata, NewEvent, Position, Tag, Timestamp, Version,
};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{AssertSqlSafe, Row, ValueRef};
use uuid::Uuid;

use crate::error::{BACKEND, backend, out_of_range};

/// The columns of one append, as the arrays the statement unnests.
pub(crate) struct Batch<'a> {
    pub(crate) event_ids: Vec<Uuid>,
    pub(crate) micros: Vec<i64>,
    pub(crate) schema_versions: Vec<i32>,
    pub(crate) correlation_ids: Vec<Option<Uuid>>,
    pub(crate) causation_ids: Vec<Option<Uuid>>,
    pub(crate) metadata: Vec<Option<String>>,
    pub(crate) payloads: Vec<&'a [u8]>,
    pub(crate) event_types: Vec<&'a str>,
    /// Each event's tags joined by newlines (which no tag contains), or NULL.
    pub(crate) tags: Vec<Option<String>>,
    /// The distinct tags of the batch, sorted.
    pub(crate) distinct_tags: Vec<&'a str>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(events: &'a [NewEvent]) -> Result<Self, Error> {
        let mut batch = Batch {
            event_ids: Vec::with_capacity(events.len()),
            micros: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            correlation_ids: Vec::with_capacity(events.len()),
            causation_ids: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            tags: Vec::with_capacity(events.len()),
            distinct_tags: Vec::new(),
        };
        for event in events {
            batch.event_ids.push(event.event_id);
            batch.micros.push(event.timestamp.as_micros());
            batch
                .schema_versions
                .push(i32::try_from(event.schema_version).map_err(|_| {
                    Error::backend(
                        BACKEND,
                        false,
                        "schema versions above 2^31 - 1 cannot be stored",
                    )
                })?);
            batch.correlation_ids.push(event.metadata.correlation_id);
            batch.causation_ids.push(event.metadata.causation_id);
            batch.metadata.push(event.metadata.values_json()?);
            batch.payloads.push(&event.payload);
            batch.event_types.push(&event.event_type);
            batch.tags.push(match event.tags.as_slice() {
                [] => None,
                tags => Some(
                    tags.iter()
                        .map(|tag| tag.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            });
            batch
                .distinct_tags
                .extend(event.tags.iter().map(|tag| tag.as_str()));
        }
        batch.distinct_tags.sort_unstable();
        batch.distinct_tags.dedup();
        Ok(batch)
    }
}

impl Batch<'_> {
    /// The first of `forms` (one event's values) with that event bound when the batch
    /// holds one event, else the second (arrays) through [`Batch::bind`].
    pub(crate) fn bind_either<'q>(
        &'q self,
        forms: &[Arc<str>; 2],
        category: &'q str,
        id: Uuid,
        expected: Option<i64>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        if self.event_ids.len() != 1 {
            return self.bind(&forms[1], category, id, expected);
        }
        sqlx::query(AssertSqlSafe(Arc::clone(&forms[0])))
            .bind(category)
            .bind(id)
            .bind(expected)
            .bind(self.event_ids[0])
            .bind(self.micros[0])
            .bind(self.schema_versions[0])
            .bind(self.correlation_ids[0])
            .bind(self.causation_ids[0])
            .bind(self.metadata[0].as_deref())
            .bind(self.payloads[0])
            .bind(self.event_types[0])
    }

    /// Whether an event of the batch has tags: then only the statements that store them
    /// (and lock them) may append it.
    pub(crate) fn tagged(&self) -> bool {
        !self.distinct_tags.is_empty()
    }

    /// [`Batch::bind`], and the tags with the keys of the locks the statement takes on
    /// them (`keys`, sorted): what `append` and `append_in` need.
    pub(crate) fn bind_tagged<'q>(
        &'q self,
        sql: &Arc<str>,
        category: &'q str,
        id: Uuid,
        expected: Option<i64>,
        keys: &'q [i64],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        self.bind(sql, category, id, expected)
            .bind(&self.tags)
            .bind(keys)
    }

    /// An append statement with the stream, the expectation and the batch's arrays bound.
    pub(crate) fn bind<'q>(
        &'q self,
        sql: &Arc<str>,
        category: &'q str,
        id: Uuid,
        expected: Option<i64>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(AssertSqlSafe(Arc::clone(sql)))
            .bind(category)
            .bind(id)
            .bind(expected)
            .bind(&self.event_ids)
            .bind(&self.micros)
            .bind(&self.schema_versions)
            .bind(&self.correlation_ids)
            .bind(&self.causation_ids)
            .bind(&self.metadata)
            .bind(&self.payloads)
            .bind(&self.event_types)
    }
}

/// Decodes a row selected with the schema's column list.
///
/// The columns come from esrc's own statements, whose types are fixed by the schema, so
/// the per-column type check is skipped (`try_get_unchecked`); each value is still
/// decoded safely, and a value that does not decode is an error, not a panic.
pub(crate) fn envelope(row: &PgRow) -> Result<Envelope, Error> {
    let get = |e: sqlx::Error| backend(e);
    let category: String = row.try_get_unchecked(0).map_err(get)?;
    let raw_position: i64 = row.try_get_unchecked(3).map_err(get)?;
    // A stored value esrc cannot read: an error naming the event, not a panic.
    let bad = |field: &'static str, found: String| {
        Error::format(
            category.clone(),
            Position(u64::try_from(raw_position).unwrap_or_default()),
            0,
            DecodeError::Field {
                field,
                found: Some(found),
            },
        )
    };
    let position =
        u64::try_from(raw_position).map_err(|_| bad("position", raw_position.to_string()))?;
    let schema_version: i32 = row.try_get_unchecked(6).map_err(get)?;
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| bad("schema_version", schema_version.to_string()))?;
    let version: i64 = row.try_get_unchecked(2).map_err(get)?;
    let version = u64::try_from(version).map_err(|_| bad("version", version.to_string()))?;
    let column = |index: usize, field: &'static str| {
        binary(row, index).map_err(|problem| match problem {
            Column::Failed(error) => error,
            Column::Text => bad(field, "a text-format value".to_owned()),
        })
    };
    let values = match column(9, "metadata")? {
        None => Default::default(),
        Some(jsonb) => {
            // jsonb's binary form: a format version (1), then the JSON text.
            let text = match jsonb.split_first() {
                Some((1, text)) => text,
                _ => return Err(bad("metadata", "an unknown jsonb format".to_owned())),
            };
            serde_json::from_slice(text).map_err(|source| {
                Error::format(
                    category.clone(),
                    Position(position),
                    schema_version,
                    source.into(),
                )
            })?
        }
    };
    let created_at = column(5, "created_at")?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| bad("created_at", "not an 8-byte timestamp".to_owned()))?;
    let micros = created_at
        .checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| bad("created_at", created_at.to_string()))?;
    let payload: &[u8] = row.try_get_unchecked(10).map_err(get)?;
    let mut metadata = Metadata::default();
    metadata.correlation_id = row.try_get_unchecked(7).map_err(get)?;
    metadata.causation_id = row.try_get_unchecked(8).map_err(get)?;
    metadata.values = values;
    let event_type: String = row.try_get_unchecked(11).map_err(get)?;
    let tags = stored_tags(row.try_get_unchecked(12).map_err(get)?, bad)?;
    let event_id = row.try_get_unchecked(4).map_err(get)?;
    let payload = bytes::Bytes::copy_from_slice(payload);
    let timestamp = Timestamp::from_micros(micros);
    let event = NewEvent::from_parts(event_id, timestamp, schema_version, payload)
        .with_type(event_type)
        .with_tags(tags)
        .with_metadata(metadata);
    let aggregate_id = row.try_get_unchecked(1).map_err(get)?;
    Ok(event.into_envelope(category, aggregate_id, Version(version), Position(position)))
}

/// The tags of a row (`NULL`: none), each validated; an invalid one is `bad("tags", …)`.
fn stored_tags(
    tags: Option<Vec<String>>,
    bad: impl Fn(&'static str, String) -> Error,
) -> Result<Vec<Tag>, Error> {
    tags.unwrap_or_default()
        .into_iter()
        .map(|tag| {
            Tag::new(tag).map_err(|error| match error {
                Error::InvalidName { name, .. } => bad("tags", name),
                other => other,
            })
        })
        .collect()
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a column could not be read.
enum Column {
    /// The driver failed.
    Failed(Error),
    /// The value came as text: prepared statements always get binary results, and
    /// anything else is refused rather than misread.
    Text,
}

/// The binary value of column `index`, `None` for NULL.
fn binary(row: &PgRow, index: usize) -> Result<Option<&[u8]>, Column> {
    let value = row
        .try_get_raw(index)
        .map_err(|e| Column::Failed(backend(e)))?;
    if value.is_null() {
        return Ok(None);
    }
    if value.format() != PgValueFormat::Binary {
        return Err(Column::Text);
    }
    value
        .as_bytes()
        .map(Some)
        .map_err(|e| Column::Failed(Error::backend(BACKEND, false, e)))
}

/// A core number as a column value (esrc never makes one above `i64::MAX`).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A column value as a core number; a negative one is out of range.
pub(crate) fn to_u64(what: &'static str, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| out_of_range(what, value))
}
