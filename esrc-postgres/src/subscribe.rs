//! Live subscriptions: read the table below the horizon, wait for a wake-up, read again.
//!
//! Notifications (see `notify.rs`) are only hints: subscribers still poll on a bounded
//! interval, so a lost notification, a dropped connection or an unrelated transaction
//! holding the horizon back only delays delivery; nothing is ever skipped, because every
//! read takes only rows below the horizon, which are final.

use esrc_core::backend::{opened, validate_names};
use esrc_core::{Envelope, Error, Position, Subscribe};
use futures::Stream;
use sqlx::AssertSqlSafe;

use crate::core::PgStore;
use crate::notify::retry_pauses;

fn subscribe(
    store: &PgStore,
    categories: Vec<String>,
    after: Position,
) -> impl Stream<Item = Result<Envelope, Error>> + Send + '_ {
    async_stream::stream! {
        let inner = &store.inner;
        let mut wake = inner.signals.wake();
        inner.signals.listen(&inner.pool, &inner.sql.channel);
        let mut cursor = i64::try_from(after.get()).unwrap_or(i64::MAX);
        let mut pauses = retry_pauses();
        loop {
            wake.borrow_and_update();
            let query = sqlx::query(AssertSqlSafe(std::sync::Arc::clone(&inner.sql.subscribe)))
                .bind(cursor)
                .bind(&categories)
                .bind(store.page_size());
            match store.page(query).await {
                Ok(page) => {
                    pauses.reset();
                    let full = page.len() as i64 == store.page_size();
                    for envelope in page {
                        cursor = i64::try_from(envelope.position.get()).unwrap_or(i64::MAX);
                        yield Ok(envelope);
                    }
                    if full {
                        continue;
                    }
                }
                Err(error) if error.is_retryable() => {
                    let delay = pauses.pause();
                    tracing::warn!(%error, ?delay, "esrc: subscription read failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(error) => {
                    yield Err(error);
                    return;
                }
            }
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(inner.config.poll_interval) => {}
            }
        }
    }
}

impl Subscribe for PgStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        opened(validate_names(categories), move |categories| {
            subscribe(self, categories, after)
        })
    }
}
