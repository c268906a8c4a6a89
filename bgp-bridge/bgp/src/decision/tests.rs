use super::*;
use crate::policy::{Match, PrefixListEntry, Rule, Verdict};
use crate::types::{AsSegment, Origin, Rare};

const LOCAL_AS: Asn = 65000;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn rib(max_paths: usize) -> LocRib {
    LocRib::new(Config {
        local_as: LOCAL_AS,
        router_id: Ipv4Addr::new(192, 0, 2, 254),
        max_paths,
    })
}

fn all(_: IpAddr) -> bool {
    true
}

fn neighbor(address: &str, remote_as: Asn, router_id: u8) -> Neighbor {
    Neighbor {
        id: NeighborId::new(ip(address), None).unwrap(),
        remote_as,
        router_id: Ipv4Addr::new(192, 0, 2, router_id),
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        next_hop_ipv4: Some(Ipv4Addr::new(10, 255, 0, 1)),
        next_hop_ipv6: Some("2001:db8:ff::1".parse().unwrap()),
        next_hop_link_local: None,
        ipv4_over_ipv6: false,
        import: Policy::default(),
        export: Policy::default(),
    }
}

/// A path as `from` sends it: its nexthop is its own address.
fn path(from: &Neighbor, as_path: &[Asn]) -> Attributes {
    Attributes {
        as_path: vec![AsSegment::Sequence(as_path.to_vec())].into(),
        next_hop: NextHop::new(Some(from.id.address()), None),
        ..Attributes::default()
    }
}

fn announce(
    rib: &mut LocRib,
    from: &Neighbor,
    prefix: &str,
    attributes: Attributes,
) -> Vec<BestChange> {
    let update = Update {
        announced: vec![(net(prefix), Arc::new(attributes))],
        ..Update::default()
    };
    rib.apply(from.id, &update, &all)
}

fn withdraw(rib: &mut LocRib, from: &Neighbor, prefix: &str) -> Vec<BestChange> {
    let update = Update {
        withdrawn: vec![net(prefix)],
        ..Update::default()
    };
    rib.apply(from.id, &update, &all)
}

fn sources(rib: &LocRib, prefix: &str) -> Vec<Source> {
    rib.best(&net(prefix))
        .iter()
        .map(|path| path.source)
        .collect()
}

fn from(neighbor: &Neighbor) -> Source {
    Source::Neighbor(neighbor.id)
}

const P: &str = "192.0.2.0/24";

/// Two neighbors, up.
fn pair(rib: &mut LocRib, a: (Asn, u8), b: (Asn, u8)) -> (Neighbor, Neighbor) {
    let first = neighbor("10.0.0.1", a.0, a.1);
    let second = neighbor("10.0.0.2", b.0, b.1);
    rib.neighbor_up(first.clone());
    rib.neighbor_up(second.clone());
    (first, second)
}

#[test]
fn highest_local_pref_first() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (LOCAL_AS, 1), (LOCAL_AS, 2));
    announce(&mut rib, &a, P, path(&a, &[65010]));
    announce(
        &mut rib,
        &b,
        P,
        Attributes {
            ..path(&b, &[65010, 65011, 65012])
        }
        .with_local_pref(Some(200)),
    );
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // Below the default of 100, it loses.
    announce(
        &mut rib,
        &b,
        P,
        Attributes {
            ..path(&b, &[65010])
        }
        .with_local_pref(Some(99)),
    );
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn shortest_as_path_then_lowest_origin() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(&mut rib, &a, P, path(&a, &[65001, 65010, 65011]));
    announce(&mut rib, &b, P, path(&b, &[65002, 65011]));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // A set counts as one.
    let mut with_set = path(&a, &[65001]);
    let mut segments = with_set.as_path.to_segments();
    segments.push(AsSegment::Set(vec![65010, 65011, 65012]));
    with_set.as_path = segments.into();
    announce(&mut rib, &a, P, with_set.clone());
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // Equal lengths: the lower origin.
    announce(
        &mut rib,
        &a,
        P,
        Attributes {
            origin: Origin::Incomplete,
            ..with_set
        },
    );
    assert_eq!(sources(&rib, P), vec![from(&b)]);
}

#[test]
fn med_compared_only_within_the_same_neighboring_as() {
    let mut rib = rib(1);
    let a = neighbor("10.0.0.1", 65001, 1);
    let b = neighbor("10.0.0.2", 65001, 3);
    let c = neighbor("10.0.0.3", 65002, 2);
    for neighbor in [&a, &b, &c] {
        rib.neighbor_up(neighbor.clone());
    }
    let with_med = |from: &Neighbor, med| {
        Attributes {
            ..path(from, &[from.remote_as])
        }
        .with_med(Some(med))
    };
    // Same AS: the lower MED wins, router ids aside.
    announce(&mut rib, &a, P, with_med(&a, 50));
    announce(&mut rib, &b, P, with_med(&b, 10));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // Another AS: MED not compared. B (MED 10) beat A; B and C go on to
    // the router id, where C (.2) beats B (.3), whatever C's MED.
    announce(&mut rib, &c, P, with_med(&c, 1000));
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    // Without B, A (.1) and C (.2) are not compared by MED: A wins.
    withdraw(&mut rib, &b, P);
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // A missing MED is the lowest.
    announce(&mut rib, &b, P, path(&b, &[65001]));
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    withdraw(&mut rib, &c, P);
    assert_eq!(sources(&rib, P), vec![from(&b)]);
}

#[test]
fn ebgp_over_ibgp() {
    let mut rib = rib(1);
    let (internal, external) = pair(&mut rib, (LOCAL_AS, 1), (65002, 9));
    announce(&mut rib, &internal, P, path(&internal, &[65001]));
    announce(&mut rib, &external, P, path(&external, &[65002]));
    assert_eq!(sources(&rib, P), vec![from(&external)]);
}

#[test]
fn lowest_router_id_then_lowest_address() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 9), (65002, 3));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    announce(&mut rib, &b, P, path(&b, &[65002]));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // ORIGINATOR_ID stands for the router id when present.
    let mut rib = super::tests::rib(1);
    let (a, b) = pair(&mut rib, (LOCAL_AS, 9), (LOCAL_AS, 3));
    announce(
        &mut rib,
        &a,
        P,
        Attributes {
            rare: Rare {
                originator_id: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ..Rare::default()
            }
            .boxed(),
            ..path(&a, &[65010])
        },
    );
    announce(&mut rib, &b, P, path(&b, &[65010]));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // Same router id: the lower address.
    let mut rib = super::tests::rib(1);
    let (a, b) = pair(&mut rib, (65001, 5), (65002, 5));
    announce(&mut rib, &b, P, path(&b, &[65002]));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn multipath_keeps_paths_equal_up_to_the_router_id() {
    let mut rib = rib(2);
    let a = neighbor("10.0.0.1", 65001, 3);
    let b = neighbor("10.0.0.2", 65002, 1);
    let c = neighbor("10.0.0.3", 65003, 2);
    let d = neighbor("10.0.0.4", 65004, 0);
    for neighbor in [&a, &b, &c, &d] {
        rib.neighbor_up(neighbor.clone());
    }
    announce(&mut rib, &a, P, path(&a, &[65001, 65010]));
    announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
    announce(&mut rib, &c, P, path(&c, &[65003, 65010]));
    // Longer: not a multipath, though its router id is the lowest.
    announce(&mut rib, &d, P, path(&d, &[65004, 65011, 65010]));
    assert_eq!(sources(&rib, P), vec![from(&b), from(&c)]);
    withdraw(&mut rib, &b, P);
    assert_eq!(sources(&rib, P), vec![from(&c), from(&a)]);
    // Single path with max_paths 1.
    let mut single = super::tests::rib(1);
    for neighbor in [&a, &b] {
        single.neighbor_up(neighbor.clone());
    }
    announce(&mut single, &a, P, path(&a, &[65001, 65010]));
    announce(&mut single, &b, P, path(&b, &[65002, 65010]));
    assert_eq!(sources(&single, P), vec![from(&b)]);
}

#[test]
fn unresolvable_nexthop_is_ignored() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
    let only_b = |next_hop: IpAddr| next_hop == ip("10.0.0.2");
    let update = |attributes: Attributes| Update {
        announced: vec![(net(P), Arc::new(attributes))],
        ..Update::default()
    };
    rib.apply(a.id, &update(path(&a, &[65001])), &only_b);
    assert!(rib.best(&net(P)).is_empty());
    rib.apply(b.id, &update(path(&b, &[65002, 65010])), &only_b);
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // The tunnel to A comes up.
    let changes = rib.revalidate(&all);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].paths[0].source, from(&a));
    // And goes down: back to B.
    let changes = rib.revalidate(&only_b);
    assert_eq!(changes[0].paths[0].source, from(&b));
    // Nothing resolves: no route.
    let changes = rib.revalidate(&|_| false);
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: net(P),
            paths: Vec::new(),
            before: Some(b.id)
        }]
    );
}

#[test]
fn looping_paths_are_ignored() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (LOCAL_AS, 2));
    announce(&mut rib, &a, P, path(&a, &[65001, LOCAL_AS, 65010]));
    assert!(rib.best(&net(P)).is_empty());
    announce(
        &mut rib,
        &b,
        P,
        Attributes {
            rare: Rare {
                originator_id: Some(Ipv4Addr::new(192, 0, 2, 254)),
                ..Rare::default()
            }
            .boxed(),
            ..path(&b, &[65010])
        },
    );
    assert!(rib.best(&net(P)).is_empty());
}

#[test]
fn changes_only_when_the_choice_changes() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
    let changes = announce(&mut rib, &a, P, path(&a, &[65001]));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].paths[0].source, from(&a));
    // A worse path elsewhere: no change.
    assert!(announce(&mut rib, &b, P, path(&b, &[65002, 65010])).is_empty());
    // The same path again: no change.
    assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
    // The best withdrawn: the other.
    let changes = withdraw(&mut rib, &a, P);
    assert_eq!(changes[0].paths[0].source, from(&b));
    // The last withdrawn: none.
    let changes = withdraw(&mut rib, &b, P);
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: net(P),
            paths: Vec::new(),
            before: Some(b.id)
        }]
    );
    assert!(withdraw(&mut rib, &b, P).is_empty());
}

#[test]
fn local_networks_are_preferred() {
    let mut rib = rib(1);
    let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(
        &mut rib,
        &a,
        P,
        Attributes {
            ..path(&a, &[65001])
        }
        .with_local_pref(Some(1000)),
    );
    let changes = rib.set_networks(&[net(P), net("2001:db8::/32")], &all);
    assert_eq!(changes.len(), 2);
    assert_eq!(sources(&rib, P), vec![Source::Local]);
    assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
    // No longer originated: the learned path again.
    let changes = rib.set_networks(&[net("2001:db8::/32")], &all);
    assert_eq!(changes.len(), 1);
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn neighbor_down_takes_its_paths() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    announce(&mut rib, &a, "198.51.100.0/24", path(&a, &[65001]));
    announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
    let mut changes = rib.neighbor_down(a.id, &all);
    changes.sort_by_key(|change| change.prefix);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].paths[0].source, from(&b));
    assert!(changes[1].paths.is_empty());
    // UPDATEs from a neighbor that is down are ignored.
    assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
}

#[test]
fn a_neighbor_leaves_a_part_at_a_time_with_the_same_changes() {
    let prefixes = [
        P,
        "198.51.100.0/24",
        "198.51.101.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "2001:db9::/32",
    ];
    let table = || {
        let mut rib = rib(1);
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        for prefix in prefixes {
            announce(&mut rib, &a, prefix, path(&a, &[65001]));
        }
        // b carries two of them (a longer path): they move to it.
        announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
        announce(&mut rib, &b, "2001:db8::/32", path(&b, &[65002, 65010]));
        // One is ours: a's path there was never best.
        rib.set_networks(&[net("203.0.113.0/24")], &all);
        // b is sent the table.
        rib.refresh(b.id);
        (rib, a, b)
    };
    let (mut whole, a, _) = table();
    let at_once = whole.neighbor_down(a.id, &all);
    let (mut parted, a, b) = table();
    let mut in_parts = Vec::new();
    let mut sizes = Vec::new();
    while let Some(part) = parted.neighbor_leaving(a.id, 2, &all) {
        // Not established from the first part on: nothing goes to it.
        assert!(parted.export(&part).iter().all(|(to, _)| *to != a.id));
        sizes.push(part.len());
        in_parts.extend(part);
    }
    // The prefixes another path reaches came first, and moved to it;
    // a's paths that are alone are still there, as they were.
    let shared: Vec<IpNet> = in_parts.iter().map(|change| change.prefix).collect();
    assert_eq!(shared, [net(P), net("2001:db8::/32")]);
    assert_eq!(sources(&parted, P), vec![from(&b)]);
    assert_eq!(sources(&parted, "2001:db8::/32"), vec![from(&b)]);
    assert_eq!(sources(&parted, "198.51.101.0/24"), vec![from(&a)]);
    assert_eq!(parted.received(a.id), 3);
    while let Some(part) = parted.neighbor_leaving_alone(a.id, 2) {
        // b is established: each prefix a's path was best for is told.
        let exports = parted.export(&part);
        assert_eq!(exports[&b.id].withdrawn.len(), part.len());
        sizes.push(part.len());
        in_parts.extend(part);
    }
    // Parts of two paths: P and ours (unchanged), 2001:db8::/32; then
    // the three alone.
    assert_eq!(sizes, [1, 1, 2, 1]);
    assert_eq!(in_parts, at_once);
    assert_eq!(in_parts.len(), prefixes.len() - 1);
    assert!(in_parts[2..].iter().all(|change| change.paths.is_empty()));
    assert!(sources(&parted, "198.51.101.0/24").is_empty());
    assert_eq!(sources(&parted, "203.0.113.0/24"), vec![Source::Local]);
    assert_eq!(parted.received(a.id), 0);
    assert!(parted.neighbor_leaving(a.id, 2, &all).is_none());
    assert!(parted.neighbor_leaving_alone(a.id, 2).is_none());
}

/// A leaving neighbor whose paths no other path reaches: no decision
/// runs, and what the others are told is what withdrawing each of its
/// paths would tell them.
#[test]
fn a_neighbor_alone_in_the_table_leaves_as_its_withdrawals_would() {
    let prefixes = ["198.51.100.0/24", "198.51.101.0/24", "2001:db8::/32", P];
    let table = || {
        let mut rib = rib(2);
        // b is up and sends nothing: it is only told.
        let (a, b) = pair(&mut rib, (65001, 1), (65002, 2));
        for prefix in prefixes {
            announce(&mut rib, &a, prefix, path(&a, &[65001]));
        }
        // One path is denied on the way in (a's own AS in it): never best.
        announce(&mut rib, &a, P, path(&a, &[65001, LOCAL_AS]));
        rib.refresh(b.id);
        (rib, a, b)
    };
    let (mut withdrawn, a, b) = table();
    let update = update_of(&a, &[], &prefixes);
    let mut expected = withdrawn.apply(a.id, &update, &all);
    expected.sort_by_key(|change| change.prefix);
    let expected_exports = withdrawn.export(&expected);

    let (mut leaving, a, _) = table();
    assert!(leaving.neighbor_leaving(a.id, 2, &all).is_none());
    let mut changes = Vec::new();
    while let Some(part) = leaving.neighbor_leaving_alone(a.id, 2) {
        changes.extend(part);
    }
    changes.sort_by_key(|change| change.prefix);
    assert_eq!(changes, expected);
    assert_eq!(changes.len(), 3);
    assert_eq!(leaving.export(&changes), expected_exports);
    assert_eq!(expected_exports[&b.id].withdrawn.len(), 3);
    assert_eq!(leaving.best_paths(), withdrawn.best_paths());
    assert_eq!(leaving.received(a.id), 0);
}

/// The only neighbor leaves: nobody is told, its paths all go at once.
#[test]
fn the_only_neighbor_leaves_at_once() {
    let mut rib = rib(1);
    let a = neighbor("10.0.0.1", 65001, 1);
    rib.neighbor_up(a.clone());
    for prefix in [P, "198.51.100.0/24", "2001:db8::/32"] {
        announce(&mut rib, &a, prefix, path(&a, &[65001]));
    }
    assert_eq!(rib.best_paths().len(), 3);
    assert!(rib.neighbor_leaving(a.id, 1, &all).is_none());
    assert!(rib.neighbor_leaving_alone(a.id, 1).is_none());
    assert!(rib.best_paths().is_empty());
    assert_eq!(rib.received(a.id), 0);
    // It comes back as new.
    rib.neighbor_up(a.clone());
    assert_eq!(announce(&mut rib, &a, P, path(&a, &[65001])).len(), 1);
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn stale_paths_stay_until_announced_again_or_swept() {
    let mut rib = rib(1);
    let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    announce(&mut rib, &a, "198.51.100.0/24", path(&a, &[65001]));
    announce(&mut rib, &a, "2001:db8::/32", path(&a, &[65001]));
    rib.mark_stale(a.id);
    // Kept through the restart, stale.
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    assert!(rib.adj_rib_in(a.id).all(|(_, _, stale)| stale));
    // Back: one route announced again, then End-of-RIB for IPv4.
    rib.neighbor_up(a.clone());
    assert!(announce(&mut rib, &a, P, path(&a, &[65001])).is_empty());
    let stale: Vec<IpNet> = rib
        .adj_rib_in(a.id)
        .filter(|(_, _, stale)| *stale)
        .map(|(prefix, _, _)| prefix)
        .collect();
    assert_eq!(stale, vec![net("198.51.100.0/24"), net("2001:db8::/32")]);
    let end_of_rib = Update {
        end_of_rib: vec![Family::Ipv4Unicast],
        ..Update::default()
    };
    let changes = rib.apply(a.id, &end_of_rib, &all);
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: net("198.51.100.0/24"),
            paths: Vec::new(),
            before: Some(a.id)
        }]
    );
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // The restart time runs out for the rest.
    let changes = rib.sweep_stale(a.id, &[Family::Ipv4Unicast, Family::Ipv6Unicast], &all);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].prefix, net("2001:db8::/32"));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn neighbor_that_never_comes_back_is_swept_whole() {
    let mut rib = rib(1);
    let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    rib.mark_stale(a.id);
    let changes = rib.sweep_stale(a.id, &[Family::Ipv4Unicast, Family::Ipv6Unicast], &all);
    assert_eq!(changes.len(), 1);
    assert!(rib.best(&net(P)).is_empty());
    assert_eq!(rib.adj_rib_in(a.id).count(), 0);
}

fn deny_prefix(prefix: &str) -> Policy {
    Policy {
        rules: vec![Rule {
            action: Verdict::Deny,
            matches: Match {
                prefix_list: vec![
                    PrefixListEntry::new(Verdict::Permit, net(prefix), None, None).unwrap(),
                ],
                ..Match::default()
            },
            set: Set::default(),
        }],
        default: Verdict::Permit,
    }
}

#[test]
fn import_policy_filters_and_sets() {
    let mut rib = rib(1);
    let mut a = neighbor("10.0.0.1", 65001, 1);
    a.import = deny_prefix(P);
    let b = neighbor("10.0.0.2", 65002, 2);
    rib.neighbor_up(a.clone());
    rib.neighbor_up(b.clone());
    announce(&mut rib, &a, P, path(&a, &[65001]));
    assert!(rib.best(&net(P)).is_empty());
    announce(&mut rib, &b, P, path(&b, &[65002, 65010]));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // A new import policy applies to what A already sent.
    let prefer = Policy {
        rules: vec![Rule {
            action: Verdict::Permit,
            matches: Match::default(),
            set: Set {
                local_preference: Some(300),
                ..Set::default()
            },
        }],
        default: Verdict::Permit,
    };
    let (changes, _) = rib.set_policies(a.id, prefer, Policy::default(), &all);
    assert_eq!(changes.len(), 1);
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    assert_eq!(rib.best(&net(P))[0].attributes.local_pref(), Some(300));
}

/// Our AS 65000; eBGP A (65001), eBGP C (65003), eBGP D (65005), iBGP I
/// and J.
struct World {
    rib: LocRib,
    a: Neighbor,
    c: Neighbor,
    d: Neighbor,
    i: Neighbor,
    j: Neighbor,
}

fn world() -> World {
    let mut rib = rib(1);
    let a = neighbor("10.0.0.1", 65001, 1);
    let c = neighbor("10.0.0.3", 65003, 3);
    let d = neighbor("10.0.0.5", 65005, 5);
    let i = neighbor("10.0.0.8", LOCAL_AS, 8);
    let j = neighbor("10.0.0.9", LOCAL_AS, 9);
    for neighbor in [&a, &c, &d, &i, &j] {
        assert!(rib.neighbor_up(neighbor.clone()).is_empty());
    }
    World { rib, a, c, d, i, j }
}

fn sent<'e>(exports: &'e BTreeMap<NeighborId, Export>, to: &Neighbor) -> Option<&'e Export> {
    exports.get(&to.id)
}

#[test]
fn export_of_an_ebgp_route() {
    let World {
        mut rib,
        a,
        c,
        d,
        i,
        j,
    } = world();
    // A route target (transitive) and a non-transitive one (type 0x40).
    let mut received = Attributes {
        ..path(&a, &[65001, 65005, 65010])
    }
    .with_med(Some(7));
    received.change_rare(|rare| {
        rare.extended_communities = vec![0x0002_fde9_0000_0007, 0x4002_fde9_0000_0008].into();
    });
    let changes = announce(&mut rib, &a, P, received);
    let exports = rib.export(&changes);
    // Not back to A; not to D, whose AS is in the path.
    assert!(sent(&exports, &a).is_none());
    assert!(sent(&exports, &d).is_none());
    // eBGP C: next-hop self, our AS prepended, MED and LOCAL_PREF gone.
    let to_c = &sent(&exports, &c).unwrap().announced;
    assert_eq!(to_c.len(), 1);
    let attributes = &to_c[0].1;
    assert_eq!(attributes.next_hop.address(), Some(ip("10.255.0.1")));
    assert_eq!(
        attributes.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS, 65001, 65005, 65010])].into()
    );
    assert_eq!(attributes.med(), None);
    assert_eq!(attributes.local_pref(), None);
    assert_eq!(attributes.extended_communities(), [0x0002_fde9_0000_0007]);
    // iBGP I and J: path unchanged, LOCAL_PREF given, next-hop self.
    for to in [&i, &j] {
        let attributes = &sent(&exports, to).unwrap().announced[0].1;
        assert_eq!(
            attributes.as_path,
            vec![AsSegment::Sequence(vec![65001, 65005, 65010])].into()
        );
        assert_eq!(attributes.local_pref(), Some(DEFAULT_LOCAL_PREF));
        assert_eq!(attributes.med(), Some(7));
        assert_eq!(attributes.next_hop.address(), Some(ip("10.255.0.1")));
        assert_eq!(attributes.extended_communities().len(), 2);
    }
    // Withdrawn: withdrawn from those that had it, and only those.
    let changes = withdraw(&mut rib, &a, P);
    let exports = rib.export(&changes);
    let told: Vec<NeighborId> = exports.keys().copied().collect();
    assert_eq!(told, vec![c.id, i.id, j.id]);
    assert!(
        exports
            .values()
            .all(|export| export.withdrawn == vec![net(P)])
    );
}

#[test]
fn ibgp_routes_do_not_go_to_other_ibgp_neighbors() {
    let World {
        mut rib, c, i, j, ..
    } = world();
    let changes = announce(&mut rib, &i, P, path(&i, &[65010]));
    let exports = rib.export(&changes);
    assert!(sent(&exports, &j).is_none());
    assert!(sent(&exports, &i).is_none());
    let attributes = &sent(&exports, &c).unwrap().announced[0].1;
    assert_eq!(
        attributes.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS, 65010])].into()
    );
}

#[test]
fn local_networks_go_to_everyone_and_new_neighbors_get_the_table() {
    let World { mut rib, a, i, .. } = world();
    let changes = rib.set_networks(&[net(P), net("2001:db8::/32")], &all);
    let exports = rib.export(&changes);
    assert_eq!(exports.len(), 5);
    let to_a = &sent(&exports, &a).unwrap().announced;
    assert_eq!(
        to_a[0].1.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS])].into()
    );
    assert_eq!(to_a[1].1.next_hop.address(), Some(ip("2001:db8:ff::1")));
    let to_i = &sent(&exports, &i).unwrap().announced;
    assert!(to_i[0].1.as_path.is_empty());
    // Nothing new to send: nothing sent.
    assert!(rib.export(&changes).is_empty());
    // A neighbor coming up gets the whole table; one without IPv6 only
    // the IPv4 routes.
    let mut e = neighbor("10.0.0.7", 65007, 7);
    e.families = vec![Family::Ipv4Unicast];
    let table = rib.neighbor_up(e);
    assert_eq!(table.announced.len(), 1);
    assert_eq!(table.announced[0].0, net(P));
}

#[test]
fn well_known_communities_limit_export() {
    let World {
        mut rib, a, c, i, ..
    } = world();
    let no_export = Attributes {
        communities: vec![Community::NO_EXPORT.0].into(),
        ..path(&a, &[65001])
    };
    let changes = announce(&mut rib, &a, P, no_export);
    let exports = rib.export(&changes);
    assert!(sent(&exports, &c).is_none());
    assert!(sent(&exports, &i).is_some());
    let no_advertise = Attributes {
        communities: vec![Community::NO_ADVERTISE.0].into(),
        ..path(&a, &[65001])
    };
    let changes = announce(&mut rib, &a, P, no_advertise);
    let exports = rib.export(&changes);
    // I had it: withdrawn. C never had it: nothing.
    assert_eq!(sent(&exports, &i).unwrap().withdrawn, vec![net(P)]);
    assert!(sent(&exports, &c).is_none());
}

#[test]
fn export_policy_denies_and_sets() {
    let World { mut rib, a, c, .. } = world();
    let mut policy = deny_prefix("198.51.100.0/24");
    policy.rules.push(Rule {
        action: Verdict::Permit,
        matches: Match::default(),
        set: Set {
            med: Some(42),
            ..Set::default()
        },
    });
    let (_, table) = rib.set_policies(c.id, Policy::default(), policy, &all);
    assert!(table.is_empty());
    let mut changes = announce(&mut rib, &a, P, path(&a, &[65001]));
    changes.extend(announce(
        &mut rib,
        &a,
        "198.51.100.0/24",
        path(&a, &[65001]),
    ));
    let exports = rib.export(&changes);
    let to_c = &sent(&exports, &c).unwrap().announced;
    assert_eq!(to_c.len(), 1);
    assert_eq!(to_c[0].0, net(P));
    assert_eq!(to_c[0].1.med(), Some(42));
    // Routes sharing attributes still share them after the policy.
    let mut changes = announce(&mut rib, &a, "203.0.113.0/24", path(&a, &[65001]));
    changes.extend(rib.set_networks(&[net("10.1.0.0/16"), net("10.2.0.0/16")], &all));
    let exports = rib.export(&changes);
    let to_c = &sent(&exports, &c).unwrap().announced;
    assert_eq!(to_c.len(), 3);
    let of = |prefix: &str| &to_c.iter().find(|(p, _)| *p == net(prefix)).unwrap().1;
    assert!(Arc::ptr_eq(of("10.1.0.0/16"), of("10.2.0.0/16")));
}

#[test]
fn route_refresh_sends_everything_again() {
    let World { mut rib, a, c, .. } = world();
    let mut changes = announce(&mut rib, &a, P, path(&a, &[65001]));
    changes.extend(rib.set_networks(&[net("2001:db8::/32")], &all));
    rib.export(&changes);
    let again = rib.refresh(c.id);
    let prefixes: Vec<IpNet> = again.announced.iter().map(|(prefix, _)| *prefix).collect();
    assert_eq!(prefixes, vec![net(P), net("2001:db8::/32")]);
    assert!(again.withdrawn.is_empty());
    // Twice is the same; and a neighbor that is not up gets nothing.
    assert_eq!(rib.refresh(c.id), again);
    assert!(rib.refresh("10.9.9.9".parse().unwrap()).is_empty());
}

#[test]
fn stale_neighbor_is_sent_nothing_until_it_is_back() {
    let World { mut rib, a, c, .. } = world();
    rib.mark_stale(c.id);
    let changes = announce(&mut rib, &a, P, path(&a, &[65001]));
    assert!(sent(&rib.export(&changes), &c).is_none());
    let table = rib.neighbor_up(c.clone());
    assert_eq!(table.announced.len(), 1);
}

/// A neighbor `fe80::2` on `tunnel`, whose tunnel gives us `fe80::1`.
fn link_local_neighbor(tunnel: &str, remote_as: Asn, router_id: u8) -> Neighbor {
    Neighbor {
        id: NeighborId::new(ip("fe80::2"), Some(tunnel)).unwrap(),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        next_hop_link_local: Some("fe80::1".parse().unwrap()),
        ipv4_over_ipv6: true,
        ..neighbor("10.0.0.1", remote_as, router_id)
    }
}

/// Next hop and link-local next hop of what `export` announces for `prefix`.
fn next_hops(export: &Export, prefix: &str) -> Option<(Option<IpAddr>, Option<Ipv6Addr>)> {
    export
        .announced
        .iter()
        .find(|(announced, _)| *announced == net(prefix))
        .map(|(_, attributes)| {
            (
                attributes.next_hop.address(),
                attributes.next_hop.link_local(),
            )
        })
}

#[test]
fn link_local_sessions_send_link_local_next_hops() {
    const V4: &str = "172.20.1.0/27";
    const V6: &str = "fd42:1::/48";
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut rib = rib(1);
    rib.set_networks(&[net(V4), net(V6)], &all);
    // RFC 8950 negotiated, no global address on the tunnel: the
    // link-local alone, for both families.
    let export = rib.neighbor_up(link_local_neighbor("dn42b", 65002, 2));
    for prefix in [V4, V6] {
        assert_eq!(
            next_hops(&export, prefix),
            Some((Some(IpAddr::V6(link_local)), None)),
            "{prefix}"
        );
    }
    // With a global address: global first, link-local beside it.
    let export = rib.neighbor_up(Neighbor {
        next_hop_ipv6: Some("fd42:1::1".parse().unwrap()),
        next_hop_ipv4: Some(Ipv4Addr::new(172, 20, 1, 1)),
        ..link_local_neighbor("dn42b", 65002, 2)
    });
    for prefix in [V4, V6] {
        assert_eq!(
            next_hops(&export, prefix),
            Some((Some(ip("fd42:1::1")), Some(link_local))),
            "{prefix}"
        );
    }
    // No RFC 8950: IPv4 routes take the tunnel's IPv4 address...
    let export = rib.neighbor_up(Neighbor {
        next_hop_ipv4: Some(Ipv4Addr::new(172, 20, 1, 1)),
        ipv4_over_ipv6: false,
        ..link_local_neighbor("dn42b", 65002, 2)
    });
    assert_eq!(next_hops(&export, V4), Some((Some(ip("172.20.1.1")), None)));
    // ...and without one are not sent (IPv6 still is).
    let export = rib.neighbor_up(Neighbor {
        ipv4_over_ipv6: false,
        ..link_local_neighbor("dn42b", 65002, 2)
    });
    assert_eq!(next_hops(&export, V4), None);
    assert_eq!(
        next_hops(&export, V6),
        Some((Some(IpAddr::V6(link_local)), None))
    );
    assert_eq!(
        rib.sent(NeighborId::new(ip("fe80::2"), Some("dn42b")).unwrap()),
        1
    );
}

#[test]
fn one_link_local_address_on_two_tunnels_is_two_neighbors() {
    let mut rib = rib(1);
    let b = link_local_neighbor("dn42b", 65002, 2);
    let c = link_local_neighbor("dn42c", 65003, 3);
    rib.neighbor_up(b.clone());
    rib.neighbor_up(c.clone());
    let changes = announce(
        &mut rib,
        &b,
        P,
        Attributes {
            next_hop: NextHop::new(Some(ip("fe80::2")), None),
            ..path(&b, &[65002])
        },
    );
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    let exports = rib.export(&changes);
    // To the other fe80::2, not back to the one it came from.
    assert!(sent(&exports, &b).is_none());
    assert_eq!(sent(&exports, &c).unwrap().announced.len(), 1);
    assert_eq!(rib.received(b.id), 1);
    assert_eq!(rib.received(c.id), 0);
}

/// An UPDATE of `announced` (one path each) and `withdrawn`.
fn update_of(from: &Neighbor, announced: &[&str], withdrawn: &[&str]) -> Update {
    let attributes = Arc::new(path(from, &[65001]));
    Update {
        announced: announced
            .iter()
            .map(|prefix| (net(prefix), Arc::clone(&attributes)))
            .collect(),
        withdrawn: withdrawn.iter().map(|prefix| net(prefix)).collect(),
        ..Update::default()
    }
}

fn prefixes_of(update: &Update) -> Vec<String> {
    update
        .announced
        .iter()
        .map(|(prefix, _)| prefix.to_string())
        .collect()
}

#[test]
fn prefix_limit_resets_or_blocks() {
    let mut rib = rib(1);
    let a = neighbor("10.0.0.1", 65001, 1);
    rib.neighbor_up(a.clone());
    let reset = PrefixLimit {
        limit: 2,
        action: LimitAction::Reset,
    };
    let block = PrefixLimit {
        limit: 2,
        action: LimitAction::Block,
    };
    // No limit, or within it: whole.
    let mut first = update_of(&a, &["10.1.0.0/16", "10.2.0.0/16"], &[]);
    assert_eq!(
        rib.limit(a.id, &mut first, PrefixLimit::default()),
        Limited::Within
    );
    assert_eq!(rib.limit(a.id, &mut first, reset), Limited::Within);
    assert_eq!(rib.limit(a.id, &mut first, block), Limited::Within);
    assert_eq!(first.announced.len(), 2);
    rib.apply(a.id, &first, &all);

    // A third prefix: reset, or blocked alone.
    let mut more = update_of(&a, &["10.1.0.0/16", "10.3.0.0/16", "10.4.0.0/16"], &[]);
    assert_eq!(rib.limit(a.id, &mut more.clone(), reset), Limited::Reset);
    assert_eq!(rib.limit(a.id, &mut more, block), Limited::Blocked(2));
    // The one it has stays (a replacement counts nothing).
    assert_eq!(prefixes_of(&more), ["10.1.0.0/16"]);

    // Withdrawals in the same UPDATE make room, first come first taken.
    let mut room = update_of(
        &a,
        &["10.3.0.0/16", "10.4.0.0/16"],
        &["10.2.0.0/16", "10.9.0.0/16"],
    );
    assert_eq!(rib.limit(a.id, &mut room.clone(), reset), Limited::Reset);
    assert_eq!(rib.limit(a.id, &mut room, block), Limited::Blocked(1));
    assert_eq!(prefixes_of(&room), ["10.3.0.0/16"]);
    rib.apply(a.id, &room, &all);
    assert_eq!(rib.received(a.id), 2);
    assert!(rib.has_received(a.id, &net("10.3.0.0/16")));
    assert!(!rib.has_received(a.id, &net("10.4.0.0/16")));

    // Denied paths count too: they are held.
    let mut b = neighbor("10.0.0.2", 65002, 2);
    b.import = Policy {
        default: Verdict::Deny,
        ..Policy::default()
    };
    rib.neighbor_up(b.clone());
    let mut denied = update_of(&b, &["10.5.0.0/16", "10.6.0.0/16", "10.7.0.0/16"], &[]);
    assert_eq!(rib.limit(b.id, &mut denied, block), Limited::Blocked(1));
    rib.apply(b.id, &denied, &all);
    assert_eq!(rib.received(b.id), 2);
}

fn vrp(prefix: &str, max_length: u8, asn: Asn) -> wgd_rtr::Vrp {
    wgd_rtr::Vrp {
        prefix: net(prefix),
        max_length,
        asn,
    }
}

fn deny_invalid() -> Policy {
    serde_json::from_value(serde_json::json!({
        "rules": [{ "action": "deny", "match": { "rpki": "invalid" } }]
    }))
    .unwrap()
}

#[test]
fn origin_validation_is_off_unless_asked_for() {
    let mut rib = rib(1);
    let (a, _) = pair(&mut rib, (65001, 1), (65002, 2));
    announce(&mut rib, &a, P, path(&a, &[65001]));
    assert_eq!(rib.validity(a.id, &net(P)), None);
    assert_eq!(rib.validity_counts(), None);
    let (changes, _) = rib.update_origins(VrpUpdate::Reset(vec![vrp(P, 24, 1)]), &all);
    assert!(changes.is_empty());
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn paths_are_validated_on_arrival_and_again_when_vrps_change() {
    let mut rib = rib(1);
    rib.validate_origins();
    let mut a = neighbor("10.0.0.1", 65001, 1);
    a.import = deny_invalid();
    rib.neighbor_up(a.clone());
    let b = neighbor("10.0.0.2", LOCAL_AS, 2);
    rib.neighbor_up(b.clone());
    rib.update_origins(
        VrpUpdate::Reset(vec![
            vrp("10.0.0.0/8", 16, 65010),
            vrp("192.0.2.0/24", 24, 65010),
        ]),
        &all,
    );
    // Valid, wrong origin, too specific, not covered.
    announce(&mut rib, &a, "10.1.0.0/16", path(&a, &[65001, 65010]));
    announce(&mut rib, &a, "10.2.0.0/16", path(&a, &[65001, 65011]));
    announce(&mut rib, &a, "10.3.3.0/24", path(&a, &[65001, 65010]));
    announce(&mut rib, &a, "198.51.100.0/24", path(&a, &[65001, 65012]));
    // An AS_SET at the end: no origin, invalid when covered.
    announce(
        &mut rib,
        &a,
        "192.0.2.0/24",
        Attributes {
            as_path: vec![
                AsSegment::Sequence(vec![65001]),
                AsSegment::Set(vec![65010]),
            ]
            .into(),
            ..path(&a, &[])
        },
    );
    // An iBGP path with an empty AS_PATH originates in our AS.
    announce(&mut rib, &b, "10.4.0.0/16", path(&b, &[]));
    let state =
        |rib: &LocRib, prefix: &str, neighbor: &Neighbor| rib.validity(neighbor.id, &net(prefix));
    assert_eq!(state(&rib, "10.1.0.0/16", &a), Some(Validity::Valid));
    assert_eq!(state(&rib, "10.2.0.0/16", &a), Some(Validity::Invalid));
    assert_eq!(state(&rib, "10.3.3.0/24", &a), Some(Validity::Invalid));
    assert_eq!(state(&rib, "198.51.100.0/24", &a), Some(Validity::NotFound));
    assert_eq!(state(&rib, "192.0.2.0/24", &a), Some(Validity::Invalid));
    assert_eq!(state(&rib, "10.4.0.0/16", &b), Some(Validity::Invalid));
    assert_eq!(rib.validity_counts(), Some([1, 4, 1]));
    // The invalid ones were denied on import.
    assert_eq!(sources(&rib, "10.1.0.0/16"), vec![from(&a)]);
    assert!(sources(&rib, "10.2.0.0/16").is_empty());
    assert!(sources(&rib, "10.3.3.0/24").is_empty());
    assert_eq!(sources(&rib, "198.51.100.0/24"), vec![from(&a)]);
    // b's path has no rpki rule: it stays, invalid.
    assert_eq!(sources(&rib, "10.4.0.0/16"), vec![from(&b)]);

    // A ROA for 10.2.0.0/16's origin: it becomes valid and comes in,
    // and nothing else changes.
    let (changes, mistakes) = rib.update_origins(
        VrpUpdate::Delta(vec![(vrp("10.2.0.0/16", 16, 65011), true)]),
        &all,
    );
    assert_eq!(mistakes, 0);
    assert_eq!(
        changes
            .iter()
            .map(|change| change.prefix)
            .collect::<Vec<_>>(),
        vec![net("10.2.0.0/16")]
    );
    assert_eq!(state(&rib, "10.2.0.0/16", &a), Some(Validity::Valid));
    assert_eq!(sources(&rib, "10.2.0.0/16"), vec![from(&a)]);

    // The valid route's ROA goes: it is covered by nothing now but the /8
    // of the same AS... which goes too: not found, and it stays in.
    let (changes, _) = rib.update_origins(
        VrpUpdate::Delta(vec![(vrp("10.0.0.0/8", 16, 65010), false)]),
        &all,
    );
    // 10.3.3.0/24 (was invalid, now not found) comes in; 10.1.0.0/16 was
    // and is accepted (valid to not found changes no import).
    assert_eq!(
        changes
            .iter()
            .map(|change| change.prefix)
            .collect::<Vec<_>>(),
        vec![net("10.3.3.0/24")]
    );
    assert_eq!(state(&rib, "10.1.0.0/16", &a), Some(Validity::NotFound));
    assert_eq!(state(&rib, "10.4.0.0/16", &b), Some(Validity::NotFound));

    // Data expired: everything is not found, and everything is in.
    let (changes, _) = rib.update_origins(VrpUpdate::Reset(Vec::new()), &all);
    assert_eq!(
        changes
            .iter()
            .map(|change| change.prefix)
            .collect::<Vec<_>>(),
        vec![net("192.0.2.0/24")]
    );
    assert_eq!(rib.validity_counts(), Some([0, 0, 6]));
    // A withdrawal of what is not there is the cache's mistake.
    let (_, mistakes) = rib.update_origins(
        VrpUpdate::Delta(vec![(vrp("10.0.0.0/8", 16, 65010), false)]),
        &all,
    );
    assert_eq!(mistakes, 1);
}

#[test]
fn a_large_vrp_change_validates_every_path() {
    let mut rib = rib(1);
    rib.validate_origins();
    let mut a = neighbor("10.0.0.1", 65001, 1);
    a.import = deny_invalid();
    rib.neighbor_up(a.clone());
    announce(&mut rib, &a, "10.1.0.0/16", path(&a, &[65001, 65010]));
    // More VRP prefixes than REVALIDATE_ALL_AT, one of them covering.
    let mut vrps: Vec<wgd_rtr::Vrp> = (0..=REVALIDATE_ALL_AT as u32)
        .map(|i| wgd_rtr::Vrp {
            prefix: IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from(0x2000_0000 + (i << 8)), 24).unwrap(),
            ),
            max_length: 24,
            asn: 1,
        })
        .collect();
    vrps.push(vrp("10.0.0.0/8", 24, 65011));
    let (changes, _) = rib.update_origins(VrpUpdate::Reset(vrps), &all);
    assert_eq!(changes.len(), 1);
    assert!(sources(&rib, "10.1.0.0/16").is_empty());
    assert_eq!(
        rib.validity(a.id, &net("10.1.0.0/16")),
        Some(Validity::Invalid)
    );
}

#[test]
fn export_policy_sees_the_validation_state() {
    let mut rib = rib(1);
    rib.validate_origins();
    let a = neighbor("10.0.0.1", 65001, 1);
    let mut b = neighbor("10.0.0.2", 65002, 2);
    b.export = deny_invalid();
    rib.neighbor_up(a.clone());
    rib.neighbor_up(b.clone());
    rib.update_origins(VrpUpdate::Reset(vec![vrp(P, 24, 65099)]), &all);
    let changes = announce(&mut rib, &a, P, path(&a, &[65001]));
    let exports = rib.export(&changes);
    assert!(sent(&exports, &b).is_none());
    let (changes, _) = rib.update_origins(VrpUpdate::Delta(vec![(vrp(P, 24, 65001), true)]), &all);
    // The best path stays, but it is valid now: it goes to b.
    assert_eq!(changes.len(), 1);
    let exports = rib.export(&changes);
    assert_eq!(sent(&exports, &b).unwrap().announced.len(), 1);
    assert!(sent(&exports, &a).is_none());
}

#[test]
fn the_validation_state_costs_a_path_no_room() {
    assert_eq!(std::mem::size_of::<Received>(), 16);
    // A prefix map's array marks a hole with `None`: free with a niche.
    assert_eq!(std::mem::size_of::<Option<Received>>(), 16);
}

/// Withdraws `from`'s path to P, having asked whether its going goes
/// unnoticed (the decision not run again); either way the choice after is
/// the decision's over what is left, and unchanged when unnoticed.
fn withdraw_checked(rib: &mut LocRib, from: &Neighbor) -> bool {
    let unnoticed = rib.goes_unnoticed(from.id, &net(P));
    let before = rib.best(&net(P));
    let changes = withdraw(rib, from, P);
    assert_eq!(rib.best(&net(P)), rib.decide(&net(P), &all));
    if unnoticed {
        assert!(changes.is_empty());
        assert_eq!(rib.best(&net(P)), before);
    }
    unnoticed
}

fn with_med(from: &Neighbor, med: u32) -> Attributes {
    Attributes {
        ..path(from, &[from.remote_as])
    }
    .with_med(Some(med))
}

#[test]
fn a_path_that_is_not_best_goes_unnoticed_unless_it_beat_another_on_med() {
    // A and B from AS 65001, C from 65002: B (MED 10) beats A (MED 50),
    // then C (.2) beats B (.3) on the router id.
    let table = || {
        let mut rib = rib(1);
        let a = neighbor("10.0.0.1", 65001, 1);
        let b = neighbor("10.0.0.2", 65001, 3);
        let c = neighbor("10.0.0.3", 65002, 2);
        for neighbor in [&a, &b, &c] {
            rib.neighbor_up(neighbor.clone());
        }
        announce(&mut rib, &a, P, with_med(&a, 50));
        announce(&mut rib, &b, P, with_med(&b, 10));
        announce(&mut rib, &c, P, with_med(&c, 1000));
        assert_eq!(sources(&rib, P), vec![from(&c)]);
        (rib, a, b, c)
    };
    // B is not best, but without it A is not beaten, and wins.
    let (mut rib, a, b, _) = table();
    assert!(!withdraw_checked(&mut rib, &b));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // A beat nobody.
    let (mut rib, a, _, c) = table();
    assert!(withdraw_checked(&mut rib, &a));
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    // The best is decided again.
    let (mut rib, _, b, c) = table();
    assert!(!withdraw_checked(&mut rib, &c));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // A path that lost before the MED step (a longer AS_PATH) beat
    // nobody there, whatever its MED.
    let (mut rib, _, b, c) = table();
    let d = neighbor("10.0.0.4", 65001, 4);
    rib.neighbor_up(d.clone());
    announce(
        &mut rib,
        &d,
        P,
        Attributes {
            ..path(&d, &[65001, 65010])
        }
        .with_med(Some(0)),
    );
    assert!(withdraw_checked(&mut rib, &d));
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    assert!(!withdraw_checked(&mut rib, &b));
}

#[test]
fn the_same_table_from_a_second_neighbor_goes_unnoticed() {
    // Two neighbors of one AS send the same paths (issue 19's benchmark):
    // the second's lose on the router id, and beat nothing on MED.
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65001, 2));
    let prefixes = [P, "198.51.100.0/24", "2001:db8::/32"];
    for (at, prefix) in prefixes.iter().enumerate() {
        let med = u32::try_from(at).unwrap() * 10;
        for neighbor in [&a, &b] {
            let attributes = Attributes {
                next_hop: NextHop::new(Some(ip("10.0.0.9")), None),
                ..with_med(neighbor, med)
            };
            announce(&mut rib, neighbor, prefix, attributes);
        }
    }
    for prefix in prefixes {
        assert!(rib.goes_unnoticed(b.id, &net(prefix)));
        assert!(!rib.goes_unnoticed(a.id, &net(prefix)));
    }
    let update = update_of(&b, &[], &prefixes);
    assert!(rib.apply(b.id, &update, &all).is_empty());
    assert_eq!(rib.received(b.id), 0);
    for prefix in prefixes {
        assert_eq!(sources(&rib, prefix), vec![from(&a)]);
    }
}

#[test]
fn multipath_paths_past_max_paths_go_unnoticed_unless_they_beat_another_on_med() {
    let table = || {
        let mut rib = rib(2);
        // X (MED 10) beats Y (MED 50) in AS 65001; then Z (.2) and W (.3)
        // are the two multipaths, V (.4) and X (.5) are past them.
        let x = neighbor("10.0.0.1", 65001, 5);
        let y = neighbor("10.0.0.2", 65001, 1);
        let z = neighbor("10.0.0.3", 65002, 2);
        let w = neighbor("10.0.0.4", 65003, 3);
        let v = neighbor("10.0.0.5", 65004, 4);
        for neighbor in [&x, &y, &z, &w, &v] {
            rib.neighbor_up(neighbor.clone());
        }
        let last = |neighbor: &Neighbor| path(neighbor, &[neighbor.remote_as, 65010]);
        announce(
            &mut rib,
            &x,
            P,
            Attributes { ..last(&x) }.with_med(Some(10)),
        );
        announce(
            &mut rib,
            &y,
            P,
            Attributes { ..last(&y) }.with_med(Some(50)),
        );
        for neighbor in [&z, &w, &v] {
            announce(&mut rib, neighbor, P, last(neighbor));
        }
        assert_eq!(sources(&rib, P), vec![from(&z), from(&w)]);
        (rib, x, y, z, v)
    };
    let (mut rib, x, y, z, _) = table();
    assert!(!withdraw_checked(&mut rib, &x));
    assert_eq!(sources(&rib, P), vec![from(&y), from(&z)]);
    let (mut rib, _, y, _, v) = table();
    assert!(withdraw_checked(&mut rib, &v));
    assert!(withdraw_checked(&mut rib, &y));
    // The second multipath is not unnoticed.
    let (mut rib, x, _, z, _) = table();
    let w = neighbor("10.0.0.4", 65003, 3);
    assert!(!rib.goes_unnoticed(w.id, &net(P)));
    assert!(!withdraw_checked(&mut rib, &w));
    assert_eq!(
        sources(&rib, P),
        vec![from(&z), from(&neighbor("10.0.0.5", 65004, 4))]
    );
    assert!(!rib.goes_unnoticed(x.id, &net(P)));
}

#[test]
fn stale_paths_go_unnoticed_or_not_as_the_others() {
    let mut rib = rib(1);
    let (a, b) = pair(&mut rib, (65001, 1), (65001, 2));
    let c = neighbor("10.0.0.3", 65001, 3);
    rib.neighbor_up(c.clone());
    announce(&mut rib, &a, P, with_med(&a, 20));
    announce(&mut rib, &b, P, with_med(&b, 10));
    announce(&mut rib, &c, P, with_med(&c, 30));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // B and C restart: their paths stay, stale, and count as before.
    rib.mark_stale(b.id);
    rib.mark_stale(c.id);
    rib.neighbor_up(b.clone());
    rib.neighbor_up(c.clone());
    assert!(rib.adj_rib_in(c.id).all(|(_, _, stale)| stale));
    // C's stale path beat nobody.
    assert!(withdraw_checked(&mut rib, &c));
    assert_eq!(sources(&rib, P), vec![from(&b)]);
    // B's stale path is the best.
    assert!(!withdraw_checked(&mut rib, &b));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
    // Stale and not best, but A (MED 20, stale) beats B's again (MED 40).
    announce(&mut rib, &b, P, with_med(&b, 40));
    announce(&mut rib, &c, P, with_med(&c, 5));
    rib.mark_stale(a.id);
    rib.neighbor_up(a.clone());
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    assert!(!withdraw_checked(&mut rib, &a));
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    // Swept at the End-of-RIB: the decision runs as before.
    rib.mark_stale(c.id);
    rib.neighbor_up(c.clone());
    let end_of_rib = Update {
        end_of_rib: vec![Family::Ipv4Unicast],
        ..Update::default()
    };
    let changes = rib.apply(c.id, &end_of_rib, &all);
    assert_eq!(changes.len(), 1);
    assert_eq!(sources(&rib, P), vec![from(&b)]);
}

#[test]
fn the_import_policy_s_answer_is_what_goes_unnoticed() {
    let mut rib = rib(1);
    let a = neighbor("10.0.0.1", 65001, 1);
    // B's MED comes as 100 and its import policy makes it 5.
    let mut b = neighbor("10.0.0.2", 65001, 3);
    b.import = Policy {
        rules: vec![Rule {
            action: Verdict::Permit,
            matches: Match::default(),
            set: Set {
                med: Some(5),
                ..Set::default()
            },
        }],
        default: Verdict::Permit,
    };
    let c = neighbor("10.0.0.3", 65002, 2);
    // D's path would beat A on MED and be best on LOCAL_PREF, but its
    // import policy denies it.
    let mut d = neighbor("10.0.0.4", 65001, 4);
    d.import = deny_prefix(P);
    for neighbor in [&a, &b, &c, &d] {
        rib.neighbor_up(neighbor.clone());
    }
    announce(&mut rib, &a, P, with_med(&a, 50));
    announce(&mut rib, &b, P, with_med(&b, 100));
    announce(&mut rib, &c, P, with_med(&c, 1000));
    announce(
        &mut rib,
        &d,
        P,
        Attributes { ..with_med(&d, 0) }.with_local_pref(Some(500)),
    );
    assert_eq!(sources(&rib, P), vec![from(&c)]);
    assert!(withdraw_checked(&mut rib, &d));
    // B (MED 5 as taken) beats A (MED 50).
    assert!(!withdraw_checked(&mut rib, &b));
    assert_eq!(sources(&rib, P), vec![from(&a)]);
}

#[test]
fn what_goes_unnoticed_leaves_the_decision_s_choice_in_any_table() {
    // Small tables of every kind, each path withdrawn in turn: the choice
    // after each is the decision's over what is left.
    let mut seed: u64 = 19;
    let mut next = |below: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % below
    };
    let unreachable = ip("10.9.9.9");
    let resolver = move |next_hop: IpAddr| next_hop != unreachable;
    // Paths that were not best and went unnoticed, that were not best
    // and did not, and that were best.
    let (mut unnoticed, mut not_best, mut best) = (0, 0, 0);
    for _ in 0..2000 {
        let mut rib = rib(usize::try_from(next(3)).unwrap() + 1);
        let count = next(4) + 3;
        let neighbors: Vec<Neighbor> = (0..count)
            .map(|at| {
                let remote_as = [LOCAL_AS, 65001, 65002][usize::try_from(next(3)).unwrap()];
                let router_id = u8::try_from(next(4)).unwrap();
                let mut neighbor = neighbor(&format!("10.0.0.{}", at + 1), remote_as, router_id);
                if next(8) == 0 {
                    neighbor.import = deny_prefix(P);
                }
                neighbor
            })
            .collect();
        for neighbor in &neighbors {
            rib.neighbor_up(neighbor.clone());
        }
        for neighbor in &neighbors {
            // Mostly alike but for the neighboring AS and MED, so that
            // many reach the MED step.
            let first = [65001, 65002][usize::try_from(next(2)).unwrap()];
            let as_path = if next(4) == 0 {
                vec![first, 65010]
            } else {
                vec![first]
            };
            let local_pref = (next(4) == 0).then_some(200);
            let origin = if next(4) == 0 {
                Origin::Incomplete
            } else {
                Origin::Igp
            };
            let med = [None, Some(10), Some(50)][usize::try_from(next(3)).unwrap()];
            let next_hop = if next(8) == 0 {
                unreachable
            } else {
                neighbor.id.address()
            };
            let attributes = Attributes {
                origin,
                next_hop: NextHop::from(next_hop),
                ..path(neighbor, &as_path)
            }
            .with_local_pref(local_pref)
            .with_med(med);
            let update = Update {
                announced: vec![(net(P), Arc::new(attributes))],
                ..Update::default()
            };
            rib.apply(neighbor.id, &update, &resolver);
            if next(4) == 0 {
                rib.mark_stale(neighbor.id);
                rib.neighbor_up(neighbor.clone());
            }
        }
        assert_eq!(rib.best(&net(P)), rib.decide(&net(P), &resolver));
        let mut order = neighbors.clone();
        while !order.is_empty() {
            let leaving =
                order.remove(usize::try_from(next(u64::try_from(order.len()).unwrap())).unwrap());
            let before = rib.best(&net(P));
            let was_best = before.iter().any(|path| path.source == from(&leaving));
            let goes_unnoticed = rib.goes_unnoticed(leaving.id, &net(P));
            // Withdrawn, or its session gone, or swept after a restart.
            let changes = match next(3) {
                0 => rib.apply(leaving.id, &update_of(&leaving, &[], &[P]), &resolver),
                1 => rib.neighbor_down(leaving.id, &resolver),
                _ => {
                    rib.mark_stale(leaving.id);
                    let families = [Family::Ipv4Unicast, Family::Ipv6Unicast];
                    rib.sweep_stale(leaving.id, &families, &resolver)
                }
            };
            if goes_unnoticed {
                unnoticed += 1;
                assert!(changes.is_empty());
                assert_eq!(rib.best(&net(P)), before);
            } else if was_best {
                best += 1;
            } else {
                not_best += 1;
            }
            assert_eq!(rib.best(&net(P)), rib.decide(&net(P), &resolver));
            assert_eq!(rib.received(leaving.id), 0);
        }
    }
    // Each way taken many times.
    assert!(
        unnoticed > 1000 && not_best > 100 && best > 1000,
        "{unnoticed} {not_best} {best}"
    );
}
