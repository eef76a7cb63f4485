//! Live subscriptions: read the table below the horizon, wait for a wake-up, read again.
//!
//! Notifications (see `notify.rs`) are only hints: subscribers still poll on a bounded
//! interval, so a lost notification, a dropped connection or an append in flight
//! holding the horizon back only delays delivery; nothing is ever skipped, because every
//! read takes only rows below the horizon, which are final.

use esrc_core::backend::{opened, validate_names};
use esrc_core::{Envelope, Error, Position, Subscribe};
use futures::Stream;

use crate::core::{HeldWatch, Page, PgStore};
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
        let mut watch = HeldWatch::default();
        // Catching up (the last page was full) reads with the settings of long reads.
        let mut long = true;
        loop {
            wake.borrow_and_update();
            match read(store, &mut watch, cursor, &categories, long).await {
                Ok(Some(page)) => {
                    pauses.reset();
                    long = page.full;
                    for (position, envelope) in page.events {
                        cursor = position;
                        yield envelope;
                    }
                    if page.full {
                        continue;
                    }
                }
                Ok(None) => pauses.reset(),
                Err(error) if error.is_retryable() => {
                    let delay = pauses.pause();
                    tracing::warn!(error = %esrc_core::Chain(&error), ?delay, "esrc: subscription read failed; retrying");
                    esrc_core::metrics::subscription_reconnected(crate::error::BACKEND);
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

/// The events after `cursor` below the horizon: the horizon first, then (when it is
/// above the cursor) a page, in a later statement. `None` when there is nothing to read.
async fn read(
    store: &PgStore,
    watch: &mut HeldWatch,
    cursor: i64,
    categories: &[String],
    long: bool,
) -> Result<Option<Page>, Error> {
    let reach = store.reach().await?;
    watch.observe(store, &reach).await;
    if reach.limit <= cursor.saturating_add(1) {
        return Ok(None);
    }
    store
        .page(cursor, reach.limit, categories, long)
        .await
        .map(Some)
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
