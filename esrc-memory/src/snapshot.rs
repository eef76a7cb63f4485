//! Snapshots, in the same state as the events.

use esrc_core::backend::validate_name;
use esrc_core::{Error, Snapshot, SnapshotStore};
use uuid::Uuid;

use crate::core::MemoryStore;

impl SnapshotStore for MemoryStore {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        validate_name(category)?;
        let mut state = self.write();
        let slot = match state.snapshots.get_mut(category) {
            Some(streams) => streams.entry(id),
            None => state
                .snapshots
                .entry(category.to_owned())
                .or_default()
                .entry(id),
        };
        match slot {
            std::collections::hash_map::Entry::Occupied(mut stored) => {
                if stored.get().version <= snapshot.version {
                    stored.insert(snapshot);
                }
            }
            std::collections::hash_map::Entry::Vacant(empty) => {
                empty.insert(snapshot);
            }
        }
        Ok(())
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        validate_name(category)?;
        // Looked up by `&str`: a read pays no allocation for the key.
        Ok(self
            .read()
            .snapshots
            .get(category)
            .and_then(|streams| streams.get(&id))
            .cloned())
    }
}
