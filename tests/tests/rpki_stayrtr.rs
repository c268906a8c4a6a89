//! Origin validation against a real RTR cache: `stayrtr` (Debian's
//! package) serves a JSON file of ROAs to site A's speaker, whose import
//! policy denies `match.rpki = "invalid"`; BIRD 2 at site B announces four
//! prefixes from AS 65002:
//!
//! - 192.168.101.0/24, valid (a ROA for it, AS 65002);
//! - 192.168.102.0/24, invalid: its ROA names AS 65099;
//! - 192.168.103.128/25, invalid: its ROA is 192.168.103.0/24 with max
//!   length 24 (too specific);
//! - 192.168.104.0/24, not found (no ROA).
//!
//! Only the valid and the not-found reach A's kernel. A ROA for
//! 192.168.102.0/24 from AS 65002 added to the file (stayrtr reloads it
//! every second and notifies the client) brings that route in, with the
//! session untouched. stayrtr killed, and its expire interval (10 s, as
//! it tells the client) gone by, every route is not found and in the
//! kernel.

use std::time::{Duration, Instant};

use wgd_labs::{Daemon, wait_for};
use wgd_tests::bgp::{api, established, has_route, speaker_config, summary};
use wgd_tests::bird::Bird;
use wgd_tests::bridge::BridgeLab;
use wgd_tests::scrape_metrics;

const VALID: &str = "192.168.101.0/24";
const WRONG_ORIGIN: &str = "192.168.102.0/24";
const TOO_SPECIFIC: &str = "192.168.103.128/25";
const NOT_FOUND: &str = "192.168.104.0/24";
const ALL: [&str; 4] = [VALID, WRONG_ORIGIN, TOO_SPECIFIC, NOT_FOUND];
/// stayrtr's port, on A's loopback (each namespace has its own).
const RTR: &str = "127.0.0.1:8282";
/// The expire interval stayrtr gives (RFC 8210 6; short for the test).
const EXPIRE: Duration = Duration::from_secs(10);

fn bird_config() -> String {
    let routes: String = ALL
        .iter()
        .map(|prefix| format!("  route {prefix} unreachable;\n"))
        .collect();
    format!(
        "router id {b};\n\
         protocol device {{\n}}\n\
         protocol static announced {{\n  ipv4;\n{routes}}}\n\
         protocol bgp site_a {{\n  local {b} as 65002;\n  neighbor {a} as 65001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 error wait time 1, 5;\n\
         \x20 ipv4 {{ import none; export all; }};\n}}\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
    )
}

/// The ROAs as stayrtr reads them (rpki-client's JSON).
fn roas(extra: &[(&str, u8, u32)]) -> String {
    let mut roas = vec![
        (VALID, 24, 65002),
        (WRONG_ORIGIN, 24, 65099),
        ("192.168.103.0/24", 24, 65002),
    ];
    roas.extend_from_slice(extra);
    let roas: Vec<serde_json::Value> = roas
        .iter()
        .map(|(prefix, max_length, asn)| {
            serde_json::json!({ "prefix": prefix, "maxLength": max_length, "asn": format!("AS{asn}") })
        })
        .collect();
    serde_json::json!({ "roas": roas }).to_string()
}

/// `wgd bgp routes --json`'s validation state of the path to `prefix`.
fn state(lab: &BridgeLab, prefix: &str) -> Option<String> {
    let text = lab
        .wgd
        .run(&lab.a, &["bgp", "routes", "--json", "--api", api(lab)])
        .ok()?;
    let paths: serde_json::Value = serde_json::from_str(&text).ok()?;
    paths
        .as_array()?
        .iter()
        .find(|path| path["prefix"] == prefix)
        .and_then(|path| path["rpki"].as_str().map(str::to_owned))
}

/// `wgd rpki --json`.
fn rpki(lab: &BridgeLab) -> serde_json::Value {
    lab.wgd
        .run(&lab.a, &["rpki", "--json", "--api", api(lab)])
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn in_kernel(lab: &BridgeLab) -> Vec<&'static str> {
    ALL.into_iter()
        .filter(|prefix| has_route(lab, prefix))
        .collect()
}

#[test]
fn invalid_routes_stay_out_until_a_roa_comes_and_all_are_not_found_once_the_cache_expires()
-> anyhow::Result<()> {
    let config = format!(
        "{}[[bgp.neighbor.import.rules]]\naction = \"deny\"\nmatch.rpki = \"invalid\"\n\n\
         [[rpki.server]]\naddress = \"{RTR}\"\npreference = 1\n",
        speaker_config()
    );
    // stayrtr's file, in a directory of its own removed with it.
    let roas_path = tempfile::Builder::new().prefix("wgd-roas-").tempdir()?;
    let file = roas_path.path().join("roas.json");
    std::fs::write(&file, roas(&[]))?;
    let lab = BridgeLab::new(&config)?;
    let file_text = file.to_str().unwrap_or_default().to_owned();
    let expire = EXPIRE.as_secs().to_string();
    let stayrtr_argv = [
        "stayrtr",
        "-cache",
        &file_text,
        "-checktime=false",
        "-refresh",
        "1",
        "-bind",
        RTR,
        "-metrics.addr",
        "127.0.0.1:0",
        "-rtr.refresh",
        "3600",
        "-rtr.retry",
        "5",
        "-rtr.expire",
        &expire,
    ];
    let mut stayrtr: Option<Daemon> = Some(lab.a.spawn(&stayrtr_argv)?);
    let bird = Bird::start(&lab.b, &bird_config())?;
    let context = |error: wgd_labs::Error, stayrtr: &Option<Daemon>| {
        anyhow::anyhow!(
            "{error}\nwgd rpki: {}\nkernel: {:?}\nBIRD:\n{}\nstayrtr:\n{}\nwgd:\n{}",
            rpki(&lab),
            lab.kernel_routes().unwrap_or_default(),
            bird.protocols(),
            stayrtr.as_ref().map(Daemon::log).unwrap_or_default(),
            lab.log()
        )
    };

    wait_for(Duration::from_secs(30), "the session with BIRD", || {
        established(&lab)
    })
    .map_err(|error| context(error, &stayrtr))?;
    wait_for(Duration::from_secs(15), "VRPs from stayrtr", || {
        let status = rpki(&lab);
        status["vrps"]["ipv4"] == 3 && status["servers"][0]["state"] == "up"
    })
    .map_err(|error| context(error, &stayrtr))?;
    wait_for(
        Duration::from_secs(15),
        "the valid and the not-found routes in the kernel, the invalid ones not",
        || {
            in_kernel(&lab) == [VALID, NOT_FOUND]
                && state(&lab, WRONG_ORIGIN).as_deref() == Some("invalid")
        },
    )
    .map_err(|error| context(error, &stayrtr))?;
    let expected = [
        (VALID, "valid"),
        (WRONG_ORIGIN, "invalid"),
        (TOO_SPECIFIC, "invalid"),
        (NOT_FOUND, "not-found"),
    ];
    for (prefix, expected) in expected {
        assert_eq!(state(&lab, prefix).as_deref(), Some(expected), "{prefix}");
    }
    let status = rpki(&lab);
    assert_eq!(status["servers"][0]["source"], true, "{status}");
    assert_eq!(status["servers"][0]["version"], 1, "{status}");
    assert_eq!(status["servers"][0]["expire"], EXPIRE.as_secs(), "{status}");
    // `wgd rpki validate` asks the same VRPs.
    let answer = lab.wgd.run(
        &lab.a,
        &[
            "rpki",
            "validate",
            TOO_SPECIFIC,
            "AS65002",
            "--json",
            "--api",
            api(&lab),
        ],
    )?;
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    assert_eq!(answer["state"], "invalid", "{answer}");
    assert_eq!(
        answer["covering"][0]["prefix"], "192.168.103.0/24",
        "{answer}"
    );
    // The metrics: VRPs per family, the cache, paths per state (counted
    // every 5 s).
    wait_for(Duration::from_secs(10), "the RPKI metrics", || {
        let metrics = scrape_metrics(&lab.a, BridgeLab::METRICS);
        metrics.contains("wgd_rpki_vrps{family=\"ipv4\"} 3")
            && metrics.contains("wgd_rpki_server_up{server=\"127.0.0.1:8282\"} 1")
            && metrics.contains("wgd_bgp_routes_validation{state=\"valid\"} 1")
            && metrics.contains("wgd_bgp_routes_validation{state=\"invalid\"} 2")
            && metrics.contains("wgd_bgp_routes_validation{state=\"not-found\"} 1")
    })
    .map_err(|error| {
        let metrics = scrape_metrics(&lab.a, BridgeLab::METRICS);
        context(error, &stayrtr).context(metrics)
    })?;
    let session_before = summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0].clone();
    assert_eq!(session_before["resets"], 0, "{session_before}");

    // A ROA for the wrong-origin prefix from its real origin: stayrtr
    // reloads the file (every second), notifies, and the route comes in.
    let serial_before = rpki(&lab)["servers"][0]["serial"].clone();
    std::fs::write(&file, roas(&[(WRONG_ORIGIN, 24, 65002)]))?;
    let added = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the route the new ROA makes valid in the kernel",
        || in_kernel(&lab) == [VALID, WRONG_ORIGIN, NOT_FOUND],
    )
    .map_err(|error| context(error, &stayrtr))?;
    let took = added.elapsed();
    assert_eq!(state(&lab, WRONG_ORIGIN).as_deref(), Some("valid"));
    let status = rpki(&lab);
    assert_eq!(status["vrps"]["ipv4"], 4, "{status}");
    assert_ne!(status["servers"][0]["serial"], serial_before, "{status}");
    // The session was not reset (nor refreshed: BIRD's side is the same
    // session, up all along).
    let session = summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0].clone();
    assert_eq!(session["state"], "established", "{session}");
    assert_eq!(session["resets"], 0, "{session}");
    assert!(
        session["state_seconds"].as_u64() >= session_before["state_seconds"].as_u64(),
        "{session_before} then {session}"
    );
    eprintln!("the new ROA's route was in the kernel {took:?} after the file changed");

    // stayrtr gone: the VRPs stay until the expire interval has passed
    // since the last End of Data, then every route is not found, and in.
    if let Some(mut daemon) = stayrtr.take() {
        daemon.stop()?;
    }
    wait_for(Duration::from_secs(5), "the cache seen gone", || {
        rpki(&lab)["servers"][0]["state"] != "up"
    })
    .map_err(|error| context(error, &stayrtr))?;
    let status = rpki(&lab);
    let age = status["servers"][0]["last_update_seconds"]
        .as_u64()
        .unwrap_or_default();
    assert!(age + 2 < EXPIRE.as_secs(), "{status}");
    // Kept meanwhile: the invalid route is still out.
    assert_eq!(status["vrps"]["ipv4"], 4, "{status}");
    assert!(!has_route(&lab, TOO_SPECIFIC));
    let gone = Instant::now();
    wait_for(
        EXPIRE + Duration::from_secs(15),
        "every route not found and in the kernel once the VRPs expired",
        || {
            in_kernel(&lab) == ALL
                && ALL
                    .iter()
                    .all(|prefix| state(&lab, prefix).as_deref() == Some("not-found"))
        },
    )
    .map_err(|error| context(error, &stayrtr))?;
    // Not before the expire interval, counted from the last End of Data.
    let waited = gone.elapsed();
    assert!(
        waited + Duration::from_secs(age + 2) >= EXPIRE,
        "expired {waited:?} after the cache went, {age} s after its last update"
    );
    let status = rpki(&lab);
    assert_eq!(status["vrps"]["ipv4"], 0, "{status}");
    let session = summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0].clone();
    assert_eq!(session["resets"], 0, "{session}");
    Ok(())
}
