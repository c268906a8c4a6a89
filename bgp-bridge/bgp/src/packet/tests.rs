use std::collections::BTreeSet;

use super::decode::*;
use super::encode::*;
use super::fuzz::fuzz_session;
use super::*;

const PEER_AS: Asn = 65001;
const LOCAL_AS: Asn = 65000;

fn session(remote_as: Asn, four_octet_as: bool, families: &[Family]) -> Negotiated {
    Negotiated {
        local_as: LOCAL_AS,
        remote_as,
        remote_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        four_octet_as,
        families: families.to_vec(),
        route_refresh: true,
        extended_next_hop_ipv4: false,
        extended_messages: false,
        peer_graceful_restart: None,
    }
}

fn ebgp() -> Negotiated {
    session(PEER_AS, true, &[Family::Ipv4Unicast, Family::Ipv6Unicast])
}

fn ibgp() -> Negotiated {
    session(LOCAL_AS, true, &[Family::Ipv4Unicast, Family::Ipv6Unicast])
}

fn ipv4_only() -> Negotiated {
    session(PEER_AS, true, &[Family::Ipv4Unicast])
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// The body of a whole message, checking its header.
fn body(message: &[u8]) -> &[u8] {
    assert_eq!(&message[..16], &[0xff; 16]);
    assert_eq!(
        usize::from(u16::from_be_bytes([message[16], message[17]])),
        message.len()
    );
    assert_eq!(message[18], MESSAGE_TYPE_UPDATE);
    &message[HEADER_LEN..]
}

fn accepted(body: &[u8], session: &Negotiated) -> (Update, Vec<Problem>) {
    match decode(body, session) {
        Decoded::Update { update, problems } => (update, problems),
        Decoded::Reset(notification) => panic!("reset: {notification:?}"),
    }
}

fn reset_by(body: &[u8], session: &Negotiated) -> Notification {
    match decode(body, session) {
        Decoded::Reset(notification) => notification,
        other => panic!("no reset: {other:?}"),
    }
}

fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_attribute(&mut out, flags, type_code, value);
    out
}

fn prefixes(list: &[&str]) -> Vec<u8> {
    let nets: Vec<IpNet> = list.iter().map(|text| net(text)).collect();
    pack(nets.iter(), usize::MAX).concat()
}

fn update_body(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    body(&message(withdrawn, attributes, nlri)).to_vec()
}

const WK: u8 = flag::TRANSITIVE;
const OPT: u8 = flag::OPTIONAL;
const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;

fn origin() -> Vec<u8> {
    attribute(WK, code::ORIGIN, &[0])
}

fn as_path(asns: &[u32]) -> Vec<u8> {
    attribute(
        WK,
        code::AS_PATH,
        &as_path_value(&[AsSegment::Sequence(asns.to_vec())], 4),
    )
}

fn next_hop(octets: [u8; 4]) -> Vec<u8> {
    attribute(WK, code::NEXT_HOP, &octets)
}

/// A well-formed eBGP IPv4 UPDATE body, with `extra` attributes.
fn ipv4_body(extra: &[Vec<u8>], nlri: &[&str]) -> Vec<u8> {
    let mut attributes = [
        origin(),
        as_path(&[PEER_AS, 65010]),
        next_hop([10, 0, 0, 1]),
    ]
    .concat();
    for more in extra {
        attributes.extend_from_slice(more);
    }
    update_body(&[], &attributes, &prefixes(nlri))
}

/// An MP_REACH_NLRI for IPv6 with a 16-octet nexthop.
fn mp_reach_ipv6(next_hop: &[u8], nlri: &[&str]) -> Vec<u8> {
    let mut value = vec![0, 2, 1, next_hop.len() as u8];
    value.extend_from_slice(next_hop);
    value.push(0);
    value.extend_from_slice(&prefixes(nlri));
    attribute(OPT, code::MP_REACH_NLRI, &value)
}

fn assert_withdrawn(update: &Update, expected: &[&str]) {
    assert!(
        update.announced.is_empty(),
        "announced {:?}",
        update.announced
    );
    let withdrawn: BTreeSet<IpNet> = update.withdrawn.iter().copied().collect();
    let expected: BTreeSet<IpNet> = expected.iter().map(|text| net(text)).collect();
    assert_eq!(withdrawn, expected);
}

fn has(problems: &[Problem], type_code: Option<u8>, action: Action) -> bool {
    problems
        .iter()
        .any(|problem| problem.attribute == type_code && problem.action == action)
}

fn rich_attributes(next_hop: IpAddr) -> Attributes {
    Attributes {
        origin: Origin::Egp,
        as_path: vec![
            AsSegment::Sequence(vec![PEER_AS, 4_200_000_000, 65010]),
            AsSegment::Set(vec![65020, 65021]),
        ]
        .into(),
        next_hop: NextHop::new(Some(next_hop), None),
        communities: vec![(65001 << 16) | 100, 0xFFFF_FF01].into(),
        rare: Rare {
            atomic_aggregate: true,
            aggregator: Some((4_200_000_000, Ipv4Addr::new(192, 0, 2, 9))),
            large_communities: vec![
                LargeCommunity {
                    global: 4_242_420_001,
                    local1: 1,
                    local2: 2,
                },
                LargeCommunity {
                    global: 65001,
                    local1: u32::MAX,
                    local2: 0,
                },
            ]
            .into(),
            // A route target 65001:7 and an origin 192.0.2.1:9.
            extended_communities: vec![0x0002_fde9_0000_0007, 0x0103_c000_0201_0009].into(),
            other: vec![
                RawAttribute {
                    flags: OPT_TRANS,
                    code: code::IPV6_EXTENDED_COMMUNITIES,
                    value: vec![0; 20],
                },
                RawAttribute {
                    flags: OPT_TRANS | flag::PARTIAL,
                    code: 99,
                    value: vec![1, 2, 3],
                },
            ]
            .into(),
            ..Rare::default()
        }
        .boxed(),
        ..Attributes::default()
    }
    .with_med(Some(50))
}

/// Encodes, decodes every message, and gathers what they said.
fn round_trip(
    family: Family,
    announced: &[(IpNet, Arc<Attributes>)],
    withdrawn: &[IpNet],
    session: &Negotiated,
) -> Update {
    let mut all = Update::default();
    for message in encode(family, announced, withdrawn, session) {
        let (update, problems) = accepted(body(&message), session);
        assert!(problems.is_empty(), "{problems:?}");
        all.announced.extend(update.announced);
        all.withdrawn.extend(update.withdrawn);
        all.end_of_rib.extend(update.end_of_rib);
    }
    all
}

#[test]
fn ipv4_round_trip() {
    let session = ebgp();
    let first = Arc::new(rich_attributes("10.0.0.1".parse().unwrap()));
    let second = Arc::new(Attributes {
        as_path: vec![AsSegment::Sequence(vec![PEER_AS])].into(),
        next_hop: NextHop::new(Some("10.0.0.2".parse().unwrap()), None),
        ..Attributes::default()
    });
    let announced = vec![
        (net("192.0.2.0/24"), Arc::clone(&first)),
        (net("198.51.100.0/25"), Arc::clone(&second)),
        (net("10.128.0.0/9"), Arc::clone(&first)),
        (net("0.0.0.0/0"), Arc::clone(&second)),
    ];
    let withdrawn = [net("203.0.113.0/24"), net("10.0.0.0/8")];
    let all = round_trip(Family::Ipv4Unicast, &announced, &withdrawn, &session);
    let mut expected = announced.clone();
    expected.sort_by_key(|(prefix, _)| *prefix);
    let mut got = all.announced.clone();
    got.sort_by_key(|(prefix, _)| *prefix);
    assert_eq!(got, expected);
    assert_eq!(all.withdrawn, withdrawn);
    assert!(all.end_of_rib.is_empty());
}

#[test]
fn ipv6_round_trip_with_link_local() {
    let session = ibgp();
    let attributes = Arc::new(
        Attributes {
            next_hop: NextHop::new(
                Some("2001:db8::1".parse().unwrap()),
                Some("fe80::1".parse().unwrap()),
            ),
            ..rich_attributes("2001:db8::1".parse().unwrap())
        }
        .with_local_pref(Some(200)),
    );
    let mut attributes = Arc::unwrap_or_clone(attributes);
    attributes.change_rare(|rare| {
        rare.originator_id = Some(Ipv4Addr::new(192, 0, 2, 7));
        rare.cluster_list = vec![Ipv4Addr::new(192, 0, 2, 8)].into();
    });
    let attributes = Arc::new(attributes);
    let announced = vec![
        (net("2001:db8:1::/48"), Arc::clone(&attributes)),
        (net("2001:db8:2:3::/64"), Arc::clone(&attributes)),
        (net("::/0"), Arc::clone(&attributes)),
    ];
    let withdrawn = [net("2001:db8:ffff::/48"), net("2001:db8::1/128")];
    let all = round_trip(Family::Ipv6Unicast, &announced, &withdrawn, &session);
    assert_eq!(all.announced, announced);
    assert_eq!(all.withdrawn, withdrawn);
}

#[test]
fn mixed_round_trip_with_ipv4_over_ipv6_next_hop() {
    let mut session = ebgp();
    session.extended_next_hop_ipv4 = true;
    let over_ipv6 = Arc::new(Attributes {
        as_path: vec![AsSegment::Sequence(vec![PEER_AS])].into(),
        next_hop: NextHop::new(Some("2001:db8::1".parse().unwrap()), None),
        ..Attributes::default()
    });
    let over_ipv4 = Arc::new(Attributes {
        next_hop: NextHop::new(Some("10.0.0.1".parse().unwrap()), None),
        ..(*over_ipv6).clone()
    });
    let ipv4 = vec![
        (net("192.0.2.0/24"), Arc::clone(&over_ipv6)),
        (net("198.51.100.0/24"), Arc::clone(&over_ipv4)),
    ];
    let ipv6 = vec![
        (net("2001:db8:1::/48"), Arc::clone(&over_ipv6)),
        // An IPv4 nexthop for an IPv6 route goes as IPv4-mapped.
        (net("2001:db8:2::/48"), Arc::clone(&over_ipv4)),
    ];
    let both: Vec<_> = ipv4.iter().chain(&ipv6).cloned().collect();
    let all4 = round_trip(Family::Ipv4Unicast, &both, &[], &session);
    let all6 = round_trip(Family::Ipv6Unicast, &both, &[], &session);
    let sorted = |mut routes: Vec<(IpNet, Arc<Attributes>)>| {
        routes.sort_by_key(|(prefix, _)| *prefix);
        routes
    };
    assert_eq!(sorted(all4.announced), sorted(ipv4.clone()));
    assert_eq!(sorted(all6.announced), sorted(ipv6));

    // Without RFC 8950 the IPv6 nexthop cannot carry an IPv4 route.
    session.extended_next_hop_ipv4 = false;
    let all4 = round_trip(Family::Ipv4Unicast, &both, &[], &session);
    assert_eq!(all4.announced, vec![ipv4[1].clone()]);
}

#[test]
fn two_octet_session_round_trips_four_octet_asns() {
    let session = session(PEER_AS, false, &[Family::Ipv4Unicast]);
    let attributes = Arc::new(rich_attributes("10.0.0.1".parse().unwrap()));
    let announced = vec![(net("192.0.2.0/24"), Arc::clone(&attributes))];
    let messages = encode(Family::Ipv4Unicast, &announced, &[], &session);
    assert_eq!(messages.len(), 1);
    // On the wire: AS_TRANS in AS_PATH, the true path in AS4_PATH.
    let wire = body(&messages[0]);
    let trans = (AS_TRANS as u16).to_be_bytes();
    assert!(wire.windows(2).any(|pair| pair == trans));
    let all = round_trip(Family::Ipv4Unicast, &announced, &[], &session);
    assert_eq!(all.announced, announced);
}

#[test]
fn as4_path_merges_behind_the_leading_two_octet_ases() {
    let session = session(PEER_AS, false, &[Family::Ipv4Unicast]);
    let two_octet = |asns: &[u32]| {
        attribute(
            WK,
            code::AS_PATH,
            &as_path_value(&[AsSegment::Sequence(asns.to_vec())], 2),
        )
    };
    let as4 = attribute(
        OPT_TRANS,
        code::AS4_PATH,
        &as_path_value(
            &[AsSegment::Sequence(vec![
                4_200_000_001,
                4_200_000_002,
                65003,
            ])],
            4,
        ),
    );
    let attributes = [
        origin(),
        two_octet(&[PEER_AS, AS_TRANS, AS_TRANS, 65003]),
        next_hop([10, 0, 0, 1]),
        as4,
    ]
    .concat();
    let (update, problems) = accepted(
        &update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"])),
        &session,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        update.announced[0].1.as_path,
        vec![AsSegment::Sequence(vec![
            PEER_AS,
            4_200_000_001,
            4_200_000_002,
            65003
        ])]
        .into()
    );

    // An AS4_PATH longer than AS_PATH is ignored.
    let as4 = attribute(
        OPT_TRANS,
        code::AS4_PATH,
        &as_path_value(&[AsSegment::Sequence(vec![1, 2, 3])], 4),
    );
    let attributes = [
        origin(),
        two_octet(&[PEER_AS]),
        next_hop([10, 0, 0, 1]),
        as4,
    ]
    .concat();
    let (update, problems) = accepted(
        &update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"])),
        &session,
    );
    assert!(has(
        &problems,
        Some(code::AS4_PATH),
        Action::AttributeDiscard
    ));
    assert_eq!(
        update.announced[0].1.as_path,
        vec![AsSegment::Sequence(vec![PEER_AS])].into()
    );
}

#[test]
fn large_batches_split_into_messages_of_at_most_4096_octets() {
    let session = ebgp();
    let ipv4_attributes = Arc::new(Attributes {
        as_path: vec![AsSegment::Sequence(vec![PEER_AS])].into(),
        next_hop: NextHop::new(Some("10.0.0.1".parse().unwrap()), None),
        ..Attributes::default()
    });
    let ipv6_attributes = Arc::new(Attributes {
        next_hop: NextHop::new(Some("2001:db8::1".parse().unwrap()), None),
        ..(*ipv4_attributes).clone()
    });
    let ipv4: Vec<(IpNet, Arc<Attributes>)> = (0..3000u32)
        .map(|n| {
            let prefix =
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (n << 8)), 24).unwrap());
            (prefix, Arc::clone(&ipv4_attributes))
        })
        .collect();
    let ipv6: Vec<(IpNet, Arc<Attributes>)> = (0..3000u128)
        .map(|n| {
            let address = Ipv6Addr::from((0x2001_0db8u128 << 96) | (n << 64));
            (
                IpNet::V6(Ipv6Net::new(address, 64).unwrap()),
                Arc::clone(&ipv6_attributes),
            )
        })
        .collect();
    let withdrawn4: Vec<IpNet> = ipv4.iter().map(|(prefix, _)| *prefix).collect();
    let withdrawn6: Vec<IpNet> = ipv6.iter().map(|(prefix, _)| *prefix).collect();
    for (family, announced, withdrawn) in [
        (Family::Ipv4Unicast, &ipv4, &withdrawn4),
        (Family::Ipv6Unicast, &ipv6, &withdrawn6),
    ] {
        let messages = encode(family, announced, withdrawn, &session);
        assert!(messages.len() > 4, "{family}: {} messages", messages.len());
        for message in &messages {
            assert!(message.len() <= MAX_MESSAGE_LEN, "{} octets", message.len());
        }
        let all = round_trip(family, announced, withdrawn, &session);
        assert_eq!(&all.announced, announced);
        assert_eq!(&all.withdrawn, withdrawn);

        // With extended messages (RFC 8654): fewer, larger messages,
        // the same routes.
        let extended = Negotiated {
            extended_messages: true,
            ..session.clone()
        };
        let large = encode(family, announced, withdrawn, &extended);
        assert!(large.len() < messages.len(), "{family}: {}", large.len());
        assert!(large.iter().any(|message| message.len() > MAX_MESSAGE_LEN));
        for message in &large {
            assert!(message.len() <= 65535, "{} octets", message.len());
        }
        let all = round_trip(family, announced, withdrawn, &extended);
        assert_eq!(&all.announced, announced);
        assert_eq!(&all.withdrawn, withdrawn);
    }
}

/// The AFI and next hop octets of a message's MP_REACH_NLRI.
fn mp_reach_next_hop(message: &[u8]) -> (u16, Vec<u8>) {
    let body = body(message);
    let withdrawn = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let mut attributes = &body[4 + withdrawn..];
    while let [flags, code, rest @ ..] = attributes {
        let (length, value) = if flags & flag::EXTENDED_LENGTH != 0 {
            (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            )
        } else {
            (usize::from(rest[0]), &rest[1..])
        };
        if *code == code::MP_REACH_NLRI {
            let afi = u16::from_be_bytes([value[0], value[1]]);
            let next_hop_len = usize::from(value[3]);
            return (afi, value[4..4 + next_hop_len].to_vec());
        }
        attributes = &value[length..];
    }
    panic!("no MP_REACH_NLRI")
}

fn octets(addresses: &[&str]) -> Vec<u8> {
    addresses
        .iter()
        .flat_map(|address| address.parse::<Ipv6Addr>().unwrap().octets())
        .collect()
}

#[test]
fn ipv4_routes_go_with_link_local_next_hops_under_rfc_8950() {
    let mut session = ebgp();
    session.extended_next_hop_ipv4 = true;
    let link_local_alone = Arc::new(Attributes {
        as_path: vec![AsSegment::Sequence(vec![PEER_AS])].into(),
        next_hop: NextHop::new(Some("fe80::1".parse().unwrap()), None),
        ..Attributes::default()
    });
    let global_and_link_local = Arc::new(Attributes {
        next_hop: NextHop::new(
            Some("2001:db8::1".parse().unwrap()),
            Some("fe80::1".parse().unwrap()),
        ),
        ..(*link_local_alone).clone()
    });
    for (attributes, expected) in [
        // RFC 2545 3: 16 octets, the link-local alone (as FRR sends it
        // over an interface without a global address; BIRD and FRR
        // both take it from a link-local neighbor)...
        (&link_local_alone, octets(&["fe80::1"])),
        // ...or 32: global first, then link-local.
        (&global_and_link_local, octets(&["2001:db8::1", "fe80::1"])),
    ] {
        let routes = vec![(net("172.20.2.0/27"), Arc::clone(attributes))];
        for (family, prefix_routes) in [
            (Family::Ipv4Unicast, routes.clone()),
            (
                Family::Ipv6Unicast,
                vec![(net("fd42:2::/48"), Arc::clone(attributes))],
            ),
        ] {
            let messages = encode(family, &prefix_routes, &[], &session);
            assert_eq!(messages.len(), 1);
            let (afi, next_hop) = mp_reach_next_hop(&messages[0]);
            assert_eq!(afi, family.afi_safi().0);
            assert_eq!(next_hop, expected);
            let all = round_trip(family, &prefix_routes, &[], &session);
            assert_eq!(all.announced, prefix_routes);
        }
    }
    // Without RFC 8950 no IPv4 route can go with an IPv6 next hop.
    session.extended_next_hop_ipv4 = false;
    let routes = vec![(net("172.20.2.0/27"), link_local_alone)];
    assert!(encode(Family::Ipv4Unicast, &routes, &[], &session).is_empty());
}

#[test]
fn link_local_next_hops_as_bird_and_frr_send_them() {
    let mut session = ebgp();
    session.extended_next_hop_ipv4 = true;
    let ipv4_with = |next_hop: &[u8]| {
        let mut value = vec![0, 1, 1, next_hop.len() as u8];
        value.extend_from_slice(next_hop);
        value.push(0);
        value.extend_from_slice(&prefixes(&["172.20.2.0/27"]));
        let attributes = [
            attribute(flag::OPTIONAL, code::MP_REACH_NLRI, &value),
            origin(),
            as_path(&[PEER_AS]),
        ]
        .concat();
        update_body(&[], &attributes, &[])
    };
    let link_local: Ipv6Addr = "fe80::2".parse().unwrap();
    let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
    for (next_hop, expected_next_hop, expected_link_local) in [
        // 16 octets of link-local.
        (octets(&["fe80::2"]), IpAddr::V6(link_local), None),
        // BIRD without a global address: "::" then the link-local.
        (
            octets(&["::", "fe80::2"]),
            IpAddr::V6(link_local),
            Some(link_local),
        ),
        // FRR without a global address: the link-local twice.
        (
            octets(&["fe80::2", "fe80::2"]),
            IpAddr::V6(link_local),
            Some(link_local),
        ),
        // Global and link-local.
        (
            octets(&["2001:db8::2", "fe80::2"]),
            IpAddr::V6(global),
            Some(link_local),
        ),
        // A second address that is no link-local one: ignored.
        (
            octets(&["2001:db8::2", "2001:db8::3"]),
            IpAddr::V6(global),
            None,
        ),
    ] {
        let (update, problems) = accepted(&ipv4_with(&next_hop), &session);
        assert!(problems.is_empty(), "{problems:?}");
        let (prefix, attributes) = &update.announced[0];
        assert_eq!(*prefix, net("172.20.2.0/27"));
        assert_eq!(attributes.next_hop.address(), Some(expected_next_hop));
        assert_eq!(attributes.next_hop.link_local(), expected_link_local);
    }
}

#[test]
fn end_of_rib_markers() {
    let session = ebgp();
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        let (update, problems) = accepted(body(&end_of_rib(family)), &session);
        assert!(problems.is_empty());
        assert_eq!(update.end_of_rib, vec![family]);
        assert!(update.withdrawn.is_empty() && update.announced.is_empty());
    }
    // Withdrawing nothing but some IPv6 prefixes is no End-of-RIB.
    let withdraw = encode(Family::Ipv6Unicast, &[], &[net("2001:db8::/32")], &session);
    let (update, _) = accepted(body(&withdraw[0]), &session);
    assert!(update.end_of_rib.is_empty());
    assert_eq!(update.withdrawn, vec![net("2001:db8::/32")]);
}

#[test]
fn bad_origin_value_is_treat_as_withdraw() {
    let mut body = ipv4_body(&[], &["192.0.2.0/24", "198.51.100.0/24"]);
    // ORIGIN's value is the 8th octet: lengths (4), flags, type, length.
    assert_eq!(&body[4..7], &[WK, code::ORIGIN, 1]);
    body[7] = 3;
    let (update, problems) = accepted(&body, &ebgp());
    assert_withdrawn(&update, &["192.0.2.0/24", "198.51.100.0/24"]);
    assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
    assert!(
        problems[0].to_string().contains("ORIGIN"),
        "{}",
        problems[0]
    );
}

#[test]
fn as_path_segment_overrun_is_treat_as_withdraw() {
    // A sequence of 3 ASes with room for 2.
    let mut value = vec![2, 3];
    value.extend_from_slice(&PEER_AS.to_be_bytes());
    value.extend_from_slice(&65010u32.to_be_bytes());
    let attributes = [
        origin(),
        attribute(WK, code::AS_PATH, &value),
        next_hop([10, 0, 0, 1]),
    ]
    .concat();
    let body = update_body(
        &prefixes(&["203.0.113.0/24"]),
        &attributes,
        &prefixes(&["192.0.2.0/24"]),
    );
    let (update, problems) = accepted(&body, &ebgp());
    assert_withdrawn(&update, &["192.0.2.0/24", "203.0.113.0/24"]);
    assert!(has(&problems, Some(code::AS_PATH), Action::TreatAsWithdraw));

    // A segment of zero length, a lone trailing octet: malformed too.
    for value in [
        vec![2u8, 0],
        [vec![2, 1], PEER_AS.to_be_bytes().to_vec(), vec![2]].concat(),
    ] {
        let attributes = [
            origin(),
            attribute(WK, code::AS_PATH, &value),
            next_hop([10, 0, 0, 1]),
        ]
        .concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, _) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
    }
}

#[test]
fn as_path_of_an_ebgp_neighbor_must_start_with_its_as() {
    let attributes = [origin(), as_path(&[65099]), next_hop([10, 0, 0, 1])].concat();
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, problems) = accepted(&body, &ebgp());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
    assert!(has(&problems, Some(code::AS_PATH), Action::TreatAsWithdraw));
    // iBGP: any path, even an empty one.
    let attributes = [origin(), as_path(&[]), next_hop([10, 0, 0, 1])].concat();
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, problems) = accepted(&body, &ibgp());
    assert!(problems.is_empty());
    assert_eq!(update.announced.len(), 1);
}

#[test]
fn bad_next_hop_is_treat_as_withdraw() {
    for next_hop in [
        attribute(WK, code::NEXT_HOP, &[10, 0, 0, 1, 0]),
        attribute(WK, code::NEXT_HOP, &[0, 0, 0, 0]),
        attribute(WK, code::NEXT_HOP, &[224, 0, 0, 5]),
        attribute(WK, code::NEXT_HOP, &[255, 255, 255, 255]),
    ] {
        let attributes = [origin(), as_path(&[PEER_AS]), next_hop].concat();
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(
            &problems,
            Some(code::NEXT_HOP),
            Action::TreatAsWithdraw
        ));
    }
    // Without body NLRI, NEXT_HOP is not looked at (RFC 4760 3).
    let attributes = [
        mp_reach_ipv6(
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            &["2001:db8:1::/48"],
        ),
        origin(),
        as_path(&[PEER_AS]),
        attribute(WK, code::NEXT_HOP, &[0, 0, 0, 0]),
    ]
    .concat();
    let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(update.announced.len(), 1);
}

#[test]
fn attribute_past_the_end_of_the_list() {
    // COMMUNITIES claims 8 octets where 4 remain.
    let mut attributes = [origin(), as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat();
    attributes.extend_from_slice(&[OPT_TRANS, code::COMMUNITIES, 8, 0, 1, 0, 1]);
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    // The framing still locates the NLRI: treat as withdraw, with IPv6
    // negotiated too (an MP_REACH_NLRI would have come first).
    for session in [ipv4_only(), ebgp()] {
        let (update, problems) = accepted(&body, &session);
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(&problems, None, Action::TreatAsWithdraw));
    }
    // A header cut short counts the same.
    let mut attributes = [origin(), as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat();
    attributes.extend_from_slice(&[OPT_TRANS | flag::EXTENDED_LENGTH, code::COMMUNITIES, 0]);
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, _) = accepted(&body, &ipv4_only());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
    // MP_REACH_NLRI first, then the break: its routes are withdrawn.
    let mut attributes = [
        mp_reach_ipv6(
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            &["2001:db8:1::/48"],
        ),
        origin(),
        as_path(&[PEER_AS]),
    ]
    .concat();
    attributes.extend_from_slice(&[OPT, code::MED, 4, 0]);
    let (update, _) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
    assert_withdrawn(&update, &["2001:db8:1::/48"]);
}

#[test]
fn malformed_mp_reach_resets_the_session() {
    let nlri = ["2001:db8:1::/48"];
    // A 5-octet nexthop for IPv6.
    let bad_next_hop = mp_reach_ipv6(&[0x20, 0x01, 0x0d, 0xb8, 1], &nlri);
    // NLRI that overruns: a /64 with two octets of address.
    let mut overrun = mp_reach_ipv6(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(), &[]);
    overrun[2] += 3;
    overrun.extend_from_slice(&[64, 0x20, 0x01]);
    // AFI and SAFI only.
    let short = attribute(OPT, code::MP_REACH_NLRI, &[0, 2, 1]);
    // An IPv6 nexthop for IPv4 without RFC 8950.
    let mut ipv4_over_ipv6 = mp_reach_ipv6(&[0x20; 16], &[]);
    ipv4_over_ipv6[4] = 1;
    for mp_reach in [bad_next_hop, overrun, short, ipv4_over_ipv6] {
        let attributes = [mp_reach.clone(), origin(), as_path(&[PEER_AS])].concat();
        let notification = reset_by(&update_body(&[], &attributes, &[]), &ebgp());
        assert_eq!((notification.code, notification.subcode), (3, 9));
        assert_eq!(notification.data, mp_reach);
    }
    // MP_UNREACH_NLRI with a prefix too long for IPv6.
    let unreach = attribute(OPT, code::MP_UNREACH_NLRI, &[0, 2, 1, 129, 0]);
    let notification = reset_by(&update_body(&[], &unreach, &[]), &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 9));
}

#[test]
fn repeated_mp_attribute_resets_the_session() {
    let unreach = attribute(OPT, code::MP_UNREACH_NLRI, &[0, 2, 1]);
    let body = update_body(&[], &[unreach.clone(), unreach].concat(), &[]);
    let notification = reset_by(&body, &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 1));
}

#[test]
fn mp_attributes_of_a_family_not_negotiated_are_ignored() {
    let attributes = [
        mp_reach_ipv6(
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            &["2001:db8:1::/48"],
        ),
        origin(),
        as_path(&[PEER_AS]),
    ]
    .concat();
    let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ipv4_only());
    assert!(update.announced.is_empty() && update.withdrawn.is_empty());
    assert!(has(&problems, Some(code::MP_REACH_NLRI), Action::Ignore));
}

#[test]
fn missing_mandatory_attribute_is_treat_as_withdraw() {
    let cases = [
        (
            [as_path(&[PEER_AS]), next_hop([10, 0, 0, 1])].concat(),
            code::ORIGIN,
        ),
        ([origin(), next_hop([10, 0, 0, 1])].concat(), code::AS_PATH),
        ([origin(), as_path(&[PEER_AS])].concat(), code::NEXT_HOP),
    ];
    for (attributes, missing) in cases {
        let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert!(has(&problems, Some(missing), Action::TreatAsWithdraw));
    }
    // No attributes at all with NLRI.
    let body = update_body(&[], &[], &prefixes(&["192.0.2.0/24"]));
    let (update, _) = accepted(&body, &ebgp());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
    // A withdraw-only UPDATE needs none.
    let body = update_body(&prefixes(&["192.0.2.0/24"]), &[], &[]);
    let (update, problems) = accepted(&body, &ebgp());
    assert!(problems.is_empty());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
}

#[test]
fn repeated_attribute_keeps_the_first() {
    let body = ipv4_body(
        &[
            attribute(OPT, code::MED, &10u32.to_be_bytes()),
            attribute(OPT, code::MED, &20u32.to_be_bytes()),
        ],
        &["192.0.2.0/24"],
    );
    let (update, problems) = accepted(&body, &ebgp());
    assert_eq!(update.announced.len(), 1);
    assert_eq!(update.announced[0].1.med(), Some(10));
    assert!(has(&problems, Some(code::MED), Action::AttributeDiscard));
}

#[test]
fn local_pref_from_an_external_neighbor_is_discarded() {
    let local_pref = attribute(WK, code::LOCAL_PREF, &300u32.to_be_bytes());
    let body = ipv4_body(std::slice::from_ref(&local_pref), &["192.0.2.0/24"]);
    let (update, problems) = accepted(&body, &ebgp());
    assert_eq!(update.announced.len(), 1);
    assert_eq!(update.announced[0].1.local_pref(), None);
    assert!(has(
        &problems,
        Some(code::LOCAL_PREF),
        Action::AttributeDiscard
    ));

    // From an internal one it stands...
    let attributes = [origin(), as_path(&[]), next_hop([10, 0, 0, 1]), local_pref].concat();
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, problems) = accepted(&body, &ibgp());
    assert!(problems.is_empty());
    assert_eq!(update.announced[0].1.local_pref(), Some(300));
    // ...unless its length is wrong.
    let attributes = [
        origin(),
        as_path(&[]),
        next_hop([10, 0, 0, 1]),
        attribute(WK, code::LOCAL_PREF, &[0, 1]),
    ]
    .concat();
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, problems) = accepted(&body, &ibgp());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
    assert!(has(
        &problems,
        Some(code::LOCAL_PREF),
        Action::TreatAsWithdraw
    ));
}

#[test]
fn bad_med_and_communities_are_treat_as_withdraw() {
    for bad in [
        attribute(OPT, code::MED, &[0, 0, 1]),
        attribute(OPT_TRANS, code::COMMUNITIES, &[0, 0, 1]),
        attribute(OPT_TRANS, code::COMMUNITIES, &[]),
        attribute(OPT_TRANS, code::EXTENDED_COMMUNITIES, &[0; 7]),
        attribute(OPT_TRANS, code::LARGE_COMMUNITIES, &[0; 8]),
    ] {
        let body = ipv4_body(&[bad], &["192.0.2.0/24"]);
        let (update, problems) = accepted(&body, &ebgp());
        assert_withdrawn(&update, &["192.0.2.0/24"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}

#[test]
fn bad_atomic_aggregate_and_aggregator_are_discarded() {
    for bad in [
        attribute(WK, code::ATOMIC_AGGREGATE, &[1]),
        attribute(OPT_TRANS, code::AGGREGATOR, &[0, 1, 192, 0, 2, 1]),
    ] {
        let body = ipv4_body(&[bad], &["192.0.2.0/24"]);
        let (update, problems) = accepted(&body, &ebgp());
        assert_eq!(update.announced.len(), 1);
        assert!(!update.announced[0].1.atomic_aggregate());
        assert_eq!(update.announced[0].1.aggregator(), None);
        assert_eq!(problems[0].action, Action::AttributeDiscard);
    }
}

#[test]
fn flags_in_conflict_are_treat_as_withdraw() {
    // ORIGIN marked optional.
    let attributes = [
        attribute(OPT_TRANS, code::ORIGIN, &[0]),
        as_path(&[PEER_AS]),
        next_hop([10, 0, 0, 1]),
    ]
    .concat();
    let body = update_body(&[], &attributes, &prefixes(&["192.0.2.0/24"]));
    let (update, problems) = accepted(&body, &ebgp());
    assert_withdrawn(&update, &["192.0.2.0/24"]);
    assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
}

#[test]
fn unknown_attributes() {
    // Unknown well-known: NOTIFICATION 3/2 carrying the attribute.
    let unknown = attribute(WK, 99, &[1, 2]);
    let body = ipv4_body(std::slice::from_ref(&unknown), &["192.0.2.0/24"]);
    let notification = reset_by(&body, &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 2));
    assert_eq!(notification.data, unknown);
    // Unknown optional transitive: kept, partial; non-transitive: dropped.
    let body = ipv4_body(
        &[attribute(OPT_TRANS, 99, &[1, 2]), attribute(OPT, 98, &[3])],
        &["192.0.2.0/24"],
    );
    let (update, problems) = accepted(&body, &ebgp());
    assert!(problems.is_empty());
    assert_eq!(
        update.announced[0].1.other(),
        [RawAttribute {
            flags: OPT_TRANS | flag::PARTIAL,
            code: 99,
            value: vec![1, 2],
        }]
    );
}

#[test]
fn bad_framing_and_nlri_reset_the_session() {
    // Shorter than the two length fields: a message length error.
    let notification = reset_by(&[0, 0, 0], &ebgp());
    assert_eq!((notification.code, notification.subcode), (1, 2));
    assert_eq!(notification.data, 22u16.to_be_bytes());
    // Withdrawn Routes Length past the end.
    let notification = reset_by(&[0, 9, 24, 192, 0, 2, 0, 0], &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 1));
    // Total Path Attribute Length past the end.
    let notification = reset_by(&[0, 0, 0, 9, 0x40, 1, 1, 0], &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 1));
    // A /33 in the NLRI, a prefix cut short in the withdrawn routes.
    let mut body = ipv4_body(&[], &[]);
    body.extend_from_slice(&[33, 192, 0, 2, 0, 0]);
    let notification = reset_by(&body, &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 10));
    let notification = reset_by(&[0, 2, 24, 192, 0, 0], &ebgp());
    assert_eq!((notification.code, notification.subcode), (3, 10));
}

#[test]
fn treat_as_withdraw_covers_mp_reach_nlri() {
    let attributes = [
        mp_reach_ipv6(
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            &["2001:db8:1::/48"],
        ),
        attribute(WK, code::ORIGIN, &[7]),
        as_path(&[PEER_AS]),
    ]
    .concat();
    let (update, problems) = accepted(&update_body(&[], &attributes, &[]), &ebgp());
    assert_withdrawn(&update, &["2001:db8:1::/48"]);
    assert!(has(&problems, Some(code::ORIGIN), Action::TreatAsWithdraw));
}

#[test]
fn host_bits_past_the_prefix_length_are_cleared() {
    let mut body = ipv4_body(&[], &[]);
    body.extend_from_slice(&[23, 192, 0, 3]);
    let (update, _) = accepted(&body, &ebgp());
    assert_eq!(update.announced[0].0, net("192.0.2.0/23"));
}

/// A small deterministic generator (xorshift64*), so that the property
/// test needs no dependency and fails the same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Valid fuzz inputs to mutate (the session's settings octet, then an
/// UPDATE body): each family, many attributes, both AS widths, eBGP
/// and iBGP, RFC 8950.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for settings in [7u8, 5, 15, 6, 3] {
        let session = fuzz_session(settings);
        let attributes =
            Arc::new(rich_attributes("10.0.0.1".parse().unwrap()).with_local_pref(Some(120)));
        let ipv6 = Arc::new(Attributes {
            next_hop: NextHop::new(
                Some("2001:db8::1".parse().unwrap()),
                Some("fe80::1".parse().unwrap()),
            ),
            ..(*attributes).clone()
        });
        let routes = vec![
            (net("192.0.2.0/24"), Arc::clone(&attributes)),
            (net("10.0.0.0/8"), Arc::clone(&attributes)),
            (net("2001:db8:1::/48"), Arc::clone(&ipv6)),
            (net("198.51.100.0/24"), Arc::clone(&ipv6)),
        ];
        let withdrawn = [net("203.0.113.0/24"), net("2001:db8:9::/48")];
        for &family in &session.families {
            let messages = encode(family, &routes, &withdrawn, &session);
            for message in messages.iter().chain([&end_of_rib(family)]) {
                seeds.push([&[settings][..], body(message)].concat());
            }
        }
    }
    seeds
}

#[test]
fn mutated_updates_never_panic_and_re_encode_cleanly() {
    let seeds = seeds();
    for seed in &seeds {
        fuzz(seed);
        let (update, problems) = accepted(&seed[1..], &fuzz_session(seed[0]));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            !update.announced.is_empty()
                || !update.withdrawn.is_empty()
                || !update.end_of_rib.is_empty()
        );
    }
    let mut rng = Rng(0x5eed_f00d_b6b6_u64);
    let mut outcomes = [0usize; 3];
    for round in 0..20_000 {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            // Octet 0 is the session's settings: mutate the body.
            match rng.below(5) {
                0 | 1 if data.len() > 1 => {
                    let at = 1 + rng.below(data.len() - 1);
                    data[at] = rng.next() as u8;
                }
                2 if data.len() > 1 => {
                    let at = 1 + rng.below(data.len() - 1);
                    data[at] ^= 1 << rng.below(8);
                }
                3 => data.truncate(1 + rng.below(data.len())),
                _ => {
                    let at = 1 + rng.below(data.len());
                    data.insert(at, rng.next() as u8);
                }
            }
        }
        fuzz(&data);
        match decode(&data[1..], &fuzz_session(data[0])) {
            Decoded::Update { problems, .. } => {
                let withdraw = problems
                    .iter()
                    .any(|problem| problem.action == Action::TreatAsWithdraw);
                outcomes[usize::from(withdraw)] += 1;
            }
            Decoded::Reset(_) => outcomes[2] += 1,
        }
    }
    // The mutations reach every outcome, not just the first check.
    assert!(outcomes.iter().all(|&count| count > 100), "{outcomes:?}");
}

#[test]
fn an_as_path_keeps_its_segments_in_one_allocation() {
    use crate::types::AsPath;
    let segments = vec![
        AsSegment::ConfedSequence(vec![64512]),
        AsSegment::Sequence(vec![65001, 65001, 65002]),
        AsSegment::Set(vec![65010, 65011]),
    ];
    let path = AsPath::from(segments.clone());
    assert_eq!(path.to_segments(), segments);
    assert_eq!(path.path_len(), 4);
    assert_eq!(path.first_as(), Some(65001));
    assert!(path.contains(65011) && !path.contains(65003));
    let prepended = path.prepended(65000);
    assert_eq!(
        prepended.to_segments()[0],
        AsSegment::Sequence(vec![65000]),
        "a leading confederation segment is not a sequence to prepend into"
    );
    let long: Vec<u32> = (0..300).collect();
    let split = AsPath::from(vec![AsSegment::Sequence(long.clone())]);
    assert_eq!(split.path_len(), 300);
    assert_eq!(
        split.to_segments(),
        vec![
            AsSegment::Sequence(long[..255].to_vec()),
            AsSegment::Sequence(long[255..].to_vec())
        ]
    );
    assert!(AsPath::default().is_empty());
    assert_eq!(
        AsPath::sequence(&[65001]).prepended(65000).to_segments(),
        vec![AsSegment::Sequence(vec![65000, 65001])]
    );
}

#[test]
fn an_attribute_set_is_96_bytes() {
    // A full table holds a quarter million: with the `Arc`'s two counts,
    // 80 bytes, an allocator size class of its own (112 with both
    // nexthop addresses in place and MED and LOCAL_PREF as `Option`s).
    assert_eq!(std::mem::size_of::<Attributes>(), 64);
    // What a set with rare attributes pays besides (large and extended
    // communities took 32 of it).
    assert_eq!(std::mem::size_of::<Rare>(), 88);
}

#[test]
fn large_and_extended_communities_are_decoded_and_encoded() {
    let large =
        |words: [u32; 3]| -> Vec<u8> { words.iter().flat_map(|w| w.to_be_bytes()).collect() };
    let value = [
        large([4_242_420_001, 1, 2]),
        large([65001, 0, u32::MAX]),
        // Repeated: dropped (RFC 8092 5).
        large([4_242_420_001, 1, 2]),
    ]
    .concat();
    let extended = [0x0002_fde9_0000_0007u64, 0x0003_fde9_0000_0008]
        .iter()
        .flat_map(|value| value.to_be_bytes())
        .collect::<Vec<u8>>();
    let received = ipv4_body(
        &[
            attribute(OPT_TRANS, code::LARGE_COMMUNITIES, &value),
            attribute(OPT_TRANS, code::EXTENDED_COMMUNITIES, &extended),
        ],
        &["192.0.2.0/24"],
    );
    let (update, problems) = accepted(&received, &ebgp());
    assert!(problems.is_empty(), "{problems:?}");
    let attributes = &update.announced[0].1;
    assert_eq!(
        attributes.large_communities(),
        [
            "4242420001:1:2".parse::<LargeCommunity>().unwrap(),
            "65001:0:4294967295".parse().unwrap()
        ]
    );
    assert_eq!(
        attributes.extended_communities(),
        [0x0002_fde9_0000_0007, 0x0003_fde9_0000_0008]
    );
    // Interpreted, so not kept raw as well.
    assert!(attributes.other().is_empty());
    // Many, repeats dropped all the same.
    let many: Vec<u8> = (0..40u32)
        .chain(0..40)
        .flat_map(|n| large([65001, n, n]))
        .collect();
    let with_many = ipv4_body(
        &[attribute(OPT_TRANS, code::LARGE_COMMUNITIES, &many)],
        &["192.0.2.0/24"],
    );
    let (many, _) = accepted(&with_many, &ebgp());
    let kept = many.announced[0].1.large_communities();
    assert_eq!(kept.len(), 40);
    assert_eq!(kept[39].local1, 39);
    // Out again: one attribute each, in type order, not repeated.
    let messages = encode(Family::Ipv4Unicast, &update.announced, &[], &ebgp());
    let (again, _) = accepted(body(&messages[0]), &ebgp());
    assert_eq!(again.announced, update.announced);
    let encoded = body(&messages[0]);
    let large_value = [large([4_242_420_001, 1, 2]), large([65001, 0, u32::MAX])].concat();
    let wanted = attribute(OPT_TRANS, code::LARGE_COMMUNITIES, &large_value);
    assert_eq!(
        encoded
            .windows(wanted.len())
            .filter(|w| *w == wanted)
            .count(),
        1
    );
    let wanted = attribute(OPT_TRANS, code::EXTENDED_COMMUNITIES, &extended);
    assert_eq!(
        encoded
            .windows(wanted.len())
            .filter(|w| *w == wanted)
            .count(),
        1
    );
}

#[test]
fn route_targets_and_origins_are_read_from_extended_communities() {
    use crate::types::{Administrator, ExtendedKind, route_target_or_origin};
    assert_eq!(
        route_target_or_origin(0x0002_fde9_0000_0007),
        Some((ExtendedKind::Target, Administrator::As(65001), 7))
    );
    assert_eq!(
        route_target_or_origin(0x0203_fcde_3121_0009),
        Some((ExtendedKind::Origin, Administrator::As(4_242_420_001), 9))
    );
    assert_eq!(
        route_target_or_origin(0x0102_c000_0201_0005),
        Some((
            ExtendedKind::Target,
            Administrator::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
            5
        ))
    );
    // Another subtype (0x0b, color is 0x030b), a non-transitive type.
    assert_eq!(route_target_or_origin(0x0300_0000_0000_0001), None);
    assert_eq!(route_target_or_origin(0x4002_fde9_0000_0007), None);
}

#[test]
fn origin_as_is_the_last_as_of_a_final_sequence() {
    use crate::types::AsPath;
    assert_eq!(
        AsPath::sequence(&[65001, 65002, 65003]).origin_as(),
        Some(65003)
    );
    let aggregate: AsPath = vec![
        AsSegment::Sequence(vec![65001]),
        AsSegment::Set(vec![65002, 65003]),
    ]
    .into();
    assert_eq!(aggregate.origin_as(), None);
    assert_eq!(AsPath::default().origin_as(), None);
}
