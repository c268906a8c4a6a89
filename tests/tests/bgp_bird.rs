//! The built-in BGP speaker against BIRD 2 (Debian's `bird2`), over a wgd
//! tunnel with wireguard-go: the session establishes, each side announces
//! its IPv4 and IPv6 prefixes and the other installs them in its kernel,
//! traffic crosses LAN to LAN, a withdrawal at BIRD propagates, and when
//! bird crashes and comes back with graceful restart, traffic keeps flowing
//! throughout.

use std::time::{Duration, Instant};

use wgd_labs::wait_for;
use wgd_tests::bgp::{
    LAN_TO_LAN, LOCAL_LAN, LOCAL_LAN_HOST, LOCAL_LAN6, LOCAL_LAN6_HOST, RouteMonitor, Sampler,
    TUNNEL_A6, add_local_lan, b_route, established, has_route, learned_via_tunnel, listed_route,
    pings_from, reclaimed, speaker_config,
};
use wgd_tests::bird::Bird;
use wgd_tests::bridge::BridgeLab;

/// B's bird.conf: AS 65002, its LAN as static routes (with the IPv4 one
/// only if `announce_lan`), A as neighbor on the tunnel.
///
/// The LAN's static routes are `unreachable`: they exist to be announced
/// (B reaches its LAN on `lo`, through the kernel's own routes), and only
/// routes learned over BGP go to the kernel, so B's routes to its own LAN
/// stay the kernel's. The IPv6 channel runs over the IPv4 session, so it
/// is told which IPv6 address of B's to announce as nexthop.
///
/// The kernel protocols take part in graceful restart: a bird started
/// with `-R` after a crash then leaves the routes the previous one put in
/// the kernel alone until its BGP session has converged again. Without
/// that, it prunes them as soon as it starts (they are `proto bird` and
/// it has no routes yet), and B cannot answer A until the session is
/// back. (`persist` is for another case: it keeps bird's routes in the
/// kernel when bird shuts down cleanly; after `kill -9` nothing is
/// removed anyway.)
fn bird_config(announce_lan: bool) -> String {
    let lan = if announce_lan {
        format!("  route {} unreachable;\n", BridgeLab::FAR_LAN)
    } else {
        String::new()
    };
    format!(
        "router id {b};\n\
         protocol device {{\n}}\n\
         protocol kernel kernel4 {{\n  ipv4 {{ import none; export where source = RTS_BGP; }};\n  graceful restart on;\n}}\n\
         protocol kernel kernel6 {{\n  ipv6 {{ import none; export where source = RTS_BGP; }};\n  graceful restart on;\n}}\n\
         protocol static lan4 {{\n  ipv4;\n{lan}}}\n\
         protocol static lan6 {{\n  ipv6;\n  route {lan6} unreachable;\n}}\n\
         protocol bgp site_a {{\n  local {b} as 65002;\n  neighbor {a} as 65001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 error wait time 1, 5;\n  graceful restart on;\n\
         \x20 ipv4 {{ import all; export all; }};\n\
         \x20 ipv6 {{ import all; export all; next hop address {b6}; }};\n}}\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        b6 = BridgeLab::TUNNEL_B6,
        lan6 = BridgeLab::FAR_LAN6,
    )
}

/// Whether bird's side of the session (protocol `site_a`) is established.
fn bird_established(bird: &Bird) -> bool {
    bird.birdc(&["show", "protocols", "site_a"])
        .is_ok_and(|text| text.contains("Established"))
}

/// Whether B's kernel has `prefix` from bird, through the tunnel.
fn b_has_bird_route(lab: &BridgeLab, prefix: &str, via: &str) -> bool {
    let route = b_route(lab, prefix);
    route.contains("proto bird") && route.contains(&format!("via {via} dev {}", lab.tunnel_b))
}

#[test]
fn the_speaker_exchanges_routes_with_bird_and_rides_out_its_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    add_local_lan(&lab)?;
    let bird = Bird::start(&lab.b, &bird_config(true))?;
    let context = |error: wgd_labs::Error| {
        let routes = lab.kernel_routes().unwrap_or_default().join("\n");
        let b_routes = lab
            .b
            .sh("ip -4 route; ip -6 route")
            .unwrap_or_else(|error| error.to_string());
        anyhow::anyhow!(
            "{error}\nBIRD:\n{}\nbird log:\n{}\nA's kernel (proto 200):\n{routes}\nB's kernel:\n{b_routes}\nwgd:\n{}",
            bird.protocols(),
            bird.log(),
            lab.log()
        )
    };

    wait_for(Duration::from_secs(30), "the session with BIRD", || {
        established(&lab) && bird_established(&bird)
    })
    .map_err(context)?;
    // A learned B's prefixes, both families, into its kernel, through the
    // tunnel: IPv4 via B's IPv4 tunnel address, IPv6 via its IPv6 one.
    wait_for(
        Duration::from_secs(10),
        "B's prefixes in A's kernel, through the tunnel",
        || learned_via_tunnel(&lab, &[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]),
    )
    .map_err(context)?;
    let listed = listed_route(&lab, BridgeLab::FAR_LAN);
    assert_eq!(listed["owner"], format!("bgp:{}", BridgeLab::TUNNEL_B));
    // B (bird's kernel protocols) installed A's, through the tunnel.
    wait_for(
        Duration::from_secs(10),
        "A's prefixes in B's kernel",
        || {
            b_has_bird_route(&lab, LOCAL_LAN, BridgeLab::TUNNEL_A)
                && b_has_bird_route(&lab, LOCAL_LAN6, TUNNEL_A6)
        },
    )
    .map_err(context)?;
    // B's routes to its own LAN are still the kernel's, on lo: bird put
    // none of its own there.
    for family in ["-4", "-6"] {
        let own = lab.b.check(&[
            "ip", family, "route", "show", "table", "all", "proto", "bird",
        ])?;
        assert!(
            !own.contains("192.168.77.") && !own.contains("fd00:77:"),
            "bird installed B's own LAN: {own}"
        );
    }
    assert!(
        pings_from(&lab, LOCAL_LAN_HOST, BridgeLab::FAR_LAN_HOST),
        "no IPv4 ping LAN to LAN"
    );
    assert!(
        pings_from(&lab, LOCAL_LAN6_HOST, BridgeLab::FAR_LAN6_HOST),
        "no IPv6 ping LAN to LAN"
    );

    // A withdrawal at B (the static route gone from bird.conf, `birdc
    // configure`) leaves A's kernel; putting it back brings it back.
    bird.reconfigure(&bird_config(false))?;
    wait_for(
        Duration::from_secs(10),
        "the withdrawal in A's kernel",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(context)?;
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN6),
        "the other family went too"
    );
    assert!(established(&lab), "the reconfiguration reset the session");
    bird.reconfigure(&bird_config(true))?;
    wait_for(Duration::from_secs(10), "the re-announcement", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(context)?;

    // bird crashes (kill -9: it cleans nothing up, so B's kernel keeps what
    // bird put there) and starts again in graceful restart recovery (-R;
    // with its kernel protocols in graceful restart, it does not prune
    // those routes before it has relearned them). With graceful restart on
    // both sides, both kernels keep the routes, never dropping them even
    // for an instant, and pings keep crossing, both families, until the
    // session is back and both sides have re-claimed their routes.
    let monitor_a = RouteMonitor::start(&lab.a)?;
    let monitor_b = RouteMonitor::start(&lab.b)?;
    let mut sampler = Sampler::start(&lab.a, LAN_TO_LAN);
    bird.kill()?;
    sampler.event("bird killed");
    wait_for(Duration::from_secs(15), "A to see the session go", || {
        !established(&lab)
    })
    .map_err(context)?;
    sampler.event("A saw the session go");
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
        "A dropped B's routes at once, without graceful restart"
    );
    assert!(
        b_has_bird_route(&lab, LOCAL_LAN, BridgeLab::TUNNEL_A),
        "B's kernel lost A's routes when bird was killed: {}",
        b_route(&lab, LOCAL_LAN)
    );
    // Traffic crosses while bird is down: a few probes of each family.
    sampler
        .wait_for_more(4, Duration::from_secs(10), "probes with bird down")
        .map_err(context)?;
    sampler.event("bird started again (-R)");
    bird.start_daemon(&lab.b, true)?;
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab) && bird_established(&bird)
    })
    .map_err(context)?;
    sampler.event("the session is back");
    // Re-claimed after B's End-of-RIB: still there, no longer stale.
    wait_for(Duration::from_secs(15), "the routes re-claimed", || {
        reclaimed(&lab, &[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6])
    })
    .map_err(context)?;
    // bird's recovery is over (it had A's End-of-RIB), and B's kernel has
    // A's routes from the new bird.
    wait_for(
        Duration::from_secs(15),
        "bird's graceful restart recovery to end",
        || {
            bird.birdc(&["show", "status"])
                .is_ok_and(|status| !status.contains("Graceful restart recovery in progress"))
        },
    )
    .map_err(context)?;
    assert!(
        b_has_bird_route(&lab, LOCAL_LAN, BridgeLab::TUNNEL_A)
            && b_has_bird_route(&lab, LOCAL_LAN6, TUNNEL_A6),
        "{}\n{}",
        b_route(&lab, LOCAL_LAN),
        b_route(&lab, LOCAL_LAN6)
    );
    sampler.event("bird recovered");
    let samples = sampler.finish();
    // Neither kernel lost the other's routes, even for an instant.
    let gone = monitor_a.deletions(&[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]);
    assert!(gone.is_empty(), "A's kernel lost B's routes: {gone:#?}");
    let gone = monitor_b.deletions(&[LOCAL_LAN, LOCAL_LAN6]);
    assert!(gone.is_empty(), "B's kernel lost A's routes: {gone:#?}");
    assert_eq!(
        samples.lost(),
        0,
        "pings were lost while bird restarted:\n{}",
        samples.timeline()
    );
    Ok(())
}

/// The routes a restarting peer leaves behind stay for the restart time
/// it announced, not wgd's own: here BIRD asks for 3 s while wgd would
/// give 30, and bird does not come back.
#[test]
fn stale_routes_leave_after_the_peers_restart_time() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    let config = bird_config(true).replace(
        "  graceful restart on;\n  ipv4 {",
        "  graceful restart on;\n  graceful restart time 3;\n  ipv4 {",
    );
    assert!(config.contains("graceful restart time 3"), "{config}");
    let bird = Bird::start(&lab.b, &config)?;
    wait_for(Duration::from_secs(30), "the session with BIRD", || {
        established(&lab)
    })
    .map_err(|error| anyhow::anyhow!("{error}\n{}", lab.log()))?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })?;
    bird.kill()?;
    let killed = Instant::now();
    wait_for(
        Duration::from_secs(20),
        "the stale route to leave A's kernel",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", lab.log()))?;
    let after = killed.elapsed();
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(10),
        "the stale route left {after:?} after bird died; BIRD asked for 3 s"
    );
    Ok(())
}
