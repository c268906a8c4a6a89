//! The sessions and their sockets: one task owns every session, in
//! `wgd run` itself or in the BFD process (`host`), the same code.
//!
//! In: [`Command`]s (the sessions wanted, each with its tunnel already
//! resolved to a name and interface index; a declaration takes the
//! sessions it leaves out AdminDown, but those it spares), datagrams to port 3784 and the
//! clock (each session's next deadline). Out: control packets, and
//! [`Report`]s: every state change, and the sessions' status whenever it
//! differs from the last one reported.
//!
//! A received packet goes to the session its Your Discriminator names, or
//! while that is zero, to the session of the tunnel and source address it
//! came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wgd_bfd::{Action, CONTROL_PORT, Input, Session, SessionConfig, State, Timers};

use super::sockets::{Datagram, read, receiver, sender};
use super::{BfdChange, BfdStatus, Clients, takes_bgp_down};
use crate::bgp::types::NeighborId;

/// How long a session taken AdminDown keeps telling its neighbor so
/// before it is dropped (a packet a second: a lost one is not the last).
const LEAVING: Duration = Duration::from_millis(2500);

/// A session as its client wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub neighbor: NeighborId,
    pub address: IpAddr,
    /// The tunnel's name and interface index, when it is there.
    pub tunnel: Option<(String, u32)>,
    pub timers: Timers,
    pub clients: Clients,
}

/// What the runtime is asked.
#[derive(Debug)]
pub enum Command {
    /// These sessions, made or changed as needed (an unchanged one is
    /// not touched); every other one goes AdminDown, but those in
    /// `spare`, which stay as they are.
    Declare {
        sessions: Vec<Declared>,
        spare: BTreeSet<NeighborId>,
    },
}

/// What the runtime tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Every session (those leaving left out).
    Status(Vec<SessionStatus>),
    /// A state change; `bgp` when the session serves a BGP neighbor.
    Change { change: BfdChange, bgp: bool },
}

/// A session's status and whether it fell from Up and is not back.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatus {
    pub status: BfdStatus,
    pub failed: bool,
}

struct Peer {
    address: IpAddr,
    clients: Clients,
    session: Session,
    /// The tunnel's name and interface index, when it is there.
    tunnel: Option<(String, u32)>,
    /// Bound to the tunnel, source port in 49152-65535, TTL 255.
    socket: Option<UdpSocket>,
    up_since: Option<SystemTime>,
    state_changes: u64,
    /// Fell from Up (`takes_bgp_down`) and not back.
    failed: bool,
    /// Taken AdminDown: dropped at this time.
    leaving: Option<Instant>,
}

/// Reading sockets are keyed by tunnel, interface index and family.
type ReaderKey = (String, u32, bool);

pub(super) struct Runtime {
    peers: BTreeMap<NeighborId, Peer>,
    readers: HashMap<ReaderKey, tokio::task::JoinHandle<()>>,
    datagrams: mpsc::UnboundedSender<Datagram>,
    reports: mpsc::UnboundedSender<Report>,
    last_status: Option<Vec<SessionStatus>>,
    next_discriminator: u32,
    /// The C bit of every session's packets.
    control_plane_independent: bool,
}

impl Runtime {
    /// Runs until `commands` closes and every session taken AdminDown is
    /// gone; `reports` hears what happens.
    pub fn spawn(
        commands: mpsc::UnboundedReceiver<Command>,
        reports: mpsc::UnboundedSender<Report>,
        control_plane_independent: bool,
    ) -> tokio::task::JoinHandle<()> {
        let (datagrams, incoming) = mpsc::unbounded_channel();
        let runtime = Runtime {
            peers: BTreeMap::new(),
            readers: HashMap::new(),
            datagrams,
            reports,
            last_status: None,
            next_discriminator: discriminator_base(),
            control_plane_independent,
        };
        tokio::spawn(runtime.run(commands, incoming))
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut incoming: mpsc::UnboundedReceiver<Datagram>,
    ) {
        let mut open = true;
        self.publish();
        loop {
            if !open && self.peers.is_empty() {
                // Nobody to ask for more, and the last AdminDowns are out.
                break;
            }
            let deadline = self
                .peers
                .values()
                .map(|peer| {
                    let next = Instant::from_std(peer.session.next_deadline());
                    peer.leaving.map_or(next, |leaving| next.min(leaving))
                })
                .min();
            tokio::select! {
                command = commands.recv(), if open => match command {
                    Some(Command::Declare { sessions, spare }) => self.follow(sessions, &spare),
                    None => {
                        open = false;
                        self.follow(Vec::new(), &BTreeSet::new());
                    }
                },
                Some(datagram) = incoming.recv() => self.receive(datagram),
                () = sleep_until(deadline) => self.tick(),
            }
            self.publish();
        }
        for reader in self.readers.values() {
            reader.abort();
        }
    }

    /// The sessions wanted: new ones made, changed ones changed (new
    /// timers through a poll sequence, a new tunnel through a new
    /// socket), and the others but those `spare` taken AdminDown.
    fn follow(&mut self, sessions: Vec<Declared>, spare: &BTreeSet<NeighborId>) {
        let now = Instant::now();
        let wanted: BTreeMap<NeighborId, Declared> = sessions
            .into_iter()
            .map(|declared| (declared.neighbor, declared))
            .collect();
        let leaving: Vec<NeighborId> = self
            .peers
            .iter()
            .filter(|(id, peer)| {
                peer.leaving.is_none() && !wanted.contains_key(id) && !spare.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for neighbor in leaving {
            tracing::info!(%neighbor, "BFD: session no longer wanted, AdminDown");
            self.drive(neighbor, Input::AdminDown);
            if let Some(peer) = self.peers.get_mut(&neighbor) {
                peer.leaving = Some(now + LEAVING);
            }
        }
        for (neighbor, declared) in wanted {
            let peer = match self.peers.get_mut(&neighbor) {
                Some(peer) => peer,
                None => {
                    tracing::info!(%neighbor, "BFD: new session");
                    let peer = Peer::new(
                        declared.address,
                        declared.timers,
                        &mut self.next_discriminator,
                        self.control_plane_independent,
                    );
                    self.peers.entry(neighbor).or_insert(peer)
                }
            };
            peer.clients = declared.clients;
            let back = peer.leaving.take().is_some();
            let retimed = peer.session.timers() != declared.timers;
            if back {
                self.drive(neighbor, Input::Enable);
            }
            if retimed {
                self.drive(neighbor, Input::Timers(declared.timers));
            }
            self.locate(neighbor, declared.tunnel);
        }
        self.open_readers();
    }

    /// A session's tunnel: a new one (or a new interface index) gets a
    /// new sending socket.
    fn locate(&mut self, neighbor: NeighborId, found: Option<(String, u32)>) {
        let Some(peer) = self.peers.get_mut(&neighbor) else {
            return;
        };
        if found == peer.tunnel {
            return;
        }
        peer.socket = None;
        peer.tunnel = found.clone();
        let Some((name, _)) = found else {
            tracing::info!(%neighbor, "BFD: the neighbor's tunnel is not there");
            return;
        };
        let v6 = peer.address.is_ipv6();
        match sender(&name, v6, peer.session.local_discriminator()) {
            Ok(socket) => peer.socket = Some(socket),
            Err(error) => {
                tracing::warn!(%neighbor, tunnel = %name, %error, "BFD: cannot open the sending socket")
            }
        }
    }

    /// A reading socket for each tunnel and family with a session.
    fn open_readers(&mut self) {
        let wanted: Vec<ReaderKey> = self
            .peers
            .values()
            .filter_map(|peer| {
                let (name, ifindex) = peer.tunnel.as_ref()?;
                Some((name.clone(), *ifindex, peer.address.is_ipv6()))
            })
            .collect();
        self.readers.retain(|key, reader| {
            let keep = wanted.contains(key);
            if !keep {
                reader.abort();
            }
            keep
        });
        for key in wanted {
            if self.readers.contains_key(&key) {
                continue;
            }
            match receiver(&key.0, key.2) {
                Ok(socket) => {
                    let datagrams = self.datagrams.clone();
                    let tunnel = key.0.clone();
                    let reader = tokio::spawn(read(socket, tunnel, datagrams));
                    self.readers.insert(key, reader);
                }
                Err(error) => {
                    tracing::warn!(tunnel = %key.0, %error, "BFD: cannot listen on port 3784")
                }
            }
        }
    }

    fn receive(&mut self, datagram: Datagram) {
        let your = datagram
            .payload
            .get(8..12)
            .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .unwrap_or(0);
        let from = canonical(datagram.from);
        let found = self.peers.iter().find_map(|(neighbor, peer)| {
            let on_tunnel = peer
                .tunnel
                .as_ref()
                .is_some_and(|(name, _)| *name == datagram.tunnel);
            let ours = if your != 0 {
                peer.session.local_discriminator() == your
            } else {
                canonical(peer.address) == from
            };
            (on_tunnel && ours).then_some(*neighbor)
        });
        let Some(neighbor) = found else {
            tracing::debug!(tunnel = %datagram.tunnel, from = %datagram.from, "BFD packet for no session");
            return;
        };
        let input = Input::Received {
            payload: &datagram.payload,
            ttl: datagram.ttl,
        };
        self.drive(neighbor, input);
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let before = self.peers.len();
        self.peers
            .retain(|_, peer| peer.leaving.is_none_or(|leaving| leaving > now));
        if self.peers.len() != before {
            self.open_readers();
        }
        let due: Vec<NeighborId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.session.next_deadline() <= now.into_std())
            .map(|(neighbor, _)| *neighbor)
            .collect();
        for neighbor in due {
            self.drive(neighbor, Input::Tick);
        }
    }

    fn drive(&mut self, neighbor: NeighborId, input: Input<'_>) {
        let Some(peer) = self.peers.get_mut(&neighbor) else {
            return;
        };
        let actions = peer.session.handle(Instant::now().into_std(), input);
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    let (Some(socket), Some((_, ifindex))) = (&peer.socket, &peer.tunnel) else {
                        continue;
                    };
                    let target = match peer.address {
                        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                            SocketAddr::V6(SocketAddrV6::new(v6, CONTROL_PORT, 0, *ifindex))
                        }
                        address => SocketAddr::new(address, CONTROL_PORT),
                    };
                    // 24 octets on a socket of its own: a full buffer is
                    // a lost packet, as on the wire.
                    if let Err(error) = socket.try_send_to(&bytes, target) {
                        tracing::debug!(%neighbor, %error, "BFD: send failed");
                    }
                }
                Action::Transition(transition) => {
                    peer.state_changes += 1;
                    peer.up_since = (transition.to == State::Up).then(SystemTime::now);
                    let tunnel = peer.tunnel.as_ref().map_or("-", |(name, _)| name.as_str());
                    tracing::info!(
                        %neighbor,
                        tunnel,
                        from = %transition.from,
                        to = %transition.to,
                        diagnostic = %transition.diagnostic,
                        "BFD session {}",
                        transition.to
                    );
                    peer.failed = if transition.to == State::Up {
                        false
                    } else {
                        peer.failed || takes_bgp_down(&transition)
                    };
                    let change = BfdChange {
                        neighbor,
                        tunnel: peer.tunnel.as_ref().map(|(name, _)| name.clone()),
                        transition,
                    };
                    let _ = self.reports.send(Report::Change {
                        change,
                        bgp: peer.clients.bgp,
                    });
                }
                Action::Discard(reason) => {
                    tracing::debug!(%neighbor, %reason, "BFD packet discarded");
                }
            }
        }
    }

    /// The sessions' status, when it changed.
    fn publish(&mut self) {
        let status: Vec<SessionStatus> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.leaving.is_none())
            .map(|(neighbor, peer)| SessionStatus {
                status: BfdStatus {
                    neighbor: *neighbor,
                    tunnel: peer.tunnel.as_ref().map(|(name, _)| name.clone()),
                    clients: peer.clients,
                    state: peer.session.state(),
                    remote_state: peer.session.remote_state(),
                    local_discriminator: peer.session.local_discriminator(),
                    remote_discriminator: peer.session.remote_discriminator(),
                    timers: peer.session.timers(),
                    transmit_interval: peer.session.transmit_interval(),
                    detection_time: peer.session.detection_time(),
                    up_since: peer.up_since,
                    diagnostic: peer.session.diagnostic(),
                    state_changes: peer.state_changes,
                },
                failed: peer.failed,
            })
            .collect();
        if self.last_status.as_ref() != Some(&status) {
            self.last_status = Some(status.clone());
            let _ = self.reports.send(Report::Status(status));
        }
    }
}

impl Peer {
    fn new(
        address: IpAddr,
        timers: Timers,
        next_discriminator: &mut u32,
        control_plane_independent: bool,
    ) -> Peer {
        let discriminator = match *next_discriminator {
            0 => 1,
            other => other,
        };
        *next_discriminator = discriminator.wrapping_add(1);
        let session = Session::new(
            SessionConfig {
                timers,
                local_discriminator: discriminator,
                control_plane_independent,
                seed: u64::from(discriminator) << 32 | u64::from(std::process::id()),
            },
            Instant::now().into_std(),
        );
        Peer {
            address,
            clients: Clients::default(),
            session,
            tunnel: None,
            socket: None,
            up_since: None,
            state_changes: 0,
            failed: false,
            leaving: None,
        }
    }
}

/// Discriminators unique on this host across restarts (mostly): from the
/// clock and the process, then one after another.
fn discriminator_base() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.subsec_nanos() ^ since.as_secs() as u32)
        .unwrap_or(1)
        ^ (std::process::id() << 16)
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
