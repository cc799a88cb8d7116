//! `get_or_fill` with a near cache: a fresh copy answers at once; on a
//! miss one caller per process reads the backend through the tier (which
//! keeps a copy of what it reads) and the others follow that caller, so a
//! process reads the backend once per change of the key. A key that needs
//! filling goes on to the fill lease as without a near cache, and the
//! filler keeps a copy of what it stored.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::job::{Job, Need, Step};
use super::{follow, lead, Decision};
use crate::backend::{CasToken, FillRead};
use crate::observe;
use crate::typed::flight::Joined;
use crate::typed::Codec;
use crate::Result;

/// What the near tier decides; `None` leaves it to the usual path (no
/// tier, a copy due for a refresh, a value marked stale, a flight that
/// ended without a value).
pub(super) async fn decide<'a, C: Codec, P, T: DeserializeOwned>(
    job: &'a Job<'_, C, P>,
) -> Result<Option<Decision<'a, T>>> {
    let Some(near) = job.cache.near() else {
        return Ok(None);
    };
    let kind = job.cache.backend_kind();
    if let Some(bytes) = near.hit(&job.full_key) {
        // Only the verdict is used: no token is needed for a fresh value.
        let copy = FillRead::hit(bytes, CasToken::from_value(Bytes::new()));
        return Ok(match job.judge(copy)? {
            Step::Done(value, _) => {
                observe::hits(kind, "get_or_fill", 1);
                Some(Decision::Value(value))
            }
            _ => None,
        });
    }
    let flights = job.cache.flights();
    let leader = match flights.join(&job.full_key) {
        Joined::Lead(leader) => leader,
        Joined::Follow(follower) => {
            return Ok(Box::pin(follow(job, follower)).await?.map(|value| {
                observe::hits(kind, "get_or_fill", 1);
                Decision::Value(value)
            }))
        }
    };
    let step = match near
        .read_for_fill(job.cache.backend(), &job.full_key)
        .await?
    {
        Some((bytes, token)) => job.judge(FillRead::hit(bytes, token))?,
        None => Step::Need(Need::Ask),
    };
    match step {
        Step::Done(value, bytes) => {
            observe::hits(kind, "get_or_fill", 1);
            leader.land(bytes);
            Ok(Some(Decision::Value(value)))
        }
        Step::Need(need) => {
            observe::misses(kind, "get_or_fill", 1);
            Ok(Some(Box::pin(lead(job, leader, need)).await?))
        }
        _ => Ok(None),
    }
}
