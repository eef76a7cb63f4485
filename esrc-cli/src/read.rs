//! `esrc stream` and `esrc tail`.

use std::pin::pin;

use anyhow::bail;
use esrc::{AnyStore, Envelope, Position, Replay, ReplayOne, Subscribe, Tag, Uuid, Version};
use futures::StreamExt;

use crate::record::{Record, format_time};

/// The payload as pretty JSON, or as text/bytes when it is not JSON.
fn pretty_payload(envelope: &Envelope) -> String {
    match serde_json::from_slice::<serde_json::Value>(&envelope.payload) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => format!(
            "(not JSON, {} bytes) {:?}",
            envelope.payload.len(),
            envelope.payload
        ),
    }
}

fn print_block(envelope: &Envelope) -> anyhow::Result<()> {
    out!(
        "version {}  position {}  {}",
        envelope.version,
        envelope.position,
        format_time(envelope.timestamp)
    );
    out!(
        "  event id {}  schema version {}",
        envelope.event_id,
        envelope.schema_version
    );
    if !envelope.event_type.is_empty() {
        out!("  type {}", envelope.event_type);
    }
    if !envelope.tags.is_empty() {
        let tags: Vec<&str> = envelope.tags.iter().map(Tag::as_str).collect();
        out!("  tags {}", tags.join(" "));
    }
    let metadata = &envelope.metadata;
    if let Some(id) = metadata.correlation_id {
        out!("  correlation id {id}");
    }
    if let Some(id) = metadata.causation_id {
        out!("  causation id {id}");
    }
    for (key, value) in &metadata.values {
        out!("  {key} = {value}");
    }
    for line in pretty_payload(envelope).lines() {
        out!("  {line}");
    }
    Ok(())
}

fn print_json(envelope: &Envelope) -> anyhow::Result<()> {
    out!(
        "{}",
        serde_json::to_string(&Record::from_envelope(envelope))?
    );
    Ok(())
}

/// One stream of a category, as `esrc streams` lists it.
#[derive(serde::Serialize)]
struct StreamLine {
    id: Uuid,
    events: u64,
    version: u64,
    last: String,
}

/// Lists the streams of `category`: a replay of the category, counted by aggregate.
pub(crate) async fn streams(store: &AnyStore, category: &str, json: bool) -> anyhow::Result<()> {
    crate::catalog::check_categories(store, &[category.to_owned()]).await?;
    let mut streams: std::collections::BTreeMap<Uuid, StreamLine> = Default::default();
    let mut events = pin!(store.replay(&[category], Position::ZERO));
    while let Some(envelope) = events.next().await {
        let envelope = envelope?;
        let line = streams.entry(envelope.aggregate_id).or_insert(StreamLine {
            id: envelope.aggregate_id,
            events: 0,
            version: 0,
            last: String::new(),
        });
        line.events += 1;
        line.version = envelope.version.get();
        line.last = format_time(envelope.timestamp);
    }
    if json {
        for line in streams.values() {
            out!("{}", serde_json::to_string(line)?);
        }
        return Ok(());
    }
    let mut table = crate::status::new_table(&["Aggregate id", "Events", "Version", "Last event"]);
    for line in streams.values() {
        table.add_row(vec![
            line.id.to_string(),
            line.events.to_string(),
            line.version.to_string(),
            line.last.clone(),
        ]);
    }
    out!("{table}");
    out!("{} streams of category `{category}`.", streams.len());
    Ok(())
}

pub(crate) async fn stream(
    store: &AnyStore,
    category: &str,
    id: Uuid,
    after: Version,
    json: bool,
) -> anyhow::Result<()> {
    let mut events = pin!(store.replay_one(category, id, after));
    let mut count = 0;
    while let Some(envelope) = events.next().await {
        let envelope = envelope?;
        if json {
            print_json(&envelope)?;
        } else {
            if count > 0 {
                out!("");
            }
            print_block(&envelope)?;
        }
        count += 1;
    }
    if count == 0 {
        crate::catalog::check_categories(store, &[category.to_owned()]).await?;
        if !json {
            eprintln!("stream {category}/{id} has no events after version {after}");
        }
    }
    Ok(())
}

pub(crate) async fn tail(
    store: &AnyStore,
    categories: Vec<String>,
    from: Option<Position>,
    json: bool,
) -> anyhow::Result<()> {
    let stored = crate::catalog::stored_categories(store).await?;
    let categories = if categories.is_empty() {
        let stored = stored.unwrap_or_default();
        if stored.is_empty() {
            bail!("the store holds no events yet: name the categories to follow");
        }
        stored
    } else {
        // A category may get its first event while this follows: a warning, not an error.
        for name in &categories {
            if let Some(why) = stored
                .as_deref()
                .and_then(|stored| crate::catalog::unknown(name, stored))
            {
                eprintln!("warning: {why}");
            }
        }
        categories
    };
    let names: Vec<&str> = categories.iter().map(String::as_str).collect();
    let after = match from {
        Some(position) => position,
        None => store.head(&names).await?,
    };
    if !json {
        eprintln!(
            "following {} after position {after}; Ctrl-C to stop",
            names.join(", ")
        );
    }
    let mut events = pin!(store.subscribe(&names, after));
    // One listener for the whole run: a signal that came between two events would be lost
    // to a listener made for each.
    let mut interrupt = pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut interrupt => return Ok(()),
            next = events.next() => {
                let Some(envelope) = next else { return Ok(()) };
                let envelope = envelope?;
                if json {
                    print_json(&envelope)?;
                } else {
                    let payload = String::from_utf8_lossy(&envelope.payload);
                    out!(
                        "{:>8}  {}  {}/{} v{}  {}",
                        envelope.position,
                        format_time(envelope.timestamp),
                        envelope.category,
                        envelope.aggregate_id,
                        envelope.version,
                        payload
                    );
                }
            }
        }
    }
}
