//! What wgd remembers about the tunnels it created, so that it touches
//! nothing else and can undo exactly what it did.
//!
//! One JSON file per tunnel under `$WGD_STATE_DIR` (default `/run/wgd`), in
//! a folder per network namespace (by its cookie): interfaces belong to a namespace, and
//! `/run` is shared by all of them. `/run` is cleared at boot, as are the
//! interfaces the records describe. Records hold no key material.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::actual::{Backend, Route, Rule};
use crate::config::InterfaceAddress;

pub const DEFAULT_STATE_DIR: &str = "/run/wgd";

/// A tunnel wgd created, and what it added around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRecord {
    pub name: String,
    /// The config file the tunnel came from.
    pub source: PathBuf,
    pub backend: Backend,
    /// The interface index wgd created. An interface of this name with
    /// another index was made by someone else after wgd's went away.
    #[serde(default)]
    pub ifindex: u32,
    /// Each peer's endpoint as last applied from the config (public key in
    /// base64 → address). The device may have roamed since; only a change
    /// in the config is enforced.
    #[serde(default)]
    pub endpoints: BTreeMap<String, SocketAddr>,
    /// Addresses wgd added (only these are ever removed): not one a hook
    /// or an operator added, even when the config names it too. `None` in
    /// records written before wgd kept them; those count the config's
    /// addresses as wgd's, see `made_addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<InterfaceAddress>>,
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

impl TunnelRecord {
    /// Whether `link` is the interface this record describes (records
    /// written before indexes were kept trust the name).
    pub fn owns(&self, link: &crate::actual::Link) -> bool {
        self.ifindex == 0 || self.ifindex == link.index
    }

    /// The addresses wgd added to the interface. A record from before wgd
    /// kept them has none: then the addresses the config names are taken
    /// for wgd's, as that wgd added exactly those.
    pub fn made_addresses<'a>(
        &'a self,
        configured: &'a [InterfaceAddress],
    ) -> &'a [InterfaceAddress] {
        self.addresses.as_deref().unwrap_or(configured)
    }

    /// The record of a tunnel just created: nothing added around it yet.
    pub fn new(name: &str, source: PathBuf, backend: Backend) -> Self {
        Self {
            name: name.to_owned(),
            source,
            backend,
            ifindex: 0,
            endpoints: BTreeMap::new(),
            addresses: Some(vec![]),
            routes: vec![],
            rules: vec![],
            src_valid_mark_before: None,
            pre_down: vec![],
            post_down: vec![],
        }
    }
}

/// The folder of records for the current network namespace.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// `$WGD_STATE_DIR/netns-<cookie>/tunnels`: the namespace's cookie is
    /// never reused while the machine runs, unlike its inode, so a new
    /// namespace never inherits the records of a deleted one. Kernels
    /// without cookies (before 5.14) fall back to the inode.
    pub fn for_this_namespace() -> io::Result<Self> {
        let root = std::env::var_os("WGD_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let folder = match namespace_cookie() {
            Ok(cookie) => format!("netns-{cookie}"),
            Err(_) => format!("net-{}", fs::metadata("/proc/self/ns/net")?.ino()),
        };
        Ok(Self::at(root.join(folder).join("tunnels")))
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

/// `SO_NETNS_COOKIE` of a socket in this namespace (Linux 5.14+).
#[allow(unsafe_code)]
pub fn namespace_cookie() -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // Not in the libc crate yet; the value is the same on every architecture.
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // The wildcard address binds whatever the namespace's interfaces are
    // (even with `lo` down).
    let socket =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    let mut cookie: u64 = 0;
    let mut length = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is a live socket; the kernel writes at most `length`
    // bytes into `cookie`, which is that large.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut length,
        )
    };
    if result == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_namespace_has_a_cookie() {
        // Any kernel this runs on in CI has them; a zero would mean the call lied.
        assert_ne!(namespace_cookie().unwrap(), 0);
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join("tunnels"));
        assert!(state.load_all().unwrap().is_empty());
        let record = TunnelRecord {
            name: "wg-b".into(),
            source: "/etc/wgd/wgd.toml".into(),
            backend: Backend::Userspace,
            ifindex: 7,
            endpoints: [("peer".to_owned(), "192.0.2.1:51820".parse().unwrap())].into(),
            addresses: Some(vec!["172.20.1.1/32 peer 172.20.2.1/32".parse().unwrap()]),
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
        let text = std::fs::read_to_string(state.path().join("wg-b.json")).unwrap();
        assert!(
            text.contains("\"172.20.1.1/32 peer 172.20.2.1/32\""),
            "{text}"
        );
        state.remove("wg-b").unwrap();
        state.remove("wg-b").unwrap();
        assert!(state.load_all().unwrap().is_empty());
    }

    #[test]
    fn a_record_from_before_addresses_were_kept_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().to_path_buf());
        std::fs::write(
            dir.path().join("wg-old.json"),
            r#"{"name": "wg-old", "source": "/etc/wgd/wgd.toml", "backend": "userspace",
                "ifindex": 4, "routes": [], "rules": []}"#,
        )
        .unwrap();
        let record = &state.load_all().unwrap()["wg-old"];
        assert_eq!(record.addresses, None);
        let configured: Vec<InterfaceAddress> = vec!["10.0.0.1/24".parse().unwrap()];
        assert_eq!(record.made_addresses(&configured), configured.as_slice());
        let fresh = TunnelRecord::new("wg-new", "/x".into(), Backend::Kernel);
        assert!(fresh.made_addresses(&configured).is_empty());
    }
}
