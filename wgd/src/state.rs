//! What wgd remembers about the tunnels it created, so that it touches
//! nothing else and can undo exactly what it did.
//!
//! One JSON file per tunnel under `$WGD_STATE_DIR` (default `/run/wgd`), in
//! a folder per network namespace: interfaces belong to a namespace, and
//! `/run` is shared by all of them. `/run` is cleared at boot, as are the
//! interfaces the records describe. Records hold no key material.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::actual::{Backend, Route, Rule};

pub const DEFAULT_STATE_DIR: &str = "/run/wgd";

/// A tunnel wgd created, and what it added around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRecord {
    pub name: String,
    /// The config file the tunnel came from.
    pub source: PathBuf,
    pub backend: Backend,
    /// Routes wgd added (only these are ever removed).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Policy rules wgd added for full-tunnel mode.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// `net.ipv4.conf.all.src_valid_mark` before full-tunnel mode set it, to
    /// put it back on `down`.
    #[serde(default)]
    pub src_valid_mark_before: Option<String>,
    /// Run when the tunnel is taken down, even by name.
    #[serde(default)]
    pub pre_down: Vec<String>,
    #[serde(default)]
    pub post_down: Vec<String>,
}

/// The folder of records for the current network namespace.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// `$WGD_STATE_DIR/net-<inode of this namespace>/tunnels`.
    pub fn for_this_namespace() -> io::Result<Self> {
        let root = std::env::var_os("WGD_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let inode = fs::metadata("/proc/self/ns/net")?.ino();
        Ok(Self::at(root.join(format!("net-{inode}")).join("tunnels")))
    }

    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Every record; unreadable files are skipped with a warning rather
    /// than stopping wgd from managing the rest.
    pub fn load_all(&self) -> io::Result<BTreeMap<String, TunnelRecord>> {
        let mut records = BTreeMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(records),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            match fs::read(&path).map(|bytes| serde_json::from_slice::<TunnelRecord>(&bytes)) {
                Ok(Ok(record)) => {
                    records.insert(record.name.clone(), record);
                }
                Ok(Err(error)) => {
                    tracing::warn!(file = %path.display(), %error, "ignoring unreadable state record")
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "ignoring unreadable state record")
                }
            }
        }
        Ok(records)
    }

    /// Writes a record atomically (a crash leaves the old or the new one).
    pub fn save(&self, record: &TunnelRecord) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}.json", record.name));
        let temporary = self.dir.join(format!(".{}.json.tmp", record.name));
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        fs::write(&temporary, bytes)?;
        fs::rename(&temporary, &path)
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(format!("{name}.json"))) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join("tunnels"));
        assert!(state.load_all().unwrap().is_empty());
        let record = TunnelRecord {
            name: "wg-b".into(),
            source: "/etc/wgd/wgd.toml".into(),
            backend: Backend::Userspace,
            routes: vec![Route {
                prefix: "10.1.0.0/16".parse().unwrap(),
                table: 254,
            }],
            rules: vec![Rule::MainSuppressDefault { ipv6: false }],
            src_valid_mark_before: Some("0".into()),
            pre_down: vec![],
            post_down: vec!["echo %i".into()],
        };
        state.save(&record).unwrap();
        assert_eq!(state.load_all().unwrap().get("wg-b"), Some(&record));
        state.remove("wg-b").unwrap();
        state.remove("wg-b").unwrap();
        assert!(state.load_all().unwrap().is_empty());
    }
}
