//! Appends, as (atomic batch) publishes checked by the subject's last sequence, and
//! truncation by subject purge. The store itself and its round trips are in `core.rs`,
//! reads in `read.rs`, subscriptions in `subscribe.rs`, snapshots in `snapshot.rs`,
//! checkpoints in `checkpoint.rs`; errors are classified in `error.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use esrc_core::backend::{Backoff, StoredId, check_append, retry_outcome, validate_name};
use esrc_core::{Appended, Error, Expected, NewEvent, Position, Publish, Truncate, Version, Write};
use futures::StreamExt;
use uuid::Uuid;

use crate::codec::{self, AppendTag};
use crate::core::{Ack, NatsStore, Tail};
use crate::error::{self, NatsError, Refusal, fatal, transient};

/// The most events one atomic batch may hold (a server limit).
pub(crate) const MAX_BATCH: usize = 1_000;

/// The pauses before retrying a lost race, random and growing with the losses so that
/// contending writers spread out: up to 0.5 ms after the first loss, doubling to at most
/// 100 ms.
pub(crate) fn lost_races() -> Backoff {
    Backoff::new(Duration::from_micros(500), Duration::from_millis(100)).jitter()
}

/// What one attempt to store an append ended with.
pub(crate) enum Sent {
    Stored {
        sequence: u64,
    },
    /// The server already had these event ids (deduplicated or refused as duplicates).
    Duplicate,
    /// The subject's last sequence was not the expected one.
    WrongLastSequence,
    /// An earlier send of the same event ids is still in flight (a replicated stream
    /// replicating it): look again shortly; the error is for when the deadline has passed.
    InProcess(Error),
}

/// One message of an append, ready to send but for its batch headers.
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) headers: async_nats::HeaderMap,
    pub(crate) payload: Bytes,
}

impl NatsStore {
    /// One attempt to store `events` as versions `first..` of `subject`, expecting the
    /// subject's last sequence to be `last_sequence` (0: no message).
    async fn send(
        &self,
        subject: &str,
        events: &[NewEvent],
        first: Version,
        last_sequence: u64,
    ) -> Result<Sent, Error> {
        let mut messages = Vec::with_capacity(events.len());
        for (event, version) in events.iter().zip(first.get()..) {
            let (headers, payload) = codec::event_message(event, Version(version));
            messages.push(Outgoing {
                subject: subject.to_owned(),
                headers,
                payload,
            });
        }
        messages[0].headers.insert(
            codec::EXPECTED_LAST_SUBJECT_SEQUENCE,
            last_sequence.to_string().as_str(),
        );
        Box::pin(self.send_batch(messages)).await
    }

    /// One attempt to store `messages`, all or none: one publish, or an atomic batch.
    pub(crate) async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Sent, Error> {
        let count = messages.len();
        let batch_id = Uuid::new_v4().to_string();
        let (max, limit) = self.message_limit();
        // Every message is checked before the first is sent: a batch is never cut short
        // by one that is too large, and the error is permanent (a retry cannot fix it).
        let mut largest = 0;
        for message in &messages {
            // Room for the batch headers added below.
            let size = codec::size(&message.headers) + message.payload.len() + 120;
            if max > 0 && size > max {
                return Err(fatal(NatsError::PayloadTooLarge { size, max, limit }));
            }
            largest = largest.max(size);
        }
        let mut ack = Ack::default();
        let mut flow = Flow::new(self, count).await?;
        for (index, mut message) in messages.into_iter().enumerate() {
            let headers = &mut message.headers;
            let last = index + 1 == count;
            if count > 1 {
                headers.insert(codec::BATCH_ID, batch_id.as_str());
                headers.insert(codec::BATCH_SEQUENCE, (index + 1).to_string().as_str());
                if last {
                    headers.insert(codec::BATCH_COMMIT, "1");
                }
            }
            if index > 0 && (last || index.is_multiple_of(FLOW_WINDOW)) {
                // The previous window's reply first: a batch the server stopped taking
                // is not sent on to its end.
                ack = flow.settled(self).await?;
                if ack.error.is_some() {
                    break;
                }
            }
            if index == 0 || last {
                ack = self
                    .request(&message.subject, message.headers, message.payload)
                    .await?;
                if ack.error.is_some() {
                    break;
                }
            } else {
                let reply = flow.reply_for(index);
                let client = &self.inner.client;
                match reply {
                    Some(inbox) => client
                        .publish_with_reply_and_headers(
                            message.subject,
                            inbox,
                            message.headers,
                            message.payload,
                        )
                        .await
                        .map_err(|e| error::publish(e, max))?,
                    None => client
                        .publish_with_headers(message.subject, message.headers, message.payload)
                        .await
                        .map_err(|e| error::publish(e, max))?,
                }
            }
        }
        match ack.error {
            None if ack.duplicate => Ok(Sent::Duplicate),
            None => Ok(Sent::Stored { sequence: ack.seq }),
            Some(refused) => match error::refusal(refused, &self.inner.config.stream) {
                Refusal::LostRace => Ok(Sent::WrongLastSequence),
                Refusal::Duplicate => Ok(Sent::Duplicate),
                Refusal::InProcess(error) => Ok(Sent::InProcess(error)),
                Refusal::TooLarge => Err(self.too_large(largest).await),
                Refusal::Failed(error) => Err(error),
            },
        }
    }

    /// If the append's event ids are stored: `Ok(Some(outcome))` when they are exactly one
    /// earlier append of this subject (a retry), `Err(DuplicateEvent)` for any other reuse.
    ///
    /// It never reads the subject from its first message. With `first` (the version the
    /// append would have stored its first event at, known from its expectation) it reads
    /// the append's own messages there; without, the server said the ids were seen within
    /// its duplicate window, so it reads the subject's messages of twice that window (room
    /// for clocks). Both start points are found by bisecting the sequences.
    pub(crate) async fn retried(
        &self,
        subject: &str,
        events: &[NewEvent],
        first: Option<Version>,
    ) -> Result<Option<Appended>, Error> {
        let Some((start, until, limit)) = self.retry_span(subject, events.len(), first).await?
        else {
            return Ok(None);
        };
        let messages = self.read_subject(subject, start, until).take(limit);
        let found = stored_ids(messages, subject, events).await?;
        let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        retry_outcome(&ids, &found)
    }

    /// Where an earlier append of `count` events would be in `subject`: the first
    /// sequence to read, the subject's last sequence, and how many messages to read at
    /// most; `None` when the subject holds nothing there.
    async fn retry_span(
        &self,
        subject: &str,
        count: usize,
        first: Option<Version>,
    ) -> Result<Option<(u64, u64, usize)>, Error> {
        let Some(last) = Box::pin(self.last_message(subject)).await? else {
            return Ok(None);
        };
        let until = last.sequence;
        let (start, limit) = match first {
            // One more than the append: an earlier append that stored more events is
            // not this one.
            Some(version) => (
                Box::pin(self.sequence_of(subject, version, until)).await?,
                count + 1,
            ),
            None => {
                // An id is a duplicate while its message is younger than the window, and
                // the subject's last message is no younger than the server's clock. The
                // window again on top: room for the clocks of two leaders in turn.
                let since = last.time - 2 * self.inner.config.duplicate_window;
                let start =
                    self.first_message_where(subject, until, |message| message.time >= since);
                (Box::pin(start).await?, usize::MAX)
            }
        };
        Ok(start.map(|start| (start, until, limit)))
    }
}

/// The messages among `messages` that hold one of `events`' ids, each with the append
/// that stored it as far as its headers tell.
async fn stored_ids(
    mut messages: impl futures::Stream<Item = Result<crate::messages::Stored, Error>> + Unpin,
    subject: &str,
    events: &[NewEvent],
) -> Result<Vec<StoredId>, Error> {
    let wanted: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut found = Vec::new();
    // How many messages of each batch this subject holds, counted from the batch's first
    // message here (the one with the subject's expectation; a batch may write other
    // subjects too). A batch whose first message here was not read has no size.
    let mut batch_sizes: HashMap<u128, usize> = HashMap::new();
    while let Some(message) = messages.next().await {
        let message = message?;
        let empty = async_nats::HeaderMap::new();
        let headers = message.headers.as_ref().unwrap_or(&empty);
        let tag = codec::append_tag(headers, &message.payload);
        if let AppendTag::Batch { id } = tag {
            let size = batch_sizes.entry(id).or_insert(usize::MAX);
            // A check of a condition riding on an event names its filter beside the
            // expectation: only the stream's own expectation starts an append here.
            let starts = headers.get(codec::EXPECTED_LAST_SUBJECT_SEQUENCE).is_some()
                && headers.get(codec::EXPECTED_SUBJECT).is_none();
            if starts {
                *size = 1;
            } else {
                *size = size.saturating_add(1);
            }
        }
        let Some((event_id, version)) =
            codec::identity(headers, &message.payload, subject, message.sequence)
        else {
            continue;
        };
        if wanted.contains(&event_id) {
            found.push((event_id, Version(version), message.sequence, tag));
        }
    }
    // A message esrc did not write belongs to no append: its size never matches, so
    // reusing its id is a duplicate. So is part of a batch whose end was not read.
    let found = found
        .into_iter()
        .map(|(event_id, version, sequence, tag)| {
            let (append, append_len) = match tag {
                AppendTag::Alone => (event_id.as_u128(), 1),
                AppendTag::Batch { id } => {
                    (id, batch_sizes.get(&id).copied().unwrap_or(usize::MAX))
                }
                AppendTag::Tagged { id, len } => (id, len),
                AppendTag::Foreign => (0, 0),
            };
            StoredId {
                event_id,
                in_stream: true,
                version,
                position: Position(sequence),
                append,
                append_len: Some(append_len),
            }
        })
        .collect();
    Ok(found)
}

/// What looking up a subject's tail before an append found.
enum Lookup {
    /// The expectation holds at this tail: append after it.
    Append(Tail),
    /// An earlier try of this very append was stored: its outcome.
    Done(Appended),
}

impl NatsStore {
    /// The subject's last sequence and version, as far as the caller knows them. A new
    /// stream has none, and a root whose (version, position) this store saw together
    /// needs no lookup; any other root is checked like `Exact`, so that a version and a
    /// position of different events can never store a version twice.
    pub(crate) fn known_tail(&self, category: &str, id: Uuid, expected: Expected) -> Option<Tail> {
        match expected {
            Expected::NoStream => Some(Tail::NONE),
            Expected::Last { version, position } => self
                .remembered(category, id)
                .filter(|known| known.version == version && known.sequence == position.get()),
            // `Any`, `Exact`, and any expectation added later: the subject's tail is looked
            // up and `Expected::matches` decides.
            _ => None,
        }
    }

    /// Looks the subject's tail up and checks the expectation against it; when it does
    /// not hold, the append is either an earlier try's retry (its original outcome) or a
    /// conflict.
    async fn look_up_tail(
        &self,
        subject: &str,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: &[NewEvent],
    ) -> Result<Lookup, Error> {
        let found = self.tail(subject).await?.unwrap_or(Tail::NONE);
        if expected.matches(found.version) {
            return Ok(Lookup::Append(found));
        }
        // Stored by an earlier try with this expectation, it would start just after the
        // expected version.
        let first = expected.version().map(Version::next);
        match Box::pin(self.retried(subject, events, first)).await? {
            Some(original) => Ok(Lookup::Done(original)),
            None => Err(Error::conflict(
                category.to_owned(),
                id,
                expected,
                found.version,
            )),
        }
    }
}

impl Publish for NatsStore {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        esrc_core::backend::traced(
            esrc_core::backend::store_span(crate::core::SYSTEM, "append", category),
            async move {
                if events.iter().any(|event| !event.tags.is_empty()) {
                    // Tagged events are written with their markers, as a decision writes them.
                    let write = Write::new(category, id, events).expect(expected);
                    let mut appended =
                        Box::pin(esrc_core::Decide::append_if(self, vec![write], None)).await?;
                    return Ok(appended.remove(0));
                }
                check_append(category, &events, MAX_BATCH)?;
                let subject = self.subject(category, id);
                let mut tail = self.known_tail(category, id, expected);
                let deadline = tokio::time::Instant::now() + self.inner.config.append_deadline;
                let mut losses = lost_races();
                loop {
                    let known = match tail.take() {
                        Some(known) => known,
                        None => match self
                            .look_up_tail(&subject, category, id, expected, &events)
                            .await?
                        {
                            Lookup::Append(found) => found,
                            Lookup::Done(original) => return Ok(original),
                        },
                    };
                    let sent = Box::pin(self.send(
                        &subject,
                        &events,
                        known.version.next(),
                        known.sequence,
                    ));
                    match sent.await? {
                        Sent::Stored { sequence } => {
                            let version = Version(known.version.get() + events.len() as u64);
                            self.inner
                                .tails
                                .remember(category, id, version, Position(sequence));
                            return Ok(Appended::new(version, Position(sequence)));
                        }
                        Sent::Duplicate => {
                            return match Box::pin(self.retried(&subject, &events, None)).await? {
                                Some(original) => Ok(original),
                                None => Err(Error::duplicate_event(events[0].event_id)),
                            };
                        }
                        // Another writer won: the subject's real tail decides between a conflict
                        // and another try (`Any`, or a tail that is a truncation marker at the
                        // expected version). Contention delays `Any`; only the deadline stops it.
                        Sent::WrongLastSequence => {
                            if tokio::time::Instant::now() >= deadline {
                                return Err(transient(NatsError::Contended(
                                    self.inner.config.append_deadline,
                                )));
                            }
                            if expected == Expected::Any {
                                tokio::time::sleep(losses.pause()).await;
                            }
                        }
                        // The same events sent before (a try that was dropped, or is racing
                        // this one) are being stored: once they are, the lookup finds them.
                        Sent::InProcess(error) => {
                            if tokio::time::Instant::now() >= deadline {
                                return Err(error);
                            }
                            tokio::time::sleep(losses.pause()).await;
                        }
                    }
                }
            },
        )
        .await
    }
}

impl Truncate for NatsStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        validate_name(category)?;
        let subject = self.subject(category, id);
        let deadline = tokio::time::Instant::now() + self.inner.config.append_deadline;
        let mut losses = lost_races();
        loop {
            let Some(tail) = self.tail(&subject).await? else {
                return Ok(());
            };
            let keep_from = if before > tail.version {
                // Removing every event: purging a whole subject would reset its last
                // sequence and reopen it to `NoStream`. Leave a marker holding the version.
                let mut marker = codec::marker_headers(tail.version);
                marker.insert(
                    codec::EXPECTED_LAST_SUBJECT_SEQUENCE,
                    tail.sequence.to_string().as_str(),
                );
                let size = codec::size(&marker);
                let ack = self.request(&subject, marker, Bytes::new()).await?;
                match ack
                    .error
                    .map(|e| error::refusal(e, &self.inner.config.stream))
                {
                    None => ack.seq,
                    Some(Refusal::LostRace) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(transient(NatsError::Contended(
                                self.inner.config.append_deadline,
                            )));
                        }
                        tokio::time::sleep(losses.pause()).await;
                        continue;
                    }
                    // A fresh marker id cannot be a duplicate; look again.
                    Some(Refusal::Duplicate | Refusal::InProcess(_)) => continue,
                    Some(Refusal::TooLarge) => return Err(self.too_large(size).await),
                    Some(Refusal::Failed(error)) => return Err(error),
                }
            } else {
                match Box::pin(self.sequence_of(&subject, before, tail.sequence)).await? {
                    Some(sequence) => sequence,
                    None => return Ok(()),
                }
            };
            let purge = self
                .inner
                .stream
                .purge()
                .filter(subject.as_str())
                .sequence(keep_from);
            Box::pin(purge.into_future()).await.map_err(error::client)?;
            return Ok(());
        }
    }
}

/// How many messages of an atomic batch go out between two waits for the server: every
/// `FLOW_WINDOW`th message in a batch's middle asks for the server's (empty) reply, and
/// the next window, or the commit, waits for it (ADR-50's flow control). A batch the
/// server stopped taking (it restarted, or abandoned the batch) ends there instead of
/// being sent to its end; a batch of up to `FLOW_WINDOW + 1` messages never waits.
pub(crate) const FLOW_WINDOW: usize = 100;

/// The flow control of one atomic batch: the inbox the middle messages' replies come to,
/// and whether a reply is still awaited.
struct Flow {
    replies: Option<(String, async_nats::Subscriber)>,
    awaited: bool,
}

impl Flow {
    /// An inbox only for a batch long enough to have a middle message that asks.
    async fn new(store: &NatsStore, count: usize) -> Result<Flow, Error> {
        let mut replies = None;
        if count > FLOW_WINDOW + 1 {
            let client = &store.inner.client;
            let inbox = client.new_inbox();
            let subscriber = client.subscribe(inbox.clone()).await.map_err(transient)?;
            replies = Some((inbox, subscriber));
        }
        Ok(Flow {
            replies,
            awaited: false,
        })
    }

    /// The reply subject of the message at `index`, if it asks for one.
    fn reply_for(&mut self, index: usize) -> Option<String> {
        let (inbox, _) = self.replies.as_ref()?;
        if !index.is_multiple_of(FLOW_WINDOW) {
            return None;
        }
        self.awaited = true;
        Some(inbox.clone())
    }

    /// Waits for the reply still awaited, if any: an empty one, or the server's refusal.
    async fn settled(&mut self, store: &NatsStore) -> Result<Ack, Error> {
        let Some((inbox, subscriber)) = self.replies.as_mut() else {
            return Ok(Ack::default());
        };
        if !std::mem::take(&mut self.awaited) {
            return Ok(Ack::default());
        }
        let timeout = store.inner.config.request_timeout;
        let timed_out = || {
            let error =
                async_nats::RequestError::from(async_nats::client::RequestErrorKind::TimedOut);
            error::request(error, inbox, store.max_payload())
        };
        let reply = tokio::time::timeout(timeout, subscriber.next())
            .await
            .map_err(|_| timed_out())?
            .ok_or_else(timed_out)?;
        Ack::read(&reply.payload)
    }
}
