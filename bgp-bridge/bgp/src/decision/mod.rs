//! The BGP speaker's routing table: Adj-RIB-In per neighbor, the decision
//! process of RFC 4271 9.1 over them, and what each neighbor is sent. Pure:
//! no I/O, no clock.
//!
//! In: neighbors coming up (`neighbor_up`) and going away (`neighbor_down`,
//! or in parts `neighbor_leaving` then `neighbor_leaving_alone`, or
//! `mark_stale` when they do graceful restart, then `sweep_stale`),
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
//! drop), and no extended community marked non-transitive (RFC 4360 3:
//! the T bit of its type). To iBGP neighbors: only routes we originate or learned over eBGP
//! (no route reflection), with LOCAL_PREF. The export policy comes last
//! (it sees the route as it would be sent) and may still deny or change
//! it.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use wgd_rtr::{VrpTable, VrpUpdate};

use crate::policy::{Community, Outcome, Policy, Set, Validity};
use crate::prefix_map::PrefixMap;
use crate::types::{
    Asn, Attributes, DEFAULT_LOCAL_PREF, Family, Negotiated, NeighborId, NextHop, Origin, Update,
};

/// VRP changes naming more prefixes than this validate every path again
/// rather than look up the paths each covers.
const REVALIDATE_ALL_AT: usize = 4096;

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
            .address()
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
    /// The neighbor of the first neighbor path before the change (who
    /// carried the route to the bridge), if any.
    pub before: Option<NeighborId>,
}

/// The neighbor of the first path that came from one.
pub fn first_neighbor(paths: &[Path]) -> Option<NeighborId> {
    paths.iter().find_map(|path| match path.source {
        Source::Neighbor(neighbor) => Some(neighbor),
        Source::Local => None,
    })
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

/// A neighbor's prefix limit: how many paths it may have in its
/// Adj-RIB-In (0: no limit), and what happens to an UPDATE that would
/// take it past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixLimit {
    pub limit: u32,
    pub action: LimitAction,
}

/// What a prefix limit does once reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitAction {
    /// The session is reset (Cease / Maximum Number of Prefixes Reached).
    #[default]
    Reset,
    /// New prefixes past the limit are not taken (BIRD's `action
    /// block`): paths for prefixes the neighbor already has still
    /// replace theirs, withdrawals still go, and once the count falls
    /// below the limit new ones are taken again.
    Block,
}

/// What a prefix limit made of an UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Within the limit: take it whole.
    Within,
    /// Past it, and the action is `Reset`.
    Reset,
    /// Past it with `Block`: this many announcements of new prefixes
    /// were taken out of the UPDATE.
    Blocked(usize),
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

/// A path as received, and what the import policy and the decision made
/// of it. The best paths are not kept apart: a path's `rank` says whether
/// (and where) it is among its prefix's best, so that the Loc-RIB costs
/// one byte per path and not a map of its own.
/// 16 bytes: the attributes an import policy changed are kept apart (see
/// [`NeighborState::changed`]).
#[derive(Debug, Clone)]
struct Received {
    attributes: Arc<Attributes>,
    /// Kept through a graceful restart, not yet announced again.
    stale: bool,
    /// 0: not among the best paths; k: the k-th of them (1: the best).
    rank: u8,
    import: Import,
    /// Origin validation (RFC 6811) of the path as received; `NotFound`
    /// when nothing is validated.
    validity: Validity,
}

/// What the import policy made of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Import {
    /// Taken as received.
    Taken,
    Denied,
    /// Taken with changed attributes (a rule's `set`): they are in
    /// [`NeighborState::changed`].
    Changed,
}

#[derive(Debug)]
struct NeighborState {
    settings: Neighbor,
    established: bool,
    adj_rib_in: PrefixMap<Received>,
    /// The attributes of the paths the import policy changed: few (a rule
    /// with a `set`), so every other path costs one pointer, not two.
    changed: PrefixMap<Arc<Attributes>>,
    adj_rib_out: PrefixMap<Arc<Attributes>>,
    leaving: Leaving,
}

/// How far a neighbor's leaving for good has got (see
/// [`LocRib::neighbor_leaving`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Not leaving, or no part taken yet.
    Start,
    /// Its paths to prefixes that another path reaches are taken up to
    /// this prefix.
    After(IpNet),
    /// Each of its paths left is the only one to its prefix.
    Alone,
}

impl NeighborState {
    /// A path's attributes as the import policy took them; `None`: denied.
    fn accepted<'a>(
        &'a self,
        prefix: &IpNet,
        received: &'a Received,
    ) -> Option<&'a Arc<Attributes>> {
        match received.import {
            Import::Taken => Some(&received.attributes),
            Import::Denied => None,
            Import::Changed => self.changed.get(prefix),
        }
    }

    /// Records what the import policy made of the path to `prefix` that
    /// came with `attributes`.
    fn record_import(
        &mut self,
        prefix: IpNet,
        attributes: &Arc<Attributes>,
        accepted: Option<Arc<Attributes>>,
    ) -> Import {
        match accepted {
            Some(accepted) if !Arc::ptr_eq(&accepted, attributes) => {
                self.changed.insert(prefix, accepted);
                Import::Changed
            }
            accepted => {
                if !self.changed.is_empty() {
                    self.changed.remove(&prefix);
                }
                if accepted.is_some() {
                    Import::Taken
                } else {
                    Import::Denied
                }
            }
        }
    }

    /// Drops the path to `prefix`.
    fn remove(&mut self, prefix: &IpNet) -> Option<Received> {
        if !self.changed.is_empty() {
            self.changed.remove(prefix);
        }
        self.adj_rib_in.remove(prefix)
    }

    fn ebgp(&self, local_as: Asn) -> bool {
        self.settings.remote_as != local_as
    }
}

/// Adj-RIB-In of every neighbor with the best paths (Loc-RIB) marked in
/// it, and what each neighbor was sent (Adj-RIB-Out).
#[derive(Debug)]
pub struct LocRib {
    config: Config,
    neighbors: BTreeMap<NeighborId, NeighborState>,
    /// The networks we originate: when one is here, it is the best path.
    local: BTreeMap<IpNet, Arc<Attributes>>,
    /// The VRPs paths are validated against, when origin validation is on.
    origins: Option<VrpTable>,
}

/// The origin validation state of a path: its origin AS (ours when the
/// AS_PATH is empty, RFC 6811 2) against the VRPs.
fn validity_of(
    origins: Option<&VrpTable>,
    local_as: Asn,
    prefix: &IpNet,
    attributes: &Attributes,
) -> Validity {
    let Some(origins) = origins else {
        return Validity::NotFound;
    };
    let origin = if attributes.as_path_len() == 0 {
        Some(local_as)
    } else {
        attributes.as_path.origin_as()
    };
    origins.validate(prefix, origin)
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
            origins: None,
        }
    }

    /// Turns origin validation on (an RPKI cache is configured): every
    /// path is validated from now on, `not-found` until VRPs come.
    pub fn validate_origins(&mut self) {
        self.origins.get_or_insert_with(VrpTable::new);
    }

    /// The VRPs, when origin validation is on.
    pub fn origins(&self) -> Option<&VrpTable> {
        self.origins.as_ref()
    }

    /// A path's validation state, `None` when origin validation is off.
    pub fn validity(&self, neighbor: NeighborId, prefix: &IpNet) -> Option<Validity> {
        self.origins.as_ref()?;
        let state = self.neighbors.get(&neighbor)?;
        Some(state.adj_rib_in.get(prefix)?.validity)
    }

    /// How many paths are valid, invalid and not found (none when origin
    /// validation is off).
    pub fn validity_counts(&self) -> Option<[usize; 3]> {
        self.origins.as_ref()?;
        let mut counts = [0; 3];
        for state in self.neighbors.values() {
            for received in state.adj_rib_in.values() {
                counts[received.validity as usize] += 1;
            }
        }
        Some(counts)
    }

    /// Applies what an RPKI cache sent (origin validation must be on) and
    /// validates again the paths the changed VRPs cover: a path whose
    /// state changed goes through its neighbor's import policy again (no
    /// route refresh). The best-path changes, and how many of the cache's
    /// records announced what was there or withdrew what was not.
    pub fn update_origins(
        &mut self,
        update: VrpUpdate,
        resolver: &dyn Resolver,
    ) -> (Vec<BestChange>, usize) {
        let local_as = self.config.local_as;
        let Some(origins) = self.origins.as_mut() else {
            return (Vec::new(), 0);
        };
        let (changed, mistakes) = origins.apply(update);
        if changed.is_empty() {
            return (Vec::new(), mistakes);
        }
        let origins = self.origins.as_ref();
        // The paths whose state changed, and for those whose import
        // policy's answer changed too, that answer.
        let mut revalidated: Vec<(NeighborId, IpNet, Validity)> = Vec::new();
        let mut touched: Vec<(NeighborId, IpNet, Option<Arc<Attributes>>)> = Vec::new();
        for (id, state) in &self.neighbors {
            let mut visit = |prefix: IpNet, received: &Received| {
                let validity = validity_of(origins, local_as, &prefix, &received.attributes);
                if validity == received.validity {
                    return;
                }
                revalidated.push((*id, prefix, validity));
                let import = &state.settings.import;
                if !import.matches_rpki() {
                    return;
                }
                let accepted = match import.judge_validated(&prefix, &received.attributes, validity)
                {
                    Outcome::Deny => None,
                    Outcome::Permit(set) => Some(set.map_or_else(
                        || Arc::clone(&received.attributes),
                        |set| set.apply(&received.attributes),
                    )),
                };
                if accepted.as_ref() != state.accepted(&prefix, received) {
                    touched.push((*id, prefix, accepted));
                }
            };
            if changed.len() > REVALIDATE_ALL_AT {
                for (prefix, received) in state.adj_rib_in.iter() {
                    visit(prefix, received);
                }
            } else {
                // Nested VRP prefixes cover the same paths: each once.
                let mut seen = BTreeSet::new();
                for covering in &changed {
                    for (prefix, received) in state.adj_rib_in.iter_within(covering) {
                        if seen.insert(prefix) {
                            visit(prefix, received);
                        }
                    }
                }
            }
        }
        // A best path whose state changed is exported again when an export
        // policy looks at the state, even if the choice stays.
        let exports_look = self
            .neighbors
            .values()
            .any(|state| state.settings.export.matches_rpki());
        let mut best_revalidated = Vec::new();
        for (id, prefix, validity) in revalidated {
            if let Some(received) = self
                .neighbors
                .get_mut(&id)
                .and_then(|state| state.adj_rib_in.get_mut(&prefix))
            {
                received.validity = validity;
                if exports_look && received.rank == 1 {
                    best_revalidated.push(prefix);
                }
            }
        }
        let before = self.before(touched.iter().map(|(_, prefix, _)| *prefix));
        for (id, prefix, accepted) in touched {
            let Some(state) = self.neighbors.get_mut(&id) else {
                continue;
            };
            let Some(attributes) = state
                .adj_rib_in
                .get(&prefix)
                .map(|received| Arc::clone(&received.attributes))
            else {
                continue;
            };
            let import = state.record_import(prefix, &attributes, accepted);
            if let Some(received) = state.adj_rib_in.get_mut(&prefix) {
                received.import = import;
            }
        }
        let mut changes = self.recompute(before, resolver);
        let decided: BTreeSet<IpNet> = changes.iter().map(|change| change.prefix).collect();
        for prefix in best_revalidated {
            if !decided.contains(&prefix) {
                let paths = self.best(&prefix);
                let before = first_neighbor(&paths);
                changes.push(BestChange {
                    prefix,
                    paths,
                    before,
                });
            }
        }
        (changes, mistakes)
    }

    /// The table's structures by name, for a caller that measures what
    /// each holds by dropping them one at a time (`wgd-bench memory`).
    /// Attribute sets are shared: they go with their last holder.
    pub fn into_structures(self) -> Vec<(&'static str, Box<dyn std::any::Any>)> {
        let (adj_rib_in, adj_rib_out): (Vec<_>, Vec<_>) = self
            .neighbors
            .into_values()
            .map(|state| ((state.adj_rib_in, state.changed), state.adj_rib_out))
            .unzip();
        vec![
            ("Adj-RIB-Out", Box::new(adj_rib_out)),
            ("Adj-RIB-In", Box::new(adj_rib_in)),
            ("local networks", Box::new(self.local)),
        ]
    }

    /// The best path(s) of a prefix, best first.
    pub fn best(&self, prefix: &IpNet) -> Vec<Path> {
        if let Some(attributes) = self.local.get(prefix) {
            return vec![Path {
                source: Source::Local,
                attributes: Arc::clone(attributes),
            }];
        }
        let mut ranked: Vec<(u8, Path)> = self
            .neighbors
            .iter()
            .filter_map(|(id, state)| {
                let received = state.adj_rib_in.get(prefix).filter(|r| r.rank > 0)?;
                Some((
                    received.rank,
                    Path {
                        source: Source::Neighbor(*id),
                        attributes: Arc::clone(state.accepted(prefix, received)?),
                    },
                ))
            })
            .collect();
        ranked.sort_unstable_by_key(|(rank, _)| *rank);
        ranked.into_iter().map(|(_, path)| path).collect()
    }

    /// The best path of a prefix alone.
    fn first_best(&self, prefix: &IpNet) -> Option<Path> {
        if let Some(attributes) = self.local.get(prefix) {
            return Some(Path {
                source: Source::Local,
                attributes: Arc::clone(attributes),
            });
        }
        self.neighbors.iter().find_map(|(id, state)| {
            let received = state.adj_rib_in.get(prefix).filter(|r| r.rank == 1)?;
            Some(Path {
                source: Source::Neighbor(*id),
                attributes: Arc::clone(state.accepted(prefix, received)?),
            })
        })
    }

    /// Every prefix with a best path, in order.
    fn best_prefixes(&self) -> BTreeSet<IpNet> {
        let mut prefixes: BTreeSet<IpNet> = self.local.keys().copied().collect();
        for state in self.neighbors.values() {
            prefixes.extend(
                state
                    .adj_rib_in
                    .iter()
                    .filter(|(_, received)| received.rank == 1)
                    .map(|(prefix, _)| prefix),
            );
        }
        prefixes
    }

    /// The prefixes whose best path came from `neighbor`.
    pub fn best_from(&self, neighbor: NeighborId) -> impl Iterator<Item = IpNet> + '_ {
        self.neighbors
            .get(&neighbor)
            .into_iter()
            .flat_map(|state| state.adj_rib_in.iter())
            .filter(|(prefix, received)| received.rank == 1 && !self.local.contains_key(prefix))
            .map(|(prefix, _)| prefix)
    }

    /// Every prefix with a path, and its best path(s).
    pub fn best_paths(&self) -> Vec<(IpNet, Vec<Path>)> {
        self.best_prefixes()
            .into_iter()
            .map(|prefix| (prefix, self.best(&prefix)))
            .collect()
    }

    /// The best paths of each prefix now, before a change to the table.
    fn before(&self, prefixes: impl IntoIterator<Item = IpNet>) -> Vec<(IpNet, Vec<Path>)> {
        prefixes
            .into_iter()
            .map(|prefix| (prefix, self.best(&prefix)))
            .collect()
    }

    /// The paths a neighbor announced, as received, and whether each is
    /// stale.
    pub fn adj_rib_in(
        &self,
        neighbor: NeighborId,
    ) -> impl Iterator<Item = (IpNet, &Arc<Attributes>, bool)> {
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

    /// Holds an UPDATE from `neighbor` to its prefix limit, counting
    /// every path in its Adj-RIB-In (those the import policy denied too:
    /// they take memory alike) after the UPDATE's withdrawals. With
    /// `Block`, the announcements of new prefixes past the limit leave
    /// `update`, in the order they came.
    pub fn limit(&self, neighbor: NeighborId, update: &mut Update, limit: PrefixLimit) -> Limited {
        if limit.limit == 0 || update.announced.is_empty() {
            return Limited::Within;
        }
        let limit_count = limit.limit as usize;
        let held = |prefix: &IpNet| self.has_received(neighbor, prefix);
        let withdrawn = update
            .withdrawn
            .iter()
            .filter(|prefix| held(prefix))
            .count();
        let mut count = self.received(neighbor).saturating_sub(withdrawn);
        match limit.action {
            LimitAction::Reset => {
                let added = update
                    .announced
                    .iter()
                    .filter(|(prefix, _)| !held(prefix))
                    .count();
                if count + added > limit_count {
                    Limited::Reset
                } else {
                    Limited::Within
                }
            }
            LimitAction::Block => {
                let before = update.announced.len();
                update.announced.retain(|(prefix, _)| {
                    if held(prefix) {
                        return true;
                    }
                    count += 1;
                    count <= limit_count
                });
                match before - update.announced.len() {
                    0 => Limited::Within,
                    blocked => Limited::Blocked(blocked),
                }
            }
        }
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
            adj_rib_in: PrefixMap::new(),
            changed: PrefixMap::new(),
            adj_rib_out: PrefixMap::new(),
            leaving: Leaving::Start,
        });
        state.settings = neighbor;
        state.established = true;
        state.leaving = Leaving::Start;
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
        let mut changes = Vec::new();
        while let Some(part) = self.neighbor_leaving(neighbor, usize::MAX, resolver) {
            changes.extend(part);
        }
        while let Some(part) = self.take_alone(neighbor, usize::MAX) {
            changes.extend(part);
        }
        changes
    }

    /// [`LocRib::neighbor_down`] a part at a time, first of two steps:
    /// takes up to `limit` of the neighbor's paths to prefixes that
    /// another path also reaches (another neighbor's, or a network of
    /// ours) away, in address order, and gives the changes of their
    /// prefixes; `None` once it has none left. Its other paths are the
    /// only ones to their prefixes: [`LocRib::neighbor_leaving_alone`]
    /// takes them next. Until then the neighbor is not established
    /// (nothing is sent to it) and its paths not yet taken stay as they
    /// were, so the caller takes every part before anything else changes
    /// the table. The changes of a full table are never all held at once.
    ///
    /// Why two steps: a prefix another path reaches moves to it in the
    /// bridge (replaced in place) and must be offered there before the
    /// neighbor's own routes leave; the others have no route left, and
    /// the bridge can take them all out of the kernel as soon as this step
    /// is over, while the speaker tells the other neighbors.
    pub fn neighbor_leaving(
        &mut self,
        neighbor: NeighborId,
        limit: usize,
        resolver: &dyn Resolver,
    ) -> Option<Vec<BestChange>> {
        let alone = self.alone_at_once(neighbor);
        let state = self.neighbors.get_mut(&neighbor)?;
        state.established = false;
        state.adj_rib_out.clear();
        if alone || state.leaving == Leaving::Alone {
            state.leaving = Leaving::Alone;
            return None;
        }
        let after = match state.leaving {
            Leaving::After(prefix) => Some(prefix),
            _ => None,
        };
        let state = &self.neighbors[&neighbor];
        // Each part starts where the last one ended: the paths before it
        // that are still there are the neighbor's alone.
        let mut scanned = None;
        let mut prefixes = Vec::new();
        for (prefix, _) in state
            .adj_rib_in
            .iter()
            .skip_while(|(prefix, _)| after.is_some_and(|after| *prefix <= after))
        {
            scanned = Some(prefix);
            if self.reached_by_another(neighbor, &prefix) {
                prefixes.push(prefix);
                if prefixes.len() >= limit {
                    break;
                }
            }
        }
        let state = self.neighbors.get_mut(&neighbor)?;
        state.leaving = match scanned {
            Some(prefix) if prefixes.len() >= limit => Leaving::After(prefix),
            _ => Leaving::Alone,
        };
        if prefixes.is_empty() {
            return None;
        }
        let before = self.before(
            prefixes
                .iter()
                .copied()
                .filter(|prefix| !self.goes_unnoticed(neighbor, prefix)),
        );
        if let Some(state) = self.neighbors.get_mut(&neighbor) {
            for prefix in &prefixes {
                state.remove(prefix);
            }
        }
        Some(self.recompute(before, resolver))
    }

    /// The second step of a neighbor's leaving, once
    /// [`LocRib::neighbor_leaving`] has given `None`: its paths left are
    /// the only ones to their prefixes, which have no route after them.
    /// While another neighbor is established, up to `limit` of them go at
    /// a time, with the changes of their prefixes (those the neighbor's
    /// path was best for) to tell it; with none, nobody is to be told and
    /// they all go at once, without a change each. `None` once the
    /// neighbor is gone. No decision runs, so nothing else may change the
    /// table between the first step's last part and this one's (the
    /// speaker runs both in one go): a path another neighbor brought in
    /// between would be left unchosen.
    pub fn neighbor_leaving_alone(
        &mut self,
        neighbor: NeighborId,
        limit: usize,
    ) -> Option<Vec<BestChange>> {
        debug_assert!(
            self.neighbors
                .get(&neighbor)
                .is_none_or(|state| state.leaving == Leaving::Alone),
            "the second step of leaving before the first was done"
        );
        let told = self
            .neighbors
            .iter()
            .any(|(id, state)| *id != neighbor && state.established);
        if told {
            return self.take_alone(neighbor, limit);
        }
        self.neighbors.remove(&neighbor);
        None
    }

    /// Takes up to `limit` of a leaving neighbor's paths, each the only
    /// path to its prefix (see [`LocRib::neighbor_leaving`]), with the
    /// changes of their prefixes: no decision runs, a prefix whose best
    /// path it was has none left.
    fn take_alone(&mut self, neighbor: NeighborId, limit: usize) -> Option<Vec<BestChange>> {
        let state = self.neighbors.get_mut(&neighbor)?;
        debug_assert_eq!(state.leaving, Leaving::Alone);
        let prefixes: Vec<IpNet> = state.adj_rib_in.keys().take(limit).collect();
        if prefixes.is_empty() {
            self.neighbors.remove(&neighbor);
            return None;
        }
        let mut changes = Vec::new();
        for prefix in prefixes {
            if state
                .remove(&prefix)
                .is_some_and(|received| received.rank > 0)
            {
                changes.push(BestChange {
                    prefix,
                    paths: Vec::new(),
                    before: Some(neighbor),
                });
            }
        }
        Some(changes)
    }

    /// Whether a path other than `neighbor`'s reaches `prefix`: another
    /// neighbor's (taken, denied or stale alike) or a network of ours.
    fn reached_by_another(&self, neighbor: NeighborId, prefix: &IpNet) -> bool {
        self.local.contains_key(prefix)
            || self
                .neighbors
                .iter()
                .any(|(id, state)| *id != neighbor && state.adj_rib_in.contains_key(prefix))
    }

    /// Whether no path but `neighbor`'s is in the table at all: then each
    /// of its paths is alone without a look at its prefix.
    fn alone_at_once(&self, neighbor: NeighborId) -> bool {
        self.local.is_empty()
            && self
                .neighbors
                .iter()
                .all(|(id, state)| *id == neighbor || state.adj_rib_in.is_empty())
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
        let swept: Vec<IpNet> = state
            .adj_rib_in
            .iter()
            .filter(|(prefix, received)| received.stale && families.contains(&Family::of(prefix)))
            .map(|(prefix, _)| prefix)
            .collect();
        let before = self.before(
            swept
                .iter()
                .copied()
                .filter(|prefix| !self.goes_unnoticed(neighbor, prefix)),
        );
        if let Some(state) = self.neighbors.get_mut(&neighbor) {
            for prefix in &swept {
                state.remove(prefix);
            }
            if !state.established && state.adj_rib_in.is_empty() {
                self.neighbors.remove(&neighbor);
            }
        }
        self.recompute(before, resolver)
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
        if !self
            .neighbors
            .get(&neighbor)
            .is_some_and(|state| state.established)
        {
            return Vec::new();
        }
        // A withdrawn path whose going cannot change the choice (most of
        // a table that is not the best) is only taken away.
        let withdrawn = update
            .withdrawn
            .iter()
            .filter(|prefix| !self.goes_unnoticed(neighbor, prefix));
        let touched = withdrawn.chain(update.announced.iter().map(|(prefix, _)| prefix));
        let before = self.before(touched.copied());
        let origins = self.origins.as_ref();
        let local_as = self.config.local_as;
        let Some(state) = self.neighbors.get_mut(&neighbor) else {
            return Vec::new();
        };
        for prefix in &update.withdrawn {
            state.remove(prefix);
        }
        let mut imported = SetCache::default();
        for (prefix, attributes) in &update.announced {
            let validity = validity_of(origins, local_as, prefix, attributes);
            let accepted = match state
                .settings
                .import
                .judge_validated(prefix, attributes, validity)
            {
                Outcome::Deny => None,
                Outcome::Permit(set) => Some(imported.apply(set, attributes)),
            };
            let import = state.record_import(*prefix, attributes, accepted);
            let received = Received {
                attributes: Arc::clone(attributes),
                stale: false,
                rank: 0,
                import,
                validity,
            };
            match state.adj_rib_in.get_mut(prefix) {
                // The rank stays until the decision runs again.
                Some(entry) => {
                    let rank = entry.rank;
                    *entry = Received { rank, ..received };
                }
                None => {
                    state.adj_rib_in.insert(*prefix, received);
                }
            }
        }
        let mut changes = self.recompute(before, resolver);
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
        for (prefix, received) in state.adj_rib_in.iter() {
            let accepted =
                match import.judge_validated(&prefix, &received.attributes, received.validity) {
                    Outcome::Deny => None,
                    Outcome::Permit(set) => Some(imported.apply(set, &received.attributes)),
                };
            if accepted.as_ref() != state.accepted(&prefix, received) {
                touched.push((prefix, accepted));
            }
        }
        let before = self.before(touched.iter().map(|(prefix, _)| *prefix));
        let Some(state) = self.neighbors.get_mut(&neighbor) else {
            return (Vec::new(), Export::default());
        };
        for (prefix, accepted) in touched {
            let Some(attributes) = state
                .adj_rib_in
                .get(&prefix)
                .map(|r| Arc::clone(&r.attributes))
            else {
                continue;
            };
            let import = state.record_import(prefix, &attributes, accepted);
            if let Some(received) = state.adj_rib_in.get_mut(&prefix) {
                received.import = import;
            }
        }
        state.settings.import = import;
        state.settings.export = export;
        let changes = self.recompute(before, resolver);
        (changes, self.export_all(neighbor))
    }

    /// Sets the networks we originate (ORIGIN IGP, empty AS_PATH): those
    /// not in `networks` any more are withdrawn.
    pub fn set_networks(&mut self, networks: &[IpNet], resolver: &dyn Resolver) -> Vec<BestChange> {
        let wanted: BTreeSet<IpNet> = networks.iter().map(IpNet::trunc).collect();
        let leaving: Vec<IpNet> = self
            .local
            .keys()
            .filter(|prefix| !wanted.contains(prefix))
            .copied()
            .collect();
        let coming: Vec<IpNet> = wanted
            .into_iter()
            .filter(|prefix| !self.local.contains_key(prefix))
            .collect();
        let before = self.before(leaving.iter().chain(&coming).copied());
        for prefix in &leaving {
            self.local.remove(prefix);
        }
        let attributes = Arc::new(Attributes::default());
        for prefix in coming {
            self.local.insert(prefix, Arc::clone(&attributes));
        }
        self.recompute(before, resolver)
    }

    /// Asks the resolver again about every path (the tunnels changed).
    pub fn revalidate(&mut self, resolver: &dyn Resolver) -> Vec<BestChange> {
        let mut prefixes: BTreeSet<IpNet> = self.local.keys().copied().collect();
        for state in self.neighbors.values() {
            prefixes.extend(state.adj_rib_in.keys());
        }
        let before = self.before(prefixes);
        self.recompute(before, resolver)
    }

    /// Runs the decision for each prefix, given its best paths before the
    /// table changed; the prefixes whose choice changed, with the paths'
    /// ranks set to the new choice.
    fn recompute(
        &mut self,
        before: Vec<(IpNet, Vec<Path>)>,
        resolver: &dyn Resolver,
    ) -> Vec<BestChange> {
        // A prefix named twice is decided once: each appears in the answer
        // once at most.
        let mut changes = Vec::new();
        let mut decided: BTreeSet<IpNet> = BTreeSet::new();
        for (prefix, old) in before {
            if !decided.insert(prefix) {
                continue;
            }
            let paths = self.decide(&prefix, resolver);
            self.rank(&prefix, &paths);
            if old != paths {
                changes.push(BestChange {
                    prefix,
                    paths,
                    before: first_neighbor(&old),
                });
            }
        }
        changes
    }

    /// Whether taking `neighbor`'s path to `prefix` away leaves the best
    /// path(s) as they are, so the decision need not run again (the ranks
    /// are the decision over the table as it is). Only a path that is not
    /// among them can go unnoticed, and only when it cannot be one of the
    /// paths the MED step compares, or beats none of them there.
    ///
    /// Why: the steps before MED keep the paths with the greatest
    /// [`preference`], so a path with less went there and its going
    /// changes nothing after. At the MED step a path takes away others of
    /// its neighboring AS with a higher MED; one that takes none away
    /// leaves the rest as they were. The steps after keep the greatest
    /// again and sort what is left, of which the path was not in the
    /// first `max_paths`. Whether the path resolves or loops is not asked:
    /// one that is not in the running changes nothing either way. When in
    /// doubt, the answer is no and the decision runs.
    fn goes_unnoticed(&self, neighbor: NeighborId, prefix: &IpNet) -> bool {
        if self.local.contains_key(prefix) {
            return true;
        }
        let Some(state) = self.neighbors.get(&neighbor) else {
            return false;
        };
        // Not there: nothing goes.
        let Some(received) = state.adj_rib_in.get(prefix) else {
            return true;
        };
        if received.rank != 0 {
            return false;
        }
        // Denied by the import policy: never in the running.
        let Some(leaving) = state.accepted(prefix, received) else {
            return true;
        };
        // Among the others' paths, as the import policy took them: the
        // best, and any of the same neighboring AS and preference with a
        // higher MED (which this path may have beaten).
        let ours = preference(leaving);
        let (as_, med) = med_of(leaving);
        let mut best = None;
        let mut beaten = false;
        for (id, other) in &self.neighbors {
            if *id == neighbor {
                continue;
            }
            let Some(received) = other.adj_rib_in.get(prefix) else {
                continue;
            };
            let Some(attributes) = other.accepted(prefix, received) else {
                continue;
            };
            if received.rank == 1 {
                best = Some(preference(attributes));
            }
            let (other_as, other_med) = med_of(attributes);
            beaten |= other_as == as_ && other_med > med && preference(attributes) == ours;
        }
        // No best path: nothing is in the running.
        let Some(reached) = best else {
            return true;
        };
        match ours.cmp(&reached) {
            Ordering::Less => true,
            // It would be best, were it in the running: not worth a second
            // guess.
            Ordering::Greater => false,
            Ordering::Equal => !beaten,
        }
    }

    /// Marks each neighbor's path to `prefix` with its place in `paths`.
    fn rank(&mut self, prefix: &IpNet, paths: &[Path]) {
        for (id, state) in &mut self.neighbors {
            if let Some(received) = state.adj_rib_in.get_mut(prefix) {
                received.rank = paths
                    .iter()
                    .position(|path| path.source == Source::Neighbor(*id))
                    .and_then(|at| u8::try_from(at + 1).ok())
                    .unwrap_or(0);
            }
        }
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
                let received = state.adj_rib_in.get(prefix)?;
                let attributes = state.accepted(prefix, received)?;
                // Our own AS in the path, or our identifier as originator:
                // a loop (RFC 4271 9.1.2, RFC 4456 8).
                if attributes.contains_as(self.config.local_as)
                    || attributes.originator_id() == Some(self.config.router_id)
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
                    router_id: attributes
                        .originator_id()
                        .unwrap_or(state.settings.router_id),
                    neighbor: Some(*id),
                })
            })
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        keep_best(&mut candidates, |candidate| {
            preference(&candidate.path.attributes)
        });
        // MED compares only paths from the same neighboring AS: a path
        // goes when another from its AS has a lower MED.
        let beaten: Vec<bool> = candidates
            .iter()
            .map(|candidate| {
                let (as_, med) = med_of(&candidate.path.attributes);
                candidates.iter().any(|other| {
                    let (other_as, other_med) = med_of(&other.path.attributes);
                    other_as == as_ && other_med < med
                })
            })
            .collect();
        let mut beaten = beaten.into_iter();
        candidates.retain(|_| !beaten.next().unwrap_or(false));
        keep_best(&mut candidates, |candidate| candidate.ebgp);
        candidates.sort_by_key(|candidate| (candidate.router_id, candidate.neighbor));
        // A rank is one byte.
        candidates.truncate(self.config.max_paths.clamp(1, usize::from(u8::MAX)));
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
                .map(|(prefix, attributes)| (prefix, Arc::clone(attributes)))
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
        let mut prefixes = self.best_prefixes();
        if let Some(state) = self.neighbors.get(&neighbor) {
            prefixes.extend(state.adj_rib_out.keys());
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
        let path = &self.first_best(prefix)?;
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
            out.next_hop = NextHop::new(Some(next_hop), link_local_next_hop);
            if to_ebgp {
                out.as_path = out.as_path.prepended(local_as);
                out.set_local_pref(None);
                out.change_rare(|rare| {
                    rare.originator_id = None;
                    rare.cluster_list = Box::default();
                    if rare
                        .extended_communities
                        .iter()
                        .any(|community| !extended_transitive(*community))
                    {
                        let mut kept = std::mem::take(&mut rare.extended_communities).into_vec();
                        kept.retain(|community| extended_transitive(*community));
                        rare.extended_communities = kept.into_boxed_slice();
                    }
                });
                if path.source != Source::Local {
                    out.set_med(None);
                }
            } else {
                out.set_local_pref(Some(attributes.local_pref().unwrap_or(DEFAULT_LOCAL_PREF)));
            }
            Arc::new(out)
        });
        let export = &to.settings.export;
        let validity = match path.source {
            Source::Neighbor(from) if export.matches_rpki() => {
                self.validity(from, prefix).unwrap_or(Validity::NotFound)
            }
            _ => Validity::NotFound,
        };
        match export.judge_validated(prefix, &outgoing, validity) {
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

/// Whether an extended community may leave the AS: its type's T bit
/// (0x40) is clear (RFC 4360 3).
fn extended_transitive(community: u64) -> bool {
    community.to_be_bytes()[0] & 0x40 == 0
}

/// Keeps the candidates with the greatest key.
fn keep_best<K: Ord>(candidates: &mut Vec<Candidate>, key: impl Fn(&Candidate) -> K) {
    if let Some(best) = candidates.iter().map(&key).max() {
        candidates.retain(|candidate| key(candidate) == best);
    }
}

/// What the steps before MED compare, greatest first: the highest
/// LOCAL_PREF, the shortest AS_PATH, the lowest ORIGIN (RFC 4271
/// 9.1.2.2 a-b, 9.1.1), as one key, since each step keeps the paths equal
/// in the ones before.
fn preference(attributes: &Attributes) -> (u32, Reverse<usize>, Reverse<Origin>) {
    (
        attributes.local_pref().unwrap_or(DEFAULT_LOCAL_PREF),
        Reverse(attributes.as_path_len()),
        Reverse(attributes.origin),
    )
}

/// The neighboring AS and MED a path is compared by (RFC 4271 9.1.2.2 c:
/// a missing MED is the lowest).
fn med_of(attributes: &Attributes) -> (Option<Asn>, u32) {
    (attributes.first_as(), attributes.med().unwrap_or(0))
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
mod tests;
