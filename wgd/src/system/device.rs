//! WireGuard devices: the kernel module over generic netlink, or a
//! userspace implementation over its UAPI socket, both through
//! `defguard_wireguard_rs`. Only its per-peer and whole-device calls are
//! used: its `create_interface` (userspace) embeds boringtun and its
//! `configure_peer_routing` is wg-quick's route hijack.
//!
//! Userspace devices are `wireguard-go` processes that wgd starts: detached
//! for `wgd up`, or as supervised children (`-f`) for `wgd run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};
use ipnet::IpNet;

use crate::actual::{self, Backend};
use crate::config::PeerConfig;
use crate::keys::{PresharedKey, PrivateKey, PublicKey};

/// Where userspace implementations put their UAPI sockets (all namespaces share it).
pub const UAPI_DIR: &str = "/var/run/wireguard";

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{tunnel}: {what}: {detail}")]
    Api {
        tunnel: String,
        what: &'static str,
        detail: String,
    },
    #[error("{tunnel}: cannot start {program}: {detail}")]
    Spawn {
        tunnel: String,
        program: String,
        detail: String,
    },
    #[error(
        "no WireGuard kernel module here and wireguard-go was not found on PATH; install it (apt-get install wireguard-go) or set [daemon] wireguard_go"
    )]
    NoUserspace,
}

pub fn uapi_socket(name: &str) -> PathBuf {
    Path::new(UAPI_DIR).join(format!("{name}.sock"))
}

/// Whether the kernel can make WireGuard interfaces.
pub fn kernel_module_loaded() -> bool {
    Path::new("/sys/module/wireguard").exists()
}

/// The userspace implementation: the configured one, or `wireguard-go` on PATH.
pub fn find_wireguard_go(configured: Option<&Path>) -> Result<PathBuf, DeviceError> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("wireguard-go"))
        .find(|candidate| candidate.is_file())
        .ok_or(DeviceError::NoUserspace)
}

fn mask(prefix: &IpNet) -> IpAddrMask {
    IpAddrMask::new(prefix.addr(), prefix.prefix_len())
}

fn to_wire_peer(peer: &PeerConfig) -> Peer {
    let mut wire = Peer::new(Key::new(*peer.public_key.as_bytes()));
    // An all-zero key clears a preshared key, as `wg set ... preshared-key /dev/null` does.
    wire.preshared_key = Some(Key::new(
        peer.preshared_key
            .as_ref()
            .map(|key| *key.as_bytes())
            .unwrap_or([0; 32]),
    ));
    wire.endpoint = peer.endpoint.as_ref().map(|endpoint| endpoint.address);
    wire.persistent_keepalive_interval = Some(peer.persistent_keepalive.unwrap_or(0));
    wire.allowed_ips = peer.allowed_ips.iter().map(mask).collect();
    wire
}

fn from_wire_host(host: Host) -> actual::Device {
    let public_key = host
        .private_key
        .as_ref()
        .map(|key| PrivateKey::from_bytes(key.as_array()).public_key());
    let mut peers: Vec<actual::Peer> = host
        .peers
        .into_values()
        .map(|peer| actual::Peer {
            public_key: PublicKey::from_bytes(peer.public_key.as_array()),
            preshared_key: peer
                .preshared_key
                .map(|key| key.as_array())
                .filter(|bytes| bytes != &[0; 32])
                .map(PresharedKey::from_bytes),
            endpoint: peer.endpoint,
            persistent_keepalive: peer
                .persistent_keepalive_interval
                .filter(|seconds| *seconds != 0),
            allowed_ips: peer
                .allowed_ips
                .iter()
                .filter_map(|allowed| IpNet::new(allowed.address, allowed.cidr).ok())
                .collect(),
            last_handshake: peer
                .last_handshake
                .filter(|time| *time != std::time::UNIX_EPOCH),
            rx_bytes: peer.rx_bytes,
            tx_bytes: peer.tx_bytes,
        })
        .collect();
    peers.sort_by_key(|peer| peer.public_key);
    actual::Device {
        public_key,
        listen_port: host.listen_port,
        fwmark: host.fwmark.filter(|mark| *mark != 0),
        peers,
    }
}

/// One WireGuard device, by interface name.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    pub name: String,
    pub backend: Backend,
}

impl DeviceHandle {
    pub fn new(name: &str, backend: Backend) -> Self {
        Self {
            name: name.to_owned(),
            backend,
        }
    }

    fn error(&self, what: &'static str, detail: impl ToString) -> DeviceError {
        DeviceError::Api {
            tunnel: self.name.clone(),
            what,
            detail: detail.to_string(),
        }
    }

    pub fn read(&self) -> Result<actual::Device, DeviceError> {
        let host = match self.backend {
            Backend::Kernel => WGApi::<Kernel>::new(self.name.clone())
                .and_then(|api| api.read_interface_data())
                .map_err(|error| self.error("read device", error))?,
            Backend::Userspace => WGApi::<Userspace>::new(self.name.clone())
                .map_err(|error| self.error("read device", error))?
                .read_host()
                .map_err(|error| self.error("read device", error))?,
        };
        Ok(from_wire_host(host))
    }

    /// Writes key, port, fwmark and the whole peer list (peers not listed
    /// are removed). On the kernel this also sets the MTU, and removes
    /// every address of the interface: the library's kernel path flushes
    /// them, and cannot add a point-to-point one, so the planner adds the
    /// config's back after (see `plan`).
    pub fn write(
        &self,
        private_key: &PrivateKey,
        listen_port: Option<u16>,
        fwmark: Option<u32>,
        peers: &[PeerConfig],
        mtu: Option<u32>,
    ) -> Result<(), DeviceError> {
        let key = Key::new(*private_key.as_bytes());
        match self.backend {
            Backend::Userspace => {
                let mut host = Host::new(listen_port.unwrap_or(0), key);
                host.fwmark = fwmark;
                for peer in peers {
                    host.peers
                        .insert(Key::new(*peer.public_key.as_bytes()), to_wire_peer(peer));
                }
                WGApi::<Userspace>::new(self.name.clone())
                    .map_err(|error| self.error("configure device", error))?
                    .write_host(&host)
                    .map_err(|error| self.error("configure device", error))
            }
            Backend::Kernel => {
                let configuration = InterfaceConfiguration {
                    name: self.name.clone(),
                    prvkey: key.to_string(),
                    addresses: vec![],
                    port: listen_port.unwrap_or(0),
                    peers: peers.iter().map(to_wire_peer).collect(),
                    mtu,
                    fwmark,
                };
                WGApi::<Kernel>::new(self.name.clone())
                    .and_then(|api| api.configure_interface(&configuration))
                    .map_err(|error| self.error("configure device", error))
            }
        }
    }

    /// Sets a userspace device's key, port and fwmark without touching its
    /// peers. The device library only writes whole devices (replacing every
    /// peer, which drops their sessions), so this speaks the UAPI itself:
    /// one `set` without `replace_peers`.
    pub fn set_interface(
        &self,
        private_key: &PrivateKey,
        listen_port: Option<u16>,
        fwmark: Option<u32>,
    ) -> Result<(), DeviceError> {
        use std::io::{BufRead, Write};
        let mut request = zeroize::Zeroizing::new(String::from("set=1\n"));
        request.push_str("private_key=");
        for byte in private_key.as_bytes() {
            request.push_str(&format!("{byte:02x}"));
        }
        request.push('\n');
        if let Some(port) = listen_port {
            request.push_str(&format!("listen_port={port}\n"));
        }
        request.push_str(&format!("fwmark={}\n\n", fwmark.unwrap_or(0)));
        let mut socket = std::os::unix::net::UnixStream::connect(uapi_socket(&self.name))
            .map_err(|error| self.error("set device", error))?;
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|error| self.error("set device", error))?;
        socket
            .write_all(request.as_bytes())
            .map_err(|error| self.error("set device", error))?;
        for line in std::io::BufReader::new(socket).lines() {
            let line = line.map_err(|error| self.error("set device", error))?;
            if let Some(errno) = line.strip_prefix("errno=") {
                return match errno {
                    "0" => Ok(()),
                    other => Err(self.error(
                        "set device",
                        format!("the device refused it (errno {other})"),
                    )),
                };
            }
        }
        Err(self.error("set device", "no answer from the device"))
    }

    /// Adds or updates one peer; its session and the others' are kept.
    pub fn set_peer(&self, peer: &PeerConfig) -> Result<(), DeviceError> {
        let wire = to_wire_peer(peer);
        let result =
            match self.backend {
                Backend::Kernel => WGApi::<Kernel>::new(self.name.clone())
                    .and_then(|api| api.configure_peer(&wire)),
                Backend::Userspace => WGApi::<Userspace>::new(self.name.clone())
                    .and_then(|api| api.configure_peer(&wire)),
            };
        result.map_err(|_| {
            self.error(
                "set peer",
                format!("peer {} was refused by the device", peer.public_key),
            )
        })
    }

    pub fn remove_peer(&self, public_key: &PublicKey) -> Result<(), DeviceError> {
        let key = Key::new(*public_key.as_bytes());
        let result = match self.backend {
            Backend::Kernel => {
                WGApi::<Kernel>::new(self.name.clone()).and_then(|api| api.remove_peer(&key))
            }
            Backend::Userspace => {
                WGApi::<Userspace>::new(self.name.clone()).and_then(|api| api.remove_peer(&key))
            }
        };
        result.map_err(|error| self.error("remove peer", error))
    }
}

/// Starts `wireguard-go` for `name`. Detached (`wireguard-go NAME`, which
/// forks and returns) when `supervised` is false; otherwise in the
/// foreground (`-f`) as a child in its own process group, so that the
/// daemon can restart it if it dies and can itself exit leaving it running.
/// Returns once the UAPI socket answers.
pub async fn start_userspace(
    program: &Path,
    name: &str,
    supervised: bool,
    log: &Path,
) -> Result<Option<tokio::process::Child>, DeviceError> {
    let spawn_error = |detail: String| DeviceError::Spawn {
        tunnel: name.to_owned(),
        program: program.display().to_string(),
        detail,
    };
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| spawn_error(format!("create {}: {error}", parent.display())))?;
    }
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|error| spawn_error(format!("open log {}: {error}", log.display())))?;
    let mut command = tokio::process::Command::new(program);
    command.stdin(Stdio::null());
    let child = if supervised {
        command
            .arg("-f")
            .arg(name)
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(
                log_file
                    .try_clone()
                    .map_err(|error| spawn_error(error.to_string()))?,
            )
            .stderr(log_file)
            .process_group(0)
            .kill_on_drop(false);
        Some(
            command
                .spawn()
                .map_err(|error| spawn_error(error.to_string()))?,
        )
    } else {
        // The detached process keeps its output: a log file, never a pipe
        // (a pipe would stay open and `wgd up` would never return).
        command
            .arg(name)
            .env_remove("WG_PROCESS_FOREGROUND")
            .stdout(
                log_file
                    .try_clone()
                    .map_err(|error| spawn_error(error.to_string()))?,
            )
            .stderr(log_file);
        let status = command
            .status()
            .await
            .map_err(|error| spawn_error(error.to_string()))?;
        if !status.success() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            let last = said.lines().last().unwrap_or_default().to_owned();
            return Err(spawn_error(format!("{status}: {last}")));
        }
        None
    };
    let socket = uapi_socket(name);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            return Err(spawn_error(format!(
                "its UAPI socket {} did not appear within 10 s (log: {})",
                socket.display(),
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a userspace device: removing its socket makes wireguard-go exit,
/// which removes its interface.
pub fn stop_userspace(name: &str) {
    let _ = std::fs::remove_file(uapi_socket(name));
}
