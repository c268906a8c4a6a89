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

pub use crate::types::MAX_MESSAGE_LEN;
use crate::types::{
    AS_TRANS, AsSegment, Asn, Attributes, DEFAULT_LOCAL_PREF, Family, LargeCommunity, Negotiated,
    NextHop, Notification, Origin, Rare, RawAttribute, Update,
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

mod attributes;
mod decode;
mod encode;
mod fuzz;
pub(crate) mod message;
pub(crate) mod open;
#[cfg(test)]
mod tests;

use attributes::*;
pub use decode::decode;
pub use encode::{encode, end_of_rib};
#[doc(hidden)]
pub use fuzz::fuzz;
