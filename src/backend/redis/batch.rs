//! Batches on Redis: one request per server, replies in the caller's key
//! order.
//!
//! On one server (standalone or Sentinel) a batch is one request: an
//! `MGET`, or one pipeline. On a cluster a pipeline or a multi-key command
//! must keep to one slot, so a batch is split by slot
//! ([`key_slot`](super::naming::key_slot)) and the per-slot requests are
//! sent together: the cluster connection keeps one link per node, so they
//! travel side by side rather than one after the other.
//!
//! Each key's command or script is exactly the one its single-key
//! operation sends (`SET`, `delete.lua`, `fill_read.lua`, …), so a batch
//! behaves like those operations on each key. It is not atomic as a whole.
//!
//! Scripts in a pipeline go out as `EVALSHA`, which, unlike a lone script,
//! redis-rs does not load again when the server answers `NOSCRIPT` (after
//! a restart or a `SCRIPT FLUSH`). An entry answered so did not run, so it
//! is sent again: the first alone, which loads the script, the rest as a
//! pipeline after it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use futures::future::try_join_all;
use redis::{ErrorKind, FromRedisValue, RedisResult, ScriptInvocation, ServerErrorKind};

use super::conn::{Connections, Request, Resend, KIND};
use super::naming::key_slot;
use super::redis;
use super::undo::Undo;
use crate::{Error, Result};

/// How often a pipeline of scripts is sent again after `NOSCRIPT` (a
/// script cache flushed again and again) before the batch fails.
const SCRIPT_LOADS: usize = 3;

/// One group's request in flight, its type erased.
type GroupFuture<'g, T> = Pin<Box<dyn Future<Output = Result<Vec<T>>> + Send + 'g>>;

/// What takes back the scripts at some positions of a batch, if a request
/// carrying them is given up on after it was sent (`None`: nothing to take
/// back).
pub(super) type UndoOf<'a> = dyn Fn(&[usize]) -> Option<Undo> + Sync + 'a;

impl Connections {
    /// The positions of `keys` grouped as they may travel together: all in
    /// one group on one server, one group per slot on a cluster.
    pub(super) fn groups<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Vec<usize>> {
        if !self.pool().is_cluster() {
            return vec![(0..keys.len()).collect()];
        }
        let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (at, key) in keys.iter().enumerate() {
            by_slot.entry(key_slot(key.as_ref())).or_default().push(at);
        }
        by_slot.into_values().collect()
    }

    /// Sends every group at once with `send`, which answers one reply per
    /// position of its group, and puts the replies back in key order.
    pub(super) async fn per_group<'g, T, F, Fut>(
        &self,
        operation: &'static str,
        groups: &'g [Vec<usize>],
        send: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(&'g [usize]) -> Fut,
        Fut: Future<Output = Result<Vec<T>>> + Send + 'g,
    {
        let count = groups.iter().map(Vec::len).sum();
        // Boxed as `dyn`: the request's future nests deep (connecting
        // included), and a caller's `Send` check (`tokio::spawn` of a
        // `get_or_fill`) would otherwise overflow the compiler's recursion
        // limit. One allocation per group, next to a round trip.
        let sends = groups
            .iter()
            .map(|group| -> GroupFuture<'g, T> { Box::pin(send(group)) });
        let replies = try_join_all(sends).await?;
        let mut ordered: Vec<Option<T>> = (0..count).map(|_| None).collect();
        for (group, replies) in groups.iter().zip(replies) {
            if replies.len() != group.len() {
                return Err(miscounted(operation));
            }
            for (&at, reply) in group.iter().zip(replies) {
                ordered[at] = Some(reply);
            }
        }
        ordered
            .into_iter()
            .collect::<Option<Vec<T>>>()
            .ok_or_else(|| miscounted(operation))
    }

    /// Runs `scripts` (of one slot, on a cluster) as one pipeline and
    /// returns their replies in order; entries the server answers
    /// `NOSCRIPT` are sent again (see the [module docs](self)). A server
    /// error on any entry fails the batch, after the others ran.
    pub(super) async fn scripts<T: FromRedisValue>(
        &self,
        operation: &'static str,
        scripts: &[ScriptInvocation<'_>],
        resend: Resend,
        undo: &UndoOf<'_>,
    ) -> Result<Vec<T>> {
        let mut replies: Vec<Option<T>> = (0..scripts.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..scripts.len()).collect();
        for _ in 0..SCRIPT_LOADS {
            let mut pipeline = redis::pipe();
            pipeline.ignore_errors();
            for &at in &pending {
                pipeline.invoke_script(&scripts[at]);
            }
            let request = Request::Pipeline(&pipeline);
            let answers: Vec<RedisResult<T>> =
                Box::pin(self.query_or_undo(operation, request, resend, undo(&pending))).await?;
            if answers.len() != pending.len() {
                return Err(miscounted(operation));
            }
            let mut unloaded = Vec::new();
            for (&at, answer) in pending.iter().zip(answers) {
                match answer {
                    Ok(reply) => replies[at] = Some(reply),
                    Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        unloaded.push(at);
                    }
                    Err(error) => return Err(self.redis_error(operation, error)),
                }
            }
            let Some((&first, rest)) = unloaded.split_first() else {
                break;
            };
            // Alone, the script is loaded again by redis::Script, then run.
            let request = Request::Script(&scripts[first]);
            let reply = Box::pin(self.query_or_undo(operation, request, resend, undo(&[first])));
            replies[first] = Some(reply.await?);
            pending = rest.to_vec();
            if pending.is_empty() {
                break;
            }
        }
        replies
            .into_iter()
            .collect::<Option<Vec<T>>>()
            .ok_or_else(|| Error::backend(KIND, operation, "the server kept losing its scripts"))
    }
}

/// A batch whose replies do not match its requests.
pub(super) fn miscounted(operation: &'static str) -> Error {
    Error::backend(
        KIND,
        operation,
        "the server answered a batch with the wrong number of replies",
    )
}
