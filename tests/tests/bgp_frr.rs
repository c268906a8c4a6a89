//! The built-in BGP speaker against FRR's bgpd (Debian's `frr`), over a
//! wgd tunnel with wireguard-go: the session establishes, each side
//! announces its IPv4 and IPv6 prefixes and the other installs them,
//! traffic crosses, a withdrawal propagates, and when bgpd crashes and
//! comes back with graceful restart, traffic keeps flowing throughout.

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{
    LAN_TO_LAN, LOCAL_LAN, LOCAL_LAN_HOST, LOCAL_LAN6, LOCAL_LAN6_HOST, RouteMonitor, Sampler,
    add_local_lan, api, b_route, established, has_route, learned_via_tunnel, listed_route,
    pings_from, reclaimed, speaker_config, summary_text,
};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

/// B's frr.conf: AS 65002, its LAN (both families), A as neighbor on the
/// tunnel, graceful restart, keepalive 3 s and hold time 9 s.
fn frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname site-b\n\
         router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n\
         timers bgp 3 9\n neighbor {a} remote-as 65001\n\
         address-family ipv4 unicast\n  network {lan}\n exit-address-family\n\
         address-family ipv6 unicast\n  neighbor {a} activate\n  network {lan6}\n exit-address-family\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        lan = BridgeLab::FAR_LAN,
        lan6 = BridgeLab::FAR_LAN6,
    )
}

#[test]
fn the_speaker_exchanges_routes_with_frr_and_rides_out_its_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    add_local_lan(&lab)?;
    let frr = Frr::start(&lab.b, &frr_config())?;
    let context = |error: wgd_labs::Error| {
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    };

    wait_for(Duration::from_secs(30), "the session with FRR", || {
        established(&lab)
    })
    .map_err(context)?;
    // A learned B's prefixes, both families, into its kernel.
    wait_for(
        Duration::from_secs(10),
        "B's prefixes in A's kernel, through the tunnel",
        || learned_via_tunnel(&lab, &[BridgeLab::FAR_LAN]) && has_route(&lab, BridgeLab::FAR_LAN6),
    )
    .map_err(context)?;
    // B (FRR, through zebra) installed A's.
    let b_has = |prefix| b_route(&lab, prefix).contains("proto bgp");
    wait_for(
        Duration::from_secs(10),
        "A's prefixes in B's kernel",
        || b_has(LOCAL_LAN) && b_has(LOCAL_LAN6),
    )
    .map_err(context)?;
    assert!(
        pings_from(&lab, LOCAL_LAN_HOST, BridgeLab::FAR_LAN_HOST),
        "no IPv4 ping LAN to LAN"
    );
    assert!(
        pings_from(&lab, LOCAL_LAN6_HOST, BridgeLab::FAR_LAN6_HOST),
        "no IPv6 ping LAN to LAN"
    );
    let listed = listed_route(&lab, BridgeLab::FAR_LAN);
    assert_eq!(listed["owner"], format!("bgp:{}", BridgeLab::TUNNEL_B));

    // A withdrawal at B leaves A's kernel; the announcement brings it back.
    let network = |no: &str| {
        frr.vtysh(&[
            "configure terminal",
            "router bgp 65002",
            "address-family ipv4 unicast",
            &format!("{no}network {}", BridgeLab::FAR_LAN),
        ])
    };
    network("no ")?;
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
    network("")?;
    wait_for(Duration::from_secs(10), "the re-announcement", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(context)?;

    // bgpd crashes: with graceful restart, both kernels keep the routes
    // and pings keep crossing, both families, while bgpd is down and until
    // it is back and the session re-established. A's kernel never drops
    // B's routes, even for an instant. (B's is not watched that way: when
    // bgpd is back, zebra replaces A's IPv6 route by deleting it and adding
    // it again at once, which `ip monitor` reports as a deletion.)
    let monitor = RouteMonitor::start(&lab.a)?;
    let mut sampler = Sampler::start(&lab.a, LAN_TO_LAN);
    frr.kill("bgpd")?;
    sampler.event("bgpd killed");
    wait_for(Duration::from_secs(15), "A to see the session go", || {
        !established(&lab)
    })
    .map_err(context)?;
    sampler.event("A saw the session go");
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN),
        "A dropped B's routes at once, without graceful restart"
    );
    // Traffic crosses while bgpd is down: a few probes of each family.
    sampler
        .wait_for_more(4, Duration::from_secs(10), "probes with bgpd down")
        .map_err(context)?;
    sampler.event("bgpd started again");
    frr.start_daemon(&lab.b, "bgpd")?;
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab)
    })
    .map_err(context)?;
    sampler.event("the session is back");
    // Re-claimed after B's End-of-RIB: still there, no longer stale.
    wait_for(Duration::from_secs(15), "the routes re-claimed", || {
        reclaimed(&lab, &[BridgeLab::FAR_LAN])
    })
    .map_err(context)?;
    sampler.event("A re-claimed the routes");
    let samples = sampler.finish();
    let gone = monitor.deletions(&[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]);
    assert!(gone.is_empty(), "A's kernel lost B's routes: {gone:#?}");
    assert_eq!(
        samples.lost(),
        0,
        "pings were lost while bgpd restarted:\n{}",
        samples.timeline()
    );
    assert!(has_route(&lab, BridgeLab::FAR_LAN6));

    // A network is announced while the kernel has it: A's LAN address goes,
    // and B loses the route; it comes back with the address.
    let b_has_lan = || b_has(LOCAL_LAN);
    lab.a.check(&[
        "ip",
        "address",
        "del",
        &format!("{LOCAL_LAN_HOST}/24"),
        "dev",
        "lo",
    ])?;
    wait_for(
        Duration::from_secs(15),
        "B to lose A's LAN once A has it no more",
        || !b_has_lan(),
    )
    .map_err(context)?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN_HOST}/24"))?;
    wait_for(
        Duration::from_secs(15),
        "B to learn A's LAN again",
        b_has_lan,
    )
    .map_err(context)?;
    Ok(())
}

#[test]
fn tcp_md5_and_ttl_security_with_frr() -> anyhow::Result<()> {
    let config = speaker_config() + "password = \"wgd-md5-key\"\nttl_security = true\n";
    let lab = BridgeLab::new(&config)?;
    let remote_as = format!(" neighbor {} remote-as 65001\n", BridgeLab::TUNNEL_A);
    let frr_config = frr_config().replace(
        &remote_as,
        &format!(
            "{remote_as} neighbor {a} password wgd-md5-key\n neighbor {a} ttl-security hops 1\n",
            a = BridgeLab::TUNNEL_A
        ),
    );
    let frr = Frr::start(&lab.b, &frr_config)?;
    wait_for(
        Duration::from_secs(30),
        "the signed session with FRR",
        || established(&lab),
    )
    .map_err(|error| {
        let bgp = frr.vtysh(&["show bgp neighbors"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    })?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })?;
    // The password is nowhere in what wgd prints.
    let summary = summary_text(&lab.wgd, &lab.a, api(&lab))?;
    assert!(!summary.contains("wgd-md5-key") && !lab.log().contains("wgd-md5-key"));
    Ok(())
}
