//! What a running lab looks like, read from its nodes the way an operator
//! would, and printed as a report.
//!
//! [`observe`] runs, in each node, `ip -j address`, `wg show all dump`
//! (private keys are dropped as the line is read), `wgd status --json`
//! (for peer names), `wgd bgp summary --json` and `ip -j route`, and turns
//! them into [`NodeView`]s; [`render`] prints those with the checks'
//! verdict. The SVG drawing ([`crate::svg`]) reads the same views.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::checks::{Verdict, short_key};
use crate::node::NodeShell;
use crate::state::{LabState, node_dir};
use crate::topology::Topology;

/// A handshake older than this means the peer is gone (REJECT_AFTER_TIME).
pub const HANDSHAKE_ALIVE: u64 = 180;

/// Route protocols that are not learned: the kernel's own, and those of
/// routes added by hand (`ip route add` is `boot`).
const NOT_LEARNED: &[&str] = &["kernel", "boot", "static", "ra", "dhcp", "redirect"];

#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub name: String,
    pub namespace: String,
    /// The node's `cmd`: its pid and whether it still runs.
    pub daemon: Option<(u32, bool)>,
    /// Interface → addresses (CIDR), without loopback and link-local ones.
    pub addresses: Vec<(String, Vec<String>)>,
    pub tunnels: Vec<TunnelView>,
    pub sessions: Vec<Session>,
    /// Learned routes, as `ip route` prints them.
    pub routes: Vec<LearnedRoute>,
}

#[derive(Debug, Clone, Default)]
pub struct TunnelView {
    pub interface: String,
    pub public_key: String,
    pub peers: Vec<PeerView>,
}

#[derive(Debug, Clone, Default)]
pub struct PeerView {
    pub public_key: String,
    /// Its name in wgd's config, if wgd manages the tunnel.
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the latest handshake; none if there never was one.
    pub handshake_age: Option<u64>,
}

impl PeerView {
    pub fn alive(&self) -> bool {
        self.handshake_age.is_some_and(|age| age <= HANDSHAKE_ALIVE)
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| short_key(&self.public_key))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub neighbor: String,
    pub tunnel: Option<String>,
    pub remote_as: u64,
    pub state: String,
    pub prefixes_received: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LearnedRoute {
    pub prefix: String,
    pub text: String,
}

/// Reads every node of the lab.
pub fn observe(state: &LabState, shells: &BTreeMap<String, NodeShell>) -> Vec<NodeView> {
    state
        .nodes
        .iter()
        .map(|node| {
            let mut view = NodeView {
                name: node.name.clone(),
                namespace: node.namespace.clone(),
                daemon: node
                    .daemon
                    .map(|pid| (pid, wgd_labs::host::process_running(pid))),
                ..NodeView::default()
            };
            if let Some(shell) = shells.get(&node.name) {
                view.addresses = addresses(shell);
                view.tunnels = tunnels(shell);
                view.sessions = sessions(shell);
                view.routes = learned_routes(shell);
            }
            view
        })
        .collect()
}

fn json(shell: &NodeShell, argv: &[&str]) -> Option<Value> {
    shell
        .output(argv)
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| serde_json::from_slice(&output.stdout).ok())
}

fn addresses(shell: &NodeShell) -> Vec<(String, Vec<String>)> {
    let Some(Value::Array(links)) = json(shell, &["ip", "-j", "address", "show"]) else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|link| {
            let name = link["ifname"].as_str()?.to_owned();
            let addresses: Vec<String> = link["addr_info"]
                .as_array()?
                .iter()
                .filter(|info| info["scope"] != "host" && info["scope"] != "link")
                .filter_map(|info| {
                    Some(format!("{}/{}", info["local"].as_str()?, info["prefixlen"]))
                })
                .collect();
            (!addresses.is_empty()).then_some((name, addresses))
        })
        .collect()
}

fn tunnels(shell: &NodeShell) -> Vec<TunnelView> {
    let Ok(dump) = shell.check(&["wg", "show", "all", "dump"]) else {
        return Vec::new();
    };
    let names = peer_names(shell);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut tunnels: Vec<TunnelView> = Vec::new();
    for line in dump.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            // interface, private key (dropped here), public key, port, fwmark
            [interface, _, public_key, _, _] => tunnels.push(TunnelView {
                interface: (*interface).to_owned(),
                public_key: (*public_key).to_owned(),
                peers: Vec::new(),
            }),
            [
                interface,
                public_key,
                _,
                endpoint,
                allowed_ips,
                handshake,
                ..,
            ] => {
                let Some(tunnel) = tunnels
                    .iter_mut()
                    .find(|tunnel| tunnel.interface == *interface)
                else {
                    continue;
                };
                let handshake: u64 = handshake.parse().unwrap_or(0);
                tunnel.peers.push(PeerView {
                    public_key: (*public_key).to_owned(),
                    name: names.get(*public_key).cloned(),
                    endpoint: (*endpoint != "(none)").then(|| (*endpoint).to_owned()),
                    allowed_ips: allowed_ips
                        .split(',')
                        .filter(|ip| !ip.is_empty() && *ip != "(none)")
                        .map(str::to_owned)
                        .collect(),
                    handshake_age: (handshake > 0).then(|| now.saturating_sub(handshake)),
                });
            }
            _ => {}
        }
    }
    tunnels
}

/// Public key → peer name, from `wgd status --json` (empty without wgd).
fn peer_names(shell: &NodeShell) -> BTreeMap<String, String> {
    let Some(status) = json(shell, &["wgd", "status", "--json"]) else {
        return BTreeMap::new();
    };
    status["tunnels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tunnel| tunnel["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|peer| {
            Some((
                peer["public_key"].as_str()?.to_owned(),
                peer["name"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn sessions(shell: &NodeShell) -> Vec<Session> {
    let Some(summary) = json(shell, &["wgd", "bgp", "summary", "--json"]) else {
        return Vec::new();
    };
    summary["neighbors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| Session {
            neighbor: n["neighbor"].as_str().unwrap_or("?").to_owned(),
            tunnel: n["tunnel"].as_str().map(str::to_owned),
            remote_as: n["remote_as"].as_u64().unwrap_or(0),
            state: n["state"].as_str().unwrap_or("?").to_owned(),
            prefixes_received: n["prefixes_received"].as_u64().unwrap_or(0),
        })
        .collect()
}

fn learned_routes(shell: &NodeShell) -> Vec<LearnedRoute> {
    let mut routes = Vec::new();
    for family in ["-4", "-6"] {
        let Some(Value::Array(list)) = json(
            shell,
            &["ip", family, "-j", "route", "show", "table", "all"],
        ) else {
            continue;
        };
        for route in list {
            let protocol = route["protocol"].as_str().unwrap_or("kernel");
            if NOT_LEARNED.contains(&protocol) {
                continue;
            }
            let prefix = route["dst"].as_str().unwrap_or("?").to_owned();
            let mut text = prefix.clone();
            if let Some(gateway) = route["gateway"].as_str() {
                text.push_str(&format!(" via {gateway}"));
            }
            if let Some(dev) = route["dev"].as_str() {
                text.push_str(&format!(" dev {dev}"));
            }
            text.push_str(&format!(" proto {protocol}"));
            if let Some(table) = route.get("table").and_then(Value::as_str) {
                text.push_str(&format!(" table {table}"));
            }
            routes.push(LearnedRoute { prefix, text });
        }
    }
    routes
}

fn age(seconds: Option<u64>) -> String {
    match seconds {
        None => "never".to_owned(),
        Some(age) => format!("{age} s ago"),
    }
}

/// The report: nodes, tunnels, BGP sessions, learned routes, checks and
/// convergence, and where the SVG went.
pub fn render(
    topology: &Topology,
    views: &[NodeView],
    verdict: Option<&Verdict>,
    checks_file: Option<&Path>,
    svg: &[&Path],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} ({}): {} nodes, {} links",
        topology.name,
        topology.file.display(),
        topology.nodes.len(),
        topology.links.len()
    );

    let _ = writeln!(out, "\nnodes");
    for view in views {
        let daemon = match view.daemon {
            None => String::new(),
            Some((pid, true)) => format!("  cmd: pid {pid}, running"),
            Some((pid, false)) => format!(
                "  cmd: pid {pid}, NOT RUNNING (its output: {})",
                node_dir(&topology.name, &view.name)
                    .join("cmd.log")
                    .display()
            ),
        };
        let _ = writeln!(
            out,
            "  {:<10} namespace {}{daemon}",
            view.name, view.namespace
        );
        for (interface, addresses) in &view.addresses {
            let _ = writeln!(out, "    {interface:<10} {}", addresses.join(" "));
        }
    }

    let _ = writeln!(out, "\ntunnels");
    let mut any = false;
    for view in views {
        for tunnel in &view.tunnels {
            any = true;
            let _ = writeln!(
                out,
                "  {} {} ({} peers)",
                view.name,
                tunnel.interface,
                tunnel.peers.len()
            );
            for peer in &tunnel.peers {
                let _ = writeln!(
                    out,
                    "    peer {:<12} endpoint {:<22} handshake {:<10} allowed {}",
                    peer.label(),
                    peer.endpoint.as_deref().unwrap_or("-"),
                    age(peer.handshake_age),
                    peer.allowed_ips.join(", ")
                );
            }
        }
    }
    if !any {
        let _ = writeln!(out, "  none");
    }

    let _ = writeln!(out, "\nBGP sessions");
    let mut any = false;
    for view in views {
        for session in &view.sessions {
            any = true;
            let _ = writeln!(
                out,
                "  {:<10} {:<16} {:<8} AS {:<8} {:<12} {} prefixes received",
                view.name,
                session.neighbor,
                session.tunnel.as_deref().unwrap_or("-"),
                session.remote_as,
                session.state,
                session.prefixes_received
            );
        }
    }
    if !any {
        let _ = writeln!(out, "  none");
    }

    let _ = writeln!(out, "\nroutes learned");
    let mut any = false;
    for view in views {
        for route in &view.routes {
            any = true;
            let _ = writeln!(out, "  {:<10} {}", view.name, route.text);
        }
    }
    if !any {
        let _ = writeln!(out, "  none");
    }

    let _ = writeln!(out, "\nchecks");
    match (verdict, checks_file) {
        (_, None) => {
            let _ = writeln!(out, "  no checks file");
        }
        (None, Some(file)) => {
            let _ = writeln!(out, "  not run ({})", file.display());
        }
        (Some(verdict), Some(file)) => {
            let _ = writeln!(out, "  from {}", file.display());
            for (check, outcome) in &verdict.outcomes {
                let mark = if outcome.passed { "[pass]" } else { "[FAIL]" };
                let _ = writeln!(out, "  {mark} {check}\n         seen: {}", outcome.seen);
            }
            match verdict.converged_after {
                Some(after) => {
                    let _ = writeln!(
                        out,
                        "\nconverged in {:.1} s (deadline {} s): {} checks passed",
                        after.as_secs_f64(),
                        verdict.deadline.as_secs(),
                        verdict.outcomes.len()
                    );
                    if let Some(after) = verdict.after_change() {
                        let _ = writeln!(
                            out,
                            "every check passed {:.2} s after the change (--since)",
                            after.as_secs_f64()
                        );
                    }
                }
                None => {
                    let failed = verdict.outcomes.iter().filter(|(_, o)| !o.passed).count();
                    let _ = writeln!(
                        out,
                        "\nNOT CONVERGED within {} s: {failed} of {} checks failed",
                        verdict.deadline.as_secs(),
                        verdict.outcomes.len()
                    );
                }
            }
        }
    }
    for path in svg {
        let _ = writeln!(out, "picture: {}", path.display());
    }
    out
}
