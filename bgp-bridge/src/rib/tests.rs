use super::*;
use crate::route::PeerInfo;

const KEY_B: &str = "peer-b-key";
const KEY_C: &str = "peer-c-key";

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn peer(key: &str, allowed: &[&str], endpoint: &str) -> PeerInfo {
    PeerInfo {
        public_key: key.into(),
        allowed_ips: allowed.iter().map(|a| net(a)).collect(),
        endpoint: Some(endpoint.parse().unwrap()),
        reachable: true,
    }
}

/// wg-b: one peer on 10.255.0.0/31; wg-hub: two peers on 10.254.0.0/24.
fn view() -> TunnelView {
    TunnelView {
        tunnels: vec![
            TunnelInfo {
                name: "wg-b".into(),
                ifindex: 7,
                up: true,
                addresses: vec![net("10.255.0.0/31"), net("fd00:255::/127")],
                peer_addresses: Vec::new(),
                peers: vec![peer(KEY_B, &["0.0.0.0/0", "::/0"], "198.51.100.2:51820")],
            },
            TunnelInfo {
                name: "wg-hub".into(),
                ifindex: 9,
                up: true,
                addresses: vec![net("10.254.0.1/24")],
                peer_addresses: Vec::new(),
                peers: vec![
                    peer("spoke-1", &["10.254.0.2/32"], "198.51.100.6:51820"),
                    peer(KEY_C, &["10.254.0.3/32"], "198.51.100.10:51820"),
                ],
            },
        ],
        bfd_down: Default::default(),
    }
}

fn rib() -> Rib {
    let mut rib = Rib::new(RibConfig::default());
    rib.set_tunnels(view(), &mut Changes::default());
    rib
}

fn via(prefix: &str, gateway: &str, distance: u8, metric: u32) -> RouteSpec {
    RouteSpec {
        prefix: net(prefix),
        nexthops: vec![NexthopSpec::Address(ip(gateway))],
        distance,
        metric,
    }
}

fn nexthop(tunnel: &str, ifindex: u32, gateway: Option<&str>, peer: Option<&str>) -> FibNexthop {
    FibNexthop {
        tunnel: tunnel.into(),
        ifindex,
        gateway: gateway.map(ip),
        peer: peer.map(Into::into),
    }
}

fn offer(rib: &mut Rib, owner: &str, spec: RouteSpec) -> (RouteStatus, Changes) {
    let mut changes = Changes::default();
    let status = rib.offer(&Owner::new(owner), spec, &mut changes);
    (status, changes)
}

#[test]
fn a_route_on_a_tunnel_is_added_once_and_replaced_in_place() {
    let mut rib = rib();
    let (status, changes) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(
        changes.fib,
        vec![FibOp::Add {
            prefix: net("192.0.2.0/24"),
            nexthops: vec![nexthop("wg-b", 7, Some("10.255.0.1"), None)],
            source: None,
        }]
    );
    // The same route again: nothing for the kernel.
    let (_, changes) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 5));
    assert!(changes.is_empty(), "{changes:?}");
    // Another nexthop: replaced in place, never removed first.
    let spec = RouteSpec {
        nexthops: vec![NexthopSpec::Tunnel("wg-b".into())],
        ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
    };
    let (_, changes) = offer(&mut rib, "a", spec);
    assert_eq!(
        changes.fib,
        vec![FibOp::Replace {
            prefix: net("192.0.2.0/24"),
            nexthops: vec![nexthop("wg-b", 7, None, None)],
            source: None,
        }]
    );
    let mut changes = Changes::default();
    assert_eq!(
        rib.withdraw(&Owner::new("a"), net("192.0.2.0/24"), &mut changes),
        RouteStatus::Withdrawn
    );
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("192.0.2.0/24")
        }]
    );
    assert_eq!(rib.installed_count(), 0);
}

#[test]
fn the_best_owner_wins_and_the_next_takes_over_when_it_goes() {
    let mut rib = rib();
    offer(&mut rib, "far", via("192.0.2.0/24", "10.255.0.1", 200, 0));
    let (status, changes) = offer(
        &mut rib,
        "near",
        RouteSpec {
            nexthops: vec![NexthopSpec::Tunnel("wg-b".into())],
            ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
        },
    );
    assert_eq!(status, RouteStatus::Installed);
    assert!(matches!(changes.fib[..], [FibOp::Replace { .. }]));
    assert_eq!(
        rib.status_of(net("192.0.2.0/24"), &Owner::new("far")),
        Some(RouteStatus::Standby {
            installed_owner: Owner::new("near")
        })
    );
    // Equal distance: the lower metric wins.
    let (status, _) = offer(
        &mut rib,
        "worse-metric",
        via("192.0.2.0/24", "10.255.0.1", 20, 10),
    );
    assert!(matches!(status, RouteStatus::Standby { .. }));
    let mut changes = Changes::default();
    rib.withdraw(&Owner::new("near"), net("192.0.2.0/24"), &mut changes);
    // worse-metric (20/10) beats far (200/0); same kernel nexthop as far's?
    assert_eq!(
        changes.fib,
        vec![FibOp::Replace {
            prefix: net("192.0.2.0/24"),
            nexthops: vec![nexthop("wg-b", 7, Some("10.255.0.1"), None)],
            source: None,
        }]
    );
    assert_eq!(
        rib.status_of(net("192.0.2.0/24"), &Owner::new("worse-metric")),
        Some(RouteStatus::Installed)
    );
}

#[test]
fn a_tunnel_going_down_queues_its_routes_and_coming_back_restores_them() {
    let mut rib = rib();
    rib.register(&Owner::new("a"), "10.255.0.1".parse().unwrap());
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    let mut down = view();
    down.tunnels[0].up = false;
    let mut changes = Changes::default();
    rib.set_tunnels(down.clone(), &mut changes);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("192.0.2.0/24")
        }]
    );
    assert_eq!(changes.nexthops.len(), 1);
    assert!(!changes.nexthops[0].reachable);
    assert_eq!(
        rib.status_of(net("192.0.2.0/24"), &Owner::new("a")),
        Some(RouteStatus::Queued("tunnel wg-b is down".into()))
    );
    // A route offered while down is queued, not refused.
    let (status, changes) = offer(&mut rib, "a", via("198.18.0.0/15", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Queued("tunnel wg-b is down".into()));
    assert!(changes.fib.is_empty());
    // A dead peer counts as down too.
    let mut dead = view();
    dead.tunnels[0].peers[0].reachable = false;
    let mut changes = Changes::default();
    rib.set_tunnels(dead, &mut changes);
    assert!(changes.fib.is_empty());
    let mut changes = Changes::default();
    rib.set_tunnels(view(), &mut changes);
    assert_eq!(changes.fib.len(), 2);
    assert!(changes.fib.iter().all(|op| matches!(op, FibOp::Add { .. })));
    assert_eq!(changes.nexthops.len(), 1);
    assert!(changes.nexthops[0].reachable);
    assert_eq!(changes.nexthops[0].tunnel.as_deref(), Some("wg-b"));
}

#[test]
fn a_session_that_comes_back_reclaims_without_kernel_changes_and_the_rest_is_swept() {
    let mut rib = rib();
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    offer(&mut rib, "a", via("198.51.100.128/25", "10.255.0.1", 20, 0));
    assert_eq!(rib.mark_stale(&Owner::new("a")), 2);
    let (status, changes) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert!(changes.is_empty());
    let mut changes = Changes::default();
    assert_eq!(rib.sweep_stale(&Owner::new("a"), &mut changes), 1);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("198.51.100.128/25")
        }]
    );
    assert_eq!(rib.owner_routes(&Owner::new("a")), 1);
}

#[test]
fn adopted_routes_stay_until_claimed_or_swept() {
    let mut rib = rib();
    rib.adopt(
        net("192.0.2.0/24"),
        vec![nexthop("", 7, Some("10.255.0.1"), None)],
        None,
        &mut Changes::default(),
    );
    rib.adopt(
        net("203.0.113.0/24"),
        vec![nexthop("", 7, None, None)],
        None,
        &mut Changes::default(),
    );
    assert_eq!(rib.adopted_count(), 2);
    let listed = rib.routes(&RouteFilter::default());
    assert_eq!(listed[0].owner, Owner::adopted());
    assert_eq!(
        listed[0].nexthops,
        vec![NexthopSpec::AddressOnTunnel {
            address: ip("10.255.0.1"),
            tunnel: "wg-b".into()
        }]
    );
    // Claimed with the same nexthop: the kernel keeps its route as it is.
    let (status, changes) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert!(changes.fib.is_empty());
    // A tunnel change before the sweep keeps the unclaimed one.
    let mut changes = Changes::default();
    let mut other = view();
    other.tunnels[1].up = false;
    rib.set_tunnels(other, &mut changes);
    assert!(changes.fib.is_empty());
    let mut changes = Changes::default();
    assert_eq!(rib.sweep_adopted(&mut changes), 1);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("203.0.113.0/24")
        }]
    );
    assert_eq!(rib.installed_count(), 1);
}

#[test]
fn multi_peer_tunnels_carry_each_prefix_in_its_peers_allowed_ips() {
    let mut rib = rib();
    let (status, changes) = offer(&mut rib, "a", via("192.168.2.0/24", "10.254.0.2", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(
        changes.allowed_ips,
        vec![AllowedIpsOp::Add {
            tunnel: "wg-hub".into(),
            peer: "spoke-1".into(),
            prefix: net("192.168.2.0/24")
        }]
    );
    offer(&mut rib, "a", via("192.168.3.0/24", "10.254.0.3", 20, 0));
    assert_eq!(
        rib.allowed_ips()[&("wg-hub".to_owned(), KEY_C.to_owned())],
        BTreeSet::from([net("192.168.3.0/24")])
    );
    // Moved to the other spoke: out of one peer, into the other.
    let (_, changes) = offer(&mut rib, "a", via("192.168.2.0/24", "10.254.0.3", 20, 0));
    assert_eq!(changes.allowed_ips.len(), 2);
    let mut changes = Changes::default();
    rib.withdraw(&Owner::new("a"), net("192.168.2.0/24"), &mut changes);
    assert_eq!(
        changes.allowed_ips,
        vec![AllowedIpsOp::Remove {
            tunnel: "wg-hub".into(),
            peer: KEY_C.into(),
            prefix: net("192.168.2.0/24")
        }]
    );
    assert!(
        !rib.allowed_ips()
            .contains_key(&("wg-hub".to_owned(), "spoke-1".to_owned()))
    );
    // Single-peer tunnels never get AllowedIPs changes.
    let (_, changes) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    assert!(changes.allowed_ips.is_empty());
}

#[test]
fn a_nexthop_whose_bfd_failed_does_not_resolve_and_others_take_over() {
    let mut rib = rib();
    // An ECMP route over both spokes, a route through spoke-1 alone with a
    // worse one through wg-b beside it.
    let ecmp = RouteSpec {
        nexthops: vec![
            NexthopSpec::Address(ip("10.254.0.2")),
            NexthopSpec::Address(ip("10.254.0.3")),
        ],
        ..via("192.168.5.0/24", "10.254.0.2", 20, 0)
    };
    offer(&mut rib, "a", ecmp);
    offer(&mut rib, "a", via("192.168.2.0/24", "10.254.0.2", 10, 0));
    offer(&mut rib, "b", via("192.168.2.0/24", "10.255.0.1", 30, 0));
    let spoke_1 = ("wg-hub".to_owned(), "spoke-1".to_owned());
    assert_eq!(
        rib.allowed_ips()[&spoke_1],
        BTreeSet::from([net("192.168.2.0/24"), net("192.168.5.0/24")])
    );

    // BFD to spoke-1 falls: its routes stop resolving, whoever owns them.
    let mut down = view();
    down.bfd_down
        .insert(("wg-hub".to_owned(), ip("10.254.0.2")));
    let mut changes = Changes::default();
    assert!(rib.set_tunnels(down, &mut changes));
    assert!(
        changes.fib.contains(&FibOp::Replace {
            prefix: net("192.168.2.0/24"),
            nexthops: vec![nexthop("wg-b", 7, Some("10.255.0.1"), None)],
            source: None,
        }),
        "{changes:?}"
    );
    assert!(
        changes.fib.contains(&FibOp::Replace {
            prefix: net("192.168.5.0/24"),
            nexthops: vec![nexthop("wg-hub", 9, Some("10.254.0.3"), Some(KEY_C))],
            source: None,
        }),
        "{changes:?}"
    );
    // Neither prefix is in spoke-1's AllowedIPs any more.
    assert!(!rib.allowed_ips().contains_key(&spoke_1));
    assert_eq!(
        rib.status_of(net("192.168.2.0/24"), &Owner::new("a")),
        Some(RouteStatus::Queued(
            "BFD to 10.254.0.2 on tunnel wg-hub is down".into()
        ))
    );
    // The same address on another tunnel is another nexthop.
    let mut elsewhere = view();
    elsewhere
        .bfd_down
        .insert(("wg-b".to_owned(), ip("10.254.0.2")));
    let mut changes = Changes::default();
    rib.set_tunnels(elsewhere, &mut changes);
    assert_eq!(
        rib.allowed_ips()[&spoke_1],
        BTreeSet::from([net("192.168.2.0/24"), net("192.168.5.0/24")])
    );

    // BFD back up: everything as before.
    let mut changes = Changes::default();
    rib.set_tunnels(view(), &mut changes);
    assert_eq!(
        rib.status_of(net("192.168.2.0/24"), &Owner::new("a")),
        Some(RouteStatus::Installed)
    );
    assert_eq!(
        rib.allowed_ips()[&spoke_1],
        BTreeSet::from([net("192.168.2.0/24"), net("192.168.5.0/24")])
    );
}

#[test]
fn refusals_name_their_reason_and_change_nothing() {
    let mut rib = Rib::new(RibConfig {
        prefix_limit: 1,
        ..RibConfig::default()
    });
    rib.set_tunnels(view(), &mut Changes::default());
    let cases = [
        (
            via("192.0.2.0/24", "192.0.2.1", 20, 0),
            "nexthop 192.0.2.1 is not on any of wgd's tunnels (allow_other_interfaces is off)",
        ),
        (
            via("192.0.2.0/24", "10.255.0.0", 20, 0),
            "nexthop 10.255.0.0 is this host's own address on wg-b",
        ),
        (
            via("192.0.2.0/24", "10.254.0.9", 20, 0),
            "nexthop 10.254.0.9 is in none of the AllowedIPs of tunnel wg-hub's peers",
        ),
        (
            via("198.51.100.2/32", "10.255.0.1", 20, 0),
            "is the host route of a peer endpoint of tunnel wg-b: the tunnel would carry itself",
        ),
        (
            via("127.0.0.0/8", "10.255.0.1", 20, 0),
            "loopback prefix (within 127.0.0.0/8)",
        ),
        (
            via("192.0.2.0/24", "127.0.0.1", 20, 0),
            "nexthop 127.0.0.1 is a loopback address",
        ),
        (
            RouteSpec {
                nexthops: vec![NexthopSpec::Tunnel("wg-x".into())],
                ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
            },
            "no tunnel named \"wg-x\"",
        ),
        (
            RouteSpec {
                nexthops: vec![NexthopSpec::Tunnel("wg-hub".into())],
                ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
            },
            "tunnel wg-hub has several peers: give the nexthop's address to choose one",
        ),
        (
            RouteSpec {
                nexthops: vec![],
                ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
            },
            "no nexthop",
        ),
    ];
    for (spec, reason) in cases {
        let (status, changes) = offer(&mut rib, "a", spec);
        assert_eq!(status, RouteStatus::Refused(reason.into()));
        assert!(changes.is_empty());
    }
    assert_eq!(rib.owner_routes(&Owner::new("a")), 0);
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    let (status, _) = offer(&mut rib, "a", via("198.18.0.0/15", "10.255.0.1", 20, 0));
    assert_eq!(
        status,
        RouteStatus::Refused("over the owner's prefix limit of 1".into())
    );
    // Replacing a route the owner has is not over the limit.
    let (status, _) = offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 7));
    assert_eq!(status, RouteStatus::Installed);
    // Other interfaces, when allowed, are the kernel's to resolve.
    let mut open = Rib::new(RibConfig {
        allow_other_interfaces: true,
        ..RibConfig::default()
    });
    open.set_tunnels(view(), &mut Changes::default());
    let (status, changes) = offer(&mut open, "a", via("192.0.2.0/24", "172.16.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(changes.fib.len(), 1);
}

#[test]
fn a_learned_default_route_covers_every_endpoint() {
    let mut rib = rib();
    assert!(rib.covered_endpoints().is_empty());
    offer(&mut rib, "a", via("198.51.100.0/30", "10.255.0.1", 20, 0));
    assert_eq!(
        rib.covered_endpoints(),
        BTreeSet::from([ip("198.51.100.2")])
    );
    offer(&mut rib, "a", via("0.0.0.0/0", "10.255.0.1", 20, 0));
    assert_eq!(rib.covered_endpoints().len(), 3);
}

#[test]
fn ecmp_installs_the_nexthops_that_are_up() {
    let mut rib = rib();
    let spec = RouteSpec {
        nexthops: vec![
            NexthopSpec::Address(ip("10.255.0.1")),
            NexthopSpec::Address(ip("10.254.0.2")),
        ],
        ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
    };
    let (_, changes) = offer(&mut rib, "a", spec);
    let FibOp::Add { nexthops, .. } = &changes.fib[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(nexthops.len(), 2);
    let mut half = view();
    half.tunnels[1].up = false;
    let mut changes = Changes::default();
    rib.set_tunnels(half, &mut changes);
    assert_eq!(
        changes.fib,
        vec![FibOp::Replace {
            prefix: net("192.0.2.0/24"),
            nexthops: vec![nexthop("wg-b", 7, Some("10.255.0.1"), None)],
            source: None,
        }]
    );
}

#[test]
fn a_kernel_refusal_is_reported_until_the_next_attempt() {
    let mut rib = rib();
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    rib.fib_failed(net("192.0.2.0/24"), "File exists".into(), false);
    assert_eq!(
        rib.status_of(net("192.0.2.0/24"), &Owner::new("a")),
        Some(RouteStatus::Failed("File exists".into()))
    );
    assert!(!rib.is_installed(&net("192.0.2.0/24")));
    let counts = rib.counts();
    assert_eq!(counts[&Owner::new("a")].failed, 1);
}

#[test]
fn a_refused_replace_keeps_the_route_ours_and_is_retried_as_a_replace() {
    let mut rib = rib();
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    let (_, changes) = offer(
        &mut rib,
        "a",
        RouteSpec {
            nexthops: vec![NexthopSpec::Tunnel("wg-b".into())],
            ..via("192.0.2.0/24", "10.255.0.1", 20, 0)
        },
    );
    assert!(matches!(changes.fib[..], [FibOp::Replace { .. }]));
    rib.fib_failed(net("192.0.2.0/24"), "Network is down".into(), true);
    assert_eq!(
        rib.status_of(net("192.0.2.0/24"), &Owner::new("a")),
        Some(RouteStatus::Failed("Network is down".into()))
    );
    let mut changes = Changes::default();
    rib.retry_failed(&mut changes);
    assert!(
        matches!(changes.fib[..], [FibOp::Replace { .. }]),
        "{changes:?}"
    );
    // Still ours in the kernel: a withdrawal removes it.
    rib.fib_failed(net("192.0.2.0/24"), "Network is down".into(), true);
    let mut changes = Changes::default();
    rib.withdraw(&Owner::new("a"), net("192.0.2.0/24"), &mut changes);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("192.0.2.0/24")
        }]
    );
}

#[test]
fn stale_routes_do_not_count_against_the_prefix_limit() {
    let mut rib = Rib::new(RibConfig {
        prefix_limit: 2,
        ..RibConfig::default()
    });
    rib.set_tunnels(view(), &mut Changes::default());
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    offer(&mut rib, "a", via("198.18.0.0/15", "10.255.0.1", 20, 0));
    rib.mark_stale(&Owner::new("a"));
    offer(&mut rib, "a", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    let (status, _) = offer(&mut rib, "a", via("203.0.113.0/24", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    let mut changes = Changes::default();
    assert_eq!(rib.sweep_stale(&Owner::new("a"), &mut changes), 1);
    let (status, _) = offer(&mut rib, "a", via("198.51.100.128/25", "10.255.0.1", 20, 0));
    assert_eq!(
        status,
        RouteStatus::Refused("over the owner's prefix limit of 2".into())
    );
}

#[test]
fn an_endpoint_that_roams_onto_a_learned_host_route_takes_it_out() {
    let mut rib = rib();
    offer(&mut rib, "a", via("203.0.113.7/32", "10.255.0.1", 20, 0));
    let mut roamed = view();
    roamed.tunnels[0].peers[0].endpoint = Some("203.0.113.7:51820".parse().unwrap());
    let mut changes = Changes::default();
    rib.set_tunnels(roamed, &mut changes);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("203.0.113.7/32")
        }]
    );
    assert_eq!(
        rib.status_of(net("203.0.113.7/32"), &Owner::new("a")),
        Some(RouteStatus::Queued(
            "is the host route of a peer endpoint of tunnel wg-b: the tunnel would carry itself"
                .into()
        ))
    );
}

/// dn42b: a peering as dn42 sets them up (our /32 with the peer's /32
/// as a point-to-point address, fe80::1/64, one peer); dn42hub: two
/// peers told apart by their AllowedIPs.
fn peering_view() -> TunnelView {
    let mut view = view();
    view.tunnels.push(TunnelInfo {
        name: "dn42b".into(),
        ifindex: 11,
        up: true,
        addresses: vec![net("172.20.1.1/32"), net("fe80::1/64")],
        peer_addresses: vec![net("172.20.2.1/32"), net("fd42:2::1/128")],
        peers: vec![peer(
            "dn42b-key",
            &["0.0.0.0/0", "::/0"],
            "198.51.100.20:51820",
        )],
    });
    view.tunnels.push(TunnelInfo {
        name: "dn42hub".into(),
        ifindex: 12,
        up: true,
        addresses: vec![net("fe80::1/64")],
        peer_addresses: Vec::new(),
        peers: vec![
            peer(
                "hub-2",
                &["172.20.8.0/24", "fe80::2/128"],
                "198.51.100.22:51820",
            ),
            peer(
                "hub-3",
                &["172.20.9.0/24", "fe80::3/128"],
                "198.51.100.23:51820",
            ),
        ],
    });
    view
}

fn on(address: &str, tunnel: &str) -> NexthopSpec {
    NexthopSpec::AddressOnTunnel {
        address: ip(address),
        tunnel: tunnel.into(),
    }
}

fn route(prefix: &str, nexthops: Vec<NexthopSpec>) -> RouteSpec {
    RouteSpec {
        prefix: net(prefix),
        nexthops,
        distance: 20,
        metric: 0,
    }
}

#[test]
fn ipv4_routes_through_ipv6_nexthops_resolve_onto_their_tunnels() {
    let mut rib = Rib::new(RibConfig::default());
    rib.set_tunnels(peering_view(), &mut Changes::default());
    // Link-local, with its tunnel (which has a link-local address; one
    // without would do as well: the kernel only needs IPv6 on the
    // device, and a tunnel has no neighbors to find).
    let (status, changes) = offer(
        &mut rib,
        "bgp:fe80::2%dn42b",
        route("172.20.2.0/27", vec![on("fe80::2", "dn42b")]),
    );
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(
        changes.fib,
        vec![FibOp::Add {
            prefix: net("172.20.2.0/27"),
            nexthops: vec![nexthop("dn42b", 11, Some("fe80::2"), None)],
            source: None,
        }]
    );
    // A global IPv6 gateway on a tunnel's IPv6 subnet, as for an IPv6
    // route.
    let (status, changes) = offer(
        &mut rib,
        "a",
        route(
            "172.20.3.0/24",
            vec![NexthopSpec::Address(ip("fd00:255::1"))],
        ),
    );
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(
        changes.fib[0],
        FibOp::Add {
            prefix: net("172.20.3.0/24"),
            nexthops: vec![nexthop("wg-b", 7, Some("fd00:255::1"), None)],
            source: None,
        }
    );
    // The far end of a point-to-point address, either family.
    for (prefix, gateway) in [
        ("172.20.4.0/24", "172.20.2.1"),
        ("172.20.5.0/24", "fd42:2::1"),
    ] {
        let (status, changes) = offer(
            &mut rib,
            "a",
            route(prefix, vec![NexthopSpec::Address(ip(gateway))]),
        );
        assert_eq!(status, RouteStatus::Installed, "{prefix}");
        assert_eq!(
            changes.fib[0],
            FibOp::Add {
                prefix: net(prefix),
                nexthops: vec![nexthop("dn42b", 11, Some(gateway), None)],
                source: None,
            }
        );
    }
    // A multi-peer tunnel: the peer whose AllowedIPs hold the
    // link-local gateway, and the prefix goes in its AllowedIPs.
    let (status, changes) = offer(
        &mut rib,
        "a",
        route("172.20.30.0/24", vec![on("fe80::3", "dn42hub")]),
    );
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(
        changes.fib[0],
        FibOp::Add {
            prefix: net("172.20.30.0/24"),
            nexthops: vec![nexthop("dn42hub", 12, Some("fe80::3"), Some("hub-3"))],
            source: None,
        }
    );
    assert_eq!(
        changes.allowed_ips,
        vec![AllowedIpsOp::Add {
            tunnel: "dn42hub".into(),
            peer: "hub-3".into(),
            prefix: net("172.20.30.0/24"),
        }]
    );
    let (status, _) = offer(
        &mut rib,
        "a",
        route("172.20.31.0/24", vec![on("fe80::4", "dn42hub")]),
    );
    assert_eq!(
        status,
        RouteStatus::Refused(
            "nexthop fe80::4 is in none of the AllowedIPs of tunnel dn42hub's peers".into()
        )
    );
}

#[test]
fn link_local_and_cross_family_nexthops_are_refused_with_their_reason() {
    let mut rib = Rib::new(RibConfig::default());
    rib.set_tunnels(peering_view(), &mut Changes::default());
    let refused = |rib: &mut Rib, spec: RouteSpec| match offer(rib, "a", spec).0 {
        RouteStatus::Refused(reason) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refused(
            &mut rib,
            route("172.20.2.0/27", vec![NexthopSpec::Address(ip("fe80::2"))])
        ),
        "nexthop fe80::2 is link-local: name its tunnel (via fe80::2 dev TUNNEL)"
    );
    assert_eq!(
        refused(
            &mut rib,
            route("fd42:2::/48", vec![NexthopSpec::Address(ip("172.20.2.1"))])
        ),
        "nexthop 172.20.2.1 is IPv4: an IPv6 route needs an IPv6 nexthop"
    );
    assert_eq!(
        refused(
            &mut rib,
            route("172.20.2.0/27", vec![on("fe80::1", "dn42b")])
        ),
        "nexthop fe80::1 is this host's own address on dn42b"
    );
    // The recursive-routing guard holds whatever the nexthop's family.
    assert_eq!(
        refused(
            &mut rib,
            route("198.51.100.20/32", vec![on("fe80::2", "dn42b")])
        ),
        "is the host route of a peer endpoint of tunnel dn42b: the tunnel would carry itself"
    );
    assert_eq!(
        refused(
            &mut rib,
            route("169.254.0.0/16", vec![on("fe80::2", "dn42b")])
        ),
        "link-local prefix (within 169.254.0.0/16)"
    );
    assert_eq!(rib.installed_count(), 0);
}

#[test]
fn a_link_local_nexthop_is_tracked_on_its_tunnel() {
    let mut rib = Rib::new(RibConfig::default());
    rib.set_tunnels(peering_view(), &mut Changes::default());
    let owner = Owner::new("a");
    let scoped: ScopedAddress = "fe80::2%dn42b".parse().unwrap();
    let event = rib.register(&owner, scoped.clone());
    assert!(event.reachable, "{event:?}");
    assert_eq!(event.tunnel.as_deref(), Some("dn42b"));
    assert_eq!(event.address.to_string(), "fe80::2%dn42b");
    // Bare, it names no link.
    let event = rib.register(&owner, "fe80::2".parse().unwrap());
    assert!(!event.reachable);
    assert_eq!(
        event.reason,
        "nexthop fe80::2 is link-local: name its tunnel (via fe80::2 dev TUNNEL)"
    );
    offer(
        &mut rib,
        "a",
        route("172.20.2.0/27", vec![on("fe80::2", "dn42b")]),
    );
    let mut down = peering_view();
    down.tunnels[2].up = false;
    let mut changes = Changes::default();
    rib.set_tunnels(down, &mut changes);
    assert_eq!(
        changes.fib,
        vec![FibOp::Remove {
            prefix: net("172.20.2.0/27")
        }]
    );
    assert_eq!(changes.nexthops.len(), 1);
    assert_eq!(changes.nexthops[0].address, scoped);
    assert!(!changes.nexthops[0].reachable);
    assert_eq!(changes.nexthops[0].reason, "tunnel dn42b is down");
    let mut changes = Changes::default();
    rib.set_tunnels(peering_view(), &mut changes);
    assert!(matches!(changes.fib[..], [FibOp::Add { .. }]));
    assert!(changes.nexthops[0].reachable);
    rib.unregister(&owner, &scoped);
}

#[test]
fn an_owners_routes_leave_the_kernel_scattered_not_in_address_order() {
    let mut rib = rib();
    let prefixes: Vec<String> = (0..8).map(|i| format!("192.0.{i}.0/24")).collect();
    for prefix in &prefixes {
        offer(&mut rib, "bgp:a", via(prefix, "10.255.0.1", 20, 0));
    }
    let mut changes = Changes::default();
    assert_eq!(rib.withdraw_all(&Owner::new("bgp:a"), &mut changes), 8);
    let deleted: Vec<String> = changes
        .fib
        .iter()
        .map(|op| {
            assert!(matches!(op, FibOp::Remove { .. }), "{op:?}");
            op.prefix().to_string()
        })
        .collect();
    // Bit-reversed: 0, 4, 2, 6, 1, 5, 3, 7 in the third octet.
    let expected: Vec<String> = [0, 4, 2, 6, 1, 5, 3, 7]
        .iter()
        .map(|i| format!("192.0.{i}.0/24"))
        .collect();
    assert_eq!(deleted, expected);
    assert_eq!(rib.installed_count(), 0);
}

#[test]
fn an_owners_routes_can_be_withdrawn_in_parts_of_their_kernel_order() {
    let mut rib = rib();
    let prefixes: Vec<String> = (0..5).map(|i| format!("192.0.{i}.0/24")).collect();
    for prefix in &prefixes {
        offer(&mut rib, "bgp:a", via(prefix, "10.255.0.1", 20, 0));
    }
    // Another owner's route between them stays.
    offer(
        &mut rib,
        "bgp:b",
        via("192.0.2.128/25", "10.255.0.1", 20, 0),
    );
    let owner = Owner::new("bgp:a");
    let order = rib.withdrawal_order(&super::Withdrawal::all(&owner));
    let mut parts = Vec::new();
    for part in order.chunks(2) {
        let mut changes = Changes::default();
        assert_eq!(
            rib.withdraw_listed(&owner, part, &mut changes),
            part.len() as u64
        );
        parts.push(
            changes
                .fib
                .iter()
                .map(|op| op.prefix().to_string())
                .collect::<Vec<_>>(),
        );
    }
    // Bit-reversed in the third octet: 0, 4, 2, 1, 3.
    assert_eq!(
        parts,
        [
            vec!["192.0.0.0/24", "192.0.4.0/24"],
            vec!["192.0.2.0/24", "192.0.1.0/24"],
            vec!["192.0.3.0/24"],
        ]
    );
    assert_eq!(rib.installed_count(), 1);
}

#[test]
fn owners_are_numbered_in_the_slots_and_the_65537th_is_refused() {
    let mut rib = rib();
    let count = usize::from(u16::MAX) + 1;
    for i in 0..count {
        let prefix = format!("10.{}.{}.0/24", i >> 8, i & 255);
        let (status, _) = offer(
            &mut rib,
            &format!("o{i}"),
            via(&prefix, "10.255.0.1", 20, 0),
        );
        assert_eq!(status, RouteStatus::Installed, "owner {i}");
    }
    let (status, _) = offer(
        &mut rib,
        "one-too-many",
        via("192.0.2.0/24", "10.255.0.1", 20, 0),
    );
    assert!(
        matches!(&status, RouteStatus::Refused(reason) if reason.contains("65536 owners")),
        "{status:?}"
    );
    // Known owners still offer, and each route lists under its own name.
    let (status, _) = offer(&mut rib, "o7", via("192.0.2.0/24", "10.255.0.1", 20, 0));
    assert_eq!(status, RouteStatus::Installed);
    let listed = rib.routes(&RouteFilter {
        owner: Some(Owner::new("o7")),
        ..RouteFilter::default()
    });
    let prefixes: Vec<String> = listed.iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(prefixes, ["10.0.7.0/24", "192.0.2.0/24"]);
    assert!(
        rib.offer(
            &Owner::new("one-too-many"),
            via("192.0.3.0/24", "10.255.0.1", 20, 0),
            &mut Changes::default()
        ) != RouteStatus::Installed
    );
}

#[test]
fn a_slot_is_8_bytes_and_its_body_24() {
    // A full table has a slot per prefix: its size is paid a million times.
    assert_eq!(std::mem::size_of::<super::Candidate>(), 16);
    assert_eq!(std::mem::size_of::<super::Candidates>(), 16);
    assert_eq!(std::mem::size_of::<super::SlotBody>(), 24);
    assert_eq!(std::mem::size_of::<super::Slot>(), 8);
    // A prefix map's array marks a hole with `None`: free with a niche.
    assert_eq!(std::mem::size_of::<Option<super::Slot>>(), 8);
}

/// Offers `count` /24s of 10.0.0.0/8 from `owner` through one gateway,
/// the i-th with metric `metric(i)`, and checks each is installed.
fn offer_installed(rib: &mut Rib, owner: &str, count: u32, metric: impl Fn(u32) -> u32) {
    for i in 0..count {
        let [_, _, c, d] = i.to_be_bytes();
        let prefix = format!("10.{c}.{d}.0/24");
        let (status, _) = offer(rib, owner, via(&prefix, "10.255.0.1", 20, metric(i)));
        assert_eq!(status, RouteStatus::Installed, "{prefix}");
    }
}

#[test]
fn prefixes_with_the_same_routes_share_one_body_and_keep_their_own_state() {
    let mut rib = rib();
    // 5,000 prefixes from one owner through one gateway, and 5,000 more
    // with a metric each of 100: two bodies, installed (plus the empty
    // one a new slot starts from).
    offer_installed(&mut rib, "bgp:a", 10_000, |i| {
        if i < 5_000 { 0 } else { i % 100 }
    });
    let live = |rib: &Rib| {
        rib.bodies
            .set
            .iter()
            // The empty body is kept for new slots to start from.
            .filter(|slot| !slot.is_empty() && Arc::strong_count(&slot.0) > 1)
            .count()
    };
    assert!(live(&rib) <= 101, "{} bodies in use", live(&rib));
    assert_eq!(rib.installed_count(), 10_000);
    // A change to one prefix leaves the others sharing its old body alone.
    let (status, changes) = offer(&mut rib, "other", via("10.0.1.0/24", "10.254.0.2", 10, 0));
    assert_eq!(status, RouteStatus::Installed);
    assert_eq!(changes.fib.len(), 1, "{:?}", changes.fib);
    assert_eq!(
        rib.status_of(net("10.0.1.0/24"), &Owner::new("bgp:a")),
        Some(RouteStatus::Standby {
            installed_owner: Owner::new("other")
        })
    );
    assert_eq!(
        rib.status_of(net("10.0.2.0/24"), &Owner::new("bgp:a")),
        Some(RouteStatus::Installed)
    );
    // Marking one owner stale marks only its routes.
    assert_eq!(rib.mark_stale(&Owner::new("other")), 1);
    assert_eq!(rib.stale_count(&Owner::new("other")), 1);
    let routes = rib.routes(&RouteFilter {
        prefix: Some(net("10.0.2.0/24")),
        ..Default::default()
    });
    assert!(routes.iter().all(|route| !route.stale), "{routes:?}");
    // Everything withdrawn: no slot holds a body (the interner drops them
    // when its set has doubled since its last sweep).
    let mut changes = Changes::default();
    rib.withdraw_all(&Owner::new("bgp:a"), &mut changes);
    rib.withdraw_all(&Owner::new("other"), &mut changes);
    assert_eq!(rib.installed_count(), 0);
    assert_eq!(live(&rib), 0);
}

#[test]
fn an_owner_with_a_body_per_prefix_leaves_none_behind() {
    let mut rib = rib();
    // A metric per route: a body per prefix.
    offer_installed(&mut rib, "fpm:a", 4_000, |i| i);
    assert!(rib.bodies.set.len() >= 4_000, "{}", rib.bodies.set.len());
    let mut changes = Changes::default();
    rib.withdraw_all(&Owner::new("fpm:a"), &mut changes);
    assert_eq!(rib.installed_count(), 0);
    // No more than twice the slots (none) or 512, whichever is more, and
    // the room they took given back.
    assert!(
        rib.bodies.set.len() <= 1024,
        "{} bodies left",
        rib.bodies.set.len()
    );
    assert!(
        rib.bodies.set.capacity() <= 2048,
        "room for {} bodies kept",
        rib.bodies.set.capacity()
    );
}
