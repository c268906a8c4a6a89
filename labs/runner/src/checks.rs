//! What a lab claims, read from the checks file beside it
//! (`<lab>.checks.toml` for `<lab>.clab.yml`), and the evaluation of each
//! claim against a running node.
//!
//! The file parses into [`Checks`]: a deadline to converge within and a
//! list of [`Check`]s, each naming a node that the topology must have.
//! [`Check::evaluate`] runs what an operator would type in that node
//! (`ping`, `ip route`, `wg show`, `wgd status --json`, `wgd bgp summary
//! --json`) and returns an [`Outcome`]: passed or not, and what was seen.
//! [`converge`] evaluates all of them until they all pass in the same round
//! or the deadline passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::node::NodeShell;
use crate::topology::Topology;

/// Deadline when the file gives none.
const DEFAULT_CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// A handshake older than this counts as none (WireGuard's REJECT_AFTER_TIME).
const DEFAULT_HANDSHAKE_WITHIN: u64 = 180;

/// Pause between rounds of checks that did not all pass.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// The checks file of a lab file: `x.clab.yml` → `x.checks.toml`.
pub fn checks_path(topology_file: &Path) -> PathBuf {
    let name = topology_file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".clab.yml")
        .or_else(|| name.strip_suffix(".clab.yaml"))
        .unwrap_or(name);
    topology_file.with_file_name(format!("{stem}.checks.toml"))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    pub file: Option<PathBuf>,
    pub converge_within: Duration,
    pub checks: Vec<Check>,
}

/// One claim about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ping(Ping),
    Route(Route),
    Bgp(Bgp),
    Handshake(Handshake),
    AllowedIps(AllowedIps),
    Command(CommandCheck),
}

/// `to` answers ping from the node (or must not, with `expect = "fail"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    pub node: String,
    pub to: String,
    /// Source address (`ping -I`).
    pub from: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

/// The main table (or `table`) has a route for exactly `prefix`, with
/// these attributes (or none, with `absent = true`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub node: String,
    pub prefix: String,
    pub via: Option<String>,
    pub dev: Option<String>,
    pub proto: Option<String>,
    /// The preferred source address (`src`).
    pub src: Option<String>,
    /// A table other than main (a number or a name).
    pub table: Option<String>,
    #[serde(default)]
    pub absent: bool,
}

/// `established` BGP sessions of the node's wgd, no more, no fewer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    pub node: String,
    pub established: usize,
}

/// Every peer of `tunnel` had a handshake in the last `within` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    pub node: String,
    pub tunnel: String,
    pub within: Option<u64>,
}

/// wgd's peer `peer` (its name in the config) of `tunnel` has each of
/// `includes` in its AllowedIPs, and none of `excludes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedIps {
    pub node: String,
    pub tunnel: String,
    pub peer: String,
    pub includes: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// A shell command line exits as expected (and prints `contains`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub node: String,
    pub run: String,
    pub contains: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Success,
    Fail,
}

/// The file as written: one array of tables per kind of check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    converge_within: Option<String>,
    #[serde(default)]
    ping: Vec<Ping>,
    #[serde(default)]
    route: Vec<Route>,
    #[serde(default)]
    bgp: Vec<Bgp>,
    #[serde(default)]
    handshake: Vec<Handshake>,
    #[serde(default)]
    allowed_ips: Vec<AllowedIps>,
    #[serde(default)]
    command: Vec<CommandCheck>,
}

impl Checks {
    /// The checks of `topology`, from its checks file if there is one.
    pub fn load(topology: &Topology) -> anyhow::Result<Self> {
        let path = checks_path(&topology.file);
        if !path.exists() {
            return Ok(Self {
                file: None,
                converge_within: DEFAULT_CONVERGE_WITHIN,
                checks: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        Self::parse(&path, &text, topology)
    }

    /// The checks in `path`, which must exist, for `topology`.
    pub fn load_from(path: &Path, topology: &Topology) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        Self::parse(path, &text, topology)
    }

    pub fn parse(path: &Path, text: &str, topology: &Topology) -> anyhow::Result<Self> {
        let file: File =
            toml::from_str(text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let converge_within = match &file.converge_within {
            None => DEFAULT_CONVERGE_WITHIN,
            Some(text) => parse_duration(text).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: converge_within \"{text}\": expected a duration such as \"60s\", \"2m\" or \"500ms\"",
                    path.display()
                )
            })?,
        };
        let checks: Vec<Check> = (file.ping.into_iter().map(Check::Ping))
            .chain(file.route.into_iter().map(Check::Route))
            .chain(file.bgp.into_iter().map(Check::Bgp))
            .chain(file.handshake.into_iter().map(Check::Handshake))
            .chain(file.allowed_ips.into_iter().map(Check::AllowedIps))
            .chain(file.command.into_iter().map(Check::Command))
            .collect();
        let unknown: Vec<String> = checks
            .iter()
            .filter(|check| topology.node(check.node()).is_none())
            .map(|check| {
                format!(
                    "{}: {}: no node \"{}\"",
                    path.display(),
                    check,
                    check.node()
                )
            })
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!("{}", unknown.join("\n"));
        }
        Ok(Self {
            file: Some(path.to_owned()),
            converge_within,
            checks,
        })
    }
}

/// `"60s"`, `"2m"`, `"500ms"`, `"90"` (seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(number)),
        "ms" => Some(Duration::from_millis(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = self.node();
        match self {
            Check::Ping(ping) => {
                let from = ping
                    .from
                    .as_ref()
                    .map(|from| format!(" from {from}"))
                    .unwrap_or_default();
                let verb = match ping.expect {
                    Expect::Success => "answers",
                    Expect::Fail => "does not answer",
                };
                write!(f, "ping {node}{from} -> {}: {verb}", ping.to)
            }
            Check::Route(route) => {
                write!(f, "route {node} {}", route.prefix)?;
                for (label, value) in [
                    ("via", &route.via),
                    ("dev", &route.dev),
                    ("proto", &route.proto),
                    ("src", &route.src),
                ] {
                    if let Some(value) = value {
                        write!(f, " {label} {value}")?;
                    }
                }
                if let Some(table) = &route.table {
                    write!(f, " (table {table})")?;
                }
                if route.absent {
                    write!(f, ": absent")?;
                }
                Ok(())
            }
            Check::Bgp(bgp) => write!(f, "bgp {node}: {} established", bgp.established),
            Check::Handshake(handshake) => write!(
                f,
                "handshake {node} {}: every peer within {} s",
                handshake.tunnel,
                handshake.within.unwrap_or(DEFAULT_HANDSHAKE_WITHIN)
            ),
            Check::AllowedIps(allowed) => {
                write!(
                    f,
                    "allowed_ips {node} {} peer {}: has {}",
                    allowed.tunnel,
                    allowed.peer,
                    allowed.includes.join(", ")
                )?;
                if !allowed.excludes.is_empty() {
                    write!(f, ", not {}", allowed.excludes.join(", "))?;
                }
                Ok(())
            }
            Check::Command(command) => {
                let expect = match command.expect {
                    Expect::Success => "succeeds",
                    Expect::Fail => "fails",
                };
                write!(f, "command {node} `{}`: {expect}", command.run)?;
                if let Some(contains) = &command.contains {
                    write!(f, ", prints \"{contains}\"")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a check held, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    pub seen: String,
}

impl Outcome {
    fn new(passed: bool, seen: impl Into<String>) -> Self {
        Self {
            passed,
            seen: seen.into(),
        }
    }
}

impl Check {
    /// The node the check runs in.
    pub fn node(&self) -> &str {
        match self {
            Self::Ping(Ping { node, .. })
            | Self::Route(Route { node, .. })
            | Self::Bgp(Bgp { node, .. })
            | Self::Handshake(Handshake { node, .. })
            | Self::AllowedIps(AllowedIps { node, .. })
            | Self::Command(CommandCheck { node, .. }) => node,
        }
    }

    /// Runs the check once in `shell`, the check's node.
    pub fn evaluate(&self, shell: &NodeShell) -> Outcome {
        match self.run(shell) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::new(false, error.to_string()),
        }
    }

    fn run(&self, shell: &NodeShell) -> anyhow::Result<Outcome> {
        Ok(match self {
            Check::Ping(ping) => {
                let mut argv = vec!["ping", "-n", "-q", "-c", "1", "-W", "1"];
                if let Some(from) = &ping.from {
                    argv.extend(["-I", from.as_str()]);
                }
                argv.push(&ping.to);
                let output = shell.output(&argv)?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                let seen = stdout
                    .lines()
                    .find(|line| line.contains("packets transmitted"))
                    .unwrap_or_else(|| stderr.trim())
                    .to_owned();
                let answered = output.status.success();
                Outcome::new(answered == (ping.expect == Expect::Success), seen)
            }
            Check::Route(route) => {
                let family = if route.prefix.contains(':') {
                    "-6"
                } else {
                    "-4"
                };
                let mut argv = vec!["ip", family, "-o", "route", "show", "exact", &route.prefix];
                if let Some(table) = &route.table {
                    argv.extend(["table", table.as_str()]);
                }
                let listing = shell.check(&argv)?;
                let lines: Vec<&str> = listing
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .collect();
                let matching = lines.iter().any(|line| {
                    let fields = route_fields(line);
                    [
                        ("via", &route.via),
                        ("dev", &route.dev),
                        ("proto", &route.proto),
                        ("src", &route.src),
                    ]
                    .iter()
                    .all(|(label, want)| {
                        want.as_ref()
                            .is_none_or(|want| fields.get(label) == Some(&want.as_str()))
                    })
                });
                let seen = if lines.is_empty() {
                    "no such route".to_owned()
                } else {
                    lines.join("; ")
                };
                Outcome::new(matching != route.absent, seen)
            }
            Check::Bgp(bgp) => {
                let summary: serde_json::Value =
                    serde_json::from_str(&shell.check(&["wgd", "bgp", "summary", "--json"])?)?;
                let neighbors = summary["neighbors"].as_array().cloned().unwrap_or_default();
                let established = neighbors
                    .iter()
                    .filter(|n| n["state"] == "established")
                    .count();
                let states: Vec<String> = neighbors
                    .iter()
                    .map(|n| {
                        format!(
                            "{} {}",
                            n["neighbor"].as_str().unwrap_or("?"),
                            n["state"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                let seen = format!("{established} established ({})", states.join(", "));
                Outcome::new(established == bgp.established, seen)
            }
            Check::Handshake(handshake) => {
                let within = handshake.within.unwrap_or(DEFAULT_HANDSHAKE_WITHIN);
                let listing =
                    shell.check(&["wg", "show", &handshake.tunnel, "latest-handshakes"])?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let ages: Vec<(String, Option<u64>)> = listing
                    .lines()
                    .filter_map(|line| line.split_once('\t'))
                    .map(|(key, time)| {
                        let time: u64 = time.trim().parse().unwrap_or(0);
                        (short_key(key), (time > 0).then(|| now.saturating_sub(time)))
                    })
                    .collect();
                let passed = !ages.is_empty()
                    && ages
                        .iter()
                        .all(|(_, age)| age.is_some_and(|age| age <= within));
                let seen = if ages.is_empty() {
                    "no peers".to_owned()
                } else {
                    ages.iter()
                        .map(|(key, age)| match age {
                            Some(age) => format!("{key} {age} s ago"),
                            None => format!("{key} never"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Outcome::new(passed, seen)
            }
            Check::AllowedIps(allowed) => {
                let status: serde_json::Value =
                    serde_json::from_str(&shell.check(&["wgd", "status", "--json"])?)?;
                let peer = status["tunnels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|tunnel| tunnel["name"] == allowed.tunnel.as_str())
                    .flat_map(|tunnel| tunnel["peers"].as_array().cloned().unwrap_or_default())
                    .find(|peer| peer["name"] == allowed.peer.as_str());
                let Some(peer) = peer else {
                    return Ok(Outcome::new(
                        false,
                        format!(
                            "no peer \"{}\" on tunnel {} in `wgd status`",
                            allowed.peer, allowed.tunnel
                        ),
                    ));
                };
                let have: Vec<String> = peer["allowed_ips"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|ip| ip.as_str().map(str::to_owned))
                    .collect();
                let passed = allowed.includes.iter().all(|ip| have.contains(ip))
                    && !allowed.excludes.iter().any(|ip| have.contains(ip));
                Outcome::new(passed, format!("allowed ips {}", have.join(", ")))
            }
            Check::Command(command) => {
                let output = shell.sh(&command.run)?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let ran = output.status.success() == (command.expect == Expect::Success);
                let printed = command
                    .contains
                    .as_ref()
                    .is_none_or(|text| stdout.contains(text.as_str()));
                let mut seen = format!("{}", output.status);
                // The line that matched, else the first one.
                let shown = command
                    .contains
                    .as_ref()
                    .and_then(|text| stdout.lines().find(|line| line.contains(text.as_str())))
                    .or_else(|| stdout.lines().next())
                    .unwrap_or_default();
                if !shown.is_empty() {
                    let shown: String = shown.chars().take(120).collect();
                    seen.push_str(&format!(", printed \"{shown}\""));
                }
                Outcome::new(ran && printed, seen)
            }
        })
    }
}

/// `ip -o route` fields: `via 10.0.0.1 dev wg0 proto wgd` → {via: .., ..}.
/// A gateway of the other family (`via inet6 fe80::2`, RFC 8950) is read
/// as its address.
fn route_fields(line: &str) -> BTreeMap<&str, &str> {
    let words: Vec<&str> = line
        .split_whitespace()
        .filter(|word| !matches!(*word, "inet" | "inet6"))
        .collect();
    words
        .windows(2)
        .filter(|pair| matches!(pair[0], "via" | "dev" | "proto" | "src" | "metric"))
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// The first characters of a base64 key, enough to tell peers apart.
pub fn short_key(key: &str) -> String {
    format!("{}…", key.chars().take(8).collect::<String>())
}

/// Every check's last outcome and, if they all passed, when.
#[derive(Debug)]
pub struct Verdict {
    pub outcomes: Vec<(Check, Outcome)>,
    /// Since the start of [`converge`], when every check passed in one round.
    pub converged_after: Option<Duration>,
    /// The clock's time then.
    pub passed_at: Option<SystemTime>,
    /// When the change the checks follow was made (`wgd-lab check
    /// --since`), if the caller said.
    pub since: Option<SystemTime>,
    pub deadline: Duration,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.converged_after.is_some()
    }

    /// From the change to every check passing, when both are known.
    pub fn after_change(&self) -> Option<Duration> {
        self.passed_at?.duration_since(self.since?).ok()
    }
}

/// Evaluates every check in its node until all pass in the same round or
/// `checks.converge_within` has passed.
pub fn converge(checks: &Checks, shells: &BTreeMap<String, NodeShell>) -> Verdict {
    let started = Instant::now();
    loop {
        let outcomes: Vec<(Check, Outcome)> = checks
            .checks
            .iter()
            .map(|check| {
                let outcome = match shells.get(check.node()) {
                    Some(shell) => check.evaluate(shell),
                    None => Outcome::new(false, format!("node \"{}\" is not up", check.node())),
                };
                (check.clone(), outcome)
            })
            .collect();
        let all = outcomes.iter().all(|(_, outcome)| outcome.passed);
        let elapsed = started.elapsed();
        if all || elapsed >= checks.converge_within {
            return Verdict {
                outcomes,
                converged_after: all.then_some(elapsed),
                passed_at: all.then(SystemTime::now),
                since: None,
                deadline: checks.converge_within,
            };
        }
        std::thread::sleep(ROUND_PAUSE.min(checks.converge_within - elapsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("t.clab.yml");
        Topology::parse(
            &file,
            "name: t\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n",
        )
        .unwrap()
    }

    #[test]
    fn the_checks_file_sits_beside_the_lab() {
        assert_eq!(
            checks_path(Path::new("labs/seed.clab.yml")),
            Path::new("labs/seed.checks.toml")
        );
    }

    #[test]
    fn durations_read_like_an_operator_writes_them() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5h"), None);
    }

    #[test]
    fn every_kind_of_check_parses() {
        let text = r#"
converge_within = "30s"

[[ping]]
node = "a"
to = "198.51.100.1"
expect = "fail"

[[route]]
node = "a"
prefix = "192.168.2.0/24"
dev = "wg0"
proto = "wgd"

[[bgp]]
node = "b"
established = 2

[[handshake]]
node = "b"
tunnel = "wg0"

[[allowed_ips]]
node = "b"
tunnel = "wg0"
peer = "spoke1"
includes = ["192.168.1.0/24"]

[[command]]
node = "a"
run = "wg show"
contains = "peer"
"#;
        let checks = Checks::parse(Path::new("t.checks.toml"), text, &topology()).unwrap();
        assert_eq!(checks.converge_within, Duration::from_secs(30));
        assert_eq!(checks.checks.len(), 6);
        assert_eq!(
            checks.checks[0].to_string(),
            "ping a -> 198.51.100.1: does not answer"
        );
        assert_eq!(
            checks.checks[1].to_string(),
            "route a 192.168.2.0/24 dev wg0 proto wgd"
        );
        assert!(matches!(
            checks.checks[2],
            Check::Bgp(Bgp { established: 2, .. })
        ));
    }

    #[test]
    fn unknown_nodes_and_fields_are_named() {
        let error = Checks::parse(
            Path::new("t.checks.toml"),
            "[[ping]]\nnode = \"r9\"\nto = \"192.0.2.1\"\n",
            &topology(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "t.checks.toml: ping r9 -> 192.0.2.1: answers: no node \"r9\""
        );
        let error = Checks::parse(
            Path::new("t.checks.toml"),
            "[[ping]]\nnode = \"a\"\nto = \"192.0.2.1\"\nexpcet = \"fail\"\n",
            &topology(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("expcet"), "{error}");
        let error = Checks::parse(
            Path::new("t.checks.toml"),
            "[[pong]]\nnode = \"a\"\n",
            &topology(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("pong"), "{error}");
        let error = Checks::parse(
            Path::new("t.checks.toml"),
            "converge_within = \"soon\"\n",
            &topology(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("converge_within \"soon\""), "{error}");
    }

    #[test]
    fn route_fields_are_read_pairwise() {
        let fields = route_fields("192.168.2.0/24 via 10.254.0.3 dev wg0 proto wgd metric 20");
        assert_eq!(fields.get("via"), Some(&"10.254.0.3"));
        assert_eq!(fields.get("proto"), Some(&"wgd"));
        let fields = route_fields(
            "172.20.2.0/27 via inet6 fe80::2 dev dn42-bird proto wgd src 172.20.1.1 metric 20",
        );
        assert_eq!(fields.get("via"), Some(&"fe80::2"));
        assert_eq!(fields.get("dev"), Some(&"dn42-bird"));
        assert_eq!(fields.get("src"), Some(&"172.20.1.1"));
    }
}
