//! What joins the daemon to the route bridge: wgd's tunnels as the
//! bridge's `TunnelView` (from the config, the devices and the event
//! tracker's dead peers), the bridge's settings from `[bridge]`, and the
//! AllowedIPs the bridge adds to multi-peer tunnels folded into the config
//! the planner applies (so a reconcile keeps them instead of undoing them).

use std::collections::BTreeSet;
use std::path::Path;

use bgp_bridge::bgp::speaker::{BGP_PORT, NeighborConfig, Secret, SpeakerConfig};
use bgp_bridge::engine::{AllowedExtras, BridgeConfig};
use bgp_bridge::rib::RibConfig;
use bgp_bridge::{PeerInfo, TunnelInfo, TunnelView};
use ipnet::IpNet;

use super::events::EventTracker;
use crate::actual::ActualState;
use crate::config::{BgpSettings, BridgeSettings, Config};
use crate::status::Status;

/// The config's tunnels as the bridge sees them: addresses and peers from
/// the config (known even while a tunnel is down), the interface index,
/// state and current endpoints from the host.
pub fn tunnel_view(
    config: &Config,
    actual: &ActualState,
    status: &Status,
    tracker: &EventTracker,
) -> TunnelView {
    let tunnels = config
        .tunnels
        .iter()
        .map(|tunnel| {
            let name = tunnel.name.as_str();
            let seen = status.tunnels.iter().find(|seen| seen.name == name);
            let mut addresses: Vec<_> = tunnel.known_addresses().copied().collect();
            let link = actual.links.get(name);
            for present in link.map_or(&[][..], |link| &link.addresses) {
                let generated = link.is_some_and(|link| link.kernel_made.contains(present));
                if !generated && !addresses.contains(present) {
                    addresses.push(*present);
                }
            }
            TunnelInfo {
                name: name.to_owned(),
                ifindex: actual.links.get(name).map_or(0, |link| link.index),
                up: seen.is_some_and(|seen| seen.up),
                // The config's, what its hooks add (a wg-quick file's
                // `PostUp = ip addr add ...`), and any other on the interface.
                addresses: addresses.iter().map(|address| address.local()).collect(),
                peer_addresses: addresses
                    .iter()
                    .filter_map(|address| address.peer())
                    .collect(),
                peers: tunnel
                    .peers
                    .iter()
                    .map(|peer| {
                        let public_key = peer.public_key.to_base64();
                        // Where the device sends now (a peer may roam), else the config's.
                        let endpoint = seen
                            .and_then(|seen| seen.peers.iter().find(|p| p.public_key == public_key))
                            .and_then(|p| p.endpoint.as_deref())
                            .and_then(|text| text.parse().ok())
                            .or(peer.endpoint.as_ref().map(|endpoint| endpoint.address));
                        PeerInfo {
                            reachable: !tracker.is_dead(name, &public_key),
                            public_key,
                            allowed_ips: peer.allowed_ips.clone(),
                            endpoint,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    TunnelView { tunnels }
}

/// The bridge's settings; the unary API's routes are kept in the state
/// folder of this namespace (beside the tunnel records' folder).
pub fn bridge_config(settings: &BridgeSettings, records: &Path) -> BridgeConfig {
    let state = records.parent().unwrap_or(records);
    BridgeConfig {
        rib: RibConfig {
            allow_other_interfaces: settings.allow_other_interfaces,
            prefix_limit: settings.prefix_limit,
            owner_prefix_limits: settings.prefix_limits.clone(),
        },
        table: settings.table.id(),
        kernel_metric: settings.kernel_metric,
        startup_hold: settings.startup_hold,
        default_hold: settings.hold_time,
        state_file: Some(state.join("routes.json")),
    }
}

/// The config with the bridge's AllowedIPs added to their peers.
pub fn with_extras(config: &Config, extras: &AllowedExtras) -> Config {
    let mut config = config.clone();
    if extras.is_empty() {
        return config;
    }
    for tunnel in &mut config.tunnels {
        for peer in &mut tunnel.peers {
            let key = (tunnel.name.as_str().to_owned(), peer.public_key.to_base64());
            if let Some(prefixes) = extras.get(&key) {
                let mut all: BTreeSet<IpNet> = peer.allowed_ips.iter().copied().collect();
                all.extend(prefixes.iter().copied());
                peer.allowed_ips = all.into_iter().collect();
            }
        }
    }
    config
}

/// The BGP speaker's settings from `[bgp]`.
pub fn speaker_config(settings: &BgpSettings) -> SpeakerConfig {
    SpeakerConfig {
        asn: settings.asn,
        router_id: settings.router_id,
        networks: settings.networks.clone(),
        max_paths: settings.max_paths,
        hold_time: settings.hold_time,
        graceful_restart: settings.graceful_restart,
        restart_time: settings.restart_time,
        port: BGP_PORT,
        restarting: false,
        neighbors: settings
            .neighbors
            .iter()
            .map(|neighbor| NeighborConfig {
                address: neighbor.address,
                tunnel: neighbor
                    .tunnel
                    .as_ref()
                    .map(|name| name.as_str().to_owned()),
                remote_as: neighbor.remote_as,
                passive: neighbor.passive,
                hold_time: neighbor.hold_time,
                prefix_limit: neighbor.prefix_limit,
                description: neighbor.description.clone(),
                password: neighbor.password.clone().map(Secret),
                ttl_security: neighbor.ttl_security,
                import: neighbor.import.clone(),
                export: neighbor.export.clone(),
            })
            .collect(),
    }
}
