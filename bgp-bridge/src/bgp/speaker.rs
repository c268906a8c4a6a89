//! The speaker at work: the thin tokio layer around the cores. One task
//! owns every neighbor's `Session`, the `LocRib` and the bridge feed; TCP
//! connections are small tasks around it that only move bytes.
//!
//! In: bytes and closes from connections, connects that succeeded or
//! failed, connections accepted on port 179, the tunnel view (for nexthop
//! resolution), and the clock (each session's next deadline). The sessions
//! turn them into actions: bytes to send, connects to make, UPDATE bodies
//! (decoded by `update`, applied to the `LocRib` by `decision`), sessions
//! up and down. Out: UPDATEs to the neighbors (`decision::export`, encoded
//! by `update`), and the best paths to the bridge, one owner
//! `bgp:<neighbor>` per neighbor, a distance of 20 for eBGP and 200 for
//! iBGP. A neighbor that goes down with graceful restart keeps its routes:
//! its bridge session closes with a hold of the restart time, so the
//! kernel keeps them until it is back (and re-claims them before its
//! End-of-RIB) or the time runs out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::decision::{self, BestChange, LocRib, Resolver, Source};
use super::policy::Policy;
use super::session::{
    self, Action, ConnectionId, GracefulRestartConfig, Input, Session, SessionConfig, State,
};
use super::types::{Asn, Attributes, Family, Negotiated};
use super::update::{self, Decoded};
use crate::engine::{Bridge, BridgeError, Update as BridgeUpdate, UpdateResult};
use crate::route::{NexthopSpec, Owner, RouteSpec, TunnelView};

pub const BGP_PORT: u16 = 179;
/// How often the kernel is read for the networks to originate.
const NETWORKS_INTERVAL: Duration = Duration::from_secs(5);
/// zebra's distances: eBGP routes beat most others, iBGP ones few.
const EBGP_DISTANCE: u8 = crate::route::DEFAULT_DISTANCE;
const IBGP_DISTANCE: u8 = 200;
/// Best-path changes are given to the bridge when no event is waiting,
/// or when this many are pending, or when the oldest has waited
/// [`FEED_DELAY`]: a burst of UPDATEs becomes a few large batches (one
/// netlink write each) instead of one batch per UPDATE.
const FEED_AT: usize = 16_384;
const FEED_DELAY: Duration = Duration::from_millis(50);
/// Batches given to the bridge whose results are not read yet: the
/// speaker decodes the next UPDATEs while the bridge programs the kernel.
const FEEDS_IN_FLIGHT: usize = 4;

/// The speaker's settings, from `[bgp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: Asn,
    pub router_id: Ipv4Addr,
    pub networks: Vec<IpNet>,
    pub max_paths: u16,
    pub hold_time: u16,
    pub graceful_restart: bool,
    pub restart_time: u16,
    /// Port to listen on and connect to (179).
    pub port: u16,
    /// wgd restarted with its routes still in the kernel (the bridge
    /// adopted them): the sessions announce the restart (the R bit of
    /// RFC 4724) with the forwarding state preserved.
    pub restarting: bool,
    pub neighbors: Vec<NeighborConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub address: IpAddr,
    pub tunnel: Option<String>,
    pub remote_as: Asn,
    pub passive: bool,
    pub hold_time: Option<u16>,
    pub prefix_limit: u32,
    pub description: Option<String>,
    /// TCP MD5 (RFC 2385).
    pub password: Option<Secret>,
    /// RFC 5082, one hop.
    pub ttl_security: bool,
    pub import: Policy,
    pub export: Policy,
}

/// A TCP MD5 key: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// One neighbor as `wgd bgp summary` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborStatus {
    pub address: IpAddr,
    pub tunnel: Option<String>,
    pub remote_as: Asn,
    pub description: Option<String>,
    pub state: State,
    pub since: SystemTime,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_sent: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub resets: u64,
    pub last_error: String,
}

/// One path as `wgd bgp routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    pub prefix: IpNet,
    pub neighbor: Option<IpAddr>,
    pub attributes: Arc<Attributes>,
    pub best: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SpeakerStatus {
    pub asn: Asn,
    pub router_id: Option<Ipv4Addr>,
    pub neighbors: Vec<NeighborStatus>,
}

/// The handle the daemon keeps: the status for the API, and the tunnel
/// view it passes on.
#[derive(Debug, Clone)]
pub struct Speaker {
    status: Arc<Mutex<SpeakerStatus>>,
    tunnels: watch::Sender<TunnelView>,
    /// Asks the speaker's task for its paths (listing them walks the table).
    paths: mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Vec<PathStatus>>>,
}

impl Speaker {
    /// Starts listening and connecting. The tunnel view resolves nexthops
    /// (a nexthop must be on a tunnel that is up with a live peer).
    /// `kernel` is read to announce each of `networks` only while the
    /// kernel has a route for it that wgd did not add (a connected LAN, a
    /// static route).
    pub async fn start(
        config: SpeakerConfig,
        bridge: Bridge,
        view: TunnelView,
        kernel: crate::fib::KernelFib,
    ) -> std::io::Result<Speaker> {
        let listener = TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, config.port))
            .await
            .or_else(|_| {
                std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port)).and_then(|l| {
                    l.set_nonblocking(true)?;
                    TcpListener::from_std(l)
                })
            })?;
        for neighbor in &config.neighbors {
            if let Some(password) = &neighbor.password {
                super::socket::set_md5(&listener, neighbor.address, password.0.as_bytes())?;
            }
        }
        // The SYN-ACK to a neighbor with TTL security must leave with 255.
        if config
            .neighbors
            .iter()
            .any(|neighbor| neighbor.ttl_security)
        {
            super::socket::send_with_ttl_255(&listener)?;
        }
        let (tunnels, tunnel_updates) = watch::channel(view);
        let status = Arc::new(Mutex::new(SpeakerStatus {
            asn: config.asn,
            router_id: Some(config.router_id),
            ..SpeakerStatus::default()
        }));
        let (events, incoming) = mpsc::unbounded_channel();
        let accept_events = events.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) => {
                        if accept_events.send(Event::Accepted(stream, from)).is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "BGP listener");
                        // Out of file descriptors, say: do not spin.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let core = Core::new(config, bridge, events, status.clone(), kernel)?;
        let (paths, path_requests) = mpsc::unbounded_channel();
        tokio::spawn(core.run(incoming, tunnel_updates, path_requests));
        Ok(Speaker {
            status,
            tunnels,
            paths,
        })
    }

    pub fn set_tunnels(&self, view: TunnelView) {
        self.tunnels.send_if_modified(|current| {
            let changed = *current != view;
            *current = view;
            changed
        });
    }

    /// Every path received or originated, best ones marked.
    pub async fn paths(&self) -> Vec<PathStatus> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.paths.send(reply).is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    pub fn status(&self) -> SpeakerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

enum Event {
    Accepted(TcpStream, SocketAddr),
    Connected(IpAddr, u64, TcpStream),
    ConnectFailed(IpAddr, u64),
    Received(IpAddr, ConnectionId, Vec<u8>),
    Closed(IpAddr, ConnectionId),
}

/// A neighbor's session and what the speaker keeps about it.
struct Peer {
    config: NeighborConfig,
    session: Session,
    /// Writers of its open connections.
    writers: HashMap<ConnectionId, mpsc::UnboundedSender<Writing>>,
    /// The connect attempt in flight, by its number.
    connecting: Option<u64>,
    negotiated: Option<Negotiated>,
    /// The bridge session of owner `bgp:<address>`, when open.
    bridge_session: Option<u64>,
    status: NeighborStatus,
    /// Our addresses on the neighbor's tunnel (nexthop self).
    local_v4: Option<Ipv4Addr>,
    local_v6: Option<Ipv6Addr>,
    /// Routes kept through a graceful restart go when this passes.
    stale_until: Option<(Instant, Vec<Family>)>,
}

enum Writing {
    Bytes(Vec<u8>),
    Close,
}

struct Core {
    config: SpeakerConfig,
    bridge: Bridge,
    events: mpsc::UnboundedSender<Event>,
    status: Arc<Mutex<SpeakerStatus>>,
    peers: BTreeMap<IpAddr, Peer>,
    rib: LocRib,
    view: TunnelView,
    /// Which bridge owner carries each prefix now.
    fed: HashMap<IpNet, IpAddr, foldhash::fast::RandomState>,
    next_connection: u64,
    /// Read for the networks to originate.
    kernel: crate::fib::KernelFib,
    /// The configured networks the kernel has a route for, announced.
    present: Vec<IpNet>,
    /// Best-path changes not given to the bridge yet: the latest one per
    /// prefix, in the order the prefixes first changed.
    pending: Vec<BestChange>,
    pending_index: HashMap<IpNet, usize, foldhash::fast::RandomState>,
    /// When the oldest pending change came.
    pending_since: Option<Instant>,
    /// Batches given to the bridge, with their results to come.
    in_flight: VecDeque<InFlight>,
}

/// A batch given to the bridge for one neighbor's session.
struct InFlight {
    address: IpAddr,
    what: &'static str,
    results: oneshot::Receiver<Result<Vec<UpdateResult>, BridgeError>>,
}

impl Core {
    fn new(
        config: SpeakerConfig,
        bridge: Bridge,
        events: mpsc::UnboundedSender<Event>,
        status: Arc<Mutex<SpeakerStatus>>,
        kernel: crate::fib::KernelFib,
    ) -> std::io::Result<Self> {
        let mut peers = BTreeMap::new();
        for neighbor in &config.neighbors {
            let mut session_config =
                SessionConfig::new(config.asn, neighbor.remote_as, config.router_id);
            session_config.hold_time = neighbor.hold_time.unwrap_or(config.hold_time);
            session_config.passive = neighbor.passive;
            // RFC 8950: IPv4 routes with an IPv6 nexthop, where the peer offers it.
            session_config.extended_next_hop_ipv4 = true;
            if config.graceful_restart {
                session_config.graceful_restart = Some(GracefulRestartConfig {
                    restart_time: config.restart_time,
                    restarting: config.restarting,
                    forwarding_preserved: true,
                });
            }
            let session = Session::new(session_config).map_err(|error| {
                std::io::Error::other(format!("neighbor {}: {error:?}", neighbor.address))
            })?;
            peers.insert(
                neighbor.address,
                Peer {
                    status: NeighborStatus {
                        address: neighbor.address,
                        tunnel: neighbor.tunnel.clone(),
                        remote_as: neighbor.remote_as,
                        description: neighbor.description.clone(),
                        state: State::Idle,
                        since: SystemTime::now(),
                        prefixes_received: 0,
                        prefixes_accepted: 0,
                        prefixes_sent: 0,
                        messages_received: 0,
                        messages_sent: 0,
                        resets: 0,
                        last_error: String::new(),
                    },
                    config: neighbor.clone(),
                    session,
                    writers: HashMap::new(),
                    connecting: None,
                    negotiated: None,
                    bridge_session: None,
                    local_v4: None,
                    local_v6: None,
                    stale_until: None,
                },
            );
        }
        let rib = LocRib::new(decision::Config {
            local_as: config.asn,
            router_id: config.router_id,
            max_paths: usize::from(config.max_paths.max(1)),
        });
        Ok(Self {
            config,
            bridge,
            events,
            status,
            peers,
            rib,
            view: TunnelView::default(),
            fed: HashMap::default(),
            next_connection: 1,
            kernel,
            present: Vec::new(),
            pending: Vec::new(),
            pending_index: HashMap::default(),
            pending_since: None,
            in_flight: VecDeque::new(),
        })
    }

    async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<Event>,
        mut tunnels: watch::Receiver<TunnelView>,
        mut path_requests: mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<Vec<PathStatus>>>,
    ) {
        self.view = tunnels.borrow_and_update().clone();
        self.locate_addresses();
        self.check_networks().await;
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            self.drive(address, Input::Start).await;
        }
        let mut networks = tokio::time::interval(NETWORKS_INTERVAL);
        networks.reset();
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                event = incoming.recv() => match event {
                    Some(event) => self.event(event).await,
                    None => break,
                },
                Ok(()) = tunnels.changed() => {
                    self.view = tunnels.borrow_and_update().clone();
                    self.locate_addresses();
                    let changes = self.rib.revalidate(&resolver(&self.view));
                    self.after_changes(changes).await;
                }
                () = sleep_until(deadline) => self.tick().await,
                _ = networks.tick() => self.check_networks().await,
                Some(reply) = path_requests.recv() => {
                    let _ = reply.send(self.paths());
                }
            }
            let overdue = self
                .pending_since
                .is_some_and(|since| since.elapsed() >= FEED_DELAY);
            if incoming.is_empty() || overdue {
                self.feed_bridge().await;
            }
            self.settle_feeds();
            self.publish_neighbors();
        }
    }

    /// Originates the configured networks the kernel has a route for
    /// (exactly that prefix, not added by wgd), and stops originating the
    /// others: a LAN whose interface went away is not announced.
    async fn check_networks(&mut self) {
        if self.config.networks.is_empty() {
            return;
        }
        let networks = &self.config.networks;
        let kernel = &mut self.kernel;
        // A dump of the main table: long with a full table; let the
        // runtime move other tasks off this thread meanwhile.
        let found = match tokio::task::block_in_place(|| kernel.present(networks)) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot read the kernel's routes for the networks to originate");
                return;
            }
        };
        let present: Vec<IpNet> = self
            .config
            .networks
            .iter()
            .zip(found)
            .filter(|(_, found)| *found)
            .map(|(network, _)| *network)
            .collect();
        if present == self.present {
            return;
        }
        for network in self
            .config
            .networks
            .iter()
            .filter(|n| present.contains(n) != self.present.contains(n))
        {
            if present.contains(network) {
                tracing::info!(%network, "originating: the kernel has a route for it");
            } else {
                tracing::info!(%network, "not originating: the kernel has no route for it");
            }
        }
        self.present = present;
        let changes = self.rib.set_networks(&self.present, &resolver(&self.view));
        self.after_changes(changes).await;
    }

    /// Our addresses on each neighbor's tunnel: the tunnel whose subnet
    /// holds the neighbor's address.
    fn locate_addresses(&mut self) {
        for peer in self.peers.values_mut() {
            let tunnel = self.view.tunnels.iter().find(|tunnel| {
                peer.config.tunnel.as_deref() == Some(tunnel.name.as_str())
                    || tunnel
                        .addresses
                        .iter()
                        .any(|net| net.contains(&peer.config.address))
            });
            let Some(tunnel) = tunnel else {
                continue;
            };
            // Our address on the neighbor's subnet for its family, and the
            // tunnel's first global address of the other.
            let on_subnet = |net: &&IpNet| net.contains(&peer.config.address);
            let pick = |v4: bool| {
                let family = |net: &&IpNet| match net.addr() {
                    IpAddr::V4(_) => v4,
                    IpAddr::V6(address) => !v4 && !address.is_unicast_link_local(),
                };
                tunnel
                    .addresses
                    .iter()
                    .filter(family)
                    .find(on_subnet)
                    .or_else(|| tunnel.addresses.iter().find(family))
                    .map(IpNet::addr)
            };
            peer.local_v4 = match pick(true) {
                Some(IpAddr::V4(address)) => Some(address),
                _ => None,
            };
            peer.local_v6 = match pick(false) {
                Some(IpAddr::V6(address)) => Some(address),
                _ => None,
            };
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|peer| {
                let session = peer.session.next_deadline().map(Instant::from_std);
                let stale = peer.stale_until.as_ref().map(|(at, _)| *at);
                session.into_iter().chain(stale)
            })
            .min()
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            let due = self.peers[&address]
                .session
                .next_deadline()
                .is_some_and(|at| Instant::from_std(at) <= now);
            if due {
                self.drive(address, Input::Tick).await;
            }
            let stale_due = self.peers[&address]
                .stale_until
                .as_ref()
                .is_some_and(|(at, _)| *at <= now);
            if stale_due {
                let families = self
                    .peers
                    .get_mut(&address)
                    .and_then(|peer| peer.stale_until.take())
                    .map(|(_, families)| families)
                    .unwrap_or_default();
                tracing::info!(neighbor = %address, "graceful restart time over: stale routes withdrawn");
                let changes = self
                    .rib
                    .sweep_stale(address, &families, &resolver(&self.view));
                self.after_changes(changes).await;
                self.feed_bridge().await;
                // Still not back: its bridge session goes with its routes.
                if let Some(peer) = self.peers.get_mut(&address)
                    && peer.negotiated.is_none()
                    && let Some(session) = peer.bridge_session.take()
                {
                    self.bridge.close(owner(address), session);
                }
            }
        }
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Accepted(stream, from) => {
                let address = canonical(from.ip());
                let Some(peer) = self.peers.get(&address) else {
                    tracing::info!(%from, "BGP connection from an address that is no neighbor; closed");
                    return;
                };
                if peer.config.ttl_security
                    && let Err(error) = super::socket::set_ttl_security(&stream)
                {
                    tracing::warn!(neighbor = %address, %error, "cannot set the TTL security check");
                    return;
                }
                let id = self.connection(address, stream);
                self.drive(address, Input::Accepted(id)).await;
            }
            Event::Connected(address, attempt, stream) => {
                let current = self
                    .peers
                    .get(&address)
                    .is_some_and(|peer| peer.connecting == Some(attempt));
                if !current {
                    return;
                }
                if let Some(peer) = self.peers.get_mut(&address) {
                    peer.connecting = None;
                }
                let id = self.connection(address, stream);
                self.drive(address, Input::Connected(id)).await;
            }
            Event::ConnectFailed(address, attempt) => {
                let current = self
                    .peers
                    .get(&address)
                    .is_some_and(|peer| peer.connecting == Some(attempt));
                if current {
                    if let Some(peer) = self.peers.get_mut(&address) {
                        peer.connecting = None;
                    }
                    self.drive(address, Input::ConnectFailed).await;
                }
            }
            Event::Received(address, id, bytes) => {
                self.drive(address, Input::Received(id, &bytes)).await;
            }
            Event::Closed(address, id) => {
                if let Some(peer) = self.peers.get_mut(&address) {
                    peer.writers.remove(&id);
                }
                self.drive(address, Input::Closed(id)).await;
            }
        }
    }

    /// Starts the reader and writer tasks of a connection.
    fn connection(&mut self, address: IpAddr, stream: TcpStream) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let (writing, mut to_write) = mpsc::unbounded_channel::<Writing>();
        tokio::spawn(async move {
            while let Some(item) = to_write.recv().await {
                match item {
                    Writing::Bytes(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Writing::Close => break,
                }
            }
            let _ = writer.shutdown().await;
        });
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65536];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => {
                        let _ = events.send(Event::Closed(address, id));
                        break;
                    }
                    Ok(read) => {
                        if events
                            .send(Event::Received(address, id, buffer[..read].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.writers.insert(id, writing);
        }
        id
    }

    /// Feeds one input to a neighbor's session and carries out what it
    /// asks, following UPDATE decoding and resets back into it.
    async fn drive(&mut self, address: IpAddr, input: Input<'_>) {
        let mut pending: Vec<Vec<Action>> = Vec::new();
        {
            let Some(peer) = self.peers.get_mut(&address) else {
                return;
            };
            pending.push(peer.session.handle(std::time::Instant::now(), input));
            peer.status.messages_received = peer.session.messages_received();
        }
        while let Some(actions) = pending.pop() {
            for action in actions {
                if let Some(more) = self.act(address, action).await {
                    pending.push(more);
                }
            }
        }
        if let Some(peer) = self.peers.get_mut(&address) {
            let state = peer.session.state();
            if state != peer.status.state {
                peer.status.state = state;
                peer.status.since = SystemTime::now();
            }
        }
    }

    async fn act(&mut self, address: IpAddr, action: Action) -> Option<Vec<Action>> {
        match action {
            Action::Connect => {
                let attempt = self.next_connection;
                self.next_connection += 1;
                let peer = self.peers.get_mut(&address)?;
                peer.connecting = Some(attempt);
                let events = self.events.clone();
                let target = SocketAddr::new(address, self.config.port);
                let password = peer.config.password.clone();
                let ttl_security = peer.config.ttl_security;
                tokio::spawn(async move {
                    let connect = async {
                        let socket = match address {
                            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                        };
                        if let Some(password) = &password {
                            super::socket::set_md5(&socket, address, password.0.as_bytes())?;
                        }
                        if ttl_security {
                            super::socket::set_ttl_security(&socket)?;
                        }
                        socket.connect(target).await
                    };
                    let event = match tokio::time::timeout(Duration::from_secs(30), connect).await {
                        Ok(Ok(stream)) => Event::Connected(address, attempt, stream),
                        Ok(Err(error)) => {
                            tracing::debug!(neighbor = %address, %error, "connect failed");
                            Event::ConnectFailed(address, attempt)
                        }
                        Err(_) => Event::ConnectFailed(address, attempt),
                    };
                    let _ = events.send(event);
                });
                None
            }
            Action::CancelConnect => {
                self.peers.get_mut(&address)?.connecting = None;
                None
            }
            Action::Send(id, bytes) => {
                let peer = self.peers.get_mut(&address)?;
                peer.status.messages_sent += 1;
                if let Some(writer) = peer.writers.get(&id) {
                    let _ = writer.send(Writing::Bytes(bytes));
                }
                None
            }
            Action::Disconnect(id) => {
                let peer = self.peers.get_mut(&address)?;
                if let Some(writer) = peer.writers.remove(&id) {
                    let _ = writer.send(Writing::Close);
                }
                None
            }
            Action::Established(negotiated) => {
                self.established(address, negotiated).await;
                None
            }
            Action::Update(body) => self.received_update(address, &body).await,
            Action::RouteRefresh(family) => {
                // Send the family's routes again, then its End-of-RIB.
                let export = self.rib.refresh(address);
                self.send_export(address, export, Some(family));
                self.send_update(address, update::end_of_rib(family));
                None
            }
            Action::Down(down) => {
                self.down(address, down).await;
                None
            }
        }
    }

    async fn established(&mut self, address: IpAddr, negotiated: Negotiated) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        tracing::info!(neighbor = %address, remote_as = negotiated.remote_as, families = ?negotiated.families, "BGP session established");
        peer.negotiated = Some(negotiated.clone());
        peer.status.last_error.clear();
        let neighbor = decision::Neighbor {
            address,
            remote_as: negotiated.remote_as,
            router_id: negotiated.remote_id,
            families: negotiated.families.clone(),
            next_hop_ipv4: peer.local_v4,
            next_hop_ipv6: peer.local_v6,
            import: peer.config.import.clone(),
            export: peer.config.export.clone(),
        };
        let hold = Duration::from_secs(u64::from(self.config.restart_time.max(1)));
        if peer.bridge_session.is_none() {
            self.feed_bridge().await;
            let (nexthops, _ignored) = mpsc::unbounded_channel();
            match self.bridge.open(owner(address), Some(hold), nexthops).await {
                Ok(welcome) => {
                    if let Some(peer) = self.peers.get_mut(&address) {
                        peer.bridge_session = Some(welcome.session);
                    }
                }
                Err(error) => {
                    tracing::error!(neighbor = %address, %error, "cannot open the bridge session")
                }
            }
        }
        let export = self.rib.neighbor_up(neighbor);
        // Back from a graceful restart: families it no longer carries go
        // now; the others wait for their End-of-RIB a restart time more.
        let restart = Duration::from_secs(u64::from(self.config.restart_time.max(1)));
        let gone: Vec<Family> = match self.peers.get_mut(&address) {
            Some(peer) => match &mut peer.stale_until {
                Some((until, families)) => {
                    let gone = families
                        .iter()
                        .filter(|family| !negotiated.families.contains(family))
                        .copied()
                        .collect();
                    families.retain(|family| negotiated.families.contains(family));
                    *until = Instant::now() + restart;
                    gone
                }
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        if !gone.is_empty() {
            let changes = self.rib.sweep_stale(address, &gone, &resolver(&self.view));
            self.after_changes(changes).await;
        }
        self.send_export(address, export, None);
        for family in &negotiated.families {
            self.send_update(address, update::end_of_rib(*family));
        }
    }

    async fn received_update(&mut self, address: IpAddr, body: &[u8]) -> Option<Vec<Action>> {
        let peer = self.peers.get(&address)?;
        // An UPDATE read together with one that reset the session is not taken.
        if peer.session.state() != State::Established {
            return None;
        }
        let negotiated = peer.negotiated.clone()?;
        match update::decode(body, &negotiated) {
            Decoded::Reset(notification) => {
                tracing::warn!(neighbor = %address, notification = %session::describe(&notification), "malformed UPDATE: session reset");
                let peer = self.peers.get_mut(&address)?;
                Some(
                    peer.session
                        .handle(std::time::Instant::now(), Input::Reset(notification)),
                )
            }
            Decoded::Update { update, problems } => {
                for problem in &problems {
                    tracing::warn!(neighbor = %address, %problem, "UPDATE error handled (RFC 7606)");
                }
                let limit = self.peers.get(&address)?.config.prefix_limit;
                // Counted only under a limit: two lookups per prefix.
                let over_limit = limit > 0 && {
                    let added = update
                        .announced
                        .iter()
                        .filter(|(prefix, _)| !self.rib.has_received(address, prefix))
                        .count();
                    let removed = update
                        .withdrawn
                        .iter()
                        .filter(|prefix| self.rib.has_received(address, prefix))
                        .count();
                    (self.rib.received(address) + added).saturating_sub(removed) > limit as usize
                };
                if over_limit {
                    tracing::warn!(neighbor = %address, limit, "prefix limit exceeded: session reset");
                    let peer = self.peers.get_mut(&address)?;
                    // Cease / Maximum Number of Prefixes Reached (RFC 4486).
                    let notification = super::types::Notification {
                        code: 6,
                        subcode: 1,
                        data: Vec::new(),
                    };
                    return Some(
                        peer.session
                            .handle(std::time::Instant::now(), Input::Reset(notification)),
                    );
                }
                let eor = !update.end_of_rib.is_empty();
                let changes = self.rib.apply(address, &update, &resolver(&self.view));
                let received = self.rib.received(address) as u64;
                if let Some(peer) = self.peers.get_mut(&address) {
                    peer.status.prefixes_received = received;
                    // Each family's End-of-RIB ends its own wait.
                    if let Some((_, families)) = &mut peer.stale_until {
                        families.retain(|family| !update.end_of_rib.contains(family));
                        if families.is_empty() {
                            peer.stale_until = None;
                        }
                    }
                }
                self.after_changes(changes).await;
                if eor {
                    self.reclaim(address).await;
                }
                None
            }
        }
    }

    /// After a neighbor's End-of-RIB: its routes in the bridge are offered
    /// again (unchanged ones change nothing in the kernel), then the bridge
    /// drops those it no longer sends.
    async fn reclaim(&mut self, address: IpAddr) {
        self.feed_bridge().await;
        let Some(session) = self
            .peers
            .get(&address)
            .and_then(|peer| peer.bridge_session)
        else {
            return;
        };
        let mut updates = Vec::new();
        for (prefix, owner_address) in &self.fed {
            if *owner_address == address
                && let Some(spec) = self.route_spec(*prefix, self.rib.best(prefix))
            {
                updates.push(BridgeUpdate::Offer(spec));
            }
        }
        if !updates.is_empty() {
            let _ = self
                .bridge
                .session_updates(owner(address), session, updates)
                .await;
        }
        let _ = self.bridge.end_of_rib(owner(address)).await;
    }

    async fn down(&mut self, address: IpAddr, down: session::Down) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        if !down.was_established {
            peer.status.last_error = down.reason.to_string();
            return;
        }
        peer.status.resets += 1;
        peer.status.last_error = down.reason.to_string();
        peer.negotiated = None;
        tracing::warn!(neighbor = %address, reason = %down.reason, retain = ?down.retain, "BGP session down");
        match down.retain {
            Some(retention) => {
                // The bridge session stays open: the kernel keeps the routes
                // until the peer is back or its own restart time runs out,
                // when the speaker withdraws them through it.
                let dropped: Vec<Family> = [Family::Ipv4Unicast, Family::Ipv6Unicast]
                    .into_iter()
                    .filter(|family| !retention.families.contains(family))
                    .collect();
                peer.stale_until = Some((Instant::now() + retention.duration, retention.families));
                self.rib.mark_stale(address);
                // Families the peer did not ask to keep go now.
                if !dropped.is_empty() {
                    let changes = self
                        .rib
                        .sweep_stale(address, &dropped, &resolver(&self.view));
                    self.after_changes(changes).await;
                }
            }
            None => {
                let changes = self.rib.neighbor_down(address, &resolver(&self.view));
                self.after_changes(changes).await;
                self.feed_bridge().await;
                if let Some(peer) = self.peers.get_mut(&address)
                    && let Some(session) = peer.bridge_session.take()
                {
                    self.bridge.close(owner(address), session);
                }
            }
        }
        let kept = self.rib.received(address) as u64;
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.status.prefixes_received = kept;
            peer.status.prefixes_sent = 0;
        }
    }

    /// New best paths: to the bridge, and to every neighbor.
    async fn after_changes(&mut self, changes: Vec<BestChange>) {
        if changes.is_empty() {
            return;
        }
        let exports = self.rib.export(&changes);
        for (address, export) in exports {
            self.send_export(address, export, None);
        }
        for change in changes {
            match self.pending_index.get(&change.prefix) {
                // The latest change of a prefix is all the bridge needs.
                Some(index) => self.pending[*index] = change,
                None => {
                    self.pending_index.insert(change.prefix, self.pending.len());
                    self.pending.push(change);
                }
            }
        }
        self.pending_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= FEED_AT {
            self.feed_bridge().await;
        }
    }

    fn send_export(&mut self, address: IpAddr, export: decision::Export, only: Option<Family>) {
        let Some(negotiated) = self
            .peers
            .get(&address)
            .and_then(|peer| peer.negotiated.clone())
        else {
            return;
        };
        for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            if only.is_some_and(|only| only != family) {
                continue;
            }
            let announced: Vec<(IpNet, Arc<Attributes>)> = export
                .announced
                .iter()
                .filter(|(prefix, _)| Family::of(prefix) == family)
                .cloned()
                .collect();
            let withdrawn: Vec<IpNet> = export
                .withdrawn
                .iter()
                .filter(|prefix| Family::of(prefix) == family)
                .copied()
                .collect();
            for message in update::encode(family, &announced, &withdrawn, &negotiated) {
                self.send_update(address, message);
            }
        }
        let held = self.rib.sent(address) as u64;
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.status.prefixes_sent = held;
        }
    }

    fn send_update(&mut self, address: IpAddr, message: Vec<u8>) {
        let actions = match self.peers.get_mut(&address) {
            Some(peer) => peer
                .session
                .handle(std::time::Instant::now(), Input::SendUpdate(message)),
            None => return,
        };
        for action in actions {
            if let Action::Send(id, bytes) = action
                && let Some(peer) = self.peers.get_mut(&address)
            {
                peer.status.messages_sent += 1;
                if let Some(writer) = peer.writers.get(&id) {
                    let _ = writer.send(Writing::Bytes(bytes));
                }
            }
        }
    }

    /// The bridge's view of a prefix's best paths: their nexthops, under
    /// the owner of the first neighbor path; local networks are not fed.
    fn route_spec(&self, prefix: IpNet, paths: &[decision::Path]) -> Option<RouteSpec> {
        let first = paths.iter().find_map(|path| match path.source {
            Source::Neighbor(address) => Some(address),
            Source::Local => None,
        })?;
        let mut nexthops: Vec<NexthopSpec> = Vec::new();
        for path in paths {
            if let Source::Neighbor(_) = path.source
                && let Some(next_hop) = path.attributes.next_hop
            {
                let nexthop = NexthopSpec::Address(next_hop);
                if !nexthops.contains(&nexthop) {
                    nexthops.push(nexthop);
                }
            }
        }
        let ebgp = self
            .peers
            .get(&first)
            .is_some_and(|peer| peer.config.remote_as != self.config.asn);
        Some(RouteSpec {
            prefix,
            nexthops,
            distance: if ebgp { EBGP_DISTANCE } else { IBGP_DISTANCE },
            metric: 0,
        })
    }

    /// Gives the pending best-path changes to the bridge. The bridge takes
    /// commands in order: a batch given here is applied before any later
    /// open, close or End-of-RIB, without waiting for its results.
    async fn feed_bridge(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.pending);
        self.pending_index.clear();
        self.pending_since = None;
        let mut offers: BTreeMap<IpAddr, Vec<BridgeUpdate>> = BTreeMap::new();
        let mut withdrawals: BTreeMap<IpAddr, Vec<BridgeUpdate>> = BTreeMap::new();
        for change in &changes {
            // The change carries the best paths: no lookup of them.
            let spec = self.route_spec(change.prefix, &change.paths);
            let new_owner = spec.as_ref().and_then(|_| {
                change.paths.iter().find_map(|path| match path.source {
                    Source::Neighbor(address) => Some(address),
                    Source::Local => None,
                })
            });
            let old_owner = self.fed.get(&change.prefix).copied();
            if let (Some(spec), Some(owner_address)) = (spec, new_owner) {
                offers
                    .entry(owner_address)
                    .or_default()
                    .push(BridgeUpdate::Offer(spec));
                self.fed.insert(change.prefix, owner_address);
            } else {
                self.fed.remove(&change.prefix);
            }
            // Routes each neighbor carries to the kernel, kept as they move.
            if old_owner != new_owner.filter(|_| self.fed.contains_key(&change.prefix)) {
                if let Some(peer) = old_owner.and_then(|old| self.peers.get_mut(&old)) {
                    peer.status.prefixes_accepted = peer.status.prefixes_accepted.saturating_sub(1);
                }
                if let Some(peer) = self
                    .fed
                    .get(&change.prefix)
                    .copied()
                    .and_then(|new| self.peers.get_mut(&new))
                {
                    peer.status.prefixes_accepted += 1;
                }
            }
            if let Some(old) = old_owner
                && Some(old) != new_owner
            {
                withdrawals
                    .entry(old)
                    .or_default()
                    .push(BridgeUpdate::Withdraw(change.prefix));
            }
        }
        // Offers first: a prefix moving between neighbors is replaced in
        // place, never removed and added.
        for (batches, what) in [(offers, "offer"), (withdrawals, "withdraw")] {
            for (address, updates) in batches {
                let Some(session) = self
                    .peers
                    .get(&address)
                    .and_then(|peer| peer.bridge_session)
                else {
                    continue;
                };
                match self
                    .bridge
                    .submit_session_updates(owner(address), session, updates)
                {
                    Ok(results) => self.in_flight.push_back(InFlight {
                        address,
                        what,
                        results,
                    }),
                    Err(error) => {
                        tracing::warn!(neighbor = %address, %error, "cannot feed the bridge")
                    }
                }
            }
        }
        while self.in_flight.len() > FEEDS_IN_FLIGHT {
            if let Some(mut feed) = self.in_flight.pop_front() {
                let results = (&mut feed.results)
                    .await
                    .unwrap_or(Err(BridgeError::Stopped));
                feed.log(results);
            }
        }
    }

    /// Reads the results of the batches the bridge is done with.
    fn settle_feeds(&mut self) {
        while let Some(feed) = self.in_flight.front_mut() {
            let results = match feed.results.try_recv() {
                Ok(results) => results,
                Err(oneshot::error::TryRecvError::Empty) => return,
                Err(oneshot::error::TryRecvError::Closed) => Err(BridgeError::Stopped),
            };
            if let Some(feed) = self.in_flight.pop_front() {
                feed.log(results);
            }
        }
    }

    fn publish_neighbors(&self) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.neighbors = self
            .peers
            .values()
            .map(|peer| peer.status.clone())
            .collect();
    }

    fn paths(&self) -> Vec<PathStatus> {
        let mut paths = Vec::new();
        let best: BTreeSet<(IpNet, Option<IpAddr>)> = self
            .rib
            .best_paths()
            .flat_map(|(prefix, paths)| {
                paths.iter().map(move |path| {
                    (
                        *prefix,
                        match path.source {
                            Source::Neighbor(address) => Some(address),
                            Source::Local => None,
                        },
                    )
                })
            })
            .collect();
        for (prefix, best_paths) in self.rib.best_paths() {
            for path in best_paths {
                if path.source == Source::Local {
                    paths.push(PathStatus {
                        prefix: *prefix,
                        neighbor: None,
                        attributes: Arc::clone(&path.attributes),
                        best: true,
                        stale: false,
                    });
                }
            }
        }
        for address in self.peers.keys() {
            for (prefix, attributes, stale) in self.rib.adj_rib_in(*address) {
                paths.push(PathStatus {
                    prefix: *prefix,
                    neighbor: Some(*address),
                    attributes: Arc::clone(attributes),
                    best: best.contains(&(*prefix, Some(*address))),
                    stale,
                });
            }
        }
        paths.sort_by_key(|path| (path.prefix, path.neighbor));
        paths
    }
}

impl InFlight {
    fn log(&self, results: Result<Vec<UpdateResult>, BridgeError>) {
        let (address, what) = (self.address, self.what);
        match results {
            Ok(results) => {
                let accepted = results
                    .iter()
                    .filter(|result| !matches!(result.status, crate::rib::RouteStatus::Refused(_)))
                    .count();
                tracing::debug!(neighbor = %address, what, accepted, "fed the bridge");
            }
            Err(error) => tracing::warn!(neighbor = %address, %error, "cannot feed the bridge"),
        }
    }
}

fn owner(address: IpAddr) -> Owner {
    Owner::new(format!("bgp:{address}"))
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// Nexthops resolve onto a tunnel that is up with a live peer, never over
/// a route the speaker learned.
fn resolver(view: &TunnelView) -> impl Resolver + '_ {
    move |next_hop: IpAddr| {
        view.tunnels.iter().any(|tunnel| {
            tunnel.up
                && tunnel.peers.iter().any(|peer| peer.reachable)
                && tunnel
                    .addresses
                    .iter()
                    .any(|net| net.contains(&next_hop) && net.addr() != next_hop)
        })
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
