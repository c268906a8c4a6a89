//! `failover`: site A (`wgd run` with its BGP speaker) has two tunnels to
//! site B, each over an underlay of its own; B's gobgpd announces N
//! prefixes (and B's LAN) over both sessions. Equal paths: A prefers the
//! one from the lower neighbor address, tunnel 0. The harness cuts tunnel
//! 0's underlay (B's end of the veth goes down) and measures the time
//! until no route of A goes through tunnel 0, until all N are through
//! tunnel 1, and until a ping from A to B's LAN (sent every 10 ms) is
//! answered again. Then the underlay comes back and the routes return to
//! tunnel 0 before the next run.
//!
//! One contender per way of noticing the cut (see [`Liveness`]): BGP's
//! hold time of 3 s on both sides (the shortest RFC 4271 allows), or BFD
//! on both sessions at 300 ms x 3 (FRR's, BIRD's and wgd's defaults) or
//! 100 ms x 3, with a hold time of 9 s then, so that BFD is what notices.
//! gobgpd has no BFD: B's BFD sessions are BIRD's (`protocol bfd` with a
//! `neighbor` per tunnel, no BGP in it). A WireGuard peer is declared dead
//! by wgd only after `peer_dead_after`, which is left long here. Each
//! contender gets a lab of its own; the goals (traffic back within 1.2 s
//! at 300 ms x 3, 0.5 s at 100 ms x 3) are printed beside the figures.
//!
//! Pings go from A's address on underlay 1 and B answers them on that
//! underlay directly (a connected route), so only A's forward path, the
//! one that fails over, decides whether they arrive.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bird::Bird;
use wgd_tests::gobgp::Gobgp;

use super::PROTO_WGD;
use crate::kernel::{self, Counter};
use crate::lab::{Lab, Link, Wgd, time_until};
use crate::prefixes::{self, Prefix};
use crate::report::{Count, Report};
use crate::{Common, mrt, progress};

const SCENARIO: &str = "failover";
const LAN_HOST: &str = "192.168.77.1";

/// How A notices that a tunnel's path is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// The BGP hold timer, 3 s.
    HoldTimer,
    /// BFD with this interval (transmit and receive, ms), multiplier 3.
    Bfd { interval: u32 },
}

const CONTENDERS: [Liveness; 3] = [
    Liveness::HoldTimer,
    Liveness::Bfd { interval: 300 },
    Liveness::Bfd { interval: 100 },
];

impl Liveness {
    fn contender(self) -> String {
        match self {
            Self::HoldTimer => "wgd hold 3 s".to_owned(),
            Self::Bfd { interval } => format!("wgd bfd {interval} ms x 3"),
        }
    }

    /// The hold time on both sides: the shortest with the hold timer alone;
    /// with BFD, long enough that BFD notices first.
    fn hold_time(self) -> u16 {
        match self {
            Self::HoldTimer => 3,
            Self::Bfd { .. } => 9,
        }
    }

    /// The goal for the time until traffic is restored, seconds.
    fn goal(self) -> Option<f64> {
        match self {
            Self::HoldTimer => None,
            Self::Bfd { interval } if interval <= 100 => Some(0.5),
            Self::Bfd { .. } => Some(1.2),
        }
    }

    /// A's `[bfd]` and `[bgp]` sections: a neighbor per tunnel.
    fn speaker(self) -> String {
        let mut text = String::new();
        let bfd = match self {
            Self::HoldTimer => "",
            Self::Bfd { interval } => {
                text.push_str(&format!(
                    "\n[bfd]\ntransmit_interval = {interval}\nreceive_interval = {interval}\nmultiplier = 3\n"
                ));
                "bfd = true\n"
            }
        };
        text.push_str(&format!(
            "\n[bgp]\nasn = 65001\nhold_time = {}\n",
            self.hold_time()
        ));
        for address in ["10.255.0.1", "10.255.1.1"] {
            text.push_str(&format!(
                "[[bgp.neighbor]]\naddress = \"{address}\"\nremote_as = 65002\n{bfd}"
            ));
        }
        text
    }

    /// B's bird.conf: only BFD, a session with A on each tunnel.
    fn bird_config(self, links: &[Link]) -> Option<String> {
        let Self::Bfd { interval } = self else {
            return None;
        };
        let neighbors: String = links
            .iter()
            .map(|link| {
                format!(
                    "  neighbor {} dev \"{}\" local {};\n",
                    link.address_a(),
                    link.tunnel_b,
                    link.address_b()
                )
            })
            .collect();
        Some(format!(
            "router id 10.255.0.1;\nprotocol device {{\n}}\n\
             protocol bfd {{\n  interface \"*\" {{\n    min rx interval {interval} ms;\n\
             \x20   min tx interval {interval} ms;\n    multiplier 3;\n  }};\n{neighbors}}}\n"
        ))
    }
}

/// How many times A's BFD session with `peer` changed state (`wgd bfd
/// --json`).
fn bfd_state_changes(lab: &Lab, peer: &str) -> anyhow::Result<u64> {
    let socket = lab.socket.to_str().context("a UTF-8 path")?;
    let text = lab.wgd.run(&lab.a, &["bfd", "--json", "--api", socket])?;
    let value: serde_json::Value = serde_json::from_str(&text).context("wgd bfd --json")?;
    value["sessions"]
        .as_array()
        .and_then(|sessions| sessions.iter().find(|session| session["peer"] == peer))
        .and_then(|session| session["state_changes"].as_u64())
        .with_context(|| format!("no BFD session with {peer} in:\n{text}"))
}

/// Whether BIRD's BFD session with A over `link` is up.
fn bfd_up(bird: &Bird, link: &Link) -> bool {
    bird.birdc(&["show", "bfd", "sessions"]).is_ok_and(|text| {
        text.lines().any(|line| {
            line.starts_with(&format!("{} ", link.address_a())) && line.contains(" Up ")
        })
    })
}

pub fn run(wgd: &Wgd, common: &Common, sizes: &[usize], report: &mut Report) -> anyhow::Result<()> {
    for liveness in CONTENDERS {
        run_contender(wgd, common, sizes, liveness, report)?;
    }
    let mut goals = Vec::new();
    for liveness in CONTENDERS {
        let Some(goal) = liveness.goal() else {
            continue;
        };
        let contender = liveness.contender();
        for row in report.rows.iter().filter(|row| {
            row.scenario == SCENARIO
                && row.contender == contender
                && row.metric == "traffic restored"
        }) {
            let verdict = if row.median < goal { "met" } else { "MISSED" };
            goals.push(format!(
                "{contender}, {} prefixes: traffic restored in {:.2} s (median), goal under {goal} s: {verdict}",
                row.size, row.median
            ));
        }
    }
    report.note(
        "failover: times are from the cut of tunnel 0's underlay; routes counted every 20 ms, \
         pings every 10 ms; BFD contenders have hold time 9 s, B's BFD is BIRD's",
    );
    for goal in goals {
        report.note(format!("failover goal: {goal}"));
    }
    Ok(())
}

/// One contender's lab and runs, its rows added to `report`.
fn run_contender(
    wgd: &Wgd,
    common: &Common,
    sizes: &[usize],
    liveness: Liveness,
    report: &mut Report,
) -> anyhow::Result<()> {
    let contender = liveness.contender();
    progress(format!("failover: building the lab ({contender})"));
    let lab = Lab::new(wgd, 2, &liveness.speaker(), false)?;
    for sysctl in [
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ] {
        lab.a.check(&["sysctl", "-qw", sysctl])?;
    }
    for link in &lab.links {
        lab.a.check(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{}.rp_filter=0", link.underlay_a),
        ])?;
    }
    let counter = Counter::new(lab.a.name())?;
    let tunnel0 = kernel::ifindex(lab.a.name(), &lab.links[0].tunnel_a)?;
    let tunnel1 = kernel::ifindex(lab.a.name(), &lab.links[1].tunnel_a)?;
    let bird = liveness
        .bird_config(&lab.links)
        .map(|config| Bird::start(&lab.b, &config))
        .transpose()?;
    let hold_time = liveness.hold_time();
    let mut neighbors = String::new();
    for link in &lab.links {
        neighbors.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = 65001\n\
             \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = {hold_time}\n    keepalive-interval = 1\n\
             \x20 [neighbors.transport.config]\n    local-address = \"{}\"\n\
             \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n",
            link.address_a(),
            link.address_b(),
        ));
    }
    let gobgp = Gobgp::start(
        &lab.b,
        &format!(
            "[global.config]\n  as = 65002\n  router-id = \"10.255.0.1\"\n{}{neighbors}",
            super::bgp::NEXT_HOP_SELF
        ),
    )?;

    for &size in sizes {
        let mut prefixes = prefixes::generate(common.seed, size);
        prefixes.push(Prefix {
            address: u32::from(std::net::Ipv4Addr::new(192, 168, 77, 0)),
            len: 24,
        });
        let total = prefixes.len();
        let mrt_path = lab.b.dir().join(format!("failover-{size}.mrt"));
        let table = crate::table::Table::ipv4(common.seed, prefixes);
        let next_hop6 = std::net::Ipv6Addr::UNSPECIFIED; // no IPv6 route
        mrt::write(&mrt_path, &table, "10.255.0.1".parse()?, 65002, next_hop6)?;
        gobgp.cli(&["global", "rib", "-a", "ipv4", "del", "all"])?;
        gobgp.cli(&[
            "mrt",
            "inject",
            "global",
            mrt_path.to_str().context("UTF-8")?,
        ])?;
        let (mut left, mut moved, mut traffic) = (vec![], vec![], vec![]);
        for run in 1..=common.runs {
            progress(format!(
                "failover: {contender}, {size} prefixes, run {run}/{}",
                common.runs
            ));
            time_until(
                Instant::now(),
                Duration::from_millis(100),
                Duration::from_secs(30),
                "every route through tunnel 0",
                || Ok(counter.count_via(PROTO_WGD, Some(tunnel0))? == total),
            )
            .with_context(|| {
                format!(
                    "routes of wgd: {:?}, through tunnel 0: {:?}, through tunnel 1: {:?}\n\
                     gobgpd:\n{}\nwgd log:\n{}",
                    counter.count(PROTO_WGD),
                    counter.count_via(PROTO_WGD, Some(tunnel0)),
                    counter.count_via(PROTO_WGD, Some(tunnel1)),
                    gobgp
                        .cli(&["global", "rib", "-a", "ipv4", "summary"])
                        .unwrap_or_default(),
                    super::fib::tail(&lab.log())
                )
            })?;
            if let Some(bird) = &bird {
                wait_for(Duration::from_secs(30), "both BFD sessions up", || {
                    lab.links.iter().all(|link| bfd_up(bird, link))
                })
                .with_context(|| bird.log())?;
            }
            let ping = lab.a.spawn(&[
                "ping",
                "-n",
                "-D",
                "-i",
                "0.01",
                "-W",
                "1",
                "-I",
                &lab.links[1].underlay_address_a(),
                LAN_HOST,
            ])?;
            std::thread::sleep(Duration::from_millis(500));
            // The session over the other tunnel must stay up: a change in
            // its count during the run is told in a note.
            let other = lab.links[1].address_b();
            let other_changes = bird
                .as_ref()
                .map(|_| bfd_state_changes(&lab, &other))
                .transpose()?;
            let cut_at = SystemTime::now();
            let cut = Instant::now();
            lab.b
                .check(&["ip", "link", "set", &lab.links[0].underlay_b, "down"])?;
            let gone = time_until(
                cut,
                Duration::from_millis(20),
                Duration::from_secs(60),
                "no route through tunnel 0",
                || Ok(counter.count_via(PROTO_WGD, Some(tunnel0))? == 0),
            )?;
            let over = time_until(
                cut,
                Duration::from_millis(20),
                Duration::from_secs(60),
                "every route through tunnel 1",
                || Ok(counter.count_via(PROTO_WGD, Some(tunnel1))? == total),
            )?;
            if let Some(before) = other_changes {
                let after = bfd_state_changes(&lab, &other)?;
                if after != before {
                    report.note(format!(
                        "failover: {contender}, {total} prefixes, run {run}: the BFD session over \
                         the other tunnel changed state too ({} changes) while the routes moved",
                        after - before
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(500));
            // SIGINT: ping flushes what it buffered and exits.
            let mut ping = ping;
            lab.a.check(&["kill", "-INT", &ping.pid().to_string()])?;
            wait_for(Duration::from_secs(5), "ping to exit", || {
                !ping.is_running()
            })?;
            let log = ping.log();
            drop(ping);
            let answered = first_reply_after(&log, cut_at + Duration::from_millis(50))
                .context("no ping answered after the cut")?;
            left.push(gone.as_secs_f64());
            moved.push(over.as_secs_f64());
            traffic.push(answered.duration_since(cut_at)?.as_secs_f64());
            report.count(Count {
                scenario: SCENARIO.to_owned(),
                contender: contender.clone(),
                size: total,
                run,
                after_add: counter.count_via(PROTO_WGD, Some(tunnel1))?,
                after_withdraw: counter.count_via(PROTO_WGD, Some(tunnel0))?,
                after_session_down: None,
            });
            // Heal, and wait for the session over tunnel 0 to come back.
            lab.b
                .check(&["ip", "link", "set", &lab.links[0].underlay_b, "up"])?;
            wait_for(Duration::from_secs(60), "the session over tunnel 0", || {
                gobgp.established(&lab.links[0].address_a())
            })?;
        }
        report.add(
            SCENARIO,
            &contender,
            "routes off the cut tunnel",
            total,
            "s",
            left,
        );
        report.add(
            SCENARIO,
            &contender,
            "all on the other tunnel",
            total,
            "s",
            moved,
        );
        report.add(
            SCENARIO,
            &contender,
            "traffic restored",
            total,
            "s",
            traffic,
        );
    }
    Ok(())
}

/// When the first ping sent after `after` was answered: the reply's time
/// (`ping -D` puts `[seconds.micros]` before each line) less its round
/// trip (`time=1.23 ms`) is when it was sent. A ping sent before the cut
/// whose reply comes late (queued in wireguard-go) does not count: it
/// went over the path that was then still there.
fn first_reply_after(log: &str, after: SystemTime) -> Option<SystemTime> {
    log.lines()
        .filter(|line| line.contains("bytes from"))
        .filter_map(|line| {
            let stamp = line.strip_prefix('[')?.split(']').next()?;
            let received = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(stamp.parse().ok()?);
            let rtt: f64 = line
                .split_once("time=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let sent = received.checked_sub(Duration::from_secs_f64(rtt / 1000.0))?;
            Some((sent, received))
        })
        .find(|(sent, _)| *sent > after)
        .map(|(_, received)| received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_reply_to_a_ping_sent_before_the_cut_does_not_count() {
        let log = "PING 192.168.77.1 (192.168.77.1) from 198.18.1.1 : 56(84) bytes of data.\n\
                   [100.000000] 64 bytes from 192.168.77.1: icmp_seq=1 ttl=64 time=1.00 ms\n\
                   [100.300000] 64 bytes from 192.168.77.1: icmp_seq=2 ttl=64 time=290 ms\n\
                   [100.900000] 64 bytes from 192.168.77.1: icmp_seq=60 ttl=64 time=2.00 ms\n";
        let cut = SystemTime::UNIX_EPOCH + Duration::from_millis(100_050);
        let answered = first_reply_after(log, cut).unwrap();
        assert_eq!(
            answered,
            SystemTime::UNIX_EPOCH + Duration::from_millis(100_900)
        );
        assert_eq!(first_reply_after(log, cut + Duration::from_secs(1)), None);
    }
}
