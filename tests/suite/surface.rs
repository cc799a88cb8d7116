//! The everyday surface, on every backend: batches, exists, touch,
//! counters, clear and the default TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::{Cache, Error, Fill};

use crate::common::Store;

fn bytes(value: &Option<stampede::Bytes>) -> Option<&[u8]> {
    value.as_deref()
}

/// Polls `cache.get(key)` until it is `None`, failing after `within`.
async fn until_gone(cache: &Cache, key: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while cache.get(key).await.unwrap().is_some() {
        assert!(
            started.elapsed() < within,
            "{key} still there after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

pub async fn get_many_returns_values_in_key_order(store: Store) {
    let cache = store.handle().await;
    cache.set("a", b"1", None).await.unwrap();
    cache.set("c", b"3", None).await.unwrap();
    let values = cache.get_many(&["c", "b", "a", "c"]).await.unwrap();
    let values: Vec<_> = values.iter().map(bytes).collect();
    assert_eq!(
        values,
        [Some(&b"3"[..]), None, Some(&b"1"[..]), Some(&b"3"[..])]
    );
    let none: [&str; 0] = [];
    assert!(cache.get_many(&none).await.unwrap().is_empty());
    // Owned keys work as well as borrowed ones.
    let owned = vec!["a".to_string()];
    assert_eq!(cache.get_many(&owned).await.unwrap().len(), 1);
}

pub async fn set_many_then_delete_many(store: Store) {
    let cache = store.handle().await;
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let entries: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|key| (key.clone(), format!("value of {key}").into_bytes()))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    let values = cache.get_many(&keys).await.unwrap();
    for ((key, want), got) in entries.iter().zip(&values) {
        assert_eq!(got.as_deref(), Some(&want[..]), "{key}");
    }
    cache.set("k0", b"overwritten", None).await.unwrap();
    assert_eq!(
        cache.get("k0").await.unwrap().as_deref(),
        Some(&b"overwritten"[..])
    );
    let mut doomed: Vec<&str> = keys[..10].iter().map(String::as_str).collect();
    doomed.push("never-set");
    assert_eq!(cache.delete_many(&doomed).await.unwrap(), 10);
    let after = cache.get_many(&keys).await.unwrap();
    assert!(after[..10].iter().all(Option::is_none));
    assert!(after[10..].iter().all(Option::is_some));
    let none: [&str; 0] = [];
    assert_eq!(cache.delete_many(&none).await.unwrap(), 0);
}

pub async fn set_many_ttl_and_the_default_ttl_expire_values(store: Store) {
    let cache = store.handle().await;
    let ttl = store.kind.short_ttl();
    let within = ttl + store.kind.ttl_slack() + Duration::from_secs(1);
    cache
        .set_many(&[("short", b"1".as_slice())], Some(ttl))
        .await
        .unwrap();
    let defaulted = cache.with_default_ttl(ttl);
    assert_eq!(defaulted.default_ttl(), Some(ttl));
    assert_eq!(cache.default_ttl(), None, "the parent keeps its own");
    defaulted.set("by-default", b"2", None).await.unwrap();
    defaulted
        .set_many(&[("many-by-default", b"3".as_slice())], None)
        .await
        .unwrap();
    defaulted
        .set("explicit", b"4", Some(Duration::from_secs(600)))
        .await
        .unwrap();
    cache.set("forever", b"5", None).await.unwrap();
    for key in ["short", "by-default", "many-by-default"] {
        until_gone(&cache, key, within).await;
    }
    assert!(
        cache.exists("explicit").await.unwrap(),
        "an explicit TTL wins"
    );
    assert!(cache.exists("forever").await.unwrap());
}

pub async fn exists_is_true_exactly_when_get_finds_a_value(store: Store) {
    let cache = store.handle().await;
    assert!(!cache.exists("k").await.unwrap());
    cache.set("k", b"", None).await.unwrap();
    assert!(cache.exists("k").await.unwrap(), "an empty value exists");
    cache.delete("k").await.unwrap();
    assert!(!cache.exists("k").await.unwrap());

    // A key being filled holds a lease, not a value.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let filler = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let fill = Fill::ttl(Duration::from_secs(60));
            cache
                .get_or_fill("filling", fill, || async move {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok::<_, Error>(7u32)
                })
                .await
                .unwrap()
        })
    };
    started_rx.await.unwrap();
    assert!(!cache.exists("filling").await.unwrap());
    finish_tx.send(()).unwrap();
    assert_eq!(filler.await.unwrap(), 7);
    assert!(cache.exists("filling").await.unwrap());
}

pub async fn touch_moves_the_expiry(store: Store) {
    let cache = store.handle().await;
    let ttl = store.kind.short_ttl();
    let within = ttl + store.kind.ttl_slack() + Duration::from_secs(1);
    assert!(!cache.touch("absent", ttl).await.unwrap());
    assert!(
        !cache.exists("absent").await.unwrap(),
        "touch creates nothing"
    );

    cache.set("kept", b"v", Some(ttl)).await.unwrap();
    cache.set("dropped", b"v", None).await.unwrap();
    assert!(cache.touch("kept", Duration::from_secs(600)).await.unwrap());
    assert!(cache.touch("dropped", ttl).await.unwrap());
    until_gone(&cache, "dropped", within).await;
    assert_eq!(
        cache.get("kept").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "touch kept the value and moved its expiry past the old TTL"
    );
    let zero = cache.touch("kept", Duration::ZERO).await.unwrap_err();
    assert!(zero.is_invalid_input(), "{zero}");
}

pub async fn increment_is_an_atomic_decimal_counter(store: Store) {
    let cache = store.handle().await;
    assert_eq!(cache.increment("n", 1).await.unwrap(), 1);
    assert_eq!(cache.increment("n", 41).await.unwrap(), 42);
    assert_eq!(cache.increment("n", -50).await.unwrap(), -8);
    assert_eq!(cache.get("n").await.unwrap().as_deref(), Some(&b"-8"[..]));
    assert_eq!(cache.increment("n", 0).await.unwrap(), -8);
    // A number written by `set` is a counter too.
    cache.set("written", b"5", None).await.unwrap();
    assert_eq!(cache.increment("written", 1).await.unwrap(), 6);

    // 8 tasks on two handles, 25 increments each: none lost.
    let other = store.independent_handle().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let cache = if i % 2 == 0 {
                cache.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                for _ in 0..25 {
                    cache.increment("shared", 2).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.increment("shared", 0).await.unwrap(), 400);
}

pub async fn increment_refuses_what_is_not_a_counter(store: Store) {
    let cache = store.handle().await;
    cache.set("word", b"hello", None).await.unwrap();
    let error = cache.increment("word", 1).await.unwrap_err();
    assert!(matches!(error, Error::NotACounter { .. }), "{error:?}");
    assert!(error.to_string().contains("word"), "names the key: {error}");
    assert_eq!(
        cache.get("word").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );

    let max = i64::MAX.to_string();
    cache.set("big", &max, None).await.unwrap();
    let error = cache.increment("big", 1).await.unwrap_err();
    assert!(
        matches!(error, Error::CounterOverflow { delta: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        cache.get("big").await.unwrap().as_deref(),
        Some(max.as_bytes())
    );
    assert_eq!(cache.increment("big", -1).await.unwrap(), i64::MAX - 1);
}

pub async fn increment_keeps_the_ttl(store: Store) {
    let cache = store.handle().await;
    let ttl = store.kind.short_ttl();
    let within = ttl + store.kind.ttl_slack() + Duration::from_secs(1);
    cache.set("n", b"1", Some(ttl)).await.unwrap();
    assert_eq!(cache.increment("n", 1).await.unwrap(), 2);
    until_gone(&cache, "n", within).await;
    assert_eq!(cache.increment("n", 1).await.unwrap(), 1, "gone means 0");
}

pub async fn clear_removes_this_namespace_and_nothing_else(store: Store) {
    let root = store.handle().await;
    let (a, b) = (root.with_namespace("a"), root.with_namespace("b"));
    let nested = a.with_namespace("inner");
    let starred = root.with_namespace("a*"); // a glob character
    for cache in [&root, &a, &b, &nested, &starred] {
        cache.set("k", b"before", None).await.unwrap();
    }
    a.clear().await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), None);
    assert_eq!(
        nested.get("k").await.unwrap(),
        None,
        "nested namespaces go too"
    );
    for cache in [&root, &b, &starred] {
        assert_eq!(
            cache.get("k").await.unwrap().as_deref(),
            Some(&b"before"[..]),
            "{cache:?} must keep its key"
        );
    }
    // The namespace works as before after a clear.
    a.set("k", b"after", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    assert_eq!(a.increment("n", 3).await.unwrap(), 3);
    starred.clear().await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
}

pub async fn clear_is_seen_by_other_handles_within_a_second(store: Store) {
    let cache = store.handle().await;
    let other = store.independent_handle().await;
    cache.set("k", b"v", None).await.unwrap();
    assert!(other.exists("k").await.unwrap());
    cache.clear().await.unwrap();
    let started = Instant::now();
    while other.exists("k").await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "another handle still sees a cleared key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn bad_batch_input_is_refused_before_anything_is_sent(store: Store) {
    let cache = store.handle().await;
    let error = cache.get_many(&["ok", ""]).await.unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    let error = cache
        .set_many(&[("first", b"1".as_slice()), ("", b"2".as_slice())], None)
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    assert!(!cache.exists("first").await.unwrap(), "nothing was sent");
    let error = cache
        .set_many(&[("first", b"1".as_slice())], Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        error.is_invalid_input() && error.to_string().contains("TTL"),
        "{error}"
    );
    cache.set("kept", b"v", None).await.unwrap();
    let error = cache.delete_many(&["kept", ""]).await.unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    assert!(cache.exists("kept").await.unwrap(), "nothing was sent");
    assert!(cache.increment("", 1).await.unwrap_err().is_invalid_input());
    assert!(cache.exists("").await.unwrap_err().is_invalid_input());
    let zero = Cache::memory().with_default_ttl(Duration::ZERO);
    assert!(zero
        .set("k", b"v", None)
        .await
        .unwrap_err()
        .is_invalid_input());
}

/// A fill running while `set_many`, `delete_many` or `increment` writes its
/// key must not store over the write.
pub async fn batch_writes_and_counters_void_fills(store: Store) {
    let cache = Arc::new(store.handle().await);
    for (key, write) in [
        ("by-set-many", 0),
        ("by-delete-many", 1),
        ("by-increment", 2),
    ] {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let filler = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get_or_fill(key, Fill::ttl(Duration::from_secs(60)), || async move {
                        started_tx.send(()).unwrap();
                        finish_rx.await.unwrap();
                        Ok::<_, Error>(String::from("stale fill"))
                    })
                    .await
                    .unwrap()
            })
        };
        started_rx.await.unwrap();
        match write {
            0 => cache
                .set_many(&[(key, b"\"written\"")], None)
                .await
                .unwrap(),
            // (memcached counts the fill's placeholder as removed)
            1 => assert!(cache.delete_many(&[key]).await.unwrap() <= 1),
            _ => assert_eq!(cache.increment(key, 5).await.unwrap(), 5),
        }
        finish_tx.send(()).unwrap();
        assert_eq!(
            filler.await.unwrap(),
            "stale fill",
            "the filler gets its value"
        );
        let stored = cache.get(key).await.unwrap();
        let want: Option<&[u8]> = match write {
            0 => Some(b"\"written\""),
            1 => None,
            _ => Some(b"5"),
        };
        assert_eq!(stored.as_deref(), want, "{key}: the write must win");
    }
}
