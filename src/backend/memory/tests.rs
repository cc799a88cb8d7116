//! Unit tests of the memory backend, on paused time where they can.

use super::*;

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
    backend.inner.values.run_pending_tasks().await;
    backend.inner.locks.run_pending_tasks().await;
    assert!(backend.inner.values.weighted_size() <= 4 * 1024);
    let record = backend
        .lock_record("held")
        .await
        .unwrap()
        .expect("record kept");
    assert_eq!(record.owner, &b"me"[..]);
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
