//! BFD on static routes' nexthops, against BIRD 2's `protocol bfd` with
//! static sessions (`neighbor ADDRESS dev "TUNNEL"`): site A runs `wgd run`
//! with two tunnels to site B, each over an underlay of its own. B's LAN
//! has a route of the config (`[[bridge.route]]`, distance 10, `bfd =
//! true`) through the first tunnel and a worse one (`wgd route add
//! --distance 30 --bfd`) through the second. When the first tunnel's
//! underlay is cut, its BFD session falls within the detection time, the
//! route through it stops resolving and the kernel's route moves to the
//! second tunnel (the peer is not dead for wgd's handshake age for another
//! 180 s: only BFD can move it); mended, the route comes back. `wgd bfd`
//! and the metrics list both sessions. A reload (SIGHUP) that changes
//! nothing leaves the session alone; deleting the `wgd route` route stops
//! its session, and a reload without the `[[bridge.route]]` withdraws the
//! route and stops the other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::{KeyPair, Wgd, scrape_metrics, underlay, write_config};

const LAN: &str = "192.168.77.0/24";
const LAN_HOST: &str = "192.168.77.1";
const METRICS: &str = "127.0.0.1:9586";

/// One of the two tunnels: A's and B's names and addresses, and A's end
/// of its underlay.
struct Path {
    tunnel_a: String,
    tunnel_b: String,
    address_a: &'static str,
    address_b: &'static str,
    underlay_a: String,
}

struct Lab {
    wgd: Wgd,
    a: Namespace,
    b: Namespace,
    socket: PathBuf,
    daemon: Daemon,
    paths: [Path; 2],
    /// A's config without its `[[bridge.route]]`, for a reload.
    config_without_route: String,
}

impl Lab {
    fn new() -> anyhow::Result<Lab> {
        let wgd = Wgd::new()?;
        let a = Namespace::new("bsa")?;
        let b = Namespace::new("bsb")?;
        b.add_address("lo", &format!("{LAN_HOST}/24"))?;
        let (keys_a, keys_b) = (KeyPair::generate()?, KeyPair::generate()?);
        let socket = a.dir().join("wgd.sock");
        let mut config_a = format!(
            "[daemon]\napi = \"{}\"\nmetrics = \"{METRICS}\"\n\n\
             [bfd]\ntransmit_interval = 100\nreceive_interval = 100\nmultiplier = 3\n",
            socket.display()
        );
        let mut config_b = String::new();
        let mut paths = Vec::new();
        let plans = [
            ("198.18.10", "10.255.10.0", "10.255.10.1", 51820),
            ("198.18.11", "10.255.11.0", "10.255.11.1", 51821),
        ];
        for (underlay_net, address_a, address_b, port) in plans {
            let (underlay_a, _) = underlay(
                &a,
                &format!("{underlay_net}.1/30"),
                &b,
                &format!("{underlay_net}.2/30"),
            )?;
            let (tunnel_a, tunnel_b) = (unique_name("wga"), unique_name("wgb"));
            config_a.push_str(&format!(
                "\n[[tunnel]]\nname = \"{tunnel_a}\"\nprivate_key = \"{}\"\nlisten_port = {port}\n\
                 address = [\"{address_a}/31\"]\n\n\
                 [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{underlay_net}.2:{port}\"\n\
                 persistent_keepalive = 1\n",
                keys_a.private, keys_b.public,
            ));
            config_b.push_str(&format!(
                "\n[[tunnel]]\nname = \"{tunnel_b}\"\nprivate_key = \"{}\"\nlisten_port = {port}\n\
                 address = [\"{address_b}/31\"]\n\n\
                 [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{underlay_net}.1:{port}\"\n\
                 persistent_keepalive = 1\n",
                keys_b.private, keys_a.public,
            ));
            paths.push(Path {
                tunnel_a,
                tunnel_b,
                address_a,
                address_b,
                underlay_a,
            });
        }
        let paths: [Path; 2] = paths.try_into().unwrap_or_else(|_| unreachable!());
        let config_without_route = config_a.clone();
        // The better route, from the config, with BFD to its nexthop.
        config_a.push_str(&format!(
            "\n[[bridge.route]]\nprefix = \"{LAN}\"\nvia = \"{}\"\ndistance = 10\nbfd = true\n",
            paths[0].address_b
        ));
        let config_b = write_config(b.dir(), "b.toml", &config_b)?;
        wgd.run(&b, &["up", config_b.to_str().expect("a UTF-8 path")])?;
        let config_a = write_config(a.dir(), "a.toml", &config_a)?;
        let daemon = wgd.spawn(&a, &["run", "-c", config_a.to_str().expect("a UTF-8 path")])?;
        let lab = Lab {
            wgd,
            a,
            b,
            socket,
            daemon,
            paths,
            config_without_route,
        };
        wait_for(Duration::from_secs(10), "the daemon's API", || {
            lab.wgd.run(&lab.a, &["routes", "--api", lab.api()]).is_ok()
        })?;
        Ok(lab)
    }

    fn api(&self) -> &str {
        self.socket.to_str().expect("a UTF-8 path")
    }

    /// The tunnel A's kernel sends B's LAN through, from `ip route`.
    fn lan_tunnel(&self) -> Option<String> {
        let text = self
            .a
            .check(&["ip", "-N", "route", "show", LAN, "proto", "200"])
            .ok()?;
        let line = text.lines().next()?;
        let mut words = line.split_whitespace();
        words.find(|word| *word == "dev")?;
        words.next().map(str::to_owned)
    }

    /// `wgd bfd --json`'s sessions.
    fn bfd(&self) -> Vec<serde_json::Value> {
        self.wgd
            .run(&self.a, &["bfd", "--json", "--api", self.api()])
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["sessions"].as_array().cloned())
            .unwrap_or_default()
    }

    /// How many reconciles the daemon has run (a reload ends with one).
    fn reconciles(&self) -> u64 {
        scrape_metrics(&self.a, METRICS)
            .lines()
            .find_map(|line| line.strip_prefix("wgd_reconciles_total "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The session to `peer`, as `wgd bfd --json` shows it.
    fn session(&self, peer: &str) -> serde_json::Value {
        self.bfd()
            .into_iter()
            .find(|session| session["peer"] == peer)
            .unwrap_or_default()
    }

    /// The state of the session to `peer`, as `wgd bfd` shows it.
    fn bfd_state(&self, peer: &str) -> Option<String> {
        self.bfd()
            .iter()
            .find(|session| session["peer"] == peer)
            .and_then(|session| session["state"].as_str().map(str::to_owned))
    }
}

/// B's bird.conf: static BFD sessions to A's end of both tunnels, at
/// 100 ms x 3 as A's `[bfd]`.
fn bird_config(paths: &[Path; 2]) -> String {
    let mut config = format!(
        "router id {};\nprotocol device {{\n}}\n\
         protocol bfd {{\n  interface \"*\" {{\n    min rx interval 100 ms;\n    min tx interval 100 ms;\n    multiplier 3;\n  }};\n",
        paths[0].address_b
    );
    for path in paths {
        config.push_str(&format!(
            "  neighbor {} dev \"{}\";\n",
            path.address_a, path.tunnel_b
        ));
    }
    config.push_str("}\n");
    config
}

#[test]
fn a_static_route_follows_its_nexthop_s_bfd_session() -> anyhow::Result<()> {
    let lab = Lab::new()?;
    let bird = wgd_tests::bird::Bird::start(&lab.b, &bird_config(&lab.paths))?;
    let (first, second) = (&lab.paths[0], &lab.paths[1]);
    let context = |error: wgd_labs::Error| {
        let sessions = bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default();
        let routes = lab
            .a
            .check(&["ip", "-N", "route", "show", "proto", "200"])
            .unwrap_or_default();
        anyhow::anyhow!(
            "{error}\nBIRD:\n{sessions}\n{}\nA's routes:\n{routes}\nwgd bfd: {:#?}\nwgd:\n{}",
            bird.log(),
            lab.bfd(),
            lab.daemon.log()
        )
    };

    // The worse route through the second tunnel, with BFD to its nexthop.
    lab.wgd.run(
        &lab.a,
        &[
            "route",
            "add",
            LAN,
            "via",
            second.address_b,
            "--distance",
            "30",
            "--bfd",
            "--api",
            lab.api(),
        ],
    )?;
    wait_for(Duration::from_secs(20), "both BFD sessions up", || {
        lab.bfd_state(first.address_b).as_deref() == Some("up")
            && lab.bfd_state(second.address_b).as_deref() == Some("up")
    })
    .map_err(context)?;
    wait_for(
        Duration::from_secs(10),
        "B's LAN through the first tunnel",
        || lab.lan_tunnel().as_deref() == Some(first.tunnel_a.as_str()),
    )
    .map_err(context)?;
    // Both sessions are listed as the nexthops', with their tunnel, in
    // `wgd bfd` and in the metrics.
    for (path, session) in [first, second].iter().zip([
        lab.bfd().into_iter().find(|s| s["peer"] == first.address_b),
        lab.bfd()
            .into_iter()
            .find(|s| s["peer"] == second.address_b),
    ]) {
        let session = session.expect("listed");
        assert_eq!(session["tunnel"], path.tunnel_a.as_str(), "{session}");
        assert_eq!(session["for"], serde_json::json!(["nexthop"]), "{session}");
        let metrics = scrape_metrics(&lab.a, METRICS);
        let up = format!(
            "wgd_bfd_session_up{{neighbor=\"{}\",tunnel=\"{}\"}} 1",
            path.address_b, path.tunnel_a
        );
        assert!(metrics.contains(&up), "{up} not in\n{metrics}");
    }

    // The cut: the first session falls, the route moves to the second
    // tunnel. 300 ms of detection; 5 s leaves room for a busy machine and
    // is far below the 180 s a dead peer would take.
    let cut = Instant::now();
    lab.a
        .check(&["ip", "link", "set", "dev", &first.underlay_a, "down"])?;
    wait_for(
        Duration::from_secs(5),
        "B's LAN through the second tunnel",
        || lab.lan_tunnel().as_deref() == Some(second.tunnel_a.as_str()),
    )
    .map_err(context)?;
    eprintln!("rerouted {} ms after the cut", cut.elapsed().as_millis());
    assert_eq!(lab.bfd_state(first.address_b).as_deref(), Some("down"));
    assert_eq!(lab.bfd_state(second.address_b).as_deref(), Some("up"));
    let routes = lab
        .wgd
        .run(&lab.a, &["routes", "--json", "--api", lab.api()])?;
    let routes: serde_json::Value = serde_json::from_str(&routes)?;
    let config_route = routes
        .as_array()
        .and_then(|routes| routes.iter().find(|route| route["owner"] == "config"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(config_route["state"], "queued", "{routes:#}");
    assert!(
        config_route["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("BFD")),
        "{routes:#}"
    );

    // Mended: the session and the route come back.
    lab.a
        .check(&["ip", "link", "set", "dev", &first.underlay_a, "up"])?;
    wait_for(
        Duration::from_secs(20),
        "B's LAN back through the first tunnel",
        || lab.lan_tunnel().as_deref() == Some(first.tunnel_a.as_str()),
    )
    .map_err(context)?;
    assert_eq!(lab.bfd_state(first.address_b).as_deref(), Some("up"));

    // A reload that changes nothing leaves the session alone.
    // (The periodic reconcile is 30 s away: the next one is the reload's.)
    let before = lab.session(first.address_b);
    let reconciles = lab.reconciles();
    wgd_tests::sighup(&lab.a, &lab.daemon)?;
    wait_for(Duration::from_secs(10), "the reload", || {
        lab.reconciles() > reconciles
    })
    .map_err(context)?;
    let after = lab.session(first.address_b);
    assert_eq!(
        (
            &after["local_discriminator"],
            &after["state_changes"],
            &after["state"]
        ),
        (
            &before["local_discriminator"],
            &before["state_changes"],
            &before["state"]
        ),
        "{before:#}\n{after:#}"
    );

    // The route added with --bfd deleted: its session goes; the config's
    // stays.
    lab.wgd
        .run(&lab.a, &["route", "del", LAN, "--api", lab.api()])?;
    wait_for(Duration::from_secs(5), "the second session gone", || {
        let sessions = lab.bfd();
        sessions.len() == 1 && sessions[0]["peer"] == first.address_b
    })
    .map_err(context)?;

    // The config's route taken out by a reload: the route and its session
    // go.
    wgd_tests::rewrite_config(lab.a.dir(), "a.toml", &lab.config_without_route)?;
    wgd_tests::sighup(&lab.a, &lab.daemon)?;
    wait_for(
        Duration::from_secs(10),
        "the config's route and its session gone",
        || lab.lan_tunnel().is_none() && lab.bfd().is_empty(),
    )
    .map_err(context)?;
    Ok(())
}
