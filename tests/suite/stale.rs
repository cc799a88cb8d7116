//! Stale values: `mark_stale` serves the old value while one caller
//! refreshes it, detached refreshes return at once, and a failed refresh
//! keeps the stale value. Cases that take `independent` run on one handle
//! and across two independent handles, as in `writes`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::typed::Fill;
use stampede::Cache;
use tokio::task::JoinHandle;

use crate::common::Store;
use crate::suite::writes::{handles, read, LEASE};

/// A `get_or_fill` (or its detached form) with a fill that counts itself,
/// says when it started, and waits for `go` before returning `value`.
struct Refresh {
    fills: Arc<AtomicUsize>,
    started: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Semaphore>,
}

impl Refresh {
    fn new() -> Refresh {
        Refresh {
            fills: Arc::default(),
            started: Arc::default(),
            go: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    fn call(
        &self,
        cache: &Cache,
        fill: Fill,
        value: &'static str,
        detached: bool,
    ) -> JoinHandle<(String, Duration)> {
        let (cache, fills, started, go) = (
            cache.clone(),
            Arc::clone(&self.fills),
            Arc::clone(&self.started),
            Arc::clone(&self.go),
        );
        tokio::spawn(async move {
            let begun = Instant::now();
            let f = move || async move {
                fills.fetch_add(1, Ordering::SeqCst);
                started.notify_one();
                let _permit = go.acquire().await.unwrap();
                Ok::<_, stampede::Error>(value.to_owned())
            };
            let value = if detached {
                cache.get_or_fill_detached("k", fill, f).await
            } else {
                cache.get_or_fill("k", fill, f).await
            };
            (value.unwrap(), begun.elapsed())
        })
    }
}

async fn mark_stale_serves_old_values_while_one_refreshes(store: Store, independent: bool) {
    const CALLERS: usize = 10;
    let (a, b) = handles(&store, independent).await;
    let swr = Fill::ttl(Duration::from_secs(60))
        .lease(LEASE)
        .stale_while_revalidate(Duration::from_secs(60));
    a.set_value("k", "v1", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(b.mark_stale("k", Duration::from_secs(60)).await.unwrap());
    assert_eq!(
        read(&a, "k").await.as_deref(),
        Some("v1"),
        "still readable while stale"
    );

    // With stale-while-revalidate: everyone but the refresher gets v1 at
    // once, while the refresh is held back.
    let refresh = Refresh::new();
    let calls: Vec<_> = (0..CALLERS)
        .map(|i| refresh.call(if i % 2 == 0 { &a } else { &b }, swr.clone(), "v2", false))
        .collect();
    refresh.started.notified().await;
    // All but the refresher return while the refresh is held back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.iter().filter(|call| !call.is_finished()).count() > 1 {
        assert!(
            Instant::now() < deadline,
            "stale readers waited for the refresh"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (done, waiting): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.is_finished());
    assert_eq!(waiting.len(), 1, "only the refresher waits for its fill");
    for call in done {
        assert_eq!(call.await.unwrap().0, "v1");
    }
    refresh.go.add_permits(CALLERS);
    for call in waiting {
        assert_eq!(
            call.await.unwrap().0,
            "v2",
            "the refresher gets its own fill"
        );
    }
    assert_eq!(
        refresh.fills.load(Ordering::SeqCst),
        1,
        "exactly one caller refreshed"
    );
    assert_eq!(read(&b, "k").await.as_deref(), Some("v2"));

    // Without it, a stale value is a miss: callers wait for the refresh.
    let seen = crate::common::near_seen(&b);
    assert!(a.mark_stale("k", Duration::from_secs(60)).await.unwrap());
    // b's near cache (the *_near setups) may serve its copy of v2 until the
    // mark reaches it, within the window the README documents.
    crate::common::until_seen(&b, seen).await;
    let plain = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
    let refresh = Refresh::new();
    let calls: Vec<_> = (0..CALLERS)
        .map(|i| refresh.call(if i % 2 == 0 { &a } else { &b }, plain.clone(), "v3", false))
        .collect();
    refresh.started.notified().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        calls.iter().all(|call| !call.is_finished()),
        "a caller without stale-while-revalidate returned the stale value"
    );
    refresh.go.add_permits(CALLERS);
    for call in calls {
        assert_eq!(call.await.unwrap().0, "v3");
    }
    assert_eq!(refresh.fills.load(Ordering::SeqCst), 1);
}

pub async fn mark_stale_serves_old_values_while_one_refreshes_on_one_handle(store: Store) {
    mark_stale_serves_old_values_while_one_refreshes(store, false).await;
}

pub async fn mark_stale_serves_old_values_while_one_refreshes_across_handles(store: Store) {
    mark_stale_serves_old_values_while_one_refreshes(store, true).await;
}

pub async fn mark_stale_of_a_missing_key_is_false_and_bad_grace_is_refused(store: Store) {
    let cache = store.handle().await;
    assert!(!cache
        .mark_stale("absent", Duration::from_secs(5))
        .await
        .unwrap());
    let err = cache.mark_stale("k", Duration::ZERO).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("grace"), "{err}");
}

async fn detached_refreshes_return_at_once(store: Store, independent: bool) {
    const CALLERS: usize = 10;
    let (a, b) = handles(&store, independent).await;
    let swr = Fill::ttl(Duration::from_secs(60))
        .lease(LEASE)
        .stale_while_revalidate(Duration::from_secs(60));
    a.set_value("k", "v1", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    b.mark_stale("k", Duration::from_secs(60)).await.unwrap();

    // Every caller, the refresher too, returns the stale value while the
    // refresh is still held back.
    let refresh = Refresh::new();
    let calls: Vec<_> = (0..CALLERS)
        .map(|i| refresh.call(if i % 2 == 0 { &a } else { &b }, swr.clone(), "v2", true))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().0, "v1");
    }
    // The refresh runs on its own task: wait until it has started.
    refresh.started.notified().await;
    assert_eq!(
        refresh.fills.load(Ordering::SeqCst),
        1,
        "one background refresh"
    );
    refresh.go.add_permits(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while read(&b, "k").await.as_deref() != Some("v2") {
        assert!(
            Instant::now() < deadline,
            "the background refresh never stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refresh.fills.load(Ordering::SeqCst), 1);
}

pub async fn detached_refreshes_return_at_once_on_one_handle(store: Store) {
    detached_refreshes_return_at_once(store, false).await;
}

pub async fn detached_refreshes_return_at_once_across_handles(store: Store) {
    detached_refreshes_return_at_once(store, true).await;
}

/// A fill's own error type, as users have them.
#[derive(Debug)]
struct UpstreamDown;

impl std::fmt::Display for UpstreamDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream down")
    }
}

impl From<stampede::Error> for UpstreamDown {
    fn from(error: stampede::Error) -> Self {
        panic!("unexpected cache error: {error}")
    }
}

pub async fn a_failed_background_refresh_keeps_the_stale_value(store: Store) {
    let cache = store.handle().await;
    let swr = Fill::ttl(Duration::from_secs(60))
        .lease(LEASE)
        .stale_while_revalidate(Duration::from_secs(60));
    cache
        .set_value("k", "v1", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    cache
        .mark_stale("k", Duration::from_secs(60))
        .await
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(tokio::sync::Notify::new());
    let attempt = |cache: Cache| {
        let (attempts, failed, swr) = (Arc::clone(&attempts), Arc::clone(&failed), swr.clone());
        async move {
            cache
                .get_or_fill_detached("k", swr, move || async move {
                    let n = attempts.fetch_add(1, Ordering::SeqCst);
                    failed.notify_one();
                    if n == 0 {
                        Err(UpstreamDown)
                    } else {
                        Ok("v2".to_owned())
                    }
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(attempt(cache.clone()).await, "v1");
    failed.notified().await;
    // The failed refresh gave its lease back: the stale value is still
    // served, and the next reader refreshes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while attempts.load(Ordering::SeqCst) < 2 {
        assert_eq!(
            attempt(cache.clone()).await,
            "v1",
            "the failed refresh removed the value"
        );
        assert!(
            Instant::now() < deadline,
            "nobody refreshed after the failure"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while read(&cache, "k").await.as_deref() != Some("v2") {
        assert!(Instant::now() < deadline, "the second refresh never stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
