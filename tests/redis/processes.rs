//! A waiter in another OS process wakes on release, not after the lease.

use std::time::{Duration, Instant};

use stampede::backend::redis::release_channel;
use stampede::{Cache, RedLock};

use super::common::{process, Kind, Store};
use super::{
    lock_key, raw, shared_url, until_subscribed, wall_clock_ms, CROSS_PROCESS_WAKE, LONG_LEASE,
};

const CHILD_URL: &str = "STAMPEDE_CHILD_URL";
const CHILD_KEY: &str = "STAMPEDE_CHILD_KEY";
/// The longest the parent waits for any one report from the child.
const CHILD_PATIENCE: Duration = Duration::from_secs(20);

/// The child's reports, read on a thread so the parent can wait with a
/// timeout instead of blocking forever on a child that went wrong.
fn reports_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let mut lines = process::report_lines(child.stdout.take().expect("piped stdout"));
    let (reports, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Some(report) = process::next_report(&mut lines) {
            if reports.send(report).is_err() {
                return;
            }
        }
    });
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_wakes_within_50ms_of_the_release() {
    let store = Store::new(Kind::Redis, "cross_process_wake");
    let mut child = process::spawn_with_stdin(
        "processes::child_holds_a_lock_until_told",
        &[(CHILD_URL, store.url()), (CHILD_KEY, "report".to_owned())],
    );
    let mut orders = child.stdin.take().expect("piped stdin");
    let reports = reports_of(&mut child);
    let held = reports.recv_timeout(CHILD_PATIENCE);
    assert_eq!(
        held.as_deref(),
        Ok("held"),
        "the child did not take the lock"
    );

    // This process waits on its own connections.
    let cache = store.handle().await;
    let waiter = tokio::spawn({
        let lock = RedLock::new(&cache, "report", LONG_LEASE);
        async move {
            let guard = lock.acquire().await.unwrap();
            (guard, wall_clock_ms(), Instant::now())
        }
    });
    let mut observer = raw(&shared_url()).await;
    until_subscribed(
        &mut observer,
        &release_channel(&lock_key(&store, "report")),
        1,
    )
    .await;
    assert!(
        !waiter.is_finished(),
        "waiter returned while the lock was held"
    );

    let ordered_at = Instant::now();
    {
        use std::io::Write;
        writeln!(orders, "release").expect("order the child to release");
        orders.flush().expect("flush the order");
    }
    let released = reports
        .recv_timeout(CHILD_PATIENCE)
        .expect("the child reports its release");
    let released_at_ms: u128 = released
        .strip_prefix("released at ")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("unexpected report {released:?}"));

    let (guard, woke_at_ms, woke_at) = waiter.await.unwrap();
    assert!(guard.was_woken(), "woken by the release, not by the lease");
    assert!(!guard.holds_lock());
    assert!(
        woke_at - ordered_at < LONG_LEASE / 2,
        "waited {:?}: that is the lease, not a wake-up",
        woke_at - ordered_at
    );
    let latency =
        Duration::from_millis(u64::try_from(woke_at_ms.saturating_sub(released_at_ms)).unwrap());
    assert!(
        latency < CROSS_PROCESS_WAKE,
        "woke {latency:?} after the other process released (bound {CROSS_PROCESS_WAKE:?})"
    );
    drop(orders);
    process::expect_success(child, "child holding the lock");
    assert_eq!(cache.waiting_lock_keys(), 0);
}

/// Child side: takes the lock, reports `held`, waits for `release` on
/// stdin, releases, and reports the wall-clock millisecond it released at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of a_waiter_in_another_process_wakes_within_50ms_of_the_release"]
async fn child_holds_a_lock_until_told() {
    assert!(process::is_child(), "run only by the cross-process test");
    let cache = Cache::from_url(&process::var(CHILD_URL)).await.unwrap();
    let guard = RedLock::new(&cache, process::var(CHILD_KEY), LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    process::report("held");

    let order = tokio::task::spawn_blocking(process::read_order)
        .await
        .unwrap();
    assert_eq!(order.as_deref(), Some("release"));
    // Stamped before the release is sent: the measured latency includes
    // this process's round trip, so it can only overstate.
    let released_at_ms = wall_clock_ms();
    assert!(guard.release().await.unwrap());
    process::report(format!("released at {released_at_ms}"));
}
