//! The one projector engine: catch-up then live from the committed checkpoint, batches
//! closed after a number of events or an interval, the error policy, store outages ridden
//! out. A runner says only how a batch opens, takes an event and commits with its
//! checkpoint ([`Batches`]): the core `Projector` saves the
//! checkpoint after projecting directly, esrc-postgres's transactional projector writes the
//! read model and the checkpoint in one transaction.
//!
//! The engine runs in named steps, each on one screen: `Run::start` loads the
//! checkpoint, `Run::follow` catches up and follows live, `Run::take` opens a batch
//! and projects an event into it under the policy, `Run::commit_due` commits a full or
//! timed-out batch, `Run::finish` commits the last one, and `Run::wait_out` waits out
//! a store outage. Every commit goes through `Run::commit`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::metrics::{Outcome, ProjectorMetrics, Restart};
use crate::name::validate_name;
use crate::{CheckpointStore, Envelope, Error, Position, ProjectError, Replay, Subscribe};

/// How a projector runner projects a batch of events and makes it durable with its
/// checkpoint; the engine ([`run_projector`]) does the rest.
pub trait Batches: Send {
    /// The projection's own error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// An open batch (for example a database transaction).
    type Open: Send;

    /// Whether a batch is all or nothing: its events take effect only when it commits.
    /// Then a failed event or a failed commit throws the open batch away and the engine
    /// starts again from the committed checkpoint. Otherwise a failed event is retried
    /// alone, and a checkpoint that could not be saved is left to the next commit.
    const ATOMIC: bool;

    /// Opens a batch before its first event.
    fn open(&mut self) -> impl Future<Output = Result<Self::Open, Error>> + Send;

    /// Projects one event into the open batch.
    fn project(
        &mut self,
        open: &mut Self::Open,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<(), ProjectError<Self::Error>>> + Send;

    /// Makes the batch durable together with the checkpoint `last` (the position of its
    /// last event).
    fn commit(
        &mut self,
        open: Self::Open,
        last: Position,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What a projector does when its projection fails on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// Save the checkpoint of the last projected event and stop with the error.
    Stop,
    /// Try the same event again after a delay that doubles from `initial` up to `max`;
    /// after `attempts` tries in all, stop with the error.
    Retry {
        /// The first delay.
        initial: Duration,
        /// The longest delay.
        max: Duration,
        /// How many tries in all before giving up.
        attempts: u32,
    },
}

impl ErrorPolicy {
    /// The pauses between the tries at one failing event, starting at its first try.
    pub fn backoff(self) -> Backoff {
        match self {
            ErrorPolicy::Retry {
                initial,
                max,
                attempts,
            } => Backoff::new(initial, max).attempts(attempts),
            ErrorPolicy::Stop => Backoff::new(Duration::ZERO, Duration::ZERO).attempts(1),
        }
    }

    /// Retry with exponential backoff from 100 ms up to 10 s, 10 tries in all.
    pub const fn retry() -> Self {
        ErrorPolicy::Retry {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            attempts: 10,
        }
    }
}

/// When a projector commits, and what it does when its projection fails. Every projector
/// runner's builder keeps one and sets it through these methods.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// Commit after this many events (at least 1).
    pub checkpoint_every: usize,
    /// Commit at least this often while events come in.
    pub checkpoint_interval: Duration,
    /// What a failing projection gets.
    pub policy: ErrorPolicy,
    /// Whether the projector starts from the first event, whatever checkpoint the store
    /// holds (for a read model kept in memory, empty at every start).
    pub from_start: bool,
}

impl Default for Settings {
    /// Every 100 events or every second; stop on the first error.
    fn default() -> Self {
        Self {
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(1),
            policy: ErrorPolicy::Stop,
            from_start: false,
        }
    }
}

impl Settings {
    /// Commits after this many events (at least 1).
    #[must_use]
    pub fn checkpoint_every(mut self, events: usize) -> Self {
        self.checkpoint_every = events.max(1);
        self
    }

    /// Commits at least this often while events are being projected.
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// What to do when the projection fails.
    #[must_use]
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether to start from the first event, ignoring the stored checkpoint.
    #[must_use]
    pub fn from_start(mut self, from_start: bool) -> Self {
        self.from_start = from_start;
        self
    }
}

/// What a running projector has done so far, readable while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    projected: AtomicU64,
    checkpoint: AtomicU64,
    /// Woken whenever `projected` moves.
    moved: tokio::sync::Notify,
}

impl Progress {
    /// The position of the last event projected.
    pub fn projected(&self) -> Position {
        Position(self.projected.load(Ordering::Acquire))
    }

    /// The position of the last checkpoint saved.
    pub fn checkpoint(&self) -> Position {
        Position(self.checkpoint.load(Ordering::Acquire))
    }

    /// Completes the next time `projected` moves (register before checking it).
    pub(crate) fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.moved.notified()
    }

    fn set_projected(&self, position: Position) {
        self.projected.store(position.get(), Ordering::Release);
        self.moved.notify_waiters();
    }

    fn set_checkpoint(&self, position: Position) {
        self.checkpoint.store(position.get(), Ordering::Release);
    }
}

/// How projectors wait out retryable store errors: from 100 ms, doubling to 5 s, for as
/// long as the outage lasts.
fn store_outage() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// The events projected since the last commit.
struct Batch<O> {
    open: O,
    span: tracing::Span,
    events: usize,
    deadline: Instant,
}

/// How a subscription of the engine ended.
enum Flow {
    /// Start again from the committed checkpoint (an all-or-nothing batch was lost, or
    /// the store failed while opening one).
    Restart(Restart),
    /// The projector is done: stopped on request, or its events ended.
    Done,
}

/// One projector run: what every step reads and moves.
struct Run<'a, S, B: Batches> {
    store: &'a S,
    name: &'a str,
    categories: &'static [&'static str],
    batches: &'a mut B,
    settings: Settings,
    progress: &'a Progress,
    stop: Pin<&'a mut (dyn Future<Output = ()> + Send)>,
    /// The pauses of the current store outage.
    outage: Backoff,
    /// All-or-nothing batches count their failures across restarts.
    failures: Backoff,
    /// The position of the last event projected.
    last: Position,
    batch: Option<Batch<B::Open>>,
    metrics: ProjectorMetrics,
}

/// Runs the projector `name` over `categories` until `stop` completes (then commits the
/// open batch) or until an error the policy does not absorb.
///
/// A payload that cannot be decoded stops the projector whatever the policy: the
/// checkpoint stays before it, and nothing is skipped.
pub async fn run_projector<S, B>(
    store: &S,
    name: &str,
    categories: &'static [&'static str],
    batches: &mut B,
    settings: Settings,
    progress: &Progress,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), ProjectError<B::Error>>
where
    S: Subscribe + CheckpointStore + Replay,
    B: Batches,
{
    validate_name(name)?;
    let stop = std::pin::pin!(stop);
    let mut run = Run {
        store,
        name,
        categories,
        batches,
        settings,
        progress,
        stop,
        outage: store_outage(),
        failures: settings.policy.backoff(),
        last: Position::ZERO,
        batch: None,
        metrics: ProjectorMetrics::new(name),
    };
    loop {
        let Some(start) = run.start().await? else {
            return Ok(());
        };
        match run.follow(start).await? {
            Flow::Restart(reason) => run.metrics.restarted(reason),
            Flow::Done => return Ok(()),
        }
    }
}

impl<S, B> Run<'_, S, B>
where
    S: Subscribe + CheckpointStore + Replay,
    B: Batches,
{
    /// Loads the committed checkpoint, riding out an outage; `None` if a stop was
    /// requested meanwhile.
    async fn start(&mut self) -> Result<Option<Position>, ProjectError<B::Error>> {
        if self.settings.from_start {
            // What this run committed (nothing, at first): the stored checkpoint may be
            // ahead of a read model that started empty.
            return Ok(Some(self.progress.checkpoint()));
        }
        loop {
            match self.store.load_checkpoint(self.name).await {
                Ok(start) => return Ok(Some(start.unwrap_or_default())),
                Err(error) if error.is_retryable() => {
                    if !self.wait_out(&error).await {
                        return Ok(None);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Catches up from `start` and follows live, until a stop, the end of the events,
    /// a restart or an error.
    async fn follow(&mut self, start: Position) -> Result<Flow, ProjectError<B::Error>> {
        self.progress.set_projected(start);
        self.progress.set_checkpoint(start);
        self.last = start;
        self.batch = None;
        tracing::info!(projector = %self.name, checkpoint = %start, "esrc: projector starting");
        let store = self.store;
        let mut events = Box::pin(store.subscribe(self.categories, start));
        if self.metrics.next_count().is_some() {
            // The lag it starts with, before the first event (which may take long).
            self.count_lag().await;
        }
        loop {
            let deadline = self.batch.as_ref().map(|batch| batch.deadline);
            let next = tokio::select! {
                biased;
                () = &mut self.stop => {
                    self.finish().await?;
                    tracing::info!(projector = %self.name, checkpoint = %self.last, "esrc: projector stopped");
                    return Ok(Flow::Done);
                }
                () = sleep_until(deadline) => match self.commit_due().await? {
                    Some(flow) => return Ok(flow),
                    None => continue,
                },
                () = sleep_until(self.metrics.next_count()) => {
                    self.count_lag().await;
                    continue;
                }
                next = events.next() => next,
            };
            let envelope = match next {
                Some(Ok(envelope)) => {
                    self.outage.reset();
                    envelope
                }
                // A failure a retry can fix (a lost connection, an election): subscribe
                // again after the last projected event, once the store answers.
                Some(Err(error)) if error.is_retryable() => {
                    if !self.wait_out(&error).await {
                        self.finish().await?;
                        return Ok(Flow::Done);
                    }
                    self.metrics.restarted(Restart::Outage);
                    events = Box::pin(store.subscribe(self.categories, self.last));
                    continue;
                }
                Some(Err(error)) => {
                    self.flush().await;
                    return Err(error.into());
                }
                None => {
                    self.finish().await?;
                    return Ok(Flow::Done);
                }
            };
            if let Some(flow) = self.take(&envelope).await? {
                return Ok(flow);
            }
        }
    }

    /// Projects `envelope` into the open batch (opening one first), then commits the
    /// batch if it is full. `Some(flow)` ends the subscription.
    async fn take(&mut self, envelope: &Envelope) -> Result<Option<Flow>, ProjectError<B::Error>> {
        if self.batch.is_none() {
            match self.batches.open().await {
                Ok(open) => self.batch = Some(self.new_batch(open, envelope.position)),
                Err(error) if error.is_retryable() => {
                    let flow = match self.wait_out(&error).await {
                        true => Flow::Restart(Restart::Outage),
                        false => Flow::Done,
                    };
                    return Ok(Some(flow));
                }
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(flow) = self.project(envelope).await? {
            return Ok(Some(flow));
        }
        self.last = envelope.position;
        self.progress.set_projected(self.last);
        self.metrics.projected(envelope);
        let every = self.settings.checkpoint_every.max(1);
        let full = self.batch.as_mut().is_some_and(|current| {
            current.events += 1;
            current.events >= every
        });
        if full {
            return self.commit_due().await;
        }
        Ok(None)
    }

    fn new_batch(&self, open: B::Open, first: Position) -> Batch<B::Open> {
        Batch {
            open,
            span: tracing::info_span!(
                "esrc.projector.batch",
                projector = %self.name,
                first = %first,
                events = tracing::field::Empty,
                checkpoint = tracing::field::Empty,
            ),
            events: 0,
            deadline: Instant::now() + self.settings.checkpoint_interval,
        }
    }

    /// Projects one event into the open batch, trying again as the policy allows.
    async fn project(
        &mut self,
        envelope: &Envelope,
    ) -> Result<Option<Flow>, ProjectError<B::Error>> {
        let mut retries = self.settings.policy.backoff();
        loop {
            let Some(current) = self.batch.as_mut() else {
                return Ok(Some(Flow::Restart(Restart::Rollback)));
            };
            let span = crate::trace::project_span(&current.span, self.name, envelope);
            let outcome = self
                .batches
                .project(&mut current.open, envelope)
                .instrument(span.clone())
                .await;
            let (position, source) = match outcome {
                Ok(()) => return Ok(None),
                Err(ProjectError::Project { position, source }) => (position, source),
                Err(error) => {
                    self.flush().await;
                    return Err(error);
                }
            };
            let pauses = if B::ATOMIC {
                &mut self.failures
            } else {
                &mut retries
            };
            let attempt = pauses.attempt();
            let Some(delay) = pauses.next_delay() else {
                self.metrics.failed(Outcome::Stopped);
                self.flush().await;
                return Err(ProjectError::Project { position, source });
            };
            self.metrics.failed(Outcome::Retried);
            if B::ATOMIC {
                // The whole batch rolls back with the failed event.
                self.batch = None;
            }
            tracing::warn!(parent: &span, %position, attempt, error = %source, ?delay,
                "esrc: projection failed; retrying");
            tokio::select! {
                biased;
                () = &mut self.stop => {
                    self.flush().await;
                    return Ok(Some(Flow::Done));
                }
                () = tokio::time::sleep(delay) => {}
            }
            if B::ATOMIC {
                return Ok(Some(Flow::Restart(Restart::Rollback)));
            }
        }
    }

    /// Commits the open batch (full, or its interval is up). A retryable failure loses
    /// an all-or-nothing batch (the engine starts again once the store answers) or is
    /// left to the next commit. `Some(flow)` ends the subscription.
    async fn commit_due(&mut self) -> Result<Option<Flow>, ProjectError<B::Error>> {
        let Some(batch) = self.batch.take() else {
            return Ok(None);
        };
        match self.commit(batch).await {
            Ok(()) => Ok(None),
            Err(error) if error.is_retryable() && B::ATOMIC => match self.wait_out(&error).await {
                true => Ok(Some(Flow::Restart(Restart::Outage))),
                false => Ok(Some(Flow::Done)),
            },
            Err(error) if error.is_retryable() => {
                tracing::warn!(projector = %self.name, error = %crate::Chain(&error), "esrc: checkpoint not saved; the next one covers it");
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Commits the last batch before the engine ends, trying a batch that is not all or
    /// nothing again for a few seconds. An all-or-nothing batch cannot be tried twice:
    /// a failure loses it, and it is projected again from the committed checkpoint next
    /// time.
    async fn finish(&mut self) -> Result<(), Error> {
        let Some(mut batch) = self.batch.take() else {
            return Ok(());
        };
        let mut pauses =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).attempts(10);
        loop {
            let (span, events, deadline) = (batch.span.clone(), batch.events, batch.deadline);
            match self.commit(batch).await {
                Err(error) if error.is_retryable() && !B::ATOMIC => match pauses.next_delay() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(error),
                },
                outcome => return outcome,
            }
            let open = self.batches.open().await?;
            batch = Batch {
                open,
                span,
                events,
                deadline,
            };
        }
    }

    /// Saves what was projected before an error (when the batch is not all or nothing);
    /// a failure to do so is logged, since the error being returned matters more.
    async fn flush(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        if B::ATOMIC {
            return;
        }
        if let Err(error) = self.commit(batch).await {
            tracing::warn!(projector = %self.name, error = %crate::Chain(&error), "esrc: could not save the checkpoint");
        }
    }

    /// Commits `batch` with the checkpoint of the last projected event and records it:
    /// the one commit path.
    async fn commit(&mut self, batch: Batch<B::Open>) -> Result<(), Error> {
        let last = self.last;
        batch.span.record("events", batch.events);
        batch
            .span
            .record("checkpoint", tracing::field::display(last));
        let span = batch.span;
        self.batches
            .commit(batch.open, last)
            .instrument(span.clone())
            .await?;
        self.progress.set_checkpoint(last);
        self.metrics.committed();

        tracing::debug!(parent: &span, "esrc: checkpoint saved");
        Ok(())
    }

    /// Records how many events are stored after the last one projected (with the
    /// `metrics` feature and a recorder, every few seconds: a count the store answers from
    /// its index).
    async fn count_lag(&mut self) {
        match self.store.count_after(self.categories, self.last).await {
            Ok(lag) => self.metrics.lagging(lag),
            Err(error) => {
                tracing::debug!(projector = %self.name, error = %crate::Chain(&error), "esrc: could not count the lag");
                self.metrics.lagging_unknown();
            }
        }
    }

    /// Waits before trying the store again after `error`; `false` if a stop was requested
    /// meanwhile.
    async fn wait_out(&mut self, error: &Error) -> bool {
        let attempt = self.outage.attempt();
        let delay = self.outage.pause();
        tracing::warn!(projector = %self.name, error = %crate::Chain(error), attempt, ?delay, "esrc: store unavailable; retrying");
        tokio::select! {
            biased;
            () = &mut self.stop => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
