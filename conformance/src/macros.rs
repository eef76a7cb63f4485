//! The macro that turns the cases into named tests.

/// Expands to one `#[tokio::test]` per conformance case, each named after its case.
///
/// The argument is an expression evaluating to a future of `Option<F>` where
/// `F: StoreFactory`; `None` skips the test (see [`backend_unavailable`](crate::backend_unavailable)).
/// The calling crate needs `tokio` (with the `macros` and `rt-multi-thread` features) as a
/// dev-dependency.
///
/// Attributes written before `factory = …` are put on every test, typically
/// [`requires`](crate::requires), so that the tests show as ignored when their server is
/// not configured:
///
/// ```ignore
/// esrc_conformance::conformance_tests!(async { Some(MyFactory::new()) });
/// esrc_conformance::conformance_tests!(
///     #[esrc_conformance::requires(env = "MY_STORE_URL")]
///     factory = async { MyFactory::connect().await }
/// );
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($(#[$attribute:meta])* factory = $factory:expr) => {
        $crate::__conformance_cases! { [$(#[$attribute])*] $factory;
            append_to_new_stream,
            no_stream_conflicts_on_existing_stream,
            exact_with_stale_version_conflicts,
            any_always_appends,
            empty_batch_is_rejected,
            batch_gets_contiguous_versions,
            conflicting_batch_stores_nothing,
            concurrent_writers_exactly_one_wins,
            retried_batch_is_stored_once,
            a_keyed_command_sent_again_is_stored_once,
            replay_one_returns_later_versions_in_order,
            replay_one_of_unknown_stream_is_empty,
            replay_one_from_any_position_loses_nothing,
            long_stream_reads_in_order,
            replay_reads_group_in_position_order,
            subscribe_catches_up_then_goes_live,
            subscribe_with_concurrent_writers_sees_each_event_once,
            subscriber_waits_for_an_uncommitted_earlier_append,
            subscription_ends_with_a_permanent_failure,
            same_id_in_two_categories_stays_apart,
            namespaces_stay_apart,
            truncate_drops_older_events_and_keeps_version,
            truncate_of_every_event_still_checks_version,
            snapshot_latest_wins,
            read_is_snapshot_then_later_events,
            checkpoints_are_per_name_and_never_move_backwards,
            count_after_counts_events_not_positions,
            catalog_lists_categories_and_resets_checkpoints,
            envelope_fields_round_trip,
            old_payload_versions_upcast,
            malformed_payload_is_format_error,
            unknown_category_is_typed_error,
            invalid_names_are_rejected,
            large_and_unicode_payloads_round_trip,
            projector_sees_every_event_once_in_order,
            projector_resumes_after_its_checkpoint,
            aborted_projector_loses_nothing,
            projectors_with_different_names_each_see_everything,
            failing_projection_does_not_advance_its_checkpoint,
            tags_and_types_round_trip,
            queries_match_types_tags_items_and_streams,
            invalid_queries_are_refused,
            conditions_guard_what_they_query,
            conditional_appends_are_atomic_and_idempotent,
            one_of_many_concurrent_decisions_wins,
            capacity_holds_under_contention,
        }
    };
    ($factory:expr) => {
        $crate::conformance_tests!(factory = $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (@case [$($attribute:tt)*] $factory:expr; $case:ident) => {
        $($attribute)*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            use $crate::__private::futures::FutureExt as _;
            if let Some(factory) = $factory.await {
                let outcome = ::std::panic::AssertUnwindSafe(::std::boxed::Box::pin($crate::cases::$case(&factory)))
                    .catch_unwind()
                    .await;
                $crate::StoreFactory::cleanup(&factory).await;
                if let Err(panic) = outcome {
                    ::std::panic::resume_unwind(panic);
                }
            }
        }
    };
    ($attributes:tt $factory:expr; $($case:ident),+ $(,)?) => {
        $( $crate::__conformance_cases! { @case $attributes $factory; $case } )+
    };
}
