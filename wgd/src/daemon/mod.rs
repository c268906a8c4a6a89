//! `wgd run`: the daemon. It reconciles at start, on SIGHUP, periodically
//! and whenever a tunnel's device goes away (a supervised wireguard-go
//! exiting, or any tunnel vanishing); it polls the devices for status,
//! turns changes into events, and serves them over gRPC and as metrics.
//!
//! On SIGTERM or SIGINT it exits and leaves the tunnels up (routing
//! protocols keep their adjacencies across a restart), unless asked to take
//! them down.

pub mod api;
pub mod events;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{RwLock, broadcast, mpsc};

use crate::apply::StartedDevice;
use crate::config::{self, Config};
use crate::reconcile::Host;
use crate::status::{self, Status};
use crate::system::Depth;
use events::EventTracker;
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
}

struct Daemon {
    path: PathBuf,
    config: Config,
    host: Host,
    snapshot: Arc<RwLock<Status>>,
    events: broadcast::Sender<events::Event>,
    tracker: EventTracker,
    metrics: Arc<Metrics>,
    exits: mpsc::UnboundedSender<(String, String)>,
    retry: Backoff,
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
    fn supervise(&self, started: Vec<StartedDevice>) {
        for StartedDevice { tunnel, mut child } in started {
            let exits = self.exits.clone();
            tokio::spawn(async move {
                let status = match child.wait().await {
                    Ok(status) => status.to_string(),
                    Err(error) => error.to_string(),
                };
                let _ = exits.send((tunnel, status));
            });
        }
    }

    async fn reconcile(&mut self, why: &str) {
        self.metrics.reconciles.inc();
        match self.host.reconcile(&self.config, false, true).await {
            Ok(outcome) => {
                if !outcome.actions.is_empty() {
                    tracing::info!(why, changes = outcome.actions.len(), "reconciled");
                }
                self.supervise(outcome.started);
                self.retry = Backoff::default();
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

    /// Re-reads the config; a bad one is reported and the old one kept.
    fn reload(&mut self) -> bool {
        match config::load(&self.path) {
            Ok(config) => {
                for notice in &config.notices {
                    tracing::warn!(%notice, "config");
                }
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
            tracing::info!(tunnel = %event.tunnel, event = ?event.kind, "event");
            let _ = self.events.send(event);
        }
        self.metrics.observe(&status);
        let missing = self
            .config
            .tunnels
            .iter()
            .any(|tunnel| !actual.links.contains_key(tunnel.name.as_str()));
        *self.snapshot.write().await = status;
        missing
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(path: &Path, down_on_exit: bool) -> Result<(), DaemonError> {
    let config = config::load(path).map_err(DaemonError::Config)?;
    for notice in &config.notices {
        tracing::warn!(%notice, "config");
    }
    let host = Host::open()?;
    let (exits, mut exited) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::default());
    let mut daemon = Daemon {
        path: path.to_path_buf(),
        snapshot: Arc::new(RwLock::new(Status { tunnels: vec![] })),
        events: broadcast::channel(1024).0,
        tracker: EventTracker::default(),
        metrics: metrics.clone(),
        exits,
        retry: Backoff::default(),
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
    let service = api::TunnelApi {
        snapshot: daemon.snapshot.clone(),
        events: daemon.events.clone(),
    };
    tokio::spawn(async move {
        if let Err(error) = api::serve(listener, service).await {
            tracing::error!(%error, "API server stopped");
        }
    });
    if let Some(address) = daemon.config.daemon.metrics {
        let registry = Arc::new(metrics.register());
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(address, registry).await {
                tracing::error!(%address, %error, "metrics server stopped");
            }
        });
    }

    daemon.reconcile("start").await;
    tracing::info!(config = %daemon.path.display(), api = %api_path.display(), "wgd running");
    let mut reconcile_timer = tokio::time::interval(daemon.config.daemon.reconcile_interval);
    reconcile_timer.reset();
    let mut status_timer = tokio::time::interval(STATUS_INTERVAL);
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                if daemon.reload() {
                    reconcile_timer = tokio::time::interval(daemon.config.daemon.reconcile_interval);
                    reconcile_timer.reset();
                    daemon.reconcile("reload").await;
                }
            }
            _ = reconcile_timer.tick() => daemon.reconcile("periodic").await,
            Some((tunnel, status)) = exited.recv() => {
                tracing::warn!(%tunnel, %status, "wireguard-go exited; restarting it");
                daemon.metrics.userspace_restarts.inc();
                daemon.repair("device exited").await;
            }
            _ = status_timer.tick() => {
                if daemon.refresh().await {
                    daemon.repair("tunnel missing").await;
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    let _ = std::fs::remove_file(&pointer);
    let _ = std::fs::remove_file(&api_path);
    if down_on_exit {
        tracing::info!("taking tunnels down before exit");
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
