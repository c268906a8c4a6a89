//! A containerlab topology file, read into a [`Topology`] that the runner
//! can realise with network namespaces.
//!
//! Text goes in ([`Topology::parse`]); a typed topology or a list of
//! problems comes out, each naming the file and the thing at fault (`node
//! "r1": kind "srl" is not supported by wgd-lab (supported: linux)`). Only
//! the subset of containerlab that `wgd-lab` can honour is accepted:
//! anything else is refused by name rather than ignored, so a lab never
//! silently means something else here than under containerlab.
//!
//! No I/O besides checking that bind sources exist.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// Node kinds the runner can realise.
const KINDS: &[&str] = &["linux"];

/// Node options the runner honours. `image` is accepted and not used:
/// nodes run the host's programs.
const NODE_OPTIONS: &[&str] = &["kind", "image", "binds", "exec", "env", "cmd", "sysctls"];

/// Top-level keys the runner honours. `prefix` only changes containerlab's
/// container names, which do not exist here.
const TOP_LEVEL: &[&str] = &["name", "prefix", "topology"];

/// Longest interface name the kernel takes.
const MAX_INTERFACE_LEN: usize = 15;

/// A lab: its name, nodes and links, valid for the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The file it came from.
    pub file: PathBuf,
    /// The lab's name: every namespace is `<name>-<node>`.
    pub name: String,
    /// In file order.
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

/// One node: a network namespace, with the node's files bound in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub binds: Vec<Bind>,
    /// Environment of every command run in the node.
    pub env: Vec<(String, String)>,
    /// `net.*` sysctls set when the node is made.
    pub sysctls: Vec<(String, String)>,
    /// The container's command: the node's daemon, kept running.
    pub cmd: Option<String>,
    /// One-shot commands, run in order once the node and its links exist.
    pub exec: Vec<String>,
}

/// A file or directory of the host shown at a path inside the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute (relative ones are taken from the lab file's directory).
    pub source: PathBuf,
    /// Absolute, as the node sees it.
    pub target: PathBuf,
    pub read_only: bool,
}

/// A veth pair between two endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub endpoints: [Endpoint; 2],
}

/// `node:interface`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub node: String,
    pub interface: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.interface)
    }
}

/// Why a topology file was refused: every problem found, each on a line
/// starting with the file's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {p}", .file.display())).collect::<Vec<_>>().join("\n"))]
pub struct TopologyError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl Topology {
    /// Reads and validates `file`.
    pub fn load(file: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(file).map_err(|error| TopologyError {
            file: file.to_owned(),
            problems: vec![format!("cannot read: {error}")],
        })?;
        Self::parse(file, &text)
    }

    /// Validates `text`, the contents of `file` (bind sources are taken
    /// relative to the file's directory and must exist).
    pub fn parse(file: &Path, text: &str) -> Result<Self, TopologyError> {
        let mut problems = Vec::new();
        let topology = read(file, text, &mut problems);
        match topology {
            Some(topology) if problems.is_empty() => Ok(topology),
            _ => Err(TopologyError {
                file: file.to_owned(),
                problems,
            }),
        }
    }

    /// The namespace of `node`.
    pub fn namespace(&self, node: &str) -> String {
        namespace(&self.name, node)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.name == name)
    }
}

/// The namespace of node `node` of lab `lab`.
pub fn namespace(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// Only the lab's name, for `down`, which must work even when the rest of
/// the file has become invalid since `up`.
pub fn lab_name(file: &Path) -> Result<String, TopologyError> {
    let fail = |problem: String| TopologyError {
        file: file.to_owned(),
        problems: vec![problem],
    };
    let text =
        std::fs::read_to_string(file).map_err(|error| fail(format!("cannot read: {error}")))?;
    let value: Value =
        serde_norway::from_str(&text).map_err(|error| fail(format!("not YAML: {error}")))?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no name".to_owned()))?;
    if !is_name(name) {
        return Err(fail(format!("name \"{name}\": {NAME_RULE}")));
    }
    Ok(name.to_owned())
}

/// `name` if it can name a lab (for `--name`).
pub fn checked_name(name: &str) -> anyhow::Result<String> {
    if is_name(name) {
        Ok(name.to_owned())
    } else {
        anyhow::bail!("lab name \"{name}\": {NAME_RULE}")
    }
}

const NAME_RULE: &str = "expected letters, digits, '-' and '_' only";

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn read(file: &Path, text: &str, problems: &mut Vec<String>) -> Option<Topology> {
    let value: Value = match serde_norway::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            problems.push(format!("not YAML: {error}"));
            return None;
        }
    };
    let Some(top) = value.as_mapping() else {
        problems.push("expected a mapping at the top level".to_owned());
        return None;
    };
    check_keys(top, TOP_LEVEL, "", problems);

    let name = match top.get("name").map(|name| (name, name.as_str())) {
        Some((_, Some(name))) if is_name(name) => name.to_owned(),
        Some((_, Some(name))) => {
            problems.push(format!("name \"{name}\": {NAME_RULE}"));
            String::new()
        }
        Some((value, None)) => {
            problems.push(format!("name: expected a string, found {}", kind_of(value)));
            String::new()
        }
        None => {
            problems.push("no name".to_owned());
            String::new()
        }
    };

    let Some(topology) = top.get("topology") else {
        problems.push("no topology".to_owned());
        return None;
    };
    let Some(topology) = topology.as_mapping() else {
        problems.push("topology: expected a mapping".to_owned());
        return None;
    };
    check_keys(topology, &["nodes", "links"], "topology.", problems);

    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let mut nodes = Vec::new();
    match topology
        .get("nodes")
        .map(|nodes| (nodes, nodes.as_mapping()))
    {
        Some((_, Some(mapping))) => {
            for (key, value) in mapping {
                match key.as_str() {
                    Some(node) if is_name(node) => {
                        if let Some(node) = read_node(node, value, base, problems) {
                            nodes.push(node);
                        }
                    }
                    Some(node) => problems.push(format!("node \"{node}\": name {NAME_RULE}")),
                    None => problems.push(format!("node {}: expected a string name", show(key))),
                }
            }
        }
        Some((value, None)) if !value.is_null() => {
            problems.push("topology.nodes: expected a mapping".to_owned());
        }
        _ => problems.push("topology.nodes: no nodes".to_owned()),
    }

    let links = match topology.get("links") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(links)) => read_links(links, &nodes, problems),
        Some(_) => {
            problems.push("topology.links: expected a list".to_owned());
            Vec::new()
        }
    };
    Some(Topology {
        file: file.to_owned(),
        name,
        nodes,
        links,
    })
}

fn read_node(name: &str, value: &Value, base: &Path, problems: &mut Vec<String>) -> Option<Node> {
    let at = format!("node \"{name}\"");
    let Some(mapping) = value.as_mapping() else {
        problems.push(format!("{at}: expected a mapping"));
        return None;
    };
    for key in mapping.keys() {
        match key.as_str() {
            Some(option) if NODE_OPTIONS.contains(&option) => {}
            Some(option) => problems.push(format!(
                "{at}: option \"{option}\" is not supported by wgd-lab (supported: {})",
                NODE_OPTIONS.join(", ")
            )),
            None => problems.push(format!("{at}: option {}: expected a string", show(key))),
        }
    }
    match mapping.get("kind").map(|kind| (kind, kind.as_str())) {
        Some((_, Some(kind))) if KINDS.contains(&kind) => {}
        Some((_, Some(kind))) => problems.push(format!(
            "{at}: kind \"{kind}\" is not supported by wgd-lab (supported: {})",
            KINDS.join(", ")
        )),
        Some((value, None)) => problems.push(format!(
            "{at}: kind: expected a string, found {}",
            kind_of(value)
        )),
        None => problems.push(format!(
            "{at}: no kind (wgd-lab supports: {}; topology.kinds and defaults are not supported)",
            KINDS.join(", ")
        )),
    }
    if let Some(image) = mapping.get("image")
        && !image.is_string()
    {
        problems.push(format!("{at}: image: expected a string"));
    }
    let binds = strings(mapping.get("binds"), &format!("{at}: binds"), problems)
        .iter()
        .filter_map(|bind| read_bind(bind, base, &at, problems))
        .collect();
    let exec = strings(mapping.get("exec"), &format!("{at}: exec"), problems);
    let cmd = match mapping.get("cmd") {
        None => None,
        Some(Value::String(cmd)) if !cmd.trim().is_empty() => Some(cmd.clone()),
        Some(_) => {
            problems.push(format!("{at}: cmd: expected a command line"));
            None
        }
    };
    let env = scalars(mapping.get("env"), &format!("{at}: env"), problems);
    for (variable, _) in &env {
        if variable.is_empty() || variable.contains('=') {
            problems.push(format!("{at}: env: \"{variable}\" is not a variable name"));
        }
    }
    let sysctls = scalars(mapping.get("sysctls"), &format!("{at}: sysctls"), problems);
    for (sysctl, _) in &sysctls {
        // Only these follow the network namespace; others would change the host.
        if !sysctl.starts_with("net.") || sysctl.contains('/') || sysctl.contains("..") {
            problems.push(format!(
                "{at}: sysctl \"{sysctl}\" is not supported by wgd-lab (only net.*, which belong to the node's network namespace)"
            ));
        }
    }
    Some(Node {
        name: name.to_owned(),
        binds,
        env,
        sysctls,
        cmd,
        exec,
    })
}

/// `source:target[:ro|rw]`.
fn read_bind(bind: &str, base: &Path, at: &str, problems: &mut Vec<String>) -> Option<Bind> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, true),
        [source, target, "rw"] => (*source, *target, false),
        [_, _, options] => {
            problems.push(format!(
                "{at}: bind \"{bind}\": option \"{options}\" is not supported by wgd-lab (supported: ro, rw)"
            ));
            return None;
        }
        _ => {
            problems.push(format!(
                "{at}: bind \"{bind}\": expected source:target or source:target:ro"
            ));
            return None;
        }
    };
    let target = PathBuf::from(target);
    if !target.is_absolute() || target == Path::new("/") {
        problems.push(format!(
            "{at}: bind \"{bind}\": target \"{}\" is not an absolute path below /",
            target.display()
        ));
        return None;
    }
    let source = base.join(source);
    if !source.exists() {
        problems.push(format!(
            "{at}: bind \"{bind}\": source {} does not exist",
            source.display()
        ));
        return None;
    }
    Some(Bind {
        source,
        target,
        read_only,
    })
}

fn read_links(links: &[Value], nodes: &[Node], problems: &mut Vec<String>) -> Vec<Link> {
    // Where each endpoint was first seen: link numbers count from 1.
    let mut seen: BTreeMap<Endpoint, usize> = BTreeMap::new();
    let mut result = Vec::new();
    for (index, link) in links.iter().enumerate() {
        let number = index + 1;
        let at = format!("link {number}");
        let Some(mapping) = link.as_mapping() else {
            problems.push(format!("{at}: expected a mapping with endpoints"));
            continue;
        };
        for key in mapping.keys() {
            if key.as_str() != Some("endpoints") {
                problems.push(format!(
                    "{at}: option {} is not supported by wgd-lab (supported: endpoints)",
                    show(key)
                ));
            }
        }
        let endpoints = strings(
            mapping.get("endpoints"),
            &format!("{at}: endpoints"),
            problems,
        );
        if endpoints.len() != 2 {
            problems.push(format!(
                "{at}: expected two endpoints, found {}",
                endpoints.len()
            ));
            continue;
        }
        let mut parsed = Vec::new();
        for text in &endpoints {
            let Some((node, interface)) = text.split_once(':') else {
                problems.push(format!(
                    "{at}: endpoint \"{text}\": expected node:interface"
                ));
                continue;
            };
            let endpoint = Endpoint {
                node: node.to_owned(),
                interface: interface.to_owned(),
            };
            if nodes.iter().all(|known| known.name != node) {
                let special = matches!(node, "host" | "mgmt-net" | "macvlan");
                problems.push(if special {
                    format!("{at}: endpoint \"{text}\": \"{node}\" endpoints are not supported by wgd-lab")
                } else {
                    format!("{at}: endpoint \"{text}\": no node \"{node}\"")
                });
                continue;
            }
            if let Err(reason) = check_interface(interface) {
                problems.push(format!("{at}: endpoint \"{text}\": {reason}"));
                continue;
            }
            if let Some(first) = seen.get(&endpoint) {
                problems.push(format!(
                    "endpoint \"{text}\" appears twice (links {first} and {number})"
                ));
                continue;
            }
            seen.insert(endpoint.clone(), number);
            parsed.push(endpoint);
        }
        if let Ok(endpoints) = <[Endpoint; 2]>::try_from(parsed) {
            result.push(Link { endpoints });
        }
    }
    result
}

fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_LEN {
        return Err(format!(
            "interface name must have 1 to {MAX_INTERFACE_LEN} characters"
        ));
    }
    if name == "lo" || name == "." || name == ".." {
        return Err(format!("interface name \"{name}\" is reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("interface name has '/', ':' or whitespace".to_owned());
    }
    Ok(())
}

fn check_keys(mapping: &Mapping, known: &[&str], path: &str, problems: &mut Vec<String>) {
    for key in mapping.keys() {
        match key.as_str() {
            Some(key) if known.contains(&key) => {}
            Some(key) => problems.push(format!(
                "{path}{key} is not supported by wgd-lab (supported: {})",
                known
                    .iter()
                    .map(|known| format!("{path}{known}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => problems.push(format!("{path}{}: expected a string key", show(key))),
        }
    }
}

/// A list of strings (absent is empty).
fn strings(value: Option<&Value>, at: &str, problems: &mut Vec<String>) -> Vec<String> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item.as_str() {
                Some(text) => Some(text.to_owned()),
                None => {
                    problems.push(format!("{at}[{index}]: expected a string"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            problems.push(format!("{at}: expected a list of strings"));
            Vec::new()
        }
    }
}

/// A mapping of names to scalars (strings, numbers, booleans), in file order.
fn scalars(value: Option<&Value>, at: &str, problems: &mut Vec<String>) -> Vec<(String, String)> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Mapping(mapping)) => mapping
            .iter()
            .filter_map(|(key, value)| {
                let Some(key) = key.as_str() else {
                    problems.push(format!("{at}: {}: expected a string key", show(key)));
                    return None;
                };
                let value = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    _ => {
                        problems.push(format!("{at}: {key}: expected a string, number or boolean"));
                        return None;
                    }
                };
                Some((key.to_owned(), value))
            })
            .collect(),
        Some(_) => {
            problems.push(format!("{at}: expected a mapping"));
            Vec::new()
        }
    }
}

fn show(value: &Value) -> String {
    serde_norway::to_string(value)
        .map(|text| text.trim_end().to_owned())
        .unwrap_or_else(|_| kind_of(value).to_owned())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in this crate's directory, so that bind sources resolve.
    fn parse(text: &str) -> Result<Topology, TopologyError> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("x.clab.yml");
        Topology::parse(&file, text)
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text).unwrap_err().problems
    }

    const TWO: &str = "
name: two
topology:
  nodes:
    a:
      kind: linux
      image: wgd:latest
      binds:
        - src:/etc/wgd:ro
        - Cargo.toml:/etc/x.toml
      env:
        WGD_LOG: debug
        N: 3
      sysctls:
        net.ipv4.ip_forward: 1
      cmd: wgd run -c /etc/wgd/wgd.toml
      exec:
        - ip address add 198.18.0.1/30 dev eth1
    b:
      kind: linux
  links:
    - endpoints: [\"a:eth1\", \"b:eth1\"]
";

    #[test]
    fn a_supported_topology_becomes_typed_values() {
        let topology = parse(TWO).unwrap();
        assert_eq!(topology.name, "two");
        assert_eq!(topology.namespace("a"), "two-a");
        let a = &topology.nodes[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.binds.len(), 2);
        assert!(a.binds[0].read_only && !a.binds[1].read_only);
        assert_eq!(a.binds[0].target, Path::new("/etc/wgd"));
        assert!(a.binds[0].source.ends_with("src"));
        assert!(a.binds[0].source.is_absolute());
        assert_eq!(
            a.env,
            [("WGD_LOG".into(), "debug".into()), ("N".into(), "3".into())]
        );
        assert_eq!(a.sysctls, [("net.ipv4.ip_forward".into(), "1".into())]);
        assert_eq!(a.cmd.as_deref(), Some("wgd run -c /etc/wgd/wgd.toml"));
        assert_eq!(a.exec.len(), 1);
        assert_eq!(topology.nodes[1].name, "b");
        assert_eq!(
            topology.links[0].endpoints[1],
            Endpoint {
                node: "b".into(),
                interface: "eth1".into()
            }
        );
    }

    #[test]
    fn an_unsupported_kind_is_named() {
        let text = TWO.replace("    b:\n      kind: linux", "    r1:\n      kind: srl");
        let problems = problems(&text);
        assert!(
            problems.contains(
                &"node \"r1\": kind \"srl\" is not supported by wgd-lab (supported: linux)"
                    .to_owned()
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn errors_start_with_the_file() {
        let error = parse("name: x\n").unwrap_err().to_string();
        assert!(error.ends_with("x.clab.yml: no topology"), "{error}");
    }

    #[test]
    fn a_link_to_an_unknown_node_is_named() {
        let text = format!("{TWO}    - endpoints: [\"a:eth2\", \"r9:eth1\"]\n");
        assert_eq!(
            problems(&text),
            ["link 2: endpoint \"r9:eth1\": no node \"r9\""]
        );
    }

    #[test]
    fn a_duplicate_endpoint_is_named_with_both_links() {
        let text = format!(
            "{TWO}    - endpoints: [\"a:eth2\", \"b:eth2\"]\n    - endpoints: [\"a:eth1\", \"b:eth3\"]\n"
        );
        assert_eq!(
            problems(&text),
            ["endpoint \"a:eth1\" appears twice (links 1 and 3)"]
        );
    }

    #[test]
    fn unsupported_options_are_named_not_ignored() {
        let text = TWO
            .replace(
                "      image: wgd:latest\n",
                "      image: x\n      ports: [\"80:80\"]\n",
            )
            .replace("name: two\n", "name: two\nmgmt:\n  network: x\n")
            .replace("  links:\n", "  kinds: {}\n  links:\n")
            .replace(
                "[\"a:eth1\", \"b:eth1\"]",
                "[\"a:eth1\", \"b:eth1\"]\n      mtu: 1400",
            );
        let problems = problems(&text);
        for expected in [
            "mgmt is not supported by wgd-lab",
            "topology.kinds is not supported by wgd-lab",
            "node \"a\": option \"ports\" is not supported by wgd-lab",
            "link 1: option mtu is not supported by wgd-lab",
        ] {
            assert!(
                problems.iter().any(|problem| problem.starts_with(expected)),
                "{expected:?} not in {problems:?}"
            );
        }
    }

    #[test]
    fn binds_and_endpoints_are_checked() {
        let text = TWO
            .replace("src:/etc/wgd:ro", "missing:/etc/wgd:ro")
            .replace("Cargo.toml:/etc/x.toml", "Cargo.toml:/etc/x.toml:z")
            .replace("\"b:eth1\"", "\"b:a-name-far-too-long\"")
            .replace("net.ipv4.ip_forward", "kernel.hostname");
        let problems = problems(&text);
        for expected in [
            "node \"a\": bind \"missing:/etc/wgd:ro\": source ",
            "node \"a\": bind \"Cargo.toml:/etc/x.toml:z\": option \"z\" is not supported",
            "link 1: endpoint \"b:a-name-far-too-long\": interface name must have 1 to 15",
            "node \"a\": sysctl \"kernel.hostname\" is not supported",
        ] {
            assert!(
                problems.iter().any(|problem| problem.starts_with(expected)),
                "{expected:?} not in {problems:?}"
            );
        }
    }

    #[test]
    fn names_must_be_usable_in_namespace_names() {
        let problems = problems(&TWO.replace("name: two", "name: \"two labs\""));
        assert_eq!(problems, [format!("name \"two labs\": {NAME_RULE}")]);
    }
}
