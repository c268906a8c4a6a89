//! An overlay community's import policy against BIRD 2: BIRD (AS
//! 4242420002) announces IPv4 and IPv6 prefixes in and out of the
//! community's space and length bounds (`172.20.0.0/14` ge 21 le 29,
//! `fd00::/8` ge 44 le 64), with large and extended communities and paths
//! of several lengths and origins; wgd's rules admit exactly the expected
//! ones into its kernel. Then BIRD announces more than the neighbor's
//! `prefix_limit` with `prefix_limit_action = "block"`: the new prefixes
//! are not taken, counted, and the session stays up; once BIRD withdraws
//! some, a new prefix is taken again. The other way, wgd's export policy
//! puts large and standard communities on the LAN it originates, and BIRD
//! reads them.

use std::collections::BTreeSet;
use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{LOCAL_LAN, add_local_lan, api, established, summary};
use wgd_tests::bird::Bird;
use wgd_tests::bridge::BridgeLab;
use wgd_tests::scrape_metrics;

/// A's `[bgp]`: the overlay's import policy, and a prefix limit of
/// [`LIMIT`] that blocks.
fn speaker_config() -> String {
    format!(
        r#"
[bgp]
asn = 4242420001
hold_time = 9
networks = ["{LOCAL_LAN}"]

[[bgp.neighbor]]
address = "{b}"
remote_as = 4242420002
prefix_limit = {LIMIT}
prefix_limit_action = "block"

[bgp.neighbor.import]
default = "deny"

[[bgp.neighbor.import.rules]]
action = "deny"
match.large_community = "4242420002:666:0"

[[bgp.neighbor.import.rules]]
action = "deny"
match.extended_community = "ro:4242420002:9"

[[bgp.neighbor.import.rules]]
action = "deny"
match.origin_as = 4242420066

[[bgp.neighbor.import.rules]]
action = "permit"
match.neighbor_as = 4242420002
match.as_path_length = {{ le = 10 }}
match.prefix_list = [
  {{ prefix = "172.20.0.0/14", ge = 21, le = 29 }},
  {{ prefix = "fd00::/8", ge = 44, le = 64 }},
]
set.delete_communities = ["4242420002:1:*"]
set.add_large_communities = ["4242420001:1:1"]

[[bgp.neighbor.export.rules]]
action = "permit"
match.prefix_list = [{{ prefix = "{LOCAL_LAN}" }}]
set.add_communities = ["64511:7"]
set.add_large_communities = ["4242420001:2:3", "4242420001:4:5"]
"#,
        b = BridgeLab::TUNNEL_B,
    )
}

/// What BIRD announces at first: every prefix counts against the limit,
/// the denied ones too.
const LIMIT: usize = 13;

/// IPv4 prefixes BIRD announces at first, and whether wgd takes each.
const IPV4: &[(&str, bool)] = &[
    // Plain, in the bounds (BIRD's export filter tags it).
    ("172.20.1.0/24", true),
    // Too short, too long, outside the space.
    ("172.20.0.0/14", false),
    ("172.21.0.0/30", false),
    ("10.99.0.0/24", false),
    // Large community 4242420002:666:0.
    ("172.20.2.0/24", false),
    // AS path of 12.
    ("172.20.3.0/24", false),
    // AS path of 4.
    ("172.20.4.0/24", true),
    // Originated by AS 4242420066.
    ("172.20.5.0/24", false),
    // Route origin ro:4242420002:9.
    ("172.20.8.0/24", false),
];

const IPV6: &[(&str, bool)] = &[
    ("fd42:1::/48", true),
    // Too short, too long, outside the space.
    ("fd42:2::/40", false),
    ("fd42:3:0:1::/80", false),
    ("2001:db8:1::/48", false),
];

/// Past the limit: in the bounds, but blocked.
const OVER_LIMIT: &[&str] = &["172.20.6.0/24", "fd42:6::/48"];
/// Withdrawn to make room.
const OUT_OF_BOUNDS: &[&str] = &["10.99.0.0/24", "2001:db8:1::/48"];
/// Announced once there is room.
const WITH_ROOM: &str = "172.20.7.0/24";

/// B's bird.conf: AS 4242420002, `prefixes` as static routes, exported to
/// A through a filter that gives some of them communities and longer
/// paths (BIRD prepends its own AS after the filter). The filter is the
/// same whatever the prefixes, so that a reconfiguration only adds and
/// withdraws routes.
fn bird_config(prefixes: &[&str]) -> String {
    let routes = |v6: bool| {
        prefixes
            .iter()
            .filter(|prefix| prefix.contains(':') == v6)
            .map(|prefix| format!("  route {prefix} unreachable;\n"))
            .collect::<String>()
    };
    let prepend = |asn: u32, times: usize| format!("bgp_path.prepend({asn}); ").repeat(times);
    format!(
        "router id {b};\n\
         protocol device {{\n}}\n\
         protocol static routes4 {{\n  ipv4;\n{v4}}}\n\
         protocol static routes6 {{\n  ipv6;\n{v6}}}\n\
         filter to_wgd {{\n\
         \x20 if net = 172.20.1.0/24 then {{ bgp_large_community.add((4242420002, 1, 1)); bgp_ext_community.add((rt, 4242420002, 7)); }}\n\
         \x20 if net = 172.20.2.0/24 then bgp_large_community.add((4242420002, 666, 0));\n\
         \x20 if net = 172.20.3.0/24 then {{ {long} }}\n\
         \x20 if net = 172.20.4.0/24 then {{ {short} }}\n\
         \x20 if net = 172.20.5.0/24 then {{ {bogus} }}\n\
         \x20 if net = 172.20.8.0/24 then bgp_ext_community.add((ro, 4242420002, 9));\n\
         \x20 accept;\n\
         }}\n\
         protocol bgp site_a {{\n  local {b} as 4242420002;\n  neighbor {a} as 4242420001;\n\
         \x20 hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 2;\n\
         \x20 error wait time 1, 5;\n\
         \x20 ipv4 {{ import all; export filter to_wgd; }};\n\
         \x20 ipv6 {{ import none; export filter to_wgd; next hop address {b6}; }};\n}}\n",
        b = BridgeLab::TUNNEL_B,
        a = BridgeLab::TUNNEL_A,
        b6 = BridgeLab::TUNNEL_B6,
        v4 = routes(false),
        v6 = routes(true),
        long = prepend(4242420003, 11),
        short = prepend(4242420003, 3),
        bogus = prepend(4242420066, 1),
    )
}

/// The prefixes of wgd's routes in A's kernel (`ip route` and `ip -6
/// route`, protocol 200).
fn kernel_prefixes(lab: &BridgeLab) -> BTreeSet<String> {
    lab.kernel_routes()
        .unwrap_or_default()
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn neighbor(lab: &BridgeLab) -> serde_json::Value {
    summary(&lab.wgd, &lab.a, api(lab))["neighbors"][0].clone()
}

/// The path `wgd bgp routes --json` lists for `prefix`.
fn path(lab: &BridgeLab, prefix: &str) -> serde_json::Value {
    lab.wgd
        .run(
            &lab.a,
            &[
                "bgp",
                "routes",
                "--json",
                "--prefix",
                prefix,
                "--api",
                api(lab),
            ],
        )
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|paths| paths[0].clone())
        .unwrap_or_default()
}

#[test]
fn the_overlay_policy_admits_exactly_its_prefixes_and_blocks_past_the_limit() -> anyhow::Result<()>
{
    let lab = BridgeLab::new(&speaker_config())?;
    add_local_lan(&lab)?;
    let first: Vec<&str> = IPV4.iter().chain(IPV6).map(|(prefix, _)| *prefix).collect();
    assert_eq!(first.len(), LIMIT);
    let bird = Bird::start(&lab.b, &bird_config(&first))?;
    let context = |error: wgd_labs::Error| {
        let routes = lab.kernel_routes().unwrap_or_default().join("\n");
        anyhow::anyhow!(
            "{error}\nBIRD:\n{}\nbird log:\n{}\nA's kernel (proto 200):\n{routes}\nsummary: {}\nwgd:\n{}",
            bird.protocols(),
            bird.log(),
            neighbor(&lab),
            lab.log()
        )
    };
    let taken: BTreeSet<String> = IPV4
        .iter()
        .chain(IPV6)
        .filter(|(_, taken)| *taken)
        .map(|(prefix, _)| (*prefix).to_owned())
        .collect();

    // Every prefix received (the denied ones too), and exactly the
    // admitted ones in the kernel.
    wait_for(
        Duration::from_secs(30),
        "BIRD's prefixes received, the admitted ones in A's kernel",
        || neighbor(&lab)["prefixes_received"] == LIMIT && kernel_prefixes(&lab) == taken,
    )
    .map_err(context)?;
    // The large and extended communities came through, as received.
    let tagged = path(&lab, "172.20.1.0/24");
    assert_eq!(
        tagged["large_communities"],
        serde_json::json!(["4242420002:1:1"]),
        "{tagged}"
    );
    assert_eq!(
        tagged["extended_communities"],
        serde_json::json!(["rt:4242420002:7"]),
        "{tagged}"
    );
    assert_eq!(tagged["best"], true, "{tagged}");
    let denied = path(&lab, "172.20.2.0/24");
    assert_eq!(
        denied["large_communities"],
        serde_json::json!(["4242420002:666:0"]),
        "{denied}"
    );
    assert_eq!(denied["best"], false, "{denied}");
    assert_eq!(
        path(&lab, "172.20.3.0/24")["as_path"]
            .as_str()
            .map(|path| path.split_whitespace().count()),
        Some(12)
    );

    // wgd's export policy marked its LAN; BIRD decoded the marks.
    let lan_at_bird = || {
        bird.birdc(&["show", "route", "for", LOCAL_LAN, "all"])
            .unwrap_or_default()
    };
    wait_for(Duration::from_secs(15), "A's LAN at BIRD, marked", || {
        let route = lan_at_bird();
        route.contains("(4242420001, 2, 3) (4242420001, 4, 5)") && route.contains("(64511,7)")
    })
    .map_err(|error| anyhow::anyhow!("{error}\nBIRD's route:\n{}", lan_at_bird()))?;

    // Past the limit: the new prefixes are not taken, the session stays.
    let mut more = first.clone();
    more.extend_from_slice(OVER_LIMIT);
    bird.reconfigure(&bird_config(&more))?;
    wait_for(
        Duration::from_secs(15),
        "the prefixes over the limit blocked",
        || neighbor(&lab)["prefixes_blocked"] == OVER_LIMIT.len(),
    )
    .map_err(context)?;
    let status = neighbor(&lab);
    assert_eq!(status["state"], "established", "{status}");
    assert_eq!(status["resets"], 0, "{status}");
    assert_eq!(status["prefixes_received"], LIMIT, "{status}");
    assert_eq!(kernel_prefixes(&lab), taken);
    let metrics = scrape_metrics(&lab.a, BridgeLab::METRICS);
    let counter = format!(
        "wgd_bgp_prefixes_blocked_total{{neighbor=\"{}\"}} {}",
        BridgeLab::TUNNEL_B,
        OVER_LIMIT.len()
    );
    assert!(metrics.contains(&counter), "no {counter} in:\n{metrics}");
    let text = lab
        .wgd
        .run(&lab.a, &["bgp", "summary", "--api", api(&lab)])?;
    assert!(
        text.contains("prefix limit reached: 2 announcements of new prefixes not taken"),
        "{text}"
    );
    assert_eq!(
        lab.log().matches("prefix limit reached").count(),
        1,
        "logged once:\n{}",
        lab.log()
    );

    // Room again: two prefixes withdrawn, then a new one is taken.
    let fewer: Vec<&str> = more
        .iter()
        .copied()
        .filter(|prefix| !OUT_OF_BOUNDS.contains(prefix))
        .collect();
    bird.reconfigure(&bird_config(&fewer))?;
    wait_for(Duration::from_secs(15), "the withdrawals", || {
        neighbor(&lab)["prefixes_received"] == LIMIT - OUT_OF_BOUNDS.len()
    })
    .map_err(context)?;
    let mut room = fewer.clone();
    room.push(WITH_ROOM);
    bird.reconfigure(&bird_config(&room))?;
    let mut with_room = taken.clone();
    with_room.insert(WITH_ROOM.to_owned());
    wait_for(
        Duration::from_secs(15),
        "the new prefix in A's kernel",
        || kernel_prefixes(&lab) == with_room,
    )
    .map_err(context)?;
    assert!(established(&lab), "{}", neighbor(&lab));
    assert_eq!(neighbor(&lab)["resets"], 0);
    Ok(())
}
