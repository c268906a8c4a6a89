//! UPDATE messages (RFC 4271 4.3) to and from wgd's own values, with the
//! revised error handling of RFC 7606. Pure: bytes in, values out.
//!
//! In: an UPDATE *body* (what follows the 19-octet header; `session` checks
//! the header and hands the body up) and the session's `Negotiated`. Out: a
//! `Decoded`, either an `Update` (routes announced, prefixes withdrawn,
//! End-of-RIB markers) with the `Problem`s that were handled softly
//! (attribute discarded, UPDATE treated as withdraw, family ignored), or
//! the `Notification` that resets the session.
//!
//! The framing is walked here, attribute by attribute, rather than decoded
//! whole by a library: to treat an UPDATE as withdraw we must still find
//! its NLRI (in the body and in MP_REACH_NLRI / MP_UNREACH_NLRI) when one
//! of its attributes is malformed.
//!
//! Out the other way: `encode` turns routes and withdrawals of one family
//! into whole UPDATE messages of at most 4096 octets (65535 where the
//! session negotiated extended messages, RFC 8654), `end_of_rib` gives
//! the marker of RFC 4724.
//!
//! Choices where the RFCs leave room:
//! - a malformed MP_REACH_NLRI / MP_UNREACH_NLRI, or NLRI that cannot be
//!   parsed, resets the session (RFC 7606 allows "AFI/SAFI disable"
//!   instead; reset is simpler and loses nothing a restart would not);
//! - an attribute list that cannot be walked to its end (an attribute runs
//!   past the Total Path Attribute Length) is treated as withdraw, as RFC
//!   7606 4 requires while the framing locates the NLRI: an MP_REACH_NLRI
//!   not seen before the break is taken to be absent, since RFC 7606 5.1
//!   has senders encode it first;
//! - MP attributes of a family the session did not negotiate are ignored;
//! - NEXT_HOP is checked only when the body carries NLRI (RFC 4760 3);
//! - an eBGP neighbor's AS_PATH must start with its AS (the "MAY" check of
//!   RFC 4271 6.3), otherwise the UPDATE is treated as withdraw.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use super::types::MAX_MESSAGE_LEN;
use super::types::{
    AS_TRANS, AsSegment, Asn, Attributes, DEFAULT_LOCAL_PREF, Family, Negotiated, Notification,
    Origin, RawAttribute, Update,
};

/// Octets of the message header: marker, length, type.
pub const HEADER_LEN: usize = 19;
const MESSAGE_TYPE_UPDATE: u8 = 2;

/// Path attribute type codes (IANA "BGP Path Attributes").
mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const IPV6_EXTENDED_COMMUNITIES: u8 = 25;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 4.3).
mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// NOTIFICATION codes and subcodes an UPDATE can draw (RFC 4271 4.5, 6).
pub mod error {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
}

/// What became of an UPDATE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The UPDATE to apply: whatever could not be taken is already folded
    /// in (discarded attributes left out, treat-as-withdraw routes listed
    /// as withdrawn), and `problems` says what and why, for the log.
    Update {
        update: Update,
        problems: Vec<Problem>,
    },
    /// Send this NOTIFICATION and close the session.
    Reset(Notification),
}

/// How a problem in an UPDATE was handled (RFC 7606 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The attribute was dropped; the routes stand.
    AttributeDiscard,
    /// Every route the UPDATE announces is withdrawn instead.
    TreatAsWithdraw,
    /// Routes of a family the session did not negotiate, left aside.
    Ignore,
}

/// One thing an UPDATE got wrong that did not reset the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The attribute's type code; `None` for the framing and the NLRI.
    pub attribute: Option<u8>,
    pub action: Action,
    pub reason: String,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::AttributeDiscard => "attribute discarded",
            Action::TreatAsWithdraw => "treated as withdraw",
            Action::Ignore => "ignored",
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.attribute {
            Some(code) => write!(f, "{}: ", attribute_name(code))?,
            None => f.write_str("UPDATE: ")?,
        }
        write!(f, "{} ({})", self.reason, self.action)
    }
}

/// The attribute's name as the RFCs spell it, for problems and logs.
pub fn attribute_name(type_code: u8) -> String {
    let name = match type_code {
        code::ORIGIN => "ORIGIN",
        code::AS_PATH => "AS_PATH",
        code::NEXT_HOP => "NEXT_HOP",
        code::MED => "MULTI_EXIT_DISC",
        code::LOCAL_PREF => "LOCAL_PREF",
        code::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        code::AGGREGATOR => "AGGREGATOR",
        code::COMMUNITIES => "COMMUNITIES",
        code::ORIGINATOR_ID => "ORIGINATOR_ID",
        code::CLUSTER_LIST => "CLUSTER_LIST",
        code::MP_REACH_NLRI => "MP_REACH_NLRI",
        code::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        code::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        code::AS4_PATH => "AS4_PATH",
        code::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        code::IPV6_EXTENDED_COMMUNITIES => "IPV6_EXTENDED_COMMUNITIES",
        code::LARGE_COMMUNITIES => "LARGE_COMMUNITY",
        other => return format!("attribute {other}"),
    };
    name.to_owned()
}

fn reset(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
    Notification {
        code,
        subcode,
        data,
    }
}

fn malformed_attribute_list() -> Notification {
    reset(
        error::UPDATE_MESSAGE,
        error::MALFORMED_ATTRIBUTE_LIST,
        Vec::new(),
    )
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// Decodes an UPDATE body (the message without its 19-octet header) under
/// what the session negotiated. Never panics, whatever the bytes.
pub fn decode(body: &[u8], session: &Negotiated) -> Decoded {
    match decode_body(body, session) {
        Ok((update, problems)) => Decoded::Update { update, problems },
        Err(notification) => Decoded::Reset(notification),
    }
}

fn decode_body(body: &[u8], session: &Negotiated) -> Result<(Update, Vec<Problem>), Notification> {
    // A body too short for the two length fields is a header-level length
    // error: the data is the message length as the header gave it.
    let Some(withdrawn_len) = read_u16(body, 0).filter(|_| body.len() >= 4) else {
        let length = u16::try_from(body.len() + HEADER_LEN).unwrap_or(u16::MAX);
        return Err(reset(
            error::MESSAGE_HEADER,
            error::BAD_MESSAGE_LENGTH,
            length.to_be_bytes().to_vec(),
        ));
    };
    let withdrawn_end = 2 + usize::from(withdrawn_len);
    // Withdrawn Routes Length + Total Attribute Length + 23 > message length
    // (RFC 4271 6.3): the NLRI cannot be located, so no treat-as-withdraw.
    let Some(attributes_len) = read_u16(body, withdrawn_end) else {
        return Err(malformed_attribute_list());
    };
    let attributes_start = withdrawn_end + 2;
    let attributes_end = attributes_start + usize::from(attributes_len);
    if attributes_end > body.len() {
        return Err(malformed_attribute_list());
    }
    let invalid_network_field = || {
        reset(
            error::UPDATE_MESSAGE,
            error::INVALID_NETWORK_FIELD,
            Vec::new(),
        )
    };
    let withdrawn = parse_prefixes(&body[2..withdrawn_end], Family::Ipv4Unicast)
        .map_err(|_| invalid_network_field())?;
    let nlri = parse_prefixes(&body[attributes_end..], Family::Ipv4Unicast)
        .map_err(|_| invalid_network_field())?;

    let mut walk = Walk::new(session);
    walk.attributes(&body[attributes_start..attributes_end])?;
    Ok(walk.finish(withdrawn, nlri, body.len() == 4))
}

/// Parses a run of `<length, prefix>` pairs (RFC 4271 4.3, RFC 4760 5).
/// Host bits past the length are cleared. Fails on a length longer than
/// the family's addresses or a prefix that runs past the end (RFC 7606
/// 5.3: the caller resets the session).
fn parse_prefixes(mut bytes: &[u8], family: Family) -> Result<Vec<IpNet>, &'static str> {
    let max_len: u8 = match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    };
    let mut prefixes = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        if len > max_len {
            return Err("prefix length longer than the address");
        }
        let octets = usize::from(len).div_ceil(8);
        if octets > rest.len() {
            return Err("prefix runs past the end of the field");
        }
        let prefix = match family {
            Family::Ipv4Unicast => {
                let mut address = [0u8; 4];
                address[..octets].copy_from_slice(&rest[..octets]);
                Ipv4Net::new(Ipv4Addr::from(address), len).map(|net| IpNet::V4(net.trunc()))
            }
            Family::Ipv6Unicast => {
                let mut address = [0u8; 16];
                address[..octets].copy_from_slice(&rest[..octets]);
                Ipv6Net::new(Ipv6Addr::from(address), len).map(|net| IpNet::V6(net.trunc()))
            }
        };
        prefixes.push(prefix.map_err(|_| "prefix length longer than the address")?);
        bytes = &rest[octets..];
    }
    Ok(prefixes)
}

/// Parses AS_PATH or AS4_PATH segments of `width`-octet AS numbers. The
/// errors are those RFC 7606 7.2 lists: overrun, underrun (a lone octet
/// left), a zero-length segment, an unknown segment type.
fn parse_as_path(mut bytes: &[u8], width: usize) -> Result<Vec<AsSegment>, &'static str> {
    let mut segments = Vec::new();
    while !bytes.is_empty() {
        let [kind, count, rest @ ..] = bytes else {
            return Err("a lone octet after the last segment");
        };
        if *count == 0 {
            return Err("a segment of zero length");
        }
        let size = usize::from(*count) * width;
        if size > rest.len() {
            return Err("a segment runs past the attribute");
        }
        let asns: Vec<Asn> = rest[..size]
            .chunks_exact(width)
            .map(|octets| {
                octets
                    .iter()
                    .fold(0u32, |asn, octet| (asn << 8) | u32::from(*octet))
            })
            .collect();
        segments.push(match kind {
            1 => AsSegment::Set(asns),
            2 => AsSegment::Sequence(asns),
            3 => AsSegment::ConfedSequence(asns),
            4 => AsSegment::ConfedSet(asns),
            _ => return Err("an unknown segment type"),
        });
        bytes = &rest[size..];
    }
    Ok(segments)
}

/// Why a nexthop cannot be a host's address (RFC 4271 6.3: "not a valid
/// IP host address"), if it cannot.
fn bad_next_hop(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("0.0.0.0"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.octets()[0] >= 240 => Some("a reserved (class E) address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("::"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
        _ => None,
    }
}

/// The flags (optional, transitive) an attribute wgd knows must carry.
fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPTIONAL_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const OPTIONAL_NON_TRANSITIVE: u8 = flag::OPTIONAL;
    match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => Some(WELL_KNOWN),
        code::MED
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => Some(OPTIONAL_NON_TRANSITIVE),
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::IPV6_EXTENDED_COMMUNITIES
        | code::LARGE_COMMUNITIES => Some(OPTIONAL_TRANSITIVE),
        _ => None,
    }
}

/// The routes an MP_REACH_NLRI announces.
#[derive(Debug)]
struct Reach {
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
    nlri: Vec<IpNet>,
}

/// The state of one walk through an attribute list.
struct Walk<'s> {
    session: &'s Negotiated,
    attributes: Attributes,
    seen: [bool; 256],
    /// NEXT_HOP, or why it is unusable; checked only if the body has NLRI.
    next_hop: Option<Result<Ipv4Addr, String>>,
    as4_path: Option<Vec<AsSegment>>,
    as4_aggregator: Option<(Asn, Ipv4Addr)>,
    reach: Option<Reach>,
    unreach: Option<(Family, Vec<IpNet>)>,
    /// An MP_REACH_NLRI was met, whatever its family.
    reach_seen: bool,
    withdraw: bool,
    problems: Vec<Problem>,
}

impl<'s> Walk<'s> {
    fn new(session: &'s Negotiated) -> Self {
        Self {
            session,
            attributes: Attributes::default(),
            seen: [false; 256],
            next_hop: None,
            as4_path: None,
            as4_aggregator: None,
            reach: None,
            unreach: None,
            reach_seen: false,
            withdraw: false,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, attribute: Option<u8>, action: Action, reason: impl Into<String>) {
        if action == Action::TreatAsWithdraw {
            self.withdraw = true;
        }
        self.problems.push(Problem {
            attribute,
            action,
            reason: reason.into(),
        });
    }

    fn discard(&mut self, type_code: u8, reason: impl Into<String>) {
        self.problem(Some(type_code), Action::AttributeDiscard, reason);
    }

    fn withdraw(&mut self, type_code: u8, reason: impl Into<String>) {
        self.problem(Some(type_code), Action::TreatAsWithdraw, reason);
    }

    /// Walks the attribute list, attribute by attribute (RFC 7606 4).
    fn attributes(&mut self, mut list: &[u8]) -> Result<(), Notification> {
        while !list.is_empty() {
            let header_len = if list[0] & flag::EXTENDED_LENGTH != 0 {
                4
            } else {
                3
            };
            let value_len = match header_len {
                4 => read_u16(list, 2).map(usize::from),
                _ => list.get(2).copied().map(usize::from),
            };
            let Some(value_len) = value_len.filter(|len| header_len + len <= list.len()) else {
                return self.broken_list(list.len() < header_len);
            };
            let (raw, rest) = list.split_at(header_len + value_len);
            self.attribute(raw[0], raw[1], &raw[header_len..], raw)?;
            list = rest;
        }
        Ok(())
    }

    /// The attribute list cannot be walked to its end, but the framing
    /// still locates the NLRI: treat as withdraw (a MUST in RFC 7606 4).
    /// An MP_REACH_NLRI comes first when there is one (RFC 7606 5.1), so
    /// one not seen before the break is taken to be absent.
    fn broken_list(&mut self, short_header: bool) -> Result<(), Notification> {
        let reason = if short_header {
            "the attribute list ends inside an attribute header"
        } else {
            "an attribute runs past the end of the attribute list"
        };
        self.problem(None, Action::TreatAsWithdraw, reason);
        Ok(())
    }

    fn attribute(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        raw: &[u8],
    ) -> Result<(), Notification> {
        let mp = matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI);
        if std::mem::replace(&mut self.seen[usize::from(type_code)], true) {
            if mp {
                return Err(malformed_attribute_list());
            }
            self.discard(type_code, "repeated: all but the first dropped");
            return Ok(());
        }
        let ebgp = self.session.is_ebgp();
        match type_code {
            code::LOCAL_PREF | code::ORIGINATOR_ID | code::CLUSTER_LIST if ebgp => {
                self.discard(type_code, "from an external neighbor");
                return Ok(());
            }
            code::AS4_PATH | code::AS4_AGGREGATOR if self.session.four_octet_as => {
                self.discard(type_code, "between 4-octet AS speakers (RFC 6793)");
                return Ok(());
            }
            _ => {}
        }
        if let Some(expected) = expected_flags(type_code)
            && flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected
        {
            let reason = format!("flags {flags:#04x} conflict with the attribute's kind");
            match type_code {
                // RFC 6793 6: errors in the AS4 attributes discard them.
                code::AS4_PATH | code::AS4_AGGREGATOR => {
                    self.discard(type_code, reason);
                    return Ok(());
                }
                // Still parsed below: their NLRI must be withdrawn.
                code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => self.withdraw(type_code, reason),
                _ => {
                    self.withdraw(type_code, reason);
                    return Ok(());
                }
            }
        }
        match type_code {
            code::ORIGIN => match value {
                [0] => self.attributes.origin = Origin::Igp,
                [1] => self.attributes.origin = Origin::Egp,
                [2] => self.attributes.origin = Origin::Incomplete,
                [other] => self.withdraw(type_code, format!("undefined value {other}")),
                _ => self.withdraw(type_code, format!("length {} (not 1)", value.len())),
            },
            code::AS_PATH => {
                let width = if self.session.four_octet_as { 4 } else { 2 };
                match parse_as_path(value, width) {
                    Ok(segments) => self.attributes.as_path = segments,
                    Err(reason) => self.withdraw(type_code, reason),
                }
            }
            code::NEXT_HOP => {
                self.next_hop = Some(match <[u8; 4]>::try_from(value) {
                    Ok(octets) => {
                        let address = Ipv4Addr::from(octets);
                        match bad_next_hop(IpAddr::V4(address)) {
                            Some(what) => Err(format!("{address} is {what}")),
                            None => Ok(address),
                        }
                    }
                    Err(_) => Err(format!("length {} (not 4)", value.len())),
                });
            }
            code::MED => match read_u32(value) {
                Some(med) => self.attributes.med = Some(med),
                None => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::LOCAL_PREF => match read_u32(value) {
                Some(local_pref) => self.attributes.local_pref = Some(local_pref),
                None => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::ATOMIC_AGGREGATE => {
                if value.is_empty() {
                    self.attributes.atomic_aggregate = true;
                } else {
                    self.discard(type_code, format!("length {} (not 0)", value.len()));
                }
            }
            code::AGGREGATOR => {
                let width = if self.session.four_octet_as { 4 } else { 2 };
                match parse_aggregator(value, width) {
                    Some(aggregator) => self.attributes.aggregator = Some(aggregator),
                    None => self.discard(
                        type_code,
                        format!("length {} (not {})", value.len(), width + 4),
                    ),
                }
            }
            code::COMMUNITIES => match words(value) {
                Some(communities) => self.attributes.communities = communities,
                None => self.withdraw(
                    type_code,
                    format!("length {} (not a non-zero multiple of 4)", value.len()),
                ),
            },
            code::ORIGINATOR_ID => match <[u8; 4]>::try_from(value) {
                Ok(octets) => self.attributes.originator_id = Some(Ipv4Addr::from(octets)),
                Err(_) => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::CLUSTER_LIST => match words(value) {
                Some(ids) => {
                    self.attributes.cluster_list = ids.into_iter().map(Ipv4Addr::from).collect();
                }
                None => self.withdraw(
                    type_code,
                    format!("length {} (not a non-zero multiple of 4)", value.len()),
                ),
            },
            code::MP_REACH_NLRI => {
                self.reach_seen = true;
                self.mp_reach(value, raw)?;
            }
            code::MP_UNREACH_NLRI => self.mp_unreach(value, raw)?,
            code::AS4_PATH => match parse_as_path(value, 4) {
                Ok(segments)
                    if segments.iter().any(|segment| {
                        matches!(
                            segment,
                            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)
                        )
                    }) =>
                {
                    self.discard(type_code, "confederation segments (RFC 6793 6)");
                }
                Ok(segments) => self.as4_path = Some(segments),
                Err(reason) => self.discard(type_code, reason),
            },
            code::AS4_AGGREGATOR => match parse_aggregator(value, 4) {
                Some(aggregator) => self.as4_aggregator = Some(aggregator),
                None => self.discard(type_code, format!("length {} (not 8)", value.len())),
            },
            code::EXTENDED_COMMUNITIES
            | code::IPV6_EXTENDED_COMMUNITIES
            | code::LARGE_COMMUNITIES => {
                // Not interpreted, passed on as they came; RFC 7606 7.14,
                // 7.15 and RFC 8092 6 treat a bad length as withdraw.
                let unit = match type_code {
                    code::EXTENDED_COMMUNITIES => 8,
                    code::IPV6_EXTENDED_COMMUNITIES => 20,
                    _ => 12,
                };
                if value.is_empty() || !value.len().is_multiple_of(unit) {
                    self.withdraw(
                        type_code,
                        format!("length {} (not a non-zero multiple of {unit})", value.len()),
                    );
                } else {
                    self.attributes.other.push(RawAttribute {
                        flags: flags & !flag::EXTENDED_LENGTH,
                        code: type_code,
                        value: value.to_vec(),
                    });
                }
            }
            _ if flags & flag::OPTIONAL == 0 => {
                return Err(reset(
                    error::UPDATE_MESSAGE,
                    error::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    raw.to_vec(),
                ));
            }
            // Unknown optional transitive: kept, and partial from here on
            // (RFC 4271 5). Unknown optional non-transitive: quietly dropped.
            _ if flags & flag::TRANSITIVE != 0 => self.attributes.other.push(RawAttribute {
                flags: (flags | flag::PARTIAL) & !flag::EXTENDED_LENGTH,
                code: type_code,
                value: value.to_vec(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// MP_REACH_NLRI (RFC 4760 3): AFI, SAFI, nexthop, reserved, NLRI.
    /// Anything malformed resets the session (RFC 7606 7.11).
    fn mp_reach(&mut self, value: &[u8], raw: &[u8]) -> Result<(), Notification> {
        let malformed = || {
            reset(
                error::UPDATE_MESSAGE,
                error::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
            )
        };
        let [afi_high, afi_low, safi, next_hop_len, rest @ ..] = value else {
            return Err(malformed());
        };
        let afi = u16::from_be_bytes([*afi_high, *afi_low]);
        let Some(family) = self.negotiated(afi, *safi, code::MP_REACH_NLRI) else {
            return Ok(());
        };
        let next_hop_len = usize::from(*next_hop_len);
        // The next hop, then one reserved octet (ignored on receipt).
        if rest.len() < next_hop_len + 1 {
            return Err(malformed());
        }
        let (next_hop, nlri) = rest.split_at(next_hop_len);
        let extended = family == Family::Ipv4Unicast && self.session.extended_next_hop_ipv4;
        let (next_hop, link_local) = match next_hop.len() {
            4 if family == Family::Ipv4Unicast => {
                let octets: [u8; 4] = next_hop.try_into().map_err(|_| malformed())?;
                (IpAddr::V4(Ipv4Addr::from(octets)), None)
            }
            16 | 32 if family == Family::Ipv6Unicast || extended => {
                ipv6_next_hop(next_hop).ok_or_else(malformed)?
            }
            _ => return Err(malformed()),
        };
        let nlri = parse_prefixes(&nlri[1..], family).map_err(|_| malformed())?;
        if !nlri.is_empty()
            && let Some(what) = bad_next_hop(next_hop)
        {
            self.withdraw(code::MP_REACH_NLRI, format!("nexthop {next_hop} is {what}"));
        }
        self.reach = Some(Reach {
            next_hop,
            link_local,
            nlri,
        });
        Ok(())
    }

    /// MP_UNREACH_NLRI (RFC 4760 4): AFI, SAFI, withdrawn routes.
    fn mp_unreach(&mut self, value: &[u8], raw: &[u8]) -> Result<(), Notification> {
        let malformed = || {
            reset(
                error::UPDATE_MESSAGE,
                error::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
            )
        };
        let [afi_high, afi_low, safi, withdrawn @ ..] = value else {
            return Err(malformed());
        };
        let afi = u16::from_be_bytes([*afi_high, *afi_low]);
        let Some(family) = self.negotiated(afi, *safi, code::MP_UNREACH_NLRI) else {
            return Ok(());
        };
        let withdrawn = parse_prefixes(withdrawn, family).map_err(|_| malformed())?;
        self.unreach = Some((family, withdrawn));
        Ok(())
    }

    /// The family of an MP attribute if the session carries it; a problem
    /// noted if not.
    fn negotiated(&mut self, afi: u16, safi: u8, type_code: u8) -> Option<Family> {
        let family = Family::from_afi_safi(afi, safi)
            .filter(|family| self.session.families.contains(family));
        if family.is_none() {
            self.problem(
                Some(type_code),
                Action::Ignore,
                format!("AFI {afi} SAFI {safi} not negotiated on this session"),
            );
        }
        family
    }

    /// Checks what needs the whole list (AS4 merge, the neighbor's AS,
    /// mandatory attributes) and puts the UPDATE together.
    fn finish(
        mut self,
        mut withdrawn: Vec<IpNet>,
        mut nlri: Vec<IpNet>,
        empty: bool,
    ) -> (Update, Vec<Problem>) {
        if !nlri.is_empty() && !self.session.families.contains(&Family::Ipv4Unicast) {
            self.problem(
                None,
                Action::Ignore,
                "IPv4 NLRI on a session that did not negotiate IPv4 unicast",
            );
            nlri.clear();
        }
        if !self.session.four_octet_as {
            self.merge_as4();
        }
        let reach_nlri = self
            .reach
            .as_ref()
            .is_some_and(|reach| !reach.nlri.is_empty());
        if self.seen[usize::from(code::AS_PATH)] && !self.withdraw && self.session.is_ebgp() {
            let first = match self.attributes.as_path.first() {
                Some(AsSegment::Sequence(asns)) => asns.first().copied(),
                _ => None,
            };
            if (!nlri.is_empty() || reach_nlri) && first != Some(self.session.remote_as) {
                self.withdraw(
                    code::AS_PATH,
                    format!(
                        "does not start with the neighbor's AS {}",
                        self.session.remote_as
                    ),
                );
            }
        }
        if !nlri.is_empty() || reach_nlri {
            for type_code in [code::ORIGIN, code::AS_PATH] {
                if !self.seen[usize::from(type_code)] {
                    self.withdraw(type_code, "missing (mandatory with NLRI)");
                }
            }
        }
        let mut body_next_hop = None;
        if !nlri.is_empty() {
            match self.next_hop.take() {
                Some(Ok(address)) => body_next_hop = Some(address),
                Some(Err(reason)) => self.withdraw(code::NEXT_HOP, reason),
                None => self.withdraw(code::NEXT_HOP, "missing (mandatory with NLRI)"),
            }
        }

        let mut update = Update::default();
        if empty {
            update.end_of_rib.push(Family::Ipv4Unicast);
        }
        if let Some((family, unreach)) = self.unreach.take() {
            if unreach.is_empty() && !self.reach_seen && withdrawn.is_empty() && nlri.is_empty() {
                update.end_of_rib.push(family);
            }
            withdrawn.extend(unreach);
        }
        let reach = self.reach.take();
        if self.withdraw {
            withdrawn.extend(nlri);
            withdrawn.extend(reach.into_iter().flat_map(|reach| reach.nlri));
        } else {
            if let Some(next_hop) = body_next_hop {
                let attributes = Arc::new(Attributes {
                    next_hop: Some(IpAddr::V4(next_hop)),
                    ..self.attributes.clone()
                });
                update.announced.extend(
                    nlri.into_iter()
                        .map(|prefix| (prefix, Arc::clone(&attributes))),
                );
            }
            if let Some(reach) = reach.filter(|reach| !reach.nlri.is_empty()) {
                let attributes = Arc::new(Attributes {
                    next_hop: Some(reach.next_hop),
                    link_local_next_hop: reach.link_local,
                    ..self.attributes
                });
                update.announced.extend(
                    reach
                        .nlri
                        .into_iter()
                        .map(|prefix| (prefix, Arc::clone(&attributes))),
                );
            }
        }
        update.withdrawn = withdrawn;
        (update, self.problems)
    }

    /// Puts AS4_AGGREGATOR and AS4_PATH into what a 2-octet session
    /// carried (RFC 6793 4.2.3).
    fn merge_as4(&mut self) {
        if let Some((asn, _)) = self.attributes.aggregator
            && asn != AS_TRANS
        {
            // The aggregating speaker was 2-octet: the AS4 attributes were
            // put on by someone else and are not to be trusted.
            if self.as4_path.take().is_some() {
                self.discard(code::AS4_PATH, "AGGREGATOR is not AS_TRANS");
            }
            if self.as4_aggregator.take().is_some() {
                self.discard(code::AS4_AGGREGATOR, "AGGREGATOR is not AS_TRANS");
            }
            return;
        }
        if let Some(aggregator) = self.as4_aggregator.take() {
            self.attributes.aggregator = Some(aggregator);
        }
        let Some(as4_path) = self.as4_path.take() else {
            return;
        };
        let as_path = &self.attributes.as_path;
        let as_len: usize = as_path.iter().map(AsSegment::path_len).sum();
        let as4_len: usize = as4_path.iter().map(AsSegment::path_len).sum();
        if as_len < as4_len {
            self.discard(code::AS4_PATH, "longer than AS_PATH");
            return;
        }
        // Keep as many leading ASes of AS_PATH as AS4_PATH lacks, then
        // AS4_PATH; confederation segments at the join stay with the head.
        let mut lacking = as_len - as4_len;
        let mut merged = Vec::new();
        for segment in as_path {
            match segment {
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => {
                    merged.push(segment.clone());
                }
                _ if lacking == 0 => break,
                AsSegment::Sequence(asns) => {
                    let take = lacking.min(asns.len());
                    merged.push(AsSegment::Sequence(asns[..take].to_vec()));
                    lacking -= take;
                }
                AsSegment::Set(_) => {
                    merged.push(segment.clone());
                    lacking -= 1;
                }
            }
        }
        for segment in as4_path {
            match (merged.last_mut(), segment) {
                (Some(AsSegment::Sequence(head)), AsSegment::Sequence(tail)) => {
                    head.extend(tail);
                }
                (_, segment) => merged.push(segment),
            }
        }
        self.attributes.as_path = merged;
    }
}

/// AGGREGATOR or AS4_AGGREGATOR: an AS of `width` octets, then an IPv4
/// address.
fn parse_aggregator(value: &[u8], width: usize) -> Option<(Asn, Ipv4Addr)> {
    if value.len() != width + 4 {
        return None;
    }
    let asn = value[..width]
        .iter()
        .fold(0u32, |asn, octet| (asn << 8) | u32::from(*octet));
    let address: [u8; 4] = value[width..].try_into().ok()?;
    Some((asn, Ipv4Addr::from(address)))
}

/// A non-empty run of 4-octet words (COMMUNITIES, CLUSTER_LIST).
fn words(value: &[u8]) -> Option<Vec<u32>> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    Some(value.chunks_exact(4).filter_map(read_u32).collect())
}

/// An IPv6 MP nexthop: global, optionally followed by link-local (RFC 2545
/// 3). An IPv4-mapped global is the IPv4 address it maps; a global of `::`
/// beside a link-local leaves the link-local as the nexthop (BIRD sends
/// that from an interface without a global address). A second address
/// that is not link-local is ignored, as BIRD and FRR ignore it.
fn ipv6_next_hop(octets: &[u8]) -> Option<(IpAddr, Option<Ipv6Addr>)> {
    let global = Ipv6Addr::from(<[u8; 16]>::try_from(octets.get(..16)?).ok()?);
    let link_local = match octets.get(16..) {
        Some([]) => None,
        Some(rest) => Some(Ipv6Addr::from(<[u8; 16]>::try_from(rest).ok()?))
            .filter(Ipv6Addr::is_unicast_link_local),
        None => None,
    };
    let next_hop = match (global.to_ipv4_mapped(), link_local) {
        (Some(v4), _) => IpAddr::V4(v4),
        (None, Some(link_local)) if global.is_unspecified() => IpAddr::V6(link_local),
        (None, _) => IpAddr::V6(global),
    };
    Some((next_hop, link_local))
}

// ---------------------------------------------------------------------------
// Encoding

/// Turns routes and withdrawals of `family` into whole UPDATE messages
/// (header included) of at most the session's maximum each (4096 octets,
/// 65535 with extended messages): withdrawals first, then
/// one run of messages per distinct set of attributes. IPv4 routes with an
/// IPv4 nexthop go in the body with NEXT_HOP; IPv6 routes, and IPv4 routes
/// with an IPv6 nexthop (RFC 8950, when negotiated), in MP_REACH_NLRI;
/// IPv6 withdrawals in MP_UNREACH_NLRI.
///
/// Left out, since no UPDATE can carry them: a family the session did not
/// negotiate (nothing is sent), prefixes of another family,
/// routes without a nexthop or with an IPv6 nexthop for IPv4 where RFC 8950
/// was not negotiated, and routes whose attributes alone fill a message.
pub fn encode(
    family: Family,
    announced: &[(IpNet, Arc<Attributes>)],
    withdrawn: &[IpNet],
    session: &Negotiated,
) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    if !session.families.contains(&family) {
        return messages;
    }
    let max = session.max_message_len();
    let withdrawn: Vec<&IpNet> = withdrawn
        .iter()
        .filter(|prefix| Family::of(prefix) == family)
        .collect();
    if !withdrawn.is_empty() {
        match family {
            Family::Ipv4Unicast => {
                let budget = max - HEADER_LEN - 4;
                for chunk in pack(withdrawn.into_iter(), budget) {
                    messages.push(message(&chunk, &[], &[]));
                }
            }
            Family::Ipv6Unicast => {
                let budget = max - HEADER_LEN - 4 - 4 - 3;
                for chunk in pack(withdrawn.into_iter(), budget) {
                    let mut value = mp_family(family);
                    value.extend_from_slice(&chunk);
                    let mut attributes = Vec::new();
                    put_attribute(
                        &mut attributes,
                        flag::OPTIONAL,
                        code::MP_UNREACH_NLRI,
                        &value,
                    );
                    messages.push(message(&[], &attributes, &[]));
                }
            }
        }
    }

    // One group per distinct set of attributes, in order of appearance.
    let mut groups: Vec<(&Attributes, Vec<&IpNet>)> = Vec::new();
    let mut index: HashMap<&Attributes, usize> = HashMap::new();
    for (prefix, attributes) in announced {
        if Family::of(prefix) != family {
            continue;
        }
        let at = *index.entry(attributes.as_ref()).or_insert_with(|| {
            groups.push((attributes.as_ref(), Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(prefix);
    }
    for (attributes, prefixes) in groups {
        let next_hop = match (family, attributes.next_hop) {
            (Family::Ipv4Unicast, Some(IpAddr::V4(address))) => {
                let rest = encode_attributes(attributes, session, Some(address));
                let Some(budget) = (max - HEADER_LEN - 4).checked_sub(rest.len()) else {
                    continue;
                };
                for chunk in pack(prefixes.into_iter(), budget) {
                    messages.push(message(&[], &rest, &chunk));
                }
                continue;
            }
            (Family::Ipv4Unicast, Some(IpAddr::V6(address))) if session.extended_next_hop_ipv4 => {
                mp_next_hop(IpAddr::V6(address), attributes.link_local_next_hop)
            }
            (Family::Ipv6Unicast, Some(address)) => {
                mp_next_hop(address, attributes.link_local_next_hop)
            }
            _ => continue,
        };
        let rest = encode_attributes(attributes, session, None);
        // MP_REACH_NLRI: header (4, extended length), AFI/SAFI (3), nexthop
        // length (1), nexthop, reserved (1), then NLRI.
        let fixed = HEADER_LEN + 4 + rest.len() + 4 + 3 + 1 + next_hop.len() + 1;
        let Some(budget) = max.checked_sub(fixed) else {
            continue;
        };
        for chunk in pack(prefixes.into_iter(), budget) {
            let mut value = mp_family(family);
            value.push(next_hop.len() as u8);
            value.extend_from_slice(&next_hop);
            value.push(0);
            value.extend_from_slice(&chunk);
            let mut all = Vec::with_capacity(value.len() + 4 + rest.len());
            // RFC 7606 5.1: MP_REACH_NLRI goes first.
            put_attribute(&mut all, flag::OPTIONAL, code::MP_REACH_NLRI, &value);
            all.extend_from_slice(&rest);
            messages.push(message(&[], &all, &[]));
        }
    }
    messages
}

/// The End-of-RIB marker for `family` (RFC 4724 2): an empty UPDATE for
/// IPv4 unicast, an MP_UNREACH_NLRI with no withdrawn routes otherwise.
pub fn end_of_rib(family: Family) -> Vec<u8> {
    match family {
        Family::Ipv4Unicast => message(&[], &[], &[]),
        Family::Ipv6Unicast => {
            let mut attributes = Vec::new();
            put_attribute(
                &mut attributes,
                flag::OPTIONAL,
                code::MP_UNREACH_NLRI,
                &mp_family(family),
            );
            message(&[], &attributes, &[])
        }
    }
}

/// A whole UPDATE message from its three fields.
fn message(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let length = HEADER_LEN + 2 + withdrawn.len() + 2 + attributes.len() + nlri.len();
    debug_assert!(length <= usize::from(u16::MAX), "UPDATE of {length} octets");
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.push(MESSAGE_TYPE_UPDATE);
    out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    out.extend_from_slice(withdrawn);
    out.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    out.extend_from_slice(attributes);
    out.extend_from_slice(nlri);
    out
}

/// Packs prefixes as `<length, prefix>` into chunks of at most `budget`
/// octets each.
fn pack<'p>(prefixes: impl Iterator<Item = &'p IpNet>, budget: usize) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    for prefix in prefixes {
        let len = prefix.prefix_len();
        let octets = usize::from(len).div_ceil(8);
        if 1 + octets > budget {
            continue;
        }
        if chunk.len() + 1 + octets > budget {
            chunks.push(std::mem::take(&mut chunk));
        }
        chunk.push(len);
        match prefix {
            IpNet::V4(net) => chunk.extend_from_slice(&net.network().octets()[..octets]),
            IpNet::V6(net) => chunk.extend_from_slice(&net.network().octets()[..octets]),
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

fn mp_family(family: Family) -> Vec<u8> {
    let (afi, safi) = family.afi_safi();
    let mut value = afi.to_be_bytes().to_vec();
    value.push(safi);
    value
}

/// An MP nexthop: 4 octets for IPv4, 16 for IPv6 (IPv4-mapped for an IPv4
/// nexthop of an IPv6 route), 32 with a link-local besides.
fn mp_next_hop(next_hop: IpAddr, link_local: Option<Ipv6Addr>) -> Vec<u8> {
    let global = match next_hop {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut octets = global.octets().to_vec();
    if let Some(link_local) = link_local {
        octets.extend_from_slice(&link_local.octets());
    }
    octets
}

/// Appends one attribute, with the extended length bit as the value needs.
fn put_attribute(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.push(flags | flag::EXTENDED_LENGTH);
        out.push(type_code);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(flags & !flag::EXTENDED_LENGTH);
        out.push(type_code);
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
}

/// AS_PATH or AS4_PATH segments with AS numbers of `width` octets (AS_TRANS
/// for those that do not fit in 2), split at 255 ASes per segment.
fn as_path_value(segments: &[AsSegment], width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in segments {
        let (kind, asns) = match segment {
            AsSegment::Set(asns) => (1, asns),
            AsSegment::Sequence(asns) => (2, asns),
            AsSegment::ConfedSequence(asns) => (3, asns),
            AsSegment::ConfedSet(asns) => (4, asns),
        };
        for chunk in asns.chunks(255) {
            out.push(kind);
            out.push(chunk.len() as u8);
            for &asn in chunk {
                match width {
                    4 => out.extend_from_slice(&asn.to_be_bytes()),
                    _ => out.extend_from_slice(&two_octet(asn).to_be_bytes()),
                }
            }
        }
    }
    out
}

fn two_octet(asn: Asn) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS as u16)
}

/// Every attribute but MP_REACH_NLRI, in ascending type order (RFC 4271
/// 5): what the session needs (2- or 4-octet AS, AS4_* beside), what goes
/// only to internal neighbors kept from external ones.
fn encode_attributes(
    attributes: &Attributes,
    session: &Negotiated,
    next_hop: Option<Ipv4Addr>,
) -> Vec<u8> {
    let ebgp = session.is_ebgp();
    let four_octet = session.four_octet_as;
    let well_known = flag::TRANSITIVE;
    let optional_transitive = flag::OPTIONAL | flag::TRANSITIVE;
    let mut list: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    list.push((well_known, code::ORIGIN, vec![attributes.origin as u8]));
    let width = if four_octet { 4 } else { 2 };
    list.push((
        well_known,
        code::AS_PATH,
        as_path_value(&attributes.as_path, width),
    ));
    if let Some(next_hop) = next_hop {
        list.push((well_known, code::NEXT_HOP, next_hop.octets().to_vec()));
    }
    if let Some(med) = attributes.med {
        list.push((flag::OPTIONAL, code::MED, med.to_be_bytes().to_vec()));
    }
    if !ebgp {
        let local_pref = attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
        list.push((
            well_known,
            code::LOCAL_PREF,
            local_pref.to_be_bytes().to_vec(),
        ));
    }
    if attributes.atomic_aggregate {
        list.push((well_known, code::ATOMIC_AGGREGATE, Vec::new()));
    }
    if let Some((asn, address)) = attributes.aggregator {
        let mut value = Vec::new();
        if four_octet {
            value.extend_from_slice(&asn.to_be_bytes());
        } else {
            value.extend_from_slice(&two_octet(asn).to_be_bytes());
        }
        value.extend_from_slice(&address.octets());
        list.push((optional_transitive, code::AGGREGATOR, value));
        if !four_octet && asn > u32::from(u16::MAX) {
            let mut value = asn.to_be_bytes().to_vec();
            value.extend_from_slice(&address.octets());
            list.push((optional_transitive, code::AS4_AGGREGATOR, value));
        }
    }
    if !attributes.communities.is_empty() {
        let value = attributes
            .communities
            .iter()
            .flat_map(|community| community.to_be_bytes())
            .collect();
        list.push((optional_transitive, code::COMMUNITIES, value));
    }
    if !ebgp {
        if let Some(originator_id) = attributes.originator_id {
            list.push((
                flag::OPTIONAL,
                code::ORIGINATOR_ID,
                originator_id.octets().to_vec(),
            ));
        }
        if !attributes.cluster_list.is_empty() {
            let value = attributes
                .cluster_list
                .iter()
                .flat_map(|id| id.octets())
                .collect();
            list.push((flag::OPTIONAL, code::CLUSTER_LIST, value));
        }
    }
    if !four_octet {
        // RFC 6793 4.2.2: the true path beside, if any AS did not fit.
        let path: Vec<AsSegment> = attributes
            .as_path
            .iter()
            .filter(|segment| matches!(segment, AsSegment::Sequence(_) | AsSegment::Set(_)))
            .cloned()
            .collect();
        let wide = path.iter().any(|segment| match segment {
            AsSegment::Sequence(asns) | AsSegment::Set(asns) => {
                asns.iter().any(|&asn| asn > u32::from(u16::MAX))
            }
            _ => false,
        });
        if wide {
            list.push((optional_transitive, code::AS4_PATH, as_path_value(&path, 4)));
        }
    }
    for other in &attributes.other {
        let known = expected_flags(other.code).is_some();
        // Never pass on what the list above already holds.
        if known
            && !matches!(
                other.code,
                code::EXTENDED_COMMUNITIES
                    | code::IPV6_EXTENDED_COMMUNITIES
                    | code::LARGE_COMMUNITIES
            )
        {
            continue;
        }
        let flags = if known {
            other.flags
        } else {
            other.flags | flag::PARTIAL
        };
        list.push((flags, other.code, other.value.clone()));
    }
    list.sort_by_key(|(_, type_code, _)| *type_code);
    let mut out = Vec::new();
    for (flags, type_code, value) in list {
        put_attribute(&mut out, flags, type_code, &value);
    }
    out
}

/// The fuzz harness, shared by `fuzz/fuzz_targets/update.rs` and the
/// property test: the first octet picks the session (4-octet AS, eBGP,
/// IPv6 negotiated, RFC 8950), the rest is an UPDATE body. Decoding must
/// not panic, and what decodes must encode into UPDATEs that decode again
/// cleanly, to a subset of the same routes (a subset: attributes that fill a
/// message alone are left out by `encode`).
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let Some((&settings, body)) = data.split_first() else {
        return;
    };
    let session = fuzz_session(settings);
    let Decoded::Update { update, problems } = decode(body, &session) else {
        return;
    };
    let withdraw = problems
        .iter()
        .any(|problem| problem.action == Action::TreatAsWithdraw);
    assert!(
        !withdraw || update.announced.is_empty(),
        "withdrawn yet announced"
    );
    for problem in &problems {
        let _ = problem.to_string();
    }
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        for message in encode(family, &update.announced, &update.withdrawn, &session) {
            assert!(
                message.len() <= session.max_message_len(),
                "{} octets",
                message.len()
            );
            match decode(&message[HEADER_LEN..], &session) {
                Decoded::Update {
                    update: again,
                    problems,
                } => {
                    assert!(problems.is_empty(), "re-encoded: {problems:?}");
                    for route in &again.announced {
                        assert!(
                            update.announced.iter().any(|(prefix, attributes)| {
                                *prefix == route.0 && attributes.next_hop == route.1.next_hop
                            }),
                            "re-encoded: {route:?} came from nowhere"
                        );
                    }
                }
                Decoded::Reset(notification) => panic!("re-encoded: {notification:?}"),
            }
        }
    }
}

/// The session `fuzz` decodes under: AS 65000, the neighbor 65001 when
/// `settings & 2` (eBGP), 65000 otherwise; `& 1` 4-octet AS, `& 4` IPv6
/// unicast besides IPv4, `& 8` RFC 8950, `& 16` RFC 8654.
fn fuzz_session(settings: u8) -> Negotiated {
    Negotiated {
        local_as: 65000,
        remote_as: if settings & 2 != 0 { 65001 } else { 65000 },
        remote_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        four_octet_as: settings & 1 != 0,
        families: if settings & 4 != 0 {
            vec![Family::Ipv4Unicast, Family::Ipv6Unicast]
        } else {
            vec![Family::Ipv4Unicast]
        },
        route_refresh: true,
        extended_next_hop_ipv4: settings & 8 != 0,
        extended_messages: settings & 16 != 0,
        peer_graceful_restart: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const PEER_AS: Asn = 65001;
    const LOCAL_AS: Asn = 65000;

    fn session(remote_as: Asn, four_octet_as: bool, families: &[Family]) -> Negotiated {
        Negotiated {
            local_as: LOCAL_AS,
            remote_as,
            remote_id: Ipv4Addr::new(192, 0, 2, 1),
            hold_time: 90,
            four_octet_as,
            families: families.to_vec(),
            route_refresh: true,
            extended_next_hop_ipv4: false,
            extended_messages: false,
            peer_graceful_restart: None,
        }
    }

    fn ebgp() -> Negotiated {
        session(PEER_AS, true, &[Family::Ipv4Unicast, Family::Ipv6Unicast])
    }

    fn ibgp() -> Negotiated {
        session(LOCAL_AS, true, &[Family::Ipv4Unicast, Family::Ipv6Unicast])
    }

    fn ipv4_only() -> Negotiated {
        session(PEER_AS, true, &[Family::Ipv4Unicast])
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    /// The body of a whole message, checking its header.
    fn body(message: &[u8]) -> &[u8] {
        assert_eq!(&message[..16], &[0xff; 16]);
        assert_eq!(
            usize::from(u16::from_be_bytes([message[16], message[17]])),
            message.len()
        );
        assert_eq!(message[18], MESSAGE_TYPE_UPDATE);
        &message[HEADER_LEN..]
    }

    fn accepted(body: &[u8], session: &Negotiated) -> (Update, Vec<Problem>) {
        match decode(body, session) {
            Decoded::Update { update, problems } => (update, problems),
            Decoded::Reset(notification) => panic!("reset: {notification:?}"),
        }
    }

    fn reset_by(body: &[u8], session: &Negotiated) -> Notification {
        match decode(body, session) {
            Decoded::Reset(notification) => notification,
            other => panic!("no reset: {other:?}"),
        }
    }

    fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_attribute(&mut out, flags, type_code, value);
        out
    }

    fn prefixes(list: &[&str]) -> Vec<u8> {
        let nets: Vec<IpNet> = list.iter().map(|text| net(text)).collect();
        pack(nets.iter(), usize::MAX).concat()
    }

    fn update_body(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
        body(&message(withdrawn, attributes, nlri)).to_vec()
    }

    const WK: u8 = flag::TRANSITIVE;
    const OPT: u8 = flag::OPTIONAL;
    const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;

    fn origin() -> Vec<u8> {
        attribute(WK, code::ORIGIN, &[0])
    }

    fn as_path(asns: &[u32]) -> Vec<u8> {
        attribute(
            WK,
            code::AS_PATH,
            &as_path_value(&[AsSegment::Sequence(asns.to_vec())], 4),
        )
    }

    fn next_hop(octets: [u8; 4]) -> Vec<u8> {
        attribute(WK, code::NEXT_HOP, &octets)
    }

    /// A well-formed eBGP IPv4 UPDATE body, with `extra` attributes.
    fn ipv4_body(extra: &[Vec<u8>], nlri: &[&str]) -> Vec<u8> {
        let mut attributes = [
            origin(),
            as_path(&[PEER_AS, 65010]),
            next_hop([10, 0, 0, 1]),
        ]
        .concat();
        for more in extra {
            attributes.extend_from_slice(more);
        }
        update_body(&[], &attributes, &prefixes(nlri))
    }

    /// An MP_REACH_NLRI for IPv6 with a 16-octet nexthop.
    fn mp_reach_ipv6(next_hop: &[u8], nlri: &[&str]) -> Vec<u8> {
        let mut value = vec![0, 2, 1, next_hop.len() as u8];
        value.extend_from_slice(next_hop);
        value.push(0);
        value.extend_from_slice(&prefixes(nlri));
        attribute(OPT, code::MP_REACH_NLRI, &value)
    }

    fn assert_withdrawn(update: &Update, expected: &[&str]) {
        assert!(
            update.announced.is_empty(),
            "announced {:?}",
            update.announced
        );
        let withdrawn: BTreeSet<IpNet> = update.withdrawn.iter().copied().collect();
        let expected: BTreeSet<IpNet> = expected.iter().map(|text| net(text)).collect();
        assert_eq!(withdrawn, expected);
    }

    fn has(problems: &[Problem], type_code: Option<u8>, action: Action) -> bool {
        problems
            .iter()
            .any(|problem| problem.attribute == type_code && problem.action == action)
    }

    fn rich_attributes(next_hop: IpAddr) -> Attributes {
        Attributes {
            origin: Origin::Egp,
            as_path: vec![
                AsSegment::Sequence(vec![PEER_AS, 4_200_000_000, 65010]),
                AsSegment::Set(vec![65020, 65021]),
            ],
            next_hop: Some(next_hop),
            med: Some(50),
            atomic_aggregate: true,
            aggregator: Some((4_200_000_000, Ipv4Addr::new(192, 0, 2, 9))),
            communities: vec![(65001 << 16) | 100, 0xFFFF_FF01],
            other: vec![
                RawAttribute {
                    flags: OPT_TRANS,
                    code: code::LARGE_COMMUNITIES,
                    value: [65001u32, 1, 2]
                        .iter()
                        .flat_map(|word| word.to_be_bytes())
                        .collect(),
                },
                RawAttribute {
                    flags: OPT_TRANS | flag::PARTIAL,
                    code: 99,
                    value: vec![1, 2, 3],
                },
            ],
            ..Attributes::default()
        }
    }

    /// Encodes, decodes every message, and gathers what they said.
    fn round_trip(
        family: Family,
        announced: &[(IpNet, Arc<Attributes>)],
        withdrawn: &[IpNet],
        session: &Negotiated,
    ) -> Update {
        let mut all = Update::default();
        for message in encode(family, announced, withdrawn, session) {
            let (update, problems) = accepted(body(&message), session);
            assert!(problems.is_empty(), "{problems:?}");
            all.announced.extend(update.announced);
            all.withdrawn.extend(update.withdrawn);
            all.end_of_rib.extend(update.end_of_rib);
        }
        all
    }

    #[test]
    fn ipv4_round_trip() {
        let session = ebgp();
        let first = Arc::new(rich_attributes("10.0.0.1".parse().unwrap()));
        let second = Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![PEER_AS])],
            next_hop: Some("10.0.0.2".parse().unwrap()),
            ..Attributes::default()
        });
        let announced = vec![
            (net("192.0.2.0/24"), Arc::clone(&first)),
            (net("198.51.100.0/25"), Arc::clone(&second)),
            (net("10.128.0.0/9"), Arc::clone(&first)),
            (net("0.0.0.0/0"), Arc::clone(&second)),
        ];
        let withdrawn = [net("203.0.113.0/24"), net("10.0.0.0/8")];
        let all = round_trip(Family::Ipv4Unicast, &announced, &withdrawn, &session);
        let mut expected = announced.clone();
        expected.sort_by_key(|(prefix, _)| *prefix);
        let mut got = all.announced.clone();
        got.sort_by_key(|(prefix, _)| *prefix);
        assert_eq!(got, expected);
        assert_eq!(all.withdrawn, withdrawn);
        assert!(all.end_of_rib.is_empty());
    }

    #[test]
    fn ipv6_round_trip_with_link_local() {
        let session = ibgp();
        let attributes = Arc::new(Attributes {
            next_hop: Some("2001:db8::1".parse().unwrap()),
            link_local_next_hop: Some("fe80::1".parse().unwrap()),
            local_pref: Some(200),
            originator_id: Some(Ipv4Addr::new(192, 0, 2, 7)),
            cluster_list: vec![Ipv4Addr::new(192, 0, 2, 8)],
            ..rich_attributes("2001:db8::1".parse().unwrap())
        });
        let announced = vec![
            (net("2001:db8:1::/48"), Arc::clone(&attributes)),
            (net("2001:db8:2:3::/64"), Arc::clone(&attributes)),
            (net("::/0"), Arc::clone(&attributes)),
        ];
        let withdrawn = [net("2001:db8:ffff::/48"), net("2001:db8::1/128")];
        let all = round_trip(Family::Ipv6Unicast, &announced, &withdrawn, &session);
        assert_eq!(all.announced, announced);
        assert_eq!(all.withdrawn, withdrawn);
    }

    #[test]
    fn mixed_round_trip_with_ipv4_over_ipv6_next_hop() {
        let mut session = ebgp();
        session.extended_next_hop_ipv4 = true;
        let over_ipv6 = Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![PEER_AS])],
            next_hop: Some("2001:db8::1".parse().unwrap()),
            ..Attributes::default()
        });
        let over_ipv4 = Arc::new(Attributes {
            next_hop: Some("10.0.0.1".parse().unwrap()),
            ..(*over_ipv6).clone()
        });
        let ipv4 = vec![
            (net("192.0.2.0/24"), Arc::clone(&over_ipv6)),
            (net("198.51.100.0/24"), Arc::clone(&over_ipv4)),
        ];
        let ipv6 = vec![
            (net("2001:db8:1::/48"), Arc::clone(&over_ipv6)),
            // An IPv4 nexthop for an IPv6 route goes as IPv4-mapped.
            (net("2001:db8:2::/48"), Arc::clone(&over_ipv4)),
        ];
        let both: Vec<_> = ipv4.iter().chain(&ipv6).cloned().collect();
        let all4 = round_trip(Family::Ipv4Unicast, &both, &[], &session);
        let all6 = round_trip(Family::Ipv6Unicast, &both, &[], &session);
        let sorted = |mut routes: Vec<(IpNet, Arc<Attributes>)>| {
            routes.sort_by_key(|(prefix, _)| *prefix);
            routes
        };
        assert_eq!(sorted(all4.announced), sorted(ipv4.clone()));
        assert_eq!(sorted(all6.announced), sorted(ipv6));

        // Without RFC 8950 the IPv6 nexthop cannot carry an IPv4 route.
        session.extended_next_hop_ipv4 = false;
        let all4 = round_trip(Family::Ipv4Unicast, &both, &[], &session);
        assert_eq!(all4.announced, vec![ipv4[1].clone()]);
    }

    #[test]
    fn two_octet_session_round_trips_four_octet_asns() {
        let session = session(PEER_AS, false, &[Family::Ipv4Unicast]);
        let attributes = Arc::new(rich_attributes("10.0.0.1".parse().unwrap()));
        let announced = vec![(net("192.0.2.0/24"), Arc::clone(&attributes))];
        let messages = encode(Family::Ipv4Unicast, &announced, &[], &session);
        assert_eq!(messages.len(), 1);
        // On the wire: AS_TRANS in AS_PATH, the true path in AS4_PATH.
        let wire = body(&messages[0]);
        let trans = (AS_TRANS as u16).to_be_bytes();
        assert!(wire.windows(2).any(|pair| pair == trans));
        let all = round_trip(Family::Ipv4Unicast, &announced, &[], &session);
        assert_eq!(all.announced, announced);
    }

    #[test]
    fn as4_path_merges_behind_the_leading_two_octet_ases() {
        let session = session(PEER_AS, false, &[Family::Ipv4Unicast]);
        let two_octet = |asns: &[u32]| {
            attribute(
                WK,
                code::AS_PATH,
                &as_path_value(&[AsSegment::Sequence(asns.to_vec())], 2),
            )
        };
        let as4 = attribute(
            OPT_TRANS,
            code::AS4_PATH,
            &as_path_value(
                &[AsSegment::Sequence(vec![
                    4_200_000_001,
                    4_200_000_002,
                    65003,
                ])],
                4,
            ),
        );
        let attributes = [
            origin(),
            two_octet(&[PEER_AS, AS_TRANS, AS_TRANS, 65003]),
            next_hop([10, 0, 0, 1]),
            as4,
        ]
        .concat();
        let (update, problems) = accepted(
            &update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"])),
            &session,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            update.announced[0].1.as_path,
            vec![AsSegment::Sequence(vec![
                PEER_AS,
                4_200_000_001,
                4_200_000_002,
                65003
            ])]
        );

        // An AS4_PATH longer than AS_PATH is ignored.
        let as4 = attribute(
            OPT_TRANS,
            code::AS4_PATH,
            &as_path_value(&[AsSegment::Sequence(vec![1, 2, 3])], 4),
        );
        let attributes = [
            origin(),
            two_octet(&[PEER_AS]),
            next_hop([10, 0, 0, 1]),
            as4,
        ]
        .concat();
        let (update, problems) = accepted(
            &update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"])),
            &session,
        );
        assert!(has(
            &problems,
            Some(code::AS4_PATH),
            Action::AttributeDiscard
        ));
        assert_eq!(
            update.announced[0].1.as_path,
            vec![AsSegment::Sequence(vec![PEER_AS])]
        );
    }

    #[test]
    fn large_batches_split_into_messages_of_at_most_4096_octets() {
        let session = ebgp();
        let ipv4_attributes = Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![PEER_AS])],
            next_hop: Some("10.0.0.1".parse().unwrap()),
            ..Attributes::default()
        });
        let ipv6_attributes = Arc::new(Attributes {
            next_hop: Some("2001:db8::1".parse().unwrap()),
            ..(*ipv4_attributes).clone()
        });
        let ipv4: Vec<(IpNet, Arc<Attributes>)> = (0..3000u32)
            .map(|n| {
                let prefix =
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (n << 8)), 24).unwrap());
                (prefix, Arc::clone(&ipv4_attributes))
            })
            .collect();
        let ipv6: Vec<(IpNet, Arc<Attributes>)> = (0..3000u128)
            .map(|n| {
                let address = Ipv6Addr::from((0x2001_0db8u128 << 96) | (n << 64));
                (
                    IpNet::V6(Ipv6Net::new(address, 64).unwrap()),
                    Arc::clone(&ipv6_attributes),
                )
            })
            .collect();
        let withdrawn4: Vec<IpNet> = ipv4.iter().map(|(prefix, _)| *prefix).collect();
        let withdrawn6: Vec<IpNet> = ipv6.iter().map(|(prefix, _)| *prefix).collect();
        for (family, announced, withdrawn) in [
            (Family::Ipv4Unicast, &ipv4, &withdrawn4),
            (Family::Ipv6Unicast, &ipv6, &withdrawn6),
        ] {
            let messages = encode(family, announced, withdrawn, &session);
            assert!(messages.len() > 4, "{family}: {} messages", messages.len());
            for message in &messages {
                assert!(message.len() <= MAX_MESSAGE_LEN, "{} octets", message.len());
            }
            let all = round_trip(family, announced, withdrawn, &session);
            assert_eq!(&all.announced, announced);
            assert_eq!(&all.withdrawn, withdrawn);

            // With extended messages (RFC 8654): fewer, larger messages,
            // the same routes.
            let extended = Negotiated {
                extended_messages: true,
                ..session.clone()
            };
            let large = encode(family, announced, withdrawn, &extended);
            assert!(large.len() < messages.len(), "{family}: {}", large.len());
            assert!(large.iter().any(|message| message.len() > MAX_MESSAGE_LEN));
            for message in &large {
                assert!(message.len() <= 65535, "{} octets", message.len());
            }
            let all = round_trip(family, announced, withdrawn, &extended);
            assert_eq!(&all.announced, announced);
            assert_eq!(&all.withdrawn, withdrawn);
        }
    }

    /// The AFI and next hop octets of a message's MP_REACH_NLRI.
    fn mp_reach_next_hop(message: &[u8]) -> (u16, Vec<u8>) {
        let body = body(message);
        let withdrawn = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let mut attributes = &body[4 + withdrawn..];
        while let [flags, code, rest @ ..] = attributes {
            let (length, value) = if flags & flag::EXTENDED_LENGTH != 0 {
                (
                    usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                    &rest[2..],
                )
            } else {
                (usize::from(rest[0]), &rest[1..])
            };
            if *code == code::MP_REACH_NLRI {
                let afi = u16::from_be_bytes([value[0], value[1]]);
                let next_hop_len = usize::from(value[3]);
                return (afi, value[4..4 + next_hop_len].to_vec());
            }
            attributes = &value[length..];
        }
        panic!("no MP_REACH_NLRI")
    }

    fn octets(addresses: &[&str]) -> Vec<u8> {
        addresses
            .iter()
            .flat_map(|address| address.parse::<Ipv6Addr>().unwrap().octets())
            .collect()
    }

    #[test]
    fn ipv4_routes_go_with_link_local_next_hops_under_rfc_8950() {
        let mut session = ebgp();
        session.extended_next_hop_ipv4 = true;
        let link_local_alone = Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![PEER_AS])],
            next_hop: Some("fe80::1".parse().unwrap()),
            ..Attributes::default()
        });
        let global_and_link_local = Arc::new(Attributes {
            next_hop: Some("2001:db8::1".parse().unwrap()),
            link_local_next_hop: Some("fe80::1".parse().unwrap()),
            ..(*link_local_alone).clone()
        });
        for (attributes, expected) in [
            // RFC 2545 3: 16 octets, the link-local alone (as FRR sends it
            // over an interface without a global address; BIRD and FRR
            // both take it from a link-local neighbor)...
            (&link_local_alone, octets(&["fe80::1"])),
            // ...or 32: global first, then link-local.
            (&global_and_link_local, octets(&["2001:db8::1", "fe80::1"])),
        ] {
            let routes = vec![(net("172.20.2.0/27"), Arc::clone(attributes))];
            for (family, prefix_routes) in [
                (Family::Ipv4Unicast, routes.clone()),
                (
                    Family::Ipv6Unicast,
                    vec![(net("fd42:2::/48"), Arc::clone(attributes))],
                ),
            ] {
                let messages = encode(family, &prefix_routes, &[], &session);
                assert_eq!(messages.len(), 1);
                let (afi, next_hop) = mp_reach_next_hop(&messages[0]);
                assert_eq!(afi, family.afi_safi().0);
                assert_eq!(next_hop, expected);
                let all = round_trip(family, &prefix_routes, &[], &session);
                assert_eq!(all.announced, prefix_routes);
            }
        }
        // Without RFC 8950 no IPv4 route can go with an IPv6 next hop.
        session.extended_next_hop_ipv4 = false;
        let routes = vec![(net("172.20.2.0/27"), link_local_alone)];
        assert!(encode(Family::Ipv4Unicast, &routes, &[], &session).is_empty());
    }

    #[test]
    fn link_local_next_hops_as_bird_and_frr_send_them() {
        let mut session = ebgp();
        session.extended_next_hop_ipv4 = true;
        let ipv4_with = |next_hop: &[u8]| {
            let mut value = vec![0, 1, 1, next_hop.len() as u8];
            value.extend_from_slice(next_hop);
            value.push(0);
            value.extend_from_slice(&prefixes(&["172.20.2.0/27"]));
            let attributes = [
                attribute(flag::OPTIONAL, code::MP_REACH_NLRI, &value),
                origin(),
                as_path(&[PEER_AS]),
            ]
            .concat();
            update_body(&[], &attributes, &[])
        };
        let link_local: Ipv6Addr = "fe80::2".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
        for (next_hop, expected_next_hop, expected_link_local) in [
            // 16 octets of link-local.
            (octets(&["fe80::2"]), IpAddr::V6(link_local), None),
            // BIRD without a global address: "::" then the link-local.
            (
                octets(&["::", "fe80::2"]),
                IpAddr::V6(link_local),
                Some(link_local),
            ),
            // FRR without a global address: the link-local twice.
            (
                octets(&["fe80::2", "fe80::2"]),
                IpAddr::V6(link_local),
                Some(link_local),
            ),
            // Global and link-local.
            (
                octets(&["2001:db8::2", "fe80::2"]),
                IpAddr::V6(global),
                Some(link_local),
            ),
            // A second address that is no link-local one: ignored.
            (
                octets(&["2001:db8::2", "2001:db8::3"]),
                IpAddr::V6(global),
                None,
            ),
        ] {
            let (update, problems) = accepted(&ipv4_with(&next_hop), &session);
            assert!(problems.is_empty(), "{problems:?}");
            let (prefix, attributes) = &update.announced[0];
            assert_eq!(*prefix, net("172.20.2.0/27"));
            assert_eq!(attributes.next_hop, Some(expected_next_hop));
            assert_eq!(attributes.link_local_next_hop, expected_link_local);
        }
    }

    #[test]
    fn end_of_rib_markers() {
        let session = ebgp();
        for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            let (update, problems) = accepted(body(&end_of_rib(family)), &session);
            assert!(problems.is_empty());
            assert_eq!(update.end_of_rib, vec![family]);
            assert!(update.withdrawn.is_empty() && update.announced.is_empty());
        }
        // Withdrawing nothing but some IPv6 prefixes is no End-of-RIB.
        let withdraw = encode(Family::Ipv6Unicast, &[], &[net("2001:db8::/32")], &session);
        let (update, _) = accepted(body(&withdraw[0]), &session);
        assert!(update.end_of_rib.is_empty());
        assert_eq!(update.withdrawn, vec![net("2001:db8::/32")]);
    }

    #[test]
    fn bad_origin_value_is_treat_as_withdraw() {
        let mut body = ipv4_body(&[], &["192.0.2.0/24", "198.51.100.0/24"]);
        // ORIGIN's value is the 8th octet: lengths (4), flags, type, length.
        assert_eq!(&body[4..7], &[WK, code::ORIGIN, 1]);
        body[7] = 3;
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24", "198.51.100.0/24"]);
        assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
        assert!(
            problems[0].to_string().contains("ORIGIN"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn as_path_segment_overrun_is_treat_as_withdraw() {
        // A sequence of 3 ASes with room for 2.
        let mut value = vec![2, 3];
        value.extend_from_slice(&PEER_AS.to_be_bytes());
        value.extend_from_slice(&65010u32.to_be_bytes());
        let attributes = [
            origin(),
            attribute(WK, code::AS_PATH, &value),
            next_hop([10, 0, 0, 1]),
        ]
        .concat();
        let body = update_body(
            &prefixes(&["203.0.113.0/24"]),
            &attributes,
            &prefixes(&["192.0.2.0/24"]),
        );
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24", "203.0.113.0/24"]);
        assert!(has(&problems, Some(code::AS_PATH), Action::TreatAsWithdraw));

        // A segment of zero length, a lone trailing octet: malformed too.
        for value in [
            vec![2u8, 0],
            [vec![2, 1], PEER_AS.to_be_bytes().to_vec(), vec![2]].concat(),
        ] {
            let attributes = [
                origin(),
                attribute(WK, code::AS_PATH, &value),
                next_hop([10, 0, 0, 1]),
            ]
            .concat();
            let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
            let (update, _) = accepted(&body, &ebgp());
            assert_withdrawn(&update, &["192.0.2.0/24"]);
        }
    }

    #[test]
    fn as_path_of_an_ebgp_neighbor_must_start_with_its_as() {
        let attributes = [origin(), as_path(&[65099]), next_hop([10, 0, 0, 1])].concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(&problems, Some(code::AS_PATH), Action::TreatAsWithdraw));
        // iBGP: any path, even an empty one.
        let attributes = [origin(), as_path(&[]), next_hop([10, 0, 0, 1])].concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ibgp());
        assert!(problems.is_empty());
        assert_eq!(update.announced.len(), 1);
    }

    #[test]
    fn bad_next_hop_is_treat_as_withdraw() {
        for next_hop in [
            attribute(WK, code::NEXT_HOP, &[10, 0, 0, 1, 0]),
            attribute(WK, code::NEXT_HOP, &[0, 0, 0, 0]),
            attribute(WK, code::NEXT_HOP, &[224, 0, 0, 5]),
            attribute(WK, code::NEXT_HOP, &[255, 255, 255, 255]),
        ] {
            let attributes = [origin(), as_path(&[PEER_AS]), next_hop].concat();
            let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
            let (update, problems) = accepted(&body, &ebgp());
            assert_withdrawn(&update, &["192.0.2.0/24"]);
            assert!(has(
                &problems,
                Some(code::NEXT_HOP),
                Action::TreatAsWithdraw
            ));
        }
        // Without body NLRI, NEXT_HOP is not looked at (RFC 4760 3).
        let attributes = [
            mp_reach_ipv6(
                &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                &["2001:db8:1::/48"],
            ),
            origin(),
            as_path(&[PEER_AS]),
            attribute(WK, code::NEXT_HOP, &[0, 0, 0, 0]),
        ]
        .concat();
        let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(update.announced.len(), 1);
    }

    #[test]
    fn attribute_past_the_end_of_the_list() {
        // COMMUNITIES claims 8 octets where 4 remain.
        let mut attributes = [origin(), as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat();
        attributes.extend_from_slice(&[OPT_TRANS, code::COMMUNITIES, 8, 0, 1, 0, 1]);
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        // The framing still locates the NLRI: treat as withdraw, with IPv6
        // negotiated too (an MP_REACH_NLRI would have come first).
        for session in [ipv4_only(), ebgp()] {
            let (update, problems) = accepted(&body, &session);
            assert_withdrawn(&update, &["192.0.2.0/24"]);
            assert!(has(&problems, None, Action::TreatAsWithdraw));
        }
        // A header cut short counts the same.
        let mut attributes = [origin(), as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat();
        attributes.extend_from_slice(&[OPT_TRANS | flag::EXTENDED_LENGTH, code::COMMUNITIES, 0]);
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, _) = accepted(&body, &ipv4_only());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        // MP_REACH_NLRI first, then the break: its routes are withdrawn.
        let mut attributes = [
            mp_reach_ipv6(
                &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                &["2001:db8:1::/48"],
            ),
            origin(),
            as_path(&[PEER_AS]),
        ]
        .concat();
        attributes.extend_from_slice(&[OPT, code::MED, 4, 0]);
        let (update, _) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
        assert_withdrawn(&update, &["2001:db8:1::/48"]);
    }

    #[test]
    fn malformed_mp_reach_resets_the_session() {
        let nlri = ["2001:db8:1::/48"];
        // A 5-octet nexthop for IPv6.
        let bad_next_hop = mp_reach_ipv6(&[0x20, 0x01, 0x0d, 0xb8, 1], &nlri);
        // NLRI that overruns: a /64 with two octets of address.
        let mut overrun = mp_reach_ipv6(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(), &[]);
        overrun[2] += 3;
        overrun.extend_from_slice(&[64, 0x20, 0x01]);
        // AFI and SAFI only.
        let short = attribute(OPT, code::MP_REACH_NLRI, &[0, 2, 1]);
        // An IPv6 nexthop for IPv4 without RFC 8950.
        let mut ipv4_over_ipv6 = mp_reach_ipv6(&[0x20; 16], &[]);
        ipv4_over_ipv6[4] = 1;
        for mp_reach in [bad_next_hop, overrun, short, ipv4_over_ipv6] {
            let attributes = [mp_reach.clone(), origin(), as_path(&[PEER_AS])].concat();
            let notification = reset_by(&update_body(&[], &attributes, &[]), &ebgp());
            assert_eq!((notification.code, notification.subcode), (3, 9));
            assert_eq!(notification.data, mp_reach);
        }
        // MP_UNREACH_NLRI with a prefix too long for IPv6.
        let unreach = attribute(OPT, code::MP_UNREACH_NLRI, &[0, 2, 1, 129, 0]);
        let notification = reset_by(&update_body(&[], &unreach, &[]), &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 9));
    }

    #[test]
    fn repeated_mp_attribute_resets_the_session() {
        let unreach = attribute(OPT, code::MP_UNREACH_NLRI, &[0, 2, 1]);
        let body = update_body(&[], &[unreach.clone(), unreach].concat(), &[]);
        let notification = reset_by(&body, &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 1));
    }

    #[test]
    fn mp_attributes_of_a_family_not_negotiated_are_ignored() {
        let attributes = [
            mp_reach_ipv6(
                &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                &["2001:db8:1::/48"],
            ),
            origin(),
            as_path(&[PEER_AS]),
        ]
        .concat();
        let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ipv4_only());
        assert!(update.announced.is_empty() && update.withdrawn.is_empty());
        assert!(has(&problems, Some(code::MP_REACH_NLRI), Action::Ignore));
    }

    #[test]
    fn missing_mandatory_attribute_is_treat_as_withdraw() {
        let cases = [
            (
                [as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat(),
                code::ORIGIN,
            ),
            ([origin(), next_hop([10, 0, 0, 1])].concat(), code::AS_PATH),
            ([origin(), as_path(&[PEER_AS])].concat(), code::NEXT_HOP),
        ];
        for (attributes, missing) in cases {
            let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
            let (update, problems) = accepted(&body, &ebgp());
            assert_withdrawn(&update, &["192.0.2.0/24"]);
            assert!(has(&problems, Some(missing), Action::TreatAsWithdraw));
        }
        // No attributes at all with NLRI.
        let body = update_body(&[], &[], &prefixes(&["192.0.2.0/24"]));
        let (update, _) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        // A withdraw-only UPDATE needs none.
        let body = update_body(&prefixes(&["192.0.2.0/24"]), &[], &[]);
        let (update, problems) = accepted(&body, &ebgp());
        assert!(problems.is_empty());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
    }

    #[test]
    fn repeated_attribute_keeps_the_first() {
        let body = ipv4_body(
            &[
                attribute(OPT, code::MED, &10u32.to_be_bytes()),
                attribute(OPT, code::MED, &20u32.to_be_bytes()),
            ],
            &["192.0.2.0/24"],
        );
        let (update, problems) = accepted(&body, &ebgp());
        assert_eq!(update.announced.len(), 1);
        assert_eq!(update.announced[0].1.med, Some(10));
        assert!(has(&problems, Some(code::MED), Action::AttributeDiscard));
    }

    #[test]
    fn local_pref_from_an_external_neighbor_is_discarded() {
        let local_pref = attribute(WK, code::LOCAL_PREF, &300u32.to_be_bytes());
        let body = ipv4_body(std::slice::from_ref(&local_pref), &["192.0.2.0/24"]);
        let (update, problems) = accepted(&body, &ebgp());
        assert_eq!(update.announced.len(), 1);
        assert_eq!(update.announced[0].1.local_pref, None);
        assert!(has(
            &problems,
            Some(code::LOCAL_PREF),
            Action::AttributeDiscard
        ));

        // From an internal one it stands...
        let attributes = [origin(), as_path(&[]), next_hop([10, 0, 0, 1]), local_pref].concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ibgp());
        assert!(problems.is_empty());
        assert_eq!(update.announced[0].1.local_pref, Some(300));
        // ...unless its length is wrong.
        let attributes = [
            origin(),
            as_path(&[]),
            next_hop([10, 0, 0, 1]),
            attribute(WK, code::LOCAL_PREF, &[0, 1]),
        ]
        .concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ibgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(
            &problems,
            Some(code::LOCAL_PREF),
            Action::TreatAsWithdraw
        ));
    }

    #[test]
    fn bad_med_and_communities_are_treat_as_withdraw() {
        for bad in [
            attribute(OPT, code::MED, &[0, 0, 1]),
            attribute(OPT_TRANS, code::COMMUNITIES, &[0, 0, 1]),
            attribute(OPT_TRANS, code::COMMUNITIES, &[]),
            attribute(OPT_TRANS, code::EXTENDED_COMMUNITIES, &[0; 7]),
            attribute(OPT_TRANS, code::LARGE_COMMUNITIES, &[0; 8]),
        ] {
            let body = ipv4_body(&[bad], &["192.0.2.0/24"]);
            let (update, problems) = accepted(&body, &ebgp());
            assert_withdrawn(&update, &["192.0.2.0/24"]);
            assert_eq!(problems.len(), 1, "{problems:?}");
        }
    }

    #[test]
    fn bad_atomic_aggregate_and_aggregator_are_discarded() {
        for bad in [
            attribute(WK, code::ATOMIC_AGGREGATE, &[1]),
            attribute(OPT_TRANS, code::AGGREGATOR, &[0, 1, 192, 0, 2, 1]),
        ] {
            let body = ipv4_body(&[bad], &["192.0.2.0/24"]);
            let (update, problems) = accepted(&body, &ebgp());
            assert_eq!(update.announced.len(), 1);
            assert!(!update.announced[0].1.atomic_aggregate);
            assert_eq!(update.announced[0].1.aggregator, None);
            assert_eq!(problems[0].action, Action::AttributeDiscard);
        }
    }

    #[test]
    fn flags_in_conflict_are_treat_as_withdraw() {
        // ORIGIN marked optional.
        let attributes = [
            attribute(OPT_TRANS, code::ORIGIN, &[0]),
            as_path(&[PEER_AS]),
            next_hop([10, 0, 0, 1]),
        ]
        .concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
    }

    #[test]
    fn unknown_attributes() {
        // Unknown well-known: NOTIFICATION 3/2 carrying the attribute.
        let unknown = attribute(WK, 99, &[1, 2]);
        let body = ipv4_body(std::slice::from_ref(&unknown), &["192.0.2.0/24"]);
        let notification = reset_by(&body, &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 2));
        assert_eq!(notification.data, unknown);
        // Unknown optional transitive: kept, partial; non-transitive: dropped.
        let body = ipv4_body(
            &[attribute(OPT_TRANS, 99, &[1, 2]), attribute(OPT, 98, &[3])],
            &["192.0.2.0/24"],
        );
        let (update, problems) = accepted(&body, &ebgp());
        assert!(problems.is_empty());
        assert_eq!(
            update.announced[0].1.other,
            vec![RawAttribute {
                flags: OPT_TRANS | flag::PARTIAL,
                code: 99,
                value: vec![1, 2],
            }]
        );
    }

    #[test]
    fn bad_framing_and_nlri_reset_the_session() {
        // Shorter than the two length fields: a message length error.
        let notification = reset_by(&[0, 0, 0], &ebgp());
        assert_eq!((notification.code, notification.subcode), (1, 2));
        assert_eq!(notification.data, 22u16.to_be_bytes());
        // Withdrawn Routes Length past the end.
        let notification = reset_by(&[0, 9, 24, 192, 0, 2, 0, 0], &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 1));
        // Total Path Attribute Length past the end.
        let notification = reset_by(&[0, 0, 0, 9, 0x40, 1, 1, 0], &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 1));
        // A /33 in the NLRI, a prefix cut short in the withdrawn routes.
        let mut body = ipv4_body(&[], &[]);
        body.extend_from_slice(&[33, 192, 0, 2, 0, 0]);
        let notification = reset_by(&body, &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 10));
        let notification = reset_by(&[0, 2, 24, 192, 0, 0], &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 10));
    }

    #[test]
    fn treat_as_withdraw_covers_mp_reach_nlri() {
        let attributes = [
            mp_reach_ipv6(
                &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                &["2001:db8:1::/48"],
            ),
            attribute(WK, code::ORIGIN, &[7]),
            as_path(&[PEER_AS]),
        ]
        .concat();
        let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
        assert_withdrawn(&update, &["2001:db8:1::/48"]);
        assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
    }

    #[test]
    fn host_bits_past_the_prefix_length_are_cleared() {
        let mut body = ipv4_body(&[], &[]);
        body.extend_from_slice(&[23, 192, 0, 3]);
        let (update, _) = accepted(&body, &ebgp());
        assert_eq!(update.announced[0].0, net("192.0.2.0/23"));
    }

    /// A small deterministic generator (xorshift64*), so that the property
    /// test needs no dependency and fails the same way every time.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound.max(1) as u64) as usize
        }
    }

    /// Valid fuzz inputs to mutate (the session's settings octet, then an
    /// UPDATE body): each family, many attributes, both AS widths, eBGP
    /// and iBGP, RFC 8950.
    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for settings in [7u8, 5, 15, 6, 3] {
            let session = fuzz_session(settings);
            let attributes = Arc::new(Attributes {
                local_pref: Some(120),
                ..rich_attributes("10.0.0.1".parse().unwrap())
            });
            let ipv6 = Arc::new(Attributes {
                next_hop: Some("2001:db8::1".parse().unwrap()),
                link_local_next_hop: Some("fe80::1".parse().unwrap()),
                ..(*attributes).clone()
            });
            let routes = vec![
                (net("192.0.2.0/24"), Arc::clone(&attributes)),
                (net("10.0.0.0/8"), Arc::clone(&attributes)),
                (net("2001:db8:1::/48"), Arc::clone(&ipv6)),
                (net("198.51.100.0/24"), Arc::clone(&ipv6)),
            ];
            let withdrawn = [net("203.0.113.0/24"), net("2001:db8:9::/48")];
            for &family in &session.families {
                let messages = encode(family, &routes, &withdrawn, &session);
                for message in messages.iter().chain([&end_of_rib(family)]) {
                    seeds.push([&[settings][..], body(message)].concat());
                }
            }
        }
        seeds
    }

    #[test]
    fn mutated_updates_never_panic_and_re_encode_cleanly() {
        let seeds = seeds();
        for seed in &seeds {
            fuzz(seed);
            let (update, problems) = accepted(&seed[1..], &fuzz_session(seed[0]));
            assert!(problems.is_empty(), "{problems:?}");
            assert!(
                !update.announced.is_empty()
                    || !update.withdrawn.is_empty()
                    || !update.end_of_rib.is_empty()
            );
        }
        let mut rng = Rng(0x5eed_f00d_b6b6_u64);
        let mut outcomes = [0usize; 3];
        for round in 0..20_000 {
            let mut data = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                // Octet 0 is the session's settings: mutate the body.
                match rng.below(5) {
                    0 | 1 if data.len() > 1 => {
                        let at = 1 + rng.below(data.len() - 1);
                        data[at] = rng.next() as u8;
                    }
                    2 if data.len() > 1 => {
                        let at = 1 + rng.below(data.len() - 1);
                        data[at] ^= 1 << rng.below(8);
                    }
                    3 => data.truncate(1 + rng.below(data.len())),
                    _ => {
                        let at = 1 + rng.below(data.len());
                        data.insert(at, rng.next() as u8);
                    }
                }
            }
            fuzz(&data);
            match decode(&data[1..], &fuzz_session(data[0])) {
                Decoded::Update { problems, .. } => {
                    let withdraw = problems
                        .iter()
                        .any(|problem| problem.action == Action::TreatAsWithdraw);
                    outcomes[usize::from(withdraw)] += 1;
                }
                Decoded::Reset(_) => outcomes[2] += 1,
            }
        }
        // The mutations reach every outcome, not just the first check.
        assert!(outcomes.iter().all(|&count| count > 100), "{outcomes:?}");
    }
}
