//! IPv4 over an IPv6 nexthop (RFC 8950 in the kernel) through the bridge,
//! end to end: `wgd route add 192.168.77.0/24 via fe80::2 dev <tunnel>`
//! on a userspace tunnel with a link-local address goes into the kernel as
//! `via inet6 fe80::2 dev <tunnel> proto wgd`, a ping over it crosses the
//! tunnel, `wgd routes` shows it as `ip route` does, and a restart of the
//! daemon re-claims it from the kernel. And the routes' preferred source
//! (`[bridge] source`): a reload puts `src` on the installed routes, in
//! place; a source the host lacks is refused, on reload (the running one
//! kept) and at start.

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bridge::BridgeLab;

const CONVERGE: Duration = Duration::from_secs(15);

/// `ip -4 route show <prefix>` in A, the protocol named as wgd names it
/// (`wgd run` writes the rt_protos.d entry; its number where that cannot
/// be read).
fn shown(lab: &BridgeLab, prefix: &str) -> String {
    lab.a
        .check(&["ip", "-4", "route", "show", prefix])
        .unwrap_or_default()
        .trim_end()
        .replace(" proto 200 ", " proto wgd ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_route_through_a_link_local_nexthop_crosses_the_tunnel() -> anyhow::Result<()> {
    let mut lab = BridgeLab::new("")?;
    let tunnel = lab.tunnel_a.clone();
    // The link-local addresses a dn42-style peering has (wgd.toml can
    // give them too; here as a PostUp hook would).
    lab.a.check(&[
        "ip",
        "address",
        "add",
        "fe80::1/64",
        "dev",
        &tunnel,
        "nodad",
    ])?;
    lab.b.check(&[
        "ip",
        "address",
        "add",
        "fe80::2/64",
        "dev",
        &lab.tunnel_b,
        "nodad",
    ])?;

    let added = lab.wgd.run(
        &lab.a,
        &[
            "route",
            "add",
            BridgeLab::FAR_LAN,
            "via",
            "fe80::2",
            "dev",
            &tunnel,
        ],
    )?;
    assert_eq!(added.trim(), format!("{}: installed", BridgeLab::FAR_LAN));
    let expected = format!(
        "{} via inet6 fe80::2 dev {tunnel} proto wgd metric 20 onlink",
        BridgeLab::FAR_LAN
    );
    assert_eq!(shown(&lab, BridgeLab::FAR_LAN), expected, "{}", lab.log());
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping across the tunnel through the link-local nexthop"
    );

    // `wgd routes` says it as `ip route` does, and so does its JSON.
    let listed = lab
        .wgd
        .run(&lab.a, &["routes", "--prefix", BridgeLab::FAR_LAN])?;
    assert!(
        listed.contains(&format!("via inet6 fe80::2 dev {tunnel}")),
        "{listed}"
    );
    let json: serde_json::Value = serde_json::from_str(&lab.wgd.run(
        &lab.a,
        &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
    )?)?;
    assert_eq!(json[0]["state"], "installed");
    assert_eq!(json[0]["nexthops"][0]["address"], "fe80::2");
    assert_eq!(json[0]["nexthops"][0]["tunnel"], tunnel.as_str());
    assert_eq!(json[0]["nexthops"][0]["family"], "inet6");

    // A link-local nexthop without its tunnel names no link.
    let output = lab.wgd.output(
        &lab.a,
        &["route", "add", "192.168.78.0/24", "via", "fe80::2"],
    )?;
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "192.168.78.0/24: refused: nexthop fe80::2 is link-local: name its tunnel (via fe80::2 dev TUNNEL)"
    );
    // Written with its scope, it is on the tunnel.
    let added = lab.wgd.run(
        &lab.a,
        &[
            "route",
            "add",
            "192.168.78.0/24",
            "via",
            &format!("fe80::2%{tunnel}"),
        ],
    )?;
    assert_eq!(added.trim(), "192.168.78.0/24: installed");

    // kill -9 and a new daemon: the routes are read back from the kernel
    // (RTA_VIA) and re-claimed, never taken out.
    lab.kill_daemon()?;
    lab.start_daemon()?;
    wait_for(CONVERGE, "the static routes re-claimed", || {
        lab.wgd
            .run(&lab.a, &["routes", "--json"])
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|routes| {
                let routes = routes.as_array().cloned().unwrap_or_default();
                routes.len() == 2
                    && routes
                        .iter()
                        .all(|route| route["owner"] == "cli" && route["state"] == "installed")
            })
    })?;
    assert_eq!(shown(&lab, BridgeLab::FAR_LAN), expected, "{}", lab.log());
    assert!(lab.a.pings(BridgeLab::FAR_LAN_HOST)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_goes_on_the_routes_and_one_the_host_lacks_is_refused() -> anyhow::Result<()> {
    const ROUTER: &str = "172.20.1.1";
    let mut lab = BridgeLab::new("")?;
    // The node's router address, on lo as dn42 nodes keep it; B routes it
    // back through its tunnel.
    lab.a
        .check(&["ip", "address", "add", &format!("{ROUTER}/32"), "dev", "lo"])?;
    lab.b.check(&[
        "ip",
        "route",
        "add",
        &format!("{ROUTER}/32"),
        "dev",
        &lab.tunnel_b,
    ])?;
    lab.wgd.run(
        &lab.a,
        &[
            "route",
            "add",
            BridgeLab::FAR_LAN,
            "via",
            BridgeLab::TUNNEL_B,
        ],
    )?;
    let plain = format!(
        "{} via {} dev {} proto wgd metric 20 onlink",
        BridgeLab::FAR_LAN,
        BridgeLab::TUNNEL_B,
        lab.tunnel_a
    );
    assert_eq!(shown(&lab, BridgeLab::FAR_LAN), plain);

    // A reload with a source: the installed route takes it, in place.
    let config = std::fs::read_to_string(&lab.config_a)?;
    let with_source = |address: &str| {
        config.replacen(
            "[bridge]\n",
            &format!("[bridge]\nsource = [\"{address}\"]\n"),
            1,
        )
    };
    std::fs::write(&lab.config_a, with_source(ROUTER))?;
    let daemon = lab.daemon.as_ref().expect("the daemon");
    wgd_tests::sighup(&lab.a, daemon)?;
    let sourced = format!(
        "{} via {} dev {} proto wgd src {ROUTER} metric 20 onlink",
        BridgeLab::FAR_LAN,
        BridgeLab::TUNNEL_B,
        lab.tunnel_a
    );
    wait_for(CONVERGE, "the route to take its source", || {
        shown(&lab, BridgeLab::FAR_LAN) == sourced
    })
    .map_err(|error| {
        anyhow::anyhow!(
            "{error}: {}\n{}",
            shown(&lab, BridgeLab::FAR_LAN),
            lab.log()
        )
    })?;
    // The host's own traffic leaves with the router address, and gets back.
    let path = lab
        .a
        .check(&["ip", "route", "get", BridgeLab::FAR_LAN_HOST])?;
    assert!(path.contains(&format!("src {ROUTER}")), "{path}");
    assert!(lab.a.pings(BridgeLab::FAR_LAN_HOST)?);

    // A source the host lacks: the reload is refused, the running one kept.
    std::fs::write(&lab.config_a, with_source("172.20.9.9"))?;
    wgd_tests::sighup(&lab.a, daemon)?;
    wait_for(CONVERGE, "the reload to be refused", || {
        lab.log().contains("keeping the previous one")
    })?;
    let log = lab.log();
    assert!(
        log.contains("source 172.20.9.9 is not an address of this host"),
        "{log}"
    );
    assert_eq!(shown(&lab, BridgeLab::FAR_LAN), sourced);

    // And at start, `wgd run` refuses it and exits.
    lab.daemon.take();
    let mut daemon = lab.wgd.spawn(&lab.a, &["run", "-c", &lab.config_a])?;
    wait_for(CONVERGE, "wgd run to refuse the config", || {
        !daemon.is_running()
    })?;
    let status = daemon.stop()?;
    assert!(!status.success(), "{status:?}");
    let log = daemon.log();
    assert!(
        log.contains("source 172.20.9.9 is not an address of this host"),
        "{log}"
    );
    // Before it changed anything: the route is in the kernel as it was.
    assert!(
        !log.contains("apply"),
        "a refused start applied changes: {log}"
    );
    assert_eq!(shown(&lab, BridgeLab::FAR_LAN), sourced);
    Ok(())
}
