//! Support for the end-to-end tests in `tests/`: they drive the real `wgd`
//! binary inside network namespaces made with [`wgd_labs`], the way an
//! operator would, and check what an operator would check.
//!
//! Inputs flow from here into a namespace: config files ([`write_config`]),
//! keys ([`KeyPair`]), `wgd` command lines ([`Wgd`]). Observations flow back:
//! `wgd status --json` as typed values ([`status::Status`]) and the kernel's
//! rules and routes as snapshots to compare ([`routing::RoutingState`]).
//!
//! The tests need root, `ip`, `wg`, `wireguard-go`, `ping`, and for the
//! wg-quick comparison `wg-quick` with `nft` (or `iptables-restore`). `wgd`
//! itself is not built by `cargo test -p wgd-tests`: run
//! `cargo build --workspace --bins` first.

pub mod routing;
pub mod status;

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use wgd_labs::Namespace;

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
/// ([`Namespace::dir`], via `WGD_STATE_DIR`), so they go away with the
/// namespace. By default they live in `/run/wgd/net-<namespace inode>`, and
/// the kernel reuses the inodes of deleted namespaces: a fresh namespace
/// would inherit the records of an earlier test's tunnels, and every run
/// would leave files in `/run/wgd`.
#[derive(Debug, Clone)]
pub struct Wgd {
    binary: PathBuf,
}

impl Wgd {
    /// # Panics
    /// If the binary is missing (see [`wgd_bin`]).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { binary: wgd_bin() })
    }

    /// Runs `wgd <args>` inside `namespace`; its stdout, or an error with the
    /// command line, exit status and stderr.
    pub fn run(&self, namespace: &Namespace, args: &[&str]) -> Result<String, wgd_labs::Error> {
        let state = format!("WGD_STATE_DIR={}", namespace.dir().join("wgd").display());
        let mut argv = vec![
            "env",
            &state,
            self.binary.to_str().expect("a UTF-8 path to wgd"),
        ];
        argv.extend_from_slice(args);
        namespace.check(&argv)
    }

    /// `wgd status --json` inside `namespace`, parsed.
    pub fn status(&self, namespace: &Namespace) -> anyhow::Result<status::Status> {
        let json = self.run(namespace, &["status", "--json"])?;
        serde_json::from_str(&json).with_context(|| {
            format!("`wgd status --json` does not print the status contract; it printed:\n{json}")
        })
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

/// `wg <args>` with `input` on stdin; its stdout, trimmed.
fn wg(args: &[&str], input: &str) -> anyhow::Result<String> {
    let command = format!("wg {}", args.join(" "));
    let mut child = Command::new("wg")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("`{command}` (is wireguard-tools installed?)"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .with_context(|| format!("`{command}`: writing stdin"))?;
    let output = child
        .wait_with_output()
        .with_context(|| format!("`{command}`"))?;
    if !output.status.success() {
        bail!(
            "`{command}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
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
