//! Reading messages without skipping, below the store (the store's files stand on it): short-lived consumers, or batched direct gets for finite
//! reads of a replicated stream.
//!
//! **Finite reads of a stream with one replica** (a stream's events, a replay of
//! categories, the lookups behind retries and truncation) fetch what a short-lived
//! consumer had pending when it was made — the fastest way to read in order. With one
//! replica there is no other copy to be behind, and no node whose loss could stall the
//! consumer's creation.
//!
//! **Finite reads of a replicated stream** make no consumer: a consumer's creation can
//! wait seconds on a node that just died. They ask for each subject filter's messages
//! in batches of direct gets (ADR-31, nats-server ≥ 2.11), which any replica of the stream
//! answers, so a node that is down slows nothing; the filters of a replay are merged by
//! sequence. A replica may be behind the leader: the caller gives each filter the
//! sequence of its last message as the leader knows it, and the read asks again until a
//! replica that has it answers. A write acknowledged before the read began is therefore
//! always seen, and nothing after that last message is yielded.
//!
//! **Consumers** — of those finite reads, and of every live read — are ephemeral pull
//! consumers (no acks, in memory, filtered, from a sequence), deleted when the read ends or
//! is dropped, so reads never pile up against the server's
//! per-stream consumer limit. Without acks the server counts a message as delivered once
//! it has sent it: a message lost on the way (a node killed, a route cut, a reconnect)
//! would be skipped for good. The consumer numbers its deliveries without gaps, so the
//! read checks each message's consumer sequence; on a gap, an error or a vanished consumer
//! it makes a new consumer starting right after the last message it yielded. Nothing is
//! skipped or repeated.

use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use esrc_core::Error;
use esrc_core::backend::Backoff;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::error::{NatsError, client, transient};

/// The longest a read waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long an abandoned consumer lingers on the server if its deletion is lost.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);

/// How many messages one direct get asks for.
const DIRECT_BATCH: u64 = 1_000;

/// A stored message, however it was read.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) subject: Subject,
    pub(crate) sequence: u64,
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) payload: Bytes,
}

/// A finite read of one subject filter.
#[derive(Clone, Debug)]
pub(crate) struct Span {
    pub(crate) filter: String,
    /// The first sequence to read.
    pub(crate) start: u64,
    /// The filter's last sequence as the leader knows it: the read reaches it, and
    /// yields nothing after it (0: read to whatever the answering replica has).
    pub(crate) until: u64,
}

/// A boxed stream of stored messages.
pub(crate) type Messages = Pin<Box<dyn Stream<Item = Result<Stored, Error>> + Send>>;

/// The messages of one subject filter from `span.start` on, in sequence order, read with
/// batched direct gets. A read that makes no progress for `patience` fails (retryable).
pub(crate) fn direct(
    client: async_nats::Client,
    stream: String,
    span: Span,
    timeout: Duration,
    patience: Duration,
) -> impl Stream<Item = Result<Stored, Error>> + Send {
    async_stream::stream! {
        let api = format!("$JS.API.DIRECT.GET.{stream}");
        let mut next = span.start.max(1);
        let mut pauses = pauses();
        let mut stalled_since = Instant::now();
        loop {
            if span.until > 0 && next > span.until {
                return;
            }
            if stalled_since.elapsed() > patience {
                yield Err(transient(NatsError::Stalled {
                    sequence: next,
                    waited: patience,
                }));
                return;
            }
            let mut replies = match ask(&client, &api, &span.filter, next).await {
                Ok(replies) => replies,
                Err(error) => {
                    tracing::debug!(%error, "esrc: direct get failed; retrying");
                    tokio::time::sleep(pauses.pause()).await;
                    continue;
                }
            };
            // Whether the server said where the batch ended, and if more follows.
            let mut answered = false;
            let mut more = false;
            loop {
                let reply = match tokio::time::timeout(timeout, replies.next()).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) | Err(_) => break,
                };
                match reply_kind(&reply) {
                    Reply::End { pending } => {
                        answered = true;
                        more = pending;
                        break;
                    }
                    Reply::Nothing => {
                        answered = true;
                        break;
                    }
                    Reply::Failed => break,
                    Reply::Message(sequence) => {
                        if span.until > 0 && sequence > span.until {
                            return;
                        }
                        next = sequence + 1;
                        pauses.reset();
                        stalled_since = Instant::now();
                        yield Ok(stored_reply(reply, sequence, &span.filter));
                    }
                }
            }
            if more {
                continue;
            }
            if answered && (span.until == 0 || next > span.until) {
                return;
            }
            // A replica behind the leader answered, or none did: ask again.
            tokio::time::sleep(pauses.pause()).await;
        }
    }
}

/// Asks for a batch of the messages on `filter` from `next` on; the replies come on the
/// subscription returned.
async fn ask(
    client: &async_nats::Client,
    api: &str,
    filter: &str,
    next: u64,
) -> Result<async_nats::Subscriber, String> {
    let request = serde_json::json!({
        "seq": next,
        "next_by_subj": filter,
        "batch": DIRECT_BATCH,
    });
    let inbox = client.new_inbox();
    let replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|error| error.to_string())?;
    client
        .publish_with_reply(api.to_owned(), inbox, request.to_string().into())
        .await
        .map_err(|error| error.to_string())?;
    Ok(replies)
}

/// What one reply to a batched direct get says.
enum Reply {
    /// A message, at this sequence.
    Message(u64),
    /// The end of the batch; whether matching messages remain after it.
    End { pending: bool },
    /// Nothing at or after the sequence asked for.
    Nothing,
    /// Anything else: the batch is given up and asked for again.
    Failed,
}

fn reply_kind(reply: &async_nats::Message) -> Reply {
    match reply.status.map(|status| status.as_u16()) {
        // End of batch: the server says how many matching messages remain.
        Some(204) => Reply::End {
            pending: number(reply.headers.as_ref(), "Nats-Num-Pending")
                .is_some_and(|pending| pending > 0),
        },
        Some(404) => Reply::Nothing,
        Some(_) => Reply::Failed,
        None => {
            number(reply.headers.as_ref(), "Nats-Sequence").map_or(Reply::Failed, Reply::Message)
        }
    }
}

/// The stored message a direct get answered with (its subject from its header, or the
/// filter's when it is a single subject).
fn stored_reply(reply: async_nats::Message, sequence: u64, filter: &str) -> Stored {
    let subject = reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get("Nats-Subject"))
        .map_or_else(|| filter.to_owned(), |value| value.as_str().to_owned());
    Stored {
        subject: subject.into(),
        sequence,
        headers: reply.headers,
        payload: reply.payload,
    }
}

/// Several reads in sequence order, each already in sequence order.
pub(crate) fn merged(mut reads: Vec<Messages>) -> impl Stream<Item = Result<Stored, Error>> + Send {
    async_stream::stream! {
        let mut heads: Vec<Option<Stored>> = Vec::with_capacity(reads.len());
        for read in &mut reads {
            match read.next().await {
                Some(Ok(stored)) => heads.push(Some(stored)),
                Some(Err(error)) => {
                    yield Err(error);
                    return;
                }
                None => heads.push(None),
            }
        }
        loop {
            let lowest = heads
                .iter()
                .enumerate()
                .filter_map(|(index, head)| head.as_ref().map(|head| (head.sequence, index)))
                .min();
            let Some((_, index)) = lowest else {
                return;
            };
            let refill = match reads[index].next().await {
                Some(Ok(stored)) => Some(stored),
                Some(Err(error)) => {
                    yield Err(error);
                    return;
                }
                None => None,
            };
            if let Some(stored) = std::mem::replace(&mut heads[index], refill) {
                yield Ok(stored);
            }
        }
    }
}

/// Deletes its consumer when dropped, from a background task.
pub(crate) struct Ephemeral {
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

/// Where read consumers are made, and by whom.
#[derive(Clone, Debug)]
pub(crate) struct Consumers {
    /// Deletes consumers.
    pub(crate) context: jetstream::Context,
    /// Makes consumers: its short timeout lets a creation that a cluster placed on a node
    /// that just died be given up and tried again at once.
    pub(crate) creator: jetstream::Context,
    pub(crate) stream: String,
}

type Consumer = jetstream::consumer::Consumer<pull::Config>;

impl Consumers {
    /// A consumer of `filters` from sequence `next`, and the guard that deletes it; or,
    /// when it cannot be made for now (an election, a lost connection), `None` after a
    /// pause; or the error, when a retry cannot help (the stream is gone, access was
    /// revoked): the read ends with it.
    pub(crate) async fn make(
        &self,
        filters: &[String],
        next: u64,
        pauses: &mut Backoff,
    ) -> Result<Option<(Consumer, Ephemeral)>, Error> {
        match self.try_make(filters, next).await {
            Ok(made) => Ok(Some(made)),
            Err(error) => {
                let error = consumer_error(error);
                if !error.is_retryable() {
                    return Err(error);
                }
                tracing::warn!(error = %esrc_core::Chain(&error), next, "esrc: cannot create a read consumer; retrying");
                tokio::time::sleep(pauses.pause()).await;
                Ok(None)
            }
        }
    }

    async fn try_make(
        &self,
        filters: &[String],
        next: u64,
    ) -> Result<(Consumer, Ephemeral), jetstream::stream::ConsumerError> {
        let config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ack_policy: AckPolicy::None,
            filter_subjects: filters.to_vec(),
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        // async-nats futures are large; boxing keeps them off the caller's stack.
        let consumer =
            Box::pin(self.creator.create_consumer_on_stream(config, &self.stream)).await?;
        let guard = Ephemeral {
            context: self.context.clone(),
            stream: consumer.cached_info().stream_name.clone(),
            name: consumer.cached_info().name.clone(),
        };
        Ok((consumer, guard))
    }
}

/// A consumer's creation error, classified: a JetStream refusal by its code (async-nats
/// keeps it in the error's kind, not among its sources), a timeout or a failed request as
/// retryable, a bad name or type as permanent.
fn consumer_error(error: jetstream::stream::ConsumerError) -> Error {
    use jetstream::stream::ConsumerErrorKind;
    match error.kind() {
        ConsumerErrorKind::JetStream(refused) => crate::error::jetstream(&refused),
        ConsumerErrorKind::InvalidName | ConsumerErrorKind::InvalidConsumerType => {
            crate::error::fatal(error)
        }
        _ => client(error),
    }
}

/// The messages on `filters` from `start` that were stored when the read began, through
/// consumers (made again after the last message yielded if one fails). A read that makes
/// no progress for `patience` fails (retryable).
pub(crate) fn pending(
    consumers: Consumers,
    filters: Vec<String>,
    start: u64,
    patience: Duration,
) -> impl Stream<Item = Result<Stored, Error>> + Send {
    async_stream::stream! {
        let mut next = start.max(1);
        let mut pauses = pauses();
        let mut stalled_since = Instant::now();
        loop {
            if stalled_since.elapsed() > patience {
                yield Err(transient(NatsError::Stalled {
                    sequence: next,
                    waited: patience,
                }));
                return;
            }
            let (consumer, _guard) = match consumers.make(&filters, next, &mut pauses).await {
                Ok(Some(made)) => made,
                Ok(None) => continue,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let mut pending = consumer.cached_info().num_pending;
            // Deliveries of this consumer are numbered 1, 2, … without gaps.
            let mut delivered: u64 = 0;
            let why = 'batches: loop {
                if pending == 0 {
                    return;
                }
                let size = usize::try_from(pending.min(1_000)).unwrap_or(1_000);
                let batch = Box::pin(consumer.fetch().max_messages(size).messages()).await;
                let mut batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => break error.to_string(),
                };
                let mut received = 0;
                while let Some(message) = batch.next().await {
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => break 'batches error.to_string(),
                    };
                    match check(&message, &mut delivered) {
                        Ok((sequence, left)) => {
                            received += 1;
                            pauses.reset();
                            stalled_since = Instant::now();
                            next = sequence + 1;
                            pending = left;
                            yield Ok(stored(message, sequence));
                        }
                        Err(why) => break 'batches why,
                    }
                }
                if received == 0 {
                    // What was pending is gone (purged meanwhile).
                    return;
                }
            };
            tracing::warn!(%why, next, "esrc: read consumer lost; recreating it after the last delivered message");
            tokio::time::sleep(pauses.pause()).await;
        }
    }
}

pub(crate) fn stored(message: Message, sequence: u64) -> Stored {
    let message = message.message;
    Stored {
        subject: message.subject,
        sequence,
        headers: message.headers,
        payload: message.payload,
    }
}

fn number(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

/// The message's stream sequence and how many messages are left after it, if it is the
/// consumer's next delivery; otherwise why not.
pub(crate) fn check(message: &Message, delivered: &mut u64) -> Result<(u64, u64), String> {
    let info = message.info().map_err(|error| error.to_string())?;
    if info.consumer_sequence != *delivered + 1 {
        return Err(format!(
            "delivery {} arrived after {}: a message was lost on the way",
            info.consumer_sequence, delivered
        ));
    }
    *delivered = info.consumer_sequence;
    Ok((info.stream_sequence, info.pending))
}

/// The pauses between a read's retries: doubling from 25 ms up to [`MAX_BACKOFF`].
pub(crate) fn pauses() -> Backoff {
    Backoff::new(Duration::from_millis(25), MAX_BACKOFF)
}
