//! The framing every BGP message shares (RFC 4271 4.1, 6.1), and the
//! messages other than OPEN and UPDATE: KEEPALIVE, NOTIFICATION and
//! ROUTE-REFRESH (RFC 2918).

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::iana::RouteRefreshSubcode;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;

use super::HEADER_LEN;
use crate::types::{Family, MAX_MESSAGE_LEN, Notification};

/// Message types (RFC 4271 4.1, RFC 2918 3).
pub(crate) mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// NOTIFICATION error codes and the subcodes this module sends (RFC 4271
/// 4.5, RFC 4486, RFC 6608).
pub(crate) mod error {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
}

/// The length of the message at the start of `buffer` once it is all
/// there, after checking its header (RFC 4271 6.1): an UPDATE or
/// NOTIFICATION may be `max` octets (4096, or 65535 with extended
/// messages), an OPEN 4096 whatever was agreed (RFC 8654 4).
pub(crate) fn frame_length(buffer: &[u8], max: usize) -> Result<Option<usize>, Notification> {
    let header_error = |subcode: u8, data: Vec<u8>| Notification {
        code: error::MESSAGE_HEADER,
        subcode,
        data,
    };
    let marker = &buffer[..buffer.len().min(16)];
    if marker.iter().any(|octet| *octet != 0xff) {
        return Err(header_error(error::CONNECTION_NOT_SYNCHRONIZED, Vec::new()));
    }
    if buffer.len() < HEADER_LEN {
        return Ok(None);
    }
    let length_field = [buffer[16], buffer[17]];
    let length = usize::from(u16::from_be_bytes(length_field));
    let bad_length = || header_error(error::BAD_MESSAGE_LENGTH, length_field.to_vec());
    if !(HEADER_LEN..=max).contains(&length) {
        return Err(bad_length());
    }
    let (shortest, longest) = match buffer[18] {
        message_type::OPEN => (29, MAX_MESSAGE_LEN),
        message_type::UPDATE => (23, max),
        message_type::NOTIFICATION => (21, max),
        message_type::KEEPALIVE => (19, 19),
        message_type::ROUTE_REFRESH => (23, 23),
        other => return Err(header_error(error::BAD_MESSAGE_TYPE, vec![other])),
    };
    if !(shortest..=longest).contains(&length) {
        return Err(bad_length());
    }
    Ok((buffer.len() >= length).then_some(length))
}

pub(crate) fn is_whole_update(message: &[u8], max: usize) -> bool {
    matches!(frame_length(message, max), Ok(Some(length)) if length == message.len())
        && message[HEADER_LEN - 1] == message_type::UPDATE
}

/// A message of a type and body, with its header.
pub(crate) fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = HEADER_LEN + body.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&[0xff; 16]);
    message.extend_from_slice(&(length as u16).to_be_bytes());
    message.push(kind);
    message.extend_from_slice(body);
    message
}

pub(crate) fn keepalive_message() -> Vec<u8> {
    frame(message_type::KEEPALIVE, &[])
}

pub(crate) fn notification_message(notification: &Notification) -> Vec<u8> {
    let mut body = vec![notification.code, notification.subcode];
    // Data beyond what fits in a message is dropped.
    let room = MAX_MESSAGE_LEN - HEADER_LEN - body.len();
    body.extend_from_slice(&notification.data[..notification.data.len().min(room)]);
    frame(message_type::NOTIFICATION, &body)
}

pub(crate) fn write_message(message: &BgpMessage) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(message.len());
    message
        .write(&mut bytes)
        .expect("an OPEN of a few capabilities or a ROUTE-REFRESH fits in a message");
    bytes
}

pub(crate) fn route_refresh_message(family: Family) -> Vec<u8> {
    write_message(&BgpMessage::RouteRefresh(BgpRouteRefreshMessage::new(
        address_type(family),
        RouteRefreshSubcode::NormalRequest,
    )))
}

/// Code, subcode and data of one of the library's NOTIFICATIONs.
pub(crate) fn notification_of(message: &BgpNotificationMessage) -> Notification {
    let mut bytes = Vec::with_capacity(message.len());
    if message.write(&mut bytes).is_ok()
        && let [code, subcode, data @ ..] = bytes.as_slice()
    {
        return Notification {
            code: *code,
            subcode: *subcode,
            data: data.to_vec(),
        };
    }
    Notification {
        code: error::OPEN_MESSAGE,
        subcode: 0,
        data: Vec::new(),
    }
}

pub(crate) fn address_type(family: Family) -> AddressType {
    match family {
        Family::Ipv4Unicast => AddressType::Ipv4Unicast,
        Family::Ipv6Unicast => AddressType::Ipv6Unicast,
    }
}

pub(crate) fn family_of(address_type: AddressType) -> Option<Family> {
    match address_type {
        AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
        AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

/// A NOTIFICATION in words: `Cease / Administrative Shutdown (6/2):
/// "maintenance"`.
pub fn describe(notification: &Notification) -> String {
    let Notification {
        code,
        subcode,
        data,
    } = notification;
    let mut text = match subcode_name(*code, *subcode) {
        Some(subcode_name) => format!("{} / {subcode_name}", code_name(*code)),
        None if *subcode == 0 => code_name(*code).to_owned(),
        None => format!("{} / subcode {subcode}", code_name(*code)),
    };
    text.push_str(&format!(" ({code}/{subcode})"));
    if let Some(message) = shutdown_message(notification) {
        text.push_str(&format!(": {message:?}"));
    } else if !data.is_empty() {
        text.push_str(", data ");
        for octet in data.iter().take(32) {
            text.push_str(&format!("{octet:02x}"));
        }
        if data.len() > 32 {
            text.push('…');
        }
    }
    text
}

pub(crate) fn code_name(code: u8) -> &'static str {
    match code {
        1 => "Message Header Error",
        2 => "OPEN Message Error",
        3 => "UPDATE Message Error",
        4 => "Hold Timer Expired",
        5 => "Finite State Machine Error",
        6 => "Cease",
        7 => "ROUTE-REFRESH Message Error",
        _ => "unknown error code",
    }
}

pub(crate) fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (1, 1) => "Connection Not Synchronized",
        (1, 2) => "Bad Message Length",
        (1, 3) => "Bad Message Type",
        (2, 1) => "Unsupported Version Number",
        (2, 2) => "Bad Peer AS",
        (2, 3) => "Bad BGP Identifier",
        (2, 4) => "Unsupported Optional Parameter",
        (2, 6) => "Unacceptable Hold Time",
        (2, 7) => "Unsupported Capability",
        (2, 11) => "Role Mismatch",
        (3, 1) => "Malformed Attribute List",
        (3, 2) => "Unrecognized Well-known Attribute",
        (3, 3) => "Missing Well-known Attribute",
        (3, 4) => "Attribute Flags Error",
        (3, 5) => "Attribute Length Error",
        (3, 6) => "Invalid ORIGIN Attribute",
        (3, 8) => "Invalid NEXT_HOP Attribute",
        (3, 9) => "Optional Attribute Error",
        (3, 10) => "Invalid Network Field",
        (3, 11) => "Malformed AS_PATH",
        (5, 1) => "Receive Unexpected Message in OpenSent State",
        (5, 2) => "Receive Unexpected Message in OpenConfirm State",
        (5, 3) => "Receive Unexpected Message in Established State",
        (6, 1) => "Maximum Number of Prefixes Reached",
        (6, 2) => "Administrative Shutdown",
        (6, 3) => "Peer De-configured",
        (6, 4) => "Administrative Reset",
        (6, 5) => "Connection Rejected",
        (6, 6) => "Other Configuration Change",
        (6, 7) => "Connection Collision Resolution",
        (6, 8) => "Out of Resources",
        (6, 9) => "Hard Reset",
        (6, 10) => "BFD Down",
        (7, 1) => "Invalid Message Length",
        _ => return None,
    })
}

/// The operator's message of a Cease / Administrative Shutdown or Reset
/// (RFC 9003): a length octet, then UTF-8.
pub(crate) fn shutdown_message(notification: &Notification) -> Option<&str> {
    let Notification {
        code: error::CEASE,
        subcode: error::ADMINISTRATIVE_SHUTDOWN | error::ADMINISTRATIVE_RESET,
        data,
    } = notification
    else {
        return None;
    };
    let (length, text) = data.split_first()?;
    let text = text.get(..usize::from(*length)).filter(|_| *length > 0)?;
    std::str::from_utf8(text).ok()
}
