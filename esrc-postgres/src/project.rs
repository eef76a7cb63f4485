//! Exactly-once projections: the read model and the checkpoint commit together.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use esrc_core::backend::{
    STORE_OUTAGE, record_checkpoint, record_projected, rides_out, spawn_projector, validate_name,
    wait_out,
};
use esrc_core::projector::{ErrorPolicy, Progress, ProjectorHandle};
use esrc_core::{
    CheckpointStore, Context, DecodeGroup, Error, EventGroup, Position, ProjectError, Subscribe,
};
use futures::StreamExt;
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::time::Instant;
use tracing::Instrument;

use crate::PgStore;
use crate::error::backend;

/// A projection whose read model lives in the store's database: each event is handed
/// the transaction in which the projector also writes its checkpoint.
///
/// Keep the projection's state in the database, written through `transaction`: a batch
/// that fails is rolled back, read model and checkpoint together, and projected again.
pub trait TransactionalProject: Send {
    /// The events this projection reads, decoded for the lifetime of one envelope.
    type EventGroup<'de>: DecodeGroup<'de> + Send;
    /// Why projecting an event failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Handles one event inside `transaction`.
    fn project<'de>(
        &mut self,
        context: Context<'de, Self::EventGroup<'de>>,
        transaction: &mut PgConnection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs a [`TransactionalProject`] exactly once per event: the events of a batch and
/// the checkpoint after them commit in one transaction, so a crash at any point leaves
/// either the whole batch or none of it.
///
/// A store error that a retry can fix (a lost connection, a server restarting) rolls the
/// open batch back and does not stop the projector: it waits
/// ([`STORE_OUTAGE`](esrc_core::backend::STORE_OUTAGE)) and starts again from its committed checkpoint. Only
/// permanent store errors stop it; the projection's own errors follow
/// [`TransactionalProjector::on_error`].
///
/// ```no_run
/// # use esrc_postgres::{PgStore, TransactionalProject, TransactionalProjector};
/// # async fn run<P: TransactionalProject + 'static>(store: PgStore, projection: P) -> Result<(), Box<dyn std::error::Error>> {
/// let running = TransactionalProjector::new(store, "open-tabs", projection)
///     .checkpoint_every(100)
///     .spawn();
/// // ... how far behind it is (head position minus committed checkpoint):
/// let lag = running.lag().await?;
/// // ... later: commit the open batch and stop.
/// let projection = running.stop().await?;
/// # Ok(()) }
/// ```
///
/// [`TransactionalProjector::run_until`] runs it in the current task instead, until a
/// future of yours completes.
#[derive(Debug)]
pub struct TransactionalProjector<P> {
    store: PgStore,
    name: String,
    projection: P,
    checkpoint_every: usize,
    checkpoint_interval: Duration,
    policy: ErrorPolicy,
    progress: Arc<Progress>,
}

impl<P: TransactionalProject + 'static> TransactionalProjector<P> {
    /// A projector named `name` for `projection`; commits every 100 events or every
    /// second, and stops on the first error.
    pub fn new(store: PgStore, name: impl Into<String>, projection: P) -> Self {
        Self {
            store,
            name: name.into(),
            projection,
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(1),
            policy: ErrorPolicy::Stop,
            progress: Arc::default(),
        }
    }

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

    /// What to do when the projection fails: the batch is rolled back either way; with
    /// a retry policy the projector starts again from its checkpoint after the delay.
    #[must_use]
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What the projector has committed so far, readable while it runs.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Runs the projector in a task. The handle stops it gracefully (committing the
    /// open batch with its checkpoint), and reports its progress and lag.
    pub fn spawn(self) -> ProjectorHandle<PgStore, P, P::Error> {
        let store = self.store.clone();
        let name = self.name.clone();
        let progress = self.progress();
        let categories = <P::EventGroup<'static> as EventGroup>::NAMES;
        spawn_projector(store, name, categories, progress, |stop| {
            self.run_until(stop.requested())
        })
    }

    /// Runs until `stop` completes (then commits the open batch and returns the
    /// projection) or until an error the policy does not absorb.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<P, ProjectError<P::Error>> {
        validate_name(&self.name)?;
        let mut stop = pin!(stop);
        let mut backoff = self.policy.backoff();
        let mut outage = STORE_OUTAGE.backoff();
        loop {
            match self.run_once(&mut stop).await {
                Ok(true) => return Ok(self.projection),
                Ok(false) => {}
                // A lost connection or a failover: the open batch rolled back with its
                // checkpoint; start again from the committed one once the store answers.
                Err(ProjectError::Store(error)) if rides_out(&error) => {
                    if !wait_out(&self.name, &error, &mut outage, &mut stop).await {
                        return Ok(self.projection);
                    }
                }
                Err(ProjectError::Project { position, source }) => {
                    let attempt = backoff.attempt();
                    let Some(delay) = backoff.next_delay() else {
                        return Err(ProjectError::Project { position, source });
                    };
                    tracing::warn!(projector = %self.name, %position, attempt, error = %source,
                        ?delay, "esrc: projection failed; batch rolled back, retrying");
                    tokio::select! {
                        biased;
                        () = &mut stop => return Ok(self.projection),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One run from the committed checkpoint: `Ok(true)` when stopped, `Ok(false)` when
    /// the subscription ended by itself.
    async fn run_once(
        &mut self,
        stop: &mut (impl Future<Output = ()> + Send + Unpin),
    ) -> Result<bool, ProjectError<P::Error>> {
        let store = self.store.clone();
        let names = <P::EventGroup<'static> as EventGroup>::NAMES;
        let start = store.load_checkpoint(&self.name).await?.unwrap_or_default();
        record_projected(&self.progress, start);
        record_checkpoint(&self.progress, start);
        let mut events = pin!(store.subscribe(names, start));
        let mut open: Option<Batch> = None;
        loop {
            let deadline = open.as_ref().map(|batch| batch.deadline);
            let next = tokio::select! {
                biased;
                () = &mut *stop => {
                    commit(&self.store, &self.name, &self.progress, open.take()).await?;
                    return Ok(true);
                }
                () = sleep_until(deadline) => {
                    commit(&self.store, &self.name, &self.progress, open.take()).await?;
                    continue;
                }
                next = events.next() => next,
            };
            let envelope = match next {
                Some(Ok(envelope)) => envelope,
                Some(Err(error)) => return Err(error.into()),
                None => {
                    commit(&self.store, &self.name, &self.progress, open.take()).await?;
                    return Ok(false);
                }
            };
            if open.is_none() {
                let transaction = store.pool().begin().await.map_err(backend)?;
                open = Some(Batch {
                    transaction,
                    events: 0,
                    deadline: Instant::now() + self.checkpoint_interval,
                    last: start,
                    span: tracing::info_span!(
                        "esrc.projector.batch",
                        projector = %self.name,
                        first = %envelope.position,
                        events = tracing::field::Empty,
                        checkpoint = tracing::field::Empty,
                    ),
                });
            }
            let Some(batch) = open.as_mut() else {
                continue;
            };
            let context = Context::decode(&envelope)?;
            let projected = self
                .projection
                .project(context, &mut batch.transaction)
                .instrument(batch.span.clone())
                .await;
            if let Err(source) = projected {
                // Dropping the transaction rolls the whole batch back.
                return Err(ProjectError::Project {
                    position: envelope.position,
                    source,
                });
            }
            batch.events += 1;
            batch.last = envelope.position;
            record_projected(&self.progress, envelope.position);
            if batch.events >= self.checkpoint_every {
                commit(&self.store, &self.name, &self.progress, open.take()).await?;
            }
        }
    }
}

/// The events projected in one open transaction.
struct Batch {
    transaction: Transaction<'static, Postgres>,
    events: usize,
    /// When the batch commits, however few its events.
    deadline: Instant,
    /// The position of the last event projected in it.
    last: Position,
    /// `esrc.projector.batch`: covers projecting the batch's events and the commit.
    span: tracing::Span,
}

/// Writes the checkpoint of an open batch in its transaction and commits both.
async fn commit(
    store: &PgStore,
    name: &str,
    progress: &Progress,
    open: Option<Batch>,
) -> Result<(), Error> {
    let Some(mut batch) = open else {
        return Ok(());
    };
    batch.span.record("events", batch.events);
    batch
        .span
        .record("checkpoint", tracing::field::display(batch.last));
    let last = batch.last;
    let span = batch.span.clone();
    async {
        store
            .save_checkpoint_in(&mut batch.transaction, name, last)
            .await?;
        batch.transaction.commit().await.map_err(backend)
    }
    .instrument(span)
    .await?;
    record_checkpoint(progress, last);
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
