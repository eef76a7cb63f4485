//! Snapshots and checkpoints, in the same state as the events.

use esrc_core::backend::validate_name;
use esrc_core::{CheckpointStore, Error, Position, Snapshot, SnapshotStore};
use uuid::Uuid;

use crate::MemoryStore;

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

impl CheckpointStore for MemoryStore {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        validate_name(name)?;
        let mut state = self.write();
        let stored = state.checkpoints.entry(name.to_owned()).or_default();
        *stored = (*stored).max(position);
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, Error> {
        let mut checkpoints: Vec<(String, Position)> = self
            .read()
            .checkpoints
            .iter()
            .map(|(name, position)| (name.clone(), *position))
            .collect();
        checkpoints.sort();
        Ok(checkpoints)
    }

    async fn reset_checkpoint(&self, name: &str, to: Option<Position>) -> Result<(), Error> {
        validate_name(name)?;
        let mut state = self.write();
        match to {
            Some(position) => state.checkpoints.insert(name.to_owned(), position),
            None => state.checkpoints.remove(name),
        };
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        validate_name(name)?;
        Ok(self.read().checkpoints.get(name).copied())
    }
}
