//! Checks of esrc's metrics (feature `metrics`): a recorder that keeps what it is given,
//! and [`projector_lag_is_recorded`], which a store's tests run to see a projector's lag
//! move on that store.
//!
//! ```
//! use esrc_conformance::metrics::Kept;
//!
//! let kept = Kept::installed();
//! metrics::counter!("my_counter_total", "store" => "mine").increment(2);
//! assert_eq!(kept.counter("my_counter_total", &[("store", "mine")]), Some(2));
//! ```

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use esrc_core::projector::Projector;
use esrc_core::{Context, Expected, Project, Publish, Timestamp};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tokio::sync::watch;

use crate::StoreFactory;
use crate::fixtures::{ThingEvent, within};

/// A recorder that keeps every value, unlike metrics-util's debugging recorder, whose
/// snapshots reset them: tests running side by side in one process each read theirs,
/// told apart by their labels.
pub struct Kept {
    registry: Registry<Key, AtomicStorage>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").finish_non_exhaustive()
    }
}

impl Kept {
    /// The process's recorder: installed by the first call, the same one afterwards.
    ///
    /// # Panics
    ///
    /// If another recorder was installed first.
    pub fn installed() -> &'static Self {
        static KEPT: OnceLock<&'static Kept> = OnceLock::new();
        KEPT.get_or_init(|| {
            let kept: &'static Kept = Box::leak(Box::new(Kept {
                registry: Registry::atomic(),
            }));
            metrics::set_global_recorder(kept).expect("no other metrics recorder installed");
            kept
        })
    }

    /// The counter `name` with exactly the labels `labels` (in any order), if recorded.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let handles = self.registry.get_counter_handles();
        find(handles, name, labels).map(|value| value.load(Ordering::Acquire))
    }

    /// The gauge `name` with exactly the labels `labels`, if recorded.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let handles = self.registry.get_gauge_handles();
        find(handles, name, labels).map(|value| f64::from_bits(value.load(Ordering::Acquire)))
    }

    /// How many values the histogram `name` with exactly the labels `labels` holds, if
    /// registered.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Option<usize> {
        self.values(name, labels).map(|values| values.len())
    }

    /// The values the histogram `name` with exactly the labels `labels` holds, if
    /// registered.
    pub fn values(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        let handles = self.registry.get_histogram_handles();
        find(handles, name, labels).map(|bucket| bucket.data())
    }
}

fn find<V>(
    handles: impl IntoIterator<Item = (Key, V)>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<V> {
    let mut wanted: Vec<(&str, &str)> = labels.to_vec();
    wanted.sort_unstable();
    handles.into_iter().find_map(|(key, value)| {
        let mut found: Vec<(&str, &str)> = key
            .labels()
            .map(|label| (label.key(), label.value()))
            .collect();
        found.sort_unstable();
        (key.name() == name && found == wanted).then_some(value)
    })
}

impl Recorder for Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |counter| Counter::from_arc(Arc::clone(counter)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |gauge| Gauge::from_arc(Arc::clone(gauge)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry
            .get_or_create_histogram(key, |histogram| Histogram::from_arc(Arc::clone(histogram)))
    }
}

/// A projection of `Thing` events that waits at each until the gate is open.
#[derive(Clone)]
struct Gated(watch::Receiver<bool>);

impl Project for Gated {
    type EventGroup<'de> = ThingEvent;
    type Error = std::convert::Infallible;

    async fn project<'de>(&mut self, _: Context<'de, ThingEvent>) -> Result<(), Self::Error> {
        // The sender lives as long as the check.
        let _ = self.0.wait_for(|open| *open).await;
        Ok(())
    }
}

/// Waits until `read` gives a value that `holds`.
async fn until<T: std::fmt::Debug>(
    what: &str,
    read: impl Fn() -> Option<T>,
    holds: impl Fn(&T) -> bool,
) {
    within(what, async {
        while !read().is_some_and(|value| holds(&value)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Checks that a projector on a store of `factory` records its lag: 30 events stored an
/// hour ago, a projector held at the first of them reports 30 events of lag; let go, it
/// reports an age of the last event of about an hour, its position, and, at its next count,
/// no lag in events. Installs [`Kept`] (so a test binary running it must not install
/// another recorder).
///
/// # Panics
///
/// When a metric is missing or does not move as it should.
pub async fn projector_lag_is_recorded<F: StoreFactory>(factory: &F) {
    let kept = Kept::installed();
    let store = Arc::new(factory.store().await);
    let hour_ago = Timestamp::from(std::time::SystemTime::now() - Duration::from_secs(3600));
    let events = (0..30)
        .map(|amount| {
            let mut event = crate::fixtures::counted(amount);
            event.timestamp = hour_ago;
            event
        })
        .collect();
    let appended = store
        .publish("Thing", uuid::Uuid::now_v7(), Expected::Any, events)
        .await
        .expect("the events are stored");
    let name = format!("lagging-{}", uuid::Uuid::now_v7().simple());
    let labels = [("projection", name.as_str())];
    let (gate, closed) = watch::channel(false);
    let handle = Projector::new(Arc::clone(&store), name.as_str(), Gated(closed)).spawn();
    until(
        "a lag of 30 events",
        || kept.gauge("esrc_projector_lag_events", &labels),
        |lag| *lag == 30.0,
    )
    .await;
    gate.send_replace(true);
    until(
        "the last event's position",
        || kept.gauge("esrc_projector_position", &labels),
        #[allow(clippy::cast_precision_loss)]
        |position| *position == appended.position.get() as f64,
    )
    .await;
    let age = kept
        .gauge("esrc_projector_lag_seconds", &labels)
        .expect("the age of the last event is recorded");
    assert!(
        (3599.0..3700.0).contains(&age),
        "the last event was stored an hour ago, the gauge says {age} s"
    );
    until(
        "no lag in events",
        || kept.gauge("esrc_projector_lag_events", &labels),
        |lag| *lag == 0.0,
    )
    .await;
    assert_eq!(
        kept.counter("esrc_projector_events_total", &labels),
        Some(30)
    );
    handle.stop().await.expect("a clean stop");
}
