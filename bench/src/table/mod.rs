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
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::prefixes::Prefix;

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
pub const COMMUNITIES: u8 = 8;
pub const LARGE_COMMUNITIES: u8 = 32;

pub const AS_SET: u8 = 1;
pub const AS_SEQUENCE: u8 = 2;

/// Attribute flags.
pub const OPTIONAL: u8 = 0x80;
pub const TRANSITIVE: u8 = 0x40;
pub const EXTENDED_LENGTH: u8 = 0x10;

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
    /// front (what an eBGP speaker adds) and NEXT_HOP `next_hop`.
    pub fn encode(&self, prepend: Option<u32>, next_hop: Ipv4Addr) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut others = self.others.iter().peekable();
        while let Some(attribute) = others.next_if(|attribute| attribute.code < AS_PATH) {
            put(&mut out, attribute.flags, attribute.code, &attribute.value);
        }
        put(&mut out, TRANSITIVE, AS_PATH, &self.path_bytes(prepend));
        put(&mut out, TRANSITIVE, NEXT_HOP, &next_hop.octets());
        for attribute in others {
            put(&mut out, attribute.flags, attribute.code, &attribute.value);
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
    pub prefixes: Vec<Prefix>,
    /// The set each prefix carries: an index into `sets`, one per prefix.
    pub set_of: Vec<u32>,
    /// Distinct attribute sets.
    pub sets: Vec<PathAttributes>,
}

impl Table {
    /// The table of `kind` with `count` prefixes for `seed`.
    pub fn generate(kind: Kind, seed: u64, count: usize) -> Self {
        match kind {
            Kind::Real => real::generate(seed, count),
            Kind::Uniform => Self::uniform(seed, crate::prefixes::generate(seed, count)),
        }
    }

    /// `prefixes` over the 4,096 AS paths of [`uniform_paths`], each
    /// prefix's chosen by the prefix itself ([`uniform_path_of`]).
    pub fn uniform(seed: u64, prefixes: Vec<Prefix>) -> Self {
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
    pub fn from_routes(routes: impl IntoIterator<Item = (Prefix, PathAttributes)>) -> Self {
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
    pub fn routes(&self) -> impl Iterator<Item = (&Prefix, &PathAttributes)> {
        self.prefixes
            .iter()
            .zip(&self.set_of)
            .map(|(prefix, &set)| (prefix, &self.sets[set as usize]))
    }

    /// The routes for which `keep` holds, sets no route carries any more
    /// left out.
    pub fn retain(&self, mut keep: impl FnMut(&Prefix, &PathAttributes) -> bool) -> Self {
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

    /// The prefixes of each set (indices into `prefixes`), set by set;
    /// sets no prefix carries have none.
    pub fn groups(&self) -> Vec<Vec<u32>> {
        let mut groups = vec![Vec::new(); self.sets.len()];
        for (index, &set) in self.set_of.iter().enumerate() {
            groups[set as usize].push(index as u32);
        }
        groups
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
    Generated { kind: Kind, seed: u64 },
    Dump { name: String, table: Table },
}

impl Source {
    /// A generated table, or the routes of peer `peer` in the MRT file
    /// `mrt` that the labs can carry (see [`Source::lab_safe`]).
    pub fn new(kind: Kind, seed: u64, mrt: Option<&Path>, peer: usize) -> anyhow::Result<Self> {
        let Some(path) = mrt else {
            return Ok(Self::Generated { kind, seed });
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
            let reason = if !crate::prefixes::usable(*prefix) {
                "not public unicast, or the labs' own addresses"
            } else if attributes
                .asns()
                .any(|asn| (64_512..=65_534).contains(&asn))
            {
                "a private 2-octet ASN in the AS path (the labs' own)"
            } else if attributes.encode(Some(0), Ipv4Addr::UNSPECIFIED).len() + 19 + 4 + 5
                > MAX_MESSAGE
            {
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

    /// The table of `size` prefixes.
    pub fn table(&self, size: usize) -> Table {
        match self {
            Self::Generated { kind, seed } => Table::generate(*kind, *seed, size),
            Self::Dump { table, .. } if size >= table.len() => table.clone(),
            Self::Dump { table, .. } => table.first(size),
        }
    }

    /// `real (seed 1)`, `rib.mrt peer 0 (192.0.2.1 AS 64500)`.
    pub fn name(&self) -> String {
        match self {
            Self::Generated { kind, seed } => format!("{} (seed {seed})", kind.name()),
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
        format!(
            "table: {} {}: {}: {} prefixes, {} distinct attribute sets ({:.1} prefixes per set), \
             {} origin ASes{per_update}",
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
pub fn uniform_path_of(seed: u64, prefix: &Prefix) -> usize {
    let mut by_prefix = crate::prefixes::Random::new(
        seed ^ (u64::from(prefix.address) << 8 | u64::from(prefix.len)),
    );
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
        let bytes = attributes.encode(Some(65002), Ipv4Addr::new(10, 0, 0, 1));
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
        let prefix = |third| Prefix {
            address: u32::from(Ipv4Addr::new(203, 0, third, 0)),
            len: 24,
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
        assert_eq!(table.groups(), [vec![0, 2], vec![1]]);
        assert_eq!(table.first(2).prefixes, [prefix(1), prefix(2)]);
    }
}
