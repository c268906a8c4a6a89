//! The built-in BGP speaker against GoBGP (Debian's `gobgpd`), over a wgd
//! tunnel with wireguard-go: the session establishes, routes announced
//! with the `gobgp` CLI reach A's kernel through the tunnel (both
//! families) and carry traffic, GoBGP learns A's prefixes, a withdrawal
//! propagates, and when gobgpd crashes and comes back as a restarting
//! speaker, A keeps B's routes (and traffic flows) until gobgpd has
//! re-announced them.
//!
//! gobgpd installs nothing in B's kernel, so what B learned is read from
//! its RIB, and pings go from A's tunnel addresses (B has the /31 and /127
//! back to them, and its LAN on `lo`).

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{
    LOCAL_LAN, LOCAL_LAN6, RouteMonitor, Sampler, TUNNEL_A6, TUNNEL_TO_LAN, add_local_lan,
    established, has_route, learned_via_tunnel, listed_route, pings_from, reclaimed,
    speaker_config,
};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::gobgp::Gobgp;

/// B's gobgpd.toml: AS 65002, A as neighbor on the tunnel with both
/// unicast families and graceful restart; the neighbor administratively
/// down if `admin_down` (enabled later with `gobgp neighbor … enable`).
fn gobgp_config(admin_down: bool) -> String {
    let family = |name: &str| {
        format!(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{name}\"\n\
             \x20   [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
        )
    };
    format!(
        "[global.config]\n  as = 65002\n  router-id = \"{b}\"\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{a}\"\n    peer-as = 65001\n\
         \x20   admin-down = {admin_down}\n\
         \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n\
         \x20 [neighbors.transport.config]\n    local-address = \"{b}\"\n\
         \x20 [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 30\n\
         {v4}{v6}",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        v4 = family("ipv4-unicast"),
        v6 = family("ipv6-unicast"),
    )
}

/// `gobgp global rib add` (or `del`) of B's LAN prefix of `family`, with
/// B's tunnel address of that family as nexthop.
fn announce(gobgp: &Gobgp, operation: &str, family: &str) -> anyhow::Result<()> {
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

/// Whether GoBGP has `prefix` in its RIB of `family`, learned from A
/// (AS 65001) with A's tunnel address `next_hop`.
fn gobgp_learned(gobgp: &Gobgp, family: &str, prefix: &str, next_hop: &str) -> bool {
    let Ok(rib) = gobgp.rib(family) else {
        return false;
    };
    rib[prefix].as_array().is_some_and(|paths| {
        paths.iter().any(|path| {
            let attributes = path["attrs"].as_array().cloned().unwrap_or_default();
            let has_next_hop = attributes
                .iter()
                .any(|attribute| attribute["nexthop"] == next_hop);
            let from_a = attributes
                .iter()
                .any(|attribute| attribute["type"] == 2 && attribute.to_string().contains("65001"));
            has_next_hop && from_a
        })
    })
}

/// `error` with what GoBGP, A's kernel and wgd say, for failure messages.
fn failure(error: wgd_labs::Error, lab: &BridgeLab, gobgp: &Gobgp) -> anyhow::Error {
    let routes = lab.kernel_routes().unwrap_or_default().join("\n");
    anyhow::anyhow!(
        "{error}\nGoBGP:\n{}\ngobgpd log:\n{}\nA's kernel (proto 200):\n{routes}\nwgd:\n{}",
        gobgp.show(BridgeLab::TUNNEL_A),
        gobgp.log(),
        lab.log()
    )
}

#[test]
fn the_speaker_exchanges_routes_with_gobgp_and_rides_out_its_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    // A originates its LAN while the kernel has it.
    add_local_lan(&lab)?;
    let mut gobgp = Gobgp::start(&lab.b, &gobgp_config(false))?;
    let tunnel_a = BridgeLab::TUNNEL_A;
    wait_for(Duration::from_secs(30), "the session with GoBGP", || {
        established(&lab) && gobgp.established(tunnel_a)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    // B announces its LAN, both families, with the CLI; A installs both
    // through the tunnel: IPv4 via B's IPv4 tunnel address, IPv6 via its
    // IPv6 one.
    announce(&gobgp, "add", "ipv4")?;
    announce(&gobgp, "add", "ipv6")?;
    wait_for(
        Duration::from_secs(10),
        "B's prefixes in A's kernel, through the tunnel",
        || learned_via_tunnel(&lab, &[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]),
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    let listed = listed_route(&lab, BridgeLab::FAR_LAN6);
    assert_eq!(listed["owner"], format!("bgp:{}", BridgeLab::TUNNEL_B));
    // B (GoBGP's RIB) learned A's, both families, with A's tunnel
    // addresses as nexthops.
    wait_for(
        Duration::from_secs(10),
        "A's prefixes in GoBGP's RIB",
        || {
            gobgp_learned(&gobgp, "ipv4", LOCAL_LAN, BridgeLab::TUNNEL_A)
                && gobgp_learned(&gobgp, "ipv6", LOCAL_LAN6, TUNNEL_A6)
        },
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    assert!(
        pings_from(&lab, BridgeLab::TUNNEL_A, BridgeLab::FAR_LAN_HOST),
        "no IPv4 ping to B's LAN"
    );
    assert!(
        pings_from(&lab, TUNNEL_A6, BridgeLab::FAR_LAN6_HOST),
        "no IPv6 ping to B's LAN"
    );

    // A withdrawal at B leaves A's kernel, the other family stays; the
    // announcement brings it back.
    announce(&gobgp, "del", "ipv4")?;
    wait_for(
        Duration::from_secs(10),
        "the withdrawal in A's kernel",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN6),
        "the other family went too"
    );
    announce(&gobgp, "add", "ipv4")?;
    wait_for(Duration::from_secs(10), "the re-announcement", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;

    // gobgpd crashes: A keeps B's routes (graceful restart) and pings keep
    // crossing, both families. gobgpd comes back as a restarting speaker
    // (-r) with an empty RIB: its neighbor starts administratively down,
    // so that the routes are announced again before the session is up
    // (otherwise its End-of-RIB could come first, and A would rightly
    // flush the routes it had kept); then the neighbor is enabled, and A
    // re-claims the routes from the new session.
    let monitor = RouteMonitor::start(&lab.a)?;
    let mut sampler = Sampler::start(&lab.a, TUNNEL_TO_LAN);
    gobgp.kill()?;
    sampler.event("gobgpd killed");
    wait_for(Duration::from_secs(15), "A to see the session go", || {
        !established(&lab)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    sampler.event("A saw the session go");
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
        "A dropped B's routes at once, without graceful restart"
    );
    sampler
        .wait_for_more(4, Duration::from_secs(10), "probes with gobgpd down")
        .map_err(|error| failure(error, &lab, &gobgp))?;
    gobgp.write_config(&gobgp_config(true))?;
    gobgp.start_daemon(&lab.b, true)?;
    sampler.event("gobgpd started again (-r)");
    announce(&gobgp, "add", "ipv4")?;
    announce(&gobgp, "add", "ipv6")?;
    gobgp.cli(&["neighbor", tunnel_a, "enable"])?;
    sampler.event("routes re-added, neighbor enabled");
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab) && gobgp.established(tunnel_a)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    sampler.event("the session is back");
    // Re-claimed after B's End-of-RIB: still there, no longer stale.
    wait_for(Duration::from_secs(15), "the routes re-claimed", || {
        reclaimed(&lab, &[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6])
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    sampler.event("A re-claimed the routes");
    wait_for(
        Duration::from_secs(10),
        "GoBGP to relearn A's prefixes",
        || {
            gobgp_learned(&gobgp, "ipv4", LOCAL_LAN, BridgeLab::TUNNEL_A)
                && gobgp_learned(&gobgp, "ipv6", LOCAL_LAN6, TUNNEL_A6)
        },
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    let samples = sampler.finish();
    // A's kernel never lost B's routes, even for an instant.
    let gone = monitor.deletions(&[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]);
    assert!(gone.is_empty(), "A's kernel lost B's routes: {gone:#?}");
    assert_eq!(
        samples.lost(),
        0,
        "pings were lost while gobgpd restarted:\n{}",
        samples.timeline()
    );
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
        "{:#?}",
        lab.kernel_routes()?
    );
    Ok(())
}
