//! Bringing a lab up and taking it down.
//!
//! `up` turns a [`Topology`] into namespaces, in this order: per node a
//! network namespace (`<lab>-<node>`, its `net.*` sysctls set), a holder
//! process keeping a private mount namespace, in which the node gets its
//! own `/run` and `/var/tmp` (as a container has: `/run/wgd`,
//! `/run/wireguard`, `/run/frr` are the node's own, so that two nodes or
//! two labs may use the same socket paths and interface names) and its binds (a missing target is
//! created in an overlay over its nearest existing parent, never in the
//! host's file system); then the links (veth pairs named as the endpoints,
//! made inside the namespaces so no name ever exists on the host); then
//! each node's `cmd`, kept running in the background; then each node's
//! `exec` commands, in order. Each thing is recorded in the lab's
//! [`LabState`] before it is made.
//!
//! `down` works from the state alone: it stops every process in the lab's
//! namespaces (and any recorded process still in one of them), deletes the
//! namespaces, which removes every interface in them, and removes the
//! state directory, which holds everything else the lab made. It is
//! idempotent, and works after `up` was killed at any point.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::node::NodeShell;
use crate::state::{LabState, NodeState, lab_dir, node_dir};
use crate::topology::{Bind, Node, Topology};

/// Directories a node has of its own, as a container does (the node's
/// directory under the lab's state → where the node sees it): /run for
/// daemons' sockets and pid files (wgd, wireguard-go, FRR), /var/tmp for
/// what daemons keep there (FRR's per-process directories). /run comes
/// last: the node's own directories are under the host's /run, which the
/// node no longer sees once its own is mounted.
const PRIVATE_DIRECTORIES: &[(&str, &str)] = &[("var-tmp", "/var/tmp"), ("run", "/run")];

/// How long a holder gets to enter its mount namespace.
const HOLDER_DEADLINE: Duration = Duration::from_secs(10);

/// Makes the lab of `topology`, running `wgd` from `bin_dir`. On error the
/// lab is left as far as it got, for inspection; `down` removes it.
pub fn up(topology: &Topology, bin_dir: &Path) -> anyhow::Result<LabState> {
    if let Some(state) = LabState::load(&topology.name)? {
        bail!(
            "lab \"{}\" is already up (state in {}): run `wgd-lab down {}` first",
            topology.name,
            state.dir().display(),
            state.file.display()
        );
    }
    let mut state = LabState {
        lab: topology.name.clone(),
        file: topology.file.clone(),
        bin_dir: bin_dir.to_owned(),
        nodes: Vec::new(),
    };
    state.save().context("writing the lab's state")?;

    for node in &topology.nodes {
        make_node(topology, node, &mut state).with_context(|| format!("node \"{}\"", node.name))?;
    }
    for (index, link) in topology.links.iter().enumerate() {
        let [a, b] = &link.endpoints;
        let (a_ns, b_ns) = (topology.namespace(&a.node), topology.namespace(&b.node));
        wgd_labs::host::check(&[
            "ip",
            "-n",
            &a_ns,
            "link",
            "add",
            &a.interface,
            "type",
            "veth",
            "peer",
            "name",
            &b.interface,
            "netns",
            &b_ns,
        ])
        .and_then(|_| {
            wgd_labs::host::check(&["ip", "-n", &a_ns, "link", "set", &a.interface, "up"])
        })
        .and_then(|_| {
            wgd_labs::host::check(&["ip", "-n", &b_ns, "link", "set", &b.interface, "up"])
        })
        .with_context(|| format!("link {} ({a} -- {b})", index + 1))?;
    }
    for node in &topology.nodes {
        if let Some(cmd) = &node.cmd {
            start_daemon(topology, node, cmd, &mut state)
                .with_context(|| format!("node \"{}\": cmd \"{cmd}\"", node.name))?;
        }
    }
    for node in &topology.nodes {
        let shell = shell(&state, topology, &node.name)?;
        for command in &node.exec {
            let output = shell.sh(command)?;
            if !output.status.success() {
                bail!(
                    "node \"{}\": exec \"{command}\" failed ({}){}{}",
                    node.name,
                    output.status,
                    section("stderr", &output.stderr),
                    section("stdout", &output.stdout),
                );
            }
        }
    }
    Ok(state)
}

/// The shell of `node` of a lab that is up.
pub fn shell(state: &LabState, topology: &Topology, node: &str) -> anyhow::Result<NodeShell> {
    let env = topology
        .node(node)
        .map(|node| node.env.as_slice())
        .unwrap_or_default();
    state
        .node(node)
        .and_then(|recorded| NodeShell::new(state, recorded, env))
        .with_context(|| format!("node \"{node}\" is not up in lab \"{}\"", state.lab))
}

fn section(label: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!("\n{label}:\n{text}")
    }
}

fn make_node(topology: &Topology, node: &Node, state: &mut LabState) -> anyhow::Result<()> {
    let namespace = topology.namespace(&node.name);
    // Checked before it is recorded: `down` must not delete what is not ours.
    if wgd_labs::host::namespace_exists(&namespace) {
        bail!("namespace {namespace} exists already (another lab, or a leftover of one?)");
    }
    state.nodes.push(NodeState {
        name: node.name.clone(),
        namespace: namespace.clone(),
        ..NodeState::default()
    });
    state.save()?;
    wgd_labs::host::check(&["ip", "netns", "add", &namespace])?;
    let inode = std::fs::metadata(Path::new("/run/netns").join(&namespace))?.ino();
    record(state, &node.name, |recorded| {
        recorded.netns_inode = Some(inode)
    })?;
    wgd_labs::host::check(&["ip", "-n", &namespace, "link", "set", "lo", "up"])?;
    for (name, value) in &node.sysctls {
        wgd_labs::host::check(&[
            "ip",
            "netns",
            "exec",
            &namespace,
            "sysctl",
            "-qw",
            &format!("{name}={value}"),
        ])?;
    }

    // `ip netns exec` gives the holder a mount namespace with the node's
    // /sys; `unshare` makes it private, so the mounts below stay in it.
    let dir = node_dir(&topology.name, &node.name);
    std::fs::create_dir_all(&dir)?;
    let holder = spawn_detached(
        &[
            "ip",
            "netns",
            "exec",
            &namespace,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sleep",
            "infinity",
        ],
        &dir.join("holder.log"),
    )?;
    record(state, &node.name, |recorded| recorded.holder = Some(holder))?;
    let own_mounts = std::fs::read_link("/proc/self/ns/mnt")?;
    let mut entered = false;
    wgd_labs::wait_for(
        HOLDER_DEADLINE,
        "the holder to enter its mount namespace",
        || {
            let comm = std::fs::read_to_string(format!("/proc/{holder}/comm")).unwrap_or_default();
            let mounts = std::fs::read_link(format!("/proc/{holder}/ns/mnt")).ok();
            entered = comm.trim() == "sleep" && mounts.is_some_and(|mounts| mounts != own_mounts);
            entered
        },
    )?;

    // Overlays first: their layers are under the host's /run, which the
    // node stops seeing once its own /run is mounted.
    let shell = shell(state, topology, &node.name)?;
    let overlays = overlays(&node.binds);
    if overlays.iter().any(|anchor| anchor == Path::new("/")) {
        bail!(
            "a bind target whose top directory is missing on the host is not supported (overlaying / would hide the host's mounts)"
        );
    }
    for (index, anchor) in overlays.iter().enumerate() {
        let layer = dir.join("overlay").join(index.to_string());
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        std::fs::create_dir_all(&upper)?;
        std::fs::create_dir_all(&work)?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            path(anchor)?,
            path(&upper)?,
            path(&work)?
        );
        shell
            .check(&[
                "mount",
                "-t",
                "overlay",
                "wgd-lab",
                "-o",
                &options,
                path(anchor)?,
            ])
            .with_context(|| {
                format!(
                    "overlaying {} to create bind targets in it",
                    anchor.display()
                )
            })?;
    }
    for (own, shown) in PRIVATE_DIRECTORIES {
        let own = dir.join(own);
        std::fs::create_dir_all(&own)?;
        shell.check(&["mount", "--bind", path(&own)?, shown])?;
    }
    for bind in &node.binds {
        mount_bind(&shell, bind)
            .with_context(|| format!("bind {}:{}", bind.source.display(), bind.target.display()))?;
    }
    Ok(())
}

/// The nearest existing parents of missing bind targets outside the node's
/// private directories, each
/// to be overlaid (shallowest first, once each), so that the targets can be
/// created there without touching the host's file system.
fn overlays(binds: &[Bind]) -> Vec<PathBuf> {
    let mut anchors: Vec<PathBuf> = binds
        .iter()
        .filter(|bind| {
            let private = PRIVATE_DIRECTORIES
                .iter()
                .any(|(_, shown)| bind.target.starts_with(shown));
            !private && !bind.target.exists()
        })
        .filter_map(|bind| {
            bind.target
                .ancestors()
                .skip(1)
                .find(|dir| dir.is_dir())
                .map(Path::to_owned)
        })
        .collect();
    anchors.sort_by_key(|anchor| anchor.components().count());
    anchors.dedup();
    anchors
}

/// Shows `bind.source` at `bind.target` in the node, creating the target
/// (in an overlay or the node's /run) if it is missing.
fn mount_bind(shell: &NodeShell, bind: &Bind) -> anyhow::Result<()> {
    let target = path(&bind.target)?;
    let source = path(&bind.source)?;
    for (_, shown) in PRIVATE_DIRECTORIES {
        if bind.source.starts_with(shown) {
            bail!("a bind source under {shown} is not supported (the node has its own {shown})");
        }
    }
    let exists = shell.output(&["test", "-e", target])?.status.success();
    if !exists {
        if bind.source.is_dir() {
            shell.check(&["mkdir", "-p", target])?;
        } else {
            let parent = bind.target.parent().unwrap_or(Path::new("/"));
            shell.check(&["mkdir", "-p", path(parent)?])?;
            shell.check(&["touch", target])?;
        }
    }
    shell.check(&["mount", "--bind", source, target])?;
    if bind.read_only {
        shell.check(&["mount", "-o", "remount,bind,ro", target])?;
    }
    Ok(())
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{}: not UTF-8", path.display()))
}

fn start_daemon(
    topology: &Topology,
    node: &Node,
    cmd: &str,
    state: &mut LabState,
) -> anyhow::Result<()> {
    let shell = shell(state, topology, &node.name)?;
    let log = node_dir(&topology.name, &node.name).join("cmd.log");
    // `exec`, so that the recorded pid is the daemon, not a shell.
    let argv = shell.argv(&["sh", "-c", &format!("exec {cmd}")]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let pid = spawn_detached(&argv, &log)?;
    record(state, &node.name, |recorded| recorded.daemon = Some(pid))
}

/// Starts `argv` in its own process group (so that a Ctrl-C meant for
/// `wgd-lab` does not reach it), output to `log`, and does not wait: it
/// outlives us.
fn spawn_detached(argv: &[&str], log: &Path) -> anyhow::Result<u32> {
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting `{}`", wgd_labs::host::command_line(argv)))?;
    Ok(child.id())
}

fn record(
    state: &mut LabState,
    node: &str,
    change: impl FnOnce(&mut NodeState),
) -> anyhow::Result<()> {
    if let Some(recorded) = state.node_mut(node) {
        change(recorded);
    }
    state.save().context("writing the lab's state")
}

/// What `down` did, for its report.
#[derive(Debug, Default)]
pub struct Removed {
    pub namespaces: Vec<String>,
    pub processes: usize,
    pub directory: Option<PathBuf>,
}

/// Removes everything lab `lab` made, as its state records it.
pub fn down(lab: &str) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    let dir = lab_dir(lab);
    let state = match LabState::load(lab) {
        Ok(state) => state,
        // A damaged state still names the directory: remove that at least.
        Err(error) => {
            eprintln!("wgd-lab: {error}; removing {} only", dir.display());
            None
        }
    };
    // Every node is tried, whatever failed before it; the state stays
    // for another `down` if anything failed.
    let mut failures = Vec::new();
    if let Some(state) = &state {
        for node in &state.nodes {
            let before = wgd_labs::host::namespace_pids(&node.namespace).len();
            if wgd_labs::host::namespace_exists(&node.namespace) {
                match wgd_labs::host::delete_namespace(&node.namespace) {
                    Ok(survivors) if survivors.is_empty() => {
                        removed.namespaces.push(node.namespace.clone());
                        removed.processes += before;
                    }
                    Ok(survivors) => failures.push(format!(
                        "processes {survivors:?} survive in namespace {}",
                        node.namespace
                    )),
                    Err(error) => {
                        failures.push(format!("deleting namespace {}: {error}", node.namespace))
                    }
                }
            }
            // A recorded process outside any namespace we could list (its
            // namespace deleted by an earlier, interrupted `down`).
            for pid in [node.holder, node.daemon].into_iter().flatten() {
                if node.netns_inode.is_some() && netns_inode(pid) == node.netns_inode {
                    let _ = wgd_labs::host::check(&["kill", "-KILL", &pid.to_string()]);
                    removed.processes += 1;
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    if dir.exists() {
        // The node's mounts lived in its holder's mount namespace, gone
        // with the holder; nothing is mounted here any more.
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        removed.directory = Some(dir);
    }
    Ok(removed)
}

fn netns_inode(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|meta| meta.ino())
}
