//! `bgp`: one GoBGP peer (`gobgpd`, its RIB loaded with `gobgp mrt
//! inject` from an MRT file the harness writes) sends N prefixes over a
//! WireGuard tunnel to each receiver in turn: wgd's built-in speaker
//! (`wgd run` with `[bgp]`), BIRD 2 and FRR (`bgpd` + `zebra`) when they
//! are installed. One receiver at a time, so that none competes with
//! another for the two cores:
//!
//! ```text
//!            ┌── tunnel 0 ── receiver wgd  (wgd run, speaker)
//! peer ──────┼── tunnel 1 ── receiver bird (wgd up, bird)
//! (gobgpd)   └── tunnel 2 ── receiver frr  (wgd up, zebra + bgpd)
//! ```
//!
//! Two more receivers when asked (`--receivers gobgp-wgd,gobgp-zebra`):
//! a gobgpd of the receiver's own peers over the tunnel, and either `wgd
//! run` follows its best paths (`[[gobgp]]`) or FRR's zebra takes them
//! (gobgpd's `[zebra]`); see [`super::gobgp_receivers`].
//!
//! Per receiver and run: its daemon starts, gobgpd's neighbor is enabled,
//! and the harness times from the session established (as gobgpd sees
//! it) to all N routes in the receiver's kernel; then `gobgp global rib
//! del all` and the time until none is left. Memory per prefix is the
//! receiver's daemons' RSS with N routes minus before the session, over N.
//! The peer's RIB is loaded again before each receiver (not timed).
//!
//! With `--feeder replay` the peer is the harness's own ([`feeder`]): it
//! takes the session the receiver opens and writes the same table as
//! UPDATEs encoded beforehand, then the withdrawals, as fast as the
//! receiver reads. Add is then timed from the session established as the
//! peer saw it (exactly), withdraw from the first withdrawal sent; the
//! rows go under scenario `bgp-replay`.
//!
//! The replaying peer also measures `session down`, at the end of each
//! run: after the withdrawals it sends the table again on the same
//! session (not timed), and once every route is back in the kernel it
//! sends a NOTIFICATION Cease / Administrative Shutdown and closes the
//! connection; the time is from that NOTIFICATION to no route left. The
//! same session, so that no receiver waits on its connect-retry timer,
//! and the run ends there, since the receiver goes next. None keeps the
//! routes as a graceful restart would: the peer's OPEN offers no graceful
//! restart capability (RFC 4724 lets a receiver keep routes only for a
//! peer that did), and the receivers' own graceful restart is off besides
//! (wgd's `graceful_restart = false`, BIRD's `graceful restart off`, FRR's
//! `bgp graceful-restart-disable`).
//!
//! With gobgpd, `session down` is measured between the fill and the
//! withdrawal instead: `gobgp neighbor disable` (a Cease) with the table
//! in, the time to no route left; then the neighbor is enabled again and
//! gobgpd sends the table again (not timed) before `rib del all`.
//!
//! The peak RSS rows are the receiver's daemons' VmHWM, reset just before
//! the session and just before the session down, minus their RSS before
//! the session, over N: what a fill and an emptying cost at their worst.
//!
//! The table (`--table real`, the default, `--table uniform`, or `--mrt
//! FILE`: [`Source`]) is the same for every receiver and feeder; the
//! report prints its shape (prefixes, distinct attribute sets, UPDATEs
//! when each carries prefixes of one set, as the replay feeder sends).
//! A table with IPv6 routes (`--ipv6 PERCENT`, or a dump's) gives the
//! tunnels IPv6 addresses for their next hops; the routes go over the
//! same IPv4 session, and every receiver puts them in its IPv6 table.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use wgd_labs::{Daemon, Namespace, wait_for};
use wgd_tests::bird::Bird;
use wgd_tests::frr::Frr;
use wgd_tests::gobgp::Gobgp;

mod gobgpd;
mod peers;

pub use gobgpd::NEXT_HOP_SELF;

use super::{PROTO_BIRD, PROTO_FRR_BGP, PROTO_WGD, gobgp_receivers};
use crate::feeder::{self, Feeder};
use crate::kernel::{Counter, Watch};
use crate::lab::{
    Link, Wgd, peak_rss_bytes, reset_peak_rss, rss_bytes, time_until, tunnel, wait_for_handshake,
    write_private,
};
use crate::report::{Count, Report};
use crate::table::{Shape, Source};
use crate::{Common, check_interrupted, mrt, progress};
use gobgpd::{empty, gobgp_config, load, shut_down};

/// Who sends the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeederKind {
    /// gobgpd, its RIB loaded from an MRT file.
    Gobgpd,
    /// The harness, replaying UPDATEs encoded before the session.
    Replay,
}

/// The peer at work: gobgpd, or replaying feeders, one per receiver
/// and peer.
enum Peer {
    Gobgp(Gobgp),
    Replay(Vec<Vec<Feeder>>),
}
const PEER_AS: u32 = 65002;
/// Longest wait for the routes to arrive or leave: a minute, and a
/// minute more per 10,000 prefixes.
fn deadline(size: usize) -> Duration {
    Duration::from_secs(60 + 6 * (size as u64 / 1_000))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wgd,
    Bird,
    Frr,
    /// gobgpd of its own, `wgd run` following it ([`gobgp_receivers`]).
    GobgpWgd,
    /// gobgpd of its own with FRR's zebra.
    GobgpZebra,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Wgd => "wgd speaker",
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::GobgpWgd => "gobgp + wgd follower",
            Kind::GobgpZebra => "gobgp + zebra",
        }
    }
    fn asn(self) -> u32 {
        match self {
            Kind::Wgd => 65001,
            Kind::Bird => 65010,
            Kind::Frr => 65020,
            Kind::GobgpWgd => 65030,
            Kind::GobgpZebra => 65040,
        }
    }
    fn protocol(self) -> u8 {
        match self {
            Kind::Wgd | Kind::GobgpWgd => PROTO_WGD,
            Kind::Bird => PROTO_BIRD,
            // zebra puts gobgpd's routes in as BGP routes, as bgpd's.
            Kind::Frr | Kind::GobgpZebra => PROTO_FRR_BGP,
        }
    }
    /// The process names whose memory counts for this receiver.
    fn processes(self) -> &'static [&'static str] {
        match self {
            Kind::Wgd => &["wgd"],
            Kind::Bird => &["bird"],
            Kind::Frr => &["bgpd", "zebra"],
            Kind::GobgpWgd => &["gobgpd", "wgd"],
            Kind::GobgpZebra => &["gobgpd", "zebra"],
        }
    }
    /// Whether `wgd run` brings the tunnel up (else `wgd up` does).
    fn runs_wgd(self) -> bool {
        matches!(self, Kind::Wgd | Kind::GobgpWgd)
    }
}

/// A receiver's namespace and its tunnels to the peer: one per peer
/// (`--peers`), the first peer's first.
#[derive(Debug)]
struct Receiver {
    kind: Kind,
    namespace: Namespace,
    links: Vec<Link>,
    /// For wgd: the config of `wgd run`.
    config: std::path::PathBuf,
    counter: Counter,
    /// Whether the table has IPv6 routes (the tunnel has IPv6 addresses
    /// for their next hops, the session carries IPv6 unicast).
    ipv6: bool,
}

impl Receiver {
    /// The tunnel to the first peer.
    fn link(&self) -> &Link {
        &self.links[0]
    }

    /// The next hops of the peer on tunnel `link`.
    fn next_hops(link: &Link) -> anyhow::Result<feeder::NextHops> {
        Ok(feeder::NextHops {
            ipv4: link.address_b().parse()?,
            ipv6: link.address6_b().parse()?,
        })
    }
}

/// Whatever runs the receiver's BGP; dropped to stop it.
#[derive(Debug)]
#[allow(dead_code)] // held for their Drop
enum Running {
    Wgd(Daemon),
    Bird(Bird),
    Frr(Frr),
    Gobgp(gobgp_receivers::Running),
}

/// Who sends the table, and over how many sessions to each receiver.
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    pub kind: FeederKind,
    /// Peers sending the same table, each on a tunnel and session of its
    /// own (the replaying feeder only); the first one's paths are best.
    pub peers: usize,
}

pub fn run(
    wgd: &Wgd,
    common: &Common,
    sizes: &[usize],
    wanted: &[String],
    feed: Feed,
    source: &Source,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (feeding, peers) = (feed.kind, feed.peers);
    let scenario = match (feeding, peers) {
        (FeederKind::Gobgpd, _) => "bgp".to_owned(),
        (FeederKind::Replay, 1) => "bgp-replay".to_owned(),
        (FeederKind::Replay, _) => format!("bgp-replay, {peers} peers"),
    };
    let scenario = scenario.as_str();
    anyhow::ensure!(
        feeding == FeederKind::Replay || (installed("gobgpd") && installed("gobgp")),
        "the bgp scenario needs gobgpd and gobgp (Debian package gobgpd), or --feeder replay"
    );
    anyhow::ensure!(
        peers >= 1 && (peers == 1 || feeding == FeederKind::Replay),
        "--peers {peers}: more than one peer needs --feeder replay"
    );
    // Tunnel numbers (and their 10.255.N.0/31) are one octet.
    anyhow::ensure!(peers <= 16, "--peers {peers}: at most 16");
    let mut kinds = Vec::new();
    for name in wanted {
        match name.as_str() {
            "wgd" => kinds.push(Kind::Wgd),
            "bird" if installed("bird") && installed("birdc") => kinds.push(Kind::Bird),
            "bird" => report.skip("bgp: bird (bird2 is not installed)"),
            "frr" if Path::new("/usr/lib/frr/bgpd").exists() && installed("vtysh") => {
                kinds.push(Kind::Frr);
            }
            "frr" => report.skip("bgp: frr (frr is not installed)"),
            "gobgp-wgd" if installed("gobgpd") && installed("gobgp") => {
                kinds.push(Kind::GobgpWgd);
            }
            "gobgp-zebra" if installed("gobgpd") && Path::new("/usr/lib/frr/zebra").exists() => {
                progress("bgp: trying gobgpd with zebra");
                match gobgp_receivers::zebra_probe() {
                    Ok(()) => kinds.push(Kind::GobgpZebra),
                    Err(error) => report.skip(format!(
                        "bgp: gobgp + zebra (gobgpd and zebra do not talk here: {error:#})"
                    )),
                }
            }
            "gobgp-wgd" | "gobgp-zebra" => {
                report.skip(format!(
                    "bgp: {name} (gobgpd, or frr's zebra, is not installed)"
                ));
            }
            other => {
                anyhow::bail!("unknown receiver {other:?} (wgd, bird, frr, gobgp-wgd, gobgp-zebra)")
            }
        }
    }
    if peers > 1 {
        kinds.retain(|kind| {
            let takes = matches!(kind, Kind::Wgd | Kind::Bird | Kind::Frr);
            if !takes {
                report.skip(format!("bgp: {} (one peer only)", kind.name()));
            }
            takes
        });
    }
    progress(format!(
        "bgp: receivers {}",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let ipv6 = source.ipv6();
    report.table = source.label();
    let peer = Namespace::new("bp")?;
    let mut receivers = Vec::new();
    let mut peer_config = String::new();
    for (index, kind) in kinds.iter().enumerate() {
        let namespace = Namespace::new("br")?;
        let (mut links, mut sections) = (Vec::new(), String::new());
        for number in 0..peers {
            let (link, section, peer_section) =
                tunnel(&namespace, &peer, (index * peers + number) as u8, ipv6)?;
            peer_config.push_str(&peer_section);
            sections.push_str(&section);
            links.push(link);
        }
        let config = namespace.dir().join("wgd.toml");
        let text = match kind {
            Kind::Wgd => format!(
                "[daemon]\napi = \"{}\"\nmetrics = \"127.0.0.1:9586\"\n\n[bgp]\nasn = {}\n\
                 graceful_restart = false\n{}{sections}",
                namespace.dir().join("wgd.sock").display(),
                kind.asn(),
                peers::wgd_neighbors(&links),
            ),
            Kind::GobgpWgd => format!(
                "[daemon]\napi = \"{}\"\nmetrics = \"127.0.0.1:9586\"\n{}{sections}",
                namespace.dir().join("wgd.sock").display(),
                gobgp_receivers::follower_section(),
            ),
            _ => sections,
        };
        write_private(&config, &text)?;
        if !kind.runs_wgd() {
            wgd.run(
                &namespace,
                &["up", config.to_str().context("a UTF-8 path")?],
            )?;
        }
        let counter = Counter::new(namespace.name())?;
        receivers.push(Receiver {
            kind: *kind,
            namespace,
            links,
            config,
            counter,
            ipv6,
        });
    }
    let peer_path = peer.dir().join("peer.toml");
    write_private(&peer_path, &peer_config)?;
    wgd.run(&peer, &["up", peer_path.to_str().context("a UTF-8 path")?])?;
    let speaker = match feeding {
        FeederKind::Gobgpd => Peer::Gobgp(Gobgp::start(&peer, &gobgp_config(&receivers, ipv6))?),
        FeederKind::Replay => Peer::Replay(
            receivers
                .iter()
                .map(|receiver| {
                    receiver
                        .links
                        .iter()
                        .map(|link| {
                            Feeder::listen(peer.name(), link.address_b().parse()?, PEER_AS, ipv6)
                        })
                        .collect::<anyhow::Result<_>>()
                })
                .collect::<anyhow::Result<_>>()?,
        ),
    };

    for &size in sizes {
        let table = source.table(size);
        let next_hops = receivers
            .first()
            .map(|receiver| Receiver::next_hops(receiver.link()))
            .transpose()?
            .context("no receiver")?;
        let updates = feeder::encode(&table, PEER_AS, next_hops);
        report.shape(Shape::of(
            scenario,
            &source.name(),
            &table,
            Some(updates.announce.messages),
        ));
        drop(updates);
        // One file for all receivers (gobgpd gives each its own IPv4 next
        // hop), or one per receiver with its IPv6 next hop in it.
        let mut mrt_paths: Vec<String> = Vec::new();
        if let Peer::Gobgp(_) = speaker {
            for (index, receiver) in receivers.iter().enumerate() {
                if index > 0 && !ipv6 {
                    mrt_paths.push(mrt_paths[0].clone());
                    continue;
                }
                let path = peer.dir().join(format!("rib-{size}-{index}.mrt"));
                let next_hop6 = Receiver::next_hops(receiver.link())?.ipv6;
                mrt::write(&path, &table, "10.255.0.1".parse()?, PEER_AS, next_hop6)?;
                mrt_paths.push(path.to_str().context("a UTF-8 path")?.to_owned());
            }
        }
        let mut rows: Vec<Rows> = receivers.iter().map(|_| Rows::default()).collect();
        for run in 1..=common.runs {
            for (index, (receiver, rows)) in receivers.iter().zip(&mut rows).enumerate() {
                check_interrupted()?;
                let measured = match &speaker {
                    Peer::Gobgp(gobgp) => {
                        progress(format!(
                            "bgp: {size} prefixes to {}, run {run}/{}: loading gobgpd",
                            receiver.kind.name(),
                            common.runs
                        ));
                        let started = Instant::now();
                        load(gobgp, &mrt_paths[index], size)?;
                        progress(format!(
                            "bgp: gobgpd loaded in {:.1} s; measuring",
                            started.elapsed().as_secs_f64()
                        ));
                        measure(wgd, Feeding::Gobgp(gobgp), receiver, size, rows)
                    }
                    Peer::Replay(feeders) => {
                        let sent = peers::replays(&table, &receiver.links)?;
                        progress(format!(
                            "bgp: {size} prefixes to {} in {} UPDATEs from {peers} peer(s), \
                             run {run}/{}",
                            receiver.kind.name(),
                            sent[0].updates.announce.messages,
                            common.runs
                        ));
                        measure(
                            wgd,
                            Feeding::Replay(&feeders[index], &sent),
                            receiver,
                            size,
                            rows,
                        )
                    }
                };
                let left = measured.with_context(|| {
                    format!("{} receiving {size} prefixes", receiver.kind.name())
                })?;
                report.count(Count {
                    scenario: scenario.to_owned(),
                    contender: receiver.kind.name().to_owned(),
                    size,
                    run,
                    after_add: size,
                    after_withdraw: left.after_withdraw,
                    after_session_down: left.after_session_down,
                });
            }
        }
        for (receiver, rows) in receivers.iter().zip(rows) {
            let name = receiver.kind.name();
            report.add(scenario, name, "add", size, "s", rows.add);
            report.add(scenario, name, "withdraw", size, "s", rows.withdraw);
            if !rows.session_down.is_empty() {
                report.add(scenario, name, "session down", size, "s", rows.session_down);
            }
            report.add(scenario, name, "session up", size, "s", rows.established);
            let total = match speaker {
                Peer::Gobgp(_) => "enable to all",
                Peer::Replay(_) => "start to all",
            };
            report.add(scenario, name, total, size, "s", rows.total);
            report.add(scenario, name, "rss per prefix", size, "bytes", rows.rss);
            let metric = "rss per prefix, at rest";
            report.add(scenario, name, metric, size, "bytes", rows.rss_at_rest);
            report.add(
                scenario,
                name,
                "peak rss per prefix, add",
                size,
                "bytes",
                rows.peak_add,
            );
            if !rows.peak_down.is_empty() {
                let metric = "peak rss per prefix, session down";
                report.add(scenario, name, metric, size, "bytes", rows.peak_down);
            }
            for (number, rows) in rows.peers.into_iter().enumerate() {
                let peer = number + 2;
                let metric = format!("add, peer {peer} (same table)");
                report.add(scenario, name, &metric, size, "s", rows.add);
                let metric = format!("rss per prefix, peer {peer} (extra)");
                report.add(scenario, name, &metric, size, "bytes", rows.rss);
                let metric = format!("withdraw, peer {peer}");
                report.add(scenario, name, &metric, size, "s", rows.withdraw);
            }
        }
    }
    if let Peer::Replay(_) = speaker {
        report.note(
            "bgp-replay: the peer is the harness's own, replaying UPDATEs encoded before the \
             session; add is from the session established (the peer's KEEPALIVE received) to \
             the route notification that made all routes present in the receiver's kernel; \
             withdraw from the first withdrawal sent to the one that left none; session down \
             from the NOTIFICATION Cease that ends the session (the table sent again on it \
             after the withdrawals, not timed) to the one that left none, graceful restart off \
             on both sides; session up is from the receiver's start to established, start to \
             all both together; a peak RSS is the receiver's daemons' VmHWM (reset with \
             clear_refs just before: the session, and the Cease) minus their RSS before the \
             session; rss at rest is read 2 s after the table's arrival, nothing sent \
             meanwhile"
                .to_owned(),
        );
        if peers > 1 {
            report.note(format!(
                "{scenario}: {peers} peers send the same table, each on a tunnel and session of \
                 its own, all sessions up before the first UPDATE; the first peer's paths are \
                 best (lowest router ID) and every receiver puts one path per prefix in the \
                 kernel (wgd max_paths = 1, BIRD without merge paths, FRR maximum-paths 1), so \
                 the rows above are the first peer's; a later peer's table changes nothing in \
                 the kernel: its add is from its first UPDATE to a marker prefix it sends after \
                 the table (198.19.N.0/24) in the kernel, its withdraw from its first \
                 withdrawal to the marker's leaving (the later peers withdraw before the \
                 first); its rss is the receiver's RSS after its marker minus before its \
                 table, per prefix of the table; the receivers export nothing to the peers; \
                 session down is the first peer's, the others' sessions up and empty"
            ));
        }
        drop(receivers);
        return Ok(());
    }
    report.note(
        "bgp: add is from the session established (gobgpd's view, polled at 50 ms) to the \
         route notification that made all routes present in the receiver's kernel; withdraw \
         from `gobgp global rib del all` to the one that left none; session down from \
         `gobgp neighbor disable` (a Cease) with the table in to the notification that left \
         none (then the neighbor is enabled and the table comes back, not timed, before the \
         withdrawal); session up is from enabling the neighbor, and enable to all is both \
         together (gobgpd with a large RIB reports the session late, so add alone can miss \
         routes that arrived before); a peak RSS is the receiver's daemons' VmHWM (reset \
         with clear_refs just before: the session, and the shutdown) minus their RSS before \
         the session; rss at rest is read 2 s after the table's arrival, nothing sent \
         meanwhile"
            .to_owned(),
    );
    drop(receivers);
    drop(speaker);
    Ok(())
}

#[derive(Debug, Default)]
struct Rows {
    add: Vec<f64>,
    withdraw: Vec<f64>,
    /// From the replaying peer's Cease to no route left (none with gobgpd).
    session_down: Vec<f64>,
    established: Vec<f64>,
    /// From enabling the neighbor to all routes in the kernel: the robust
    /// figure when gobgpd is slow to report the session (a large RIB).
    total: Vec<f64>,
    rss: Vec<f64>,
    /// The RSS [`AT_REST`] after the table came in, nothing sent meanwhile:
    /// the RSS at the table's arrival includes what was still on its way
    /// through the receiver (buffers, batches), and moves with the load.
    rss_at_rest: Vec<f64>,
    /// The peak RSS while the table came in, and from the Cease to no
    /// route left, minus the RSS before the session, per prefix.
    peak_add: Vec<f64>,
    peak_down: Vec<f64>,
    /// The peers after the first, in order (`--peers`).
    peers: Vec<peers::Rows>,
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// RSS of the receiver's daemons (by process name) in its namespace.
/// How long after the table's arrival the RSS is read again, the table at
/// rest.
const AT_REST: Duration = Duration::from_secs(2);

fn rss(receiver: &Receiver) -> anyhow::Result<u64> {
    daemons(receiver)?.into_iter().map(rss_bytes).sum()
}

/// The receiver's daemons' peak RSS since [`reset_peaks`], summed.
fn peak_rss(receiver: &Receiver) -> anyhow::Result<u64> {
    daemons(receiver)?.into_iter().map(peak_rss_bytes).sum()
}

fn reset_peaks(receiver: &Receiver) -> anyhow::Result<()> {
    daemons(receiver)?.into_iter().try_for_each(reset_peak_rss)
}

/// The receiver's daemons in its namespace, by process name.
fn daemons(receiver: &Receiver) -> anyhow::Result<Vec<u32>> {
    let pids = crate::scenario::command(&["ip", "netns", "pids", receiver.namespace.name()])?;
    let mut daemons = Vec::new();
    for pid in pids.split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if receiver.kind.processes().contains(&comm.trim()) {
            daemons.push(pid.parse()?);
        }
    }
    Ok(daemons)
}

fn start(wgd: &Wgd, receiver: &Receiver) -> anyhow::Result<Running> {
    let namespace = &receiver.namespace;
    let local = receiver.link().address_a();
    let asn = receiver.kind.asn();
    // IPv6 routes over the same (IPv4) session, into the IPv6 table.
    let (bird_kernel6, bird_channel6) = if receiver.ipv6 {
        (
            "protocol kernel kernel6 {\n  ipv6 { import none; export all; };\n}\n",
            "  ipv6 { import all; export none; };\n",
        )
    } else {
        ("", "")
    };
    Ok(match receiver.kind {
        Kind::Wgd => {
            let config = receiver.config.to_str().context("a UTF-8 path")?;
            let daemon = wgd.spawn(namespace, &["run", "-c", config])?;
            let socket = namespace.dir().join("wgd.sock");
            let socket = socket.to_str().context("a UTF-8 path")?.to_owned();
            wait_for(Duration::from_secs(30), "wgd run's API", || {
                wgd.run(namespace, &["bgp", "summary", "--api", &socket])
                    .is_ok()
            })?;
            for link in &receiver.links {
                wait_for_handshake(namespace, &link.tunnel_a)?;
            }
            Running::Wgd(daemon)
        }
        Kind::Bird => Running::Bird(Bird::start(
            namespace,
            &format!(
                "router id {local};\nprotocol device {{\n}}\n\
                 protocol kernel kernel4 {{\n  ipv4 {{ import none; export all; }};\n}}\n\
                 {bird_kernel6}{}",
                peers::bird_protocols(&receiver.links, asn, bird_channel6)
            ),
        )?),
        Kind::Frr => Running::Frr(Frr::start(
            namespace,
            &format!(
                "frr defaults traditional\nhostname bench\n\
                 router bgp {asn}\n bgp router-id {local}\n no bgp ebgp-requires-policy\n\
                 \x20bgp graceful-restart-disable\n\
                 no bgp network import-check\n{}",
                peers::frr_neighbors(&receiver.links, receiver.ipv6)
            ),
        )?),
        Kind::GobgpWgd => Running::Gobgp(gobgp_receivers::start_follower(
            wgd,
            namespace,
            receiver.config.to_str().context("a UTF-8 path")?,
            receiver.link(),
            &gobgp_receivers::gobgp_config(receiver.link(), asn, PEER_AS, receiver.ipv6),
        )?),
        Kind::GobgpZebra => Running::Gobgp(gobgp_receivers::start_zebra(
            namespace,
            &gobgp_receivers::gobgp_config(receiver.link(), asn, PEER_AS, receiver.ipv6),
        )?),
    })
}

/// Who sends the table in one run: gobgpd, or a replaying feeder per
/// peer with what it sends.
#[derive(Clone, Copy)]
enum Feeding<'a> {
    Gobgp(&'a Gobgp),
    Replay(&'a [Feeder], &'a [peers::Replay]),
}

/// Routes the receiver's kernel held after a run's phases.
struct Left {
    after_withdraw: usize,
    /// After the replaying peer's Cease.
    after_session_down: Option<usize>,
}

/// One run: the receiver starts, the peer brings the session up and sends
/// the table, then withdraws it; the replaying peer then sends it again
/// and ends the session.
fn measure(
    wgd: &Wgd,
    feeding: Feeding<'_>,
    receiver: &Receiver,
    size: usize,
    rows: &mut Rows,
) -> anyhow::Result<Left> {
    let starting = Instant::now();
    let running = start(wgd, receiver)?;
    let result = measure_running(feeding, receiver, starting, size, rows);
    result.with_context(|| {
        let peer = match feeding {
            Feeding::Gobgp(gobgp) => {
                format!("\ngobgpd:\n{}", gobgp.show(&receiver.link().address_a()))
            }
            Feeding::Replay(..) => String::new(),
        };
        format!(
            "kernel routes of the receiver: {:?}{peer}\nreceiver:\n{}",
            receiver.counter.count(receiver.kind.protocol()),
            said(&running)
        )
    })
}

/// What the receiver's daemons say about themselves, for an error.
fn said(running: &Running) -> String {
    match running {
        Running::Wgd(daemon) => super::fib::tail(&daemon.log()),
        Running::Bird(bird) => format!("{}\n{}", bird.protocols(), super::fib::tail(&bird.log())),
        Running::Frr(frr) => frr
            .vtysh(&["show bgp summary", "show ip route summary"])
            .unwrap_or_else(|error| format!("{error:#}")),
        Running::Gobgp(running) => running.said(),
    }
}

/// The peer's side of a session that is up.
enum Live<'a> {
    Gobgp {
        gobgp: &'a Gobgp,
        neighbor: String,
    },
    Replay {
        session: feeder::Session,
        updates: &'a feeder::Updates,
    },
}

impl Live<'_> {
    /// Sends the table (gobgpd sends its RIB on its own).
    fn announce(&self) -> anyhow::Result<()> {
        match self {
            Live::Gobgp { .. } => Ok(()),
            Live::Replay { session, updates } => session.send(&updates.announce),
        }
    }

    fn withdraw(&self) -> anyhow::Result<()> {
        match self {
            Live::Gobgp { gobgp, .. } => empty(gobgp),
            Live::Replay { session, updates } => session.send(&updates.withdraw),
        }
    }

    /// An error if the receiver ended the session (only the replaying
    /// peer hears of it), saying how many routes it had in.
    fn still_up(&self, count: usize) -> anyhow::Result<()> {
        if let Live::Replay { session, .. } = self
            && let Some(end) = session.ended()
        {
            anyhow::bail!("the receiver ended the session ({end}) with {count} routes in");
        }
        Ok(())
    }

    /// Ends the session: gobgpd's neighbor goes down (not timed); the
    /// replaying peer sends the table again and, once all of it is in the
    /// kernel, a Cease: the time from it to no route left.
    /// The receiver's peak RSS is reset just before the Cease.
    fn end(
        self,
        watch: &Watch,
        receiver: &Receiver,
        size: usize,
    ) -> anyhow::Result<Option<Duration>> {
        match self {
            Live::Gobgp { gobgp, neighbor } => {
                gobgp.cli(&["neighbor", &neighbor, "disable"])?;
                Ok(None)
            }
            live @ Live::Replay { .. } => {
                let again = Instant::now();
                live.announce()?;
                watch.until(again, deadline(size), "all routes back", |count| {
                    live.still_up(count)?;
                    Ok(count == size)
                })?;
                let Live::Replay { session, .. } = live else {
                    unreachable!("matched above");
                };
                reset_peaks(receiver)?;
                let ceased = session.cease();
                watch
                    .until(
                        ceased,
                        deadline(size),
                        "no route left after the Cease",
                        |count| Ok(count == 0),
                    )
                    .map(Some)
            }
        }
    }
}

/// A session that went down with the table in: the time from the peer's
/// NOTIFICATION to no route left, the receiver's peak RSS meanwhile, and
/// the routes left.
struct Shutdown {
    time: Duration,
    peak: u64,
    left: usize,
}

fn measure_running(
    feeding: Feeding<'_>,
    receiver: &Receiver,
    starting: Instant,
    size: usize,
    rows: &mut Rows,
) -> anyhow::Result<Left> {
    let before = rss(receiver)?;
    reset_peaks(receiver)?;
    let watch = Watch::new(receiver.namespace.name(), receiver.kind.protocol())?;
    // Session up: from enabling gobgpd's neighbor, or from the receiver's
    // start to the replaying peer's session.
    let (up, live, others) = match feeding {
        Feeding::Gobgp(gobgp) => {
            let neighbor = receiver.link().address_a();
            let enabled = Instant::now();
            gobgp.cli(&["neighbor", &neighbor, "enable"])?;
            let up = time_until(
                enabled,
                Duration::from_millis(50),
                Duration::from_secs(120),
                "the session to be established",
                || Ok(gobgp.established(&neighbor)),
            )?;
            (up, Live::Gobgp { gobgp, neighbor }, Vec::new())
        }
        Feeding::Replay(feeders, replays) => {
            let session = feeders[0].accept(Duration::from_secs(60))?;
            let up = starting.elapsed();
            // The other peers' sessions come up now too, with nothing sent.
            let others = feeders[1..]
                .iter()
                .zip(&replays[1..])
                .map(|(feeder, replay)| Ok((feeder.accept(Duration::from_secs(60))?, replay)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let updates = &replays[0].updates;
            (up, Live::Replay { session, updates }, others)
        }
    };
    let sessions = || others.iter().map(|(session, _)| session);
    let established = Instant::now();
    live.announce()?;
    let add = watch.until(
        established,
        deadline(size),
        "all routes in the kernel",
        |count| {
            live.still_up(count)?;
            peers::still_up(sessions(), count)?;
            Ok(count == size)
        },
    )?;
    let after = rss(receiver)?;
    let peak_add = peak_rss(receiver)?;
    // A measure taken at a fixed time, not a wait for a condition.
    std::thread::sleep(AT_REST);
    let at_rest = rss(receiver)?;
    // The other peers send the same table, one after the other; the
    // kernel does not change but for each one's marker.
    let mut taken = Vec::new();
    for (number, (session, replay)) in others.iter().enumerate() {
        let streams = [&replay.updates.announce, &replay.marker.announce];
        let time = peers::send_marked(
            &watch,
            session,
            streams,
            size + number + 1,
            deadline(size),
            |count| {
                live.still_up(count)?;
                peers::still_up(sessions(), count)
            },
        )?;
        taken.push((time, rss(receiver)?));
    }
    // gobgpd's neighbor goes down with the table in; enabled again, it
    // gets the table again before the withdrawal. (The replaying peer's
    // session ends last, see `Live::end`.)
    let shutdown = match &live {
        Live::Gobgp { gobgp, neighbor } => {
            Some(shut_down(gobgp, neighbor, &watch, receiver, size)?)
        }
        Live::Replay { .. } => None,
    };
    // The other peers withdraw, the last first, before the first peer.
    let mut dropped = Vec::new();
    for (number, (session, replay)) in others.iter().enumerate().rev() {
        let streams = [&replay.updates.withdraw, &replay.marker.withdraw];
        let time = peers::send_marked(
            &watch,
            session,
            streams,
            size + number,
            deadline(size),
            |count| {
                live.still_up(count)?;
                peers::still_up(sessions(), count)
            },
        )?;
        dropped.push(time);
    }
    dropped.reverse();
    let withdrawing = Instant::now();
    live.withdraw()?;
    let withdraw = watch.until(withdrawing, deadline(size), "no route left", |count| {
        live.still_up(count)?;
        Ok(count == 0)
    })?;
    let after_withdraw = receiver.counter.count(receiver.kind.protocol())?;
    let ended = live.end(&watch, receiver, size)?;
    let shutdown = match (shutdown, ended) {
        (Some(shutdown), _) => Some(shutdown),
        (None, Some(time)) => Some(Shutdown {
            time,
            peak: peak_rss(receiver)?,
            left: receiver.counter.count(receiver.kind.protocol())?,
        }),
        (None, None) => None,
    };
    let session_down = shutdown.as_ref().map(|shutdown| shutdown.time);
    let peak_down = shutdown.as_ref().map(|shutdown| shutdown.peak);
    let after_session_down = shutdown.as_ref().map(|shutdown| shutdown.left);
    rows.add.push(add.as_secs_f64());
    rows.withdraw.push(withdraw.as_secs_f64());
    rows.session_down
        .extend(session_down.map(|down| down.as_secs_f64()));
    rows.established.push(up.as_secs_f64());
    rows.total.push((up + add).as_secs_f64());
    let per_prefix = |bytes: u64| bytes.saturating_sub(before) as f64 / size as f64;
    rows.rss.push(per_prefix(after));
    rows.rss_at_rest.push(per_prefix(at_rest));
    rows.peak_add.push(per_prefix(peak_add));
    rows.peak_down.extend(peak_down.map(per_prefix));
    rows.peers.resize_with(others.len(), peers::Rows::default);
    let mut last = after;
    for (rows, ((add, now), withdraw)) in rows.peers.iter_mut().zip(taken.into_iter().zip(dropped))
    {
        rows.add.push(add.as_secs_f64());
        rows.rss.push((now as f64 - last as f64) / size as f64);
        rows.withdraw.push(withdraw.as_secs_f64());
        last = now;
    }
    Ok(Left {
        after_withdraw,
        after_session_down,
    })
}
