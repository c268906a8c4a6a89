//! The route bridge end to end: a routing program injects 10,000 prefixes
//! through a gRPC session onto a tunnel; they are all in the kernel with
//! wgd's protocol number, and traffic to one of them crosses the tunnel.
//! When the program goes away, its routes stay for its hold time, not a
//! moment less, and then leave.

use std::time::{Duration, Instant};

use wgd_labs::wait_for;
use wgd_proto::v1 as api;
use wgd_tests::bridge::{BridgeLab, SessionClient, batch, bulk_prefixes, end_of_rib, route_via};

const ROUTES: usize = 10_000;
const HOLD_SECONDS: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_routes_carry_traffic_and_outlive_their_session_by_the_hold_time()
-> anyhow::Result<()> {
    let lab = BridgeLab::new("")?;
    let mut session = SessionClient::open(&lab, "bench-speaker", HOLD_SECONDS).await?;
    assert_eq!(session.welcome.stale_routes, 0);

    let mut prefixes = bulk_prefixes(ROUTES - 1);
    prefixes.push(BridgeLab::FAR_LAN.to_owned());
    let routes = prefixes
        .iter()
        .map(|prefix| route_via(prefix, BridgeLab::TUNNEL_B))
        .collect();
    session
        .send(batch(1, routes, api::route_update::Operation::Add))
        .await?;
    session.send(end_of_rib()).await?;
    let api::session_response::Kind::BatchResult(result) = session.next().await? else {
        anyhow::bail!("no BatchResult");
    };
    assert_eq!(result.id, 1);
    assert_eq!(result.results.len(), ROUTES);
    let not_installed: Vec<_> = result
        .results
        .iter()
        .filter(|r| r.state != api::RouteState::Installed as i32)
        .take(5)
        .collect();
    assert!(not_installed.is_empty(), "not installed: {not_installed:?}");
    let api::session_response::Kind::EndOfRib(end) = session.next().await? else {
        anyhow::bail!("no EndOfRibResult");
    };
    assert_eq!(end.withdrawn, 0);

    // What an operator sees: every prefix in the kernel, ours, via the tunnel.
    let kernel = lab.kernel_routes()?;
    assert_eq!(kernel.len(), ROUTES, "{}", lab.log());
    // (`ip route show proto 200` leaves the protocol out of each line.)
    let far = format!(
        "{} via {} dev {} metric 20 onlink",
        BridgeLab::FAR_LAN,
        BridgeLab::TUNNEL_B,
        lab.tunnel_a
    );
    assert!(
        kernel.contains(&far),
        "no `{far}` in:\n{}",
        kernel[..5].join("\n")
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping across the tunnel to the learned prefix"
    );
    let listed = lab.wgd.run(
        &lab.a,
        &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
    )?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(listed[0]["owner"], "bench-speaker");
    assert_eq!(listed[0]["state"], "installed");
    let metrics = wgd_tests::scrape_metrics(&lab.a, BridgeLab::METRICS);
    for series in [
        format!("wgd_bridge_routes{{owner=\"bench-speaker\",state=\"installed\"}} {ROUTES}"),
        format!("wgd_bridge_kernel_routes {ROUTES}"),
        "wgd_bridge_fib_errors_total 0".to_owned(),
    ] {
        assert!(
            metrics.contains(&series),
            "no `{series}` in the metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("wgd_bridge_batch_seconds_count"),
        "{metrics}"
    );

    // The program goes away: its routes stay for the hold time, then go.
    drop(session);
    let gone = Instant::now();
    let mut seen = Vec::new();
    wait_for(
        Duration::from_secs(u64::from(HOLD_SECONDS) + 10),
        "the routes to leave after the hold time",
        || {
            let count = lab.kernel_count().unwrap_or(usize::MAX);
            seen.push((gone.elapsed(), count));
            count == 0
        },
    )?;
    let first_loss = seen
        .iter()
        .find(|(_, count)| *count < ROUTES)
        .map(|(at, _)| *at)
        .expect("the routes left");
    assert!(
        first_loss >= Duration::from_secs(u64::from(HOLD_SECONDS)),
        "routes left {first_loss:?} after the session ended, before its hold time of {HOLD_SECONDS} s"
    );
    assert!(
        !lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "the far LAN is still reachable after its route was withdrawn"
    );
    Ok(())
}
