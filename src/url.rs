//! Parsing of cache URLs: `scheme://rest?name=value&…`.
//!
//! Each layer takes the query parameters it understands
//! ([`CacheUrl::take`]); any left over at the end are refused by
//! [`CacheUrl::finish`], so a misspelt option is an error rather than a
//! silent default.

use std::time::Duration;

use crate::{Error, Result};

/// A cache URL split into its parts.
#[derive(Debug)]
pub(crate) struct CacheUrl<'a> {
    /// The whole URL as given, for error messages.
    pub(crate) original: &'a str,
    /// Lower-cased scheme, without `://`.
    pub(crate) scheme: String,
    /// Everything between `://` and `?`.
    pub(crate) rest: &'a str,
    params: Vec<(String, String)>,
}

impl<'a> CacheUrl<'a> {
    pub(crate) fn parse(original: &'a str) -> Result<Self> {
        let Some((scheme, after)) = original.split_once("://") else {
            return Err(Error::invalid_config(
                original,
                "expected a URL such as memory://, redis://host:6379 or memcached://host:11211",
            ));
        };
        // The user-info ends at the last `@`, whatever it contains, so that
        // a password with an unencoded `?`, `/` or `#` stays in it (and out
        // of the query and of error messages). An `@` elsewhere must be
        // percent-encoded (`%40`).
        let host_from = after.rfind('@').map_or(0, |at| at + 1);
        let (rest, query) = match after[host_from..].find('?') {
            Some(q) => (&after[..host_from + q], &after[host_from + q + 1..]),
            None => (after, ""),
        };
        let mut params = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((
                percent_decode(original, name)?,
                percent_decode(original, value)?,
            ));
        }
        Ok(CacheUrl {
            original,
            scheme: scheme.to_ascii_lowercase(),
            rest,
            params,
        })
    }

    /// Removes and returns the parameter `name`, if present.
    pub(crate) fn take(&mut self, name: &str) -> Option<String> {
        let at = self.params.iter().position(|(n, _)| n == name)?;
        Some(self.params.remove(at).1)
    }

    /// Removes `name` and parses it as a whole number.
    pub(crate) fn take_u64(&mut self, name: &str) -> Result<Option<u64>> {
        match self.take(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                Error::invalid_config(
                    self.original,
                    format!("parameter `{name}` must be a whole number, not {text:?}"),
                )
            }),
        }
    }

    /// Removes `name` (in milliseconds) and parses it as a non-zero duration.
    #[cfg_attr(not(any(feature = "redis", feature = "memcached")), allow(dead_code))]
    pub(crate) fn take_millis(&mut self, name: &str) -> Result<Option<Duration>> {
        match self.take_u64(name)? {
            Some(0) => Err(Error::invalid_config(
                self.original,
                format!("parameter `{name}` must be more than 0 milliseconds"),
            )),
            other => Ok(other.map(Duration::from_millis)),
        }
    }

    /// Refuses any parameter nobody took.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.params.first() {
            None => Ok(()),
            Some((name, _)) => Err(Error::invalid_config(
                self.original,
                format!("unknown parameter `{name}` for a {}:// cache", self.scheme),
            )),
        }
    }
}

fn percent_decode(url: &str, text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::invalid_config(url, format!("bad percent-escape in {text:?}"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::invalid_config(url, format!("{text:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scheme_rest_and_params() {
        let mut url = CacheUrl::parse("Redis://h:1/2?namespace=a%3Ab&timeout_ms=50").unwrap();
        assert_eq!(url.scheme, "redis");
        assert_eq!(url.rest, "h:1/2");
        assert_eq!(url.take("namespace").as_deref(), Some("a:b"));
        assert_eq!(
            url.take_millis("timeout_ms").unwrap(),
            Some(Duration::from_millis(50))
        );
        assert!(url.finish().is_ok());
    }

    #[test]
    fn config_errors_never_show_a_password() {
        let url = CacheUrl::parse("redis://user:hunter2@h:1/0?bogus=1").unwrap();
        let message = url.finish().unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("redis://***@h:1/0"), "{message}");
    }

    #[test]
    fn a_password_with_reserved_characters_stays_in_the_user_info() {
        for reserved in ['?', '/', '#', '&', '='] {
            let text = format!("memcached://u:s3cr{reserved}Xq9@h:1?timeout_ms=5");
            let mut url = CacheUrl::parse(&text).unwrap();
            assert_eq!(url.rest, format!("u:s3cr{reserved}Xq9@h:1"), "{reserved:?}");
            assert_eq!(
                url.take_millis("timeout_ms").unwrap(),
                Some(Duration::from_millis(5))
            );
            assert!(url.finish().is_ok(), "{reserved:?}");
        }
    }

    #[test]
    fn leftover_and_malformed_params_are_errors() {
        let url = CacheUrl::parse("memory://?namspace=x").unwrap();
        let err = url.finish().unwrap_err();
        assert!(
            err.to_string().contains("unknown parameter `namspace`"),
            "{err}"
        );

        let mut url = CacheUrl::parse("memory://?max_capacity=lots").unwrap();
        assert!(url.take_u64("max_capacity").is_err());
        let mut url = CacheUrl::parse("memory://?timeout_ms=0").unwrap();
        assert!(url.take_millis("timeout_ms").is_err());
        assert!(CacheUrl::parse("memory://?a=%zz").is_err());
        assert!(CacheUrl::parse("localhost:6379").is_err());
    }
}
