//! Nexthop tracking: when a tunnel's peer goes dead (no handshake for the
//! dead interval) or its interface goes away, routes through it leave the
//! kernel, stay in the RIB with the reason, and come back with the tunnel;
//! a session that registered the nexthop is told each time.

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_proto::v1 as api;
use wgd_tests::bridge::{BridgeLab, SessionClient, batch, route_via};

/// The next nexthop update on the session, skipping tunnel events.
async fn next_nexthop(session: &mut SessionClient) -> anyhow::Result<api::NexthopUpdate> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), session.next())
            .await
            .map_err(|_| anyhow::anyhow!("no nexthop update within 20 s"))??;
        if let api::session_response::Kind::Nexthop(update) = message {
            return Ok(update);
        }
    }
}

/// The state and reason `wgd routes --json` gives the far LAN's route.
fn listed(lab: &BridgeLab) -> anyhow::Result<(String, String)> {
    let text = lab.wgd.run(
        &lab.a,
        &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
    )?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    Ok((
        json[0]["state"].as_str().unwrap_or_default().to_owned(),
        json[0]["reason"].as_str().unwrap_or_default().to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_their_tunnel_down_and_up_and_registered_clients_are_told()
-> anyhow::Result<()> {
    // Short intervals so that a dead peer shows within seconds.
    let lab = BridgeLab::new("")?;
    let config = std::fs::read_to_string(&lab.config_a)?.replace(
        "[daemon]\n",
        "[daemon]\npeer_dead_after = 3\nreconcile_interval = 2\n",
    );
    std::fs::write(&lab.config_a, config)?;
    wgd_tests::sighup(&lab.a, lab.daemon.as_ref().expect("running"))?;

    let mut session = SessionClient::open(&lab, "tracker", 30).await?;
    session
        .send(api::SessionRequest {
            kind: Some(api::session_request::Kind::Nexthops(
                api::NexthopRegistration {
                    register: vec![BridgeLab::TUNNEL_B.into()],
                    unregister: vec![],
                },
            )),
        })
        .await?;
    let update = next_nexthop(&mut session).await?;
    assert_eq!(update.address, BridgeLab::TUNNEL_B);
    assert!(update.reachable, "{update:?}");
    assert_eq!(update.tunnel, lab.tunnel_a);
    session
        .send(batch(
            1,
            vec![route_via(BridgeLab::FAR_LAN, BridgeLab::TUNNEL_B)],
            api::route_update::Operation::Add,
        ))
        .await?;
    wait_for(Duration::from_secs(5), "the route in the kernel", || {
        lab.kernel_count().is_ok_and(|count| count == 1)
    })?;

    // B goes away: A's peer is declared dead after the interval.
    let b_config = lab.b.dir().join("b.toml");
    let b_config = b_config.to_str().unwrap_or_default().to_owned();
    lab.wgd.run(&lab.b, &["down", &b_config])?;
    let update = next_nexthop(&mut session).await?;
    assert!(!update.reachable, "{update:?}");
    assert!(update.reason.contains("is dead"), "{update:?}");
    wait_for(
        Duration::from_secs(5),
        "the route to leave the kernel",
        || lab.kernel_count().is_ok_and(|count| count == 0),
    )?;
    let (state, reason) = listed(&lab)?;
    assert_eq!(state, "queued");
    assert!(reason.contains("is dead (no recent handshake)"), "{reason}");

    // B is back: handshake, route back, client told.
    lab.wgd.run(&lab.b, &["up", &b_config])?;
    let update = next_nexthop(&mut session).await?;
    assert!(update.reachable, "{update:?}");
    wait_for(Duration::from_secs(10), "the route to come back", || {
        lab.kernel_count().is_ok_and(|count| count == 1)
    })?;
    assert!(lab.a.pings(BridgeLab::FAR_LAN_HOST)?);

    // A's interface goes away (its wireguard-go dies): the daemon makes it
    // anew, and the route is put back on the new interface.
    let index_before = wgd_tests::ifindex(&lab.a, &lab.tunnel_a);
    lab.a.check(&[
        "pkill",
        "-9",
        "-f",
        &format!("wireguard-go -f {}", lab.tunnel_a),
    ])?;
    wait_for(
        Duration::from_secs(15),
        "the tunnel made anew with its route",
        || {
            let index = wgd_tests::ifindex(&lab.a, &lab.tunnel_a);
            index.is_some()
                && index != index_before
                && lab
                    .kernel_routes()
                    .is_ok_and(|routes| routes.iter().any(|r| r.contains(&lab.tunnel_a)))
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", lab.log()))?;
    wait_for(
        Duration::from_secs(10),
        "traffic through the new interface",
        || lab.a.pings(BridgeLab::FAR_LAN_HOST).unwrap_or(false),
    )?;
    Ok(())
}
