//! Catch-up, then live: one short-lived consumer per subscription, made again after the
//! last delivered event whenever it fails or a delivery is missing (see `messages.rs` on
//! why deliveries are checked).

use std::time::Duration;

use esrc_core::backend::opened;
use esrc_core::{Envelope, Error, Position, Subscribe};
use futures::{Stream, StreamExt};

use crate::core::{NatsStore, filters};
use crate::error::BACKEND;
use crate::messages::{Consumers, Stored, check, pauses, stored};

/// Every message on `filters` from `start` on, then each new one, forever, through a
/// consumer that is made again (after the last message yielded) whenever it fails.
pub(crate) fn live(
    consumers: Consumers,
    filters: Vec<String>,
    start: u64,
) -> impl Stream<Item = Result<Stored, Error>> + Send {
    async_stream::stream! {
        let mut next = start.max(1);
        let mut pauses = pauses();
        loop {
            let (consumer, _guard) = match consumers.make(&filters, next, &mut pauses).await {
                Ok(Some(made)) => made,
                Ok(None) => {
                    esrc_core::metrics::subscription_reconnected(BACKEND);
                    continue;
                }
                // The stream is gone or access was revoked: the subscription ends with
                // the error (a retryable one is ridden out above).
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let messages = Box::pin(
                consumer
                    .stream()
                    .max_messages_per_batch(500)
                    .heartbeat(Duration::from_secs(2))
                    .expires(Duration::from_secs(10))
                    .messages(),
            )
            .await;
            // Deliveries of this consumer are numbered 1, 2, … without gaps.
            let mut delivered: u64 = 0;
            let why = match messages {
                Ok(mut messages) => loop {
                    let message = match messages.next().await {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => break error.to_string(),
                        None => break "the consumer's messages ended".to_owned(),
                    };
                    match check(&message, &mut delivered) {
                        Ok((sequence, _)) => {
                            pauses.reset();
                            next = sequence + 1;
                            yield Ok(stored(message, sequence));
                        }
                        Err(why) => break why,
                    }
                },
                Err(error) => error.to_string(),
            };
            tracing::warn!(%why, next, "esrc: live read consumer lost; recreating it after the last delivered message");
            esrc_core::metrics::subscription_reconnected(BACKEND);
            tokio::time::sleep(pauses.pause()).await;
        }
    }
}

impl Subscribe for NatsStore {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        opened(filters(self, categories), move |filters| {
            let consumers = self.inner.consumers.clone();
            self.envelopes(Box::pin(live(consumers, filters, after.get() + 1)))
        })
    }
}
