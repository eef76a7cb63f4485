//! Stored events, events to store, and snapshots.

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

use crate::{DecodeGroup, Error, Event, Metadata, Position, Tag, Timestamp, Version, Versioned};

/// A stored event: where it is, what it is, and its still-encoded payload.
///
/// The payload is decoded on demand with [`Envelope::deserialize`], which may borrow from
/// the envelope, so events with `&'de str` fields decode without copying.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// The event's category (its aggregate type's event name).
    pub category: String,
    /// The id of the aggregate (stream) within the category.
    pub aggregate_id: Uuid,
    /// The version of the event in its stream, from 1.
    pub version: Version,
    /// The store-wide position of the event.
    pub position: Position,
    /// The unique id of the event.
    pub event_id: Uuid,
    /// When the event was created.
    pub timestamp: Timestamp,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The event's type within its category: its variant's name ([`Event::variant`]);
    /// empty for an event stored without one (by an earlier version of esrc, or by a
    /// store that does not keep types).
    pub event_type: String,
    /// The event's tags, sorted, without duplicates (see [`Decide`](crate::Decide)).
    pub tags: Vec<Tag>,
    /// Correlation, causation and key/values.
    pub metadata: Metadata,
    /// The encoded (JSON) payload.
    pub payload: Bytes,
}

impl Envelope {
    /// Decodes the event into a member of the group `G`, by category and schema version.
    ///
    /// A category outside `G` is [`Error::UnknownEvent`]; a payload that does not decode is
    /// [`Error::Format`] naming the category, position and schema version.
    pub fn deserialize<'de, G: DecodeGroup<'de>>(&'de self) -> Result<G, Error> {
        G::decode_group(self)
    }

    /// Decodes the payload as `T` regardless of the category, upcasting older schema
    /// versions through [`Versioned::decode`].
    pub fn decode_payload<'de, T>(&'de self) -> Result<T, Error>
    where
        T: Versioned + Deserialize<'de>,
    {
        T::decode(self.schema_version, &self.payload).map_err(|source| Error::Format {
            category: self.category.clone(),
            position: self.position,
            schema_version: self.schema_version,
            source,
        })
    }
}

/// An event ready to be appended: its payload is encoded, its id and timestamp chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewEvent {
    /// The event's unique id; appending a batch again with the same ids is idempotent.
    pub event_id: Uuid,
    /// When the event was created.
    pub timestamp: Timestamp,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The event's type within its category (its variant's name); empty if unknown.
    pub event_type: String,
    /// The event's tags, sorted, without duplicates.
    pub tags: Vec<Tag>,
    /// Correlation, causation and key/values.
    pub metadata: Metadata,
    /// The encoded (JSON) payload.
    pub payload: Bytes,
}

impl NewEvent {
    /// Encodes an event with a new UUIDv7 id, the current time and empty metadata (but
    /// for the current span's trace context, with the `opentelemetry` feature: see
    /// [`crate::trace`]), with its type ([`Event::variant`]) and tags ([`Event::tags`]).
    /// An invalid tag is [`Error::InvalidName`].
    pub fn new<E: Event>(event: &E) -> Result<Self, Error> {
        let mut new = Self::unstamped(event)?;
        crate::trace::stamp(&mut new.metadata);
        Ok(new)
    }

    /// [`NewEvent::new`] without the trace context: for callers that set the metadata
    /// (stamped once for all their events) themselves.
    pub(crate) fn unstamped<E: Event>(event: &E) -> Result<Self, Error> {
        let payload = serde_json::to_vec(event).map_err(|source| Error::Encode {
            category: E::NAME.to_owned(),
            source,
        })?;
        let tags = event
            .tags()
            .into_iter()
            .map(Tag::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_payload(E::VERSION, payload)
            .with_type(event.variant())
            .with_tags(tags))
    }

    /// An event from an already encoded payload, with a new UUIDv7 id and the current time.
    pub fn from_payload(schema_version: u32, payload: impl Into<Bytes>) -> Self {
        Self::from_parts(Uuid::now_v7(), Timestamp::now(), schema_version, payload)
    }

    /// An event whose id and time are already chosen: what a store rebuilds from what it
    /// read (no id is generated and no clock read).
    pub fn from_parts(
        event_id: Uuid,
        timestamp: Timestamp,
        schema_version: u32,
        payload: impl Into<Bytes>,
    ) -> Self {
        Self {
            event_id,
            timestamp,
            schema_version,
            event_type: String::new(),
            tags: Vec::new(),
            metadata: Metadata::default(),
            payload: payload.into(),
        }
    }

    /// Sets the event's type within its category (its variant's name).
    #[must_use]
    pub fn with_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = event_type.into();
        self
    }

    /// Sets the event's tags (sorted and deduplicated here).
    #[must_use]
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        let mut tags: Vec<Tag> = tags.into_iter().collect();
        tags.sort_unstable();
        tags.dedup();
        self.tags = tags;
        self
    }

    /// Sets the event id (for idempotent retries or ids chosen by the caller).
    #[must_use]
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// Sets the time the event was created (a store decoding what it stored, an import
    /// keeping the original time).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Turns the event into an [`Envelope`] once the store has placed it.
    pub fn into_envelope(
        self,
        category: impl Into<String>,
        aggregate_id: Uuid,
        version: Version,
        position: Position,
    ) -> Envelope {
        Envelope {
            category: category.into(),
            aggregate_id,
            version,
            position,
            event_id: self.event_id,
            timestamp: self.timestamp,
            schema_version: self.schema_version,
            event_type: self.event_type,
            tags: self.tags,
            metadata: self.metadata,
            payload: self.payload,
        }
    }
}

/// A stored snapshot of an aggregate's state after the event at `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The stream version the state includes.
    pub version: Version,
    /// The position of the event at `version`.
    pub position: Position,
    /// The schema version of the encoded state.
    pub schema_version: u32,
    /// The encoded (JSON) state.
    pub payload: Bytes,
}

impl Snapshot {
    /// A snapshot of the state after the event at `version` (at `position`), encoded at
    /// `schema_version`: what a store returns from what it stored.
    pub fn new(
        version: Version,
        position: Position,
        schema_version: u32,
        payload: impl Into<Bytes>,
    ) -> Self {
        Self {
            version,
            position,
            schema_version,
            payload: payload.into(),
        }
    }
}
