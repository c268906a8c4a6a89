//! FRR's bgpd at two sites joined by one wgd tunnel, with a host behind
//! each site ([`wgd_tests::sites`]).
//!
//! Each site runs `wgd run` (no `[bgp]`: the tunnel only, AllowedIPs
//! `0.0.0.0/0` and no routes) and FRR's zebra and bgpd, in eBGP (AS 65001
//! and 65002) over the tunnel's /31, each announcing its LAN. The test
//! checks that each site's kernel has the other's LAN `proto bgp` through
//! the tunnel, put there by zebra (and none by wgd), and that the hosts
//! ping each other across the tunnel.

use std::time::{Duration, Instant};

use wgd_labs::wait_for;
use wgd_tests::frr::Frr;
use wgd_tests::sites::{Side, Site, TwoSites};

const A: Side = Side {
    name: "bgp65001",
    underlay: "198.18.40.1",
    tunnel_address: "10.254.40.0",
    lan: "192.168.1.0/24",
    gateway: "192.168.1.1",
    host_address: "192.168.1.10",
};

const B: Side = Side {
    name: "bgp65002",
    underlay: "198.18.40.2",
    tunnel_address: "10.254.40.1",
    lan: "192.168.2.0/24",
    gateway: "192.168.2.1",
    host_address: "192.168.2.10",
};

const A_ASN: u32 = 65001;
const B_ASN: u32 = 65002;

/// `this` site's frr.conf: eBGP to `other` over the tunnel, announcing
/// its own LAN; short timers (keepalive 3 s, hold 9 s, connect retry 2 s).
fn frr_config(this: &Side, asn: u32, other: &Side, other_asn: u32) -> String {
    [
        "frr defaults traditional".to_owned(),
        format!("hostname bgp-as{asn}"),
        "!".to_owned(),
        format!("router bgp {asn}"),
        format!(" bgp router-id {}", this.tunnel_address),
        " no bgp ebgp-requires-policy".to_owned(),
        " timers bgp 3 9".to_owned(),
        format!(" neighbor {} remote-as {other_asn}", other.tunnel_address),
        format!(" neighbor {} timers connect 2", other.tunnel_address),
        " address-family ipv4 unicast".to_owned(),
        format!("  network {}", this.lan),
        " exit-address-family".to_owned(),
        "!".to_owned(),
    ]
    .join("\n")
        + "\n"
}

/// FRR at both sites; it stops before the sites go.
struct Lab {
    frr: [Frr; 2],
    sites: TwoSites,
}

impl Lab {
    fn new() -> anyhow::Result<Self> {
        let sites = TwoSites::new(&A, &B)?;
        let frr = [
            Frr::start_with(
                &sites.a.namespace,
                &frr_config(&A, A_ASN, &B, B_ASN),
                &["zebra", "bgpd"],
                &[],
            )?,
            Frr::start_with(
                &sites.b.namespace,
                &frr_config(&B, B_ASN, &A, A_ASN),
                &["zebra", "bgpd"],
                &[],
            )?,
        ];
        Ok(Self { frr, sites })
    }

    /// Whether bgpd at `index` (0: A, 1: B) has its session with `other`
    /// established.
    fn established(&self, index: usize, other: &Side) -> bool {
        let text = self.frr[index]
            .vtysh(&["show bgp ipv4 unicast summary json"])
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json["peers"][other.tunnel_address]["state"] == "Established"
    }

    /// What FRR, the kernels and `wgd run` show, for failure messages.
    fn describe(&self) -> String {
        let show = |frr: &Frr, site: &Site| {
            site.describe(
                &frr.vtysh(&["show bgp summary", "show ip route"])
                    .unwrap_or_else(|error| error.to_string()),
            )
        };
        show(&self.frr[0], &self.sites.a) + &show(&self.frr[1], &self.sites.b)
    }
}

#[test]
fn bgp_over_a_tunnel_carries_two_lans_to_each_other() -> anyhow::Result<()> {
    let started = Instant::now();
    let lab = Lab::new()?;
    let (a, b) = (&lab.sites.a, &lab.sites.b);
    let context = |error: wgd_labs::Error| anyhow::anyhow!("{error}\n{}", lab.describe());
    eprintln!("sites up after {:?}", started.elapsed());

    wait_for(
        Duration::from_secs(30),
        "the eBGP session over the tunnel",
        || lab.established(0, &B) && lab.established(1, &A),
    )
    .map_err(context)?;
    eprintln!("session established after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(15),
        "each site's kernel routing the other's LAN through the tunnel",
        || a.routes_to(&B, "bgp") && b.routes_to(&A, "bgp"),
    )
    .map_err(context)?;
    eprintln!("routes in the kernels after {:?}", started.elapsed());
    // zebra put them there; `wgd run` added no route of its own.
    for site in [a, b] {
        let wgd_routes = site.wgd_routes()?;
        assert!(wgd_routes.trim().is_empty(), "{wgd_routes}");
    }
    wait_for(
        Duration::from_secs(10),
        "the hosts behind the sites reaching each other",
        || a.host_pings(&B) && b.host_pings(&A),
    )
    .map_err(context)?;
    // Site A sends host B's packets through the tunnel.
    let path = a.namespace.check(&["ip", "route", "get", B.host_address])?;
    assert!(path.contains(&format!("dev {}", a.tunnel)), "{path}");
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}
