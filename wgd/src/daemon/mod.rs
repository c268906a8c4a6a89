//! `wgd run`: the daemon. It reconciles at start, on SIGHUP, periodically
//! (resolving endpoint host names again first) and whenever a tunnel's
//! device goes away (a supervised wireguard-go exiting, or any tunnel
//! vanishing). It polls the devices into a `Snapshot` of their status,
//! which the API and the metrics read; `events::EventTracker` turns
//! successive snapshots (and wireguard-go exits, at once) into events for
//! the API's stream.
//!
//! On SIGTERM or SIGINT it exits and leaves the tunnels up (routing
//! protocols keep their adjacencies across a restart), unless asked to take
//! them down.
//!
//! Under systemd (`Type=notify`), `notify::Notifier` tells it when the
//! first reconcile is done, when a reload starts and ends, and what the
//! tunnels and sessions are doing, and pets the watchdog from this loop
//! (a loop that hangs stops petting it).

pub mod api;
mod bfd;
pub mod events;
pub mod gobgp;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod routes;
mod static_routes;
pub mod tcp_api;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime};

use bgp_bridge::engine::{AllowedExtras, Bridge};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc, watch};

use crate::apply::StartedDevice;
use crate::config::{self, Config};
use crate::plan::Action;
use crate::reconcile::Host;
use crate::status::{self, Status};
use crate::system::Depth;
use events::{Event, EventTracker};
use metrics::Metrics;

/// How often devices are read for status and events.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// Where `wgd status` finds the daemon of this namespace.
pub fn api_pointer(host: &Host) -> PathBuf {
    host.state
        .path()
        .parent()
        .unwrap_or(Path::new("/run/wgd"))
        .join("daemon.api")
}

/// The latest status, which the daemon replaces after each read of the
/// devices and the API and metrics read. A plain lock: nobody holds it
/// across an await.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(Arc<RwLock<Status>>);

impl Snapshot {
    pub fn read(&self) -> RwLockReadGuard<'_, Status> {
        // A panic elsewhere cannot leave a half-written status: writes
        // are whole replacements.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn replace(&self, status: Status) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(config::ConfigErrors),
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    #[error("API socket {path}: {source}")]
    Api {
        path: String,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("cannot open the kernel routing table for the bridge: {0}")]
    Fib(bgp_bridge::fib::FibError),
    #[error("cannot start the route bridge: {0}")]
    Bridge(std::io::Error),
    #[error("cannot start the BGP speaker: {0}")]
    Bgp(std::io::Error),
    #[error("cannot listen for zebra over FPM: {0}")]
    Fpm(std::io::Error),
    #[error(transparent)]
    TcpApi(#[from] tcp_api::TcpApiError),
}

struct Daemon {
    path: PathBuf,
    config: Config,
    host: Host,
    snapshot: Snapshot,
    events: broadcast::Sender<Event>,
    tracker: EventTracker,
    /// The config's `peer_dead_after`, for the API's replay of dead peers.
    dead_after: watch::Sender<Duration>,
    metrics: Metrics,
    exits: mpsc::UnboundedSender<Exit>,
    /// Each supervised wireguard-go by tunnel: its process id.
    children: BTreeMap<String, u32>,
    /// Children that wgd stopped itself (it deleted their interface) and
    /// that have not exited yet.
    stopped: BTreeSet<u32>,
    retry: Backoff,
    /// The route bridge, and the AllowedIPs it adds to multi-peer tunnels.
    bridge: Bridge,
    /// The built-in BGP speaker, when the config has `[bgp]`.
    speaker: Option<bgp_bridge::bgp::speaker::Speaker>,
    /// The FPM listener (FRR's zebra), when the config has `[fpm]`.
    fpm: Option<bgp_bridge::fpm::Fpm>,
    /// The BFD sessions: the speaker's, or without `[bgp]` a host of their
    /// own, which `bfd_view` tells of the tunnels.
    bfd: bgp_bridge::bgp::bfd::Bfd,
    bfd_view: Option<watch::Sender<bgp_bridge::TunnelView>>,
    /// The nexthops `wgd route add --bfd` asked BFD for.
    bfd_requests: bgp_bridge::service::BfdRequests,
    /// The tunnel view last given to the bridge, to change its BFD part
    /// at once when a session falls (without reading the devices again).
    view: bgp_bridge::TunnelView,
    extras: AllowedExtras,
    /// Tunnel events for the bridge's sessions, as the API sends them.
    tunnel_events: broadcast::Sender<wgd_proto::v1::TunnelEvent>,
    /// Why the last reload was refused, until one is accepted: for
    /// systemd's status line (the log says the rest).
    refused_reload: Option<&'static str>,
}

/// A supervised wireguard-go ended.
#[derive(Debug)]
struct Exit {
    tunnel: String,
    pid: Option<u32>,
    /// How it ended (`signal: 9 (SIGKILL)`), or why waiting for it failed.
    status: String,
}

/// Spacing of repairs after failures: 1 s, doubling up to a minute, so a
/// device that cannot start does not make the daemon spin.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    not_before: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(1),
            not_before: None,
        }
    }
}

impl Backoff {
    const MAX: Duration = Duration::from_secs(60);

    fn failed(&mut self, now: Instant) {
        if self.not_before.is_some() {
            self.delay = (self.delay * 2).min(Self::MAX);
        }
        self.not_before = Some(now + self.delay);
    }

    fn allows(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }
}

impl Daemon {
    fn supervise(&mut self, started: Vec<StartedDevice>) {
        for StartedDevice { tunnel, mut child } in started {
            let pid = child.id();
            if let Some(pid) = pid {
                self.children.insert(tunnel.clone(), pid);
            }
            let exits = self.exits.clone();
            tokio::spawn(async move {
                let status = match child.wait().await {
                    Ok(status) => status.to_string(),
                    Err(error) => error.to_string(),
                };
                let _ = exits.send(Exit {
                    tunnel,
                    pid,
                    status,
                });
            });
        }
    }

    /// Children of the interfaces a reconcile deleted exit because wgd
    /// stopped them: remembered so that their exit is not taken for a death.
    fn forget_stopped(&mut self, actions: &[Action]) {
        for action in actions {
            if matches!(action, Action::DeleteLink { .. })
                && let Some(pid) = self.children.remove(action.tunnel())
            {
                self.stopped.insert(pid);
            }
        }
    }

    /// A supervised wireguard-go ended. When it died under a configured
    /// tunnel, watchers hear at once that the tunnel is down, and a repair
    /// starts a new one. Children wgd stopped itself, and those of tunnels
    /// no longer in the config, are let go quietly.
    async fn child_exited(&mut self, exit: Exit) {
        let Exit {
            tunnel,
            pid,
            status,
        } = exit;
        let stopped = pid.is_some_and(|pid| self.stopped.remove(&pid));
        let current = pid.is_none() || self.children.get(&tunnel) == pid.as_ref();
        if current {
            self.children.remove(&tunnel);
        }
        let configured = self
            .config
            .tunnels
            .iter()
            .any(|wanted| wanted.name.as_str() == tunnel);
        if stopped || !configured {
            tracing::info!(%tunnel, %status, "wireguard-go exited after wgd stopped it");
            return;
        }
        self.metrics.userspace_restarts.inc();
        if !current {
            // The missing interface was seen first, and a repair has
            // already started its successor.
            tracing::warn!(%tunnel, %status, "wireguard-go exited; already restarted");
            return;
        }
        tracing::warn!(%tunnel, %status, "wireguard-go exited; restarting it");
        let reason = format!("wireguard-go exited ({status})");
        if let Some(event) = self.tracker.went_down(&tunnel, reason, SystemTime::now()) {
            self.publish(event);
        }
        self.repair("device exited").await;
    }

    fn publish(&self, event: Event) {
        tracing::info!(tunnel = %event.tunnel, event = ?event.kind, "event");
        let _ = self
            .tunnel_events
            .send(wgd_proto::v1::TunnelEvent::from(&event));
        let _ = self.events.send(event);
    }

    async fn reconcile(&mut self, why: &str) {
        self.metrics.reconciles.inc();
        let config = routes::with_extras(&self.config, &self.extras);
        match self.host.reconcile(&config, false, true).await {
            Ok(outcome) => {
                if !outcome.actions.is_empty() {
                    tracing::info!(why, changes = outcome.actions.len(), "reconciled");
                }
                self.forget_stopped(&outcome.actions);
                self.supervise(outcome.started);
                if outcome.errors.is_empty() {
                    self.retry = Backoff::default();
                } else {
                    // The failed tunnels were left as they were; the others
                    // are done. Retry later, as after a failed reconcile.
                    self.metrics.reconcile_errors.inc();
                    self.retry.failed(Instant::now());
                    for error in &outcome.errors {
                        tracing::error!(why, %error, retry_in = ?self.retry.delay, "reconcile failed for a tunnel");
                    }
                }
            }
            Err(error) => {
                self.metrics.reconcile_errors.inc();
                self.retry.failed(Instant::now());
                tracing::error!(why, %error, retry_in = ?self.retry.delay, "reconcile failed");
            }
        }
        self.refresh().await;
    }

    /// A reconcile for a vanished device, unless the last ones failed and
    /// the backoff says to wait (the periodic reconcile still runs).
    async fn repair(&mut self, why: &str) {
        if self.retry.allows(Instant::now()) {
            self.reconcile(why).await;
        }
    }

    /// Resolves the endpoints written as host names again (dynamic DNS).
    /// Resolving blocks, so it runs on a blocking thread, on a copy.
    async fn refresh_endpoints(&mut self) {
        let mut config = self.config.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            let changed = config.refresh_endpoints();
            (config, changed)
        })
        .await;
        match resolved {
            Ok((config, changed)) if changed > 0 => {
                tracing::info!(changed, "endpoint host names resolve to new addresses");
                self.config = config;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot resolve the endpoints again"),
        }
    }

    /// The line `systemctl status wgd` shows: tunnels up, BGP sessions
    /// established, a refused reload.
    fn status_line(&self) -> String {
        let speaker = self.speaker.as_ref().map(|speaker| speaker.status());
        notify::status_line(
            &self.snapshot.read(),
            self.config.tunnels.len(),
            speaker.as_ref(),
            self.refused_reload,
        )
    }

    /// Re-reads the config; a bad one is reported and the old one kept.
    /// An included file that is broken now keeps its last good version.
    fn reload(&mut self) -> bool {
        let accepted = self.reload_config();
        self.refused_reload =
            (!accepted).then_some("the last reload was refused, the previous config runs");
        accepted
    }

    fn reload_config(&mut self) -> bool {
        match config::reload(&self.path, &self.config) {
            Ok(config) => {
                for notice in &config.notices {
                    tracing::warn!(%notice, "config");
                }
                log_broken_includes(&config);
                // The API socket and the metrics listener are bound once.
                let (old, new) = (&self.config.daemon, &config.daemon);
                if old.api != new.api {
                    tracing::warn!(
                        running = %old.api.display(),
                        configured = %new.api.display(),
                        "[daemon] api changed; it takes effect when wgd restarts"
                    );
                }
                if old.metrics != new.metrics {
                    tracing::warn!(
                        running = ?old.metrics,
                        configured = ?new.metrics,
                        "[daemon] metrics changed; it takes effect when wgd restarts"
                    );
                }
                if routes::restart_settings(&old.bridge) != routes::restart_settings(&new.bridge) {
                    tracing::warn!("[bridge] changed; it takes effect when wgd restarts");
                }
                if let Err(errors) = routes::check_sources(&config, true) {
                    for error in &errors.0 {
                        tracing::error!(%error, "config rejected, keeping the previous one");
                    }
                    return false;
                }
                if old.bgp != new.bgp {
                    tracing::warn!("[bgp] changed; it takes effect when wgd restarts");
                }
                if old.fpm != new.fpm {
                    tracing::warn!("[fpm] changed; it takes effect when wgd restarts");
                }
                if old.tcp_api != new.tcp_api {
                    tracing::warn!(
                        "[daemon] api on TCP or its TLS settings changed; it takes effect when wgd restarts"
                    );
                }
                if old.gobgp != new.gobgp {
                    tracing::warn!("[[gobgp]] changed; it takes effect when wgd restarts");
                }
                self.dead_after.send_replace(new.peer_dead_after);
                self.bridge.set_sources(routes::sources(&config));
                self.config = config;
                true
            }
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(%error, "config rejected, keeping the previous one");
                }
                false
            }
        }
    }

    /// Reads the devices, updates the snapshot, metrics and events. Returns
    /// whether a configured tunnel is missing (to reconcile at once).
    async fn refresh(&mut self) -> bool {
        let actual = match self.host.observe(Some(&self.config), Depth::Tunnels).await {
            Ok(actual) => actual,
            Err(error) => {
                tracing::warn!(%error, "cannot read tunnels");
                return false;
            }
        };
        let now = SystemTime::now();
        let dead_after = self.config.daemon.peer_dead_after;
        let mut status = status::collect(&actual, Some(&self.config), dead_after, now);
        // Only this config's tunnels: records of others in the namespace are theirs.
        status.tunnels.retain(|tunnel| {
            self.config
                .tunnels
                .iter()
                .any(|wanted| wanted.name.as_str() == tunnel.name)
        });
        for event in self.tracker.update(&status, now, dead_after) {
            self.publish(event);
        }
        let bfd_down = self.bfd.failed().borrow().clone();
        let view = routes::tunnel_view(&self.config, &actual, &status, &self.tracker, &bfd_down);
        self.set_view(view);
        let missing = self
            .config
            .tunnels
            .iter()
            .any(|tunnel| !actual.links.contains_key(tunnel.name.as_str()));
        self.snapshot.replace(status);
        missing
    }
}

impl Daemon {
    /// Gives the tunnel view to everything that resolves over it.
    fn set_view(&mut self, view: bgp_bridge::TunnelView) {
        if let Some(speaker) = &self.speaker {
            speaker.set_tunnels(view.clone());
        }
        if let Some(fpm) = &self.fpm {
            fpm.set_tunnels(view.clone());
        }
        if let Some(bfd_view) = &self.bfd_view {
            bfd_view.send_if_modified(|current| {
                let changed = *current != view;
                *current = view.clone();
                changed
            });
        }
        self.bridge.set_tunnels(view.clone());
        self.view = view;
    }

    /// A BFD session fell or came back: the view changes at once (the
    /// routes through its peer leave the kernel or return).
    fn bfd_changed(&mut self) {
        let bfd_down = self.bfd.failed().borrow().clone();
        if bfd_down != self.view.bfd_down {
            let mut view = self.view.clone();
            view.bfd_down = bfd_down;
            self.set_view(view);
        }
    }

    /// The config's routes into the bridge, and BFD to the nexthops that
    /// ask for it.
    async fn static_routes(&self) {
        static_routes::apply(&self.bridge, &self.config).await;
        self.bfd.set_nexthops(static_routes::bfd_nexthops(
            &self.config,
            &self.bfd_requests,
        ));
    }
}

/// Tells what is wrong with each broken included file, and what became of
/// its tunnel.
fn log_broken_includes(config: &Config) {
    for file in config
        .included
        .iter()
        .filter(|file| !file.errors.is_empty())
    {
        let tunnel = file
            .tunnel
            .as_ref()
            .map_or(String::new(), ToString::to_string);
        for error in &file.errors {
            if file.kept {
                tracing::error!(%error, %tunnel, "included file is broken; its tunnel keeps the last good version");
            } else {
                tracing::error!(%error, %tunnel, "included file is broken; it is left out");
            }
        }
    }
}

/// Writes iproute2's name for wgd's route protocol, so that `ip route`
/// says `proto wgd`, when no such file is there yet.
fn name_our_protocol() {
    let (file, text) = bgp_bridge::RT_PROTOS_ENTRY;
    let folder = Path::new("/etc/iproute2/rt_protos.d");
    let path = folder.join(file);
    if path.exists() {
        return;
    }
    match std::fs::create_dir_all(folder).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => tracing::info!(path = %path.display(), "named wgd's route protocol for iproute2"),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot name wgd's route protocol for iproute2; `ip route` shows proto 200")
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(path: &Path, down_on_exit: bool) -> Result<(), DaemonError> {
    let mut notifier = notify::Notifier::from_env();
    let config = config::load(path).map_err(DaemonError::Config)?;
    for notice in &config.notices {
        tracing::warn!(%notice, "config");
    }
    log_broken_includes(&config);
    // Checked before anything changes: a source address the config's
    // tunnels (or their hooks) will bring counts.
    routes::check_sources(&config, true).map_err(DaemonError::Config)?;
    // Before anything changes: the TCP API's TLS files and its port.
    let tcp_api = match &config.daemon.tcp_api {
        Some(settings) => Some(tcp_api::TcpApi::open(settings, path).await?),
        None => None,
    };
    let host = Host::open()?;
    // The bridge starts before the first reconcile: it adopts the routes a
    // previous run left in the kernel, and the AllowedIPs that go with them
    // must be in the first plan.
    let view = match host.observe(Some(&config), Depth::Tunnels).await {
        Ok(actual) => {
            let status = status::collect(
                &actual,
                Some(&config),
                config.daemon.peer_dead_after,
                SystemTime::now(),
            );
            routes::tunnel_view(
                &config,
                &actual,
                &status,
                &EventTracker::default(),
                &BTreeSet::new(),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the tunnels before starting the bridge");
            bgp_bridge::TunnelView::default()
        }
    };
    name_our_protocol();
    let settings = &config.daemon.bridge;
    let fib = bgp_bridge::fib::KernelFib::open(settings.table.id(), settings.kernel_metric)
        .map_err(DaemonError::Fib)?;
    let bridge = Bridge::start(
        routes::bridge_config(&config, host.state.path()),
        fib,
        view.clone(),
    )
    .await
    .map_err(DaemonError::Bridge)?;
    // zebra over FPM: the tunnel view names the interfaces of its routes.
    let fpm = match &config.daemon.fpm {
        Some(settings) => Some(
            bgp_bridge::fpm::Fpm::start(
                bgp_bridge::fpm::FpmConfig::new(
                    settings.listen,
                    settings.table.id(),
                    settings.hold_time,
                ),
                bridge.clone(),
                view.clone(),
            )
            .await
            .map_err(DaemonError::Fpm)?,
        ),
        None => None,
    };
    let speaker = match &config.daemon.bgp {
        Some(bgp) => Some({
            let mut speaker_config = routes::speaker_config(bgp);
            speaker_config.bfd_host = Some(bfd::host(&host, &config));
            // Routes adopted from a previous run: announce the restart.
            speaker_config.restarting = bridge
                .statistics()
                .await
                .map(|statistics| {
                    statistics
                        .owners
                        .iter()
                        .any(|owner| owner.owner.as_str() == "adopted" && owner.counts.routes > 0)
                })
                .unwrap_or(false);
            let kernel = bgp_bridge::fib::KernelFib::open(
                bgp_bridge::fib::MAIN_TABLE,
                settings.kernel_metric,
            )
            .map_err(DaemonError::Fib)?;
            bgp_bridge::bgp::speaker::Speaker::start(
                speaker_config,
                bridge.clone(),
                view.clone(),
                kernel,
            )
            .await
            .map_err(DaemonError::Bgp)?
        }),
        None => None,
    };
    // BFD: the speaker's sessions host the static routes' nexthops too;
    // without a speaker, a host of their own.
    let (bfd, bfd_view) = match &speaker {
        Some(speaker) => (speaker.bfd_handle(), None),
        None => {
            let (sender, receiver) = watch::channel(view.clone());
            let bfd = bgp_bridge::bgp::bfd::Bfd::start(
                Vec::new(),
                receiver,
                Box::new(|_, _| {}),
                Some(bfd::host(&host, &config)),
            );
            (bfd, Some(sender))
        }
    };
    let bfd_requests = bgp_bridge::service::BfdRequests::load(Some(
        routes::state_folder(host.state.path()).join("bfd-routes.json"),
    ));
    let mut bfd_failed = bfd.failed();
    let mut bfd_requested = bfd_requests.subscribe();
    let mut allowed = bridge.allowed_ips();
    let extras = allowed.borrow_and_update().clone();
    let (exits, mut exited) = mpsc::unbounded_channel();
    let mut daemon = Daemon {
        path: path.to_path_buf(),
        snapshot: Snapshot::default(),
        events: broadcast::channel(1024).0,
        tracker: EventTracker::default(),
        dead_after: watch::Sender::new(config.daemon.peer_dead_after),
        metrics: Metrics::default(),
        exits,
        children: BTreeMap::new(),
        stopped: BTreeSet::new(),
        retry: Backoff::default(),
        bridge,
        speaker,
        fpm,
        bfd,
        bfd_view,
        bfd_requests,
        view,
        extras,
        tunnel_events: broadcast::channel(1024).0,
        refused_reload: None,
        host,
        config,
    };

    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;

    let api_path = daemon.config.daemon.api.clone();
    let listener = api::bind(&api_path).map_err(|source| DaemonError::Api {
        path: api_path.display().to_string(),
        source,
    })?;
    let pointer = api_pointer(&daemon.host);
    if let Some(parent) = pointer.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&pointer, api_path.as_os_str().as_encoded_bytes());
    let netns_cookie = crate::state::namespace_cookie().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the network namespace cookie; `wgd status` will not trust the API");
        0
    });
    bfd::forward_changes(&daemon.bfd, daemon.events.clone());
    let service = api::TunnelApi {
        snapshot: daemon.snapshot.clone(),
        events: daemon.events.clone(),
        dead_after: daemon.dead_after.subscribe(),
        netns_cookie,
    };
    let health = health::Health::new().await;
    health.follow(daemon.bridge.clone());
    let services = api::Services {
        tunnels: service,
        routes: bgp_bridge::service::RouteApi {
            bridge: daemon.bridge.clone(),
            tunnel_events: daemon.tunnel_events.clone(),
            bfd_requests: Some(daemon.bfd_requests.clone()),
        },
        bgp: bgp_bridge::bgp::service::BgpApi {
            speaker: daemon.speaker.clone(),
            bfd: Some(daemon.bfd.clone()),
        },
        health: health.clone(),
    };
    if let Some(tcp_api) = tcp_api {
        let services = services.clone();
        tokio::spawn(async move {
            if let Err(error) = tcp_api.serve(services).await {
                tracing::error!(%error, "TCP API server stopped");
            }
        });
    }
    tokio::spawn(async move {
        if let Err(error) = api::serve(listener, services).await {
            tracing::error!(%error, "API server stopped");
        }
    });
    if let Some(address) = daemon.config.daemon.metrics {
        let mut registry = daemon.metrics.register(daemon.snapshot.clone());
        bgp_bridge::metrics::register(&mut registry, &daemon.bridge);
        if let Some(speaker) = &daemon.speaker {
            bgp_bridge::bgp::metrics::register(&mut registry, speaker);
        }
        bgp_bridge::bgp::metrics::register_bfd(&mut registry, &daemon.bfd);
        let registry = Arc::new(registry);
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(address, registry).await {
                tracing::error!(%address, %error, "metrics server stopped");
            }
        });
    }

    daemon.static_routes().await;
    daemon.reconcile("start").await;
    health.reconciled().await;
    // After the first reconcile: the tunnels its next hops resolve onto exist.
    gobgp::start(
        &daemon.config.daemon.gobgp,
        daemon.config.daemon.bridge.hold_time,
        &daemon.bridge,
    );
    tracing::info!(config = %daemon.path.display(), api = %api_path.display(), "wgd running");
    notifier.ready(&daemon.status_line());
    let mut reconcile_timer = tokio::time::interval(daemon.config.daemon.reconcile_interval);
    reconcile_timer.reset();
    let mut status_timer = tokio::time::interval(STATUS_INTERVAL);
    let mut watchdog_timer = notifier.watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                notifier.reloading();
                if daemon.reload() {
                    daemon.static_routes().await;
                    reconcile_timer = tokio::time::interval(daemon.config.daemon.reconcile_interval);
                    reconcile_timer.reset();
                    daemon.reconcile("reload").await;
                }
                notifier.ready(&daemon.status_line());
            }
            _ = async {
                match watchdog_timer.as_mut() {
                    Some(timer) => timer.tick().await,
                    None => std::future::pending().await,
                }
            } => notifier.watchdog(),
            _ = reconcile_timer.tick() => {
                daemon.refresh_endpoints().await;
                daemon.reconcile("periodic").await;
            }
            Some(exit) = exited.recv() => daemon.child_exited(exit).await,
            Ok(()) = bfd_failed.changed() => {
                bfd_failed.borrow_and_update();
                daemon.bfd_changed();
            }
            Ok(()) = bfd_requested.changed() => {
                bfd_requested.borrow_and_update();
                daemon
                    .bfd
                    .set_nexthops(static_routes::bfd_nexthops(&daemon.config, &daemon.bfd_requests));
            }
            Ok(()) = allowed.changed() => {
                daemon.extras = allowed.borrow_and_update().clone();
                daemon.reconcile("routes on multi-peer tunnels").await;
            }
            _ = status_timer.tick() => {
                if daemon.refresh().await {
                    daemon.repair("tunnel missing").await;
                }
                if notifier.listening() {
                    notifier.status(&daemon.status_line());
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    notifier.stopping();
    let _ = std::fs::remove_file(&pointer);
    let _ = std::fs::remove_file(&api_path);
    if down_on_exit {
        // The tunnels go: so do their BFD sessions, AdminDown. Otherwise
        // the BFD process keeps them for the next `wgd run`, as the
        // tunnels and routes stay for it.
        tracing::info!("ending the BFD sessions and taking tunnels down before exit");
        daemon.bfd.shutdown().await;
        let source = daemon.config.source.clone();
        daemon.host.down(Some(&source), &[], false).await?;
    } else {
        tracing::info!("exiting; tunnels stay up");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Debian package ships the file `wgd run` would write.
    #[test]
    fn the_package_names_the_route_protocol_as_the_daemon_does() {
        let (file, text) = bgp_bridge::RT_PROTOS_ENTRY;
        assert_eq!(file, "wgd.conf");
        assert_eq!(include_str!("../../debian/rt_protos.conf"), text);
    }

    #[test]
    fn repairs_back_off_after_failures_and_reset_on_success() {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        assert!(backoff.allows(start));
        backoff.failed(start);
        assert!(!backoff.allows(start + Duration::from_millis(999)));
        assert!(backoff.allows(start + Duration::from_secs(1)));
        for _ in 0..10 {
            backoff.failed(start);
        }
        assert_eq!(backoff.delay, Backoff::MAX);
        assert!(!backoff.allows(start + Duration::from_secs(59)));
        backoff = Backoff::default();
        assert!(backoff.allows(start));
    }
}
