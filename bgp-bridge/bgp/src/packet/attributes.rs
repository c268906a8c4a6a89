//! The values of single path attributes: AS paths, aggregators,
//! 4-octet word lists, MP nexthops, and the flags each must carry.

use super::*;

/// Parses AS_PATH or AS4_PATH segments of `width`-octet AS numbers. The
/// errors are those RFC 7606 7.2 lists: overrun, underrun (a lone octet
/// left), a zero-length segment, an unknown segment type.
pub(super) fn parse_as_path(
    mut bytes: &[u8],
    width: usize,
) -> Result<Vec<AsSegment>, &'static str> {
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
pub(super) fn bad_next_hop(address: IpAddr) -> Option<&'static str> {
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
pub(super) fn expected_flags(type_code: u8) -> Option<u8> {
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

/// AGGREGATOR or AS4_AGGREGATOR: an AS of `width` octets, then an IPv4
/// address.
pub(super) fn parse_aggregator(value: &[u8], width: usize) -> Option<(Asn, Ipv4Addr)> {
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
pub(super) fn words(value: &[u8]) -> Option<Vec<u32>> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    Some(value.chunks_exact(4).filter_map(read_u32).collect())
}

/// LARGE_COMMUNITY values (a non-zero multiple of 12 octets, checked by
/// the caller), each repeat after the first dropped as RFC 8092 5 asks
/// of a receiver.
pub(super) fn large_communities(value: &[u8]) -> Vec<LargeCommunity> {
    let mut communities: Vec<LargeCommunity> = value
        .chunks_exact(12)
        .filter_map(|octets| {
            Some(LargeCommunity {
                global: read_u32(&octets[..4])?,
                local1: read_u32(&octets[4..8])?,
                local2: read_u32(&octets[8..])?,
            })
        })
        .collect();
    // A route carries a few: comparing each with those before it costs
    // less than a hash set then.
    if communities.len() <= 32 {
        let mut kept = 0;
        for at in 0..communities.len() {
            if !communities[..kept].contains(&communities[at]) {
                communities[kept] = communities[at];
                kept += 1;
            }
        }
        communities.truncate(kept);
    } else {
        let mut seen = std::collections::HashSet::with_capacity(communities.len());
        communities.retain(|community| seen.insert(*community));
    }
    communities
}

/// An IPv6 MP nexthop: global, optionally followed by link-local (RFC 2545
/// 3). An IPv4-mapped global is the IPv4 address it maps; a global of `::`
/// beside a link-local leaves the link-local as the nexthop (BIRD sends
/// that from an interface without a global address). A second address
/// that is not link-local is ignored, as BIRD and FRR ignore it.
pub(super) fn ipv6_next_hop(octets: &[u8]) -> Option<(IpAddr, Option<Ipv6Addr>)> {
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
