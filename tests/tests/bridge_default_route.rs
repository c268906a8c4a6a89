//! The recursive-routing guard: a learned `0.0.0.0/0` through a tunnel
//! covers the tunnel's own endpoint, which the host reaches through its
//! (DHCP-like, metric 100) default route. Without a guard, the tunnel's
//! encrypted packets would be routed into the tunnel itself. The bridge
//! pins the endpoint's host route to the underlay before it installs the
//! learned route: the handshake still renews, and ping still crosses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wgd_labs::wait_for;
use wgd_proto::v1 as api;
use wgd_tests::bridge::{BridgeLab, route_via};

/// `wg show TUNNEL latest-handshakes` in A: the Unix time of the peer's
/// latest handshake (0 if none).
fn latest_handshake(lab: &BridgeLab) -> u64 {
    lab.a
        .check(&["wg", "show", &lab.tunnel_a, "latest-handshakes"])
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_default_route_leaves_its_own_tunnel_working() -> anyhow::Result<()> {
    let lab = BridgeLab::routed("")?;
    let endpoint = lab.endpoint_b;
    let underlay_before = lab.a.check(&["ip", "route", "get", endpoint])?;
    assert!(underlay_before.contains(&format!("dev {}", lab.underlay_a)));

    let mut client = lab.client().await?;
    let response = client
        .add_routes(api::AddRoutesRequest {
            owner: "controller".into(),
            routes: vec![route_via("0.0.0.0/0", BridgeLab::TUNNEL_B)],
        })
        .await?
        .into_inner();
    assert_eq!(
        response.results[0].state,
        api::RouteState::Installed as i32,
        "{:?}\n{}",
        response.results,
        lab.log()
    );

    // The learned default is in the kernel, and beats the host's own (metric 100)...
    let all = lab.a.check(&["ip", "-N", "route"])?;
    assert!(
        all.contains(&format!(
            "default via {} dev {} proto 200 metric 20 onlink",
            BridgeLab::TUNNEL_B,
            lab.tunnel_a
        )),
        "{all}"
    );
    let elsewhere = lab.a.check(&["ip", "route", "get", "192.0.2.1"])?;
    assert!(
        elsewhere.contains(&format!("dev {}", lab.tunnel_a)),
        "{elsewhere}"
    );
    // ...but the tunnel's own endpoint stays on the underlay, by a pinned host route.
    let pinned = format!(
        "{endpoint} via {} dev {} proto 200 metric 20 onlink",
        BridgeLab::ROUTER_A_SIDE,
        lab.underlay_a
    );
    assert!(all.contains(&pinned), "no `{pinned}` in:\n{all}");
    let to_endpoint = lab.a.check(&["ip", "route", "get", endpoint])?;
    assert!(
        to_endpoint.contains(&format!("dev {}", lab.underlay_a)),
        "the endpoint is routed into the tunnel: {to_endpoint}"
    );

    // A fresh handshake crosses: B's device is made anew and must shake
    // hands with A again, A answering to B's endpoint.
    let before = now();
    let b_config = lab.b.dir().join("b.toml");
    let b_config = b_config.to_str().unwrap_or_default();
    lab.wgd.run(&lab.b, &["down", b_config])?;
    lab.wgd.run(&lab.b, &["up", b_config])?;
    wait_for(
        Duration::from_secs(15),
        "a new handshake under the learned default",
        || latest_handshake(&lab) >= before,
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", lab.log()))?;
    assert!(
        lab.a.pings(BridgeLab::TUNNEL_B)?,
        "no ping across the tunnel"
    );
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping to B's LAN through the learned default"
    );

    // Withdrawn: the learned default and its pin go; the host's own default stays.
    client
        .delete_routes(api::DeleteRoutesRequest {
            owner: "controller".into(),
            prefixes: vec!["0.0.0.0/0".into()],
        })
        .await?;
    assert_eq!(lab.kernel_count()?, 0, "{:?}", lab.kernel_routes()?);
    let after = lab.a.check(&["ip", "route", "get", endpoint])?;
    assert_eq!(after, underlay_before);
    Ok(())
}
