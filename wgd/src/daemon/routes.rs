//! What joins the daemon to the route bridge: wgd's tunnels as the
//! bridge's `TunnelView` (from the config, the devices and the event
//! tracker's dead peers), the bridge's settings from `[bridge]`, and the
//! AllowedIPs the bridge adds to multi-peer tunnels folded into the config
//! the planner applies (so a reconcile keeps them instead of undoing them).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use bgp_bridge::bgp::rpki::{RpkiConfig, RpkiServer};
use bgp_bridge::bgp::speaker::{BGP_PORT, NeighborConfig, Secret, SpeakerConfig};
use bgp_bridge::engine::{AllowedExtras, BridgeConfig};
use bgp_bridge::rib::RibConfig;
use bgp_bridge::{PeerInfo, Sources, TunnelInfo, TunnelView};
use ipnet::IpNet;

use super::events::EventTracker;
use crate::actual::ActualState;
use crate::config::{BgpSettings, BridgeSettings, Config, ConfigError, ConfigErrors};
use crate::status::Status;

/// The config's tunnels as the bridge sees them: addresses and peers from
/// the config (known even while a tunnel is down), the interface index,
/// state and current endpoints from the host, and the peers whose BFD
/// session fell.
pub fn tunnel_view(
    config: &Config,
    actual: &ActualState,
    status: &Status,
    tracker: &EventTracker,
    bfd_down: &BTreeSet<(String, IpAddr)>,
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
    TunnelView {
        tunnels,
        bfd_down: bfd_down.clone(),
    }
}

/// The bridge's settings (`[bridge]`, and the tunnels' sources); the
/// unary API's routes are kept in the state folder of this namespace
/// (beside the tunnel records' folder).
pub fn bridge_config(config: &Config, records: &Path) -> BridgeConfig {
    let settings = &config.daemon.bridge;
    let state = state_folder(records);
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
        sources: sources(config),
    }
}

/// The state folder of this namespace (where the unary API's routes are
/// kept), beside the tunnel records' folder.
pub fn state_folder(records: &Path) -> &Path {
    records.parent().unwrap_or(records)
}

/// The preferred source addresses of the routes: `[bridge] source`, and
/// each tunnel's own.
pub fn sources(config: &Config) -> Sources {
    Sources {
        bridge: config.daemon.bridge.source.clone(),
        tunnels: config
            .tunnels
            .iter()
            .filter(|tunnel| !tunnel.source.is_empty())
            .map(|tunnel| (tunnel.name.as_str().to_owned(), tunnel.source.clone()))
            .collect(),
    }
}

/// `[bridge]` apart from the sources and the routes, which a reload
/// changes in place.
pub fn restart_settings(settings: &BridgeSettings) -> BridgeSettings {
    BridgeSettings {
        source: Vec::new(),
        routes: Vec::new(),
        ..settings.clone()
    }
}

/// Refuses a config whose source addresses this host does not have (the
/// kernel would refuse every route naming one, each with "Invalid
/// argument"), before anything changes, at start and on a reload: with
/// `coming`, an address the config gives one of its tunnels (or a hook of
/// its adds) counts, as the reconcile that follows brings it.
pub fn check_sources(config: &Config, coming: bool) -> Result<(), ConfigErrors> {
    if sources(config).is_empty() {
        return Ok(());
    }
    let host = bgp_bridge::fib::KernelFib::open(bgp_bridge::fib::MAIN_TABLE, 0)
        .and_then(|mut fib| fib.local_addresses());
    let host = match host {
        Ok(host) => host,
        Err(error) => {
            tracing::warn!(%error, "cannot read the host's addresses to check the sources");
            return Ok(());
        }
    };
    let missing = missing_sources(config, &host, coming);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(missing))
    }
}

/// The source addresses of `config` that are not in `host` (nor, with
/// `coming`, on one of the config's tunnels), each as an error at its line.
pub fn missing_sources(config: &Config, host: &BTreeSet<IpAddr>, coming: bool) -> Vec<ConfigError> {
    let tunnel_addresses: BTreeSet<IpAddr> = config
        .tunnels
        .iter()
        // The addresses its hooks add (`PostUp = ip addr add ...`) count:
        // the reconcile that brings a new tunnel up runs them.
        .flat_map(|tunnel| tunnel.known_addresses().map(|address| address.addr()))
        .collect();
    let present =
        |address: &IpAddr| host.contains(address) || (coming && tunnel_addresses.contains(address));
    let why = "wgd puts it in the `src` of the routes it installs, and the kernel takes only \
               an address of this host: add it to an interface (lo, say) or take it out";
    let mut errors = Vec::new();
    let bridge_line = config.daemon.bridge.source_line;
    for address in config.daemon.bridge.source.iter().filter(|a| !present(a)) {
        errors.push(ConfigError {
            file: config.source.clone(),
            line: bridge_line,
            message: format!("[bridge] source {address} is not an address of this host: {why}"),
        });
    }
    for tunnel in &config.tunnels {
        for address in tunnel.source.iter().filter(|a| !present(a)) {
            errors.push(ConfigError {
                file: config.source.clone(),
                line: tunnel.line,
                message: format!(
                    "tunnel \"{}\": source {address} is not an address of this host: {why}",
                    tunnel.name
                ),
            });
        }
    }
    errors
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
        bfd_host: None,
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
                prefix_limit_action: neighbor.prefix_limit_action,
                description: neighbor.description.clone(),
                password: neighbor.password.clone().map(Secret),
                ttl_security: neighbor.ttl_security,
                // The config reader checked the ranges (10 ms to a minute,
                // a multiplier of at least 1): Timers takes them.
                bfd: neighbor.bfd.and_then(|bfd| {
                    bgp_bridge::bgp::bfd::Timers::new(
                        bfd.transmit_interval,
                        bfd.receive_interval,
                        bfd.multiplier,
                    )
                    .ok()
                }),
                import: neighbor.import.clone(),
                export: neighbor.export.clone(),
            })
            .collect(),
        rpki: settings.rpki.as_ref().map(|rpki| RpkiConfig {
            servers: rpki
                .servers
                .iter()
                .map(|server| RpkiServer {
                    address: server.address,
                    preference: server.preference,
                })
                .collect(),
            expire: rpki.expire,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_the_host_lacks_are_refused_at_their_line() {
        let dir = std::env::temp_dir().join(format!("wgd-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wgd.toml");
        let text = "[bridge]\nkernel_metric = 20\nsource = [\"172.20.1.1\", \"fd42:1::1\"]\n\n\
                    [[tunnel]]\nname = \"dn42b\"\nprivate_key = \"iA8UXmdSVWJyF6B5ZUx0Frr06cKiwx16K3KxTBVrGng=\"\n\
                    address = [\"172.20.1.2/32\"]\nsource = [\"172.20.1.2\"]\n";
        std::fs::write(&path, text).unwrap();
        let config = crate::config::parse_str(&path, text).unwrap();
        let sources = sources(&config);
        assert_eq!(sources.bridge.len(), 2);
        assert_eq!(
            sources.tunnels["dn42b"],
            ["172.20.1.2".parse::<IpAddr>().unwrap()]
        );
        let host: BTreeSet<IpAddr> = ["172.20.1.1".parse().unwrap()].into();
        let messages: Vec<String> = missing_sources(&config, &host, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages[0]
                .contains("wgd.toml:3: [bridge] source fd42:1::1 is not an address of this host"),
            "{messages:#?}"
        );
        assert!(
            messages[1].contains(
                "wgd.toml:5: tunnel \"dn42b\": source 172.20.1.2 is not an address of this host"
            ),
            "{messages:#?}"
        );
        // On a reload, the tunnel's own address is on its way.
        assert_eq!(missing_sources(&config, &host, true).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
