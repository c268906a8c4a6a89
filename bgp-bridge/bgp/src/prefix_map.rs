//! A map keyed by prefix, with compact keys and little else per entry.
//!
//! Keys: IPv4 and IPv6 prefixes in tables of their own, each key the
//! address's octets then the length (5 octets for IPv4, 17 for IPv6,
//! alignment 1), where an `IpNet` takes 18 for either. A full table holds
//! a key per prefix in each of its places, so the key's size is paid a
//! million times over.
//!
//! Entries: most of them in a sorted array (keys and values in two arrays,
//! nothing between them), the ones added since the array was last rebuilt
//! in a B-tree beside it. A B-tree filled in random order, as a routing
//! table is, keeps its nodes about two thirds full: with a 24-byte value a
//! full table's slots took 48.6 bytes per prefix in a `BTreeMap`, where
//! the array takes 29. The B-tree is merged into the array once it holds
//! an eighth of it (at least [`RECENT_MIN`] entries), so that each entry
//! is moved a few times in all while a table fills; a removed entry leaves
//! a hole in the array (the value's `None`; the values here all have a
//! niche, so it costs nothing) until a quarter of the array is holes, then
//! the array closes up. Lookups search the array, then the B-tree.
//!
//! Order is `IpNet`'s: IPv4 before IPv6, then by address, then by length
//! (the octets compare as the address does, big-endian).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The B-tree of recent entries is merged into the array when it holds
/// this many, or an eighth of the array when that is more.
pub const RECENT_MIN: usize = 1024;

/// Every this many keys of the array, one is copied to a short array of
/// fences, searched first: a lookup then reads a few cache lines of a
/// million keys, not twenty.
const BLOCK: usize = 64;

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

/// A `BTreeMap<IpNet, V>` with compact keys and entries.
#[derive(Debug, Clone)]
pub struct PrefixMap<V> {
    v4: Table<V4, V>,
    v6: Table<V6, V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PrefixMap<V> {
    pub const fn new() -> Self {
        Self {
            v4: Table::new(),
            v6: Table::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.v4 = Table::new();
        self.v6 = Table::new();
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
            IpNet::V4(prefix) => self.v4.get_or_insert_with(v4_key(&prefix), make),
            IpNet::V6(prefix) => self.v6.get_or_insert_with(v6_key(&prefix), make),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let v4 = self.v4.iter().map(|(key, value)| (from_v4(&key), value));
        let v6 = self.v6.iter().map(|(key, value)| (from_v6(&key), value));
        v4.chain(v6)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpNet, &mut V)> + '_ {
        let v4 = self
            .v4
            .iter_mut()
            .map(|(key, value)| (from_v4(&key), value));
        let v6 = self
            .v6
            .iter_mut()
            .map(|(key, value)| (from_v6(&key), value));
        v4.chain(v6)
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(prefix, _)| prefix)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        let v4 = self.v4.iter().map(|(_, value)| value);
        v4.chain(self.v6.iter().map(|(_, value)| value))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        let v4 = self.v4.iter_mut().map(|(_, value)| value);
        v4.chain(self.v6.iter_mut().map(|(_, value)| value))
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
                        .map(|(key, value)| (from_v4(&key), value)),
                )
            }
            IpNet::V6(net) => {
                let last = Ipv6Net::new(net.broadcast(), 128).unwrap_or_default();
                Box::new(
                    self.v6
                        .range(v6_key(&net)..=v6_key(&last))
                        .map(|(key, value)| (from_v6(&key), value)),
                )
            }
        }
    }

    /// Keeps the entries for which `keep` holds; `keep` sees them in order.
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

/// The entries of one family: a sorted array with holes, and the recent
/// entries in a B-tree. A key is in one of them at most (in the array
/// when it is there, hole or not).
#[derive(Debug, Clone)]
struct Table<K, V> {
    keys: Vec<K>,
    /// `keys[0]`, `keys[BLOCK]`, `keys[2 * BLOCK]`...
    fences: Vec<K>,
    /// `values[i]` is `keys[i]`'s; `None`: a hole.
    values: Vec<Option<V>>,
    holes: usize,
    recent: BTreeMap<K, V>,
}

impl<K: Ord + Copy, V> Table<K, V> {
    const fn new() -> Self {
        Self {
            keys: Vec::new(),
            fences: Vec::new(),
            values: Vec::new(),
            holes: 0,
            recent: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len() - self.holes + self.recent.len()
    }

    /// Where `key` is in the array, or would be.
    fn search(&self, key: &K) -> Result<usize, usize> {
        let block = self.fences.partition_point(|fence| fence <= key);
        if block == 0 {
            return Err(0);
        }
        let start = (block - 1) * BLOCK;
        let end = self.keys.len().min(start + BLOCK);
        match self.keys[start..end].binary_search(key) {
            Ok(index) => Ok(start + index),
            Err(index) => Err(start + index),
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        match self.search(key) {
            Ok(index) => self.values[index].as_ref(),
            Err(_) => self.recent.get(key),
        }
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.search(key) {
            Ok(index) => self.values[index].as_mut(),
            Err(_) => self.recent.get_mut(key),
        }
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.make_room();
        match self.search(&key) {
            Ok(index) => {
                let old = self.values[index].replace(value);
                if old.is_none() {
                    self.holes -= 1;
                }
                old
            }
            Err(_) => self.recent.insert(key, value),
        }
    }

    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.make_room();
        match self.search(&key) {
            Ok(index) => {
                let value = &mut self.values[index];
                if value.is_none() {
                    self.holes -= 1;
                }
                value.get_or_insert_with(make)
            }
            Err(_) => self.recent.entry(key).or_insert_with(make),
        }
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        match self.search(key) {
            Ok(index) => {
                let old = self.values[index].take();
                if old.is_some() {
                    self.holes += 1;
                    self.close_up_if_holey();
                }
                old
            }
            Err(_) => self.recent.remove(key),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (K, &V)> + '_ {
        let array = self.keys.iter().zip(&self.values);
        let array = array.filter_map(|(key, value)| Some((*key, value.as_ref()?)));
        merge(array, self.recent.iter().map(|(key, value)| (*key, value)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut V)> + '_ {
        let array = self.keys.iter().zip(&mut self.values);
        let array = array.filter_map(|(key, value)| Some((*key, value.as_mut()?)));
        merge(
            array,
            self.recent.iter_mut().map(|(key, value)| (*key, value)),
        )
    }

    fn range(&self, range: RangeInclusive<K>) -> impl Iterator<Item = (K, &V)> + '_ {
        let start = self.keys.partition_point(|key| key < range.start());
        let end = self.keys.partition_point(|key| key <= range.end());
        let array = self.keys[start..end].iter().zip(&self.values[start..end]);
        let array = array.filter_map(|(key, value)| Some((*key, value.as_ref()?)));
        let recent = self.recent.range(range).map(|(key, value)| (*key, value));
        merge(array, recent)
    }

    fn into_keys(self) -> impl Iterator<Item = K> {
        let array = self.keys.into_iter().zip(self.values);
        let array = array.filter_map(|(key, value)| value.map(|_| (key, ())));
        let recent = self.recent.into_keys().map(|key| (key, ()));
        merge(array, recent).map(|(key, ())| key)
    }

    fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut dropped = Vec::new();
        let mut recent = self.recent.iter_mut().peekable();
        let mut index = 0;
        loop {
            let from_array = match (self.keys.get(index), recent.peek()) {
                (Some(key), Some((next, _))) => key < *next,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if from_array {
                if let Some(value) = self.values[index].as_mut()
                    && !keep(&self.keys[index], value)
                {
                    self.values[index] = None;
                    self.holes += 1;
                }
                index += 1;
            } else {
                let Some((key, value)) = recent.next() else {
                    break;
                };
                if !keep(key, value) {
                    dropped.push(*key);
                }
            }
        }
        for key in &dropped {
            self.recent.remove(key);
        }
        self.close_up_if_holey();
    }

    /// Merges the recent entries into the array when they are many.
    fn make_room(&mut self) {
        if self.recent.len() >= RECENT_MIN.max(self.keys.len() / 8) {
            self.rebuild();
        }
    }

    fn close_up_if_holey(&mut self) {
        if self.holes > 0 && self.holes * 4 >= self.keys.len() {
            self.rebuild();
        }
    }

    /// One array again: the holes closed up, then the recent entries
    /// merged in from the back, in place.
    fn rebuild(&mut self) {
        if self.holes > 0 {
            // Invariant: `values[kept..index]` are all `None`.
            let mut kept = 0;
            for index in 0..self.keys.len() {
                if self.values[index].is_some() {
                    self.keys[kept] = self.keys[index];
                    self.values.swap(kept, index);
                    kept += 1;
                }
            }
            self.keys.truncate(kept);
            self.values.truncate(kept);
            self.holes = 0;
        }
        let recent = std::mem::take(&mut self.recent);
        let mut index = self.keys.len();
        let mut to = index + recent.len();
        self.keys.reserve_exact(recent.len());
        self.values.reserve_exact(recent.len());
        self.keys.extend(recent.keys().copied());
        self.values.resize_with(to, || None);
        // Invariant: `values[index..to]` are all `None`.
        for (key, value) in recent.into_iter().rev() {
            while index > 0 && self.keys[index - 1] > key {
                index -= 1;
                to -= 1;
                self.keys[to] = self.keys[index];
                self.values.swap(to, index);
            }
            to -= 1;
            self.keys[to] = key;
            self.values[to] = Some(value);
        }
        if self.keys.capacity() > self.keys.len() + self.keys.len() / 4 {
            self.keys.shrink_to_fit();
            self.values.shrink_to_fit();
        }
        self.fences.clear();
        self.fences.extend(self.keys.iter().step_by(BLOCK).copied());
        self.fences.shrink_to_fit();
    }
}

/// Two iterators of entries sorted by distinct keys, as one.
fn merge<K: Ord, X>(
    a: impl Iterator<Item = (K, X)>,
    b: impl Iterator<Item = (K, X)>,
) -> impl Iterator<Item = (K, X)> {
    Merge {
        a: a.peekable(),
        b: b.peekable(),
    }
}

struct Merge<A: Iterator, B: Iterator> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<K: Ord, X, A: Iterator<Item = (K, X)>, B: Iterator<Item = (K, X)>> Iterator for Merge<A, B> {
    type Item = (K, X);

    fn next(&mut self) -> Option<(K, X)> {
        let from_a = match (self.a.peek(), self.b.peek()) {
            (Some((a, _)), Some((b, _))) => a < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_a { self.a.next() } else { self.b.next() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

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

    /// A small deterministic generator, so the test needs no crate.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Inserts, removals, lookups and retains past every threshold
    /// (merges into the array, holes, closing up) give what a `BTreeMap`
    /// gives, in the same order.
    #[test]
    fn behaves_as_a_btree_map_through_merges_and_holes() {
        let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut map = PrefixMap::new();
        let mut model = BTreeMap::new();
        let prefix = |random: &mut Xorshift| -> IpNet {
            let value = random.next();
            // Few enough distinct prefixes that they come back often.
            let bits = (value % 6000) as u32;
            if value & (1 << 40) == 0 {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(bits << 12), 20).unwrap())
            } else {
                let address = Ipv6Addr::from(u128::from(bits) << 80);
                IpNet::V6(Ipv6Net::new(address, 48).unwrap())
            }
        };
        for round in 0..60_000u64 {
            let key = prefix(&mut random);
            match random.next() % 10 {
                0..=3 => assert_eq!(map.insert(key, round), model.insert(key, round)),
                4..=5 => assert_eq!(map.remove(&key), model.remove(&key)),
                6 => {
                    *map.get_or_insert_with(key, || round) += 1;
                    *model.entry(key).or_insert(round) += 1;
                }
                7 => {
                    if let Some(value) = map.get_mut(&key) {
                        *value += 2;
                    }
                    if let Some(value) = model.get_mut(&key) {
                        *value += 2;
                    }
                }
                _ => assert_eq!(map.get(&key), model.get(&key)),
            }
            assert_eq!(map.len(), model.len());
            if round % 7919 == 0 {
                let cut = random.next() % 3;
                let mut seen = Vec::new();
                map.retain(|prefix, value| {
                    seen.push(prefix);
                    *value % 3 != cut
                });
                model.retain(|_, value| *value % 3 != cut);
                assert!(seen.is_sorted());
                let covering = prefix(&mut random).supernet().unwrap().supernet().unwrap();
                let within: Vec<_> = map.iter_within(&covering).map(|(p, v)| (p, *v)).collect();
                let expected: Vec<_> = model
                    .iter()
                    .filter(|(p, _)| covering.contains(*p))
                    .map(|(p, v)| (*p, *v))
                    .collect();
                assert_eq!(within, expected);
            }
            if round % 10_007 == 0 {
                let entries: Vec<_> = map.iter().map(|(p, v)| (p, *v)).collect();
                assert_eq!(
                    entries,
                    model.iter().map(|(p, v)| (*p, *v)).collect::<Vec<_>>()
                );
                for value in map.values_mut() {
                    *value += 1;
                }
                for value in model.values_mut() {
                    *value += 1;
                }
            }
        }
        assert!(map.v4.keys.len() > RECENT_MIN, "the array was used");
        let values: Vec<_> = map.values().copied().collect();
        assert_eq!(values, model.values().copied().collect::<Vec<_>>());
        let keys: Vec<_> = map.clone().into_keys().collect();
        assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
        let mut emptied = map;
        for key in keys {
            assert!(emptied.remove(&key).is_some());
        }
        assert!(emptied.is_empty());
        assert!(emptied.v4.keys.is_empty(), "a table of holes closes up");
    }
}
