//! `cargo bench -p esrc-cli --bench copy`: `esrc copy` of 100,000 events from PostgreSQL
//! to NATS, beside the NATS store's own appends of the same batches (esrc-bench's W5) in
//! the same run. Needs `ESRC_POSTGRES_URL` and `ESRC_NATS_URL`; `ESRC_COPY_EVENTS` sets
//! the size (default 100,000, in appends of 100 events).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use esrc::nats::NatsStore;
use esrc::{Expected, NewEvent, Publish, Uuid};

const BATCH: u64 = 100;

fn batch(first: u64) -> Vec<NewEvent> {
    (first..first + BATCH)
        .map(|n| {
            NewEvent::from_payload(
                1,
                format!(r#"{{"amount":{n},"note":"an order of two coffees and a croissant"}}"#),
            )
        })
        .collect()
}

/// Appends `events` events in batches of 100, each batch a new stream; returns the time.
async fn append_all(store: &esrc::AnyStore, events: u64) -> Duration {
    let started = Instant::now();
    for first in (0..events).step_by(BATCH as usize) {
        store
            .publish("Counter", Uuid::now_v7(), Expected::NoStream, batch(first))
            .await
            .unwrap();
    }
    started.elapsed()
}

fn main() {
    let (Ok(postgres), Ok(nats)) = (
        std::env::var("ESRC_POSTGRES_URL"),
        std::env::var("ESRC_NATS_URL"),
    ) else {
        println!("skipped: set ESRC_POSTGRES_URL and ESRC_NATS_URL");
        return;
    };
    let events: u64 = std::env::var("ESRC_COPY_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let name = format!("copy_{}", Uuid::new_v4().simple());
    let separator = if postgres.contains('?') { '&' } else { '?' };
    let source = format!("{postgres}{separator}schema={name}&migrate=true");
    let w5_url = format!("{nats}?stream={}_W5&prefix={name}_w5", name.to_uppercase());
    let target = format!("{nats}?stream={}&prefix={name}", name.to_uppercase());

    let (w5, seeded) = runtime.block_on(async {
        let source = esrc::connect(&source).await.unwrap();
        append_all(&source, events).await;
        let w5 = esrc::connect(&w5_url).await.unwrap();
        let elapsed = append_all(&w5, events).await;
        w5.downcast_ref::<NatsStore>()
            .unwrap()
            .destroy()
            .await
            .unwrap();
        (elapsed, source)
    });
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_esrc"))
        .args(["copy", &source, &target])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let copy = started.elapsed();
    assert!(status.success(), "esrc copy failed");

    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    println!("| workload | events/s |");
    println!("| --- | --- |");
    println!(
        "| NATS store, appends of 100 events (W5) | {:.0} |",
        rate(w5)
    );
    println!("| esrc copy PostgreSQL → NATS | {:.0} |", rate(copy));
    println!(
        "copy / W5 = {:.2} (target >= 0.8), {events} events",
        rate(copy) / rate(w5)
    );

    runtime.block_on(async {
        let target = esrc::connect(&target).await.unwrap();
        target
            .downcast_ref::<NatsStore>()
            .unwrap()
            .destroy()
            .await
            .unwrap();
        let pool = seeded
            .downcast_ref::<esrc::postgres::PgStore>()
            .unwrap()
            .pool()
            .clone();
        let drop = format!("DROP SCHEMA \"{name}\" CASCADE");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&pool)
            .await
            .unwrap();
    });
}
