//! From the crate's durations to memcached's whole-second expiry times.
//!
//! memcached keeps time in whole seconds on a clock that ticks once a
//! second: `current_time` is the server's monotonic clock *truncated* to the
//! second, read at each tick. An item stored with exptime `N` expires at the
//! first tick where `current_time` reaches `stored_at + N`, and at the moment
//! of the store `current_time` may already lag real time by up to two
//! seconds (up to one second of truncation, plus up to one second since the
//! last tick). So an item stored with exptime `N` can vanish after only a
//! little more than `N - 2` seconds. The tick period is also slightly over a
//! second (it was 1.0006 s on memcached 1.6.18 here), so `current_time`
//! skips a second every half hour or so; an item whose lifetime straddles
//! such a skip expires a whole second early, which is why one second of
//! margin is not enough.
//!
//! Every lifetime sent to memcached is therefore `ceil(duration) + 2`
//! seconds ([`CLOCK_MARGIN_SECS`]): never shorter than asked (up to the
//! server's tick being late by milliseconds), and at most about three
//! seconds longer. This matters most for lock records: a record that
//! expired before its holder's lease ended would let a second owner in.
//!
//! A TTL of zero would mean "never expires" to memcached; it cannot happen
//! here (durations are never zero, and the margin makes every exptime at
//! least 3). Lifetimes over 30 days are sent as absolute Unix timestamps by
//! [`Ttl::secs`], computed from this machine's clock, so for those the
//! server's and this machine's clocks must agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memcache::exp::Ttl;

use crate::{Error, Result};

/// Whole seconds added to every TTL and lease sent to memcached, after
/// rounding it up to whole seconds, so that the server never drops an item
/// before its time. See [the backend's docs](super#time-whole-seconds-rounded-up-plus-two).
pub const CLOCK_MARGIN_SECS: u64 = 2;

/// memcached reads a larger exptime as an absolute Unix timestamp.
const MAX_RELATIVE_SECS: u64 = 30 * 24 * 60 * 60;

/// The exptime for something that must live at least `duration`. `what`
/// names the argument (`"ttl"`, `"lease"`) in the error for a lifetime
/// memcached cannot represent (one that ends after 2038-01-19, the end
/// of its signed 32-bit clock).
pub(super) fn exptime(duration: Duration, what: &'static str) -> Result<Ttl> {
    let secs = margined_secs(duration);
    let ends_at = as_sent(secs);
    // memcached reads exptime as a signed 32-bit number: it stores an
    // absolute time past 2^31 - 1 (2038-01-19) and answers `HD`, but the
    // item is already expired. Refuse that rather than lose the value.
    match u32::try_from(secs) {
        Ok(secs) if ends_at <= LAST_EXPTIME => Ok(Ttl::secs(secs)),
        _ => Err(Error::InvalidArgument {
            name: what,
            reason: "memcached cannot represent an expiry after 2038-01-19 03:14:07 UTC",
        }),
    }
}

/// How long a record sent with [`exptime`]`(lease)` is sure to last at the
/// server, from before it was sent: `lease` rounded up to whole seconds
/// (the margin on top is what the server's clock may take away). So a
/// lease below a second is held for a whole second, at least.
pub(super) fn honoured(lease: Duration) -> Duration {
    Duration::from_secs(whole_secs_up(lease))
}

/// A lease as the whole seconds memcached's vivify flag (`N<secs>`) takes:
/// rounded up plus the margin, and capped at 30 days (a longer number would
/// be read as a date).
pub(super) fn lease_secs(lease: Duration) -> u32 {
    let secs = margined_secs(lease).min(MAX_RELATIVE_SECS);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The raw exptime, as memcached reads it, for something that must live at
/// least `duration`: [`exptime`]'s seconds when they are 30 days or fewer,
/// else the Unix time they end at; for commands whose flags take no [`Ttl`]
/// (`ma … N<secs>`). A lifetime ending after 2038-01-19 is capped there:
/// memcached reads exptime as a signed 32-bit number, and a later absolute
/// time would make the item expire at once.
pub(super) fn raw_exptime(duration: Duration) -> u32 {
    let raw = as_sent(margined_secs(duration));
    u32::try_from(raw.min(LAST_EXPTIME)).unwrap_or(u32::MAX)
}

/// The raw exptime that keeps what is left of an item's life, as `mg … t`
/// reported it, for a write that must not change it (a counter written
/// back, a touch undone): 0 (never expires) for `None`, else the seconds
/// left, at least one, as a Unix time past 30 days. No margin is added:
/// the item keeps the expiry it had, to the second.
pub(super) fn kept(left: Option<Duration>) -> u32 {
    left.map_or(0, |left| {
        let raw = as_sent(left.as_secs().max(1)).min(LAST_EXPTIME);
        u32::try_from(raw).unwrap_or(u32::MAX)
    })
}

/// `duration` in whole seconds, rounded up.
fn whole_secs_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// `duration` rounded up to whole seconds, plus [`CLOCK_MARGIN_SECS`].
fn margined_secs(duration: Duration) -> u64 {
    whole_secs_up(duration).saturating_add(CLOCK_MARGIN_SECS)
}

/// A lifetime of `secs` as memcached reads it: as it is up to 30 days,
/// else the Unix time it ends at.
fn as_sent(secs: u64) -> u64 {
    if secs > MAX_RELATIVE_SECS {
        unix_secs().saturating_add(secs)
    } else {
        secs
    }
}

/// The latest absolute exptime memcached keeps an item until: 2^31 - 1.
const LAST_EXPTIME: u64 = i32::MAX as u64;

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_then_adds_the_margin() {
        assert_eq!(
            exptime(Duration::from_millis(1), "ttl").unwrap(),
            Ttl::secs(3)
        );
        assert_eq!(
            exptime(Duration::from_millis(200), "lease").unwrap(),
            Ttl::secs(3)
        );
        assert_eq!(
            exptime(Duration::from_secs(1), "ttl").unwrap(),
            Ttl::secs(3)
        );
        assert_eq!(
            exptime(Duration::from_millis(1500), "ttl").unwrap(),
            Ttl::secs(4)
        );
        assert_eq!(
            exptime(Duration::from_secs(60), "ttl").unwrap(),
            Ttl::secs(62)
        );
    }

    #[test]
    fn honoured_leases_are_whole_seconds_rounded_up() {
        assert_eq!(honoured(Duration::from_nanos(1)), Duration::from_secs(1));
        assert_eq!(honoured(Duration::from_millis(200)), Duration::from_secs(1));
        assert_eq!(honoured(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(
            honoured(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert!(honoured(Duration::MAX) >= Duration::from_secs(u64::MAX));
    }

    #[test]
    fn long_lifetimes_are_kept_for_the_client_to_send_as_timestamps() {
        let month_and_a_bit = Duration::from_secs(MAX_RELATIVE_SECS + 10);
        assert_eq!(
            exptime(month_and_a_bit, "ttl").unwrap(),
            Ttl::secs(u32::try_from(MAX_RELATIVE_SECS + 12).unwrap())
        );
    }

    #[test]
    fn leases_are_whole_seconds_plus_the_margin_and_at_most_thirty_days() {
        assert_eq!(lease_secs(Duration::from_millis(200)), 3);
        assert_eq!(lease_secs(Duration::from_secs(10)), 12);
        assert_eq!(lease_secs(Duration::MAX), 30 * 24 * 60 * 60);
    }

    #[test]
    fn raw_exptimes_are_relative_up_to_30_days_then_absolute_then_capped() {
        assert_eq!(raw_exptime(Duration::from_millis(200)), 3);
        assert_eq!(raw_exptime(Duration::from_secs(3700)), 3702);
        let month_and_a_bit = Duration::from_secs(MAX_RELATIVE_SECS + 10);
        let at = u64::from(raw_exptime(month_and_a_bit));
        let expected = unix_secs() + MAX_RELATIVE_SECS + 12;
        assert!(at.abs_diff(expected) <= 2, "{at} vs {expected}");
        assert_eq!(u64::from(raw_exptime(Duration::MAX)), LAST_EXPTIME);
    }

    #[test]
    fn kept_lifetimes_are_what_was_left_never_zero_unless_endless() {
        assert_eq!(kept(None), 0);
        assert_eq!(kept(Some(Duration::ZERO)), 1);
        assert_eq!(kept(Some(Duration::from_secs(90))), 90);
        let month_and_a_bit = Duration::from_secs(MAX_RELATIVE_SECS + 10);
        let at = u64::from(kept(Some(month_and_a_bit)));
        let expected = unix_secs() + MAX_RELATIVE_SECS + 10;
        assert!(at.abs_diff(expected) <= 2, "{at} vs {expected}");
    }

    #[test]
    fn lifetimes_past_2038_are_refused() {
        // memcached's exptime is a signed 32-bit number: it would take an
        // absolute time past 2^31 - 1, answer HD, and hold nothing.
        let to_2038 = u64::try_from(i32::MAX).unwrap() - unix_secs();
        let err = exptime(Duration::from_secs(to_2038), "ttl").unwrap_err();
        assert!(err.is_invalid_input());
        assert!(err.to_string().contains("2038"), "{err}");
        assert!(exptime(Duration::from_secs(to_2038 - 60), "ttl").is_ok());
        assert!(exptime(Duration::MAX, "lease").is_err());
    }
}
