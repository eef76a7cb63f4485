//! What a replicated stream changes, on the cluster CI starts (`ESRC_NATS_CLUSTER_URL`):
//! lost races answered with 10164 are conflicts, and reads see the caller's writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use esrc_core::{Decide, Error, Expected, NewEvent, Publish, ReplayOne, Version, Write};
use esrc_nats::NatsStore;
use futures::StreamExt;
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent::from_payload(1, format!(r#"{{"n":{n}}}"#))
}

#[esrc_conformance::requires(nats_cluster)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_appends_on_a_replicated_stream_are_conflicts_or_successes() {
    let Some(cluster) = common::cluster().await else {
        return;
    };
    let store = cluster.store().await;
    let id = Uuid::now_v7();
    // `Any`: eight writers on one aggregate, every append succeeds.
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for n in 0..25 {
                    let appended = store
                        .publish("Thing", id, Expected::Any, vec![event(writer * 100 + n)])
                        .await;
                    if let Err(error) = appended {
                        errors.push(error.to_string());
                    }
                }
                errors
            })
        })
        .collect();
    let mut any_errors = Vec::new();
    for writer in writers {
        any_errors.extend(writer.await.unwrap());
    }
    // `Exact`: in each round eight writers expect the same version; one wins and the
    // others get `Conflict`, never a backend error.
    let mut version = Version(200);
    let mut wrong = Vec::new();
    for _round in 0..10 {
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .publish("Thing", id, Expected::Exact(version), vec![event(n)])
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => wins += 1,
                Err(Error::Conflict { .. }) => {}
                Err(error) => wrong.push(error.to_string()),
            }
        }
        assert_eq!(wins, 1, "exactly one writer wins a round");
        version = version.next();
    }
    store.destroy().await.unwrap();
    assert!(any_errors.is_empty(), "Any failed: {any_errors:?}");
    assert!(wrong.is_empty(), "lost races must be conflicts: {wrong:?}");
}

#[esrc_conformance::requires(nats_cluster)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledged_append_sees_it() {
    let Some(cluster) = common::cluster().await else {
        return;
    };
    let writer = cluster.store().await;
    // A second store on the same stream, with its own connection (to any node) and no
    // memory of what the first wrote.
    let reader = NatsStore::builder()
        .stream(writer.stream_name())
        .prefix(writer.prefix())
        .replicas(3)
        .build(cluster.client().await)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let mut missed = Vec::new();
    for n in 1..=300 {
        let appended = writer
            .publish("Thing", id, Expected::Any, vec![event(n)])
            .await
            .unwrap();
        for store in [&writer, &reader] {
            let after = Version(appended.version.get() - 1);
            let read: Vec<_> = store.replay_one("Thing", id, after).collect().await;
            let versions: Vec<_> = read
                .iter()
                .map(|e| e.as_ref().ok().map(|e| e.version))
                .collect();
            if versions != [Some(appended.version)] {
                missed.push(format!("append {n}: {versions:?}"));
            }
        }
    }
    writer.destroy().await.unwrap();
    assert!(
        missed.is_empty(),
        "reads missed their own writes: {missed:?}"
    );
}

/// The same append sent twice at once (a retry racing the try it repeats: a command
/// dropped mid-append and sent again, as the conformance case does): while the first
/// message is being replicated, a replicated stream answers the second with 10158
/// ("duplicate message id is in process"). Both sends must end as the one stored append,
/// never as an error. Repeated: the window is the replication's round trip.
#[esrc_conformance::requires(nats_cluster)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_sent_again_while_its_first_try_replicates_is_stored_once() {
    let Some(cluster) = common::cluster().await else {
        return;
    };
    let store = cluster.store().await;
    let mut failures = Vec::new();
    for round in 0..100 {
        for expected in [Expected::Any, Expected::NoStream] {
            // One event (one message) and two (an atomic batch), in turns.
            let events: Vec<_> = (0..1 + round % 2).map(|n| event(round + n)).collect();
            let id = Uuid::now_v7();
            let (first, again) = tokio::join!(
                store.publish("Thing", id, expected, events.clone()),
                store.publish("Thing", id, expected, events.clone()),
            );
            match (first, again) {
                (Ok(first), Ok(again)) => assert_eq!(first, again, "one append, one outcome"),
                (first, again) => failures.push(format!("{expected:?}: {first:?} / {again:?}")),
            }
            let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
            if stored.len() != events.len() {
                failures.push(format!("{expected:?}: {} events stored", stored.len()));
            }
        }
    }
    // The same through `append_if` (its own batches).
    for round in 0..50 {
        let (id, events) = (Uuid::now_v7(), vec![event(round)]);
        let write = || Write::new("Thing", id, events.clone());
        let (first, again) = tokio::join!(
            store.append_if(vec![write()], None),
            store.append_if(vec![write()], None),
        );
        match (first, again) {
            (Ok(first), Ok(again)) => assert_eq!(first, again, "one append, one outcome"),
            (first, again) => failures.push(format!("append_if: {first:?} / {again:?}")),
        }
    }
    store.destroy().await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
}
