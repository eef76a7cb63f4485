//! The projector runner over the store: every event once, restarts, failures.

use std::sync::Arc;
use std::time::Duration;

use esrc_core::{CheckpointStore, Expected, Position, Publish};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

/// A projector sees every event of its group once, in order, then live ones too, and
/// saves its checkpoint when stopped.
pub async fn projector_sees_every_event_once_in_order<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let mut written = write_mixed(&store, 40).await;
    store
        .publish("Ignored", Uuid::now_v7(), Expected::Any, vec![counted(1)])
        .await
        .unwrap();
    let recorder = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "every-event", recorder.clone())
        .checkpoint_every(7)
        .spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    written.extend(write_mixed(&store, 10).await);
    wait_for(&handle, written.last().unwrap().0).await;
    let lag = handle.lag().await.unwrap();
    handle.stop().await.expect("a clean stop");
    assert_eq!(
        recorder.ids(),
        written.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );
    if factory.capabilities().checkpoints {
        assert_eq!(
            store.load_checkpoint("every-event").await.unwrap(),
            Some(written.last().unwrap().0),
            "stopping saves the checkpoint of the last event"
        );
    }
    assert!(
        lag < 7,
        "lag counts the group's events after the last checkpoint, saved every 7: {lag}"
    );
}

/// Stopped and started again, a projector goes on after its checkpoint: nothing lost,
/// nothing projected twice.
pub async fn projector_resumes_after_its_checkpoint<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let first_part = write_mixed(&store, 25).await;
    let first = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "resuming", first.clone())
        .checkpoint_every(10)
        .spawn();
    wait_for(&handle, first_part.last().unwrap().0).await;
    handle.stop().await.unwrap();
    let second_part = write_mixed(&store, 12).await;
    let second = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "resuming", second.clone()).spawn();
    wait_for(&handle, second_part.last().unwrap().0).await;
    handle.stop().await.unwrap();
    assert_eq!(
        first.ids(),
        first_part.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );
    assert_eq!(
        second.ids(),
        second_part.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        "the restarted projector starts after its checkpoint"
    );
}

/// Killed mid-batch (no checkpoint saved on the way out), a projector restarted from its
/// last checkpoint loses nothing and repeats only what came after that checkpoint.
pub async fn aborted_projector_loses_nothing<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 30).await;
    let first = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "aborted", first.clone())
        .checkpoint_every(8)
        .checkpoint_interval(Duration::from_secs(3600))
        .spawn();
    wait_for(&handle, written[19].0).await;
    handle.abort();
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let checkpoint = store
        .load_checkpoint("aborted")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        checkpoint >= written[15].0,
        "two batches of 8 were checkpointed: {checkpoint}"
    );
    let projected = first.positions().last().copied().unwrap_or_default();
    assert!(
        checkpoint <= projected,
        "the checkpoint is never ahead of what was projected"
    );

    let second = Recorder::default();
    let handle = Projector::new(Arc::clone(&store), "aborted", second.clone()).spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    handle.stop().await.unwrap();
    // The checkpoint the restart starts from is the one read above, or a later one the
    // first run had sent when it was aborted and the store took after that read (a save
    // in flight is not undone by dropping its future): never earlier, never beyond what
    // the first run projected.
    let second_ids = second.ids();
    let resumed = second_ids
        .first()
        .and_then(|first| written.iter().position(|(_, id)| id == first))
        .map_or(written.last().unwrap().0, |index| {
            index
                .checked_sub(1)
                .map_or(Position::default(), |i| written[i].0)
        });
    assert!(
        checkpoint <= resumed && resumed <= projected,
        "the restart starts after a checkpoint the first run saved: {resumed}, read {checkpoint}, projected {projected}"
    );
    let after: Vec<Uuid> = written
        .iter()
        .filter(|(position, _)| *position > resumed)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        second_ids, after,
        "the restart repeats exactly what followed the checkpoint"
    );
    let mut everything: Vec<Uuid> = first.ids();
    everything.extend(second.ids());
    let mut all: Vec<Uuid> = written.iter().map(|(_, id)| *id).collect();
    all.sort();
    everything.sort();
    everything.dedup();
    assert_eq!(everything, all, "together the two runs saw every event");
}

/// Two projectors with different names each see every event.
pub async fn projectors_with_different_names_each_see_everything<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::Projector;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 20).await;
    let (a, b) = (Recorder::default(), Recorder::default());
    let first = Projector::new(Arc::clone(&store), "first", a.clone()).spawn();
    let second = Projector::new(Arc::clone(&store), "second", b.clone()).spawn();
    wait_for(&first, written.last().unwrap().0).await;
    wait_for(&second, written.last().unwrap().0).await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    let ids: Vec<Uuid> = written.iter().map(|(_, id)| *id).collect();
    assert_eq!(a.ids(), ids);
    assert_eq!(b.ids(), ids);
}

/// A projection that fails stops its projector (policy `Stop`) with its checkpoint
/// before the failing event; with `Retry`, the event is projected once it succeeds.
pub async fn failing_projection_does_not_advance_its_checkpoint<F: StoreFactory>(factory: &F) {
    use esrc_core::projector::{ErrorPolicy, Projector};
    use std::sync::atomic::AtomicU32;
    let store = Arc::new(factory.store().await);
    let written = write_mixed(&store, 10).await;
    let failing = Recorder {
        fail_at: Some(written[5].0),
        failures: Arc::new(AtomicU32::new(u32::MAX)),
        ..Recorder::default()
    };
    let outcome = Projector::new(Arc::clone(&store), "failing", failing.clone())
        .checkpoint_every(1)
        .run_until(std::future::pending())
        .await;
    match outcome {
        Err(esrc_core::ProjectError::Project { position, .. }) => {
            assert_eq!(position, written[5].0)
        }
        other => panic!(
            "the projector must stop with the projection's error, got {:?}",
            other.err()
        ),
    }
    assert_eq!(failing.ids().len(), 5);
    assert_eq!(
        store.load_checkpoint("failing").await.unwrap(),
        Some(written[4].0),
        "the checkpoint stays before the failing event"
    );

    let flaky = Recorder {
        fail_at: Some(written[5].0),
        failures: Arc::new(AtomicU32::new(2)),
        ..Recorder::default()
    };
    let policy = ErrorPolicy::Retry {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(10),
        attempts: 5,
    };
    let handle = Projector::new(Arc::clone(&store), "failing", flaky.clone())
        .on_error(policy)
        .spawn();
    wait_for(&handle, written.last().unwrap().0).await;
    handle.stop().await.unwrap();
    let expected: Vec<Uuid> = written[5..].iter().map(|(_, id)| *id).collect();
    assert_eq!(
        flaky.ids(),
        expected,
        "after two failures the event is projected, once"
    );
}
