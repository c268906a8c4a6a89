//! wgd restarting with BFD on its BGP session: what its peers do with the
//! BFD session that goes down with it.
//!
//! wgd's BFD runs inside `wgd run` and shares fate with its BGP speaker:
//! its packets say so (the control plane independent bit, C, is clear),
//! and when wgd stops they stop, so the peer's BFD session goes down after
//! its detection time, `kill -9` or not. Sending C = 1 would be a false
//! claim. What the peer does with that BFD down decides whether wgd's
//! routes flap:
//!
//! - FRR 8.4 keeps them (graceful restart): the process's TCP connection
//!   closes when it dies, so FRR's BGP session is already down, in
//!   graceful restart helper mode, when BFD's detection time expires, and
//!   the BFD down finds no session to reset. With `neighbor ... bfd
//!   check-control-plane-failure` (FRR reads the C bit) the same.
//! - BIRD 2.0 with `bfd on` drops them: its BGP protocol stays up during
//!   a neighbor's graceful restart, and a BFD down stops it hard. With
//!   `bfd graceful` it keeps them (a BFD down is a graceful restart).
//!
//! Each is checked with wgd killed (`kill -9`) and started again.

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
            Running::Frr(frr) => frr_bfd_status(frr).as_deref() == Some("up"),
            Running::Bird(bird) => bird.birdc(&["show", "bfd", "sessions"]).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.starts_with(&format!("{} ", BridgeLab::TUNNEL_A)) && line.contains(" Up ")
                })
            }),
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

/// FRR's BFD session with A: its status (`up`, `down`, ...).
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
fn frr_keeps_wgd_s_routes_across_its_restart() -> anyhow::Result<()> {
    restart(Peer::Frr { check: false }, true)
}

#[test]
fn frr_reading_the_c_bit_keeps_them_too() -> anyhow::Result<()> {
    restart(Peer::Frr { check: true }, true)
}

#[test]
fn bird_with_bfd_graceful_keeps_them() -> anyhow::Result<()> {
    restart(Peer::Bird { graceful: true }, true)
}

#[test]
fn bird_with_bfd_on_drops_them_when_bfd_goes_down() -> anyhow::Result<()> {
    restart(Peer::Bird { graceful: false }, false)
}

fn restart(peer: Peer, keeps: bool) -> anyhow::Result<()> {
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

    // wgd goes: its BFD packets stop, and B's session goes down.
    lab.kill_daemon()?;
    wait_for(Duration::from_secs(10), "B's BFD session down", || {
        !running.bfd_up()
    })
    .with_context(|| context(&lab))?;
    // B acts on the BFD down (or not) at once; two seconds are plenty.
    let kept = wait_for(Duration::from_secs(2), "A's LAN gone from B", || {
        !running.has_lan(&lab)
    })
    .is_err();
    assert_eq!(kept, keeps, "A's LAN kept at B: {kept}\n{}", context(&lab));

    // wgd back: BFD, BGP and the route.
    lab.start_daemon()?;
    wait_for(Duration::from_secs(60), "the session back", || {
        established(&lab)
    })
    .with_context(|| context(&lab))?;
    wait_for(Duration::from_secs(20), "B's BFD session up again", || {
        running.bfd_up()
    })
    .with_context(|| context(&lab))?;
    wait_for(Duration::from_secs(20), "A's LAN at B again", || {
        running.has_lan(&lab)
    })
    .with_context(|| context(&lab))?;
    Ok(())
}
