//! The ground floor: the store, its state (one log, stream indexes, snapshots and
//! checkpoints behind one lock) and the low-level reads every other file stands on.
//! Appends are in `store.rs`, replays in `read.rs`, subscriptions in `subscribe.rs`,
//! snapshots in `snapshot.rs`, checkpoints in `checkpoint.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use esrc_core::{Appended, CategoryStats, Envelope, Position, Snapshot, Tag, Version};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::MemoryStoreBuilder;

/// How many envelopes a reader copies out per lock acquisition.
pub(crate) const CHUNK: usize = 512;

/// What the store's spans say it is (`esrc_core::trace`).
pub(crate) const SYSTEM: esrc_core::backend::System =
    esrc_core::backend::System::Database("memory");

/// An in-memory event store. Clones share the same data.
#[derive(Clone)]
pub struct MemoryStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: MemoryStoreBuilder,
    state: RwLock<State>,
    /// The position of the last stored event; subscribers wait on it.
    pub(crate) head: watch::Sender<Position>,
}

/// Positions are contiguous from 1 here, so the log is a vector indexed by position - 1
/// and every stream a vector of positions indexed by version.
#[derive(Default)]
pub(crate) struct State {
    /// Every stored event at index `position - 1`; `None` once truncated.
    pub(crate) log: Vec<Option<Envelope>>,
    /// Stream indexes (into `streams`) by category, then aggregate id.
    pub(crate) index: HashMap<String, HashMap<Uuid, usize>>,
    pub(crate) streams: Vec<StreamState>,
    /// Every event id ever stored, for idempotent retries.
    pub(crate) event_ids: HashMap<Uuid, IdRecord>,
    pub(crate) snapshots: HashMap<String, HashMap<Uuid, Snapshot>>,
    pub(crate) checkpoints: HashMap<String, Position>,
    /// The positions of the events carrying each tag, ascending (queries by tag).
    pub(crate) tagged: HashMap<Tag, Vec<Position>>,
    /// The positions of the events of each type (category, variant), ascending.
    pub(crate) typed: HashMap<(String, String), Vec<Position>>,
    /// The positions of each category's events, ascending (replays of categories).
    pub(crate) categorized: HashMap<String, Vec<Position>>,
}

pub(crate) struct StreamState {
    pub(crate) version: Version,
    /// The version of the first kept event (`version + 1` when none is kept).
    pub(crate) first: Version,
    /// Positions of the kept events, from version `first` on.
    pub(crate) positions: Vec<Position>,
}

/// Where an event id was stored, and the outcome of the batch that stored it.
pub(crate) struct IdRecord {
    /// The stream, as an index into `State::streams`.
    pub(crate) stream: usize,
    pub(crate) version: Version,
    pub(crate) batch_first: Version,
    pub(crate) batch: Appended,
}

impl MemoryStore {
    /// An empty store with the default options.
    pub fn new() -> Self {
        Self::with_config(MemoryStoreBuilder::default())
    }

    /// A builder for the options (see [`MemoryStoreBuilder`]).
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    fn with_config(config: MemoryStoreBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: RwLock::default(),
                head: watch::Sender::new(Position::ZERO),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        // The state is only mutated after every check passed, so a panic elsewhere
        // cannot leave it half-written: recovering from poison is safe.
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to [`CHUNK`] events that `wanted` picks, with a position in `(after, until]`.
    pub(crate) fn chunk(
        &self,
        after: Position,
        until: Position,
        wanted: impl Fn(&Envelope) -> bool,
    ) -> Vec<Envelope> {
        if after >= until {
            return Vec::new();
        }
        let state = self.read();
        let until = (until.get() as usize).min(state.log.len());
        let after = (after.get() as usize).min(until);
        let wanted = state.log[after..until]
            .iter()
            .flatten()
            .filter(|envelope| wanted(envelope));
        copy_out(wanted, until - after)
    }

    /// The next [`CHUNK`] of the events of `categories` in `(after, until]`, from the
    /// categories' position lists: what it costs does not grow with the other
    /// categories. Also the last position it covered, and whether more may follow (a
    /// truncated event leaves its position in the lists, and no envelope).
    pub(crate) fn category_chunk(
        &self,
        categories: &[String],
        after: Position,
        until: Position,
    ) -> (Vec<Envelope>, Position, bool) {
        let state = self.read();
        let mut positions: Vec<Position> = Vec::new();
        for category in categories {
            if let Some(list) = state.categorized.get(category) {
                let start = list.partition_point(|position| *position <= after);
                positions.extend(
                    list[start..]
                        .iter()
                        .take_while(|position| **position <= until)
                        .take(CHUNK),
                );
            }
        }
        positions.sort_unstable();
        positions.dedup();
        positions.truncate(CHUNK);
        let last = positions.last().copied().unwrap_or(after);
        let envelopes = positions
            .iter()
            .filter_map(|position| state.entry(*position))
            .cloned()
            .collect();
        (envelopes, last, positions.len() == CHUNK)
    }

    pub(crate) fn last_position(&self) -> Position {
        *self.inner.head.borrow()
    }
}

/// Copies of the first [`CHUNK`] of `envelopes` (of which there are at most `at_most`),
/// pushed one by one into room made beforehand: a collected iterator of clones copied
/// each 184-byte envelope once more, and grew the vector by reallocating.
pub(crate) fn copy_out<'a>(
    envelopes: impl Iterator<Item = &'a Envelope>,
    at_most: usize,
) -> Vec<Envelope> {
    let mut chunk = Vec::with_capacity(at_most.min(CHUNK));
    for envelope in envelopes.take(CHUNK) {
        chunk.push(envelope.clone());
    }
    chunk
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryStore")
            .field("events", &state.log.iter().flatten().count())
            .field("streams", &state.streams.len())
            .field("head", &state.head())
            .finish()
    }
}

/// Where the event at `position` sits in the log (positions start at 1).
pub(crate) fn log_index(position: Position) -> Option<usize> {
    (position.get() as usize).checked_sub(1)
}

impl State {
    /// The position of the last stored event.
    pub(crate) fn head(&self) -> Position {
        Position(self.log.len() as u64)
    }

    /// The stored event at `position`, unless it was truncated.
    pub(crate) fn entry(&self, position: Position) -> Option<&Envelope> {
        self.log.get(log_index(position)?)?.as_ref()
    }

    /// Every category with its kept events and the streams that hold some, by name.
    pub(crate) fn categories(&self) -> Vec<CategoryStats> {
        let mut categories: Vec<CategoryStats> = self
            .index
            .iter()
            .map(|(name, streams)| {
                let kept = streams
                    .values()
                    .map(|stream| self.streams[*stream].positions.len() as u64)
                    .filter(|events| *events > 0);
                let (events, streams) = kept.fold((0, 0), |(events, streams), kept| {
                    (events + kept, streams + 1)
                });
                CategoryStats::new(name.clone(), events, streams)
            })
            .filter(|category| category.events > 0)
            .collect();
        categories.sort_by(|a, b| a.name.cmp(&b.name));
        categories
    }

    /// The index of the stream `(category, id)` in `streams`, if it has ever been written.
    pub(crate) fn stream_of(&self, category: &str, id: Uuid) -> Option<usize> {
        self.index.get(category)?.get(&id).copied()
    }
}

impl MemoryStoreBuilder {
    /// An empty store with these options.
    pub fn build(self) -> MemoryStore {
        MemoryStore::with_config(self)
    }
}
