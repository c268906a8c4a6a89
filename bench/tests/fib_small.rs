//! `wgd-bench fib` at a small size, as CI runs it: it must build its lab,
//! run wgd and both anchors, print a report that parses, and every
//! contender must have put every route in the kernel and taken every one
//! out. No timing is asserted. Needs root, `ip`, `wg` and `wireguard-go`,
//! and the `wgd` binary of the same build (`cargo build -p wgd`).

use std::process::Command;

const PREFIXES: usize = 2_000;

#[test]
fn fib_at_small_size_reports_every_contender_with_matching_counts() {
    let output = Command::new(env!("CARGO_BIN_EXE_wgd-bench"))
        .args([
            "fib",
            "--prefixes",
            &PREFIXES.to_string(),
            "--runs",
            "1",
            "--json",
        ])
        .output()
        .expect("wgd-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "wgd-bench failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report is JSON");
    let rows = report["rows"].as_array().expect("rows");
    for contender in ["wgd session", "ip -batch", "netlink packed"] {
        for metric in ["add", "withdraw"] {
            let row = rows
                .iter()
                .find(|row| row["contender"] == contender && row["metric"] == metric)
                .unwrap_or_else(|| panic!("no {contender} {metric} row in {report}"));
            assert_eq!(row["size"], PREFIXES);
            assert_eq!(row["values"].as_array().map(Vec::len), Some(1));
            assert!(row["median"].as_f64().is_some_and(|s| s > 0.0), "{row}");
        }
        let count = report["counts"]
            .as_array()
            .and_then(|counts| counts.iter().find(|count| count["contender"] == contender))
            .unwrap_or_else(|| panic!("no count for {contender} in {report}"));
        assert_eq!(count["after_add"], PREFIXES, "{count}");
        assert_eq!(count["after_withdraw"], 0, "{count}");
    }
    assert!(
        rows.iter()
            .any(|row| row["metric"] == "rss per prefix" && row["unit"] == "bytes"),
        "{report}"
    );
}
