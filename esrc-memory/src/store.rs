//! The store: one log, stream indexes, snapshots and checkpoints behind one lock.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use esrc_core::{
    Appended, CheckpointStore, Envelope, Error, Expected, NewEvent, Position, Publish, Replay,
    ReplayOne, Snapshot, SnapshotStore, Subscribe, Truncate, Version, check_append, validate_name,
    validate_names,
};
use futures::Stream;
use tokio::sync::watch;
use uuid::Uuid;

/// How many envelopes a reader copies out per lock acquisition.
pub(crate) const CHUNK: usize = 512;

type StreamKey = (String, Uuid);

/// An in-memory event store. Clones share the same data.
#[derive(Clone)]
pub struct MemoryStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: RwLock<State>,
    /// The position of the last stored event; subscribers wait on it.
    pub(crate) head: watch::Sender<Position>,
}

#[derive(Default)]
struct State {
    /// Every stored event by position (truncated ones removed).
    log: BTreeMap<Position, Envelope>,
    last_position: Position,
    streams: HashMap<StreamKey, StreamState>,
    /// Every event id ever stored, for idempotent retries.
    event_ids: HashMap<Uuid, StoredId>,
    snapshots: HashMap<StreamKey, Snapshot>,
    checkpoints: HashMap<String, Position>,
}

#[derive(Default)]
struct StreamState {
    version: Version,
    /// Positions of the stream's kept events, by version.
    positions: BTreeMap<Version, Position>,
}

/// Where an event id was stored, and the outcome of the batch that stored it.
struct StoredId {
    category: String,
    id: Uuid,
    version: Version,
    batch_first: Version,
    batch: Appended,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::default(),
                head: watch::Sender::new(Position::ZERO),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // The state is only mutated after every check passed, so a panic elsewhere
        // cannot leave it half-written: recovering from poison is safe.
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
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
        state
            .log
            .range(after.next()..=until)
            .map(|(_, envelope)| envelope)
            .filter(|envelope| categories.contains(&envelope.category))
            .take(CHUNK)
            .cloned()
            .collect()
    }

    pub(crate) fn last_position(&self) -> Position {
        *self.inner.head.borrow()
    }
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
            .field("events", &state.log.len())
            .field("streams", &state.streams.len())
            .field("head", &state.last_position)
            .finish()
    }
}

impl State {
    /// If `events` repeat stored ids: `Ok(Some(original outcome))` for an exact retry of one
    /// batch of this stream, `Err(DuplicateEvent)` for any other reuse.
    fn retried(
        &self,
        category: &str,
        id: Uuid,
        events: &[NewEvent],
    ) -> Result<Option<Appended>, Error> {
        let Some(first) = events.iter().find_map(|e| self.event_ids.get(&e.event_id)) else {
            return Ok(None);
        };
        let is_retry = first.category == category
            && first.id == id
            && first.version == first.batch_first
            && events.len() as u64 == first.batch.version.get() - first.batch_first.get() + 1
            && events
                .iter()
                .zip(first.batch_first.get()..)
                .all(|(event, version)| {
                    self.event_ids.get(&event.event_id).is_some_and(|stored| {
                        stored.category == category
                            && stored.id == id
                            && stored.version.get() == version
                    })
                });
        if is_retry {
            return Ok(Some(first.batch));
        }
        let reused = events
            .iter()
            .find(|e| self.event_ids.contains_key(&e.event_id))
            .map_or(Uuid::nil(), |e| e.event_id);
        Err(Error::DuplicateEvent { event_id: reused })
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
        check_append(category, &events, usize::MAX)?;

        let mut state = self.write();
        if let Some(original) = state.retried(category, id, &events)? {
            return Ok(original);
        }
        let key = (category.to_owned(), id);
        let actual = state.streams.get(&key).map_or(Version::ZERO, |s| s.version);
        if !expected.matches(actual) {
            return Err(Error::Conflict {
                category: category.to_owned(),
                id,
                expected,
                actual,
            });
        }

        let batch_first = actual.next();
        let count = events.len() as u64;
        let batch = Appended {
            version: Version(actual.get() + count),
            position: Position(state.last_position.get() + count),
        };
        let mut version = actual;
        let mut position = state.last_position;
        let mut placed = Vec::with_capacity(events.len());
        for event in events {
            version = version.next();
            position = position.next();
            let event_id = event.event_id;
            state.event_ids.insert(
                event_id,
                StoredId {
                    category: category.to_owned(),
                    id,
                    version,
                    batch_first,
                    batch,
                },
            );
            placed.push((version, position));
            state.log.insert(
                position,
                event.into_envelope(category, id, version, position),
            );
        }
        state.last_position = position;
        let stream = state.streams.entry(key).or_default();
        stream.version = version;
        stream.positions.extend(placed);
        drop(state);

        self.inner.head.send_replace(position);
        Ok(batch)
    }
}

impl ReplayOne for MemoryStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        let key = (category.to_owned(), id);
        async_stream::stream! {
            if let Err(error) = validate_name(&key.0) {
                yield Err(error);
                return;
            }
            let mut cursor = after;
            loop {
                let chunk: Vec<Envelope> = {
                    let state = self.read();
                    let Some(stream) = state.streams.get(&key) else { break };
                    stream
                        .positions
                        .range(cursor.next()..)
                        .take(CHUNK)
                        .filter_map(|(_, position)| state.log.get(position).cloned())
                        .collect()
                };
                let Some(last) = chunk.last() else { break };
                cursor = last.version;
                for envelope in chunk {
                    yield Ok(envelope);
                }
            }
        }
    }
}

impl Replay for MemoryStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        let categories = validate_names(categories);
        let until = self.last_position();
        async_stream::stream! {
            let categories = match categories {
                Ok(categories) => categories,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let mut cursor = after;
            loop {
                let chunk = self.chunk(&categories, cursor, until);
                if chunk.len() < CHUNK {
                    for envelope in chunk {
                        yield Ok(envelope);
                    }
                    break;
                }
                if let Some(last) = chunk.last() {
                    cursor = last.position;
                }
                for envelope in chunk {
                    yield Ok(envelope);
                }
            }
        }
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        Ok(self.head_of(&validate_names(categories)?))
    }
}

impl MemoryStore {
    fn head_of(&self, categories: &[String]) -> Position {
        self.read()
            .log
            .values()
            .rev()
            .find(|envelope| categories.contains(&envelope.category))
            .map_or(Position::ZERO, |envelope| envelope.position)
    }
}

impl Subscribe for MemoryStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send {
        crate::subscribe::subscribe(self, validate_names(categories), after)
    }
}

impl Truncate for MemoryStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        validate_name(category)?;
        let mut state = self.write();
        let state = &mut *state;
        if let Some(stream) = state.streams.get_mut(&(category.to_owned(), id)) {
            let kept = stream.positions.split_off(&before);
            for position in std::mem::replace(&mut stream.positions, kept).into_values() {
                state.log.remove(&position);
            }
        }
        Ok(())
    }
}

impl SnapshotStore for MemoryStore {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        validate_name(category)?;
        let mut state = self.write();
        let slot = state.snapshots.entry((category.to_owned(), id));
        match slot {
            std::collections::hash_map::Entry::Occupied(mut stored) => {
                if stored.get().version <= snapshot.version {
                    stored.insert(snapshot);
                }
            }
            std::collections::hash_map::Entry::Vacant(empty) => {
                empty.insert(snapshot);
            }
        }
        Ok(())
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        validate_name(category)?;
        Ok(self
            .read()
            .snapshots
            .get(&(category.to_owned(), id))
            .cloned())
    }
}

impl CheckpointStore for MemoryStore {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        validate_name(name)?;
        let mut state = self.write();
        let stored = state.checkpoints.entry(name.to_owned()).or_default();
        *stored = (*stored).max(position);
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        validate_name(name)?;
        Ok(self.read().checkpoints.get(name).copied())
    }
}
