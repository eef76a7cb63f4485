//! Decisions across streams, the reference implementation: queries scan the log, and a
//! conditional append checks its condition and stores its writes under the store's one
//! lock, so the check is exact (no false conflicts).

use esrc_core::backend::{check_writes, opened};
use esrc_core::{Appended, Condition, Decide, Envelope, Error, Position, Query, Version, Write};
use futures::Stream;

use crate::core::{CHUNK, MemoryStore, State};
use crate::read::Chunks;

impl Decide for MemoryStore {
    async fn horizon(&self) -> Result<Position, Error> {
        // Appends become visible whole, in position order: the head is complete.
        Ok(self.last_position())
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        opened(query.normalized(), move |query| {
            let mut cursor = after;
            Chunks::new(move || {
                let chunk = self.chunk(cursor, until, |envelope| query.matches(envelope));
                if let Some(last) = chunk.last() {
                    cursor = last.position;
                }
                // The chunk scanned up to `until` unless it filled up.
                let more = chunk.len() == CHUNK;
                (chunk, more)
            })
        })
    }

    async fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        let condition = check_writes(
            &writes,
            condition.as_ref(),
            self.inner.config.max_batch_events,
        )?;
        let mut guard = self.write();
        let state = &mut *guard;
        if let Some(originals) = state.retried_writes(&writes)? {
            return Ok(originals);
        }
        if let Some(condition) = condition {
            if let Some(found) = state.first_match(&condition.query, condition.after) {
                return Err(Error::condition_failed(condition, found));
            }
        }
        let mut actuals = Vec::with_capacity(writes.len());
        for write in &writes {
            let actual = state
                .stream_of(&write.category, write.id)
                .map_or(Version::ZERO, |stream| state.streams[stream].version);
            if !write.expected.matches(actual) {
                return Err(Error::conflict(
                    write.category.clone(),
                    write.id,
                    write.expected,
                    actual,
                ));
            }
            actuals.push(actual);
        }
        let appended: Vec<Appended> = writes
            .into_iter()
            .zip(actuals)
            .map(|(write, actual)| state.append(&write.category, write.id, actual, write.events))
            .collect();
        drop(guard);
        if let Some(last) = appended.last() {
            self.moved_to(last.position);
        }
        Ok(appended)
    }
}

impl State {
    /// The position of the first event after `after` that `query` matches.
    fn first_match(&self, query: &Query, after: Position) -> Option<Position> {
        let after = (after.get() as usize).min(self.log.len());
        self.log[after..]
            .iter()
            .flatten()
            .find(|envelope| query.matches(envelope))
            .map(|envelope| envelope.position)
    }

    /// If the writes repeat stored ids: their original outcomes when every write is an
    /// exact retry of the batch its events were stored in, `DuplicateEvent` for any other
    /// reuse.
    fn retried_writes(&self, writes: &[Write]) -> Result<Option<Vec<Appended>>, Error> {
        let mut originals = Vec::with_capacity(writes.len());
        for write in writes {
            let stream = self.stream_of(&write.category, write.id);
            originals.push(self.retried(stream, &write.events)?);
        }
        if originals.iter().all(Option::is_none) {
            return Ok(None);
        }
        match originals.iter().position(Option::is_none) {
            // Some writes stored, others not: not one earlier append.
            Some(new) => {
                let stored = writes
                    .iter()
                    .zip(&originals)
                    .filter(|(_, original)| original.is_some())
                    .flat_map(|(write, _)| &write.events)
                    .next()
                    .map_or(writes[new].events[0].event_id, |event| event.event_id);
                Err(Error::duplicate_event(stored))
            }
            None => Ok(Some(originals.into_iter().flatten().collect())),
        }
    }
}
