//! FRR's bgpd at two sites joined by one wgd tunnel, with a host behind
//! each site.
//!
//! Each site is a namespace running `wgd run` (no `[bgp]`: the tunnel
//! only, AllowedIPs `0.0.0.0/0` and no routes) and FRR's zebra and bgpd,
//! in eBGP (AS 65001 and 65002) over the tunnel's /31, each announcing its
//! LAN. Each LAN is a veth to a host namespace whose default route points
//! at its site. The test checks that each site's kernel has the other's
//! LAN `proto bgp` through the tunnel, put there by zebra (and none by
//! wgd), and that the hosts ping each other across the tunnel.

use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, link, unique_name, wait_for};
use wgd_tests::frr::Frr;
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;

/// One side of the lab: the site (a router) and the host behind it.
struct Side {
    asn: u32,
    /// The site's underlay address (a /30).
    underlay: &'static str,
    /// The site's tunnel address (a /31).
    tunnel_address: &'static str,
    lan: &'static str,
    /// The site's address on its LAN: the host's default gateway.
    gateway: &'static str,
    host_address: &'static str,
}

const A: Side = Side {
    asn: 65001,
    underlay: "198.18.40.1",
    tunnel_address: "10.254.40.0",
    lan: "192.168.1.0/24",
    gateway: "192.168.1.1",
    host_address: "192.168.1.10",
};

const B: Side = Side {
    asn: 65002,
    underlay: "198.18.40.2",
    tunnel_address: "10.254.40.1",
    lan: "192.168.2.0/24",
    gateway: "192.168.2.1",
    host_address: "192.168.2.10",
};

/// A running site: FRR stops first, then `wgd run`, then the namespaces.
struct Site {
    frr: Option<Frr>,
    daemon: Daemon,
    tunnel: String,
    namespace: Namespace,
    host: Namespace,
}

/// `this` site's wgd.toml: its API socket in its own directory, and its
/// tunnel to `other`, without persistent keepalive (BGP keeps it busy).
fn wgd_config(
    namespace: &Namespace,
    tunnel: &str,
    keys: &KeyPair,
    this: &Side,
    other: &Side,
    other_keys: &KeyPair,
) -> String {
    format!(
        "[daemon]\napi = \"{socket}\"\n\n\
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

/// `this` site's frr.conf: eBGP to `other` over the tunnel, announcing
/// its own LAN; short timers (keepalive 3 s, hold 9 s, connect retry 2 s).
fn frr_config(this: &Side, other: &Side) -> String {
    [
        "frr defaults traditional".to_owned(),
        format!("hostname bgp-as{}", this.asn),
        "!".to_owned(),
        format!("router bgp {}", this.asn),
        format!(" bgp router-id {}", this.tunnel_address),
        " no bgp ebgp-requires-policy".to_owned(),
        " timers bgp 3 9".to_owned(),
        format!(" neighbor {} remote-as {}", other.tunnel_address, other.asn),
        format!(" neighbor {} timers connect 2", other.tunnel_address),
        " address-family ipv4 unicast".to_owned(),
        format!("  network {}", this.lan),
        " exit-address-family".to_owned(),
        "!".to_owned(),
    ]
    .join("\n")
        + "\n"
}

impl Site {
    /// Brings up `this` site's namespace, its host and LAN, and `wgd run`
    /// with its tunnel; FRR comes later, once both tunnels exist.
    fn new(wgd: &Wgd, this: &Side, other: &Side, keys: [&KeyPair; 2]) -> anyhow::Result<Self> {
        let namespace = Namespace::new(&format!("bgp{}", this.asn))?;
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let host = Namespace::new(&format!("host{}", this.asn))?;
        let (lan_if, host_if) = (unique_name("lan"), unique_name("eth"));
        link(&namespace, &lan_if, &host, &host_if)?;
        namespace.add_address(&lan_if, &format!("{}/24", this.gateway))?;
        host.add_address(&host_if, &format!("{}/24", this.host_address))?;
        host.add_route(&format!("default via {}", this.gateway))?;
        let tunnel = unique_name("wb");
        let config = wgd_config(&namespace, &tunnel, keys[0], this, other, keys[1]);
        let path = write_config(namespace.dir(), "wgd.toml", &config)?;
        let daemon = wgd.spawn(
            &namespace,
            &["run", "-c", path.to_str().unwrap_or_default()],
        )?;
        Ok(Self {
            frr: None,
            daemon,
            tunnel,
            namespace,
            host,
        })
    }

    /// Whether the tunnel is there with its address (`wgd run` made it).
    fn tunnel_ready(&self, this: &Side) -> bool {
        self.namespace
            .check(&["ip", "-4", "-o", "address", "show", "dev", &self.tunnel])
            .is_ok_and(|text| text.contains(&format!("inet {}/31", this.tunnel_address)))
    }

    /// `ip route show <prefix>` here.
    fn route(&self, prefix: &str) -> String {
        self.namespace
            .check(&["ip", "route", "show", prefix])
            .unwrap_or_default()
    }

    /// Whether zebra put `other`'s LAN in the kernel, from BGP, through the
    /// tunnel to `other`.
    fn routes_through_tunnel(&self, other: &Side) -> bool {
        let route = self.route(other.lan);
        route.lines().count() == 1
            && route.contains("proto bgp")
            && route.contains(&format!(" via {} ", other.tunnel_address))
            && route.contains(&format!(" dev {} ", self.tunnel))
    }

    /// Whether bgpd's session with `other` is established.
    fn established(&self, other: &Side) -> bool {
        let Some(frr) = &self.frr else {
            return false;
        };
        let text = frr
            .vtysh(&["show bgp ipv4 unicast summary json"])
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json["peers"][other.tunnel_address]["state"] == "Established"
    }

    /// What FRR, the kernel and `wgd run` show, for failure messages.
    fn describe(&self, name: &str) -> String {
        let bgp = self.frr.as_ref().map_or_else(String::new, |frr| {
            frr.vtysh(&["show bgp summary", "show ip route"])
                .unwrap_or_else(|error| error.to_string())
        });
        let kernel = self
            .namespace
            .check(&["ip", "route", "show"])
            .unwrap_or_else(|error| error.to_string());
        format!(
            "--- site {name} (tunnel {}):\n{bgp}\nkernel:\n{kernel}\nwgd:\n{}\n",
            self.tunnel,
            self.daemon.log()
        )
    }
}

#[test]
fn bgp_over_a_tunnel_carries_two_lans_to_each_other() -> anyhow::Result<()> {
    let started = Instant::now();
    let wgd = Wgd::new()?;
    let (a_keys, b_keys) = (KeyPair::generate()?, KeyPair::generate()?);
    let mut a = Site::new(&wgd, &A, &B, [&a_keys, &b_keys])?;
    let mut b = Site::new(&wgd, &B, &A, [&b_keys, &a_keys])?;
    underlay(
        &a.namespace,
        &format!("{}/30", A.underlay),
        &b.namespace,
        &format!("{}/30", B.underlay),
    )?;
    let describe = |a: &Site, b: &Site| format!("{}{}", a.describe("A"), b.describe("B"));
    wait_for(
        Duration::from_secs(10),
        "`wgd run` to make both tunnels",
        || a.tunnel_ready(&A) && b.tunnel_ready(&B),
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", describe(&a, &b)))?;
    a.frr = Some(Frr::start_with(
        &a.namespace,
        &frr_config(&A, &B),
        &["zebra", "bgpd"],
        &[],
    )?);
    b.frr = Some(Frr::start_with(
        &b.namespace,
        &frr_config(&B, &A),
        &["zebra", "bgpd"],
        &[],
    )?);
    let context = |error: wgd_labs::Error| anyhow::anyhow!("{error}\n{}", describe(&a, &b));
    eprintln!("sites up after {:?}", started.elapsed());

    wait_for(
        Duration::from_secs(30),
        "the eBGP session over the tunnel",
        || a.established(&B) && b.established(&A),
    )
    .map_err(context)?;
    eprintln!("session established after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(15),
        "each site's kernel routing the other's LAN through the tunnel",
        || a.routes_through_tunnel(&B) && b.routes_through_tunnel(&A),
    )
    .map_err(context)?;
    eprintln!("routes in the kernels after {:?}", started.elapsed());
    // zebra put them there; `wgd run` added no route of its own.
    for site in [&a, &b] {
        let wgd_routes = site
            .namespace
            .check(&["ip", "route", "show", "proto", "200"])?;
        assert!(wgd_routes.trim().is_empty(), "{wgd_routes}");
    }
    wait_for(
        Duration::from_secs(10),
        "the hosts behind the sites reaching each other",
        || {
            a.host.pings(B.host_address).unwrap_or(false)
                && b.host.pings(A.host_address).unwrap_or(false)
        },
    )
    .map_err(context)?;
    // Site A sends host B's packets through the tunnel.
    let path = a.namespace.check(&["ip", "route", "get", B.host_address])?;
    assert!(path.contains(&format!("dev {}", a.tunnel)), "{path}");
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}
