//! What a store provides to run the suite.

use std::future::Future;
use std::pin::Pin;

use esrc_core::{Appended, Error, NewEvent, Store};
use uuid::Uuid;

/// A boxed future, as returned by [`PendingAppend`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An append that is written but not yet committed (an open transaction), so a test can
/// let later appends commit first.
pub trait PendingAppend: Send {
    /// Commits the append.
    fn commit(self: Box<Self>) -> BoxFuture<Result<Appended, Error>>;
    /// Abandons the append: none of its events may ever be delivered.
    fn rollback(self: Box<Self>) -> BoxFuture<Result<(), Error>>;
}

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

    /// Removes what the stores of this factory created on the server (schemas, streams,
    /// buckets). The generated tests call it after each case, also when the case failed.
    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Removes `store`'s namespace out from under it — drops its PostgreSQL schema,
    /// deletes its NATS stream and buckets — as an operator's mistake or revoked access
    /// would, so that a case can check that a live subscription ends with the error
    /// rather than retrying for ever. Stores that have no namespace to lose (the
    /// in-memory store) declare [`Capabilities::without_namespace_removal`] and keep this
    /// default.
    fn remove_namespace(
        &self,
        store: &Self::Store,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = store;
        async { Err(Error::not_supported::<Self::Store>("removing a namespace")) }
    }

    /// Writes an append to `store` without committing it, for stores whose appends can be
    /// in flight while later ones commit (a database transaction). Stores whose appends
    /// become visible atomically in position order declare
    /// [`Capabilities::without_pending_appends`] and keep this default.
    fn begin_append(
        &self,
        store: &Self::Store,
        category: &str,
        id: Uuid,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Box<dyn PendingAppend>, Error>> + Send {
        let _ = (store, category, id, events);
        async { Err(Error::not_supported::<Self::Store>("begin_append")) }
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
    /// Appends can be in flight (uncommitted) while later ones commit, and the factory
    /// implements [`StoreFactory::begin_append`] to hold one open.
    pub pending_appends: bool,
    /// The store lists its categories ([`esrc_core::Replay::categories`]) and checkpoints,
    /// and resets checkpoints ([`esrc_core::CheckpointStore::reset_checkpoint`]).
    pub catalog: bool,
    /// The store's namespace can be removed under it, and the factory implements
    /// [`StoreFactory::remove_namespace`].
    pub namespace_removal: bool,
    /// The store keeps event types and tags and implements [`esrc_core::Decide`]:
    /// queries and conditional appends (decisions across streams).
    pub decisions: bool,
}

impl Capabilities {
    /// Everything supported.
    pub const fn all() -> Self {
        Self {
            truncate: true,
            snapshots: true,
            checkpoints: true,
            pending_appends: true,
            catalog: true,
            namespace_removal: true,
            decisions: true,
        }
    }

    /// Declares decisions across streams unsupported: the store answers
    /// [`esrc_core::Error::NotSupported`] to [`esrc_core::Decide`]'s methods and to
    /// tagged events, and the decision cases check that it says so.
    #[must_use]
    pub const fn without_decisions(mut self) -> Self {
        self.decisions = false;
        self
    }

    /// Declares that the store has no namespace to lose (the in-memory store): the
    /// removal case checks that the factory says so.
    #[must_use]
    pub const fn without_namespace_removal(mut self) -> Self {
        self.namespace_removal = false;
        self
    }

    /// Declares that appends never overlap: each becomes visible atomically, in position
    /// order (the in-memory store), so the pending-append case has nothing to hold open.
    #[must_use]
    pub const fn without_pending_appends(mut self) -> Self {
        self.pending_appends = false;
        self
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

    /// Declares listing categories and checkpoints, and resetting checkpoints,
    /// unsupported.
    #[must_use]
    pub const fn without_catalog(mut self) -> Self {
        self.catalog = false;
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

/// The image (name, tag) a test starts through testcontainers: `$variable` if set
/// (`name[:tag]`, the tag `latest` when left out), else `default`. This is how CI runs
/// the server-backed tests on images it built itself (`ESRC_POSTGRES_IMAGE`,
/// `ESRC_NATS_IMAGE`) while users keep the official ones.
///
/// ```
/// let (name, tag) = esrc_conformance::container_image("NO_SUCH_VARIABLE", "nats:2.12-alpine");
/// assert_eq!((name.as_str(), tag.as_str()), ("nats", "2.12-alpine"));
/// ```
pub fn container_image(variable: &str, default: &str) -> (String, String) {
    let image = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    // A registry's port ("localhost:5000/nats") is no tag: only a colon after the last
    // slash starts one.
    let name_end = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[name_end..].rfind(':') {
        Some(colon) => {
            let (name, tag) = image.split_at(name_end + colon);
            (name.to_owned(), tag[1..].to_owned())
        }
        None => (image, "latest".to_owned()),
    }
}
