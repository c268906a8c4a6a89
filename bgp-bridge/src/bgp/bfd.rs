//! BFD over the tunnels (RFC 5881, single hop): the tokio layer around the
//! `wgd-bfd` sessions, one per neighbor configured with `bfd` and one per
//! static route nexthop configured with `bfd` (a nexthop that is also a
//! BFD neighbor shares its session: one session per peer and tunnel, as
//! RFC 5882 asks of its clients).
//!
//! One task owns every session. In: datagrams to port 3784 (one reading
//! socket per tunnel and address family, bound to the tunnel, with the TTL
//! or hop limit of each datagram), the tunnel view (which tunnel each
//! peer is on, and its interface index), the nexthops to watch
//! (`Bfd::set_nexthops`, from the config and `wgd route add --bfd`), and
//! the clock (each session's next deadline). Out: control packets, each
//! session from a socket of its own bound to its tunnel with a source port
//! in 49152-65535 and TTL 255; state changes, given to the speaker through
//! a callback for its neighbors' sessions: a session that falls from Up
//! takes its BGP session down (RFC 5882), unless the neighbor said it shut
//! BFD on purpose (AdminDown); and the set of peers whose session fell so
//! (`Bfd::failed`), which the daemon puts in the bridge's tunnel view so
//! that routes through them, whoever owns them, stop resolving.
//!
//! A received packet goes to the session its Your Discriminator names, or
//! while that is zero, to the session of the tunnel and source address it
//! came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage, bind,
    recvmsg, setsockopt, socket, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use wgd_bfd::{Action, CONTROL_PORT, Input, REQUIRED_TTL, SOURCE_PORTS, Session, SessionConfig};
pub use wgd_bfd::{Diagnostic, State, Timers, Transition};

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
}

impl Bfd {
    /// Starts a session for each neighbor with BFD configured, and one
    /// for each nexthop given later; `changed` hears every state change
    /// of the neighbors' sessions.
    pub fn start(
        neighbors: Vec<(NeighborId, NeighborConfig, Timers)>,
        tunnels: watch::Receiver<TunnelView>,
        changed: Box<dyn Fn(NeighborId, Transition) + Send>,
    ) -> Bfd {
        let status = Arc::new(Mutex::new(Vec::new()));
        let changes = broadcast::channel(256).0;
        let (nexthops, nexthop_updates) = watch::channel(Vec::new());
        let (failed_sender, failed) = watch::channel(BTreeSet::new());
        let mut peers = BTreeMap::new();
        let mut next_discriminator = discriminator_base();
        for (neighbor, config, timers) in neighbors {
            let mut peer = Peer::new(
                config.address,
                config.tunnel.clone(),
                timers,
                &mut next_discriminator,
            );
            peer.clients.bgp = true;
            peers.insert(neighbor, peer);
        }
        let (datagrams, incoming) = mpsc::unbounded_channel();
        let runtime = Runtime {
            peers,
            readers: HashMap::new(),
            datagrams,
            changed,
            changes: changes.clone(),
            status: status.clone(),
            failed: failed_sender,
            next_discriminator,
        };
        tokio::spawn(runtime.run(incoming, tunnels, nexthop_updates));
        Bfd {
            status,
            changes,
            nexthops,
            failed,
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

/// Discriminators unique on this host across restarts (mostly): from the
/// clock and the process, then one after another.
fn discriminator_base() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.subsec_nanos() ^ since.as_secs() as u32)
        .unwrap_or(1)
        ^ (std::process::id() << 16)
}

struct Peer {
    address: IpAddr,
    /// The tunnel as configured; else the one whose subnet holds the
    /// address.
    configured_tunnel: Option<String>,
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
}

impl Peer {
    fn new(
        address: IpAddr,
        configured_tunnel: Option<String>,
        timers: Timers,
        next_discriminator: &mut u32,
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
                control_plane_independent: false,
                seed: u64::from(discriminator) << 32 | u64::from(std::process::id()),
            },
            Instant::now().into_std(),
        );
        Peer {
            address,
            configured_tunnel,
            clients: Clients::default(),
            session,
            tunnel: None,
            socket: None,
            up_since: None,
            state_changes: 0,
            failed: false,
        }
    }
}

/// A datagram to port 3784.
struct Datagram {
    tunnel: String,
    from: IpAddr,
    ttl: u8,
    payload: Vec<u8>,
}

/// Reading sockets are keyed by tunnel, interface index and family.
type ReaderKey = (String, u32, bool);

struct Runtime {
    peers: BTreeMap<NeighborId, Peer>,
    readers: HashMap<ReaderKey, tokio::task::JoinHandle<()>>,
    datagrams: mpsc::UnboundedSender<Datagram>,
    changed: Box<dyn Fn(NeighborId, Transition) + Send>,
    changes: broadcast::Sender<BfdChange>,
    status: Arc<Mutex<Vec<BfdStatus>>>,
    failed: watch::Sender<BTreeSet<(String, IpAddr)>>,
    next_discriminator: u32,
}

impl Runtime {
    async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<Datagram>,
        mut tunnels: watch::Receiver<TunnelView>,
        mut nexthops: watch::Receiver<Vec<BfdNexthop>>,
    ) {
        let mut view = tunnels.borrow_and_update().clone();
        let mut nexthops_open = true;
        self.locate(&view);
        self.publish();
        loop {
            let deadline = self
                .peers
                .values()
                .map(|peer| Instant::from_std(peer.session.next_deadline()))
                .min();
            tokio::select! {
                changed = tunnels.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    view = tunnels.borrow_and_update().clone();
                    self.locate(&view);
                }
                changed = nexthops.changed(), if nexthops_open => {
                    if changed.is_err() {
                        // Every handle is gone: the nexthops stay as they are.
                        nexthops_open = false;
                    } else {
                        let wanted = nexthops.borrow_and_update().clone();
                        self.follow(&wanted);
                        self.locate(&view);
                    }
                }
                Some(datagram) = incoming.recv() => self.receive(datagram),
                () = sleep_until(deadline) => self.tick(),
            }
            self.publish();
        }
        for reader in self.readers.values() {
            reader.abort();
        }
    }

    /// The static routes' nexthops now wanted: a session for each new one
    /// (or the neighbor's session it shares), and those no longer wanted
    /// (nor a neighbor's) stopped.
    fn follow(&mut self, wanted: &[BfdNexthop]) {
        let mut keep = BTreeSet::new();
        for nexthop in wanted {
            let id = match nexthop.id() {
                Ok(id) => id,
                Err(error) => {
                    tracing::warn!(address = %nexthop.address, %error, "BFD: nexthop left out");
                    continue;
                }
            };
            keep.insert(id);
            // New timers for a nexthop's own session: a new session (the
            // neighbor's session keeps the neighbor's timers).
            if let Some(peer) = self.peers.get(&id)
                && !peer.clients.bgp
                && (peer.session.timers() != nexthop.timers
                    || peer.configured_tunnel != nexthop.tunnel)
            {
                self.peers.remove(&id);
            }
            let peer = self.peers.entry(id).or_insert_with(|| {
                tracing::info!(neighbor = %id, "BFD: a session for a static route's nexthop");
                Peer::new(
                    nexthop.address,
                    nexthop.tunnel.clone(),
                    nexthop.timers,
                    &mut self.next_discriminator,
                )
            });
            peer.clients.nexthop = true;
        }
        self.peers.retain(|id, peer| {
            if !keep.contains(id) {
                peer.clients.nexthop = false;
            }
            peer.clients.bgp || peer.clients.nexthop
        });
        self.publish_failed();
    }

    /// Each session's tunnel: a new one (or a new interface index) gets a
    /// new sending socket, and a reading socket when it has none yet.
    fn locate(&mut self, view: &TunnelView) {
        let mut wanted: Vec<ReaderKey> = Vec::new();
        for (neighbor, peer) in &mut self.peers {
            let found = super::speaker::tunnel_of_peer(
                peer.address,
                peer.configured_tunnel.as_deref(),
                view,
            )
            .filter(|tunnel| tunnel.ifindex != 0)
            .map(|tunnel| (tunnel.name.clone(), tunnel.ifindex));
            let v6 = peer.address.is_ipv6();
            if let Some((name, ifindex)) = &found {
                wanted.push((name.clone(), *ifindex, v6));
            }
            if found == peer.tunnel {
                continue;
            }
            peer.socket = None;
            peer.tunnel = found.clone();
            let Some((name, _)) = found else {
                tracing::info!(%neighbor, "BFD: the neighbor's tunnel is not there");
                continue;
            };
            match sender(&name, v6, peer.session.local_discriminator()) {
                Ok(socket) => peer.socket = Some(socket),
                Err(error) => {
                    tracing::warn!(%neighbor, tunnel = %name, %error, "BFD: cannot open the sending socket")
                }
            }
        }
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
        self.publish_failed();
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
        let now = Instant::now().into_std();
        let due: Vec<NeighborId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.session.next_deadline() <= now)
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
        let mut failures_changed = false;
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
                    if peer.clients.bgp {
                        (self.changed)(neighbor, transition);
                    }
                    let failed = if transition.to == State::Up {
                        false
                    } else {
                        peer.failed || takes_bgp_down(&transition)
                    };
                    if failed != peer.failed {
                        peer.failed = failed;
                        failures_changed = true;
                    }
                    let _ = self.changes.send(BfdChange {
                        neighbor,
                        tunnel: peer.tunnel.as_ref().map(|(name, _)| name.clone()),
                        transition,
                    });
                }
                Action::Discard(reason) => {
                    tracing::debug!(%neighbor, %reason, "BFD packet discarded");
                }
            }
        }
        if failures_changed {
            self.publish_failed();
        }
    }

    /// The peers whose session fell, on the tunnel it ran over.
    fn publish_failed(&self) {
        let failed: BTreeSet<(String, IpAddr)> = self
            .peers
            .values()
            .filter(|peer| peer.failed)
            .filter_map(|peer| {
                let (tunnel, _) = peer.tunnel.as_ref()?;
                Some((tunnel.clone(), peer.address))
            })
            .collect();
        self.failed.send_if_modified(|current| {
            let changed = *current != failed;
            *current = failed;
            changed
        });
    }

    fn publish(&self) {
        let status = self
            .peers
            .iter()
            .map(|(neighbor, peer)| BfdStatus {
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
            })
            .collect();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

/// Whether a BFD state change takes the neighbor's BGP session down: only
/// a fall from Up (a session that never came up holds nothing down, as
/// with BIRD's `bfd graceful` and FRR), and not when the neighbor said it
/// shut BFD on purpose (AdminDown, RFC 5882 3.2).
pub fn takes_bgp_down(transition: &Transition) -> bool {
    transition.from == State::Up
        && transition.to != State::Up
        && transition.remote_state != State::AdminDown
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

/// A UDP socket bound to `tunnel`, of the family of `v6`.
fn tunnel_socket(tunnel: &str, v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(tunnel),
    )?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
}

fn unspecified(v6: bool, port: u16) -> SockaddrStorage {
    let address = if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    };
    SockaddrStorage::from(address)
}

/// The socket a session sends from (RFC 5881 4, 5): bound to its tunnel,
/// a source port of 49152-65535 kept for the session's life, TTL or hop
/// limit 255.
fn sender(tunnel: &str, v6: bool, discriminator: u32) -> io::Result<UdpSocket> {
    let fd = tunnel_socket(tunnel, v6)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6Ttl, &i32::from(REQUIRED_TTL))?;
    } else {
        setsockopt(&fd, sockopt::Ipv4Ttl, &i32::from(REQUIRED_TTL))?;
    }
    let (first, last) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let span = u32::from(last - first) + 1;
    let start = discriminator % span;
    let mut bound = Err(io::Error::from(io::ErrorKind::AddrInUse));
    for offset in 0..span {
        let port = first + ((start + offset) % span) as u16;
        match bind(fd.as_raw_fd(), &unspecified(v6, port)) {
            Ok(()) => {
                bound = Ok(());
                break;
            }
            Err(nix::errno::Errno::EADDRINUSE) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    bound?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// The socket that hears port 3784 on a tunnel, with each datagram's TTL
/// or hop limit.
fn receiver(tunnel: &str, v6: bool) -> io::Result<UdpSocket> {
    let fd = tunnel_socket(tunnel, v6)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4RecvTtl, &true)?;
    }
    bind(fd.as_raw_fd(), &unspecified(v6, CONTROL_PORT))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

async fn read(socket: UdpSocket, tunnel: String, datagrams: mpsc::UnboundedSender<Datagram>) {
    let mut buffer = [0u8; 512];
    loop {
        let received = socket
            .async_io(Interest::READABLE, || {
                receive_with_ttl(&socket, &mut buffer)
            })
            .await;
        match received {
            Ok((length, from, ttl)) => {
                let datagram = Datagram {
                    tunnel: tunnel.clone(),
                    from,
                    ttl,
                    payload: buffer[..length].to_vec(),
                };
                if datagrams.send(datagram).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%tunnel, %error, "BFD: receive failed");
                // The tunnel went away under it, say: the runtime opens a
                // new one when it is back; do not spin meanwhile.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One datagram: its length, source address, and TTL or hop limit (0 when
/// the kernel did not say, which no session accepts).
fn receive_with_ttl(socket: &impl AsFd, buffer: &mut [u8]) -> io::Result<(usize, IpAddr, u8)> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut control = nix::cmsg_space!(libc::c_int);
    let message = recvmsg::<SockaddrStorage>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let mut ttl = 0u8;
    for control in message.cmsgs()? {
        match control {
            ControlMessageOwned::Ipv4Ttl(value) | ControlMessageOwned::Ipv6HopLimit(value) => {
                ttl = u8::try_from(value).unwrap_or(0);
            }
            _ => {}
        }
    }
    let from = message
        .address
        .as_ref()
        .and_then(|address| {
            address
                .as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .ok_or_else(|| io::Error::other("a datagram without a source address"))?;
    Ok((message.bytes, from, ttl))
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
    }
}
