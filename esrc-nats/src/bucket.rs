//! Compare-and-set writes and reads of JetStream key-value buckets: what snapshots and
//! checkpoints stand on.

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use esrc_core::Error;

use crate::error;

/// Writes `value` under `key` unless `keep(current)` says the stored value must stay.
pub(crate) async fn put_unless(
    bucket: &kv::Store,
    key: &str,
    value: Bytes,
    keep: impl Fn(&Bytes) -> Result<bool, Error>,
) -> Result<(), Error> {
    loop {
        let entry = bucket.entry(key).await.map_err(error::client)?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => {
                if keep(&entry.value)? {
                    return Ok(());
                }
                match bucket.update(key, value.clone(), entry.revision).await {
                    Ok(_) => return Ok(()),
                    Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                    Err(error) => return Err(error::client(error)),
                }
            }
            Some(entry) => match bucket.update(key, value.clone(), entry.revision).await {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => return Err(error::client(error)),
            },
            None => match bucket.create(key, value.clone()).await {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error::client(error)),
            },
        }
    }
}

/// The current value under `key`, if any.
pub(crate) async fn get(bucket: &kv::Store, key: &str) -> Result<Option<Bytes>, Error> {
    let entry = bucket.entry(key).await.map_err(error::client)?;
    Ok(entry
        .filter(|entry| entry.operation == Operation::Put)
        .map(|entry| entry.value))
}
