//! The ground floor: the store (client, stream, buckets, options, the cache of stream
//! tails), connecting, subjects, and the low-level round trips that appends, reads,
//! subscriptions, snapshots and checkpoints stand on: requests, lookups of a subject's
//! last or next message, and finite reads of messages (through `messages.rs`). It
//! imports none of the files above it.

use std::fmt;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use esrc_core::backend::{TailCache, validate_name};
use esrc_core::{Envelope, Error, Version};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use uuid::Uuid;

use crate::codec;
use crate::config::NatsStoreBuilder;
use crate::error::{self, ApiError, Limit, NatsError, check_server_version, fatal};
use crate::messages::{Consumers, Messages, Span, direct, merged, pending};

/// How long the creation of a read consumer may take before it is tried again.
const CONSUMER_CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What the store's spans say it is (`esrc_core::trace`).
pub(crate) const SYSTEM: esrc_core::backend::System = esrc_core::backend::System::Messaging("nats");

/// A NATS JetStream event store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct NatsStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The last known event (version, sequence) of recently used streams, so that reading
    /// a stream after a known version starts at the right sequence instead of the first,
    /// and an append expecting that event needs no lookup.
    pub(crate) tails: TailCache,
    pub(crate) client: async_nats::Client,
    pub(crate) context: jetstream::Context,
    /// Makes and deletes read consumers (see `messages.rs`).
    pub(crate) consumers: Consumers,
    /// Whether the stream has more than one replica: then reads and lookups must not
    /// trust a single replica, nor wait on a consumer's placement (see `messages.rs`).
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

impl Tail {
    /// The tail of a subject with no message.
    pub(crate) const NONE: Tail = Tail {
        sequence: 0,
        version: Version::ZERO,
    };
}

/// A publish acknowledgement, or the error the server sent instead.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Ack {
    #[serde(default)]
    pub(crate) error: Option<ApiError>,
    #[serde(default)]
    pub(crate) seq: u64,
    #[serde(default)]
    pub(crate) duplicate: bool,
}

impl Ack {
    /// The acknowledgement in a reply's payload: empty (a batch's flow control) or JSON.
    pub(crate) fn read(payload: &[u8]) -> Result<Ack, Error> {
        if payload.is_empty() {
            return Ok(Ack::default());
        }
        serde_json::from_slice(payload).map_err(|e| fatal(NatsError::BadReply(e)))
    }
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
                tails: TailCache::default(),
                consumers: Consumers {
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

    /// Where to start reading `(category, id)` for the events after `after`: just after
    /// the remembered position of `after`, or at the beginning.
    pub(crate) fn start_after(&self, category: &str, id: Uuid, after: Version) -> u64 {
        match self.inner.tails.get(category, id) {
            Some((version, position)) if version == after => position.get(),
            _ => 0,
        }
    }

    /// The remembered last event of `(category, id)`, as a [`Tail`].
    pub(crate) fn remembered(&self, category: &str, id: Uuid) -> Option<Tail> {
        self.inner
            .tails
            .get(category, id)
            .map(|(version, position)| Tail {
                sequence: position.get(),
                version,
            })
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
            return Box::pin(pending(consumers, filters, start, config.read_timeout));
        }
        let mut reads: Vec<Messages> = spans
            .into_iter()
            .map(|span| {
                let (client, stream) = (self.inner.client.clone(), config.stream.clone());
                let read = direct(
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
            _ => Box::pin(merged(reads)),
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
        let version = codec::version(
            &message.headers,
            &message.payload,
            subject,
            message.sequence,
        )?;
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
        // async-nats futures are large; boxing keeps deep call chains off the stack.
        if !self.inner.replicated {
            return direct_found(
                Box::pin(self.inner.stream.direct_get_last_for_subject(filter)).await,
            );
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

    /// The message at `sequence`, if it is stored, as the leader knows it (see
    /// `last_message`).
    pub(crate) async fn message_at(
        &self,
        sequence: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, Error> {
        if !self.inner.replicated {
            return direct_found(Box::pin(self.inner.stream.direct_get(sequence)).await);
        }
        raw_found(Box::pin(self.inner.stream.get_raw_message(sequence)).await)
    }

    /// The server's maximum payload (headers included).
    pub(crate) fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// The largest message the store may send, and which limit that is: the server's
    /// `max_payload`, or the stream's `max_msg_size` (as read at connect) when smaller.
    pub(crate) fn message_limit(&self) -> (usize, Limit) {
        let server = (self.max_payload(), Limit::ServerMaxPayload);
        let stream = self.inner.stream.cached_info().config.max_message_size;
        match usize::try_from(stream) {
            Ok(stream) if stream > 0 && (server.0 == 0 || stream < server.0) => {
                (stream, Limit::StreamMaxMsgSize)
            }
            _ => server,
        }
    }

    /// The error of a message of `size` bytes the stream refused as too large: its
    /// `max_msg_size` was lowered since the store connected, so it is read again.
    pub(crate) async fn too_large(&self, size: usize) -> Error {
        let max = match Box::pin(self.inner.stream.get_info()).await {
            Ok(info) => usize::try_from(info.config.max_message_size).unwrap_or(0),
            Err(_) => 0,
        };
        error::fatal(NatsError::PayloadTooLarge {
            size,
            max,
            limit: Limit::StreamMaxMsgSize,
        })
    }

    /// Sends a request and reads the server's acknowledgement.
    pub(crate) async fn request(
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
        Ack::read(&reply.payload)
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
            codec::version(
                &message.headers,
                &message.payload,
                subject,
                message.sequence,
            )
            .unwrap_or_default()
                >= version.get()
        };
        Box::pin(self.first_message_where(subject, until, at_or_after)).await
    }

    /// The sequence of the first message of `subject`, up to `until`, for which `wanted`
    /// holds, where it holds for every message after one it holds for (a version, a
    /// time). The sequences are bisected: about log2(`until`) lookups, however long the
    /// subject.
    pub(crate) async fn first_message_where(
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
        if !self.inner.replicated {
            let get = self
                .inner
                .stream
                .direct_get_next_for_subject(subject, Some(from));
            return direct_found(Box::pin(get).await);
        }
        let get = self
            .inner
            .stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject)
            .send();
        raw_found(Box::pin(get).await)
    }
}

/// The subject filters of `categories`, each validated.
pub(crate) fn filters(store: &NatsStore, categories: &[&str]) -> Result<Vec<String>, Error> {
    categories
        .iter()
        .map(|category| validate_name(category).map(|()| store.filter(category)))
        .collect()
}

impl NatsStoreBuilder {
    /// Connects to `url` and builds the store. `url` may list several servers of a
    /// cluster, comma-separated (`nats://a:4222,nats://b:4222`): the client connects to
    /// one and fails over to the others.
    pub async fn connect(self, url: &str) -> Result<NatsStore, Error> {
        let servers = url
            .split(',')
            .map(|server| server.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(fatal)?;
        let tried = servers
            .iter()
            .map(|server| format!("{}:{}", server.host(), server.port()))
            .collect::<Vec<_>>()
            .join(",");
        if !self.auth.tls_first {
            greeted(&servers, self.connect_timeout.min(GREETING)).await?;
        }
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .request_timeout(Some(self.request_timeout));
        let client = self
            .authenticated(options)
            .await?
            .connect(servers)
            .await
            .map_err(|error| error::connect(error, tried))?;
        self.build(client).await
    }

    /// `options` with the builder's credentials and TLS settings.
    async fn authenticated(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, Error> {
        let auth = &self.auth;
        if let Some(path) = &auth.creds {
            options = options.credentials_file(path).await.map_err(|source| {
                fatal(NatsError::Credentials {
                    path: path.clone(),
                    reason: source.kind(),
                })
            })?;
        }
        if let Some(seed) = &auth.nkey {
            options = options.nkey(seed.clone());
        }
        if let Some(token) = &auth.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &auth.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&auth.tls_cert, &auth.tls_key) {
            (Some(cert), Some(key)) => {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => {
                return Err(Error::invalid_config(
                    "a NATS client certificate needs both `tls_cert` and `tls_key`",
                ));
            }
        }
        if auth.tls_first {
            options = options.tls_first();
        }
        Ok(options)
    }

    /// Builds the store on a connected client: checks the server version, creates the
    /// stream and buckets if missing, and refuses an existing stream whose configuration
    /// conflicts with what the store needs.
    pub async fn build(self, client: async_nats::Client) -> Result<NatsStore, Error> {
        validate_name(&self.stream)?;
        validate_name(&self.prefix)?;
        check_server_version(&self.server_version(&client).await?)?;
        let info = client.server_info();
        if !info.jetstream {
            return Err(fatal(NatsError::NoJetStream {
                server: format!("{}:{}", info.host, info.port),
            }));
        }
        let context = jetstream::ContextBuilder::new()
            .timeout(self.request_timeout)
            .build(client.clone());
        let stream = self.ensure_stream(&context).await?;
        let snapshots = self.ensure_bucket(&context, "snapshots").await?;
        let checkpoints = self.ensure_bucket(&context, "checkpoints").await?;
        Ok(NatsStore::from_parts(
            client,
            context,
            stream,
            snapshots,
            checkpoints,
            self,
        ))
    }
}

/// How long a reachable server may take to greet before it is taken for something else.
const GREETING: std::time::Duration = std::time::Duration::from_secs(2);

/// Refuses at once servers that answer but not as NATS (a NATS server greets every
/// connection with an `INFO` line; PostgreSQL, say, waits for the client to speak), rather
/// than waiting the whole connect timeout. When any server greets as NATS, or cannot be
/// reached at all, the client decides (a server that is down is a retryable failure).
async fn greeted(
    servers: &[async_nats::ServerAddr],
    patience: std::time::Duration,
) -> Result<(), Error> {
    use tokio::io::AsyncReadExt;
    let probes = servers
        .iter()
        .filter(|server| !server.is_websocket())
        .map(|server| async move {
            let address = (server.host().to_owned(), server.port());
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(patience, tokio::net::TcpStream::connect(address)).await
            else {
                return true;
            };
            let mut first = [0u8; 4];
            match tokio::time::timeout(patience, stream.read_exact(&mut first)).await {
                Ok(Ok(_)) => first.eq_ignore_ascii_case(b"INFO"),
                // Closed at once: not a NATS greeting, but not ours to judge either.
                Ok(Err(_)) => true,
                Err(_) => false,
            }
        });
    let answers = futures::future::join_all(probes).await;
    if answers.is_empty() || answers.iter().any(|nats| *nats) {
        return Ok(());
    }
    let tried = servers
        .iter()
        .map(|server| format!("{}:{}", server.host(), server.port()))
        .collect::<Vec<_>>()
        .join(",");
    Err(fatal(NatsError::NotNats {
        servers: tried,
        waited: patience,
    }))
}

/// A direct get's answer: the message, `None` when there is none, or the error.
fn direct_found(
    answer: Result<jetstream::message::StreamMessage, jetstream::stream::DirectGetError>,
) -> Result<Option<jetstream::message::StreamMessage>, Error> {
    use async_nats::jetstream::stream::DirectGetErrorKind;
    match answer {
        Ok(message) => Ok(Some(message)),
        Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(error) => Err(error::client(error)),
    }
}

/// The leader's answer to a get by sequence: the message, `None` when there is none, or
/// the error (a JetStream refusal classified by its code).
fn raw_found(
    answer: Result<jetstream::message::StreamMessage, jetstream::stream::RawMessageError>,
) -> Result<Option<jetstream::message::StreamMessage>, Error> {
    use async_nats::jetstream::stream::RawMessageErrorKind;
    match answer {
        Ok(message) => Ok(Some(message)),
        Err(error) => match error.kind() {
            RawMessageErrorKind::NoMessageFound => Ok(None),
            RawMessageErrorKind::JetStream(refused) => Err(error::jetstream(&refused)),
            _ => Err(error::client(error)),
        },
    }
}
