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
//! - addresses, routes and rules are removed only when wgd's record says
//!   it added them: what a hook or an operator added stays, and an
//!   address the config names that is there already is not added again;
//! - a tunnel recorded for this config file but gone from it is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use ipnet::IpNet;

use crate::actual::{ActualState, Backend, Link, Route, Rule};
use crate::config::{Config, InterfaceAddress, PeerConfig, RouteTable, RoutesMode, TunnelConfig};
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
    RunHooks {
        tunnel: String,
        stage: HookStage,
        commands: Vec<String>,
    },
    CreateLink {
        tunnel: String,
        backend: Backend,
    },
    DeleteLink {
        tunnel: String,
    },
    /// The record says wgd made this tunnel, but its interface is gone.
    Forget {
        tunnel: String,
    },
    /// The tunnel was made from `from`, a file the config includes: the
    /// config owns it from now on (it goes when the file does).
    TakeOver {
        tunnel: String,
        from: std::path::PathBuf,
    },
    SetMtu {
        tunnel: String,
        mtu: u32,
    },
    /// Turns off the kernel's IPv6 address generation on an interface wgd
    /// made before it did so at creation, and removes what the kernel
    /// generated.
    StopAddressGeneration {
        tunnel: String,
        generated: Vec<InterfaceAddress>,
    },
    AddAddress {
        tunnel: String,
        address: InterfaceAddress,
    },
    RemoveAddress {
        tunnel: String,
        address: InterfaceAddress,
    },
    /// Writes the whole device: key, port, fwmark and every peer.
    WriteDevice {
        tunnel: String,
        private_key: PrivateKey,
        listen_port: Option<u16>,
        fwmark: Option<u32>,
        peers: Vec<PeerConfig>,
    },
    /// Changes a live device's key, port or fwmark, leaving its peers be.
    SetInterface {
        tunnel: String,
        private_key: PrivateKey,
        listen_port: Option<u16>,
        fwmark: Option<u32>,
    },
    /// Adds a peer or updates one in place (its session is kept).
    SetPeer {
        tunnel: String,
        peer: PeerConfig,
        changes: Vec<&'static str>,
    },
    RemovePeer {
        tunnel: String,
        public_key: PublicKey,
    },
    SetLinkUp {
        tunnel: String,
    },
    AddRoute {
        tunnel: String,
        route: Route,
    },
    RemoveRoute {
        tunnel: String,
        route: Route,
    },
    AddRule {
        tunnel: String,
        rule: Rule,
    },
    RemoveRule {
        tunnel: String,
        rule: Rule,
    },
    /// `sysctl net.ipv4.conf.all.src_valid_mark=1`, as wg-quick does for a
    /// v4 default route (the previous value is recorded and put back).
    EnableSrcValidMark {
        tunnel: String,
    },
    RestoreSrcValidMark {
        tunnel: String,
        value: String,
    },
}

impl Action {
    pub fn tunnel(&self) -> &str {
        match self {
            Action::RunHooks { tunnel, .. }
            | Action::CreateLink { tunnel, .. }
            | Action::DeleteLink { tunnel }
            | Action::Forget { tunnel }
            | Action::TakeOver { tunnel, .. }
            | Action::SetMtu { tunnel, .. }
            | Action::StopAddressGeneration { tunnel, .. }
            | Action::AddAddress { tunnel, .. }
            | Action::RemoveAddress { tunnel, .. }
            | Action::WriteDevice { tunnel, .. }
            | Action::SetInterface { tunnel, .. }
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
    text.push_str(&format!(
        " allowed-ips {}",
        if allowed.is_empty() {
            "(none)".into()
        } else {
            allowed.join(",")
        }
    ));
    if let Some(seconds) = peer.persistent_keepalive {
        text.push_str(&format!(" persistent-keepalive {seconds}"));
    }
    if peer.preshared_key.is_some() {
        text.push_str(" preshared-key (hidden)");
    }
    text
}

/// Each action reads like the command it replaces; keys show as `(hidden)`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RunHooks {
                tunnel,
                stage,
                commands,
            } => {
                write!(f, "{tunnel}: run {stage}: {}", commands.join(" ; "))
            }
            Action::CreateLink { tunnel, backend } => {
                write!(
                    f,
                    "{tunnel}: create interface ({} backend)",
                    backend.as_str()
                )
            }
            Action::DeleteLink { tunnel } => write!(f, "{tunnel}: delete interface"),
            Action::Forget { tunnel } => {
                write!(f, "{tunnel}: forget record (interface already gone)")
            }
            Action::TakeOver { tunnel, from } => {
                write!(f, "{tunnel}: take over from {}", from.display())
            }
            Action::SetMtu { tunnel, mtu } => write!(f, "{tunnel}: set mtu {mtu}"),
            Action::StopAddressGeneration { tunnel, generated } => {
                write!(f, "{tunnel}: set addrgenmode none")?;
                for address in generated {
                    write!(f, ", remove the kernel's address {address}")?;
                }
                Ok(())
            }
            Action::AddAddress { tunnel, address } => write!(f, "{tunnel}: add address {address}"),
            Action::RemoveAddress { tunnel, address } => {
                write!(f, "{tunnel}: remove address {address}")
            }
            Action::WriteDevice {
                tunnel,
                private_key,
                listen_port,
                fwmark,
                peers,
            } => {
                write!(
                    f,
                    "{tunnel}: configure device public-key {} private-key (hidden)",
                    private_key.public_key()
                )?;
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
            Action::SetInterface {
                tunnel,
                private_key,
                listen_port,
                fwmark,
            } => {
                write!(
                    f,
                    "{tunnel}: set device public-key {} private-key (hidden)",
                    private_key.public_key()
                )?;
                if let Some(port) = listen_port {
                    write!(f, " listen-port {port}")?;
                }
                write!(f, " fwmark {}", fwmark.unwrap_or(0))
            }
            Action::SetPeer {
                tunnel,
                peer,
                changes,
            } => {
                if changes.is_empty() {
                    write!(f, "{tunnel}: add {}", describe_peer(peer))
                } else {
                    write!(
                        f,
                        "{tunnel}: update {} (changed: {})",
                        describe_peer(peer),
                        changes.join(", ")
                    )
                }
            }
            Action::RemovePeer { tunnel, public_key } => {
                write!(f, "{tunnel}: remove peer {public_key}")
            }
            Action::SetLinkUp { tunnel } => write!(f, "{tunnel}: set link up"),
            Action::AddRoute { tunnel, route } => {
                write!(
                    f,
                    "{tunnel}: add route {} dev {tunnel} table {}",
                    route.prefix,
                    route.table_name()
                )
            }
            Action::RemoveRoute { tunnel, route } => {
                write!(
                    f,
                    "{tunnel}: remove route {} dev {tunnel} table {}",
                    route.prefix,
                    route.table_name()
                )
            }
            Action::AddRule { tunnel, rule } => write!(f, "{tunnel}: add rule: {rule}"),
            Action::RemoveRule { tunnel, rule } => write!(f, "{tunnel}: remove rule: {rule}"),
            Action::EnableSrcValidMark { tunnel } => {
                write!(f, "{tunnel}: sysctl net.ipv4.conf.all.src_valid_mark=1")
            }
            Action::RestoreSrcValidMark { tunnel, value } => {
                write!(
                    f,
                    "{tunnel}: sysctl net.ipv4.conf.all.src_valid_mark={value} (as before)"
                )
            }
        }
    }
}

/// Why a plan could not be made. Nothing is applied when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "interface {0} exists and was not created by wgd; refusing to touch it (rename the tunnel or delete the interface)"
    )]
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
pub fn routing_intent(
    tunnel: &TunnelConfig,
    record: Option<&TunnelRecord>,
    used_tables: &[u32],
) -> RoutingIntent {
    let allowed: BTreeSet<IpNet> = tunnel
        .peers
        .iter()
        .flat_map(|peer| peer.allowed_ips.iter().copied())
        .collect();
    let mut intent = RoutingIntent {
        fwmark: tunnel.fwmark,
        ..Default::default()
    };
    match tunnel.routes {
        RoutesMode::None => {}
        RoutesMode::AllowedIps { table } => {
            for prefix in &allowed {
                // A /0 in main is wg-quick's hijack; in a table of its own it is harmless.
                if table == RouteTable::Main && is_default(prefix) {
                    continue;
                }
                intent.routes.insert(Route {
                    prefix: *prefix,
                    table: table.id(),
                });
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
                (FULL_TUNNEL_FIRST_TABLE..)
                    .find(|table| !used_tables.contains(table))
                    .unwrap_or(FULL_TUNNEL_FIRST_TABLE)
            });
            intent.fwmark = Some(table);
            for prefix in &allowed {
                if is_default(prefix) {
                    let ipv6 = matches!(prefix, IpNet::V6(_));
                    intent.routes.insert(Route {
                        prefix: *prefix,
                        table,
                    });
                    intent.rules.push(Rule::NotFwmarkLookup { ipv6, table });
                    intent.rules.push(Rule::MainSuppressDefault { ipv6 });
                    intent.src_valid_mark |= !ipv6;
                } else {
                    intent.routes.insert(Route {
                        prefix: *prefix,
                        table: RouteTable::Main.id(),
                    });
                }
            }
        }
    }
    intent
}

/// Plans the changes that make the host match `config`.
pub fn plan(
    config: &Config,
    actual: &ActualState,
    new_backend: Backend,
) -> Result<Vec<Action>, Vec<PlanError>> {
    let mut errors = Vec::new();
    for tunnel in &config.tunnels {
        let name = tunnel.name.as_str();
        match (actual.links.get(name), actual.records.get(name)) {
            // wgd's interface went and someone else made one of that name.
            (Some(link), Some(record)) if !record.owns(link) => {
                errors.push(PlanError::NotOurs(name.into()))
            }
            // A record without its interface is stale (the interface went,
            // or the namespace is new and reuses an old one's inode): the
            // name is free again.
            // A tunnel `wgd up x.conf` made is taken over by the config
            // that includes x.conf.
            (Some(_), Some(record))
                if record.source != config.source && !config.includes(&record.source) =>
            {
                errors.push(PlanError::OtherSource {
                    name: name.into(),
                    owner: record.source.display().to_string(),
                })
            }
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
    let mut used_tables = actual.used_tables.clone();
    for tunnel in &config.tunnels {
        let name = tunnel.name.as_str();
        let record = actual.records.get(name);
        let intent = routing_intent(tunnel, record, &used_tables);
        // Two full-tunnel tunnels planned together get tables of their own.
        used_tables.extend(intent.routes.iter().map(|route| route.table));
        if let Some(record) = record
            && actual.links.contains_key(name)
            && record.source != config.source
        {
            actions.push(Action::TakeOver {
                tunnel: name.into(),
                from: record.source.clone(),
            });
        }
        match actual.links.get(name) {
            // A userspace device whose process died leaves an unusable
            // interface behind: recreate it.
            Some(link) if link.device.is_none() => {
                actions.push(Action::DeleteLink {
                    tunnel: name.into(),
                });
                plan_create(tunnel, &intent, actual, record, new_backend, &mut actions);
            }
            Some(link) => plan_update(tunnel, &intent, link, actual, record, &mut actions),
            None => plan_create(tunnel, &intent, actual, record, new_backend, &mut actions),
        }
    }

    let wanted: BTreeSet<&str> = config
        .tunnels
        .iter()
        .map(|tunnel| tunnel.name.as_str())
        .collect();
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
        actions.push(Action::RunHooks {
            tunnel: name.clone(),
            stage: HookStage::PreUp,
            commands: tunnel.hooks.pre_up.clone(),
        });
    }
    actions.push(Action::CreateLink {
        tunnel: name.clone(),
        backend,
    });
    if let Some(mtu) = tunnel.mtu {
        actions.push(Action::SetMtu {
            tunnel: name.clone(),
            mtu,
        });
    }
    // The device first: on the kernel, writing it flushes the addresses.
    actions.push(Action::WriteDevice {
        tunnel: name.clone(),
        private_key: tunnel.private_key.clone(),
        listen_port: tunnel.listen_port,
        fwmark: intent.fwmark,
        peers: tunnel.peers.clone(),
    });
    for address in &tunnel.addresses {
        actions.push(Action::AddAddress {
            tunnel: name.clone(),
            address: *address,
        });
    }
    actions.push(Action::SetLinkUp {
        tunnel: name.clone(),
    });
    for route in &intent.routes {
        actions.push(Action::AddRoute {
            tunnel: name.clone(),
            route: *route,
        });
    }
    plan_rules(&name, intent, actual, record, actions);
    if !tunnel.hooks.post_up.is_empty() {
        actions.push(Action::RunHooks {
            tunnel: name,
            stage: HookStage::PostUp,
            commands: tunnel.hooks.post_up.clone(),
        });
    }
}

fn plan_rules(
    name: &str,
    intent: &RoutingIntent,
    actual: &ActualState,
    record: Option<&TunnelRecord>,
    actions: &mut Vec<Action>,
) {
    let recorded: &[Rule] = record
        .map(|record| record.rules.as_slice())
        .unwrap_or_default();
    for rule in recorded {
        if !intent.rules.contains(rule) && actual.rules.contains(rule) {
            actions.push(Action::RemoveRule {
                tunnel: name.into(),
                rule: *rule,
            });
        }
    }
    for rule in &intent.rules {
        if !actual.rules.contains(rule) {
            actions.push(Action::AddRule {
                tunnel: name.into(),
                rule: *rule,
            });
        }
    }
    let previous = record.and_then(|record| record.src_valid_mark_before.clone());
    match (intent.src_valid_mark, previous) {
        (true, None) => actions.push(Action::EnableSrcValidMark {
            tunnel: name.into(),
        }),
        (false, Some(value)) => actions.push(Action::RestoreSrcValidMark {
            tunnel: name.into(),
            value,
        }),
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
    let device = link
        .device
        .as_ref()
        .expect("plan_update is called for readable devices");
    if let Some(mtu) = tunnel.mtu
        && mtu != link.mtu
    {
        actions.push(Action::SetMtu {
            tunnel: name.clone(),
            mtu,
        });
    }
    let key_changed = device.public_key != Some(tunnel.private_key.public_key());
    let port_changed = tunnel
        .listen_port
        .is_some_and(|port| port != device.listen_port);
    let fwmark_changed = intent.fwmark.unwrap_or(0) != device.fwmark.unwrap_or(0);
    let interface_changed = key_changed || port_changed || fwmark_changed;
    if interface_changed {
        actions.push(Action::SetInterface {
            tunnel: name.clone(),
            private_key: tunnel.private_key.clone(),
            listen_port: tunnel.listen_port,
            fwmark: Some(intent.fwmark.unwrap_or(0)),
        });
    }
    // An interface made before wgd turned the kernel's address generation
    // off carries an address of the kernel's making: it goes.
    if !link.kernel_made.is_empty() {
        actions.push(Action::StopAddressGeneration {
            tunnel: name.clone(),
            generated: link.kernel_made.clone(),
        });
    }
    // Rewriting a kernel device flushes its addresses: the config's go
    // back (what hooks added is lost then, as with the routes below).
    let flushed = interface_changed && link.backend == Some(Backend::Kernel);
    let present: &[InterfaceAddress] = if flushed { &[] } else { &link.addresses };
    // Only what wgd added goes; a changed peer part is another address.
    let made = record.map_or(&[][..], |record| record.made_addresses(&tunnel.addresses));
    for address in present {
        if made.contains(address) && !tunnel.addresses.contains(address) {
            actions.push(Action::RemoveAddress {
                tunnel: name.clone(),
                address: *address,
            });
        }
    }
    for address in &tunnel.addresses {
        if !present.contains(address) {
            actions.push(Action::AddAddress {
                tunnel: name.clone(),
                address: *address,
            });
        }
    }
    let current: BTreeMap<PublicKey, &crate::actual::Peer> = device
        .peers
        .iter()
        .map(|peer| (peer.public_key, peer))
        .collect();
    for peer in &device.peers {
        if !tunnel
            .peers
            .iter()
            .any(|wanted| wanted.public_key == peer.public_key)
        {
            actions.push(Action::RemovePeer {
                tunnel: name.clone(),
                public_key: peer.public_key,
            });
        }
    }
    for wanted in &tunnel.peers {
        let Some(have) = current.get(&wanted.public_key) else {
            actions.push(Action::SetPeer {
                tunnel: name.clone(),
                peer: wanted.clone(),
                changes: vec![],
            });
            continue;
        };
        let mut changes = Vec::new();
        if wanted.preshared_key.as_ref().map(|key| key.as_bytes())
            != have.preshared_key.as_ref().map(|key| key.as_bytes())
        {
            changes.push("preshared-key");
        }
        // The device follows a peer that roams; only an endpoint the config
        // changed since it was last applied is enforced. No endpoint in the
        // config means "wherever the peer comes from".
        if let Some(endpoint) = &wanted.endpoint {
            let applied = record
                .and_then(|record| record.endpoints.get(&wanted.public_key.to_base64()))
                .copied();
            if have.endpoint != Some(endpoint.address) && applied != Some(endpoint.address) {
                changes.push("endpoint");
            }
        }
        if wanted.persistent_keepalive.unwrap_or(0) != have.persistent_keepalive.unwrap_or(0) {
            changes.push("persistent-keepalive");
        }
        if !same_prefixes(&wanted.allowed_ips, &have.allowed_ips) {
            changes.push("allowed-ips");
        }
        if !changes.is_empty() {
            actions.push(Action::SetPeer {
                tunnel: name.clone(),
                peer: wanted.clone(),
                changes,
            });
        }
    }
    if !link.up {
        actions.push(Action::SetLinkUp {
            tunnel: name.clone(),
        });
    }

    let recorded: BTreeSet<Route> = record
        .map(|record| record.routes.iter().copied().collect())
        .unwrap_or_default();
    for route in &link.routes {
        if recorded.contains(route) && !intent.routes.contains(route) {
            actions.push(Action::RemoveRoute {
                tunnel: name.clone(),
                route: *route,
            });
        }
    }
    // On the kernel, rewriting the device flushes its addresses, and the
    // kernel drops the routes through it with them: add wgd's back.
    let routes_survive = !(interface_changed && link.backend == Some(Backend::Kernel));
    for route in &intent.routes {
        if !(routes_survive && link.routes.contains(route)) {
            actions.push(Action::AddRoute {
                tunnel: name.clone(),
                route: *route,
            });
        }
    }
    plan_rules(&name, intent, actual, record, actions);
}

fn plan_remove(record: &TunnelRecord, actual: &ActualState, actions: &mut Vec<Action>) {
    let name = record.name.clone();
    // An interface of that name that wgd did not make is left alone.
    let present = actual
        .links
        .get(&name)
        .is_some_and(|link| record.owns(link));
    if present && !record.pre_down.is_empty() {
        actions.push(Action::RunHooks {
            tunnel: name.clone(),
            stage: HookStage::PreDown,
            commands: record.pre_down.clone(),
        });
    }
    for rule in &record.rules {
        if actual.rules.contains(rule) {
            actions.push(Action::RemoveRule {
                tunnel: name.clone(),
                rule: *rule,
            });
        }
    }
    if let Some(value) = &record.src_valid_mark_before {
        actions.push(Action::RestoreSrcValidMark {
            tunnel: name.clone(),
            value: value.clone(),
        });
    }
    if present {
        // Routes through the interface go with it.
        actions.push(Action::DeleteLink {
            tunnel: name.clone(),
        });
        if !record.post_down.is_empty() {
            actions.push(Action::RunHooks {
                tunnel: name,
                stage: HookStage::PostDown,
                commands: record.post_down.clone(),
            });
        }
    } else {
        actions.push(Action::Forget { tunnel: name });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::actual::{Device, Peer};
    use crate::config::parse_str;
    use crate::keys::PrivateKey;

    const SOURCE: &str = "/etc/wgd/wgd.toml";

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_bytes([seed; 32])
    }

    fn config(text: &str) -> Config {
        parse_str(Path::new(SOURCE), text).unwrap_or_else(|errors| panic!("{errors}"))
    }

    /// Two peers on one tunnel; `third_endpoint` changes one of them.
    fn two_peers(endpoint_b: &str) -> String {
        format!(
            r#"
[[tunnel]]
name = "wg-a"
private_key = "{}"
listen_port = 51820
address = ["10.255.0.0/31", "fd00:255::/127"]

[[tunnel.peer]]
public_key = "{}"
endpoint = "192.0.2.1:51820"
persistent_keepalive = 25

[[tunnel.peer]]
public_key = "{}"
endpoint = "{endpoint_b}"
"#,
            key(1).to_base64(),
            key(2).public_key(),
            key(3).public_key()
        )
    }

    /// A host that `config`'s first plan was applied to.
    fn brought_up(config: &Config) -> ActualState {
        let mut actual = ActualState::default();
        let actions = plan(config, &actual, Backend::Userspace).unwrap();
        simulate(&mut actual, config, &actions);
        actual
    }

    /// Nothing left to do for `config` on `actual`.
    #[track_caller]
    fn assert_settled(config: &Config, actual: &ActualState) {
        let actions = plan(config, actual, Backend::Userspace).unwrap();
        assert!(actions.is_empty(), "{:#?}", lines(&actions));
    }

    /// What the host would look like after `actions`: the in-memory twin
    /// of `apply`.
    fn simulate(actual: &mut ActualState, config: &Config, actions: &[Action]) {
        for action in actions {
            let name = action.tunnel().to_owned();
            match action {
                Action::RunHooks { .. } => {}
                Action::CreateLink { backend, .. } => {
                    let index = actual.links.len() as u32 + 10;
                    actual.links.insert(
                        name.clone(),
                        Link {
                            index,
                            backend: Some(*backend),
                            up: false,
                            mtu: 1420,
                            addresses: vec![],
                            kernel_made: vec![],
                            device: Some(Device::default()),
                            routes: vec![],
                        },
                    );
                    let record = actual.records.entry(name.clone()).or_insert_with(|| {
                        TunnelRecord::new(&name, config.source.clone(), *backend)
                    });
                    record.routes.clear();
                    record.addresses = Some(vec![]);
                }
                Action::TakeOver { .. } => {
                    actual.records.get_mut(&name).unwrap().source = config.source.clone();
                }
                Action::DeleteLink { .. } | Action::Forget { .. } => {
                    actual.links.remove(&name);
                    actual.records.remove(&name);
                }
                Action::SetMtu { mtu, .. } => actual.links.get_mut(&name).unwrap().mtu = *mtu,
                Action::StopAddressGeneration { generated, .. } => {
                    let link = actual.links.get_mut(&name).unwrap();
                    link.addresses.retain(|kept| !generated.contains(kept));
                    link.kernel_made.clear();
                }
                Action::AddAddress { address, .. } => {
                    actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .addresses
                        .push(*address);
                    let configured = configured_addresses(config, &name);
                    actual
                        .records
                        .get_mut(&name)
                        .unwrap()
                        .addresses
                        .get_or_insert(configured)
                        .push(*address);
                }
                Action::RemoveAddress { address, .. } => {
                    actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .addresses
                        .retain(|kept| kept != address);
                    let configured = configured_addresses(config, &name);
                    actual
                        .records
                        .get_mut(&name)
                        .unwrap()
                        .addresses
                        .get_or_insert(configured)
                        .retain(|kept| kept != address);
                }
                Action::WriteDevice {
                    private_key,
                    listen_port,
                    fwmark,
                    peers,
                    ..
                } => {
                    let device = actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .device
                        .as_mut()
                        .unwrap();
                    device.public_key = Some(private_key.public_key());
                    device.listen_port = listen_port.unwrap_or(40000);
                    device.fwmark = fwmark.filter(|mark| *mark != 0);
                    device.peers = peers.iter().map(peer_state).collect();
                }
                Action::SetInterface {
                    private_key,
                    listen_port,
                    fwmark,
                    ..
                } => {
                    let device = actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .device
                        .as_mut()
                        .unwrap();
                    device.public_key = Some(private_key.public_key());
                    device.listen_port = listen_port.unwrap_or(device.listen_port);
                    device.fwmark = fwmark.filter(|mark| *mark != 0);
                }
                Action::SetPeer { peer, .. } => {
                    let device = actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .device
                        .as_mut()
                        .unwrap();
                    device
                        .peers
                        .retain(|kept| kept.public_key != peer.public_key);
                    device.peers.push(peer_state(peer));
                }
                Action::RemovePeer { public_key, .. } => {
                    let device = actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .device
                        .as_mut()
                        .unwrap();
                    device.peers.retain(|kept| kept.public_key != *public_key);
                }
                Action::SetLinkUp { .. } => actual.links.get_mut(&name).unwrap().up = true,
                Action::AddRoute { route, .. } => {
                    actual.links.get_mut(&name).unwrap().routes.push(*route);
                    actual.records.get_mut(&name).unwrap().routes.push(*route);
                    actual.used_tables.push(route.table);
                }
                Action::RemoveRoute { route, .. } => {
                    actual
                        .links
                        .get_mut(&name)
                        .unwrap()
                        .routes
                        .retain(|kept| kept != route);
                    actual
                        .records
                        .get_mut(&name)
                        .unwrap()
                        .routes
                        .retain(|kept| kept != route);
                }
                Action::AddRule { rule, .. } => {
                    actual.rules.push(*rule);
                    actual.records.get_mut(&name).unwrap().rules.push(*rule);
                }
                Action::RemoveRule { rule, .. } => {
                    actual.rules.retain(|kept| kept != rule);
                    if let Some(record) = actual.records.get_mut(&name) {
                        record.rules.retain(|kept| kept != rule);
                    }
                }
                Action::EnableSrcValidMark { .. } => {
                    actual.records.get_mut(&name).unwrap().src_valid_mark_before = Some("0".into())
                }
                Action::RestoreSrcValidMark { .. } => {
                    if let Some(record) = actual.records.get_mut(&name) {
                        record.src_valid_mark_before = None;
                    }
                }
            }
        }
    }

    fn configured_addresses(config: &Config, name: &str) -> Vec<InterfaceAddress> {
        config
            .tunnels
            .iter()
            .find(|tunnel| tunnel.name.as_str() == name)
            .map(|tunnel| tunnel.addresses.clone())
            .unwrap_or_default()
    }

    fn peer_state(peer: &PeerConfig) -> Peer {
        Peer {
            public_key: peer.public_key,
            preshared_key: peer.preshared_key.clone(),
            endpoint: peer.endpoint.as_ref().map(|endpoint| endpoint.address),
            persistent_keepalive: peer.persistent_keepalive,
            allowed_ips: peer.allowed_ips.clone(),
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }

    fn lines(actions: &[Action]) -> Vec<String> {
        actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_new_tunnel_gets_no_routes_and_the_second_plan_is_empty() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let mut actual = ActualState::default();
        let actions = plan(&config, &actual, Backend::Userspace).unwrap();
        assert!(matches!(
            actions[0],
            Action::CreateLink {
                backend: Backend::Userspace,
                ..
            }
        ));
        assert!(
            !actions
                .iter()
                .any(|action| matches!(action, Action::AddRoute { .. } | Action::AddRule { .. }))
        );
        simulate(&mut actual, &config, &actions);
        let again = plan(&config, &actual, Backend::Userspace).unwrap();
        assert!(again.is_empty(), "second plan: {:?}", lines(&again));
    }

    #[test]
    fn changing_one_peer_touches_only_that_peer() {
        let before = config(&two_peers("192.0.2.2:51820"));
        let actual = brought_up(&before);

        let after = config(&two_peers("192.0.2.99:51820"));
        let actions = plan(&after, &actual, Backend::Userspace).unwrap();
        assert_eq!(actions.len(), 1, "{:?}", lines(&actions));
        match &actions[0] {
            Action::SetPeer { peer, changes, .. } => {
                assert_eq!(peer.public_key, key(3).public_key());
                assert_eq!(changes, &vec!["endpoint"]);
            }
            other => panic!("expected one peer update, got {other}"),
        }
    }

    #[test]
    fn a_tunnel_removed_from_the_config_is_removed_and_others_stay() {
        let both = format!(
            "{}\n[[tunnel]]\nname = \"wg-b\"\nprivate_key = \"{}\"\nlisten_port = 51821\n",
            two_peers("192.0.2.2:51820"),
            key(9).to_base64()
        );
        let both = config(&both);
        let actual = brought_up(&both);
        assert_eq!(actual.links.len(), 2);

        let one = config(&two_peers("192.0.2.2:51820"));
        let actions = plan(&one, &actual, Backend::Userspace).unwrap();
        assert_eq!(lines(&actions), vec!["wg-b: delete interface".to_owned()]);
    }

    #[test]
    fn an_interface_wgd_did_not_create_is_never_touched() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let mut actual = ActualState::default();
        actual.links.insert(
            "wg-a".into(),
            Link {
                index: 3,
                backend: Some(Backend::Kernel),
                up: true,
                mtu: 1420,
                addresses: vec![],
                kernel_made: vec![],
                device: None,
                routes: vec![],
            },
        );
        let errors = plan(&config, &actual, Backend::Kernel).unwrap_err();
        assert_eq!(errors, vec![PlanError::NotOurs("wg-a".into())]);
    }

    #[test]
    fn a_tunnel_of_another_file_is_refused() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let mut actual = brought_up(&config);
        actual.records.get_mut("wg-a").unwrap().source = "/etc/wireguard/wg-a.conf".into();
        let errors = plan(&config, &actual, Backend::Userspace).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .contains("belongs to /etc/wireguard/wg-a.conf"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn allowed_ips_mode_routes_everything_but_the_default_in_main() {
        let text = format!(
            r#"
[[tunnel]]
name = "wg-r"
private_key = "{}"
routes = "allowed-ips"
[[tunnel.peer]]
public_key = "{}"
allowed_ips = ["0.0.0.0/0", "10.1.0.0/16", "::/0"]
"#,
            key(4).to_base64(),
            key(5).public_key()
        );
        let config = config(&text);
        let intent = routing_intent(&config.tunnels[0], None, &[]);
        let routes: Vec<String> = intent
            .routes
            .iter()
            .map(|route| format!("{} {}", route.prefix, route.table))
            .collect();
        assert_eq!(routes, vec!["10.1.0.0/16 254"]);
        assert!(intent.rules.is_empty());
        assert_eq!(intent.fwmark, None);
    }

    #[test]
    fn full_tunnel_does_what_wg_quick_does_and_down_undoes_it() {
        let text = format!(
            r#"
[[tunnel]]
name = "wg-f"
private_key = "{}"
routes = "full-tunnel"
[[tunnel.peer]]
public_key = "{}"
endpoint = "192.0.2.1:51820"
"#,
            key(6).to_base64(),
            key(7).public_key()
        );
        let config = config(&text);
        let mut actual = ActualState {
            used_tables: vec![254, 255, 51820],
            ..Default::default()
        };
        let actions = plan(&config, &actual, Backend::Userspace).unwrap();
        let text = lines(&actions).join("\n");
        // 51820 is taken, so the next free table is used as wg-quick does.
        assert!(text.contains("fwmark 51821"), "{text}");
        assert!(
            text.contains("add route 0.0.0.0/0 dev wg-f table 51821"),
            "{text}"
        );
        assert!(
            text.contains("add route ::/0 dev wg-f table 51821"),
            "{text}"
        );
        assert!(
            text.contains("add rule: ip -4 rule not fwmark 51821 table 51821"),
            "{text}"
        );
        assert!(
            text.contains("add rule: ip -6 rule table main suppress_prefixlength 0"),
            "{text}"
        );
        assert!(text.contains("src_valid_mark=1"), "{text}");
        simulate(&mut actual, &config, &actions);
        assert_settled(&config, &actual);

        let down = plan_down(Some(Path::new(SOURCE)), &[], &actual);
        simulate(&mut actual, &config, &down);
        assert!(actual.rules.is_empty(), "rules left: {:?}", actual.rules);
        assert!(actual.records.is_empty());
        assert!(actual.links.is_empty());
    }

    #[test]
    fn dry_run_lines_never_show_private_or_preshared_keys() {
        let private = key(8);
        let psk = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let text = format!(
            "[[tunnel]]\nname = \"wg-k\"\nprivate_key = \"{}\"\n[[tunnel.peer]]\npublic_key = \"{}\"\npreshared_key = \"{psk}\"\n",
            private.to_base64(),
            key(2).public_key()
        );
        let config = config(&text);
        let printed =
            lines(&plan(&config, &ActualState::default(), Backend::Kernel).unwrap()).join("\n");
        assert!(!printed.contains(&private.to_base64()));
        assert!(!printed.contains(psk));
        assert!(printed.contains("private-key (hidden)"));
        assert!(printed.contains("preshared-key (hidden)"));
    }

    #[test]
    fn a_roamed_peer_is_left_where_it_roamed_until_the_config_changes() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let mut actual = brought_up(&config);
        // What apply records once the config's endpoints are on the device.
        let applied = [(
            key(3).public_key().to_base64(),
            "192.0.2.2:51820".parse().unwrap(),
        )]
        .into();
        actual.records.get_mut("wg-a").unwrap().endpoints = applied;
        let device = actual
            .links
            .get_mut("wg-a")
            .unwrap()
            .device
            .as_mut()
            .unwrap();
        let roamed = device
            .peers
            .iter_mut()
            .find(|peer| peer.public_key == key(3).public_key())
            .unwrap();
        roamed.endpoint = Some("198.51.100.9:40000".parse().unwrap());
        assert_settled(&config, &actual);

        let moved = self::config(&two_peers("192.0.2.50:51820"));
        let actions = plan(&moved, &actual, Backend::Userspace).unwrap();
        assert_eq!(actions.len(), 1, "{:?}", lines(&actions));
        assert!(lines(&actions)[0].contains("(changed: endpoint)"));
    }

    #[test]
    fn a_new_listen_port_changes_the_device_but_keeps_the_peers() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let actual = brought_up(&config);
        let moved = self::config(
            &two_peers("192.0.2.2:51820").replace("listen_port = 51820", "listen_port = 51999"),
        );
        let actions = plan(&moved, &actual, Backend::Userspace).unwrap();
        assert_eq!(lines(&actions).len(), 1, "{:?}", lines(&actions));
        assert!(matches!(
            actions[0],
            Action::SetInterface {
                listen_port: Some(51999),
                ..
            }
        ));
    }

    #[test]
    fn an_interface_that_replaced_wgds_own_is_not_taken_for_it() {
        let config = config(&two_peers("192.0.2.2:51820"));
        let mut actual = brought_up(&config);
        let index = actual.links["wg-a"].index;
        actual.records.get_mut("wg-a").unwrap().ifindex = index;
        // wgd's interface went; someone made another of that name.
        actual.links.get_mut("wg-a").unwrap().index = index + 40;
        assert_eq!(
            plan(&config, &actual, Backend::Userspace).unwrap_err(),
            vec![PlanError::NotOurs("wg-a".into())]
        );
        let down = plan_down(None, &["wg-a".to_owned()], &actual);
        assert_eq!(
            lines(&down),
            vec!["wg-a: forget record (interface already gone)".to_owned()]
        );
    }

    /// The wg-quick file of a dn42 peering: its addresses come from hooks.
    fn hooked_peering(address_line: &str) -> Config {
        let text = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51921\n{address_line}\
             PostUp = ip addr add dev %i 172.20.1.1/32 peer 172.20.2.1/32\n\
             PostUp = ip addr add dev %i fe80::1/64\nTable = off\n\
             [Peer]\nPublicKey = {}\nEndpoint = 198.51.100.2:51922\n\
             AllowedIPs = 172.16.0.0/12, 10.0.0.0/8, fd00::/8, fe80::/10\n",
            key(11).to_base64(),
            key(12).public_key()
        );
        parse_str(Path::new("/etc/wireguard/dn42b.conf"), &text)
            .unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn address(text: &str) -> InterfaceAddress {
        text.parse().unwrap()
    }

    /// What the PostUp hooks of `hooked_peering` add.
    fn run_post_up(actual: &mut ActualState) {
        let link = actual.links.get_mut("dn42b").unwrap();
        link.addresses
            .push(address("172.20.1.1/32 peer 172.20.2.1/32"));
        link.addresses.push(address("fe80::1/64"));
    }

    #[test]
    fn addresses_a_hook_added_are_left_alone() {
        let config = hooked_peering("");
        let mut actual = ActualState::default();
        let actions = plan(&config, &actual, Backend::Userspace).unwrap();
        assert!(
            !actions
                .iter()
                .any(|action| matches!(action, Action::AddAddress { .. }))
        );
        simulate(&mut actual, &config, &actions);
        run_post_up(&mut actual);
        // `wgd up` again, and the daemon's reconcile: nothing to do.
        let again = plan(&config, &actual, Backend::Userspace).unwrap();
        assert!(again.is_empty(), "{:?}", lines(&again));
        // An operator's address stays too.
        let link = actual.links.get_mut("dn42b").unwrap();
        link.addresses.push(address("192.0.2.77/32"));
        assert_settled(&config, &actual);
    }

    #[test]
    fn an_address_a_hook_added_too_is_not_added_twice_nor_taken_for_wgds() {
        let config = hooked_peering("Address = fe80::1/64, 172.20.1.1/32 peer 172.20.2.1/32\n");
        let mut actual = ActualState::default();
        let actions = plan(&config, &actual, Backend::Userspace).unwrap();
        assert_eq!(
            lines(&actions)
                .iter()
                .filter(|line| line.contains("add address"))
                .collect::<Vec<_>>(),
            [
                "dn42b: add address fe80::1/64",
                "dn42b: add address 172.20.1.1/32 peer 172.20.2.1/32"
            ]
        );
        simulate(&mut actual, &config, &actions);
        assert_settled(&config, &actual);

        // A config that names what a hook added: not added again, and,
        // being the hook's, not removed when the config stops naming it.
        let hooked = hooked_peering("");
        let mut actual = brought_up(&hooked);
        run_post_up(&mut actual);
        let naming = hooked_peering("Address = 172.20.1.1/32 peer 172.20.2.1/32\n");
        assert_settled(&naming, &actual);
        assert_settled(&hooked, &actual);
    }

    #[test]
    fn wgds_own_address_goes_when_the_config_drops_it_and_a_new_peer_is_a_new_address() {
        let before = hooked_peering("Address = 172.20.1.1/32 peer 172.20.2.1/32, fe80::1/64\n");
        let mut actual = brought_up(&before);
        let after = hooked_peering("Address = 172.20.1.1/32 peer 172.20.2.9/32\n");
        let actions = plan(&after, &actual, Backend::Userspace).unwrap();
        assert_eq!(
            lines(&actions),
            [
                "dn42b: remove address 172.20.1.1/32 peer 172.20.2.1/32",
                "dn42b: remove address fe80::1/64",
                "dn42b: add address 172.20.1.1/32 peer 172.20.2.9/32",
            ]
        );
        simulate(&mut actual, &after, &actions);
        assert_settled(&after, &actual);
    }

    #[test]
    fn a_record_without_addresses_takes_the_configs_for_wgds() {
        let config = hooked_peering("Address = 10.9.0.1/24\n");
        let mut actual = brought_up(&config);
        run_post_up(&mut actual);
        // As a record written before wgd kept its addresses reads.
        actual.records.get_mut("dn42b").unwrap().addresses = None;
        assert_settled(&config, &actual);
        let moved = hooked_peering("Address = 10.9.0.2/24\n");
        let actions = plan(&moved, &actual, Backend::Userspace).unwrap();
        // 10.9.0.1/24 is not the config's any more, so not known for
        // wgd's: it stays, as the hook's addresses do.
        assert_eq!(lines(&actions), ["dn42b: add address 10.9.0.2/24"]);
    }

    #[test]
    fn a_rewritten_kernel_device_gets_its_addresses_back() {
        // The device library's kernel path flushes the addresses when it
        // writes the device; the config's go back right after.
        let config = hooked_peering("Address = 172.20.1.1/32 peer 172.20.2.1/32\n");
        let mut actual = ActualState::default();
        let actions = plan(&config, &actual, Backend::Kernel).unwrap();
        let order: Vec<String> = lines(&actions);
        let device = order
            .iter()
            .position(|line| line.contains("configure device"));
        let address = order.iter().position(|line| line.contains("add address"));
        assert!(device < address, "{order:?}");
        simulate(&mut actual, &config, &actions);
        let moved = hooked_peering("Address = 172.20.1.1/32 peer 172.20.2.1/32\n")
            .tunnels
            .into_iter()
            .map(|mut tunnel| {
                tunnel.listen_port = Some(51999);
                tunnel
            })
            .collect();
        let moved = Config {
            tunnels: moved,
            ..config.clone()
        };
        let actions = plan(&moved, &actual, Backend::Kernel).unwrap();
        assert_eq!(
            lines(&actions)
                .iter()
                .map(|line| line.split(" public-key").next().unwrap_or_default())
                .collect::<Vec<_>>(),
            [
                "dn42b: set device",
                "dn42b: add address 172.20.1.1/32 peer 172.20.2.1/32"
            ]
        );
    }

    #[test]
    fn the_kernels_link_local_address_on_an_older_tunnel_goes_and_the_hooks_stays() {
        let config = hooked_peering("");
        let mut actual = brought_up(&config);
        run_post_up(&mut actual);
        let link = actual.links.get_mut("dn42b").unwrap();
        let generated = address("fe80::d892:c5e6:a6cb:fd56/64");
        link.addresses.push(generated);
        link.kernel_made.push(generated);
        let actions = plan(&config, &actual, Backend::Userspace).unwrap();
        assert_eq!(
            lines(&actions),
            [
                "dn42b: set addrgenmode none, remove the kernel's address fe80::d892:c5e6:a6cb:fd56/64"
            ]
        );
        simulate(&mut actual, &config, &actions);
        assert!(
            actual.links["dn42b"]
                .addresses
                .contains(&address("fe80::1/64"))
        );
        assert_settled(&config, &actual);
    }

    #[test]
    fn a_tunnel_up_from_an_included_file_is_taken_over() {
        let file = hooked_peering("");
        let mut actual = brought_up(&file);
        // The daemon's config includes that file.
        let daemon = Config {
            source: SOURCE.into(),
            included: vec![crate::config::IncludedFile {
                path: file.source.clone(),
                tunnel: Some(file.tunnels[0].name.clone()),
                errors: vec![],
                kept: false,
            }],
            ..file.clone()
        };
        let actions = plan(&daemon, &actual, Backend::Userspace).unwrap();
        assert_eq!(
            lines(&actions),
            ["dn42b: take over from /etc/wireguard/dn42b.conf"]
        );
        simulate(&mut actual, &daemon, &actions);
        assert_settled(&daemon, &actual);
        // Another file's tunnel is still refused.
        actual.records.get_mut("dn42b").unwrap().source = "/etc/wireguard/other.conf".into();
        assert!(plan(&daemon, &actual, Backend::Userspace).is_err());
    }
}
