//! `wgd-bench bgp --feeder replay` at a small size: the harness's own peer
//! must bring up a session with each receiver (wgd's speaker, BIRD and
//! FRR, as CI installs them), every receiver must have put every route in
//! its kernel and taken every one out, and the report must parse. No
//! timing is asserted. Needs root, `ip`, `wg`, `wireguard-go`, bird2 and
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
        for metric in ["add", "withdraw", "session up"] {
            let row = common::row(&report, contender, metric, PREFIXES);
            assert_eq!(row["scenario"], "bgp-replay", "{row}");
        }
        common::all_in_and_out(&report, contender, PREFIXES);
    }
}
