//! OPEN (RFC 4271 4.2) and the capabilities it carries (RFC 5492).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, ExtendedNextHopEncoding, ExtendedNextHopEncodingCapability,
    FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::{AddressFamily, AddressType};
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::{ParseFrom, ParseFromWithOneInput};
use tracing::debug;

use super::HEADER_LEN;
use super::message::{address_type, notification_of, write_message};
use crate::session::SessionConfig;
use crate::types::{AS_TRANS, Asn, Notification};

/// Optional parameter type of capabilities (RFC 5492).
const CAPABILITIES_PARAMETER: u8 = 2;

/// Our OPEN (RFC 4271 4.2) and its capabilities.
pub(crate) fn open_message(config: &SessionConfig) -> Vec<u8> {
    let mut capabilities: Vec<BgpCapability> = config
        .families
        .iter()
        .map(|family| {
            BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
                address_type(*family),
            ))
        })
        .collect();
    if config.route_refresh {
        capabilities.push(BgpCapability::RouteRefresh);
    }
    if config.extended_messages {
        capabilities.push(BgpCapability::ExtendedMessage);
    }
    if config.extended_next_hop_ipv4 {
        capabilities.push(BgpCapability::ExtendedNextHopEncoding(
            ExtendedNextHopEncodingCapability::new(vec![ExtendedNextHopEncoding::new(
                AddressType::Ipv4Unicast,
                AddressFamily::IPv6,
            )]),
        ));
    }
    if let Some(graceful_restart) = &config.graceful_restart {
        let families: Vec<GracefulRestartAddressFamily> = config
            .families
            .iter()
            .map(|family| {
                GracefulRestartAddressFamily::new(
                    graceful_restart.forwarding_preserved,
                    address_type(*family),
                )
            })
            .collect();
        capabilities.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                graceful_restart.restarting,
                false,
                graceful_restart.restart_time,
                families,
            ),
        ));
    }
    capabilities.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        config.local_as,
    )));
    let my_as = u16::try_from(config.local_as).unwrap_or(AS_TRANS as u16);
    write_message(&BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        config.hold_time,
        config.router_id,
        vec![BgpOpenMessageParameter::Capabilities(capabilities.into())],
    )))
}

/// What the neighbor's OPEN says.
pub(crate) struct PeerOpen {
    /// From the 4-octet AS capability when present.
    pub(crate) asn: Asn,
    pub(crate) hold_time: u16,
    pub(crate) id: Ipv4Addr,
    /// Those that could be decoded.
    pub(crate) capabilities: Vec<BgpCapability>,
    /// Codes of all capabilities, decoded or not.
    pub(crate) capability_codes: Vec<u8>,
}

/// Checks and reads an OPEN (a whole message): version, hold time and
/// identifier by `netgauze-bgp-pkt`, which answers the NOTIFICATION RFC
/// 4271 6.2 calls for.
pub(crate) fn decode_open(message: &[u8]) -> Result<PeerOpen, Notification> {
    // Capabilities are read below, one by one; errors in them are not the
    // OPEN's (RFC 5492: ignore what is not understood).
    let mut context = BgpParsingContext::new(
        true,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    );
    let open = match BgpMessage::parse(&mut SliceReader::new(message), &mut context) {
        Ok(BgpMessage::Open(open)) => open,
        Ok(_) => unreachable!("the header said OPEN"),
        Err(parse_error) => {
            let notification = notification_of(&BgpNotificationMessage::from(parse_error));
            return Err(notification);
        }
    };
    // The optional parameters follow version, AS, hold time, identifier
    // and their own length: 10 octets into the body.
    let parameters = message.get(HEADER_LEN + 10..).unwrap_or_default();
    let (capabilities, capability_codes) = capabilities_in(parameters);
    let asn = capabilities
        .iter()
        .find_map(|capability| match capability {
            BgpCapability::FourOctetAs(four_octet_as) => Some(four_octet_as.asn4()),
            _ => None,
        })
        .unwrap_or(Asn::from(open.my_as()));
    Ok(PeerOpen {
        asn,
        hold_time: open.hold_time(),
        id: open.bgp_id(),
        capabilities,
        capability_codes,
    })
}

/// The capabilities of OPEN optional parameters, each decoded from its own
/// octets: one that is malformed or unknown costs only itself (the
/// library, told to carry on after a bad capability, would resume in the
/// middle of it). Also the codes of all, decoded or not.
pub(crate) fn capabilities_in(mut parameters: &[u8]) -> (Vec<BgpCapability>, Vec<u8>) {
    let mut capabilities = Vec::new();
    let mut codes = Vec::new();
    while let [kind, length, rest @ ..] = parameters {
        let Some(value) = rest.get(..usize::from(*length)) else {
            break;
        };
        if *kind == CAPABILITIES_PARAMETER {
            let mut tlvs = value;
            while let [code, length, ..] = tlvs {
                let Some(tlv) = tlvs.get(..2 + usize::from(*length)) else {
                    break;
                };
                codes.push(*code);
                match BgpCapability::parse(&mut SliceReader::new(tlv)) {
                    Ok(capability) => capabilities.push(capability),
                    Err(parse_error) => debug!(%parse_error, "capability ignored"),
                }
                tlvs = &tlvs[tlv.len()..];
            }
        }
        parameters = &rest[value.len()..];
    }
    (capabilities, codes)
}
