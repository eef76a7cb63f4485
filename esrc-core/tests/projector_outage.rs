//! A projector rides out retryable store errors (a checkpoint bucket's election, a lost
//! connection) and stops only on permanent ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esrc_core::projector::Projector;
use esrc_core::{
    CheckpointStore, Context, Envelope, Error, Expected, NewEvent, Position, Project, ProjectError,
    Publish, Replay, Subscribe,
};
use esrc_memory::MemoryStore;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, esrc_core::Event)]
enum TickEvent {
    Ticked(u32),
}

/// Records the positions it sees.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Position>>>);

impl Project for Seen {
    type EventGroup<'de> = TickEvent;
    type Error = std::convert::Infallible;

    async fn project<'de>(&mut self, context: Context<'de, TickEvent>) -> Result<(), Self::Error> {
        self.0.lock().unwrap().push(context.position());
        Ok(())
    }
}

fn outage() -> Error {
    Error::backend("flaky", true, "the checkpoint bucket is electing a leader")
}

/// A memory store whose first calls fail: `load_failures` checkpoint loads and
/// `save_failures` checkpoint saves fail with `error`, and the first subscription breaks
/// off with a retryable error after `break_after` events.
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    load_failures: Arc<AtomicU32>,
    save_failures: Arc<AtomicU32>,
    subscriptions: Arc<AtomicU32>,
    break_after: usize,
    permanent: bool,
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

impl Flaky {
    fn error(&self) -> Error {
        if self.permanent {
            Error::backend("flaky", false, "the checkpoint bucket is gone")
        } else {
            outage()
        }
    }
}

impl CheckpointStore for Flaky {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        if take_one(&self.save_failures) {
            return Err(self.error());
        }
        self.inner.save_checkpoint(name, position).await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        if take_one(&self.load_failures) {
            return Err(self.error());
        }
        self.inner.load_checkpoint(name).await
    }
}

impl Replay for Flaky {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.inner.replay(categories, after)
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        self.inner.head(categories).await
    }
}

impl Subscribe for Flaky {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let first = self.subscriptions.fetch_add(1, Ordering::AcqRel) == 0;
        let limit = if first { self.break_after } else { usize::MAX };
        let events = self.inner.subscribe(categories, after);
        events
            .take(limit)
            .chain(futures::stream::iter(first.then(|| Err(outage()))))
    }
}

async fn store(events: u32, load_failures: u32, save_failures: u32, permanent: bool) -> Flaky {
    let inner = MemoryStore::new();
    let id = Uuid::now_v7();
    let batch: Vec<NewEvent> = (0..events)
        .map(|n| NewEvent::new(&TickEvent::Ticked(n)).unwrap())
        .collect();
    inner
        .publish("Tick", id, Expected::NoStream, batch)
        .await
        .unwrap();
    Flaky {
        inner,
        load_failures: Arc::new(AtomicU32::new(load_failures)),
        save_failures: Arc::new(AtomicU32::new(save_failures)),
        subscriptions: Arc::default(),
        break_after: 7,
        permanent,
    }
}

#[tokio::test]
async fn retryable_store_errors_are_ridden_out() {
    let store = store(30, 2, 3, false).await;
    let seen = Seen::default();
    let running = Projector::new(store.clone(), "ticks", seen.clone())
        .checkpoint_every(5)
        .spawn();
    for _ in 0..600 {
        if seen.0.lock().unwrap().len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!running.is_finished(), "the projector stopped");
    running.stop().await.unwrap();
    let positions = seen.0.lock().unwrap().clone();
    let all: Vec<Position> = store
        .inner
        .replay(&["Tick"], Position::ZERO)
        .map(|e| e.unwrap().position)
        .collect()
        .await;
    assert_eq!(
        positions, all,
        "every event once, in order, across the outages"
    );
    assert!(
        store.subscriptions.load(Ordering::Acquire) >= 2,
        "it subscribed again"
    );
    assert_eq!(
        store.inner.load_checkpoint("ticks").await.unwrap(),
        all.last().copied(),
        "the checkpoint caught up once saves worked again"
    );
}

#[tokio::test]
async fn a_permanent_store_error_stops_the_projector() {
    let store = store(30, 0, 1, true).await;
    let running = Projector::new(store, "ticks", Seen::default())
        .checkpoint_every(5)
        .spawn();
    let outcome = tokio::time::timeout(Duration::from_secs(60), running.join())
        .await
        .expect("the projector stops by itself");
    assert!(
        matches!(
            outcome,
            Err(ProjectError::Store(Error::Backend {
                retryable: false,
                ..
            }))
        ),
        "{:?}",
        outcome.err()
    );
}

/// Every projector metric of the table in `esrc_core::metrics` moves (`cargo test
/// --workspace` builds esrc-core with `metrics`: esrc-memory's tests ask for it).
#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use esrc_core::projector::ErrorPolicy;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    fn snapshotter() -> &'static Snapshotter {
        static SNAPSHOTTER: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();
        SNAPSHOTTER.get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder
                .install()
                .expect("the only recorder of this test binary");
            snapshotter
        })
    }

    /// A metric's name, its labels (sorted) and its value.
    type Recorded = (String, Vec<(String, String)>, f64);

    /// What was recorded since the last snapshot (taking one resets the recorder's values).
    fn taken() -> Vec<Recorded> {
        snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                labels.sort_unstable();
                let value = match value {
                    DebugValue::Counter(count) => count as f64,
                    DebugValue::Gauge(gauge) => gauge.into_inner(),
                    DebugValue::Histogram(samples) => samples.len() as f64,
                };
                (key.name().to_owned(), labels, value)
            })
            .collect()
    }

    /// The value of `name` with the labels `labels` (and no others) in `taken`.
    fn value(taken: &[Recorded], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        wanted.sort_unstable();
        taken
            .iter()
            .find(|(found, labels, _)| found == name && *labels == wanted)
            .map(|(.., value)| *value)
    }

    /// Fails once on its event `fail_at` (counted from 0).
    #[derive(Clone, Default)]
    struct Failing {
        seen: Seen,
        failed: Arc<AtomicU32>,
        fail_at: usize,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the read model refused an event")]
    struct Refused;

    impl Project for Failing {
        type EventGroup<'de> = TickEvent;
        type Error = Refused;

        async fn project<'de>(&mut self, context: Context<'de, TickEvent>) -> Result<(), Refused> {
            let count = self.seen.0.lock().unwrap().len();
            if count == self.fail_at && self.failed.fetch_add(1, Ordering::AcqRel) == 0 {
                return Err(Refused);
            }
            self.seen.0.lock().unwrap().push(context.position());
            Ok(())
        }
    }

    async fn until_seen(seen: &Seen, count: usize) {
        for _ in 0..600 {
            if seen.0.lock().unwrap().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the projector did not see {count} events");
    }

    #[tokio::test]
    async fn a_projectors_metrics_move() {
        snapshotter();
        // An outage after 7 events: the subscription starts again.
        let flaky = store(30, 0, 0, false).await;
        let seen = Seen::default();
        let running = Projector::new(flaky.clone(), "metered", seen.clone())
            .checkpoint_every(5)
            .spawn();
        until_seen(&seen, 30).await;
        running.stop().await.unwrap();
        let last = flaky
            .inner
            .load_checkpoint("metered")
            .await
            .unwrap()
            .unwrap();
        let metered = [("projection", "metered")];
        let taken = taken();
        let value = |name, labels: &[(&str, &str)]| value(&taken, name, labels);
        assert_eq!(value("esrc_projector_events_total", &metered), Some(30.0));
        // A commit every 5 events (the batch open at the outage goes on after it).
        let checkpoints = value("esrc_projector_checkpoints_total", &metered);
        assert!(checkpoints >= Some(5.0), "{checkpoints:?}");
        assert_eq!(
            value("esrc_projector_position", &metered),
            Some(last.get() as f64)
        );
        let lag = value("esrc_projector_lag_seconds", &metered).unwrap();
        assert!(
            (0.0..60.0).contains(&lag),
            "the age of the last event: {lag}"
        );
        assert_eq!(
            value(
                "esrc_projector_restarts_total",
                &[("projection", "metered"), ("reason", "outage")]
            ),
            Some(1.0)
        );

        // A failure the policy retries, then one that stops the projector.
        let flaky = store(10, 0, 0, false).await;
        let retried = Failing {
            fail_at: 3,
            ..Failing::default()
        };
        let running = Projector::new(flaky.clone(), "retrying", retried.clone())
            .on_error(ErrorPolicy::Retry {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(1),
                attempts: 3,
            })
            .spawn();
        until_seen(&retried.seen, 10).await;
        running.stop().await.unwrap();
        let outcome = |taken: &[_], projection, outcome| {
            super::metrics::value(
                taken,
                "esrc_projector_errors_total",
                &[("projection", projection), ("outcome", outcome)],
            )
        };
        let taken = super::metrics::taken();
        assert_eq!(outcome(&taken, "retrying", "retried"), Some(1.0));
        assert_eq!(outcome(&taken, "retrying", "stopped"), None);
        let stopping = Failing {
            fail_at: 3,
            ..Failing::default()
        };
        let outcome_of_run = Projector::new(flaky, "stopping", stopping)
            .spawn()
            .join()
            .await;
        assert!(outcome_of_run.is_err(), "the default policy stops");
        let taken = super::metrics::taken();
        assert_eq!(outcome(&taken, "stopping", "stopped"), Some(1.0));
    }
}
