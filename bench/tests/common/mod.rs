//! What the harness's small-size tests share: running `wgd-bench` for a
//! JSON report, and the checks a user would make of it.

use std::process::Command;

/// Runs `wgd-bench ARGS --runs 1 --json` and returns its report; fails
/// with its stderr if it fails.
pub fn report(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_wgd-bench"))
        .args(args)
        .args(["--runs", "1", "--json"])
        .output()
        .expect("wgd-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "wgd-bench failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

/// The row of `contender` and `metric`: there, for `size`, with one run
/// and a positive value.
#[allow(dead_code)] // each test binary builds this module; memory's does not call it
pub fn row<'a>(
    report: &'a serde_json::Value,
    contender: &str,
    metric: &str,
    size: usize,
) -> &'a serde_json::Value {
    let row = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["contender"] == contender && row["metric"] == metric)
        .unwrap_or_else(|| panic!("no {contender} {metric} row in {report}"));
    assert_eq!(row["size"], size, "{row}");
    assert_eq!(row["values"].as_array().map(Vec::len), Some(1), "{row}");
    assert!(row["median"].as_f64().is_some_and(|s| s > 0.0), "{row}");
    row
}

/// `contender` put every one of `size` routes in the kernel and took
/// every one out.
#[allow(dead_code)] // each test binary builds this module; memory's does not call it
pub fn all_in_and_out(report: &serde_json::Value, contender: &str, size: usize) {
    let count = report["counts"]
        .as_array()
        .and_then(|counts| counts.iter().find(|count| count["contender"] == contender))
        .unwrap_or_else(|| panic!("no count for {contender} in {report}"));
    assert_eq!(count["after_add"], size, "{count}");
    assert_eq!(count["after_withdraw"], 0, "{count}");
}

/// `contender`'s kernel held none of the routes once its session had gone
/// down (the bgp scenario's replaying peer ends it with a Cease).
#[allow(dead_code)] // each test binary builds this module; only bgp's call it
pub fn emptied_by_session_down(report: &serde_json::Value, contender: &str) {
    let count = report["counts"]
        .as_array()
        .and_then(|counts| counts.iter().find(|count| count["contender"] == contender))
        .unwrap_or_else(|| panic!("no count for {contender} in {report}"));
    assert_eq!(count["after_session_down"], 0, "{count}");
}
