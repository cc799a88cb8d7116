//! `clear` on Redis: every key under a prefix, with its companions. The
//! body of `clear` is in [`backend`](super::backend); the walk is here.
//!
//! An empty prefix is `FLUSHDB` (on every master, on a cluster). Otherwise
//! `SCAN` walks the server's keyspace (every master's at once, on a
//! cluster), 1000 keys a step and never with `KEYS`, twice:
//!
//! 1. `MATCH <prefix>*`, with the glob characters of the prefix escaped
//!    (`*?[]\`, so that clearing `a*:` leaves `ab:x`): the values and lock
//!    records under the prefix;
//! 2. `MATCH \xFF?:*<prefix>*`: companion names that contain the prefix,
//!    kept only if the key they belong to starts with it
//!    ([`companion_owner`]). This finds fill leases and fence counters
//!    whose key is gone too (a cold fill's lease; a fence counter, which
//!    outlives its lock by an hour).
//!
//! Each step's keys are removed at once with `UNLINK` (one per slot, on a
//! cluster). A fill lease removed is published as ended, as `delete`
//! publishes, so that other processes' fill waiters look again at once.
//!
//! A clear is not atomic: a key written under the prefix while it runs may
//! survive it (`SCAN` promises only the keys present from its start to its
//! end), and a failover during a cluster clear may leave keys of the
//! moved slots behind. Clearing again removes them.

use std::collections::BTreeMap;

use super::conn::{Request, KIND};
use super::naming::{self, companion_owner};
use super::{redis, RedisBackend};
use crate::{Error, Result};

pub(super) const OPERATION: &str = "clear";
/// How many keys each `SCAN` step looks at.
const SCAN_COUNT: usize = 1000;

/// `SCAN`s the master of `slot` (on one server, the server) for
/// `pattern`, and unlinks what it finds under `prefix`, step by step.
pub(super) async fn clear_matching(
    backend: &RedisBackend,
    slot: u16,
    pattern: &[u8],
    prefix: &str,
) -> Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, names): (u64, Vec<Vec<u8>>) = backend
            .query_resendable(OPERATION, Request::OnNode(&scan, slot))
            .await?;
        let names: Vec<Vec<u8>> = names
            .into_iter()
            .filter(|name| under(name, prefix.as_bytes()))
            .collect();
        if !names.is_empty() {
            unlink(backend, &names).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `UNLINK`s `names`, one pipeline per group, publishing the end of
/// every fill lease among them.
async fn unlink(backend: &RedisBackend, names: &[Vec<u8>]) -> Result<()> {
    let groups = backend.conns.groups(names);
    backend
        .conns
        .per_group(OPERATION, &groups, |group| async move {
            let mut pipeline = redis::pipe();
            pipeline.cmd("UNLINK");
            for &at in group {
                pipeline.arg(&names[at]);
            }
            pipeline.ignore();
            for &at in group {
                let Some(owner) = fill_lease_owner(&names[at]) else {
                    continue;
                };
                pipeline
                    .cmd(backend.publish_command())
                    .arg(naming::release_channel(owner))
                    .arg(owner)
                    .ignore();
            }
            // Unlinking twice removes nothing more: resent if the
            // connection was lost.
            let request = Request::Pipeline(&pipeline);
            let _: redis::Value = backend.query_resendable(OPERATION, request).await?;
            Ok(vec![(); group.len()])
        })
        .await?;
    Ok(())
}

/// A slot of each master, to send `SCAN` to; on one server, any slot.
pub(super) async fn masters(backend: &RedisBackend) -> Result<Vec<u16>> {
    if !backend.is_cluster() {
        return Ok(vec![0]);
    }
    let ranges: Vec<Vec<redis::Value>> = backend
        .query_resendable(OPERATION, Request::Cmd(redis::cmd("CLUSTER").arg("SLOTS")))
        .await?;
    let mut first_slots: BTreeMap<(Vec<u8>, u16), u16> = BTreeMap::new();
    for range in ranges {
        let (start, master) = slot_range(range).ok_or_else(|| {
            Error::backend(
                KIND,
                OPERATION,
                "CLUSTER SLOTS answered in an unknown shape",
            )
        })?;
        let first = first_slots.entry(master).or_insert(start);
        *first = start.min(*first);
    }
    Ok(first_slots.into_values().collect())
}

/// One `CLUSTER SLOTS` entry, `[start, end, [host, port, …], replicas…]`,
/// as its first slot and its master's address.
fn slot_range(range: Vec<redis::Value>) -> Option<(u16, (Vec<u8>, u16))> {
    let mut fields = range.into_iter();
    let start: u16 = redis::from_redis_value(fields.next()?).ok()?;
    let master: Vec<redis::Value> = redis::from_redis_value(fields.nth(1)?).ok()?;
    let mut master = master.into_iter();
    let host: Vec<u8> = redis::from_redis_value(master.next()?).ok()?;
    let port: u16 = redis::from_redis_value(master.next()?).ok()?;
    Some((start, (host, port)))
}

/// Whether `name` is a key under `prefix` or a companion of one.
fn under(name: &[u8], prefix: &[u8]) -> bool {
    name.starts_with(prefix)
        || companion_owner(name).is_some_and(|(owner, _)| owner.starts_with(prefix))
}

/// The key whose fill lease record `name` is, if it is one.
fn fill_lease_owner(name: &[u8]) -> Option<&str> {
    match companion_owner(name)? {
        (owner, true) => std::str::from_utf8(owner).ok(),
        (_, false) => None,
    }
}

/// `text` with every glob character escaped, for `SCAN … MATCH`.
pub(super) fn glob_escape(text: &str) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(text.len() + 4);
    for byte in text.bytes() {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            escaped.push(b'\\');
        }
        escaped.push(byte);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("app:"), b"app:");
        assert_eq!(glob_escape(r"a*?[x]\:"), br"a\*\?\[x\]\\:");
    }

    #[test]
    fn companions_count_as_under_their_keys_prefix() {
        let prefix = b"app:";
        assert!(under(b"app:x", prefix));
        assert!(under(&naming::fill_lease_key("app:x"), prefix));
        assert!(under(&naming::fence_key("app:{t}x-lock"), prefix));
        assert!(under(&naming::fill_lease_key("app:a}b"), prefix));
        // Names that merely contain the prefix.
        assert!(!under(b"other:app:x", prefix));
        assert!(!under(&naming::fill_lease_key("other:app:x"), prefix));
        assert!(!under(&naming::fill_lease_key("x}app:a"), prefix));
        assert_eq!(
            fill_lease_owner(&naming::fill_lease_key("app:x")),
            Some("app:x")
        );
        assert_eq!(fill_lease_owner(&naming::fence_key("app:x")), None);
    }
}
