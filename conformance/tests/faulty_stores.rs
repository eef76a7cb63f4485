//! The suite is tested too: stores broken on purpose must fail exactly the cases that
//! guard what they break, and still pass a case they do not break.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use esrc_conformance::{StoreFactory, cases};
use esrc_core::{
    Appended, CategoryStats, CheckpointStore, Condition, Decide, Envelope, Error, Expected,
    Metadata, NewEvent, Position, Publish, Query, Replay, ReplayOne, Snapshot, SnapshotStore,
    Subscribe, Truncate, Version, Write,
};
use esrc_memory::MemoryStore;
use futures::{FutureExt, Stream, StreamExt};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Appends ignore the expectation.
    SkipConcurrencyCheck,
    /// The expectation is checked by reading first, then written without a check.
    ReadThenWrite,
    /// Every batch gets fresh event ids, so retries are stored twice.
    FreshEventIds,
    /// Subscriptions silently drop every 7th event.
    SubscribeDropsEvents,
    /// Subscriptions deliver every 5th event twice.
    SubscribeRepeatsEvents,
    /// `replay` includes the event at `after`.
    ReplayIncludesAfter,
    /// `truncate` also removes the event at `before`.
    TruncateOffByOne,
    /// Checkpoints are overwritten even by lower positions.
    CheckpointMovesBackwards,
    /// Metadata is not stored.
    DropsMetadata,
    /// Checkpoints are never stored.
    ForgetsCheckpoints,
    /// `count_after` answers the difference of positions, not a count of events.
    CountsPositions,
    /// `reset_checkpoint` cannot move a checkpoint backwards.
    ResetOnlyForwards,
    /// `replay_one_from` trusts the position it is given: it skips every event at or
    /// below it.
    TrustsPosition,
    /// Subscriptions retry a permanent failure for ever, saying nothing.
    RetriesPermanentFailures,
    /// Conditional appends ignore their condition.
    IgnoresConditions,
    /// The condition is checked by a query first, then the events are written without
    /// a check.
    ChecksConditionThenWrites,
    /// Queries ignore items' tags.
    QueryIgnoresTags,
    /// Tags are not stored.
    DropsTags,
}

#[derive(Clone)]
struct Faulty {
    inner: MemoryStore,
    fault: Fault,
    checkpoints: Arc<Mutex<HashMap<String, Position>>>,
    /// Set when the factory removes the store's namespace: its subscriptions then meet a
    /// permanent failure.
    removed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Publish for Faulty {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        mut events: Vec<NewEvent>,
    ) -> Result<Appended, Error> {
        let mut expected = expected;
        match self.fault {
            Fault::SkipConcurrencyCheck => expected = Expected::Any,
            Fault::ReadThenWrite => {
                let actual = self
                    .inner
                    .replay_one(category, id, Version::ZERO)
                    .fold(Version::ZERO, |_, e| async move {
                        e.map_or(Version::ZERO, |e| e.version)
                    })
                    .await;
                // Network latency between the read and the write, made visible.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                if !expected.matches(actual) {
                    return Err(Error::conflict(category, id, expected, actual));
                }
                expected = Expected::Any;
            }
            Fault::FreshEventIds => {
                for event in &mut events {
                    event.event_id = Uuid::new_v4();
                }
            }
            Fault::DropsMetadata => {
                for event in &mut events {
                    event.metadata = Metadata::default();
                }
            }
            Fault::DropsTags => {
                for event in &mut events {
                    event.tags.clear();
                }
            }
            _ => {}
        }
        self.inner.publish(category, id, expected, events).await
    }
}

impl ReplayOne for Faulty {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.inner.replay_one(category, id, after)
    }

    fn replay_one_from(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let trusted = self.fault == Fault::TrustsPosition;
        self.inner
            .replay_one(category, id, after)
            .filter(move |event| {
                let skipped = trusted && event.as_ref().is_ok_and(|event| event.position <= at);
                std::future::ready(!skipped)
            })
    }
}

impl Replay for Faulty {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let after = if self.fault == Fault::ReplayIncludesAfter && after > Position::ZERO {
            Position(after.get() - 1)
        } else {
            after
        };
        self.inner.replay(categories, after)
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        self.inner.head(categories).await
    }

    async fn count_after(&self, categories: &[&str], after: Position) -> Result<u64, Error> {
        if self.fault == Fault::CountsPositions {
            let head = self.inner.head(categories).await?;
            return Ok(head.get().saturating_sub(after.get()));
        }
        self.inner.count_after(categories, after).await
    }

    async fn categories(&self) -> Result<Vec<CategoryStats>, Error> {
        self.inner.categories().await
    }
}

impl Subscribe for Faulty {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let fault = self.fault;
        let events = self
            .inner
            .subscribe(categories, after)
            .enumerate()
            .flat_map(move |(n, item)| {
                let copies = match fault {
                    Fault::SubscribeDropsEvents if n % 7 == 6 => 0,
                    Fault::SubscribeRepeatsEvents if n % 5 == 4 => 2,
                    _ => 1,
                };
                let items: Vec<_> = (0..copies)
                    .map(|_| match &item {
                        Ok(envelope) => Ok(envelope.clone()),
                        Err(error) => Err(Error::not_supported_by(
                            "Faulty",
                            if error.is_conflict() {
                                "never"
                            } else {
                                "error copy"
                            },
                        )),
                    })
                    .collect();
                futures::stream::iter(items)
            });
        let removed = self.removed.subscribe();
        let state = (Box::pin(events), removed, false);
        futures::stream::unfold(state, move |(mut events, mut removed, ended)| async move {
            if ended {
                return None;
            }
            tokio::select! {
                item = events.next() => item.map(|item| (item, (events, removed, false))),
                _ = async { removed.wait_for(|gone| *gone).await.is_ok() } => {
                    if fault == Fault::RetriesPermanentFailures {
                        std::future::pending::<()>().await;
                    }
                    let gone = Error::backend("faulty", false, "the namespace was removed");
                    Some((Err(gone), (events, removed, true)))
                }
            }
        })
    }
}

impl Truncate for Faulty {
    async fn truncate(&self, category: &str, id: Uuid, before: Version) -> Result<(), Error> {
        let before = if self.fault == Fault::TruncateOffByOne {
            before.next()
        } else {
            before
        };
        self.inner.truncate(category, id, before).await
    }
}

impl SnapshotStore for Faulty {
    async fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> Result<(), Error> {
        self.inner.save_snapshot(category, id, snapshot).await
    }

    async fn load_snapshot(&self, category: &str, id: Uuid) -> Result<Option<Snapshot>, Error> {
        self.inner.load_snapshot(category, id).await
    }
}

impl CheckpointStore for Faulty {
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), Error> {
        if self.fault != Fault::CheckpointMovesBackwards {
            return self.inner.save_checkpoint(name, position).await;
        }
        esrc_core::backend::validate_name(name)?;
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), position);
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, Error> {
        self.inner.checkpoints().await
    }

    async fn reset_checkpoint(&self, name: &str, to: Option<Position>) -> Result<(), Error> {
        match (self.fault, to) {
            (Fault::ResetOnlyForwards, Some(position)) => {
                self.inner.save_checkpoint(name, position).await
            }
            _ => self.inner.reset_checkpoint(name, to).await,
        }
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, Error> {
        if self.fault == Fault::ForgetsCheckpoints {
            esrc_core::backend::validate_name(name)?;
            return Ok(None);
        }
        if self.fault != Fault::CheckpointMovesBackwards {
            return self.inner.load_checkpoint(name).await;
        }
        Ok(self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied())
    }
}

impl Decide for Faulty {
    async fn horizon(&self) -> Result<Position, Error> {
        self.inner.horizon().await
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let mut query = query.clone();
        if self.fault == Fault::QueryIgnoresTags {
            for item in &mut query.items {
                item.tags.clear();
            }
        }
        self.inner.query(&query, after, until)
    }

    async fn append_if(
        &self,
        mut writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        match self.fault {
            Fault::IgnoresConditions => return self.inner.append_if(writes, None).await,
            Fault::ChecksConditionThenWrites => {
                if let Some(condition) = &condition {
                    let until = self.inner.horizon().await?;
                    let first = self
                        .inner
                        .query(&condition.query, condition.after, until)
                        .next()
                        .await
                        .transpose()?;
                    if let Some(found) = first {
                        return Err(Error::condition_failed(condition.clone(), found.position));
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                return self.inner.append_if(writes, None).await;
            }
            Fault::DropsTags => {
                for write in &mut writes {
                    for event in &mut write.events {
                        event.tags.clear();
                    }
                }
            }
            _ => {}
        }
        self.inner.append_if(writes, condition).await
    }
}

struct FaultyFactory(Fault);

impl StoreFactory for FaultyFactory {
    type Store = Faulty;

    async fn store(&self) -> Faulty {
        Faulty {
            inner: MemoryStore::new(),
            fault: self.0,
            checkpoints: Arc::default(),
            removed: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    async fn remove_namespace(&self, store: &Faulty) -> Result<(), Error> {
        store.removed.send_replace(true);
        Ok(())
    }
}

/// Whether the case panicked (failed).
async fn fails(case: impl Future<Output = ()>) -> bool {
    AssertUnwindSafe(case).catch_unwind().await.is_err()
}

macro_rules! check_fault {
    ($test:ident, $fault:expr, fails: [$($failing:ident),+ $(,)?], passes: [$($passing:ident),+ $(,)?]) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let factory = FaultyFactory($fault);
            let mut wrong = Vec::new();
            $(
                if !fails(cases::$failing(&factory)).await {
                    wrong.push(concat!(stringify!($failing), " passed but must fail"));
                }
            )+
            $(
                if fails(cases::$passing(&factory)).await {
                    wrong.push(concat!(stringify!($passing), " failed but the fault does not touch it"));
                }
            )+
            assert!(wrong.is_empty(), "{:?}: {wrong:#?}", $fault);
        }
    };
}

check_fault!(skipped_concurrency_check_is_caught, Fault::SkipConcurrencyCheck,
    fails: [
        no_stream_conflicts_on_existing_stream,
        exact_with_stale_version_conflicts,
        conflicting_batch_stores_nothing,
        concurrent_writers_exactly_one_wins,
        truncate_of_every_event_still_checks_version,
    ],
    passes: [append_to_new_stream, any_always_appends, subscribe_catches_up_then_goes_live]);

check_fault!(read_then_write_is_caught, Fault::ReadThenWrite,
    fails: [concurrent_writers_exactly_one_wins],
    passes: [exact_with_stale_version_conflicts, no_stream_conflicts_on_existing_stream]);

check_fault!(non_idempotent_retry_is_caught, Fault::FreshEventIds,
    fails: [
        retried_batch_is_stored_once,
        envelope_fields_round_trip,
        a_keyed_command_sent_again_is_stored_once,
    ],
    passes: [append_to_new_stream, batch_gets_contiguous_versions]);

check_fault!(subscription_dropping_events_is_caught, Fault::SubscribeDropsEvents,
    fails: [
        subscribe_catches_up_then_goes_live,
        subscribe_with_concurrent_writers_sees_each_event_once,
    ],
    passes: [replay_reads_group_in_position_order, long_stream_reads_in_order]);

check_fault!(subscription_repeating_events_is_caught, Fault::SubscribeRepeatsEvents,
    fails: [
        subscribe_catches_up_then_goes_live,
        subscribe_with_concurrent_writers_sees_each_event_once,
    ],
    passes: [replay_reads_group_in_position_order]);

check_fault!(inclusive_replay_is_caught, Fault::ReplayIncludesAfter,
    fails: [replay_reads_group_in_position_order, long_stream_reads_in_order],
    passes: [replay_one_returns_later_versions_in_order, subscribe_catches_up_then_goes_live]);

check_fault!(truncate_off_by_one_is_caught, Fault::TruncateOffByOne,
    fails: [truncate_drops_older_events_and_keeps_version],
    passes: [append_to_new_stream]);

check_fault!(checkpoint_moving_backwards_is_caught, Fault::CheckpointMovesBackwards,
    fails: [checkpoints_are_per_name_and_never_move_backwards],
    passes: [namespaces_stay_apart]);

check_fault!(lost_metadata_is_caught, Fault::DropsMetadata,
    fails: [envelope_fields_round_trip],
    passes: [append_to_new_stream]);

check_fault!(forgotten_checkpoints_are_caught, Fault::ForgetsCheckpoints,
    fails: [
        projector_resumes_after_its_checkpoint,
        aborted_projector_loses_nothing,
        failing_projection_does_not_advance_its_checkpoint,
        checkpoints_are_per_name_and_never_move_backwards,
    ],
    passes: [projectors_with_different_names_each_see_everything]);

check_fault!(subscription_dropping_events_fails_projectors, Fault::SubscribeDropsEvents,
    fails: [projector_sees_every_event_once_in_order],
    passes: [append_to_new_stream]);

check_fault!(counting_positions_is_caught, Fault::CountsPositions,
    fails: [count_after_counts_events_not_positions],
    passes: [catalog_lists_categories_and_resets_checkpoints, append_to_new_stream]);

check_fault!(a_reset_that_cannot_go_back_is_caught, Fault::ResetOnlyForwards,
    fails: [catalog_lists_categories_and_resets_checkpoints],
    passes: [checkpoints_are_per_name_and_never_move_backwards, count_after_counts_events_not_positions]);

check_fault!(trusting_the_position_is_caught, Fault::TrustsPosition,
fails: [replay_one_from_any_position_loses_nothing],
passes: [
    replay_one_returns_later_versions_in_order,
    read_is_snapshot_then_later_events,
    subscription_ends_with_a_permanent_failure,
]);

check_fault!(retrying_a_permanent_failure_for_ever_is_caught, Fault::RetriesPermanentFailures,
    fails: [subscription_ends_with_a_permanent_failure],
    passes: [subscribe_catches_up_then_goes_live, append_to_new_stream]);

check_fault!(ignoring_conditions_is_caught, Fault::IgnoresConditions,
    fails: [
        conditions_guard_what_they_query,
        one_of_many_concurrent_decisions_wins,
        capacity_holds_under_contention,
    ],
    passes: [queries_match_types_tags_items_and_streams, tags_and_types_round_trip]);

check_fault!(checking_a_condition_before_writing_is_caught, Fault::ChecksConditionThenWrites,
    fails: [one_of_many_concurrent_decisions_wins],
    passes: [conditions_guard_what_they_query, queries_match_types_tags_items_and_streams]);

check_fault!(queries_ignoring_tags_are_caught, Fault::QueryIgnoresTags,
    fails: [queries_match_types_tags_items_and_streams],
    passes: [tags_and_types_round_trip, invalid_queries_are_refused]);

check_fault!(lost_tags_are_caught, Fault::DropsTags,
    fails: [tags_and_types_round_trip, queries_match_types_tags_items_and_streams],
    passes: [append_to_new_stream, invalid_queries_are_refused]);
