#![doc = include_str!("../README.md")]
// The suite is test code: a failed expectation is a panic with a message, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cases;
mod dynamic;
mod factory;
pub mod fixtures;
mod macros;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "spans")]
pub mod spans;

pub use dynamic::Dynamic;
pub use factory::{
    BoxFuture, Capabilities, PendingAppend, StoreFactory, backend_unavailable, backends_required,
    container_image,
};

/// Marks a server-backed test `#[ignore = "<why>"]` when, at build time, a server it
/// needs is not configured: cargo's summary then counts it as ignored, not passed.
///
/// Each argument names something the test needs; all must hold:
///
/// | argument | holds when |
/// | --- | --- |
/// | `postgres` | `ESRC_POSTGRES_URL` is set, or a Docker daemon answers (testcontainers) |
/// | `nats` | `ESRC_NATS_URL` is set, or a Docker daemon answers (testcontainers) |
/// | `nats_server` | `ESRC_NATS_SERVER` (a `nats-server` binary) is set |
/// | `nats_cluster` | `ESRC_NATS_CLUSTER_URL` is set |
/// | `env = "VAR"` | the variable `VAR` is set (for a third-party store's own) |
///
/// With `ESRC_REQUIRE_BACKENDS=1` nothing is ignored, so a missing server fails the test
/// (through [`backend_unavailable`]). The variables are read when the test crate is
/// compiled, and cargo rebuilds it when one changes; a Docker daemon started after the
/// build is not seen until the next rebuild, but `cargo test -- --include-ignored` runs
/// the ignored tests anyway, and each still decides at run time (a missing server then
/// prints `skipped: <why>`).
///
/// ```
/// #[esrc_conformance::requires(env = "MY_STORE_URL")]
/// #[tokio::test]
/// async fn talks_to_my_store() {
///     let Some(_url) = std::env::var("MY_STORE_URL").ok() else {
///         esrc_conformance::backend_unavailable::<()>("MY_STORE_URL is not set");
///         return;
///     };
///     // ...
/// }
/// # fn main() {}
/// ```
pub use esrc_conformance_macros::requires;

#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use tokio;
}
