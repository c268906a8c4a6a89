//! The values routes are made of, shared by every part of the bridge: what
//! an owner offers (`RouteSpec`), what the tunnels look like (`TunnelView`,
//! given by wgd), and what the RIB asks of the kernel and the devices
//! (`Changes`). No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The route protocol number wgd's routes carry in the kernel (`proto wgd`
/// with `rt_protos.d/wgd.conf`). FRR uses 186-197 on Debian; 200 is free.
pub const RTPROT_WGD: u8 = 200;

/// What `ip route` shows for `RTPROT_WGD` once this file is in
/// `/etc/iproute2/rt_protos.d/` (`wgd run` writes it when it is missing).
pub const RT_PROTOS_ENTRY: (&str, &str) = (
    "wgd.conf",
    "# Routes installed by wgd's route bridge.\n200\twgd\n",
);

/// Distance given to routes whose owner does not say (zebra's eBGP value).
pub const DEFAULT_DISTANCE: u8 = 20;

/// Who offers a route: a gRPC session's name, `cli`, `fpm`, `bgp:<peer>`,
/// or `adopted` for routes found in the kernel at start.
///
/// Every route of an owner shares its name (one allocation per owner, not
/// per route), through a thin pointer: a route's owner costs 8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner(std::sync::Arc<String>);

impl Owner {
    pub fn new(name: impl Into<String>) -> Self {
        Self(std::sync::Arc::new(name.into()))
    }

    /// Routes found in the kernel at start, until an owner claims them.
    pub fn adopted() -> Self {
        Self::new("adopted")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A nexthop as an owner gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NexthopSpec {
    /// An address on one of the tunnels' subnets (or a peer's tunnel
    /// address covered by its AllowedIPs).
    Address(IpAddr),
    /// Straight into a tunnel (a point-to-point route, `dev wg-b`).
    Tunnel(String),
    /// An address through a named tunnel (`via ADDR dev wg-b`, onlink).
    AddressOnTunnel { address: IpAddr, tunnel: String },
}

impl fmt::Display for NexthopSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NexthopSpec::Address(address) => write!(f, "via {address}"),
            NexthopSpec::Tunnel(tunnel) => write!(f, "dev {tunnel}"),
            NexthopSpec::AddressOnTunnel { address, tunnel } => {
                write!(f, "via {address} dev {tunnel}")
            }
        }
    }
}

/// An address a nexthop is tracked by, with the tunnel that scopes it
/// where it is link-local: written `fe80::2%dn42b`, as the neighbor names
/// of link-local BGP sessions are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScopedAddress {
    pub address: IpAddr,
    pub tunnel: Option<String>,
}

impl ScopedAddress {
    /// The nexthop the RIB resolves for it.
    pub fn to_spec(&self) -> NexthopSpec {
        match &self.tunnel {
            Some(tunnel) => NexthopSpec::AddressOnTunnel {
                address: self.address,
                tunnel: tunnel.clone(),
            },
            None => NexthopSpec::Address(self.address),
        }
    }
}

impl fmt::Display for ScopedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tunnel {
            Some(tunnel) => write!(f, "{}%{tunnel}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

impl std::str::FromStr for ScopedAddress {
    type Err = String;

    /// `10.0.0.1`, `fe80::2`, or `fe80::2%dn42b`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, tunnel) = match text.split_once('%') {
            Some((address, tunnel)) if !tunnel.is_empty() => (address, Some(tunnel.to_owned())),
            Some(_) => return Err(format!("\"{text}\": no tunnel after %")),
            None => (text, None),
        };
        let address = address
            .parse()
            .map_err(|_| format!("\"{}\" is not an address", text.escape_default()))?;
        Ok(ScopedAddress { address, tunnel })
    }
}

/// A route as an owner offers it. The prefix is as given: the policy
/// refuses one with host bits set rather than silently masking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub prefix: IpNet,
    /// One or more (ECMP).
    pub nexthops: Vec<NexthopSpec>,
    /// Lower wins between owners (like zebra's administrative distance).
    pub distance: u8,
    /// Lower wins between routes of equal distance; also the kernel metric.
    pub metric: u32,
}

/// A nexthop resolved onto a tunnel: what the kernel route points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FibNexthop {
    pub tunnel: String,
    pub ifindex: u32,
    /// `None` for a `dev` route.
    pub gateway: Option<IpAddr>,
    /// The peer of a multi-peer tunnel this nexthop reaches (its public
    /// key), whose AllowedIPs must hold the prefix.
    pub peer: Option<String>,
}

impl FibNexthop {
    /// The nexthop as an owner would have written it.
    pub fn to_spec(&self) -> NexthopSpec {
        match (self.gateway, self.tunnel.is_empty()) {
            (Some(address), true) => NexthopSpec::Address(address),
            (Some(address), false) => NexthopSpec::AddressOnTunnel {
                address,
                tunnel: self.tunnel.clone(),
            },
            (None, _) => NexthopSpec::Tunnel(self.tunnel.clone()),
        }
    }
}

/// The tunnels as wgd sees them: the bridge's only view of the interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelView {
    pub tunnels: Vec<TunnelInfo>,
    /// Nexthops (tunnel, address) whose BFD session fell from Up and is not
    /// back: routes through them do not resolve, whoever their owner, so
    /// other candidates take over (BFD drives nexthop tracking). A session
    /// that never came up is not here (no false alarm).
    pub bfd_down: BTreeSet<(String, IpAddr)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    pub name: String,
    pub ifindex: u32,
    /// The interface exists, is up and its device answers.
    pub up: bool,
    /// The tunnel's own addresses with their prefix length (the subnets a
    /// gateway address may be on), link-local ones included.
    pub addresses: Vec<IpNet>,
    /// The far ends of point-to-point addresses (`172.20.1.1/32 peer
    /// 172.20.2.1/32`): reachable straight through the tunnel, so they are
    /// gateways on it too.
    pub peer_addresses: Vec<IpNet>,
    pub peers: Vec<PeerInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Public key, base64.
    pub public_key: String,
    /// The AllowedIPs the config gives the peer (not those the bridge
    /// adds): on a multi-peer tunnel, the peer whose AllowedIPs cover a
    /// gateway most specifically is the one that gateway reaches.
    pub allowed_ips: Vec<IpNet>,
    /// Where its encrypted packets go (the recursive-routing guard keeps
    /// learned routes from capturing it).
    pub endpoint: Option<SocketAddr>,
    /// Not considered dead by handshake age.
    pub reachable: bool,
}

/// The preferred source addresses (`src`, as BIRD's `krt_prefsrc`) of
/// the routes the bridge installs, so that the host's own traffic leaves
/// with its router address and not with whichever tunnel address the
/// kernel would pick. At most one per family in each list (the config
/// checks it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// `[bridge] source`.
    pub bridge: Vec<IpAddr>,
    /// A tunnel's own `source`, by tunnel name: it wins for routes through
    /// that tunnel.
    pub tunnels: BTreeMap<String, Vec<IpAddr>>,
}

impl Sources {
    pub fn is_empty(&self) -> bool {
        self.bridge.is_empty() && self.tunnels.values().all(Vec::is_empty)
    }

    /// The source of a route for `prefix` through `tunnel`: of the
    /// prefix's family (an IPv4 route through an IPv6 gateway gets the
    /// IPv4 one), the tunnel's, else the bridge's.
    pub fn for_route(&self, prefix: &IpNet, tunnel: &str) -> Option<IpAddr> {
        let of_family = |list: &[IpAddr]| {
            list.iter()
                .find(|address| address.is_ipv4() == prefix.addr().is_ipv4())
                .copied()
        };
        self.tunnels
            .get(tunnel)
            .and_then(|list| of_family(list))
            .or_else(|| of_family(&self.bridge))
    }

    /// Every address named.
    pub fn addresses(&self) -> BTreeSet<IpAddr> {
        self.bridge
            .iter()
            .chain(self.tunnels.values().flatten())
            .copied()
            .collect()
    }
}

/// One change to the kernel's routing table. Routes carry `RTPROT_WGD` and
/// one kernel priority of wgd's own (set when the FIB is opened): the
/// distance and metric choose between owners inside the RIB, so a prefix is
/// one kernel route that is replaced in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibOp {
    /// A prefix wgd has no route for yet. Created exclusively: a route that
    /// wgd did not add in the same place (prefix, table, priority) makes it
    /// fail rather than be overwritten.
    Add {
        prefix: IpNet,
        nexthops: Vec<FibNexthop>,
        /// `src`: an address the host has (see [`Sources`]).
        source: Option<IpAddr>,
    },
    /// One of wgd's own routes, replaced in place (`ip route replace`),
    /// never deleted then added.
    Replace {
        prefix: IpNet,
        nexthops: Vec<FibNexthop>,
        source: Option<IpAddr>,
    },
    /// One of wgd's own routes, deleted (only a route with `RTPROT_WGD`
    /// matches; one already gone is not an error).
    Remove { prefix: IpNet },
}

impl FibOp {
    /// A route without `src` (what a source of its own needs is the
    /// RIB's to say).
    pub fn add(prefix: IpNet, nexthops: Vec<FibNexthop>) -> Self {
        FibOp::Add {
            prefix,
            nexthops,
            source: None,
        }
    }

    pub fn replace(prefix: IpNet, nexthops: Vec<FibNexthop>) -> Self {
        FibOp::Replace {
            prefix,
            nexthops,
            source: None,
        }
    }

    pub fn prefix(&self) -> IpNet {
        match self {
            FibOp::Add { prefix, .. }
            | FibOp::Replace { prefix, .. }
            | FibOp::Remove { prefix } => *prefix,
        }
    }
}

/// One change to a multi-peer tunnel's AllowedIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedIpsOp {
    Add {
        tunnel: String,
        peer: String,
        prefix: IpNet,
    },
    Remove {
        tunnel: String,
        peer: String,
        prefix: IpNet,
    },
}

/// A registered nexthop whose reachability changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopEvent {
    pub owner: Owner,
    /// As the owner registered it.
    pub address: ScopedAddress,
    pub reachable: bool,
    /// The tunnel it resolves onto, when reachable.
    pub tunnel: Option<String>,
    /// Why not, when not.
    pub reason: String,
}

/// What one RIB call asks of the world outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub fib: Vec<FibOp>,
    pub allowed_ips: Vec<AllowedIpsOp>,
    pub nexthops: Vec<NexthopEvent>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.fib.is_empty() && self.allowed_ips.is_empty() && self.nexthops.is_empty()
    }

    pub fn extend(&mut self, other: Changes) {
        self.fib.extend(other.fib);
        self.allowed_ips.extend(other.allowed_ips);
        self.nexthops.extend(other.nexthops);
    }
}
