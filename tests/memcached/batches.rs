//! The batch primitives on memcached, through the `Backend` trait: long
//! keys mapped as the single-key calls map them, one round trip per batch
//! across two servers, fill leases read and stored in batches, and the
//! leases of a batch that failed in part given back.

use std::time::{Duration, Instant};

use bytes::Bytes;
use memcache::exp::{Get, GetStatus};
use stampede::backend::memcached::{
    MemcachedBackend, MemcachedConfig, DEFAULT_MAX_VALUE_SIZE, MAX_KEY_LEN,
};
use stampede::backend::{Backend, FillLease, FillRead, FilledValue, LeaseToken};
use stampede::Error;

use super::common::servers::{Server, MEMCACHED};
use super::proxy::DelayAnswers;
use super::{backend, shared_url, unique};

/// The lease in a read that must have granted one.
fn granted(read: &FillRead) -> &LeaseToken {
    match &read.lease {
        FillLease::Granted(lease) => lease,
        other => panic!("expected a granted lease, got {other:?}"),
    }
}

/// A backend over `servers` (`host:port`).
async fn over(servers: &[String]) -> MemcachedBackend {
    MemcachedConfig::new(servers.iter().cloned())
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_map_long_keys_as_the_single_key_calls_do() {
    let mc = backend(&shared_url()).await;
    let id = unique("long");
    let long = |tag: &str| format!("{id}:{tag}:{}", "x".repeat(300));
    let (a, b, c) = (long("a"), long("b"), long("c"));
    let looks_mapped = format!("{id}#{}", "ab".repeat(32));
    assert!(a.len() > MAX_KEY_LEN);

    let entries = [(a.as_str(), &b"A"[..]), (looks_mapped.as_str(), b"M")];
    mc.set_many(&entries, None).await.unwrap();
    assert_eq!(mc.get(&a).await.unwrap().as_deref(), Some(&b"A"[..]));
    assert_eq!(
        mc.get(&looks_mapped).await.unwrap().as_deref(),
        Some(&b"M"[..])
    );
    mc.set(&b, b"B", None).await.unwrap();
    let values = mc.get_many(&[&b, &a, &c, &looks_mapped]).await.unwrap();
    let expected = [Some("B"), Some("A"), None, Some("M")].map(|v| v.map(Bytes::from));
    assert_eq!(values, expected);

    // A lease from the batched read stores through the single-key call and
    // the other way round: both name the same item.
    let reads = mc
        .read_for_fill_many(&[&c], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(mc
        .store_filled(&c, granted(&reads[0]), b"C", None)
        .await
        .unwrap());
    assert!(mc.delete(&b).await.unwrap());
    let read = mc.read_for_fill(&b, Duration::from_secs(10)).await.unwrap();
    let entry = FilledValue {
        key: &b,
        lease: granted(&read),
        value: b"B2",
        ttl: None,
    };
    assert_eq!(mc.store_filled_many(&[entry]).await.unwrap(), [true]);
    assert_eq!(mc.get(&c).await.unwrap().as_deref(), Some(&b"C"[..]));
    assert_eq!(mc.get(&b).await.unwrap().as_deref(), Some(&b"B2"[..]));

    let gone = long("never-set");
    assert_eq!(
        mc.delete_many(&[&a, &gone, &looks_mapped]).await.unwrap(),
        2
    );
    assert_eq!(mc.get(&a).await.unwrap(), None);
    assert_eq!(mc.get(&looks_mapped).await.unwrap(), None);
    assert_eq!(mc.get(&b).await.unwrap().as_deref(), Some(&b"B2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_for_fill_many_grants_waits_and_hits_in_key_order() {
    let (mine, theirs) = (backend(&shared_url()).await, backend(&shared_url()).await);
    let id = unique("fill-many");
    let [hit, held, cold, stale] = ["hit", "held", "cold", "stale"].map(|k| format!("{id}:{k}"));
    mine.set(&hit, b"H", None).await.unwrap();
    mine.set(&stale, b"old", None).await.unwrap();
    assert!(mine
        .mark_stale(&stale, Duration::from_secs(30))
        .await
        .unwrap());
    let lease = Duration::from_secs(10);
    let other = theirs.read_for_fill(&held, lease).await.unwrap();

    let keys = [hit.as_str(), &held, &cold, &stale];
    let reads = mine.read_for_fill_many(&keys, lease).await.unwrap();
    assert_eq!(reads.len(), 4);
    assert_eq!(reads[0].lease, FillLease::NotNeeded);
    assert_eq!(
        reads[0].value.as_ref().map(|(v, _)| v.as_ref()),
        Some(&b"H"[..])
    );
    assert_eq!(
        (&reads[1].lease, &reads[1].value),
        (&FillLease::Busy, &None)
    );
    assert!(reads[2].value.is_none());
    assert!(reads[3].stale);
    assert_eq!(
        reads[3].value.as_ref().map(|(v, _)| v.as_ref()),
        Some(&b"old"[..])
    );

    let entries = [
        FilledValue {
            key: &cold,
            lease: granted(&reads[2]),
            value: b"C",
            ttl: None,
        },
        // The other handle's lease is not ours to store with.
        FilledValue {
            key: &held,
            lease: granted(&reads[2]),
            value: b"no",
            ttl: None,
        },
        FilledValue {
            key: &stale,
            lease: granted(&reads[3]),
            value: b"new",
            ttl: None,
        },
    ];
    assert_eq!(
        mine.store_filled_many(&entries).await.unwrap(),
        [true, false, true]
    );
    assert!(theirs
        .store_filled(&held, granted(&other), b"T", None)
        .await
        .unwrap());
    let values = mine.get_many(&keys).await.unwrap();
    let expected = [Some("H"), Some("T"), Some("C"), Some("new")].map(|v| v.map(Bytes::from));
    assert_eq!(values, expected);
    let after = mine.read_for_fill(&stale, lease).await.unwrap();
    assert_eq!((after.lease, after.stale), (FillLease::NotNeeded, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_two_servers_take_one_round_trip() {
    let servers = [Server::start(MEMCACHED), Server::start(MEMCACHED)];
    let delay = Duration::from_millis(200);
    let mut proxied = Vec::new();
    for server in &servers {
        let upstream = format!("127.0.0.1:{}", server.port);
        proxied.push(DelayAnswers::start(upstream, delay).await.addr.to_string());
    }
    let mc = over(&proxied).await;
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let entries: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    // One exchange is `delay`; one per server in turn would be two, and one
    // per key twenty.
    let timed = |what: &str, started: Instant| {
        let took = started.elapsed();
        assert!(
            took >= delay && took < delay * 7 / 4,
            "{what} took {took:?}"
        );
    };

    let started = Instant::now();
    mc.set_many(&entries, None).await.unwrap();
    timed("set_many", started);

    let mut asked: Vec<&str> = keys.iter().map(String::as_str).rev().collect();
    asked.insert(5, "absent");
    let started = Instant::now();
    let got = mc.get_many(&asked).await.unwrap();
    timed("get_many", started);
    let expected: Vec<Option<Bytes>> = asked
        .iter()
        .map(|k| k.strip_prefix('k').map(|i| Bytes::from(format!("v{i}"))))
        .collect();
    assert_eq!(got, expected);

    // The keys really are spread over both servers.
    for server in &servers {
        let direct = over(&[format!("127.0.0.1:{}", server.port)]).await;
        let here = direct.get_many(&asked).await.unwrap();
        let held = here.iter().filter(|v| v.is_some()).count();
        assert!(held > 0 && held < 20, "one server holds {held} of 20 keys");
    }

    let started = Instant::now();
    assert_eq!(mc.delete_many(&asked).await.unwrap(), 20);
    timed("delete_many", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_in_part_gives_back_the_leases_it_got() {
    let (live, mut dead) = (Server::start(MEMCACHED), Server::start(MEMCACHED));
    let addr = |server: &Server| format!("127.0.0.1:{}", server.port);
    let both = over(&[addr(&live), addr(&dead)]).await;
    let on_live = over(&[addr(&live)]).await;
    // Find a key for each server.
    let (mut here, mut there) = (None, None);
    for i in 0..64 {
        let key = format!("key-{i}");
        both.set(&key, b"x", None).await.unwrap();
        let slot = match on_live.get(&key).await.unwrap() {
            Some(_) => &mut here,
            None => &mut there,
        };
        slot.get_or_insert(key);
    }
    let (here, there) = (here.unwrap(), there.unwrap());
    both.delete_many(&[&here, &there]).await.unwrap();
    dead.kill();

    let lease = Duration::from_secs(60);
    let failed = both.read_for_fill_many(&[&here, &there], lease).await;
    assert!(failed.is_err(), "a dead server's share failed: {failed:?}");
    // The placeholder the live server vivified would stay for the 60-second
    // lease; given back, it is gone within a few round trips.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let read = on_live
            .client()
            .run(Get::new(&here).without_value())
            .await
            .unwrap();
        if read.status == GetStatus::Miss {
            break;
        }
        assert!(Instant::now() < deadline, "the lease was not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = on_live.read_for_fill(&here, lease).await.unwrap();
    assert!(matches!(again.lease, FillLease::Granted(_)), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_anywhere_in_a_batch_is_refused_before_anything_is_sent() {
    let mc = backend(&shared_url()).await;
    let id = unique("bad-batch");
    let (good, other) = (format!("{id}:good"), format!("{id}:other"));
    let big = vec![b'x'; DEFAULT_MAX_VALUE_SIZE + 1];
    let too_large = mc
        .set_many(&[(good.as_str(), &b"v"[..]), (&other, &big)], None)
        .await;
    assert!(
        matches!(too_large, Err(Error::ValueTooLarge { .. })),
        "{too_large:?}"
    );
    let bad_key = mc
        .set_many(&[(good.as_str(), &b"v"[..]), ("a b", b"v")], None)
        .await;
    assert!(
        matches!(bad_key, Err(Error::InvalidKey { .. })),
        "{bad_key:?}"
    );
    assert_eq!(mc.get(&good).await.unwrap(), None, "half a batch was sent");

    let read = mc
        .read_for_fill(&good, Duration::from_secs(10))
        .await
        .unwrap();
    let entries = [
        FilledValue {
            key: &good,
            lease: granted(&read),
            value: b"v",
            ttl: None,
        },
        FilledValue {
            key: &other,
            lease: granted(&read),
            value: &big,
            ttl: None,
        },
    ];
    let too_large = mc.store_filled_many(&entries).await;
    assert!(
        matches!(too_large, Err(Error::ValueTooLarge { .. })),
        "{too_large:?}"
    );
    assert!(mc
        .store_filled(&good, granted(&read), b"v", None)
        .await
        .unwrap());
    for bad in [
        mc.get_many(&[&good, "a\nb"]).await.map(drop),
        mc.delete_many(&[&good, "a b"]).await.map(drop),
    ] {
        assert!(matches!(bad, Err(Error::InvalidKey { .. })), "{bad:?}");
    }
    assert_eq!(mc.get(&good).await.unwrap().as_deref(), Some(&b"v"[..]));
}
