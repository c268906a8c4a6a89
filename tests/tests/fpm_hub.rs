//! A hub with one multi-peer wgd tunnel to two spokes, FRR at the hub
//! feeding the bridge over FPM.
//!
//! Each spoke runs `wgd run` with the built-in BGP speaker, announcing its
//! LAN (on `lo`) to the hub's FRR bgpd over its own single-peer tunnel
//! (AllowedIPs `0.0.0.0/0`). At the hub, `wgd run` has one tunnel with
//! both spokes as peers, each with only its tunnel address in its
//! AllowedIPs, a bridge with a table of its own looked up first (`[bridge]
//! table = 100` and `ip rule add pref 1000 lookup 100`, as the README
//! says), and an FPM listener; zebra (`-M dplane_fpm_nl`) keeps its routes
//! in main and sends them to the bridge. The bridge puts each spoke's LAN
//! in that spoke's AllowedIPs, which WireGuard needs to send to it (a
//! multi-peer tunnel picks the peer by destination) and to accept what it
//! sends from its LAN; bgpd re-announces each LAN to the other spoke, so
//! the spokes reach each other through the hub. The test checks all of
//! that, and that a LAN withdrawn at a spoke leaves the hub's kernel and
//! the peer's AllowedIPs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::bgp::ping;
use wgd_tests::frr::Frr;
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;
const HUB_ASN: u32 = 65000;
const HUB_TUNNEL_ADDRESS: &str = "10.254.60.1";
const BRIDGE_TABLE: &str = "100";

/// One spoke, as planned.
struct Plan {
    asn: u32,
    underlay_net: &'static str,
    tunnel_address: &'static str,
    lan: &'static str,
    lan_host: &'static str,
}

const PLANS: [Plan; 2] = [
    Plan {
        asn: 65001,
        underlay_net: "198.18.61",
        tunnel_address: "10.254.60.2",
        lan: "192.168.61.0/24",
        lan_host: "192.168.61.1",
    },
    Plan {
        asn: 65002,
        underlay_net: "198.18.62",
        tunnel_address: "10.254.60.3",
        lan: "192.168.62.0/24",
        lan_host: "192.168.62.1",
    },
];

/// A running spoke: its daemon stops before its namespace goes.
struct Spoke {
    plan: &'static Plan,
    daemon: Daemon,
    public_key: String,
    socket: String,
    namespace: Namespace,
}

/// The hub: FRR stops first, then `wgd run`, then the spokes and the
/// namespaces.
struct Hub {
    frr: Option<Frr>,
    daemon: Daemon,
    wgd: Wgd,
    tunnel: String,
    socket: PathBuf,
    spokes: Vec<Spoke>,
    namespace: Namespace,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.frr.take();
    }
}

/// The hub's frr.conf: eBGP to both spokes over the tunnel's /24, itself
/// as the next hop of what it passes on, and zebra's routes over FPM.
fn frr_config() -> String {
    let mut lines = vec![
        "frr defaults traditional".to_owned(),
        "hostname hub".to_owned(),
        "fpm address 127.0.0.1".to_owned(),
        "!".to_owned(),
        format!("router bgp {HUB_ASN}"),
        format!(" bgp router-id {HUB_TUNNEL_ADDRESS}"),
        " no bgp ebgp-requires-policy".to_owned(),
        " timers bgp 3 9".to_owned(),
    ];
    for plan in &PLANS {
        lines.push(format!(
            " neighbor {} remote-as {}",
            plan.tunnel_address, plan.asn
        ));
        lines.push(format!(
            " neighbor {} timers connect 2",
            plan.tunnel_address
        ));
    }
    lines.push(" address-family ipv4 unicast".to_owned());
    for plan in &PLANS {
        lines.push(format!("  neighbor {} next-hop-self", plan.tunnel_address));
    }
    lines.push(" exit-address-family".to_owned());
    lines.join("\n") + "\n"
}

impl Hub {
    fn new() -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let namespace = Namespace::new("fpmhub")?;
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let hub_keys = KeyPair::generate()?;
        let tunnel = unique_name("wfh");
        let socket = namespace.dir().join("wgd.sock");
        let mut hub_config = format!(
            "[daemon]\napi = \"{socket}\"\n\n\
             [bridge]\ntable = {BRIDGE_TABLE}\n\n\
             [fpm]\nlisten = \"127.0.0.1:2620\"\nhold_time = 30\n\n\
             [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{private}\"\nlisten_port = {PORT}\n\
             address = [\"{HUB_TUNNEL_ADDRESS}/24\"]\n",
            socket = socket.display(),
            private = hub_keys.private,
        );
        let mut spokes = Vec::new();
        for plan in &PLANS {
            let spoke_ns = Namespace::new("fpmspoke")?;
            let (hub_underlay, spoke_underlay) = (
                format!("{}.1", plan.underlay_net),
                format!("{}.2", plan.underlay_net),
            );
            underlay(
                &namespace,
                &format!("{hub_underlay}/30"),
                &spoke_ns,
                &format!("{spoke_underlay}/30"),
            )?;
            spoke_ns.add_address("lo", &format!("{}/24", plan.lan_host))?;
            let keys = KeyPair::generate()?;
            let spoke_socket = spoke_ns.dir().join("wgd.sock");
            // The spoke keeps its NAT mapping open (persistent keepalive at
            // one end only); its speaker announces its LAN to the hub.
            let config = format!(
                "[daemon]\napi = \"{socket}\"\n\n\
                 [bgp]\nasn = {asn}\nnetworks = [\"{lan}\"]\nhold_time = 9\n\n\
                 [[bgp.neighbor]]\naddress = \"{HUB_TUNNEL_ADDRESS}\"\nremote_as = {HUB_ASN}\n\n\
                 [[tunnel]]\nname = \"{name}\"\nprivate_key = \"{private}\"\nlisten_port = {PORT}\n\
                 address = [\"{address}/24\"]\n\n\
                 [[tunnel.peer]]\nname = \"hub\"\npublic_key = \"{hub}\"\n\
                 endpoint = \"{hub_underlay}:{PORT}\"\npersistent_keepalive = 5\n",
                socket = spoke_socket.display(),
                asn = plan.asn,
                lan = plan.lan,
                name = unique_name("wfs"),
                private = keys.private,
                address = plan.tunnel_address,
                hub = hub_keys.public,
            );
            let path = write_config(spoke_ns.dir(), "wgd.toml", &config)?;
            let daemon = wgd.spawn(&spoke_ns, &["run", "-c", path.to_str().unwrap_or_default()])?;
            // WireGuard gives a prefix to one peer only: on the hub's
            // multi-peer tunnel each spoke starts with its tunnel address,
            // and the bridge adds what is routed through it.
            hub_config.push_str(&format!(
                "\n[[tunnel.peer]]\nname = \"spoke-as{}\"\npublic_key = \"{}\"\n\
                 endpoint = \"{spoke_underlay}:{PORT}\"\nallowed_ips = [\"{}/32\"]\n",
                plan.asn, keys.public, plan.tunnel_address,
            ));
            spokes.push(Spoke {
                plan,
                daemon,
                public_key: keys.public,
                socket: spoke_socket.to_str().unwrap_or_default().to_owned(),
                namespace: spoke_ns,
            });
        }
        // The bridge's table is looked up before main, where zebra's are.
        namespace.check(&["ip", "rule", "add", "pref", "1000", "lookup", BRIDGE_TABLE])?;
        let path = write_config(namespace.dir(), "wgd.toml", &hub_config)?;
        let daemon = wgd.spawn(
            &namespace,
            &["run", "-c", path.to_str().unwrap_or_default()],
        )?;
        let mut hub = Self {
            frr: None,
            daemon,
            wgd,
            tunnel,
            socket,
            spokes,
            namespace,
        };
        wait_for(Duration::from_secs(10), "the hub's API", || {
            hub.api(&["routes"]).is_ok()
        })
        .map_err(|error| anyhow::anyhow!("{error}\n{}", hub.describe()))?;
        hub.frr = Some(Frr::start_with(
            &hub.namespace,
            &frr_config(),
            &["zebra", "bgpd"],
            &["dplane_fpm_nl"],
        )?);
        Ok(hub)
    }

    /// `wgd <args> --api <hub's socket>` at the hub.
    fn api(&self, args: &[&str]) -> Result<String, wgd_labs::Error> {
        let mut argv = args.to_vec();
        argv.extend(["--api", self.socket.to_str().unwrap_or_default()]);
        self.wgd.run(&self.namespace, &argv)
    }

    /// The bridge's route for `prefix` from owner `fpm`, if any.
    fn fpm_route(&self, prefix: &str) -> Option<serde_json::Value> {
        let text = self.api(&["routes", "--json", "--owner", "fpm"]).ok()?;
        let routes: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
        routes.into_iter().find(|route| route["prefix"] == prefix)
    }

    /// The bridge's kernel route for `prefix` in its table, as `ip route`
    /// prints it.
    fn bridge_kernel(&self, prefix: &str) -> String {
        self.namespace
            .check(&["ip", "route", "show", "table", BRIDGE_TABLE, prefix])
            .unwrap_or_default()
    }

    /// The AllowedIPs of the hub's peer `spoke`, as `wg show` prints them.
    fn allowed_ips(&self, spoke: &Spoke) -> BTreeSet<String> {
        let text = self
            .namespace
            .check(&["wg", "show", &self.tunnel, "allowed-ips"])
            .unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{}\t", spoke.public_key)))
            .map(|prefixes| {
                prefixes
                    .split_whitespace()
                    .filter(|prefix| *prefix != "(none)")
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `spoke`'s AllowedIPs at the hub are its tunnel address and
    /// `lans`, nothing else.
    fn allowed_exactly(&self, spoke: &Spoke, lans: &[&str]) -> bool {
        let mut expected: BTreeSet<String> = lans.iter().map(|lan| (*lan).to_owned()).collect();
        expected.insert(format!("{}/32", spoke.plan.tunnel_address));
        self.allowed_ips(spoke) == expected
    }

    /// Whether the spoke `from` reaches the LAN of the spoke `to`, from
    /// its own LAN address.
    fn spoke_pings(&self, from: usize, to: usize) -> bool {
        ping(
            self.spokes[from].namespace.name(),
            self.spokes[from].plan.lan_host,
            self.spokes[to].plan.lan_host,
        )
    }

    /// What the hub's FRR, kernel, bridge and the daemons show, for
    /// failure messages.
    fn describe(&self) -> String {
        let frr = self.frr.as_ref().map_or_else(String::new, |frr| {
            frr.vtysh(&["show bgp summary", "show ip route", "show fpm counters"])
                .unwrap_or_else(|error| error.to_string())
        });
        let kernel = self
            .namespace
            .check(&["ip", "route", "show", "table", "all"])
            .unwrap_or_else(|error| error.to_string());
        let allowed = self
            .namespace
            .check(&["wg", "show", &self.tunnel, "allowed-ips"])
            .unwrap_or_else(|error| error.to_string());
        let routes = self
            .api(&["routes"])
            .unwrap_or_else(|error| error.to_string());
        let mut text = format!(
            "--- hub:\nfrr:\n{frr}\nkernel:\n{kernel}\nallowed-ips:\n{allowed}\n\
             wgd routes:\n{routes}\nwgd:\n{}",
            self.daemon.log()
        );
        for spoke in &self.spokes {
            let kernel = spoke
                .namespace
                .check(&["ip", "route", "show"])
                .unwrap_or_default();
            let bgp = self
                .wgd
                .run(
                    &spoke.namespace,
                    &["bgp", "summary", "--api", &spoke.socket],
                )
                .unwrap_or_else(|error| error.to_string());
            text.push_str(&format!(
                "\n--- spoke AS{}:\nbgp:\n{bgp}\nkernel:\n{kernel}\nwgd:\n{}",
                spoke.plan.asn,
                spoke.daemon.log()
            ));
        }
        text
    }
}

#[test]
fn frr_at_a_hub_feeds_each_spokes_lan_into_its_peers_allowed_ips() -> anyhow::Result<()> {
    let hub = Hub::new()?;
    let context = |error: wgd_labs::Error| anyhow::anyhow!("{error}\n{}", hub.describe());
    let [first, second] = [&hub.spokes[0], &hub.spokes[1]];

    // bgpd learns both LANs; zebra sends them over FPM; the bridge
    // installs them in its table and in the right peer's AllowedIPs.
    wait_for(
        Duration::from_secs(60),
        "both LANs in the bridge as owner fpm, installed",
        || {
            hub.spokes.iter().all(|spoke| {
                hub.fpm_route(spoke.plan.lan)
                    .is_some_and(|route| route["state"] == "installed")
            })
        },
    )
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "each LAN in its own spoke's AllowedIPs",
        || {
            hub.allowed_exactly(first, &[first.plan.lan])
                && hub.allowed_exactly(second, &[second.plan.lan])
        },
    )
    .map_err(context)?;
    for spoke in &hub.spokes {
        let route = hub.bridge_kernel(spoke.plan.lan);
        assert!(
            route.contains(&format!("via {} ", spoke.plan.tunnel_address))
                && route.contains(&format!("dev {} ", hub.tunnel))
                && route.contains("proto wgd"),
            "the bridge's copy in table {BRIDGE_TABLE}: {route}\n{}",
            hub.describe()
        );
        let main =
            hub.namespace
                .check(&["ip", "route", "show", "table", "main", spoke.plan.lan])?;
        assert!(main.contains("proto bgp"), "zebra's copy in main: {main}");
    }

    // The spokes reach each other through the hub, both ways.
    wait_for(
        Duration::from_secs(30),
        "each spoke's LAN reaching the other's through the hub",
        || hub.spoke_pings(0, 1) && hub.spoke_pings(1, 0),
    )
    .map_err(context)?;
    let path = first.namespace.check(&[
        "ip",
        "route",
        "get",
        second.plan.lan_host,
        "from",
        first.plan.lan_host,
    ])?;
    assert!(
        path.contains(&format!("via {HUB_TUNNEL_ADDRESS}")),
        "{path}"
    );

    // The second spoke's LAN goes away: its speaker withdraws it, bgpd and
    // zebra follow, and the bridge takes it out of the kernel and of the
    // peer's AllowedIPs; the first spoke's stays.
    second.namespace.check(&[
        "ip",
        "address",
        "del",
        &format!("{}/24", second.plan.lan_host),
        "dev",
        "lo",
    ])?;
    wait_for(
        Duration::from_secs(30),
        "the withdrawn LAN to leave the hub's kernel and AllowedIPs",
        || {
            hub.fpm_route(second.plan.lan).is_none()
                && hub.bridge_kernel(second.plan.lan).is_empty()
                && hub.allowed_exactly(second, &[])
        },
    )
    .map_err(context)?;
    assert!(
        hub.allowed_exactly(first, &[first.plan.lan]),
        "{}",
        hub.describe()
    );
    assert!(
        hub.fpm_route(first.plan.lan)
            .is_some_and(|route| route["state"] == "installed"),
        "{}",
        hub.describe()
    );
    Ok(())
}
