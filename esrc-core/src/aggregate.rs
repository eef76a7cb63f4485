//! Aggregates (commands in, events out) and their roots.

use std::ops::Deref;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{Envelope, Error, Event, Expected, Position, Version};

/// The write model of one stream: it decides on commands and evolves by its events.
///
/// `process` decides: it may return zero, one or many events, or the aggregate's own
/// error. `apply` evolves: it must accept every event `process` ever returned, and never
/// fail (an event is a fact).
pub trait Aggregate: Default + Send + Sync + 'static {
    /// What callers ask the aggregate to do.
    type Command: Send;
    /// The aggregate's events; their [`Event::NAME`] is the aggregate's category.
    type Event: Event + DeserializeOwned + Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happens for `command`, given the current state.
    fn process(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event.
    #[must_use]
    fn apply(self, event: &Self::Event) -> Self;
}

/// Links an event type to the aggregate that produces it: the reverse of
/// [`Aggregate::Event`], which Rust cannot infer on its own. With it,
/// [`testing::given_events`](crate::testing::given_events) finds the aggregate from the
/// events, with no type annotation. `#[derive(Event)]` implements it for
/// `#[esrc(aggregate = Tab)]`.
///
/// ```
/// # use esrc_core::{Aggregate, AggregateEvent, Event, Versioned};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # enum TabEvent { Opened }
/// # impl Versioned for TabEvent {}
/// # impl Event for TabEvent { const NAME: &'static str = "Tab"; }
/// # #[derive(Default)]
/// # struct Tab;
/// # impl Aggregate for Tab {
/// #     type Command = ();
/// #     type Event = TabEvent;
/// #     type Error = std::convert::Infallible;
/// #     fn process(&self, _: ()) -> Result<Vec<TabEvent>, Self::Error> { Ok(vec![]) }
/// #     fn apply(self, _: &TabEvent) -> Self { self }
/// # }
/// impl AggregateEvent for TabEvent {
///     type Aggregate = Tab;
/// }
/// ```
pub trait AggregateEvent: Event {
    /// The aggregate whose [`Aggregate::Event`] this is.
    type Aggregate: Aggregate<Event = Self>;
}

/// An aggregate with its id, the version of its last event and that event's position:
/// everything a store needs to check concurrency on the next append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root<A> {
    id: Uuid,
    version: Version,
    position: Position,
    aggregate: A,
}

impl<A: Aggregate> Root<A> {
    /// A root with no events yet: the default state at version 0.
    pub fn new(id: Uuid) -> Self {
        Self::from_parts(id, Version::ZERO, Position::ZERO, A::default())
    }

    /// A root from its parts, e.g. a restored snapshot.
    pub fn from_parts(id: Uuid, version: Version, position: Position, aggregate: A) -> Self {
        Self {
            id,
            version,
            position,
            aggregate,
        }
    }

    /// The aggregate id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The version of the last applied event (0 for none).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The position of the last applied event (0 for none).
    pub fn position(&self) -> Position {
        self.position
    }

    /// What an append after this root expects: the stream still ends with the root's
    /// last event ([`Expected::Last`]), or has no events for a new root.
    pub fn expected(&self) -> Expected {
        if self.version == Version::ZERO {
            Expected::NoStream
        } else {
            Expected::Last {
                version: self.version,
                position: self.position,
            }
        }
    }

    /// The aggregate state.
    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }

    /// The aggregate state, by value.
    pub fn into_inner(self) -> A {
        self.aggregate
    }

    /// Applies one stored event of this stream: decodes it, applies it and advances the
    /// version and position.
    ///
    /// An event of another stream is refused with [`Error::WrongStream`], and one that is
    /// not the next version of this stream with [`Error::MissingHistory`], so a root never
    /// takes in another aggregate's history nor skips its own.
    pub fn apply_envelope(mut self, envelope: &Envelope) -> Result<Self, Error> {
        self.apply_stored(envelope)?;
        Ok(self)
    }

    /// [`Root::apply_envelope`] in place: on an error the root is unchanged.
    pub fn apply_stored(&mut self, envelope: &Envelope) -> Result<(), Error> {
        if envelope.aggregate_id != self.id || envelope.category != A::Event::NAME {
            return Err(Error::WrongStream {
                category: A::Event::NAME,
                id: self.id,
                found_category: envelope.category.clone(),
                found_id: envelope.aggregate_id,
            });
        }
        let next = self.version.next();
        if envelope.version != next {
            return Err(Error::MissingHistory {
                category: envelope.category.clone(),
                id: self.id,
                expected: next,
                found: envelope.version,
            });
        }
        let event: A::Event = envelope.deserialize()?;
        self.apply_event(&event, envelope.version, envelope.position);
        Ok(())
    }

    /// Applies an event at the given version and position.
    pub(crate) fn apply_event(&mut self, event: &A::Event, version: Version, position: Position) {
        self.aggregate = std::mem::take(&mut self.aggregate).apply(event);
        self.version = version;
        self.position = position;
    }
}

impl<A> Deref for Root<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.aggregate
    }
}

impl<A: Aggregate> From<&Root<A>> for Expected {
    fn from(root: &Root<A>) -> Self {
        root.expected()
    }
}
