//! What metrics cost (`--only metrics`): W1's creates and W3's loads on the store, and on
//! the same store wrapped in `Metered`, first with no recorder installed, then with one
//! (metrics-exporter-prometheus's, as an application would install it).
//!
//! The baseline is the unwrapped store of the same binary (built with the `metrics`
//! feature): recording lives in `Metered` and in projectors, so nothing is recorded on its
//! path — what a build without the feature runs. Installing a recorder is for the life
//! of the process, so this workload runs after the others.

use std::time::Duration;

use esrc_core::metrics::Metered;
use esrc_core::{PublishExt, ReadExt, Root, Store};
use uuid::Uuid;

use crate::BoxError;
use crate::model::{Counter, CounterCommand};
use crate::report::Line;
use crate::workloads::{Sizes, create, rate};

/// Rounds of each comparison: each round times the store and its wrapped form, in turns.
const ROUNDS: u64 = 30;

/// The lines of the metrics' cost on `store`.
pub async fn metrics_cost<S: Store + Clone + 'static>(
    store: &S,
    sizes: Sizes,
) -> Result<Vec<Line>, BoxError> {
    let metered = Metered::new(store.clone(), "bench");
    let id = seed(store, sizes.load).await?;
    let mut lines = compare_ways(store, &metered, id, sizes, "no recorder", 0.98).await?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("installing the Prometheus recorder: {error}"))?;
    lines.extend(compare_ways(store, &metered, id, sizes, "Prometheus recorder", 0.95).await?);
    Ok(lines)
}

/// An aggregate of `events` events, for the loads.
async fn seed<S: Store>(store: &S, events: u64) -> Result<Uuid, BoxError> {
    let id = Uuid::now_v7();
    let mut root = Root::<Counter>::new(id);
    let mut seeded = 0;
    while seeded < events {
        let n = (events - seeded).min(500);
        store
            .try_write(&mut root, CounterCommand::AddMany(n))
            .await?;
        seeded += n;
    }
    Ok(id)
}

/// W1 and W3 on `store` and `metered`, in turns; each rate from the way's median round.
async fn compare_ways<S: Store + Clone + 'static>(
    store: &S,
    metered: &Metered<S>,
    id: Uuid,
    sizes: Sizes,
    recorder: &str,
    target: f64,
) -> Result<Vec<Line>, BoxError> {
    // Longer rounds than W1's: on the memory store a round of 200 creates is half a
    // millisecond, and the machine's noise alone moved a ratio by 0.04.
    let per_round = (sizes.create / 4).max(1);
    let (mut plain_creates, mut metered_creates) = (Vec::new(), Vec::new());
    let (mut plain_loads, mut metered_loads) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for way in 0..2 {
            if (round + way) % 2 == 0 {
                plain_creates.push(create(store, per_round).await?);
                plain_loads.push(load(store, id, sizes.load).await?);
            } else {
                metered_creates.push(create(metered, per_round).await?);
                metered_loads.push(load(metered, id, sizes.load).await?);
            }
        }
    }
    let median = |times: &mut Vec<Duration>, count: u64| {
        times.sort();
        rate(count, times[times.len() / 2])
    };
    let line = |workload: &str, unit: &str, metered: f64, plain: f64| {
        let ratio = metered / plain;
        Line {
            workload: format!("{workload}: Metered, {recorder}"),
            unit: unit.into(),
            esrc: metered,
            raw: Some(plain),
            ratio: Some(ratio),
            target: format!("Metered/plain >= {target}"),
            met: ratio >= target,
        }
    };
    Ok(vec![
        line(
            "metrics W1 create",
            "commands/s",
            median(&mut metered_creates, per_round),
            median(&mut plain_creates, per_round),
        ),
        line(
            "metrics W3 load",
            "events/s",
            median(&mut metered_loads, sizes.load),
            median(&mut plain_loads, sizes.load),
        ),
    ])
}

/// One load of `id`, which holds `events` events.
async fn load<S: Store>(store: &S, id: Uuid, events: u64) -> Result<Duration, BoxError> {
    let started = std::time::Instant::now();
    let root = store.load::<Counter>(id).await?;
    if root.events != events {
        return Err(format!("loaded {} events of {events}", root.events).into());
    }
    Ok(started.elapsed())
}
