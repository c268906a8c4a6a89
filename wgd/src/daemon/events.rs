//! Turns successive status snapshots into events: tunnel up/down, peer
//! handshake, peer considered dead. Pure: time comes in as an argument.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::status::Status;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    TunnelUp,
    TunnelDown {
        reason: String,
    },
    PeerHandshake {
        public_key: String,
        endpoint: Option<String>,
    },
    PeerDead {
        public_key: String,
        latest_handshake_age_seconds: Option<u64>,
    },
    /// A BGP neighbor's BFD session over the tunnel changed state (from
    /// the speaker, not from the snapshots).
    BfdStateChange {
        peer: String,
        from: String,
        to: String,
        diagnostic: String,
        diagnostic_code: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time: SystemTime,
    pub tunnel: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
struct PeerTrack {
    /// When the latest handshake happened, as far as we can tell.
    handshake: Option<SystemTime>,
    /// First time the peer was seen, for peers that never shake hands.
    first_seen: SystemTime,
    dead_reported: bool,
}

/// Remembers the previous snapshot.
#[derive(Debug, Default)]
pub struct EventTracker {
    tunnels: BTreeMap<String, bool>,
    peers: BTreeMap<(String, String), PeerTrack>,
}

impl EventTracker {
    /// Whether the peer is considered dead: no handshake (or none since
    /// it was first seen) for the dead interval.
    pub fn is_dead(&self, tunnel: &str, public_key: &str) -> bool {
        self.peers
            .get(&(tunnel.to_owned(), public_key.to_owned()))
            .is_some_and(|track| track.dead_reported)
    }

    /// Compares `status` (taken at `now`) with the previous one.
    pub fn update(&mut self, status: &Status, now: SystemTime, dead_after: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let event = |tunnel: &str, kind| Event {
            time: now,
            tunnel: tunnel.to_owned(),
            kind,
        };
        let mut seen_peers = Vec::new();
        for tunnel in &status.tunnels {
            let before = self.tunnels.insert(tunnel.name.clone(), tunnel.up);
            if before != Some(tunnel.up) {
                if tunnel.up {
                    events.push(event(&tunnel.name, EventKind::TunnelUp));
                } else if before.is_some() || tunnel.reason.is_some() {
                    let reason = tunnel.reason.clone().unwrap_or_else(|| "down".into());
                    events.push(event(&tunnel.name, EventKind::TunnelDown { reason }));
                }
            }
            for peer in &tunnel.peers {
                let key = (tunnel.name.clone(), peer.public_key.clone());
                seen_peers.push(key.clone());
                // Ages are whole seconds: a handshake is new when it is
                // more than a second younger than the one we knew.
                let handshake = peer
                    .latest_handshake_age_seconds
                    .map(|age| now.checked_sub(Duration::from_secs(age)).unwrap_or(now));
                let track = self.peers.entry(key).or_insert(PeerTrack {
                    handshake: None,
                    first_seen: now,
                    dead_reported: false,
                });
                let newer = match (track.handshake, handshake) {
                    (None, Some(_)) => true,
                    (Some(old), Some(new)) => new
                        .duration_since(old)
                        .is_ok_and(|gap| gap > Duration::from_secs(1)),
                    _ => false,
                };
                if newer {
                    track.handshake = handshake;
                    track.dead_reported = false;
                    events.push(event(
                        &tunnel.name,
                        EventKind::PeerHandshake {
                            public_key: peer.public_key.clone(),
                            endpoint: peer.endpoint.clone(),
                        },
                    ));
                }
                let since = track.handshake.unwrap_or(track.first_seen);
                let silent = now.duration_since(since).unwrap_or_default();
                if silent > dead_after && !track.dead_reported {
                    track.dead_reported = true;
                    events.push(event(
                        &tunnel.name,
                        EventKind::PeerDead {
                            public_key: peer.public_key.clone(),
                            latest_handshake_age_seconds: peer.latest_handshake_age_seconds,
                        },
                    ));
                }
            }
        }
        self.peers.retain(|key, _| seen_peers.contains(key));
        // The status holds the config's tunnels: one that leaves it left
        // the config (and wgd took it down).
        let removed: Vec<String> = self
            .tunnels
            .keys()
            .filter(|name| !status.tunnels.iter().any(|tunnel| &tunnel.name == *name))
            .cloned()
            .collect();
        for name in removed {
            self.tunnels.remove(&name);
            events.push(event(
                &name,
                EventKind::TunnelDown {
                    reason: REMOVED.into(),
                },
            ));
        }
        events
    }

    /// Records that `tunnel` went down between two snapshots (its
    /// wireguard-go exited): the event to send at once, unless the tunnel
    /// was already known to be down. The next snapshot that shows it up
    /// again brings a `TunnelUp`, however fast the repair.
    pub fn went_down(&mut self, tunnel: &str, reason: String, now: SystemTime) -> Option<Event> {
        let before = self.tunnels.insert(tunnel.to_owned(), false);
        (before != Some(false)).then(|| Event {
            time: now,
            tunnel: tunnel.to_owned(),
            kind: EventKind::TunnelDown { reason },
        })
    }
}

/// Why a tunnel that left the status is down.
const REMOVED: &str = "removed from the config";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{PeerStatus, TunnelStatus};

    fn status(up: bool, age: Option<u64>) -> Status {
        Status {
            tunnels: vec![TunnelStatus {
                name: "wg-a".into(),
                up,
                backend: None,
                public_key: None,
                listen_port: None,
                addresses: vec![],
                peer_addresses: Default::default(),
                mtu: None,
                reason: if up {
                    None
                } else {
                    Some("interface not present".into())
                },
                peers: vec![PeerStatus {
                    name: None,
                    public_key: "peer".into(),
                    endpoint: None,
                    allowed_ips: vec![],
                    latest_handshake_age_seconds: age,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    persistent_keepalive: None,
                    alive: age.is_some(),
                }],
            }],
        }
    }

    #[test]
    fn handshake_then_dead_then_handshake_again() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let dead_after = Duration::from_secs(180);
        let mut tracker = EventTracker::default();

        assert_eq!(
            kinds(tracker.update(&status(true, None), start, dead_after)),
            vec![EventKind::TunnelUp]
        );
        let at = start + Duration::from_secs(10);
        assert_eq!(
            kinds(tracker.update(&status(true, Some(0)), at, dead_after)),
            vec![EventKind::PeerHandshake {
                public_key: "peer".into(),
                endpoint: None
            }]
        );
        // Same handshake seen later: nothing new.
        let later = at + Duration::from_secs(100);
        assert!(
            tracker
                .update(&status(true, Some(100)), later, dead_after)
                .is_empty()
        );
        // Past the dead interval: one PeerDead, not repeated.
        let silent = at + Duration::from_secs(181);
        assert_eq!(
            kinds(tracker.update(&status(true, Some(181)), silent, dead_after)),
            vec![EventKind::PeerDead {
                public_key: "peer".into(),
                latest_handshake_age_seconds: Some(181)
            }]
        );
        assert!(
            tracker
                .update(
                    &status(true, Some(190)),
                    silent + Duration::from_secs(9),
                    dead_after
                )
                .is_empty()
        );
        let back = silent + Duration::from_secs(20);
        assert_eq!(
            tracker
                .update(&status(true, Some(0)), back, dead_after)
                .len(),
            1
        );
        assert_eq!(
            kinds(tracker.update(&status(false, None), back, dead_after)),
            vec![EventKind::TunnelDown {
                reason: "interface not present".into()
            }]
        );
    }

    fn kinds(events: Vec<Event>) -> Vec<EventKind> {
        events.into_iter().map(|event| event.kind).collect()
    }

    #[test]
    fn a_tunnel_that_leaves_the_status_is_reported_down_once() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let dead_after = Duration::from_secs(180);
        let mut tracker = EventTracker::default();
        tracker.update(&status(true, Some(0)), start, dead_after);
        let empty = Status { tunnels: vec![] };
        assert_eq!(
            kinds(tracker.update(&empty, start + Duration::from_secs(2), dead_after)),
            vec![EventKind::TunnelDown {
                reason: "removed from the config".into()
            }]
        );
        assert!(
            tracker
                .update(&empty, start + Duration::from_secs(4), dead_after)
                .is_empty()
        );
        // Back in the config: up again, and its peer's handshake is news.
        assert_eq!(
            kinds(tracker.update(
                &status(true, Some(0)),
                start + Duration::from_secs(6),
                dead_after
            )),
            vec![
                EventKind::TunnelUp,
                EventKind::PeerHandshake {
                    public_key: "peer".into(),
                    endpoint: None
                }
            ]
        );
    }

    #[test]
    fn an_exit_is_reported_down_at_once_and_the_next_snapshot_up() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(3_000);
        let dead_after = Duration::from_secs(180);
        let mut tracker = EventTracker::default();
        tracker.update(&status(true, None), start, dead_after);
        let reason = "wireguard-go exited (signal: 9 (SIGKILL))";
        let down = tracker.went_down("wg-a", reason.into(), start);
        assert_eq!(
            down.map(|event| event.kind),
            Some(EventKind::TunnelDown {
                reason: reason.into()
            })
        );
        // Repaired before the next snapshot: it still shows the way back up.
        assert_eq!(
            kinds(tracker.update(
                &status(true, None),
                start + Duration::from_secs(1),
                dead_after
            )),
            vec![EventKind::TunnelUp]
        );
        // A snapshot saw it down first: the exit adds nothing.
        tracker.update(
            &status(false, None),
            start + Duration::from_secs(2),
            dead_after,
        );
        assert_eq!(
            tracker.went_down("wg-a", reason.into(), start + Duration::from_secs(2)),
            None
        );
    }

    #[test]
    fn a_peer_that_never_answers_is_declared_dead_once() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000);
        let mut tracker = EventTracker::default();
        tracker.update(&status(true, None), start, Duration::from_secs(30));
        assert!(
            tracker
                .update(
                    &status(true, None),
                    start + Duration::from_secs(29),
                    Duration::from_secs(30)
                )
                .is_empty()
        );
        let events = tracker.update(
            &status(true, None),
            start + Duration::from_secs(31),
            Duration::from_secs(30),
        );
        assert_eq!(events.len(), 1);
        assert!(matches!(
            events[0].kind,
            EventKind::PeerDead {
                latest_handshake_age_seconds: None,
                ..
            }
        ));
    }
}
