//! The store: appends as (atomic batch) publishes checked by the subject's last
//! sequence, finite reads by batched direct gets and live ones through short-lived
//! consumers (see `read.rs`), truncation by subject purge, snapshots and checkpoints in
//! key-value buckets. Errors are classified in `error.rs`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use esrc_core::backend::{StoredId, check_append, retry_outcome, validate_name};
use esrc_core::{
    Appended, Envelope, Error, Expected, NewEvent, Position, Publish, Truncate, Version,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use uuid::Uuid;

use crate::codec::{self, AppendTag, header};
use crate::config::NatsStoreBuilder;
use crate::error::{self, ApiError, NatsError, Refusal, fatal, transient};
use crate::read::{self, Messages, Span};

/// The most events one atomic batch may hold (a server limit).
const MAX_BATCH: usize = 1_000;

/// How long the creation of a read consumer may take before it is tried again.
const CONSUMER_CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A NATS JetStream event store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct NatsStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The last known (version, sequence) of recently used subjects, so that reading a
    /// stream after a known version starts at the right sequence instead of the first.
    pub(crate) tails: std::sync::Mutex<HashMap<String, (u64, u64)>>,
    pub(crate) client: async_nats::Client,
    pub(crate) context: jetstream::Context,
    /// Makes and deletes read consumers (see `read.rs`).
    pub(crate) consumers: read::Consumers,
    /// Whether the stream has more than one replica: then reads and lookups must not
    /// trust a single replica, nor wait on a consumer's placement (see `read.rs`).
    pub(crate) replicated: bool,
    pub(crate) stream: jetstream::stream::Stream,
    pub(crate) snapshots: kv::Store,
    pub(crate) checkpoints: kv::Store,
    pub(crate) config: NatsStoreBuilder,
}

impl fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsStore")
            .field("stream", &self.inner.config.stream)
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

/// The last message of a subject: an event or a truncation marker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    pub(crate) sequence: u64,
    pub(crate) version: Version,
}

/// A publish acknowledgement, or the error the server sent instead.
#[derive(Debug, Default, Deserialize)]
struct Ack {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
}

/// A pause of random length before retrying a lost race, growing with the losses so
/// that contending writers spread out: up to 0.5 ms after the first loss, doubling to at
/// most 100 ms.
fn jitter(losses: u32) -> std::time::Duration {
    let cap = (500u64 << losses.min(10)).min(100_000);
    let random = Uuid::new_v4().as_u64_pair().0;
    std::time::Duration::from_micros(random % cap)
}

/// What one attempt to store an append ended with.
enum Sent {
    Stored {
        sequence: u64,
    },
    /// The server already had these event ids (deduplicated or refused as duplicates).
    Duplicate,
    /// The subject's last sequence was not the expected one.
    WrongLastSequence,
}

impl NatsStore {
    /// A builder for the stream, prefix and storage options.
    pub fn builder() -> NatsStoreBuilder {
        NatsStoreBuilder::default()
    }

    /// Connects to `url` with the default options (stream `ESRC`, prefix `esrc`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// A store on a connected client with the default options.
    pub async fn new(client: async_nats::Client) -> Result<Self, Error> {
        Self::builder().build(client).await
    }

    pub(crate) fn from_parts(
        client: async_nats::Client,
        context: jetstream::Context,
        stream: jetstream::stream::Stream,
        snapshots: kv::Store,
        checkpoints: kv::Store,
        config: NatsStoreBuilder,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tails: std::sync::Mutex::default(),
                consumers: read::Consumers {
                    context: context.clone(),
                    creator: jetstream::ContextBuilder::new()
                        .timeout(config.request_timeout.min(CONSUMER_CREATE_TIMEOUT))
                        .build(client.clone()),
                    stream: config.stream.clone(),
                },
                replicated: stream.cached_info().config.num_replicas > 1,
                client,
                context,
                stream,
                snapshots,
                checkpoints,
                config,
            }),
        }
    }

    /// The client the store uses.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The name of the stream holding the events.
    pub fn stream_name(&self) -> &str {
        &self.inner.config.stream
    }

    /// The subject prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// Deletes the stream and both key-value buckets, with everything in them.
    pub async fn destroy(&self) -> Result<(), Error> {
        let config = &self.inner.config;
        let context = &self.inner.context;
        context
            .delete_stream(&config.stream)
            .await
            .map_err(error::client)?;
        for what in ["snapshots", "checkpoints"] {
            context
                .delete_key_value(format!("{}_{what}", config.prefix))
                .await
                .map_err(error::client)?;
        }
        Ok(())
    }

    /// Remembers that `subject`'s event at `version` has sequence `sequence`.
    pub(crate) fn remember(&self, subject: &str, version: Version, sequence: u64) {
        const MAX_REMEMBERED: usize = 65_536;
        let mut tails = self
            .inner
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tails.len() >= MAX_REMEMBERED && !tails.contains_key(subject) {
            tails.clear();
        }
        tails.insert(subject.to_owned(), (version.get(), sequence));
    }

    /// The remembered last (version, sequence) of `subject`.
    pub(crate) fn remembered(&self, subject: &str) -> Option<Tail> {
        let tails = self
            .inner
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tails.get(subject).map(|(version, sequence)| Tail {
            sequence: *sequence,
            version: Version(*version),
        })
    }

    /// Where to start reading `subject` for the events after `after`: just after the
    /// remembered sequence of `after`, or at the beginning.
    pub(crate) fn start_after(&self, subject: &str, after: Version) -> u64 {
        let tails = self
            .inner
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match tails.get(subject) {
            Some((version, sequence)) if *version == after.get() => *sequence,
            _ => 0,
        }
    }

    pub(crate) fn subject(&self, category: &str, id: Uuid) -> String {
        format!("{}.{category}.{id}", self.inner.config.prefix)
    }

    pub(crate) fn filter(&self, category: &str) -> String {
        format!("{}.{category}.*", self.inner.config.prefix)
    }

    /// A finite read of `spans` (which share one start), in sequence order: through a
    /// consumer on a stream with one replica, else by direct gets, merged.
    pub(crate) fn read(&self, spans: Vec<Span>) -> Messages {
        let config = &self.inner.config;
        if !self.inner.replicated {
            let start = spans.iter().map(|span| span.start).min().unwrap_or(1);
            let filters = spans.into_iter().map(|span| span.filter).collect();
            let consumers = self.inner.consumers.clone();
            return Box::pin(read::pending(
                consumers,
                filters,
                start,
                config.read_timeout,
            ));
        }
        let mut reads: Vec<Messages> = spans
            .into_iter()
            .map(|span| {
                let (client, stream) = (self.inner.client.clone(), config.stream.clone());
                let read = read::direct(
                    client,
                    stream,
                    span,
                    config.request_timeout,
                    config.read_timeout,
                );
                Box::pin(read) as Messages
            })
            .collect();
        match reads.len() {
            0 => Box::pin(futures::stream::empty()),
            1 => reads.remove(0),
            _ => Box::pin(read::merged(reads)),
        }
    }

    /// The messages of one subject from `start`, up to its last message `until`.
    pub(crate) fn read_subject(&self, subject: &str, start: u64, until: u64) -> Messages {
        self.read(vec![Span {
            filter: subject.to_owned(),
            start,
            until,
        }])
    }

    /// The sequence of the last message matching `filter`, as the leader knows it.
    pub(crate) async fn last_sequence(&self, filter: &str) -> Result<Option<u64>, Error> {
        Ok(self
            .last_message(filter)
            .await?
            .map(|message| message.sequence))
    }

    /// Envelopes of the events (markers skipped) among `messages`.
    pub(crate) fn envelopes(
        &self,
        messages: Messages,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<> {
        let prefix_len = self.inner.config.prefix.len();
        messages.filter_map(move |message| {
            let envelope = match message {
                Ok(message) => codec::envelope(
                    prefix_len,
                    &message.subject,
                    message.sequence,
                    message.headers.as_ref(),
                    message.payload,
                )
                .transpose(),
                Err(error) => Some(Err(error)),
            };
            std::future::ready(envelope)
        })
    }

    /// The last message on `subject`, if any, as the stream's leader knows it (see
    /// `last_message`).
    pub(crate) async fn tail(&self, subject: &str) -> Result<Option<Tail>, Error> {
        let Some(message) = self.last_message(subject).await? else {
            return Ok(None);
        };
        let version = codec::version(&message.headers, subject, message.sequence)?;
        Ok(Some(Tail {
            sequence: message.sequence,
            version: Version(version),
        }))
    }

    /// The last message matching `filter`, as the leader knows it: with one replica, a
    /// direct get (the cheapest lookup); with several, the leader's own API, since a
    /// direct get may be answered by a replica that has not yet seen the latest write.
    pub(crate) async fn last_message(
        &self,
        filter: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, Error> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        // async-nats futures are large; boxing keeps deep call chains off the stack.
        if !self.inner.replicated {
            return match Box::pin(self.inner.stream.direct_get_last_for_subject(filter)).await {
                Ok(message) => Ok(Some(message)),
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(error) => Err(error::client(error)),
            };
        }
        match Box::pin(self.inner.stream.get_last_raw_message_by_subject(filter)).await {
            Ok(message) => Ok(Some(message)),
            Err(error) => match error.kind() {
                LastRawMessageErrorKind::NoMessageFound => Ok(None),
                LastRawMessageErrorKind::JetStream(refused) => Err(error::jetstream(&refused)),
                _ => Err(error::client(error)),
            },
        }
    }

    /// The server's maximum payload (headers included).
    pub(crate) fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// Sends a request and reads the server's acknowledgement.
    async fn request(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Ack, Error> {
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(self.inner.config.request_timeout));
        let reply = Box::pin(self.inner.client.send_request(subject.to_owned(), request))
            .await
            .map_err(|e| error::request(e, subject, self.max_payload()))?;
        if reply.payload.is_empty() {
            return Ok(Ack::default());
        }
        serde_json::from_slice(&reply.payload).map_err(|e| fatal(NatsError::BadReply(e)))
    }

    /// One attempt to store `events` as versions `first..` of `subject`, expecting the
    /// subject's last sequence to be `last_sequence` (0: no message).
    async fn send(
        &self,
        subject: &str,
        events: &[NewEvent],
        first: Version,
        last_sequence: u64,
    ) -> Result<Sent, Error> {
        let count = events.len();
        let batch_id = Uuid::new_v4().to_string();
        let max = self.max_payload();
        // Every message is checked before the first is sent: a batch is never cut short
        // by one that is too large, and the error is permanent (a retry cannot fix it).
        let mut messages = Vec::with_capacity(count);
        for (event, version) in events.iter().zip(first.get()..) {
            let headers = codec::event_headers(event, Version(version))?;
            // Room for the batch and expectation headers added below.
            let size = codec::size(&headers) + event.payload.len() + 200;
            if max > 0 && size > max {
                return Err(fatal(NatsError::PayloadTooLarge { size, max }));
            }
            messages.push(headers);
        }
        let mut ack = Ack::default();
        for (index, (event, mut headers)) in events.iter().zip(messages).enumerate() {
            if index == 0 {
                headers.insert(
                    codec::EXPECTED_LAST_SUBJECT_SEQUENCE,
                    last_sequence.to_string().as_str(),
                );
            }
            let last = index + 1 == count;
            if count > 1 {
                headers.insert(codec::BATCH_ID, batch_id.as_str());
                headers.insert(codec::BATCH_SEQUENCE, (index + 1).to_string().as_str());
                if last {
                    headers.insert(codec::BATCH_COMMIT, "1");
                }
            }
            if index == 0 || last {
                ack = self
                    .request(subject, headers, event.payload.clone())
                    .await?;
                if ack.error.is_some() {
                    break;
                }
            } else {
                self.inner
                    .client
                    .publish_with_headers(subject.to_owned(), headers, event.payload.clone())
                    .await
                    .map_err(|e| error::publish(e, max))?;
            }
        }
        match ack.error {
            None if ack.duplicate => Ok(Sent::Duplicate),
            None => Ok(Sent::Stored { sequence: ack.seq }),
            Some(refused) => match error::refusal(refused, &self.inner.config.stream) {
                Refusal::LostRace => Ok(Sent::WrongLastSequence),
                Refusal::Duplicate => Ok(Sent::Duplicate),
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
        let Some(last) = Box::pin(self.last_message(subject)).await? else {
            return Ok(None);
        };
        let until = last.sequence;
        let (start, limit) = match first {
            Some(version) => (
                Box::pin(self.sequence_of(subject, version, until)).await?,
                events.len(),
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
        let Some(start) = start else {
            return Ok(None);
        };
        let wanted: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
        let mut found = Vec::new();
        // The size of each batch whose last (commit) message was read.
        let mut batch_sizes = HashMap::new();
        let mut stored = self.read_subject(subject, start, until).take(limit);
        while let Some(message) = stored.next().await {
            let message = message?;
            let Some(headers) = message.headers.as_ref() else {
                continue;
            };
            let tag = codec::append_tag(headers);
            if let AppendTag::Batch {
                id,
                place,
                commit: true,
            } = tag
            {
                batch_sizes.insert(id, place);
            }
            let Some(event_id) = header::<Uuid>(headers, codec::MSG_ID) else {
                continue;
            };
            if wanted.contains(&event_id) {
                let version = codec::version(headers, subject, message.sequence).unwrap_or(0);
                found.push((event_id, Version(version), message.sequence, tag));
            }
        }
        // A message esrc did not write belongs to no append: its size never matches, so
        // reusing its id is a duplicate. So is part of a batch whose end was not read.
        let found: Vec<StoredId> = found
            .into_iter()
            .map(|(event_id, version, sequence, tag)| {
                let (append, append_len) = match tag {
                    AppendTag::Alone => (event_id.as_u128(), 1),
                    AppendTag::Batch { id, .. } => {
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
        let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        retry_outcome(&ids, &found)
    }

    /// The sequence of the first message of `subject` at `version` or later, up to
    /// `until`.
    pub(crate) async fn sequence_of(
        &self,
        subject: &str,
        version: Version,
        until: u64,
    ) -> Result<Option<u64>, Error> {
        // A message esrc did not write has no version: it counts as before.
        let at_or_after = |message: &jetstream::message::StreamMessage| {
            codec::version(&message.headers, subject, message.sequence).unwrap_or_default()
                >= version.get()
        };
        Box::pin(self.first_message_where(subject, until, at_or_after)).await
    }

    /// The sequence of the first message of `subject`, up to `until`, for which `wanted`
    /// holds, where it holds for every message after one it holds for (a version, a
    /// time). The sequences are bisected: about log2(`until`) lookups, however long the
    /// subject.
    async fn first_message_where(
        &self,
        subject: &str,
        until: u64,
        wanted: impl Fn(&jetstream::message::StreamMessage) -> bool,
    ) -> Result<Option<u64>, Error> {
        let (mut low, mut high) = (1, until);
        let mut found = None;
        while low <= high {
            let middle = low + (high - low) / 2;
            match Box::pin(self.next_message(subject, middle)).await? {
                Some(message) if message.sequence > high => high = middle - 1,
                Some(message) if wanted(&message) => {
                    found = Some(message.sequence);
                    high = middle - 1;
                }
                Some(message) => low = message.sequence + 1,
                None => high = middle - 1,
            }
        }
        Ok(found)
    }

    /// The first message of `subject` at sequence `from` or later, as the leader knows
    /// it (see `last_message`).
    async fn next_message(
        &self,
        subject: &str,
        from: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, Error> {
        use async_nats::jetstream::stream::{DirectGetErrorKind, RawMessageErrorKind};
        if !self.inner.replicated {
            let get = self
                .inner
                .stream
                .direct_get_next_for_subject(subject, Some(from));
            return match Box::pin(get).await {
                Ok(message) => Ok(Some(message)),
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(error) => Err(error::client(error)),
            };
        }
        let get = self
            .inner
            .stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject)
            .send();
        match Box::pin(get).await {
            Ok(message) => Ok(Some(message)),
            Err(error) => match error.kind() {
                RawMessageErrorKind::NoMessageFound => Ok(None),
                RawMessageErrorKind::JetStream(refused) => Err(error::jetstream(&refused)),
                _ => Err(error::client(error)),
            },
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
        check_append(category, &events, MAX_BATCH)?;
        let subject = self.subject(category, id);
        let conflict = |actual| Error::Conflict {
            category: category.to_owned(),
            id,
            expected,
            actual,
        };
        // The subject's last sequence and version, as far as the caller knows them. A new
        // stream has none, and a root whose (version, position) this store saw together
        // needs no lookup; any other root is checked like `Exact`, so that a version and
        // a position of different events can never store a version twice.
        let mut tail = match expected {
            Expected::NoStream => Some(Tail {
                sequence: 0,
                version: Version::ZERO,
            }),
            Expected::Last { version, position } => self
                .remembered(&subject)
                .filter(|known| known.version == version && known.sequence == position.get()),
            // `Any`, `Exact`, and any expectation added later: the subject's tail is looked
            // up and `Expected::matches` decides.
            _ => None,
        };
        let deadline = tokio::time::Instant::now() + self.inner.config.append_deadline;
        let mut losses = 0;
        loop {
            let known = match tail.take() {
                Some(known) => known,
                None => {
                    let found = self.tail(&subject).await?.unwrap_or(Tail {
                        sequence: 0,
                        version: Version::ZERO,
                    });
                    if !expected.matches(found.version) {
                        // Stored by an earlier try with this expectation, it would start
                        // just after the expected version.
                        let first = expected.version().map(Version::next);
                        let retried = Box::pin(self.retried(&subject, &events, first));
                        if let Some(original) = retried.await? {
                            return Ok(original);
                        }
                        return Err(conflict(found.version));
                    }
                    found
                }
            };
            let sent = Box::pin(self.send(&subject, &events, known.version.next(), known.sequence));
            match sent.await? {
                Sent::Stored { sequence } => {
                    let version = Version(known.version.get() + events.len() as u64);
                    self.remember(&subject, version, sequence);
                    return Ok(Appended {
                        version,
                        position: Position(sequence),
                    });
                }
                Sent::Duplicate => {
                    return match Box::pin(self.retried(&subject, &events, None)).await? {
                        Some(original) => Ok(original),
                        None => Err(Error::DuplicateEvent {
                            event_id: events[0].event_id,
                        }),
                    };
                }
                // Another writer won: the subject's real tail decides between a conflict
                // and another try (`Any`, or a tail that is a truncation marker at the
                // expected version). Contention delays `Any`; only the deadline stops it.
                Sent::WrongLastSequence => {
                    losses += 1;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(transient(NatsError::Contended(
                            self.inner.config.append_deadline,
                        )));
                    }
                    if expected == Expected::Any {
                        tokio::time::sleep(jitter(losses)).await;
                    }
                }
            }
        }
    }
}

impl Truncate for NatsStore {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        validate_name(category)?;
        let subject = self.subject(category, id);
        let deadline = tokio::time::Instant::now() + self.inner.config.append_deadline;
        let mut losses = 0;
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
                let ack = self.request(&subject, marker, Bytes::new()).await?;
                match ack
                    .error
                    .map(|e| error::refusal(e, &self.inner.config.stream))
                {
                    None => ack.seq,
                    Some(Refusal::LostRace) => {
                        losses += 1;
                        if tokio::time::Instant::now() >= deadline {
                            return Err(transient(NatsError::Contended(
                                self.inner.config.append_deadline,
                            )));
                        }
                        tokio::time::sleep(jitter(losses)).await;
                        continue;
                    }
                    // A fresh marker id cannot be a duplicate; look again.
                    Some(Refusal::Duplicate) => continue,
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
