//! The mesh file: `[mesh]` (tunnel pools, ports, tunnel defaults), `[bgp]`
//! (defaults for every site's `[bgp]`) and one `[[site]]` per site.
//!
//! serde reads the text into the `raw` structs (every field `Spanned`,
//! unknown keys refused); `Reader` checks each field, then everything
//! across sites, and writes each problem with its line. A [`Mesh`] is
//! handed back only when nothing was wrong.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use toml::Spanned;

use super::layout;
use crate::config::values;
use crate::config::{ConfigError, TunnelName, line_at, serde_message};

mod raw {
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct File {
        pub mesh: Option<Spanned<Mesh>>,
        pub bgp: Option<Spanned<Bgp>>,
        pub bfd: Option<Spanned<Bfd>>,
        #[serde(default)]
        pub site: Vec<Spanned<Site>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Bfd {
        pub transmit_interval: Option<Spanned<i64>>,
        pub receive_interval: Option<Spanned<i64>>,
        pub multiplier: Option<Spanned<i64>>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Mesh {
        pub pool: Option<Spanned<String>>,
        pub pool6: Option<Spanned<String>>,
        pub listen_port: Option<Spanned<i64>>,
        pub persistent_keepalive: Option<Spanned<i64>>,
        pub mtu: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Bgp {
        pub hold_time: Option<Spanned<i64>>,
        pub graceful_restart: Option<bool>,
        pub restart_time: Option<Spanned<i64>>,
        pub max_paths: Option<Spanned<i64>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Site {
        pub name: Option<Spanned<String>>,
        pub short_name: Option<Spanned<String>>,
        pub endpoint: Option<Spanned<String>>,
        pub asn: Option<Spanned<i64>>,
        #[serde(default)]
        pub lans: Vec<Spanned<String>>,
    }
}

/// A whole mesh, checked: every site can be rendered once its keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mesh {
    /// The mesh file (absolute); site directories are beside it.
    pub file: PathBuf,
    /// One `/31` per pair of sites.
    pub pool: Ipv4Net,
    /// One `/127` per pair of sites, when the tunnels carry IPv6.
    pub pool6: Option<Ipv6Net>,
    /// Site `i`'s tunnel to site `j` listens on `listen_port + j + 1`.
    pub listen_port: u16,
    pub persistent_keepalive: Option<u16>,
    pub mtu: Option<u32>,
    /// Present when the sites speak BGP (every site has an `asn`).
    pub bgp: Option<BgpDefaults>,
    pub sites: Vec<Site>,
}

impl Mesh {
    /// Where the mesh file is: site directories and keys live here.
    pub fn directory(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }

    /// `<mesh dir>/<site>/`: what gets deployed to the site's `/etc/wgd/`.
    pub fn site_directory(&self, site: &Site) -> PathBuf {
        self.directory().join(&site.name)
    }
}

/// `[bgp]` of the mesh file: set in every site's `[bgp]` when given,
/// `wgd.toml`'s defaults otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpDefaults {
    pub hold_time: Option<u16>,
    pub graceful_restart: Option<bool>,
    pub restart_time: Option<u16>,
    pub max_paths: Option<u16>,
    /// `[bfd]` of the mesh file: BFD on every site's BGP sessions, with
    /// these timers (wgd's defaults where not given).
    pub bfd: Option<BfdDefaults>,
}

/// `[bfd]` of the mesh file, copied to every site's `[bfd]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BfdDefaults {
    /// Milliseconds.
    pub transmit_interval: Option<u16>,
    /// Milliseconds.
    pub receive_interval: Option<u16>,
    pub multiplier: Option<u16>,
}

/// One `[[site]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Also the name of its directory beside the mesh file.
    pub name: String,
    /// What tunnel names are made of: `<own short_name>-<other's>`.
    pub short_name: String,
    pub line: usize,
    /// Where the other sites send to; `None`: the site only dials out.
    pub endpoint: Option<Host>,
    pub asn: Option<u32>,
    pub lans: Vec<IpNet>,
}

/// A site's underlay address, without a port (ports come from the layout).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Address(IpAddr),
    /// A DNS name (lowercase), resolved by `wgd up` on each site.
    Name(String),
}

impl Host {
    fn parse(text: &str) -> Result<Self, String> {
        let bare = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(address) = bare.parse::<IpAddr>() {
            if address.is_unspecified() || address.is_multicast() {
                return Err("not an address a peer can send to".into());
            }
            return Ok(Host::Address(address));
        }
        if text.contains(':') {
            return Err(
                "write the address without a port: each tunnel's port comes from listen_port"
                    .into(),
            );
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        };
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err("expected an IP address or a host name".into());
        }
        Ok(Host::Name(name.to_ascii_lowercase()))
    }

    /// `host:port`, IPv6 in brackets, as `endpoint` takes it.
    pub fn with_port(&self, port: u16) -> String {
        match self {
            Host::Address(IpAddr::V6(address)) => format!("[{address}]:{port}"),
            Host::Address(address) => format!("{address}:{port}"),
            Host::Name(name) => format!("{name}:{port}"),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Address(address) => write!(f, "{address}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// What reading the mesh file gave.
#[derive(Debug)]
pub(super) struct Reading {
    /// The mesh file, absolute.
    pub file: PathBuf,
    /// Only when nothing was wrong.
    pub mesh: Option<Mesh>,
    /// The sites whose names are valid, with their lines: their keys can
    /// be checked even when something else is wrong.
    pub sites: Vec<(String, usize)>,
    pub errors: Vec<ConfigError>,
}

/// Reads and checks the mesh file at `path`.
pub(super) fn read(path: &Path) -> Reading {
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut reading = Reading {
        file: file.clone(),
        mesh: None,
        sites: Vec::new(),
        errors: Vec::new(),
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            parse(&file, text, &mut reading);
        }
        Err(error) => reading.errors.push(ConfigError {
            file,
            line: 0,
            message: format!("cannot read the file: {}", values::describe_io(&error)),
        }),
    }
    reading
}

/// Reads `text` as the content of `file` into `reading`.
pub(super) fn parse(file: &Path, text: &str, reading: &mut Reading) {
    let raw = match toml::from_str::<raw::File>(text) {
        Ok(raw) => raw,
        Err(error) => {
            let line = error.span().map_or(0, |span| line_at(text, span.start));
            let message = serde_message(&error, text);
            reading.errors.push(ConfigError {
                file: file.to_path_buf(),
                line,
                message,
            });
            return;
        }
    };
    let mut reader = Reader {
        text,
        file,
        errors: Vec::new(),
    };
    let mesh = reader.mesh(raw, &mut reading.sites);
    reading.errors.append(&mut reader.errors);
    reading.mesh = mesh.filter(|_| reading.errors.is_empty());
}

/// ASNs no site may have: 0 (RFC 7607), AS_TRANS (RFC 6793) and the
/// last of each range (RFC 7300).
const RESERVED_ASNS: [i64; 4] = [0, 23456, 65535, 4_294_967_295];

struct Reader<'t> {
    text: &'t str,
    file: &'t Path,
    errors: Vec<ConfigError>,
}

/// A site as read, with the lines its cross-site checks name.
struct ReadSite {
    site: Site,
    endpoint_line: usize,
    /// Whether an endpoint was written (even one that was refused).
    endpoint_written: bool,
    /// Whether an asn was written (even one that was refused).
    asn_written: bool,
    lan_lines: Vec<usize>,
}

impl Reader<'_> {
    fn line<T>(&self, at: &Spanned<T>) -> usize {
        line_at(self.text, at.span().start)
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn mesh(&mut self, raw: raw::File, names: &mut Vec<(String, usize)>) -> Option<Mesh> {
        let (mesh_line, mesh) = match raw.mesh {
            Some(mesh) => (self.line(&mesh), Some(mesh.into_inner())),
            None => {
                self.error(1, "missing [mesh] (with pool = \"10.255.0.0/24\", say)");
                (1, None)
            }
        };
        let mesh_present = mesh.is_some();
        let mesh = mesh.unwrap_or_default();
        // With no [mesh] at all, its missing pool is not news.
        let pool = if mesh_present {
            self.pool4(mesh_line, mesh.pool.as_ref())
        } else {
            None
        };
        let pool6 = self.pool6(mesh.pool6.as_ref());
        let written_sites = raw.site.len();
        let mut sites = Vec::new();
        for raw_site in raw.site {
            if let Some(site) = self.site(raw_site) {
                sites.push(site);
            }
        }
        let distinct = self.unique_names(&sites, names);
        let listen_port = self.listen_port(mesh_line, mesh.listen_port.as_ref(), sites.len());
        let persistent_keepalive = mesh.persistent_keepalive.and_then(|keepalive| {
            values::keepalive(*keepalive.get_ref())
                .map_err(|reason| {
                    let line = self.line(&keepalive);
                    self.error(
                        line,
                        format!("persistent_keepalive {}: {reason}", keepalive.get_ref()),
                    );
                })
                .ok()
                .flatten()
        });
        let mtu = mesh.mtu.and_then(|mtu| {
            let families: Vec<crate::config::InterfaceAddress> =
                std::iter::once(pool.map(IpNet::V4))
                    .chain(std::iter::once(pool6.map(IpNet::V6)))
                    .flatten()
                    .map(crate::config::InterfaceAddress::plain)
                    .collect();
            values::mtu(*mtu.get_ref(), &families)
                .map_err(|reason| {
                    let line = self.line(&mtu);
                    self.error(line, format!("mtu {}: {reason}", mtu.get_ref()));
                })
                .ok()
        });
        let bgp = self.bgp(raw.bgp, raw.bfd, &sites);
        if written_sites < 2 {
            self.error(
                mesh_line,
                format!("a mesh needs at least two [[site]]s, this one has {written_sites}"),
            );
        }
        if let Some(pool) = pool {
            self.capacity(mesh_line, pool, pool6, sites.len());
        }
        // Two sites of one name make the same tunnel names: said once.
        let distinct: Vec<&ReadSite> = sites
            .iter()
            .zip(distinct)
            .filter_map(|(read, distinct)| distinct.then_some(read))
            .collect();
        self.tunnel_names(&distinct);
        self.endpoints(&sites);
        self.lans(&sites, pool, pool6, bgp.is_some());
        Some(Mesh {
            file: self.file.to_path_buf(),
            pool: pool?,
            pool6,
            listen_port: listen_port?,
            persistent_keepalive,
            mtu,
            bgp,
            sites: sites.into_iter().map(|read| read.site).collect(),
        })
    }

    fn pool4(&mut self, mesh_line: usize, raw: Option<&Spanned<String>>) -> Option<Ipv4Net> {
        let Some(raw) = raw else {
            self.error(
                mesh_line,
                "[mesh]: missing pool (an IPv4 prefix, one /31 per pair of sites)",
            );
            return None;
        };
        let line = self.line(raw);
        match values::network(raw.get_ref()) {
            Ok(IpNet::V4(pool)) if pool.prefix_len() <= 31 => Some(pool),
            Ok(IpNet::V4(_)) => {
                self.error(line, format!("pool \"{}\": holds no /31", raw.get_ref()));
                None
            }
            Ok(IpNet::V6(_)) => {
                self.error(
                    line,
                    format!(
                        "pool \"{}\": an IPv6 prefix; pool is IPv4, IPv6 goes in pool6",
                        raw.get_ref()
                    ),
                );
                None
            }
            Err(reason) => {
                self.error(line, format!("pool \"{}\": {reason}", raw.get_ref()));
                None
            }
        }
    }

    fn pool6(&mut self, raw: Option<&Spanned<String>>) -> Option<Ipv6Net> {
        let raw = raw?;
        let line = self.line(raw);
        match values::network(raw.get_ref()) {
            Ok(IpNet::V6(pool)) if pool.prefix_len() <= 127 => Some(pool),
            Ok(IpNet::V6(_)) => {
                self.error(line, format!("pool6 \"{}\": holds no /127", raw.get_ref()));
                None
            }
            Ok(IpNet::V4(_)) => {
                self.error(
                    line,
                    format!("pool6 \"{}\": expected an IPv6 prefix", raw.get_ref()),
                );
                None
            }
            Err(reason) => {
                self.error(line, format!("pool6 \"{}\": {reason}", raw.get_ref()));
                None
            }
        }
    }

    /// The base port: the highest port in use, `listen_port + sites`,
    /// must be a port.
    fn listen_port(
        &mut self,
        mesh_line: usize,
        raw: Option<&Spanned<i64>>,
        sites: usize,
    ) -> Option<u16> {
        let (line, base) = match raw {
            None => (mesh_line, DEFAULT_LISTEN_PORT),
            Some(raw) => {
                let line = self.line(raw);
                match values::port(*raw.get_ref()) {
                    Ok(base) => (line, base),
                    Err(reason) => {
                        self.error(line, format!("listen_port {}: {reason}", raw.get_ref()));
                        return None;
                    }
                }
            }
        };
        if !layout::ports_fit(base, sites) {
            self.error(
                line,
                format!(
                    "listen_port {base}: with {sites} sites the tunnels listen on {}..={}, past 65535",
                    u32::from(base) + 1,
                    u32::from(base) + u32::try_from(sites).unwrap_or(u32::MAX)
                ),
            );
            return None;
        }
        Some(base)
    }

    fn site(&mut self, raw: Spanned<raw::Site>) -> Option<ReadSite> {
        let line = self.line(&raw);
        let raw = raw.into_inner();
        let name = match &raw.name {
            None => {
                self.error(line, "[[site]]: missing name");
                None
            }
            Some(name) => match site_name(name.get_ref()) {
                Ok(()) => Some(name.get_ref().clone()),
                Err(reason) => {
                    let at = self.line(name);
                    self.error(at, format!("site name \"{}\": {reason}", name.get_ref()));
                    None
                }
            },
        };
        let label = match &raw.name {
            Some(name) => format!("site \"{}\"", name.get_ref()),
            None => format!("site at line {line}"),
        };
        let short_name = match &raw.short_name {
            None => name.clone(),
            Some(short) => match site_name(short.get_ref()) {
                Ok(()) => Some(short.get_ref().clone()),
                Err(reason) => {
                    let at = self.line(short);
                    self.error(
                        at,
                        format!("{label}: short_name \"{}\": {reason}", short.get_ref()),
                    );
                    None
                }
            },
        };
        let endpoint_line = raw.endpoint.as_ref().map_or(line, |at| self.line(at));
        let endpoint =
            raw.endpoint
                .as_ref()
                .and_then(|endpoint| match Host::parse(endpoint.get_ref()) {
                    Ok(host) => Some(host),
                    Err(reason) => {
                        self.error(
                            endpoint_line,
                            format!("{label}: endpoint \"{}\": {reason}", endpoint.get_ref()),
                        );
                        None
                    }
                });
        let asn = raw.asn.as_ref().and_then(|asn| {
            let number = *asn.get_ref();
            let at = self.line(asn);
            if !(1..=i64::from(u32::MAX)).contains(&number) {
                self.error(
                    at,
                    format!("{label}: asn {number}: out of range (1..=4294967295)"),
                );
                return None;
            }
            if RESERVED_ASNS.contains(&number) {
                self.error(
                    at,
                    format!("{label}: asn {number}: reserved (RFC 6793, RFC 7300)"),
                );
                return None;
            }
            u32::try_from(number).ok()
        });
        let mut lans = Vec::new();
        let mut lan_lines = Vec::new();
        for lan in &raw.lans {
            let at = self.line(lan);
            match values::network(lan.get_ref()) {
                Ok(network) if network.prefix_len() == 0 => self.error(
                    at,
                    format!(
                        "{label}: lan \"{}\": a default route is not a LAN",
                        lan.get_ref()
                    ),
                ),
                Ok(network) => {
                    lans.push(network);
                    lan_lines.push(at);
                }
                Err(reason) => {
                    self.error(at, format!("{label}: lan \"{}\": {reason}", lan.get_ref()))
                }
            }
        }
        Some(ReadSite {
            site: Site {
                name: name?,
                short_name: short_name?,
                line,
                endpoint,
                asn,
                lans,
            },
            endpoint_line,
            endpoint_written: raw.endpoint.is_some(),
            asn_written: raw.asn.is_some(),
            lan_lines,
        })
    }

    /// Names and short names, each once; the valid names go to `names`.
    /// Whether each site's name and short name are its own.
    fn unique_names(&mut self, sites: &[ReadSite], names: &mut Vec<(String, usize)>) -> Vec<bool> {
        let mut distinct = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut short: HashMap<&str, (&str, usize)> = HashMap::new();
        for read in sites {
            let site = &read.site;
            let mut own = true;
            match seen.entry(&site.name) {
                Entry::Occupied(first) => {
                    let message = format!(
                        "site \"{}\": the name is also the site's at line {}",
                        site.name,
                        first.get()
                    );
                    self.error(site.line, message);
                    own = false;
                }
                Entry::Vacant(slot) => {
                    slot.insert(site.line);
                    names.push((site.name.clone(), site.line));
                }
            }
            match short.entry(&site.short_name) {
                Entry::Occupied(first) if first.get().0 != site.name => {
                    let (other, line) = first.get();
                    let message = format!(
                        "site \"{}\": short name \"{}\" is also site \"{other}\"'s (line {line}); tunnel names would collide",
                        site.name, site.short_name
                    );
                    self.error(site.line, message);
                    own = false;
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert((&site.name, site.line));
                }
            }
            distinct.push(own);
        }
        distinct
    }

    fn bgp(
        &mut self,
        raw: Option<Spanned<raw::Bgp>>,
        raw_bfd: Option<Spanned<raw::Bfd>>,
        sites: &[ReadSite],
    ) -> Option<BgpDefaults> {
        let with_asn = sites.iter().filter(|read| read.asn_written).count();
        let raw_line = raw.as_ref().map(|raw| self.line(raw));
        if with_asn == 0 {
            if let Some(line) = raw_line {
                self.error(line, "[bgp]: no [[site]] has an asn");
            }
            if let Some(bfd) = &raw_bfd {
                let line = self.line(bfd);
                self.error(
                    line,
                    "[bfd]: BFD runs beside BGP, and no [[site]] has an asn",
                );
            }
            return None;
        }
        if with_asn < sites.len() {
            for read in sites.iter().filter(|read| !read.asn_written) {
                let message = format!(
                    "site \"{}\": missing asn (other sites have one: every site speaks BGP or none does)",
                    read.site.name
                );
                self.error(read.site.line, message);
            }
        }
        let mut defaults = BgpDefaults {
            bfd: raw_bfd.map(|raw| self.bfd(raw.into_inner())),
            ..BgpDefaults::default()
        };
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Some(defaults);
        };
        defaults.graceful_restart = raw.graceful_restart;
        if let Some(value) = &raw.hold_time {
            let seconds = *value.get_ref();
            if seconds == 1 || seconds == 2 || !(0..=65535).contains(&seconds) {
                let line = self.line(value);
                self.error(
                    line,
                    format!("hold_time {seconds}: must be 0 or 3..=65535 (seconds)"),
                );
            } else {
                defaults.hold_time = u16::try_from(seconds).ok();
            }
        }
        defaults.restart_time = self.bounded("restart_time", raw.restart_time.as_ref(), 1, 4095);
        defaults.max_paths = self.bounded("max_paths", raw.max_paths.as_ref(), 1, 64);
        Some(defaults)
    }

    /// `[bfd]`: the same bounds as in wgd.toml.
    fn bfd(&mut self, raw: raw::Bfd) -> BfdDefaults {
        BfdDefaults {
            transmit_interval: self.bounded(
                "transmit_interval",
                raw.transmit_interval.as_ref(),
                10,
                60000,
            ),
            receive_interval: self.bounded(
                "receive_interval",
                raw.receive_interval.as_ref(),
                10,
                60000,
            ),
            multiplier: self.bounded("multiplier", raw.multiplier.as_ref(), 1, 255),
        }
    }

    fn bounded(
        &mut self,
        key: &str,
        raw: Option<&Spanned<i64>>,
        low: u16,
        high: u16,
    ) -> Option<u16> {
        let raw = raw?;
        let value = *raw.get_ref();
        if !(i64::from(low)..=i64::from(high)).contains(&value) {
            let line = self.line(raw);
            self.error(
                line,
                format!("{key} {value}: out of range ({low}..={high})"),
            );
            return None;
        }
        u16::try_from(value).ok()
    }

    /// The pools hold a subnet for every pair.
    fn capacity(&mut self, line: usize, pool: Ipv4Net, pool6: Option<Ipv6Net>, sites: usize) {
        let needed = layout::pairs(sites);
        let have = layout::capacity4(pool);
        if needed > have {
            self.error(
                line,
                format!(
                    "pool {pool} holds {have} /31s, {sites} sites need {needed} (one per pair of sites): use a /{} or shorter",
                    layout::shortest_pool4(needed)
                ),
            );
        }
        if let Some(pool6) = pool6 {
            let have = layout::capacity6(pool6);
            if needed > have {
                self.error(
                    line,
                    format!(
                        "pool6 {pool6} holds {have} /127s, {sites} sites need {needed} (one per pair of sites)"
                    ),
                );
            }
        }
    }

    /// Each site's tunnel names are interface names, and no two tunnels
    /// of the mesh share one (sites on one machine, as in a lab, share
    /// wireguard-go's socket directory).
    fn tunnel_names(&mut self, sites: &[&ReadSite]) {
        let mut seen: HashMap<String, (&str, &str)> = HashMap::new();
        for own in sites {
            let mut reported = false;
            for other in sites
                .iter()
                .filter(|other| other.site.name != own.site.name)
            {
                let name = layout::tunnel_name(&own.site, &other.site);
                if let Err(reason) = TunnelName::new(&name) {
                    if !reported {
                        let message = format!(
                            "site \"{}\": its tunnel to \"{}\": {reason}; give the sites shorter short_names",
                            own.site.name, other.site.name
                        );
                        self.error(own.site.line, message);
                        reported = true;
                    }
                    continue;
                }
                match seen.entry(name) {
                    Entry::Occupied(first) => {
                        let (a, b) = first.get();
                        let message = format!(
                            "site \"{}\": its tunnel to \"{}\" would be named \"{}\", as site \"{a}\"'s to \"{b}\"; choose short_names that do not make the same names",
                            own.site.name,
                            other.site.name,
                            first.key()
                        );
                        self.error(own.site.line, message);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((&own.site.name, &other.site.name));
                    }
                }
            }
        }
    }

    /// Endpoints once each (a site listens on the same ports as any
    /// other), and every pair with at least one endpoint between them.
    fn endpoints(&mut self, sites: &[ReadSite]) {
        let mut seen: HashMap<&Host, (&str, usize)> = HashMap::new();
        for read in sites {
            let Some(endpoint) = &read.site.endpoint else {
                continue;
            };
            match seen.entry(endpoint) {
                Entry::Occupied(first) => {
                    let (other, line) = first.get();
                    let message = format!(
                        "site \"{}\": endpoint {endpoint} is also site \"{other}\"'s (line {line}); their tunnels would listen on the same address and ports",
                        read.site.name
                    );
                    self.error(read.endpoint_line, message);
                }
                Entry::Vacant(slot) => {
                    slot.insert((&read.site.name, read.endpoint_line));
                }
            }
        }
        let unreachable: Vec<&ReadSite> =
            sites.iter().filter(|read| !read.endpoint_written).collect();
        for (index, later) in unreachable.iter().enumerate() {
            for earlier in &unreachable[..index] {
                let message = format!(
                    "sites \"{}\" (line {}) and \"{}\" both have no endpoint: neither can reach the other; give one of them an endpoint",
                    earlier.site.name, earlier.site.line, later.site.name
                );
                self.error(later.site.line, message);
            }
        }
    }

    /// LANs overlap no other LAN, no pool, and hold no endpoint (a route
    /// to such a LAN through a tunnel would carry that tunnel's own
    /// packets). IPv6 LANs need IPv6 on the tunnels to be routed.
    fn lans(
        &mut self,
        sites: &[ReadSite],
        pool: Option<Ipv4Net>,
        pool6: Option<Ipv6Net>,
        bgp: bool,
    ) {
        let pools: Vec<IpNet> = [pool.map(IpNet::V4), pool6.map(IpNet::V6)]
            .into_iter()
            .flatten()
            .collect();
        let mut earlier: Vec<(IpNet, &str, usize)> = Vec::new();
        for read in sites {
            let site = &read.site;
            for (lan, line) in site.lans.iter().zip(&read.lan_lines) {
                for (other, other_site, other_line) in &earlier {
                    if overlaps(*lan, *other) {
                        let whose = if *other_site == site.name {
                            "its own".to_owned()
                        } else {
                            format!("site \"{other_site}\"'s")
                        };
                        let message = format!(
                            "site \"{}\": lan {lan} overlaps {whose} lan {other} (line {other_line})",
                            site.name
                        );
                        self.error(*line, message);
                    }
                }
                for pool in pools.iter().filter(|pool| overlaps(*lan, **pool)) {
                    let message = format!(
                        "site \"{}\": lan {lan} overlaps the tunnel pool {pool}",
                        site.name
                    );
                    self.error(*line, message);
                }
                if bgp && matches!(lan, IpNet::V6(_)) && pool6.is_none() {
                    let message = format!(
                        "site \"{}\": lan {lan} is IPv6 and the tunnels have no IPv6 addresses to route it by: set [mesh] pool6",
                        site.name
                    );
                    self.error(*line, message);
                }
                earlier.push((*lan, &site.name, *line));
            }
        }
        for read in sites {
            let Some(Host::Address(address)) = read.site.endpoint else {
                continue;
            };
            for pool in pools.iter().filter(|pool| pool.contains(&address)) {
                let message = format!(
                    "site \"{}\": endpoint {address} is inside the tunnel pool {pool}",
                    read.site.name
                );
                self.error(read.endpoint_line, message);
            }
            for (lan, owner, line) in earlier.iter().filter(|(lan, ..)| lan.contains(&address)) {
                let message = format!(
                    "site \"{}\": endpoint {address} is inside site \"{owner}\"'s lan {lan} (line {line}): the route to that LAN through a tunnel would carry the tunnels' own packets",
                    read.site.name
                );
                self.error(read.endpoint_line, message);
            }
        }
    }
}

const DEFAULT_LISTEN_PORT: u16 = 51820;

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A site name is also a directory name, and a short name part of
/// interface names.
fn site_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.starts_with(['.', '-']) {
        return Err("starts with '.' or '-'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!("contains {c:?}; use letters, digits and _.-"));
    }
    Ok(())
}
