//! FRR's ospfd at three sites joined in a triangle of wgd tunnels.
//!
//! Each site is a namespace with a LAN address on `lo`, forwarding on, and
//! two tunnels brought up by `wgd up` (no `[bgp]`, no routes: AllowedIPs
//! `0.0.0.0/0`), one to each other site over a veth underlay of its own.
//! zebra and ospfd run OSPF point-to-point on both tunnels, with short
//! timers (hello 1 s, dead 4 s, and retransmit 1 s: a neighbor drops an
//! LSA that comes less than MinLSArrival after the one before, as happens
//! while adjacencies form, and the default 5 s before it is sent again
//! would be most of the test's time): OSPF's hellos to 224.0.0.5 cross the
//! tunnels because AllowedIPs filters nothing. Each site originates its LAN
//! by redistributing connected routes through a route map that lets only
//! the LAN out (a `network` statement would announce `lo`'s address as a
//! host route, and the underlays must stay out of OSPF: a site that learned
//! a cut underlay's subnet through the other tunnel would send the cut
//! tunnel's packets inside it).
//!
//! The test checks that the adjacencies reach Full on both tunnels at each
//! site, that each kernel has the other two LANs `proto ospf` through the
//! direct tunnel, that LANs ping each other; then it cuts the underlay of
//! one tunnel and checks that both of its ends reroute through the third
//! site within a few dead intervals, and that the LANs ping each other
//! again that way; and when the underlay is back, that the direct tunnel
//! carries the routes again.

use std::time::{Duration, Instant};

use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::bgp::ping;
use wgd_tests::frr::Frr;
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const SITES: usize = 3;
const PORT: u16 = 51820;
const HELLO_SECONDS: u64 = 1;
const DEAD_SECONDS: u64 = 4;
const RETRANSMIT_SECONDS: u64 = 1;

/// Site `i`'s LAN (site numbers start at 1, indexes at 0).
fn lan(i: usize) -> String {
    format!("192.168.{}.0/24", i + 1)
}

/// Site `i`'s host on its LAN (on `lo`), also its OSPF router ID.
fn lan_host(i: usize) -> String {
    format!("192.168.{}.1", i + 1)
}

/// The link between sites `i` and `j`, the same both ways: "12", "13", "23".
fn link_id(i: usize, j: usize) -> String {
    format!("{}{}", i.min(j) + 1, i.max(j) + 1)
}

/// Which end of the link between `i` and `j` site `i` is: 0 for the lower.
fn side(i: usize, j: usize) -> usize {
    usize::from(i > j)
}

/// Site `i`'s address on its underlay to `j` (a /30).
fn underlay_address(i: usize, j: usize) -> String {
    format!("198.18.{}.{}", link_id(i, j), side(i, j) + 1)
}

/// Site `i`'s address on its tunnel to `j` (a /31).
fn tunnel_address(i: usize, j: usize) -> String {
    format!("10.254.{}.{}", link_id(i, j), side(i, j))
}

/// The /31 of the tunnel between `i` and `j`.
fn tunnel_subnet(i: usize, j: usize) -> String {
    format!("10.254.{}.0/31", link_id(i, j))
}

/// The other sites, seen from `i`.
fn others(i: usize) -> impl Iterator<Item = usize> {
    (0..SITES).filter(move |j| *j != i)
}

/// Site `i`'s wgd.toml: one tunnel per other site, each listening on a
/// port of its own and sending to that site's underlay address. No
/// persistent keepalive: the hellos keep the tunnels busy (and with
/// keepalives at both ends, first handshakes that cross can keep crossing;
/// see `labs/frr-ospf3/site1/wgd.toml`).
fn wgd_config(i: usize, keys: &[KeyPair], tunnels: &[[String; SITES]; SITES]) -> String {
    let mut config = String::new();
    for j in others(i) {
        config.push_str(&format!(
            "[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{private}\"\nlisten_port = {port}\n\
             address = [\"{address}/31\"]\n\n\
             [[tunnel.peer]]\nname = \"site{peer}\"\npublic_key = \"{public}\"\n\
             endpoint = \"{endpoint}:{peer_port}\"\n\n",
            name = tunnels[i][j],
            private = keys[i].private,
            port = PORT + j as u16,
            address = tunnel_address(i, j),
            peer = j + 1,
            public = keys[j].public,
            endpoint = underlay_address(j, i),
            peer_port = PORT + i as u16,
        ));
    }
    config
}

/// Site `i`'s frr.conf: OSPF point-to-point with short timers on both
/// tunnels, and the LAN (only) redistributed.
fn frr_config(i: usize, tunnels: &[[String; SITES]; SITES]) -> String {
    let mut config = format!(
        "frr defaults traditional\nhostname ospf-site{site}\n!\n\
         ip prefix-list site-lan seq 5 permit {lan}\n!\n\
         route-map site-lan permit 10\n match ip address prefix-list site-lan\n!\n",
        site = i + 1,
        lan = lan(i),
    );
    for j in others(i) {
        config.push_str(&format!("interface {}\n", tunnels[i][j]));
        for line in [
            "ip ospf network point-to-point".to_owned(),
            format!("ip ospf hello-interval {HELLO_SECONDS}"),
            format!("ip ospf dead-interval {DEAD_SECONDS}"),
            format!("ip ospf retransmit-interval {RETRANSMIT_SECONDS}"),
        ] {
            config.push_str(&format!(" {line}\n"));
        }
        config.push_str("!\n");
    }
    config.push_str(&format!("router ospf\n ospf router-id {}\n", lan_host(i)));
    for j in others(i) {
        config.push_str(&format!(" network {} area 0\n", tunnel_subnet(i, j)));
    }
    config.push_str(" redistribute connected route-map site-lan\n!\n");
    config
}

/// The three sites. FRR is stopped first, then the namespaces go (with the
/// tunnels, wireguard-go and the underlays in them).
struct Triangle {
    frr: Vec<Frr>,
    sites: Vec<Namespace>,
    /// `tunnels[i][j]`: site `i`'s tunnel to `j` (machine-wide unique).
    tunnels: [[String; SITES]; SITES],
    /// `underlays[i][j]`: site `i`'s end of its underlay to `j`.
    underlays: [[String; SITES]; SITES],
}

impl Triangle {
    fn new() -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let mut sites = Vec::new();
        let mut keys = Vec::new();
        for i in 0..SITES {
            let namespace = Namespace::new(&format!("ospf{}", i + 1))?;
            namespace.add_address("lo", &format!("{}/24", lan_host(i)))?;
            // A router: it carries the others' traffic when a tunnel is cut.
            namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            sites.push(namespace);
            keys.push(KeyPair::generate()?);
        }
        let tunnels: [[String; SITES]; SITES] =
            std::array::from_fn(|_| std::array::from_fn(|_| unique_name("wo")));
        let mut underlays: [[String; SITES]; SITES] = Default::default();
        for i in 0..SITES {
            for j in i + 1..SITES {
                let (i_end, j_end) = underlay(
                    &sites[i],
                    &format!("{}/30", underlay_address(i, j)),
                    &sites[j],
                    &format!("{}/30", underlay_address(j, i)),
                )?;
                underlays[i][j] = i_end;
                underlays[j][i] = j_end;
            }
        }
        for (i, site) in sites.iter().enumerate() {
            let path = write_config(site.dir(), "wgd.toml", &wgd_config(i, &keys, &tunnels))?;
            wgd.run(site, &["up", path.to_str().unwrap_or_default()])?;
        }
        let mut triangle = Self {
            frr: Vec::new(),
            sites,
            tunnels,
            underlays,
        };
        for i in 0..SITES {
            let frr = Frr::start_with(
                &triangle.sites[i],
                &frr_config(i, &triangle.tunnels),
                &["zebra", "ospfd"],
                &[],
            )?;
            triangle.frr.push(frr);
        }
        Ok(triangle)
    }

    /// Site `i`'s neighbors in state Full, as the tunnels they are on.
    fn full_on(&self, i: usize) -> Vec<String> {
        let text = self.frr[i]
            .vtysh(&["show ip ospf neighbor json"])
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let Some(neighbors) = json["neighbors"].as_object() else {
            return Vec::new();
        };
        neighbors
            .values()
            .filter_map(serde_json::Value::as_array)
            .flatten()
            .filter(|neighbor| {
                neighbor["nbrState"]
                    .as_str()
                    .or_else(|| neighbor["state"].as_str())
                    .is_some_and(|state| state.starts_with("Full"))
            })
            .filter_map(|neighbor| {
                let interface = neighbor["ifaceName"].as_str()?;
                // "wo-...:10.254.12.0": the interface, then our address.
                Some(interface.split(':').next()?.to_owned())
            })
            .collect()
    }

    /// Whether site `i` has adjacencies in state Full on the tunnels to
    /// `peers`, and on no other.
    fn full_exactly(&self, i: usize, peers: &[usize]) -> bool {
        let mut full = self.full_on(i);
        full.sort();
        let mut expected: Vec<String> = peers.iter().map(|j| self.tunnels[i][*j].clone()).collect();
        expected.sort();
        full == expected
    }

    /// `ip route show <prefix>` at site `i`.
    fn route(&self, i: usize, prefix: &str) -> String {
        self.sites[i]
            .check(&["ip", "route", "show", prefix])
            .unwrap_or_default()
    }

    /// Whether site `i` routes site `to`'s LAN with OSPF through its tunnel
    /// to `via`, and only that way.
    fn routes_via(&self, i: usize, to: usize, via: usize) -> bool {
        let route = self.route(i, &lan(to));
        route.lines().count() == 1
            && route.contains("proto ospf")
            && route.contains(&format!(" via {} ", tunnel_address(via, i)))
            && route.contains(&format!(" dev {} ", self.tunnels[i][via]))
    }

    /// Whether site `from`'s LAN host gets an answer from site `to`'s.
    fn pings(&self, from: usize, to: usize) -> bool {
        ping(self.sites[from].name(), &lan_host(from), &lan_host(to))
    }

    /// What each site's OSPF and kernel show, for failure messages.
    fn describe(&self) -> String {
        let mut text = String::new();
        for (i, frr) in self.frr.iter().enumerate() {
            let ospf = frr
                .vtysh(&["show ip ospf neighbor", "show ip ospf route"])
                .unwrap_or_else(|error| error.to_string());
            let kernel = self.sites[i]
                .check(&["ip", "route", "show"])
                .unwrap_or_else(|error| error.to_string());
            text.push_str(&format!(
                "--- site {} (tunnels {:?}):\n{ospf}\nkernel:\n{kernel}\n",
                i + 1,
                others(i).map(|j| &self.tunnels[i][j]).collect::<Vec<_>>(),
            ));
        }
        text
    }

    fn context(&self) -> impl Fn(wgd_labs::Error) -> anyhow::Error + '_ {
        |error| anyhow::anyhow!("{error}\n{}", self.describe())
    }
}

#[test]
fn ospf_over_a_triangle_of_tunnels_converges_and_reroutes_around_a_cut() -> anyhow::Result<()> {
    let started = Instant::now();
    let lab = Triangle::new()?;
    let context = lab.context();
    eprintln!("sites up after {:?}", started.elapsed());

    wait_for(
        Duration::from_secs(30),
        "Full adjacencies on both tunnels at every site",
        || (0..SITES).all(|i| lab.full_exactly(i, &others(i).collect::<Vec<_>>())),
    )
    .map_err(&context)?;
    eprintln!("adjacencies Full after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(20),
        "every site routing the other LANs through the direct tunnels",
        || (0..SITES).all(|i| others(i).all(|j| lab.routes_via(i, j, j))),
    )
    .map_err(&context)?;
    eprintln!("routes in the kernels after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(15),
        "every LAN reaching the other two",
        || (0..SITES).all(|i| others(i).all(|j| lab.pings(i, j))),
    )
    .map_err(&context)?;
    // Nothing but OSPF put the LAN routes there: wgd added no route.
    for i in 0..SITES {
        let wgd_routes = lab.sites[i].check(&["ip", "route", "show", "proto", "200"])?;
        assert!(wgd_routes.trim().is_empty(), "site {}: {wgd_routes}", i + 1);
    }
    eprintln!("converged after {:?}", started.elapsed());

    // Cut the underlay between sites 1 and 2 at site 1: hellos stop both
    // ways, the adjacency dies at both ends after the dead interval, and
    // both reroute through site 3.
    let cut = Instant::now();
    lab.sites[0].check(&["ip", "link", "set", &lab.underlays[0][1], "down"])?;
    wait_for(
        Duration::from_secs(4 * DEAD_SECONDS),
        "sites 1 and 2 to reroute each other's LAN through site 3",
        || lab.routes_via(0, 1, 2) && lab.routes_via(1, 0, 2),
    )
    .map_err(&context)?;
    eprintln!("rerouted {:?} after the cut", cut.elapsed());
    assert!(lab.full_exactly(0, &[2]), "{}", lab.describe());
    assert!(lab.full_exactly(1, &[2]), "{}", lab.describe());
    // Site 3 kept its direct routes.
    assert!(
        lab.routes_via(2, 0, 0) && lab.routes_via(2, 1, 1),
        "{}",
        lab.describe()
    );
    wait_for(
        Duration::from_secs(10),
        "sites 1 and 2 reaching each other through site 3",
        || lab.pings(0, 1) && lab.pings(1, 0),
    )
    .map_err(&context)?;
    let path = lab.sites[0].check(&["ip", "route", "get", &lan_host(1), "from", &lan_host(0)])?;
    assert!(
        path.contains(&format!("dev {}", lab.tunnels[0][2])),
        "{path}"
    );

    // The underlay comes back: so do the adjacency and the direct routes.
    let restored = Instant::now();
    lab.sites[0].check(&["ip", "link", "set", &lab.underlays[0][1], "up"])?;
    wait_for(
        Duration::from_secs(4 * DEAD_SECONDS),
        "the direct tunnel between sites 1 and 2 to carry their LANs again",
        || {
            lab.full_exactly(0, &[1, 2])
                && lab.full_exactly(1, &[0, 2])
                && lab.routes_via(0, 1, 1)
                && lab.routes_via(1, 0, 0)
        },
    )
    .map_err(&context)?;
    eprintln!("direct again {:?} after the repair", restored.elapsed());
    wait_for(
        Duration::from_secs(10),
        "sites 1 and 2 reaching each other directly",
        || lab.pings(0, 1) && lab.pings(1, 0),
    )
    .map_err(&context)?;
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}
