//! The seed: aiocache's own RedLock and OptimisticLock, run by
//! `benches/aiocache_compare.py` in a virtualenv this command makes itself
//! under `target/`, against the same servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::knobs::Knobs;

/// What gets installed into the virtualenv.
const REQUIREMENTS: [&str; 3] = ["aiocache==0.12.3", "redis>=5,<9", "aiomcache>=0.8,<0.9"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The virtualenv's python, made and filled on first use.
fn venv_python(knobs: &Knobs) -> Result<PathBuf, String> {
    let venv = target_dir().join("aiocache-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("installed.txt");
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    run(
        Command::new(&knobs.python).args(["-m", "venv"]).arg(&venv),
        "making the virtualenv (python3 -m venv)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
        "pip install aiocache",
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Runs every aiocache workload; its JSON, or why it could not run.
pub fn run_aiocache(knobs: &Knobs, redis: &str, memcached: &str) -> Result<Value, String> {
    let python = venv_python(knobs)?;
    let script = workspace().join("benches").join("aiocache_compare.py");
    let output = Command::new(python)
        .arg(script)
        .args(["--redis", redis, "--memcached", memcached])
        .args(["--backends", "memory,redis,memcached"])
        .args(["--pairs", &knobs.scaled(1_000).to_string()])
        .args(["--concurrency", &knobs.tasks.to_string()])
        .args(["--callers", &knobs.callers.to_string()])
        .args(["--procs", &knobs.procs.to_string()])
        .args(["--fill-ms", &knobs.fill.as_millis().to_string()])
        .args(["--lease-s", &knobs.lease.as_secs_f64().to_string()])
        .args(["--cas-tasks", &knobs.cas_tasks.to_string()])
        .args(["--cas-each", &knobs.cas_each.to_string()])
        .args(["--race-trials", &knobs.race_trials.to_string()])
        .args(["--race-in-flight", &knobs.race_in_flight.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running aiocache_compare.py: {e}"))?;
    if !output.status.success() {
        return Err(format!("aiocache_compare.py failed: {}", output.status));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("aiocache_compare.py output: {e}"))
}

/// µs per pair of an aiocache `pairs` entry (`redlock_seq`, …).
pub fn pair_us(seed: &Value, backend: &str, entry: &str) -> Option<f64> {
    let entry = &seed["pairs"][backend][entry];
    Some(entry["secs"].as_f64()? * 1e6 / entry["ops"].as_f64()?)
}

/// A list of numbers in the JSON.
pub fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}
