//! The RIB: every owner's routes per prefix, the choice of the one the
//! kernel gets, and what must change outside when anything moves. Pure: no
//! I/O, no clock.
//!
//! In: `offer`/`withdraw` (an owner's routes), `mark_stale` then
//! `withdrawal_order` and `withdraw_listed` (an owner that went away and
//! came back, or did not), `adopt`/`sweep_adopted` (what
//! was in the kernel at start), `set_tunnels` (wgd's view of the tunnels),
//! `register`/`unregister` (nexthop tracking), `set_sources` (the routes'
//! preferred source addresses, and which of them the host has),
//! `fib_failed` (the kernel refused a route). Out: a `Changes` per call
//! (FIB operations, AllowedIPs operations for multi-peer tunnels, nexthop
//! events), a `RouteStatus` per route, and listings.
//!
//! Per prefix, the best route among those whose nexthops resolve onto a
//! tunnel that is up with a live peer is installed: lowest distance, then
//! lowest metric, then the route already installed (no flap on a tie), then
//! the owner's name. A route whose nexthops are down is queued, kept and
//! installed when they come back; one beaten by a better route waits in
//! standby. A nexthop whose BFD session fell from Up (the view's
//! `bfd_down`) is down too, whatever the tunnel and handshakes say.
//! Nexthops resolve onto tunnel subnets (and the far ends of
//! point-to-point addresses) only, never over routes the bridge installed,
//! so a learned route cannot make its own nexthop look reachable. An IPv4
//! route may go through an IPv6 nexthop (RFC 8950): it resolves as the
//! same nexthop of an IPv6 route would, and a link-local one must name its
//! tunnel.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use std::net::IpAddr;
use std::sync::Arc;
use wgd_bgp::prefix_map::PrefixMap;

use ipnet::IpNet;

use crate::policy::{self, Refusal};
use crate::route::{
    AllowedIpsOp, Changes, FibNexthop, FibOp, NexthopEvent, NexthopSpec, Owner, RouteSpec,
    ScopedAddress, Sources, TunnelInfo, TunnelView,
};

/// Settings of the RIB, from `[bridge]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibConfig {
    /// Take nexthops that are not on one of wgd's tunnels (the kernel
    /// resolves them).
    pub allow_other_interfaces: bool,
    /// Routes an owner may have at most; 0 is no limit.
    pub prefix_limit: u32,
    /// Limits for named owners, over `prefix_limit`.
    pub owner_prefix_limits: BTreeMap<String, u32>,
}

impl RibConfig {
    pub fn limit_of(&self, owner: &Owner) -> u32 {
        self.owner_prefix_limits
            .get(owner.as_str())
            .copied()
            .unwrap_or(self.prefix_limit)
    }
}

/// What became of a route, as its owner is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteStatus {
    Installed,
    Refused(String),
    /// Kept; its nexthops are down (the reason says which).
    Queued(String),
    /// Kept; another owner's better route is installed.
    Standby {
        installed_owner: Owner,
    },
    Withdrawn,
    /// Selected, but the kernel refused it.
    Failed(String),
}

impl RouteStatus {
    pub fn reason(&self) -> String {
        match self {
            RouteStatus::Installed | RouteStatus::Withdrawn => String::new(),
            RouteStatus::Refused(reason)
            | RouteStatus::Queued(reason)
            | RouteStatus::Failed(reason) => reason.clone(),
            RouteStatus::Standby { installed_owner } => {
                format!("the route of {installed_owner} is preferred")
            }
        }
    }
}

/// One route as `wgd routes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    pub prefix: IpNet,
    pub owner: Owner,
    pub nexthops: Vec<NexthopSpec>,
    pub distance: u8,
    pub metric: u32,
    pub status: RouteStatus,
    pub stale: bool,
}

/// Which routes to list; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct RouteFilter {
    pub owner: Option<Owner>,
    pub prefix: Option<IpNet>,
    pub tunnel: Option<String>,
}

/// Counts per owner, for statistics and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerCounts {
    pub routes: u64,
    pub installed: u64,
    pub queued: u64,
    pub standby: u64,
    pub stale: u64,
    pub failed: u64,
}

/// An owner's route as the RIB keeps it: a [`RouteSpec`] without its
/// prefix (the slot's key), whose nexthops are shared by every route with
/// the same ones (see [`intern`]), its owner by number (see [`Owners`]).
/// 16 bytes.
#[derive(Debug, Clone)]
struct Candidate {
    nexthops: Shared<NexthopSpec>,
    metric: u32,
    owner: OwnerId,
    distance: u8,
    marks: Marks,
}

impl Candidate {
    fn stale(&self) -> bool {
        matches!(self.marks, Marks::Stale | Marks::StaleInstalled)
    }

    /// The kernel has this route (the slot's `installed` is its nexthops
    /// as resolved). Kept here rather than an owner beside the installed
    /// nexthops: 8 bytes less per prefix.
    fn installed(&self) -> bool {
        matches!(self.marks, Marks::Installed | Marks::StaleInstalled)
    }

    fn set_stale(&mut self, stale: bool) {
        self.marks = Marks::of(stale, self.installed());
    }

    fn set_installed(&mut self, installed: bool) {
        self.marks = Marks::of(self.stale(), installed);
    }
}

/// A candidate's two flags in one byte (two `bool`s would make it 24
/// bytes): its values are few, so the byte's others tell [`Candidates`]'
/// variants apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marks {
    Fresh,
    Stale,
    Installed,
    StaleInstalled,
}

impl Marks {
    fn of(stale: bool, installed: bool) -> Self {
        match (stale, installed) {
            (false, false) => Marks::Fresh,
            (true, false) => Marks::Stale,
            (false, true) => Marks::Installed,
            (true, true) => Marks::StaleInstalled,
        }
    }
}

/// An owner as a candidate keeps it: its number in [`Owners`], 2 bytes
/// where an [`Owner`] is an 8-byte pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OwnerId(u16);

/// The owners the RIB has met, numbered in that order and never
/// forgotten: they are few (neighbors, gRPC sessions, FPM clients, the
/// config), and a number stays valid in every slot that holds it.
#[derive(Debug, Default)]
struct Owners {
    names: Vec<Owner>,
    ids: BTreeMap<Owner, OwnerId>,
}

impl Owners {
    fn find(&self, owner: &Owner) -> Option<OwnerId> {
        self.ids.get(owner).copied()
    }

    /// The owner's number, given one if it has none; `None` once 65,536
    /// owners have been met.
    fn intern(&mut self, owner: &Owner) -> Option<OwnerId> {
        if let Some(id) = self.find(owner) {
            return Some(id);
        }
        let id = OwnerId(u16::try_from(self.names.len()).ok()?);
        self.names.push(owner.clone());
        self.ids.insert(owner.clone(), id);
        Some(id)
    }

    fn name(&self, id: OwnerId) -> &Owner {
        &self.names[usize::from(id.0)]
    }
}

/// A prefix's candidates. Most prefixes have one, kept in place; two or
/// more are behind a thin pointer (rare: a prefix two owners give). 16
/// bytes, the size of one candidate: the variant is told by a value the
/// candidate's [`Marks`] never take, where a `SmallVec` adds 8 bytes for
/// its length (and a boxed slice's length would not fit beside the marks).
#[derive(Debug, Clone, Default)]
enum Candidates {
    #[default]
    None,
    One(Candidate),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Candidate>>),
}

impl Candidates {
    fn push(&mut self, candidate: Candidate) {
        *self = match std::mem::take(self) {
            Candidates::None => Candidates::One(candidate),
            Candidates::One(first) => Candidates::Many(Box::new(vec![first, candidate])),
            Candidates::Many(mut many) => {
                many.push(candidate);
                Candidates::Many(many)
            }
        };
    }

    fn remove(&mut self, index: usize) -> Candidate {
        match std::mem::take(self) {
            Candidates::None => unreachable!("remove from no candidates"),
            Candidates::One(only) => {
                assert_eq!(index, 0, "remove past the only candidate");
                only
            }
            Candidates::Many(mut many) => {
                let removed = many.remove(index);
                *self = match many.len() {
                    0 => Candidates::None,
                    1 => Candidates::One(many.remove(0)),
                    _ => Candidates::Many(many),
                };
                removed
            }
        }
    }
}

impl std::ops::Deref for Candidates {
    type Target = [Candidate];

    fn deref(&self) -> &[Candidate] {
        match self {
            Candidates::None => &[],
            Candidates::One(candidate) => std::slice::from_ref(candidate),
            Candidates::Many(many) => many,
        }
    }
}

impl std::ops::DerefMut for Candidates {
    fn deref_mut(&mut self) -> &mut [Candidate] {
        match self {
            Candidates::None => &mut [],
            Candidates::One(candidate) => std::slice::from_mut(candidate),
            Candidates::Many(many) => many,
        }
    }
}

impl<'a> IntoIterator for &'a Candidates {
    type Item = &'a Candidate;
    type IntoIter = std::slice::Iter<'a, Candidate>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Candidates {
    type Item = &'a mut Candidate;
    type IntoIter = std::slice::IterMut<'a, Candidate>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// What a prefix's slot holds: its owners' routes, and what wgd believes
/// the kernel has for it. 24 bytes, kept once for every prefix that holds
/// the same (see [`Slot`]).
#[derive(Debug, Clone, Default)]
struct SlotBody {
    candidates: Candidates,
    /// The kernel's route, its nexthops shared by every route with the
    /// same ones (see [`intern`]): the route of the candidate marked
    /// `installed`, or, when none is, one adopted at start that no owner
    /// has claimed yet (the prefix is in `Context::adopted`). The kernel's
    /// refusals are in `Context::failed`, not here: they are rare.
    installed: Option<Shared<FibNexthop>>,
}

impl SlotBody {
    /// The owner of the kernel's route, if an owner's.
    fn installed_owner(&self) -> Option<OwnerId> {
        self.candidates
            .iter()
            .find(|candidate| candidate.installed())
            .map(|candidate| candidate.owner)
    }

    fn is_empty(&self) -> bool {
        self.candidates.is_empty() && self.installed.is_none()
    }

    /// What tells two bodies apart: the nexthop sets are interned, so a
    /// set is known by its address (a full table's bodies are told apart
    /// without reading a nexthop).
    fn key(&self) -> impl Iterator<Item = (usize, u32, u16, u8, u8)> + '_ {
        let installed = self
            .installed
            .iter()
            .map(|set| (Arc::as_ptr(&set.0) as usize, 0, u16::MAX, 0, u8::MAX));
        let candidates = self.candidates.iter().map(|candidate| {
            (
                Arc::as_ptr(&candidate.nexthops.0) as usize,
                candidate.metric,
                candidate.owner.0,
                candidate.distance,
                candidate.marks as u8,
            )
        });
        installed.chain(candidates)
    }
}

impl PartialEq for SlotBody {
    fn eq(&self, other: &Self) -> bool {
        self.installed.is_some() == other.installed.is_some()
            && self.candidates.len() == other.candidates.len()
            && self.key().eq(other.key())
    }
}

impl Eq for SlotBody {}

impl std::hash::Hash for SlotBody {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.candidates.len());
        for part in self.key() {
            part.hash(state);
        }
    }
}

/// A prefix's slot: a pointer to its [`SlotBody`], 8 bytes where the body
/// takes 24. Bodies are interned ([`Bodies`]): a full table from one
/// neighbor through one tunnel has a handful of distinct ones (the same
/// owner, nexthops, distance, metric and kernel route for most of a
/// million prefixes), so each prefix pays for the pointer and its key.
/// A slot is changed by taking its body out ([`Slot::body`]), changing
/// that and interning the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot(Arc<SlotBody>);

impl Slot {
    /// A copy of the body to change (the candidates' nexthops are shared,
    /// not copied).
    fn body(&self) -> SlotBody {
        SlotBody::clone(&self.0)
    }
}

impl std::ops::Deref for Slot {
    type Target = SlotBody;

    fn deref(&self) -> &SlotBody {
        &self.0
    }
}

impl std::borrow::Borrow<SlotBody> for Slot {
    fn borrow(&self) -> &SlotBody {
        &self.0
    }
}

/// Every distinct slot body, once. Bodies no slot holds any more are
/// dropped when the set has doubled since it was last swept, so that a
/// table whose routes differ (a metric per route) costs a sweep now and
/// then, not one per change; and when the set holds more than twice as
/// many bodies as there are slots (see [`Bodies::trim`]), so that an
/// owner that leaves with a body per prefix does not leave them behind.
#[derive(Debug, Default)]
struct Bodies {
    set: HashSet<Slot, foldhash::fast::RandomState>,
    /// How many bodies the last sweep left.
    kept: usize,
    /// The empty body, which every new slot starts from.
    empty: Option<Slot>,
}

impl Bodies {
    /// The slot holding `body`: the shared one when a slot holds it already.
    fn intern(&mut self, body: SlotBody) -> Slot {
        if let Some(slot) = self.set.get(&body) {
            return slot.clone();
        }
        if self.set.len() >= (2 * self.kept).max(1024) {
            self.set.retain(|slot| Arc::strong_count(&slot.0) > 1);
            self.kept = self.set.len();
        }
        let slot = Slot(Arc::new(body));
        self.set.insert(slot.clone());
        slot
    }

    fn empty(&mut self) -> Slot {
        if let Some(empty) = &self.empty {
            return empty.clone();
        }
        let empty = self.intern(SlotBody::default());
        self.empty = Some(empty.clone());
        empty
    }

    /// Puts `body` in `slot`, interned; a body that did not change stays
    /// as it is (choosing every prefix again after a tunnel change mostly
    /// changes nothing).
    fn store(&mut self, slot: &mut Slot, body: SlotBody) {
        if *slot.0 != body {
            *slot = self.intern(body);
        }
    }

    /// Drops the bodies no slot holds once they outnumber the slots
    /// (there can be no more live bodies than slots), and the room they
    /// took.
    fn trim(&mut self, slots: usize) {
        if self.set.len() > 2 * slots.max(512) {
            self.set.retain(|slot| Arc::strong_count(&slot.0) > 1);
            self.set.shrink_to_fit();
            self.kept = self.set.len();
        }
    }
}

/// Which of an owner's routes a withdrawal takes: all, or the stale ones.
#[derive(Debug, Clone, Copy)]
pub struct Withdrawal<'a> {
    pub owner: &'a Owner,
    pub only_stale: bool,
}

impl<'a> Withdrawal<'a> {
    pub fn all(owner: &'a Owner) -> Self {
        Withdrawal {
            owner,
            only_stale: false,
        }
    }

    pub fn stale(owner: &'a Owner) -> Self {
        Withdrawal {
            owner,
            only_stale: true,
        }
    }
}

/// A set shared by every route with the same one, behind a thin pointer
/// (8 bytes in each route, where `Arc<[T]>` takes 16).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shared<T>(Arc<Box<[T]>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> std::borrow::Borrow<[T]> for Shared<T> {
    fn borrow(&self) -> &[T] {
        &self.0
    }
}

/// Interned sets, looked up once per route offered: foldhash (seeded per
/// process), where SipHash cost the engine a few percent of a full table.
type SharedSets<T> = HashSet<Shared<T>, foldhash::fast::RandomState>;

/// The shared copy of `items` in `sets`: a full table through a few
/// tunnels has a handful of nexthop sets, not one copy per route. Sets no
/// route uses any more are dropped now and then (there are few).
fn intern<T: Eq + std::hash::Hash>(sets: &mut SharedSets<T>, items: Vec<T>) -> Shared<T> {
    if let Some(shared) = sets.get(items.as_slice()) {
        return shared.clone();
    }
    if sets.len() >= 1024 {
        sets.retain(|set| Arc::strong_count(&set.0) > 1);
    }
    let shared = Shared(Arc::new(items.into_boxed_slice()));
    sets.insert(shared.clone());
    shared
}

/// How a route's nexthops stand against the tunnels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolution {
    Up(Vec<FibNexthop>),
    Down(String),
    Invalid(Refusal),
}

#[derive(Debug, Default)]
pub struct Rib {
    slots: PrefixMap<Slot>,
    /// What choosing a route needs besides its slot, apart from the slots
    /// so that a slot can be changed while its routes are chosen.
    context: Context,
    /// Routes per owner (for the prefix limit), and how many of them are
    /// stale (kept from before; they do not count against the limit).
    counts: BTreeMap<Owner, u32>,
    stale: BTreeMap<Owner, u32>,
    /// Registered nexthops per owner, with what they were last told.
    registered: BTreeMap<Owner, BTreeMap<ScopedAddress, NexthopEvent>>,
    /// Every distinct set of nexthops owners give, once (see [`intern`]).
    spec_sets: SharedSets<NexthopSpec>,
    /// Every distinct slot body, once (see [`Slot`]).
    bodies: Bodies,
}

#[derive(Debug, Default)]
struct Context {
    config: RibConfig,
    view: TunnelView,
    /// The prefixes the bridge put in a multi-peer tunnel's peer's
    /// AllowedIPs, by (tunnel, peer public key).
    allowed: BTreeMap<(String, String), BTreeSet<IpNet>>,
    /// Every distinct set of installed nexthops, once: a full table through
    /// a few tunnels has a handful, not one copy per route.
    nexthop_sets: SharedSets<FibNexthop>,
    sources: SourceChoice,
    /// Prefixes whose kernel route was adopted at start and that no owner
    /// has claimed yet (after a restart with a full table, a million for
    /// the startup hold; none after it).
    adopted: PrefixMap<()>,
    /// The kernel refused the selected route of these prefixes: why.
    failed: PrefixMap<String>,
    /// The owners the candidates name by number.
    owners: Owners,
}

/// The `src` of the routes: the configured sources, of those the host
/// has. Not kept per route: the kernel's routes always carry what this
/// gives for their nexthops, and a change of it re-programs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SourceChoice {
    sources: Sources,
    /// The configured addresses the host has now.
    present: BTreeSet<IpAddr>,
}

impl SourceChoice {
    /// The source of a route through `nexthops` (sorted): the one of its
    /// first nexthop's tunnel (a kernel route has one `src`, and ECMP
    /// over tunnels with sources of their own is rare), else the
    /// bridge's; none while the host lacks that address, rather than a
    /// route the kernel refuses.
    fn of(&self, prefix: &IpNet, nexthops: &[FibNexthop]) -> Option<IpAddr> {
        if self.present.is_empty() {
            return None;
        }
        let tunnel = nexthops
            .first()
            .map_or("", |nexthop| nexthop.tunnel.as_str());
        self.sources
            .for_route(prefix, tunnel)
            .filter(|address| self.present.contains(address))
    }
}

impl Context {
    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            view: &self.view,
            config: &self.config,
            sources: &self.sources,
            owners: &self.owners,
        }
    }

    /// Chooses the prefix's route again in its slot (see [`Rib::reselect`]);
    /// whether the slot is left empty, to be removed.
    fn reselect(
        &mut self,
        prefix: IpNet,
        slot: &mut SlotBody,
        sweeping: bool,
        changes: &mut Changes,
    ) -> bool {
        let resolver = Resolver {
            view: &self.view,
            config: &self.config,
            sources: &self.sources,
            owners: &self.owners,
        };
        let mut state = SlotState {
            nexthop_sets: &mut self.nexthop_sets,
            allowed: &mut self.allowed,
            adopted: &mut self.adopted,
            failed: &mut self.failed,
        };
        reselect_slot(&resolver, &mut state, prefix, slot, sweeping, changes)
    }
}

impl Rib {
    fn resolver(&self) -> Resolver<'_> {
        self.context.resolver()
    }

    pub fn new(config: RibConfig) -> Self {
        Self {
            context: Context {
                config,
                ..Context::default()
            },
            ..Self::default()
        }
    }

    /// The RIB's structures by name, for a caller that measures what each
    /// holds by dropping them one at a time (`wgd-bench memory`).
    pub fn into_structures(self) -> Vec<(&'static str, Box<dyn std::any::Any>)> {
        vec![
            ("slots", Box::new(self.slots)),
            ("nexthop sets", Box::new(self.context.nexthop_sets)),
            ("AllowedIPs", Box::new(self.context.allowed)),
            ("adopted", Box::new(self.context.adopted)),
            ("refusals", Box::new(self.context.failed)),
            ("spec sets", Box::new(self.spec_sets)),
            ("slot bodies", Box::new(self.bodies)),
        ]
    }

    pub fn set_config(&mut self, config: RibConfig) {
        self.context.config = config;
    }

    pub fn config(&self) -> &RibConfig {
        &self.context.config
    }

    pub fn tunnels(&self) -> &TunnelView {
        &self.context.view
    }

    /// An owner's route for a prefix, added or replacing the owner's
    /// previous one. A refused route leaves the previous one as it was.
    pub fn offer(&mut self, owner: &Owner, spec: RouteSpec, changes: &mut Changes) -> RouteStatus {
        if let Err(refusal) = self.check(owner, &spec) {
            return RouteStatus::Refused(refusal.to_string());
        }
        let Some(id) = self.context.owners.intern(owner) else {
            return RouteStatus::Refused(format!(
                "{owner}: the bridge has met {} owners, its most",
                u16::MAX as usize + 1
            ));
        };
        let prefix = spec.prefix;
        let nexthops = intern(&mut self.spec_sets, spec.nexthops);
        let bodies = &mut self.bodies;
        // One lookup of the slot for the whole offer (a full table is a
        // million of them).
        let slot = self.slots.get_or_insert_with(prefix, || bodies.empty());
        let mut body = slot.body();
        match body
            .candidates
            .iter_mut()
            .find(|candidate| candidate.owner == id)
        {
            Some(candidate) => {
                candidate.nexthops = nexthops;
                candidate.distance = spec.distance;
                candidate.metric = spec.metric;
                if candidate.stale() {
                    candidate.set_stale(false);
                    if let Some(stale) = self.stale.get_mut(owner) {
                        *stale = stale.saturating_sub(1);
                    }
                }
            }
            None => {
                body.candidates.push(Candidate {
                    nexthops,
                    metric: spec.metric,
                    owner: id,
                    distance: spec.distance,
                    marks: Marks::Fresh,
                });
                *self.counts.entry(owner.clone()).or_default() += 1;
            }
        }
        self.context.reselect(prefix, &mut body, false, changes);
        let status = body
            .candidates
            .iter()
            .find(|candidate| candidate.owner == id)
            .map_or(RouteStatus::Withdrawn, |candidate| {
                self.context.resolver().candidate_status(
                    &prefix,
                    &body,
                    candidate,
                    self.context.failed.get(&prefix),
                )
            });
        self.bodies.store(slot, body);
        status
    }

    fn check(&self, owner: &Owner, spec: &RouteSpec) -> Result<(), Refusal> {
        policy::check_prefix(&spec.prefix)?;
        if spec.nexthops.is_empty() {
            return Err(Refusal::NoNexthop);
        }
        for nexthop in &spec.nexthops {
            policy::check_route_nexthop(&spec.prefix, nexthop)?;
        }
        if let Some(tunnel) = self.resolver().endpoint_host_route(&spec.prefix) {
            return Err(Refusal::EndpointHostRoute { tunnel });
        }
        let limit = self.context.config.limit_of(owner);
        if limit > 0 {
            let live = self
                .counts
                .get(owner)
                .copied()
                .unwrap_or(0)
                .saturating_sub(self.stale.get(owner).copied().unwrap_or(0));
            let id = self.context.owners.find(owner);
            let has = || {
                self.slots
                    .get(&spec.prefix)
                    .is_some_and(|slot| slot.candidates.iter().any(|c| Some(c.owner) == id))
            };
            if live >= limit && !has() {
                return Err(Refusal::OverPrefixLimit { limit });
            }
        }
        if let Resolution::Invalid(refusal) = self.resolver().resolve(&spec.prefix, &spec.nexthops)
        {
            return Err(refusal);
        }
        Ok(())
    }

    /// Withdraws an owner's route for a prefix.
    pub fn withdraw(&mut self, owner: &Owner, prefix: IpNet, changes: &mut Changes) -> RouteStatus {
        let Some(slot) = self.slots.get_mut(&prefix) else {
            return RouteStatus::Refused(format!("{owner} has no route for {prefix}"));
        };
        let id = self.context.owners.find(owner);
        let Some(index) = slot.candidates.iter().position(|c| Some(c.owner) == id) else {
            return RouteStatus::Refused(format!("{owner} has no route for {prefix}"));
        };
        let mut body = slot.body();
        if body.candidates.remove(index).stale()
            && let Some(stale) = self.stale.get_mut(owner)
        {
            *stale = stale.saturating_sub(1);
        }
        if let Some(count) = self.counts.get_mut(owner) {
            *count = count.saturating_sub(1);
        }
        let empty = self.context.reselect(prefix, &mut body, false, changes);
        if empty {
            self.slots.remove(&prefix);
            self.bodies.trim(self.slots.len());
        } else {
            self.bodies.store(slot, body);
        }
        RouteStatus::Withdrawn
    }

    /// Marks every route of an owner stale (it went away; a session that
    /// comes back re-claims by offering them again). Returns how many.
    pub fn mark_stale(&mut self, owner: &Owner) -> u64 {
        let mut marked = 0;
        let id = self.context.owners.find(owner);
        for slot in self.slots.values_mut() {
            if !slot.candidates.iter().any(|c| Some(c.owner) == id) {
                continue;
            }
            let mut body = slot.body();
            for candidate in &mut body.candidates {
                if Some(candidate.owner) == id {
                    candidate.set_stale(true);
                    marked += 1;
                }
            }
            self.bodies.store(slot, body);
        }
        self.stale.insert(owner.clone(), marked);
        u64::from(marked)
    }

    /// Withdraws the owner's routes that are still stale. Returns how many.
    /// (At once: the engine takes them in parts, see `Engine::withdraw_in_parts`.)
    #[cfg(test)]
    pub fn sweep_stale(&mut self, owner: &Owner, changes: &mut Changes) -> u64 {
        let order = self.withdrawal_order(&Withdrawal::stale(owner));
        self.withdraw_listed(owner, &order, changes)
    }

    /// Withdraws every route of an owner.
    /// (At once: the engine takes them in parts, see `Engine::withdraw_in_parts`.)
    #[cfg(test)]
    pub fn withdraw_all(&mut self, owner: &Owner, changes: &mut Changes) -> u64 {
        let order = self.withdrawal_order(&Withdrawal::all(owner));
        self.withdraw_listed(owner, &order, changes)
    }

    /// The prefixes of the routes `which` names, in the order their
    /// removal should reach the kernel: its FIB trie takes deletions of
    /// neighbouring prefixes one after another at several times the cost
    /// of scattered ones (it recomputes a node's suffix length over its
    /// children for each), so they go in bit-reversed order. A withdrawal
    /// of a full table takes this list in parts (see
    /// `Engine::withdraw_in_parts`), each part's kernel operations made
    /// and written before the next: only the prefixes are held at once.
    pub fn withdrawal_order(&self, which: &Withdrawal<'_>) -> Vec<IpNet> {
        let Some(id) = self.context.owners.find(which.owner) else {
            return Vec::new();
        };
        let mut prefixes: Vec<IpNet> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                slot.candidates
                    .iter()
                    .any(|c| c.owner == id && (c.stale() || !which.only_stale))
            })
            .map(|(prefix, _)| prefix)
            .collect();
        prefixes.sort_unstable_by_key(|prefix| match prefix {
            IpNet::V4(net) => (0, u128::from(u32::from(net.addr()).reverse_bits())),
            IpNet::V6(net) => (1, u128::from(net.addr()).reverse_bits()),
        });
        prefixes
    }

    /// Withdraws the owner's routes to `prefixes`, in that order. Returns
    /// how many.
    pub fn withdraw_listed(
        &mut self,
        owner: &Owner,
        prefixes: &[IpNet],
        changes: &mut Changes,
    ) -> u64 {
        for prefix in prefixes {
            self.withdraw(owner, *prefix, changes);
        }
        prefixes.len() as u64
    }

    /// The preferred source addresses of the routes, and which of them
    /// the host has (`present`): the installed routes whose `src` changes
    /// with them are replaced in place. Returns whether anything changed.
    pub fn set_sources(
        &mut self,
        sources: Sources,
        present: BTreeSet<IpAddr>,
        changes: &mut Changes,
    ) -> bool {
        let present = present
            .intersection(&sources.addresses())
            .copied()
            .collect();
        let new = SourceChoice { sources, present };
        if new == self.context.sources {
            return false;
        }
        let old = std::mem::replace(&mut self.context.sources, new);
        let new = &self.context.sources;
        for (prefix, slot) in self.slots.iter() {
            let Some(installed) = &slot.installed else {
                continue;
            };
            let source = new.of(&prefix, installed);
            if source != old.of(&prefix, installed) {
                changes.fib.push(FibOp::Replace {
                    prefix,
                    nexthops: installed.to_vec(),
                    source,
                });
            }
        }
        true
    }

    /// The `src` an installed route through `nexthops` carries.
    pub fn source_of(&self, prefix: &IpNet, nexthops: &[FibNexthop]) -> Option<IpAddr> {
        self.context.sources.of(prefix, nexthops)
    }

    pub fn sources(&self) -> &Sources {
        &self.context.sources.sources
    }

    /// Takes a route found in the kernel at start as installed, with no
    /// owner: it stays as it is until an owner claims the prefix or
    /// `sweep_adopted` runs. Its `src` (`source`) is made what the
    /// sources say, in place.
    pub fn adopt(
        &mut self,
        prefix: IpNet,
        nexthops: Vec<FibNexthop>,
        source: Option<IpAddr>,
        changes: &mut Changes,
    ) {
        if self.is_installed(&prefix) {
            return;
        }
        let mut nexthops: Vec<FibNexthop> = nexthops
            .into_iter()
            .map(|nexthop| self.locate(nexthop))
            .collect();
        // In the order the RIB's own choices have, so a claim compares alike.
        nexthops.sort();
        let wanted = self.context.sources.of(&prefix, &nexthops);
        if wanted != source {
            changes.fib.push(FibOp::Replace {
                prefix,
                nexthops: nexthops.clone(),
                source: wanted,
            });
        }
        let installed = intern(&mut self.context.nexthop_sets, nexthops);
        // The device still has the AllowedIPs the previous run gave it.
        note_allowed(
            &mut self.context.allowed,
            prefix,
            &[],
            &installed,
            &mut Changes::default(),
        );
        self.context.adopted.insert(prefix, ());
        let bodies = &mut self.bodies;
        let slot = self.slots.get_or_insert_with(prefix, || bodies.empty());
        let mut body = slot.body();
        body.installed = Some(installed);
        self.bodies.store(slot, body);
    }

    /// Names the tunnel and peer of an adopted nexthop from the view.
    fn locate(&self, mut nexthop: FibNexthop) -> FibNexthop {
        if let Some(tunnel) = self
            .context
            .view
            .tunnels
            .iter()
            .find(|tunnel| tunnel.ifindex == nexthop.ifindex)
        {
            nexthop.tunnel = tunnel.name.clone();
            if tunnel.peers.len() > 1
                && let Some(gateway) = nexthop.gateway
            {
                nexthop.peer = peer_for(tunnel, gateway).map(|peer| peer.public_key.clone());
            }
        }
        nexthop
    }

    /// The end of the startup hold: adopted routes no owner claimed leave
    /// the kernel; claimed prefixes whose owner's route cannot be installed
    /// leave it too. Returns how many were removed.
    pub fn sweep_adopted(&mut self, changes: &mut Changes) -> u64 {
        let adopted: Vec<IpNet> = self.context.adopted.keys().collect();
        let before = changes.fib.len();
        for prefix in &adopted {
            self.reselect(*prefix, true, changes);
        }
        changes.fib[before..]
            .iter()
            .filter(|op| matches!(op, FibOp::Remove { .. }))
            .count() as u64
    }

    /// How many adopted routes no owner has claimed yet.
    pub fn adopted_count(&self) -> u64 {
        self.context.adopted.len() as u64
    }

    /// wgd's tunnels changed: every route is chosen again (nexthops that
    /// went down leave the kernel, those that came back return), and
    /// registered nexthops whose reachability changed are reported.
    /// Returns whether the view changed.
    pub fn set_tunnels(&mut self, view: TunnelView, changes: &mut Changes) -> bool {
        if view == self.context.view {
            return false;
        }
        self.context.view = view;
        let prefixes: Vec<IpNet> = self.slots.keys().collect();
        for prefix in prefixes {
            self.reselect(prefix, false, changes);
        }
        let owners: Vec<Owner> = self.registered.keys().cloned().collect();
        for owner in owners {
            let addresses: Vec<ScopedAddress> = self.registered[&owner].keys().cloned().collect();
            for address in addresses {
                let event = self.nexthop_event(&owner, address.clone());
                let known = self
                    .registered
                    .get_mut(&owner)
                    .and_then(|map| map.get_mut(&address))
                    .expect("registered above");
                if *known != event {
                    *known = event.clone();
                    changes.nexthops.push(event);
                }
            }
        }
        true
    }

    /// Follows a nexthop for an owner: the current state at once, then
    /// every change through `set_tunnels`.
    pub fn register(&mut self, owner: &Owner, address: ScopedAddress) -> NexthopEvent {
        let event = self.nexthop_event(owner, address.clone());
        self.registered
            .entry(owner.clone())
            .or_default()
            .insert(address, event.clone());
        event
    }

    pub fn unregister(&mut self, owner: &Owner, address: &ScopedAddress) {
        if let Some(map) = self.registered.get_mut(owner) {
            map.remove(address);
        }
    }

    /// An owner's session is gone for good: it follows nothing any more.
    pub fn forget_registrations(&mut self, owner: &Owner) {
        self.registered.remove(owner);
    }

    fn nexthop_event(&self, owner: &Owner, address: ScopedAddress) -> NexthopEvent {
        let nexthop = [address.to_spec()];
        // A route of the address's own family: it is checked as a gateway
        // of that family would be (a link-local one needs its tunnel).
        let host = IpNet::from(address.address);
        let checked = policy::check_route_nexthop(&host, &nexthop[0]).map_err(Resolution::Invalid);
        let resolution = checked.map_or_else(
            |invalid| invalid,
            |()| self.resolver().resolve(&host, &nexthop),
        );
        let (reachable, tunnel, reason) = match resolution {
            Resolution::Up(nexthops) => (true, Some(nexthops[0].tunnel.clone()), String::new()),
            Resolution::Down(reason) => (false, None, reason),
            Resolution::Invalid(refusal) => (false, None, refusal.to_string()),
        };
        NexthopEvent {
            owner: owner.clone(),
            address,
            reachable,
            tunnel,
            reason,
        }
    }

    /// The kernel refused the operation for `prefix`: the route is not
    /// what the RIB chose, and the reason is kept for the owner and
    /// listings until an attempt succeeds. `still_ours`: the kernel keeps a
    /// route of wgd's there (a refused replace leaves the old one), so the
    /// next attempt replaces it and a withdrawal removes it; otherwise the
    /// kernel has nothing of wgd's for the prefix.
    pub fn fib_failed(&mut self, prefix: IpNet, reason: String, still_ours: bool) {
        let Some(slot) = self.slots.get_mut(&prefix) else {
            return;
        };
        self.context.failed.insert(prefix, reason);
        if still_ours {
            return;
        }
        // The kernel has nothing of wgd's here: no candidate's route is in
        // it, and an adopted one has gone.
        let mut body = slot.body();
        for candidate in &mut body.candidates {
            candidate.set_installed(false);
        }
        self.context.adopted.remove(&prefix);
        let nexthops = body.installed.take();
        self.bodies.store(slot, body);
        note_allowed(
            &mut self.context.allowed,
            prefix,
            nexthops.as_deref().unwrap_or_default(),
            &[],
            &mut Changes::default(),
        );
    }

    /// Tries again the routes the kernel refused (a foreign route may have
    /// gone, an interface come back).
    pub fn retry_failed(&mut self, changes: &mut Changes) {
        let failed: Vec<IpNet> = self.context.failed.keys().collect();
        for prefix in failed {
            self.reselect(prefix, false, changes);
        }
    }

    /// Every route wgd believes the kernel has, with its nexthops (for an
    /// audit against the kernel).
    pub fn installed(&self) -> impl Iterator<Item = (IpNet, &[FibNexthop])> {
        self.slots.iter().filter_map(|(prefix, slot)| {
            slot.installed
                .as_ref()
                .filter(|_| !self.context.failed.contains_key(&prefix))
                .map(|installed| (prefix, &installed[..]))
        })
    }

    /// Endpoint addresses (of every peer in the view) that an installed
    /// route covers: each needs a host route pinned to the underlay, so
    /// that the tunnel's own packets do not go into a tunnel.
    pub fn covered_endpoints(&self) -> BTreeSet<IpAddr> {
        let mut covered = BTreeSet::new();
        for tunnel in &self.context.view.tunnels {
            for peer in &tunnel.peers {
                let Some(endpoint) = peer.endpoint.map(|e| e.ip()) else {
                    continue;
                };
                let max = IpNet::from(endpoint).max_prefix_len();
                let hit = (0..=max).any(|len| {
                    IpNet::new(endpoint, len).is_ok_and(|net| {
                        self.slots
                            .get(&net.trunc())
                            .is_some_and(|slot| slot.installed.is_some())
                    })
                });
                if hit {
                    covered.insert(endpoint);
                }
            }
        }
        covered
    }

    /// The prefixes the bridge put in each multi-peer tunnel peer's
    /// AllowedIPs, by (tunnel, peer public key).
    pub fn allowed_ips(&self) -> &BTreeMap<(String, String), BTreeSet<IpNet>> {
        &self.context.allowed
    }

    /// Whether wgd believes it has a kernel route for the prefix.
    pub fn is_installed(&self, prefix: &IpNet) -> bool {
        self.slots
            .get(prefix)
            .is_some_and(|slot| slot.installed.is_some())
    }

    pub fn installed_count(&self) -> u64 {
        self.slots
            .values()
            .filter(|slot| slot.installed.is_some())
            .count() as u64
    }

    /// Whether an owner has any route (stale or not).
    pub fn owner_routes(&self, owner: &Owner) -> u32 {
        self.counts.get(owner).copied().unwrap_or(0)
    }

    /// Every owner's routes, filtered; adopted routes no owner claimed are
    /// listed with owner `adopted`.
    pub fn routes(&self, filter: &RouteFilter) -> Vec<RouteRecord> {
        let mut records = Vec::new();
        let slots: Box<dyn Iterator<Item = (IpNet, &Slot)>> = match &filter.prefix {
            Some(prefix) => Box::new(
                self.slots
                    .get(prefix)
                    .map(|slot| (*prefix, slot))
                    .into_iter(),
            ),
            None => Box::new(self.slots.iter()),
        };
        for (prefix, slot) in slots {
            for candidate in &slot.candidates {
                let owner = self.context.owners.name(candidate.owner);
                if filter.owner.as_ref().is_some_and(|o| o != owner) {
                    continue;
                }
                if let Some(tunnel) = &filter.tunnel
                    && !self.spec_uses_tunnel(&prefix, &candidate.nexthops, tunnel)
                {
                    continue;
                }
                records.push(RouteRecord {
                    prefix,
                    owner: owner.clone(),
                    nexthops: candidate.nexthops.to_vec(),
                    distance: candidate.distance,
                    metric: candidate.metric,
                    status: self.resolver().candidate_status(
                        &prefix,
                        slot,
                        candidate,
                        self.context.failed.get(&prefix),
                    ),
                    stale: candidate.stale(),
                });
            }
            if let Some(installed) = &slot.installed
                && self.context.adopted.contains_key(&prefix)
            {
                let owner = Owner::adopted();
                if filter.owner.as_ref().is_some_and(|o| o != &owner) {
                    continue;
                }
                if let Some(tunnel) = &filter.tunnel
                    && !installed.iter().any(|n| &n.tunnel == tunnel)
                {
                    continue;
                }
                records.push(RouteRecord {
                    prefix,
                    owner,
                    nexthops: installed.iter().map(FibNexthop::to_spec).collect(),
                    distance: u8::MAX,
                    metric: 0,
                    status: RouteStatus::Installed,
                    stale: true,
                });
            }
        }
        records
    }

    /// Counts per owner (adopted routes under `adopted`).
    pub fn counts(&self) -> BTreeMap<Owner, OwnerCounts> {
        self.census().0
    }

    /// An owner's stale routes (kept from before it went away).
    pub fn stale_count(&self, owner: &Owner) -> u64 {
        self.stale.get(owner).copied().map_or(0, u64::from)
    }

    /// Counts per owner, and how many routes wgd believes the kernel has:
    /// one walk of the RIB for both.
    pub fn census(&self) -> (BTreeMap<Owner, OwnerCounts>, u64) {
        // Counted by owner number while walking (a full table walks a
        // million candidates every second: no lookup, no clone, no
        // allocation per route).
        let mut by_owner: Vec<OwnerCounts> =
            vec![OwnerCounts::default(); self.context.owners.names.len()];
        let mut adopted = OwnerCounts::default();
        let mut installed = 0;
        for (prefix, slot) in self.slots.iter() {
            for candidate in &slot.candidates {
                let entry = &mut by_owner[usize::from(candidate.owner.0)];
                entry.routes += 1;
                if candidate.stale() {
                    entry.stale += 1;
                }
                let failed = self.context.failed.get(&prefix);
                match self
                    .resolver()
                    .candidate_status(&prefix, slot, candidate, failed)
                {
                    RouteStatus::Installed => entry.installed += 1,
                    RouteStatus::Queued(_) => entry.queued += 1,
                    RouteStatus::Standby { .. } => entry.standby += 1,
                    RouteStatus::Failed(_) => entry.failed += 1,
                    RouteStatus::Refused(_) | RouteStatus::Withdrawn => {}
                }
            }
            if slot.installed.is_some() {
                installed += 1;
            }
        }
        let unclaimed = self.context.adopted.len() as u64;
        adopted.routes += unclaimed;
        adopted.installed += unclaimed;
        adopted.stale += unclaimed;
        let mut counts: BTreeMap<Owner, OwnerCounts> = by_owner
            .into_iter()
            .enumerate()
            .filter(|(_, counts)| counts.routes > 0)
            .map(|(id, counts)| (self.context.owners.names[id].clone(), counts))
            .collect();
        if adopted.routes > 0 {
            let entry = counts.entry(Owner::adopted()).or_default();
            entry.routes += adopted.routes;
            entry.installed += adopted.installed;
            entry.stale += adopted.stale;
        }
        (counts, installed)
    }

    fn spec_uses_tunnel(&self, prefix: &IpNet, specs: &[NexthopSpec], tunnel: &str) -> bool {
        match self.resolver().resolve(prefix, specs) {
            Resolution::Up(nexthops) => nexthops.iter().any(|n| n.tunnel == tunnel),
            _ => specs.iter().any(|nexthop| match nexthop {
                NexthopSpec::Tunnel(name) | NexthopSpec::AddressOnTunnel { tunnel: name, .. } => {
                    name == tunnel
                }
                NexthopSpec::Address(address) => self
                    .resolver()
                    .tunnel_of_address(*address)
                    .is_some_and(|found| found.name == tunnel),
            }),
        }
    }

    /// Where an owner's route for a prefix stands now.
    pub fn status_of(&self, prefix: IpNet, owner: &Owner) -> Option<RouteStatus> {
        let slot = self.slots.get(&prefix)?;
        let id = self.context.owners.find(owner)?;
        let candidate = slot.candidates.iter().find(|c| c.owner == id)?;
        let failed = self.context.failed.get(&prefix);
        Some(
            self.resolver()
                .candidate_status(&prefix, slot, candidate, failed),
        )
    }

    /// Chooses the prefix's route again and says what the kernel and the
    /// AllowedIPs must do about it. `sweeping` lets an adopted route go
    /// when no owner's route can take its place.
    fn reselect(&mut self, prefix: IpNet, sweeping: bool, changes: &mut Changes) {
        let Some(slot) = self.slots.get_mut(&prefix) else {
            return;
        };
        let mut body = slot.body();
        let empty = self.context.reselect(prefix, &mut body, sweeping, changes);
        if empty {
            self.slots.remove(&prefix);
            self.bodies.trim(self.slots.len());
        } else {
            self.bodies.store(slot, body);
        }
    }
}

/// The tunnels as the RIB sees them, for resolving nexthops: borrowed
/// apart from the slots, so a slot can be changed while its routes are
/// resolved.
struct Resolver<'a> {
    view: &'a TunnelView,
    config: &'a RibConfig,
    sources: &'a SourceChoice,
    owners: &'a Owners,
}

impl Resolver<'_> {
    /// The tunnel whose peer's endpoint has exactly this host route.
    fn endpoint_host_route(&self, prefix: &IpNet) -> Option<String> {
        if prefix.prefix_len() != prefix.max_prefix_len() {
            return None;
        }
        self.view.tunnels.iter().find_map(|tunnel| {
            tunnel
                .peers
                .iter()
                .any(|peer| peer.endpoint.is_some_and(|e| e.ip() == prefix.addr()))
                .then(|| tunnel.name.clone())
        })
    }

    /// Where a candidate stands; `failed`: the kernel's last refusal of
    /// the prefix's route.
    fn candidate_status(
        &self,
        prefix: &IpNet,
        slot: &SlotBody,
        candidate: &Candidate,
        failed: Option<&String>,
    ) -> RouteStatus {
        let installed_owner = slot.installed_owner();
        if candidate.installed() {
            return match failed {
                Some(reason) => RouteStatus::Failed(reason.to_string()),
                None => RouteStatus::Installed,
            };
        }
        match self.resolve(prefix, &candidate.nexthops) {
            Resolution::Down(reason) => RouteStatus::Queued(reason),
            Resolution::Invalid(refusal) => RouteStatus::Queued(refusal.to_string()),
            Resolution::Up(_) => match (failed, installed_owner) {
                (_, Some(other)) => RouteStatus::Standby {
                    installed_owner: self.owners.name(other).clone(),
                },
                (Some(reason), None) => RouteStatus::Failed(reason.to_string()),
                (None, None) => RouteStatus::Queued("waiting for the startup hold".into()),
            },
        }
    }

    /// The tunnel with a subnet that holds the address, or whose far end
    /// (of a point-to-point address) it is. An IPv6 gateway of an IPv4
    /// route is found the same way as one of an IPv6 route.
    fn tunnel_of_address(&self, address: IpAddr) -> Option<&TunnelInfo> {
        self.view.tunnels.iter().find(|tunnel| {
            tunnel.addresses.iter().any(|net| net.contains(&address))
                || tunnel
                    .peer_addresses
                    .iter()
                    .any(|net| net.contains(&address))
        })
    }

    fn tunnel_named(&self, name: &str) -> Option<&TunnelInfo> {
        self.view.tunnels.iter().find(|tunnel| tunnel.name == name)
    }

    /// Resolves each nexthop onto a tunnel; the route is up when at least
    /// one is (the kernel gets those), invalid when any cannot be on a
    /// tunnel at all.
    fn resolve(&self, prefix: &IpNet, nexthops: &[NexthopSpec]) -> Resolution {
        // An endpoint may roam onto a learned host route: that route goes.
        if let Some(tunnel) = self.endpoint_host_route(prefix) {
            return Resolution::Down(Refusal::EndpointHostRoute { tunnel }.to_string());
        }
        let mut up = Vec::new();
        let mut down = None;
        for nexthop in nexthops {
            match self.resolve_one(nexthop) {
                Resolution::Up(mut nexthops) => up.append(&mut nexthops),
                Resolution::Down(reason) => {
                    down.get_or_insert(reason);
                }
                invalid @ Resolution::Invalid(_) => return invalid,
            }
        }
        if up.is_empty() {
            return Resolution::Down(down.unwrap_or_else(|| "no nexthop".into()));
        }
        up.sort();
        up.dedup();
        Resolution::Up(up)
    }

    fn resolve_one(&self, nexthop: &NexthopSpec) -> Resolution {
        let (tunnel, gateway) = match nexthop {
            NexthopSpec::Address(address) => match self.tunnel_of_address(*address) {
                Some(tunnel) => (tunnel, Some(*address)),
                None if self.config.allow_other_interfaces => {
                    return Resolution::Up(vec![FibNexthop {
                        tunnel: String::new(),
                        ifindex: 0,
                        gateway: Some(*address),
                        peer: None,
                    }]);
                }
                None => {
                    return Resolution::Invalid(Refusal::NexthopNotOnTunnel { address: *address });
                }
            },
            NexthopSpec::Tunnel(name) => match self.tunnel_named(name) {
                Some(tunnel) => (tunnel, None),
                None => {
                    return Resolution::Invalid(Refusal::UnknownTunnel {
                        tunnel: name.clone(),
                    });
                }
            },
            // On the named tunnel whatever its subnets: a link-local
            // gateway needs no link-local address of ours there (the
            // kernel takes `via inet6 fe80::2 dev X` on any device with
            // IPv6 on, and a tunnel has no neighbors to find).
            NexthopSpec::AddressOnTunnel { address, tunnel } => match self.tunnel_named(tunnel) {
                Some(found) => (found, Some(*address)),
                None => {
                    return Resolution::Invalid(Refusal::UnknownTunnel {
                        tunnel: tunnel.clone(),
                    });
                }
            },
        };
        if let Some(gateway) = gateway
            && tunnel.addresses.iter().any(|net| net.addr() == gateway)
        {
            return Resolution::Invalid(Refusal::NexthopIsOwnAddress {
                address: gateway,
                tunnel: tunnel.name.clone(),
            });
        }
        let peer = match (tunnel.peers.len(), gateway) {
            (0, _) => return Resolution::Down(format!("tunnel {} has no peer", tunnel.name)),
            (1, _) => &tunnel.peers[0],
            (_, None) => {
                return Resolution::Invalid(Refusal::MultiPeerNeedsAddress {
                    tunnel: tunnel.name.clone(),
                });
            }
            (_, Some(gateway)) => match peer_for(tunnel, gateway) {
                Some(peer) => peer,
                None => {
                    return Resolution::Invalid(Refusal::NoPeerForNexthop {
                        address: gateway,
                        tunnel: tunnel.name.clone(),
                    });
                }
            },
        };
        if !tunnel.up {
            return Resolution::Down(format!("tunnel {} is down", tunnel.name));
        }
        if !peer.reachable {
            return Resolution::Down(format!(
                "peer {} of tunnel {} is dead (no recent handshake)",
                peer.public_key, tunnel.name
            ));
        }
        // A handful of sessions at most: no lookup structure (nor a copy
        // of the name per route) needed.
        if let Some(gateway) = gateway
            && self
                .view
                .bfd_down
                .iter()
                .any(|(name, address)| *address == gateway && *name == tunnel.name)
        {
            return Resolution::Down(format!(
                "BFD to {gateway} on tunnel {} is down",
                tunnel.name
            ));
        }
        Resolution::Up(vec![FibNexthop {
            tunnel: tunnel.name.clone(),
            ifindex: tunnel.ifindex,
            gateway,
            peer: (tunnel.peers.len() > 1).then(|| peer.public_key.clone()),
        }])
    }
}

/// What choosing a prefix's route changes besides its slot.
struct SlotState<'a> {
    nexthop_sets: &'a mut SharedSets<FibNexthop>,
    allowed: &'a mut BTreeMap<(String, String), BTreeSet<IpNet>>,
    adopted: &'a mut PrefixMap<()>,
    failed: &'a mut PrefixMap<String>,
}

/// Chooses a prefix's route again (see [`Rib::reselect`]) in its slot;
/// whether the slot is left empty (to be removed).
fn reselect_slot(
    resolver: &Resolver<'_>,
    state: &mut SlotState<'_>,
    prefix: IpNet,
    slot: &mut SlotBody,
    sweeping: bool,
    changes: &mut Changes,
) -> bool {
    let mut best: Option<(usize, Vec<FibNexthop>)> = None;
    for (index, candidate) in slot.candidates.iter().enumerate() {
        let Resolution::Up(nexthops) = resolver.resolve(&prefix, &candidate.nexthops) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((chosen, _)) => {
                let chosen = &slot.candidates[*chosen];
                // On a tie, the route the kernel has stays.
                let key = |c: &Candidate| {
                    let owner = resolver.owners.name(c.owner);
                    (c.distance, c.metric, !c.installed(), owner)
                };
                key(candidate) < key(chosen)
            }
        };
        if better {
            best = Some((index, nexthops));
        }
    }
    let fib_before = changes.fib.len();
    let old = slot.installed.clone();
    let retrying = !state.failed.is_empty() && state.failed.contains_key(&prefix);
    let adopted = !state.adopted.is_empty() && state.adopted.contains_key(&prefix);
    let new = match best {
        Some((chosen, nexthops)) => {
            let source = resolver.sources.of(&prefix, &nexthops);
            let op = match &old {
                None => Some(FibOp::Add {
                    prefix,
                    nexthops: nexthops.clone(),
                    source,
                }),
                // The same nexthops have the same source (see SourceChoice).
                Some(installed) if !retrying && same_kernel_route(installed, &nexthops) => None,
                Some(_) => Some(FibOp::Replace {
                    prefix,
                    nexthops: nexthops.clone(),
                    source,
                }),
            };
            changes.fib.extend(op);
            for (index, candidate) in slot.candidates.iter_mut().enumerate() {
                candidate.set_installed(index == chosen);
            }
            if adopted {
                state.adopted.remove(&prefix);
            }
            Some(intern(state.nexthop_sets, nexthops))
        }
        // Nothing can take an adopted route's place yet: during the
        // startup hold it stays, carrying traffic as before.
        None if adopted && !sweeping => old.clone(),
        None => {
            if old.is_some() {
                changes.fib.push(FibOp::Remove { prefix });
            }
            for candidate in &mut slot.candidates {
                candidate.set_installed(false);
            }
            if adopted {
                state.adopted.remove(&prefix);
            }
            None
        }
    };
    let old_nexthops = old.as_deref().unwrap_or_default();
    let new_nexthops = new.as_deref().unwrap_or_default();
    note_allowed(state.allowed, prefix, old_nexthops, new_nexthops, changes);
    // A new attempt (or nothing to install) forgets the kernel's last refusal.
    if retrying && (changes.fib.len() > fib_before || new.is_none()) {
        state.failed.remove(&prefix);
    }
    slot.installed = new;
    slot.is_empty()
}

/// Moves the prefix between multi-peer tunnel peers' AllowedIPs as its
/// installed nexthops change. WireGuard gives a prefix to one peer of a
/// device: with ECMP over two peers of one tunnel, the first takes it.
fn note_allowed(
    allowed: &mut BTreeMap<(String, String), BTreeSet<IpNet>>,
    prefix: IpNet,
    old: &[FibNexthop],
    new: &[FibNexthop],
    changes: &mut Changes,
) {
    let peers = |nexthops: &[FibNexthop]| -> BTreeSet<(String, String)> {
        let mut seen_tunnels = BTreeSet::new();
        nexthops
            .iter()
            .filter_map(|n| Some((n.tunnel.clone(), n.peer.clone()?)))
            .filter(|(tunnel, _)| seen_tunnels.insert(tunnel.clone()))
            .collect()
    };
    let before = peers(old);
    let after = peers(new);
    for (tunnel, peer) in before.difference(&after) {
        let key = (tunnel.clone(), peer.clone());
        if let Some(set) = allowed.get_mut(&key) {
            set.remove(&prefix);
            if set.is_empty() {
                allowed.remove(&key);
            }
        }
        changes.allowed_ips.push(AllowedIpsOp::Remove {
            tunnel: tunnel.clone(),
            peer: peer.clone(),
            prefix,
        });
    }
    for (tunnel, peer) in after.difference(&before) {
        allowed
            .entry((tunnel.clone(), peer.clone()))
            .or_default()
            .insert(prefix);
        changes.allowed_ips.push(AllowedIpsOp::Add {
            tunnel: tunnel.clone(),
            peer: peer.clone(),
            prefix,
        });
    }
}

/// The peer of a multi-peer tunnel whose configured AllowedIPs cover the
/// gateway most specifically.
fn peer_for(tunnel: &TunnelInfo, gateway: IpAddr) -> Option<&crate::route::PeerInfo> {
    tunnel
        .peers
        .iter()
        .filter_map(|peer| {
            peer.allowed_ips
                .iter()
                .filter(|net| net.contains(&gateway))
                .map(|net| net.prefix_len())
                .max()
                .map(|len| (len, peer))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, peer)| peer)
}

/// Whether two nexthop sets make the same kernel route (which interface,
/// which gateway), whatever the bridge knows about them besides.
fn same_kernel_route(a: &[FibNexthop], b: &[FibNexthop]) -> bool {
    let key = |nexthops: &[FibNexthop]| {
        let mut keys: Vec<(u32, Option<IpAddr>)> =
            nexthops.iter().map(|n| (n.ifindex, n.gateway)).collect();
        keys.sort();
        keys
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests;
