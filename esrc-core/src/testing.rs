//! Given/When/Then: unit tests for aggregates, and for decisions across streams
//! ([`given_history`]), without a store.
//!
//! ```
//! # use esrc_core::{Aggregate, Event, Versioned};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! # enum CounterEvent { Added(u32) }
//! # impl Versioned for CounterEvent {}
//! # impl Event for CounterEvent { const NAME: &'static str = "Counter"; }
//! # #[derive(Debug, PartialEq, thiserror::Error)]
//! # #[error("too big")]
//! # struct TooBig;
//! # #[derive(Default)]
//! # struct Counter(u32);
//! # impl Aggregate for Counter {
//! #     type Command = u32;
//! #     type Event = CounterEvent;
//! #     type Error = TooBig;
//! #     fn process(&self, n: u32) -> Result<Vec<CounterEvent>, TooBig> {
//! #         if self.0 + n > 10 { Err(TooBig) } else { Ok(vec![CounterEvent::Added(n)]) }
//! #     }
//! #     fn apply(self, CounterEvent::Added(n): &CounterEvent) -> Self { Counter(self.0 + n) }
//! # }
//! use esrc_core::testing::given;
//!
//! given::<Counter>([CounterEvent::Added(4)]).when(5).then([CounterEvent::Added(5)]);
//! given::<Counter>([CounterEvent::Added(4)]).when(7).then_error(TooBig);
//!
//! // With the link from the event to its aggregate (`#[esrc(aggregate = Counter)]` on a
//! // derived event), the aggregate is found from the events.
//! # impl esrc_core::AggregateEvent for CounterEvent { type Aggregate = Counter; }
//! use esrc_core::testing::given_events;
//! given_events([CounterEvent::Added(4)]).when(5).then([CounterEvent::Added(5)]);
//!
//! // One history, several commands.
//! let four = given::<Counter>([CounterEvent::Added(4)]);
//! four.when(1).then([CounterEvent::Added(1)]);
//! four.when(9).then_error_matches(|error| error.to_string() == "too big");
//! ```

use std::fmt::{Debug, Write};

use uuid::Uuid;

use crate::{Aggregate, AggregateEvent, Position, Root, Version};

/// Starts a scenario: the aggregate after `events`, with a new id. Name the aggregate
/// (`given::<Tab>(…)`), or use [`given_events`] where the event type is linked to it.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    given_for(Uuid::now_v7(), events)
}

/// Starts a scenario from events alone: the aggregate is the one the event type is
/// linked to by [`AggregateEvent`], so no annotation is needed. An empty history has no
/// event to infer from: write `given::<Tab>([])`.
pub fn given_events<E: AggregateEvent>(events: impl IntoIterator<Item = E>) -> Given<E::Aggregate> {
    given(events)
}

/// Starts a scenario for the aggregate `id`, for aggregates whose events carry their id.
pub fn given_for<A: Aggregate>(id: Uuid, events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut root = Root::<A>::new(id);
    for (event, version) in events.into_iter().zip(1..) {
        // No store placed these events: they have versions but no positions.
        root.apply_event(&event, Version(version), Position::ZERO);
    }
    Given { root }
}

/// An aggregate built from the given events. Several commands can be tried on one
/// history: [`Given::when`] borrows it.
#[derive(Debug)]
pub struct Given<A> {
    root: Root<A>,
}

impl<A: Aggregate> Given<A> {
    /// Processes `command` on the aggregate as the history left it.
    pub fn when(&self, command: A::Command) -> When<A> {
        When {
            result: self.root.process(command),
        }
    }

    /// The aggregate's id.
    pub fn id(&self) -> Uuid {
        self.root.id()
    }

    /// The aggregate as the history left it.
    pub fn aggregate(&self) -> &A {
        self.root.aggregate()
    }

    /// The root as the history left it: its version is the number of given events, its
    /// position 0 (no store placed them).
    pub fn into_root(self) -> Root<A> {
        self.root
    }
}

/// The outcome of a command, to check.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A> {
    /// Asserts that the command produced exactly `expected`, in order; panics with a
    /// line-by-line diff otherwise.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>)
    where
        A::Event: PartialEq + Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(actual) if actual == expected => {}
            Ok(actual) => panic!("{}", diff(&expected, &actual)),
            Err(error) => panic!(
                "expected events, but the command was rejected:\n  error: {error:?}\n{}",
                list("expected", &expected)
            ),
        }
    }

    /// Asserts that the command was rejected with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
        A::Event: Debug,
    {
        match self.result {
            Err(error) if error == expected => {}
            Err(error) => panic!(
                "the command was rejected with another error:\n  expected: {expected:?}\n  actual:   {error:?}"
            ),
            Ok(events) => panic!(
                "expected the error {expected:?}, but the command succeeded:\n{}",
                list("actual", &events)
            ),
        }
    }

    /// Asserts that the command was rejected with an error for which `check` holds.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&A::Error) -> bool)
    where
        A::Event: Debug,
    {
        match self.result {
            Err(error) if check(&error) => {}
            Err(error) => panic!("the command was rejected with an unexpected error: {error:?}"),
            Ok(events) => panic!(
                "expected an error, but the command succeeded:\n{}",
                list("actual", &events)
            ),
        }
    }

    /// The raw outcome, for custom checks.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}

/// Starts a decision scenario (decisions across streams, [`Decision`](crate::Decision)): the store
/// after `history`, the writes of earlier decisions or commands, in order.
///
/// ```
/// # use esrc_core::{Decision, Envelope, Error, Event, Item, Query, Versioned, Write};
/// # use serde::{Deserialize, Serialize};
/// # use uuid::Uuid;
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum UserEvent { Registered { name: String } }
/// # impl Versioned for UserEvent {}
/// impl Event for UserEvent {
///     const NAME: &'static str = "User";
///     fn variant(&self) -> &'static str { "Registered" }
///     fn tags(&self) -> Vec<String> {
///         let UserEvent::Registered { name } = self;
///         vec![format!("username:{name}")]
///     }
/// }
///
/// struct Taken { name: String, taken: bool }
/// impl Decision for Taken {
///     fn query(&self) -> Query {
///         let tag = esrc_core::Tag::from_parts("username", &self.name).unwrap();
///         Query::new().or(Item::types::<UserEvent>(["Registered"]).tagged(tag))
///     }
///     fn apply(&mut self, _: &Envelope) -> Result<(), Error> {
///         self.taken = true;
///         Ok(())
///     }
/// }
///
/// #[derive(Debug, PartialEq)]
/// struct NameTaken;
/// let register = |name: &str| {
///     let name = name.to_owned();
///     move |state: &Taken| {
///         if state.taken {
///             return Err(NameTaken);
///         }
///         let event = UserEvent::Registered { name: name.clone() };
///         Ok(vec![Write::event(Uuid::now_v7(), &event).unwrap()])
///     }
/// };
/// let taken = |name: &str| Taken { name: name.to_owned(), taken: false };
///
/// use esrc_core::testing::given_history;
/// let ada = UserEvent::Registered { name: "ada".into() };
/// let history = given_history([Write::event(Uuid::now_v7(), &ada).unwrap()]);
/// history.decide(taken("ada"), register("ada")).then_error(NameTaken);
/// history
///     .decide(taken("bob"), register("bob"))
///     .then([UserEvent::Registered { name: "bob".into() }]);
/// ```
pub fn given_history(history: impl IntoIterator<Item = crate::Write>) -> History {
    let mut versions: std::collections::HashMap<(String, Uuid), u64> = Default::default();
    let mut position = 0;
    let mut events = Vec::new();
    for write in history {
        for event in write.events {
            position += 1;
            let version = versions
                .entry((write.category.clone(), write.id))
                .or_default();
            *version += 1;
            events.push(event.into_envelope(
                write.category.clone(),
                write.id,
                Version(*version),
                Position(position),
            ));
        }
    }
    History { events }
}

/// The store's history in a decision scenario, to decide on.
#[derive(Debug)]
pub struct History {
    events: Vec<crate::Envelope>,
}

impl History {
    /// Folds `state` from the events its query matches, then lets `decide` decide.
    /// Panics if the state cannot fold an event (a payload that does not decode).
    #[track_caller]
    pub fn decide<D: crate::Decision, E>(
        &self,
        mut state: D,
        decide: impl FnOnce(&D) -> Result<Vec<crate::Write>, E>,
    ) -> Decided<E> {
        let query = state.query();
        for event in self.events.iter().filter(|event| query.matches(event)) {
            if let Err(error) = state.apply(event) {
                panic!(
                    "the decision state cannot fold the event at position {}: {error}",
                    event.position
                );
            }
        }
        Decided {
            result: decide(&state),
        }
    }
}

/// The outcome of a decision, to check.
#[derive(Debug)]
pub struct Decided<E> {
    result: Result<Vec<crate::Write>, E>,
}

impl<E: Debug> Decided<E> {
    /// Asserts that the decision wrote exactly `expected` (decoded as `Ev`, across its
    /// writes, in order).
    #[track_caller]
    pub fn then<Ev>(self, expected: impl IntoIterator<Item = Ev>)
    where
        Ev: crate::Event + serde::de::DeserializeOwned + PartialEq + Debug,
    {
        let expected: Vec<Ev> = expected.into_iter().collect();
        let writes = match self.result {
            Ok(writes) => writes,
            Err(error) => panic!(
                "expected events, but the decision was refused:\n  error: {error:?}\n{}",
                list("expected", &expected)
            ),
        };
        let actual: Vec<Ev> = writes
            .iter()
            .flat_map(|write| &write.events)
            .map(|event| {
                Ev::decode(event.schema_version, &event.payload)
                    .unwrap_or_else(|error| panic!("a written event does not decode: {error}"))
            })
            .collect();
        if actual != expected {
            panic!("{}", diff(&expected, &actual));
        }
    }

    /// Asserts that the decision was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: PartialEq,
    {
        match self.result {
            Err(error) if error == expected => {}
            Err(error) => panic!(
                "the decision was refused with another error:\n  expected: {expected:?}\n  actual:   {error:?}"
            ),
            Ok(writes) => panic!(
                "expected the error {expected:?}, but the decision wrote {} events",
                writes.iter().map(|write| write.events.len()).sum::<usize>()
            ),
        }
    }

    /// The raw outcome, for custom checks.
    pub fn result(self) -> Result<Vec<crate::Write>, E> {
        self.result
    }
}

fn list<E: Debug>(label: &str, events: &[E]) -> String {
    let mut out = format!("  {label} ({} events):\n", events.len());
    for (i, event) in events.iter().enumerate() {
        let _ = writeln!(out, "    #{i} {event:?}");
    }
    out
}

/// A diff of two event lists, one line per index: `=` same, `-` expected, `+` actual.
fn diff<E: Debug + PartialEq>(expected: &[E], actual: &[E]) -> String {
    let mut out = format!(
        "the events differ (expected {}, got {}):\n",
        expected.len(),
        actual.len()
    );
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if e == a => {
                let _ = writeln!(out, "  = #{i} {e:?}");
            }
            (e, a) => {
                if let Some(e) = e {
                    let _ = writeln!(out, "  - #{i} {e:?}");
                }
                if let Some(a) = a {
                    let _ = writeln!(out, "  + #{i} {a:?}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_marks_each_index() {
        let text = diff(&[1, 2, 3], &[1, 5]);
        assert!(text.contains("expected 3, got 2"), "{text}");
        assert!(text.contains("= #0 1"), "{text}");
        assert!(text.contains("- #1 2") && text.contains("+ #1 5"), "{text}");
        assert!(text.contains("- #2 3"), "{text}");
    }
}
