//! The names the backend sends: a key a caller writes can never be one of
//! the backend's own (a fencing counter), nor the mapped form of another
//! key.

use std::time::Duration;

use sha2::{Digest, Sha256};
use stampede::backend::memcached::MAX_KEY_LEN;
use stampede::{Cache, RedLock};

use crate::{shared_url, unique};

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
