//! Unit tests of the tier: see `tier_tests` below.

#[cfg(test)]
pub(crate) mod hooks {
    pub(crate) fn before_offer_check(_key: &str) {}
}
