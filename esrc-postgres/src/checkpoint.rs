//! Projection checkpoints, in a table of the store's schema; a checkpoint can be saved
//! inside the caller's transaction (exactly-once projections).

use std::sync::Arc;

use esrc_core::backend::validate_name;
use esrc_core::{CheckpointStore, Error, Position};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::codec::{to_i64, to_u64};
use crate::core::PgStore;
use crate::error::backend;

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
        sqlx::query(AssertSqlSafe(Arc::clone(
            &self.inner.sql.checkpoint.save_checkpoint,
        )))
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
        let position = sqlx::query_scalar(AssertSqlSafe(Arc::clone(
            &self.inner.sql.checkpoint.load_checkpoint,
        )))
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(backend);
        let position: Option<i64> = self.explain(position).await?;
        position
            .map(|p| to_u64("position", p).map(Position))
            .transpose()
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(Arc::clone(
            &self.inner.sql.checkpoint.checkpoints,
        )))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(name, position)| Ok((name, Position(to_u64("position", position)?))))
            .collect()
    }

    async fn reset_checkpoint(&self, name: &str, to: Option<Position>) -> Result<(), Error> {
        validate_name(name)?;
        let query = match to {
            Some(position) => sqlx::query(AssertSqlSafe(Arc::clone(
                &self.inner.sql.checkpoint.set_checkpoint,
            )))
            .bind(name)
            .bind(to_i64(position.get())),
            None => sqlx::query(AssertSqlSafe(Arc::clone(
                &self.inner.sql.checkpoint.delete_checkpoint,
            )))
            .bind(name),
        };
        query.execute(&self.inner.pool).await.map_err(backend)?;
        Ok(())
    }
}
