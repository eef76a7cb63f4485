//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade when the `metrics`
//! feature is on: esrc records, the application installs whatever recorder and exporter
//! it likes (Prometheus, OpenTelemetry, StatsD), or none. Without the feature every
//! recording below is an empty function and [`Metered`] does not exist.
//!
//! Projectors record on their own. A store's appends, reads and subscriptions are
//! recorded by wrapping it in [`Metered`], which is a store itself (of every trait the
//! wrapped store implements), labelled with the name you give it:
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use esrc_core::metrics::Metered;
//!
//! let store = Metered::new(esrc_memory::MemoryStore::new(), "memory");
//! # }
//! ```
//!
//! Names and units follow OpenTelemetry's conventions as Prometheus spells them
//! (`…_total` for counters, `…_seconds` for times). Labels are bounded: a store's name, a
//! category (or the categories of a group, joined by `,`), a projection's name — never an
//! aggregate id. Durations are histograms, and their counts count what they time (as
//! OpenTelemetry's `db.client.operation.duration` does): the recorder decides their
//! buckets. `Metered` times on the processor's counter through `quanta` (calibrated once
//! per process against the system clock, which it falls back to where the counter is not
//! reliable): a third of the system clock's cost per read, and a command reads it four
//! times.
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `esrc_append_duration_seconds` | histogram | `store`, `category`, `outcome` | how long appends took, by outcome: `stored`, `conflict` (refused by a version check or a condition: [`Error::Conflict`](crate::Error::Conflict)), `error`. Its count is the number of appends of each outcome |
//! | `esrc_append_events_total` | counter | `store`, `category` | events of the appends stored (a retry answered from what was stored counts again) |
//! | `esrc_append_bytes_total` | counter | `store`, `category` | bytes of their payloads |
//! | `esrc_append_retries_total` | counter | `operation`, `cause` | appends tried again by [`try_write_retry`](crate::PublishExt::try_write_retry) (`operation="write"`) and [`decide`](crate::DecideExt::decide) (`"decide"`): after a `conflict` or a store `unavailable` |
//! | `esrc_read_duration_seconds` | histogram | `store`, `operation`, `category` | from a read's call until it was dropped; its count is the number of reads. `operation`: `stream` (one stream, with or without its snapshot), `categories` (a replay of a group), `query` (a query across streams; `category="*"`) |
//! | `esrc_read_events_total` | counter | `store`, `operation`, `category` | events those reads yielded (counted when the read is dropped) |
//! | `esrc_subscription_events_total` | counter | `store`, `category` | events delivered by subscriptions |
//! | `esrc_subscription_reconnects_total` | counter | `store` | failures subscriptions rode out (a lost connection, an election): they went on where they were. Recorded by the stores: `postgres` (a failed read, or its shared LISTEN connection lost and made again), `nats` (a read consumer made again) |
//! | `esrc_projector_events_total` | counter | `projection` | events projected (an event projected again after a restart counts again) |
//! | `esrc_projector_checkpoints_total` | counter | `projection` | batches committed with their checkpoint |
//! | `esrc_projector_lag_seconds` | gauge | `projection` | the age of the last event projected: how far behind its source the read model is |
//! | `esrc_projector_lag_events` | gauge | `projection` | events stored after the last one projected, counted when the projector starts and every 5 seconds (a query answered from the store's index; on NATS a short-lived consumer's pending count) |
//! | `esrc_projector_position` | gauge | `projection` | the position of the last event projected |
//! | `esrc_projector_restarts_total` | counter | `projection`, `reason` | subscriptions started again: `outage` (the store failed; after it answers again), `rollback` (an all-or-nothing batch was lost) |
//! | `esrc_projector_errors_total` | counter | `projection`, `outcome` | projection failures, by what the error policy did: `retried`, `stopped` |
//!
//! Cost: with no recorder installed, `Metered` neither times nor counts (one check per
//! call), and registers nothing, so a recorder installed later gets every metric. With
//! one, handles are made once per store and label, the first label found without a lock;
//! projectors count their lag in events only then. (A recorder is recognised by holding
//! state: `metrics`'s `NoopRecorder`, of size zero, is what a program without one records
//! into.) esrc-bench measures the cost (its README,
//! "What metrics cost").

mod projector;
#[cfg(feature = "metrics")]
mod store;

pub(crate) use projector::{Outcome, ProjectorMetrics, Restart};
#[cfg(feature = "metrics")]
pub use store::Metered;

/// Whether a recorder is installed (globally, or for this thread). `metrics` answers
/// every recording of a program without one with its `NoopRecorder`, a type of size zero;
/// an exporter's recorder holds what it records, so it never is. Without one, `Metered` and
/// projectors neither time nor count, and register nothing: their handles are made with
/// the recorder the program installs, whenever it does.
#[cfg(feature = "metrics")]
pub(crate) fn listening() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

/// Why a command or a decision sends its events again.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Retried {
    /// A conflict: read again, decide again.
    Conflict,
    /// The store was unavailable: the same events again.
    Unavailable,
}

/// Counts an append tried again by `operation` (`write`, `decide`).
pub(crate) fn retried(operation: &'static str, cause: Retried) {
    #[cfg(feature = "metrics")]
    {
        let cause = match cause {
            Retried::Conflict => "conflict",
            Retried::Unavailable => "unavailable",
        };
        metrics::counter!("esrc_append_retries_total", "operation" => operation, "cause" => cause)
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, cause);
}

/// For stores: counts a failure that a subscription of the store `store` rode out (it
/// reconnects, or waits for an election, and goes on where it was). Does nothing without
/// the `metrics` feature.
pub fn subscription_reconnected(store: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("esrc_subscription_reconnects_total", "store" => store).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = store;
}
