//! The validated configuration: what the planner wants the host to look
//! like. Every value here was checked when it was parsed; a `Config` that
//! exists is one wgd can apply.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::keys::{PresharedKey, PrivateKey, PublicKey};

/// Linux allows interface names of at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_TUNNEL_NAME_LEN: usize = 15;

/// A whole config file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (absolute). Tunnels are owned by their file: a
    /// tunnel that leaves the file is removed on the next reconcile.
    pub source: PathBuf,
    pub daemon: DaemonConfig,
    pub tunnels: Vec<TunnelConfig>,
    /// Warnings and notices found while reading (ignored keys, the
    /// default-route notice), the included files' among them. Printed by
    /// the CLI, logged by the daemon.
    pub notices: Vec<Notice>,
    /// The files `[daemon] include` took in, in the order read. Their
    /// tunnels are in `tunnels`, owned by this config like its own.
    pub included: Vec<IncludedFile>,
}

/// A wg-quick file taken in by `[daemon] include`, and what came of it. A
/// broken file is left out (or its last good version kept) without
/// refusing the config around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludedFile {
    /// Absolute.
    pub path: PathBuf,
    /// The tunnel named after the file, when that is a valid name.
    pub tunnel: Option<TunnelName>,
    /// Why the file as it is now was left out; empty when its tunnel is in
    /// the config as written.
    pub errors: Vec<ConfigError>,
    /// The file is broken, and its tunnel in the config is the last good
    /// version read before.
    pub kept: bool,
}

/// `[daemon]` of wgd.toml. wg-quick files get the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `include`: glob patterns of wg-quick files, each one tunnel named
    /// after its file (relative ones are made absolute against the
    /// wgd.toml's folder). Wildcards (`*`, `?`) in the file name only.
    pub include: Vec<PathBuf>,
    /// Unix socket of the gRPC API (also there when `api` names a TCP
    /// listener: `wgd status` and local clients use it).
    pub api: PathBuf,
    /// `api = "tcp://address:port"`: the gRPC API on TCP, mutual TLS only.
    pub tcp_api: Option<TcpApi>,
    /// Address of the Prometheus endpoint, if any.
    pub metrics: Option<SocketAddr>,
    pub backend: BackendChoice,
    /// The userspace implementation; found on PATH when not set.
    pub wireguard_go: Option<PathBuf>,
    /// How often `wgd run` reconciles without being asked.
    pub reconcile_interval: Duration,
    /// A peer with no handshake for this long is considered dead.
    pub peer_dead_after: Duration,
    /// `[bridge]`: the route bridge.
    pub bridge: BridgeSettings,
    /// `[bgp]`: the built-in BGP speaker, when configured.
    pub bgp: Option<BgpSettings>,
    /// `[fpm]`: FRR's zebra streaming its routes to the bridge, when
    /// configured.
    pub fpm: Option<FpmSettings>,
    /// `[[gobgp]]`: gobgpd daemons whose best paths the bridge follows.
    pub gobgp: Vec<GobgpSettings>,
    /// `[bfd]`: the defaults of BFD sessions (folded into each neighbor's
    /// and config route's already; kept for `wgd route add --bfd`).
    pub bfd: BfdSettings,
}

/// The gRPC API on TCP (`api = "tcp://..."` with `tls_cert`, `tls_key` and
/// `tls_client_ca`): for routers on other hosts. Clients must present a
/// certificate the client CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpApi {
    /// The line of `api`.
    pub line: usize,
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CA certificates (PEM) that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// `[[gobgp]]` of wgd.toml: a gobgpd whose best paths go into the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GobgpSettings {
    pub line: usize,
    pub api: GobgpApi,
    /// The bridge owner its routes go in as (`gobgp` by default).
    pub owner: String,
    pub ipv4: bool,
    pub ipv6: bool,
    /// How long its routes outlive a lost gobgpd; the bridge's
    /// `hold_time` when not set.
    pub hold_time: Option<Duration>,
}

/// Where gobgpd's gRPC API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GobgpApi {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// `[fpm]` of wgd.toml: where zebra connects with `fpm address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmSettings {
    pub line: usize,
    /// Where to listen for zebra (127.0.0.1:2620 by default).
    pub listen: SocketAddr,
    /// How long zebra's routes stay once it is gone; the bridge's
    /// `hold_time` when not set.
    pub hold_time: Option<Duration>,
    /// zebra's kernel table, whose routes are taken (main by default).
    /// Never the bridge's own table.
    pub table: RouteTable,
}

/// `[bgp]` of wgd.toml: the built-in BGP speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSettings {
    pub line: usize,
    pub asn: u32,
    /// Defaults to the lowest IPv4 tunnel address.
    pub router_id: std::net::Ipv4Addr,
    /// Prefixes this site originates.
    pub networks: Vec<IpNet>,
    /// Equal paths installed together (ECMP); 1 is none.
    pub max_paths: u16,
    pub hold_time: u16,
    /// Graceful restart (RFC 4724), as helper and as restarting speaker.
    pub graceful_restart: bool,
    pub restart_time: u16,
    pub neighbors: Vec<NeighborSettings>,
    /// `[rpki]`: origin validation of the received routes, when set.
    pub rpki: Option<RpkiSettings>,
}

/// `[rpki]` of wgd.toml: the RTR caches the speaker validates routes
/// against (RFC 8210, TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiSettings {
    pub line: usize,
    pub servers: Vec<RpkiServerSettings>,
    /// Replaces the caches' expire interval.
    pub expire: Option<Duration>,
}

/// One `[[rpki.server]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiServerSettings {
    pub line: usize,
    pub address: SocketAddr,
    /// Lower is preferred.
    pub preference: u8,
}

/// One `[[bgp.neighbor]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct NeighborSettings {
    pub line: usize,
    /// The neighbor's address: as written, or its address on a tunnel.
    pub address: std::net::IpAddr,
    /// The tunnel it was named by, if so.
    pub tunnel: Option<TunnelName>,
    pub remote_as: u32,
    pub passive: bool,
    pub hold_time: Option<u16>,
    /// TCP MD5 (RFC 2385). A secret: never printed.
    pub password: Option<zeroize::Zeroizing<String>>,
    /// RFC 5082: accept only packets sent from one hop away (TTL 255).
    pub ttl_security: bool,
    /// BFD over the neighbor's tunnel (`bfd = true`, or a table), its
    /// timers filled in from `[bfd]`.
    pub bfd: Option<BfdSettings>,
    /// Routes accepted from this neighbor; 0 is no limit.
    pub prefix_limit: u32,
    /// Past `prefix_limit`: reset the session (the default), or block
    /// new prefixes (`prefix_limit_action = "block"`).
    pub prefix_limit_action: bgp_bridge::bgp::decision::LimitAction,
    pub description: Option<String>,
    /// What is taken from the neighbor, and what is sent to it.
    pub import: bgp_bridge::bgp::policy::Policy,
    pub export: bgp_bridge::bgp::policy::Policy,
}

impl fmt::Debug for NeighborSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeighborSettings")
            .field("line", &self.line)
            .field("address", &self.address)
            .field("tunnel", &self.tunnel)
            .field("remote_as", &self.remote_as)
            .field("passive", &self.passive)
            .field("hold_time", &self.hold_time)
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("ttl_security", &self.ttl_security)
            .field("bfd", &self.bfd)
            .field("prefix_limit", &self.prefix_limit)
            .field("prefix_limit_action", &self.prefix_limit_action)
            .field("description", &self.description)
            .field("import", &self.import)
            .field("export", &self.export)
            .finish()
    }
}

/// `[bfd]` of wgd.toml (the defaults of every BFD session), or a
/// neighbor's `bfd` table over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSettings {
    /// Desired min TX (RFC 5880), as configured.
    pub transmit_interval: Duration,
    /// Required min RX.
    pub receive_interval: Duration,
    /// Detect multiplier.
    pub multiplier: u8,
}

impl Default for BfdSettings {
    /// 300 ms x 3, as FRR's bfdd and BIRD default to.
    fn default() -> Self {
        Self {
            transmit_interval: Duration::from_millis(300),
            receive_interval: Duration::from_millis(300),
            multiplier: 3,
        }
    }
}

/// `[bridge]` of wgd.toml: where learned routes go and how long they wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// The kernel table learned routes go in.
    pub table: RouteTable,
    /// The kernel priority (metric) of every learned route.
    pub kernel_metric: u32,
    /// Take nexthops that are not on one of wgd's tunnels.
    pub allow_other_interfaces: bool,
    /// How long routes found in the kernel at start wait to be re-claimed.
    pub startup_hold: Duration,
    /// Hold time of a session that does not give one.
    pub hold_time: Duration,
    /// Routes an owner may have; 0 is no limit.
    pub prefix_limit: u32,
    /// Per owner, over `prefix_limit`.
    pub prefix_limits: std::collections::BTreeMap<String, u32>,
    /// `source`: the preferred source address (`src`, BIRD's
    /// `krt_prefsrc`) of the routes the bridge installs, one per family at
    /// most. A tunnel's own `source` wins for routes through it.
    pub source: Vec<std::net::IpAddr>,
    /// Where `source` is written, for messages about it (0: not given).
    pub source_line: usize,
    /// `[[bridge.route]]`: the config's static routes (owner `config`).
    pub routes: Vec<StaticRoute>,
}

/// `[[bridge.route]]`: a route the config gives the bridge, under owner
/// `config`, like `wgd route add` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: ipnet::IpNet,
    /// The nexthop's address (`via`).
    pub via: Option<std::net::IpAddr>,
    /// The tunnel it goes through (`tunnel`, or a link-local `via`'s scope).
    pub tunnel: Option<TunnelName>,
    pub distance: u8,
    pub metric: u32,
    /// BFD to `via` over its tunnel: while that session is down (after it
    /// was up), routes through `via` do not resolve.
    pub bfd: Option<BfdSettings>,
    /// Where it is written.
    pub line: usize,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            table: RouteTable::Main,
            kernel_metric: 20,
            allow_other_interfaces: false,
            startup_hold: Duration::from_secs(120),
            hold_time: Duration::from_secs(90),
            prefix_limit: 0,
            prefix_limits: std::collections::BTreeMap::new(),
            source: Vec::new(),
            source_line: 0,
            routes: Vec::new(),
        }
    }
}

pub const DEFAULT_API_SOCKET: &str = "/run/wgd/wgd.sock";

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            api: PathBuf::from(DEFAULT_API_SOCKET),
            tcp_api: None,
            metrics: None,
            backend: BackendChoice::Auto,
            wireguard_go: None,
            reconcile_interval: Duration::from_secs(30),
            // WireGuard re-handshakes every 2 minutes while traffic flows and
            // gives up after 180 s (REJECT_AFTER_TIME); past that the peer is gone.
            peer_dead_after: Duration::from_secs(180),
            bridge: BridgeSettings::default(),
            bgp: None,
            fpm: None,
            gobgp: Vec::new(),
            bfd: BfdSettings::default(),
        }
    }
}

/// Which WireGuard implementation carries the tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The kernel module when it is loaded, userspace otherwise.
    #[default]
    Auto,
    Kernel,
    Userspace,
}

/// A validated interface name: 1 to 15 bytes of `[A-Za-z0-9_=+.-]`, as
/// wg-quick accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelName(String);

impl TunnelName {
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("tunnel name is empty".into());
        }
        if name.len() > MAX_TUNNEL_NAME_LEN {
            return Err(format!(
                "tunnel name \"{name}\" is {} bytes, interface names have at most {MAX_TUNNEL_NAME_LEN}",
                name.len()
            ));
        }
        if name == "." || name == ".." {
            return Err(format!(
                "tunnel name \"{name}\" is not a valid interface name"
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_=+.-".contains(*c)))
        {
            return Err(format!(
                "tunnel name \"{name}\" contains {c:?}; use letters, digits and _=+.-"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TunnelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[[tunnel]]` (or one wg-quick file).
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub name: TunnelName,
    /// Line of the tunnel's table in its file, for messages.
    pub line: usize,
    pub private_key: PrivateKey,
    /// `None` lets the device pick a port (a client that only dials out).
    pub listen_port: Option<u16>,
    /// Interface addresses wgd adds, with their prefix length (host bits
    /// allowed) and, for a point-to-point address, the far end.
    pub addresses: Vec<InterfaceAddress>,
    /// Addresses the `PostUp` hooks add (read from their `ip address add
    /// ... dev %i` commands): known, so that BGP and the bridge can use
    /// them, but never added or removed by wgd.
    pub hook_addresses: Vec<InterfaceAddress>,
    pub mtu: Option<u32>,
    pub fwmark: Option<u32>,
    pub routes: RoutesMode,
    /// `source` of the tunnel: the preferred source address of the routes
    /// the bridge installs through it, one per family at most (over
    /// `[bridge] source`).
    pub source: Vec<std::net::IpAddr>,
    pub hooks: Hooks,
    pub peers: Vec<PeerConfig>,
}

/// An address of an interface, as iproute2 words it: `10.0.0.1/24`, or a
/// point-to-point `172.20.1.1/32 peer 172.20.2.1/32` whose far end is
/// reached straight through the interface. The kernel keeps a
/// point-to-point address as IFA_LOCAL = `local`, IFA_ADDRESS = `peer`,
/// with the peer's prefix length; so does this type: with a peer, `local`
/// has the peer's length, and two addresses are the same only when both
/// parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceAddress {
    local: IpNet,
    peer: Option<IpNet>,
}

impl InterfaceAddress {
    /// A plain address: `local` is the interface's, with its subnet.
    pub fn plain(local: IpNet) -> Self {
        Self { local, peer: None }
    }

    /// A point-to-point address. The local part takes the peer's prefix
    /// length, as the kernel applies it; the two must be of one family.
    pub fn point_to_point(
        local: std::net::IpAddr,
        peer: IpNet,
    ) -> Result<Self, AddressFamilyMismatch> {
        if local.is_ipv4() != peer.addr().is_ipv4() {
            return Err(AddressFamilyMismatch);
        }
        let local = IpNet::new(local, peer.prefix_len()).map_err(|_| AddressFamilyMismatch)?;
        Ok(Self {
            local,
            peer: Some(peer),
        })
    }

    /// The interface's own address, with the prefix length the kernel
    /// gives it.
    pub fn local(&self) -> IpNet {
        self.local
    }

    /// The far end of a point-to-point address.
    pub fn peer(&self) -> Option<IpNet> {
        self.peer
    }

    pub fn addr(&self) -> std::net::IpAddr {
        self.local.addr()
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self.local, IpNet::V6(_))
    }

    /// An `fe80::/10` address: scoped to its interface.
    pub fn is_link_local(&self) -> bool {
        is_link_local(self.addr())
    }
}

impl From<IpNet> for InterfaceAddress {
    fn from(local: IpNet) -> Self {
        Self::plain(local)
    }
}

/// `fe80::/10`: an address that means something on one interface only.
pub fn is_link_local(address: std::net::IpAddr) -> bool {
    matches!(address, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The two parts of a point-to-point address are of different families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the local address and the peer are of different families")]
pub struct AddressFamilyMismatch;

/// iproute2's words: `local/len` or `local/len peer remote/len`.
impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.local)?;
        if let Some(peer) = self.peer {
            write!(f, " peer {peer}")?;
        }
        Ok(())
    }
}

/// Reads what `Display` writes (wgd's records keep addresses as text).
impl std::str::FromStr for InterfaceAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        super::values::interface_address(text).map_err(|reason| reason.to_string())
    }
}

impl serde::Serialize for InterfaceAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for InterfaceAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl TunnelConfig {
    /// The config's addresses, then those its hooks add.
    pub fn known_addresses(&self) -> impl Iterator<Item = &InterfaceAddress> {
        self.addresses.iter().chain(
            self.hook_addresses
                .iter()
                .filter(|hooked| !self.addresses.contains(hooked)),
        )
    }
}

/// What routes a tunnel puts in the kernel. Routers want `None`: the
/// routing protocols own the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutesMode {
    /// No routes at all beyond the connected subnets of the addresses.
    #[default]
    None,
    /// A route for each peer's AllowedIPs. In the main table a `/0` is never
    /// routed (that would be wg-quick's hijack); in another table it is.
    AllowedIps { table: RouteTable },
    /// wg-quick's default route: `/0` in a table of its own, selected by
    /// fwmark rules, so everything but the tunnel's own packets goes in.
    FullTunnel,
}

/// A kernel routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTable {
    Main,
    Id(u32),
}

impl RouteTable {
    /// RT_TABLE_MAIN is 254.
    pub fn id(self) -> u32 {
        match self {
            RouteTable::Main => 254,
            RouteTable::Id(id) => id,
        }
    }
}

/// wg-quick's `PreUp`/`PostUp`/`PreDown`/`PostDown` commands, run through
/// `sh -c` with `%i` replaced by the interface name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub pre_up: Vec<String>,
    pub post_up: Vec<String>,
    pub pre_down: Vec<String>,
    pub post_down: Vec<String>,
}

/// One peer of a tunnel.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// A name for messages and status (TOML `name`), if the config gave one.
    pub name: Option<String>,
    pub line: usize,
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<Endpoint>,
    pub persistent_keepalive: Option<u16>,
    /// Defaults to `0.0.0.0/0, ::/0`: filter nothing.
    pub allowed_ips: Vec<IpNet>,
}

/// A peer's endpoint as written and as resolved when the file was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub written: String,
    pub address: SocketAddr,
}

/// Something worth telling the user that does not stop the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, &self.message)
    }
}

/// `file:line: message`, or `file: message` for line 0 (the file as a
/// whole).
fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    line: usize,
    message: &str,
) -> fmt::Result {
    if line == 0 {
        write!(f, "{}: {message}", file.display())
    } else {
        write!(f, "{}:{line}: {message}", file.display())
    }
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole (cannot be read).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, &self.message)
    }
}

/// Everything wrong with a config file, one per line when printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The AllowedIPs every peer gets unless it says otherwise.
pub fn default_allowed_ips() -> Vec<IpNet> {
    vec![
        "0.0.0.0/0".parse().expect("literal prefix"),
        "::/0".parse().expect("literal prefix"),
    ]
}
