//! Links, addresses, routes and rules through rtnetlink: the kernel side of
//! a tunnel that is not WireGuard itself.
//!
//! Reads return plain values of `crate::actual`; writes take them. Every
//! error names the object it was about.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoKind, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec, LinkWireguard, RouteMessageBuilder};

use bgp_bridge::RTPROT_WGD;
use bgp_bridge::fib::{FibError, HostRoute, KernelFib};

use crate::actual::{Route, Rule};
use crate::config::InterfaceAddress;

/// A netlink failure, with what wgd was doing.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct NetlinkError {
    what: String,
    #[source]
    source: Failure,
}

/// What failed: an rtnetlink request, or the bridge's own reader (the
/// host's routes are read with it).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Rtnetlink(#[from] rtnetlink::Error),
    #[error(transparent)]
    Fib(#[from] FibError),
    #[error("the reading thread stopped: {0}")]
    Stopped(String),
}

impl NetlinkError {
    /// The kernel's errno, if the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            Failure::Rtnetlink(rtnetlink::Error::NetlinkError(message)) => {
                message.code.map(|code| -code.get())
            }
            Failure::Fib(error) => error.errno(),
            _ => None,
        }
    }
}

fn context(what: impl FnOnce() -> String) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    move |source| NetlinkError {
        what: what(),
        source: source.into(),
    }
}

/// What wgd reads of a link.
#[derive(Debug, Clone)]
pub struct LinkInfoSummary {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub up: bool,
    pub mtu: u32,
}

/// The addresses of a link.
#[derive(Debug, Clone, Default)]
pub struct LinkAddresses {
    pub all: Vec<InterfaceAddress>,
    /// Those among `all` that the kernel generated itself.
    pub kernel_made: Vec<InterfaceAddress>,
}

/// A connection to the kernel's routing netlink, in this namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

const ENODEV: i32 = 19;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;

impl Netlink {
    /// Opens a connection; its I/O runs as a task on the current runtime.
    pub fn connect() -> std::io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    fn summarise(message: LinkMessage) -> Option<LinkInfoSummary> {
        let mut name = None;
        let mut kind = None;
        let mut mtu = 0;
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::IfName(value) => name = Some(value),
                LinkAttribute::Mtu(value) => mtu = value,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(value) = info {
                            kind = Some(value);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(LinkInfoSummary {
            index: message.header.index,
            name: name?,
            kind,
            up: message.header.flags.contains(LinkFlags::Up),
            mtu,
        })
    }

    pub async fn links(&self) -> Result<Vec<LinkInfoSummary>, NetlinkError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(context(|| "list links".into()))?;
        Ok(messages.into_iter().filter_map(Self::summarise).collect())
    }

    pub async fn link(&self, name: &str) -> Result<Option<LinkInfoSummary>, NetlinkError> {
        let result: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_collect()
            .await;
        match result {
            Ok(messages) => Ok(messages.into_iter().find_map(Self::summarise)),
            Err(error) => {
                let error = NetlinkError {
                    what: format!("read link {name}"),
                    source: error.into(),
                };
                if error.errno() == Some(ENODEV) {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// `ip link add NAME type wireguard` (kernel module).
    pub async fn create_wireguard(&self, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkWireguard::new(name).build())
            .execute()
            .await
            .map_err(context(|| format!("create WireGuard interface {name}")))
    }

    /// Whether the kernel makes WireGuard interfaces: creates and deletes a
    /// probe (which also loads the module on demand).
    pub async fn kernel_wireguard_works(&self) -> bool {
        let probe = format!("wgdprobe{}", std::process::id() % 1_000_000);
        if self.create_wireguard(&probe).await.is_err() {
            return false;
        }
        if let Ok(Some(link)) = self.link(&probe).await {
            let _ = self.delete_link(link.index, &probe).await;
        }
        true
    }

    pub async fn delete_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        match self.handle.link().del(index).execute().await {
            Err(error) => {
                let error = NetlinkError {
                    what: format!("delete interface {name}"),
                    source: error.into(),
                };
                if error.errno() == Some(ENODEV) {
                    Ok(())
                } else {
                    Err(error)
                }
            }
            Ok(()) => Ok(()),
        }
    }

    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(context(|| format!("set {name} up")))
    }

    pub async fn set_mtu(&self, index: u32, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(context(|| format!("set {name} mtu {mtu}")))
    }

    /// An address as the kernel keeps it: IFA_LOCAL is the interface's
    /// own, IFA_ADDRESS the far end of a point-to-point address (the same
    /// as IFA_LOCAL otherwise; IPv6 sends only IFA_ADDRESS then).
    fn address_of(message: &AddressMessage) -> Option<InterfaceAddress> {
        let mut local = None;
        let mut address = None;
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                _ => {}
            }
        }
        let length = message.header.prefix_len;
        match (local, address) {
            (Some(local), Some(peer)) if local != peer => {
                InterfaceAddress::point_to_point(local, IpNet::new(peer, length).ok()?).ok()
            }
            (local, address) => Some(InterfaceAddress::plain(
                IpNet::new(local.or(address)?, length).ok()?,
            )),
        }
    }

    async fn address_messages(&self, index: u32) -> Result<Vec<AddressMessage>, NetlinkError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(context(|| format!("list addresses of interface {index}")))
    }

    /// Every address of a link, link-local ones included, and which of
    /// them the kernel made itself.
    pub async fn addresses(&self, index: u32) -> Result<LinkAddresses, NetlinkError> {
        let messages = self.address_messages(index).await?;
        let mut found = LinkAddresses::default();
        for message in messages
            .iter()
            .filter(|message| message.header.index == index)
        {
            let Some(address) = Self::address_of(message) else {
                continue;
            };
            found.all.push(address);
            if Self::kernel_made(message) {
                found.kernel_made.push(address);
            }
        }
        Ok(found)
    }

    /// An IPv6 address of the kernel's own generation (random or stable
    /// privacy, IFA_F_STABLE_PRIVACY): `ip address add` cannot set that
    /// flag, so no hook or operator made it.
    fn kernel_made(message: &AddressMessage) -> bool {
        message.attributes.iter().any(|attribute| {
            matches!(attribute, AddressAttribute::Flags(flags) if flags.contains(AddressFlags::StablePrivacy))
        })
    }

    /// `ip address add LOCAL/LEN [peer PEER/LEN] dev NAME`.
    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        address: InterfaceAddress,
    ) -> Result<(), NetlinkError> {
        let local = address.local();
        let mut request = self
            .handle
            .address()
            .add(index, local.addr(), local.prefix_len())
            .replace();
        if let Some(peer) = address.peer() {
            // IFA_LOCAL stays ours; IFA_ADDRESS becomes the far end, and a
            // point-to-point address has no broadcast.
            let message = request.message_mut();
            message
                .attributes
                .retain(|attribute| !matches!(attribute, AddressAttribute::Broadcast(_)));
            for attribute in &mut message.attributes {
                if let AddressAttribute::Address(ip) = attribute {
                    *ip = peer.addr();
                }
            }
        }
        request
            .execute()
            .await
            .map_err(context(|| format!("add address {address} to {name}")))
    }

    pub async fn remove_address(
        &self,
        index: u32,
        name: &str,
        address: InterfaceAddress,
    ) -> Result<(), NetlinkError> {
        let messages = self.address_messages(index).await?;
        for message in messages {
            if message.header.index == index && Self::address_of(&message) == Some(address) {
                self.handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(context(|| format!("remove address {address} from {name}")))?;
            }
        }
        Ok(())
    }

    /// Stops the kernel from giving the link IPv6 addresses of its own
    /// making (`ip link set NAME addrgenmode none`): a TUN device would
    /// otherwise get a random `fe80::` address when it goes up, which a
    /// kernel WireGuard device never has, and a BGP session over the
    /// tunnel must start from the link-local address the config gives.
    pub async fn set_no_address_generation(
        &self,
        index: u32,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let mode =
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
                In6AddrGenMode::None,
            )])]);
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .append_extra_attribute(mode)
                    .build(),
            )
            .execute()
            .await
            .map_err(context(|| format!("set {name} addrgenmode none")))
    }

    /// Unicast routes through an interface (by index) that neither the
    /// kernel nor the route bridge added, and every table that holds a
    /// route. Read with the bridge's own netlink reader, each route looked
    /// at as the dump comes and never held: with the bridge's full table
    /// in the kernel, the dump parsed into `RouteMessage`s took about 300
    /// MiB for the moment it was held (a new daemon's peak RSS) and 0.8 s
    /// of CPU every reconcile; the bridge's routes are not the planner's.
    pub async fn routes(&self) -> Result<(Vec<(u32, Route)>, BTreeSet<u32>), NetlinkError> {
        let read = || {
            let mut fib = KernelFib::open(u32::from(libc::RT_TABLE_MAIN), 0)?;
            fib.fold_host_routes(
                || (Vec::new(), BTreeSet::new()),
                |(routes, tables): &mut (Vec<(u32, Route)>, BTreeSet<u32>), route: HostRoute| {
                    tables.insert(route.table);
                    if route.kind != libc::RTN_UNICAST
                        || route.protocol == libc::RTPROT_KERNEL
                        || route.protocol == RTPROT_WGD
                        || route.oif == 0
                    {
                        return;
                    }
                    let (prefix, table) = (route.prefix, route.table);
                    routes.push((route.oif, Route { prefix, table }));
                },
            )
        };
        let failed = |source: Failure| NetlinkError {
            what: "list routes".into(),
            source,
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|error| failed(Failure::Stopped(error.to_string())))?
            .map_err(|error| failed(error.into()))
    }

    fn route_message(index: u32, route: Route) -> RouteMessage {
        RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.prefix.addr(), route.prefix.prefix_len())
            .expect("an IpNet is a valid destination")
            .output_interface(index)
            .table_id(route.table)
            .protocol(RouteProtocol::Static)
            .scope(RouteScope::Link)
            .build()
    }

    /// `ip route add PREFIX dev NAME table T` (never replaces someone else's route).
    pub async fn add_route(
        &self,
        index: u32,
        name: &str,
        route: Route,
    ) -> Result<(), NetlinkError> {
        self.handle
            .route()
            .add(Self::route_message(index, route))
            .execute()
            .await
            .map_err(context(|| {
                format!(
                    "add route {} dev {name} table {}",
                    route.prefix,
                    route.table_name()
                )
            }))
    }

    pub async fn remove_route(
        &self,
        index: u32,
        name: &str,
        route: Route,
    ) -> Result<(), NetlinkError> {
        match self
            .handle
            .route()
            .del(Self::route_message(index, route))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(error) => {
                let error = NetlinkError {
                    what: format!(
                        "remove route {} dev {name} table {}",
                        route.prefix,
                        route.table_name()
                    ),
                    source: error.into(),
                };
                if matches!(error.errno(), Some(ESRCH) | Some(ENOENT)) {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    fn rule_of(message: &RuleMessage) -> Option<Rule> {
        let ipv6 = message.header.family == AddressFamily::Inet6;
        let mut table = u32::from(message.header.table);
        let mut fwmark = None;
        let mut suppress = None;
        // A rule with any other selector (from, to, iif, a mask...) is
        // someone else's, even if its action looks like ours.
        let header = &message.header;
        if header.src_len != 0 || header.dst_len != 0 || header.tos != 0 {
            return None;
        }
        for attribute in &message.attributes {
            match attribute {
                RuleAttribute::Table(value) => table = *value,
                RuleAttribute::FwMark(value) => fwmark = Some(*value),
                RuleAttribute::FwMask(mask) if *mask == u32::MAX => {}
                // Kernels send -1 ("not set") on every rule that has none.
                RuleAttribute::SuppressPrefixLen(value) if *value != u32::MAX => {
                    suppress = Some(*value)
                }
                RuleAttribute::SuppressPrefixLen(_)
                | RuleAttribute::SuppressIfGroup(_)
                | RuleAttribute::Priority(_)
                | RuleAttribute::Protocol(_) => {}
                RuleAttribute::L3MDev(false) => {}
                _ => return None,
            }
        }
        let invert = message.header.flags.contains(RuleFlags::Invert);
        match (fwmark, suppress) {
            (Some(mark), None) if invert && mark == table => {
                Some(Rule::NotFwmarkLookup { ipv6, table })
            }
            (None, Some(0)) if !invert && table == 254 => Some(Rule::MainSuppressDefault { ipv6 }),
            _ => None,
        }
    }

    async fn rule_messages(&self) -> Result<Vec<RuleMessage>, NetlinkError> {
        let mut all = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut messages: Vec<RuleMessage> = self
                .handle
                .rule()
                .get(version)
                .execute()
                .try_collect()
                .await
                .map_err(context(|| "list rules".into()))?;
            all.append(&mut messages);
        }
        Ok(all)
    }

    /// The rules of the two kinds full-tunnel mode adds.
    pub async fn rules(&self) -> Result<Vec<Rule>, NetlinkError> {
        Ok(self
            .rule_messages()
            .await?
            .iter()
            .filter_map(Self::rule_of)
            .collect())
    }

    pub async fn add_rule(&self, rule: Rule) -> Result<(), NetlinkError> {
        let (ipv6, table) = match rule {
            Rule::NotFwmarkLookup { ipv6, table } => (ipv6, table),
            Rule::MainSuppressDefault { ipv6 } => (ipv6, 254),
        };
        let mut request = self
            .handle
            .rule()
            .add()
            .table_id(table)
            .action(RuleAction::ToTable);
        let message = request.message_mut();
        message.header.family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        match rule {
            Rule::NotFwmarkLookup { .. } => {
                message.header.flags |= RuleFlags::Invert;
                message.attributes.push(RuleAttribute::FwMark(table));
            }
            Rule::MainSuppressDefault { .. } => {
                message.attributes.push(RuleAttribute::SuppressPrefixLen(0))
            }
        }
        request
            .execute()
            .await
            .map_err(context(|| format!("add rule: {rule}")))
    }

    /// Deletes one rule matching `rule` (one per add, as added).
    pub async fn remove_rule(&self, rule: Rule) -> Result<(), NetlinkError> {
        let found = self
            .rule_messages()
            .await?
            .into_iter()
            .find(|message| Self::rule_of(message) == Some(rule));
        if let Some(message) = found {
            self.handle
                .rule()
                .del(message)
                .execute()
                .await
                .map_err(context(|| format!("remove rule: {rule}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule as this kernel dumps it: `SuppressPrefixLen(u32::MAX)` on
    /// every rule that was added without one.
    fn dumped(flags: RuleFlags, attributes: Vec<RuleAttribute>) -> RuleMessage {
        let mut message = RuleMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.table = 252;
        message.header.action = RuleAction::ToTable;
        message.header.flags = flags;
        message.attributes = attributes;
        message
    }

    #[test]
    fn point_to_point_addresses_as_the_kernel_dumps_them() {
        let message = |length: u8, attributes: Vec<AddressAttribute>| {
            let mut message = AddressMessage::default();
            message.header.prefix_len = length;
            message.attributes = attributes;
            message
        };
        let local: IpAddr = "172.20.1.1".parse().unwrap();
        let peer: IpAddr = "172.20.2.1".parse().unwrap();
        let point_to_point = message(
            32,
            vec![
                AddressAttribute::Address(peer),
                AddressAttribute::Local(local),
            ],
        );
        assert_eq!(
            Netlink::address_of(&point_to_point).map(|address| address.to_string()),
            Some("172.20.1.1/32 peer 172.20.2.1/32".into())
        );
        let plain = message(
            24,
            vec![
                AddressAttribute::Address(local),
                AddressAttribute::Local(local),
            ],
        );
        assert_eq!(
            Netlink::address_of(&plain).map(|address| address.to_string()),
            Some("172.20.1.1/24".into())
        );
        let generated = message(
            64,
            vec![
                AddressAttribute::Address("fe80::d892:c5e6:a6cb:fd56".parse().unwrap()),
                AddressAttribute::Flags(AddressFlags::StablePrivacy | AddressFlags::Permanent),
            ],
        );
        assert!(Netlink::kernel_made(&generated));
        assert!(!Netlink::kernel_made(&plain));
        // IPv6 sends IFA_ADDRESS alone for a plain address.
        let link_local = message(
            64,
            vec![AddressAttribute::Address("fe80::1".parse().unwrap())],
        );
        assert_eq!(
            Netlink::address_of(&link_local).map(|address| address.to_string()),
            Some("fe80::1/64".into())
        );
    }

    #[test]
    fn rules_as_the_kernel_dumps_them_are_recognised() {
        let not_fwmark = dumped(
            RuleFlags::Invert,
            vec![
                RuleAttribute::Table(51820),
                RuleAttribute::SuppressPrefixLen(u32::MAX),
                RuleAttribute::Priority(32765),
                RuleAttribute::FwMark(51820),
                RuleAttribute::FwMask(u32::MAX),
            ],
        );
        assert_eq!(
            Netlink::rule_of(&not_fwmark),
            Some(Rule::NotFwmarkLookup {
                ipv6: false,
                table: 51820
            })
        );
        let main = dumped(
            RuleFlags::empty(),
            vec![
                RuleAttribute::Table(254),
                RuleAttribute::SuppressPrefixLen(u32::MAX),
                RuleAttribute::Priority(32766),
            ],
        );
        assert_eq!(Netlink::rule_of(&main), None);
        let suppress = dumped(
            RuleFlags::empty(),
            vec![
                RuleAttribute::Table(254),
                RuleAttribute::SuppressPrefixLen(0),
                RuleAttribute::Priority(32764),
            ],
        );
        assert_eq!(
            Netlink::rule_of(&suppress),
            Some(Rule::MainSuppressDefault { ipv6: false })
        );
    }
}
