//! BIRD 2 (Debian's `bird2`) as a lab node's routing daemon, for interop
//! tests: started inside a namespace with a config, control socket, pid
//! file and log in a directory of its own (so several run at once), asked
//! with `birdc -s`, reconfigured in place, killed and started again as a
//! crash would, and stopped in `Drop`.

use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Namespace, wait_for};

#[derive(Debug)]
pub struct Bird {
    /// The namespace's name (bird runs in it).
    namespace: String,
    /// Config, control socket, pid file and log; removed after `Drop` has
    /// stopped bird.
    dir: tempfile::TempDir,
}

impl Bird {
    /// Starts bird in `namespace` with `config` (bird.conf text, without a
    /// `log` line: the log goes to a file of its own, see [`log`](Self::log)).
    pub fn start(namespace: &Namespace, config: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("wgd-bird-")
            .tempdir()
            .context("creating bird's directory")?;
        let bird = Self {
            namespace: namespace.name().to_owned(),
            dir,
        };
        bird.write_config(config)?;
        bird.start_daemon(namespace, false)?;
        Ok(bird)
    }

    /// Starts bird (again, after [`kill`](Self::kill)) and waits until it
    /// answers on its control socket. With `recovery`, bird starts in
    /// graceful restart recovery (`-R`): its BGP sessions announce a
    /// restart, and kernel protocols with `graceful restart on` keep the
    /// routes a previous bird left in the kernel until the protocols that
    /// take part in graceful restart have converged, instead of pruning
    /// them at once.
    pub fn start_daemon(&self, namespace: &Namespace, recovery: bool) -> anyhow::Result<()> {
        let config = self.path("bird.conf")?;
        let socket = self.path("bird.ctl")?;
        let pid = self.path("bird.pid")?;
        let mut argv = vec!["bird", "-c", &config, "-s", &socket, "-P", &pid];
        if recovery {
            argv.push("-R");
        }
        namespace.check(&argv)?;
        wait_for(
            Duration::from_secs(10),
            "bird to answer on its control socket",
            || {
                self.birdc(&["show", "status"])
                    .is_ok_and(|status| status.contains("Daemon is up and running"))
            },
        )?;
        Ok(())
    }

    /// Replaces the config with `config` and has bird apply it
    /// (`birdc configure`).
    pub fn reconfigure(&self, config: &str) -> anyhow::Result<()> {
        self.write_config(config)?;
        let output = self.birdc(&["configure"])?;
        anyhow::ensure!(
            output.contains("Reconfigured") || output.contains("Reconfiguration in progress"),
            "birdc configure in {}: {output}",
            self.namespace
        );
        Ok(())
    }

    /// `kill -9` of bird, as a crash: it cleans nothing up.
    pub fn kill(&self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let number: u32 = pid.parse().context("a pid file holds a number")?;
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()?;
        anyhow::ensure!(status.success(), "kill -9 bird ({pid})");
        wait_for(Duration::from_secs(5), "bird to die", || {
            !wgd_labs::host::process_running(number)
        })?;
        Ok(())
    }

    /// `birdc -s <socket> <args>`: its output, or an error if birdc fails
    /// or bird answers with an error (a reply code from 8000 up, or 9001
    /// for a syntax error).
    pub fn birdc(&self, args: &[&str]) -> anyhow::Result<String> {
        let socket = self.path("bird.ctl")?;
        let output = std::process::Command::new("birdc")
            .args(["-s", &socket])
            .args(args)
            .output()
            .context("is bird2 installed?")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(
            output.status.success()
                && !stdout.contains("Unable to connect")
                && !stdout.lines().any(|line| line.starts_with("syntax error")),
            "birdc {args:?} in {}: {}{stdout}",
            self.namespace,
            String::from_utf8_lossy(&output.stderr),
        );
        Ok(stdout)
    }

    /// `birdc show protocols all`, or what went wrong asking: for failure
    /// messages.
    pub fn protocols(&self) -> String {
        self.birdc(&["show", "protocols", "all"])
            .unwrap_or_else(|error| format!("{error:#}"))
    }

    /// bird's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }

    fn pid(&self) -> anyhow::Result<String> {
        let path = self.dir.path().join("bird.pid");
        let pid = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(pid.trim().to_owned())
    }

    /// Writes bird.conf: `config` after a line sending the log to the
    /// directory's `bird.log`.
    fn write_config(&self, config: &str) -> anyhow::Result<()> {
        let path = self.dir.path().join("bird.conf");
        let log = self.path("bird.log")?;
        let text = format!("log \"{log}\" all;\n{config}");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// `dir/name` as text, the way bird's command line takes it.
    fn path(&self, name: &str) -> anyhow::Result<String> {
        let path = self.dir.path().join(name);
        Ok(path.to_str().context("a UTF-8 path")?.to_owned())
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        // After `kill` without a new start, the pid is stale: quietly.
        if let Ok(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
