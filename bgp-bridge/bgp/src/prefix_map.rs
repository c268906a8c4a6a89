//! A map keyed by prefix, with compact keys: IPv4 and IPv6 prefixes in
//! maps of their own, each key the address's octets then the length (5
//! octets for IPv4, 17 for IPv6, alignment 1), where an `IpNet` takes 18
//! for either. A full table holds a key per prefix in each of its places,
//! so the key's size is paid a million times over.
//!
//! Order is `IpNet`'s: IPv4 before IPv6, then by address, then by length
//! (the octets compare as the address does, big-endian).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

type V4 = [u8; 5];
type V6 = [u8; 17];

fn v4_key(prefix: &Ipv4Net) -> V4 {
    let [a, b, c, d] = prefix.addr().octets();
    [a, b, c, d, prefix.prefix_len()]
}

fn v6_key(prefix: &Ipv6Net) -> V6 {
    let mut key = [0; 17];
    key[..16].copy_from_slice(&prefix.addr().octets());
    key[16] = prefix.prefix_len();
    key
}

fn from_v4(key: &V4) -> IpNet {
    let address = Ipv4Addr::new(key[0], key[1], key[2], key[3]);
    // Keys are only made from valid prefixes.
    IpNet::V4(Ipv4Net::new(address, key[4]).unwrap_or_default())
}

fn from_v6(key: &V6) -> IpNet {
    let mut octets = [0; 16];
    octets.copy_from_slice(&key[..16]);
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), key[16]).unwrap_or_default())
}

/// A `BTreeMap<IpNet, V>` with compact keys.
#[derive(Debug, Clone)]
pub struct PrefixMap<V> {
    v4: BTreeMap<V4, V>,
    v6: BTreeMap<V6, V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PrefixMap<V> {
    pub const fn new() -> Self {
        Self {
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&V> {
        match prefix {
            IpNet::V4(prefix) => self.v4.get(&v4_key(prefix)),
            IpNet::V6(prefix) => self.v6.get(&v6_key(prefix)),
        }
    }

    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut V> {
        match prefix {
            IpNet::V4(prefix) => self.v4.get_mut(&v4_key(prefix)),
            IpNet::V6(prefix) => self.v6.get_mut(&v6_key(prefix)),
        }
    }

    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// Inserts, giving back the value that was there.
    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match prefix {
            IpNet::V4(prefix) => self.v4.insert(v4_key(&prefix), value),
            IpNet::V6(prefix) => self.v6.insert(v6_key(&prefix), value),
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        match prefix {
            IpNet::V4(prefix) => self.v4.remove(&v4_key(prefix)),
            IpNet::V6(prefix) => self.v6.remove(&v6_key(prefix)),
        }
    }

    /// The value for `prefix`, made by `make` if there is none.
    pub fn get_or_insert_with(&mut self, prefix: IpNet, make: impl FnOnce() -> V) -> &mut V {
        match prefix {
            IpNet::V4(prefix) => self.v4.entry(v4_key(&prefix)).or_insert_with(make),
            IpNet::V6(prefix) => self.v6.entry(v6_key(&prefix)).or_insert_with(make),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let v4 = self.v4.iter().map(|(key, value)| (from_v4(key), value));
        let v6 = self.v6.iter().map(|(key, value)| (from_v6(key), value));
        v4.chain(v6)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpNet, &mut V)> + '_ {
        let v4 = self.v4.iter_mut().map(|(key, value)| (from_v4(key), value));
        let v6 = self.v6.iter_mut().map(|(key, value)| (from_v6(key), value));
        v4.chain(v6)
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(prefix, _)| prefix)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.v4.values().chain(self.v6.values())
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.v4.values_mut().chain(self.v6.values_mut())
    }

    pub fn into_keys(self) -> impl Iterator<Item = IpNet> {
        let v4 = self.v4.into_keys().map(|key| from_v4(&key));
        let v6 = self.v6.into_keys().map(|key| from_v6(&key));
        v4.chain(v6)
    }

    /// The entries whose prefix is `covering` or inside it, in order: the
    /// keys from `covering`'s own to its last address's host prefix are a
    /// range (a shorter prefix at the same address sorts before it).
    pub fn iter_within(&self, covering: &IpNet) -> Box<dyn Iterator<Item = (IpNet, &V)> + '_> {
        match covering.trunc() {
            IpNet::V4(net) => {
                let last = Ipv4Net::new(net.broadcast(), 32).unwrap_or_default();
                Box::new(
                    self.v4
                        .range(v4_key(&net)..=v4_key(&last))
                        .map(|(key, value)| (from_v4(key), value)),
                )
            }
            IpNet::V6(net) => {
                let last = Ipv6Net::new(net.broadcast(), 128).unwrap_or_default();
                Box::new(
                    self.v6
                        .range(v6_key(&net)..=v6_key(&last))
                        .map(|(key, value)| (from_v6(key), value)),
                )
            }
        }
    }

    /// Keeps the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(IpNet, &mut V) -> bool) {
        self.v4.retain(|key, value| keep(from_v4(key), value));
        self.v6.retain(|key, value| keep(from_v6(key), value));
    }
}

impl<V> FromIterator<(IpNet, V)> for PrefixMap<V> {
    fn from_iter<I: IntoIterator<Item = (IpNet, V)>>(entries: I) -> Self {
        let mut map = Self::new();
        for (prefix, value) in entries {
            map.insert(prefix, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().expect("a prefix")
    }

    #[test]
    fn keeps_ipnet_order_and_gives_the_prefixes_back() {
        let prefixes = [
            "2001:db8::/32",
            "10.0.0.0/8",
            "10.0.0.0/16",
            "9.255.0.0/16",
            "::/0",
            "0.0.0.0/0",
            "2001:db8::/48",
            "fe80::/64",
        ]
        .map(net);
        let mut map = PrefixMap::new();
        for (index, prefix) in prefixes.iter().enumerate() {
            assert_eq!(map.insert(*prefix, index), None);
        }
        let mut sorted = prefixes.to_vec();
        sorted.sort();
        assert_eq!(map.keys().collect::<Vec<_>>(), sorted);
        assert_eq!(map.len(), prefixes.len());
        assert_eq!(map.get(&net("10.0.0.0/16")), Some(&2));
        assert_eq!(map.get(&net("10.0.0.0/24")), None);
        assert_eq!(map.insert(net("fe80::/64"), 70), Some(7));
        assert_eq!(map.remove(&net("::/0")), Some(4));
        assert!(!map.contains_key(&net("::/0")));
        *map.get_or_insert_with(net("192.0.2.0/24"), || 0) += 5;
        assert_eq!(map.get(&net("192.0.2.0/24")), Some(&5));
        map.retain(|prefix, _| prefix.addr().is_ipv4());
        assert_eq!(map.len(), 5);
        assert!(map.values().all(|value| *value != 70));
    }

    #[test]
    fn within_a_prefix() {
        let map: PrefixMap<()> = [
            "10.0.0.0/7",
            "10.0.0.0/8",
            "10.0.0.0/16",
            "10.255.255.255/32",
            "11.0.0.0/8",
            "9.0.0.0/8",
            "2001:db8::/32",
            "2001:db8:ffff::/48",
            "2001:db9::/32",
        ]
        .map(|text| (net(text), ()))
        .into_iter()
        .collect();
        let within = |covering: &str| {
            map.iter_within(&net(covering))
                .map(|(prefix, _)| prefix.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            within("10.0.0.0/8"),
            ["10.0.0.0/8", "10.0.0.0/16", "10.255.255.255/32"]
        );
        assert_eq!(within("0.0.0.0/0").len(), 6);
        assert_eq!(
            within("2001:db8::/32"),
            ["2001:db8::/32", "2001:db8:ffff::/48"]
        );
        assert!(within("192.0.2.0/24").is_empty());
    }
}
