//! The Lua scripts, loaded from the `*.lua` files beside this one. Each
//! file's first line is its contract. [`redis::Script`] sends `EVALSHA` and
//! loads the script again when the server answers `NOSCRIPT` (after a
//! restart or a `SCRIPT FLUSH`).

use std::sync::LazyLock;

use redis::Script;

/// Compare-and-set against an envelope header, exact bytes or absence.
pub(super) fn cas() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("cas.lua")));
    &SCRIPT
}

/// Create a lock record and issue a fence, or report the holder's PTTL.
pub(super) fn lock_fenced() -> &'static Script {
    static SCRIPT: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lock_fenced.lua")));
    &SCRIPT
}

/// A lock record and its remaining lease, read together.
pub(super) fn lock_record() -> &'static Script {
    static SCRIPT: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lock_record.lua")));
    &SCRIPT
}

/// Owner-checked delete that publishes the release.
pub(super) fn release() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
    &SCRIPT
}

/// Owner-checked lease renewal.
pub(super) fn extend() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend.lua")));
    &SCRIPT
}

/// Reads a value for a fill, taking the fill lease when it needs one.
pub(super) fn fill_read() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill_read.lua")));
    &SCRIPT
}

/// Stores a fill's value if its lease is still valid.
pub(super) fn fill_store() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill_store.lua")));
    &SCRIPT
}

/// Gives a fill lease back.
pub(super) fn fill_release() -> &'static Script {
    static SCRIPT: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("fill_release.lua")));
    &SCRIPT
}

/// Marks a value stale, voiding any fill lease.
pub(super) fn mark_stale() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("mark_stale.lua")));
    &SCRIPT
}

/// Deletes a value and voids its fill lease.
pub(super) fn delete() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("delete.lua")));
    &SCRIPT
}

/// Adds to a counter, bare or in our envelope, keeping its TTL.
pub(super) fn incr() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("incr.lua")));
    &SCRIPT
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_starts_with_its_contract() {
        for source in [
            include_str!("cas.lua"),
            include_str!("lock_fenced.lua"),
            include_str!("lock_record.lua"),
            include_str!("release.lua"),
            include_str!("extend.lua"),
            include_str!("fill_read.lua"),
            include_str!("fill_store.lua"),
            include_str!("fill_release.lua"),
            include_str!("mark_stale.lua"),
            include_str!("delete.lua"),
            include_str!("incr.lua"),
        ] {
            let first = source.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("-- KEYS[1]=") && first.contains("returns"),
                "{first}"
            );
        }
    }
}
