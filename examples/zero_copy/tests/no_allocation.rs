//! Decoding and projecting borrowed events allocates nothing, counted by the allocator.

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use esrc::backend::project_one;
use esrc::memory::MemoryStore;
use esrc::{Envelope, Expected, Metadata, Position, PublishExt, Replay};
use futures::StreamExt;
use uuid::Uuid;
use zero_copy::{SensorEvent, Summary};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn projecting_borrowed_events_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let envelopes: Vec<Envelope> = runtime.block_on(async {
        let store = MemoryStore::new();
        let events: Vec<SensorEvent<'_>> = (0..500)
            .map(|n| SensorEvent::Measured {
                sensor: if n % 2 == 0 { "oven" } else { "fridge" },
                unit: "°C",
                value: f64::from(n),
            })
            .collect();
        store
            .publish_events(
                Uuid::now_v7(),
                Expected::NoStream,
                &events,
                &Metadata::new(),
            )
            .await
            .unwrap();
        store
            .replay(&["Sensor"], Position::ZERO)
            .map(Result::unwrap)
            .collect()
            .await
    });
    let mut summary = Summary::new(&["oven", "fridge"]);
    // Warm up whatever the executor sets up once per thread.
    futures::executor::block_on(project_one(&mut summary, &envelopes[0])).unwrap();

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    futures::executor::block_on(async {
        for envelope in &envelopes[1..] {
            project_one(&mut summary, envelope).await.unwrap();
        }
    });
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;

    assert_eq!(
        allocations, 0,
        "decoding and projecting 499 events allocated {allocations} times"
    );
    assert_eq!(
        summary.sensors[0].readings + summary.sensors[1].readings,
        500
    );
    let in_place = 250 * ("oven".len() + "°C".len()) + 250 * ("fridge".len() + "°C".len());
    assert_eq!(
        summary.borrowed_bytes, in_place as u64,
        "every string was read in place"
    );
}
