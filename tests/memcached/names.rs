//! The names the backend sends: a key a caller writes can never be one of
//! the backend's own (a fencing counter), nor the mapped form of another
//! key; and fencing counters expire once idle.

use std::time::Duration;

use sha2::{Digest, Sha256};
use stampede::backend::memcached::memcache::exp::{Get, Meta};
use stampede::backend::memcached::{fence_key, MemcachedBackend, MAX_KEY_LEN};
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::{Cache, RedLock};

use super::{backend, shared_url, unique};

/// A namespace of its own, and the prefix it puts before every key.
async fn namespaced(name: &str) -> (Cache, String) {
    let namespace = unique(name);
    let url = format!("{}?namespace={namespace}", shared_url());
    (
        Cache::from_url(&url).await.unwrap(),
        format!("{namespace}:"),
    )
}

/// What a key over 250 bytes was sent as before keys ending like this one
/// were mapped too: its first 185 bytes, `#`, the SHA-256 of the whole key.
fn mapped_form(full_key: &str) -> String {
    let digest = Sha256::digest(full_key.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}#{hex}", &full_key[..MAX_KEY_LEN - 65])
}

fn token(attempt: LockAttempt) -> u64 {
    match attempt {
        LockAttempt::Acquired { fence: Some(fence) } => fence,
        other => panic!("expected a fenced acquire, got {other:?}"),
    }
}

/// The remaining TTL of the item named `name`, read over the raw client:
/// `None` when it never expires.
async fn ttl_of(b: &MemcachedBackend, name: &[u8]) -> Option<i64> {
    let read = Get::new(name).without_value().meta(Meta::NONE.ttl());
    let result = b.client().run(read).await.unwrap();
    assert!(result.hit(), "{:?} is gone", String::from_utf8_lossy(name));
    result.item.ttl.filter(|&ttl| ttl >= 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_named_like_a_fence_counter_leaves_the_fencing_tokens_alone() {
    let (cache, _) = namespaced("fence-name").await;
    let lock = RedLock::new(&cache, "job", Duration::from_secs(30));
    let first = lock.lock().await.unwrap();
    let before = first.fencing_token();
    assert!(first.release().await.unwrap());

    // A plain user key, named as the counter used to be.
    cache.set("job-lock-fence", b"1", None).await.unwrap();
    let next = lock.lock().await.unwrap();
    assert!(
        next.fencing_token() > before,
        "token {} after {before}",
        next.fencing_token()
    );
    assert!(next.release().await.unwrap());
    // And fencing never touches the user's key.
    assert_eq!(
        cache.get("job-lock-fence").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_crafted_as_a_long_keys_mapped_form_is_another_key() {
    let (cache, prefix) = namespaced("crafted").await;
    let long = format!("report:{}", "x".repeat(300));
    let crafted = |full: &str| mapped_form(full)[prefix.len()..].to_owned();
    let value_mimic = crafted(&format!("{prefix}{long}"));
    assert_eq!(prefix.len() + value_mimic.len(), MAX_KEY_LEN);

    cache.set(&long, b"real", None).await.unwrap();
    cache.set(&value_mimic, b"forged", None).await.unwrap();
    assert_eq!(
        cache.get(&long).await.unwrap().as_deref(),
        Some(&b"real"[..]),
        "the crafted key overwrote the long key's value"
    );
    assert_eq!(
        cache.get(&value_mimic).await.unwrap().as_deref(),
        Some(&b"forged"[..])
    );

    // The long key's lock record, `<key>-lock`, mapped the same way.
    let guard = RedLock::new(&cache, &long, Duration::from_secs(30))
        .lock()
        .await
        .unwrap();
    let lock_mimic = crafted(&format!("{prefix}{long}-lock"));
    assert!(
        !cache.delete(&lock_mimic).await.unwrap(),
        "deleting the crafted key removed something"
    );
    let second = RedLock::new(&cache, &long, Duration::from_secs(30))
        .try_lock()
        .await;
    assert!(
        matches!(&second, Err(e) if e.is_locked()),
        "the crafted delete released the lock: {second:?}"
    );
    assert!(guard.release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_counters_live_an_hour_past_the_lease_and_every_lock_renews_them() {
    let b = backend(&shared_url()).await;
    let record = unique("fence-ttl");
    let counter = fence_key(&record).unwrap();
    let hour = 3600;

    // Created: the lease (100 s) plus an hour, plus memcached's 2 s margin.
    token(
        b.try_lock(&record, b"o", Duration::from_secs(100), Fencing::Issue)
            .await
            .unwrap(),
    );
    let created = ttl_of(&b, &counter).await.expect("the counter expires");
    assert!((hour + 95..=hour + 102).contains(&created), "{created} s");
    assert!(b.release(&record, b"o").await.unwrap());

    // The next lock sets it anew from its own lease: down to 10 s + 1 h,
    // which no amount of time passing could do to the first TTL.
    token(
        b.try_lock(&record, b"o", Duration::from_secs(10), Fencing::Issue)
            .await
            .unwrap(),
    );
    let renewed = ttl_of(&b, &counter).await.expect("the counter expires");
    assert!((hour + 5..=hour + 12).contains(&renewed), "{renewed} s");
    assert!(b.release(&record, b"o").await.unwrap());

    // Past 30 days the lifetime is sent as a date, not read as one in 1970.
    let days_40 = 40 * 24 * hour;
    let lease = Duration::from_secs(u64::try_from(days_40).unwrap());
    token(
        b.try_lock(&record, b"o", lease, Fencing::Issue)
            .await
            .unwrap(),
    );
    let long = ttl_of(&b, &counter).await.expect("the counter expires");
    assert!(
        (days_40 + hour - 5..=days_40 + hour + 5).contains(&long),
        "{long} s"
    );
    assert!(b.release(&record, b"o").await.unwrap());
}
