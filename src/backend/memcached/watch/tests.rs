use super::*;
use crate::backend::memcached::config::{DEFAULT_FIRST_POLL, DEFAULT_POLL_INTERVAL};

fn ms(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1e3)
}

/// The default schedule.
fn default() -> Schedule {
    Schedule::new(DEFAULT_FIRST_POLL, DEFAULT_POLL_INTERVAL)
}

/// When the polls within `wait` are sent, counted from the poller's start,
/// with `scale(waited)` the wait before each (round trips left out: they
/// only delay the polls).
fn poll_times(wait: Duration, mut next: impl FnMut(Duration) -> Duration) -> Vec<Duration> {
    let (mut at, mut times) = (Duration::ZERO, Vec::new());
    loop {
        at += next(at);
        if at > wait {
            return times;
        }
        times.push(at);
    }
}

/// How many polls `schedule` sends within `wait` with every wait scaled by
/// `factor` (0.8 and 1.2 are the ends of the jitter).
fn polls(schedule: Schedule, wait: Duration, factor: f64) -> usize {
    poll_times(wait, |waited| schedule.nominal(waited).mul_f64(factor)).len()
}

#[test]
fn the_first_polls_come_every_first_poll_then_a_sixteenth_of_the_wait() {
    let times = poll_times(ms(100.0), |waited| default().nominal(waited));
    let every_5_ms = (1..=17).map(|i| ms(5.0 * f64::from(i)));
    let then = [90.3125, 95.95703125].map(ms);
    assert_eq!(
        times[..19],
        every_5_ms.chain(then).collect::<Vec<_>>()[..],
        "5 ms apart until 80 ms have passed; then 85 / 16 = 5.3125 ms, 90.3125 / 16, …"
    );
    // Later polls keep to a sixteenth of the wait until the cap.
    for pair in poll_times(ms(2_000.0), |waited| default().nominal(waited)).windows(2) {
        let gap = pair[1] - pair[0];
        assert_eq!(gap, (pair[0] / 16).clamp(ms(5.0), ms(50.0)));
    }
}

#[test]
fn the_wait_reaches_the_cap_after_sixteen_caps_and_keeps_to_it() {
    let schedule = default();
    assert_eq!(schedule.nominal(Duration::ZERO), ms(5.0));
    assert_eq!(schedule.nominal(ms(80.0)), ms(5.0));
    assert_eq!(schedule.nominal(ms(400.0)), ms(25.0));
    assert_eq!(schedule.nominal(ms(792.0)), ms(49.5));
    assert_eq!(schedule.nominal(ms(800.0)), ms(50.0));
    assert_eq!(schedule.nominal(Duration::from_secs(3_600)), ms(50.0));
    assert_eq!(schedule.nominal(Duration::MAX), ms(50.0));
}

#[test]
fn a_waiting_process_sends_this_many_polls_per_key() {
    // The numbers `MemcachedConfig::poll_interval` and the README quote:
    // before jitter, over a wait of 50 ms, 1 s and 10 s.
    let waits = [ms(50.0), ms(1_000.0), ms(10_000.0)];
    let nominal = waits.map(|wait| polls(default(), wait, 1.0));
    assert_eq!(nominal, [10, 57, 237]);
    // A fixed 50 ms poll (the old default, and `first_poll = poll_interval`).
    let fixed = Schedule::new(ms(50.0), ms(50.0));
    assert_eq!(waits.map(|wait| polls(fixed, wait, 1.0)), [1, 20, 200]);
    // Past 800 ms both send 20 a second: the tight start costs 37 polls.
    let extra = |wait| polls(default(), wait, 1.0) - polls(fixed, wait, 1.0);
    assert_eq!(extra(ms(1_000.0)), 37);
    assert_eq!(extra(ms(60_000.0)), 37);

    // Jittered, the count stays between the schedules scaled by 1.2 and by
    // 0.8 (each wait grows with the time waited, so shorter waits never
    // put a poll later).
    let fewest = waits.map(|wait| polls(default(), wait, 1.2));
    let most = waits.map(|wait| polls(default(), wait, 0.8));
    assert_eq!(fewest, [8, 48, 198]);
    assert_eq!(most, [12, 72, 297]);
    for _ in 0..200 {
        for (i, wait) in waits.into_iter().enumerate() {
            let sent = poll_times(wait, |waited| default().next(waited, fastrand::f64())).len();
            assert!(
                (fewest[i]..=most[i]).contains(&sent),
                "{sent} polls in {wait:?}"
            );
        }
    }
}

#[test]
fn jitter_stays_within_twenty_percent() {
    let schedule = default();
    for waited in [Duration::ZERO, ms(100.0), Duration::from_secs(60)] {
        let nominal = schedule.nominal(waited);
        for _ in 0..1_000 {
            let wait = schedule.next(waited, fastrand::f64());
            assert!(wait >= nominal.mul_f64(0.8) && wait < nominal.mul_f64(1.2));
        }
    }
}

#[test]
fn a_first_poll_past_the_cap_is_a_fixed_interval_and_huge_ones_do_not_panic() {
    let fixed = Schedule::new(ms(80.0), ms(20.0));
    assert_eq!(fixed.nominal(Duration::ZERO), ms(20.0));
    assert_eq!(fixed.nominal(Duration::from_secs(60)), ms(20.0));

    let huge = Schedule::new(Duration::MAX, Duration::MAX);
    assert_eq!(huge.next(Duration::ZERO, 0.999), Duration::MAX);
    assert_eq!(huge.next(Duration::MAX, 0.0), Duration::MAX.mul_f64(0.8));
}
