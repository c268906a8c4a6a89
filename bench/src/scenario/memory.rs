//! `wgd-bench memory`: where the built-in speaker's bytes go, structure by
//! structure, measured in this process, not estimated.
//!
//! The table takes the way it takes in `wgd run`: the replay feeder's
//! UPDATEs (the bgp scenario's, byte for byte) are decoded by the
//! speaker's decoder, applied to the decision's Loc-RIB (Adj-RIB-In and
//! best paths) and the best paths offered to the bridge's RIB as the
//! speaker offers them (owner `bgp:<neighbor>`, the UPDATE's next hop on a
//! tunnel's subnet). Then the structures are dropped one at a time, and
//! what each drop gives back to the allocator is that structure's share;
//! the attribute sets go last, as every structure holds them by reference.
//!
//! The allocator's own count (glibc's `mallinfo2`, bytes in chunks in use,
//! with each chunk's header and rounding) is the measure: what the process
//! really pays per structure, as RSS would show once the table is in.
//! What is not here: the speaker's per-session I/O buffers, its map of
//! what it fed the bridge, and the FIB writer's batches (transient); the
//! bgp scenario's RSS per prefix measures the whole process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_bridge::rib::{Rib, RibConfig};
use bgp_bridge::{Changes, NexthopSpec, Owner, PeerInfo, RouteSpec, TunnelInfo, TunnelView};
use wgd_bgp::decision::{Config, LocRib, Neighbor, Source};
use wgd_bgp::packet::{Decoded, decode};
use wgd_bgp::policy::Policy;
use wgd_bgp::types::{Attributes, Family, Negotiated, NeighborId, Update};

use crate::feeder;
use crate::report::Report;
use crate::table::{self, Shape, Table};

const HEADER: usize = 19;
const PEER_AS: u32 = 65002;
const LOCAL_AS: u32 = 65001;
/// The feeder's address and next hop (its IPv6 next hop besides): the
/// neighbor of the in-process scenarios (this one and `rpki`).
pub(super) const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const NEXT_HOP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 1, 0, 0, 0, 0xb);

/// Bytes in use by the allocator now.
#[allow(unsafe_code)]
pub(super) fn in_use() -> usize {
    // SAFETY: mallinfo2 reads the allocator's statistics and has no
    // preconditions.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks
}

/// What dropping `value` gave back.
fn freed_by<T>(value: T) -> usize {
    let before = in_use();
    drop(value);
    before.saturating_sub(in_use())
}

/// The session with the feeder, as the speaker negotiated it.
pub(super) fn session() -> Negotiated {
    Negotiated {
        local_as: LOCAL_AS,
        remote_as: PEER_AS,
        remote_id: NEXT_HOP,
        hold_time: 90,
        four_octet_as: true,
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        route_refresh: true,
        extended_next_hop_ipv4: false,
        extended_messages: false,
        peer_graceful_restart: None,
    }
}

/// One tunnel whose subnet holds the feeder's next hop, as in the bgp
/// scenario.
fn tunnels() -> TunnelView {
    TunnelView {
        tunnels: vec![TunnelInfo {
            name: "wg-feed".into(),
            ifindex: 7,
            up: true,
            addresses: vec![
                "10.255.0.0/31".parse().expect("a prefix"),
                "fd77:0:0:1::a/64".parse().expect("a prefix"),
            ],
            peer_addresses: Vec::new(),
            peers: vec![PeerInfo {
                public_key: "feeder".into(),
                allowed_ips: vec![
                    "0.0.0.0/0".parse().expect("a prefix"),
                    "::/0".parse().expect("a prefix"),
                ],
                endpoint: Some("198.18.0.2:51820".parse().expect("an endpoint")),
                reachable: true,
            }],
        }],
        bfd_down: Default::default(),
    }
}

/// Bytes per structure for one table of `size` prefixes.
#[derive(Debug)]
struct Shares {
    total: usize,
    parts: Vec<(String, usize)>,
}

fn measure(updates: &feeder::Updates, size: usize) -> anyhow::Result<Shares> {
    let session = session();
    let neighbor_id = NeighborId::new(IpAddr::V4(NEXT_HOP), None)?;
    let owner = Owner::new(format!("bgp:{neighbor_id}"));
    let resolves = |_: IpAddr| true;

    let start = in_use();
    let mut loc_rib = loc_rib();
    let _ = loc_rib.neighbor_up(neighbor(
        neighbor_id,
        &session,
        Default::default(),
        Default::default(),
    ));
    let mut rib = Rib::new(RibConfig::default());
    rib.set_tunnels(tunnels(), &mut Changes::default());
    // Every attribute set, held here too so that it goes last.
    let mut attribute_sets: Vec<Arc<Attributes>> = Vec::new();
    for message in updates.announce.messages() {
        let update = decoded(message, &session)?;
        for (_, attributes) in &update.announced {
            if !attribute_sets
                .last()
                .is_some_and(|last| Arc::ptr_eq(last, attributes))
            {
                attribute_sets.push(Arc::clone(attributes));
            }
        }
        let changes = loc_rib.apply(neighbor_id, &update, &resolves);
        let mut fib = Changes::default();
        for change in changes {
            let nexthops = change
                .paths
                .iter()
                .filter(|path| matches!(path.source, Source::Neighbor(_)))
                .filter_map(|path| path.attributes.next_hop.address())
                .map(NexthopSpec::Address)
                .collect();
            rib.offer(
                &owner,
                RouteSpec {
                    prefix: change.prefix,
                    nexthops,
                    distance: 20,
                    metric: 0,
                },
                &mut fib,
            );
            // The FIB writer's work: the kernel is not written here.
            fib.fib.clear();
            fib.allowed_ips.clear();
        }
    }
    anyhow::ensure!(
        rib.installed_count() == size as u64,
        "the bridge selected {} of {size} routes",
        rib.installed_count()
    );
    let total = in_use().saturating_sub(start);
    let copies = attribute_sets.len();
    let mut parts = Vec::new();
    for (name, structure) in rib.into_structures() {
        parts.push((format!("bridge: {name}"), freed_by(structure)));
    }
    for (name, structure) in loc_rib.into_structures() {
        parts.push((format!("speaker: {name}"), freed_by(structure)));
    }
    parts.push((
        format!("attribute sets ({copies} decoded)"),
        freed_by(attribute_sets),
    ));
    Ok(Shares { total, parts })
}

/// The speaker's Loc-RIB as the in-process scenarios build it.
pub(super) fn loc_rib() -> LocRib {
    LocRib::new(Config {
        local_as: LOCAL_AS,
        router_id: Ipv4Addr::new(10, 255, 0, 0),
        max_paths: 1,
    })
}

/// The feeder as the speaker's neighbor, with these policies.
pub(super) fn neighbor(
    id: NeighborId,
    session: &Negotiated,
    import: Policy,
    export: Policy,
) -> Neighbor {
    Neighbor::new(
        id,
        IpAddr::V4(Ipv4Addr::new(10, 255, 0, 0)),
        session,
        import,
        export,
    )
}

/// An encoded UPDATE message as the speaker decodes it.
pub(super) fn decoded(message: &[u8], session: &Negotiated) -> anyhow::Result<Update> {
    let body = message.get(HEADER..).unwrap_or_default();
    match decode(body, session) {
        Decoded::Update { update, .. } => Ok(update),
        Decoded::Reset(notification) => {
            anyhow::bail!("the speaker's decoder refused an UPDATE: {notification:?}")
        }
    }
}

/// The scenario's table of `size` prefixes and its UPDATEs, the table's
/// shape reported under `scenario`.
pub(super) fn table_and_updates(
    scenario: &str,
    source: &table::Source,
    size: usize,
    report: &mut Report,
) -> (Table, feeder::Updates) {
    let table = source.table(size);
    let next_hops = feeder::NextHops {
        ipv4: NEXT_HOP,
        ipv6: NEXT_HOP6,
    };
    let updates = feeder::encode(&table, PEER_AS, next_hops);
    report.shape(Shape::of(
        scenario,
        &source.name(),
        &table,
        Some(updates.announce.messages),
    ));
    (table, updates)
}

pub fn run(
    common: &crate::Common,
    source: &table::Source,
    sizes: &[usize],
    report: &mut Report,
) -> anyhow::Result<()> {
    for &size in sizes {
        crate::progress(format!("memory: {size} prefixes"));
        let (table, updates) = table_and_updates("memory", source, size, report);
        let size = table.len();
        drop(table);
        let mut runs: Vec<Shares> = Vec::new();
        for _ in 0..common.runs {
            crate::check_interrupted()?;
            runs.push(measure(&updates, size)?);
        }
        let per_prefix = |bytes: usize| bytes as f64 / size as f64;
        report.add(
            "memory",
            "wgd speaker + bridge",
            "bytes per prefix, all",
            size,
            "B",
            runs.iter().map(|shares| per_prefix(shares.total)).collect(),
        );
        let names: Vec<String> = runs[0].parts.iter().map(|(name, _)| name.clone()).collect();
        for (index, name) in names.iter().enumerate() {
            report.add(
                "memory",
                "wgd speaker + bridge",
                &format!("bytes per prefix, {name}"),
                size,
                "B",
                runs.iter()
                    .filter_map(|shares| shares.parts.get(index))
                    .map(|(_, bytes)| per_prefix(*bytes))
                    .collect(),
            );
        }
    }
    Ok(())
}
