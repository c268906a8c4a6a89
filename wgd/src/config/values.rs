//! Field values both config formats share: ports, prefixes, endpoints, MTU,
//! key files. Each parser takes the value as written and returns a typed
//! value or an `Invalid` reason; the format readers add the file, line and
//! field name around the reason.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ipnet::IpNet;
use zeroize::Zeroizing;

use super::model::{Endpoint, InterfaceAddress, RouteTable};
use crate::keys::KeyError;

/// Why a value was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Invalid {
    #[error("not a number")]
    NotNumber,
    #[error("port out of range")]
    PortRange,
    #[error("out of range (0..=65535)")]
    U16Range,
    #[error("out of range (0..=4294967295)")]
    U32Range,
    #[error("out of range (1..=4294967295)")]
    TableRange,
    #[error("expected off, auto, main or a table number")]
    TableWord,
    #[error("expected none, allowed-ips or full-tunnel")]
    RoutesWord,
    #[error("expected auto, kernel or userspace")]
    BackendWord,
    #[error("expected unix:/absolute/path, /absolute/path or tcp://address:port")]
    ApiPath,
    #[error("expected address:port, like 127.0.0.1:9586")]
    SocketAddress,
    #[error("empty path")]
    EmptyPath,
    #[error("out of range (576..=65535)")]
    MtuRange,
    #[error("out of range for a tunnel with IPv6 addresses (1280..=65535)")]
    MtuRangeIpv6,
    #[error("must be at least 1 (seconds)")]
    Seconds,
    #[error("not an IP address")]
    NotAddress,
    #[error("prefix length must be 0..={max}")]
    PrefixLength { max: u8 },
    #[error("host bits set (did you mean {network}?)")]
    HostBits { network: IpNet },
    #[error("expected address/length, or address/length peer address/length")]
    AddressForm,
    #[error(
        "the local part's /{local} does not apply with a peer: the kernel gives a point-to-point \
         address the peer's length (/{peer}); write the local address alone or with /{peer}"
    )]
    PeerLength { local: u8, peer: u8 },
    #[error("the local address and the peer are of different families")]
    PeerFamily,
    #[error("expected an address without a prefix length, like 172.20.1.1")]
    PlainAddress,
    #[error("expected host:port or [IPv6]:port")]
    EndpointForm,
    #[error("an IPv6 address needs brackets, like [2001:db8::1]:51820")]
    EndpointBrackets,
    #[error("port is not a number")]
    PortNotNumber,
    #[error("cannot resolve: {0}")]
    Resolve(String),
    #[error("resolves to no address")]
    NoAddress,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A decimal integer as written in a wg-quick file. Digits too many for an
/// `i64` count as out of range, not as "not a number".
pub(super) fn integer(text: &str) -> Result<i64, Invalid> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Invalid::NotNumber);
    }
    Ok(text.parse().unwrap_or(i64::MAX))
}

/// A decimal or `0x` hexadecimal integer (fwmarks are usually written in hex).
pub(super) fn integer_or_hex(text: &str) -> Result<i64, Invalid> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
            Ok(i64::from_str_radix(hex, 16).unwrap_or(i64::MAX))
        }
        Some(_) => Err(Invalid::NotNumber),
        None => integer(text),
    }
}

/// A UDP port to listen on or to send to: 1..=65535.
pub(crate) fn port(value: i64) -> Result<u16, Invalid> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(Invalid::PortRange),
    }
}

/// PersistentKeepalive in seconds; 0 turns it off.
pub(crate) fn keepalive(value: i64) -> Result<Option<u16>, Invalid> {
    match u16::try_from(value) {
        Ok(0) => Ok(None),
        Ok(seconds) => Ok(Some(seconds)),
        Err(_) => Err(Invalid::U16Range),
    }
}

/// A fwmark; 0 is how WireGuard spells "no fwmark".
pub(super) fn fwmark(value: i64) -> Result<Option<u32>, Invalid> {
    match u32::try_from(value) {
        Ok(0) => Ok(None),
        Ok(mark) => Ok(Some(mark)),
        Err(_) => Err(Invalid::U32Range),
    }
}

/// A routing table by number. 254 is the main table under either name.
pub(super) fn table(value: i64) -> Result<RouteTable, Invalid> {
    match u32::try_from(value) {
        Ok(0) | Err(_) => Err(Invalid::TableRange),
        Ok(id) if id == RouteTable::Main.id() => Ok(RouteTable::Main),
        Ok(id) => Ok(RouteTable::Id(id)),
    }
}

/// The MTU of a tunnel with these addresses: IPv6 needs at least 1280.
pub(crate) fn mtu(value: i64, addresses: &[InterfaceAddress]) -> Result<u32, Invalid> {
    let ipv6 = addresses.iter().any(InterfaceAddress::is_ipv6);
    let minimum = if ipv6 { 1280 } else { 576 };
    match u32::try_from(value) {
        Ok(mtu) if (minimum..=65535).contains(&mtu) => Ok(mtu),
        _ if ipv6 => Err(Invalid::MtuRangeIpv6),
        _ => Err(Invalid::MtuRange),
    }
}

/// A duration in whole seconds, at least one.
pub(super) fn seconds(value: i64) -> Result<std::time::Duration, Invalid> {
    match u64::try_from(value) {
        Ok(seconds) if seconds >= 1 => Ok(std::time::Duration::from_secs(seconds)),
        _ => Err(Invalid::Seconds),
    }
}

/// An address with its prefix length (`10.0.0.1/24`), host bits allowed; a
/// bare address is a host prefix (`/32`, `/128`), as `ip` and `wg` read it.
pub(super) fn prefix(text: &str) -> Result<IpNet, Invalid> {
    let Some((address, length)) = text.split_once('/') else {
        return text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| Invalid::NotAddress);
    };
    let address: IpAddr = address.parse().map_err(|_| Invalid::NotAddress)?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let length = match integer(length) {
        Ok(length) => u8::try_from(length).unwrap_or(u8::MAX),
        Err(_) => u8::MAX,
    };
    IpNet::new(address, length).map_err(|_| Invalid::PrefixLength { max })
}

/// An interface address in iproute2's words: `10.0.0.1/24`, or
/// `172.20.1.1/32 peer 172.20.2.1/32` (`remote` reads as `peer`; either
/// part's length may be left out and is then the host length).
pub(crate) fn interface_address(text: &str) -> Result<InterfaceAddress, Invalid> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [local] => prefix(local).map(InterfaceAddress::plain),
        [local, keyword, peer] if matches!(*keyword, "peer" | "remote") => {
            let local = prefix(local)?;
            let peer = prefix(peer)?;
            if local.addr().is_ipv4() != peer.addr().is_ipv4() {
                return Err(Invalid::PeerFamily);
            }
            if local.prefix_len() != local.max_prefix_len()
                && local.prefix_len() != peer.prefix_len()
            {
                return Err(Invalid::PeerLength {
                    local: local.prefix_len(),
                    peer: peer.prefix_len(),
                });
            }
            InterfaceAddress::point_to_point(local.addr(), peer).map_err(|_| Invalid::PeerFamily)
        }
        _ => Err(Invalid::AddressForm),
    }
}

/// The addresses hook commands add to the tunnel: `ip address add
/// LOCAL[/LEN] [peer PEER[/LEN]] dev %i` and its usual spellings (`ip -6
/// addr add dev %i fe80::1/64`, `ip a add ...`, several commands joined
/// by `;` or `&&`). wg-quick files of BGP peerings give their addresses
/// this way; wgd then knows them (a link-local neighbor needs its tunnel's
/// link-local address) without adding them itself. Anything else is not
/// understood and gives nothing.
pub(crate) fn hook_addresses(commands: &[String]) -> Vec<InterfaceAddress> {
    let mut found = Vec::new();
    for command in commands {
        for part in command.split(';').flat_map(|part| part.split("&&")) {
            if let Some(address) = hook_address(part)
                && !found.contains(&address)
            {
                found.push(address);
            }
        }
    }
    found
}

fn hook_address(command: &str) -> Option<InterfaceAddress> {
    let mut words = command.split_whitespace();
    let program = words.next()?;
    if program != "ip" && !program.ends_with("/ip") {
        return None;
    }
    // Options before the object: -4, -6, -family inet6, ...
    let mut object = words.next()?;
    while object.starts_with('-') {
        if matches!(object, "-f" | "-family") {
            words.next()?;
        }
        object = words.next()?;
    }
    // iproute2 takes any abbreviation of "address".
    if !"address".starts_with(object) || !matches!(words.next()?, "add" | "replace") {
        return None;
    }
    let (mut local, mut peer, mut device) = (None, None, None);
    while let Some(word) = words.next() {
        match word {
            "dev" => device = Some(words.next()?),
            "peer" | "remote" => peer = Some(words.next()?),
            "local" => local = Some(words.next()?),
            "label" | "scope" | "broadcast" | "brd" | "anycast" | "valid_lft" | "preferred_lft"
            | "metric" | "priority" | "proto" => {
                words.next()?;
            }
            _ if local.is_none() && word.parse::<IpNet>().is_ok() => local = Some(word),
            _ if local.is_none() && word.parse::<IpAddr>().is_ok() => local = Some(word),
            // Flags: noprefixroute, nodad, home...
            _ => {}
        }
    }
    if device? != "%i" {
        return None;
    }
    let text = match peer {
        Some(peer) => format!("{} peer {peer}", local?),
        None => local?.to_owned(),
    };
    interface_address(&text).ok()
}

/// An address alone, without a prefix length (`172.20.1.1`).
pub(crate) fn plain_address(text: &str) -> Result<IpAddr, Invalid> {
    match text.parse::<IpAddr>() {
        Ok(address) => Ok(address),
        Err(_) if text.contains('/') && prefix(text).is_ok() => Err(Invalid::PlainAddress),
        Err(_) => Err(Invalid::NotAddress),
    }
}

/// A prefix with no host bits set (`10.0.0.0/24`, not `10.0.0.1/24`).
pub(crate) fn network(text: &str) -> Result<IpNet, Invalid> {
    let prefix = prefix(text)?;
    if prefix.trunc() != prefix {
        return Err(Invalid::HostBits {
            network: prefix.trunc(),
        });
    }
    Ok(prefix)
}

thread_local! {
    /// Set by [`offline`]: host names are refused instead of resolved.
    static OFFLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `read` with host-name resolution turned off on this thread, so
/// that reading arbitrary input (tests, fuzzing) sends no DNS query.
pub fn offline<T>(read: impl FnOnce() -> T) -> T {
    let before = OFFLINE.with(|flag| flag.replace(true));
    let result = read();
    OFFLINE.with(|flag| flag.set(before));
    result
}

/// `host:port` or `[IPv6]:port`. A host name resolves now, through the
/// system resolver; the first address wins, as with `wg`.
pub(super) fn endpoint(text: &str) -> Result<Endpoint, Invalid> {
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(Invalid::EndpointForm)?;
        (host, after.strip_prefix(':').ok_or(Invalid::EndpointForm)?)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or(Invalid::EndpointForm)?;
        if host.contains(':') {
            return Err(Invalid::EndpointBrackets);
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(Invalid::EndpointForm);
    }
    // The port is checked before any lookup, so a bad port costs no DNS query.
    let port = port(integer(port_text).map_err(|_| Invalid::PortNotNumber)?)?;
    let address = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) if OFFLINE.with(Cell::get) => {
            return Err(Invalid::Resolve(
                "host names are not resolved offline".into(),
            ));
        }
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|error| Invalid::Resolve(error.to_string()))?
            .next()
            .ok_or(Invalid::NoAddress)?,
    };
    Ok(Endpoint {
        written: text.to_owned(),
        address,
    })
}

/// Reads a key from a file that only its owner may read. `what` names the
/// key in messages ("private key", "preshared key"); the message never
/// holds the key.
pub(crate) fn key_file<K>(
    directory: &Path,
    written: &str,
    what: &str,
    parse: fn(&str) -> Result<K, KeyError>,
) -> Result<K, String> {
    if written.is_empty() {
        return Err(format!("{what} file: empty path"));
    }
    let path = directory.join(written);
    let shown = path.display();
    let metadata = std::fs::metadata(&path)
        .map_err(|error| format!("cannot read {what} file {shown}: {}", describe_io(&error)))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} file {shown} is readable by group or others (mode {mode:04o}); \
             fix it with: chmod 600 {shown}"
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map(Zeroizing::new)
        .map_err(|error| format!("cannot read {what} file {shown}: {}", describe_io(&error)))?;
    parse(text.trim()).map_err(|error| format!("{what} file {shown}: {error}"))
}

/// An I/O error as a short phrase, without the "(os error N)" noise.
pub(crate) fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory".into(),
        io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(integer("42"), Ok(42));
        assert_eq!(integer("99999999999999999999999"), Ok(i64::MAX));
        assert_eq!(integer("-1"), Err(Invalid::NotNumber));
        assert_eq!(integer(""), Err(Invalid::NotNumber));
        assert_eq!(integer_or_hex("0xca6c"), Ok(0xca6c));
        assert_eq!(integer_or_hex("0X1F"), Ok(0x1f));
        assert_eq!(integer_or_hex("0x"), Err(Invalid::NotNumber));
        assert_eq!(integer_or_hex("51820"), Ok(51820));
    }

    #[test]
    fn ranges() {
        assert_eq!(port(0), Err(Invalid::PortRange));
        assert_eq!(port(65536), Err(Invalid::PortRange));
        assert_eq!(port(65535), Ok(65535));
        assert_eq!(keepalive(0), Ok(None));
        assert_eq!(keepalive(25), Ok(Some(25)));
        assert_eq!(keepalive(-1), Err(Invalid::U16Range));
        assert_eq!(fwmark(0), Ok(None));
        assert_eq!(fwmark(0x1234), Ok(Some(0x1234)));
        assert_eq!(fwmark(1 << 32), Err(Invalid::U32Range));
        assert_eq!(table(254), Ok(RouteTable::Main));
        assert_eq!(table(100), Ok(RouteTable::Id(100)));
        assert_eq!(table(0), Err(Invalid::TableRange));
        assert_eq!(seconds(0), Err(Invalid::Seconds));
    }

    #[test]
    fn mtu_depends_on_the_address_families() {
        let v4: Vec<InterfaceAddress> = vec!["10.0.0.1/24".parse().unwrap()];
        let v6: Vec<InterfaceAddress> = vec![
            "10.0.0.1/24".parse().unwrap(),
            "fd00::1/64".parse().unwrap(),
        ];
        assert_eq!(mtu(576, &v4), Ok(576));
        assert_eq!(mtu(575, &v4), Err(Invalid::MtuRange));
        assert_eq!(mtu(1000, &v6), Err(Invalid::MtuRangeIpv6));
        assert_eq!(mtu(1280, &v6), Ok(1280));
        assert_eq!(mtu(65536, &v4), Err(Invalid::MtuRange));
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix("10.0.0.1/24"), Ok("10.0.0.1/24".parse().unwrap()));
        assert_eq!(prefix("10.0.0.1"), Ok("10.0.0.1/32".parse().unwrap()));
        assert_eq!(prefix("fd00::1"), Ok("fd00::1/128".parse().unwrap()));
        assert_eq!(
            prefix("10.0.0.0/33"),
            Err(Invalid::PrefixLength { max: 32 })
        );
        assert_eq!(prefix("fd00::/x"), Err(Invalid::PrefixLength { max: 128 }));
        assert_eq!(prefix("10.0.0/8"), Err(Invalid::NotAddress));
        assert_eq!(
            network("10.1.2.3/16"),
            Err(Invalid::HostBits {
                network: "10.1.0.0/16".parse().unwrap()
            })
        );
        assert_eq!(network("::/0"), Ok("::/0".parse().unwrap()));
    }

    #[test]
    fn interface_addresses_read_as_iproute2_writes_them() {
        let read = |text: &str| interface_address(text).map(|address| address.to_string());
        assert_eq!(read("10.0.0.1/24").as_deref(), Ok("10.0.0.1/24"));
        assert_eq!(read("fe80::1/64").as_deref(), Ok("fe80::1/64"));
        assert_eq!(
            read("172.20.1.1/32 peer 172.20.2.1/32").as_deref(),
            Ok("172.20.1.1/32 peer 172.20.2.1/32")
        );
        // The lengths may be left out, and `remote` is `peer`, as in `ip`.
        assert_eq!(
            read("172.20.1.1  remote 172.20.2.1").as_deref(),
            Ok("172.20.1.1/32 peer 172.20.2.1/32")
        );
        assert_eq!(
            read("fd42:1::1/128 peer fd42:2::1").as_deref(),
            Ok("fd42:1::1/128 peer fd42:2::1/128")
        );
        // A peer subnet: the local part takes its length.
        let subnet = interface_address("172.20.1.1 peer 172.20.0.0/24").unwrap();
        assert_eq!(subnet.local().to_string(), "172.20.1.1/24");
        assert_eq!(subnet.peer().unwrap().to_string(), "172.20.0.0/24");
        assert_eq!(
            interface_address("172.20.1.1/24 peer 172.20.2.1/32"),
            Err(Invalid::PeerLength {
                local: 24,
                peer: 32
            })
        );
        assert_eq!(
            interface_address("172.20.1.1 peer fd00::1"),
            Err(Invalid::PeerFamily)
        );
        assert_eq!(
            interface_address("172.20.1.1 via 172.20.2.1"),
            Err(Invalid::AddressForm)
        );
        assert_eq!(
            interface_address("172.20.1.1 peer"),
            Err(Invalid::AddressForm)
        );
        assert_eq!(
            interface_address("172.20.1.1/33 peer 172.20.2.1"),
            Err(Invalid::PrefixLength { max: 32 })
        );
        assert!(interface_address("fe80::1/64").unwrap().is_link_local());
        assert!(!interface_address("fd00::1/64").unwrap().is_link_local());
        // Differently written, the same address.
        assert_eq!(
            interface_address("172.20.1.1 peer 172.20.2.1"),
            interface_address("172.20.1.1/32 peer 172.20.2.1/32")
        );
        assert_ne!(
            interface_address("172.20.1.1 peer 172.20.2.1"),
            interface_address("172.20.1.1 peer 172.20.2.2")
        );
    }

    #[test]
    fn addresses_hooks_add() {
        let commands = [
            "ip addr add dev %i 172.20.1.1/32 peer 172.20.2.1/32".to_owned(),
            "ip -6 a add fe80::1/64 dev %i".to_owned(),
            "/sbin/ip address add fd42:1::1/128 dev %i noprefixroute; ip link set %i mtu 1400"
                .to_owned(),
            "ip addr add 10.9.9.9/24 dev eth0".to_owned(),
            "ip route add 10.0.0.0/8 dev %i".to_owned(),
            "ip addr add dev %i 172.20.1.1/32 peer 172.20.2.1/32".to_owned(),
            "ip -family inet6 addr replace dev %i fd42:1::2 remote fd42:2::2 && true".to_owned(),
            "ip addr add dev %i".to_owned(),
        ];
        let found: Vec<String> = hook_addresses(&commands)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "172.20.1.1/32 peer 172.20.2.1/32",
                "fe80::1/64",
                "fd42:1::1/128",
                "fd42:1::2/128 peer fd42:2::2/128",
            ]
        );
    }

    #[test]
    fn plain_addresses() {
        assert_eq!(
            plain_address("172.20.1.1"),
            Ok("172.20.1.1".parse().unwrap())
        );
        assert_eq!(plain_address("172.20.1.1/32"), Err(Invalid::PlainAddress));
        assert_eq!(plain_address("x"), Err(Invalid::NotAddress));
    }

    #[test]
    fn endpoints() {
        let endpoint_of = |text: &str| endpoint(text).map(|endpoint| endpoint.address);
        assert_eq!(
            endpoint_of("192.0.2.1:51820"),
            Ok("192.0.2.1:51820".parse().unwrap())
        );
        assert_eq!(
            endpoint_of("[2001:db8::1]:51820"),
            Ok("[2001:db8::1]:51820".parse().unwrap())
        );
        assert_eq!(
            endpoint_of("2001:db8::1:51820"),
            Err(Invalid::EndpointBrackets)
        );
        assert_eq!(endpoint_of("192.0.2.1"), Err(Invalid::EndpointForm));
        assert_eq!(endpoint_of("[2001:db8::1]"), Err(Invalid::EndpointForm));
        assert_eq!(endpoint_of(":51820"), Err(Invalid::EndpointForm));
        assert_eq!(endpoint_of("x:99999"), Err(Invalid::PortRange));
        assert_eq!(endpoint_of("x:0"), Err(Invalid::PortRange));
        assert_eq!(endpoint_of("x:port"), Err(Invalid::PortNotNumber));
    }
}
