//! Events, event groups and schema versioning.

use std::any::type_name;

use serde::{Deserialize, Serialize};

use crate::{DecodeError, Envelope, Error};

/// A payload type with a schema version: events and snapshot state.
///
/// Payloads are stored as JSON together with [`Versioned::VERSION`]. When a type's shape
/// changes, keep the old type, raise `VERSION`, implement `From<Old> for New`, and make
/// [`Versioned::decode`] fall back to the old type with [`upcast`]. Chains of any length
/// work (v1 -> v2 -> v3): each type upcasts from the one before it.
///
/// ```
/// use esrc_core::{DecodeError, Versioned, upcast};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct OpenedV1 { table: u32 }
/// impl Versioned for OpenedV1 {}
///
/// #[derive(Serialize, Deserialize)]
/// struct Opened { table: u32, waiter: String }
/// impl From<OpenedV1> for Opened {
///     fn from(old: OpenedV1) -> Self { Opened { table: old.table, waiter: "unknown".into() } }
/// }
/// impl Versioned for Opened {
///     const VERSION: u32 = 2;
///     fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
///     where
///         Self: Deserialize<'de>,
///     {
///         upcast::<Self, OpenedV1>(version, payload)
///     }
/// }
///
/// let old = Opened::decode(1, br#"{"table":4}"#).unwrap();
/// assert_eq!(old.waiter, "unknown");
/// assert!(Opened::decode(3, br#"{"table":4}"#).is_err());
/// ```
pub trait Versioned: Sized {
    /// The schema version this type is stored with. Starts at 1.
    const VERSION: u32 = 1;

    /// Decodes a payload stored at schema version `version`.
    ///
    /// The default accepts only [`Versioned::VERSION`]; override it with [`upcast`] to read
    /// older versions.
    fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
    where
        Self: Deserialize<'de>,
    {
        decode_exact(version, payload)
    }
}

/// Decodes `payload` as `T` if `version` is `T::VERSION`, and fails with
/// [`DecodeError::UnknownVersion`] otherwise.
pub fn decode_exact<'de, T>(version: u32, payload: &'de [u8]) -> Result<T, DecodeError>
where
    T: Versioned + Deserialize<'de>,
{
    if version == T::VERSION {
        Ok(serde_json::from_slice(payload)?)
    } else {
        Err(unknown_version::<T>(version))
    }
}

/// Decodes `payload` as `T` at `T::VERSION`, or, for an older version, as the previous type
/// `P` (which may itself upcast further) converted with `From`.
pub fn upcast<'de, T, P>(version: u32, payload: &'de [u8]) -> Result<T, DecodeError>
where
    T: Versioned + Deserialize<'de> + From<P>,
    P: Versioned + Deserialize<'de>,
{
    if version == T::VERSION {
        Ok(serde_json::from_slice(payload)?)
    } else if version < T::VERSION && P::VERSION < T::VERSION {
        P::decode(version, payload).map(T::from)
    } else {
        Err(unknown_version::<T>(version))
    }
}

fn unknown_version<T: Versioned>(found: u32) -> DecodeError {
    DecodeError::UnknownVersion {
        type_name: type_name::<T>(),
        known: T::VERSION,
        found,
    }
}

/// An application's events of one aggregate type, usually an enum.
///
/// [`Event::NAME`] is the *category*: it names the streams of the aggregate type in the
/// store, so it must stay stable. It must be a valid name (see
/// `backend::validate_name`); stores reject others with
/// [`Error::InvalidName`].
pub trait Event: Versioned + Serialize {
    /// The category name, e.g. `Tab`.
    const NAME: &'static str;

    /// The name of this event's variant (e.g. `Opened`), for tools and for stores that
    /// index it. Derived for enums; defaults to the category name.
    fn variant(&self) -> &'static str {
        Self::NAME
    }

    /// The event's tags, `key:value` each (see [`Tag`](crate::Tag)), by which decisions
    /// across streams find it ([`Decide`](crate::Decide)). Derived from the fields marked
    /// `#[esrc(tag)]`; none by default. [`NewEvent::new`](crate::NewEvent::new) checks
    /// them.
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A set of event categories read together, e.g. by a projection. Every [`Event`] is a
/// group of one; an enum whose variants each hold one event type is a group of several.
pub trait EventGroup {
    /// The categories of the group.
    const NAMES: &'static [&'static str];
}

impl<E: Event> EventGroup for E {
    const NAMES: &'static [&'static str] = &[E::NAME];
}

/// Decoding of an [`Envelope`] into a member of an [`EventGroup`], possibly borrowing from
/// the envelope (zero copy) for the lifetime `'de`.
pub trait DecodeGroup<'de>: EventGroup + Sized {
    /// Decodes the envelope by its category; an unknown category is
    /// [`Error::UnknownEvent`], a bad payload [`Error::Format`].
    fn decode_group(envelope: &'de Envelope) -> Result<Self, Error>;
}

impl<'de, E> DecodeGroup<'de> for E
where
    E: Event + Deserialize<'de>,
{
    fn decode_group(envelope: &'de Envelope) -> Result<Self, Error> {
        if envelope.category != E::NAME {
            return Err(Error::UnknownEvent {
                category: envelope.category.clone(),
                known: <E as EventGroup>::NAMES,
            });
        }
        envelope.decode_payload()
    }
}
