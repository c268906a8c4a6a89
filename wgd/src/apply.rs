//! Carries out a plan's actions on the host, in order, and keeps wgd's
//! records in step so that what was added can be undone exactly.
//!
//! The first failure stops the run: what was done before it stays done and
//! recorded, and the next reconcile plans the rest again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::actual::Backend;
use crate::config::{Config, InterfaceAddress, TunnelConfig};
use crate::plan::{Action, HookStage};
use crate::state::{StateDir, TunnelRecord};
use crate::system::{DeviceHandle, Netlink, device};

const SRC_VALID_MARK: &str = "/proc/sys/net/ipv4/conf/all/src_valid_mark";

/// Turns IPv6 on for a tunnel about to get an IPv6 address: a host with
/// `net.ipv6.conf.default.disable_ipv6 = 1` makes new interfaces without
/// it, and the kernel then refuses IPv6 addresses on them.
fn enable_ipv6(tunnel: &str) -> Result<(), ApplyError> {
    let path = format!("/proc/sys/net/ipv6/conf/{tunnel}/disable_ipv6");
    match std::fs::read_to_string(&path) {
        Ok(value) if value.trim() == "0" => Ok(()),
        Ok(_) => std::fs::write(&path, "0")
            .map_err(|error| fail(tunnel, format!("enable IPv6 ({path}): {error}"))),
        Err(error) => Err(fail(
            tunnel,
            format!("IPv6 is not available on this interface ({path}: {error})"),
        )),
    }
}

/// An action that failed, with the tunnel it was for.
#[derive(Debug, thiserror::Error)]
#[error("{tunnel}: {message}")]
pub struct ApplyError {
    pub tunnel: String,
    pub message: String,
}

fn fail(tunnel: &str, message: impl ToString) -> ApplyError {
    ApplyError {
        tunnel: tunnel.to_owned(),
        message: message.to_string(),
    }
}

/// What an `apply` did, and what failed.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub applied: Vec<Action>,
    pub errors: Vec<ApplyError>,
}

/// A wireguard-go started as a supervised child.
#[derive(Debug)]
pub struct StartedDevice {
    pub tunnel: String,
    pub child: tokio::process::Child,
}

/// Everything applying needs from around it.
#[derive(Debug)]
pub struct Applier<'a> {
    pub netlink: &'a Netlink,
    pub state: &'a StateDir,
    /// The config being applied (hooks, addresses, record metadata);
    /// `None` when only taking tunnels down.
    pub config: Option<&'a Config>,
    /// The userspace implementation, when one is needed.
    pub wireguard_go: Option<PathBuf>,
    /// Start wireguard-go as supervised children (`wgd run`) rather than detached.
    pub supervised: bool,
    /// Children started during `apply`, for the daemon to supervise.
    pub started: Vec<StartedDevice>,
}

/// Runs hook commands through `sh -c`, with `%i` replaced by the interface name.
pub fn run_hooks(tunnel: &str, stage: HookStage, commands: &[String]) -> Result<(), ApplyError> {
    for command in commands {
        let command = command.replace("%i", tunnel);
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .map_err(|error| fail(tunnel, format!("{stage} hook {command:?}: {error}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(
                tunnel,
                format!(
                    "{stage} hook {command:?} failed ({}): {}",
                    output.status,
                    stderr.trim()
                ),
            ));
        }
    }
    Ok(())
}

impl Applier<'_> {
    /// The addresses the config gives a tunnel (none when not in it).
    fn configured_addresses(&self, name: &str) -> Vec<InterfaceAddress> {
        self.tunnel_config(name)
            .map(|tunnel| tunnel.addresses.clone())
            .unwrap_or_default()
    }

    /// A new interface carries the addresses its config gives and none of
    /// the kernel's making: no IPv6 address generation (a TUN device would
    /// get a random `fe80::` address when it goes up), and, should one be
    /// there already, it goes (wgd just made this interface, and no hook
    /// has run on it yet).
    async fn only_configured_addresses(&self, tunnel: &str, index: u32) -> Result<(), ApplyError> {
        if let Err(error) = self.netlink.set_no_address_generation(index, tunnel).await {
            // IPv6 may be off on the whole host; nothing to generate then.
            tracing::warn!(tunnel, %error, "cannot turn off IPv6 address generation");
            return Ok(());
        }
        // Its hooks may add IPv6 addresses too (`PostUp = ip addr add dev
        // %i fe80::1/64`): IPv6 goes on before they run.
        let ipv6 = self
            .tunnel_config(tunnel)
            .is_some_and(|config| config.known_addresses().any(|address| address.is_ipv6()));
        if ipv6 {
            enable_ipv6(tunnel)?;
        }
        let generated = match self.netlink.addresses(index).await {
            Ok(present) => present.kernel_made,
            Err(error) => {
                tracing::warn!(tunnel, %error, "cannot read the new interface's addresses");
                return Ok(());
            }
        };
        for address in &generated {
            match self.netlink.remove_address(index, tunnel, *address).await {
                Ok(()) => {
                    tracing::info!(tunnel, %address, "removed the kernel's link-local address")
                }
                Err(error) => {
                    tracing::warn!(tunnel, %address, %error, "cannot remove the kernel's link-local address")
                }
            }
        }
        Ok(())
    }

    fn tunnel_config(&self, name: &str) -> Option<&TunnelConfig> {
        self.config?
            .tunnels
            .iter()
            .find(|tunnel| tunnel.name.as_str() == name)
    }

    async fn index(&self, tunnel: &str) -> Result<u32, ApplyError> {
        match self.netlink.link(tunnel).await {
            Ok(Some(link)) => Ok(link.index),
            Ok(None) => Err(fail(tunnel, "interface disappeared")),
            Err(error) => Err(fail(tunnel, error)),
        }
    }

    fn save(&self, record: &TunnelRecord) -> Result<(), ApplyError> {
        self.state.save(record).map_err(|error| {
            fail(
                &record.name,
                format!("save state in {}: {error}", self.state.path().display()),
            )
        })
    }

    fn log_path(&self, tunnel: &str) -> PathBuf {
        self.state
            .path()
            .parent()
            .unwrap_or(Path::new("/run/wgd"))
            .join(format!("wireguard-go-{tunnel}.log"))
    }

    async fn wait_gone(&self, tunnel: &str) -> Result<(), ApplyError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .netlink
            .link(tunnel)
            .await
            .map_err(|error| fail(tunnel, error))?
            .is_some()
        {
            if Instant::now() > deadline {
                return Err(fail(
                    tunnel,
                    "interface still present 10 s after deleting it",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Applies `actions` in order; `records` are wgd's records as observed.
    /// A failure stops that tunnel's remaining actions, not the others'.
    pub async fn apply(
        &mut self,
        actions: &[Action],
        mut records: BTreeMap<String, TunnelRecord>,
    ) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut deleted = BTreeSet::new();
        let mut failed = BTreeSet::new();
        for action in actions {
            let tunnel = action.tunnel();
            if failed.contains(tunnel) {
                continue;
            }
            let line = action.to_string().replace('\n', ";");
            tracing::info!(tunnel, action = %line, "apply");
            match self.apply_one(action, &mut records, &mut deleted).await {
                Ok(()) => report.applied.push(action.clone()),
                Err(error) => {
                    tracing::error!(tunnel, %error, "apply failed; skipping the rest of this tunnel");
                    failed.insert(tunnel.to_owned());
                    report.errors.push(error);
                }
            }
        }
        for tunnel in deleted {
            records.remove(&tunnel);
            if let Err(error) = self.state.remove(&tunnel) {
                report
                    .errors
                    .push(fail(&tunnel, format!("remove state record: {error}")));
            }
        }
        // Records follow the config for what it may change without an
        // action: the down hooks, and the endpoints now applied.
        if let Some(config) = self.config {
            for tunnel in &config.tunnels {
                if failed.contains(tunnel.name.as_str()) {
                    continue;
                }
                let Some(record) = records.get_mut(tunnel.name.as_str()) else {
                    continue;
                };
                let endpoints: BTreeMap<String, std::net::SocketAddr> = tunnel
                    .peers
                    .iter()
                    .filter_map(|peer| {
                        Some((peer.public_key.to_base64(), peer.endpoint.as_ref()?.address))
                    })
                    .collect();
                if record.pre_down != tunnel.hooks.pre_down
                    || record.post_down != tunnel.hooks.post_down
                    || record.endpoints != endpoints
                    || record.addresses.is_none()
                {
                    record.pre_down = tunnel.hooks.pre_down.clone();
                    record.post_down = tunnel.hooks.post_down.clone();
                    record.endpoints = endpoints;
                    // A record from before addresses were kept: the
                    // config's count as wgd's (see `made_addresses`).
                    record
                        .addresses
                        .get_or_insert_with(|| tunnel.addresses.clone());
                    if let Err(error) = self.save(record) {
                        report.errors.push(error);
                    }
                }
            }
        }
        report
    }

    async fn apply_one(
        &mut self,
        action: &Action,
        records: &mut BTreeMap<String, TunnelRecord>,
        deleted: &mut BTreeSet<String>,
    ) -> Result<(), ApplyError> {
        let tunnel = action.tunnel();
        let backend = |records: &BTreeMap<String, TunnelRecord>| {
            records
                .get(tunnel)
                .map(|record| record.backend)
                .ok_or_else(|| fail(tunnel, "no record of this tunnel"))
        };
        match action {
            Action::RunHooks {
                stage, commands, ..
            } => run_hooks(tunnel, *stage, commands)?,
            Action::CreateLink { backend, .. } => {
                // The record goes first: if the process dies half-way, wgd
                // still knows the interface is its own.
                let source = self
                    .config
                    .map(|config| config.source.clone())
                    .unwrap_or_default();
                let record = records
                    .entry(tunnel.to_owned())
                    .or_insert_with(|| TunnelRecord::new(tunnel, source.clone(), *backend));
                record.backend = *backend;
                record.source = source;
                record.ifindex = 0;
                record.routes.clear();
                record.addresses = Some(vec![]);
                if let Some(config) = self.tunnel_config(tunnel) {
                    record.pre_down = config.hooks.pre_down.clone();
                    record.post_down = config.hooks.post_down.clone();
                }
                let record = record.clone();
                self.save(&record)?;
                deleted.remove(tunnel);
                match backend {
                    Backend::Kernel => self
                        .netlink
                        .create_wireguard(tunnel)
                        .await
                        .map_err(|error| fail(tunnel, error))?,
                    Backend::Userspace => {
                        let program = self
                            .wireguard_go
                            .clone()
                            .ok_or_else(|| fail(tunnel, device::DeviceError::NoUserspace))?;
                        let log = self.log_path(tunnel);
                        let child =
                            device::start_userspace(&program, tunnel, self.supervised, &log)
                                .await
                                .map_err(|error| fail(tunnel, error))?;
                        if let Some(child) = child {
                            self.started.push(StartedDevice {
                                tunnel: tunnel.to_owned(),
                                child,
                            });
                        }
                    }
                }
                let index = self.index(tunnel).await?;
                if let Some(record) = records.get_mut(tunnel) {
                    record.ifindex = index;
                    let record = record.clone();
                    self.save(&record)?;
                }
                self.only_configured_addresses(tunnel, index).await?;
            }
            Action::DeleteLink { .. } => {
                if let Some(link) = self
                    .netlink
                    .link(tunnel)
                    .await
                    .map_err(|error| fail(tunnel, error))?
                {
                    device::stop_userspace(tunnel);
                    self.netlink
                        .delete_link(link.index, tunnel)
                        .await
                        .map_err(|error| fail(tunnel, error))?;
                    self.wait_gone(tunnel).await?;
                }
                if let Some(record) = records.get_mut(tunnel) {
                    record.routes.clear();
                }
                deleted.insert(tunnel.to_owned());
            }
            Action::Forget { .. } => {
                deleted.insert(tunnel.to_owned());
            }
            Action::TakeOver { .. } => {
                let source = self
                    .config
                    .map(|config| config.source.clone())
                    .ok_or_else(|| fail(tunnel, "no config to take the tunnel over"))?;
                let record = records
                    .get_mut(tunnel)
                    .ok_or_else(|| fail(tunnel, "no record of this tunnel"))?;
                record.source = source;
                let record = record.clone();
                self.save(&record)?;
            }
            Action::StopAddressGeneration { generated, .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .set_no_address_generation(index, tunnel)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                for address in generated {
                    self.netlink
                        .remove_address(index, tunnel, *address)
                        .await
                        .map_err(|error| fail(tunnel, error))?;
                }
            }
            Action::SetMtu { mtu, .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .set_mtu(index, tunnel, *mtu)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
            }
            Action::AddAddress { address, .. } => {
                let index = self.index(tunnel).await?;
                if address.is_ipv6() {
                    enable_ipv6(tunnel)?;
                }
                self.netlink
                    .add_address(index, tunnel, *address)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                let configured = self.configured_addresses(tunnel);
                let record = records
                    .get_mut(tunnel)
                    .ok_or_else(|| fail(tunnel, "no record of this tunnel"))?;
                let made = record.addresses.get_or_insert(configured);
                if !made.contains(address) {
                    made.push(*address);
                }
                let record = record.clone();
                self.save(&record)?;
            }
            Action::RemoveAddress { address, .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .remove_address(index, tunnel, *address)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                let configured = self.configured_addresses(tunnel);
                if let Some(record) = records.get_mut(tunnel) {
                    record
                        .addresses
                        .get_or_insert(configured)
                        .retain(|kept| kept != address);
                    let record = record.clone();
                    self.save(&record)?;
                }
            }
            Action::WriteDevice {
                private_key,
                listen_port,
                fwmark,
                peers,
                ..
            } => {
                let mtu = self.tunnel_config(tunnel).and_then(|config| config.mtu);
                DeviceHandle::new(tunnel, backend(records)?)
                    .write(private_key, *listen_port, *fwmark, peers, mtu)
                    .map_err(|error| fail(tunnel, error))?;
            }
            Action::SetInterface {
                private_key,
                listen_port,
                fwmark,
                ..
            } => {
                let handle = DeviceHandle::new(tunnel, backend(records)?);
                match handle.backend {
                    Backend::Userspace => handle.set_interface(private_key, *listen_port, *fwmark),
                    // The kernel path writes the device whole (see DeviceHandle::write).
                    Backend::Kernel => {
                        let config = self
                            .tunnel_config(tunnel)
                            .ok_or_else(|| fail(tunnel, "not in the config"))?;
                        handle.write(
                            private_key,
                            *listen_port,
                            *fwmark,
                            &config.peers,
                            config.mtu,
                        )
                    }
                }
                .map_err(|error| fail(tunnel, error))?
            }
            Action::SetPeer { peer, .. } => DeviceHandle::new(tunnel, backend(records)?)
                .set_peer(peer)
                .map_err(|error| fail(tunnel, error))?,
            Action::RemovePeer { public_key, .. } => DeviceHandle::new(tunnel, backend(records)?)
                .remove_peer(public_key)
                .map_err(|error| fail(tunnel, error))?,
            Action::SetLinkUp { .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .set_up(index, tunnel)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
            }
            Action::AddRoute { route, .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .add_route(index, tunnel, *route)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                let record = records
                    .get_mut(tunnel)
                    .ok_or_else(|| fail(tunnel, "no record of this tunnel"))?;
                if !record.routes.contains(route) {
                    record.routes.push(*route);
                }
                let record = record.clone();
                self.save(&record)?;
            }
            Action::RemoveRoute { route, .. } => {
                let index = self.index(tunnel).await?;
                self.netlink
                    .remove_route(index, tunnel, *route)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                if let Some(record) = records.get_mut(tunnel) {
                    record.routes.retain(|kept| kept != route);
                    let record = record.clone();
                    self.save(&record)?;
                }
            }
            Action::AddRule { rule, .. } => {
                self.netlink
                    .add_rule(*rule)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                let record = records
                    .get_mut(tunnel)
                    .ok_or_else(|| fail(tunnel, "no record of this tunnel"))?;
                if !record.rules.contains(rule) {
                    record.rules.push(*rule);
                }
                let record = record.clone();
                self.save(&record)?;
            }
            Action::RemoveRule { rule, .. } => {
                self.netlink
                    .remove_rule(*rule)
                    .await
                    .map_err(|error| fail(tunnel, error))?;
                if let Some(record) = records.get_mut(tunnel) {
                    record.rules.retain(|kept| kept != rule);
                    let record = record.clone();
                    self.save(&record)?;
                }
            }
            Action::EnableSrcValidMark { .. } => {
                let before = std::fs::read_to_string(SRC_VALID_MARK)
                    .map_err(|error| fail(tunnel, format!("read {SRC_VALID_MARK}: {error}")))?;
                std::fs::write(SRC_VALID_MARK, "1")
                    .map_err(|error| fail(tunnel, format!("write {SRC_VALID_MARK}: {error}")))?;
                if let Some(record) = records.get_mut(tunnel) {
                    record.src_valid_mark_before = Some(before.trim().to_owned());
                    let record = record.clone();
                    self.save(&record)?;
                }
            }
            Action::RestoreSrcValidMark { value, .. } => {
                std::fs::write(SRC_VALID_MARK, value)
                    .map_err(|error| fail(tunnel, format!("write {SRC_VALID_MARK}: {error}")))?;
                if let Some(record) = records.get_mut(tunnel) {
                    record.src_valid_mark_before = None;
                    let record = record.clone();
                    self.save(&record)?;
                }
            }
        }
        Ok(())
    }
}
