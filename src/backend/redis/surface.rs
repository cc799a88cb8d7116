//! `exists`, `touch` and `increment` on Redis: one command or script each.
//!
//! - `exists` is `EXISTS`: true exactly when `get` finds something (a value
//!   marked stale too; a fill lease lives beside the key and does not count).
//! - `touch` is `PEXPIRE`. A value marked stale stays stale: only its TTL
//!   moves, which may keep it readable past the grace `mark_stale` gave
//!   it; the next `get_or_fill` still refreshes it.
//! - `increment` is `incr.lua`, around `INCRBY`: the counter is plain
//!   decimal text that any Redis client reads and increments, and a value
//!   `set` wrote in our envelope (say `set("n", b"5")`) counts as its
//!   payload and is stored back bare. The key's TTL is kept; an absent key
//!   is created without one. Which values are counters is `INCRBY`'s rule
//!   (no spaces, no `+`, no leading zeros). Like `set`, it voids a fill
//!   lease on the key: the lease's write-back finds the key changed.

use std::time::Duration;

use bytes::Bytes;

use super::changes::{NewVersion, When};
use super::conn::Request;
use super::ops::millis;
use super::{envelope, redis, scripts, RedisBackend};
use crate::backend::surface::{add_to_counter, parse_counter};
use crate::{Error, Result};

impl RedisBackend {
    /// `exists`: `EXISTS`, resent if the connection was lost.
    pub(super) async fn key_exists(&self, key: &str) -> Result<bool> {
        let found: u8 = self
            .query_resendable("exists", Request::Cmd(redis::cmd("EXISTS").arg(key)))
            .await?;
        Ok(found == 1)
    }

    /// `touch`: `PEXPIRE`, resent if the connection was lost (setting a
    /// TTL twice leaves it set).
    pub(super) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let touched: u8 = if let Some(announcer) = self.announcer() {
            // A TTL cut short must reach the copies too: they may not
            // outlive the value. Not resent, as it announces.
            let mut script = scripts::command_announced().key(key);
            script.arg("PEXPIRE").arg(millis(ttl));
            announcer.append(&mut script, NewVersion::Unknown, When::Changed);
            self.query("touch", Request::Script(&script)).await?
        } else {
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(key).arg(millis(ttl));
            self.query_resendable("touch", Request::Cmd(&cmd)).await?
        };
        Ok(touched == 1)
    }

    /// `increment`: `incr.lua`; never resent, as a write.
    pub(super) async fn count(&self, key: &str, delta: i64) -> Result<i64> {
        let announcer = self.announcer();
        let mut script = scripts::incr(announcer.is_some()).key(key);
        script
            .arg(delta)
            .arg(&envelope::MAGIC[..])
            .arg(&envelope::STALE_MAGIC[..]);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Unknown, When::Always);
        }
        let (took, text): (u8, Option<Bytes>) =
            self.query("increment", Request::Script(&script)).await?;
        let text = text.unwrap_or_default();
        if took == 1 {
            return parse_counter(key, &text);
        }
        // INCRBY refused it: say why in the words every backend uses.
        let current = parse_counter(key, &text)?;
        add_to_counter(key, current, delta)?;
        // A number to Rust, not to Redis (" 5", "+5", "007").
        Err(Error::NotACounter {
            key: key.to_owned(),
        })
    }
}
