//! The attribute row: a `#[cached]` hit against the same `get_or_fill`
//! call written by hand, on every backend (issue 14's target: ≤ 1.05×).

use std::sync::Arc;
use std::time::Duration;

use stampede::{cached, Cache, Error, Fill};

use crate::batches::{interleaved, On};
use crate::knobs::Knobs;
use crate::pairs::{contender, Contender};

/// The target: a hit through the attribute costs at most this many times
/// the hand-written call.
pub const TARGET: f64 = 1.05;

/// The value both return: a small record, as a typical cached lookup.
type Record = Vec<u64>;

fn record(id: u64) -> Record {
    vec![id; 8]
}

#[cached(cache = cache, key = "record:{id}", ttl = "10m", lease = "10s")]
async fn by_attribute(cache: &Cache, id: u64) -> Result<Record, Error> {
    Ok(record(id))
}

/// What `#[cached]` stands for, written by hand.
async fn by_hand(cache: &Cache, id: u64) -> Result<Record, Error> {
    let key = format!("record:{id}");
    let fill = Fill::ttl(Duration::from_secs(600)).lease(Duration::from_secs(10));
    cache
        .get_or_fill(&key, fill, move || async move { Ok(record(id)) })
        .await
}

/// One backend's attribute row, in µs per hit.
#[derive(Clone, Debug)]
pub struct AttributeRow {
    pub backend: &'static str,
    pub attribute: f64,
    pub by_hand: f64,
}

/// Warms the key, then times both, taking turns.
pub async fn row(on: &On, knobs: &Knobs) -> AttributeRow {
    let cache = Arc::new(on.cache.with_namespace("attribute"));
    assert_eq!(by_attribute(&cache, 1).await.expect("fill"), record(1));
    let attribute = hits(&cache, true);
    let hand = hits(&cache, false);
    // Both make the same calls, so what separates them is the expansion,
    // and a round trip drifts by more than the 5% the target allows: many
    // short rounds, taking turns, so that drift hits both alike.
    let n = match on.backend {
        "memory" => knobs.scaled(4_000),
        _ => knobs.scaled(200),
    };
    let rounds = knobs.rounds * 8;
    let [attribute, by_hand] = interleaved(&[(&attribute, n), (&hand, n)], rounds).await;
    AttributeRow {
        backend: on.backend,
        attribute,
        by_hand,
    }
}

fn hits(cache: &Arc<Cache>, attribute: bool) -> Contender {
    let cache = Arc::clone(cache);
    contender(move |_, _| {
        let cache = Arc::clone(&cache);
        async move {
            let got = if attribute {
                by_attribute(&cache, 1).await
            } else {
                by_hand(&cache, 1).await
            };
            assert_eq!(got.expect("hit"), record(1));
        }
    })
}
