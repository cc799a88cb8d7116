//! Unit tests of the memory backend, on paused time where they can.

use std::time::Duration;

use super::*;
use crate::backend::{Backend, Fencing, FillRead, LeaseToken, LockAttempt};

#[tokio::test(start_paused = true)]
async fn ttl_expires_on_the_tokio_clock() {
    let backend = MemoryBackend::default();
    backend
        .set("k", b"v", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(backend.get("k").await.unwrap().is_some());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(backend.get("k").await.unwrap(), None);
    // An expired key counts as absent for add.
    assert!(backend.add("k", b"w", None).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn expired_lock_record_can_be_retaken_and_reports_remaining_lease() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(5);
    let first = backend
        .try_lock("l", b"a", lease, Fencing::Issue)
        .await
        .unwrap();
    assert_eq!(first, LockAttempt::Acquired { fence: Some(1) });
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        backend
            .try_lock("l", b"b", lease, Fencing::Issue)
            .await
            .unwrap(),
        LockAttempt::Held {
            remaining: Some(Duration::from_secs(3))
        }
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(
        backend
            .try_lock("l", b"b", lease, Fencing::Issue)
            .await
            .unwrap(),
        LockAttempt::Acquired { fence: Some(2) }
    );
    // The old owner's release must not remove the new owner's record.
    assert!(!backend.release("l", b"a").await.unwrap());
    assert!(backend.release("l", b"b").await.unwrap());
}

#[tokio::test]
async fn a_full_value_table_never_evicts_lock_records() {
    let backend = MemoryBackend::builder().max_capacity(4 * 1024).build();
    let lease = Duration::from_secs(60);
    backend
        .try_lock("held", b"me", lease, Fencing::Skip)
        .await
        .unwrap();
    for i in 0..2_000 {
        backend
            .set(&format!("filler-{i}"), &[0u8; 128], None)
            .await
            .unwrap();
    }
    let keys = &backend.inner.keys;
    keys.values().run_pending_tasks().await;
    assert!(keys.values().weighted_size() <= 4 * 1024);
    let record = backend
        .lock_record("held")
        .await
        .unwrap()
        .expect("record kept");
    assert_eq!(record.owner, &b"me"[..]);
}

#[tokio::test]
async fn records_leave_their_table_with_their_key() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(60);
    let records = backend.inner.keys.records();
    for (i, write) in ["release", "delete", "set", "mark_stale"]
        .iter()
        .enumerate()
    {
        let key = format!("k{i}");
        backend
            .try_lock(&key, b"me", lease, Fencing::Skip)
            .await
            .unwrap();
        match *write {
            "release" => assert!(backend.release(&key, b"me").await.unwrap()),
            "delete" => assert!(backend.delete(&key).await.unwrap()),
            "set" => backend.set(&key, b"v", None).await.unwrap(),
            _ => assert!(backend.mark_stale(&key, lease).await.unwrap()),
        }
        assert_eq!(records.len(), 0, "{write} left the record behind");
        assert!(!backend.release(&key, b"me").await.unwrap(), "{write}");
        assert!(
            !backend.extend(&key, b"me", lease).await.unwrap(),
            "{write}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_expires_at_the_end_of_its_lease() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(5);
    backend
        .try_lock("k", b"me", lease, Fencing::Skip)
        .await
        .unwrap();
    tokio::time::advance(lease).await;
    assert_eq!(backend.get("k").await.unwrap(), None);
    assert_eq!(backend.lock_record("k").await.unwrap(), None);
    assert!(!backend.extend("k", b"me", lease).await.unwrap());
    assert!(backend.add("k", b"v", None).await.unwrap());
}

#[tokio::test]
async fn versions_never_repeat_after_delete() {
    let backend = MemoryBackend::default();
    backend.set("k", b"v", None).await.unwrap();
    let (_, first) = backend.gets("k").await.unwrap().unwrap();
    backend.delete("k").await.unwrap();
    backend.set("k", b"v", None).await.unwrap();
    let (_, second) = backend.gets("k").await.unwrap().unwrap();
    assert!(second.version() > first.version());
    assert!(!backend.cas("k", b"x", Some(&first), None).await.unwrap());
    assert!(backend.cas("k", b"x", Some(&second), None).await.unwrap());
}

/// The lease token of a read that was granted one.
fn granted(read: FillRead) -> LeaseToken {
    match read.lease {
        crate::backend::FillLease::Granted(token) => token,
        other => panic!("expected a granted lease, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_lease_per_miss_until_it_runs_out_then_the_next_caller_gets_one() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(5);
    let first = granted(backend.read_for_fill("k", lease).await.unwrap());
    let busy = backend.read_for_fill("k", lease).await.unwrap();
    assert_eq!(busy, FillRead::missing(crate::backend::FillLease::Busy));
    assert_eq!(
        backend.get("k").await.unwrap(),
        None,
        "a placeholder is no value"
    );
    tokio::time::advance(lease).await;
    let second = granted(backend.read_for_fill("k", lease).await.unwrap());
    assert_ne!(first, second);
    assert!(!backend
        .store_filled("k", &first, b"late", None)
        .await
        .unwrap());
    assert!(backend
        .store_filled("k", &second, b"v", None)
        .await
        .unwrap());
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(start_paused = true)]
async fn every_write_voids_a_lease() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(5);
    for write in ["set", "add", "cas", "delete", "mark_stale"] {
        let key = format!("k-{write}");
        if write == "mark_stale" {
            backend.set(&key, b"old", None).await.unwrap();
            backend.mark_stale(&key, lease).await.unwrap();
        }
        let token = granted(backend.read_for_fill(&key, lease).await.unwrap());
        match write {
            "set" => backend.set(&key, b"w", None).await.unwrap(),
            "add" => assert!(backend.add(&key, b"w", None).await.unwrap()),
            "cas" => assert!(backend.cas(&key, b"w", None, None).await.unwrap()),
            "delete" => assert!(!backend.delete(&key).await.unwrap()),
            _ => assert!(backend.mark_stale(&key, lease).await.unwrap()),
        }
        assert!(
            !backend
                .store_filled(&key, &token, b"filled", None)
                .await
                .unwrap(),
            "{write} did not void the lease"
        );
        assert_ne!(
            backend.get(&key).await.unwrap().as_deref(),
            Some(&b"filled"[..])
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stale_value_stays_readable_for_its_grace_and_one_caller_refreshes() {
    let backend = MemoryBackend::default();
    backend
        .set("k", b"old", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(backend
        .mark_stale("k", Duration::from_secs(10))
        .await
        .unwrap());
    let read = backend
        .read_for_fill("k", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(read.stale);
    assert_eq!(read.value.as_ref().map(|(v, _)| &v[..]), Some(&b"old"[..]));
    let token = granted(read);
    let other = backend
        .read_for_fill("k", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(other.lease, crate::backend::FillLease::Busy);
    assert!(other.stale && other.value.is_some());
    // Given back, the stale value stays and the next caller refreshes.
    assert!(backend.release_fill("k", &token).await.unwrap());
    assert_eq!(
        backend.get("k").await.unwrap().as_deref(),
        Some(&b"old"[..])
    );
    granted(
        backend
            .read_for_fill("k", Duration::from_secs(5))
            .await
            .unwrap(),
    );
    // The grace cut the TTL from 60 s to 10 s.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(backend.get("k").await.unwrap(), None);
}

/// A rough cost check, not a benchmark: `cargo test --all-features --lib
/// memory::tests::timing -- --ignored --nocapture` prints the time per
/// operation of a value hit, a write to a new key, and a lock taken and
/// released, for comparing layouts of the memory backend.
#[tokio::test]
#[ignore = "prints timings; run by hand"]
async fn timing() {
    const ROUNDS: u32 = 20_000;
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(60);
    backend.set("hot", b"v", None).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..ROUNDS {
        assert!(backend.get("hot").await.unwrap().is_some());
    }
    let hit = started.elapsed() / ROUNDS;
    let started = std::time::Instant::now();
    for i in 0..ROUNDS {
        backend.set(&format!("new-{i}"), b"v", None).await.unwrap();
    }
    let write = started.elapsed() / ROUNDS;
    let started = std::time::Instant::now();
    for i in 0..ROUNDS {
        let key = format!("lock-{i}");
        let attempt = backend.try_lock(&key, b"me", lease, Fencing::Issue);
        assert!(matches!(
            attempt.await.unwrap(),
            LockAttempt::Acquired { .. }
        ));
        assert!(backend.release(&key, b"me").await.unwrap());
    }
    let lock = started.elapsed() / ROUNDS;
    eprintln!("get hit {hit:?}, set of a new key {write:?}, try_lock + release {lock:?}");
}
