//! The one projector engine: catch-up then live from the committed checkpoint, batches
//! closed after a number of events or an interval, the error policy, store outages ridden
//! out. A runner says only how a batch opens, takes an event and commits with its
//! checkpoint ([`Batches`]): the core [`Projector`](crate::projector::Projector) saves the
//! checkpoint after projecting directly, esrc-postgres's transactional projector writes the
//! read model and the checkpoint in one transaction.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{STORE_OUTAGE, rides_out, validate_name, wait_out};
use crate::projector::{Backoff, ErrorPolicy, Progress};
use crate::{CheckpointStore, Envelope, Error, Position, ProjectError, Subscribe};

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

/// When a projector commits, and what it does when its projection fails.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Commit after this many events (at least 1).
    pub checkpoint_every: usize,
    /// Commit at least this often while events come in.
    pub checkpoint_interval: Duration,
    /// What a failing projection gets.
    pub policy: ErrorPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(1),
            policy: ErrorPolicy::Stop,
        }
    }
}

/// The events projected since the last commit.
struct Batch<O> {
    open: O,
    span: tracing::Span,
    events: usize,
    deadline: Instant,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Commits `batch` with the checkpoint `last` and records it.
async fn commit<B: Batches>(
    batches: &mut B,
    batch: Batch<B::Open>,
    last: Position,
    progress: &Progress,
) -> Result<(), Error> {
    batch.span.record("events", batch.events);
    batch
        .span
        .record("checkpoint", tracing::field::display(last));
    let span = batch.span;
    batches
        .commit(batch.open, last)
        .instrument(span.clone())
        .await?;
    progress.set_checkpoint(last);
    tracing::debug!(parent: &span, "esrc: checkpoint saved");
    Ok(())
}

/// What the engine does after committing a batch while it runs.
enum After {
    /// Go on with the next event.
    Go,
    /// Start again from the committed checkpoint (an all-or-nothing batch was lost).
    Restart,
    /// A stop was requested while waiting for the store.
    Stopped,
}

/// Commits a full (or timed-out) batch; a retryable failure loses an all-or-nothing batch
/// (the engine starts again once the store answers) or is left to the next commit.
async fn commit_batch<B: Batches>(
    batches: &mut B,
    batch: Batch<B::Open>,
    last: Position,
    progress: &Progress,
    name: &str,
    outage: &mut Backoff,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> Result<After, Error> {
    match commit(batches, batch, last, progress).await {
        Ok(()) => Ok(After::Go),
        Err(error) if rides_out(&error) && B::ATOMIC => {
            if wait_out(name, &error, outage, stop).await {
                Ok(After::Restart)
            } else {
                Ok(After::Stopped)
            }
        }
        Err(error) if rides_out(&error) => {
            tracing::warn!(projector = %name, %error, "esrc: checkpoint not saved; the next one covers it");
            Ok(After::Go)
        }
        Err(error) => Err(error),
    }
}

/// Commits the last batch before the engine ends, riding out retryable failures for a
/// few seconds.
async fn commit_last<B: Batches>(
    batches: &mut B,
    batch: Batch<B::Open>,
    last: Position,
    progress: &Progress,
) -> Result<(), Error> {
    if B::ATOMIC {
        // The transaction cannot be tried twice: a failure loses the batch, which is
        // projected again from the committed checkpoint next time.
        return commit(batches, batch, last, progress).await;
    }
    let mut pauses = ErrorPolicy::Retry {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        attempts: 10,
    }
    .backoff();
    let Batch {
        span,
        events,
        deadline,
        ..
    } = batch;
    loop {
        let open = batches.open().await?;
        let again = Batch {
            open,
            span: span.clone(),
            events,
            deadline,
        };
        match commit(batches, again, last, progress).await {
            Err(error) if rides_out(&error) => match pauses.next_delay() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            },
            outcome => return outcome,
        }
    }
}

/// Saves what was projected before an error (when the batch is not all or nothing); a
/// failure to do so is logged, since the error being returned matters more.
async fn flush<B: Batches>(
    batches: &mut B,
    batch: Option<Batch<B::Open>>,
    last: Position,
    progress: &Progress,
    name: &str,
) {
    if let (false, Some(batch)) = (B::ATOMIC, batch) {
        if let Err(error) = commit(batches, batch, last, progress).await {
            tracing::warn!(projector = %name, %error, "esrc: could not save the checkpoint");
        }
    }
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
    S: Subscribe + CheckpointStore,
    B: Batches,
{
    validate_name(name)?;
    let mut stop = pin!(stop);
    let mut outage = STORE_OUTAGE.backoff();
    // All-or-nothing batches count their failures across restarts.
    let mut failures = settings.policy.backoff();
    'run: loop {
        let start = loop {
            match store.load_checkpoint(name).await {
                Ok(start) => break start.unwrap_or_default(),
                Err(error) if rides_out(&error) => {
                    if !wait_out(name, &error, &mut outage, &mut stop).await {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        };
        progress.set_projected(start);
        progress.set_checkpoint(start);
        tracing::info!(projector = %name, checkpoint = %start, "esrc: projector starting");
        let mut events = Box::pin(store.subscribe(categories, start));
        let mut last = start;
        let mut batch: Option<Batch<B::Open>> = None;
        loop {
            let deadline = batch.as_ref().map(|b| b.deadline);
            let next = tokio::select! {
                biased;
                () = &mut stop => {
                    if let Some(done) = batch.take() {
                        commit_last(batches, done, last, progress).await?;
                    }
                    tracing::info!(projector = %name, checkpoint = %last, "esrc: projector stopped");
                    return Ok(());
                }
                () = sleep_until(deadline) => {
                    if let Some(done) = batch.take() {
                        let after = commit_batch(batches, done, last, progress, name, &mut outage, &mut stop);
                        match after.await? {
                            After::Go => {}
                            After::Restart => continue 'run,
                            After::Stopped => return Ok(()),
                        }
                    }
                    continue;
                }
                next = events.next() => next,
            };
            let envelope = match next {
                Some(Ok(envelope)) => {
                    outage = STORE_OUTAGE.backoff();
                    envelope
                }
                // A failure a retry can fix (a lost connection, an election): subscribe
                // again after the last projected event, once the store answers.
                Some(Err(error)) if rides_out(&error) => {
                    if !wait_out(name, &error, &mut outage, &mut stop).await {
                        if let Some(done) = batch.take() {
                            commit_last(batches, done, last, progress).await?;
                        }
                        return Ok(());
                    }
                    events = Box::pin(store.subscribe(categories, last));
                    continue;
                }
                Some(Err(error)) => {
                    flush(batches, batch.take(), last, progress, name).await;
                    return Err(error.into());
                }
                None => {
                    if let Some(done) = batch.take() {
                        commit_last(batches, done, last, progress).await?;
                    }
                    return Ok(());
                }
            };
            if batch.is_none() {
                let open = match batches.open().await {
                    Ok(open) => open,
                    Err(error) if rides_out(&error) => {
                        if !wait_out(name, &error, &mut outage, &mut stop).await {
                            return Ok(());
                        }
                        continue 'run;
                    }
                    Err(error) => return Err(error.into()),
                };
                batch = Some(Batch {
                    open,
                    span: tracing::info_span!(
                        "esrc.projector.batch",
                        projector = %name,
                        first = %envelope.position,
                        events = tracing::field::Empty,
                        checkpoint = tracing::field::Empty,
                    ),
                    events: 0,
                    deadline: Instant::now() + settings.checkpoint_interval,
                });
            }
            let mut retries = settings.policy.backoff();
            loop {
                let Some(current) = batch.as_mut() else {
                    continue 'run;
                };
                let span = current.span.clone();
                let outcome = batches
                    .project(&mut current.open, &envelope)
                    .instrument(span.clone())
                    .await;
                match outcome {
                    Ok(()) => break,
                    Err(ProjectError::Project { position, source }) => {
                        let pauses = if B::ATOMIC {
                            &mut failures
                        } else {
                            &mut retries
                        };
                        let attempt = pauses.attempt();
                        let Some(delay) = pauses.next_delay() else {
                            flush(batches, batch.take(), last, progress, name).await;
                            return Err(ProjectError::Project { position, source });
                        };
                        if B::ATOMIC {
                            // The whole batch rolls back with the failed event.
                            batch = None;
                        }
                        tracing::warn!(parent: &span, %position, attempt, error = %source, ?delay,
                            "esrc: projection failed; retrying");
                        tokio::select! {
                            biased;
                            () = &mut stop => {
                                flush(batches, batch.take(), last, progress, name).await;
                                return Ok(());
                            }
                            () = tokio::time::sleep(delay) => {}
                        }
                        if B::ATOMIC {
                            continue 'run;
                        }
                    }
                    Err(error) => {
                        flush(batches, batch.take(), last, progress, name).await;
                        return Err(error);
                    }
                }
            }
            last = envelope.position;
            progress.set_projected(last);
            let full = batch.as_mut().is_some_and(|current| {
                current.events += 1;
                current.events >= settings.checkpoint_every.max(1)
            });
            if full {
                if let Some(done) = batch.take() {
                    let after =
                        commit_batch(batches, done, last, progress, name, &mut outage, &mut stop);
                    match after.await? {
                        After::Go => {}
                        After::Restart => continue 'run,
                        After::Stopped => return Ok(()),
                    }
                }
            }
        }
    }
}
