//! Snapshots in a JetStream key-value bucket, updated with compare-and-set so that a
//! snapshot never moves backwards.

use bytes::{BufMut, Bytes, BytesMut};
use esrc_core::backend::{opened_after, validate_name};
use esrc_core::{DecodeError, Error, Position, Snapshot, SnapshotOrEvent, SnapshotStore, Version};
use futures::{Stream, StreamExt};
use uuid::Uuid;

use crate::bucket::{get, put_unless};
use crate::core::NatsStore;

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
    let malformed = || {
        Error::format(
            key.split('.').next().unwrap_or(key).to_owned(),
            Position::ZERO,
            0,
            DecodeError::Field {
                field: "snapshot header (version, position, schema version)",
                found: None,
            },
        )
    };
    let header = value.get(..20).ok_or_else(malformed)?;
    let number = |range: std::ops::Range<usize>| -> Result<u64, Error> {
        let bytes = header.get(range).ok_or_else(malformed)?;
        Ok(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    };
    Ok(Snapshot::new(
        Version(number(0..8)?),
        Position(number(8..16)?),
        u32::try_from(number(16..20)?).map_err(|_| malformed())?,
        value.slice(20..),
    ))
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
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "read_stream", category);
        let valid = validate_name(category).map(|()| category.to_owned());
        let opening = async move {
            let category = valid?;
            let subject = self.subject(&category, id);
            let (snapshot, tail) = if self.remembered(&category, id).is_some() {
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
            Ok((category, snapshot?, tail))
        };
        Some(esrc_core::backend::traced_read(
            span,
            opened_after(opening, move |(category, snapshot, tail)| {
                let (after, at) = snapshot
                    .as_ref()
                    .map_or((Version::ZERO, Position::ZERO), |snapshot| {
                        (snapshot.version, snapshot.position)
                    });
                let snapshot = snapshot.map(|snapshot| Ok(SnapshotOrEvent::Snapshot(snapshot)));
                let events = self.read_one_with(&category, id, after, at, Some(tail));
                futures::stream::iter(snapshot)
                    .chain(events.map(|event| event.map(SnapshotOrEvent::Event)))
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_encoding_round_trips() {
        let snapshot = Snapshot::new(
            Version(u64::MAX - 1),
            Position(1 << 40),
            7,
            Bytes::from_static(b"{\"state\":1}"),
        );
        let decoded = decode_snapshot("k", &encode_snapshot(&snapshot)).unwrap();
        assert_eq!(decoded, snapshot);
        assert!(decode_snapshot("k", &Bytes::from_static(b"short")).is_err());
    }
}
