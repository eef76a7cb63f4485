//! A store chosen at run time: [`DynStore`], the object-safe form of the store traits,
//! and [`AnyStore`], the shared handle applications keep.
//!
//! The store traits return `impl Future` and `impl Stream`, which makes them fast and
//! lets any crate implement them, but a trait object cannot be made of them. `DynStore`
//! has the same operations with boxed futures and streams, and every [`Store`] implements
//! it — the three stores of esrc and any third-party store alike. In turn `dyn DynStore`
//! implements every store trait, so an [`AnyStore`] (`Arc<dyn DynStore>`) is a [`Store`]:
//! [`ReadExt`](crate::ReadExt), [`PublishExt`](crate::PublishExt),
//! [`ProjectExt`](crate::ProjectExt) and the [projector](crate::projector) work on it
//! unchanged. The price is one allocation per call (and per stream), not per event.
//!
//! ```
//! use std::sync::Arc;
//! use esrc_core::{AnyStore, ReadExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), esrc_core::Error> {
//! // Which store is a matter of configuration; the code using it does not change.
//! let store: AnyStore = Arc::new(esrc_memory::MemoryStore::new());
//! # #[derive(Default)] struct Noop;
//! # #[derive(serde::Serialize, serde::Deserialize)] enum NoopEvent {}
//! # impl esrc_core::Versioned for NoopEvent {}
//! # impl esrc_core::Event for NoopEvent { const NAME: &'static str = "Noop"; }
//! # impl esrc_core::Aggregate for Noop {
//! #     type Command = (); type Event = NoopEvent; type Error = std::convert::Infallible;
//! #     fn process(&self, _: ()) -> Result<Vec<NoopEvent>, Self::Error> { Ok(vec![]) }
//! #     fn apply(self, _: &NoopEvent) -> Self { self }
//! # }
//! let root = store.load::<Noop>(uuid::Uuid::now_v7()).await?;
//! assert_eq!(root.version().get(), 0);
//!
//! // The concrete store is still there for what only it offers.
//! assert!(store.downcast_ref::<esrc_memory::MemoryStore>().is_some());
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use uuid::Uuid;

use crate::{
    Appended, CategoryStats, CheckpointStore, Condition, Decide, Envelope, Error, Expected,
    NewEvent, Position, Publish, Query, Replay, ReplayOne, Snapshot, SnapshotOrEvent,
    SnapshotStore, Store, Subscribe, Truncate, Version, Write,
};

/// A store chosen at run time, shared between tasks: what `esrc::connect` returns.
pub type AnyStore = Arc<dyn DynStore>;

/// The object-safe form of [`Store`]: the same operations, with boxed futures and
/// streams. Implemented for every [`Store`], and sealed: it cannot be implemented by
/// hand (implement the store traits), so that it may gain methods in a minor release.
///
/// Applications rarely call these methods: they hold an [`AnyStore`] and use the
/// extension traits, which `dyn DynStore` gets by implementing the store traits. The
/// methods end in `_boxed` so that they never clash with the store traits' own.
pub trait DynStore: sealed::Sealed + Send + Sync {
    /// [`Publish::publish`], boxed.
    fn publish_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<Appended, Error>>;

    /// [`ReplayOne::replay_one`], boxed.
    fn replay_one_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> BoxStream<'a, Result<Envelope, Error>>;

    /// [`ReplayOne::replay_one_from`], boxed.
    fn replay_one_from_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>>;

    /// [`Replay::replay`], boxed.
    fn replay_boxed<'a>(
        &'a self,
        categories: &[&str],
        after: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>>;

    /// [`Replay::head`], boxed.
    fn head_boxed<'a>(
        &'a self,
        categories: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Position, Error>>;

    /// [`Replay::count_after`], boxed.
    fn count_after_boxed<'a>(
        &'a self,
        categories: &'a [&'a str],
        after: Position,
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// [`Replay::categories`], boxed.
    fn categories_boxed(&self) -> BoxFuture<'_, Result<Vec<CategoryStats>, Error>>;

    /// [`Subscribe::subscribe`], boxed.
    fn subscribe_boxed<'a>(
        &'a self,
        categories: &[&str],
        after: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>>;

    /// [`Truncate::truncate`], boxed.
    fn truncate_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        before: Version,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// [`SnapshotStore::save_snapshot`], boxed.
    fn save_snapshot_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// [`SnapshotStore::load_snapshot`], boxed.
    fn load_snapshot_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, Error>>;

    /// [`SnapshotStore::snapshot_then_events`], boxed.
    fn snapshot_then_events_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
    ) -> Option<BoxStream<'a, Result<SnapshotOrEvent, Error>>>;

    /// [`CheckpointStore::save_checkpoint`], boxed.
    fn save_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// [`CheckpointStore::load_checkpoint`], boxed.
    fn load_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Position>, Error>>;

    /// [`CheckpointStore::checkpoints`], boxed.
    fn checkpoints_boxed(&self) -> BoxFuture<'_, Result<Vec<(String, Position)>, Error>>;

    /// [`CheckpointStore::reset_checkpoint`], boxed.
    fn reset_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
        to: Option<Position>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// [`Decide::horizon`], boxed.
    fn horizon_boxed(&self) -> BoxFuture<'_, Result<Position, Error>>;

    /// [`Decide::query`], boxed.
    fn query_boxed<'a>(
        &'a self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>>;

    /// [`Decide::append_if`], boxed.
    fn append_if_boxed(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> BoxFuture<'_, Result<Vec<Appended>, Error>>;

    /// The concrete store as [`Any`]. Prefer [`downcast_ref`](trait.DynStore.html#method.downcast_ref)
    /// on a `dyn DynStore`: called on an `Arc<dyn DynStore>` with this trait in scope,
    /// `as_any` finds the `Arc` (itself a store) rather than the store inside it.
    fn as_any(&self) -> &dyn Any;

    /// The concrete store's type name, for `Debug`.
    fn type_name(&self) -> &'static str;
}

/// Only the blanket implementation below implements [`DynStore`]: its methods may grow
/// with the store traits without breaking anyone (implement the store traits instead).
mod sealed {
    pub trait Sealed {}
    impl<S: crate::Store + 'static> Sealed for S {}
}

impl<S: Store + 'static> DynStore for S {
    fn publish_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<Appended, Error>> {
        Box::pin(self.publish(category, id, expected, events))
    }

    fn replay_one_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> BoxStream<'a, Result<Envelope, Error>> {
        Box::pin(self.replay_one(category, id, after))
    }

    fn replay_one_from_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>> {
        Box::pin(self.replay_one_from(category, id, after, at))
    }

    fn replay_boxed<'a>(
        &'a self,
        categories: &[&str],
        after: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>> {
        Box::pin(self.replay(categories, after))
    }

    fn head_boxed<'a>(
        &'a self,
        categories: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Position, Error>> {
        Box::pin(self.head(categories))
    }

    fn count_after_boxed<'a>(
        &'a self,
        categories: &'a [&'a str],
        after: Position,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.count_after(categories, after))
    }

    fn categories_boxed(&self) -> BoxFuture<'_, Result<Vec<CategoryStats>, Error>> {
        Box::pin(self.categories())
    }

    fn subscribe_boxed<'a>(
        &'a self,
        categories: &[&str],
        after: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>> {
        Box::pin(self.subscribe(categories, after))
    }

    fn truncate_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        before: Version,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.truncate(category, id, before))
    }

    fn save_snapshot_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.save_snapshot(category, id, snapshot))
    }

    fn load_snapshot_boxed<'a>(
        &'a self,
        category: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, Error>> {
        Box::pin(self.load_snapshot(category, id))
    }

    fn snapshot_then_events_boxed<'a>(
        &'a self,
        category: &str,
        id: Uuid,
    ) -> Option<BoxStream<'a, Result<SnapshotOrEvent, Error>>> {
        self.snapshot_then_events(category, id)
            .map(|stream| Box::pin(stream) as BoxStream<'a, _>)
    }

    fn save_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.save_checkpoint(name, position))
    }

    fn load_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Position>, Error>> {
        Box::pin(self.load_checkpoint(name))
    }

    fn checkpoints_boxed(&self) -> BoxFuture<'_, Result<Vec<(String, Position)>, Error>> {
        Box::pin(self.checkpoints())
    }

    fn reset_checkpoint_boxed<'a>(
        &'a self,
        name: &'a str,
        to: Option<Position>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.reset_checkpoint(name, to))
    }

    fn horizon_boxed(&self) -> BoxFuture<'_, Result<Position, Error>> {
        Box::pin(self.horizon())
    }

    fn query_boxed<'a>(
        &'a self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> BoxStream<'a, Result<Envelope, Error>> {
        Box::pin(self.query(query, after, until))
    }

    fn append_if_boxed(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> BoxFuture<'_, Result<Vec<Appended>, Error>> {
        Box::pin(self.append_if(writes, condition))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }
}

impl dyn DynStore {
    /// The concrete store, for what only it offers (for example `PgStore::migrate`):
    /// `store.downcast_ref::<PgStore>()` is `Some` if the store is a `PgStore`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

impl fmt::Debug for dyn DynStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dyn DynStore({})", self.type_name())
    }
}

// The store traits' futures may borrow every argument for their own lifetime, while a
// boxed one has a single lifetime: an async block holds the boxed future and hides that
// lifetime. Their streams borrow only the store, so the boxed stream is returned as is.

impl Publish for dyn DynStore {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        self.publish_boxed(category, id, expected, events).await
    }
}

impl ReplayOne for dyn DynStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.replay_one_boxed(category, id, after)
    }

    fn replay_one_from(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.replay_one_from_boxed(category, id, after, at)
    }
}

impl Replay for dyn DynStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.replay_boxed(categories, after)
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        self.head_boxed(categories).await
    }

    async fn count_after(&self, categories: &[&str], after: Position) -> Result<u64, Error> {
        self.count_after_boxed(categories, after).await
    }

    async fn categories(&self) -> Result<Vec<CategoryStats>, Error> {
        self.categories_boxed().await
    }
}

impl Subscribe for dyn DynStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.subscribe_boxed(categories, after)
    }
}

impl Truncate for dyn DynStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        self.truncate_boxed(category, id, before).await
    }
}

impl SnapshotStore for dyn DynStore {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        self.save_snapshot_boxed(category, id, snapshot).await
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        self.load_snapshot_boxed(category, id).await
    }

    fn snapshot_then_events(
        &self,
        category: &str,
        id: Uuid,
    ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_>> {
        self.snapshot_then_events_boxed(category, id)
    }
}

impl Decide for dyn DynStore {
    async fn horizon(&self) -> Result<Position, Error> {
        self.horizon_boxed().await
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.query_boxed(query, after, until)
    }

    async fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        self.append_if_boxed(writes, condition).await
    }
}

impl CheckpointStore for dyn DynStore {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        self.save_checkpoint_boxed(name, position).await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        self.load_checkpoint_boxed(name).await
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, Error> {
        self.checkpoints_boxed().await
    }

    async fn reset_checkpoint(&self, name: &str, to: Option<Position>) -> Result<(), Error> {
        self.reset_checkpoint_boxed(name, to).await
    }
}
