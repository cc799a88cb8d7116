//! The shared behaviour suite: every case runs against every backend that is
//! compiled in, through the public API only. A backend is correct when this
//! file passes for it.

mod common;
mod suite;

/// One `#[tokio::test]` per case, for the backend `$kind`.
macro_rules! cases {
    ($kind:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = crate::common::Store::new($kind, stringify!($case));
                crate::suite::$module::$case(store).await;
            }
        )*
    };
}

/// The list of cases, expanded once per backend.
macro_rules! all_cases {
    ($kind:expr) => {
        cases! { $kind;
            kv::get_of_missing_key_is_none,
            kv::set_then_get_round_trips_binary_values,
            kv::set_overwrites,
            kv::ttl_expires_values,
            kv::add_only_creates,
            kv::add_after_expiry_creates,
            kv::delete_reports_whether_it_removed,
            kv::namespaces_never_see_each_other,
            kv::bad_input_is_a_clear_error,
            kv::gets_and_cas_detect_every_write,
            kv::cas_without_token_means_still_absent,
            kv::failed_cas_keeps_the_other_writers_value,
            redlock::first_caller_holds_and_record_is_a_uuid_at_key_lock,
            redlock::waiter_is_woken_by_release_not_by_the_lease,
            redlock::waiter_gives_up_when_the_lease_runs_out,
            redlock::late_caller_never_waits_longer_than_its_lease,
            redlock::one_holder_among_many_concurrent_callers,
            redlock::release_twice_removes_once,
            redlock::stale_release_leaves_the_new_holders_record,
            redlock::dropped_guard_releases_in_the_background,
            redlock::panicking_holder_does_not_strand_waiters,
            redlock::cancelled_waiter_leaves_no_state,
            redlock::cancelled_acquire_does_not_leak_the_record,
            redlock::wake_map_is_empty_after_many_keys,
            redlock::bad_lock_input_is_a_clear_error,
            bounds::tiny_leases_lock_at_once_and_leave_the_key_free,
            bounds::cancelled_lock_attempts_never_leave_a_record,
            bounds::a_foreign_lock_record_never_blocks_a_fill_nor_a_refresh,
            optimistic::cas_succeeds_when_nothing_changed,
            optimistic::concurrent_set_makes_cas_conflict,
            optimistic::same_bytes_written_again_still_conflict,
            optimistic::absent_at_acquire_must_still_be_absent,
            optimistic::concurrent_increments_lose_no_update,
            lease::lock_excludes_and_fences_across_tasks_and_handles,
            lease::lock_waiter_is_woken_by_release,
            lease::lock_takes_over_when_the_holders_lease_runs_out,
            lease::lock_gives_up_after_wait_timeout,
            lease::try_lock_reports_the_holders_remaining_lease,
            lease::renewal_keeps_the_lease_across_three_leases,
            lease::deleted_record_makes_lost_resolve_within_a_renewal,
            lease::lease_without_renewal_is_lost_when_it_runs_out,
            lease::extend_moves_the_lease_and_fails_once_taken,
            lease::release_all_drops_every_held_lock,
            lease::synchronized_runs_one_call_at_a_time,
            lease::synchronized_stops_work_whose_lease_is_lost,
            lease::bad_lease_input_is_a_clear_error,
            lease::huge_leases_are_a_lock_or_a_clear_error,
            fill::thousand_cold_callers_fill_once,
            fill::failing_fill_hands_over_to_exactly_one_waiter,
            fill::cancelled_filler_hands_over_to_one_waiter,
            fill::early_refresh_keeps_a_hot_key_present,
            fill::stale_while_revalidate_serves_the_old_value,
            fill::update_from_many_tasks_loses_no_increment,
            fill::typed_values_round_trip_and_mismatches_name_the_key,
            fill::bad_fill_input_is_a_clear_error,
            fill::huge_fill_durations_are_a_value_or_a_clear_error,
            writes::delete_voids_a_fill_on_one_handle,
            writes::delete_voids_a_fill_across_handles,
            writes::fill_after_delete_stores_nothing_on_one_handle,
            writes::fill_after_delete_stores_nothing_across_handles,
            writes::writes_win_over_fills_on_one_handle,
            writes::writes_win_over_fills_across_handles,
            writes::filler_past_its_lease_does_not_store_on_one_handle,
            writes::filler_past_its_lease_does_not_store_across_handles,
            stale::mark_stale_serves_old_values_while_one_refreshes_on_one_handle,
            stale::mark_stale_serves_old_values_while_one_refreshes_across_handles,
            stale::mark_stale_of_a_missing_key_is_false_and_bad_grace_is_refused,
            stale::detached_refreshes_return_at_once_on_one_handle,
            stale::detached_refreshes_return_at_once_across_handles,
            stale::a_failed_background_refresh_keeps_the_stale_value,
            durations::every_duration_is_honoured_or_refused,
            keyspace::add_fails_while_the_lock_record_is_held,
            keyspace::gets_sees_the_lock_record_and_cas_replaces_it,
            keyspace::a_foreign_value_at_the_record_blocks_the_lock,
            keyspace::set_over_a_held_record_ends_the_lease,
            keyspace::deleting_the_record_frees_the_lock_and_wakes_waiters,
            keyspace::every_operation_sees_one_key_space,
            keyspace::add_and_lock_exclude_each_other,
            surface::get_many_returns_values_in_key_order,
            surface::set_many_then_delete_many,
            surface::set_many_ttl_and_the_default_ttl_expire_values,
            surface::exists_is_true_exactly_when_get_finds_a_value,
            surface::touch_moves_the_expiry,
            surface::increment_is_an_atomic_decimal_counter,
            surface::increment_refuses_what_is_not_a_counter,
            surface::increment_keeps_the_ttl,
            surface::clear_removes_this_namespace_and_nothing_else,
            surface::clear_is_seen_by_other_handles_within_a_second,
            surface::bad_batch_input_is_refused_before_anything_is_sent,
            surface::batch_writes_and_counters_void_fills,
            many::fills_only_the_missing_keys_with_one_call,
            many::overlapping_callers_fill_each_key_once,
            many::a_failed_fill_gives_every_lease_back,
            many::a_cancelled_call_gives_its_leases_back,
            many::a_write_during_the_fill_wins,
            many::a_waiter_whose_key_failed_elsewhere_gets_a_clear_error,
            many::cache_if_and_ttl_with_decide_what_is_stored,
        }

        /// The attributes, where the `macros` feature is on.
        #[cfg(feature = "macros")]
        mod attributes {
            cases! { $kind;
                macros::cached_runs_the_body_once_for_a_thousand_callers,
                macros::synchronized_calls_never_overlap,
            }
        }
    };
}

mod memory {
    all_cases!(crate::common::Kind::Memory);
}

#[cfg(feature = "redis")]
mod redis {
    all_cases!(crate::common::Kind::Redis);
}

#[cfg(feature = "redis-cluster")]
mod redis_cluster {
    all_cases!(crate::common::Kind::RedisCluster);
}

#[cfg(feature = "redis-sentinel")]
mod redis_sentinel {
    all_cases!(crate::common::Kind::RedisSentinel);
}

#[cfg(feature = "memcached")]
mod memcached {
    all_cases!(crate::common::Kind::Memcached);
}

/// Redis with a near cache on every handle: the suite holds through the
/// tier (see `common::near_cache`).
#[cfg(feature = "redis")]
mod redis_near {
    all_cases!(crate::common::Kind::RedisNear);
}

/// memcached with a near cache on every handle.
#[cfg(feature = "memcached")]
mod memcached_near {
    all_cases!(crate::common::Kind::MemcachedNear);
}
