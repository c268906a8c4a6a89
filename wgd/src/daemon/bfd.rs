//! BFD state changes from the speaker onto the daemon's event stream
//! (`wgd events`), as `bfd-state` events of the session's tunnel.

use std::time::SystemTime;

use bgp_bridge::bgp::bfd::{Bfd, BfdChange};
use tokio::sync::broadcast;

use super::events::{Event, EventKind};

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
