//! `restart`: `wgd run` holds N routes of a session; it is killed
//! (`kill -9`) and started again, and the routing program reconnects and
//! sends its routes again, as a real one would. Measured: time from the
//! new start until its API answers, and until every route is re-claimed
//! (the session's End-of-RIB answered with nothing withdrawn and no route
//! left to the `adopted` owner); the lowest count of wgd's routes in the
//! kernel, sampled on a thread of its own from before the kill to the
//! end (it must stay N: a restart never drops traffic).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wgd_proto::v1::route_update::Operation;

use super::{PROTO_WGD, block_on, confirmed};
use crate::feeder::{self, Feeder, NextHops};
use crate::kernel::{Counter, Watch};
use crate::lab::{Lab, Wgd};
use crate::prefixes::IpPrefix;
use crate::report::{Count, Report};
use crate::session::Session;
use crate::table::{Shape, Source};
use crate::{Common, progress};

const SCENARIO: &str = "restart";

/// How the routes reach the daemon that is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// A gRPC session (rows `restart`).
    Session,
    /// wgd's BGP speaker (rows `restart-bgp`).
    Bgp,
}
const OWNER: &str = "bench";

pub fn run(
    runtime: &tokio::runtime::Runtime,
    wgd: &Wgd,
    common: &Common,
    sizes: &[usize],
    source: &Source,
    report: &mut Report,
) -> anyhow::Result<()> {
    progress("restart: building the lab");
    let ipv6 = source.ipv6();
    report.table = source.label();
    let mut lab = Lab::new(wgd, 1, "[bridge]\nstartup_hold = 600\n", ipv6)?;
    let counter = Arc::new(Counter::new(lab.a.name())?);
    let (nexthop4, nexthop6) = (lab.links[0].address_b(), lab.links[0].address6_b());
    let nexthop = |prefix: &IpPrefix| match prefix {
        IpPrefix::V4(_) => nexthop4.as_str(),
        IpPrefix::V6(_) => nexthop6.as_str(),
    };
    for &size in sizes {
        let table = source.table(size);
        report.shape(Shape::of(SCENARIO, &source.name(), &table, None));
        let prefixes = table.prefixes;
        let (mut api, mut reclaimed, mut lowest_seen) = (vec![], vec![], vec![]);
        for run in 1..=common.runs {
            progress(format!(
                "restart: {size} prefixes, run {run}/{}",
                common.runs
            ));
            let socket = lab.socket.clone();
            let mut session = block_on(runtime, Session::open(&socket, OWNER, 600))?;
            let adds = session.batches(&prefixes, nexthop, Operation::Add);
            let started = Instant::now();
            let outcome = block_on(runtime, session.push(adds, true))?;
            confirmed(&counter, PROTO_WGD, size, started, outcome.elapsed)?;

            let sampling = Arc::new(AtomicBool::new(true));
            let lowest = Arc::new(AtomicUsize::new(usize::MAX));
            let sampler = {
                let (sampling, lowest, counter) =
                    (sampling.clone(), lowest.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut samples = 0usize;
                    while sampling.load(Ordering::SeqCst) {
                        if let Ok(count) = counter.count(PROTO_WGD) {
                            lowest.fetch_min(count, Ordering::SeqCst);
                            samples += 1;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    samples
                })
            };

            lab.kill_daemon()?;
            drop(session);
            let started = Instant::now();
            let answered = lab.start_daemon()?;
            let mut session = block_on(runtime, Session::open(&socket, OWNER, 600))?;
            anyhow::ensure!(
                session.stale_routes == size as u64,
                "the new daemon kept {} routes for {OWNER}, not {size}",
                session.stale_routes
            );
            let again = session.batches(&prefixes, nexthop, Operation::Add);
            let outcome = block_on(runtime, session.push(again, true))?;
            let done = started.elapsed();
            anyhow::ensure!(
                outcome.installed == size,
                "{} of {size} routes re-claimed as installed",
                outcome.installed
            );
            let left = block_on(runtime, adopted_left(&socket))?;
            anyhow::ensure!(left == 0, "{left} routes still adopted after End-of-RIB");
            sampling.store(false, Ordering::SeqCst);
            let samples = sampler
                .join()
                .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
            let lowest = lowest.load(Ordering::SeqCst);
            progress(format!(
                "restart: lowest kernel count {lowest} of {size} over {samples} samples"
            ));
            api.push(answered.as_secs_f64());
            reclaimed.push(done.as_secs_f64());
            lowest_seen.push(lowest as f64);

            // Clean slate for the next run.
            let deletes = session.batches(&prefixes, nexthop, Operation::Delete);
            let started = Instant::now();
            let outcome = block_on(runtime, session.push(deletes, false))?;
            confirmed(&counter, PROTO_WGD, 0, started, outcome.elapsed)?;
            report.count(Count {
                scenario: SCENARIO.to_owned(),
                contender: "wgd".to_owned(),
                size,
                run,
                after_add: lowest,
                after_withdraw: counter.count(PROTO_WGD)?,
                after_session_down: None,
            });
        }
        report.add(SCENARIO, "wgd", "api answers", size, "s", api);
        report.add(SCENARIO, "wgd", "all re-claimed", size, "s", reclaimed);
        report.add(
            SCENARIO,
            "wgd",
            "lowest kernel count",
            size,
            "routes",
            lowest_seen,
        );
    }
    report.note(
        "restart: times from the new `wgd run` start; the client reconnects as soon as the API \
         answers and re-sends every route, then End-of-RIB; the session carries prefixes and a \
         next hop, not the table's attributes",
    );
    Ok(())
}

/// Routes still held by the `adopted` owner (found in the kernel at start
/// and not yet claimed).
async fn adopted_left(socket: &std::path::Path) -> anyhow::Result<u64> {
    let mut client = wgd::daemon::api::connect_routes(socket)
        .await
        .context("connecting")?;
    let statistics = client
        .get_statistics(wgd_proto::v1::GetStatisticsRequest {})
        .await?
        .into_inner();
    Ok(statistics
        .owners
        .iter()
        .filter(|owner| owner.owner == "adopted")
        .map(|owner| owner.routes)
        .sum())
}

/// The peer's AS in `restart --via bgp` (wgd's is 65001).
const PEER_AS: u32 = 65002;

/// `restart --via bgp`: the same, with the routes learned by `wgd run`'s
/// own BGP speaker from the harness's replay peer (the table with its
/// attributes, as `bgp --feeder replay` sends it), then End-of-RIB. After
/// the `kill -9` the new daemon adopts the kernel's routes, its speaker
/// connects again, the peer sends the table again, and the routes are
/// re-claimed by the neighbor's owner. The lowest kernel count is the
/// lowest the route notifications showed (every change, not samples);
/// the peak RSS is the new daemon's, its adoption of the table included,
/// beside the old one's RSS before the kill.
pub fn run_bgp(
    runtime: &tokio::runtime::Runtime,
    wgd: &Wgd,
    common: &Common,
    sizes: &[usize],
    source: &Source,
    report: &mut Report,
) -> anyhow::Result<()> {
    progress("restart via bgp: building the lab");
    let ipv6 = source.ipv6();
    report.table = source.label();
    let neighbor = crate::lab::tunnel_address_b(0);
    let extra = format!(
        "[bridge]\nstartup_hold = 600\n\n[bgp]\nasn = 65001\n\n\
         [[bgp.neighbor]]\naddress = \"{neighbor}\"\nremote_as = {PEER_AS}\n"
    );
    let mut lab = Lab::new(wgd, 1, &extra, ipv6)?;
    let feeder = Feeder::listen(lab.b.name(), neighbor.parse()?, PEER_AS, ipv6)?;
    let watch = Watch::new(lab.a.name(), PROTO_WGD)?;
    let next_hops = NextHops {
        ipv4: lab.links[0].address_b().parse()?,
        ipv6: lab.links[0].address6_b().parse()?,
    };
    let end_of_rib = feeder::end_of_rib(ipv6);
    for &size in sizes {
        let table = source.table(size);
        let updates = feeder::encode(&table, PEER_AS, next_hops);
        report.shape(Shape::of(
            SCENARIO_BGP,
            &source.name(),
            &table,
            Some(updates.announce.messages),
        ));
        drop(table);
        let deadline = Duration::from_secs(120 + 6 * (size as u64 / 1_000));
        let mut rows = BgpRows::default();
        for run in 1..=common.runs {
            progress(format!(
                "restart via bgp: {size} prefixes, run {run}/{}",
                common.runs
            ));
            let session = feeder.accept(deadline)?;
            let started = Instant::now();
            session.send(&updates.announce)?;
            session.send(&end_of_rib)?;
            watch.until(started, deadline, "the table in the kernel", |count| {
                Ok(count == size)
            })?;
            watch.take_lowest()?;
            let pid = lab.pid().context("the daemon")?;
            let before = crate::lab::rss_bytes(pid)? as f64 / MIB;

            lab.kill_daemon()?;
            drop(session);
            let started = Instant::now();
            let answered = lab.start_daemon()?;
            let session = feeder.accept(deadline)?;
            let established = started.elapsed();
            session.send(&updates.announce)?;
            session.send(&end_of_rib)?;
            let sent = started.elapsed();
            let socket = lab.socket.clone();
            crate::lab::time_until(
                started,
                Duration::from_millis(100),
                deadline,
                "every adopted route re-claimed",
                || Ok(block_on(runtime, adopted_left(&socket))? == 0),
            )
            .with_context(|| format!("wgd log:\n{}", lab.log()))?;
            let reclaimed = started.elapsed();
            let (lowest, now) = watch.take_lowest()?;
            anyhow::ensure!(
                now == size,
                "{now} of {size} routes in the kernel once re-claimed"
            );
            let pid = lab.pid().context("the new daemon")?;
            let peak = crate::lab::peak_rss_bytes(pid)? as f64 / MIB;
            progress(format!(
                "restart via bgp: lowest kernel count {lowest} of {size}; re-claimed after {:.2} s",
                reclaimed.as_secs_f64()
            ));
            rows.api.push(answered.as_secs_f64());
            rows.established.push(established.as_secs_f64());
            rows.sent.push(sent.as_secs_f64());
            rows.reclaimed.push(reclaimed.as_secs_f64());
            rows.lowest.push(lowest as f64);
            rows.before.push(before);
            rows.peak.push(peak);

            // Clean slate for the next run: the table withdrawn, the
            // session left up for the next.
            let started = Instant::now();
            session.send(&updates.withdraw)?;
            watch.until(started, deadline, "the table withdrawn", |count| {
                Ok(count == 0)
            })?;
            report.count(Count {
                scenario: SCENARIO_BGP.to_owned(),
                contender: CONTENDER_BGP.to_owned(),
                size,
                run,
                after_add: lowest,
                after_withdraw: watch.take_lowest()?.1,
                after_session_down: None,
            });
            // The next run's session is the daemon's next one: this one
            // is closed by the harness, and the daemon connects again.
            drop(session);
        }
        let add = |report: &mut Report, metric: &str, unit: &str, values: Vec<f64>| {
            report.add(SCENARIO_BGP, CONTENDER_BGP, metric, size, unit, values);
        };
        add(report, "api answers", "s", rows.api);
        add(report, "session up again", "s", rows.established);
        add(report, "table sent again", "s", rows.sent);
        add(report, "all re-claimed", "s", rows.reclaimed);
        add(report, "lowest kernel count", "routes", rows.lowest);
        add(report, "rss before the kill", "MiB", rows.before);
        add(report, "peak rss, new daemon", "MiB", rows.peak);
    }
    report.note(
        "restart-bgp: times from the new `wgd run` start; wgd's speaker connects to the \
         harness's peer again, which sends the table (with its attributes) and End-of-RIB as \
         fast as it is read; re-claimed: no route left to the `adopted` owner (wgd's statistics, \
         read every 100 ms); the lowest kernel count is every route notification's, from the \
         kill to the end",
    );
    Ok(())
}

const SCENARIO_BGP: &str = "restart-bgp";
const CONTENDER_BGP: &str = "wgd speaker";

#[derive(Default)]
struct BgpRows {
    api: Vec<f64>,
    established: Vec<f64>,
    sent: Vec<f64>,
    reclaimed: Vec<f64>,
    lowest: Vec<f64>,
    before: Vec<f64>,
    peak: Vec<f64>,
}

const MIB: f64 = 1024.0 * 1024.0;
