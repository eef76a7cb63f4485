//! Catch-up then live: read the log after a cursor, wait on the head when caught up.

use esrc_core::backend::{opened, validate_names};
use esrc_core::{Envelope, Error, Position, Subscribe};
use futures::Stream;

use crate::core::MemoryStore;

impl Subscribe for MemoryStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        opened(validate_names(categories), move |categories| {
            subscribe(self, categories, after)
        })
    }
}

fn subscribe(
    store: &MemoryStore,
    categories: Vec<String>,
    after: Position,
) -> impl Stream<Item = Result<Envelope, Error>> + Send + '_ {
    async_stream::stream! {
        let mut head = store.inner.head.subscribe();
        let mut cursor = after;
        loop {
            // Mark the head seen *before* reading, so a write that lands after the read
            // wakes `changed()` below: nothing can slip between the two.
            let until = *head.borrow_and_update();
            let chunk = store.chunk(cursor, until, |envelope| categories.contains(&envelope.category));
            if chunk.is_empty() {
                // Nothing of ours up to `until`: skip past it, then wait for more.
                cursor = cursor.max(until);
                if head.changed().await.is_err() {
                    return;
                }
                continue;
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
