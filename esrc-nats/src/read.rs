//! Reading with short-lived consumers that never outlive the read.
//!
//! Each read creates an ephemeral pull consumer (no acks, in memory, filtered to the
//! subjects it needs, starting at a sequence) and deletes it when the read ends or is
//! dropped, so reads never pile up against the server's per-stream consumer limit. A
//! finite read stops after the messages pending when it started; a live read goes on
//! forever and, if its consumer disappears (a server restart), makes a new one starting
//! after the last message it delivered.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use esrc_core::Error;
use futures::{Stream, StreamExt};

use crate::error::transient;

/// The longest a read waits between attempts to recreate its consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long an abandoned consumer lingers on the server if its deletion is lost.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);

/// What a read is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Up to the messages pending when the read started.
    Finite,
    /// Up to the pending messages, headers only (looking for event ids).
    HeadersOnly,
    /// Catch-up, then every new message, forever.
    Live,
}

/// Deletes its consumer when dropped, from a background task.
struct Ephemeral {
    context: jetstream::Context,
    stream: String,
    name: String,
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let context = self.context.clone();
        let stream = std::mem::take(&mut self.stream);
        let name = std::mem::take(&mut self.name);
        runtime.spawn(async move {
            if let Err(error) = context.delete_consumer_from_stream(&name, &stream).await {
                tracing::debug!(%error, consumer = %name, "esrc: consumer deletion failed; it expires on its own");
            }
        });
    }
}

/// The stored messages on `filters` from sequence `start` on.
pub(crate) fn messages(
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
    filters: Vec<String>,
    start: u64,
    mode: Mode,
) -> impl Stream<Item = Result<Message, Error>> + Send {
    async_stream::stream! {
        let mut next = start.max(1);
        let mut failures: u32 = 0;
        loop {
            let config = pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: next },
                ack_policy: AckPolicy::None,
                filter_subjects: filters.clone(),
                headers_only: mode == Mode::HeadersOnly,
                inactive_threshold: INACTIVE_THRESHOLD,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            };
            // async-nats futures are large; boxing keeps them off the caller's stack.
            let consumer = match Box::pin(stream.create_consumer(config)).await {
                Ok(consumer) => consumer,
                Err(error) => {
                    failures += 1;
                    if mode != Mode::Live && failures > 3 {
                        yield Err(transient(error));
                        return;
                    }
                    tracing::warn!(%error, "esrc: cannot create a read consumer; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            let _guard = Ephemeral {
                context: context.clone(),
                stream: consumer.cached_info().stream_name.clone(),
                name: consumer.cached_info().name.clone(),
            };
            let mut remaining = consumer.cached_info().num_pending;
            if mode != Mode::Live {
                // Finite: fetch what was pending when the consumer was made, batch by
                // batch, without waiting for more.
                while remaining > 0 {
                    let size = usize::try_from(remaining.min(1_000)).unwrap_or(1_000);
                    let batch = Box::pin(consumer.fetch().max_messages(size).messages()).await;
                    let mut batch = match batch {
                        Ok(batch) => batch,
                        Err(error) => {
                            yield Err(transient(error));
                            return;
                        }
                    };
                    let mut received = 0;
                    while let Some(message) = batch.next().await {
                        let message = match message {
                            Ok(message) => message,
                            Err(error) => {
                                yield Err(transient(error));
                                return;
                            }
                        };
                        let pending = match message.info() {
                            Ok(info) => info.pending,
                            Err(error) => {
                                yield Err(transient(error));
                                return;
                            }
                        };
                        received += 1;
                        remaining = remaining.saturating_sub(1);
                        yield Ok(message);
                        if pending == 0 {
                            return;
                        }
                    }
                    if received == 0 {
                        // What was pending is gone (purged meanwhile).
                        return;
                    }
                }
                return;
            }
            let messages = Box::pin(
                consumer
                    .stream()
                    .max_messages_per_batch(500)
                    .heartbeat(Duration::from_secs(2))
                    .expires(Duration::from_secs(10))
                    .messages(),
            )
            .await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "esrc: cannot start a live read; retrying");
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            loop {
                match messages.next().await {
                    Some(Ok(message)) => {
                        failures = 0;
                        match message.info() {
                            Ok(info) => next = info.stream_sequence + 1,
                            Err(error) => {
                                yield Err(transient(error));
                                return;
                            }
                        }
                        yield Ok(message);
                    }
                    Some(Err(error)) => {
                        failures += 1;
                        tracing::warn!(%error, next, "esrc: live read consumer failed; recreating it");
                        tokio::time::sleep(backoff(failures)).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(25) * 2u32.pow(failures.min(7))).min(MAX_BACKOFF)
}
