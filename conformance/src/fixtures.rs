//! Events, aggregates and helpers the cases use. Public so other suites (for example a
//! store's own tests) can reuse them.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use esrc_core::{Aggregate, DecodeError, Envelope, Error, Event, NewEvent, Versioned, upcast};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

/// How long a case waits for something that should happen at once before it fails
/// (a guard against hanging, not a speed check).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Events of the category `Thing`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThingEvent {
    /// A thing was made.
    Made {
        /// Its label.
        label: String,
    },
    /// A thing was counted.
    Counted {
        /// How much.
        amount: u32,
    },
}

impl Versioned for ThingEvent {}
impl Event for ThingEvent {
    const NAME: &'static str = "Thing";
}

/// Events of the category `Other`, to check that categories stay apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtherEvent {
    /// Something else happened.
    Happened {
        /// A number.
        n: u64,
    },
}

impl Versioned for OtherEvent {}
impl Event for OtherEvent {
    const NAME: &'static str = "Other";
}

/// Both test categories, as a group.
#[derive(Clone, Debug, PartialEq, Eq, esrc_core::EventGroup)]
pub enum Both {
    /// A `Thing` event.
    Thing(ThingEvent),
    /// An `Other` event.
    Other(OtherEvent),
}

/// A projection that records what it sees, and can be told to fail.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// The event ids seen, in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<(esrc_core::Position, uuid::Uuid)>>>,
    /// Fail on the event at this position...
    pub fail_at: Option<esrc_core::Position>,
    /// ...this many times (then succeed); `u32::MAX` for always.
    pub failures: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// The error of a [`Recorder`] told to fail.
#[derive(Debug, thiserror::Error)]
#[error("the recorder was told to fail at {0}")]
pub struct Refused(pub esrc_core::Position);

impl Recorder {
    /// The event ids seen so far.
    pub fn ids(&self) -> Vec<uuid::Uuid> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, id)| *id)
            .collect()
    }

    /// The positions seen so far.
    pub fn positions(&self) -> Vec<esrc_core::Position> {
        self.seen.lock().unwrap().iter().map(|(p, _)| *p).collect()
    }
}

impl esrc_core::Project for Recorder {
    type EventGroup<'de> = Both;
    type Error = Refused;

    async fn project<'de>(
        &mut self,
        context: esrc_core::Context<'de, Both>,
    ) -> Result<(), Refused> {
        use std::sync::atomic::Ordering;
        if Some(context.position()) == self.fail_at {
            let left = self.failures.load(Ordering::Acquire);
            if left > 0 {
                if left != u32::MAX {
                    self.failures.store(left - 1, Ordering::Release);
                }
                return Err(Refused(context.position()));
            }
        }
        self.seen
            .lock()
            .unwrap()
            .push((context.position(), context.event_id()));
        Ok(())
    }
}

/// A `Thing` event payload (encoded) with the given amount.
pub fn counted(amount: u32) -> NewEvent {
    NewEvent::new(&ThingEvent::Counted { amount }).expect("encodes")
}

/// `n` `Thing` events counting `start`, `start + 1`, ...
pub fn counted_batch(start: u32, n: u32) -> Vec<NewEvent> {
    (start..start + n).map(counted).collect()
}

/// An `Other` event.
pub fn other(n: u64) -> NewEvent {
    NewEvent::new(&OtherEvent::Happened { n }).expect("encodes")
}

/// Schema version 1 of the `Note` category: a text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteV1 {
    /// The text.
    pub text: String,
}

impl Versioned for NoteV1 {}

/// Schema version 2: tags were added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteV2 {
    /// The text.
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
}

impl From<NoteV1> for NoteV2 {
    fn from(v1: NoteV1) -> Self {
        NoteV2 {
            text: v1.text,
            tags: vec!["untagged".to_owned()],
        }
    }
}

impl Versioned for NoteV2 {
    const VERSION: u32 = 2;
    fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
    where
        Self: Deserialize<'de>,
    {
        upcast::<Self, NoteV1>(version, payload)
    }
}

/// Schema version 3, today's `Note` event: the text was split into title and body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The first line of the old text.
    pub title: String,
    /// The rest.
    pub body: String,
    /// Tags.
    pub tags: Vec<String>,
}

impl From<NoteV2> for Note {
    fn from(v2: NoteV2) -> Self {
        let (title, body) = v2.text.split_once('\n').unwrap_or((&v2.text, ""));
        Note {
            title: title.to_owned(),
            body: body.to_owned(),
            tags: v2.tags,
        }
    }
}

impl Versioned for Note {
    const VERSION: u32 = 3;
    fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
    where
        Self: Deserialize<'de>,
    {
        upcast::<Self, NoteV2>(version, payload)
    }
}

impl Event for Note {
    const NAME: &'static str = "Note";
}

/// An aggregate over `Thing` events: sums the counted amounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// The sum of all amounts.
    pub total: u64,
    /// How many events were applied.
    pub events: u64,
}

impl Versioned for Tally {}

/// Refusal of a [`Tally`] command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a tally only counts positive amounts")]
pub struct ZeroAmount;

impl Aggregate for Tally {
    type Command = u32;
    type Event = ThingEvent;
    type Error = ZeroAmount;

    fn process(&self, amount: u32) -> Result<Vec<ThingEvent>, ZeroAmount> {
        if amount == 0 {
            return Err(ZeroAmount);
        }
        Ok(vec![ThingEvent::Counted { amount }])
    }

    fn apply(self, event: &ThingEvent) -> Self {
        let amount = match event {
            ThingEvent::Made { .. } => 0,
            ThingEvent::Counted { amount } => u64::from(*amount),
        };
        Tally {
            total: self.total + amount,
            events: self.events + 1,
        }
    }
}

/// Runs `future`, failing the case with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Collects a finite stream of envelopes, failing the case on an error or a hang.
pub async fn collect(
    what: &str,
    stream: impl Stream<Item = Result<Envelope, Error>>,
) -> Vec<Envelope> {
    within(what, async {
        let mut stream = pin!(stream);
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(envelope) => out.push(envelope),
                Err(error) => panic!(
                    "{what}: the store failed after {} events: {error}",
                    out.len()
                ),
            }
        }
        out
    })
    .await
}

/// The first item of a stream, which must come within [`PATIENCE`].
pub async fn first_item(
    what: &str,
    stream: impl Stream<Item = Result<Envelope, Error>>,
) -> Option<Result<Envelope, Error>> {
    within(what, async { pin!(stream).next().await }).await
}

/// The versions of envelopes, for compact assertions.
pub fn versions(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes.iter().map(|e| e.version.get()).collect()
}

/// Asserts that positions strictly increase.
#[track_caller]
pub fn assert_increasing(what: &str, envelopes: &[Envelope]) {
    for pair in envelopes.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{what}: positions must strictly increase, but {} is followed by {}",
            pair[0].position,
            pair[1].position
        );
    }
}

/// Events of the category `Course`, for decisions across streams: each is tagged with its
/// course (`course:<id>`), an enrolment also with its student (`student:<id>`), a
/// registration with its username (`username:<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CourseEvent {
    /// A course was defined with a capacity.
    Defined {
        /// The course.
        course: String,
        /// How many students it takes.
        capacity: u32,
    },
    /// A student enrolled into a course.
    Enrolled {
        /// The course.
        course: String,
        /// The student.
        student: String,
    },
    /// A student registered a username.
    Registered {
        /// The username.
        username: String,
    },
}

impl Versioned for CourseEvent {}
impl Event for CourseEvent {
    const NAME: &'static str = "Course";

    fn variant(&self) -> &'static str {
        match self {
            CourseEvent::Defined { .. } => "Defined",
            CourseEvent::Enrolled { .. } => "Enrolled",
            CourseEvent::Registered { .. } => "Registered",
        }
    }

    fn tags(&self) -> Vec<String> {
        match self {
            CourseEvent::Defined { course, .. } => vec![format!("course:{course}")],
            CourseEvent::Enrolled { course, student } => {
                vec![format!("course:{course}"), format!("student:{student}")]
            }
            CourseEvent::Registered { username } => vec![format!("username:{username}")],
        }
    }
}

/// The tag `key:value`, which must be valid.
pub fn tag(key: &str, value: &str) -> esrc_core::Tag {
    esrc_core::Tag::from_parts(key, value).unwrap()
}

/// The `Course` event type `name`.
pub fn course_type(name: &str) -> esrc_core::EventType {
    esrc_core::EventType::of::<CourseEvent>(name)
}

/// A decision state: how many students a course has and takes.
#[derive(Clone, Debug, Default)]
pub struct CourseCapacity {
    /// The course.
    pub course: String,
    /// Its capacity (0 until defined).
    pub capacity: u32,
    /// Its enrolments.
    pub enrolled: u32,
}

impl CourseCapacity {
    /// The state of `course` before any event.
    pub fn of(course: &str) -> Self {
        Self {
            course: course.to_owned(),
            ..Self::default()
        }
    }
}

impl esrc_core::Decision for CourseCapacity {
    fn query(&self) -> esrc_core::Query {
        esrc_core::Query::new().or(
            esrc_core::Item::types::<CourseEvent>(["Defined", "Enrolled"])
                .tagged(tag("course", &self.course)),
        )
    }

    fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
        match event.deserialize::<CourseEvent>()? {
            CourseEvent::Defined { capacity, .. } => self.capacity = capacity,
            CourseEvent::Enrolled { .. } => self.enrolled += 1,
            CourseEvent::Registered { .. } => {}
        }
        Ok(())
    }
}

/// A decision state: whether a username is taken.
#[derive(Clone, Debug, Default)]
pub struct UsernameTaken {
    /// The username.
    pub username: String,
    /// Whether an event registered it.
    pub taken: bool,
}

impl esrc_core::Decision for UsernameTaken {
    fn query(&self) -> esrc_core::Query {
        esrc_core::Query::new().or(esrc_core::Item::types::<CourseEvent>(["Registered"])
            .tagged(tag("username", &self.username)))
    }

    fn apply(&mut self, _: &Envelope) -> Result<(), Error> {
        self.taken = true;
        Ok(())
    }
}
