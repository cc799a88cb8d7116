//! Keys and values memcached would refuse, and lifetimes it counts oddly.

use std::time::Duration;

use stampede::backend::memcached::{MemcachedConfig, DEFAULT_MAX_VALUE_SIZE, MAX_KEY_LEN};
use stampede::backend::Backend;
use stampede::{Cache, Error, OptimisticLock, RedLock};

use super::common::servers::{Server, MEMCACHED};
use super::{backend, server_stats, shared_url, unique};

async fn cache() -> Cache {
    let url = format!("{}?namespace={}", shared_url(), unique("keys"));
    Cache::from_url(&url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_over_250_bytes_round_trip_through_every_operation() {
    let cache = cache().await;
    let key = format!("report:{}", "x".repeat(400));
    assert!(key.len() > MAX_KEY_LEN);

    cache.set(&key, b"v1", None).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(!cache.add(&key, b"no", None).await.unwrap());
    let (_, token) = cache.gets(&key).await.unwrap().unwrap();
    assert!(cache.cas(&key, b"v2", Some(&token), None).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"v2"[..]));

    // The lock record (`<key>-lock`) of a long key is mapped too.
    let guard = RedLock::new(&cache, &key, Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    let lock_key = format!("{key}-lock");
    assert!(cache.get(&lock_key).await.unwrap().is_some());
    assert!(!RedLock::new(&cache, &key, Duration::from_millis(50))
        .acquire()
        .await
        .unwrap()
        .holds_lock());
    assert!(guard.release().await.unwrap());
    assert_eq!(cache.get(&lock_key).await.unwrap(), None);

    let lock = OptimisticLock::acquire(&cache, &key).await.unwrap();
    lock.cas(b"v3", None).await.unwrap();
    assert!(cache.delete(&key).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_keys_sharing_their_first_300_bytes_do_not_collide() {
    let cache = cache().await;
    let head = "same-head/".repeat(30);
    let (a, b) = (format!("{head}a"), format!("{head}b"));
    cache.set(&a, b"A", None).await.unwrap();
    cache.set(&b, b"B", None).await.unwrap();
    assert_eq!(cache.get(&a).await.unwrap().as_deref(), Some(&b"A"[..]));
    assert_eq!(cache.get(&b).await.unwrap().as_deref(), Some(&b"B"[..]));
    // Nor does a long key meet a short key equal to its head.
    assert_eq!(cache.get(&head[..200]).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_whitespace_or_control_characters_are_refused_before_anything_is_sent() {
    // A server of our own, so that its counters are ours alone.
    let server = Server::start(MEMCACHED);
    let cache = Cache::from_url(&server.url()).await.unwrap();
    let spaced = cache.with_namespace("my app");

    let errors: Vec<Error> = vec![
        cache.get("a b").await.unwrap_err(),
        cache.set("tab\there", b"v", None).await.unwrap_err(),
        cache.add("line\nbreak", b"v", None).await.unwrap_err(),
        cache.delete("nul\0").await.unwrap_err(),
        cache.gets("bell\u{7}").await.unwrap_err(),
        cache.cas("del\u{7f}", b"v", None, None).await.unwrap_err(),
        spaced.get("k").await.unwrap_err(),
        RedLock::new(&cache, "a b", Duration::from_secs(1))
            .acquire()
            .await
            .unwrap_err(),
        OptimisticLock::acquire(&cache, "a b").await.unwrap_err(),
    ];
    for error in &errors {
        assert!(error.is_invalid_input(), "{error}");
        assert!(matches!(error, Error::InvalidKey { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("memcached keys cannot contain whitespace or control characters"),
            "{message}"
        );
    }
    assert_eq!(
        errors[0].to_string(),
        "invalid key \"a b\": memcached keys cannot contain whitespace or control characters, \
         and this one has ' ' at byte 1"
    );
    // A namespace is checked where it is first sent (reading its
    // generation, see `Cache::clear`); the error names the namespace, not
    // the internal counter key.
    let message = errors[6].to_string();
    assert!(message.contains("\"my app:\""), "{message}");
    assert!(!message.contains("%gen"), "{message}");

    let stats = server_stats(server.port);
    for counter in [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "delete_hits",
        "delete_misses",
        "curr_items",
    ] {
        assert_eq!(stats[counter], 0, "{counter}: something reached the server");
    }
    // Non-ASCII is fine for memcached and for us.
    cache.set("café☕", b"v", None).await.unwrap();
    assert_eq!(
        cache.get("café☕").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_size_limit_are_refused_before_anything_is_sent() {
    let cache = cache().await;
    // The default fits memcached's default 1 MiB item limit, even with the
    // longest key.
    let longest_key = "k".repeat(200);
    let fits = vec![1u8; DEFAULT_MAX_VALUE_SIZE];
    cache.set(&longest_key, &fits, None).await.unwrap();
    assert_eq!(
        cache.get(&longest_key).await.unwrap().map(|v| v.len()),
        Some(fits.len())
    );

    let over = vec![1u8; DEFAULT_MAX_VALUE_SIZE + 1];
    for error in [
        cache.set("big", &over, None).await.unwrap_err(),
        cache.add("big", &over, None).await.unwrap_err(),
        cache.cas("big", &over, None, None).await.unwrap_err(),
    ] {
        assert!(error.is_invalid_input(), "{error}");
        match error {
            Error::ValueTooLarge {
                size,
                limit,
                backend,
                ref key,
            } => {
                assert_eq!(
                    (size, limit, backend),
                    (over.len(), Some(DEFAULT_MAX_VALUE_SIZE), "memcached")
                );
                assert!(key.ends_with(":big"), "{key}");
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
    }
    assert_eq!(cache.get("big").await.unwrap(), None);

    // The limit is configurable, by URL or config.
    let url = format!(
        "{}?max_value_size=1000&namespace={}",
        shared_url(),
        unique("small")
    );
    let small = Cache::from_url(&url).await.unwrap();
    small.set("k", vec![0u8; 1000], None).await.unwrap();
    let err = small.set("k", vec![0u8; 1001], None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "value for key \"".to_owned()
            + url.rsplit('=').next().unwrap()
            + ":k\" is 1001 bytes, \
         over the memcached limit of 1000 bytes"
    );
    let config = MemcachedConfig::new(super::servers_of(&shared_url())).max_value_size(10);
    let tiny = Cache::memcached(config).await.unwrap();
    assert!(tiny
        .set(&unique("k"), [0u8; 11], None)
        .await
        .unwrap_err()
        .is_invalid_input());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_server_refuses_as_too_large_is_value_too_large() {
    // Our limit above the server's (memcached's default item limit, 1 MiB).
    let namespace = unique("server-limit");
    let url = format!(
        "{}?max_value_size={}&namespace={namespace}",
        shared_url(),
        4 << 20
    );
    let cache = Cache::from_url(&url).await.unwrap();
    let over = vec![7u8; 2 << 20];
    cache.set("k", b"small", None).await.unwrap();
    let (_, token) = cache.gets("k").await.unwrap().unwrap();

    for error in [
        cache.set("k", &over, None).await.unwrap_err(),
        cache.add("new", &over, None).await.unwrap_err(),
        cache.cas("k", &over, Some(&token), None).await.unwrap_err(),
    ] {
        assert!(error.is_invalid_input(), "{error}");
        let message = error.to_string();
        match error {
            Error::ValueTooLarge {
                ref key,
                size,
                limit,
                backend,
            } => {
                assert_eq!((size, limit, backend), (over.len(), None, "memcached"));
                assert!(key.starts_with(&namespace), "{key}");
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
        assert!(
            message.ends_with("over the memcached server's item size limit"),
            "{message}"
        );
    }
    // Nothing was stored, and memcached dropped the key's old item (as it
    // does whenever it cannot store a new one); the connection still works.
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert_eq!(cache.get("new").await.unwrap(), None);
    cache.set("k", b"again", None).await.unwrap();
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_over_30_days_are_kept_not_read_as_dates_in_1970() {
    let b = backend(&shared_url()).await;
    let key = unique("long-ttl");
    let days_40 = Duration::from_secs(40 * 24 * 3600);
    b.set(&key, b"v", Some(days_40)).await.unwrap();
    // Sent as a relative 3,456,002 s, memcached would read a date in 1970
    // and drop the item at once.
    let record = b.lock_record(&key).await.unwrap().expect("still there");
    let remaining = record.remaining.expect("it expires");
    assert!(
        remaining > days_40 - Duration::from_secs(5)
            && remaining <= days_40 + Duration::from_secs(5),
        "{remaining:?}"
    );
}
