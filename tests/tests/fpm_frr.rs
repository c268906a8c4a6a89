//! FRR's zebra (Debian's FRR 8.4, `-M dplane_fpm_nl`) feeding the bridge
//! over FPM, in site A's namespace beside `wgd run`, with static routes
//! from staticd toward site B's LAN.
//!
//! How the two share the kernel: zebra always puts its selected routes in
//! its own table itself (the FPM plugin runs after its kernel dataplane,
//! and FRR 8.4 cannot turn that off), and takes any other program's route
//! in that table for a kernel route of distance 0 that beats its own: it
//! would delete its copy and then report the prefix over FPM as a kernel
//! route, hiding its own route (and its withdrawal). So the bridge has a
//! table of its own (`[bridge] table = 100`, looked up first by an `ip
//! rule`), zebra keeps main (`[fpm] table`, the default), and neither sees
//! the other's routes as competing: the bridge's copy carries the traffic,
//! zebra's is the fallback behind it. The test checks that layout, that
//! the routes reach the bridge as owner `fpm`, that `kill -9` of zebra and
//! its restart lose none of the bridge's kernel routes (sampled
//! throughout; FRR's daemons re-send theirs some seconds after zebra is
//! back, and the bridge waits for them), and that a static route
//! withdrawn in FRR leaves the bridge and the kernel.

use std::sync::Arc;

use anyhow::Context;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wgd_labs::wait_for;
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

const BRIDGE_TABLE: &str = "100";
const FAR_LAN6_ROUTE: &str = "fd00:77::/64";

/// The bridge's routes of owner `fpm`, from `wgd routes --json`.
fn fpm_routes(lab: &BridgeLab) -> Vec<serde_json::Value> {
    lab.wgd
        .run(
            &lab.a,
            &[
                "routes",
                "--json",
                "--owner",
                "fpm",
                "--api",
                lab.socket.to_str().unwrap_or_default(),
            ],
        )
        .ok()
        .and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(&text).ok())
        .unwrap_or_default()
}

fn fpm_route(lab: &BridgeLab, prefix: &str) -> Option<serde_json::Value> {
    fpm_routes(lab)
        .into_iter()
        .find(|route| route["prefix"] == prefix)
}

/// Installed, and re-claimed (not stale).
fn installed(route: &serde_json::Value) -> bool {
    route["state"] == "installed" && route["stale"] != true
}

/// The bridge's kernel routes for `prefix` (table 100, proto 200).
fn bridge_kernel(lab: &BridgeLab, prefix: &str) -> Vec<String> {
    lab.kernel_routes()
        .unwrap_or_default()
        .into_iter()
        .filter(|line| line.starts_with(&format!("{prefix} ")))
        .collect()
}

#[test]
fn frr_zebra_feeds_the_bridge_over_fpm() -> anyhow::Result<()> {
    let lab = BridgeLab::new(&format!(
        "table = {BRIDGE_TABLE}\n\n[fpm]\nlisten = \"127.0.0.1:2620\"\nhold_time = 60\n"
    ))?;
    // The bridge's table is looked up before main, where zebra's are.
    for family in ["-4", "-6"] {
        lab.a.check(&[
            "ip",
            family,
            "rule",
            "add",
            "pref",
            "1000",
            "lookup",
            BRIDGE_TABLE,
        ])?;
    }
    let zebra = Frr::start_with(
        &lab.a,
        &format!(
            "frr defaults traditional\nhostname site-a\nfpm address 127.0.0.1\n\
             ip route {lan} {b}\nipv6 route {lan6} {b6}\n",
            lan = BridgeLab::FAR_LAN,
            b = BridgeLab::TUNNEL_B,
            lan6 = FAR_LAN6_ROUTE,
            b6 = BridgeLab::TUNNEL_B6,
        ),
        &["zebra", "staticd"],
        &["dplane_fpm_nl"],
    )?;
    let context = |error: wgd_labs::Error, lab: &BridgeLab| {
        let rib = zebra
            .vtysh(&["show ip route", "show ipv6 route", "show fpm counters"])
            .unwrap_or_default();
        let kernel = lab
            .a
            .check(&["ip", "route", "show", "table", "all"])
            .unwrap_or_default();
        let routes = lab
            .wgd
            .output(
                &lab.a,
                &["routes", "--api", lab.socket.to_str().unwrap_or_default()],
            )
            .map(|output| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            })
            .unwrap_or_default();
        anyhow::anyhow!(
            "{error}\nzebra:\n{rib}\nkernel:\n{kernel}\nwgd routes:\n{routes}\nwgd:\n{}",
            lab.log()
        )
    };

    // zebra connects and sends its routes: they reach the bridge as `fpm`.
    wait_for(
        Duration::from_secs(30),
        "zebra's routes in the bridge",
        || {
            [BridgeLab::FAR_LAN, FAR_LAN6_ROUTE]
                .iter()
                .all(|prefix| fpm_route(&lab, prefix).is_some_and(|route| installed(&route)))
        },
    )
    .map_err(|error| context(error, &lab))?;
    let route = fpm_route(&lab, BridgeLab::FAR_LAN).context("the route")?;
    assert_eq!(route["owner"], "fpm");
    assert_eq!(route["distance"], 1, "a static route's distance: {route}");
    let nexthops = route["nexthops"].to_string();
    assert!(
        nexthops.contains(BridgeLab::TUNNEL_B) && nexthops.contains(&lab.tunnel_a),
        "via B's tunnel address on A's tunnel: {route}"
    );

    // The bridge's copy is in its table; zebra keeps its own in main and
    // still selects its static route (it did not take the bridge's for a
    // kernel route).
    let ours = bridge_kernel(&lab, BridgeLab::FAR_LAN);
    assert!(
        ours.len() == 1 && ours[0].contains(&format!("table {BRIDGE_TABLE}")),
        "{ours:?}"
    );
    let main = lab
        .a
        .check(&["ip", "route", "show", "table", "main", BridgeLab::FAR_LAN])?;
    assert!(
        main.contains("proto static"),
        "zebra's copy in main: {main}"
    );
    assert!(!main.contains("proto wgd"), "{main}");
    assert_eq!(
        zebra.selected(BridgeLab::FAR_LAN).as_deref(),
        Some("static")
    );
    assert_eq!(zebra.selected(FAR_LAN6_ROUTE).as_deref(), Some("static"));
    let lookup = lab
        .a
        .check(&["ip", "route", "get", BridgeLab::FAR_LAN_HOST])?;
    assert!(
        lookup.contains(&format!("table {BRIDGE_TABLE}")),
        "the bridge's copy carries the traffic: {lookup}"
    );
    assert!(lab.a.pings(BridgeLab::FAR_LAN_HOST)?, "no ping to B's LAN");
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN6_HOST)?,
        "no IPv6 ping to B's LAN"
    );

    // zebra crashes and comes back: the bridge keeps its routes through
    // the gap, and re-claims them from zebra's replay and staticd's.
    let before = lab.kernel_count()?;
    assert_eq!(before, 2, "{:?}", lab.kernel_routes()?);
    let sampling = Arc::new(AtomicBool::new(true));
    let (samples, lowest) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(before)),
    );
    let sampler = {
        let (sampling, samples, lowest) = (sampling.clone(), samples.clone(), lowest.clone());
        let namespace = lab.a.name().to_owned();
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                let mut count = 0;
                for family in ["-4", "-6"] {
                    let output = std::process::Command::new("ip")
                        .args([
                            "-n", &namespace, family, "route", "show", "table", "all", "proto",
                            "200",
                        ])
                        .output();
                    count += output.map_or(0, |output| {
                        String::from_utf8_lossy(&output.stdout).lines().count()
                    });
                }
                samples.fetch_add(1, Ordering::SeqCst);
                lowest.fetch_min(count, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let replays = |lab: &BridgeLab| lab.log().matches("zebra's replay is over").count();
    let replays_before = replays(&lab);
    zebra.kill("zebra")?;
    let killed = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the bridge to see zebra go",
        || fpm_routes(&lab).iter().all(|route| route["stale"] == true),
    )
    .map_err(|error| context(error, &lab))?;
    std::thread::sleep(Duration::from_secs(1));
    zebra.start_daemon(&lab.a, "zebra")?;
    wait_for(
        Duration::from_secs(60),
        "zebra's replay and End-of-RIB",
        || replays(&lab) > replays_before,
    )
    .map_err(|error| context(error, &lab))?;
    let restart = killed.elapsed();
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("the sampler");
    let routes = fpm_routes(&lab);
    assert_eq!(routes.len(), 2, "{routes:#?}");
    assert!(routes.iter().all(installed), "re-claimed: {routes:#?}");
    assert_eq!(
        lowest.load(Ordering::SeqCst),
        before,
        "a route of the bridge left the kernel during zebra's restart ({} samples over {restart:?})\n{}",
        samples.load(Ordering::SeqCst),
        lab.log()
    );
    assert!(samples.load(Ordering::SeqCst) > 50);
    assert_eq!(
        zebra.selected(BridgeLab::FAR_LAN).as_deref(),
        Some("static")
    );

    // The static route withdrawn in FRR leaves the bridge and the kernel.
    zebra.vtysh(&[
        "configure terminal",
        &format!("no ip route {} {}", BridgeLab::FAR_LAN, BridgeLab::TUNNEL_B),
    ])?;
    wait_for(Duration::from_secs(10), "the withdrawn route to go", || {
        fpm_route(&lab, BridgeLab::FAR_LAN).is_none()
            && bridge_kernel(&lab, BridgeLab::FAR_LAN).is_empty()
    })
    .map_err(|error| context(error, &lab))?;
    assert!(
        fpm_route(&lab, FAR_LAN6_ROUTE).is_some_and(|route| installed(&route)),
        "the other route stays"
    );
    Ok(())
}
