//! The Lua scripts, loaded from the `*.lua` files beside this one. Each
//! file's first line is its contract. [`redis::Script`] sends `EVALSHA` and
//! loads the script again when the server answers `NOSCRIPT` (after a
//! restart or a `SCRIPT FLUSH`).

use std::sync::LazyLock;

use redis::Script;

/// Compare-and-set against an envelope header, exact bytes or absence.
pub(super) fn cas(announcing: bool) -> &'static Script {
    static PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("cas.lua")));
    static ANNOUNCING: LazyLock<Script> = LazyLock::new(|| announced(include_str!("cas.lua")));
    if announcing {
        &ANNOUNCING
    } else {
        &PLAIN
    }
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
pub(super) fn fill_store(announcing: bool) -> &'static Script {
    static PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill_store.lua")));
    static ANNOUNCING: LazyLock<Script> =
        LazyLock::new(|| announced(include_str!("fill_store.lua")));
    if announcing {
        &ANNOUNCING
    } else {
        &PLAIN
    }
}

/// Gives a fill lease back.
pub(super) fn fill_release() -> &'static Script {
    static SCRIPT: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("fill_release.lua")));
    &SCRIPT
}

/// Marks a value stale, voiding any fill lease.
pub(super) fn mark_stale(announcing: bool) -> &'static Script {
    static PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("mark_stale.lua")));
    static ANNOUNCING: LazyLock<Script> =
        LazyLock::new(|| announced(include_str!("mark_stale.lua")));
    if announcing {
        &ANNOUNCING
    } else {
        &PLAIN
    }
}

/// Deletes a value and voids its fill lease.
pub(super) fn delete(announcing: bool) -> &'static Script {
    static PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("delete.lua")));
    static ANNOUNCING: LazyLock<Script> = LazyLock::new(|| announced(include_str!("delete.lua")));
    if announcing {
        &ANNOUNCING
    } else {
        &PLAIN
    }
}

/// Adds to a counter, bare or in our envelope, keeping its TTL.
pub(super) fn incr(announcing: bool) -> &'static Script {
    static PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("incr.lua")));
    static ANNOUNCING: LazyLock<Script> = LazyLock::new(|| announced(include_str!("incr.lua")));
    if announcing {
        &ANNOUNCING
    } else {
        &PLAIN
    }
}

/// A command (`SET`, `PEXPIRE`) with its write announced.
pub(super) fn command_announced() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| announced(include_str!("command.lua")));
    &SCRIPT
}

/// Announces a change made outside a script (`clear`).
pub(super) fn announce() -> &'static Script {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
        Script::new(&format!(
            "{}\nreturn announce(ARGV[1], KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])",
            include_str!("announce.lua")
        ))
    });
    &SCRIPT
}

/// `body` (a write script) followed by the announcement of its write,
/// whose keys and arguments come after the body's: the change log and its
/// counter last among the keys; channel, origin, version, cap and when
/// last among the arguments. `when` is `always`, or `changed`: only when
/// the body's reply is neither 0 nor nil (nothing was written).
fn announced(body: &str) -> Script {
    Script::new(&format!(
        "{announce}\nlocal function write()\n{body}\nend\nlocal result = write()\n\
         local k, a = #KEYS, #ARGV\n\
         if ARGV[a] == 'always' or (result ~= 0 and result ~= false and result ~= nil) then\n\
         announce(KEYS[1], KEYS[k - 1], KEYS[k], ARGV[a - 4], ARGV[a - 3], ARGV[a - 2], ARGV[a - 1])\n\
         end\nreturn result",
        announce = include_str!("announce.lua"),
    ))
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
            include_str!("announce.lua"),
            include_str!("command.lua"),
        ] {
            let first = source.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("-- KEYS[1]=") && first.contains("returns"),
                "{first}"
            );
        }
    }
}
