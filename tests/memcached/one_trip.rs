//! Release and extend in one round trip, with the CAS unique remembered
//! from the create: counted through a proxy, refused to stale holders,
//! still owner-checked in two trips when nothing is remembered, and the
//! memory of lost locks swept.

use std::time::{Duration, Instant};

use stampede::backend::memcached::MemcachedBackend;
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::{Cache, RedLock};

use super::proxy::CountRequests;
use super::{backend, servers_of, shared_url, unique};

const LONG: Duration = Duration::from_secs(30);
const ACQUIRED: LockAttempt = LockAttempt::Acquired { fence: None };

/// A proxy in front of the shared server, counting requests.
async fn counting_proxy() -> CountRequests {
    CountRequests::start(servers_of(&shared_url()).remove(0)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_extend_of_a_lock_taken_here_take_one_round_trip_each() {
    let proxy = counting_proxy().await;
    let url = format!(
        "memcached://{}?namespace={}",
        proxy.addr,
        unique("one-trip")
    );
    let cache = Cache::from_url(&url).await.unwrap();
    let _ = proxy.take();

    // An exclusive lease: fenced create, extended twice, released.
    let guard = RedLock::new(&cache, "job", LONG).lock().await.unwrap();
    assert_eq!(
        proxy.take(),
        ["ms", "ma"],
        "create, then the fencing counter"
    );
    assert!(guard.extend(LONG).await.unwrap());
    assert_eq!(proxy.take(), ["ms"], "extend");
    // The extend's answer carried the record's new CAS: the next one uses it.
    assert!(guard.extend(LONG).await.unwrap());
    assert_eq!(proxy.take(), ["ms"], "second extend");
    assert!(guard.release().await.unwrap());
    assert_eq!(proxy.take(), ["md"], "release");
    assert_eq!(cache.get("job-lock").await.unwrap(), None);
    let _ = proxy.take();

    // The stampede lock: unfenced create, released.
    let guard = RedLock::new(&cache, "fill", LONG).acquire().await.unwrap();
    assert!(guard.holds_lock());
    assert_eq!(proxy.take(), ["ms"], "create");
    assert!(guard.release().await.unwrap());
    assert_eq!(proxy.take(), ["md"], "release");
    assert_eq!(cache.get("fill-lock").await.unwrap(), None);
}

/// Polls until none of `keys` holds a record: memcached expired them.
async fn wait_until_expired(handle: &MemcachedBackend, keys: &[String]) {
    // A 200 ms lease is a 3 s record, and memcached's clock ticks once a
    // second.
    let deadline = Instant::now() + Duration::from_secs(6);
    for key in keys {
        while handle.lock_record(key).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{key} never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_cannot_release_or_extend_the_next_holders_record() {
    let proxy = counting_proxy().await;
    let stale = backend(&format!("memcached://{}", proxy.addr)).await;
    let next = backend(&shared_url()).await;
    let keys: Vec<String> = (0..4).map(|i| unique(&format!("stale-{i}"))).collect();
    let lease = Duration::from_millis(200);
    for key in &keys {
        let taken = stale.try_lock(key, b"a", lease, Fencing::Skip).await;
        assert_eq!(taken.unwrap(), ACQUIRED);
    }
    wait_until_expired(&next, &keys).await;

    // The next holders: two with other owner bytes, two with the same
    // ones, as a buggy owner scheme might produce. Only the CAS tells those
    // records from the stale holder's.
    let owners: [&[u8]; 4] = [b"b", b"a", b"b", b"a"];
    for (key, owner) in keys.iter().zip(owners) {
        let taken = next.try_lock(key, owner, LONG, Fencing::Skip).await;
        assert_eq!(taken.unwrap(), ACQUIRED);
    }
    let _ = proxy.take();

    for key in &keys[..2] {
        assert!(!stale.release(key, b"a").await.unwrap(), "{key}");
        assert_eq!(proxy.take(), ["md"], "{key}: refused by the CAS alone");
    }
    for key in &keys[2..] {
        assert!(!stale.extend(key, b"a", LONG).await.unwrap(), "{key}");
        assert_eq!(proxy.take(), ["ms"], "{key}: refused by the CAS alone");
    }
    assert_eq!(
        stale.remembered_lock_count(),
        0,
        "refused records are forgotten"
    );
    // Forgotten, so a second attempt takes the two-trip path, whose owner
    // check refuses it too.
    assert!(!stale.release(&keys[0], b"a").await.unwrap());
    assert!(!stale.extend(&keys[2], b"a", LONG).await.unwrap());
    assert_eq!(
        proxy.take(),
        ["mg", "mg"],
        "read, compared, nothing written"
    );

    // The next holders' records are untouched, and still theirs to release.
    for (key, owner) in keys.iter().zip(owners) {
        let record = next.lock_record(key).await.unwrap().expect("still held");
        assert_eq!(&record.owner[..], owner, "{key}");
        let remaining = record.remaining.expect("a lock record expires");
        assert!(remaining > Duration::from_secs(20), "{key}: {remaining:?}");
        assert!(next.release(key, owner).await.unwrap(), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_that_did_not_create_the_record_goes_through_the_owner_check() {
    let proxy = counting_proxy().await;
    let creator = backend(&shared_url()).await;
    // Another handle on the same server: another `Cache`, another process,
    // or this one after a restart. It remembers nothing.
    let other = backend(&format!("memcached://{}", proxy.addr)).await;
    let key = unique("fallback");
    let taken = creator.try_lock(&key, b"a", LONG, Fencing::Skip).await;
    assert_eq!(taken.unwrap(), ACQUIRED);
    let _ = proxy.take();

    // With other owner bytes it can neither release nor extend.
    assert!(!other.release(&key, b"b").await.unwrap());
    assert!(!other.extend(&key, b"b", LONG).await.unwrap());
    assert_eq!(
        proxy.take(),
        ["mg", "mg"],
        "read, compared, nothing written"
    );
    let record = creator.lock_record(&key).await.unwrap().expect("held");
    assert_eq!(&record.owner[..], b"a");

    // An owner whose CAS is not remembered still extends and releases, in
    // two round trips.
    assert!(other.extend(&key, b"a", LONG).await.unwrap());
    assert_eq!(
        proxy.take(),
        ["mg", "ms"],
        "extend without a remembered CAS"
    );
    assert!(other.release(&key, b"a").await.unwrap());
    assert_eq!(
        proxy.take(),
        ["mg", "md"],
        "release without a remembered CAS"
    );
    assert_eq!(creator.lock_record(&key).await.unwrap(), None);
    assert_eq!(other.remembered_lock_count(), 0);

    // The creator's remembered CAS went stale with the other handle's
    // rewrite: its release misses (the record is gone anyway) and it
    // forgets the entry.
    assert!(!creator.release(&key, b"a").await.unwrap());
    assert_eq!(creator.remembered_lock_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_that_ran_out_unreleased_are_swept_from_memory() {
    let proxy = counting_proxy().await;
    let handle = backend(&format!("memcached://{}", proxy.addr)).await;
    let prefix = unique("swept");
    let held = format!("{prefix}-held");
    let taken = handle.try_lock(&held, b"o", LONG, Fencing::Skip).await;
    assert_eq!(taken.unwrap(), ACQUIRED);

    // 800 locks taken and lost, in waves of 100 whose leases run out
    // before the next wave.
    let (waves, per_wave, lease) = (8, 100, Duration::from_millis(100));
    let mut most = 0;
    for wave in 0..waves {
        for i in 0..per_wave {
            let key = format!("{prefix}-{wave}-{i}");
            let taken = handle.try_lock(&key, b"o", lease, Fencing::Skip).await;
            assert_eq!(taken.unwrap(), ACQUIRED);
            most = most.max(handle.remembered_lock_count());
        }
        tokio::time::sleep(2 * lease).await;
    }
    // Swept down to about twice what was live at the last sweep: this
    // wave, plus the held lock.
    assert!(
        most <= 2 * (per_wave + 1),
        "{most} remembered out of {} taken",
        waves * per_wave + 1
    );

    // The held lock survived every sweep: still one round trip.
    let _ = proxy.take();
    assert!(handle.release(&held, b"o").await.unwrap());
    assert_eq!(proxy.take(), ["md"]);
}
