//! The store: appends, reads, truncation, snapshots and checkpoints.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::backend::{
    Doubling, StoredId, check_append, retry_outcome, validate_name, validate_names,
};
use esrc_core::{
    Appended, CheckpointStore, DecodeError, Envelope, Error, Expected, Metadata, NewEvent,
    Position, Publish, Replay, ReplayOne, Snapshot, SnapshotStore, Subscribe, Timestamp, Truncate,
    Version,
};
use futures::{Stream, StreamExt};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row, ValueRef};
use uuid::Uuid;

use crate::config::PgStoreBuilder;
use crate::error::{BACKEND, EVENT_ID_KEY, Failure, STREAM_VERSION_KEY, backend, out_of_range};
use crate::schema::{Sql, TX_SHIFT};
use crate::subscribe::Signals;

/// How many times an `Expected::Any` append is retried after losing a race for the next
/// version to another writer.
const ANY_ATTEMPTS: usize = 100;

/// A PostgreSQL event store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
    pub(crate) config: PgStoreBuilder,
    pub(crate) signals: Signals,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.sql.schema)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

/// The columns of one append, as the arrays the statement unnests.
struct Batch<'a> {
    event_ids: Vec<Uuid>,
    micros: Vec<i64>,
    schema_versions: Vec<i32>,
    correlation_ids: Vec<Option<Uuid>>,
    causation_ids: Vec<Option<Uuid>>,
    metadata: Vec<Option<String>>,
    payloads: Vec<&'a [u8]>,
}

impl<'a> Batch<'a> {
    fn new(events: &'a [NewEvent]) -> Result<Self, Error> {
        let mut batch = Batch {
            event_ids: Vec::with_capacity(events.len()),
            micros: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            correlation_ids: Vec::with_capacity(events.len()),
            causation_ids: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
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
        }
        Ok(batch)
    }
}

impl Batch<'_> {
    /// An append statement with the stream, the expectation and the batch's arrays bound.
    fn bind<'q>(
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
    }
}

/// What the append statement found.
enum Outcome {
    Stored(Appended),
    /// The expectation did not hold; the stream's version.
    Mismatch(Version),
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(what: &'static str, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| out_of_range(what, value))
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
    let bad = |field: &'static str, found: String| Error::Format {
        category: category.clone(),
        position: Position(u64::try_from(raw_position).unwrap_or_default()),
        schema_version: 0,
        source: DecodeError::Field {
            field,
            found: Some(found),
        },
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
            serde_json::from_slice(text).map_err(|source| Error::Format {
                category: category.clone(),
                position: Position(position),
                schema_version,
                source: source.into(),
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
    Ok(Envelope {
        aggregate_id: row.try_get_unchecked(1).map_err(get)?,
        version: Version(version),
        position: Position(position),
        event_id: row.try_get_unchecked(4).map_err(get)?,
        timestamp: Timestamp::from_micros(micros),
        schema_version,
        metadata: Metadata {
            correlation_id: row.try_get_unchecked(7).map_err(get)?,
            causation_id: row.try_get_unchecked(8).map_err(get)?,
            values,
        },
        payload: bytes::Bytes::copy_from_slice(payload),
        category,
    })
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

impl PgStore {
    /// A builder for the schema, pool and subscription options.
    pub fn builder() -> PgStoreBuilder {
        PgStoreBuilder::default()
    }

    /// Connects to `url` with the default options (schema `esrc`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// A store on an existing pool with the default options (schema `esrc`).
    pub fn new(pool: PgPool) -> Result<Self, Error> {
        Self::builder().build(pool)
    }

    pub(crate) fn from_parts(pool: PgPool, sql: Arc<Sql>, config: PgStoreBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                sql,
                config,
                signals: Signals::default(),
            }),
        }
    }

    /// Creates the schema and its tables, or upgrades them. Idempotent, and safe when
    /// several processes run it at once (it takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), Error> {
        self.inner.sql.migrate(&self.inner.pool).await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.sql.schema
    }

    /// Appends events inside the caller's transaction (or on a connection), so that the
    /// events commit together with the caller's other writes.
    ///
    /// The expectation is checked as in [`Publish::publish`]. A race lost to another
    /// writer, or a reused event id, aborts the caller's transaction; it is reported as
    /// [`Error::Conflict`] (with the expected version as the actual one, since nothing can
    /// be read in an aborted transaction) or [`Error::DuplicateEvent`] (naming the batch's
    /// first id). Subscribers see the events once the transaction commits, within the poll
    /// interval.
    pub async fn publish_in(
        &self,
        connection: &mut PgConnection,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        check_append(category, &events, (1 << TX_SHIFT) - 1)?;
        let batch = Batch::new(&events)?;
        let outcome = self
            .append(connection, category, id, expected, &batch, false)
            .await;
        let conflict = |actual| Error::Conflict {
            category: category.to_owned(),
            id,
            expected,
            actual,
        };
        match outcome {
            Ok(Outcome::Stored(appended)) => Ok(appended),
            Ok(Outcome::Mismatch(actual)) => Err(conflict(actual)),
            Err(Failure::Unique(constraint)) if constraint == EVENT_ID_KEY => {
                Err(Error::DuplicateEvent {
                    event_id: batch.event_ids[0],
                })
            }
            Err(Failure::Unique(_)) => Err(conflict(expected.version().unwrap_or_default())),
            Err(Failure::Other(error)) => Err(error),
        }
    }

    async fn append(
        &self,
        connection: &mut PgConnection,
        category: &str,
        id: Uuid,
        expected: Expected,
        batch: &Batch<'_>,
        alone: bool,
    ) -> Result<Outcome, Failure> {
        let expected = expected.version().map(|version| to_i64(version.get()));
        if let (Some(version), true) = (expected, alone) {
            return self
                .append_checked(connection, category, id, version, batch)
                .await;
        }
        let row = batch
            .bind(&self.inner.sql.append, category, id, expected)
            .fetch_one(&mut *connection)
            .await?;
        let actual: i64 = row.try_get(0).map_err(backend)?;
        let version: Option<i64> = row.try_get(1).map_err(backend)?;
        let position: Option<i64> = row.try_get(2).map_err(backend)?;
        match (version, position) {
            (Some(version), Some(position)) => Ok(Outcome::Stored(Appended {
                version: Version(to_u64("version", version)?),
                position: Position(to_u64("position", position)?),
            })),
            _ => Ok(Outcome::Mismatch(Version(to_u64("version", actual)?))),
        }
    }

    /// An append alone in its transaction, with an expected version: the fast path.
    async fn append_checked(
        &self,
        connection: &mut PgConnection,
        category: &str,
        id: Uuid,
        expected: i64,
        batch: &Batch<'_>,
    ) -> Result<Outcome, Failure> {
        let rows = batch
            .bind(&self.inner.sql.append_checked, category, id, Some(expected))
            .fetch_all(&mut *connection)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(Outcome::Mismatch(self.stream_version(category, id).await?));
        };
        let version: i64 = last.try_get(0).map_err(backend)?;
        let position: i64 = last.try_get(1).map_err(backend)?;
        Ok(Outcome::Stored(Appended {
            version: Version(to_u64("version", version)?),
            position: Position(to_u64("position", position)?),
        }))
    }

    async fn stream_version(&self, category: &str, id: Uuid) -> Result<Version, Error> {
        let version: i64 =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.stream_version)))
                .bind(category)
                .bind(id)
                .fetch_one(&self.inner.pool)
                .await
                .map_err(backend)?;
        Ok(Version(to_u64("version", version)?))
    }

    /// If the batch's ids are stored: `Ok(Some(outcome))` when they are exactly one earlier
    /// append of this stream (a retry), `Err(DuplicateEvent)` for any other reuse.
    async fn retried(
        &self,
        category: &str,
        id: Uuid,
        batch: &Batch<'_>,
    ) -> Result<Option<Appended>, Error> {
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.find_ids)))
            .bind(&batch.event_ids)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(backend)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            let row_category: String = row.try_get(1).map_err(backend)?;
            let row_id: Uuid = row.try_get(2).map_err(backend)?;
            let position: i64 = row.try_get(4).map_err(backend)?;
            stored.push(StoredId {
                event_id: row.try_get(0).map_err(backend)?,
                in_stream: row_category == category && row_id == id,
                version: Version(to_u64("version", row.try_get(3).map_err(backend)?)?),
                position: Position(to_u64("position", position)?),
                // One append is one transaction: the high bits of its positions.
                append: u128::from(to_u64("position", position)? >> TX_SHIFT),
                append_len: None,
            });
        }
        let Some(original) = retry_outcome(&batch.event_ids, &stored)? else {
            return Ok(None);
        };
        // The rule cannot know the transaction's size: check that it stored nothing else
        // in this stream, so that the batch is whole.
        let tx = original.position.get() >> TX_SHIFT;
        let tx = i64::try_from(tx).unwrap_or(i64::MAX);
        let same_tx: i64 =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.count_in_tx)))
                .bind(category)
                .bind(id)
                .bind(tx << TX_SHIFT)
                .bind((tx + 1) << TX_SHIFT)
                .fetch_one(&self.inner.pool)
                .await
                .map_err(backend)?;
        if same_tx != batch.event_ids.len() as i64 {
            return Err(Error::DuplicateEvent {
                event_id: batch.event_ids.first().copied().unwrap_or_default(),
            });
        }
        Ok(Some(original))
    }

    /// Fetches one page of envelopes with a prepared read statement.
    pub(crate) async fn page(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<Envelope>, Error> {
        let rows = query.fetch_all(&self.inner.pool).await.map_err(backend)?;
        rows.iter().map(envelope).collect()
    }

    /// The exclusive upper bound of a replay: above every event committed when it was
    /// called, and below the horizon, so that no event can still appear beneath it.
    ///
    /// When an older transaction still holds the horizon below committed events, the
    /// replay waits for it to finish (polling, with backoff up to the poll interval):
    /// returning those events now could let a later commit land behind them.
    async fn replay_limit(&self) -> Result<i64, Error> {
        let mut waits = Doubling::new(Duration::from_millis(2), self.inner.config.poll_interval);
        loop {
            let (horizon, head): (i64, Option<i64>) =
                sqlx::query_as(AssertSqlSafe(Arc::clone(&self.inner.sql.horizon)))
                    .fetch_one(&self.inner.pool)
                    .await
                    .map_err(backend)?;
            match head {
                None => return Ok(horizon),
                Some(head) if head < horizon => return Ok(head + 1),
                Some(_) => {
                    let wait = waits.next_delay();
                    tracing::debug!(?wait, "esrc: an open transaction holds the horizon back");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    pub(crate) fn page_size(&self) -> i64 {
        i64::from(self.inner.config.page_size)
    }
}

impl Publish for PgStore {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        check_append(category, &events, (1 << TX_SHIFT) - 1)?;
        let batch = Batch::new(&events)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut connection = self.inner.pool.acquire().await.map_err(backend)?;
            let outcome = self
                .append(&mut connection, category, id, expected, &batch, true)
                .await;
            drop(connection);
            let actual = match outcome {
                Ok(Outcome::Stored(appended)) => {
                    self.inner.signals.appended(self);
                    return Ok(appended);
                }
                Ok(Outcome::Mismatch(actual)) => actual,
                Err(Failure::Unique(constraint)) if constraint == EVENT_ID_KEY => {
                    return match self.retried(category, id, &batch).await? {
                        Some(original) => Ok(original),
                        None => Err(Error::DuplicateEvent {
                            event_id: batch.event_ids[0],
                        }),
                    };
                }
                Err(Failure::Unique(constraint)) if constraint == STREAM_VERSION_KEY => {
                    if expected == Expected::Any && attempt < ANY_ATTEMPTS {
                        continue;
                    }
                    self.stream_version(category, id).await?
                }
                Err(Failure::Unique(constraint)) => {
                    return Err(Error::backend(
                        BACKEND,
                        false,
                        format!("unexpected unique violation of {constraint}"),
                    ));
                }
                Err(Failure::Other(error)) => return Err(error),
            };
            // A retry of an append that succeeded finds the stream moved on: report the
            // original outcome rather than a conflict.
            if let Some(original) = self.retried(category, id, &batch).await? {
                return Ok(original);
            }
            return Err(Error::Conflict {
                category: category.to_owned(),
                id,
                expected,
                actual,
            });
        }
    }
}

impl ReplayOne for PgStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        let category = category.to_owned();
        async_stream::stream! {
            if let Err(error) = validate_name(&category) {
                yield Err(error);
                return;
            }
            // One query, streamed: rows come off the socket as the stream is polled.
            let mut rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.replay_one)))
                .bind(&category)
                .bind(id)
                .bind(to_i64(after.get()))
                .fetch(&self.inner.pool);
            while let Some(row) = rows.next().await {
                match row {
                    Ok(row) => yield envelope(&row),
                    Err(error) => {
                        yield Err(backend(error));
                        return;
                    }
                }
            }
        }
    }
}

impl Replay for PgStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        let categories = validate_names(categories);
        async_stream::stream! {
            let categories = match categories {
                Ok(categories) => categories,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let until = match self.replay_limit().await {
                Ok(until) => until,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let mut rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.replay)))
                .bind(to_i64(after.get()))
                .bind(until)
                .bind(&categories)
                .fetch(&self.inner.pool);
            while let Some(row) = rows.next().await {
                match row {
                    Ok(row) => yield envelope(&row),
                    Err(error) => {
                        yield Err(backend(error));
                        return;
                    }
                }
            }
        }
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        self.head_of(&validate_names(categories)?).await
    }
}

impl PgStore {
    async fn head_of(&self, categories: &[String]) -> Result<Position, Error> {
        let head: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.head)))
            .bind(categories)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(Position(to_u64("position", head)?))
    }
}

impl Subscribe for PgStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        crate::subscribe::subscribe(self, validate_names(categories), after)
    }
}

impl Truncate for PgStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        validate_name(category)?;
        sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.truncate)))
            .bind(category)
            .bind(id)
            .bind(to_i64(before.get()))
            .execute(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

impl SnapshotStore for PgStore {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        validate_name(category)?;
        let schema_version = i32::try_from(snapshot.schema_version).map_err(|_| {
            Error::backend(
                BACKEND,
                false,
                "schema versions above 2^31 - 1 cannot be stored",
            )
        })?;
        sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.save_snapshot)))
            .bind(category)
            .bind(id)
            .bind(to_i64(snapshot.version.get()))
            .bind(to_i64(snapshot.position.get()))
            .bind(schema_version)
            .bind(snapshot.payload.as_ref())
            .execute(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        validate_name(category)?;
        let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.load_snapshot)))
            .bind(category)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get(0).map_err(backend)?;
        let position: i64 = row.try_get(1).map_err(backend)?;
        let schema_version: i32 = row.try_get(2).map_err(backend)?;
        let payload: Vec<u8> = row.try_get(3).map_err(backend)?;
        // A stored snapshot esrc cannot read: an error naming it, not a panic.
        let bad = |field: &'static str, found: String| Error::Format {
            category: category.to_owned(),
            position: Position(u64::try_from(position).unwrap_or_default()),
            schema_version: 0,
            source: DecodeError::Field {
                field,
                found: Some(found),
            },
        };
        Ok(Some(Snapshot {
            version: Version(
                u64::try_from(version).map_err(|_| bad("version", version.to_string()))?,
            ),
            position: Position(
                u64::try_from(position).map_err(|_| bad("position", position.to_string()))?,
            ),
            schema_version: u32::try_from(schema_version)
                .map_err(|_| bad("schema_version", schema_version.to_string()))?,
            payload: payload.into(),
        }))
    }
}

impl PgStore {
    /// Saves a checkpoint inside the caller's transaction, so that a read model written
    /// in the same transaction and the checkpoint commit together (exactly once). Like
    /// [`CheckpointStore::save_checkpoint`], it never moves a checkpoint backwards.
    pub async fn save_checkpoint_in(
        &self,
        connection: &mut PgConnection,
        name: &str,
        position: Position,
    ) -> Result<(), Error> {
        validate_name(name)?;
        sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.save_checkpoint)))
            .bind(name)
            .bind(to_i64(position.get()))
            .execute(connection)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

impl CheckpointStore for PgStore {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        let mut connection = self.inner.pool.acquire().await.map_err(backend)?;
        self.save_checkpoint_in(&mut connection, name, position)
            .await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        validate_name(name)?;
        let position: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.load_checkpoint)))
                .bind(name)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(backend)?;
        position
            .map(|p| to_u64("position", p).map(Position))
            .transpose()
    }
}
