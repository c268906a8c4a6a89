//! BFD state changes from the speaker onto the daemon's event stream
//! (`wgd events`), as `bfd-state` events of the session's tunnel; and
//! where the BFD process that holds the sessions lives.

use std::path::Path;
use std::time::SystemTime;

use bgp_bridge::bgp::bfd::{Bfd, BfdChange, BfdHost};
use tokio::sync::broadcast;

use super::events::{Event, EventKind};
use crate::config::Config;
use crate::reconcile::Host;

/// How long the BFD process keeps sessions nobody declares again, when
/// BGP's graceful restart does not say.
const DEFAULT_GRACE_SECONDS: u16 = 120;

/// The BFD process of this namespace: its socket and log beside wgd's
/// records (`WGD_STATE_DIR`, `/run/wgd` by default), started as
/// `wgd bfdd`; it keeps sessions for BGP's restart time (what graceful
/// restart covers on the peers), else two minutes.
pub fn host(host: &Host, config: &Config) -> BfdHost {
    let folder = host.state.path().parent().unwrap_or(Path::new("/run/wgd"));
    let grace = config
        .daemon
        .bgp
        .as_ref()
        .filter(|bgp| bgp.graceful_restart)
        .map_or(DEFAULT_GRACE_SECONDS, |bgp| bgp.restart_time);
    let program = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "wgd".to_owned());
    let socket = folder.join("bfd.sock");
    BfdHost {
        command: vec![
            program,
            "bfdd".to_owned(),
            "--socket".to_owned(),
            socket.display().to_string(),
            "--grace-time".to_owned(),
            grace.to_string(),
        ],
        socket,
        log: folder.join("bfdd.log"),
    }
}

/// Forwards every BFD state change of `bfd` to `events` until its
/// sessions' host is gone.
pub fn forward_changes(bfd: &Bfd, events: broadcast::Sender<Event>) {
    let mut changes = bfd.subscribe();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) => {
                    let _ = events.send(event(&change, SystemTime::now()));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "BFD state changes left off the event stream");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

fn event(change: &BfdChange, time: SystemTime) -> Event {
    Event {
        time,
        tunnel: change.tunnel.clone().unwrap_or_default(),
        kind: EventKind::BfdStateChange {
            peer: change.neighbor.to_string(),
            from: change.transition.from.name().to_owned(),
            to: change.transition.to.name().to_owned(),
            diagnostic: change.transition.diagnostic.to_string(),
            diagnostic_code: change.transition.diagnostic.code(),
        },
    }
}
