//! `fib`: N prefixes pushed through a gRPC session until all are in the
//! kernel, then withdrawn until none is; beside it, in the same lab and
//! the same run, `ip -batch` of the same routes and the packed raw-netlink
//! writer (the machine's floor). Every contender starts from an empty
//! table and writes the same routes (via the far tunnel address, onlink,
//! metric 20), each with a protocol number of its own.
//!
//! wgd's daemon is restarted before each run, so that its memory per
//! prefix is measured from a fresh process: (RSS with N routes − RSS with
//! the session open and none) / N.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use wgd_proto::v1::route_update::Operation;

use super::{PROTO_IP_BATCH, PROTO_NETLINK, PROTO_WGD, block_on, confirmed};
use crate::kernel::{self, Counter};
use crate::lab::{Lab, Wgd, rss_bytes};
use crate::prefixes::{self, Prefix};
use crate::report::{Count, Report};
use crate::session::Session;
use crate::{Common, progress};

const SCENARIO: &str = "fib";

pub fn run(
    runtime: &tokio::runtime::Runtime,
    wgd: &Wgd,
    common: &Common,
    sizes: &[usize],
    report: &mut Report,
) -> anyhow::Result<()> {
    progress("fib: building the lab");
    let mut lab = Lab::new(wgd, 1, "", false)?;
    let counter = Counter::new(lab.a.name())?;
    let link = lab.links[0].clone();
    let gateway: Ipv4Addr = link.address_b().parse()?;
    let ifindex = kernel::ifindex(lab.a.name(), &link.tunnel_a)?;
    for &size in sizes {
        let prefixes = prefixes::generate(common.seed, size);
        let files = BatchFiles::write(&lab, &prefixes, &link.address_b(), &link.tunnel_a)?;
        let mut measured = Measured::default();
        for run in 1..=common.runs {
            progress(format!("fib: {size} prefixes, run {run}/{}", common.runs));
            wgd_run(runtime, &mut lab, &counter, &prefixes, &mut measured)
                .with_context(|| format!("wgd, {size} prefixes\nwgd log:\n{}", tail(&lab.log())))?;
            ip_batch(&lab, &counter, &files, size, &mut measured).context("ip -batch")?;
            packed(&lab, &counter, &prefixes, gateway, ifindex, &mut measured)
                .context("netlink packed")?;
        }
        measured.report(report, size);
    }
    report.note(
        "fib: a time is from the first request to the contender's own end (last BatchResult, \
         ip's exit, the netlink barrier's ack), confirmed by one kernel dump; polled at 20 ms \
         only when the kernel did not yet agree",
    );
    Ok(())
}

#[derive(Debug, Default)]
struct Measured {
    wgd_add: Vec<f64>,
    wgd_withdraw: Vec<f64>,
    wgd_rss: Vec<f64>,
    wgd_rss_base: Vec<f64>,
    batch_add: Vec<f64>,
    batch_withdraw: Vec<f64>,
    packed_add: Vec<f64>,
    packed_withdraw: Vec<f64>,
    /// (contender, after add, after withdraw), one per contender and run.
    counts: Vec<(&'static str, usize, usize)>,
}

impl Measured {
    fn report(self, report: &mut Report, size: usize) {
        let runs = self.wgd_add.len().max(1);
        for (index, (contender, after_add, after_withdraw)) in self.counts.iter().enumerate() {
            report.count(Count {
                scenario: SCENARIO.to_owned(),
                contender: (*contender).to_owned(),
                size,
                run: index / (self.counts.len() / runs).max(1) + 1,
                after_add: *after_add,
                after_withdraw: *after_withdraw,
                after_session_down: None,
            });
        }
        let seconds = |values: &Vec<f64>| values.clone();
        report.add(
            SCENARIO,
            "wgd session",
            "add",
            size,
            "s",
            seconds(&self.wgd_add),
        );
        report.add(
            SCENARIO,
            "ip -batch",
            "add",
            size,
            "s",
            seconds(&self.batch_add),
        );
        report.add(
            SCENARIO,
            "netlink packed",
            "add",
            size,
            "s",
            seconds(&self.packed_add),
        );
        report.add(
            SCENARIO,
            "wgd session",
            "withdraw",
            size,
            "s",
            self.wgd_withdraw,
        );
        report.add(
            SCENARIO,
            "ip -batch",
            "withdraw",
            size,
            "s",
            self.batch_withdraw,
        );
        report.add(
            SCENARIO,
            "netlink packed",
            "withdraw",
            size,
            "s",
            self.packed_withdraw,
        );
        let rate: Vec<f64> = self.wgd_add.iter().map(|s| size as f64 / s).collect();
        report.add(SCENARIO, "wgd session", "add rate", size, "routes/s", rate);
        let rate: Vec<f64> = self.packed_add.iter().map(|s| size as f64 / s).collect();
        report.add(
            SCENARIO,
            "netlink packed",
            "add rate",
            size,
            "routes/s",
            rate,
        );
        report.add(
            SCENARIO,
            "wgd session",
            "rss per prefix",
            size,
            "bytes",
            self.wgd_rss,
        );
        report.add(
            SCENARIO,
            "wgd session",
            "rss before",
            size,
            "MiB",
            self.wgd_rss_base,
        );
    }
}

fn wgd_run(
    runtime: &tokio::runtime::Runtime,
    lab: &mut Lab,
    counter: &Counter,
    prefixes: &[Prefix],
    measured: &mut Measured,
) -> anyhow::Result<()> {
    // A fresh daemon per run (SIGTERM leaves the tunnels up).
    drop(lab.daemon.take());
    lab.start_daemon()?;
    let pid = lab.pid().context("no daemon")?;
    let nexthop = lab.links[0].address_b();
    let socket = lab.socket.clone();
    let mut session = block_on(runtime, Session::open(&socket, "bench", 90))?;
    let adds = session.batches(prefixes, |_| nexthop.as_str(), Operation::Add);
    let deletes = session.batches(prefixes, |_| nexthop.as_str(), Operation::Delete);
    let before = rss_bytes(pid)?;

    let started = Instant::now();
    let outcome = block_on(runtime, session.push(adds, false))?;
    let added = confirmed(counter, PROTO_WGD, prefixes.len(), started, outcome.elapsed)?;
    anyhow::ensure!(
        outcome.installed == prefixes.len(),
        "{} of {} routes installed ({} otherwise)",
        outcome.installed,
        prefixes.len(),
        outcome.other
    );
    let after = rss_bytes(pid)?;
    let after_add = counter.count(PROTO_WGD)?;

    let started = Instant::now();
    let outcome = block_on(runtime, session.push(deletes, false))?;
    let withdrawn = confirmed(counter, PROTO_WGD, 0, started, outcome.elapsed)?;
    let after_withdraw = counter.count(PROTO_WGD)?;
    measured
        .counts
        .push(("wgd session", after_add, after_withdraw));
    measured.wgd_add.push(added.as_secs_f64());
    measured.wgd_withdraw.push(withdrawn.as_secs_f64());
    measured
        .wgd_rss
        .push(after.saturating_sub(before) as f64 / prefixes.len() as f64);
    measured.wgd_rss_base.push(before as f64 / (1 << 20) as f64);
    Ok(())
}

/// `ip -batch` input files for adding and deleting the set.
struct BatchFiles {
    add: tempfile::NamedTempFile,
    delete: tempfile::NamedTempFile,
}

impl BatchFiles {
    fn write(lab: &Lab, prefixes: &[Prefix], gateway: &str, device: &str) -> anyhow::Result<Self> {
        let mut add = tempfile::NamedTempFile::new_in(lab.a.dir())?;
        let mut delete = tempfile::NamedTempFile::new_in(lab.a.dir())?;
        {
            let mut add = std::io::BufWriter::new(add.as_file_mut());
            let mut delete = std::io::BufWriter::new(delete.as_file_mut());
            for prefix in prefixes {
                writeln!(
                    add,
                    "route add {prefix} via {gateway} dev {device} onlink proto {PROTO_IP_BATCH} metric 20"
                )?;
                writeln!(
                    delete,
                    "route del {prefix} proto {PROTO_IP_BATCH} metric 20"
                )?;
            }
        }
        Ok(Self { add, delete })
    }
}

fn ip_batch(
    lab: &Lab,
    counter: &Counter,
    files: &BatchFiles,
    size: usize,
    measured: &mut Measured,
) -> anyhow::Result<()> {
    let run = |file: &tempfile::NamedTempFile| -> anyhow::Result<Duration> {
        let path = file.path().to_str().context("a UTF-8 path")?.to_owned();
        let started = Instant::now();
        super::command(&["ip", "-n", lab.a.name(), "-batch", &path])?;
        Ok(started.elapsed())
    };
    let started = Instant::now();
    let reported = run(&files.add)?;
    let added = confirmed(counter, PROTO_IP_BATCH, size, started, reported)?;
    let after_add = counter.count(PROTO_IP_BATCH)?;
    let started = Instant::now();
    let reported = run(&files.delete)?;
    let withdrawn = confirmed(counter, PROTO_IP_BATCH, 0, started, reported)?;
    let after_withdraw = counter.count(PROTO_IP_BATCH)?;
    measured
        .counts
        .push(("ip -batch", after_add, after_withdraw));
    measured.batch_add.push(added.as_secs_f64());
    measured.batch_withdraw.push(withdrawn.as_secs_f64());
    Ok(())
}

fn packed(
    lab: &Lab,
    counter: &Counter,
    prefixes: &[Prefix],
    gateway: Ipv4Addr,
    ifindex: u32,
    measured: &mut Measured,
) -> anyhow::Result<()> {
    let write = |operation: kernel::Operation| -> anyhow::Result<Duration> {
        let prefixes = prefixes.to_vec();
        let started = Instant::now();
        let refused = kernel::in_namespace(lab.a.name(), move || {
            kernel::write_packed(&prefixes, operation, gateway, ifindex, PROTO_NETLINK, 20)
        })?;
        let elapsed = started.elapsed();
        anyhow::ensure!(refused == 0, "the kernel refused {refused} requests");
        Ok(elapsed)
    };
    let started = Instant::now();
    let reported = write(kernel::Operation::Add)?;
    let added = confirmed(counter, PROTO_NETLINK, prefixes.len(), started, reported)?;
    let after_add = counter.count(PROTO_NETLINK)?;
    let started = Instant::now();
    let reported = write(kernel::Operation::Delete)?;
    let withdrawn = confirmed(counter, PROTO_NETLINK, 0, started, reported)?;
    let after_withdraw = counter.count(PROTO_NETLINK)?;
    measured
        .counts
        .push(("netlink packed", after_add, after_withdraw));
    measured.packed_add.push(added.as_secs_f64());
    measured.packed_withdraw.push(withdrawn.as_secs_f64());
    Ok(())
}

/// The last lines of a log, for error messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
