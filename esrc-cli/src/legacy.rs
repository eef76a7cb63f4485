//! `esrc import-0.1`: a stream written by esrc 0.1 on NATS, into any store.
//!
//! esrc 0.1 published one message per event on `<prefix>.<event name>.<aggregate id>`,
//! the payload JSON, the schema version in the `Esrc-Version` header (absent: 1), and no
//! event id. Versions are the order of the messages of a subject; the event ids are made
//! from the stream's name and the message's sequence (UUID v5), so that running the
//! import again stores nothing twice.

use std::time::SystemTime;

use anyhow::{Context as _, bail};
use esrc::nats::async_nats::{self, jetstream};
use esrc::{AnyStore, NewEvent, Position, Timestamp, Uuid, Version};
use futures::StreamExt;
use indicatif::ProgressBar;
use jetstream::consumer::{DeliverPolicy, pull};

use crate::copy::Writer;

/// The header in which esrc 0.1 kept an event's schema version.
const VERSION_HEADER: &str = "Esrc-Version";

/// The namespace of the event ids given to 0.1 events.
const NAMESPACE: Uuid = Uuid::from_u128(0x6573_7263_2d30_2e31_2d65_7665_6e74_7321);

/// The event id of the message at `sequence` of the 0.1 stream `stream`.
pub(crate) fn event_id(stream: &str, sequence: u64) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{stream}/{sequence}").as_bytes())
}

/// The category and aggregate id of a 0.1 subject: its last two tokens.
fn stream_of(subject: &str) -> Option<(&str, Uuid)> {
    let (rest, id) = subject.rsplit_once('.')?;
    let name = rest.rsplit('.').next()?;
    Some((name, id.parse().ok()?))
}

/// The schema version a 0.1 message was stored at (1 when it has no header).
fn schema_version(message: &jetstream::Message, sequence: u64) -> anyhow::Result<u32> {
    let schema_version = match message.headers.as_ref().and_then(|h| h.get(VERSION_HEADER)) {
        Some(value) => value.as_str().parse().with_context(|| {
            format!(
                "message {sequence}: `{VERSION_HEADER}: {}` is not a version",
                value.as_str()
            )
        })?,
        None => 1,
    };
    Ok(schema_version)
}

pub(crate) async fn import(
    nats_url: &str,
    stream_name: &str,
    target: &AnyStore,
    batch: usize,
) -> anyhow::Result<()> {
    let client = async_nats::connect(nats_url)
        .await
        .context("cannot connect to the NATS server of the 0.1 stream")?;
    let context = jetstream::new(client);
    let mut stream = context
        .get_stream(stream_name)
        .await
        .with_context(|| format!("cannot open the 0.1 stream `{stream_name}`"))?;
    let total = stream.info().await?.state.messages;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("cannot read the 0.1 stream")?;
    let mut messages = consumer.messages().await?;
    let bar = ProgressBar::new(total);
    let mut versions: std::collections::HashMap<(String, Uuid), u64> = Default::default();
    // No checkpoint: the ids make a second run store nothing twice.
    let mut writer = Writer::new(target, None, batch).await;
    let mut read = 0u64;
    while read < total {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.context("cannot read the 0.1 stream")?;
        let info = message.info().map_err(|error| anyhow::anyhow!("{error}"))?;
        let sequence = info.stream_sequence;
        let published: SystemTime = info.published.into();
        read += 1;
        let Some((category, id)) = stream_of(&message.subject) else {
            bail!(
                "message {sequence} is on subject `{}`, not <prefix>.<event name>.<aggregate id> as esrc 0.1 wrote",
                message.subject
            );
        };
        let schema_version = schema_version(&message, sequence)?;
        let version = versions.entry((category.to_owned(), id)).or_default();
        *version += 1;
        let event = NewEvent::from_payload(schema_version, message.payload.clone())
            .with_event_id(event_id(stream_name, sequence))
            .with_timestamp(Timestamp::from(published));
        writer
            .push(
                category.to_owned(),
                id,
                Version(*version),
                Position(sequence),
                event,
            )
            .await?;
        bar.inc(1);
    }
    writer.finish().await?;
    bar.finish_and_clear();
    out!(
        "Read {read} events of the 0.1 stream `{stream_name}`, in {} streams.",
        versions.len()
    );
    out!("{}", writer.report().await);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_category_and_the_aggregate() {
        let id = Uuid::now_v7();
        assert_eq!(stream_of(&format!("app.Tab.{id}")), Some(("Tab", id)));
        assert_eq!(stream_of(&format!("a.b.Tab.{id}")), Some(("Tab", id)));
        assert_eq!(stream_of("app.Tab.not-a-uuid"), None);
        assert_eq!(stream_of("nodots"), None);
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(event_id("S", 1), event_id("S", 1));
        assert_ne!(event_id("S", 1), event_id("S", 2));
        assert_ne!(event_id("S", 1), event_id("T", 1));
    }
}
