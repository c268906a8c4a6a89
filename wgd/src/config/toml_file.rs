//! `wgd.toml`: daemon settings and any number of tunnels.
//!
//! serde reads the text into the `raw` structs (every field optional and
//! `Spanned`, unknown keys refused), which catches syntax and type errors,
//! the first one only. `Reader` then checks each field with `values`,
//! writes every problem into the `Report` with the line of its value, and
//! builds the typed `DaemonConfig` and `TunnelConfig`s. Checks across
//! tunnels (names, ports) and across peers (keys, names) run as each one is
//! read, against the first of each seen so far.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use bgp_bridge::bgp::decision::LimitAction;
use ipnet::IpNet;
use toml::Spanned;
use zeroize::Zeroizing;

use super::include::{self, Candidate};
use super::model::{
    BackendChoice, BfdSettings, BgpSettings, BridgeSettings, Config, ConfigError, DaemonConfig,
    FpmSettings, GobgpApi, GobgpSettings, Hooks, IncludedFile, NeighborSettings, PeerConfig,
    RouteTable, RoutesMode, RpkiServerSettings, RpkiSettings, StaticRoute, TcpApi, TunnelConfig,
    TunnelName, default_allowed_ips, is_link_local,
};
use super::values::{self, Invalid};
use super::{Report, default_prefixes, default_route_notice, line_at};
use crate::keys::{PresharedKey, PrivateKey, PublicKey};

/// The file as written. Every field is optional so that missing keys are
/// reported by `Reader`, all of them, with the line of their table.
mod raw {
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct File {
        pub daemon: Option<Spanned<Daemon>>,
        pub bridge: Option<Spanned<Bridge>>,
        pub bgp: Option<Spanned<Bgp>>,
        pub fpm: Option<Spanned<Fpm>>,
        pub bfd: Option<Spanned<Bfd>>,
        #[serde(default)]
        pub gobgp: Vec<Spanned<Gobgp>>,
        #[serde(default)]
        pub tunnel: Vec<Spanned<Tunnel>>,
        pub rpki: Option<Spanned<Rpki>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Rpki {
        #[serde(default)]
        pub server: Vec<Spanned<RpkiServer>>,
        pub expire: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RpkiServer {
        pub address: Option<Spanned<String>>,
        pub preference: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Bfd {
        pub transmit_interval: Option<Spanned<i64>>,
        pub receive_interval: Option<Spanned<i64>>,
        pub multiplier: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Daemon {
        #[serde(default)]
        pub include: Vec<Spanned<String>>,
        pub api: Option<Spanned<Api>>,
        pub tls_cert: Option<Spanned<String>>,
        pub tls_key: Option<Spanned<String>>,
        pub tls_client_ca: Option<Spanned<String>>,
        pub metrics: Option<Spanned<String>>,
        pub backend: Option<Spanned<String>>,
        pub wireguard_go: Option<Spanned<String>>,
        pub reconcile_interval: Option<Spanned<i64>>,
        pub peer_dead_after: Option<Spanned<i64>>,
    }

    /// `api`: one address, or a Unix socket and a TCP listener.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub(super) enum Api {
        One(String),
        Many(Vec<String>),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Bridge {
        pub table: Option<Spanned<i64>>,
        pub kernel_metric: Option<Spanned<i64>>,
        pub allow_other_interfaces: Option<bool>,
        pub startup_hold: Option<Spanned<i64>>,
        pub hold_time: Option<Spanned<i64>>,
        pub prefix_limit: Option<Spanned<i64>>,
        #[serde(default)]
        pub prefix_limits: std::collections::BTreeMap<String, Spanned<i64>>,
        #[serde(default)]
        pub source: Vec<Spanned<String>>,
        /// `[[bridge.route]]`: read after the tunnels, which they name.
        #[serde(default)]
        pub route: Vec<Spanned<BridgeRoute>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct BridgeRoute {
        pub prefix: Option<Spanned<String>>,
        pub via: Option<Spanned<String>>,
        pub tunnel: Option<Spanned<String>>,
        pub distance: Option<Spanned<i64>>,
        pub metric: Option<Spanned<i64>>,
        /// `true`, `false`, or a table like `[bfd]`, as a neighbor's.
        pub bfd: Option<Spanned<toml::Value>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Fpm {
        pub listen: Option<Spanned<String>>,
        pub hold_time: Option<Spanned<i64>>,
        pub table: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Gobgp {
        pub api: Option<Spanned<String>>,
        pub owner: Option<Spanned<String>>,
        pub families: Option<Spanned<Vec<String>>>,
        pub hold_time: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Bgp {
        pub asn: Option<Spanned<i64>>,
        pub router_id: Option<Spanned<String>>,
        #[serde(default)]
        pub networks: Vec<Spanned<String>>,
        pub max_paths: Option<Spanned<i64>>,
        pub hold_time: Option<Spanned<i64>>,
        pub graceful_restart: Option<bool>,
        pub restart_time: Option<Spanned<i64>>,
        #[serde(default)]
        pub neighbor: Vec<Spanned<Neighbor>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Neighbor {
        pub address: Option<Spanned<String>>,
        pub tunnel: Option<Spanned<String>>,
        pub remote_as: Option<Spanned<i64>>,
        pub passive: Option<bool>,
        pub hold_time: Option<Spanned<i64>>,
        pub password: Option<Spanned<String>>,
        pub ttl_security: Option<bool>,
        /// `true`, `false`, or a table like `[bfd]`: read by hand, so
        /// that a mistake in it is named as such.
        pub bfd: Option<Spanned<toml::Value>>,
        pub prefix_limit: Option<Spanned<i64>>,
        pub prefix_limit_action: Option<Spanned<String>>,
        pub description: Option<String>,
        pub import: Option<bgp_bridge::bgp::policy::Policy>,
        pub export: Option<bgp_bridge::bgp::policy::Policy>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Tunnel {
        pub name: Option<Spanned<String>>,
        pub private_key: Option<Spanned<String>>,
        pub private_key_file: Option<Spanned<String>>,
        pub listen_port: Option<Spanned<i64>>,
        #[serde(default)]
        pub address: Vec<Spanned<String>>,
        pub mtu: Option<Spanned<i64>>,
        pub fwmark: Option<Spanned<i64>>,
        pub routes: Option<Spanned<String>>,
        pub table: Option<Spanned<i64>>,
        #[serde(default)]
        pub source: Vec<Spanned<String>>,
        #[serde(default)]
        pub pre_up: Vec<String>,
        #[serde(default)]
        pub post_up: Vec<String>,
        #[serde(default)]
        pub pre_down: Vec<String>,
        #[serde(default)]
        pub post_down: Vec<String>,
        #[serde(default)]
        pub peer: Vec<Spanned<Peer>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Peer {
        pub name: Option<Spanned<String>>,
        pub public_key: Option<Spanned<String>>,
        pub preshared_key: Option<Spanned<String>>,
        pub preshared_key_file: Option<Spanned<String>>,
        pub endpoint: Option<Spanned<String>>,
        pub persistent_keepalive: Option<Spanned<i64>>,
        pub allowed_ips: Option<Vec<Spanned<String>>>,
    }
}

/// Reads a wgd.toml into the daemon settings, its tunnels (its own, then
/// the included files'), and what came of each included file. With errors
/// (in `report`), the values returned are incomplete and meant to be
/// dropped. `previous` gives broken included files their last good
/// version.
pub(super) fn parse(
    text: &str,
    report: &mut Report,
    previous: Option<&Config>,
) -> (DaemonConfig, Vec<TunnelConfig>, Vec<IncludedFile>) {
    let mut file = match toml::from_str::<raw::File>(text) {
        Ok(file) => file,
        Err(error) => {
            let line = error.span().map_or(0, |span| line_at(text, span.start));
            report.error(line, serde_message(&error, text));
            return (DaemonConfig::default(), Vec::new(), Vec::new());
        }
    };
    let mut reader = Reader {
        text,
        report,
        tunnel_names: HashMap::new(),
        listen_ports: HashMap::new(),
    };
    let bridge_routes = file
        .bridge
        .as_mut()
        .map(|bridge| std::mem::take(&mut bridge.get_mut().route))
        .unwrap_or_default();
    let mut daemon = reader.daemon(file.daemon);
    daemon.bridge = reader.bridge(file.bridge);
    let mut tunnels: Vec<TunnelConfig> = file
        .tunnel
        .into_iter()
        .filter_map(|tunnel| reader.tunnel(tunnel))
        .collect();
    let mut included = Vec::new();
    let mut unreadable = Vec::new();
    for candidate in include::candidates(&daemon.include, previous) {
        let (tunnel, outcome) = reader.include(candidate, &tunnels);
        match tunnel {
            Some(tunnel) => tunnels.push(tunnel),
            None => unreadable.extend(outcome.tunnel.clone()),
        }
        included.push(outcome);
    }
    let known = KnownTunnels {
        configs: &tunnels,
        unreadable: &unreadable,
    };
    let bfd = reader.bfd(file.bfd);
    daemon.bfd = bfd;
    for route in bridge_routes {
        let Some(route) = reader.bridge_route(route, &known, &bfd) else {
            continue;
        };
        // One route per prefix and owner: a second would replace the first.
        if let Some(first) = daemon
            .bridge
            .routes
            .iter()
            .find(|r| r.prefix == route.prefix)
        {
            reader.report.error(
                route.line,
                format!(
                    "route {}: given twice (first at line {}): one [[bridge.route]] per prefix",
                    route.prefix, first.line
                ),
            );
            continue;
        }
        daemon.bridge.routes.push(route);
    }
    daemon.bgp = file.bgp.and_then(|bgp| reader.bgp(bgp, &known, &bfd));
    if let Some(rpki) = file.rpki {
        let line = reader.line(rpki.span());
        let rpki = reader.rpki(rpki);
        match daemon.bgp.as_mut() {
            Some(bgp) => bgp.rpki = rpki,
            None => reader.report.error(
                line,
                "[rpki]: origin validation needs the BGP speaker ([bgp])",
            ),
        }
    }
    daemon.fpm = file.fpm.map(|fpm| reader.fpm(fpm, &daemon.bridge));
    for gobgp in file.gobgp {
        if let Some(settings) = reader.gobgp(gobgp, &daemon.gobgp) {
            daemon.gobgp.push(settings);
        }
    }
    (daemon, tunnels, included)
}

/// A neighbor's address as written: `fe80::2`, or `fe80::2%dn42b` with the
/// tunnel it is on.
fn scoped_address(text: &str) -> Result<(std::net::IpAddr, Option<String>), String> {
    let (address, scope) = match text.split_once('%') {
        Some((address, scope)) => (address, Some(scope)),
        None => (text, None),
    };
    let parsed = address
        .parse::<std::net::IpAddr>()
        .map_err(|_| format!("address \"{text}\": not an IP address"))?;
    match scope {
        Some(scope) => match TunnelName::new(scope) {
            Ok(name) => Ok((parsed, Some(name.as_str().to_owned()))),
            Err(reason) => Err(format!("address \"{text}\": {reason}")),
        },
        None => Ok((parsed, None)),
    }
}

/// Where a neighbor named by its tunnel alone is: the peer of the tunnel's
/// first point-to-point address, else the other end of a /31 or /30.
fn neighbor_address_on(tunnel: &TunnelConfig) -> Option<std::net::IpAddr> {
    tunnel
        .known_addresses()
        .find_map(|address| address.peer().map(|peer| peer.addr()))
        .or_else(|| {
            tunnel
                .known_addresses()
                .filter(|address| address.peer().is_none())
                .find_map(|address| peer_address(address.local()))
        })
}

/// The tunnels a `[[bgp.neighbor]]` may name.
#[derive(Debug, Clone, Copy)]
pub(super) struct KnownTunnels<'a> {
    /// The file's `[[tunnel]]`s and the included ones read.
    pub configs: &'a [TunnelConfig],
    /// Included files that cannot be read now: their tunnels are known by
    /// name only.
    pub unreadable: &'a [TunnelName],
}

#[derive(Debug, Clone, Copy)]
enum Known<'a> {
    Config(&'a TunnelConfig),
    Unreadable(&'a TunnelName),
}

impl<'a> Known<'a> {
    fn name(&self) -> &'a TunnelName {
        match self {
            Known::Config(tunnel) => &tunnel.name,
            Known::Unreadable(name) => name,
        }
    }
}

impl<'a> KnownTunnels<'a> {
    fn find(&self, name: &str) -> Option<Known<'a>> {
        self.configs
            .iter()
            .find(|tunnel| tunnel.name.as_str() == name)
            .map(Known::Config)
            .or_else(|| {
                self.unreadable
                    .iter()
                    .find(|known| known.as_str() == name)
                    .map(Known::Unreadable)
            })
    }
}

/// The one other address of a point-to-point subnet (`/31` and `/127`:
/// the other address; `/30` and `/126`: the other usable one), where a
/// neighbor named by tunnel is.
fn peer_address(net: IpNet) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let offset = |base: u128, own: u128, len_from_max: u8| -> Option<u128> {
        let index = own - base;
        match (len_from_max, index) {
            (1, 0) => Some(base + 1),
            (1, 1) => Some(base),
            (2, 1) => Some(base + 2),
            (2, 2) => Some(base + 1),
            _ => None,
        }
    };
    match net {
        IpNet::V4(net) => {
            let base = u128::from(u32::from(net.network()));
            let own = u128::from(u32::from(net.addr()));
            let other = offset(base, own, 32 - net.prefix_len())?;
            Some(IpAddr::V4(Ipv4Addr::from(u32::try_from(other).ok()?)))
        }
        IpNet::V6(net) => {
            let base = u128::from(net.network());
            let own = u128::from(net.addr());
            let other = offset(base, own, 128 - net.prefix_len())?;
            Some(IpAddr::V6(Ipv6Addr::from(other)))
        }
    }
}

/// serde's message, made to name keys as the user wrote them and never to
/// echo a string value (it may be a key in the wrong place).
pub(crate) fn serde_message(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().replace('\n', " ");
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, expected)) = rest.split_once('`')
    {
        return format!("unknown key \"{key}\"{}", expected.replace("`", "\""));
    }
    if message == "duplicate key"
        && let Some(key) = error.span().and_then(|span| text.get(span))
    {
        return format!("duplicate key \"{}\"", key.trim_matches('"'));
    }
    // serde knows the value, not its key; the key is usually on its line.
    let key = error
        .span()
        .and_then(|span| key_on_line(text, span.start))
        .map(|key| format!("{key}: "))
        .unwrap_or_default();
    if let Some(rest) = message.strip_prefix("invalid type: string ")
        && let Some((_, expected)) = rest.rsplit_once(", expected ")
    {
        return format!("{key}expected {}, found a string", plain_type(expected));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        // A number too large for an i64 is described as an i128.
        let found = found.trim_end_matches(" as i128");
        return format!("{key}expected {}, found {found}", plain_type(expected));
    }
    message
}

/// The bare key of the `key = value` line holding byte `offset`, if that
/// line starts with one.
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let start = text
        .get(..offset)?
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    let (key, _) = text[start..].split_once('=')?;
    let key = key.trim();
    let bare = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
    (!key.is_empty() && key.bytes().all(bare)).then_some(key)
}

/// serde names Rust types; the user wrote TOML.
fn plain_type(expected: &str) -> &str {
    match expected {
        "i64" => "an integer",
        "a sequence" => "an array",
        other => other,
    }
}

/// How a peer is named in messages: by its `name`, or by its place.
fn peer_label(name: Option<&str>, index: usize, tunnel: &str) -> String {
    match name {
        Some(name) => format!("peer \"{name}\""),
        None => format!("peer {} of {tunnel}", index + 1),
    }
}

/// Checks the raw file, one table at a time, into a `Report`.
#[derive(Debug)]
struct Reader<'t, 'r> {
    text: &'t str,
    report: &'r mut Report,
    /// First line of each tunnel name and listen port, to refuse a second.
    tunnel_names: HashMap<TunnelName, usize>,
    listen_ports: HashMap<u16, (String, usize)>,
}

/// One peer as read, with what the checks across peers need.
#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    /// Line of the first `/0` in its AllowedIPs (of its table when it has
    /// the default AllowedIPs), for the default-route notice.
    default_route_line: Option<usize>,
}

impl Reader<'_, '_> {
    fn line(&self, span: Range<usize>) -> usize {
        line_at(self.text, span.start)
    }

    fn error<T>(&mut self, at: &Spanned<T>, message: String) {
        let line = self.line(at.span());
        self.report.error(line, message);
    }

    fn daemon(&mut self, raw: Option<Spanned<raw::Daemon>>) -> DaemonConfig {
        let mut daemon = DaemonConfig::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return daemon;
        };
        for pattern in &raw.include {
            let written = pattern.get_ref();
            if written.is_empty() {
                self.error(pattern, format!("include: {}", Invalid::EmptyPath));
                continue;
            }
            let path = self.report.directory().join(written);
            match include::check_pattern(&path) {
                Ok(()) => daemon.include.push(path),
                Err(reason) => self.error(pattern, format!("include \"{written}\": {reason}")),
            }
        }
        let tls = [
            ("tls_cert", &raw.tls_cert),
            ("tls_key", &raw.tls_key),
            ("tls_client_ca", &raw.tls_client_ca),
        ];
        let mut tcp = None;
        if let Some(api) = &raw.api {
            let written = match api.get_ref() {
                raw::Api::One(one) => std::slice::from_ref(one),
                raw::Api::Many(many) => many.as_slice(),
            };
            let (mut unix, mut tcp_seen) = (false, false);
            for address in written {
                match api_address(address) {
                    Ok(ApiAddress::Unix(_)) if unix => {
                        self.error(api, format!("api \"{address}\": a second Unix socket"));
                    }
                    Ok(ApiAddress::Tcp(_)) if tcp_seen => {
                        self.error(api, format!("api \"{address}\": a second TCP listener"));
                    }
                    Ok(ApiAddress::Unix(path)) => {
                        unix = true;
                        daemon.api = path;
                    }
                    Ok(ApiAddress::Tcp(listen)) => {
                        tcp_seen = true;
                        tcp = Some((api, address, listen));
                    }
                    Err(reason) => self.error(api, format!("api \"{address}\": {reason}")),
                }
            }
        }
        match tcp {
            Some((api, address, listen)) => {
                let missing: Vec<&str> = tls
                    .iter()
                    .filter(|(_, value)| value.is_none())
                    .map(|(name, _)| *name)
                    .collect();
                let mut paths = Vec::new();
                for (name, value) in tls {
                    let Some(value) = value else { continue };
                    if value.get_ref().is_empty() {
                        self.error(value, format!("{name}: {}", Invalid::EmptyPath));
                    } else {
                        paths.push(self.report.directory().join(value.get_ref()));
                    }
                }
                if !missing.is_empty() {
                    self.error(
                        api,
                        format!(
                            "api \"{address}\": a TCP API takes mutual TLS only; missing {}",
                            missing.join(", ")
                        ),
                    );
                } else if let Ok([cert, key, client_ca]) = <[PathBuf; 3]>::try_from(paths) {
                    daemon.tcp_api = Some(TcpApi {
                        line: self.line(api.span()),
                        listen,
                        cert,
                        key,
                        client_ca,
                    });
                }
            }
            None => {
                for (name, value) in tls {
                    if let Some(value) = value {
                        self.error(
                            value,
                            format!("{name}: only for api = \"tcp://address:port\""),
                        );
                    }
                }
            }
        }
        if let Some(metrics) = raw.metrics {
            match metrics.get_ref().parse::<SocketAddr>() {
                Ok(address) => daemon.metrics = Some(address),
                Err(_) => self.error(
                    &metrics,
                    format!(
                        "metrics \"{}\": {}",
                        metrics.get_ref(),
                        Invalid::SocketAddress
                    ),
                ),
            }
        }
        if let Some(backend) = raw.backend {
            match backend.get_ref().as_str() {
                "auto" => daemon.backend = BackendChoice::Auto,
                "kernel" => daemon.backend = BackendChoice::Kernel,
                "userspace" => daemon.backend = BackendChoice::Userspace,
                other => self.error(
                    &backend,
                    format!("backend \"{other}\": {}", Invalid::BackendWord),
                ),
            }
        }
        if let Some(path) = raw.wireguard_go {
            if path.get_ref().is_empty() {
                self.error(&path, format!("wireguard_go: {}", Invalid::EmptyPath));
            } else {
                daemon.wireguard_go = Some(PathBuf::from(path.get_ref()));
            }
        }
        if let Some(interval) = raw.reconcile_interval {
            match values::seconds(*interval.get_ref()) {
                Ok(interval) => daemon.reconcile_interval = interval,
                Err(reason) => self.error(
                    &interval,
                    format!("reconcile_interval {}: {reason}", interval.get_ref()),
                ),
            }
        }
        if let Some(dead_after) = raw.peer_dead_after {
            match values::seconds(*dead_after.get_ref()) {
                Ok(dead_after) => daemon.peer_dead_after = dead_after,
                Err(reason) => self.error(
                    &dead_after,
                    format!("peer_dead_after {}: {reason}", dead_after.get_ref()),
                ),
            }
        }
        daemon
    }

    fn bridge(&mut self, raw: Option<Spanned<raw::Bridge>>) -> BridgeSettings {
        let mut bridge = BridgeSettings::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return bridge;
        };
        if let Some(table) = raw.table {
            match values::table(*table.get_ref()) {
                Ok(id) => bridge.table = id,
                Err(reason) => self.error(&table, format!("table {}: {reason}", table.get_ref())),
            }
        }
        if let Some(metric) = raw.kernel_metric {
            match u32::try_from(*metric.get_ref()) {
                Ok(value) => bridge.kernel_metric = value,
                Err(_) => self.error(
                    &metric,
                    format!("kernel_metric {}: {}", metric.get_ref(), Invalid::U32Range),
                ),
            }
        }
        if let Some(allow) = raw.allow_other_interfaces {
            bridge.allow_other_interfaces = allow;
        }
        for (key, raw_value, slot) in [
            ("startup_hold", raw.startup_hold, &mut bridge.startup_hold),
            ("hold_time", raw.hold_time, &mut bridge.hold_time),
        ] {
            if let Some(value) = raw_value {
                match values::seconds(*value.get_ref()) {
                    Ok(seconds) => *slot = seconds,
                    Err(reason) => {
                        self.error(&value, format!("{key} {}: {reason}", value.get_ref()))
                    }
                }
            }
        }
        if let Some(limit) = raw.prefix_limit {
            match u32::try_from(*limit.get_ref()) {
                Ok(value) => bridge.prefix_limit = value,
                Err(_) => self.error(
                    &limit,
                    format!("prefix_limit {}: {}", limit.get_ref(), Invalid::U32Range),
                ),
            }
        }
        bridge.source = self.sources("[bridge]", &raw.source);
        bridge.source_line = raw
            .source
            .first()
            .map_or(0, |first| self.line(first.span()));
        for (owner, limit) in raw.prefix_limits {
            match u32::try_from(*limit.get_ref()) {
                Ok(value) => {
                    bridge.prefix_limits.insert(owner, value);
                }
                Err(_) => self.error(
                    &limit,
                    format!(
                        "prefix_limits.{owner} {}: {}",
                        limit.get_ref(),
                        Invalid::U32Range
                    ),
                ),
            }
        }
        bridge
    }

    /// `[[bridge.route]]`: a static route of the config, through `via` (an
    /// address, `fe80::2%tunnel` for a link-local one) and/or `tunnel`,
    /// with BFD to `via` when `bfd` says so.
    fn bridge_route(
        &mut self,
        raw: Spanned<raw::BridgeRoute>,
        tunnels: &KnownTunnels<'_>,
        bfd_defaults: &BfdSettings,
    ) -> Option<StaticRoute> {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let before = self.report.errors.len();
        let prefix = match &raw.prefix {
            None => {
                self.report
                    .error(line, "[[bridge.route]]: prefix is required");
                None
            }
            Some(text) => match text.get_ref().parse::<IpNet>() {
                Ok(prefix) if prefix.trunc() == prefix => Some(prefix),
                Ok(prefix) => {
                    self.error(
                        text,
                        format!(
                            "[[bridge.route]]: prefix {prefix} has host bits set (the network is {})",
                            prefix.trunc()
                        ),
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        text,
                        format!(
                            "[[bridge.route]]: prefix \"{}\" is not a prefix",
                            text.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let label = prefix.map_or_else(|| "[[bridge.route]]".to_owned(), |p| format!("route {p}"));
        let via = match &raw.via {
            None => None,
            Some(text) => match scoped_address(text.get_ref()) {
                Ok(parsed) => Some(parsed),
                Err(message) => {
                    self.error(text, format!("{label}: via: {message}"));
                    None
                }
            },
        };
        let scope = via.as_ref().and_then(|(_, scope)| scope.clone());
        let tunnel_name = match (&raw.tunnel, scope) {
            (Some(name), Some(scope)) if name.get_ref() != &scope => {
                let message = format!(
                    "{label}: via names tunnel \"{scope}\" but tunnel = \"{}\"",
                    name.get_ref()
                );
                self.error(name, message);
                None
            }
            (Some(name), _) => Some((name.get_ref().clone(), self.line(name.span()))),
            (None, Some(scope)) => Some((
                scope,
                raw.via.as_ref().map_or(line, |v| self.line(v.span())),
            )),
            (None, None) => None,
        };
        let tunnel = match &tunnel_name {
            None => None,
            Some((name, at)) => match tunnels.find(name) {
                Some(found) => Some(found.name().clone()),
                None => {
                    self.report.error(
                        *at,
                        format!("{label}: tunnel \"{name}\": no such tunnel ([[tunnel]] or included file)"),
                    );
                    None
                }
            },
        };
        let via = via.map(|(address, _)| address);
        match (via, &raw.tunnel, &tunnel) {
            (None, None, _) if raw.via.is_none() => self.report.error(
                line,
                format!("{label}: give via (the nexthop's address), tunnel, or both"),
            ),
            (Some(address), _, None) if is_link_local(address) && tunnel_name.is_none() => {
                self.report.error(
                    raw.via.as_ref().map_or(line, |v| self.line(v.span())),
                    format!(
                        "{label}: a link-local nexthop needs its tunnel: tunnel = \"...\" or {address}%tunnel"
                    ),
                );
            }
            _ => {}
        }
        let distance = match &raw.distance {
            None => bgp_bridge::route::DEFAULT_DISTANCE,
            Some(value) => match u8::try_from(*value.get_ref()) {
                Ok(distance) => distance,
                Err(_) => {
                    self.error(
                        value,
                        format!(
                            "{label}: distance {}: out of range (0..=255)",
                            value.get_ref()
                        ),
                    );
                    0
                }
            },
        };
        let metric = match &raw.metric {
            None => 0,
            Some(value) => u32::try_from(*value.get_ref()).unwrap_or_else(|_| {
                self.error(
                    value,
                    format!("{label}: metric {}: {}", value.get_ref(), Invalid::U32Range),
                );
                0
            }),
        };
        let bfd = match raw.bfd {
            None => None,
            Some(value) => {
                let at = self.line(value.span());
                let bfd = self.neighbor_bfd(value, bfd_defaults)?;
                if bfd.is_some() && via.is_none() {
                    self.report.error(
                        at,
                        format!(
                            "{label}: bfd needs via: BFD runs to the nexthop's address over its tunnel"
                        ),
                    );
                }
                bfd
            }
        };
        if self.report.errors.len() != before {
            return None;
        }
        Some(StaticRoute {
            prefix: prefix?,
            via,
            tunnel,
            distance,
            metric,
            bfd,
            line,
        })
    }

    /// `[[gobgp]]`: a gobgpd whose best paths the bridge follows; each
    /// under an owner of its own.
    fn gobgp(
        &mut self,
        raw: Spanned<raw::Gobgp>,
        earlier: &[GobgpSettings],
    ) -> Option<GobgpSettings> {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let Some(api) = raw.api else {
            self.report.error(
                line,
                "[[gobgp]]: api is required (gobgpd's gRPC API, like \"127.0.0.1:50051\")",
            );
            return None;
        };
        let written = api.get_ref();
        let api = if let Some(path) = written.strip_prefix("unix:") {
            if !path.starts_with('/') {
                self.error(&api, format!("api \"{written}\": {}", Invalid::ApiPath));
                return None;
            }
            GobgpApi::Unix(PathBuf::from(path))
        } else {
            match written.parse::<SocketAddr>() {
                Ok(address) => GobgpApi::Tcp(address),
                Err(_) => {
                    self.error(&api, format!("api \"{written}\": expected address:port, like 127.0.0.1:50051, or unix:/path"));
                    return None;
                }
            }
        };
        let mut settings = GobgpSettings {
            line,
            api,
            owner: "gobgp".into(),
            ipv4: true,
            ipv6: true,
            hold_time: None,
        };
        if let Some(owner) = raw.owner {
            let name = owner.get_ref();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.error(
                    &owner,
                    format!("owner \"{name}\": expected a name without spaces"),
                );
            } else {
                settings.owner = name.clone();
            }
        }
        if let Some(families) = raw.families {
            settings.ipv4 = false;
            settings.ipv6 = false;
            for family in families.get_ref() {
                match family.as_str() {
                    "ipv4" => settings.ipv4 = true,
                    "ipv6" => settings.ipv6 = true,
                    other => self.error(
                        &families,
                        format!("families: \"{other}\": expected \"ipv4\" or \"ipv6\""),
                    ),
                }
            }
            if families.get_ref().is_empty() {
                self.error(
                    &families,
                    "families: empty; leave it out for both".to_owned(),
                );
            }
        }
        if let Some(hold) = raw.hold_time {
            match values::seconds(*hold.get_ref()) {
                Ok(seconds) => settings.hold_time = Some(seconds),
                Err(reason) => self.error(&hold, format!("hold_time {}: {reason}", hold.get_ref())),
            }
        }
        if let Some(other) = earlier.iter().find(|other| other.owner == settings.owner) {
            self.report.error(
                line,
                format!(
                    "[[gobgp]]: owner \"{}\" is already the owner of the [[gobgp]] on line {}; give each its own",
                    settings.owner, other.line
                ),
            );
            return None;
        }
        Some(settings)
    }

    /// `[fpm]`: where zebra connects, how long its routes outlive it, and
    /// which of its tables is taken: never the bridge's own, since zebra
    /// puts its selected routes in its table itself, takes any other
    /// program's route there for a kernel route that beats its own, and
    /// then stops sending its own.
    fn fpm(&mut self, raw: Spanned<raw::Fpm>, bridge: &BridgeSettings) -> FpmSettings {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let mut fpm = FpmSettings {
            line,
            listen: SocketAddr::from(([127, 0, 0, 1], bgp_bridge::fpm::decode::FPM_DEFAULT_PORT)),
            hold_time: None,
            table: RouteTable::Main,
        };
        if let Some(listen) = raw.listen {
            let text = listen.get_ref();
            // A bare address listens on zebra's default port.
            let parsed = text.parse::<SocketAddr>().or_else(|_| {
                text.parse::<std::net::IpAddr>().map(|address| {
                    SocketAddr::new(address, bgp_bridge::fpm::decode::FPM_DEFAULT_PORT)
                })
            });
            match parsed {
                Ok(address) => fpm.listen = address,
                Err(_) => self.error(
                    &listen,
                    format!("listen \"{text}\": {}", Invalid::SocketAddress),
                ),
            }
        }
        if let Some(hold) = raw.hold_time {
            match values::seconds(*hold.get_ref()) {
                Ok(seconds) => fpm.hold_time = Some(seconds),
                Err(reason) => self.error(&hold, format!("hold_time {}: {reason}", hold.get_ref())),
            }
        }
        let mut table_line = line;
        if let Some(table) = raw.table {
            table_line = self.line(table.span());
            match values::table(*table.get_ref()) {
                Ok(id) => fpm.table = id,
                Err(reason) => self.error(&table, format!("table {}: {reason}", table.get_ref())),
            }
        }
        if fpm.table == bridge.table {
            self.report.error(
                table_line,
                format!(
                    "[fpm]: zebra's table ({}) is the bridge's table too: zebra puts its own routes \
                     there and would take wgd's for kernel routes that beat them, then stop \
                     sending its own; give the bridge a table of its own ([bridge] table = N, \
                     with `ip rule add lookup N`), or take another of zebra's tables ([fpm] table)",
                    fpm.table.id()
                ),
            );
        }
        fpm
    }

    /// A whole number in `range`, or an error naming the key.
    fn number<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: &Spanned<i64>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<T> {
        let number = *value.get_ref();
        if !range.contains(&number) {
            let (low, high) = range.into_inner();
            self.error(
                value,
                format!("{key} {number}: out of range ({low}..={high})"),
            );
            return None;
        }
        T::try_from(number).ok()
    }

    /// `[bfd]`: the defaults of every BFD session.
    fn bfd(&mut self, raw: Option<Spanned<raw::Bfd>>) -> BfdSettings {
        let mut bfd = BfdSettings::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return bfd;
        };
        let values = [
            ("transmit_interval", raw.transmit_interval),
            ("receive_interval", raw.receive_interval),
            ("multiplier", raw.multiplier),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                let line = self.line(value.span());
                self.bfd_value(&mut bfd, "[bfd]", key, *value.get_ref(), line);
            }
        }
        bfd
    }

    /// One of the three BFD values, checked, into `bfd`. Intervals are in
    /// milliseconds: 10 ms to a minute, as FRR takes them.
    fn bfd_value(
        &mut self,
        bfd: &mut BfdSettings,
        table: &str,
        key: &str,
        value: i64,
        line: usize,
    ) {
        let range = if key == "multiplier" {
            1..=255
        } else {
            10..=60_000
        };
        if !range.contains(&value) {
            let (low, high) = range.into_inner();
            let unit = if key == "multiplier" {
                ""
            } else {
                " (milliseconds)"
            };
            self.report.error(
                line,
                format!("{table} {key} {value}: out of range ({low}..={high}){unit}"),
            );
            return;
        }
        match key {
            "transmit_interval" => {
                bfd.transmit_interval = std::time::Duration::from_millis(value as u64)
            }
            "receive_interval" => {
                bfd.receive_interval = std::time::Duration::from_millis(value as u64)
            }
            _ => bfd.multiplier = value as u8,
        }
    }

    /// A neighbor's `bfd`: `true` (the `[bfd]` defaults), `false`, or a
    /// table of the values that differ from them.
    fn neighbor_bfd(
        &mut self,
        raw: Spanned<toml::Value>,
        defaults: &BfdSettings,
    ) -> Option<Option<BfdSettings>> {
        let line = self.line(raw.span());
        let before = self.report.errors.len();
        let bfd = match raw.into_inner() {
            toml::Value::Boolean(enabled) => enabled.then_some(*defaults),
            toml::Value::Table(table) => {
                let mut bfd = *defaults;
                for (key, value) in table {
                    match (key.as_str(), value) {
                        (
                            "transmit_interval" | "receive_interval" | "multiplier",
                            toml::Value::Integer(value),
                        ) => self.bfd_value(&mut bfd, "bfd", &key, value, line),
                        ("transmit_interval" | "receive_interval" | "multiplier", other) => {
                            self.report.error(
                                line,
                                format!("bfd {key}: expected a whole number, found {}", other.type_str()),
                            )
                        }
                        _ => self.report.error(
                            line,
                            format!(
                                "bfd: unknown key \"{key}\" (expected transmit_interval, receive_interval or multiplier)"
                            ),
                        ),
                    }
                }
                Some(bfd)
            }
            other => {
                self.report.error(
                    line,
                    format!(
                        "bfd: expected true, false or a table, found {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        (self.report.errors.len() == before).then_some(bfd)
    }

    fn bgp(
        &mut self,
        raw: Spanned<raw::Bgp>,
        known: &KnownTunnels<'_>,
        bfd: &BfdSettings,
    ) -> Option<BgpSettings> {
        let tunnels = known.configs;
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let asn = match &raw.asn {
            Some(asn) => self.number::<u32>("asn", asn, 1..=i64::from(u32::MAX)),
            None => {
                self.report.error(line, "[bgp]: missing asn");
                None
            }
        };
        let router_id = match &raw.router_id {
            Some(text) => match text.get_ref().parse::<std::net::Ipv4Addr>() {
                Ok(id) if !id.is_unspecified() => Some(id),
                _ => {
                    let message = format!(
                        "router_id \"{}\": expected an IPv4 address other than 0.0.0.0",
                        text.get_ref()
                    );
                    self.error(text, message);
                    None
                }
            },
            // The lowest IPv4 tunnel address, as routers pick a loopback's.
            None => {
                let lowest = tunnels
                    .iter()
                    .flat_map(TunnelConfig::known_addresses)
                    .filter_map(|address| match address.addr() {
                        std::net::IpAddr::V4(address) => Some(address),
                        std::net::IpAddr::V6(_) => None,
                    })
                    .min();
                if lowest.is_none() {
                    self.report.error(
                        line,
                        "[bgp]: no router_id, and no IPv4 tunnel address to take it from",
                    );
                }
                lowest
            }
        };
        let mut networks = Vec::new();
        for network in &raw.networks {
            match values::prefix(network.get_ref()) {
                Ok(prefix) if prefix.trunc() == prefix => networks.push(prefix),
                Ok(prefix) => {
                    let message = format!(
                        "networks \"{}\": host bits set (the network is {})",
                        network.get_ref(),
                        prefix.trunc()
                    );
                    self.error(network, message);
                }
                Err(reason) => {
                    let message = format!("networks \"{}\": {reason}", network.get_ref());
                    self.error(network, message);
                }
            }
        }
        let max_paths = match &raw.max_paths {
            Some(value) => self.number::<u16>("max_paths", value, 1..=64).unwrap_or(1),
            None => 1,
        };
        let hold_time = match &raw.hold_time {
            Some(value) => self.hold_time(value).unwrap_or(90),
            None => 90,
        };
        let restart_time = match &raw.restart_time {
            Some(value) => self
                .number::<u16>("restart_time", value, 1..=4095)
                .unwrap_or(120),
            None => 120,
        };
        let mut neighbors: Vec<NeighborSettings> = Vec::new();
        for neighbor in raw.neighbor {
            let Some(neighbor) = self.neighbor(neighbor, known, bfd) else {
                continue;
            };
            // A link-local address is one per tunnel; any other is one
            // on the whole host.
            let same = |other: &NeighborSettings| {
                other.address == neighbor.address
                    && (!is_link_local(neighbor.address) || other.tunnel == neighbor.tunnel)
            };
            if let Some(first) = neighbors.iter().find(|other| same(other)) {
                let shown = match &neighbor.tunnel {
                    Some(tunnel) if is_link_local(neighbor.address) => {
                        format!("{}%{tunnel}", neighbor.address)
                    }
                    _ => neighbor.address.to_string(),
                };
                let message = format!(
                    "[[bgp.neighbor]]: {shown} is already a neighbor (line {})",
                    first.line
                );
                self.report.error(neighbor.line, message);
                continue;
            }
            neighbors.push(neighbor);
        }
        Some(BgpSettings {
            line,
            asn: asn?,
            router_id: router_id?,
            networks,
            max_paths,
            hold_time,
            graceful_restart: raw.graceful_restart.unwrap_or(true),
            restart_time,
            neighbors,
            rpki: None,
        })
    }

    /// `[rpki]`: the RTR caches (`[[rpki.server]]`, at least one) and the
    /// expire interval if it is set here.
    fn rpki(&mut self, raw: Spanned<raw::Rpki>) -> Option<RpkiSettings> {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let before = self.report.errors.len();
        if raw.server.is_empty() {
            self.report.error(
                line,
                "[rpki]: no [[rpki.server]] (address = \"127.0.0.1:8282\")",
            );
        }
        let expire = raw.expire.as_ref().and_then(|value| {
            self.number::<u64>("expire", value, 1..=172_800)
                .map(std::time::Duration::from_secs)
        });
        let mut servers: Vec<RpkiServerSettings> = Vec::new();
        for server in raw.server {
            let server_line = self.line(server.span());
            let server = server.into_inner();
            let preference = match &server.preference {
                Some(value) => self.number::<u8>("preference", value, 0..=255),
                None => Some(0),
            };
            let address = match &server.address {
                Some(text) => match text.get_ref().parse::<SocketAddr>() {
                    Ok(address) => Some(address),
                    Err(_) => {
                        let message = format!(
                            "[[rpki.server]]: address \"{}\": expected an address and port, like \"127.0.0.1:8282\"",
                            text.get_ref()
                        );
                        self.error(text, message);
                        None
                    }
                },
                None => {
                    self.report
                        .error(server_line, "[[rpki.server]]: missing address");
                    None
                }
            };
            if let Some(address) = address
                && let Some(first) = servers.iter().find(|other| other.address == address)
            {
                let message = format!(
                    "[[rpki.server]]: {address} is already a server (line {})",
                    first.line
                );
                self.report.error(server_line, message);
                continue;
            }
            if let (Some(address), Some(preference)) = (address, preference) {
                servers.push(RpkiServerSettings {
                    line: server_line,
                    address,
                    preference,
                });
            }
        }
        (self.report.errors.len() == before).then_some(RpkiSettings {
            line,
            servers,
            expire,
        })
    }

    /// A hold time: 0 (no keepalives) or 3 seconds and more (RFC 4271 4.2).
    fn hold_time(&mut self, value: &Spanned<i64>) -> Option<u16> {
        let seconds = *value.get_ref();
        if seconds == 1 || seconds == 2 {
            self.error(
                value,
                format!("hold_time {seconds}: must be 0 or at least 3 (seconds)"),
            );
            return None;
        }
        self.number::<u16>("hold_time", value, 0..=65535)
    }

    fn neighbor(
        &mut self,
        raw: Spanned<raw::Neighbor>,
        tunnels: &KnownTunnels<'_>,
        bfd_defaults: &BfdSettings,
    ) -> Option<NeighborSettings> {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        // The address as written, and the tunnel its `%scope` names.
        let written = match &raw.address {
            Some(text) => match scoped_address(text.get_ref()) {
                Ok(parsed) => Some(parsed),
                Err(message) => {
                    self.error(text, message);
                    return None;
                }
            },
            None => None,
        };
        let scope = written.as_ref().and_then(|(_, scope)| scope.clone());
        let tunnel_name = match (&raw.tunnel, scope) {
            (Some(name), Some(scope)) if name.get_ref() != &scope => {
                let message = format!(
                    "[[bgp.neighbor]]: address \"{}\" names tunnel \"{scope}\" but tunnel = \"{}\"",
                    raw.address
                        .as_ref()
                        .map_or("", |text| text.get_ref().as_str()),
                    name.get_ref()
                );
                self.error(name, message);
                return None;
            }
            (Some(name), _) => Some((name.get_ref().clone(), self.line(name.span()))),
            (None, Some(scope)) => {
                let at = raw
                    .address
                    .as_ref()
                    .map_or(line, |text| self.line(text.span()));
                Some((scope, at))
            }
            (None, None) => None,
        };
        // The tunnel: its config, or only its name when its included file
        // cannot be read now.
        let tunnel = match &tunnel_name {
            None => None,
            Some((name, at)) => match tunnels.find(name) {
                Some(found) => Some(found),
                None => {
                    self.report.error(
                        *at,
                        format!("tunnel \"{name}\": no such tunnel ([[tunnel]] or included file)"),
                    );
                    return None;
                }
            },
        };
        let address = match (written.map(|(address, _)| address), tunnel) {
            (Some(address), None) if is_link_local(address) => {
                self.report.error(
                    raw.address.as_ref().map_or(line, |text| self.line(text.span())),
                    format!(
                        "[[bgp.neighbor]]: a link-local neighbor needs its tunnel: tunnel = \"...\" or {address}%tunnel"
                    ),
                );
                None
            }
            (Some(address), Some(Known::Config(found)))
                if is_link_local(address)
                    && !found.known_addresses().any(|own| own.is_link_local()) =>
            {
                self.report.error(
                    tunnel_name.as_ref().map_or(line, |(_, at)| *at),
                    format!(
                        "[[bgp.neighbor]]: tunnel \"{}\" has no link-local address of its own for the session to {address} to start from; give it one (address = [..., \"fe80::1/64\"])",
                        found.name
                    ),
                );
                None
            }
            (Some(address), _) => Some(address),
            (None, Some(Known::Config(found))) => match neighbor_address_on(found) {
                Some(address) => Some(address),
                None => {
                    self.report.error(
                        tunnel_name.as_ref().map_or(line, |(_, at)| *at),
                        format!(
                            "tunnel \"{}\": none of its addresses has a peer (172.20.1.1/32 peer 172.20.2.1/32) or is a point-to-point subnet (/31, /30, /127, /126) with one other address; give the neighbor's address instead",
                            found.name
                        ),
                    );
                    None
                }
            },
            (None, Some(Known::Unreadable(name))) => {
                // Its file is broken: the neighbor waits for a good one.
                self.report.notice(
                    tunnel_name.as_ref().map_or(line, |(_, at)| *at),
                    format!(
                        "[[bgp.neighbor]] on tunnel \"{name}\" is left out: its included file cannot be read, and the neighbor's address comes from it"
                    ),
                );
                return None;
            }
            (None, None) => {
                self.report
                    .error(line, "[[bgp.neighbor]]: missing address or tunnel");
                None
            }
        };
        let tunnel = tunnel.map(|known| known.name().clone());
        let remote_as = match &raw.remote_as {
            Some(asn) => self.number::<u32>("remote_as", asn, 1..=i64::from(u32::MAX)),
            None => {
                self.report
                    .error(line, "[[bgp.neighbor]]: missing remote_as");
                None
            }
        };
        let hold_time = match &raw.hold_time {
            Some(value) => Some(self.hold_time(value)?),
            None => None,
        };
        let prefix_limit = match &raw.prefix_limit {
            Some(value) => self.number::<u32>("prefix_limit", value, 0..=i64::from(u32::MAX))?,
            None => 0,
        };
        let prefix_limit_action = match &raw.prefix_limit_action {
            Some(value) => match value.get_ref().as_str() {
                "reset" => LimitAction::Reset,
                "block" => LimitAction::Block,
                other => {
                    self.error(
                        value,
                        format!(
                            "prefix_limit_action \"{other}\": expected \"reset\" (the session, the default) or \"block\" (new prefixes)"
                        ),
                    );
                    return None;
                }
            },
            None => LimitAction::Reset,
        };
        let bfd = match raw.bfd {
            Some(value) => self.neighbor_bfd(value, bfd_defaults)?,
            None => None,
        };
        let password = match raw.password {
            Some(password) if password.get_ref().is_empty() || password.get_ref().len() > 80 => {
                self.error(&password, "password: 1 to 80 characters (TCP MD5)".into());
                None
            }
            Some(password) => Some(Zeroizing::new(password.into_inner())),
            None => None,
        };
        Some(NeighborSettings {
            line,
            address: address?,
            tunnel,
            remote_as: remote_as?,
            passive: raw.passive.unwrap_or(false),
            hold_time,
            password,
            ttl_security: raw.ttl_security.unwrap_or(false),
            bfd,
            prefix_limit,
            prefix_limit_action,
            description: raw.description,
            import: raw.import.unwrap_or_default(),
            export: raw.export.unwrap_or_default(),
        })
    }

    fn tunnel(&mut self, raw: Spanned<raw::Tunnel>) -> Option<TunnelConfig> {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let label = match &raw.name {
            Some(name) => format!("tunnel \"{}\"", name.get_ref()),
            None => format!("tunnel at line {line}"),
        };

        let name = match &raw.name {
            None => {
                self.report.error(line, "[[tunnel]]: missing name");
                None
            }
            Some(written) => match TunnelName::new(written.get_ref()) {
                Ok(name) => {
                    let name_line = self.line(written.span());
                    match self.tunnel_names.entry(name.clone()) {
                        MapEntry::Occupied(first) => {
                            let message = format!(
                                "duplicate tunnel name \"{name}\" (first at line {})",
                                first.get()
                            );
                            self.report.error(name_line, message);
                        }
                        MapEntry::Vacant(slot) => {
                            slot.insert(name_line);
                        }
                    }
                    Some(name)
                }
                Err(message) => {
                    self.error(written, message);
                    None
                }
            },
        };

        let private_key = self.private_key(&label, line, raw.private_key, raw.private_key_file);

        let listen_port = raw
            .listen_port
            .and_then(|port| match values::port(*port.get_ref()) {
                Ok(number) => {
                    self.claim_port(number, &label, &port);
                    Some(number)
                }
                Err(reason) => {
                    let message = format!("{label}: listen_port {}: {reason}", port.get_ref());
                    self.error(&port, message);
                    None
                }
            });

        let mut addresses = Vec::new();
        for address in &raw.address {
            match values::interface_address(address.get_ref()) {
                Ok(prefix) => addresses.push(prefix),
                Err(reason) => {
                    let message = format!("{label}: address \"{}\": {reason}", address.get_ref());
                    self.error(address, message);
                }
            }
        }

        let mtu = raw.mtu.and_then(|mtu| {
            values::mtu(*mtu.get_ref(), &addresses)
                .map_err(|reason| {
                    self.error(&mtu, format!("{label}: mtu {}: {reason}", mtu.get_ref()));
                })
                .ok()
        });

        let fwmark = raw.fwmark.and_then(|mark| {
            values::fwmark(*mark.get_ref())
                .map_err(|reason| {
                    self.error(
                        &mark,
                        format!("{label}: fwmark {}: {reason}", mark.get_ref()),
                    );
                })
                .ok()
                .flatten()
        });

        let routes = self.routes(&label, raw.routes, raw.table);

        let source = self.sources(&label, &raw.source);

        let hooks = Hooks {
            pre_up: raw.pre_up,
            post_up: raw.post_up,
            pre_down: raw.pre_down,
            post_down: raw.post_down,
        };

        let peers = self.peers(&label, raw.peer);

        let name = name?;
        if routes
            == (RoutesMode::AllowedIps {
                table: RouteTable::Main,
            })
        {
            for peer in &peers {
                if let Some(line) = peer.default_route_line {
                    let defaults = default_prefixes(&peer.config.allowed_ips);
                    let message = default_route_notice(
                        "allowed_ips",
                        &defaults,
                        &name,
                        "set routes = \"full-tunnel\"",
                    );
                    self.report.notice(line, message);
                }
            }
        }
        Some(TunnelConfig {
            name,
            line,
            private_key: private_key?,
            listen_port,
            addresses,
            hook_addresses: values::hook_addresses(&hooks.post_up),
            mtu,
            fwmark,
            routes,
            source,
            hooks,
            peers: peers.into_iter().map(|peer| peer.config).collect(),
        })
    }

    /// The peers of one tunnel, each checked against the ones before it.
    fn peers(&mut self, label: &str, raw_peers: Vec<Spanned<raw::Peer>>) -> Vec<Peer> {
        let mut peers = Vec::new();
        let mut public_keys: HashMap<PublicKey, (String, usize)> = HashMap::new();
        let mut peer_names: HashMap<String, usize> = HashMap::new();
        for (index, raw_peer) in raw_peers.into_iter().enumerate() {
            let name = raw_peer.get_ref().name.clone();
            let key_line = raw_peer
                .get_ref()
                .public_key
                .as_ref()
                .map_or(self.line(raw_peer.span()), |key| self.line(key.span()));
            let peer_label = peer_label(
                name.as_ref().map(|name| name.get_ref().as_str()),
                index,
                label,
            );
            if let Some(name) = &name {
                let name_line = self.line(name.span());
                if let Some(first) = peer_names.get(name.get_ref()) {
                    let message = format!(
                        "{label}: duplicate peer name \"{}\" (first at line {first})",
                        name.get_ref()
                    );
                    self.report.error(name_line, message);
                } else {
                    peer_names.insert(name.get_ref().clone(), name_line);
                }
            }
            let Some(peer) = self.peer(&peer_label, raw_peer) else {
                continue;
            };
            match public_keys.entry(peer.config.public_key) {
                MapEntry::Occupied(first) => {
                    let (first_label, first_line) = first.get();
                    let message = format!(
                        "{peer_label}: public_key is already the key of {first_label} (line {first_line})"
                    );
                    self.report.error(key_line, message);
                }
                MapEntry::Vacant(slot) => {
                    slot.insert((peer_label, key_line));
                }
            }
            peers.push(peer);
        }
        peers
    }

    /// Exactly one of `private_key` and `private_key_file`.
    fn private_key(
        &mut self,
        label: &str,
        table_line: usize,
        inline: Option<Spanned<String>>,
        file: Option<Spanned<String>>,
    ) -> Option<PrivateKey> {
        match (inline, file) {
            (Some(_), Some(file)) => {
                let message = format!("{label}: set private_key or private_key_file, not both");
                self.error(&file, message);
                None
            }
            (None, None) => {
                let message = format!("{label}: missing private_key or private_key_file");
                self.report.error(table_line, message);
                None
            }
            (Some(inline), None) => {
                let line = self.line(inline.span());
                let text = Zeroizing::new(inline.into_inner());
                PrivateKey::from_base64(&text)
                    .map_err(|reason| {
                        self.report
                            .error(line, format!("{label}: private_key: {reason}"));
                    })
                    .ok()
            }
            (None, Some(file)) => {
                let directory = self.report.directory().to_path_buf();
                values::key_file(
                    &directory,
                    file.get_ref(),
                    "private key",
                    PrivateKey::from_base64,
                )
                .map_err(|message| self.error(&file, format!("{label}: {message}")))
                .ok()
            }
        }
    }

    /// `source`: preferred source addresses, plain addresses, one per
    /// family at most.
    fn sources(&mut self, label: &str, raw: &[Spanned<String>]) -> Vec<std::net::IpAddr> {
        let mut sources: Vec<std::net::IpAddr> = Vec::new();
        for written in raw {
            let text = written.get_ref();
            match values::plain_address(text) {
                Ok(address) => {
                    if let Some(first) = sources
                        .iter()
                        .find(|first| first.is_ipv4() == address.is_ipv4())
                    {
                        let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
                        let message = format!(
                            "{label}: source \"{text}\": a second {family} source (the first is {first}); give at most one per family"
                        );
                        self.error(written, message);
                    } else {
                        sources.push(address);
                    }
                }
                Err(reason) => self.error(written, format!("{label}: source \"{text}\": {reason}")),
            }
        }
        sources
    }

    /// Takes in an included file's tunnel, or its last good version when
    /// the file is broken now or clashes with a tunnel before it (a name or
    /// listen port taken). What is wrong is the included file's error, in
    /// its own file: it never refuses the wgd.toml.
    fn include(
        &mut self,
        candidate: Candidate,
        before: &[TunnelConfig],
    ) -> (Option<TunnelConfig>, IncludedFile) {
        let toml = self.report.file.display().to_string();
        let clash = |tunnel: &TunnelConfig| -> Option<ConfigError> {
            let message = before.iter().find_map(|other| {
                let place = match self.tunnel_names.get(&other.name) {
                    Some(line) => format!("{toml}:{line}"),
                    None => "an included file read before this one".into(),
                };
                if other.name == tunnel.name {
                    return Some(format!(
                        "tunnel \"{}\" is already defined ({place})",
                        tunnel.name
                    ));
                }
                match (tunnel.listen_port, other.listen_port) {
                    (Some(port), Some(taken)) if port == taken => Some(format!(
                        "ListenPort {port} is already used by tunnel \"{}\" ({place})",
                        other.name
                    )),
                    _ => None,
                }
            })?;
            Some(ConfigError {
                file: candidate.path.clone(),
                line: tunnel.line,
                message,
            })
        };
        let errors = match &candidate.read {
            Ok(tunnel) => match clash(tunnel) {
                None => {
                    self.report
                        .notices
                        .extend(candidate.notices.iter().cloned());
                    let tunnel = tunnel.clone();
                    return (Some(tunnel), candidate.outcome(vec![], false));
                }
                Some(error) => vec![error],
            },
            Err(errors) if errors.is_empty() => vec![ConfigError {
                file: candidate.path.clone(),
                line: 0,
                message: "gives no tunnel".into(),
            }],
            Err(errors) => errors.clone(),
        };
        match &candidate.last_good {
            Some(last) if clash(last).is_none() => {
                let last = last.clone();
                (Some(last), candidate.outcome(errors, true))
            }
            _ => (None, candidate.outcome(errors, false)),
        }
    }

    /// Refuses a listen port another tunnel of the file already has.
    fn claim_port(&mut self, port: u16, label: &str, at: &Spanned<i64>) {
        let line = self.line(at.span());
        match self.listen_ports.entry(port) {
            MapEntry::Occupied(first) => {
                let (first_label, first_line) = first.get();
                let message = format!(
                    "{label}: listen_port {port} is already used by {first_label} (line {first_line})"
                );
                self.report.error(line, message);
            }
            MapEntry::Vacant(slot) => {
                slot.insert((label.to_owned(), line));
            }
        }
    }

    /// `routes`, and `table`, which only `routes = "allowed-ips"` takes.
    fn routes(
        &mut self,
        label: &str,
        routes: Option<Spanned<String>>,
        table: Option<Spanned<i64>>,
    ) -> RoutesMode {
        let word = routes
            .as_ref()
            .map_or("none", |routes| routes.get_ref().as_str());
        let mode = match word {
            "none" => RoutesMode::None,
            "allowed-ips" => RoutesMode::AllowedIps {
                table: RouteTable::Main,
            },
            "full-tunnel" => RoutesMode::FullTunnel,
            other => {
                let message = format!("{label}: routes \"{other}\": {}", Invalid::RoutesWord);
                if let Some(routes) = &routes {
                    self.error(routes, message);
                }
                RoutesMode::None
            }
        };
        let Some(table) = table else {
            return mode;
        };
        match mode {
            RoutesMode::AllowedIps { .. } => match values::table(*table.get_ref()) {
                Ok(table) => RoutesMode::AllowedIps { table },
                Err(reason) => {
                    self.error(
                        &table,
                        format!("{label}: table {}: {reason}", table.get_ref()),
                    );
                    mode
                }
            },
            _ => {
                let message = format!(
                    "{label}: table {} needs routes = \"allowed-ips\" (routes is \"{word}\")",
                    table.get_ref()
                );
                self.error(&table, message);
                mode
            }
        }
    }

    fn peer(&mut self, label: &str, raw: Spanned<raw::Peer>) -> Option<Peer> {
        let table_line = self.line(raw.span());
        let raw = raw.into_inner();

        if let Some(name) = &raw.name
            && name.get_ref().is_empty()
        {
            self.error(name, "peer name is empty".to_owned());
        }

        let public_key = match raw.public_key {
            None => {
                self.report
                    .error(table_line, format!("{label}: missing public_key"));
                None
            }
            Some(key) => PublicKey::from_base64(key.get_ref())
                .map_err(|reason| self.error(&key, format!("{label}: public_key: {reason}")))
                .ok(),
        };

        let preshared_key = match (raw.preshared_key, raw.preshared_key_file) {
            (Some(_), Some(file)) => {
                let message = format!("{label}: set preshared_key or preshared_key_file, not both");
                self.error(&file, message);
                None
            }
            (None, None) => None,
            (Some(inline), None) => {
                let line = self.line(inline.span());
                let text = Zeroizing::new(inline.into_inner());
                PresharedKey::from_base64(&text)
                    .map_err(|reason| {
                        self.report
                            .error(line, format!("{label}: preshared_key: {reason}"));
                    })
                    .ok()
            }
            (None, Some(file)) => {
                let directory = self.report.directory().to_path_buf();
                let key = values::key_file(
                    &directory,
                    file.get_ref(),
                    "preshared key",
                    PresharedKey::from_base64,
                );
                key.map_err(|message| self.error(&file, format!("{label}: {message}")))
                    .ok()
            }
        };

        let endpoint = raw.endpoint.and_then(|endpoint| {
            values::endpoint(endpoint.get_ref())
                .map_err(|reason| {
                    let message = format!("{label}: endpoint \"{}\": {reason}", endpoint.get_ref());
                    self.error(&endpoint, message);
                })
                .ok()
        });

        let persistent_keepalive = raw.persistent_keepalive.and_then(|keepalive| {
            values::keepalive(*keepalive.get_ref())
                .map_err(|reason| {
                    let message = format!(
                        "{label}: persistent_keepalive {}: {reason}",
                        keepalive.get_ref()
                    );
                    self.error(&keepalive, message);
                })
                .ok()
                .flatten()
        });

        let (allowed_ips, default_route_line) = match raw.allowed_ips {
            None => (default_allowed_ips(), Some(table_line)),
            Some(written) => {
                let mut allowed_ips = Vec::new();
                let mut default_route_line = None;
                for prefix in &written {
                    match values::network(prefix.get_ref()) {
                        Ok(network) => {
                            if network.prefix_len() == 0 && default_route_line.is_none() {
                                default_route_line = Some(self.line(prefix.span()));
                            }
                            allowed_ips.push(network);
                        }
                        Err(reason) => {
                            let message =
                                format!("{label}: allowed_ips \"{}\": {reason}", prefix.get_ref());
                            self.error(prefix, message);
                        }
                    }
                }
                (allowed_ips, default_route_line)
            }
        };

        Some(Peer {
            config: PeerConfig {
                name: raw.name.map(Spanned::into_inner),
                line: table_line,
                public_key: public_key?,
                preshared_key,
                endpoint,
                persistent_keepalive,
                allowed_ips,
            },
            default_route_line,
        })
    }
}

/// The API socket: `unix:/path` or `/path`. TCP would need TLS.
/// Where `api` says the gRPC API listens.
enum ApiAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

fn api_address(written: &str) -> Result<ApiAddress, Invalid> {
    if let Some(address) = written.strip_prefix("tcp:") {
        let address = address.strip_prefix("//").unwrap_or(address);
        return address
            .parse()
            .map(ApiAddress::Tcp)
            .map_err(|_| Invalid::SocketAddress);
    }
    let path = written.strip_prefix("unix:").unwrap_or(written);
    if !path.starts_with('/') {
        return Err(Invalid::ApiPath);
    }
    Ok(ApiAddress::Unix(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use ipnet::IpNet;

    use super::super::testing::{error_line, error_lines, write_key};
    use super::super::{Config, parse_str};
    use super::*;

    const PRIVATE: &str = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=";
    const PRESHARED: &str = "aIG1izlztM2ISSsaLPmQpamqc0FdFnUoYTpeeYNWQm0=";
    const PEER_A: &str = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=";

    /// One tunnel with one peer; the tests below change a line or two.
    const TUNNEL: &str = r#"[[tunnel]]
name = "wg-b"
private_key = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE="
listen_port = 51821
address = ["10.255.0.0/31", "fd00:255::/127"]

[[tunnel.peer]]
name = "site-b"
public_key = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c="
endpoint = "203.0.113.7:51821"
"#;

    /// wgd.toml(5) has a term for every key the reader takes, in the
    /// section of its table: a key added here and not described there
    /// fails. The keys come from serde's refusal of an unknown one.
    #[test]
    fn every_key_is_described_in_the_manual() {
        let manual = include_str!("../../man/wgd.toml.txt");
        let tables = [
            ("[daemon]", "[daemon]"),
            ("[bridge]", "[bridge]"),
            ("[fpm]", "[fpm]"),
            ("[bfd]", "[bfd]"),
            ("[[gobgp]]", "[[gobgp]]"),
            ("[bgp]", "[bgp]"),
            ("[[bgp.neighbor]]", "[[bgp.neighbor]]"),
            ("[[tunnel]]", "[[tunnel]]"),
            ("[[tunnel.peer]]", "[[tunnel]]\n[[tunnel.peer]]"),
        ];
        for (section, header) in tables {
            let text = format!("{header}\nno_such_key = 1\n");
            let error = toml::from_str::<raw::File>(&text).unwrap_err();
            let message = error.message();
            let expected = message
                .split_once("expected ")
                .map(|(_, keys)| keys)
                .unwrap_or_else(|| panic!("{section}: {message}"));
            let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            assert!(keys.len() > 2, "{section}: {message}");
            let body = manual
                .split("\n# ")
                .find(|part| part.starts_with(section) && part[section.len()..].starts_with('\n'))
                .unwrap_or_else(|| panic!("no section {section} in wgd.toml(5)"));
            let terms: Vec<&str> = body
                .lines()
                .filter_map(|line| line.strip_prefix(": "))
                .flat_map(|term| term.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
                .collect();
            let table = section.trim_matches(['[', ']']);
            for key in keys {
                // A table of tables has a section of its own.
                let own_section = format!("\n# [[{table}.{key}]]\n");
                assert!(
                    terms.contains(&key) || manual.contains(&own_section),
                    "{section} {key} is not described in wgd/man/wgd.toml.txt"
                );
            }
        }
    }

    fn parse(file: &Path, text: &str) -> Config {
        match parse_str(file, text) {
            Ok(config) => config,
            Err(errors) => panic!("{} was refused:\n{errors}", file.display()),
        }
    }

    fn prefixes(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|prefix| prefix.parse().unwrap()).collect()
    }

    #[test]
    fn the_example_parses() {
        let directory = tempfile::tempdir().unwrap();
        write_key(directory.path(), "b.key", PRIVATE, 0o600);
        write_key(directory.path(), "b.psk", PRESHARED, 0o400);
        // Key file paths are relative to the config file's directory.
        let text = r#"[daemon]
api = "unix:/run/wgd/wgd.sock"
metrics = "127.0.0.1:9586"
backend = "auto"
wireguard_go = "/usr/bin/wireguard-go"
reconcile_interval = 30
peer_dead_after = 180

[[tunnel]]
name = "wg-b"
private_key_file = "b.key"
listen_port = 51821
address = ["10.255.0.0/31", "fd00:255::/127"]   # host bits allowed
mtu = 1420
fwmark = 0x1234
routes = "allowed-ips"
table = 100
pre_up = ["logger pre-up %i"]
post_up = ["logger up %i"]
post_down = ["logger down %i"]

[[tunnel.peer]]
name = "site-b"
public_key = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c="
preshared_key_file = "b.psk"
endpoint = "203.0.113.7:51821"
persistent_keepalive = 25
allowed_ips = ["0.0.0.0/0", "::/0"]

[[tunnel.peer]]
public_key = "M91GRcFHFdXtRL4UXh9d18sv1w9/KYbibOYcGyLzAwk="
persistent_keepalive = 0
"#;
        let file = directory.path().join("wgd.toml");
        let config = parse(&file, text);
        assert_eq!(config.source, file);
        assert!(config.notices.is_empty(), "{:?}", config.notices);
        let daemon = &config.daemon;
        assert_eq!(daemon.api, Path::new("/run/wgd/wgd.sock"));
        assert_eq!(daemon.metrics, Some("127.0.0.1:9586".parse().unwrap()));
        assert_eq!(daemon.backend, BackendChoice::Auto);
        assert_eq!(
            daemon.wireguard_go.as_deref(),
            Some(Path::new("/usr/bin/wireguard-go"))
        );
        assert_eq!(daemon.reconcile_interval, Duration::from_secs(30));
        assert_eq!(daemon.peer_dead_after, Duration::from_secs(180));

        let [tunnel] = config.tunnels.as_slice() else {
            panic!("one tunnel expected");
        };
        assert_eq!(tunnel.name.as_str(), "wg-b");
        assert_eq!(tunnel.line, 9);
        assert!(tunnel.private_key == PrivateKey::from_base64(PRIVATE).unwrap());
        assert_eq!(tunnel.listen_port, Some(51821));
        assert_eq!(
            tunnel
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.255.0.0/31", "fd00:255::/127"]
        );
        assert_eq!(tunnel.mtu, Some(1420));
        assert_eq!(tunnel.fwmark, Some(0x1234));
        assert_eq!(
            tunnel.routes,
            RoutesMode::AllowedIps {
                table: RouteTable::Id(100)
            }
        );
        assert_eq!(tunnel.hooks.pre_up, ["logger pre-up %i"]);
        assert_eq!(tunnel.hooks.post_up, ["logger up %i"]);
        assert!(tunnel.hooks.pre_down.is_empty());
        assert_eq!(tunnel.hooks.post_down, ["logger down %i"]);

        let [site_b, other] = tunnel.peers.as_slice() else {
            panic!("two peers expected");
        };
        assert_eq!(site_b.name.as_deref(), Some("site-b"));
        assert_eq!(site_b.line, 22);
        assert_eq!(site_b.public_key.to_base64(), PEER_A);
        assert!(site_b.preshared_key == Some(PresharedKey::from_base64(PRESHARED).unwrap()));
        let endpoint = site_b.endpoint.as_ref().unwrap();
        assert_eq!(endpoint.written, "203.0.113.7:51821");
        assert_eq!(endpoint.address, "203.0.113.7:51821".parse().unwrap());
        assert_eq!(site_b.persistent_keepalive, Some(25));
        assert_eq!(site_b.allowed_ips, prefixes(&["0.0.0.0/0", "::/0"]));
        // Unset AllowedIPs filter nothing.
        assert_eq!(other.name, None);
        assert_eq!(other.allowed_ips, default_allowed_ips());
        assert_eq!(other.persistent_keepalive, None);
        assert!(other.endpoint.is_none());
    }

    #[test]
    fn defaults() {
        let config = parse(Path::new("wgd.toml"), TUNNEL);
        assert_eq!(config.daemon, DaemonConfig::default());
        let tunnel = &config.tunnels[0];
        assert_eq!(tunnel.line, 1);
        assert_eq!(tunnel.routes, RoutesMode::None);
        assert_eq!(tunnel.mtu, None);
        assert_eq!(tunnel.fwmark, None);
        assert_eq!(tunnel.hooks, Hooks::default());
        assert_eq!(tunnel.peers[0].allowed_ips, default_allowed_ips());
        assert!(config.notices.is_empty());
        let config = parse(Path::new("wgd.toml"), "");
        assert!(config.tunnels.is_empty());
    }

    #[test]
    fn gobgp_followers_are_read_and_checked() {
        let config = parse_str(
            Path::new("wgd.toml"),
            "[[gobgp]]\napi = \"127.0.0.1:50051\"\n\
             [[gobgp]]\napi = \"unix:/run/gobgpd.sock\"\nowner = \"rs\"\nfamilies = [\"ipv6\"]\nhold_time = 30\n",
        )
        .unwrap();
        let [first, second] = config.daemon.gobgp.as_slice() else {
            panic!("{:?}", config.daemon.gobgp)
        };
        assert_eq!(first.api, GobgpApi::Tcp("127.0.0.1:50051".parse().unwrap()));
        assert_eq!(
            (first.owner.as_str(), first.ipv4, first.ipv6),
            ("gobgp", true, true)
        );
        assert_eq!(second.api, GobgpApi::Unix("/run/gobgpd.sock".into()));
        assert_eq!(
            (second.owner.as_str(), second.ipv4, second.ipv6),
            ("rs", false, true)
        );
        assert_eq!(second.hold_time, Some(Duration::from_secs(30)));
        assert_eq!(
            error_lines(
                "wgd.toml",
                "[[gobgp]]\napi = \"localhost\"\n[[gobgp]]\napi = \"127.0.0.1:1\"\nfamilies = [\"evpn\"]\n\
                 [[gobgp]]\napi = \"127.0.0.1:2\"\n[[gobgp]]\n",
            ),
            [
                "wgd.toml:2: api \"localhost\": expected address:port, like 127.0.0.1:50051, or unix:/path",
                "wgd.toml:5: families: \"evpn\": expected \"ipv4\" or \"ipv6\"",
                "wgd.toml:6: [[gobgp]]: owner \"gobgp\" is already the owner of the [[gobgp]] on line 3; \
                 give each its own",
                "wgd.toml:8: [[gobgp]]: api is required (gobgpd's gRPC API, like \"127.0.0.1:50051\")",
            ]
        );
    }

    #[test]
    fn a_tcp_api_takes_mutual_tls_and_keeps_the_unix_socket() {
        let text = "[daemon]\n\
                    api = \"tcp://127.0.0.1:50061\"\n\
                    tls_cert = \"tls/server.pem\"\n\
                    tls_key = \"/etc/wgd/tls/server.key\"\n\
                    tls_client_ca = \"tls/clients.pem\"\n";
        let config = parse(Path::new("/etc/wgd/wgd.toml"), text);
        assert_eq!(
            config.daemon.api,
            Path::new(crate::config::DEFAULT_API_SOCKET)
        );
        assert_eq!(
            config.daemon.tcp_api,
            Some(TcpApi {
                line: 2,
                listen: "127.0.0.1:50061".parse().unwrap(),
                cert: "/etc/wgd/tls/server.pem".into(),
                key: "/etc/wgd/tls/server.key".into(),
                client_ca: "/etc/wgd/tls/clients.pem".into(),
            })
        );
        assert_eq!(
            error_line(
                "wgd.toml",
                "[daemon]\napi = \"tcp://0.0.0.0:50061\"\ntls_cert = \"a.pem\"\ntls_key = \"a.key\"\n"
            ),
            "wgd.toml:2: api \"tcp://0.0.0.0:50061\": a TCP API takes mutual TLS only; missing tls_client_ca"
        );
        let both = text.replace(
            "\"tcp://127.0.0.1:50061\"",
            "[\"unix:/tmp/wgd.sock\", \"tcp://127.0.0.1:50061\"]",
        );
        let config = parse(Path::new("/etc/wgd/wgd.toml"), &both);
        assert_eq!(config.daemon.api, Path::new("/tmp/wgd.sock"));
        assert!(config.daemon.tcp_api.is_some());
        assert_eq!(
            error_line(
                "wgd.toml",
                "[daemon]\napi = [\"/a.sock\", \"tcp://[::1]:1\", \"tcp://[::1]:2\"]\n\
                 tls_cert = \"a\"\ntls_key = \"b\"\ntls_client_ca = \"c\"\n"
            ),
            "wgd.toml:2: api \"tcp://[::1]:2\": a second TCP listener"
        );
        assert_eq!(
            error_line("wgd.toml", "[daemon]\napi = \"tcp://0.0.0.0\"\n"),
            "wgd.toml:2: api \"tcp://0.0.0.0\": expected address:port, like 127.0.0.1:9586"
        );
        assert_eq!(
            error_line("wgd.toml", "[daemon]\ntls_key = \"a.key\"\n"),
            "wgd.toml:2: tls_key: only for api = \"tcp://address:port\""
        );
    }

    #[test]
    fn api_takes_a_bare_path_and_routes_full_tunnel() {
        let text = format!(
            "[daemon]\napi = \"/tmp/wgd.sock\"\nbackend = \"userspace\"\n\n{}",
            TUNNEL.replace("listen_port", "routes = \"full-tunnel\"\nlisten_port")
        );
        let config = parse(Path::new("wgd.toml"), &text);
        assert_eq!(config.daemon.api, Path::new("/tmp/wgd.sock"));
        assert_eq!(config.daemon.backend, BackendChoice::Userspace);
        assert_eq!(config.tunnels[0].routes, RoutesMode::FullTunnel);
        assert!(config.notices.is_empty());
    }

    #[test]
    fn default_route_notice_for_allowed_ips_in_the_main_table() {
        let text = TUNNEL.replace("listen_port", "routes = \"allowed-ips\"\nlisten_port");
        let config = parse(Path::new("wgd.toml"), &text);
        let notices: Vec<String> = config.notices.iter().map(ToString::to_string).collect();
        // The peer has the default AllowedIPs: the notice goes on its table.
        assert_eq!(
            notices,
            [
                "wgd.toml:8: allowed_ips 0.0.0.0/0, ::/0: wgd routes no default route through wg-b \
              and adds no fwmark table or rules (unlike wg-quick); routes for the other \
              allowed_ips go in the main table. To send all traffic through the tunnel, set \
              routes = \"full-tunnel\"."
            ]
        );
        let text = format!("{text}allowed_ips = [\"10.0.0.0/8\",\n  \"::/0\"]\n");
        let config = parse(Path::new("wgd.toml"), &text);
        assert_eq!(config.notices.len(), 1);
        assert_eq!(config.notices[0].line, 13);
        let text = text.replace(
            "routes = \"allowed-ips\"",
            "routes = \"allowed-ips\"\ntable = 7",
        );
        assert!(parse(Path::new("wgd.toml"), &text).notices.is_empty());
    }

    #[test]
    fn bad_endpoint_port() {
        let text = format!(
            "[daemon]\nbackend = \"auto\"\nreconcile_interval = 30\n\n{}",
            TUNNEL.replace("203.0.113.7:51821", "x:99999")
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:14: peer \"site-b\": endpoint \"x:99999\": port out of range"
        );
    }

    #[test]
    fn bad_endpoint_form() {
        let text = TUNNEL.replace("203.0.113.7:51821", "2001:db8::1:51820");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:10: peer \"site-b\": endpoint \"2001:db8::1:51820\": an IPv6 address \
             needs brackets, like [2001:db8::1]:51820"
        );
    }

    #[test]
    fn duplicate_tunnel_name() {
        let text = format!(
            r#"[[tunnel]]
name = "wg-b"
private_key = "{PRIVATE}"
listen_port = 51821

[[tunnel]]
# the same name again
private_key = "{PRIVATE}"
name = "wg-b"
listen_port = 51822
"#
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:9: duplicate tunnel name \"wg-b\" (first at line 2)"
        );
    }

    #[test]
    fn duplicate_listen_port() {
        let text = format!(
            "{TUNNEL}\n[[tunnel]]\nname = \"wg-c\"\nprivate_key = \"{PRIVATE}\"\nlisten_port = 51821\n"
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:15: tunnel \"wg-c\": listen_port 51821 is already used by tunnel \"wg-b\" \
             (line 4)"
        );
    }

    #[test]
    fn tunnel_name_too_long() {
        let text = TUNNEL.replace("wg-b", "averyveryverylongname");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:2: tunnel name \"averyveryverylongname\" is 21 bytes, interface names have \
             at most 15"
        );
    }

    #[test]
    fn unknown_keys_have_their_line() {
        let text = TUNNEL.replace("listen_port", "foo = 1\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: unknown key \"foo\", expected one of \"name\", \"private_key\", \
             \"private_key_file\", \"listen_port\", \"address\", \"mtu\", \"fwmark\", \"routes\", \
             \"table\", \"source\", \"pre_up\", \"post_up\", \"pre_down\", \"post_down\", \"peer\""
        );
        let text = TUNNEL.replace("endpoint", "endpiont");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:10: unknown key \"endpiont\", expected one of \"name\", \"public_key\", \
             \"preshared_key\", \"preshared_key_file\", \"endpoint\", \"persistent_keepalive\", \
             \"allowed_ips\""
        );
        assert_eq!(
            error_line("wgd.toml", "[deamon]\n"),
            "wgd.toml:1: unknown key \"deamon\", expected one of \"daemon\", \"bridge\", \"bgp\", \"fpm\", \"bfd\", \"gobgp\", \"tunnel\", \"rpki\""
        );
    }

    #[test]
    fn key_file_readable_by_others() {
        let directory = tempfile::tempdir().unwrap();
        let key = write_key(directory.path(), "b.key", PRIVATE, 0o644);
        let text = TUNNEL.replace(
            &format!("private_key = \"{PRIVATE}\""),
            &format!("private_key_file = \"{}\"", key.display()),
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            format!(
                "wgd.toml:3: tunnel \"wg-b\": private key file {key} is readable by group or \
                 others (mode 0644); fix it with: chmod 600 {key}",
                key = key.display()
            )
        );
        let psk = write_key(directory.path(), "b.psk", PRESHARED, 0o604);
        let text = format!("{TUNNEL}preshared_key_file = \"{}\"\n", psk.display());
        assert_eq!(
            error_line("wgd.toml", &text),
            format!(
                "wgd.toml:11: peer \"site-b\": preshared key file {psk} is readable by group or \
                 others (mode 0604); fix it with: chmod 600 {psk}",
                psk = psk.display()
            )
        );
    }

    #[test]
    fn key_file_missing_or_bad() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("nope.key");
        let text = TUNNEL.replace(
            &format!("private_key = \"{PRIVATE}\""),
            &format!("private_key_file = \"{}\"", missing.display()),
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            format!(
                "wgd.toml:3: tunnel \"wg-b\": cannot read private key file {}: no such file or \
                 directory",
                missing.display()
            )
        );
        let bad = write_key(directory.path(), "bad.key", "c2VjcmV0", 0o600);
        let text = TUNNEL.replace(
            &format!("private_key = \"{PRIVATE}\""),
            &format!("private_key_file = \"{}\"", bad.display()),
        );
        let error = error_line("wgd.toml", &text);
        assert_eq!(
            error,
            format!(
                "wgd.toml:3: tunnel \"wg-b\": private key file {}: decodes to 6 bytes, a \
                 WireGuard key has 32",
                bad.display()
            )
        );
        assert!(!error.contains("c2VjcmV0"));
    }

    #[test]
    fn private_key_exactly_once() {
        let both = TUNNEL.replace("listen_port", "private_key_file = \"b.key\"\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &both),
            "wgd.toml:4: tunnel \"wg-b\": set private_key or private_key_file, not both"
        );
        let neither = TUNNEL.replace(&format!("private_key = \"{PRIVATE}\"\n"), "");
        assert_eq!(
            error_line("wgd.toml", &neither),
            "wgd.toml:1: tunnel \"wg-b\": missing private_key or private_key_file"
        );
    }

    #[test]
    fn bad_keys_are_not_echoed() {
        let secret = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SE!";
        let text = TUNNEL.replace(PRIVATE, secret);
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:3: tunnel \"wg-b\": private_key: not valid base64"
        );
        // A key in a field that wants a number is not echoed either.
        let text = TUNNEL.replace(
            "listen_port = 51821",
            &format!("listen_port = \"{secret}\""),
        );
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: listen_port: expected an integer, found a string"
        );
        let text = format!("{TUNNEL}preshared_key = \"{secret}\"\n");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:11: peer \"site-b\": preshared_key: not valid base64"
        );
    }

    #[test]
    fn missing_public_key_names_the_peer_table() {
        let text = TUNNEL.replace(&format!("public_key = \"{PEER_A}\"\n"), "");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:7: peer \"site-b\": missing public_key"
        );
        let text = TUNNEL
            .replace("name = \"site-b\"\n", "")
            .replace(PEER_A, "AAAA");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:8: peer 1 of tunnel \"wg-b\": public_key: decodes to 3 bytes, a WireGuard \
             key has 32"
        );
    }

    #[test]
    fn duplicate_peer_name() {
        let text =
            format!("{TUNNEL}\n[[tunnel.peer]]\nname = \"site-b\"\npublic_key = \"{PRIVATE}\"\n");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:13: tunnel \"wg-b\": duplicate peer name \"site-b\" (first at line 8)"
        );
    }

    #[test]
    fn missing_tunnel_name() {
        let text = TUNNEL.replace("name = \"wg-b\"\n", "");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:1: [[tunnel]]: missing name"
        );
    }

    #[test]
    fn bad_mtu() {
        let text = TUNNEL.replace("listen_port", "mtu = 1000\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: tunnel \"wg-b\": mtu 1000: out of range for a tunnel with IPv6 \
             addresses (1280..=65535)"
        );
        let text = TUNNEL
            .replace("listen_port", "mtu = 70000\nlisten_port")
            .replace(", \"fd00:255::/127\"", "");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: tunnel \"wg-b\": mtu 70000: out of range (576..=65535)"
        );
    }

    #[test]
    fn table_needs_allowed_ips_routes() {
        let text = TUNNEL.replace("listen_port", "routes = \"none\"\ntable = 100\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:5: tunnel \"wg-b\": table 100 needs routes = \"allowed-ips\" (routes is \
             \"none\")"
        );
        let text = TUNNEL.replace("listen_port", "table = 100\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: tunnel \"wg-b\": table 100 needs routes = \"allowed-ips\" (routes is \
             \"none\")"
        );
        let text = TUNNEL.replace("listen_port", "routes = \"all\"\nlisten_port");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: tunnel \"wg-b\": routes \"all\": expected none, allowed-ips or \
             full-tunnel"
        );
    }

    #[test]
    fn listen_port_out_of_range() {
        for port in ["0", "65536", "-1"] {
            let text = TUNNEL.replace("listen_port = 51821", &format!("listen_port = {port}"));
            assert_eq!(
                error_line("wgd.toml", &text),
                format!("wgd.toml:4: tunnel \"wg-b\": listen_port {port}: port out of range")
            );
        }
    }

    #[test]
    fn bad_prefixes() {
        let text = format!("{TUNNEL}allowed_ips = [\"10.0.0.0/8\", \"10.1.2.3/16\"]\n");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:11: peer \"site-b\": allowed_ips \"10.1.2.3/16\": host bits set (did you \
             mean 10.1.0.0/16?)"
        );
        let text = TUNNEL.replace("fd00:255::/127", "fd00:255::/129");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:5: tunnel \"wg-b\": address \"fd00:255::/129\": prefix length must be \
             0..=128"
        );
    }

    #[test]
    fn duplicate_peer_key() {
        let text = format!("{TUNNEL}\n[[tunnel.peer]]\npublic_key = \"{PEER_A}\"\n");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:13: peer 2 of tunnel \"wg-b\": public_key is already the key of peer \
             \"site-b\" (line 9)"
        );
    }

    #[test]
    fn daemon_values_are_checked() {
        let text = "[daemon]\n\
                    api = \"tcp:0.0.0.0:9000\"\n\
                    metrics = \"localhost\"\n\
                    backend = \"kernle\"\n\
                    reconcile_interval = 0\n\
                    peer_dead_after = -5\n\
                    api_socket = 1\n";
        assert_eq!(
            error_line("wgd.toml", text),
            "wgd.toml:7: unknown key \"api_socket\", expected one of \"include\", \"api\", \"tls_cert\", \
             \"tls_key\", \"tls_client_ca\", \"metrics\", \"backend\", \"wireguard_go\", \"reconcile_interval\", \
             \"peer_dead_after\""
        );
        let text = text.replace("api_socket = 1\n", "");
        assert_eq!(
            error_lines("wgd.toml", &text),
            [
                "wgd.toml:2: api \"tcp:0.0.0.0:9000\": a TCP API takes mutual TLS only; missing \
                 tls_cert, tls_key, tls_client_ca",
                "wgd.toml:3: metrics \"localhost\": expected address:port, like 127.0.0.1:9586",
                "wgd.toml:4: backend \"kernle\": expected auto, kernel or userspace",
                "wgd.toml:5: reconcile_interval 0: must be at least 1 (seconds)",
                "wgd.toml:6: peer_dead_after -5: must be at least 1 (seconds)",
            ]
        );
        assert_eq!(
            error_line("wgd.toml", "[daemon]\napi = \"run/wgd.sock\"\n"),
            "wgd.toml:2: api \"run/wgd.sock\": expected unix:/absolute/path, /absolute/path or \
             tcp://address:port"
        );
    }

    #[test]
    fn bridge_values_are_read_and_checked() {
        let config = parse_str(
            Path::new("wgd.toml"),
            "[bridge]\ntable = 100\nkernel_metric = 50\nallow_other_interfaces = true\n\
             startup_hold = 5\nhold_time = 3\nprefix_limit = 10\n[bridge.prefix_limits]\nctl = 2\n",
        )
        .unwrap();
        let bridge = &config.daemon.bridge;
        assert_eq!(bridge.table, RouteTable::Id(100));
        assert_eq!(bridge.kernel_metric, 50);
        assert!(bridge.allow_other_interfaces);
        assert_eq!(bridge.startup_hold, std::time::Duration::from_secs(5));
        assert_eq!(bridge.hold_time, std::time::Duration::from_secs(3));
        assert_eq!(bridge.prefix_limit, 10);
        assert_eq!(bridge.prefix_limits["ctl"], 2);
        assert_eq!(
            error_lines(
                "wgd.toml",
                "[bridge]\ntable = 0\nkernel_metric = -1\nhold_time = 0\n[bridge.prefix_limits]\nctl = -2\n"
            ),
            [
                "wgd.toml:2: table 0: out of range (1..=4294967295)",
                "wgd.toml:3: kernel_metric -1: out of range (0..=4294967295)",
                "wgd.toml:4: hold_time 0: must be at least 1 (seconds)",
                "wgd.toml:6: prefix_limits.ctl -2: out of range (0..=4294967295)",
            ]
        );
        assert!(
            error_line("wgd.toml", "[bridge]\ntabel = 1\n")
                .starts_with("wgd.toml:2: unknown key \"tabel\"")
        );
    }

    #[test]
    fn fpm_values_are_read_and_checked() {
        let config = parse_str(Path::new("wgd.toml"), "[bridge]\ntable = 100\n[fpm]\n").unwrap();
        let fpm = config.daemon.fpm.as_ref().unwrap();
        assert_eq!(fpm.listen, "127.0.0.1:2620".parse().unwrap());
        assert_eq!(fpm.hold_time, None);
        assert_eq!(fpm.table, RouteTable::Main);
        assert_eq!(fpm.line, 3);
        assert!(
            parse_str(Path::new("wgd.toml"), "")
                .unwrap()
                .daemon
                .fpm
                .is_none()
        );
        let config = parse_str(
            Path::new("wgd.toml"),
            "[fpm]\nlisten = \"::1\"\nhold_time = 30\ntable = 100\n",
        )
        .unwrap();
        let fpm = config.daemon.fpm.as_ref().unwrap();
        assert_eq!(fpm.listen, "[::1]:2620".parse().unwrap());
        assert_eq!(fpm.hold_time, Some(std::time::Duration::from_secs(30)));
        assert_eq!(fpm.table, RouteTable::Id(100));
        let config = parse_str(
            Path::new("wgd.toml"),
            "[bridge]\ntable = 100\n[fpm]\nlisten = \"127.0.0.1:2621\"\n",
        )
        .unwrap();
        assert_eq!(
            config.daemon.fpm.unwrap().listen,
            "127.0.0.1:2621".parse().unwrap()
        );
        assert_eq!(
            error_lines(
                "wgd.toml",
                "[bridge]\ntable = 100\n[fpm]\nlisten = \"localhost:x\"\nhold_time = 0\ntable = 0\n"
            ),
            [
                "wgd.toml:4: listen \"localhost:x\": expected address:port, like 127.0.0.1:9586",
                "wgd.toml:5: hold_time 0: must be at least 1 (seconds)",
                "wgd.toml:6: table 0: out of range (1..=4294967295)",
            ]
        );
        // zebra's table may not be the bridge's.
        let error = error_line("wgd.toml", "[fpm]\nlisten = \"127.0.0.1:2620\"\n");
        assert!(
            error.starts_with("wgd.toml:1: [fpm]: zebra's table (254) is the bridge's table too"),
            "{error}"
        );
        assert!(
            error_line("wgd.toml", "[bridge]\ntable = 100\n[fpm]\ntable = 100\n")
                .starts_with("wgd.toml:4: [fpm]: zebra's table (100)")
        );
        assert!(
            error_line("wgd.toml", "[bridge]\ntable = 100\n[fpm]\nport = 1\n")
                .starts_with("wgd.toml:4: unknown key \"port\"")
        );
    }

    #[test]
    fn bgp_neighbors_by_tunnel_or_address() {
        let text = format!(
            "{TUNNEL}\n[bgp]\nasn = 4200000001\nnetworks = [\"192.168.10.0/24\", \"fd00:10::/64\"]\nmax_paths = 2\n\
             [[bgp.neighbor]]\ntunnel = \"wg-b\"\nremote_as = 65002\npassword = \"s3cret\"\n\
             [[bgp.neighbor]]\naddress = \"192.0.2.9\"\nremote_as = 65003\npassive = true\nhold_time = 0\n"
        );
        let config = parse_str(Path::new("wgd.toml"), &text).unwrap();
        let bgp = config.daemon.bgp.as_ref().unwrap();
        assert_eq!(bgp.asn, 4_200_000_001);
        // From the tunnel's 10.255.0.0/31: the lowest IPv4 tunnel address.
        assert_eq!(bgp.router_id.to_string(), "10.255.0.0");
        assert_eq!(bgp.networks.len(), 2);
        assert_eq!(bgp.max_paths, 2);
        assert_eq!(bgp.neighbors[0].address.to_string(), "10.255.0.1");
        assert_eq!(bgp.neighbors[0].tunnel.as_ref().unwrap().as_str(), "wg-b");
        assert!(!format!("{bgp:?}").contains("s3cret"));
        assert_eq!(bgp.neighbors[1].hold_time, Some(0));
        assert!(bgp.neighbors[1].passive);
    }

    #[test]
    fn bgp_values_are_checked() {
        let text = format!(
            "{TUNNEL}\n[bgp]\nasn = 0\nrouter_id = \"0.0.0.0\"\nnetworks = [\"192.168.10.1/24\"]\nhold_time = 2\n\
             [[bgp.neighbor]]\ntunnel = \"wg-x\"\nremote_as = 65002\n\
             [[bgp.neighbor]]\naddress = \"10.255.0.1\"\n\
             [[bgp.neighbor]]\naddress = \"10.255.0.1\"\ntunnel = \"wg-b\"\nremote_as = 1\n"
        );
        let errors = error_lines("wgd.toml", &text);
        let expected = [
            "asn 0: out of range (1..=4294967295)",
            "router_id \"0.0.0.0\": expected an IPv4 address other than 0.0.0.0",
            "networks \"192.168.10.1/24\": host bits set (the network is 192.168.10.0/24)",
            "hold_time 2: must be 0 or at least 3 (seconds)",
            "tunnel \"wg-x\": no such tunnel ([[tunnel]] or included file)",
            "[[bgp.neighbor]]: missing remote_as",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(
                error.ends_with(expected),
                "{error} does not end with {expected}"
            );
        }
    }

    #[test]
    fn bgp_policies_are_read_with_the_neighbor() {
        let text = format!(
            "{TUNNEL}\n[bgp]\nasn = 65001\n[[bgp.neighbor]]\ntunnel = \"wg-b\"\nremote_as = 65002\n\
             [[bgp.neighbor.import.rules]]\naction = \"deny\"\nmatch.prefix_list = [{{ prefix = \"10.0.0.0/8\", le = 32 }}]\n\
             [[bgp.neighbor.export.rules]]\naction = \"permit\"\nset.med = 50\n"
        );
        let config = parse_str(Path::new("wgd.toml"), &text).unwrap();
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.import.rules.len(), 1);
        assert_eq!(neighbor.export.rules[0].set.med, Some(50));
        let bad = text.replace("le = 32", "le = 33");
        let error = error_line("wgd.toml", &bad);
        assert!(error.starts_with("wgd.toml:"), "{error}");
        assert!(error.contains("33"), "{error}");
    }

    /// The policy of an overlay community's node (the README's example):
    /// its space with length bounds, both families, an import limit that
    /// blocks, large communities.
    const OVERLAY_NEIGHBOR: &str = r#"
[bgp]
asn = 4242420001

[[bgp.neighbor]]
tunnel = "wg-b"
remote_as = 4242420002
prefix_limit = 10000
prefix_limit_action = "block"

[bgp.neighbor.import]
default = "deny"

[[bgp.neighbor.import.rules]]
action = "deny"
match.as_path_length = { ge = 16 }

[[bgp.neighbor.import.rules]]
action = "deny"
match.large_community = "4242420002:666:0"

[[bgp.neighbor.import.rules]]
action = "permit"
match.prefix_list = [
  { prefix = "172.20.0.0/14", ge = 21, le = 29 },
  { prefix = "fd00::/8", ge = 44, le = 64 },
]
set.delete_communities = ["4242420001:*:*", "65535:*"]
set.add_large_communities = ["4242420001:1:2"]

[[bgp.neighbor.export.rules]]
action = "permit"
match.origin_as = 4242420001
match.neighbor_as = 4242420001
match.extended_community = "rt:4242420001:1"
"#;

    #[test]
    fn overlay_policies_and_prefix_limit_action_are_read() {
        use bgp_bridge::bgp::decision::LimitAction;
        use bgp_bridge::bgp::policy::{LengthRange, Verdict};
        let text = format!("{TUNNEL}{OVERLAY_NEIGHBOR}");
        let config = parse_str(Path::new("wgd.toml"), &text).unwrap();
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.prefix_limit, 10000);
        assert_eq!(neighbor.prefix_limit_action, LimitAction::Block);
        let import = &neighbor.import;
        assert_eq!(import.default, Verdict::Deny);
        assert_eq!(
            import.rules[0].matches.as_path_length,
            Some(LengthRange {
                ge: Some(16),
                le: None
            })
        );
        assert_eq!(
            import.rules[1].matches.large_community,
            Some("4242420002:666:0".parse().unwrap())
        );
        let bounds = &import.rules[2].matches.prefix_list;
        assert_eq!((bounds[1].ge, bounds[1].le), (Some(44), Some(64)));
        assert_eq!(import.rules[2].set.delete_communities.len(), 2);
        assert_eq!(neighbor.export.rules[0].matches.origin_as, Some(4242420001));
        // Without the action: the session reset, as before.
        let plain = text.replace("prefix_limit_action = \"block\"\n", "");
        let config = parse_str(Path::new("wgd.toml"), &plain).unwrap();
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.prefix_limit_action, LimitAction::Reset);
    }

    #[test]
    fn bad_policy_values_name_their_line() {
        let text = format!("{TUNNEL}{OVERLAY_NEIGHBOR}");
        let line_of = |needle: &str| {
            text.lines()
                .position(|line| line.contains(needle))
                .map(|index| index + 1)
                .unwrap()
        };
        for (good, bad, phrase) in [
            (
                "prefix_limit_action = \"block\"",
                "prefix_limit_action = \"drop\"",
                "prefix_limit_action \"drop\": expected \"reset\"",
            ),
            (
                "\"4242420002:666:0\"",
                "\"4242420002:666\"",
                "large community \"4242420002:666\"",
            ),
            (
                "{ ge = 16 }",
                "{ ge = 16, le = 4 }",
                "as_path_length: ge 16 is above le 4",
            ),
            // In an array over several lines, the toml crate gives the
            // line where the array starts.
            (
                "match.prefix_list = [",
                "match.prefix_list = [{ prefix = \"fd00::/8\", le = 129 }, ",
                "le 129 is not within 8..=128",
            ),
            ("\"65535:*\"", "\"65536:*\"", "community \"65536:*\""),
            (
                "\"rt:4242420001:1\"",
                "\"rt:4242420001:65536\"",
                "65536 does not fit",
            ),
        ] {
            let line = line_of(good);
            let broken = text.replacen(good, bad, 1);
            let error = error_line("wgd.toml", &broken);
            assert!(
                error.starts_with(&format!("wgd.toml:{line}: ")),
                "{bad}: {error} (line {line})"
            );
            assert!(error.contains(phrase), "{bad}: {error}");
        }
    }

    #[test]
    fn rpki_servers_are_read_and_checked() {
        let text = format!(
            "{TUNNEL}\n[bgp]\nasn = 65001\n\
             [rpki]\nexpire = 30\n\
             [[rpki.server]]\naddress = \"127.0.0.1:8282\"\npreference = 1\n\
             [[rpki.server]]\naddress = \"[2001:db8::1]:323\"\n"
        );
        let config = parse_str(Path::new("wgd.toml"), &text).unwrap();
        let rpki = config.daemon.bgp.as_ref().unwrap().rpki.as_ref().unwrap();
        assert_eq!(rpki.expire, Some(std::time::Duration::from_secs(30)));
        assert_eq!(rpki.servers.len(), 2);
        assert_eq!(rpki.servers[0].address.to_string(), "127.0.0.1:8282");
        assert_eq!(rpki.servers[0].preference, 1);
        assert_eq!(rpki.servers[1].preference, 0);
        // None without [rpki].
        let plain = format!("{TUNNEL}\n[bgp]\nasn = 65001\n");
        let config = parse_str(Path::new("wgd.toml"), &plain).unwrap();
        assert_eq!(config.daemon.bgp.unwrap().rpki, None);

        let bad = format!(
            "{TUNNEL}\n[bgp]\nasn = 65001\n\
             [[rpki.server]]\naddress = \"localhost\"\n\
             [[rpki.server]]\npreference = 300\n\
             [[rpki.server]]\naddress = \"127.0.0.1:1\"\n\
             [[rpki.server]]\naddress = \"127.0.0.1:1\"\n"
        );
        let errors = error_lines("wgd.toml", &bad);
        let expected = [
            "[[rpki.server]]: address \"localhost\": expected an address and port, like \"127.0.0.1:8282\"",
            "[[rpki.server]]: missing address",
            "preference 300: out of range (0..=255)",
            "[[rpki.server]]: 127.0.0.1:1 is already a server (line",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.contains(expected), "{error} does not say {expected}");
            assert!(error.starts_with("wgd.toml:"), "{error}");
        }
        let no_bgp = format!("{TUNNEL}\n[[rpki.server]]\naddress = \"127.0.0.1:8282\"\n");
        let error = error_line("wgd.toml", &no_bgp);
        assert!(
            error.ends_with("[rpki]: origin validation needs the BGP speaker ([bgp])"),
            "{error}"
        );
    }

    #[test]
    fn point_to_point_peer_addresses() {
        let other = |text: &str| peer_address(text.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(other("10.255.0.0/31").as_deref(), Some("10.255.0.1"));
        assert_eq!(other("10.255.0.1/31").as_deref(), Some("10.255.0.0"));
        assert_eq!(other("10.255.0.1/30").as_deref(), Some("10.255.0.2"));
        assert_eq!(other("10.255.0.0/30"), None);
        assert_eq!(other("fd00:255::1/127").as_deref(), Some("fd00:255::"));
        assert_eq!(other("10.0.0.1/24"), None);
    }

    #[test]
    fn syntax_errors_have_their_line() {
        let text = TUNNEL.replace("name = \"site-b\"", "name = \"site-b");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:8: invalid basic string, expected `\"`"
        );
        let text = TUNNEL.replace("51821\n", "1.5\n");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:4: listen_port: expected an integer, found floating point `1.5`"
        );
        let text = TUNNEL.replace("listen_port = 51821", "listen_port = 1\nlisten_port = 2");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:5: duplicate key \"listen_port\""
        );
    }

    #[test]
    fn every_error_is_reported_in_file_order() {
        let text = format!(
            "{}\n[[tunnel]]\nname = \"wg-b\"\nlisten_port = 51821\n",
            TUNNEL
                .replace(
                    "listen_port = 51821",
                    "listen_port = 51821\nmtu = 1\nfwmark = -1"
                )
                .replace("203.0.113.7:51821", "203.0.113.7")
        );
        assert_eq!(
            error_lines("wgd.toml", &text),
            [
                "wgd.toml:5: tunnel \"wg-b\": mtu 1: out of range for a tunnel with IPv6 \
                 addresses (1280..=65535)",
                "wgd.toml:6: tunnel \"wg-b\": fwmark -1: out of range (0..=4294967295)",
                "wgd.toml:12: peer \"site-b\": endpoint \"203.0.113.7\": expected host:port or \
                 [IPv6]:port",
                "wgd.toml:14: tunnel \"wg-b\": missing private_key or private_key_file",
                "wgd.toml:15: duplicate tunnel name \"wg-b\" (first at line 2)",
                "wgd.toml:16: tunnel \"wg-b\": listen_port 51821 is already used by tunnel \
                 \"wg-b\" (line 4)",
            ]
        );
    }

    /// A dn42-style peering in wgd.toml: a point-to-point IPv4 address, a
    /// link-local IPv6 one.
    const PEERING: &str = r#"[[tunnel]]
name = "dn42b"
private_key = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE="
listen_port = 51921
address = ["172.20.1.1/32 peer 172.20.2.1/32", "fd42:1::1/128 peer fd42:2::1/128", "fe80::1/64"]

[[tunnel.peer]]
public_key = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c="
endpoint = "198.51.100.2:51922"
"#;

    fn bgp_with(neighbors: &str) -> String {
        format!("{PEERING}\n{TUNNEL}\n[bgp]\nasn = 65001\n{neighbors}")
    }

    #[test]
    fn point_to_point_and_link_local_addresses() {
        let config = parse(Path::new("wgd.toml"), PEERING);
        let addresses: Vec<String> = config.tunnels[0]
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addresses,
            [
                "172.20.1.1/32 peer 172.20.2.1/32",
                "fd42:1::1/128 peer fd42:2::1/128",
                "fe80::1/64"
            ]
        );
        let text = PEERING.replace("172.20.1.1/32 peer", "172.20.1.1/24 peer");
        assert_eq!(
            error_line("wgd.toml", &text),
            "wgd.toml:5: tunnel \"dn42b\": address \"172.20.1.1/24 peer 172.20.2.1/32\": the \
             local part's /24 does not apply with a peer: the kernel gives a point-to-point \
             address the peer's length (/32); write the local address alone or with /32"
        );
    }

    #[test]
    fn a_neighbor_named_by_tunnel_is_its_point_to_point_peer() {
        let config = parse(
            Path::new("wgd.toml"),
            &bgp_with("[[bgp.neighbor]]\ntunnel = \"dn42b\"\nremote_as = 4242420002\n"),
        );
        let bgp = config.daemon.bgp.unwrap();
        assert_eq!(bgp.neighbors[0].address.to_string(), "172.20.2.1");
        assert_eq!(bgp.neighbors[0].tunnel.as_ref().unwrap().as_str(), "dn42b");
        // The router id defaults to the lowest IPv4 address of a tunnel.
        assert_eq!(bgp.router_id.to_string(), "10.255.0.0");
    }

    #[test]
    fn link_local_neighbors_are_scoped_to_their_tunnel() {
        let config = parse(
            Path::new("wgd.toml"),
            &bgp_with(
                "[[bgp.neighbor]]\ntunnel = \"dn42b\"\naddress = \"fe80::2\"\nremote_as = 4242420002\n",
            ),
        );
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.address.to_string(), "fe80::2");
        assert_eq!(neighbor.tunnel.as_ref().unwrap().as_str(), "dn42b");

        let config = parse(
            Path::new("wgd.toml"),
            &bgp_with("[[bgp.neighbor]]\naddress = \"fe80::2%dn42b\"\nremote_as = 4242420002\n"),
        );
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.address.to_string(), "fe80::2");
        assert_eq!(neighbor.tunnel.as_ref().unwrap().as_str(), "dn42b");

        // A global address over a tunnel is fine: the session runs over it.
        let config = parse(
            Path::new("wgd.toml"),
            &bgp_with(
                "[[bgp.neighbor]]\naddress = \"fd42:2::1\"\ntunnel = \"dn42b\"\nremote_as = 4242420002\n",
            ),
        );
        let neighbor = &config.daemon.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(neighbor.address.to_string(), "fd42:2::1");
        assert_eq!(neighbor.tunnel.as_ref().unwrap().as_str(), "dn42b");
    }

    #[test]
    fn the_same_link_local_address_may_be_on_two_tunnels_but_not_twice_on_one() {
        let two = PEERING.replace("dn42b", "dn42c").replace("51921", "51922");
        let text = format!(
            "{PEERING}\n{two}\n[bgp]\nasn = 65001\nrouter_id = \"172.20.1.1\"\n\
             [[bgp.neighbor]]\naddress = \"fe80::2%dn42b\"\nremote_as = 1\n\
             [[bgp.neighbor]]\naddress = \"fe80::2%dn42c\"\nremote_as = 1\n"
        );
        let config = parse(Path::new("wgd.toml"), &text);
        assert_eq!(config.daemon.bgp.unwrap().neighbors.len(), 2);
        let twice = format!(
            "{text}[[bgp.neighbor]]\ntunnel = \"dn42c\"\naddress = \"fe80::2\"\nremote_as = 1\n"
        );
        let error = error_line("wgd.toml", &twice);
        assert!(
            error.ends_with("[[bgp.neighbor]]: fe80::2%dn42c is already a neighbor (line 27)"),
            "{error}"
        );
    }

    #[test]
    fn link_local_neighbor_errors() {
        let error = error_line(
            "wgd.toml",
            &bgp_with("[[bgp.neighbor]]\naddress = \"fe80::2\"\nremote_as = 1\n"),
        );
        assert!(
            error.ends_with(
                "[[bgp.neighbor]]: a link-local neighbor needs its tunnel: tunnel = \"...\" or fe80::2%tunnel"
            ),
            "{error}"
        );
        assert!(error.starts_with("wgd.toml:25:"), "{error}");
        // wg-b has no link-local address of its own to start the session from.
        let error = error_line(
            "wgd.toml",
            &bgp_with("[[bgp.neighbor]]\naddress = \"fe80::2%wg-b\"\nremote_as = 1\n"),
        );
        assert!(
            error.contains("tunnel \"wg-b\" has no link-local address of its own"),
            "{error}"
        );
        let error = error_line(
            "wgd.toml",
            &bgp_with("[[bgp.neighbor]]\naddress = \"fe80::2%nowhere\"\nremote_as = 1\n"),
        );
        assert!(
            error.ends_with("tunnel \"nowhere\": no such tunnel ([[tunnel]] or included file)"),
            "{error}"
        );
        let error = error_line(
            "wgd.toml",
            &bgp_with(
                "[[bgp.neighbor]]\naddress = \"fe80::2%dn42b\"\ntunnel = \"wg-b\"\nremote_as = 1\n",
            ),
        );
        assert!(
            error.contains("names tunnel \"dn42b\" but tunnel = \"wg-b\""),
            "{error}"
        );
    }

    #[test]
    fn source_addresses_one_per_family() {
        let text = format!(
            "[bridge]\nsource = [\"172.20.1.1\", \"fd42:1::1\"]\n{}",
            PEERING.replace("listen_port", "source = [\"172.20.1.1\"]\nlisten_port")
        );
        let config = parse(Path::new("wgd.toml"), &text);
        assert_eq!(
            config.daemon.bridge.source,
            [
                "172.20.1.1".parse::<std::net::IpAddr>().unwrap(),
                "fd42:1::1".parse().unwrap()
            ]
        );
        assert_eq!(
            config.tunnels[0].source,
            ["172.20.1.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(
            parse(Path::new("wgd.toml"), PEERING).tunnels[0]
                .source
                .is_empty()
        );
        assert_eq!(
            error_lines(
                "wgd.toml",
                "[bridge]\nsource = [\"172.20.1.1\", \"172.20.1.2\", \"fd42::1/64\", \"x\"]\n"
            ),
            [
                "wgd.toml:2: [bridge]: source \"172.20.1.2\": a second IPv4 source (the first is 172.20.1.1); give at most one per family",
                "wgd.toml:2: [bridge]: source \"fd42::1/64\": expected an address without a prefix length, like 172.20.1.1",
                "wgd.toml:2: [bridge]: source \"x\": not an IP address",
            ]
        );
        let error = error_line(
            "wgd.toml",
            &PEERING.replace(
                "listen_port",
                "source = [\"fd42:1::1\", \"fd42:1::2\"]\nlisten_port",
            ),
        );
        assert!(
            error.starts_with(
                "wgd.toml:4: tunnel \"dn42b\": source \"fd42:1::2\": a second IPv6 source"
            ),
            "{error}"
        );
    }

    #[test]
    fn bridge_routes_with_bfd_and_their_errors_at_their_line() {
        let text = format!(
            "{TUNNEL}\n[bfd]\nmultiplier = 4\n\
             [[bridge.route]]\nprefix = \"192.168.77.0/24\"\nvia = \"10.255.0.1\"\nbfd = true\ndistance = 10\n\
             [[bridge.route]]\nprefix = \"fd00:77::/64\"\nvia = \"fe80::2%wg-b\"\nbfd = {{ transmit_interval = 100 }}\n\
             [[bridge.route]]\nprefix = \"192.168.78.0/24\"\ntunnel = \"wg-b\"\nmetric = 5\n"
        );
        let config = parse(Path::new("wgd.toml"), &text);
        let routes = &config.daemon.bridge.routes;
        assert_eq!(routes.len(), 3);
        let ms = std::time::Duration::from_millis;
        assert_eq!(routes[0].prefix.to_string(), "192.168.77.0/24");
        assert_eq!(routes[0].via, Some("10.255.0.1".parse().unwrap()));
        assert_eq!(routes[0].tunnel, None);
        assert_eq!(routes[0].distance, 10);
        assert_eq!(
            routes[0].bfd,
            Some(BfdSettings {
                multiplier: 4,
                ..BfdSettings::default()
            })
        );
        assert_eq!(routes[1].tunnel.as_ref().unwrap().as_str(), "wg-b");
        assert_eq!(routes[1].bfd.unwrap().transmit_interval, ms(100));
        assert_eq!(routes[1].distance, bgp_bridge::route::DEFAULT_DISTANCE);
        assert_eq!(
            (routes[2].via, routes[2].metric, routes[2].bfd),
            (None, 5, None)
        );
        assert_eq!(config.daemon.bfd.multiplier, 4);

        let lines = TUNNEL.lines().count();
        let at = |offset: usize, message: &str| format!("wgd.toml:{}: {message}", lines + offset);
        let text = format!(
            "{TUNNEL}\n[[bridge.route]]\nvia = \"10.255.0.1\"\n\
             [[bridge.route]]\nprefix = \"192.168.77.1/24\"\nvia = \"10.255.0.1\"\n\
             [[bridge.route]]\nprefix = \"192.168.79.0/24\"\ntunnel = \"wg-x\"\n\
             [[bridge.route]]\nprefix = \"192.168.80.0/24\"\ntunnel = \"wg-b\"\nbfd = true\n\
             [[bridge.route]]\nprefix = \"fd00:80::/64\"\nvia = \"fe80::2\"\n\
             [[bridge.route]]\nprefix = \"192.168.81.0/24\"\n\
             [[bridge.route]]\nprefix = \"192.168.82.0/24\"\nvia = \"10.255.0.1\"\ndistance = 256\n\
             [[bridge.route]]\nprefix = \"192.168.83.0/24\"\nvia = \"10.255.0.1\"\n\
             [[bridge.route]]\nprefix = \"192.168.83.0/24\"\nvia = \"10.255.0.1\"\n"
        );
        assert_eq!(
            error_lines("wgd.toml", &text),
            [
                at(2, "[[bridge.route]]: prefix is required"),
                at(
                    5,
                    "[[bridge.route]]: prefix 192.168.77.1/24 has host bits set (the network is 192.168.77.0/24)"
                ),
                at(
                    9,
                    "route 192.168.79.0/24: tunnel \"wg-x\": no such tunnel ([[tunnel]] or included file)"
                ),
                at(
                    13,
                    "route 192.168.80.0/24: bfd needs via: BFD runs to the nexthop's address over its tunnel"
                ),
                at(
                    16,
                    "route fd00:80::/64: a link-local nexthop needs its tunnel: tunnel = \"...\" or fe80::2%tunnel"
                ),
                at(
                    17,
                    "route 192.168.81.0/24: give via (the nexthop's address), tunnel, or both"
                ),
                at(
                    22,
                    "route 192.168.82.0/24: distance 256: out of range (0..=255)"
                ),
                at(
                    26,
                    &format!(
                        "route 192.168.83.0/24: given twice (first at line {}): one [[bridge.route]] per prefix",
                        lines + 23
                    )
                ),
            ]
        );
    }

    #[test]
    fn bfd_defaults_and_each_neighbor_s_own() {
        let text = format!(
            "{TUNNEL}\n[bfd]\ntransmit_interval = 100\nmultiplier = 5\n\
             [bgp]\nasn = 65001\n\
             [[bgp.neighbor]]\ntunnel = \"wg-b\"\nremote_as = 65002\nbfd = true\n\
             [[bgp.neighbor]]\naddress = \"192.0.2.9\"\nremote_as = 65003\nbfd = {{ receive_interval = 50 }}\n\
             [[bgp.neighbor]]\naddress = \"192.0.2.10\"\nremote_as = 65003\nbfd = false\n\
             [[bgp.neighbor]]\naddress = \"192.0.2.11\"\nremote_as = 65003\n"
        );
        let config = parse(Path::new("wgd.toml"), &text);
        let neighbors = &config.daemon.bgp.as_ref().unwrap().neighbors;
        let ms = std::time::Duration::from_millis;
        let defaults = BfdSettings {
            transmit_interval: ms(100),
            receive_interval: ms(300),
            multiplier: 5,
        };
        assert_eq!(neighbors[0].bfd, Some(defaults));
        assert_eq!(
            neighbors[1].bfd,
            Some(BfdSettings {
                receive_interval: ms(50),
                ..defaults
            })
        );
        assert_eq!(neighbors[2].bfd, None);
        assert_eq!(neighbors[3].bfd, None);
        // Without [bfd]: FRR's and BIRD's 300 ms x 3.
        let text = format!(
            "{TUNNEL}\n[bgp]\nasn = 65001\n[[bgp.neighbor]]\ntunnel = \"wg-b\"\nremote_as = 65002\nbfd = true\n"
        );
        let config = parse(Path::new("wgd.toml"), &text);
        assert_eq!(
            config.daemon.bgp.unwrap().neighbors[0].bfd,
            Some(BfdSettings::default())
        );
    }

    #[test]
    fn bfd_values_are_checked_at_their_line() {
        let lines = TUNNEL.lines().count();
        let text = format!(
            "{TUNNEL}\n[bfd]\ntransmit_interval = 5\nmultiplier = 0\nreceive_interval = 60001\n\
             [bgp]\nasn = 65001\n\
             [[bgp.neighbor]]\ntunnel = \"wg-b\"\nremote_as = 65002\nbfd = \"yes\"\n\
             [[bgp.neighbor]]\naddress = \"192.0.2.9\"\nremote_as = 65003\nbfd = {{ multiplier = 256, interval = 3, receive_interval = \"x\" }}\n"
        );
        let errors = error_lines("wgd.toml", &text);
        let at = |offset: usize, message: &str| format!("wgd.toml:{}: {message}", lines + offset);
        assert_eq!(
            errors,
            [
                at(
                    3,
                    "[bfd] transmit_interval 5: out of range (10..=60000) (milliseconds)"
                ),
                at(4, "[bfd] multiplier 0: out of range (1..=255)"),
                at(
                    5,
                    "[bfd] receive_interval 60001: out of range (10..=60000) (milliseconds)"
                ),
                at(11, "bfd: expected true, false or a table, found string"),
                at(
                    15,
                    "bfd: unknown key \"interval\" (expected transmit_interval, receive_interval or multiplier)"
                ),
                at(15, "bfd multiplier 256: out of range (1..=255)"),
                at(
                    15,
                    "bfd receive_interval: expected a whole number, found string"
                ),
            ]
        );
        assert!(
            error_line("wgd.toml", "[bfd]\ntransmit = 1\n")
                .starts_with("wgd.toml:2: unknown key \"transmit\"")
        );
    }
}
