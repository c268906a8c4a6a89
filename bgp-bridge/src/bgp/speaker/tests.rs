use super::*;
use crate::bgp::types::NextHop;
use crate::route::PeerInfo;

fn id(text: &str) -> NeighborId {
    text.parse().unwrap()
}

fn tunnel(name: &str, ifindex: u32, addresses: &[&str]) -> TunnelInfo {
    TunnelInfo {
        name: name.into(),
        ifindex,
        up: true,
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        peer_addresses: Vec::new(),
        peers: vec![PeerInfo {
            public_key: "key".into(),
            allowed_ips: Vec::new(),
            endpoint: None,
            reachable: true,
        }],
    }
}

/// Two dn42-style tunnels, both with a neighbor at fe80::2.
fn view() -> TunnelView {
    let mut b = tunnel("dn42b", 7, &["172.20.1.1/32", "fe80::1/64"]);
    b.peer_addresses = vec!["172.20.2.1/32".parse().unwrap()];
    let c = tunnel("dn42c", 9, &["fe80::1:1/64", "fd42:1::1/64"]);
    TunnelView {
        tunnels: vec![b, c],
        bfd_down: Default::default(),
    }
}

fn v6(address: &str, port: u16, scope: u32) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(address.parse().unwrap(), port, 0, scope))
}

#[test]
fn accepted_link_local_connections_belong_to_the_tunnel_of_their_scope() {
    let view = view();
    assert_eq!(
        accepted_from(v6("fe80::2", 40000, 7), &view),
        Some(id("fe80::2%dn42b"))
    );
    assert_eq!(
        accepted_from(v6("fe80::2", 40000, 9), &view),
        Some(id("fe80::2%dn42c"))
    );
    // A scope of no tunnel: nobody's.
    assert_eq!(accepted_from(v6("fe80::2", 40000, 3), &view), None);
    // Global and IPv4-mapped addresses are their address.
    assert_eq!(
        accepted_from(v6("fd42:1::2", 40000, 0), &view),
        Some(id("fd42:1::2"))
    );
    assert_eq!(
        accepted_from(v6("::ffff:10.0.0.2", 40000, 0), &view),
        Some(id("10.0.0.2"))
    );
}

#[test]
fn link_local_neighbors_are_reached_from_the_tunnels_link_local_address() {
    let view = view();
    assert_eq!(
        connect_ends(id("fe80::2%dn42b"), 179, &view),
        Ok((Some(v6("fe80::1", 0, 7)), v6("fe80::2", 179, 7)))
    );
    assert_eq!(
        connect_ends(id("fe80::2%dn42c"), 179, &view),
        Ok((Some(v6("fe80::1:1", 0, 9)), v6("fe80::2", 179, 9)))
    );
    assert_eq!(
        connect_ends(id("10.0.0.2"), 179, &view),
        Ok((None, "10.0.0.2:179".parse().unwrap()))
    );
    assert_eq!(
        connect_ends(id("fe80::2%dn42x"), 179, &view),
        Err("tunnel dn42x is not there yet".into())
    );
    let mut bare = view.clone();
    bare.tunnels[0].addresses.retain(|net| net.addr().is_ipv4());
    assert_eq!(
        connect_ends(id("fe80::2%dn42b"), 179, &bare),
        Err("tunnel dn42b has no link-local (fe80::/10) address to speak from".into())
    );
}

fn with_next_hops(next_hop: &str, link_local: Option<&str>) -> Attributes {
    Attributes {
        next_hop: NextHop::new(
            Some(next_hop.parse().unwrap()),
            link_local.map(|address| address.parse().unwrap()),
        ),
        ..Attributes::default()
    }
}

fn on(address: &str, tunnel: &str) -> Option<NexthopSpec> {
    Some(NexthopSpec::AddressOnTunnel {
        address: address.parse().unwrap(),
        tunnel: tunnel.into(),
    })
}

#[test]
fn link_local_sessions_install_the_link_local_next_hop_on_their_tunnel() {
    let from = id("fe80::2%dn42b");
    // Alone, beside a global one, or the global field holding it (FRR).
    for attributes in [
        with_next_hops("fe80::2", None),
        with_next_hops("fd42:2::1", Some("fe80::2")),
        with_next_hops("fe80::2", Some("fe80::2")),
    ] {
        assert_eq!(gateway(&attributes, from, None), on("fe80::2", "dn42b"));
    }
    // An IPv4 nexthop (no RFC 8950) stays as it is.
    assert_eq!(
        gateway(&with_next_hops("172.20.2.1", None), from, None),
        Some(NexthopSpec::Address("172.20.2.1".parse().unwrap()))
    );
}

#[test]
fn global_sessions_install_the_global_next_hop() {
    let from = id("fd42:1::2");
    assert_eq!(
        gateway(
            &with_next_hops("fd42:1::2", Some("fe80::2")),
            from,
            Some("dn42c")
        ),
        Some(NexthopSpec::Address("fd42:1::2".parse().unwrap()))
    );
    // A link-local one alone: on the session's tunnel, if known.
    assert_eq!(
        gateway(&with_next_hops("fe80::2", None), from, Some("dn42c")),
        on("fe80::2", "dn42c")
    );
    assert_eq!(gateway(&with_next_hops("fe80::2", None), from, None), None);
}

#[test]
fn next_hops_resolve_on_live_tunnels_only() {
    let mut view = view();
    let peers = BTreeMap::new();
    let resolver = resolver(&view, &peers);
    let b = id("fe80::2%dn42b");
    // Link-local on its tunnel; IPv4 at a point-to-point far end; a
    // global one on a subnet; not our own address.
    assert!(resolver.resolves_path(b, &with_next_hops("fe80::2", None)));
    assert!(resolver.resolves_path(b, &with_next_hops("172.20.2.1", None)));
    assert!(resolver.resolves(IpAddr::from([0xfd42, 1, 0, 0, 0, 0, 0, 2])));
    assert!(!resolver.resolves("172.20.1.1".parse().unwrap()));
    assert!(!resolver.resolves("192.0.2.1".parse().unwrap()));
    // A tunnel down, or with no live peer: not there.
    view.tunnels[0].up = false;
    let resolver = super::resolver(&view, &peers);
    assert!(!resolver.resolves_path(b, &with_next_hops("fe80::2", None)));
    assert!(!resolver.resolves_path(b, &with_next_hops("172.20.2.1", None)));
    assert!(resolver.resolves_path(id("fe80::2%dn42c"), &with_next_hops("fe80::2", None)));
}

fn neighbor(address: &str, tunnel: Option<&str>, password: Option<&str>) -> NeighborConfig {
    NeighborConfig {
        address: address.parse().unwrap(),
        tunnel: tunnel.map(str::to_owned),
        remote_as: 65002,
        passive: false,
        hold_time: None,
        prefix_limit: 0,
        prefix_limit_action: decision::LimitAction::Reset,
        description: None,
        password: password.map(|p| Secret(zeroize::Zeroizing::new(p.to_owned()))),
        bfd: None,
        ttl_security: false,
        import: Policy::default(),
        export: Policy::default(),
    }
}

#[test]
fn one_link_local_address_on_two_tunnels_takes_one_password() {
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let listener = TcpListener::from_std(listener).unwrap();
    let same = [
        neighbor("fe80::2", Some("dn42b"), Some("s3cret")),
        neighbor("fe80::2", Some("dn42c"), Some("s3cret")),
    ];
    listen_md5(&listener, &same).unwrap();
    let different = [
        neighbor("fe80::2", Some("dn42b"), Some("s3cret")),
        neighbor("fe80::2", Some("dn42c"), None),
    ];
    let error = listen_md5(&listener, &different).unwrap_err().to_string();
    assert!(
        error.contains("tunnel dn42b") && error.contains("tunnel dn42c"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn link_local_neighbors_get_only_nexthops_they_reach_directly() {
    let ll = neighbor("fe80::2", Some("dn42b"), None);
    let ll_id = id("fe80::2%dn42b");
    let fe80 = Some("fe80::1".parse::<Ipv6Addr>().unwrap());
    // A lone /32 and /128 (a router address put on the tunnel): no
    // nexthop of the family but the link-local one.
    let lone = tunnel(
        "dn42b",
        7,
        &["172.20.1.1/32", "fd42:1::1/128", "fe80::1/64"],
    );
    assert_eq!(local_addresses(&ll, ll_id, &lone), (None, None, fe80));
    // Point-to-point (the far ends are the neighbor's): both.
    let mut ptp = lone.clone();
    ptp.peer_addresses = vec![
        "172.20.2.1/32".parse().unwrap(),
        "fd42:2::1/128".parse().unwrap(),
    ];
    assert_eq!(
        local_addresses(&ll, ll_id, &ptp),
        (
            Some("172.20.1.1".parse().unwrap()),
            Some("fd42:1::1".parse().unwrap()),
            fe80
        )
    );
    // A shared subnet: yes.
    let subnet = tunnel("dn42b", 7, &["fd42:1::1/64", "fe80::1/64"]);
    assert_eq!(
        local_addresses(&ll, ll_id, &subnet),
        (None, Some("fd42:1::1".parse().unwrap()), fe80)
    );
    // A global neighbor keeps what it always had.
    let global = neighbor("10.0.0.2", None, None);
    assert_eq!(
        local_addresses(&global, id("10.0.0.2"), &lone),
        (
            Some("172.20.1.1".parse().unwrap()),
            Some("fd42:1::1".parse().unwrap()),
            fe80
        )
    );
}

#[test]
fn session_tunnels_by_name_or_subnet() {
    let view = view();
    let name = |config: &NeighborConfig| session_tunnel(config, &view).map(|t| t.name.clone());
    assert_eq!(
        name(&neighbor("fe80::2", Some("dn42c"), None)),
        Some("dn42c".into())
    );
    assert_eq!(
        name(&neighbor("fd42:1::2", None, None)),
        Some("dn42c".into())
    );
    assert_eq!(
        name(&neighbor("172.20.2.1", None, None)),
        Some("dn42b".into())
    );
    // A link-local address names no tunnel by itself.
    assert_eq!(name(&neighbor("fe80::2", None, None)), None);
}
