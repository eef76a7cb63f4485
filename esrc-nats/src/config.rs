//! Options of a [`NatsStore`](crate::NatsStore), and the stream they require. Connecting
//! is on the ground floor (`core.rs`).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv};
use esrc_core::Error;
use esrc_core::backend::{
    StoreOption, StoreOptions, parse_duration, parse_flag, parse_option, unknown_option,
};

use crate::error::{self, NatsError, fatal, transient};

/// Where the server keeps the store's stream and buckets (JetStream's storage type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// On disk (the default).
    File,
    /// In the server's memory: lost when it restarts.
    Memory,
}

/// Builds a [`NatsStore`](crate::NatsStore): stream, subject prefix, storage settings and timeouts.
///
/// Defaults: stream `ESRC`, prefix `esrc`, file storage, one replica, a duplicate window
/// of 2 minutes, events kept forever, a request timeout of 5 s, a read timeout of 10 s, a
/// connect timeout of 10 s and an append deadline of 30 s.
///
/// ```no_run
/// # async fn f() -> Result<(), esrc_core::Error> {
/// use std::time::Duration;
/// let store = esrc_nats::NatsStore::builder()
///     .stream("ORDERS")
///     .prefix("orders")
///     .replicas(3)
///     .duplicate_window(Duration::from_secs(600))
///     .connect("nats://localhost:4222")
///     .await?;
/// # Ok(()) }
/// ```
///
/// Its options by name ([`StoreOptions`]: what `esrc::connect` reads from a `nats://`
/// URL's query string, and the `esrc` command too):
///
/// | option | meaning (the builder's method) | default |
/// | --- | --- | --- |
/// | `stream` | the JetStream stream ([`stream`](Self::stream)) | `ESRC` |
/// | `prefix` | the subject prefix ([`prefix`](Self::prefix)) | `esrc` |
/// | `replicas` | the stream's replicas ([`replicas`](Self::replicas)) | 1 |
/// | `storage` | `file` or `memory` ([`storage`](Self::storage)) | `file` |
/// | `duplicate_window` | how long retries are recognised ([`duplicate_window`](Self::duplicate_window)) | `2m` |
/// | `max_age` | how long events are kept, `0s` for ever ([`max_age`](Self::max_age)) | for ever |
/// | `request_timeout` | ([`request_timeout`](Self::request_timeout)) | `5s` |
/// | `read_timeout` | ([`read_timeout`](Self::read_timeout)) | `10s` |
/// | `connect_timeout` | ([`connect_timeout`](Self::connect_timeout)) | `10s` |
/// | `append_deadline` | ([`append_deadline`](Self::append_deadline)) | `30s` |
/// | `creds` | a credentials file: user JWT and nkey seed ([`credentials_file`](Self::credentials_file)) | — |
/// | `nkey` | a user's nkey seed, never printed ([`nkey`](Self::nkey)) | — |
/// | `token` | a token, never printed ([`token`](Self::token)) | — |
/// | `tls_ca` | CA certificates (PEM) to trust; TLS required ([`tls_root_certificates`](Self::tls_root_certificates)) | the system's |
/// | `tls_cert`, `tls_key` | a client certificate and its key, PEM ([`tls_client_certificate`](Self::tls_client_certificate)) | — |
/// | `tls_first` | TLS before the server's `INFO` ([`tls_first`](Self::tls_first)) | `false` |
///
/// A user and password go in the URL (`nats://app:secret@host:4222`); a `tls://` URL
/// requires TLS, trusting the system's CAs unless `tls_ca` says otherwise.
///
/// Durations are written with a unit: `500ms`, `5s`, `2m`, `1h`, `7d`.
#[derive(Clone, Debug)]
pub struct NatsStoreBuilder {
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) storage: StorageType,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) append_deadline: Duration,
    pub(crate) auth: Auth,
}

/// How the client proves who it is and checks the server, beyond a user and password in
/// the URL. Its `Debug` shows which are set, never a token, a seed or a file's content.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    /// A credentials file (a user JWT and its nkey seed), as `nsc` writes it.
    pub(crate) creds: Option<PathBuf>,
    /// A user's nkey seed (`SU…`).
    pub(crate) nkey: Option<String>,
    /// A token.
    pub(crate) token: Option<String>,
    /// CA certificates (PEM) to trust; TLS is then required.
    pub(crate) tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) …
    pub(crate) tls_cert: Option<PathBuf>,
    /// … and its key (PEM).
    pub(crate) tls_key: Option<PathBuf>,
    /// TLS from the first byte, before the server's `INFO` (servers with `handshake_first`).
    pub(crate) tls_first: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |secret: &Option<String>| secret.as_ref().map(|_| "<set>");
        f.debug_struct("Auth")
            .field("creds", &self.creds)
            .field("nkey", &set(&self.nkey))
            .field("token", &set(&self.token))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_first", &self.tls_first)
            .finish()
    }
}

impl Default for NatsStoreBuilder {
    fn default() -> Self {
        Self {
            stream: "ESRC".to_owned(),
            prefix: "esrc".to_owned(),
            storage: StorageType::File,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            request_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            append_deadline: Duration::from_secs(30),
            auth: Auth::default(),
        }
    }
}

impl NatsStoreBuilder {
    /// The JetStream stream holding the events (default `ESRC`).
    #[must_use]
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The subject prefix (default `esrc`): events go to `<prefix>.<category>.<id>`, and
    /// the key-value buckets are `<prefix>_snapshots` and `<prefix>_checkpoints`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// File (default) or memory storage for the stream and buckets.
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = match storage {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        };
        self
    }

    /// How many replicas the stream and buckets keep in a cluster (default 1).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// How long JetStream remembers event ids to drop duplicates (default 2 minutes): the
    /// window in which a retried append is recognised by the server itself.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long events are kept (default: forever). An event store usually keeps them
    /// forever; set this only for streams of short-lived facts.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long one request to the server (an append, a lookup, a batch of a read) waits
    /// for its answer before it fails as retryable (default 5 s). An append that timed
    /// out is an ambiguous outcome: retry it with the same event ids.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a finite read (`replay_one`, `replay`) may go without progress — no
    /// replica answering, or none caught up with the leader — before it fails as
    /// retryable (default 10 s: long enough to ride out a leader election).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) tries to reach a server, and how long
    /// [`build`](Self::build) waits for a client that is still connecting (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an `Expected::Any` append keeps retrying after losing races to other
    /// writers before it gives up with a retryable error (default 30 s). Contention
    /// slows such an append, with backoff and jitter; it never fails it with `Conflict`.
    #[must_use]
    pub fn append_deadline(mut self, deadline: Duration) -> Self {
        self.append_deadline = deadline;
        self
    }

    /// Authenticates with a credentials file (a user JWT and its nkey seed, as `nsc`
    /// writes it): what an account on a NATS operator's system (Synadia Cloud, NGS, a
    /// self-run operator) gives its users. Read when connecting; errors name the file,
    /// never its content.
    #[must_use]
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth.creds = Some(path.into());
        self
    }

    /// Authenticates with a user's nkey seed (`SU…`). Never printed.
    #[must_use]
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth.nkey = Some(seed.into());
        self
    }

    /// Authenticates with a token. Never printed.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth.token = Some(token.into());
        self
    }

    /// Trusts the CA certificates in this PEM file, and requires TLS.
    #[must_use]
    pub fn tls_root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth.tls_ca = Some(path.into());
        self
    }

    /// Presents a client certificate and its key (PEM files), for servers that verify
    /// clients (`verify: true`).
    #[must_use]
    pub fn tls_client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.auth.tls_cert = Some(certificate.into());
        self.auth.tls_key = Some(key.into());
        self
    }

    /// Starts TLS with the first byte, before the server's `INFO` (for servers configured
    /// with `handshake_first`, and proxies that expect TLS at once).
    #[must_use]
    pub fn tls_first(mut self, first: bool) -> Self {
        self.auth.tls_first = first;
        self
    }

    /// The server's version, once the client has heard from a server: a client built with
    /// `retry_on_initial_connect` may still be connecting.
    pub(crate) async fn server_version(
        &self,
        client: &async_nats::Client,
    ) -> Result<String, Error> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            let version = client.server_info().version;
            if !version.is_empty() {
                return Ok(version);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(transient(NatsError::NotConnected {
                    timeout: self.connect_timeout,
                }));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subjects()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: self.storage,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    pub(crate) async fn ensure_stream(
        &self,
        context: &jetstream::Context,
    ) -> Result<stream::Stream, Error> {
        match context.get_stream(&self.stream).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(error::client)?;
                let problems = self.conflicts(&info.config);
                if !problems.is_empty() {
                    return Err(fatal(NatsError::StreamConfig {
                        stream: self.stream.clone(),
                        problems,
                    }));
                }
                Ok(stream)
            }
            Err(error) if is_not_found(&error) => context
                .create_stream(self.stream_config())
                .await
                .map_err(|error| match error.kind() {
                    CreateStreamErrorKind::JetStream(refused) => error::jetstream(&refused),
                    _ => error::client(error),
                }),
            Err(error) => Err(error::client(error)),
        }
    }

    /// What in an existing stream's configuration breaks the store's guarantees.
    pub(crate) fn conflicts(&self, config: &stream::Config) -> Vec<String> {
        let mut problems = Vec::new();
        let subjects = self.subjects();
        if !config.subjects.contains(&subjects) {
            problems.push(format!(
                "its subjects {:?} do not include `{subjects}`",
                config.subjects
            ));
        }
        if !config.allow_atomic_publish {
            problems
                .push("allow_atomic_publish is off (atomic multi-event appends need it)".into());
        }
        if !config.allow_direct {
            problems.push("allow_direct is off (stream reads of the last event need it)".into());
        }
        if config.retention != RetentionPolicy::Limits {
            problems.push(format!(
                "retention is {:?}, which deletes events once consumed (limits is needed)",
                config.retention
            ));
        }
        for (limit, value) in [
            ("max_msgs", config.max_messages),
            ("max_bytes", config.max_bytes),
            ("max_msgs_per_subject", config.max_messages_per_subject),
        ] {
            if value > 0 {
                problems.push(format!(
                    "{limit} is {value}: events would silently be dropped"
                ));
            }
        }
        if config.max_age != self.max_age {
            problems.push(format!(
                "max_age is {:?}, the store was configured with {:?}",
                config.max_age, self.max_age
            ));
        }
        if config.no_ack {
            problems.push(
                "no_ack is on (appends would get no acknowledgement and could not be checked)"
                    .into(),
            );
        }
        if config.deny_purge {
            problems.push("deny_purge is on (truncate needs purge)".into());
        }
        if config.storage != self.storage {
            problems.push(format!(
                "storage is {:?}, the store was configured with {:?}",
                config.storage, self.storage
            ));
        }
        problems
    }

    pub(crate) async fn ensure_bucket(
        &self,
        context: &jetstream::Context,
        what: &str,
    ) -> Result<kv::Store, Error> {
        let bucket = format!("{}_{what}", self.prefix);
        match context.get_key_value(&bucket).await {
            Ok(store) => Ok(store),
            Err(_) => context
                .create_key_value(kv::Config {
                    bucket,
                    history: 1,
                    storage: self.storage,
                    num_replicas: self.replicas,
                    ..Default::default()
                })
                .await
                .map_err(error::client),
        }
    }
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(e)
        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

impl StoreOptions for NatsStoreBuilder {
    const STORE: &'static str = "nats";
    const OPTIONS: &'static [StoreOption] = &[
        StoreOption {
            name: "stream",
            meaning: "the JetStream stream",
            default: "ESRC",
            example: "ORDERS",
        },
        StoreOption {
            name: "prefix",
            meaning: "the subject prefix",
            default: "esrc",
            example: "orders",
        },
        StoreOption {
            name: "replicas",
            meaning: "the stream's replicas",
            default: "1",
            example: "3",
        },
        StoreOption {
            name: "storage",
            meaning: "`file` or `memory`",
            default: "file",
            example: "memory",
        },
        StoreOption {
            name: "duplicate_window",
            meaning: "how long retries are recognised",
            default: "2m",
            example: "10m",
        },
        StoreOption {
            name: "max_age",
            meaning: "how long events are kept (`0s`: for ever)",
            default: "0s",
            example: "720h",
        },
        StoreOption {
            name: "request_timeout",
            meaning: "how long a request may take",
            default: "5s",
            example: "2s",
        },
        StoreOption {
            name: "read_timeout",
            meaning: "how long a read may make no progress",
            default: "10s",
            example: "30s",
        },
        StoreOption {
            name: "connect_timeout",
            meaning: "how long connecting may take",
            default: "10s",
            example: "3s",
        },
        StoreOption {
            name: "append_deadline",
            meaning: "how long a contended append may keep trying",
            default: "30s",
            example: "1m",
        },
        StoreOption {
            name: "creds",
            meaning: "a credentials file (user JWT and nkey seed)",
            default: "",
            example: "/etc/nats/app.creds",
        },
        StoreOption {
            name: "nkey",
            meaning: "a user's nkey seed (never printed)",
            default: "",
            example: "SUAEXAMPLESEED",
        },
        StoreOption {
            name: "token",
            meaning: "a token (never printed)",
            default: "",
            example: "s3cr3t",
        },
        StoreOption {
            name: "tls_ca",
            meaning: "CA certificates (PEM) to trust; requires TLS",
            default: "",
            example: "/etc/nats/ca.pem",
        },
        StoreOption {
            name: "tls_cert",
            meaning: "a client certificate (PEM), with `tls_key`",
            default: "",
            example: "/etc/nats/client.pem",
        },
        StoreOption {
            name: "tls_key",
            meaning: "the client certificate's key (PEM)",
            default: "",
            example: "/etc/nats/client.key",
        },
        StoreOption {
            name: "tls_first",
            meaning: "TLS before the server's `INFO` (`handshake_first`)",
            default: "false",
            example: "true",
        },
    ];

    fn with_option(self, key: &str, value: &str) -> Result<Self, Error> {
        Ok(match key {
            "stream" => self.stream(value),
            "prefix" => self.prefix(value),
            "replicas" => self.replicas(parse_option(key, value, "a number of replicas")?),
            "storage" => self.storage(match value {
                "file" => Storage::File,
                "memory" => Storage::Memory,
                _ => {
                    return Err(Error::invalid_config(format!(
                        "option `storage={value}`: expected `file` or `memory`"
                    )));
                }
            }),
            "duplicate_window" => self.duplicate_window(parse_duration(key, value)?),
            "max_age" => self.max_age(parse_duration(key, value)?),
            "request_timeout" => self.request_timeout(parse_duration(key, value)?),
            "read_timeout" => self.read_timeout(parse_duration(key, value)?),
            "connect_timeout" => self.connect_timeout(parse_duration(key, value)?),
            "append_deadline" => self.append_deadline(parse_duration(key, value)?),
            "creds" => self.credentials_file(value),
            "nkey" => self.nkey(value),
            "token" => self.token(value),
            "tls_ca" => self.tls_root_certificates(value),
            "tls_cert" => {
                let mut builder = self;
                builder.auth.tls_cert = Some(value.into());
                builder
            }
            "tls_key" => {
                let mut builder = self;
                builder.auth.tls_key = Some(value.into());
                builder
            }
            "tls_first" => self.tls_first(parse_flag(key, value)?),
            _ => return Err(unknown_option::<Self>(key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_table_matches_the_parser() {
        esrc_core::backend::check_option_table(NatsStoreBuilder::default).unwrap();
        let set = NatsStoreBuilder::default()
            .with_options([("storage", "memory"), ("replicas", "3"), ("max_age", "1h")])
            .unwrap();
        assert_eq!(set.storage, StorageType::Memory);
        assert_eq!((set.replicas, set.max_age), (3, Duration::from_secs(3600)));
        let error = NatsStoreBuilder::default()
            .with_option("storage", "disk")
            .unwrap_err();
        assert!(
            error.to_string().contains("expected `file` or `memory`"),
            "{error}"
        );
    }
}
