//! What only authors of stores and of projector runners need.
//!
//! An application uses the crate root: the traits, the types, the extension traits and
//! the projector. A store built on esrc-core also checks appends and names the way every
//! store does, and a projector runner (such as esrc-postgres's transactional projector)
//! records its progress and shares the core projector's handle and its rule for store
//! outages. Those pieces live here, apart from the application's API, and may change more
//! freely between versions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::engine::{Batches, Settings, run_projector};
pub use crate::ext::project_one;
pub use crate::name::{MAX_NAME_LEN, check_name, validate_name, validate_names};
pub use crate::projector::StopSignal;
use crate::projector::{Backoff, ErrorPolicy, Progress, ProjectorHandle};
pub use crate::store::check_append;
use uuid::Uuid;

use crate::{Appended, Error, Position, ProjectError, Replay, Version};

/// Records that a runner projected the event at `position`.
pub fn record_projected(progress: &Progress, position: Position) {
    progress.set_projected(position);
}

/// Records that a runner saved (or committed) the checkpoint `position`.
pub fn record_checkpoint(progress: &Progress, position: Position) {
    progress.set_checkpoint(position);
}

/// Spawns the task `run` builds: it runs the projector `name` over `categories` until its
/// [`StopSignal`] completes, recording what it does in `progress`. The handle is the one
/// [`Projector::spawn`](crate::projector::Projector::spawn) gives: progress, lag, and a
/// graceful stop.
pub fn spawn_projector<S, P, E, F, Fut>(
    store: S,
    name: String,
    categories: &'static [&'static str],
    progress: Arc<Progress>,
    run: F,
) -> ProjectorHandle<S, P, E>
where
    S: Replay,
    P: Send + 'static,
    E: Send + 'static,
    F: FnOnce(StopSignal) -> Fut,
    Fut: Future<Output = Result<P, ProjectError<E>>> + Send + 'static,
{
    ProjectorHandle::spawn(store, name, categories, progress, run)
}

/// How projectors wait out retryable store errors: from 100 ms, doubling to 5 s, for as
/// long as the outage lasts.
pub const STORE_OUTAGE: ErrorPolicy = ErrorPolicy::Retry {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
    attempts: u32::MAX,
};

/// Whether a projector waits out `error` (a retryable store failure: a lost connection,
/// an election) rather than stopping on it.
pub fn rides_out(error: &Error) -> bool {
    matches!(
        error,
        Error::Backend {
            retryable: true,
            ..
        }
    )
}

/// Waits before trying the store again; `false` if a stop was requested meanwhile.
pub async fn wait_out(
    name: &str,
    error: &Error,
    outage: &mut Backoff,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> bool {
    let attempt = outage.attempt();
    let delay = outage.next_delay().unwrap_or(Duration::from_secs(5));
    tracing::warn!(projector = %name, %error, attempt, ?delay, "esrc: store unavailable; retrying");
    tokio::select! {
        biased;
        () = stop => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Pauses that double from a first delay up to a longest one: how stores and runners
/// space out their retries of a failing call.
///
/// ```
/// use std::time::Duration;
/// let mut delays = esrc_core::backend::Doubling::new(Duration::from_millis(25), Duration::from_millis(80));
/// let ms: Vec<u128> = (0..4).map(|_| delays.next_delay().as_millis()).collect();
/// assert_eq!(ms, [25, 50, 80, 80]);
/// delays.reset();
/// assert_eq!(delays.next_delay(), Duration::from_millis(25));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Doubling {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Doubling {
    /// Delays from `first`, doubling, never longer than `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            next: first,
            max,
        }
    }

    /// The pause before the next try; the one after it is twice as long (up to the
    /// longest).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = (delay * 2).min(self.max);
        delay
    }

    /// Starts again from the first delay, after a call succeeded.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// A stored event whose id an append repeats, as the store found it: what
/// [`retry_outcome`] needs to tell a retry from a reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredId {
    /// The event's id.
    pub event_id: Uuid,
    /// Whether it is stored in the stream the new append is for.
    pub in_stream: bool,
    /// Its version in its stream.
    pub version: Version,
    /// Its position.
    pub position: Position,
    /// Which append stored it, in the store's own terms (a batch id, a transaction id):
    /// equal for the events of one append, different across appends.
    pub append: u128,
    /// How many events that append stored, when the store knows it; a store that does
    /// not must check, when the outcome is a retry, that the append stored nothing else.
    pub append_len: Option<usize>,
}

/// Whether an append whose event ids a store already holds is a retry of one earlier
/// append — the rule every store applies, so that a retry after an ambiguous failure
/// stores nothing twice and reports the original outcome:
///
/// - `Ok(None)`: none of the ids is stored; a new append.
/// - `Ok(Some(original))`: every id is stored, in the append's order, with contiguous
///   versions in this stream, by one earlier append that stored just these events; the
///   original outcome is its last event's version and position.
/// - `Err(Error::DuplicateEvent)`: any other reuse of an id, naming the first one reused.
///
/// `event_ids` are the append's ids in order; `stored` holds what the store found for
/// them, in any order.
pub fn retry_outcome(event_ids: &[Uuid], stored: &[StoredId]) -> Result<Option<Appended>, Error> {
    if stored.is_empty() {
        return Ok(None);
    }
    let find = |event_id: Uuid| stored.iter().find(|found| found.event_id == event_id);
    let duplicate = || Error::DuplicateEvent {
        event_id: event_ids
            .iter()
            .copied()
            .find(|event_id| find(*event_id).is_some())
            .unwrap_or_default(),
    };
    let in_order: Option<Vec<&StoredId>> = event_ids.iter().map(|id| find(*id)).collect();
    let Some(in_order) = in_order else {
        return Err(duplicate());
    };
    let (Some(first), Some(last)) = (in_order.first(), in_order.last()) else {
        return Err(duplicate());
    };
    let one_append = in_order
        .iter()
        .zip(first.version.get()..)
        .all(|(found, version)| {
            found.in_stream
                && found.version.get() == version
                && found.append == first.append
                && found.append_len.is_none_or(|len| len == event_ids.len())
        });
    if !one_append {
        return Err(duplicate());
    }
    Ok(Some(Appended {
        version: last.version,
        position: last.position,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event_id: Uuid, version: u64, append: u128, len: Option<usize>) -> StoredId {
        StoredId {
            event_id,
            in_stream: true,
            version: Version(version),
            position: Position(version * 10),
            append,
            append_len: len,
        }
    }

    #[test]
    fn a_whole_earlier_append_is_a_retry_and_anything_else_a_duplicate() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let whole: Vec<StoredId> = ids
            .iter()
            .zip(4..)
            .map(|(id, version)| stored(*id, version, 7, Some(3)))
            .collect();
        let original = retry_outcome(&ids, &whole).unwrap();
        assert_eq!(
            original,
            Some(Appended {
                version: Version(6),
                position: Position(60)
            })
        );
        assert_eq!(retry_outcome(&ids, &[]).unwrap(), None, "nothing stored");

        let duplicate = |stored: &[StoredId]| {
            matches!(
                retry_outcome(&ids, stored),
                Err(Error::DuplicateEvent { event_id }) if event_id == ids[0] || event_id == ids[1]
            )
        };
        assert!(duplicate(&whole[..2]), "part of the append is stored");
        let mut other_stream = whole.clone();
        other_stream[1].in_stream = false;
        assert!(duplicate(&other_stream), "in another stream");
        let mut two_appends = whole.clone();
        two_appends[2].append = 8;
        assert!(duplicate(&two_appends), "stored by two appends");
        let mut gap = whole.clone();
        gap[2].version = Version(9);
        assert!(duplicate(&gap), "versions not contiguous");
        let longer: Vec<StoredId> = whole
            .iter()
            .map(|s| StoredId {
                append_len: Some(4),
                ..*s
            })
            .collect();
        assert!(duplicate(&longer), "the earlier append held more events");
        let reordered = [whole[1], whole[0], whole[2]];
        assert_eq!(
            retry_outcome(&ids, &reordered).unwrap(),
            original,
            "found in any order"
        );
    }
}
