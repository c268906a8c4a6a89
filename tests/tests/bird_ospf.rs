//! BIRD 2's OSPF at two sites joined by one wgd tunnel, with a host behind
//! each site, and BIRD's kernel protocol installing what OSPF learns.
//!
//! Each site is a namespace running `wgd run` (no `[bgp]`: the tunnel
//! only, AllowedIPs `0.0.0.0/0` and no routes) and bird, with OSPFv2
//! point-to-point on the tunnel (hello 1 s, dead 4 s) and the LAN as a
//! stub interface. OSPF's hellos to 224.0.0.5 cross the tunnel because
//! AllowedIPs filters nothing. Each LAN is a veth to a host namespace
//! whose default route points at its site. The test checks that the
//! adjacency reaches Full, that each kernel has the other's LAN `proto
//! bird` through the tunnel (none by wgd), that bird leaves
//! a route of wgd's bridge alone (each removes only its own), that the hosts
//! ping each other, that a reconcile of wgd (SIGHUP) leaves bird's routes
//! alone, and that when the tunnel's underlay is cut bird takes its
//! route out after the dead interval, and puts it back when the underlay
//! returns.

use std::time::{Duration, Instant};

use anyhow::Context;

use wgd_labs::{Daemon, Namespace, link, unique_name, wait_for};
use wgd_tests::bird::Bird;
use wgd_tests::{KeyPair, Wgd, scrape_metrics, sighup, underlay, write_config};

const PORT: u16 = 51820;
const HELLO_SECONDS: u64 = 1;
const DEAD_SECONDS: u64 = 4;
/// A route A's bridge holds while bird runs beside it.
const BRIDGE_ROUTE: &str = "10.99.0.0/16";
/// wgd's Prometheus endpoint, on each site's own loopback.
const METRICS: &str = "127.0.0.1:9586";

/// One side of the lab: the site (a router) and the host behind it.
struct Side {
    /// The site's underlay address (a /30).
    underlay: &'static str,
    /// The site's tunnel address (a /31), also its OSPF router ID.
    tunnel_address: &'static str,
    lan: &'static str,
    /// The site's address on its LAN: the host's default gateway.
    gateway: &'static str,
    host_address: &'static str,
}

const A: Side = Side {
    underlay: "198.18.41.1",
    tunnel_address: "10.254.41.0",
    lan: "192.168.1.0/24",
    gateway: "192.168.1.1",
    host_address: "192.168.1.10",
};

const B: Side = Side {
    underlay: "198.18.41.2",
    tunnel_address: "10.254.41.1",
    lan: "192.168.2.0/24",
    gateway: "192.168.2.1",
    host_address: "192.168.2.10",
};

/// `this` site's wgd.toml: its API socket in its own directory and its
/// tunnel to `other`, without persistent keepalive (OSPF's hellos keep it
/// busy).
fn wgd_config(
    namespace: &Namespace,
    tunnel: &str,
    keys: &KeyPair,
    this: &Side,
    other: &Side,
    other_keys: &KeyPair,
) -> String {
    format!(
        "[daemon]\napi = \"{socket}\"\nmetrics = \"{METRICS}\"\n\n\
         [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{private}\"\nlisten_port = {PORT}\n\
         address = [\"{address}/31\"]\n\n\
         [[tunnel.peer]]\npublic_key = \"{public}\"\nendpoint = \"{endpoint}:{PORT}\"\n",
        socket = namespace.dir().join("wgd.sock").display(),
        private = keys.private,
        address = this.tunnel_address,
        public = other_keys.public,
        endpoint = other.underlay,
    )
}

/// `this` site's bird.conf: the lines the README's "Using wgd with BIRD"
/// gives, with the lab's interface names and short timers.
fn bird_config(this: &Side, tunnel: &str, lan_if: &str) -> String {
    format!(
        "router id {router_id};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export where source = RTS_OSPF; }};\n}}\n\
         protocol ospf v2 {{\n  ipv4 {{ import all; export none; }};\n  area 0 {{\n    \
         interface \"{tunnel}\" {{ type ptp; hello {HELLO_SECONDS}; dead {DEAD_SECONDS}; retransmit 2; }};\n    \
         interface \"{lan_if}\" {{ stub yes; }};\n  }};\n}}\n",
        router_id = this.tunnel_address,
    )
}

/// A running site: bird stops first, then `wgd run`, then the namespaces.
struct Site {
    bird: Option<Bird>,
    daemon: Daemon,
    tunnel: String,
    lan_if: String,
    namespace: Namespace,
    host: Namespace,
}

impl Site {
    /// `this` site's namespace, its host and LAN, and `wgd run` with its
    /// tunnel; bird comes once the tunnel exists.
    fn new(wgd: &Wgd, this: &Side, other: &Side, keys: [&KeyPair; 2]) -> anyhow::Result<Self> {
        let namespace = Namespace::new("birdospf")?;
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let host = Namespace::new("birdhost")?;
        let (lan_if, host_if) = (unique_name("lan"), unique_name("eth"));
        link(&namespace, &lan_if, &host, &host_if)?;
        namespace.add_address(&lan_if, &format!("{}/24", this.gateway))?;
        host.add_address(&host_if, &format!("{}/24", this.host_address))?;
        host.add_route(&format!("default via {}", this.gateway))?;
        let tunnel = unique_name("wbo");
        let config = wgd_config(&namespace, &tunnel, keys[0], this, other, keys[1]);
        let path = write_config(namespace.dir(), "wgd.toml", &config)?;
        let daemon = wgd.spawn(
            &namespace,
            &["run", "-c", path.to_str().unwrap_or_default()],
        )?;
        Ok(Self {
            bird: None,
            daemon,
            tunnel,
            lan_if,
            namespace,
            host,
        })
    }

    fn bird(&self) -> &Bird {
        self.bird.as_ref().expect("bird started")
    }

    /// Whether `wgd run` made the tunnel and gave it its address.
    fn tunnel_ready(&self, this: &Side) -> bool {
        self.namespace
            .check(&["ip", "-4", "-o", "address", "show", "dev", &self.tunnel])
            .is_ok_and(|text| text.contains(&format!("inet {}/31", this.tunnel_address)))
    }

    /// Whether the OSPF neighbor on the tunnel is Full.
    fn full(&self) -> bool {
        self.bird()
            .birdc(&["show", "ospf", "neighbors"])
            .is_ok_and(|text| {
                text.lines()
                    .any(|line| line.contains(&self.tunnel) && line.contains("Full"))
            })
    }

    /// `ip route show <prefix>` here.
    fn route(&self, prefix: &str) -> String {
        self.namespace
            .check(&["ip", "route", "show", prefix])
            .unwrap_or_default()
    }

    /// Whether the kernel routes `other`'s LAN with bird through the
    /// tunnel, and only that way.
    fn routes_to(&self, other: &Side) -> bool {
        let route = self.route(other.lan);
        route.lines().count() == 1
            && route.contains("proto bird")
            && route.contains(&format!(" via {} ", other.tunnel_address))
            && route.contains(&format!(" dev {} ", self.tunnel))
    }

    /// Whether this site's host gets an answer from `other`'s host.
    fn host_pings(&self, other: &Side) -> bool {
        self.host
            .run(&["ping", "-c", "1", "-W", "1", other.host_address])
            .is_ok_and(|output| output.status.success())
    }

    /// What bird, the kernel and wgd show, for failure messages.
    fn describe(&self) -> String {
        let (ospf, log) = self.bird.as_ref().map_or_else(Default::default, |bird| {
            (
                bird.birdc(&["show", "ospf", "neighbors"])
                    .unwrap_or_else(|error| format!("{error:#}")),
                bird.log(),
            )
        });
        let kernel = self
            .namespace
            .check(&["ip", "route", "show"])
            .unwrap_or_else(|error| error.to_string());
        format!(
            "--- {} (tunnel {}):\nospf:\n{ospf}\nkernel:\n{kernel}\nbird log:\n{log}\nwgd:\n{}",
            self.namespace.name(),
            self.tunnel,
            self.daemon.log()
        )
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // bird before wgd and the namespaces: its kernel protocol would
        // otherwise see interfaces vanish under it.
        self.bird.take();
    }
}

#[test]
fn bird_ospf_over_a_wgd_tunnel_installs_the_far_lan_and_follows_the_tunnel() -> anyhow::Result<()> {
    let started = Instant::now();
    let wgd = Wgd::new()?;
    let (a_keys, b_keys) = (KeyPair::generate()?, KeyPair::generate()?);
    let mut a = Site::new(&wgd, &A, &B, [&a_keys, &b_keys])?;
    let mut b = Site::new(&wgd, &B, &A, [&b_keys, &a_keys])?;
    let (a_underlay, _) = underlay(
        &a.namespace,
        &format!("{}/30", A.underlay),
        &b.namespace,
        &format!("{}/30", B.underlay),
    )?;
    let describe = |a: &Site, b: &Site| format!("{}\n{}", a.describe(), b.describe());
    wait_for(Duration::from_secs(15), "both tunnels up", || {
        a.tunnel_ready(&A) && b.tunnel_ready(&B)
    })
    .map_err(|error| anyhow::anyhow!("{error}\n{}", describe(&a, &b)))?;
    // A route of wgd's bridge at A before bird starts: bird's kernel
    // protocol, which prunes what it does not know when it starts, must
    // leave it alone (it only removes routes of its own protocol).
    let socket = a.namespace.dir().join("wgd.sock");
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
                    socket.to_str().unwrap_or_default(),
                ],
            )
            .is_ok_and(|output| output.contains("installed"))
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", describe(&a, &b)))?;
    a.bird = Some(Bird::start(
        &a.namespace,
        &bird_config(&A, &a.tunnel, &a.lan_if),
    )?);
    b.bird = Some(Bird::start(
        &b.namespace,
        &bird_config(&B, &b.tunnel, &b.lan_if),
    )?);
    let context = |error: wgd_labs::Error| anyhow::anyhow!("{error}\n{}", describe(&a, &b));

    wait_for(
        Duration::from_secs(30),
        "the adjacency Full at both",
        || a.full() && b.full(),
    )
    .map_err(context)?;
    eprintln!("adjacency Full after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(20),
        "each kernel routing the other LAN through the tunnel, by bird",
        || a.routes_to(&B) && b.routes_to(&A),
    )
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "the hosts reaching each other",
        || a.host_pings(&B) && b.host_pings(&A),
    )
    .map_err(context)?;
    // Nothing but bird put the LAN routes there: wgd added no route.
    // Nothing but bird put the LAN routes there, and bird left the
    // bridge's route alone.
    let ours = |site: &Site| {
        site.namespace
            .check(&["ip", "route", "show", "table", "all", "proto", "200"])
    };
    assert!(ours(&b)?.trim().is_empty(), "{}", describe(&a, &b));
    let at_a = ours(&a)?;
    assert!(
        at_a.lines().count() == 1
            && at_a.starts_with(&format!("{BRIDGE_ROUTE} via {} ", B.tunnel_address)),
        "{at_a}\n{}",
        describe(&a, &b)
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
    let reconciled = reconciles(&a).context("wgd's metrics")?;
    sighup(&a.namespace, &a.daemon)?;
    wait_for(
        Duration::from_secs(10),
        "wgd's reconcile after SIGHUP",
        || reconciles(&a).is_some_and(|count| count > reconciled),
    )
    .map_err(context)?;
    assert_eq!(a.route(B.lan), before, "{}", describe(&a, &b));
    assert!(a.full(), "{}", describe(&a, &b));
    assert!(a.host_pings(&B), "{}", describe(&a, &b));

    // The underlay is cut: hellos stop, bird declares the neighbor down
    // after the dead interval and takes the route out of the kernel.
    let cut = Instant::now();
    a.namespace
        .check(&["ip", "link", "set", &a_underlay, "down"])?;
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
    a.namespace
        .check(&["ip", "link", "set", &a_underlay, "up"])?;
    wait_for(
        Duration::from_secs(30),
        "the adjacency and the routes to come back",
        || a.full() && b.full() && a.routes_to(&B) && b.routes_to(&A),
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
