//! Writes a table as the RIB of one peer: a PEER_INDEX_TABLE with that
//! peer, then one RIB_IPV4_UNICAST or RIB_IPV6_UNICAST record per prefix.
//! IPv4 attributes carry NEXT_HOP 0.0.0.0: gobgpd sends its own address
//! to each neighbor instead (it keeps a next hop given with a local path
//! as it is). IPv6 ones carry an MP_REACH_NLRI with the next hop given
//! (gobgpd's own address on an IPv4 session would not do), in the full
//! form with no NLRI that gobgpd reads.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::{PEER_INDEX_TABLE, RIB_IPV4_UNICAST, RIB_IPV6_UNICAST, TABLE_DUMP_V2};
use crate::prefixes::IpPrefix;
use crate::table::{NextHop, Table};

fn record(out: &mut impl Write, subtype: u16, body: &[u8]) -> std::io::Result<()> {
    out.write_all(&0u32.to_be_bytes())?; // timestamp
    out.write_all(&TABLE_DUMP_V2.to_be_bytes())?;
    out.write_all(&subtype.to_be_bytes())?;
    out.write_all(&(body.len() as u32).to_be_bytes())?;
    out.write_all(body)
}

/// Writes `table` as the RIB of peer `peer` (AS `peer_as`) to `path`,
/// its IPv6 routes with next hop `next_hop6`.
///
/// The file ends with [`padding`]`(table.len())` records that repeat the
/// first prefixes with the same attributes: `gobgp mrt inject` (3.10)
/// exits before its last few hundred paths have reached gobgpd, and those
/// are lost; repeats change nothing when they do arrive.
pub fn write(
    path: &Path,
    table: &Table,
    peer: Ipv4Addr,
    peer_as: u32,
    next_hop6: Ipv6Addr,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut body = Vec::new();
    body.extend_from_slice(&peer.octets()); // collector BGP ID
    body.extend_from_slice(&0u16.to_be_bytes()); // no view name
    body.extend_from_slice(&1u16.to_be_bytes());
    body.push(0b10); // IPv4 address, 4-octet AS
    body.extend_from_slice(&peer.octets());
    body.extend_from_slice(&peer.octets());
    body.extend_from_slice(&peer_as.to_be_bytes());
    record(&mut out, PEER_INDEX_TABLE, &body)?;

    let encoded = |next_hop: NextHop<'_>| -> Vec<Vec<u8>> {
        table
            .sets
            .iter()
            .map(|set| set.encode(None, next_hop))
            .collect()
    };
    let ipv4 = encoded(NextHop::V4(Ipv4Addr::UNSPECIFIED));
    let ipv6 = if table.ipv6() > 0 {
        encoded(NextHop::V6(next_hop6, &[]))
    } else {
        Vec::new()
    };
    let routes = table.prefixes.iter().zip(&table.set_of);
    let repeats = routes.clone().cycle().take(if table.len() == 0 {
        0
    } else {
        padding(table.len())
    });
    for (sequence, (prefix, &set)) in routes.chain(repeats).enumerate() {
        let (subtype, attributes) = match prefix {
            IpPrefix::V4(_) => (RIB_IPV4_UNICAST, &ipv4[set as usize]),
            IpPrefix::V6(_) => (RIB_IPV6_UNICAST, &ipv6[set as usize]),
        };
        body.clear();
        body.extend_from_slice(&(sequence as u32).to_be_bytes());
        body.extend(prefix.nlri());
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // peer index
        body.extend_from_slice(&0u32.to_be_bytes()); // originated
        body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        body.extend_from_slice(attributes);
        record(&mut out, subtype, &body)?;
    }
    out.flush()
}

/// Repeated records at the end of a file of `count` prefixes.
pub fn padding(count: usize) -> usize {
    (count / 20).max(2_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefixes::Prefix;

    #[test]
    fn records_carry_their_lengths_and_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rib.mrt");
        let prefixes = vec![Prefix {
            address: u32::from(Ipv4Addr::new(203, 0, 113, 0)),
            len: 24,
        }];
        let table = Table::ipv4(1, prefixes);
        let next_hop6 = Ipv6Addr::UNSPECIFIED;
        write(
            &path,
            &table,
            Ipv4Addr::new(10, 255, 0, 1),
            65002,
            next_hop6,
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let first_len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let second = &bytes[12 + first_len..];
        assert_eq!(u16::from_be_bytes([second[4], second[5]]), TABLE_DUMP_V2);
        assert_eq!(u16::from_be_bytes([second[6], second[7]]), RIB_IPV4_UNICAST);
        let len = u32::from_be_bytes(second[8..12].try_into().unwrap()) as usize;
        let body = &second[12..12 + len];
        assert_eq!(&body[4..8], &[24, 203, 0, 113]);
        // The rest: the padding, repeating the one prefix record for record.
        let record = &second[..12 + len];
        let rest = &second[12 + len..];
        assert_eq!(rest.len(), padding(1) * record.len());
        assert!(
            rest.chunks(record.len())
                .all(|repeat| repeat[16..] == record[16..])
        );
    }
}
