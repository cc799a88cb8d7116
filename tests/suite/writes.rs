//! Lease-checked fills: a write or delete during a fill is never overwritten
//! by the fill's value. Each case runs twice: on one `Cache` handle (the
//! filler and the writer share a flight map and a wake-up map) and across
//! two independent handles on the same store, as two processes are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::typed::Fill;
use stampede::Cache;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{assert_between, Store};

const LEASE: Duration = Duration::from_secs(10);

/// Two handles on the store: the same one twice, or two independent ones.
async fn handles(store: &Store, independent: bool) -> (Cache, Cache) {
    let first = store.handle().await;
    let second = if independent {
        store.independent_handle().await
    } else {
        first.clone()
    };
    (first, second)
}

/// A fill that says when it has started and returns `value` only once
/// `go` is sent (or dropped).
struct Gated {
    started: oneshot::Receiver<()>,
    go: oneshot::Sender<()>,
    call: JoinHandle<String>,
}

fn gated_fill(cache: &Cache, key: &'static str, fill: Fill, value: &'static str) -> Gated {
    let (started_tx, started) = oneshot::channel();
    let (go, go_rx) = oneshot::channel::<()>();
    let cache = cache.clone();
    let call = tokio::spawn(async move {
        cache
            .get_or_fill(key, fill, move || async move {
                let _ = started_tx.send(());
                let _ = go_rx.await;
                Ok::<_, stampede::Error>(value.to_owned())
            })
            .await
            .unwrap()
    });
    Gated { started, go, call }
}

/// A `get_or_fill` of `key` that counts its fills and returns `value`.
fn counted_fill(
    cache: &Cache,
    key: &'static str,
    fill: Fill,
    fills: &Arc<AtomicUsize>,
    value: &'static str,
) -> JoinHandle<String> {
    let (cache, fills) = (cache.clone(), Arc::clone(fills));
    tokio::spawn(async move {
        cache
            .get_or_fill(key, fill, || async move {
                fills.fetch_add(1, Ordering::SeqCst);
                Ok::<_, stampede::Error>(value.to_owned())
            })
            .await
            .unwrap()
    })
}

async fn read(cache: &Cache, key: &str) -> Option<String> {
    cache.get_value::<String>(key).await.unwrap()
}

async fn delete_voids_a_fill_under_way(store: Store, independent: bool) {
    let (filler, writer) = handles(&store, independent).await;
    let fill = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
    let old = gated_fill(&filler, "k", fill.clone(), "old");
    old.started.await.unwrap();

    writer.delete("k").await.unwrap();
    // Callers that start after the delete, on either handle, are not handed
    // the old fill's value: one of them fills anew, the other waits for it.
    let fills = Arc::new(AtomicUsize::new(0));
    let here = counted_fill(&filler, "k", fill.clone(), &fills, "new");
    let there = counted_fill(&writer, "k", fill.clone(), &fills, "new");
    // The writer's handle never waits for the old fill (well within the
    // lease a follower of the old flight would otherwise wait).
    let there = tokio::time::timeout(LEASE / 4, there)
        .await
        .expect("a caller after the delete waited for the old fill");
    assert_eq!(there.unwrap(), "new");
    if !independent {
        // The delete went through this handle: its flight ended at once
        // (well within the lease a follower would otherwise wait).
        let here = tokio::time::timeout(LEASE / 4, here)
            .await
            .expect("a caller after the delete waited for the old flight");
        assert_eq!(here.unwrap(), "new");
        old.go.send(()).unwrap();
        assert_eq!(
            old.call.await.unwrap(),
            "old",
            "the filler's caller gets its value"
        );
    } else {
        // Another process's delete: a caller here that joined the old fill's
        // flight waits for it, is handed nothing (its store was refused),
        // and reads what was filled after the delete.
        old.go.send(()).unwrap();
        assert_eq!(
            old.call.await.unwrap(),
            "old",
            "the filler's caller gets its value"
        );
        assert_eq!(here.await.unwrap(), "new");
    }
    assert_eq!(fills.load(Ordering::SeqCst), 1, "one new fill for both");
    assert_eq!(read(&writer, "k").await.as_deref(), Some("new"));
    assert_eq!(read(&filler, "k").await.as_deref(), Some("new"));
}

pub async fn delete_voids_a_fill_on_one_handle(store: Store) {
    delete_voids_a_fill_under_way(store, false).await;
}

pub async fn delete_voids_a_fill_across_handles(store: Store) {
    delete_voids_a_fill_under_way(store, true).await;
}

async fn fill_after_delete_stores_nothing(store: Store, independent: bool) {
    let (filler, writer) = handles(&store, independent).await;
    let fill = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
    // A value is there; it goes stale and someone refills while a writer
    // deletes, and again with no value at all.
    for key in ["absent", "present"] {
        if key == "present" {
            writer.set_value(key, "older", None).await.unwrap();
            writer
                .mark_stale(key, Duration::from_secs(60))
                .await
                .unwrap();
        }
        let old = gated_fill(&filler, key, fill.clone(), "old");
        old.started.await.unwrap();
        writer.delete(key).await.unwrap();
        old.go.send(()).unwrap();
        assert_eq!(old.call.await.unwrap(), "old");
        assert_eq!(
            read(&writer, key).await,
            None,
            "{key}: the fill stored after the delete"
        );
        assert_eq!(read(&filler, key).await, None, "{key}");
    }
}

pub async fn fill_after_delete_stores_nothing_on_one_handle(store: Store) {
    fill_after_delete_stores_nothing(store, false).await;
}

pub async fn fill_after_delete_stores_nothing_across_handles(store: Store) {
    fill_after_delete_stores_nothing(store, true).await;
}

async fn writes_win_over_fills(store: Store, independent: bool) {
    let (filler, writer) = handles(&store, independent).await;
    let fill = Fill::ttl(Duration::from_secs(60)).lease(LEASE);
    for key in ["set", "set_value", "add", "cas"] {
        let old = gated_fill(&filler, key, fill.clone(), "filled");
        old.started.await.unwrap();
        match key {
            "set_value" => writer.set_value(key, "written", None).await.unwrap(),
            // What a typed value looks like stored: written through the
            // typed API on a scratch key, copied as bytes.
            _ => {
                writer.set_value("scratch", "written", None).await.unwrap();
                let bytes = writer.get("scratch").await.unwrap().unwrap();
                let written = match key {
                    "set" => {
                        writer.set(key, &bytes, None).await.unwrap();
                        true
                    }
                    "add" => writer.add(key, &bytes, None).await.unwrap(),
                    _ => writer.cas(key, &bytes, None, None).await.unwrap(),
                };
                assert!(written, "{key}: the key being filled holds no value yet");
            }
        }
        old.go.send(()).unwrap();
        assert_eq!(old.call.await.unwrap(), "filled");
        assert_eq!(
            read(&writer, key).await.as_deref(),
            Some("written"),
            "{key}: the fill overwrote the write"
        );
    }
}

pub async fn writes_win_over_fills_on_one_handle(store: Store) {
    writes_win_over_fills(store, false).await;
}

pub async fn writes_win_over_fills_across_handles(store: Store) {
    writes_win_over_fills(store, true).await;
}

async fn filler_past_its_lease_does_not_store(store: Store, independent: bool) {
    let (slow, fast) = handles(&store, independent).await;
    let lease = store.kind.short_lease();
    let fill = Fill::ttl(Duration::from_secs(60)).lease(lease);
    let late = gated_fill(&slow, "k", fill.clone(), "late");
    late.started.await.unwrap();

    // The next caller waits for the slow fill's lease to run out, then
    // takes a lease of its own and fills.
    let started = Instant::now();
    let fills = Arc::new(AtomicUsize::new(0));
    let current = counted_fill(&fast, "k", fill.clone(), &fills, "current");
    let life = store.kind.lease_life(lease);
    let current = tokio::time::timeout(life * 2 + Duration::from_secs(2), current)
        .await
        .expect("the next caller waited for the fill that outlived its lease");
    assert_eq!(current.unwrap(), "current");
    assert_between(
        "taking over a lease that ran out",
        started.elapsed(),
        lease.mul_f64(0.9),
        life + Duration::from_secs(2),
    );
    late.go.send(()).unwrap();
    assert_eq!(late.call.await.unwrap(), "late");
    assert_eq!(
        read(&fast, "k").await.as_deref(),
        Some("current"),
        "the filler whose lease ran out stored over the current holder's value"
    );
    assert_eq!(fills.load(Ordering::SeqCst), 1);
}

pub async fn filler_past_its_lease_does_not_store_on_one_handle(store: Store) {
    filler_past_its_lease_does_not_store(store, false).await;
}

pub async fn filler_past_its_lease_does_not_store_across_handles(store: Store) {
    filler_past_its_lease_does_not_store(store, true).await;
}

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
    assert!(a.mark_stale("k", Duration::from_secs(60)).await.unwrap());
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
