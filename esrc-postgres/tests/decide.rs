//! Decisions across streams on PostgreSQL against appends held open in a caller's
//! transaction: a condition waits for an open append of a tag it names, and only for
//! that; the check is atomic with appends made on any connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use esrc_core::{Condition, Decide, Error, Expected, Item, NewEvent, Query, Tag, Write};
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

/// Both cases in one test, one after the other: a condition without tags takes the
/// writer lock exclusively, and that lock is one for the whole database (every store's
/// writers hold it shared), so the two cases run side by side would wait on each
/// other's open append.
#[esrc_conformance::requires(postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_wait_for_the_open_appends_they_must() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    a_condition_waits_for_an_open_append_of_its_tag_and_only_that(&pg.store().await).await;
    a_condition_without_tags_waits_for_every_open_append(&pg.store().await).await;
}

async fn a_condition_waits_for_an_open_append_of_its_tag_and_only_that(
    store: &esrc_postgres::PgStore,
) {
    let seen = store.horizon().await.unwrap();

    // A caller's transaction appends an event tagged c1 and stays open.
    let mut open = store.pool().begin().await.unwrap();
    store
        .publish_in(
            &mut open,
            "Course",
            Uuid::now_v7(),
            Expected::Any,
            vec![enrolled("c1")],
        )
        .await
        .unwrap();

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
    waits_for_then_fails_on(store, open, course("c1"), seen, "a condition on its tag").await;
}

async fn a_condition_without_tags_waits_for_every_open_append(store: &esrc_postgres::PgStore) {
    let seen = store.horizon().await.unwrap();
    let stream = Uuid::now_v7();
    let mut open = store.pool().begin().await.unwrap();
    store
        .publish_in(
            &mut open,
            "Course",
            stream,
            Expected::Any,
            vec![NewEvent::from_payload(1, &b"{}"[..]).with_type("Defined")],
        )
        .await
        .unwrap();
    let query = Query::new().or(Item::new().in_stream("Course", stream));
    waits_for_then_fails_on(store, open, query, seen, "a stream item").await;
}
