//! Every command through the `esrc` binary, against real PostgreSQL and NATS servers
//! (`ESRC_POSTGRES_URL`, `ESRC_NATS_URL`), each test in namespaces of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::pin::pin;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use esrc::nats::NatsStore;
use esrc::{
    AnyStore, CheckpointStore, Envelope, Expected, Metadata, NewEvent, Position, Publish, Replay,
    Timestamp, Uuid,
};
use futures::StreamExt;

/// The servers, or `None` (and a `skipped:` line, or a failure with
/// `ESRC_REQUIRE_BACKENDS=1`).
fn servers() -> Option<(String, String)> {
    let (Ok(postgres), Ok(nats)) = (
        std::env::var("ESRC_POSTGRES_URL"),
        std::env::var("ESRC_NATS_URL"),
    ) else {
        return esrc_conformance::backend_unavailable(
            "the command-line tests need ESRC_POSTGRES_URL and ESRC_NATS_URL",
        );
    };
    Some((postgres, nats))
}

/// Namespaces made by one test, removed when it ends (also when it fails).
struct Namespaces {
    postgres: String,
    nats: String,
    schemas: Vec<String>,
    streams: Vec<String>,
}

impl Namespaces {
    fn new((postgres, nats): (String, String)) -> Self {
        Namespaces {
            postgres,
            nats,
            schemas: Vec::new(),
            streams: Vec::new(),
        }
    }

    /// The URL of a new PostgreSQL schema, created by the first command that opens it.
    fn pg(&mut self) -> String {
        let schema = format!("cli_{}", Uuid::new_v4().simple());
        let separator = if self.postgres.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}schema={schema}&migrate=true", self.postgres);
        self.schemas.push(schema);
        url
    }

    /// The URL of a new NATS stream and subject prefix.
    fn nats(&mut self) -> String {
        let name = format!("cli_{}", Uuid::new_v4().simple());
        let url = format!(
            "{}?stream={}&prefix={name}&storage=memory",
            self.nats,
            name.to_uppercase()
        );
        self.streams.push(url.clone());
        url
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut self.schemas);
        let streams = std::mem::take(&mut self.streams);
        let postgres = self.postgres.clone();
        // A runtime of its own: the test's may be gone.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&postgres).await {
                    for schema in schemas {
                        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
                    }
                }
                for url in streams {
                    if let Ok(store) = esrc::connect(&url).await {
                        if let Some(nats) = store.downcast_ref::<NatsStore>() {
                            let _ = nats.destroy().await;
                        }
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn esrc() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("esrc"))
}

/// Runs `esrc args…`, with `input` on standard input.
fn run(args: &[&str], input: &str) -> Output {
    let mut child = esrc()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Runs `esrc args…` and expects success; returns standard output.
fn ok(args: &[&str]) -> String {
    let output = run(args, "");
    assert!(
        output.status.success(),
        "esrc {} failed ({}): {}",
        args.first().unwrap_or(&""),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An event with everything set: id, time, schema version, metadata, payload.
fn event(n: u64) -> NewEvent {
    let metadata = if n.is_multiple_of(2) {
        Metadata::new()
            .with_correlation_id(Uuid::now_v7())
            .with("n", n.to_string())
    } else {
        Metadata::default()
    };
    NewEvent::from_payload(
        1 + (n % 3) as u32,
        format!(r#"{{"n":{n}, "text":"é {n}"}}"#).into_bytes(),
    )
    .with_event_id(Uuid::now_v7())
    .with_timestamp(Timestamp::from_micros(
        1_700_000_000_000_000 + n as i64 * 1_001,
    ))
    .with_metadata(metadata)
}

/// Writes `streams` streams of `per_stream` events in `category`, in batches of `batch`,
/// interleaved across streams.
async fn seed(store: &AnyStore, category: &str, streams: usize, per_stream: u64, batch: u64) {
    let ids: Vec<Uuid> = (0..streams).map(|_| Uuid::now_v7()).collect();
    let mut n = 0;
    let mut written = 0;
    while written < per_stream {
        for id in &ids {
            let events: Vec<NewEvent> = (0..batch.min(per_stream - written))
                .map(|_| {
                    n += 1;
                    event(n)
                })
                .collect();
            store
                .publish(
                    category,
                    *id,
                    Expected::Exact(esrc::Version(written)),
                    events,
                )
                .await
                .unwrap();
        }
        written += batch.min(per_stream - written);
    }
}

/// Every event of `categories`, by event id, with what a copy must keep.
async fn contents(
    store: &AnyStore,
    categories: &[&str],
) -> Vec<(String, Uuid, u64, Uuid, i64, u32, Metadata, Vec<u8>)> {
    let mut events = pin!(store.replay(categories, Position::ZERO));
    let mut all = Vec::new();
    while let Some(envelope) = events.next().await {
        let e: Envelope = envelope.unwrap();
        all.push((
            e.category,
            e.aggregate_id,
            e.version.get(),
            e.event_id,
            e.timestamp.as_micros(),
            e.schema_version,
            e.metadata,
            e.payload.to_vec(),
        ));
    }
    all
}

#[test]
fn help_shows_examples_and_bad_arguments_exit_2() {
    let help = ok(&["--help"]);
    assert!(
        help.contains("Examples:") && help.contains("esrc copy"),
        "{help}"
    );
    let output = run(&["status"], "");
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["status", "mongodb://localhost"], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown store scheme `mongodb`"),
        "{stderr}"
    );
}

#[test]
fn options_lists_each_stores_table() {
    let all = ok(&["options"]);
    for expected in [
        "memory",
        "max_batch_events",
        "postgres",
        "sslmode",
        "nats",
        "duplicate_window",
    ] {
        assert!(all.contains(expected), "{expected} in {all}");
    }
    let nats = ok(&["options", "nats"]);
    assert!(
        nats.contains("append_deadline") && !nats.contains("sslmode"),
        "{nats}"
    );
    let output = run(&["options", "mongodb"], "");
    assert_eq!(output.status.code(), Some(1));
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn status_stream_and_projection_reset_on_both_servers() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    for url in [spaces.pg(), spaces.nats()] {
        let store = esrc::connect(&url).await.unwrap();
        seed(&store, "Tab", 2, 3, 3).await;
        seed(&store, "Kitchen", 1, 1, 1).await;
        let tab: Uuid = contents(&store, &["Tab"]).await[0].1;
        let head = store.head(&["Tab", "Kitchen"]).await.unwrap();
        let first_tab = pin!(store.replay(&["Tab"], Position::ZERO))
            .next()
            .await
            .unwrap()
            .unwrap();
        store.save_checkpoint("caught-up", head).await.unwrap();
        store
            .save_checkpoint("behind", first_tab.position)
            .await
            .unwrap();

        let status: serde_json::Value =
            serde_json::from_str(&ok(&["status", &url, "--json"])).unwrap();
        assert_eq!(
            status["categories"],
            serde_json::json!([
                {"name": "Kitchen", "events": 1, "streams": 1},
                {"name": "Tab", "events": 6, "streams": 2}
            ])
        );
        assert_eq!(status["head"], head.get());
        assert_eq!(
            status["projections"],
            serde_json::json!([
                {"name": "behind", "checkpoint": first_tab.position.get(), "lag": 6},
                {"name": "caught-up", "checkpoint": head.get(), "lag": 0}
            ]),
            "lag in events, not positions"
        );
        let text = ok(&["status", &url]);
        assert!(text.contains("Tab") && text.contains("behind"), "{text}");

        let listed = ok(&["streams", &url, "Tab", "--json"]);
        let listed: Vec<serde_json::Value> = listed
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(listed.len(), 2, "two streams of Tab");
        assert!(
            listed
                .iter()
                .all(|stream| stream["events"] == 3 && stream["version"] == 3),
            "{listed:?}"
        );
        assert!(listed.iter().any(|stream| stream["id"] == tab.to_string()));
        assert!(ok(&["streams", &url, "Tab"]).contains("2 streams of category `Tab`"));

        let lines = ok(&["stream", &url, "Tab", &tab.to_string(), "--json"]);
        let versions: Vec<u64> = lines
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["version"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(versions, [1, 2, 3]);
        let after = ok(&[
            "stream",
            &url,
            "Tab",
            &tab.to_string(),
            "--after",
            "2",
            "--json",
        ]);
        assert_eq!(after.lines().count(), 1);
        let block = ok(&["stream", &url, "Tab", &tab.to_string()]);
        assert!(
            block.contains("version 1") && block.contains("\"text\": \"é"),
            "{block}"
        );

        // A category in the wrong case reads nothing: said so, with the near one.
        let wrong = run(&["stream", &url, "tab", &tab.to_string()], "");
        assert_eq!(wrong.status.code(), Some(1));
        let said = String::from_utf8_lossy(&wrong.stderr);
        assert!(said.contains("did you mean `Tab`?"), "{said}");

        // A reset past the store's last event would skip what comes next: refused.
        let past = (head.get() + 1_000).to_string();
        let refused = run(
            &[
                "projection",
                "reset",
                &url,
                "caught-up",
                "--to",
                &past,
                "--yes",
            ],
            "",
        );
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("past the store's last event"));

        // Without a terminal and without --yes, nothing changes.
        let refused = run(&["projection", "reset", &url, "caught-up", "--to", "1"], "");
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
        assert_eq!(
            store.load_checkpoint("caught-up").await.unwrap(),
            Some(head)
        );
        ok(&[
            "projection",
            "reset",
            &url,
            "caught-up",
            "--to",
            "1",
            "--yes",
        ]);
        assert_eq!(
            store.load_checkpoint("caught-up").await.unwrap(),
            Some(Position(1))
        );
        ok(&["projection", "reset", &url, "behind", "--yes"]);
        assert_eq!(store.load_checkpoint("behind").await.unwrap(), None);
    }
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn copy_round_trips_postgres_nats_postgres_keeping_every_field() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    let (first, nats, second) = (spaces.pg(), spaces.nats(), spaces.pg());
    let source = esrc::connect(&first).await.unwrap();
    seed(&source, "Tab", 5, 12, 4).await;
    seed(&source, "Kitchen", 3, 2, 1).await;
    let original = contents(&source, &["Tab", "Kitchen"]).await;

    let said = ok(&["copy", &first, &nats, "--batch", "7"]);
    assert!(said.contains("Stored 66 new events"), "{said}");
    // The copy's checkpoint is a job's, not a projection with a lag.
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", &nats, "--json"])).unwrap();
    assert_eq!(status["projections"], serde_json::json!([]), "{status}");
    let jobs = status["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{status}");
    assert!(
        jobs[0]["name"].as_str().unwrap().starts_with("esrc-copy-"),
        "{status}"
    );
    let said = ok(&["copy", &nats, &second]);
    assert!(said.contains("Stored 66 new events"), "{said}");
    for url in [&nats, &second] {
        let copied = contents(&esrc::connect(url).await.unwrap(), &["Tab", "Kitchen"]).await;
        assert_eq!(copied, original, "every field, in position order");
    }
    // Again: nothing new, nothing twice.
    let said = ok(&["copy", &first, &nats]);
    assert!(said.contains("Stored 0 new events"), "{said}");
    assert_eq!(
        contents(&esrc::connect(&nats).await.unwrap(), &["Tab", "Kitchen"]).await,
        original
    );

    // A target holding other events of the same stream is refused.
    let third = spaces.pg();
    let target = esrc::connect(&third).await.unwrap();
    target
        .publish("Tab", original[0].1, Expected::NoStream, vec![event(999)])
        .await
        .unwrap();
    let refused = run(&["copy", &first, &third], "");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("already holds other events of stream Tab/"),
        "{stderr}"
    );
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_killed_midway_resumes_and_stores_nothing_twice() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    let (from, to) = (spaces.pg(), spaces.nats());
    let source = esrc::connect(&from).await.unwrap();
    seed(&source, "Tab", 100, 200, 50).await;
    let original = contents(&source, &["Tab"]).await;
    let target = esrc::connect(&to).await.unwrap();
    let job = format!("esrc-copy-{}", original[0].3.simple());

    let mut child = esrc()
        .args(["copy", &from, &to, "--batch", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) once it has saved a checkpoint, well before the end.
    let started = Instant::now();
    loop {
        if let Some(position) = target.load_checkpoint(&job).await.unwrap() {
            if position.get() > 0 {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint after a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = target.count_after(&["Tab"], Position::ZERO).await.unwrap();
    assert!(
        partial > 0 && partial < original.len() as u64,
        "killed midway: {partial}"
    );

    let said = ok(&["copy", &from, &to, "--batch", "10"]);
    assert!(said.contains("Resuming after source position"), "{said}");
    assert_eq!(
        contents(&target, &["Tab"]).await,
        original,
        "everything once, in order"
    );
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn export_import_round_trip_and_a_malformed_line() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    let (from, to) = (spaces.pg(), spaces.nats());
    let source = esrc::connect(&from).await.unwrap();
    seed(&source, "Tab", 3, 4, 2).await;
    let original = contents(&source, &["Tab"]).await;
    let file = ok(&["export", &from]);
    assert_eq!(file.lines().count(), 12);

    // Line 5 is broken: the four before it are stored, and the command says where.
    let mut lines: Vec<String> = file.lines().map(str::to_owned).collect();
    let good = std::mem::replace(&mut lines[4], "{\"format\":1,\"category\":".to_owned());
    let broken = run(&["import", &to], &(lines.join("\n") + "\n"));
    assert_eq!(broken.status.code(), Some(65), "malformed input");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("line 5:"), "{stderr}");
    let target = esrc::connect(&to).await.unwrap();
    assert_eq!(
        target.count_after(&["Tab"], Position::ZERO).await.unwrap(),
        4
    );

    lines[4] = good;
    let said = ok_with_input(&["import", &to], &(lines.join("\n") + "\n"));
    assert!(said.contains("Stored 8 new events; 0 were"), "{said}");
    assert_eq!(contents(&target, &["Tab"]).await, original);
    let said = ok_with_input(&["import", &to], &file);
    assert!(said.contains("Stored 0 new events"), "{said}");
    assert_eq!(contents(&target, &["Tab"]).await, original);

    // And back: exported from NATS, imported into PostgreSQL.
    let back = spaces.pg();
    let said = ok_with_input(&["import", &back], &ok(&["export", &to]));
    assert!(said.contains("Stored 12 new events"), "{said}");
    assert_eq!(
        contents(&esrc::connect(&back).await.unwrap(), &["Tab"]).await,
        original
    );
}

fn ok_with_input(args: &[&str], input: &str) -> String {
    let output = run(args, input);
    assert!(
        output.status.success(),
        "esrc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_new_events() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    for url in [spaces.pg(), spaces.nats()] {
        let store = esrc::connect(&url).await.unwrap();
        seed(&store, "Tab", 1, 2, 2).await;
        let mut child = esrc()
            .args(["tail", &url, "Tab", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .take(3)
                .map(|line| line.unwrap())
                .collect::<Vec<String>>()
        });
        // Only events stored after it started are shown; give it a moment to start.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let id = Uuid::now_v7();
        for n in 0..3 {
            store
                .publish("Tab", id, Expected::Exact(esrc::Version(n)), vec![event(n)])
                .await
                .unwrap();
        }
        let lines = tokio::task::spawn_blocking(move || reader.join().unwrap());
        let lines = tokio::time::timeout(Duration::from_secs(30), lines)
            .await
            .expect("tail printed three lines")
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let seen: Vec<(String, u64)> = lines
            .iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    value["id"].as_str().unwrap().to_owned(),
                    value["version"].as_u64().unwrap(),
                )
            })
            .collect();
        let id = id.to_string();
        assert_eq!(seen, [(id.clone(), 1), (id.clone(), 2), (id, 3)]);
    }
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn import_0_1_moves_a_stream_written_the_way_0_1_wrote_it() {
    use esrc::nats::async_nats::{self, HeaderMap, jetstream};

    let Some(servers) = servers() else { return };
    let nats_url = servers.1.clone();
    let mut spaces = Namespaces::new(servers);
    let to = spaces.pg();

    // esrc 0.1: subjects <prefix>.<event name>.<id>, the schema version in `Esrc-Version`,
    // the subject's last sequence checked on publish, no event id.
    let client = async_nats::connect(&nats_url).await.unwrap();
    let context = jetstream::new(client);
    let prefix = format!("legacy_{}", Uuid::new_v4().simple());
    let stream = prefix.to_uppercase();
    context
        .create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut last: BTreeMap<Uuid, u64> = BTreeMap::new();
    let writes = [
        (ann, "Tab", Some("2")),
        (bob, "Tab", None),
        (ann, "Tab", Some("2")),
        (ann, "Tab", Some("3")),
    ];
    for (n, (id, name, version)) in writes.iter().enumerate() {
        let mut headers = HeaderMap::new();
        if let Some(version) = version {
            headers.insert("Esrc-Version", *version);
        }
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            last.get(id).copied().unwrap_or(0).to_string().as_str(),
        );
        let ack = context
            .publish_with_headers(
                format!("{prefix}.{name}.{id}"),
                headers,
                format!(r#"{{"n":{n}}}"#).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        last.insert(*id, ack.sequence);
    }

    let said = ok(&["import-0.1", &nats_url, "--stream", &stream, &to]);
    assert!(said.contains("Stored 4 new events"), "{said}");
    let target = esrc::connect(&to).await.unwrap();
    let imported = contents(&target, &["Tab"]).await;
    let summary: Vec<(Uuid, u64, u32, String)> = imported
        .iter()
        .map(|e| (e.1, e.2, e.5, String::from_utf8(e.7.clone()).unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (ann, 1, 2, r#"{"n":0}"#.to_owned()),
            (bob, 1, 1, r#"{"n":1}"#.to_owned()),
            (ann, 2, 2, r#"{"n":2}"#.to_owned()),
            (ann, 3, 3, r#"{"n":3}"#.to_owned()),
        ],
        "versions by subject, schema versions and payloads as 0.1 stored them"
    );
    let said = ok(&["import-0.1", &nats_url, "--stream", &stream, &to]);
    assert!(said.contains("Stored 0 new events"), "{said}");
    assert_eq!(contents(&target, &["Tab"]).await, imported);
    context.delete_stream(&stream).await.unwrap();
}

/// Ctrl-C (SIGINT) stops a copy with status 130, and its checkpoint never covers events
/// it had gathered but not stored: run again, it stores every event once.
#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_copy_checkpoints_only_what_it_stored() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    let (from, to) = (spaces.pg(), spaces.nats());
    let source = esrc::connect(&from).await.unwrap();
    seed(&source, "Tab", 100, 200, 50).await;
    let original = contents(&source, &["Tab"]).await;
    let target = esrc::connect(&to).await.unwrap();
    let job = format!("esrc-copy-{}", original[0].3.simple());

    let child = esrc()
        .args(["copy", &from, &to, "--batch", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while target.load_checkpoint(&job).await.unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint after a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "interrupted");

    let checkpoint = target.load_checkpoint(&job).await.unwrap().unwrap();
    let mut covered = Vec::new();
    let mut events = pin!(source.replay(&["Tab"], Position::ZERO));
    while let Some(envelope) = events.next().await {
        let envelope = envelope.unwrap();
        if envelope.position <= checkpoint {
            covered.push(envelope.event_id);
        }
    }
    let stored: std::collections::HashSet<Uuid> = contents(&target, &["Tab"])
        .await
        .into_iter()
        .map(|e| e.3)
        .collect();
    let missing = covered.iter().filter(|id| !stored.contains(id)).count();
    assert_eq!(missing, 0, "the checkpoint covers only stored events");

    ok(&["copy", &from, &to, "--batch", "10"]);
    assert_eq!(
        contents(&target, &["Tab"]).await,
        original,
        "everything once, in order"
    );
}

/// `status --watch --json` prints one object a second; a projection's lag moves in it as
/// events are stored.
#[esrc_conformance::requires(env = "ESRC_POSTGRES_URL", env = "ESRC_NATS_URL")]
#[tokio::test(flavor = "multi_thread")]
async fn status_watch_refreshes_the_lag() {
    let Some(servers) = servers() else { return };
    let mut spaces = Namespaces::new(servers);
    let url = spaces.pg();
    let store = esrc::connect(&url).await.unwrap();
    seed(&store, "Tab", 1, 2, 2).await;
    let head = store.head(&["Tab"]).await.unwrap();
    store.save_checkpoint("watched", head).await.unwrap();
    let mut child = esrc()
        .args(["status", &url, "--watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel::<u64>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let status: serde_json::Value = serde_json::from_str(&line).unwrap();
            let lag = status["projections"][0]["lag"].as_u64().unwrap();
            if lines.send(lag).is_err() {
                return;
            }
        }
    });
    let next = |received: &std::sync::mpsc::Receiver<u64>| {
        received
            .recv_timeout(Duration::from_secs(30))
            .expect("a refresh")
    };
    assert_eq!(next(&received), 0, "caught up at first");
    let id = Uuid::now_v7();
    store
        .publish(
            "Tab",
            id,
            Expected::NoStream,
            vec![event(0), event(1), event(2)],
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut lag = 0;
    while lag != 3 && started.elapsed() < Duration::from_secs(30) {
        lag = next(&received);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lag, 3, "a later refresh counts the three new events");
}
