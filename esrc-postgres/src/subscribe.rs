//! Live subscriptions: read the table below the horizon, wait for a wake-up, read again.
//!
//! Notifications are only hints. After each commit the writer bumps a local signal (for
//! subscribers in the same process) and a notifier task sends `NOTIFY` on its own, after
//! the commit, coalescing bursts (a `NOTIFY` inside the writing transaction would
//! serialize all writers on a cluster-wide lock). One listener task per store turns
//! notifications from every process into wake-ups. Subscribers still poll on a bounded
//! interval, so a lost notification, a dropped connection or an unrelated transaction
//! holding the horizon back only delays delivery; nothing is ever skipped, because every
//! read takes only rows below the horizon, which are final.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use esrc_core::backend::Doubling;
use esrc_core::backend::validate_names;
use esrc_core::{Envelope, Error, Position, Subscribe};
use futures::Stream;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::PgStore;
use crate::store::Inner;

/// The longest a subscription waits between retries of a failing read.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Signals {
    /// Bumped when new rows may be visible: subscribers wait on it.
    wake: watch::Sender<u64>,
    /// Bumped after each local commit: the notifier task sends one `NOTIFY` per change.
    notify: watch::Sender<u64>,
    notifier: Mutex<Option<JoinHandle<()>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            wake: watch::Sender::new(0),
            notify: watch::Sender::new(0),
            notifier: Mutex::default(),
            listener: Mutex::default(),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for task in [&self.notifier, &self.listener] {
            if let Some(task) = task.lock().unwrap_or_else(PoisonError::into_inner).take() {
                task.abort();
            }
        }
    }
}

fn bump(signal: &watch::Sender<u64>) {
    signal.send_modify(|n| *n = n.wrapping_add(1));
}

/// Spawns `task` into `slot` unless a task there is still running.
fn ensure(slot: &Mutex<Option<JoinHandle<()>>>, task: impl FnOnce() -> JoinHandle<()>) {
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_none_or(JoinHandle::is_finished) {
        *slot = Some(task());
    }
}

impl Signals {
    /// Called after an append committed.
    pub(crate) fn appended(&self, store: &PgStore) {
        bump(&self.wake);
        let Some(interval) = store.inner.config.notify_interval else {
            return;
        };
        bump(&self.notify);
        ensure(&self.notifier, || {
            // A new receiver has seen the bump above: mark it, or this commit would go
            // unannounced.
            let mut changes = self.notify.subscribe();
            changes.mark_changed();
            // `pg_notify` takes a transaction id, so each NOTIFY commits; on its own
            // connection with `synchronous_commit = off` that commit does not wait for a
            // WAL flush, so notifying costs the writers nothing they would wait on.
            let options = (*store.inner.pool.connect_options())
                .clone()
                .options([("synchronous_commit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            let channel = store.inner.sql.channel.clone();
            tokio::spawn(notifier(changes, pool, channel, interval))
        });
    }

    fn listen(&self, inner: &Inner) {
        ensure(&self.listener, || {
            let wake = self.wake.clone();
            let pool = inner.pool.clone();
            let channel = inner.sql.channel.clone();
            tokio::spawn(listener(wake, pool, channel))
        });
    }
}

/// Sends one `NOTIFY` per burst of local commits, at most one per `interval` (commits
/// within it share one), until the store is dropped.
async fn notifier(
    mut changes: watch::Receiver<u64>,
    pool: PgPool,
    channel: String,
    interval: Duration,
) {
    while changes.changed().await.is_ok() {
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(&channel)
            .execute(&pool)
            .await;
        if let Err(error) = sent {
            tracing::debug!(%error, "esrc: NOTIFY failed; subscribers fall back to polling");
        }
        // Commits that land meanwhile are announced by the next NOTIFY: a writer that
        // commits a thousand times a second sends a few hundred notifications, not a
        // thousand, and subscribers in other processes hear of it at most this late.
        tokio::time::sleep(interval).await;
    }
}

/// Turns notifications into wake-ups while anyone subscribes.
async fn listener(wake: watch::Sender<u64>, pool: PgPool, channel: String) {
    let mut pauses = Doubling::new(Duration::from_millis(50), MAX_BACKOFF);
    loop {
        // A dedicated one-connection pool, so the listener never holds one of the
        // store's connections and reconnects on its own.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        let listening = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            () = wake.closed() => return,
            listening = listening => match listening {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "esrc: cannot LISTEN; subscribers poll meanwhile");
                    tokio::time::sleep(pauses.next_delay()).await;
                    continue;
                }
            },
        };
        // Rows may have committed while nobody listened.
        bump(&wake);
        loop {
            tokio::select! {
                () = wake.closed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => bump(&wake),
                    // The connection was lost and is being re-established.
                    Ok(None) => bump(&wake),
                    Err(error) => {
                        tracing::warn!(%error, "esrc: LISTEN connection failed; reconnecting");
                        bump(&wake);
                        break;
                    }
                },
            }
        }
        tokio::time::sleep(pauses.next_delay()).await;
    }
}

pub(crate) fn subscribe(
    store: &PgStore,
    categories: Result<Vec<String>, Error>,
    after: Position,
) -> impl Stream<Item = Result<Envelope, Error>> + Send + '_ {
    async_stream::stream! {
        let categories = match categories {
            Ok(categories) => categories,
            Err(error) => {
                yield Err(error);
                return;
            }
        };
        let inner = &store.inner;
        let mut wake = inner.signals.wake.subscribe();
        inner.signals.listen(inner);
        let mut cursor = i64::try_from(after.get()).unwrap_or(i64::MAX);
        let mut pauses = Doubling::new(Duration::from_millis(50), MAX_BACKOFF);
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
                    let delay = pauses.next_delay();
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
        crate::subscribe::subscribe(self, validate_names(categories), after)
    }
}
