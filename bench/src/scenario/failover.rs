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
//! Detection is BGP's: hold time 3 s on both sides (the shortest RFC 4271
//! allows); a WireGuard peer is declared dead by wgd only after
//! `peer_dead_after`, which is left long here.
//!
//! Pings go from A's address on underlay 1 and B answers them on that
//! underlay directly (a connected route), so only A's forward path, the
//! one that fails over, decides whether they arrive.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::gobgp::Gobgp;

use super::PROTO_WGD;
use crate::kernel::{self, Counter};
use crate::lab::{Lab, Wgd, time_until};
use crate::prefixes::{self, Prefix};
use crate::report::{Count, Report};
use crate::{Common, mrt, progress};

const SCENARIO: &str = "failover";
const LAN_HOST: &str = "192.168.77.1";

pub fn run(wgd: &Wgd, common: &Common, sizes: &[usize], report: &mut Report) -> anyhow::Result<()> {
    let speaker = "\n[bgp]\nasn = 65001\nhold_time = 3\n\
                   [[bgp.neighbor]]\naddress = \"10.255.0.1\"\nremote_as = 65002\n\
                   [[bgp.neighbor]]\naddress = \"10.255.1.1\"\nremote_as = 65002\n";
    progress("failover: building the lab");
    let lab = Lab::new(wgd, 2, speaker, false)?;
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
    let mut neighbors = String::new();
    for link in &lab.links {
        neighbors.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = 65001\n\
             \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 3\n    keepalive-interval = 1\n\
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
                "failover: {size} prefixes, run {run}/{}",
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
                contender: "wgd speaker".to_owned(),
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
            "wgd speaker",
            "routes off the cut tunnel",
            total,
            "s",
            left,
        );
        report.add(
            SCENARIO,
            "wgd speaker",
            "all on the other tunnel",
            total,
            "s",
            moved,
        );
        report.add(
            SCENARIO,
            "wgd speaker",
            "traffic restored",
            total,
            "s",
            traffic,
        );
    }
    report.note(
        "failover: BGP hold time 3 s detects the cut; times are from the cut, routes counted \
         every 20 ms, pings every 10 ms",
    );
    Ok(())
}

/// The time of the first ping reply logged after `after` (`ping -D` puts
/// `[seconds.micros]` before each line).
fn first_reply_after(log: &str, after: SystemTime) -> Option<SystemTime> {
    log.lines()
        .filter(|line| line.contains("bytes from"))
        .filter_map(|line| {
            let stamp = line.strip_prefix('[')?.split(']').next()?;
            let seconds: f64 = stamp.parse().ok()?;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
        })
        .find(|time| *time > after)
}
