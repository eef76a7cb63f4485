//! Micro-benchmarks: envelope encode and decode, aggregate apply.

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use esrc_bench::model::{Counter, CounterEvent};
use esrc_core::{Aggregate, NewEvent, Position, Version};
use std::hint::black_box;
use uuid::Uuid;

fn envelope(c: &mut Criterion) {
    let event = CounterEvent::sample(7);
    c.bench_function("encode (NewEvent::new)", |b| {
        b.iter(|| NewEvent::new(black_box(&event)))
    });
    let stored = NewEvent::new(&event)
        .map(|e| e.into_envelope("Counter", Uuid::nil(), Version(1), Position(1)));
    if let Ok(stored) = stored {
        c.bench_function("decode (Envelope::deserialize)", |b| {
            b.iter(|| black_box(&stored).deserialize::<CounterEvent>())
        });
    }
    c.bench_function("apply (Aggregate::apply)", |b| {
        b.iter(|| Counter::default().apply(black_box(&event)))
    });
}

criterion_group!(benches, envelope);
criterion_main!(benches);
