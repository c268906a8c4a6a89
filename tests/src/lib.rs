//! Support for the end-to-end tests in `tests/`: they drive the real `wgd`
//! binary inside network namespaces made with [`wgd_labs`], the way an
//! operator would, and check what an operator would check.
//!
//! Inputs flow from here into a namespace: the veth between two sites
//! ([`underlay`]), config files ([`write_config`], [`rewrite_config`]), keys
//! ([`KeyPair`], [`preshared_key`]), `wgd` command lines and daemons
//! ([`Wgd`]), reloads ([`sighup`]). Observations flow back: `wgd status
//! --json` as typed values ([`status::Status`]), the kernel's rules and
//! routes as snapshots to compare ([`routing::RoutingState`]), interface
//! indexes ([`ifindex`]), the daemon's metrics ([`scrape_metrics`]) and
//! what it tells systemd ([`systemd::NotifySocket`]).
//!
//! The tests need root, `ip`, `wg`, `wireguard-go`, `ping`, and for the
//! wg-quick comparison `wg-quick` with `nft` (or `iptables-restore`). `wgd`
//! itself is not built by `cargo test -p wgd-tests`: run
//! `cargo build --workspace --bins` first.

pub mod bgp;
pub mod bird;
pub mod bridge;
pub mod frr;
pub mod gobgp;
pub mod grpc;
pub mod routing;
pub mod sites;
pub mod status;
pub mod systemd;

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use wgd_labs::{Daemon, Namespace, link, unique_name};

/// The `wgd` binary of the same build as the running test: the test is
/// `target/<profile>/deps/<test>-<hash>`, the binary `target/<profile>/wgd`.
///
/// # Panics
/// If it is not there, saying how to build it.
pub fn wgd_bin() -> PathBuf {
    let test = std::env::current_exe().expect("the path of the running test");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let binary = profile.join("wgd");
    assert!(
        binary.is_file(),
        "wgd binary not found at {}: run `cargo build --workspace --bins` first",
        binary.display()
    );
    binary
}

/// The `wgd` binary under test, run inside namespaces.
///
/// wgd keeps its records in the namespace's own directory
/// ([`Wgd::state_dir`], via `WGD_STATE_DIR`), so they go away with the
/// namespace; by default they would live in `/run/wgd`, and every run would
/// leave files there. Every command run through the same `Wgd` in the same
/// namespace shares those records: `wgd run`, `up`, `status` and `down`
/// alike.
#[derive(Debug, Clone)]
pub struct Wgd {
    binary: PathBuf,
    /// Environment of every command, besides `WGD_STATE_DIR`.
    env: Vec<(String, String)>,
}

impl Wgd {
    /// # Panics
    /// If the binary is missing (see [`wgd_bin`]).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            binary: wgd_bin(),
            env: Vec::new(),
        })
    }

    /// The same, with `name=value` in the environment of every command it
    /// runs (`WGD_LOG=trace`, say).
    #[must_use]
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The `WGD_STATE_DIR` of every wgd run in `namespace`.
    pub fn state_dir(namespace: &Namespace) -> PathBuf {
        namespace.dir().join("wgd")
    }

    /// Runs `wgd <args>` inside `namespace`; its stdout, or an error with the
    /// command line, exit status and stderr.
    pub fn run(&self, namespace: &Namespace, args: &[&str]) -> Result<String, wgd_labs::Error> {
        self.with_argv(namespace, args, |argv| namespace.check(argv))
    }

    /// Runs `wgd <args>` inside `namespace`, whatever its exit status: for
    /// what [`run`](Self::run) drops (stderr, where notices and errors go,
    /// and the exit status). Fails only if wgd cannot be run at all.
    pub fn output(&self, namespace: &Namespace, args: &[&str]) -> Result<Output, wgd_labs::Error> {
        self.with_argv(namespace, args, |argv| namespace.run(argv))
    }

    /// Starts `wgd <args>` (`run`, `events`) inside `namespace`; the
    /// [`Daemon`] stops it when dropped and keeps its stdout and stderr.
    pub fn spawn(&self, namespace: &Namespace, args: &[&str]) -> Result<Daemon, wgd_labs::Error> {
        self.with_argv(namespace, args, |argv| namespace.spawn(argv))
    }

    /// Runs `wgd <args>` on the host with `input` on stdin, whatever its exit
    /// status: for the commands that touch no interface (`wgd pubkey`).
    pub fn output_with_stdin(&self, args: &[&str], input: &str) -> anyhow::Result<Output> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        let shown = format!("wgd {}", args.join(" "));
        output_with_stdin(&mut command, &shown, input)
    }

    /// `wgd status --json` inside `namespace`, parsed.
    pub fn status(&self, namespace: &Namespace) -> anyhow::Result<status::Status> {
        let json = self.run(namespace, &["status", "--json"])?;
        serde_json::from_str(&json).with_context(|| {
            format!("`wgd status --json` does not print the status contract; it printed:\n{json}")
        })
    }

    /// Calls `f` with `env WGD_STATE_DIR=… [env] wgd <args>`.
    fn with_argv<T>(
        &self,
        namespace: &Namespace,
        args: &[&str],
        f: impl FnOnce(&[&str]) -> T,
    ) -> T {
        let state = format!("WGD_STATE_DIR={}", Self::state_dir(namespace).display());
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let mut argv = vec!["env", state.as_str()];
        argv.extend(env.iter().map(String::as_str));
        argv.push(self.binary.to_str().expect("a UTF-8 path to wgd"));
        argv.extend_from_slice(args);
        f(&argv)
    }
}

/// Writes `contents` to `dir/file_name`, readable by its owner only (wgd and
/// wg-quick rightly object to key files others can read).
pub fn write_config(dir: &Path, file_name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(file_name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// [`write_config`], replacing the file if there is one (a config edited
/// between two `wgd up`s, or before a SIGHUP). Its path as text, the way
/// wgd's command lines take it.
pub fn rewrite_config(dir: &Path, file_name: &str, contents: &str) -> anyhow::Result<String> {
    let old = dir.join(file_name);
    if old.exists() {
        std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    let path = write_config(dir, file_name, contents)?;
    let text = path.to_str();
    let text = text.with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(text.to_owned())
}

/// Joins `a` and `b` by a veth pair, the underlay their tunnels run over,
/// with `a_address` on `a`'s end and `b_address` on `b`'s (both CIDR); the
/// names of the two ends.
pub fn underlay(
    a: &Namespace,
    a_address: &str,
    b: &Namespace,
    b_address: &str,
) -> Result<(String, String), wgd_labs::Error> {
    let (a_if, b_if) = (unique_name("ua"), unique_name("ub"));
    link(a, &a_if, b, &b_if)?;
    a.add_address(&a_if, a_address)?;
    b.add_address(&b_if, b_address)?;
    Ok((a_if, b_if))
}

/// The kernel's index of interface `name` in `namespace`, or `None` if there
/// is no such interface. An interface made anew under the same name has
/// another index.
pub fn ifindex(namespace: &Namespace, name: &str) -> Option<String> {
    let line = namespace
        .check(&["ip", "-o", "link", "show", "dev", name])
        .ok()?;
    Some(line.split(':').next()?.trim().to_owned())
}

/// Sends SIGHUP to `daemon`, started in `namespace`: `wgd run` reloads its
/// config.
pub fn sighup(namespace: &Namespace, daemon: &Daemon) -> Result<(), wgd_labs::Error> {
    namespace
        .check(&["kill", "-HUP", &daemon.pid().to_string()])
        .map(drop)
}

/// What `http://<listen>/metrics` serves inside `namespace` (Prometheus
/// text), or nothing if it does not answer (yet).
pub fn scrape_metrics(namespace: &Namespace, listen: &str) -> String {
    let url = format!("http://{listen}/metrics");
    namespace.check(&["curl", "-sf", &url]).unwrap_or_default()
}

/// A WireGuard key pair in base64, made by `wg genkey` and `wg pubkey`.
#[derive(Clone)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

impl KeyPair {
    pub fn generate() -> anyhow::Result<Self> {
        let private = wg(&["genkey"], "")?;
        let public = wg(&["pubkey"], &private)?;
        Ok(Self { private, public })
    }
}

/// Never shows the private key, even in a failed assertion.
impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A preshared key in base64, made by `wg genpsk`.
pub fn preshared_key() -> anyhow::Result<String> {
    wg(&["genpsk"], "")
}

/// `wg <args>` with `input` on stdin; its stdout, trimmed.
fn wg(args: &[&str], input: &str) -> anyhow::Result<String> {
    let command = format!("wg {}", args.join(" "));
    let output = output_with_stdin(Command::new("wg").args(args), &command, input)
        .context("is wireguard-tools installed?")?;
    if !output.status.success() {
        bail!(
            "`{command}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `command` with `input` on stdin; its output, whatever its exit
/// status. `shown` is the command line for errors.
fn output_with_stdin(command: &mut Command, shown: &str, input: &str) -> anyhow::Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("`{shown}` could not be started"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .with_context(|| format!("`{shown}`: writing stdin"))?;
    child
        .wait_with_output()
        .with_context(|| format!("`{shown}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_are_base64_and_debug_hides_the_private_key() {
        let keys = KeyPair::generate().unwrap();
        assert_eq!(keys.private.len(), 44);
        assert_eq!(keys.public.len(), 44);
        assert_ne!(keys.private, keys.public);
        let shown = format!("{keys:?}");
        assert!(shown.contains(&keys.public));
        assert!(!shown.contains(&keys.private));
    }

    #[test]
    fn configs_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "x.conf", "[Interface]\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
