//! What a pair of sites shares, from the sites' places in the mesh file
//! (0-based indexes): the pair's subnet of each pool, the ports each end
//! listens on, the tunnel's name at each end.
//!
//! Pair `(i, j)`, `i < j`, is the `j*(j-1)/2 + i`-th: the pairs of site
//! `j` come after those of every site before it, so appending a site
//! renumbers nothing. The lower site takes the subnet's first address.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::Site;

/// How many pairs (tunnels) `sites` sites make.
pub(super) fn pairs(sites: usize) -> u128 {
    let sites = sites as u128;
    sites * sites.saturating_sub(1) / 2
}

/// The place of the pair of sites `a` and `b` (`a != b`) in the pools.
pub(super) fn pair_index(a: usize, b: usize) -> u128 {
    let (low, high) = (a.min(b) as u128, a.max(b) as u128);
    high * high.saturating_sub(1) / 2 + low
}

/// `/31`s in `pool`.
pub(super) fn capacity4(pool: Ipv4Net) -> u128 {
    1 << (31 - pool.prefix_len())
}

/// `/127`s in `pool`.
pub(super) fn capacity6(pool: Ipv6Net) -> u128 {
    1 << (127 - pool.prefix_len())
}

/// The longest IPv4 prefix length that holds `pairs` `/31`s.
pub(super) fn shortest_pool4(pairs: u128) -> u8 {
    let mut length = 31;
    while length > 0 && (1u128 << (31 - length)) < pairs {
        length -= 1;
    }
    length
}

/// Whether the highest port, `base + sites`, is a port.
pub(super) fn ports_fit(base: u16, sites: usize) -> bool {
    u32::from(base) + u32::try_from(sites).unwrap_or(u32::MAX) <= u32::from(u16::MAX)
}

/// The port a site's tunnel to site `other` listens on: the same at
/// every site, so a site's ports say which site each tunnel leads to.
pub(super) fn listen_port(base: u16, other: usize) -> u16 {
    let port = u32::from(base) + u32::try_from(other).unwrap_or(u32::MAX) + 1;
    u16::try_from(port).expect("the mesh's ports were checked to fit when it was read")
}

/// Site `own`'s address (with its `/31`) on its tunnel to site `other`.
pub(super) fn address4(pool: Ipv4Net, own: usize, other: usize) -> Ipv4Net {
    let offset = 2 * pair_index(own, other) + u128::from(own > other);
    let base = u128::from(u32::from(pool.network()));
    let address = u32::try_from(base + offset).expect("the pool was checked to hold every pair");
    Ipv4Net::new(Ipv4Addr::from(address), 31).expect("31 is a valid IPv4 prefix length")
}

/// Site `own`'s address (with its `/127`) on its tunnel to site `other`.
pub(super) fn address6(pool: Ipv6Net, own: usize, other: usize) -> Ipv6Net {
    let offset = 2 * pair_index(own, other) + u128::from(own > other);
    let address = u128::from(pool.network()) + offset;
    Ipv6Net::new(Ipv6Addr::from(address), 127).expect("127 is a valid IPv6 prefix length")
}

/// The name of `own`'s tunnel to `other`: `<own>-<other>` by short names.
/// Both ends are in it, so no two tunnels of a mesh share a name (sites
/// run on one machine in labs, where wireguard-go's sockets share a
/// directory), and a name read anywhere says which link it is.
pub(super) fn tunnel_name(own: &Site, other: &Site) -> String {
    format!("{}-{}", own.short_name, other.short_name)
}
