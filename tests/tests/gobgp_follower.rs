//! The GoBGP follower against Debian's `gobgpd`: gobgpd runs on the same
//! host as `wgd run` (site A, its API on A's loopback), routes added with
//! `gobgp global rib add` (both families) reach A's kernel over the tunnel
//! as owner `gobgp` and carry traffic, a withdrawal removes its route,
//! `kill -9` of gobgpd and its restart (its table taught again, as its
//! peers would) within the hold time change nothing in the kernel, and
//! past the hold time without gobgpd the routes leave.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bgp::{RouteMonitor, listed_route};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::gobgp::{API_HOST, API_PORT, Gobgp};

/// The follower's hold time: short, as the test waits it out twice.
const HOLD: u64 = 8;
const DEADLINE: Duration = Duration::from_secs(15);

/// gobgpd on A: a BGP server with no neighbors; its table is what the CLI
/// adds.
fn gobgp_config() -> String {
    format!(
        "[global.config]\n  as = 65001\n  router-id = \"{}\"\n",
        BridgeLab::TUNNEL_A
    )
}

/// `gobgp global rib -a FAMILY add|del PREFIX [nexthop B's tunnel address]`.
fn rib(gobgp: &Gobgp, operation: &str, family: &str) -> anyhow::Result<()> {
    let (prefix, next_hop) = match family {
        "ipv4" => (BridgeLab::FAR_LAN, BridgeLab::TUNNEL_B),
        _ => (BridgeLab::FAR_LAN6, BridgeLab::TUNNEL_B6),
    };
    let mut args = vec!["global", "rib", "-a", family, operation, prefix];
    if operation == "add" {
        args.extend(["nexthop", next_hop]);
    }
    gobgp.cli(&args).map(drop)
}

/// Whether A's kernel routes `prefix` via `next_hop` (wgd's protocol).
fn in_kernel(lab: &BridgeLab, prefix: &str, next_hop: &str) -> bool {
    let via = format!("{prefix} via {next_hop} ");
    lab.kernel_routes()
        .is_ok_and(|routes| routes.iter().any(|line| line.starts_with(&via)))
}

fn v4(lab: &BridgeLab) -> bool {
    in_kernel(lab, BridgeLab::FAR_LAN, BridgeLab::TUNNEL_B)
}

fn v6(lab: &BridgeLab) -> bool {
    in_kernel(lab, BridgeLab::FAR_LAN6, BridgeLab::TUNNEL_B6)
}

/// How many End-of-RIBs the follower has sent, from wgd's log.
fn ends_of_rib(lab: &BridgeLab) -> usize {
    lab.log().matches("End-of-RIB for gobgpd").count()
}

#[test]
fn gobgp_best_paths_follow_into_the_kernel_and_survive_a_gobgpd_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&format!(
        "\n[[gobgp]]\napi = \"{API_HOST}:{API_PORT}\"\nhold_time = {HOLD}\n"
    ))?;
    let mut gobgp = Gobgp::start(&lab.a, &gobgp_config())?;
    let context = |lab: &BridgeLab, gobgp: &Gobgp| {
        format!(
            "kernel: {:?}\nwgd:\n{}\n{}",
            lab.kernel_routes(),
            lab.log(),
            gobgp.log()
        )
    };

    rib(&gobgp, "add", "ipv4")?;
    rib(&gobgp, "add", "ipv6")?;
    wait_for(DEADLINE, "both of gobgpd's routes in A's kernel", || {
        v4(&lab) && v6(&lab)
    })
    .with_context(|| context(&lab, &gobgp))?;
    assert_eq!(
        listed_route(&lab, BridgeLab::FAR_LAN)["owner"],
        "gobgp",
        "{}",
        context(&lab, &gobgp)
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping over gobgpd's route"
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN6_HOST)?,
        "no ping over gobgpd's IPv6 route"
    );

    // A withdrawal: that route goes, the other stays.
    rib(&gobgp, "del", "ipv6")?;
    wait_for(DEADLINE, "the withdrawn route to leave", || !v6(&lab))
        .with_context(|| context(&lab, &gobgp))?;
    assert!(v4(&lab), "{}", context(&lab, &gobgp));
    rib(&gobgp, "add", "ipv6")?;
    wait_for(DEADLINE, "the route announced again", || v6(&lab))
        .with_context(|| context(&lab, &gobgp))?;

    // kill -9 and a restart within the hold time: gobgpd learns its table
    // again (here from the CLI, as from its peers); nothing in A's kernel
    // changes, through the End-of-RIB that follows the hold time.
    let before = lab.kernel_routes()?;
    let monitor = RouteMonitor::start(&lab.a)?;
    let ends = ends_of_rib(&lab);
    gobgp.kill()?;
    gobgp.start_daemon(&lab.a, false)?;
    rib(&gobgp, "add", "ipv4")?;
    rib(&gobgp, "add", "ipv6")?;
    wait_for(
        Duration::from_secs(HOLD) + DEADLINE,
        "the follower's End-of-RIB after the restart",
        || ends_of_rib(&lab) > ends,
    )
    .with_context(|| context(&lab, &gobgp))?;
    let prefixes = [BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6];
    assert_eq!(
        monitor.deletions(&prefixes),
        Vec::<String>::new(),
        "{}",
        context(&lab, &gobgp)
    );
    assert_eq!(lab.kernel_routes()?, before, "{}", context(&lab, &gobgp));

    // Gone for longer than the hold time: the routes leave.
    gobgp.kill()?;
    assert!(v4(&lab) && v6(&lab), "{}", context(&lab, &gobgp));
    wait_for(
        Duration::from_secs(HOLD) + DEADLINE,
        "the routes to leave after the hold time",
        || !v4(&lab) && !v6(&lab),
    )
    .with_context(|| context(&lab, &gobgp))?;
    Ok(())
}
