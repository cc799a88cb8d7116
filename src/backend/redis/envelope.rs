//! The envelope around data values, which is what makes CAS tokens work.
//!
//! Stored form of every value written by `set`, `add` and `cas`:
//!
//! ```text
//! 00 73 74 6d 70 01 | n n n n n n n n | payload…
//! "\0stmp\x01"        random nonce      the caller's bytes
//! 6 bytes             8 bytes
//! ```
//!
//! A value marked stale (`mark_stale`) has the marker `00 73 74 6d 70 53`
//! ("\0stmpS") and a fresh nonce instead; it opens to the same payload.
//!
//! Every write draws a fresh nonce, so writing the same bytes again still
//! changes what is stored, and a token that names the nonce detects it with
//! no extra read. A stored value without the marker (written by another
//! client, or a lock record) is read back as it is, and its token is the
//! whole value.

use bytes::Bytes;

use crate::backend::CasToken;

/// The marker that starts every enveloped value.
pub(super) const MAGIC: [u8; 6] = *b"\x00stmp\x01";
/// The marker of a value marked stale.
pub(super) const STALE_MAGIC: [u8; 6] = *b"\x00stmpS";
/// What both markers start with.
pub(super) const MAGIC_STEM: &[u8] = b"\x00stmp";
/// Length of the marker and the nonce together.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 8;

/// `payload` in an envelope with a fresh random nonce.
pub(super) fn seal(payload: &[u8]) -> Vec<u8> {
    seal_with_nonce(payload).0
}

/// [`seal`], and the nonce drawn: the version a near cache knows the write
/// by.
pub(super) fn seal_with_nonce(payload: &[u8]) -> (Vec<u8>, u64) {
    let nonce = fastrand::u64(..);
    let mut stored = Vec::with_capacity(HEADER_LEN + payload.len());
    stored.extend_from_slice(&MAGIC);
    stored.extend_from_slice(&nonce.to_be_bytes());
    stored.extend_from_slice(payload);
    (stored, nonce)
}

/// The nonce of a value just sealed, as a near cache change announces it.
pub(super) fn nonce(stored: &[u8]) -> super::changes::NewVersion {
    match nonce_of(stored) {
        Some((nonce, _)) => super::changes::NewVersion::Nonce(nonce),
        None => super::changes::NewVersion::Unknown,
    }
}

/// A stored value, opened.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Opened {
    /// What the caller wrote (or the whole value, when it had no envelope).
    pub(super) payload: Bytes,
    /// The token that matches exactly this write.
    pub(super) token: CasToken,
    /// The value was marked stale.
    pub(super) stale: bool,
}

/// Opens a stored value: strips our envelope, or keeps a foreign value whole.
pub(super) fn open(stored: Bytes) -> Opened {
    match nonce_of(&stored) {
        Some((nonce, stale)) => Opened {
            payload: stored.slice(HEADER_LEN..),
            token: CasToken::from_version(nonce),
            stale,
        },
        None => Opened {
            token: CasToken::from_value(stored.clone()),
            payload: stored,
            stale: false,
        },
    }
}

/// The nonce, and whether the value is marked stale.
fn nonce_of(stored: &[u8]) -> Option<(u64, bool)> {
    let (rest, stale) = match stored.strip_prefix(&MAGIC) {
        Some(rest) => (rest, false),
        None => (stored.strip_prefix(&STALE_MAGIC)?, true),
    };
    let nonce = rest.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(nonce), stale))
}

/// The header of a value marked stale, with a fresh nonce.
pub(super) fn stale_header() -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..STALE_MAGIC.len()].copy_from_slice(&STALE_MAGIC);
    header[STALE_MAGIC.len()..].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    header
}

/// What the CAS script must find at the key, as its `ARGV[1]` and `ARGV[2]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expected<'a> {
    /// The key must be absent.
    Absent,
    /// The stored value must start with this header (our write, this nonce).
    Header([u8; HEADER_LEN]),
    /// The stored value must be exactly these bytes (a foreign value).
    Exact(&'a [u8]),
}

impl<'a> Expected<'a> {
    pub(super) fn from_token(token: Option<&'a CasToken>) -> Self {
        let Some(token) = token else {
            return Expected::Absent;
        };
        if let Some(nonce) = token.version() {
            let mut header = [0u8; HEADER_LEN];
            header[..MAGIC.len()].copy_from_slice(&MAGIC);
            header[MAGIC.len()..].copy_from_slice(&nonce.to_be_bytes());
            Expected::Header(header)
        } else {
            Expected::Exact(token.value().map_or(&[][..], |value| &value[..]))
        }
    }

    /// The mode word the script switches on.
    pub(super) fn mode(&self) -> &'static str {
        match self {
            Expected::Absent => "absent",
            Expected::Header(_) => "prefix",
            Expected::Exact(_) => "exact",
        }
    }

    /// The bytes the script compares with.
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Expected::Absent => &[],
            Expected::Header(header) => header,
            Expected::Exact(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_to_their_payload_with_a_version_token() {
        let stored = Bytes::from(seal(b"hello"));
        assert_eq!(stored.len(), HEADER_LEN + 5);
        assert!(stored.starts_with(&MAGIC));
        let opened = open(stored.clone());
        assert_eq!(&opened.payload[..], b"hello");
        let nonce = opened.token.version().expect("version token");
        assert_eq!(&stored[MAGIC.len()..HEADER_LEN], &nonce.to_be_bytes());
    }

    #[test]
    fn the_same_bytes_sealed_twice_differ() {
        let (a, b) = (seal(b"same"), seal(b"same"));
        assert_ne!(a, b);
        assert_ne!(open(a.into()).token, open(b.into()).token);
    }

    #[test]
    fn empty_payloads_round_trip() {
        let opened = open(seal(b"").into());
        assert!(opened.payload.is_empty());
        assert!(opened.token.version().is_some());
    }

    #[test]
    fn foreign_values_are_kept_whole_with_a_value_token() {
        for foreign in [
            &b"plain"[..],
            b"",
            b"\x00stmp\x01short",
            b"\x00stmp\x02abcdefghij",
        ] {
            let opened = open(Bytes::copy_from_slice(foreign));
            assert_eq!(&opened.payload[..], foreign);
            assert_eq!(opened.token.value().map(|v| &v[..]), Some(foreign));
        }
    }

    #[test]
    fn expected_encodes_what_the_script_compares() {
        assert_eq!(Expected::from_token(None), Expected::Absent);
        let stored = seal(b"v");
        let token = open(Bytes::from(stored.clone())).token;
        let expected = Expected::from_token(Some(&token));
        assert_eq!(expected.mode(), "prefix");
        assert_eq!(expected.bytes(), &stored[..HEADER_LEN]);

        let token = CasToken::from_value(Bytes::from_static(b"foreign"));
        let expected = Expected::from_token(Some(&token));
        assert_eq!(expected.mode(), "exact");
        assert_eq!(expected.bytes(), b"foreign");
    }
}
