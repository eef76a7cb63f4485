#![doc = include_str!("../README.md")]

mod checkpoint;
mod codec;
mod config;
mod core;
mod decide;
mod error;
mod notify;
mod project;
mod read;
mod schema;
mod snapshot;
mod store;
mod subscribe;

pub use config::PgStoreBuilder;
pub use core::{Blocker, PgStore};
pub use error::{ClientError, PgError};
pub use project::{TransactionalProject, TransactionalProjector};

/// Re-export of the sqlx types in this crate's API (documented by sqlx).
#[doc(no_inline)]
pub use sqlx::{PgConnection, PgPool};
