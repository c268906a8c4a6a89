//! FRR (`zebra` and `bgpd` from Debian's `frr`) as a lab node's routing
//! daemon, for interop tests: started inside a namespace with a path space
//! of its own (`-N`), so several run at once, asked with `vtysh -N`, and
//! stopped in `Drop`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Namespace, unique_name, wait_for};

#[derive(Debug)]
pub struct Frr {
    /// The namespace's name (the daemons are in it).
    namespace: String,
    /// The daemons started, zebra first.
    daemons: Vec<String>,
    /// Modules zebra loads (`-M`), such as `dplane_fpm_nl`.
    zebra_modules: Vec<String>,
    /// FRR's path space: `/var/run/frr/<name>/`.
    name: String,
    /// Config, pid files and log, readable by the `frr` user.
    dir: PathBuf,
}

impl Frr {
    /// Starts zebra and bgpd in `namespace` with `config` (frr.conf text).
    pub fn start(namespace: &Namespace, config: &str) -> anyhow::Result<Self> {
        Self::start_with(namespace, config, &["zebra", "bgpd"], &[])
    }

    /// Starts `daemons` (zebra first) in `namespace` with `config`, zebra
    /// loading `zebra_modules`.
    pub fn start_with(
        namespace: &Namespace,
        config: &str,
        daemons: &[&str],
        zebra_modules: &[&str],
    ) -> anyhow::Result<Self> {
        let name = unique_name("frr");
        let dir = std::env::temp_dir().join(format!("wgd-{name}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("frr.conf"), config)?;
        let run = PathBuf::from("/var/run/frr").join(&name);
        std::fs::create_dir_all(&run)?;
        for path in [&dir, &run, &dir.join("frr.conf")] {
            let status = std::process::Command::new("chown")
                .args(["frr:frr", path.to_str().context("a UTF-8 path")?])
                .status()?;
            anyhow::ensure!(status.success(), "chown frr {}", path.display());
        }
        let frr = Self {
            namespace: namespace.name().to_owned(),
            daemons: daemons.iter().map(|daemon| (*daemon).to_owned()).collect(),
            zebra_modules: zebra_modules
                .iter()
                .map(|module| (*module).to_owned())
                .collect(),
            name,
            dir,
        };
        for daemon in daemons {
            frr.start_daemon(namespace, daemon)?;
        }
        Ok(frr)
    }

    /// Starts one daemon (again, after [`kill`](Self::kill)).
    pub fn start_daemon(&self, namespace: &Namespace, daemon: &str) -> anyhow::Result<()> {
        let binary = format!("/usr/lib/frr/{daemon}");
        let config = self.dir.join("frr.conf");
        let pid = self.dir.join(format!("{daemon}.pid"));
        let mut argv = vec![
            binary.as_str(),
            "-d",
            "-N",
            &self.name,
            "-f",
            config.to_str().context("a UTF-8 path")?,
            "-i",
            pid.to_str().context("a UTF-8 path")?,
        ];
        if daemon == "zebra" {
            for module in &self.zebra_modules {
                argv.extend(["-M", module.as_str()]);
            }
        }
        namespace.check(&argv)?;
        wait_for(
            Duration::from_secs(10),
            &format!("{daemon} to answer vtysh"),
            || self.vtysh(&["show version"]).is_ok(),
        )?;
        Ok(())
    }

    /// `kill -9` of one daemon, as a crash.
    pub fn kill(&self, daemon: &str) -> anyhow::Result<()> {
        let pid = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid")))?;
        let pid = pid.trim();
        let number: u32 = pid.parse().context("a pid file holds a number")?;
        let status = std::process::Command::new("kill")
            .args(["-9", pid])
            .status()?;
        anyhow::ensure!(status.success(), "kill -9 {daemon} ({pid})");
        wait_for(Duration::from_secs(5), &format!("{daemon} to die"), || {
            !wgd_labs::host::process_running(number)
        })?;
        Ok(())
    }

    /// The path of one of this FRR's sockets (`zserv.api`, zebra's ZAPI).
    pub fn socket(&self, file: &str) -> String {
        format!("/var/run/frr/{}/{file}", self.name)
    }

    /// Runs vtysh commands against this FRR; their output.
    pub fn vtysh(&self, commands: &[&str]) -> anyhow::Result<String> {
        let mut command = std::process::Command::new("vtysh");
        command.args(["-N", &self.name]);
        for line in commands {
            command.args(["-c", line]);
        }
        let output = command.output()?;
        anyhow::ensure!(
            output.status.success(),
            "vtysh {commands:?} in {}: {}",
            self.namespace,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Frr {
    /// The protocol of zebra's selected route for `prefix` (`static`,
    /// `kernel`, ...), if it has one.
    pub fn selected(&self, prefix: &str) -> Option<String> {
        let family = if prefix.contains(':') { "ipv6" } else { "ip" };
        let text = self
            .vtysh(&[&format!("show {family} route {prefix} json")])
            .ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json[prefix].as_array()?.iter().find_map(|route| {
            (route["selected"] == true).then(|| route["protocol"].as_str().map(str::to_owned))?
        })
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for daemon in self.daemons.iter().rev() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/var/run/frr").join(&self.name));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
