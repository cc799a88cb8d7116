//! The comparison runs parts of itself in other OS processes: this binary
//! again, told its role by environment variables (the tests'
//! `tests/common/process.rs` does the same with test binaries). A child
//! prints one report line, `@@ <json>`, on stdout.

use std::process::Child;
use std::time::{Duration, UNIX_EPOCH};

use stampede::Cache;
use stampede_benches::{runtime, stampede_run};

pub const ROLE: &str = "STAMPEDE_COMPARE_CHILD";
pub const URL: &str = "STAMPEDE_COMPARE_CHILD_URL";
pub const KEY: &str = "STAMPEDE_COMPARE_CHILD_KEY";
pub const CALLERS: &str = "STAMPEDE_COMPARE_CHILD_CALLERS";
pub const FILL_MS: &str = "STAMPEDE_COMPARE_CHILD_FILL_MS";
pub const LEASE_MS: &str = "STAMPEDE_COMPARE_CHILD_LEASE_MS";
pub const START_US: &str = "STAMPEDE_COMPARE_CHILD_START_US";
pub const LOCKS: &str = "STAMPEDE_COMPARE_CHILD_LOCKS";
pub const WAVE: &str = "STAMPEDE_COMPARE_CHILD_WAVE";

const REPORT: &str = "@@ ";

fn var<T: std::str::FromStr>(name: &str) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a child needs {name}"))
}

/// Runs this process's role if it is a child; `false` for the parent.
pub fn run_if_child() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let report = match role.as_str() {
        "stampede" => stampede_share(),
        "memory" => serde_json::to_string(&crate::memory::held_in_waves(var(LOCKS), var(WAVE)))
            .expect("json"),
        other => panic!("unknown child role {other}"),
    };
    println!("{REPORT}{report}");
    true
}

fn stampede_share() -> String {
    let url: String = var(URL);
    let start_at = UNIX_EPOCH + Duration::from_micros(var(START_US));
    let rt = runtime(2);
    let outcome = rt.block_on(async {
        let cache = Cache::from_url(&url).await.expect("open the cache");
        // Connect before the clock starts.
        cache.get("warm-up").await.expect("warm-up read");
        stampede_run::stampede(
            &cache,
            &var::<String>(KEY),
            var(CALLERS),
            Duration::from_millis(var(FILL_MS)),
            Duration::from_millis(var(LEASE_MS)),
            start_at,
        )
        .await
    });
    serde_json::to_string(&outcome).expect("json")
}

/// Waits for a child and parses its report.
pub fn collect<T: serde::de::DeserializeOwned>(process: Child, what: &str) -> T {
    let output = process.wait_with_output().expect("wait for a child");
    assert!(output.status.success(), "{what} failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(REPORT))
        .unwrap_or_else(|| panic!("{what} reported nothing"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what} report: {e}"))
}
