//! A lab node: one network namespace with a unique name, `lo` up, and
//! nothing else until the caller adds it.
//!
//! Commands go in through `ip netns exec <name>`; the namespace goes away in
//! `Drop` (every process still inside is stopped, then `ip netns del`), which
//! also removes every interface in it.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::command::{self, check};
use crate::daemon::Daemon;
use crate::wait::wait_for;
use crate::{Error, Result, host, unique_name};

/// A network namespace that lives as long as this value, with a private
/// directory for the files of its node (configs, daemons' state), removed
/// with it.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    // Dropped after `Drop::drop` has stopped the processes that use it.
    dir: tempfile::TempDir,
}

impl Namespace {
    /// Creates a namespace named [`unique_name`]`(prefix)` and brings `lo` up.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("wgd-labs-node-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating a directory for a namespace".to_owned(),
                source,
            })?;
        let mut attempts = 0;
        let name = loop {
            let name = unique_name(prefix);
            match check(&["ip", "netns", "add", &name]) {
                Ok(_) => break name,
                // A leftover of a crashed run whose pid we now have.
                Err(Error::Failed { ref stderr, .. })
                    if stderr.contains("File exists") && attempts < 3 =>
                {
                    attempts += 1;
                }
                Err(error) => return Err(error),
            }
        };
        // From here on, Drop deletes it whatever fails next.
        let namespace = Self { name, dir };
        namespace.check(&["ip", "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A directory for this node's files, removed with the namespace.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `argv` inside the namespace and returns its output, whatever its
    /// exit status. Fails only if it cannot be run or does not finish.
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        command::output(&self.exec(argv))
    }

    /// Runs `argv` inside the namespace; its stdout if it exits with 0,
    /// otherwise an error with the command, exit status, stderr and stdout.
    pub fn check(&self, argv: &[&str]) -> Result<String> {
        command::check(&self.exec(argv))
    }

    /// [`check`](Self::check) for a `sh -c` script.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.check(&["sh", "-c", script])
    }

    /// Starts a long-running `argv` inside the namespace.
    pub fn spawn(&self, argv: &[&str]) -> Result<Daemon> {
        Daemon::start(&self.exec(argv))
    }

    /// `ip address add <cidr> dev <device>`.
    pub fn add_address(&self, device: &str, cidr: &str) -> Result<()> {
        self.check(&["ip", "address", "add", cidr, "dev", device])
            .map(drop)
    }

    /// `ip route add <route…>`, `route` as one would type it after `add`
    /// (e.g. `"default via 192.0.2.1"`).
    pub fn add_route(&self, route: &str) -> Result<()> {
        let mut argv = vec!["ip", "route", "add"];
        argv.extend(route.split_whitespace());
        self.check(&argv).map(drop)
    }

    /// An interface with carrier that stands for a LAN (an address to reach
    /// behind a node), up. It is one end of a veth pair whose other end stays
    /// unused in this namespace: `dummy` would do, but it needs a kernel
    /// module the development machines do not have.
    pub fn add_stub(&self, device: &str) -> Result<()> {
        let peer = unique_name("stub");
        self.check(&[
            "ip", "link", "add", device, "type", "veth", "peer", "name", &peer,
        ])?;
        self.check(&["ip", "link", "set", &peer, "up"])?;
        self.check(&["ip", "link", "set", device, "up"]).map(drop)
    }

    /// Whether `address` answers ping from here (2 probes, 1 s each).
    pub fn pings(&self, address: &str) -> Result<bool> {
        let output = self.run(&["ping", "-n", "-q", "-c", "2", "-W", "1", address])?;
        Ok(output.status.success())
    }

    /// Waits until no IPv6 address in the namespace is still tentative
    /// (duplicate address detection), after which the kernel adds no more
    /// routes of its own: route tables can be compared from then on.
    pub fn settle(&self, deadline: Duration) -> Result<()> {
        let mut last_error = None;
        wait_for(
            deadline,
            &format!("IPv6 addresses in {} to settle", self.name),
            || match self.check(&["ip", "-6", "address", "show", "tentative"]) {
                Ok(tentative) => tentative.trim().is_empty(),
                Err(error) => {
                    last_error = Some(error);
                    true
                }
            },
        )?;
        last_error.map_or(Ok(()), Err)
    }

    /// Interface names inside the namespace.
    pub fn interfaces(&self) -> Result<Vec<String>> {
        let listing = self.check(&["ip", "-o", "link", "show"])?;
        // "2: name@peer: <FLAGS> ..." per line.
        Ok(listing
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect())
    }

    fn exec<'a>(&'a self, argv: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(argv);
        full
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let interfaces = host::namespace_interfaces(&self.name);
        let survivors = host::stop_processes(&self.name);
        if survivors.is_empty() {
            // The tests' namespaces share the host's /run.
            host::remove_wireguard_sockets(&interfaces);
        } else {
            eprintln!(
                "wgd-labs: processes {survivors:?} survive in namespace {}",
                self.name
            );
        }
        if let Err(error) = check(&["ip", "netns", "del", &self.name]) {
            eprintln!("wgd-labs: {error}");
        }
    }
}
