//! `esrc status`: what a store holds.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use esrc::{AnyStore, CheckpointStore, Replay};
use serde::Serialize;

#[derive(Serialize)]
struct Status {
    categories: Vec<esrc::CategoryStats>,
    head: u64,
    projections: Vec<Projection>,
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

pub(crate) async fn status(store: &AnyStore, json: bool) -> anyhow::Result<()> {
    let categories = store.categories().await?;
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
    let head = if names.is_empty() {
        esrc::Position::ZERO
    } else {
        store.head(&names).await?
    };
    let mut projections = Vec::new();
    for (name, checkpoint) in store.checkpoints().await? {
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
    let status = Status {
        categories,
        head: head.get(),
        projections,
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
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
        return Ok(());
    }
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
    Ok(())
}
