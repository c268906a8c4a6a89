//! The FPM wire format, pure: bytes in, frames and decoded netlink
//! messages out. No I/O, no state.
//!
//! zebra's `dplane_fpm_nl` writes a stream of frames, each a 4-byte header
//! (version 1, type 1 = netlink, the frame's total length in network
//! order, header included) and one or more netlink messages in the host's
//! byte order: `RTM_NEWROUTE`/`RTM_DELROUTE` for its selected routes and,
//! unless configured with `no fpm use-next-hop-groups`,
//! `RTM_NEWNEXTHOP`/`RTM_DELNEXTHOP` for the nexthop objects those routes
//! point at (`RTA_NH_ID`). An update of a route may come as a delete and an
//! add in one frame. An IPv4 route through an IPv6 gateway (RFC 8950) has
//! it as `RTA_VIA`, or in a nexthop object; zebra itself writes such a
//! route as `169.254.0.1 onlink` on its interface. Other messages (MAC, neighbour, MPLS) are passed over.
//!
//! [`Frames`] splits a buffer into frames: a frame not all there yet is
//! left for the next read; a header that cannot be right (version, type, a
//! length shorter than the header) is an error, after which the stream
//! cannot be trusted to be in step. [`decode_frame`] reads one frame's
//! messages; one that does not parse is an error of its own, and the
//! others in the frame are still read when the framing allows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NetlinkBuffer, NlasIterator, Parseable};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};

/// The only FPM version there is.
pub const FPM_VERSION: u8 = 1;
/// Frames carrying netlink messages (2 is zebra's old protobuf encoding).
pub const FPM_TYPE_NETLINK: u8 = 1;
pub const FPM_HEADER_LEN: usize = 4;
/// zebra's default port for FPM (`fpm address A.B.C.D [port P]`).
pub const FPM_DEFAULT_PORT: u16 = 2620;

pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;

/// `rtm_type` of an ordinary route (`RTN_UNICAST`).
pub const RTN_UNICAST: u8 = 1;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `struct nhmsg`: family, scope, protocol, reserved, flags (u32).
const NHMSG_LEN: usize = 8;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// `struct nexthop_grp`: id (u32), weight, two reserved fields.
const NEXTHOP_GRP_LEN: usize = 8;

/// A frame header that cannot be right: the stream is out of step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("FPM frame of version {0}; only version 1 exists")]
    Version(u8),
    #[error(
        "FPM frame of type {0}; only netlink (1) is read (load zebra's dplane_fpm_nl, not fpm:protobuf)"
    )]
    Type(u8),
    #[error("FPM frame length {0} is shorter than its own 4-byte header")]
    Length(u16),
}

/// The header of the frame at the start of `buffer`, checked: its total
/// length, or `None` when fewer than 4 bytes are there.
pub fn frame_length(buffer: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = buffer.get(..FPM_HEADER_LEN) else {
        return Ok(None);
    };
    if header[0] != FPM_VERSION {
        return Err(FrameError::Version(header[0]));
    }
    if header[1] != FPM_TYPE_NETLINK {
        return Err(FrameError::Type(header[1]));
    }
    let length = u16::from_be_bytes([header[2], header[3]]);
    if usize::from(length) < FPM_HEADER_LEN {
        return Err(FrameError::Length(length));
    }
    Ok(Some(usize::from(length)))
}

/// The whole frames at the start of a buffer, each as its payload (the
/// netlink messages). Stops at a frame that is not all there yet (see
/// [`consumed`](Self::consumed) for where the rest begins), and after an
/// error.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buffer: &'a [u8],
    consumed: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    pub fn new(buffer: &'a [u8]) -> Self {
        Self {
            buffer,
            consumed: 0,
            failed: false,
        }
    }

    /// Bytes of the whole frames yielded so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.buffer[self.consumed..];
        match frame_length(rest) {
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
            Ok(Some(length)) if length <= rest.len() => {
                self.consumed += length;
                Some(Ok(&rest[FPM_HEADER_LEN..length]))
            }
            // Wait for more.
            Ok(_) => None,
        }
    }
}

/// One nexthop of a route: a gateway, an interface, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FpmNexthop {
    pub gateway: Option<IpAddr>,
    /// 0 when zebra gives none.
    pub ifindex: u32,
}

/// A route as zebra sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmRoute {
    pub prefix: IpNet,
    /// `RTA_TABLE`, or the header's table when there is none.
    pub table: u32,
    /// `rtm_protocol`: which FRR daemon the route is from (186 bgp, 188
    /// ospf, 196 static, ...), 2 for a route zebra found in the kernel.
    pub protocol: u8,
    /// `rtm_type`: 1 unicast, 6 blackhole, 7 unreachable, ...
    pub route_type: u8,
    /// The source prefix length of a source-specific (IPv6) route.
    pub source_len: u8,
    /// `RTA_PRIORITY`: the kernel metric zebra would give the route.
    pub priority: Option<u32>,
    /// `RTA_GATEWAY`/`RTA_OIF`, or each `RTA_MULTIPATH` entry (ECMP).
    pub nexthops: Vec<FpmNexthop>,
    /// `RTA_NH_ID`: a nexthop object (or group) sent before.
    pub nexthop_id: Option<u32>,
}

/// A nexthop object (`RTM_NEWNEXTHOP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopObject {
    pub id: u32,
    pub kind: NexthopKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NexthopKind {
    Single(FpmNexthop),
    /// The ids of its members (weights are not kept: the bridge's ECMP
    /// has none).
    Group(Vec<u32>),
    Blackhole,
}

/// One netlink message of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    NewRoute(FpmRoute),
    DelRoute(FpmRoute),
    NewNexthop(NexthopObject),
    DelNexthop(u32),
    /// A message the bridge has no use for (MPLS routes, MACs,
    /// neighbours): its netlink type.
    Ignored(u16),
}

/// A netlink message that does not parse (or cannot be framed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("netlink message of type {kind} ({length} bytes): {reason}")]
pub struct DecodeError {
    /// The netlink type, 0 when even the header is broken.
    pub kind: u16,
    pub length: usize,
    pub reason: String,
}

/// Every netlink message of a frame's payload, in order. A message that
/// does not parse is an error in its place; a netlink header whose length
/// does not fit ends the frame (what follows it cannot be found).
pub fn decode_frame(payload: &[u8]) -> Vec<Result<Message, DecodeError>> {
    let mut messages = Vec::new();
    let mut offset = 0;
    while offset < payload.len() {
        let rest = &payload[offset..];
        let buffer = match NetlinkBuffer::new_checked(rest) {
            Ok(buffer) => buffer,
            Err(error) => {
                messages.push(Err(DecodeError {
                    kind: 0,
                    length: rest.len(),
                    reason: error.to_string(),
                }));
                break;
            }
        };
        let length = buffer.length() as usize;
        let kind = buffer.message_type();
        messages.push(
            decode_message(kind, buffer.payload()).map_err(|reason| DecodeError {
                kind,
                length,
                reason,
            }),
        );
        // Netlink messages are aligned to 4 bytes.
        offset += length.div_ceil(4) * 4;
    }
    messages
}

fn decode_message(kind: u16, body: &[u8]) -> Result<Message, String> {
    match kind {
        RTM_NEWROUTE | RTM_DELROUTE => {
            let Some(route) = decode_route(body)? else {
                return Ok(Message::Ignored(kind));
            };
            Ok(if kind == RTM_NEWROUTE {
                Message::NewRoute(route)
            } else {
                Message::DelRoute(route)
            })
        }
        RTM_NEWNEXTHOP => decode_nexthop(body).map(Message::NewNexthop),
        RTM_DELNEXTHOP => nexthop_id(body).map(Message::DelNexthop),
        other => Ok(Message::Ignored(other)),
    }
}

/// A route message, or `None` for a family other than IPv4 and IPv6.
fn decode_route(body: &[u8]) -> Result<Option<FpmRoute>, String> {
    let message = RouteMessage::parse(body).map_err(|error| error.to_string())?;
    let header = &message.header;
    let family = u8::from(header.address_family);
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let mut destination = None;
    let mut table = u32::from(header.table);
    let mut priority = None;
    let mut nexthop_id = None;
    let mut single = FpmNexthop {
        gateway: None,
        ifindex: 0,
    };
    let mut multipath = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = Some(ip_of(address)?),
            RouteAttribute::Gateway(address) => single.gateway = Some(ip_of(address)?),
            RouteAttribute::Via(via) => single.gateway = Some(via_ip(via)?),
            RouteAttribute::Oif(index) => single.ifindex = *index,
            RouteAttribute::Table(id) => table = *id,
            RouteAttribute::Priority(value) => priority = Some(*value),
            RouteAttribute::NhId(id) => nexthop_id = Some(*id),
            RouteAttribute::MultiPath(hops) => {
                let mut nexthops = Vec::with_capacity(hops.len());
                for hop in hops {
                    let mut nexthop = FpmNexthop {
                        gateway: None,
                        ifindex: hop.interface_index,
                    };
                    for attribute in &hop.attributes {
                        match attribute {
                            RouteAttribute::Gateway(address) => {
                                nexthop.gateway = Some(ip_of(address)?);
                            }
                            RouteAttribute::Via(via) => nexthop.gateway = Some(via_ip(via)?),
                            _ => {}
                        }
                    }
                    nexthops.push(nexthop);
                }
                multipath = Some(nexthops);
            }
            _ => {}
        }
    }
    let length = header.destination_prefix_length;
    let address = match (destination, family) {
        (Some(address), _) => address,
        (None, AF_INET) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, _) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    if matches!(
        (address, family),
        (IpAddr::V4(_), AF_INET6) | (IpAddr::V6(_), AF_INET)
    ) {
        return Err(format!(
            "destination {address} in a route of family {family}"
        ));
    }
    let prefix =
        IpNet::new(address, length).map_err(|_| format!("prefix length {length} for {address}"))?;
    let nexthops = match multipath {
        Some(nexthops) => nexthops,
        None if single.gateway.is_some() || single.ifindex != 0 => vec![single],
        None => Vec::new(),
    };
    Ok(Some(FpmRoute {
        prefix,
        table,
        protocol: u8::from(header.protocol),
        route_type: u8::from(header.kind),
        source_len: header.source_prefix_length,
        priority,
        nexthops,
        nexthop_id,
    }))
}

fn ip_of(address: &RouteAddress) -> Result<IpAddr, String> {
    match address {
        RouteAddress::Inet(v4) => Ok(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Ok(IpAddr::V6(*v6)),
        other => Err(format!("not an IP address: {other:?}")),
    }
}

fn via_ip(via: &RouteVia) -> Result<IpAddr, String> {
    match via {
        RouteVia::Inet(v4) => Ok(IpAddr::V4(*v4)),
        RouteVia::Inet6(v6) => Ok(IpAddr::V6(*v6)),
        other => Err(format!("not an IP address: {other:?}")),
    }
}

/// `struct nhmsg` and its attributes (netlink-packet-route has no nexthop
/// objects).
fn decode_nexthop(body: &[u8]) -> Result<NexthopObject, String> {
    let family = *body
        .first()
        .ok_or_else(|| format!("nexthop message of {} bytes", body.len()))?;
    let attributes = body
        .get(NHMSG_LEN..)
        .ok_or_else(|| format!("nexthop message of {} bytes", body.len()))?;
    let mut id = None;
    let mut group = None;
    let mut blackhole = false;
    let mut nexthop = FpmNexthop {
        gateway: None,
        ifindex: 0,
    };
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(|error| error.to_string())?;
        let value = nla.value();
        match nla.kind() {
            NHA_ID => id = Some(u32_of(value, "NHA_ID")?),
            NHA_OIF => nexthop.ifindex = u32_of(value, "NHA_OIF")?,
            NHA_BLACKHOLE => blackhole = true,
            // By its length rather than the message's family: zebra gives
            // the nexthop of an IPv4 route through an IPv6 gateway (RFC
            // 8950) the route's family and the gateway's 16 bytes.
            NHA_GATEWAY => {
                nexthop.gateway = Some(match value.len() {
                    4 => IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3])),
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(value);
                        IpAddr::V6(Ipv6Addr::from(octets))
                    }
                    _ => {
                        return Err(format!(
                            "NHA_GATEWAY of {} bytes in family {family}",
                            value.len()
                        ));
                    }
                });
            }
            NHA_GROUP => {
                if !value.len().is_multiple_of(NEXTHOP_GRP_LEN) {
                    return Err(format!("NHA_GROUP of {} bytes", value.len()));
                }
                group = Some(
                    value
                        .chunks_exact(NEXTHOP_GRP_LEN)
                        .map(|entry| u32::from_ne_bytes([entry[0], entry[1], entry[2], entry[3]]))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    let id = id.ok_or("nexthop without NHA_ID")?;
    let kind = match group {
        Some(members) => NexthopKind::Group(members),
        None if blackhole => NexthopKind::Blackhole,
        None => NexthopKind::Single(nexthop),
    };
    Ok(NexthopObject { id, kind })
}

fn nexthop_id(body: &[u8]) -> Result<u32, String> {
    let attributes = body
        .get(NHMSG_LEN..)
        .ok_or_else(|| format!("nexthop message of {} bytes", body.len()))?;
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(|error| error.to_string())?;
        if nla.kind() == NHA_ID {
            return u32_of(nla.value(), "NHA_ID");
        }
    }
    Err("nexthop without NHA_ID".into())
}

fn u32_of(value: &[u8], what: &str) -> Result<u32, String> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| format!("{what} of {} bytes", value.len()))?;
    Ok(u32::from_ne_bytes(bytes))
}
