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
