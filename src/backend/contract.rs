//! The [`Backend`] trait, declared once: [`backend_contract!`] holds the
//! method list (docs, signatures, default bodies) and hands it to a
//! generator. This file generates the trait from it; `dispatch.rs`
//! generates the enum dispatch and the object-safe twin, and `forward.rs`
//! the public [`forward_backend!`](crate::forward_backend) macro. A new
//! method is one entry here (and one default body); nothing else is
//! edited by hand.
//!
//! An entry is written like a trait method, with two conventions:
//!
//! - `async fn m(..) -> T` declares `fn m(..) -> impl Future<Output = T> +
//!   Send` (a default body is the body of an `async move` block).
//! - Every borrow is written `&$l T` (and `FilledValue<$l>`): the
//!   generators pick the lifetime, `'_` for the trait and `'a` for the
//!   boxed twin. Types are written by full path, so that the forwarding
//!   macro's output compiles in any crate.

/// Calls `$callback! { $pass ; <one entry per method> }`, each entry in
/// the normalised form `normalize!` documents, with borrows at `$l`.
macro_rules! backend_contract {
    ($callback:ident { $($pass:tt)* } $l:lifetime) => {
        $crate::backend::contract::normalize! { @ $callback { $($pass)* } []

        // ----- identity ---------------------------------------------------

        /// A short name for errors and logs: `"memory"`, `"redis"`, …
        fn kind(&self) -> &'static str;

        // ----- values and compare-and-set (required) ----------------------

        /// Reads a value (or a lock record). `None` when absent or expired.
        async fn get(&self, key: &$l str) -> $crate::Result<Option<$crate::Bytes>>;

        /// Stores a value unconditionally. `ttl: None` keeps it until evicted.
        async fn set(
            &self,
            key: &$l str,
            value: &$l [u8],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<()>;

        /// Stores a value only if the key is absent. `Ok(false)` when it exists.
        async fn add(
            &self,
            key: &$l str,
            value: &$l [u8],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<bool>;

        /// Removes a key. `Ok(false)` when it was absent.
        async fn delete(&self, key: &$l str) -> $crate::Result<bool>;

        /// Reads a value with a token that changes on every write to the key,
        /// including a write of the same bytes.
        async fn gets(
            &self,
            key: &$l str,
        ) -> $crate::Result<Option<($crate::Bytes, $crate::backend::CasToken)>>;

        /// Stores `value` only if the key still matches `expected`: the token from
        /// [`gets`](Backend::gets), or `None` for "the key must still be absent".
        /// `Ok(false)` on a mismatch, and the key is left as it was.
        async fn cas(
            &self,
            key: &$l str,
            value: &$l [u8],
            expected: Option<&$l $crate::backend::CasToken>,
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<bool>;

        // ----- lock records (required) ------------------------------------

        /// Creates the lock record `key → owner` with a TTL of `lease` if `key`
        /// is absent. With [`Fencing::Issue`] a per-key counter is incremented
        /// atomically with the create and its new value returned as the fencing
        /// token; it never goes backwards for the same key.
        async fn try_lock(
            &self,
            key: &$l str,
            owner: &$l [u8],
            lease: ::core::time::Duration,
            fencing: $crate::backend::Fencing,
        ) -> $crate::Result<$crate::backend::LockAttempt>;

        /// Reads a lock record: its owner and remaining lease. `None` when absent.
        async fn lock_record(
            &self,
            key: &$l str,
        ) -> $crate::Result<Option<$crate::backend::LockRecord>>;

        /// Deletes the lock record only if it still holds `owner`
        /// (compare-and-delete), and tells other processes' waiters, where the
        /// backend can. `Ok(false)` when the record is absent or someone else's.
        async fn release(&self, key: &$l str, owner: &$l [u8]) -> $crate::Result<bool>;

        /// Resets the lock record's TTL to `lease` only if it still holds `owner`.
        /// `Ok(false)` when the record is absent or someone else's.
        async fn extend(
            &self,
            key: &$l str,
            owner: &$l [u8],
            lease: ::core::time::Duration,
        ) -> $crate::Result<bool>;

        // ----- waking -----------------------------------------------------

        /// Arranges for `wake.notify_waiters()` to be called when the lock record
        /// `key` is released by *another process*, until the returned
        /// [`ReleaseWatch`] is dropped. Releases in this process wake waiters
        /// without the backend's help.
        ///
        /// The watch is in place when the future resolves: a caller that checks
        /// the record afterwards cannot miss a release. The default does nothing,
        /// which is right for a store only one process uses; waiters then fall
        /// back to the lease bound.
        async fn watch_releases(
            &self,
            key: &$l str,
            wake: ::std::sync::Arc<$crate::__private::Notify>,
        ) -> $crate::Result<$crate::backend::ReleaseWatch> {
            let _ = (key, wake);
            Ok($crate::backend::ReleaseWatch::none())
        }

        // ----- fill leases ------------------------------------------------

        /// Reads `key` for a fill, atomically taking the fill lease when the
        /// key needs filling: when no value is stored, or the value was marked
        /// stale by [`mark_stale`](Backend::mark_stale). The first such caller
        /// gets [`FillLease::Granted`], everyone else [`FillLease::Busy`] until
        /// the lease is stored, released, voided by a write, or runs out after
        /// `lease`. A fresh value comes back with [`FillLease::NotNeeded`].
        ///
        /// While the lease is out, the key still reads as absent (or as its
        /// stale value) to [`get`](Backend::get) and [`gets`](Backend::gets).
        ///
        /// **Default** (for backends with nothing better): `gets`, then on a
        /// miss a lock record beside the key, and a write-back that is a `cas`
        /// requiring the key to be absent. It catches a `set`, `add` or `cas`
        /// during the fill but not a `delete` of a key that was absent when the
        /// fill began; the built-in backends catch every write.
        async fn read_for_fill(
            &self,
            key: &$l str,
            lease: ::core::time::Duration,
        ) -> $crate::Result<$crate::backend::FillRead> {
            defaults::read_for_fill(self, key, lease).await
        }

        /// A read for a fill that never takes a lease, for backends where that
        /// is cheaper than [`read_for_fill`](Backend::read_for_fill) (Redis: a
        /// plain `GET` rather than a script). `get_or_fill` then peeks first,
        /// and only one caller per process asks for the lease on a miss, so a
        /// stampede sends one lease request per process instead of one per
        /// caller. A key that needs filling comes back with
        /// [`FillLease::NotAsked`].
        ///
        /// **Default:** `Ok(None)`: no cheaper read; `get_or_fill` reads with
        /// `read_for_fill` from the start (one round trip fewer on a miss).
        async fn peek_for_fill(
            &self,
            key: &$l str,
        ) -> $crate::Result<Option<$crate::backend::FillRead>> {
            let _ = key;
            Ok(None)
        }

        /// Stores a fill's `value` only if `lease` is still valid: granted to
        /// this caller by [`read_for_fill`](Backend::read_for_fill), not run
        /// out, and not voided by any write to the key since. Ends the lease
        /// either way and tells other processes' fill waiters, where the
        /// backend can. `Ok(false)` when the lease was void: nothing was stored.
        async fn store_filled(
            &self,
            key: &$l str,
            lease: &$l $crate::backend::LeaseToken,
            value: &$l [u8],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<bool> {
            defaults::store_filled(self, key, lease, value, ttl).await
        }

        /// Gives a fill lease back without storing (the fill failed or was
        /// cancelled), so that a waiter takes over at once. Leaves a stale value
        /// in place. `Ok(false)` when the lease was no longer ours.
        async fn release_fill(
            &self,
            key: &$l str,
            lease: &$l $crate::backend::LeaseToken,
        ) -> $crate::Result<bool> {
            defaults::release_fill(self, key, lease).await
        }

        /// Marks the value at `key` stale: still readable for at most `grace`
        /// (less if its TTL ends sooner), and due for a refresh, which
        /// [`read_for_fill`](Backend::read_for_fill) hands to one caller. Voids
        /// any fill lease out on the key. `Ok(false)` when no value was stored.
        ///
        /// **Default:** deletes the value (a backend without a stale mark
        /// cannot keep it readable).
        async fn mark_stale(
            &self,
            key: &$l str,
            grace: ::core::time::Duration,
        ) -> $crate::Result<bool> {
            let _ = grace;
            self.delete(key).await
        }

        /// Arranges for `wake.notify_waiters()` to be called when a fill lease
        /// on `key` held by *another process* ends (stored, released or
        /// voided), until the returned watch is dropped. As for
        /// [`watch_releases`](Backend::watch_releases), the watch is in place
        /// when the future resolves.
        ///
        /// **Default:** watches the default lease record's releases.
        async fn watch_fills(
            &self,
            key: &$l str,
            wake: ::std::sync::Arc<$crate::__private::Notify>,
        ) -> $crate::Result<$crate::backend::ReleaseWatch> {
            self.watch_releases(&defaults::default_lease_key(key), wake)
                .await
        }

        /// The longest a record written with `lease` (a lock record or a fill
        /// lease) may outlive it on this backend: `lease` itself unless the
        /// backend rounds lifetimes up (memcached counts whole seconds).
        /// Callers waiting on someone else's lease use it to tell a stuck lease
        /// from a slow one.
        fn lease_life(&self, lease: ::core::time::Duration) -> ::core::time::Duration {
            lease
        }

        // ----- batches ----------------------------------------------------

        /// Reads every key in `keys`, in order: `None` for each one absent.
        /// Built-in backends send one request per server (`MGET`, a pipeline,
        /// a batch); `keys` is never empty.
        ///
        /// **Default:** one [`get`](Backend::get) per key, in turn.
        async fn get_many(
            &self,
            keys: &$l [&$l str],
        ) -> $crate::Result<Vec<Option<$crate::Bytes>>> {
            defaults::get_many(self, keys).await
        }

        /// Stores every entry as [`set`](Backend::set) would, with one `ttl`;
        /// each voids fill leases on its key like `set`. Not atomic as a whole:
        /// a failure may leave some entries stored.
        ///
        /// **Default:** one `set` per entry, in turn.
        async fn set_many(
            &self,
            entries: &$l [(&$l str, &$l [u8])],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<()> {
            defaults::set_many(self, entries, ttl).await
        }

        /// Removes every key in `keys`; returns how many were there.
        ///
        /// **Default:** one [`delete`](Backend::delete) per key, in turn.
        async fn delete_many(&self, keys: &$l [&$l str]) -> $crate::Result<usize> {
            defaults::delete_many(self, keys).await
        }

        // ----- values: the rest of the surface ----------------------------

        /// Whether [`get`](Backend::get) would return a value for `key`.
        ///
        /// **Default:** a `get`.
        async fn exists(&self, key: &$l str) -> $crate::Result<bool> {
            Ok(self.get(key).await?.is_some())
        }

        /// Sets the TTL of the value at `key` to `ttl`, leaving the value as it
        /// is. `Ok(false)` when no value is stored.
        ///
        /// **Default:** [`gets`](Backend::gets) then [`cas`](Backend::cas) of
        /// the same bytes, retried on a conflict.
        async fn touch(&self, key: &$l str, ttl: ::core::time::Duration) -> $crate::Result<bool> {
            defaults::touch(self, key, ttl).await
        }

        // ----- counters ---------------------------------------------------

        /// Adds `delta` to the counter at `key` atomically and returns the new
        /// value; an absent key counts as 0 and is created without a TTL. The
        /// value is stored as decimal text, so [`get`](Backend::get) reads it.
        /// A value that is not decimal text in `i64` range is
        /// [`Error::NotACounter`](crate::Error::NotACounter); a result outside
        /// `i64` is [`Error::CounterOverflow`](crate::Error::CounterOverflow).
        /// A write: it voids fill leases on `key`.
        ///
        /// **Default:** a [`gets`](Backend::gets) / [`cas`](Backend::cas) loop.
        async fn increment(&self, key: &$l str, delta: i64) -> $crate::Result<i64> {
            defaults::increment(self, key, delta).await
        }

        // ----- clearing ---------------------------------------------------

        /// Whether [`clear`](Backend::clear) can remove the keys under a
        /// prefix. A backend that cannot list its keys (memcached) says `false`,
        /// and [`Cache::clear`](crate::Cache::clear) then clears a namespace by
        /// moving it to a new generation instead.
        ///
        /// **Default:** `true`.
        fn clears_by_prefix(&self) -> bool {
            true
        }

        /// Removes every key that starts with `prefix`, lock records included;
        /// with an empty `prefix`, every key in the store. Only called with a
        /// non-empty prefix when [`clears_by_prefix`](Backend::clears_by_prefix)
        /// is `true`.
        ///
        /// **Default:** [`Error::Unsupported`](crate::Error::Unsupported).
        async fn clear(&self, prefix: &$l str) -> $crate::Result<()> {
            let _ = prefix;
            Err($crate::Error::Unsupported {
                backend: self.kind(),
                operation: "clear",
            })
        }

        // ----- batched fill leases ----------------------------------------

        /// [`read_for_fill`](Backend::read_for_fill) of every key in `keys`, in
        /// order, in one request per server where the backend can.
        ///
        /// **Default:** one `read_for_fill` per key, in turn.
        async fn read_for_fill_many(
            &self,
            keys: &$l [&$l str],
            lease: ::core::time::Duration,
        ) -> $crate::Result<Vec<$crate::backend::FillRead>> {
            defaults::read_for_fill_many(self, keys, lease).await
        }

        /// [`store_filled`](Backend::store_filled) of every entry, in order;
        /// `true` for each one stored.
        ///
        /// **Default:** one `store_filled` per entry, in turn.
        async fn store_filled_many(
            &self,
            entries: &$l [$crate::backend::FilledValue<$l>],
        ) -> $crate::Result<Vec<bool>> {
            defaults::store_filled_many(self, entries).await
        }

        // ----- coherence: what a near cache needs -------------------------

        /// How this backend keeps a near cache in front of it coherent, or
        /// why it cannot.
        ///
        /// **Default:** [`Coherence::Unsupported`]: no near cache.
        fn coherence(&self) -> $crate::backend::Coherence {
            $crate::backend::Coherence::Unsupported(
                "a custom backend has no way to announce writes or report versions to a near cache",
            )
        }

        /// From now on, announce every write through this backend with
        /// `origin`, and deliver other processes' writes to `sink` once the
        /// feed runs ([`follow_changes`](Backend::follow_changes)). Only
        /// called when [`coherence`](Backend::coherence) is
        /// [`Coherence::Push`].
        ///
        /// **Default:** does nothing.
        fn announce_changes(
            &self,
            origin: u64,
            sink: ::std::sync::Weak<dyn $crate::backend::ChangeSink>,
        ) {
            let _ = (origin, sink);
        }

        /// Starts the feed of other processes' writes if it is not running.
        /// Called often (before near-cache reads); cheap when the feed runs.
        /// Needs a Tokio runtime.
        ///
        /// **Default:** does nothing (no feed).
        fn follow_changes(&self) {}

        /// Reads `key` with the version of the write it came from and its
        /// remaining TTL, for a near cache to keep a copy by.
        ///
        /// **Default:** [`Error::Unsupported`](crate::Error::Unsupported).
        async fn read_versioned(
            &self,
            key: &$l str,
        ) -> $crate::Result<Option<$crate::backend::Versioned>> {
            let _ = key;
            Err(coherence::unsupported(self.kind()))
        }

        /// [`read_for_fill`](Backend::read_for_fill), and how long a near
        /// cache may keep a copy of the value read: `Some(ttl)` (`ttl` as
        /// for [`Versioned::ttl`]), or `None` for no copy.
        ///
        /// **Default:** `read_for_fill`, and no copy.
        async fn read_for_fill_near(
            &self,
            key: &$l str,
            lease: ::core::time::Duration,
        ) -> $crate::Result<(
            $crate::backend::FillRead,
            Option<Option<::core::time::Duration>>,
        )> {
            Ok((self.read_for_fill(key, lease).await?, None))
        }

        /// [`set`](Backend::set), and the version of the write where the
        /// backend reports one.
        ///
        /// **Default:** `set`, and no version.
        async fn set_versioned(
            &self,
            key: &$l str,
            value: &$l [u8],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<Option<$crate::backend::CasToken>> {
            self.set(key, value, ttl).await.map(|()| None)
        }

        /// [`store_filled`](Backend::store_filled): `None` when the lease was
        /// void, else the version of the write where the backend reports one.
        ///
        /// **Default:** `store_filled`, and no version.
        async fn store_filled_versioned(
            &self,
            key: &$l str,
            lease: &$l $crate::backend::LeaseToken,
            value: &$l [u8],
            ttl: Option<::core::time::Duration>,
        ) -> $crate::Result<Option<Option<$crate::backend::CasToken>>> {
            Ok(self.store_filled(key, lease, value, ttl).await?.then_some(None))
        }

        /// Whether `version` is still the write stored at `key`, for a
        /// backend whose [`coherence`](Backend::coherence) is
        /// [`Coherence::Revalidate`].
        ///
        /// **Default:** [`Error::Unsupported`](crate::Error::Unsupported).
        async fn revalidate(
            &self,
            key: &$l str,
            version: &$l $crate::backend::CasToken,
        ) -> $crate::Result<$crate::backend::Revalidated> {
            let _ = (key, version);
            Err(coherence::unsupported(self.kind()))
        }
        }
    };
}
pub(crate) use backend_contract;

/// Turns the entries of [`backend_contract!`] into one form a generator
/// matches with a single repetition:
///
/// `{ mode self [attrs] name [arg: Type, ..] (Out) (Return) body }`
///
/// where `mode` is `async` or `sync`, `Out` is the future's output (or
/// the return type), `Return` what the trait declares, and `body` the
/// trait's default (`;` for none).
macro_rules! normalize {
    (@ $cb:ident { $($pass:tt)* } [$($done:tt)*]) => {
        $cb! { $($pass)* ; $($done)* }
    };
    (@ $cb:ident $pass:tt [$($done:tt)*]
        $(#[$m:meta])* async fn $name:ident (&$this:ident $(, $arg:ident : $ty:ty)* $(,)?)
            -> $out:ty ; $($rest:tt)*) => {
        $crate::backend::contract::normalize! { @ $cb $pass [$($done)*
            { async $this [$(#[$m])*] $name [$($arg: $ty),*] ($out)
                (impl ::core::future::Future<Output = $out> + ::core::marker::Send) ; }
        ] $($rest)* }
    };
    (@ $cb:ident $pass:tt [$($done:tt)*]
        $(#[$m:meta])* async fn $name:ident (&$this:ident $(, $arg:ident : $ty:ty)* $(,)?)
            -> $out:ty { $($body:tt)* } $($rest:tt)*) => {
        $crate::backend::contract::normalize! { @ $cb $pass [$($done)*
            { async $this [$(#[$m])*] $name [$($arg: $ty),*] ($out)
                (impl ::core::future::Future<Output = $out> + ::core::marker::Send)
                { async move { $($body)* } } }
        ] $($rest)* }
    };
    (@ $cb:ident $pass:tt [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident (&$this:ident $(, $arg:ident : $ty:ty)* $(,)?)
            -> $out:ty ; $($rest:tt)*) => {
        $crate::backend::contract::normalize! { @ $cb $pass [$($done)*
            { sync $this [$(#[$m])*] $name [$($arg: $ty),*] ($out) ($out) ; }
        ] $($rest)* }
    };
    (@ $cb:ident $pass:tt [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident (&$this:ident $(, $arg:ident : $ty:ty)* $(,)?)
            -> $out:ty { $($body:tt)* } $($rest:tt)*) => {
        $crate::backend::contract::normalize! { @ $cb $pass [$($done)*
            { sync $this [$(#[$m])*] $name [$($arg: $ty),*] ($out) ($out) { $($body)* } }
        ] $($rest)* }
    };
    (@ $cb:ident $pass:tt [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident (&$this:ident $(, $arg:ident : $ty:ty)* $(,)?)
            { $($body:tt)* } $($rest:tt)*) => {
        $crate::backend::contract::normalize! { @ $cb $pass [$($done)*
            { sync $this [$(#[$m])*] $name [$($arg: $ty),*] (()) (()) { $($body)* } }
        ] $($rest)* }
    };
}
pub(crate) use normalize;

/// Declares the trait from the normalised entries.
macro_rules! declare_trait {
    ($(#[$doc:meta])* ; $({
        $mode:ident $this:ident [$(#[$m:meta])*] $name:ident [$($arg:ident : $ty:ty),*]
        ($out:ty) ($ret:ty) $body:tt
    })*) => {
        $(#[$doc])*
        pub trait Backend: Send + Sync + 'static {
            $( $(#[$m])* fn $name(&$this $(, $arg: $ty)*) -> $ret $body )*
        }
    };
}

// The defaults' helpers, and the names the docs link to.
use super::{coherence, defaults};
#[cfg(doc)]
use super::{Coherence, Fencing, FillLease, ReleaseWatch, Versioned};

backend_contract!(declare_trait {
    /// A storage backend: the few atomic primitives the locks need, and the
    /// provided methods built on them that a backend overrides where it has
    /// a faster form (the families are listed in the [module docs](crate::backend)).
    ///
    /// Implement it to plug in your own store and pass it to
    /// [`Cache::custom`](crate::Cache::custom). Every method must be atomic with
    /// respect to every other method on the same key, across every process that
    /// shares the store. A wrapper around another backend (counting, fault
    /// injection, a circuit breaker) forwards what it does not change with
    /// [`forward_backend!`](crate::forward_backend).
    ///
    /// Values written by [`set`](Backend::set), [`add`](Backend::add) and
    /// [`cas`](Backend::cas) are *data*; lock records written by
    /// [`try_lock`](Backend::try_lock) hold an owner token. Both live in the one
    /// key space and [`get`](Backend::get) reads either.
    ///
    /// # Cancellation
    ///
    /// The layers above drop these futures freely (a caller's timeout, a
    /// `select!`, an aborted task), at any `.await`. Every implementation must
    /// make that safe:
    ///
    /// - **No half-applied operation.** A dropped call either took effect as a
    ///   whole or not at all; which one may be unknown to the caller.
    /// - **Nothing the caller cannot undo.** A dropped [`try_lock`](Backend::try_lock)
    ///   or [`read_for_fill`](Backend::read_for_fill) may still create a record
    ///   or lease once its request lands. The record holds the caller's owner
    ///   token or lease id, so the owner-checked [`release`](Backend::release) /
    ///   [`release_fill`](Backend::release_fill) the caller sends afterwards
    ///   must remove it even if it arrives after the create (or be ordered
    ///   after it); failing that, it must expire with its lease.
    /// - **No state left behind in the process**: no entry in a wake-up map,
    ///   no remembered token that a later call would trust wrongly.
    ///
    /// Timeouts are the backend's job: a call that cannot finish within the
    /// backend's configured timeout returns
    /// [`Error::BackendTimeout`](crate::Error::BackendTimeout) rather than hang.
    ///
    #[doc = include_str!("counting_example.md")]
} '_);
