//! The cases: one `pub async fn` per behaviour every store must show, in a file per topic
//! (appends, reads, subscriptions, streams and truncation, snapshots, the catalog,
//! payloads, the projector), so that a store author finds the case that failed.
//!
//! Each takes a [`StoreFactory`](crate::StoreFactory) and panics, with a message saying
//! what broke, when the store misbehaves. [`conformance_tests!`](crate::conformance_tests)
//! turns them into named tests.

mod append;
mod catalog;
mod decide;
mod payload;
mod projector;
mod read;
mod snapshot;
mod streams;
mod subscribe;
mod support;

pub use append::*;
pub use catalog::*;
pub use decide::*;
pub use payload::*;
pub use projector::*;
pub use read::*;
pub use snapshot::*;
pub use streams::*;
pub use subscribe::*;
