//! A table shaped like a full feed from a transit provider, from a seed.
//!
//! Written from the published shapes of the public IPv4 table (route
//! collectors' summaries), not copied from any dump:
//!
//! - about 75,000 origin ASes per million prefixes, with a heavy tail of
//!   prefixes per origin (a Lomax law): about a third of the origins at
//!   one prefix, the median at two or three, one in a hundred at a few
//!   hundred, and the largest near 0.9 % of the table;
//! - each origin reached over a home path of one to eight ASes behind the
//!   feeding peer (most three or four), some of its prefixes over another
//!   upstream; the origin prepends itself on some routes, a transit on a
//!   few;
//! - 0 to 24 communities per route, most 1 to 6, mostly the tags the
//!   first transit puts on at the point the route came in (so that the
//!   same lists recur across origins, as they do), then a few of the
//!   origin's or the path's own; large communities (RFC 8092) on about
//!   5 % of the routes; MED on about 40 %;
//! - prefixes of one origin share an attribute set unless they differ in
//!   any of that: the first of an origin has a set of its own, each later
//!   one a new variant with probability [`NEW_VARIANT`], else the set of
//!   an earlier prefix of the same origin (the more prefixes a set has,
//!   the likelier it is chosen). That comes to a distinct set for about
//!   every 3.5th prefix.
//!
//! Prefixes are those of [`crate::prefixes::generate`] (the same lengths
//! as the uniform table); IPv6 ones (a mixed table, `--ipv6 PERCENT`)
//! those of [`crate::prefixes::generate6`], after the IPv4 ones, from
//! origins of their own (about 150,000 per million IPv6 prefixes, as in
//! the public IPv6 table) under the same laws. ASNs are private 4-octet ones (4200000000 and
//! up) that none of the labs use; community values use private 2-octet
//! ASNs.

use std::collections::HashMap;

use super::{
    AS_SEQUENCE, Attribute, COMMUNITIES, LARGE_COMMUNITIES, MULTI_EXIT_DISC, OPTIONAL, ORIGIN,
    PathAttributes, Segment, TRANSITIVE, Table,
};
use crate::prefixes::{IpPrefix, Random};

/// Origin ASes per million prefixes.
const ORIGINS_PER_MILLION: usize = 75_000;
/// Origin ASes per million IPv6 prefixes (about 33,000 for 220,000).
const IPV6_ORIGINS_PER_MILLION: usize = 150_000;
/// The tail index of the law of prefixes per origin ([`quotas`]).
const TAIL: f64 = 1.1;
/// The largest origin's share of the table, at most.
const LARGEST: f64 = 0.008;
/// Chance that an origin's next prefix gets a variant of its own.
const NEW_VARIANT: f64 = 0.22;
/// Transit ASes per origin AS.
const TRANSIT_PER_ORIGIN: usize = 8;
/// The feeding peer's neighbors: the first AS of most paths.
const FIRST_HOPS: usize = 40;
/// Points of presence per first hop, each with its own ingress tags.
const LOCATIONS: u32 = 64;
/// Share (in 1/100) of each count of unique ASes in a home path.
const PATH_LENGTHS: &[(usize, u32)] = &[
    (1, 3),
    (2, 17),
    (3, 36),
    (4, 26),
    (5, 11),
    (6, 4),
    (7, 2),
    (8, 1),
];
/// Share (in 1/1000) of each count of communities on a route.
const COMMUNITY_COUNTS: &[(usize, u32)] = &[
    (0, 110),
    (1, 90),
    (2, 140),
    (3, 150),
    (4, 140),
    (5, 100),
    (6, 80),
    (7, 25),
    (8, 25),
    (9, 25),
    (10, 25),
    (11, 25),
    (12, 25),
    (13, 4),
    (14, 4),
    (15, 4),
    (16, 4),
    (17, 3),
    (18, 3),
    (19, 3),
    (20, 3),
    (21, 3),
    (22, 3),
    (23, 3),
    (24, 3),
];
/// Common MED values; the rest are IGP costs drawn at random.
const ROUND_MEDS: &[u32] = &[0, 1, 10, 20, 50, 100, 200, 500, 1000];

/// The real-shaped table of `ipv4` and `ipv6` prefixes for `seed`: each
/// family has origins of its own, over the same transits.
pub fn generate(seed: u64, ipv4: usize, ipv6: usize) -> Table {
    let mut random = Random::new(seed ^ 0x7265_616c);
    let origins =
        |count: usize, per_million: usize| (count * per_million / 1_000_000).clamp(1, count.max(1));
    let world = World::new(origins(ipv4, ORIGINS_PER_MILLION));
    let families: [(Vec<IpPrefix>, usize, u32); 2] = [
        (
            crate::prefixes::generate(seed, ipv4)
                .into_iter()
                .map(IpPrefix::V4)
                .collect(),
            origins(ipv4, ORIGINS_PER_MILLION),
            ORIGIN_BASE,
        ),
        (
            crate::prefixes::generate6(seed, ipv6)
                .into_iter()
                .map(IpPrefix::V6)
                .collect(),
            origins(ipv6, IPV6_ORIGINS_PER_MILLION),
            ORIGIN_BASE_6,
        ),
    ];
    let mut table = Table::default();
    let mut interned: HashMap<PathAttributes, u32> = HashMap::new();
    for (prefixes, origins, base) in families {
        if prefixes.is_empty() {
            continue;
        }
        let quotas = quotas(&mut random, origins, prefixes.len());
        table.prefixes.extend(prefixes);
        for (origin, &quota) in quotas.iter().enumerate() {
            let origin_as = base + origin as u32;
            let home = world.path(&mut random, origin_as);
            let origin_code = if random.chance(0.10) { 2 } else { 0 };
            let first = table.set_of.len();
            for nth in 0..quota {
                let set = if nth == 0 || random.chance(NEW_VARIANT) {
                    let attributes = world.variant(&mut random, origin_as, &home, origin_code);
                    let next = interned.len() as u32;
                    *interned.entry(attributes).or_insert_with_key(|attributes| {
                        table.sets.push(attributes.clone());
                        next
                    })
                } else {
                    // An earlier prefix's set: sets with more prefixes are
                    // chosen more often.
                    table.set_of[first + random.below(nth as u32) as usize]
                };
                table.set_of.push(set);
            }
        }
    }
    table
}

/// Prefixes per origin, adding up to `count`: quantiles of a Lomax law
/// (`P(n or more) = (n + 1)^-TAIL / 2^-TAIL`, about a third of the origins
/// at one prefix), capped at [`LARGEST`] of the table; what that leaves
/// short goes to the origins of more than one, in proportion.
fn quotas(random: &mut Random, origins: usize, count: usize) -> Vec<usize> {
    let cap = (count as f64 * LARGEST).max(1.0);
    let law: Vec<f64> = (0..origins)
        .map(|rank| {
            let above = 1.0 - (rank as f64 + 0.5) / origins as f64;
            (2.0 * above.powf(-1.0 / TAIL) - 1.0)
                .floor()
                .clamp(1.0, cap)
        })
        .collect();
    let ones = law.iter().filter(|&&n| n == 1.0).count();
    let many: f64 = law.iter().filter(|&&n| n > 1.0).sum();
    let factor = if many > 0.0 {
        (count - ones) as f64 / many
    } else {
        1.0
    };
    let mut quotas: Vec<usize> = law
        .iter()
        .map(|&n| {
            if n > 1.0 {
                ((n * factor) as usize).max(1)
            } else {
                1
            }
        })
        .collect();
    let mut sum: usize = quotas.iter().sum();
    let sampler = Sampler::new(&law);
    while sum < count {
        quotas[sampler.draw(random)] += 1;
        sum += 1;
    }
    // Tiny tables only: more than `count`; the largest give some back.
    while sum > count {
        for quota in quotas.iter_mut().rev().filter(|quota| **quota > 1) {
            if sum == count {
                break;
            }
            *quota -= 1;
            sum -= 1;
        }
    }
    quotas
}

/// Draws indices in proportion to their weights.
#[derive(Debug)]
struct Sampler {
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(weights: &[f64]) -> Self {
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|weight| {
                sum += weight;
                sum
            })
            .collect();
        Self { cumulative }
    }

    fn draw(&self, random: &mut Random) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let at = random.unit() * total;
        self.cumulative
            .partition_point(|&sum| sum <= at)
            .min(self.cumulative.len() - 1)
    }
}

/// The ASes around the feeding peer: transits by popularity, the first
/// hops among the most popular, and each origin's ASN.
#[derive(Debug)]
struct World {
    transits: Sampler,
}

const TRANSIT_BASE: u32 = 4_200_000_000;
const ORIGIN_BASE: u32 = 4_201_000_000;
const ORIGIN_BASE_6: u32 = 4_250_000_000;

impl World {
    fn new(origins: usize) -> Self {
        let transit_count = (origins / TRANSIT_PER_ORIGIN).max(2 * FIRST_HOPS);
        let weights: Vec<f64> = (1..=transit_count).map(|rank| 1.0 / rank as f64).collect();
        Self {
            transits: Sampler::new(&weights),
        }
    }

    /// A path to `origin` of one to eight unique ASes, ending in it: a
    /// first hop, then transits further down the ranks, then the origin.
    fn path(&self, random: &mut Random, origin_as: u32) -> Vec<u32> {
        let len = random.pick(PATH_LENGTHS);
        let mut path: Vec<u32> = Vec::with_capacity(len + 3);
        if len > 1 {
            path.push(TRANSIT_BASE + random.below(FIRST_HOPS as u32));
        }
        while path.len() + 1 < len {
            let transit = TRANSIT_BASE + self.transits.draw(random) as u32;
            if !path.contains(&transit) {
                path.push(transit);
            }
        }
        path.push(origin_as);
        path
    }

    /// One attribute set for `origin`: its home path or another, maybe
    /// prepended, with communities, maybe MED and large communities.
    fn variant(
        &self,
        random: &mut Random,
        origin_as: u32,
        home: &[u32],
        origin_code: u8,
    ) -> PathAttributes {
        let mut path = if random.chance(0.25) {
            self.path(random, origin_as)
        } else {
            home.to_vec()
        };
        if random.chance(0.08) {
            for _ in 0..=random.below(3) {
                path.push(origin_as);
            }
        } else if path.len() > 1 && random.chance(0.02) {
            let first = path[0];
            for _ in 0..=random.below(2) {
                path.insert(0, first);
            }
        }

        let mut others = vec![Attribute {
            flags: TRANSITIVE,
            code: ORIGIN,
            value: vec![origin_code],
        }];
        if random.chance(0.40) {
            let med = if random.chance(0.5) {
                ROUND_MEDS[random.below(ROUND_MEDS.len() as u32) as usize]
            } else {
                random.below(100_000)
            };
            others.push(Attribute {
                flags: OPTIONAL,
                code: MULTI_EXIT_DISC,
                value: med.to_be_bytes().to_vec(),
            });
        }
        let communities = self.communities(random, &path);
        if !communities.is_empty() {
            others.push(Attribute {
                flags: OPTIONAL | TRANSITIVE,
                code: COMMUNITIES,
                value: communities.iter().flat_map(|c| c.to_be_bytes()).collect(),
            });
        }
        if random.chance(0.05) {
            let mut value = Vec::new();
            for _ in 0..=random.below(3) {
                let global = path[random.below(path.len() as u32) as usize];
                let function = 1 + random.below(10);
                let parameter = random.below(1_000);
                for part in [global, function, parameter] {
                    value.extend_from_slice(&part.to_be_bytes());
                }
            }
            others.push(Attribute {
                flags: OPTIONAL | TRANSITIVE,
                code: LARGE_COMMUNITIES,
                value,
            });
        }
        PathAttributes {
            as_path: vec![Segment {
                kind: AS_SEQUENCE,
                asns: path,
            }],
            others,
        }
    }

    /// 0 to 24 communities: the first AS's tags of the point the route
    /// came in, then values of the path's own ASes; sorted, distinct.
    fn communities(&self, random: &mut Random, path: &[u32]) -> Vec<u32> {
        let count = random.pick(COMMUNITY_COUNTS);
        let mut communities = Vec::with_capacity(count);
        let first = path[0];
        let location = random.below(LOCATIONS);
        let tags = [
            1_000 + location,      // the point of presence
            2_000 + location / 8,  // its region
            3_000 + location / 32, // its continent
            100 + (first % 3),     // customer, peer or upstream
        ];
        for tag in tags.iter().take(count) {
            communities.push(community(first, *tag));
        }
        while communities.len() < count {
            let asn = path[random.below(path.len() as u32) as usize];
            communities.push(community(asn, random.below(4_000)));
        }
        communities.sort_unstable();
        communities.dedup();
        communities
    }
}

/// `asn`'s community `value`, its AS mapped into the private 2-octet range
/// (64512-65511; never 65535, the well-known communities).
fn community(asn: u32, value: u32) -> u32 {
    (64_512 + asn % 1_000) << 16 | value
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::table::Kind;

    fn attribute_count(attributes: &PathAttributes, code: u8, size: usize) -> usize {
        attributes
            .attribute(code)
            .map_or(0, |attribute| attribute.value.len() / size)
    }

    #[test]
    fn the_same_seed_gives_the_same_table() {
        assert_eq!(generate(5, 5_000, 1_000), generate(5, 5_000, 1_000));
        assert_ne!(generate(5, 5_000, 0), generate(6, 5_000, 0));
    }

    /// The shape the module promises, on 200,000 prefixes.
    #[test]
    fn the_table_has_the_shape_of_a_full_feed() {
        let count = 200_000;
        let table = Table::generate(Kind::Real, 1, count, 0);
        assert_eq!(table.len(), count);
        assert_eq!(table.sets_in_use(), table.sets.len());
        let share = |n: usize| n as f64 / count as f64;

        let sets = share(table.sets.len());
        assert!((0.25..=0.34).contains(&sets), "{sets} sets per prefix");

        let mut per_origin: HashMap<u32, usize> = HashMap::new();
        for (_, attributes) in table.routes() {
            *per_origin
                .entry(attributes.origin_as().unwrap())
                .or_default() += 1;
        }
        let origins = per_origin.len() as f64 / count as f64 * 1e6;
        assert!(
            (70_000.0..=80_000.0).contains(&origins),
            "{origins} origins per 1M"
        );
        let mut counts: Vec<usize> = per_origin.into_values().collect();
        counts.sort_unstable();
        let ones = counts.iter().filter(|&&n| n == 1).count() as f64 / counts.len() as f64;
        assert!(
            (0.3..=0.5).contains(&ones),
            "{ones} of origins with one prefix"
        );
        let largest = share(counts[counts.len() - 1]);
        assert!(
            (0.003..=0.02).contains(&largest),
            "largest origin {largest}"
        );

        let (mut med, mut large, mut prepended, mut no_communities, mut few) = (0, 0, 0, 0, 0);
        for (_, attributes) in table.routes() {
            let path = &attributes.as_path[0].asns;
            let unique: HashSet<_> = path.iter().collect();
            assert!((1..=8).contains(&unique.len()), "{path:?}");
            prepended += usize::from(unique.len() < path.len());
            med += usize::from(attributes.attribute(MULTI_EXIT_DISC).is_some());
            large += usize::from(attributes.attribute(LARGE_COMMUNITIES).is_some());
            let communities = attribute_count(attributes, COMMUNITIES, 4);
            assert!(communities <= 24);
            no_communities += usize::from(communities == 0);
            few += usize::from((1..=6).contains(&communities));
        }
        assert!((0.35..=0.45).contains(&share(med)), "MED on {}", share(med));
        assert!(
            (0.02..=0.08).contains(&share(large)),
            "large on {}",
            share(large)
        );
        assert!(
            (0.04..=0.15).contains(&share(prepended)),
            "prepends {}",
            share(prepended)
        );
        assert!(share(no_communities) < 0.2, "{}", share(no_communities));
        assert!(share(few) > 0.6, "1-6 communities on {}", share(few));
    }

    #[test]
    fn a_tiny_table_still_has_an_origin() {
        let table = generate(1, 1, 0);
        assert_eq!((table.len(), table.sets.len()), (1, 1));
        assert_eq!(generate(1, 0, 0).len(), 0);
        let table = generate(1, 0, 1);
        assert_eq!((table.ipv6(), table.sets.len()), (1, 1));
    }

    /// IPv6 prefixes come after the IPv4 ones, from origins of their own
    /// (about 150,000 per million), with the same kinds of attributes.
    #[test]
    fn a_mixed_table_has_its_ipv6_fifth_from_origins_of_its_own() {
        let table = Table::generate(Kind::Real, 1, 50_000, 10_000);
        assert_eq!((table.len(), table.ipv6()), (50_000, 10_000));
        assert!(
            table.prefixes[..40_000]
                .iter()
                .all(|p| matches!(p, IpPrefix::V4(_)))
        );
        let mut origins = (HashSet::new(), HashSet::new());
        for (prefix, attributes) in table.routes() {
            let origin = attributes.origin_as().unwrap();
            match prefix {
                IpPrefix::V4(_) => origins.0.insert(origin),
                IpPrefix::V6(_) => origins.1.insert(origin),
            };
        }
        assert_eq!(origins.0.len(), 3_000);
        assert_eq!(origins.1.len(), 1_500);
        assert!(origins.0.is_disjoint(&origins.1));
        // The IPv4 part is the IPv4-only table's.
        let alone = generate(1, 40_000, 0);
        assert_eq!(table.prefixes[..40_000], alone.prefixes[..]);
    }
}
