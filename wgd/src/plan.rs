//! The planner: desired state (a `Config`) against actual state (an
//! `ActualState`) gives the list of actions that makes the host match.
//!
//! Pure: no I/O, no clock. `wgd up --dry-run` prints the actions; `apply`
//! carries them out. The rules it keeps:
//! - an interface wgd did not create is never touched (a conflict is an
//!   error for the whole plan, so nothing is half-applied);
//! - a live tunnel is changed peer by peer, so other peers keep their
//!   sessions; only a new private key, listen port or fwmark rewrites the
//!   whole device;
//! - routes and rules are removed only when wgd's record says it added them;
//! - a tunnel recorded for this config file but gone from it is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use ipnet::IpNet;

use crate::actual::{ActualState, Backend, Link, Route, Rule};
use crate::config::{Config, PeerConfig, RouteTable, RoutesMode, TunnelConfig};
use crate::keys::{PrivateKey, PublicKey};
use crate::state::TunnelRecord;

/// wg-quick's first table (and fwmark) for a default route.
pub const FULL_TUNNEL_FIRST_TABLE: u32 = 51820;

/// When a hook runs, as in wg-quick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    PreUp,
    PostUp,
    PreDown,
    PostDown,
}

impl fmt::Display for HookStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookStage::PreUp => "PreUp",
            HookStage::PostUp => "PostUp",
            HookStage::PreDown => "PreDown",
            HookStage::PostDown => "PostDown",
        })
    }
}

/// One change to the host.
#[derive(Debug, Clone)]
pub enum Action {
    RunHooks { tunnel: String, stage: HookStage, commands: Vec<String> },
    CreateLink { tunnel: String, backend: Backend },
    DeleteLink { tunnel: String },
    /// The record says wgd made this tunnel, but its interface is gone.
    Forget { tunnel: String },
    SetMtu { tunnel: String, mtu: u32 },
    AddAddress { tunnel: String, address: IpNet },
    RemoveAddress { tunnel: String, address: IpNet },
    /// Writes the whole device: key, port, fwmark and every peer.
    WriteDevice {
        tunnel: String,
        private_key: PrivateKey,
        listen_port: Option<u16>,
        fwmark: Option<u32>,
        peers: Vec<PeerConfig>,
    },
    /// Adds a peer or updates one in place (its session is kept).
    SetPeer { tunnel: String, peer: PeerConfig, changes: Vec<&'static str> },
    RemovePeer { tunnel: String, public_key: PublicKey },
    SetLinkUp { tunnel: String },
    AddRoute { tunnel: String, route: Route },
    RemoveRoute { tunnel: String, route: Route },
    AddRule { tunnel: String, rule: Rule },
    RemoveRule { tunnel: String, rule: Rule },
    /// `sysctl net.ipv4.conf.all.src_valid_mark=1`, as wg-quick does for a
    /// v4 default route (the previous value is recorded and put back).
    EnableSrcValidMark { tunnel: String },
    RestoreSrcValidMark { tunnel: String, value: String },
}

impl Action {
    pub fn tunnel(&self) -> &str {
        match self {
            Action::RunHooks { tunnel, .. }
            | Action::CreateLink { tunnel, .. }
            | Action::DeleteLink { tunnel }
            | Action::Forget { tunnel }
            | Action::SetMtu { tunnel, .. }
            | Action::AddAddress { tunnel, .. }
            | Action::RemoveAddress { tunnel, .. }
            | Action::WriteDevice { tunnel, .. }
            | Action::SetPeer { tunnel, .. }
            | Action::RemovePeer { tunnel, .. }
            | Action::SetLinkUp { tunnel }
            | Action::AddRoute { tunnel, .. }
            | Action::RemoveRoute { tunnel, .. }
            | Action::AddRule { tunnel, .. }
            | Action::RemoveRule { tunnel, .. }
            | Action::EnableSrcValidMark { tunnel }
            | Action::RestoreSrcValidMark { tunnel, .. } => tunnel,
        }
    }
}

fn describe_peer(peer: &PeerConfig) -> String {
    let mut text = format!("peer {}", peer.public_key);
    if let Some(name) = &peer.name {
        text.push_str(&format!(" ({name})"));
    }
    if let Some(endpoint) = &peer.endpoint {
        text.push_str(&format!(" endpoint {}", endpoint.address));
    }
    let allowed: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
    text.push_str(&format!(" allowed-ips {}", if allowed.is_empty() { "(none)".into() } else { allowed.join(",") }));
    if let Some(seconds) = peer.persistent_keepalive {
        text.push_str(&format!(" persistent-keepalive {seconds}"));
    }
    if peer.preshared_key.is_some() {
        text.push_str(" preshared-key (hidden)");
    }
    text
}

fn table_name(table: u32) -> String {
    if table == RouteTable::Main.id() { "main".into() } else { table.to_string() }
}

/// Each action reads like the command it replaces; keys show as `(hidden)`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RunHooks { tunnel, stage, commands } => {
                write!(f, "{tunnel}: run {stage}: {}", commands.join(" ; "))
            }
            Action::CreateLink { tunnel, backend } => {
                write!(f, "{tunnel}: create interface ({} backend)", backend.as_str())
            }
            Action::DeleteLink { tunnel } => write!(f, "{tunnel}: delete interface"),
            Action::Forget { tunnel } => write!(f, "{tunnel}: forget record (interface already gone)"),
            Action::SetMtu { tunnel, mtu } => write!(f, "{tunnel}: set mtu {mtu}"),
            Action::AddAddress { tunnel, address } => write!(f, "{tunnel}: add address {address}"),
            Action::RemoveAddress { tunnel, address } => write!(f, "{tunnel}: remove address {address}"),
            Action::WriteDevice { tunnel, private_key, listen_port, fwmark, peers } => {
                write!(f, "{tunnel}: configure device public-key {} private-key (hidden)", private_key.public_key())?;
                match listen_port {
                    Some(port) => write!(f, " listen-port {port}")?,
                    None => write!(f, " listen-port (any)")?,
                }
                if let Some(mark) = fwmark {
                    write!(f, " fwmark {mark}")?;
                }
                for peer in peers {
                    write!(f, "\n{tunnel}:   with {}", describe_peer(peer))?;
                }
                Ok(())
            }
            Action::SetPeer { tunnel, peer, changes } => {
                if changes.is_empty() {
                    write!(f, "{tunnel}: add {}", describe_peer(peer))
                } else {
                    write!(f, "{tunnel}: update {} (changed: {})", describe_peer(peer), changes.join(", "))
                }
            }
            Action::RemovePeer { tunnel, public_key } => write!(f, "{tunnel}: remove peer {public_key}"),
            Action::SetLinkUp { tunnel } => write!(f, "{tunnel}: set link up"),
            Action::AddRoute { tunnel, route } => {
                write!(f, "{tunnel}: add route {} dev {tunnel} table {}", route.prefix, table_name(route.table))
            }
            Action::RemoveRoute { tunnel, route } => {
                write!(f, "{tunnel}: remove route {} dev {tunnel} table {}", route.prefix, table_name(route.table))
            }
            Action::AddRule { tunnel, rule } => write!(f, "{tunnel}: add rule: {rule}"),
            Action::RemoveRule { tunnel, rule } => write!(f, "{tunnel}: remove rule: {rule}"),
            Action::EnableSrcValidMark { tunnel } => {
                write!(f, "{tunnel}: sysctl net.ipv4.conf.all.src_valid_mark=1")
            }
            Action::RestoreSrcValidMark { tunnel, value } => {
                write!(f, "{tunnel}: sysctl net.ipv4.conf.all.src_valid_mark={value} (as before)")
            }
        }
    }
}

/// Why a plan could not be made. Nothing is applied when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("interface {0} exists and was not created by wgd; refusing to touch it (rename the tunnel or delete the interface)")]
    NotOurs(String),
    #[error("tunnel {name} belongs to {owner}; take it down there first (wgd down {name})")]
    OtherSource { name: String, owner: String },
    #[error("interface {0} exists but is not a WireGuard interface wgd can manage")]
    NotWireguard(String),
}

/// Routes, rules and fwmark a tunnel's routes mode asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingIntent {
    pub routes: BTreeSet<Route>,
    pub rules: Vec<Rule>,
    pub fwmark: Option<u32>,
    pub src_valid_mark: bool,
}

fn is_default(prefix: &IpNet) -> bool {
    prefix.prefix_len() == 0
}

/// What a tunnel's `routes` mode means for the kernel. `record` and
/// `used_tables` let full-tunnel mode keep its table across reconciles and
/// pick a free one the first time, as wg-quick does.
pub fn routing_intent(tunnel: &TunnelConfig, record: Option<&TunnelRecord>, used_tables: &[u32]) -> RoutingIntent {
    let allowed: BTreeSet<IpNet> = tunnel.peers.iter().flat_map(|peer| peer.allowed_ips.iter().copied()).collect();
    let mut intent = RoutingIntent { fwmark: tunnel.fwmark, ..Default::default() };
    match tunnel.routes {
        RoutesMode::None => {}
        RoutesMode::AllowedIps { table } => {
            for prefix in &allowed {
                // A /0 in main is wg-quick's hijack; in a table of its own it is harmless.
                if table == RouteTable::Main && is_default(prefix) {
                    continue;
                }
                intent.routes.insert(Route { prefix: *prefix, table: table.id() });
            }
        }
        RoutesMode::FullTunnel => {
            let recorded = record.and_then(|record| {
                record.rules.iter().find_map(|rule| match rule {
                    Rule::NotFwmarkLookup { table, .. } => Some(*table),
                    Rule::MainSuppressDefault { .. } => None,
                })
            });
            let table = tunnel.fwmark.or(recorded).unwrap_or_else(|| {
                (FULL_TUNNEL_FIRST_TABLE..).find(|table| !used_tables.contains(table)).unwrap_or(FULL_TUNNEL_FIRST_TABLE)
            });
            intent.fwmark = Some(table);
            for prefix in &allowed {
                if is_default(prefix) {
                    let ipv6 = matches!(prefix, IpNet::V6(_));
                    intent.routes.insert(Route { prefix: *prefix, table });
                    intent.rules.push(Rule::NotFwmarkLookup { ipv6, table });
                    intent.rules.push(Rule::MainSuppressDefault { ipv6 });
                    intent.src_valid_mark |= !ipv6;
                } else {
                    intent.routes.insert(Route { prefix: *prefix, table: RouteTable::Main.id() });
                }
            }
        }
    }
    intent
}

/// Plans the changes that make the host match `config`.
pub fn plan(config: &Config, actual: &ActualState, new_backend: Backend) -> Result<Vec<Action>, Vec<PlanError>> {
    let mut errors = Vec::new();
    for tunnel in &config.tunnels {
        let name = tunnel.name.as_str();
        match (actual.links.get(name), actual.records.get(name)) {
            (_, Some(record)) if record.source != config.source => errors.push(PlanError::OtherSource {
                name: name.into(),
                owner: record.source.display().to_string(),
            }),
            (Some(_), None) => errors.push(PlanError::NotOurs(name.into())),
            (Some(link), Some(_)) if link.backend.is_none() => {
                errors.push(PlanError::NotWireguard(name.into()))
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut actions = Vec::new();
    for tunnel in &config.tunnels {
        let name = tunnel.name.as_str();
        let record = actual.records.get(name);
        let intent = routing_intent(tunnel, record, &actual.used_tables);
        match actual.links.get(name) {
            // A userspace device whose process died leaves an unusable
            // interface behind: recreate it.
            Some(link) if link.device.is_none() => {
                actions.push(Action::DeleteLink { tunnel: name.into() });
                plan_create(tunnel, &intent, actual, record, new_backend, &mut actions);
            }
            Some(link) => plan_update(tunnel, &intent, link, actual, record, &mut actions),
            None => plan_create(tunnel, &intent, actual, record, new_backend, &mut actions),
        }
    }

    let wanted: BTreeSet<&str> = config.tunnels.iter().map(|tunnel| tunnel.name.as_str()).collect();
    for record in actual.records.values() {
        if record.source == config.source && !wanted.contains(record.name.as_str()) {
            plan_remove(record, actual, &mut actions);
        }
    }
    Ok(actions)
}

/// Plans taking down tunnels wgd created: by file (all its tunnels) or by name.
pub fn plan_down(source: Option<&Path>, names: &[String], actual: &ActualState) -> Vec<Action> {
    let mut actions = Vec::new();
    for record in actual.records.values() {
        let by_source = source.is_some_and(|source| record.source == source);
        if by_source || names.iter().any(|name| name == &record.name) {
            plan_remove(record, actual, &mut actions);
        }
    }
    actions
}

fn plan_create(
    tunnel: &TunnelConfig,
    intent: &RoutingIntent,
    actual: &ActualState,
    record: Option<&TunnelRecord>,
    backend: Backend,
    actions: &mut Vec<Action>,
) {
    let name = tunnel.name.to_string();
    if !tunnel.hooks.pre_up.is_empty() {
        actions.push(Action::RunHooks { tunnel: name.clone(), stage: HookStage::PreUp, commands: tunnel.hooks.pre_up.clone() });
    }
    actions.push(Action::CreateLink { tunnel: name.clone(), backend });
    if let Some(mtu) = tunnel.mtu {
        actions.push(Action::SetMtu { tunnel: name.clone(), mtu });
    }
    for address in &tunnel.addresses {
        actions.push(Action::AddAddress { tunnel: name.clone(), address: *address });
    }
    actions.push(Action::WriteDevice {
        tunnel: name.clone(),
        private_key: tunnel.private_key.clone(),
        listen_port: tunnel.listen_port,
        fwmark: intent.fwmark,
        peers: tunnel.peers.clone(),
    });
    actions.push(Action::SetLinkUp { tunnel: name.clone() });
    for route in &intent.routes {
        actions.push(Action::AddRoute { tunnel: name.clone(), route: *route });
    }
    plan_rules(&name, intent, actual, record, actions);
    if !tunnel.hooks.post_up.is_empty() {
        actions.push(Action::RunHooks { tunnel: name, stage: HookStage::PostUp, commands: tunnel.hooks.post_up.clone() });
    }
}

fn plan_rules(name: &str, intent: &RoutingIntent, actual: &ActualState, record: Option<&TunnelRecord>, actions: &mut Vec<Action>) {
    let recorded: &[Rule] = record.map(|record| record.rules.as_slice()).unwrap_or_default();
    for rule in recorded {
        if !intent.rules.contains(rule) && actual.rules.contains(rule) {
            actions.push(Action::RemoveRule { tunnel: name.into(), rule: *rule });
        }
    }
    for rule in &intent.rules {
        if !actual.rules.contains(rule) {
            actions.push(Action::AddRule { tunnel: name.into(), rule: *rule });
        }
    }
    let previous = record.and_then(|record| record.src_valid_mark_before.clone());
    match (intent.src_valid_mark, previous) {
        (true, None) => actions.push(Action::EnableSrcValidMark { tunnel: name.into() }),
        (false, Some(value)) => actions.push(Action::RestoreSrcValidMark { tunnel: name.into(), value }),
        _ => {}
    }
}

fn same_prefixes(left: &[IpNet], right: &[IpNet]) -> bool {
    let left: BTreeSet<&IpNet> = left.iter().collect();
    let right: BTreeSet<&IpNet> = right.iter().collect();
    left == right
}

fn plan_update(
    tunnel: &TunnelConfig,
    intent: &RoutingIntent,
    link: &Link,
    actual: &ActualState,
    record: Option<&TunnelRecord>,
    actions: &mut Vec<Action>,
) {
    let name = tunnel.name.to_string();
    let device = link.device.as_ref().expect("plan_update is called for readable devices");
    if let Some(mtu) = tunnel.mtu
        && mtu != link.mtu
    {
        actions.push(Action::SetMtu { tunnel: name.clone(), mtu });
    }
    for address in &link.addresses {
        let link_local = matches!(address, IpNet::V6(v6) if v6.addr().segments()[0] & 0xffc0 == 0xfe80);
        if !tunnel.addresses.contains(address) && !link_local {
            actions.push(Action::RemoveAddress { tunnel: name.clone(), address: *address });
        }
    }
    for address in &tunnel.addresses {
        if !link.addresses.contains(address) {
            actions.push(Action::AddAddress { tunnel: name.clone(), address: *address });
        }
    }

    let key_changed = device.public_key != Some(tunnel.private_key.public_key());
    let port_changed = tunnel.listen_port.is_some_and(|port| port != device.listen_port);
    let fwmark_changed = intent.fwmark.unwrap_or(0) != device.fwmark.unwrap_or(0);
    if key_changed || port_changed || fwmark_changed {
        actions.push(Action::WriteDevice {
            tunnel: name.clone(),
            private_key: tunnel.private_key.clone(),
            listen_port: tunnel.listen_port,
            fwmark: Some(intent.fwmark.unwrap_or(0)),
            peers: tunnel.peers.clone(),
        });
    } else {
        let current: BTreeMap<PublicKey, &crate::actual::Peer> =
            device.peers.iter().map(|peer| (peer.public_key, peer)).collect();
        for peer in &device.peers {
            if !tunnel.peers.iter().any(|wanted| wanted.public_key == peer.public_key) {
                actions.push(Action::RemovePeer { tunnel: name.clone(), public_key: peer.public_key });
            }
        }
        for wanted in &tunnel.peers {
            match current.get(&wanted.public_key) {
                None => actions.push(Action::SetPeer { tunnel: name.clone(), peer: wanted.clone(), changes: vec![] }),
                Some(have) => {
                    let mut changes = Vec::new();
                    if wanted.preshared_key.as_ref().map(|key| key.as_bytes())
                        != have.preshared_key.as_ref().map(|key| key.as_bytes())
                    {
                        changes.push("preshared-key");
                    }
                    // No endpoint in the config means "whatever the peer
                    // roams from": nothing to enforce.
                    if let Some(endpoint) = &wanted.endpoint
                        && have.endpoint != Some(endpoint.address)
                    {
                        changes.push("endpoint");
                    }
                    if wanted.persistent_keepalive.unwrap_or(0) != have.persistent_keepalive.unwrap_or(0) {
                        changes.push("persistent-keepalive");
                    }
                    if !same_prefixes(&wanted.allowed_ips, &have.allowed_ips) {
                        changes.push("allowed-ips");
                    }
                    if !changes.is_empty() {
                        actions.push(Action::SetPeer { tunnel: name.clone(), peer: wanted.clone(), changes });
                    }
                }
            }
        }
    }
    if !link.up {
        actions.push(Action::SetLinkUp { tunnel: name.clone() });
    }

    let recorded: BTreeSet<Route> = record.map(|record| record.routes.iter().copied().collect()).unwrap_or_default();
    for route in &link.routes {
        if recorded.contains(route) && !intent.routes.contains(route) {
            actions.push(Action::RemoveRoute { tunnel: name.clone(), route: *route });
        }
    }
    for route in &intent.routes {
        if !link.routes.contains(route) {
            actions.push(Action::AddRoute { tunnel: name.clone(), route: *route });
        }
    }
    plan_rules(&name, intent, actual, record, actions);
}

fn plan_remove(record: &TunnelRecord, actual: &ActualState, actions: &mut Vec<Action>) {
    let name = record.name.clone();
    let present = actual.links.contains_key(&name);
    if present && !record.pre_down.is_empty() {
        actions.push(Action::RunHooks { tunnel: name.clone(), stage: HookStage::PreDown, commands: record.pre_down.clone() });
    }
    for rule in &record.rules {
        if actual.rules.contains(rule) {
            actions.push(Action::RemoveRule { tunnel: name.clone(), rule: *rule });
        }
    }
    if let Some(value) = &record.src_valid_mark_before {
        actions.push(Action::RestoreSrcValidMark { tunnel: name.clone(), value: value.clone() });
    }
    if present {
        // Routes through the interface go with it.
        actions.push(Action::DeleteLink { tunnel: name.clone() });
        if !record.post_down.is_empty() {
            actions.push(Action::RunHooks { tunnel: name, stage: HookStage::PostDown, commands: record.post_down.clone() });
        }
    } else {
        actions.push(Action::Forget { tunnel: name });
    }
}
