//! What `wgd run` tells systemd (sd_notify(3)), for `Type=notify` in
//! `wgd.service`: `READY=1` once the first reconcile is done (tunnels up,
//! the bridge's routes adopted), `RELOADING=1` and `READY=1` around a
//! SIGHUP reload, a `STATUS=` line a person can read whenever it changes
//! ("2 of 3 tunnels up, 1 BGP session established"), `WATCHDOG=1` at half
//! the interval systemd asks for (`WatchdogSec=`), and `STOPPING=1`.
//!
//! Each message is one datagram to `$NOTIFY_SOCKET`: a path, or a name in
//! the abstract namespace (`@name`). Without it (not under systemd) the
//! `Notifier` does nothing. Children (wireguard-go, hooks) inherit the
//! variable; `NotifyAccess=main` in the unit makes systemd ignore them.

use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::status::Status;

/// The daemon's side of systemd's notification socket.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    /// The last `STATUS=` sent, to send only changes.
    status: String,
}

impl Notifier {
    /// The notifier systemd's environment asks for: `NOTIFY_SOCKET`, and
    /// `WATCHDOG_USEC` (when `WATCHDOG_PID` is unset or this process).
    pub fn from_env() -> Self {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let socket = variable("NOTIFY_SOCKET").and_then(|path| match open(&path) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(socket = %path, %error, "cannot use NOTIFY_SOCKET; systemd will not hear that wgd is ready");
                None
            }
        });
        let ours = variable("WATCHDOG_PID")
            .is_none_or(|pid| pid.parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = variable("WATCHDOG_USEC")
            .filter(|_| ours)
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0)
            .map(|usec| Duration::from_micros(usec) / 2);
        Self {
            socket,
            watchdog,
            status: String::new(),
        }
    }

    /// Whether systemd listens (a status line is worth making).
    pub fn listening(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send `WATCHDOG=1`: half systemd's timeout, as
    /// sd_watchdog_enabled(3) advises; `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref().and(self.watchdog)
    }

    /// Startup or a reload is done.
    pub fn ready(&mut self, status: &str) {
        self.status = status.to_owned();
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// A reload starts. systemd 253 and later want the time with it, to
    /// tell this reload's READY=1 from an earlier one.
    pub fn reloading(&self) {
        let mut message = String::from("RELOADING=1");
        if let Some(usec) = monotonic_usec() {
            message.push_str(&format!("\nMONOTONIC_USEC={usec}"));
        }
        self.send(&message);
    }

    /// A new status line, sent when it differs from the last one.
    pub fn status(&mut self, status: &str) {
        if self.status != status {
            self.status = status.to_owned();
            self.send(&format!("STATUS={status}"));
        }
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        match socket.send_to_addr(message.as_bytes(), address) {
            Ok(_) => {}
            // The socket does not block: a systemd that does not read is
            // not a reason to stall the daemon.
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                tracing::warn!("systemd's notification socket is full; a message was dropped");
            }
            Err(error) => tracing::warn!(%error, "cannot notify systemd"),
        }
    }
}

/// An unbound datagram socket and the address `NOTIFY_SOCKET` names.
fn open(path: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let address = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
        None => {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "neither an absolute path nor @abstract",
            ));
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok((socket, address))
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares.
fn monotonic_usec() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    let seconds = u64::try_from(now.tv_sec()).ok()?;
    let micros = u64::try_from(now.tv_nsec()).ok()? / 1000;
    Some(seconds * 1_000_000 + micros)
}

/// The `STATUS=` line: tunnels up of those configured, and BGP sessions
/// established of those configured when there is a speaker. `note` (a
/// refused reload) goes at the end.
pub fn status_line(
    status: &Status,
    configured: usize,
    bgp: Option<&bgp_bridge::bgp::speaker::SpeakerStatus>,
    note: Option<&str>,
) -> String {
    let up = status.tunnels.iter().filter(|tunnel| tunnel.up).count();
    let mut line = of(up, configured, "tunnel", "up");
    if let Some(bgp) = bgp {
        let established = bgp
            .neighbors
            .iter()
            .filter(|neighbor| neighbor.state == bgp_bridge::bgp::session::State::Established)
            .count();
        line.push_str(", ");
        line.push_str(&of(
            established,
            bgp.neighbors.len(),
            "BGP session",
            "established",
        ));
    }
    if let Some(note) = note {
        line.push_str("; ");
        line.push_str(note);
    }
    line
}

/// `3 tunnels up` when all are, `2 of 3 tunnels up` otherwise.
fn of(count: usize, total: usize, noun: &str, state: &str) -> String {
    let plural = if total == 1 { "" } else { "s" };
    if count == total {
        format!("{total} {noun}{plural} {state}")
    } else {
        format!("{count} of {total} {noun}{plural} {state}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::TunnelStatus;

    fn tunnel(name: &str, up: bool) -> TunnelStatus {
        TunnelStatus {
            name: name.to_owned(),
            up,
            backend: None,
            public_key: None,
            listen_port: None,
            addresses: vec![],
            peer_addresses: Default::default(),
            mtu: None,
            peers: vec![],
            reason: None,
        }
    }

    #[test]
    fn the_status_line_counts_tunnels_and_sessions() {
        let status = Status {
            tunnels: vec![tunnel("a", true), tunnel("b", true), tunnel("c", true)],
        };
        assert_eq!(status_line(&status, 3, None, None), "3 tunnels up");
        let status = Status {
            tunnels: vec![tunnel("a", true), tunnel("b", false)],
        };
        assert_eq!(status_line(&status, 3, None, None), "1 of 3 tunnels up");
        assert_eq!(
            status_line(&Status { tunnels: vec![] }, 0, None, Some("reload refused")),
            "0 tunnels up; reload refused"
        );
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("wgd-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (socket, address) = open(&format!("@{name}")).unwrap();
        let mut notifier = Notifier {
            socket: Some((socket, address)),
            watchdog: Some(Duration::from_secs(1)),
            status: String::new(),
        };
        let read = || {
            let mut buffer = [0; 512];
            let length = receiver.recv(&mut buffer).unwrap();
            String::from_utf8(buffer[..length].to_vec()).unwrap()
        };
        notifier.ready("1 tunnel up");
        assert_eq!(read(), "READY=1\nSTATUS=1 tunnel up");
        notifier.status("1 tunnel up");
        notifier.status("0 of 1 tunnel up");
        // The unchanged status was not sent again.
        assert_eq!(read(), "STATUS=0 of 1 tunnel up");
        notifier.reloading();
        let reloading = read();
        let usec: u64 = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{reloading}"))
            .parse()
            .unwrap();
        let now = monotonic_usec().unwrap();
        assert!(usec <= now && now - usec < 5_000_000, "{usec} vs {now}");
        notifier.watchdog();
        assert_eq!(read(), "WATCHDOG=1");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn only_absolute_paths_and_abstract_names_are_sockets() {
        assert!(open("relative/socket").is_err());
        assert!(open("/run/systemd/notify").is_ok());
        assert!(open("@name").is_ok());
    }
}
