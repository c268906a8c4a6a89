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

use toml::Spanned;
use zeroize::Zeroizing;

use super::model::{
    BackendChoice, DaemonConfig, Hooks, PeerConfig, RouteTable, RoutesMode, TunnelConfig,
    TunnelName, default_allowed_ips,
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
        #[serde(default)]
        pub tunnel: Vec<Spanned<Tunnel>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Daemon {
        pub api: Option<Spanned<String>>,
        pub metrics: Option<Spanned<String>>,
        pub backend: Option<Spanned<String>>,
        pub wireguard_go: Option<Spanned<String>>,
        pub reconcile_interval: Option<Spanned<i64>>,
        pub peer_dead_after: Option<Spanned<i64>>,
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

/// Reads a wgd.toml into the daemon settings and its tunnels. With errors
/// (in `report`), the values returned are incomplete and meant to be dropped.
pub(super) fn parse(text: &str, report: &mut Report) -> (DaemonConfig, Vec<TunnelConfig>) {
    let file = match toml::from_str::<raw::File>(text) {
        Ok(file) => file,
        Err(error) => {
            let line = error.span().map_or(0, |span| line_at(text, span.start));
            report.error(line, serde_message(&error, text));
            return (DaemonConfig::default(), Vec::new());
        }
    };
    let mut reader = Reader {
        text,
        report,
        tunnel_names: HashMap::new(),
        listen_ports: HashMap::new(),
    };
    let daemon = reader.daemon(file.daemon);
    let tunnels = file
        .tunnel
        .into_iter()
        .filter_map(|tunnel| reader.tunnel(tunnel))
        .collect();
    (daemon, tunnels)
}

/// serde's message, made to name keys as the user wrote them and never to
/// echo a string value (it may be a key in the wrong place).
fn serde_message(error: &toml::de::Error, text: &str) -> String {
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
        return format!("{key}expected {}, found {found}", plain_type(expected));
    }
    message
}

/// The bare key of the `key = value` line holding byte `offset`, if that
/// line starts with one.
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |newline| newline + 1);
    let (key, _) = text[start..].split_once('=')?;
    let key = key.trim();
    let bare = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
    (!key.is_empty() && key.bytes().all(bare)).then_some(key)
}

/// serde names Rust types; the user wrote TOML.
fn plain_type(expected: &str) -> &str {
    match expected {
        "i64" => "an integer",
        "a string" => "a string",
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
        if let Some(api) = raw.api {
            match api_socket(api.get_ref()) {
                Ok(path) => daemon.api = path,
                Err(reason) => self.error(&api, format!("api \"{}\": {reason}", api.get_ref())),
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
            match values::prefix(address.get_ref()) {
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

        let hooks = Hooks {
            pre_up: raw.pre_up,
            post_up: raw.post_up,
            pre_down: raw.pre_down,
            post_down: raw.post_down,
        };

        let mut peers = Vec::new();
        let mut public_keys: HashMap<PublicKey, (String, usize)> = HashMap::new();
        let mut peer_names: HashMap<String, usize> = HashMap::new();
        for (index, raw_peer) in raw.peer.into_iter().enumerate() {
            let name = raw_peer.get_ref().name.clone();
            let peer_line = raw_peer
                .get_ref()
                .public_key
                .as_ref()
                .map_or(self.line(raw_peer.span()), |key| self.line(key.span()));
            let peer_label = peer_label(
                name.as_ref().map(|name| name.get_ref().as_str()),
                index,
                &label,
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
                    self.report.error(peer_line, message);
                }
                MapEntry::Vacant(slot) => {
                    slot.insert((peer_label, peer_line));
                }
            }
            peers.push(peer);
        }

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
            mtu,
            fwmark,
            routes,
            hooks,
            peers: peers.into_iter().map(|peer| peer.config).collect(),
        })
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
fn api_socket(written: &str) -> Result<PathBuf, Invalid> {
    if written.starts_with("tcp:") {
        return Err(Invalid::TcpApi);
    }
    let path = written.strip_prefix("unix:").unwrap_or(written);
    if !path.starts_with('/') {
        return Err(Invalid::ApiPath);
    }
    Ok(PathBuf::from(path))
}
