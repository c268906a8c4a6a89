//! The Debian package, as an operator meets it: `cargo deb -p wgd` builds
//! it; `dpkg -i` installs it; `wgd --version` names the commit;
//! `systemd-analyze verify` accepts the units (their man pages
//! included); the example config passes `wgd check`; `ip route` says
//! `proto wgd`; `dpkg -r` leaves nothing but the config files.
//!
//! It needs cargo-deb (`cargo install --locked cargo-deb`). Without it the
//! test says, past cargo's capture of test output, that it did not run,
//! and passes, unless `WGD_REQUIRE_CARGO_DEB=1` (as in `.ci/run`), where
//! it fails. On a machine where a package named wgd is installed already
//! it does not run either: it would replace it.
//!
//! The package is built from the dev profile the other tests use
//! (`cargo deb -p wgd --profile dev`, seconds on top of their build)
//! rather than the release profile an operator's `cargo deb -p wgd` uses
//! (a quarter of an hour on two cores): what is checked here is the
//! packaging, not the compiler. `WGD_DEB_PROFILE=release` checks the
//! release package.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wgd_labs::{Namespace, unique_name};

const PACKAGE: &str = "wgd";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("`{program} {}`: {error}", args.join(" ")))
}

/// stdout of a command that must succeed.
fn check(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// Why the test cannot run here, if it cannot.
fn reason_to_skip(cargo: &str) -> Option<String> {
    let deb = Command::new(cargo).args(["deb", "--version"]).output();
    if !deb.is_ok_and(|output| output.status.success()) {
        return Some("cargo-deb is not installed (cargo install --locked cargo-deb)".into());
    }
    let status = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    let status = String::from_utf8_lossy(&status.stdout);
    if status.contains("installed") || status.contains("config-files") {
        return Some(format!(
            "a package named {PACKAGE} is on this machine already ({status}); \
             the test would replace it"
        ));
    }
    None
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
    }
}

#[test]
fn the_package_installs_verifies_and_removes_cleanly() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if let Some(reason) = reason_to_skip(&cargo) {
        assert!(
            std::env::var_os("WGD_REQUIRE_CARGO_DEB").is_none_or(|value| value != "1"),
            "WGD_REQUIRE_CARGO_DEB=1, but {reason}"
        );
        // Written to the terminal itself: cargo test hides what a passing
        // test prints with eprintln!.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: the Debian package test did not run: {reason}"
        );
        return;
    }
    let profile = std::env::var("WGD_DEB_PROFILE").unwrap_or_else(|_| "dev".into());
    let out = tempfile::tempdir().unwrap();
    let build = Command::new(&cargo)
        .args(["deb", "-p", PACKAGE, "--profile", &profile, "--output"])
        .arg(out.path())
        .current_dir(workspace())
        .output()
        .expect("cargo deb runs");
    assert!(
        build.status.success(),
        "cargo deb -p wgd --profile {profile} failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .expect("cargo deb wrote a .deb");
    let deb = deb.to_str().unwrap();

    // What the package says and holds.
    let fields = check("dpkg-deb", &["--field", deb, "Depends", "Recommends"]);
    assert!(fields.contains("wireguard-tools"), "{fields}");
    assert!(fields.contains("Recommends: wireguard-go"), "{fields}");
    let control = tempfile::tempdir().unwrap();
    check(
        "dpkg-deb",
        &["--control", deb, control.path().to_str().unwrap()],
    );
    let conffiles: BTreeSet<String> = std::fs::read_to_string(control.path().join("conffiles"))
        .expect("the package has conffiles")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        conffiles,
        BTreeSet::from([
            "/etc/iproute2/rt_protos.d/wgd.conf".to_owned(),
            "/etc/wgd/wgd.toml".to_owned()
        ])
    );
    let files: Vec<String> = check("dpkg-deb", &["--contents", deb])
        .lines()
        .filter(|line| !line.starts_with('d'))
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(|path| path.trim_start_matches('.').to_owned())
        .collect();
    for expected in [
        "/usr/bin/wgd",
        "/usr/bin/wgd-lab",
        "/usr/lib/systemd/system/wgd.service",
        "/usr/lib/systemd/system/wgd@.service",
        "/usr/share/man/man8/wgd.8.gz",
        "/usr/share/man/man8/wgd-run.8.gz",
        "/usr/share/man/man8/wgd-lab.8.gz",
        "/usr/share/man/man5/wgd.toml.5.gz",
        "/usr/share/bash-completion/completions/wgd",
        "/usr/share/bash-completion/completions/wgd-lab",
        "/usr/share/zsh/vendor-completions/_wgd",
        "/usr/share/fish/vendor_completions.d/wgd.fish",
        "/etc/iproute2/rt_protos.d/wgd.conf",
        "/etc/wgd/wgd.toml",
    ] {
        assert!(
            files.iter().any(|file| file == expected),
            "{expected} is not in the package:\n{}",
            files.join("\n")
        );
    }

    let _installed = Installed;
    check("dpkg", &["-i", deb]);

    let version = check("/usr/bin/wgd", &["--version"]);
    let commit = check(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    assert_eq!(
        version.trim(),
        format!(
            "wgd {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            commit.trim()
        )
    );
    let checked = check("/usr/bin/wgd", &["check", "-c", "/etc/wgd/wgd.toml"]);
    assert!(checked.contains(": ok: 0 tunnels"), "{checked}");
    // The units as systemd reads them, with their Documentation= pages.
    let verify = run(
        "systemd-analyze",
        &["verify", "--man=yes", "wgd.service", "wgd@wg0.service"],
    );
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify ({}):\n{}",
        verify.status,
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(check("man", &["-w", "wgd.toml"]).contains("wgd.toml.5"));
    // `ip route` names protocol 200 after the package's rt_protos.d entry.
    let namespace = Namespace::new("deb").expect("namespace");
    let stub = unique_name("st");
    namespace.add_stub(&stub).expect("a stub interface");
    namespace
        .check(&[
            "ip",
            "route",
            "add",
            "192.0.2.0/24",
            "dev",
            &stub,
            "proto",
            "200",
        ])
        .expect("a route with protocol 200");
    let routes = namespace
        .check(&["ip", "route", "show", "192.0.2.0/24"])
        .unwrap();
    assert!(routes.contains("proto wgd"), "{routes}");

    check("dpkg", &["-r", PACKAGE]);
    let status = check("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    assert_eq!(status, "deinstall ok config-files");
    for file in &files {
        let left = Path::new(file).exists();
        if conffiles.contains(file) {
            assert!(left, "dpkg -r removed the config file {file}");
        } else {
            assert!(!left, "dpkg -r left {file}");
        }
    }
}
