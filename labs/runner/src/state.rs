//! What a running lab is made of, kept in `/run/wgd-lab/<lab>/state.json`.
//!
//! `up` records each thing before it makes it (a namespace's name before
//! `ip netns add`, a process's id as soon as it runs), so that `down` can
//! remove everything even after `up` was killed midway, and `check`,
//! `exec` and `down` find the nodes from another process. The directory
//! also holds each node's private `/run`, its overlays and logs, and the
//! SVG of the last report: `down` removes it whole.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where labs keep their state: one directory per lab.
pub const STATE_ROOT: &str = "/run/wgd-lab";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub lab: String,
    /// The topology file `up` read.
    pub file: PathBuf,
    /// The directory whose `wgd` node commands run.
    pub bin_dir: PathBuf,
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub namespace: String,
    /// The network namespace's inode: a recorded process is killed only if
    /// it is still in this namespace (its pid may have been reused).
    pub netns_inode: Option<u64>,
    /// The process holding the node's mount namespace; commands enter it.
    pub holder: Option<u32>,
    /// The node's `cmd`, kept running.
    pub daemon: Option<u32>,
}

/// The state directory of `lab`.
pub fn lab_dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

impl LabState {
    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.lab)
    }

    /// The state of `lab`, if it is up (or half up).
    pub fn load(lab: &str) -> io::Result<Option<Self>> {
        let path = lab_dir(lab).join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {error}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the state whole (a new file renamed over the old, so a crash
    /// never leaves half a file).
    pub fn save(&self) -> io::Result<()> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)?;
        let temporary = dir.join("state.json.new");
        let text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&temporary, text)?;
        std::fs::rename(temporary, dir.join("state.json"))
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|node| node.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeState> {
        self.nodes.iter_mut().find(|node| node.name == name)
    }
}

/// The node's own directory in the lab's state: its `/run`, overlays, logs.
pub fn node_dir(lab: &str, node: &str) -> PathBuf {
    lab_dir(lab).join("nodes").join(node)
}
