//! The benchmark's sites: site A runs `wgd run` (the bridge, and the BGP
//! speaker when asked), site B brings up the other end of each tunnel with
//! `wgd up`. Tunnel `k` runs over an underlay veth of its own:
//!
//! ```text
//! A 198.18.k.1/30 ── veth ── 198.18.k.2/30 B
//! A 10.255.k.0/31 ── tunnel k ── 10.255.k.1/31 B
//! ```
//!
//! Everything lives in namespaces with unique names and goes away when the
//! [`Lab`] is dropped (its daemon stopped first, then the namespaces, which
//! take every interface and process in them along).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wgd_labs::{Daemon, Namespace, link, unique_name, wait_for};

/// The `wgd` binary the harness drives.
#[derive(Debug, Clone)]
pub struct Wgd {
    pub binary: PathBuf,
}

impl Wgd {
    /// `--wgd` if given, else the `wgd` beside this binary (the same
    /// cargo build), else the one on PATH.
    pub fn find(given: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(path) = given {
            anyhow::ensure!(path.is_file(), "no wgd binary at {}", path.display());
            return Ok(Self {
                binary: path.to_owned(),
            });
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("wgd")))
            .filter(|path| path.is_file());
        let binary = beside
            .or_else(|| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join("wgd"))
                        .find(|path| path.is_file())
                })
            })
            .context("no wgd binary: build it (cargo build --release -p wgd) or pass --wgd")?;
        Ok(Self { binary })
    }

    /// `env WGD_STATE_DIR=<namespace dir>/wgd wgd <args>` as argv: wgd's
    /// records go away with the namespace. Logging stays at wgd's default
    /// (info), as it runs on a router.
    fn argv<'a>(&'a self, namespace: &Namespace, args: &[&'a str]) -> Vec<String> {
        let mut argv = vec![
            "env".to_owned(),
            format!("WGD_STATE_DIR={}", namespace.dir().join("wgd").display()),
            self.binary.display().to_string(),
        ];
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        argv
    }

    pub fn run(&self, namespace: &Namespace, args: &[&str]) -> anyhow::Result<String> {
        let argv = self.argv(namespace, args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(namespace.check(&argv)?)
    }

    pub fn spawn(&self, namespace: &Namespace, args: &[&str]) -> anyhow::Result<Daemon> {
        let argv = self.argv(namespace, args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(namespace.spawn(&argv)?)
    }
}

/// A WireGuard key pair, from `wg genkey` and `wg pubkey`.
#[derive(Clone)]
pub struct Keys {
    pub private: String,
    pub public: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub fn generate() -> anyhow::Result<Self> {
        let private = wg(&["genkey"], "")?;
        let public = wg(&["pubkey"], &private)?;
        Ok(Self { private, public })
    }
}

fn wg(args: &[&str], input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("wg")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running wg (is wireguard-tools installed?)")?;
    child
        .stdin
        .take()
        .context("wg's stdin")?
        .write_all(input.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "wg {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Writes a config file readable by its owner only (wgd refuses key
/// material others can read).
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// B's address on tunnel `index` ([`Link::address_b`]), known before the
/// lab is built (a `[bgp]` section names it as A's neighbor).
pub fn tunnel_address_b(index: u8) -> String {
    format!("10.255.{index}.1")
}

/// One tunnel between A and B and the underlay it runs over.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u8,
    pub tunnel_a: String,
    pub tunnel_b: String,
    pub underlay_a: String,
    pub underlay_b: String,
}

impl Link {
    pub fn address_a(&self) -> String {
        format!("10.255.{}.0", self.index)
    }
    pub fn address_b(&self) -> String {
        tunnel_address_b(self.index)
    }
    /// A's IPv6 address on the tunnel (when it has one, see [`tunnel`]).
    pub fn address6_a(&self) -> String {
        format!("fd77:0:0:{}::a", self.index)
    }
    pub fn address6_b(&self) -> String {
        format!("fd77:0:0:{}::b", self.index)
    }
    pub fn underlay_address_a(&self) -> String {
        format!("198.18.{}.1", self.index)
    }
    pub fn underlay_address_b(&self) -> String {
        format!("198.18.{}.2", self.index)
    }
    pub fn port(&self) -> u16 {
        51820 + u16::from(self.index)
    }
}

/// Tunnel `index` between `a` and `b`: the underlay veth (made now, with
/// its addresses) and each side's `[[tunnel]]` section for wgd; with
/// `ipv6`, each side has an IPv6 address on it too (a /64 of fd77::/16).
pub fn tunnel(
    a: &Namespace,
    b: &Namespace,
    index: u8,
    ipv6: bool,
) -> anyhow::Result<(Link, String, String)> {
    let link = Link {
        index,
        tunnel_a: unique_name("bwa"),
        tunnel_b: unique_name("bwb"),
        underlay_a: unique_name("bua"),
        underlay_b: unique_name("bub"),
    };
    self::link(a, &link.underlay_a, b, &link.underlay_b)?;
    a.add_address(
        &link.underlay_a,
        &format!("{}/30", link.underlay_address_a()),
    )?;
    b.add_address(
        &link.underlay_b,
        &format!("{}/30", link.underlay_address_b()),
    )?;
    let (keys_a, keys_b) = (Keys::generate()?, Keys::generate()?);
    let section = |name: &str,
                   keys: &Keys,
                   address: String,
                   address6: String,
                   peer: &Keys,
                   endpoint: String| {
        let address6 = if ipv6 {
            format!(", \"{address6}/64\"")
        } else {
            String::new()
        };
        format!(
            "\n[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{}\"\nlisten_port = {}\n\
             address = [\"{address}/31\"{address6}]\n\n[[tunnel.peer]]\npublic_key = \"{}\"\n\
             endpoint = \"{endpoint}:{}\"\npersistent_keepalive = 1\n",
            keys.private,
            link.port(),
            peer.public,
            link.port(),
        )
    };
    let section_a = section(
        &link.tunnel_a,
        &keys_a,
        link.address_a(),
        link.address6_a(),
        &keys_b,
        link.underlay_address_b(),
    );
    let section_b = section(
        &link.tunnel_b,
        &keys_b,
        link.address_b(),
        link.address6_b(),
        &keys_a,
        link.underlay_address_a(),
    );
    Ok((link, section_a, section_b))
}

/// Waits until `tunnel` in `namespace` has had a handshake.
pub fn wait_for_handshake(namespace: &Namespace, tunnel: &str) -> anyhow::Result<()> {
    wait_for(Duration::from_secs(15), "the first handshake", || {
        namespace
            .check(&["wg", "show", tunnel, "latest-handshakes"])
            .is_ok_and(|text| {
                text.split_whitespace()
                    .nth(1)
                    .is_some_and(|epoch| epoch != "0")
            })
    })?;
    Ok(())
}

/// Two sites joined by `links` tunnels, A's daemon running.
#[derive(Debug)]
pub struct Lab {
    pub wgd: Wgd,
    pub a: Namespace,
    pub b: Namespace,
    pub links: Vec<Link>,
    pub socket: PathBuf,
    pub config_a: PathBuf,
    pub daemon: Option<Daemon>,
}

impl Lab {
    /// Both sites with `links` tunnels (with IPv6 addresses too, with
    /// `ipv6`); A's config gets `extra` after its
    /// tunnels' sections are written (a `[bridge]` or `[bgp]` section,
    /// which must not come between a tunnel and its peers: it goes first).
    /// B gets its ends with `wgd up`; B's LAN host 192.168.77.1 is on its
    /// `lo`. A's daemon is started and the first handshakes awaited.
    pub fn new(wgd: &Wgd, links: u8, extra: &str, ipv6: bool) -> anyhow::Result<Self> {
        let a = Namespace::new("ba")?;
        let b = Namespace::new("bb")?;
        b.add_address("lo", "192.168.77.1/24")?;
        let socket = a.dir().join("wgd.sock");
        let mut config_a = format!(
            "[daemon]\napi = \"{}\"\nmetrics = \"127.0.0.1:9586\"\n{extra}\n",
            socket.display()
        );
        let mut config_b = String::new();
        let mut all = Vec::new();
        for index in 0..links {
            let (link, section_a, section_b) = tunnel(&a, &b, index, ipv6)?;
            config_a.push_str(&section_a);
            config_b.push_str(&section_b);
            all.push(link);
        }
        let path_a = a.dir().join("a.toml");
        let path_b = b.dir().join("b.toml");
        write_private(&path_a, &config_a)?;
        write_private(&path_b, &config_b)?;
        wgd.run(&b, &["up", path_b.to_str().context("a UTF-8 path")?])?;
        let mut lab = Self {
            wgd: wgd.clone(),
            a,
            b,
            links: all,
            socket,
            config_a: path_a,
            daemon: None,
        };
        lab.start_daemon()?;
        for link in &lab.links {
            wait_for_handshake(&lab.a, &link.tunnel_a)?;
        }
        Ok(lab)
    }

    /// Starts A's `wgd run` and waits until its API answers; how long that
    /// took.
    pub fn start_daemon(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let config = self.config_a.to_str().context("a UTF-8 path")?.to_owned();
        self.daemon = Some(self.wgd.spawn(&self.a, &["run", "-c", &config])?);
        let socket = self.socket.to_str().context("a UTF-8 path")?.to_owned();
        let answered = wait_for(Duration::from_secs(30), "wgd run's API", || {
            self.wgd
                .run(&self.a, &["routes", "--owner", "none", "--api", &socket])
                .is_ok()
        });
        if let Err(error) = answered {
            bail!("{error}\nwgd log:\n{}", self.log());
        }
        Ok(started.elapsed())
    }

    /// `kill -9` of A's daemon.
    pub fn kill_daemon(&mut self) -> anyhow::Result<()> {
        if let Some(mut daemon) = self.daemon.take() {
            self.a.check(&["kill", "-9", &daemon.pid().to_string()])?;
            wait_for(Duration::from_secs(10), "the killed daemon to exit", || {
                !daemon.is_running()
            })?;
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }
}

/// Resident memory of a process in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// The most resident memory a process has had in bytes (VmHWM), since it
/// started or since [`reset_peak_rss`].
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Starts a process's peak resident memory (VmHWM) again from its
/// resident memory now (`clear_refs` 5, Linux 4.0).
pub fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of pid {pid}"))
}

fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .with_context(|| format!("no {field} for pid {pid}"))
}

/// Polls `condition` every `interval` until it holds (the time it first
/// did, measured from `since`) or `deadline` passes.
pub fn time_until(
    since: Instant,
    interval: Duration,
    deadline: Duration,
    what: &str,
    mut condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    loop {
        crate::check_interrupted()?;
        if condition()? {
            return Ok(since.elapsed());
        }
        if since.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(interval);
    }
}
