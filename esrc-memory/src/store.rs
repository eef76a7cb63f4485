//! The store and its appends: one log, stream indexes, snapshots and checkpoints behind
//! one lock. Replays are in `read.rs`, subscriptions in `subscribe.rs`, snapshots and
//! checkpoints in `snapshot.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use esrc_core::backend::{StoredId, check_append, retry_outcome, validate_name};
use esrc_core::{
    Appended, CategoryStats, Envelope, Error, Expected, NewEvent, Position, Publish, Snapshot,
    Truncate, Version,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::MemoryStoreBuilder;

/// How many envelopes a reader copies out per lock acquisition.
pub(crate) const CHUNK: usize = 512;

/// An in-memory event store. Clones share the same data.
#[derive(Clone)]
pub struct MemoryStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: MemoryStoreBuilder,
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
    index: HashMap<String, HashMap<Uuid, usize>>,
    pub(crate) streams: Vec<StreamState>,
    /// Every event id ever stored, for idempotent retries.
    event_ids: HashMap<Uuid, IdRecord>,
    pub(crate) snapshots: HashMap<String, HashMap<Uuid, Snapshot>>,
    pub(crate) checkpoints: HashMap<String, Position>,
}

pub(crate) struct StreamState {
    version: Version,
    /// The version of the first kept event (`version + 1` when none is kept).
    pub(crate) first: Version,
    /// Positions of the kept events, from version `first` on.
    pub(crate) positions: Vec<Position>,
}

/// Where an event id was stored, and the outcome of the batch that stored it.
struct IdRecord {
    /// The stream, as an index into `State::streams`.
    stream: usize,
    version: Version,
    batch_first: Version,
    batch: Appended,
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

    pub(crate) fn with_config(config: MemoryStoreBuilder) -> Self {
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

    /// Up to [`CHUNK`] events of `categories` with a position in `(after, until]`.
    pub(crate) fn chunk(
        &self,
        categories: &[String],
        after: Position,
        until: Position,
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
            .filter(|envelope| categories.contains(&envelope.category));
        copy_out(wanted, until - after)
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
fn log_index(position: Position) -> Option<usize> {
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

    /// If `events` repeat stored ids: `Ok(Some(original outcome))` for an exact retry of one
    /// batch of `stream`, `Err(DuplicateEvent)` for any other reuse (the shared rule).
    fn retried(
        &self,
        stream: Option<usize>,
        events: &[NewEvent],
    ) -> Result<Option<Appended>, Error> {
        let stored: Vec<StoredId> = events
            .iter()
            .filter_map(|event| {
                let record = self.event_ids.get(&event.event_id)?;
                // A batch's positions are contiguous: count back from its last.
                let behind = record.batch.version.get() - record.version.get();
                Some(StoredId {
                    event_id: event.event_id,
                    in_stream: Some(record.stream) == stream,
                    version: record.version,
                    position: Position(record.batch.position.get() - behind),
                    append: u128::from(record.batch.position.get()),
                    append_len: usize::try_from(
                        record.batch.version.get() - record.batch_first.get() + 1,
                    )
                    .ok(),
                })
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        retry_outcome(&ids, &stored)
    }

    /// The index of the stream `(category, id)`, created empty if it is new.
    fn stream_or_new(&mut self, category: &str, id: Uuid) -> usize {
        if let Some(stream) = self.stream_of(category, id) {
            return stream;
        }
        let stream = self.streams.len();
        self.streams.push(StreamState {
            version: Version::ZERO,
            first: Version(1),
            positions: Vec::new(),
        });
        match self.index.get_mut(category) {
            Some(ids) => {
                ids.insert(id, stream);
            }
            None => {
                self.index
                    .insert(category.to_owned(), HashMap::from([(id, stream)]));
            }
        }
        stream
    }
}

impl Publish for MemoryStore {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        check_append(category, &events, self.inner.config.max_batch_events)?;

        let mut guard = self.write();
        let state = &mut *guard;
        let existing = state.stream_of(category, id);
        if let Some(original) = state.retried(existing, &events)? {
            return Ok(original);
        }
        let actual = existing.map_or(Version::ZERO, |stream| state.streams[stream].version);
        if !expected.matches(actual) {
            return Err(Error::Conflict {
                category: category.to_owned(),
                id,
                expected,
                actual,
            });
        }

        let stream = state.stream_or_new(category, id);
        let batch_first = actual.next();
        let count = events.len() as u64;
        let batch = Appended {
            version: Version(actual.get() + count),
            position: Position(state.head().get() + count),
        };
        let mut version = actual;
        let mut position = state.head();
        state.log.reserve(events.len());
        for event in events {
            version = version.next();
            position = position.next();
            state.event_ids.insert(
                event.event_id,
                IdRecord {
                    stream,
                    version,
                    batch_first,
                    batch,
                },
            );
            state.streams[stream].positions.push(position);
            state
                .log
                .push(Some(event.into_envelope(category, id, version, position)));
        }
        state.streams[stream].version = version;
        drop(guard);

        // Concurrent writers release the lock in any order: the head only moves forward.
        self.inner.head.send_if_modified(|head| {
            let newer = position > *head;
            if newer {
                *head = position;
            }
            newer
        });
        Ok(batch)
    }
}

impl Truncate for MemoryStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        validate_name(category)?;
        let mut guard = self.write();
        let state = &mut *guard;
        if let Some(stream) = state.stream_of(category, id) {
            let stream = &mut state.streams[stream];
            let gone = (before.get().saturating_sub(stream.first.get()) as usize)
                .min(stream.positions.len());
            stream.first = Version(stream.first.get() + gone as u64);
            for position in stream.positions.drain(..gone) {
                if let Some(slot) = log_index(position).and_then(|index| state.log.get_mut(index)) {
                    *slot = None;
                }
            }
        }
        Ok(())
    }
}
