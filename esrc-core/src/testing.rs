//! Given/When/Then: unit tests for aggregates without a store.
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
