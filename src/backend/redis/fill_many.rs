//! Fill leases in batches: `read_for_fill_many` and `store_filled_many`,
//! one pipeline of the single-key scripts (`fill_read.lua`,
//! `fill_store.lua`) per group, as the `batch` module sends them.
//!
//! A batch read creates leases, as `read_for_fill` does, and gives back
//! every lease its caller never sees:
//!
//! - each request carries the owner-checked release of every lease it asks
//!   for, sent after it on the same connection if the request is given up
//!   on once sent (timeout, cancellation), as for `read_for_fill`;
//! - leases granted by requests that *were* answered are released from a
//!   background task when the batch does not reach its caller after all
//!   (another group failed, or the whole call was dropped).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::conn::{Connections, Resend};
use super::fill::{fill_read_script, fill_release_script, read_of, FillReply};
use super::ops::check_size;
use super::undo::Undo;
use super::RedisBackend;
use crate::backend::{random_lease_id, FillRead, FilledValue};
use crate::Result;

const READ: &str = "read_for_fill_many";
const STORE: &str = "store_filled_many";

impl RedisBackend {
    /// `read_for_fill_many`: `fill_read.lua` for every key, each with a
    /// lease id of its own.
    pub(super) async fn fill_read_many(
        &self,
        keys: &[&str],
        lease: Duration,
    ) -> Result<Vec<FillRead>> {
        let ids: Vec<Bytes> = keys.iter().map(|_| random_lease_id()).collect();
        let unclaimed = Unclaimed {
            conns: Arc::clone(&self.conns),
            publish: self.publish_command(),
            leases: keys
                .iter()
                .map(|key| key.to_string())
                .zip(ids.clone())
                .collect(),
        };
        let groups = self.conns.groups(keys);
        let ids = &ids[..];
        let replies: Vec<FillReply> = self
            .conns
            .per_group(READ, &groups, |group| {
                let scripts: Vec<_> = group
                    .iter()
                    .map(|&at| fill_read_script(keys[at], &ids[at], lease))
                    .collect();
                // `sent` are positions in this group.
                let undo = move |sent: &[usize]| {
                    let releases = sent
                        .iter()
                        .map(|&local| group[local])
                        .map(|at| self.fill_release_script(keys[at], &ids[at]))
                        .collect();
                    Some(Undo::all(READ, releases))
                };
                async move {
                    // Resending is safe: a lease we already hold is reported as ours.
                    let resend = Resend::IfConnectionLost;
                    self.conns.scripts(READ, &scripts, resend, &undo).await
                }
            })
            .await?;
        unclaimed.claimed();
        Ok(replies
            .into_iter()
            .zip(ids.iter().cloned())
            .map(|(reply, id)| read_of(reply, id))
            .collect())
    }

    /// `store_filled_many`: every size checked first, then `fill_store.lua`
    /// for every entry whose lease this backend could have granted (any
    /// other is void: `false`, and nothing sent for it).
    pub(super) async fn fill_store_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        for entry in entries {
            check_size(entry.key, entry.value)?;
        }
        let ours: Vec<(usize, &Bytes)> = entries
            .iter()
            .enumerate()
            .filter_map(|(at, entry)| entry.lease.bytes().map(|id| (at, id)))
            .collect();
        let mut stored = vec![false; entries.len()];
        if ours.is_empty() {
            return Ok(stored);
        }
        let keys: Vec<&str> = ours.iter().map(|&(at, _)| entries[at].key).collect();
        let groups = self.conns.groups(&keys);
        let ours = &ours[..];
        let replies: Vec<u8> = self
            .conns
            .per_group(STORE, &groups, |group| {
                let scripts: Vec<_> = group
                    .iter()
                    .map(|&local| {
                        let (at, id) = ours[local];
                        let entry = &entries[at];
                        self.fill_store_script(entry.key, id, entry.value, entry.ttl)
                    })
                    .collect();
                // Not resent, as `store_filled` is not.
                async move {
                    self.conns
                        .scripts(STORE, &scripts, Resend::Never, &|_| None)
                        .await
                }
            })
            .await?;
        for (&(at, _), reply) in ours.iter().zip(replies) {
            stored[at] = reply == 1;
        }
        Ok(stored)
    }
}

/// The leases a batch read asked for, until its caller has them: dropped
/// before [`claimed`](Unclaimed::claimed), it releases every one of them
/// (owner-checked, so only those actually granted go) from a background
/// task.
struct Unclaimed {
    conns: Arc<Connections>,
    publish: &'static str,
    leases: Vec<(String, Bytes)>,
}

impl Unclaimed {
    /// The caller has the leases: nothing to give back.
    fn claimed(mut self) {
        self.leases.clear();
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if self.leases.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "a batch fill read was given up on outside a tokio runtime; its leases stay until they run out"
            );
            return;
        };
        let leases = std::mem::take(&mut self.leases);
        runtime.spawn(give_back(Arc::clone(&self.conns), self.publish, leases));
    }
}

/// Releases `leases` (key and lease id), one pipeline per group.
async fn give_back(conns: Arc<Connections>, publish: &'static str, leases: Vec<(String, Bytes)>) {
    let keys: Vec<&str> = leases.iter().map(|(key, _)| key.as_str()).collect();
    let groups = conns.groups(&keys);
    let conns = &conns;
    let leases = &leases[..];
    let released = conns
        .per_group(READ, &groups, |group| {
            let scripts: Vec<_> = group
                .iter()
                .map(|&at| fill_release_script(&leases[at].0, &leases[at].1, publish))
                .collect();
            async move {
                let resend = Resend::IfConnectionLost;
                conns.scripts::<u8>(READ, &scripts, resend, &|_| None).await
            }
        })
        .await;
    match released {
        Ok(released) => tracing::debug!(
            released = released.iter().filter(|&&released| released == 1).count(),
            "gave back the fill leases of a batch read whose caller never got them"
        ),
        Err(error) => tracing::warn!(
            %error,
            "could not give back the fill leases of a batch read given up on; they stay until they run out"
        ),
    }
}
