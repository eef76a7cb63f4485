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

pub use crate::ext::project_one;
pub use crate::name::{MAX_NAME_LEN, check_name, validate_name, validate_names};
pub use crate::projector::StopSignal;
use crate::projector::{Backoff, ErrorPolicy, Progress, ProjectorHandle};
pub use crate::store::check_append;
use crate::{Error, Position, ProjectError, Replay};

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
