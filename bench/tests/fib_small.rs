//! `wgd-bench fib` at a small size, as CI runs it: it must build its lab,
//! run wgd and both anchors, print a report that parses, and every
//! contender must have put every route in the kernel and taken every one
//! out. No timing is asserted. Needs root, `ip`, `wg` and `wireguard-go`,
//! and the `wgd` binary of the same build (`cargo build -p wgd`).

mod common;

const PREFIXES: usize = 2_000;

#[test]
fn fib_at_small_size_reports_every_contender_with_matching_counts() {
    let report = common::report(&["fib", "--prefixes", &PREFIXES.to_string()]);
    for contender in ["wgd session", "ip -batch", "netlink packed"] {
        for metric in ["add", "withdraw"] {
            common::row(&report, contender, metric, PREFIXES);
        }
        common::all_in_and_out(&report, contender, PREFIXES);
    }
    let rows = report["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|row| row["metric"] == "rss per prefix" && row["unit"] == "bytes"),
        "{report}"
    );
}
