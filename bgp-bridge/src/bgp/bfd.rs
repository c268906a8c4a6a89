//! BFD over the tunnels (RFC 5881, single hop): the handle `wgd run`
//! keeps for the `wgd-bfd` sessions, one per neighbor configured with
//! `bfd` and one per static route nexthop configured with `bfd` (a
//! nexthop that is also a BFD neighbor shares its session: one session
//! per peer and tunnel, as RFC 5882 asks of its clients).
//!
//! - `runtime`: the sessions and their sockets (`sockets`), in one task;
//! - `host`: the BFD process (`wgd bfdd`) that runs the runtime apart from
//!   `wgd run`, so that sessions outlive its restarts (C bit set);
//! - `client`: `wgd run`'s side of that process; `wire`: their messages.
//!
//! In: the neighbors (at start), the tunnel view (which tunnel each peer
//! is on, and its interface index) and the nexthops to watch
//! (`Bfd::set_nexthops`, from the config and `wgd route add --bfd`).
//! A task resolves each session's tunnel and declares the whole set to
//! the runtime, in this process (no [`BfdHost`]) or in the BFD process.
//! Out: state changes, given to the speaker through a callback for its
//! neighbors' sessions (a session that falls from Up takes its BGP
//! session down, RFC 5882, unless the neighbor said it shut BFD on
//! purpose) and to [`Bfd::subscribe`]rs; the status for `wgd bfd` and the
//! metrics; and the set of peers whose session fell (`Bfd::failed`),
//! which the daemon puts in the bridge's tunnel view so that routes
//! through them, whoever owns them, stop resolving.

mod client;
pub mod host;
mod runtime;
mod sockets;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
pub use wgd_bfd::{Diagnostic, State, Timers, Transition};

pub use client::BfdHost;
use runtime::{Command, Declared, Report, Runtime};

use super::speaker::NeighborConfig;
use super::types::NeighborId;
use crate::route::TunnelView;

/// One BFD session as `wgd bfd` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdStatus {
    pub neighbor: NeighborId,
    /// The tunnel it runs over, when that is there.
    pub tunnel: Option<String>,
    /// What it serves: a BGP neighbor's session, static routes' nexthop,
    /// or both.
    pub clients: Clients,
    pub state: State,
    pub remote_state: State,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// As configured.
    pub timers: Timers,
    /// As negotiated (RFC 5880 6.8.2, 6.8.4).
    pub transmit_interval: Duration,
    pub detection_time: Option<Duration>,
    pub up_since: Option<SystemTime>,
    /// Why it last went down (the Diag it sends).
    pub diagnostic: Diagnostic,
    pub state_changes: u64,
}

/// What a session serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clients {
    /// A BGP neighbor with `bfd`: a fall from Up resets its session.
    pub bgp: bool,
    /// A static route's nexthop with `bfd`.
    pub nexthop: bool,
}

impl Clients {
    /// `bgp`, `nexthop`, or both, for listings.
    pub fn names(self) -> Vec<&'static str> {
        [(self.bgp, "bgp"), (self.nexthop, "nexthop")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// A nexthop to run BFD to: an address, on the tunnel named or the one
/// whose subnet holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdNexthop {
    pub address: IpAddr,
    pub tunnel: Option<String>,
    pub timers: Timers,
}

impl BfdNexthop {
    /// The session's name: the address, with its tunnel when link-local.
    pub fn id(&self) -> Result<NeighborId, super::types::NeighborIdError> {
        NeighborId::new(self.address, self.tunnel.as_deref())
    }
}

/// A session's state change, for the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdChange {
    pub neighbor: NeighborId,
    pub tunnel: Option<String>,
    pub transition: Transition,
}

/// The handle the speaker (or, without `[bgp]`, the daemon) keeps.
#[derive(Debug, Clone)]
pub struct Bfd {
    status: Arc<Mutex<Vec<BfdStatus>>>,
    changes: broadcast::Sender<BfdChange>,
    nexthops: watch::Sender<Vec<BfdNexthop>>,
    failed: watch::Receiver<BTreeSet<(String, IpAddr)>>,
    /// Asks the BFD process to end (none: the sessions run here).
    shutdown: Option<mpsc::UnboundedSender<oneshot::Sender<()>>>,
}

impl Bfd {
    /// Starts a session for each neighbor with BFD configured, and one
    /// for each nexthop given later; `changed` hears every state change
    /// of the neighbors' sessions. With `host`, the sessions run in the
    /// BFD process there (found running, or started).
    pub fn start(
        neighbors: Vec<(NeighborId, NeighborConfig, Timers)>,
        tunnels: watch::Receiver<TunnelView>,
        changed: Box<dyn Fn(NeighborId, Transition) + Send>,
        host: Option<BfdHost>,
    ) -> Bfd {
        let status = Arc::new(Mutex::new(Vec::new()));
        let changes = broadcast::channel(256).0;
        let (nexthops, nexthop_updates) = watch::channel(Vec::new());
        let (failed_sender, failed) = watch::channel(BTreeSet::new());
        let (declared, declarations) = watch::channel(Vec::new());
        let (reports, report_receiver) = mpsc::unbounded_channel();
        tokio::spawn(declare(neighbors, tunnels, nexthop_updates, declared));
        let shutdown = match host {
            Some(host) => {
                let (shutdown, requests) = mpsc::unbounded_channel();
                client::spawn(host, declarations, reports, requests);
                Some(shutdown)
            }
            None => {
                let (commands, command_receiver) = mpsc::unbounded_channel();
                // Sharing fate with `wgd run`: the C bit stays clear.
                Runtime::spawn(command_receiver, reports, false);
                tokio::spawn(forward(declarations, commands));
                None
            }
        };
        tokio::spawn(take_reports(
            report_receiver,
            changed,
            changes.clone(),
            status.clone(),
            failed_sender,
        ));
        Bfd {
            status,
            changes,
            nexthops,
            failed,
            shutdown,
        }
    }

    /// Ends the BFD process, its sessions AdminDown first; returns once
    /// it has (or has not answered in a few seconds).
    pub async fn shutdown(&self) {
        if let Some(shutdown) = &self.shutdown {
            let (done, answer) = oneshot::channel();
            if shutdown.send(done).is_ok() {
                let _ = answer.await;
            }
        }
    }

    /// Every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BfdChange> {
        self.changes.subscribe()
    }

    /// The nexthops of static routes to run BFD to, replacing those given
    /// before: a session already running for one is left as it is (a
    /// reload that changes nothing touches nothing).
    pub fn set_nexthops(&self, mut nexthops: Vec<BfdNexthop>) {
        // One session per nexthop: the first timers given win (a stable
        // sort keeps them first).
        nexthops.sort_by(|a, b| (a.address, &a.tunnel).cmp(&(b.address, &b.tunnel)));
        nexthops.dedup_by(|later, first| {
            later.address == first.address && later.tunnel == first.tunnel
        });
        self.nexthops.send_if_modified(|current| {
            let changed = *current != nexthops;
            *current = nexthops;
            changed
        });
    }

    /// The peers (tunnel, address) whose session fell from Up and is not
    /// back; a session that never came up is not among them.
    pub fn failed(&self) -> watch::Receiver<BTreeSet<(String, IpAddr)>> {
        self.failed.clone()
    }

    pub fn status(&self) -> Vec<BfdStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Keeps `declared` to the sessions wanted: the neighbors', then the
/// nexthops' (a nexthop that is a neighbor shares its session, with the
/// neighbor's timers), each with its tunnel as the view has it.
async fn declare(
    neighbors: Vec<(NeighborId, NeighborConfig, Timers)>,
    mut tunnels: watch::Receiver<TunnelView>,
    mut nexthops: watch::Receiver<Vec<BfdNexthop>>,
    declared: watch::Sender<Vec<Declared>>,
) {
    let mut nexthops_open = true;
    loop {
        let sessions = {
            let view = tunnels.borrow_and_update();
            let wanted = nexthops.borrow_and_update();
            sessions(&neighbors, &wanted, &view)
        };
        declared.send_if_modified(|current| {
            let changed = *current != sessions;
            *current = sessions;
            changed
        });
        tokio::select! {
            changed = tunnels.changed() => if changed.is_err() { return },
            changed = nexthops.changed(), if nexthops_open => {
                // Every handle gone: the nexthops stay as they are.
                nexthops_open = changed.is_ok();
            }
            () = declared.closed() => return,
        }
    }
}

fn sessions(
    neighbors: &[(NeighborId, NeighborConfig, Timers)],
    nexthops: &[BfdNexthop],
    view: &TunnelView,
) -> Vec<Declared> {
    let locate = |address: IpAddr, tunnel: Option<&str>| {
        super::speaker::tunnel_of_peer(address, tunnel, view)
            .filter(|tunnel| tunnel.ifindex != 0)
            .map(|tunnel| (tunnel.name.clone(), tunnel.ifindex))
    };
    let mut sessions: BTreeMap<NeighborId, Declared> = BTreeMap::new();
    for (neighbor, config, timers) in neighbors {
        sessions.insert(
            *neighbor,
            Declared {
                neighbor: *neighbor,
                address: config.address,
                tunnel: locate(config.address, config.tunnel.as_deref()),
                timers: *timers,
                clients: Clients {
                    bgp: true,
                    nexthop: false,
                },
            },
        );
    }
    for nexthop in nexthops {
        let id = match nexthop.id() {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(address = %nexthop.address, %error, "BFD: nexthop left out");
                continue;
            }
        };
        sessions
            .entry(id)
            .or_insert_with(|| Declared {
                neighbor: id,
                address: nexthop.address,
                tunnel: locate(nexthop.address, nexthop.tunnel.as_deref()),
                timers: nexthop.timers,
                clients: Clients::default(),
            })
            .clients
            .nexthop = true;
    }
    sessions.into_values().collect()
}

/// Hands each declaration to the runtime of this process.
async fn forward(
    mut declarations: watch::Receiver<Vec<Declared>>,
    commands: mpsc::UnboundedSender<Command>,
) {
    loop {
        let sessions = declarations.borrow_and_update().clone();
        let command = Command::Declare {
            sessions,
            spare: BTreeSet::new(),
        };
        if commands.send(command).is_err() || declarations.changed().await.is_err() {
            return;
        }
    }
}

/// What the runtime reports, wherever it runs: the status, the failed
/// peers, and each state change to the speaker and the subscribers.
async fn take_reports(
    mut reports: mpsc::UnboundedReceiver<Report>,
    changed: Box<dyn Fn(NeighborId, Transition) + Send>,
    changes: broadcast::Sender<BfdChange>,
    status: Arc<Mutex<Vec<BfdStatus>>>,
    failed: watch::Sender<BTreeSet<(String, IpAddr)>>,
) {
    while let Some(report) = reports.recv().await {
        match report {
            Report::Status(sessions) => {
                let down: BTreeSet<(String, IpAddr)> = sessions
                    .iter()
                    .filter(|session| session.failed)
                    .filter_map(|session| {
                        let tunnel = session.status.tunnel.clone()?;
                        Some((tunnel, session.status.neighbor.address()))
                    })
                    .collect();
                *status.lock().unwrap_or_else(PoisonError::into_inner) =
                    sessions.into_iter().map(|session| session.status).collect();
                failed.send_if_modified(|current| {
                    let changed = *current != down;
                    *current = down;
                    changed
                });
            }
            Report::Change { change, bgp } => {
                if bgp {
                    changed(change.neighbor, change.transition);
                }
                let _ = changes.send(change);
            }
        }
    }
}

/// Whether a BFD state change takes the neighbor's BGP session down: only
/// a fall from Up (a session that never came up holds nothing down, as
/// with BIRD's `bfd graceful` and FRR), and not when either side shut BFD
/// on purpose (AdminDown, RFC 5882 3.2): the neighbor, or this side taking
/// a session it no longer wants down.
pub fn takes_bgp_down(transition: &Transition) -> bool {
    transition.from == State::Up
        && transition.to != State::Up
        && transition.to != State::AdminDown
        && transition.remote_state != State::AdminDown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: State, to: State, remote_state: State) -> Transition {
        let diagnostic = match (to, remote_state) {
            (State::Down, State::Down) => Diagnostic::ControlDetectionTimeExpired,
            (State::Down, _) => Diagnostic::NeighborSignaledSessionDown,
            _ => Diagnostic::None,
        };
        Transition {
            from,
            to,
            diagnostic,
            remote_state,
        }
    }

    #[test]
    fn only_a_fall_from_up_takes_bgp_down() {
        use State::*;
        // Lost packets, or the neighbor going down: BGP goes.
        assert!(takes_bgp_down(&change(Up, Down, Down)));
        assert!(takes_bgp_down(&change(Up, Down, Init)));
        // A session that never came up: Down and Init back and forth.
        assert!(!takes_bgp_down(&change(Down, Init, Down)));
        assert!(!takes_bgp_down(&change(Init, Down, Down)));
        // Coming up holds nothing down either.
        assert!(!takes_bgp_down(&change(Init, Up, Up)));
        assert!(!takes_bgp_down(&change(Down, Up, Init)));
        // The neighbor shut BFD on purpose: not a forwarding failure.
        assert!(!takes_bgp_down(&change(Up, Down, AdminDown)));
        // Nor this side taking a session down on purpose.
        assert!(!takes_bgp_down(&change(Up, AdminDown, Up)));
    }
}
