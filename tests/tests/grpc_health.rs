//! Health and reflection on `wgd run`'s API socket, asked the way standard
//! tools ask, with Python's `grpcio-health-checking` and `grpcio-reflection`
//! and no `.proto` file of wgd's (`tests/scripts/grpc_probe.py`).
//!
//! A tunnel's `pre_up` hook holds the first reconcile until the test opens
//! a gate: meanwhile the socket answers and every service is NOT_SERVING;
//! once the reconcile is done, each is SERVING, an unknown service is
//! NOT_FOUND, reflection lists wgd's services, and a `ListTunnels` call
//! built from reflection alone returns the tunnel.
//!
//! Needs `python3` with `grpcio`, `grpcio-health-checking` and
//! `grpcio-reflection` (`scripts/setup` installs them).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::grpc::probe;
use wgd_tests::{KeyPair, Wgd, write_config};

const DEADLINE: Duration = Duration::from_secs(10);
const SERVICES: [&str; 4] = [
    "",
    "wgd.v1.TunnelService",
    "wgd.v1.RouteService",
    "wgd.v1.BgpService",
];

/// The health status of each of wgd's services, as `grpc_probe.py` got it.
fn health(namespace: &Namespace, target: &str) -> anyhow::Result<serde_json::Value> {
    let mut args = Vec::new();
    for service in SERVICES {
        args.extend(["--health", service]);
    }
    Ok(probe(namespace, target, &args)?["health"].take())
}

fn all(health: &serde_json::Value, status: &str) -> bool {
    SERVICES.iter().all(|service| health[service] == status)
}

#[test]
fn health_waits_for_the_first_reconcile_and_reflection_lists_and_calls_the_services()
-> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let namespace = Namespace::new("hlt")?;
    let tunnel = unique_name("wgh");
    let socket = namespace.dir().join("wgd.sock");
    let gate = namespace.dir().join("gate");
    let keys = KeyPair::generate()?;
    let config = format!(
        "[daemon]\napi = \"{}\"\n\n[[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{}\"\n\
         address = [\"10.255.9.0/31\"]\n\
         pre_up = [\"while [ ! -e {} ]; do sleep 0.05; done\"]\n",
        socket.display(),
        keys.private,
        gate.display(),
    );
    let config = write_config(namespace.dir(), "wgd.toml", &config)?;
    let daemon = wgd.spawn(
        &namespace,
        &["run", "-c", config.to_str().context("a UTF-8 path")?],
    )?;
    let target = format!("unix:{}", socket.display());

    // The socket answers while the hook holds the first reconcile.
    wait_for(DEADLINE, "the API socket", || Path::new(&socket).exists())
        .with_context(|| daemon.log())?;
    let before = health(&namespace, &target)?;
    assert!(
        all(&before, "NOT_SERVING"),
        "before the first reconcile: {before}\n{}",
        daemon.log()
    );

    std::fs::write(&gate, "")?;
    let mut after = serde_json::Value::Null;
    wait_for(DEADLINE, "every service SERVING", || {
        after = health(&namespace, &target).unwrap_or_default();
        all(&after, "SERVING")
    })
    .with_context(|| format!("{after}\n{}", daemon.log()))?;

    let unknown = probe(&namespace, &target, &["--health", "wgd.v1.NoSuchService"])?;
    assert_eq!(
        unknown["health"]["wgd.v1.NoSuchService"]["error"], "NOT_FOUND",
        "{unknown}"
    );

    let reflected = probe(&namespace, &target, &["--reflect", "--list-tunnels"])?;
    let services = reflected["services"]
        .as_array()
        .with_context(|| format!("no service list: {reflected}"))?;
    for service in [
        "wgd.v1.TunnelService",
        "wgd.v1.RouteService",
        "wgd.v1.BgpService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.iter().any(|listed| listed == service),
            "{service} not listed: {reflected}"
        );
    }
    assert_eq!(
        reflected["tunnels"],
        serde_json::json!([tunnel]),
        "ListTunnels through reflected descriptors: {reflected}"
    );
    Ok(())
}
