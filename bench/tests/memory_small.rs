//! `wgd-bench memory` at a small size: the report parses, the table's
//! structures each hold a share, and the shares account for what the
//! whole table took (the scenario attributes bytes by dropping each
//! structure in turn: a share left out or counted twice shows here). No
//! lab and no root needed.

mod common;

const PREFIXES: usize = 5_000;

fn shares(report: &serde_json::Value) -> Vec<(String, f64)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| {
            row["scenario"]
                .as_str()
                .is_some_and(|s| s.starts_with("memory"))
        })
        .map(|row| {
            (
                row["metric"].as_str().expect("a metric").to_owned(),
                row["median"].as_f64().expect("a value"),
            )
        })
        .collect()
}

fn check(args: &[&str]) {
    let report = common::report(args);
    let shares = shares(&report);
    let all = shares
        .iter()
        .find(|(metric, _)| metric == "bytes per prefix, all")
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no total in {report}"));
    let share = |name: &str| {
        shares
            .iter()
            .find(|(metric, _)| metric.starts_with(&format!("bytes per prefix, {name}")))
            .map(|(_, bytes)| *bytes)
            .unwrap_or_else(|| panic!("no {name} row in {report}"))
    };
    for name in ["bridge: slots", "speaker: Adj-RIB-In", "attribute sets"] {
        assert!(share(name) > 1.0, "{name}: {}\n{report}", share(name));
    }
    let parts: f64 = shares
        .iter()
        .filter(|(metric, _)| metric != "bytes per prefix, all")
        .map(|(_, bytes)| bytes)
        .sum();
    assert!(
        (0.85 * all..=1.05 * all).contains(&parts),
        "the shares add up to {parts:.1} bytes per prefix of {all:.1}\n{report}"
    );
    let shape = report["tables"]
        .as_array()
        .and_then(|shapes| shapes.first())
        .unwrap_or_else(|| panic!("no table shape in {report}"));
    assert_eq!(shape["prefixes"], PREFIXES, "{shape}");
}

#[test]
fn the_shares_of_a_real_shaped_table_add_up() {
    check(&["memory", "--prefixes", &PREFIXES.to_string()]);
}

#[test]
fn the_shares_of_a_mixed_table_add_up() {
    check(&[
        "memory",
        "--prefixes",
        &PREFIXES.to_string(),
        "--ipv6",
        "20",
    ]);
}
