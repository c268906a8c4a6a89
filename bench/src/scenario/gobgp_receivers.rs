//! The `bgp` scenario's GoBGP receivers: a `gobgpd` of the receiver's
//! own, in the receiver's namespace, peers with the feeder over the
//! tunnel, and something else puts its best paths into the kernel:
//!
//! ```text
//! feeder ── tunnel ── gobgpd ── WatchEvent (gRPC) ── wgd run, [[gobgp]]   (gobgp-wgd)
//! feeder ── tunnel ── gobgpd ── ZAPI (unix socket) ── FRR's zebra          (gobgp-zebra)
//! ```
//!
//! The receiver's gobgpd has its own config file and its gRPC API on the
//! namespace's loopback ([`wgd_tests::gobgp`]), so it never meets the
//! feeder's gobgpd; zebra has FRR's path space of its own (`-N`), its
//! ZAPI socket in `/var/run/frr/<name>/`.
//!
//! Debian's gobgpd 3.10 and FRR 8.4's zebra do not talk here: gobgpd
//! connects (ZAPI 6) and then panics decoding zebra's first interface
//! message, with every `software-name` tried (`frr7.5` to `frr8.4`). [`zebra_probe`] tries
//! the pair before the runs, and the receiver is listed as not run, with
//! gobgpd's own words, when it fails.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Daemon, Namespace, wait_for};
use wgd_tests::frr::Frr;
use wgd_tests::gobgp::{API_HOST, API_PORT, Gobgp};

use crate::lab::{Link, Wgd, wait_for_handshake};

/// The `software-name` gobgpd is given: FRR 8.2, as other projects
/// configure GoBGP 3 for ZAPI 6 (FRR 8.4's version too); `frr8.4` and
/// older names fail the same way here.
const ZEBRA_SOFTWARE: &str = "frr8.2";

/// A GoBGP receiver running: its gobgpd and what installs the routes.
#[derive(Debug)]
#[allow(dead_code)] // held for their Drop
pub enum Running {
    /// `wgd run` following gobgpd; dropped first, so that wgd never sees
    /// gobgpd leave.
    Follower { wgd: Daemon, gobgp: Gobgp },
    /// gobgpd first, then zebra.
    Zebra { gobgp: Gobgp, zebra: Frr },
}

impl Running {
    /// What the daemons say about themselves, for an error.
    pub fn said(&self) -> String {
        match self {
            Running::Follower { wgd, gobgp } => format!(
                "wgd:\n{}\n{}",
                super::fib::tail(&wgd.log()),
                super::fib::tail(&gobgp.log())
            ),
            Running::Zebra { gobgp, zebra } => format!(
                "{}\nzebra:\n{}",
                super::fib::tail(&gobgp.log()),
                zebra
                    .vtysh(&["show ip route summary"])
                    .unwrap_or_else(|error| format!("{error:#}"))
            ),
        }
    }
}

/// The receiver's gobgpd: AS `asn`, one neighbor (the feeder at the far
/// end of the tunnel), IPv6 unicast too with `ipv6`.
pub fn gobgp_config(link: &Link, asn: u32, peer_as: u32, ipv6: bool) -> String {
    let ipv6 = if ipv6 {
        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n"
    } else {
        ""
    };
    format!(
        "[global.config]\n  as = {asn}\n  router-id = \"{local}\"\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{peer}\"\n    peer-as = {peer_as}\n\
         \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 90\n    keepalive-interval = 30\n\
         \x20 [neighbors.transport.config]\n    local-address = \"{local}\"\n\
         \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
         {ipv6}",
        local = link.address_a(),
        peer = link.address_b(),
    )
}

/// gobgpd's `[zebra]` section for zebra's ZAPI socket at `socket`.
fn zebra_section(socket: &str) -> String {
    format!(
        "\n[zebra]\n  [zebra.config]\n    enabled = true\n    url = \"unix:{socket}\"\n\
         \x20   redistribute-route-type-list = []\n    version = 6\n\
         \x20   software-name = \"{ZEBRA_SOFTWARE}\"\n"
    )
}

/// The `[[gobgp]]` section of the follower's `wgd run` config: the
/// receiver's gobgpd on the namespace's loopback.
pub fn follower_section() -> String {
    format!("\n[[gobgp]]\napi = \"{API_HOST}:{API_PORT}\"\n")
}

/// `wgd run` with `config` (its tunnel and `[[gobgp]]`), then gobgpd once
/// the tunnel has had a handshake.
pub fn start_follower(
    wgd: &Wgd,
    namespace: &Namespace,
    config: &str,
    link: &Link,
    gobgp_config: &str,
) -> anyhow::Result<Running> {
    let daemon = wgd.spawn(namespace, &["run", "-c", config])?;
    let socket = namespace.dir().join("wgd.sock");
    let socket = socket.to_str().context("a UTF-8 path")?.to_owned();
    wait_for(Duration::from_secs(30), "wgd run's API", || {
        wgd.run(namespace, &["routes", "--owner", "none", "--api", &socket])
            .is_ok()
    })
    .with_context(|| format!("wgd log:\n{}", daemon.log()))?;
    wait_for_handshake(namespace, &link.tunnel_a)?;
    let gobgp = Gobgp::start(namespace, gobgp_config)?;
    Ok(Running::Follower { wgd: daemon, gobgp })
}

/// zebra alone in FRR's path space, then gobgpd with `[zebra]` towards
/// its socket (the tunnel is up already, from `wgd up`).
pub fn start_zebra(namespace: &Namespace, gobgp_config: &str) -> anyhow::Result<Running> {
    let zebra = Frr::start_with(
        namespace,
        "frr defaults traditional\nhostname bench\n",
        &["zebra"],
        &[],
    )?;
    let socket = zebra.socket("zserv.api");
    let config = format!("{gobgp_config}{}", zebra_section(&socket));
    let gobgp = Gobgp::start(namespace, &config)?;
    Ok(Running::Zebra { gobgp, zebra })
}

/// Whether this host's gobgpd and zebra talk: both started in a scratch
/// namespace, a route added to gobgpd must reach the kernel through
/// zebra. An error with what gobgpd said when they do not. gobgpd is
/// watched directly rather than through the `gobgp` CLI, which can wait
/// a long time on a gobgpd that has died.
pub fn zebra_probe() -> anyhow::Result<()> {
    let namespace = Namespace::new("bz")?;
    let zebra = Frr::start_with(
        &namespace,
        "frr defaults traditional\nhostname probe\n",
        &["zebra"],
        &[],
    )?;
    let path = namespace.dir().join("probe-gobgpd.toml");
    std::fs::write(
        &path,
        format!(
            "[global.config]\n  as = 65099\n  router-id = \"127.0.0.1\"\n  port = -1\n{}",
            zebra_section(&zebra.socket("zserv.api"))
        ),
    )?;
    let api = format!("{API_HOST}:{API_PORT}");
    let mut gobgpd = namespace.spawn(&[
        "gobgpd",
        "-f",
        path.to_str().context("a UTF-8 path")?,
        "--api-hosts",
        &api,
        "--pprof-disable",
        "--log-plain",
    ])?;
    let route = "192.0.2.0/24";
    let in_kernel = || {
        namespace
            .check(&["ip", "route", "show", route])
            .is_ok_and(|text| !text.trim().is_empty())
    };
    let port = API_PORT.to_string();
    let mut added = false;
    let started = std::time::Instant::now();
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(500));
        if !gobgpd.is_running() {
            break Err("gobgpd exited");
        }
        if in_kernel() {
            break Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            break Err("the probe route did not reach the kernel in 15 s");
        }
        let connected = gobgpd.log().contains("success to connect to Zebra");
        if connected && !added && started.elapsed() > Duration::from_secs(2) {
            added = namespace
                .check(&[
                    "timeout",
                    "5",
                    "gobgp",
                    "-u",
                    API_HOST,
                    "-p",
                    &port,
                    "global",
                    "rib",
                    "add",
                    route,
                    "nexthop",
                    "127.0.0.2",
                ])
                .is_ok();
        }
    };
    let log = gobgpd.log();
    drop(gobgpd);
    drop(zebra);
    outcome.map_err(|what| {
        // gobgpd's lines about zebra, not the goroutine dump of a panic.
        let said: Vec<&str> = log
            .lines()
            .filter(|line| {
                line.starts_with("panic:")
                    || line.contains("Topic=Zebra")
                    || line.contains("zebra.(*")
            })
            .take(4)
            .collect();
        anyhow::anyhow!(
            "{what}; gobgpd with [zebra] version = 6, software-name = \"{ZEBRA_SOFTWARE}\": {}",
            said.join(" | ")
        )
    })
}
