//! Replays: one stream through its index, a group of categories through the log, both
//! copied out in chunks so that writers are never held up for long.

use esrc_core::backend::{opened, validate_name, validate_names};
use std::pin::Pin;
use std::task::{Context, Poll};

use esrc_core::{CategoryStats, Envelope, Error, Position, Replay, ReplayOne, Version};
use futures::Stream;
use uuid::Uuid;

use crate::core::MemoryStore;
use crate::core::copy_out;

impl ReplayOne for MemoryStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "read_stream", category);
        esrc_core::backend::traced_read(span, {
            let category = validate_name(category).map(|()| category.to_owned());
            opened(category, move |category| {
                let mut cursor = after;
                Chunks::new(move || {
                    let state = self.read();
                    let Some(stream) = state.stream_of(&category, id) else {
                        return (Vec::new(), false);
                    };
                    let stream = &state.streams[stream];
                    let skip = cursor.next().get().saturating_sub(stream.first.get()) as usize;
                    let positions = stream.positions.get(skip..).unwrap_or_default();
                    let envelopes = positions
                        .iter()
                        .filter_map(|position| state.entry(*position));
                    let chunk = copy_out(envelopes, positions.len());
                    if let Some(last) = chunk.last() {
                        cursor = last.version;
                    }
                    // Until a chunk comes back empty: events appended meanwhile are read too.
                    let more = !chunk.is_empty();
                    (chunk, more)
                })
            })
        })
    }
}

impl Replay for MemoryStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(
            crate::core::SYSTEM,
            "read_categories",
            categories.join(","),
        );
        esrc_core::backend::traced_read(span, {
            let until = self.last_position();
            opened(validate_names(categories), move |categories| {
                let mut cursor = after;
                Chunks::new(move || {
                    // Up to the head when the replay began: a short chunk is the last.
                    let (chunk, last, more) = self.category_chunk(&categories, cursor, until);
                    cursor = last;
                    (chunk, more)
                })
            })
        })
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        Ok(self.head_of(&validate_names(categories)?))
    }

    async fn count_after(&self, categories: &[&str], after: Position) -> Result<u64, Error> {
        let categories = validate_names(categories)?;
        let state = self.read();
        let after = (after.get() as usize).min(state.log.len());
        Ok(state.log[after..]
            .iter()
            .flatten()
            .filter(|envelope| categories.contains(&envelope.category))
            .count() as u64)
    }

    async fn categories(&self) -> Result<Vec<CategoryStats>, Error> {
        Ok(self.read().categories())
    }
}

impl MemoryStore {
    fn head_of(&self, categories: &[String]) -> Position {
        self.read()
            .log
            .iter()
            .rev()
            .flatten()
            .find(|envelope| categories.contains(&envelope.category))
            .map_or(Position::ZERO, |envelope| envelope.position)
    }
}

/// A stream of events copied out chunk by chunk: `next_chunk` copies the next chunk
/// under the lock, and says whether another may follow. Written by hand rather than as a
/// generator: an envelope is 184 bytes, and a generator moves each one twice more on its
/// way out (a third of the time of a replay went to those copies).
pub(crate) struct Chunks<F> {
    next_chunk: F,
    current: std::vec::IntoIter<Envelope>,
    more: bool,
}

impl<F> Chunks<F>
where
    F: FnMut() -> (Vec<Envelope>, bool),
{
    /// The events `next_chunk` hands out.
    pub(crate) fn new(next_chunk: F) -> Self {
        Self {
            next_chunk,
            current: Vec::new().into_iter(),
            more: true,
        }
    }
}

impl<F> Stream for Chunks<F>
where
    F: FnMut() -> (Vec<Envelope>, bool) + Unpin,
{
    type Item = Result<Envelope, Error>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(envelope) = this.current.next() {
                return Poll::Ready(Some(Ok(envelope)));
            }
            if !this.more {
                return Poll::Ready(None);
            }
            let (chunk, more) = (this.next_chunk)();
            this.more = more;
            this.current = chunk.into_iter();
        }
    }
}
