//! Typed values over the byte cache: serde in and out, the stampede guard as
//! one call ([`get_or_fill`](Typed::get_or_fill)), and read-modify-write with
//! retry ([`update`](Typed::update)).
//!
//! The methods on [`Cache`](crate::Cache) use [`Json`];
//! [`Cache::with_codec`](crate::Cache::with_codec) gives the same methods
//! with another [`Codec`].
//!
//! Typed values are stored in a small frame (14 bytes: freshness and fill
//! time, which early refresh needs in every process) followed by the codec's
//! bytes. Reading a value without a frame, such as JSON written by another
//! client, decodes the whole value.
//!
//! This module only gathers the typed API's names: [`Typed`] is a handle
//! (`src/cache/`), the codecs sit below every algorithm (`src/codec/`), the
//! fill options beside the stampede guard (`src/fill/`) and [`Retry`] beside
//! the optimistic lock (`src/lock/`). Nothing inside the crate imports from
//! here.

pub use crate::cache::Typed;
#[cfg(feature = "postcard")]
pub use crate::codec::Postcard;
pub use crate::codec::{Codec, Json};
pub use crate::fill::{CacheIf, Fill, StoreAll, StorePolicy, TtlWith, DEFAULT_FILL_LEASE};
pub use crate::lock::update::Retry;
