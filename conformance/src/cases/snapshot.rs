//! Snapshots, and reads that start from one.

use esrc_core::{Position, PublishExt, ReadExt, Root, Snapshot, SnapshotStore, Version};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

/// The snapshot with the highest version is kept, per stream.
pub async fn snapshot_latest_wins<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let snapshot = |version: u64, total: u64| {
        Snapshot::new(
            Version(version),
            Position(version * 10),
            1,
            serde_json::to_vec(&Tally {
                total,
                events: version,
            })
            .unwrap(),
        )
    };
    if !factory.capabilities().snapshots {
        return assert_not_supported(
            store.save_snapshot(THING, id, snapshot(1, 1)).await,
            "snapshots",
        );
    }
    assert_eq!(store.load_snapshot(THING, id).await.unwrap(), None);
    store
        .save_snapshot(THING, id, snapshot(3, 30))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(3, 30))
    );
    store
        .save_snapshot(THING, id, snapshot(5, 50))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(5, 50))
    );
    store
        .save_snapshot(THING, id, snapshot(4, 40))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(THING, id).await.unwrap(),
        Some(snapshot(5, 50)),
        "an older snapshot does not replace a newer one"
    );
    assert_eq!(
        store.load_snapshot(THING, Uuid::now_v7()).await.unwrap(),
        None
    );
    assert_eq!(store.load_snapshot(OTHER, id).await.unwrap(), None);
}

/// `read` starts from the latest snapshot and applies only the events after it.
pub async fn read_is_snapshot_then_later_events<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let mut root = Root::<Tally>::new(id);
    for amount in [1, 2, 3] {
        store.try_write(&mut root, amount).await.unwrap();
    }
    if !factory.capabilities().snapshots {
        return assert_not_supported(store.save_root_snapshot(&root).await, "snapshots");
    }
    // A snapshot that disagrees with the events on purpose: `read` must start from it.
    let marked = Root::from_parts(
        id,
        root.version(),
        root.position(),
        Tally {
            total: 1_000,
            events: 3,
        },
    );
    store.save_root_snapshot(&marked).await.unwrap();
    store.try_write(&mut root, 4).await.unwrap();
    store.try_write(&mut root, 5).await.unwrap();

    let read: Root<Tally> = store.read(id).await.unwrap();
    assert_eq!(read.version(), Version(5));
    assert_eq!(read.position(), root.position());
    assert_eq!(
        *read.aggregate(),
        Tally {
            total: 1_009,
            events: 5
        },
        "snapshot + events 4 and 5"
    );
    let loaded: Root<Tally> = store.load(id).await.unwrap();
    assert_eq!(
        *loaded.aggregate(),
        Tally {
            total: 15,
            events: 5
        },
        "load ignores snapshots"
    );

    let fresh: Root<Tally> = store.read(Uuid::now_v7()).await.unwrap();
    assert_eq!(fresh.version(), Version::ZERO);
}
