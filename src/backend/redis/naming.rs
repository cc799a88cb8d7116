//! Names of the keys and channels that go with a key (its companions):
//! out of reach of every key a user can write, and in the key's Redis
//! Cluster slot.
//!
//! # Out of reach
//!
//! Every companion name starts with the byte `0xFF`, which never occurs in
//! UTF-8. Keys reach the backend as `&str` (namespace, key and `-lock`
//! suffix joined), so no key a caller can write, in any namespace, is ever
//! a companion name: not `{B` + `x-lock}:fence`, not anything. Redis keys
//! and channels are binary-safe, so the byte costs nothing.
//!
//! After it comes a letter saying how the name carries its key's hash tag
//! (below) and a `:`, then the name proper. The letter keeps the three
//! shapes apart, so that no two keys share a companion (`a` and `{a}` would
//! otherwise both be `{a}:fill`).
//!
//! # In the key's slot
//!
//! Cluster hashes a key on its *hash tag* when it has one: the part between
//! the first `{` and the first `}` after it, if that part is not empty;
//! otherwise on the whole key. A companion must land in its key's slot, so
//! that a script may touch both and a sharded `SPUBLISH` reaches the key's
//! node. Nothing before the first `{` matters to the slot, which is why the
//! marker can lead:
//!
//! 1. `t`: the key has a hash tag: `\xFFt:<key><suffix>` keeps that tag.
//! 2. `w`: it has none and contains no `}`: `\xFFw:{<key>}<suffix>`, whose
//!    tag is the whole key, which is what the key hashes on.
//! 3. `n`: it has none but contains a `}` (say `a{}b-lock`): wrapping it in
//!    braces would end the tag early, so no name can carry the key as its
//!    tag. Then `\xFFn:{<n>}<key><suffix>`, where `<n>` is the smallest
//!    decimal number that hashes to the key's slot.
//!
//! The suffixes: `:fence` (a lock key's fencing counter), `:fill` (a value
//! key's fill lease record), `:released` (the channel on which a lock's
//! releases and a value's fill lease ends are published).

use std::sync::OnceLock;

/// The first byte of every companion name: never part of UTF-8 text.
pub(super) const RESERVED: u8 = 0xFF;
/// Suffix of a lock key's fencing counter.
pub(super) const FENCE_SUFFIX: &str = ":fence";
/// Suffix of a lock key's release channel (and of a value key's channel
/// for the end of its fill leases).
pub(super) const RELEASED_SUFFIX: &str = ":released";
/// Suffix of a value key's fill lease record.
pub(super) const FILL_SUFFIX: &str = ":fill";

/// Number of slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// The key that holds `lock_key`'s fencing counter, in the same Redis
/// Cluster slot as `lock_key`. Like every name the backend keeps beside a
/// key, it starts with the byte `0xFF`, which no key a caller can write (a
/// `&str`) contains; see [Reserved names](super#reserved-names).
///
/// ```
/// use stampede::backend::redis::fence_key;
///
/// assert_eq!(fence_key("app:report-lock"), b"\xFFw:{app:report-lock}:fence");
/// assert_eq!(fence_key("app:{user1}-lock"), b"\xFFt:app:{user1}-lock:fence");
/// ```
pub fn fence_key(lock_key: &str) -> Vec<u8> {
    companion(lock_key, FENCE_SUFFIX)
}

/// The channel on which a release of `lock_key` is published (the message
/// is the lock key), in the same Redis Cluster slot as `lock_key`. Other
/// programs may subscribe to it too. The same channel of a value key
/// announces the end of its fill leases.
///
/// ```
/// use stampede::backend::redis::release_channel;
///
/// assert_eq!(release_channel("app:report-lock"), b"\xFFw:{app:report-lock}:released");
/// ```
pub fn release_channel(lock_key: &str) -> Vec<u8> {
    companion(lock_key, RELEASED_SUFFIX)
}

/// The record holding `value_key`'s fill lease while a
/// [`get_or_fill`](crate::Cache::get_or_fill) fills it, in the same Redis
/// Cluster slot as `value_key`.
///
/// ```
/// use stampede::backend::redis::fill_lease_key;
///
/// assert_eq!(fill_lease_key("app:report"), b"\xFFw:{app:report}:fill");
/// ```
pub fn fill_lease_key(value_key: &str) -> Vec<u8> {
    companion(value_key, FILL_SUFFIX)
}

/// `key`'s companion name with `suffix`: reserved, in `key`'s slot.
fn companion(key: &str, suffix: &str) -> Vec<u8> {
    let body = if hash_tag(key.as_bytes()).is_some() {
        format!("t:{key}{suffix}")
    } else if !key.contains('}') {
        format!("w:{{{key}}}{suffix}")
    } else {
        let tag = slot_tag(key_slot(key.as_bytes()));
        format!("n:{{{tag}}}{key}{suffix}")
    };
    let mut name = Vec::with_capacity(1 + body.len());
    name.push(RESERVED);
    name.extend_from_slice(body.as_bytes());
    name
}

/// The key `name` is a companion of, and whether `name` is its fill lease
/// record; `None` when `name` is no companion name. The inverse of
/// [`companion`], for `clear`, which finds companions by pattern.
pub(super) fn companion_owner(name: &[u8]) -> Option<(&[u8], bool)> {
    let rest = name.strip_prefix(&[RESERVED])?;
    let (shape, body) = match rest {
        [shape, b':', body @ ..] => (*shape, body),
        _ => return None,
    };
    let fill = body.strip_suffix(FILL_SUFFIX.as_bytes());
    let body = fill
        .or_else(|| body.strip_suffix(FENCE_SUFFIX.as_bytes()))
        .or_else(|| body.strip_suffix(RELEASED_SUFFIX.as_bytes()))?;
    let owner = match shape {
        b't' => body,
        b'w' => body.strip_prefix(b"{")?.strip_suffix(b"}")?,
        b'n' => {
            let inner = body.strip_prefix(b"{")?;
            let close = inner.iter().position(|&b| b == b'}')?;
            let tag = &inner[..close];
            if tag.is_empty() || !tag.iter().all(u8::is_ascii_digit) {
                return None;
            }
            &inner[close + 1..]
        }
        _ => return None,
    };
    Some((owner, fill.is_some()))
}

/// The hash tag of `key`, per the cluster spec: the bytes between the first
/// `{` and the first `}` after it, when there are any.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let after = &key[open + 1..];
    let close = after.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &after[..close])
}

/// The cluster slot of `key`: CRC16 of its hash tag (or of the whole key).
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16_xmodem(hashed) % SLOTS
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
    use proptest::prelude::*;

    use super::*;
    use crate::key::Namespace;

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
            assert_eq!(key_slot(key.as_bytes()), slot, "{key:?}");
        }
    }

    #[test]
    fn hash_tags_follow_the_first_brace_rule() {
        assert_eq!(hash_tag(b"{user1000}.following"), Some(&b"user1000"[..]));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(hash_tag(b"foo{bar"), None);
        assert_eq!(hash_tag(b"foo}bar{"), None);
        assert_eq!(hash_tag(b"plain-lock"), None);
    }

    /// A companion name as bytes, whatever type the naming functions return.
    fn bytes(name: impl Into<Vec<u8>>) -> Vec<u8> {
        name.into()
    }

    /// Every companion name of `key`, each kind once.
    fn companions(key: &str) -> [Vec<u8>; 3] {
        [
            bytes(fence_key(key)),
            bytes(fill_lease_key(key)),
            bytes(release_channel(key)),
        ]
    }

    /// Every shape of key, with the fence counter name it must produce.
    const CASES: &[(&str, &[u8])] = &[
        // Shape 1: a tag already; keep it.
        ("app:{user1}-lock", b"\xFFt:app:{user1}-lock:fence"),
        ("{a}{b}-lock", b"\xFFt:{a}{b}-lock:fence"),
        ("x{{y}}-lock", b"\xFFt:x{{y}}-lock:fence"),
        // Shape 2: no tag and no `}`; the whole key becomes the tag.
        ("app:report-lock", b"\xFFw:{app:report-lock}:fence"),
        ("a{b-lock", b"\xFFw:{a{b-lock}:fence"),
        ("{-lock", b"\xFFw:{{-lock}:fence"),
    ];

    #[test]
    fn companions_keep_the_keys_slot() {
        for (key, expected) in CASES {
            let fence = bytes(fence_key(key));
            assert_eq!(&fence[..], *expected, "fence key of {key:?}");
            for name in companions(key) {
                assert_eq!(key_slot(&name), key_slot(key.as_bytes()), "{name:?}");
            }
        }
    }

    #[test]
    fn keys_with_a_closing_brace_and_no_tag_get_a_numeric_tag() {
        // `{}` is an empty tag, so these hash on the whole key, and wrapping
        // them in braces would end the tag at their own `}`.
        for key in ["a{}b-lock", "{}-lock", "a}b-lock", "}{-lock", "x{}{y}-lock"] {
            assert_eq!(hash_tag(key.as_bytes()), None);
            let fence = bytes(fence_key(key));
            let tag = hash_tag(&fence).expect("companion has a tag");
            assert!(tag.iter().all(u8::is_ascii_digit), "{fence:?}");
            assert!(fence.starts_with(b"\xFFn:{"), "{fence:?}");
            assert!(fence.ends_with(format!("}}{key}{FENCE_SUFFIX}").as_bytes()));
            for name in companions(key) {
                assert_eq!(key_slot(&name), key_slot(key.as_bytes()), "{name:?}");
            }
        }
    }

    #[test]
    fn every_slot_has_a_numeric_tag() {
        for slot in 0..SLOTS {
            assert_eq!(key_slot(slot_tag(slot).to_string().as_bytes()), slot);
        }
    }

    /// Every key of 1 to 6 characters from `{`, `}` and `a` (brace shapes
    /// of every kind), and the same with `-lock` appended.
    fn brace_keys() -> Vec<String> {
        let mut keys = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..6 {
            keys = keys
                .iter()
                .flat_map(|key| ['{', '}', 'a'].map(|c| format!("{key}{c}")))
                .collect();
            all.extend(keys.iter().cloned());
        }
        let locks: Vec<String> = all.iter().map(|key| format!("{key}-lock")).collect();
        all.extend(locks);
        all
    }

    #[test]
    fn no_two_keys_share_a_companion_name() {
        // A fill lease, a fence counter or a channel of one key is never
        // that of another (`a` and `{a}`, `a}` and `{1234}a}`, …).
        let mut keys_seen = std::collections::HashMap::new();
        let mut channels_seen = std::collections::HashMap::new();
        for key in brace_keys() {
            let [fence, fill, channel] = companions(&key);
            for name in [fence, fill] {
                if let Some(other) = keys_seen.insert(name.clone(), key.clone()) {
                    panic!("{key:?} and {other:?} share {name:?}");
                }
            }
            if let Some(other) = channels_seen.insert(channel.clone(), key.clone()) {
                panic!("{key:?} and {other:?} share the channel {channel:?}");
            }
        }
    }

    #[test]
    fn a_namespace_cannot_spell_another_namespaces_fence_counter() {
        // Namespace `{B` and key `x-lock}:fence` spell `{B:x-lock}:fence`.
        let victim = Namespace::default().join("B").lock_key("x").unwrap();
        let spelled = Namespace::default().join("{B");
        let spelled = spelled.apply("x-lock}:fence").unwrap();
        for name in companions(&victim) {
            assert_ne!(name, spelled.as_bytes(), "{spelled}");
        }
    }

    /// Any key: brace-heavy ones, and any Unicode.
    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof!["[{}a:%-]{1,10}", "\\PC{1,12}"]
    }

    #[test]
    fn companion_names_lead_back_to_their_key() {
        for key in brace_keys()
            .iter()
            .map(String::as_str)
            .chain(["app:x", "{a}b"])
        {
            let [fence, fill, channel] = companions(key);
            assert_eq!(companion_owner(&fence), Some((key.as_bytes(), false)));
            assert_eq!(companion_owner(&fill), Some((key.as_bytes(), true)));
            assert_eq!(companion_owner(&channel), Some((key.as_bytes(), false)));
        }
        for name in [
            &b"app:x:fill"[..],
            b"\xFFw:{a}:other",
            b"\xFFn:{1a}b:fill",
            b"\xFF",
        ] {
            assert_eq!(companion_owner(name), None, "{name:?}");
        }
    }

    proptest! {
        /// No namespace and key a user can write (both `&str`, so UTF-8) is
        /// the companion name of any key, and every companion stays in its
        /// key's cluster slot.
        #[test]
        fn companions_are_out_of_reach_and_in_their_keys_slot(
            path in prop::collection::vec("[{}a:%]{0,4}|\\PC{0,6}", 0..3),
            key in any_key(),
            other in any_key(),
        ) {
            let namespace = path
                .iter()
                .fold(Namespace::default(), |namespace, segment| namespace.join(segment));
            let value_key = namespace.apply(&key).unwrap().into_owned();
            let lock_key = namespace.lock_key(&key).unwrap();
            for written in [&value_key, &lock_key] {
                for name in companions(&other) {
                    prop_assert_ne!(&name[..], written.as_bytes());
                }
                for name in companions(written) {
                    prop_assert!(std::str::from_utf8(&name).is_err(), "{:?}", name);
                    prop_assert_eq!(key_slot(&name), key_slot(written.as_bytes()));
                }
            }
        }
    }
}
