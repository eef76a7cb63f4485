//! Options of a [`NatsStore`](crate::NatsStore), and the stream they require.

use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv};
use esrc_core::{Error, validate_name};

use crate::error::{NatsError, check_server_version, fatal, transient};
use crate::store::NatsStore;

/// Builds a [`NatsStore`]: stream, subject prefix and storage settings.
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
#[derive(Clone, Debug)]
pub struct NatsStoreBuilder {
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) storage: StorageType,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Duration,
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
    pub fn storage(mut self, storage: StorageType) -> Self {
        self.storage = storage;
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

    /// Connects to `url` and builds the store.
    pub async fn connect(self, url: &str) -> Result<NatsStore, Error> {
        let client = async_nats::connect(url).await.map_err(transient)?;
        self.build(client).await
    }

    /// Builds the store on a connected client: checks the server version, creates the
    /// stream and buckets if missing, and refuses an existing stream whose configuration
    /// conflicts with what the store needs.
    pub async fn build(self, client: async_nats::Client) -> Result<NatsStore, Error> {
        validate_name(&self.stream)?;
        validate_name(&self.prefix)?;
        check_server_version(&client.server_info().version)?;
        let context = jetstream::new(client.clone());
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

    async fn ensure_stream(&self, context: &jetstream::Context) -> Result<stream::Stream, Error> {
        match context.get_stream(&self.stream).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(transient)?;
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
                .map_err(fatal),
            Err(error) => Err(transient(error)),
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

    async fn ensure_bucket(
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
                .map_err(transient),
        }
    }
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(e)
        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}
