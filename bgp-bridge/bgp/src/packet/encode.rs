//! Encoding routes and withdrawals into whole UPDATE messages.

use super::*;

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
        let next_hop = match (family, attributes.next_hop.address()) {
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
                mp_next_hop(IpAddr::V6(address), attributes.next_hop.link_local())
            }
            (Family::Ipv6Unicast, Some(address)) => {
                mp_next_hop(address, attributes.next_hop.link_local())
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
pub(super) fn message(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
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
pub(super) fn pack<'p>(prefixes: impl Iterator<Item = &'p IpNet>, budget: usize) -> Vec<Vec<u8>> {
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

pub(super) fn mp_family(family: Family) -> Vec<u8> {
    let (afi, safi) = family.afi_safi();
    let mut value = afi.to_be_bytes().to_vec();
    value.push(safi);
    value
}

/// An MP nexthop: 4 octets for IPv4, 16 for IPv6 (IPv4-mapped for an IPv4
/// nexthop of an IPv6 route), 32 with a link-local besides.
pub(super) fn mp_next_hop(next_hop: IpAddr, link_local: Option<Ipv6Addr>) -> Vec<u8> {
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
pub(super) fn put_attribute(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
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
pub(super) fn as_path_value(segments: &[AsSegment], width: usize) -> Vec<u8> {
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

pub(super) fn two_octet(asn: Asn) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS as u16)
}

/// Every attribute but MP_REACH_NLRI, in ascending type order (RFC 4271
/// 5): what the session needs (2- or 4-octet AS, AS4_* beside), what goes
/// only to internal neighbors kept from external ones.
pub(super) fn encode_attributes(
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
        as_path_value(&attributes.as_path.to_segments(), width),
    ));
    if let Some(next_hop) = next_hop {
        list.push((well_known, code::NEXT_HOP, next_hop.octets().to_vec()));
    }
    if let Some(med) = attributes.med() {
        list.push((flag::OPTIONAL, code::MED, med.to_be_bytes().to_vec()));
    }
    if !ebgp {
        let local_pref = attributes.local_pref().unwrap_or(DEFAULT_LOCAL_PREF);
        list.push((
            well_known,
            code::LOCAL_PREF,
            local_pref.to_be_bytes().to_vec(),
        ));
    }
    if attributes.atomic_aggregate() {
        list.push((well_known, code::ATOMIC_AGGREGATE, Vec::new()));
    }
    if let Some((asn, address)) = attributes.aggregator() {
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
    if !attributes.extended_communities().is_empty() {
        let value = attributes
            .extended_communities()
            .iter()
            .flat_map(|community| community.to_be_bytes())
            .collect();
        list.push((optional_transitive, code::EXTENDED_COMMUNITIES, value));
    }
    if !attributes.large_communities().is_empty() {
        let value = attributes
            .large_communities()
            .iter()
            .flat_map(|community| {
                let mut octets = [0; 12];
                octets[..4].copy_from_slice(&community.global.to_be_bytes());
                octets[4..8].copy_from_slice(&community.local1.to_be_bytes());
                octets[8..].copy_from_slice(&community.local2.to_be_bytes());
                octets
            })
            .collect();
        list.push((optional_transitive, code::LARGE_COMMUNITIES, value));
    }
    if !ebgp {
        if let Some(originator_id) = attributes.originator_id() {
            list.push((
                flag::OPTIONAL,
                code::ORIGINATOR_ID,
                originator_id.octets().to_vec(),
            ));
        }
        if !attributes.cluster_list().is_empty() {
            let value = attributes
                .cluster_list()
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
            .to_segments()
            .into_iter()
            .filter(|segment| matches!(segment, AsSegment::Sequence(_) | AsSegment::Set(_)))
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
    for other in attributes.other() {
        let known = expected_flags(other.code).is_some();
        // Never pass on what the list above already holds.
        if known && other.code != code::IPV6_EXTENDED_COMMUNITIES {
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
