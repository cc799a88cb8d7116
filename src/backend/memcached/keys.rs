//! From the crate's keys to memcached's, and the names of the backend's own
//! items.
//!
//! memcached refuses keys over [`MAX_KEY_LEN`] bytes and keys with ASCII
//! whitespace or control characters. Neither may reach the server to fail
//! there with an obscure protocol error, and no key a caller writes may
//! reach an item it did not name:
//!
//! - A key with a byte memcached refuses (`0x00`–`0x20`, `0x7f`) is an
//!   [`Error::InvalidKey`] that names the character and its position,
//!   before anything is sent. Non-ASCII UTF-8 is fine: memcached only
//!   minds those bytes.
//! - A key is **mapped** when it is longer than [`MAX_KEY_LEN`] bytes, or
//!   when it *looks mapped*: it ends with `#` and 64 hex digits (either
//!   case), however long. A mapped key is sent as
//!   `<its first bytes>#<SHA-256 of the whole key, 64 lower-case hex>`, at
//!   most 250 bytes. The readable head keeps it recognisable in `stats`
//!   dumps; the hash keeps apart two keys that share their head. Every
//!   other key is sent as it is.
//!
//!   That makes the mapping injective: keys sent as they are never end like
//!   a mapped key (those that would are mapped), and two mapped keys differ
//!   in the hash of the whole key. A caller cannot craft a key that lands
//!   on a long key's item, or on its lock record.
//! - The backend's own items, **companions** of a key (today only the
//!   fencing counter of a lock record, see [`fence_key`]), are named
//!   `0xFF <kind> ':' <key, mapped to fit>`. The byte `0xFF` never occurs
//!   in UTF-8, so no key (a `&str`) and no mapped key (UTF-8 as well) can
//!   name a companion. memcached only minds whitespace and control bytes,
//!   so the name is sent as it is, and `lru_crawler metadump` shows it as
//!   `%FFfence:<key>`. The key part is mapped like a key, but to fit in
//!   what the marker and the kind leave of the 250 bytes, so companion
//!   names are injective too.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The longest key memcached accepts, in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// The first byte of every companion name: a byte no UTF-8 string holds.
const COMPANION_MARKER: u8 = 0xFF;

/// The kind of a fencing counter's companion name, after the marker.
const FENCE_KIND: &str = "fence:";

/// Separates the readable head of a mapped key from its hash.
const HASH_SEPARATOR: u8 = b'#';

/// Hex digits of a SHA-256 digest.
const HASH_HEX_LEN: usize = 64;

/// What a mapped key ends with: the separator and the hash.
const HASH_PART_LEN: usize = 1 + HASH_HEX_LEN;

/// The longest head a mapped key keeps.
#[cfg(test)]
const MAX_HEAD_LEN: usize = MAX_KEY_LEN - HASH_PART_LEN;

/// The key memcached sees for `key`: checked, and mapped when too long or
/// when it looks mapped.
pub(super) fn wire_key(key: &str) -> Result<Cow<'_, str>> {
    check_chars(key)?;
    Ok(fit(key, MAX_KEY_LEN))
}

/// Every key of a batch as sent, checked before anything is sent.
pub(super) fn wire_keys<'k>(keys: &[&'k str]) -> Result<Vec<Cow<'k, str>>> {
    keys.iter().map(|key| wire_key(key)).collect()
}

/// The name memcached stores the fencing counter of the lock record
/// `lock_key` under: `0xFF`, `fence:`, then `lock_key` (mapped like a key
/// when longer than 243 bytes or when it looks mapped). No key a caller can
/// write has that name. For inspecting the counter through
/// [`MemcachedBackend::client`](super::MemcachedBackend::client).
///
/// ```
/// use stampede::backend::memcached::fence_key;
///
/// assert_eq!(fence_key("app:job-lock")?, b"\xFFfence:app:job-lock");
/// # Ok::<(), stampede::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidKey`] when `lock_key` has a character memcached refuses.
pub fn fence_key(lock_key: &str) -> Result<Vec<u8>> {
    companion(FENCE_KIND, lock_key)
}

/// `0xFF <kind> <key fitted to the rest>`.
fn companion(kind: &str, key: &str) -> Result<Vec<u8>> {
    check_chars(key)?;
    let fitted = fit(key, MAX_KEY_LEN - 1 - kind.len());
    let mut name = Vec::with_capacity(1 + kind.len() + fitted.len());
    name.push(COMPANION_MARKER);
    name.extend_from_slice(kind.as_bytes());
    name.extend_from_slice(fitted.as_bytes());
    Ok(name)
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

/// `key` as it is when it has at most `room` bytes and does not look
/// mapped; otherwise mapped to at most `room` bytes.
fn fit(key: &str, room: usize) -> Cow<'_, str> {
    if key.len() <= room && !looks_mapped(key) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(hashed(key, room))
    }
}

/// Whether `key` ends like a mapped key: `#` and 64 hex digits, in either
/// case (mapped keys use lower case; upper case is mapped too, to be safe).
fn looks_mapped(key: &str) -> bool {
    let Some(start) = key.len().checked_sub(HASH_PART_LEN) else {
        return false;
    };
    let tail = &key.as_bytes()[start..];
    tail[0] == HASH_SEPARATOR && tail[1..].iter().all(u8::is_ascii_hexdigit)
}

/// `<head>#<sha256 hex>` in at most `room` bytes, where `head` is the
/// longest prefix of `key` that ends on a character boundary and leaves
/// room for the hash.
fn hashed(key: &str, room: usize) -> String {
    let mut head_len = room.saturating_sub(HASH_PART_LEN).min(key.len());
    while !key.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut mapped = String::with_capacity(head_len + HASH_PART_LEN);
    mapped.push_str(&key[..head_len]);
    mapped.push(char::from(HASH_SEPARATOR));
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(mapped, "{byte:02x}");
    }
    mapped
}

#[cfg(test)]
mod tests;
