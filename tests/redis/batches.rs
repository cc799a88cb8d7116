//! Batches on Redis: each key as its single-key operation would leave it,
//! one request per server, scripts reloaded after `SCRIPT FLUSH`, and no
//! fill lease left out by a batch read that failed or was given up on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::backend::redis::{deadpool_redis, fill_lease_key, redis, RedisBackend, RedisOptions};
use stampede::backend::{Backend, FillLease, FilledValue, LeaseToken};
use tokio::sync::Notify;

use super::abandoned::until_gone;
use super::common::servers::{self, Server};
use super::surface::{backend, granted, prefix, raw_get};
use super::wire::{commands_until_now, monitor};
use super::{raw, shared_url, LONG_LEASE};

fn backend_on(server: &Server, timeout: Duration) -> RedisBackend {
    let config = deadpool_redis::Config::from_url(server.url());
    RedisBackend::new(config, RedisOptions::default().timeout(timeout)).unwrap()
}

/// The lease in a read that must have been granted one.
fn lease_of(key: &str, lease: &FillLease) -> LeaseToken {
    match lease {
        FillLease::Granted(lease) => lease.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_key_order_and_act_on_each_key_as_alone() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let base = prefix("batches");
    let [a, b, c, missing] = ["a", "b", "c", "missing"].map(|k| format!("{base}{k}"));
    let entries = [(&a[..], &b"1"[..]), (&b, b""), (&c, b"3")];
    backend
        .set_many(&entries, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&b)
        .query_async(&mut other)
        .await
        .unwrap();
    assert!((50_000..=60_000).contains(&ttl), "PTTL {ttl}");
    // Enveloped as `set` writes it: a fresh nonce per entry.
    let stored = raw_get(&mut other, a.as_bytes()).await.unwrap();
    assert_eq!(
        (&stored[..6], &stored[14..]),
        (&b"\x00stmp\x01"[..], &b"1"[..])
    );

    let got = backend.get_many(&[&c, &missing, &a, &b, &a]).await.unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(Option::as_deref).collect();
    assert_eq!(
        got,
        [Some(&b"3"[..]), None, Some(b"1"), Some(b""), Some(b"1")]
    );

    // A fill lease on a missing key is voided by delete_many, and its end
    // published, as `delete` does.
    let lease = granted(&backend, &missing).await;
    let watcher = self::backend();
    let notify = Arc::new(Notify::new());
    let _watch = watcher
        .watch_fills(&missing, Arc::clone(&notify))
        .await
        .unwrap();
    let woken = notify.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let removed = backend.delete_many(&[&a, &missing, &c, &a]).await.unwrap();
    assert_eq!(removed, 2, "a and c were there, once each");
    tokio::time::timeout(Duration::from_secs(2), woken)
        .await
        .expect("the voided lease's end was published");
    assert!(!backend
        .store_filled(&missing, &lease, b"x", None)
        .await
        .unwrap());
    let got = backend.get_many(&[&a, &b, &c]).await.unwrap();
    assert_eq!(got, [None, Some(bytes::Bytes::new()), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_fill_reads_and_stores_follow_each_keys_lease() {
    let (backend, other) = (backend(), self::backend());
    let base = prefix("fill-batches");
    let [cold, fresh, busy, voided] =
        ["cold", "fresh", "busy", "voided"].map(|k| format!("{base}{k}"));
    backend.set(&fresh, b"here", None).await.unwrap();
    let _held = granted(&other, &busy).await;
    let keys = [&cold[..], &fresh, &busy, &voided];
    let reads = backend.read_for_fill_many(&keys, LONG_LEASE).await.unwrap();
    assert_eq!(reads[1].lease, FillLease::NotNeeded);
    assert_eq!(reads[1].value.as_ref().unwrap().0.as_ref(), b"here");
    assert_eq!(reads[2].lease, FillLease::Busy);
    let cold_lease = lease_of(&cold, &reads[0].lease);
    let voided_lease = lease_of(&voided, &reads[3].lease);
    backend
        .set(&voided, b"written meanwhile", None)
        .await
        .unwrap();

    let foreign = LeaseToken::from_version(7);
    let ttl = Some(Duration::from_secs(60));
    let entry = |key, lease, value| FilledValue {
        key,
        lease,
        value,
        ttl,
    };
    let entries = [
        entry(&voided, &voided_lease, &b"late"[..]),
        entry(&cold, &cold_lease, b"filled"),
        entry(&busy, &foreign, b"not ours"),
    ];
    let stored = backend.store_filled_many(&entries).await.unwrap();
    assert_eq!(stored, [false, true, false]);
    let got = backend.get_many(&[&cold, &voided, &busy]).await.unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(Option::as_deref).collect();
    assert_eq!(
        got,
        [Some(&b"filled"[..]), Some(b"written meanwhile"), None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_is_one_command_kind_and_survives_a_script_flush() {
    let server = Server::start(servers::REDIS);
    let backend = backend_on(&server, LONG_LEASE);
    let mut admin = raw(&server.url()).await;
    let keys = ["a", "b", "c"];
    // Connected, then the script cache emptied: pipelined EVALSHAs fail
    // with NOSCRIPT and must be sent again.
    backend.get("warm").await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut monitor = monitor(&server.url()).await;

    let reads = backend.read_for_fill_many(&keys, LONG_LEASE).await.unwrap();
    let leases: Vec<LeaseToken> = keys
        .iter()
        .zip(&reads)
        .map(|(k, r)| lease_of(k, &r.lease))
        .collect();
    let entries: Vec<FilledValue<'_>> = keys
        .iter()
        .zip(&leases)
        .map(|(key, lease)| FilledValue {
            key,
            lease,
            value: b"v",
            ttl: None,
        })
        .collect();
    assert_eq!(
        backend.store_filled_many(&entries).await.unwrap(),
        [true; 3]
    );
    let fills = commands_until_now(&mut admin, &mut monitor, "end-of-fills").await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    commands_until_now(&mut admin, &mut monitor, "flushed").await;
    assert_eq!(backend.delete_many(&keys).await.unwrap(), 3);
    let deletes = commands_until_now(&mut admin, &mut monitor, "end-of-deletes").await;
    backend
        .set_many(&[("a", &b"1"[..]), ("b", b"2")], None)
        .await
        .unwrap();
    let got = backend.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(got.iter().flatten().count(), 2);
    let plain = commands_until_now(&mut admin, &mut monitor, "end-of-plain").await;

    let count = |commands: &[String], name: &str| commands.iter().filter(|c| *c == name).count();
    // Per batch: 3 EVALSHA refused, the first sent again alone and its
    // script loaded (EVALSHA, SCRIPT LOAD, EVALSHA), the other 2 sent again.
    for (what, commands, batches) in [("fills", &fills, 2), ("deletes", &deletes, 1)] {
        assert_eq!(count(commands, "SCRIPT"), batches, "{what}: {commands:?}");
        assert!(
            count(commands, "EVALSHA") >= 3 * batches,
            "{what}: {commands:?}"
        );
        assert!(
            commands.iter().all(|c| c == "EVALSHA" || c == "SCRIPT"),
            "{what}: {commands:?}"
        );
    }
    assert_eq!(plain, ["SET", "SET", "MGET"], "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fill_read_given_up_on_gives_every_lease_back() {
    let server = Server::start(servers::REDIS);
    let timeout = Duration::from_millis(300);
    let (timing_out, cancelled) = (
        backend_on(&server, timeout),
        backend_on(&server, LONG_LEASE),
    );
    let mut admin = raw(&server.url()).await;
    for backend in [&timing_out, &cancelled] {
        // Connected, and the lease scripts loaded.
        let warm = backend
            .read_for_fill_many(&["warm"], LONG_LEASE)
            .await
            .unwrap();
        let lease = lease_of("warm", &warm[0].lease);
        assert!(backend.release_fill("warm", &lease).await.unwrap());
    }

    server.pause();
    let error = timing_out
        .read_for_fill_many(&["t1", "t2"], LONG_LEASE)
        .await;
    assert!(error.unwrap_err().is_timeout());
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        cancelled.read_for_fill_many(&["c1", "c2", "c3"], LONG_LEASE),
    )
    .await;
    assert!(gave_up.is_err(), "answered by a frozen server: {gave_up:?}");
    server.resume();
    let resumed = Instant::now();

    let keys = ["t1", "t2", "c1", "c2", "c3"];
    let records: Vec<Vec<u8>> = keys.iter().map(|key| fill_lease_key(key)).collect();
    until_gone(&mut admin, &records, resumed).await;
    let other = backend_on(&server, LONG_LEASE);
    for read in other.read_for_fill_many(&keys, LONG_LEASE).await.unwrap() {
        assert!(matches!(read.lease, FillLease::Granted(_)), "{read:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fill_read_that_fails_gives_back_the_leases_it_got() {
    let (backend, mut admin) = (backend(), raw(&shared_url()).await);
    let base = prefix("failed-batch");
    let [a, hash, b] = ["a", "hash", "b"].map(|k| format!("{base}{k}"));
    // Not a string: fill_read.lua's GET fails on this key alone.
    let () = redis::cmd("HSET")
        .arg(&hash)
        .arg("f")
        .arg("v")
        .query_async(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    let error = backend
        .read_for_fill_many(&[&a, &hash, &b], LONG_LEASE)
        .await;
    assert!(error.unwrap_err().is_backend());
    // Granted to nobody who could use them: given back at once, far
    // sooner than the lease would run out.
    until_gone(
        &mut admin,
        &[fill_lease_key(&a), fill_lease_key(&b)],
        started,
    )
    .await;
    assert!(started.elapsed() < LONG_LEASE / 2);
}
