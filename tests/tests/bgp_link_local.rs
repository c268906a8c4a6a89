//! Two wgd speakers peering the way dn42 nodes do: one WireGuard tunnel
//! between them whose only addresses are link-local (`fe80::1/64` and
//! `fe80::2/64`), one BGP session over those addresses naming its tunnel
//! (`address = "fe80::2"`, `tunnel = "..."`), carrying IPv4 and IPv6
//! unicast with RFC 8950 extended next hop. Neither side has an IPv4
//! address on the tunnel, so each IPv4 route can only go with the other
//! side's link-local address as its nexthop: it must land in the kernel as
//! `via inet6 fe80::.. dev <tunnel>` and carry pings between the LANs.
//!
//! Site 2 is passive and both sides sign with TCP MD5 and require one hop
//! (RFC 5082): site 1's connect (bound to its `fe80::1` with the tunnel's
//! index as scope) and site 2's accept (matched to its neighbor by the
//! connection's scope) are both on the way.
//!
//! Needs the config to take a link-local neighbor with its tunnel
//! (`address` and `tunnel` both set).

use std::time::Duration;

use anyhow::{anyhow, ensure};
use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::bgp::{ping, summary};
use wgd_tests::{KeyPair, Wgd, scrape_metrics, underlay, write_config};

const PORT: u16 = 51820;
const METRICS: &str = "127.0.0.1:9586";

struct Site {
    index: u8,
    namespace: Namespace,
    keys: KeyPair,
    socket: String,
    tunnel: String,
}

impl Site {
    fn lan_host(&self) -> String {
        format!("192.168.{}.1", self.index)
    }

    fn lan(&self) -> String {
        format!("192.168.{}.0/24", self.index)
    }

    fn lan6_host(&self) -> String {
        format!("fd00:{}::1", self.index)
    }

    fn lan6(&self) -> String {
        format!("fd00:{}::/64", self.index)
    }

    fn link_local(&self) -> String {
        format!("fe80::{}", self.index)
    }

    fn underlay(&self) -> String {
        format!("198.18.0.{}", self.index)
    }

    fn route(&self, family: &str, prefix: &str) -> String {
        self.namespace
            .check(&["ip", family, "route", "show", prefix])
            .unwrap_or_default()
    }
}

fn config(site: &Site, other: &Site) -> String {
    let passive = site.index == 2;
    format!(
        "[daemon]\napi = \"{}\"\nmetrics = \"{METRICS}\"\n\n\
         [bgp]\nasn = {}\nrouter_id = \"10.0.0.{}\"\nnetworks = [\"{}\", \"{}\"]\nhold_time = 9\n\n\
         [[bgp.neighbor]]\naddress = \"{}\"\ntunnel = \"{}\"\nremote_as = {}\npassive = {passive}\n\
         password = \"link-local-s3cret\"\nttl_security = true\n\n\
         [[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
         address = [\"{}/64\"]\n\n\
         [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{}:{PORT}\"\npersistent_keepalive = 1\n",
        site.socket,
        65000 + u32::from(site.index),
        site.index,
        site.lan(),
        site.lan6(),
        other.link_local(),
        site.tunnel,
        65000 + u32::from(other.index),
        site.tunnel,
        site.keys.private,
        site.link_local(),
        other.keys.public,
        other.underlay(),
    )
}

fn site(index: u8) -> anyhow::Result<Site> {
    let namespace = Namespace::new(&format!("ll{index}"))?;
    namespace.add_address("lo", &format!("192.168.{index}.1/24"))?;
    namespace.add_address("lo", &format!("fd00:{index}::1/64"))?;
    let socket = namespace
        .dir()
        .join("wgd.sock")
        .to_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Site {
        index,
        namespace,
        keys: KeyPair::generate()?,
        socket,
        tunnel: unique_name("wll"),
    })
}

#[test]
fn link_local_sessions_carry_ipv4_over_ipv6_next_hops() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let one = site(1)?;
    let two = site(2)?;
    underlay(
        &one.namespace,
        &format!("{}/30", one.underlay()),
        &two.namespace,
        &format!("{}/30", two.underlay()),
    )?;
    let mut daemons: Vec<Daemon> = Vec::new();
    for (site, other) in [(&one, &two), (&two, &one)] {
        let path = write_config(site.namespace.dir(), "wgd.toml", &config(site, other))?;
        let path = path.to_str().unwrap_or_default().to_owned();
        daemons.push(wgd.spawn(&site.namespace, &["run", "-c", &path])?);
    }
    let report = |daemons: &[Daemon]| {
        let mut text = String::new();
        for (site, daemon) in [&one, &two].into_iter().zip(daemons) {
            let routes = site
                .namespace
                .check(&["ip", "-d", "route", "show", "proto", "200"])
                .unwrap_or_default();
            let routes6 = site
                .namespace
                .check(&["ip", "-6", "route", "show", "proto", "200"])
                .unwrap_or_default();
            let summary = wgd
                .run(&site.namespace, &["bgp", "summary", "--api", &site.socket])
                .unwrap_or_else(|error| error.to_string());
            text.push_str(&format!(
                "\n--- site {}: wgd bgp summary\n{summary}\nkernel (proto 200):\n{routes}\n{routes6}\nlog:\n{}",
                site.index,
                daemon.log()
            ));
        }
        text
    };

    // The session, named by address and tunnel on both sides.
    wait_for(
        Duration::from_secs(40),
        "the link-local session established",
        || {
            [(&one, &two), (&two, &one)].iter().all(|(site, other)| {
                let neighbors = summary(&wgd, &site.namespace, &site.socket)["neighbors"].clone();
                neighbors[0]["state"] == "established"
                    && neighbors[0]["neighbor"] == format!("{}%{}", other.link_local(), site.tunnel)
            })
        },
    )
    .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;

    // Each LAN in the other's kernel: IPv6 via the link-local address, and
    // IPv4 too (RFC 8950), through the tunnel.
    for (site, other) in [(&one, &two), (&two, &one)] {
        let via = format!("via inet6 {} dev {}", other.link_local(), site.tunnel);
        let via6 = format!("via {} dev {}", other.link_local(), site.tunnel);
        wait_for(
            Duration::from_secs(20),
            &format!(
                "site {}'s LANs in site {}'s kernel",
                other.index, site.index
            ),
            || {
                site.route("-4", &other.lan()).contains(&via)
                    && site.route("-6", &other.lan6()).contains(&via6)
            },
        )
        .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;
    }
    wait_for(
        Duration::from_secs(20),
        "the LANs reaching each other",
        || {
            ping(one.namespace.name(), &one.lan_host(), &two.lan_host())
                && ping(two.namespace.name(), &two.lan_host(), &one.lan_host())
                && ping(one.namespace.name(), &one.lan6_host(), &two.lan6_host())
                && ping(two.namespace.name(), &two.lan6_host(), &one.lan6_host())
        },
    )
    .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;

    // What the operator sees: paths by neighbor, with the next hop as
    // received (site 2 has no global address: the link-local alone), and
    // the metrics labelled the same way.
    let neighbor = format!("{}%{}", two.link_local(), one.tunnel);
    let text = wgd.run(
        &one.namespace,
        &[
            "bgp",
            "routes",
            "--json",
            "--neighbor",
            &neighbor,
            "--api",
            &one.socket,
        ],
    )?;
    let paths: serde_json::Value = serde_json::from_str(&text)?;
    let paths = paths.as_array().cloned().unwrap_or_default();
    ensure!(paths.len() == 2, "paths from {neighbor}: {paths:#?}");
    for path in &paths {
        ensure!(
            path["neighbor"] == neighbor.as_str()
                && path["next_hop"] == two.link_local().as_str()
                && path["best"] == true,
            "path from {neighbor}: {path:#}"
        );
    }
    let metrics = scrape_metrics(&one.namespace, METRICS);
    ensure!(
        metrics.contains(&format!(
            "bgp_session_established{{neighbor=\"{neighbor}\"}} 1"
        )),
        "metrics:\n{metrics}"
    );
    let owner = format!("bgp:{neighbor}");
    let routes = wgd.run(&one.namespace, &["routes", "--api", &one.socket])?;
    ensure!(
        routes.contains(&owner),
        "wgd routes names {owner}:\n{routes}"
    );
    // The connection itself: from site 1's configured link-local address
    // on the tunnel, signed (the kernel lists the neighbor's MD5 key) on
    // both ends, the accepted one included.
    for (site, other) in [(&one, &two), (&two, &one)] {
        let sockets = site
            .namespace
            .check(&["ss", "-tnie", "state", "established"])
            .unwrap_or_default();
        ensure!(
            sockets.contains(&format!("[{}]%{}:", site.link_local(), site.tunnel))
                && sockets.contains(&format!("md5keys:{}/128", other.link_local())),
            "site {}'s BGP connection:\n{sockets}",
            site.index
        );
    }
    println!(
        "site 1: {} / {}",
        one.route("-4", &two.lan()).trim(),
        one.route("-6", &two.lan6()).trim()
    );
    drop(daemons);
    Ok(())
}

/// A hub with two tunnels, one to each spoke, where both spokes are
/// `fe80::2` (and the hub `fe80::1` on both): two neighbors, told apart by
/// their tunnel. The hub is passive, so each session is one the hub
/// accepted and matched to its neighbor by the connection's scope. Both
/// sign with the same MD5 password (the kernel matches a listening
/// socket's keys by address alone).
#[test]
fn one_link_local_address_on_two_tunnels_is_two_neighbors() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let hub = site(1)?;
    let spokes = [site(2)?, site(3)?];
    let hub_tunnels: Vec<String> = spokes.iter().map(|_| unique_name("wlh")).collect();
    let mut daemons: Vec<Daemon> = Vec::new();
    let mut hub_config = format!(
        "[daemon]\napi = \"{}\"\n\n\
         [bgp]\nasn = 65001\nrouter_id = \"10.0.0.1\"\nnetworks = [\"{}\", \"{}\"]\nhold_time = 9\n",
        hub.socket,
        hub.lan(),
        hub.lan6()
    );
    for (n, (spoke, tunnel)) in spokes.iter().zip(&hub_tunnels).enumerate() {
        let (hub_underlay, spoke_underlay) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
        underlay(
            &hub.namespace,
            &format!("{hub_underlay}/30"),
            &spoke.namespace,
            &format!("{spoke_underlay}/30"),
        )?;
        let port = PORT + n as u16;
        hub_config.push_str(&format!(
            "\n[[bgp.neighbor]]\naddress = \"fe80::2\"\ntunnel = \"{tunnel}\"\nremote_as = {}\n\
             passive = true\npassword = \"hub-s3cret\"\n\n\
             [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{}\"\nlisten_port = {port}\n\
             address = [\"fe80::1/64\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{spoke_underlay}:{PORT}\"\npersistent_keepalive = 1\n",
            65000 + u32::from(spoke.index),
            hub.keys.private,
            spoke.keys.public,
        ));
        let spoke_config = format!(
            "[daemon]\napi = \"{}\"\n\n\
             [bgp]\nasn = {}\nrouter_id = \"10.0.0.{}\"\nnetworks = [\"{}\", \"{}\"]\nhold_time = 9\n\n\
             [[bgp.neighbor]]\naddress = \"fe80::1\"\ntunnel = \"{}\"\nremote_as = 65001\n\
             password = \"hub-s3cret\"\n\n\
             [[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"fe80::2/64\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{hub_underlay}:{port}\"\npersistent_keepalive = 1\n",
            spoke.socket,
            65000 + u32::from(spoke.index),
            spoke.index,
            spoke.lan(),
            spoke.lan6(),
            spoke.tunnel,
            spoke.tunnel,
            spoke.keys.private,
            hub.keys.public,
        );
        let path = write_config(spoke.namespace.dir(), "wgd.toml", &spoke_config)?;
        let path = path.to_str().unwrap_or_default().to_owned();
        daemons.push(wgd.spawn(&spoke.namespace, &["run", "-c", &path])?);
    }
    let path = write_config(hub.namespace.dir(), "wgd.toml", &hub_config)?;
    let path = path.to_str().unwrap_or_default().to_owned();
    daemons.push(wgd.spawn(&hub.namespace, &["run", "-c", &path])?);
    let report = |daemons: &[Daemon]| {
        let summary = wgd
            .run(&hub.namespace, &["bgp", "summary", "--api", &hub.socket])
            .unwrap_or_else(|error| error.to_string());
        let routes = hub
            .namespace
            .sh("ip -4 route; ip -6 route")
            .unwrap_or_default();
        let logs: Vec<String> = daemons.iter().map(Daemon::log).collect();
        format!(
            "\nhub: wgd bgp summary\n{summary}\nhub routes:\n{routes}\nlogs:\n{}",
            logs.join("\n---\n")
        )
    };

    let expected: Vec<String> = hub_tunnels
        .iter()
        .map(|tunnel| format!("fe80::2%{tunnel}"))
        .collect();
    wait_for(
        Duration::from_secs(40),
        "both fe80::2 sessions established at the hub",
        || {
            let neighbors = summary(&wgd, &hub.namespace, &hub.socket)["neighbors"].clone();
            let mut names: Vec<String> = neighbors
                .as_array()
                .into_iter()
                .flatten()
                .filter(|neighbor| neighbor["state"] == "established")
                .filter_map(|neighbor| neighbor["neighbor"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            let mut wanted = expected.clone();
            wanted.sort();
            names == wanted
        },
    )
    .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;
    // Each spoke's LANs through its own tunnel, both families.
    for (spoke, tunnel) in spokes.iter().zip(&hub_tunnels) {
        wait_for(
            Duration::from_secs(20),
            &format!("site {}'s LANs via {tunnel}", spoke.index),
            || {
                hub.route("-4", &spoke.lan())
                    .contains(&format!("via inet6 fe80::2 dev {tunnel}"))
                    && hub
                        .route("-6", &spoke.lan6())
                        .contains(&format!("via fe80::2 dev {tunnel}"))
            },
        )
        .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;
    }
    wait_for(
        Duration::from_secs(20),
        "the hub reaching both spokes",
        || {
            spokes.iter().all(|spoke| {
                ping(hub.namespace.name(), &hub.lan_host(), &spoke.lan_host())
                    && ping(hub.namespace.name(), &hub.lan6_host(), &spoke.lan6_host())
            })
        },
    )
    .map_err(|error| anyhow!("{error}{}", report(&daemons)))?;
    drop(daemons);
    Ok(())
}
