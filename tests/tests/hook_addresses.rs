//! A dn42-style peering written as its community's guide writes it: a
//! wg-quick file whose `PostUp` hooks add a point-to-point IPv4 address and
//! an `fe80::` address, with `Table = off`. wgd must never remove what the
//! hooks added: not on a second `wgd up`, not on the reconciles of a daemon
//! that takes the file in (SIGHUP and periodic; it takes the running tunnel
//! over, or makes it itself), and `wgd down` takes the tunnel away whole. The
//! interface carries no IPv6 address of the kernel's making, so the
//! configured `fe80::1` is its only link-local one, and the far ends
//! answer through the tunnel over both.

use std::time::Duration;

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::{KeyPair, Wgd, rewrite_config, scrape_metrics, sighup, underlay};

const SETTLE: Duration = Duration::from_secs(20);
const METRICS: &str = "127.0.0.1:9587";

/// The file: `this` is the side's own /32 and link-local, `other`
/// the far end's, `port` its own and `endpoint` the other's.
fn peering(
    keys: &KeyPair,
    peer: &KeyPair,
    port: u16,
    endpoint: &str,
    (this, other): (&str, &str),
    (this6, _): (&str, &str),
) -> String {
    format!(
        "[Interface]\n\
         PrivateKey = {private}\n\
         ListenPort = {port}\n\
         PostUp = ip addr add dev %i {this}/32 peer {other}/32\n\
         PostUp = ip addr add dev %i {this6}/64\n\
         Table = off\n\
         [Peer]\n\
         PublicKey = {public}\n\
         Endpoint = {endpoint}\n\
         AllowedIPs = 172.16.0.0/12, 10.0.0.0/8, fd00::/8, fe80::/10\n",
        private = keys.private,
        public = peer.public,
    )
}

struct Peering {
    wgd: Wgd,
    a: Namespace,
    b: Namespace,
    a_tunnel: String,
    a_file: String,
    b_file: String,
    /// A's wgd.toml for the daemon, taking in A's file.
    daemon_config: String,
}

impl Peering {
    fn new() -> Self {
        let wgd = Wgd::new().expect("wgd");
        let a = Namespace::new("ha").expect("namespace");
        let b = Namespace::new("hb").expect("namespace");
        // A host that makes interfaces without IPv6: wgd turns it on for a
        // tunnel that has (or whose hooks add) IPv6 addresses.
        a.check(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .expect("sysctl");
        underlay(&a, "198.51.100.1/24", &b, "198.51.100.2/24").expect("veth");
        let (a_keys, b_keys) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let (a_tunnel, b_tunnel) = (unique_name("dn42b"), unique_name("dn42a"));
        let a_text = peering(
            &a_keys,
            &b_keys,
            51921,
            "198.51.100.2:51922",
            ("172.20.1.1", "172.20.2.1"),
            ("fe80::1", "fe80::2"),
        );
        let b_text = peering(
            &b_keys,
            &a_keys,
            51922,
            "198.51.100.1:51921",
            ("172.20.2.1", "172.20.1.1"),
            ("fe80::2", "fe80::1"),
        );
        let a_file =
            rewrite_config(a.dir(), &format!("{a_tunnel}.conf"), &a_text).expect("A's file");
        let b_file =
            rewrite_config(b.dir(), &format!("{b_tunnel}.conf"), &b_text).expect("B's file");
        let daemon_config = rewrite_config(
            a.dir(),
            "wgd.toml",
            &format!(
                "[daemon]\napi = \"unix:{}/wgd.sock\"\nmetrics = \"{METRICS}\"\n\
                 reconcile_interval = 1\ninclude = [\"{a_tunnel}.conf\"]\n",
                a.dir().display()
            ),
        )
        .expect("A's wgd.toml");
        Self {
            wgd,
            a,
            b,
            a_tunnel,
            a_file,
            b_file,
            daemon_config,
        }
    }

    /// `ip -o address show dev <A's tunnel>`, one address a line.
    fn a_addresses(&self) -> String {
        self.a
            .check(&["ip", "-o", "address", "show", "dev", &self.a_tunnel])
            .unwrap_or_default()
    }

    /// Both hook addresses on A's tunnel, and `fe80::1` its only
    /// link-local address (no address of the kernel's making).
    fn assert_hook_addresses(&self, when: &str) {
        let text = self.a_addresses();
        assert!(
            text.contains("inet 172.20.1.1 peer 172.20.2.1/32"),
            "{when}: the point-to-point address is gone:\n{text}"
        );
        let link_local: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("inet6 fe80::"))
            .collect();
        assert_eq!(link_local.len(), 1, "{when}: link-local addresses:\n{text}");
        assert!(
            link_local[0].contains("inet6 fe80::1/64"),
            "{when}: link-local addresses:\n{text}"
        );
    }

    /// A reaches B's /32 and B's link-local address through the tunnel.
    fn assert_far_ends_answer(&self) {
        let scoped = format!("fe80::2%{}", self.a_tunnel);
        wait_for(SETTLE, "B to answer over the tunnel", || {
            let pings = |target: &str| {
                self.a
                    .run(&["ping", "-c", "1", "-W", "1", target])
                    .is_ok_and(|output| output.status.success())
            };
            pings("172.20.2.1") && pings(&scoped)
        })
        .unwrap_or_else(|error| panic!("{error}\nA:\n{}", self.a_addresses()));
    }

    /// `wgd run` with A's wgd.toml, until it has reconciled after a
    /// SIGHUP and after a periodic tick, with the hooks' addresses intact
    /// and the far ends answering; `when` names the case in messages.
    fn run_daemon(&self, when: &str) -> Daemon {
        let daemon = self
            .wgd
            .spawn(&self.a, &["run", "-c", &self.daemon_config])
            .expect("wgd run");
        let fail = |error: wgd_labs::Error| panic!("{when}: {error}\n{}", daemon.log());
        wait_for(SETTLE, "the tunnel and its hooks' addresses", || {
            self.a_addresses().contains("inet6 fe80::1/64")
        })
        .unwrap_or_else(fail);
        wait_for(SETTLE, "the metrics endpoint", || {
            self.reconciles().is_some()
        })
        .unwrap_or_else(fail);
        sighup(&self.a, &daemon).expect("SIGHUP");
        // Reconciles run one after another: two past now, one whole one ran
        // after the SIGHUP was sent; a third is a periodic one.
        let target = self.reconciles().unwrap_or_default() + 3;
        wait_for(SETTLE, "reconciles after the SIGHUP", || {
            self.reconciles().is_some_and(|count| count >= target)
        })
        .unwrap_or_else(fail);
        self.assert_hook_addresses(when);
        self.assert_far_ends_answer();
        // Status (through the daemon's API) shows the far end of the
        // point-to-point address.
        let status = self.wgd.status(&self.a).expect("wgd status");
        let tunnel = status
            .tunnel(&self.a_tunnel)
            .expect("A's tunnel in the status");
        assert_eq!(
            tunnel
                .peer_addresses
                .get("172.20.1.1/32")
                .map(String::as_str),
            Some("172.20.2.1/32"),
            "{when}: {tunnel:?}"
        );
        assert!(
            tunnel.addresses.contains(&"fe80::1/64".to_owned()),
            "{when}: {tunnel:?}"
        );
        let log = daemon.log();
        assert!(!log.contains("remove address"), "{when}: {log}");
        daemon
    }

    /// Stops the daemon (the tunnel stays), then `wgd down` of its config
    /// takes the whole interface, hooks' addresses and all.
    fn stop_and_down(&self, mut daemon: Daemon) {
        daemon.stop().expect("stop wgd run");
        assert!(self.a_addresses().contains("inet6 fe80::1/64"));
        self.wgd
            .run(&self.a, &["down", &self.daemon_config])
            .expect("wgd down");
        assert!(self.a_addresses().is_empty(), "{}", self.a_addresses());
    }

    fn reconciles(&self) -> Option<u64> {
        scrape_metrics(&self.a, METRICS)
            .lines()
            .find_map(|line| line.strip_prefix("wgd_reconciles_total "))
            .and_then(|value| value.trim().parse().ok())
    }
}

#[test]
fn addresses_that_hooks_add_are_never_removed() {
    let lab = Peering::new();
    lab.wgd
        .run(&lab.b, &["up", &lab.b_file])
        .expect("wgd up in B");

    // Up, and up again: the second one has nothing to do.
    let first = lab
        .wgd
        .output(&lab.a, &["up", &lab.a_file])
        .expect("wgd up");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    lab.assert_hook_addresses("after the first up");
    lab.assert_far_ends_answer();
    let second = lab
        .wgd
        .output(&lab.a, &["up", &lab.a_file])
        .expect("wgd up");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(second.status.success(), "{said}");
    assert!(!said.contains("remove address"), "{said}");
    lab.assert_hook_addresses("after the second up");

    // A tunnel made before wgd turned the kernel's IPv6 address generation
    // off: cycled, it has a random link-local address beside the hook's.
    let tunnel = lab.a_tunnel.as_str();
    for step in [
        vec!["ip", "link", "set", "dev", tunnel, "addrgenmode", "random"],
        vec!["ip", "link", "set", "dev", tunnel, "down"],
        vec!["ip", "link", "set", "dev", tunnel, "up"],
        // IPv6 addresses go with the link; the hook's comes back.
        vec!["ip", "address", "add", "dev", tunnel, "fe80::1/64"],
    ] {
        lab.a.check(&step).expect("make an older tunnel");
    }
    wait_for(SETTLE, "the kernel's own link-local address", || {
        lab.a_addresses().contains("stable-privacy")
    })
    .unwrap_or_else(|error| panic!("{error}\n{}", lab.a_addresses()));
    let third = lab
        .wgd
        .output(&lab.a, &["up", &lab.a_file])
        .expect("wgd up");
    let said = String::from_utf8_lossy(&third.stdout).into_owned();
    assert!(third.status.success(), "{said}");
    assert!(
        said.contains("set addrgenmode none, remove the kernel's address fe80::"),
        "{said}"
    );
    lab.assert_hook_addresses("after an up over an older tunnel");
    let link = lab
        .a
        .check(&["ip", "-d", "link", "show", "dev", tunnel])
        .unwrap_or_default();
    assert!(link.contains("addrgenmode none"), "{link}");

    // The daemon, whose wgd.toml takes the file in, takes the tunnel over
    // and reconciles it (SIGHUP, and every second): the hooks' addresses
    // stay.
    let daemon = lab.run_daemon("taken over");
    assert!(daemon.log().contains("take over from"), "{}", daemon.log());
    lab.stop_and_down(daemon);

    // The daemon making the tunnel itself (the hooks run), the same.
    let daemon = lab.run_daemon("made by the daemon");
    assert!(!daemon.log().contains("take over from"), "{}", daemon.log());
    lab.stop_and_down(daemon);

    lab.wgd
        .run(&lab.b, &["down", &lab.b_file])
        .expect("wgd down in B");
}
