//! What only NATS can show about decisions across streams: tag markers and their
//! subjects, tags no subject could hold as they are, what `categories` counts, and
//! checks wider than their query (a retry, never a refusal).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use esrc_core::{
    Condition, Decide, EventType, Expected, Item, NewEvent, Position, Publish, Query, Replay, Tag,
    Write,
};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

fn tagged(event_type: &str, tags: &[&str]) -> NewEvent {
    NewEvent::from_payload(1, r#"{"n":1}"#)
        .with_type(event_type)
        .with_tags(tags.iter().map(|tag| Tag::new(*tag).unwrap()))
}

async fn query(store: &impl Decide, query: &Query) -> Vec<Position> {
    let until = store.horizon().await.unwrap();
    let found: Vec<_> = store
        .query(query, Position::ZERO, until)
        .try_collect()
        .await
        .unwrap();
    found.iter().map(|envelope| envelope.position).collect()
}

/// Tags with characters a subject token cannot hold (`.`, `*`, `>`, `~`, non-ASCII) are
/// stored, queried and read back exactly, and never confused with one another; the
/// markers live under `<prefix>.~t`, which `categories` and replays do not count.
#[tokio::test]
async fn odd_tags_are_markers_no_category_sees() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let odd = [
        "email:ada.lovelace@example.org",
        "path:a*b>c",
        "path:a~2ab~3ec",
        "name:Zoë",
    ];
    let mut positions = Vec::new();
    for tag in odd {
        let appended = store
            .publish(
                "Doc",
                Uuid::now_v7(),
                Expected::NoStream,
                vec![tagged("Noted", &[tag])],
            )
            .await
            .unwrap();
        positions.push(appended.position);
    }
    for (tag, position) in odd.iter().zip(&positions) {
        let found = query(
            &store,
            &Query::new().or(Item::new().tagged(Tag::new(*tag).unwrap())),
        )
        .await;
        assert_eq!(
            found,
            vec![*position],
            "the events tagged {tag}, and no other"
        );
    }
    let typed = Query::new().or(Item::new()
        .of_type(EventType::new("Doc", "Noted"))
        .tagged(Tag::new(odd[3]).unwrap()));
    assert_eq!(query(&store, &typed).await, vec![positions[3]]);

    let client = nats.client().await;
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream(store.stream_name()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 8,
        "each event and its one marker are stored"
    );
    let subjects: Vec<String> = stream
        .info_with_subjects(format!("{}.~t.>", store.prefix()))
        .await
        .unwrap()
        .map(|subject| subject.unwrap().0)
        .collect()
        .await;
    let prefix = store.prefix();
    assert!(
        subjects.contains(&format!(
            "{prefix}.~t.email:ada~2elovelace~40example~2eorg.Doc.Noted"
        )),
        "a tag's token escapes what subjects cannot hold: {subjects:?}"
    );
    assert!(subjects.contains(&format!("{prefix}.~t.path:a~2ab~3ec.Doc.Noted")));
    assert!(subjects.contains(&format!("{prefix}.~t.path:a~7e2ab~7e3ec.Doc.Noted")));

    let categories = store.categories().await.unwrap();
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Doc"], "markers are not a category");
    assert_eq!(categories[0].events, 4);
    let replayed: Vec<_> = store
        .replay(&["Doc"], Position::ZERO)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        replayed.len(),
        4,
        "a replay yields the events, not their markers"
    );
}

/// The server checks a condition's item on one subject filter, which can be wider than
/// the item: here the filter of "course `c1` defined" also moves with every enrolment in
/// `c1`. Enrolments written meanwhile make the store look again, and every decision is
/// stored: a wider check costs a retry, never a refusal.
#[tokio::test]
async fn a_check_wider_than_its_query_retries_rather_than_refuses() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = Arc::new(nats.store().await);
    let course = Tag::new("course:c1").unwrap();
    let enrolling = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut enrolled = 0;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                let event = tagged("Enrolled", &["course:c1"]);
                store
                    .publish("Course", Uuid::now_v7(), Expected::NoStream, vec![event])
                    .await
                    .unwrap();
                enrolled += 1;
            }
            enrolled
        })
    };
    let definitions = Query::new().or(Item::new()
        .of_type(EventType::new("Course", "Defined"))
        .tagged(course.clone()));
    let mut decided = 0;
    for round in 0..50 {
        let write = Write::new(
            "Course",
            Uuid::now_v7(),
            vec![tagged("Renamed", &["course:c1"])],
        );
        let seen = store.horizon().await.unwrap();
        store
            .append_if(
                vec![write],
                Some(Condition::new(definitions.clone()).after(seen)),
            )
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        decided += 1;
    }
    let enrolled = enrolling.await.unwrap();
    assert_eq!(decided, 50);
    assert!(enrolled > 0, "enrolments ran beside the decisions");
    let all = Query::new().or(Item::new().tagged(course));
    assert_eq!(query(&*store, &all).await.len(), enrolled + 50);
}

/// A condition's check rides on an event of the append that carries no expectation of its
/// own (here the second of two untagged events). Sending the same writes again is a
/// retry: the original outcome, nothing stored twice — the check's expectation header on
/// the second event does not make it look like the start of another append.
#[tokio::test]
async fn a_retry_is_recognised_when_a_check_rides_on_one_of_its_events() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let events = vec![
        NewEvent::from_payload(1, r#"{"n":1}"#),
        NewEvent::from_payload(1, r#"{"n":2}"#),
    ];
    let writes = vec![Write::new("Doc", id, events).expect(Expected::NoStream)];
    let query = Query::new().or(Item::new().tagged(Tag::new("doc:d1").unwrap()));
    let condition = Condition::new(query);
    let first = store
        .append_if(writes.clone(), Some(condition.clone()))
        .await
        .unwrap();
    let again = store.append_if(writes, Some(condition)).await;
    let stored: Vec<_> = store
        .replay(&["Doc"], Position::ZERO)
        .try_collect()
        .await
        .unwrap();
    store.destroy().await.unwrap();
    assert_eq!(again.unwrap(), first, "the original outcome");
    assert_eq!(stored.len(), 2, "nothing stored twice");
}
