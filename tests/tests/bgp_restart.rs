//! wgd itself restarting (`kill -9` of `wgd run`) with BGP sessions up:
//! the kernel keeps the learned routes (the bridge adopts them at start),
//! FRR keeps wgd's (it is graceful-restart helper for wgd), and when the
//! new daemon's session is back, everything is re-claimed. Pings cross the
//! whole time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{LOCAL_LAN_HOST, established};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

#[test]
fn a_killed_wgd_keeps_bgp_traffic_flowing_while_it_restarts() -> anyhow::Result<()> {
    let speaker = format!(
        "startup_hold = 60\n\n[bgp]\nasn = 65001\nnetworks = [\"192.168.10.0/24\"]\nhold_time = 9\nrestart_time = 60\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = 65002\n",
        BridgeLab::TUNNEL_B
    );
    let mut lab = BridgeLab::new(&speaker)?;
    lab.a.add_address("lo", &format!("{LOCAL_LAN_HOST}/24"))?;
    let frr = Frr::start(
        &lab.b,
        &format!(
            "frr defaults traditional\nhostname site-b\n\
             router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n\
             timers bgp 3 9\n neighbor {a} remote-as 65001\n\
             address-family ipv4 unicast\n  network {lan}\n exit-address-family\n",
            b = BridgeLab::TUNNEL_B,
            a = BridgeLab::TUNNEL_A,
            lan = BridgeLab::FAR_LAN,
        ),
    )?;
    let context = |error: wgd_labs::Error, lab: &BridgeLab| {
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    };
    wait_for(Duration::from_secs(30), "the session with FRR", || {
        established(&lab)
    })
    .map_err(|error| context(error, &lab))?;
    let b_has_lan = |lab: &BridgeLab| {
        lab.b
            .check(&["ip", "route", "show", "192.168.10.0/24"])
            .is_ok_and(|route| route.contains("proto bgp"))
    };
    wait_for(Duration::from_secs(20), "routes in both kernels", || {
        b_has_lan(&lab)
            && lab.kernel_routes().is_ok_and(|routes| {
                routes
                    .iter()
                    .any(|r| r.starts_with(&format!("{} ", BridgeLab::FAR_LAN)))
            })
    })
    .map_err(|error| context(error, &lab))?;

    let sampling = Arc::new(AtomicBool::new(true));
    let (sent, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (sampling, sent, lost) = (sampling.clone(), sent.clone(), lost.clone());
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
                sent.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    lost.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    lab.kill_daemon()?;
    // FRR sees the session go and keeps wgd's routes as a helper.
    let frr_state = || {
        frr.vtysh(&[&format!("show bgp neighbors {} json", BridgeLab::TUNNEL_A)])
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| {
                json[BridgeLab::TUNNEL_A]["bgpState"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    wait_for(Duration::from_secs(15), "FRR to see the session go", || {
        let state = frr_state();
        !state.is_empty() && state != "Established"
    })?;
    let before = sent.load(Ordering::SeqCst);
    wait_for(
        Duration::from_secs(10),
        "a few pings while wgd is down",
        || sent.load(Ordering::SeqCst) >= before + 4,
    )?;
    assert!(b_has_lan(&lab), "FRR dropped wgd's routes at once");
    lab.start_daemon()?;
    wait_for(Duration::from_secs(30), "the session back", || {
        established(&lab)
    })
    .map_err(|error| context(error, &lab))?;
    wait_for(
        Duration::from_secs(20),
        "the adopted route re-claimed by BGP",
        || {
            lab.wgd
                .run(
                    &lab.a,
                    &["routes", "--json", "--prefix", BridgeLab::FAR_LAN],
                )
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|routes| {
                    routes[0]["owner"] == format!("bgp:{}", BridgeLab::TUNNEL_B)
                        && routes[0]["state"] == "installed"
                })
        },
    )
    .map_err(|error| context(error, &lab))?;
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("the sampler ran");
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "pings were lost while wgd restarted"
    );
    assert!(b_has_lan(&lab));
    Ok(())
}
