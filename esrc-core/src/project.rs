//! Projections: events in, read models out.

use std::future::Future;

use uuid::Uuid;

use crate::{DecodeGroup, Envelope, Error, Metadata, Position, Timestamp, Version};

/// A projection: an async callback over the events of an [`EventGroup`](crate::EventGroup).
///
/// The event group is a generic associated type so that a projection may decode events
/// that borrow from the stored payload (zero copy): for owned events write
/// `type EventGroup<'de> = MyEvent;`.
///
/// From the type to a running, checkpointed projector:
///
/// ```
/// use std::collections::BTreeMap;
/// use esrc_core::projector::Projector;
/// use esrc_core::{Context, Project, PublishExt, Root, Uuid};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, esrc_core::Event)]
/// # enum TabEvent { Opened { table: u32 }, Closed }
/// # #[derive(Default, Serialize, Deserialize)] struct Tab;
/// # impl esrc_core::Versioned for Tab {}
/// # impl esrc_core::Aggregate for Tab {
/// #     type Command = u32; type Event = TabEvent; type Error = std::convert::Infallible;
/// #     fn process(&self, table: u32) -> Result<Vec<TabEvent>, Self::Error> { Ok(vec![TabEvent::Opened { table }]) }
/// #     fn apply(self, _: &TabEvent) -> Self { self }
/// # }
///
/// /// The read model: which table each open tab is at.
/// #[derive(Default)]
/// struct OpenTabs {
///     tables: BTreeMap<Uuid, u32>,
/// }
///
/// impl Project for OpenTabs {
///     type EventGroup<'de> = TabEvent;
///     type Error = std::convert::Infallible;
///
///     async fn project<'de>(&mut self, context: Context<'de, TabEvent>) -> Result<(), Self::Error> {
///         match context.event() {
///             TabEvent::Opened { table } => {
///                 self.tables.insert(context.aggregate_id(), *table);
///             }
///             TabEvent::Closed => {
///                 self.tables.remove(&context.aggregate_id());
///             }
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = esrc_memory::MemoryStore::new();
/// store.try_write(&mut Root::<Tab>::new(Uuid::now_v7()), 4).await?;
///
/// // Named, so that its checkpoint (and lag) can be seen. `OpenTabs` lives in memory and
/// // is empty at every start: it is rebuilt from the first event (see below).
/// let running = Projector::new(store.clone(), "open-tabs", OpenTabs::default())
///     .checkpoint_every(100)
///     .from_start(true)
///     .spawn();
/// assert!(running.caught_up().await?);
/// assert_eq!(running.lag().await?, 1, "projected, not yet checkpointed");
/// let open_tabs = running.stop().await?; // saves the checkpoint
/// assert_eq!(open_tabs.tables.values().collect::<Vec<_>>(), [&4]);
/// # Ok(()) }
/// ```
///
/// **A read model kept in memory loses its history at a restart**, while the projector's
/// checkpoint stays in the store: a projector started again resumes after that checkpoint,
/// and the empty model never sees what came before. Pick one of the safe shapes:
///
/// - rebuild it at every start: `.from_start(true)` (as above), which projects every
///   event again and ignores the stored checkpoint;
/// - keep the model with its position, in the same store or beside it, and load both at
///   start (the cafe example's read models do this);
/// - keep the model in the database the store writes to, and commit it with the
///   checkpoint (`esrc_postgres::TransactionalProjector`: exactly once).
pub trait Project: Send {
    /// The events this projection reads, decoded for the lifetime of one envelope.
    type EventGroup<'de>: DecodeGroup<'de> + Send;
    /// Why projecting an event failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Handles one event.
    fn project<'de>(
        &mut self,
        context: Context<'de, Self::EventGroup<'de>>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// One decoded event with the data of its envelope.
#[derive(Debug)]
pub struct Context<'de, G> {
    envelope: &'de Envelope,
    event: G,
}

impl<'de, G: DecodeGroup<'de>> Context<'de, G> {
    /// Decodes `envelope` into the group `G`.
    pub fn decode(envelope: &'de Envelope) -> Result<Self, Error> {
        Ok(Self {
            event: envelope.deserialize()?,
            envelope,
        })
    }
}

/// A context derefs to its event, as in esrc 0.1: `match &*context { … }`.
impl<G> std::ops::Deref for Context<'_, G> {
    type Target = G;

    fn deref(&self) -> &G {
        &self.event
    }
}

impl<'de, G> Context<'de, G> {
    /// The decoded event.
    pub fn event(&self) -> &G {
        &self.event
    }

    /// The decoded event, by value.
    pub fn into_event(self) -> G {
        self.event
    }

    /// The stored envelope.
    pub fn envelope(&self) -> &'de Envelope {
        self.envelope
    }

    /// The event's category.
    pub fn category(&self) -> &'de str {
        &self.envelope.category
    }

    /// The aggregate id of the event's stream.
    pub fn aggregate_id(&self) -> Uuid {
        self.envelope.aggregate_id
    }

    /// The event's version in its stream.
    pub fn version(&self) -> Version {
        self.envelope.version
    }

    /// The event's store-wide position.
    pub fn position(&self) -> Position {
        self.envelope.position
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        self.envelope.event_id
    }

    /// When the event was created.
    pub fn timestamp(&self) -> Timestamp {
        self.envelope.timestamp
    }

    /// The event's metadata.
    pub fn metadata(&self) -> &'de Metadata {
        &self.envelope.metadata
    }
}

/// Why a projection run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError<E> {
    /// The projection failed on the event at `position`.
    #[error("projection failed at position {position}")]
    Project {
        /// The position of the event the projection failed on.
        position: Position,
        /// The projection's error.
        #[source]
        source: E,
    },
    /// The store failed, or an event could not be decoded.
    #[error(transparent)]
    Store(#[from] Error),
    /// The projector's task was cancelled (aborted) before it ended by itself.
    #[error("the projector was cancelled")]
    Cancelled,
}

/// Decodes one envelope for `projection` and projects it.
pub async fn project_one<P: Project>(
    projection: &mut P,
    envelope: &Envelope,
) -> Result<(), ProjectError<P::Error>> {
    let context = Context::decode(envelope)?;
    projection
        .project(context)
        .await
        .map_err(|source| ProjectError::Project {
            position: envelope.position,
            source,
        })
}
