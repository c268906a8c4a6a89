//! One module per scenario. Each builds its lab, runs wgd and its anchors
//! `--runs` times at each size, and adds rows to the report.

pub mod bgp;
pub mod failover;
pub mod fib;
pub mod gobgp_receivers;
pub mod memory;
pub mod restart;
pub mod rpki;
pub mod tunnels;

use std::time::{Duration, Instant};

use crate::kernel::Counter;

/// Route protocol numbers in the kernel: wgd's, and the anchors' own (so
/// each contender's routes are counted apart).
pub const PROTO_WGD: u8 = 200;
pub const PROTO_IP_BATCH: u8 = 201;
pub const PROTO_NETLINK: u8 = 202;
pub const PROTO_BIRD: u8 = 12;
pub const PROTO_FRR_BGP: u8 = 186;

/// When a contender says it is done: the time it took, if the kernel then
/// has `target` routes of `protocol`; otherwise the kernel is polled until
/// it has, and the time is when it first did (from `since`).
pub fn confirmed(
    counter: &Counter,
    protocol: u8,
    target: usize,
    since: Instant,
    reported: Duration,
) -> anyhow::Result<Duration> {
    if counter.count(protocol)? == target {
        return Ok(reported);
    }
    crate::lab::time_until(
        since,
        Duration::from_millis(20),
        Duration::from_secs(600),
        &format!("{target} routes of protocol {protocol} in the kernel"),
        || Ok(counter.count(protocol)? == target),
    )
}

/// Runs `future` on the runtime, giving up when the harness is
/// interrupted.
pub fn block_on<T>(
    runtime: &tokio::runtime::Runtime,
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    runtime.block_on(async {
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if crate::check_interrupted().is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            result = future => result,
            () = watch => anyhow::bail!("interrupted"),
        }
    })
}

/// Runs a command to completion; an error with its stderr if it fails.
pub fn command(argv: &[&str]) -> anyhow::Result<String> {
    let output = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|error| anyhow::anyhow!("{}: {error}", argv[0]))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
