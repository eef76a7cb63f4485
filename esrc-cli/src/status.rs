//! `esrc status`: what a store holds.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use esrc::{AnyStore, CheckpointStore, Replay};
use serde::Serialize;

#[derive(Serialize)]
struct Status {
    categories: Vec<esrc::CategoryStats>,
    head: u64,
    projections: Vec<Projection>,
    /// The checkpoints of `esrc copy` and `esrc import` runs that wrote to this store:
    /// positions of their source, so no lag here.
    jobs: Vec<Job>,
}

#[derive(Serialize)]
struct Job {
    name: String,
    /// The source position the job had copied up to.
    source_position: u64,
}

/// Whether a checkpoint is a copy's or an import's (see `copy.rs`), not a projection's.
fn is_job(name: &str) -> bool {
    name.starts_with("esrc-copy-") || name.starts_with("esrc-import-")
}

#[derive(Serialize)]
struct Projection {
    name: String,
    checkpoint: u64,
    /// Events stored after the checkpoint, of every category (a checkpoint does not
    /// record its projection's categories).
    lag: u64,
}

pub(crate) fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

/// Shows the store's status once, or with `watch` every second until interrupted; a
/// refresh that fails for a reason that may pass (a lost connection) is reported and the
/// next one tried.
pub(crate) async fn status(store: &AnyStore, json: bool, watch: bool) -> anyhow::Result<()> {
    if !watch {
        return show(&gather(store).await?, json, false);
    }
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match gather(store).await {
            Ok(status) => show(&status, json, true)?,
            Err(error) if passing(&error) => eprintln!("esrc status: {error:#}; trying again"),
            Err(error) => return Err(error),
        }
    }
}

/// Whether `error` is the store's and may pass.
fn passing(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<esrc::Error>()
        .is_some_and(esrc::Error::is_retryable)
}

/// What the store holds now.
async fn gather(store: &AnyStore) -> anyhow::Result<Status> {
    let categories = store.categories().await?;
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
    let head = if names.is_empty() {
        esrc::Position::ZERO
    } else {
        store.head(&names).await?
    };
    let mut projections = Vec::new();
    let mut jobs = Vec::new();
    for (name, checkpoint) in store.checkpoints().await? {
        if is_job(&name) {
            jobs.push(Job {
                name,
                source_position: checkpoint.get(),
            });
            continue;
        }
        let lag = if names.is_empty() {
            0
        } else {
            store.count_after(&names, checkpoint).await?
        };
        projections.push(Projection {
            name,
            checkpoint: checkpoint.get(),
            lag,
        });
    }
    Ok(Status {
        categories,
        head: head.get(),
        projections,
        jobs,
    })
}

/// Prints `status`: as JSON (one line a refresh when `watching`) or as tables (on a
/// cleared terminal when `watching`).
fn show(status: &Status, json: bool, watching: bool) -> anyhow::Result<()> {
    if json {
        match watching {
            true => out!("{}", serde_json::to_string(status)?),
            false => out!("{}", serde_json::to_string_pretty(status)?),
        }
        return Ok(());
    }
    if watching && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // Clear the screen and go home, as `watch` does.
        out!("\x1b[2J\x1b[H{}", esrc::Timestamp::now());
    }
    let mut table = new_table(&["Category", "Events", "Streams"]);
    for category in &status.categories {
        table.add_row(vec![
            category.name.clone(),
            category.events.to_string(),
            category.streams.to_string(),
        ]);
    }
    out!("{table}");
    out!("Head position: {}", status.head);
    if status.projections.is_empty() {
        out!("No projection has saved a checkpoint.");
    } else {
        let mut table = new_table(&["Projection", "Checkpoint", "Lag (events)"]);
        for projection in &status.projections {
            table.add_row(vec![
                projection.name.clone(),
                projection.checkpoint.to_string(),
                projection.lag.to_string(),
            ]);
        }
        out!("{table}");
        out!("Lag counts the events of every category after a checkpoint.");
    }
    if !status.jobs.is_empty() {
        let mut table = new_table(&["Copy or import into this store", "Source position reached"]);
        for job in &status.jobs {
            table.add_row(vec![job.name.clone(), job.source_position.to_string()]);
        }
        out!("{table}");
    }
    Ok(())
}
