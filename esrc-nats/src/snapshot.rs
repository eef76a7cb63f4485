//! Snapshots and checkpoints in JetStream key-value buckets, updated with
//! compare-and-set so that neither ever moves backwards.

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::{BufMut, Bytes, BytesMut};
use esrc_core::backend::validate_name;
use esrc_core::{
    CheckpointStore, DecodeError, Error, Position, Snapshot, SnapshotOrEvent, SnapshotStore,
    Version,
};
use futures::{Stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::NatsStore;
use crate::error::{self, NatsError, fatal};

/// Encodes a snapshot: version, position (8 bytes each), schema version (4 bytes), then
/// the payload.
pub(crate) fn encode_snapshot(snapshot: &Snapshot) -> Bytes {
    let mut out = BytesMut::with_capacity(20 + snapshot.payload.len());
    out.put_u64(snapshot.version.get());
    out.put_u64(snapshot.position.get());
    out.put_u32(snapshot.schema_version);
    out.put_slice(&snapshot.payload);
    out.freeze()
}

pub(crate) fn decode_snapshot(key: &str, value: &Bytes) -> Result<Snapshot, Error> {
    let malformed = || Error::Format {
        category: key.split('.').next().unwrap_or(key).to_owned(),
        position: Position::ZERO,
        schema_version: 0,
        source: DecodeError::Field {
            field: "snapshot header (version, position, schema version)",
            found: None,
        },
    };
    let header = value.get(..20).ok_or_else(malformed)?;
    let number = |range: std::ops::Range<usize>| -> Result<u64, Error> {
        let bytes = header.get(range).ok_or_else(malformed)?;
        Ok(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    };
    Ok(Snapshot {
        version: Version(number(0..8)?),
        position: Position(number(8..16)?),
        schema_version: u32::try_from(number(16..20)?).map_err(|_| malformed())?,
        payload: value.slice(20..),
    })
}

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

fn snapshot_key(category: &str, id: Uuid) -> String {
    format!("{category}.{id}")
}

impl SnapshotStore for NatsStore {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        validate_name(category)?;
        let key = snapshot_key(category, id);
        let version = snapshot.version;
        let value = encode_snapshot(&snapshot);
        put_unless(&self.inner.snapshots, &key, value, |stored| {
            Ok(decode_snapshot(&key, stored)?.version > version)
        })
        .await
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        validate_name(category)?;
        let key = snapshot_key(category, id);
        get(&self.inner.snapshots, &key)
            .await?
            .map(|value| decode_snapshot(&key, &value))
            .transpose()
    }

    /// For a stream this store has seen, the snapshot (a key-value get) and the subject's
    /// last message are looked up side by side; for another, the last message first, and
    /// the snapshot only if the stream exists. The events are then read after the
    /// snapshot's position.
    fn snapshot_then_events(
        &self,
        category: &str,
        id: Uuid,
    ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_>> {
        let category = category.to_owned();
        Some(async_stream::stream! {
            if let Err(error) = validate_name(&category) {
                yield Err(error);
                return;
            }
            let subject = self.subject(&category, id);
            let (snapshot, tail) = if self.remembered(&subject).is_some() {
                futures::join!(self.load_snapshot(&category, id), self.tail(&subject))
            } else {
                // A stream this store has not seen: its tail first. One that does not
                // exist (a new aggregate: the usual first command) has no events a
                // snapshot could spare, so none is asked for.
                // A lookup that failed is the read's error: no snapshot is asked for.
                match self.tail(&subject).await {
                    tail @ (Ok(None) | Err(_)) => (Ok(None), tail),
                    tail => (self.load_snapshot(&category, id).await, tail),
                }
            };
            let snapshot = match snapshot {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let (after, at) = snapshot
                .as_ref()
                .map_or((Version::ZERO, Position::ZERO), |snapshot| {
                    (snapshot.version, snapshot.position)
                });
            if let Some(snapshot) = snapshot {
                yield Ok(SnapshotOrEvent::Snapshot(snapshot));
            }
            let mut events = std::pin::pin!(self.read_one_with(&category, id, after, at, Some(tail)));
            while let Some(event) = events.next().await {
                yield event.map(SnapshotOrEvent::Event);
            }
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_encoding_round_trips() {
        let snapshot = Snapshot {
            version: Version(u64::MAX - 1),
            position: Position(1 << 40),
            schema_version: 7,
            payload: Bytes::from_static(b"{\"state\":1}"),
        };
        let decoded = decode_snapshot("k", &encode_snapshot(&snapshot)).unwrap();
        assert_eq!(decoded, snapshot);
        assert!(decode_snapshot("k", &Bytes::from_static(b"short")).is_err());
    }
}
