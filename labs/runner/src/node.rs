//! Running commands inside a node of a lab that is up.
//!
//! A node is a network namespace plus a mount namespace held open by one
//! process (the holder, `sleep infinity`): its binds, its private `/run`
//! and its overlays live there. Every command of the node enters both with
//! `nsenter`, under `env` with the node's environment and a `PATH` that
//! starts with the directory of the `wgd` under test.

use std::process::{Command, Output, Stdio};

use crate::state::{LabState, NodeState};

/// Directories searched after the one holding `wgd`.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A node whose holder runs: commands go in through it.
#[derive(Debug, Clone)]
pub struct NodeShell {
    holder: u32,
    env: Vec<(String, String)>,
}

impl NodeShell {
    /// The node `state` describes, with the environment `env` (from the
    /// topology) and `wgd` from `lab.bin_dir` first on the `PATH`.
    pub fn new(lab: &LabState, state: &NodeState, env: &[(String, String)]) -> Option<Self> {
        let mut full = vec![(
            "PATH".to_owned(),
            format!("{}:{SYSTEM_PATH}", lab.bin_dir.display()),
        )];
        full.extend(env.iter().cloned());
        Some(Self {
            holder: state.holder?,
            env: full,
        })
    }

    /// `argv` wrapped to run inside the node.
    pub fn argv(&self, argv: &[&str]) -> Vec<String> {
        let mut full: Vec<String> = [
            "nsenter",
            "--target",
            &self.holder.to_string(),
            "--mount",
            "--net",
            "--wd=/",
            "--",
            "env",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        full.extend(
            self.env
                .iter()
                .map(|(name, value)| format!("{name}={value}")),
        );
        full.extend(argv.iter().map(|arg| (*arg).to_owned()));
        full
    }

    /// Runs `argv` in the node, whatever its exit status.
    pub fn output(&self, argv: &[&str]) -> wgd_labs::Result<Output> {
        let full = self.argv(argv);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        wgd_labs::host::output(&full)
    }

    /// Runs `argv` in the node: its stdout, or an error naming the command.
    pub fn check(&self, argv: &[&str]) -> wgd_labs::Result<String> {
        let full = self.argv(argv);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        wgd_labs::host::check(&full)
    }

    /// Runs a shell command line in the node, whatever its exit status.
    pub fn sh(&self, script: &str) -> wgd_labs::Result<Output> {
        self.output(&["sh", "-c", script])
    }

    /// A [`Command`] for `argv` in the node, for callers that want the
    /// terminal (`wgd-lab exec`) or a process that outlives them.
    pub fn command(&self, argv: &[&str]) -> Command {
        let full = self.argv(argv);
        let mut command = Command::new(&full[0]);
        command.args(&full[1..]).stdin(Stdio::inherit());
        command
    }
}
