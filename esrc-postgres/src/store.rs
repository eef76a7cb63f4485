//! Appends (checked in one statement) and truncation. The store itself and its round
//! trips are in `core.rs`, reads in `read.rs`, subscriptions in `subscribe.rs`, snapshots
//! in `snapshot.rs`, checkpoints in `checkpoint.rs`, the row encoding in `codec.rs`.

use std::sync::Arc;

use esrc_core::backend::{StoredId, check_append, retry_outcome, validate_name};
use esrc_core::{Appended, Error, Expected, NewEvent, Position, Publish, Truncate, Version};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::codec::{Batch, to_i64, to_u64};
use crate::core::PgStore;
use crate::error::{BACKEND, EVENT_ID_KEY, Failure, STREAM_VERSION_KEY, backend};
use crate::schema::TX_SHIFT;

/// How many times an `Expected::Any` append is retried after losing a race for the next
/// version to another writer.
pub(crate) const ANY_ATTEMPTS: usize = 100;

/// What the append statement found.
pub(crate) enum Outcome {
    Stored(Appended),
    /// The expectation did not hold; the stream's version.
    Mismatch(Version),
}

impl PgStore {
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
        let conflict = |actual| Error::conflict(category.to_owned(), id, expected, actual);
        match outcome {
            Ok(Outcome::Stored(appended)) => Ok(appended),
            Ok(Outcome::Mismatch(actual)) => Err(conflict(actual)),
            Err(Failure::Unique(constraint)) if constraint == EVENT_ID_KEY => {
                Err(Error::duplicate_event(batch.event_ids[0]))
            }
            Err(Failure::Unique(_)) => Err(conflict(expected.version().unwrap_or_default())),
            Err(Failure::Other(error)) => Err(error),
        }
    }

    pub(crate) async fn append(
        &self,
        connection: &mut PgConnection,
        category: &str,
        id: Uuid,
        expected: Expected,
        batch: &Batch<'_>,
        alone: bool,
    ) -> Result<Outcome, Failure> {
        if let (Some(version), true, false) = (expected.version(), alone, batch.tagged()) {
            let sql = &self.inner.sql;
            let forms = match expected {
                Expected::Last { version, position }
                    if self.inner.tails.is_last(category, id, version, position) =>
                {
                    &sql.append_seen
                }
                _ if version == Version::ZERO => &sql.append_new,
                _ => &sql.append_checked,
            };
            let version = to_i64(version.get());
            return self
                .append_checked(connection, category, id, version, forms, batch)
                .await;
        }
        let expected = expected.version().map(|version| to_i64(version.get()));
        let statement = if alone {
            &self.inner.sql.append
        } else {
            &self.inner.sql.append_in
        };
        let keys = self.tag_keys(&batch.distinct_tags);
        let row = batch
            .bind_tagged(statement, category, id, expected, &keys)
            .fetch_one(&mut *connection)
            .await?;
        let actual: i64 = row.try_get(0).map_err(backend)?;
        let version: Option<i64> = row.try_get(1).map_err(backend)?;
        let position: Option<i64> = row.try_get(2).map_err(backend)?;
        match (version, position) {
            (Some(version), Some(position)) => Ok(Outcome::Stored(Appended::new(
                Version(to_u64("version", version)?),
                Position(to_u64("position", position)?),
            ))),
            _ => Ok(Outcome::Mismatch(Version(to_u64("version", actual)?))),
        }
    }

    /// An append alone in its transaction, with an expected version: the fast path, with
    /// one of the statements `append` chose.
    async fn append_checked(
        &self,
        connection: &mut PgConnection,
        category: &str,
        id: Uuid,
        expected: i64,
        forms: &[Arc<str>; 2],
        batch: &Batch<'_>,
    ) -> Result<Outcome, Failure> {
        let rows = batch
            .bind_either(forms, category, id, Some(expected))
            .fetch_all(&mut *connection)
            .await?;
        let Some(last) = rows.last() else {
            let actual = self.stream_version(&mut *connection, category, id).await?;
            return Ok(Outcome::Mismatch(actual));
        };
        let version: i64 = last.try_get(0).map_err(backend)?;
        let position: i64 = last.try_get(1).map_err(backend)?;
        Ok(Outcome::Stored(Appended::new(
            Version(to_u64("version", version)?),
            Position(to_u64("position", position)?),
        )))
    }

    /// If the batch's ids are stored: `Ok(Some(outcome))` when they are exactly one earlier
    /// append of this stream (a retry), `Err(DuplicateEvent)` for any other reuse.
    pub(crate) async fn retried(
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
            return Err(Error::duplicate_event(
                batch.event_ids.first().copied().unwrap_or_default(),
            ));
        }
        Ok(Some(original))
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
        esrc_core::backend::traced(
            esrc_core::backend::store_span(crate::core::SYSTEM, "append", category),
            async move {
                let appended = self.append_alone(category, id, expected, events).await;
                self.explain(appended).await
            },
        )
        .await
    }
}

impl PgStore {
    /// [`Publish::publish`], before its error is explained.
    async fn append_alone(
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
                    let inner = &self.inner;
                    inner
                        .tails
                        .remember(category, id, appended.version, appended.position);
                    let interval = inner.config.notify_interval;
                    inner
                        .signals
                        .appended(&inner.pool, &inner.sql.channel, interval);
                    return Ok(appended);
                }
                Ok(Outcome::Mismatch(actual)) => actual,
                Err(Failure::Unique(constraint)) if constraint == EVENT_ID_KEY => {
                    return match self.retried(category, id, &batch).await? {
                        Some(original) => Ok(original),
                        None => Err(Error::duplicate_event(batch.event_ids[0])),
                    };
                }
                Err(Failure::Unique(constraint)) if constraint == STREAM_VERSION_KEY => {
                    if expected == Expected::Any && attempt < ANY_ATTEMPTS {
                        continue;
                    }
                    self.stream_version(&self.inner.pool, category, id).await?
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
            return Err(Error::conflict(category.to_owned(), id, expected, actual));
        }
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
