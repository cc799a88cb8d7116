#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(unreachable_pub)]

pub mod backend;
mod cache;
mod clock;
mod error;
mod key;
mod lock;
mod observe;
pub mod typed;
mod url;

pub use backend::CasToken;
pub use cache::Cache;
pub use error::{BoxError, Error, Result};
pub use lock::{LeaseGuard, LeaseState, LockGuard, OptimisticLock, RedLock};
pub use typed::Fill;

pub use bytes::Bytes;
