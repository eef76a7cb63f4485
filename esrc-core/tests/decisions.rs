//! Decision states, combined, tested with Given/When/Then without a store: the course
//! rules of the Dynamic Consistency Boundary's canonical example.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_core::testing::given_history;
use esrc_core::{Decision, Envelope, Error, Item, Query, Tag, Write};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "Course")]
enum CourseEvent {
    Defined {
        #[esrc(tag)]
        course: String,
        capacity: u32,
    },
    Enrolled {
        #[esrc(tag)]
        course: String,
        #[esrc(tag)]
        student: String,
    },
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::from_parts(key, value).unwrap()
}

/// How many students a course takes and has.
struct Capacity {
    course: String,
    capacity: Option<u32>,
    enrolled: u32,
}

impl Decision for Capacity {
    fn query(&self) -> Query {
        Query::new()
            .or(Item::types::<CourseEvent>(["Defined", "Enrolled"])
                .tagged(tag("course", &self.course)))
    }

    fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
        match event.deserialize()? {
            CourseEvent::Defined { capacity, .. } => self.capacity = Some(capacity),
            CourseEvent::Enrolled { .. } => self.enrolled += 1,
        }
        Ok(())
    }
}

/// How many courses a student takes.
struct StudentLoad {
    student: String,
    courses: u32,
}

impl Decision for StudentLoad {
    fn query(&self) -> Query {
        Query::new()
            .or(Item::types::<CourseEvent>(["Enrolled"]).tagged(tag("student", &self.student)))
    }

    fn apply(&mut self, _: &Envelope) -> Result<(), Error> {
        self.courses += 1;
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Refused {
    NoSuchCourse,
    CourseFull,
    StudentBusy,
}

const MAX_COURSES: u32 = 2;

fn state(course: &str, student: &str) -> (Capacity, StudentLoad) {
    (
        Capacity {
            course: course.to_owned(),
            capacity: None,
            enrolled: 0,
        },
        StudentLoad {
            student: student.to_owned(),
            courses: 0,
        },
    )
}

fn enrol(
    course: &str,
    student: &str,
) -> impl FnOnce(&(Capacity, StudentLoad)) -> Result<Vec<Write>, Refused> {
    let event = CourseEvent::Enrolled {
        course: course.to_owned(),
        student: student.to_owned(),
    };
    move |(capacity, load)| {
        let Some(limit) = capacity.capacity else {
            return Err(Refused::NoSuchCourse);
        };
        if capacity.enrolled >= limit {
            return Err(Refused::CourseFull);
        }
        if load.courses >= MAX_COURSES {
            return Err(Refused::StudentBusy);
        }
        Ok(vec![Write::event(Uuid::now_v7(), &event).unwrap()])
    }
}

fn history(events: &[CourseEvent]) -> esrc_core::testing::History {
    given_history(
        events
            .iter()
            .map(|event| Write::event(Uuid::now_v7(), event).unwrap()),
    )
}

fn defined(course: &str, capacity: u32) -> CourseEvent {
    CourseEvent::Defined {
        course: course.into(),
        capacity,
    }
}

fn enrolled(course: &str, student: &str) -> CourseEvent {
    CourseEvent::Enrolled {
        course: course.into(),
        student: student.into(),
    }
}

#[test]
fn a_student_enrols_into_a_course_with_room() {
    history(&[defined("maths", 2), enrolled("maths", "ada")])
        .decide(state("maths", "bob"), enrol("maths", "bob"))
        .then([enrolled("maths", "bob")]);
}

#[test]
fn a_full_course_refuses() {
    history(&[defined("maths", 1), enrolled("maths", "ada")])
        .decide(state("maths", "bob"), enrol("maths", "bob"))
        .then_error(Refused::CourseFull);
}

#[test]
fn a_busy_student_is_refused_whatever_the_course() {
    history(&[
        defined("maths", 5),
        defined("art", 5),
        defined("music", 5),
        enrolled("maths", "ada"),
        enrolled("art", "ada"),
    ])
    .decide(state("music", "ada"), enrol("music", "ada"))
    .then_error(Refused::StudentBusy);
}

#[test]
fn each_state_folds_only_what_its_query_matches() {
    // Other courses' enrolments do not fill this one; other students' do not load ada.
    history(&[
        defined("maths", 1),
        defined("art", 1),
        enrolled("art", "bob"),
        enrolled("art", "cy"),
    ])
    .decide(state("maths", "ada"), enrol("maths", "ada"))
    .then([enrolled("maths", "ada")]);
    history(&[])
        .decide(state("maths", "ada"), enrol("maths", "ada"))
        .then_error(Refused::NoSuchCourse);
}

#[test]
#[should_panic(expected = "the decision was refused with another error")]
fn a_wrong_expectation_fails_the_test() {
    history(&[defined("maths", 1), enrolled("maths", "ada")])
        .decide(state("maths", "bob"), enrol("maths", "bob"))
        .then_error(Refused::StudentBusy);
}

#[test]
fn the_combined_query_is_the_union_of_both() {
    let (capacity, load) = state("maths", "ada");
    let both = Decision::query(&(capacity, load));
    assert_eq!(both.items.len(), 2);
    assert_eq!(
        both.to_string(),
        "[(Course.Defined | Course.Enrolled) & course:maths] or [Course.Enrolled & student:ada]"
    );
}
