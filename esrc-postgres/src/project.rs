//! Exactly-once projections: the read model and the checkpoint commit together.

use std::future::Future;
use std::sync::Arc;

use esrc_core::backend::{Batches, Settings, run_projector, spawn_projector};
use esrc_core::projector::{Progress, ProjectorHandle};
use esrc_core::{Context, DecodeGroup, Envelope, Error, EventGroup, Position, ProjectError};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::core::PgStore;
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
/// open batch back and does not stop the projector: it waits (from 100 ms, doubling to
/// 5 s, for as long as the outage lasts) and starts again from its committed checkpoint. Only
/// permanent store errors stop it; the projection's own errors follow
/// [`TransactionalProjector::on_error`].
///
/// ```no_run
/// # use esrc_postgres::{PgStore, TransactionalProject, TransactionalProjector};
/// # async fn run<P: TransactionalProject + 'static>(store: PgStore, projection: P) -> Result<(), Box<dyn std::error::Error>> {
/// let running = TransactionalProjector::new(store, "open-tabs", projection)
///     .checkpoint_every(100)
///     .spawn();
/// // ... how far behind it is (events stored after its committed checkpoint):
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
    settings: Settings,
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
            settings: Settings::default(),
            progress: Arc::default(),
        }
    }

    esrc_core::backend::projector_settings!();

    /// Runs the projector in a task. The handle stops it gracefully (committing the
    /// open batch with its checkpoint), and reports its progress and lag. Dropping the
    /// handle stops the projector too: keep it, or `detach()` it.
    #[must_use = "dropping the handle stops the projector: keep it, or call `detach()` to let it run on its own"]
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
    /// projection) or until an error the policy does not absorb. The engine is the core
    /// projector's (`esrc_core::backend::run_projector`); what this runner adds is the
    /// transaction each batch is projected and committed in.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<P, ProjectError<P::Error>> {
        let TransactionalProjector {
            store,
            name,
            projection,
            settings,
            progress,
        } = self;
        let mut batches = InTransaction {
            store: &store,
            name: &name,
            projection,
        };
        let names = <P::EventGroup<'static> as EventGroup>::NAMES;
        run_projector(
            &store,
            &name,
            names,
            &mut batches,
            settings,
            &progress,
            stop,
        )
        .await?;
        Ok(batches.projection)
    }
}

/// Batches in one transaction each: the read model's writes and the checkpoint commit
/// together, or not at all.
struct InTransaction<'a, P> {
    store: &'a PgStore,
    name: &'a str,
    projection: P,
}

impl<P: TransactionalProject> Batches for InTransaction<'_, P> {
    type Error = P::Error;
    type Open = Transaction<'static, Postgres>;
    const ATOMIC: bool = true;

    async fn open(&mut self) -> Result<Self::Open, Error> {
        self.store.pool().begin().await.map_err(backend)
    }

    async fn project(
        &mut self,
        transaction: &mut Self::Open,
        envelope: &Envelope,
    ) -> Result<(), ProjectError<P::Error>> {
        let context = Context::decode(envelope)?;
        self.projection
            .project(context, transaction)
            .await
            .map_err(|source| ProjectError::Project {
                position: envelope.position,
                source,
            })
    }

    async fn commit(&mut self, mut transaction: Self::Open, last: Position) -> Result<(), Error> {
        self.store
            .save_checkpoint_in(&mut transaction, self.name, last)
            .await?;
        transaction.commit().await.map_err(backend)
    }
}
