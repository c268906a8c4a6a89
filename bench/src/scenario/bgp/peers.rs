//! More than one peer sending the same table (`--peers N`, the replaying
//! feeder only). Each peer has a tunnel and a session of its own to the
//! receiver, and its own address there (its router ID and its next
//! hops); the table, its attribute sets and the peer AS are the same.
//!
//! The first peer's paths are best (lowest router ID, lowest neighbor
//! address), and every receiver here puts one path per prefix in the
//! kernel (wgd's `max_paths = 1`, BIRD's kernel protocol without `merge
//! paths`, FRR with `maximum-paths 1`), so the other peers' tables change
//! nothing in the kernel. To see when a receiver has taken one, the peer
//! sends after it a prefix of its own outside the table, its marker
//! (198.19.N.0/24, N the peer's number from 0): a receiver takes a
//! session's UPDATEs in order, so the marker's route in the kernel says
//! the table before it was taken. Withdrawals the same way, the marker's
//! withdrawal last.
//!
//! With more than one peer the receivers export nothing to the peers
//! (wgd: the neighbors' export `default = "deny"`; BIRD: `export none`, as
//! with one; FRR: a route map that denies all), so that the first peer's
//! routes are not sent on to the others.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::PEER_AS;
use crate::feeder::{self, Session, Stream, Updates};
use crate::kernel::Watch;
use crate::lab::Link;
use crate::prefixes::{IpPrefix, Prefix};
use crate::table::{PathAttributes, Table};

/// What one replaying peer sends: the table with its own next hops, and
/// its marker.
#[derive(Debug)]
pub struct Replay {
    pub updates: Updates,
    pub marker: Updates,
}

/// The marker of peer `number` (from 0): 198.19.N.0/24, in the benchmark
/// range that the tables leave out (the underlays use 198.18.0.0/16).
fn marker(number: usize) -> anyhow::Result<IpPrefix> {
    let octet = u8::try_from(number).context("a marker per peer, up to 256")?;
    Ok(IpPrefix::V4(Prefix {
        address: u32::from_be_bytes([198, 19, octet, 0]),
        len: 24,
    }))
}

/// Each peer's UPDATEs for `table`, one peer per tunnel in `links`.
pub fn replays(table: &Table, links: &[Link]) -> anyhow::Result<Vec<Replay>> {
    links
        .iter()
        .enumerate()
        .map(|(number, link)| {
            let next_hops = super::Receiver::next_hops(link)?;
            let marker = marker(number)?;
            anyhow::ensure!(
                !table.prefixes.contains(&marker),
                "the table has {marker}, the marker of peer {}",
                number + 1
            );
            let alone = Table::from_routes([(marker, PathAttributes::with_path(Vec::new()))]);
            Ok(Replay {
                updates: feeder::encode(table, PEER_AS, next_hops),
                marker: feeder::encode(&alone, PEER_AS, next_hops),
            })
        })
        .collect()
}

/// wgd's `[[bgp.neighbor]]` sections, one per peer; with more than one,
/// each exports nothing.
pub fn wgd_neighbors(links: &[Link]) -> String {
    let export = if links.len() > 1 {
        "\n[bgp.neighbor.export]\ndefault = \"deny\"\n"
    } else {
        ""
    };
    links
        .iter()
        .map(|link| {
            format!(
                "\n[[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {PEER_AS}\n{export}",
                link.address_b()
            )
        })
        .collect()
}

/// BIRD's `protocol bgp` per peer, with `channel6` (the IPv6 channel, or
/// nothing) in each.
pub fn bird_protocols(links: &[Link], asn: u32, channel6: &str) -> String {
    links
        .iter()
        .enumerate()
        .map(|(number, link)| {
            let (local, peer) = (link.address_a(), link.address_b());
            // The first as with one peer: `peer`; then `peer2`, `peer3`.
            let name = match number {
                0 => "peer".to_owned(),
                _ => format!("peer{}", number + 1),
            };
            format!(
                "protocol bgp {name} {{\n  local {local} as {asn};\n  \
                 neighbor {peer} as {PEER_AS};\n\
                 \x20 connect delay time 1;\n  connect retry time 1;\n  graceful restart off;\n\
                 \x20 ipv4 {{ import all; export none; }};\n{channel6}}}\n"
            )
        })
        .collect()
}

/// FRR's neighbors under `router bgp` and their address families; with
/// more than one peer, one path per prefix and a route map that sends the
/// peers nothing.
pub fn frr_neighbors(links: &[Link], ipv6: bool) -> String {
    let several = links.len() > 1;
    let mut text: String = links
        .iter()
        .map(|link| format!(" neighbor {} remote-as {PEER_AS}\n", link.address_b()))
        .collect();
    let families: &[&str] = if ipv6 { &["ipv4", "ipv6"] } else { &["ipv4"] };
    for family in families {
        text.push_str(&format!("address-family {family} unicast\n"));
        if several {
            text.push_str("  maximum-paths 1\n");
        }
        for link in links {
            let peer = link.address_b();
            text.push_str(&format!("  neighbor {peer} activate\n"));
            if several {
                text.push_str(&format!("  neighbor {peer} route-map NOTHING out\n"));
            }
        }
        text.push_str(" exit-address-family\n");
    }
    if several {
        text.push_str("route-map NOTHING deny 10\n");
    }
    text
}

/// Sends `streams` (a table's UPDATEs, then the marker's) on `session` and
/// waits until the receiver's kernel has `target` routes, the marker in or
/// out; the time from the first UPDATE. `up` says whether every session
/// is still up, given the count.
pub fn send_marked(
    watch: &Watch,
    session: &Session,
    streams: [&Stream; 2],
    target: usize,
    deadline: Duration,
    up: impl Fn(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let sending = Instant::now();
    for stream in streams {
        session.send(stream)?;
    }
    watch.until(sending, deadline, "the marker after the table", |count| {
        up(count)?;
        Ok(count == target)
    })
}

/// An error if the receiver ended one of `sessions`.
pub fn still_up<'a>(
    sessions: impl IntoIterator<Item = &'a Session>,
    count: usize,
) -> anyhow::Result<()> {
    for (number, session) in sessions.into_iter().enumerate() {
        if let Some(end) = session.ended() {
            anyhow::bail!(
                "the receiver ended the session of peer {} ({end}) with {count} routes in",
                number + 2
            );
        }
    }
    Ok(())
}

/// An extra peer's figures, run by run.
#[derive(Debug, Default)]
pub struct Rows {
    /// From its first UPDATE to its marker in the kernel.
    pub add: Vec<f64>,
    /// The receiver's RSS after its table minus before it, per prefix.
    pub rss: Vec<f64>,
    /// From its first withdrawal to its marker out of the kernel.
    pub withdraw: Vec<f64>,
}
