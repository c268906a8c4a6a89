//! What `wgd run` and the BFD process say to each other over the BFD
//! process's Unix socket: one JSON object a line. `wgd run` declares the
//! sessions it wants (each time they change) or asks the process to end;
//! the process answers with the sessions' status (each time it changes),
//! every state change, and a refusal for a declaration it cannot read.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use wgd_bfd::{Diagnostic, State, Timers, Transition};

use super::runtime::{Declared, SessionStatus};
use super::{BfdChange, BfdStatus, Clients};
use crate::bgp::types::NeighborId;

/// From `wgd run` to the BFD process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToHost {
    /// Every session `wgd run` wants now.
    Declare(Vec<WireSession>),
    /// Take every session AdminDown, and end.
    Shutdown,
}

/// From the BFD process to `wgd run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToClient {
    Status(Vec<WireStatus>),
    Change(WireChange),
    /// A declaration refused whole, and why; nothing changed.
    Refused(String),
    /// The sessions are AdminDown: the process ends.
    Bye,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireTimers {
    pub transmit_us: u64,
    pub receive_us: u64,
    pub multiplier: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSession {
    pub neighbor: String,
    pub address: IpAddr,
    pub tunnel: Option<String>,
    pub ifindex: u32,
    pub timers: WireTimers,
    pub bgp: bool,
    pub nexthop: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireStatus {
    pub neighbor: String,
    pub tunnel: Option<String>,
    pub bgp: bool,
    pub nexthop: bool,
    pub state: State,
    pub remote_state: State,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    pub timers: WireTimers,
    pub transmit_interval_us: u64,
    pub detection_time_us: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub up_since_ms: Option<u64>,
    pub diagnostic: u8,
    pub state_changes: u64,
    pub failed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireChange {
    pub neighbor: String,
    pub tunnel: Option<String>,
    pub from: State,
    pub to: State,
    pub diagnostic: u8,
    pub remote_state: State,
    pub bgp: bool,
}

/// A message that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BFD process message: {0}")]
pub struct WireError(String);

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn neighbor(text: &str) -> Result<NeighborId, WireError> {
    text.parse()
        .map_err(|error| WireError(format!("neighbor \"{text}\": {error}")))
}

impl From<Timers> for WireTimers {
    fn from(timers: Timers) -> Self {
        WireTimers {
            transmit_us: micros(timers.desired_min_tx()),
            receive_us: micros(timers.required_min_rx()),
            multiplier: timers.detect_multiplier(),
        }
    }
}

impl TryFrom<&WireTimers> for Timers {
    type Error = WireError;

    fn try_from(wire: &WireTimers) -> Result<Self, WireError> {
        Timers::new(
            Duration::from_micros(wire.transmit_us),
            Duration::from_micros(wire.receive_us),
            wire.multiplier,
        )
        .map_err(|error| WireError(format!("timers: {error}")))
    }
}

impl From<&Declared> for WireSession {
    fn from(declared: &Declared) -> Self {
        WireSession {
            neighbor: declared.neighbor.to_string(),
            address: declared.address,
            tunnel: declared.tunnel.as_ref().map(|(name, _)| name.clone()),
            ifindex: declared.tunnel.as_ref().map_or(0, |(_, index)| *index),
            timers: declared.timers.into(),
            bgp: declared.clients.bgp,
            nexthop: declared.clients.nexthop,
        }
    }
}

impl TryFrom<&WireSession> for Declared {
    type Error = WireError;

    fn try_from(wire: &WireSession) -> Result<Self, WireError> {
        let id = neighbor(&wire.neighbor)?;
        if id.address() != wire.address {
            return Err(WireError(format!(
                "neighbor {id}: address {} is not its own",
                wire.address
            )));
        }
        let tunnel = match &wire.tunnel {
            Some(name) if wire.ifindex == 0 => {
                return Err(WireError(format!(
                    "neighbor {id}: tunnel {name} without an interface index"
                )));
            }
            Some(name) => Some((name.clone(), wire.ifindex)),
            None => None,
        };
        Ok(Declared {
            neighbor: id,
            address: wire.address,
            tunnel,
            timers: Timers::try_from(&wire.timers)
                .map_err(|WireError(error)| WireError(format!("neighbor {id}: {error}")))?,
            clients: Clients {
                bgp: wire.bgp,
                nexthop: wire.nexthop,
            },
        })
    }
}

impl From<&SessionStatus> for WireStatus {
    fn from(session: &SessionStatus) -> Self {
        let status = &session.status;
        WireStatus {
            neighbor: status.neighbor.to_string(),
            tunnel: status.tunnel.clone(),
            bgp: status.clients.bgp,
            nexthop: status.clients.nexthop,
            state: status.state,
            remote_state: status.remote_state,
            local_discriminator: status.local_discriminator,
            remote_discriminator: status.remote_discriminator,
            timers: status.timers.into(),
            transmit_interval_us: micros(status.transmit_interval),
            detection_time_us: status.detection_time.map(micros),
            up_since_ms: status.up_since.and_then(|time| {
                let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
                u64::try_from(since.as_millis()).ok()
            }),
            diagnostic: status.diagnostic.code(),
            state_changes: status.state_changes,
            failed: session.failed,
        }
    }
}

impl TryFrom<&WireStatus> for SessionStatus {
    type Error = WireError;

    fn try_from(wire: &WireStatus) -> Result<Self, WireError> {
        Ok(SessionStatus {
            status: BfdStatus {
                neighbor: neighbor(&wire.neighbor)?,
                tunnel: wire.tunnel.clone(),
                clients: Clients {
                    bgp: wire.bgp,
                    nexthop: wire.nexthop,
                },
                state: wire.state,
                remote_state: wire.remote_state,
                local_discriminator: wire.local_discriminator,
                remote_discriminator: wire.remote_discriminator,
                timers: Timers::try_from(&wire.timers)?,
                transmit_interval: Duration::from_micros(wire.transmit_interval_us),
                detection_time: wire.detection_time_us.map(Duration::from_micros),
                up_since: wire
                    .up_since_ms
                    .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
                diagnostic: Diagnostic::from_code(wire.diagnostic),
                state_changes: wire.state_changes,
            },
            failed: wire.failed,
        })
    }
}

impl WireChange {
    pub fn new(change: &BfdChange, bgp: bool) -> Self {
        WireChange {
            neighbor: change.neighbor.to_string(),
            tunnel: change.tunnel.clone(),
            from: change.transition.from,
            to: change.transition.to,
            diagnostic: change.transition.diagnostic.code(),
            remote_state: change.transition.remote_state,
            bgp,
        }
    }

    /// The change, and whether its session serves a BGP neighbor.
    pub fn read(&self) -> Result<(BfdChange, bool), WireError> {
        let change = BfdChange {
            neighbor: neighbor(&self.neighbor)?,
            tunnel: self.tunnel.clone(),
            transition: Transition {
                from: self.from,
                to: self.to,
                diagnostic: Diagnostic::from_code(self.diagnostic),
                remote_state: self.remote_state,
            },
        };
        Ok((change, self.bgp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_round_trips_and_bad_ones_are_refused() {
        let declared = Declared {
            neighbor: "fe80::2%wg-b".parse().unwrap(),
            address: "fe80::2".parse().unwrap(),
            tunnel: Some(("wg-b".to_owned(), 7)),
            timers: Timers::default(),
            clients: Clients {
                bgp: true,
                nexthop: false,
            },
        };
        let line = serde_json::to_string(&ToHost::Declare(vec![(&declared).into()])).unwrap();
        let ToHost::Declare(sessions) = serde_json::from_str(&line).unwrap() else {
            panic!("not a declaration: {line}");
        };
        assert_eq!(Declared::try_from(&sessions[0]), Ok(declared));

        let mut wrong = sessions[0].clone();
        wrong.address = "fe80::3".parse().unwrap();
        assert!(Declared::try_from(&wrong).is_err());
        let mut wrong = sessions[0].clone();
        wrong.timers.multiplier = 0;
        let error = Declared::try_from(&wrong).unwrap_err().to_string();
        assert!(error.contains("multiplier"), "{error}");
        let mut wrong = sessions[0].clone();
        wrong.neighbor = "fe80::2".to_owned();
        assert!(Declared::try_from(&wrong).is_err());
    }
}
