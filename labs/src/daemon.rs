//! A long-running process inside a namespace, owned by the test or lab that
//! started it.
//!
//! Its stdout and stderr go to one log file in a private temporary directory;
//! [`Daemon::log`] reads it back for failure messages. Dropping a `Daemon`
//! stops the process (SIGTERM, then SIGKILL after [`STOP_DEADLINE`]); when the
//! drop happens because a test panicked, the log is printed to stderr so the
//! failure shows what the daemon said.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::command::{check, describe_status, display};
use crate::{Error, Result};

/// How long a daemon gets to exit after SIGTERM before it is killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// A process started with [`Namespace::spawn`](crate::Namespace::spawn).
#[derive(Debug)]
pub struct Daemon {
    /// The command line, for messages.
    command: String,
    child: Child,
    /// How the process ended, once it has been reaped.
    exit: Option<ExitStatus>,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `argv` (already wrapped in `ip netns exec` by the caller).
    pub(crate) fn start(argv: &[&str]) -> Result<Self> {
        let command = display(argv);
        let io_error = |context: &'static str| {
            let context = format!("`{command}`: {context}");
            move |source| Error::Io { context, source }
        };
        let log_dir = tempfile::Builder::new()
            .prefix("wgd-labs-daemon-")
            .tempdir()
            .map_err(io_error("creating the log directory"))?;
        let log = log_dir.path().join("log");
        let file = File::create(&log).map_err(io_error("creating the log file"))?;
        let (program, args) = argv.split_first().expect("a command has a program");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(io_error("opening the log file"))?)
            .stderr(file)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(Self {
            command,
            child,
            exit: None,
            log,
            _log_dir: log_dir,
        })
    }

    /// The process id (`ip netns exec` execs the command in place, so this is
    /// the daemon itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the daemon wrote so far (lossy UTF-8; empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after [`STOP_DEADLINE`]) and
    /// returns how it ended. Stopping an exited daemon returns its status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.poll_exit() {
            return Ok(status);
        }
        // The child is not reaped yet, so its pid cannot have been reused.
        let _ = check(&["kill", "-TERM", &self.pid().to_string()]);
        let asked = Instant::now();
        while asked.elapsed() < STOP_DEADLINE {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self.child.wait().map_err(|source| Error::Io {
            context: format!("`{}`: waiting after SIGKILL", self.command),
            source,
        })?;
        self.exit = Some(status);
        Ok(status)
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let ended = match self.stop() {
            Ok(status) => describe_status(status),
            Err(error) => error.to_string(),
        };
        if std::thread::panicking() {
            eprintln!(
                "--- log of `{}` ({ended}) ---\n{}--- end of log ---",
                self.command,
                self.log()
            );
        }
    }
}
