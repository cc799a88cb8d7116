//! How typed values become bytes: [`Codec`], with [`Json`] by default and
//! [`Postcard`] (feature `postcard`) as a compact binary option.

pub(crate) mod frame;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BoxError, Error, Result};
use frame::Meta;

/// Turns values into bytes and back for the typed API
/// ([`Cache::set_value`](crate::Cache::set_value),
/// [`get_or_fill`](crate::Cache::get_or_fill), …).
///
/// Implement it to store values in your own format and use it through
/// [`Cache::with_codec`](crate::Cache::with_codec).
///
/// ```
/// use serde::{de::DeserializeOwned, Serialize};
/// use stampede::{typed::Codec, BoxError};
///
/// /// JSON, but pretty: easier to read in `redis-cli`.
/// #[derive(Clone, Copy, Debug, Default)]
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn encode_into<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
///         Ok(serde_json::to_writer_pretty(out, value)?)
///     }
///     fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
///         Ok(serde_json::from_slice(bytes)?)
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// let cache = stampede::Cache::memory();
/// cache.with_codec(PrettyJson).set_value("k", &vec![1, 2], None).await?;
/// assert_eq!(cache.with_codec(PrettyJson).get_value::<Vec<u8>>("k").await?, Some(vec![1, 2]));
/// # Ok(())
/// # }
/// ```
pub trait Codec: Clone + Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// Whatever the format cannot represent.
    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError>;

    /// Decodes a value from `bytes`.
    ///
    /// # Errors
    ///
    /// Bytes that are not a valid encoding of a `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// JSON through `serde_json`: readable by any other client. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        Ok(serde_json::to_writer(out, value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Postcard: a compact binary format, smaller and faster than JSON, readable
/// only by serde with the same types. Feature `postcard`.
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        let mut buffer = std::mem::take(out);
        buffer = postcard::to_extend(value, buffer)?;
        *out = buffer;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// `value` framed with `meta` and encoded by `codec`.
pub(crate) fn encode<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    key: &str,
    value: &T,
    meta: Meta,
) -> Result<Vec<u8>> {
    let mut bytes = frame::start(meta);
    codec
        .encode_into(value, &mut bytes)
        .map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Unframes and decodes stored bytes.
/// The frame and the value of `bytes`, decoded by `codec`.
pub(crate) fn decode<C: Codec, T: DeserializeOwned>(
    codec: &C,
    key: &str,
    bytes: &[u8],
) -> Result<(Option<Meta>, T)> {
    let (meta, payload) = frame::split(bytes);
    let value = codec.decode(payload).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })?;
    Ok((meta, value))
}
