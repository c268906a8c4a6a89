use super::memory::MemoryFib;
use super::*;
use crate::route::{NexthopSpec, PeerInfo, TunnelInfo};

fn view() -> TunnelView {
    TunnelView {
        tunnels: vec![TunnelInfo {
            name: "wg-b".into(),
            ifindex: 7,
            up: true,
            addresses: vec!["10.255.0.0/31".parse().unwrap()],
            peer_addresses: Vec::new(),
            peers: vec![PeerInfo {
                public_key: "key".into(),
                allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
                endpoint: Some("198.51.100.2:51820".parse().unwrap()),
                reachable: true,
            }],
        }],
        bfd_down: Default::default(),
    }
}

fn route(prefix: &str) -> Update {
    Update::Offer(RouteSpec {
        prefix: prefix.parse().unwrap(),
        nexthops: vec![NexthopSpec::Address("10.255.0.1".parse().unwrap())],
        distance: 20,
        metric: 0,
    })
}

fn config() -> BridgeConfig {
    BridgeConfig {
        startup_hold: Duration::from_secs(60),
        ..BridgeConfig::default()
    }
}

async fn session(bridge: &Bridge, owner: &str, hold: u64) -> u64 {
    let (nexthops, _) = mpsc::unbounded_channel();
    bridge
        .open(Owner::new(owner), Some(Duration::from_secs(hold)), nexthops)
        .await
        .unwrap()
        .session
}

/// Lets the engine handle what was sent to it.
async fn settle(bridge: &Bridge) {
    bridge.statistics().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn routes_of_a_session_that_ends_go_after_its_hold_time_not_before() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 30).await;
    let results = bridge
        .session_updates(
            Owner::new("ctl"),
            id,
            vec![route("192.0.2.0/24"), route("198.18.0.0/15")],
        )
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.status == RouteStatus::Installed),
        "{results:?}"
    );
    assert_eq!(fib.count(), 2);
    bridge.close(Owner::new("ctl"), id);
    settle(&bridge).await;
    tokio::time::sleep(Duration::from_secs(29)).await;
    settle(&bridge).await;
    assert_eq!(fib.count(), 2, "withdrawn before the hold time");
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle(&bridge).await;
    assert_eq!(fib.count(), 0, "kept after the hold time");
}

#[tokio::test(start_paused = true)]
async fn a_session_back_in_time_reclaims_without_kernel_changes() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 30).await;
    bridge
        .session_updates(
            Owner::new("ctl"),
            id,
            vec![route("192.0.2.0/24"), route("198.18.0.0/15")],
        )
        .await
        .unwrap();
    bridge.close(Owner::new("ctl"), id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    fib.applied();
    let (nexthops, _) = mpsc::unbounded_channel();
    let welcome = bridge
        .open(Owner::new("ctl"), Some(Duration::from_secs(30)), nexthops)
        .await
        .unwrap();
    assert_eq!(welcome.stale_routes, 2);
    // Another session of the same owner is refused while this one lives.
    let (other, _) = mpsc::unbounded_channel();
    assert_eq!(
        bridge.open(Owner::new("ctl"), None, other).await,
        Err(BridgeError::SessionExists("ctl".into()))
    );
    bridge
        .session_updates(
            Owner::new("ctl"),
            welcome.session,
            vec![route("192.0.2.0/24")],
        )
        .await
        .unwrap();
    assert_eq!(fib.applied(), vec![], "a re-sent route changed the kernel");
    assert_eq!(bridge.end_of_rib(Owner::new("ctl")).await.unwrap(), 1);
    assert_eq!(
        fib.applied(),
        vec![FibOp::Remove {
            prefix: "198.18.0.0/15".parse().unwrap()
        }]
    );
    // The hold that was running does not sweep the re-claimed route later.
    tokio::time::sleep(Duration::from_secs(60)).await;
    settle(&bridge).await;
    assert_eq!(fib.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restart_adopts_the_kernel_routes_and_sweeps_the_unclaimed_after_the_startup_hold() {
    let fib = MemoryFib::default();
    let nexthop = FibNexthop {
        tunnel: String::new(),
        ifindex: 7,
        gateway: Some("10.255.0.1".parse().unwrap()),
        peer: None,
    };
    for prefix in ["192.0.2.0/24", "198.18.0.0/15", "203.0.113.0/24"] {
        fib.routes
            .lock()
            .unwrap()
            .insert(prefix.parse().unwrap(), vec![nexthop.clone()]);
    }
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 30).await;
    bridge
        .session_updates(
            Owner::new("ctl"),
            id,
            vec![route("192.0.2.0/24"), route("198.18.0.0/15")],
        )
        .await
        .unwrap();
    bridge.end_of_rib(Owner::new("ctl")).await.unwrap();
    assert_eq!(fib.applied(), vec![], "re-claiming changed the kernel");
    assert_eq!(fib.count(), 3);
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle(&bridge).await;
    assert_eq!(
        fib.applied(),
        vec![FibOp::Remove {
            prefix: "203.0.113.0/24".parse().unwrap()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_learned_default_route_pins_the_endpoint_first() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 30).await;
    bridge
        .session_updates(Owner::new("ctl"), id, vec![route("0.0.0.0/0")])
        .await
        .unwrap();
    let applied = fib.applied();
    assert_eq!(applied.len(), 2);
    assert_eq!(
        applied[0].prefix(),
        "198.51.100.2/32".parse::<IpNet>().unwrap()
    );
    assert_eq!(applied[1].prefix(), "0.0.0.0/0".parse::<IpNet>().unwrap());
    assert_eq!(bridge.statistics().await.unwrap().counters.endpoint_pins, 1);
    bridge
        .session_updates(
            Owner::new("ctl"),
            id,
            vec![Update::Withdraw("0.0.0.0/0".parse().unwrap())],
        )
        .await
        .unwrap();
    assert_eq!(fib.count(), 0, "the pin outlived the route that needed it");
}

#[tokio::test(start_paused = true)]
async fn static_routes_are_kept_across_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let config = BridgeConfig {
        state_file: Some(folder.path().join("routes.json")),
        ..config()
    };
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config.clone(), fib.clone(), view());
    bridge
        .static_updates(
            Owner::new("cli"),
            vec![route("192.0.2.0/24"), route("198.18.0.0/15")],
        )
        .await
        .unwrap();
    bridge
        .static_updates(
            Owner::new("cli"),
            vec![Update::Withdraw("198.18.0.0/15".parse().unwrap())],
        )
        .await
        .unwrap();
    // A session may not take a static owner's name.
    let (nexthops, _) = mpsc::unbounded_channel();
    assert_eq!(
        bridge.open(Owner::new("cli"), None, nexthops).await,
        Err(BridgeError::StaticOwner("cli".into()))
    );
    drop(bridge);
    let restarted = Bridge::start_here(config, fib.clone(), view());
    let routes = restarted.routes(RouteFilter::default()).await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].owner, Owner::new("cli"));
    assert_eq!(routes[0].status, RouteStatus::Installed);
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle(&restarted).await;
    assert_eq!(fib.count(), 1);
}

#[test]
fn a_prefix_named_twice_in_a_batch_is_one_kernel_operation() {
    let prefix: IpNet = "192.0.2.0/24".parse().unwrap();
    let nexthop = |ifindex| FibNexthop {
        tunnel: String::new(),
        ifindex,
        gateway: None,
        peer: None,
    };
    let add = |ifindex| FibOp::Add {
        prefix,
        nexthops: vec![nexthop(ifindex)],
        source: None,
    };
    let replace = |ifindex| FibOp::Replace {
        prefix,
        nexthops: vec![nexthop(ifindex)],
        source: None,
    };
    // New, then changed: one exclusive add of the last nexthops.
    assert_eq!(coalesce(vec![add(1), replace(2)]), vec![add(2)]);
    // New, then gone: nothing.
    assert_eq!(coalesce(vec![add(1), FibOp::Remove { prefix }]), vec![]);
    // Ours, removed, then back: a replace.
    assert_eq!(
        coalesce(vec![FibOp::Remove { prefix }, add(3)]),
        vec![replace(3)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_foreign_route_is_never_overwritten_by_a_later_update_in_the_batch() {
    let fib = MemoryFib::default();
    let foreign = vec![FibNexthop {
        tunnel: String::new(),
        ifindex: 99,
        gateway: None,
        peer: None,
    }];
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    fib.routes
        .lock()
        .unwrap()
        .insert("192.0.2.0/24".parse().unwrap(), foreign.clone());
    let id = session(&bridge, "ctl", 30).await;
    let again = Update::Offer(RouteSpec {
        prefix: "192.0.2.0/24".parse().unwrap(),
        nexthops: vec![NexthopSpec::Tunnel("wg-b".into())],
        distance: 20,
        metric: 0,
    });
    let results = bridge
        .session_updates(Owner::new("ctl"), id, vec![route("192.0.2.0/24"), again])
        .await
        .unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r.status, RouteStatus::Failed(_))),
        "{results:?}"
    );
    assert_eq!(
        fib.routes.lock().unwrap()[&"192.0.2.0/24".parse::<IpNet>().unwrap()],
        foreign
    );
}

/// With the FIB on its writer thread, batches sent back to back are
/// prepared while earlier ones are in the kernel: every answer still
/// tells what the kernel did, in order, and a route someone else put
/// in the kernel is never overwritten, whenever the engine hears of
/// its refusal.
#[tokio::test]
async fn batches_in_flight_on_the_writer_thread_are_answered_in_order_and_spare_foreign_routes() {
    let fib = MemoryFib::default();
    let theirs = vec![FibNexthop {
        tunnel: String::new(),
        ifindex: 99,
        gateway: None,
        peer: None,
    }];
    let contested: IpNet = "192.0.2.0/24".parse().unwrap();
    fib.routes.lock().unwrap().insert(contested, theirs.clone());
    fib.foreign.lock().unwrap().insert(contested);
    let bridge = Bridge::start(config(), fib.clone(), view()).await.unwrap();
    let id = session(&bridge, "ctl", 30).await;
    let owner = Owner::new("ctl");
    let on_tunnel = |prefix: &str| {
        Update::Offer(RouteSpec {
            prefix: prefix.parse().unwrap(),
            nexthops: vec![NexthopSpec::Tunnel("wg-b".into())],
            distance: 20,
            metric: 0,
        })
    };
    let batches: Vec<Vec<Update>> = (0..20u8)
        .map(|batch| {
            let mut updates: Vec<Update> = (0..=255u8)
                .map(|i| route(&format!("10.{batch}.{i}.0/24")))
                .collect();
            // The contested prefix, offered with other nexthops each time.
            updates.push(if batch % 2 == 0 {
                route("192.0.2.0/24")
            } else {
                on_tunnel("192.0.2.0/24")
            });
            updates
        })
        .collect();
    let answers: Vec<_> = batches
        .into_iter()
        .map(|updates| {
            bridge
                .submit_session_updates(owner.clone(), id, updates)
                .unwrap()
        })
        .collect();
    for answer in answers {
        let results = answer.await.unwrap().unwrap();
        let (last, rest) = results.split_last().unwrap();
        assert!(
            rest.iter().all(|r| r.status == RouteStatus::Installed),
            "{rest:?}"
        );
        assert!(matches!(last.status, RouteStatus::Failed(_)), "{last:?}");
    }
    assert_eq!(fib.routes.lock().unwrap()[&contested], theirs);
    assert_eq!(fib.count(), 20 * 256 + 1);
    let listed = bridge.routes(RouteFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 20 * 256 + 1);
}

#[tokio::test(start_paused = true)]
async fn an_audit_is_put_off_while_routes_are_written_but_not_for_ever() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 3600).await;
    bridge
        .session_updates(Owner::new("ctl"), id, vec![route("192.0.2.0/24")])
        .await
        .unwrap();
    fib.routes.lock().unwrap().clear();
    // Updates keep coming, one every 10 s: the audit is put off four
    // times, then runs.
    let mut back_after = None;
    for tick in 1..=20u32 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let prefix = format!("198.51.100.{tick}/32");
        bridge
            .session_updates(Owner::new("ctl"), id, vec![route(&prefix)])
            .await
            .unwrap();
        settle(&bridge).await;
        let routes = fib.routes.lock().unwrap();
        if routes.contains_key(&net("192.0.2.0/24")) {
            back_after = Some(tick * 10);
            break;
        }
    }
    assert_eq!(back_after, Some(5 * AUDIT_INTERVAL.as_secs() as u32));
}

#[tokio::test(start_paused = true)]
async fn routes_the_kernel_lost_are_put_back_by_the_audit() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(config(), fib.clone(), view());
    let id = session(&bridge, "ctl", 30).await;
    bridge
        .session_updates(
            Owner::new("ctl"),
            id,
            vec![route("192.0.2.0/24"), route("0.0.0.0/0")],
        )
        .await
        .unwrap();
    assert_eq!(fib.count(), 3, "two routes and the endpoint pin");
    // An operator flushes wgd's routes.
    fib.routes.lock().unwrap().clear();
    // The first audit is put off: routes were written since the start.
    tokio::time::sleep(AUDIT_INTERVAL + Duration::from_secs(1)).await;
    settle(&bridge).await;
    assert_eq!(fib.count(), 0, "put off while routes were being written");
    tokio::time::sleep(AUDIT_INTERVAL).await;
    settle(&bridge).await;
    assert_eq!(fib.count(), 3);
    // Ours goes again, and someone else's route takes its place: the
    // audit leaves theirs and reports ours as refused.
    let theirs = vec![FibNexthop {
        tunnel: String::new(),
        ifindex: 99,
        gateway: None,
        peer: None,
    }];
    let prefix: IpNet = "192.0.2.0/24".parse().unwrap();
    fib.routes.lock().unwrap().insert(prefix, theirs.clone());
    fib.foreign.lock().unwrap().insert(prefix);
    tokio::time::sleep(AUDIT_INTERVAL + Duration::from_secs(1)).await;
    settle(&bridge).await;
    assert_eq!(fib.routes.lock().unwrap()[&prefix], theirs);
    let routes = bridge.routes(RouteFilter::default()).await.unwrap();
    let ours = routes.iter().find(|r| r.prefix == prefix).unwrap();
    assert!(
        matches!(ours.status, RouteStatus::Failed(_)),
        "{:?}",
        ours.status
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn routes_carry_the_source_of_their_family_the_host_has_and_follow_its_changes() {
    let fib = MemoryFib::default();
    fib.local.lock().unwrap().insert(ip("172.20.1.1"));
    let config = BridgeConfig {
        sources: Sources {
            bridge: vec![ip("172.20.1.1"), ip("fd42:1::1")],
            tunnels: BTreeMap::new(),
        },
        ..config()
    };
    let mut view = view();
    view.tunnels[0].addresses.push(net("fd00:255::/127"));
    let bridge = Bridge::start_here(config.clone(), fib.clone(), view);
    let owner = Owner::new("cli");
    let v6 = Update::Offer(RouteSpec {
        prefix: net("fd42:2::/48"),
        nexthops: vec![NexthopSpec::Address(ip("fd00:255::1"))],
        distance: 20,
        metric: 0,
    });
    // An IPv4 route through an IPv6 gateway takes the IPv4 source.
    let rfc8950 = Update::Offer(RouteSpec {
        prefix: net("172.20.2.0/27"),
        nexthops: vec![NexthopSpec::AddressOnTunnel {
            address: ip("fe80::2"),
            tunnel: "wg-b".into(),
        }],
        distance: 20,
        metric: 0,
    });
    let results = bridge
        .static_updates(owner.clone(), vec![route("192.0.2.0/24"), v6, rfc8950])
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.status == RouteStatus::Installed),
        "{results:?}"
    );
    let sources = || fib.sources.lock().unwrap().clone();
    // fd42:1::1 is not on the host: the IPv6 route goes in without it.
    assert_eq!(
        sources(),
        BTreeMap::from([
            (net("192.0.2.0/24"), ip("172.20.1.1")),
            (net("172.20.2.0/27"), ip("172.20.1.1")),
        ])
    );
    // It comes: the route takes it, in place.
    fib.local.lock().unwrap().insert(ip("fd42:1::1"));
    fib.applied();
    bridge.set_sources(config.sources.clone());
    settle(&bridge).await;
    assert_eq!(sources()[&net("fd42:2::/48")], ip("fd42:1::1"));
    assert!(
        fib.applied()
            .iter()
            .all(|op| matches!(op, FibOp::Replace { .. })),
        "replaced in place"
    );
    // A tunnel's own source wins for routes through it.
    fib.local.lock().unwrap().insert(ip("10.255.0.0"));
    bridge.set_sources(Sources {
        tunnels: BTreeMap::from([("wg-b".to_owned(), vec![ip("10.255.0.0")])]),
        ..config.sources.clone()
    });
    settle(&bridge).await;
    assert_eq!(sources()[&net("192.0.2.0/24")], ip("10.255.0.0"));
    assert_eq!(sources()[&net("172.20.2.0/27")], ip("10.255.0.0"));
    assert_eq!(sources()[&net("fd42:2::/48")], ip("fd42:1::1"));
    // The address leaves the host: a route that the kernel refuses
    // for it goes in again without it, and so do the others.
    fib.local.lock().unwrap().remove(&ip("10.255.0.0"));
    let results = bridge
        .static_updates(owner.clone(), vec![route("198.18.0.0/15")])
        .await
        .unwrap();
    // (The answer is the kernel's refusal; the route follows at once.)
    assert!(
        matches!(results[0].status, RouteStatus::Failed(_)),
        "{results:?}"
    );
    settle(&bridge).await;
    let listed = bridge
        .routes(RouteFilter {
            prefix: Some(net("198.18.0.0/15")),
            ..RouteFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].status, RouteStatus::Installed);
    assert!(
        fib.routes
            .lock()
            .unwrap()
            .contains_key(&net("198.18.0.0/15"))
    );
    assert_eq!(
        sources(),
        BTreeMap::from([(net("fd42:2::/48"), ip("fd42:1::1"))])
    );
    // No source at all: every route without one.
    bridge.set_sources(Sources::default());
    settle(&bridge).await;
    assert!(sources().is_empty());
    assert_eq!(fib.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_route_takes_the_configured_source_in_place() {
    let fib = MemoryFib::default();
    fib.local.lock().unwrap().insert(ip("172.20.1.1"));
    let nexthop = FibNexthop {
        tunnel: String::new(),
        ifindex: 7,
        gateway: Some(ip("10.255.0.1")),
        peer: None,
    };
    for prefix in ["192.0.2.0/24", "198.18.0.0/15"] {
        fib.routes
            .lock()
            .unwrap()
            .insert(net(prefix), vec![nexthop.clone()]);
    }
    fib.sources
        .lock()
        .unwrap()
        .insert(net("198.18.0.0/15"), ip("172.20.1.1"));
    let config = BridgeConfig {
        sources: Sources {
            bridge: vec![ip("172.20.1.1")],
            tunnels: BTreeMap::new(),
        },
        ..config()
    };
    let bridge = Bridge::start_here(config, fib.clone(), view());
    settle(&bridge).await;
    let tunnel_nexthop = FibNexthop {
        tunnel: "wg-b".into(),
        ..nexthop
    };
    assert_eq!(
        fib.applied(),
        vec![FibOp::Replace {
            prefix: net("192.0.2.0/24"),
            nexthops: vec![tunnel_nexthop],
            source: Some(ip("172.20.1.1")),
        }]
    );
}

#[tokio::test]
async fn a_closed_sessions_table_leaves_the_kernel_in_parts_in_the_kernels_order() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start(config(), fib.clone(), view()).await.unwrap();
    let id = session(&bridge, "ctl", 30).await;
    let owner = Owner::new("ctl");
    let total = 2 * WITHDRAWAL_PART + 100;
    let prefix = |i: usize| format!("10.{}.{}.{}/28", i >> 12, (i >> 4) & 255, (i & 15) << 4);
    let updates: Vec<Update> = (0..total).map(|i| route(&prefix(i))).collect();
    bridge
        .session_updates(owner.clone(), id, updates)
        .await
        .unwrap();
    let other = session(&bridge, "other", 30).await;
    bridge
        .session_updates(Owner::new("other"), other, vec![route("192.0.2.0/24")])
        .await
        .unwrap();
    assert_eq!(fib.count(), total + 1);
    fib.applied.lock().unwrap().clear();
    bridge.close_withdrawing(owner, id);
    settle(&bridge).await;
    assert_eq!(fib.count(), 1, "only the other owner's route is left");
    let removed: Vec<IpNet> = fib
        .applied
        .lock()
        .unwrap()
        .iter()
        .map(|op| {
            assert!(matches!(op, FibOp::Remove { .. }), "{op:?}");
            op.prefix()
        })
        .collect();
    assert_eq!(removed.len(), total);
    // In the kernel's order (bit-reversed) across the parts, as one
    // withdrawal of the whole table would be.
    let mut in_order = removed.clone();
    in_order.sort_by_key(|prefix| match prefix {
        IpNet::V4(net) => u32::from(net.addr()).reverse_bits(),
        IpNet::V6(_) => unreachable!("IPv4 only"),
    });
    assert_eq!(removed, in_order);
}

/// What a BGP session that goes down relies on: the prefixes another
/// neighbor reaches are offered under it first, then the session closes
/// withdrawing. Those stay in the kernel, replaced in place through the
/// other's nexthop (never removed and added again); only the rest go.
#[tokio::test]
async fn a_closing_sessions_prefixes_offered_by_another_owner_are_replaced_in_place() {
    let fib = MemoryFib::default();
    // Both neighbors on the tunnel.
    let mut view = view();
    view.tunnels[0].addresses = vec!["10.255.0.0/29".parse().unwrap()];
    let bridge = Bridge::start(config(), fib.clone(), view).await.unwrap();
    let leaving = session(&bridge, "bgp:10.255.0.1", 30).await;
    let staying = session(&bridge, "bgp:10.255.0.3", 30).await;
    let prefixes = ["192.0.2.0/24", "100.64.0.0/24", "203.0.113.0/24"];
    bridge
        .session_updates(
            Owner::new("bgp:10.255.0.1"),
            leaving,
            prefixes.iter().map(|prefix| route(prefix)).collect(),
        )
        .await
        .unwrap();
    assert_eq!(fib.count(), 3);
    fib.applied();
    let through_other = |prefix: &str| {
        Update::Offer(RouteSpec {
            prefix: prefix.parse().unwrap(),
            nexthops: vec![NexthopSpec::Address("10.255.0.3".parse().unwrap())],
            distance: 20,
            metric: 0,
        })
    };
    // As the speaker sends them: the offers without waiting, then the close.
    let offered = bridge
        .submit_session_updates(
            Owner::new("bgp:10.255.0.3"),
            staying,
            vec![through_other("192.0.2.0/24")],
        )
        .unwrap();
    bridge.close_withdrawing(Owner::new("bgp:10.255.0.1"), leaving);
    settle(&bridge).await;
    assert!(offered.await.unwrap().is_ok());
    let ops = fib.applied();
    let shared: IpNet = "192.0.2.0/24".parse().unwrap();
    assert!(
        ops.iter()
            .all(|op| !(op.prefix() == shared && matches!(op, FibOp::Remove { .. }))),
        "{ops:?}"
    );
    let routes = fib.routes.lock().unwrap().clone();
    assert_eq!(routes.keys().copied().collect::<Vec<_>>(), [shared]);
    let gateways: Vec<_> = routes[&shared]
        .iter()
        .map(|nexthop| nexthop.gateway)
        .collect();
    assert_eq!(gateways, [Some("10.255.0.3".parse().unwrap())]);
}
