//! The route bridge on a tunnel with several peers: a hub running `wgd run`
//! has one tunnel with two peers (spoke-1, spoke-2), each over its own veth
//! underlay. A route learned over the API whose nexthop is a spoke's tunnel
//! address must go into the kernel and into that spoke's AllowedIPs (and
//! only that spoke's), and out of both when it is withdrawn; reconciles
//! (periodic and after SIGHUP) must keep what the bridge added.
//!
//! Checked the way an operator would: `wgd status --json` and
//! `wg show <tunnel> allowed-ips` for AllowedIPs, `ip -N route show proto
//! 200` for the kernel, and pings from the hub to the spokes' LANs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_proto::v1 as api;
use wgd_proto::v1::route_service_client::RouteServiceClient;
use wgd_tests::bridge::route_via;
use wgd_tests::{KeyPair, Wgd, scrape_metrics, sighup, underlay, write_config};

const PORT: u16 = 51820;
const METRICS: &str = "127.0.0.1:9586";
const OWNER: &str = "multipeer-test";

const HUB_TUNNEL_ADDRESS: &str = "10.254.0.1";

/// Things that converge within a reconcile or two (the daemon applies the
/// bridge's AllowedIPs in the reconcile right after the routes).
const CONVERGE: Duration = Duration::from_secs(10);

/// One spoke: its namespace and what the hub knows of it.
#[derive(Debug)]
struct Spoke {
    ns: Namespace,
    /// Its end of the tunnel, made by `wgd up`.
    tunnel: String,
    public_key: String,
    /// Its tunnel address: the nexthop of routes toward its LAN.
    tunnel_address: &'static str,
    lan: &'static str,
    lan_host: &'static str,
}

#[derive(Debug)]
struct Hub {
    wgd: Wgd,
    ns: Namespace,
    tunnel: String,
    socket: PathBuf,
    /// The hub's wgd.toml, for a daemon started again.
    config: PathBuf,
    daemon: Daemon,
    spokes: [Spoke; 2],
}

impl Hub {
    /// Three namespaces, the spokes' tunnels up (`wgd up`), the hub's
    /// daemon running with its API answering, and both peers' first
    /// handshake done.
    fn new() -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let hub = Namespace::new("mph")?;
        let hub_keys = KeyPair::generate()?;
        let tunnel = unique_name("wgh");
        let socket = hub.dir().join("wgd.sock");

        let plans = [
            (
                "mps1",
                "198.18.1",
                "10.254.0.2",
                "192.168.1.0/24",
                "192.168.1.1",
            ),
            (
                "mps2",
                "198.18.2",
                "10.254.0.3",
                "192.168.2.0/24",
                "192.168.2.1",
            ),
        ];
        let mut hub_config = format!(
            "[daemon]\napi = \"{}\"\nmetrics = \"{METRICS}\"\nreconcile_interval = 1\n\n\
             [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"{HUB_TUNNEL_ADDRESS}/24\"]\n",
            socket.display(),
            hub_keys.private,
        );
        let mut spokes = Vec::new();
        for (index, (prefix, underlay_net, tunnel_address, lan, lan_host)) in
            plans.into_iter().enumerate()
        {
            let ns = Namespace::new(prefix)?;
            let (hub_underlay, spoke_underlay) =
                (format!("{underlay_net}.1"), format!("{underlay_net}.2"));
            underlay(
                &hub,
                &format!("{hub_underlay}/30"),
                &ns,
                &format!("{spoke_underlay}/30"),
            )?;
            ns.add_address("lo", &format!("{lan_host}/24"))?;
            let keys = KeyPair::generate()?;
            let spoke_tunnel = unique_name("wgs");
            let config = format!(
                "[[tunnel]]\nname = \"{spoke_tunnel}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
                 address = [\"{tunnel_address}/24\"]\n\n\
                 [[tunnel.peer]]\nname = \"hub\"\npublic_key = \"{}\"\nendpoint = \"{hub_underlay}:{PORT}\"\n\
                 persistent_keepalive = 1\n",
                keys.private, hub_keys.public,
            );
            let path = write_config(ns.dir(), "spoke.toml", &config)?;
            wgd.run(&ns, &["up", path.to_str().expect("a UTF-8 path")])?;
            // WireGuard gives a prefix to one peer only: on a multi-peer
            // tunnel each peer gets its own tunnel address.
            hub_config.push_str(&format!(
                "\n[[tunnel.peer]]\nname = \"spoke-{}\"\npublic_key = \"{}\"\n\
                 endpoint = \"{spoke_underlay}:{PORT}\"\npersistent_keepalive = 1\n\
                 allowed_ips = [\"{tunnel_address}/32\"]\n",
                index + 1,
                keys.public,
            ));
            spokes.push(Spoke {
                ns,
                tunnel: spoke_tunnel,
                public_key: keys.public,
                tunnel_address,
                lan,
                lan_host,
            });
        }
        let config = write_config(hub.dir(), "hub.toml", &hub_config)?;
        let daemon = wgd.spawn(&hub, &["run", "-c", config.to_str().expect("a UTF-8 path")])?;
        let spokes: [Spoke; 2] = spokes.try_into().expect("two spokes");
        let lab = Self {
            wgd,
            ns: hub,
            tunnel,
            socket,
            config,
            daemon,
            spokes,
        };
        lab.wait_for_the_api();
        lab.wait(CONVERGE, "the first handshake with both spokes", || {
            let Ok(status) = lab.wgd.status(&lab.ns) else {
                return false;
            };
            lab.spokes.iter().all(|spoke| {
                status
                    .tunnel(&lab.tunnel)
                    .and_then(|tunnel| tunnel.peer(&spoke.public_key))
                    .and_then(|peer| peer.latest_handshake_age_seconds)
                    .is_some_and(|age| age < 60)
            })
        });
        Ok(lab)
    }

    fn wait_for_the_api(&self) {
        let socket = self.socket.to_str().expect("a UTF-8 path");
        self.wait(Duration::from_secs(10), "the daemon's API", || {
            self.wgd.run(&self.ns, &["routes", "--api", socket]).is_ok()
        });
    }

    /// `kill -9` of the hub's daemon (nothing it could clean up), then a
    /// new `wgd run` with the same config, its API answering.
    fn kill_and_restart(&mut self) {
        let pid = self.daemon.pid().to_string();
        self.ns.check(&["kill", "-9", &pid]).expect("kill -9");
        let daemon = &mut self.daemon;
        if let Err(error) = wait_for(Duration::from_secs(5), "the killed daemon to exit", || {
            !daemon.is_running()
        }) {
            panic!("{error}");
        }
        let config = self.config.to_str().expect("a UTF-8 path");
        self.daemon = self
            .wgd
            .spawn(&self.ns, &["run", "-c", config])
            .expect("wgd run again");
        self.wait_for_the_api();
    }

    /// `wait_for`, failing the test with the daemon's log.
    fn wait(&self, deadline: Duration, what: &str, condition: impl FnMut() -> bool) {
        if let Err(error) = wait_for(deadline, what, condition) {
            panic!("{error}\ndaemon log:\n{}", self.daemon.log());
        }
    }

    async fn client(&self) -> RouteServiceClient<tonic::transport::Channel> {
        wgd::daemon::api::connect_routes(&self.socket)
            .await
            .expect("a client on the hub's API")
    }

    /// The AllowedIPs of the hub's peer `spoke` as `wgd status --json`
    /// shows them, and as `wg show <tunnel> allowed-ips` does.
    fn allowed_ips(&self, spoke: &Spoke) -> (Option<BTreeSet<String>>, Option<BTreeSet<String>>) {
        let from_status = self.wgd.status(&self.ns).ok().and_then(|status| {
            let tunnel = status.tunnel(&self.tunnel)?;
            let peer = tunnel.peer(&spoke.public_key)?;
            Some(peer.allowed_ips.iter().cloned().collect())
        });
        let from_wg = wg_allowed_ips(self.ns.name(), &self.tunnel, &spoke.public_key);
        (from_status, from_wg)
    }

    /// Waits until both views of `spoke`'s AllowedIPs are exactly `expected`.
    fn wait_allowed_ips(&self, spoke: &Spoke, expected: &[&str], what: &str) {
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        let mut last = (None, None);
        let result = wait_for(CONVERGE, what, || {
            last = self.allowed_ips(spoke);
            last.0.as_ref() == Some(&expected) && last.1.as_ref() == Some(&expected)
        });
        if let Err(error) = result {
            panic!(
                "{error}\nexpected {expected:?}\n`wgd status --json` shows {:?}\n\
                 `wg show {} allowed-ips` shows {:?}\ndaemon log:\n{}",
                last.0,
                self.tunnel,
                last.1,
                self.daemon.log()
            );
        }
    }

    /// The hub's routes of protocol 200 in the main table, as `ip -N route
    /// show proto 200` prints them.
    fn kernel_routes(&self) -> Vec<String> {
        self.ns
            .check(&["ip", "-N", "route", "show", "proto", "200"])
            .expect("ip route show")
            .lines()
            .map(|line| line.trim_end().to_owned())
            .collect()
    }

    /// The kernel route for `spoke`'s LAN through the hub's tunnel, if any.
    fn kernel_route_to(&self, spoke: &Spoke) -> Option<String> {
        self.kernel_routes()
            .into_iter()
            .find(|line| line.split_whitespace().next() == Some(spoke.lan))
    }

    fn is_route_through_spoke(&self, line: &str, spoke: &Spoke) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|word| *word == key)
                .and_then(|at| words.get(at + 1).copied())
        };
        after("via") == Some(spoke.tunnel_address) && after("dev") == Some(self.tunnel.as_str())
    }

    /// `wgd_reconciles_total` from the hub's metrics.
    fn reconciles(&self) -> Option<u64> {
        scrape_metrics(&self.ns, METRICS)
            .lines()
            .find_map(|line| line.strip_prefix("wgd_reconciles_total "))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Waits until a reconcile that started after this call has finished:
    /// reconciles run one after another in the daemon's loop, so once the
    /// counter is two past what it is now, the first of those two is done.
    fn wait_for_a_full_reconcile(&self, what: &str) {
        let mut now = None;
        self.wait(CONVERGE, "the metrics endpoint", || {
            now = self.reconciles();
            now.is_some()
        });
        let target = now.unwrap_or_default() + 2;
        self.wait(CONVERGE, what, || {
            self.reconciles().is_some_and(|count| count >= target)
        });
    }
}

/// The AllowedIPs of peer `public_key` of `tunnel` in namespace `namespace`
/// as `wg show <tunnel> allowed-ips` prints them, if it runs and lists the
/// peer.
fn wg_allowed_ips(namespace: &str, tunnel: &str, public_key: &str) -> Option<BTreeSet<String>> {
    let output = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            namespace,
            "wg",
            "show",
            tunnel,
            "allowed-ips",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "<public key>\t<prefix> <prefix>..." per peer; "(none)" if empty.
    let line = text.lines().find(|line| line.starts_with(public_key))?;
    let (_, prefixes) = line.split_once('\t')?;
    Some(
        prefixes
            .split_whitespace()
            .filter(|prefix| *prefix != "(none)")
            .map(str::to_owned)
            .collect(),
    )
}

/// How many routes of wgd (protocol 200) namespace `namespace`'s main
/// table has, counted the way `ip route show` lists them.
fn count_kernel_routes(namespace: &str) -> usize {
    std::process::Command::new("ip")
        .args(["-n", namespace, "route", "show", "proto", "200"])
        .output()
        .map(|output| output.stdout.iter().filter(|byte| **byte == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn a_two_peer_tunnel_carries_each_learned_prefix_in_its_peers_allowed_ips() {
    let started = Instant::now();
    let lab = Hub::new().expect("the hub and two spokes");
    let [spoke1, spoke2] = &lab.spokes;
    println!("lab up with both handshakes in {:?}", started.elapsed());

    // The spokes' tunnels have one peer each (the hub): they filter nothing.
    // (`wg show all` would list every userspace tunnel on the machine:
    // wireguard-go's sockets are not per namespace.)
    for spoke in &lab.spokes {
        let shown = spoke
            .ns
            .check(&["wg", "show", &spoke.tunnel, "allowed-ips"])
            .expect("wg show on a spoke");
        let prefixes: BTreeSet<&str> = shown
            .split_whitespace()
            .filter(|word| word.contains('/') && !word.ends_with('='))
            .collect();
        assert_eq!(
            prefixes,
            BTreeSet::from(["0.0.0.0/0", "::/0"]),
            "a spoke's AllowedIPs: {shown}"
        );
    }

    // Before any route: each peer of the hub has only its tunnel address.
    lab.wait_allowed_ips(
        spoke1,
        &["10.254.0.2/32"],
        "spoke-1's configured AllowedIPs",
    );
    lab.wait_allowed_ips(
        spoke2,
        &["10.254.0.3/32"],
        "spoke-2's configured AllowedIPs",
    );
    assert!(
        !lab.ns.pings(spoke1.lan_host).expect("ping runs"),
        "{} answers before any route to it",
        spoke1.lan_host
    );

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");

    // A routing program learns each spoke's LAN with the spoke as nexthop.
    let added = runtime.block_on(async {
        lab.client()
            .await
            .add_routes(api::AddRoutesRequest {
                owner: OWNER.to_owned(),
                routes: vec![
                    route_via(spoke1.lan, spoke1.tunnel_address),
                    route_via(spoke2.lan, spoke2.tunnel_address),
                ],
            })
            .await
            .expect("AddRoutes")
            .into_inner()
    });
    assert_eq!(added.results.len(), 2, "{added:?}");
    for (result, spoke) in added.results.iter().zip(&lab.spokes) {
        assert_eq!(result.prefix, spoke.lan, "{added:?}");
        assert_eq!(
            result.state(),
            api::RouteState::Installed,
            "{result:?}\ndaemon log:\n{}",
            lab.daemon.log()
        );
    }

    // The kernel has both, each through its spoke on the one tunnel.
    lab.wait(CONVERGE, "both routes in the hub's kernel", || {
        lab.spokes.iter().all(|spoke| {
            lab.kernel_route_to(spoke)
                .is_some_and(|line| lab.is_route_through_spoke(&line, spoke))
        })
    });
    println!(
        "kernel routes (proto 200):\n{}",
        lab.kernel_routes().join("\n")
    );

    // Each spoke's peer carries its own LAN, and only its own.
    lab.wait_allowed_ips(
        spoke1,
        &["10.254.0.2/32", "192.168.1.0/24"],
        "192.168.1.0/24 in spoke-1's AllowedIPs",
    );
    lab.wait_allowed_ips(
        spoke2,
        &["10.254.0.3/32", "192.168.2.0/24"],
        "192.168.2.0/24 in spoke-2's AllowedIPs",
    );

    // Traffic: the hub reaches both LANs over the one interface (the
    // replies come from 192.168.x.1, which the hub's WireGuard accepts
    // only from the peer whose AllowedIPs hold that LAN).
    for spoke in &lab.spokes {
        lab.wait(
            CONVERGE,
            &format!("{} to answer ping from the hub", spoke.lan_host),
            || lab.ns.pings(spoke.lan_host).unwrap_or(false),
        );
    }

    // Withdraw spoke-2's LAN.
    let deleted = runtime.block_on(async {
        lab.client()
            .await
            .delete_routes(api::DeleteRoutesRequest {
                owner: OWNER.to_owned(),
                prefixes: vec![spoke2.lan.to_owned()],
            })
            .await
            .expect("DeleteRoutes")
            .into_inner()
    });
    assert_eq!(deleted.results.len(), 1, "{deleted:?}");
    assert_eq!(deleted.results[0].prefix, spoke2.lan, "{deleted:?}");
    assert_eq!(
        deleted.results[0].state(),
        api::RouteState::Withdrawn,
        "{deleted:?}"
    );
    lab.wait(CONVERGE, "192.168.2.0/24 to leave the hub's kernel", || {
        lab.kernel_route_to(spoke2).is_none()
    });
    lab.wait_allowed_ips(
        spoke2,
        &["10.254.0.3/32"],
        "192.168.2.0/24 to leave spoke-2's AllowedIPs",
    );
    lab.wait_allowed_ips(
        spoke1,
        &["10.254.0.2/32", "192.168.1.0/24"],
        "192.168.1.0/24 to stay in spoke-1's AllowedIPs",
    );
    let kept = lab.kernel_route_to(spoke1);
    assert!(
        kept.as_deref()
            .is_some_and(|line| lab.is_route_through_spoke(line, spoke1)),
        "192.168.1.0/24 left the kernel with the other route: {:?}",
        lab.kernel_routes()
    );
    assert!(
        !lab.ns.pings(spoke2.lan_host).expect("ping runs"),
        "{} still answers after its route was withdrawn",
        spoke2.lan_host
    );
    assert!(lab.ns.pings(spoke1.lan_host).expect("ping runs"));

    // Periodic reconciles (every second here) keep what the bridge added.
    lab.wait_for_a_full_reconcile("a periodic reconcile");
    lab.wait_allowed_ips(
        spoke1,
        &["10.254.0.2/32", "192.168.1.0/24"],
        "spoke-1's AllowedIPs after a periodic reconcile",
    );
    lab.wait_allowed_ips(
        spoke2,
        &["10.254.0.3/32"],
        "spoke-2's AllowedIPs after a periodic reconcile",
    );

    // So does the reconcile after a reload.
    sighup(&lab.ns, &lab.daemon).expect("SIGHUP");
    lab.wait(CONVERGE, "the daemon to reload on SIGHUP", || {
        lab.daemon.log().contains("SIGHUP")
    });
    lab.wait_for_a_full_reconcile("the reconcile after the reload");
    lab.wait_allowed_ips(
        spoke1,
        &["10.254.0.2/32", "192.168.1.0/24"],
        "spoke-1's AllowedIPs after SIGHUP",
    );
    lab.wait_allowed_ips(
        spoke2,
        &["10.254.0.3/32"],
        "spoke-2's AllowedIPs after SIGHUP",
    );
    assert!(
        lab.kernel_route_to(spoke1)
            .is_some_and(|line| lab.is_route_through_spoke(&line, spoke1)),
        "192.168.1.0/24 left the kernel after SIGHUP: {:?}",
        lab.kernel_routes()
    );
    assert!(lab.ns.pings(spoke1.lan_host).expect("ping runs"));

    // Nor did any of those reconciles take the prefixes out and put them
    // back in between two looks: none of them changed anything.
    let log = lab.daemon.log();
    let undone: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("reconciled"))
        .filter(|line| line.contains("\"periodic\"") || line.contains("\"reload\""))
        .collect();
    assert!(
        undone.is_empty(),
        "periodic or reload reconciles changed the tunnel:\n{}\ndaemon log:\n{log}",
        undone.join("\n")
    );
    println!("multi-peer bridge checks passed in {:?}", started.elapsed());
}

/// Routes per spoke in the restart test: enough that a rebuild of the
/// peers' AllowedIPs from scratch would be seen between two samples.
const ROUTES_PER_SPOKE: usize = 250;

/// The lowest counts a sampler saw, and how many samples it took.
#[derive(Debug, Default, Clone, Copy)]
struct Lowest {
    kernel: usize,
    allowed_ips: [usize; 2],
    samples: usize,
}

#[test]
fn a_killed_daemon_leaves_routes_and_each_peers_allowed_ips_in_place_while_its_successor_reclaims_them()
 {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use wgd_tests::bridge::{SessionClient, bulk_prefixes};

    let mut lab = Hub::new().expect("the hub and two spokes");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // A routing program's routes, half through each spoke.
    let prefixes = bulk_prefixes(2 * ROUTES_PER_SPOKE);
    let routes: Vec<api::Route> = prefixes
        .iter()
        .enumerate()
        .map(|(index, prefix)| route_via(prefix, lab.spokes[index % 2].tunnel_address))
        .collect();
    let announce = |socket: &std::path::Path| {
        runtime.block_on(SessionClient::announce(socket, OWNER, 60, routes.clone()))
    };
    let session = announce(&lab.socket).unwrap_or_else(|error| {
        panic!(
            "the first announcement: {error:#}\ndaemon log:\n{}",
            lab.daemon.log()
        )
    });

    let full = [ROUTES_PER_SPOKE + 1, ROUTES_PER_SPOKE + 1];
    let allowed_counts = |lab: &Hub| {
        let counts: Vec<usize> = lab
            .spokes
            .iter()
            .map(|spoke| {
                wg_allowed_ips(lab.ns.name(), &lab.tunnel, &spoke.public_key)
                    .map_or(0, |set| set.len())
            })
            .collect();
        [counts[0], counts[1]]
    };
    lab.wait(
        CONVERGE,
        "every route in the kernel and in its peer's AllowedIPs",
        || count_kernel_routes(lab.ns.name()) == prefixes.len() && allowed_counts(&lab) == full,
    );

    // Sample the kernel and both peers' AllowedIPs from before the kill
    // until the new daemon has re-claimed the routes and reconciled.
    let sampling = Arc::new(AtomicBool::new(true));
    let lowest = Arc::new(Mutex::new(Lowest {
        kernel: usize::MAX,
        allowed_ips: [usize::MAX; 2],
        samples: 0,
    }));
    let sampler = {
        let (sampling, lowest) = (sampling.clone(), lowest.clone());
        let (namespace, tunnel) = (lab.ns.name().to_owned(), lab.tunnel.clone());
        let keys: Vec<String> = lab.spokes.iter().map(|s| s.public_key.clone()).collect();
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                let kernel = count_kernel_routes(&namespace);
                let allowed: Vec<usize> = keys
                    .iter()
                    .map(|key| wg_allowed_ips(&namespace, &tunnel, key).map_or(0, |s| s.len()))
                    .collect();
                let mut lowest = lowest.lock().expect("the sampler's lock");
                lowest.kernel = lowest.kernel.min(kernel);
                for (low, seen) in lowest.allowed_ips.iter_mut().zip(allowed) {
                    *low = (*low).min(seen);
                }
                lowest.samples += 1;
            }
        })
    };

    lab.kill_and_restart();
    drop(session);
    let session = announce(&lab.socket).unwrap_or_else(|error| {
        panic!("the re-claim: {error:#}\ndaemon log:\n{}", lab.daemon.log())
    });
    assert_eq!(
        session.welcome.stale_routes,
        prefixes.len() as u64,
        "the new daemon did not adopt every route"
    );
    lab.wait_for_a_full_reconcile("a reconcile of the new daemon after the re-claim");
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("the sampler ran");
    let lowest = *lowest.lock().expect("the sampler's lock");
    println!("lowest counts during the restart: {lowest:?}");

    assert!(lowest.samples > 3, "too few samples to tell: {lowest:?}");
    assert_eq!(
        lowest.kernel,
        prefixes.len(),
        "the kernel lost routes during the restart\ndaemon log:\n{}",
        lab.daemon.log()
    );
    assert_eq!(
        lowest.allowed_ips,
        full,
        "a peer's AllowedIPs lost prefixes during the restart\ndaemon log:\n{}",
        lab.daemon.log()
    );
    // And after it, each spoke's LAN routes are in its own peer only.
    for (index, spoke) in lab.spokes.iter().enumerate() {
        let mut expected = vec![format!("{}/32", spoke.tunnel_address)];
        expected.extend(prefixes.iter().skip(index).step_by(2).cloned());
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        lab.wait_allowed_ips(
            spoke,
            &expected,
            "each spoke's routes in its peer after the restart",
        );
    }
    drop(session);
}
