//! The toolkit against the real kernel: needs root (namespaces, veth).

use std::time::Duration;

use wgd_labs::{Error, Namespace, link, unique_name, wait_for};

fn namespace_exists(name: &str) -> bool {
    let listing = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

#[test]
fn a_namespace_exists_until_dropped_with_lo_up() -> Result<(), Error> {
    let node = Namespace::new("labs")?;
    let name = node.name().to_owned();
    assert!(namespace_exists(&name), "{name} not in `ip netns list`");
    assert!(node.sh("ip -br link show lo")?.contains("UNKNOWN"));
    assert_eq!(node.interfaces()?, ["lo"]);
    let dir = node.dir().to_owned();
    assert!(dir.is_dir());
    std::fs::write(dir.join("state"), "x").unwrap();
    drop(node);
    assert!(!namespace_exists(&name), "{name} left behind");
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

#[test]
fn sh_returns_stdout_or_the_exit_code_and_stderr() -> Result<(), Error> {
    let node = Namespace::new("labs")?;
    assert_eq!(node.sh("echo hello")?, "hello\n");
    let error = node.sh("echo oops >&2; exit 7").unwrap_err().to_string();
    assert!(
        error.contains(&format!("ip netns exec {}", node.name())),
        "{error}"
    );
    assert!(error.contains("exit code 7"), "{error}");
    assert!(error.contains("oops"), "{error}");
    let output = node.run(&["false"])?;
    assert_eq!(output.status.code(), Some(1));
    Ok(())
}

#[test]
fn linked_namespaces_reach_each_other() -> Result<(), Error> {
    let left = Namespace::new("left")?;
    let right = Namespace::new("right")?;
    let (left_if, right_if) = (unique_name("l"), unique_name("r"));
    link(&left, &left_if, &right, &right_if)?;
    left.add_address(&left_if, "198.18.0.1/24")?;
    right.add_address(&right_if, "198.18.0.2/24")?;
    right.add_stub("lan")?;
    right.add_address("lan", "198.18.1.1/24")?;
    assert!(
        !left.pings("198.18.1.1")?,
        "reached the LAN without a route"
    );
    left.add_route("198.18.1.0/24 via 198.18.0.2")?;
    assert!(left.pings("198.18.1.1")?, "no ping across the veth");
    assert!(left.interfaces()?.contains(&left_if));
    left.settle(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn dropping_a_namespace_ends_its_processes() -> Result<(), Error> {
    let node = Namespace::new("labs")?;
    let name = node.name().to_owned();
    // A process the toolkit does not own: started in the background by sh.
    let pid: u32 = node
        .sh("sleep 600 >/dev/null 2>&1 & echo $!")?
        .trim()
        .parse()
        .unwrap();
    let daemon = node.spawn(&["sleep", "600"])?;
    let daemon_pid = daemon.pid();
    assert!(wgd_labs::host::process_running(pid) && wgd_labs::host::process_running(daemon_pid));
    // The namespace goes first here, the daemon guard after it.
    drop(node);
    assert!(
        !wgd_labs::host::process_running(pid),
        "background process {pid} survived"
    );
    assert!(!namespace_exists(&name), "{name} left behind");
    drop(daemon);
    assert!(!wgd_labs::host::process_running(daemon_pid));
    Ok(())
}

#[test]
fn a_daemon_logs_and_stops_on_drop() -> Result<(), Error> {
    let node = Namespace::new("labs")?;
    let mut daemon = node.spawn(&["sh", "-c", "echo ready; echo warn >&2; exec sleep 600"])?;
    wait_for(Duration::from_secs(10), "the daemon to log", || {
        daemon.log().contains("ready") && daemon.log().contains("warn")
    })?;
    assert!(daemon.is_running());
    let pid = daemon.pid();
    let status = daemon.stop()?;
    assert!(!status.success(), "sleep ended by SIGTERM reports {status}");
    assert!(!wgd_labs::host::process_running(pid));
    Ok(())
}

#[test]
fn cleanup_runs_when_a_test_panics() {
    let mut name = String::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let node = Namespace::new("panic").unwrap();
        name = node.name().to_owned();
        let _daemon = node.spawn(&["sleep", "600"]).unwrap();
        panic!("deliberate");
    }));
    assert!(outcome.is_err());
    assert!(!name.is_empty());
    assert!(!namespace_exists(&name), "{name} left behind after a panic");
}
