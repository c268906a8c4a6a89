//! `wgd-bench`: wgd's benchmark harness.
//!
//! Each scenario builds its lab in network namespaces of its own (unique
//! names, removed on exit, on error and on Ctrl-C: everything is held by
//! `Drop` guards, and a signal only sets a flag that the waits check), runs
//! wgd and the anchors beside it on the same machine in the same run, N
//! times, and adds one [`report::Row`] per contender and metric. The report
//! is printed as a table (median, min, max, and wgd's ratio to each
//! anchor) or with `--json` as JSON; `--plot FILE` also draws it.
//!
//! Prefix sets come from a seed ([`prefixes`]), route tables (prefixes
//! with attribute sets) from a seed or a user's MRT dump ([`table`],
//! [`mrt`]); the kernel is read and the
//! packed-netlink anchor written over raw rtnetlink ([`kernel`]); wgd is
//! fed through its gRPC session ([`session`]) or its BGP speaker.

mod feeder;
mod kernel;
mod lab;
mod mrt;
mod plot;
mod prefixes;
mod report;
mod scenario;
mod session;
mod table;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// An error once SIGINT or SIGTERM has arrived: the scenario unwinds and
/// its guards remove what it made.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Prints a line of progress on stderr (stdout is the report's).
pub fn progress(line: impl AsRef<str>) {
    eprintln!("wgd-bench: {}", line.as_ref());
}

#[derive(Debug, Parser)]
#[command(
    name = "wgd-bench",
    version,
    about = "Benchmarks of wgd beside anchors measured in the same run"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Runs per measurement (the table shows median, min and max).
    #[arg(long, global = true, default_value_t = 3)]
    pub runs: usize,
    /// Seed of the prefix sets.
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also draw the report as a PNG chart into this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// The wgd binary (default: the one beside wgd-bench, else on PATH).
    #[arg(long, global = true, value_name = "PATH")]
    pub wgd: Option<PathBuf>,
}

/// The route table a scenario sends.
#[derive(Debug, Args, Clone)]
pub struct TableArgs {
    /// Generated table: `real` is shaped like a full feed (a distinct
    /// attribute set for every third or fourth prefix, communities, MED,
    /// prepends); `uniform` is 4,096 AS paths for all prefixes.
    #[arg(long, value_enum, default_value = "real")]
    pub table: table::Kind,
    /// Percent of the generated table's prefixes that are IPv6 (a mixed
    /// run: 20, as in the public tables). The tunnels get IPv6 addresses
    /// for their next hops.
    #[arg(long, value_name = "PERCENT", default_value_t = 0)]
    pub ipv6: u8,
    /// Send the routes of an MRT dump instead (TABLE_DUMP_V2: IPv4 and
    /// IPv6 unicast RIB records of one peer); each size N takes its first
    /// N.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["table", "ipv6"])]
    pub mrt: Option<PathBuf>,
    /// The peer of the dump whose routes are sent: its index in the
    /// dump's PEER_INDEX_TABLE.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "mrt")]
    pub mrt_peer: usize,
}

impl TableArgs {
    pub fn source(&self, seed: u64) -> anyhow::Result<table::Source> {
        table::Source::new(
            self.table,
            seed,
            self.ipv6,
            self.mrt.as_deref(),
            self.mrt_peer,
        )
    }
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Prefixes through a gRPC session into the kernel and withdrawn,
    /// beside `ip -batch` and a packed raw-netlink writer.
    Fib {
        /// Sizes of the prefix sets, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000])]
        prefixes: Vec<usize>,
    },
    /// A GoBGP peer sends prefixes over a wgd tunnel to the built-in
    /// speaker; BIRD 2 and FRR receive the same when installed.
    Bgp {
        #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000])]
        prefixes: Vec<usize>,
        /// Only these receivers (wgd, bird, frr; gobgp-wgd, gobgp-zebra: a
        /// gobgpd of the receiver's own with `wgd run` following it, or with
        /// FRR's zebra).
        #[arg(long, value_delimiter = ',', default_values_t = ["wgd".to_owned(), "bird".to_owned(), "frr".to_owned()])]
        receivers: Vec<String>,
        /// The peer: gobgpd loaded from an MRT file, or the harness
        /// replaying UPDATEs it encoded before the session (measures the
        /// receivers alone).
        #[arg(long, value_enum, default_value = "gobgpd")]
        feeder: scenario::bgp::FeederKind,
        /// Peers sending the same table to each receiver, each over a
        /// tunnel and a session of its own (with `--feeder replay`; the
        /// receivers wgd, bird and frr): the first one's paths are best,
        /// the others' are timed and weighed apart.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
        peers: u8,
        #[command(flatten)]
        table: TableArgs,
    },
    /// wgd run killed with N routes installed and restarted: time until
    /// every route is re-claimed, and the lowest kernel count meanwhile.
    Restart {
        #[arg(long, value_delimiter = ',', default_values_t = [100_000])]
        prefixes: Vec<usize>,
        /// How the routes reach wgd: a gRPC session (prefixes and a next
        /// hop), or its own BGP speaker from the harness's replay peer
        /// (the table with its attributes; rows `restart-bgp`).
        #[arg(long, value_enum, default_value_t = scenario::restart::Via::Session)]
        via: scenario::restart::Via,
        /// The routes' prefixes come from this table (the gRPC session
        /// carries no attributes).
        #[command(flatten)]
        table: TableArgs,
    },
    /// T tunnels from one config with `wgd up`, and a no-change reconcile.
    Tunnels {
        #[arg(long, value_delimiter = ',', default_values_t = [10, 100])]
        tunnels: Vec<usize>,
    },
    /// Writes the table as an MRT file (TABLE_DUMP_V2), as the bgp
    /// scenario feeds gobgpd, prints its shape, and the prefixes with
    /// `--list`.
    Mrt {
        #[arg(long, default_value_t = 100_000)]
        prefixes: usize,
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        table: TableArgs,
        output: PathBuf,
    },
    /// Where the built-in speaker's and the bridge's bytes go, structure
    /// by structure, for the bgp scenario's table, measured in this
    /// process by the allocator (no lab, no kernel).
    Memory {
        #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000])]
        prefixes: Vec<usize>,
        #[command(flatten)]
        table: TableArgs,
    },
    /// What origin validation costs the speaker: add time and memory per
    /// prefix with and without it, against a generated VRP set half the
    /// table's size, measured in this process (no lab, no kernel).
    Rpki {
        #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000])]
        prefixes: Vec<usize>,
        #[command(flatten)]
        table: TableArgs,
    },
    /// Prints (and with --plot draws) reports saved with --json, merged.
    Show { files: Vec<PathBuf> },
    /// A tunnel's underlay cut: time until its routes leave the kernel and
    /// traffic takes the other tunnel.
    Failover {
        #[arg(long, value_delimiter = ',', default_values_t = [1_000])]
        prefixes: Vec<usize>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wgd-bench: cannot start a runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
        progress("interrupted: cleaning up");
    });

    let mut report = report::Report::default();
    if !matches!(cli.scenario, Scenario::Show { .. }) {
        report.machine = report::Machine::here();
    }
    let common = cli.common.clone();
    let result = run(&runtime, &cli, &mut report);
    if let Err(error) = &result {
        eprintln!("wgd-bench: {error:#}");
    }
    if matches!(cli.scenario, Scenario::Mrt { .. }) {
        return if result.is_ok() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        };
    }
    if common.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("wgd-bench: {error}"),
        }
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &common.plot {
        match plot::draw(&report, path) {
            Ok(()) => progress(format!("chart written to {}", path.display())),
            Err(error) => eprintln!("wgd-bench: plot: {error:#}"),
        }
    }
    if result.is_err() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn run(
    runtime: &tokio::runtime::Runtime,
    cli: &Cli,
    report: &mut report::Report,
) -> anyhow::Result<()> {
    anyhow::ensure!(cli.common.runs > 0, "--runs must be at least 1");
    if let Scenario::Mrt {
        prefixes,
        list,
        table,
        output,
    } = &cli.scenario
    {
        let source = table.source(cli.common.seed)?;
        let table = source.table(*prefixes);
        // IPv6 routes as the bgp scenario gives gobgpd those for its
        // first receiver.
        let next_hop6 = "fd77:0:0:0::b".parse()?;
        mrt::write(output, &table, "10.255.0.1".parse()?, 65002, next_hop6)?;
        let next_hops = feeder::NextHops {
            ipv4: std::net::Ipv4Addr::UNSPECIFIED,
            ipv6: std::net::Ipv6Addr::UNSPECIFIED,
        };
        let updates = feeder::encode(&table, 65002, next_hops);
        progress(
            table::Shape::of(
                "mrt",
                &source.name(),
                &table,
                Some(updates.announce.messages),
            )
            .line(),
        );
        if *list {
            for prefix in &table.prefixes {
                println!("{prefix}");
            }
        }
        return Ok(());
    }
    if let Scenario::Show { files } = &cli.scenario {
        for file in files {
            let text = std::fs::read_to_string(file)
                .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
            let saved: report::Report = serde_json::from_str(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
            report.merge(saved);
        }
        return Ok(());
    }
    if let Scenario::Memory { prefixes, table } = &cli.scenario {
        let source = table.source(cli.common.seed)?;
        return scenario::memory::run(&cli.common, &source, prefixes, report);
    }
    if let Scenario::Rpki { prefixes, table } = &cli.scenario {
        let source = table.source(cli.common.seed)?;
        return scenario::rpki::run(&cli.common, &source, prefixes, report);
    }
    let wgd = lab::Wgd::find(cli.common.wgd.as_deref())?;
    match &cli.scenario {
        Scenario::Fib { prefixes } => {
            scenario::fib::run(runtime, &wgd, &cli.common, prefixes, report)
        }
        Scenario::Bgp {
            prefixes,
            receivers,
            feeder,
            peers,
            table,
        } => {
            let source = table.source(cli.common.seed)?;
            let feed = scenario::bgp::Feed {
                kind: *feeder,
                peers: usize::from(*peers),
            };
            scenario::bgp::run(
                &wgd,
                &cli.common,
                &source.sizes(prefixes),
                receivers,
                feed,
                &source,
                report,
            )
        }
        Scenario::Restart {
            prefixes,
            via,
            table,
        } => {
            let source = table.source(cli.common.seed)?;
            let sizes = source.sizes(prefixes);
            match via {
                scenario::restart::Via::Session => {
                    scenario::restart::run(runtime, &wgd, &cli.common, &sizes, &source, report)
                }
                scenario::restart::Via::Bgp => {
                    scenario::restart::run_bgp(runtime, &wgd, &cli.common, &sizes, &source, report)
                }
            }
        }
        Scenario::Tunnels { tunnels } => scenario::tunnels::run(&wgd, &cli.common, tunnels, report),
        Scenario::Mrt { .. }
        | Scenario::Show { .. }
        | Scenario::Memory { .. }
        | Scenario::Rpki { .. } => Ok(()),
        Scenario::Failover { prefixes } => {
            scenario::failover::run(&wgd, &cli.common, prefixes, report)
        }
    }
}
