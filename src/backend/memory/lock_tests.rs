//! Unit tests of the memory backend's lock records: kept out of the value
//! table, atomic against value writes on the fast path, swept.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::Op;

use super::*;
use crate::backend::{Backend, Fencing, LockAttempt};

#[tokio::test]
async fn lock_records_stay_out_of_the_value_table() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(60);
    let fenced = backend
        .try_lock("k", b"me", lease, Fencing::Issue)
        .await
        .unwrap();
    assert_eq!(fenced, LockAttempt::Acquired { fence: Some(1) });
    let values = backend.inner.keys.values();
    values.run_pending_tasks().await;
    assert!(!values.contains_key("k"));
    assert_eq!(values.entry_count(), 0);
    assert_eq!(backend.inner.keys.records().len(), 1);

    // Every operation still sees it.
    let (owner, token) = backend.gets("k").await.unwrap().expect("gets sees it");
    assert_eq!(&owner[..], b"me");
    assert!(!backend.add("k", b"v", None).await.unwrap());
    assert!(!backend.cas("k", b"v", None, None).await.unwrap());
    let held = backend.try_lock("k", b"you", lease, Fencing::Issue);
    assert!(matches!(held.await.unwrap(), LockAttempt::Held { .. }));
    let read = backend.read_for_fill("k", lease).await.unwrap();
    assert_eq!(read.lease, crate::backend::FillLease::NotNeeded);
    assert!(backend.extend("k", b"me", lease).await.unwrap());
    assert!(!backend.release("k", b"you").await.unwrap());

    // A cas with the record's token replaces it: the holder's is refused.
    assert!(backend.cas("k", b"v", Some(&token), None).await.unwrap());
    assert!(!backend.release("k", b"me").await.unwrap());
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(backend.inner.keys.records().len(), 0);
    backend.delete("k").await.unwrap();
    assert_eq!(
        backend.get("k").await.unwrap(),
        None,
        "the record came back"
    );
}

#[tokio::test]
async fn a_lock_voids_a_fill_placeholder() {
    let backend = MemoryBackend::default();
    let lease = Duration::from_secs(60);
    let read = backend.read_for_fill("k", lease).await.unwrap();
    let crate::backend::FillLease::Granted(token) = read.lease else {
        panic!("no lease on a miss: {read:?}");
    };
    let locked = backend.try_lock("k", b"me", lease, Fencing::Skip);
    assert_eq!(locked.await.unwrap(), LockAttempt::Acquired { fence: None });
    assert!(!backend.store_filled("k", &token, b"v", None).await.unwrap());
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"me"[..]));
    assert!(backend.release("k", b"me").await.unwrap());
}

/// Values and lock records on one key exclude each other under a race:
/// tasks on two threads take the key by `add` or by `try_lock` and give it
/// back by `delete` or `release`; never are two inside at once. Lock
/// operations take the fast path unless a value write is under way, so
/// this fails if the fast path ignored the busy stripes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_try_lock_exclude_each_other_under_a_race() {
    use std::sync::atomic::AtomicUsize;

    let backend = MemoryBackend::default();
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..4u8 {
        let (backend, inside, overlaps) = (backend.clone(), inside.clone(), overlaps.clone());
        tasks.push(tokio::spawn(async move {
            let owner = [task];
            let lease = Duration::from_secs(60);
            let mut entered = 0;
            for i in 0..20_000 {
                let by_lock = (i + usize::from(task)) % 2 == 0;
                let took = if by_lock {
                    let attempt = backend.try_lock("k", &owner, lease, Fencing::Skip);
                    matches!(attempt.await.unwrap(), LockAttempt::Acquired { .. })
                } else {
                    backend.add("k", &owner, None).await.unwrap()
                };
                if !took {
                    continue;
                }
                entered += 1;
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                // The key shows what we put there, whichever way we took it.
                let seen = backend.get("k").await.unwrap();
                if seen.as_deref() != Some(&owner[..]) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                let gave_back = if by_lock {
                    backend.release("k", &owner).await.unwrap()
                } else {
                    backend.delete("k").await.unwrap()
                };
                if !gave_back {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
            }
            entered
        }));
    }
    let mut entered = 0;
    for task in tasks {
        entered += task.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    assert!(entered > 1_000, "the key was hardly ever free: {entered}");
    assert_eq!(backend.get("k").await.unwrap(), None);
}

/// Runs `lock_op` on another thread while a value write to `key` is under
/// way (inside its compute), and returns whether it finished meanwhile
/// (it must not: it has to wait for the write) and what it returned.
fn lock_op_during_a_value_write<T: Send + 'static>(
    backend: &MemoryBackend,
    key: &'static str,
    lock_op: impl FnOnce(MemoryBackend) -> T + Send + 'static,
) -> (bool, T) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let other = backend.clone();
    let (finished_during, handle) = runtime.block_on(backend.inner.keys.compute(key, |_, _| {
        let handle = std::thread::spawn(move || lock_op(other));
        // Ample time for a lock operation that does not wait to finish.
        std::thread::sleep(Duration::from_millis(200));
        let finished = handle.is_finished();
        (
            Op::Put(backend.fresh_value(b"value", None)),
            (finished, handle),
        )
    }));
    (finished_during, handle.join().unwrap())
}

/// A lock operation in its own runtime on the current thread.
fn blocking<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(work)
}

#[test]
fn lock_operations_wait_for_a_value_write_under_way() {
    let lease = Duration::from_secs(60);
    let backend = MemoryBackend::default();
    let (finished, attempt) = lock_op_during_a_value_write(&backend, "free", move |b| {
        blocking(b.try_lock("free", b"me", lease, Fencing::Skip)).unwrap()
    });
    assert!(!finished, "try_lock went ahead of a value write under way");
    assert!(matches!(attempt, LockAttempt::Held { .. }), "{attempt:?}");

    for op in ["release", "extend"] {
        let key: &'static str = if op == "release" { "r" } else { "e" };
        let attempt = blocking(backend.try_lock(key, b"me", lease, Fencing::Skip));
        assert!(matches!(attempt.unwrap(), LockAttempt::Acquired { .. }));
        // The write puts a value over the held record: the holder's
        // release or extend, racing it, must find a value, not its record.
        let (finished, done) = lock_op_during_a_value_write(&backend, key, move |b| {
            blocking(async {
                match op {
                    "release" => b.release(key, b"me").await,
                    _ => b.extend(key, b"me", lease).await,
                }
            })
            .unwrap()
        });
        assert!(!finished, "{op} went ahead of a value write under way");
        assert!(!done, "{op} acted on a record a value replaced");
        let value = blocking(backend.get(key)).unwrap();
        assert_eq!(value.as_deref(), Some(&b"value"[..]), "{op}");
    }
}

#[tokio::test(start_paused = true)]
async fn expired_records_are_swept_as_the_map_grows() {
    let backend = MemoryBackend::default();
    let records = backend.inner.keys.records();
    let lease = Duration::from_secs(1);
    for i in 0..5_000 {
        let key = format!("old-{i}");
        let attempt = backend.try_lock(&key, b"me", lease, Fencing::Skip).await;
        assert!(matches!(attempt.unwrap(), LockAttempt::Acquired { .. }));
    }
    assert_eq!(records.len(), 5_000, "swept live records");
    tokio::time::advance(lease).await;
    for i in 0..5_000 {
        let key = format!("new-{i}");
        let attempt = backend.try_lock(&key, b"me", lease, Fencing::Skip).await;
        assert!(matches!(attempt.unwrap(), LockAttempt::Acquired { .. }));
    }
    // Only the live ones are left: the 5,000 expired went in a sweep.
    assert_eq!(records.len(), 5_000);
    assert_eq!(records.keys_with_prefix("old-").len(), 0);
}
