//! systemd's end of the notification protocol (sd_notify(3)), for tests
//! of `wgd run` under `Type=notify` without systemd: a datagram socket of
//! the test's own that `wgd run` is pointed at with `NOTIFY_SOCKET`.
//!
//! The socket is a path in a private temporary folder (a path, not an
//! abstract name: abstract names belong to one network namespace, and the
//! daemon runs in another); the folder and the socket go when the
//! `NotifySocket` is dropped.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn bind() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("wgd-notify-")
            .tempdir()
            .context("a folder for the notification socket")?;
        let path = dir.path().join("notify");
        let socket =
            UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        Ok(Self {
            socket,
            path,
            _dir: dir,
        })
    }

    /// What `NOTIFY_SOCKET` must say.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next message, or `None` if none comes within `deadline`.
    pub fn next(&self, deadline: Duration) -> anyhow::Result<Option<String>> {
        self.socket
            .set_read_timeout(Some(deadline.max(Duration::from_millis(1))))?;
        let mut buffer = vec![0; 4096];
        match self.socket.recv(&mut buffer) {
            Ok(length) => Ok(Some(
                String::from_utf8_lossy(&buffer[..length]).into_owned(),
            )),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(None)
            }
            Err(error) => Err(error).context("reading the notification socket"),
        }
    }

    /// Every message up to and including the first that `last` accepts,
    /// within `deadline`; an error naming `what` and what came otherwise.
    pub fn until(
        &self,
        deadline: Duration,
        what: &str,
        last: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let start = Instant::now();
        let mut messages = Vec::new();
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            match self.next(left)? {
                Some(message) => {
                    let done = last(&message);
                    messages.push(message);
                    if done {
                        return Ok(messages);
                    }
                }
                None => bail!("no {what} within {deadline:?}; got {messages:?}"),
            }
        }
    }
}
