//! Appends (checked under the store's lock) and truncation.

use std::collections::HashMap;

use esrc_core::backend::{StoredId, check_append, retry_outcome, validate_name};
use esrc_core::{Appended, Error, Expected, NewEvent, Position, Publish, Truncate, Version};
use uuid::Uuid;

use crate::core::{IdRecord, MemoryStore, State, StreamState, log_index};

impl State {
    /// If `events` repeat stored ids: `Ok(Some(original outcome))` for an exact retry of one
    /// batch of `stream`, `Err(DuplicateEvent)` for any other reuse (the shared rule).
    pub(crate) fn retried(
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

    /// The version of the stream `(category, id)`, if `expected` holds there; else the
    /// conflict.
    pub(crate) fn checked_version(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
    ) -> Result<Version, Error> {
        let actual = self
            .stream_of(category, id)
            .map_or(Version::ZERO, |stream| self.streams[stream].version);
        if !expected.matches(actual) {
            return Err(Error::conflict(category.to_owned(), id, expected, actual));
        }
        Ok(actual)
    }

    /// Stores `events` at the end of the stream `(category, id)`, which is at `actual`:
    /// every check has passed.
    pub(crate) fn append(
        &mut self,
        category: &str,
        id: Uuid,
        actual: Version,
        events: Vec<NewEvent>,
    ) -> Appended {
        let stream = self.stream_or_new(category, id);
        let batch_first = actual.next();
        let count = events.len() as u64;
        let batch = Appended::new(
            Version(actual.get() + count),
            Position(self.head().get() + count),
        );
        let mut version = actual;
        let mut position = self.head();
        self.log.reserve(events.len());
        for event in events {
            version = version.next();
            position = position.next();
            self.event_ids.insert(
                event.event_id,
                IdRecord {
                    stream,
                    version,
                    batch_first,
                    batch,
                },
            );
            self.streams[stream].positions.push(position);
            match self.categorized.get_mut(category) {
                Some(positions) => positions.push(position),
                None => {
                    self.categorized.insert(category.to_owned(), vec![position]);
                }
            }
            for tag in &event.tags {
                self.tagged.entry(tag.clone()).or_default().push(position);
            }
            if !event.event_type.is_empty() {
                let key = (category.to_owned(), event.event_type.clone());
                self.typed.entry(key).or_default().push(position);
            }
            self.log
                .push(Some(event.into_envelope(category, id, version, position)));
        }
        self.streams[stream].version = version;
        batch
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
        esrc_core::backend::traced(
            esrc_core::backend::store_span(crate::core::SYSTEM, "append", category),
            async move {
                check_append(category, &events, self.inner.config.max_batch_events)?;

                let mut guard = self.write();
                let state = &mut *guard;
                let existing = state.stream_of(category, id);
                if let Some(original) = state.retried(existing, &events)? {
                    return Ok(original);
                }
                let actual = state.checked_version(category, id, expected)?;
                let batch = state.append(category, id, actual, events);
                // Under the lock: a check that sees the event sees the head at it or beyond.
                self.moved_to(batch.position);
                drop(guard);
                Ok(batch)
            },
        )
        .await
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

impl MemoryStore {
    /// Wakes subscribers: the log now ends at `position`. Called while the state's
    /// write lock is still held, so that the head (the horizon of decisions and the end
    /// of replays) is never behind an event a condition can already fail on.
    pub(crate) fn moved_to(&self, position: Position) {
        self.inner.head.send_if_modified(|head| {
            let newer = position > *head;
            if newer {
                *head = position;
            }
            newer
        });
    }
}
