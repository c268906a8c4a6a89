//! One daemon, many wg-quick files: `[daemon] include = ["peers/*.conf"]`
//! in wgd.toml. `wgd run` brings up a tunnel per file, named after it;
//! SIGHUP picks up an added file, a broken one (reported with its file and
//! line, its tunnel kept as it was) and a removed one (its tunnel goes),
//! while the other tunnels stay as they are. Checked in the kernel: `ip
//! link` for the interfaces, `wg show` for what their devices hold.

use std::path::PathBuf;
use std::time::Duration;

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::{KeyPair, Wgd, ifindex, rewrite_config, sighup};

const SETTLE: Duration = Duration::from_secs(20);

struct Node {
    wgd: Wgd,
    namespace: Namespace,
    /// The folder the include pattern names.
    peers: PathBuf,
    config: String,
    /// One peer key for every file: the test looks at listen ports.
    peer: KeyPair,
}

impl Node {
    fn new() -> Self {
        let wgd = Wgd::new().expect("wgd");
        let namespace = Namespace::new("in").expect("namespace");
        let peers = namespace.dir().join("peers");
        std::fs::create_dir(&peers).expect("peers folder");
        let config = rewrite_config(
            namespace.dir(),
            "wgd.toml",
            &format!(
                "[daemon]\napi = \"unix:{}/wgd.sock\"\nreconcile_interval = 300\n\
                 include = [\"peers/*.conf\"]\n",
                namespace.dir().display()
            ),
        )
        .expect("wgd.toml");
        Self {
            wgd,
            namespace,
            peers,
            config,
            peer: KeyPair::generate().expect("keys"),
        }
    }

    /// Writes `peers/<tunnel>.conf`: one peering listening on `port`.
    fn write(&self, tunnel: &str, port: &str) {
        let keys = KeyPair::generate().expect("keys");
        let text = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {port}\nAddress = 172.20.1.1/32 peer 172.20.9.5/32, fd42:1::1/128 peer fd42:9::5/128, fe80::1/64\n\
             Table = off\n[Peer]\nPublicKey = {}\nAllowedIPs = 172.16.0.0/12\n",
            keys.private, self.peer.public
        );
        rewrite_config(&self.peers, &format!("{tunnel}.conf"), &text).expect("peer file");
    }

    /// `wg show <tunnel> listen-port`, or `None` without the device.
    fn listen_port(&self, tunnel: &str) -> Option<String> {
        self.namespace
            .check(&["wg", "show", tunnel, "listen-port"])
            .ok()
            .map(|text| text.trim().to_owned())
    }

    fn wait(&self, daemon: &Daemon, what: &str, condition: impl FnMut() -> bool) {
        wait_for(SETTLE, what, condition).unwrap_or_else(|error| {
            let links = self
                .namespace
                .check(&["ip", "-o", "link"])
                .unwrap_or_default();
            panic!("{error}\nlinks:\n{links}\nwgd:\n{}", daemon.log())
        });
    }
}

#[test]
fn one_daemon_takes_in_many_wg_quick_files() {
    let node = Node::new();
    let (one, two, three) = (unique_name("inc"), unique_name("inc"), unique_name("inc"));
    node.write(&one, "51931");
    node.write(&two, "51932");
    let mut daemon = node
        .wgd
        .spawn(&node.namespace, &["run", "-c", &node.config])
        .expect("wgd run");
    node.wait(&daemon, "a tunnel per included file", || {
        node.listen_port(&one).as_deref() == Some("51931")
            && node.listen_port(&two).as_deref() == Some("51932")
    });
    let address = node
        .namespace
        .check(&["ip", "-o", "address", "show", "dev", &one])
        .unwrap_or_default();
    assert!(
        address.contains("inet 172.20.1.1 peer 172.20.9.5/32"),
        "{address}"
    );
    let two_index = ifindex(&node.namespace, &two);

    // A third file.
    node.write(&three, "51933");
    sighup(&node.namespace, &daemon).expect("SIGHUP");
    node.wait(&daemon, "the added file's tunnel", || {
        node.listen_port(&three).as_deref() == Some("51933")
    });

    // A broken file: reported with its file and line, its tunnel kept.
    node.write(&two, "5193x");
    sighup(&node.namespace, &daemon).expect("SIGHUP");
    let broken = format!("{}/{two}.conf:3", node.peers.display());
    node.wait(&daemon, "the broken file to be reported", || {
        daemon.log().contains(&broken)
    });
    let log = daemon.log();
    assert!(log.contains("keeps the last good version"), "{log}");
    assert!(log.contains("ListenPort \"5193x\": not a number"), "{log}");

    // wgd reads its addresses back as it wrote them: the reconciles since
    // added none again.
    let added = daemon.log().matches(&format!("{one}: add address")).count();
    assert_eq!(added, 3, "{}", daemon.log());

    // A removed file: its tunnel goes, the others stay as they are.
    std::fs::remove_file(node.peers.join(format!("{one}.conf"))).expect("remove a file");
    sighup(&node.namespace, &daemon).expect("SIGHUP");
    node.wait(&daemon, "the removed file's tunnel to go", || {
        ifindex(&node.namespace, &one).is_none()
    });
    assert_eq!(node.listen_port(&two).as_deref(), Some("51932"));
    assert_eq!(
        ifindex(&node.namespace, &two),
        two_index,
        "{}",
        daemon.log()
    );
    assert_eq!(node.listen_port(&three).as_deref(), Some("51933"));

    // Mended, the file is taken as it is now.
    node.write(&two, "51934");
    sighup(&node.namespace, &daemon).expect("SIGHUP");
    node.wait(&daemon, "the mended file's listen port", || {
        node.listen_port(&two).as_deref() == Some("51934")
    });

    daemon.stop().expect("stop wgd run");
    node.wgd
        .run(&node.namespace, &["down", &node.config])
        .expect("wgd down");
    for tunnel in [&two, &three] {
        assert!(ifindex(&node.namespace, tunnel).is_none(), "{tunnel} left");
    }
}
