//! Courses and students, the canonical example of the Dynamic Consistency Boundary
//! (dcb.events): a course takes at most its capacity of students, a student takes at
//! most [`MAX_COURSES`] courses, and a course's name is unique. Each rule spans streams
//! (every enrolment is its own stream), so each decision reads the events its rule
//! depends on — by tag — and appends on the condition that none was added since.

use esrc::{
    AnyStore, Appended, CommandError, DecideExt, Decision, Envelope, Error, Item, Query, Retry,
    Tag, Write,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many courses one student may take.
pub const MAX_COURSES: u32 = 3;

/// What happens to courses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, esrc::Event)]
#[esrc(name = "Course")]
pub enum CourseEvent {
    /// A course was defined.
    Defined {
        /// The course.
        #[esrc(tag)]
        course: String,
        /// Its name, unique among courses.
        #[esrc(tag = "course-name")]
        name: String,
        /// How many students it takes.
        capacity: u32,
    },
    /// A course was renamed.
    Renamed {
        /// The course.
        #[esrc(tag)]
        course: String,
        /// Its new name.
        #[esrc(tag = "course-name")]
        name: String,
    },
    /// A student enrolled into a course.
    Enrolled {
        /// The course.
        #[esrc(tag)]
        course: String,
        /// The student.
        #[esrc(tag)]
        student: String,
    },
}

/// Why a decision was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The course exists already.
    #[error("course {0} exists already")]
    CourseExists(String),
    /// The course does not exist.
    #[error("course {0} does not exist")]
    NoSuchCourse(String),
    /// Another course has that name.
    #[error("the name {0} is taken")]
    NameTaken(String),
    /// The course is full.
    #[error("course {0} is full")]
    CourseFull(String),
    /// The student takes as many courses as allowed.
    #[error("student {0} takes {MAX_COURSES} courses already")]
    StudentBusy(String),
    /// The student is in the course already.
    #[error("student {0} is in the course already")]
    AlreadyEnrolled(String),
    /// An id or a name cannot be a tag (it holds whitespace, say).
    #[error("invalid input: {0}")]
    Invalid(String),
}

fn tag(key: &str, value: &str) -> Result<Tag, Error> {
    Tag::from_parts(key, value)
}

fn course_types(names: &[&str]) -> Item {
    Item::types::<CourseEvent>(names.iter().copied())
}

/// A course: whether it exists, its capacity, its students.
#[derive(Debug, Default)]
pub struct CourseState {
    course: String,
    /// Its capacity, once defined.
    pub capacity: Option<u32>,
    /// Its students.
    pub students: Vec<String>,
}

impl CourseState {
    /// The state of `course`, to fold.
    pub fn of(course: &str) -> Self {
        Self {
            course: course.to_owned(),
            ..Self::default()
        }
    }
}

impl Decision for CourseState {
    fn query(&self) -> Query {
        match tag("course", &self.course) {
            Ok(tag) => Query::new().or(course_types(&["Defined", "Enrolled"]).tagged(tag)),
            // An id no tag can hold names no course: the query matches nothing.
            Err(_) => Query::new().or(Item::new().in_stream("Course", Uuid::nil())),
        }
    }

    fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
        match event.deserialize()? {
            CourseEvent::Defined { capacity, .. } => self.capacity = Some(capacity),
            CourseEvent::Enrolled { student, .. } => self.students.push(student),
            CourseEvent::Renamed { .. } => {}
        }
        Ok(())
    }
}

/// A student: the courses they take.
#[derive(Debug, Default)]
pub struct StudentState {
    student: String,
    /// How many courses they take.
    pub courses: u32,
}

impl StudentState {
    /// The state of `student`, to fold.
    pub fn of(student: &str) -> Self {
        Self {
            student: student.to_owned(),
            courses: 0,
        }
    }
}

impl Decision for StudentState {
    fn query(&self) -> Query {
        match tag("student", &self.student) {
            Ok(tag) => Query::new().or(course_types(&["Enrolled"]).tagged(tag)),
            Err(_) => Query::new().or(Item::new().in_stream("Course", Uuid::nil())),
        }
    }

    fn apply(&mut self, _: &Envelope) -> Result<(), Error> {
        self.courses += 1;
        Ok(())
    }
}

/// A course name: whether a course has ever had it (names are never reused).
#[derive(Debug, Default)]
pub struct NameState {
    name: String,
    /// The last course that took the name, if any.
    pub holder: Option<String>,
}

impl NameState {
    /// The state of `name`, to fold.
    pub fn of(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            holder: None,
        }
    }
}

impl Decision for NameState {
    fn query(&self) -> Query {
        match tag("course-name", &self.name) {
            Ok(tag) => Query::new().or(course_types(&["Defined", "Renamed"]).tagged(tag)),
            Err(_) => Query::new().or(Item::new().in_stream("Course", Uuid::nil())),
        }
    }

    fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
        if let CourseEvent::Defined { course, .. } | CourseEvent::Renamed { course, .. } =
            event.deserialize()?
        {
            self.holder = Some(course);
        }
        Ok(())
    }
}

/// The events to store, each in a stream of its own.
fn writes(events: &[CourseEvent]) -> Result<Vec<Write>, Refused> {
    events
        .iter()
        .map(|event| {
            Write::event(Uuid::now_v7(), event).map_err(|error| Refused::Invalid(error.to_string()))
        })
        .collect()
}

/// Defines `course` named `name` with `capacity`: the course must be new, the name free.
pub fn define(
    course: &str,
    name: &str,
    capacity: u32,
) -> impl Fn(&(CourseState, NameState)) -> Result<Vec<Write>, Refused> {
    let event = CourseEvent::Defined {
        course: course.to_owned(),
        name: name.to_owned(),
        capacity,
    };
    move |(state, names)| {
        if state.capacity.is_some() {
            return Err(Refused::CourseExists(state.course.clone()));
        }
        if names.holder.is_some() {
            return Err(Refused::NameTaken(names.name.clone()));
        }
        writes(std::slice::from_ref(&event))
    }
}

/// Renames `course` to `name`, which no course may have.
pub fn rename(
    course: &str,
    name: &str,
) -> impl Fn(&(CourseState, NameState)) -> Result<Vec<Write>, Refused> {
    let event = CourseEvent::Renamed {
        course: course.to_owned(),
        name: name.to_owned(),
    };
    move |(state, names)| {
        if state.capacity.is_none() {
            return Err(Refused::NoSuchCourse(state.course.clone()));
        }
        if names.holder.is_some() {
            return Err(Refused::NameTaken(names.name.clone()));
        }
        writes(std::slice::from_ref(&event))
    }
}

/// Enrols `student` into `course`: the course must exist and have room, and the student
/// take fewer than [`MAX_COURSES`] courses.
pub fn enrol(
    course: &str,
    student: &str,
) -> impl Fn(&(CourseState, StudentState)) -> Result<Vec<Write>, Refused> {
    let event = CourseEvent::Enrolled {
        course: course.to_owned(),
        student: student.to_owned(),
    };
    move |(state, load)| {
        let Some(capacity) = state.capacity else {
            return Err(Refused::NoSuchCourse(state.course.clone()));
        };
        if state.students.contains(&load.student) {
            return Err(Refused::AlreadyEnrolled(load.student.clone()));
        }
        if state.students.len() as u32 >= capacity {
            return Err(Refused::CourseFull(state.course.clone()));
        }
        if load.courses >= MAX_COURSES {
            return Err(Refused::StudentBusy(load.student.clone()));
        }
        writes(std::slice::from_ref(&event))
    }
}

/// The outcome of a decision run against a store.
pub type Outcome = Result<Vec<Appended>, CommandError<Refused>>;

/// How often a decision is made again after a conflict.
pub fn retry() -> Retry {
    Retry::attempts(20)
}

/// Defines a course on `store`.
pub async fn define_course(store: &AnyStore, course: &str, name: &str, capacity: u32) -> Outcome {
    let initial = || (CourseState::of(course), NameState::of(name));
    store
        .decide(initial, define(course, name, capacity), &retry())
        .await
}

/// Renames a course on `store`.
pub async fn rename_course(store: &AnyStore, course: &str, name: &str) -> Outcome {
    let initial = || (CourseState::of(course), NameState::of(name));
    store.decide(initial, rename(course, name), &retry()).await
}

/// Enrols a student on `store`.
pub async fn enrol_student(store: &AnyStore, course: &str, student: &str) -> Outcome {
    let initial = || (CourseState::of(course), StudentState::of(student));
    store
        .decide(initial, enrol(course, student), &retry())
        .await
}
