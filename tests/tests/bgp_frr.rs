//! The built-in BGP speaker against FRR's bgpd (Debian's `frr`), over a
//! wgd tunnel with wireguard-go: the session establishes, each side
//! announces its IPv4 and IPv6 prefixes and the other installs them,
//! traffic crosses, a withdrawal propagates, and when bgpd crashes and
//! comes back with graceful restart, traffic keeps flowing throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

const LOCAL_LAN_HOST: &str = "192.168.10.1";
const LOCAL_LAN6_HOST: &str = "fd00:10::1";

/// Site A's `[bgp]`: AS 65001, its LAN, B (FRR) as neighbor on the tunnel.
fn speaker_config() -> String {
    format!(
        "\n[bgp]\nasn = 65001\nnetworks = [\"192.168.10.0/24\", \"fd00:10::/64\"]\nhold_time = 9\nrestart_time = 30\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = 65002\n",
        BridgeLab::TUNNEL_B
    )
}

fn frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname site-b\n\
         router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n\
         timers bgp 3 9\n neighbor {a} remote-as 65001\n\
         address-family ipv4 unicast\n  network {lan}\n exit-address-family\n\
         address-family ipv6 unicast\n  neighbor {a} activate\n  network {lan6}\n exit-address-family\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        lan = BridgeLab::FAR_LAN,
        lan6 = BridgeLab::FAR_LAN6,
    )
}

fn established(lab: &BridgeLab) -> bool {
    lab.wgd
        .run(
            &lab.a,
            &[
                "bgp",
                "summary",
                "--json",
                "--api",
                lab.socket.to_str().unwrap_or_default(),
            ],
        )
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|summary| summary["neighbors"][0]["state"] == "established")
}

fn has_route(lab: &BridgeLab, prefix: &str) -> bool {
    lab.kernel_routes().is_ok_and(|routes| {
        routes
            .iter()
            .any(|line| line.starts_with(&format!("{prefix} ")))
    })
}

fn pings_from(lab: &BridgeLab, source: &str, target: &str) -> bool {
    lab.a
        .run(&["ping", "-c", "1", "-W", "1", "-I", source, target])
        .is_ok_and(|output| output.status.success())
}

#[test]
fn the_speaker_exchanges_routes_with_frr_and_rides_out_its_restart() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&speaker_config())?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN_HOST}/24"))?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN6_HOST}/64"))?;
    let frr = Frr::start(&lab.b, &frr_config())?;
    let context = |error: wgd_labs::Error| {
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    };

    wait_for(Duration::from_secs(30), "the session with FRR", || {
        established(&lab)
    })
    .map_err(context)?;
    // A learned B's prefixes, both families, into its kernel.
    wait_for(
        Duration::from_secs(10),
        "B's prefixes in A's kernel",
        || has_route(&lab, BridgeLab::FAR_LAN) && has_route(&lab, BridgeLab::FAR_LAN6),
    )
    .map_err(context)?;
    let routes = lab.kernel_routes()?;
    assert!(
        routes.contains(&format!(
            "{} via {} dev {} metric 20 onlink",
            BridgeLab::FAR_LAN,
            BridgeLab::TUNNEL_B,
            lab.tunnel_a
        )),
        "{routes:#?}"
    );
    // B (FRR, through zebra) installed A's.
    wait_for(
        Duration::from_secs(10),
        "A's prefixes in B's kernel",
        || {
            let v4 = lab
                .b
                .check(&["ip", "route", "show", "192.168.10.0/24"])
                .unwrap_or_default();
            let v6 = lab
                .b
                .check(&["ip", "-6", "route", "show", "fd00:10::/64"])
                .unwrap_or_default();
            v4.contains("proto bgp") && v6.contains("proto bgp")
        },
    )
    .map_err(context)?;
    assert!(
        pings_from(&lab, LOCAL_LAN_HOST, BridgeLab::FAR_LAN_HOST),
        "no IPv4 ping LAN to LAN"
    );
    assert!(
        pings_from(&lab, LOCAL_LAN6_HOST, BridgeLab::FAR_LAN6_HOST),
        "no IPv6 ping LAN to LAN"
    );
    let routes_json = lab.wgd.run(
        &lab.a,
        &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
    )?;
    let listed: serde_json::Value = serde_json::from_str(&routes_json)?;
    assert_eq!(listed[0]["owner"], format!("bgp:{}", BridgeLab::TUNNEL_B));

    // A withdrawal at B leaves A's kernel; the announcement brings it back.
    let network = |no: &str| {
        frr.vtysh(&[
            "configure terminal",
            "router bgp 65002",
            "address-family ipv4 unicast",
            &format!("{no}network {}", BridgeLab::FAR_LAN),
        ])
    };
    network("no ")?;
    wait_for(
        Duration::from_secs(10),
        "the withdrawal in A's kernel",
        || !has_route(&lab, BridgeLab::FAR_LAN),
    )
    .map_err(context)?;
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN6),
        "the other family went too"
    );
    network("")?;
    wait_for(Duration::from_secs(10), "the re-announcement", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })
    .map_err(context)?;

    // bgpd crashes: with graceful restart, both kernels keep the routes and
    // pings keep crossing until it is back and the session re-established.
    let sampling = Arc::new(AtomicBool::new(true));
    let lost = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, lost) = (sampling.clone(), lost.clone());
        let namespace = lab.a.name().to_owned();
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                let ok = std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &namespace,
                        "ping",
                        "-c",
                        "1",
                        "-W",
                        "1",
                        "-I",
                        LOCAL_LAN_HOST,
                        BridgeLab::FAR_LAN_HOST,
                    ])
                    .output()
                    .is_ok_and(|output| output.status.success());
                if !ok {
                    lost.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    frr.kill("bgpd")?;
    wait_for(Duration::from_secs(15), "A to see the session go", || {
        !established(&lab)
    })
    .map_err(context)?;
    assert!(
        has_route(&lab, BridgeLab::FAR_LAN),
        "A dropped B's routes at once, without graceful restart"
    );
    frr.start_daemon(&lab.b, "bgpd")?;
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab)
    })
    .map_err(context)?;
    // Re-claimed after B's End-of-RIB: still there, no longer stale.
    wait_for(Duration::from_secs(15), "the routes re-claimed", || {
        lab.wgd
            .run(
                &lab.a,
                &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
            )
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|routes| routes[0]["stale"] == false && routes[0]["state"] == "installed")
    })
    .map_err(context)?;
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("the sampler ran");
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "pings were lost while bgpd restarted"
    );
    assert!(has_route(&lab, BridgeLab::FAR_LAN6));

    // A network is announced while the kernel has it: A's LAN address goes,
    // and B loses the route; it comes back with the address.
    let b_has_lan = || {
        lab.b
            .check(&["ip", "route", "show", "192.168.10.0/24"])
            .is_ok_and(|route| route.contains("proto bgp"))
    };
    lab.a.check(&[
        "ip",
        "address",
        "del",
        &format!("{LOCAL_LAN_HOST}/24"),
        "dev",
        "lo",
    ])?;
    wait_for(
        Duration::from_secs(15),
        "B to lose A's LAN once A has it no more",
        || !b_has_lan(),
    )
    .map_err(context)?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN_HOST}/24"))?;
    wait_for(
        Duration::from_secs(15),
        "B to learn A's LAN again",
        b_has_lan,
    )
    .map_err(context)?;
    Ok(())
}

#[test]
fn tcp_md5_and_ttl_security_with_frr() -> anyhow::Result<()> {
    let config = speaker_config() + "password = \"wgd-md5-key\"\nttl_security = true\n";
    let lab = BridgeLab::new(&config)?;
    let remote_as = format!(" neighbor {} remote-as 65001\n", BridgeLab::TUNNEL_A);
    let frr_config = frr_config().replace(
        &remote_as,
        &format!(
            "{remote_as} neighbor {a} password wgd-md5-key\n neighbor {a} ttl-security hops 1\n",
            a = BridgeLab::TUNNEL_A
        ),
    );
    let frr = Frr::start(&lab.b, &frr_config)?;
    wait_for(
        Duration::from_secs(30),
        "the signed session with FRR",
        || established(&lab),
    )
    .map_err(|error| {
        let bgp = frr.vtysh(&["show bgp neighbors"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    })?;
    wait_for(Duration::from_secs(10), "B's prefix in A's kernel", || {
        has_route(&lab, BridgeLab::FAR_LAN)
    })?;
    // The password is nowhere in what wgd prints.
    let summary = lab.wgd.run(
        &lab.a,
        &[
            "bgp",
            "summary",
            "--json",
            "--api",
            lab.socket.to_str().unwrap_or_default(),
        ],
    )?;
    assert!(!summary.contains("wgd-md5-key") && !lab.log().contains("wgd-md5-key"));
    Ok(())
}
