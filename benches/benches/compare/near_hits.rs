//! A near cache's hit against its floor: a Redis-backed cache with a near
//! cache, every key already copied, read with `get_shared::<Record>` (the
//! decoded value, shared) against a moka `get` of the same `Arc<Record>` by
//! hand, and with `get` (the stored bytes) against a moka `get` of the same
//! `Bytes` (`moka::sync`, foldhash).
//!
//! The rows check themselves: the near cache's counters must show every
//! measured call answered from a copy (no backend read, no miss), and
//! [`decodes`] must not move while they run: a `get_shared` hit hands out
//! the value decoded when the copy was first read, it does not decode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::sync::Cache as Moka;
use serde::{Deserialize, Deserializer};
use stampede::Cache;

use crate::pairs::{contender, keys, Spec};

/// How many [`Record`]s were decoded in this process so far.
pub fn decodes() -> u64 {
    DECODES.load(Ordering::Relaxed)
}

static DECODES: AtomicU64 = AtomicU64::new(0);

/// `id`'s decoder, counting: every decode of a [`Record`] passes here once.
fn counted<'de, D: Deserializer<'de>>(decoder: D) -> Result<u64, D::Error> {
    DECODES.fetch_add(1, Ordering::Relaxed);
    u64::deserialize(decoder)
}

/// The values' TTL: longer than any run.
const TTL: Duration = Duration::from_secs(600);

/// The record the rows read: a small struct, as a typical cached lookup.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    #[serde(deserialize_with = "counted")]
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
}

pub fn record() -> Record {
    Record {
        id: 42,
        name: "quarterly report".to_owned(),
        tags: vec!["finance".to_owned(), "q3".to_owned(), "draft".to_owned()],
    }
}

/// A moka table as a hand-written in-process cache would be: sync, hashed
/// with foldhash, bounded like the near cache.
fn moka<V: Clone + Send + Sync + 'static>() -> Moka<String, V, foldhash::fast::RandomState> {
    Moka::builder()
        .max_capacity(64 << 20)
        .build_with_hasher(foldhash::fast::RandomState::default())
}

/// The hit rows on `cache` (a near cache on Redis), on task-own keys
/// `<prefix>s<task>` (values written with `set_value`) and `<prefix>h<task>`
/// (bytes written with `set`), written by `writer` (another node) and read
/// by `cache`, so that each is a copy of a write read from the server.
pub(crate) async fn specs(cache: &Cache, writer: &Cache, prefix: &str, tasks: usize) -> Vec<Spec> {
    let shared_keys = keys(&format!("{prefix}s"), tasks);
    let hit_keys = keys(&format!("{prefix}h"), tasks);
    let value = serde_json::to_vec(&record()).expect("encode");
    for (shared, hit) in shared_keys.iter().zip(hit_keys.iter()) {
        writer
            .set_value(shared, &record(), Some(TTL))
            .await
            .expect("set_value");
        writer.set(hit, &value, Some(TTL)).await.expect("set");
    }
    // The reader's first read starts its invalidation feed; let it come
    // up, so that copies are served for as long as it stays up (not for
    // `max_unverified` only), then copy every key: a read that raced an
    // announcement may keep no copy, so read until each is a hit.
    let _ = cache.get(&hit_keys[0]).await.expect("get");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (shared, hit) in shared_keys.iter().zip(hit_keys.iter()) {
        for _ in 0..3 {
            let got = cache
                .get_shared::<Record>(shared)
                .await
                .expect("get_shared");
            assert_eq!(got.as_deref(), Some(&record()));
            assert_eq!(cache.get(hit).await.expect("get").expect("present"), value);
        }
    }
    vec![
        shared_spec(cache, &shared_keys),
        bytes_spec(cache, &hit_keys, value),
    ]
}

/// `get_shared::<Record>` against a moka get of the same `Arc<Record>`.
fn shared_spec(cache: &Cache, shared_keys: &Arc<Vec<String>>) -> Spec {
    let floor = moka::<Arc<Record>>();
    let value = Arc::new(record());
    for key in shared_keys.iter() {
        floor.insert(key.clone(), Arc::clone(&value));
    }
    let (cache, ours_keys, floor_keys) = (
        Arc::new(cache.clone()),
        shared_keys.clone(),
        shared_keys.clone(),
    );
    Spec {
        backend: "redis + near",
        workload: "near hit: get_shared::<T>",
        floor_does: "moka::sync get (foldhash) of an `Arc<T>`",
        ours: contender(move |task, _| {
            let (cache, keys) = (Arc::clone(&cache), ours_keys.clone());
            async move {
                let got = cache
                    .get_shared::<Record>(&keys[task])
                    .await
                    .expect("get_shared")
                    .expect("a hit");
                assert_eq!(got.id, 42);
            }
        }),
        floor: contender(move |task, _| {
            let (floor, keys) = (floor.clone(), floor_keys.clone());
            async move {
                let got = floor.get(&keys[task]).expect("a hit");
                assert_eq!(got.id, 42);
            }
        }),
        peer: None,
    }
}

/// `get` against a moka get of the same `Bytes`.
fn bytes_spec(cache: &Cache, hit_keys: &Arc<Vec<String>>, value: Vec<u8>) -> Spec {
    let stored = Bytes::from(value);
    let floor = moka::<Bytes>();
    for key in hit_keys.iter() {
        floor.insert(key.clone(), stored.clone());
    }
    let (cache, ours_keys, floor_keys) =
        (Arc::new(cache.clone()), hit_keys.clone(), hit_keys.clone());
    let len = stored.len();
    Spec {
        backend: "redis + near",
        workload: "near hit: get (bytes)",
        floor_does: "moka::sync get (foldhash) of the same `Bytes`",
        ours: contender(move |task, _| {
            let (cache, keys) = (Arc::clone(&cache), ours_keys.clone());
            async move {
                let got = cache.get(&keys[task]).await.expect("get").expect("a hit");
                assert_eq!(got.len(), len);
            }
        }),
        floor: contender(move |task, _| {
            let (floor, keys) = (floor.clone(), floor_keys.clone());
            async move {
                let got = floor.get(&keys[task]).expect("a hit");
                assert_eq!(got.len(), len);
            }
        }),
        peer: None,
    }
}
