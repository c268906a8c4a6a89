//! The route tables the bgp and restart scenarios send: a list of
//! prefixes, each carrying one of a list of distinct path attribute sets.
//!
//! A table comes from a seed, in one of two shapes ([`Kind`]): `uniform`,
//! the harness's first table (4,096 attribute sets of ORIGIN and AS_PATH
//! alone, hundreds of prefixes each), or `real` ([`real`]), shaped like a
//! full feed from a transit provider (a distinct set for every third or
//! fourth prefix, communities, MED, prepends); or it is read from a
//! user's MRT dump ([`crate::mrt::read`]). Senders turn a set into bytes
//! with [`PathAttributes::encode`], adding their own next hop (and, an
//! eBGP peer, their own AS in front of the path), and pack the prefixes of
//! one set together ([`Table::groups`]).

pub mod real;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::prefixes::{IpPrefix, Prefix};

/// Which table a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Shaped like a full feed: a distinct attribute set for every third
    /// or fourth prefix, communities, MED, prepends.
    Real,
    /// 4,096 attribute sets (ORIGIN and AS_PATH) shared by all prefixes.
    Uniform,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Real => "real",
            Kind::Uniform => "uniform",
        }
    }
}

pub const ORIGIN: u8 = 1;
pub const AS_PATH: u8 = 2;
pub const NEXT_HOP: u8 = 3;
pub const MULTI_EXIT_DISC: u8 = 4;
pub const MP_REACH_NLRI: u8 = 14;
pub const MP_UNREACH_NLRI: u8 = 15;
pub const COMMUNITIES: u8 = 8;
pub const LARGE_COMMUNITIES: u8 = 32;

pub const AS_SET: u8 = 1;
pub const AS_SEQUENCE: u8 = 2;

/// Attribute flags.
pub const OPTIONAL: u8 = 0x80;
pub const TRANSITIVE: u8 = 0x40;
pub const EXTENDED_LENGTH: u8 = 0x10;

/// AFI and SAFI of IPv6 unicast.
pub const IPV6_UNICAST: [u8; 3] = [0, 2, 1];

/// The next hop a sender gives, by the routes' family: NEXT_HOP for IPv4,
/// MP_REACH_NLRI for IPv6 (with the routes' NLRI in it; none in an MRT
/// entry, which names the prefix itself).
#[derive(Debug, Clone, Copy)]
pub enum NextHop<'a> {
    V4(Ipv4Addr),
    V6(Ipv6Addr, &'a [u8]),
}

/// One segment of an AS_PATH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// [`AS_SET`] or [`AS_SEQUENCE`].
    pub kind: u8,
    pub asns: Vec<u32>,
}

/// A path attribute other than AS_PATH and NEXT_HOP, its value as on the
/// wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Flags without [`EXTENDED_LENGTH`] (set when encoding, as needed).
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

/// One distinct set of path attributes. The next hop is not part of it:
/// each sender puts its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub as_path: Vec<Segment>,
    /// Every other attribute, in ascending order of code.
    pub others: Vec<Attribute>,
}

impl PathAttributes {
    /// ORIGIN IGP and one AS_SEQUENCE.
    pub fn with_path(path: Vec<u32>) -> Self {
        Self {
            as_path: vec![Segment {
                kind: AS_SEQUENCE,
                asns: path,
            }],
            others: vec![Attribute {
                flags: TRANSITIVE,
                code: ORIGIN,
                value: vec![0],
            }],
        }
    }

    /// The attributes as an UPDATE or a TABLE_DUMP_V2 entry carries them,
    /// in ascending order of code: the others, AS_PATH with `prepend` in
    /// front (what an eBGP speaker adds) and `next_hop`.
    pub fn encode(&self, prepend: Option<u32>, next_hop: NextHop<'_>) -> Vec<u8> {
        let path = self.path_bytes(prepend);
        let mut reach = Vec::new();
        let (flags, code, hop): (u8, u8, &[u8]) = match next_hop {
            NextHop::V4(address) => {
                reach.extend_from_slice(&address.octets());
                (TRANSITIVE, NEXT_HOP, &reach)
            }
            NextHop::V6(address, nlri) => {
                reach.extend_from_slice(&IPV6_UNICAST);
                reach.push(16);
                reach.extend_from_slice(&address.octets());
                reach.push(0); // reserved
                reach.extend_from_slice(nlri);
                (OPTIONAL, MP_REACH_NLRI, &reach)
            }
        };
        let mut all: Vec<(u8, u8, &[u8])> = self
            .others
            .iter()
            .map(|attribute| (attribute.flags, attribute.code, attribute.value.as_slice()))
            .collect();
        all.push((TRANSITIVE, AS_PATH, &path));
        all.push((flags, code, hop));
        all.sort_by_key(|&(_, code, _)| code);
        let mut out = Vec::with_capacity(64 + reach.len());
        for (flags, code, value) in all {
            put(&mut out, flags, code, value);
        }
        out
    }

    /// The AS_PATH's value, 4-octet ASNs.
    fn path_bytes(&self, prepend: Option<u32>) -> Vec<u8> {
        let mut segments = self.as_path.clone();
        if let Some(asn) = prepend {
            match segments.first_mut() {
                Some(first) if first.kind == AS_SEQUENCE && first.asns.len() < 255 => {
                    first.asns.insert(0, asn);
                }
                _ => segments.insert(
                    0,
                    Segment {
                        kind: AS_SEQUENCE,
                        asns: vec![asn],
                    },
                ),
            }
        }
        let mut value = Vec::new();
        for segment in &segments {
            value.extend_from_slice(&[segment.kind, segment.asns.len() as u8]);
            for asn in &segment.asns {
                value.extend_from_slice(&asn.to_be_bytes());
            }
        }
        value
    }

    /// The AS that originated the route: the last of the path, if that
    /// ends in a sequence.
    pub fn origin_as(&self) -> Option<u32> {
        self.as_path
            .last()
            .filter(|segment| segment.kind == AS_SEQUENCE)
            .and_then(|segment| segment.asns.last().copied())
    }

    /// Every ASN anywhere in the path.
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.as_path
            .iter()
            .flat_map(|segment| segment.asns.iter().copied())
    }

    pub fn attribute(&self, code: u8) -> Option<&Attribute> {
        self.others.iter().find(|attribute| attribute.code == code)
    }
}

/// Appends one attribute, with a one- or two-octet length as it needs.
fn put(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | EXTENDED_LENGTH, code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !EXTENDED_LENGTH, code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

/// Prefixes and the attribute sets they carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Distinct prefixes, in the order they are withdrawn.
    pub prefixes: Vec<IpPrefix>,
    /// The set each prefix carries: an index into `sets`, one per prefix.
    pub set_of: Vec<u32>,
    /// Distinct attribute sets.
    pub sets: Vec<PathAttributes>,
}

impl Table {
    /// The table of `kind` with `count` prefixes for `seed`, `ipv6` of
    /// them IPv6.
    pub fn generate(kind: Kind, seed: u64, count: usize, ipv6: usize) -> Self {
        let ipv6 = ipv6.min(count);
        match kind {
            Kind::Real => real::generate(seed, count - ipv6, ipv6),
            Kind::Uniform => Self::uniform(
                seed,
                crate::prefixes::generate(seed, count - ipv6)
                    .into_iter()
                    .map(IpPrefix::V4)
                    .chain(
                        crate::prefixes::generate6(seed, ipv6)
                            .into_iter()
                            .map(IpPrefix::V6),
                    )
                    .collect(),
            ),
        }
    }

    /// IPv4 `prefixes` as a table of their own (uniform).
    pub fn ipv4(seed: u64, prefixes: Vec<Prefix>) -> Self {
        Self::uniform(seed, prefixes.into_iter().map(IpPrefix::V4).collect())
    }

    /// `prefixes` over the 4,096 AS paths of [`uniform_paths`], each
    /// prefix's chosen by the prefix itself ([`uniform_path_of`]).
    pub fn uniform(seed: u64, prefixes: Vec<IpPrefix>) -> Self {
        let sets = uniform_paths(seed)
            .into_iter()
            .map(PathAttributes::with_path)
            .collect();
        let set_of = prefixes
            .iter()
            .map(|prefix| uniform_path_of(seed, prefix) as u32)
            .collect();
        Self {
            prefixes,
            set_of,
            sets,
        }
    }

    /// A table of `(prefix, attributes)` pairs, equal sets shared; a
    /// prefix seen again is left out (its first attributes stay).
    pub fn from_routes(routes: impl IntoIterator<Item = (IpPrefix, PathAttributes)>) -> Self {
        let mut table = Self::default();
        let mut interned: HashMap<PathAttributes, u32> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (prefix, attributes) in routes {
            if !seen.insert(prefix) {
                continue;
            }
            let next = interned.len() as u32;
            let set = *interned.entry(attributes).or_insert_with_key(|attributes| {
                table.sets.push(attributes.clone());
                next
            });
            table.prefixes.push(prefix);
            table.set_of.push(set);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Each route: its prefix and its attributes.
    pub fn routes(&self) -> impl Iterator<Item = (&IpPrefix, &PathAttributes)> {
        self.prefixes
            .iter()
            .zip(&self.set_of)
            .map(|(prefix, &set)| (prefix, &self.sets[set as usize]))
    }

    /// The routes for which `keep` holds, sets no route carries any more
    /// left out.
    pub fn retain(&self, mut keep: impl FnMut(&IpPrefix, &PathAttributes) -> bool) -> Self {
        Self::from_routes(
            self.routes()
                .filter(|(prefix, attributes)| keep(prefix, attributes))
                .map(|(prefix, attributes)| (*prefix, attributes.clone())),
        )
    }

    /// The first `count` routes.
    pub fn first(&self, count: usize) -> Self {
        let mut taken = 0;
        self.retain(|_, _| {
            taken += 1;
            taken <= count
        })
    }

    /// The prefixes of each set and family (indices into `prefixes`),
    /// set by set, IPv4 before IPv6: what one UPDATE may carry together.
    pub fn groups(&self) -> Vec<(u32, Vec<u32>)> {
        let mut groups = vec![(Vec::new(), Vec::new()); self.sets.len()];
        for (index, (prefix, &set)) in self.prefixes.iter().zip(&self.set_of).enumerate() {
            let (ipv4, ipv6) = &mut groups[set as usize];
            match prefix {
                IpPrefix::V4(_) => ipv4.push(index as u32),
                IpPrefix::V6(_) => ipv6.push(index as u32),
            }
        }
        groups
            .into_iter()
            .enumerate()
            .flat_map(|(set, (ipv4, ipv6))| [(set as u32, ipv4), (set as u32, ipv6)])
            .filter(|(_, group)| !group.is_empty())
            .collect()
    }

    /// IPv6 prefixes in the table.
    pub fn ipv6(&self) -> usize {
        self.prefixes
            .iter()
            .filter(|prefix| matches!(prefix, IpPrefix::V6(_)))
            .count()
    }

    /// Distinct attribute sets that some prefix carries.
    pub fn sets_in_use(&self) -> usize {
        let mut used = vec![false; self.sets.len()];
        for &set in &self.set_of {
            used[set as usize] = true;
        }
        used.into_iter().filter(|&used| used).count()
    }
}

/// The UPDATE size limit (without the extended messages capability).
const MAX_MESSAGE: usize = 4096;

/// Where a scenario's tables come from: generated for each size, or one
/// peer's routes of a user's MRT dump (the first N of them for size N).
#[derive(Debug)]
pub enum Source {
    Generated {
        kind: Kind,
        seed: u64,
        /// Percent of the prefixes that are IPv6.
        ipv6: u8,
    },
    Dump {
        name: String,
        table: Table,
    },
}

impl Source {
    /// A generated table (`ipv6` percent of it IPv6), or the routes of
    /// peer `peer` in the MRT file `mrt` that the labs can carry (see
    /// [`Source::lab_safe`]).
    pub fn new(
        kind: Kind,
        seed: u64,
        ipv6: u8,
        mrt: Option<&Path>,
        peer: usize,
    ) -> anyhow::Result<Self> {
        let Some(path) = mrt else {
            anyhow::ensure!(ipv6 <= 100, "--ipv6 is a percentage: {ipv6}");
            return Ok(Self::Generated { kind, seed, ipv6 });
        };
        crate::progress(format!("reading {}", path.display()));
        let dump = crate::mrt::read(path, peer)?;
        let name = format!(
            "{} peer {}",
            path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned()
            ),
            dump.peer
        );
        crate::progress(format!("{}: {}", path.display(), dump.summary()));
        let (table, left_out) = Self::lab_safe(&dump.table);
        for (reason, count) in &left_out {
            crate::progress(format!(
                "{}: {count} prefixes left out: {reason}",
                path.display()
            ));
        }
        anyhow::ensure!(
            table.len() > 0,
            "{}: no route of peer {} is left to send",
            path.display(),
            dump.peer
        );
        Ok(Self::Dump { name, table })
    }

    /// The routes of `table` that the labs can carry, and how many were
    /// left out and why: prefixes that overlap the labs' own addresses
    /// (or are not public unicast space), paths through private 2-octet
    /// ASNs (the labs' own: a receiver would see a loop) and attribute
    /// sets too large for a 4,096-byte UPDATE.
    fn lab_safe(table: &Table) -> (Table, BTreeMap<&'static str, usize>) {
        let mut left_out = BTreeMap::new();
        let safe = table.retain(|prefix, attributes| {
            let next_hop = match prefix {
                IpPrefix::V4(_) => NextHop::V4(Ipv4Addr::UNSPECIFIED),
                IpPrefix::V6(_) => NextHop::V6(Ipv6Addr::UNSPECIFIED, &[0; 17]),
            };
            let reason = if !prefix.usable() {
                "not public unicast, or the labs' own addresses"
            } else if attributes
                .asns()
                .any(|asn| (64_512..=65_534).contains(&asn))
            {
                "a private 2-octet ASN in the AS path (the labs' own)"
            } else if attributes.encode(Some(0), next_hop).len() + 19 + 4 + 5 > MAX_MESSAGE {
                "attributes too large for an UPDATE"
            } else {
                return true;
            };
            *left_out.entry(reason).or_insert(0) += 1;
            false
        });
        (safe, left_out)
    }

    /// The sizes to run at: `requested`, or for a dump each of them up to
    /// its size (one larger is the whole dump).
    pub fn sizes(&self, requested: &[usize]) -> Vec<usize> {
        match self {
            Self::Generated { .. } => requested.to_vec(),
            Self::Dump { table, .. } => {
                let mut sizes: Vec<usize> = requested
                    .iter()
                    .map(|&size| size.min(table.len()))
                    .collect();
                sizes.dedup();
                sizes
            }
        }
    }

    /// Whether the tables have IPv6 prefixes.
    pub fn ipv6(&self) -> bool {
        match self {
            Self::Generated { ipv6, .. } => *ipv6 > 0,
            Self::Dump { table, .. } => table.ipv6() > 0,
        }
    }

    /// The table of `size` prefixes.
    pub fn table(&self, size: usize) -> Table {
        match self {
            Self::Generated { kind, seed, ipv6 } => {
                Table::generate(*kind, *seed, size, size * usize::from(*ipv6) / 100)
            }
            Self::Dump { table, .. } if size >= table.len() => table.clone(),
            Self::Dump { table, .. } => table.first(size),
        }
    }

    /// A short name for the report's rows: `real`, `uniform`, `real
    /// 20 % IPv6`, `rib.mrt peer 0`.
    pub fn label(&self) -> String {
        match self {
            Self::Generated { kind, ipv6: 0, .. } => kind.name().to_owned(),
            Self::Generated { kind, ipv6, .. } => format!("{} {ipv6} % IPv6", kind.name()),
            Self::Dump { name, .. } => name
                .split_once(" (")
                .map_or_else(|| name.clone(), |(short, _)| short.to_owned()),
        }
    }

    /// `real (seed 1)`, `rib.mrt peer 0 (192.0.2.1 AS 64500)`.
    pub fn name(&self) -> String {
        match self {
            Self::Generated {
                kind,
                seed,
                ipv6: 0,
            } => format!("{} (seed {seed})", kind.name()),
            Self::Generated { kind, seed, ipv6 } => {
                format!("{} (seed {seed}, {ipv6} % IPv6)", kind.name())
            }
            Self::Dump { name, .. } => name.clone(),
        }
    }
}

/// What a table looks like, as the report prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shape {
    pub scenario: String,
    pub size: usize,
    /// `real`, `uniform` (with the seed) or the MRT file's name and peer.
    pub table: String,
    pub prefixes: usize,
    /// Of the prefixes, IPv6.
    #[serde(default)]
    pub ipv6: usize,
    pub attribute_sets: usize,
    pub origin_ases: usize,
    /// UPDATEs that carry the table when each holds prefixes of one set
    /// (what the replay feeder sends); none where no UPDATE is sent.
    pub updates: Option<usize>,
}

impl Shape {
    pub fn of(scenario: &str, table_name: &str, table: &Table, updates: Option<usize>) -> Self {
        let origins: std::collections::HashSet<u32> = table
            .set_of
            .iter()
            .filter_map(|&set| table.sets[set as usize].origin_as())
            .collect();
        Self {
            scenario: scenario.to_owned(),
            size: table.len(),
            table: table_name.to_owned(),
            prefixes: table.len(),
            ipv6: table.ipv6(),
            attribute_sets: table.sets_in_use(),
            origin_ases: origins.len(),
            updates,
        }
    }

    /// "bgp-replay 100000: table real (seed 1): 100000 prefixes, ..."
    pub fn line(&self) -> String {
        let per_update = match self.updates {
            Some(updates) if updates > 0 => format!(
                ", {updates} UPDATEs, {:.2} prefixes per UPDATE",
                self.prefixes as f64 / updates as f64
            ),
            _ => String::new(),
        };
        let ipv6 = if self.ipv6 > 0 {
            format!(" ({} IPv6)", self.ipv6)
        } else {
            String::new()
        };
        format!(
            "table: {} {}: {}: {} prefixes{ipv6}, {} distinct attribute sets ({:.1} prefixes per \
             set), {} origin ASes{per_update}",
            self.scenario,
            self.size,
            self.table,
            self.prefixes,
            self.attribute_sets,
            self.prefixes as f64 / self.attribute_sets.max(1) as f64,
            self.origin_ases,
        )
    }
}

/// Distinct AS paths of the uniform table.
const UNIFORM_PATHS: usize = 4_096;

/// The AS paths of the uniform table: one AS_SEQUENCE of one to six ASNs
/// each.
pub fn uniform_paths(seed: u64) -> Vec<Vec<u32>> {
    let mut random = crate::prefixes::Random::new(seed ^ 0x6d72_7400);
    (0..UNIFORM_PATHS)
        .map(|_| {
            let len = 1 + random.below(6) as usize;
            // 4200000000-4200999999: private 4-octet ASNs, none of the labs'.
            (0..len)
                .map(|_| 4_200_000_000 + random.below(1_000_000))
                .collect()
        })
        .collect()
}

/// The index in [`uniform_paths`] of the path `prefix` carries: chosen by
/// the prefix, so that the same prefix always carries the same path.
pub fn uniform_path_of(seed: u64, prefix: &IpPrefix) -> usize {
    let key = match prefix {
        IpPrefix::V4(prefix) => u64::from(prefix.address) << 8 | u64::from(prefix.len),
        IpPrefix::V6(prefix) => {
            (prefix.address >> 64) as u64 ^ prefix.address as u64 ^ u64::from(prefix.len)
        }
    };
    let mut by_prefix = crate::prefixes::Random::new(seed ^ key);
    by_prefix.below(UNIFORM_PATHS as u32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_go_out_in_ascending_order_with_the_path_prepended() {
        let mut attributes = PathAttributes::with_path(vec![4_200_000_001, 4_200_000_002]);
        attributes.others.push(Attribute {
            flags: OPTIONAL,
            code: MULTI_EXIT_DISC,
            value: 10u32.to_be_bytes().to_vec(),
        });
        let bytes = attributes.encode(Some(65002), NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let mut codes = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            codes.push(bytes[at + 1]);
            if bytes[at + 1] == AS_PATH {
                assert_eq!(&bytes[at + 3..at + 5], &[AS_SEQUENCE, 3]);
                assert_eq!(&bytes[at + 5..at + 9], &65002u32.to_be_bytes());
            }
            at += 3 + usize::from(bytes[at + 2]);
        }
        assert_eq!(codes, [ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC]);

        let nlri = [48, 0x2a, 0, 0x14, 0x50, 0, 1];
        let next_hop = "fd77::1".parse().unwrap();
        let bytes = attributes.encode(None, NextHop::V6(next_hop, &nlri));
        let reach = [
            &[0x80, MP_REACH_NLRI, 3 + 1 + 16 + 1 + 7, 0, 2, 1, 16][..],
            &next_hop.octets(),
            &[0],
            &nlri,
        ]
        .concat();
        assert!(bytes.ends_with(&reach), "{bytes:?}");
    }

    #[test]
    fn a_long_attribute_takes_an_extended_length() {
        let mut out = Vec::new();
        put(&mut out, OPTIONAL | TRANSITIVE, COMMUNITIES, &[0; 400]);
        assert_eq!(&out[..4], &[0xd0, COMMUNITIES, 1, 144]);
        assert_eq!(out.len(), 404);
    }

    #[test]
    fn equal_sets_are_shared_and_a_repeated_prefix_is_left_out() {
        let prefix = |third| {
            IpPrefix::V4(Prefix {
                address: u32::from(Ipv4Addr::new(203, 0, third, 0)),
                len: 24,
            })
        };
        let one = PathAttributes::with_path(vec![1]);
        let two = PathAttributes::with_path(vec![2]);
        let table = Table::from_routes([
            (prefix(1), one.clone()),
            (prefix(2), two.clone()),
            (prefix(3), one.clone()),
            (prefix(1), two.clone()),
        ]);
        assert_eq!(table.prefixes, [prefix(1), prefix(2), prefix(3)]);
        assert_eq!(table.set_of, [0, 1, 0]);
        assert_eq!(table.sets, [one, two]);
        assert_eq!(table.groups(), [(0, vec![0, 2]), (1, vec![1])]);
        assert_eq!(table.first(2).prefixes, [prefix(1), prefix(2)]);
    }
}
