//! Decisions across streams: tags and types stored with events, queries, conditional
//! appends, and the rules they keep under contention.

use std::sync::Arc;

use esrc_core::{
    Condition, Decide, DecideExt, Error, Expected, Item, NewEvent, Position, Publish, Query,
    ReplayOne, Retry, Version, Write,
};
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

const COURSE: &str = "Course";

fn write(id: Uuid, event: CourseEvent) -> Write {
    Write::event(id, &event).unwrap()
}

fn defined(course: &str, capacity: u32) -> CourseEvent {
    CourseEvent::Defined {
        course: course.to_owned(),
        capacity,
    }
}

fn enrolled(course: &str, student: &str) -> CourseEvent {
    CourseEvent::Enrolled {
        course: course.to_owned(),
        student: student.to_owned(),
    }
}

fn registered(username: &str) -> CourseEvent {
    CourseEvent::Registered {
        username: username.to_owned(),
    }
}

/// Appends `event` to stream `id` with no condition; returns its position.
async fn put<S: Decide>(store: &S, id: Uuid, event: CourseEvent) -> Position {
    let appended = store.append_if(vec![write(id, event)], None).await.unwrap();
    appended[0].position
}

async fn read<S: Decide>(store: &S, query: &Query, after: Position) -> Vec<Position> {
    let until = store.horizon().await.unwrap();
    read_until(store, query, after, until).await
}

async fn read_until<S: Decide>(
    store: &S,
    query: &Query,
    after: Position,
    until: Position,
) -> Vec<Position> {
    let events = collect("query", store.query(query, after, until)).await;
    assert_increasing("a query's answer", &events);
    events.iter().map(|event| event.position).collect()
}

#[track_caller]
fn assert_condition_failed<T: std::fmt::Debug>(result: Result<T, Error>, first: Position) {
    match result {
        Err(Error::ConditionFailed { position, .. }) => assert_eq!(
            position, first,
            "a failed condition names the first event that broke it"
        ),
        other => panic!("expected ConditionFailed at {first}, got {other:?}"),
    }
}

/// Tags and types are stored with an event and come back in its envelope, whether it was
/// published or appended under a condition; events stored without them read as untagged.
pub async fn tags_and_types_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let student = Uuid::now_v7();
    let event = NewEvent::new(&enrolled("c1", "s1")).unwrap();
    if !factory.capabilities().decisions {
        assert_not_supported(
            store
                .publish(COURSE, student, Expected::Any, vec![event])
                .await,
            "tagged events",
        );
        assert_not_supported(store.horizon().await, "decisions across streams");
        return assert_not_supported(
            store
                .append_if(vec![write(student, registered("ada"))], None)
                .await,
            "decisions across streams",
        );
    }
    store
        .publish(COURSE, student, Expected::Any, vec![event])
        .await
        .unwrap();
    put(&store, student, registered("ada")).await;
    let untagged = Uuid::now_v7();
    store
        .publish(THING, untagged, Expected::Any, vec![counted(1)])
        .await
        .unwrap();

    let read = collect(
        "replay_one",
        store.replay_one(COURSE, student, Version::ZERO),
    )
    .await;
    let shape: Vec<(&str, Vec<&str>)> = read
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.tags.iter().map(|t| t.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("Enrolled", vec!["course:c1", "student:s1"]),
            ("Registered", vec!["username:ada"]),
        ],
        "an event's type and tags come back as stored (tags sorted)"
    );
    let plain = replay_thing(&store, untagged, 0).await;
    assert!(
        plain[0].tags.is_empty(),
        "an event stored without tags has none"
    );
}

/// What [`seed_courses`] wrote.
#[derive(Clone, Copy)]
struct Seeded {
    /// The stream of student `a`'s events.
    a: Uuid,
    /// The stream of the untagged `Thing` event.
    thing: Uuid,
    /// The positions: `c1` and `c2` defined, `a` enrolled in `c1` and `c2`, `b` in `c1`,
    /// `ada` registered (in `a`'s stream), an untagged `Thing` event.
    at: [Position; 7],
}

async fn seed_courses<S: Decide + Publish>(store: &S) -> Seeded {
    let (c1, c2, a, b) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let e1 = put(store, c1, defined("c1", 5)).await;
    let e2 = put(store, c2, defined("c2", 5)).await;
    let e3 = put(store, a, enrolled("c1", "a")).await;
    let e4 = put(store, a, enrolled("c2", "a")).await;
    let e5 = put(store, b, enrolled("c1", "b")).await;
    let e6 = put(store, a, registered("ada")).await;
    let thing = Uuid::now_v7();
    let e7 = store
        .publish(THING, thing, Expected::Any, vec![counted(7)])
        .await
        .unwrap()
        .position;
    Seeded {
        a,
        thing,
        at: [e1, e2, e3, e4, e5, e6, e7],
    }
}

/// The queries of [`queries_match_types_tags_items_and_streams`], each with what it
/// must find among the events [`seed_courses`] wrote.
fn query_cases(seeded: &Seeded) -> Vec<(&'static str, Query, Vec<Position>)> {
    let Seeded {
        a,
        thing,
        at: [e1, e2, e3, e4, e5, e6, e7],
    } = *seeded;
    let c1_tag = || tag("course", "c1");
    vec![
        (
            "types match any",
            Query::new().or(Item::types::<CourseEvent>(["Defined", "Registered"])),
            vec![e1, e2, e6],
        ),
        (
            "one tag",
            Query::new().or(Item::new().tagged(c1_tag())),
            vec![e1, e3, e5],
        ),
        (
            "tags match all",
            Query::new().or(Item::new().tagged(c1_tag()).tagged(tag("student", "a"))),
            vec![e3],
        ),
        (
            "types and tags",
            Query::new().or(Item::types::<CourseEvent>(["Enrolled"]).tagged(tag("student", "a"))),
            vec![e3, e4],
        ),
        (
            "items match any",
            Query::new()
                .or(Item::types::<CourseEvent>(["Defined"]).tagged(tag("course", "c2")))
                .or(Item::types::<CourseEvent>(["Registered"])),
            vec![e2, e6],
        ),
        (
            "a stream",
            Query::new().or(Item::new().in_stream(COURSE, a)),
            vec![e3, e4, e6],
        ),
        (
            "a stream and a type",
            Query::new().or(Item::types::<CourseEvent>(["Enrolled"]).in_stream(COURSE, a)),
            vec![e3, e4],
        ),
        (
            "an untagged event's stream",
            Query::new().or(Item::new().in_stream(THING, thing)),
            vec![e7],
        ),
        (
            "a tag nobody has",
            Query::new().or(Item::new().tagged(tag("course", "c9"))),
            vec![],
        ),
        (
            "every event",
            Query::new().or(Item::new()),
            vec![e1, e2, e3, e4, e5, e6, e7],
        ),
    ]
}

/// Queries: an item's types match any, its tags all, its stream only that stream; a
/// query matches what any of its items matches; `after` and `until` bound the answer.
pub async fn queries_match_types_tags_items_and_streams<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().decisions {
        let query = Query::new().or(Item::new().tagged(tag("course", "c1")));
        let answer: Vec<_> =
            futures::StreamExt::collect(store.query(&query, Position::ZERO, Position(10))).await;
        return assert_not_supported(
            answer
                .into_iter()
                .next()
                .map_or(Ok(()), |first| first.map(|_| ())),
            "decisions across streams",
        );
    }
    let seeded = seed_courses(&store).await;
    let [e1, _, e3, _, e5, _, e7] = seeded.at;
    let c1_tag = || tag("course", "c1");
    let cases = query_cases(&seeded);
    for (what, query, expected) in cases {
        assert_eq!(
            read(&store, &query, Position::ZERO).await,
            expected,
            "{what}: {query}"
        );
    }
    let c1_query = Query::new().or(Item::new().tagged(c1_tag()));
    assert_eq!(
        read(&store, &c1_query, e3).await,
        [e5],
        "only events after `after`"
    );
    assert_eq!(
        read_until(&store, &c1_query, Position::ZERO, e3).await,
        [e1, e3],
        "only events up to `until`"
    );
    assert!(
        store.horizon().await.unwrap() >= e7,
        "the horizon covers every committed event"
    );
}

/// Bad queries are refused with an error that names them, before anything is read or
/// stored.
pub async fn invalid_queries_are_refused<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().decisions {
        return assert_not_supported(store.horizon().await, "decisions across streams");
    }
    let first: Vec<_> =
        futures::StreamExt::collect(store.query(&Query::new(), Position::ZERO, Position(100)))
            .await;
    assert!(
        matches!(first.as_slice(), [Err(Error::InvalidQuery { .. })]),
        "an empty query is refused, got {first:?}"
    );
    let bad_type = Query::new().or(Item::new().of_type(esrc_core::EventType::new(COURSE, "a.b")));
    let first: Vec<_> =
        futures::StreamExt::collect(store.query(&bad_type, Position::ZERO, Position(100))).await;
    assert!(
        matches!(first.as_slice(), [Err(Error::InvalidName { .. })]),
        "an invalid type name is refused, got {first:?}"
    );
    let id = Uuid::now_v7();
    let refused = store
        .append_if(
            vec![write(id, registered("x"))],
            Some(Condition::new(Query::new())),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidQuery { .. })),
        "a condition with an empty query is refused, got {refused:?}"
    );
    assert!(
        collect("replay_one", store.replay_one(COURSE, id, Version::ZERO))
            .await
            .is_empty(),
        "a refused append stores nothing"
    );
}

/// A condition fails when an event its query matches was stored after its position, and
/// then nothing is stored; events its query does not match never make it fail.
pub async fn conditions_guard_what_they_query<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().decisions {
        return assert_not_supported(store.horizon().await, "decisions across streams");
    }
    let course = Uuid::now_v7();
    let defined_at = put(&store, course, defined("c1", 5)).await;
    let enrolments =
        Query::new().or(Item::types::<CourseEvent>(["Enrolled"]).tagged(tag("course", "c1")));
    let seen = store.horizon().await.unwrap();

    let first = store
        .append_if(
            vec![write(Uuid::now_v7(), enrolled("c1", "a"))],
            Some(Condition::new(enrolments.clone()).after(seen)),
        )
        .await
        .unwrap()[0]
        .position;

    let loser = Uuid::now_v7();
    let stale = store
        .append_if(
            vec![write(loser, enrolled("c1", "b"))],
            Some(Condition::new(enrolments.clone()).after(seen)),
        )
        .await;
    assert_condition_failed(stale, first);
    assert!(
        collect("replay_one", store.replay_one(COURSE, loser, Version::ZERO))
            .await
            .is_empty(),
        "a failed condition stores nothing"
    );

    let definitions =
        Query::new().or(Item::types::<CourseEvent>(["Defined"]).tagged(tag("course", "c1")));
    let without_after = store
        .append_if(
            vec![write(course, defined("c1", 6))],
            Some(Condition::new(definitions)),
        )
        .await;
    assert_condition_failed(without_after, defined_at);

    // Other tags, other types: appends there never block this condition.
    put(&store, Uuid::now_v7(), enrolled("c2", "a")).await;
    put(&store, Uuid::now_v7(), registered("c1")).await;
    let now = store.horizon().await.unwrap();
    store
        .append_if(
            vec![write(Uuid::now_v7(), enrolled("c1", "c"))],
            Some(Condition::new(enrolments.clone()).after(now)),
        )
        .await
        .expect("events of other tags and types stored since do not fail the condition");
    store
        .append_if(
            vec![write(Uuid::now_v7(), enrolled("c7", "a"))],
            Some(Condition::new(
                Query::new().or(Item::new().tagged(tag("course", "c7"))),
            )),
        )
        .await
        .expect("a condition that nothing matches holds");

    stream_items_are_guarded(&store).await;
}

/// A stream item: the decision covers an aggregate's stream too, also when the append
/// writes that stream.
async fn stream_items_are_guarded<S: Decide>(store: &S) {
    let student = Uuid::now_v7();
    let before = store.horizon().await.unwrap();
    let in_stream = put(store, student, registered("bob")).await;
    let stream_query = Query::new().or(Item::new().in_stream(COURSE, student));
    let stale = store
        .append_if(
            vec![write(Uuid::now_v7(), enrolled("c1", "bob"))],
            Some(Condition::new(stream_query.clone()).after(before)),
        )
        .await;
    assert_condition_failed(stale, in_stream);
    // … also when the append writes that very stream (with no expectation of its own).
    let own = store
        .append_if(
            vec![write(student, enrolled("c1", "bob"))],
            Some(Condition::new(stream_query.clone()).after(before)),
        )
        .await;
    assert_condition_failed(own, in_stream);
    store
        .append_if(
            vec![write(student, enrolled("c1", "bob"))],
            Some(Condition::new(stream_query).after(in_stream)),
        )
        .await
        .expect("a stream item holds when its stream has nothing after the position");
}

/// Writes to several streams are stored all or none, a stale stream expectation included;
/// the same writes sent again are a retry: stored once, the original outcomes returned.
pub async fn conditional_appends_are_atomic_and_idempotent<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    if !factory.capabilities().decisions {
        return assert_not_supported(store.horizon().await, "decisions across streams");
    }
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let stale = store
        .append_if(
            vec![
                write(a, enrolled("c1", "a")),
                write(b, registered("b")).expect(Expected::Exact(Version(3))),
            ],
            None,
        )
        .await;
    assert!(
        matches!(stale, Err(Error::Conflict { .. })),
        "a stale stream expectation is a Conflict, got {stale:?}"
    );
    assert!(
        collect("replay_one", store.replay_one(COURSE, a, Version::ZERO))
            .await
            .is_empty(),
        "nothing of a refused append is stored, in any stream"
    );

    let query = Query::new().or(Item::new().tagged(tag("course", "c1")));
    let condition = Condition::new(query.clone());
    let writes = vec![
        write(a, enrolled("c1", "a")),
        write(b, registered("b")).expect(Expected::NoStream),
    ];
    let first = store
        .append_if(writes.clone(), Some(condition.clone()))
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "one outcome per write");
    let again = store
        .append_if(writes, Some(condition))
        .await
        .expect("the same writes again are a retry, whatever the condition says by then");
    assert_eq!(again, first, "a retry returns the original outcomes");
    assert_eq!(
        read(&store, &query, Position::ZERO).await.len(),
        1,
        "a retry stores nothing twice"
    );
}

/// Many writers decide at once on the same state (a username nobody has yet): exactly
/// one append succeeds, every other one fails its condition, and the rule holds
/// afterwards. Repeated to catch a rare race.
pub async fn one_of_many_concurrent_decisions_wins<F: StoreFactory>(factory: &F) {
    const WRITERS: usize = 32;
    const ROUNDS: usize = 20;
    let store = Arc::new(factory.store().await);
    if !factory.capabilities().decisions {
        return assert_not_supported(store.horizon().await, "decisions across streams");
    }
    for round in 0..ROUNDS {
        let username = format!("user{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (store, barrier, username) = (store.clone(), barrier.clone(), username.clone());
                tokio::spawn(async move {
                    let state = UsernameTaken {
                        username: username.clone(),
                        taken: false,
                    };
                    let (state, until) = store.fold(state).await?;
                    assert!(!state.taken);
                    barrier.wait().await;
                    let condition = Condition::new(esrc_core::Decision::query(&state)).after(until);
                    store
                        .append_if(
                            vec![write(Uuid::now_v7(), registered(&username))],
                            Some(condition),
                        )
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match within("a concurrent decision", task).await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::ConditionFailed { .. }) => {}
                Err(other) => panic!("a losing decision must fail its condition, got {other:?}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one registration of {username} wins"
        );
        let query = Query::new()
            .or(Item::types::<CourseEvent>(["Registered"]).tagged(tag("username", &username)));
        assert_eq!(
            read(&store, &query, Position::ZERO).await.len(),
            1,
            "round {round}: the username is taken once"
        );
    }
}

/// Writers enrol students into a course of capacity 10, all at once — a first try each
/// from the same read, then through [`DecideExt::decide`]: exactly 10 succeed, the
/// others are refused by the rule once the course is full, and a read afterwards shows
/// 10 enrolments.
pub async fn capacity_holds_under_contention<F: StoreFactory>(factory: &F) {
    const WRITERS: usize = 32;
    const CAPACITY: u32 = 10;
    const ROUNDS: usize = 3;
    let store = Arc::new(factory.store().await);
    if !factory.capabilities().decisions {
        return assert_not_supported(store.horizon().await, "decisions across streams");
    }
    #[derive(Debug)]
    struct Full;
    for round in 0..ROUNDS {
        let course = format!("course{round}");
        put(&store, Uuid::now_v7(), defined(&course, CAPACITY)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|student| {
                let (store, course, barrier) = (store.clone(), course.clone(), barrier.clone());
                tokio::spawn(async move {
                    let enrol = |state: &CourseCapacity| {
                        if state.enrolled >= state.capacity {
                            return Err(Full);
                        }
                        Ok(vec![write(
                            Uuid::now_v7(),
                            enrolled(&course, &format!("s{student}")),
                        )])
                    };
                    // Every writer reads before any appends, so that the first tries
                    // race on every store, then losers go through `decide`.
                    let (state, until) = store.fold(CourseCapacity::of(&course)).await?;
                    barrier.wait().await;
                    let condition = Condition::new(esrc_core::Decision::query(&state)).after(until);
                    let writes = enrol(&state).map_err(esrc_core::CommandError::Rejected)?;
                    match store.append_if(writes, Some(condition)).await {
                        Err(Error::ConditionFailed { .. }) => {}
                        other => return other.map_err(esrc_core::CommandError::Store),
                    }
                    // A writer loses a race only to a writer that enrolled: at most
                    // CAPACITY times before the course is full.
                    let retry = Retry::attempts(CAPACITY as usize + 2);
                    store
                        .decide(|| CourseCapacity::of(&course), enrol, &retry)
                        .await
                })
            })
            .collect();
        let (mut enrolled_now, mut full) = (0, 0);
        for task in tasks {
            match within("a decision", task).await.unwrap() {
                Ok(_) => enrolled_now += 1,
                Err(esrc_core::CommandError::Rejected(Full)) => full += 1,
                Err(other) => panic!("round {round}: a writer failed otherwise: {other:?}"),
            }
        }
        assert_eq!(
            enrolled_now, CAPACITY,
            "round {round}: exactly the capacity enrols"
        );
        assert_eq!(
            full,
            WRITERS as u32 - CAPACITY,
            "round {round}: the rest find the course full"
        );
        let (state, _) = store.fold(CourseCapacity::of(&course)).await.unwrap();
        assert_eq!(
            state.enrolled, CAPACITY,
            "round {round}: no rule broken afterwards"
        );
    }
}
