//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade when the `metrics`
//! feature is on: esrc records, the application installs whatever recorder and exporter
//! it likes (Prometheus, OpenTelemetry, StatsD), or none. Without the feature every
//! recording below is an empty function.
//!
//! Names and units follow OpenTelemetry's conventions as Prometheus spells them
//! (`…_total` for counters, `…_seconds` for times). Labels are bounded: a projection's
//! name, never an aggregate id.
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `esrc_projector_events_total` | counter | `projection` | events projected (an event projected again after a restart counts again) |
//! | `esrc_projector_checkpoints_total` | counter | `projection` | batches committed with their checkpoint |
//! | `esrc_projector_lag_seconds` | gauge | `projection` | the age of the last event projected: how far behind its source the read model is |
//! | `esrc_projector_position` | gauge | `projection` | the position of the last event projected |
//! | `esrc_projector_restarts_total` | counter | `projection`, `reason` | subscriptions started again: `outage` (the store failed; after it answers again), `rollback` (an all-or-nothing batch was lost) |
//! | `esrc_projector_errors_total` | counter | `projection`, `outcome` | projection failures, by what the error policy did: `retried`, `stopped` |

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, counter, gauge};

use crate::Envelope;

/// The metrics of one running projector, registered once with its name as label.
#[derive(Debug)]
pub(crate) struct ProjectorMetrics {
    #[cfg(feature = "metrics")]
    handles: Handles,
    #[cfg(feature = "metrics")]
    name: String,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    events: Counter,
    checkpoints: Counter,
    lag: Gauge,
    position: Gauge,
}

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
            handles: Handles {
                events: counter!("esrc_projector_events_total", "projection" => name.to_owned()),
                checkpoints: counter!("esrc_projector_checkpoints_total", "projection" => name.to_owned()),
                lag: gauge!("esrc_projector_lag_seconds", "projection" => name.to_owned()),
                position: gauge!("esrc_projector_position", "projection" => name.to_owned()),
            },
            #[cfg(feature = "metrics")]
            name: name.to_owned(),
        }
    }

    /// `envelope` was projected.
    pub(crate) fn projected(&self, envelope: &Envelope) {
        #[cfg(feature = "metrics")]
        {
            self.handles.events.increment(1);
            #[allow(clippy::cast_precision_loss)]
            self.handles.position.set(envelope.position.get() as f64);
            self.handles.lag.set(age(envelope.timestamp));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = envelope;
    }

    /// A batch was committed with its checkpoint.
    pub(crate) fn committed(&self) {
        #[cfg(feature = "metrics")]
        self.handles.checkpoints.increment(1);
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

    /// Counts one of `name`, labelled by the projection and `label`.
    fn count(&self, name: &'static str, label: &'static str, value: &'static str) {
        #[cfg(feature = "metrics")]
        counter!(name, "projection" => self.name.clone(), label => value).increment(1);
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
