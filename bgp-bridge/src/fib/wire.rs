//! The bytes of rtnetlink route messages, both ways: requests are written
//! straight into the caller's reused buffer (no value per route, no
//! allocation), and replies are read in place as borrowed views.
//!
//! Only what the FIB programmer needs is here: route requests (`RTM_NEWROUTE`,
//! `RTM_DELROUTE`, `RTM_GETROUTE` dumps), the `NLMSG_NOOP` barrier, and the
//! replies to them (acknowledgements with the kernel's extended message, dump
//! parts, the end of a dump). Netlink is in host byte order; addresses are in
//! network order, as their octets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

// Values of the kernel ABI (linux/netlink.h, linux/rtnetlink.h), typed as
// the fields they go in.
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;
/// In an acknowledgement: the request is echoed as its header only.
const NLM_F_CAPPED: u16 = 0x100;
/// In an acknowledgement: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_PRIORITY: u16 = 6;
pub const RTA_PREFSRC: u16 = 7;
pub const RTA_MULTIPATH: u16 = 9;
pub const RTA_TABLE: u16 = 15;
pub const RTA_VIA: u16 = 18;
/// Attribute types carry two flag bits (nested, network byte order).
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const RTN_UNICAST: u8 = 1;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_NOWHERE: u8 = 255;
pub const RT_TABLE_UNSPEC: u8 = 0;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RTNH_F_ONLINK: u8 = 4;

const HEADER_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
const RTNEXTHOP_LEN: usize = 8;

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(align(buf.len()), 0);
}

/// An attribute (or a nexthop entry) grew past the 16-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Starts a netlink message at the end of `buf`; returns where it starts,
/// for [`end_message`] and [`set_flags`].
pub fn begin_message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end_message
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: 0 is the kernel
    start
}

/// Writes the length of the message that starts at `start`.
pub fn end_message(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// The fixed part of a route message (`struct rtmsg`).
#[derive(Debug, Clone, Copy)]
pub struct RouteHeader {
    pub family: u8,
    pub destination_len: u8,
    pub table: u8,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    pub flags: u32,
}

pub fn put_route_header(buf: &mut Vec<u8>, header: RouteHeader) {
    buf.extend_from_slice(&[
        header.family,
        header.destination_len,
        0, // source length
        0, // tos
        header.table,
        header.protocol,
        header.scope,
        header.kind,
    ]);
    buf.extend_from_slice(&header.flags.to_ne_bytes());
}

pub fn put_attribute(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    pad(buf);
}

pub fn put_u32_attribute(buf: &mut Vec<u8>, kind: u16, value: u32) {
    put_attribute(buf, kind, &value.to_ne_bytes());
}

/// `RTA_GATEWAY` when the gateway is of the route's family, `RTA_VIA` (an
/// IPv4 route through an IPv6 gateway) otherwise.
pub fn put_gateway(buf: &mut Vec<u8>, route_family: u8, gateway: IpAddr) {
    match (route_family, gateway) {
        (AF_INET, IpAddr::V4(address)) => put_attribute(buf, RTA_GATEWAY, &address.octets()),
        (AF_INET6, IpAddr::V6(address)) => put_attribute(buf, RTA_GATEWAY, &address.octets()),
        (_, IpAddr::V4(address)) => put_via(buf, AF_INET, &address.octets()),
        (_, IpAddr::V6(address)) => put_via(buf, AF_INET6, &address.octets()),
    }
}

fn put_via(buf: &mut Vec<u8>, family: u8, octets: &[u8]) {
    buf.extend_from_slice(&((4 + 2 + octets.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&RTA_VIA.to_ne_bytes());
    buf.extend_from_slice(&u16::from(family).to_ne_bytes());
    buf.extend_from_slice(octets);
    pad(buf);
}

/// Starts an attribute whose payload follows (`RTA_MULTIPATH`); returns
/// where it starts, for [`end_nested`].
pub fn begin_nested(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    start
}

pub fn end_nested(buf: &mut [u8], start: usize) -> Result<(), TooLong> {
    let len = u16::try_from(buf.len() - start).map_err(|_| TooLong)?;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    Ok(())
}

/// Starts one entry of `RTA_MULTIPATH` (`struct rtnexthop`, weight 1); its
/// attributes follow; [`end_nexthop`] closes it.
pub fn begin_nexthop(buf: &mut Vec<u8>, flags: u8, ifindex: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.push(flags);
    buf.push(0); // hops: weight - 1
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    start
}

pub fn end_nexthop(buf: &mut [u8], start: usize) -> Result<(), TooLong> {
    end_nested(buf, start)
}

/// One netlink message of a received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of a received datagram, in order; an error ends it.
pub fn messages(mut bytes: &[u8]) -> impl Iterator<Item = Result<Message<'_>, Malformed>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        if bytes.len() < HEADER_LEN {
            bytes = &[];
            return Some(Err(Malformed("a message shorter than its header")));
        }
        let len = read_u32(bytes, 0) as usize;
        if len < HEADER_LEN || len > bytes.len() {
            bytes = &[];
            return Some(Err(Malformed("a message length beyond the datagram")));
        }
        let message = Message {
            kind: read_u16(bytes, 4),
            flags: read_u16(bytes, 6),
            seq: read_u32(bytes, 8),
            payload: &bytes[HEADER_LEN..len],
        };
        bytes = &bytes[align(len).min(bytes.len())..];
        Some(Ok(message))
    })
}

/// What in a reply did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The attributes in `bytes`, in order; a malformed one ends the walk.
pub fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = read_u16(bytes, 0) as usize;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let attribute = (read_u16(bytes, 2) & NLA_TYPE_MASK, &bytes[4..len]);
        bytes = &bytes[align(len).min(bytes.len())..];
        Some(attribute)
    })
}

/// The kernel's answer to one request (`NLMSG_ERROR`; error 0 is success).
#[derive(Debug, Clone, Copy)]
pub struct Ack<'a> {
    /// Positive errno, 0 for success.
    pub errno: i32,
    /// The extended ack's message (`NETLINK_EXT_ACK`), if the kernel gave one.
    pub message: Option<&'a str>,
}

pub fn parse_ack<'a>(message: &Message<'a>) -> Result<Ack<'a>, Malformed> {
    let payload = message.payload;
    if payload.len() < 4 + HEADER_LEN {
        return Err(Malformed("an acknowledgement shorter than nlmsgerr"));
    }
    let errno = (read_u32(payload, 0) as i32).saturating_neg();
    let echoed = if message.flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        align(read_u32(payload, 4) as usize)
    };
    let mut text = None;
    if message.flags & NLM_F_ACK_TLVS != 0
        && let Some(tlvs) = payload.get(4 + echoed..)
    {
        text = attributes(tlvs)
            .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
            .and_then(|(_, value)| {
                let value = value.split(|byte| *byte == 0).next().unwrap_or(value);
                std::str::from_utf8(value).ok()
            })
            .filter(|text| !text.is_empty());
    }
    Ok(Ack {
        errno,
        message: text,
    })
}

/// A route message as the kernel dumps it, read in place.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'a> {
    pub family: u8,
    pub destination_len: u8,
    pub table: u32,
    pub protocol: u8,
    pub kind: u8,
    pub destination: Option<&'a [u8]>,
    pub priority: u32,
    pub oif: u32,
    pub gateway: Option<IpAddr>,
    /// `RTA_PREFSRC`: the route's preferred source address (`src`).
    pub source: Option<IpAddr>,
    pub multipath: Option<&'a [u8]>,
}

pub fn parse_route(payload: &[u8]) -> Result<RouteView<'_>, Malformed> {
    if payload.len() < RTMSG_LEN {
        return Err(Malformed("a route message shorter than rtmsg"));
    }
    let family = payload[0];
    let mut view = RouteView {
        family,
        destination_len: payload[1],
        table: u32::from(payload[4]),
        protocol: payload[5],
        kind: payload[7],
        destination: None,
        priority: 0,
        oif: 0,
        gateway: None,
        source: None,
        multipath: None,
    };
    for (kind, value) in attributes(&payload[RTMSG_LEN..]) {
        match kind {
            RTA_DST => view.destination = Some(value),
            RTA_TABLE if value.len() == 4 => view.table = read_u32(value, 0),
            RTA_PRIORITY if value.len() == 4 => view.priority = read_u32(value, 0),
            RTA_OIF if value.len() == 4 => view.oif = read_u32(value, 0),
            RTA_GATEWAY => view.gateway = address(family, value),
            RTA_VIA => view.gateway = via(value),
            RTA_PREFSRC => view.source = address(family, value),
            RTA_MULTIPATH => view.multipath = Some(value),
            _ => {}
        }
    }
    Ok(view)
}

impl RouteView<'_> {
    /// The destination prefix; `None` for a family other than IPv4 and
    /// IPv6 or a malformed address.
    pub fn prefix(&self) -> Option<IpNet> {
        let address = match self.destination {
            Some(bytes) => address(self.family, bytes)?,
            None => match self.family {
                AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => return None,
            },
        };
        IpNet::new(address, self.destination_len).ok()
    }

    /// Each nexthop's output interface (0 if none) and gateway.
    pub fn nexthops(&self) -> impl Iterator<Item = (u32, Option<IpAddr>)> + '_ {
        let single = (self.multipath.is_none() && (self.oif != 0 || self.gateway.is_some()))
            .then_some((self.oif, self.gateway));
        let mut entries = self.multipath.unwrap_or(&[]);
        let family = self.family;
        let multipath = std::iter::from_fn(move || {
            if entries.len() < RTNEXTHOP_LEN {
                return None;
            }
            let len = read_u16(entries, 0) as usize;
            if len < RTNEXTHOP_LEN || len > entries.len() {
                return None;
            }
            let ifindex = read_u32(entries, 4);
            let mut gateway = None;
            for (kind, value) in attributes(&entries[RTNEXTHOP_LEN..len]) {
                match kind {
                    RTA_GATEWAY => gateway = address(family, value),
                    RTA_VIA => gateway = via(value),
                    _ => {}
                }
            }
            entries = &entries[align(len).min(entries.len())..];
            Some((ifindex, gateway))
        });
        single.into_iter().chain(multipath)
    }
}

fn address(family: u8, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        AF_INET6 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn via(value: &[u8]) -> Option<IpAddr> {
    let family = u8::try_from(read_u16(value.get(..2)?, 0)).ok()?;
    address(family, &value[2..])
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multipath route written with the writers reads back the same.
    #[test]
    fn a_route_message_reads_back() {
        let mut buf = Vec::new();
        let start = begin_message(&mut buf, RTM_NEWROUTE, NLM_F_REQUEST, 7);
        put_route_header(
            &mut buf,
            RouteHeader {
                family: AF_INET,
                destination_len: 24,
                table: RT_TABLE_UNSPEC,
                protocol: 200,
                scope: RT_SCOPE_UNIVERSE,
                kind: RTN_UNICAST,
                flags: 0,
            },
        );
        put_u32_attribute(&mut buf, RTA_TABLE, 1000);
        put_attribute(&mut buf, RTA_DST, &[10, 1, 2, 0]);
        put_u32_attribute(&mut buf, RTA_PRIORITY, 20);
        put_attribute(&mut buf, RTA_PREFSRC, &[172, 20, 1, 1]);
        let multipath = begin_nested(&mut buf, RTA_MULTIPATH);
        let first = begin_nexthop(&mut buf, RTNH_F_ONLINK, 3);
        put_gateway(&mut buf, AF_INET, "10.9.0.1".parse().unwrap());
        end_nexthop(&mut buf, first).unwrap();
        let second = begin_nexthop(&mut buf, RTNH_F_ONLINK, 4);
        put_gateway(&mut buf, AF_INET, "fe80::1".parse().unwrap());
        end_nexthop(&mut buf, second).unwrap();
        end_nested(&mut buf, multipath).unwrap();
        end_message(&mut buf, start);

        let parsed: Vec<_> = messages(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].kind, parsed[0].seq), (RTM_NEWROUTE, 7));
        let route = parse_route(parsed[0].payload).unwrap();
        assert_eq!(route.prefix(), Some("10.1.2.0/24".parse().unwrap()));
        assert_eq!(
            (route.table, route.protocol, route.priority),
            (1000, 200, 20)
        );
        assert_eq!(route.source, Some("172.20.1.1".parse().unwrap()));
        let nexthops: Vec<_> = route.nexthops().collect();
        assert_eq!(
            nexthops,
            [
                (3, Some("10.9.0.1".parse().unwrap())),
                (4, Some("fe80::1".parse().unwrap()))
            ]
        );
    }

    #[test]
    fn an_error_ack_gives_errno_and_message() {
        let mut buf = Vec::new();
        let start = begin_message(&mut buf, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 9);
        buf.extend_from_slice(&(-17i32).to_ne_bytes());
        let echoed = begin_message(&mut buf, RTM_NEWROUTE, NLM_F_REQUEST, 9);
        end_message(&mut buf, echoed);
        put_attribute(&mut buf, NLMSGERR_ATTR_MSG, b"Nexthop device is not up\0");
        end_message(&mut buf, start);

        let message = messages(&buf).next().unwrap().unwrap();
        let ack = parse_ack(&message).unwrap();
        assert_eq!(ack.errno, 17);
        assert_eq!(ack.message, Some("Nexthop device is not up"));
    }

    #[test]
    fn a_truncated_datagram_is_malformed() {
        let mut buf = Vec::new();
        let start = begin_message(&mut buf, NLMSG_DONE, 0, 1);
        buf.extend_from_slice(&[0; 4]);
        end_message(&mut buf, start);
        buf.truncate(buf.len() - 2);
        assert!(messages(&buf).next().unwrap().is_err());
    }
}
