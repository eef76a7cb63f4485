//! Fault tests on a three-node cluster with `replicas(3)`: nodes are killed with
//! `SIGKILL` under load (16 writers, a subscriber, a projector) and restarted, and the
//! outcome is counted. Each scenario runs several times — killing the stream's leader 6
//! times, because the skipped events it guards against showed in a third of the runs,
//! the others 3 times; `ESRC_FAULT_RUNS` sets one count for all. The timeline of a
//! failing run is printed with its assertion.
//!
//! What every run asserts:
//! - every acknowledged append is stored exactly once; an append that failed is stored
//!   once or not at all, and a retry with the same event ids never stores it twice;
//! - the subscriber delivers every stored event exactly once, in position order;
//! - the projector's read model equals a rebuild from `replay`;
//! - writers see only `Conflict` or retryable errors while nodes are down;
//! - appends and reads work again within a stated bound once the cluster has recovered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::cluster::Cluster;
use esrc_conformance::fixtures::{Recorder, counted};
use esrc_core::projector::{ErrorPolicy, Projector};
use esrc_core::{
    Envelope, Error, Expected, NewEvent, Position, Publish, Replay, ReplayOne, Subscribe, Version,
};
use esrc_nats::NatsStore;
use futures::StreamExt;
use uuid::Uuid;

/// Writers appending at the same time.
const WRITERS: usize = 16;
/// How long a writer keeps retrying one append before it records it as failed.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long after recovery appends and reads must work again.
const RECOVERY: Duration = Duration::from_secs(20);

/// Fault tests share the machine's two cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn runs(default: usize) -> usize {
    std::env::var("ESRC_FAULT_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(default)
}

/// What went on during a run, printed when an assertion fails.
#[derive(Default)]
struct Timeline {
    start: Option<Instant>,
    lines: Mutex<Vec<String>>,
}

impl Timeline {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Some(Instant::now()),
            lines: Mutex::default(),
        })
    }

    fn note(&self, line: impl Into<String>) {
        let at = self.start.map(|s| s.elapsed()).unwrap_or_default();
        self.lines
            .lock()
            .unwrap()
            .push(format!("{:>8.3}s {}", at.as_secs_f64(), line.into()));
    }

    fn dump(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// What the writers did.
#[derive(Default)]
struct Ledger {
    /// Event ids whose append returned `Ok`.
    acknowledged: Vec<Uuid>,
    /// Event ids whose append failed for good (stored once or not at all).
    failed: Vec<Uuid>,
    /// Errors seen, by kind: `conflict`, `retryable`, or the error's text for the rest.
    errors: HashMap<String, usize>,
}

async fn store_on(cluster: &Cluster) -> NatsStore {
    let name = Uuid::new_v4().simple().to_string();
    let builder = NatsStore::builder()
        .stream(format!("F{name}"))
        .prefix(format!("f{name}"))
        .replicas(3);
    common::build(builder, cluster.client().await).await
}

/// One writer: appends to its own stream with `Expected::Any` until `stop`, retrying a
/// retryable failure with the same event ids until it succeeds or `RETRY_FOR` passes.
/// Every third append is an atomic batch of 10 events: a node killed between a batch's
/// first message and its commit must fail it as retryable (10176), never as permanent.
async fn writer(store: NatsStore, stop: Arc<AtomicBool>, timeline: Arc<Timeline>) -> Ledger {
    let mut ledger = Ledger::default();
    let id = Uuid::now_v7();
    let mut n = 0;
    let mut appends: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        appends += 1;
        let size = if appends.is_multiple_of(3) { 10 } else { 1 };
        let events: Vec<NewEvent> = (0..size)
            .map(|_| {
                n += 1;
                counted(n)
            })
            .collect();
        let event_ids = events.iter().map(|event| event.event_id);
        let began = Instant::now();
        loop {
            match store
                .publish("Thing", id, Expected::Any, events.clone())
                .await
            {
                Ok(_) => {
                    ledger.acknowledged.extend(event_ids);
                    break;
                }
                Err(error) => {
                    let kind = if error.is_conflict() {
                        "conflict".to_owned()
                    } else if error.is_retryable() {
                        "retryable".to_owned()
                    } else {
                        timeline.note(format!("writer {id}: permanent error: {error}"));
                        error.to_string()
                    };
                    *ledger.errors.entry(kind).or_default() += 1;
                    if !error.is_retryable() || began.elapsed() > RETRY_FOR {
                        ledger.failed.extend(event_ids);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    ledger
}

/// Every stored `Thing` event, in position order, read until the read succeeds.
async fn stored(store: &NatsStore) -> Vec<Envelope> {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let read: Result<Vec<Envelope>, Error> = store
            .replay(&["Thing"], Position::ZERO)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect();
        match read {
            Ok(events) => return events,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "replay fails after recovery: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The fault a scenario injects, and undoes.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Kill the events stream's leader, then restart it.
    StreamLeader,
    /// Kill a follower of the events stream; reads go on while it is down.
    Follower,
    /// Kill two nodes (no quorum), then restart both.
    NoQuorum,
    /// Kill the leader of the checkpoint bucket's stream, then restart it.
    CheckpointLeader,
}

async fn scenario(fault: Fault, run: usize) {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let timeline = Timeline::new();
    let store = store_on(&cluster).await;
    let context = jetstream::new(cluster.client().await);
    let stop = Arc::new(AtomicBool::new(false));

    // The subscriber: every event, from the start, into `seen`.
    let seen: Arc<Mutex<Vec<(Position, Uuid)>>> = Arc::default();
    let subscriber = {
        let store = store.clone();
        let timeline = Arc::clone(&timeline);
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut events = pin!(store.subscribe(&["Thing"], Position::ZERO));
            while let Some(event) = events.next().await {
                match event {
                    Ok(envelope) => seen
                        .lock()
                        .unwrap()
                        .push((envelope.position, envelope.event_id)),
                    Err(error) => {
                        timeline.note(format!("subscriber: error {error}"));
                        return;
                    }
                }
            }
            timeline.note("subscriber: the subscription ended");
        })
    };
    let recorder = Recorder::default();
    let projector = Projector::new(store.clone(), "faults", recorder.clone())
        .checkpoint_every(50)
        .checkpoint_interval(Duration::from_millis(200))
        .on_error(ErrorPolicy::retry())
        .spawn();

    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            tokio::spawn(writer(
                store.clone(),
                Arc::clone(&stop),
                Arc::clone(&timeline),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stream = store.stream_name().to_owned();
    let checkpoints = format!("KV_{}_checkpoints", store.prefix());
    let killed: Vec<usize> = match fault {
        Fault::StreamLeader => vec![cluster.leader_of(&context, &stream).await],
        Fault::Follower => {
            let leader = cluster.leader_of(&context, &stream).await;
            vec![(leader + 1) % 3]
        }
        Fault::NoQuorum => {
            let leader = cluster.leader_of(&context, &stream).await;
            vec![leader, (leader + 1) % 3]
        }
        Fault::CheckpointLeader => vec![cluster.leader_of(&context, &checkpoints).await],
    };
    for node in &killed {
        timeline.note(format!("kill -9 node {node}"));
        cluster.kill(*node).await;
    }
    let mut slow_reads = Vec::new();
    if let Fault::Follower = fault {
        // Reads of one stream while a follower is down: each must take normal time.
        let id = Uuid::now_v7();
        store
            .publish("Probe", id, Expected::NoStream, vec![counted(1)])
            .await
            .ok();
        for read in 0..20 {
            let began = Instant::now();
            let events: Vec<_> = store.replay_one("Probe", id, Version::ZERO).collect().await;
            let took = began.elapsed();
            if took > Duration::from_secs(2) || events.iter().any(Result::is_err) {
                slow_reads.push(format!("read {read}: {took:?} {events:?}"));
            }
        }
        // Reads of a category (through a consumer) too.
        for read in 0..5 {
            let began = Instant::now();
            let events: Vec<_> = store.replay(&["Probe"], Position::ZERO).collect().await;
            let took = began.elapsed();
            if took > Duration::from_secs(2) || events.iter().any(Result::is_err) {
                slow_reads.push(format!("replay {read}: {took:?} {events:?}"));
            }
        }
    } else {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for node in &killed {
        timeline.note(format!("restart node {node}"));
        cluster.restart(*node).await;
    }
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Appends work again within the bound.
    let probe = Uuid::now_v7();
    loop {
        match store
            .publish("Probe", probe, Expected::Any, vec![counted(0)])
            .await
        {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    recovered.elapsed() < RECOVERY,
                    "run {run}: appends fail {RECOVERY:?} after recovery: {error}\n{}",
                    timeline.dump()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    timeline.note("appends work again");
    stop.store(true, Ordering::Release);
    let mut ledger = Ledger::default();
    for writer in writers {
        let done = writer.await.unwrap();
        ledger.acknowledged.extend(done.acknowledged);
        ledger.failed.extend(done.failed);
        for (kind, count) in done.errors {
            *ledger.errors.entry(kind).or_default() += count;
        }
    }
    timeline.note(format!(
        "writers done: {} acknowledged, {} failed, errors {:?}",
        ledger.acknowledged.len(),
        ledger.failed.len(),
        ledger.errors
    ));

    // The truth: what `replay` reads once the cluster is whole.
    let stored = stored(&store).await;
    let stored_ids: Vec<Uuid> = stored.iter().map(|e| e.event_id).collect();
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for id in &stored_ids {
        *counts.entry(*id).or_default() += 1;
    }
    let context_of = |what: &str| format!("run {run} ({fault:?}): {what}\n{}", timeline.dump());
    for id in &ledger.acknowledged {
        assert_eq!(
            counts.get(id).copied().unwrap_or(0),
            1,
            "{}",
            context_of(&format!(
                "acknowledged event {id} is not stored exactly once"
            ))
        );
    }
    for id in &ledger.failed {
        assert!(
            counts.get(id).copied().unwrap_or(0) <= 1,
            "{}",
            context_of(&format!("failed event {id} is stored twice"))
        );
    }
    let written: HashSet<Uuid> = ledger
        .acknowledged
        .iter()
        .chain(&ledger.failed)
        .copied()
        .collect();
    assert!(
        stored_ids.iter().all(|id| written.contains(id)),
        "{}",
        context_of("the stream holds an event no writer wrote")
    );
    let permanent: Vec<_> = ledger
        .errors
        .keys()
        .filter(|kind| *kind != "conflict" && *kind != "retryable")
        .collect();
    assert!(
        permanent.is_empty(),
        "{}",
        context_of(&format!("writers saw permanent errors: {permanent:?}"))
    );
    assert!(
        slow_reads.is_empty(),
        "{}",
        context_of(&format!(
            "reads with a follower down were slow or failed: {slow_reads:#?}"
        ))
    );

    // The subscriber delivers every stored event once, in position order.
    let expected: Vec<(Position, Uuid)> = stored.iter().map(|e| (e.position, e.event_id)).collect();
    let deadline = Instant::now() + RECOVERY;
    while seen.lock().unwrap().len() < expected.len()
        && !subscriber.is_finished()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A moment more, so that a repeated event would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    subscriber.abort();
    let seen = seen.lock().unwrap().clone();
    let seen_ids: HashSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    let skipped: Vec<_> = expected
        .iter()
        .filter(|(_, id)| !seen_ids.contains(id))
        .collect();
    assert!(
        skipped.is_empty(),
        "{}",
        context_of(&format!(
            "the subscriber skipped {} of {} stored events: {:?}",
            skipped.len(),
            expected.len(),
            skipped.iter().take(20).collect::<Vec<_>>()
        ))
    );
    assert_eq!(
        seen,
        expected,
        "{}",
        context_of("the subscriber repeated or reordered events")
    );

    // The projector survived, and its read model equals a rebuild from `replay`.
    let deadline = Instant::now() + RECOVERY;
    while recorder.ids().len() < stored_ids.len()
        && !projector.is_finished()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = projector.is_finished();
    let outcome = projector.stop().await;
    assert!(
        !finished && outcome.is_ok(),
        "{}",
        context_of(&format!("the projector died: {:?}", outcome.err()))
    );
    assert_eq!(
        recorder.ids(),
        stored_ids,
        "{}",
        context_of("the projector's read model differs from a rebuild")
    );
    println!(
        "run {run} ({fault:?}): {} acknowledged, {} failed, {} stored, errors {:?}",
        ledger.acknowledged.len(),
        ledger.failed.len(),
        stored_ids.len(),
        ledger.errors
    );
    drop(cluster);
}

async fn repeat(fault: Fault, default_runs: usize) {
    let _turn = ONE_AT_A_TIME.lock().await;
    for run in 1..=runs(default_runs) {
        scenario(fault, run).await;
    }
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_under_load_loses_nothing() {
    repeat(Fault::StreamLeader, 6).await;
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_down_slows_nothing() {
    repeat(Fault::Follower, 3).await;
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_quorum_fails_appends_as_retryable_and_recovers() {
    repeat(Fault::NoQuorum, 3).await;
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_rides_out_a_checkpoint_bucket_failover() {
    repeat(Fault::CheckpointLeader, 3).await;
}
