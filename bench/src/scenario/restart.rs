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
use std::time::Instant;

use anyhow::Context;
use wgd_proto::v1::route_update::Operation;

use super::{PROTO_WGD, block_on, confirmed};
use crate::kernel::Counter;
use crate::lab::{Lab, Wgd};
use crate::prefixes::IpPrefix;
use crate::report::{Count, Report};
use crate::session::Session;
use crate::table::{Shape, Source};
use crate::{Common, progress};

const SCENARIO: &str = "restart";
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
