//! What only authors of stores and of projector runners need.
//!
//! An application uses the crate root: the traits, the types, the extension traits and
//! the projector. A store built on esrc-core also checks appends and names the way every
//! store does ([`check_append`], [`validate_name`], [`retry_outcome`], [`TailCache`]),
//! opens its streams with [`opened`], spaces out its retries with [`Backoff`], takes its options by name
//! ([`StoreOptions`]), and a projector runner (such as
//! esrc-postgres's transactional projector) runs the core engine ([`run_projector`]) and
//! shares the core projector's handle ([`spawn_projector`]). Those pieces live here,
//! apart from the application's API.
//!
//! Stability: like every public item, nothing here changes incompatibly within a minor
//! version (0.2.x). Unlike the application's API, this module may change at every minor
//! version (0.3, 0.4) even when the application's API does not: a store crate depends on
//! the esrc-core minor version it implements and is released with each.
//!
//! Nothing inside esrc-core imports this module: it only gathers what the other modules
//! define.

use std::future::Future;
use std::sync::Arc;

/// The builder methods every projector runner shares (`checkpoint_every`,
/// `checkpoint_interval`, `on_error`, `from_start`, `progress`), for a runner struct with the fields
/// `settings: Settings` and `progress: Arc<Progress>`: put `projector_settings!();` in
/// its `impl` block.
pub use crate::__projector_settings as projector_settings;
pub use crate::append::{StoredId, TailCache, check_append, retry_outcome};
pub use crate::backoff::Backoff;
pub use crate::decision::{check_writes, refuse_tags, writes_outcome};
pub use crate::engine::{Batches, Settings, run_projector};
pub use crate::name::{MAX_NAME_LEN, validate_name, validate_names};
pub use crate::opening::{opened, opened_after};
pub use crate::options::{
    StoreOption, StoreOptions, check_option_table, parse_duration, parse_flag, parse_option,
    unknown_option,
};
pub use crate::project::project_one;
pub use crate::projector::StopSignal;
use crate::projector::{Progress, ProjectorHandle};
pub use crate::trace::{System, record_error, store_span, target_of, traced, traced_read};
use crate::{ProjectError, Replay};

/// Spawns the task `run` builds: it runs the projector `name` over `categories` until its
/// [`StopSignal`] completes, recording what it does in `progress`. The handle is the one
/// [`Projector::spawn`](crate::projector::Projector::spawn) gives: progress, lag, and a
/// graceful stop.
#[must_use = "dropping the handle stops the projector: keep it, or call `detach()` to let it run on its own"]
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
    E: std::error::Error + Send + 'static,
    F: FnOnce(StopSignal) -> Fut,
    Fut: Future<Output = Result<P, ProjectError<E>>> + Send + 'static,
{
    ProjectorHandle::spawn(store, name, categories, progress, run)
}
