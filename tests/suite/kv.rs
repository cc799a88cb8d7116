//! Plain key-value behaviour: get, set, add, delete, gets/cas, TTLs, namespaces.

use std::time::{Duration, Instant};

use crate::common::Store;

pub async fn get_of_missing_key_is_none(store: Store) {
    let cache = store.handle().await;
    assert_eq!(cache.get("nothing-here").await.unwrap(), None);
    assert_eq!(cache.gets("nothing-here").await.unwrap(), None);
}

pub async fn set_then_get_round_trips_binary_values(store: Store) {
    let cache = store.handle().await;
    let every_byte: Vec<u8> = (0..=255).collect();
    cache.set("bytes", &every_byte, None).await.unwrap();
    assert_eq!(
        cache.get("bytes").await.unwrap().as_deref(),
        Some(&every_byte[..])
    );

    let big = vec![7u8; 200_000];
    cache.set("big", &big, None).await.unwrap();
    assert_eq!(
        cache.get("big").await.unwrap().map(|v| v.len()),
        Some(big.len())
    );
}

pub async fn set_overwrites(store: Store) {
    let cache = store.handle().await;
    cache.set("k", b"one", None).await.unwrap();
    cache.set("k", b"two", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));
}

pub async fn ttl_expires_values(store: Store) {
    let cache = store.handle().await;
    let ttl = store.kind.short_ttl();
    let started = Instant::now();
    cache.set("short", b"v", Some(ttl)).await.unwrap();
    cache.set("forever", b"v", None).await.unwrap();
    assert!(cache.get("short").await.unwrap().is_some(), "gone at once");

    let deadline = started + ttl + store.kind.ttl_slack();
    while cache.get("short").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "still there {:?} after a TTL of {ttl:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Never expires early (the network round trip only makes it later).
    assert!(
        started.elapsed() >= ttl,
        "expired after {:?}, TTL {ttl:?}",
        started.elapsed()
    );
    assert!(cache.get("forever").await.unwrap().is_some());
}

pub async fn add_only_creates(store: Store) {
    let cache = store.handle().await;
    assert!(cache.add("k", b"first", None).await.unwrap());
    assert!(!cache.add("k", b"second", None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(cache.delete("k").await.unwrap());
    assert!(cache.add("k", b"third", None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
}

pub async fn add_after_expiry_creates(store: Store) {
    let cache = store.handle().await;
    let ttl = store.kind.short_ttl();
    assert!(cache.add("k", b"first", Some(ttl)).await.unwrap());
    tokio::time::sleep(ttl + store.kind.ttl_slack()).await;
    assert!(cache.add("k", b"second", None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

pub async fn delete_reports_whether_it_removed(store: Store) {
    let cache = store.handle().await;
    assert!(!cache.delete("k").await.unwrap());
    cache.set("k", b"v", None).await.unwrap();
    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
    assert_eq!(cache.get("k").await.unwrap(), None);
}

pub async fn namespaces_never_see_each_other(store: Store) {
    let cache = store.handle().await;
    let (a, b) = (cache.with_namespace("a"), cache.with_namespace("b"));
    let a_colon = cache.with_namespace("a:x");
    a.set("x:k", b"from a", None).await.unwrap();
    b.set("x:k", b"from b", None).await.unwrap();
    assert_eq!(a.get("x:k").await.unwrap().as_deref(), Some(&b"from a"[..]));
    assert_eq!(b.get("x:k").await.unwrap().as_deref(), Some(&b"from b"[..]));
    // "a" + "x:k" and "a:x" + "k" must not meet.
    assert_eq!(a_colon.get("k").await.unwrap(), None);
    assert!(a_colon.add("k", b"mine", None).await.unwrap());
    assert_eq!(a.get("x:k").await.unwrap().as_deref(), Some(&b"from a"[..]));
    // The parent sees into its children, under the prefix.
    assert_eq!(
        cache.get("a:x:k").await.unwrap().as_deref(),
        Some(&b"from a"[..])
    );
}

pub async fn bad_input_is_a_clear_error(store: Store) {
    let cache = store.handle().await;
    let empty = cache.get("").await.unwrap_err();
    assert!(empty.is_invalid_input());
    assert!(empty.to_string().contains("must not be empty"), "{empty}");

    let zero = cache
        .set("k", b"v", Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(zero.is_invalid_input());
    assert!(zero.to_string().contains("TTL"), "{zero}");
    for result in [
        cache.add("k", b"v", Some(Duration::ZERO)).await,
        cache.cas("k", b"v", None, Some(Duration::ZERO)).await,
    ] {
        assert!(result.unwrap_err().is_invalid_input());
    }
    assert!(cache.delete("").await.unwrap_err().is_invalid_input());
    // Nothing was written by the refused calls.
    assert_eq!(cache.get("k").await.unwrap(), None);
}

pub async fn gets_and_cas_detect_every_write(store: Store) {
    let cache = store.handle().await;
    cache.set("k", b"v1", None).await.unwrap();
    let (value, token) = cache.gets("k").await.unwrap().expect("present");
    assert_eq!(&value[..], b"v1");

    assert!(cache.cas("k", b"v2", Some(&token), None).await.unwrap());
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    // The token is spent: the cas itself was a write.
    assert!(!cache.cas("k", b"v3", Some(&token), None).await.unwrap());

    // A write of the very same bytes still changes the token (no ABA).
    let (_, before) = cache.gets("k").await.unwrap().unwrap();
    cache.set("k", b"v2", None).await.unwrap();
    let (_, after) = cache.gets("k").await.unwrap().unwrap();
    assert_ne!(before, after);
    assert!(!cache.cas("k", b"v4", Some(&before), None).await.unwrap());
    assert!(cache.cas("k", b"v4", Some(&after), None).await.unwrap());

    // Deleted and written again: the old token does not come back to life.
    let (_, old) = cache.gets("k").await.unwrap().unwrap();
    cache.delete("k").await.unwrap();
    cache.set("k", b"v4", None).await.unwrap();
    assert!(!cache.cas("k", b"v5", Some(&old), None).await.unwrap());
}

pub async fn cas_without_token_means_still_absent(store: Store) {
    let cache = store.handle().await;
    assert!(cache.cas("k", b"created", None, None).await.unwrap());
    assert!(!cache.cas("k", b"again", None, None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"created"[..])
    );
}

pub async fn failed_cas_keeps_the_other_writers_value(store: Store) {
    let cache = store.handle().await;
    let other = store.handle().await;
    cache
        .set("k", b"mine", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    other.set("k", b"theirs", None).await.unwrap();
    assert!(!cache.cas("k", b"lost?", Some(&token), None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
}
