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
//! iBGP.
//!
//! Neighbors are keyed and named by `NeighborId`: the address, and for a
//! link-local one its tunnel (`fe80::2%dn42b`). A link-local session
//! binds and connects from its tunnel's configured `fe80::` address with
//! the tunnel's interface index as scope, looked up at each connect (a
//! re-created tunnel has a new index); an accepted connection from a
//! link-local address belongs to the neighbor whose tunnel's index is the
//! connection's scope. Its routes' link-local nexthops go to the bridge
//! as `via fe80::.. dev <tunnel>`, IPv4 routes included (RFC 8950).
//!
//! A neighbor that goes down with graceful restart keeps its routes: its
//! bridge session closes with a hold of the restart time, so the kernel
//! keeps them until it is back (and re-claims them before its End-of-RIB)
//! or the time runs out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::decision::{self, BestChange, LocRib, Resolver, Source, first_neighbor};
use super::packet::{self as update, Decoded};
use super::policy::{Policy, Validity};
use super::rpki::{Rpki, RpkiConfig, RpkiEvent, RpkiStatus};
use super::session::{
    self, Action, ConnectionId, GracefulRestartConfig, Input, Session, SessionConfig, State,
};
use super::types::{Asn, Attributes, Family, Negotiated, NeighborId};
use crate::engine::{Bridge, BridgeError, Update as BridgeUpdate, UpdateResult};
use crate::route::{NexthopSpec, Owner, RouteSpec, TunnelInfo, TunnelView};

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
/// How many of a neighbor's paths a session that went down takes out of
/// the table at a time (see `LocRib::neighbor_leaving`): a full table's
/// changes are not all held at once.
const LEAVING_PART: usize = 1 << 15;
const FEED_DELAY: Duration = Duration::from_millis(50);
/// Batches given to the bridge whose results are not read yet: the
/// speaker decodes the next UPDATEs while the bridge programs the kernel.
const FEEDS_IN_FLIGHT: usize = 4;
/// How often the paths per validation state are counted for the status.
const RPKI_COUNT_INTERVAL: Duration = Duration::from_secs(5);

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
    /// Origin validation against these RPKI caches; none: no validation.
    pub rpki: Option<RpkiConfig>,
    /// Where the BFD sessions run: the BFD process there, or (none) in
    /// this process.
    pub bfd_host: Option<super::bfd::BfdHost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub address: IpAddr,
    /// The tunnel the neighbor is on: required for a link-local address
    /// (it scopes it), otherwise where our nexthops for it come from.
    pub tunnel: Option<String>,
    pub remote_as: Asn,
    pub passive: bool,
    pub hold_time: Option<u16>,
    pub prefix_limit: u32,
    /// What `prefix_limit` does once reached: reset the session (the
    /// default) or block new prefixes.
    pub prefix_limit_action: decision::LimitAction,
    pub description: Option<String>,
    /// TCP MD5 (RFC 2385).
    pub password: Option<Secret>,
    /// RFC 5082, one hop.
    pub ttl_security: bool,
    /// BFD over the neighbor's tunnel (RFC 5881), with these timers: when
    /// it falls from Up, the session goes down with its routes.
    pub bfd: Option<wgd_bfd::Timers>,
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

impl NeighborConfig {
    /// How the speaker keys and names this neighbor.
    pub fn id(&self) -> Result<NeighborId, super::types::NeighborIdError> {
        NeighborId::new(self.address, self.tunnel.as_deref())
    }
}

/// One neighbor as `wgd bgp summary` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborStatus {
    pub id: NeighborId,
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
    /// Announcements of new prefixes not taken since wgd started: the
    /// prefix limit was reached with `prefix_limit_action = "block"`.
    pub prefixes_blocked: u64,
}

/// One path as `wgd bgp routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    pub prefix: IpNet,
    pub neighbor: Option<NeighborId>,
    pub attributes: Arc<Attributes>,
    pub best: bool,
    pub stale: bool,
    /// Origin validation, when it is on.
    pub validity: Option<Validity>,
}

#[derive(Debug, Clone, Default)]
pub struct SpeakerStatus {
    pub asn: Asn,
    pub router_id: Option<Ipv4Addr>,
    pub neighbors: Vec<NeighborStatus>,
    /// Origin validation, when RPKI caches are configured.
    pub rpki: Option<RpkiStatus>,
}

/// What `wgd rpki validate` answers: the state, and the VRPs that cover
/// the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub validity: Validity,
    pub covering: Vec<wgd_rtr::Vrp>,
}

type ValidationRequest = (IpNet, Asn, oneshot::Sender<Option<Validation>>);

/// The handle the daemon keeps: the status for the API, and the tunnel
/// view it passes on.
#[derive(Debug, Clone)]
pub struct Speaker {
    status: Arc<Mutex<SpeakerStatus>>,
    bfd: super::bfd::Bfd,
    tunnels: watch::Sender<TunnelView>,
    /// Asks the speaker's task for its paths (listing them walks the table).
    paths: mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Vec<PathStatus>>>,
    /// Asks it to validate a route against its VRPs.
    validations: mpsc::UnboundedSender<ValidationRequest>,
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
        listen_md5(&listener, &config.neighbors)?;
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
        let bfd_events = events.clone();
        let bfd = super::bfd::Bfd::start(
            bfd_neighbors(&config.neighbors),
            tunnels.subscribe(),
            Box::new(move |neighbor, transition| {
                let _ = bfd_events.send(Event::Bfd(neighbor, transition));
            }),
            config.bfd_host.clone(),
        );
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
        let (validations, validation_requests) = mpsc::unbounded_channel();
        tokio::spawn(core.run(incoming, tunnel_updates, path_requests, validation_requests));
        Ok(Speaker {
            status,
            bfd,
            tunnels,
            paths,
            validations,
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

    /// The origin validation state of a route to `prefix` from
    /// `origin`, `None` when no RPKI cache is configured.
    pub async fn validate(&self, prefix: IpNet, origin: Asn) -> Option<Validation> {
        let (reply, answer) = oneshot::channel();
        self.validations.send((prefix, origin, reply)).ok()?;
        answer.await.ok().flatten()
    }

    /// Every BFD session, for `wgd bfd`.
    pub fn bfd(&self) -> Vec<super::bfd::BfdStatus> {
        self.bfd.status()
    }

    /// The BFD sessions' host, to add static routes' nexthops to.
    pub fn bfd_handle(&self) -> super::bfd::Bfd {
        self.bfd.clone()
    }

    /// BFD state changes from now on, for the event stream.
    pub fn bfd_changes(&self) -> tokio::sync::broadcast::Receiver<super::bfd::BfdChange> {
        self.bfd.subscribe()
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
    Connected(NeighborId, u64, TcpStream),
    /// With why, when it is worth `last_error`: the neighbor's tunnel is
    /// not there to connect over (a refused connect is no news, and would
    /// hide why the session last went down).
    ConnectFailed(NeighborId, u64, Option<String>),
    Received(NeighborId, ConnectionId, Vec<u8>),
    Closed(NeighborId, ConnectionId),
    /// The neighbor's BFD session changed state.
    Bfd(NeighborId, wgd_bfd::Transition),
    Rpki(RpkiEvent),
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
    /// The bridge session of owner `bgp:<neighbor>`, when open.
    bridge_session: Option<u64>,
    status: NeighborStatus,
    /// The tunnel the session runs over: the configured one, or the one
    /// whose subnet holds the neighbor's address. Link-local nexthops
    /// resolve on it.
    tunnel: Option<String>,
    /// Our addresses on the neighbor's tunnel (nexthop self).
    local_v4: Option<Ipv4Addr>,
    local_v6: Option<Ipv6Addr>,
    local_link_local: Option<Ipv6Addr>,
    /// The interface index of the tunnel when last looked: a new one (the
    /// tunnel came, or came back) is worth connecting at once.
    ifindex: u32,
    /// "IPv4 routes not sent" was logged (once per neighbor).
    told_no_ipv4: bool,
    /// "Prefix limit reached, new prefixes blocked" was logged (once per
    /// session).
    told_blocking: bool,
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
    peers: BTreeMap<NeighborId, Peer>,
    rib: LocRib,
    view: TunnelView,
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
    /// A neighbor whose session is ending: its routes leave the bridge
    /// with the session, not one by one.
    leaving: Option<NeighborId>,
    /// Batches given to the bridge, with their results to come.
    in_flight: VecDeque<InFlight>,
    /// The RTR client, when RPKI caches are configured.
    rpki: Option<Rpki>,
    /// Paths valid, invalid and not found, counted every
    /// [`RPKI_COUNT_INTERVAL`] (a walk of the whole table).
    validity_counts: [usize; 3],
}

/// A batch given to the bridge for one neighbor's session.
struct InFlight {
    neighbor: NeighborId,
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
            let id = neighbor.id().map_err(|error| {
                std::io::Error::other(format!("neighbor {}: {error}", neighbor.address))
            })?;
            let mut session_config =
                SessionConfig::new(config.asn, neighbor.remote_as, config.router_id);
            session_config.hold_time = neighbor.hold_time.unwrap_or(config.hold_time);
            session_config.passive = neighbor.passive;
            // RFC 8950: IPv4 routes with an IPv6 nexthop, where the peer offers it.
            session_config.extended_next_hop_ipv4 = true;
            // RFC 8654: UPDATEs up to 65535 octets, where the peer offers it.
            session_config.extended_messages = true;
            if config.graceful_restart {
                session_config.graceful_restart = Some(GracefulRestartConfig {
                    restart_time: config.restart_time,
                    restarting: config.restarting,
                    forwarding_preserved: true,
                });
            }
            let session = Session::new(session_config)
                .map_err(|error| std::io::Error::other(format!("neighbor {id}: {error:?}")))?;
            let previous = peers.insert(
                id,
                Peer {
                    status: NeighborStatus {
                        id,
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
                        prefixes_blocked: 0,
                    },
                    config: neighbor.clone(),
                    session,
                    writers: HashMap::new(),
                    connecting: None,
                    negotiated: None,
                    bridge_session: None,
                    tunnel: id.tunnel().map(str::to_owned),
                    local_v4: None,
                    local_v6: None,
                    local_link_local: None,
                    ifindex: 0,
                    told_no_ipv4: false,
                    told_blocking: false,
                    stale_until: None,
                },
            );
            if previous.is_some() {
                return Err(std::io::Error::other(format!(
                    "neighbor {id} is configured twice"
                )));
            }
        }
        let mut rib = LocRib::new(decision::Config {
            local_as: config.asn,
            router_id: config.router_id,
            max_paths: usize::from(config.max_paths.max(1)),
        });
        let rpki = config.rpki.as_ref().map(|rpki| {
            rib.validate_origins();
            let events = events.clone();
            Rpki::new(rpki, move |event| {
                let _ = events.send(Event::Rpki(event));
            })
        });
        Ok(Self {
            config,
            bridge,
            events,
            status,
            peers,
            rib,
            view: TunnelView::default(),
            next_connection: 1,
            kernel,
            present: Vec::new(),
            pending: Vec::new(),
            pending_index: HashMap::default(),
            pending_since: None,
            leaving: None,
            in_flight: VecDeque::new(),
            rpki,
            validity_counts: [0; 3],
        })
    }

    async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<Event>,
        mut tunnels: watch::Receiver<TunnelView>,
        mut path_requests: mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<Vec<PathStatus>>>,
        mut validation_requests: mpsc::UnboundedReceiver<ValidationRequest>,
    ) {
        self.view = tunnels.borrow_and_update().clone();
        self.locate_addresses();
        self.check_networks().await;
        let neighbors: Vec<NeighborId> = self.peers.keys().copied().collect();
        for neighbor in neighbors {
            self.drive(neighbor, Input::Start).await;
        }
        if let Some(rpki) = &mut self.rpki {
            let updates = rpki.start();
            self.origins_changed(updates).await;
        }
        let mut networks = tokio::time::interval(NETWORKS_INTERVAL);
        networks.reset();
        let mut rpki_count = tokio::time::interval(RPKI_COUNT_INTERVAL);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                event = incoming.recv() => match event {
                    Some(event) => self.event(event).await,
                    None => break,
                },
                Ok(()) = tunnels.changed() => {
                    self.view = tunnels.borrow_and_update().clone();
                    let arrived = self.locate_addresses();
                    let changes = self.rib.revalidate(&resolver(&self.view, &self.peers));
                    self.after_changes(changes).await;
                    // A tunnel that came (back): no need to wait out the
                    // backoff its absence built up.
                    for neighbor in arrived {
                        self.drive(neighbor, Input::RetryNow).await;
                    }
                }
                () = sleep_until(deadline) => self.tick().await,
                _ = networks.tick() => self.check_networks().await,
                Some(reply) = path_requests.recv() => {
                    let _ = reply.send(self.paths());
                }
                Some((prefix, origin, reply)) = validation_requests.recv() => {
                    let _ = reply.send(self.validate(prefix, origin));
                }
                _ = rpki_count.tick(), if self.rpki.is_some() => {
                    self.validity_counts = self.rib.validity_counts().unwrap_or_default();
                    self.publish_rpki();
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
        let changes = self
            .rib
            .set_networks(&self.present, &resolver(&self.view, &self.peers));
        self.after_changes(changes).await;
    }

    /// Each neighbor's tunnel and our addresses on it: the configured
    /// tunnel, or else the one whose subnet (or point-to-point far end)
    /// holds the neighbor's address. The answer: the neighbors whose
    /// tunnel is there with a new interface index.
    fn locate_addresses(&mut self) -> Vec<NeighborId> {
        let mut new_index = Vec::new();
        for (id, peer) in &mut self.peers {
            let Some(tunnel) = session_tunnel(&peer.config, &self.view) else {
                continue;
            };
            if tunnel.ifindex != 0 && tunnel.ifindex != peer.ifindex {
                peer.ifindex = tunnel.ifindex;
                new_index.push(*id);
            }
            peer.tunnel = Some(tunnel.name.clone());
            let local = local_addresses(&peer.config, *id, tunnel);
            (peer.local_v4, peer.local_v6, peer.local_link_local) = local;
        }
        new_index
    }

    fn next_deadline(&self) -> Option<Instant> {
        let rpki = self.rpki.as_ref().and_then(Rpki::next_deadline);
        self.peers
            .values()
            .flat_map(|peer| {
                let session = peer.session.next_deadline().map(Instant::from_std);
                let stale = peer.stale_until.as_ref().map(|(at, _)| *at);
                session.into_iter().chain(stale)
            })
            .chain(rpki)
            .min()
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if let Some(rpki) = &mut self.rpki
            && rpki.next_deadline().is_some_and(|at| at <= now)
        {
            let updates = rpki.tick();
            self.origins_changed(updates).await;
        }
        let neighbors: Vec<NeighborId> = self.peers.keys().copied().collect();
        for neighbor in neighbors {
            let due = self.peers[&neighbor]
                .session
                .next_deadline()
                .is_some_and(|at| Instant::from_std(at) <= now);
            if due {
                self.drive(neighbor, Input::Tick).await;
            }
            let stale_due = self.peers[&neighbor]
                .stale_until
                .as_ref()
                .is_some_and(|(at, _)| *at <= now);
            if stale_due {
                let families = self
                    .peers
                    .get_mut(&neighbor)
                    .and_then(|peer| peer.stale_until.take())
                    .map(|(_, families)| families)
                    .unwrap_or_default();
                tracing::info!(neighbor = %neighbor, "graceful restart time over: stale routes withdrawn");
                let changes =
                    self.rib
                        .sweep_stale(neighbor, &families, &resolver(&self.view, &self.peers));
                self.after_changes(changes).await;
                self.feed_bridge().await;
                // Still not back: its bridge session goes with its routes.
                if let Some(peer) = self.peers.get_mut(&neighbor)
                    && peer.negotiated.is_none()
                    && let Some(session) = peer.bridge_session.take()
                {
                    self.bridge.close(owner(neighbor), session);
                }
            }
        }
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Accepted(stream, from) => {
                let neighbor = accepted_from(from, &self.view);
                let Some(peer) = neighbor.and_then(|neighbor| self.peers.get(&neighbor)) else {
                    tracing::info!(%from, "BGP connection from an address that is no neighbor; closed");
                    return;
                };
                let neighbor = peer.status.id;
                if peer.config.ttl_security
                    && let Err(error) = super::socket::set_ttl_security(&stream)
                {
                    tracing::warn!(%neighbor, %error, "cannot set the TTL security check");
                    return;
                }
                let id = self.connection(neighbor, stream);
                self.drive(neighbor, Input::Accepted(id)).await;
            }
            Event::Connected(neighbor, attempt, stream) => {
                let current = self
                    .peers
                    .get(&neighbor)
                    .is_some_and(|peer| peer.connecting == Some(attempt));
                if !current {
                    return;
                }
                if let Some(peer) = self.peers.get_mut(&neighbor) {
                    peer.connecting = None;
                }
                let id = self.connection(neighbor, stream);
                self.drive(neighbor, Input::Connected(id)).await;
            }
            Event::ConnectFailed(neighbor, attempt, reason) => {
                let current = self
                    .peers
                    .get(&neighbor)
                    .is_some_and(|peer| peer.connecting == Some(attempt));
                if current {
                    if let Some(peer) = self.peers.get_mut(&neighbor) {
                        peer.connecting = None;
                        if let Some(reason) = reason {
                            peer.status.last_error = format!("cannot connect: {reason}");
                        }
                    }
                    self.drive(neighbor, Input::ConnectFailed).await;
                }
            }
            Event::Received(neighbor, id, bytes) => {
                self.drive(neighbor, Input::Received(id, &bytes)).await;
            }
            Event::Closed(neighbor, id) => {
                if let Some(peer) = self.peers.get_mut(&neighbor) {
                    peer.writers.remove(&id);
                }
                self.drive(neighbor, Input::Closed(id)).await;
            }
            Event::Bfd(neighbor, transition) => self.bfd_changed(neighbor, transition).await,
            Event::Rpki(event) => {
                if let Some(rpki) = &mut self.rpki {
                    let updates = rpki.event(event);
                    self.origins_changed(updates).await;
                }
            }
        }
    }

    /// An RPKI cache's VRPs changed: the paths they cover are validated
    /// again, and those whose state changes go through import policy
    /// again (no session reset, no route refresh).
    async fn origins_changed(&mut self, updates: Vec<wgd_rtr::VrpUpdate>) {
        for update in updates {
            let (changes, mistakes) = self
                .rib
                .update_origins(update, &resolver(&self.view, &self.peers));
            if mistakes > 0 {
                tracing::warn!(
                    mistakes,
                    "RPKI cache announced VRPs it had announced, or withdrew ones it had not"
                );
            }
            let (ipv4, ipv6) = self
                .rib
                .origins()
                .map(wgd_rtr::VrpTable::counts)
                .unwrap_or_default();
            tracing::info!(
                ipv4,
                ipv6,
                best_changed = changes.len(),
                "RPKI VRPs updated"
            );
            self.after_changes(changes).await;
        }
        self.publish_rpki();
    }

    fn publish_rpki(&self) {
        let Some(rpki) = &self.rpki else {
            return;
        };
        let status = rpki.status(self.rib.origins(), self.validity_counts);
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rpki = Some(status);
    }

    fn validate(&self, prefix: IpNet, origin: Asn) -> Option<Validation> {
        let origins = self.rib.origins()?;
        let prefix = prefix.trunc();
        Some(Validation {
            validity: origins.validate(&prefix, Some(origin)),
            covering: origins.covering(&prefix),
        })
    }

    /// BFD saw the path through the neighbor's tunnel fail (RFC 5882): the
    /// session goes at once and its routes with it, graceful restart or
    /// not (a forwarding failure, not a restart), with NOTIFICATION Cease
    /// / BFD Down (RFC 9384). Which changes count: `bfd::takes_bgp_down`.
    async fn bfd_changed(&mut self, neighbor: NeighborId, transition: wgd_bfd::Transition) {
        if !super::bfd::takes_bgp_down(&transition) {
            return;
        }
        let established = self
            .peers
            .get(&neighbor)
            .is_some_and(|peer| peer.session.state() == State::Established);
        if !established {
            return;
        }
        tracing::warn!(%neighbor, diagnostic = %transition.diagnostic, "BFD down: BGP session reset");
        let notification = super::types::Notification {
            code: 6,
            subcode: 10,
            data: Vec::new(),
        };
        self.drive(neighbor, Input::Reset(notification)).await;
    }

    /// Starts the reader and writer tasks of a connection.
    fn connection(&mut self, neighbor: NeighborId, stream: TcpStream) -> ConnectionId {
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
                        let _ = events.send(Event::Closed(neighbor, id));
                        break;
                    }
                    Ok(read) => {
                        if events
                            .send(Event::Received(neighbor, id, buffer[..read].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        if let Some(peer) = self.peers.get_mut(&neighbor) {
            peer.writers.insert(id, writing);
        }
        id
    }

    /// Feeds one input to a neighbor's session and carries out what it
    /// asks, following UPDATE decoding and resets back into it.
    async fn drive(&mut self, neighbor: NeighborId, input: Input<'_>) {
        let mut pending: Vec<Vec<Action>> = Vec::new();
        {
            let Some(peer) = self.peers.get_mut(&neighbor) else {
                return;
            };
            pending.push(peer.session.handle(std::time::Instant::now(), input));
            peer.status.messages_received = peer.session.messages_received();
        }
        while let Some(actions) = pending.pop() {
            for action in actions {
                if let Some(more) = self.act(neighbor, action).await {
                    pending.push(more);
                }
            }
        }
        if let Some(peer) = self.peers.get_mut(&neighbor) {
            let state = peer.session.state();
            if state != peer.status.state {
                peer.status.state = state;
                peer.status.since = SystemTime::now();
            }
        }
    }

    async fn act(&mut self, neighbor: NeighborId, action: Action) -> Option<Vec<Action>> {
        match action {
            Action::Connect => {
                let attempt = self.next_connection;
                self.next_connection += 1;
                let ends = connect_ends(neighbor, self.config.port, &self.view);
                let peer = self.peers.get_mut(&neighbor)?;
                peer.connecting = Some(attempt);
                let events = self.events.clone();
                let password = peer.config.password.clone();
                let ttl_security = peer.config.ttl_security;
                tokio::spawn(async move {
                    // The tunnel of a link-local neighbor is not there (yet):
                    // a failed attempt, tried again after the session's wait.
                    let (local, target) = match ends {
                        Ok(ends) => ends,
                        Err(reason) => {
                            tracing::debug!(%neighbor, %reason, "cannot connect");
                            let _ =
                                events.send(Event::ConnectFailed(neighbor, attempt, Some(reason)));
                            return;
                        }
                    };
                    let connect = async {
                        let socket = match target {
                            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                        };
                        if let Some(local) = local {
                            socket.bind(local)?;
                        }
                        if let Some(password) = &password {
                            super::socket::set_md5(&socket, target.ip(), password.0.as_bytes())?;
                        }
                        if ttl_security {
                            super::socket::set_ttl_security(&socket)?;
                        }
                        socket.connect(target).await
                    };
                    let event = match tokio::time::timeout(Duration::from_secs(30), connect).await {
                        Ok(Ok(stream)) => Event::Connected(neighbor, attempt, stream),
                        Ok(Err(error)) => {
                            tracing::debug!(%neighbor, %error, "connect failed");
                            Event::ConnectFailed(neighbor, attempt, None)
                        }
                        Err(_) => Event::ConnectFailed(neighbor, attempt, None),
                    };
                    let _ = events.send(event);
                });
                None
            }
            Action::CancelConnect => {
                self.peers.get_mut(&neighbor)?.connecting = None;
                None
            }
            Action::Send(id, bytes) => {
                let peer = self.peers.get_mut(&neighbor)?;
                peer.status.messages_sent += 1;
                if let Some(writer) = peer.writers.get(&id) {
                    let _ = writer.send(Writing::Bytes(bytes));
                }
                None
            }
            Action::Disconnect(id) => {
                let peer = self.peers.get_mut(&neighbor)?;
                if let Some(writer) = peer.writers.remove(&id) {
                    let _ = writer.send(Writing::Close);
                }
                None
            }
            Action::Established(negotiated) => {
                self.established(neighbor, negotiated).await;
                None
            }
            Action::Update(body) => self.received_update(neighbor, &body).await,
            Action::RouteRefresh(family) => {
                // Send the family's routes again, then its End-of-RIB.
                let export = self.rib.refresh(neighbor);
                self.send_export(neighbor, export, Some(family));
                self.send_update(neighbor, update::end_of_rib(family));
                None
            }
            Action::Down(down) => {
                self.down(neighbor, down).await;
                None
            }
        }
    }

    async fn established(&mut self, neighbor: NeighborId, negotiated: Negotiated) {
        let Some(peer) = self.peers.get_mut(&neighbor) else {
            return;
        };
        tracing::info!(neighbor = %neighbor, remote_as = negotiated.remote_as, families = ?negotiated.families, "BGP session established");
        peer.negotiated = Some(negotiated.clone());
        peer.status.last_error.clear();
        peer.told_blocking = false;
        // A link-local session sends our link-local nexthop (beside the
        // global one, if any), and with RFC 8950 its IPv4 routes go with
        // them too. A global session sends IPv4 routes with our IPv4
        // address while the tunnel has one, as it always did.
        let link_local = neighbor.is_link_local();
        let ipv4_over_ipv6 =
            negotiated.extended_next_hop_ipv4 && (link_local || peer.local_v4.is_none());
        if negotiated.families.contains(&Family::Ipv4Unicast)
            && !ipv4_over_ipv6
            && peer.local_v4.is_none()
            && !peer.told_no_ipv4
        {
            peer.told_no_ipv4 = true;
            tracing::warn!(
                neighbor = %neighbor,
                tunnel = peer.tunnel.as_deref().unwrap_or("-"),
                "IPv4 routes are not sent to this neighbor: it did not negotiate extended next hop (RFC 8950) and its tunnel has no IPv4 address to give as nexthop"
            );
        }
        let settings = decision::Neighbor {
            id: neighbor,
            remote_as: negotiated.remote_as,
            router_id: negotiated.remote_id,
            families: negotiated.families.clone(),
            next_hop_ipv4: peer.local_v4,
            next_hop_ipv6: peer.local_v6,
            next_hop_link_local: peer.local_link_local.filter(|_| link_local),
            ipv4_over_ipv6,
            import: peer.config.import.clone(),
            export: peer.config.export.clone(),
        };
        let hold = Duration::from_secs(u64::from(self.config.restart_time.max(1)));
        if peer.bridge_session.is_none() {
            self.feed_bridge().await;
            let (nexthops, _ignored) = mpsc::unbounded_channel();
            match self
                .bridge
                .open(owner(neighbor), Some(hold), nexthops)
                .await
            {
                Ok(welcome) => {
                    if let Some(peer) = self.peers.get_mut(&neighbor) {
                        peer.bridge_session = Some(welcome.session);
                    }
                }
                Err(error) => {
                    tracing::error!(neighbor = %neighbor, %error, "cannot open the bridge session")
                }
            }
        }
        let export = self.rib.neighbor_up(settings);
        // Back from a graceful restart: families it no longer carries go
        // now; the others wait for their End-of-RIB a restart time more.
        let restart = Duration::from_secs(u64::from(self.config.restart_time.max(1)));
        let gone: Vec<Family> = match self.peers.get_mut(&neighbor) {
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
            let changes = self
                .rib
                .sweep_stale(neighbor, &gone, &resolver(&self.view, &self.peers));
            self.after_changes(changes).await;
        }
        self.send_export(neighbor, export, None);
        for family in &negotiated.families {
            self.send_update(neighbor, update::end_of_rib(*family));
        }
    }

    async fn received_update(&mut self, neighbor: NeighborId, body: &[u8]) -> Option<Vec<Action>> {
        let peer = self.peers.get(&neighbor)?;
        // An UPDATE read together with one that reset the session is not taken.
        if peer.session.state() != State::Established {
            return None;
        }
        let negotiated = peer.negotiated.clone()?;
        match update::decode(body, &negotiated) {
            Decoded::Reset(notification) => {
                tracing::warn!(neighbor = %neighbor, notification = %session::describe(&notification), "malformed UPDATE: session reset");
                let peer = self.peers.get_mut(&neighbor)?;
                Some(
                    peer.session
                        .handle(std::time::Instant::now(), Input::Reset(notification)),
                )
            }
            Decoded::Update {
                mut update,
                problems,
            } => {
                for problem in &problems {
                    tracing::warn!(neighbor = %neighbor, %problem, "UPDATE error handled (RFC 7606)");
                }
                let config = &self.peers.get(&neighbor)?.config;
                let limit = decision::PrefixLimit {
                    limit: config.prefix_limit,
                    action: config.prefix_limit_action,
                };
                match self.rib.limit(neighbor, &mut update, limit) {
                    decision::Limited::Within => {}
                    decision::Limited::Reset => {
                        tracing::warn!(neighbor = %neighbor, limit = limit.limit, "prefix limit exceeded: session reset");
                        let peer = self.peers.get_mut(&neighbor)?;
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
                    decision::Limited::Blocked(blocked) => {
                        let peer = self.peers.get_mut(&neighbor)?;
                        peer.status.prefixes_blocked += blocked as u64;
                        if !std::mem::replace(&mut peer.told_blocking, true) {
                            tracing::warn!(neighbor = %neighbor, limit = limit.limit, "prefix limit reached: new prefixes from this neighbor are not taken (prefix_limit_action = \"block\")");
                        }
                    }
                }
                let eor = !update.end_of_rib.is_empty();
                let changes = self
                    .rib
                    .apply(neighbor, &update, &resolver(&self.view, &self.peers));
                let received = self.rib.received(neighbor) as u64;
                if let Some(peer) = self.peers.get_mut(&neighbor) {
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
                    self.reclaim(neighbor).await;
                }
                None
            }
        }
    }

    /// After a neighbor's End-of-RIB: its routes in the bridge are offered
    /// again (unchanged ones change nothing in the kernel), then the bridge
    /// drops those it no longer sends.
    async fn reclaim(&mut self, neighbor: NeighborId) {
        self.feed_bridge().await;
        let Some(session) = self
            .peers
            .get(&neighbor)
            .and_then(|peer| peer.bridge_session)
        else {
            return;
        };
        // The bridge carries a prefix under the neighbor of its best path.
        let mut updates = Vec::new();
        for prefix in self.rib.best_from(neighbor) {
            if let Some(spec) = self.route_spec(prefix, &self.rib.best(&prefix)) {
                updates.push(BridgeUpdate::Offer(spec));
            }
        }
        if !updates.is_empty() {
            let _ = self
                .bridge
                .session_updates(owner(neighbor), session, updates)
                .await;
        }
        let _ = self.bridge.end_of_rib(owner(neighbor)).await;
    }

    async fn down(&mut self, neighbor: NeighborId, down: session::Down) {
        let Some(peer) = self.peers.get_mut(&neighbor) else {
            return;
        };
        if !down.was_established {
            peer.status.last_error = down.reason.to_string();
            return;
        }
        peer.status.resets += 1;
        peer.status.last_error = down.reason.to_string();
        peer.negotiated = None;
        tracing::warn!(neighbor = %neighbor, reason = %down.reason, retain = ?down.retain, "BGP session down");
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
                self.rib.mark_stale(neighbor);
                // Families the peer did not ask to keep go now.
                if !dropped.is_empty() {
                    let changes = self.rib.sweep_stale(
                        neighbor,
                        &dropped,
                        &resolver(&self.view, &self.peers),
                    );
                    self.after_changes(changes).await;
                }
            }
            None => {
                // Its routes that other paths reach are decided again a
                // part at a time and offered under their new neighbors
                // (replaced in place) before its bridge session closes;
                // then the bridge takes the rest out of the kernel in the
                // writer's batches, in one pass and not a withdrawal per
                // route, while the other neighbors are told here.
                self.leaving = Some(neighbor);
                while let Some(changes) = self.rib.neighbor_leaving(
                    neighbor,
                    LEAVING_PART,
                    &resolver(&self.view, &self.peers),
                ) {
                    self.after_changes(changes).await;
                    self.feed_bridge().await;
                }
                // Every offer (and any change pending from before) goes
                // ahead of the close.
                self.feed_bridge().await;
                if let Some(peer) = self.peers.get_mut(&neighbor)
                    && let Some(session) = peer.bridge_session.take()
                {
                    self.bridge.close_withdrawing(owner(neighbor), session);
                }
                while let Some(changes) = self.rib.neighbor_leaving_alone(neighbor, LEAVING_PART) {
                    self.after_changes(changes).await;
                    self.feed_bridge().await;
                }
                self.leaving = None;
                // Its routes left the bridge with its session.
                if let Some(peer) = self.peers.get_mut(&neighbor) {
                    peer.status.prefixes_accepted = 0;
                }
            }
        }
        let kept = self.rib.received(neighbor) as u64;
        if let Some(peer) = self.peers.get_mut(&neighbor) {
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
        for (neighbor, export) in exports {
            self.send_export(neighbor, export, None);
        }
        for change in changes {
            match self.pending_index.get(&change.prefix) {
                // The latest change of a prefix is all the bridge needs,
                // with who carried the route before the first.
                Some(index) => {
                    let before = self.pending[*index].before;
                    self.pending[*index] = BestChange { before, ..change };
                }
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

    fn send_export(
        &mut self,
        neighbor: NeighborId,
        export: decision::Export,
        only: Option<Family>,
    ) {
        let Some(negotiated) = self
            .peers
            .get(&neighbor)
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
                self.send_update(neighbor, message);
            }
        }
        let held = self.rib.sent(neighbor) as u64;
        if let Some(peer) = self.peers.get_mut(&neighbor) {
            peer.status.prefixes_sent = held;
        }
    }

    fn send_update(&mut self, neighbor: NeighborId, message: Vec<u8>) {
        let actions = match self.peers.get_mut(&neighbor) {
            Some(peer) => peer
                .session
                .handle(std::time::Instant::now(), Input::SendUpdate(message)),
            None => return,
        };
        for action in actions {
            if let Action::Send(id, bytes) = action
                && let Some(peer) = self.peers.get_mut(&neighbor)
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
            Source::Neighbor(neighbor) => Some(neighbor),
            Source::Local => None,
        })?;
        let mut nexthops: Vec<NexthopSpec> = Vec::new();
        for path in paths {
            if let Source::Neighbor(neighbor) = path.source
                && let Some(nexthop) = gateway(
                    &path.attributes,
                    neighbor,
                    self.peers
                        .get(&neighbor)
                        .and_then(|peer| peer.tunnel.as_deref()),
                )
                && !nexthops.contains(&nexthop)
            {
                nexthops.push(nexthop);
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
        let mut offers: BTreeMap<NeighborId, Vec<BridgeUpdate>> = BTreeMap::new();
        let mut withdrawals: BTreeMap<NeighborId, Vec<BridgeUpdate>> = BTreeMap::new();
        for change in &changes {
            // The change carries the best paths: no lookup of them.
            // The bridge carries a route under the neighbor of its first
            // neighbor path (route_spec has none for local networks).
            let spec = self.route_spec(change.prefix, &change.paths);
            let new_owner = spec.as_ref().and_then(|_| first_neighbor(&change.paths));
            let old_owner = change.before;
            if let (Some(spec), Some(owner_neighbor)) = (spec, new_owner) {
                offers
                    .entry(owner_neighbor)
                    .or_default()
                    .push(BridgeUpdate::Offer(spec));
            }
            // Routes each neighbor carries to the kernel, kept as they move.
            if old_owner != new_owner {
                if let Some(peer) = old_owner.and_then(|old| self.peers.get_mut(&old)) {
                    peer.status.prefixes_accepted = peer.status.prefixes_accepted.saturating_sub(1);
                }
                if let Some(peer) = new_owner.and_then(|new| self.peers.get_mut(&new)) {
                    peer.status.prefixes_accepted += 1;
                }
            }
            if let Some(old) = old_owner
                && Some(old) != new_owner
                && Some(old) != self.leaving
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
            for (neighbor, updates) in batches {
                let Some(session) = self
                    .peers
                    .get(&neighbor)
                    .and_then(|peer| peer.bridge_session)
                else {
                    continue;
                };
                match self
                    .bridge
                    .submit_session_updates(owner(neighbor), session, updates)
                {
                    Ok(results) => self.in_flight.push_back(InFlight {
                        neighbor,
                        what,
                        results,
                    }),
                    Err(error) => {
                        tracing::warn!(neighbor = %neighbor, %error, "cannot feed the bridge")
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
        let best_paths = self.rib.best_paths();
        let best: BTreeSet<(IpNet, Option<NeighborId>)> = best_paths
            .iter()
            .flat_map(|(prefix, paths)| {
                paths.iter().map(move |path| {
                    (
                        *prefix,
                        match path.source {
                            Source::Neighbor(neighbor) => Some(neighbor),
                            Source::Local => None,
                        },
                    )
                })
            })
            .collect();
        for (prefix, best_paths) in &best_paths {
            for path in best_paths {
                if path.source == Source::Local {
                    paths.push(PathStatus {
                        prefix: *prefix,
                        neighbor: None,
                        attributes: Arc::clone(&path.attributes),
                        best: true,
                        stale: false,
                        validity: None,
                    });
                }
            }
        }
        for neighbor in self.peers.keys() {
            for (prefix, attributes, stale) in self.rib.adj_rib_in(*neighbor) {
                paths.push(PathStatus {
                    prefix,
                    neighbor: Some(*neighbor),
                    attributes: Arc::clone(attributes),
                    best: best.contains(&(prefix, Some(*neighbor))),
                    stale,
                    validity: self.rib.validity(*neighbor, &prefix),
                });
            }
        }
        paths.sort_by_key(|path| (path.prefix, path.neighbor));
        paths
    }
}

impl InFlight {
    fn log(&self, results: Result<Vec<UpdateResult>, BridgeError>) {
        let (neighbor, what) = (self.neighbor, self.what);
        match results {
            Ok(results) => {
                let accepted = results
                    .iter()
                    .filter(|result| !matches!(result.status, crate::rib::RouteStatus::Refused(_)))
                    .count();
                tracing::debug!(neighbor = %neighbor, what, accepted, "fed the bridge");
            }
            Err(error) => tracing::warn!(neighbor = %neighbor, %error, "cannot feed the bridge"),
        }
    }
}

/// The neighbors with BFD, keyed as the speaker keys them (a neighbor
/// whose id cannot be made is refused by `Core::new`).
fn bfd_neighbors(
    neighbors: &[NeighborConfig],
) -> Vec<(NeighborId, NeighborConfig, wgd_bfd::Timers)> {
    neighbors
        .iter()
        .filter_map(|neighbor| Some((neighbor.id().ok()?, neighbor.clone(), neighbor.bfd?)))
        .collect()
}

fn owner(neighbor: NeighborId) -> Owner {
    Owner::new(format!("bgp:{neighbor}"))
}

/// The tunnel a neighbor's session runs over: the one its config names,
/// or the one whose subnet or point-to-point far end holds its address
/// (never by subnet for a link-local address: every tunnel has fe80::/64).
pub(super) fn session_tunnel<'v>(
    neighbor: &NeighborConfig,
    view: &'v TunnelView,
) -> Option<&'v TunnelInfo> {
    tunnel_of_peer(neighbor.address, neighbor.tunnel.as_deref(), view)
}

/// The same for any peer (a BFD session's): the tunnel named, or the one
/// whose subnet holds the address.
pub(super) fn tunnel_of_peer<'v>(
    address: IpAddr,
    tunnel: Option<&str>,
    view: &'v TunnelView,
) -> Option<&'v TunnelInfo> {
    if let Some(name) = tunnel {
        return view.tunnels.iter().find(|tunnel| tunnel.name == name);
    }
    if matches!(address, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
        return None;
    }
    view.tunnels.iter().find(|tunnel| {
        tunnel
            .addresses
            .iter()
            .chain(&tunnel.peer_addresses)
            .any(|net| net.contains(&address))
    })
}

/// Our addresses on a neighbor's tunnel, to give as nexthops (IPv4,
/// global IPv6, link-local): of each family the one on the neighbor's
/// subnet, or the tunnel's first. A link-local neighbor gets only those it
/// reaches directly: a nexthop it cannot reach directly it refuses (BIRD,
/// in its default direct mode: "not directly reachable"), route and all.
fn local_addresses(
    neighbor: &NeighborConfig,
    id: NeighborId,
    tunnel: &TunnelInfo,
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>, Option<Ipv6Addr>) {
    let on_subnet = |net: &&IpNet| net.contains(&neighbor.address);
    let pick = |v4: bool| {
        let family = |net: &&IpNet| {
            let of_family = match net.addr() {
                IpAddr::V4(_) => v4,
                IpAddr::V6(address) => !v4 && !address.is_unicast_link_local(),
            };
            of_family && (!id.is_link_local() || shares_link(tunnel, net))
        };
        tunnel
            .addresses
            .iter()
            .filter(family)
            .find(on_subnet)
            .or_else(|| tunnel.addresses.iter().find(family))
            .map(IpNet::addr)
    };
    let v4 = match pick(true) {
        Some(IpAddr::V4(address)) => Some(address),
        _ => None,
    };
    let v6 = match pick(false) {
        Some(IpAddr::V6(address)) => Some(address),
        _ => None,
    };
    (v4, v6, tunnel.addresses.iter().find_map(link_local_of))
}

/// Whether the far end of the tunnel reaches one of our addresses on it
/// directly: the address is on a subnet (shorter than a host prefix), or
/// the tunnel has a point-to-point far end of its family (our address is
/// then the far end's own far end).
fn shares_link(tunnel: &TunnelInfo, net: &IpNet) -> bool {
    net.prefix_len() < net.max_prefix_len()
        || tunnel
            .peer_addresses
            .iter()
            .any(|peer| peer.addr().is_ipv4() == net.addr().is_ipv4())
}

/// The link-local address of a tunnel address, if it is one.
fn link_local_of(net: &IpNet) -> Option<Ipv6Addr> {
    match net.addr() {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
        _ => None,
    }
}

/// Where a connection to a neighbor goes from and to. A link-local
/// neighbor is reached from its tunnel's configured link-local address
/// with the tunnel's interface index as scope, both looked up now (a
/// re-created tunnel has a new index); an error says why not yet.
fn connect_ends(
    neighbor: NeighborId,
    port: u16,
    view: &TunnelView,
) -> Result<(Option<SocketAddr>, SocketAddr), String> {
    let (IpAddr::V6(address), Some(name)) = (neighbor.address(), neighbor.tunnel()) else {
        return Ok((None, SocketAddr::new(neighbor.address(), port)));
    };
    let tunnel = view
        .tunnels
        .iter()
        .find(|tunnel| tunnel.name == name && tunnel.ifindex != 0)
        .ok_or_else(|| format!("tunnel {name} is not there yet"))?;
    let local = tunnel
        .addresses
        .iter()
        .find_map(link_local_of)
        .ok_or_else(|| {
            format!("tunnel {name} has no link-local (fe80::/10) address to speak from")
        })?;
    Ok((
        Some(SocketAddr::V6(SocketAddrV6::new(
            local,
            0,
            0,
            tunnel.ifindex,
        ))),
        SocketAddr::V6(SocketAddrV6::new(address, port, 0, tunnel.ifindex)),
    ))
}

/// The neighbor an accepted connection comes from: its address, and for
/// a link-local one the tunnel whose interface index is the connection's
/// scope. `None`: a link-local address on no tunnel we know.
fn accepted_from(from: SocketAddr, view: &TunnelView) -> Option<NeighborId> {
    let address = canonical(from.ip());
    match from {
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => {
            let tunnel = view
                .tunnels
                .iter()
                .find(|tunnel| tunnel.ifindex != 0 && tunnel.ifindex == v6.scope_id())?;
            NeighborId::new(address, Some(&tunnel.name)).ok()
        }
        _ => NeighborId::new(address, None).ok(),
    }
}

/// Sets the listening socket's TCP MD5 keys. The kernel matches a
/// listening socket's keys by the connecting address alone (a key bound to
/// an interface index is for VRF devices only), so one link-local address
/// on two tunnels must have one password, or none on both.
fn listen_md5(listener: &TcpListener, neighbors: &[NeighborConfig]) -> std::io::Result<()> {
    let mut keys: HashMap<IpAddr, (Option<&Secret>, &NeighborConfig)> = HashMap::new();
    for neighbor in neighbors {
        let password = neighbor.password.as_ref();
        if let Some((other_password, other)) = keys.insert(neighbor.address, (password, neighbor))
            && other_password != password
        {
            return Err(std::io::Error::other(format!(
                "neighbors {} (tunnel {}) and {} (tunnel {}) have different TCP MD5 passwords: the kernel tells a listening socket's keys apart by address alone, so one address takes one password on every tunnel",
                other.address,
                other.tunnel.as_deref().unwrap_or("-"),
                neighbor.address,
                neighbor.tunnel.as_deref().unwrap_or("-"),
            )));
        }
        if let Some(password) = password {
            super::socket::set_md5(listener, neighbor.address, password.0.as_bytes())?;
        }
    }
    Ok(())
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
fn resolver<'a>(view: &'a TunnelView, peers: &'a BTreeMap<NeighborId, Peer>) -> TunnelResolver<'a> {
    TunnelResolver { view, peers }
}

/// Nexthops resolve onto a tunnel that is up with a live peer, never over
/// a route the speaker learned: a global one on a tunnel's subnet or at a
/// point-to-point far end, a link-local one on the session's tunnel.
struct TunnelResolver<'a> {
    view: &'a TunnelView,
    peers: &'a BTreeMap<NeighborId, Peer>,
}

impl TunnelResolver<'_> {
    fn live(tunnel: &TunnelInfo) -> bool {
        tunnel.up && tunnel.peers.iter().any(|peer| peer.reachable)
    }
}

impl Resolver for TunnelResolver<'_> {
    fn resolves(&self, next_hop: IpAddr) -> bool {
        self.view.tunnels.iter().any(|tunnel| {
            Self::live(tunnel)
                && (tunnel
                    .addresses
                    .iter()
                    .any(|net| net.contains(&next_hop) && net.addr() != next_hop)
                    || tunnel
                        .peer_addresses
                        .iter()
                        .any(|net| net.contains(&next_hop)))
        })
    }

    fn resolves_path(&self, from: NeighborId, attributes: &Attributes) -> bool {
        let tunnel = self
            .peers
            .get(&from)
            .and_then(|peer| peer.tunnel.as_deref());
        match gateway(attributes, from, tunnel) {
            Some(NexthopSpec::AddressOnTunnel { tunnel, .. }) => self
                .view
                .tunnels
                .iter()
                .any(|info| info.name == tunnel && Self::live(info)),
            Some(NexthopSpec::Address(next_hop)) => self.resolves(next_hop),
            Some(NexthopSpec::Tunnel(_)) | None => false,
        }
    }
}

/// Where the kernel should send a neighbor's route (RFC 2545, RFC 8950):
///
/// - from a link-local neighbor, to the link-local nexthop (given alone,
///   or beside a global one) through the session's tunnel, as BIRD and
///   FRR install it for a directly connected neighbor: the link-local
///   address is the neighbor's own on that link, so it needs no subnet of
///   ours to resolve, and a global one may be on no subnet we have;
/// - from a global neighbor, to the global nexthop, as before there were
///   link-local sessions; to the link-local one (through the session's
///   tunnel) only when no global one came.
///
/// IPv4 routes take an IPv6 nexthop the same way. `None`: no nexthop the
/// kernel could use (a link-local one with no tunnel known).
fn gateway(
    attributes: &Attributes,
    from: NeighborId,
    session_tunnel: Option<&str>,
) -> Option<NexthopSpec> {
    let next_hop = attributes.next_hop.address()?;
    let session_tunnel = from.tunnel().or(session_tunnel);
    let next_hop_link_local = match next_hop {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
        _ => None,
    };
    let link_local = attributes.next_hop.link_local().or(next_hop_link_local);
    let on_tunnel = |address: Ipv6Addr| {
        session_tunnel.map(|tunnel| NexthopSpec::AddressOnTunnel {
            address: IpAddr::V6(address),
            tunnel: tunnel.to_owned(),
        })
    };
    match link_local {
        Some(link_local) if from.is_link_local() || next_hop_link_local.is_some() => {
            on_tunnel(link_local)
        }
        _ => Some(NexthopSpec::Address(next_hop)),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
