//! `wgd-bench bgp --feeder replay` at a small size: the harness's own peer
//! must bring up a session with each receiver (wgd's speaker, BIRD and
//! FRR, as CI installs them), every receiver must have put every route in
//! its kernel and taken every one out, both when the peer withdrew them
//! and when it ended the session with a Cease, and the report must parse. No
//! timing is asserted; a second run does the same with a mixed table
//! (a fifth IPv6). Needs root, `ip`, `wg`, `wireguard-go`, bird2 and
//! frr, and the `wgd` binary of the same build (`cargo build -p wgd`).

mod common;

const PREFIXES: usize = 2_000;

#[test]
fn bgp_replay_at_small_size_reports_every_receiver_with_matching_counts() {
    let report = common::report(&[
        "bgp",
        "--feeder",
        "replay",
        "--receivers",
        "wgd,bird,frr",
        "--prefixes",
        &PREFIXES.to_string(),
    ]);
    for contender in ["wgd speaker", "bird", "frr"] {
        for metric in ["add", "withdraw", "session down", "session up"] {
            let row = common::row(&report, contender, metric, PREFIXES);
            assert_eq!(row["scenario"], "bgp-replay", "{row}");
        }
        common::all_in_and_out(&report, contender, PREFIXES);
        common::emptied_by_session_down(&report, contender);
    }
}

/// The same with a mixed table (a fifth IPv6): every receiver takes the
/// IPv6 routes over the same session into its IPv6 table, and the report
/// says what the table was.
#[test]
fn bgp_replay_of_a_mixed_table_reports_its_shape_and_every_route() {
    let report = common::report(&[
        "bgp",
        "--feeder",
        "replay",
        "--receivers",
        "wgd,bird,frr",
        "--ipv6",
        "20",
        "--prefixes",
        &PREFIXES.to_string(),
    ]);
    let shape = &report["tables"][0];
    assert_eq!(shape["prefixes"], PREFIXES, "{shape}");
    assert_eq!(shape["ipv6"], PREFIXES / 5, "{shape}");
    let sets = shape["attribute_sets"].as_u64().expect("attribute sets");
    let updates = shape["updates"].as_u64().expect("UPDATEs");
    assert!(sets > PREFIXES as u64 / 5 && updates >= sets, "{shape}");
    for contender in ["wgd speaker", "bird", "frr"] {
        common::row(&report, contender, "add", PREFIXES);
        common::row(&report, contender, "session down", PREFIXES);
        common::all_in_and_out(&report, contender, PREFIXES);
        common::emptied_by_session_down(&report, contender);
    }
}
