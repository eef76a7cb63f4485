//! Options of the memory store, also by name.

use esrc_core::Error;
use esrc_core::backend::{StoreOption, StoreOptions, parse_option, unknown_option};

/// Builds a [`MemoryStore`](crate::MemoryStore) with options;
/// [`MemoryStore::new`](crate::MemoryStore::new) takes the defaults.
///
/// Its options by name ([`StoreOptions`], what `esrc::connect("memory:?…")` reads):
///
/// | option | meaning | default |
/// | --- | --- | --- |
/// | `max_batch_events` | the most events one append may hold ([`max_batch_events`](Self::max_batch_events)) | no limit |
///
/// ```
/// use esrc_core::{Error, Expected, NewEvent, Publish};
/// use esrc_memory::MemoryStore;
/// use uuid::Uuid;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Refuse what the NATS store would refuse, so that unit tests catch it.
/// let store = MemoryStore::builder().max_batch_events(1_000).build();
/// let batch = |n| (0..n).map(|_| NewEvent::from_payload(1, "{}")).collect::<Vec<_>>();
/// let id = Uuid::now_v7();
/// let refused = store.publish("Tab", id, Expected::Any, batch(1_001)).await;
/// assert!(matches!(refused, Err(Error::TooManyEvents { count: 1_001, max: 1_000, .. })));
/// let stored = store.publish("Tab", id, Expected::NoStream, batch(1_000)).await.unwrap();
/// assert_eq!(stored.version.get(), 1_000);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStoreBuilder {
    pub(crate) max_batch_events: usize,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        Self {
            max_batch_events: usize::MAX,
        }
    }
}

impl MemoryStoreBuilder {
    /// The most events one append may hold (default: no limit); a larger batch is
    /// [`esrc_core::Error::TooManyEvents`] and stores nothing. Set it to the limit of the
    /// store you deploy on — NATS takes at most 1,000 events per atomic batch — and unit
    /// tests on the memory store refuse what production would refuse.
    #[must_use]
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events.max(1);
        self
    }
}

impl StoreOptions for MemoryStoreBuilder {
    const STORE: &'static str = "memory";
    const OPTIONS: &'static [StoreOption] = &[StoreOption {
        name: "max_batch_events",
        meaning: "the most events one append may hold",
        default: "no limit",
        example: "1000",
    }];

    fn with_option(self, key: &str, value: &str) -> Result<Self, Error> {
        match key {
            "max_batch_events" => {
                Ok(self.max_batch_events(parse_option(key, value, "a number of events")?))
            }
            _ => Err(unknown_option::<Self>(key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_table_matches_the_parser() {
        esrc_core::backend::check_option_table(MemoryStoreBuilder::default).unwrap();
        let set = MemoryStoreBuilder::default()
            .with_option("max_batch_events", "7")
            .unwrap();
        assert_eq!(set.max_batch_events, 7);
    }
}
