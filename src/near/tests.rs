//! The tier on its own: the read-vs-invalidate race injected at the exact
//! point, versions, own writes, flushes, the feed's health, bytes.

use std::time::Duration;

use bytes::Bytes;

use super::tier::{Found, Mode, Tier};
use super::NearCache;
use crate::backend::CasToken;

fn tier(mode: Mode) -> Tier {
    Tier::new(NearCache::max_capacity(1 << 20), mode)
}

fn served(tier: &Tier, key: &str) -> Option<Bytes> {
    match tier.lookup(key) {
        Found::Serve(entry) => Some(entry.value.clone()),
        _ => None,
    }
}

fn v(n: u64) -> CasToken {
    CasToken::from_version(n)
}

#[test]
fn an_invalidation_between_the_read_and_the_insert_wins() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    // A read takes its ticket, then (while it waits on the backend) the
    // key is invalidated; what it read must not land.
    let ticket = tier.ticket("k");
    tier.invalidate("k", Some(&v(2)));
    assert!(!tier.offer("k", ticket, Bytes::from_static(b"old"), v(1), None));
    assert_eq!(served(&tier, "k"), None);
    // A read that starts after the invalidation lands.
    let ticket = tier.ticket("k");
    assert!(tier.offer("k", ticket, Bytes::from_static(b"new"), v(2), None));
    assert_eq!(served(&tier, "k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_read_that_found_the_announced_write_keeps_its_copy() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    // The read found v2, whose announcement arrived while it was on its
    // way back: the copy is current.
    let ticket = tier.ticket("k");
    tier.invalidate("k", Some(&v(2)));
    assert!(tier.offer("k", ticket, Bytes::from_static(b"v2"), v(2), None));
    // Two announcements since the ticket: the last may be newer.
    let ticket = tier.ticket("j");
    tier.invalidate("j", Some(&v(2)));
    tier.invalidate("j", Some(&v(3)));
    assert!(!tier.offer("j", ticket, Bytes::from_static(b"v3"), v(3), None));
    // A removal announces no version: nothing read before it is kept.
    let ticket = tier.ticket("r");
    tier.invalidate("r", None);
    assert!(!tier.offer("r", ticket, Bytes::from_static(b"x"), v(5), None));
}

#[test]
fn an_invalidation_after_the_insert_removes_the_copy_unless_it_is_that_write() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    let ticket = tier.ticket("k");
    assert!(tier.offer("k", ticket, Bytes::from_static(b"v2"), v(2), None));
    // The change this copy already is (read after the write, before its
    // announcement arrived): it stays.
    tier.invalidate("k", Some(&v(2)));
    assert_eq!(served(&tier, "k").as_deref(), Some(&b"v2"[..]));
    // Any other version, or a removal, takes it.
    tier.invalidate("k", Some(&v(3)));
    assert_eq!(served(&tier, "k"), None);
    let ticket = tier.ticket("k");
    assert!(tier.offer("k", ticket, Bytes::from_static(b"v3"), v(3), None));
    tier.invalidate("k", None);
    assert_eq!(served(&tier, "k"), None);
}

#[test]
fn a_read_under_way_does_not_land_over_this_process_s_write() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    let read = tier.ticket("k");
    let write = tier.ticket("k");
    tier.wrote("k", write, Some((Bytes::from_static(b"written"), None)));
    assert!(!tier.offer("k", read, Bytes::from_static(b"read before"), v(1), None));
    assert_eq!(served(&tier, "k").as_deref(), Some(&b"written"[..]));
    // A write that saw an invalidation since its ticket keeps no copy: the
    // other change may be the newer one.
    let write = tier.ticket("k");
    tier.invalidate("k", Some(&v(9)));
    tier.wrote("k", write, Some((Bytes::from_static(b"mine"), None)));
    assert_eq!(served(&tier, "k"), None);
}

#[test]
fn a_flush_beats_an_offer_that_checked_before_it() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    let ticket = tier.ticket("a");
    assert!(tier.offer("a", ticket, Bytes::from_static(b"1"), v(1), None));
    let before = tier.ticket("b");
    tier.flush();
    assert_eq!(served(&tier, "a"), None);
    assert!(!tier.offer("b", before, Bytes::from_static(b"1"), v(1), None));
    assert_eq!(served(&tier, "b"), None);
}

#[test]
fn stripe_mates_never_get_a_stale_copy_only_fewer_copies() {
    let tier = tier(Mode::Push);
    tier.feed_link(true);
    // Whatever stripe "x" shares with others, invalidating them can only
    // drop x's offer, never let a stale one in.
    let ticket = tier.ticket("x");
    for other in 0..10_000 {
        tier.invalidate(&format!("other{other}"), None);
    }
    let landed = tier.offer("x", ticket, Bytes::from_static(b"1"), v(1), None);
    assert_eq!(served(&tier, "x").is_some(), landed);
}

#[test]
fn without_its_feed_a_push_tier_serves_a_copy_for_max_unverified_only() {
    let config = NearCache::max_capacity(1 << 20).max_unverified(Duration::from_millis(50));
    let tier = Tier::new(config, Mode::Push);
    tier.feed_link(true);
    let ticket = tier.ticket("k");
    assert!(tier.offer("k", ticket, Bytes::from_static(b"1"), v(1), None));
    tier.feed_link(false);
    assert!(served(&tier, "k").is_some(), "just verified");
    std::thread::sleep(Duration::from_millis(80));
    assert!(
        served(&tier, "k").is_none(),
        "unverified for longer than max_unverified"
    );
    tier.feed_link(true);
    assert!(
        served(&tier, "k").is_some(),
        "the feed caught up: current again"
    );
}

#[test]
fn a_revalidating_tier_asks_after_its_trust_window() {
    let config = NearCache::max_capacity(1 << 20).trust(Duration::from_millis(40));
    let tier = Tier::new(config, Mode::Revalidate);
    let ticket = tier.ticket("k");
    assert!(tier.offer("k", ticket, Bytes::from_static(b"1"), v(1), None));
    assert!(matches!(tier.lookup("k"), Found::Serve(_)));
    std::thread::sleep(Duration::from_millis(60));
    match tier.lookup("k") {
        Found::Check(entry) => assert_eq!(entry.version, Some(v(1))),
        other => panic!("expected a check, got {other:?}"),
    }
}

#[test]
fn copies_are_bounded_by_bytes() {
    let tier = Tier::new(NearCache::max_capacity(64 * 1024), Mode::Push);
    tier.feed_link(true);
    let value = Bytes::from(vec![7u8; 1024]);
    for i in 0..1_000 {
        let key = format!("k{i}");
        let ticket = tier.ticket(&key);
        tier.offer(&key, ticket, value.clone(), v(i), None);
    }
    let (entries, bytes) = tier.size();
    assert!(bytes <= 64 * 1024, "{bytes} bytes held");
    assert!(entries < 1_000 && entries > 0, "{entries} entries");
}

#[test]
fn a_zero_ttl_keeps_no_copy() {
    let tier = tier(Mode::Push);
    let ticket = tier.ticket("k");
    assert!(!tier.offer("k", ticket, Bytes::new(), v(1), Some(Duration::ZERO)));
}
