//! What only PostgreSQL can show: dropped connections, hand-corrupted rows, migrations run
//! concurrently, paging (the horizon is in `horizon.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::pin;
use std::time::Duration;

use esrc_core::{
    Error, Event, Expected, NewEvent, Position, Publish, Replay, ReplayOne, Subscribe, Version,
    Versioned,
};
use esrc_postgres::PgStore;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum NoteEvent<'a> {
    Written { text: &'a str },
}

impl Versioned for NoteEvent<'_> {}
impl Event for NoteEvent<'_> {
    const NAME: &'static str = "Note";
}

fn note(text: &str) -> NewEvent {
    NewEvent::new(&NoteEvent::Written { text }).unwrap()
}

async fn next<S: futures::Stream<Item = Result<esrc_core::Envelope, Error>> + Unpin>(
    stream: &mut S,
) -> esrc_core::Envelope {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event within the patience")
        .expect("the subscription is live")
        .expect("no error")
}

#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_survives_terminated_connections() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let reconnects = || {
        esrc_conformance::metrics::Kept::installed()
            .counter(
                "esrc_subscription_reconnects_total",
                &[("store", "postgres")],
            )
            .unwrap_or(0)
    };
    let reconnected_before = reconnects();
    let store = pg.store().await;
    let id = Uuid::now_v7();
    let mut written = Vec::new();
    for n in 0..5 {
        let event = note(&format!("before {n}"));
        written.push(event.event_id);
        store
            .publish("Note", id, Expected::Any, vec![event])
            .await
            .unwrap();
    }
    let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next(&mut subscription).await);
    }

    let admin = pg.pool("esrc-admin").await;
    for round in 0..2 {
        // Kill every connection of the store: its pool and its LISTEN connection.
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(store.schema())
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(
            !killed.is_empty(),
            "round {round}: the store had connections to kill"
        );
        for n in 0..5 {
            let event = note(&format!("round {round} event {n}"));
            written.push(event.event_id);
            // The first append after the kill may meet a dead pooled connection: an
            // ambiguous failure, retried with the same event ids.
            let mut attempts = 0;
            loop {
                attempts += 1;
                match store
                    .publish("Note", id, Expected::Any, vec![event.clone()])
                    .await
                {
                    Ok(_) => break,
                    Err(error) if error.is_retryable() && attempts < 20 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(error) => panic!("append after a terminated connection: {error}"),
                }
            }
        }
        for _ in 0..5 {
            seen.push(next(&mut subscription).await);
        }
    }
    let ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids, written,
        "every event once, in order, across reconnections"
    );
    let extra = tokio::time::timeout(Duration::from_millis(500), subscription.next()).await;
    assert!(
        extra.is_err(),
        "nothing repeated after reconnecting: {extra:?}"
    );
    // The metric of what the subscription rode out moved (`esrc_core::metrics`).
    assert!(reconnects() > reconnected_before);
}

#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn corrupt_json_written_by_hand_is_a_format_error() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let id = Uuid::now_v7();
    let appended = store
        .publish(
            "Note",
            id,
            Expected::NoStream,
            vec![note("fine"), note("soon broken")],
        )
        .await
        .unwrap();
    let corrupt = format!(
        "UPDATE \"{}\".events SET payload = convert_to('{{\"Written\": {{\"text\": ', 'UTF8') WHERE version = 2",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(corrupt))
        .execute(store.pool())
        .await
        .unwrap();

    let events: Vec<_> = store
        .replay_one("Note", id, Version::ZERO)
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(events.len(), 2, "the corrupt row is still read");
    assert!(events[0].deserialize::<NoteEvent<'_>>().is_ok());
    match events[1].deserialize::<NoteEvent<'_>>() {
        Err(Error::Format {
            category,
            position,
            schema_version,
            ..
        }) => {
            assert_eq!(
                (category.as_str(), position, schema_version),
                ("Note", appended.position, 1)
            );
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

/// A stored value esrc never writes (a negative schema version) is a format error that
/// names the event, not a bare backend error.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn an_invalid_stored_column_is_a_format_error_naming_the_event() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let id = Uuid::now_v7();
    let appended = store
        .publish("Note", id, Expected::NoStream, vec![note("soon broken")])
        .await
        .unwrap();
    let corrupt = format!(
        "UPDATE \"{}\".events SET schema_version = -1 WHERE version = 1",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(corrupt))
        .execute(store.pool())
        .await
        .unwrap();
    let events: Vec<_> = store.replay_one("Note", id, Version::ZERO).collect().await;
    match events.as_slice() {
        [
            Err(Error::Format {
                category,
                position,
                source: esrc_core::DecodeError::Field { field, found },
                ..
            }),
        ] => {
            assert_eq!((category.as_str(), *position), ("Note", appended.position));
            assert_eq!((*field, found.as_deref()), ("schema_version", Some("-1")));
        }
        other => panic!("expected one Error::Format, got {other:?}"),
    }
}

#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn events_decode_without_copying_from_postgres_rows() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let id = Uuid::now_v7();
    store
        .publish("Note", id, Expected::NoStream, vec![note("borrowed")])
        .await
        .unwrap();
    let events: Vec<_> = store.replay_one("Note", id, Version::ZERO).collect().await;
    let envelope = events[0].as_ref().unwrap();
    let NoteEvent::Written { text } = envelope.deserialize::<NoteEvent<'_>>().unwrap();
    assert_eq!(text, "borrowed");
    assert!(
        envelope.payload.as_ptr_range().contains(&text.as_ptr()),
        "the &str points into the payload"
    );
}

#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_concurrently() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let schema = pg.fresh_schema();
    let pool = pg.pool("esrc-migrate").await;
    let stores: Vec<PgStore> = (0..4)
        .map(|_| {
            PgStore::builder()
                .schema(schema.clone())
                .build(pool.clone())
                .unwrap()
        })
        .collect();
    let results = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for result in results {
        result.expect("concurrent migrations all succeed");
    }
    stores[0]
        .migrate()
        .await
        .expect("migrating again is a no-op");
    let applied: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(applied, [1, 2, 3, 4], "each migration is recorded once");
    stores[1]
        .publish("Note", Uuid::now_v7(), Expected::NoStream, vec![note("x")])
        .await
        .unwrap();
}

#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn invalid_schema_names_are_refused() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let pool = pg.pool("esrc-names").await;
    for schema in ["", "a.b", "x\"; DROP TABLE y; --", "späce", &"s".repeat(59)] {
        let built = PgStore::builder().schema(schema).build(pool.clone());
        assert!(
            matches!(built, Err(Error::InvalidName { .. })),
            "{schema:?}"
        );
    }
}

/// Subscriptions and replays of categories read in pages of `page_size` rows: with pages
/// of 3, every read still returns each of 20 events once, in order.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn a_tiny_page_size_still_reads_every_event_once() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let schema = pg.fresh_schema();
    let store = PgStore::builder()
        .schema(schema.clone())
        .page_size(3)
        .build(pg.pool(&schema).await)
        .unwrap();
    store.migrate().await.unwrap();
    let id = Uuid::now_v7();
    let batch: Vec<NewEvent> = (0..20).map(|n| note(&n.to_string())).collect();
    store
        .publish("Note", id, Expected::NoStream, batch)
        .await
        .unwrap();
    let one: Vec<_> = store
        .replay_one("Note", id, Version(4))
        .map(|e| e.unwrap().version.get())
        .collect()
        .await;
    assert_eq!(one, (5..=20).collect::<Vec<_>>());
    let all: Vec<_> = store
        .replay(&["Note"], Position::ZERO)
        .map(|e| e.unwrap().version.get())
        .collect()
        .await;
    assert_eq!(all, (1..=20).collect::<Vec<_>>());
    let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
    for version in 1..=20 {
        assert_eq!(next(&mut subscription).await.version, Version(version));
    }
}

/// A store built with `notify(false)` wakes no subscriber of another process: its commit
/// waits for the next notification (here, another store's) or poll, and is delivered
/// then, in order.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_built_without_notify_wakes_no_other_process() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let schema = pg.fresh_schema();
    let build = |builder: esrc_postgres::PgStoreBuilder, pool| {
        builder.schema(schema.clone()).build(pool).unwrap()
    };
    let notifying = build(PgStore::builder(), pg.pool("esrc-notifying").await);
    notifying.migrate().await.unwrap();
    let silent = build(
        PgStore::builder().notify(false),
        pg.pool("esrc-silent").await,
    );
    // Another process, as far as signals go: its own store, polling every 20 s only (it
    // must poll: another test's open transaction may hold the horizon back, and its end
    // notifies nobody; 20 s is far beyond the 1 s checked below, and well within the
    // patience).
    let listening = build(
        PgStore::builder().poll_interval(Duration::from_secs(20)),
        pg.pool("esrc-listening").await,
    );
    let mut subscription = pin!(listening.subscribe(&["Note"], Position::ZERO));
    let id = Uuid::now_v7();

    notifying
        .publish("Note", id, Expected::NoStream, vec![note("one")])
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.version, Version(1));
    // Wait until the subscriber's LISTEN is in place (and the read it triggers is done),
    // so that the next commits can only reach it by notification or by its next poll.
    let admin = pg.pool("esrc-admin").await;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
            )
            .bind(&schema)
            .fetch_one(&admin)
            .await
            .unwrap();
            if listening > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    // Let the subscriber take the wake-up that comes with its LISTEN: a read that finds
    // nothing new.
    let idle = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(idle.is_err(), "nothing new yet: {idle:?}");

    silent
        .publish("Note", id, Expected::Exact(Version(1)), vec![note("two")])
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), subscription.next()).await;
    assert!(
        early.is_err(),
        "no notification and no poll yet: nothing delivered, got {early:?}"
    );

    notifying
        .publish("Note", id, Expected::Exact(Version(2)), vec![note("three")])
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.version, Version(2));
    assert_eq!(next(&mut subscription).await.version, Version(3));
}

/// A read model in the store's database: one row per event, and a running total.
struct Ledger {
    schema: String,
    fail_at: Option<Position>,
    pause: Duration,
}

impl Ledger {
    /// The ledger in `store`'s schema: never failing, never pausing.
    fn new(store: &PgStore) -> Self {
        Self {
            schema: store.schema().to_owned(),
            fail_at: None,
            pause: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LedgerError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("told to fail at {0}")]
    Refused(Position),
}

impl esrc_postgres::TransactionalProject for Ledger {
    type EventGroup<'de> = NoteEvent<'de>;
    type Error = LedgerError;

    async fn project<'de>(
        &mut self,
        context: esrc_core::Context<'de, NoteEvent<'de>>,
        transaction: &mut sqlx::PgConnection,
    ) -> Result<(), LedgerError> {
        if Some(context.position()) == self.fail_at {
            return Err(LedgerError::Refused(context.position()));
        }
        let schema = &self.schema;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".ledger (event_id) VALUES ($1)"
        )))
        .bind(context.event_id())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE \"{schema}\".totals SET n = n + 1"
        )))
        .execute(&mut *transaction)
        .await?;
        tokio::time::sleep(self.pause).await;
        Ok(())
    }
}

async fn ledger_store(pg: &common::Postgres) -> PgStore {
    let store = pg.store().await;
    let schema = store.schema();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".ledger (event_id uuid PRIMARY KEY);
         CREATE TABLE \"{schema}\".totals (n bigint NOT NULL);
         INSERT INTO \"{schema}\".totals VALUES (0);"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store
}

/// Publishes `count` notes to a new stream in one batch; returns the last position.
async fn publish_notes(store: &PgStore, count: u32) -> Position {
    let batch: Vec<NewEvent> = (0..count).map(|n| note(&n.to_string())).collect();
    store
        .publish("Note", Uuid::now_v7(), Expected::NoStream, batch)
        .await
        .unwrap()
        .position
}

async fn totals(store: &PgStore) -> (i64, i64) {
    let schema = store.schema();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT n FROM \"{schema}\".totals), (SELECT count(*) FROM \"{schema}\".ledger)"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// Killed mid-batch and restarted, a transactional projection counts every event exactly
/// once: the uncommitted batch vanished with its checkpoint.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_projection_is_exactly_once_across_a_crash() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = ledger_store(&pg).await;
    let last = publish_notes(&store, 40).await;

    let ledger = Ledger {
        pause: Duration::from_millis(3),
        ..Ledger::new(&store)
    };
    let projector = esrc_postgres::TransactionalProjector::new(store.clone(), "ledger", ledger)
        .checkpoint_every(9)
        .checkpoint_interval(Duration::from_secs(3600));
    let progress = projector.progress();
    let task = tokio::spawn(projector.run_until(std::future::pending()));
    tokio::time::timeout(PATIENCE, async {
        // Wait until a batch is committed and the next one is half done.
        while progress.checkpoint() == Position::ZERO
            || progress.projected() <= progress.checkpoint()
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    task.abort();
    let _ = task.await;
    let (total, rows) = totals(&store).await;
    let checkpoint = store_checkpoint(&store).await;
    assert!(
        checkpoint > Position::ZERO && checkpoint < last,
        "killed mid-stream at {checkpoint}"
    );
    assert_eq!(total, rows);
    assert_eq!(total % 9, 0, "only whole batches were committed: {total}");

    let ledger = Ledger::new(&store);
    let projector = esrc_postgres::TransactionalProjector::new(store.clone(), "ledger", ledger)
        .checkpoint_every(9);
    let progress = projector.progress();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(projector.run_until(async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(PATIENCE, async {
        while progress.projected() < last {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        totals(&store).await,
        (40, 40),
        "every event counted exactly once"
    );
    assert_eq!(store_checkpoint(&store).await, last);
}

/// Spawned, a transactional projector keeps its batch invisible until it commits, reports
/// its lag, and commits the open batch when stopped.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn a_spawned_transactional_projector_reports_lag_and_commits_when_stopped() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = ledger_store(&pg).await;
    let last = publish_notes(&store, 10).await;
    let ledger = Ledger::new(&store);
    let running = esrc_postgres::TransactionalProjector::new(store.clone(), "ledger", ledger)
        .checkpoint_every(1_000)
        .checkpoint_interval(Duration::from_secs(3600))
        .spawn();
    assert_eq!(running.name(), "ledger");
    let caught_up = tokio::time::timeout(PATIENCE, running.caught_up()).await;
    assert!(caught_up.unwrap().unwrap(), "the projector ended early");
    assert!(running.progress().projected() >= last);
    assert_eq!(running.progress().checkpoint(), Position::ZERO);
    assert!(
        last.get() > 1_000_000,
        "positions come from transaction ids: {last}"
    );
    assert_eq!(
        running.lag().await.unwrap(),
        10,
        "nothing committed yet: ten events behind, whatever their positions"
    );
    assert_eq!(
        totals(&store).await,
        (0, 0),
        "the open batch is not visible"
    );

    let ledger = running.stop().await.unwrap();
    assert_eq!(ledger.schema, store.schema());
    assert_eq!(totals(&store).await, (10, 10));
    assert_eq!(store_checkpoint(&store).await, last);
}

/// The positions of every stored note, in order.
async fn note_positions(store: &PgStore) -> Vec<Position> {
    store
        .replay(&["Note"], Position::ZERO)
        .map(|e| e.unwrap().position)
        .collect()
        .await
}

async fn store_checkpoint(store: &PgStore) -> Position {
    use esrc_core::CheckpointStore;
    store
        .load_checkpoint("ledger")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// A failing event rolls its whole batch back: read model and checkpoint agree.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn a_failing_transactional_batch_rolls_back_with_its_checkpoint() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = ledger_store(&pg).await;
    publish_notes(&store, 10).await;
    let positions = note_positions(&store).await;
    let ledger = Ledger {
        fail_at: Some(positions[6]),
        ..Ledger::new(&store)
    };
    let outcome = esrc_postgres::TransactionalProjector::new(store.clone(), "ledger", ledger)
        .checkpoint_every(4)
        .run_until(std::future::pending())
        .await;
    assert!(
        matches!(outcome, Err(esrc_core::ProjectError::Project { position, .. }) if position == positions[6])
    );
    assert_eq!(
        totals(&store).await,
        (4, 4),
        "the batch with the failure was rolled back"
    );
    assert_eq!(store_checkpoint(&store).await, positions[3]);
}

/// A failure the policy retries rolls a transactional batch back and starts again from
/// the checkpoint: the metrics count a restart by `rollback`, the retries, and the stop
/// when the policy gives up (`esrc_core::metrics`).
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn a_retried_transactional_batch_is_a_rollback_restart_in_the_metrics() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let kept = esrc_conformance::metrics::Kept::installed();
    let store = ledger_store(&pg).await;
    publish_notes(&store, 10).await;
    let positions = note_positions(&store).await;
    let ledger = Ledger {
        fail_at: Some(positions[6]),
        ..Ledger::new(&store)
    };
    let name = "ledger-rolled-back";
    let outcome = esrc_postgres::TransactionalProjector::new(store.clone(), name, ledger)
        .checkpoint_every(4)
        .on_error(esrc_core::projector::ErrorPolicy::Retry {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
            attempts: 3,
        })
        .run_until(std::future::pending())
        .await;
    assert!(
        outcome.is_err(),
        "the event fails every time: the policy gives up"
    );
    let count = |metric, label, value| {
        kept.counter(metric, &[("projection", name), (label, value)])
            .unwrap_or(0)
    };
    assert!(count("esrc_projector_restarts_total", "reason", "rollback") >= 1);
    assert!(count("esrc_projector_errors_total", "outcome", "retried") >= 1);
    assert_eq!(
        count("esrc_projector_errors_total", "outcome", "stopped"),
        1
    );
    assert_eq!(
        totals(&store).await,
        (4, 4),
        "the failed batch left nothing"
    );
}

/// A connection lost while a transactional batch is open (a failover, a restart) rolls
/// the batch back; the projector waits for the store, starts again from its committed
/// checkpoint, and still counts every event exactly once.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_projector_rides_out_a_lost_connection() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = ledger_store(&pg).await;
    let last = publish_notes(&store, 5).await;
    let positions = note_positions(&store).await;
    let ledger = Ledger {
        pause: Duration::from_millis(300),
        ..Ledger::new(&store)
    };
    let running = esrc_postgres::TransactionalProjector::new(store.clone(), "ledger", ledger)
        .checkpoint_every(1)
        .spawn();
    tokio::time::timeout(PATIENCE, async {
        while running.progress().projected() < positions[1] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // The third event's batch is open and pausing: its commit will find the connection gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let admin = pg.pool("esrc-admin").await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(store.schema())
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the store had connections to kill");
    tokio::time::timeout(PATIENCE, async {
        while running.progress().checkpoint() < last && !running.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(!running.is_finished(), "the projector stopped");
    running.stop().await.unwrap();
    assert_eq!(
        totals(&store).await,
        (5, 5),
        "every event counted exactly once"
    );
    assert_eq!(store_checkpoint(&store).await, last);
}

/// An unreachable server fails at once, saying where it tried and why, rather than after
/// a pool timeout.
#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_host_and_port() {
    let started = std::time::Instant::now();
    let error = PgStore::builder()
        .connect_timeout(Duration::from_secs(5))
        .connect("postgres://esrc@127.0.0.1:1/nowhere")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let text = error.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("nowhere"),
        "{text}"
    );
    let chain = esrc_core::Chain(&error).to_string();
    assert!(chain.to_lowercase().contains("refused"), "{chain}");
    // Down the chain of sources (what anyhow or eyre print), no message repeats the next.
    let mut above = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(current) = cause {
        let line = current.to_string();
        assert!(
            !above.contains(&line),
            "`{above}` repeats its cause `{line}`"
        );
        above = line;
        cause = current.source();
    }
    assert!(error.is_retryable(), "a server that is down may come up");
}

/// A store used before `migrate` says what to do.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn a_store_without_its_tables_says_to_migrate() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let schema = pg.fresh_schema();
    let store = PgStore::builder()
        .schema(schema)
        .build(pg.pool("not-migrated").await)
        .unwrap();
    let error = store
        .publish(
            "Tab",
            Uuid::now_v7(),
            Expected::Any,
            vec![NewEvent::from_payload(1, "{}")],
        )
        .await
        .expect_err("no tables");
    let text = error.to_string();
    assert!(text.contains("`PgStore::migrate()`"), "{text}");
    assert!(text.contains("?migrate=true"), "the URL form too: {text}");
    assert!(text.contains("`esrc status"), "and the command: {text}");
    assert!(!text.contains(" at line "), "no server source line: {text}");
    assert!(!error.is_retryable());

    // When another schema of the database holds esrc's tables, the error names it (the
    // `schema` option was forgotten or misspelt) — on a write, a read and a checkpoint.
    let present = pg.fresh_schema();
    let migrated = PgStore::builder()
        .schema(present.clone())
        .build(pg.pool("migrated").await)
        .unwrap();
    migrated.migrate().await.unwrap();
    let names_it = |error: esrc_core::Error| {
        let text = error.to_string();
        assert!(
            text.contains(&format!("`{present}`")) && text.contains("?schema="),
            "{text}"
        );
    };
    names_it(
        store
            .publish(
                "Tab",
                Uuid::now_v7(),
                Expected::Any,
                vec![NewEvent::from_payload(1, "{}")],
            )
            .await
            .expect_err("no tables"),
    );
    let read = pin!(store.replay_one("Tab", Uuid::now_v7(), Version::ZERO))
        .next()
        .await;
    names_it(read.expect("an error").expect_err("no tables"));
    names_it(
        esrc_core::CheckpointStore::load_checkpoint(&store, "p")
            .await
            .expect_err("no tables"),
    );
    pg.drop_schemas().await;
}

/// `read` is one statement: the snapshot's row, then the rows of the events after it (of
/// a long stream, the first 256, then `Rest`: `read` reads on as `load` does); a
/// snapshot row esrc cannot read is a typed error naming it.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn snapshot_then_events_is_one_statement_in_version_order() {
    use esrc_conformance::fixtures::{Tally, counted_batch};
    use esrc_core::{DecodeError, ReadExt, Root, SnapshotOrEvent, SnapshotStore};

    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let id = Uuid::now_v7();
    let items = || {
        store
            .snapshot_then_events("Thing", id)
            .expect("PostgreSQL answers both at once")
            .collect::<Vec<_>>()
    };
    let version = |item: &Result<SnapshotOrEvent, Error>| match item {
        Ok(SnapshotOrEvent::Snapshot(snapshot)) => format!("snapshot {}", snapshot.version),
        Ok(SnapshotOrEvent::Event(envelope)) => format!("event {}", envelope.version),
        Ok(SnapshotOrEvent::Rest) => "rest".to_owned(),
        Err(error) => format!("error {error}"),
    };

    store
        .publish("Thing", id, Expected::NoStream, counted_batch(1, 3))
        .await
        .unwrap();
    let listed: Vec<String> = items().await.iter().map(version).collect();
    assert_eq!(listed, ["event 1", "event 2", "event 3"], "no snapshot yet");

    let at_3: Root<Tally> = store.load(id).await.unwrap();
    store.save_root_snapshot(&at_3).await.unwrap();
    store
        .publish(
            "Thing",
            id,
            Expected::Exact(Version(3)),
            counted_batch(4, 2),
        )
        .await
        .unwrap();
    let listed: Vec<String> = items().await.iter().map(version).collect();
    assert_eq!(listed, ["snapshot 3", "event 4", "event 5"]);
    let read: Root<Tally> = store.read(id).await.unwrap();
    assert_eq!((read.version(), read.aggregate().total), (Version(5), 15));

    // A long stream after its snapshot: the statement returns the snapshot and the first
    // 256 events, then says the stream goes on; `read` reads the rest as `load` does.
    store
        .publish(
            "Thing",
            id,
            Expected::Exact(Version(5)),
            counted_batch(6, 600),
        )
        .await
        .unwrap();
    let listed: Vec<String> = items().await.iter().map(version).collect();
    let mut expected = vec!["snapshot 3".to_owned()];
    expected.extend((4..=259).map(|version| format!("event {version}")));
    expected.push("rest".to_owned());
    assert_eq!(listed, expected);
    let read: Root<Tally> = store.read(id).await.unwrap();
    assert_eq!(
        (read.version(), read.aggregate().total),
        (Version(605), (1..=605).sum())
    );

    let corrupt = format!(
        "UPDATE \"{}\".snapshots SET version = -1 WHERE aggregate_id = '{id}'",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(corrupt))
        .execute(store.pool())
        .await
        .unwrap();
    match store.read::<Tally>(id).await {
        Err(Error::Format {
            category,
            source: DecodeError::Field { field, .. },
            ..
        }) => assert_eq!((category.as_str(), field), ("Thing", "version")),
        other => panic!("expected a format error naming the version, got {other:?}"),
    }
    assert!(store.load_snapshot("Thing", id).await.is_err());
}

/// The appends' statements keep one generic plan per connection rather than being
/// planned again on every call (which cost 50 µs an append): after the server's first
/// five custom plans, every further call of each form uses the generic plan.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn appends_are_not_planned_again_on_every_call() {
    use esrc_conformance::fixtures::{counted, counted_batch};

    let Some(pg) = common::postgres().await else {
        return;
    };
    let (store, pool) = on_one_connection(&pg).await;
    // Each kind of append a dozen times in a row, as a workload would send it: the
    // first calls are what the server compares the generic plan with.
    let (singles, batches): (Vec<Uuid>, Vec<Uuid>) =
        (0..12).map(|_| (Uuid::now_v7(), Uuid::now_v7())).unzip();
    type Events = fn() -> Vec<NewEvent>;
    let kinds: [(&[Uuid], Expected, Events); 4] = [
        (&singles, Expected::NoStream, || vec![counted(1)]),
        (&singles, Expected::Exact(Version(1)), || vec![counted(2)]),
        (&batches, Expected::NoStream, || counted_batch(1, 2)),
        (&batches, Expected::Exact(Version(2)), || {
            counted_batch(3, 2)
        }),
    ];
    for (ids, expected, events) in kinds {
        for id in ids {
            store
                .publish("Thing", *id, expected, events())
                .await
                .unwrap();
        }
    }
    let plans = prepared_appends(&pool).await;
    pg.drop_schemas().await;
    assert!(!plans.is_empty(), "the appends' statements are prepared");
    for (statement, generic, custom) in &plans {
        assert!(
            *custom <= 5 && *generic >= 7,
            "{custom} custom and {generic} generic plans for {statement}"
        );
    }
}

/// A command on a root this store wrote last skips the guard that the expected version
/// exists (it has seen that event stored); a root it has not seen, or one that pairs a
/// version with another event's position, still goes through the guard, so a writer that
/// is ahead of the stream is a conflict.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn an_append_after_the_stores_own_skips_the_guard_and_no_other_does() {
    use esrc_conformance::fixtures::counted;

    let Some(pg) = common::postgres().await else {
        return;
    };
    let (store, pool) = on_one_connection(&pg).await;
    // Another store on the same tables has seen none of this store's appends.
    let other = PgStore::builder()
        .schema(store.schema().to_owned())
        .build(pool.clone())
        .unwrap();
    let id = Uuid::now_v7();
    let mut last = store
        .publish("Thing", id, Expected::NoStream, vec![counted(1)])
        .await
        .unwrap();
    for n in 2..=4 {
        let expected = Expected::Last {
            version: last.version,
            position: last.position,
        };
        last = store
            .publish("Thing", id, expected, vec![counted(n)])
            .await
            .unwrap();
    }
    let by_other = other
        .publish(
            "Thing",
            id,
            Expected::Last {
                version: last.version,
                position: last.position,
            },
            vec![counted(5)],
        )
        .await
        .unwrap();
    let ahead = store
        .publish(
            "Thing",
            id,
            Expected::Last {
                version: Version(7),
                position: by_other.position,
            },
            vec![counted(8)],
        )
        .await;
    let mut executions: Vec<(bool, i64)> = prepared_appends(&pool)
        .await
        .into_iter()
        .map(|(statement, generic, custom)| (statement.contains("EXISTS"), generic + custom))
        .collect();
    executions.sort_unstable();
    pg.drop_schemas().await;
    assert!(
        matches!(
            ahead,
            Err(Error::Conflict {
                actual: Version(5),
                ..
            })
        ),
        "{ahead:?}"
    );
    // Unguarded: the three appends after the store's own. Guarded: the first append (a
    // new stream: its own statement), then the other store's and the one ahead of the
    // stream.
    assert_eq!(executions, [(false, 3), (true, 1), (true, 2)]);
}

/// A migrated store in a new schema on a pool of one connection, so that every statement
/// it prepares is prepared, and counted, on that connection.
async fn on_one_connection(pg: &common::Postgres) -> (PgStore, sqlx::PgPool) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url)
        .await
        .unwrap();
    let store = PgStore::builder()
        .schema(pg.fresh_schema())
        .build(pool.clone())
        .unwrap();
    store.migrate().await.unwrap();
    (store, pool)
}

/// The append statements prepared on `pool`'s connection: text, generic and custom plans.
async fn prepared_appends(pool: &sqlx::PgPool) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%INSERT INTO%events%' AND statement NOT LIKE '%pg_prepared%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}
