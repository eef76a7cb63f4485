//! The projector runner: a named projection that survives restarts.
//!
//! A [`Projector`] loads its checkpoint, catches up, goes live, and saves checkpoints in
//! batches — after a number of events or an interval, whichever comes first, and never
//! ahead of what was projected. Stopped (gracefully, or killed) and started again, it
//! resumes after its last checkpoint: every event is projected at least once, and only
//! the events after the last checkpoint are projected again. For exactly-once on
//! PostgreSQL, see `esrc_postgres::TransactionalProjector`.
//!
//! Store errors that a retry can fix ([`Error::Backend`] with `retryable`: a lost
//! connection, a leader election, a timeout) do not stop a projector: it waits (from
//! 100 ms, doubling to 5 s, for as long as the outage lasts), subscribes again after the
//! last projected event, and leaves a checkpoint that could not be saved to the next
//! save, which covers it. Only permanent store errors stop it. The projection's own
//! errors follow its [`ErrorPolicy`].

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::backoff::Backoff;
use crate::engine::{Batches, Settings, run_projector};
pub use crate::engine::{ErrorPolicy, Progress};
use crate::project::project_one;
use crate::{
    CheckpointStore, Envelope, Error, EventGroup, Position, Project, ProjectError, Replay,
    Subscribe,
};

/// The builder methods every projector runner shares, written once: `checkpoint_every`,
/// `checkpoint_interval`, `on_error`, `from_start` and `progress`, for a runner struct with the fields
/// `settings: Settings` and `progress: Arc<Progress>`. Used by the core
/// [`Projector`] and by esrc-postgres's transactional one;
/// a third-party runner can use it too (as `esrc_core::backend::projector_settings!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __projector_settings {
    () => {
        /// Commits (saves a checkpoint) after this many projected events (at least 1).
        #[must_use]
        pub fn checkpoint_every(mut self, events: usize) -> Self {
            self.settings = self.settings.checkpoint_every(events);
            self
        }

        /// Commits (saves a checkpoint) at least this often while events are being
        /// projected.
        #[must_use]
        pub fn checkpoint_interval(mut self, interval: ::std::time::Duration) -> Self {
            self.settings = self.settings.checkpoint_interval(interval);
            self
        }

        /// What to do when the projection fails on an event (an `ErrorPolicy`: stop, or
        /// retry with backoff). A runner whose batches are all or nothing rolls the open
        /// batch back either way, and with a retry policy starts again from its
        /// checkpoint after the delay.
        #[must_use]
        pub fn on_error(mut self, policy: $crate::projector::ErrorPolicy) -> Self {
            self.settings = self.settings.on_error(policy);
            self
        }

        /// Starts from the first event, whatever checkpoint the store holds (default
        /// `false`: resume after it). For a read model kept in memory, which is empty at
        /// every start: resuming after the stored checkpoint would leave it without
        /// everything before. Checkpoints are still saved (they show the projector's
        /// lag); within a run, the projector goes on from what it committed.
        #[must_use]
        pub fn from_start(mut self, from_start: bool) -> Self {
            self.settings = self.settings.from_start(from_start);
            self
        }

        /// What the projector has done so far, shared with the running projector.
        pub fn progress(&self) -> ::std::sync::Arc<$crate::projector::Progress> {
            ::std::sync::Arc::clone(&self.progress)
        }
    };
}

/// Runs a named [`Project`] implementation over its event group. See the module docs.
///
/// ```
/// # use esrc_core::{Context, Event, Project, Versioned};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] enum TabEvent { Opened }
/// # impl Versioned for TabEvent {}
/// # impl Event for TabEvent { const NAME: &'static str = "Tab"; }
/// # #[derive(Default)] struct OpenTabs(u32);
/// # impl Project for OpenTabs {
/// #     type EventGroup<'de> = TabEvent;
/// #     type Error = std::convert::Infallible;
/// #     async fn project<'de>(&mut self, _: Context<'de, TabEvent>) -> Result<(), Self::Error> {
/// #         self.0 += 1; Ok(())
/// #     }
/// # }
/// use std::time::Duration;
/// use esrc_core::projector::{ErrorPolicy, Projector};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = esrc_memory::MemoryStore::new();
/// let running = Projector::new(store, "open-tabs", OpenTabs::default())
///     .checkpoint_every(100)
///     .checkpoint_interval(Duration::from_secs(1))
///     .on_error(ErrorPolicy::retry())
///     .spawn();
/// // ... later: stop it, saving its checkpoint, and get the projection back.
/// let open_tabs = running.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Projector<S, P> {
    store: S,
    name: String,
    projection: P,
    settings: Settings,
    progress: Arc<Progress>,
}

impl<S, P> Projector<S, P>
where
    S: Subscribe + Replay + CheckpointStore + 'static,
    P: Project + 'static,
{
    /// A projector named `name` (a valid name: it keys the checkpoint) for `projection`.
    /// Checkpoints every 100 events or every second; stops on the first error.
    pub fn new(store: S, name: impl Into<String>, projection: P) -> Self {
        Self {
            store,
            name: name.into(),
            projection,
            settings: Settings::default(),
            progress: Arc::default(),
        }
    }

    crate::__projector_settings!();

    /// Runs until `stop` completes (then saves the checkpoint and returns the projection)
    /// or until an error the policy does not absorb.
    ///
    /// A payload that cannot be decoded stops the projector whatever the policy: the
    /// checkpoint stays before it, and nothing is skipped.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<P, ProjectError<P::Error>> {
        let Projector {
            store,
            name,
            projection,
            settings,
            progress,
        } = self;
        let mut direct = Direct {
            store: &store,
            name: &name,
            projection,
        };
        let names = <P::EventGroup<'static> as EventGroup>::NAMES;
        run_projector(&store, &name, names, &mut direct, settings, &progress, stop).await?;
        Ok(direct.projection)
    }

    /// Runs the projector in a task; the handle stops it. Dropping the handle stops the
    /// projector too (gracefully, saving its checkpoint): keep it, or
    /// [`detach`](ProjectorHandle::detach) it.
    #[must_use = "dropping the handle stops the projector: keep it, or call `detach()` to let it run on its own"]
    pub fn spawn(self) -> ProjectorHandle<S, P, P::Error>
    where
        S: Clone,
    {
        let store = self.store.clone();
        let name = self.name.clone();
        let progress = self.progress();
        let categories = <P::EventGroup<'static> as EventGroup>::NAMES;
        ProjectorHandle::spawn(store, name, categories, progress, |stop| {
            self.run_until(stop.requested())
        })
    }
}

/// The core projector's batches: each event is projected directly, and a commit saves
/// the checkpoint.
struct Direct<'a, S, P> {
    store: &'a S,
    name: &'a str,
    projection: P,
}

impl<S: CheckpointStore, P: Project> Batches for Direct<'_, S, P> {
    type Error = P::Error;
    type Open = ();
    const ATOMIC: bool = false;

    async fn open(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn project(
        &mut self,
        (): &mut (),
        envelope: &Envelope,
    ) -> Result<(), ProjectError<P::Error>> {
        project_one(&mut self.projection, envelope).await
    }

    async fn commit(&mut self, (): (), last: Position) -> Result<(), Error> {
        self.store.save_checkpoint(self.name, last).await
    }
}

/// A running projector: [`Projector::spawn`] gives one, and so do projector runners
/// built on this crate (such as `esrc_postgres::TransactionalProjector`), through
/// `backend::spawn_projector`. `P` is what the
/// projector returns when it stops, `E` the projection's error.
///
/// **Dropping the handle stops the projector** (gracefully: it saves its checkpoint), so
/// `let _ = projector.spawn();` projects nothing. Keep the handle for as long as the
/// projector should run, or call [`detach`](ProjectorHandle::detach) to let it run on
/// its own until it fails (its error is logged) or the runtime shuts down.
#[derive(Debug)]
#[must_use = "dropping the handle stops the projector: keep it, or call `detach()` to let it run on its own"]
pub struct ProjectorHandle<S, P, E> {
    store: S,
    name: String,
    categories: &'static [&'static str],
    progress: Arc<Progress>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<P, ProjectError<E>>>,
    /// Why the projector stopped with an error, once it has.
    failure: Arc<std::sync::Mutex<Option<String>>>,
}

/// The stop request a spawned projector waits on (see
/// `backend::spawn_projector`).
#[derive(Debug)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Completes when the handle asks the projector to stop (or is dropped).
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl<S, P, E> ProjectorHandle<S, P, E>
where
    S: Replay,
    P: Send + 'static,
    E: Send + 'static,
{
    /// Spawns the task `run` builds (see `backend::spawn_projector`).
    pub(crate) fn spawn<F, Fut>(
        store: S,
        name: String,
        categories: &'static [&'static str],
        progress: Arc<Progress>,
        run: F,
    ) -> Self
    where
        E: std::error::Error,
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = Result<P, ProjectError<E>>> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let failure = Arc::new(std::sync::Mutex::new(None));
        let run = run(StopSignal(stopped));
        let failed = Arc::clone(&failure);
        let task = tokio::spawn(async move {
            let result = run.await;
            if let Err(error) = &result {
                let reason = crate::report::chain(error);
                *failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
            }
            result
        });
        Self {
            store,
            name,
            categories,
            progress,
            stop,
            task,
            failure,
        }
    }

    /// Asks the projector to stop, waits for it to save its checkpoint, and returns the
    /// projection (or the error it stopped with).
    pub async fn stop(self) -> Result<P, ProjectError<E>> {
        let _ = self.stop.send(true);
        self.join().await
    }

    /// Waits for the projector to end by itself (an error, or the store going away).
    pub async fn join(self) -> Result<P, ProjectError<E>> {
        match self.task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(ProjectError::Cancelled),
        }
    }

    /// Lets the projector run on its own, without a handle: until its projection or the
    /// store fails for good (then its error is logged with `tracing`, at the error level)
    /// or the runtime shuts down. Nothing can stop it gracefully afterwards: keep the
    /// handle instead if the program stops projectors before it exits.
    pub fn detach(self)
    where
        E: std::fmt::Display,
    {
        let ProjectorHandle {
            name, stop, task, ..
        } = self;
        tokio::spawn(async move {
            // Holding the stop signal's sender keeps the projector from hearing a stop.
            let _never_stop = stop;
            match task.await {
                Ok(Err(error)) => {
                    tracing::error!(projector = %name, error = %one_line(&error), "esrc: detached projector stopped");
                }
                Err(join) if join.is_panic() => {
                    tracing::error!(projector = %name, "esrc: detached projector panicked");
                }
                _ => {}
            }
        });
    }

    /// Kills the projector at once, without saving a checkpoint (as a crash would).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the projector has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// What the projector has done so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The projector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How far the projector is behind, in events: how many events of its categories are
    /// stored after its last checkpoint (positions may have gaps, so a difference of
    /// positions would not be a count).
    pub async fn lag(&self) -> Result<u64, Error> {
        self.store
            .count_after(self.categories, self.progress.checkpoint())
            .await
    }

    /// Waits until the projector has projected every event of its categories that was
    /// stored when this was called: `Ok(true)`. If the projector stopped with an error
    /// before that, [`Error::ProjectorFailed`] says which and why (and
    /// [`ProjectorHandle::join`] gives the error itself); if it ended without one (a
    /// stop), `Ok(false)`.
    ///
    /// ```
    /// # use esrc_core::projector::ProjectorHandle;
    /// # async fn run<S: esrc_core::Replay, P: Send + 'static>(handle: ProjectorHandle<S, P, std::io::Error>) -> Result<(), esrc_core::Error> {
    /// if handle.caught_up().await? {
    ///     // The read model holds everything written before this line.
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn caught_up(&self) -> Result<bool, Error> {
        let head = self.store.head(self.categories).await?;
        loop {
            let moved = self.progress.moved();
            if self.progress.projected() >= head {
                return Ok(true);
            }
            if self.task.is_finished() {
                let failure = self.failure.lock().map(|failure| failure.clone());
                return match failure.unwrap_or_else(|poisoned| poisoned.into_inner().clone()) {
                    Some(reason) => Err(Error::ProjectorFailed {
                        projector: self.name.clone(),
                        reason,
                    }),
                    None => Ok(false),
                };
            }
            // The notification wakes it as events are projected; the pause notices an
            // ended task.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), moved).await;
        }
    }
}

/// A projector's error and its cause on one line (what a log line shows; the cause of
/// [`ProjectError`] is its source, not part of its message).
fn one_line<E: std::fmt::Display>(error: &ProjectError<E>) -> String {
    match error {
        ProjectError::Project { source, .. } => format!("{error}: {source}"),
        ProjectError::Store(store) => crate::Chain(store).to_string(),
        other => other.to_string(),
    }
}
