//! From the crate's keys to memcached's.
//!
//! memcached refuses keys over [`MAX_KEY_LEN`] bytes and keys with ASCII
//! whitespace or control characters. Neither may reach the server to fail
//! there with an obscure protocol error:
//!
//! - A key with a byte memcached refuses (`0x00`–`0x20`, `0x7f`) is an
//!   [`Error::InvalidKey`] that names the character and its position,
//!   before anything is sent. Non-ASCII UTF-8 is fine: memcached only
//!   minds those bytes.
//! - A key longer than [`MAX_KEY_LEN`] bytes is sent as
//!   `<its first bytes>#<SHA-256 of the whole key, 64 hex digits>`, at most
//!   250 bytes. The readable head keeps it recognisable in `stats` dumps;
//!   the hash keeps two long keys that share their head apart. Keys of 250
//!   bytes or fewer are sent as they are.
//!
//! The mapping is per full key, so a lock record (`…-lock`) and its fencing
//! counter (`…-lock-fence`) are each mapped on their own.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The longest key memcached accepts, in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// Appended to a lock record's key to name its fencing counter.
pub(super) const FENCE_SUFFIX: &str = "-fence";

/// Separates the readable head of a mapped key from its hash.
const HASH_SEPARATOR: char = '#';

/// Hex digits of a SHA-256 digest.
const HASH_HEX_LEN: usize = 64;

/// The longest head a mapped key keeps.
const MAX_HEAD_LEN: usize = MAX_KEY_LEN - 1 - HASH_HEX_LEN;

/// The key memcached sees for `key`: checked, and mapped when too long.
pub(super) fn wire_key(key: &str) -> Result<Cow<'_, str>> {
    check_chars(key)?;
    if key.len() <= MAX_KEY_LEN {
        return Ok(Cow::Borrowed(key));
    }
    Ok(Cow::Owned(hashed(key)))
}

/// The key of the fencing counter of the lock record `lock_key`.
pub(super) fn fence_key(lock_key: &str) -> Result<String> {
    check_chars(lock_key)?;
    let full = format!("{lock_key}{FENCE_SUFFIX}");
    Ok(match wire_key(&full)? {
        Cow::Borrowed(_) => full,
        Cow::Owned(mapped) => mapped,
    })
}

fn check_chars(key: &str) -> Result<()> {
    match key
        .char_indices()
        .find(|(_, ch)| *ch == ' ' || ch.is_ascii_control())
    {
        None => Ok(()),
        Some((at, ch)) => Err(Error::invalid_key(
            key,
            format!(
                "memcached keys cannot contain whitespace or control characters, \
                 and this one has {ch:?} at byte {at}"
            ),
        )),
    }
}

/// `<head>#<sha256 hex>`, where `head` is the longest prefix of `key` that
/// ends on a character boundary and leaves room for the hash.
fn hashed(key: &str) -> String {
    let mut head_len = MAX_HEAD_LEN.min(key.len());
    while !key.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut mapped = String::with_capacity(head_len + 1 + HASH_HEX_LEN);
    mapped.push_str(&key[..head_len]);
    mapped.push(HASH_SEPARATOR);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(mapped, "{byte:02x}");
    }
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_pass_unchanged_and_borrowed() {
        let key = "app:user:42-lock";
        assert!(matches!(wire_key(key).unwrap(), Cow::Borrowed(k) if k == key));
        let exactly = "k".repeat(MAX_KEY_LEN);
        assert_eq!(wire_key(&exactly).unwrap(), exactly);
        assert_eq!(wire_key("café:ünïcode").unwrap(), "café:ünïcode");
    }

    #[test]
    fn long_keys_map_to_head_and_hash_within_the_limit() {
        let key = format!("ns:{}", "x".repeat(400));
        let mapped = wire_key(&key).unwrap();
        assert_eq!(mapped.len(), MAX_KEY_LEN);
        assert!(mapped.starts_with("ns:xxx"));
        let (head, hash) = mapped.rsplit_once(HASH_SEPARATOR).unwrap();
        assert_eq!(head.len(), MAX_HEAD_LEN);
        assert_eq!(hash.len(), HASH_HEX_LEN);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        // Stable: the same key always maps to the same wire key.
        assert_eq!(wire_key(&key).unwrap(), mapped);
    }

    #[test]
    fn long_keys_with_a_common_head_do_not_collide() {
        let head = "h".repeat(300);
        let a = wire_key(&format!("{head}a")).unwrap().into_owned();
        let b = wire_key(&format!("{head}b")).unwrap().into_owned();
        assert_ne!(a, b);
        assert_eq!(a[..MAX_HEAD_LEN], b[..MAX_HEAD_LEN]);
    }

    #[test]
    fn multibyte_characters_are_not_split() {
        // 'é' is two bytes: a head cut at an odd offset would split one.
        let key = format!("k{}", "é".repeat(200));
        let mapped = wire_key(&key).unwrap();
        assert!(mapped.len() <= MAX_KEY_LEN);
        assert!(mapped.starts_with("kéé"));
    }

    #[test]
    fn whitespace_and_control_characters_are_refused_by_name() {
        for (key, shown) in [
            ("a b", "' '"),
            ("tab\there", "'\\t'"),
            ("nl\n", "'\\n'"),
            ("nul\0", "'\\0'"),
            ("del\u{7f}", "'\\u{7f}'"),
        ] {
            let err = wire_key(key).unwrap_err();
            assert!(err.is_invalid_input());
            let message = err.to_string();
            assert!(message.contains("whitespace or control"), "{message}");
            assert!(message.contains(shown), "{message} should name {shown}");
        }
        // Checked before mapping: a long key is refused too.
        assert!(wire_key(&format!("{} x", "k".repeat(300))).is_err());
    }

    #[test]
    fn fence_keys_are_the_lock_key_plus_a_suffix_and_mapped_when_long() {
        assert_eq!(fence_key("job-lock").unwrap(), "job-lock-fence");
        let long = format!("{}-lock", "j".repeat(246));
        let fence = fence_key(&long).unwrap();
        assert!(fence.len() <= MAX_KEY_LEN);
        assert_ne!(fence, wire_key(&long).unwrap());
        assert!(fence_key("a b-lock").is_err());
    }
}
