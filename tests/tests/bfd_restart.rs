//! wgd restarting with BFD on its BGP session: its BFD sessions outlive
//! `wgd run`, so its peers' BFD sessions never leave Up.
//!
//! wgd's BFD sessions run in a process of their own (`wgd bfdd`), which
//! `wgd run` starts and a new `wgd run` adopts: its packets say so (the
//! control plane independent bit, C, is set). When `wgd run` is killed
//! (`kill -9`) the BGP session drops (its TCP connection closes) and the
//! peer keeps wgd's routes as graceful restart helper; BFD stays Up, so
//! nothing turns the restart into a failure:
//!
//! - FRR 8.4 keeps them, with `neighbor ... bfd check-control-plane-failure`
//!   (FRR reads the C bit) or without;
//! - BIRD 2.0 keeps them with `bfd graceful`, and with `bfd on` too (which
//!   dropped them while wgd's BFD died with `wgd run`: BIRD's BGP stays up
//!   during a neighbor's graceful restart, and a BFD down stops it hard).
//!
////! Each is checked with wgd killed (`kill -9`) and started again: the
//! peer's BFD session is polled Up all along, its last state change is
//! older than the kill, and the new `wgd run` lists the same session
//! (discriminator, state changes) as the old one.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bgp::{LOCAL_LAN, add_local_lan, established, speaker_config};
use wgd_tests::bird::Bird;
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

/// The peer at B and what it is told to do with a BFD down.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// FRR, with `bfd check-control-plane-failure` or not.
    Frr { check: bool },
    /// BIRD, with `bfd graceful` or `bfd on`.
    Bird { graceful: bool },
}

/// B's frr.conf: A as neighbor with BFD and graceful restart; with
/// `check`, FRR reads the C bit of A's BFD packets.
fn frr_config(check: bool) -> String {
    let check = if check {
        format!(
            " neighbor {} bfd check-control-plane-failure\n",
            BridgeLab::TUNNEL_A
        )
    } else {
        String::new()
    };
    format!(
        "frr defaults traditional\nhostname site-b\n\
         router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n\
         timers bgp 3 9\n neighbor {a} remote-as 65001\n neighbor {a} bfd\n{check}\
         address-family ipv4 unicast\n  network {lan}\n exit-address-family\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        lan = BridgeLab::FAR_LAN,
    )
}

/// B's bird.conf: A as neighbor with BFD at 300 ms x 3 and graceful
/// restart; `bfd graceful` or `bfd on`.
fn bird_config(graceful: bool) -> String {
    format!(
        "router id {b};\n\
         protocol device {{\n}}\n\
         protocol bfd {{\n  interface \"*\" {{\n    min rx interval 300 ms;\n    min tx interval 300 ms;\n    multiplier 3;\n  }};\n}}\n\
         protocol bgp site_a {{\n  local {b} as 65002;\n  neighbor {a} as 65001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 error wait time 1, 5;\n  graceful restart on;\n  bfd {mode};\n\
         \x20 ipv4 {{ import all; export none; }};\n}}\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        mode = if graceful { "graceful" } else { "on" },
    )
}

/// B's BFD session with A, and whether B has A's LAN from wgd.
enum Running {
    Frr(Frr),
    Bird(Bird),
}

impl Running {
    fn bfd_up(&self) -> bool {
        match self {
            Running::Frr(frr) => {
                frr_bfd_peer(frr).is_some_and(|peer| peer["status"].as_str() == Some("up"))
            }
            Running::Bird(bird) => bird_bfd_line(bird).is_some_and(|line| line.contains(" Up ")),
        }
    }

    /// When B's session last changed state, as B says: BIRD's `Since`
    /// column; for FRR, now less its uptime, in whole seconds.
    fn bfd_since(&self) -> Option<String> {
        match self {
            Running::Frr(frr) => {
                let uptime = frr_bfd_peer(frr)?["uptime"].as_u64()?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                Some((now - uptime).to_string())
            }
            Running::Bird(bird) => {
                let line = bird_bfd_line(bird)?;
                // "address interface state since interval timeout".
                line.split_whitespace().nth(3).map(str::to_owned)
            }
        }
    }

    /// Whether B's BGP session with A is established.
    fn bgp_established(&self) -> bool {
        match self {
            Running::Frr(frr) => frr
                .vtysh(&[&format!("show bgp neighbors {} json", BridgeLab::TUNNEL_A)])
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|value| value[BridgeLab::TUNNEL_A]["bgpState"] == "Established"),
            Running::Bird(bird) => bird
                .birdc(&["show", "protocols", "site_a"])
                .is_ok_and(|text| text.contains("Established")),
        }
    }

    fn has_lan(&self, lab: &BridgeLab) -> bool {
        match self {
            // zebra puts it in B's kernel.
            Running::Frr(_) => lab
                .b
                .check(&["ip", "route", "show", LOCAL_LAN])
                .is_ok_and(|route| route.contains("proto bgp")),
            Running::Bird(bird) => bird
                .birdc(&["show", "route", "for", LOCAL_LAN])
                .is_ok_and(|text| text.contains("site_a")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Running::Frr(frr) => format!(
                "{}\n{}",
                frr.vtysh(&["show bfd peers"]).unwrap_or_default(),
                frr.vtysh(&["show bgp summary"]).unwrap_or_default()
            ),
            Running::Bird(bird) => format!(
                "{}\n{}\n{}",
                bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default(),
                bird.protocols(),
                bird.log()
            ),
        }
    }
}

/// Whether two `bfd_since` readings are the same time: BIRD's column
/// exactly, FRR's seconds within the rounding of two uptime readings.
fn same_since(before: &str, after: &str) -> bool {
    if let (Ok(before), Ok(after)) = (before.parse::<u64>(), after.parse::<u64>()) {
        return before.abs_diff(after) <= 2;
    }
    // BIRD prints `Since` as a time of day it derives from its monotonic
    // clock at each `show`, so the same instant can read a millisecond
    // apart from one call to the next (seen: .992, then .991).
    match (milliseconds_of_day(before), milliseconds_of_day(after)) {
        (Some(before), Some(after)) => before.abs_diff(after) <= 50,
        _ => before == after,
    }
}

/// `HH:MM:SS.mmm` as milliseconds since midnight.
fn milliseconds_of_day(time: &str) -> Option<u64> {
    let (clock, fraction) = time.split_once('.')?;
    let mut parts = clock.split(':').map(|part| part.parse::<u64>().ok());
    let (hours, minutes, seconds) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || fraction.len() != 3 {
        return None;
    }
    let milliseconds = fraction.parse::<u64>().ok()?;
    Some(((hours * 60 + minutes) * 60 + seconds) * 1000 + milliseconds)
}

/// BIRD's line for its BFD session with A.
fn bird_bfd_line(bird: &Bird) -> Option<String> {
    let text = bird.birdc(&["show", "bfd", "sessions"]).ok()?;
    text.lines()
        .find(|line| line.starts_with(&format!("{} ", BridgeLab::TUNNEL_A)))
        .map(str::to_owned)
}

/// FRR's BFD session with A, from `show bfd peers json`.
fn frr_bfd_peer(frr: &Frr) -> Option<serde_json::Value> {
    let text = frr.vtysh(&["show bfd peers json"]).ok()?;
    let peers: serde_json::Value = serde_json::from_str(&text).ok()?;
    peers
        .as_array()?
        .iter()
        .find(|peer| peer["peer"] == BridgeLab::TUNNEL_A)
        .cloned()
}

/// Whether the BFD packets A sends B say C = 1 (control plane
/// independent): one captured on B's end of the tunnel (a packet socket,
/// as tcpdump would; the first byte after the version and diagnostic
/// holds the flags, C = 0x08).
fn c_bit(lab: &BridgeLab) -> anyhow::Result<bool> {
    const CAPTURE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
s.settimeout(10)
while True:
    packet = s.recv(2048)
    header = (packet[0] & 0x0F) * 4
    if packet[9] == 17 and int.from_bytes(packet[header + 2:header + 4], "big") == 3784:
        print("1" if packet[header + 8 + 1] & 0x08 else "0")
        break
"#;
    let flag = lab.b.check(&["python3", "-c", CAPTURE, &lab.tunnel_b])?;
    Ok(flag.trim() == "1")
}

/// wgd's own BFD session with B, from `wgd bfd --json`.
fn wgd_session(lab: &BridgeLab) -> Option<serde_json::Value> {
    let api = lab.socket.to_str()?;
    let text = lab.wgd.run(&lab.a, &["bfd", "--json", "--api", api]).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["sessions"].as_array()?.first().cloned()
}

#[test]
fn frr_keeps_wgd_s_routes_across_its_restart() -> anyhow::Result<()> {
    restart(Peer::Frr { check: false })
}

#[test]
fn frr_reading_the_c_bit_keeps_them_too() -> anyhow::Result<()> {
    restart(Peer::Frr { check: true })
}

#[test]
fn bird_with_bfd_graceful_keeps_them() -> anyhow::Result<()> {
    restart(Peer::Bird { graceful: true })
}

#[test]
fn bird_with_bfd_on_keeps_them_as_bfd_stays_up() -> anyhow::Result<()> {
    restart(Peer::Bird { graceful: false })
}

fn restart(peer: Peer) -> anyhow::Result<()> {
    let mut lab = BridgeLab::new(&(speaker_config() + "bfd = true\n"))?;
    add_local_lan(&lab)?;
    let running = match peer {
        Peer::Frr { check } => Running::Frr(Frr::start_with(
            &lab.b,
            &frr_config(check),
            &["zebra", "bfdd", "bgpd"],
            &[],
        )?),
        Peer::Bird { graceful } => Running::Bird(Bird::start(&lab.b, &bird_config(graceful))?),
    };
    let context =
        |lab: &BridgeLab| format!("{peer:?}:\n{}\nwgd:\n{}", running.describe(), lab.log());
    wait_for(Duration::from_secs(30), "the BGP session", || {
        established(&lab)
    })
    .with_context(|| context(&lab))?;
    wait_for(Duration::from_secs(20), "B's BFD session up", || {
        running.bfd_up()
    })
    .with_context(|| context(&lab))?;
    wait_for(Duration::from_secs(20), "A's LAN at B", || {
        running.has_lan(&lab)
    })
    .with_context(|| context(&lab))?;

    let before = wgd_session(&lab).context("wgd's BFD session")?;
    assert_eq!(before["state"], "up", "{before}");
    let since = running.bfd_since().context("B's BFD session")?;
    // The sessions live in the BFD process, apart from BGP: C is set.
    assert!(c_bit(&lab)?, "A's BFD packets have C = 0");

    // `wgd run` goes; its BFD process stays. Every condition below also
    // samples B's BFD session, which must be Up each time.
    let mut samples = 0u32;
    let mut not_up = Vec::new();
    let mut observe = |running: &Running| {
        samples += 1;
        if !running.bfd_up() {
            not_up.push(running.describe());
        }
    };
    lab.kill_daemon()?;
    wait_for(Duration::from_secs(20), "B's BGP session down", || {
        observe(&running);
        !running.bgp_established()
    })
    .with_context(|| context(&lab))?;
    // B acts on a BFD down (or not) at once; two seconds are plenty.
    let dropped = wait_for(Duration::from_secs(2), "A's LAN gone from B", || {
        observe(&running);
        !running.has_lan(&lab)
    })
    .is_ok();
    assert!(!dropped, "A's LAN dropped at B\n{}", context(&lab));

    // `wgd run` back: it adopts the BFD session; BGP and the route.
    lab.start_daemon()?;
    wait_for(Duration::from_secs(60), "the session back", || {
        observe(&running);
        established(&lab) && running.bgp_established()
    })
    .with_context(|| context(&lab))?;
    wait_for(Duration::from_secs(20), "A's LAN at B again", || {
        observe(&running);
        running.has_lan(&lab)
    })
    .with_context(|| context(&lab))?;
    assert!(
        not_up.is_empty(),
        "B's BFD session left Up in {} of {samples} samples:\n{}",
        not_up.len(),
        not_up.join("\n---\n")
    );
    let since_after = running.bfd_since().unwrap_or_default();
    assert!(
        same_since(&since, &since_after),
        "B's BFD session changed state: since {since}, then {since_after}\n{}",
        context(&lab)
    );
    let after = wgd_session(&lab).context("wgd's BFD session after the restart")?;
    for field in [
        "state",
        "local_discriminator",
        "remote_discriminator",
        "state_changes",
    ] {
        assert_eq!(
            after[field], before[field],
            "{field}: {before} then {after}"
        );
    }
    eprintln!("B's BFD session Up in all {samples} samples across the restart");
    Ok(())
}

#[test]
fn since_readings_a_millisecond_apart_are_the_same_instant() {
    assert!(same_since("22:42:52.992", "22:42:52.991"));
    assert!(!same_since("22:42:52.992", "22:43:02.100"));
    assert!(same_since("1700000000", "1700000001"));
    assert!(!same_since("1700000000", "1700000009"));
    assert!(!same_since("22:42:52.992", "2026-12-07"));
}
