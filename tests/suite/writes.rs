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

pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// Two handles on the store: the same one twice, or two independent ones.
pub(crate) async fn handles(store: &Store, independent: bool) -> (Cache, Cache) {
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

pub(crate) async fn read(cache: &Cache, key: &str) -> Option<String> {
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
