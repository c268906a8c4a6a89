//! FRR's zebra as a route source, over FPM (the Forwarding Plane Manager
//! interface): zebra, loaded with `-M dplane_fpm_nl` and told `fpm address
//! 127.0.0.1`, connects to the bridge over TCP (port 2620) and streams the
//! routes it selected, as netlink messages.
//!
//! `decode` reads the wire (frames, route and nexthop messages; pure);
//! [`Feed`] (here, pure) turns what zebra says into the bridge's updates:
//! it keeps zebra's nexthop objects and its routes of one table, resolves
//! each route's nexthops (inline, ECMP, or through a nexthop group) onto
//! wgd's tunnels by interface index, and answers with the offers and
//! withdrawals that bring the bridge to zebra's view, each prefix once per
//! batch (zebra's delete-then-add of an update becomes one replace);
//! `listener` is the TCP side (one connection at a time, one bridge session
//! of owner `fpm` per connection, End-of-RIB once zebra's replay is over).
//!
//! Routes zebra reports as kernel routes (`rtm_protocol` 2: connected
//! subnets, routes other programs put in the kernel, wgd's own) are
//! already in the kernel and are not taken; when zebra starts preferring
//! one of those for a prefix, its FRR route for the prefix is withdrawn.
//!
//! zebra and the bridge share the kernel by table. zebra (FRR 8.4) always
//! writes its selected routes into its own table itself (the FPM plugin
//! runs after its kernel dataplane; nothing turns that off), and takes any
//! other program's route in that table for a kernel route, of distance 0,
//! that beats its own: it deletes its copy and reports the prefix over FPM
//! as a kernel route, so its own route, and later its withdrawal, would no
//! longer be seen. The config therefore refuses an `[fpm] table` equal to
//! `[bridge] table`: the bridge gets a table of its own, looked up before
//! main (`ip rule add pref 1000 lookup N`), and zebra's copy in main stays
//! behind it as a fallback. zebra sees the bridge's table as a foreign one
//! (its routes there come back over FPM as kernel routes of that table,
//! not taken).
//!
//! Distance follows zebra's defaults for the route's protocol (static 1,
//! eBGP 20, OSPF 110, ...): zebra has already chosen among FRR's daemons,
//! and against the bridge's other owners an FRR route competes as it
//! would inside zebra. zebra does not say whether a BGP route is eBGP or
//! iBGP; BGP routes get 20. The metric is zebra's kernel priority
//! (`RTA_PRIORITY`, 20 unless configured otherwise), 0 when it sends none.

pub mod decode;
pub mod listener;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

pub use decode::{FpmNexthop, FpmRoute, Message, NexthopKind, NexthopObject};
pub use listener::{Fpm, FpmConfig};

use crate::engine::Update;
use crate::route::{NexthopSpec, RTPROT_WGD, RouteSpec, TunnelView};

/// The owner of the routes zebra sends.
pub const OWNER: &str = "fpm";

/// zebra's administrative distance for routes of a protocol number (as
/// Debian's `/etc/iproute2/rt_protos.d/frr.conf` names them), or `None`
/// for routes that are not FRR's to give: unspecified, redirects, kernel
/// routes (connected subnets, and any route zebra found in the kernel:
/// zebra reports those as protocol 2), boot and admin-static routes, and
/// wgd's own.
pub fn distance_of(protocol: u8) -> Option<u8> {
    Some(match protocol {
        0..=4 => return None,
        p if p == RTPROT_WGD => return None,
        // zebra's own (nexthop groups, import tables).
        11 => 150,
        42 => 100,  // babel
        186 => 20,  // bgp (eBGP; zebra does not tell iBGP apart)
        187 => 115, // isis
        188 => 110, // ospf (and ospf6)
        189 => 120, // rip
        190 => 120, // ripng
        191 => 10,  // nhrp
        192 => 90,  // eigrp
        193 => 150, // ldp
        194 => 150, // sharp
        195 => 200, // pbr
        196 => 1,   // static
        197 => 115, // openfabric
        _ => 150,
    })
}

/// What one pass over the changed prefixes gives: updates for the bridge,
/// and the routes that cannot go to the bridge, with why.
#[derive(Debug, Default)]
pub struct Batch {
    pub updates: Vec<Update>,
    pub skipped: Vec<(IpNet, String)>,
}

/// zebra's routes of one kernel table and its nexthop objects, for one FPM
/// connection, and what the bridge has been given from them.
#[derive(Debug)]
pub struct Feed {
    table: u32,
    nexthops: HashMap<u32, NexthopObject>,
    /// zebra's route per prefix (of `table`, from an FRR protocol).
    routes: BTreeMap<IpNet, FpmRoute>,
    /// Prefixes whose route uses a nexthop object directly.
    users: HashMap<u32, BTreeSet<IpNet>>,
    /// What the bridge holds from this connection.
    offered: BTreeMap<IpNet, RouteSpec>,
    /// Prefixes to look at again.
    dirty: BTreeSet<IpNet>,
}

impl Feed {
    /// Takes zebra's routes of kernel table `table` (254: main).
    pub fn new(table: u32) -> Self {
        Self {
            table,
            nexthops: HashMap::new(),
            routes: BTreeMap::new(),
            users: HashMap::new(),
            offered: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Routes taken from zebra.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Routes the bridge holds from this connection.
    pub fn offered_count(&self) -> usize {
        self.offered.len()
    }

    /// One message from zebra.
    pub fn apply(&mut self, message: Message) {
        match message {
            Message::NewRoute(route) => {
                if route.table != self.table {
                    return;
                }
                let prefix = route.prefix;
                if distance_of(route.protocol).is_some() {
                    self.insert_route(route);
                } else {
                    // zebra now prefers a route that is in the kernel
                    // already (a connected subnet, someone else's route).
                    self.remove_route(prefix);
                }
                self.dirty.insert(prefix);
            }
            Message::DelRoute(route) => {
                if route.table != self.table {
                    return;
                }
                let ours = self
                    .routes
                    .get(&route.prefix)
                    .is_some_and(|held| held.protocol == route.protocol || route.protocol == 0);
                if ours {
                    self.remove_route(route.prefix);
                    self.dirty.insert(route.prefix);
                }
            }
            Message::NewNexthop(object) => {
                let id = object.id;
                let changed = self.nexthops.get(&id) != Some(&object);
                self.nexthops.insert(id, object);
                if changed {
                    self.touch_nexthop(id);
                }
            }
            Message::DelNexthop(id) => {
                if self.nexthops.remove(&id).is_some() {
                    self.touch_nexthop(id);
                }
            }
            Message::Ignored(_) => {}
        }
    }

    /// wgd's tunnels changed: every route is resolved again.
    pub fn tunnels_changed(&mut self) {
        self.dirty.extend(self.routes.keys().copied());
        self.dirty.extend(self.offered.keys().copied());
    }

    /// The updates that bring the bridge to zebra's view of the prefixes
    /// that changed since the last call, each prefix once: an offer when
    /// its route is new or different, a withdrawal when it is gone or can
    /// no longer be given.
    pub fn updates(&mut self, view: &TunnelView) -> Batch {
        let mut batch = Batch::default();
        for prefix in std::mem::take(&mut self.dirty) {
            let wanted = self
                .routes
                .get(&prefix)
                .map(|route| translate(route, &self.nexthops, view));
            match wanted {
                Some(Ok(spec)) => {
                    if self.offered.get(&prefix) != Some(&spec) {
                        self.offered.insert(prefix, spec.clone());
                        batch.updates.push(Update::Offer(spec));
                    }
                }
                other => {
                    if let Some(Err(reason)) = other {
                        batch.skipped.push((prefix, reason));
                    }
                    if self.offered.remove(&prefix).is_some() {
                        batch.updates.push(Update::Withdraw(prefix));
                    }
                }
            }
        }
        batch
    }

    /// The bridge refused the route offered for `prefix` (it keeps no
    /// refused route): it is offered again when it changes.
    pub fn refused(&mut self, prefix: IpNet) {
        self.offered.remove(&prefix);
    }

    fn insert_route(&mut self, route: FpmRoute) {
        let prefix = route.prefix;
        self.remove_route(prefix);
        if let Some(id) = route.nexthop_id {
            self.users.entry(id).or_default().insert(prefix);
        }
        self.routes.insert(prefix, route);
    }

    fn remove_route(&mut self, prefix: IpNet) {
        if let Some(old) = self.routes.remove(&prefix) {
            self.forget_user(&old);
        }
    }

    fn forget_user(&mut self, route: &FpmRoute) {
        if let Some(id) = route.nexthop_id
            && let Some(users) = self.users.get_mut(&id)
        {
            users.remove(&route.prefix);
            if users.is_empty() {
                self.users.remove(&id);
            }
        }
    }

    /// A nexthop object changed: the routes using it, or a group holding
    /// it, are resolved again.
    fn touch_nexthop(&mut self, id: u32) {
        // No route uses any object (zebra's replay sends them first).
        if self.users.is_empty() {
            return;
        }
        let groups = self
            .nexthops
            .values()
            .filter_map(|object| match &object.kind {
                NexthopKind::Group(members) if members.contains(&id) => Some(object.id),
                _ => None,
            });
        let ids: Vec<u32> = std::iter::once(id).chain(groups).collect();
        for id in ids {
            if let Some(users) = self.users.get(&id) {
                self.dirty.extend(users.iter().copied());
            }
        }
    }
}

/// zebra's route as the bridge takes it, or why it cannot be.
pub fn translate(
    route: &FpmRoute,
    nexthops: &HashMap<u32, NexthopObject>,
    view: &TunnelView,
) -> Result<RouteSpec, String> {
    let distance =
        distance_of(route.protocol).ok_or_else(|| format!("protocol {}", route.protocol))?;
    if route.route_type != decode::RTN_UNICAST {
        return Err(format!(
            "a route of type {} (blackhole, unreachable, ...): the bridge installs unicast routes",
            route.route_type
        ));
    }
    if route.source_len > 0 {
        return Err("a source-specific route".into());
    }
    let hops = match route.nexthop_id {
        Some(id) => resolve_object(id, nexthops)?,
        None => route.nexthops.clone(),
    };
    if hops.is_empty() {
        return Err("no nexthop".into());
    }
    let mut specs = Vec::with_capacity(hops.len());
    for hop in hops {
        let tunnel = view
            .tunnels
            .iter()
            .find(|tunnel| hop.ifindex != 0 && tunnel.ifindex == hop.ifindex)
            .map(|tunnel| tunnel.name.clone());
        // An IPv4 route may come through an IPv6 gateway (RFC 8950, as
        // `RTA_VIA`); zebra itself writes such a route as `169.254.0.1
        // onlink` on the interface, which is installed as it comes (a
        // tunnel needs no neighbor entry for it). The RIB's policy refuses
        // the rest (a link-local gateway off wgd's tunnels, say).
        let spec = match (hop.gateway, tunnel) {
            (Some(address @ IpAddr::V4(_)), _) if route.prefix.addr().is_ipv6() => {
                return Err(crate::policy::Refusal::NexthopFamily { address }.to_string());
            }
            (Some(address), Some(tunnel)) => NexthopSpec::AddressOnTunnel { address, tunnel },
            // Not on a tunnel: the bridge refuses it, unless it may
            // leave the resolution to the kernel (allow_other_interfaces).
            (Some(address), None) => NexthopSpec::Address(address),
            (None, Some(tunnel)) => NexthopSpec::Tunnel(tunnel),
            (None, None) => {
                return Err(format!(
                    "interface index {} is not one of wgd's tunnels",
                    hop.ifindex
                ));
            }
        };
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    Ok(RouteSpec {
        prefix: route.prefix,
        nexthops: specs,
        distance,
        metric: route.priority.unwrap_or(0),
    })
}

/// The nexthops of object `id`: itself, or its group's members.
fn resolve_object(
    id: u32,
    nexthops: &HashMap<u32, NexthopObject>,
) -> Result<Vec<FpmNexthop>, String> {
    let object = nexthops
        .get(&id)
        .ok_or_else(|| format!("nexthop id {id} is unknown"))?;
    match &object.kind {
        NexthopKind::Single(hop) => Ok(vec![*hop]),
        NexthopKind::Blackhole => Err(format!("nexthop id {id} is a blackhole")),
        NexthopKind::Group(members) => members
            .iter()
            .map(
                |member| match nexthops.get(member).map(|object| &object.kind) {
                    Some(NexthopKind::Single(hop)) => Ok(*hop),
                    Some(NexthopKind::Blackhole) => Err(format!(
                        "nexthop id {member} (in group {id}) is a blackhole"
                    )),
                    Some(NexthopKind::Group(_)) => {
                        Err(format!("nexthop id {member} (in group {id}) is a group"))
                    }
                    None => Err(format!("nexthop id {member} (in group {id}) is unknown")),
                },
            )
            .collect(),
    }
}

/// Runs arbitrary bytes as a stream from zebra through the frame reader,
/// the decoder and a feed, as the listener does (the fuzz target's body):
/// must not panic, and must agree with itself.
pub fn fuzz(data: &[u8]) {
    use crate::route::{PeerInfo, TunnelInfo};
    let view = TunnelView {
        tunnels: vec![TunnelInfo {
            name: "wg-a".into(),
            ifindex: 3,
            up: true,
            addresses: vec!["10.255.0.0/31".parse().expect("a prefix")],
            peer_addresses: Vec::new(),
            peers: vec![PeerInfo {
                public_key: "key".into(),
                allowed_ips: Vec::new(),
                endpoint: None,
                reachable: true,
            }],
        }],
        bfd_down: Default::default(),
    };
    let mut feed = Feed::new(254);
    let mut frames = decode::Frames::new(data);
    let mut seen = 0;
    for frame in frames.by_ref() {
        let Ok(payload) = frame else {
            break;
        };
        seen += decode::FPM_HEADER_LEN + payload.len();
        for message in decode::decode_frame(payload).into_iter().flatten() {
            feed.apply(message);
        }
        for update in feed.updates(&view).updates {
            if let Update::Offer(spec) = update {
                assert!(!spec.nexthops.is_empty());
                assert!(feed.routes.contains_key(&spec.prefix));
            }
        }
    }
    assert_eq!(seen, frames.consumed());
    assert!(frames.consumed() <= data.len());
    assert!(
        feed.offered
            .keys()
            .all(|prefix| feed.routes.contains_key(prefix))
    );
}

#[cfg(test)]
mod tests;
