//! Running part of a test in another OS process.
//!
//! The test binary re-runs itself with `--exact <entry> --ignored`, where
//! `<entry>` is an `#[ignore]`d test that acts as the child's `main`. The
//! child reads its orders from environment variables and reports on stdout
//! in lines starting with [`REPORT`], which the parent collects.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Set in a child's environment; its entry point refuses to run without it.
pub const CHILD_ENV: &str = "STAMPEDE_TEST_CHILD";

/// Prefix of the lines a child reports on.
pub const REPORT: &str = "@@ ";

/// Starts this test binary again, running only the ignored test `entry`.
pub fn spawn(entry: &str, vars: &[(&str, String)]) -> Child {
    command(entry, vars)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn child test process")
}

/// As [`spawn`], with the child's stdin piped so the parent can give it
/// orders while it runs (one line each; see [`read_order`]).
pub fn spawn_with_stdin(entry: &str, vars: &[(&str, String)]) -> Child {
    command(entry, vars)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn child test process")
}

/// The full path of the ignored test `entry` in the test binary `exe`:
/// `entry` itself, or `<modules>::entry` (the binaries hold several files'
/// tests as modules), as `--exact` needs it.
fn full_name(exe: &std::path::Path, entry: &str) -> String {
    let output = Command::new(exe)
        .args(["--list", "--ignored"])
        .env(CHILD_ENV, "1")
        .stderr(Stdio::inherit())
        .output()
        .expect("list the test binary's ignored tests");
    let suffix = format!("::{entry}");
    let listed = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| *name == entry || name.ends_with(&suffix))
        .collect();
    match names[..] {
        [name] => name.to_owned(),
        _ => panic!("child entry {entry:?} names {names:?} in this binary, not one test"),
    }
}

fn command(entry: &str, vars: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let entry = full_name(&exe, entry);
    let mut command = Command::new(exe);
    command
        .args([
            entry.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// In a child started by [`spawn_with_stdin`]: blocks until the parent
/// sends the next order line, and returns it trimmed (`None` once the parent
/// closed the pipe).
pub fn read_order() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_owned()),
    }
}

/// True in a child started by [`spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Reads an order given to a child.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child process needs {name}"))
}

/// Reports one line to the parent.
pub fn report(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // Starts on a line of its own: the test harness prints `test <name> ... `
    // without a newline before running the entry, and the first report
    // would otherwise be glued to it and missed by `next_report`.
    writeln!(out, "\n{REPORT}{line}").expect("report to parent");
    out.flush().expect("flush report");
}

/// Reads the next report line from a child (without the prefix); `None` at
/// the end of its output.
///
/// The marker may come after other text on the line: with `--nocapture`,
/// libtest prints `test <name> ... ` with no newline before the test's own
/// first output.
pub fn next_report(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Option<String> {
    lines.map_while(Result::ok).find_map(|line| {
        line.find(REPORT)
            .map(|at| line[at + REPORT.len()..].to_owned())
    })
}

/// The report lines of a child's stdout.
pub fn report_lines(stdout: ChildStdout) -> impl Iterator<Item = std::io::Result<String>> {
    BufReader::new(stdout).lines()
}

/// Waits for a child and fails the test if it failed.
#[track_caller]
pub fn expect_success(mut child: Child, what: &str) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "{what} failed: {status}");
}

/// The runtime a process test (parent or child) runs its async part on:
/// two workers, like the machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}
