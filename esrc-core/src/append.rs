//! The rules every store applies to an append, written once: what is checked before it,
//! how a retry is told from a reuse of event ids, and the cache of stream tails that lets
//! a store skip a lookup.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

use crate::name::validate_name;
use crate::{Appended, Error, NewEvent, Position, Version};

/// What every store checks before an append, whatever its backend: a valid category,
/// at least one event, at most `max_events` events, and no event id twice.
pub fn check_append(category: &str, events: &[NewEvent], max_events: usize) -> Result<(), Error> {
    validate_name(category)?;
    if events.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if events.len() > max_events {
        return Err(Error::TooManyEvents {
            count: events.len(),
            max: max_events,
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    match events.iter().find(|event| !seen.insert(event.event_id)) {
        Some(repeated) => Err(Error::DuplicateEvent {
            event_id: repeated.event_id,
        }),
        None => Ok(()),
    }
}

/// A stored event whose id an append repeats, as the store found it: what
/// [`retry_outcome`] needs to tell a retry from a reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredId {
    /// The event's id.
    pub event_id: Uuid,
    /// Whether it is stored in the stream the new append is for.
    pub in_stream: bool,
    /// Its version in its stream.
    pub version: Version,
    /// Its position.
    pub position: Position,
    /// Which append stored it, in the store's own terms (a batch id, a transaction id):
    /// equal for the events of one append, different across appends.
    pub append: u128,
    /// How many events that append stored, when the store knows it; a store that does
    /// not must check, when the outcome is a retry, that the append stored nothing else.
    pub append_len: Option<usize>,
}

/// Whether an append whose event ids a store already holds is a retry of one earlier
/// append — the rule every store applies, so that a retry after an ambiguous failure
/// stores nothing twice and reports the original outcome:
///
/// - `Ok(None)`: none of the ids is stored; a new append.
/// - `Ok(Some(original))`: every id is stored, in the append's order, with contiguous
///   versions in this stream, by one earlier append that stored just these events; the
///   original outcome is its last event's version and position.
/// - `Err(Error::DuplicateEvent)`: any other reuse of an id, naming the first one reused.
///
/// `event_ids` are the append's ids in order; `stored` holds what the store found for
/// them, in any order.
pub fn retry_outcome(event_ids: &[Uuid], stored: &[StoredId]) -> Result<Option<Appended>, Error> {
    if stored.is_empty() {
        return Ok(None);
    }
    let find = |event_id: Uuid| stored.iter().find(|found| found.event_id == event_id);
    let duplicate = || Error::DuplicateEvent {
        event_id: event_ids
            .iter()
            .copied()
            .find(|event_id| find(*event_id).is_some())
            .unwrap_or_default(),
    };
    let in_order: Option<Vec<&StoredId>> = event_ids.iter().map(|id| find(*id)).collect();
    let Some(in_order) = in_order else {
        return Err(duplicate());
    };
    let (Some(first), Some(last)) = (in_order.first(), in_order.last()) else {
        return Err(duplicate());
    };
    let one_append = in_order
        .iter()
        .zip(first.version.get()..)
        .all(|(found, version)| {
            found.in_stream
                && found.version.get() == version
                && found.append == first.append
                && found.append_len.is_none_or(|len| len == event_ids.len())
        });
    if !one_append {
        return Err(duplicate());
    }
    Ok(Some(Appended {
        version: last.version,
        position: last.position,
    }))
}

/// The last event of recently appended streams, as this process stored or read it: its
/// version and position. A store that finds an append's expectation here (the
/// [`Root`](crate::Root) it was given names that very event) can skip the lookup or the
/// guard that would otherwise check it, since versions never go back.
///
/// Bounded: past its capacity it starts afresh (a miss only costs the lookup). A
/// database restored to an earlier state under a running process breaks the premise:
/// restart such a process.
///
/// ```
/// use esrc_core::backend::TailCache;
/// use esrc_core::{Position, Uuid, Version};
///
/// let tails = TailCache::default();
/// let id = Uuid::new_v4();
/// tails.remember("Tab", id, Version(3), Position(40));
/// assert_eq!(tails.get("Tab", id), Some((Version(3), Position(40))));
/// assert_eq!(tails.get("Order", id), None, "another category's stream");
/// ```
#[derive(Debug)]
pub struct TailCache {
    capacity: usize,
    tails: Mutex<HashMap<Uuid, Tail>>,
}

/// A stream's last event: the stream is keyed by its id, so its category is kept to
/// tell streams of two categories with one id apart.
#[derive(Debug)]
struct Tail {
    category: Box<str>,
    version: Version,
    position: Position,
}

impl Default for TailCache {
    /// A cache of up to 65,536 streams.
    fn default() -> Self {
        Self::new(65_536)
    }
}

impl TailCache {
    /// A cache of up to `capacity` streams.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tails: Mutex::default(),
        }
    }

    /// Remembers that the last event of `(category, id)` is at `version` and `position`.
    pub fn remember(&self, category: &str, id: Uuid, version: Version, position: Position) {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        if tails.len() >= self.capacity && !tails.contains_key(&id) {
            tails.clear();
        }
        let category = category.into();
        tails.insert(
            id,
            Tail {
                category,
                version,
                position,
            },
        );
    }

    /// The remembered last event of `(category, id)`: its version and position.
    pub fn get(&self, category: &str, id: Uuid) -> Option<(Version, Position)> {
        let tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        tails
            .get(&id)
            .filter(|tail| *tail.category == *category)
            .map(|tail| (tail.version, tail.position))
    }

    /// Whether the remembered last event of `(category, id)` is the one at `version` and
    /// `position`.
    pub fn is_last(&self, category: &str, id: Uuid, version: Version, position: Position) -> bool {
        self.get(category, id) == Some((version, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event_id: Uuid, version: u64, append: u128, len: Option<usize>) -> StoredId {
        StoredId {
            event_id,
            in_stream: true,
            version: Version(version),
            position: Position(version * 10),
            append,
            append_len: len,
        }
    }

    #[test]
    fn a_whole_earlier_append_is_a_retry_and_anything_else_a_duplicate() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let whole: Vec<StoredId> = ids
            .iter()
            .zip(4..)
            .map(|(id, version)| stored(*id, version, 7, Some(3)))
            .collect();
        let original = retry_outcome(&ids, &whole).unwrap();
        assert_eq!(
            original,
            Some(Appended {
                version: Version(6),
                position: Position(60)
            })
        );
        assert_eq!(retry_outcome(&ids, &[]).unwrap(), None, "nothing stored");

        let duplicate = |stored: &[StoredId]| {
            matches!(
                retry_outcome(&ids, stored),
                Err(Error::DuplicateEvent { event_id }) if event_id == ids[0] || event_id == ids[1]
            )
        };
        assert!(duplicate(&whole[..2]), "part of the append is stored");
        let mut other_stream = whole.clone();
        other_stream[1].in_stream = false;
        assert!(duplicate(&other_stream), "in another stream");
        let mut two_appends = whole.clone();
        two_appends[2].append = 8;
        assert!(duplicate(&two_appends), "stored by two appends");
        let mut gap = whole.clone();
        gap[2].version = Version(9);
        assert!(duplicate(&gap), "versions not contiguous");
        let longer: Vec<StoredId> = whole
            .iter()
            .map(|s| StoredId {
                append_len: Some(4),
                ..*s
            })
            .collect();
        assert!(duplicate(&longer), "the earlier append held more events");
        let reordered = [whole[1], whole[0], whole[2]];
        assert_eq!(
            retry_outcome(&ids, &reordered).unwrap(),
            original,
            "found in any order"
        );
    }

    #[test]
    fn the_tail_cache_tells_streams_apart_and_starts_afresh_when_full() {
        let tails = TailCache::new(2);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        tails.remember("Tab", a, Version(1), Position(10));
        tails.remember("Tab", b, Version(2), Position(20));
        assert!(tails.is_last("Tab", a, Version(1), Position(10)));
        assert!(
            !tails.is_last("Tab", a, Version(1), Position(11)),
            "another position"
        );
        assert!(
            !tails.is_last("Order", a, Version(1), Position(10)),
            "another category"
        );
        tails.remember("Tab", b, Version(3), Position(30));
        assert_eq!(
            tails.get("Tab", b),
            Some((Version(3), Position(30))),
            "a newer tail"
        );
        tails.remember("Tab", c, Version(1), Position(40));
        assert_eq!(tails.get("Tab", a), None, "full: started afresh");
        assert_eq!(tails.get("Tab", c), Some((Version(1), Position(40))));
    }
}
