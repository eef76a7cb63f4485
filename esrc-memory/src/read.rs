//! Replays: one stream through its index, a group of categories through the log, both
//! copied out in chunks so that writers are never held up for long.

use esrc_core::backend::{validate_name, validate_names};
use esrc_core::{CategoryStats, Envelope, Error, Position, Replay, ReplayOne, Version};
use futures::Stream;
use uuid::Uuid;

use crate::MemoryStore;
use crate::store::CHUNK;

impl ReplayOne for MemoryStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let category = category.to_owned();
        async_stream::stream! {
            if let Err(error) = validate_name(&category) {
                yield Err(error);
                return;
            }
            let mut cursor = after;
            loop {
                let chunk: Vec<Envelope> = {
                    let state = self.read();
                    let Some(stream) = state.stream_of(&category, id) else { break };
                    let stream = &state.streams[stream];
                    let skip = cursor.next().get().saturating_sub(stream.first.get()) as usize;
                    stream
                        .positions
                        .get(skip..)
                        .unwrap_or_default()
                        .iter()
                        .take(CHUNK)
                        .filter_map(|position| state.entry(*position).cloned())
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
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
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
