//! Decisions across streams on PostgreSQL against appends held open in a caller's
//! transaction: a condition waits for an open append of a tag it names, and only for
//! that; the check is atomic with appends made on any connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use esrc_core::{Condition, Decide, Error, Expected, Item, NewEvent, Publish, Query, Tag, Write};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

fn enrolled(course: &str) -> NewEvent {
    NewEvent::from_payload(1, &b"{}"[..])
        .with_type("Enrolled")
        .with_tags([Tag::from_parts("course", course).unwrap()])
}

fn course(course: &str) -> Query {
    Query::new().or(Item::new().tagged(Tag::from_parts("course", course).unwrap()))
}

/// Appends `event` to the Course stream `stream` in a caller's transaction, left open.
async fn open_append(
    store: &esrc_postgres::PgStore,
    stream: Uuid,
    event: NewEvent,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut open = store.pool().begin().await.unwrap();
    store
        .publish_in(&mut open, "Course", stream, Expected::Any, vec![event])
        .await
        .unwrap();
    open
}

/// Starts a conditional append on `query` after `seen`, checks that it waits while
/// `open` is open, commits `open`, and checks that the append then fails its condition.
async fn waits_for_then_fails_on(
    store: &esrc_postgres::PgStore,
    open: sqlx::Transaction<'static, sqlx::Postgres>,
    query: Query,
    seen: esrc_core::Position,
    what: &str,
) {
    let store = store.clone();
    let decision = tokio::spawn(async move {
        store
            .append_if(
                vec![Write::new("Course", Uuid::now_v7(), vec![enrolled("c1")])],
                Some(Condition::new(query).after(seen)),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!decision.is_finished(), "{what} waits for the open append");
    open.commit().await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, decision)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(Error::ConditionFailed { .. })),
        "{what}: the open append, committed meanwhile, fails the condition: {outcome:?}"
    );
}

#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_waits_for_an_open_append_of_its_tag_and_only_that() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let seen = store.horizon().await.unwrap();

    // A caller's transaction appends an event tagged c1 and stays open.
    let open = open_append(&store, Uuid::now_v7(), enrolled("c1")).await;

    // A decision about c2 is not held up by it.
    let unrelated = store.append_if(
        vec![Write::new("Course", Uuid::now_v7(), vec![enrolled("c2")])],
        Some(Condition::new(course("c2")).after(seen)),
    );
    tokio::time::timeout(PATIENCE, unrelated)
        .await
        .expect("a condition on another tag does not wait for the open append")
        .unwrap();

    // A decision about c1, made before the open append, waits for it, then fails.
    waits_for_then_fails_on(&store, open, course("c1"), seen, "a condition on its tag").await;
}

#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_without_tags_waits_for_every_open_append_of_its_store() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;
    let seen = store.horizon().await.unwrap();
    let stream = Uuid::now_v7();
    let defined = NewEvent::from_payload(1, &b"{}"[..]).with_type("Defined");
    let open = open_append(&store, stream, defined).await;
    let query = Query::new().or(Item::new().in_stream("Course", stream));
    waits_for_then_fails_on(&store, open, query, seen, "a stream item").await;
}

/// Each store (schema) has its own writer lock: an append held open in a caller's
/// transaction of one store holds back neither a condition without tags in another
/// store of the same database (which takes its own store's writer lock exclusively),
/// nor that store's readers.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_append_of_another_store_holds_nothing_back() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let (one, other) = (pg.store().await, pg.store().await);
    let defined = || NewEvent::from_payload(1, &b"{}"[..]).with_type("Defined");

    // The open append has its transaction id before the other store's append below.
    let open = open_append(&one, Uuid::now_v7(), defined()).await;

    let stored = other
        .publish(
            "Course",
            Uuid::now_v7(),
            Expected::NoStream,
            vec![defined()],
        )
        .await
        .unwrap();
    let horizon = tokio::time::timeout(Duration::from_secs(10), other.horizon())
        .await
        .expect("the other store's horizon does not wait for another store's open append")
        .unwrap();
    assert!(
        horizon >= stored.position,
        "the other store's readers see its committed event ({:?}) at once: horizon {horizon:?}",
        stored.position
    );

    let stream = Uuid::now_v7();
    let query = Query::new().or(Item::new().in_stream("Course", stream));
    let decision = other.append_if(
        vec![Write::new("Course", Uuid::now_v7(), vec![defined()])],
        Some(Condition::new(query).after(horizon)),
    );
    tokio::time::timeout(Duration::from_secs(10), decision)
        .await
        .expect("a condition without tags does not wait for another store's open append")
        .unwrap();
    open.rollback().await.unwrap();
}

/// How many events of course c1 a decision has seen.
struct Seen(usize);

impl esrc_core::Decision for Seen {
    fn query(&self) -> Query {
        course("c1")
    }

    fn apply(&mut self, _: &esrc_core::Envelope) -> Result<(), Error> {
        self.0 += 1;
        Ok(())
    }
}

/// An unrelated append held open in a caller's transaction does not keep a decision from
/// seeing an event committed after it: the decision's read reaches that event (were the
/// horizon held back before it, each try would read short of the event its append is
/// then refused for, and the decision would run out of tries, as the memory store's
/// did), and the decision succeeds on a state that includes it.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_open_append_does_not_hide_a_later_event_from_a_decision() {
    use esrc_core::{DecideExt, Retry};
    let Some(pg) = common::postgres().await else {
        return;
    };
    let store = pg.store().await;

    // An unrelated append stays open: the horizon stops before it.
    let open = open_append(&store, Uuid::now_v7(), enrolled("c9")).await;
    // An event of c1 commits after it.
    store
        .publish(
            "Course",
            Uuid::now_v7(),
            Expected::Any,
            vec![enrolled("c1")],
        )
        .await
        .unwrap();

    let decision = {
        let store = store.clone();
        tokio::spawn(async move {
            let seen_before = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let record = seen_before.clone();
            let outcome = store
                .decide(
                    || Seen(0),
                    move |state: &Seen| {
                        record.lock().unwrap().push(state.0);
                        Ok::<_, std::convert::Infallible>(vec![Write::new(
                            "Course",
                            Uuid::now_v7(),
                            vec![enrolled("c1")],
                        )])
                    },
                    &Retry::attempts(3),
                )
                .await;
            let seen = seen_before.lock().unwrap().clone();
            (outcome, seen)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    open.commit().await.unwrap();
    let (outcome, seen) = tokio::time::timeout(PATIENCE, decision)
        .await
        .unwrap()
        .unwrap();
    assert!(
        outcome.is_ok(),
        "the decision succeeds: {outcome:?} (states seen: {seen:?})"
    );
    assert_eq!(
        seen.last(),
        Some(&1),
        "the last state includes the c1 event: {seen:?}"
    );
}
