use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    ExtendedNextHopEncoding, ExtendedNextHopEncodingCapability, FourOctetAsCapability,
    GracefulRestartAddressFamily, GracefulRestartCapability, MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressFamily;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::*;
use crate::types::AS_TRANS;

const LOCAL_AS: Asn = 4_200_000_002;
const PEER_AS: Asn = 4_200_000_001;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const OUT: ConnectionId = ConnectionId(1);
const IN: ConnectionId = ConnectionId(2);
const V4: Family = Family::Ipv4Unicast;
const V6: Family = Family::Ipv6Unicast;

/// An OPEN as FRR 8.4 sends it with `bgp graceful-restart`, written
/// octet by octet from RFC 4271 4.2 and the capability RFCs: AS
/// 4200000001 (AS_TRANS in the 2-octet field), hold time 180, identifier
/// 192.0.2.2, each capability in its own optional parameter.
const FRR_OPEN: &str = "
    ffffffff ffffffff ffffffff ffffffff 0065 01
    04 5ba0 00b4 c0000202 48
    02 06 01 04 0001 00 01                  # MP-BGP IPv4 unicast
    02 06 01 04 0002 00 01                  # MP-BGP IPv6 unicast
    02 02 80 00                             # route refresh (pre-standard code)
    02 02 02 00                             # route refresh
    02 02 46 00                             # enhanced route refresh
    02 06 41 04 fa56ea01                    # 4-octet AS 4200000001
    02 0a 45 08 0001 01 01 0002 01 01       # ADD-PATH receive, IPv4 and IPv6
    02 08 49 06 04 66727231 00              # FQDN frr1
    02 0c 40 0a 4078 0001 01 80 0002 01 80  # graceful restart: N, 120 s, F for both
";

/// Hex octets; whitespace is skipped, and `#` comments to the end of
/// the line.
fn hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&digits[at..at + 2], 16).unwrap())
        .collect()
}

fn frr_open() -> Vec<u8> {
    hex(FRR_OPEN)
}

fn at(t0: Instant, seconds: f64) -> Instant {
    t0 + Duration::from_secs_f64(seconds)
}

fn config() -> SessionConfig {
    SessionConfig {
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: true,
        }),
        ..SessionConfig::new(LOCAL_AS, PEER_AS, LOCAL_ID)
    }
}

fn multiprotocol(family: Family) -> BgpCapability {
    BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(address_type(
        family,
    )))
}

fn graceful_restart(restarted: bool, time: u16, families: &[Family]) -> BgpCapability {
    let families: Vec<GracefulRestartAddressFamily> = families
        .iter()
        .map(|family| GracefulRestartAddressFamily::new(true, address_type(*family)))
        .collect();
    BgpCapability::GracefulRestartCapability(GracefulRestartCapability::new(
        restarted, false, time, families,
    ))
}

/// A neighbor's OPEN built with the library.
fn open(asn: Asn, hold_time: u16, id: Ipv4Addr, capabilities: Vec<BgpCapability>) -> Vec<u8> {
    let my_as = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
    let parameters = if capabilities.is_empty() {
        vec![]
    } else {
        vec![BgpOpenMessageParameter::Capabilities(capabilities.into())]
    };
    write_message(&BgpMessage::Open(BgpOpenMessage::new(
        my_as, hold_time, id, parameters,
    )))
}

/// A neighbor with MP-BGP for both families, route refresh and 4-octet
/// AS, but no graceful restart.
fn plain_open(hold_time: u16) -> Vec<u8> {
    open(
        PEER_AS,
        hold_time,
        PEER_ID,
        vec![
            multiprotocol(V4),
            multiprotocol(V6),
            BgpCapability::RouteRefresh,
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    )
}

fn notification(code: u8, subcode: u8, data: &[u8]) -> Notification {
    Notification {
        code,
        subcode,
        data: data.to_vec(),
    }
}

/// Feeds bytes in odd pieces: 1, 7, 13, 2, 29, 64 octets, again.
fn feed(session: &mut Session, now: Instant, id: ConnectionId, bytes: &[u8]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut rest = bytes;
    for size in [1, 7, 13, 2, 29, 64].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        actions.extend(session.handle(now, Input::Received(id, piece)));
        rest = tail;
    }
    actions
}

/// Start, connect, and take the neighbor's OPEN and KEEPALIVE (in one
/// stream, cut in odd places).
fn establish(config: SessionConfig, peer_open: &[u8], now: Instant) -> (Session, Negotiated) {
    let mut session = Session::new(config).unwrap();
    assert_eq!(session.handle(now, Input::Start), [Action::Connect]);
    let actions = session.handle(now, Input::Connected(OUT));
    assert!(
        matches!(actions.as_slice(), [Action::Send(OUT, _)]),
        "{actions:?}"
    );
    let mut stream = peer_open.to_vec();
    stream.extend(keepalive_message());
    let actions = feed(&mut session, now, OUT, &stream);
    match actions.as_slice() {
        [
            Action::Send(OUT, keepalive),
            Action::Established(negotiated),
        ] if *keepalive == keepalive_message() => {
            assert_eq!(session.state(), State::Established);
            assert_eq!(session.negotiated(), Some(negotiated));
            // The OPEN and the KEEPALIVE, however they were split.
            assert_eq!(session.messages_received(), 2);
            (session, negotiated.clone())
        }
        other => panic!("not established: {other:?}"),
    }
}

/// A session in OpenSent on `OUT`.
fn open_sent(config: SessionConfig, now: Instant) -> Session {
    let mut session = Session::new(config).unwrap();
    session.handle(now, Input::Start);
    session.handle(now, Input::Connected(OUT));
    assert_eq!(session.state(), State::OpenSent);
    session
}

/// What sending `notification` and closing looks like.
fn closed_with(id: ConnectionId, notification: Notification, was_established: bool) -> Vec<Action> {
    vec![
        Action::Send(id, notification_message(&notification)),
        Action::Disconnect(id),
        Action::Down(Down {
            reason: DownReason::Sent(notification),
            was_established,
            retain: None,
        }),
    ]
}

fn down_of(actions: &[Action]) -> &Down {
    actions
        .iter()
        .find_map(|action| match action {
            Action::Down(down) => Some(down),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Down in {actions:?}"))
}

#[test]
fn our_open_announces_what_is_configured() {
    let config = SessionConfig {
        extended_next_hop_ipv4: true,
        ..config()
    };
    let t0 = Instant::now();
    let mut session = Session::new(config).unwrap();
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
    assert_eq!(session.state(), State::Connect);
    let actions = session.handle(t0, Input::Connected(OUT));
    let [Action::Send(OUT, bytes)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let mut context = BgpParsingContext::default();
    let Ok(BgpMessage::Open(open)) = BgpMessage::parse(&mut SliceReader::new(bytes), &mut context)
    else {
        panic!("not an OPEN");
    };
    assert_eq!(open.version(), 4);
    assert_eq!(open.my_as(), 23456, "AS_TRANS for a 4-octet AS");
    assert_eq!(open.hold_time(), 90);
    assert_eq!(open.bgp_id(), LOCAL_ID);
    let expected = [
        multiprotocol(V4),
        multiprotocol(V6),
        BgpCapability::RouteRefresh,
        BgpCapability::ExtendedNextHopEncoding(ExtendedNextHopEncodingCapability::new(vec![
            ExtendedNextHopEncoding::new(AddressType::Ipv4Unicast, AddressFamily::IPv6),
        ])),
        graceful_restart(false, 120, &[V4, V6]),
        BgpCapability::FourOctetAs(FourOctetAsCapability::new(LOCAL_AS)),
    ];
    let announced: Vec<BgpCapability> = open.capabilities().into_iter().cloned().collect();
    assert_eq!(announced, expected);
    assert_eq!(session.state(), State::OpenSent);
}

#[test]
fn our_open_carries_a_two_octet_as_as_is_and_the_restart_bit() {
    let config = SessionConfig {
        local_as: 65001,
        route_refresh: false,
        families: vec![V6],
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 300,
            restarting: true,
            forwarding_preserved: true,
        }),
        ..config()
    };
    let message = open_message(&config);
    let mut context = BgpParsingContext::default();
    let Ok(BgpMessage::Open(open)) =
        BgpMessage::parse(&mut SliceReader::new(&message), &mut context)
    else {
        panic!("not an OPEN");
    };
    assert_eq!(open.my_as(), 65001);
    let announced: Vec<BgpCapability> = open.capabilities().into_iter().cloned().collect();
    assert_eq!(
        announced,
        [
            multiprotocol(V6),
            graceful_restart(true, 300, &[V6]),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(65001)),
        ]
    );
}

#[test]
fn frr_open_establishes_with_four_octet_as() {
    let t0 = Instant::now();
    let (_, negotiated) = establish(config(), &frr_open(), t0);
    assert_eq!(
        negotiated,
        Negotiated {
            local_as: LOCAL_AS,
            remote_as: PEER_AS,
            remote_id: PEER_ID,
            hold_time: 90,
            four_octet_as: true,
            families: vec![V4, V6],
            route_refresh: true,
            extended_next_hop_ipv4: false,
            extended_messages: false,
            peer_graceful_restart: Some(GracefulRestart {
                restarted: false,
                restart_time: 120,
                preserved: vec![V4, V6],
            }),
        }
    );
    assert!(negotiated.is_ebgp());
}

#[test]
fn open_exchange_goes_through_open_confirm() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    let actions = feed(&mut session, t0, OUT, &frr_open());
    assert_eq!(actions, [Action::Send(OUT, keepalive_message())]);
    assert_eq!(session.state(), State::OpenConfirm);
    assert_eq!(session.negotiated(), None);
    let actions = feed(&mut session, t0, OUT, &keepalive_message());
    assert!(matches!(actions.as_slice(), [Action::Established(_)]));
}

#[test]
fn families_are_the_intersection() {
    let t0 = Instant::now();
    let ipv6_only = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            multiprotocol(V6),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    );
    let (_, negotiated) = establish(config(), &ipv6_only, t0);
    assert_eq!(negotiated.families, [V6]);
    assert!(!negotiated.route_refresh);

    // No multiprotocol capability at all: IPv4 unicast (RFC 4760 8).
    let bare = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            PEER_AS,
        ))],
    );
    let (_, negotiated) = establish(config(), &bare, t0);
    assert_eq!(negotiated.families, [V4]);
    let (_, negotiated) = establish(
        SessionConfig {
            families: vec![V6],
            ..config()
        },
        &bare,
        t0,
    );
    assert_eq!(negotiated.families, []);
}

#[test]
fn two_octet_neighbor_is_known_by_its_as_field() {
    let t0 = Instant::now();
    let config = SessionConfig {
        remote_as: 65002,
        ..config()
    };
    let (_, negotiated) = establish(config, &open(65002, 30, PEER_ID, vec![]), t0);
    assert_eq!(negotiated.remote_as, 65002);
    assert!(!negotiated.four_octet_as);
    assert_eq!(negotiated.hold_time, 30);
    assert_eq!(negotiated.peer_graceful_restart, None);
}

#[test]
fn extended_next_hop_needs_both_sides() {
    let t0 = Instant::now();
    let with_extended_next_hop = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            multiprotocol(V4),
            BgpCapability::ExtendedNextHopEncoding(ExtendedNextHopEncodingCapability::new(vec![
                ExtendedNextHopEncoding::new(AddressType::Ipv4Unicast, AddressFamily::IPv6),
            ])),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    );
    let configured = SessionConfig {
        extended_next_hop_ipv4: true,
        ..config()
    };
    let (_, negotiated) = establish(configured.clone(), &with_extended_next_hop, t0);
    assert!(negotiated.extended_next_hop_ipv4);
    let (_, negotiated) = establish(config(), &with_extended_next_hop, t0);
    assert!(!negotiated.extended_next_hop_ipv4);
    let (_, negotiated) = establish(configured, &plain_open(90), t0);
    assert!(!negotiated.extended_next_hop_ipv4);
}

#[test]
fn a_malformed_capability_costs_only_itself() {
    // One parameter: an MP-BGP capability of unknown AFI 0x4000, then
    // the 4-octet AS.
    let message = hex("
        ffffffff ffffffff ffffffff ffffffff 002b 01
        04 5ba0 005a c0000202 0e
        02 0c 01 04 4000 00 01 41 04 fa56ea01
    ");
    let t0 = Instant::now();
    let (_, negotiated) = establish(config(), &message, t0);
    assert_eq!(negotiated.remote_as, PEER_AS);
    assert!(negotiated.four_octet_as);
    // The peer announced multiprotocol, none of ours.
    assert_eq!(negotiated.families, []);
}

#[test]
fn bad_peer_as_draws_2_2() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    let actions = feed(&mut session, t0, OUT, &open(65099, 90, PEER_ID, vec![]));
    assert_eq!(actions, closed_with(OUT, notification(2, 2, &[]), false));
    // The 4-octet capability wins over the 2-octet field.
    let mut session = open_sent(config(), t0);
    let lying = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            4_200_000_099,
        ))],
    );
    let actions = feed(&mut session, t0, OUT, &lying);
    assert_eq!(actions, closed_with(OUT, notification(2, 2, &[]), false));
    assert_eq!(session.state(), State::Active);
}

#[test]
fn hold_time_one_or_two_draws_2_6() {
    let t0 = Instant::now();
    for hold_time in [1u16, 2] {
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &plain_open(hold_time));
        let expected = notification(2, 6, &hold_time.to_be_bytes());
        assert_eq!(actions, closed_with(OUT, expected, false));
    }
}

#[test]
fn bad_identifier_draws_2_3() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    let actions = feed(
        &mut session,
        t0,
        OUT,
        &open(PEER_AS, 90, Ipv4Addr::UNSPECIFIED, vec![]),
    );
    assert_eq!(
        actions,
        closed_with(OUT, notification(2, 3, &[0, 0, 0, 0]), false)
    );

    // iBGP: the neighbor may not share our identifier.
    let internal = SessionConfig {
        remote_as: LOCAL_AS,
        ..config()
    };
    let same_id = open(
        LOCAL_AS,
        90,
        LOCAL_ID,
        vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            LOCAL_AS,
        ))],
    );
    let mut session = open_sent(internal, t0);
    let actions = feed(&mut session, t0, OUT, &same_id);
    assert_eq!(
        actions,
        closed_with(OUT, notification(2, 3, &LOCAL_ID.octets()), false)
    );

    // eBGP: it may (RFC 6286).
    let same_id = open(
        PEER_AS,
        90,
        LOCAL_ID,
        vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            PEER_AS,
        ))],
    );
    let (_, negotiated) = establish(config(), &same_id, t0);
    assert_eq!(negotiated.remote_id, LOCAL_ID);
}

#[test]
fn unsupported_version_draws_2_1() {
    let t0 = Instant::now();
    let mut message = plain_open(90);
    message[HEADER_LEN] = 3;
    let mut session = open_sent(config(), t0);
    let actions = feed(&mut session, t0, OUT, &message);
    assert_eq!(
        actions,
        closed_with(OUT, notification(2, 1, &[0, 4]), false)
    );
}

#[test]
fn keepalives_every_third_of_hold_and_hold_expiry_after_silence() {
    let t0 = Instant::now();
    let (mut session, negotiated) = establish(config(), &plain_open(9), t0);
    assert_eq!(negotiated.hold_time, 9);
    assert_eq!(session.next_deadline(), Some(at(t0, 3.0)));
    assert_eq!(session.handle(at(t0, 2.999), Input::Tick), []);
    let keepalive = vec![Action::Send(OUT, keepalive_message())];
    assert_eq!(session.handle(at(t0, 3.0), Input::Tick), keepalive);
    assert_eq!(session.next_deadline(), Some(at(t0, 6.0)));
    assert_eq!(session.handle(at(t0, 6.0), Input::Tick), keepalive);
    assert_eq!(session.next_deadline(), Some(at(t0, 9.0)));
    assert_eq!(session.handle(at(t0, 8.999), Input::Tick), []);
    assert_eq!(session.state(), State::Established);
    let actions = session.handle(at(t0, 9.0), Input::Tick);
    assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), true));
    assert_eq!(session.state(), State::Active);
}

#[test]
fn what_the_neighbor_sends_restarts_the_hold_timer() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(9), t0);
    assert_eq!(
        feed(&mut session, at(t0, 5.0), OUT, &keepalive_message()),
        []
    );
    session.handle(at(t0, 6.0), Input::Tick);
    assert_eq!(
        session.handle(at(t0, 9.0), Input::Tick),
        [Action::Send(OUT, keepalive_message())]
    );
    let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
    assert_eq!(
        feed(&mut session, at(t0, 13.0), OUT, &update),
        [Action::Update(vec![0, 0, 0, 0])]
    );
    assert_eq!(
        session.handle(at(t0, 21.999), Input::Tick).len(),
        1,
        "one keepalive"
    );
    let actions = session.handle(at(t0, 22.0), Input::Tick);
    assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), true));
}

#[test]
fn sending_an_update_postpones_the_keepalive() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    assert_eq!(session.next_deadline(), Some(at(t0, 30.0)));
    let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
    let actions = session.handle(at(t0, 20.0), Input::SendUpdate(update.clone()));
    assert_eq!(actions, [Action::Send(OUT, update)]);
    assert_eq!(session.next_deadline(), Some(at(t0, 50.0)));
}

#[test]
fn open_sent_waits_four_minutes_for_the_open() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    assert_eq!(session.next_deadline(), Some(at(t0, 240.0)));
    assert_eq!(session.handle(at(t0, 239.9), Input::Tick), []);
    let actions = session.handle(at(t0, 240.0), Input::Tick);
    assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), false));
}

#[test]
fn hold_time_zero_runs_no_timers() {
    let t0 = Instant::now();
    let (mut session, negotiated) = establish(config(), &plain_open(0), t0);
    assert_eq!(negotiated.hold_time, 0);
    assert_eq!(session.next_deadline(), None);
    assert_eq!(session.handle(at(t0, 100_000.0), Input::Tick), []);
    assert_eq!(session.state(), State::Established);
}

#[test]
fn collision_keeps_our_connection_when_our_identifier_is_higher() {
    let t0 = Instant::now();
    let config = SessionConfig {
        router_id: Ipv4Addr::new(192, 0, 2, 9),
        ..config()
    };
    let mut session = open_sent(config, t0);
    let actions = session.handle(t0, Input::Accepted(IN));
    assert!(
        matches!(actions.as_slice(), [Action::Send(IN, _)]),
        "{actions:?}"
    );
    // The neighbor's OPEN on its own connection: that one goes.
    let actions = feed(&mut session, t0, IN, &plain_open(90));
    let cease = notification(6, 7, &[]);
    assert_eq!(
        actions,
        [
            Action::Send(IN, notification_message(&cease)),
            Action::Disconnect(IN)
        ]
    );
    assert_eq!(session.state(), State::OpenSent);
    let actions = feed(&mut session, t0, OUT, &plain_open(90));
    assert_eq!(actions, [Action::Send(OUT, keepalive_message())]);
    let actions = feed(&mut session, t0, OUT, &keepalive_message());
    assert!(matches!(actions.as_slice(), [Action::Established(_)]));
}

#[test]
fn collision_keeps_our_connection_when_its_open_comes_first() {
    let t0 = Instant::now();
    let config = SessionConfig {
        router_id: Ipv4Addr::new(192, 0, 2, 9),
        ..config()
    };
    let mut session = open_sent(config, t0);
    session.handle(t0, Input::Accepted(IN));
    let actions = feed(&mut session, t0, OUT, &plain_open(90));
    let cease = notification(6, 7, &[]);
    assert_eq!(
        actions,
        [
            Action::Send(IN, notification_message(&cease)),
            Action::Disconnect(IN),
            Action::Send(OUT, keepalive_message()),
        ]
    );
    assert_eq!(session.state(), State::OpenConfirm);
}

#[test]
fn collision_keeps_the_neighbors_connection_when_its_identifier_is_higher() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    session.handle(t0, Input::Accepted(IN));
    let actions = feed(&mut session, t0, OUT, &plain_open(90));
    let cease = notification(6, 7, &[]);
    assert_eq!(
        actions,
        [
            Action::Send(OUT, notification_message(&cease)),
            Action::Disconnect(OUT)
        ]
    );
    let actions = feed(&mut session, t0, IN, &plain_open(90));
    assert_eq!(actions, [Action::Send(IN, keepalive_message())]);
    let actions = feed(&mut session, t0, IN, &keepalive_message());
    assert!(matches!(actions.as_slice(), [Action::Established(_)]));
    // No connection attempt left behind: only the session's timers.
    assert_eq!(session.next_deadline(), Some(at(t0, 30.0)));
}

#[test]
fn collision_rule() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 2);
    assert_eq!(resolve_collision(high, 1, low, 2), Direction::Outgoing);
    assert_eq!(resolve_collision(low, 2, high, 1), Direction::Incoming);
    // Equal identifiers: the higher AS (RFC 6286).
    assert_eq!(
        resolve_collision(low, 65002, low, 65001),
        Direction::Outgoing
    );
    assert_eq!(
        resolve_collision(low, 65001, low, 65002),
        Direction::Incoming
    );
}

#[test]
fn a_new_connection_loses_to_an_established_session() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = session.handle(t0, Input::Accepted(IN));
    assert!(matches!(actions.as_slice(), [Action::Send(IN, _)]));
    let actions = feed(&mut session, t0, IN, &plain_open(90));
    let cease = notification(6, 7, &[]);
    assert_eq!(
        actions,
        [
            Action::Send(IN, notification_message(&cease)),
            Action::Disconnect(IN)
        ]
    );
    assert_eq!(session.state(), State::Established);
}

#[test]
fn a_restarted_neighbor_replaces_its_established_session() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &frr_open(), t0);
    session.handle(at(t0, 1.0), Input::Accepted(IN));
    let restarted = hex(&FRR_OPEN.replace("4078", "c078"));
    let actions = feed(&mut session, at(t0, 1.0), IN, &restarted);
    let down = Down {
        reason: DownReason::PeerRestarted,
        was_established: true,
        retain: Some(Retention {
            families: vec![V4, V6],
            duration: Duration::from_secs(120),
        }),
    };
    assert_eq!(
        actions,
        [
            Action::Disconnect(OUT),
            Action::Down(down),
            Action::Send(IN, keepalive_message()),
        ]
    );
    let actions = feed(&mut session, at(t0, 1.0), IN, &keepalive_message());
    let [Action::Established(negotiated)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert!(negotiated.peer_graceful_restart.as_ref().unwrap().restarted);
}

#[test]
fn a_second_incoming_connection_replaces_a_stale_one() {
    let t0 = Instant::now();
    let mut session = Session::new(SessionConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    session.handle(t0, Input::Start);
    session.handle(t0, Input::Accepted(IN));
    let actions = session.handle(t0, Input::Accepted(ConnectionId(3)));
    let cease = notification(6, 7, &[]);
    assert_eq!(
        actions,
        [
            Action::Send(ConnectionId(3), session.open.clone()),
            Action::Send(IN, notification_message(&cease)),
            Action::Disconnect(IN),
        ]
    );
    assert_eq!(session.state(), State::OpenSent);
    assert_eq!(session.next_deadline(), Some(at(t0, 240.0)));
}

#[test]
fn connect_retry_backs_off_to_a_minute() {
    let t0 = Instant::now();
    let mut session = Session::new(config()).unwrap();
    let mut now = t0;
    assert_eq!(session.handle(now, Input::Start), [Action::Connect]);
    let mut waits = Vec::new();
    for _ in 0..9 {
        assert_eq!(session.handle(now, Input::ConnectFailed), []);
        assert_eq!(session.state(), State::Active);
        let next = session.next_deadline().unwrap();
        waits.push((next - now).as_secs_f64());
        assert_eq!(
            session.handle(next - Duration::from_millis(1), Input::Tick),
            []
        );
        now = next;
        assert_eq!(session.handle(now, Input::Tick), [Action::Connect]);
        assert_eq!(session.state(), State::Connect);
    }
    assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
}

#[test]
fn a_slow_connect_is_abandoned_and_tried_again() {
    let t0 = Instant::now();
    let mut session = Session::new(config()).unwrap();
    session.handle(t0, Input::Start);
    assert_eq!(session.next_deadline(), Some(at(t0, 1.0)));
    assert_eq!(
        session.handle(at(t0, 1.0), Input::Tick),
        [Action::CancelConnect, Action::Connect]
    );
    assert_eq!(session.next_deadline(), Some(at(t0, 3.0)));
    // A late answer to an abandoned attempt is refused.
    session.handle(at(t0, 2.0), Input::Stop);
    assert_eq!(
        session.handle(at(t0, 2.0), Input::Connected(OUT)),
        [Action::Disconnect(OUT)]
    );
}

#[test]
fn a_session_that_went_down_connects_again_from_the_first_wait() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = session.handle(at(t0, 5.0), Input::Closed(OUT));
    assert_eq!(
        actions,
        [Action::Down(Down {
            reason: DownReason::Closed,
            was_established: true,
            retain: None,
        })]
    );
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.next_deadline(), Some(at(t0, 6.0)));
    assert_eq!(session.handle(at(t0, 6.0), Input::Tick), [Action::Connect]);
}

#[test]
fn retry_now_cuts_the_wait_short() {
    let t0 = Instant::now();
    let mut session = Session::new(config()).unwrap();
    assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
    // Connecting, or connected: nothing to cut short.
    assert_eq!(session.handle(t0, Input::RetryNow), []);
    session.handle(t0, Input::ConnectFailed);
    session.handle(at(t0, 1.0), Input::Tick);
    session.handle(at(t0, 1.0), Input::ConnectFailed);
    assert!(session.next_deadline().unwrap() > at(t0, 2.0));
    // Waiting to connect again: now.
    assert_eq!(
        session.handle(at(t0, 1.5), Input::RetryNow),
        [Action::Connect]
    );
    assert_eq!(session.handle(at(t0, 1.5), Input::RetryNow), []);
    // A passive session still never connects.
    let mut passive = Session::new(SessionConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    passive.handle(t0, Input::Start);
    assert_eq!(passive.handle(t0, Input::RetryNow), []);
}

#[test]
fn a_passive_session_never_connects() {
    let t0 = Instant::now();
    let mut session = Session::new(SessionConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    assert_eq!(session.handle(t0, Input::Start), []);
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.next_deadline(), None);
    let actions = session.handle(t0, Input::Accepted(IN));
    assert_eq!(actions, [Action::Send(IN, session.open.clone())]);
    let actions = session.handle(t0, Input::Closed(IN));
    assert!(matches!(actions.as_slice(), [Action::Down(_)]));
    assert_eq!(session.next_deadline(), None);
    assert_eq!(session.handle(at(t0, 3600.0), Input::Tick), []);
}

#[test]
fn connections_are_refused_before_start() {
    let t0 = Instant::now();
    let mut session = Session::new(config()).unwrap();
    assert_eq!(
        session.handle(t0, Input::Accepted(IN)),
        [Action::Disconnect(IN)]
    );
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn a_received_notification_ends_the_session_without_reply() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &frr_open(), t0);
    let shutdown = hex("
        ffffffff ffffffff ffffffff ffffffff 0021 03
        06 02 0b 6d61696e74656e616e6365
    ");
    let actions = feed(&mut session, t0, OUT, &shutdown);
    let received = notification(6, 2, b"\x0bmaintenance");
    assert_eq!(
        actions,
        [
            Action::Disconnect(OUT),
            Action::Down(Down {
                reason: DownReason::Received(received),
                was_established: true,
                retain: None,
            }),
        ]
    );
    assert_eq!(
        down_of(&actions).reason.to_string(),
        "received NOTIFICATION Cease / Administrative Shutdown (6/2): \"maintenance\""
    );
}

#[test]
fn notifications_read_as_words() {
    assert_eq!(
        describe(&notification(4, 0, &[])),
        "Hold Timer Expired (4/0)"
    );
    assert_eq!(
        describe(&notification(6, 7, &[])),
        "Cease / Connection Collision Resolution (6/7)"
    );
    assert_eq!(
        describe(&notification(6, 42, &[])),
        "Cease / subcode 42 (6/42)"
    );
    assert_eq!(
        describe(&notification(1, 2, &[0x10, 0x01])),
        "Message Header Error / Bad Message Length (1/2), data 1001"
    );
    assert_eq!(
        describe(&notification(9, 9, &[])),
        "unknown error code / subcode 9 (9/9)"
    );
    // A neighbor's code this speaker does not know still ends the session.
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = feed(
        &mut session,
        t0,
        OUT,
        &frame(message_type::NOTIFICATION, &[6, 42]),
    );
    assert_eq!(
        down_of(&actions).reason,
        DownReason::Received(notification(6, 42, &[]))
    );
}

#[test]
fn malformed_headers_draw_message_header_errors() {
    let marker = "ffffffff ffffffff ffffffff ffffffff";
    let cases = [
        ("fe", notification(1, 1, &[])),
        (&format!("fffffffe {marker}"), notification(1, 1, &[])),
        (
            &format!("{marker} 0012 04"),
            notification(1, 2, &[0x00, 0x12]),
        ),
        (
            &format!("{marker} 1001 02"),
            notification(1, 2, &[0x10, 0x01]),
        ),
        (&format!("{marker} 0013 09"), notification(1, 3, &[9])),
        (
            &format!("{marker} 0014 04 00"),
            notification(1, 2, &[0x00, 0x14]),
        ),
        (
            &format!("{marker} 001c 01"),
            notification(1, 2, &[0x00, 0x1c]),
        ),
        (
            &format!("{marker} 0014 03 06"),
            notification(1, 2, &[0x00, 0x14]),
        ),
        (
            &format!("{marker} 0018 05"),
            notification(1, 2, &[0x00, 0x18]),
        ),
    ];
    let t0 = Instant::now();
    for (bytes, expected) in cases {
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &hex(bytes));
        assert_eq!(actions, closed_with(OUT, expected, false), "{bytes}");
    }
    // The same when established, after good messages in the same read.
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let mut stream = keepalive_message();
    stream.extend(hex(&format!("{marker} 0013 09")));
    let actions = session.handle(t0, Input::Received(OUT, &stream));
    assert_eq!(actions, closed_with(OUT, notification(1, 3, &[9]), true));
}

#[test]
fn unexpected_messages_draw_fsm_errors() {
    let t0 = Instant::now();
    let mut session = open_sent(config(), t0);
    let actions = feed(&mut session, t0, OUT, &keepalive_message());
    assert_eq!(actions, closed_with(OUT, notification(5, 1, &[]), false));

    let mut session = open_sent(config(), t0);
    feed(&mut session, t0, OUT, &plain_open(90));
    let actions = feed(
        &mut session,
        t0,
        OUT,
        &frame(message_type::UPDATE, &[0, 0, 0, 0]),
    );
    assert_eq!(actions, closed_with(OUT, notification(5, 2, &[]), false));

    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = feed(&mut session, t0, OUT, &plain_open(90));
    assert_eq!(actions, closed_with(OUT, notification(5, 3, &[]), true));
}

#[test]
fn routes_are_retained_on_hold_expiry_and_close_when_the_neighbor_can_restart() {
    let t0 = Instant::now();
    let retention = Some(Retention {
        families: vec![V4, V6],
        duration: Duration::from_secs(120),
    });
    let (mut session, _) = establish(config(), &frr_open(), t0);
    let actions = session.handle(at(t0, 90.0), Input::Tick);
    let down = down_of(&actions);
    assert_eq!(down.reason, DownReason::Sent(notification(4, 0, &[])));
    assert_eq!(down.retain, retention);

    let (mut session, _) = establish(config(), &frr_open(), t0);
    let actions = session.handle(at(t0, 10.0), Input::Closed(OUT));
    assert_eq!(down_of(&actions).retain, retention);
}

#[test]
fn routes_are_not_retained_without_graceful_restart_on_both_sides() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = session.handle(at(t0, 90.0), Input::Tick);
    assert_eq!(down_of(&actions).retain, None);

    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = session.handle(t0, Input::Closed(OUT));
    assert_eq!(down_of(&actions).retain, None);

    // We did not announce it: we do not help either.
    let without = SessionConfig {
        graceful_restart: None,
        ..config()
    };
    let (mut session, _) = establish(without, &frr_open(), t0);
    let actions = session.handle(t0, Input::Closed(OUT));
    assert_eq!(down_of(&actions).retain, None);
}

#[test]
fn routes_are_not_retained_after_a_notification() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &frr_open(), t0);
    let actions = feed(
        &mut session,
        t0,
        OUT,
        &frame(message_type::NOTIFICATION, &[6, 4]),
    );
    assert_eq!(down_of(&actions).retain, None);

    let (mut session, _) = establish(config(), &frr_open(), t0);
    let actions = session.handle(t0, Input::Reset(notification(3, 1, &[])));
    assert_eq!(down_of(&actions).retain, None);

    let (mut session, _) = establish(config(), &frr_open(), t0);
    let actions = session.handle(t0, Input::Stop);
    assert_eq!(down_of(&actions).retain, None);
}

#[test]
fn retained_families_are_those_the_neighbor_listed() {
    let t0 = Instant::now();
    let ipv4_restarts = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            multiprotocol(V4),
            multiprotocol(V6),
            graceful_restart(false, 30, &[V4]),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    );
    let (mut session, _) = establish(config(), &ipv4_restarts, t0);
    let actions = session.handle(t0, Input::Closed(OUT));
    assert_eq!(
        down_of(&actions).retain,
        Some(Retention {
            families: vec![V4],
            duration: Duration::from_secs(30),
        })
    );
    // A helper that lists no family keeps nothing of its own.
    let helper = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            graceful_restart(false, 120, &[]),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    );
    let (mut session, negotiated) = establish(config(), &helper, t0);
    assert!(negotiated.peer_graceful_restart.is_some());
    let actions = session.handle(t0, Input::Closed(OUT));
    assert_eq!(down_of(&actions).retain, None);
}

#[test]
fn updates_go_up_as_bodies_and_down_as_whole_messages() {
    let t0 = Instant::now();
    let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
    let mut session = open_sent(config(), t0);
    assert_eq!(session.handle(t0, Input::SendUpdate(update.clone())), []);

    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let mut stream = update.clone();
    stream.extend(frame(message_type::UPDATE, &[0, 0, 0, 3, 0x40, 1, 1, 0]));
    assert_eq!(
        feed(&mut session, t0, OUT, &stream),
        [
            Action::Update(vec![0, 0, 0, 0]),
            Action::Update(vec![0, 0, 0, 3, 0x40, 1, 1, 0]),
        ]
    );
    assert_eq!(
        session.handle(t0, Input::SendUpdate(update.clone())),
        [Action::Send(OUT, update)]
    );
    // Not a whole UPDATE: dropped.
    assert_eq!(session.handle(t0, Input::SendUpdate(vec![0, 0, 0, 0])), []);
    assert_eq!(
        session.handle(t0, Input::SendUpdate(keepalive_message())),
        []
    );
}

/// A neighbor like `plain_open`, with extended messages.
fn extended_open() -> Vec<u8> {
    open(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            multiprotocol(V4),
            multiprotocol(V6),
            BgpCapability::ExtendedMessage,
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
        ],
    )
}

/// An UPDATE of `length` octets in all (an unknown optional attribute
/// fills it; the session does not read bodies).
fn update_of(length: usize) -> Vec<u8> {
    let value = length - HEADER_LEN - 4 - 4;
    let mut body = vec![0, 0];
    body.extend_from_slice(&((value + 4) as u16).to_be_bytes());
    body.extend_from_slice(&[0xd0, 99]);
    body.extend_from_slice(&(value as u16).to_be_bytes());
    body.resize(body.len() + value, 0);
    let message = frame(message_type::UPDATE, &body);
    assert_eq!(message.len(), length);
    message
}

#[test]
fn extended_messages_are_offered_and_need_both_sides() {
    let t0 = Instant::now();
    let extended = SessionConfig {
        extended_messages: true,
        ..config()
    };
    // Offered: capability 6 with no value, in our OPEN.
    let ours = open_message(&extended);
    let parameters = &ours[HEADER_LEN + 10..];
    let (_, codes) = capabilities_in(parameters);
    assert!(codes.contains(&EXTENDED_MESSAGE_CAPABILITY), "{codes:?}");
    assert!(
        !capabilities_in(&open_message(&config())[HEADER_LEN + 10..])
            .1
            .contains(&6)
    );

    let (_, negotiated) = establish(extended.clone(), &extended_open(), t0);
    assert!(negotiated.extended_messages);
    assert_eq!(negotiated.max_message_len(), 65535);
    let (_, negotiated) = establish(extended, &plain_open(90), t0);
    assert!(!negotiated.extended_messages);
    assert_eq!(negotiated.max_message_len(), 4096);
    let (_, negotiated) = establish(config(), &extended_open(), t0);
    assert!(!negotiated.extended_messages);
}

#[test]
fn large_updates_both_ways_with_extended_messages() {
    let t0 = Instant::now();
    let extended = SessionConfig {
        extended_messages: true,
        ..config()
    };
    let (mut session, _) = establish(extended, &extended_open(), t0);
    for length in [4097, 20_000, 65535] {
        let update = update_of(length);
        let actions = feed(&mut session, t0, OUT, &update);
        assert_eq!(
            actions,
            [Action::Update(update[HEADER_LEN..].to_vec())],
            "{length}"
        );
        assert_eq!(
            session.handle(t0, Input::SendUpdate(update.clone())),
            [Action::Send(OUT, update)],
            "{length}"
        );
    }
    // KEEPALIVE stays 19 octets, OPEN (refused here anyway) 4096.
    let mut long_open = frame(message_type::OPEN, &[0; 4097 - HEADER_LEN]);
    long_open.truncate(HEADER_LEN);
    let actions = feed(&mut session, t0, OUT, &long_open);
    assert_eq!(
        actions,
        closed_with(OUT, notification(1, 2, &[0x10, 0x01]), true)
    );
}

#[test]
fn an_update_over_4096_octets_without_extended_messages_is_a_bad_length() {
    let t0 = Instant::now();
    // We offered, the neighbor did not: not negotiated.
    let extended = SessionConfig {
        extended_messages: true,
        ..config()
    };
    let (mut session, _) = establish(extended, &plain_open(90), t0);
    let update = update_of(4097);
    // Refused before the body arrives: the header is enough.
    let actions = feed(&mut session, t0, OUT, &update[..HEADER_LEN]);
    assert_eq!(
        actions,
        closed_with(OUT, notification(1, 2, &[0x10, 0x01]), true)
    );
    // Nor do we send one.
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    assert_eq!(session.handle(t0, Input::SendUpdate(update_of(4097))), []);
    let fits = update_of(4096);
    assert_eq!(
        session.handle(t0, Input::SendUpdate(fits.clone())),
        [Action::Send(OUT, fits)]
    );
}

#[test]
fn route_refresh_both_ways() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let refresh_ipv6 = route_refresh_message(V6);
    assert_eq!(
        feed(&mut session, t0, OUT, &refresh_ipv6),
        [Action::RouteRefresh(V6)]
    );
    let actions = session.handle(t0, Input::RequestRefresh(V4));
    let [Action::Send(OUT, bytes)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let mut context = BgpParsingContext::default();
    let Ok(BgpMessage::RouteRefresh(refresh)) =
        BgpMessage::parse(&mut SliceReader::new(bytes), &mut context)
    else {
        panic!("not a ROUTE-REFRESH");
    };
    assert_eq!(refresh.address_type(), AddressType::Ipv4Unicast);

    // A family that was not negotiated, or a neighbor without the
    // capability: nothing.
    let ipv4_only = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![multiprotocol(V4), BgpCapability::RouteRefresh],
    );
    let (mut session, _) = establish(
        SessionConfig {
            remote_as: 23456,
            ..config()
        },
        &ipv4_only,
        t0,
    );
    assert_eq!(feed(&mut session, t0, OUT, &refresh_ipv6), []);
    assert_eq!(session.handle(t0, Input::RequestRefresh(V6)), []);
    let (mut session, _) = establish(config(), &frr_open(), t0);
    assert_eq!(session.handle(t0, Input::RequestRefresh(V6)).len(), 1);
    let no_refresh = open(
        PEER_AS,
        90,
        PEER_ID,
        vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            PEER_AS,
        ))],
    );
    let (mut session, _) = establish(config(), &no_refresh, t0);
    assert_eq!(session.handle(t0, Input::RequestRefresh(V4)), []);
}

#[test]
fn stop_sends_cease_administrative_shutdown() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let actions = session.handle(t0, Input::Stop);
    assert_eq!(actions, closed_with(OUT, notification(6, 2, &[]), true));
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.next_deadline(), None);

    let mut session = Session::new(config()).unwrap();
    session.handle(t0, Input::Start);
    assert_eq!(session.handle(t0, Input::Stop), [Action::CancelConnect]);
    assert_eq!(session.next_deadline(), None);
    assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
}

#[test]
fn stop_reports_the_established_session_once() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    session.handle(t0, Input::Accepted(IN));
    let actions = session.handle(t0, Input::Stop);
    let downs: Vec<&Down> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Down(down) => Some(down),
            _ => None,
        })
        .collect();
    assert_eq!(downs.len(), 1);
    assert!(downs[0].was_established);
    assert!(actions.contains(&Action::Disconnect(IN)));
    assert!(actions.contains(&Action::Disconnect(OUT)));
}

#[test]
fn reset_from_update_sends_its_notification() {
    let t0 = Instant::now();
    let (mut session, _) = establish(config(), &plain_open(90), t0);
    let malformed = notification(3, 1, &[]);
    let actions = session.handle(t0, Input::Reset(malformed.clone()));
    assert_eq!(actions, closed_with(OUT, malformed, true));
}

#[test]
fn config_is_checked() {
    let refused = |config: SessionConfig| Session::new(config).unwrap_err();
    assert_eq!(
        refused(SessionConfig {
            hold_time: 2,
            ..config()
        }),
        ConfigError::HoldTime(2)
    );
    assert_eq!(
        refused(SessionConfig {
            router_id: Ipv4Addr::UNSPECIFIED,
            ..config()
        }),
        ConfigError::RouterId
    );
    assert_eq!(
        refused(SessionConfig {
            families: vec![],
            ..config()
        }),
        ConfigError::NoFamily
    );
    assert_eq!(
        refused(SessionConfig {
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: 4096,
                restarting: false,
                forwarding_preserved: false,
            }),
            ..config()
        }),
        ConfigError::RestartTime(4096)
    );
    assert!(
        Session::new(SessionConfig {
            hold_time: 0,
            ..config()
        })
        .is_ok()
    );
}
