//! Reading with short-lived consumers that never outlive the read, and never skip.
//!
//! Each read creates an ephemeral pull consumer (no acks, in memory, filtered to the
//! subjects it needs, starting at a sequence) and deletes it when the read ends or is
//! dropped, so reads never pile up against the server's per-stream consumer limit.
//!
//! Without acks the server counts a message as delivered once it has sent it: a message
//! lost on the way (a node killed, a route cut, a reconnect) would be skipped for good.
//! The consumer numbers its deliveries without gaps, so the read checks each message's
//! consumer sequence; on a gap, an error or a vanished consumer it makes a new consumer
//! starting right after the last message it yielded. Nothing is skipped or repeated.
//!
//! A finite read stops once nothing is pending *and* it has passed the sequence it was
//! told to reach (the stream's last message as its leader reported it), so a consumer
//! on a lagging replica cannot end a read before the caller's own write. A live read
//! goes on forever.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use esrc_core::Error;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::error::{NatsError, transient};

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

/// Where and how to read.
#[derive(Clone, Debug)]
pub(crate) struct Read {
    pub(crate) filters: Vec<String>,
    /// The first sequence to read.
    pub(crate) start: u64,
    pub(crate) mode: Mode,
    /// A finite read goes on until it has read past this sequence (0: no bound).
    pub(crate) until: u64,
    /// How long a finite read may take to make progress before it fails (retryable).
    pub(crate) patience: Duration,
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

/// Why a consumer was given up.
enum Lost {
    /// A delivery went missing, or the consumer failed: make a new one.
    Recreate(String),
    /// A finite read is complete.
    Done,
}

/// The stored messages the read asks for, in sequence order, each exactly once.
pub(crate) fn messages(
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
    read: Read,
) -> impl Stream<Item = Result<Message, Error>> + Send {
    async_stream::stream! {
        let mut next = read.start.max(1);
        let mut failures: u32 = 0;
        // A finite read fails when it has made no progress for this long.
        let mut stalled_since = Instant::now();
        loop {
            if read.mode != Mode::Live && stalled_since.elapsed() > read.patience {
                yield Err(transient(NatsError::Stalled {
                    sequence: next,
                    waited: read.patience,
                }));
                return;
            }
            let config = pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: next },
                ack_policy: AckPolicy::None,
                filter_subjects: read.filters.clone(),
                headers_only: read.mode == Mode::HeadersOnly,
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
                    tracing::warn!(%error, next, "esrc: cannot create a read consumer; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            let _guard = Ephemeral {
                context: context.clone(),
                stream: consumer.cached_info().stream_name.clone(),
                name: consumer.cached_info().name.clone(),
            };
            // Deliveries of this consumer are numbered 1, 2, … without gaps.
            let mut delivered: u64 = 0;
            let lost = if read.mode == Mode::Live {
                let messages = Box::pin(
                    consumer
                        .stream()
                        .max_messages_per_batch(500)
                        .heartbeat(Duration::from_secs(2))
                        .expires(Duration::from_secs(10))
                        .messages(),
                )
                .await;
                match messages {
                    Ok(mut messages) => loop {
                        let message = match messages.next().await {
                            Some(Ok(message)) => message,
                            Some(Err(error)) => break Lost::Recreate(error.to_string()),
                            None => break Lost::Recreate("the consumer's messages ended".into()),
                        };
                        match check(&message, &mut delivered) {
                            Ok(sequence) => {
                                failures = 0;
                                next = sequence + 1;
                                yield Ok(message);
                            }
                            Err(why) => break Lost::Recreate(why),
                        }
                    },
                    Err(error) => Lost::Recreate(error.to_string()),
                }
            } else {
                let mut pending = consumer.cached_info().num_pending;
                'batches: loop {
                    if pending == 0 && next > read.until {
                        break Lost::Done;
                    }
                    // What is pending comes at once; waiting is only for a replica that
                    // has not yet caught up to `until`.
                    let size = usize::try_from(pending.clamp(1, 1_000)).unwrap_or(1_000);
                    let batch = if pending > 0 {
                        Box::pin(consumer.fetch().max_messages(size).messages()).await
                    } else {
                        let request = consumer
                            .batch()
                            .max_messages(size)
                            .expires(Duration::from_millis(200))
                            .messages();
                        Box::pin(request).await
                    };
                    let mut batch = match batch {
                        Ok(batch) => batch,
                        Err(error) => break Lost::Recreate(error.to_string()),
                    };
                    let mut received = 0;
                    while let Some(message) = batch.next().await {
                        let message = match message {
                            Ok(message) => message,
                            Err(error) => break 'batches Lost::Recreate(error.to_string()),
                        };
                        let info_pending = message.info().map(|info| info.pending).unwrap_or(0);
                        match check(&message, &mut delivered) {
                            Ok(sequence) => {
                                received += 1;
                                failures = 0;
                                stalled_since = Instant::now();
                                next = sequence + 1;
                                pending = info_pending;
                                yield Ok(message);
                            }
                            Err(why) => break 'batches Lost::Recreate(why),
                        }
                    }
                    if received == 0 {
                        if next > read.until {
                            // What was pending is gone (purged meanwhile).
                            break Lost::Done;
                        }
                        if stalled_since.elapsed() > read.patience {
                            break Lost::Recreate("no progress".into());
                        }
                        pending = 0;
                    }
                }
            };
            match lost {
                Lost::Done => return,
                Lost::Recreate(why) => {
                    failures += 1;
                    tracing::warn!(why = %why, next, "esrc: read consumer lost; recreating it after the last delivered message");
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

/// The message's stream sequence, if it is the consumer's next delivery; otherwise why not.
fn check(message: &Message, delivered: &mut u64) -> Result<u64, String> {
    let info = message.info().map_err(|error| error.to_string())?;
    if info.consumer_sequence != *delivered + 1 {
        return Err(format!(
            "delivery {} arrived after {}: a message was lost on the way",
            info.consumer_sequence, delivered
        ));
    }
    *delivered = info.consumer_sequence;
    Ok(info.stream_sequence)
}

/// The pause before the `failures`-th retry: doubling from 25 ms up to [`MAX_BACKOFF`].
pub(crate) fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(25) * 2u32.pow(failures.min(7))).min(MAX_BACKOFF)
}
