//! Reads one peer's routes out of a TABLE_DUMP_V2 file: the
//! PEER_INDEX_TABLE first, then every RIB_IPV4_UNICAST and
//! RIB_IPV6_UNICAST record, keeping the chosen peer's entry of each.
//! Records of other types and subtypes are passed over.
//!
//! The attributes kept are those an eBGP peer would send on (ORIGIN,
//! AS_PATH, MED, ATOMIC_AGGREGATE, AGGREGATOR, communities of the three
//! kinds, OTC); next hops and what belongs to one AS (LOCAL_PREF,
//! ORIGINATOR_ID, CLUSTER_LIST) are dropped, and AS4_PATH and
//! AS4_AGGREGATOR too (a dump's AS_PATH is of 4-octet ASNs already). An
//! entry a receiver would refuse or treat as withdrawn (a malformed
//! attribute, a confederation segment, no ORIGIN or AS_PATH) is left out
//! and counted. A file cut short or whose lengths do not add up is an
//! error naming the record and its offset.

use std::collections::BTreeMap;
use std::io::{BufReader, ErrorKind, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, bail};

use super::{HEADER, PEER_INDEX_TABLE, RIB_IPV4_UNICAST, RIB_IPV6_UNICAST, TABLE_DUMP_V2};
use crate::prefixes::{IpPrefix, Prefix, Prefix6};
use crate::table::{
    AS_PATH, AS_SEQUENCE, AS_SET, Attribute, COMMUNITIES, LARGE_COMMUNITIES, MULTI_EXIT_DISC,
    NEXT_HOP, OPTIONAL, ORIGIN, PathAttributes, Segment, TRANSITIVE, Table,
};

const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const EXTENDED_COMMUNITIES: u8 = 16;
const MP_REACH_NLRI: u8 = 14;
const ONLY_TO_CUSTOMER: u8 = 35;

/// One peer's routes out of a file.
#[derive(Debug)]
pub struct Dump {
    /// The peer's routes, IPv4 and IPv6.
    pub table: Table,
    /// The peer, as `index (address AS n)`.
    pub peer: String,
    /// Attributes dropped from the entries kept, by code (next hops
    /// aside: every sender puts its own).
    pub dropped: BTreeMap<u8, usize>,
    /// Entries left out, by reason.
    pub refused: BTreeMap<&'static str, usize>,
}

impl Dump {
    /// One line: what was taken and what left out.
    pub fn summary(&self) -> String {
        let ipv6 = self.table.ipv6();
        let mut line = format!(
            "peer {}: {} IPv4 and {ipv6} IPv6 prefixes, {} attribute sets",
            self.peer,
            self.table.len() - ipv6,
            self.table.sets.len()
        );
        for (reason, count) in &self.refused {
            line.push_str(&format!("; {count} entries left out: {reason}"));
        }
        if !self.dropped.is_empty() {
            let codes: Vec<String> = self
                .dropped
                .iter()
                .map(|(code, count)| format!("{} x{count}", attribute_name(*code)))
                .collect();
            line.push_str(&format!("; attributes dropped: {}", codes.join(", ")));
        }
        line
    }
}

fn attribute_name(code: u8) -> String {
    match code {
        5 => "LOCAL_PREF".to_owned(),
        9 => "ORIGINATOR_ID".to_owned(),
        10 => "CLUSTER_LIST".to_owned(),
        15 => "MP_UNREACH_NLRI".to_owned(),
        17 => "AS4_PATH".to_owned(),
        18 => "AS4_AGGREGATOR".to_owned(),
        other => format!("type {other}"),
    }
}

/// A peer of the PEER_INDEX_TABLE.
#[derive(Debug, Clone)]
struct Peer {
    address: String,
    asn: u32,
}

/// Reads the routes of the peer at `peer` in the file's PEER_INDEX_TABLE.
pub fn read(path: &Path, peer: usize) -> anyhow::Result<Dump> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    from_reader(BufReader::with_capacity(1 << 20, file), peer)
        .with_context(|| path.display().to_string())
}

/// Where a record starts and what it is, for errors.
#[derive(Debug, Clone, Copy)]
struct Place {
    number: usize,
    offset: u64,
    kind: u16,
    subtype: u16,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.kind, self.subtype) {
            (TABLE_DUMP_V2, PEER_INDEX_TABLE) => "PEER_INDEX_TABLE".to_owned(),
            (TABLE_DUMP_V2, RIB_IPV4_UNICAST) => "RIB_IPV4_UNICAST".to_owned(),
            (TABLE_DUMP_V2, RIB_IPV6_UNICAST) => "RIB_IPV6_UNICAST".to_owned(),
            (kind, subtype) => format!("type {kind} subtype {subtype}"),
        };
        write!(
            f,
            "record {} ({what}) at offset {}",
            self.number, self.offset
        )
    }
}

fn from_reader(mut input: impl Read, wanted: usize) -> anyhow::Result<Dump> {
    let mut peers: Option<Vec<Peer>> = None;
    let mut entries_per_peer: Vec<usize> = Vec::new();
    let mut routes = Vec::new();
    let mut dropped = BTreeMap::new();
    let mut refused = BTreeMap::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    let mut offset = 0u64;
    let mut body = Vec::new();
    for number in 0.. {
        let mut header = [0u8; HEADER];
        let got = read_full(&mut input, &mut header)?;
        if got == 0 {
            break;
        }
        if got < HEADER {
            bail!(
                "record {number} at offset {offset}: the file ends within the record's header \
                 ({got} of {HEADER} bytes)"
            );
        }
        let place = Place {
            number,
            offset,
            kind: u16::from_be_bytes([header[4], header[5]]),
            subtype: u16::from_be_bytes([header[6], header[7]]),
        };
        let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        body.resize(len, 0);
        let got = read_full(&mut input, &mut body)?;
        if got < len {
            bail!("{place}: the file ends within the record ({got} of its {len} bytes)");
        }
        offset += (HEADER + len) as u64;
        kinds_seen.insert(place.kind);
        if place.kind != TABLE_DUMP_V2 {
            continue;
        }
        let mut record = Cursor::new(&body, place);
        match place.subtype {
            PEER_INDEX_TABLE => {
                let table = peer_index_table(&mut record)?;
                entries_per_peer = vec![0; table.len()];
                peers = Some(table);
            }
            RIB_IPV4_UNICAST | RIB_IPV6_UNICAST => {
                let Some(peers) = &peers else {
                    bail!("{place}: a RIB record before the PEER_INDEX_TABLE");
                };
                let ipv4 = place.subtype == RIB_IPV4_UNICAST;
                let (address, len) = rib_prefix(&mut record, ipv4)?;
                let count = record.u16("the entry count")?;
                let mut taken = false;
                for _ in 0..count {
                    let peer = usize::from(record.u16("an entry's peer index")?);
                    record.take(4, "an entry's time")?;
                    let attributes_len = usize::from(record.u16("an entry's attribute length")?);
                    let attributes = record.take(attributes_len, "an entry's attributes")?;
                    let Some(entries) = entries_per_peer.get_mut(peer) else {
                        bail!(
                            "{place}: an entry of peer {peer}, and the PEER_INDEX_TABLE has {}",
                            peers.len()
                        );
                    };
                    *entries += 1;
                    if peer != wanted || taken {
                        continue;
                    }
                    taken = true;
                    let prefix = if ipv4 {
                        IpPrefix::V4(Prefix {
                            address: (address >> 96) as u32,
                            len,
                        })
                    } else {
                        IpPrefix::V6(Prefix6 { address, len })
                    };
                    match path_attributes(attributes, &mut dropped) {
                        Ok(attributes) => routes.push((prefix, attributes)),
                        Err(reason) => *refused.entry(reason).or_insert(0) += 1,
                    }
                }
            }
            _ => {}
        }
    }
    let Some(peers) = peers else {
        bail!(
            "no PEER_INDEX_TABLE: not a TABLE_DUMP_V2 RIB dump (record types seen: {kinds_seen:?})"
        );
    };
    let Some(peer) = peers.get(wanted) else {
        bail!(
            "no peer {wanted}: the PEER_INDEX_TABLE has {} (0 to {})",
            peers.len(),
            peers.len().saturating_sub(1)
        );
    };
    if entries_per_peer[wanted] == 0 {
        let mut busiest: Vec<(usize, usize)> =
            entries_per_peer.iter().copied().enumerate().collect();
        busiest.sort_by_key(|&(_, entries)| std::cmp::Reverse(entries));
        let others: Vec<String> = busiest
            .iter()
            .take_while(|&&(_, entries)| entries > 0)
            .take(5)
            .map(|&(index, entries)| {
                format!(
                    "{index} ({} AS {}): {entries}",
                    peers[index].address, peers[index].asn
                )
            })
            .collect();
        bail!(
            "peer {wanted} ({} AS {}) has no unicast entries; peers with most: {}",
            peer.address,
            peer.asn,
            if others.is_empty() {
                "none".to_owned()
            } else {
                others.join(", ")
            }
        );
    }
    Ok(Dump {
        table: Table::from_routes(routes),
        peer: format!("{wanted} ({} AS {})", peer.address, peer.asn),
        dropped,
        refused,
    })
}

/// Reads until `buffer` is full or the input ends; how many bytes came.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> anyhow::Result<usize> {
    let mut got = 0;
    while got < buffer.len() {
        match input.read(&mut buffer[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error).context("reading"),
        }
    }
    Ok(got)
}

/// A record's body, read front to back; running out is an error that
/// says where.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    place: Place,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], place: Place) -> Self {
        Self {
            bytes,
            at: 0,
            place,
        }
    }

    fn take(&mut self, len: usize, what: &str) -> anyhow::Result<&'a [u8]> {
        let Some(taken) = self.bytes.get(self.at..self.at + len) else {
            bail!(
                "{}: {what} runs past the record's end (byte {} of {}, {len} wanted)",
                self.place,
                self.at,
                self.bytes.len()
            );
        };
        self.at += len;
        Ok(taken)
    }

    fn u8(&mut self, what: &str) -> anyhow::Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> anyhow::Result<u16> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, what: &str) -> anyhow::Result<u32> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

fn peer_index_table(record: &mut Cursor<'_>) -> anyhow::Result<Vec<Peer>> {
    record.take(4, "the collector's BGP ID")?;
    let view = usize::from(record.u16("the view name's length")?);
    record.take(view, "the view name")?;
    let count = record.u16("the peer count")?;
    (0..count)
        .map(|_| {
            let kind = record.u8("a peer's type")?;
            record.take(4, "a peer's BGP ID")?;
            let address = if kind & 1 == 0 {
                let octets: [u8; 4] = record.take(4, "a peer's address")?.try_into()?;
                Ipv4Addr::from(octets).to_string()
            } else {
                let octets: [u8; 16] = record.take(16, "a peer's address")?.try_into()?;
                Ipv6Addr::from(octets).to_string()
            };
            let asn = if kind & 2 == 0 {
                u32::from(record.u16("a peer's AS")?)
            } else {
                record.u32("a peer's AS")?
            };
            Ok(Peer { address, asn })
        })
        .collect()
}

/// A RIB record's prefix: its address (left-aligned in 128 bits, host
/// bits zero) and length.
fn rib_prefix(record: &mut Cursor<'_>, ipv4: bool) -> anyhow::Result<(u128, u8)> {
    record.take(4, "the sequence number")?;
    let len = record.u8("the prefix length")?;
    let max = if ipv4 { 32 } else { 128 };
    if len > max {
        bail!("{}: a prefix length of {len}", record.place);
    }
    let octets = record.take(usize::from(len).div_ceil(8), "the prefix")?;
    let mut address = [0u8; 16];
    address[..octets.len()].copy_from_slice(octets);
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    Ok((u128::from_be_bytes(address) & mask, len))
}

/// An entry's attributes as a receiver would take them, or why it would
/// not.
fn path_attributes(
    mut bytes: &[u8],
    dropped: &mut BTreeMap<u8, usize>,
) -> Result<PathAttributes, &'static str> {
    let mut attributes = PathAttributes::default();
    let mut seen = [false; 256];
    while !bytes.is_empty() {
        let [flags, code, rest @ ..] = bytes else {
            return Err("an attribute cut short");
        };
        let (len, rest) = if flags & crate::table::EXTENDED_LENGTH != 0 {
            match rest {
                [high, low, rest @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), rest),
                _ => return Err("an attribute cut short"),
            }
        } else {
            match rest {
                [len, rest @ ..] => (usize::from(*len), rest),
                _ => return Err("an attribute cut short"),
            }
        };
        if rest.len() < len {
            return Err("an attribute cut short");
        }
        let (value, rest) = rest.split_at(len);
        bytes = rest;
        if std::mem::replace(&mut seen[usize::from(*code)], true) {
            continue; // a repeat: receivers keep the first
        }
        let well_formed = match *code {
            AS_PATH => {
                attributes.as_path = as_path(value)?;
                continue;
            }
            ORIGIN => len == 1 && value[0] <= 2,
            MULTI_EXIT_DISC => len == 4,
            ATOMIC_AGGREGATE => len == 0,
            AGGREGATOR => len == 8,
            COMMUNITIES => len > 0 && len % 4 == 0,
            EXTENDED_COMMUNITIES => len > 0 && len % 8 == 0,
            LARGE_COMMUNITIES => len > 0 && len % 12 == 0,
            ONLY_TO_CUSTOMER => len == 4,
            // Every sender puts its own next hop.
            NEXT_HOP | MP_REACH_NLRI => continue,
            other => {
                *dropped.entry(other).or_insert(0) += 1;
                continue;
            }
        };
        if !well_formed {
            return Err("a malformed attribute");
        }
        let flags = match *code {
            ORIGIN | ATOMIC_AGGREGATE => TRANSITIVE,
            MULTI_EXIT_DISC => OPTIONAL,
            _ => OPTIONAL | TRANSITIVE,
        };
        attributes.others.push(Attribute {
            flags,
            code: *code,
            value: value.to_vec(),
        });
    }
    if !seen[usize::from(ORIGIN)] || !seen[usize::from(AS_PATH)] {
        return Err("no ORIGIN or no AS_PATH");
    }
    attributes.others.sort_by_key(|attribute| attribute.code);
    Ok(attributes)
}

/// An AS_PATH of 4-octet ASNs, sets and sequences only.
fn as_path(mut value: &[u8]) -> Result<Vec<Segment>, &'static str> {
    let mut segments = Vec::new();
    while !value.is_empty() {
        let [kind, count, rest @ ..] = value else {
            return Err("an AS_PATH not of 4-octet ASNs");
        };
        let len = 4 * usize::from(*count);
        if rest.len() < len || *count == 0 {
            return Err("an AS_PATH not of 4-octet ASNs");
        }
        if *kind != AS_SEQUENCE && *kind != AS_SET {
            return Err("a confederation segment in AS_PATH");
        }
        segments.push(Segment {
            kind: *kind,
            asns: rest[..len]
                .chunks_exact(4)
                .map(|asn| u32::from_be_bytes([asn[0], asn[1], asn[2], asn[3]]))
                .collect(),
        });
        value = &rest[len..];
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Kind, PathAttributes};

    fn written(table: &Table) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rib.mrt");
        let next_hop6 = "fd77::1".parse().unwrap();
        super::super::write(&path, table, Ipv4Addr::new(10, 255, 0, 1), 65002, next_hop6).unwrap();
        (dir, path)
    }

    #[test]
    fn a_table_written_is_read_back_the_same() {
        for (kind, ipv6) in [(Kind::Real, 0), (Kind::Uniform, 0), (Kind::Real, 600)] {
            let table = Table::generate(kind, 3, 3_000, ipv6);
            let (_dir, path) = written(&table);
            let dump = read(&path, 0).unwrap();
            // The padding repeats prefixes already read: the table is
            // the same, sets renumbered by first use.
            let routes = |table: &Table| -> Vec<(IpPrefix, PathAttributes)> {
                table.routes().map(|(p, a)| (*p, a.clone())).collect()
            };
            assert_eq!(routes(&dump.table), routes(&table), "{kind:?}");
            assert_eq!(dump.table.sets.len(), table.sets_in_use());
            assert_eq!(dump.peer, "0 (10.255.0.1 AS 65002)");
            assert!(dump.dropped.is_empty(), "{:?}", dump.dropped);
            assert!(dump.refused.is_empty());
        }
    }

    #[test]
    fn a_file_cut_short_says_which_record() {
        let table = Table::generate(Kind::Real, 3, 100, 0);
        let (dir, path) = written(&table);
        let bytes = std::fs::read(&path).unwrap();
        let first = HEADER + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let second = first
            + HEADER
            + u32::from_be_bytes(bytes[first + 8..first + 12].try_into().unwrap()) as usize;
        let cut = dir.path().join("cut.mrt");

        std::fs::write(&cut, &bytes[..second + 5]).unwrap();
        let error = format!("{:#}", read(&cut, 0).unwrap_err());
        assert!(error.contains("cut.mrt"), "{error}");
        assert!(
            error.contains(&format!("record 2 at offset {second}")),
            "{error}"
        );
        assert!(
            error.contains("within the record's header (5 of 12 bytes)"),
            "{error}"
        );

        std::fs::write(&cut, &bytes[..second - 3]).unwrap();
        let error = format!("{:#}", read(&cut, 0).unwrap_err());
        assert!(
            error.contains(&format!("record 1 (RIB_IPV4_UNICAST) at offset {first}")),
            "{error}"
        );
        assert!(error.contains("ends within the record"), "{error}");
    }

    #[test]
    fn lengths_that_do_not_add_up_are_named() {
        let table = Table::generate(Kind::Uniform, 3, 10, 0);
        let (dir, path) = written(&table);
        let mut bytes = std::fs::read(&path).unwrap();
        let first = HEADER + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        // The first RIB record's entry claims more attribute bytes than
        // the record holds.
        let body = first + HEADER;
        let prefix_octets = usize::from(bytes[body + 4]).div_ceil(8);
        let attributes_len = body + 4 + 1 + prefix_octets + 2 + 2 + 4;
        bytes[attributes_len..attributes_len + 2].copy_from_slice(&900u16.to_be_bytes());
        let bad = dir.path().join("bad.mrt");
        std::fs::write(&bad, &bytes).unwrap();
        let error = format!("{:#}", read(&bad, 0).unwrap_err());
        assert!(
            error.contains(&format!(
                "record 1 (RIB_IPV4_UNICAST) at offset {first}: an entry's attributes runs past"
            )),
            "{error}"
        );
    }

    #[test]
    fn another_file_or_a_missing_peer_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates.mrt");
        // One BGP4MP record (type 16), nothing else.
        let mut bytes = vec![0, 0, 0, 0, 0, 16, 0, 4, 0, 0, 0, 2];
        bytes.extend_from_slice(&[0, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let error = format!("{:#}", read(&path, 0).unwrap_err());
        assert!(error.contains("no PEER_INDEX_TABLE"), "{error}");

        let (_dir, path) = written(&Table::generate(Kind::Uniform, 1, 10, 0));
        let error = format!("{:#}", read(&path, 3).unwrap_err());
        assert!(
            error.contains("no peer 3: the PEER_INDEX_TABLE has 1"),
            "{error}"
        );
    }

    #[test]
    fn attributes_a_receiver_refuses_leave_the_entry_out() {
        let mut dropped = BTreeMap::new();
        // ORIGIN, AS_PATH with a confederation segment.
        let confed = [0x40, 1, 1, 0, 0x40, 2, 6, 3, 1, 0, 0, 0xfd, 0xe8];
        assert_eq!(
            path_attributes(&confed, &mut dropped),
            Err("a confederation segment in AS_PATH")
        );
        // A 2-octet AS_PATH (not what TABLE_DUMP_V2 holds).
        let two_octet = [0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 0xfd, 0xe8];
        assert!(path_attributes(&two_octet, &mut dropped).is_err());
        // LOCAL_PREF is dropped, MED kept with its proper flags.
        let fine = [
            0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8, 0x40, 5, 4, 0, 0, 0, 100, 0xc0, 4,
            4, 0, 0, 0, 7,
        ];
        let attributes = path_attributes(&fine, &mut dropped).unwrap();
        assert_eq!(attributes.origin_as(), Some(65000));
        assert_eq!(
            attributes
                .attribute(MULTI_EXIT_DISC)
                .map(|a| (a.flags, a.value.clone())),
            Some((OPTIONAL, vec![0, 0, 0, 7]))
        );
        assert_eq!(dropped.get(&5), Some(&1));
    }
}
