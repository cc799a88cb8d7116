//! Behaviour across OS processes on the shared backends (Redis, memcached):
//! mutual exclusion and fencing, a holder killed with SIGKILL, and
//! get_or_fill filling once for callers spread over four processes, and a
//! delete in one process voiding a fill under way in another.
//!
//! The children are this test binary run again on an `#[ignore]`d entry
//! (see `common::process`); they report on stdout and the parent judges.

#![cfg(any(feature = "redis", feature = "memcached"))]

mod common;
#[path = "near_processes.rs"]
mod near_processes;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{
    self, expect_success, next_report, report_lines, runtime, spawn, spawn_with_stdin,
};
use common::{Kind, Store};
use stampede::{Cache, Fill, RedLock};

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

// ---------------------------------------------------------------- exclusion

const LOCK_TASKS_PER_PROCESS: usize = 16;
const LOCK_ROUNDS: usize = 20;

#[test]
#[ignore = "child process entry, run by the exclusion tests"]
fn child_lock_worker() {
    assert!(process::is_child(), "run by the multi-process tests only");
    let url = process::var("STORE_URL");
    runtime().block_on(async move {
        let cache = Cache::from_url(&url).await.unwrap();
        let tasks: Vec<_> = (0..LOCK_TASKS_PER_PROCESS)
            .map(|_| {
                let lock = RedLock::new(&cache, "job", Duration::from_secs(10));
                tokio::spawn(async move {
                    for _ in 0..LOCK_ROUNDS {
                        let guard = lock.lock().await.unwrap();
                        let entered = unix_micros();
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        let left = unix_micros();
                        process::report(format!("{} {entered} {left}", guard.fencing_token()));
                        assert!(guard.release().await.unwrap());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn exclusion_across_processes(kind: Kind) {
    let store = Store::new(kind, "exclusion");
    let children: Vec<_> = (0..2)
        .map(|_| spawn("child_lock_worker", &[("STORE_URL", store.url())]))
        .collect();
    let mut sections = Vec::new();
    for mut child in children {
        let mut lines = report_lines(child.stdout.take().unwrap());
        while let Some(line) = next_report(&mut lines) {
            let fields: Vec<u64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
            sections.push((fields[1], fields[2], fields[0])); // (entered, left, fence)
        }
        expect_success(child, "lock worker process");
    }
    assert_eq!(sections.len(), 2 * LOCK_TASKS_PER_PROCESS * LOCK_ROUNDS);
    sections.sort_unstable();
    for pair in sections.windows(2) {
        let ((_, left_a, fence_a), (entered_b, _, fence_b)) = (pair[0], pair[1]);
        assert!(
            left_a <= entered_b,
            "critical sections overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
        assert!(
            fence_a < fence_b,
            "fencing tokens not increasing: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

// ---------------------------------------------------------------- SIGKILL

#[test]
#[ignore = "child process entry, run by the SIGKILL tests"]
fn child_holder_then_hang() {
    assert!(process::is_child(), "run by the multi-process tests only");
    let url = process::var("STORE_URL");
    let lease = Duration::from_millis(process::var("LEASE_MS").parse().unwrap());
    runtime().block_on(async move {
        let cache = Cache::from_url(&url).await.unwrap();
        let guard = RedLock::new(&cache, "job", lease)
            .auto_renew(true)
            .lock()
            .await
            .unwrap();
        process::report(format!("held {}", unix_micros()));
        // Renewing forever, until killed: only the lease bounds the wait.
        guard.lost().await;
        panic!("the lease was lost while renewing");
    });
}

fn killed_holder_is_replaced_after_its_lease(kind: Kind, lease: Duration, margin: Duration) {
    let store = Store::new(kind, "sigkill");
    let mut child = spawn(
        "child_holder_then_hang",
        &[
            ("STORE_URL", store.url()),
            ("LEASE_MS", lease.as_millis().to_string()),
        ],
    );
    let mut lines = report_lines(child.stdout.take().unwrap());
    let held = next_report(&mut lines).expect("child reports that it holds the lock");
    assert!(held.starts_with("held "), "{held}");

    runtime().block_on(async {
        let cache = store.handle().await;
        let waiter = tokio::spawn({
            let cache = cache.clone();
            async move {
                RedLock::new(&cache, "job", Duration::from_secs(30))
                    .lock()
                    .await
                    .unwrap()
            }
        });
        // Renewals keep the lock past its first lease while the child lives.
        tokio::time::sleep(lease + lease / 2).await;
        assert!(
            !waiter.is_finished(),
            "got the lock while its renewing holder was alive"
        );

        let killed_at = std::time::Instant::now();
        child.kill().unwrap(); // SIGKILL: no release, no more renewals
        child.wait().unwrap();
        let guard = waiter.await.unwrap();
        let waited = killed_at.elapsed();
        assert!(
            waited <= lease + margin,
            "waited {waited:?} after the kill; the lease is {lease:?} (+{margin:?} margin)"
        );
        assert!(guard.is_still_valid().await.unwrap());
    });
}

// ---------------------------------------------------------------- get_or_fill

const FILL_CALLERS_PER_PROCESS: usize = 250;
const FILL_TIME: Duration = Duration::from_millis(50);

#[test]
#[ignore = "child process entry, run by the get_or_fill tests"]
fn child_fill_callers() {
    assert!(process::is_child(), "run by the multi-process tests only");
    let url = process::var("STORE_URL");
    let start_at: u64 = process::var("START_AT_US").parse().unwrap();
    let near = std::env::var_os("NEAR").is_some();
    runtime().block_on(async move {
        let cache = Cache::from_url(&url).await.unwrap();
        let cache = if near {
            cache
                .try_with_near_cache(stampede::NearCache::max_capacity(1 << 20))
                .unwrap()
        } else {
            cache
        };
        // Connect first, then start together with the other processes.
        cache.get("warm-up").await.unwrap();
        let warm = cache.near_stats().map_or(0, |stats| stats.backend_reads);
        let values_warm = cache.near_stats().map_or(0, |stats| stats.value_reads);
        tokio::time::sleep(Duration::from_micros(
            start_at.saturating_sub(unix_micros()),
        ))
        .await;
        let calls: Vec<_> = (0..FILL_CALLERS_PER_PROCESS)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let fill = Fill::ttl(Duration::from_secs(60)).lease(Duration::from_secs(10));
                    let value: u64 = cache
                        .get_or_fill("report", fill, || async {
                            process::report("filled");
                            tokio::time::sleep(FILL_TIME).await;
                            Ok::<_, stampede::Error>(42)
                        })
                        .await
                        .unwrap();
                    assert_eq!(value, 42);
                    started.elapsed()
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for call in calls {
            slowest = slowest.max(call.await.unwrap());
        }
        process::report(format!("slowest_us {}", slowest.as_micros()));
        if cache.near_stats().is_some() {
            // Once more: a copy now (kept by the read or the store).
            let reads = cache.near_stats().unwrap().backend_reads;
            let again: u64 = cache.get_value("report").await.unwrap().unwrap();
            assert_eq!(again, 42);
            let stats = cache.near_stats().unwrap();
            let again: u64 = cache.get_value("report").await.unwrap().unwrap();
            assert_eq!(again, 42);
            let after = cache.near_stats().unwrap();
            assert_eq!(
                after.backend_reads, stats.backend_reads,
                "the last read was a copy"
            );
            process::report(format!(
                "near_reads {} {} {}",
                reads - warm,
                stats.backend_reads - reads,
                stats.value_reads - values_warm
            ));
        }
    });
}

fn fill_once_across_four_processes(kind: Kind) {
    fill_once_across_four(kind, false);
}

/// With `near`, each process has a near cache, and reads the backend
/// through it at most once (its flight's leader; the rest follow).
fn fill_once_across_four(kind: Kind, near: bool) {
    let store = Store::new(kind, if near { "fill4near" } else { "fill4" });
    let start_at = unix_micros() + 1_500_000;
    let mut vars = vec![
        ("STORE_URL", store.url()),
        ("START_AT_US", start_at.to_string()),
    ];
    if near {
        vars.push(("NEAR", "1".to_owned()));
    }
    let children: Vec<_> = (0..4).map(|_| spawn("child_fill_callers", &vars)).collect();
    let mut near_reads = Vec::new();
    let (mut fills, mut slowest) = (0, Duration::ZERO);
    for mut child in children {
        let mut lines = report_lines(child.stdout.take().unwrap());
        while let Some(line) = next_report(&mut lines) {
            if line == "filled" {
                fills += 1;
            } else if let Some(us) = line.strip_prefix("slowest_us ") {
                slowest = slowest.max(Duration::from_micros(us.parse().unwrap()));
            } else if let Some(reads) = line.strip_prefix("near_reads ") {
                let counts: Vec<u64> = reads.split(' ').map(|n| n.parse().unwrap()).collect();
                near_reads.push((counts[0], counts[1], counts[2]));
            }
        }
        expect_success(child, "get_or_fill process");
    }
    assert_eq!(fills, 1, "the fill ran {fills} times across 4 processes");
    if near {
        assert_eq!(near_reads.len(), 4, "every process reported");
        // Per process, 250 callers: the flight's leader alone reads, and at
        // most once does a read bring the value back. The filler: one lease
        // read, then it keeps a copy of its store. Any other process: the
        // lease read that finds the fill under way, the re-read once its
        // wake-up is registered (a fill ending in between would otherwise
        // go unseen), and the read when woken, which brings the value and
        // keeps a copy. Afterwards every read is a copy.
        assert!(
            near_reads
                .iter()
                .all(|&(during, after, values)| values <= 1 && during <= 3 && after == 0),
            "per process (reads during the stampede, reads after it, reads that brought the value): {near_reads:?}"
        );
        let fillers = near_reads
            .iter()
            .filter(|&&(during, _, values)| during == 1 && values == 0)
            .count();
        assert!(
            fillers >= 1,
            "the filler read once, finding no value: {near_reads:?}"
        );
    }
    // Waiters in other processes are woken or re-check promptly; nobody sits
    // out the 10 s lease.
    assert!(
        slowest < Duration::from_secs(3),
        "slowest caller took {slowest:?}"
    );
}

// ------------------------------------------------------- delete during fill

#[test]
#[ignore = "child process entry, run by the delete-during-fill tests"]
fn child_slow_filler() {
    assert!(process::is_child(), "run by the multi-process tests only");
    let url = process::var("STORE_URL");
    runtime().block_on(async move {
        let cache = Cache::from_url(&url).await.unwrap();
        let fill = Fill::ttl(Duration::from_secs(60)).lease(Duration::from_secs(10));
        let value: String = cache
            .get_or_fill("k", fill, || async {
                process::report("filling");
                // Hold the fill until the parent says so (stdin blocks).
                tokio::task::spawn_blocking(process::read_order)
                    .await
                    .unwrap();
                Ok::<_, stampede::Error>("old".to_owned())
            })
            .await
            .unwrap();
        process::report(format!("returned {value}"));
    });
}

fn delete_voids_a_fill_in_another_process(kind: Kind) {
    use std::io::Write;

    let store = Store::new(kind, "delete-across");
    let mut child = spawn_with_stdin("child_slow_filler", &[("STORE_URL", store.url())]);
    let mut lines = report_lines(child.stdout.take().unwrap());
    assert_eq!(next_report(&mut lines).as_deref(), Some("filling"));
    runtime().block_on(async {
        let cache = store.handle().await;
        cache.delete("k").await.unwrap();
        // A caller after the delete fills anew, without waiting for the
        // other process's fill, and is not handed its value.
        let fill = Fill::ttl(Duration::from_secs(60)).lease(Duration::from_secs(10));
        let value: String = tokio::time::timeout(
            Duration::from_secs(5),
            cache.get_or_fill("k", fill, || async {
                Ok::<_, stampede::Error>("new".to_owned())
            }),
        )
        .await
        .expect("waited for the voided fill")
        .unwrap();
        assert_eq!(value, "new");
    });
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    assert_eq!(next_report(&mut lines).as_deref(), Some("returned old"));
    expect_success(child, "slow filler");
    runtime().block_on(async {
        let cache = store.handle().await;
        let stored: Option<String> = cache.get_value("k").await.unwrap();
        assert_eq!(
            stored.as_deref(),
            Some("new"),
            "the voided fill stored its value"
        );
    });
}

// ---------------------------------------------------------------- per backend

/// The cases for one Redis deployment (standalone, cluster, Sentinel).
macro_rules! redis_cases {
    ($kind:expr) => {
        use super::*;

        #[test]
        fn lock_excludes_across_processes() {
            exclusion_across_processes($kind);
        }

        #[test]
        fn killed_holder_is_replaced_after_its_lease() {
            super::killed_holder_is_replaced_after_its_lease(
                $kind,
                Duration::from_secs(1),
                Duration::from_millis(500),
            );
        }

        #[test]
        fn get_or_fill_fills_once_across_four_processes() {
            fill_once_across_four_processes($kind);
        }

        #[test]
        fn a_delete_voids_a_fill_in_another_process() {
            delete_voids_a_fill_in_another_process($kind);
        }
    };
}

#[cfg(feature = "redis")]
mod redis {
    redis_cases!(Kind::Redis);

    #[test]
    fn get_or_fill_with_near_caches_reads_once_per_process() {
        fill_once_across_four(Kind::Redis, true);
    }
}

#[cfg(feature = "redis-cluster")]
mod redis_cluster {
    redis_cases!(Kind::RedisCluster);
}

#[cfg(feature = "redis-sentinel")]
mod redis_sentinel {
    redis_cases!(Kind::RedisSentinel);

    #[test]
    fn get_or_fill_with_near_caches_reads_once_per_process() {
        fill_once_across_four(Kind::RedisSentinel, true);
    }
}

#[cfg(feature = "memcached")]
mod memcached {
    use super::*;

    #[test]
    fn lock_excludes_across_processes() {
        exclusion_across_processes(Kind::Memcached);
    }

    #[test]
    fn killed_holder_is_replaced_after_its_lease() {
        // The backend sends a lease as ceil(seconds) + 2 (memcached's clock
        // may expire items up to 2 s early), so the last renewed record can
        // outlive the lease by up to ~2 s, plus a 50 ms poll to notice.
        super::killed_holder_is_replaced_after_its_lease(
            Kind::Memcached,
            Duration::from_secs(2),
            Duration::from_millis(2_500),
        );
    }

    #[test]
    fn get_or_fill_fills_once_across_four_processes() {
        fill_once_across_four_processes(Kind::Memcached);
    }

    #[test]
    fn get_or_fill_with_near_caches_reads_once_per_process() {
        fill_once_across_four(Kind::Memcached, true);
    }

    #[test]
    fn a_delete_voids_a_fill_in_another_process() {
        delete_voids_a_fill_in_another_process(Kind::Memcached);
    }
}
