#![doc = include_str!("../README.md")]

mod aggregate;
mod append;
pub mod backend;
mod backoff;
mod decider;
mod decision;
mod dynamic;
mod engine;
mod envelope;
pub mod error;
mod event;
mod ext;
pub mod metrics;
mod name;
mod opening;
mod options;
mod project;
pub mod projector;
mod report;
mod store;
pub mod testing;
pub mod trace;
mod types;

pub use aggregate::{Aggregate, AggregateEvent, Root};
pub use decider::{DecideExt, Decision};
pub use decision::{Condition, Decide, EventType, Item, MAX_TAG_LEN, Query, StreamId, Tag, Write};
pub use dynamic::{AnyStore, DynStore};
pub use envelope::{Envelope, NewEvent, Snapshot};
pub use error::{BoxError, DecodeError, Error};
pub use event::{DecodeGroup, Event, EventGroup, Versioned, decode_exact, upcast};
pub use ext::{CommandError, ProjectExt, PublishExt, ReadExt, Retry};
pub use project::{Context, Project, ProjectError};
pub use report::{Chain, Report};
pub use store::{
    CheckpointStore, Publish, Replay, ReplayOne, SnapshotOrEvent, SnapshotStore, Store, Subscribe,
    Truncate,
};
pub use types::{Appended, CategoryStats, Expected, Metadata, Position, Timestamp, Version};

/// Derive macros (re-exported from `esrc-derive`, whose documentation shows every
/// attribute): `Event`, `EventGroup` and `Versioned`.
#[cfg(feature = "derive")]
pub use esrc_derive::{Event, EventGroup, Versioned};

/// Re-exports the crates esrc's public API is built on, for use in macros and stores.
#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use serde;
    pub use serde_json;
    pub use uuid;
}

/// Re-exports for users: `bytes::Bytes` and `uuid::Uuid` appear in esrc's API.
pub use bytes::Bytes;
pub use uuid::Uuid;
