#![doc = include_str!("../README.md")]

mod codec;
mod config;
mod error;
mod project;
mod read;
mod schema;
mod snapshot;
mod store;
mod subscribe;

pub use config::PgStoreBuilder;
pub use error::PgError;
pub use project::{TransactionalProject, TransactionalProjector};
pub use store::PgStore;

/// Re-export of the sqlx types in this crate's API (documented by sqlx).
#[doc(no_inline)]
pub use sqlx::{PgConnection, PgPool};
