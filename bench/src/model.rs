//! The aggregate the workloads drive.

use std::convert::Infallible;

use esrc_core::Aggregate;
use serde::{Deserialize, Serialize};

/// The events: a small payload with some text, like most business events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
pub enum CounterEvent {
    /// Something was added.
    Added {
        /// How much.
        amount: u64,
        /// A note, to give the payload some text.
        note: String,
    },
}

impl CounterEvent {
    /// The event the workloads write.
    pub fn sample(amount: u64) -> Self {
        CounterEvent::Added {
            amount,
            note: "an order of two coffees and a croissant".to_owned(),
        }
    }
}

/// What the counter is asked to do.
#[derive(Clone, Debug)]
pub enum CounterCommand {
    /// Add one amount: one event.
    Add(u64),
    /// Add `n` times: `n` events from one command.
    AddMany(u64),
}

/// A counter: the sum and the number of events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, esrc_core::Versioned)]
pub struct Counter {
    /// The sum.
    pub total: u64,
    /// How many events.
    pub events: u64,
}

impl Counter {
    /// Applies a decoded event (shared with the raw baselines, so both do the same work).
    pub fn fold(mut self, event: &CounterEvent) -> Self {
        let CounterEvent::Added { amount, .. } = event;
        self.total += amount;
        self.events += 1;
        self
    }
}

impl Aggregate for Counter {
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Infallible;

    fn process(&self, command: CounterCommand) -> Result<Vec<CounterEvent>, Infallible> {
        Ok(match command {
            CounterCommand::Add(amount) => vec![CounterEvent::sample(amount)],
            CounterCommand::AddMany(n) => (0..n).map(CounterEvent::sample).collect(),
        })
    }

    fn apply(self, event: &CounterEvent) -> Self {
        self.fold(event)
    }
}
