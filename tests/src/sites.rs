//! Two sites joined by one wgd tunnel, with a host behind each: the lab of
//! the tests that put a routing daemon (FRR's bgpd, BIRD's OSPF) over wgd.
//!
//! Each site is a namespace that forwards and runs `wgd run` with one
//! tunnel to the other site (AllowedIPs `0.0.0.0/0`, no routes, no
//! persistent keepalive: the routing protocol keeps the tunnel busy) and
//! its API socket and Prometheus endpoint on its own loopback. Its LAN is
//! a veth to a host namespace whose default route points at the site. The
//! routing daemon is the test's own: it starts once both tunnels exist
//! ([`TwoSites::new`] waits for them) and is stopped before the sites.

use std::path::PathBuf;
use std::time::Duration;

use wgd_labs::{Daemon, Namespace, link, unique_name, wait_for};

use crate::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;
/// wgd's Prometheus endpoint, on each site's own loopback.
pub const METRICS: &str = "127.0.0.1:9586";

/// One side of the lab, as planned.
#[derive(Debug)]
pub struct Side {
    /// Its name in namespace names and failure messages.
    pub name: &'static str,
    /// The site's underlay address (a /30).
    pub underlay: &'static str,
    /// The site's tunnel address (a /31), also its router ID.
    pub tunnel_address: &'static str,
    pub lan: &'static str,
    /// The site's address on its LAN: the host's default gateway.
    pub gateway: &'static str,
    pub host_address: &'static str,
}

/// A running site: `wgd run` stops before the namespaces go.
#[derive(Debug)]
pub struct Site {
    pub side: &'static Side,
    pub daemon: Daemon,
    /// Its tunnel (machine-wide unique).
    pub tunnel: String,
    /// Its end of the LAN.
    pub lan_if: String,
    /// `wgd run`'s API socket.
    pub socket: PathBuf,
    pub namespace: Namespace,
    pub host: Namespace,
}

/// `this` site's wgd.toml, with its tunnel to `other`.
fn wgd_config(
    socket: &std::path::Path,
    tunnel: &str,
    this: &Side,
    other: &Side,
    keys: [&KeyPair; 2],
) -> String {
    format!(
        "[daemon]\napi = \"{socket}\"\nmetrics = \"{METRICS}\"\n\n\
         [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{private}\"\nlisten_port = {PORT}\n\
         address = [\"{address}/31\"]\n\n\
         [[tunnel.peer]]\npublic_key = \"{public}\"\nendpoint = \"{endpoint}:{PORT}\"\n",
        socket = socket.display(),
        private = keys[0].private,
        address = this.tunnel_address,
        public = keys[1].public,
        endpoint = other.underlay,
    )
}

impl Site {
    /// `this` site's namespace, its host and LAN, and `wgd run` with its
    /// tunnel to `other`; `keys` are this site's and the other's.
    fn new(
        wgd: &Wgd,
        this: &'static Side,
        other: &Side,
        keys: [&KeyPair; 2],
    ) -> anyhow::Result<Self> {
        let namespace = Namespace::new(this.name)?;
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let host = Namespace::new(&format!("{}h", this.name))?;
        let (lan_if, host_if) = (unique_name("lan"), unique_name("eth"));
        link(&namespace, &lan_if, &host, &host_if)?;
        namespace.add_address(&lan_if, &format!("{}/24", this.gateway))?;
        host.add_address(&host_if, &format!("{}/24", this.host_address))?;
        host.add_route(&format!("default via {}", this.gateway))?;
        let tunnel = unique_name("wt");
        let socket = namespace.dir().join("wgd.sock");
        let config = wgd_config(&socket, &tunnel, this, other, keys);
        let path = write_config(namespace.dir(), "wgd.toml", &config)?;
        let daemon = wgd.spawn(
            &namespace,
            &["run", "-c", path.to_str().unwrap_or_default()],
        )?;
        Ok(Self {
            side: this,
            daemon,
            tunnel,
            lan_if,
            socket,
            namespace,
            host,
        })
    }

    /// Whether `wgd run` made the tunnel and gave it its address.
    fn tunnel_ready(&self) -> bool {
        self.namespace
            .check(&["ip", "-4", "-o", "address", "show", "dev", &self.tunnel])
            .is_ok_and(|text| text.contains(&format!("inet {}/31", self.side.tunnel_address)))
    }

    /// `ip route show <prefix>` here.
    pub fn route(&self, prefix: &str) -> String {
        self.namespace
            .check(&["ip", "route", "show", prefix])
            .unwrap_or_default()
    }

    /// Whether the kernel routes `other`'s LAN by protocol `proto`
    /// (`bgp`, `bird`) through the tunnel, and only that way.
    pub fn routes_to(&self, other: &Side, proto: &str) -> bool {
        let route = self.route(other.lan);
        route.lines().count() == 1
            && route.contains(&format!("proto {proto}"))
            && route.contains(&format!(" via {} ", other.tunnel_address))
            && route.contains(&format!(" dev {} ", self.tunnel))
    }

    /// wgd's own routes here (protocol 200, any table), one per line.
    pub fn wgd_routes(&self) -> anyhow::Result<String> {
        Ok(self
            .namespace
            .check(&["ip", "route", "show", "table", "all", "proto", "200"])?)
    }

    /// Whether this site's host gets an answer from `other`'s host.
    pub fn host_pings(&self, other: &Side) -> bool {
        self.host
            .run(&["ping", "-c", "1", "-W", "1", other.host_address])
            .is_ok_and(|output| output.status.success())
    }

    /// The kernel's routes and wgd's log, with `daemon` (what the routing
    /// daemon shows), for failure messages.
    pub fn describe(&self, daemon: &str) -> String {
        let kernel = self
            .namespace
            .check(&["ip", "route", "show"])
            .unwrap_or_else(|error| error.to_string());
        format!(
            "--- site {} (tunnel {}):\n{daemon}\nkernel:\n{kernel}\nwgd:\n{}\n",
            self.side.name,
            self.tunnel,
            self.daemon.log()
        )
    }
}

/// Both sites, their tunnels up.
#[derive(Debug)]
pub struct TwoSites {
    pub a: Site,
    pub b: Site,
    /// A's end of the underlay (bring it down to cut the tunnel).
    pub a_underlay: String,
    pub wgd: Wgd,
}

impl TwoSites {
    /// Both sites and the underlay between them; returns once `wgd run`
    /// has made both tunnels.
    pub fn new(a: &'static Side, b: &'static Side) -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let (a_keys, b_keys) = (KeyPair::generate()?, KeyPair::generate()?);
        let site_a = Site::new(&wgd, a, b, [&a_keys, &b_keys])?;
        let site_b = Site::new(&wgd, b, a, [&b_keys, &a_keys])?;
        let (a_underlay, _) = underlay(
            &site_a.namespace,
            &format!("{}/30", a.underlay),
            &site_b.namespace,
            &format!("{}/30", b.underlay),
        )?;
        let sites = Self {
            a: site_a,
            b: site_b,
            a_underlay,
            wgd,
        };
        wait_for(
            Duration::from_secs(15),
            "`wgd run` to make both tunnels",
            || sites.a.tunnel_ready() && sites.b.tunnel_ready(),
        )
        .map_err(|error| {
            anyhow::anyhow!("{error}\n{}{}", sites.a.describe(""), sites.b.describe(""))
        })?;
        Ok(sites)
    }
}
