//! The GoBGP follower against Debian's `gobgpd`: gobgpd runs on the same
//! host as `wgd run` (site A, its API on A's loopback), routes added with
//! `gobgp global rib add` (both families) reach A's kernel over the tunnel
//! as owner `gobgp` and carry traffic, a withdrawal removes its route,
//! `kill -9` of gobgpd and its restart (its table taught again, as its
//! peers would) within the hold time change nothing in the kernel, and
//! past the hold time without gobgpd the routes leave.
//!
//! And with a BIRD peer of gobgpd (at site B, over the tunnel) that
//! announces a table too large for one gRPC message of the default limit
//! (4 MiB): gobgpd's best paths reach A's kernel, a restart of `wgd run`
//! makes the follower take gobgpd's whole table as its initial message
//! and loses no route, and a prefix BIRD stops announcing leaves.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bgp::{RouteMonitor, listed_route};
use wgd_tests::bird::Bird;
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

/// `text` without its terminal colours (wgd's log has them).
fn plain(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        plain.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
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

/// Prefixes BIRD announces besides B's LANs: enough that gobgpd's initial
/// table is well past 4 MiB (measured: 8,245,018 bytes, about 275 bytes a
/// path; with gRPC's default limit the follower could not take it).
const BIRD_PREFIXES: usize = 30_000;

/// `BIRD_PREFIXES` /26s of 100.64.0.0/10.
fn bird_prefixes() -> Vec<String> {
    (0..BIRD_PREFIXES)
        .map(|index| {
            let address = std::net::Ipv4Addr::from(0x6440_0000_u32 + 64 * index as u32);
            format!("{address}/26")
        })
        .collect()
}

/// B's bird.conf: BGP to gobgpd on A over the tunnel, announcing the
/// prefixes, B's LAN, and B's IPv6 LAN if `lan6`.
fn bird_config(lan6: bool) -> String {
    let routes: String = bird_prefixes()
        .iter()
        .map(|prefix| format!("  route {prefix} unreachable;\n"))
        .collect();
    let lan6 = if lan6 {
        format!("  route {} unreachable;\n", BridgeLab::FAR_LAN6)
    } else {
        String::new()
    };
    format!(
        "router id {b};\n\
         protocol device {{\n}}\n\
         protocol static many4 {{\n  ipv4;\n  route {lan} unreachable;\n{routes}}}\n\
         protocol static lan6 {{\n  ipv6;\n{lan6}}}\n\
         protocol bgp gobgp_a {{\n  local {b} as 65002;\n  neighbor {a} as 65001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 ipv4 {{ import none; export all; }};\n\
         \x20 ipv6 {{ import none; export all; next hop address {b6}; }};\n}}\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        b6 = BridgeLab::TUNNEL_B6,
        lan = BridgeLab::FAR_LAN,
    )
}

/// gobgpd on A with BIRD at B as its neighbor, both unicast families.
fn gobgp_with_bird() -> String {
    let family = |name: &str| {
        format!(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{name}\"\n"
        )
    };
    format!(
        "{global}\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{b}\"\n    peer-as = 65002\n\
         \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n\
         \x20 [neighbors.transport.config]\n    local-address = \"{a}\"\n{v4}{v6}",
        global = gobgp_config(),
        a = BridgeLab::TUNNEL_A,
        b = BridgeLab::TUNNEL_B,
        v4 = family("ipv4-unicast"),
        v6 = family("ipv6-unicast"),
    )
}

#[test]
fn a_bird_peers_table_past_grpcs_message_limit_follows_and_survives_a_wgd_restart()
-> anyhow::Result<()> {
    let mut lab = BridgeLab::new(&format!(
        "\n[[gobgp]]\napi = \"{API_HOST}:{API_PORT}\"\nhold_time = {HOLD}\n"
    ))?;
    let bird = Bird::start(&lab.b, &bird_config(true))?;
    let gobgp = Gobgp::start(&lab.a, &gobgp_with_bird())?;
    let all = BIRD_PREFIXES + 2;
    let context = |lab: &BridgeLab| {
        format!(
            "kernel: {:?} routes\nbird: {}\ngobgpd: {}\nwgd:\n{}",
            lab.kernel_count(),
            bird.protocols(),
            gobgp.show(BridgeLab::TUNNEL_B),
            lab.log()
        )
    };
    wait_for(
        Duration::from_secs(60),
        "BIRD's table in A's kernel",
        || lab.kernel_count().is_ok_and(|count| count == all),
    )
    .with_context(|| context(&lab))?;
    assert!(v6(&lab), "{}", context(&lab));
    assert!(
        in_kernel(&lab, "100.64.0.0/26", BridgeLab::TUNNEL_B),
        "{}",
        context(&lab)
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping over BIRD's route"
    );

    // wgd restarts: the follower's first message is gobgpd's whole table.
    let monitor = RouteMonitor::start(&lab.a)?;
    lab.kill_daemon()?;
    lab.start_daemon()?;
    let taken = format!("paths={all} ");
    wait_for(
        DEADLINE,
        "the follower to take gobgpd's initial table",
        || {
            plain(&lab.log()).lines().any(|line| {
                line.contains("following gobgpd: its initial table") && line.contains(&taken)
            })
        },
    )
    .with_context(|| context(&lab))?;
    wait_for(DEADLINE, "the follower's End-of-RIB", || {
        ends_of_rib(&lab) > 0
    })
    .with_context(|| context(&lab))?;
    assert_eq!(lab.kernel_count()?, all, "{}", context(&lab));
    let mut watched: Vec<String> = bird_prefixes();
    watched.extend([
        BridgeLab::FAR_LAN.to_owned(),
        BridgeLab::FAR_LAN6.to_owned(),
    ]);
    let watched: Vec<&str> = watched.iter().map(String::as_str).collect();
    let deleted = monitor.deletions(&watched);
    assert!(
        deleted.is_empty(),
        "deleted across the restart: {:?}",
        &deleted[..deleted.len().min(5)]
    );

    // BIRD withdraws B's IPv6 LAN; the rest stays.
    bird.reconfigure(&bird_config(false))?;
    wait_for(DEADLINE, "the prefix BIRD withdrew to leave", || !v6(&lab))
        .with_context(|| context(&lab))?;
    assert_eq!(lab.kernel_count()?, all - 1, "{}", context(&lab));
    Ok(())
}
