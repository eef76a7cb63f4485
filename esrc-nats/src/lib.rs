#![doc = include_str!("../README.md")]

mod bucket;
mod checkpoint;
mod codec;
mod config;
mod core;
mod decide;
mod error;
mod format3;
mod messages;
mod read;
mod snapshot;
mod store;
mod subscribe;

pub use config::{NatsStoreBuilder, Storage};
pub use core::NatsStore;
pub use error::{ClientError, Limit, NatsError};

/// Re-export of the client this store is built on (documented by async-nats).
#[doc(no_inline)]
pub use async_nats;

/// The oldest nats-server with atomic batch publish (ADR-50).
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 12);
