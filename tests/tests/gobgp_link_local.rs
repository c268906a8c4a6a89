//! The GoBGP follower with a link-local next hop: site A runs `wgd run`
//! (with `[[gobgp]]`) and Debian's gobgpd; gobgpd peers with BIRD at site
//! B over a wgd tunnel whose only addresses are link-local (`fe80::1/64`,
//! `fe80::2/64`), its neighbor written `fe80::2%<tunnel>`. BIRD announces
//! B's IPv6 LAN with its link-local address as next hop. GoBGP v3.10.0
//! gives the follower that path with `neighbor_ip` "fe80::2", no zone
//! (GoBGP issue 3257: its zebra path then installs the next hop on the
//! wrong interface); the follower takes the interface from `ListPeer`, and
//! the route lands in A's kernel as `via fe80::2 dev <tunnel>`. When BIRD
//! withdraws it, it leaves.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::bird::Bird;
use wgd_tests::gobgp::{API_HOST, API_PORT, Gobgp};
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;
const LAN6: &str = "fd00:77::/64";

struct Lab {
    wgd: Wgd,
    a: Namespace,
    b: Namespace,
    tunnel_a: String,
    tunnel_b: String,
    daemon: Daemon,
}

impl Lab {
    fn new() -> anyhow::Result<Lab> {
        let wgd = Wgd::new()?;
        let a = Namespace::new("gla")?;
        let b = Namespace::new("glb")?;
        underlay(&a, "198.18.0.1/30", &b, "198.18.0.2/30")?;
        let (keys_a, keys_b) = (KeyPair::generate()?, KeyPair::generate()?);
        let (tunnel_a, tunnel_b) = (unique_name("wga"), unique_name("wgb"));
        let socket = a.dir().join("wgd.sock");
        let config_b = format!(
            "[[tunnel]]\nname = \"{tunnel_b}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"fe80::2/64\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"198.18.0.1:{PORT}\"\n\
             persistent_keepalive = 1\n",
            keys_b.private, keys_a.public,
        );
        let config_a = format!(
            "[daemon]\napi = \"{}\"\n\n\
             [[gobgp]]\napi = \"{API_HOST}:{API_PORT}\"\n\n\
             [[tunnel]]\nname = \"{tunnel_a}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"fe80::1/64\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"198.18.0.2:{PORT}\"\n\
             persistent_keepalive = 1\n",
            socket.display(),
            keys_a.private,
            keys_b.public,
        );
        let config_b = write_config(b.dir(), "b.toml", &config_b)?;
        wgd.run(&b, &["up", config_b.to_str().expect("a UTF-8 path")])?;
        let config_a = write_config(a.dir(), "a.toml", &config_a)?;
        let daemon = wgd.spawn(&a, &["run", "-c", config_a.to_str().expect("a UTF-8 path")])?;
        let api = socket.to_str().expect("a UTF-8 path").to_owned();
        wait_for(Duration::from_secs(10), "the daemon's API", || {
            wgd.run(&a, &["routes", "--api", &api]).is_ok()
        })?;
        Ok(Lab {
            wgd,
            a,
            b,
            tunnel_a,
            tunnel_b,
            daemon,
        })
    }

    /// A's kernel route for B's IPv6 LAN, as `ip -6 route` shows it.
    fn lan_route(&self) -> String {
        self.a
            .check(&["ip", "-6", "-N", "route", "show", LAN6, "proto", "200"])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

/// gobgpd on A: BIRD as its link-local neighbor on A's tunnel.
fn gobgp_config(tunnel_a: &str) -> String {
    format!(
        "[global.config]\n  as = 65001\n  router-id = \"10.0.0.1\"\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"fe80::2%{tunnel_a}\"\n    peer-as = 65002\n\
         \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n\
         \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n"
    )
}

/// B's bird.conf: BGP to gobgpd on A over the link-local addresses,
/// announcing B's IPv6 LAN when `lan6`.
fn bird_config(tunnel_b: &str, lan6: bool) -> String {
    let route = if lan6 {
        format!("  route {LAN6} unreachable;\n")
    } else {
        String::new()
    };
    format!(
        "router id 10.0.0.2;\n\
         protocol device {{\n}}\n\
         protocol static lan6 {{\n  ipv6;\n{route}}}\n\
         protocol bgp gobgp_a {{\n  local as 65002;\n  neighbor fe80::1 as 65001;\n  interface \"{tunnel_b}\";\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 ipv6 {{ import none; export all; }};\n}}\n"
    )
}

#[test]
fn a_link_local_next_hop_from_gobgpd_lands_on_its_tunnel() -> anyhow::Result<()> {
    let lab = Lab::new()?;
    let bird = Bird::start(&lab.b, &bird_config(&lab.tunnel_b, true))?;
    let gobgp = Gobgp::start(&lab.a, &gobgp_config(&lab.tunnel_a))?;
    let context = |lab: &Lab| {
        format!(
            "A's route: {:?}\nbird: {}\n{}\ngobgpd: {}\n{}\nwgd:\n{}",
            lab.lan_route(),
            bird.protocols(),
            bird.log(),
            gobgp.show(&format!("fe80::2%{}", lab.tunnel_a)),
            gobgp.log(),
            lab.daemon.log()
        )
    };
    let expected = format!("{LAN6} via fe80::2 dev {} ", lab.tunnel_a);
    wait_for(
        Duration::from_secs(30),
        "B's IPv6 LAN in A's kernel via fe80::2 on A's tunnel",
        || lab.lan_route().starts_with(&expected),
    )
    .with_context(|| context(&lab))?;
    let routes = lab.wgd.run(
        &lab.a,
        &[
            "routes",
            "--json",
            "--api",
            lab.a.dir().join("wgd.sock").to_str().unwrap_or_default(),
        ],
    )?;
    let routes: serde_json::Value = serde_json::from_str(&routes)?;
    let route = &routes[0];
    assert_eq!(route["owner"], "gobgp", "{routes:#}");
    assert_eq!(
        route["nexthops"][0]["tunnel"],
        lab.tunnel_a.as_str(),
        "{routes:#}"
    );

    // BIRD withdraws it: it leaves.
    bird.reconfigure(&bird_config(&lab.tunnel_b, false))?;
    wait_for(Duration::from_secs(15), "B's IPv6 LAN gone from A", || {
        lab.lan_route().is_empty()
    })
    .with_context(|| context(&lab))?;
    Ok(())
}
