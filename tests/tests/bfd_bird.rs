//! BFD against BIRD 2's `protocol bfd` (Debian's `bird2`), over a wgd
//! tunnel with wireguard-go: `bfd = true` on wgd's neighbor and `bfd on`
//! in BIRD's BGP protocol bring a BFD session up beside the BGP session;
//! when the underlay is cut, the BGP session goes with BFD's detection
//! time, long before its hold time, and B's route leaves A's kernel at
//! once although graceful restart was negotiated; when the underlay is
//! back, so are both sessions and the route. Once over IPv4, once over
//! IPv6 (the tunnel's fd00:255::/127).

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{TUNNEL_A6, api, established, has_route, speaker_config, summary};
use wgd_tests::bird::Bird;
use wgd_tests::bridge::BridgeLab;

/// The session's family: addresses of A and B on the tunnel, B's LAN.
struct Family {
    a: &'static str,
    b: &'static str,
    lan: &'static str,
    channel: &'static str,
}

const IPV4: Family = Family {
    a: BridgeLab::TUNNEL_A,
    b: BridgeLab::TUNNEL_B,
    lan: BridgeLab::FAR_LAN,
    channel: "ipv4",
};

const IPV6: Family = Family {
    a: TUNNEL_A6,
    b: BridgeLab::TUNNEL_B6,
    lan: BridgeLab::FAR_LAN6,
    channel: "ipv6",
};

/// B's bird.conf: AS 65002, its LAN as a static route to announce, A as
/// neighbor on the tunnel with BFD at 300 ms x 3 (FRR's defaults, and
/// wgd's), graceful restart, hold time 9 s.
fn bird_config(family: &Family) -> String {
    format!(
        "router id {id};\n\
         protocol device {{\n}}\n\
         protocol bfd {{\n  interface \"*\" {{\n    min rx interval 300 ms;\n    min tx interval 300 ms;\n    multiplier 3;\n  }};\n}}\n\
         protocol static lan {{\n  {channel};\n  route {lan} unreachable;\n}}\n\
         protocol bgp site_a {{\n  local {b} as 65002;\n  neighbor {a} as 65001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 error wait time 1, 5;\n  graceful restart on;\n  bfd on;\n\
         \x20 {channel} {{ import all; export all; }};\n}}\n",
        id = BridgeLab::TUNNEL_B,
        b = family.b,
        a = family.a,
        lan = family.lan,
        channel = family.channel,
    )
}

/// wgd's side: the speaker with one neighbor, B on the tunnel, with BFD.
fn wgd_config(family: &Family) -> String {
    speaker_config().replace(BridgeLab::TUNNEL_B, family.b) + "bfd = true\n"
}

/// Whether BIRD's BFD session with A is up.
fn bird_bfd_up(bird: &Bird, family: &Family) -> bool {
    bird.birdc(&["show", "bfd", "sessions"]).is_ok_and(|text| {
        text.lines()
            .any(|line| line.starts_with(&format!("{} ", family.a)) && line.contains(" Up "))
    })
}

#[test]
fn a_cut_underlay_takes_the_session_and_its_route_down_with_bfd() -> anyhow::Result<()> {
    cut_and_mend(&IPV4)
}

#[test]
fn the_same_over_ipv6() -> anyhow::Result<()> {
    cut_and_mend(&IPV6)
}

fn cut_and_mend(family: &Family) -> anyhow::Result<()> {
    // Graceful restart on (the default), restart time 30 s, hold time 9 s:
    // without BFD, a cut would keep B's route for 9 + 30 s.
    let lab = BridgeLab::new(&wgd_config(family))?;
    let bird = Bird::start(&lab.b, &bird_config(family))?;
    let context = |error: wgd_labs::Error| {
        let bfd = bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default();
        anyhow::anyhow!(
            "{error}\nBIRD:\n{bfd}\n{}\n{}\nwgd:\n{}",
            bird.protocols(),
            bird.log(),
            lab.log()
        )
    };

    wait_for(Duration::from_secs(30), "the BGP session with BIRD", || {
        established(&lab)
    })
    .map_err(context)?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, family.lan)
    })
    .map_err(context)?;
    wait_for(
        Duration::from_secs(15),
        "BIRD's BFD session with A up",
        || bird_bfd_up(&bird, family),
    )
    .map_err(context)?;

    // The cut: BFD notices within 900 ms; the hold timer would take 9 s
    // and graceful restart 30 s more. 5 s leaves room for a busy machine.
    lab.a
        .check(&["ip", "link", "set", "dev", &lab.underlay_a, "down"])?;
    wait_for(
        Duration::from_secs(5),
        "B's prefix gone from A's kernel, before the hold time",
        || !has_route(&lab, family.lan),
    )
    .map_err(context)?;
    let neighbor = &summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0];
    assert_ne!(neighbor["state"], "established", "{neighbor}");
    let last_error = neighbor["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("6/10") || last_error.to_lowercase().contains("bfd"),
        "not reset by BFD: {neighbor}"
    );
    wait_for(Duration::from_secs(5), "BIRD's BFD session down", || {
        !bird_bfd_up(&bird, family)
    })
    .map_err(context)?;

    // Mended: BFD, then BGP, then the route come back.
    lab.a
        .check(&["ip", "link", "set", "dev", &lab.underlay_a, "up"])?;
    wait_for(
        Duration::from_secs(15),
        "BIRD's BFD session up again",
        || bird_bfd_up(&bird, family),
    )
    .map_err(context)?;
    wait_for(Duration::from_secs(60), "the BGP session back", || {
        established(&lab)
    })
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "B's prefix back in A's kernel",
        || has_route(&lab, family.lan),
    )
    .map_err(context)?;
    Ok(())
}
