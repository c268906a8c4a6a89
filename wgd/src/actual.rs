//! What the host has now, as plain values: the planner's second input.
//!
//! `system::observe` fills these from the kernel and the WireGuard devices;
//! tests build them by hand. Nothing here does I/O.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::keys::{PresharedKey, PublicKey};
use crate::state::TunnelRecord;

/// Which implementation runs a WireGuard interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Kernel,
    Userspace,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Kernel => "kernel",
            Backend::Userspace => "userspace",
        }
    }
}

/// The host as far as the tunnels of one config are concerned.
#[derive(Debug, Clone, Default)]
pub struct ActualState {
    /// Interfaces present, by name: the config's tunnels and the ones wgd
    /// recorded as its own.
    pub links: BTreeMap<String, Link>,
    /// What wgd recorded about the tunnels it created (all sources).
    pub records: BTreeMap<String, TunnelRecord>,
    /// Policy rules present, of the kinds full-tunnel mode uses.
    pub rules: Vec<Rule>,
    /// Tables that hold at least one route (full-tunnel picks a free one).
    pub used_tables: Vec<u32>,
}

/// A network interface with what wgd compares on it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    /// `None` when the interface is not WireGuard (kind other than
    /// `wireguard` or a tun without a UAPI socket).
    pub backend: Option<Backend>,
    pub up: bool,
    pub mtu: u32,
    /// Every address on the interface, link-local ones included, whoever
    /// added them (wgd's record says which are its own).
    pub addresses: Vec<crate::config::InterfaceAddress>,
    /// Those among `addresses` the kernel generated itself (a TUN device's
    /// random `fe80::` address, on an interface made before wgd turned
    /// that off).
    pub kernel_made: Vec<crate::config::InterfaceAddress>,
    /// `None` when the WireGuard device could not be read (a stale UAPI
    /// socket after wireguard-go died, say).
    pub device: Option<Device>,
    /// Routes through this interface, other than the kernel's own.
    pub routes: Vec<Route>,
}

/// The WireGuard side of an interface.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// Public key of the configured private key (the private key itself is
    /// not kept).
    pub public_key: Option<PublicKey>,
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    pub allowed_ips: Vec<IpNet>,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A route through a tunnel: destination and table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Route {
    pub prefix: IpNet,
    pub table: u32,
}

impl Route {
    /// The table as `ip route` names it: "main" or its number.
    pub fn table_name(&self) -> String {
        if self.table == crate::config::RouteTable::Main.id() {
            "main".into()
        } else {
            self.table.to_string()
        }
    }
}

/// The two policy rules wg-quick uses for a default route, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    /// `ip rule add not fwmark T table T`
    NotFwmarkLookup { ipv6: bool, table: u32 },
    /// `ip rule add table main suppress_prefixlength 0`
    MainSuppressDefault { ipv6: bool },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = |ipv6: bool| if ipv6 { "-6" } else { "-4" };
        match *self {
            Rule::NotFwmarkLookup { ipv6, table } => {
                write!(
                    f,
                    "ip {} rule not fwmark {table} table {table}",
                    family(ipv6)
                )
            }
            Rule::MainSuppressDefault { ipv6 } => {
                write!(
                    f,
                    "ip {} rule table main suppress_prefixlength 0",
                    family(ipv6)
                )
            }
        }
    }
}
