//! The frame around every typed value: what XFetch needs to know about a
//! value, readable by every process that shares the backend.
//!
//! ```text
//! [0xF5][0x01][fresh_until: u64 LE, Unix ms, 0 = no expiry][fill_time: u32 LE, µs][payload]
//! ```
//!
//! `0xF5` can never start UTF-8 text, so a JSON value written by another
//! client (no frame) is read as a bare payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TAG: u8 = 0xF5;
const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 14;

/// What the frame says about the value inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Unix time (ms) after which the value is stale; `None` never.
    pub(crate) fresh_until_ms: Option<u64>,
    /// How long the fill that produced it took.
    pub(crate) fill_time: Duration,
}

impl Meta {
    /// Metadata for a value written now, fresh for `ttl`. A TTL that
    /// reaches past the year 584,556,019 (`u64::MAX` ms) saturates there:
    /// fresh for as long as the frame can say, never cut short.
    pub(crate) fn fresh_for(ttl: Option<Duration>, fill_time: Duration) -> Meta {
        Meta {
            fresh_until_ms: ttl.map(|ttl| {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                now_unix_ms().saturating_add(ms)
            }),
            fill_time,
        }
    }

    /// How long until the value goes stale (zero once it has).
    pub(crate) fn fresh_for_ms(&self, now_ms: u64) -> Option<u64> {
        self.fresh_until_ms
            .map(|until| until.saturating_sub(now_ms))
    }
}

/// A buffer holding the header for `meta`, ready for the payload.
pub(crate) fn start(meta: Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    out.push(TAG);
    out.push(VERSION);
    out.extend_from_slice(&meta.fresh_until_ms.unwrap_or(0).to_le_bytes());
    let micros = u32::try_from(meta.fill_time.as_micros()).unwrap_or(u32::MAX);
    out.extend_from_slice(&micros.to_le_bytes());
    out
}

/// Splits stored bytes into metadata and payload; bytes without a frame
/// are a bare payload with no metadata.
pub(crate) fn split(bytes: &[u8]) -> (Option<Meta>, &[u8]) {
    if bytes.len() < HEADER_LEN || bytes[0] != TAG || bytes[1] != VERSION {
        return (None, bytes);
    }
    let mut until = [0u8; 8];
    until.copy_from_slice(&bytes[2..10]);
    let mut micros = [0u8; 4];
    micros.copy_from_slice(&bytes[10..14]);
    let until = u64::from_le_bytes(until);
    let meta = Meta {
        fresh_until_ms: (until != 0).then_some(until),
        fill_time: Duration::from_micros(u64::from(u32::from_le_bytes(micros))),
    };
    (Some(meta), &bytes[HEADER_LEN..])
}

/// Wall-clock Unix time in ms: comparable across processes and machines
/// (unlike `Instant`), as XFetch across processes needs.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_bare_json_passes_through() {
        let meta = Meta {
            fresh_until_ms: Some(1_700_000_000_123),
            fill_time: Duration::from_micros(4_567),
        };
        let mut bytes = start(meta);
        bytes.extend_from_slice(b"{\"a\":1}");
        assert_eq!(split(&bytes), (Some(meta), &b"{\"a\":1}"[..]));
        assert_eq!(split(b"{\"a\":1}"), (None, &b"{\"a\":1}"[..]));
        let never = Meta {
            fresh_until_ms: None,
            fill_time: Duration::ZERO,
        };
        assert_eq!(split(&start(never)).0, Some(never));
    }

    #[test]
    fn ttls_past_the_frames_range_saturate_instead_of_wrapping() {
        let now = now_unix_ms();
        for ttl in [
            Duration::from_millis(u64::MAX),
            Duration::from_millis(u64::MAX) + Duration::from_millis(1),
            Duration::MAX,
        ] {
            let meta = Meta::fresh_for(Some(ttl), Duration::ZERO);
            assert_eq!(meta.fresh_until_ms, Some(u64::MAX), "{ttl:?}");
            assert!(meta.fresh_for_ms(now).unwrap() > 1 << 62, "{ttl:?}");
        }
    }
}
