//! Commands run on the host, and namespaces known only by name.
//!
//! A [`Namespace`](crate::Namespace) lives as long as the value that made
//! it. The lab runner's namespaces outlive the process that made them (a
//! lab stays up from `wgd-lab up` to `wgd-lab down`), so it drives them by
//! name: it runs commands with [`check`] and [`output`] and removes a
//! namespace with [`delete_namespace`]; a `Namespace` dropped goes the
//! same way ([`stop_processes`], then `ip netns del`).

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::Result;
use crate::command;

/// How long processes left in a namespace get to exit after SIGTERM, and
/// then after SIGKILL, before the namespace is deleted regardless.
const KILL_DEADLINE: Duration = Duration::from_secs(3);

/// wireguard-go's UAPI sockets, one per interface, shared by all namespaces.
const WIREGUARD_SOCKETS: &str = "/var/run/wireguard";

/// Runs `argv` on the host and returns its output, whatever its exit
/// status. Fails only if it cannot be run or does not finish.
pub fn output(argv: &[&str]) -> Result<Output> {
    command::output(argv)
}

/// Runs `argv` on the host; its stdout if it exits with 0, otherwise an
/// error with the command, exit status, stderr and stdout.
pub fn check(argv: &[&str]) -> Result<String> {
    command::check(argv)
}

/// `argv` as one would type it in a shell, for messages.
pub fn command_line(argv: &[&str]) -> String {
    command::display(argv)
}

/// Whether process `pid` runs. A zombie (exited, not yet reaped) does
/// not: it only waits for its parent.
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) S ...": the state follows the last ')'.
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Whether `ip netns list` has `name`.
pub fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The processes inside namespace `name` (none if it does not exist).
pub fn namespace_pids(name: &str) -> Vec<u32> {
    check(&["ip", "netns", "pids", name])
        .map(|pids| {
            pids.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops every process in namespace `name` (SIGTERM, then SIGKILL, each
/// with a deadline); the processes that survived, if any.
pub fn stop_processes(name: &str) -> Vec<u32> {
    let mut seen = Vec::new();
    if signal_all(name, "-TERM", &mut seen) || signal_all(name, "-KILL", &mut seen) {
        Vec::new()
    } else {
        namespace_pids(name)
    }
}

/// Stops every process in namespace `name` and deletes it, which removes
/// every interface in it. Returns the processes that survived, if any (the
/// namespace is deleted regardless).
pub fn delete_namespace(name: &str) -> Result<Vec<u32>> {
    let survivors = stop_processes(name);
    check(&["ip", "netns", "del", name])?;
    Ok(survivors)
}

/// Removes the UAPI sockets wireguard-go left in the host's
/// `/var/run/wireguard` for `interfaces` of a namespace whose processes
/// are all gone (a wireguard-go killed by SIGKILL leaves its socket). Only
/// for namespaces that share the host's `/run`, as the tests' do, and only
/// sockets nobody listens on.
pub fn remove_wireguard_sockets(interfaces: &[String]) {
    for interface in interfaces {
        let socket = Path::new(WIREGUARD_SOCKETS).join(format!("{interface}.sock"));
        if socket.exists() && !socket_in_use(&socket) {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// Interface names inside namespace `name`.
pub fn namespace_interfaces(name: &str) -> Vec<String> {
    check(&["ip", "-n", name, "-o", "link", "show"])
        .map(|listing| {
            // "2: name@peer: <FLAGS> ..." per line.
            listing
                .lines()
                .filter_map(|line| line.split(": ").nth(1))
                .map(|name| name.split('@').next().unwrap_or(name).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process anywhere still listens on the Unix socket `path`.
/// Non-blocking: a listener with a full backlog counts as listening.
fn socket_in_use(path: &Path) -> bool {
    use std::os::unix::net::UnixStream;
    match UnixStream::connect(path) {
        Ok(_) => true,
        Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// Signals every process in namespace `name` until none is left or the
/// deadline passes; true if none is left. A process leaves its namespace
/// early in its exit, before it closes its files (a TUN device's close can
/// take a while), so the processes seen in it (`seen`, kept across calls)
/// must also have finished: afterwards none of them runs.
fn signal_all(name: &str, signal: &str, seen: &mut Vec<u32>) -> bool {
    let started = Instant::now();
    loop {
        let pids = namespace_pids(name);
        for pid in &pids {
            if !seen.contains(pid) {
                seen.push(*pid);
            }
        }
        if pids.is_empty() && !seen.iter().any(|pid| process_running(*pid)) {
            return true;
        }
        if started.elapsed() >= KILL_DEADLINE {
            return false;
        }
        if !pids.is_empty() {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            let mut argv = vec!["kill", signal];
            argv.extend(pids.iter().map(String::as_str));
            // Some may exit between listing and signalling.
            let _ = check(&argv);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
