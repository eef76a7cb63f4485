#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connect;

pub use connect::{connect, connect_with};
#[doc(inline)]
pub use esrc_core::*;

/// The in-memory store: the reference implementation, for unit tests and prototypes
/// (the crate `esrc-memory`).
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
#[doc(no_inline)]
pub use esrc_memory as memory;

/// The PostgreSQL store (the crate `esrc-postgres`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc(no_inline)]
pub use esrc_postgres as postgres;

/// The NATS JetStream store (the crate `esrc-nats`).
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
#[doc(no_inline)]
pub use esrc_nats as nats;

/// What a program using esrc needs in scope: `use esrc::prelude::*;`.
///
/// The traits (and, with the `derive` feature, the derive macros of the same names)
/// for events, aggregates and projections, the extension traits that give every store
/// its one-liners, and the types that appear in their signatures.
pub mod prelude {
    pub use esrc_core::{
        Aggregate, AggregateEvent, AnyStore, CommandError, Context, Envelope, Event, EventGroup,
        Expected, Metadata, Position, Project, ProjectError, ProjectExt, PublishExt, ReadExt,
        Report, Root, Uuid, Version, Versioned,
    };
}

/// The migration guide's examples, compiled and run as doctests, so the guide cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../MIGRATING.md")]
struct Migrating;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;
