//! Projection checkpoints, in the same state as the events.

use esrc_core::backend::validate_name;
use esrc_core::{CheckpointStore, Error, Position};

use crate::core::MemoryStore;

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
