//! What the bridge refuses, and why, before a route reaches the RIB: the
//! checks that depend on the route alone. Checks that need the tunnels
//! (is the nexthop on one of them?) and the owner (its prefix limit) are
//! the RIB's. Pure.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::route::NexthopSpec;

/// Why a route was not taken. The text is what the owner and `wgd routes`
/// show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    HostBitsSet {
        network: IpNet,
    },
    Special {
        range: &'static str,
        what: &'static str,
    },
    NoNexthop,
    BadNexthop {
        address: IpAddr,
        what: &'static str,
    },
    NexthopNotOnTunnel {
        address: IpAddr,
    },
    /// A link-local address is the same on every link: only its tunnel
    /// says which neighbor it is.
    LinkLocalNeedsTunnel {
        address: IpAddr,
    },
    /// An IPv6 route through an IPv4 gateway (the kernel has IPv4 routes
    /// through IPv6 gateways, RFC 8950, but not the other way).
    NexthopFamily {
        address: IpAddr,
    },
    UnknownTunnel {
        tunnel: String,
    },
    NexthopIsOwnAddress {
        address: IpAddr,
        tunnel: String,
    },
    MultiPeerNeedsAddress {
        tunnel: String,
    },
    NoPeerForNexthop {
        address: IpAddr,
        tunnel: String,
    },
    OverPrefixLimit {
        limit: u32,
    },
    EndpointHostRoute {
        tunnel: String,
    },
    ReservedOwner {
        owner: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::HostBitsSet { network } => {
                write!(f, "host bits set (the network is {network})")
            }
            Refusal::Special { range, what } => write!(f, "{what} prefix (within {range})"),
            Refusal::NoNexthop => f.write_str("no nexthop"),
            Refusal::BadNexthop { address, what } => {
                write!(f, "nexthop {address} is a {what} address")
            }
            Refusal::NexthopNotOnTunnel { address } => write!(
                f,
                "nexthop {address} is not on any of wgd's tunnels (allow_other_interfaces is off)"
            ),
            Refusal::LinkLocalNeedsTunnel { address } => write!(
                f,
                "nexthop {address} is link-local: name its tunnel (via {address} dev TUNNEL)"
            ),
            Refusal::NexthopFamily { address } => write!(
                f,
                "nexthop {address} is IPv4: an IPv6 route needs an IPv6 nexthop"
            ),
            Refusal::UnknownTunnel { tunnel } => write!(f, "no tunnel named \"{tunnel}\""),
            Refusal::NexthopIsOwnAddress { address, tunnel } => {
                write!(
                    f,
                    "nexthop {address} is this host's own address on {tunnel}"
                )
            }
            Refusal::MultiPeerNeedsAddress { tunnel } => write!(
                f,
                "tunnel {tunnel} has several peers: give the nexthop's address to choose one"
            ),
            Refusal::NoPeerForNexthop { address, tunnel } => write!(
                f,
                "nexthop {address} is in none of the AllowedIPs of tunnel {tunnel}'s peers"
            ),
            Refusal::OverPrefixLimit { limit } => {
                write!(f, "over the owner's prefix limit of {limit}")
            }
            Refusal::EndpointHostRoute { tunnel } => write!(
                f,
                "is the host route of a peer endpoint of tunnel {tunnel}: the tunnel would carry itself"
            ),
            Refusal::ReservedOwner { owner } => {
                write!(f, "owner name \"{owner}\" is reserved for wgd")
            }
        }
    }
}

/// Ranges no learned route may fall within. The default route is fine:
/// it only covers them.
const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// The checks of a prefix on its own.
pub fn check_prefix(prefix: &IpNet) -> Result<(), Refusal> {
    let network = prefix.trunc();
    if network != *prefix {
        return Err(Refusal::HostBitsSet { network });
    }
    static RANGES: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
        SPECIAL
            .iter()
            .map(|(range, _)| range.parse().expect("a valid range"))
            .collect()
    });
    for (net, (range, what)) in RANGES.iter().zip(SPECIAL) {
        if net.contains(prefix) {
            return Err(Refusal::Special { range, what });
        }
    }
    Ok(())
}

/// The checks of a nexthop address on its own.
pub fn check_nexthop(address: IpAddr) -> Result<(), Refusal> {
    let what = if address.is_unspecified() {
        "unspecified"
    } else if address.is_loopback() {
        "loopback"
    } else if address.is_multicast() {
        "multicast"
    } else {
        return Ok(());
    };
    Err(Refusal::BadNexthop { address, what })
}

/// The checks of one nexthop of a route for `prefix`, on their own: its
/// address, its family against the prefix's (an IPv4 route may go through
/// an IPv6 gateway, RFC 8950, as `via inet6 fe80::2 dev dn42b`), and a
/// link-local address without its tunnel.
pub fn check_route_nexthop(prefix: &IpNet, nexthop: &NexthopSpec) -> Result<(), Refusal> {
    let (address, scoped) = match nexthop {
        NexthopSpec::Tunnel(_) => return Ok(()),
        NexthopSpec::Address(address) => (*address, false),
        NexthopSpec::AddressOnTunnel { address, .. } => (*address, true),
    };
    check_nexthop(address)?;
    if matches!((prefix, address), (IpNet::V6(_), IpAddr::V4(_))) {
        return Err(Refusal::NexthopFamily { address });
    }
    if !scoped && is_link_local(address) {
        return Err(Refusal::LinkLocalNeedsTunnel { address });
    }
    Ok(())
}

/// `fe80::/10`: the same address on every link (IPv4's 169.254.0.0/16 is
/// not taken as one: zebra writes 169.254.0.1 for RFC 5549 routes, always
/// with its interface).
pub fn is_link_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(_) => false,
        IpAddr::V6(address) => address.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Owner names wgd gives its own sources; a gRPC session may not take them.
pub fn check_owner(owner: &str) -> Result<(), Refusal> {
    if owner == "fpm" || owner == "adopted" || owner.starts_with("bgp:") {
        return Err(Refusal::ReservedOwner {
            owner: owner.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(prefix: &str) -> Option<String> {
        check_prefix(&prefix.parse().unwrap())
            .err()
            .map(|refusal| refusal.to_string())
    }

    #[test]
    fn ordinary_prefixes_and_the_default_route_pass() {
        for prefix in [
            "10.0.0.0/8",
            "192.0.2.0/24",
            "0.0.0.0/0",
            "::/0",
            "2001:db8::/32",
        ] {
            assert_eq!(refusal(prefix), None, "{prefix}");
        }
    }

    #[test]
    fn each_special_range_is_refused_with_its_name() {
        let cases = [
            ("10.0.0.1/8", "host bits set (the network is 10.0.0.0/8)"),
            ("127.0.0.0/8", "loopback prefix (within 127.0.0.0/8)"),
            ("127.1.0.0/16", "loopback prefix (within 127.0.0.0/8)"),
            ("224.0.0.0/24", "multicast prefix (within 224.0.0.0/4)"),
            (
                "169.254.0.0/16",
                "link-local prefix (within 169.254.0.0/16)",
            ),
            ("0.0.0.0/8", "\"this network\" prefix (within 0.0.0.0/8)"),
            ("0.1.0.0/16", "\"this network\" prefix (within 0.0.0.0/8)"),
            ("fe80::/64", "link-local prefix (within fe80::/10)"),
            ("ff02::/16", "multicast prefix (within ff00::/8)"),
            ("::1/128", "loopback prefix (within ::1/128)"),
        ];
        for (prefix, reason) in cases {
            assert_eq!(refusal(prefix).as_deref(), Some(reason), "{prefix}");
        }
    }

    #[test]
    fn nexthops_and_owners() {
        assert!(check_nexthop("10.255.0.1".parse().unwrap()).is_ok());
        assert_eq!(
            check_nexthop("127.0.0.1".parse().unwrap())
                .unwrap_err()
                .to_string(),
            "nexthop 127.0.0.1 is a loopback address"
        );
        assert!(check_nexthop("ff02::1".parse().unwrap()).is_err());
        assert!(check_owner("controller").is_ok());
        assert!(check_owner("bgp:10.0.0.1").is_err());
        assert!(check_owner("fpm").is_err());
    }

    #[test]
    fn an_ipv4_route_may_go_through_an_ipv6_gateway_named_with_its_tunnel() {
        let v4: IpNet = "172.20.2.0/27".parse().unwrap();
        let v6: IpNet = "fd42:2::/48".parse().unwrap();
        let scoped = |address: &str| NexthopSpec::AddressOnTunnel {
            address: address.parse().unwrap(),
            tunnel: "dn42b".into(),
        };
        let bare = |address: &str| NexthopSpec::Address(address.parse().unwrap());
        let refusal = |prefix: &IpNet, nexthop: NexthopSpec| {
            check_route_nexthop(prefix, &nexthop)
                .err()
                .map(|refusal| refusal.to_string())
        };
        assert_eq!(refusal(&v4, scoped("fe80::2")), None);
        assert_eq!(refusal(&v4, bare("fd42:1::2")), None);
        assert_eq!(refusal(&v6, scoped("fe80::2")), None);
        assert_eq!(refusal(&v4, NexthopSpec::Tunnel("dn42b".into())), None);
        for prefix in [&v4, &v6] {
            assert_eq!(
                refusal(prefix, bare("fe80::2")).as_deref(),
                Some("nexthop fe80::2 is link-local: name its tunnel (via fe80::2 dev TUNNEL)")
            );
        }
        assert_eq!(
            refusal(&v6, bare("172.20.1.2")).as_deref(),
            Some("nexthop 172.20.1.2 is IPv4: an IPv6 route needs an IPv6 nexthop")
        );
        assert_eq!(
            refusal(&v4, scoped("::1")).as_deref(),
            Some("nexthop ::1 is a loopback address")
        );
        assert!(is_link_local("febf::1".parse().unwrap()));
        assert!(!is_link_local("fec0::1".parse().unwrap()));
        assert!(!is_link_local("169.254.0.1".parse().unwrap()));
    }
}
