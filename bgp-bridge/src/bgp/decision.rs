//! The BGP speaker's routing table: Adj-RIB-In per neighbor, the decision
//! process of RFC 4271 9.1 over them, and what each neighbor is sent. Pure:
//! no I/O, no clock.
//!
//! In: neighbors coming up (`neighbor_up`) and going away (`neighbor_down`,
//! or `mark_stale` when they do graceful restart, then `sweep_stale`),
//! their decoded UPDATEs (`apply`), the networks we originate
//! (`set_networks`), and nexthop reachability: every call that may change a
//! best path takes a `Resolver`, and `revalidate` re-asks it for every path
//! when the tunnels changed. Out: `BestChange`s, the new best path(s) of
//! each prefix whose choice changed (none: no route), for the bridge; and
//! per neighbor an `Export`, what to announce and withdraw, diffed against
//! what the neighbor was already sent (Adj-RIB-Out).
//!
//! A path takes part only when its nexthop resolves over a tunnel (the
//! resolver's answer, never a BGP route), the import policy took it, and
//! it does not loop (our AS in its AS_PATH, our identifier as its
//! ORIGINATOR_ID).
//! Among those, for each prefix (RFC 4271 9.1.2.2, in this order):
//! a path we originate; the highest LOCAL_PREF (100 when absent); the
//! shortest AS_PATH; the lowest ORIGIN; the lowest MED among paths from the
//! same neighboring AS (absent: 0); eBGP over iBGP; then the lowest BGP
//! identifier (ORIGINATOR_ID when present) and the lowest neighbor (by
//! address, then tunnel: two tunnels may each have a neighbor `fe80::2`).
//! IGP cost to the nexthop is not compared: every nexthop is a tunnel's far
//! end. With `max_paths` above 1, the paths left before the last two
//! tie-breaks are multipath, best first.
//!
//! Export, per neighbor: the best path of each prefix of a family the
//! session carries, not back to the neighbor it came from, never a route
//! marked NO_ADVERTISE, and with next-hop self (the receiver's nexthops
//! must resolve over its own tunnel, which ends here): our address of the
//! route's family, or for IPv4 over RFC 8950 and for IPv6 our global IPv6
//! address with our link-local one beside it (RFC 2545), or the
//! link-local one alone. To eBGP neighbors: our AS prepended, LOCAL_PREF,
//! ORIGINATOR_ID and CLUSTER_LIST removed, MED removed unless we originate
//! the route, nothing marked NO_EXPORT, and no route whose AS_PATH holds
//! the neighbor's AS (we filter rather than send what the neighbor would
//! drop). To iBGP neighbors: only routes we originate or learned over eBGP
//! (no route reflection), with LOCAL_PREF. The export policy comes last
//! (it sees the route as it would be sent) and may still deny or change
//! it.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::policy::{Community, Outcome, Policy, Set};
use super::types::{
    AsSegment, Asn, Attributes, DEFAULT_LOCAL_PREF, Family, Negotiated, NeighborId, Update,
};

/// Settings of the decision process, from `[bgp]` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub local_as: Asn,
    pub router_id: Ipv4Addr,
    /// Paths kept per prefix for ECMP; 1 (or 0) is a single best path.
    pub max_paths: usize,
}

/// Answers whether a nexthop resolves over a tunnel (never over a route the
/// speaker learned). A closure `Fn(IpAddr) -> bool` is one.
pub trait Resolver {
    fn resolves(&self, next_hop: IpAddr) -> bool;

    /// Whether a neighbor's path can be forwarded: its NEXT_HOP by
    /// default. The speaker says more: a link-local nexthop (alone or
    /// beside a global one, RFC 2545) resolves only on the tunnel of the
    /// session it came over, and IPv4 routes may have IPv6 nexthops (RFC
    /// 8950).
    fn resolves_path(&self, _from: NeighborId, attributes: &Attributes) -> bool {
        attributes
            .next_hop
            .is_some_and(|next_hop| self.resolves(next_hop))
    }
}

impl<F: Fn(IpAddr) -> bool> Resolver for F {
    fn resolves(&self, next_hop: IpAddr) -> bool {
        self(next_hop)
    }
}

/// Where a path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A network we originate (`networks = [...]`).
    Local,
    /// A neighbor (its address, and tunnel if link-local).
    Neighbor(NeighborId),
}

/// One path to a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub source: Source,
    /// As the import policy left them.
    pub attributes: Arc<Attributes>,
}

/// The new choice for a prefix: best path first, then the other multipaths;
/// empty when no path is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    pub prefix: IpNet,
    pub paths: Vec<Path>,
}

/// What to send one neighbor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    pub announced: Vec<(IpNet, Arc<Attributes>)>,
    pub withdrawn: Vec<IpNet>,
}

impl Export {
    pub fn is_empty(&self) -> bool {
        self.announced.is_empty() && self.withdrawn.is_empty()
    }
}

/// A neighbor whose session is established, as the table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub id: NeighborId,
    pub remote_as: Asn,
    /// Its BGP identifier (the decision's tie-break).
    pub router_id: Ipv4Addr,
    pub families: Vec<Family>,
    /// Our nexthops for the routes we send it (next-hop self), per family:
    /// an IPv4 address, a global IPv6 one and a link-local one (RFC 2545:
    /// sent beside the global, or alone when there is no global). An IPv6
    /// route goes with the IPv4 one (IPv4-mapped) when there is no IPv6.
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    pub next_hop_link_local: Option<Ipv6Addr>,
    /// IPv4 routes go with the IPv6 nexthops (RFC 8950, negotiated), and
    /// with the IPv4 one only when there is no IPv6 one. Otherwise an IPv4
    /// route needs the IPv4 nexthop, and without one is not sent.
    pub ipv4_over_ipv6: bool,
    pub import: Policy,
    pub export: Policy,
}

impl Neighbor {
    /// A neighbor from what its session negotiated, our address on the
    /// session as the nexthop of its family.
    pub fn new(
        id: NeighborId,
        local_address: IpAddr,
        session: &Negotiated,
        import: Policy,
        export: Policy,
    ) -> Self {
        let (next_hop_ipv4, next_hop_ipv6) = match local_address {
            IpAddr::V4(v4) => (Some(v4), None),
            IpAddr::V6(v6) => (None, Some(v6)),
        };
        Self {
            id,
            remote_as: session.remote_as,
            router_id: session.remote_id,
            families: session.families.clone(),
            next_hop_ipv4,
            next_hop_ipv6,
            next_hop_link_local: None,
            ipv4_over_ipv6: false,
            import,
            export,
        }
    }
}

/// A path as received, and what the import policy made of it.
#[derive(Debug, Clone)]
struct Received {
    attributes: Arc<Attributes>,
    /// `None`: denied by the import policy.
    accepted: Option<Arc<Attributes>>,
    /// Kept through a graceful restart, not yet announced again.
    stale: bool,
}

#[derive(Debug)]
struct NeighborState {
    settings: Neighbor,
    established: bool,
    adj_rib_in: BTreeMap<IpNet, Received>,
    adj_rib_out: BTreeMap<IpNet, Arc<Attributes>>,
}

impl NeighborState {
    fn ebgp(&self, local_as: Asn) -> bool {
        self.settings.remote_as != local_as
    }
}

/// Adj-RIB-In of every neighbor, the best paths (Loc-RIB), and what each
/// neighbor was sent (Adj-RIB-Out).
#[derive(Debug)]
pub struct LocRib {
    config: Config,
    neighbors: BTreeMap<NeighborId, NeighborState>,
    local: BTreeMap<IpNet, Arc<Attributes>>,
    best: BTreeMap<IpNet, Vec<Path>>,
}

/// A path in the running, with what the decision compares.
struct Candidate {
    path: Path,
    ebgp: bool,
    router_id: Ipv4Addr,
    neighbor: Option<NeighborId>,
}

impl LocRib {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            neighbors: BTreeMap::new(),
            local: BTreeMap::new(),
            best: BTreeMap::new(),
        }
    }

    /// The best path(s) of a prefix, best first.
    pub fn best(&self, prefix: &IpNet) -> &[Path] {
        self.best.get(prefix).map_or(&[], Vec::as_slice)
    }

    /// Every prefix with a path, and its best path(s).
    pub fn best_paths(&self) -> impl Iterator<Item = (&IpNet, &[Path])> {
        self.best
            .iter()
            .map(|(prefix, paths)| (prefix, paths.as_slice()))
    }

    /// The paths a neighbor announced, as received, and whether each is
    /// stale.
    pub fn adj_rib_in(
        &self,
        neighbor: NeighborId,
    ) -> impl Iterator<Item = (&IpNet, &Arc<Attributes>, bool)> {
        self.neighbors
            .get(&neighbor)
            .into_iter()
            .flat_map(|state| state.adj_rib_in.iter())
            .map(|(prefix, received)| (prefix, &received.attributes, received.stale))
    }

    /// How many paths a neighbor announced (stale ones included).
    pub fn received(&self, neighbor: NeighborId) -> usize {
        self.neighbors
            .get(&neighbor)
            .map_or(0, |state| state.adj_rib_in.len())
    }

    /// Whether a neighbor announced a path for `prefix`.
    pub fn has_received(&self, neighbor: NeighborId, prefix: &IpNet) -> bool {
        self.neighbors
            .get(&neighbor)
            .is_some_and(|state| state.adj_rib_in.contains_key(prefix))
    }

    /// How many routes a neighbor was sent and holds now.
    pub fn sent(&self, neighbor: NeighborId) -> usize {
        self.neighbors
            .get(&neighbor)
            .map_or(0, |state| state.adj_rib_out.len())
    }

    /// A neighbor's session is established: its settings are (re)set, paths
    /// kept through a graceful restart stay (stale until announced again),
    /// and the answer is the whole table to send it.
    pub fn neighbor_up(&mut self, neighbor: Neighbor) -> Export {
        let id = neighbor.id;
        let state = self.neighbors.entry(id).or_insert_with(|| NeighborState {
            settings: neighbor.clone(),
            established: false,
            adj_rib_in: BTreeMap::new(),
            adj_rib_out: BTreeMap::new(),
        });
        state.settings = neighbor;
        state.established = true;
        state.adj_rib_out.clear();
        self.export_all(id)
    }

    /// A neighbor's session is gone for good (no graceful restart): its
    /// paths leave.
    pub fn neighbor_down(
        &mut self,
        neighbor: NeighborId,
        resolver: &dyn Resolver,
    ) -> Vec<BestChange> {
        let Some(state) = self.neighbors.remove(&neighbor) else {
            return Vec::new();
        };
        let prefixes: Vec<IpNet> = state.adj_rib_in.into_keys().collect();
        self.recompute(prefixes, resolver)
    }

    /// A neighbor's session is gone and the neighbor restarts gracefully
    /// (RFC 4724): its paths stay, marked stale, until announced again or
    /// swept. Nothing is sent to it meanwhile.
    pub fn mark_stale(&mut self, neighbor: NeighborId) {
        if let Some(state) = self.neighbors.get_mut(&neighbor) {
            state.established = false;
            state.adj_rib_out.clear();
            for received in state.adj_rib_in.values_mut() {
                received.stale = true;
            }
        }
    }

    /// Drops a neighbor's paths of `families` that are still stale (its
    /// End-of-RIB came, or the restart time ran out).
    pub fn sweep_stale(
        &mut self,
        neighbor: NeighborId,
        families: &[Family],
        resolver: &dyn Resolver,
    ) -> Vec<BestChange> {
        let Some(state) = self.neighbors.get_mut(&neighbor) else {
            return Vec::new();
        };
        let mut swept = Vec::new();
        state.adj_rib_in.retain(|prefix, received| {
            let sweep = received.stale && families.contains(&Family::of(prefix));
            if sweep {
                swept.push(*prefix);
            }
            !sweep
        });
        if !state.established && state.adj_rib_in.is_empty() {
            self.neighbors.remove(&neighbor);
        }
        self.recompute(swept, resolver)
    }

    /// Applies a neighbor's UPDATE to its Adj-RIB-In: withdrawals, then
    /// announcements through the import policy; an End-of-RIB sweeps the
    /// family's stale paths. Ignored for a neighbor that is not up.
    pub fn apply(
        &mut self,
        neighbor: NeighborId,
        update: &Update,
        resolver: &dyn Resolver,
    ) -> Vec<BestChange> {
        let Some(state) = self
            .neighbors
            .get_mut(&neighbor)
            .filter(|state| state.established)
        else {
            return Vec::new();
        };
        let mut touched = Vec::with_capacity(update.withdrawn.len() + update.announced.len());
        for prefix in &update.withdrawn {
            if state.adj_rib_in.remove(prefix).is_some() {
                touched.push(*prefix);
            }
        }
        let mut imported = SetCache::default();
        for (prefix, attributes) in &update.announced {
            let accepted = match state.settings.import.judge(prefix, attributes) {
                Outcome::Deny => None,
                Outcome::Permit(set) => Some(imported.apply(set, attributes)),
            };
            state.adj_rib_in.insert(
                *prefix,
                Received {
                    attributes: Arc::clone(attributes),
                    accepted,
                    stale: false,
                },
            );
            touched.push(*prefix);
        }
        let mut changes = self.recompute(touched, resolver);
        if !update.end_of_rib.is_empty() {
            changes.extend(self.sweep_stale(neighbor, &update.end_of_rib, resolver));
        }
        changes
    }

    /// Replaces a neighbor's policies and applies them to what it already
    /// sent (no route refresh needed): the changes of best paths, and what
    /// to send the neighbor now.
    pub fn set_policies(
        &mut self,
        neighbor: NeighborId,
        import: Policy,
        export: Policy,
        resolver: &dyn Resolver,
    ) -> (Vec<BestChange>, Export) {
        let Some(state) = self.neighbors.get_mut(&neighbor) else {
            return (Vec::new(), Export::default());
        };
        let mut imported = SetCache::default();
        let mut touched = Vec::new();
        for (prefix, received) in &mut state.adj_rib_in {
            let accepted = match import.judge(prefix, &received.attributes) {
                Outcome::Deny => None,
                Outcome::Permit(set) => Some(imported.apply(set, &received.attributes)),
            };
            if accepted != received.accepted {
                received.accepted = accepted;
                touched.push(*prefix);
            }
        }
        state.settings.import = import;
        state.settings.export = export;
        let changes = self.recompute(touched, resolver);
        (changes, self.export_all(neighbor))
    }

    /// Sets the networks we originate (ORIGIN IGP, empty AS_PATH): those
    /// not in `networks` any more are withdrawn.
    pub fn set_networks(&mut self, networks: &[IpNet], resolver: &dyn Resolver) -> Vec<BestChange> {
        let wanted: BTreeSet<IpNet> = networks.iter().map(IpNet::trunc).collect();
        let mut touched: Vec<IpNet> = self
            .local
            .keys()
            .filter(|prefix| !wanted.contains(prefix))
            .copied()
            .collect();
        for prefix in &touched {
            self.local.remove(prefix);
        }
        let attributes = Arc::new(Attributes::default());
        for prefix in wanted {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.local.entry(prefix) {
                entry.insert(Arc::clone(&attributes));
                touched.push(prefix);
            }
        }
        self.recompute(touched, resolver)
    }

    /// Asks the resolver again about every path (the tunnels changed).
    pub fn revalidate(&mut self, resolver: &dyn Resolver) -> Vec<BestChange> {
        let mut prefixes: BTreeSet<IpNet> = self.best.keys().copied().collect();
        for state in self.neighbors.values() {
            prefixes.extend(state.adj_rib_in.keys().copied());
        }
        self.recompute(prefixes, resolver)
    }

    /// Runs the decision for each prefix; the prefixes whose choice changed.
    fn recompute(
        &mut self,
        prefixes: impl IntoIterator<Item = IpNet>,
        resolver: &dyn Resolver,
    ) -> Vec<BestChange> {
        // A prefix named twice is decided twice; the second time changes
        // nothing, so each appears in the answer once at most.
        let mut changes = Vec::new();
        for prefix in prefixes {
            let paths = self.decide(&prefix, resolver);
            match self.best.entry(prefix) {
                Entry::Occupied(entry) if entry.get() == &paths => continue,
                Entry::Occupied(entry) if paths.is_empty() => {
                    entry.remove();
                }
                Entry::Occupied(mut entry) => {
                    entry.insert(paths.clone());
                }
                Entry::Vacant(_) if paths.is_empty() => continue,
                Entry::Vacant(entry) => {
                    entry.insert(paths.clone());
                }
            }
            changes.push(BestChange { prefix, paths });
        }
        changes
    }

    /// The decision process for one prefix (see the module comment).
    fn decide(&self, prefix: &IpNet, resolver: &dyn Resolver) -> Vec<Path> {
        if let Some(attributes) = self.local.get(prefix) {
            return vec![Path {
                source: Source::Local,
                attributes: Arc::clone(attributes),
            }];
        }
        let mut candidates: Vec<Candidate> = self
            .neighbors
            .iter()
            .filter_map(|(id, state)| {
                let attributes = state.adj_rib_in.get(prefix)?.accepted.as_ref()?;
                // Our own AS in the path, or our identifier as originator:
                // a loop (RFC 4271 9.1.2, RFC 4456 8).
                if attributes.contains_as(self.config.local_as)
                    || attributes.originator_id == Some(self.config.router_id)
                {
                    return None;
                }
                if !resolver.resolves_path(*id, attributes) {
                    return None;
                }
                Some(Candidate {
                    path: Path {
                        source: Source::Neighbor(*id),
                        attributes: Arc::clone(attributes),
                    },
                    ebgp: state.ebgp(self.config.local_as),
                    router_id: attributes.originator_id.unwrap_or(state.settings.router_id),
                    neighbor: Some(*id),
                })
            })
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        keep_best(&mut candidates, |candidate| {
            candidate
                .path
                .attributes
                .local_pref
                .unwrap_or(DEFAULT_LOCAL_PREF)
        });
        keep_best(&mut candidates, |candidate| {
            std::cmp::Reverse(candidate.path.attributes.as_path_len())
        });
        keep_best(&mut candidates, |candidate| {
            std::cmp::Reverse(candidate.path.attributes.origin)
        });
        // MED compares only paths from the same neighboring AS: a path
        // goes when another from its AS has a lower MED.
        let beaten: Vec<bool> = candidates
            .iter()
            .map(|candidate| {
                let (as_, med) = med_of(candidate);
                candidates.iter().any(|other| {
                    let (other_as, other_med) = med_of(other);
                    other_as == as_ && other_med < med
                })
            })
            .collect();
        let mut beaten = beaten.into_iter();
        candidates.retain(|_| !beaten.next().unwrap_or(false));
        keep_best(&mut candidates, |candidate| candidate.ebgp);
        candidates.sort_by_key(|candidate| (candidate.router_id, candidate.neighbor));
        candidates.truncate(self.config.max_paths.max(1));
        candidates
            .into_iter()
            .map(|candidate| candidate.path)
            .collect()
    }

    /// A neighbor asked for its routes again (ROUTE-REFRESH, RFC 2918):
    /// everything it should have, announced again, and what it should no
    /// longer have (if anything), withdrawn.
    pub fn refresh(&mut self, neighbor: NeighborId) -> Export {
        let mut export = self.export_all(neighbor);
        if let Some(state) = self.neighbors.get(&neighbor) {
            export.announced = state
                .adj_rib_out
                .iter()
                .map(|(prefix, attributes)| (*prefix, Arc::clone(attributes)))
                .collect();
        }
        export
    }

    /// What to send every established neighbor after `changes`, diffed
    /// against what each was sent; neighbors with nothing to send are left
    /// out.
    pub fn export(&mut self, changes: &[BestChange]) -> BTreeMap<NeighborId, Export> {
        // One change per prefix (see `recompute`).
        let prefixes = changes.iter().map(|change| change.prefix);
        let ids: Vec<NeighborId> = self
            .neighbors
            .iter()
            .filter(|(_, state)| state.established)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let export = self.export_prefixes(id, prefixes.clone());
                (!export.is_empty()).then_some((id, export))
            })
            .collect()
    }

    /// Everything a neighbor should have, diffed against what it was sent.
    fn export_all(&mut self, neighbor: NeighborId) -> Export {
        let mut prefixes: BTreeSet<IpNet> = self.best.keys().copied().collect();
        if let Some(state) = self.neighbors.get(&neighbor) {
            prefixes.extend(state.adj_rib_out.keys().copied());
        }
        self.export_prefixes(neighbor, prefixes)
    }

    fn export_prefixes(
        &mut self,
        neighbor: NeighborId,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Export {
        let mut export = Export::default();
        let Some(state) = self
            .neighbors
            .get(&neighbor)
            .filter(|state| state.established)
        else {
            return export;
        };
        let mut cache = ExportCache::default();
        let mut sent = Vec::new();
        for prefix in prefixes {
            let wanted = self.advertisement(state, &prefix, &mut cache);
            let had = state.adj_rib_out.get(&prefix);
            match (had, wanted) {
                (Some(had), Some(wanted)) if *had == wanted => {}
                (_, Some(wanted)) => {
                    export.announced.push((prefix, Arc::clone(&wanted)));
                    sent.push((prefix, Some(wanted)));
                }
                (Some(_), None) => {
                    export.withdrawn.push(prefix);
                    sent.push((prefix, None));
                }
                (None, None) => {}
            }
        }
        if let Some(state) = self.neighbors.get_mut(&neighbor) {
            for (prefix, attributes) in sent {
                match attributes {
                    Some(attributes) => state.adj_rib_out.insert(prefix, attributes),
                    None => state.adj_rib_out.remove(&prefix),
                };
            }
        }
        export
    }

    /// The attributes `prefix` goes to `to` with, if it goes at all (the
    /// export rules of the module comment).
    fn advertisement(
        &self,
        to: &NeighborState,
        prefix: &IpNet,
        cache: &mut ExportCache,
    ) -> Option<Arc<Attributes>> {
        let path = self.best.get(prefix)?.first()?;
        let family = Family::of(prefix);
        if !to.settings.families.contains(&family) {
            return None;
        }
        let local_as = self.config.local_as;
        let to_ebgp = to.ebgp(local_as);
        let from_ebgp = match path.source {
            Source::Local => false,
            Source::Neighbor(from) if from == to.settings.id => return None,
            Source::Neighbor(from) => self.neighbors.get(&from)?.ebgp(local_as),
        };
        if !to_ebgp && path.source != Source::Local && !from_ebgp {
            return None;
        }
        let attributes = &path.attributes;
        let marked = |community: Community| attributes.communities.contains(&community.0);
        if marked(Community::NO_ADVERTISE) {
            return None;
        }
        if to_ebgp
            && (marked(Community::NO_EXPORT)
                || marked(Community::NO_EXPORT_SUBCONFED)
                || attributes.contains_as(to.settings.remote_as))
        {
            return None;
        }
        let (next_hop, link_local_next_hop) = our_next_hop(&to.settings, family)?;
        let outgoing = cache.outgoing(attributes, next_hop, || {
            let mut out = Attributes::clone(attributes);
            out.next_hop = Some(next_hop);
            out.link_local_next_hop = link_local_next_hop;
            if to_ebgp {
                prepend(&mut out.as_path, local_as);
                out.local_pref = None;
                out.originator_id = None;
                out.cluster_list.clear();
                if path.source != Source::Local {
                    out.med = None;
                }
            } else {
                out.local_pref = Some(attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
            }
            Arc::new(out)
        });
        match to.settings.export.judge(prefix, &outgoing) {
            Outcome::Deny => None,
            Outcome::Permit(set) => Some(cache.set.apply(set, &outgoing)),
        }
    }
}

/// Our nexthop for a family's routes to a neighbor (next-hop self), with
/// the link-local one to send beside it, if any.
fn our_next_hop(to: &Neighbor, family: Family) -> Option<(IpAddr, Option<Ipv6Addr>)> {
    let ipv6 = match (to.next_hop_ipv6, to.next_hop_link_local) {
        (Some(global), link_local) => Some((IpAddr::V6(global), link_local)),
        (None, Some(link_local)) => Some((IpAddr::V6(link_local), None)),
        (None, None) => None,
    };
    let ipv4 = to.next_hop_ipv4.map(|v4| (IpAddr::V4(v4), None));
    match family {
        Family::Ipv4Unicast if to.ipv4_over_ipv6 => ipv6.or(ipv4),
        Family::Ipv4Unicast => ipv4,
        Family::Ipv6Unicast => ipv6.or(ipv4),
    }
}

/// Keeps the candidates with the greatest key.
fn keep_best<K: Ord>(candidates: &mut Vec<Candidate>, key: impl Fn(&Candidate) -> K) {
    if let Some(best) = candidates.iter().map(&key).max() {
        candidates.retain(|candidate| key(candidate) == best);
    }
}

/// The neighboring AS and MED a path is compared by (RFC 4271 9.1.2.2 c:
/// a missing MED is the lowest).
fn med_of(candidate: &Candidate) -> (Option<Asn>, u32) {
    let attributes = &candidate.path.attributes;
    (attributes.first_as(), attributes.med.unwrap_or(0))
}

/// Puts our AS in front of a path (into its leading sequence when it has
/// room, RFC 4271 5.1.2).
fn prepend(as_path: &mut Vec<AsSegment>, asn: Asn) {
    match as_path.first_mut() {
        Some(AsSegment::Sequence(asns)) if asns.len() < 255 => asns.insert(0, asn),
        _ => as_path.insert(0, AsSegment::Sequence(vec![asn])),
    }
}

/// A cached result beside the input it came from (which keeps the input's
/// address from being reused while the cache lives).
type Cached = (Arc<Attributes>, Arc<Attributes>);

/// Applies policy sets once per distinct (attributes, set), so that routes
/// which shared attributes still share them after the policy.
#[derive(Default)]
struct SetCache {
    applied: HashMap<(*const Attributes, *const Set), Cached>,
}

impl SetCache {
    fn apply(&mut self, set: Option<&Set>, attributes: &Arc<Attributes>) -> Arc<Attributes> {
        let Some(set) = set.filter(|set| !set.is_empty()) else {
            return Arc::clone(attributes);
        };
        let key = (Arc::as_ptr(attributes), std::ptr::from_ref(set));
        let (_, applied) = self
            .applied
            .entry(key)
            .or_insert_with(|| (Arc::clone(attributes), set.apply(attributes)));
        Arc::clone(applied)
    }
}

/// The same, for the attributes built for one neighbor in one export.
#[derive(Default)]
struct ExportCache {
    outgoing: HashMap<(*const Attributes, IpAddr), Cached>,
    set: SetCache,
}

impl ExportCache {
    fn outgoing(
        &mut self,
        attributes: &Arc<Attributes>,
        next_hop: IpAddr,
        build: impl FnOnce() -> Arc<Attributes>,
    ) -> Arc<Attributes> {
        let (_, outgoing) = self
            .outgoing
            .entry((Arc::as_ptr(attributes), next_hop))
            .or_insert_with(|| (Arc::clone(attributes), build()));
        Arc::clone(outgoing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::policy::{Match, PrefixListEntry, Rule, Verdict};
    use crate::bgp::types::Origin;

    const LOCAL_AS: Asn = 65000;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn rib(max_paths: usize) -> LocRib {
        LocRib::new(Config {
            local_as: LOCAL_AS,
            router_id: Ipv4Addr::new(192, 0, 2, 254),
            max_paths,
        })
    }

    fn all(_: IpAddr) -> bool {
        true
    }

    fn neighbor(address: &str, remote_as: Asn, router_id: u8) -> Neighbor {
        Neighbor {
            id: NeighborId::new(ip(address), None).unwrap(),
            remote_as,
            router_id: Ipv4Addr::new(192, 0, 2, router_id),
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            next_hop_ipv4: Some(Ipv4Addr::new(10, 255, 0, 1)),
            next_hop_ipv6: Some("2001:db8:ff::1".parse().unwrap()),
            next_hop_link_local: None,
            ipv4_over_ipv6: false,
            import: Policy::default(),
            export: Policy::default(),
        }
    }

    /// A path as `from` sends it: its nexthop is its own address.
    fn path(from: &Neighbor, as_path: &[Asn]) -> Attributes {
        Attributes {
            as_path: vec![AsSegment::Sequence(as_path.to_vec())],
            next_hop: Some(from.id.address()),
            ..Attributes::default()
        }
    }

    fn announce(
        rib: &mut LocRib,
        from: &Neighbor,
        prefix: &str,
        attributes: Attributes,
    ) -> Vec<BestChange> {
        let update = Update {
            announced: vec![(net(prefix), Arc::new(attributes))],
            ..Update::default()
        };
        rib.apply(from.id, &update, &all)
    }

    fn withdraw(rib: &mut LocRib, from: &Neighbor, prefix: &str) -> Vec<BestChange> {
        let update = Update {
            withdrawn: vec![net(prefix)],
            ..Update::default()
        };
        rib.apply(from.id, &update, &all)
    }

    fn sources(rib: &LocRib, prefix: &str) -> Vec<Source> {
        rib.best(&net(prefix))
            .iter()
            .map(|path| path.source)
            .collect()
    }

    fn from(neighbor: &Neighbor) -> Source {
        Source::Neighbor(neighbor.id)
    }

    const P: &str = "192.0.2.0/24";

    /// Two neighbors, up.
    fn pair(rib: &mut LocRib, a: (Asn, u8), b: (Asn, u8)) -> (Neighbor, Neighbor) {
        let first = neighbor("10.0.0.1", a.0, a.1);
        let second = neighbor("10.0.0.2", b.0, b.1);
        rib.neighbor_up(first.clone());
        rib.neighbor_up(second.clone());
        (first, second)
    }

    #[test]
    fn highest_local_pref_first() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (LOCAL_AS, 1), (LOCAL_AS, 2));
        announce(&mut rib, &a, P, path(&a, &[65010]));
        announce(
            &mut rib,
            &b,
            P,
            Attributes {
                local_pref: Some(200),
                ..path(&b, &[65010, 65011, 65012])
            },
        );
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // Below the default of 100, it loses.
        announce(
            &mut rib,
            &b,
            P,
            Attributes {
                local_pref: Some(99),
                ..path(&b, &[65010])
            },
        );
        assert_eq!(sources(&rib, P), vec![from(&a)]);
    }

    #[test]
    fn shortest_as_path_then_lowest_origin() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        announce(&mut rib, &a, P, path(&a, &[65001, 65010, 65011]));
        announce(&mut rib, &b, P, path(&b, &[65002, 65011]));
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // A set counts as one.
        let mut with_set = path(&a, &[65001]);
        with_set
            .as_path
            .push(AsSegment::Set(vec![65010, 65011, 65012]));
        announce(&mut rib, &a, P, with_set.clone());
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        // Equal lengths: the lower origin.
        announce(
            &mut rib,
            &a,
            P,
            Attributes {
                origin: Origin::Incomplete,
                ..with_set
            },
        );
        assert_eq!(sources(&rib, P), vec![from(&b)]);
    }

    #[test]
    fn med_compared_only_within_the_same_neighboring_as() {
        let mut rib = rib(1);
        let a = neighbor("10.0.0.1", 65001, 1);
        let b = neighbor("10.0.0.2", 65001, 3);
        let c = neighbor("10.0.0.3", 65002, 2);
        for neighbor in [&a, &b, &c] {
            rib.neighbor_up(neighbor.clone());
        }
        let with_med = |from: &Neighbor, med| Attributes {
            med: Some(med),
            ..path(from, &[from.remote_as])
        };
        // Same AS: the lower MED wins, router ids aside.
        announce(&mut rib, &a, P, with_med(&a, 50));
        announce(&mut rib, &b, P, with_med(&b, 10));
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // Another AS: MED not compared. B (MED 10) beat A; B and C go on to
        // the router id, where C (.2) beats B (.3), whatever C's MED.
        announce(&mut rib, &c, P, with_med(&c, 1000));
        assert_eq!(sources(&rib, P), vec![from(&c)]);
        // Without B, A (.1) and C (.2) are not compared by MED: A wins.
        withdraw(&mut rib, &b, P);
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        // A missing MED is the lowest.
        announce(&mut rib, &b, P, path(&b, &[65001]));
        assert_eq!(sources(&rib, P), vec![from(&c)]);
        withdraw(&mut rib, &c, P);
        assert_eq!(sources(&rib, P), vec![from(&b)]);
    }

    #[test]
    fn ebgp_over_ibgp() {
        let mut rib = rib(1);
        let (internal, external) = pair(&mut rib, (LOCAL_AS, 1), (65002, 9));
        announce(&mut rib, &internal, P, path(&internal, &[65001]));
        announce(&mut rib, &external, P, path(&external, &[65002]));
        assert_eq!(sources(&rib, P), vec![from(&external)]);
    }

    #[test]
    fn lowest_router_id_then_lowest_address() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 9), (65002, 3));
        announce(&mut rib, &a, P, path(&a, &[65001]));
        announce(&mut rib, &b, P, path(&b, &[65002]));
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // ORIGINATOR_ID stands for the router id when present.
        let mut rib = super::tests::rib(1);
        let (a, b) = pair(&mut rib, (LOCAL_AS, 9), (LOCAL_AS, 3));
        announce(
            &mut rib,
            &a,
            P,
            Attributes {
                originator_id: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ..path(&a, &[65010])
            },
        );
        announce(&mut rib, &b, P, path(&b, &[65010]));
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        // Same router id: the lower address.
        let mut rib = super::tests::rib(1);
        let (a, b) = pair(&mut rib, (65001, 5), (65002, 5));
        announce(&mut rib, &b, P, path(&b, &[65002]));
        announce(&mut rib, &a, P, path(&a, &[65001]));
        assert_eq!(sources(&rib, P), vec![from(&a)]);
    }

    #[test]
    fn multipath_keeps_paths_equal_up_to_the_router_id() {
        let mut rib = rib(2);
        let a = neighbor("10.0.0.1", 65001, 3);
        let b = neighbor("10.0.0.2", 65002, 1);
        let c = neighbor("10.0.0.3", 65003, 2);
        let d = neighbor("10.0.0.4", 65004, 0);
        for neighbor in [&a, &b, &c, &d] {
            rib.neighbor_up(neighbor.clone());
        }
        announce(&mut rib, &a, P, path(&a, &[65001, 65010]));
        announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
        announce(&mut rib, &c, P, path(&c, &[65003, 65010]));
        // Longer: not a multipath, though its router id is the lowest.
        announce(&mut rib, &d, P, path(&d, &[65004, 65011, 65010]));
        assert_eq!(sources(&rib, P), vec![from(&b), from(&c)]);
        withdraw(&mut rib, &b, P);
        assert_eq!(sources(&rib, P), vec![from(&c), from(&a)]);
        // Single path with max_paths 1.
        let mut single = super::tests::rib(1);
        for neighbor in [&a, &b] {
            single.neighbor_up(neighbor.clone());
        }
        announce(&mut single, &a, P, path(&a, &[65001, 65010]));
        announce(&mut single, &b, P, path(&b, &[65002, 65010]));
        assert_eq!(sources(&single, P), vec![from(&b)]);
    }

    #[test]
    fn unresolvable_nexthop_is_ignored() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        let only_b = |next_hop: IpAddr| next_hop == ip("10.0.0.2");
        let update = |attributes: Attributes| Update {
            announced: vec![(net(P), Arc::new(attributes))],
            ..Update::default()
        };
        rib.apply(a.id, &update(path(&a, &[65001])), &only_b);
        assert!(rib.best(&net(P)).is_empty());
        rib.apply(b.id, &update(path(&b, &[65002, 65010])), &only_b);
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // The tunnel to A comes up.
        let changes = rib.revalidate(&all);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].paths[0].source, from(&a));
        // And goes down: back to B.
        let changes = rib.revalidate(&only_b);
        assert_eq!(changes[0].paths[0].source, from(&b));
        // Nothing resolves: no route.
        let changes = rib.revalidate(&|_| false);
        assert_eq!(
            changes,
            vec![BestChange {
                prefix: net(P),
                paths: Vec::new()
            }]
        );
    }

    #[test]
    fn looping_paths_are_ignored() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (LOCAL_AS, 2));
        announce(&mut rib, &a, P, path(&a, &[65001, LOCAL_AS, 65010]));
        assert!(rib.best(&net(P)).is_empty());
        announce(
            &mut rib,
            &b,
            P,
            Attributes {
                originator_id: Some(Ipv4Addr::new(192, 0, 2, 254)),
                ..path(&b, &[65010])
            },
        );
        assert!(rib.best(&net(P)).is_empty());
    }

    #[test]
    fn changes_only_when_the_choice_changes() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        let changes = announce(&mut rib, &a, P, path(&a, &[65001]));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].paths[0].source, from(&a));
        // A worse path elsewhere: no change.
        assert!(announce(&mut rib, &b, P, path(&b, &[65002, 65010])).is_empty());
        // The same path again: no change.
        assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
        // The best withdrawn: the other.
        let changes = withdraw(&mut rib, &a, P);
        assert_eq!(changes[0].paths[0].source, from(&b));
        // The last withdrawn: none.
        let changes = withdraw(&mut rib, &b, P);
        assert_eq!(
            changes,
            vec![BestChange {
                prefix: net(P),
                paths: Vec::new()
            }]
        );
        assert!(withdraw(&mut rib, &b, P).is_empty());
    }

    #[test]
    fn local_networks_are_preferred() {
        let mut rib = rib(1);
        let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
        announce(
            &mut rib,
            &a,
            P,
            Attributes {
                local_pref: Some(1000),
                ..path(&a, &[65001])
            },
        );
        let changes = rib.set_networks(&[net(P), net("2001:db8::/32")], &all);
        assert_eq!(changes.len(), 2);
        assert_eq!(sources(&rib, P), vec![Source::Local]);
        assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
        // No longer originated: the learned path again.
        let changes = rib.set_networks(&[net("2001:db8::/32")], &all);
        assert_eq!(changes.len(), 1);
        assert_eq!(sources(&rib, P), vec![from(&a)]);
    }

    #[test]
    fn neighbor_down_takes_its_paths() {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        announce(&mut rib, &a, P, path(&a, &[65001]));
        announce(&mut rib, &a, "198.51.100.0/24", path(&a, &[65001]));
        announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
        let mut changes = rib.neighbor_down(a.id, &all);
        changes.sort_by_key(|change| change.prefix);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].paths[0].source, from(&b));
        assert!(changes[1].paths.is_empty());
        // UPDATEs from a neighbor that is down are ignored.
        assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
    }

    #[test]
    fn stale_paths_stay_until_announced_again_or_swept() {
        let mut rib = rib(1);
        let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
        announce(&mut rib, &a, P, path(&a, &[65001]));
        announce(&mut rib, &a, "198.51.100.0/24", path(&a, &[65001]));
        announce(&mut rib, &a, "2001:db8::/32", path(&a, &[65001]));
        rib.mark_stale(a.id);
        // Kept through the restart, stale.
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        assert!(rib.adj_rib_in(a.id).all(|(_, _, stale)| stale));
        // Back: one route announced again, then End-of-RIB for IPv4.
        rib.neighbor_up(a.clone());
        assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
        let stale: Vec<IpNet> = rib
            .adj_rib_in(a.id)
            .filter(|(_, _, stale)| *stale)
            .map(|(prefix, _, _)| *prefix)
            .collect();
        assert_eq!(stale, vec![net("198.51.100.0/24"), net("2001:db8::/32")]);
        let end_of_rib = Update {
            end_of_rib: vec![Family::Ipv4Unicast],
            ..Update::default()
        };
        let changes = rib.apply(a.id, &end_of_rib, &all);
        assert_eq!(
            changes,
            vec![BestChange {
                prefix: net("198.51.100.0/24"),
                paths: Vec::new()
            }]
        );
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        // The restart time runs out for the rest.
        let changes = rib.sweep_stale(a.id, &[Family::Ipv4Unicast, Family::Ipv6Unicast], &all);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].prefix, net("2001:db8::/32"));
        assert_eq!(sources(&rib, P), vec![from(&a)]);
    }

    #[test]
    fn neighbor_that_never_comes_back_is_swept_whole() {
        let mut rib = rib(1);
        let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
        announce(&mut rib, &a, P, path(&a, &[65001]));
        rib.mark_stale(a.id);
        let changes = rib.sweep_stale(a.id, &[Family::Ipv4Unicast, Family::Ipv6Unicast], &all);
        assert_eq!(changes.len(), 1);
        assert!(rib.best(&net(P)).is_empty());
        assert_eq!(rib.adj_rib_in(a.id).count(), 0);
    }

    fn deny_prefix(prefix: &str) -> Policy {
        Policy {
            rules: vec![Rule {
                action: Verdict::Deny,
                matches: Match {
                    prefix_list: vec![
                        PrefixListEntry::new(Verdict::Permit, net(prefix), None, None).unwrap(),
                    ],
                    ..Match::default()
                },
                set: Set::default(),
            }],
            default: Verdict::Permit,
        }
    }

    #[test]
    fn import_policy_filters_and_sets() {
        let mut rib = rib(1);
        let mut a = neighbor("10.0.0.1", 65001, 1);
        a.import = deny_prefix(P);
        let b = neighbor("10.0.0.2", 65002, 2);
        rib.neighbor_up(a.clone());
        rib.neighbor_up(b.clone());
        announce(&mut rib, &a, P, path(&a, &[65001]));
        assert!(rib.best(&net(P)).is_empty());
        announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        // A new import policy applies to what A already sent.
        let prefer = Policy {
            rules: vec![Rule {
                action: Verdict::Permit,
                matches: Match::default(),
                set: Set {
                    local_preference: Some(300),
                    ..Set::default()
                },
            }],
            default: Verdict::Permit,
        };
        let (changes, _) = rib.set_policies(a.id, prefer, Policy::default(), &all);
        assert_eq!(changes.len(), 1);
        assert_eq!(sources(&rib, P), vec![from(&a)]);
        assert_eq!(rib.best(&net(P))[0].attributes.local_pref, Some(300));
    }

    /// Our AS 65000; eBGP A (65001), eBGP C (65003), eBGP D (65005), iBGP I
    /// and J.
    struct World {
        rib: LocRib,
        a: Neighbor,
        c: Neighbor,
        d: Neighbor,
        i: Neighbor,
        j: Neighbor,
    }

    fn world() -> World {
        let mut rib = rib(1);
        let a = neighbor("10.0.0.1", 65001, 1);
        let c = neighbor("10.0.0.3", 65003, 3);
        let d = neighbor("10.0.0.5", 65005, 5);
        let i = neighbor("10.0.0.8", LOCAL_AS, 8);
        let j = neighbor("10.0.0.9", LOCAL_AS, 9);
        for neighbor in [&a, &c, &d, &i, &j] {
            assert!(rib.neighbor_up(neighbor.clone()).is_empty());
        }
        World { rib, a, c, d, i, j }
    }

    fn sent<'e>(exports: &'e BTreeMap<NeighborId, Export>, to: &Neighbor) -> Option<&'e Export> {
        exports.get(&to.id)
    }

    #[test]
    fn export_of_an_ebgp_route() {
        let World {
            mut rib,
            a,
            c,
            d,
            i,
            j,
        } = world();
        let changes = announce(
            &mut rib,
            &a,
            P,
            Attributes {
                med: Some(7),
                ..path(&a, &[65001, 65005, 65010])
            },
        );
        let exports = rib.export(&changes);
        // Not back to A; not to D, whose AS is in the path.
        assert!(sent(&exports, &a).is_none());
        assert!(sent(&exports, &d).is_none());
        // eBGP C: next-hop self, our AS prepended, MED and LOCAL_PREF gone.
        let to_c = &sent(&exports, &c).unwrap().announced;
        assert_eq!(to_c.len(), 1);
        let attributes = &to_c[0].1;
        assert_eq!(attributes.next_hop, Some(ip("10.255.0.1")));
        assert_eq!(
            attributes.as_path,
            vec![AsSegment::Sequence(vec![LOCAL_AS, 65001, 65005, 65010])]
        );
        assert_eq!(attributes.med, None);
        assert_eq!(attributes.local_pref, None);
        // iBGP I and J: path unchanged, LOCAL_PREF given, next-hop self.
        for to in [&i, &j] {
            let attributes = &sent(&exports, to).unwrap().announced[0].1;
            assert_eq!(
                attributes.as_path,
                vec![AsSegment::Sequence(vec![65001, 65005, 65010])]
            );
            assert_eq!(attributes.local_pref, Some(DEFAULT_LOCAL_PREF));
            assert_eq!(attributes.med, Some(7));
            assert_eq!(attributes.next_hop, Some(ip("10.255.0.1")));
        }
        // Withdrawn: withdrawn from those that had it, and only those.
        let changes = withdraw(&mut rib, &a, P);
        let exports = rib.export(&changes);
        let told: Vec<NeighborId> = exports.keys().copied().collect();
        assert_eq!(told, vec![c.id, i.id, j.id]);
        assert!(
            exports
                .values()
                .all(|export| export.withdrawn == vec![net(P)])
        );
    }

    #[test]
    fn ibgp_routes_do_not_go_to_other_ibgp_neighbors() {
        let World {
            mut rib, c, i, j, ..
        } = world();
        let changes = announce(&mut rib, &i, P, path(&i, &[65010]));
        let exports = rib.export(&changes);
        assert!(sent(&exports, &j).is_none());
        assert!(sent(&exports, &i).is_none());
        let attributes = &sent(&exports, &c).unwrap().announced[0].1;
        assert_eq!(
            attributes.as_path,
            vec![AsSegment::Sequence(vec![LOCAL_AS, 65010])]
        );
    }

    #[test]
    fn local_networks_go_to_everyone_and_new_neighbors_get_the_table() {
        let World { mut rib, a, i, .. } = world();
        let changes = rib.set_networks(&[net(P), net("2001:db8::/32")], &all);
        let exports = rib.export(&changes);
        assert_eq!(exports.len(), 5);
        let to_a = &sent(&exports, &a).unwrap().announced;
        assert_eq!(to_a[0].1.as_path, vec![AsSegment::Sequence(vec![LOCAL_AS])]);
        assert_eq!(to_a[1].1.next_hop, Some(ip("2001:db8:ff::1")));
        let to_i = &sent(&exports, &i).unwrap().announced;
        assert_eq!(to_i[0].1.as_path, Vec::new());
        // Nothing new to send: nothing sent.
        assert!(rib.export(&changes).is_empty());
        // A neighbor coming up gets the whole table; one without IPv6 only
        // the IPv4 routes.
        let mut e = neighbor("10.0.0.7", 65007, 7);
        e.families = vec![Family::Ipv4Unicast];
        let table = rib.neighbor_up(e);
        assert_eq!(table.announced.len(), 1);
        assert_eq!(table.announced[0].0, net(P));
    }

    #[test]
    fn well_known_communities_limit_export() {
        let World {
            mut rib, a, c, i, ..
        } = world();
        let no_export = Attributes {
            communities: vec![Community::NO_EXPORT.0],
            ..path(&a, &[65001])
        };
        let changes = announce(&mut rib, &a, P, no_export);
        let exports = rib.export(&changes);
        assert!(sent(&exports, &c).is_none());
        assert!(sent(&exports, &i).is_some());
        let no_advertise = Attributes {
            communities: vec![Community::NO_ADVERTISE.0],
            ..path(&a, &[65001])
        };
        let changes = announce(&mut rib, &a, P, no_advertise);
        let exports = rib.export(&changes);
        // I had it: withdrawn. C never had it: nothing.
        assert_eq!(sent(&exports, &i).unwrap().withdrawn, vec![net(P)]);
        assert!(sent(&exports, &c).is_none());
    }

    #[test]
    fn export_policy_denies_and_sets() {
        let World { mut rib, a, c, .. } = world();
        let mut policy = deny_prefix("198.51.100.0/24");
        policy.rules.push(Rule {
            action: Verdict::Permit,
            matches: Match::default(),
            set: Set {
                med: Some(42),
                ..Set::default()
            },
        });
        let (_, table) = rib.set_policies(c.id, Policy::default(), policy, &all);
        assert!(table.is_empty());
        let mut changes = announce(&mut rib, &a, P, path(&a, &[65001]));
        changes.extend(announce(
            &mut rib,
            &a,
            "198.51.100.0/24",
            path(&a, &[65001]),
        ));
        let exports = rib.export(&changes);
        let to_c = &sent(&exports, &c).unwrap().announced;
        assert_eq!(to_c.len(), 1);
        assert_eq!(to_c[0].0, net(P));
        assert_eq!(to_c[0].1.med, Some(42));
        // Routes sharing attributes still share them after the policy.
        let mut changes = announce(&mut rib, &a, "203.0.113.0/24", path(&a, &[65001]));
        changes.extend(rib.set_networks(&[net("10.1.0.0/16"), net("10.2.0.0/16")], &all));
        let exports = rib.export(&changes);
        let to_c = &sent(&exports, &c).unwrap().announced;
        assert_eq!(to_c.len(), 3);
        let of = |prefix: &str| &to_c.iter().find(|(p, _)| *p == net(prefix)).unwrap().1;
        assert!(Arc::ptr_eq(of("10.1.0.0/16"), of("10.2.0.0/16")));
    }

    #[test]
    fn route_refresh_sends_everything_again() {
        let World { mut rib, a, c, .. } = world();
        let mut changes = announce(&mut rib, &a, P, path(&a, &[65001]));
        changes.extend(rib.set_networks(&[net("2001:db8::/32")], &all));
        rib.export(&changes);
        let again = rib.refresh(c.id);
        let prefixes: Vec<IpNet> = again.announced.iter().map(|(prefix, _)| *prefix).collect();
        assert_eq!(prefixes, vec![net(P), net("2001:db8::/32")]);
        assert!(again.withdrawn.is_empty());
        // Twice is the same; and a neighbor that is not up gets nothing.
        assert_eq!(rib.refresh(c.id), again);
        assert!(rib.refresh("10.9.9.9".parse().unwrap()).is_empty());
    }

    #[test]
    fn stale_neighbor_is_sent_nothing_until_it_is_back() {
        let World { mut rib, a, c, .. } = world();
        rib.mark_stale(c.id);
        let changes = announce(&mut rib, &a, P, path(&a, &[65001]));
        assert!(sent(&rib.export(&changes), &c).is_none());
        let table = rib.neighbor_up(c.clone());
        assert_eq!(table.announced.len(), 1);
    }

    /// A neighbor `fe80::2` on `tunnel`, whose tunnel gives us `fe80::1`.
    fn link_local_neighbor(tunnel: &str, remote_as: Asn, router_id: u8) -> Neighbor {
        Neighbor {
            id: NeighborId::new(ip("fe80::2"), Some(tunnel)).unwrap(),
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            next_hop_link_local: Some("fe80::1".parse().unwrap()),
            ipv4_over_ipv6: true,
            ..neighbor("10.0.0.1", remote_as, router_id)
        }
    }

    /// Next hop and link-local next hop of what `export` announces for `prefix`.
    fn next_hops(export: &Export, prefix: &str) -> Option<(Option<IpAddr>, Option<Ipv6Addr>)> {
        export
            .announced
            .iter()
            .find(|(announced, _)| *announced == net(prefix))
            .map(|(_, attributes)| (attributes.next_hop, attributes.link_local_next_hop))
    }

    #[test]
    fn link_local_sessions_send_link_local_next_hops() {
        const V4: &str = "172.20.1.0/27";
        const V6: &str = "fd42:1::/48";
        let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut rib = rib(1);
        rib.set_networks(&[net(V4), net(V6)], &all);
        // RFC 8950 negotiated, no global address on the tunnel: the
        // link-local alone, for both families.
        let export = rib.neighbor_up(link_local_neighbor("dn42b", 65002, 2));
        for prefix in [V4, V6] {
            assert_eq!(
                next_hops(&export, prefix),
                Some((Some(IpAddr::V6(link_local)), None)),
                "{prefix}"
            );
        }
        // With a global address: global first, link-local beside it.
        let export = rib.neighbor_up(Neighbor {
            next_hop_ipv6: Some("fd42:1::1".parse().unwrap()),
            next_hop_ipv4: Some(Ipv4Addr::new(172, 20, 1, 1)),
            ..link_local_neighbor("dn42b", 65002, 2)
        });
        for prefix in [V4, V6] {
            assert_eq!(
                next_hops(&export, prefix),
                Some((Some(ip("fd42:1::1")), Some(link_local))),
                "{prefix}"
            );
        }
        // No RFC 8950: IPv4 routes take the tunnel's IPv4 address...
        let export = rib.neighbor_up(Neighbor {
            next_hop_ipv4: Some(Ipv4Addr::new(172, 20, 1, 1)),
            ipv4_over_ipv6: false,
            ..link_local_neighbor("dn42b", 65002, 2)
        });
        assert_eq!(next_hops(&export, V4), Some((Some(ip("172.20.1.1")), None)));
        // ...and without one are not sent (IPv6 still is).
        let export = rib.neighbor_up(Neighbor {
            ipv4_over_ipv6: false,
            ..link_local_neighbor("dn42b", 65002, 2)
        });
        assert_eq!(next_hops(&export, V4), None);
        assert_eq!(
            next_hops(&export, V6),
            Some((Some(IpAddr::V6(link_local)), None))
        );
        assert_eq!(
            rib.sent(NeighborId::new(ip("fe80::2"), Some("dn42b")).unwrap()),
            1
        );
    }

    #[test]
    fn one_link_local_address_on_two_tunnels_is_two_neighbors() {
        let mut rib = rib(1);
        let b = link_local_neighbor("dn42b", 65002, 2);
        let c = link_local_neighbor("dn42c", 65003, 3);
        rib.neighbor_up(b.clone());
        rib.neighbor_up(c.clone());
        let changes = announce(
            &mut rib,
            &b,
            P,
            Attributes {
                next_hop: Some(ip("fe80::2")),
                ..path(&b, &[65002])
            },
        );
        assert_eq!(sources(&rib, P), vec![from(&b)]);
        let exports = rib.export(&changes);
        // To the other fe80::2, not back to the one it came from.
        assert!(sent(&exports, &b).is_none());
        assert_eq!(sent(&exports, &c).unwrap().announced.len(), 1);
        assert_eq!(rib.received(b.id), 1);
        assert_eq!(rib.received(c.id), 0);
    }
}
