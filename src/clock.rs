//! Deadlines from durations a caller chose, without overflow.

use std::time::Duration;

use tokio::time::Instant;

/// `now + after`, or a point a century away when that would overflow: a
/// caller's `Duration::MAX` lease or TTL means "as good as never", not a
/// panic.
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(deadline(now, Duration::MAX) > now + Duration::from_secs(99 * 365 * 24 * 3600));
    }
}
