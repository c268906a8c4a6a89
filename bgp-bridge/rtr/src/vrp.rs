//! Validated ROA payloads and route origin validation (RFC 6811).
//!
//! A [`VrpTable`] holds the VRPs of one cache, IPv4 and IPv6 apart, each
//! keyed by its prefix (address and length, packed): the first origin of
//! a prefix (AS and max length, 5 bytes) sits in the key's entry, the
//! rarer others in a second map, so that a full set (half a million VRPs,
//! most of them alone on their prefix) allocates nothing per VRP.
//! [`VrpTable::validate`] looks up each length from 0 to the route's that
//! may hold a covering VRP (a bit per length and bucket of the address's
//! first bits says so, in a filter small enough to stay in cache): a covering VRP makes the route at least invalid, a matching
//! one (same origin AS, not AS 0, route no longer than the max length)
//! valid. [`VrpTable::apply`] takes what the client hands over at an End
//! of Data and says which VRP prefixes changed: the routes they cover are
//! the only ones to validate again.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use foldhash::fast::RandomState;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// A validated ROA payload: `asn` may originate `prefix` and its
/// more-specifics up to `max_length`. AS 0 (RFC 6483 4) authorises no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vrp {
    pub prefix: IpNet,
    pub max_length: u8,
    pub asn: u32,
}

/// A route's origin validation state (RFC 6811 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    Valid,
    Invalid,
    /// No VRP covers the route (also every route while there are no VRPs).
    #[default]
    NotFound,
}

impl Validity {
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::NotFound => "not-found",
        }
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Validity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "valid" => Ok(Validity::Valid),
            "invalid" => Ok(Validity::Invalid),
            "not-found" => Ok(Validity::NotFound),
            other => Err(format!(
                "{other:?}: expected \"valid\", \"invalid\" or \"not-found\""
            )),
        }
    }
}

/// What the client hands over when a cache's data is complete (End of
/// Data): the whole set, or the changes since the last one, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VrpUpdate {
    /// Every VRP (a Reset Query's answer, or none: the data expired).
    Reset(Vec<Vrp>),
    /// Announcements (`true`) and withdrawals (`false`).
    Delta(Vec<(Vrp, bool)>),
}

/// One origin of a prefix: AS and max length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    asn: u32,
    max_length: u8,
}

/// Bits of the filter of one prefix length: one per bucket.
const BUCKETS: usize = 1 << 16;

/// The VRPs of one family. `K` is the packed prefix.
#[derive(Debug, Clone)]
struct FamilyTable<K> {
    first: HashMap<K, Origin, RandomState>,
    more: HashMap<K, Vec<Origin>, RandomState>,
    /// VRPs per prefix length: lengths with none are not looked up.
    per_length: Vec<u32>,
    /// Per prefix length (empty until one comes), a bit per bucket of the
    /// address's first bits (see [`v4_bucket`], [`v6_bucket`]) that holds
    /// a VRP of that length: a route's lookup at a length whose bit is
    /// clear is skipped. A full set is a few MB of hash table, and each
    /// lookup a cache miss; the filter (8 KB a length) stays in cache.
    /// Bits are set, never cleared (a withdrawn VRP's bit costs a lookup
    /// at most); a reset builds a new table.
    filter: Vec<Vec<u64>>,
    len: usize,
}

/// The filter bucket of an IPv4 prefix of `length` (or a route's address
/// looked up at that length): its first `length` bits of 16.
fn v4_bucket(address: u32, length: u8) -> u16 {
    let kept = u32::from(length.min(16));
    let mask = (0xFFFF_u32 << (16 - kept)) & 0xFFFF;
    ((address >> 16) & mask) as u16
}

/// The same for IPv6: the first `length` bits of 32, folded to 16 (the
/// first 16 bits of an IPv6 unicast address say little).
fn v6_bucket(address: u128, length: u8) -> u16 {
    let kept = u32::from(length.min(32));
    let top = (address >> 96) as u32;
    let masked = if kept == 0 {
        0
    } else {
        top & (u32::MAX << (32 - kept))
    };
    ((masked >> 16) ^ masked) as u16
}

impl<K: std::hash::Hash + Eq + Copy> FamilyTable<K> {
    fn new(max: u8) -> Self {
        Self {
            first: HashMap::default(),
            more: HashMap::default(),
            per_length: vec![0; usize::from(max) + 1],
            filter: vec![Vec::new(); usize::from(max) + 1],
            len: 0,
        }
    }

    fn may_hold(&self, length: u8, bucket: u16) -> bool {
        self.filter[usize::from(length)]
            .get(usize::from(bucket) / 64)
            .is_some_and(|word| word & (1 << (bucket % 64)) != 0)
    }

    fn origins(&self, key: &K) -> impl Iterator<Item = Origin> + '_ {
        self.first
            .get(key)
            .copied()
            .into_iter()
            .chain(self.more.get(key).into_iter().flatten().copied())
    }

    fn contains(&self, key: &K, origin: Origin) -> bool {
        self.origins(key).any(|o| o == origin)
    }

    /// Adds an origin; false when it was there.
    fn insert(&mut self, key: K, length: u8, bucket: u16, origin: Origin) -> bool {
        if self.contains(&key, origin) {
            return false;
        }
        let filter = &mut self.filter[usize::from(length)];
        if filter.is_empty() {
            *filter = vec![0; BUCKETS / 64];
        }
        filter[usize::from(bucket) / 64] |= 1 << (bucket % 64);
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(origin);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(origin);
            }
        }
        self.per_length[usize::from(length)] += 1;
        self.len += 1;
        true
    }

    /// Removes an origin; false when it was not there.
    fn remove(&mut self, key: K, length: u8, origin: Origin) -> bool {
        if self.first.get(&key) == Some(&origin) {
            // Another origin of the prefix takes the first place.
            let next = self.more.get_mut(&key).and_then(|more| more.pop());
            if self.more.get(&key).is_some_and(Vec::is_empty) {
                self.more.remove(&key);
            }
            match next {
                Some(next) => self.first.insert(key, next),
                None => self.first.remove(&key),
            };
        } else {
            let Some(more) = self.more.get_mut(&key) else {
                return false;
            };
            let Some(at) = more.iter().position(|o| *o == origin) else {
                return false;
            };
            more.swap_remove(at);
            if more.is_empty() {
                self.more.remove(&key);
            }
        }
        self.per_length[usize::from(length)] -= 1;
        self.len -= 1;
        true
    }

    /// The origins of the VRPs covering a route of `length`, with the
    /// length of each one's prefix.
    fn covering(
        &self,
        length: u8,
        key_at: impl Fn(u8) -> K,
        bucket_at: impl Fn(u8) -> u16,
    ) -> Vec<(u8, Origin)> {
        let mut found = Vec::new();
        for at in (0..=length).filter(|at| self.may_hold(*at, bucket_at(*at))) {
            found.extend(self.origins(&key_at(at)).map(|origin| (at, origin)));
        }
        found
    }

    /// The state of a route of `length` with `origin`, its key at each
    /// length given by `key_at`.
    fn validate(
        &self,
        length: u8,
        origin: Option<u32>,
        key_at: impl Fn(u8) -> K,
        bucket_at: impl Fn(u8) -> u16,
    ) -> Validity {
        let mut covered = false;
        for at in 0..=length {
            if self.per_length[usize::from(at)] == 0 || !self.may_hold(at, bucket_at(at)) {
                continue;
            }
            for vrp in self.origins(&key_at(at)) {
                covered = true;
                if origin.is_some_and(|asn| asn == vrp.asn && asn != 0) && length <= vrp.max_length
                {
                    return Validity::Valid;
                }
            }
        }
        if covered {
            Validity::Invalid
        } else {
            Validity::NotFound
        }
    }
}

type V4Key = u64;
type V6Key = [u8; 17];

fn v4_key(address: u32, length: u8) -> V4Key {
    let masked = if length == 0 {
        0
    } else {
        address & (u32::MAX << (32 - u32::from(length)))
    };
    (u64::from(masked) << 8) | u64::from(length)
}

fn v6_key(address: u128, length: u8) -> V6Key {
    let masked = if length == 0 {
        0
    } else {
        address & (u128::MAX << (128 - u32::from(length)))
    };
    let mut key = [0; 17];
    key[..16].copy_from_slice(&masked.to_be_bytes());
    key[16] = length;
    key
}

/// Every VRP of the cache in use, for validation.
#[derive(Debug, Clone)]
pub struct VrpTable {
    v4: FamilyTable<V4Key>,
    v6: FamilyTable<V6Key>,
}

impl Default for VrpTable {
    fn default() -> Self {
        Self::new()
    }
}

impl VrpTable {
    pub fn new() -> Self {
        Self {
            v4: FamilyTable::new(32),
            v6: FamilyTable::new(128),
        }
    }

    /// How many IPv4 and IPv6 VRPs there are.
    pub fn counts(&self) -> (usize, usize) {
        (self.v4.len, self.v6.len)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.len == 0 && self.v6.len == 0
    }

    /// Adds a VRP; false when it was there already.
    pub fn insert(&mut self, vrp: Vrp) -> bool {
        let origin = Origin {
            asn: vrp.asn,
            max_length: vrp.max_length,
        };
        match vrp.prefix {
            IpNet::V4(net) => {
                let (address, length) = (net.addr().to_bits(), net.prefix_len());
                let bucket = v4_bucket(address, length);
                self.v4
                    .insert(v4_key(address, length), length, bucket, origin)
            }
            IpNet::V6(net) => {
                let (address, length) = (net.addr().to_bits(), net.prefix_len());
                let bucket = v6_bucket(address, length);
                self.v6
                    .insert(v6_key(address, length), length, bucket, origin)
            }
        }
    }

    /// Removes a VRP; false when it was not there.
    pub fn remove(&mut self, vrp: &Vrp) -> bool {
        let origin = Origin {
            asn: vrp.asn,
            max_length: vrp.max_length,
        };
        match vrp.prefix {
            IpNet::V4(net) => {
                let length = net.prefix_len();
                self.v4
                    .remove(v4_key(net.addr().to_bits(), length), length, origin)
            }
            IpNet::V6(net) => {
                let length = net.prefix_len();
                self.v6
                    .remove(v6_key(net.addr().to_bits(), length), length, origin)
            }
        }
    }

    pub fn contains(&self, vrp: &Vrp) -> bool {
        let origin = Origin {
            asn: vrp.asn,
            max_length: vrp.max_length,
        };
        match vrp.prefix {
            IpNet::V4(net) => self
                .v4
                .contains(&v4_key(net.addr().to_bits(), net.prefix_len()), origin),
            IpNet::V6(net) => self
                .v6
                .contains(&v6_key(net.addr().to_bits(), net.prefix_len()), origin),
        }
    }

    /// Every VRP, in no order.
    pub fn iter(&self) -> impl Iterator<Item = Vrp> + '_ {
        fn expand<'a, K: Copy + std::hash::Hash + Eq>(
            table: &'a FamilyTable<K>,
            prefix: impl Fn(&K) -> IpNet + Copy + 'a,
        ) -> impl Iterator<Item = Vrp> + 'a {
            table.first.keys().flat_map(move |key| {
                table.origins(key).map(move |origin| Vrp {
                    prefix: prefix(key),
                    max_length: origin.max_length,
                    asn: origin.asn,
                })
            })
        }
        let v4 = expand(&self.v4, |key| {
            let address = Ipv4Addr::from_bits((key >> 8) as u32);
            IpNet::V4(Ipv4Net::new(address, (key & 0xff) as u8).unwrap_or_default())
        });
        let v6 = expand(&self.v6, |key| {
            let mut octets = [0; 16];
            octets.copy_from_slice(&key[..16]);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), key[16]).unwrap_or_default())
        });
        v4.chain(v6)
    }

    /// The origin validation state of a route to `prefix` whose origin AS
    /// is `origin` (`None`: the AS_PATH ends in an AS_SET, RFC 6811 2,
    /// which no VRP matches).
    pub fn validate(&self, prefix: &IpNet, origin: Option<u32>) -> Validity {
        match prefix {
            IpNet::V4(net) => {
                let address = net.addr().to_bits();
                self.v4.validate(
                    net.prefix_len(),
                    origin,
                    |at| v4_key(address, at),
                    |at| v4_bucket(address, at),
                )
            }
            IpNet::V6(net) => {
                let address = net.addr().to_bits();
                self.v6.validate(
                    net.prefix_len(),
                    origin,
                    |at| v6_key(address, at),
                    |at| v6_bucket(address, at),
                )
            }
        }
    }

    /// The VRPs that cover `prefix` (those that decide its state), shortest
    /// prefix first.
    pub fn covering(&self, prefix: &IpNet) -> Vec<Vrp> {
        let found = match prefix {
            IpNet::V4(net) => {
                let address = net.addr().to_bits();
                self.v4.covering(
                    net.prefix_len(),
                    |at| v4_key(address, at),
                    |at| v4_bucket(address, at),
                )
            }
            IpNet::V6(net) => {
                let address = net.addr().to_bits();
                self.v6.covering(
                    net.prefix_len(),
                    |at| v6_key(address, at),
                    |at| v6_bucket(address, at),
                )
            }
        };
        found
            .into_iter()
            .map(|(length, origin)| Vrp {
                // `length` is at most the prefix's own.
                prefix: IpNet::new(prefix.addr(), length)
                    .map(|net| net.trunc())
                    .unwrap_or(*prefix),
                max_length: origin.max_length,
                asn: origin.asn,
            })
            .collect()
    }

    /// Applies what a cache sent. The answer: the prefixes of the VRPs
    /// that came or went (each once), and how many announcements were
    /// there already or withdrawals of VRPs that were not (a cache's
    /// mistakes, RFC 8210 errors 6 and 7, which change nothing here).
    pub fn apply(&mut self, update: VrpUpdate) -> (Vec<IpNet>, usize) {
        let mut changed = Vec::new();
        let mut mistakes = 0;
        match update {
            VrpUpdate::Reset(vrps) => {
                let mut fresh = VrpTable::new();
                for vrp in vrps {
                    fresh.insert(vrp);
                }
                changed.extend(
                    self.iter()
                        .filter(|vrp| !fresh.contains(vrp))
                        .map(|vrp| vrp.prefix),
                );
                changed.extend(
                    fresh
                        .iter()
                        .filter(|vrp| !self.contains(vrp))
                        .map(|vrp| vrp.prefix),
                );
                *self = fresh;
            }
            VrpUpdate::Delta(deltas) => {
                for (vrp, announce) in deltas {
                    let done = if announce {
                        self.insert(vrp)
                    } else {
                        self.remove(&vrp)
                    };
                    if done {
                        changed.push(vrp.prefix);
                    } else {
                        mistakes += 1;
                    }
                }
            }
        }
        changed.sort_unstable();
        changed.dedup();
        (changed, mistakes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrp(prefix: &str, max_length: u8, asn: u32) -> Vrp {
        Vrp {
            prefix: prefix.parse().unwrap(),
            max_length,
            asn,
        }
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn rfc_6811_states() {
        let mut table = VrpTable::new();
        table.insert(vrp("10.0.0.0/8", 16, 65001));
        table.insert(vrp("10.1.0.0/16", 24, 65002));
        table.insert(vrp("2001:db8::/32", 48, 65003));
        // Matching origin within the max length.
        assert_eq!(
            table.validate(&net("10.0.0.0/8"), Some(65001)),
            Validity::Valid
        );
        assert_eq!(
            table.validate(&net("10.9.0.0/16"), Some(65001)),
            Validity::Valid
        );
        // Too specific for the max length.
        assert_eq!(
            table.validate(&net("10.9.1.0/24"), Some(65001)),
            Validity::Invalid
        );
        // A second covering VRP makes it valid for its AS.
        assert_eq!(
            table.validate(&net("10.1.2.0/24"), Some(65002)),
            Validity::Valid
        );
        assert_eq!(
            table.validate(&net("10.1.0.0/16"), Some(65001)),
            Validity::Valid
        );
        // Wrong origin; no origin (AS_SET).
        assert_eq!(
            table.validate(&net("10.2.0.0/16"), Some(64999)),
            Validity::Invalid
        );
        assert_eq!(table.validate(&net("10.2.0.0/16"), None), Validity::Invalid);
        // Not covered: a less specific one, another space.
        assert_eq!(
            table.validate(&net("10.0.0.0/7"), Some(65001)),
            Validity::NotFound
        );
        assert_eq!(
            table.validate(&net("192.0.2.0/24"), Some(65001)),
            Validity::NotFound
        );
        assert_eq!(
            table.validate(&net("2001:db8:1::/48"), Some(65003)),
            Validity::Valid
        );
        assert_eq!(
            table.validate(&net("2001:db8:1::/49"), Some(65003)),
            Validity::Invalid
        );
        assert_eq!(
            table.validate(&net("2001:db9::/32"), Some(65003)),
            Validity::NotFound
        );
        assert_eq!(
            table.covering(&net("10.1.2.0/24")),
            vec![vrp("10.0.0.0/8", 16, 65001), vrp("10.1.0.0/16", 24, 65002)]
        );
        assert!(table.covering(&net("192.0.2.0/24")).is_empty());
        // The families are apart: ::/0 covers no IPv4 route.
        table.insert(vrp("::/0", 0, 65009));
        assert_eq!(
            table.validate(&net("192.0.2.0/24"), Some(65001)),
            Validity::NotFound
        );
    }

    #[test]
    fn the_filter_never_hides_a_covering_vrp() {
        // VRPs at every length of a few addresses, routes at every length
        // of nearby ones: what the filter lets through is what a lookup at
        // every length finds.
        let mut table = VrpTable::new();
        let bases = [0x0a00_0000_u32, 0x0a01_8000, 0xc000_0200, 0xffff_ffff];
        for (index, base) in bases.iter().enumerate() {
            for length in (0..=32).step_by(3 + index) {
                let prefix = IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from_bits(*base), length)
                        .unwrap()
                        .trunc(),
                );
                table.insert(Vrp {
                    prefix,
                    max_length: 32,
                    asn: 64500 + length as u32,
                });
            }
        }
        for base in bases
            .iter()
            .flat_map(|base| [*base, base ^ 1, base ^ 0x100, base ^ 0x1_0000])
        {
            for length in 0..=32 {
                let route = IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from_bits(base), length)
                        .unwrap()
                        .trunc(),
                );
                let expected: Vec<Vrp> = table
                    .iter()
                    .filter(|vrp| vrp.prefix.contains(&route))
                    .collect();
                let mut found = table.covering(&route);
                found.sort();
                let mut expected = expected;
                expected.sort();
                assert_eq!(found, expected, "{route}");
            }
        }
        let mut table = VrpTable::new();
        let v6: IpNet = "2001:db8:1234::/48".parse().unwrap();
        table.insert(Vrp {
            prefix: v6,
            max_length: 64,
            asn: 1,
        });
        table.insert(vrp("2001:db8::/32", 32, 2));
        table.insert(vrp("::/0", 0, 3));
        assert_eq!(table.covering(&net("2001:db8:1234:5600::/56")).len(), 3);
        assert_eq!(table.covering(&net("2001:db8:1235::/48")).len(), 2);
        assert_eq!(
            table.validate(&net("2001:db8:1234:5600::/56"), Some(1)),
            Validity::Valid
        );
    }

    #[test]
    fn as0_roas_authorise_no_one() {
        let mut table = VrpTable::new();
        table.insert(vrp("192.0.2.0/24", 32, 0));
        assert_eq!(
            table.validate(&net("192.0.2.0/24"), Some(0)),
            Validity::Invalid
        );
        assert_eq!(
            table.validate(&net("192.0.2.128/25"), Some(65001)),
            Validity::Invalid
        );
        // Beside another ROA, AS 0 changes nothing for its AS.
        table.insert(vrp("192.0.2.0/24", 24, 65001));
        assert_eq!(
            table.validate(&net("192.0.2.0/24"), Some(65001)),
            Validity::Valid
        );
    }

    #[test]
    fn several_origins_of_a_prefix_come_and_go() {
        let mut table = VrpTable::new();
        let a = vrp("10.0.0.0/8", 8, 1);
        let b = vrp("10.0.0.0/8", 8, 2);
        let c = vrp("10.0.0.0/8", 24, 2);
        assert!(table.insert(a));
        assert!(table.insert(b));
        assert!(table.insert(c));
        assert!(!table.insert(b));
        assert_eq!(table.counts(), (3, 0));
        assert!(table.remove(&a));
        assert!(!table.remove(&a));
        assert!(table.contains(&b) && table.contains(&c));
        assert_eq!(
            table.validate(&net("10.0.0.0/8"), Some(1)),
            Validity::Invalid
        );
        assert_eq!(
            table.validate(&net("10.1.0.0/16"), Some(2)),
            Validity::Valid
        );
        assert!(table.remove(&c));
        assert!(table.remove(&b));
        assert!(table.is_empty());
        assert_eq!(
            table.validate(&net("10.0.0.0/8"), Some(1)),
            Validity::NotFound
        );
        let mut all: Vec<Vrp> = table.iter().collect();
        assert!(all.is_empty());
        table.insert(a);
        table.insert(vrp("2001:db8::/32", 32, 5));
        all = table.iter().collect();
        all.sort();
        assert_eq!(all, vec![a, vrp("2001:db8::/32", 32, 5)]);
    }

    #[test]
    fn apply_reports_changed_prefixes_and_mistakes() {
        let mut table = VrpTable::new();
        let a = vrp("10.0.0.0/8", 8, 1);
        let b = vrp("192.0.2.0/24", 24, 2);
        let c = vrp("2001:db8::/32", 32, 3);
        let (changed, mistakes) = table.apply(VrpUpdate::Reset(vec![a, b]));
        assert_eq!(changed, vec![a.prefix, b.prefix]);
        assert_eq!(mistakes, 0);
        // A reset to what is there changes nothing.
        assert_eq!(table.apply(VrpUpdate::Reset(vec![b, a])).0, vec![]);
        // A reset: b stays, a goes, c comes.
        let (changed, _) = table.apply(VrpUpdate::Reset(vec![b, c]));
        assert_eq!(changed, vec![a.prefix, c.prefix]);
        let (changed, mistakes) = table.apply(VrpUpdate::Delta(vec![
            (a, true),
            (b, false),
            (b, false),
            (c, true),
        ]));
        assert_eq!(changed, vec![a.prefix, b.prefix]);
        assert_eq!(mistakes, 2);
        assert_eq!(table.counts(), (1, 1));
        assert_eq!(table.apply(VrpUpdate::Reset(Vec::new())).0.len(), 2);
        assert!(table.is_empty());
    }
}
