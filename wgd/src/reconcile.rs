//! One reconcile: observe the host, plan against the config, apply. Shared
//! by `wgd up`, `wgd down` and the daemon's loop.

use std::path::{Path, PathBuf};

use crate::actual::{ActualState, Backend};
use crate::apply::{Applier, ApplyError, StartedDevice};
use crate::config::{BackendChoice, Config};
use crate::plan::{self, Action, PlanError};
use crate::state::StateDir;
use crate::system::{Depth, DeviceError, Netlink, ObserveError, device, observe};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot open netlink: {0}")]
    Netlink(std::io::Error),
    #[error("cannot find wgd's state folder: {0}")]
    StateDir(std::io::Error),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Plan(Vec<PlanError>),
    #[error(transparent)]
    Backend(#[from] DeviceError),
    #[error("the kernel has no WireGuard module, and backend = \"kernel\" was asked for")]
    NoKernelModule,
}

/// What a reconcile did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// Supervised wireguard-go children started on the way.
    pub started: Vec<StartedDevice>,
    /// What failed (each failure stopped only its own tunnel).
    pub errors: Vec<ApplyError>,
}

/// The host of this network namespace.
#[derive(Debug, Clone)]
pub struct Host {
    pub netlink: Netlink,
    pub state: StateDir,
}

impl Host {
    pub fn open() -> Result<Self, ReconcileError> {
        Ok(Self {
            netlink: Netlink::connect().map_err(ReconcileError::Netlink)?,
            state: StateDir::for_this_namespace().map_err(ReconcileError::StateDir)?,
        })
    }

    pub async fn observe(
        &self,
        config: Option<&Config>,
        depth: Depth,
    ) -> Result<ActualState, ReconcileError> {
        let records = self
            .state
            .load_all()
            .map_err(|source| ObserveError::State {
                dir: self.state.path().display().to_string(),
                source,
            })?;
        let names: Vec<String> = config
            .map(|config| {
                config
                    .tunnels
                    .iter()
                    .map(|tunnel| tunnel.name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(observe(&self.netlink, names, records, depth).await?)
    }

    /// The backend new tunnels get, and the userspace program if it is that
    /// one. `auto` takes the kernel when it can make a WireGuard interface:
    /// the module loads on demand, so unless it is loaded already, a probe
    /// interface is made and deleted (not on a dry run, which changes nothing).
    pub async fn backend_for_new(
        &self,
        config: &Config,
        dry_run: bool,
    ) -> Result<(Backend, Option<PathBuf>), ReconcileError> {
        let userspace = || -> Result<(Backend, Option<PathBuf>), ReconcileError> {
            Ok((
                Backend::Userspace,
                Some(device::find_wireguard_go(
                    config.daemon.wireguard_go.as_deref(),
                )?),
            ))
        };
        let kernel = device::kernel_module_loaded()
            || (!dry_run
                && config.daemon.backend != BackendChoice::Userspace
                && self.netlink.kernel_wireguard_works().await);
        match config.daemon.backend {
            BackendChoice::Kernel if kernel => Ok((Backend::Kernel, None)),
            BackendChoice::Kernel => Err(ReconcileError::NoKernelModule),
            BackendChoice::Userspace => userspace(),
            BackendChoice::Auto if kernel => Ok((Backend::Kernel, None)),
            BackendChoice::Auto => userspace(),
        }
    }

    /// Makes the host match `config` (or says how, when `dry_run`). Apply
    /// failures are in the outcome, with what was done before them.
    pub async fn reconcile(
        &self,
        config: &Config,
        dry_run: bool,
        supervised: bool,
    ) -> Result<Outcome, ReconcileError> {
        let actual = self.observe(Some(config), Depth::Full).await?;
        let (backend, wireguard_go) = match self.backend_for_new(config, dry_run).await {
            Ok(found) => found,
            // A dry run still shows the plan when the backend is missing.
            Err(_) if dry_run => (Backend::Userspace, None),
            Err(error) => return Err(error),
        };
        let actions = plan::plan(config, &actual, backend).map_err(ReconcileError::Plan)?;
        if dry_run || actions.is_empty() {
            return Ok(Outcome {
                actions,
                ..Outcome::default()
            });
        }
        let mut applier = Applier {
            netlink: &self.netlink,
            state: &self.state,
            config: Some(config),
            wireguard_go,
            supervised,
            started: vec![],
        };
        let report = applier.apply(&actions, actual.records).await;
        Ok(Outcome {
            actions: report.applied,
            started: applier.started,
            errors: report.errors,
        })
    }

    /// Takes down the tunnels of a config file, or tunnels by name.
    pub async fn down(
        &self,
        source: Option<&Path>,
        names: &[String],
        dry_run: bool,
    ) -> Result<Outcome, ReconcileError> {
        let actual = self.observe(None, Depth::Full).await?;
        let actions = plan::plan_down(source, names, &actual);
        if dry_run {
            return Ok(Outcome {
                actions,
                ..Outcome::default()
            });
        }
        let mut applier = Applier {
            netlink: &self.netlink,
            state: &self.state,
            config: None,
            wireguard_go: None,
            supervised: false,
            started: vec![],
        };
        let report = applier.apply(&actions, actual.records).await;
        Ok(Outcome {
            actions: report.applied,
            started: vec![],
            errors: report.errors,
        })
    }
}
