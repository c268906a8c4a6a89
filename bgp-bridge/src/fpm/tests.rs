//! FPM frames built as bytes here (and a replay recorded from FRR 8.4's
//! zebra), through the frame reader, the decoder, the feed and the
//! listener's session with the bridge. No network, no root.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use super::decode::{
    self, DecodeError, FrameError, Frames, RTM_DELNEXTHOP, RTM_DELROUTE, RTM_NEWNEXTHOP,
    RTM_NEWROUTE, decode_frame,
};
use super::listener::{self, FpmConfig, Stream};
use super::*;
use crate::engine::memory::MemoryFib;
use crate::engine::{Bridge, BridgeConfig};
use crate::rib::{RouteFilter, RouteStatus};
use crate::route::{Owner, PeerInfo, TunnelInfo};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RTPROT_KERNEL: u8 = 2;
const RTPROT_BGP: u8 = 186;
const RTPROT_OSPF: u8 = 188;
const RTPROT_ZSTATIC: u8 = 196;
const MAIN: u8 = 254;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTA_NH_ID: u16 = 30;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// The tunnels' interface indexes in `view()`.
const WG_A: u32 = 3;
const WG_B: u32 = 5;

// ---- bytes, as zebra writes them -------------------------------------

fn pad(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let length = u16::try_from(4 + value.len()).unwrap();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&length.to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(value);
    pad(&mut bytes);
    bytes
}

fn u32_nla(kind: u16, value: u32) -> Vec<u8> {
    nla(kind, &value.to_ne_bytes())
}

fn address(text: &str) -> Vec<u8> {
    match text.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// A netlink message with zebra's flags (request, create, replace).
fn nlmsg(kind: u16, body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(16 + body.len()).unwrap();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&length.to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(&0x0501u16.to_ne_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(body);
    pad(&mut bytes);
    bytes
}

/// One FPM frame holding `messages`.
fn frame(messages: &[Vec<u8>]) -> Vec<u8> {
    let payload: Vec<u8> = messages.concat();
    let length = u16::try_from(4 + payload.len()).unwrap();
    let mut bytes = vec![1, 1];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// `struct rtmsg` and attributes: a route of `prefix` in `table`.
fn route_message(
    kind: u16,
    prefix: &str,
    protocol: u8,
    table: u8,
    attributes: &[Vec<u8>],
) -> Vec<u8> {
    let prefix: IpNet = prefix.parse().unwrap();
    let family = match prefix {
        IpNet::V4(_) => AF_INET,
        IpNet::V6(_) => AF_INET6,
    };
    let mut body = vec![
        family,
        prefix.prefix_len(),
        0,
        0,
        table,
        protocol,
        0,
        1,
        0,
        0,
        0,
        0,
    ];
    if prefix.prefix_len() > 0 {
        body.extend(nla(RTA_DST, &address(&prefix.addr().to_string())));
    }
    body.extend(u32_nla(RTA_TABLE, u32::from(table)));
    body.extend(u32_nla(RTA_PRIORITY, 20));
    for attribute in attributes {
        body.extend_from_slice(attribute);
    }
    nlmsg(kind, &body)
}

fn new_route(prefix: &str, protocol: u8, attributes: &[Vec<u8>]) -> Vec<u8> {
    route_message(RTM_NEWROUTE, prefix, protocol, MAIN, attributes)
}

fn gateway(text: &str) -> Vec<u8> {
    nla(RTA_GATEWAY, &address(text))
}

/// `RTA_VIA` of an IPv4 address (`struct rtvia`).
fn via_v4(text: &str) -> Vec<u8> {
    let mut value = u16::from(AF_INET).to_ne_bytes().to_vec();
    value.extend(address(text));
    nla(RTA_VIA, &value)
}

/// `RTA_VIA` of an IPv6 address: how the kernel (and `ip route add …
/// via inet6`) writes an IPv4 route through an IPv6 gateway (RFC 8950).
fn via_v6(text: &str) -> Vec<u8> {
    let mut value = u16::from(AF_INET6).to_ne_bytes().to_vec();
    value.extend(address(text));
    nla(RTA_VIA, &value)
}

/// `RTA_MULTIPATH` of (attribute, ifindex) pairs, the attribute as given.
fn multipath_with(hops: &[(Vec<u8>, u32)]) -> Vec<u8> {
    let mut value = Vec::new();
    for (attribute, index) in hops {
        let length = u16::try_from(8 + attribute.len()).unwrap();
        value.extend_from_slice(&length.to_ne_bytes());
        value.extend_from_slice(&[0, 0]);
        value.extend_from_slice(&index.to_ne_bytes());
        value.extend_from_slice(attribute);
    }
    nla(RTA_MULTIPATH, &value)
}

fn oif(index: u32) -> Vec<u8> {
    u32_nla(RTA_OIF, index)
}

/// `RTA_MULTIPATH` of (gateway, ifindex) pairs.
fn multipath(hops: &[(&str, u32)]) -> Vec<u8> {
    let mut value = Vec::new();
    for (via, index) in hops {
        let attribute = gateway(via);
        let length = u16::try_from(8 + attribute.len()).unwrap();
        value.extend_from_slice(&length.to_ne_bytes());
        value.extend_from_slice(&[0, 0]);
        value.extend_from_slice(&index.to_ne_bytes());
        value.extend_from_slice(&attribute);
    }
    nla(RTA_MULTIPATH, &value)
}

/// `RTM_NEWNEXTHOP` with `struct nhmsg` of `family`.
fn new_nexthop(family: u8, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![family, 0, 11, 0, 0, 0, 0, 0];
    for attribute in attributes {
        body.extend_from_slice(attribute);
    }
    nlmsg(RTM_NEWNEXTHOP, &body)
}

fn nexthop(id: u32, via: &str, index: u32) -> Vec<u8> {
    new_nexthop(
        AF_INET,
        &[
            u32_nla(NHA_ID, id),
            nla(NHA_GATEWAY, &address(via)),
            u32_nla(NHA_OIF, index),
        ],
    )
}

fn group(id: u32, members: &[u32]) -> Vec<u8> {
    let mut entries = Vec::new();
    for member in members {
        entries.extend_from_slice(&member.to_ne_bytes());
        entries.extend_from_slice(&[0; 4]);
    }
    new_nexthop(0, &[u32_nla(NHA_ID, id), nla(NHA_GROUP, &entries)])
}

fn del_nexthop(id: u32) -> Vec<u8> {
    nlmsg(RTM_DELNEXTHOP, &[vec![0; 8], u32_nla(NHA_ID, id)].concat())
}

// ---- values -----------------------------------------------------------

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn tunnel(name: &str, ifindex: u32, subnet: &str) -> TunnelInfo {
    TunnelInfo {
        name: name.into(),
        ifindex,
        up: true,
        addresses: vec![net(subnet)],
        peer_addresses: Vec::new(),
        peers: vec![PeerInfo {
            public_key: format!("key-{name}"),
            allowed_ips: vec![net("0.0.0.0/0"), net("::/0")],
            endpoint: None,
            reachable: true,
        }],
    }
}

fn view() -> TunnelView {
    TunnelView {
        tunnels: vec![
            tunnel("wg-a", WG_A, "10.255.0.0/31"),
            tunnel("wg-b", WG_B, "10.255.1.0/31"),
        ],
        bfd_down: Default::default(),
    }
}

fn on_tunnel(address: &str, tunnel: &str) -> NexthopSpec {
    NexthopSpec::AddressOnTunnel {
        address: ip(address),
        tunnel: tunnel.into(),
    }
}

fn spec(prefix: &str, nexthops: Vec<NexthopSpec>, distance: u8) -> RouteSpec {
    RouteSpec {
        prefix: net(prefix),
        nexthops,
        distance,
        metric: 20,
    }
}

/// Every message of every frame of `bytes`, which must all decode.
fn messages(bytes: &[u8]) -> Vec<Message> {
    let mut frames = Frames::new(bytes);
    let messages: Vec<Message> = frames
        .by_ref()
        .map(|frame| frame.unwrap())
        .flat_map(decode_frame)
        .map(|message| message.unwrap())
        .collect();
    assert_eq!(frames.consumed(), bytes.len(), "whole frames only");
    messages
}

fn fed(feed: &mut Feed, bytes: &[u8]) -> Batch {
    for message in messages(bytes) {
        feed.apply(message);
    }
    feed.updates(&view())
}

fn offers(batch: &Batch) -> Vec<RouteSpec> {
    batch
        .updates
        .iter()
        .filter_map(|update| match update {
            Update::Offer(spec) => Some(spec.clone()),
            _ => None,
        })
        .collect()
}

fn withdrawals(batch: &Batch) -> Vec<IpNet> {
    batch
        .updates
        .iter()
        .filter_map(|update| match update {
            Update::Withdraw(prefix) => Some(*prefix),
            _ => None,
        })
        .collect()
}

// ---- frames -----------------------------------------------------------

#[test]
fn frames_are_split_and_a_partial_one_waits_for_more() {
    let first = frame(&[new_route(
        "192.168.77.0/24",
        RTPROT_ZSTATIC,
        &[gateway("10.255.0.1")],
    )]);
    let second = frame(&[del_nexthop(9)]);
    let mut bytes = [first.clone(), second.clone()].concat();
    bytes.extend_from_slice(&second[..7]);
    let mut frames = Frames::new(&bytes);
    assert_eq!(frames.next(), Some(Ok(&first[4..])));
    assert_eq!(frames.next(), Some(Ok(&second[4..])));
    assert_eq!(frames.next(), None, "the third is not all there");
    assert_eq!(frames.consumed(), first.len() + second.len());
    // A header cut short waits too.
    assert_eq!(Frames::new(&[1, 1, 0]).next(), None);
    assert_eq!(decode::frame_length(&[1, 1]), Ok(None));
}

#[test]
fn a_truncated_frame_yields_nothing_until_it_is_whole() {
    let whole = frame(&[new_route(
        "192.168.77.0/24",
        RTPROT_ZSTATIC,
        &[gateway("10.255.0.1")],
    )]);
    for cut in 0..whole.len() {
        let mut frames = Frames::new(&whole[..cut]);
        assert_eq!(frames.next(), None, "cut at {cut}");
        assert_eq!(frames.consumed(), 0);
    }
    // Its length says more than there is: it waits (it is not an error).
    assert_eq!(decode::frame_length(&whole[..10]), Ok(Some(whole.len())));
}

#[test]
fn a_wrong_version_type_or_length_is_an_error_and_ends_the_frames() {
    let good = frame(&[del_nexthop(1)]);
    let mut wrong_version = good.clone();
    wrong_version[0] = 2;
    let mut frames = Frames::new(&wrong_version);
    assert_eq!(frames.next(), Some(Err(FrameError::Version(2))));
    assert_eq!(frames.next(), None);
    assert_eq!(frames.consumed(), 0);

    let mut protobuf = good.clone();
    protobuf[1] = 2;
    assert_eq!(
        Frames::new(&protobuf).next(),
        Some(Err(FrameError::Type(2)))
    );
    assert!(FrameError::Type(2).to_string().contains("dplane_fpm_nl"));

    assert_eq!(
        Frames::new(&[1, 1, 0, 3]).next(),
        Some(Err(FrameError::Length(3)))
    );
    // A good frame, then a broken one: the good one is read.
    let bytes = [good.clone(), vec![7, 1, 0, 4]].concat();
    let mut frames = Frames::new(&bytes);
    assert!(matches!(frames.next(), Some(Ok(_))));
    assert_eq!(frames.next(), Some(Err(FrameError::Version(7))));
    assert_eq!(frames.consumed(), good.len());
    // An empty frame (header only) is whole and holds nothing.
    assert_eq!(Frames::new(&[1, 1, 0, 4]).next(), Some(Ok(&[][..])));
}

// ---- messages ---------------------------------------------------------

#[test]
fn a_route_with_one_nexthop_decodes() {
    let bytes = frame(&[new_route(
        "192.168.77.0/24",
        RTPROT_ZSTATIC,
        &[gateway("10.255.0.1"), oif(WG_A)],
    )]);
    assert_eq!(
        messages(&bytes),
        vec![Message::NewRoute(FpmRoute {
            prefix: net("192.168.77.0/24"),
            table: 254,
            protocol: RTPROT_ZSTATIC,
            route_type: decode::RTN_UNICAST,
            source_len: 0,
            priority: Some(20),
            nexthops: vec![FpmNexthop {
                gateway: Some(ip("10.255.0.1")),
                ifindex: WG_A,
            }],
            nexthop_id: None,
        })]
    );
}

#[test]
fn a_multipath_route_decodes_every_nexthop() {
    let bytes = frame(&[new_route(
        "fd00:77::/64",
        RTPROT_BGP,
        &[multipath(&[("fd00:255::1", WG_A), ("fd00:256::1", WG_B)])],
    )]);
    let [Message::NewRoute(route)] = &messages(&bytes)[..] else {
        panic!("one route");
    };
    assert_eq!(route.prefix, net("fd00:77::/64"));
    assert_eq!(
        route.nexthops,
        vec![
            FpmNexthop {
                gateway: Some(ip("fd00:255::1")),
                ifindex: WG_A
            },
            FpmNexthop {
                gateway: Some(ip("fd00:256::1")),
                ifindex: WG_B
            },
        ]
    );
}

#[test]
fn a_delete_and_a_default_route_decode() {
    let bytes = frame(&[
        route_message(
            RTM_DELROUTE,
            "192.168.77.0/24",
            RTPROT_ZSTATIC,
            MAIN,
            &[gateway("10.255.0.1")],
        ),
        new_route("0.0.0.0/0", RTPROT_BGP, &[oif(WG_A)]),
    ]);
    let decoded = messages(&bytes);
    assert!(
        matches!(&decoded[0], Message::DelRoute(route) if route.prefix == net("192.168.77.0/24"))
    );
    assert!(matches!(
        &decoded[1],
        Message::NewRoute(route) if route.prefix == net("0.0.0.0/0")
            && route.nexthops == [FpmNexthop { gateway: None, ifindex: WG_A }]
    ));
}

#[test]
fn nexthop_objects_and_groups_decode() {
    let bytes = frame(&[
        nexthop(10, "10.255.0.1", WG_A),
        group(11, &[10, 12]),
        new_nexthop(AF_INET, &[u32_nla(NHA_ID, 13), nla(NHA_BLACKHOLE, &[])]),
        del_nexthop(9),
        new_route("192.168.78.0/24", RTPROT_ZSTATIC, &[u32_nla(RTA_NH_ID, 11)]),
    ]);
    let decoded = messages(&bytes);
    assert_eq!(
        decoded[..4],
        [
            Message::NewNexthop(NexthopObject {
                id: 10,
                kind: NexthopKind::Single(FpmNexthop {
                    gateway: Some(ip("10.255.0.1")),
                    ifindex: WG_A
                })
            }),
            Message::NewNexthop(NexthopObject {
                id: 11,
                kind: NexthopKind::Group(vec![10, 12])
            }),
            Message::NewNexthop(NexthopObject {
                id: 13,
                kind: NexthopKind::Blackhole
            }),
            Message::DelNexthop(9),
        ]
    );
    assert!(
        matches!(&decoded[4], Message::NewRoute(route) if route.nexthop_id == Some(11) && route.nexthops.is_empty())
    );
}

#[test]
fn a_message_that_does_not_parse_is_an_error_in_its_place() {
    // A route message too short for `struct rtmsg`, then a good one.
    let bytes = frame(&[nlmsg(RTM_NEWROUTE, &[2, 24, 0]), del_nexthop(4)]);
    let mut frames = Frames::new(&bytes);
    let decoded = decode_frame(frames.next().unwrap().unwrap());
    assert!(matches!(
        &decoded[0],
        Err(DecodeError {
            kind: RTM_NEWROUTE,
            length: 19,
            ..
        })
    ));
    assert_eq!(decoded[1], Ok(Message::DelNexthop(4)));
    // A prefix length the family cannot have.
    let mut bad = new_route("192.168.77.0/24", RTPROT_ZSTATIC, &[]);
    bad[17] = 33;
    assert!(decode_frame(&bad)[0].is_err());
    // A netlink header whose length runs past the frame ends it.
    let mut cut = del_nexthop(4);
    cut[0] = 200;
    let decoded = decode_frame(&cut);
    assert_eq!(decoded.len(), 1);
    assert!(matches!(&decoded[0], Err(DecodeError { kind: 0, .. })));
    // A nexthop without its id, and a group of the wrong size.
    assert!(decode_frame(&new_nexthop(AF_INET, &[u32_nla(NHA_OIF, 3)]))[0].is_err());
    assert!(
        decode_frame(&new_nexthop(
            0,
            &[u32_nla(NHA_ID, 1), nla(NHA_GROUP, &[1, 0, 0, 0])]
        ))[0]
            .is_err()
    );
    // Other messages (a MAC, an MPLS route) are passed over.
    assert_eq!(
        decode_frame(&nlmsg(28, &[0; 12])),
        vec![Ok(Message::Ignored(28))]
    );
    let mpls = nlmsg(RTM_NEWROUTE, &[28, 20, 0, 0, MAIN, 11, 0, 1, 0, 0, 0, 0]);
    assert_eq!(
        decode_frame(&mpls),
        vec![Ok(Message::Ignored(RTM_NEWROUTE))]
    );
}

/// What FRR 8.4's zebra sent on connecting, recorded with `ip route
/// 192.168.77.0/24 10.255.0.1`, `ip route 192.168.78.0/24` via both
/// 10.255.0.1 and 10.255.1.1, and `ip route 192.168.79.0/24 wgx`, on two
/// interfaces (3: 10.255.0.0/31, 5: 10.255.1.0/31): the nexthop objects
/// first (10: via 10.255.0.1 dev 3, 12: via 10.255.1.1 dev 5, 11: group of
/// both, 9: dev 3), then the routes by nexthop id, with the connected ones
/// (protocol kernel) among them.
#[cfg(target_endian = "little")]
const ZEBRA_8_4_REPLAY: &[&str] = &[
    "2800000068000105000000009fafded00a000b000000000008000100100000000800050003000000",
    "2800000068000105000000009fafded00a000b000000000008000100120000000800050004000000",
    "2800000068000105000000009fafded002000b000000000008000100030000000800050003000000",
    "2800000068000105000000009fafded00a000b000000000008000100140000000800050002000000",
    "2800000068000105000000009fafded002000b000000000008000100040000000800050005000000",
    "2800000068000105000000009fafded002000b000000000008000100090000000800050003000000",
    "3000000068000105000000009fafded002000b0000000000080001000a000000080006000aff00010800050003000000",
    "3400000068000105000000009fafded000000b0000000000080001000b000000140002000a000000000000000c00000000000000",
    "3000000068000105000000009fafded002000b0000000000080001000c000000080006000aff01010800050005000000",
    "2800000068000105000000009fafded00a000b0000000000080001000e0000000800050005000000",
    "3400000018000105000000009fafded0021f0000fe02000100000000080001000aff0000080006001400000008001e0003000000",
    "3400000018000105000000009fafded0021f0000fe02000100000000080001000aff0100080006001400000008001e0004000000",
    "3400000018000105000000009fafded002180000fec400010000000008000100c0a84d00080006001400000008001e000a000000",
    "3400000018000105000000009fafded002180000fec400010000000008000100c0a84e00080006001400000008001e000b000000",
    "3400000018000105000000009fafded002180000fec400010000000008000100c0a84f00080006001400000008001e0009000000",
    "4000000018000104000000009fafded00a400000fe0200010000000014000100fe800000000000000000000000000000080006001400000008001e000e000000",
];

#[cfg(target_endian = "little")]
fn recorded_replay() -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in ZEBRA_8_4_REPLAY {
        let message: Vec<u8> = (0..message.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&message[at..at + 2], 16).unwrap())
            .collect();
        bytes.extend(frame(&[message]));
    }
    bytes
}

#[cfg(target_endian = "little")]
#[test]
fn zebra_8_4_replay_becomes_the_bridge_routes() {
    let mut feed = Feed::new(254);
    let batch = fed(&mut feed, &recorded_replay());
    assert_eq!(
        offers(&batch),
        vec![
            spec("192.168.77.0/24", vec![on_tunnel("10.255.0.1", "wg-a")], 1),
            spec(
                "192.168.78.0/24",
                vec![
                    on_tunnel("10.255.0.1", "wg-a"),
                    on_tunnel("10.255.1.1", "wg-b")
                ],
                1
            ),
            spec(
                "192.168.79.0/24",
                vec![NexthopSpec::Tunnel("wg-a".into())],
                1
            ),
        ]
    );
    // The connected subnets are zebra's kernel routes: not taken at all.
    assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
    assert_eq!(feed.route_count(), 3);
    // Sent again (a reconnect's replay on the same feed): nothing to do.
    assert!(fed(&mut feed, &recorded_replay()).updates.is_empty());
}

// ---- the feed -----------------------------------------------------------

#[test]
fn an_update_sent_as_delete_then_add_is_one_replace() {
    let mut feed = Feed::new(254);
    fed(
        &mut feed,
        &frame(&[new_route(
            "192.168.77.0/24",
            RTPROT_OSPF,
            &[gateway("10.255.0.1"), oif(WG_A)],
        )]),
    );
    let batch = fed(
        &mut feed,
        &frame(&[
            route_message(
                RTM_DELROUTE,
                "192.168.77.0/24",
                RTPROT_OSPF,
                MAIN,
                &[gateway("10.255.0.1"), oif(WG_A)],
            ),
            new_route(
                "192.168.77.0/24",
                RTPROT_OSPF,
                &[gateway("10.255.1.1"), oif(WG_B)],
            ),
        ]),
    );
    assert_eq!(
        batch.updates.len(),
        1,
        "no withdrawal before the offer: {:?}",
        batch.updates
    );
    assert_eq!(
        offers(&batch),
        vec![spec(
            "192.168.77.0/24",
            vec![on_tunnel("10.255.1.1", "wg-b")],
            110
        )]
    );
}

#[test]
fn a_delete_withdraws_and_other_tables_and_kernel_routes_are_not_taken() {
    let mut feed = Feed::new(254);
    let batch = fed(
        &mut feed,
        &frame(&[
            new_route(
                "192.168.77.0/24",
                RTPROT_BGP,
                &[gateway("10.255.0.1"), oif(WG_A)],
            ),
            route_message(
                RTM_NEWROUTE,
                "192.168.88.0/24",
                RTPROT_BGP,
                100,
                &[gateway("10.255.0.1")],
            ),
            new_route("10.255.0.0/31", RTPROT_KERNEL, &[oif(WG_A)]),
        ]),
    );
    assert_eq!(offers(&batch).len(), 1);
    assert_eq!(offers(&batch)[0].distance, 20);
    // A delete of another table's route changes nothing.
    let batch = fed(
        &mut feed,
        &frame(&[route_message(
            RTM_DELROUTE,
            "192.168.77.0/24",
            RTPROT_BGP,
            100,
            &[],
        )]),
    );
    assert!(batch.updates.is_empty());
    let batch = fed(
        &mut feed,
        &frame(&[route_message(
            RTM_DELROUTE,
            "192.168.77.0/24",
            RTPROT_BGP,
            MAIN,
            &[],
        )]),
    );
    assert_eq!(withdrawals(&batch), vec![net("192.168.77.0/24")]);
    assert_eq!(feed.route_count(), 0);
}

#[test]
fn a_kernel_route_taking_over_withdraws_the_frr_route() {
    let mut feed = Feed::new(254);
    fed(
        &mut feed,
        &frame(&[new_route(
            "192.168.77.0/24",
            RTPROT_ZSTATIC,
            &[gateway("10.255.0.1"), oif(WG_A)],
        )]),
    );
    // What zebra sends when it prefers a route it found in the kernel.
    let batch = fed(
        &mut feed,
        &frame(&[
            route_message(RTM_DELROUTE, "192.168.77.0/24", RTPROT_ZSTATIC, MAIN, &[]),
            new_route(
                "192.168.77.0/24",
                RTPROT_KERNEL,
                &[gateway("10.255.0.1"), oif(WG_A)],
            ),
        ]),
    );
    assert_eq!(withdrawals(&batch), vec![net("192.168.77.0/24")]);
    // Its later delete is not an FRR route's.
    let batch = fed(
        &mut feed,
        &frame(&[route_message(
            RTM_DELROUTE,
            "192.168.77.0/24",
            RTPROT_KERNEL,
            MAIN,
            &[],
        )]),
    );
    assert!(batch.updates.is_empty());
}

#[test]
fn a_nexthop_group_that_changes_moves_its_routes() {
    let mut feed = Feed::new(254);
    let batch = fed(
        &mut feed,
        &frame(&[
            nexthop(10, "10.255.0.1", WG_A),
            nexthop(12, "10.255.1.1", WG_B),
            group(11, &[10, 12]),
            new_route("192.168.78.0/24", RTPROT_BGP, &[u32_nla(RTA_NH_ID, 11)]),
            new_route("192.168.79.0/24", RTPROT_BGP, &[u32_nla(RTA_NH_ID, 12)]),
        ]),
    );
    assert_eq!(offers(&batch).len(), 2);
    // The group loses a member: its route is offered again.
    let batch = fed(&mut feed, &frame(&[group(11, &[10])]));
    assert_eq!(
        offers(&batch),
        vec![RouteSpec {
            metric: 20,
            ..spec("192.168.78.0/24", vec![on_tunnel("10.255.0.1", "wg-a")], 20)
        }]
    );
    // A member that changes moves the routes of the groups holding it too.
    let batch = fed(&mut feed, &frame(&[nexthop(10, "10.255.1.1", WG_B)]));
    assert_eq!(
        offers(&batch)[0].nexthops,
        vec![on_tunnel("10.255.1.1", "wg-b")]
    );
    // The same object again changes nothing.
    assert!(
        fed(&mut feed, &frame(&[nexthop(10, "10.255.1.1", WG_B)]))
            .updates
            .is_empty()
    );
    // An object that goes while a route still uses it: the route cannot stay.
    let batch = fed(&mut feed, &frame(&[del_nexthop(12)]));
    assert_eq!(withdrawals(&batch), vec![net("192.168.79.0/24")]);
    assert!(
        batch.skipped[0].1.contains("unknown"),
        "{:?}",
        batch.skipped
    );
}

#[test]
fn ipv4_routes_through_ipv6_gateways_are_taken_as_each_encoding_gives_them() {
    let mut feed = Feed::new(254);
    // RTNH_F_ONLINK in rtm_flags, as zebra sets it for RFC 5549 routes.
    let mut zebra_5549 = new_route(
        "172.20.5.0/24",
        RTPROT_BGP,
        &[gateway("169.254.0.1"), oif(WG_B)],
    );
    zebra_5549[16 + 8] = 4;
    let batch = fed(
        &mut feed,
        &frame(&[
            // RTA_VIA with its interface: the nexthop on that tunnel.
            new_route("172.20.2.0/27", RTPROT_BGP, &[via_v6("fe80::2"), oif(WG_A)]),
            // ECMP, each nexthop's RTA_VIA inside RTA_MULTIPATH.
            new_route(
                "172.20.3.0/24",
                RTPROT_BGP,
                &[multipath_with(&[
                    (via_v6("fe80::2"), WG_A),
                    (via_v6("fe80::3"), WG_B),
                ])],
            ),
            // A nexthop object of the route's family with the IPv6
            // gateway's 16 bytes, as zebra sends it for such a route.
            new_nexthop(
                AF_INET,
                &[
                    u32_nla(NHA_ID, 40),
                    nla(NHA_GATEWAY, &address("fe80::3")),
                    u32_nla(NHA_OIF, WG_B),
                ],
            ),
            new_route("172.20.4.0/24", RTPROT_BGP, &[u32_nla(RTA_NH_ID, 40)]),
            // zebra's own encoding of RFC 5549 toward the kernel.
            zebra_5549,
        ]),
    );
    assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
    assert_eq!(
        offers(&batch),
        vec![
            spec("172.20.2.0/27", vec![on_tunnel("fe80::2", "wg-a")], 20),
            spec(
                "172.20.3.0/24",
                vec![on_tunnel("fe80::2", "wg-a"), on_tunnel("fe80::3", "wg-b")],
                20
            ),
            spec("172.20.4.0/24", vec![on_tunnel("fe80::3", "wg-b")], 20),
            spec("172.20.5.0/24", vec![on_tunnel("169.254.0.1", "wg-b")], 20),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_ipv4_route_through_a_link_local_gateway_reaches_the_kernel() {
    let fib = MemoryFib::default();
    let bridge = Bridge::start_here(BridgeConfig::default(), fib.clone(), view());
    let mut feed = Feed::new(254);
    let batch = fed(
        &mut feed,
        &frame(&[
            new_route("172.20.2.0/27", RTPROT_BGP, &[via_v6("fe80::2"), oif(WG_A)]),
            // Not on a tunnel: a link-local gateway alone names no link.
            new_route("172.20.6.0/24", RTPROT_BGP, &[via_v6("fe80::6")]),
        ]),
    );
    let owner = Owner::new("fpm");
    let results = bridge.static_updates(owner, batch.updates).await.unwrap();
    assert_eq!(results[0].status, RouteStatus::Installed);
    assert_eq!(
        results[1].status,
        RouteStatus::Refused(
            "nexthop fe80::6 is link-local: name its tunnel (via fe80::6 dev TUNNEL)".into()
        )
    );
    let routes = fib.routes.lock().unwrap().clone();
    assert_eq!(
        routes[&net("172.20.2.0/27")][0].gateway,
        Some(ip("fe80::2"))
    );
    assert_eq!(routes[&net("172.20.2.0/27")][0].ifindex, WG_A);
}

#[test]
fn routes_the_bridge_cannot_take_are_skipped_with_a_reason() {
    let mut feed = Feed::new(254);
    let mut blackhole = new_route("192.168.90.0/24", RTPROT_ZSTATIC, &[]);
    blackhole[16 + 7] = 6;
    let batch = fed(
        &mut feed,
        &frame(&[
            // A dev route on an interface that is no tunnel of wgd's.
            new_route("192.168.80.0/24", RTPROT_ZSTATIC, &[oif(42)]),
            blackhole,
            new_route("192.168.81.0/24", RTPROT_BGP, &[u32_nla(RTA_NH_ID, 99)]),
            // An IPv4 nexthop (`RTA_VIA`) for an IPv6 route: the kernel
            // has no such routes.
            new_route(
                "fd00:81::/64",
                RTPROT_BGP,
                &[via_v4("10.255.0.1"), oif(WG_A)],
            ),
        ]),
    );
    assert!(batch.updates.is_empty());
    let reasons: BTreeMap<IpNet, String> = batch.skipped.into_iter().collect();
    assert!(reasons[&net("192.168.80.0/24")].contains("interface index 42"));
    assert!(reasons[&net("192.168.90.0/24")].contains("type 6"));
    assert!(reasons[&net("192.168.81.0/24")].contains("nexthop id 99 is unknown"));
    assert!(reasons[&net("fd00:81::/64")].contains("an IPv6 route needs an IPv6 nexthop"));
    // A gateway off the tunnels goes as an address: the bridge decides.
    let batch = fed(
        &mut feed,
        &frame(&[new_route(
            "192.168.82.0/24",
            RTPROT_BGP,
            &[gateway("192.0.2.1"), oif(42)],
        )]),
    );
    assert_eq!(
        offers(&batch)[0].nexthops,
        vec![NexthopSpec::Address(ip("192.0.2.1"))]
    );
}

#[test]
fn a_tunnel_that_appears_brings_its_routes_and_refused_ones_are_offered_again() {
    let mut feed = Feed::new(254);
    let bytes = frame(&[new_route("192.168.80.0/24", RTPROT_ZSTATIC, &[oif(42)])]);
    for message in messages(&bytes) {
        feed.apply(message);
    }
    assert!(feed.updates(&view()).updates.is_empty());
    let mut wider = view();
    wider.tunnels.push(tunnel("wg-c", 42, "10.255.2.0/31"));
    feed.tunnels_changed();
    let batch = feed.updates(&wider);
    assert_eq!(
        offers(&batch)[0].nexthops,
        vec![NexthopSpec::Tunnel("wg-c".into())]
    );
    // The bridge refused it: the next look offers it again.
    feed.refused(net("192.168.80.0/24"));
    feed.tunnels_changed();
    assert_eq!(offers(&feed.updates(&wider)).len(), 1);
    // The tunnel goes: the route is withdrawn.
    feed.tunnels_changed();
    assert_eq!(
        withdrawals(&feed.updates(&view())),
        vec![net("192.168.80.0/24")]
    );
}

#[test]
fn distances_follow_zebra() {
    assert_eq!(distance_of(196), Some(1));
    assert_eq!(distance_of(186), Some(20));
    assert_eq!(distance_of(188), Some(110));
    assert_eq!(distance_of(187), Some(115));
    assert_eq!(distance_of(189), Some(120));
    assert_eq!(distance_of(2), None);
    assert_eq!(distance_of(crate::RTPROT_WGD), None);
}

#[test]
fn fuzz_body_takes_the_recorded_replay_and_junk() {
    #[cfg(target_endian = "little")]
    fuzz(&recorded_replay());
    fuzz(&[1, 1, 0, 4, 1, 1, 0, 8, 0, 0, 0, 0, 1, 2]);
    fuzz(&frame(&[nlmsg(
        RTM_NEWROUTE,
        &[2, 99, 0, 0, MAIN, 186, 0, 1, 0, 0, 0, 0],
    )]));
}

// ---- the listener ---------------------------------------------------------

struct Lab {
    bridge: Bridge,
    fib: MemoryFib,
    connections: mpsc::Sender<(Stream, String)>,
    _tunnels: watch::Sender<TunnelView>,
}

impl Lab {
    fn start() -> Self {
        let fib = MemoryFib::default();
        let bridge = Bridge::start_here(BridgeConfig::default(), fib.clone(), view());
        let (tunnels, tunnel_updates) = watch::channel(view());
        let (connections, incoming) = mpsc::channel(4);
        let config = FpmConfig {
            hold: Some(Duration::from_secs(60)),
            ..FpmConfig::default()
        };
        tokio::spawn(listener::run(
            config,
            bridge.clone(),
            tunnel_updates,
            incoming,
        ));
        Self {
            bridge,
            fib,
            connections,
            _tunnels: tunnels,
        }
    }

    /// A new connection from zebra; its write end.
    async fn connect(&self) -> tokio::io::DuplexStream {
        let (zebra, ours) = tokio::io::duplex(1 << 16);
        self.connections
            .send((Box::new(ours), "zebra".into()))
            .await
            .unwrap();
        zebra
    }

    async fn routes(&self) -> Vec<(IpNet, RouteStatus, bool)> {
        let filter = RouteFilter {
            owner: Some(Owner::new(OWNER)),
            ..RouteFilter::default()
        };
        self.bridge
            .routes(filter)
            .await
            .unwrap()
            .into_iter()
            .map(|record| (record.prefix, record.status, record.stale))
            .collect()
    }

    fn kernel(&self) -> Vec<IpNet> {
        self.fib.routes.lock().unwrap().keys().copied().collect()
    }
}

/// Lets the listener and the engine do what they were given.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn two_routes() -> Vec<u8> {
    [
        frame(&[
            nexthop(10, "10.255.0.1", WG_A),
            new_route("192.168.77.0/24", RTPROT_ZSTATIC, &[u32_nla(RTA_NH_ID, 10)]),
        ]),
        frame(&[new_route(
            "192.168.78.0/24",
            RTPROT_BGP,
            &[gateway("10.255.1.1"), oif(WG_B)],
        )]),
    ]
    .concat()
}

#[tokio::test(start_paused = true)]
async fn zebra_routes_reach_the_bridge_as_owner_fpm_even_when_frames_are_cut() {
    let lab = Lab::start();
    let mut zebra = lab.connect().await;
    let bytes = two_routes();
    // Written in pieces that cut frames and headers.
    for piece in bytes.chunks(7) {
        zebra.write_all(piece).await.unwrap();
        settle().await;
    }
    assert_eq!(
        lab.routes().await,
        vec![
            (net("192.168.77.0/24"), RouteStatus::Installed, false),
            (net("192.168.78.0/24"), RouteStatus::Installed, false),
        ]
    );
    assert_eq!(
        lab.kernel(),
        vec![net("192.168.77.0/24"), net("192.168.78.0/24")]
    );
    // A frame that does not parse is skipped; the next one is read.
    zebra
        .write_all(&frame(&[nlmsg(RTM_NEWROUTE, &[2, 24])]))
        .await
        .unwrap();
    zebra
        .write_all(&frame(&[route_message(
            RTM_DELROUTE,
            "192.168.78.0/24",
            RTPROT_BGP,
            MAIN,
            &[],
        )]))
        .await
        .unwrap();
    settle().await;
    assert_eq!(lab.kernel(), vec![net("192.168.77.0/24")]);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_reclaims_the_routes_and_drops_the_rest_after_the_replay() {
    let lab = Lab::start();
    let mut zebra = lab.connect().await;
    zebra.write_all(&two_routes()).await.unwrap();
    settle().await;
    assert_eq!(lab.kernel().len(), 2);
    // zebra goes: the routes stay (stale) for the hold time.
    drop(zebra);
    settle().await;
    let routes = lab.routes().await;
    assert!(
        routes
            .iter()
            .all(|(_, status, stale)| *status == RouteStatus::Installed && *stale),
        "{routes:?}"
    );
    // It comes back and replays only one of them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut zebra = lab.connect().await;
    zebra
        .write_all(
            &two_routes()[..two_routes().len()
                - frame(&[new_route(
                    "192.168.78.0/24",
                    RTPROT_BGP,
                    &[gateway("10.255.1.1"), oif(WG_B)],
                )])
                .len()],
        )
        .await
        .unwrap();
    settle().await;
    assert_eq!(
        lab.kernel().len(),
        2,
        "nothing goes before the replay is over"
    );
    // Quiet, but the connection is young: the daemons may not be back.
    tokio::time::sleep(FpmConfig::DEFAULT_REPLAY_QUIET + Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(lab.kernel().len(), 2);
    tokio::time::sleep(FpmConfig::DEFAULT_REPLAY_SETTLE).await;
    settle().await;
    assert_eq!(lab.kernel(), vec![net("192.168.77.0/24")]);
    assert_eq!(
        lab.routes().await,
        vec![(net("192.168.77.0/24"), RouteStatus::Installed, false)]
    );
    drop(zebra);
}

#[tokio::test(start_paused = true)]
async fn a_broken_header_closes_the_connection_and_a_new_one_replaces_the_old() {
    let lab = Lab::start();
    let mut zebra = lab.connect().await;
    zebra.write_all(&two_routes()).await.unwrap();
    zebra.write_all(&[9, 1, 0, 8, 0, 0, 0, 0]).await.unwrap();
    settle().await;
    // Closed on our side: the routes are kept, stale.
    let routes = lab.routes().await;
    assert_eq!(routes.len(), 2);
    assert!(routes.iter().all(|(_, _, stale)| *stale), "{routes:?}");
    // A second connection while the first is open replaces it.
    let mut first = lab.connect().await;
    first.write_all(&two_routes()).await.unwrap();
    settle().await;
    let mut second = lab.connect().await;
    second.write_all(&two_routes()).await.unwrap();
    settle().await;
    assert!(lab.routes().await.iter().all(|(_, _, stale)| !*stale));
    // The first one's writes go nowhere.
    let _ = first
        .write_all(&frame(&[route_message(
            RTM_DELROUTE,
            "192.168.77.0/24",
            RTPROT_ZSTATIC,
            MAIN,
            &[],
        )]))
        .await;
    settle().await;
    assert_eq!(lab.kernel().len(), 2);
    // Without zebra for the hold time, its routes go.
    drop(second);
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    assert!(lab.kernel().is_empty());
    assert!(lab.routes().await.is_empty());
}
