//! What the end-to-end tests of wgd's built-in BGP speaker share: the
//! interop tests (`bgp_frr`, `bgp_bird`, `bgp_gobgp`), where site A of a
//! [`BridgeLab`] runs `wgd run` with the speaker and site B another BGP
//! speaker peering with it over the tunnel, and the three-site mesh
//! (`bgp_mesh3`), which asks for the summary and pings the same way.
//!
//! Data flows into the lab once: A's `[bgp]` section ([`speaker_config`],
//! given to [`BridgeLab::new`]) and A's LAN on `lo` ([`add_local_lan`]),
//! which the speaker originates while the kernel has it. Everything else
//! flows back out, as an operator would look: wgd's own view (`wgd bgp
//! summary`: [`summary`], [`established`]; `wgd routes`: [`listed_route`],
//! [`reclaimed`]), the kernels (A's: [`has_route`], [`routed_via_tunnel`];
//! B's: [`b_route`]) and traffic ([`ping`], [`pings_from`]).
//!
//! Across a restart of B's speaker two recorders run alongside the test:
//! a [`Sampler`] pings from A to B's LAN on a thread of its own, keeping
//! each ping as a timestamped [`Probe`] along with the test's own
//! milestones ([`Sampler::event`]); a [`RouteMonitor`] per kernel keeps
//! what `ip monitor route` reports. Once the restart is over, the test
//! reads them back: the lost pings ([`Samples::lost`], with
//! [`Samples::timeline`] for the failure message) and the routes that went
//! away even for an instant ([`RouteMonitor::deletions`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, wait_for};

use crate::Wgd;
use crate::bridge::BridgeLab;

/// A's LAN, which A's speaker originates (its host is on A's `lo`, see
/// [`add_local_lan`]).
pub const LOCAL_LAN: &str = "192.168.10.0/24";
pub const LOCAL_LAN6: &str = "fd00:10::/64";
/// A's host on its LAN: the source of LAN-to-LAN pings.
pub const LOCAL_LAN_HOST: &str = "192.168.10.1";
pub const LOCAL_LAN6_HOST: &str = "fd00:10::1";
/// A's IPv6 tunnel address: the nexthop of A's IPv6 routes at B.
pub const TUNNEL_A6: &str = "fd00:255::";

/// What a [`Sampler`] pings when B installs A's routes in its kernel
/// (FRR, BIRD): from A's LAN to B's, IPv4 and IPv6, as `(source, target)`.
pub const LAN_TO_LAN: &[(&str, &str)] = &[
    (LOCAL_LAN_HOST, BridgeLab::FAR_LAN_HOST),
    (LOCAL_LAN6_HOST, BridgeLab::FAR_LAN6_HOST),
];
/// What a [`Sampler`] pings when B installs nothing (GoBGP) and reaches A
/// only on the tunnel's own subnets: from A's tunnel addresses to B's LAN.
pub const TUNNEL_TO_LAN: &[(&str, &str)] = &[
    (BridgeLab::TUNNEL_A, BridgeLab::FAR_LAN_HOST),
    (TUNNEL_A6, BridgeLab::FAR_LAN6_HOST),
];

/// Site A's `[bgp]`: AS 65001, its LAN (both families), hold time 9 s,
/// restart time 30 s, and B (AS 65002) as neighbor on the tunnel.
pub fn speaker_config() -> String {
    format!(
        "\n[bgp]\nasn = 65001\nnetworks = [\"{LOCAL_LAN}\", \"{LOCAL_LAN6}\"]\nhold_time = 9\nrestart_time = 30\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = 65002\n",
        BridgeLab::TUNNEL_B
    )
}

/// Puts A's LAN hosts on A's `lo`: the kernel then has A's LAN, and the
/// speaker originates it.
pub fn add_local_lan(lab: &BridgeLab) -> Result<(), wgd_labs::Error> {
    lab.a.add_address("lo", &format!("{LOCAL_LAN_HOST}/24"))?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN6_HOST}/64"))
}

/// A's API socket, the way `--api` takes it.
pub fn api(lab: &BridgeLab) -> &str {
    lab.socket.to_str().unwrap_or_default()
}

/// `wgd bgp summary --json` of the daemon listening on `socket` in
/// `namespace`, as it prints it.
pub fn summary_text(
    wgd: &Wgd,
    namespace: &Namespace,
    socket: &str,
) -> Result<String, wgd_labs::Error> {
    wgd.run(namespace, &["bgp", "summary", "--json", "--api", socket])
}

/// [`summary_text`], parsed; `null` if the daemon does not answer (yet) or
/// prints no JSON.
pub fn summary(wgd: &Wgd, namespace: &Namespace, socket: &str) -> serde_json::Value {
    summary_text(wgd, namespace, socket)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Whether A's session with B (its first and only neighbor) is established.
pub fn established(lab: &BridgeLab) -> bool {
    summary(&lab.wgd, &lab.a, api(lab))["neighbors"][0]["state"] == "established"
}

/// Whether A's kernel has a route of wgd's to `prefix`.
pub fn has_route(lab: &BridgeLab, prefix: &str) -> bool {
    lab.kernel_routes().is_ok_and(|routes| {
        routes
            .iter()
            .any(|line| line.starts_with(&format!("{prefix} ")))
    })
}

/// Whether `routes` (A's, from [`BridgeLab::kernel_routes`]) send `prefix`
/// through the tunnel the way wgd installs a BGP route: via B's tunnel
/// address of the prefix's family, metric 20. An IPv4 line is matched
/// whole (it ends in `onlink`), an IPv6 one by its start (`ip` adds
/// `pref medium`).
pub fn routed_via_tunnel(lab: &BridgeLab, routes: &[String], prefix: &str) -> bool {
    if prefix.contains(':') {
        let start = format!(
            "{prefix} via {} dev {} metric 20",
            BridgeLab::TUNNEL_B6,
            lab.tunnel_a
        );
        routes.iter().any(|line| line.starts_with(&start))
    } else {
        routes.contains(&format!(
            "{prefix} via {} dev {} metric 20 onlink",
            BridgeLab::TUNNEL_B,
            lab.tunnel_a
        ))
    }
}

/// Whether A's kernel routes every one of `prefixes` through the tunnel
/// as [`routed_via_tunnel`] says.
pub fn learned_via_tunnel(lab: &BridgeLab, prefixes: &[&str]) -> bool {
    lab.kernel_routes().is_ok_and(|routes| {
        prefixes
            .iter()
            .all(|prefix| routed_via_tunnel(lab, &routes, prefix))
    })
}

/// B's kernel route to `prefix`, as `ip route show <prefix>` prints it
/// (empty if there is none).
pub fn b_route(lab: &BridgeLab, prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    lab.b
        .check(&["ip", family, "route", "show", prefix])
        .unwrap_or_default()
}

/// The route wgd lists for `prefix`, from `wgd routes --json` on A; `null`
/// if there is none or wgd does not answer.
pub fn listed_route(lab: &BridgeLab, prefix: &str) -> serde_json::Value {
    lab.wgd
        .run(&lab.a, &["routes", "--json", "--prefix", prefix])
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|routes| routes[0].clone())
        .unwrap_or_default()
}

/// Whether wgd lists every one of `prefixes` installed and no longer
/// stale: re-claimed after a restarting peer's End-of-RIB.
pub fn reclaimed(lab: &BridgeLab, prefixes: &[&str]) -> bool {
    prefixes.iter().all(|prefix| {
        let route = listed_route(lab, prefix);
        route["stale"] == false && route["state"] == "installed"
    })
}

/// Whether one ping from `source` to `target` inside the namespace named
/// `namespace` gets an answer within a second. By name, so that a thread
/// of its own can ping (see [`Sampler`]).
pub fn ping(namespace: &str, source: &str, target: &str) -> bool {
    std::process::Command::new("ip")
        .args([
            "netns", "exec", namespace, "ping", "-c", "1", "-W", "1", "-I", source, target,
        ])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// [`ping`] from A.
pub fn pings_from(lab: &BridgeLab, source: &str, target: &str) -> bool {
    ping(lab.a.name(), source, target)
}

/// `ip monitor route` in a namespace, listening from the moment
/// [`start`](RouteMonitor::start) returns: it sees a route that goes away
/// even for an instant, where a ping could miss it.
#[derive(Debug)]
pub struct RouteMonitor(Daemon);

impl RouteMonitor {
    /// A route of TEST-NET-2, added and removed to see the monitor listen.
    const MARKER: &str = "198.51.100.0/24";

    pub fn start(namespace: &Namespace) -> anyhow::Result<Self> {
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
    pub fn deletions(&self, prefixes: &[&str]) -> Vec<String> {
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

/// One ping of a [`Sampler`].
#[derive(Debug)]
pub struct Probe {
    /// When it was sent, from the sampler's start.
    pub at: Duration,
    pub target: &'static str,
    pub ok: bool,
}

/// Pings `(source, target)` pairs from a namespace on a thread of its own,
/// each pair in turn, one every 200 ms or so, until
/// [`finish`](Sampler::finish); and the test's milestones in between
/// ([`event`](Sampler::event)), for the timeline.
#[derive(Debug)]
pub struct Sampler {
    started: Instant,
    running: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<Probe>>,
    events: Vec<(Duration, &'static str)>,
}

impl Sampler {
    /// Starts pinging `pairs` ([`LAN_TO_LAN`], [`TUNNEL_TO_LAN`]) from
    /// `namespace`.
    pub fn start(namespace: &Namespace, pairs: &'static [(&'static str, &'static str)]) -> Self {
        let started = Instant::now();
        let running = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(AtomicUsize::new(0));
        let namespace = namespace.name().to_owned();
        let thread = {
            let (running, sent) = (running.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut probes = Vec::new();
                for &(source, target) in pairs.iter().cycle() {
                    if !running.load(Ordering::SeqCst) {
                        break;
                    }
                    let at = started.elapsed();
                    let ok = ping(&namespace, source, target);
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
            events: Vec::new(),
        }
    }

    /// How many probes it has sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits until it has sent `count` more probes than now (traffic while
    /// a peer is down, say), for at most `deadline`; `what` names them.
    pub fn wait_for_more(
        &self,
        count: usize,
        deadline: Duration,
        what: &str,
    ) -> Result<(), wgd_labs::Error> {
        let from = self.sent();
        wait_for(deadline, what, || self.sent() >= from + count)
    }

    /// Notes that `what` happened now, for the timeline.
    pub fn event(&mut self, what: &'static str) {
        self.events.push((self.started.elapsed(), what));
    }

    /// Stops pinging; every probe sent and every event noted.
    pub fn finish(self) -> Samples {
        self.running.store(false, Ordering::SeqCst);
        let probes = self.thread.join().expect("the sampler ran");
        Samples {
            probes,
            events: self.events,
        }
    }
}

/// What a [`Sampler`] recorded.
#[derive(Debug)]
pub struct Samples {
    pub probes: Vec<Probe>,
    /// The test's milestones, from the sampler's start.
    pub events: Vec<(Duration, &'static str)>,
}

impl Samples {
    /// How many pings got no answer.
    pub fn lost(&self) -> usize {
        self.probes.iter().filter(|probe| !probe.ok).count()
    }

    /// Probes and events in time order, one a line, for failure messages.
    pub fn timeline(&self) -> String {
        let mut lines: Vec<(Duration, String)> = self
            .probes
            .iter()
            .map(|probe| {
                let result = if probe.ok { "ok" } else { "LOST" };
                (probe.at, format!("ping {} {result}", probe.target))
            })
            .chain(
                self.events
                    .iter()
                    .map(|(at, what)| (*at, format!("-- {what}"))),
            )
            .collect();
        lines.sort();
        lines
            .iter()
            .map(|(at, line)| format!("{:>8.3}s {line}", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
