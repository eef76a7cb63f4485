//! `cargo run --release --manifest-path bench/seed/Cargo.toml` (with `ESRC_NATS_URL`):
//! esrc-bench's W3 — load an aggregate of 5,000 events — through esrc and through the seed
//! crate, esrc 0.1, on the same server in one run, in alternating rounds. esrc's aggregate
//! is written twice: by commands of 500 events (as W3 writes it: atomic batches) and by
//! one-event commands (as the seed writes every event).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use esrc_core::{PublishExt, ReadExt, Root};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const EVENTS: u64 = 5_000;
const ROUNDS: usize = 10;

/// The note every event carries, as in esrc-bench's model.
const NOTE: &str = "an order of two coffees and a croissant";

/// esrc's side: the counter of esrc-bench.
mod today {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize, esrc_core::Event)]
    #[esrc(crate = "::esrc_core")]
    pub enum CounterEvent {
        Added { amount: u64, note: String },
    }

    #[derive(Default)]
    pub struct Counter {
        pub events: u64,
    }

    impl esrc_core::Aggregate for Counter {
        type Command = u64;
        type Event = CounterEvent;
        type Error = Infallible;

        /// `n` events.
        fn process(&self, n: u64) -> Result<Vec<CounterEvent>, Infallible> {
            let event = |amount| CounterEvent::Added {
                amount,
                note: NOTE.to_owned(),
            };
            Ok((0..n).map(event).collect())
        }

        fn apply(mut self, CounterEvent::Added { .. }: &CounterEvent) -> Self {
            self.events += 1;
            self
        }
    }
}

/// The seed's side: the same counter in esrc 0.1.
mod seed {
    use super::*;
    use esrc::Event;
    use esrc::version::{DeserializeVersion, SerializeVersion};

    #[derive(Event, Serialize, Deserialize, SerializeVersion, DeserializeVersion)]
    pub enum CounterEvent {
        Added { amount: u64, note: String },
    }

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    pub struct Never;

    #[derive(Default)]
    pub struct Counter {
        pub events: u64,
    }

    impl esrc::Aggregate for Counter {
        type Command = u64;
        type Event = CounterEvent;
        type Error = Never;

        fn process(&self, amount: u64) -> Result<CounterEvent, Never> {
            Ok(CounterEvent::Added {
                amount,
                note: super::NOTE.to_owned(),
            })
        }

        fn apply(mut self, CounterEvent::Added { .. }: &CounterEvent) -> Self {
            self.events += 1;
            self
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("ESRC_NATS_URL").map_err(|_| "set ESRC_NATS_URL")?;
    let name = Uuid::new_v4().simple().to_string();

    let client = async_nats::connect(&url).await?;
    let store = esrc_nats::NatsStore::builder()
        .stream(format!("SEEDW3{name}"))
        .prefix(format!("seedw3{name}"))
        .build(client)
        .await?;
    let seed_client = seed_nats::connect(&url).await?;
    let seed_context = seed_nats::jetstream::new(seed_client);
    let prefix: &'static str = Box::leak(format!("seed{name}").into_boxed_str());
    let mut seed_store = esrc::nats::NatsStore::try_new(seed_context.clone(), prefix).await?;

    let outcome = run(&store, &mut seed_store).await;
    store.destroy().await?;
    seed_context.delete_stream(prefix).await?;
    let lines = outcome?;
    println!(
        "\nW3 on NATS beside the seed crate (esrc 0.1), {EVENTS} events, {ROUNDS} loads each\n"
    );
    println!("| load | events/s | vs the seed |");
    println!("| --- | --- | --- |");
    let seed_rate = lines[2].1;
    for (what, rate) in &lines {
        println!("| {what} | {rate:.0} | {:.2} |", rate / seed_rate);
    }
    Ok(())
}

async fn run(
    store: &esrc_nats::NatsStore,
    seed_store: &mut esrc::nats::NatsStore,
) -> Result<Vec<(&'static str, f64)>, BoxError> {
    use esrc::event::{Publish as _, ReplayOneExt as _};

    // The aggregates: esrc's by commands of 500 events and of one; the seed's by one.
    let (batched, single, seeded) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut root = Root::<today::Counter>::new(batched);
    for _ in 0..EVENTS / 500 {
        store.try_write(&mut root, 500).await?;
    }
    let mut root = Root::<today::Counter>::new(single);
    for _ in 0..EVENTS {
        store.try_write(&mut root, 1).await?;
    }
    // The seed's `try_write` hands back the root with the sequence it had (a bug of
    // 0.1): publish with the sequence each publish returns, as a 0.1 program had to.
    let mut last = esrc::event::Sequence::new();
    for amount in 0..EVENTS {
        let event = seed::CounterEvent::Added {
            amount,
            note: NOTE.to_owned(),
        };
        last = seed_store.publish(seeded, last, event).await?;
    }

    let mut times = [Duration::ZERO; 3];
    for _ in 0..ROUNDS {
        for (index, id) in [batched, single].into_iter().enumerate() {
            let started = Instant::now();
            let loaded = store.load::<today::Counter>(id).await?;
            times[index] += started.elapsed();
            assert_eq!(loaded.events, EVENTS);
        }
        let started = Instant::now();
        let loaded = seed_store.read::<seed::Counter>(seeded).await?;
        times[2] += started.elapsed();
        assert_eq!(esrc::aggregate::Root::into_inner(loaded).events, EVENTS);
    }
    let rate = |time: Duration| (ROUNDS as u64 * EVENTS) as f64 / time.as_secs_f64();
    Ok(vec![
        ("esrc, written by commands of 500 events", rate(times[0])),
        ("esrc, written by one-event commands", rate(times[1])),
        (
            "the seed (esrc 0.1), written one event at a time",
            rate(times[2]),
        ),
    ])
}
