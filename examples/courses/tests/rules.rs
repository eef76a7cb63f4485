//! Each rule with Given/When/Then (no store), and the race for seats on the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use courses::{
    CourseEvent, CourseState, NameState, Refused, StudentState, define, enrol, enrol_student,
    rename,
};
use esrc::testing::given_history;
use esrc::{AnyStore, CommandError, DecideExt, Write};
use uuid::Uuid;

fn history(events: &[CourseEvent]) -> esrc::testing::History {
    given_history(
        events
            .iter()
            .map(|event| Write::event(Uuid::now_v7(), event).unwrap()),
    )
}

fn defined(course: &str, name: &str, capacity: u32) -> CourseEvent {
    CourseEvent::Defined {
        course: course.into(),
        name: name.into(),
        capacity,
    }
}

fn enrolled(course: &str, student: &str) -> CourseEvent {
    CourseEvent::Enrolled {
        course: course.into(),
        student: student.into(),
    }
}

fn seat(course: &str, student: &str) -> (CourseState, StudentState) {
    (CourseState::of(course), StudentState::of(student))
}

#[test]
fn a_course_is_defined_once_under_a_free_name() {
    history(&[])
        .decide(
            (CourseState::of("c1"), NameState::of("maths")),
            define("c1", "maths", 3),
        )
        .then([defined("c1", "maths", 3)]);
    history(&[defined("c1", "maths", 3)])
        .decide(
            (CourseState::of("c1"), NameState::of("algebra")),
            define("c1", "algebra", 3),
        )
        .then_error(Refused::CourseExists("c1".into()));
    history(&[defined("c1", "maths", 3)])
        .decide(
            (CourseState::of("c2"), NameState::of("maths")),
            define("c2", "maths", 3),
        )
        .then_error(Refused::NameTaken("maths".into()));
}

#[test]
fn a_course_is_renamed_to_a_name_no_course_has() {
    let two = history(&[defined("c1", "maths", 3), defined("c2", "art", 3)]);
    two.decide(
        (CourseState::of("c1"), NameState::of("art")),
        rename("c1", "art"),
    )
    .then_error(Refused::NameTaken("art".into()));
    two.decide(
        (CourseState::of("c1"), NameState::of("algebra")),
        rename("c1", "algebra"),
    )
    .then([CourseEvent::Renamed {
        course: "c1".into(),
        name: "algebra".into(),
    }]);
    two.decide(
        (CourseState::of("c9"), NameState::of("x")),
        rename("c9", "x"),
    )
    .then_error(Refused::NoSuchCourse("c9".into()));
}

#[test]
fn a_full_course_and_a_busy_student_are_refused() {
    history(&[defined("c1", "maths", 1), enrolled("c1", "ada")])
        .decide(seat("c1", "bob"), enrol("c1", "bob"))
        .then_error(Refused::CourseFull("c1".into()));
    history(&[
        defined("c1", "a", 5),
        defined("c2", "b", 5),
        defined("c3", "c", 5),
        defined("c4", "d", 5),
        enrolled("c1", "ada"),
        enrolled("c2", "ada"),
        enrolled("c3", "ada"),
    ])
    .decide(seat("c4", "ada"), enrol("c4", "ada"))
    .then_error(Refused::StudentBusy("ada".into()));
    history(&[defined("c1", "maths", 5), enrolled("c1", "ada")])
        .decide(seat("c1", "ada"), enrol("c1", "ada"))
        .then_error(Refused::AlreadyEnrolled("ada".into()));
    history(&[defined("c1", "maths", 5), enrolled("c1", "ada")])
        .decide(seat("c1", "bob"), enrol("c1", "bob"))
        .then([enrolled("c1", "bob")]);
}

#[test]
fn an_id_that_cannot_be_a_tag_is_refused_not_a_panic() {
    let decided = history(&[])
        .decide(
            (CourseState::of("c 1"), NameState::of("x")),
            define("c 1", "x", 1),
        )
        .result();
    assert!(matches!(decided, Err(Refused::Invalid(_))), "{decided:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_racing_for_seats_get_exactly_the_capacity() {
    let store: AnyStore = Arc::new(esrc::memory::MemoryStore::new());
    courses::define_course(&store, "c1", "maths", 5)
        .await
        .unwrap();
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { enrol_student(&store, "c1", &format!("s{n}")).await })
        })
        .collect();
    let mut seated = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => seated += 1,
            Err(CommandError::Rejected(Refused::CourseFull(_))) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(seated, 5);
    let (state, _) = store.fold(CourseState::of("c1")).await.unwrap();
    assert_eq!(state.students.len(), 5);
}
