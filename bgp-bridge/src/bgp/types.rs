//! The values the BGP speaker's parts share: address families, path
//! attributes in wgd's own compact form (decoded from and encoded to the
//! wire by `update`), routes as a neighbor announces them, and what a
//! session negotiated. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

pub type Asn = u32;

/// The AS number 2-octet speakers see for a 4-octet one (RFC 6793).
pub const AS_TRANS: Asn = 23456;

/// LOCAL_PREF of a path that carries none (RFC 4271 leaves it to us; 100
/// is what every implementation uses).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The address families wgd's speaker carries (unicast only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub fn of(prefix: &IpNet) -> Self {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// (AFI, SAFI) as on the wire.
    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (1, 1),
            Family::Ipv6Unicast => (2, 1),
        }
    }

    /// The family of an (AFI, SAFI) pair, if wgd carries it.
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Self> {
        match (afi, safi) {
            (1, 1) => Some(Family::Ipv4Unicast),
            (2, 1) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsSegment {
    Sequence(Vec<Asn>),
    Set(Vec<Asn>),
    ConfedSequence(Vec<Asn>),
    ConfedSet(Vec<Asn>),
}

impl AsSegment {
    /// What the segment adds to the AS_PATH length: a set counts as one,
    /// confederation segments not at all (RFC 4271 9.1.2.2, RFC 5065).
    pub fn path_len(&self) -> usize {
        match self {
            AsSegment::Sequence(asns) => asns.len(),
            AsSegment::Set(_) => 1,
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
        }
    }
}

/// A path attribute wgd does not interpret, kept to pass on when it is
/// optional transitive (with the partial bit set, RFC 4271 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of a route, 4-octet AS numbers throughout (AS4_PATH
/// merged in on decode when the session is 2-octet). Shared by every
/// prefix of an UPDATE: routes hold an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub origin: Origin,
    pub as_path: Vec<AsSegment>,
    /// NEXT_HOP for IPv4 NLRI, or the MP_REACH nexthop (IPv4 or IPv6
    /// global; RFC 8950 allows an IPv6 nexthop for IPv4 routes).
    pub next_hop: Option<IpAddr>,
    /// The link-local address an MP_REACH nexthop may carry besides.
    pub link_local_next_hop: Option<Ipv6Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(Asn, Ipv4Addr)>,
    /// RFC 1997 communities as `(asn << 16) | value`.
    pub communities: Vec<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub other: Vec<RawAttribute>,
}

impl Default for Attributes {
    fn default() -> Self {
        Self {
            origin: Origin::Igp,
            as_path: Vec::new(),
            next_hop: None,
            link_local_next_hop: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
        }
    }
}

impl Attributes {
    /// AS_PATH length for the decision process: a set counts as one,
    /// confederation segments not at all (RFC 4271 9.1.2.2, RFC 5065).
    pub fn as_path_len(&self) -> usize {
        self.as_path.iter().map(AsSegment::path_len).sum()
    }

    /// The neighboring AS: the first AS of the path (for MED comparison).
    pub fn first_as(&self) -> Option<Asn> {
        self.as_path.iter().find_map(|segment| match segment {
            AsSegment::Sequence(asns) => asns.first().copied(),
            _ => None,
        })
    }

    pub fn contains_as(&self, asn: Asn) -> bool {
        self.as_path.iter().any(|segment| match segment {
            AsSegment::Sequence(asns)
            | AsSegment::Set(asns)
            | AsSegment::ConfedSequence(asns)
            | AsSegment::ConfedSet(asns) => asns.contains(&asn),
        })
    }
}

/// What one UPDATE said, once decoded and checked (RFC 7606 applied):
/// routes announced with their attributes, prefixes withdrawn (including
/// those of an UPDATE treated as withdraw), and End-of-RIB markers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub announced: Vec<(IpNet, Arc<Attributes>)>,
    pub withdrawn: Vec<IpNet>,
    pub end_of_rib: Vec<Family>,
}

/// A NOTIFICATION to send before closing the session (RFC 4271 4.5): error
/// code, subcode and the data the subcode calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// What the OPEN exchange settled for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub local_as: Asn,
    pub remote_as: Asn,
    pub remote_id: Ipv4Addr,
    /// The lower of the two hold times (0: no keepalives, no hold timer).
    pub hold_time: u16,
    pub four_octet_as: bool,
    /// Families both sides announced (MP-BGP), IPv4 unicast alone when the
    /// peer sent no multiprotocol capability.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// RFC 8950: IPv4 routes may carry an IPv6 nexthop, in both directions.
    pub extended_next_hop_ipv4: bool,
    /// The peer's graceful-restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.remote_as
    }
}

/// A graceful-restart capability (RFC 4724) as sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restarted: bool,
    /// Seconds the sender asks its routes to be kept while it restarts.
    pub restart_time: u16,
    /// Families whose forwarding state the sender kept (the F bit).
    pub preserved: Vec<Family>,
}
