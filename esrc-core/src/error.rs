//! The one public error type of esrc.

use std::error::Error as StdError;
use std::fmt;

use uuid::Uuid;

use crate::{Expected, Position, Version};

/// A result whose error is esrc's [`Error`] unless another is named.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a backend's client library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in an esrc store or while decoding its data.
///
/// Its `Display` says only its own layer; the cause, if any, is its
/// [`source`](std::error::Error::source). [`Error::Backend`] is a wrapper with no layer
/// of its own: it shows its backend's error and its `source` is that error's cause. Print an error with its causes through
/// [`Report`](crate::Report) (a line each, for people) or [`Chain`](crate::Chain) (one
/// line, for logs), or any error reporter (anyhow, eyre): each cause appears once.
///
/// Variants are named by outcome, so callers can match on what happened without knowing
/// which store they talk to. Backends classify their client's errors by code or kind (for
/// example SQLSTATE or JetStream error codes) and map them into these variants.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The stream was not at the version the writer expected; nothing was stored.
    #[non_exhaustive]
    Conflict {
        /// The category of the stream.
        category: String,
        /// The aggregate id of the stream.
        id: Uuid,
        /// What the writer expected.
        expected: Expected,
        /// The version the stream was actually at.
        actual: Version,
    },

    /// A stored payload (event or snapshot) could not be decoded into the requested type.
    /// The stored data is untouched.
    #[non_exhaustive]
    Format {
        /// The category of the event or snapshot.
        category: String,
        /// The position of the event (for a snapshot: of the last event it covers).
        position: Position,
        /// The schema version the payload was stored with.
        schema_version: u32,
        /// What went wrong.
        source: DecodeError,
    },

    /// A value could not be encoded into a payload.
    #[non_exhaustive]
    Encode {
        /// The category of the event or snapshot.
        category: String,
        /// What went wrong.
        source: serde_json::Error,
    },

    /// An event's category is not one of the categories the reader knows.
    #[non_exhaustive]
    UnknownEvent {
        /// The category found in the store.
        category: String,
        /// The categories the reader can decode.
        known: &'static [&'static str],
    },

    /// A category, projection or namespace name is not valid (see `esrc_core::backend::validate_name`).
    #[non_exhaustive]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A conditional append's condition failed: an event matching its query was stored
    /// after its position (or, on a store that checks more than the query says, an event
    /// its check covers; see [`Decide`](crate::Decide)). Nothing was stored.
    #[non_exhaustive]
    ConditionFailed {
        /// The condition that failed.
        condition: Box<crate::Condition>,
        /// The position of the first event that made it fail.
        position: crate::Position,
    },

    /// A query, or a condition's query, that a store cannot answer or check as asked:
    /// an empty one, or one larger than the store can check at once. Nothing was read or
    /// stored.
    #[non_exhaustive]
    InvalidQuery {
        /// What is wrong.
        reason: String,
    },

    /// A batch reused an event id that is stored already, but it is not a retry of the
    /// batch that stored it. Nothing was stored.
    #[non_exhaustive]
    DuplicateEvent {
        /// The reused event id.
        event_id: Uuid,
    },

    /// An append was called with no events.
    EmptyBatch,

    /// An append holds more events than the store can append at once.
    #[non_exhaustive]
    TooManyEvents {
        /// How many events the append held.
        count: usize,
        /// The store's limit.
        max: usize,
    },

    /// The stream's history starts later than a reader needed, usually because it was
    /// truncated past the reader's snapshot.
    #[non_exhaustive]
    MissingHistory {
        /// The category of the stream.
        category: String,
        /// The aggregate id of the stream.
        id: Uuid,
        /// The version the reader needed next.
        expected: Version,
        /// The first version the store returned.
        found: Version,
    },

    /// An event of one stream was applied to the aggregate of another; the aggregate is
    /// unchanged.
    #[non_exhaustive]
    WrongStream {
        /// The category of the aggregate's stream.
        category: &'static str,
        /// The aggregate's id.
        id: Uuid,
        /// The category of the event's stream.
        found_category: String,
        /// The aggregate id of the event's stream.
        found_id: Uuid,
    },

    /// A store's configuration (its URL, an option, a feature left out at build time) is
    /// not usable; nothing was opened.
    #[non_exhaustive]
    InvalidConfig {
        /// What is wrong, and what to write instead.
        reason: String,
    },

    /// A projector stopped with an error before it caught up (see
    /// [`ProjectorHandle::caught_up`](crate::projector::ProjectorHandle::caught_up)); its
    /// `join` gives the error itself.
    #[non_exhaustive]
    ProjectorFailed {
        /// The projector's name.
        projector: String,
        /// Its error, as text.
        reason: String,
    },

    /// The store does not implement this operation (it declares so in its capabilities).
    #[non_exhaustive]
    NotSupported {
        /// The store, by its type's name (`MemoryStore`, `PgStore`, or a third party's).
        store: &'static str,
        /// The operation that was called.
        operation: &'static str,
    },

    /// The store's backend failed: connection, server or configuration error. It displays
    /// as `source` does, and its [`source`](std::error::Error::source) is `source`'s own
    /// cause, so that a chain of causes says each once.
    #[non_exhaustive]
    Backend {
        /// The backend's name, e.g. `postgres` or `nats`.
        backend: &'static str,
        /// Whether the same call may succeed when tried again (a dropped connection, a
        /// timeout). An ambiguous append can always be retried with the same event ids.
        retryable: bool,
        /// The client's error.
        source: BoxError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Conflict {
                category,
                id,
                expected,
                actual,
            } => write!(
                f,
                "conflict on stream {category}/{id}: expected {expected}, but the stream is at version {actual}"
            ),
            Error::Format {
                category,
                position,
                schema_version,
                ..
            } => write!(
                f,
                "cannot decode `{category}` payload at position {position} (schema version {schema_version})"
            ),
            Error::Encode { category, .. } => write!(f, "cannot encode `{category}` payload"),
            Error::UnknownEvent { category, known } => {
                write!(f, "unknown event category `{category}` (known: {known:?})")
            }
            Error::InvalidName { name, reason } => write!(f, "invalid name `{name}`: {reason}"),
            Error::ConditionFailed {
                condition,
                position,
            } => write!(
                f,
                "condition failed: an event at position {position} matches {}, stored after position {}",
                condition.query, condition.after
            ),
            Error::InvalidQuery { reason } => write!(f, "invalid query: {reason}"),
            Error::DuplicateEvent { event_id } => {
                write!(f, "event id {event_id} is already stored by another append")
            }
            Error::EmptyBatch => f.write_str("an append needs at least one event"),
            Error::TooManyEvents { count, max } => write!(
                f,
                "an append holds {count} events; this store appends at most {max} at once"
            ),
            Error::MissingHistory {
                category,
                id,
                expected,
                found,
            } => write!(
                f,
                "stream {category}/{id} has no events from version {expected}: its history starts at {found}"
            ),
            Error::WrongStream {
                category,
                id,
                found_category,
                found_id,
            } => write!(
                f,
                "an event of stream {found_category}/{found_id} cannot be applied to the aggregate of stream {category}/{id}"
            ),
            Error::InvalidConfig { reason } => write!(f, "invalid store configuration: {reason}"),
            Error::ProjectorFailed { projector, reason } => {
                write!(f, "projector `{projector}` stopped: {reason}")
            }
            Error::NotSupported { store, operation } => {
                write!(f, "{operation} is not supported by {store}")
            }
            // The backend's error is the message; `source` goes on with its cause.
            Error::Backend { source, .. } => fmt::Display::fmt(source, f),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Format { source, .. } => Some(source),
            Error::Encode { source, .. } => Some(source),
            Error::Backend { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// Constructors, one per variant: the variants are `#[non_exhaustive]` (a later version
/// may add a field), so code outside esrc-core — stores, derived code, tests — builds
/// them with these, and matches them with `..`.
impl Error {
    /// An [`Error::Conflict`].
    pub fn conflict(
        category: impl Into<String>,
        id: Uuid,
        expected: Expected,
        actual: Version,
    ) -> Self {
        Error::Conflict {
            category: category.into(),
            id,
            expected,
            actual,
        }
    }

    /// An [`Error::Format`].
    pub fn format(
        category: impl Into<String>,
        position: Position,
        schema_version: u32,
        source: DecodeError,
    ) -> Self {
        Error::Format {
            category: category.into(),
            position,
            schema_version,
            source,
        }
    }

    /// An [`Error::Encode`].
    pub fn encode(category: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Encode {
            category: category.into(),
            source,
        }
    }

    /// An [`Error::UnknownEvent`].
    pub fn unknown_event(category: impl Into<String>, known: &'static [&'static str]) -> Self {
        Error::UnknownEvent {
            category: category.into(),
            known,
        }
    }

    /// An [`Error::InvalidName`].
    pub fn invalid_name(name: impl Into<String>, reason: &'static str) -> Self {
        Error::InvalidName {
            name: name.into(),
            reason,
        }
    }

    /// An [`Error::ConditionFailed`].
    pub fn condition_failed(condition: crate::Condition, position: crate::Position) -> Self {
        Error::ConditionFailed {
            condition: Box::new(condition),
            position,
        }
    }

    /// An [`Error::InvalidQuery`].
    pub fn invalid_query(reason: impl Into<String>) -> Self {
        Error::InvalidQuery {
            reason: reason.into(),
        }
    }

    /// An [`Error::DuplicateEvent`].
    pub fn duplicate_event(event_id: Uuid) -> Self {
        Error::DuplicateEvent { event_id }
    }

    /// An [`Error::TooManyEvents`].
    pub fn too_many_events(count: usize, max: usize) -> Self {
        Error::TooManyEvents { count, max }
    }

    /// An [`Error::MissingHistory`].
    pub fn missing_history(
        category: impl Into<String>,
        id: Uuid,
        expected: Version,
        found: Version,
    ) -> Self {
        Error::MissingHistory {
            category: category.into(),
            id,
            expected,
            found,
        }
    }

    /// An [`Error::InvalidConfig`].
    pub fn invalid_config(reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            reason: reason.into(),
        }
    }

    /// An [`Error::NotSupported`] naming the store by `store` (see also
    /// [`Error::not_supported`], which names it by its type).
    pub fn not_supported_by(store: &'static str, operation: &'static str) -> Self {
        Error::NotSupported { store, operation }
    }

    /// An [`Error::ProjectorFailed`].
    pub fn projector_failed(projector: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::ProjectorFailed {
            projector: projector.into(),
            reason: reason.into(),
        }
    }
    /// An [`Error::NotSupported`] naming the store type `S` and `operation`.
    ///
    /// ```
    /// struct MyStore;
    /// let error = esrc_core::Error::not_supported::<MyStore>("listing categories");
    /// assert_eq!(error.to_string(), "listing categories is not supported by MyStore");
    /// ```
    pub fn not_supported<S: ?Sized>(operation: &'static str) -> Self {
        let full = std::any::type_name::<S>();
        // `esrc_memory::core::MemoryStore` → `MemoryStore` (generics kept whole).
        let path = full.split('<').next().unwrap_or(full);
        let start = path.rfind("::").map_or(0, |at| at + 2);
        Error::NotSupported {
            store: &full[start..],
            operation,
        }
    }

    /// Whether the same call may succeed when sent again as it is: a transient failure
    /// (a lost connection, a timeout, a leader election). A retried append sends the same
    /// event ids, so an append that was stored after all is not stored twice.
    ///
    /// A conflict is not retryable in this sense: sending the same append again meets
    /// the same conflict. Re-read the stream and decide again
    /// ([`is_conflict`](Error::is_conflict); `PublishExt::try_write_retry` does both).
    ///
    /// ```
    /// use esrc_core::{Error, Expected, Version};
    /// let transient = Error::backend("postgres", true, "connection reset");
    /// assert!(transient.is_retryable() && !transient.is_conflict());
    /// let conflict = Error::conflict(
    ///     "Tab",
    ///     esrc_core::Uuid::nil(),
    ///     Expected::Exact(Version(1)),
    ///     Version(2),
    /// );
    /// assert!(conflict.is_conflict() && !conflict.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retryable: true,
                ..
            }
        )
    }

    /// The variant's name in snake case (`conflict`, `backend`, `format`, …): short and
    /// stable, for logs and OpenTelemetry's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::Format { .. } => "format",
            Self::Encode { .. } => "encode",
            Self::UnknownEvent { .. } => "unknown_event",
            Self::InvalidName { .. } => "invalid_name",
            Self::ConditionFailed { .. } => "condition_failed",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::DuplicateEvent { .. } => "duplicate_event",
            Self::EmptyBatch => "empty_batch",
            Self::TooManyEvents { .. } => "too_many_events",
            Self::MissingHistory { .. } => "missing_history",
            Self::WrongStream { .. } => "wrong_stream",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::ProjectorFailed { .. } => "projector_failed",
            Self::NotSupported { .. } => "not_supported",
            Self::Backend { .. } => "backend",
        }
    }

    /// Whether this is an [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::ConditionFailed { .. })
    }

    /// Builds an [`Error::Backend`].
    pub fn backend(backend: &'static str, retryable: bool, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            retryable,
            source: source.into(),
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is not valid for the type at its schema version.
    #[error("invalid payload")]
    Payload(#[from] serde_json::Error),

    /// The stored envelope around the payload is malformed (for example a missing or
    /// invalid header written by something other than esrc).
    #[error("malformed envelope: {0}")]
    Envelope(String),

    /// A field of the stored envelope (a header, a column, part of a key) is missing or
    /// holds a value esrc cannot read: the data was probably written by something other
    /// than esrc. Nothing was changed.
    #[error("envelope field `{field}` is {}", match found {
        Some(found) => format!("invalid: `{found}`"),
        None => "missing".to_owned(),
    })]
    Field {
        /// The field: a header or column name.
        field: &'static str,
        /// What was found there, if anything.
        found: Option<String>,
    },

    /// The payload's schema version is not one the type's version chain knows.
    #[error("`{type_name}` decodes schema version {known}, but the payload has version {found}")]
    UnknownVersion {
        /// The Rust type that was asked to decode the payload.
        type_name: &'static str,
        /// The version that type decodes (the newest of its chain).
        known: u32,
        /// The version stored with the payload.
        found: u32,
    },
}
