//! What the cases share: the categories they write, and helpers that read, write or
//! assert.

use std::time::Duration;

use esrc_core::{Envelope, Error, Expected, Position, Publish, Replay, ReplayOne, Version};
use uuid::Uuid;

use crate::fixtures::*;

pub(crate) const THING: &str = "Thing";
pub(crate) const OTHER: &str = "Other";

pub(crate) async fn replay_thing<S: ReplayOne>(store: &S, id: Uuid, after: u64) -> Vec<Envelope> {
    collect("replay_one", store.replay_one(THING, id, Version(after))).await
}

#[track_caller]
pub(crate) fn assert_conflict(
    result: Result<esrc_core::Appended, Error>,
    expected: Expected,
    actual: u64,
) {
    match result {
        Err(Error::Conflict {
            expected: e,
            actual: a,
            ..
        }) => {
            assert_eq!(
                e, expected,
                "the conflict must carry the writer's expectation"
            );
            assert_eq!(
                a,
                Version(actual),
                "the conflict must carry the stream's actual version"
            );
        }
        other => panic!("expected a conflict ({expected}, actual {actual}), got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_not_supported<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(&result, Err(Error::NotSupported { store, .. }) if !store.is_empty()),
        "the store declares no {what}, so it must answer NotSupported naming itself, got {result:?}"
    );
    println!("{what}: declared unsupported, checked that the store says so");
}

/// Writes `count` events alternating between `Thing` and `Other`, on a few streams, and
/// returns their ids and positions in position order.
pub(crate) async fn write_mixed<S: Publish>(store: &S, count: u32) -> Vec<(Position, Uuid)> {
    let streams = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut written = Vec::new();
    for n in 0..count {
        let id = streams[n as usize % streams.len()];
        let (category, event) = if n % 2 == 0 {
            (THING, counted(n))
        } else {
            (OTHER, other(n.into()))
        };
        let event_id = event.event_id;
        let appended = store
            .publish(category, id, Expected::Any, vec![event])
            .await
            .unwrap();
        written.push((appended.position, event_id));
    }
    written
}

/// Waits until the projector has projected `position`.
pub(crate) async fn wait_for<S: Replay, P: Send + 'static, E: Send + 'static>(
    handle: &esrc_core::projector::ProjectorHandle<S, P, E>,
    position: Position,
) {
    within("the projector to catch up", async {
        while handle.progress().projected() < position {
            assert!(!handle.is_finished(), "the projector ended early");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
