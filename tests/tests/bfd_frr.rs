//! BFD against FRR's bfdd (Debian's `frr`), over a wgd tunnel with
//! wireguard-go: `bfd = true` on wgd's neighbor and `neighbor ... bfd` on
//! FRR's bring a BFD session up beside the BGP session; when the underlay
//! is cut, the BGP session goes with BFD's detection time, long before its
//! hold time, and B's routes leave A's kernel at once although graceful
//! restart was negotiated; when the underlay is back, so are both
//! sessions and the routes. `wgd bfd` and the metrics show the session; a
//! SIGHUP leaves it alone; its changes are on the event stream; a BFD session that never comes up (FRR without
//! BFD) does not keep BGP down.

use std::time::Duration;

use anyhow::Context;

use wgd_labs::wait_for;
use wgd_tests::bgp::{api, established, has_route, speaker_config, summary};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;
use wgd_tests::{scrape_metrics, sighup};

/// A's only BFD session as `wgd bfd --json` prints it (`null` if the
/// daemon does not answer).
fn wgd_bfd(lab: &BridgeLab) -> serde_json::Value {
    lab.wgd
        .run(&lab.a, &["bfd", "--json", "--api", api(lab)])
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|value| value["sessions"][0].clone())
        .unwrap_or_default()
}

/// The value of the metric line that starts with `start` in A's metrics.
fn metric(lab: &BridgeLab, start: &str) -> Option<u64> {
    scrape_metrics(&lab.a, BridgeLab::METRICS)
        .lines()
        .find_map(|line| line.strip_prefix(start))
        .and_then(|value| value.trim().parse().ok())
}

/// B's frr.conf: AS 65002, its LAN, A as neighbor with BFD (bfdd's
/// defaults, 300 ms x 3), graceful restart, hold time 9 s.
fn frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname site-b\n\
         router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n\
         timers bgp 3 9\n neighbor {a} remote-as 65001\n neighbor {a} bfd\n\
         address-family ipv4 unicast\n  network {lan}\n exit-address-family\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        lan = BridgeLab::FAR_LAN,
    )
}

/// FRR's BFD session with A: its status (`up`, `down`, ...), if it has one.
fn frr_bfd_status(frr: &Frr) -> Option<String> {
    let text = frr.vtysh(&["show bfd peers json"]).ok()?;
    let peers: serde_json::Value = serde_json::from_str(&text).ok()?;
    peers
        .as_array()?
        .iter()
        .find(|peer| peer["peer"] == BridgeLab::TUNNEL_A)
        .and_then(|peer| peer["status"].as_str())
        .map(str::to_owned)
}

#[test]
fn a_cut_underlay_takes_the_session_and_its_routes_down_with_bfd() -> anyhow::Result<()> {
    // Graceful restart on (the default), restart time 30 s, hold time 9 s:
    // without BFD, a cut would keep B's routes for 9 + 30 s.
    let lab = BridgeLab::new(&(speaker_config() + "bfd = true\n"))?;
    let events = lab
        .wgd
        .spawn(&lab.a, &["events", "--json", "--api", api(&lab)])?;
    let frr = Frr::start_with(&lab.b, &frr_config(), &["zebra", "bfdd", "bgpd"], &[])?;
    let context = |error: wgd_labs::Error| {
        let bfd = frr.vtysh(&["show bfd peers"]).unwrap_or_default();
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bfd}\n{bgp}\nwgd:\n{}", lab.log())
    };

    wait_for(Duration::from_secs(30), "the BGP session with FRR", || {
        established(&lab)
    })
    .map_err(context)?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(context)?;
    wait_for(
        Duration::from_secs(15),
        "FRR's BFD session with A up",
        || frr_bfd_status(&frr).as_deref() == Some("up"),
    )
    .map_err(context)?;
    // FRR asked for graceful restart: a plain failure would keep the routes.
    let neighbors = frr.vtysh(&["show bgp neighbors"])?;
    assert!(
        neighbors.contains("Graceful Restart Capability: advertised and received"),
        "graceful restart not negotiated:\n{neighbors}"
    );
    // wgd's side, as `wgd bfd` and the metrics show it.
    wait_for(Duration::from_secs(5), "wgd's BFD session up", || {
        wgd_bfd(&lab)["state"] == "up"
    })
    .map_err(context)?;
    let session = wgd_bfd(&lab);
    assert_eq!(session["peer"], BridgeLab::TUNNEL_B, "{session}");
    assert_eq!(session["tunnel"], lab.tunnel_a.as_str(), "{session}");
    assert_eq!(session["multiplier"], 3, "{session}");
    assert_eq!(session["negotiated_transmit_ms"], 300, "{session}");
    assert_eq!(session["detection_time_ms"], 900, "{session}");
    let up_labels = format!(
        "wgd_bfd_session_up{{neighbor=\"{}\",tunnel=\"{}\"}} ",
        BridgeLab::TUNNEL_B,
        lab.tunnel_a
    );
    assert_eq!(metric(&lab, &up_labels), Some(1), "{up_labels}");
    let changes = format!(
        "wgd_bfd_state_changes_total{{neighbor=\"{}\"}} ",
        BridgeLab::TUNNEL_B
    );
    let changes_before = metric(&lab, &changes).context("the state changes metric")?;
    assert_eq!(session["state_changes"], changes_before, "{session}");

    // A SIGHUP with the same BFD settings leaves the session alone.
    let reconciles = || metric(&lab, "wgd_reconciles_total ");
    let reconciled = reconciles().context("wgd's reconciles")?;
    let daemon = lab.daemon.as_ref().context("A's daemon")?;
    sighup(&lab.a, daemon)?;
    wait_for(Duration::from_secs(10), "wgd's reload after SIGHUP", || {
        reconciles().is_some_and(|count| count > reconciled)
    })
    .map_err(context)?;
    let session = wgd_bfd(&lab);
    assert_eq!(session["state"], "up", "{session}");
    assert_eq!(session["state_changes"], changes_before, "{session}");
    assert_eq!(frr_bfd_status(&frr).as_deref(), Some("up"));

    // The cut: nothing crosses the underlay any more, the tunnel interfaces
    // stay up. BFD notices within 900 ms; the hold timer would take 9 s and
    // graceful restart 30 s more. 5 s leaves room for a busy machine.
    lab.a
        .check(&["ip", "link", "set", "dev", &lab.underlay_a, "down"])?;
    wait_for(
        Duration::from_secs(5),
        "B's prefix gone from A's kernel, before the hold time",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(context)?;
    let neighbor = &summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0];
    assert_ne!(neighbor["state"], "established", "{neighbor}");
    let last_error = neighbor["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("6/10") || last_error.to_lowercase().contains("bfd"),
        "not reset by BFD: {neighbor}"
    );
    wait_for(Duration::from_secs(5), "FRR's BFD session down", || {
        frr_bfd_status(&frr).as_deref() == Some("down")
    })
    .map_err(context)?;
    let session = wgd_bfd(&lab);
    assert_eq!(session["state"], "down", "{session}");
    assert_eq!(session["diagnostic_code"], 1, "{session}");
    assert_eq!(metric(&lab, &up_labels), Some(0));
    // Both changes on the event stream, on the tunnel.
    let bfd_event = |to: &str| {
        events.log().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|event| {
                event["event"] == "bfd-state"
                    && event["tunnel"] == lab.tunnel_a.as_str()
                    && event["detail"]["peer"] == BridgeLab::TUNNEL_B
                    && event["detail"]["to"] == to
            })
        })
    };
    wait_for(
        Duration::from_secs(5),
        "bfd-state events up and down",
        || bfd_event("up") && bfd_event("down"),
    )
    .map_err(|error| anyhow::anyhow!("{error}\nevents:\n{}", events.log()))?;
    assert!(
        events.log().contains("control detection time expired"),
        "{}",
        events.log()
    );

    // Mended: BFD, then BGP, then the route come back.
    lab.a
        .check(&["ip", "link", "set", "dev", &lab.underlay_a, "up"])?;
    wait_for(
        Duration::from_secs(15),
        "FRR's BFD session up again",
        || frr_bfd_status(&frr).as_deref() == Some("up"),
    )
    .map_err(context)?;
    wait_for(Duration::from_secs(60), "the BGP session back", || {
        established(&lab)
    })
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "B's prefix back in A's kernel",
        || has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(context)?;
    Ok(())
}

#[test]
fn a_bfd_session_that_never_comes_up_does_not_hold_bgp_down() -> anyhow::Result<()> {
    // FRR runs no bfdd and has no `neighbor ... bfd`: wgd's BFD session
    // stays down, and BGP comes up regardless.
    let lab = BridgeLab::new(&(speaker_config() + "bfd = true\n"))?;
    let config = frr_config().replace(&format!(" neighbor {} bfd\n", BridgeLab::TUNNEL_A), "");
    let frr = Frr::start(&lab.b, &config)?;
    let context = |error: wgd_labs::Error| {
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    };
    wait_for(Duration::from_secs(30), "the BGP session with FRR", || {
        established(&lab)
    })
    .map_err(context)?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(context)?;
    let session = wgd_bfd(&lab);
    assert_eq!(session["state"], "down", "{session}");
    assert_eq!(session["tunnel"], lab.tunnel_a.as_str(), "{session}");
    assert_eq!(session["state_changes"], 0, "{session}");
    assert!(established(&lab));
    Ok(())
}
