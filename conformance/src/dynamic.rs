//! The suite through the dynamic form of a store.

use std::future::Future;
use std::sync::Arc;

use esrc_core::{AnyStore, Error, NewEvent};
use uuid::Uuid;

use crate::{Capabilities, PendingAppend, StoreFactory};

/// Runs the suite on the stores of `F` wrapped in an [`AnyStore`] (`Arc<dyn DynStore>`),
/// so that the dynamic form is held to the same contract as the store itself.
///
/// ```ignore
/// esrc_conformance::conformance_tests!(async { Some(Dynamic(MyFactory::new())) });
/// ```
#[derive(Debug)]
pub struct Dynamic<F>(pub F);

impl<F: StoreFactory> StoreFactory for Dynamic<F> {
    type Store = AnyStore;

    async fn store(&self) -> AnyStore {
        Arc::new(self.0.store().await)
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        self.0.cleanup()
    }

    /// Removes the namespace of the store inside the wrapper.
    async fn remove_namespace(&self, store: &AnyStore) -> Result<(), Error> {
        let store = store
            .downcast_ref::<F::Store>()
            .ok_or(Error::not_supported::<F::Store>(
                "remove_namespace on a store of another factory",
            ))?;
        self.0.remove_namespace(store).await
    }

    /// Holds an append open on the store inside the wrapper (what the pending-append case
    /// needs is the store's, not the wrapper's).
    async fn begin_append(
        &self,
        store: &AnyStore,
        category: &str,
        id: Uuid,
        events: Vec<NewEvent>,
    ) -> Result<Box<dyn PendingAppend>, Error> {
        let store = store
            .downcast_ref::<F::Store>()
            .ok_or(Error::not_supported::<F::Store>(
                "begin_append on a store of another factory",
            ))?;
        self.0.begin_append(store, category, id, events).await
    }
}
