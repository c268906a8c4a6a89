//! A hub with one tunnel and two spokes: the planner's promises on a real
//! host. Applying twice does nothing the second time; changing one peer
//! changes only that peer (same interface, the other peer's session kept);
//! a tunnel that leaves the file is removed; an interface wgd did not
//! create is refused and left as it was.

use std::time::Duration;

use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::{KeyPair, Wgd, ifindex, rewrite_config, underlay};

/// `wg show IF latest-handshakes` for one peer: seconds since the epoch.
fn handshake_time(namespace: &Namespace, tunnel: &str, public_key: &str) -> u64 {
    let listing = namespace
        .check(&["wg", "show", tunnel, "latest-handshakes"])
        .expect("wg show");
    listing
        .lines()
        .find_map(|line| {
            let (key, time) = line.split_once('\t')?;
            (key == public_key).then(|| time.trim().parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("peer {public_key} not in `wg show {tunnel}`:\n{listing}"))
}

struct Hub {
    hub: Namespace,
    spokes: Vec<(Namespace, String, KeyPair, String)>,
    tunnel: String,
    keys: KeyPair,
    dir: tempfile::TempDir,
    wgd: Wgd,
}

impl Hub {
    /// The hub's wgd.toml; `second_keepalive` lets a test change one peer.
    fn hub_config(&self, second_keepalive: u16, extra_prefix: Option<&str>) -> String {
        let mut text = format!(
            "[[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = 51820\naddress = [\"10.77.0.1/24\"]\n",
            self.tunnel, self.keys.private
        );
        for (index, (_, _, keys, _)) in self.spokes.iter().enumerate() {
            let host = index + 2;
            let keepalive = if index == 1 { second_keepalive } else { 25 };
            let mut allowed = vec![format!("\"10.77.0.{host}/32\"")];
            if index == 1
                && let Some(prefix) = extra_prefix
            {
                allowed.push(format!("\"{prefix}\""));
            }
            text.push_str(&format!(
                "\n[[tunnel.peer]]\nname = \"spoke{index}\"\npublic_key = \"{}\"\nendpoint = \"198.18.{host}.2:51820\"\npersistent_keepalive = {keepalive}\nallowed_ips = [{}]\n",
                keys.public,
                allowed.join(", ")
            ));
        }
        text
    }

    /// Writes (or rewrites) `name` in the test's directory; its path.
    fn write(&self, name: &str, text: &str) -> String {
        rewrite_config(self.dir.path(), name, text).expect("write config")
    }

    fn new() -> Self {
        let wgd = Wgd::new().expect("wgd");
        let hub = Namespace::new("hub").expect("hub namespace");
        let keys = KeyPair::generate().expect("keys");
        let tunnel = unique_name("wgh");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spokes = Vec::new();
        for host in 2..4 {
            let spoke = Namespace::new("spoke").expect("spoke namespace");
            let (hub_address, spoke_address) =
                (format!("198.18.{host}.1/24"), format!("198.18.{host}.2/24"));
            underlay(&hub, &hub_address, &spoke, &spoke_address).expect("veth");
            spokes.push((
                spoke,
                unique_name("wgs"),
                KeyPair::generate().expect("keys"),
                String::new(),
            ));
        }
        let mut this = Hub {
            hub,
            spokes,
            tunnel,
            keys,
            dir,
            wgd,
        };
        for index in 0..this.spokes.len() {
            let host = index + 2;
            let (_, name, keys, _) = &this.spokes[index];
            let text = format!(
                "[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{}\"\nlisten_port = 51820\naddress = [\"10.77.0.{host}/24\"]\n\n[[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"198.18.{host}.1:51820\"\npersistent_keepalive = 25\n",
                keys.private, this.keys.public
            );
            let path = this.write(&format!("{name}.toml"), &text);
            this.wgd
                .run(&this.spokes[index].0, &["up", &path])
                .expect("wgd up on a spoke");
            this.spokes[index].3 = path;
        }
        this
    }

    /// `wg show <the hub's tunnel> <what>`.
    fn wg_show(&self, what: &str) -> String {
        let listing = self.hub.check(&["wg", "show", &self.tunnel, what]);
        listing.unwrap_or_else(|error| panic!("{error}"))
    }

    fn path(&self) -> String {
        let path = self.dir.path().join("hub.toml");
        path.to_str().expect("a UTF-8 path").to_owned()
    }

    fn up(&self, text: &str) -> String {
        let path = self.write("hub.toml", text);
        self.wgd
            .run(&self.hub, &["up", &path])
            .expect("wgd up on the hub")
    }

    fn wait_handshakes(&self) {
        for (index, (spoke, ..)) in self.spokes.iter().enumerate() {
            let _ = spoke.run(&["ping", "-c", "1", "-W", "1", "10.77.0.1"]);
            let key = &self.spokes[index].2.public;
            wait_for(
                Duration::from_secs(20),
                "a handshake with each spoke at the hub",
                || {
                    self.wgd
                        .status(&self.hub)
                        .ok()
                        .and_then(|status| {
                            status
                                .tunnel(&self.tunnel)
                                .and_then(|t| t.peer(key))
                                .cloned()
                        })
                        .is_some_and(|peer| peer.latest_handshake_age_seconds.is_some())
                },
            )
            .expect("handshake");
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.wgd.run(&self.hub, &["down", &self.path()]);
        for (spoke, _, _, path) in &self.spokes {
            let _ = self.wgd.run(spoke, &["down", path]);
        }
    }
}

#[test]
fn applying_twice_does_nothing_and_one_peer_change_keeps_the_other_session() {
    let hub = Hub::new();
    let first = hub.up(&hub.hub_config(25, None));
    assert!(
        first.contains("create interface"),
        "first `wgd up` printed:\n{first}"
    );
    hub.wait_handshakes();

    let again = hub.up(&hub.hub_config(25, None));
    assert_eq!(again.trim(), "nothing to do: the host matches the config");

    let index_before = ifindex(&hub.hub, &hub.tunnel).expect("the hub's tunnel");
    let first_peer = hub.spokes[0].2.public.clone();
    let second_peer = hub.spokes[1].2.public.clone();
    let handshake_before = handshake_time(&hub.hub, &hub.tunnel, &first_peer);

    let dry = {
        let path = hub.write("hub.toml", &hub.hub_config(15, Some("192.168.77.0/24")));
        hub.wgd
            .run(&hub.hub, &["up", "--dry-run", &path])
            .expect("dry run")
    };
    assert!(dry.starts_with("[dry-run]"), "{dry}");
    let listing = hub.wg_show("allowed-ips");
    assert!(
        !listing.contains("192.168.77.0/24"),
        "--dry-run changed the device:\n{listing}"
    );

    let changed = hub.up(&hub.hub_config(15, Some("192.168.77.0/24")));
    let lines: Vec<&str> = changed.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one peer changed, but `wgd up` did:\n{changed}"
    );
    assert!(
        lines[0].contains(&format!("update peer {second_peer}")),
        "{changed}"
    );
    assert!(
        lines[0].contains("persistent-keepalive, allowed-ips"),
        "{changed}"
    );

    assert_eq!(
        ifindex(&hub.hub, &hub.tunnel),
        Some(index_before),
        "the interface was re-created"
    );
    assert_eq!(
        handshake_time(&hub.hub, &hub.tunnel, &first_peer),
        handshake_before,
        "the untouched peer's session was reset"
    );
    assert!(
        hub.spokes[0].0.pings("10.77.0.1").unwrap(),
        "the untouched peer lost the tunnel"
    );
    let listing = hub.wg_show("allowed-ips");
    assert!(
        listing.contains("192.168.77.0/24"),
        "new AllowedIPs not on the device:\n{listing}"
    );
    let keepalive = hub.wg_show("persistent-keepalive");
    assert!(
        keepalive.contains(&format!("{second_peer}\t15")),
        "{keepalive}"
    );

    assert_eq!(
        hub.up(&hub.hub_config(15, Some("192.168.77.0/24"))).trim(),
        "nothing to do: the host matches the config"
    );
}

#[test]
fn a_tunnel_removed_from_the_file_goes_and_a_foreign_interface_stays() {
    let w = Wgd::new().unwrap();
    let node = Namespace::new("rm").expect("namespace");
    let dir = tempfile::tempdir().unwrap();
    let (kept, removed, foreign) = (unique_name("wgk"), unique_name("wgr"), unique_name("wgf"));
    let key = KeyPair::generate().unwrap().private;
    let tunnel = |name: &str, port: u16| {
        format!("[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{key}\"\nlisten_port = {port}\n")
    };
    let both = format!("{}\n{}", tunnel(&kept, 51001), tunnel(&removed, 51002));
    let path = rewrite_config(dir.path(), "two.toml", &both).unwrap();
    w.run(&node, &["up", &path]).expect("wgd up");
    assert!(node.interfaces().unwrap().contains(&removed));

    rewrite_config(dir.path(), "two.toml", &tunnel(&kept, 51001)).unwrap();
    let printed = w.run(&node, &["up", &path]).expect("wgd up");
    assert_eq!(printed.trim(), format!("[#] {removed}: delete interface"));
    let interfaces = node.interfaces().unwrap();
    assert!(
        interfaces.contains(&kept) && !interfaces.contains(&removed),
        "{interfaces:?}"
    );

    // An interface someone else made, with a name the config now claims.
    node.check(&["wireguard-go", &foreign])
        .expect("wireguard-go by hand");
    node.add_address(&foreign, "10.99.0.1/24").unwrap();
    let claim = rewrite_config(dir.path(), "claim.toml", &tunnel(&foreign, 51003)).unwrap();
    let error = w.run(&node, &["up", &claim]).expect_err("wgd must refuse");
    assert!(
        error.to_string().contains(&format!(
            "interface {foreign} exists and was not created by wgd"
        )),
        "{error}"
    );
    let addresses = node
        .check(&["ip", "-o", "addr", "show", "dev", &foreign])
        .unwrap();
    assert!(
        addresses.contains("10.99.0.1/24"),
        "the foreign interface was changed:\n{addresses}"
    );
    let error = w
        .run(&node, &["down", &foreign])
        .expect_err("wgd must not take down what it did not make");
    assert!(
        error
            .to_string()
            .contains("no tunnel that wgd created here matches"),
        "{error}"
    );
    assert!(node.interfaces().unwrap().contains(&foreign));

    w.run(&node, &["down", &path]).expect("wgd down");
    assert!(!node.interfaces().unwrap().contains(&kept));
    let _ = std::fs::remove_file(format!("/var/run/wireguard/{foreign}.sock"));
}
