//! Runtime choice of backend, generated from the one method list in
//! `contract.rs`.
//!
//! [`Backend`] returns `impl Future`, so it is not object safe. The built-in
//! backends are dispatched through an enum. The memory backend's futures
//! stay inline (no allocation per call); the network backends' futures are
//! boxed, because an enum's future is as large as its largest arm's: inline,
//! the Redis futures (kilobytes) would be copied at every `.await` layer of
//! every call on every backend, which cost the memory backend more than its
//! own work, while one allocation is nothing next to a round trip. Custom
//! backends go through [`DynBackend`], the object-safe twin of the trait,
//! which boxes their futures.
//!
//! The store behind a near tier (`Near`, see [`crate::near::backend`]) goes
//! through the twin as well: the tier's future holds the future of the
//! store under it, itself an `AnyBackend` call, so inline the enum's future
//! would contain itself. (Boxed behind the twin, the variant also keeps
//! this module from naming the tier's type.) [`SharedBackend`] is the store
//! the tier wraps, shared with the context that keeps it for what must
//! bypass the tier.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::contract::backend_contract;
use super::memory::MemoryBackend;
use super::Backend;
use crate::url::CacheUrl;
use crate::{Error, Result};

/// The backend behind a [`Cache`](crate::Cache).
// One per cache, behind the cache's `Arc`: its size costs nothing per call,
// and boxing a variant would add a pointer hop to every operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyBackend {
    Memory(MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisBackend),
    #[cfg(feature = "memcached")]
    Memcached(super::memcached::MemcachedBackend),
    Custom(Box<dyn DynBackend>),
    /// The store behind this process's near tier (`NearBackend`, in
    /// `crate::near::backend`), through the object-safe twin: its futures
    /// hold the store's, themselves `AnyBackend` calls (see the module docs).
    Near(Box<dyn DynBackend>),
}

/// An [`AnyBackend`] shared by `Arc`: the store a near tier wraps, which
/// the context keeps too. A [`Backend`] by the generated forwarding below.
#[derive(Clone)]
pub(crate) struct SharedBackend(pub(crate) Arc<AnyBackend>);

impl AnyBackend {
    /// The backend a parsed cache URL names, by its scheme. Takes the
    /// parameters that backend understands from `url`; the caller refuses
    /// any left over.
    pub(crate) async fn from_url(url: &mut CacheUrl<'_>) -> Result<AnyBackend> {
        Ok(match url.scheme.as_str() {
            "memory" => AnyBackend::Memory(MemoryBackend::from_url(url)?),
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
            | "rediss+sentinel" => AnyBackend::Redis(super::redis::RedisBackend::from_url(url)?),
            #[cfg(feature = "memcached")]
            "memcached" => {
                AnyBackend::Memcached(super::memcached::MemcachedBackend::from_url(url).await?)
            }
            #[cfg(not(feature = "redis"))]
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
            | "rediss+sentinel" => {
                return Err(Error::invalid_config(
                    url.original,
                    "this build of stampede has no Redis support; enable its `redis` feature",
                ))
            }
            #[cfg(not(feature = "memcached"))]
            "memcached" => return Err(Error::invalid_config(
                url.original,
                "this build of stampede has no memcached support; enable its `memcached` feature",
            )),
            other => {
                return Err(Error::invalid_config(
                    url.original,
                    format!(
                        "unknown scheme `{other}`; expected memory, redis, rediss, redis+cluster, redis+sentinel (or their rediss+ forms) or memcached"
                    ),
                ))
            }
        })
    }
}

/// One call on whichever backend `$self` holds: `$call` on a built-in one
/// (bound to `$b`), `$dyn_call` on a custom one or the near tier. Async
/// calls box the network backends' futures (see the module docs).
macro_rules! on_any {
    (async $self:ident, $b:ident => $call:expr, $dyn_call:expr) => {
        async move {
            match $self {
                AnyBackend::Memory($b) => $call.await,
                #[cfg(feature = "redis")]
                AnyBackend::Redis($b) => Box::pin($call).await,
                #[cfg(feature = "memcached")]
                AnyBackend::Memcached($b) => Box::pin($call).await,
                AnyBackend::Custom($b) | AnyBackend::Near($b) => $dyn_call.await,
            }
        }
    };
    (sync $self:ident, $b:ident => $call:expr, $dyn_call:expr) => {
        match $self {
            AnyBackend::Memory($b) => $call,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => $call,
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached($b) => $call,
            AnyBackend::Custom($b) | AnyBackend::Near($b) => $dyn_call,
        }
    };
}

/// `impl Backend for AnyBackend`: every method dispatched.
macro_rules! dispatch_any {
    (; $({
        $mode:ident $this:ident [$(#[$m:meta])*] $name:ident [$($arg:ident : $ty:ty),*]
        ($out:ty) ($ret:ty) $body:tt
    })*) => {
        impl Backend for AnyBackend {
            $(
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    on_any!($mode self, b => Backend::$name(b $(, $arg)*),
                        DynBackend::$name(&**b $(, $arg)*))
                }
            )*
        }
    };
}

backend_contract!(dispatch_any {} '_);

/// `impl Backend for SharedBackend`: every method passed to the shared
/// enum.
macro_rules! dispatch_shared {
    (; $({
        $mode:ident $this:ident [$(#[$m:meta])*] $name:ident [$($arg:ident : $ty:ty),*]
        ($out:ty) ($ret:ty) $body:tt
    })*) => {
        impl Backend for SharedBackend {
            $(
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    Backend::$name(&*self.0 $(, $arg)*)
                }
            )*
        }
    };
}

backend_contract!(dispatch_shared {} '_);

/// The return type of a [`DynBackend`] method: async ones boxed.
macro_rules! dyn_ret {
    (async $l:lifetime $out:ty) => { BoxFuture<$l, $out> };
    (sync $l:lifetime $out:ty) => { $out };
}

/// A [`Backend`] call as a [`DynBackend`] returns it.
macro_rules! dyn_call {
    (async $call:expr) => {
        Box::pin($call)
    };
    (sync $call:expr) => {
        $call
    };
}

/// The object-safe twin of [`Backend`], and its blanket implementation.
macro_rules! dyn_twin {
    ($l:lifetime ; $({
        $mode:ident $this:ident [$(#[$m:meta])*] $name:ident [$($arg:ident : $ty:ty),*]
        ($out:ty) ($ret:ty) $body:tt
    })*) => {
        /// [`Backend`] with boxed futures, so a user's backend can sit behind
        /// a `Box<dyn …>`. Blanket-implemented for every [`Backend`].
        pub(crate) trait DynBackend: Send + Sync + 'static {
            $( fn $name<$l>(&$l self $(, $arg: $ty)*) -> dyn_ret!($mode $l $out); )*
        }

        impl<B: Backend> DynBackend for B {
            $(
                fn $name<$l>(&$l self $(, $arg: $ty)*) -> dyn_ret!($mode $l $out) {
                    dyn_call!($mode Backend::$name(self $(, $arg)*))
                }
            )*
        }
    };
}

backend_contract!(dyn_twin { 'a } 'a);
