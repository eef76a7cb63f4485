//! Replays: one stream in one query; a group of categories in pages below the horizon
//! (see `horizon` in `schema.rs`), each page its own statement.

use std::sync::Arc;

use esrc_core::backend::{opened, opened_after, validate_name, validate_names};
use esrc_core::{CategoryStats, Envelope, Error, Position, Replay, ReplayOne, Version};
use futures::{Stream, StreamExt};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::codec::{envelope, to_i64, to_u64};
use crate::core::{PgStore, decoded, row_position};
use crate::error::backend;

impl ReplayOne for PgStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "read_stream", category);
        esrc_core::backend::traced_read(span, {
            let category = validate_name(category).map(|()| category.to_owned());
            opened(category, move |category| {
                // One query, streamed: rows come off the socket as the stream is polled.
                let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.replay_one)))
                    .bind(category)
                    .bind(id)
                    .bind(to_i64(after.get()))
                    .fetch(&self.inner.pool);
                decoded(self, rows, envelope)
            })
        })
    }
}

impl Replay for PgStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(
            crate::core::SYSTEM,
            "read_categories",
            categories.join(","),
        );
        esrc_core::backend::traced_read(span, {
            let categories = validate_names(categories);
            let opening = async move { Ok((categories?, self.replay_limit().await?)) };
            opened_after(opening, move |(categories, until)| {
                self.pages(categories, to_i64(after.get()), until)
            })
        })
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        self.head_of(&validate_names(categories)?).await
    }

    async fn count_after(&self, categories: &[&str], after: Position) -> Result<u64, Error> {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.count_after)))
            .bind(validate_names(categories)?)
            .bind(to_i64(after.get()))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(backend)?;
        to_u64("count", count)
    }

    async fn categories(&self) -> Result<Vec<CategoryStats>, Error> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as(AssertSqlSafe(Arc::clone(&self.inner.sql.categories)))
                .fetch_all(&self.inner.pool)
                .await
                .map_err(backend)?;
        rows.into_iter()
            .map(|(name, events, streams)| {
                Ok(CategoryStats::new(
                    name,
                    to_u64("count", events)?,
                    to_u64("count", streams)?,
                ))
            })
            .collect()
    }
}

impl PgStore {
    /// The group's events after `after` and below `until`, a page per statement, each
    /// streamed off the connection as it is consumed: no statement (and no snapshot)
    /// stays open longer than one page. Each page runs in a transaction of its own with
    /// [`PAGE_SETTINGS`](crate::schema::PAGE_SETTINGS).
    fn pages(
        &self,
        categories: Vec<String>,
        after: i64,
        until: i64,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + '_ {
        async_stream::stream! {
            let mut cursor = after;
            loop {
                let mut transaction = match self.page_transaction().await {
                    Ok(transaction) => transaction,
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                };
                let rows = self.page_query(cursor, &categories).fetch(&mut *transaction);
                let mut rows = std::pin::pin!(rows);
                let mut count = 0;
                while let Some(row) = rows.next().await {
                    let row = match row {
                        Ok(row) => row,
                        Err(error) => {
                            yield self.explain(Err(backend(error))).await;
                            return;
                        }
                    };
                    count += 1;
                    let position = match row_position(&row) {
                        Ok(position) => position,
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    };
                    if position >= until {
                        return;
                    }
                    cursor = position;
                    yield envelope(&row);
                }
                if count < self.page_size() {
                    return;
                }
            }
        }
    }

    async fn head_of(&self, categories: &[String]) -> Result<Position, Error> {
        let head: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.head)))
            .bind(categories)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(Position(to_u64("position", head)?))
    }
}
