//! The raw-client baselines: the same rows, headers and commit pattern as esrc, written
//! by hand with sqlx, async-nats, or a `Vec` behind a lock.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError, RwLock};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::StreamExt;
use sqlx::{AssertSqlSafe, PgPool, Row};
use uuid::Uuid;

use crate::BoxError;
use crate::model::{Counter, CounterEvent};

/// What a baseline does for each workload.
#[allow(async_fn_in_trait)]
pub trait Raw {
    /// W1: reads the (new) stream, then appends one event expecting it new.
    async fn create(&self, id: Uuid) -> Result<(), BoxError>;
    /// W2, W4, W5: appends `n` events after `version`, in one commit.
    /// (`Send`, so that W4 can run it in 16 spawned tasks, as it runs esrc.)
    fn append(
        &self,
        id: Uuid,
        version: u64,
        n: u64,
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;
    /// W5, informative: appends `n` events as one atomic batch, where the client has to
    /// build one by hand to get what esrc gives (`None`: the plain append already is one).
    async fn append_atomic(&self, id: Uuid, version: u64, n: u64) -> Result<Option<u64>, BoxError> {
        let _ = (id, version, n);
        Ok(None)
    }
    /// W3: reads and decodes one stream, folding it into a counter.
    async fn load(&self, id: Uuid) -> Result<Counter, BoxError>;
    /// W6: reads and decodes every event of the category; returns how many.
    async fn replay(&self) -> Result<u64, BoxError>;
    /// Removes what the baseline created.
    async fn cleanup(&self) -> Result<(), BoxError>;
}

fn payload(amount: u64) -> Result<Vec<u8>, BoxError> {
    Ok(serde_json::to_vec(&CounterEvent::sample(amount))?)
}

fn decode(bytes: &[u8]) -> Result<CounterEvent, BoxError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// A plain `Vec` of encoded events behind a lock.
#[derive(Debug, Default)]
pub struct RawMemory {
    events: RwLock<Vec<(Uuid, u64, Bytes)>>,
}

impl Raw for RawMemory {
    async fn create(&self, id: Uuid) -> Result<(), BoxError> {
        let payload = Bytes::from(payload(1)?);
        let mut events = self.events.write().unwrap_or_else(PoisonError::into_inner);
        if events.iter().any(|(stream, _, _)| *stream == id) {
            return Err("stream exists".into());
        }
        events.push((id, 1, payload));
        Ok(())
    }

    async fn append(&self, id: Uuid, version: u64, n: u64) -> Result<u64, BoxError> {
        let encoded: Vec<Bytes> = (0..n)
            .map(|i| payload(i).map(Bytes::from))
            .collect::<Result<_, _>>()?;
        let mut events = self.events.write().unwrap_or_else(PoisonError::into_inner);
        for (i, payload) in encoded.into_iter().enumerate() {
            events.push((id, version + 1 + i as u64, payload));
        }
        Ok(version + n)
    }

    async fn load(&self, id: Uuid) -> Result<Counter, BoxError> {
        let events = self.events.read().unwrap_or_else(PoisonError::into_inner);
        let mut counter = Counter::default();
        for (_, _, payload) in events.iter().filter(|(stream, _, _)| *stream == id) {
            counter = counter.fold(&decode(payload)?);
        }
        Ok(counter)
    }

    async fn replay(&self) -> Result<u64, BoxError> {
        let events = self.events.read().unwrap_or_else(PoisonError::into_inner);
        let mut count = 0;
        for (_, _, payload) in events.iter() {
            decode(payload)?;
            count += 1;
        }
        Ok(count)
    }

    async fn cleanup(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// sqlx on a table like esrc's (same columns and constraints), with a plain sequence
/// for positions and one autocommitted statement per append.
#[derive(Debug)]
pub struct RawPostgres {
    pool: PgPool,
    schema: String,
}

impl RawPostgres {
    /// Creates the baseline's schema and table.
    pub async fn new(pool: PgPool) -> Result<Self, BoxError> {
        let schema = format!("bench_raw_{}", Uuid::new_v4().simple());
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.events (
                position bigserial PRIMARY KEY,
                category text NOT NULL,
                aggregate_id uuid NOT NULL,
                version bigint NOT NULL,
                event_id uuid NOT NULL UNIQUE,
                created_at timestamptz NOT NULL,
                schema_version integer NOT NULL,
                correlation_id uuid,
                causation_id uuid,
                metadata jsonb,
                payload bytea NOT NULL,
                UNIQUE (category, aggregate_id, version)
             );
             CREATE INDEX ON {schema}.events (category, position);"
        )))
        .execute(&pool)
        .await?;
        Ok(Self { pool, schema })
    }
}

impl Raw for RawPostgres {
    async fn create(&self, id: Uuid) -> Result<(), BoxError> {
        let s = &self.schema;
        let existing = sqlx::query(AssertSqlSafe(format!(
            "SELECT version, payload FROM {s}.events WHERE category = 'Counter' AND aggregate_id = $1 ORDER BY version"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if !existing.is_empty() {
            return Err("stream exists".into());
        }
        self.append(id, 0, 1).await.map(|_| ())
    }

    async fn append(&self, id: Uuid, version: u64, n: u64) -> Result<u64, BoxError> {
        let s = &self.schema;
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let versions: Vec<i64> = (1..=n).map(|i| (version + i) as i64).collect();
        let payloads: Vec<Vec<u8>> = (0..n).map(payload).collect::<Result<_, _>>()?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {s}.events (category, aggregate_id, version, event_id, created_at, schema_version, payload)
             SELECT 'Counter', $1, v, e, now(), 1, p FROM unnest($2::bigint[], $3::uuid[], $4::bytea[]) AS b(v, e, p)"
        )))
        .bind(id)
        .bind(&versions)
        .bind(&ids)
        .bind(&payloads)
        .execute(&self.pool)
        .await?;
        Ok(version + n)
    }

    async fn load(&self, id: Uuid) -> Result<Counter, BoxError> {
        let s = &self.schema;
        let sql = format!(
            "SELECT version, event_id, (extract(epoch FROM created_at) * 1000000)::bigint, schema_version, metadata::text, payload
             FROM {s}.events WHERE category = 'Counter' AND aggregate_id = $1 ORDER BY version"
        );
        let mut rows = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch(&self.pool);
        let mut counter = Counter::default();
        while let Some(row) = rows.next().await {
            let row = row?;
            let payload: &[u8] = row.try_get(5)?;
            counter = counter.fold(&decode(payload)?);
        }
        Ok(counter)
    }

    async fn replay(&self) -> Result<u64, BoxError> {
        let s = &self.schema;
        let sql = format!(
            "SELECT aggregate_id, version, position, event_id, (extract(epoch FROM created_at) * 1000000)::bigint, schema_version, metadata::text, payload
             FROM {s}.events WHERE category = 'Counter' ORDER BY position"
        );
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&self.pool);
        let mut count = 0;
        while let Some(row) = rows.next().await {
            let row = row?;
            let payload: &[u8] = row.try_get(7)?;
            decode(payload)?;
            count += 1;
        }
        Ok(count)
    }

    async fn cleanup(&self) -> Result<(), BoxError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// async-nats JetStream: publishes with the same headers as esrc and a head of the same
/// size in front of the payload (or, [`RawNats::plain`], neither), awaiting the ack;
/// reads with an ordered consumer.
#[derive(Debug)]
pub struct RawNats {
    context: jetstream::Context,
    stream: stream::Stream,
    name: String,
    prefix: String,
    last: Mutex<HashMap<Uuid, u64>>,
    /// Whether messages carry esrc's headers (and the expectation), or none at all.
    esrc_headers: bool,
}

impl RawNats {
    /// Creates the baseline's stream; its messages carry the headers esrc writes.
    pub async fn new(client: async_nats::Client) -> Result<Self, BoxError> {
        Self::with_headers(client, true).await
    }

    /// The plain baseline: messages are published with no header at all (no id, no
    /// expectation), as an application that needs none of esrc's guarantees would.
    pub async fn plain(client: async_nats::Client) -> Result<Self, BoxError> {
        Self::with_headers(client, false).await
    }

    async fn with_headers(
        client: async_nats::Client,
        esrc_headers: bool,
    ) -> Result<Self, BoxError> {
        let id = Uuid::new_v4().simple().to_string();
        let (name, prefix) = (format!("RAW{id}"), format!("raw{id}"));
        let context = jetstream::new(client);
        let stream = context
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                allow_direct: true,
                allow_atomic_publish: true,
                ..Default::default()
            })
            .await?;
        Ok(Self {
            context,
            stream,
            name,
            prefix,
            last: Mutex::default(),
            esrc_headers,
        })
    }

    /// The subject sequence of the stream's last event (0: none yet).
    fn last_sequence(&self, id: Uuid) -> u64 {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    fn remember(&self, id: Uuid, sequence: u64) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sequence);
    }

    fn subject(&self, id: Uuid) -> String {
        format!("{}.Counter.{id}", self.prefix)
    }

    /// The headers esrc writes (its stored format 3), as a raw client would set them.
    fn headers(expected: Option<u64>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::now_v7().to_string().as_str());
        if let Some(expected) = expected {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                expected.to_string().as_str(),
            );
        }
        headers
    }

    /// The payload as stored: with esrc's headers, behind a head as long as format 3's
    /// for these events (7 bytes, and the type's 6).
    fn payload(&self, amount: u64) -> Result<Bytes, BoxError> {
        let payload = payload(amount)?;
        if !self.esrc_headers {
            return Ok(payload.into());
        }
        let mut stored = Vec::with_capacity(HEAD + payload.len());
        stored.extend_from_slice(&[0xE5, 3, 0, 1, 1]);
        stored.extend_from_slice(&[0x80; 7]);
        stored.push(1);
        stored.extend_from_slice(&payload);
        Ok(stored.into())
    }

    /// Decodes a stored payload.
    fn decode(&self, bytes: &[u8]) -> Result<CounterEvent, BoxError> {
        let skip = if self.esrc_headers { HEAD } else { 0 };
        decode(bytes.get(skip..).ok_or("a payload shorter than its head")?)
    }
}

/// The bytes of format 3's head for esrc-bench's events: 7, and their type's 6.
const HEAD: usize = 13;

impl Raw for RawNats {
    async fn create(&self, id: Uuid) -> Result<(), BoxError> {
        let subject = self.subject(id);
        if self
            .stream
            .direct_get_last_for_subject(subject.clone())
            .await
            .is_ok()
        {
            return Err("stream exists".into());
        }
        self.append(id, 0, 1).await.map(|_| ())
    }

    async fn append(&self, id: Uuid, version: u64, n: u64) -> Result<u64, BoxError> {
        let subject = self.subject(id);
        let expected = self.last_sequence(id);
        let mut acks = Vec::with_capacity(n as usize);
        for i in 0..n {
            let payload = self.payload(i)?;
            let ack = if self.esrc_headers {
                let headers = Self::headers((i == 0).then_some(expected));
                self.context
                    .publish_with_headers(subject.clone(), headers, payload)
                    .await?
            } else {
                self.context.publish(subject.clone(), payload).await?
            };
            acks.push(ack);
        }
        let mut sequence = expected;
        for ack in acks {
            sequence = ack.await?.sequence;
        }
        self.remember(id, sequence);
        Ok(version + n)
    }

    async fn append_atomic(&self, id: Uuid, version: u64, n: u64) -> Result<Option<u64>, BoxError> {
        // ADR-50 by hand, as esrc sends it: the first message and the commit as requests,
        // the others as plain publishes; the expectation on the first.
        if !self.esrc_headers {
            return Ok(None);
        }
        let subject = self.subject(id);
        let expected = self.last_sequence(id);
        let client = self.context.client();
        let batch = Uuid::new_v4().to_string();
        let mut reply = None;
        for i in 0..n {
            let mut headers = Self::headers((i == 0).then_some(expected));
            headers.insert("Nats-Batch-Id", batch.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            if i + 1 == n {
                headers.insert("Nats-Batch-Commit", "1");
            }
            let payload = self.payload(i)?;
            if i == 0 || i + 1 == n {
                reply = Some(
                    client
                        .request_with_headers(subject.clone(), headers, payload)
                        .await?,
                );
            } else {
                client
                    .publish_with_headers(subject.clone(), headers, payload)
                    .await?;
            }
        }
        let reply = reply.ok_or("an empty batch")?;
        let ack: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        let sequence = ack["seq"]
            .as_u64()
            .ok_or_else(|| format!("batch refused: {ack}"))?;
        self.remember(id, sequence);
        Ok(Some(version + n))
    }

    async fn load(&self, id: Uuid) -> Result<Counter, BoxError> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject(id),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut pending = consumer.cached_info().num_pending;
        let mut counter = Counter::default();
        if pending == 0 {
            return Ok(counter);
        }
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message?;
            counter = counter.fold(&self.decode(&message.payload)?);
            pending -= 1;
            if pending == 0 {
                break;
            }
        }
        Ok(counter)
    }

    async fn replay(&self) -> Result<u64, BoxError> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.Counter.*", self.prefix),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let total = consumer.cached_info().num_pending;
        let mut count = 0;
        if total == 0 {
            return Ok(0);
        }
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            self.decode(&message?.payload)?;
            count += 1;
            if count == total {
                break;
            }
        }
        Ok(count)
    }

    async fn cleanup(&self) -> Result<(), BoxError> {
        self.context.delete_stream(&self.name).await?;
        Ok(())
    }
}
