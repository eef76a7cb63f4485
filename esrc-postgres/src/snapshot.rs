//! Snapshots, in a table of the store's schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use esrc_core::backend::{opened, validate_name};
use esrc_core::{DecodeError, Error, Position, Snapshot, SnapshotOrEvent, SnapshotStore, Version};
use futures::Stream;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::codec::{envelope, to_i64};
use crate::core::{PgStore, decoded};
use crate::error::{BACKEND, backend};

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
        sqlx::query(AssertSqlSafe(Arc::clone(
            &self.inner.sql.snapshot.save_snapshot,
        )))
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
        let row = sqlx::query(AssertSqlSafe(Arc::clone(
            &self.inner.sql.snapshot.load_snapshot,
        )))
        .bind(category)
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(backend)?;
        row.map(|row| snapshot(&row, category, [0, 1, 2, 3]))
            .transpose()
    }

    /// One statement: the snapshot's row (if any), then the rows of the first
    /// 256 events after it (`FIRST_EVENTS`), in version order; for a longer stream, then
    /// [`SnapshotOrEvent::Rest`] (the rest is read as `load` reads it).
    fn snapshot_then_events(
        &self,
        category: &str,
        id: Uuid,
    ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_>> {
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "read_stream", category);
        let category = validate_name(category).map(|()| category.to_owned());
        Some(esrc_core::backend::traced_read(
            span,
            opened(category, move |category| {
                let rows = sqlx::query(AssertSqlSafe(Arc::clone(
                    &self.inner.sql.snapshot.snapshot_then_events,
                )))
                .bind(category.clone())
                .bind(id)
                // One event more than answered: it says that the stream goes on.
                .bind(FIRST_EVENTS + 1)
                .fetch(&self.inner.pool);
                let events = AtomicI64::new(0);
                decoded(self, rows, move |row| {
                    let is_snapshot: bool = row.try_get(SNAPSHOT_FLAG).map_err(backend)?;
                    if is_snapshot {
                        snapshot(row, &category, [2, 3, 6, 10]).map(SnapshotOrEvent::Snapshot)
                    } else if events.fetch_add(1, Ordering::Relaxed) == FIRST_EVENTS {
                        Ok(SnapshotOrEvent::Rest)
                    } else {
                        envelope(row).map(SnapshotOrEvent::Event)
                    }
                })
            }),
        ))
    }
}

/// How many events `snapshot_then_events` reads in the statement that also returns the
/// snapshot. That statement sorts the snapshot's row and the events together, which on a
/// long stream costs the server more than the ordered index scan of `replay_one` (and
/// holds back the first row until the sort is done): 5,000 events read at 0.76 of `load`.
/// A stream with more events after its snapshot reads the rest as `load` does, in a
/// second round trip.
const FIRST_EVENTS: i64 = 256;

/// The column of `snapshot_then_events`'s rows that tells a snapshot from an event.
const SNAPSHOT_FLAG: usize = 13;

/// The snapshot in `row`, whose version, position, schema version and payload are the
/// columns `at`. A stored value esrc cannot read is an error naming it, not a panic.
fn snapshot(row: &PgRow, category: &str, at: [usize; 4]) -> Result<Snapshot, Error> {
    let version: i64 = row.try_get(at[0]).map_err(backend)?;
    let position: i64 = row.try_get(at[1]).map_err(backend)?;
    let schema_version: i32 = row.try_get(at[2]).map_err(backend)?;
    let payload: Vec<u8> = row.try_get(at[3]).map_err(backend)?;
    let bad = |field: &'static str, found: String| {
        Error::format(
            category.to_owned(),
            Position(u64::try_from(position).unwrap_or_default()),
            0,
            DecodeError::Field {
                field,
                found: Some(found),
            },
        )
    };
    Ok(Snapshot::new(
        Version(u64::try_from(version).map_err(|_| bad("version", version.to_string()))?),
        Position(u64::try_from(position).map_err(|_| bad("position", position.to_string()))?),
        u32::try_from(schema_version)
            .map_err(|_| bad("schema_version", schema_version.to_string()))?,
        payload,
    ))
}
