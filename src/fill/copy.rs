//! A copy this process keeps (a near tier's) answers `get_or_fill` at
//! once, before the flight, as it answers `get`: a moka lookup, without a
//! backend call or a boxed future. On a miss the backend decides the rest:
//! behind a near tier the peek is a copy (checked by version past its
//! trust window) or "not asked", so that one caller per process (the
//! flight's leader) reads with the fill lease and the others follow it; the
//! lease read keeps a copy of a fresh value it finds, the filler keeps a
//! copy of what it stored, and a process that waited on another's fill
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
/// due for a refresh (early refresh, a frame past its time) is not used
/// here: the call goes on to the peek, which finds it again with its
/// token, and one caller refreshes it.
pub(super) fn fresh_copy<C: Codec, P: StorePolicy<F::Value>, F: Filler>(
    job: &Job<'_, C, P, F>,
) -> Result<Option<F::Value>> {
    let Some(bytes) = job.scope.copy(&job.full_key) else {
        return Ok(None);
    };
    // Only the verdict is used: no token is needed for a fresh value.
    let copy = FillRead::hit(bytes, CasToken::from_value(Bytes::new()));
    Ok(match job.judge(copy)? {
        Step::Done(value, _) => Some(value),
        _ => None,
    })
}
