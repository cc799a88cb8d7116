//! The everyday surface on a real cluster, with keys on every master:
//! batches split by slot and put back in key order, counters and `touch`
//! on each master, and `clear` scanning every master.

use std::collections::HashSet;
use std::time::Duration;

use stampede::backend::redis::{fence_key, fill_lease_key, redis};
use stampede::backend::{Backend, Fencing, FillLease, FilledValue, LockAttempt};

use super::common::topology::shared_cluster;
use super::scripts::{cluster_backend, keys};

const LEASE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_span_every_master_in_key_order() {
    let backend = cluster_backend();
    let keys = keys("batch");
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values: Vec<String> = (0..keys.len()).map(|i| format!("v{i}")).collect();
    // Every other key, so that hits and misses interleave on each master.
    let entries: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&values)
        .step_by(2)
        .map(|(key, value)| (*key, value.as_bytes()))
        .collect();
    backend.set_many(&entries, None).await.unwrap();
    let backwards: Vec<&str> = keys.iter().rev().copied().collect();
    let got = backend.get_many(&backwards).await.unwrap();
    for (at, (key, got)) in backwards.iter().zip(&got).enumerate() {
        let original = keys.len() - 1 - at;
        let expected = (original % 2 == 0).then(|| values[original].as_bytes());
        assert_eq!(got.as_deref(), expected, "{key}");
    }
    assert_eq!(backend.delete_many(&keys).await.unwrap(), entries.len());
    let got = backend.get_many(&keys).await.unwrap();
    assert!(got.iter().all(Option::is_none), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_fill_leases_on_every_master() {
    let backend = cluster_backend();
    let keys = keys("fill-batch");
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let reads = backend.read_for_fill_many(&keys, LEASE).await.unwrap();
    let leases: Vec<_> = keys
        .iter()
        .zip(reads)
        .map(|(key, read)| match read.lease {
            FillLease::Granted(lease) => lease,
            other => panic!("{key}: {other:?}"),
        })
        .collect();
    let again = backend.read_for_fill_many(&keys, LEASE).await.unwrap();
    assert!(again.iter().all(|read| read.lease == FillLease::Busy));
    let entries: Vec<FilledValue<'_>> = keys
        .iter()
        .zip(&leases)
        .map(|(key, lease)| FilledValue {
            key,
            lease,
            value: key.as_bytes(),
            ttl: None,
        })
        .collect();
    let stored = backend.store_filled_many(&entries).await.unwrap();
    assert!(stored.iter().all(|stored| *stored), "{stored:?}");
    let got = backend.get_many(&keys).await.unwrap();
    for (key, got) in keys.iter().zip(got) {
        assert_eq!(got.as_deref(), Some(key.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_exists_and_touch_on_every_master() {
    let backend = cluster_backend();
    for key in keys("counter") {
        assert!(!backend.exists(&key).await.unwrap(), "{key}");
        assert!(!backend.touch(&key, LEASE).await.unwrap(), "{key}");
        assert_eq!(backend.increment(&key, 2).await.unwrap(), 2, "{key}");
        backend.set(&key, b"40", None).await.unwrap();
        assert_eq!(backend.increment(&key, 2).await.unwrap(), 42, "{key}");
        assert!(backend.exists(&key).await.unwrap(), "{key}");
        assert!(backend.touch(&key, LEASE).await.unwrap(), "{key}");
    }
}

/// A plain cluster connection, as another program would have.
async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    let url = shared_cluster().url();
    let seeds: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|host| format!("redis://{host}"))
        .collect();
    let client = redis::cluster::ClusterClient::new(seeds).unwrap();
    client.get_async_connection().await.unwrap()
}

/// Which of `names` exist, each asked of the master that serves it.
async fn existing(
    conn: &mut redis::cluster_async::ClusterConnection,
    names: &[Vec<u8>],
) -> Vec<bool> {
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        found.push(
            redis::cmd("EXISTS")
                .arg(name)
                .query_async(conn)
                .await
                .unwrap(),
        );
    }
    found
}

/// `count` keys under `prefix`, of every companion shape: no tag, a hash
/// tag, a stray brace.
fn keys_under(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 3 {
            0 => format!("{prefix}{i}"),
            1 => format!("{prefix}{{t{i}}}"),
            _ => format!("{prefix}a}}{i}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_scans_every_master() {
    let (backend, mut other) = (cluster_backend(), raw_cluster().await);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (inside, outside) = (format!("{id}in:"), format!("{id}out:"));
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cleared: Vec<bool> = Vec::new();
    for (prefix, goes) in [(&inside, true), (&outside, false)] {
        let keys = keys_under(prefix, 12);
        let masters: HashSet<u16> = keys
            .iter()
            .map(|key| shared_cluster().master_for_key(key.as_bytes()))
            .collect();
        assert_eq!(masters.len(), 3, "the keys should cover every master");
        for key in &keys {
            backend.set(key, b"v", None).await.unwrap();
            let lock = format!("{key}-lock");
            let attempt = backend.try_lock(&lock, b"me", LEASE, Fencing::Issue);
            assert!(matches!(
                attempt.await.unwrap(),
                LockAttempt::Acquired { .. }
            ));
            let cold = format!("{key}-cold");
            let read = backend.read_for_fill(&cold, LEASE).await.unwrap();
            assert!(matches!(read.lease, FillLease::Granted(_)), "{cold}");
            names.extend([key.clone().into_bytes(), lock.clone().into_bytes()]);
            names.extend([fence_key(&lock), fill_lease_key(&cold)]);
            cleared.extend([goes; 4]);
        }
    }
    assert!(existing(&mut other, &names)
        .await
        .iter()
        .all(|found| *found));
    backend.clear(&inside).await.unwrap();
    let found = existing(&mut other, &names).await;
    for ((name, found), cleared) in names.iter().zip(found).zip(cleared) {
        assert_eq!(found, !cleared, "{}", String::from_utf8_lossy(name));
    }
    backend.clear(&outside).await.unwrap();
    let found = existing(&mut other, &names).await;
    assert!(found.iter().all(|found| !found), "{found:?}");
}
