//! Checkpoints, counts and the catalog operators read.

use esrc_core::{CheckpointStore, Error, Expected, Position, Publish, Replay, Version};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

/// Checkpoints are kept per projection name and never move backwards.
pub async fn checkpoints_are_per_name_and_never_move_backwards<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().checkpoints {
        return assert_not_supported(store.save_checkpoint("p", Position(1)).await, "checkpoints");
    }
    assert_eq!(store.load_checkpoint("first").await.unwrap(), None);
    store.save_checkpoint("first", Position(10)).await.unwrap();
    store.save_checkpoint("second", Position(3)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(10))
    );
    assert_eq!(
        store.load_checkpoint("second").await.unwrap(),
        Some(Position(3))
    );
    store.save_checkpoint("first", Position(4)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(10)),
        "a checkpoint never moves backwards"
    );
    store.save_checkpoint("first", Position(12)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(12))
    );
    assert_eq!(
        store.load_checkpoint("second").await.unwrap(),
        Some(Position(3))
    );
}

/// `count_after` counts the events of the categories asked for, after a position: not a
/// difference of positions, which other categories (and gaps) would inflate.
pub async fn count_after_counts_events_not_positions<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let (a, b, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = store
        .publish(THING, a, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    store
        .publish(OTHER, o, Expected::NoStream, vec![other(1), other(2)])
        .await
        .unwrap();
    store
        .publish(THING, b, Expected::NoStream, vec![counted(2)])
        .await
        .unwrap();
    let last = store
        .publish(THING, a, Expected::Exact(Version(1)), vec![counted(3)])
        .await
        .unwrap();
    let count = |categories: &'static [&'static str], after: Position| {
        let store = &store;
        async move { store.count_after(categories, after).await.unwrap() }
    };
    assert_eq!(count(&[THING], Position::ZERO).await, 3);
    assert_eq!(count(&[THING, OTHER], Position::ZERO).await, 5);
    assert_eq!(
        count(&[THING], first.position).await,
        2,
        "events after the first, of this category only"
    );
    assert_eq!(count(&[THING], last.position).await, 0);
    assert_eq!(count(&[OTHER], last.position).await, 0);
    assert!(matches!(
        store.count_after(&["bad name"], Position::ZERO).await,
        Err(Error::InvalidName { .. })
    ));
}

/// A store lists its categories with their event and stream counts, and its checkpoints;
/// an operator can set a checkpoint back or remove it.
pub async fn catalog_lists_categories_and_resets_checkpoints<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().catalog {
        return assert_not_supported(store.categories().await, "catalog");
    }
    assert!(store.categories().await.unwrap().is_empty());
    let (a, b, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    store
        .publish(THING, a, Expected::NoStream, counted_batch(0, 2))
        .await
        .unwrap();
    store
        .publish(THING, b, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    store
        .publish(OTHER, o, Expected::NoStream, vec![other(1)])
        .await
        .unwrap();
    let categories: Vec<(String, u64, u64)> = store
        .categories()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.events, c.streams))
        .collect();
    assert_eq!(
        categories,
        [(OTHER.to_owned(), 1, 1), (THING.to_owned(), 3, 2)],
        "categories by name, with their events and streams"
    );

    if !factory.capabilities().checkpoints {
        return;
    }
    assert!(store.checkpoints().await.unwrap().is_empty());
    store.save_checkpoint("first", Position(10)).await.unwrap();
    store.save_checkpoint("second", Position(3)).await.unwrap();
    assert_eq!(
        store.checkpoints().await.unwrap(),
        [
            ("first".to_owned(), Position(10)),
            ("second".to_owned(), Position(3))
        ]
    );
    store
        .reset_checkpoint("first", Some(Position(4)))
        .await
        .unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(4)),
        "a reset moves a checkpoint back"
    );
    store.save_checkpoint("first", Position(2)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("first").await.unwrap(),
        Some(Position(4)),
        "after a reset a checkpoint still never moves backwards"
    );
    store.reset_checkpoint("second", None).await.unwrap();
    assert_eq!(store.load_checkpoint("second").await.unwrap(), None);
    assert_eq!(
        store.checkpoints().await.unwrap(),
        [("first".to_owned(), Position(4))]
    );
    assert!(matches!(
        store.reset_checkpoint("bad name", None).await,
        Err(Error::InvalidName { .. })
    ));
}
