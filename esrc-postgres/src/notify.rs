//! Wake-ups for live subscriptions.
//!
//! Notifications are only hints. After each commit the writer bumps a local signal (for
//! subscribers in the same process) and a notifier task sends `NOTIFY` on its own, after
//! the commit, coalescing bursts (a `NOTIFY` inside the writing transaction would
//! serialize all writers on a cluster-wide lock). One listener task per store turns
//! notifications from every process into wake-ups.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use esrc_core::backend::Backoff;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::BACKEND;

/// The pauses between retries of a failing read or `LISTEN`: from 50 ms, doubling to
/// 5 s.
pub(crate) fn retry_pauses() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(5))
}

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
    /// A receiver of the wake-ups: bumped when new rows may be visible.
    pub(crate) fn wake(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Called after an append committed: wakes local subscribers and, unless `interval`
    /// is `None`, has `NOTIFY` sent on `channel` (at most once per `interval`).
    pub(crate) fn appended(&self, pool: &PgPool, channel: &str, interval: Option<Duration>) {
        bump(&self.wake);
        let Some(interval) = interval else {
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
            let options = (*pool.connect_options())
                .clone()
                .options([("synchronous_commit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            tokio::spawn(notifier(changes, pool, channel.to_owned(), interval))
        });
    }

    /// Starts the task that turns notifications on `channel` into wake-ups, unless it
    /// runs.
    pub(crate) fn listen(&self, pool: &PgPool, channel: &str) {
        ensure(&self.listener, || {
            let wake = self.wake.clone();
            tokio::spawn(listener(wake, pool.clone(), channel.to_owned()))
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
    let mut pauses = retry_pauses();
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
                    tokio::time::sleep(pauses.pause()).await;
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
                    Ok(None) => {
                        esrc_core::metrics::subscription_reconnected(BACKEND);
                        bump(&wake);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "esrc: LISTEN connection failed; reconnecting");
                        esrc_core::metrics::subscription_reconnected(BACKEND);
                        bump(&wake);
                        break;
                    }
                },
            }
        }
        tokio::time::sleep(pauses.pause()).await;
    }
}
