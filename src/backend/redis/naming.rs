//! Names of the keys and channels that go with a lock key, chosen so that
//! each hashes to the same Redis Cluster slot as the lock key itself.
//!
//! Cluster hashes a key on its *hash tag* when it has one: the part between
//! the first `{` and the first `}` after it, if that part is not empty;
//! otherwise on the whole key. A companion name (the fence counter, the
//! release channel) must land in the lock key's slot, so that a script may
//! touch both and a sharded `SPUBLISH` can reach the lock key's node:
//!
//! 1. The lock key has a hash tag: `<lock key><suffix>` keeps that tag.
//! 2. It has none and contains no `}`: `{<lock key>}<suffix>`, whose tag is
//!    the whole lock key, which is what the lock key hashes on.
//! 3. It has none but contains a `}` (say `a{}b-lock`): wrapping it in braces
//!    would end the tag early, so no name can carry the lock key as its tag.
//!    Then `{<n>}<lock key><suffix>`, where `<n>` is the smallest decimal
//!    number that hashes to the lock key's slot.

use std::sync::OnceLock;

/// Suffix of a lock key's fencing counter.
pub(super) const FENCE_SUFFIX: &str = ":fence";
/// Suffix of a lock key's release channel (and of a value key's channel
/// for the end of its fill leases).
pub(super) const RELEASED_SUFFIX: &str = ":released";
/// Suffix of a value key's fill lease record.
pub(super) const FILL_SUFFIX: &str = ":fill";

/// Number of slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// The key holding `lock_key`'s fencing counter.
pub(super) fn fence_key(lock_key: &str) -> String {
    companion(lock_key, FENCE_SUFFIX)
}

/// The channel on which releases of `lock_key` are published.
pub(super) fn release_channel(lock_key: &str) -> String {
    companion(lock_key, RELEASED_SUFFIX)
}

/// The record holding `value_key`'s fill lease, in its slot.
pub(super) fn fill_lease_key(value_key: &str) -> String {
    companion(value_key, FILL_SUFFIX)
}

/// `lock_key` with `suffix`, in the same cluster slot as `lock_key`.
fn companion(lock_key: &str, suffix: &str) -> String {
    if hash_tag(lock_key).is_some() {
        format!("{lock_key}{suffix}")
    } else if !lock_key.contains('}') {
        format!("{{{lock_key}}}{suffix}")
    } else {
        let tag = slot_tag(key_slot(lock_key));
        format!("{{{tag}}}{lock_key}{suffix}")
    }
}

/// The hash tag of `key`, per the cluster spec: the text between the first
/// `{` and the first `}` after it, when that text is not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let after = &key[open + 1..];
    let close = after.find('}')?;
    (close > 0).then(|| &after[..close])
}

/// The cluster slot of `key`: CRC16 of its hash tag (or of the whole key).
pub(super) fn key_slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16_xmodem(hashed.as_bytes()) % SLOTS
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis
/// Cluster uses it.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The smallest number whose decimal form hashes to `slot`. The table is
/// built on first use (a few milliseconds) and only for keys of shape 3.
fn slot_tag(slot: u16) -> u32 {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n: u32 = 0;
        while missing > 0 {
            let at = usize::from(crc16_xmodem(n.to_string().as_bytes()) % SLOTS);
            if tags[at] == u32::MAX {
                tags[at] = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    tags[usize::from(slot)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_spec() {
        // The check value given in the Redis Cluster specification.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        // Slots as reported by `CLUSTER KEYSLOT` on redis-server 7.0.
        for (key, slot) in [
            ("foo", 12182),
            ("user1000", 3443),
            ("{user1000}.following", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("a{}b-lock", 1110),
            ("app:report-lock", 3392),
            ("{app:report-lock}:fence", 3392),
        ] {
            assert_eq!(key_slot(key), slot, "{key:?}");
        }
    }

    #[test]
    fn hash_tags_follow_the_first_brace_rule() {
        assert_eq!(hash_tag("{user1000}.following"), Some("user1000"));
        assert_eq!(hash_tag("foo{bar}{zap}"), Some("bar"));
        assert_eq!(hash_tag("foo{{bar}}zap"), Some("{bar"));
        assert_eq!(hash_tag("foo{}{bar}"), None);
        assert_eq!(hash_tag("foo{bar"), None);
        assert_eq!(hash_tag("foo}bar{"), None);
        assert_eq!(hash_tag("plain-lock"), None);
    }

    /// Every shape of lock key, with the companion names it must produce.
    const CASES: &[(&str, &str)] = &[
        // Shape 1: a tag already; keep it.
        ("app:{user1}-lock", "app:{user1}-lock:fence"),
        ("{a}{b}-lock", "{a}{b}-lock:fence"),
        ("x{{y}}-lock", "x{{y}}-lock:fence"),
        // Shape 2: no tag and no `}`; the whole key becomes the tag.
        ("app:report-lock", "{app:report-lock}:fence"),
        ("a{b-lock", "{a{b-lock}:fence"),
        ("{-lock", "{{-lock}:fence"),
    ];

    #[test]
    fn companions_keep_the_lock_keys_slot() {
        for (lock_key, expected) in CASES {
            let fence = fence_key(lock_key);
            assert_eq!(&fence, expected, "fence key of {lock_key:?}");
            assert_eq!(key_slot(&fence), key_slot(lock_key), "{fence:?}");
            let channel = release_channel(lock_key);
            assert_eq!(key_slot(&channel), key_slot(lock_key), "{channel:?}");
        }
    }

    #[test]
    fn keys_with_a_closing_brace_and_no_tag_get_a_numeric_tag() {
        // `{}` is an empty tag, so these hash on the whole key, and wrapping
        // them in braces would end the tag at their own `}`.
        for lock_key in ["a{}b-lock", "{}-lock", "a}b-lock", "}{-lock", "x{}{y}-lock"] {
            assert_eq!(hash_tag(lock_key), None);
            let fence = fence_key(lock_key);
            let tag = hash_tag(&fence).expect("companion has a tag");
            assert!(tag.bytes().all(|b| b.is_ascii_digit()), "{fence:?}");
            assert!(fence.ends_with(&format!("{lock_key}{FENCE_SUFFIX}")));
            assert_eq!(key_slot(&fence), key_slot(lock_key), "{fence:?}");
            let channel = release_channel(lock_key);
            assert_eq!(key_slot(&channel), key_slot(lock_key), "{channel:?}");
        }
    }

    #[test]
    fn every_slot_has_a_numeric_tag() {
        for slot in 0..SLOTS {
            assert_eq!(key_slot(&slot_tag(slot).to_string()), slot);
        }
    }

    #[test]
    fn different_lock_keys_get_different_companions() {
        let keys = [
            "a-lock",
            "b-lock",
            "a}-lock",
            "a{}-lock",
            "{a}-lock",
            "x:{a}-lock",
        ];
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            assert!(seen.insert(fence_key(key)), "{key:?}");
        }
    }
}
