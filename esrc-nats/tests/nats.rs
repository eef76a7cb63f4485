//! What only NATS can show: the server version check, a hand-made stream with a
//! conflicting configuration, foreign messages, the consumer limit, a server restart,
//! contention, inconsistent expectations, oversized events, and how clients connect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::pin;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use esrc_conformance::backend_unavailable;
use esrc_core::{
    DecodeError, Error, Expected, NewEvent, Position, Publish, ReplayOne, Subscribe, Version,
};
use esrc_nats::{NatsError, NatsStore};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent::from_payload(1, format!(r#"{{"n":{n}}}"#))
}

fn nats_error(error: &Error) -> Option<&NatsError> {
    match error {
        Error::Backend { source, .. } => source.downcast_ref::<NatsError>(),
        _ => None,
    }
}

/// A fake server that introduces itself as nats-server 2.9.0 and answers pings.
async fn old_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let info = r#"INFO {"server_id":"OLD","server_name":"old","version":"2.9.0","go":"go1.19","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"proto":1,"jetstream":true}"#;
                write
                    .write_all(format!("{info}\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("PING") {
                        write.write_all(b"PONG\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    format!("nats://{address}")
}

#[tokio::test]
async fn servers_older_than_2_12_are_refused_clearly() {
    let url = old_server().await;
    let error = NatsStore::connect(&url)
        .await
        .expect_err("2.9 must be refused");
    assert!(
        matches!(nats_error(&error), Some(NatsError::ServerTooOld { found }) if found == "2.9.0"),
        "{error}"
    );
    assert!(
        error.to_string().contains("2.12"),
        "the error says what is needed: {error}"
    );
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_stream_made_by_hand_with_a_conflicting_config_is_refused() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let client = nats.client().await;
    let context = jetstream::new(client.clone());
    let name = Uuid::new_v4().simple().to_string();
    let (stream_name, prefix) = (format!("H{name}"), format!("h{name}"));
    context
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{prefix}.>")],
            max_messages_per_subject: 1,
            allow_direct: true,
            no_ack: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let built = NatsStore::builder()
        .stream(stream_name.clone())
        .prefix(prefix)
        .build(client)
        .await;
    context.delete_stream(&stream_name).await.unwrap();
    let error = built.expect_err("a conflicting stream must be refused");
    match nats_error(&error) {
        Some(NatsError::StreamConfig { stream, problems }) => {
            assert_eq!(stream, &stream_name);
            let all = problems.join("\n");
            assert!(all.contains("allow_atomic_publish"), "{all}");
            assert!(all.contains("max_msgs_per_subject is 1"), "{all}");
            assert!(all.contains("no_ack is on"), "{all}");
        }
        _ => panic!("expected a stream configuration error, got {error}"),
    }
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_foreign_message_on_a_stream_subject_is_a_typed_error() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    store
        .publish("Thing", id, Expected::NoStream, vec![event(1)])
        .await
        .unwrap();
    let context = jetstream::new(store.client().clone());
    context
        .publish(
            format!("{}.Thing.{id}", store.prefix()),
            "no headers".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let items: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(
        matches!(
            &items[1],
            Err(Error::Format {
                category,
                position,
                source: DecodeError::Field { field: "Esrc", found: None },
                ..
            }) if category == "Thing" && *position > Position::ZERO
        ),
        "{:?}",
        items[1]
    );
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_retried_single_event_reports_the_original_outcome() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let first = event(1);
    let original = store
        .publish("Thing", id, Expected::NoStream, vec![first.clone()])
        .await
        .unwrap();
    store
        .publish("Thing", id, Expected::Exact(Version(1)), vec![event(2)])
        .await
        .unwrap();
    // The lost-ack retry: same id, the expectation of the first attempt.
    let again = store
        .publish("Thing", id, Expected::NoStream, vec![first.clone()])
        .await;
    let again_any = store.publish("Thing", id, Expected::Any, vec![first]).await;
    let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();
    assert_eq!(again.unwrap(), original);
    assert_eq!(
        again_any.unwrap(),
        original,
        "deduplicated by the server within its window"
    );
    assert_eq!(stored.len(), 2, "stored once");
}

#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reads_leave_no_consumers_behind() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    store
        .publish("Thing", id, Expected::NoStream, (0..3).map(event).collect())
        .await
        .unwrap();
    for read in 0..10_000 {
        let events: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
        assert_eq!(events.len(), 3, "read {read}");
        assert!(events.iter().all(Result::is_ok), "read {read}: {events:?}");
    }
    let context = jetstream::new(store.client().clone());
    let mut stream = context.get_stream(store.stream_name()).await.unwrap();
    let mut consumers = u64::MAX;
    // Deletions run in the background: give them a moment to land.
    for _ in 0..300 {
        consumers = stream.info().await.unwrap().state.consumer_count as u64;
        if consumers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.destroy().await.unwrap();
    assert_eq!(consumers, 0, "every read deleted its consumer");
}

/// A nats-server process of our own, to restart.
struct Server {
    binary: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl Server {
    /// A server of its own (`ESRC_NATS_SERVER`) on a free port with a new storage
    /// directory, started; `None` when the binary is not given.
    async fn launch() -> Option<Server> {
        let Ok(binary) = std::env::var("ESRC_NATS_SERVER") else {
            return backend_unavailable(
                "ESRC_NATS_SERVER (a nats-server ≥ 2.12 binary to restart) is not set",
            );
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("esrc-restart-{}", Uuid::new_v4().simple()));
        let mut server = Server {
            binary,
            port,
            dir,
            child: None,
        };
        server.start().await;
        Some(server)
    }

    async fn start(&mut self) {
        let child = tokio::process::Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start");
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_server_restart() {
    let Some(mut server) = Server::launch().await else {
        return;
    };
    let (port, dir) = (server.port, server.dir.clone());
    let reconnects = || {
        esrc_conformance::metrics::Kept::installed()
            .counter("esrc_subscription_reconnects_total", &[("store", "nats")])
            .unwrap_or(0)
    };
    let reconnected_before = reconnects();

    let url = format!("nats://127.0.0.1:{port}");
    let client = async_nats::connect(&url).await.unwrap();
    let store = NatsStore::builder().build(client).await.unwrap();
    let id = Uuid::now_v7();
    let mut written = Vec::new();
    let mut publish = async |n: u64| {
        let event = event(n);
        written.push(event.event_id);
        for attempt in 0.. {
            match store
                .publish("Thing", id, Expected::Any, vec![event.clone()])
                .await
            {
                Ok(_) => return,
                Err(error) if error.is_retryable() && attempt < 200 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("publish {n}: {error}"),
            }
        }
    };
    for n in 0..5 {
        publish(n).await;
    }
    let mut subscription = pin!(store.subscribe(&["Thing"], Position::ZERO));
    let mut seen = Vec::new();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(60), subscription.next())
            .await
            .expect("an event within a minute")
            .expect("live")
            .expect("no error")
    };
    for _ in 0..5 {
        seen.push(next().await.event_id);
    }

    server.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.start().await;

    for n in 5..10 {
        publish(n).await;
    }
    for _ in 0..5 {
        seen.push(next().await.event_id);
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), subscription.next()).await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        seen, written,
        "every event once, in order, across the restart"
    );
    assert!(extra.is_err(), "nothing repeated: {extra:?}");
    // The metric of what the subscription rode out moved (`esrc_core::metrics`).
    assert!(reconnects() > reconnected_before);
}

#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_always_appends_under_contention() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let writers: Vec<_> = (0..32)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for n in 0..50 {
                    if let Err(error) = store
                        .publish("Thing", id, Expected::Any, vec![event(writer * 100 + n)])
                        .await
                    {
                        failures.push(error.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = Vec::new();
    for writer in writers {
        failures.extend(writer.await.unwrap());
    }
    let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of 1600 appends failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let versions: Vec<u64> = stored
        .iter()
        .map(|e| e.as_ref().unwrap().version.get())
        .collect();
    assert_eq!(
        versions,
        (1..=1600).collect::<Vec<_>>(),
        "contiguous versions"
    );
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_last_expectation_pairing_another_events_position_conflicts() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    // Another store on the same stream remembers nothing of it.
    let fresh = NatsStore::builder()
        .stream(store.stream_name())
        .prefix(store.prefix())
        .build(nats.client().await)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    store
        .publish(
            "Thing",
            id,
            Expected::NoStream,
            (1..=2).map(event).collect(),
        )
        .await
        .unwrap();
    let third = store
        .publish("Thing", id, Expected::Any, vec![event(3)])
        .await
        .unwrap();
    // Version 2 with the position of version 3: a stale snapshot or a hand-made root.
    let inconsistent = Expected::Last {
        version: Version(2),
        position: third.position,
    };
    let mut outcomes = Vec::new();
    for writer in [&store, &fresh] {
        outcomes.push(
            writer
                .publish("Thing", id, inconsistent, vec![event(4)])
                .await,
        );
    }
    let consistent = Expected::Last {
        version: third.version,
        position: third.position,
    };
    let fourth = fresh.publish("Thing", id, consistent, vec![event(4)]).await;
    let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();
    for outcome in outcomes {
        assert!(
            matches!(
                outcome,
                Err(Error::Conflict {
                    actual: Version(3),
                    ..
                })
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(fourth.unwrap().version, Version(4));
    let versions: Vec<u64> = stored
        .iter()
        .map(|e| e.as_ref().unwrap().version.get())
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4], "no version stored twice");
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn an_event_over_the_maximum_payload_is_a_permanent_error_and_stores_nothing() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let max = store.client().server_info().max_payload;
    let id = Uuid::now_v7();
    let huge = NewEvent::from_payload(1, format!(r#""{}""#, "x".repeat(max)));
    let alone = store
        .publish("Thing", id, Expected::Any, vec![huge.clone()])
        .await;
    let in_a_batch = store
        .publish("Thing", id, Expected::Any, vec![event(1), huge, event(2)])
        .await;
    let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();
    for outcome in [alone, in_a_batch] {
        let error = outcome.expect_err("too large");
        assert!(!error.is_retryable(), "{error}");
        assert!(
            matches!(nats_error(&error), Some(NatsError::PayloadTooLarge { max: m, .. }) if *m == max),
            "{error}"
        );
    }
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

/// A stream made by hand with a `max_msg_size` below the server's `max_payload`: the
/// store reads it at connect and refuses a larger event before sending anything; a limit
/// lowered after connect is the server's refusal (10054), reported the same way with the
/// limit read again. Permanent, and nothing is stored.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn an_event_over_the_streams_max_msg_size_is_payload_too_large_naming_that_limit() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let client = nats.client().await;
    let context = jetstream::new(client.clone());
    let name = Uuid::new_v4().simple().to_string();
    let (stream_name, prefix) = (format!("T{name}"), format!("t{name}"));
    let mut config = stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{prefix}.>")],
        allow_direct: true,
        allow_atomic_publish: true,
        max_message_size: 4096,
        ..Default::default()
    };
    context.create_stream(config.clone()).await.unwrap();
    let store = NatsStore::builder()
        .stream(stream_name)
        .prefix(prefix)
        .build(client)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let sized = |bytes: usize| NewEvent::from_payload(1, format!(r#""{}""#, "x".repeat(bytes)));
    let alone = store
        .publish("Thing", id, Expected::Any, vec![sized(5_000)])
        .await;
    let in_a_batch = store
        .publish(
            "Thing",
            id,
            Expected::Any,
            vec![event(1), sized(5_000), event(2)],
        )
        .await;

    config.max_message_size = 2048;
    context.update_stream(config).await.unwrap();
    let lowered = store
        .publish("Thing", id, Expected::Any, vec![event(1), sized(3_000)])
        .await;
    let stored: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();

    for (outcome, max) in [(alone, 4096), (in_a_batch, 4096), (lowered, 2048)] {
        let error = outcome.expect_err("too large");
        assert!(!error.is_retryable(), "{error}");
        assert!(
            matches!(
                nats_error(&error),
                Some(NatsError::PayloadTooLarge { max: m, limit: esrc_nats::Limit::StreamMaxMsgSize, .. })
                    if *m == max
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains("max_msg_size")
                || esrc_core::Chain(&error)
                    .to_string()
                    .contains("max_msg_size"),
            "the error names the limit: {}",
            esrc_core::Chain(&error)
        );
    }
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

/// A server killed (`kill -9`) and restarted while multi-event appends are being sent:
/// every failure is retryable (a batch cut short is JetStream 10176, "atomic publish
/// batch is incomplete"), the same append sent again succeeds, and every event is
/// stored once, in order. Twenty restarts, to catch batches in the middle.
#[esrc_conformance::requires(nats_server)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_cut_by_server_restarts_are_retryable_and_stored_once() {
    let Some(mut server) = Server::launch().await else {
        return;
    };
    let (port, dir) = (server.port, server.dir.clone());
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    let store = NatsStore::builder().build(client).await.unwrap();
    let id = Uuid::now_v7();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (store, running) = (store.clone(), running.clone());
        tokio::spawn(async move {
            let mut appended = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                // 300 events of 2 kB: long enough to be cut.
                let events: Vec<NewEvent> = (0..300)
                    .map(|i| {
                        NewEvent::from_payload(
                            1,
                            format!(r#"{{"n":{n},"i":{i},"pad":"{}"}}"#, "p".repeat(2000)),
                        )
                    })
                    .collect();
                n += 1;
                let expected = Expected::Exact(Version(appended.len() as u64));
                let mut attempts = 0;
                loop {
                    match store.publish("Thing", id, expected, events.clone()).await {
                        Ok(_) => break,
                        Err(error) if attempts < 600 => {
                            failures
                                .push((error.is_retryable(), esrc_core::Chain(&error).to_string()));
                            attempts += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(error) => panic!("append {n} never succeeded: {error}"),
                    }
                }
                appended.extend(events.iter().map(|event| event.event_id));
            }
            (appended, failures)
        })
    };
    // Kills at varied moments of the appends (one in three such kills cut a batch).
    for k in 0..20 {
        tokio::time::sleep(Duration::from_millis(200 + (k * 97) % 300)).await;
        server.stop().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.start().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let (appended, failures) = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer ends")
        .unwrap();
    let stored: Vec<Uuid> = store
        .replay_one("Thing", id, Version::ZERO)
        .map(|event| event.unwrap().event_id)
        .collect()
        .await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let permanent: Vec<_> = failures
        .iter()
        .filter(|(retryable, _)| !retryable)
        .collect();
    assert!(
        permanent.is_empty(),
        "failures classified permanent: {permanent:#?}"
    );
    assert!(!failures.is_empty(), "the restarts cut some appends");
    assert_eq!(stored, appended, "every event stored once, in order");
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_client_that_is_still_connecting_is_accepted() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url.as_str())
        .await
        .unwrap();
    let name = Uuid::new_v4().simple().to_string();
    let store = NatsStore::builder()
        .stream(format!("C{name}"))
        .prefix(format!("c{name}"))
        .build(client)
        .await
        .expect("a connecting client is waited for, not refused as too old");
    store.destroy().await.unwrap();
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn connect_takes_the_servers_of_a_cluster_comma_separated() {
    let Some(nats) = common::nats().await else {
        return;
    };
    // Nothing listens on the first: the client goes on to the second.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let name = Uuid::new_v4().simple().to_string();
    let store = NatsStore::builder()
        .stream(format!("C{name}"))
        .prefix(format!("c{name}"))
        .connect(&format!("nats://127.0.0.1:{closed}, {}", nats.url))
        .await
        .expect("several servers, one of them up");
    store.destroy().await.unwrap();
    let error = NatsStore::connect("nats://127.0.0.1:4222,not a url")
        .await
        .expect_err("a bad server address");
    assert!(!error.is_retryable(), "{error}");
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn no_responders_is_retryable() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let context = jetstream::new(store.client().clone());
    context.delete_stream(store.stream_name()).await.unwrap();
    // As during an election, or without quorum: nothing answers for the subject.
    let error = store
        .publish("Thing", Uuid::now_v7(), Expected::NoStream, vec![event(1)])
        .await
        .expect_err("no stream");
    let _ = store.destroy().await;
    assert!(error.is_retryable(), "{error}");
    assert!(
        matches!(nats_error(&error), Some(NatsError::NoResponders { .. })),
        "{error}"
    );
}

#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_consumer_is_deleted_goes_on_without_a_gap() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let mut written = Vec::new();
    let mut subscription = pin!(store.subscribe(&["Thing"], Position::ZERO));
    let mut seen = Vec::new();
    let context = jetstream::new(store.client().clone());
    for round in 0..3 {
        for n in 0..5 {
            let event = event(round * 10 + n);
            written.push(event.event_id);
            store
                .publish("Thing", id, Expected::Any, vec![event])
                .await
                .unwrap();
        }
        for _ in 0..5 {
            let next = tokio::time::timeout(Duration::from_secs(60), subscription.next())
                .await
                .expect("an event within a minute")
                .expect("live")
                .expect("no error");
            seen.push(next.event_id);
        }
        // Someone (an operator, a server losing its state) deletes the consumer.
        let stream = context.get_stream(store.stream_name()).await.unwrap();
        let names: Vec<String> = stream
            .consumer_names()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(
            !names.is_empty(),
            "round {round}: the subscription has a consumer"
        );
        for name in names {
            stream.delete_consumer(&name).await.unwrap();
        }
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), subscription.next()).await;
    store.destroy().await.unwrap();
    assert_eq!(seen, written, "every event once, in order");
    assert!(extra.is_err(), "nothing repeated: {extra:?}");
}

#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_append_deadline_bounds_any_with_a_retryable_error_not_a_conflict() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let hasty = NatsStore::builder()
        .stream(store.stream_name())
        .prefix(store.prefix())
        .append_deadline(Duration::ZERO)
        .build(nats.client().await)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let hasty = hasty.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for n in 0..20 {
                    if let Err(error) = hasty
                        .publish("Thing", id, Expected::Any, vec![event(writer * 100 + n)])
                        .await
                    {
                        errors.push(error);
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for writer in writers {
        errors.extend(writer.await.unwrap());
    }
    store.destroy().await.unwrap();
    assert!(!errors.is_empty(), "16 writers on one stream lose races");
    for error in &errors {
        assert!(
            matches!(nats_error(error), Some(NatsError::Contended(_))) && error.is_retryable(),
            "{error}"
        );
    }
}

/// A server without JetStream is refused with the flag to turn it on.
#[esrc_conformance::requires(nats_server)]
#[tokio::test]
async fn a_server_without_jetstream_is_refused_with_the_fix() {
    let Ok(binary) = std::env::var("ESRC_NATS_SERVER") else {
        return backend_unavailable::<()>(
            "ESRC_NATS_SERVER (a nats-server ≥ 2.12 binary to run without JetStream) is not set",
        )
        .unwrap_or_default();
    };
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let _server = tokio::process::Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nats-server");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = NatsStore::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .expect_err("no JetStream");
    let text = error.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port} has JetStream turned off"))
            && text.contains("-js"),
        "{text}"
    );
    assert!(!error.is_retryable());
}

/// `n` `Thing` events on `id`, in appends of up to 100.
async fn seed(store: &NatsStore, id: Uuid, n: u32) {
    for start in (0..n).step_by(100) {
        let batch = esrc_conformance::fixtures::counted_batch(start + 1, 100.min(n - start));
        store
            .publish("Thing", id, Expected::Any, batch)
            .await
            .unwrap();
    }
}

/// A builder for another store on `store`'s stream and prefix.
fn twin(store: &NatsStore, nats: &common::Nats) -> esrc_nats::NatsStoreBuilder {
    NatsStore::builder()
        .stream(store.stream_name())
        .prefix(store.prefix())
        .replicas(nats.replicas)
}

/// How many messages `client` has received so far.
fn received(client: &async_nats::Client) -> u64 {
    client
        .statistics()
        .in_messages
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// A read after a snapshot fetches the messages after the snapshot's position, not the
/// whole subject; and a position that is not the event's at `after` loses nothing.
#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_snapshot_fetches_only_the_messages_after_it() {
    use esrc_conformance::fixtures::{Tally, counted_batch};
    use esrc_core::{ReadExt, Root};

    let Some(nats) = common::nats().await else {
        return;
    };
    let writer = nats.store().await;
    let id = Uuid::now_v7();
    seed(&writer, id, 290).await;
    let at_290: Root<Tally> = writer.load(id).await.unwrap();
    assert_eq!(at_290.version(), Version(290));
    writer.save_root_snapshot(&at_290).await.unwrap();
    writer
        .publish("Thing", id, Expected::Any, counted_batch(291, 10))
        .await
        .unwrap();

    // A store of its own, with a client of its own: it has remembered nothing of the
    // subject, and the client counts what it receives.
    let client = nats.client().await;
    let reader = twin(&writer, &nats).build(client.clone()).await.unwrap();
    let before = received(&client);
    let read: Root<Tally> = reader.read(id).await.unwrap();
    let fetched = received(&client) - before;
    assert_eq!(read.version(), Version(300));
    assert_eq!(read.aggregate().total, (1..=300).sum::<u64>());
    // The 10 events after the snapshot, the snapshot, and a few API replies; reading the
    // subject from its start would be over 300.
    assert!(fetched <= 40, "{fetched} messages received for the read");

    let all: Vec<_> = writer
        .replay_one("Thing", id, Version::ZERO)
        .map(Result::unwrap)
        .collect()
        .await;
    let position_of = |version: u64| all[version as usize - 1].position;
    for (at, what) in [
        (position_of(200), "the event's own"),
        (position_of(100), "an earlier event's"),
        (position_of(250), "a later event's"),
        (Position(u64::MAX), "past the subject's end"),
        (Position::ZERO, "unknown"),
    ] {
        let versions: Vec<u64> = reader
            .replay_one_from("Thing", id, Version(200), at)
            .map(|envelope| envelope.unwrap().version.get())
            .collect()
            .await;
        assert_eq!(
            versions,
            (201..=300).collect::<Vec<_>>(),
            "from {what} position"
        );
    }
}

/// `read` of an aggregate that does not exist yet (a command's usual first step) asks
/// the server what `load` asks, and no more: no snapshot is looked up for it.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_read_of_a_new_aggregate_costs_what_a_load_costs() {
    use esrc_conformance::fixtures::Tally;
    use esrc_core::{ReadExt, Root};

    let Some(nats) = common::nats().await else {
        return;
    };
    let client = nats.client().await;
    let writer = nats.store().await;
    let store = twin(&writer, &nats).build(client.clone()).await.unwrap();
    let sent = || {
        client
            .statistics()
            .out_messages
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = sent();
    let loaded: Root<Tally> = store.load(Uuid::now_v7()).await.unwrap();
    let by_load = sent() - before;
    let before = sent();
    let read: Root<Tally> = store.read(Uuid::now_v7()).await.unwrap();
    let by_read = sent() - before;
    writer.destroy().await.unwrap();
    assert_eq!(
        (loaded.version(), read.version()),
        (Version::ZERO, Version::ZERO)
    );
    assert_eq!(by_read, by_load, "requests sent by read and by load");
}

/// Truncating a long subject finds where to cut by bisecting its sequences, not by
/// reading it from its first message.
#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_a_long_stream_reads_a_few_messages_not_all() {
    use esrc_core::Truncate;

    let Some(nats) = common::nats().await else {
        return;
    };
    let writer = nats.store().await;
    let id = Uuid::now_v7();
    seed(&writer, id, 2_000).await;
    let client = nats.client().await;
    let cutter = twin(&writer, &nats).build(client.clone()).await.unwrap();
    let before = received(&client);
    cutter.truncate("Thing", id, Version(1_500)).await.unwrap();
    let received = received(&client) - before;
    assert!(received <= 60, "{received} messages received to truncate");
    let versions: Vec<u64> = writer
        .replay_one("Thing", id, Version::ZERO)
        .map(|envelope| envelope.unwrap().version.get())
        .collect()
        .await;
    assert_eq!(versions, (1_500..=2_000).collect::<Vec<_>>());
}

/// Recognising a retried append on a long subject reads the append's own messages (an
/// expectation says where they are) or those of the duplicate window (the server says the
/// ids are recent), not the subject from its first message.
#[esrc_conformance::requires(nats)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_a_long_stream_reads_a_few_messages_not_all() {
    use esrc_conformance::fixtures::counted_batch;

    let Some(nats) = common::nats().await else {
        return;
    };
    let name = Uuid::new_v4().simple();
    let store = |client| {
        NatsStore::builder()
            .stream(format!("T{name}"))
            .prefix(format!("t{name}"))
            .replicas(nats.replicas)
            .duplicate_window(Duration::from_secs(1))
            .build(client)
    };
    let writer = store(nats.client().await).await.unwrap();
    let id = Uuid::now_v7();
    seed(&writer, id, 2_000).await;
    // The 2,000 events leave the duplicate window (and twice it).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let batch = counted_batch(2_001, 3);
    let appended = writer
        .publish("Thing", id, Expected::Exact(Version(2_000)), batch.clone())
        .await
        .unwrap();

    let client = nats.client().await;
    let retrier = store(client.clone()).await.unwrap();
    for expected in [Expected::Exact(Version(2_000)), Expected::Any] {
        let before = received(&client);
        let retried = retrier
            .publish("Thing", id, expected, batch.clone())
            .await
            .unwrap();
        let received = received(&client) - before;
        assert_eq!(
            retried, appended,
            "the retry with {expected:?} reports the original"
        );
        assert!(
            received <= 60,
            "{received} messages received to recognise the retry with {expected:?}"
        );
    }
    writer.destroy().await.unwrap();
}

/// ADR-50 flow control: in a long atomic batch every 100th message asks for the server's
/// reply (the first and the commit always do), so a batch the server stopped taking is
/// not sent on to its end. Seen from a plain subscriber on the same subject.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_long_batch_asks_the_server_every_hundred_messages() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let client = nats.client().await;
    let id = Uuid::now_v7();
    let subject = format!("{}.Thing.{id}", store.prefix());
    let mut seen = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let events: Vec<NewEvent> = (0..250).map(event).collect();
    store
        .publish("Thing", id, Expected::NoStream, events)
        .await
        .unwrap();
    // Each message by its batch and place in it (a batch cut short and sent again, on a
    // loaded machine, is a batch of its own): whether it asked for a reply.
    let mut batches: std::collections::HashMap<String, Vec<(u64, bool)>> = Default::default();
    let header = |message: &async_nats::Message, name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    // Until one batch is seen whole, or a minute has passed: a clean-clone CI run under
    // load once saw no batch whole within a minute (deliveries to a plain subscriber are
    // at most once), so what was seen is judged as it is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, seen.next()).await {
        let batch = header(&message, "Nats-Batch-Id").expect("a batch's message");
        let place: u64 = header(&message, "Nats-Batch-Sequence")
            .unwrap()
            .parse()
            .unwrap();
        let messages = batches.entry(batch).or_default();
        messages.push((place, message.reply.is_some()));
        if messages.len() == 250 {
            break;
        }
    }
    // Every message seen asks for a reply exactly when it is the first, a hundredth's
    // next, or the commit; and the flow-control places were seen asking.
    let mut asking = std::collections::BTreeSet::new();
    for (place, asks) in batches.values().flatten() {
        let should = matches!(place, 1 | 101 | 201 | 250);
        assert_eq!(*asks, should, "message {place} of the batch");
        if *asks {
            asking.insert(*place);
        }
    }
    assert!(
        asking.contains(&101) && asking.contains(&201),
        "the messages that ask for a reply: {asking:?} ({} seen)",
        batches.values().map(Vec::len).sum::<usize>()
    );
    let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    assert_eq!(read.len(), 250, "the whole batch is stored");
    assert!(read.iter().all(Result::is_ok));
}
