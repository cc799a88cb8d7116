//! `get_or_fill` with a near cache: a fresh copy answers at once. On a
//! miss the call skips the peek: one caller per process (the flight's
//! leader) reads with the fill lease and the others follow it. The lease
//! read keeps a copy of a fresh value it finds (`Job::read`); the filler
//! keeps a copy of what it stored; a process that waited on another's fill
//! keeps a copy of what it reads when woken. So a process reads the backend
//! once per change of the key, plus the reads of a wait while a fill
//! elsewhere is under way.

use bytes::Bytes;

use super::job::{Job, Step};
use super::{Filler, StorePolicy};
use crate::backend::{CasToken, FillRead};
use crate::codec::Codec;
use crate::Result;

/// The value of a fresh copy of the key, if this process has one. A copy
/// due for a refresh (early refresh, a frame past its time) is not used:
/// the call goes on as on a miss.
pub(super) fn fresh_copy<C: Codec, P: StorePolicy<F::Value>, F: Filler>(
    job: &Job<'_, C, P, F>,
) -> Result<Option<F::Value>> {
    let Some(bytes) = job.scope.near().and_then(|near| near.hit(&job.full_key)) else {
        return Ok(None);
    };
    // Only the verdict is used: no token is needed for a fresh value.
    let copy = FillRead::hit(bytes, CasToken::from_value(Bytes::new()));
    Ok(match job.judge(copy)? {
        Step::Done(value, _) => Some(value),
        _ => None,
    })
}
