//! What `wgd status` shows and the API returns: tunnels and peers with
//! their state, built from an `ActualState` and wgd's records. Public keys
//! only; private and preshared keys have no field here to leak into.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use wgd_proto::v1 as api;

use crate::actual::{ActualState, Backend};
use crate::config::Config;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub tunnels: Vec<TunnelStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    pub name: String,
    pub up: bool,
    pub backend: Option<Backend>,
    pub public_key: Option<String>,
    pub listen_port: Option<u16>,
    /// Every address of the interface, with its prefix length.
    pub addresses: Vec<String>,
    /// The far end of each point-to-point address, by the address as in
    /// `addresses` (`"172.20.1.1/32": "172.20.2.1/32"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peer_addresses: BTreeMap<String, String>,
    pub mtu: Option<u32>,
    pub peers: Vec<PeerStatus>,
    /// Why the tunnel is not up, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: Option<String>,
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub latest_handshake_age_seconds: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
    /// A handshake happened within the dead interval.
    pub alive: bool,
}

/// Builds the status of the recorded tunnels (and, with a config, its
/// tunnels not created yet), as of `now`.
pub fn collect(
    actual: &ActualState,
    config: Option<&Config>,
    dead_after: Duration,
    now: SystemTime,
) -> Status {
    // Recorded tunnels whose interface is gone are stale (or belong to an
    // earlier namespace that had this one's inode); configured ones show
    // even when missing.
    let mut names: Vec<String> = actual
        .records
        .keys()
        .filter(|name| actual.links.contains_key(*name))
        .cloned()
        .collect();
    if let Some(config) = config {
        for tunnel in &config.tunnels {
            if !names.contains(&tunnel.name.to_string()) {
                names.push(tunnel.name.to_string());
            }
        }
    }
    names.sort();
    let peer_name = |tunnel: &str, key: &crate::keys::PublicKey| {
        config?
            .tunnels
            .iter()
            .find(|candidate| candidate.name.as_str() == tunnel)?
            .peers
            .iter()
            .find(|peer| &peer.public_key == key)?
            .name
            .clone()
    };
    let tunnels = names
        .into_iter()
        .map(|name| {
            let Some(link) = actual.links.get(&name) else {
                return TunnelStatus {
                    reason: Some("interface not present".into()),
                    name,
                    up: false,
                    backend: None,
                    public_key: None,
                    listen_port: None,
                    addresses: vec![],
                    peer_addresses: BTreeMap::new(),
                    mtu: None,
                    peers: vec![],
                };
            };
            let device = link.device.as_ref();
            let reason = match (link.up, device) {
                (_, None) => Some("WireGuard device not readable".into()),
                (false, _) => Some("interface is down".into()),
                _ => None,
            };
            let peers = device
                .map(|device| {
                    device
                        .peers
                        .iter()
                        .map(|peer| {
                            let age = peer
                                .last_handshake
                                .map(|time| now.duration_since(time).unwrap_or_default().as_secs());
                            PeerStatus {
                                name: peer_name(&name, &peer.public_key),
                                public_key: peer.public_key.to_string(),
                                endpoint: peer.endpoint.map(|endpoint| endpoint.to_string()),
                                allowed_ips: peer
                                    .allowed_ips
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect(),
                                latest_handshake_age_seconds: age,
                                rx_bytes: peer.rx_bytes,
                                tx_bytes: peer.tx_bytes,
                                persistent_keepalive: peer.persistent_keepalive,
                                alive: age.is_some_and(|age| age <= dead_after.as_secs()),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            TunnelStatus {
                up: reason.is_none(),
                reason,
                backend: link.backend,
                public_key: device
                    .and_then(|device| device.public_key)
                    .map(|key| key.to_string()),
                listen_port: device.map(|device| device.listen_port),
                addresses: link
                    .addresses
                    .iter()
                    .map(|address| address.local().to_string())
                    .collect(),
                peer_addresses: link
                    .addresses
                    .iter()
                    .filter_map(|address| {
                        Some((address.local().to_string(), address.peer()?.to_string()))
                    })
                    .collect(),
                mtu: Some(link.mtu),
                peers,
                name,
            }
        })
        .collect();
    Status { tunnels }
}

fn age_text(seconds: Option<u64>) -> String {
    match seconds {
        None => "never".into(),
        Some(seconds) if seconds < 60 => format!("{seconds}s ago"),
        Some(seconds) if seconds < 3600 => format!("{}m {}s ago", seconds / 60, seconds % 60),
        Some(seconds) => format!("{}h {}m ago", seconds / 3600, (seconds % 3600) / 60),
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tunnels.is_empty() {
            return writeln!(f, "no tunnels");
        }
        for tunnel in &self.tunnels {
            let state = if tunnel.up { "up" } else { "down" };
            write!(f, "tunnel {}: {state}", tunnel.name)?;
            if let Some(reason) = &tunnel.reason {
                write!(f, " ({reason})")?;
            }
            writeln!(f)?;
            if let Some(backend) = tunnel.backend {
                writeln!(f, "  backend: {}", backend.as_str())?;
            }
            if let Some(key) = &tunnel.public_key {
                writeln!(f, "  public key: {key}")?;
            }
            if let Some(port) = tunnel.listen_port {
                writeln!(f, "  listening port: {port}")?;
            }
            if !tunnel.addresses.is_empty() {
                // In iproute2's words: `172.20.1.1/32 peer 172.20.2.1/32`.
                let addresses: Vec<String> = tunnel
                    .addresses
                    .iter()
                    .map(|address| match tunnel.peer_addresses.get(address) {
                        Some(peer) => format!("{address} peer {peer}"),
                        None => address.clone(),
                    })
                    .collect();
                writeln!(f, "  addresses: {}", addresses.join(", "))?;
            }
            for peer in &tunnel.peers {
                write!(f, "  peer {}", peer.public_key)?;
                if let Some(name) = &peer.name {
                    write!(f, " ({name})")?;
                }
                // A peer never heard from may just be slow to answer: dead
                // is for one whose last handshake is too old.
                let mark = match (peer.alive, peer.latest_handshake_age_seconds) {
                    (true, _) => "",
                    (false, None) => " [no handshake yet]",
                    (false, Some(_)) => " [dead]",
                };
                writeln!(f, "{mark}")?;
                if let Some(endpoint) = &peer.endpoint {
                    writeln!(f, "    endpoint: {endpoint}")?;
                }
                writeln!(f, "    allowed ips: {}", peer.allowed_ips.join(", "))?;
                writeln!(
                    f,
                    "    latest handshake: {}",
                    age_text(peer.latest_handshake_age_seconds)
                )?;
                writeln!(
                    f,
                    "    transfer: {} B received, {} B sent",
                    peer.rx_bytes, peer.tx_bytes
                )?;
            }
        }
        Ok(())
    }
}

impl From<&TunnelStatus> for api::Tunnel {
    fn from(tunnel: &TunnelStatus) -> Self {
        api::Tunnel {
            name: tunnel.name.clone(),
            up: tunnel.up,
            backend: match tunnel.backend {
                None => api::Backend::Unspecified,
                Some(Backend::Kernel) => api::Backend::Kernel,
                Some(Backend::Userspace) => api::Backend::Userspace,
            } as i32,
            public_key: tunnel.public_key.clone().unwrap_or_default(),
            listen_port: tunnel.listen_port.map(u32::from).unwrap_or_default(),
            addresses: tunnel.addresses.clone(),
            peer_addresses: tunnel
                .peer_addresses
                .iter()
                .map(|(local, peer)| (local.clone(), peer.clone()))
                .collect(),
            mtu: tunnel.mtu.unwrap_or_default(),
            reason: tunnel.reason.clone().unwrap_or_default(),
            peers: tunnel
                .peers
                .iter()
                .map(|peer| api::Peer {
                    public_key: peer.public_key.clone(),
                    endpoint: peer.endpoint.clone().unwrap_or_default(),
                    allowed_ips: peer.allowed_ips.clone(),
                    latest_handshake_age_seconds: peer.latest_handshake_age_seconds,
                    rx_bytes: peer.rx_bytes,
                    tx_bytes: peer.tx_bytes,
                    persistent_keepalive: peer
                        .persistent_keepalive
                        .map(u32::from)
                        .unwrap_or_default(),
                    alive: peer.alive,
                    name: peer.name.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl From<api::Tunnel> for TunnelStatus {
    fn from(tunnel: api::Tunnel) -> Self {
        let non_empty = |text: String| if text.is_empty() { None } else { Some(text) };
        TunnelStatus {
            backend: match api::Backend::try_from(tunnel.backend) {
                Ok(api::Backend::Kernel) => Some(Backend::Kernel),
                Ok(api::Backend::Userspace) => Some(Backend::Userspace),
                _ => None,
            },
            name: tunnel.name,
            up: tunnel.up,
            public_key: non_empty(tunnel.public_key),
            listen_port: u16::try_from(tunnel.listen_port)
                .ok()
                .filter(|port| *port != 0),
            addresses: tunnel.addresses,
            peer_addresses: tunnel.peer_addresses.into_iter().collect(),
            mtu: Some(tunnel.mtu).filter(|mtu| *mtu != 0),
            reason: non_empty(tunnel.reason),
            peers: tunnel
                .peers
                .into_iter()
                .map(|peer| PeerStatus {
                    name: non_empty(peer.name),
                    public_key: peer.public_key,
                    endpoint: non_empty(peer.endpoint),
                    allowed_ips: peer.allowed_ips,
                    latest_handshake_age_seconds: peer.latest_handshake_age_seconds,
                    rx_bytes: peer.rx_bytes,
                    tx_bytes: peer.tx_bytes,
                    persistent_keepalive: u16::try_from(peer.persistent_keepalive)
                        .ok()
                        .filter(|seconds| *seconds != 0),
                    alive: peer.alive,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, age: Option<u64>, alive: bool) -> PeerStatus {
        PeerStatus {
            name: Some(name.into()),
            public_key: format!("{name}-key"),
            endpoint: None,
            allowed_ips: vec!["0.0.0.0/0".into()],
            latest_handshake_age_seconds: age,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
            alive,
        }
    }

    #[test]
    fn text_tells_a_dead_peer_from_one_not_heard_from_yet() {
        let status = Status {
            tunnels: vec![TunnelStatus {
                name: "wg-a".into(),
                up: true,
                backend: None,
                public_key: None,
                listen_port: None,
                addresses: vec!["172.20.1.1/32".into(), "fe80::1/64".into()],
                peer_addresses: [("172.20.1.1/32".into(), "172.20.2.1/32".into())].into(),
                mtu: None,
                reason: None,
                peers: vec![
                    peer("fresh", None, false),
                    peer("silent", Some(400), false),
                    peer("alive", Some(5), true),
                ],
            }],
        };
        let text = status.to_string();
        let headers: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("  peer "))
            .collect();
        assert_eq!(
            headers,
            [
                "  peer fresh-key (fresh) [no handshake yet]",
                "  peer silent-key (silent) [dead]",
                "  peer alive-key (alive)",
            ]
        );
        assert!(text.contains("    latest handshake: never\n"), "{text}");
        assert!(
            text.contains("  addresses: 172.20.1.1/32 peer 172.20.2.1/32, fe80::1/64\n"),
            "{text}"
        );
        let json = serde_json::to_value(&status.tunnels[0]).unwrap();
        assert_eq!(json["peer_addresses"]["172.20.1.1/32"], "172.20.2.1/32");
        // Through the API and back, the same.
        let back = TunnelStatus::from(api::Tunnel::from(&status.tunnels[0]));
        assert_eq!(back.peer_addresses, status.tunnels[0].peer_addresses);
        assert!(
            text.contains("    latest handshake: 6m 40s ago\n"),
            "{text}"
        );
    }
}
