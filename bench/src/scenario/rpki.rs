//! `wgd-bench rpki`: what origin validation costs the speaker, measured in
//! this process (no lab, no kernel), with and without it, on the bgp
//! scenario's table.
//!
//! A VRP set about half the table's size is generated from the table
//! itself: for the routes of about every other /8 (blocks of address space
//! have ROAs or none, as an organisation's do) a ROA of its origin AS,
//! most for the prefix itself, one in 25 for a covering /len-4 with a max length
//! reaching the route, and two in 25 wrong (another AS, or a max length
//! the route exceeds) so that invalid routes exist. The import
//! policy denies `match.rpki = "invalid"` in both runs.
//!
//! Per run, for each of *without* (no RPKI configured) and *with* (the
//! VRPs loaded first, as when the cache syncs before the table comes):
//! the time to decode the replay feeder's UPDATEs and apply them to the
//! decision's Loc-RIB, the allocator's bytes in use per prefix after
//! (`mallinfo2`, the VRP table included for *with*) and the growth of
//! RSS per prefix (`malloc_trim` before each run, so what the last one
//! freed is given back). Then, on the full table: loading the whole VRP
//! set at once (every path validated again) and a delta of a thousand
//! VRP changes (only the paths they cover).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use wgd_bgp::decision::LocRib;
use wgd_bgp::policy::Policy;
use wgd_bgp::types::NeighborId;
use wgd_rtr::{Validity, Vrp, VrpTable, VrpUpdate};

use super::memory::{self, NEXT_HOP, decoded, in_use, loc_rib, session};
use crate::feeder;
use crate::prefixes::IpPrefix;
use crate::report::Report;
use crate::table::{self, Table};

const DELTA: usize = 1000;

/// Gives freed memory back to the system, so that RSS growth measures
/// what a run keeps.
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident set, in bytes.
fn rss() -> usize {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<usize>().ok())
        .unwrap_or(0);
    pages * 4096
}

fn net(prefix: IpPrefix) -> IpNet {
    match prefix {
        IpPrefix::V4(prefix) => {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(prefix.address), prefix.len).unwrap_or_default())
        }
        IpPrefix::V6(prefix) => {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(prefix.address), prefix.len).unwrap_or_default())
        }
    }
}

/// The VRP set of the module comment, from the table's routes.
pub fn generate_vrps(table: &Table) -> Vec<Vrp> {
    let mut vrps = Vec::with_capacity(table.len() / 2 + 1);
    for (index, (prefix, attributes)) in table.routes().enumerate() {
        // Whole blocks of address space (a /8) have ROAs or none, as an
        // organisation's do: a more specific route in a block with ROAs
        // has its own, not only its covering route's.
        let block = match prefix {
            IpPrefix::V4(prefix) => prefix.address >> 24,
            IpPrefix::V6(prefix) => (prefix.address >> 104) as u32,
        };
        if (block.wrapping_mul(0x9E37_79B1) >> 16) % 2 == 1 {
            continue;
        }
        let Some(origin) = attributes.origin_as() else {
            continue;
        };
        let route = net(*prefix);
        let length = route.prefix_len();
        let shorter = |by: u8| {
            IpNet::new(route.addr(), length.saturating_sub(by))
                .map(|net| net.trunc())
                .unwrap_or(route)
        };
        let vrp = match index % 50 {
            // Another AS: the route is invalid.
            0 => Vrp {
                prefix: route,
                max_length: length,
                asn: origin.wrapping_add(1),
            },
            // Its covering /len-1 without room: too specific, invalid.
            2 => Vrp {
                prefix: shorter(1),
                max_length: length.saturating_sub(1),
                asn: origin,
            },
            // A covering /len-4 reaching the route: valid (and the routes
            // of other origins it covers invalid, as in the real set).
            4 => Vrp {
                prefix: shorter(4),
                max_length: length,
                asn: origin,
            },
            _ => Vrp {
                prefix: route,
                max_length: length,
                asn: origin,
            },
        };
        vrps.push(vrp);
    }
    vrps
}

fn deny_invalid() -> Policy {
    Policy {
        rules: vec![wgd_bgp::policy::Rule {
            action: wgd_bgp::policy::Verdict::Deny,
            matches: wgd_bgp::policy::Match {
                rpki: Some(Validity::Invalid),
                ..Default::default()
            },
            set: Default::default(),
        }],
        default: wgd_bgp::policy::Verdict::Permit,
    }
}

/// One table taken into a Loc-RIB.
struct Taken {
    rib: LocRib,
    neighbor: NeighborId,
    seconds: f64,
    bytes: usize,
    rss: usize,
}

/// Decodes and applies every UPDATE, the VRPs loaded first when given.
fn take(updates: &feeder::Updates, vrps: Option<&[Vrp]>) -> anyhow::Result<Taken> {
    trim();
    let (start, start_rss) = (in_use(), rss());
    let session = session();
    let neighbor = NeighborId::new(IpAddr::V4(NEXT_HOP), None)?;
    let mut rib = loc_rib();
    let resolves = |_: IpAddr| true;
    if let Some(vrps) = vrps {
        rib.validate_origins();
        rib.update_origins(VrpUpdate::Reset(vrps.to_vec()), &resolves);
    }
    let _ = rib.neighbor_up(memory::neighbor(
        neighbor,
        &session,
        deny_invalid(),
        Policy::default(),
    ));
    let began = Instant::now();
    for message in updates.announce.messages() {
        let update = decoded(message, &session)?;
        rib.apply(neighbor, &update, &resolves);
    }
    let seconds = began.elapsed().as_secs_f64();
    Ok(Taken {
        rib,
        neighbor,
        seconds,
        bytes: in_use().saturating_sub(start),
        rss: rss().saturating_sub(start_rss),
    })
}

pub fn run(
    common: &crate::Common,
    source: &table::Source,
    sizes: &[usize],
    report: &mut Report,
) -> anyhow::Result<()> {
    for &size in sizes {
        crate::progress(format!("rpki: {size} prefixes"));
        let (table, updates) = memory::table_and_updates("rpki", source, size, report);
        let size = table.len();
        let vrps = generate_vrps(&table);
        drop(table);
        let vrp_count = vrps.len();
        let vrp_bytes = {
            let before = in_use();
            let mut table = VrpTable::new();
            for vrp in &vrps {
                table.insert(*vrp);
            }
            let bytes = in_use().saturating_sub(before);
            let (ipv4, ipv6) = table.counts();
            crate::progress(format!(
                "rpki: {vrp_count} VRPs generated ({ipv4} IPv4, {ipv6} IPv6 distinct), table {:.1} MB, {:.1} B per VRP",
                bytes as f64 / 1e6,
                bytes as f64 / vrp_count.max(1) as f64
            ));
            bytes
        };
        let per_prefix = |bytes: usize| bytes as f64 / size as f64;
        let (mut without, mut with) = (Vec::new(), Vec::new());
        let (mut load, mut delta) = (Vec::new(), Vec::new());
        for run in 0..common.runs {
            crate::check_interrupted()?;
            let plain = take(&updates, None)?;
            without.push((plain.seconds, plain.bytes, plain.rss));
            drop(plain);
            crate::check_interrupted()?;
            let mut validated = take(&updates, Some(&vrps))?;
            with.push((validated.seconds, validated.bytes, validated.rss));
            if run == 0 {
                let counts = validated.rib.validity_counts().unwrap_or_default();
                let accepted = validated.rib.best_from(validated.neighbor).count();
                crate::progress(format!(
                    "rpki: {} valid, {} invalid, {} not found; {accepted} accepted",
                    counts[0], counts[1], counts[2]
                ));
            }
            // The whole set again, as from a new cache: every VRP goes and
            // comes, and every path is validated again.
            let resolves = |_: IpAddr| true;
            let began = Instant::now();
            validated
                .rib
                .update_origins(VrpUpdate::Reset(Vec::new()), &resolves);
            validated
                .rib
                .update_origins(VrpUpdate::Reset(vrps.clone()), &resolves);
            load.push(began.elapsed().as_secs_f64() / 2.0);
            // A thousand changes: half withdrawn, then announced again.
            let changes: Vec<(Vrp, bool)> = vrps
                .iter()
                .step_by((vrp_count / (DELTA / 2)).max(1))
                .take(DELTA / 2)
                .map(|vrp| (*vrp, false))
                .collect();
            let back: Vec<(Vrp, bool)> = changes.iter().map(|(vrp, _)| (*vrp, true)).collect();
            let began = Instant::now();
            validated
                .rib
                .update_origins(VrpUpdate::Delta(changes), &resolves);
            validated
                .rib
                .update_origins(VrpUpdate::Delta(back), &resolves);
            delta.push(began.elapsed().as_secs_f64());
        }
        for (contender, runs) in [("without validation", &without), ("with validation", &with)] {
            report.add(
                "rpki",
                contender,
                "add (decode + decision), s",
                size,
                "s",
                runs.iter().map(|(seconds, _, _)| *seconds).collect(),
            );
            report.add(
                "rpki",
                contender,
                "allocator bytes per prefix",
                size,
                "B",
                runs.iter()
                    .map(|(_, bytes, _)| per_prefix(*bytes))
                    .collect(),
            );
            report.add(
                "rpki",
                contender,
                "RSS growth per prefix",
                size,
                "B",
                runs.iter().map(|(_, _, rss)| per_prefix(*rss)).collect(),
            );
        }
        report.add(
            "rpki",
            "with validation",
            "VRP table bytes per prefix",
            size,
            "B",
            vec![per_prefix(vrp_bytes)],
        );
        report.add(
            "rpki",
            "with validation",
            &format!("{vrp_count} VRPs loaded onto the table, s"),
            size,
            "s",
            load,
        );
        report.add(
            "rpki",
            "with validation",
            &format!("{DELTA} VRP changes, s"),
            size,
            "s",
            delta,
        );
    }
    Ok(())
}
