//! `increment` on memcached: `ma` while the counter stays a `u64`, a
//! compare-and-set loop where it does not.
//!
//! | case | commands | round trips |
//! |---|---|---|
//! | delta ≥ 0 on a counter ≥ 0 | `ma <k> D<delta> c`, with `mg <k> s c t` pipelined | 1 |
//! | the same, absent key | the above (`NF`), then `ms <k> ME` of the delta | 2 |
//! | delta < 0 | `mg <k> v c t`, then `ms <k> C<cas> T<left> F<flags>` (`ms <k> ME` when absent) | 2 |
//! | delta ≥ 0 on a negative counter, or on a fill's placeholder | the `ma` (refused), then as for delta < 0 | 3 |
//! | `ma` on a counter marked stale | + `ms <k> C<cas> T<left>`, to leave it fresh as a `set` would | +1 |
//! | a result past `i64::MAX` | + the undo below | +2 |
//!
//! - **Absent counts as 0; created without a TTL.** memcached's own
//!   auto-create (`ma … N<ttl> J<initial>`) would do it in one trip, but
//!   the client refuses `N0` and any other `N` gives the counter a TTL; so
//!   a miss is followed by an add (`ms … ME`), and a lost race for it by
//!   another `ma`.
//! - **Negative values are ours to handle.** memcached counters are `u64`:
//!   a decrement stops at 0, and `ma` refuses a value like `-5`
//!   (`CLIENT_ERROR … non-numeric value`, which also costs the connection
//!   it came on). Negative deltas therefore always go through the loop, and
//!   so does everything `ma` refuses: the loop reads the value, and tells a
//!   negative counter from a fill's placeholder (absent: replaced, which
//!   voids the fill) and from a value that is no counter
//!   ([`Error::NotACounter`]). It writes the new value with the item's
//!   TTL and client flags, to the second.
//! - **Writes void fills.** `ma` gives the item a new CAS unique, so a
//!   filler's `ms … C<cas>` fails, as after a `set`. But an `ma` that fits
//!   the new number in the old item's bytes updates it in place, keeping
//!   memcached's stale mark and its "refresh token sent" flag: the counter
//!   would stay stale, refreshable by nobody, until its grace ran out. The
//!   `mg` sent with the `ma` shows that mark; the item is then written back
//!   as it now is, fresh.
//! - **Overflow is checked after the fact, and undone.** `ma` wraps at
//!   2^64 and cannot be told to stop at `i64::MAX`, and reading first
//!   would cost every increment a second round trip. A result past
//!   `i64::MAX` (or one that wrapped) is [`Error::CounterOverflow`] (or
//!   [`Error::NotACounter`], when the old value was already past it), and
//!   the delta is taken back before the call returns, on a task of its
//!   own so that a dropped caller cannot leave it half done: a read and
//!   `ms … C<cas>` of the old number, retried while other callers' writes
//!   get in between (a wrapped result, which only a value already past
//!   `i64::MAX` can give, is taken back by adding the delta's complement).
//!   **The window:** for those two round trips, other readers see the
//!   overshot value, and other increments of the key fail the same way.

use memcache::exp::{
    Arithmetic, Error as ClientError, Get, GetResult, GetStatus, Meta, MutationStatus, Op,
    OpResult, Set, ValueState,
};

use super::client::Client;
use super::requests::{remaining, short_batch, unexpected};
use super::{ttl, KIND};
use crate::backend::{add_to_counter, parse_counter};
use crate::{Error, Result};

/// How often `increment` goes round before [`Error::TooManyConflicts`].
pub(super) const MAX_ATTEMPTS: u32 = 64;

/// How often the undo of an overshoot reads again after losing a race.
const UNDO_ATTEMPTS: u32 = 16;

/// What one attempt came to.
pub(super) enum Step {
    Done(i64),
    /// Another writer got in between: go round again.
    Again,
    /// `ma` cannot do it: go through the compare-and-set loop.
    ByCas,
}

/// `ma <k> D<delta> c` with `mg <k> s c t`, pipelined.
pub(super) async fn add_up(client: &Client, key: &str, wire: &str, delta: u64) -> Result<Step> {
    let ops = vec![
        Op::from(Arithmetic::new(wire).delta(delta).return_cas()),
        Op::from(Get::new(wire).without_value().meta(Meta::NONE.cas().ttl())),
    ];
    let mut results = client.batch("increment", ops).await?.into_iter();
    let first = results.next().ok_or_else(|| short_batch("increment"))?;
    let counted = match first {
        Ok(OpResult::Arithmetic(counted)) => counted,
        Err(error) if non_numeric(&error) => return Ok(Step::ByCas),
        Err(error) => return Err(client.error("increment", error)),
        Ok(other) => return Err(Error::backend(KIND, "increment", format!("{other:?}"))),
    };
    match counted.status {
        MutationStatus::Applied => {}
        MutationStatus::NotFound => return create_counter(client, wire, delta).await,
        other => return Err(unexpected("increment", other)),
    }
    let value = counted
        .value
        .ok_or_else(|| Error::backend(KIND, "increment", "memcached sent no counter value"))?;
    match i64::try_from(value) {
        // A result below the delta wrapped around 2^64.
        Ok(fits) if value >= delta => {
            if let Some(Ok(OpResult::Get(seen))) = results.next() {
                freshen(client, wire, &seen, counted.item.cas, value).await;
            }
            Ok(Step::Done(fits))
        }
        _ => {
            take_back(client, wire, delta, value).await;
            Err(overshoot(key, delta, value))
        }
    }
}

/// `ms <k> ME` of `delta`, without a TTL: the counter was absent.
async fn create_counter(client: &Client, wire: &str, delta: u64) -> Result<Step> {
    let create = Set::new(wire, delta.to_string()).add();
    match client.store("increment", create).await? {
        MutationStatus::Applied => Ok(Step::Done(delta as i64)),
        MutationStatus::AlreadyExists => Ok(Step::Again),
        other => Err(unexpected("increment", other)),
    }
}

/// Writes back a counter that `ma` updated in place on a stale item
/// (`seen`, read just after it, shows the mark on the same CAS), so
/// that it is fresh. A failure leaves it stale: the increment stands.
async fn freshen(client: &Client, wire: &str, seen: &GetResult, cas: Option<u64>, value: u64) {
    let stale = seen.status == GetStatus::Hit && seen.value_state == ValueState::Stale;
    match cas.filter(|cas| stale && seen.item.cas == Some(*cas)) {
        Some(cas) => {
            let fresh = keep_as_was(Set::new(wire, value.to_string()).compare_cas(cas), seen);
            if let Err(error) = client.store("increment", fresh).await {
                tracing::debug!(key = wire, %error, "a counter stays marked stale");
            }
        }
        // Someone else's item, read by accident: hand back its token.
        None => client.hand_back(wire, seen).await,
    }
}

/// One round of the compare-and-set loop: `mg <k> v c t`, then
/// `ms <k> C<cas>` of the sum (`ms <k> ME` when absent).
pub(super) async fn cas_step(client: &Client, key: &str, wire: &str, delta: i64) -> Result<Step> {
    let read = Get::new(wire).meta(Meta::NONE.cas().ttl());
    let seen = client.get("increment", read).await?;
    let next = match sum(key, &seen, delta) {
        Ok(next) => next,
        Err(error) => {
            client.hand_back(wire, &seen).await;
            return Err(error);
        }
    };
    let set = Set::new(wire, next.to_string());
    let set = match (seen.status, seen.item.cas) {
        (GetStatus::Miss, _) => set.add(),
        // A fill's placeholder counts as absent: replaced (which voids
        // the fill) by a counter without a TTL.
        (GetStatus::Pending, Some(cas)) => set.compare_cas(cas),
        (_, Some(cas)) => keep_as_was(set.compare_cas(cas), &seen),
        (_, None) => {
            return Err(Error::backend(
                KIND,
                "increment",
                "memcached sent no CAS unique",
            ))
        }
    };
    match client.store("increment", set).await? {
        MutationStatus::Applied => Ok(Step::Done(next)),
        MutationStatus::AlreadyExists | MutationStatus::CasMismatch | MutationStatus::NotFound => {
            Ok(Step::Again)
        }
        other => Err(unexpected("increment", other)),
    }
}

/// The counter `seen` holds plus `delta`; a miss or a placeholder is 0.
fn sum(key: &str, seen: &GetResult, delta: i64) -> Result<i64> {
    let current = match seen.status {
        GetStatus::Hit => parse_counter(key, seen.value.as_deref().unwrap_or_default())?,
        GetStatus::Miss | GetStatus::Pending => 0,
        other => {
            let message = format!("unexpected answer from memcached: {other:?}");
            return Err(Error::backend(KIND, "increment", message));
        }
    };
    add_to_counter(key, current, delta)
}

/// `set` with the TTL and client flags `seen` had, to the second.
fn keep_as_was(set: Set, seen: &GetResult) -> Set {
    set.ttl_raw(ttl::kept(remaining(seen.item.ttl)))
        .client_flags(seen.client_flags.unwrap_or(0))
}

/// Whether memcached refused an `ma` because the value is not a `u64`
/// (negative, empty, or not a number at all).
fn non_numeric(error: &ClientError) -> bool {
    match error {
        ClientError::Rejected(message) => message.contains("non-numeric"),
        ClientError::Ambiguous { source, .. } => non_numeric(source),
        _ => false,
    }
}

/// The error for an `ma` that came to `value`: the counter was in range
/// and `delta` took it past `i64::MAX`, or it never was a counter of ours.
fn overshoot(key: &str, delta: u64, value: u64) -> Error {
    let old = value.wrapping_sub(delta);
    if i64::try_from(old).is_ok() {
        Error::CounterOverflow {
            key: key.to_owned(),
            delta: delta as i64,
        }
    } else {
        Error::NotACounter {
            key: key.to_owned(),
        }
    }
}

/// Takes back an `ma` of `delta` that came to `value`, past `i64::MAX`,
/// on a task of its own that the caller waits for (a dropped caller does
/// not cut it short).
async fn take_back(client: &Client, wire: &str, delta: u64, value: u64) {
    let (client, wire) = (client.clone(), wire.to_owned());
    let undo = async move {
        let outcome = if value < delta {
            // Wrapped: add the complement, which wraps back.
            let back = Arithmetic::new(&wire).delta(delta.wrapping_neg());
            client.count("increment", back).await.map(|_| true)
        } else {
            subtract_while_over(&client, &wire, delta).await
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => tracing::warn!(key = wire, "gave up taking back an overflowing increment"),
            Err(error) => {
                tracing::warn!(key = wire, %error, "could not take back an overflowing increment")
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(undo).await),
        Err(_) => undo.await,
    }
}

/// `mg <k> v c t` and `ms <k> C<cas>` of the value less `delta`, while the
/// value is past `i64::MAX` (our delta is still in it; other overshooting
/// callers take back theirs). `Ok(true)` once done or moot.
async fn subtract_while_over(client: &Client, wire: &str, delta: u64) -> Result<bool> {
    for _ in 0..UNDO_ATTEMPTS {
        let read = Get::new(wire).meta(Meta::NONE.cas().ttl());
        let seen = client.get("increment", read).await?;
        let text = seen
            .value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok());
        let over = text.and_then(|text| text.trim().parse::<u64>().ok());
        let (Some(over), Some(cas)) = (over.filter(|&v| v > i64::MAX as u64), seen.item.cas) else {
            return Ok(true); // gone, rewritten, or already taken back
        };
        let back = keep_as_was(
            Set::new(wire, (over - delta).to_string()).compare_cas(cas),
            &seen,
        );
        match client.store("increment", back).await? {
            MutationStatus::Applied => return Ok(true),
            _ => continue,
        }
    }
    Ok(false)
}
