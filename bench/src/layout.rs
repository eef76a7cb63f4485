//! NATS, like with like (`--only layout`): esrc's replay of a category beside raw readers
//! of the *same stream*, varying one thing at a time — what the messages carry (esrc's
//! stored format, no header, one header, the metadata in the payload), the consumer kind
//! (a pull consumer fetched 1,000 at a time as esrc reads, an ordered consumer, batched
//! direct gets) and the stream around the category (shared with three other categories,
//! or a stream of its own). Each reader's CPU time is split between this process and the
//! server (from `/proc`, when the server runs on this machine).
//!
//! Every category holds the same events, written in the same interleaved rounds: for
//! each of 100 aggregates in turn, `per_round` events through esrc (one atomic batch),
//! then the same payloads on the raw categories.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use bytes::{BufMut, Bytes, BytesMut};
use esrc_core::{Position, PublishExt, Replay, Root};
use esrc_nats::NatsStore;
use futures::StreamExt;
use uuid::Uuid;

use crate::BoxError;
use crate::model::{Counter, CounterCommand, CounterEvent};
use crate::report::Line;

/// How the raw categories' messages are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The payload alone.
    Plain,
    /// The payload and one header of the expectation's size.
    OneHeader,
    /// One header, and esrc's metadata (event id, version, schema, time) in front of the
    /// payload: 16 + 8 + 4 + 8 bytes.
    Envelope,
    /// As [`Shape::Envelope`], with two headers of the sizes of an atomic batch's id and
    /// sequence instead of one (what every event of a multi-event append carries).
    Batched,
    /// One message per append: one header, then each event as its length (4 bytes), its
    /// metadata and its payload.
    Grouped,
}

impl Shape {
    const ALL: [Shape; 4] = [
        Shape::Plain,
        Shape::OneHeader,
        Shape::Envelope,
        Shape::Batched,
    ];

    fn category(self) -> &'static str {
        match self {
            Shape::Plain => "Plain",
            Shape::OneHeader => "OneHeader",
            Shape::Envelope => "Envelope",
            Shape::Batched => "Batched",
            Shape::Grouped => "Grouped",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::Plain => "no header",
            Shape::OneHeader => "one header",
            Shape::Envelope => "one header, metadata in the payload",
            Shape::Batched => "two headers, metadata in the payload",
            Shape::Grouped => "one message per append",
        }
    }

    fn message(self, version: u64, payload: &[u8]) -> (Option<HeaderMap>, Bytes) {
        let header = || {
            let mut headers = HeaderMap::new();
            headers.insert(
                "Esrc-Expected",
                version.saturating_sub(1).to_string().as_str(),
            );
            headers
        };
        let batch = || {
            let mut headers = HeaderMap::new();
            headers.insert("Esrc-Batch", Uuid::nil().to_string().as_str());
            headers.insert("Esrc-Batch-Seq", version.to_string().as_str());
            headers
        };
        match self {
            Shape::Plain => (None, Bytes::copy_from_slice(payload)),
            Shape::OneHeader => (Some(header()), Bytes::copy_from_slice(payload)),
            Shape::Envelope | Shape::Batched | Shape::Grouped => {
                let mut bytes = BytesMut::with_capacity(ENVELOPE + payload.len());
                enveloped(&mut bytes, version, payload);
                let headers = if self == Shape::Batched {
                    batch()
                } else {
                    header()
                };
                (Some(headers), bytes.freeze())
            }
        }
    }

    /// The message of a [`Shape::Grouped`] append of `payloads` after `version`.
    fn grouped(version: u64, payloads: &[Vec<u8>]) -> (HeaderMap, Bytes) {
        let mut bytes = BytesMut::new();
        for (i, payload) in payloads.iter().enumerate() {
            bytes.put_u32(u32::try_from(ENVELOPE + payload.len()).unwrap_or(u32::MAX));
            enveloped(&mut bytes, version + 1 + i as u64, payload);
        }
        let mut headers = HeaderMap::new();
        headers.insert("Esrc-Expected", version.to_string().as_str());
        (headers, bytes.freeze())
    }

    /// Decodes the events of a message; how many there were.
    fn decode(self, bytes: &[u8]) -> Result<u64, BoxError> {
        let event = |bytes: &[u8]| -> Result<(), BoxError> {
            serde_json::from_slice::<CounterEvent>(bytes)?;
            Ok(())
        };
        let short = || -> BoxError { "a message shorter than its envelope".into() };
        match self {
            Shape::Plain | Shape::OneHeader => event(bytes).map(|()| 1),
            Shape::Envelope | Shape::Batched => {
                event(bytes.get(ENVELOPE..).ok_or_else(short)?).map(|()| 1)
            }
            Shape::Grouped => {
                let (mut rest, mut events) = (bytes, 0);
                while let Some((length, tail)) = rest.split_first_chunk::<4>() {
                    let length = u32::from_be_bytes(*length) as usize;
                    let one = tail.get(..length).ok_or_else(short)?;
                    event(one.get(ENVELOPE..).ok_or_else(short)?)?;
                    rest = &tail[length..];
                    events += 1;
                }
                Ok(events)
            }
        }
    }
}

/// The payload of an event esrc stored in format 3, after its head (the crate README of
/// esrc-nats documents the layout), read by hand as another NATS client would.
fn after_head(bytes: &[u8]) -> Result<&[u8], BoxError> {
    fn varint(rest: &mut &[u8]) -> Result<usize, BoxError> {
        let end = rest
            .iter()
            .position(|byte| byte & 0x80 == 0)
            .ok_or("a cut varint")?;
        let value = rest[..=end].iter().rev().fold(0_usize, |value, byte| {
            (value << 7) | usize::from(byte & 0x7f)
        });
        *rest = &rest[end + 1..];
        Ok(value)
    }
    fn skip(rest: &mut &[u8], len: usize) -> Result<(), BoxError> {
        *rest = rest.get(len..).ok_or("a cut head")?;
        Ok(())
    }
    let [0xE5, 3, flags, tail @ ..] = bytes else {
        return Err("not an esrc event of format 3".into());
    };
    let mut rest = tail;
    if flags & 32 != 0 {
        skip(&mut rest, 16)?;
    }
    for _ in 0..3 {
        varint(&mut rest)?;
    }
    for flag in [1, 2] {
        if flags & flag != 0 {
            skip(&mut rest, 16)?;
        }
    }
    // Key/values (pairs of texts), the type (one text), tags (texts).
    for (flag, per_item, counted) in [(4, 2, true), (8, 1, false), (16, 1, true)] {
        if flags & flag != 0 {
            let items = if counted { varint(&mut rest)? } else { 1 };
            for _ in 0..items * per_item {
                let len = varint(&mut rest)?;
                skip(&mut rest, len)?;
            }
        }
    }
    Ok(rest)
}

/// Puts an event's metadata (id, version, schema, time) and its payload into `bytes`.
fn enveloped(bytes: &mut BytesMut, version: u64, payload: &[u8]) {
    bytes.put_slice(Uuid::now_v7().as_bytes());
    bytes.put_u64(version);
    bytes.put_u32(1);
    bytes.put_u64(1_700_000_000_000_000 + version);
    bytes.put_slice(payload);
}

/// The bytes [`Shape::Envelope`] puts before the payload.
const ENVELOPE: usize = 16 + 8 + 4 + 8;

/// How a raw reader asks the server for messages.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// A pull consumer without acks, fetched 1,000 messages at a time (esrc's reads).
    Fetch,
    /// An ordered consumer's message stream (the other baselines).
    Ordered,
    /// Batched direct gets of 1,000 (esrc's reads of replicated streams).
    Direct,
}

impl Reader {
    fn describe(self) -> &'static str {
        match self {
            Reader::Fetch => "fetch",
            Reader::Ordered => "ordered consumer",
            Reader::Direct => "direct get",
        }
    }
}

/// One raw read: which stream, which subjects, how, and how to find the payload.
struct Read {
    name: String,
    stream: stream::Stream,
    filter: String,
    reader: Reader,
    /// How to find the payload; `None`: esrc's format (the payload is the message's).
    shape: Option<Shape>,
}

/// CPU time, in seconds, of this process and of the server.
#[derive(Clone, Copy, Default)]
struct Cpu {
    client: f64,
    server: f64,
}

/// What a reader did over its rounds.
#[derive(Default)]
struct Tally {
    events: u64,
    bytes: u64,
    wall: Duration,
    client: f64,
    server: f64,
}

/// The like-with-like lines: rates (ratio to a fetch of plain messages in the same
/// stream), CPU per event on each side, delivered bytes per event.
pub async fn nats_layout(
    client: async_nats::Client,
    store: &NatsStore,
    stream_name: &str,
    prefix: &str,
    per_round: u64,
) -> Result<Vec<Line>, BoxError> {
    let context = jetstream::new(client.clone());
    let shared = context.get_stream(stream_name).await?;
    let alone_name = format!("{stream_name}_ALONE");
    let alone_prefix = format!("{prefix}alone");
    let alone = context
        .create_stream(stream::Config {
            name: alone_name.clone(),
            subjects: vec![format!("{alone_prefix}.>")],
            allow_direct: true,
            ..Default::default()
        })
        .await?;
    let written = seed(store, &context, prefix, &alone_prefix, per_round).await;
    let lines = match written {
        Ok(written) => {
            let reads = reads(&shared, &alone, prefix, &alone_prefix);
            measure(&client, store, &reads, written).await
        }
        Err(error) => Err(error),
    };
    context.delete_stream(&alone_name).await?;
    lines
}

/// Writes the categories; returns how many events each holds.
async fn seed(
    store: &NatsStore,
    context: &jetstream::Context,
    prefix: &str,
    alone_prefix: &str,
    per_round: u64,
) -> Result<u64, BoxError> {
    const AGGREGATES: usize = 100;
    const ROUNDS: u64 = 10;
    let ids: Vec<Uuid> = (0..AGGREGATES).map(|_| Uuid::now_v7()).collect();
    let mut roots: Vec<Root<Counter>> = ids.iter().map(|id| Root::new(*id)).collect();
    let payloads: Vec<Vec<u8>> = (0..per_round)
        .map(|amount| serde_json::to_vec(&CounterEvent::sample(amount)))
        .collect::<Result<_, _>>()?;
    for round in 0..ROUNDS {
        for (root, id) in roots.iter_mut().zip(&ids) {
            store
                .try_write(root, CounterCommand::AddMany(per_round))
                .await?;
            let mut acks = Vec::with_capacity((Shape::ALL.len() + 1) * payloads.len());
            for (i, payload) in payloads.iter().enumerate() {
                let version = round * per_round + i as u64 + 1;
                for shape in Shape::ALL {
                    let subject = format!("{prefix}.{}.{id}", shape.category());
                    let (headers, bytes) = shape.message(version, payload);
                    acks.push(match headers {
                        Some(headers) => {
                            context
                                .publish_with_headers(subject, headers, bytes)
                                .await?
                        }
                        None => context.publish(subject, bytes).await?,
                    });
                }
                let subject = format!("{alone_prefix}.Plain.{id}");
                acks.push(context.publish(subject, payload.clone().into()).await?);
            }
            let (headers, bytes) = Shape::grouped(round * per_round, &payloads);
            let subject = format!("{prefix}.{}.{id}", Shape::Grouped.category());
            acks.push(
                context
                    .publish_with_headers(subject, headers, bytes)
                    .await?,
            );
            for ack in acks {
                ack.await?;
            }
        }
    }
    Ok(AGGREGATES as u64 * ROUNDS * per_round)
}

fn reads(
    shared: &stream::Stream,
    alone: &stream::Stream,
    prefix: &str,
    alone_prefix: &str,
) -> Vec<Read> {
    let read = |stream: &stream::Stream, filter: String, reader, shape, name: &str| Read {
        name: name.to_owned(),
        stream: stream.clone(),
        filter,
        reader,
        shape,
    };
    let category = |name: &str| format!("{prefix}.{name}.*");
    let mut reads = vec![read(
        shared,
        category("Counter"),
        Reader::Fetch,
        None,
        "fetch, esrc's messages",
    )];
    for shape in Shape::ALL.into_iter().chain([Shape::Grouped]) {
        let name = format!("fetch, {}", shape.describe());
        reads.push(read(
            shared,
            category(shape.category()),
            Reader::Fetch,
            Some(shape),
            &name,
        ));
    }
    for reader in [Reader::Ordered, Reader::Direct] {
        let name = format!("{}, esrc's messages", reader.describe());
        reads.push(read(shared, category("Counter"), reader, None, &name));
        let name = format!("{}, no header", reader.describe());
        reads.push(read(
            shared,
            category("Plain"),
            reader,
            Some(Shape::Plain),
            &name,
        ));
    }
    reads.push(read(
        alone,
        format!("{alone_prefix}.Plain.*"),
        Reader::Fetch,
        Some(Shape::Plain),
        "fetch, no header, a stream of its own",
    ));
    reads
}

/// Where [`reads`] puts the fetch of plain messages in the shared stream, which every
/// other read is compared with.
const PLAIN_FETCH: usize = 1;

/// Three rounds, each reader in turn (esrc's replay first); the lines.
async fn measure(
    client: &async_nats::Client,
    store: &NatsStore,
    reads: &[Read],
    written: u64,
) -> Result<Vec<Line>, BoxError> {
    let server = server_pid(client);
    let mut esrc = Tally::default();
    let mut tallies: Vec<Tally> = reads.iter().map(|_| Tally::default()).collect();
    for _ in 0..3 {
        timed(&mut esrc, server, || async {
            let mut events = pin!(store.replay(&["Counter"], Position::ZERO));
            let (mut count, mut bytes) = (0, 0);
            while let Some(envelope) = events.next().await {
                let envelope = envelope?;
                bytes += envelope.payload.len() as u64;
                envelope.deserialize::<CounterEvent>()?;
                count += 1;
            }
            Ok((count, bytes))
        })
        .await?;
        for (read, tally) in reads.iter().zip(&mut tallies) {
            timed(tally, server, || raw_read(client, read)).await?;
        }
    }
    for tally in tallies.iter().chain([&esrc]) {
        if tally.events < 3 * written {
            return Err(format!("a reader saw {} of {} events", tally.events, 3 * written).into());
        }
    }
    let plain = &tallies[PLAIN_FETCH];
    let mut lines = vec![lines_of(
        "esrc replay",
        &esrc,
        plain,
        server.is_some(),
        false,
    )];
    for (read, tally) in reads.iter().zip(&tallies) {
        lines.push(lines_of(&read.name, tally, plain, server.is_some(), true));
    }
    Ok(lines.concat())
}

/// Runs `read`, adding its events, bytes, wall time and CPU to `tally`.
async fn timed<F, Fut>(tally: &mut Tally, server: Option<u32>, read: F) -> Result<(), BoxError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(u64, u64), BoxError>>,
{
    let before = cpu(server);
    let started = Instant::now();
    let (events, bytes) = read().await?;
    tally.wall += started.elapsed();
    let after = cpu(server);
    tally.events += events;
    tally.bytes += bytes;
    tally.client += after.client - before.client;
    tally.server += after.server - before.server;
    Ok(())
}

fn lines_of(name: &str, tally: &Tally, plain: &Tally, server: bool, raw: bool) -> Vec<Line> {
    let events = tally.events as f64;
    let rate = events / tally.wall.as_secs_f64();
    let plain_rate = plain.events as f64 / plain.wall.as_secs_f64();
    let per_event = |seconds: f64, events: u64| seconds * 1e6 / events as f64;
    let line = crate::workloads::informative;
    let mut lines = vec![line(format!("L {name}"), "events/s", rate, plain_rate)];
    lines.push(line(
        format!("L {name}: client CPU"),
        "µs/event",
        per_event(tally.client, tally.events),
        per_event(plain.client, plain.events),
    ));
    if server {
        lines.push(line(
            format!("L {name}: server CPU"),
            "µs/event",
            per_event(tally.server, tally.events),
            per_event(plain.server, plain.events),
        ));
    }
    let bytes_unit = if raw {
        "bytes/event (message)"
    } else {
        "bytes/event (payload)"
    };
    lines.push(line(
        format!("L {name}: delivered"),
        bytes_unit,
        tally.bytes as f64 / events,
        plain.bytes as f64 / plain.events as f64,
    ));
    lines
}

/// Reads `read`'s category to its end, decoding each payload; (events, message bytes).
async fn raw_read(client: &async_nats::Client, read: &Read) -> Result<(u64, u64), BoxError> {
    let decode = |payload: &[u8]| match read.shape {
        Some(shape) => shape.decode(payload),
        None => Shape::Plain.decode(after_head(payload)?),
    };
    match read.reader {
        Reader::Fetch => fetch(read, decode).await,
        Reader::Ordered => ordered(read, decode).await,
        Reader::Direct => {
            let name = &read.stream.cached_info().config.name;
            direct(client, name, &read.filter, decode).await
        }
    }
}

async fn fetch(
    read: &Read,
    decode: impl Fn(&[u8]) -> Result<u64, BoxError>,
) -> Result<(u64, u64), BoxError> {
    let consumer = read
        .stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            filter_subject: read.filter.clone(),
            memory_storage: true,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await?;
    let mut pending = consumer.cached_info().num_pending;
    let (mut events, mut bytes) = (0, 0);
    while pending > 0 {
        let size = usize::try_from(pending.min(1_000))?;
        let mut batch = consumer.fetch().max_messages(size).messages().await?;
        while let Some(message) = batch.next().await {
            let message = message?;
            events += decode(&message.payload)?;
            bytes += message.length as u64;
            pending = message.info()?.pending;
        }
    }
    let name = consumer.cached_info().name.clone();
    read.stream.delete_consumer(&name).await?;
    Ok((events, bytes))
}

async fn ordered(
    read: &Read,
    decode: impl Fn(&[u8]) -> Result<u64, BoxError>,
) -> Result<(u64, u64), BoxError> {
    let consumer = read
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: read.filter.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut left = consumer.cached_info().num_pending;
    let (mut events, mut bytes) = (0, 0);
    if left == 0 {
        return Ok((0, 0));
    }
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        events += decode(&message.payload)?;
        bytes += message.length as u64;
        left -= 1;
        if left == 0 {
            break;
        }
    }
    Ok((events, bytes))
}

/// Batched direct gets (ADR-31) of 1,000 messages on `filter`, until none is left.
async fn direct(
    client: &async_nats::Client,
    stream_name: &str,
    filter: &str,
    decode: impl Fn(&[u8]) -> Result<u64, BoxError>,
) -> Result<(u64, u64), BoxError> {
    let api = format!("$JS.API.DIRECT.GET.{stream_name}");
    let (mut next, mut events, mut bytes) = (1_u64, 0, 0);
    loop {
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await?;
        let request = serde_json::json!({ "seq": next, "next_by_subj": filter, "batch": 1_000 });
        client
            .publish_with_reply(api.clone(), inbox, request.to_string().into())
            .await?;
        let mut more = false;
        while let Some(reply) = replies.next().await {
            match reply.status.map(|status| status.as_u16()) {
                Some(204) => {
                    more = header(&reply, "Nats-Num-Pending").is_some_and(|left| left > 0);
                    break;
                }
                Some(404) => break,
                Some(other) => return Err(format!("direct get answered {other}").into()),
                None => {
                    events += decode(&reply.payload)?;
                    next = header(&reply, "Nats-Sequence").ok_or("no sequence")? + 1;
                    bytes += reply.length as u64;
                }
            }
        }
        if !more {
            return Ok((events, bytes));
        }
    }
}

fn header(message: &async_nats::Message, name: &str) -> Option<u64> {
    message.headers.as_ref()?.get(name)?.as_str().parse().ok()
}

/// This process's CPU time, and the server's when its pid is known.
fn cpu(server: Option<u32>) -> Cpu {
    Cpu {
        client: ticks("self").unwrap_or(0.0),
        server: server
            .and_then(|pid| ticks(&pid.to_string()))
            .unwrap_or(0.0),
    }
}

/// User plus system time of a process, in seconds, from `/proc/<pid>/stat` (in ticks of
/// USER_HZ, which Linux fixes at 100).
fn ticks(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// The pid of a `nats-server` on this machine listening on the client's port:
/// `ESRC_NATS_SERVER_PID`, or the one whose command line names the port.
fn server_pid(client: &async_nats::Client) -> Option<u32> {
    if let Some(pid) = std::env::var("ESRC_NATS_SERVER_PID")
        .ok()
        .and_then(|pid| pid.parse().ok())
    {
        return Some(pid);
    }
    let port = client.server_info().port.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = line.split(|byte| *byte == 0).collect();
            let is_server = args.first()?.ends_with(b"nats-server");
            let on_port = args
                .windows(2)
                .any(|pair| matches!(pair[0], b"-p" | b"--port") && pair[1] == port.as_bytes());
            (is_server && on_port).then_some(pid)
        })
}
