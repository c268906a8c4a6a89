//! Deterministic sets of IPv4 and IPv6 prefixes shaped like a full
//! Internet table.
//!
//! A seed goes in, a list of distinct prefixes comes out, always the same
//! for the same seed and count. Lengths follow a mix close to the public
//! table's (IPv4: mostly /24, a good share of /16 to /23, a few shorter;
//! IPv6: mostly /48, then /32, /44, /40, /29), and addresses avoid
//! everything a router would refuse or that the labs use themselves
//! (private, loopback, link-local, multicast, the benchmark ranges
//! 198.18.0.0/15 where the labs' underlays live; for IPv6 all but global
//! unicast 2000::/3, and the documentation and transition ranges in it).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 prefix, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub address: u32,
    pub len: u8,
}

impl Prefix {
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

/// An IPv6 prefix, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix6 {
    pub address: u128,
    pub len: u8,
}

impl std::fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.address), self.len)
    }
}

/// A prefix of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    V4(Prefix),
    V6(Prefix6),
}

impl IpPrefix {
    pub fn len(self) -> u8 {
        match self {
            IpPrefix::V4(prefix) => prefix.len,
            IpPrefix::V6(prefix) => prefix.len,
        }
    }

    /// The NLRI encoding: the length, then the address's significant
    /// octets.
    pub fn nlri(self) -> impl Iterator<Item = u8> {
        let (len, octets) = match self {
            IpPrefix::V4(prefix) => (prefix.len, {
                let mut octets = [0u8; 16];
                octets[..4].copy_from_slice(&prefix.address.to_be_bytes());
                octets
            }),
            IpPrefix::V6(prefix) => (prefix.len, prefix.address.to_be_bytes()),
        };
        let significant = usize::from(len).div_ceil(8);
        std::iter::once(len).chain(octets.into_iter().take(significant))
    }

    /// Whether a prefix is public unicast space and clear of the labs' own.
    pub fn usable(self) -> bool {
        match self {
            IpPrefix::V4(prefix) => usable(prefix),
            IpPrefix::V6(prefix) => usable6(prefix),
        }
    }
}

impl std::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpPrefix::V4(prefix) => prefix.fmt(f),
            IpPrefix::V6(prefix) => prefix.fmt(f),
        }
    }
}

/// Share (in 1/1000) of each prefix length, from the shape of the public
/// IPv4 table: about 60 % /24, 35 % /16 to /23, 1 % shorter.
const LENGTH_MIX: &[(u8, u32)] = &[
    (24, 597),
    (23, 95),
    (22, 120),
    (21, 50),
    (20, 50),
    (19, 30),
    (18, 18),
    (17, 12),
    (16, 18),
    (15, 3),
    (14, 3),
    (13, 2),
    (12, 1),
    (11, 1),
];

/// Share (in 1/1000) of each IPv6 prefix length, from the shape of the
/// public IPv6 table: near half /48, then /32, /44, /40, /29.
const LENGTH_MIX_6: &[(u8, u32)] = &[
    (48, 460),
    (32, 120),
    (44, 80),
    (40, 70),
    (29, 50),
    (36, 30),
    (46, 30),
    (47, 20),
    (45, 15),
    (42, 15),
    (33, 10),
    (34, 10),
    (38, 10),
    (39, 10),
    (41, 10),
    (43, 10),
    (30, 10),
    (31, 10),
    (28, 10),
    (35, 5),
    (37, 5),
    (24, 3),
    (20, 2),
    (19, 2),
    (16, 3),
];

/// splitmix64: small, fast and good enough to spread addresses.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(bound)) >> 32) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value of `shares` (value, weight), drawn by weight.
    pub fn pick<T: Copy>(&mut self, shares: &[(T, u32)]) -> T {
        let total: u32 = shares.iter().map(|(_, share)| share).sum();
        let mut at = self.below(total);
        for &(value, share) in shares {
            if at < share {
                return value;
            }
            at -= share;
        }
        shares[shares.len() - 1].0
    }
}

/// `count` distinct prefixes for `seed`.
pub fn generate(seed: u64, count: usize) -> Vec<Prefix> {
    let mut random = Random::new(seed);
    let mut seen = HashSet::with_capacity(count);
    let mut prefixes = Vec::with_capacity(count);
    while prefixes.len() < count {
        let len = random.pick(LENGTH_MIX);
        let mask = u32::MAX << (32 - u32::from(len));
        let address = (random.next_u64() as u32) & mask;
        let prefix = Prefix { address, len };
        if usable(prefix) && seen.insert(prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

/// `count` distinct IPv6 prefixes for `seed`, in global unicast space.
pub fn generate6(seed: u64, count: usize) -> Vec<Prefix6> {
    let mut random = Random::new(seed ^ 0x6970_7636);
    let mut seen = HashSet::with_capacity(count);
    let mut prefixes = Vec::with_capacity(count);
    while prefixes.len() < count {
        let len = random.pick(LENGTH_MIX_6);
        let bits = u128::from(random.next_u64()) << 64 | u128::from(random.next_u64());
        // 2000::/3, the bits past the length cleared.
        let address = (bits >> 3 | 1 << 125) & (u128::MAX << (128 - u32::from(len)));
        let prefix = Prefix6 { address, len };
        if usable6(prefix) && seen.insert(prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

/// Whether an IPv6 prefix is global unicast, clear of the ranges set
/// apart in it.
pub fn usable6(prefix: Prefix6) -> bool {
    const AVOID: &[(u128, u8)] = &[
        (0x2001_0000 << 96, 23), // IETF protocol assignments, Teredo
        (0x2001_0db8 << 96, 32), // documentation
        (0x2002_0000 << 96, 16), // 6to4
        (0x3fff_0000 << 96, 20), // documentation
    ];
    let within = |base: u128, len: u8| {
        let shorter = u32::from(len.min(prefix.len));
        let common = u128::MAX.checked_shl(128 - shorter).unwrap_or(0);
        (base & common) == (prefix.address & common)
    };
    prefix.len >= 3
        && within(0x2000 << 112, 3)
        && !AVOID.iter().any(|&(base, len)| within(base, len))
}

/// Whether a prefix is public unicast space and clear of the labs' own.
pub fn usable(prefix: Prefix) -> bool {
    const AVOID: &[(u32, u8)] = &[
        (0x0000_0000, 8),  // 0/8
        (0x0a00_0000, 8),  // 10/8: tunnels
        (0x6440_0000, 10), // 100.64/10
        (0x7f00_0000, 8),  // loopback
        (0xa9fe_0000, 16), // link-local
        (0xac10_0000, 12), // 172.16/12
        (0xc000_0200, 24), // TEST-NET-1
        (0xc0a8_0000, 16), // 192.168/16: LANs
        (0xc612_0000, 15), // 198.18/15: underlays
        (0xe000_0000, 3),  // multicast and reserved
    ];
    !AVOID.iter().any(|&(base, len)| {
        // They overlap when they agree on the bits of the shorter one.
        let shorter = u32::from(len.min(prefix.len));
        let common = u32::MAX.checked_shl(32 - shorter).unwrap_or(0);
        (base & common) == (prefix.address & common)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_prefixes_are_distinct_global_unicast_and_mostly_slash_48() {
        let prefixes = generate6(1, 20_000);
        assert_eq!(prefixes, generate6(1, 20_000));
        let distinct: HashSet<_> = prefixes.iter().collect();
        assert_eq!(distinct.len(), prefixes.len());
        for prefix in &prefixes {
            let host_bits = u128::MAX.checked_shr(u32::from(prefix.len)).unwrap_or(0);
            assert_eq!(prefix.address & host_bits, 0, "{prefix}");
            assert_eq!(prefix.address >> 125, 1, "{prefix}");
            assert!(!prefix.to_string().starts_with("2001:db8:"), "{prefix}");
        }
        let slash48 = prefixes.iter().filter(|p| p.len == 48).count();
        assert!((8_500..10_000).contains(&slash48), "{slash48} /48s");
        let nlri: Vec<u8> = IpPrefix::V6(Prefix6 {
            address: 0x2a00_1450 << 96,
            len: 29,
        })
        .nlri()
        .collect();
        assert_eq!(nlri, [29, 0x2a, 0, 0x14, 0x50]);
    }

    #[test]
    fn the_same_seed_gives_the_same_set() {
        assert_eq!(generate(7, 1000), generate(7, 1000));
        assert_ne!(generate(7, 1000), generate(8, 1000));
    }

    #[test]
    fn prefixes_are_distinct_clean_and_mostly_slash_24() {
        let prefixes = generate(1, 20_000);
        let distinct: HashSet<_> = prefixes.iter().collect();
        assert_eq!(distinct.len(), prefixes.len());
        for prefix in &prefixes {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix.len)).unwrap_or(0);
            assert_eq!(prefix.address & host_bits, 0, "{prefix}");
            let first_octet = prefix.address >> 24;
            assert!(
                ![0, 10, 127].contains(&first_octet) && first_octet < 224,
                "{prefix}"
            );
        }
        let slash24 = prefixes.iter().filter(|p| p.len == 24).count();
        assert!((11_000..13_000).contains(&slash24), "{slash24} /24s");
        assert!(prefixes.iter().any(|p| p.len < 16));
    }
}
