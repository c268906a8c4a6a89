//! GoBGP (`gobgpd` and the `gobgp` CLI from Debian's `gobgpd`) as a lab
//! node's routing daemon, for interop tests: started inside a namespace
//! with a config file of its own and its gRPC API on the namespace's
//! loopback (so several run at once, one per namespace), driven with the
//! `gobgp` CLI run in the same namespace, killed and started again as a
//! crash would, and stopped when dropped (by its [`Daemon`]s).
//!
//! gobgpd does not install routes into the kernel; what it learns is in
//! its RIB (`gobgp global rib`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Daemon, Namespace, wait_for};

use crate::rewrite_config;

/// Where gobgpd's gRPC API listens, inside its namespace: every namespace
/// has a loopback of its own, so this does not clash with other labs.
/// Not gobgpd's default port, so that a stray `gobgp` without `-p` cannot
/// talk to it.
pub const API_HOST: &str = "127.0.0.1";
pub const API_PORT: u16 = 50_179;

#[derive(Debug)]
pub struct Gobgp {
    /// The namespace's name (gobgpd runs in it, and so does the CLI).
    namespace: String,
    /// The namespace's directory, where the config file is.
    dir: PathBuf,
    /// gobgpd's config file.
    config: String,
    /// Every gobgpd started, the running one (if any) last: the earlier
    /// ones are kept for their logs.
    daemons: Vec<Daemon>,
}

impl Gobgp {
    /// Starts gobgpd in `namespace` with `config` (gobgpd.toml text,
    /// written to the namespace's directory) and waits until its API
    /// answers.
    pub fn start(namespace: &Namespace, config: &str) -> anyhow::Result<Self> {
        let mut gobgp = Self {
            namespace: namespace.name().to_owned(),
            dir: namespace.dir().to_owned(),
            config: String::new(),
            daemons: Vec::new(),
        };
        gobgp.write_config(config)?;
        gobgp.start_daemon(namespace, false)?;
        Ok(gobgp)
    }

    /// Replaces the config file with `config`, for the next
    /// [`start_daemon`](Self::start_daemon).
    pub fn write_config(&mut self, config: &str) -> anyhow::Result<()> {
        self.config = rewrite_config(&self.dir, "gobgpd.toml", config)?;
        Ok(())
    }

    /// Starts gobgpd (again, after [`kill`](Self::kill)) and waits until
    /// its API answers. With `restarting`, gobgpd starts as a restarting
    /// speaker (`-r`): its OPEN sets the Restart State bit and, for every
    /// family with graceful restart, the Forwarding State bit, so peers
    /// keep its routes until its End-of-RIB; and it sends nothing to a peer
    /// until it has that peer's End-of-RIB.
    pub fn start_daemon(&mut self, namespace: &Namespace, restarting: bool) -> anyhow::Result<()> {
        let api = format!("{API_HOST}:{API_PORT}");
        let mut argv = vec![
            "gobgpd",
            "-f",
            &self.config,
            "--api-hosts",
            &api,
            "--pprof-disable",
            "--log-plain",
        ];
        if restarting {
            argv.push("-r");
        }
        self.daemons.push(namespace.spawn(&argv)?);
        let answered = wait_for(Duration::from_secs(10), "gobgpd's API", || {
            self.cli(&["global"]).is_ok()
        });
        if let Err(error) = answered {
            anyhow::bail!("{error}\ngobgpd log:\n{}", self.log());
        }
        Ok(())
    }

    /// `kill -9` of gobgpd, as a crash: it sends no NOTIFICATION, so its
    /// peers start graceful restart.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let daemon = self
            .daemons
            .last_mut()
            .context("gobgpd was never started")?;
        let status = std::process::Command::new("kill")
            .args(["-9", &daemon.pid().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -9 gobgpd ({})", daemon.pid());
        wait_for(Duration::from_secs(5), "gobgpd to die", || {
            !daemon.is_running()
        })?;
        Ok(())
    }

    /// `gobgp -u <host> -p <port> <args>` inside the namespace: its
    /// output, or an error with its stderr.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let port = API_PORT.to_string();
        let mut argv = vec![
            "ip",
            "netns",
            "exec",
            &self.namespace,
            "gobgp",
            "-u",
            API_HOST,
            "-p",
            &port,
        ];
        argv.extend_from_slice(args);
        let output = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .context("is gobgpd installed?")?;
        anyhow::ensure!(
            output.status.success(),
            "gobgp {args:?} in {}: {}{}",
            self.namespace,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `gobgp global rib [-a <family>] -j`, parsed: an object from prefix
    /// to its paths.
    pub fn rib(&self, family: &str) -> anyhow::Result<serde_json::Value> {
        let text = self.cli(&["global", "rib", "-a", family, "-j"])?;
        serde_json::from_str(&text)
            .with_context(|| format!("`gobgp global rib -a {family} -j` printed:\n{text}"))
    }

    /// Whether gobgpd's session with `neighbor` is established.
    pub fn established(&self, neighbor: &str) -> bool {
        self.cli(&["neighbor", neighbor])
            .is_ok_and(|text| text.contains("BGP state = ESTABLISHED"))
    }

    /// `gobgp neighbor <neighbor>` and the RIBs of both families, or what
    /// went wrong asking: for failure messages.
    pub fn show(&self, neighbor: &str) -> String {
        [
            vec!["neighbor", neighbor],
            vec!["global", "rib", "-a", "ipv4"],
            vec!["global", "rib", "-a", "ipv6"],
        ]
        .iter()
        .map(|args| self.cli(args).unwrap_or_else(|error| format!("{error:#}")))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The logs of every gobgpd started, for failure messages.
    pub fn log(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .map(|(index, daemon)| format!("-- gobgpd #{} --\n{}", index + 1, daemon.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
