//! The bridge at work: one task that owns the RIB and the FIB, takes
//! commands from the route sources (gRPC sessions, unary calls, wgd's
//! tunnel view) through a `Bridge` handle, and keeps the time: owners'
//! hold times, the startup hold, the endpoint pins.
//!
//! Commands come in on a channel and are handled one at a time: the RIB
//! turns each into `Changes`; the FIB programmer writes them to the kernel
//! in one batch (endpoint pins first, so a learned route never carries a
//! tunnel's own packets, not even for a moment); kernel refusals flow back
//! into the RIB; then the answer goes back to the caller. In the daemon the
//! FIB programmer has a thread of its own (`writer`): while the kernel
//! takes one batch of updates the engine prepares the next, and answers
//! each when its writes are done; any other command first waits for the
//! batches on their way. AllowedIPs of
//! multi-peer tunnels go out to wgd through a watch channel, nexthop
//! changes to the sessions that registered them.
//!
//! The routes' preferred source addresses (`src`, from the config's
//! `source`) go on only while the host has them: the engine reads the
//! host's addresses when the sources or the tunnels change, on each audit
//! (every 30 s, put off while routes are being written, two minutes and a
//! half at most),
//! and when the kernel refuses a route with a source; an address that is
//! missing is warned about once and left off the routes (they still carry
//! traffic) until it is back, and each change is a replace in place.
//!
//! At start the engine adopts wgd's routes found in the kernel (they keep
//! carrying traffic through a restart) and sweeps those no owner re-claims
//! when the startup hold ends. Routes of the unary API are kept in a state
//! file and offered again at start.

mod writer;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::IpNet;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::rib::{OwnerCounts, Rib, RibConfig, RouteFilter, RouteRecord, RouteStatus, Withdrawal};
use crate::route::{
    Changes, FibNexthop, FibOp, NexthopEvent, Owner, RouteSpec, ScopedAddress, Sources, TunnelView,
};
use writer::{Done, Writer};

/// The kernel side, as the engine needs it: the Linux FIB, or a twin in
/// memory for tests.
pub trait Fib: Send + 'static {
    /// One result per op, in order; an error is the kernel's reason.
    fn apply(&mut self, ops: &[FibOp]) -> Vec<Result<(), String>>;
    /// wgd's routes in the kernel (by protocol number).
    fn dump_ours(&mut self) -> Result<Vec<FoundRoute>, String>;
    /// The prefixes of wgd's routes in the kernel, sorted: what an audit
    /// needs, without each route's nexthops (with them, and a copy of
    /// each in the engine's form, an audit held about 270 bytes per
    /// route; a prefix is 18).
    fn prefixes_ours(&mut self) -> Result<Vec<IpNet>, String> {
        let mut prefixes: Vec<IpNet> = self
            .dump_ours()?
            .into_iter()
            .map(|route| route.prefix)
            .collect();
        prefixes.sort_unstable();
        Ok(prefixes)
    }
    /// The host's addresses (those a route's `src` may name).
    fn local_addresses(&mut self) -> Result<BTreeSet<IpAddr>, String>;
    /// The route to each destination without wgd's routes (the
    /// underlay's), in order; one read of the table for all of them.
    fn underlay_routes(
        &mut self,
        destinations: &[IpAddr],
    ) -> Result<Vec<Option<Vec<FibNexthop>>>, String>;
}

/// The prefixes an audit found in the kernel, sorted.
struct Present(Vec<IpNet>);

impl Present {
    fn contains(&self, prefix: IpNet) -> bool {
        self.0.binary_search(&prefix).is_ok()
    }
}

/// One of wgd's routes as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRoute {
    pub prefix: IpNet,
    /// Without tunnel names (the RIB finds them from the interface index).
    pub nexthops: Vec<FibNexthop>,
    /// `src`, if the route has one.
    pub source: Option<IpAddr>,
}

/// Settings of the bridge, from `[bridge]` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub rib: RibConfig,
    /// Kernel table the routes go in (254 = main).
    pub table: u32,
    /// Kernel priority of every wgd route.
    pub kernel_metric: u32,
    /// How long routes found in the kernel at start wait to be re-claimed.
    pub startup_hold: Duration,
    /// Hold time of a session that does not give one.
    pub default_hold: Duration,
    /// Where the unary API's routes are kept across restarts.
    pub state_file: Option<PathBuf>,
    /// The preferred source addresses (`src`) of the routes; changed
    /// while running with [`Bridge::set_sources`].
    pub sources: Sources,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            rib: RibConfig::default(),
            table: 254,
            kernel_metric: 20,
            startup_hold: Duration::from_secs(120),
            default_hold: Duration::from_secs(90),
            state_file: None,
            sources: Sources::default(),
        }
    }
}

/// A route update as a source sends it: a route, or the withdrawal of a
/// prefix. `Invalid` carries a request the service could not read, so the
/// owner gets its refusal in order with the rest.
#[derive(Debug, Clone)]
pub enum Update {
    Offer(RouteSpec),
    Withdraw(IpNet),
    Invalid { prefix: String, reason: String },
}

/// What became of one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateResult {
    pub prefix: ResultPrefix,
    pub status: RouteStatus,
}

/// The prefix an update named: read, or as the source wrote it when it
/// could not be read. Kept as a value, not text: the engine answers a
/// full table's routes, and only the gRPC service needs them written
/// (on its own threads, not the engine's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultPrefix {
    Read(IpNet),
    Unread(String),
}

impl std::fmt::Display for ResultPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultPrefix::Read(prefix) => prefix.fmt(f),
            ResultPrefix::Unread(text) => f.write_str(text),
        }
    }
}

/// A session's answer to its Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub session: u64,
    pub stale_routes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    #[error("owner \"{0}\" already has a session")]
    SessionExists(String),
    #[error(
        "owner \"{0}\" has static routes (from the unary API or `wgd route`); a session needs a name of its own"
    )]
    StaticOwner(String),
    #[error("owner \"{0}\" belongs to a session; its routes come and go with it")]
    SessionOwner(String),
    #[error("this session of owner \"{0}\" is closed")]
    SessionClosed(String),
    #[error("the bridge is not running")]
    Stopped,
}

/// Counters for statistics and metrics, read without asking the engine.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub fib_operations: u64,
    pub fib_errors: u64,
    pub kernel_routes: u64,
    pub endpoint_pins: u64,
    pub owners: BTreeMap<Owner, OwnerCounts>,
}

/// An owner's statistics line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerStatistics {
    pub owner: Owner,
    pub connected: bool,
    pub counts: OwnerCounts,
    pub hold_remaining: Option<Duration>,
    pub prefix_limit: u32,
}

#[derive(Debug, Clone)]
pub struct Statistics {
    pub owners: Vec<OwnerStatistics>,
    pub counters: Counters,
}

/// How often the counters for statistics and metrics are brought up to
/// date (counting walks the whole RIB)...
/// How many routes a withdrawal of an owner's table takes at a time (see
/// `Engine::withdraw_in_parts`).
const WITHDRAWAL_PART: usize = 1 << 15;

const COUNTERS_INTERVAL: Duration = Duration::from_secs(1);
/// ...at most: a walk that took `d` waits `COUNTING_SHARE * d` for the next
/// one, so counting a full table costs the engine a few percent of its
/// time, not a sixth of it.
const COUNTING_SHARE: u32 = 25;
/// How often wgd's routes are checked against the kernel.
const AUDIT_INTERVAL: Duration = Duration::from_secs(30);
/// An audit reads the whole table back from the kernel (a second of the
/// writer's time for a million routes, and the set of them in memory) and
/// first waits for the writes on their way: it is put off while routes
/// are being written (an interval with updates, a session's close or an
/// End-of-RIB), this many times in a row at most.
const AUDIT_PUT_OFF_AT_MOST: u32 = 4;

/// AllowedIPs the bridge adds to multi-peer tunnels' peers, by (tunnel,
/// peer public key).
pub type AllowedExtras = BTreeMap<(String, String), BTreeSet<IpNet>>;

enum Command {
    Open {
        owner: Owner,
        hold: Option<Duration>,
        nexthops: mpsc::UnboundedSender<NexthopEvent>,
        reply: oneshot::Sender<Result<Welcome, BridgeError>>,
    },
    Close {
        owner: Owner,
        session: u64,
        /// Its routes go now, whatever its hold time.
        withdraw: bool,
    },
    Updates {
        owner: Owner,
        /// `None` for the unary API (static routes).
        session: Option<u64>,
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<Vec<UpdateResult>, BridgeError>>,
    },
    EndOfRib {
        owner: Owner,
        reply: oneshot::Sender<u64>,
    },
    Register {
        owner: Owner,
        register: Vec<ScopedAddress>,
        unregister: Vec<ScopedAddress>,
    },
    Tunnels(TunnelView),
    Sources(Sources),
    List {
        filter: RouteFilter,
        reply: oneshot::Sender<Vec<RouteRecord>>,
    },
    Statistics {
        reply: oneshot::Sender<Statistics>,
    },
}

/// The handle route sources and wgd hold. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bridge {
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Mutex<Counters>>,
    allowed: watch::Receiver<AllowedExtras>,
    batch_seconds: Histogram,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Bridge {
    /// Starts the engine on a thread of its own (FIB writes block, and a
    /// full table must not stall the API): adopts wgd's routes from the
    /// kernel (seen through `view`), offers the kept static routes again,
    /// and returns once that is done. It runs until every handle is dropped.
    pub async fn start<F: Fib>(
        config: BridgeConfig,
        fib: F,
        view: TunnelView,
    ) -> std::io::Result<Bridge> {
        let (wake, woken) = mpsc::unbounded_channel();
        let writer = Writer::thread(fib, wake)?;
        let (bridge, mut engine, receiver) = Self::new(config, writer);
        let (ready, started) = oneshot::channel();
        std::thread::Builder::new()
            .name("wgd-bridge".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start the bridge's runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    engine.start(view);
                    let _ = ready.send(());
                    engine.run(receiver, Some(woken)).await;
                });
            })?;
        started
            .await
            .map_err(|_| std::io::Error::other("the bridge stopped while starting"))?;
        Ok(bridge)
    }

    /// Starts the engine as a task of the current runtime (tests, with
    /// tokio's paused clock).
    pub fn start_here<F: Fib>(config: BridgeConfig, fib: F, view: TunnelView) -> Bridge {
        let (bridge, mut engine, receiver) = Self::new(config, Writer::here(fib));
        engine.start(view);
        tokio::spawn(engine.run(receiver, None));
        bridge
    }

    fn new<F: Fib>(
        config: BridgeConfig,
        writer: Writer<F>,
    ) -> (Bridge, Engine<F>, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Mutex::new(Counters::default()));
        let (allowed_sender, allowed) = watch::channel(AllowedExtras::new());
        // From half a millisecond (a few routes) to about two minutes (a full table, slowly).
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 4.0, 10));
        let engine = Engine {
            batch_seconds: batch_seconds.clone(),
            rib: Rib::new(config.rib.clone()),
            writer,
            pending: VecDeque::new(),
            config,
            owners: BTreeMap::new(),
            pins: BTreeMap::new(),
            startup_until: None,
            next_session: 1,
            counters_stale: true,
            counting_after: Instant::now(),
            counters: counters.clone(),
            allowed: allowed_sender,
            missing_sources: BTreeSet::new(),
            recheck_sources: false,
            written_since_audit: false,
            audits_put_off: 0,
        };
        let bridge = Bridge {
            commands,
            counters,
            allowed,
            batch_seconds,
        };
        (bridge, engine, receiver)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, BridgeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| BridgeError::Stopped)?;
        answer.await.map_err(|_| BridgeError::Stopped)
    }

    /// Opens a session for `owner`; nexthop changes arrive on `nexthops`.
    pub async fn open(
        &self,
        owner: Owner,
        hold: Option<Duration>,
        nexthops: mpsc::UnboundedSender<NexthopEvent>,
    ) -> Result<Welcome, BridgeError> {
        self.ask(|reply| Command::Open {
            owner,
            hold,
            nexthops,
            reply,
        })
        .await?
    }

    /// The session ended (the stream closed or the client died).
    pub fn close(&self, owner: Owner, session: u64) {
        let _ = self.commands.send(Command::Close {
            owner,
            session,
            withdraw: false,
        });
    }

    /// The session ended and its routes go now, in one pass over the RIB
    /// and in the writer's batches, without a withdrawal per route from
    /// the owner (a BGP neighbor gone without graceful restart).
    pub fn close_withdrawing(&self, owner: Owner, session: u64) {
        let _ = self.commands.send(Command::Close {
            owner,
            session,
            withdraw: true,
        });
    }

    /// A batch of a session's updates.
    pub async fn session_updates(
        &self,
        owner: Owner,
        session: u64,
        updates: Vec<Update>,
    ) -> Result<Vec<UpdateResult>, BridgeError> {
        self.ask(|reply| Command::Updates {
            owner,
            session: Some(session),
            updates,
            reply,
        })
        .await?
    }

    /// The same, without waiting: the results come on the receiver. The
    /// bridge takes commands in order, so what is sent after this (more
    /// updates, End-of-RIB, a close) is applied after it.
    pub fn submit_session_updates(
        &self,
        owner: Owner,
        session: u64,
        updates: Vec<Update>,
    ) -> Result<oneshot::Receiver<Result<Vec<UpdateResult>, BridgeError>>, BridgeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Updates {
                owner,
                session: Some(session),
                updates,
                reply,
            })
            .map_err(|_| BridgeError::Stopped)?;
        Ok(answer)
    }

    /// [`Bridge::end_of_rib`] without waiting: the count comes on the
    /// receiver, after the answers of the updates sent before it.
    pub fn submit_end_of_rib(&self, owner: Owner) -> Result<oneshot::Receiver<u64>, BridgeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::EndOfRib { owner, reply })
            .map_err(|_| BridgeError::Stopped)?;
        Ok(answer)
    }

    /// Static routes (the unary API), kept until deleted.
    pub async fn static_updates(
        &self,
        owner: Owner,
        updates: Vec<Update>,
    ) -> Result<Vec<UpdateResult>, BridgeError> {
        self.ask(|reply| Command::Updates {
            owner,
            session: None,
            updates,
            reply,
        })
        .await?
    }

    /// The session has sent all its routes: its stale ones go. Returns how many.
    pub async fn end_of_rib(&self, owner: Owner) -> Result<u64, BridgeError> {
        self.ask(|reply| Command::EndOfRib { owner, reply }).await
    }

    /// Follows (and stops following) nexthops for a session's owner; a
    /// link-local one is scoped to its tunnel (`fe80::2%dn42b`).
    pub fn register(
        &self,
        owner: Owner,
        register: Vec<ScopedAddress>,
        unregister: Vec<ScopedAddress>,
    ) {
        let _ = self.commands.send(Command::Register {
            owner,
            register,
            unregister,
        });
    }

    /// wgd's latest view of its tunnels.
    pub fn set_tunnels(&self, view: TunnelView) {
        let _ = self.commands.send(Command::Tunnels(view));
    }

    /// New preferred source addresses (a reloaded config): the installed
    /// routes whose `src` changes are replaced in place.
    pub fn set_sources(&self, sources: Sources) {
        let _ = self.commands.send(Command::Sources(sources));
    }

    pub async fn routes(&self, filter: RouteFilter) -> Result<Vec<RouteRecord>, BridgeError> {
        self.ask(|reply| Command::List { filter, reply }).await
    }

    pub async fn statistics(&self) -> Result<Statistics, BridgeError> {
        self.ask(|reply| Command::Statistics { reply }).await
    }

    /// The counters as of the latest batch (for metrics at scrape time).
    pub fn counters(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Seconds each FIB batch took.
    pub fn batch_seconds(&self) -> Histogram {
        self.batch_seconds.clone()
    }

    /// The AllowedIPs the bridge wants on multi-peer tunnels' peers.
    pub fn allowed_ips(&self) -> watch::Receiver<AllowedExtras> {
        self.allowed.clone()
    }

    /// Returns when the engine has stopped: its thread ended, or the FIB
    /// writer thread died under it (the engine cannot go on without it).
    pub async fn stopped(&self) {
        self.commands.closed().await;
    }
}

#[derive(Debug)]
enum OwnerState {
    /// A live session. `sweep_at`: the hold time of a session that came
    /// back runs on until its EndOfRib; then its stale routes go.
    Connected {
        session: u64,
        hold: Duration,
        nexthops: mpsc::UnboundedSender<NexthopEvent>,
        sweep_at: Option<Instant>,
    },
    /// The session ended; its routes go at `until`.
    Away { until: Instant },
    /// Routes of the unary API.
    Static,
}

/// The kept routes of the unary API, by owner.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StaticRoutes(BTreeMap<String, Vec<RouteSpec>>);

/// A batch on its way to the kernel: how many of its first operations
/// are endpoint pins, and whom to answer once the kernel has taken it.
struct Pending {
    pins: usize,
    answer: Option<Answer>,
}

/// The answer to a batch of updates, sent when its kernel writes are done.
struct Answer {
    owner: Owner,
    session: Option<u64>,
    results: Vec<UpdateResult>,
    /// Offers, by index in `results`: their status may change if the
    /// kernel refuses something.
    touched: Vec<(usize, IpNet)>,
    reply: oneshot::Sender<Result<Vec<UpdateResult>, BridgeError>>,
}

struct Engine<F: Fib> {
    rib: Rib,
    /// The FIB, on a writer thread of its own in the daemon: the engine
    /// prepares the next batch while the kernel takes the last.
    writer: Writer<F>,
    /// Batches submitted to the writer and not yet back, in order.
    pending: VecDeque<Pending>,
    config: BridgeConfig,
    owners: BTreeMap<Owner, OwnerState>,
    /// Endpoint host routes pinned to the underlay, with their nexthops.
    pins: BTreeMap<IpAddr, Vec<FibNexthop>>,
    startup_until: Option<Instant>,
    next_session: u64,
    /// Something changed since the counters were last brought up to date.
    counters_stale: bool,
    /// No counting before this (see [`COUNTING_SHARE`]).
    counting_after: Instant,
    counters: Arc<Mutex<Counters>>,
    allowed: watch::Sender<AllowedExtras>,
    batch_seconds: Histogram,
    /// Configured source addresses the host lacked when last looked at
    /// (each is warned about once, until it is back).
    missing_sources: BTreeSet<IpAddr>,
    /// The kernel refused a route with a source (see `recheck_sources`).
    recheck_sources: bool,
    /// Routes were written since the last audit tick.
    written_since_audit: bool,
    /// Audits put off in a row (see [`AUDIT_PUT_OFF_AT_MOST`]).
    audits_put_off: u32,
}

impl<F: Fib> Engine<F> {
    fn start(&mut self, view: TunnelView) {
        self.rib.set_tunnels(view, &mut Changes::default());
        // Before adoption: an adopted route gets the `src` they say.
        let mut changes = Changes::default();
        self.refresh_sources(&mut changes);
        match self.writer.call(|fib| fib.dump_ours()) {
            Ok(routes) => {
                let endpoints = self.endpoints();
                let tunnels: BTreeSet<u32> = self
                    .rib
                    .tunnels()
                    .tunnels
                    .iter()
                    .map(|tunnel| tunnel.ifindex)
                    .collect();
                for FoundRoute {
                    prefix,
                    nexthops,
                    source,
                } in routes
                {
                    let host = prefix.prefix_len() == prefix.max_prefix_len();
                    let off_tunnels = nexthops.iter().all(|n| !tunnels.contains(&n.ifindex));
                    if host && off_tunnels && endpoints.contains(&prefix.addr()) {
                        self.pins.insert(prefix.addr(), nexthops);
                    } else {
                        self.rib.adopt(prefix, nexthops, source, &mut changes);
                    }
                }
                let adopted = self.rib.adopted_count();
                if adopted > 0 {
                    tracing::info!(
                        routes = adopted,
                        hold = ?self.config.startup_hold,
                        "adopted wgd's routes from the kernel; unclaimed ones go after the startup hold"
                    );
                    self.startup_until = Some(Instant::now() + self.config.startup_hold);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read wgd's routes from the kernel"),
        }
        // The devices still have the AllowedIPs the previous run gave them.
        self.allowed.send_replace(self.rib.allowed_ips().clone());
        let kept = self.load_static();
        for (owner, specs) in kept.0 {
            let owner = Owner::new(owner);
            self.owners.insert(owner.clone(), OwnerState::Static);
            for spec in specs {
                self.rib.offer(&owner, spec, &mut changes);
            }
        }
        self.program(changes);
    }

    /// `woken` brings a signal each time the writer thread finished a batch.
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut woken: Option<mpsc::UnboundedReceiver<()>>,
    ) {
        let mut counters = tokio::time::interval(COUNTERS_INTERVAL);
        let mut audit = tokio::time::interval(AUDIT_INTERVAL);
        audit.reset();
        loop {
            if std::mem::take(&mut self.recheck_sources) {
                self.recheck_sources();
            }
            let deadline = self.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                () = sleep_until(deadline) => self.expire(),
                Some(()) = next_wake(&mut woken) => self.complete_ready(),
                _ = counters.tick() => {
                    if self.counters_stale && Instant::now() >= self.counting_after {
                        self.update_counters();
                    }
                }
                _ = audit.tick() => {
                    if self.written_since_audit && self.audits_put_off < AUDIT_PUT_OFF_AT_MOST {
                        self.audits_put_off += 1;
                    } else {
                        self.audits_put_off = 0;
                        self.audit();
                    }
                    self.written_since_audit = false;
                }
            }
        }
    }

    /// Puts back what the kernel lost behind wgd's back (an interface that
    /// went down and up flushes its IPv4 routes; an operator may flush
    /// them), follows the underlay under the endpoint pins, and tries
    /// again the routes the kernel refused.
    fn audit(&mut self) {
        // Routes on their way in would look missing.
        self.drain();
        // A source address that went away: the kernel dropped its IPv4
        // routes with it, and they come back (below) without it.
        let mut changes = Changes::default();
        self.refresh_sources(&mut changes);
        self.program(changes);
        let present = match self.writer.call(|fib| fib.prefixes_ours()) {
            Ok(prefixes) => Present(prefixes),
            Err(error) => {
                tracing::warn!(%error, "cannot read wgd's routes for the audit");
                return;
            }
        };
        // Put back exclusively: if someone else's route took the place,
        // it stays, and ours is reported as refused.
        let mut ops: Vec<FibOp> = self
            .rib
            .installed()
            .filter(|(prefix, _)| !present.contains(*prefix))
            .map(|(prefix, nexthops)| FibOp::Add {
                prefix,
                nexthops: nexthops.to_vec(),
                source: self.rib.source_of(&prefix, nexthops),
            })
            .collect();
        ops.extend(
            self.pins
                .iter()
                .filter(|(endpoint, _)| !present.contains(IpNet::from(**endpoint)))
                .map(|(endpoint, nexthops)| FibOp::add(IpNet::from(*endpoint), nexthops.clone())),
        );
        if !ops.is_empty() {
            tracing::warn!(
                routes = ops.len(),
                "routes of wgd went missing from the kernel; putting them back"
            );
            self.apply(ops, 0);
        }
        self.check_pins();
        let mut changes = Changes::default();
        self.rib.retry_failed(&mut changes);
        self.program(changes);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let owners = self.owners.values().filter_map(|state| match state {
            OwnerState::Away { until } => Some(*until),
            OwnerState::Connected { sweep_at, .. } => *sweep_at,
            OwnerState::Static => None,
        });
        owners.chain(self.startup_until).min()
    }

    fn expire(&mut self) {
        self.drain();
        let now = Instant::now();
        let mut changes = Changes::default();
        if self.startup_until.is_some_and(|at| at <= now) {
            self.startup_until = None;
            let swept = self.rib.sweep_adopted(&mut changes);
            tracing::info!(swept, "startup hold over: unclaimed adopted routes removed");
        }
        self.program(changes);
        let mut gone = Vec::new();
        let mut unswept = Vec::new();
        for (owner, state) in &mut self.owners {
            match state {
                OwnerState::Away { until } if *until <= now => gone.push(owner.clone()),
                OwnerState::Connected { sweep_at, .. } if sweep_at.is_some_and(|at| at <= now) => {
                    *sweep_at = None;
                    unswept.push(owner.clone());
                }
                _ => {}
            }
        }
        for owner in gone {
            let withdrawn = self.withdraw_in_parts(Withdrawal::all(&owner));
            tracing::info!(%owner, withdrawn, "hold time over: the owner's routes are withdrawn");
            self.owners.remove(&owner);
        }
        for owner in unswept {
            let withdrawn = self.withdraw_in_parts(Withdrawal::stale(&owner));
            tracing::info!(%owner, withdrawn, "hold time over before end-of-RIB: stale routes withdrawn");
        }
    }

    /// Withdraws an owner's routes (all, or the stale ones) a part at a
    /// time, with two parts at most before the kernel: the RIB makes the
    /// next part while the writer takes the last, and a full table's
    /// removals (their kernel operations, the netlink messages) are never
    /// all held at once, only the list of their prefixes. Returns how
    /// many, once the kernel has taken them all.
    fn withdraw_in_parts(&mut self, which: Withdrawal<'_>) -> u64 {
        let order = self.rib.withdrawal_order(&which);
        for part in order.chunks(WITHDRAWAL_PART) {
            let mut changes = Changes::default();
            self.rib.withdraw_listed(which.owner, part, &mut changes);
            self.submit(changes, None);
            while self.pending.len() > 1 {
                let done = self.writer.wait();
                self.complete(done);
            }
        }
        self.drain();
        order.len() as u64
    }

    fn handle(&mut self, command: Command) {
        // Only updates go on while the kernel takes earlier batches; every
        // other command sees their outcome.
        if !matches!(command, Command::Updates { .. }) {
            self.drain();
        }
        if matches!(
            command,
            Command::Updates { .. } | Command::Close { .. } | Command::EndOfRib { .. }
        ) {
            self.written_since_audit = true;
        }
        match command {
            Command::Open {
                owner,
                hold,
                nexthops,
                reply,
            } => {
                let _ = reply.send(self.open(owner, hold, nexthops));
            }
            Command::Close {
                owner,
                session,
                withdraw,
            } => self.close(owner, session, withdraw),
            Command::Updates {
                owner,
                session,
                updates,
                reply,
            } => {
                self.updates(owner, session, updates, reply);
                self.complete_ready();
            }
            Command::EndOfRib { owner, reply } => {
                let withdrawn = self.withdraw_in_parts(Withdrawal::stale(&owner));
                if let Some(OwnerState::Connected { sweep_at, .. }) = self.owners.get_mut(&owner) {
                    *sweep_at = None;
                }
                tracing::info!(%owner, withdrawn, "end-of-RIB");
                let _ = reply.send(withdrawn);
            }
            Command::Register {
                owner,
                register,
                unregister,
            } => {
                for address in unregister {
                    self.rib.unregister(&owner, &address);
                }
                let Some(OwnerState::Connected { nexthops, .. }) = self.owners.get(&owner) else {
                    return;
                };
                let nexthops = nexthops.clone();
                for address in register {
                    let _ = nexthops.send(self.rib.register(&owner, address));
                }
            }
            Command::Tunnels(view) => {
                let mut changes = Changes::default();
                if self.rib.set_tunnels(view, &mut changes) {
                    // A tunnel that came up may bring a source address.
                    self.refresh_sources(&mut changes);
                    self.program(changes);
                    self.check_pins();
                }
            }
            Command::Sources(sources) => {
                self.config.sources = sources;
                let mut changes = Changes::default();
                self.refresh_sources(&mut changes);
                self.program(changes);
            }
            Command::List { filter, reply } => {
                let _ = reply.send(self.rib.routes(&filter));
            }
            Command::Statistics { reply } => {
                let _ = reply.send(self.statistics());
            }
        }
    }

    /// Reads which configured source addresses the host has and gives the
    /// RIB the sources (their changes re-program the routes). An address
    /// the host lacks is left off the routes rather than have the kernel
    /// refuse each of them: the routes carry traffic without it, and the
    /// operator is told once.
    fn refresh_sources(&mut self, changes: &mut Changes) {
        let sources = self.config.sources.clone();
        if sources.is_empty() && self.rib.sources().is_empty() {
            return;
        }
        let configured = sources.addresses();
        let present = if configured.is_empty() {
            BTreeSet::new()
        } else {
            match self.writer.call(|fib| fib.local_addresses()) {
                Ok(local) => local,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the host's addresses for the routes' source");
                    return;
                }
            }
        };
        let missing: BTreeSet<IpAddr> = configured.difference(&present).copied().collect();
        for address in missing.difference(&self.missing_sources) {
            tracing::warn!(
                %address,
                "source address is not on this host: routes go in without it until it is"
            );
        }
        for address in self.missing_sources.difference(&missing) {
            if configured.contains(address) {
                tracing::info!(%address, "source address is on this host again: routes take it");
            }
        }
        self.missing_sources = missing;
        self.rib.set_sources(sources, present, changes);
    }

    fn open(
        &mut self,
        owner: Owner,
        hold: Option<Duration>,
        nexthops: mpsc::UnboundedSender<NexthopEvent>,
    ) -> Result<Welcome, BridgeError> {
        let hold = hold.unwrap_or(self.config.default_hold);
        let session = self.next_session;
        let sweep_at = match self.owners.get(&owner) {
            Some(OwnerState::Connected { .. }) => {
                return Err(BridgeError::SessionExists(owner.to_string()));
            }
            Some(OwnerState::Static) => return Err(BridgeError::StaticOwner(owner.to_string())),
            // Back within its hold time: the routes it does not re-send
            // before EndOfRib (or before the hold runs out) go.
            Some(OwnerState::Away { until }) => Some(*until),
            None => None,
        };
        self.next_session += 1;
        let stale = self.rib.stale_count(&owner);
        tracing::info!(%owner, session, ?hold, stale, "session opened");
        self.owners.insert(
            owner,
            OwnerState::Connected {
                session,
                hold,
                nexthops,
                sweep_at,
            },
        );
        let stale_routes = stale
            + if sweep_at.is_none() {
                self.rib.adopted_count()
            } else {
                0
            };
        Ok(Welcome {
            session,
            stale_routes,
        })
    }

    /// A session ended: its routes are kept for its hold time (stale until
    /// re-claimed), or with `withdraw` they go now.
    fn close(&mut self, owner: Owner, session: u64, withdraw: bool) {
        let Some(OwnerState::Connected {
            session: current,
            hold,
            ..
        }) = self.owners.get(&owner)
        else {
            return;
        };
        if *current != session {
            return;
        }
        let hold = *hold;
        self.rib.forget_registrations(&owner);
        if withdraw {
            let withdrawn = self.withdraw_in_parts(Withdrawal::all(&owner));
            self.owners.remove(&owner);
            tracing::info!(%owner, session, withdrawn, "session ended; its routes withdrawn");
            return;
        }
        let kept = self.rib.mark_stale(&owner);
        if kept == 0 {
            tracing::info!(%owner, session, "session ended; it had no routes left");
            self.owners.remove(&owner);
        } else {
            tracing::info!(%owner, session, kept, ?hold, "session ended; routes kept for the hold time");
            self.owners.insert(
                owner,
                OwnerState::Away {
                    until: Instant::now() + hold,
                },
            );
        }
    }

    /// Applies a batch of updates to the RIB and hands its kernel writes
    /// to the writer; the answer goes to `reply` once they are done.
    fn updates(
        &mut self,
        owner: Owner,
        session: Option<u64>,
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<Vec<UpdateResult>, BridgeError>>,
    ) {
        let refusal = match (self.owners.get(&owner), session) {
            (
                Some(OwnerState::Connected {
                    session: current, ..
                }),
                Some(session),
            ) if *current == session => None,
            (Some(OwnerState::Connected { .. } | OwnerState::Away { .. }), None) => {
                Some(BridgeError::SessionOwner(owner.to_string()))
            }
            (_, Some(_)) => Some(BridgeError::SessionClosed(owner.to_string())),
            (Some(OwnerState::Static) | None, None) => {
                self.owners.insert(owner.clone(), OwnerState::Static);
                None
            }
        };
        if let Some(refusal) = refusal {
            let _ = reply.send(Err(refusal));
            return;
        }
        let mut changes = Changes::default();
        // Most updates of a batch change one kernel route each: one
        // allocation for their operations, not a doubling per power of two.
        changes.fib.reserve(updates.len());
        let mut results = Vec::with_capacity(updates.len());
        let mut touched = Vec::with_capacity(updates.len());
        for update in updates {
            let (prefix, status) = match update {
                Update::Offer(spec) => {
                    let prefix = spec.prefix;
                    let status = self.rib.offer(&owner, spec, &mut changes);
                    touched.push((results.len(), prefix));
                    (ResultPrefix::Read(prefix), status)
                }
                Update::Withdraw(prefix) => (
                    ResultPrefix::Read(prefix),
                    self.rib.withdraw(&owner, prefix, &mut changes),
                ),
                Update::Invalid { prefix, reason } => {
                    (ResultPrefix::Unread(prefix), RouteStatus::Refused(reason))
                }
            };
            results.push(UpdateResult { prefix, status });
        }
        let answer = Answer {
            owner,
            session,
            results,
            touched,
            reply,
        };
        self.submit(changes, Some(answer));
    }

    /// Writes the RIB's changes to the kernel and to wgd, and waits for
    /// the kernel: how many operations it refused.
    fn program(&mut self, changes: Changes) -> u64 {
        self.submit(changes, None);
        self.drain()
    }

    /// Hands the RIB's changes to the writer (new endpoint pins first,
    /// then the routes, then the pins no longer needed) and tells wgd and
    /// the sessions; `answer` goes out when the kernel has taken them.
    fn submit(&mut self, changes: Changes, answer: Option<Answer>) {
        let Changes {
            fib,
            allowed_ips,
            nexthops,
        } = changes;
        let wanted = self.rib.covered_endpoints();
        let mut ops = Vec::new();
        let new_pins: Vec<IpAddr> = wanted
            .iter()
            .filter(|endpoint| !self.pins.contains_key(endpoint))
            .copied()
            .collect();
        if !new_pins.is_empty() {
            let asked = new_pins.clone();
            match self.writer.call(move |fib| fib.underlay_routes(&asked)) {
                Ok(routes) => {
                    for (endpoint, route) in new_pins.iter().zip(routes) {
                        match route {
                            Some(nexthops) => {
                                ops.push(FibOp::add(IpNet::from(*endpoint), nexthops.clone()));
                                self.pins.insert(*endpoint, nexthops);
                            }
                            None => {
                                tracing::warn!(%endpoint, "a learned route covers this tunnel endpoint and the underlay has no route to it")
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot find the underlay routes of tunnel endpoints")
                }
            }
        }
        let pins = ops.len();
        if ops.is_empty() {
            ops = coalesce(fib);
        } else {
            ops.extend(coalesce(fib));
        }
        let stale_pins: Vec<IpAddr> = self
            .pins
            .keys()
            .filter(|endpoint| !wanted.contains(endpoint))
            .copied()
            .collect();
        for endpoint in &stale_pins {
            self.pins.remove(endpoint);
            ops.push(FibOp::Remove {
                prefix: IpNet::from(*endpoint),
            });
        }
        let pending = Pending { pins, answer };
        if ops.is_empty() && self.pending.is_empty() {
            self.finish(pending, 0);
        } else {
            self.pending.push_back(pending);
            self.writer.submit(ops);
        }
        if !allowed_ips.is_empty() {
            self.publish_allowed();
        }
        for event in nexthops {
            if let Some(OwnerState::Connected { nexthops, .. }) = self.owners.get(&event.owner) {
                let _ = nexthops.send(event);
            }
        }
        self.counters_stale = true;
    }

    fn publish_allowed(&mut self) {
        let extras = self.rib.allowed_ips().clone();
        self.allowed.send_if_modified(|current| {
            let changed = *current != extras;
            *current = extras;
            changed
        });
    }

    /// Writes `ops` to the kernel and waits; the first `pins` are endpoint
    /// pins. How many the kernel refused.
    fn apply(&mut self, ops: Vec<FibOp>, pins: usize) -> u64 {
        self.pending.push_back(Pending { pins, answer: None });
        self.writer.submit(ops);
        self.drain()
    }

    /// Waits for every batch on its way; how many operations the kernel
    /// refused in them.
    fn drain(&mut self) -> u64 {
        let mut refused = 0;
        while !self.pending.is_empty() {
            let done = self.writer.wait();
            refused += self.complete(done);
        }
        refused
    }

    /// Takes in the batches the kernel has finished, without waiting.
    fn complete_ready(&mut self) {
        while let Some(done) = self.writer.ready() {
            self.complete(done);
        }
    }

    /// The kernel has taken the oldest pending batch: what it refused goes
    /// back into the RIB, then its answer goes out. How many it refused.
    fn complete(&mut self, done: Done) -> u64 {
        let Some(pending) = self.pending.pop_front() else {
            tracing::error!("the FIB writer finished a batch nobody sent");
            return 0;
        };
        let Done {
            ops,
            results,
            seconds,
        } = done;
        let mut errors = 0;
        let mut unrouted = false;
        let mut with_source = false;
        for (index, (op, result)) in ops.iter().zip(results).enumerate() {
            let Err(reason) = result else {
                continue;
            };
            errors += 1;
            with_source |= matches!(
                op,
                FibOp::Add {
                    source: Some(_),
                    ..
                } | FibOp::Replace {
                    source: Some(_),
                    ..
                }
            );
            tracing::warn!(prefix = %op.prefix(), %reason, "the kernel refused a route");
            if index < pending.pins {
                self.pins.remove(&op.prefix().addr());
            } else {
                match op {
                    // The old route stays in the kernel, and it is ours.
                    FibOp::Replace { .. } => self.rib.fib_failed(op.prefix(), reason, true),
                    FibOp::Add { .. } => {
                        self.rib.fib_failed(op.prefix(), reason, false);
                        unrouted = true;
                    }
                    FibOp::Remove { .. } => {}
                }
            }
        }
        if !ops.is_empty() {
            tracing::debug!(ops = ops.len(), errors, seconds, "FIB batch");
            self.batch_seconds.observe(seconds);
            let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            counters.fib_operations += ops.len() as u64;
            counters.fib_errors += errors;
        }
        if unrouted {
            // A route that is not in the kernel is not in AllowedIPs either.
            self.publish_allowed();
        }
        // Its source address may have gone: looked at once this is done.
        self.recheck_sources |= with_source;
        self.finish(pending, errors);
        errors
    }

    /// After the kernel refused routes with a source: if a source address
    /// went away, the routes go in again without it.
    fn recheck_sources(&mut self) {
        let before = self.missing_sources.clone();
        let mut changes = Changes::default();
        self.refresh_sources(&mut changes);
        if self.missing_sources != before {
            self.rib.retry_failed(&mut changes);
        }
        self.program(changes);
    }

    /// Answers a batch of updates whose kernel writes are done (`refused`
    /// of them refused).
    fn finish(&mut self, pending: Pending, refused: u64) {
        let Some(Answer {
            owner,
            session,
            mut results,
            touched,
            reply,
        }) = pending.answer
        else {
            return;
        };
        // The kernel may have refused some: tell the owner what is true now
        // (only then: a second lookup per route costs a full table dearly).
        let recheck = if refused > 0 { touched } else { Vec::new() };
        for (index, prefix) in recheck {
            if let Some(status) = self.rib.status_of(prefix, &owner)
                && !matches!(results[index].status, RouteStatus::Refused(_))
            {
                results[index].status = status;
            }
        }
        if session.is_none() {
            if self.rib.owner_routes(&owner) == 0 {
                self.owners.remove(&owner);
            }
            self.save_static();
        }
        let _ = reply.send(Ok(results));
    }

    /// The underlay may have moved under a pin (a new default gateway):
    /// pins follow it.
    fn check_pins(&mut self) {
        if self.pins.is_empty() {
            return;
        }
        let endpoints: Vec<IpAddr> = self.pins.keys().copied().collect();
        let asked = endpoints.clone();
        let routes = match self.writer.call(move |fib| fib.underlay_routes(&asked)) {
            Ok(routes) => routes,
            Err(error) => {
                tracing::warn!(%error, "cannot check the endpoint pins against the underlay");
                return;
            }
        };
        let mut ops = Vec::new();
        for (endpoint, route) in endpoints.iter().zip(routes) {
            if let Some(now) = route
                && self.pins.get(endpoint) != Some(&now)
            {
                self.pins.insert(*endpoint, now.clone());
                ops.push(FibOp::replace(IpNet::from(*endpoint), now));
            }
        }
        if !ops.is_empty() {
            let ops = Arc::new(ops);
            let applied = ops.clone();
            let results = self.writer.call(move |fib| fib.apply(&applied));
            for (op, result) in ops.iter().zip(results) {
                if let Err(reason) = result {
                    tracing::warn!(prefix = %op.prefix(), %reason, "cannot move an endpoint pin");
                }
            }
        }
    }

    fn endpoints(&self) -> BTreeSet<IpAddr> {
        self.rib
            .tunnels()
            .tunnels
            .iter()
            .flat_map(|tunnel| &tunnel.peers)
            .filter_map(|peer| peer.endpoint.map(|e| e.ip()))
            .collect()
    }

    /// Counts the RIB for statistics and metrics; the counts per owner.
    fn update_counters(&mut self) -> BTreeMap<Owner, OwnerCounts> {
        self.counters_stale = false;
        let started = std::time::Instant::now();
        let (owners, installed) = self.rib.census();
        self.counting_after = Instant::now() + started.elapsed() * COUNTING_SHARE;
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.kernel_routes = installed + self.pins.len() as u64;
        counters.endpoint_pins = self.pins.len() as u64;
        counters.owners = owners.clone();
        owners
    }

    fn statistics(&mut self) -> Statistics {
        let counts = self.update_counters();
        let now = Instant::now();
        let mut names: BTreeSet<Owner> = counts.keys().cloned().collect();
        names.extend(self.owners.keys().cloned());
        let owners = names
            .into_iter()
            .map(|owner| {
                let state = self.owners.get(&owner);
                let hold_remaining = match state {
                    Some(OwnerState::Away { until }) => Some(until.saturating_duration_since(now)),
                    Some(OwnerState::Connected {
                        sweep_at: Some(at), ..
                    }) => Some(at.saturating_duration_since(now)),
                    _ => None,
                };
                OwnerStatistics {
                    connected: matches!(state, Some(OwnerState::Connected { .. })),
                    counts: counts.get(&owner).cloned().unwrap_or_default(),
                    hold_remaining,
                    prefix_limit: self.config.rib.limit_of(&owner),
                    owner,
                }
            })
            .collect();
        Statistics {
            owners,
            counters: self
                .counters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn load_static(&self) -> StaticRoutes {
        let Some(path) = &self.config.state_file else {
            return StaticRoutes::default();
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::error!(path = %path.display(), %error, "cannot read the kept static routes");
                StaticRoutes::default()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => StaticRoutes::default(),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the kept static routes");
                StaticRoutes::default()
            }
        }
    }

    fn save_static(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let mut kept = StaticRoutes::default();
        for (owner, state) in &self.owners {
            if !matches!(state, OwnerState::Static) {
                continue;
            }
            let filter = RouteFilter {
                owner: Some(owner.clone()),
                ..RouteFilter::default()
            };
            let specs = self
                .rib
                .routes(&filter)
                .into_iter()
                .map(|record| RouteSpec {
                    prefix: record.prefix,
                    nexthops: record.nexthops,
                    distance: record.distance,
                    metric: record.metric,
                })
                .collect();
            kept.0.insert(owner.to_string(), specs);
        }
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(&kept)?)?;
            std::fs::rename(&temporary, path)
        };
        if let Err(error) = write() {
            tracing::error!(path = %path.display(), %error, "cannot keep the static routes");
        }
    }
}

/// One operation per prefix, in the order the prefixes first came: a batch
/// may name a prefix twice (added then replaced, added then withdrawn).
/// Whether the kernel had wgd's route before decides between an exclusive
/// add and a replace, so a failed add is never followed by a replace that
/// would overwrite someone else's route.
fn coalesce(ops: Vec<FibOp>) -> Vec<FibOp> {
    if ops.len() < 2 {
        return ops;
    }
    // Most batches name each prefix once: found by sorting their prefixes
    // (a tenth of the bytes of the operations), the operations stay as
    // they are instead of going through a map and back.
    let mut prefixes: Vec<IpNet> = ops.iter().map(FibOp::prefix).collect();
    prefixes.sort_unstable();
    if prefixes.windows(2).all(|pair| pair[0] != pair[1]) {
        return ops;
    }
    drop(prefixes);
    let mut order: Vec<IpNet> = Vec::with_capacity(ops.len());
    let mut last: std::collections::HashMap<IpNet, (bool, FibOp), foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(ops.len(), Default::default());
    for op in ops {
        let prefix = op.prefix();
        match last.get_mut(&prefix) {
            Some((_, previous)) => *previous = op,
            None => {
                let ours_before = !matches!(op, FibOp::Add { .. });
                order.push(prefix);
                last.insert(prefix, (ours_before, op));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|prefix| {
            let (ours_before, op) = last.remove(&prefix)?;
            match (ours_before, op) {
                (
                    true,
                    FibOp::Add {
                        prefix,
                        nexthops,
                        source,
                    },
                ) => Some(FibOp::Replace {
                    prefix,
                    nexthops,
                    source,
                }),
                (
                    false,
                    FibOp::Replace {
                        prefix,
                        nexthops,
                        source,
                    },
                ) => Some(FibOp::Add {
                    prefix,
                    nexthops,
                    source,
                }),
                (false, FibOp::Remove { .. }) => None,
                (_, op) => Some(op),
            }
        })
        .collect()
}

/// The Linux FIB: nexthops read from the kernel carry no tunnel name (the
/// RIB finds it from the interface index).
impl Fib for crate::fib::KernelFib {
    fn apply(&mut self, ops: &[FibOp]) -> Vec<Result<(), String>> {
        crate::fib::KernelFib::apply(self, ops)
            .into_iter()
            .map(|result| result.map_err(|error| error.to_string()))
            .collect()
    }

    fn prefixes_ours(&mut self) -> Result<Vec<IpNet>, String> {
        let mut prefixes =
            crate::fib::KernelFib::prefixes_ours(self).map_err(|error| error.to_string())?;
        prefixes.sort_unstable();
        Ok(prefixes)
    }

    fn dump_ours(&mut self) -> Result<Vec<FoundRoute>, String> {
        crate::fib::KernelFib::dump_ours_as(self, |route| FoundRoute {
            prefix: route.prefix,
            nexthops: kernel_nexthops(&route.nexthops),
            source: route.source,
        })
        .map_err(|error| error.to_string())
    }

    fn local_addresses(&mut self) -> Result<BTreeSet<IpAddr>, String> {
        crate::fib::KernelFib::local_addresses(self).map_err(|error| error.to_string())
    }

    fn underlay_routes(
        &mut self,
        destinations: &[IpAddr],
    ) -> Result<Vec<Option<Vec<FibNexthop>>>, String> {
        let routes = crate::fib::KernelFib::underlay_routes(self, destinations)
            .map_err(|error| error.to_string())?;
        Ok(routes
            .into_iter()
            .map(|route| {
                route
                    .filter(|route| !route.nexthops.is_empty())
                    .map(|route| kernel_nexthops(&route.nexthops))
            })
            .collect())
    }
}

fn kernel_nexthops(nexthops: &[crate::fib::KernelNexthop]) -> Vec<FibNexthop> {
    nexthops
        .iter()
        .map(|nexthop| FibNexthop {
            tunnel: String::new(),
            ifindex: nexthop.ifindex,
            gateway: nexthop.gateway,
            peer: None,
        })
        .collect()
}

/// The writer's next signal; never, without a writer thread.
async fn next_wake(woken: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match woken {
        Some(woken) => woken.recv().await,
        None => std::future::pending().await,
    }
}

/// Until `deadline`; for ever without one (a `select!` branch that stays
/// quiet).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A twin of the kernel for the tests of the engine and of its clients.
#[cfg(test)]
pub(crate) mod memory {
    use super::*;

    /// The kernel in memory: routes by prefix, and every op applied.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct MemoryFib {
        pub(crate) routes: Arc<Mutex<BTreeMap<IpNet, Vec<FibNexthop>>>>,
        pub(crate) applied: Arc<Mutex<Vec<FibOp>>>,
        /// Routes someone else added: not ours to dump.
        pub(crate) foreign: Arc<Mutex<BTreeSet<IpNet>>>,
        /// The `src` of the routes that have one.
        pub(crate) sources: Arc<Mutex<BTreeMap<IpNet, IpAddr>>>,
        /// The host's addresses: a `src` must be one of them.
        pub(crate) local: Arc<Mutex<BTreeSet<IpAddr>>>,
    }

    impl MemoryFib {
        pub(crate) fn count(&self) -> usize {
            self.routes.lock().unwrap().len()
        }

        pub(crate) fn applied(&self) -> Vec<FibOp> {
            std::mem::take(&mut self.applied.lock().unwrap())
        }
    }

    impl Fib for MemoryFib {
        fn apply(&mut self, ops: &[FibOp]) -> Vec<Result<(), String>> {
            let mut routes = self.routes.lock().unwrap();
            let mut sources = self.sources.lock().unwrap();
            let local = self.local.lock().unwrap();
            self.applied.lock().unwrap().extend(ops.iter().cloned());
            ops.iter()
                .map(|op| match op {
                    FibOp::Add {
                        prefix,
                        nexthops,
                        source,
                    }
                    | FibOp::Replace {
                        prefix,
                        nexthops,
                        source,
                    } => {
                        if matches!(op, FibOp::Add { .. }) && routes.contains_key(prefix) {
                            return Err("File exists".into());
                        }
                        if source.is_some_and(|source| !local.contains(&source)) {
                            return Err("Invalid argument: Invalid prefsrc address".into());
                        }
                        routes.insert(*prefix, nexthops.clone());
                        match source {
                            Some(source) => sources.insert(*prefix, *source),
                            None => sources.remove(prefix),
                        };
                        Ok(())
                    }
                    FibOp::Remove { prefix } => {
                        routes.remove(prefix);
                        sources.remove(prefix);
                        Ok(())
                    }
                })
                .collect()
        }

        fn dump_ours(&mut self) -> Result<Vec<FoundRoute>, String> {
            let foreign = self.foreign.lock().unwrap();
            let sources = self.sources.lock().unwrap();
            Ok(self
                .routes
                .lock()
                .unwrap()
                .iter()
                .filter(|(prefix, _)| !foreign.contains(prefix))
                .map(|(prefix, nexthops)| FoundRoute {
                    prefix: *prefix,
                    nexthops: nexthops.clone(),
                    source: sources.get(prefix).copied(),
                })
                .collect())
        }

        fn local_addresses(&mut self) -> Result<BTreeSet<IpAddr>, String> {
            Ok(self.local.lock().unwrap().clone())
        }

        fn underlay_routes(
            &mut self,
            destinations: &[IpAddr],
        ) -> Result<Vec<Option<Vec<FibNexthop>>>, String> {
            let underlay = FibNexthop {
                tunnel: String::new(),
                ifindex: 2,
                gateway: Some("198.51.100.254".parse().unwrap()),
                peer: None,
            };
            Ok(destinations
                .iter()
                .map(|_| Some(vec![underlay.clone()]))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests;
