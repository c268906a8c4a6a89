//! BIRD 2's OSPF at two sites joined by one wgd tunnel, with a host behind
//! each site ([`wgd_tests::sites`]), and BIRD's kernel protocol installing
//! what OSPF learns.
//!
//! Each site runs `wgd run` (no `[bgp]`: the tunnel only, AllowedIPs
//! `0.0.0.0/0` and no routes) and bird, with OSPFv2 point-to-point on the
//! tunnel (hello 1 s, dead 4 s) and the LAN as a stub interface. OSPF's
//! hellos to 224.0.0.5 cross the tunnel because AllowedIPs filters
//! nothing. The test checks that the adjacency reaches Full, that each
//! kernel has the other's LAN `proto bird` through the tunnel (none by
//! wgd), that bird leaves a route of wgd's bridge alone (each removes only
//! its own), that the hosts ping each other, that a reconcile of wgd
//! (SIGHUP) leaves bird's routes alone, and that when the tunnel's
//! underlay is cut bird takes its route out after the dead interval, and
//! puts it back when the underlay returns.

use std::time::{Duration, Instant};

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bird::Bird;
use wgd_tests::sites::{METRICS, Side, Site, TwoSites};
use wgd_tests::{scrape_metrics, sighup};

const HELLO_SECONDS: u64 = 1;
const DEAD_SECONDS: u64 = 4;
/// A route A's bridge holds while bird runs beside it.
const BRIDGE_ROUTE: &str = "10.99.0.0/16";

const A: Side = Side {
    name: "birda",
    underlay: "198.18.41.1",
    tunnel_address: "10.254.41.0",
    lan: "192.168.1.0/24",
    gateway: "192.168.1.1",
    host_address: "192.168.1.10",
};

const B: Side = Side {
    name: "birdb",
    underlay: "198.18.41.2",
    tunnel_address: "10.254.41.1",
    lan: "192.168.2.0/24",
    gateway: "192.168.2.1",
    host_address: "192.168.2.10",
};

/// `site`'s bird.conf: the lines the README's "Using wgd with BIRD" gives,
/// with the lab's interface names and short timers.
fn bird_config(site: &Site) -> String {
    format!(
        "router id {router_id};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export where source = RTS_OSPF; }};\n}}\n\
         protocol ospf v2 {{\n  ipv4 {{ import all; export none; }};\n  area 0 {{\n    \
         interface \"{tunnel}\" {{ type ptp; hello {HELLO_SECONDS}; dead {DEAD_SECONDS}; retransmit 2; }};\n    \
         interface \"{lan_if}\" {{ stub yes; }};\n  }};\n}}\n",
        router_id = site.side.tunnel_address,
        tunnel = site.tunnel,
        lan_if = site.lan_if,
    )
}

/// bird at both sites; it stops before the sites go.
struct Lab {
    bird: Vec<Bird>,
    sites: TwoSites,
}

impl Lab {
    /// Whether the OSPF neighbor on `site`'s tunnel is Full.
    fn full(&self, index: usize, site: &Site) -> bool {
        self.bird[index]
            .birdc(&["show", "ospf", "neighbors"])
            .is_ok_and(|text| {
                text.lines()
                    .any(|line| line.contains(&site.tunnel) && line.contains("Full"))
            })
    }

    fn both_full(&self) -> bool {
        self.full(0, &self.sites.a) && self.full(1, &self.sites.b)
    }

    /// What bird, the kernels and wgd show, for failure messages.
    fn describe(&self) -> String {
        let show = |index: usize, site: &Site| {
            site.describe(&self.bird.get(index).map_or_else(String::new, |bird| {
                let ospf = bird
                    .birdc(&["show", "ospf", "neighbors"])
                    .unwrap_or_else(|error| format!("{error:#}"));
                format!("ospf:\n{ospf}\nbird log:\n{}", bird.log())
            }))
        };
        show(0, &self.sites.a) + &show(1, &self.sites.b)
    }
}

#[test]
fn bird_ospf_over_a_wgd_tunnel_installs_the_far_lan_and_follows_the_tunnel() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut lab = Lab {
        bird: Vec::new(),
        sites: TwoSites::new(&A, &B)?,
    };
    // A route of wgd's bridge at A before bird starts: bird's kernel
    // protocol, which prunes what it does not know when it starts, must
    // leave it alone (it only removes routes of its own protocol).
    let (a, wgd) = (&lab.sites.a, &lab.sites.wgd);
    let socket = a.socket.to_str().unwrap_or_default();
    wait_for(
        Duration::from_secs(10),
        "A's bridge to take a route",
        || {
            wgd.run(
                &a.namespace,
                &[
                    "route",
                    "add",
                    BRIDGE_ROUTE,
                    "via",
                    B.tunnel_address,
                    "--api",
                    socket,
                ],
            )
            .is_ok_and(|output| output.contains("installed"))
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", lab.describe()))?;
    let birds =
        [&lab.sites.a, &lab.sites.b].map(|site| Bird::start(&site.namespace, &bird_config(site)));
    for bird in birds {
        lab.bird.push(bird?);
    }
    let lab = lab;
    let (a, b) = (&lab.sites.a, &lab.sites.b);
    let context = |error: wgd_labs::Error| anyhow::anyhow!("{error}\n{}", lab.describe());

    wait_for(
        Duration::from_secs(30),
        "the adjacency Full at both",
        || lab.both_full(),
    )
    .map_err(context)?;
    eprintln!("adjacency Full after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(20),
        "each kernel routing the other LAN through the tunnel, by bird",
        || a.routes_to(&B, "bird") && b.routes_to(&A, "bird"),
    )
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "the hosts reaching each other",
        || a.host_pings(&B) && b.host_pings(&A),
    )
    .map_err(context)?;
    // Nothing but bird put the LAN routes there, and bird left the
    // bridge's route alone.
    assert!(b.wgd_routes()?.trim().is_empty(), "{}", lab.describe());
    let at_a = a.wgd_routes()?;
    assert!(
        at_a.lines().count() == 1
            && at_a.starts_with(&format!("{BRIDGE_ROUTE} via {} ", B.tunnel_address)),
        "{at_a}\n{}",
        lab.describe()
    );
    eprintln!("converged after {:?}", started.elapsed());

    // A reconcile of wgd (SIGHUP re-reads the config and applies it)
    // leaves bird's route and the tunnel alone.
    let before = a.route(B.lan);
    let reconciles = |site: &Site| {
        scrape_metrics(&site.namespace, METRICS)
            .lines()
            .find_map(|line| line.strip_prefix("wgd_reconciles_total "))
            .and_then(|count| count.trim().parse::<u64>().ok())
    };
    let reconciled = reconciles(a).context("wgd's metrics")?;
    sighup(&a.namespace, &a.daemon)?;
    wait_for(
        Duration::from_secs(10),
        "wgd's reconcile after SIGHUP",
        || reconciles(a).is_some_and(|count| count > reconciled),
    )
    .map_err(context)?;
    assert_eq!(a.route(B.lan), before, "{}", lab.describe());
    assert!(lab.full(0, a), "{}", lab.describe());
    assert!(a.host_pings(&B), "{}", lab.describe());

    // The underlay is cut: hellos stop, bird declares the neighbor down
    // after the dead interval and takes the route out of the kernel.
    let cut = Instant::now();
    let underlay = &lab.sites.a_underlay;
    a.namespace
        .check(&["ip", "link", "set", underlay, "down"])?;
    wait_for(
        Duration::from_secs(4 * DEAD_SECONDS),
        "the far LAN to leave both kernels",
        || a.route(B.lan).is_empty() && b.route(A.lan).is_empty(),
    )
    .map_err(context)?;
    eprintln!("routes gone {:?} after the cut", cut.elapsed());
    assert!(!a.host_pings(&B));

    // The underlay is back: the adjacency and the routes return.
    let restored = Instant::now();
    a.namespace.check(&["ip", "link", "set", underlay, "up"])?;
    wait_for(
        Duration::from_secs(30),
        "the adjacency and the routes to come back",
        || lab.both_full() && a.routes_to(&B, "bird") && b.routes_to(&A, "bird"),
    )
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "the hosts reaching each other",
        || a.host_pings(&B) && b.host_pings(&A),
    )
    .map_err(context)?;
    eprintln!("back {:?} after the repair", restored.elapsed());
    Ok(())
}
