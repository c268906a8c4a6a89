//! The gRPC API on TCP with mutual TLS (`api = "tcp://..."`), as a router
//! on another host reaches it, with Python's grpcio
//! (`tests/scripts/grpc_probe.py`) inside the daemon's namespace, on its
//! loopback only.
//!
//! A client with a certificate from the configured client CA is served
//! (health, reflection, a call); a client without a certificate, one with a
//! certificate from another CA, and one without TLS are refused. A config
//! with a TCP API and no client CA, or with a key others can read, stops
//! `wgd run` before it makes the tunnel, naming the setting; so does a
//! certificate file with no certificate in it.
//!
//! Needs `openssl` and `python3` with `grpcio`, `grpcio-health-checking`
//! and `grpcio-reflection` (`scripts/setup` installs them).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::grpc::{TestPki, probe};
use wgd_tests::{KeyPair, Wgd, write_config};

const DEADLINE: Duration = Duration::from_secs(10);
/// This test's port, on the namespace's own loopback.
const ADDRESS: &str = "127.0.0.1:50161";

fn text(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("a UTF-8 path")
}

/// A daemon config with one tunnel, its Unix socket in the test's folder
/// and the API on TCP too; `tls` is the TLS lines.
fn config(namespace: &Namespace, tunnel: &str, tls: &str) -> anyhow::Result<String> {
    let keys = KeyPair::generate()?;
    Ok(format!(
        "[daemon]\napi = [\"unix:{}\", \"tcp://{ADDRESS}\"]\n{tls}\n\
         [[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{}\"\naddress = [\"10.255.9.0/31\"]\n",
        namespace.dir().join("wgd.sock").display(),
        keys.private
    ))
}

#[test]
fn the_tcp_api_serves_only_clients_with_a_certificate_from_the_client_ca() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let namespace = Namespace::new("tls")?;
    let pki = TestPki::generate(namespace.dir())?;
    let tunnel = unique_name("wgt");
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let path = write_config(
        namespace.dir(),
        "wgd.toml",
        &config(&namespace, &tunnel, &tls)?,
    )?;
    let daemon = wgd.spawn(&namespace, &["run", "-c", text(&path)?])?;

    let trusted = [
        "--ca",
        text(&pki.ca)?,
        "--cert",
        text(&pki.client_cert)?,
        "--key",
        text(&pki.client_key)?,
    ];
    let mut served = serde_json::Value::Null;
    wait_for(DEADLINE, "the TCP API to serve a trusted client", || {
        let mut args = trusted.to_vec();
        args.extend(["--health", "", "--list-tunnels"]);
        served = probe(&namespace, ADDRESS, &args).unwrap_or_default();
        served["health"][""] == "SERVING"
    })
    .with_context(|| format!("{served}\n{}", daemon.log()))?;
    assert_eq!(served["tunnels"], serde_json::json!([tunnel]), "{served}");
    assert!(
        served["services"]
            .as_array()
            .is_some_and(|services| services.iter().any(|name| name == "wgd.v1.RouteService")),
        "{served}"
    );

    let refused = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
        let mut args = args.to_vec();
        args.extend(["--health", ""]);
        Ok(probe(&namespace, ADDRESS, &args)?["health"][""].take())
    };
    let no_certificate = refused(&["--ca", text(&pki.ca)?])?;
    assert_eq!(no_certificate["error"], "UNAVAILABLE", "{no_certificate}");
    let stranger = refused(&[
        "--ca",
        text(&pki.ca)?,
        "--cert",
        text(&pki.stranger_cert)?,
        "--key",
        text(&pki.stranger_key)?,
    ])?;
    assert_eq!(stranger["error"], "UNAVAILABLE", "{stranger}");
    let plaintext = refused(&[])?;
    assert_eq!(plaintext["error"], "UNAVAILABLE", "{plaintext}");

    // The trusted client is still served after the refusals.
    let mut args = trusted.to_vec();
    args.extend(["--health", "wgd.v1.TunnelService"]);
    let again = probe(&namespace, ADDRESS, &args)?;
    assert_eq!(
        again["health"]["wgd.v1.TunnelService"], "SERVING",
        "{again}"
    );
    Ok(())
}

#[test]
fn a_tcp_api_without_its_tls_settings_or_with_bad_ones_stops_the_start() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let namespace = Namespace::new("tlb")?;
    let pki = TestPki::generate(namespace.dir())?;
    let tunnel = unique_name("wgt");
    let no_ca = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
    );
    let path = write_config(
        namespace.dir(),
        "no-ca.toml",
        &config(&namespace, &tunnel, &no_ca)?,
    )?;
    let output = wgd.output(&namespace, &["run", "-c", text(&path)?])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started without a client CA:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "no-ca.toml:2: api \"tcp://{ADDRESS}\": a TCP API takes mutual TLS only; \
             missing tls_client_ca"
        )),
        "{stderr}"
    );

    std::fs::set_permissions(&pki.server_key, std::fs::Permissions::from_mode(0o644))?;
    let readable = format!("{no_ca}tls_client_ca = \"{}\"\n", pki.ca.display());
    let path = write_config(
        namespace.dir(),
        "readable.toml",
        &config(&namespace, &tunnel, &readable)?,
    )?;
    let output = wgd.output(&namespace, &["run", "-c", text(&path)?])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with a readable key:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "tls_key {}: readable by group or others (mode 0644)",
            pki.server_key.display()
        )),
        "{stderr}"
    );
    // A certificate file that holds no certificate.
    std::fs::set_permissions(&pki.server_key, std::fs::Permissions::from_mode(0o600))?;
    let garbage = namespace.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n")?;
    let bad_pem = readable.replace(text(&pki.server_cert)?, text(&garbage)?);
    let path = write_config(
        namespace.dir(),
        "bad-pem.toml",
        &config(&namespace, &tunnel, &bad_pem)?,
    )?;
    let output = wgd.output(&namespace, &["run", "-c", text(&path)?])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with no certificate:\n{stderr}"
    );
    assert!(
        stderr.contains("bad-pem.toml:2: api \"tcp://127.0.0.1:50161\": TLS setup from tls_cert"),
        "{stderr}"
    );
    // Refused before anything changed: no tunnel.
    let links = namespace.check(&["ip", "-br", "link"])?;
    assert!(!links.contains(&tunnel), "{links}");
    Ok(())
}
