//! The shipped labs, run by the real `wgd-lab` the way an operator would:
//! `up` (which waits for the lab's checks), `check`, `exec`, `down`, and
//! then nothing of the lab may be left: no namespace, no process that ran
//! in it, no state directory (which held every node's /run, hence its
//! sockets), no UAPI socket in the host's /var/run/wireguard.
//!
//! Needs root, and the `wgd` binary beside `wgd-lab` (`cargo build -p wgd
//! --bins`). Each lab runs under a unique `--name`, so tests (and two
//! copies of one lab) run side by side.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wgd_labs::{unique_name, wait_for};

fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("labs/runner is inside labs/")
        .to_owned()
}

fn wgd_lab(name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgd-lab"))
        .arg("--name")
        .arg(name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("wgd-lab runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A lab brought up under a unique name, taken down when dropped (also
/// when the test fails) if the test did not take it down itself.
struct Lab {
    file: PathBuf,
    name: String,
}

impl Lab {
    fn new(file: &str) -> Self {
        Self::at(&labs_dir().join(file))
    }

    fn at(file: &Path) -> Self {
        let stem = file
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.split('.').next())
            .unwrap_or("lab");
        let prefix: String = stem
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(4)
            .collect();
        Self {
            file: file.to_owned(),
            name: unique_name(&prefix),
        }
    }

    fn file(&self) -> &str {
        self.file.to_str().expect("a UTF-8 path")
    }

    fn run(&self, args: &[&str]) -> Output {
        wgd_lab(&self.name, args)
    }

    /// `wgd-lab <command> FILE <rest>`, which must succeed; its stdout.
    fn ok(&self, command: &str, rest: &[&str]) -> String {
        let mut args = vec![command, self.file()];
        args.extend_from_slice(rest);
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "wgd-lab {} failed: {}",
            args.join(" "),
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn state_dir(&self) -> PathBuf {
        Path::new("/run/wgd-lab").join(&self.name)
    }

    /// The lab's namespaces on the machine (made by anyone).
    fn namespaces(&self) -> Vec<String> {
        let listing = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        let prefix = format!("{}-", self.name);
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| name.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    }

    /// Every process in the lab's namespaces now.
    fn processes(&self) -> Vec<u32> {
        self.namespaces()
            .iter()
            .flat_map(|namespace| {
                let pids = Command::new("ip")
                    .args(["netns", "pids", namespace])
                    .output()
                    .expect("ip netns pids");
                String::from_utf8_lossy(&pids.stdout)
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    /// `down`, then what is left of the lab (nothing, if all is well) given
    /// the processes it had.
    fn down_and_leftovers(&self, processes: &[u32], sockets_before: &[String]) -> Vec<String> {
        // The lab's interfaces: a socket of one of these names in the
        // host's /var/run/wireguard after `down` would be the lab's (its
        // nodes keep wireguard-go's sockets in their own /run).
        let interfaces: Vec<String> = self
            .namespaces()
            .iter()
            .flat_map(|namespace| wgd_labs::host::namespace_interfaces(namespace))
            .collect();
        assert!(
            interfaces.len() > self.namespaces().len(),
            "the lab's interfaces could not be listed: {interfaces:?}"
        );
        self.ok("down", &[]);
        let mut left: Vec<String> = self
            .namespaces()
            .into_iter()
            .map(|namespace| format!("namespace {namespace}"))
            .collect();
        left.extend(
            processes
                .iter()
                .filter(|pid| wgd_labs::host::process_running(**pid))
                .map(|pid| format!("process {pid}")),
        );
        if self.state_dir().exists() {
            left.push(format!("directory {}", self.state_dir().display()));
        }
        left.extend(
            wireguard_sockets()
                .into_iter()
                .filter(|socket| {
                    !sockets_before.contains(socket)
                        && interfaces
                            .iter()
                            .any(|interface| *socket == format!("{interface}.sock"))
                })
                .map(|socket| format!("socket /var/run/wireguard/{socket}")),
        );
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.state_dir().exists() || !self.namespaces().is_empty() {
            let output = self.run(&["down", self.file()]);
            if !output.status.success() {
                eprintln!("cleanup: {}", text(&output));
            }
        }
    }
}

fn wireguard_sockets() -> Vec<String> {
    std::fs::read_dir("/var/run/wireguard")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a shipped lab through up, check and down, and asserts the report
/// and that nothing is left.
fn passes(file: &str, report_has: &[&str]) {
    passes_at(&labs_dir().join(file), report_has);
}

fn passes_at(file: &Path, report_has: &[&str]) {
    passes_then(file, report_has, |_| {});
}

/// As [`passes_at`], with `meanwhile` run on the lab after its checks
/// passed and before it is taken down.
fn passes_then(file: &Path, report_has: &[&str], meanwhile: impl FnOnce(&Lab)) {
    let lab = Lab::at(file);
    let sockets = wireguard_sockets();
    let report = lab.ok("up", &[]);
    for expected in report_has
        .iter()
        .chain(&["converged in", "picture: /run/wgd-lab/"])
    {
        assert!(
            report.contains(expected),
            "{expected:?} not in the report:\n{report}"
        );
    }
    assert!(!report.contains("[FAIL]"), "{report}");
    let svg = lab.state_dir().join(format!("{}.svg", lab.name));
    assert!(std::fs::read_to_string(&svg).is_ok_and(|svg| svg.contains("</svg>")));
    let again = lab.ok("check", &[]);
    assert!(again.contains("converged in"), "{again}");
    meanwhile(&lab);
    let processes = lab.processes();
    assert!(!processes.is_empty());
    let left = lab.down_and_leftovers(&processes, &sockets);
    assert!(left.is_empty(), "left behind: {left:?}");
    let again = lab.ok("down", &[]);
    assert!(again.contains("nothing to remove"), "{again}");
}

#[test]
fn seed_lab_passes_and_leaves_nothing() {
    passes(
        "seed.clab.yml",
        &[
            "[pass] ping quick -> 198.51.100.1: does not answer",
            "[pass] ping router -> 198.51.100.1: answers",
        ],
    );
}

#[test]
fn hub_spoke_lab_passes_and_leaves_nothing() {
    passes(
        "hub-spoke.clab.yml",
        &[
            "[pass] allowed_ips hub wg0 peer spoke1",
            "[pass] ping spoke1 from 192.168.1.1 -> 192.168.2.1: answers",
            "established",
            "192.168.2.0/24 via 10.254.0.1 dev wg0 proto wgd",
        ],
    );
}

#[test]
fn frr_bgp2_lab_passes_and_leaves_nothing() {
    passes(
        "frr-bgp2.clab.yml",
        &["[pass] ping host-a -> 192.168.2.10: answers", "proto bgp"],
    );
}

#[test]
fn frr_ospf3_lab_passes_and_leaves_nothing() {
    passes(
        "frr-ospf3.clab.yml",
        &["[pass] route site1 192.168.2.0/24 dev wg12 proto ospf"],
    );
}

#[test]
fn fpm_hub_lab_passes_and_leaves_nothing() {
    passes(
        "fpm-hub.clab.yml",
        &[
            "[pass] allowed_ips hub wg-hub peer spoke1",
            "proto wgd table 100",
        ],
    );
}

#[test]
fn bird_ospf2_lab_passes_and_leaves_nothing() {
    passes(
        "bird-ospf2.clab.yml",
        &["[pass] route site-a 192.168.2.0/24 dev wg-ab proto bird"],
    );
}

/// The peering lab (issue 12): wgd peers with BIRD and FRR the way
/// BGP-over-WireGuard communities do, one tunnel per peer and one session
/// over link-local addresses carrying both families. Past the lab's own
/// checks, what an operator of such a node relies on: a reload (SIGHUP)
/// changes nothing anyone can see, and after `kill -9` of wgd its peers
/// keep its routes (graceful restart) until it is back.
#[test]
fn peering_lab_rides_out_a_reload_and_a_crash_of_wgd() {
    passes_then(
        &labs_dir().join("peering.clab.yml"),
        &[
            "[pass] bgp wgd: 2 established",
            "[pass] route wgd 172.20.2.0/27 via fe80::2 dev dn42-bird proto wgd",
            "[pass] route frr 172.20.1.0/27 via fe80::1 dev dn42-wgd-f proto bgp",
            "[pass] ping bird from fd42:2::1 -> fd42:3::1: answers",
        ],
        |lab| {
            let exec = |node: &str, script: &str| lab.ok("exec", &[node, "--", "sh", "-c", script]);
            // What the peers and wgd's kernel show: bird's session (its
            // `since` changes when it flaps), FRR's count of sessions
            // established, wgd's routes and the hook-made addresses.
            let seen = || {
                let bird = exec("bird", "birdc show protocols wgd");
                let frr: serde_json::Value = serde_json::from_str(&exec(
                    "frr",
                    "vtysh -c 'show bgp neighbors fe80::1 json'",
                ))
                .expect("vtysh prints JSON");
                let routes = exec(
                    "wgd",
                    "ip -o -4 route show proto wgd; ip -o -6 route show proto wgd",
                );
                let addresses = exec("wgd", "ip -o address show dev dn42-bird");
                (
                    bird.lines().last().unwrap_or_default().to_owned(),
                    frr["fe80::1"]["connectionsEstablished"].clone(),
                    routes,
                    addresses,
                )
            };
            let reconciles = || {
                exec("wgd", "curl -s http://127.0.0.1:9586/metrics")
                    .lines()
                    .find_map(|line| line.strip_prefix("wgd_reconciles_total "))
                    .and_then(|value| value.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let wgd_daemon = || {
                lab.processes()
                    .into_iter()
                    .filter(|pid| {
                        std::fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|comm| comm.trim() == "wgd")
                    })
                    .collect::<Vec<u32>>()
            };
            let before = seen();
            assert!(before.1 == 1, "FRR's session flapped already: {before:?}");

            let reloads = reconciles();
            for pid in wgd_daemon() {
                exec("wgd", &format!("kill -HUP {pid}"));
            }
            wait_for(
                Duration::from_secs(20),
                "wgd's reconcile after SIGHUP",
                || reconciles() > reloads,
            )
            .expect("wgd reloaded");
            assert_eq!(
                seen(),
                before,
                "a reload changed what the peers or the kernel show"
            );

            // kill -9: the peers keep wgd's routes in their kernels while it
            // is gone (graceful restart), and wgd's own stay in its kernel.
            let daemon = wgd_daemon();
            assert_eq!(daemon.len(), 1, "one wgd daemon: {daemon:?}");
            exec("wgd", &format!("kill -9 {}", daemon[0]));
            let kept = |node: &str, prefix: &str| {
                let family = if prefix.contains(':') { "-6" } else { "-4" };
                !exec(node, &format!("ip -o {family} route show exact {prefix}"))
                    .trim()
                    .is_empty()
            };
            // The routes that are gone, with the kernel's table beside each.
            let missing = || {
                [
                    ("bird", "172.20.1.0/27"),
                    ("bird", "fd42:1::/48"),
                    ("frr", "172.20.1.0/27"),
                    ("frr", "fd42:1::/48"),
                    ("wgd", "172.20.2.0/27"),
                    ("wgd", "172.20.3.0/27"),
                ]
                .into_iter()
                .filter(|(node, prefix)| !kept(node, prefix))
                .map(|(node, prefix)| {
                    format!(
                        "{node} {prefix}:\n{}",
                        exec(node, "ip -o route; ip -o -6 route")
                    )
                })
                .collect::<Vec<String>>()
            };
            wait_for(
                Duration::from_secs(20),
                "bird to see the session go",
                || !exec("bird", "birdc show protocols wgd").contains("Established"),
            )
            .expect("bird noticed wgd's crash");
            let went = missing();
            assert!(went.is_empty(), "routes went with wgd's crash: {went:#?}");
            exec(
                "wgd",
                "setsid wgd run -c /etc/wgd/wgd.toml </dev/null >/run/wgd-restarted.log 2>&1 &",
            );
            // Every route stays while the sessions come back.
            let mut gone = Vec::new();
            wait_for(Duration::from_secs(60), "both sessions back", || {
                gone.extend(missing());
                let summary: serde_json::Value =
                    serde_json::from_str(&exec("wgd", "wgd bgp summary --json || true"))
                        .unwrap_or_default();
                summary["neighbors"].as_array().is_some_and(|neighbors| {
                    neighbors
                        .iter()
                        .filter(|neighbor| neighbor["state"] == "established")
                        .count()
                        == 2
                })
            })
            .unwrap_or_else(|error| {
                panic!("{error}\n{}", exec("wgd", "cat /run/wgd-restarted.log"))
            });
            assert!(gone.is_empty(), "routes went while wgd restarted: {gone:?}");
            let back = lab.ok("check", &[]);
            assert!(!back.contains("[FAIL]"), "{back}");
        },
    );
}

/// mesh3's sites are rendered by `wgd mesh` from `labs/mesh3/mesh.toml`;
/// keys and rendered files are never committed, so the lab runs from a
/// copy in a temporary directory, rendered there.
#[test]
fn mesh3_lab_rendered_by_wgd_mesh_passes_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let labs = labs_dir();
    std::fs::create_dir(dir.path().join("mesh3")).expect("mesh3/");
    for file in ["mesh3.clab.yml", "mesh3.checks.toml", "mesh3/mesh.toml"] {
        std::fs::copy(labs.join(file), dir.path().join(file)).expect("copied");
    }
    let wgd = Path::new(env!("CARGO_BIN_EXE_wgd-lab")).with_file_name("wgd");
    assert!(
        wgd.is_file(),
        "{} missing: `cargo build -p wgd --bins` first",
        wgd.display()
    );
    let mesh = dir.path().join("mesh3/mesh.toml");
    let mesh = mesh.to_str().expect("UTF-8");
    let mut steps = vec![vec!["mesh", "init", mesh]];
    for site in ["site1", "site2", "site3"] {
        steps.push(vec!["mesh", "render", mesh, site]);
    }
    for args in steps {
        let output = Command::new(&wgd).args(&args).output().expect("wgd runs");
        assert!(
            output.status.success(),
            "wgd {}: {}",
            args.join(" "),
            text(&output)
        );
    }
    // The tunnel between site1 and site2 is cut at the wan, as
    // scripts/lab does: traffic between them reroutes through site3 (the
    // checks of mesh3.cut.checks.toml), and comes back to the direct
    // tunnel when the cut is undone (the lab's own checks).
    std::fs::copy(
        labs.join("mesh3.cut.checks.toml"),
        dir.path().join("mesh3.cut.checks.toml"),
    )
    .expect("copied");
    let cut_checks = dir.path().join("mesh3.cut.checks.toml");
    let cut = |lab: &Lab, action: &str| {
        for (from, to) in [("198.18.1.2", "198.18.2.2"), ("198.18.2.2", "198.18.1.2")] {
            lab.ok(
                "exec",
                &[
                    "wan",
                    "--",
                    "ip",
                    "rule",
                    action,
                    "from",
                    from,
                    "to",
                    to,
                    "blackhole",
                ],
            );
        }
    };
    passes_then(
        &dir.path().join("mesh3.clab.yml"),
        &[
            "[pass] bgp site1: 2 established",
            "[pass] ping host1 -> 192.168.3.10: answers",
            "[pass] route site1 192.168.2.0/24 dev site1-site2 proto wgd",
        ],
        |lab| {
            let cut_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after the epoch")
                .as_secs_f64()
                .to_string();
            cut(lab, "add");
            let rerouted = lab.ok(
                "check",
                &[
                    "--checks",
                    cut_checks.to_str().expect("a UTF-8 path"),
                    "--since",
                    &cut_at,
                ],
            );
            for expected in [
                "[pass] bgp site1: 1 established",
                "[pass] route site1 192.168.2.0/24 dev site1-site3 proto wgd",
                "[pass] ping host1 -> 192.168.2.10: answers",
                // The reroute time, from the cut (no bound: not a timed test).
                "s after the change (--since)",
            ] {
                assert!(
                    rerouted.contains(expected),
                    "{expected:?} not in:\n{rerouted}"
                );
            }
            cut(lab, "del");
            let back = lab.ok("check", &[]);
            assert!(
                back.contains("[pass] route site1 192.168.2.0/24 dev site1-site2 proto wgd"),
                "{back}"
            );
        },
    );
}

#[test]
fn two_copies_of_a_lab_run_at_once() {
    let (one, two) = (Lab::new("seed.clab.yml"), Lab::new("seed.clab.yml"));
    let sockets = wireguard_sockets();
    one.ok("up", &["--no-check"]);
    two.ok("up", &[]);
    // Both have a wg0, each in its own namespace with its own /run.
    for lab in [&one, &two] {
        let links = lab.ok(
            "exec",
            &["router", "--", "ip", "-br", "link", "show", "wg0"],
        );
        assert!(links.starts_with("wg0"), "{links}");
    }
    let failed = one.run(&["exec", one.file(), "router", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7), "{}", text(&failed));
    let (p1, p2) = (one.processes(), two.processes());
    assert!(one.down_and_leftovers(&p1, &sockets).is_empty());
    // The other is untouched by the first one's `down`.
    assert!(two.ok("check", &[]).contains("converged in"));
    assert!(two.down_and_leftovers(&p2, &sockets).is_empty());
}

#[test]
fn down_after_up_was_killed_midway_leaves_nothing() {
    let lab = Lab::new("hub-spoke.clab.yml");
    let sockets = wireguard_sockets();
    let mut up = Command::new(env!("CARGO_BIN_EXE_wgd-lab"))
        .args(["--name", &lab.name, "up", lab.file(), "--no-check"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wgd-lab up starts");
    // Killed once it has made some nodes and started a daemon.
    let state = lab.state_dir().join("state.json");
    wait_for(
        Duration::from_secs(30),
        "up to start a node's daemon",
        || {
            std::fs::read(&state)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|state| {
                    state["nodes"]
                        .as_array()
                        .is_some_and(|nodes| nodes.iter().any(|node| node["daemon"].is_u64()))
                })
        },
    )
    .expect("a daemon recorded");
    up.kill().expect("kill -9");
    up.wait().expect("reaped");
    assert!(!lab.namespaces().is_empty());
    let processes = lab.processes();
    let left = lab.down_and_leftovers(&processes, &sockets);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A topology file in a temporary directory; `up` must refuse it, name
/// the fault, and make nothing.
fn refused(topology: &str, expected: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("bad.clab.yml");
    std::fs::write(&file, topology).expect("written");
    let name = unique_name("bad");
    let output = wgd_lab(&name, &["up", file.to_str().expect("UTF-8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    assert!(!Path::new("/run/wgd-lab").join(&name).exists());
}

const GOOD_NODES: &str =
    "name: bad\ntopology:\n  nodes:\n    a:\n      kind: linux\n    b:\n      kind: linux\n";

#[test]
fn an_unsupported_kind_is_refused_by_name() {
    refused(
        &format!("{GOOD_NODES}    r1:\n      kind: nokia_srlinux\n"),
        "bad.clab.yml: node \"r1\": kind \"nokia_srlinux\" is not supported by wgd-lab (supported: linux)",
    );
}

#[test]
fn a_link_to_an_unknown_node_is_refused_by_name() {
    refused(
        &format!(
            "{GOOD_NODES}  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth2\", \"r9:eth1\"]\n"
        ),
        "bad.clab.yml: link 2: endpoint \"r9:eth1\": no node \"r9\"",
    );
}

#[test]
fn a_duplicate_endpoint_is_refused_by_name() {
    refused(
        &format!(
            "{GOOD_NODES}  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth2\", \"b:eth2\"]\n    - endpoints: [\"a:eth1\", \"b:eth3\"]\n"
        ),
        "bad.clab.yml: endpoint \"a:eth1\" appears twice (links 1 and 3)",
    );
}

#[test]
fn an_unsupported_option_is_refused_by_name() {
    refused(
        &format!("{GOOD_NODES}      startup-config: x.cfg\n"),
        "bad.clab.yml: node \"b\": option \"startup-config\" is not supported by wgd-lab",
    );
}

/// Deletes a namespace made by hand when dropped.
struct Foreign(String);

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_namespace_that_is_not_the_labs_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("two.clab.yml");
    std::fs::write(&file, GOOD_NODES).expect("written");
    let file = file.to_str().expect("UTF-8");
    let name = unique_name("own");
    let foreign = Foreign(format!("{name}-b"));
    let made = Command::new("ip")
        .args(["netns", "add", &foreign.0])
        .status()
        .expect("ip netns add");
    assert!(made.success());
    let output = wgd_lab(&name, &["up", file, "--no-check"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("namespace {} exists already", foreign.0)),
        "{}",
        text(&output)
    );
    let down = wgd_lab(&name, &["down", file]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        Path::new("/run/netns").join(&foreign.0).exists(),
        "down deleted a namespace the lab did not make"
    );
    assert!(!Path::new("/run/netns").join(format!("{name}-a")).exists());
}

/// The lab's recorded state (`state.json`).
fn recorded(lab: &Lab) -> serde_json::Value {
    let bytes = std::fs::read(lab.state_dir().join("state.json")).expect("the lab's state");
    serde_json::from_slice(&bytes).expect("state.json parses")
}

#[test]
fn down_leaves_alone_a_namespace_of_the_labs_name_made_by_someone_else() {
    let lab = Lab::new("seed.clab.yml");
    lab.ok("up", &["--no-check"]);
    let namespace = format!("{}-router", lab.name);
    // The lab's router namespace goes, and someone else makes one of the
    // same name with a process of theirs in it.
    wgd_labs::host::check(&["ip", "netns", "del", &namespace]).expect("deleted");
    wgd_labs::host::check(&["ip", "netns", "add", &namespace]).expect("made again");
    let mut theirs = Command::new("ip")
        .args(["netns", "exec", &namespace, "sleep", "600"])
        .spawn()
        .expect("their process");
    let down = lab.run(&["down", lab.file()]);
    let said = text(&down);
    assert!(!down.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "namespace {namespace} is not the one this lab made"
        )),
        "{said}"
    );
    assert!(wgd_labs::host::namespace_exists(&namespace), "{said}");
    assert!(
        theirs.try_wait().expect("their process").is_none(),
        "theirs was killed"
    );
    // Theirs gone, `down` finishes the lab.
    theirs.kill().expect("killed");
    theirs.wait().expect("reaped");
    wgd_labs::host::check(&["ip", "netns", "del", &namespace]).expect("theirs deleted");
    lab.ok("down", &[]);
    assert!(lab.namespaces().is_empty() && !lab.state_dir().exists());
}

#[test]
fn a_node_whose_holder_is_gone_runs_nothing() {
    let lab = Lab::new("seed.clab.yml");
    lab.ok("up", &["--no-check"]);
    let state = recorded(&lab);
    let holder = state["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|node| node["name"] == "router"))
        .and_then(|node| node["holder"].as_u64())
        .expect("the router's holder");
    wgd_labs::host::check(&["kill", "-KILL", &holder.to_string()]).expect("killed");
    wait_for(Duration::from_secs(5), "the holder to go", || {
        !wgd_labs::host::process_running(u32::try_from(holder).unwrap_or(0))
    })
    .expect("gone");
    // Its pid could now be anyone's: the node refuses commands rather than
    // run them wherever that pid lives.
    let exec = lab.run(&["exec", lab.file(), "router", "--", "true"]);
    assert!(!exec.status.success(), "{}", text(&exec));
    assert!(
        text(&exec).contains("node \"router\" is not up"),
        "{}",
        text(&exec)
    );
    lab.ok("down", &[]);
}
