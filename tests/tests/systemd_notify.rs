//! `wgd run` under `Type=notify`, without systemd: the test binds the
//! notification socket itself and points the daemon at it with
//! `NOTIFY_SOCKET` (and `WATCHDOG_USEC`, as `WatchdogSec=` would). It
//! checks the messages and their order: `READY=1` with a status line
//! once the first reconcile has made the tunnel, `WATCHDOG=1` at half
//! the interval, `RELOADING=1` (with `MONOTONIC_USEC`) then `READY=1`
//! around a SIGHUP that adds a tunnel and around one that is refused,
//! and `STOPPING=1` on SIGTERM.

use std::time::Duration;

use wgd_labs::{Namespace, unique_name};
use wgd_tests::systemd::NotifySocket;
use wgd_tests::{KeyPair, Wgd, ifindex, rewrite_config, sighup};

/// How long the daemon may take to start (wireguard-go, BGP) or reload.
const DEADLINE: Duration = Duration::from_secs(30);

fn tunnel(name: &str, port: u16, address: &str, keys: &KeyPair, peer: &KeyPair) -> String {
    format!(
        "[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{}\"\nlisten_port = {port}\n\
         address = [\"{address}\"]\n\n[[tunnel.peer]]\npublic_key = \"{}\"\n\n",
        keys.private, peer.public
    )
}

/// The messages that are not the watchdog's or a status change alone:
/// the ones whose order the protocol fixes.
fn transitions(messages: &[String]) -> Vec<&str> {
    messages
        .iter()
        .map(String::as_str)
        .filter(|message| *message != "WATCHDOG=1" && !message.starts_with("STATUS="))
        .collect()
}

/// The microseconds of a `RELOADING=1` message.
fn reloading_usec(message: &str) -> u64 {
    message
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|usec| usec.parse().ok())
        .unwrap_or_else(|| panic!("not RELOADING=1 with MONOTONIC_USEC: {message:?}"))
}

#[test]
fn run_tells_systemd_when_it_is_ready_reloading_alive_and_stopping() {
    let namespace = Namespace::new("sn").expect("namespace");
    let notify = NotifySocket::bind().expect("notification socket");
    let (first, second) = (unique_name("wgsn"), unique_name("wgsm"));
    let (keys, peer) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let head = format!(
        "[daemon]\napi = \"unix:{}/wgd.sock\"\nreconcile_interval = 300\n\n\
         [bgp]\nasn = 65001\n\n[[bgp.neighbor]]\ntunnel = \"{first}\"\nremote_as = 65002\n\n",
        namespace.dir().display()
    );
    let one = format!(
        "{head}{}",
        tunnel(&first, 51820, "10.77.0.0/31", &keys, &peer)
    );
    let config = rewrite_config(namespace.dir(), "wgd.toml", &one).expect("config");
    let wgd = Wgd::new()
        .expect("wgd")
        .with_env("NOTIFY_SOCKET", notify.path().to_str().unwrap())
        .with_env("WATCHDOG_USEC", "1000000");
    let mut daemon = wgd
        .spawn(&namespace, &["run", "-c", &config])
        .expect("wgd run");
    let fail = |error: anyhow::Error, daemon: &wgd_labs::Daemon| -> ! {
        panic!("{error:#}\nwgd:\n{}", daemon.log())
    };

    // Nothing before READY=1, and the tunnel is there when it comes.
    let ready = notify
        .next(DEADLINE)
        .unwrap()
        .unwrap_or_else(|| fail(anyhow::anyhow!("no message at all"), &daemon));
    assert_eq!(
        ready,
        "READY=1\nSTATUS=1 tunnel up, 0 of 1 BGP session established",
        "{}",
        daemon.log()
    );
    assert!(
        ifindex(&namespace, &first).is_some(),
        "READY=1 came before the first reconcile made {first}"
    );

    // WATCHDOG_USEC is 1 s: a ping every half second.
    notify
        .until(Duration::from_secs(5), "WATCHDOG=1", |message| {
            message == "WATCHDOG=1"
        })
        .unwrap_or_else(|error| fail(error, &daemon));

    // A reload that adds a tunnel: RELOADING=1, then READY=1 once the
    // reconcile has made it.
    let two = format!(
        "{one}{}",
        tunnel(&second, 51821, "10.78.0.0/31", &keys, &peer)
    );
    rewrite_config(namespace.dir(), "wgd.toml", &two).expect("config");
    sighup(&namespace, &daemon).expect("SIGHUP");
    let messages = notify
        .until(DEADLINE, "READY=1 after the reload", |message| {
            message.starts_with("READY=1")
        })
        .unwrap_or_else(|error| fail(error, &daemon));
    let order = transitions(&messages);
    assert_eq!(order.len(), 2, "{messages:?}");
    let first_reload = reloading_usec(order[0]);
    assert_eq!(
        order[1],
        "READY=1\nSTATUS=2 tunnels up, 0 of 1 BGP session established"
    );
    assert!(
        ifindex(&namespace, &second).is_some(),
        "READY=1 came before the reload made {second}"
    );

    // A refused reload: the same two messages, and the status says so.
    rewrite_config(
        namespace.dir(),
        "wgd.toml",
        &two.replace("listen_port = 51821", "listen_port = 99999"),
    )
    .expect("config");
    sighup(&namespace, &daemon).expect("SIGHUP");
    let messages = notify
        .until(DEADLINE, "READY=1 after the refused reload", |message| {
            message.starts_with("READY=1")
        })
        .unwrap_or_else(|error| fail(error, &daemon));
    let order = transitions(&messages);
    assert_eq!(order.len(), 2, "{messages:?}");
    assert!(reloading_usec(order[0]) > first_reload, "{messages:?}");
    assert_eq!(
        order[1],
        "READY=1\nSTATUS=2 tunnels up, 0 of 1 BGP session established; \
         the last reload was refused, the previous config runs"
    );

    daemon.stop().expect("SIGTERM");
    let messages = notify
        .until(Duration::from_secs(5), "STOPPING=1", |message| {
            message.starts_with("STOPPING=1")
        })
        .unwrap_or_else(|error| fail(error, &daemon));
    assert_eq!(
        transitions(&messages),
        ["STOPPING=1\nSTATUS=stopping"],
        "{messages:?}"
    );
}
