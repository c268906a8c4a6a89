//! `wgd-bench restart` at a small size, both ways the routes reach wgd: a
//! gRPC session, and wgd's own BGP speaker from the harness's replay peer.
//! `wgd run` is killed (`kill -9`) with the routes in the kernel and
//! started again: the report must parse, and the lowest count of wgd's
//! routes in the kernel from the kill until the new daemon had re-claimed
//! them all must be the whole table (a restart drops no route), and the
//! table withdrawn after must leave none. No timing is asserted. Needs
//! root, `ip`, `wg`, `wireguard-go`, and the `wgd` binary of the same
//! build (`cargo build -p wgd`).

mod common;

const PREFIXES: usize = 2_000;

#[test]
fn a_restart_with_routes_from_a_session_keeps_them_all() {
    let report = common::report(&["restart", "--prefixes", &PREFIXES.to_string()]);
    common::row(&report, "wgd", "all re-claimed", PREFIXES);
    common::all_in_and_out(&report, "wgd", PREFIXES);
}

#[test]
fn a_restart_with_routes_from_the_speaker_keeps_them_all() {
    let report = common::report(&[
        "restart",
        "--via",
        "bgp",
        "--ipv6",
        "20",
        "--prefixes",
        &PREFIXES.to_string(),
    ]);
    for metric in ["api answers", "session up again", "all re-claimed"] {
        common::row(&report, "wgd speaker", metric, PREFIXES);
    }
    let lowest = common::row(&report, "wgd speaker", "lowest kernel count", PREFIXES);
    assert_eq!(lowest["median"], PREFIXES as f64, "{lowest}");
    common::all_in_and_out(&report, "wgd speaker", PREFIXES);
}
