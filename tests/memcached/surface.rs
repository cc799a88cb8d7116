//! Counters, `touch`, `exists` and `clear` on memcached, through the
//! `Backend` trait: counters shared with memcached's own `ma`, below zero
//! and at the edge of `i64`; fill placeholders that are not values.

use std::time::Duration;

use memcache::exp::{Arithmetic, Get, Meta};
use stampede::backend::memcached::MemcachedBackend;
use stampede::backend::{Backend, FillLease, LeaseToken};
use stampede::Error;

use super::common::servers::{Server, MEMCACHED};
use super::{backend, shared_url, unique};

/// The raw item at `key`: its value and remaining TTL (`-1`: none).
async fn raw(mc: &MemcachedBackend, key: &str) -> Option<(String, i64)> {
    let read = Get::new(key).meta(Meta::NONE.ttl());
    let result = mc.client().run(read).await.unwrap();
    let value = result.value?;
    Some((String::from_utf8(value).unwrap(), result.item.ttl.unwrap()))
}

/// A fill lease on `key`, which must be granted.
async fn lease_on(mc: &MemcachedBackend, key: &str, lease: Duration) -> LeaseToken {
    match mc.read_for_fill(key, lease).await.unwrap().lease {
        FillLease::Granted(token) => token,
        other => panic!("expected a granted lease, got {other:?}"),
    }
}

async fn text(mc: &MemcachedBackend, key: &str) -> Option<String> {
    let value = mc.get(key).await.unwrap()?;
    Some(String::from_utf8(value.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_shared_with_memcacheds_own_arithmetic() {
    let mc = backend(&shared_url()).await;
    let (theirs, ours) = (unique("ma-made"), unique("ours"));
    // Made by an incr-style client: `ma` creating the counter at 40.
    let created = mc
        .client()
        .run(Arithmetic::new(&theirs).initial(40, 60))
        .await
        .unwrap();
    assert_eq!(created.value, Some(40));
    assert_eq!(mc.increment(&theirs, 2).await.unwrap(), 42);
    assert_eq!(text(&mc, &theirs).await.as_deref(), Some("42"));

    assert_eq!(mc.increment(&ours, 7).await.unwrap(), 7);
    assert_eq!(
        raw(&mc, &ours).await,
        Some(("7".to_owned(), -1)),
        "plain text, no TTL"
    );
    let bumped = mc.client().run(Arithmetic::new(&ours)).await.unwrap();
    assert_eq!(bumped.value, Some(8));
    assert_eq!(mc.increment(&ours, 0).await.unwrap(), 8);

    let long = format!("{ours}:{}", "n".repeat(300));
    assert_eq!(mc.increment(&long, 3).await.unwrap(), 3);
    assert_eq!(mc.increment(&long, -4).await.unwrap(), -1);
    assert_eq!(text(&mc, &long).await.as_deref(), Some("-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_go_below_zero_and_back() {
    let mc = backend(&shared_url()).await;
    let key = unique("below");
    assert_eq!(mc.increment(&key, 5).await.unwrap(), 5);
    assert_eq!(mc.increment(&key, -10).await.unwrap(), -5);
    assert_eq!(raw(&mc, &key).await.unwrap().0, "-5");
    // memcached's `ma` refuses "-5": the loop takes over.
    assert_eq!(mc.increment(&key, 3).await.unwrap(), -2);
    assert_eq!(mc.increment(&key, 4).await.unwrap(), 2);
    assert_eq!(text(&mc, &key).await.as_deref(), Some("2"));
    assert_eq!(mc.increment(&unique("fresh"), -3).await.unwrap(), -3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_leaves_the_counter_as_it_was() {
    let mc = backend(&shared_url()).await;
    let cases: [(&str, i64, bool); 5] = [
        ("9223372036854775807", 1, true),
        ("1", i64::MAX, true),
        // Never counters of ours: past i64::MAX already, or not a number.
        ("10000000000000000000", 1, false),
        ("18446744073709551615", 2, false),
        ("abc", 1, false),
    ];
    for (stored, delta, in_range) in cases {
        let key = unique("edge");
        mc.set(&key, stored.as_bytes(), Some(Duration::from_secs(100)))
            .await
            .unwrap();
        let error = mc.increment(&key, delta).await.unwrap_err();
        match error {
            Error::CounterOverflow {
                key: named,
                delta: refused,
            } if in_range => {
                assert_eq!((named, refused), (key.clone(), delta));
            }
            Error::NotACounter { key: named } if !in_range => assert_eq!(named, key),
            other => panic!("{stored} + {delta}: {other:?}"),
        }
        let (left, ttl) = raw(&mc, &key).await.unwrap();
        assert_eq!(left, stored, "{stored} + {delta} left {left:?}");
        assert!(
            (90..=102).contains(&ttl),
            "{stored} + {delta} left a TTL of {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_keep_the_ttl_and_void_fills() {
    let mc = backend(&shared_url()).await;
    let key = unique("ttl");
    mc.set(&key, b"5", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    assert_eq!(mc.increment(&key, 1).await.unwrap(), 6);
    assert_eq!(mc.increment(&key, -10).await.unwrap(), -4);
    let (value, ttl) = raw(&mc, &key).await.unwrap();
    assert_eq!(value, "-4");
    assert!((90..=102).contains(&ttl), "TTL {ttl} after increments");

    // A key being filled counts as absent; the increment voids the fill.
    let filling = unique("filling");
    let lease = lease_on(&mc, &filling, Duration::from_secs(10)).await;
    assert_eq!(mc.increment(&filling, 3).await.unwrap(), 3);
    assert!(!mc
        .store_filled(&filling, &lease, b"filled", None)
        .await
        .unwrap());
    assert_eq!(raw(&mc, &filling).await, Some(("3".to_owned(), -1)));

    // A stale counter: its refresher's lease is void, and the counter is
    // fresh again (memcached would keep the stale mark on an in-place `ma`).
    let stale = unique("stale");
    mc.set(&stale, b"5", None).await.unwrap();
    assert!(mc
        .mark_stale(&stale, Duration::from_secs(30))
        .await
        .unwrap());
    let refresh = lease_on(&mc, &stale, Duration::from_secs(10)).await;
    assert_eq!(mc.increment(&stale, 1).await.unwrap(), 6);
    assert!(!mc
        .store_filled(&stale, &refresh, b"refreshed", None)
        .await
        .unwrap());
    let read = mc
        .read_for_fill(&stale, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((read.lease, read.stale), (FillLease::NotNeeded, false));
    assert_eq!(text(&mc, &stale).await.as_deref(), Some("6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_and_exists_see_what_get_sees() {
    let mc = backend(&shared_url()).await;
    let (key, absent, filling) = (unique("touch"), unique("absent"), unique("filling"));
    assert!(!mc.touch(&absent, Duration::from_secs(60)).await.unwrap());
    assert!(!mc.exists(&absent).await.unwrap());

    mc.set(&key, b"v", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(mc.exists(&key).await.unwrap());
    assert!(mc.touch(&key, Duration::from_secs(3600)).await.unwrap());
    let (value, ttl) = raw(&mc, &key).await.unwrap();
    assert_eq!(value, "v");
    assert!((3590..=3602).contains(&ttl), "touched to {ttl}");

    // A placeholder is not a value, and its lease is not stretched.
    let lease = lease_on(&mc, &filling, Duration::from_secs(10)).await;
    assert!(!mc.exists(&filling).await.unwrap());
    assert!(!mc.touch(&filling, Duration::from_secs(3600)).await.unwrap());
    let read = mc
        .client()
        .run(Get::new(&filling).without_value().meta(Meta::NONE.ttl()))
        .await;
    let left = read.unwrap().item.ttl.unwrap();
    assert!(
        (1..=12).contains(&left),
        "a touched placeholder has {left} s left"
    );
    assert!(mc
        .store_filled(&filling, &lease, b"filled", None)
        .await
        .unwrap());

    // A stale value is still a value.
    assert!(mc.mark_stale(&key, Duration::from_secs(30)).await.unwrap());
    assert!(mc.exists(&key).await.unwrap());
    assert!(mc.touch(&key, Duration::from_secs(60)).await.unwrap());
    let read = mc
        .read_for_fill(&key, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        read.stale && matches!(read.lease, FillLease::Granted(_)),
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_flushes_every_server_and_refuses_a_prefix() {
    let (first, second) = (Server::start(MEMCACHED), Server::start(MEMCACHED));
    let servers = [first.port, second.port].map(|port| format!("127.0.0.1:{port}"));
    let url = format!("memcached://{}", servers.join(","));
    let mc = backend(&url).await;
    assert!(!mc.clears_by_prefix());
    let keys: Vec<String> = (0..16).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (*k, &b"v"[..])).collect();
    mc.set_many(&entries, None).await.unwrap();

    let refused = mc.clear("app:").await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Unsupported {
                operation: "clear",
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(mc
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));

    mc.clear("").await.unwrap();
    assert!(mc
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
    mc.set("after", b"kept", None).await.unwrap();
    assert_eq!(text(&mc, "after").await.as_deref(), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_placeholder_voids_its_fill_but_removes_no_value() {
    let mc = backend(&shared_url()).await;
    let (one, many, value) = (unique("one"), unique("many"), unique("value"));
    let leases = [
        lease_on(&mc, &one, Duration::from_secs(10)).await,
        lease_on(&mc, &many, Duration::from_secs(10)).await,
    ];
    mc.set(&value, b"v", None).await.unwrap();
    assert!(!mc.delete(&one).await.unwrap());
    assert_eq!(mc.delete_many(&[&many, &value]).await.unwrap(), 1);
    for (key, lease) in [&one, &many].into_iter().zip(&leases) {
        assert!(!mc.store_filled(key, lease, b"late", None).await.unwrap());
        assert_eq!(raw(&mc, key).await, None, "{key} is gone");
    }
    assert_eq!(mc.get(&value).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_across_zero_lose_nothing() {
    let key = unique("across-zero");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (mc, key) = (backend(&shared_url()).await, key.clone());
        // `ma` while the counter is at or above zero, the loop below it,
        // and every change of the one voiding the other's read.
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                mc.increment(&key, if i % 2 == 0 { 2 } else { -3 })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mc = backend(&shared_url()).await;
    assert_eq!(text(&mc, &key).await.as_deref(), Some("-80"));
}
