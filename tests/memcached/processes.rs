//! Other OS processes: a waiter woken by polling, and the suite run in a
//! child against two servers named in one URL.

use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use super::common::process::{self, expect_success, next_report, report, report_lines};
use super::common::servers::{Server, MEMCACHED};
use super::common::{Kind, Store};
use super::{server_stats, shared_url, unique};

const LONG_LEASE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_is_woken_by_release_within_the_poll_interval() {
    let url = format!(
        "{}?namespace={}&poll_ms=50",
        shared_url(),
        unique("cross-process")
    );
    let cache = Cache::from_url(&url).await.unwrap();
    let holder = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(holder.holds_lock());

    let mut child = process::spawn(
        "processes::child_waits_for_the_lock",
        &[("URL", url.clone())],
    );
    let mut reports = report_lines(child.stdout.take().expect("child stdout"));
    assert_eq!(next_report(&mut reports).as_deref(), Some("waiting"));
    // Long enough for its poller to have read the record a few times.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let released_at = Instant::now();
    assert!(holder.release().await.unwrap());
    let done = next_report(&mut reports).expect("child reports its wake-up");
    let woken_after = released_at.elapsed();
    assert_eq!(
        done, "woken=true holds=false",
        "the child was not woken by the release"
    );
    // One poll interval (+20% jitter), and a margin for the round trips and
    // the pipe; far below the 10 s lease.
    assert!(
        woken_after <= POLL.mul_f64(1.2) + Duration::from_millis(500),
        "the child took {woken_after:?} to notice the release"
    );
    expect_success(child, "waiting child");
}

/// Child side: waits on the lock held by the parent, reports when it
/// starts waiting and how the wait ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_waiter_in_another_process_is_woken_by_release_within_the_poll_interval"]
async fn child_waits_for_the_lock() {
    assert!(process::is_child(), "run only as a child process");
    let cache = Cache::from_url(&process::var("URL")).await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(&cache, "k", LONG_LEASE);
        async move { lock.acquire().await.unwrap() }
    });
    while cache.waiting_lock_keys() == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report("waiting");
    let guard = waiter.await.unwrap();
    report(format!(
        "woken={} holds={}",
        guard.was_woken(),
        guard.holds_lock()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_in_one_url_share_the_keys_and_pass_the_suite() {
    let (first, second) = (Server::start(MEMCACHED), Server::start(MEMCACHED));
    let url = format!(
        "memcached://127.0.0.1:{},127.0.0.1:{}",
        first.port, second.port
    );

    let cache = Cache::from_url(&url).await.unwrap();
    for i in 0..200 {
        cache.set(&format!("spread-{i}"), b"v", None).await.unwrap();
    }
    for i in 0..200 {
        assert!(cache.get(&format!("spread-{i}")).await.unwrap().is_some());
    }
    let (on_first, on_second) = (
        server_stats(first.port)["curr_items"],
        server_stats(second.port)["curr_items"],
    );
    assert_eq!(on_first + on_second, 200);
    assert!(
        on_first > 40 && on_second > 40,
        "{on_first} and {on_second} of 200 keys"
    );

    // The same URL in another process routes every key the same way.
    let child = process::spawn(
        "processes::child_runs_the_suite",
        &[("STAMPEDE_MEMCACHED_URL", url.clone())],
    );
    expect_success(child, "the shared suite on two servers");
    let reads = server_stats(first.port)["cmd_get"] + server_stats(second.port)["cmd_get"];
    assert!(
        reads > 400,
        "the child did not use these servers ({reads} reads)"
    );
}

/// Child side: runs cases of the shared suite on the servers named by
/// `STAMPEDE_MEMCACHED_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_servers_in_one_url_share_the_keys_and_pass_the_suite"]
async fn child_runs_the_suite() {
    use super::suite::{kv, optimistic, redlock};
    assert!(process::is_child(), "run only as a child process");
    macro_rules! run {
        ($($module:ident :: $case:ident),* $(,)?) => {
            $(
                $module::$case(Store::new(Kind::Memcached, stringify!($case))).await;
                println!("{} passed on two servers", stringify!($case));
            )*
        };
    }
    run! {
        kv::get_of_missing_key_is_none,
        kv::set_then_get_round_trips_binary_values,
        kv::set_overwrites,
        kv::add_only_creates,
        kv::delete_reports_whether_it_removed,
        kv::namespaces_never_see_each_other,
        kv::gets_and_cas_detect_every_write,
        kv::cas_without_token_means_still_absent,
        kv::failed_cas_keeps_the_other_writers_value,
        kv::ttl_expires_values,
        redlock::first_caller_holds_and_record_is_a_uuid_at_key_lock,
        redlock::waiter_is_woken_by_release_not_by_the_lease,
        redlock::one_holder_among_many_concurrent_callers,
        redlock::release_twice_removes_once,
        redlock::cancelled_waiter_leaves_no_state,
        redlock::wake_map_is_empty_after_many_keys,
        optimistic::cas_succeeds_when_nothing_changed,
        optimistic::concurrent_set_makes_cas_conflict,
        optimistic::absent_at_acquire_must_still_be_absent,
        optimistic::concurrent_increments_lose_no_update,
    }
}
