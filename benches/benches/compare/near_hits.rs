//! A near cache's hit against its floor: a Redis-backed cache with a near
//! cache, every key already copied, read with `get` (the stored bytes),
//! against a moka `get` of the same bytes by hand (`moka::sync`, foldhash).
//!
//! The rows check themselves: the near cache's counters must show every
//! measured call answered from a copy (no backend read, no miss).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::sync::Cache as Moka;
use stampede::Cache;

use crate::pairs::{contender, keys, Spec};

/// The values' TTL: longer than any run.
const TTL: Duration = Duration::from_secs(600);

/// The record the rows read: a small struct, as a typical cached lookup.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
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
/// `<prefix>h<task>` written by `writer` (another node) and read once by
/// `cache`, so that each is a copy of a write read from the server.
pub(crate) async fn specs(cache: &Cache, writer: &Cache, prefix: &str, tasks: usize) -> Vec<Spec> {
    let hit_keys = keys(&format!("{prefix}h"), tasks);
    let value = serde_json::to_vec(&record()).expect("encode");
    for key in hit_keys.iter() {
        writer.set(key, &value, Some(TTL)).await.expect("set");
        let read = cache.get(key).await.expect("get").expect("present");
        assert_eq!(read, value);
    }
    // Let the reader's invalidation feed come up, so that its copies are
    // served for as long as it stays up (not for `max_unverified` only).
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A read that raced the announcement of the write it read keeps no
    // copy (its key's generation moved under it): read again, now that
    // nothing is written, so that every key is copied before the rows.
    for key in hit_keys.iter() {
        assert!(cache.get(key).await.expect("get").is_some());
    }
    let stored = Bytes::from(value);
    let floor = moka::<Bytes>();
    for key in hit_keys.iter() {
        floor.insert(key.clone(), stored.clone());
    }
    let (cache, ours_keys) = (Arc::new(cache.clone()), hit_keys.clone());
    let len = stored.len();
    vec![Spec {
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
            let (floor, keys) = (floor.clone(), hit_keys.clone());
            async move {
                let got = floor.get(&keys[task]).expect("a hit");
                assert_eq!(got.len(), len);
            }
        }),
        peer: None,
    }]
}
