//! Decisions across streams (the Dynamic Consistency Boundary of dcb.events): tags on
//! events, queries over types and tags, and appends that succeed only if no event a
//! query matches was stored since a decision read it.
//!
//! # The model
//!
//! - An event has a **type**: its category and its variant's name ([`Event::variant`]),
//!   stored with it. Events stored before types were stored have an empty variant name.
//! - An event has a set of **tags** ([`Tag`], `key:value`), sorted and without duplicates.
//!   Events stored before tags existed have none.
//! - A [`Query`] is a list of [`Item`]s. An item names types (the event has any of them;
//!   none = any type), tags (the event has all of them; none = any tags) and optionally
//!   one stream (category + id). An event matches a query if it matches one of its
//!   items. An empty query matches nothing, and a store refuses it
//!   ([`Error::InvalidQuery`]).
//! - [`Decide::query`] yields the events matching a query with a position in
//!   `(after, until]`, ascending; [`Decide::horizon`] is the position up to which every
//!   answer is complete, now and later: no event is ever stored at or below it again.
//!   A read at `until = horizon` is a decision's view of the store.
//! - [`Decide::append_if`] stores the events of one or more streams, all or none, if no
//!   event matching the [`Condition`]'s query has a position after the condition's
//!   `after` — checked by the store, atomically with the write, against every other
//!   writer. Otherwise [`Error::ConditionFailed`] names the condition and the first
//!   conflicting position, and nothing is stored. A store may refuse more than the
//!   query says (a *false conflict*, for example when it checks one tag of a two-tag
//!   item); it never refuses less. Each store's README says what it checks.
//!
//! [`DecideExt::decide`] runs the read-decide-append loop with a bounded retry.
//!
//! [`Event::variant`]: crate::Event::variant

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

use futures::Stream;
use uuid::Uuid;

use crate::name::validate_name;
use crate::{Appended, Envelope, Error, Event, Expected, NewEvent, Position};

/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// A tag: `key:value`, where the key is a valid name (ASCII letters, digits, `_`, `-`)
/// and the value is 1 or more characters, none of them a control character or
/// whitespace; at most [`MAX_TAG_LEN`] bytes in all.
///
/// ```
/// use esrc_core::Tag;
///
/// let tag = Tag::new("course:c-42").unwrap();
/// assert_eq!((tag.key(), tag.value()), ("course", "c-42"));
/// assert_eq!(Tag::from_parts("email", "ada@example.org").unwrap().as_str(), "email:ada@example.org");
/// assert!(Tag::new("no value:").is_err());
/// assert!(Tag::new("course:two words").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// A tag from its text, validated ([`Error::InvalidName`] says what is wrong).
    pub fn new(tag: impl Into<String>) -> Result<Self, Error> {
        let tag = tag.into();
        match check_tag(&tag) {
            Ok(()) => Ok(Self(tag)),
            Err(reason) => Err(Error::invalid_name(tag, reason)),
        }
    }

    /// The tag `key:value`, validated.
    pub fn from_parts(key: &str, value: impl fmt::Display) -> Result<Self, Error> {
        Self::new(format!("{key}:{value}"))
    }

    /// The whole tag, `key:value`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `:`.
    pub fn key(&self) -> &str {
        self.0.split_once(':').map_or("", |(key, _)| key)
    }

    /// The part after the first `:`.
    pub fn value(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, value)| value)
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let Some((key, value)) = tag.split_once(':') else {
        return Err("a tag is `key:value`");
    };
    if tag.len() > MAX_TAG_LEN {
        return Err("a tag is at most 256 bytes long");
    }
    if esrc_name::check(key).is_err() {
        return Err("a tag's key may contain only ASCII letters, digits, `_` and `-`");
    }
    if value.is_empty() {
        return Err("a tag's value cannot be empty");
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a tag's value cannot contain whitespace or control characters");
    }
    Ok(())
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Tag {
    type Error = Error;

    fn try_from(tag: &str) -> Result<Self, Error> {
        Tag::new(tag)
    }
}

impl TryFrom<String> for Tag {
    type Error = Error;

    fn try_from(tag: String) -> Result<Self, Error> {
        Tag::new(tag)
    }
}

/// An event type: a category and a variant name within it (see [`Event::variant`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    /// The category.
    pub category: String,
    /// The variant's name.
    pub name: String,
}

impl EventType {
    /// The type `name` of `category` (validated by the store that is asked).
    pub fn new(category: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            category: category.into(),
            name: name.into(),
        }
    }

    /// The type `name` of the events `E`.
    pub fn of<E: Event>(name: impl Into<String>) -> Self {
        Self::new(E::NAME, name)
    }

    /// Whether `envelope` is of this type.
    pub fn matches(&self, envelope: &Envelope) -> bool {
        self.category == envelope.category && self.name == envelope.event_type
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.category, self.name)
    }
}

/// One stream, by category and aggregate id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The category.
    pub category: String,
    /// The aggregate id.
    pub id: Uuid,
}

/// One item of a [`Query`]: events of any of its types, with all of its tags, in its
/// stream if it names one.
///
/// ```
/// use esrc_core::{EventType, Item, Tag};
///
/// let item = Item::new()
///     .of_type(EventType::new("course", "Defined"))
///     .of_type(EventType::new("course", "CapacityChanged"))
///     .tagged(Tag::new("course:c1").unwrap());
/// assert_eq!(item.to_string(), "(course.Defined | course.CapacityChanged) & course:c1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Item {
    /// The event has any of these types (none: any type).
    pub types: Vec<EventType>,
    /// The event has all of these tags (none: any tags).
    pub tags: Vec<Tag>,
    /// The event is in this stream (none: any stream).
    pub stream: Option<StreamId>,
}

impl Item {
    /// An item that matches every event, until narrowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events of the types `names` of `E` (added to the types already named).
    pub fn types<E: Event>(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new().of_types::<E>(names)
    }

    /// Also events of the types `names` of `E`.
    #[must_use]
    pub fn of_types<E: Event>(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.types
            .extend(names.into_iter().map(|name| EventType::of::<E>(name)));
        self
    }

    /// Also events of `event_type`.
    #[must_use]
    pub fn of_type(mut self, event_type: EventType) -> Self {
        self.types.push(event_type);
        self
    }

    /// Only events that also carry `tag`.
    #[must_use]
    pub fn tagged(mut self, tag: Tag) -> Self {
        self.tags.push(tag);
        self
    }

    /// Only events of the stream `(category, id)`.
    #[must_use]
    pub fn in_stream(mut self, category: impl Into<String>, id: Uuid) -> Self {
        self.stream = Some(StreamId {
            category: category.into(),
            id,
        });
        self
    }

    /// Whether `envelope` matches this item.
    pub fn matches(&self, envelope: &Envelope) -> bool {
        let in_stream = self.stream.as_ref().is_none_or(|stream| {
            stream.id == envelope.aggregate_id && stream.category == envelope.category
        });
        in_stream
            && (self.types.is_empty() || self.types.iter().any(|t| t.matches(envelope)))
            && self
                .tags
                .iter()
                .all(|tag| envelope.tags.binary_search(tag).is_ok())
    }

    /// Checks the item's names and removes repeated types and tags.
    fn normalized(&self) -> Result<Item, Error> {
        let mut types: Vec<EventType> = Vec::with_capacity(self.types.len());
        for event_type in &self.types {
            validate_name(&event_type.category)?;
            validate_name(&event_type.name)?;
            if !types.contains(event_type) {
                types.push(event_type.clone());
            }
        }
        if let Some(stream) = &self.stream {
            validate_name(&stream.category)?;
        }
        let tags: BTreeSet<Tag> = self.tags.iter().cloned().collect();
        Ok(Item {
            types,
            tags: tags.into_iter().collect(),
            stream: self.stream.clone(),
        })
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match self.types.as_slice() {
            [] => {}
            [one] => parts.push(one.to_string()),
            many => parts.push(format!(
                "({})",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
        parts.extend(self.tags.iter().map(ToString::to_string));
        if let Some(stream) = &self.stream {
            parts.push(format!("stream {}/{}", stream.category, stream.id));
        }
        if parts.is_empty() {
            f.write_str("any event")
        } else {
            f.write_str(&parts.join(" & "))
        }
    }
}

/// Which events a decision depends on: the events matching any of its [`Item`]s.
///
/// ```
/// use esrc_core::{EventType, Item, Query, Tag};
///
/// let course = Tag::new("course:c1").unwrap();
/// let query = Query::new()
///     .or(Item::new().of_type(EventType::new("course", "Defined")).tagged(course.clone()))
///     .or(Item::new().of_type(EventType::new("enrolment", "Enrolled")).tagged(course));
/// assert_eq!(query.items.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Query {
    /// The items: an event matches the query if it matches one of them.
    pub items: Vec<Item>,
}

impl Query {
    /// The empty query, which matches nothing (stores refuse it: add items with
    /// [`Query::or`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also the events matching `item`.
    #[must_use]
    pub fn or(mut self, item: Item) -> Self {
        self.items.push(item);
        self
    }

    /// Also the events matching any item of `other`.
    #[must_use]
    pub fn union(mut self, other: Query) -> Self {
        for item in other.items {
            if !self.items.contains(&item) {
                self.items.push(item);
            }
        }
        self
    }

    /// Whether `envelope` matches the query.
    pub fn matches(&self, envelope: &Envelope) -> bool {
        self.items.iter().any(|item| item.matches(envelope))
    }

    /// The query a store works with: names checked, items deduplicated, tags sorted.
    /// An empty query is [`Error::InvalidQuery`].
    pub fn normalized(&self) -> Result<Query, Error> {
        if self.items.is_empty() {
            return Err(Error::invalid_query("a query needs at least one item"));
        }
        let mut items: Vec<Item> = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let item = item.normalized()?;
            if !items.contains(&item) {
                items.push(item);
            }
        }
        Ok(Query { items })
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return f.write_str("nothing");
        }
        let items: Vec<String> = self.items.iter().map(|item| format!("[{item}]")).collect();
        f.write_str(&items.join(" or "))
    }
}

/// What an append is conditioned on: that no event matching `query` was stored after
/// the position `after`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Condition {
    /// The events that would make the decision stale.
    pub query: Query,
    /// The position the decision was made at (usually the `until` of its read);
    /// [`Position::ZERO`] for "no such event at all".
    pub after: Position,
}

impl Condition {
    /// No event matching `query` is stored at all.
    pub fn new(query: Query) -> Self {
        Self {
            query,
            after: Position::ZERO,
        }
    }

    /// No event matching `query` is stored after `after`.
    #[must_use]
    pub fn after(mut self, after: Position) -> Self {
        self.after = after;
        self
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no event matching {} after position {}",
            self.query, self.after
        )
    }
}

/// The events of one stream in a [`Decide::append_if`], with the stream's own
/// expectation (checked as [`Publish::publish`](crate::Publish::publish) checks it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Write {
    /// The stream's category.
    pub category: String,
    /// The stream's aggregate id.
    pub id: Uuid,
    /// The version the stream must be at.
    pub expected: Expected,
    /// The events, encoded.
    pub events: Vec<NewEvent>,
}

impl Write {
    /// Appends `events` to `(category, id)`, whatever its version.
    pub fn new(category: impl Into<String>, id: Uuid, events: Vec<NewEvent>) -> Self {
        Self {
            category: category.into(),
            id,
            expected: Expected::Any,
            events,
        }
    }

    /// Encodes `events` (with their types and tags) for the stream `id` of `E`.
    pub fn events<E: Event>(id: Uuid, events: &[E]) -> Result<Self, Error> {
        let events = events.iter().map(NewEvent::new).collect::<Result<_, _>>()?;
        Ok(Self::new(E::NAME, id, events))
    }

    /// Encodes one event for the stream `id` of `E`.
    pub fn event<E: Event>(id: Uuid, event: &E) -> Result<Self, Error> {
        Ok(Self::new(E::NAME, id, vec![NewEvent::new(event)?]))
    }

    /// Also checks that the stream is at `expected`.
    #[must_use]
    pub fn expect(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }
}

/// Reads by query and appends under a condition: decisions across streams.
///
/// Every method has a default that answers [`Error::NotSupported`], for stores that do
/// not offer decisions across streams; the conformance suite checks that they say so.
pub trait Decide: Send + Sync {
    /// The position up to which the answer to every query is complete: every event at
    /// or below it is readable, and no event will ever be stored at or below it.
    fn horizon(&self) -> impl Future<Output = Result<Position, Error>> + Send {
        async { Err(Error::not_supported::<Self>("decisions across streams")) }
    }

    /// The events matching `query` with a position in `(after, until]`, ascending,
    /// streamed page by page. An empty query is [`Error::InvalidQuery`].
    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, Self> {
        let _ = (query, after, until);
        futures::stream::once(async {
            Err(Error::not_supported::<Self>("decisions across streams"))
        })
    }

    /// Stores every write's events in its stream, all or none, if `condition` holds
    /// (no event matching its query after its position) and every write's expectation
    /// holds; returns each write's outcome, in order.
    ///
    /// A failed condition is [`Error::ConditionFailed`], a stream not at its expected
    /// version [`Error::Conflict`]; either way nothing is stored. Sending the same
    /// writes again (the same event ids) after an ambiguous failure stores nothing twice
    /// and returns the original outcomes, whatever the condition says by then. With no
    /// condition (`None`) it is an atomic append to several streams.
    fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> impl Future<Output = Result<Vec<Appended>, Error>> + Send {
        let _ = (writes, condition);
        async { Err(Error::not_supported::<Self>("decisions across streams")) }
    }
}

/// What every store checks before [`Decide::append_if`]: at least one write, valid
/// categories and event types, at most `max_events` events in all, no event id twice;
/// the condition's query normalized ([`Query::normalized`]).
pub fn check_writes(
    writes: &[Write],
    condition: Option<&Condition>,
    max_events: usize,
) -> Result<Option<Condition>, Error> {
    if writes.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let mut seen = std::collections::HashSet::new();
    let mut count = 0;
    for write in writes {
        crate::append::check_append(&write.category, &write.events, usize::MAX)?;
        for event in &write.events {
            if !event.event_type.is_empty() {
                validate_name(&event.event_type)?;
            }
            if !seen.insert(event.event_id) {
                return Err(Error::DuplicateEvent {
                    event_id: event.event_id,
                });
            }
        }
        count += write.events.len();
    }
    let streams: BTreeSet<(&str, Uuid)> = writes
        .iter()
        .map(|write| (write.category.as_str(), write.id))
        .collect();
    if streams.len() < writes.len() {
        return Err(Error::invalid_query(
            "one write per stream: put a stream's events in one `Write`",
        ));
    }
    if count > max_events {
        return Err(Error::TooManyEvents {
            count,
            max: max_events,
        });
    }
    condition
        .map(|condition| {
            Ok(Condition {
                query: condition.query.normalized()?,
                after: condition.after,
            })
        })
        .transpose()
}

/// The outcome of writes whose event ids a store found stored, from each write's own
/// [`retry_outcome`](crate::append::retry_outcome) (`originals`, one per write, in
/// order): `Ok(None)` when no write was stored, the original outcomes when every write
/// is a retry, [`Error::DuplicateEvent`] naming a stored id when only some are (not one
/// earlier append).
pub fn writes_outcome(
    writes: &[Write],
    originals: Vec<Option<Appended>>,
) -> Result<Option<Vec<Appended>>, Error> {
    if originals.iter().all(Option::is_none) {
        return Ok(None);
    }
    if originals.iter().any(Option::is_none) {
        let stored = writes
            .iter()
            .zip(&originals)
            .find(|(_, original)| original.is_some())
            .and_then(|(write, _)| write.events.first())
            .map(|event| event.event_id)
            .unwrap_or_default();
        return Err(Error::duplicate_event(stored));
    }
    Ok(Some(originals.into_iter().flatten().collect()))
}

/// For a store that does not keep tags yet: refuses events that carry some with
/// [`Error::NotSupported`], so that no tag is ever dropped silently.
pub fn refuse_tags<S: ?Sized>(events: &[NewEvent]) -> Result<(), Error> {
    if events.iter().any(|event| !event.tags.is_empty()) {
        return Err(Error::not_supported::<S>("storing tagged events"));
    }
    Ok(())
}
