//! `wgd run`: the daemon as an operator meets it. Site A runs the daemon
//! with a real peer (site B) and a peer that never answers; the test reads
//! status through the API (and checks that site B, another namespace,
//! does not take A's daemon for its own), follows events with `wgd
//! events`, scrapes the metrics, kills wireguard-go and watches it go down
//! and come back, reloads a bad and a good config with SIGHUP, adds and
//! removes a tunnel, and stops the daemon with SIGTERM (tunnels stay up) or
//! with `--down-on-exit` (they go).

use std::path::Path;
use std::time::Duration;

use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::{KeyPair, Wgd, ifindex, rewrite_config, scrape_metrics, sighup, underlay};

struct Sites {
    wgd: Wgd,
    a: Namespace,
    b: Namespace,
    a_tunnel: String,
    b_tunnel: String,
    /// A second tunnel of A's, added and removed by reloads.
    c_tunnel: String,
    a_keys: KeyPair,
    b_keys: KeyPair,
    ghost: KeyPair,
    c_keys: KeyPair,
    psk: String,
    dir: tempfile::TempDir,
    metrics_port: u16,
}

impl Sites {
    fn new() -> Self {
        let wgd = Wgd::new().expect("wgd");
        let a = Namespace::new("da").expect("namespace");
        let b = Namespace::new("db").expect("namespace");
        underlay(&a, "198.18.90.1/24", &b, "198.18.90.2/24").expect("veth");
        let psk = wgd.run(&a, &["genkey"]).unwrap().trim().to_owned();
        Sites {
            wgd,
            a,
            b,
            a_tunnel: unique_name("wgda"),
            b_tunnel: unique_name("wgdb"),
            c_tunnel: unique_name("wgdc"),
            a_keys: KeyPair::generate().unwrap(),
            b_keys: KeyPair::generate().unwrap(),
            ghost: KeyPair::generate().unwrap(),
            c_keys: KeyPair::generate().unwrap(),
            psk,
            dir: tempfile::tempdir().unwrap(),
            metrics_port: 9586,
        }
    }

    fn a_config(&self, ghost_extra: &str) -> String {
        format!(
            r#"[daemon]
api = "unix:{dir}/a.sock"
metrics = "127.0.0.1:{port}"
reconcile_interval = 300
peer_dead_after = 3

[[tunnel]]
name = "{tunnel}"
private_key = "{private}"
listen_port = 51820
address = ["10.66.0.1/24"]

[[tunnel.peer]]
name = "site-b"
public_key = "{b}"
preshared_key = "{psk}"
endpoint = "198.18.90.2:51820"
persistent_keepalive = 1

[[tunnel.peer]]
name = "ghost"
public_key = "{ghost}"
endpoint = "198.18.90.99:51820"
persistent_keepalive = 1
allowed_ips = ["10.66.0.99/32"{ghost_extra}]
"#,
            dir = self.dir.path().display(),
            port = self.metrics_port,
            tunnel = self.a_tunnel,
            private = self.a_keys.private,
            b = self.b_keys.public,
            psk = self.psk,
            ghost = self.ghost.public,
        )
    }

    /// A's second tunnel, to append to its config.
    fn c_config(&self) -> String {
        format!(
            "\n[[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = 51822\naddress = [\"10.67.0.1/24\"]\n",
            self.c_tunnel, self.c_keys.private
        )
    }

    fn up_b(&self) -> String {
        let text = format!(
            "[[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = 51820\naddress = [\"10.66.0.2/24\"]\n\n[[tunnel.peer]]\npublic_key = \"{}\"\npreshared_key = \"{}\"\nendpoint = \"198.18.90.1:51820\"\n",
            self.b_tunnel, self.b_keys.private, self.a_keys.public, self.psk
        );
        let path = self.write("b.toml", &text);
        self.wgd.run(&self.b, &["up", &path]).expect("wgd up in B");
        path
    }

    /// Writes (or rewrites) `name` in the test's directory; its path.
    fn write(&self, name: &str, text: &str) -> String {
        rewrite_config(self.dir.path(), name, text).expect("config")
    }

    fn metrics(&self) -> String {
        scrape_metrics(&self.a, &format!("127.0.0.1:{}", self.metrics_port))
    }

    fn status_a(&self, config: &str) -> String {
        self.wgd
            .run(&self.a, &["status", "--json", "-c", config])
            .unwrap_or_default()
    }
}

#[test]
fn the_daemon_serves_status_events_and_metrics_supervises_and_reloads() {
    let sites = Sites::new();
    let wgd = &sites.wgd;
    let b_config = sites.up_b();
    let a_config = sites.write("a.toml", &sites.a_config(""));
    let mut daemon = wgd
        .spawn(&sites.a, &["run", "-c", &a_config])
        .expect("spawn");
    let api = sites.dir.path().join("a.sock");
    wait_for(Duration::from_secs(20), "the daemon's API socket", || {
        api.exists()
    })
    .unwrap();
    let events = wgd
        .spawn(&sites.a, &["events", "--json", "-c", &a_config])
        .expect("spawn");

    // Status through the API (the socket is named explicitly).
    wait_for(
        Duration::from_secs(20),
        "a handshake with site B in the daemon's status",
        || {
            let _ = sites.a.run(&["ping", "-c", "1", "-W", "1", "10.66.0.2"]);
            let json = wgd
                .run(
                    &sites.a,
                    &["status", "--json", "--api", api.to_str().unwrap()],
                )
                .unwrap_or_default();
            let status: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            status["tunnels"][0]["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|peer| {
                    peer["name"] == "site-b" && peer["latest_handshake_age_seconds"].is_u64()
                })
        },
    )
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    assert!(sites.a.pings("10.66.0.2").unwrap());

    // Events: a handshake from B, and the ghost declared dead.
    wait_for(
        Duration::from_secs(20),
        "peer-handshake and peer-dead events",
        || {
            let log = events.log();
            log.lines()
                .any(|line| line.contains("peer-handshake") && line.contains(&sites.b_keys.public))
                && log
                    .lines()
                    .any(|line| line.contains("peer-dead") && line.contains(&sites.ghost.public))
        },
    )
    .unwrap_or_else(|error| panic!("{error}\nevents:\n{}", events.log()));

    // The status text tells the ghost, never heard from, from a dead peer.
    let text = wgd
        .run(&sites.a, &["status", "--api", api.to_str().unwrap()])
        .unwrap();
    assert!(
        text.contains(&format!(
            "{} (ghost) [no handshake yet]",
            sites.ghost.public
        )),
        "{text}"
    );

    // Site B reaches A's socket (the file system is shared) but reads its
    // own devices: the daemon there is not its namespace's.
    let json = wgd
        .run(
            &sites.b,
            &["status", "--json", "--api", api.to_str().unwrap()],
        )
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = status["tunnels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tunnel| tunnel["name"].as_str())
        .collect();
    assert_eq!(names, [sites.b_tunnel.as_str()], "{json}");

    // Metrics.
    let metrics = sites.metrics();
    assert!(
        metrics.contains(&format!("wgd_tunnel_up{{tunnel=\"{}\"}} 1", sites.a_tunnel)),
        "{metrics}"
    );
    let site_b = format!(
        "{{tunnel=\"{}\",peer=\"{}\",name=\"site-b\"}}",
        sites.a_tunnel, sites.b_keys.public
    );
    assert!(
        metrics.contains(&format!("wgd_peer_latest_handshake_age_seconds{site_b} ")),
        "no handshake age for site B:\n{metrics}"
    );
    for counter in ["receive", "transmit"] {
        assert!(
            metrics.contains(&format!("# TYPE wgd_peer_{counter}_bytes counter"))
                && metrics.contains(&format!("wgd_peer_{counter}_bytes_total{site_b} ")),
            "no {counter} counter for site B:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!(
            "wgd_peer_alive{{tunnel=\"{}\",peer=\"{}\",name=\"ghost\"}} 0",
            sites.a_tunnel, sites.ghost.public
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!(
            "wgd_peer_latest_handshake_age_seconds{{tunnel=\"{}\",peer=\"{}\"",
            sites.a_tunnel, sites.ghost.public
        )),
        "a handshake age for the ghost:\n{metrics}"
    );

    // wireguard-go dies: the daemon starts a new one.
    let before = ifindex(&sites.a, &sites.a_tunnel).expect("tunnel present");
    let pattern = format!("wireguard-go -f {}$", sites.a_tunnel);
    sites
        .a
        .check(&["pkill", "-KILL", "-f", &pattern])
        .expect("kill wireguard-go");
    wait_for(
        Duration::from_secs(20),
        "the tunnel back with a new interface",
        || {
            ifindex(&sites.a, &sites.a_tunnel).is_some_and(|index| index != before)
                && sites.status_a(&a_config).contains("\"up\": true")
        },
    )
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    assert!(
        sites.a.pings("10.66.0.2").unwrap(),
        "no ping after the restart"
    );
    assert!(
        sites.metrics().contains("wgd_userspace_restarts_total 1"),
        "{}",
        sites.metrics()
    );
    // Watchers saw it go down, saying why, and come back.
    wait_for(
        Duration::from_secs(10),
        "tunnel-down (wireguard-go exited), then tunnel-up",
        || {
            let log = events.log();
            let ours = |line: &&str| line.contains(&format!("\"tunnel\":\"{}\"", sites.a_tunnel));
            let lines: Vec<&str> = log.lines().filter(ours).collect();
            lines
                .iter()
                .position(|line| {
                    line.contains("tunnel-down") && line.contains("wireguard-go exited")
                })
                .is_some_and(|down| lines[down..].iter().any(|line| line.contains("tunnel-up")))
        },
    )
    .unwrap_or_else(|error| panic!("{error}\nevents:\n{}", events.log()));

    // SIGHUP with a broken config: rejected, nothing changes.
    let index = ifindex(&sites.a, &sites.a_tunnel).unwrap();
    let broken = sites
        .a_config("")
        .replace("listen_port = 51820", "listen_port = 70000");
    sites.write("a.toml", &broken);
    sighup(&sites.a, &daemon).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the daemon to reject the config",
        || daemon.log().contains("port out of range"),
    )
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    assert_eq!(
        ifindex(&sites.a, &sites.a_tunnel).as_deref(),
        Some(index.as_str())
    );
    assert!(sites.a.pings("10.66.0.2").unwrap());

    // SIGHUP with a good change and a new tunnel: applied.
    let changed = sites.a_config(", \"10.66.0.98/32\"");
    sites.write("a.toml", &(changed.clone() + &sites.c_config()));
    sighup(&sites.a, &daemon).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the reloaded AllowedIPs on the device, and the new tunnel",
        || {
            sites
                .a
                .check(&["wg", "show", &sites.a_tunnel, "allowed-ips"])
                .is_ok_and(|text| text.contains("10.66.0.98/32"))
                && ifindex(&sites.a, &sites.c_tunnel).is_some()
        },
    )
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    assert_eq!(
        ifindex(&sites.a, &sites.a_tunnel).as_deref(),
        Some(index.as_str()),
        "reload re-created the interface"
    );

    // The new tunnel leaves the config: watchers hear it, and its
    // wireguard-go, stopped on purpose, is not restarted.
    sites.write("a.toml", &changed);
    sighup(&sites.a, &daemon).unwrap();
    wait_for(
        Duration::from_secs(10),
        "tunnel-down (removed from the config)",
        || {
            events.log().lines().any(|line| {
                line.contains(&sites.c_tunnel)
                    && line.contains("tunnel-down")
                    && line.contains("removed from the config")
            })
        },
    )
    .unwrap_or_else(|error| panic!("{error}\nevents:\n{}", events.log()));
    wait_for(Duration::from_secs(10), "the removed tunnel gone", || {
        ifindex(&sites.a, &sites.c_tunnel).is_none()
    })
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    std::thread::sleep(Duration::from_secs(1));
    let log = daemon.log();
    assert!(
        !log.lines()
            .any(|line| line.contains(&sites.c_tunnel) && line.contains("restarting")),
        "{log}"
    );
    assert!(
        sites.metrics().contains("wgd_userspace_restarts_total 1"),
        "{}",
        sites.metrics()
    );
    assert!(ifindex(&sites.a, &sites.c_tunnel).is_none(), "{log}");

    // No key material anywhere the daemon speaks.
    let said = [
        daemon.log(),
        events.log(),
        sites.status_a(&a_config),
        sites.metrics(),
    ]
    .join("\n");
    for (what, secret) in [
        ("private key", &sites.a_keys.private),
        ("preshared key", &sites.psk),
    ] {
        assert!(
            !said.contains(secret.as_str()),
            "the {what} appears in the daemon's output"
        );
    }

    // SIGTERM: the daemon exits, the tunnel stays and carries traffic.
    let exit = daemon.stop().expect("stop");
    assert!(exit.success(), "daemon exit: {exit}\n{}", daemon.log());
    drop(events);
    assert!(
        ifindex(&sites.a, &sites.a_tunnel).is_some(),
        "SIGTERM took the tunnel down"
    );
    assert!(
        sites.a.pings("10.66.0.2").unwrap(),
        "no ping after the daemon exited"
    );

    wgd.run(&sites.a, &["down", &a_config]).expect("down A");
    wgd.run(&sites.b, &["down", &b_config]).expect("down B");
}

#[test]
fn down_on_exit_takes_the_tunnels_down() {
    let sites = Sites::new();
    let wgd = &sites.wgd;
    let a_config = sites.write("a.toml", &sites.a_config(""));
    let mut daemon = wgd
        .spawn(&sites.a, &["run", "--down-on-exit", "-c", &a_config])
        .expect("spawn");
    wait_for(Duration::from_secs(20), "the tunnel up", || {
        sites.status_a(&a_config).contains("\"up\": true")
    })
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    let exit = daemon.stop().expect("stop");
    assert!(exit.success(), "daemon exit: {exit}\n{}", daemon.log());
    assert!(
        ifindex(&sites.a, &sites.a_tunnel).is_none(),
        "the tunnel is still there"
    );
    let socket = format!("/var/run/wireguard/{}.sock", sites.a_tunnel);
    assert!(!Path::new(&socket).exists(), "{socket} left behind");
}
