#![doc = include_str!("../README.md")]

mod codec;
mod config;
mod error;
mod read;
mod snapshot;
mod store;
mod subscribe;

pub use config::NatsStoreBuilder;
pub use error::NatsError;
pub use store::NatsStore;

/// Re-export of the client this store is built on (documented by async-nats).
#[doc(no_inline)]
pub use async_nats;

/// The oldest nats-server with atomic batch publish (ADR-50).
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 12);
