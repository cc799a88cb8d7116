//! The memcached backend, over the meta protocol (`memcache` crate, module
//! [`memcache::exp`]).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> stampede::Result<()> {
//! use stampede::Cache;
//!
//! let one = Cache::from_url("memcached://127.0.0.1:11211").await?;
//! let spread = Cache::from_url("memcached://10.0.0.1:11211,10.0.0.2:11211?timeout_ms=500").await?;
//! # let _ = (one, spread);
//! # Ok(())
//! # }
//! ```
//!
//! # How each primitive maps to memcached
//!
//! | primitive | commands | round trips |
//! |---|---|---|
//! | `get` | `mg <k> v` | 1 |
//! | `set` | `ms <k> T<ttl>` | 1 |
//! | `add`, `cas(None)` | `ms <k> ME T<ttl>` | 1 |
//! | `delete` | `mg <k> s c t` and `md <k>`, pipelined (a fill's placeholder is removed, but no value was there) | 1 |
//! | `gets` | `mg <k> v c`; the CAS unique is the token | 1 |
//! | `cas(Some(token))` | `ms <k> C<cas> T<ttl>` | 1 |
//! | `try_lock` | `ms <k> ME T<lease> c`, on a task of its own (see [Failures](#failures)); held: `Held { remaining: None }` | 1 |
//! | `try_lock`, fenced | the above, then `ma <counter> N<life> J<µs> T<life>`, life = lease + 1 h | 2 |
//! | `lock_record` | `mg <k> v t` | 1 |
//! | `release` | `md <k> C<cas>`, the CAS remembered from our last write | 1 |
//! | `extend` | `ms <k> C<cas> T<lease> c`, likewise; the answer's CAS is remembered | 1 |
//! | `release`, nothing remembered | `mg <k> v c`, compare, `md <k> C<cas>` | 2 |
//! | `extend`, nothing remembered | `mg <k> v c`, compare, `ms <k> C<cas> T<lease>` | 2 |
//! | `watch_releases` | a poller: `mg <k>` every poll interval | — |
//! | `get_many`, `set_many`, `delete_many` | the single-key commands, pipelined per server, the servers at once | 1 |
//! | `read_for_fill_many`, `store_filled_many` | likewise (see `backend.rs`) | 1 |
//! | `exists` | `mg <k> s c t` (without the value) | 1 |
//! | `touch` | `mg <k> s c t` and `mg <k> T<ttl>`, pipelined (see `backend.rs`) | 1 |
//! | `increment` | `ma <k> D<delta>`; a CAS loop for negative values (see `counter.rs`) | 1–3 |
//! | `clear("")` | `flush_all` on every server. A namespace is cleared by a new generation, above the backend: memcached cannot list keys | 1 |
//!
//! The `c` flag on the create and on the extend asks memcached for the
//! record's new CAS unique in the same answer; it needs memcached 1.6.13 or
//! later (a server that ignores it just leaves release and extend at two
//! round trips).
//!
//! # Owner-checked release
//!
//! Release and extend are owner-checked: the record is deleted or rewritten
//! only if it is still the one we wrote (the `C<cas>` condition). memcached
//! gives an item a new CAS unique on every write, so a CAS remembered from
//! our create or our last extend can only match that exact record: once it
//! has expired and someone else has taken the lock, the new record has
//! another CAS, even with the same owner bytes. The backend keeps those CAS
//! uniques in a small map keyed by record and owner, and sweeps out entries
//! whose lease has run out, so locks that were lost and never released do
//! not pile up. When nothing is remembered (the record was created by
//! another handle or before this process restarted, or its entry was
//! swept), release and extend first read the record with its CAS and check
//! that it holds our owner token, then act with `C<cas>`: nobody can have
//! written it between the read and the write. Either way, a holder whose
//! lease ran out cannot remove the next holder's record.
//!
//! # Fencing tokens
//!
//! With [`Fencing::Issue`](crate::backend::Fencing::Issue), a successful create is followed by an
//! increment of the record's fencing counter, named `0xFF` `fence:`
//! `<record key>` ([`fence_key`]; see [Keys](#keys)), which no key a caller
//! writes can reach.
//! Two rules keep the tokens strictly increasing across holders and
//! processes:
//!
//! - **The counter is seeded with the time.** memcached may evict the
//!   counter like any item. It is created (`N<life> J<seed>`) with the
//!   current Unix time in microseconds, so a re-created counter starts
//!   above every token handed out before, as long as the key averaged fewer
//!   than one acquisition per microsecond since its counter was first
//!   created, and the machines' clocks agree to within that time.
//! - **An idle counter expires an hour after the last lease.** Every
//!   increment sets the counter's TTL (`N<life>` when it creates it,
//!   `T<life>` when it exists) to the lease plus one hour (plus the clock
//!   margin below; an absolute time past 30 days), so counters of lock
//!   names no longer used do not pile up. That is safe because of the
//!   seed: a counter re-created after it expired is seeded at least an hour
//!   after the last holder's lease ended, which is above every earlier
//!   token unless the re-creating machine's clock is more than an hour
//!   (plus the lease) behind the clocks that seeded the earlier counter.
//!   (memcached 1.6 can lose the `T` of an increment that lands while
//!   another connection is reading the counter; the next lock sets it
//!   again, and an early expiry is covered by the seed just the same.)
//! - **A token that comes back too late is refused.** Another owner can
//!   create the record only once ours has expired at the server, which is
//!   never before our lease, rounded up to whole seconds (see below), has
//!   run out, measured here from just before our create was sent. If the
//!   increment's answer is back before then, our increment reached the
//!   server before any later holder's. If it comes back after, we may have
//!   stalled past our lease while a newer holder took the lock and a lower
//!   token, and ours would let a stale holder win: we release our record
//!   and report the lock as
//!   [`Held`](crate::backend::LockAttempt::Held) instead.
//!
//! # Time: whole seconds, rounded up, plus two
//!
//! memcached keeps time in whole seconds: its `current_time` is its
//! monotonic clock truncated to the second, refreshed by a timer once a
//! second. An item stored with exptime `N` expires at the first tick where
//! `current_time` reaches the value it had at the store plus `N`, and at the
//! store `current_time` may already lag real time by up to two seconds (up
//! to one of truncation, up to one since the last tick). The tick period is
//! also a little over a second (1.0006 s measured on memcached 1.6.18), so
//! `current_time` now and then skips a second. An item stored with exptime
//! `N` can therefore vanish after little more than `N - 2` seconds: for a
//! lock record, that would let a second owner in while the first one's
//! lease still runs.
//!
//! So every TTL and lease is sent as `ceil(seconds) +`
//! [`CLOCK_MARGIN_SECS`] (2): values and lock records live at least as long
//! as asked, give or take the server's timer firing milliseconds late, and
//! at most about three seconds longer. A 200 ms lease is a 3-second record;
//! a 1-hour TTL is 3,602 seconds. Zero (which memcached reads as "never
//! expires") is never sent for a TTL. Lifetimes over 30 days are sent as
//! absolute Unix timestamps computed from this machine's clock (the server
//! would read a larger relative value as a date in 1970), so for those the
//! clocks must agree.
//!
//! **A lease below a second** (1 ns, 1 µs, 200 ms) is therefore a 3-second
//! record that nobody else can take for at least a whole second: a lease
//! is honoured rounded up to whole seconds, never refused for being short.
//! A fencing token back within that second is kept, so `lock` and
//! `try_lock` on a free key return at once with a token, however short the
//! lease. What the caller was given is still its own exact lease:
//! [`LeaseGuard::lost`](crate::LeaseGuard::lost) resolves when it runs out
//! (at once for a lease shorter than a round trip, which makes
//! [`synchronized`](crate::Cache::synchronized) stop its work with
//! [`Error::LockLost`](crate::Error::LockLost) unless the work finished first), and waiters in
//! [`acquire`](crate::RedLock::acquire) give up after it. A
//! [`lock`](crate::RedLock::lock) waiting on a record that gives no
//! remaining lease retries when the record is sure to be gone, after
//! `ceil(lease) + 2` s, unless the poller wakes it first: short leases are
//! not hammered with attempts.
//!
//! [`lock_record`](crate::backend::Backend::lock_record) reports the
//! server's remaining whole seconds, margin included: an upper bound on the
//! record's real remaining life. [`RedLock`](crate::RedLock) waiters still
//! give up on their own exact lease, measured here, and are woken by the
//! poller (below) when the record does go.
//!
//! # Keys
//!
//! memcached refuses keys over [`MAX_KEY_LEN`] (250) bytes and keys with
//! ASCII whitespace or control characters. Here:
//!
//! - a key with a space, a control character (`0x00`–`0x1f`) or DEL is
//!   [`Error::InvalidKey`](crate::Error::InvalidKey), naming the character and its byte position,
//!   before anything is sent (non-ASCII UTF-8 is fine);
//! - a key over 250 bytes, or one that ends like a mapped key (`#` and 64
//!   hex digits, either case, at any length), is *mapped*: sent as its
//!   longest prefix of at most 185 bytes that ends on a character boundary,
//!   then `#`, then the SHA-256 of the whole key in 64 lower-case hex
//!   digits. That is at most 250 bytes, still recognisable, and two keys
//!   that share their first 185 bytes stay apart. Every other key is sent
//!   unchanged, so no key can be crafted to land on a mapped key's item;
//! - each full key is mapped on its own: the namespace, the key and the
//!   `-lock` suffix of a lock record;
//! - the backend's own items are named with a byte no key contains: a
//!   lock record's fencing counter is `0xFF` `fence:` `<record key>`
//!   ([`fence_key`]; the record key is mapped as above when it is over 243
//!   bytes or looks mapped). `0xFF` never occurs in UTF-8, so no key, mapped
//!   or not, names a counter; `lru_crawler metadump` lists them as
//!   `%FFfence:…`. Every name starting with `0xFF` is reserved for the
//!   backend.
//!
//! # Values
//!
//! A value over [`MemcachedConfig::max_value_size`] (default 1 MiB − 1 KiB,
//! to fit memcached's default 1 MiB item limit together with the key and the
//! item header) is [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) before anything is sent.
//!
//! A value the server refuses (`SERVER_ERROR object too large for cache`,
//! when `max_value_size` is set above what its `-I` limit leaves) is
//! [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) too, with no `limit` (the server does not say
//! it) and the key as sent. Nothing was stored, but memcached has removed
//! the key's old item, whatever the command (`set`, `add` or `cas`): keep
//! `max_value_size` below the server's limit so that it never comes to that.
//!
//! # Waiting across processes
//!
//! memcached has no pub/sub. A process waiting on a lock (or a fill) that
//! another process holds runs one poller per waited-on key, which re-reads
//! the record (`mg <k>`, without the value) and wakes the key's waiters
//! when the record is gone (released or expired) or the fill's lease has
//! ended. It polls on a schedule that starts tight and backs off: first
//! after [`MemcachedConfig::first_poll`] (5 ms), then every sixteenth of
//! the time waited so far, at most every [`MemcachedConfig::poll_interval`]
//! (50 ms), each wait jittered by ±20%. An end after a wait of `t` is thus
//! seen at most `max(5 ms, t / 16)` late, +20%, and never more than 50 ms
//! +20% late (by default), for 57 polls over a 1 s wait and 20 a second
//! after that.
//! A record that merely changed owner wakes nobody, and a release followed
//! by a new acquire between two polls goes unseen (the waiters then wait
//! for the new holder, never past their own lease). Waiters in the same
//! process are woken at once, without polling.
//!
//! # Failures
//!
//! Every call is bounded by [`MemcachedConfig::timeout`] (2 s by default):
//! past it, [`Error::BackendTimeout`](crate::Error::BackendTimeout); a refused or broken connection is
//! [`Error::Backend`](crate::Error::Backend). Connections are pooled and redialled, so after a
//! server restart the same [`Cache`](crate::Cache) works again. The client sends one
//! request at a time per connection; at most
//! [`MemcachedConfig::max_connections`] (64) are open to each server (and
//! as many again for lock creates, below) and all of them are kept while
//! idle, so a burst of calls queues on warm connections instead of dialling
//! one socket per call.
//!
//! **How long each call can take**, with `T` the timeout:
//!
//! | call | at most |
//! |---|---|
//! | every [`Backend`](crate::backend::Backend) primitive, `try_lock` with its fencing token included | `T` |
//! | [`RedLock::try_acquire`](crate::RedLock::try_acquire) | `T` |
//! | [`RedLock::try_lock`](crate::RedLock::try_lock) | `2T` (the attempt, then `lock_record` when held) |
//! | [`RedLock::acquire`](crate::RedLock::acquire) | the lease + `2T` |
//! | [`RedLock::lock`](crate::RedLock::lock) | its `wait_timeout` + `2T`; without one, until the lock is ours (`T` on a free key, whatever the lease) |
//! | [`Cache::synchronized`](crate::Cache::synchronized) | `lock` without a wait timeout, the work, then `T` to release |
//! | [`Cache::get_or_fill`](crate::Cache::get_or_fill) | twice `ceil(lease) + 2` s waiting on another caller's fill lease, the fill, and a few calls of `T` |
//!
//! **A call that timed out may still run.** The `memcache` client discards
//! a connection whose exchange timed out or whose future was dropped
//! mid-way (it never reuses one with an answer pending), but a request the
//! server has already received still runs: a frozen server (`SIGSTOP`, a
//! stalled VM) runs its queued requests when it wakes, after the callers
//! got [`Error::BackendTimeout`](crate::Error::BackendTimeout). For a value written with `set`, `add`,
//! `cas` or `delete` that is the usual doubt about a write that timed out.
//! A lock create, though, would leave a record held by nobody for its whole
//! lease. So creates run on a task of their own, on a pool of their own
//! whose io timeout is [`CREATE_PATIENCE`] (5 minutes) instead of `T`: the
//! task reads the answer whenever it comes, and gives the record back
//! (`md <k> C<cas>`, sent after the create's own answer, so it can never
//! overtake it) when its caller has gone, timed out or failed before it was
//! done with the record. The same covers a `try_lock` future dropped while
//! its create was out. A create with no answer within `CREATE_PATIENCE` is
//! given up on with a warning; if it lands after that, its record stays
//! until its lease runs out. A release with a remembered CAS is one `md`:
//! sent before a freeze, it runs when the server wakes. A fill read
//! (`mg <k> N<lease>`) that timed out can still vivify a placeholder: its
//! fill lease is held by nobody, readers see the key as being filled, and
//! it ends with the placeholder, `ceil(lease) + 2` s after the server woke
//! (pollers then wake the waiters; a `get_or_fill` caller never waits more
//! than twice that before it fills without storing). memcached may evict any
//! item when it runs out of memory, lock records and fencing counters
//! included: size the cache so that it does not.

mod backend;
mod client;
mod config;
mod counter;
mod keys;
mod locks;
mod requests;
mod ttl;
mod watch;

use std::sync::Arc;

pub use memcache;
use memcache::exp::AsyncMetaClient;

use self::client::Client;
pub use self::config::{
    MemcachedConfig, DEFAULT_FIRST_POLL, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_VALUE_SIZE,
    DEFAULT_POLL_INTERVAL, DEFAULT_PORT, DEFAULT_TIMEOUT,
};
pub use self::keys::{fence_key, MAX_KEY_LEN};
pub use self::locks::CREATE_PATIENCE;
pub use self::ttl::CLOCK_MARGIN_SECS;
use crate::url::CacheUrl;
use crate::Result;

/// The backend's name in errors and logs.
const KIND: &str = "memcached";

/// The memcached backend. Build one with [`MemcachedConfig::connect`]; most
/// code goes through [`Cache::memcached`](crate::Cache::memcached) or [`Cache::from_url`](crate::Cache::from_url).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use stampede::backend::memcached::{MemcachedBackend, MemcachedConfig};
/// use stampede::Cache;
///
/// let backend: MemcachedBackend = MemcachedConfig::new(["127.0.0.1:11211"]).connect().await?;
/// let cache = Cache::from(backend);
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
pub struct MemcachedBackend {
    client: Client,
    servers: Vec<String>,
    /// When pollers poll: `first_poll` and `poll_interval`.
    polls: watch::Schedule,
    max_value_size: usize,
    /// Lock creates, on a pool of their own (see the `locks::create` module).
    creates: locks::Creates,
    /// The CAS uniques of the lock records we wrote, for one-trip release
    /// and extend; shared with `creates`.
    remembered: Arc<locks::Remembered>,
}

impl MemcachedBackend {
    pub(crate) async fn from_url(url: &mut CacheUrl<'_>) -> Result<MemcachedBackend> {
        MemcachedBackend::connect(MemcachedConfig::from_url(url)?).await
    }

    /// Opens two connection pools per server list, one for everything but
    /// lock creates and one for lock creates, whose exchanges outlast the
    /// call bound (see the `locks::create` module).
    async fn connect(config: MemcachedConfig) -> Result<MemcachedBackend> {
        let servers = config.checked_servers()?;
        let (client, creates) = client::connect(&config, &servers).await?;
        tracing::debug!(?servers, "memcached backend ready");
        let remembered = Arc::default();
        let creates = locks::Creates {
            client: creates,
            remembered: Arc::clone(&remembered),
        };
        Ok(MemcachedBackend {
            client,
            servers,
            polls: watch::Schedule::new(config.first_poll, config.poll_interval),
            max_value_size: config.max_value_size,
            creates,
            remembered,
        })
    }

    /// The meta-protocol client underneath, for commands this crate does
    /// not make. Keys given to it are sent as they are: no namespace, no
    /// mapping of long keys.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use stampede::backend::memcached::MemcachedConfig;
    ///
    /// let backend = MemcachedConfig::default().connect().await?;
    /// backend.client().noop().await?; // one round trip to every server
    /// # Ok(())
    /// # }
    /// ```
    pub fn client(&self) -> &AsyncMetaClient {
        &self.client.meta
    }

    /// How many lock records this backend remembers a CAS unique for (or
    /// has an extend in flight on). For tests: it shows that entries of
    /// locks that ran out are swept.
    #[doc(hidden)]
    pub fn remembered_lock_count(&self) -> usize {
        self.remembered.len()
    }
}

impl std::fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("servers", &self.servers)
            .field("timeout", &self.client.timeout)
            .field("poll_interval", &self.polls.cap())
            .field("first_poll", &self.polls.first())
            .field("max_value_size", &self.max_value_size)
            .finish()
    }
}
