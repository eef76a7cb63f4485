//! Decisions across streams, the reference implementation: queries walk the index of an
//! item's first tag (or its stream's events, or its types'), so they cost what they
//! find; a conditional append checks its condition and stores its writes under the
//! store's one lock, so the check is exact (no false conflicts).

use esrc_core::backend::{check_writes, opened, writes_outcome};
use esrc_core::{Appended, Condition, Decide, Envelope, Error, Position, Query, Write};
use futures::Stream;

use esrc_core::Item;

use crate::core::{CHUNK, MemoryStore, State, copy_out};
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
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "query", "*");
        esrc_core::backend::traced_read(span, {
            opened(query.normalized(), move |query| {
                let mut cursor = after;
                Chunks::new(move || {
                    let state = self.read();
                    let found = state.matching(&query, cursor, until, CHUNK);
                    let envelopes = found.iter().filter_map(|position| state.entry(*position));
                    let chunk = copy_out(envelopes, found.len());
                    drop(state);
                    if let Some(last) = chunk.last() {
                        cursor = last.position;
                    }
                    // The chunk scanned up to `until` unless it filled up.
                    let more = chunk.len() == CHUNK;
                    (chunk, more)
                })
            })
        })
    }

    async fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        esrc_core::backend::traced(
            esrc_core::backend::store_span(
                crate::core::SYSTEM,
                "append_if",
                esrc_core::backend::target_of(&writes),
            ),
            async move {
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
                    actuals.push(state.checked_version(
                        &write.category,
                        write.id,
                        write.expected,
                    )?);
                }
                let appended: Vec<Appended> = writes
                    .into_iter()
                    .zip(actuals)
                    .map(|(write, actual)| {
                        state.append(&write.category, write.id, actual, write.events)
                    })
                    .collect();
                if let Some(last) = appended.last() {
                    self.moved_to(last.position);
                }
                drop(guard);
                Ok(appended)
            },
        )
        .await
    }
}

impl State {
    /// The position of the first event after `after` that `query` matches.
    fn first_match(&self, query: &Query, after: Position) -> Option<Position> {
        self.matching(query, after, Position(u64::MAX), 1)
            .first()
            .copied()
    }

    /// Up to `limit` positions in `(after, until]` of events `query` matches, ascending.
    fn matching(
        &self,
        query: &Query,
        after: Position,
        until: Position,
        limit: usize,
    ) -> Vec<Position> {
        let mut found: Vec<Position> = query
            .items
            .iter()
            .flat_map(|item| self.item_matching(item, after, until, limit))
            .collect();
        found.sort_unstable();
        found.dedup();
        found.truncate(limit);
        found
    }

    /// Up to `limit` positions in `(after, until]` of events `item` matches, ascending:
    /// from the positions of its first tag, else of its stream, else of its types; only
    /// an item with none of them reads the log.
    fn item_matching(
        &self,
        item: &Item,
        after: Position,
        until: Position,
        limit: usize,
    ) -> Vec<Position> {
        let matches = |position: &Position| {
            self.entry(*position)
                .is_some_and(|envelope| item.matches(envelope))
        };
        let lists: Vec<&[Position]> = if let Some(tag) = item.tags.first() {
            self.tagged
                .get(tag)
                .map(Vec::as_slice)
                .into_iter()
                .collect()
        } else if let Some(stream) = &item.stream {
            self.stream_of(&stream.category, stream.id)
                .map(|index| self.streams[index].positions.as_slice())
                .into_iter()
                .collect()
        } else if !item.types.is_empty() {
            item.types
                .iter()
                .filter_map(|t| self.typed.get(&(t.category.clone(), t.name.clone())))
                .map(Vec::as_slice)
                .collect()
        } else {
            let until = (until.get() as usize).min(self.log.len());
            let after = (after.get() as usize).min(until);
            return self.log[after..until]
                .iter()
                .flatten()
                .filter(|envelope| item.matches(envelope))
                .take(limit)
                .map(|envelope| envelope.position)
                .collect();
        };
        let mut found = Vec::new();
        for list in lists {
            let start = list.partition_point(|position| *position <= after);
            found.extend(
                list[start..]
                    .iter()
                    .take_while(|position| **position <= until)
                    .filter(|position| matches(position))
                    .take(limit),
            );
        }
        found.sort_unstable();
        found.dedup();
        found.truncate(limit);
        found
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
        writes_outcome(writes, originals)
    }
}
