//! What a store provides to run the suite.

use std::future::Future;

use esrc_core::Store;

/// Makes stores for the suite: each call to [`StoreFactory::store`] returns a store in a
/// fresh namespace (a PostgreSQL schema, a NATS stream prefix, a new in-memory store), so
/// that tests run in parallel on one server without seeing each other's data.
pub trait StoreFactory: Send + Sync {
    /// The store under test.
    type Store: Store + 'static;

    /// A store in a new, empty namespace.
    fn store(&self) -> impl Future<Output = Self::Store> + Send;

    /// What the store supports. A case whose capability is declared missing checks that
    /// the store says so ([`esrc_core::Error::NotSupported`]) instead of being skipped.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}

/// The optional capabilities of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`esrc_core::Truncate`] removes events.
    pub truncate: bool,
    /// [`esrc_core::SnapshotStore`] keeps snapshots.
    pub snapshots: bool,
    /// [`esrc_core::CheckpointStore`] keeps checkpoints.
    pub checkpoints: bool,
}

impl Capabilities {
    /// Everything supported.
    pub const fn all() -> Self {
        Self {
            truncate: true,
            snapshots: true,
            checkpoints: true,
        }
    }

    /// Declares truncation unsupported.
    #[must_use]
    pub const fn without_truncate(mut self) -> Self {
        self.truncate = false;
        self
    }

    /// Declares snapshots unsupported.
    #[must_use]
    pub const fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    /// Declares checkpoints unsupported.
    #[must_use]
    pub const fn without_checkpoints(mut self) -> Self {
        self.checkpoints = false;
        self
    }
}

/// Whether `ESRC_REQUIRE_BACKENDS=1` is set: a missing backend must fail, not skip.
pub fn backends_required() -> bool {
    std::env::var("ESRC_REQUIRE_BACKENDS").is_ok_and(|value| value == "1")
}

/// Reports that a test's backend cannot be reached: prints one `skipped: <why>` line and
/// returns `None` so the test passes, or panics when [`backends_required`].
///
/// ```
/// # fn connect() -> Option<()> {
/// let Some(url) = std::env::var("ESRC_POSTGRES_URL").ok() else {
///     return esrc_conformance::backend_unavailable("ESRC_POSTGRES_URL is not set");
/// };
/// # Some(()) }
/// ```
pub fn backend_unavailable<T>(why: &str) -> Option<T> {
    assert!(
        !backends_required(),
        "ESRC_REQUIRE_BACKENDS=1 but the backend is unavailable: {why}"
    );
    println!("skipped: {why}");
    None
}
