//! The built-in BGP speaker against GoBGP (Debian's `gobgpd`), over a wgd
//! tunnel with wireguard-go: the session establishes, routes announced
//! with the `gobgp` CLI reach A's kernel through the tunnel (both
//! families) and carry traffic, GoBGP learns A's prefixes, a withdrawal
//! propagates, and when gobgpd crashes and comes back as a restarting
//! speaker, A keeps B's routes (and traffic flows) until gobgpd has
//! re-announced them.
//!
//! gobgpd installs nothing in B's kernel, so what B learned is read from
//! its RIB, and pings go from A's tunnel addresses (B has the /31 and /127
//! back to them, and its LAN on `lo`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, wait_for};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::gobgp::Gobgp;

const LOCAL_LAN: &str = "192.168.10.0/24";
const LOCAL_LAN6: &str = "fd00:10::/64";
const TUNNEL_A6: &str = "fd00:255::";

/// Site A's `[bgp]`: AS 65001, its LAN, B (GoBGP) as neighbor on the
/// tunnel.
fn speaker_config() -> String {
    format!(
        "\n[bgp]\nasn = 65001\nnetworks = [\"{LOCAL_LAN}\", \"{LOCAL_LAN6}\"]\nhold_time = 9\nrestart_time = 30\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = 65002\n",
        BridgeLab::TUNNEL_B
    )
}

/// B's gobgpd.toml: AS 65002, A as neighbor on the tunnel with both
/// unicast families and graceful restart; the neighbor administratively
/// down if `admin_down` (enabled later with `gobgp neighbor … enable`).
fn gobgp_config(admin_down: bool) -> String {
    let family = |name: &str| {
        format!(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{name}\"\n\
             \x20   [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
        )
    };
    format!(
        "[global.config]\n  as = 65002\n  router-id = \"{b}\"\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{a}\"\n    peer-as = 65001\n\
         \x20   admin-down = {admin_down}\n\
         \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n\
         \x20 [neighbors.transport.config]\n    local-address = \"{b}\"\n\
         \x20 [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 30\n\
         {v4}{v6}",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        v4 = family("ipv4-unicast"),
        v6 = family("ipv6-unicast"),
    )
}

/// `gobgp global rib add` (or `del`) of B's LAN prefix of `family`, with
/// B's tunnel address of that family as nexthop.
fn announce(gobgp: &Gobgp, operation: &str, family: &str) -> anyhow::Result<()> {
    let (prefix, next_hop) = match family {
        "ipv4" => (BridgeLab::FAR_LAN, BridgeLab::TUNNEL_B),
        _ => (BridgeLab::FAR_LAN6, BridgeLab::TUNNEL_B6),
    };
    let mut args = vec!["global", "rib", "-a", family, operation, prefix];
    if operation == "add" {
        args.extend(["nexthop", next_hop]);
    }
    gobgp.cli(&args).map(drop)
}

fn established(lab: &BridgeLab) -> bool {
    lab.wgd
        .run(
            &lab.a,
            &[
                "bgp",
                "summary",
                "--json",
                "--api",
                lab.socket.to_str().unwrap_or_default(),
            ],
        )
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|summary| summary["neighbors"][0]["state"] == "established")
}

fn has_route(lab: &BridgeLab, prefix: &str) -> bool {
    lab.kernel_routes().is_ok_and(|routes| {
        routes
            .iter()
            .any(|line| line.starts_with(&format!("{prefix} ")))
    })
}

/// Whether GoBGP has `prefix` in its RIB of `family`, learned from A
/// (AS 65001) with A's tunnel address `next_hop`.
fn gobgp_learned(gobgp: &Gobgp, family: &str, prefix: &str, next_hop: &str) -> bool {
    let Ok(rib) = gobgp.rib(family) else {
        return false;
    };
    rib[prefix].as_array().is_some_and(|paths| {
        paths.iter().any(|path| {
            let attributes = path["attrs"].as_array().cloned().unwrap_or_default();
            let has_next_hop = attributes
                .iter()
                .any(|attribute| attribute["nexthop"] == next_hop);
            let from_a = attributes
                .iter()
                .any(|attribute| attribute["type"] == 2 && attribute.to_string().contains("65001"));
            has_next_hop && from_a
        })
    })
}

fn pings_from(lab: &BridgeLab, source: &str, target: &str) -> bool {
    lab.a
        .run(&["ping", "-c", "1", "-W", "1", "-I", source, target])
        .is_ok_and(|output| output.status.success())
}

/// The route wgd lists for `prefix`, from `wgd routes --json`.
fn listed_route(lab: &BridgeLab, prefix: &str) -> serde_json::Value {
    lab.wgd
        .run(&lab.a, &["routes", "--json", "--prefix", prefix])
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|routes| routes[0].clone())
        .unwrap_or_default()
}

/// `ip monitor route` in a namespace, listening from the moment
/// [`start`](RouteMonitor::start) returns: it sees a route that goes away
/// even for an instant, where a ping could miss it.
struct RouteMonitor(Daemon);

impl RouteMonitor {
    /// A route of TEST-NET-2, added and removed to see the monitor listen.
    const MARKER: &str = "198.51.100.0/24";

    fn start(namespace: &Namespace) -> anyhow::Result<Self> {
        let monitor = namespace.spawn(&["ip", "-ts", "monitor", "route"])?;
        // Each round adds the marker and takes it away again: one of them
        // shows once it listens.
        wait_for(Duration::from_secs(5), "ip monitor to listen", || {
            let _ = namespace.run(&["ip", "route", "add", "unreachable", Self::MARKER]);
            let _ = namespace.run(&["ip", "route", "del", Self::MARKER]);
            monitor.log().contains(Self::MARKER)
        })?;
        Ok(Self(monitor))
    }

    /// The removals of `prefixes` it saw.
    fn deletions(&self, prefixes: &[&str]) -> Vec<String> {
        self.0
            .log()
            .lines()
            .filter(|line| {
                line.contains("Deleted ")
                    && prefixes
                        .iter()
                        .any(|prefix| line.contains(&format!(" {prefix} ")))
            })
            .map(str::to_owned)
            .collect()
    }
}

/// One ping from A's tunnel address to B's LAN.
#[derive(Debug)]
struct Probe {
    /// When it was sent, from the sampler's start.
    at: Duration,
    target: &'static str,
    ok: bool,
}

/// Pings from A's tunnel addresses to B's LAN on a thread of its own,
/// IPv4 and IPv6 in turn, one every 200 ms or so, until
/// [`finish`](Sampler::finish).
struct Sampler {
    started: Instant,
    running: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<Probe>>,
}

impl Sampler {
    fn start(lab: &BridgeLab) -> Self {
        let started = Instant::now();
        let running = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(AtomicUsize::new(0));
        let namespace = lab.a.name().to_owned();
        let thread = {
            let (running, sent) = (running.clone(), sent.clone());
            std::thread::spawn(move || {
                let targets = [
                    (BridgeLab::TUNNEL_A, BridgeLab::FAR_LAN_HOST),
                    (TUNNEL_A6, BridgeLab::FAR_LAN6_HOST),
                ];
                let mut probes = Vec::new();
                for (source, target) in targets.into_iter().cycle() {
                    if !running.load(Ordering::SeqCst) {
                        break;
                    }
                    let at = started.elapsed();
                    let ok = std::process::Command::new("ip")
                        .args([
                            "netns", "exec", &namespace, "ping", "-c", "1", "-W", "1", "-I",
                            source, target,
                        ])
                        .output()
                        .is_ok_and(|output| output.status.success());
                    probes.push(Probe { at, target, ok });
                    sent.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                }
                probes
            })
        };
        Self {
            started,
            running,
            sent,
            thread,
        }
    }

    /// How many probes it has sent so far.
    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// `what` happened now, for the timeline.
    fn event(&self, what: &'static str) -> (Duration, &'static str) {
        (self.started.elapsed(), what)
    }

    fn finish(self) -> Vec<Probe> {
        self.running.store(false, Ordering::SeqCst);
        self.thread.join().expect("the sampler ran")
    }
}

/// Probes and events in time order, one a line, for failure messages.
fn timeline(probes: &[Probe], events: &[(Duration, &str)]) -> String {
    let mut lines: Vec<(Duration, String)> = probes
        .iter()
        .map(|probe| {
            let result = if probe.ok { "ok" } else { "LOST" };
            (probe.at, format!("ping {} {result}", probe.target))
        })
        .chain(events.iter().map(|(at, what)| (*at, format!("-- {what}"))))
        .collect();
    lines.sort();
    lines
        .iter()
        .map(|(at, line)| format!("{:>8.3}s {line}", at.as_secs_f64()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `error` with what GoBGP, A's kernel and wgd say, for failure messages.
fn failure(error: wgd_labs::Error, lab: &BridgeLab, gobgp: &Gobgp) -> anyhow::Error {
    let routes = lab.kernel_routes().unwrap_or_default().join("\n");
    anyhow::anyhow!(
        "{error}\nGoBGP:\n{}\ngobgpd log:\n{}\nA's kernel (proto 200):\n{routes}\nwgd:\n{}",
        gobgp.show(BridgeLab::TUNNEL_A),
        gobgp.log(),
        lab.log()
    )
}

#[test]
fn the_speaker_exchanges_routes_with_gobgp_and_rides_out_its_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    // A originates its LAN while the kernel has it.
    lab.a.add_address("lo", "192.168.10.1/24")?;
    lab.a.add_address("lo", "fd00:10::1/64")?;
    let mut gobgp = Gobgp::start(&lab.b, &gobgp_config(false))?;
    let tunnel_a = BridgeLab::TUNNEL_A;
    wait_for(Duration::from_secs(30), "the session with GoBGP", || {
        established(&lab) && gobgp.established(tunnel_a)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    // B announces its LAN, both families, with the CLI; A installs both
    // through the tunnel: IPv4 via B's IPv4 tunnel address, IPv6 via its
    // IPv6 one.
    announce(&gobgp, "add", "ipv4")?;
    announce(&gobgp, "add", "ipv6")?;
    wait_for(
        Duration::from_secs(10),
        "B's prefixes in A's kernel",
        || has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    let routes = lab.kernel_routes()?;
    assert!(
        routes.contains(&format!(
            "{} via {} dev {} metric 20 onlink",
            BridgeLab::FAR_LAN,
            BridgeLab::TUNNEL_B,
            lab.tunnel_a
        )),
        "{routes:#?}"
    );
    assert!(
        routes.iter().any(|line| line.starts_with(&format!(
            "{} via {} dev {} metric 20",
            BridgeLab::FAR_LAN6,
            BridgeLab::TUNNEL_B6,
            lab.tunnel_a
        ))),
        "{routes:#?}"
    );
    let listed = listed_route(&lab, BridgeLab::FAR_LAN6);
    assert_eq!(listed["owner"], format!("bgp:{}", BridgeLab::TUNNEL_B));
    // B (GoBGP's RIB) learned A's, both families, with A's tunnel
    // addresses as nexthops.
    wait_for(
        Duration::from_secs(10),
        "A's prefixes in GoBGP's RIB",
        || {
            gobgp_learned(&gobgp, "ipv4", LOCAL_LAN, BridgeLab::TUNNEL_A)
                && gobgp_learned(&gobgp, "ipv6", LOCAL_LAN6, TUNNEL_A6)
        },
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    assert!(
        pings_from(&lab, BridgeLab::TUNNEL_A, BridgeLab::FAR_LAN_HOST),
        "no IPv4 ping to B's LAN"
    );
    assert!(
        pings_from(&lab, TUNNEL_A6, BridgeLab::FAR_LAN6_HOST),
        "no IPv6 ping to B's LAN"
    );

    // A withdrawal at B leaves A's kernel, the other family stays; the
    // announcement brings it back.
    announce(&gobgp, "del", "ipv4")?;
    wait_for(
        Duration::from_secs(10),
        "the withdrawal in A's kernel",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN6),
        "the other family went too"
    );
    announce(&gobgp, "add", "ipv4")?;
    wait_for(Duration::from_secs(10), "the re-announcement", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;

    // gobgpd crashes: A keeps B's routes (graceful restart) and pings keep
    // crossing, both families. gobgpd comes back as a restarting speaker
    // (-r) with an empty RIB: its neighbor starts administratively down,
    // so that the routes are announced again before the session is up
    // (otherwise its End-of-RIB could come first, and A would rightly
    // flush the routes it had kept); then the neighbor is enabled, and A
    // re-claims the routes from the new session.
    let monitor = RouteMonitor::start(&lab.a)?;
    let sampler = Sampler::start(&lab);
    let mut events = Vec::new();
    gobgp.kill()?;
    events.push(sampler.event("gobgpd killed"));
    wait_for(Duration::from_secs(15), "A to see the session go", || {
        !established(&lab)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    events.push(sampler.event("A saw the session go"));
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
        "A dropped B's routes at once, without graceful restart"
    );
    let down_from = sampler.sent();
    wait_for(Duration::from_secs(10), "probes with gobgpd down", || {
        sampler.sent() >= down_from + 4
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    gobgp.write_config(&gobgp_config(true))?;
    gobgp.start_daemon(&lab.b, true)?;
    events.push(sampler.event("gobgpd started again (-r)"));
    announce(&gobgp, "add", "ipv4")?;
    announce(&gobgp, "add", "ipv6")?;
    gobgp.cli(&["neighbor", tunnel_a, "enable"])?;
    events.push(sampler.event("routes re-added, neighbor enabled"));
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab) && gobgp.established(tunnel_a)
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    events.push(sampler.event("the session is back"));
    // Re-claimed after B's End-of-RIB: still there, no longer stale.
    wait_for(Duration::from_secs(15), "the routes re-claimed", || {
        [BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]
            .iter()
            .all(|prefix| {
                let route = listed_route(&lab, prefix);
                route["stale"] == false && route["state"] == "installed"
            })
    })
    .map_err(|error| failure(error, &lab, &gobgp))?;
    events.push(sampler.event("A re-claimed the routes"));
    wait_for(
        Duration::from_secs(10),
        "GoBGP to relearn A's prefixes",
        || {
            gobgp_learned(&gobgp, "ipv4", LOCAL_LAN, BridgeLab::TUNNEL_A)
                && gobgp_learned(&gobgp, "ipv6", LOCAL_LAN6, TUNNEL_A6)
        },
    )
    .map_err(|error| failure(error, &lab, &gobgp))?;
    let probes = sampler.finish();
    // A's kernel never lost B's routes, even for an instant.
    let gone = monitor.deletions(&[BridgeLab::FAR_LAN, BridgeLab::FAR_LAN6]);
    assert!(gone.is_empty(), "A's kernel lost B's routes: {gone:#?}");
    let lost = probes.iter().filter(|probe| !probe.ok).count();
    assert_eq!(
        lost,
        0,
        "pings were lost while gobgpd restarted:\n{}",
        timeline(&probes, &events)
    );
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
        "{:#?}",
        lab.kernel_routes()?
    );
    Ok(())
}
