//! The metrics of a running projector.

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, counter, gauge};

use crate::Envelope;

/// The metrics of one running projector, labelled with its name, registered when there
/// is a recorder to register them with (so that one installed after the projector
/// started gets them too).
#[derive(Debug)]
pub(crate) struct ProjectorMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<Handles>,
    #[cfg(feature = "metrics")]
    name: String,
    /// When the lag in events was last counted.
    #[cfg(feature = "metrics")]
    counted: Option<tokio::time::Instant>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    events: Counter,
    checkpoints: Counter,
    lag: Gauge,
    lag_events: Gauge,
    position: Gauge,
}

/// How often a projector counts its lag in events: a count costs the store a query (on
/// NATS, a short-lived consumer), and dashboards scrape every 10 to 60 seconds.
#[cfg(feature = "metrics")]
const LAG_COUNT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a projector's subscription started again.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Restart {
    /// The store failed; the projector waited for it.
    Outage,
    /// An all-or-nothing batch was lost.
    Rollback,
}

/// What the error policy did with a projection failure.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Retried,
    Stopped,
}

impl ProjectorMetrics {
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = name;
        Self {
            #[cfg(feature = "metrics")]
            handles: None,
            #[cfg(feature = "metrics")]
            name: name.to_owned(),
            #[cfg(feature = "metrics")]
            counted: None,
        }
    }

    /// The handles, made the first time a recorder is installed; `None` until then.
    #[cfg(feature = "metrics")]
    fn handles(&mut self) -> Option<&Handles> {
        if self.handles.is_none() && super::listening() {
            let name = &self.name;
            self.handles = Some(Handles {
                events: counter!("esrc_projector_events_total", "projection" => name.clone()),
                checkpoints: counter!("esrc_projector_checkpoints_total", "projection" => name.clone()),
                lag: gauge!("esrc_projector_lag_seconds", "projection" => name.clone()),
                lag_events: gauge!("esrc_projector_lag_events", "projection" => name.clone()),
                position: gauge!("esrc_projector_position", "projection" => name.clone()),
            });
        }
        self.handles.as_ref()
    }

    /// `envelope` was projected.
    pub(crate) fn projected(&mut self, envelope: &Envelope) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = self.handles() {
            handles.events.increment(1);
            #[allow(clippy::cast_precision_loss)]
            handles.position.set(envelope.position.get() as f64);
            handles.lag.set(age(envelope.timestamp));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = envelope;
    }

    /// A batch was committed with its checkpoint.
    pub(crate) fn committed(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = self.handles() {
            handles.checkpoints.increment(1);
        }
    }

    /// When to count the lag in events next: never without a recorder (or the feature);
    /// with one, [`LAG_COUNT_INTERVAL`] after the last count (at once at first).
    pub(crate) fn next_count(&mut self) -> Option<tokio::time::Instant> {
        #[cfg(feature = "metrics")]
        {
            self.handles()?;
            Some(
                self.counted
                    .map_or_else(tokio::time::Instant::now, |last| last + LAG_COUNT_INTERVAL),
            )
        }
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// The count failed: the next one is tried an interval later all the same.
    pub(crate) fn lagging_unknown(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.counted = Some(tokio::time::Instant::now());
        }
    }

    /// `events` are stored after the last one projected.
    pub(crate) fn lagging(&mut self, events: u64) {
        #[cfg(feature = "metrics")]
        {
            self.counted = Some(tokio::time::Instant::now());
            if let Some(handles) = self.handles() {
                #[allow(clippy::cast_precision_loss)]
                handles.lag_events.set(events as f64);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = events;
    }

    /// The subscription starts again.
    pub(crate) fn restarted(&self, reason: Restart) {
        let reason = match reason {
            Restart::Outage => "outage",
            Restart::Rollback => "rollback",
        };
        self.count("esrc_projector_restarts_total", "reason", reason);
    }

    /// The projection failed on an event, and the policy did `outcome`.
    pub(crate) fn failed(&self, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Retried => "retried",
            Outcome::Stopped => "stopped",
        };
        self.count("esrc_projector_errors_total", "outcome", outcome);
    }

    /// Counts one of `name`, labelled by the projection and `label` (rare: registered
    /// each time).
    fn count(&self, name: &'static str, label: &'static str, value: &'static str) {
        #[cfg(feature = "metrics")]
        if super::listening() {
            counter!(name, "projection" => self.name.clone(), label => value).increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (name, label, value);
    }
}

/// Seconds from `timestamp` to now (0 for a time in the future: clocks differ).
#[cfg(feature = "metrics")]
fn age(timestamp: crate::Timestamp) -> f64 {
    std::time::SystemTime::now()
        .duration_since(timestamp.to_system_time())
        .map_or(0.0, |age| age.as_secs_f64())
}
