//! The values the BGP speaker's parts share: address families, path
//! attributes in wgd's own compact form (decoded from and encoded to the
//! wire by `update`), routes as a neighbor announces them, and what a
//! session negotiated. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;

pub type Asn = u32;

/// The AS number 2-octet speakers see for a 4-octet one (RFC 6793).
pub const AS_TRANS: Asn = 23456;

/// LOCAL_PREF of a path that carries none (RFC 4271 leaves it to us; 100
/// is what every implementation uses).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The largest BGP message without RFC 8654 (extended messages), and
/// the largest OPEN and KEEPALIVE with it.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The largest message once both sides announced extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// The longest interface name Linux takes (`IFNAMSIZ` less the NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// A neighbor as the speaker keys and names it: its address and, for an
/// IPv6 link-local address, the tunnel it is on (two tunnels may both
/// have a neighbor `fe80::2`). Written `fe80::2%dn42b`, or the plain
/// address for any other address: a global neighbor named by a tunnel is
/// still known by its address alone, as before link-local neighbors.
///
/// `Copy`, with the tunnel's name inline: the decision keeps one per path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighborId {
    address: IpAddr,
    /// Set exactly when `address` is IPv6 link-local.
    tunnel: Option<InterfaceName>,
}

/// Why a neighbor cannot be named so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeighborIdError {
    #[error("{0} is a link-local address: name its tunnel (\"{0}%<tunnel>\" or tunnel = \"...\")")]
    LinkLocalWithoutTunnel(Ipv6Addr),
    #[error("{0} is not a link-local address: only fe80::/10 neighbors take a %<tunnel> scope")]
    ScopeOnGlobal(IpAddr),
    #[error("\"{0}\" is not an interface name (1 to 15 bytes, no '/', ':', '%' or white space)")]
    InterfaceName(String),
    #[error("\"{0}\" is not an IP address")]
    Address(String),
}

impl NeighborId {
    /// The neighbor at `address`, on `tunnel`: the tunnel is part of the
    /// name for a link-local address (and required), left out otherwise.
    pub fn new(address: IpAddr, tunnel: Option<&str>) -> Result<Self, NeighborIdError> {
        match address {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                let tunnel = tunnel.ok_or(NeighborIdError::LinkLocalWithoutTunnel(v6))?;
                Ok(Self {
                    address,
                    tunnel: Some(InterfaceName::new(tunnel)?),
                })
            }
            _ => Ok(Self {
                address,
                tunnel: None,
            }),
        }
    }

    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The tunnel of a link-local neighbor.
    pub fn tunnel(&self) -> Option<&str> {
        self.tunnel.as_ref().map(InterfaceName::as_str)
    }

    pub fn is_link_local(&self) -> bool {
        self.tunnel.is_some()
    }
}

impl fmt::Display for NeighborId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tunnel() {
            Some(tunnel) => write!(f, "{}%{tunnel}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

impl fmt::Debug for NeighborId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NeighborId {
    type Err = NeighborIdError;

    /// `10.0.0.1`, `2001:db8::1`, or `fe80::2%dn42b`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, tunnel) = match text.split_once('%') {
            Some((address, tunnel)) => (address, Some(tunnel)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| NeighborIdError::Address(address.to_owned()))?;
        let link_local = matches!(address, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if tunnel.is_some() && !link_local {
            return Err(NeighborIdError::ScopeOnGlobal(address));
        }
        Self::new(address, tunnel)
    }
}

/// An interface name, checked as the kernel checks one, kept inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct InterfaceName {
    length: u8,
    bytes: [u8; MAX_INTERFACE_NAME],
}

impl InterfaceName {
    fn new(name: &str) -> Result<Self, NeighborIdError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_INTERFACE_NAME
            && name != "."
            && name != ".."
            && !name
                .chars()
                .any(|c| c == '/' || c == '%' || c == ':' || c.is_whitespace());
        if !valid {
            return Err(NeighborIdError::InterfaceName(name.to_owned()));
        }
        let mut bytes = [0; MAX_INTERFACE_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            length: name.len() as u8,
            bytes,
        })
    }

    fn as_str(&self) -> &str {
        // Copied from a `&str` whole: always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.length)]).unwrap_or_default()
    }
}

impl PartialOrd for InterfaceName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InterfaceName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

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

/// What a segment of type `code` with `count` ASes adds to the AS_PATH
/// length: a set counts as one, confederation segments not at all (RFC
/// 4271 9.1.2.2, RFC 5065).
fn segment_path_len(code: u32, count: usize) -> usize {
    match code {
        2 => count,
        1 => 1,
        _ => 0,
    }
}

impl AsSegment {
    /// What the segment adds to the AS_PATH length (see
    /// [`segment_path_len`]).
    pub fn path_len(&self) -> usize {
        segment_path_len(self.code(), self.asns().len())
    }

    /// The segment's type code on the wire (RFC 4271 4.3, RFC 5065).
    fn code(&self) -> u32 {
        match self {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(_) => 2,
            AsSegment::ConfedSequence(_) => 3,
            AsSegment::ConfedSet(_) => 4,
        }
    }

    fn asns(&self) -> &[Asn] {
        match self {
            AsSegment::Sequence(asns)
            | AsSegment::Set(asns)
            | AsSegment::ConfedSequence(asns)
            | AsSegment::ConfedSet(asns) => asns,
        }
    }

    fn from_code(code: u32, asns: &[Asn]) -> Self {
        let asns = asns.to_vec();
        match code {
            1 => AsSegment::Set(asns),
            3 => AsSegment::ConfedSequence(asns),
            4 => AsSegment::ConfedSet(asns),
            _ => AsSegment::Sequence(asns),
        }
    }
}

/// An AS_PATH as a route keeps it: every segment in one allocation, each
/// a word of its type and length followed by its AS numbers. A full table
/// has an AS path per attribute set (a quarter million of them); a
/// `Vec<AsSegment>` takes two allocations each and 24 bytes in the set.
/// Built from and turned back into [`AsSegment`]s where a path is made
/// or changed (decoding, prepending); read in place otherwise.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath(Box<[u32]>);

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: &[Asn]) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self::from(vec![AsSegment::Sequence(asns.to_vec())])
    }

    /// The segments, each as its type code and AS numbers.
    fn raw_segments(&self) -> impl Iterator<Item = (u32, &[Asn])> + '_ {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (&header, tail) = rest.split_first()?;
            let len = (header & 0xffff) as usize;
            let (asns, tail) = tail.split_at(len.min(tail.len()));
            rest = tail;
            Some((header >> 16, asns))
        })
    }

    /// The segments, copied out.
    pub fn to_segments(&self) -> Vec<AsSegment> {
        self.raw_segments()
            .map(|(code, asns)| AsSegment::from_code(code, asns))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length for the decision process: a set counts as one,
    /// confederation segments not at all (RFC 4271 9.1.2.2, RFC 5065).
    pub fn path_len(&self) -> usize {
        self.raw_segments()
            .map(|(code, asns)| segment_path_len(code, asns.len()))
            .sum()
    }

    /// The neighboring AS: the first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<Asn> {
        self.raw_segments()
            .find(|(code, _)| *code == 2)
            .and_then(|(_, asns)| asns.first().copied())
    }

    pub fn contains(&self, asn: Asn) -> bool {
        self.raw_segments().any(|(_, asns)| asns.contains(&asn))
    }

    /// The origin AS as RFC 6811 2 reads it: the last AS of a final
    /// AS_SEQUENCE; `None` when the path ends in a set (or is empty or
    /// all confederation segments).
    pub fn origin_as(&self) -> Option<Asn> {
        self.raw_segments()
            .filter(|(code, _)| matches!(code, 1 | 2))
            .last()
            .filter(|(code, _)| *code == 2)
            .and_then(|(_, asns)| asns.last().copied())
    }

    /// The path with `asn` in front (RFC 4271 5.1.2): into a leading
    /// AS_SEQUENCE with room, else in a new one.
    pub fn prepended(&self, asn: Asn) -> Self {
        let mut segments = self.to_segments();
        match segments.first_mut() {
            Some(AsSegment::Sequence(asns)) if asns.len() < 255 => asns.insert(0, asn),
            _ => segments.insert(0, AsSegment::Sequence(vec![asn])),
        }
        Self::from(segments)
    }
}

impl From<Vec<AsSegment>> for AsPath {
    fn from(segments: Vec<AsSegment>) -> Self {
        let mut words = Vec::with_capacity(segments.iter().map(|s| s.asns().len() + 1).sum());
        for segment in &segments {
            // A segment holds at most 255 ASes on the wire; longer ones
            // made here are split alike.
            for chunk in segment.asns().chunks(255) {
                words.push(segment.code() << 16 | chunk.len() as u32);
                words.extend_from_slice(chunk);
            }
        }
        Self(words.into_boxed_slice())
    }
}

impl fmt::Debug for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_segments()).finish()
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
/// prefix of an UPDATE: routes hold an `Arc`. Lists are boxed slices, not
/// `Vec`s: a set is built once and never grows, and a full table holds a
/// quarter million sets. 64 bytes, 80 with the `Arc`'s counts: the
/// nexthops are shared ([`NextHop`]) and MED and LOCAL_PREF say whether
/// they are present in one byte ([`Metrics`]; with both addresses and two
/// `Option<u32>`s in place a set took 96 bytes, 112 with the counts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub origin: Origin,
    /// MED and LOCAL_PREF: read and set them with [`Attributes::med`] and
    /// the like.
    pub metrics: Metrics,
    pub as_path: AsPath,
    pub next_hop: NextHop,
    /// RFC 1997 communities as `(asn << 16) | value`.
    pub communities: Box<[u32]>,
    /// What few routes carry; `None` when it would be empty (never
    /// `Some` of an empty one, so that equal attributes compare equal).
    pub rare: Option<Box<Rare>>,
}

/// MULTI_EXIT_DISC and LOCAL_PREF, each present or not, in 12 bytes (two
/// `Option<u32>`s take 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Metrics {
    /// [`MED`] and [`LOCAL_PREF`] bits: which of the two are present (an
    /// absent one is 0 below, so that equal attributes compare equal).
    present: u8,
    med: u32,
    local_pref: u32,
}

const MED: u8 = 1;
const LOCAL_PREF: u8 = 2;

impl Metrics {
    fn get(&self, bit: u8, value: u32) -> Option<u32> {
        (self.present & bit != 0).then_some(value)
    }

    fn present(&mut self, bit: u8, value: Option<u32>) -> u32 {
        self.present = (self.present & !bit) | if value.is_some() { bit } else { 0 };
        value.unwrap_or(0)
    }
}

/// A route's nexthops: NEXT_HOP for IPv4 NLRI, or the MP_REACH nexthop
/// (IPv4 or IPv6 global; RFC 8950 allows an IPv6 nexthop for IPv4 routes),
/// and the link-local address an MP_REACH nexthop may carry besides. The
/// pair is shared, 8 bytes in an attribute set where the two addresses
/// take 34: a session has a few distinct nexthops for a quarter million
/// attribute sets, and each thread reuses the pairs it made last.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NextHop(Option<Arc<NextHopPair>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NextHopPair {
    address: Option<IpAddr>,
    link_local: Option<Ipv6Addr>,
}

/// How many pairs each thread keeps to reuse.
const NEXT_HOPS_REUSED: usize = 8;

thread_local! {
    /// The pairs this thread made last, the latest last.
    static RECENT_NEXT_HOPS: std::cell::RefCell<Vec<Arc<NextHopPair>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl NextHop {
    /// The global (or IPv4) nexthop and the link-local one; with neither,
    /// no nexthop ([`NextHop::default`]).
    pub fn new(address: Option<IpAddr>, link_local: Option<Ipv6Addr>) -> Self {
        if address.is_none() && link_local.is_none() {
            return Self(None);
        }
        let pair = NextHopPair {
            address,
            link_local,
        };
        RECENT_NEXT_HOPS.with(|recent| {
            let mut recent = recent.borrow_mut();
            if let Some(at) = recent.iter().rposition(|kept| **kept == pair) {
                let kept = recent.remove(at);
                recent.push(kept.clone());
                return Self(Some(kept));
            }
            if recent.len() == NEXT_HOPS_REUSED {
                recent.remove(0);
            }
            let made = Arc::new(pair);
            recent.push(made.clone());
            Self(Some(made))
        })
    }

    /// The NEXT_HOP, or MP_REACH's global (or IPv4) nexthop.
    pub fn address(&self) -> Option<IpAddr> {
        self.0.as_ref().and_then(|pair| pair.address)
    }

    /// The link-local nexthop an MP_REACH carried besides (RFC 2545).
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.0.as_ref().and_then(|pair| pair.link_local)
    }
}

impl From<IpAddr> for NextHop {
    fn from(address: IpAddr) -> Self {
        Self::new(Some(address), None)
    }
}

impl fmt::Debug for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.address(), self.link_local()) {
            (Some(address), Some(link_local)) => write!(f, "{address},{link_local}"),
            (Some(address), None) => write!(f, "{address}"),
            (None, Some(link_local)) => write!(f, "{link_local}"),
            (None, None) => f.write_str("none"),
        }
    }
}

/// The attributes few routes carry, kept apart from those most do: 88
/// bytes that most attribute sets do not pay (with the first 56 of them
/// in place, a set took 152 bytes, 160 with the allocator's rounding).
/// Large and extended communities are here, not in [`Attributes`]: a set
/// without rare attributes pays nothing for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rare {
    pub atomic_aggregate: bool,
    pub aggregator: Option<(Asn, Ipv4Addr)>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Box<[Ipv4Addr]>,
    /// RFC 8092 large communities, as received (an import policy may add
    /// or delete some).
    pub large_communities: Box<[LargeCommunity]>,
    /// RFC 4360 extended communities, each its 8 octets as one number
    /// (type, subtype, value); policies read route targets and origins.
    pub extended_communities: Box<[u64]>,
    /// Attributes wgd does not interpret, passed on (IPv6 extended
    /// communities among them).
    pub other: Box<[RawAttribute]>,
}

/// An RFC 8092 large community: global administrator (an AS), then two
/// local data parts; `4242420001:1:2` in the config and in `wgd bgp
/// routes`. 12 bytes, stored inline in the route's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl FromStr for LargeCommunity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("large community {text:?}: expected asn:value:value, each 0..=4294967295");
        let mut parts = text.split(':').map(|part| part.parse::<u32>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(global)), Some(Ok(local1)), Some(Ok(local2)), None) => Ok(Self {
                global,
                local1,
                local2,
            }),
            _ => Err(invalid()),
        }
    }
}

impl TryFrom<String> for LargeCommunity {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// The two kinds of RFC 4360 extended community a policy matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtendedKind {
    /// Route target (subtype 0x02).
    Target,
    /// Route origin, "site of origin" (subtype 0x03).
    Origin,
}

/// The global administrator of a route target or origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Administrator {
    /// A 2-octet or 4-octet AS (types 0x00 and 0x02 alike: a policy
    /// names the AS, not how it was encoded).
    As(Asn),
    Ipv4(Ipv4Addr),
}

/// A route target or origin read from an extended community's 8 octets:
/// transitive two-octet-AS (0x00), IPv4-address (0x01) or four-octet-AS
/// (0x02) specific, subtype 0x02 or 0x03 (RFC 4360 4-5, RFC 5668). Any
/// other extended community is `None`: carried, not interpreted.
pub fn route_target_or_origin(value: u64) -> Option<(ExtendedKind, Administrator, u32)> {
    let octets = value.to_be_bytes();
    let kind = match octets[1] {
        0x02 => ExtendedKind::Target,
        0x03 => ExtendedKind::Origin,
        _ => return None,
    };
    let word = |at: usize| {
        u32::from_be_bytes([octets[at], octets[at + 1], octets[at + 2], octets[at + 3]])
    };
    let half = |at: usize| u32::from(u16::from_be_bytes([octets[at], octets[at + 1]]));
    let (administrator, local) = match octets[0] {
        0x00 => (Administrator::As(half(2)), word(4)),
        0x01 => (Administrator::Ipv4(Ipv4Addr::from(word(2))), half(6)),
        0x02 => (Administrator::As(word(2)), half(6)),
        _ => return None,
    };
    Some((kind, administrator, local))
}

impl Rare {
    pub fn is_empty(&self) -> bool {
        self == &Rare::default()
    }

    /// `Some` if not empty.
    pub fn boxed(self) -> Option<Box<Rare>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

impl Default for Attributes {
    fn default() -> Self {
        Self {
            origin: Origin::Igp,
            metrics: Metrics::default(),
            as_path: AsPath::default(),
            next_hop: NextHop::default(),
            communities: Box::default(),
            rare: None,
        }
    }
}

impl Attributes {
    pub fn med(&self) -> Option<u32> {
        self.metrics.get(MED, self.metrics.med)
    }

    pub fn set_med(&mut self, med: Option<u32>) {
        self.metrics.med = self.metrics.present(MED, med);
    }

    /// Attributes with `med` (for building them: `..Default::default()`
    /// cannot reach private fields).
    pub fn with_med(mut self, med: Option<u32>) -> Self {
        self.set_med(med);
        self
    }

    pub fn local_pref(&self) -> Option<u32> {
        self.metrics.get(LOCAL_PREF, self.metrics.local_pref)
    }

    pub fn set_local_pref(&mut self, local_pref: Option<u32>) {
        self.metrics.local_pref = self.metrics.present(LOCAL_PREF, local_pref);
    }

    pub fn with_local_pref(mut self, local_pref: Option<u32>) -> Self {
        self.set_local_pref(local_pref);
        self
    }

    pub fn atomic_aggregate(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| rare.atomic_aggregate)
    }

    pub fn aggregator(&self) -> Option<(Asn, Ipv4Addr)> {
        self.rare.as_ref().and_then(|rare| rare.aggregator)
    }

    pub fn originator_id(&self) -> Option<Ipv4Addr> {
        self.rare.as_ref().and_then(|rare| rare.originator_id)
    }

    pub fn cluster_list(&self) -> &[Ipv4Addr] {
        self.rare.as_ref().map_or(&[], |rare| &rare.cluster_list)
    }

    pub fn large_communities(&self) -> &[LargeCommunity] {
        self.rare
            .as_ref()
            .map_or(&[], |rare| &rare.large_communities)
    }

    pub fn extended_communities(&self) -> &[u64] {
        self.rare
            .as_ref()
            .map_or(&[], |rare| &rare.extended_communities)
    }

    pub fn other(&self) -> &[RawAttribute] {
        self.rare.as_ref().map_or(&[], |rare| &rare.other)
    }

    /// Changes the rare attributes (none yet: from empty ones), leaving
    /// `None` if they end up empty.
    pub fn change_rare(&mut self, change: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().map(|rare| *rare).unwrap_or_default();
        change(&mut rare);
        self.rare = rare.boxed();
    }

    /// AS_PATH length for the decision process: a set counts as one,
    /// confederation segments not at all (RFC 4271 9.1.2.2, RFC 5065).
    pub fn as_path_len(&self) -> usize {
        self.as_path.path_len()
    }

    /// The neighboring AS: the first AS of the path (for MED comparison).
    pub fn first_as(&self) -> Option<Asn> {
        self.as_path.first_as()
    }

    pub fn contains_as(&self, asn: Asn) -> bool {
        self.as_path.contains(asn)
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
    /// RFC 8654: both sides announced extended messages, so UPDATEs and
    /// NOTIFICATIONs may be up to 65535 octets each way.
    pub extended_messages: bool,
    /// The peer's graceful-restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.remote_as
    }

    /// The largest UPDATE (header included) either side may send.
    pub fn max_message_len(&self) -> usize {
        if self.extended_messages {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_made_again_are_shared() {
        let global: IpAddr = "2001:db8::1".parse().unwrap();
        let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
        let first = NextHop::new(Some(global), Some(link_local));
        let again = NextHop::new(Some(global), Some(link_local));
        let (Some(first_pair), Some(again_pair)) = (&first.0, &again.0) else {
            panic!("no pair kept");
        };
        assert!(Arc::ptr_eq(first_pair, again_pair));
        assert_eq!(again.address(), Some(global));
        assert_eq!(again.link_local(), Some(link_local));
        // Another pair is another nexthop; none at all is nothing kept.
        let alone = NextHop::new(Some(global), None);
        assert_ne!(alone, first);
        assert_eq!(alone.link_local(), None);
        assert!(NextHop::new(None, None).0.is_none());
        // More distinct pairs than are reused: still right, if not shared.
        let many: Vec<NextHop> = (1..=20u8)
            .map(|last| NextHop::from(IpAddr::from([10, 0, 0, last])))
            .collect();
        for (at, next_hop) in many.iter().enumerate() {
            assert_eq!(
                next_hop.address(),
                Some(IpAddr::from([10, 0, 0, at as u8 + 1]))
            );
        }
        assert_eq!(format!("{first:?}"), "2001:db8::1,fe80::1");
    }

    #[test]
    fn med_and_local_pref_are_present_or_not_and_compare_so() {
        let none = Attributes::default();
        assert_eq!((none.med(), none.local_pref()), (None, None));
        // MED 0 is not an absent MED.
        let zero = Attributes::default().with_med(Some(0));
        assert_eq!(zero.med(), Some(0));
        assert_ne!(zero, none);
        let mut both = zero.clone().with_local_pref(Some(u32::MAX));
        both.set_med(Some(7));
        assert_eq!((both.med(), both.local_pref()), (Some(7), Some(u32::MAX)));
        // Taken away again: equal to never set.
        both.set_med(None);
        both.set_local_pref(None);
        assert_eq!(both, none);
    }

    #[test]
    fn link_local_neighbors_are_named_with_their_tunnel() {
        let id: NeighborId = "fe80::2%dn42b".parse().unwrap();
        assert_eq!(id.address(), "fe80::2".parse::<IpAddr>().unwrap());
        assert_eq!(id.tunnel(), Some("dn42b"));
        assert!(id.is_link_local());
        assert_eq!(id.to_string(), "fe80::2%dn42b");
        assert_eq!(
            NeighborId::new("fe80::2".parse().unwrap(), Some("dn42b")).unwrap(),
            id
        );
        // Two tunnels, one address: two neighbors.
        let other: NeighborId = "fe80::2%dn42c".parse().unwrap();
        assert_ne!(id, other);
        assert!(id < other);
    }

    #[test]
    fn global_neighbors_are_their_address() {
        let id: NeighborId = "10.255.0.2".parse().unwrap();
        assert_eq!(id.to_string(), "10.255.0.2");
        assert_eq!(id.tunnel(), None);
        // A tunnel beside a global address does not change its name.
        let named = NeighborId::new("2001:db8::2".parse().unwrap(), Some("wg-b")).unwrap();
        assert_eq!(named.to_string(), "2001:db8::2");
        assert_eq!(named, "2001:db8::2".parse().unwrap());
    }

    #[test]
    fn bad_neighbor_names_say_why() {
        assert_eq!(
            "fe80::2".parse::<NeighborId>(),
            Err(NeighborIdError::LinkLocalWithoutTunnel(
                "fe80::2".parse().unwrap()
            ))
        );
        assert!(matches!(
            "10.0.0.1%wg0".parse::<NeighborId>(),
            Err(NeighborIdError::ScopeOnGlobal(_))
        ));
        for bad in [
            "fe80::2%",
            "fe80::2%sixteen-bytes-xx",
            "fe80::2%a/b",
            "fe80::2%a b",
        ] {
            assert!(
                matches!(
                    bad.parse::<NeighborId>(),
                    Err(NeighborIdError::InterfaceName(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            "fe80::zz%wg0".parse::<NeighborId>(),
            Err(NeighborIdError::Address(_))
        ));
        let message = "fe80::2".parse::<NeighborId>().unwrap_err().to_string();
        assert!(message.contains("fe80::2%<tunnel>"), "{message}");
    }
}
