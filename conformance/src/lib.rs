#![doc = include_str!("../README.md")]
// The suite is test code: a failed expectation is a panic with a message, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cases;
mod dynamic;
mod factory;
pub mod fixtures;
mod macros;

pub use dynamic::Dynamic;
pub use factory::{
    BoxFuture, Capabilities, PendingAppend, StoreFactory, backend_unavailable, backends_required,
};

#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use tokio;
}
