//! The backend-neutral store traits. Each has one job; a store implements the ones it
//! can, and the `*Ext` traits add conveniences on top for every store.
//!
//! The traits deal in encoded events ([`NewEvent`], [`Envelope`]) so that a store never
//! needs to know the application's types. They are implementable in any crate, and
//! `&S`, `Arc<S>` and `Box<S>` are stores whenever `S` is.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use uuid::Uuid;

use crate::{
    Appended, CategoryStats, Condition, Decide, Envelope, Error, Expected, NewEvent, Position,
    Query, Snapshot, Version, Write,
};

/// Appends events to one stream.
pub trait Publish: Send + Sync {
    /// Appends `events` to the stream `(category, id)`.
    ///
    /// Every store guarantees:
    /// - **atomic**: all events of one call are stored, or none;
    /// - **checked by the store**: `expected` is checked atomically with the write; a
    ///   mismatch is [`Error::Conflict`] carrying the expected and actual versions;
    /// - **contiguous**: the events get the versions following the stream's version;
    /// - **idempotent**: a batch whose event ids are all stored already, as one earlier
    ///   batch of this stream, is a retry: nothing is stored twice and the original
    ///   [`Appended`] is returned. Reusing stored ids any other way is
    ///   [`Error::DuplicateEvent`];
    /// - an empty `events` is [`Error::EmptyBatch`]; an invalid category is
    ///   [`Error::InvalidName`].
    fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, Error>> + Send;
}

/// Reads one stream.
pub trait ReplayOne: Send + Sync {
    /// The events of `(category, id)` with a version greater than `after`, ascending and
    /// contiguous. An unknown stream is empty.
    ///
    /// Like every stream of the store traits, it borrows the store but not the arguments:
    /// a store copies what it needs of them before returning (which lets
    /// [`DynStore`](crate::DynStore) box it).
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, Self>;

    /// [`ReplayOne::replay_one`] for a caller that also knows `at`, the position of the
    /// stream's event at version `after` (a root's or a snapshot's, as this store gave
    /// it), so that a store whose reads of one stream would otherwise start at the
    /// stream's first event can start just after it. [`ReadExt`](crate::ReadExt) reads
    /// through it.
    ///
    /// The result must be the same as `replay_one`'s: a position that is not that
    /// event's (another store's, or [`Position::ZERO`] for "unknown") may cost time, never
    /// events. The default ignores `at`.
    fn replay_one_from(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, Self> {
        let _ = at;
        self.replay_one(category, id, after)
    }
}

/// Reads several categories across all their streams.
pub trait Replay: Send + Sync {
    /// The events of `categories` with a position greater than `after`, in ascending
    /// position order. The stream is finite: it ends at the head of the store as it was
    /// when it was called.
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, Self>;

    /// The position of the newest stored event of `categories` (`ZERO` if none): what a
    /// projector catching up waits for.
    fn head(&self, categories: &[&str]) -> impl Future<Output = Result<Position, Error>> + Send;

    /// How many events of `categories` are stored after `after` (exclusive): a
    /// projection's lag in events, since positions may have gaps.
    ///
    /// The default counts a replay; a store should answer from its index.
    fn count_after(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        async move {
            let mut events = std::pin::pin!(self.replay(categories, after));
            let mut count = 0;
            while let Some(event) = futures::StreamExt::next(&mut events).await {
                event?;
                count += 1;
            }
            Ok(count)
        }
    }

    /// Every category the store holds events of, by name, with its counts: what tools
    /// that look into a store show. A store that cannot list its categories answers
    /// [`Error::NotSupported`] (the default).
    fn categories(&self) -> impl Future<Output = Result<Vec<CategoryStats>, Error>> + Send {
        async { Err(Error::not_supported::<Self>("listing categories")) }
    }
}

/// Follows several categories: catch-up, then live.
pub trait Subscribe: Send + Sync {
    /// The events of `categories` with a position greater than `after`: first those
    /// stored already, then new ones as they are stored, forever.
    ///
    /// Positions are strictly increasing; no event is yielded twice, and no event is
    /// skipped, including one whose write commits after a later position became
    /// visible. Dropping the stream ends the subscription and frees what it holds.
    ///
    /// Failures follow one contract on every store: one that a retry can fix (a lost
    /// connection, an election) is ridden out inside the subscription, which goes on
    /// where it was; one that it cannot (the store's schema or stream removed, access
    /// revoked) is the stream's last item, a non-retryable error, and the stream ends.
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, Self>;
}

/// Drops old events of a stream.
pub trait Truncate: Send + Sync {
    /// Removes the events of `(category, id)` with a version lower than `before`.
    ///
    /// Later reads start at `before`; the stream's version is unchanged, so appends still
    /// expect the current version, even when every event was removed. Truncate only
    /// behind a snapshot if the aggregate must still be read.
    fn truncate(
        &self,
        category: &str,
        id: Uuid,
        before: Version,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Saves and loads aggregate snapshots.
pub trait SnapshotStore: Send + Sync {
    /// Saves a snapshot of `(category, id)`. The snapshot with the highest version is
    /// kept: saving one older than the stored one changes nothing.
    fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Loads the latest snapshot of `(category, id)`, if any.
    fn load_snapshot(
        &self,
        category: &str,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send;

    /// The latest snapshot of `(category, id)` (first, if there is one), then the events
    /// after it — what [`ReadExt::read`](crate::ReadExt::read) needs — for a store that
    /// can answer both at once: in one statement, or with the lookups made side by side.
    ///
    /// `None` (the default) says the store cannot: `read` then loads the snapshot and
    /// reads the events after it ([`ReplayOne::replay_one_from`]) in turn, which costs
    /// nothing more on a store in memory.
    fn snapshot_then_events(
        &self,
        category: &str,
        id: Uuid,
    ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_, Self>> {
        let _ = (category, id);
        None::<futures::stream::Empty<_>>
    }
}

/// What [`SnapshotStore::snapshot_then_events`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotOrEvent {
    /// The stream's latest snapshot: the first item, when the stream has one.
    Snapshot(Snapshot),
    /// An event after the snapshot (or after the stream's start, without one).
    Event(Envelope),
    /// The answer stops here, and the stream may go on: the events after the last one
    /// yielded (or after the snapshot) are read as [`ReplayOne::replay_one_from`] reads
    /// them. A store whose one request costs more than two on a long stream (PostgreSQL)
    /// answers the first events, then this.
    Rest,
}

/// Stores the last processed position of named projections.
pub trait CheckpointStore: Send + Sync {
    /// Records that projection `name` has processed everything up to `position`. A
    /// checkpoint never moves backwards: saving a lower position changes nothing.
    fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The last position saved for projection `name`, if any.
    fn load_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Position>, Error>> + Send;

    /// Every projection's checkpoint, by name. A store that cannot list them answers
    /// [`Error::NotSupported`] (the default).
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<(String, Position)>, Error>> + Send {
        async { Err(Error::not_supported::<Self>("listing checkpoints")) }
    }

    /// Sets projection `name`'s checkpoint back to `to`, or removes it (`None`), so that
    /// the projection rebuilds from there: the one way a checkpoint moves backwards, for
    /// operators. Stop the projection's runners first. A store that cannot answers
    /// [`Error::NotSupported`] (the default).
    fn reset_checkpoint(
        &self,
        name: &str,
        to: Option<Position>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (name, to);
        async { Err(Error::not_supported::<Self>("resetting checkpoints")) }
    }
}

/// Every store trait at once; implemented for every type that implements them all.
///
/// [`Decide`] is part of it with defaults that answer [`Error::NotSupported`], so that a
/// store without decisions across streams implements it with an empty `impl`.
pub trait Store:
    Publish + ReplayOne + Replay + Subscribe + Truncate + SnapshotStore + CheckpointStore + Decide
{
}

impl<S: ?Sized> Store for S where
    S: Publish
        + ReplayOne
        + Replay
        + Subscribe
        + Truncate
        + SnapshotStore
        + CheckpointStore
        + Decide
{
}

macro_rules! delegate {
    ($([$($lifetime:lifetime)?] $wrapper:ty),*) => {$(
        impl<$($lifetime,)? S: Publish + ?Sized> Publish for $wrapper {
            fn publish(
                &self,
                category: &str,
                id: Uuid,
                expected: Expected,
                events: Vec<NewEvent>,
            ) -> impl Future<Output = Result<Appended, Error>> + Send {
                (**self).publish(category, id, expected, events)
            }
        }

        impl<$($lifetime,)? S: ReplayOne + ?Sized> ReplayOne for $wrapper {
            fn replay_one(
                &self,
                category: &str,
                id: Uuid,
                after: Version,
            ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, $($lifetime,)? S> {
                (**self).replay_one(category, id, after)
            }

            fn replay_one_from(
                &self,
                category: &str,
                id: Uuid,
                after: Version,
                at: Position,
            ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, $($lifetime,)? S> {
                (**self).replay_one_from(category, id, after, at)
            }
        }

        impl<$($lifetime,)? S: Replay + ?Sized> Replay for $wrapper {
            fn replay(
                &self,
                categories: &[&str],
                after: Position,
            ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, $($lifetime,)? S> {
                (**self).replay(categories, after)
            }

            fn head(
                &self,
                categories: &[&str],
            ) -> impl Future<Output = Result<Position, Error>> + Send {
                (**self).head(categories)
            }

            fn count_after(
                &self,
                categories: &[&str],
                after: Position,
            ) -> impl Future<Output = Result<u64, Error>> + Send {
                (**self).count_after(categories, after)
            }

            fn categories(&self) -> impl Future<Output = Result<Vec<CategoryStats>, Error>> + Send {
                (**self).categories()
            }
        }

        impl<$($lifetime,)? S: Subscribe + ?Sized> Subscribe for $wrapper {
            fn subscribe(
                &self,
                categories: &[&str],
                after: Position,
            ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, $($lifetime,)? S> {
                (**self).subscribe(categories, after)
            }
        }

        impl<$($lifetime,)? S: Truncate + ?Sized> Truncate for $wrapper {
            fn truncate(
                &self,
                category: &str,
                id: Uuid,
                before: Version,
            ) -> impl Future<Output = Result<(), Error>> + Send {
                (**self).truncate(category, id, before)
            }
        }

        impl<$($lifetime,)? S: SnapshotStore + ?Sized> SnapshotStore for $wrapper {
            fn save_snapshot(
                &self,
                category: &str,
                id: Uuid,
                snapshot: Snapshot,
            ) -> impl Future<Output = Result<(), Error>> + Send {
                (**self).save_snapshot(category, id, snapshot)
            }

            fn load_snapshot(
                &self,
                category: &str,
                id: Uuid,
            ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send {
                (**self).load_snapshot(category, id)
            }

            fn snapshot_then_events(
                &self,
                category: &str,
                id: Uuid,
            ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_, $($lifetime,)? S>> {
                (**self).snapshot_then_events(category, id)
            }
        }

        impl<$($lifetime,)? S: Decide + ?Sized> Decide for $wrapper {
            fn horizon(&self) -> impl Future<Output = Result<Position, Error>> + Send {
                (**self).horizon()
            }

            fn query(
                &self,
                query: &Query,
                after: Position,
                until: Position,
            ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, $($lifetime,)? S> {
                (**self).query(query, after, until)
            }

            fn append_if(
                &self,
                writes: Vec<Write>,
                condition: Option<Condition>,
            ) -> impl Future<Output = Result<Vec<Appended>, Error>> + Send {
                (**self).append_if(writes, condition)
            }
        }

        impl<$($lifetime,)? S: CheckpointStore + ?Sized> CheckpointStore for $wrapper {
            fn save_checkpoint(
                &self,
                name: &str,
                position: Position,
            ) -> impl Future<Output = Result<(), Error>> + Send {
                (**self).save_checkpoint(name, position)
            }

            fn load_checkpoint(
                &self,
                name: &str,
            ) -> impl Future<Output = Result<Option<Position>, Error>> + Send {
                (**self).load_checkpoint(name)
            }

            fn checkpoints(
                &self,
            ) -> impl Future<Output = Result<Vec<(String, Position)>, Error>> + Send {
                (**self).checkpoints()
            }

            fn reset_checkpoint(
                &self,
                name: &str,
                to: Option<Position>,
            ) -> impl Future<Output = Result<(), Error>> + Send {
                (**self).reset_checkpoint(name, to)
            }
        }
    )*};
}

delegate!(['a] &'a S, [] Arc<S>, [] Box<S>);
