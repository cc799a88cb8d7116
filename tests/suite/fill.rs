//! get_or_fill, typed values and update, on every backend.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::typed::Fill;
use stampede::Cache;

use crate::common::{Kind, Store};

const LEASE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Report {
    quarter: u8,
    total: u64,
}

/// A caller's own error type: fill errors must come back as this, untouched.
#[derive(Debug)]
enum ReportError {
    Upstream(&'static str),
    Cache(stampede::Error),
}

impl From<stampede::Error> for ReportError {
    fn from(error: stampede::Error) -> Self {
        ReportError::Cache(error)
    }
}

/// A TTL long enough for the backend's granularity, short enough to see
/// several expiries in a test.
fn churn_ttl(kind: Kind) -> Duration {
    match kind.store() {
        Kind::Memcached => Duration::from_secs(2),
        _ => Duration::from_millis(400),
    }
}

pub async fn thousand_cold_callers_fill_once(store: Store) {
    const CALLERS: usize = 1_000;
    let cache = store.handle().await;
    let fills = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let calls: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, fills) = (cache.clone(), fills.clone());
            tokio::spawn(async move {
                let fill = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
                cache
                    .get_or_fill("report:q3", fill, || async {
                        fills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, stampede::Error>(Report {
                            quarter: 3,
                            total: 1234,
                        })
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(
            call.await.unwrap(),
            Report {
                quarter: 3,
                total: 1234
            }
        );
    }
    assert_eq!(
        fills.load(Ordering::SeqCst),
        1,
        "the fill ran more than once"
    );
    assert!(
        started.elapsed() < LEASE / 2,
        "callers sat out the lease: {:?}",
        started.elapsed()
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
    assert_eq!(cache.held_lock_count(), 0);
}

pub async fn failing_fill_hands_over_to_exactly_one_waiter(store: Store) {
    const CALLERS: usize = 50;
    let cache = store.handle().await;
    let fills = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let calls: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, fills) = (cache.clone(), fills.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fill(
                        "report",
                        Fill::ttl(Duration::from_secs(60)).lease(LEASE),
                        || async {
                            let attempt = fills.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if attempt == 0 {
                                Err(ReportError::Upstream("warehouse down"))
                            } else {
                                Ok(Report {
                                    quarter: 3,
                                    total: 99,
                                })
                            }
                        },
                    )
                    .await
            })
        })
        .collect();
    let (mut failed, mut filled) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(report) => {
                assert_eq!(report.total, 99);
                filled += 1;
            }
            // The fill's own error, as it was, not a string.
            Err(ReportError::Upstream(why)) => {
                assert_eq!(why, "warehouse down");
                failed += 1;
            }
            Err(ReportError::Cache(e)) => panic!("unexpected cache error: {e}"),
        }
    }
    assert_eq!(failed, 1, "only the failing holder's caller sees its error");
    assert_eq!(filled, CALLERS - 1);
    assert_eq!(
        fills.load(Ordering::SeqCst),
        2,
        "exactly one waiter took over the fill"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "someone waited out a lease: {:?}",
        started.elapsed()
    );
}

pub async fn cancelled_filler_hands_over_to_one_waiter(store: Store) {
    const WAITERS: usize = 20;
    let cache = store.handle().await;
    let fill = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
    let (filling_tx, filling_rx) = tokio::sync::oneshot::channel();
    let first = tokio::spawn({
        let (cache, fill) = (cache.clone(), fill.clone());
        async move {
            cache
                .get_or_fill("k", fill, move || async move {
                    let _ = filling_tx.send(());
                    tokio::time::sleep(LEASE * 3).await; // never finishes
                    Ok::<_, stampede::Error>(0u64)
                })
                .await
        }
    });
    filling_rx.await.unwrap();
    let fills = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, fill, fills) = (cache.clone(), fill.clone(), fills.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fill("k", fill, || async {
                        fills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, stampede::Error>(7u64)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "a waiter returned while the fill ran"
    );

    let cancelled_at = Instant::now();
    first.abort(); // the filler's caller goes away mid-fill
    assert!(first.await.unwrap_err().is_cancelled());
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), 7);
    }
    assert_eq!(
        fills.load(Ordering::SeqCst),
        1,
        "exactly one waiter took over the fill"
    );
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(3),
        "waiters sat out the lease: {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(cache.held_lock_count(), 0);
}

pub async fn early_refresh_keeps_a_hot_key_present(store: Store) {
    let cache = store.handle().await;
    let ttl = churn_ttl(store.kind);
    let fill = Fill::ttl(ttl).lease(LEASE).early_refresh(1.0);
    let fills = Arc::new(AtomicUsize::new(0));
    let run_for = ttl * 4;

    let read = |cache: Cache, fills: Arc<AtomicUsize>, fill: Fill| async move {
        cache
            .get_or_fill("hot", fill, || async {
                let n = fills.fetch_add(1, Ordering::SeqCst) as u64;
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, stampede::Error>(n)
            })
            .await
            .unwrap()
    };
    read(cache.clone(), fills.clone(), fill.clone()).await; // first fill
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (cache, fills, fill, stop) =
                (cache.clone(), fills.clone(), fill.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    read(cache.clone(), fills.clone(), fill.clone()).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    // Meanwhile, look at the raw key: it must never be missing.
    let mut looks = 0;
    while started.elapsed() < run_for {
        assert!(
            cache.get("hot").await.unwrap().is_some(),
            "the hot key went missing {:?} in (look {looks})",
            started.elapsed()
        );
        looks += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let fills = fills.load(Ordering::SeqCst);
    assert!(fills >= 4, "expected a refresh per TTL, got {fills} fills");
    assert!(fills <= 4 * 4, "refreshes stampeded: {fills} fills");
}

pub async fn stale_while_revalidate_serves_the_old_value(store: Store) {
    const CALLERS: usize = 20;
    let cache = store.handle().await;
    let ttl = churn_ttl(store.kind);
    let fill = Fill::ttl(ttl)
        .lease(LEASE)
        .stale_while_revalidate(Duration::from_secs(30));
    let first: String = cache
        .get_or_fill("k", fill.clone(), || async {
            Ok::<_, stampede::Error>("v1".to_string())
        })
        .await
        .unwrap();
    assert_eq!(first, "v1");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    let refreshes = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, fill, refreshes) = (cache.clone(), fill.clone(), refreshes.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let value: String = cache
                    .get_or_fill("k", fill, || async {
                        refreshes.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, stampede::Error>("v2".to_string())
                    })
                    .await
                    .unwrap();
                (value, started.elapsed())
            })
        })
        .collect();
    let mut stale_fast = 0;
    for call in calls {
        let (value, took) = call.await.unwrap();
        if value == "v1" {
            assert!(
                took < Duration::from_millis(250),
                "a stale read waited {took:?}"
            );
            stale_fast += 1;
        } else {
            assert_eq!(value, "v2");
        }
    }
    assert_eq!(refreshes.load(Ordering::SeqCst), 1, "one caller refreshes");
    assert_eq!(
        stale_fast,
        CALLERS - 1,
        "everyone else is served the old value at once"
    );
    assert_eq!(
        cache.get_value::<String>("k").await.unwrap().as_deref(),
        Some("v2")
    );
}

/// 64 tasks on eight handles update one key 50 times each with the default
/// retry: no increment is lost and no update fails. Optimistic retries alone
/// ran out (`TooManyConflicts`) on a loaded machine; updates that keep
/// conflicting now queue on the key's lock.
pub async fn update_from_many_tasks_loses_no_increment(store: Store) {
    const TASKS: usize = 64;
    const EACH: u64 = 50;
    let handles: Vec<Cache> = futures::future::join_all((0..8).map(|_| store.handle())).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let cache = handles[i % handles.len()].clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..EACH {
                    let n: u64 = cache
                        .update("hits", None, |old: Option<u64>| old.unwrap_or(0) + 1)
                        .await
                        .unwrap();
                    assert!(n > last, "a task saw the counter go backwards");
                    last = n;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total: Option<u64> = handles[0].get_value("hits").await.unwrap();
    assert_eq!(total, Some(TASKS as u64 * EACH));
}

pub async fn typed_values_round_trip_and_mismatches_name_the_key(store: Store) {
    let cache = store.handle().await;
    let report = Report {
        quarter: 2,
        total: 7,
    };
    cache.set_value("r", &report, None).await.unwrap();
    assert_eq!(
        cache.get_value::<Report>("r").await.unwrap(),
        Some(report.clone())
    );
    assert_eq!(cache.get_value::<Report>("absent").await.unwrap(), None);

    let err = cache.get_value::<Vec<u64>>("r").await.unwrap_err();
    assert!(
        err.to_string().contains("\"r\""),
        "the error names the key: {err}"
    );
    assert!(matches!(err, stampede::Error::Decode { .. }), "{err:?}");

    // get_or_fill hands the decode error to the caller's error type.
    let err = cache
        .get_or_fill("r", Fill::ttl(LEASE), || async {
            Ok::<Vec<u64>, ReportError>(vec![])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Cache(stampede::Error::Decode { .. })),
        "{err:?}"
    );

    // JSON written by someone else (no frame) reads fine.
    cache
        .set("plain", br#"{"quarter":1,"total":5}"#, None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_value::<Report>("plain").await.unwrap(),
        Some(Report {
            quarter: 1,
            total: 5
        })
    );

    #[cfg(feature = "postcard")]
    {
        let binary = cache.with_codec(stampede::typed::Postcard);
        binary.set_value("bin", &report, None).await.unwrap();
        assert_eq!(
            binary.get_value::<Report>("bin").await.unwrap(),
            Some(report.clone())
        );
        assert!(
            cache.get("bin").await.unwrap().unwrap().len() < 20,
            "postcard is compact"
        );
    }
}

pub async fn bad_fill_input_is_a_clear_error(store: Store) {
    let cache = store.handle().await;
    let never = || async { Ok::<u8, stampede::Error>(0) };
    let err = cache
        .get_or_fill("", Fill::ttl(LEASE), never)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    let err = cache
        .get_or_fill("k", Fill::ttl(Duration::ZERO), never)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TTL"), "{err}");
    let err = cache
        .get_or_fill("k", Fill::ttl(LEASE).early_refresh(-1.0), never)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("beta"), "{err}");
    let err = cache
        .update("k", Some(Duration::ZERO), |n: Option<u8>| n.unwrap_or(0))
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert_eq!(cache.get("k").await.unwrap(), None, "nothing was written");
}

pub async fn huge_fill_durations_are_a_value_or_a_clear_error(store: Store) {
    let cache = store.handle().await;
    let huge = [
        Fill::ttl(Duration::from_secs(60)).lease(Duration::MAX),
        Fill::ttl(Duration::MAX),
        Fill::ttl(Duration::MAX)
            .lease(Duration::MAX)
            .stale_while_revalidate(Duration::MAX),
    ];
    for (i, fill) in huge.into_iter().enumerate() {
        let key = format!("huge-{i}");
        for _ in 0..2 {
            // A miss, then (where it was stored) a hit.
            match cache
                .get_or_fill(&key, fill.clone(), || async {
                    Ok::<u8, stampede::Error>(7)
                })
                .await
            {
                Ok(value) => assert_eq!(value, 7),
                // memcached cannot keep anything past 2038 (its clock is 32-bit).
                Err(err) => assert!(err.is_invalid_input(), "{fill:?}: {err}"),
            }
        }
    }
}
