//! Writes sensor readings, then rebuilds a summary from them: every string the
//! projection reads points into the stored payload.

use esrc::{AnyStore, Expected, Metadata, ProjectExt, PublishExt};
use esrc_examples_support::{BoxError, open, print_table, report, store_arg};
use uuid::Uuid;
use zero_copy::{SensorEvent, Summary};

const USAGE: &str = "\
Zero-copy decoding on esrc: events that borrow from their payload.

Usage: zero_copy [--store STORE]

STORE is `memory` (the default), a postgres:// URL or a nats:// URL.";

const SENSORS: [&str; 3] = ["boiler", "fridge", "oven"];

/// Writes the readings to `store` (called `kind` in the output) and summarises them.
async fn readings(store: AnyStore, kind: &str) -> Result<(), BoxError> {
    println!("Zero-copy decoding, on the {kind} store.");
    for (index, sensor) in SENSORS.iter().enumerate() {
        let id = Uuid::now_v7();
        let mut events: Vec<SensorEvent<'_>> = (0..200)
            .map(|n| SensorEvent::Measured {
                sensor,
                unit: "°C",
                value: (index * 40) as f64 + f64::from(n % 37) * 0.5,
            })
            .collect();
        events.push(SensorEvent::Calibrated { sensor });
        store
            .publish_events(id, Expected::NoStream, &events, &Metadata::new())
            .await?;
    }
    let mut summary = Summary::new(&SENSORS);
    let last = store.rebuild(&mut summary).await?;
    let rows: Vec<Vec<String>> = summary
        .sensors
        .iter()
        .map(|stats| {
            vec![
                stats.sensor.to_owned(),
                stats.readings.to_string(),
                format!("{:.1}", stats.sum / stats.readings.max(1) as f64),
                format!("{:.1}", stats.max),
                stats.calibrations.to_string(),
            ]
        })
        .collect();
    print_table(
        &format!("Sensors (replayed up to position {last})"),
        &["Sensor", "Readings", "Mean", "Max", "Calibrations"],
        &rows,
    );
    println!(
        "\n{} bytes of sensor names and units were read in place from the stored payloads: \
         no string was copied to decode them.",
        summary.borrowed_bytes
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

async fn run() -> Result<(), BoxError> {
    let url = store_arg(USAGE)?;
    let (store, kind) = open(url.as_deref(), "zero_copy").await?;
    readings(store, kind).await
}
