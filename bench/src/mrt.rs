//! An MRT file (RFC 6396, TABLE_DUMP_V2) holding a prefix set as one
//! peer's RIB, for `gobgp mrt inject`: a PEER_INDEX_TABLE with that peer,
//! then one RIB_IPV4_UNICAST record per prefix.
//!
//! Attributes are drawn from a small pool (as in a real table, where many
//! prefixes share an AS path): ORIGIN, AS_PATH (one AS_SEQUENCE of one to
//! six 4-octet ASNs from a private range the labs do not use) and
//! NEXT_HOP 0.0.0.0.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::prefixes::{Prefix, Random};

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;
/// Distinct attribute sets in the file.
const ATTRIBUTE_POOL: usize = 4_096;

fn record(out: &mut impl Write, subtype: u16, body: &[u8]) -> std::io::Result<()> {
    out.write_all(&0u32.to_be_bytes())?; // timestamp
    out.write_all(&TABLE_DUMP_V2.to_be_bytes())?;
    out.write_all(&subtype.to_be_bytes())?;
    out.write_all(&(body.len() as u32).to_be_bytes())?;
    out.write_all(body)
}

/// Path attributes: ORIGIN IGP, AS_PATH, NEXT_HOP.
pub fn attributes(path: &[u32], next_hop: Ipv4Addr) -> Vec<u8> {
    let mut attributes = vec![0x40, 1, 1, 0];
    let as_path_len = 2 + 4 * path.len();
    attributes.extend_from_slice(&[0x40, 2, as_path_len as u8, 2, path.len() as u8]);
    for asn in path {
        attributes.extend_from_slice(&asn.to_be_bytes());
    }
    attributes.extend_from_slice(&[0x40, 3, 4]);
    attributes.extend_from_slice(&next_hop.octets());
    attributes
}

/// Writes `prefixes` as the RIB of peer `peer` (AS `peer_as`) to `path`.
///
/// The file ends with [`padding`]`(prefixes.len())` records that repeat
/// the first prefixes with the same attributes: `gobgp mrt inject` (3.10)
/// exits before its last few hundred paths have reached gobgpd, and those
/// are lost; repeats change nothing when they do arrive.
pub fn write(
    path: &Path,
    prefixes: &[Prefix],
    peer: Ipv4Addr,
    peer_as: u32,
    seed: u64,
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

    // Unspecified next hop: gobgpd sends its own address to each neighbor
    // (it keeps a next hop given with a local path as it is).
    let pool: Vec<Vec<u8>> = path_pool(seed)
        .iter()
        .map(|path| attributes(path, Ipv4Addr::UNSPECIFIED))
        .collect();
    let repeats = prefixes.iter().take(padding(prefixes.len())).cycle();
    let repeats = repeats.take(if prefixes.is_empty() {
        0
    } else {
        padding(prefixes.len())
    });
    for (sequence, prefix) in prefixes.iter().chain(repeats).enumerate() {
        let attributes = &pool[path_of(seed, prefix)];
        body.clear();
        body.extend_from_slice(&(sequence as u32).to_be_bytes());
        body.push(prefix.len);
        let octets = usize::from(prefix.len).div_ceil(8);
        body.extend_from_slice(&prefix.address.to_be_bytes()[..octets]);
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // peer index
        body.extend_from_slice(&0u32.to_be_bytes()); // originated
        body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        body.extend_from_slice(attributes);
        record(&mut out, RIB_IPV4_UNICAST, &body)?;
    }
    out.flush()
}

/// The AS paths of the table: one AS_SEQUENCE of one to six ASNs each.
pub fn path_pool(seed: u64) -> Vec<Vec<u32>> {
    let mut random = Random::new(seed ^ 0x6d72_7400);
    (0..ATTRIBUTE_POOL)
        .map(|_| {
            let len = 1 + random.below(6) as usize;
            // 4200000000-4200999999: private 4-octet ASNs, none of the labs'.
            (0..len)
                .map(|_| 4_200_000_000 + random.below(1_000_000))
                .collect()
        })
        .collect()
}

/// The index in [`path_pool`] of the path `prefix` carries: chosen by the
/// prefix, so that a repeat carries the same path.
pub fn path_of(seed: u64, prefix: &Prefix) -> usize {
    let mut by_prefix =
        Random::new(seed ^ (u64::from(prefix.address) << 8 | u64::from(prefix.len)));
    by_prefix.below(ATTRIBUTE_POOL as u32) as usize
}

/// Repeated records at the end of a file of `count` prefixes.
pub fn padding(count: usize) -> usize {
    (count / 20).max(2_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_their_lengths_and_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rib.mrt");
        let prefixes = [Prefix {
            address: u32::from(Ipv4Addr::new(203, 0, 113, 0)),
            len: 24,
        }];
        write(&path, &prefixes, Ipv4Addr::new(10, 255, 0, 1), 65002, 1).unwrap();
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
