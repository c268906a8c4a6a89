//! wg-quick `.conf` files: one tunnel, named after the file.
//!
//! The text is first split into sections of `key = value` entries (`#`
//! starts a comment anywhere on a line, as in wg-quick; section and key
//! names are case-insensitive). The `[Interface]` section then becomes the
//! tunnel and each `[Peer]` a peer, each value checked by `values`.
//!
//! Where wgd differs from wg-quick: `Table` unset or `auto` routes each
//! peer's AllowedIPs in the main table but never a `/0` (a notice says so),
//! `DNS` and `SaveConfig` are ignored with a notice.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;

use ipnet::IpNet;

use super::model::{
    Hooks, InterfaceAddress, PeerConfig, RouteTable, RoutesMode, TunnelConfig, TunnelName,
};
use super::values::{self, Invalid};
use super::{Report, default_prefixes, default_route_notice};
use crate::keys::{PresharedKey, PrivateKey, PublicKey};

/// Whether `text` has an `[Interface]` header, in any case: how a file with
/// neither `.conf` nor `.toml` in its name is recognised as wg-quick.
pub(super) fn has_interface_section(text: &str) -> bool {
    text.lines().any(|line| {
        content(line)
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("interface"))
    })
}

/// Reads a wg-quick file into its tunnel; `None` when something was wrong
/// (and written into `report`).
pub(super) fn parse(text: &str, report: &mut Report) -> Option<TunnelConfig> {
    let name = tunnel_name(report);
    let sections = split_sections(text, report);

    let mut interfaces = sections
        .iter()
        .filter(|section| section.kind == SectionKind::Interface);
    let interface = match interfaces.next() {
        Some(section) => Some(read_interface(section, report)),
        None => {
            report.error(0, "no [Interface] section");
            None
        }
    };
    if let (Some(first), Some(second)) = (&interface, interfaces.next()) {
        report.error(
            second.line,
            format!(
                "second [Interface] section (the first is at line {})",
                first.line
            ),
        );
    }

    let mut peers = Vec::new();
    let mut public_keys: HashMap<PublicKey, usize> = HashMap::new();
    for section in sections
        .iter()
        .filter(|section| section.kind == SectionKind::Peer)
    {
        let Some(peer) = read_peer(section, report) else {
            continue;
        };
        match public_keys.entry(peer.config.public_key) {
            MapEntry::Occupied(first) => report.error(
                peer.public_key_line,
                // Not the key itself: key-shaped text never goes in a message.
                format!("duplicate peer PublicKey (first at line {})", first.get()),
            ),
            MapEntry::Vacant(slot) => {
                slot.insert(peer.public_key_line);
            }
        }
        peers.push(peer);
    }

    let interface = interface?;
    let name = name?;
    if interface.routes
        == (RoutesMode::AllowedIps {
            table: RouteTable::Main,
        })
    {
        for (line, prefixes) in peers.iter().flat_map(|peer| &peer.allowed_ips_lines) {
            let defaults = default_prefixes(prefixes);
            if !defaults.is_empty() {
                let remedy = "use a wgd.toml tunnel with routes = \"full-tunnel\"";
                report.notice(
                    *line,
                    default_route_notice("AllowedIPs", &defaults, &name, remedy),
                );
            }
        }
    }
    Some(TunnelConfig {
        name,
        line: interface.line,
        private_key: interface.private_key?,
        listen_port: interface.listen_port,
        addresses: interface.addresses,
        hook_addresses: values::hook_addresses(&interface.hooks.post_up),
        mtu: interface.mtu,
        fwmark: interface.fwmark,
        routes: interface.routes,
        source: Vec::new(),
        hooks: interface.hooks,
        peers: peers.into_iter().map(|peer| peer.config).collect(),
    })
}

/// The tunnel is named after the file, as with `wg-quick up /path/wg0.conf`.
fn tunnel_name(report: &mut Report) -> Option<TunnelName> {
    let stem = report
        .file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    TunnelName::new(&stem)
        .map_err(|message| {
            report.error(
                0,
                format!("{message} (a wg-quick file names its tunnel after the file)"),
            )
        })
        .ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    Interface,
    Peer,
}

#[derive(Debug)]
struct Section<'t> {
    kind: SectionKind,
    line: usize,
    entries: Vec<Entry<'t>>,
}

#[derive(Debug)]
struct Entry<'t> {
    line: usize,
    /// As written, for messages about unknown keys.
    key: &'t str,
    value: &'t str,
}

/// A line without its comment and surrounding blanks.
fn content(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim()
}

/// Key and section names are short words of letters. Anything else is
/// echoed in no message: a stray line may be a pasted key, and a key's
/// base64 can be all letters for a stretch.
fn is_name(text: &str) -> bool {
    // The longest wg-quick name, "PersistentKeepalive", has 19 letters.
    const LONGEST_NAME: usize = 24;
    !text.is_empty()
        && text.len() <= LONGEST_NAME
        && text.bytes().all(|byte| byte.is_ascii_alphabetic())
}

fn split_sections<'t>(text: &'t str, report: &mut Report) -> Vec<Section<'t>> {
    // Where entries go: outside any section, into the last section, or
    // nowhere (an unknown section, reported once at its header).
    #[derive(PartialEq)]
    enum Place {
        Outside,
        Last,
        Skipped,
    }
    let mut sections: Vec<Section<'t>> = Vec::new();
    let mut place = Place::Outside;
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let content = content(raw_line);
        if content.is_empty() {
            continue;
        }
        if let Some(rest) = content.strip_prefix('[') {
            let name = rest.strip_suffix(']').map(str::trim);
            let kind = match name {
                Some(name) if name.eq_ignore_ascii_case("interface") => SectionKind::Interface,
                Some(name) if name.eq_ignore_ascii_case("peer") => SectionKind::Peer,
                Some(name) if is_name(name) => {
                    report.error(
                        line,
                        format!("unknown section \"[{name}]\"; expected [Interface] or [Peer]"),
                    );
                    place = Place::Skipped;
                    continue;
                }
                _ => {
                    report.error(line, "not a section header; expected [Interface] or [Peer]");
                    place = Place::Skipped;
                    continue;
                }
            };
            sections.push(Section {
                kind,
                line,
                entries: Vec::new(),
            });
            place = Place::Last;
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            report.error(line, "expected \"Key = value\" or a [Section] header");
            continue;
        };
        let key = key.trim();
        if !is_name(key) {
            report.error(line, "expected \"Key = value\" or a [Section] header");
            continue;
        }
        match place {
            Place::Outside => report.error(
                line,
                format!("key \"{key}\" is outside any section; put it under [Interface] or [Peer]"),
            ),
            Place::Skipped => {}
            Place::Last => {
                if let Some(section) = sections.last_mut() {
                    section.entries.push(Entry {
                        line,
                        key,
                        value: value.trim(),
                    });
                }
            }
        }
    }
    sections
}

/// The items of a comma list, blanks dropped (`Address = a, b,`).
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Remembers the line of each single-valued key, to refuse a second one.
#[derive(Debug)]
struct SeenKeys<K>(HashMap<K, usize>);

impl<K: std::hash::Hash + Eq> SeenKeys<K> {
    fn new() -> Self {
        Self(HashMap::new())
    }

    fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// The line of an earlier occurrence, if any; otherwise remembers `line`.
    fn earlier(&mut self, key: K, line: usize) -> Option<usize> {
        match self.0.entry(key) {
            MapEntry::Occupied(first) => Some(*first.get()),
            MapEntry::Vacant(slot) => {
                slot.insert(line);
                None
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum InterfaceKey {
    Address,
    ListenPort,
    PrivateKey,
    Mtu,
    FwMark,
    Table,
    PreUp,
    PostUp,
    PreDown,
    PostDown,
    SaveConfig,
    Dns,
}

impl InterfaceKey {
    fn from_name(name: &str) -> Option<Self> {
        let key = match name.to_ascii_lowercase().as_str() {
            "address" => Self::Address,
            "listenport" => Self::ListenPort,
            "privatekey" => Self::PrivateKey,
            "mtu" => Self::Mtu,
            "fwmark" => Self::FwMark,
            "table" => Self::Table,
            "preup" => Self::PreUp,
            "postup" => Self::PostUp,
            "predown" => Self::PreDown,
            "postdown" => Self::PostDown,
            "saveconfig" => Self::SaveConfig,
            "dns" => Self::Dns,
            _ => return None,
        };
        Some(key)
    }

    /// The name as wg-quick's documentation spells it.
    fn name(self) -> &'static str {
        match self {
            Self::Address => "Address",
            Self::ListenPort => "ListenPort",
            Self::PrivateKey => "PrivateKey",
            Self::Mtu => "MTU",
            Self::FwMark => "FwMark",
            Self::Table => "Table",
            Self::PreUp => "PreUp",
            Self::PostUp => "PostUp",
            Self::PreDown => "PreDown",
            Self::PostDown => "PostDown",
            Self::SaveConfig => "SaveConfig",
            Self::Dns => "DNS",
        }
    }

    /// Keys that may appear on several lines, each adding to the last.
    fn repeats(self) -> bool {
        matches!(
            self,
            Self::Address | Self::PreUp | Self::PostUp | Self::PreDown | Self::PostDown | Self::Dns
        )
    }
}

#[derive(Debug)]
struct Interface {
    line: usize,
    private_key: Option<PrivateKey>,
    listen_port: Option<u16>,
    addresses: Vec<InterfaceAddress>,
    mtu: Option<u32>,
    fwmark: Option<u32>,
    routes: RoutesMode,
    hooks: Hooks,
}

fn read_interface(section: &Section<'_>, report: &mut Report) -> Interface {
    let mut interface = Interface {
        line: section.line,
        private_key: None,
        listen_port: None,
        addresses: Vec::new(),
        mtu: None,
        fwmark: None,
        // wg-quick's default (`Table = auto`), minus the `/0` hijack.
        routes: RoutesMode::AllowedIps {
            table: RouteTable::Main,
        },
        hooks: Hooks::default(),
    };
    // The MTU's range depends on the addresses, which may come after it.
    let mut mtu_entry: Option<(usize, &str, i64)> = None;
    let mut seen = SeenKeys::new();
    for entry in &section.entries {
        let Some(key) = InterfaceKey::from_name(entry.key) else {
            report.error(
                entry.line,
                format!("unknown key \"{}\" in [Interface]", entry.key),
            );
            continue;
        };
        if !key.repeats()
            && let Some(first) = seen.earlier(key, entry.line)
        {
            report.error(
                entry.line,
                format!("duplicate key \"{}\" (first at line {first})", key.name()),
            );
            continue;
        }
        let (line, value, field) = (entry.line, entry.value, key.name());
        let invalid = |report: &mut Report, reason: Invalid| {
            report.error(line, format!("{field} \"{value}\": {reason}"));
        };
        match key {
            InterfaceKey::Address => {
                for item in list(value) {
                    match values::interface_address(item) {
                        Ok(address) => interface.addresses.push(address),
                        Err(reason) => report.error(line, format!("{field} \"{item}\": {reason}")),
                    }
                }
            }
            InterfaceKey::ListenPort => match values::integer(value).and_then(values::port) {
                Ok(port) => interface.listen_port = Some(port),
                Err(reason) => invalid(report, reason),
            },
            InterfaceKey::PrivateKey => match PrivateKey::from_base64(value) {
                Ok(key) => interface.private_key = Some(key),
                Err(reason) => report.error(line, format!("{field}: {reason}")),
            },
            InterfaceKey::Mtu => match values::integer(value) {
                Ok(mtu) => mtu_entry = Some((line, value, mtu)),
                Err(reason) => invalid(report, reason),
            },
            InterfaceKey::FwMark => {
                let mark = if value.eq_ignore_ascii_case("off") {
                    Ok(None)
                } else {
                    values::integer_or_hex(value).and_then(values::fwmark)
                };
                match mark {
                    Ok(mark) => interface.fwmark = mark,
                    Err(reason) => invalid(report, reason),
                }
            }
            InterfaceKey::Table => match routes(value) {
                Ok(routes) => interface.routes = routes,
                Err(reason) => invalid(report, reason),
            },
            // Stored as written; `%i` is replaced when the hooks run.
            InterfaceKey::PreUp => interface.hooks.pre_up.push(value.to_owned()),
            InterfaceKey::PostUp => interface.hooks.post_up.push(value.to_owned()),
            InterfaceKey::PreDown => interface.hooks.pre_down.push(value.to_owned()),
            InterfaceKey::PostDown => interface.hooks.post_down.push(value.to_owned()),
            InterfaceKey::SaveConfig => {
                report.notice(line, "SaveConfig is not supported by wgd, ignored");
            }
            InterfaceKey::Dns => report.notice(line, "DNS is ignored by wgd"),
        }
    }
    if let Some((line, value, mtu)) = mtu_entry {
        match values::mtu(mtu, &interface.addresses) {
            Ok(mtu) => interface.mtu = Some(mtu),
            Err(reason) => report.error(line, format!("MTU \"{value}\": {reason}")),
        }
    }
    if interface.private_key.is_none() && !seen.contains(&InterfaceKey::PrivateKey) {
        report.error(section.line, "[Interface] has no PrivateKey");
    }
    interface
}

/// wg-quick's `Table`: `off` adds no routes; `auto` (the default) and
/// `main` route AllowedIPs in the main table; a number, in that table.
fn routes(value: &str) -> Result<RoutesMode, Invalid> {
    let table = match value.to_ascii_lowercase().as_str() {
        "off" => return Ok(RoutesMode::None),
        "auto" | "main" => RouteTable::Main,
        number => match values::integer(number) {
            Ok(number) => values::table(number)?,
            Err(_) => return Err(Invalid::TableWord),
        },
    };
    Ok(RoutesMode::AllowedIps { table })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

impl PeerKey {
    fn from_name(name: &str) -> Option<Self> {
        let key = match name.to_ascii_lowercase().as_str() {
            "publickey" => Self::PublicKey,
            "presharedkey" => Self::PresharedKey,
            "allowedips" => Self::AllowedIps,
            "endpoint" => Self::Endpoint,
            "persistentkeepalive" => Self::PersistentKeepalive,
            _ => return None,
        };
        Some(key)
    }

    fn name(self) -> &'static str {
        match self {
            Self::PublicKey => "PublicKey",
            Self::PresharedKey => "PresharedKey",
            Self::AllowedIps => "AllowedIPs",
            Self::Endpoint => "Endpoint",
            Self::PersistentKeepalive => "PersistentKeepalive",
        }
    }
}

#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    public_key_line: usize,
    /// Each `AllowedIPs` line and what it added, for the default-route notice.
    allowed_ips_lines: Vec<(usize, Vec<IpNet>)>,
}

fn read_peer(section: &Section<'_>, report: &mut Report) -> Option<Peer> {
    let mut public_key = None;
    let mut public_key_line = section.line;
    let mut preshared_key = None;
    let mut endpoint = None;
    let mut persistent_keepalive = None;
    let mut allowed_ips_lines = Vec::new();
    let mut seen = SeenKeys::new();
    for entry in &section.entries {
        let Some(key) = PeerKey::from_name(entry.key) else {
            report.error(
                entry.line,
                format!("unknown key \"{}\" in [Peer]", entry.key),
            );
            continue;
        };
        if key != PeerKey::AllowedIps
            && let Some(first) = seen.earlier(key, entry.line)
        {
            report.error(
                entry.line,
                format!("duplicate key \"{}\" (first at line {first})", key.name()),
            );
            continue;
        }
        let (line, value, field) = (entry.line, entry.value, key.name());
        let invalid = |report: &mut Report, reason: Invalid| {
            report.error(line, format!("{field} \"{value}\": {reason}"));
        };
        match key {
            PeerKey::PublicKey => {
                public_key_line = line;
                match PublicKey::from_base64(value) {
                    Ok(key) => public_key = Some(key),
                    Err(reason) => report.error(line, format!("{field}: {reason}")),
                }
            }
            PeerKey::PresharedKey => match PresharedKey::from_base64(value) {
                Ok(key) => preshared_key = Some(key),
                Err(reason) => report.error(line, format!("{field}: {reason}")),
            },
            PeerKey::AllowedIps => {
                let mut added = Vec::new();
                for item in list(value) {
                    match values::prefix(item) {
                        // wg itself accepts host bits and masks them off.
                        Ok(prefix) if prefix.trunc() != prefix => {
                            report.notice(
                                line,
                                format!(
                                    "{field} {prefix} has host bits set; wgd uses {}, as wg does",
                                    prefix.trunc()
                                ),
                            );
                            added.push(prefix.trunc());
                        }
                        Ok(prefix) => added.push(prefix),
                        Err(reason) => report.error(line, format!("{field} \"{item}\": {reason}")),
                    }
                }
                allowed_ips_lines.push((line, added));
            }
            PeerKey::Endpoint => match values::endpoint(value) {
                Ok(address) => endpoint = Some(address),
                Err(reason) => invalid(report, reason),
            },
            PeerKey::PersistentKeepalive => {
                let keepalive = if value.eq_ignore_ascii_case("off") {
                    Ok(None)
                } else {
                    values::integer(value).and_then(values::keepalive)
                };
                match keepalive {
                    Ok(keepalive) => persistent_keepalive = keepalive,
                    Err(reason) => invalid(report, reason),
                }
            }
        }
    }
    if !seen.contains(&PeerKey::PublicKey) {
        report.error(section.line, "[Peer] has no PublicKey");
    }
    // A peer with other errors is still returned, to check its key
    // against the other peers'; the report refuses the config anyway.
    let public_key = public_key?;
    Some(Peer {
        config: PeerConfig {
            name: None,
            line: section.line,
            public_key,
            preshared_key,
            endpoint,
            persistent_keepalive,
            // No AllowedIPs line means no AllowedIPs, as with wg-quick (the
            // peer gets no traffic), not wgd.toml's "filter nothing" default:
            // a wg-quick file should mean what it means to wg-quick.
            allowed_ips: allowed_ips_lines
                .iter()
                .flat_map(|(_, prefixes)| prefixes.iter().copied())
                .collect(),
        },
        public_key_line,
        allowed_ips_lines,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{error_line, error_lines};
    use super::super::{Config, parse_str};
    use super::*;

    /// From the write-up in `shared/seed/`: the file that took a host's
    /// traffic into the tunnel.
    const SEED: &str = "\
[Interface]
Address = 10.0.0.1/24
SaveConfig = true
ListenPort = 51820
PrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=

[Peer]
PublicKey = uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=
AllowedIPs = 0.0.0.0/0
Endpoint = 192.168.100.61:51820
";

    const PRIVATE: &str = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=";
    const PEER_A: &str = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=";
    const PEER_B: &str = "M91GRcFHFdXtRL4UXh9d18sv1w9/KYbibOYcGyLzAwk=";

    fn parse(file: &str, text: &str) -> Config {
        match parse_str(Path::new(file), text) {
            Ok(config) => config,
            Err(errors) => panic!("{file} was refused:\n{errors}"),
        }
    }

    fn prefixes(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|prefix| prefix.parse().unwrap()).collect()
    }

    fn addresses(list: &[&str]) -> Vec<InterfaceAddress> {
        list.iter()
            .map(|address| address.parse().unwrap())
            .collect()
    }

    fn routes_of(table_line: &str) -> RoutesMode {
        let text = format!("[Interface]\nPrivateKey = {PRIVATE}\n{table_line}\n");
        parse("wg0.conf", &text).tunnels[0].routes
    }

    #[test]
    fn seed_file_parses_with_its_notices() {
        let config = parse("wg0.conf", SEED);
        assert_eq!(config.source, Path::new("wg0.conf"));
        assert_eq!(config.daemon, super::super::DaemonConfig::default());
        let [tunnel] = config.tunnels.as_slice() else {
            panic!("one tunnel expected");
        };
        assert_eq!(tunnel.name.as_str(), "wg0");
        assert_eq!(tunnel.line, 1);
        assert_eq!(tunnel.addresses, addresses(&["10.0.0.1/24"]));
        assert_eq!(tunnel.listen_port, Some(51820));
        assert!(tunnel.private_key == PrivateKey::from_base64(PRIVATE).unwrap());
        assert_eq!(tunnel.mtu, None);
        assert_eq!(tunnel.fwmark, None);
        assert_eq!(
            tunnel.routes,
            RoutesMode::AllowedIps {
                table: RouteTable::Main
            }
        );
        assert_eq!(tunnel.hooks, Hooks::default());
        let [peer] = tunnel.peers.as_slice() else {
            panic!("one peer expected");
        };
        assert_eq!(peer.line, 7);
        assert_eq!(peer.name, None);
        assert_eq!(peer.public_key.to_base64(), PEER_A);
        assert!(peer.preshared_key.is_none());
        assert_eq!(peer.allowed_ips, prefixes(&["0.0.0.0/0"]));
        let endpoint = peer.endpoint.as_ref().unwrap();
        assert_eq!(endpoint.written, "192.168.100.61:51820");
        assert_eq!(endpoint.address, "192.168.100.61:51820".parse().unwrap());
        assert_eq!(peer.persistent_keepalive, None);

        let notices: Vec<String> = config.notices.iter().map(ToString::to_string).collect();
        assert_eq!(
            notices,
            [
                "wg0.conf:3: SaveConfig is not supported by wgd, ignored",
                "wg0.conf:9: AllowedIPs 0.0.0.0/0: wgd routes no default route through wg0 and \
                 adds no fwmark table or rules (unlike wg-quick); routes for the other AllowedIPs \
                 go in the main table. To send all traffic through the tunnel, use a wgd.toml \
                 tunnel with routes = \"full-tunnel\".",
            ]
        );
    }

    #[test]
    fn seed_workaround_keeps_its_hook_verbatim() {
        // The write-up's workaround, which wgd makes unnecessary.
        let text = "\
[Interface]
Address = 10.0.0.1/24
SaveConfig = true
PostUp = ip -4 route del 0.0.0.0/0 dev %i table $(wg show %i listen-port)
ListenPort = 51820
FwMark = 0xca6c
PrivateKey = aIG1izlztM2ISSsaLPmQpamqc0FdFnUoYTpeeYNWQm0=

[Peer]
PublicKey = uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=
AllowedIPs = 0.0.0.0/0
Endpoint = 192.168.100.61:51820
";
        let tunnel = &parse("wg0.conf", text).tunnels[0];
        assert_eq!(
            tunnel.hooks.post_up,
            ["ip -4 route del 0.0.0.0/0 dev %i table $(wg show %i listen-port)"]
        );
        assert_eq!(tunnel.fwmark, Some(0xca6c));
    }

    #[test]
    fn section_and_key_names_take_any_case() {
        let text = format!(
            "[INTERFACE]\nprivatekey={PRIVATE}\nLISTENPORT = 7\nmtu=1400\nfwMark = 42\n\
             [peer]\npublickey={PEER_A}\nALLOWEDIPS=10.1.0.0/16\npersistentKEEPALIVE = 25\n"
        );
        let tunnel = &parse("wg0.conf", &text).tunnels[0];
        assert_eq!(tunnel.listen_port, Some(7));
        assert_eq!(tunnel.mtu, Some(1400));
        assert_eq!(tunnel.fwmark, Some(42));
        assert_eq!(tunnel.peers[0].allowed_ips, prefixes(&["10.1.0.0/16"]));
        assert_eq!(tunnel.peers[0].persistent_keepalive, Some(25));
    }

    #[test]
    fn lists_append_and_comments_are_dropped() {
        let text = format!(
            "# a router's tunnel\n\
             \n\
             [Interface]   # trailing comment\n\
             \tAddress = 10.0.0.1/31, fd00::1/127\n\
             Address=192.0.2.1/32,\n\
             PrivateKey = {PRIVATE}  # keys have no '#'\n\
             PreUp = echo one\n\
             PreUp = echo two\n\
             PostDown = echo down %i\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_A}\n\
             AllowedIPs = 10.1.0.0/16 , 10.2.0.0/16\n\
             # AllowedIPs = 10.9.0.0/16\n\
             AllowedIPs = fd01::/64\n\
             PersistentKeepalive = off\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_B}\n\
             PersistentKeepalive = 0\n"
        );
        let config = parse("wg0.conf", &text);
        let tunnel = &config.tunnels[0];
        assert_eq!(
            tunnel.addresses,
            addresses(&["10.0.0.1/31", "fd00::1/127", "192.0.2.1/32"])
        );
        assert_eq!(tunnel.hooks.pre_up, ["echo one", "echo two"]);
        assert_eq!(tunnel.hooks.post_down, ["echo down %i"]);
        assert_eq!(
            tunnel.peers[0].allowed_ips,
            prefixes(&["10.1.0.0/16", "10.2.0.0/16", "fd01::/64"])
        );
        assert_eq!(tunnel.peers[0].persistent_keepalive, None);
        assert_eq!(tunnel.peers[1].line, 18);
        // No AllowedIPs line: no AllowedIPs, as wg-quick does.
        assert!(tunnel.peers[1].allowed_ips.is_empty());
        assert_eq!(tunnel.peers[1].persistent_keepalive, None);
        assert!(config.notices.is_empty(), "{:?}", config.notices);
    }

    #[test]
    fn table_maps_to_routes() {
        let main = RoutesMode::AllowedIps {
            table: RouteTable::Main,
        };
        assert_eq!(routes_of(""), main);
        assert_eq!(routes_of("Table = auto"), main);
        assert_eq!(routes_of("Table = main"), main);
        assert_eq!(routes_of("Table = 254"), main);
        assert_eq!(routes_of("Table = off"), RoutesMode::None);
        assert_eq!(routes_of("table = OFF"), RoutesMode::None);
        assert_eq!(
            routes_of("Table = 1234"),
            RoutesMode::AllowedIps {
                table: RouteTable::Id(1234)
            }
        );
    }

    #[test]
    fn default_route_notice_only_for_the_main_table() {
        for table in ["Table = off", "Table = 51820"] {
            let text = SEED.replace("SaveConfig = true", table);
            assert!(parse("wg0.conf", &text).notices.is_empty(), "{table}");
        }
        let text = SEED.replace("AllowedIPs = 0.0.0.0/0", "AllowedIPs = 10.0.0.0/8, ::/0");
        let notices = parse("wg0.conf", &text).notices;
        assert_eq!(notices.len(), 2);
        assert!(
            notices[1]
                .message
                .starts_with("AllowedIPs ::/0: wgd routes no default route")
        );
    }

    #[test]
    fn host_bits_in_allowed_ips_are_masked_with_a_notice() {
        let text = SEED.replace("AllowedIPs = 0.0.0.0/0", "AllowedIPs = 10.1.2.3/16");
        let config = parse("wg0.conf", &text);
        assert_eq!(
            config.tunnels[0].peers[0].allowed_ips,
            prefixes(&["10.1.0.0/16"])
        );
        assert_eq!(
            config.notices[1].to_string(),
            "wg0.conf:9: AllowedIPs 10.1.2.3/16 has host bits set; wgd uses 10.1.0.0/16, as wg does"
        );
    }

    #[test]
    fn dns_is_ignored_with_a_notice() {
        let text = SEED.replace("SaveConfig = true", "DNS = 1.1.1.1");
        let config = parse("wg0.conf", &text);
        assert_eq!(
            config.notices[0].to_string(),
            "wg0.conf:3: DNS is ignored by wgd"
        );
    }

    #[test]
    fn listen_port_out_of_range() {
        let text = SEED.replace("ListenPort = 51820", "ListenPort = 70000");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:4: ListenPort \"70000\": port out of range"
        );
        let text = SEED.replace("ListenPort = 51820", "ListenPort = 0");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:4: ListenPort \"0\": port out of range"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let text = SEED.replace("SaveConfig = true", "Foo = bar");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:3: unknown key \"Foo\" in [Interface]"
        );
        let text = SEED.replace("Endpoint", "EndPiont");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:10: unknown key \"EndPiont\" in [Peer]"
        );
    }

    #[test]
    fn bad_keys_are_refused_without_their_text() {
        let text = SEED.replace(PRIVATE, "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SE!");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:5: PrivateKey: not valid base64"
        );
        let text = SEED.replace(PEER_A, "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMk");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:8: PublicKey: decodes to 27 bytes, a WireGuard key has 32"
        );
        // A key pasted on a line of its own is not echoed either.
        let text = SEED.replace("SaveConfig = true", PRIVATE);
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:3: expected \"Key = value\" or a [Section] header"
        );
    }

    #[test]
    fn key_outside_any_section() {
        let text = format!("ListenPort = 51820\n{SEED}");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:1: key \"ListenPort\" is outside any section; put it under [Interface] or [Peer]"
        );
    }

    #[test]
    fn peer_without_public_key() {
        let text = SEED.replace(&format!("PublicKey = {PEER_A}\n"), "");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:7: [Peer] has no PublicKey"
        );
    }

    #[test]
    fn interface_without_private_key() {
        let text = SEED.replace(&format!("PrivateKey = {PRIVATE}\n"), "");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:1: [Interface] has no PrivateKey"
        );
    }

    #[test]
    fn bad_endpoints() {
        let cases = [
            ("192.168.100.61", "expected host:port or [IPv6]:port"),
            ("192.168.100.61:99999", "port out of range"),
            (
                "2001:db8::1:51820",
                "an IPv6 address needs brackets, like [2001:db8::1]:51820",
            ),
            ("192.168.100.61:x", "port is not a number"),
        ];
        for (endpoint, reason) in cases {
            let text = SEED.replace("192.168.100.61:51820", endpoint);
            assert_eq!(
                error_line("wg0.conf", &text),
                format!("wg0.conf:10: Endpoint \"{endpoint}\": {reason}")
            );
        }
    }

    #[test]
    fn mtu_range_depends_on_addresses_written_later() {
        let text = SEED.replace("SaveConfig = true", "MTU = 1000\nAddress = fd00::1/64");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:3: MTU \"1000\": out of range for a tunnel with IPv6 addresses (1280..=65535)"
        );
        let text = SEED.replace("SaveConfig = true", "MTU = 500");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:3: MTU \"500\": out of range (576..=65535)"
        );
    }

    #[test]
    fn duplicate_single_valued_key() {
        let text = SEED.replace("SaveConfig = true", "listenport = 1");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:4: duplicate key \"ListenPort\" (first at line 3)"
        );
    }

    #[test]
    fn bad_prefixes() {
        let text = SEED.replace(
            "AllowedIPs = 0.0.0.0/0",
            "AllowedIPs = 10.0.0.0/8, 10.0.0.0/33",
        );
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:9: AllowedIPs \"10.0.0.0/33\": prefix length must be 0..=32"
        );
        let text = SEED.replace("Address = 10.0.0.1/24", "Address = 10.0.0.300/24");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:2: Address \"10.0.0.300/24\": not an IP address"
        );
    }

    #[test]
    fn bad_table() {
        let text = SEED.replace("SaveConfig = true", "Table = sometimes");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:3: Table \"sometimes\": expected off, auto, main or a table number"
        );
    }

    #[test]
    fn a_peer_with_the_tunnels_own_key_is_refused() {
        let private = crate::keys::PrivateKey::from_base64(PRIVATE).expect("a valid key");
        let own = private.public_key().to_string();
        let text = SEED.replace(PEER_A, &own);
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:7: tunnel \"wg0\": a peer's public key is the tunnel's own (the public key of its private key); WireGuard would ignore that peer"
        );
    }

    #[test]
    fn duplicate_peer_key() {
        let text = format!("{SEED}\n[Peer]\nPublicKey = {PEER_A}\n");
        assert_eq!(
            error_line("wg0.conf", &text),
            "wg0.conf:13: duplicate peer PublicKey (first at line 8)"
        );
    }

    #[test]
    fn sections_are_checked() {
        assert_eq!(
            error_line("wg0.conf", &SEED.replace("[Peer]", "[Peers]")),
            "wg0.conf:7: unknown section \"[Peers]\"; expected [Interface] or [Peer]"
        );
        assert_eq!(
            error_line("wg0.conf", &format!("{SEED}[Interface]\n")),
            "wg0.conf:11: second [Interface] section (the first is at line 1)"
        );
        assert_eq!(
            error_line("wg0.conf", "# nothing\n"),
            "wg0.conf: no [Interface] section"
        );
    }

    #[test]
    fn file_name_must_be_an_interface_name() {
        assert_eq!(
            error_line("/etc/wireguard/wg-averyverylongname.conf", SEED),
            "/etc/wireguard/wg-averyverylongname.conf: tunnel name \"wg-averyverylongname\" \
             is 20 bytes, interface names have at most 15 (a wg-quick file names its tunnel \
             after the file)"
        );
    }

    #[test]
    fn every_error_is_reported_in_file_order() {
        let text = SEED
            .replace("ListenPort = 51820", "ListenPort = 70000")
            .replace("SaveConfig = true", "Bogus = 1")
            .replace("192.168.100.61:51820", "192.168.100.61");
        assert_eq!(
            error_lines("wg0.conf", &text),
            [
                "wg0.conf:3: unknown key \"Bogus\" in [Interface]",
                "wg0.conf:4: ListenPort \"70000\": port out of range",
                "wg0.conf:10: Endpoint \"192.168.100.61\": expected host:port or [IPv6]:port",
            ]
        );
    }
}
