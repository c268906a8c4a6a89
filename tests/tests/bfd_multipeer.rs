//! A multi-peer tunnel's AllowedIPs follow BFD: a hub running `wgd run`
//! has one tunnel with two peers (spoke-1, spoke-2), each over its own
//! veth underlay, and each spoke runs BIRD's `protocol bfd` with a static
//! session to the hub's tunnel address. The hub routes a LAN through
//! spoke-1 (`[[bridge.route]]`, distance 10) and through spoke-2 (`wgd
//! route add --distance 30`), both with BFD: WireGuard gives a prefix to one peer only, so the
//! LAN is in spoke-1's AllowedIPs. When spoke-1's underlay is cut, its
//! BFD session falls, the LAN leaves spoke-1's AllowedIPs for spoke-2's
//! (and the kernel route follows), long before the handshake age would
//! call spoke-1 dead; mended, it comes back. `wgd run --down-on-exit`
//! stopped, its BFD process takes the sessions AdminDown and ends.
//!
//! Checked as an operator would: `wg show <tunnel> allowed-ips`, `ip -N
//! route show proto 200` and `wgd bfd --json`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::bird::Bird;
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;
const HUB_ADDRESS: &str = "10.253.0.1";
const LAN: &str = "192.168.78.0/24";

struct Spoke {
    ns: Namespace,
    tunnel: String,
    public_key: String,
    address: &'static str,
    /// The spoke's end of its underlay.
    underlay: String,
}

struct Hub {
    /// Each spoke's BIRD, stopped before the namespaces go.
    birds: Vec<Bird>,
    wgd: Wgd,
    ns: Namespace,
    tunnel: String,
    socket: PathBuf,
    daemon: Daemon,
    spokes: [Spoke; 2],
}

impl Hub {
    fn new() -> anyhow::Result<Hub> {
        let wgd = Wgd::new()?;
        let ns = Namespace::new("bmh")?;
        let keys = KeyPair::generate()?;
        let tunnel = unique_name("wgh");
        let socket = ns.dir().join("wgd.sock");
        let mut config = format!(
            "[daemon]\napi = \"{}\"\nreconcile_interval = 1\n\n\
             [bfd]\ntransmit_interval = 100\nreceive_interval = 100\nmultiplier = 3\n\n\
             [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"{HUB_ADDRESS}/24\"]\n",
            socket.display(),
            keys.private,
        );
        let mut spokes = Vec::new();
        for (index, (underlay_net, address)) in
            [("198.18.21", "10.253.0.2"), ("198.18.22", "10.253.0.3")]
                .into_iter()
                .enumerate()
        {
            let spoke_ns = Namespace::new("bms")?;
            let (hub_end, spoke_end) = (format!("{underlay_net}.1"), format!("{underlay_net}.2"));
            let (_, spoke_underlay) = underlay(
                &ns,
                &format!("{hub_end}/30"),
                &spoke_ns,
                &format!("{spoke_end}/30"),
            )?;
            let spoke_keys = KeyPair::generate()?;
            let spoke_tunnel = unique_name("wgs");
            let spoke_config = format!(
                "[[tunnel]]\nname = \"{spoke_tunnel}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
                 address = [\"{address}/24\"]\n\n\
                 [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{hub_end}:{PORT}\"\n\
                 persistent_keepalive = 1\n",
                spoke_keys.private, keys.public,
            );
            let path = write_config(spoke_ns.dir(), "spoke.toml", &spoke_config)?;
            wgd.run(&spoke_ns, &["up", path.to_str().expect("a UTF-8 path")])?;
            config.push_str(&format!(
                "\n[[tunnel.peer]]\nname = \"spoke-{}\"\npublic_key = \"{}\"\n\
                 endpoint = \"{spoke_end}:{PORT}\"\npersistent_keepalive = 1\n\
                 allowed_ips = [\"{address}/32\"]\n",
                index + 1,
                spoke_keys.public,
            ));
            spokes.push(Spoke {
                ns: spoke_ns,
                tunnel: spoke_tunnel,
                public_key: spoke_keys.public,
                address,
                underlay: spoke_underlay,
            });
        }
        // The LAN through spoke-1, with BFD (through spoke-2: below).
        config.push_str(&format!(
            "\n[[bridge.route]]\nprefix = \"{LAN}\"\nvia = \"{}\"\ndistance = 10\nbfd = true\n",
            spokes[0].address
        ));
        let path = write_config(ns.dir(), "hub.toml", &config)?;
        let daemon = wgd.spawn(
            &ns,
            &[
                "run",
                "-c",
                path.to_str().expect("a UTF-8 path"),
                "--down-on-exit",
            ],
        )?;
        let spokes: [Spoke; 2] = spokes.try_into().unwrap_or_else(|_| unreachable!());
        let mut birds = Vec::new();
        for spoke in &spokes {
            let bird_config = format!(
                "router id {};\nprotocol device {{\n}}\n\
                 protocol bfd {{\n  interface \"*\" {{\n    min rx interval 100 ms;\n    min tx interval 100 ms;\n    multiplier 3;\n  }};\n\
                 \x20 neighbor {HUB_ADDRESS} dev \"{}\";\n}}\n",
                spoke.address, spoke.tunnel
            );
            birds.push(Bird::start(&spoke.ns, &bird_config)?);
        }
        let hub = Hub {
            wgd,
            ns,
            tunnel,
            socket,
            daemon,
            spokes,
            birds,
        };
        wait_for(Duration::from_secs(10), "the daemon's API", || {
            hub.wgd
                .run(&hub.ns, &["routes", "--api", hub.api()])
                .is_ok()
        })
        .map_err(|error| anyhow::anyhow!("{error}\ndaemon log:\n{}", hub.daemon.log()))?;
        // The worse route through spoke-2, with BFD too.
        hub.wgd.run(
            &hub.ns,
            &[
                "route",
                "add",
                LAN,
                "via",
                hub.spokes[1].address,
                "--distance",
                "30",
                "--bfd",
                "--api",
                hub.api(),
            ],
        )?;
        Ok(hub)
    }

    fn api(&self) -> &str {
        self.socket.to_str().expect("a UTF-8 path")
    }

    /// `wg show <tunnel> allowed-ips` for `spoke`.
    fn allowed_ips(&self, spoke: &Spoke) -> Option<BTreeSet<String>> {
        let text = self
            .ns
            .check(&["wg", "show", &self.tunnel, "allowed-ips"])
            .ok()?;
        let line = text
            .lines()
            .find(|line| line.starts_with(&spoke.public_key))?;
        let (_, prefixes) = line.split_once('\t')?;
        Some(
            prefixes
                .split_whitespace()
                .filter(|prefix| *prefix != "(none)")
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether the LAN is in `spoke`'s AllowedIPs only, and the kernel
    /// sends it through `spoke`.
    fn lan_at(&self, spoke: &Spoke, other: &Spoke) -> bool {
        let has = |spoke| {
            self.allowed_ips(spoke)
                .is_some_and(|prefixes| prefixes.contains(LAN))
        };
        let route = self
            .ns
            .check(&["ip", "-N", "route", "show", LAN, "proto", "200"])
            .unwrap_or_default();
        has(spoke) && !has(other) && route.contains(&format!("via {} ", spoke.address))
    }

    fn bfd_state(&self, peer: &str) -> Option<String> {
        let text = self
            .wgd
            .run(&self.ns, &["bfd", "--json", "--api", self.api()])
            .ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["sessions"]
            .as_array()?
            .iter()
            .find(|session| session["peer"] == peer)
            .and_then(|session| session["state"].as_str().map(str::to_owned))
    }

    /// The pid of the BFD process (`wgd bfdd`) in the hub's namespace.
    fn bfd_process(&self) -> Option<u32> {
        let pids = wgd_labs::host::check(&["ip", "netns", "pids", self.ns.name()]).ok()?;
        pids.split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|line| line.split(|byte| *byte == 0).any(|word| word == b"bfdd"))
            })
    }

    /// The BFD process's log, beside wgd's records in the namespace.
    fn bfd_log(&self) -> String {
        let root = Wgd::state_dir(&self.ns);
        std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("bfdd.log")).ok())
            .collect()
    }

    fn context(&self, error: wgd_labs::Error) -> anyhow::Error {
        let allowed = self
            .ns
            .check(&["wg", "show", &self.tunnel, "allowed-ips"])
            .unwrap_or_default();
        let routes = self
            .ns
            .check(&["ip", "-N", "route", "show", "proto", "200"])
            .unwrap_or_default();
        let birds: Vec<String> = self
            .birds
            .iter()
            .map(|bird| bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default())
            .collect();
        anyhow::anyhow!(
            "{error}\nallowed-ips:\n{allowed}\nroutes:\n{routes}\nBIRD:\n{}\nwgd:\n{}",
            birds.join("\n"),
            self.daemon.log()
        )
    }
}

#[test]
fn a_multi_peer_tunnel_s_allowed_ips_follow_bfd() -> anyhow::Result<()> {
    let hub = Hub::new()?;
    let [first, second] = &hub.spokes;
    wait_for(Duration::from_secs(20), "both BFD sessions up", || {
        hub.bfd_state(first.address).as_deref() == Some("up")
            && hub.bfd_state(second.address).as_deref() == Some("up")
    })
    .map_err(|error| hub.context(error))?;
    wait_for(Duration::from_secs(10), "the LAN at spoke-1", || {
        hub.lan_at(first, second)
    })
    .map_err(|error| hub.context(error))?;

    // The cut: spoke-1's underlay down at its end. Its peer is not dead
    // for the handshake age for minutes: only BFD moves the LAN.
    let cut = Instant::now();
    first
        .ns
        .check(&["ip", "link", "set", "dev", &first.underlay, "down"])?;
    wait_for(Duration::from_secs(10), "the LAN at spoke-2", || {
        hub.lan_at(second, first)
    })
    .map_err(|error| hub.context(error))?;
    eprintln!(
        "the LAN moved to spoke-2's AllowedIPs {} ms after the cut",
        cut.elapsed().as_millis()
    );
    assert_eq!(hub.bfd_state(first.address).as_deref(), Some("down"));
    // Spoke-1 keeps its own address.
    assert_eq!(
        hub.allowed_ips(first),
        Some(BTreeSet::from([format!("{}/32", first.address)]))
    );

    // Mended: BFD up again, the LAN back at spoke-1.
    first
        .ns
        .check(&["ip", "link", "set", "dev", &first.underlay, "up"])?;
    wait_for(Duration::from_secs(20), "the LAN back at spoke-1", || {
        hub.lan_at(first, second)
    })
    .map_err(|error| hub.context(error))?;
    assert_eq!(hub.bfd_state(first.address).as_deref(), Some("up"));

    // `wgd run --down-on-exit` stopped (SIGTERM): the BFD process takes
    // the sessions AdminDown and ends with it.
    let mut hub = hub;
    assert!(hub.bfd_process().is_some(), "a BFD process runs");
    hub.daemon.stop()?;
    wait_for(Duration::from_secs(10), "the BFD process gone", || {
        hub.bfd_process().is_none()
    })
    .map_err(|error| hub.context(error))?;
    let log = hub.bfd_log();
    for said in [
        "told to end; sessions go AdminDown",
        "BFD session admin-down",
        "BFD process: ended",
    ] {
        assert!(
            log.contains(said),
            "`{said}` not in the BFD process's log:\n{log}"
        );
    }
    wait_for(Duration::from_secs(10), "the spokes' sessions down", || {
        hub.birds.iter().all(|bird| {
            bird.birdc(&["show", "bfd", "sessions"])
                .is_ok_and(|text| !text.contains(" Up "))
        })
    })
    .map_err(|error| hub.context(error))?;
    Ok(())
}
