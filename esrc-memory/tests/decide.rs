//! The horizon covers every event a condition can fail on: once an append was refused
//! for an event at position p, a horizon read afterwards is at p or beyond. CI saw a
//! decision run out of 12 tries in the capacity case of the conformance suite: each
//! new read stopped short of the event its append had just been refused for, because
//! the head moved only after the lock that stored the event was released.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use esrc_core::{Condition, Decide, Error, Item, NewEvent, Query, Tag, Write};
use esrc_memory::MemoryStore;
use uuid::Uuid;

fn tagged(tag: &Tag) -> Write {
    let mut event = NewEvent::from_payload(1, "{}");
    event.tags = vec![tag.clone()];
    Write::new("Course", Uuid::now_v7(), vec![event])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_condition_is_never_ahead_of_the_next_horizon() {
    const CHECKS: usize = 20_000;
    let store = MemoryStore::new();
    let tag = Tag::new("course:c1").unwrap();
    let query = Query::new().or(Item::new().tagged(tag.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    // Writers storing events of the tag as fast as they can, on more threads than the
    // machine has cores, so that one is sometimes preempted right after storing.
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (store, tag, stop) = (store.clone(), tag.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    store.append_if(vec![tagged(&tag)], None).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut refused = 0;
    for check in 0..CHECKS {
        let horizon = store.horizon().await.unwrap();
        let condition = Condition::new(query.clone()).after(horizon);
        match store.append_if(vec![tagged(&tag)], Some(condition)).await {
            Ok(_) => {}
            Err(Error::ConditionFailed { position, .. }) => {
                refused += 1;
                let next = store.horizon().await.unwrap();
                assert!(
                    next >= position,
                    "check {check}: refused for an event at {position}, yet the next horizon is {next}"
                );
            }
            Err(other) => panic!("check {check}: {other}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(refused > 0, "the writers never raced the checks");
}
