//! The `wgd status --json` contract, as typed values the tests read.
//!
//! Kept apart from wgd's own types on purpose: the tests check the printed
//! contract, so a change to it shows up here as a failed parse.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub tunnels: Vec<TunnelStatus>,
}

impl Status {
    pub fn tunnel(&self, name: &str) -> Option<&TunnelStatus> {
        self.tunnels.iter().find(|tunnel| tunnel.name == name)
    }
}

/// One configured tunnel. The device's fields are `null` when its interface
/// is not there (then `reason` says why).
#[derive(Debug, Clone, Deserialize)]
pub struct TunnelStatus {
    pub name: String,
    pub up: bool,
    pub backend: Option<Backend>,
    pub public_key: Option<String>,
    pub listen_port: Option<u16>,
    pub addresses: Vec<String>,
    /// The far end of each point-to-point address, by the address.
    #[serde(default)]
    pub peer_addresses: std::collections::BTreeMap<String, String>,
    pub mtu: Option<u32>,
    pub peers: Vec<PeerStatus>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl TunnelStatus {
    pub fn peer(&self, public_key: &str) -> Option<&PeerStatus> {
        self.peers.iter().find(|peer| peer.public_key == public_key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Userspace,
    Kernel,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PeerStatus {
    pub name: Option<String>,
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub latest_handshake_age_seconds: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
    pub alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let json = r#"{"tunnels":[{"name":"wg0","up":true,"backend":"userspace",
            "public_key":"pub","listen_port":51820,"addresses":["10.255.0.0/31"],"mtu":1420,
            "peers":[{"name":null,"public_key":"peer","endpoint":"198.18.71.2:51820",
            "allowed_ips":["0.0.0.0/0","::/0"],"latest_handshake_age_seconds":null,
            "rx_bytes":0,"tx_bytes":92,"persistent_keepalive":25,"alive":false}]}]}"#;
        let status: Status = serde_json::from_str(json).unwrap();
        let tunnel = status.tunnel("wg0").unwrap();
        assert_eq!(tunnel.backend, Some(Backend::Userspace));
        let peer = tunnel.peer("peer").unwrap();
        assert_eq!(peer.latest_handshake_age_seconds, None);
        assert_eq!(peer.persistent_keepalive, Some(25));
    }

    #[test]
    fn a_missing_interface_has_no_device_fields() {
        let json = r#"{"tunnels":[{"name":"wg1","up":false,"backend":null,"public_key":null,
            "listen_port":null,"addresses":[],"mtu":null,"peers":[],
            "reason":"interface not present"}]}"#;
        let status: Status = serde_json::from_str(json).unwrap();
        let tunnel = status.tunnel("wg1").unwrap();
        assert!(!tunnel.up && tunnel.public_key.is_none());
        assert_eq!(tunnel.reason.as_deref(), Some("interface not present"));
    }
}
