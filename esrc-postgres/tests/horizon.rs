//! The readers' horizon: only esrc's own appends in flight hold readers back; any other
//! transaction of the server, in this database or another, holds none; an append in a
//! transaction that wrote something else first is never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::pin::pin;
use std::time::Duration;

use esrc_core::{
    Envelope, Error, Event, Expected, NewEvent, Position, Publish, Replay, Subscribe, Versioned,
};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum NoteEvent {
    Written { n: u32 },
}

impl Versioned for NoteEvent {}
impl Event for NoteEvent {
    const NAME: &'static str = "Note";
}

fn note(n: u32) -> NewEvent {
    NewEvent::new(&NoteEvent::Written { n }).unwrap()
}

async fn next<S: Stream<Item = Result<Envelope, Error>> + Unpin>(stream: &mut S) -> Envelope {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event within the patience")
        .expect("the subscription is live")
        .expect("no error")
}

/// A connection to another database of the same server (`postgres`).
async fn other_database(pg: &common::Postgres) -> PgConnection {
    let options: PgConnectOptions = pg.url.parse().unwrap();
    PgConnection::connect_with(&options.database("postgres").application_name("bystander"))
        .await
        .unwrap()
}

/// Begins a transaction on `connection` and gives it a transaction id, as any write
/// would: it now holds `pg_snapshot_xmin` back on the whole server.
async fn hold_an_id(connection: &mut PgConnection) {
    hold_an_id_in(connection, "READ COMMITTED").await;
}

/// [`hold_an_id`] in a transaction of the `isolation` level.
async fn hold_an_id_in(connection: &mut PgConnection, isolation: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "BEGIN ISOLATION LEVEL {isolation}"
    )))
    .execute(&mut *connection)
    .await
    .unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *connection)
        .await
        .unwrap();
}

/// The reported failure: a transaction with an id, open in another database (or this
/// one) and unrelated to esrc, stalled every subscription and replay until it ended.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_never_appended_holds_no_reader_back() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let mut elsewhere = other_database(&pg).await;
    hold_an_id(&mut elsewhere).await;
    let mut here = pg
        .pool("bystander-here")
        .await
        .acquire()
        .await
        .unwrap()
        .detach();
    hold_an_id(&mut here).await;

    let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
    let appended = store
        .publish("Note", Uuid::now_v7(), Expected::Any, vec![note(1)])
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.position, appended.position);
    let replayed = tokio::time::timeout(
        PATIENCE,
        store.replay(&["Note"], Position::ZERO).collect::<Vec<_>>(),
    )
    .await
    .expect("the replay does not wait for unrelated transactions");
    assert_eq!(replayed.len(), 1);
    assert_eq!(store.held_back_by().await.unwrap(), None);

    sqlx::query("ROLLBACK")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut here).await.unwrap();
}

/// An append whose transaction is still open holds readers back (its events may land
/// below those committed after it), and `held_back_by` names its session.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_append_holds_readers_back_and_is_named() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let mut open = store.pool().begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    let first = store
        .publish_in(
            &mut open,
            "Note",
            Uuid::now_v7(),
            Expected::Any,
            vec![note(1)],
        )
        .await
        .unwrap();
    let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
    let second = store
        .publish("Note", Uuid::now_v7(), Expected::Any, vec![note(2)])
        .await
        .unwrap();
    assert!(first.position < second.position);
    let early = tokio::time::timeout(Duration::from_millis(500), subscription.next()).await;
    assert!(early.is_err(), "delivered past an open append: {early:?}");
    let blocker = store.held_back_by().await.unwrap().expect("a blocker");
    assert_eq!(blocker.pid, pid);
    assert!(
        blocker.state.starts_with("idle in transaction"),
        "{blocker}"
    );
    assert!(blocker.to_string().contains(&format!("pid {pid}")));
    assert_eq!(
        store.count_after(&["Note"], Position::ZERO).await.unwrap(),
        1,
        "a projector's lag counts the committed event held back"
    );

    open.commit().await.unwrap();
    assert_eq!(next(&mut subscription).await.position, first.position);
    assert_eq!(next(&mut subscription).await.position, second.position);
    assert_eq!(store.held_back_by().await.unwrap(), None);
}

/// A transaction that wrote something else before its first append had an id while it
/// did not look like an esrc writer, so readers may have passed that id: its events must
/// still come after everything they delivered — in read committed, and with a snapshot
/// fixed for the whole transaction (repeatable read, serializable).
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_after_other_writes_in_its_transaction_is_never_skipped() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    for isolation in ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"] {
        let store = pg.store().await;
        let mut late = store.pool().acquire().await.unwrap();
        hold_an_id_in(&mut late, isolation).await;
        let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
        let early = store
            .publish("Note", Uuid::now_v7(), Expected::Any, vec![note(1)])
            .await
            .unwrap();
        assert_eq!(
            next(&mut subscription).await.position,
            early.position,
            "{isolation}: the late transaction does not hold readers back before it appends"
        );
        let id = Uuid::now_v7();
        let first = store
            .publish_in(&mut late, "Note", id, Expected::NoStream, vec![note(2)])
            .await
            .unwrap();
        let second = store
            .publish_in(&mut late, "Note", id, Expected::Any, vec![note(3), note(4)])
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut *late).await.unwrap();
        assert!(
            first.position > early.position,
            "{isolation}: {first:?} after {early:?}"
        );
        assert_eq!(second.version.get(), 3);
        for expected in [
            first.position,
            Position(second.position.get() - 1),
            second.position,
        ] {
            assert_eq!(
                next(&mut subscription).await.position,
                expected,
                "{isolation}"
            );
        }
    }
}

/// Many writers at once — plain appends, appends in transactions that wrote something
/// else first, and unrelated transactions holding ids — and a subscriber: it receives
/// every event once, in increasing positions. Repeated, to catch a rare interleaving.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_reach_a_subscriber_whole_and_in_order() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    for _round in 0..5 {
        let store = pg.store().await;
        let bystanders = pg.pool("bystanders").await;
        let mut subscription = pin!(store.subscribe(&["Note"], Position::ZERO));
        let mut writers = Vec::new();
        for writer in 0..6u32 {
            let store = store.clone();
            let bystanders = bystanders.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..20u32 {
                    let event = note(writer * 1000 + n);
                    match (writer + n) % 3 {
                        0 => {
                            store
                                .publish("Note", Uuid::now_v7(), Expected::Any, vec![event])
                                .await
                                .unwrap();
                        }
                        1 => {
                            let mut tx = store.pool().begin().await.unwrap();
                            sqlx::query("SELECT pg_current_xact_id()")
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(u64::from(n % 4))).await;
                            store
                                .publish_in(
                                    &mut tx,
                                    "Note",
                                    Uuid::now_v7(),
                                    Expected::Any,
                                    vec![event],
                                )
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(u64::from(n % 3))).await;
                            tx.commit().await.unwrap();
                        }
                        _ => {
                            let mut other = bystanders.begin().await.unwrap();
                            sqlx::query("SELECT pg_current_xact_id()")
                                .execute(&mut *other)
                                .await
                                .unwrap();
                            store
                                .publish("Note", Uuid::now_v7(), Expected::Any, vec![event])
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            other.rollback().await.unwrap();
                        }
                    }
                }
            }));
        }
        let mut seen = HashSet::new();
        let mut last = Position::ZERO;
        while seen.len() < 120 {
            let envelope = next(&mut subscription).await;
            assert!(
                envelope.position > last,
                "{:?} after {last:?}",
                envelope.position
            );
            last = envelope.position;
            assert!(seen.insert(envelope.event_id), "delivered twice");
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let replayed: Vec<_> = store.replay(&["Note"], Position::ZERO).collect().await;
        assert_eq!(replayed.len(), 120);
    }
}

/// Removes what the migrations after `version` created, as a store of an earlier
/// version of esrc has it.
async fn downgrade(store: &esrc_postgres::PgStore, version: i32) {
    let s = store.schema();
    // `position_base` of migration 2 is left calling the missing `append_base`: this
    // version never calls it.
    let mut sql = format!("DROP FUNCTION \"{s}\".append_base();");
    if version < 3 {
        sql.push_str(&format!(
            "ALTER TABLE \"{s}\".events DROP COLUMN event_type, DROP COLUMN tags;
             DROP TABLE \"{s}\".event_tags;"
        ));
    }
    if version < 2 {
        sql.push_str(&format!(
            "DROP FUNCTION \"{s}\".position_base(); DROP TABLE \"{s}\".late_ids;"
        ));
    }
    sql.push_str(&format!(
        "DELETE FROM \"{s}\".migrations WHERE version > {version}"
    ));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
}

#[track_caller]
fn assert_says_to_migrate<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    let error = result.expect_err(what);
    assert!(
        esrc_core::Chain(&error)
            .to_string()
            .contains("PgStore::migrate()"),
        "{what}: {error}"
    );
}

/// Stores created by earlier versions (migration 1: before `position_base`; migration
/// 2: before types and tags; migration 3: before each store's own writer lock): what
/// needs a later migration says to migrate (appends and reads before migration 3,
/// appends in a caller's transaction before migration 4), `migrate` upgrades the store,
/// its events read back as they were (untagged, without a type), and new ones append
/// after them.
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn stores_of_previous_versions_say_to_migrate_then_upgrade() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    for version in [1, 2, 3] {
        let store = pg.store().await;
        let mut stored = vec![
            store
                .publish("Note", Uuid::now_v7(), Expected::Any, vec![note(1)])
                .await
                .unwrap()
                .position,
        ];
        downgrade(&store, version).await;
        let appended = store
            .publish("Note", Uuid::now_v7(), Expected::Any, vec![note(2)])
            .await;
        let replayed: Vec<_> = store.replay(&["Note"], Position::ZERO).collect().await;
        if version < 3 {
            assert_says_to_migrate(appended, "an append before migrating");
            assert_says_to_migrate(
                replayed.into_iter().next().unwrap(),
                "a replay before migrating",
            );
        } else {
            // An append alone in its transaction takes the new writer lock by itself.
            stored.push(appended.unwrap().position);
            assert_eq!(replayed.len(), 2, "a replay of a store at migration 3");
        }
        let (refused, tx) = publish_in_a_transaction(&store, note(3)).await;
        drop(tx);
        assert_says_to_migrate(refused, "an append in a caller's transaction");

        store.migrate().await.unwrap();
        let (after, tx) = publish_in_a_transaction(&store, note(3)).await;
        stored.push(after.unwrap().position);
        tx.commit().await.unwrap();
        let replayed: Vec<_> = store
            .replay(&["Note"], Position::ZERO)
            .map(|e| e.unwrap())
            .collect()
            .await;
        let positions: Vec<_> = replayed.iter().map(|e| e.position).collect();
        assert_eq!(positions, stored, "from migration {version}");
        if version < 3 {
            assert!(
                replayed[0].tags.is_empty() && replayed[0].event_type.is_empty(),
                "an event stored before types and tags has neither"
            );
        }
    }
}

/// `publish_in` of `event` to a new stream, in a transaction left open for the caller.
async fn publish_in_a_transaction(
    store: &esrc_postgres::PgStore,
    event: NewEvent,
) -> (
    Result<esrc_core::Appended, Error>,
    sqlx::Transaction<'static, sqlx::Postgres>,
) {
    let mut tx = store.pool().begin().await.unwrap();
    let appended = store
        .publish_in(&mut tx, "Note", Uuid::now_v7(), Expected::Any, vec![event])
        .await;
    (appended, tx)
}
