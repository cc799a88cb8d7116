//! [`forward_backend!`](crate::forward_backend): a wrapper backend forwards
//! every method it does not change in one line, generated from the method
//! list in `contract.rs`, so a method added to the trait is forwarded too.

use super::contract::backend_contract;

/// Declares `forward_backend!` and its hidden helper from the normalised
/// entries. `$d` is a `$`, for the macros it writes.
macro_rules! declare_forward {
    ($d:tt ; $({
        $mode:ident $this:ident [$(#[$m:meta])*] $name:ident [$($arg:ident : $ty:ty),*]
        ($out:ty) ($ret:ty) $body:tt
    })*) => {
        /// Writes, inside an `impl Backend for Wrapper` block, every
        /// [`Backend`](crate::backend::Backend) method as a call on the
        /// field `$field` (itself a `Backend`), except those named in
        /// `except [..]`, which the wrapper writes itself.
        ///
        /// A wrapper that counts, injects faults or breaks circuits then
        /// writes only what it changes, and stays complete when the trait
        /// gains a method: the new method is forwarded as well (a wrapper
        /// written by hand would fall back to the trait's default, and skip
        /// the inner backend's own form).
        ///
        /// - `forward_backend!(inner);` forwards everything to `self.inner`
        ///   (a tuple struct's field works too: `forward_backend!(0);`).
        /// - `forward_backend!(inner, except [get, set]);` forwards all but
        ///   `get` and `set`. Each name must be a `Backend` method (a typo
        ///   does not compile); a name the wrapper then does not write takes
        ///   the trait's default.
        ///
        /// The forwarded methods return the inner backend's futures as they
        /// are: no boxing, no extra state.
        ///
        /// # Example
        ///
        /// A backend that counts reads and passes everything on:
        ///
        /// ```
        /// use std::sync::atomic::{AtomicUsize, Ordering};
        /// use stampede::backend::{memory::MemoryBackend, Backend};
        /// use stampede::{Bytes, Cache, Result};
        ///
        /// struct CountingReads<B> {
        ///     inner: B,
        ///     reads: AtomicUsize,
        /// }
        ///
        /// impl<B: Backend> Backend for CountingReads<B> {
        ///     async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        ///         self.reads.fetch_add(1, Ordering::Relaxed);
        ///         self.inner.get(key).await
        ///     }
        ///
        ///     stampede::forward_backend!(inner, except [get]);
        /// }
        ///
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> stampede::Result<()> {
        /// let backend = CountingReads { inner: MemoryBackend::default(), reads: AtomicUsize::new(0) };
        /// assert_eq!(backend.kind(), "memory"); // forwarded
        /// backend.set("k", b"v", None).await?; // forwarded
        /// assert_eq!(backend.get("k").await?.as_deref(), Some(&b"v"[..]));
        /// assert_eq!(backend.reads.load(Ordering::Relaxed), 1);
        ///
        /// let cache = Cache::custom(backend);
        /// cache.set("k", b"w", None).await?;
        /// assert_eq!(cache.get("k").await?.as_deref(), Some(&b"w"[..]));
        /// # Ok(())
        /// # }
        /// ```
        ///
        /// A name in `except` that is not a `Backend` method is refused:
        ///
        /// ```compile_fail
        /// use stampede::backend::{memory::MemoryBackend, Backend};
        ///
        /// struct Wrapper(MemoryBackend);
        ///
        /// impl Backend for Wrapper {
        ///     stampede::forward_backend!(0, except [gett]);
        /// }
        /// ```
        #[macro_export]
        macro_rules! forward_backend {
            ($d field:tt) => {
                $d crate::forward_backend!($d field, except []);
            };
            ($d field:tt, except [$d($d skip:ident),* $d(,)?]) => {
                $d( $d crate::__forward_backend!(@known $d skip); )*
                $(
                    $d crate::__forward_backend! { [$d($d skip)*] $name
                        fn $name(&self $(, $arg: $ty)*) -> $ret {
                            $d crate::backend::Backend::$name(&self.$d field $(, $arg)*)
                        }
                    }
                )*
            };
        }

        /// `forward_backend!`'s helper: writes a method unless its name is
        /// in the list, and refuses names that are not `Backend` methods.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __forward_backend {
            $( (@known $name) => {}; )*
            (@known $d other:ident) => {
                compile_error!(concat!(
                    "`", stringify!($d other), "` is not a method of stampede::backend::Backend"
                ));
            };
            $( ([$name $d($d rest:ident)*] $name $d($d method:tt)*) => {}; )*
            ([$d head:ident $d($d rest:ident)*] $d name:ident $d($d method:tt)*) => {
                $d crate::__forward_backend! { [$d($d rest)*] $d name $d($d method)* }
            };
            ([] $d name:ident $d($d method:tt)*) => {
                $d($d method)*
            };
        }
    };
}

backend_contract!(declare_forward { $ } '_);
