//! A restart of `wgd run`, even by `kill -9`, keeps traffic flowing: the
//! new daemon adopts the routes carrying wgd's protocol number, keeps them
//! while the routing program reconnects and re-claims them, and removes
//! only those nobody claimed once the startup hold is over. The kernel's
//! count of wgd's routes is sampled the whole time and never drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bridge::{BridgeLab, SessionClient, bulk_prefixes, route_via};

const ROUTES: usize = 10_000;
/// Routes the program does not send again after the restart.
const FORGOTTEN: usize = 10;
const STARTUP_HOLD_SECONDS: u64 = 8;

/// Opens a session as `owner`, sends `prefixes` and end-of-RIB, and checks
/// that every route is installed. Returns the session, still open.
async fn announce(
    lab: &BridgeLab,
    owner: &str,
    prefixes: &[String],
) -> anyhow::Result<SessionClient> {
    let routes = prefixes
        .iter()
        .map(|prefix| route_via(prefix, BridgeLab::TUNNEL_B))
        .collect();
    SessionClient::announce(&lab.socket, owner, 60, routes)
        .await
        .map_err(|error| anyhow::anyhow!("{error:#}\n{}", lab.log()))
}

/// wgd's routes in namespace `name`, counted the way `ip` lists them.
fn count_routes(name: &str) -> usize {
    ["-4", "-6"]
        .iter()
        .map(|family| {
            std::process::Command::new("ip")
                .args([
                    "-n", name, family, "route", "show", "table", "all", "proto", "200",
                ])
                .output()
                .map(|output| output.stdout.iter().filter(|b| **b == b'\n').count())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_keeps_every_route_while_its_successor_reclaims_them() -> anyhow::Result<()>
{
    let mut lab = BridgeLab::new(&format!("startup_hold = {STARTUP_HOLD_SECONDS}"))?;
    // The far LAN first: it is among the routes re-claimed after the restart.
    let mut prefixes = vec![BridgeLab::FAR_LAN.to_owned()];
    prefixes.extend(bulk_prefixes(ROUTES - 1));
    let session = announce(&lab, "speaker", &prefixes).await?;
    assert_eq!(lab.kernel_count()?, ROUTES);

    // Sample the kernel from before the kill until the routes are re-claimed.
    let sampling = Arc::new(AtomicBool::new(true));
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, lowest, samples) = (sampling.clone(), lowest.clone(), samples.clone());
        let name = lab.a.name().to_owned();
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                lowest.fetch_min(count_routes(&name), Ordering::SeqCst);
                samples.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    lab.kill_daemon()?;
    drop(session);
    assert_eq!(
        lab.kernel_count()?,
        ROUTES,
        "routes left with the killed daemon"
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no traffic with the daemon dead"
    );
    lab.start_daemon()?;
    let listed = lab
        .wgd
        .run(&lab.a, &["routes", "--json", "--owner", "adopted"])?;
    let adopted: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(
        adopted.as_array().map(Vec::len),
        Some(ROUTES),
        "the new daemon did not adopt every route"
    );
    let kept = &prefixes[..ROUTES - FORGOTTEN];
    let session = announce(&lab, "speaker", kept).await?;
    assert_eq!(session.welcome.stale_routes, ROUTES as u64);
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no traffic after the re-claim"
    );
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("the sampler ran");
    assert!(
        samples.load(Ordering::SeqCst) > 3,
        "too few samples to tell"
    );
    assert_eq!(
        lowest.load(Ordering::SeqCst),
        ROUTES,
        "the kernel lost routes during the restart"
    );

    // The startup hold ends: only the routes nobody re-claimed go.
    wait_for(
        Duration::from_secs(STARTUP_HOLD_SECONDS + 10),
        "the unclaimed routes to be swept",
        || {
            lab.kernel_count()
                .is_ok_and(|count| count == ROUTES - FORGOTTEN)
        },
    )?;
    let kernel = lab.kernel_routes()?;
    for forgotten in &prefixes[ROUTES - FORGOTTEN..] {
        assert!(
            !kernel
                .iter()
                .any(|line| line.starts_with(&format!("{forgotten} "))),
            "{forgotten} was not swept"
        );
    }
    let listed = lab
        .wgd
        .run(&lab.a, &["routes", "--json", "--owner", "adopted"])?;
    assert_eq!(listed.trim(), "[]");
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no traffic after the sweep"
    );
    drop(session);
    Ok(())
}
