//! Projection checkpoints in a JetStream key-value bucket, updated with compare-and-set
//! so that a checkpoint never moves backwards.

use bytes::Bytes;
use esrc_core::backend::validate_name;
use esrc_core::{CheckpointStore, Error, Position};
use futures::TryStreamExt;

use crate::bucket::{get, put_unless};
use crate::core::NatsStore;
use crate::error::{self, NatsError, fatal};

fn parse_position(name: &str, value: &Bytes) -> Result<Position, Error> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .map(Position)
        .ok_or_else(|| {
            fatal(NatsError::BadCheckpoint {
                name: name.to_owned(),
            })
        })
}

impl CheckpointStore for NatsStore {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        validate_name(name)?;
        let value = Bytes::from(position.get().to_string());
        put_unless(&self.inner.checkpoints, name, value, |stored| {
            Ok(parse_position(name, stored)? >= position)
        })
        .await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        validate_name(name)?;
        get(&self.inner.checkpoints, name)
            .await?
            .map(|value| parse_position(name, &value))
            .transpose()
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, Error> {
        let mut names: Vec<String> = self
            .inner
            .checkpoints
            .keys()
            .await
            .map_err(error::client)?
            .try_collect()
            .await
            .map_err(error::client)?;
        names.sort();
        let mut checkpoints = Vec::with_capacity(names.len());
        for name in names {
            if let Some(value) = get(&self.inner.checkpoints, &name).await? {
                checkpoints.push((name.clone(), parse_position(&name, &value)?));
            }
        }
        Ok(checkpoints)
    }

    async fn reset_checkpoint(&self, name: &str, to: Option<Position>) -> Result<(), Error> {
        validate_name(name)?;
        match to {
            Some(position) => {
                self.inner
                    .checkpoints
                    .put(name, Bytes::from(position.get().to_string()))
                    .await
                    .map_err(error::client)?;
            }
            None => {
                self.inner
                    .checkpoints
                    .delete(name)
                    .await
                    .map_err(error::client)?;
            }
        }
        Ok(())
    }
}
