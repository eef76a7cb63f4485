//! Small value types: versions, positions, timestamps, metadata, expectations.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Zero: before the first event.
            pub const ZERO: Self = Self(0);

            /// The wrapped number.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The next value (saturating).
            #[must_use]
            pub const fn next(self) -> Self {
                Self(self.0.saturating_add(1))
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u64 {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

counter! {
    /// The version of an event within its stream: contiguous, starting at 1.
    /// [`Version::ZERO`] means "no events".
    Version
}

counter! {
    /// The store-wide log position of an event: strictly increasing in the order
    /// subscribers see events. It may have gaps; never rely on it being contiguous.
    /// [`Position::ZERO`] means "before every event".
    Position
}

/// A point in time with microsecond precision, as microseconds since the Unix epoch (UTC).
///
/// esrc keeps its own small type so the core needs no date-time crate; convert with
/// [`SystemTime`] or from the microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The timestamp as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Self(micros)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}µs", self.0)
    }
}

/// What a writer expects of a stream when it appends; checked by the store, atomically.
///
/// New expectations may be added; a store written outside this workspace should refuse
/// one it does not know with [`Error::NotSupported`](crate::Error::NotSupported) (and
/// [`Expected::version`] says which version, if any, it requires).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Expected {
    /// Append whatever the stream's version.
    #[default]
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must be at exactly this version. `Exact(Version::ZERO)` is `NoStream`.
    Exact(Version),
    /// What a [`Root`](crate::Root) knows: the stream's last event is the one at `version`,
    /// stored at `position`. Checked exactly like `Exact(version)`; stores that check
    /// concurrency by position (NATS subject sequences) use the position and save a
    /// lookup.
    Last {
        /// The version of the stream's last event.
        version: Version,
        /// The position of that event.
        position: Position,
    },
}

impl Expected {
    /// Whether a stream at `actual` meets the expectation.
    pub fn matches(self, actual: Version) -> bool {
        match self {
            Expected::Any => true,
            Expected::NoStream => actual == Version::ZERO,
            Expected::Exact(version) | Expected::Last { version, .. } => actual == version,
        }
    }

    /// The version the stream must be at, if any (`NoStream` is version 0).
    pub fn version(self) -> Option<Version> {
        match self {
            Expected::Any => None,
            Expected::NoStream => Some(Version::ZERO),
            Expected::Exact(version) | Expected::Last { version, .. } => Some(version),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any version"),
            Expected::NoStream => f.write_str("no stream"),
            Expected::Exact(version) | Expected::Last { version, .. } => {
                write!(f, "version {version}")
            }
        }
    }
}

/// Data about an event that is not part of its payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The id that ties together everything caused by one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message (command or event) that caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Free-form string key/values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Adds a key/value.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// The key/values as a JSON object, or `None` when there are none: how stores keep
    /// them beside the correlation and causation ids.
    pub fn values_json(&self) -> Result<Option<String>, crate::Error> {
        if self.values.is_empty() {
            return Ok(None);
        }
        serde_json::to_string(&self.values)
            .map(Some)
            .map_err(|source| crate::Error::Encode {
                category: "metadata".to_owned(),
                source,
            })
    }

    /// Whether there is no metadata at all.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.causation_id.is_none() && self.values.is_empty()
    }
}

/// What a successful append reports: the stream's new version and the position of its
/// last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Appended {
    /// The version of the last event appended (the stream's version now).
    pub version: Version,
    /// The position of the last event appended.
    pub position: Position,
}

impl Appended {
    /// What a store reports after storing events up to `version`, the last at `position`.
    pub fn new(version: Version, position: Position) -> Self {
        Self { version, position }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_system_time() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::from(now.to_system_time()), now);
        let before = Timestamp::from_micros(-1_500_000);
        assert_eq!(Timestamp::from(before.to_system_time()), before);
    }

    #[test]
    fn expectations() {
        assert!(Expected::Any.matches(Version(7)));
        assert!(Expected::NoStream.matches(Version::ZERO));
        assert!(!Expected::NoStream.matches(Version(1)));
        assert!(Expected::Exact(Version::ZERO).matches(Version::ZERO));
        assert!(!Expected::Exact(Version(2)).matches(Version(3)));
        let last = Expected::Last {
            version: Version(3),
            position: Position(40),
        };
        assert!(last.matches(Version(3)) && !last.matches(Version(4)));
        assert_eq!(last.version(), Some(Version(3)));
        assert_eq!(Expected::NoStream.version(), Some(Version::ZERO));
        assert_eq!(Expected::Any.version(), None);
    }
}

/// What a store holds of one category: see [`Replay::categories`](crate::Replay::categories).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CategoryStats {
    /// The category's name.
    pub name: String,
    /// How many events of the category are stored (truncated ones not counted).
    pub events: u64,
    /// How many streams (aggregates) of the category hold stored events.
    pub streams: u64,
}

impl CategoryStats {
    /// The counts of category `name`.
    pub fn new(name: impl Into<String>, events: u64, streams: u64) -> Self {
        Self {
            name: name.into(),
            events,
            streams,
        }
    }
}
