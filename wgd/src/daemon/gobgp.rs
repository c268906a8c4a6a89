//! The GoBGP follower (`[[gobgp]]`): gobgpd cannot put its routes into the
//! kernel by itself; this takes its best paths into the bridge as one
//! owner, with the nexthop resolution and guards every client gets.
//!
//! Data flows one way: gobgpd's `WatchEvent` stream (best paths, the
//! current table first) → [`decode`] turns each path into a bridge
//! [`Update`] (an offer, a withdrawal, or a refusal with its reason) →
//! one batch per event into the owner's session.
//!
//! GoBGP v3.10.0 sends the whole best table as the first table event of a
//! watch asked with `init` (one message, so the client takes messages of
//! any size); everything after it is a change. End-of-RIB follows the
//! first event at once when the follower starts: routes of the owner that
//! gobgpd does not have leave, the rest never flap. A watch on a gobgpd that has not
//! started its BGP server gets no initial table, so the follower asks
//! `GetBgp` first and waits for an AS number.
//!
//! A link-local next hop goes in on its neighbor's interface (a wgd tunnel
//! of the same name). GoBGP v3.10.0 writes a path's `neighbor_ip` without
//! a zone (its own zebra path puts such a next hop on the wrong interface:
//! GoBGP issue 3257), so the follower asks `ListPeer` where each
//! link-local neighbor is (the zone of its address, its unnumbered
//! interface, or the interface its transport is bound to), at the start
//! of a watch and again when a path comes from a neighbor it does not
//! know yet; two neighbors with one address on two interfaces are told
//! apart by their BGP identifier (the path's `source_id`).
//!
//! When the stream ends (gobgpd stopped or restarted) the session closes
//! and the routes are held for the owner's hold time; the follower
//! reconnects with backoff and re-claims them. A gobgpd that restarted
//! learns its table again from its peers after the watch has begun, so
//! after a lost watch End-of-RIB waits until the hold time since the loss
//! is over: a route gobgpd has again by then never leaves the kernel.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use bgp_bridge::engine::{Bridge, Update};
use bgp_bridge::route::{NexthopSpec, Owner, RouteSpec};
use ipnet::IpNet;
use prost::Message;
use tokio_stream::StreamExt;
use wgd_proto::gobgp as api;
use wgd_proto::gobgp::gobgp_api_client::GobgpApiClient;

use crate::config::{GobgpApi, GobgpSettings};

/// Like zebra's distance for eBGP, the same as wgd's own speaker.
const DISTANCE: u8 = 20;
/// Updates per bridge batch while taking the initial table.
const CHUNK: usize = 50_000;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Starts a follower task for each `[[gobgp]]`; `default_hold` is the
/// bridge's `hold_time`, for those that set none.
pub fn start(settings: &[GobgpSettings], default_hold: Duration, bridge: &Bridge) {
    for settings in settings {
        let follower = Follower {
            owner: Owner::new(settings.owner.clone()),
            hold: settings.hold_time.unwrap_or(default_hold),
            families: Families {
                ipv4: settings.ipv4,
                ipv6: settings.ipv6,
            },
            api: settings.api.clone(),
            bridge: bridge.clone(),
        };
        tokio::spawn(follower.run());
    }
}

#[derive(Debug)]
struct Follower {
    owner: Owner,
    hold: Duration,
    families: Families,
    api: GobgpApi,
    bridge: Bridge,
}

#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("connecting: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Call(#[from] tonic::Status),
    #[error("gobgpd has not started its BGP server (no AS number yet)")]
    NotStarted,
    #[error("bridge: {0}")]
    Bridge(#[from] bgp_bridge::engine::BridgeError),
}

impl Follower {
    /// Follows gobgpd for as long as the daemon runs.
    async fn run(self) {
        let api = describe_api(&self.api);
        let owner = self.owner.as_str().to_owned();
        let mut retry = FIRST_RETRY;
        // When the last watch ended: gobgpd has the hold time from then
        // to give its whole table again.
        let mut lost: Option<Instant> = None;
        loop {
            match self.watch(lost).await {
                Ok(paths) => {
                    tracing::warn!(gobgp = %api, %owner, paths, hold = ?self.hold, "gobgpd's watch ended; its routes are held");
                    lost = Some(Instant::now());
                    retry = FIRST_RETRY;
                }
                Err((error, watched)) => {
                    if watched {
                        lost = Some(Instant::now());
                        retry = FIRST_RETRY;
                    }
                    tracing::warn!(gobgp = %api, %owner, %error, retry_in = ?retry, "cannot follow gobgpd");
                }
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    /// One watch, from connecting to the stream's end: how many paths it
    /// took, or the error and whether a session had been open.
    async fn watch(&self, lost: Option<Instant>) -> Result<u64, (WatchError, bool)> {
        let (mut client, mut stream) = self.subscribe().await.map_err(|error| (error, false))?;
        let mut interfaces = Interfaces::list(&mut client)
            .await
            .map_err(|error| (error, false))?;
        let (owner, bridge) = (&self.owner, &self.bridge);
        let mut session = None;
        let mut paths = 0;
        // End-of-RIB: at once after the first table, or after a lost
        // watch, when the hold time since then is over (gobgpd restarted
        // may take a while to learn its table again from its peers).
        let mut end_of_rib: Option<Instant> = None;
        let result = loop {
            let event = tokio::select! {
                event = stream.next() => event,
                () = sleep_until(end_of_rib) => {
                    end_of_rib = None;
                    match bridge.end_of_rib(owner.clone()).await {
                        Ok(withdrawn) => tracing::info!(owner = %owner.as_str(), withdrawn, "End-of-RIB for gobgpd: routes it no longer has are withdrawn"),
                        Err(error) => break Err(error.into()),
                    }
                    continue;
                }
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(status)) => break Err(WatchError::Call(status)),
                None => break Ok(paths),
            };
            let Some(api::watch_event_response::Event::Table(table)) = event.event else {
                continue;
            };
            paths += table.paths.len() as u64;
            let decode_all = |interfaces: &Interfaces| -> Vec<Update> {
                table
                    .paths
                    .iter()
                    .filter_map(|path| decode(path, self.families, interfaces))
                    .collect()
            };
            let mut updates = decode_all(&interfaces);
            // A link-local neighbor added since: where it is, once per event.
            if updates.iter().any(unknown_neighbor) {
                match Interfaces::list(&mut client).await {
                    Ok(listed) => {
                        interfaces = listed;
                        updates = decode_all(&interfaces);
                    }
                    Err(error) => break Err(error),
                }
            }
            refuse_log(&updates, owner);
            let id = match session {
                Some(id) => id,
                None => {
                    // The initial table: the session opens with it and
                    // re-claims what the owner had.
                    let (nexthops, _ignored) = tokio::sync::mpsc::unbounded_channel();
                    let welcome = match bridge.open(owner.clone(), Some(self.hold), nexthops).await
                    {
                        Ok(welcome) => welcome,
                        Err(error) => break Err(error.into()),
                    };
                    tracing::info!(owner = %owner.as_str(), paths = table.paths.len(), stale = welcome.stale_routes, "following gobgpd: its initial table");
                    session = Some(welcome.session);
                    end_of_rib = Some(lost.map_or_else(Instant::now, |lost| lost + self.hold));
                    welcome.session
                }
            };
            let mut failed = None;
            for chunk in updates.chunks(CHUNK) {
                let batch = chunk.to_vec();
                if let Err(error) = bridge.session_updates(owner.clone(), id, batch).await {
                    failed = Some(error);
                    break;
                }
            }
            if let Some(error) = failed {
                break Err(error.into());
            }
        };
        if let Some(id) = session {
            bridge.close(owner.clone(), id);
        }
        result.map_err(|error| (error, session.is_some()))
    }

    /// Connects, checks that gobgpd's BGP server runs, and asks for its
    /// best paths, the current table first.
    async fn subscribe(
        &self,
    ) -> Result<(Client, tonic::Streaming<api::WatchEventResponse>), WatchError> {
        let channel = match &self.api {
            GobgpApi::Tcp(address) => {
                tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                    .connect()
                    .await?
            }
            GobgpApi::Unix(path) => super::api::channel(path).await?,
        };
        // The initial table is one message: a full table is far past 4 MiB.
        let mut client = GobgpApiClient::new(channel).max_decoding_message_size(usize::MAX);
        let global = client.get_bgp(api::GetBgpRequest {}).await?.into_inner();
        if global.global.is_none_or(|global| global.asn == 0) {
            return Err(WatchError::NotStarted);
        }
        use api::watch_event_request::table::{Filter, filter::Type};
        let request = api::WatchEventRequest {
            table: Some(api::watch_event_request::Table {
                filters: vec![Filter {
                    r#type: Type::Best.into(),
                    init: true,
                }],
            }),
        };
        let stream = client.watch_event(request).await?.into_inner();
        Ok((client, stream))
    }
}

type Client = GobgpApiClient<tonic::transport::Channel>;

/// Where gobgpd's link-local neighbors are, from `ListPeer`: each one's
/// address, BGP identifier and interface.
#[derive(Debug, Default)]
struct Interfaces {
    neighbors: Vec<(Ipv6Addr, String, String)>,
}

impl Interfaces {
    async fn list(client: &mut Client) -> Result<Interfaces, WatchError> {
        let mut stream = client
            .list_peer(api::ListPeerRequest::default())
            .await?
            .into_inner();
        let mut peers = Vec::new();
        while let Some(response) = stream.next().await {
            peers.extend(response?.peer);
        }
        Ok(Interfaces::of_peers(&peers))
    }

    fn of_peers(peers: &[api::Peer]) -> Interfaces {
        Interfaces {
            neighbors: peers.iter().filter_map(link_local_neighbor).collect(),
        }
    }

    /// The interface of the link-local neighbor a path came from: by its
    /// address, and by its BGP identifier when two share the address.
    fn of(&self, neighbor: Ipv6Addr, source_id: &str) -> Result<&str, String> {
        let mut matching = self
            .neighbors
            .iter()
            .filter(|(address, _, _)| *address == neighbor)
            .peekable();
        let first = matching
            .next()
            .ok_or_else(|| format!("{UNKNOWN_NEIGHBOR} {neighbor}"))?;
        if matching.peek().is_none() {
            return Ok(&first.2);
        }
        let mut by_id = std::iter::once(first)
            .chain(matching)
            .filter(|(_, id, _)| id == source_id);
        match (by_id.next(), by_id.next()) {
            (Some(found), None) => Ok(&found.2),
            _ => Err(format!(
                "gobgpd has several neighbors {neighbor} on other interfaces, and the path's \
                 BGP identifier ({source_id:?}) does not tell which it came from"
            )),
        }
    }
}

/// The start of the reason for a path from a link-local neighbor that
/// `ListPeer` did not list (yet).
const UNKNOWN_NEIGHBOR: &str = "gobgpd lists no link-local neighbor";

fn unknown_neighbor(update: &Update) -> bool {
    matches!(update, Update::Invalid { reason, .. } if reason.contains(UNKNOWN_NEIGHBOR))
}

/// A peer's link-local address, BGP identifier and interface: the zone of
/// its address (as in use, or as configured), its unnumbered interface,
/// or the interface its transport is bound to.
fn link_local_neighbor(peer: &api::Peer) -> Option<(Ipv6Addr, String, String)> {
    let state = peer.state.clone().unwrap_or_default();
    let conf = peer.conf.clone().unwrap_or_default();
    let transport = peer.transport.clone().unwrap_or_default();
    let split = |text: &str| -> Option<(Ipv6Addr, String)> {
        let (address, zone) = text.split_once('%').unwrap_or((text, ""));
        Some((address.parse().ok()?, zone.to_owned()))
    };
    let (address, zone) = split(&state.neighbor_address)
        .filter(|(_, zone)| !zone.is_empty())
        .or_else(|| split(&conf.neighbor_address))
        .or_else(|| split(&state.neighbor_address))?;
    if !address.is_unicast_link_local() {
        return None;
    }
    let interface = [zone, conf.neighbor_interface, transport.bind_interface]
        .into_iter()
        .find(|name| !name.is_empty())?;
    Some((address, state.router_id, interface))
}

/// Sleeps until `deadline`; never, without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

fn refuse_log(updates: &[Update], owner: &Owner) {
    for update in updates {
        if let Update::Invalid { prefix, reason } = update {
            tracing::warn!(owner = %owner.as_str(), %prefix, %reason, "gobgpd path refused");
        }
    }
}

fn describe_api(api: &GobgpApi) -> String {
    match api {
        GobgpApi::Tcp(address) => address.to_string(),
        GobgpApi::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// The unicast families a follower takes.
#[derive(Debug, Clone, Copy)]
struct Families {
    ipv4: bool,
    ipv6: bool,
}

const TYPE_PREFIX: &str = "type.googleapis.com/apipb.";

/// The message in `any` if it is a `name`.
fn unpack<M: Message + Default>(any: &prost_types::Any, name: &str) -> Option<Result<M, String>> {
    let type_name = any.type_url.strip_prefix(TYPE_PREFIX)?;
    (type_name == name)
        .then(|| M::decode(any.value.as_slice()).map_err(|error| format!("{name}: {error}")))
}

/// A best path as a bridge update; `None` for families not taken here.
fn decode(path: &api::Path, families: Families, interfaces: &Interfaces) -> Option<Update> {
    use api::family::{Afi, Safi};
    let family = path.family.unwrap_or_default();
    let ipv6 = match (Afi::try_from(family.afi), Safi::try_from(family.safi)) {
        (Ok(Afi::Ip), Ok(Safi::Unicast)) if families.ipv4 => false,
        (Ok(Afi::Ip6), Ok(Safi::Unicast)) if families.ipv6 => true,
        _ => return None,
    };
    let invalid = |prefix: String, reason: String| Some(Update::Invalid { prefix, reason });
    let prefix =
        match path
            .nlri
            .as_ref()
            .and_then(|nlri| unpack::<api::IpAddressPrefix>(nlri, "IPAddressPrefix"))
        {
            Some(Ok(nlri)) => {
                let written = format!("{}/{}", nlri.prefix, nlri.prefix_len);
                match nlri.prefix.parse::<IpAddr>().ok().and_then(|address| {
                    IpNet::new(address, u8::try_from(nlri.prefix_len).ok()?).ok()
                }) {
                    Some(prefix) if prefix.trunc() == prefix && prefix.addr().is_ipv6() == ipv6 => {
                        prefix
                    }
                    _ => return invalid(written, "not a unicast prefix of its family".into()),
                }
            }
            Some(Err(reason)) => return invalid(String::new(), reason),
            None => {
                return invalid(
                    String::new(),
                    "a unicast path whose NLRI is not an IPAddressPrefix".into(),
                );
            }
        };
    if path.is_withdraw {
        return Some(Update::Withdraw(prefix));
    }
    match nexthop(path, ipv6, interfaces) {
        Ok(nexthop) => Some(Update::Offer(RouteSpec {
            prefix,
            nexthops: vec![nexthop],
            distance: DISTANCE,
            metric: 0,
        })),
        Err(reason) => invalid(prefix.to_string(), reason),
    }
}

/// The path's next hop: NEXT_HOP for IPv4, MP_REACH's for IPv6 (the global
/// one, or the link-local one when there is no global one). A link-local
/// next hop needs its interface: the zone of the neighbor it came from
/// (`fe80::2%wg-b`) when the path names one, else where `ListPeer` says
/// that neighbor is (GoBGP v3.10.0 writes `neighbor_ip` without a zone);
/// without one the path is refused rather than put on a guessed interface.
fn nexthop(path: &api::Path, ipv6: bool, interfaces: &Interfaces) -> Result<NexthopSpec, String> {
    let mut written: Vec<String> = Vec::new();
    for attribute in &path.pattrs {
        if let Some(next_hop) = unpack::<api::NextHopAttribute>(attribute, "NextHopAttribute") {
            written.push(next_hop?.next_hop);
        } else if let Some(reach) =
            unpack::<api::MpReachNlriAttribute>(attribute, "MpReachNLRIAttribute")
        {
            written.extend(reach?.next_hops);
        }
    }
    let addresses: Vec<IpAddr> = written
        .iter()
        .filter_map(|text| text.parse::<IpAddr>().ok())
        .filter(|address| address.is_ipv6() == ipv6 || !ipv6)
        .filter(|address| !address.is_unspecified())
        .collect();
    let link_local =
        |address: &IpAddr| matches!(address, IpAddr::V6(v6) if v6.is_unicast_link_local());
    let chosen = addresses
        .iter()
        .find(|address| !link_local(address))
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| format!("no usable next hop (gobgpd gave {written:?})"))?;
    if !link_local(&chosen) {
        return Ok(NexthopSpec::Address(chosen));
    }
    let on = |tunnel: &str| NexthopSpec::AddressOnTunnel {
        address: chosen,
        tunnel: tunnel.to_owned(),
    };
    match path.neighbor_ip.split_once('%') {
        Some((_, zone)) if !zone.is_empty() => Ok(on(zone)),
        _ => match path.neighbor_ip.parse::<Ipv6Addr>() {
            Ok(neighbor) if neighbor.is_unicast_link_local() => interfaces
                .of(neighbor, &path.source_id)
                .map(on)
                .map_err(|reason| format!("link-local next hop {chosen}: {reason}")),
            _ => Err(format!(
                "link-local next hop {chosen} without an interface (neighbor {:?} is not \
                 link-local, so its interface is unknown)",
                path.neighbor_ip
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Families = Families {
        ipv4: true,
        ipv6: true,
    };
    const NONE: Interfaces = Interfaces {
        neighbors: Vec::new(),
    };

    fn any(name: &str, message: &impl Message) -> prost_types::Any {
        prost_types::Any {
            type_url: format!("{TYPE_PREFIX}{name}"),
            value: message.encode_to_vec(),
        }
    }

    fn family(afi: api::family::Afi) -> Option<api::Family> {
        Some(api::Family {
            afi: afi.into(),
            safi: api::family::Safi::Unicast.into(),
        })
    }

    fn nlri(prefix: &str, length: u32) -> Option<prost_types::Any> {
        Some(any(
            "IPAddressPrefix",
            &api::IpAddressPrefix {
                prefix_len: length,
                prefix: prefix.into(),
            },
        ))
    }

    fn ipv4(prefix: &str, length: u32, next_hop: &str) -> api::Path {
        api::Path {
            nlri: nlri(prefix, length),
            pattrs: vec![any(
                "NextHopAttribute",
                &api::NextHopAttribute {
                    next_hop: next_hop.into(),
                },
            )],
            family: family(api::family::Afi::Ip),
            ..Default::default()
        }
    }

    fn ipv6(prefix: &str, length: u32, next_hops: &[&str], neighbor: &str) -> api::Path {
        api::Path {
            nlri: nlri(prefix, length),
            pattrs: vec![any(
                "MpReachNLRIAttribute",
                &api::MpReachNlriAttribute {
                    family: family(api::family::Afi::Ip6),
                    next_hops: next_hops.iter().map(|hop| hop.to_string()).collect(),
                    nlris: vec![],
                },
            )],
            family: family(api::family::Afi::Ip6),
            neighbor_ip: neighbor.into(),
            ..Default::default()
        }
    }

    /// Updates compare by their text (the bridge's type has no `Eq`).
    fn offer(prefix: &str, nexthop: NexthopSpec) -> String {
        shown(Some(Update::Offer(RouteSpec {
            prefix: prefix.parse().unwrap(),
            nexthops: vec![nexthop],
            distance: DISTANCE,
            metric: 0,
        })))
    }

    fn shown(update: Option<Update>) -> String {
        format!("{update:?}")
    }

    #[test]
    fn best_paths_become_offers_and_withdrawals_of_their_prefix() {
        let path = ipv4("192.168.77.0", 24, "10.255.0.1");
        assert_eq!(
            shown(decode(&path, BOTH, &NONE)),
            offer(
                "192.168.77.0/24",
                NexthopSpec::Address("10.255.0.1".parse().unwrap())
            )
        );
        let withdrawn = api::Path {
            is_withdraw: true,
            ..path
        };
        assert_eq!(
            shown(decode(&withdrawn, BOTH, &NONE)),
            shown(Some(Update::Withdraw("192.168.77.0/24".parse().unwrap())))
        );
        let path = ipv6("fd00:77::", 64, &["fd00:255::1", "fe80::1"], "");
        assert_eq!(
            shown(decode(&path, BOTH, &NONE)),
            offer(
                "fd00:77::/64",
                NexthopSpec::Address("fd00:255::1".parse().unwrap())
            )
        );
    }

    #[test]
    fn a_link_local_next_hop_keeps_its_interface_or_is_refused() {
        let path = ipv6("fd00:77::", 64, &["::", "fe80::2"], "fe80::2%wg-b");
        assert_eq!(
            shown(decode(&path, BOTH, &NONE)),
            offer(
                "fd00:77::/64",
                NexthopSpec::AddressOnTunnel {
                    address: "fe80::2".parse().unwrap(),
                    tunnel: "wg-b".into()
                }
            )
        );
        let path = ipv6("fd00:77::", 64, &["fe80::2"], "fd00::9");
        assert!(
            matches!(decode(&path, BOTH, &NONE), Some(Update::Invalid { reason, .. }) if reason.contains("without an interface")),
        );
    }

    fn peer(conf: &str, state: &str, interface: &str, router_id: &str) -> api::Peer {
        api::Peer {
            conf: Some(api::PeerConf {
                neighbor_address: conf.into(),
                neighbor_interface: interface.into(),
            }),
            state: Some(api::PeerState {
                neighbor_address: state.into(),
                router_id: router_id.into(),
            }),
            transport: None,
        }
    }

    #[test]
    fn a_link_local_neighbor_s_interface_comes_from_list_peer() {
        // GoBGP v3.10.0: neighbor_ip without a zone; ListPeer knows it.
        let interfaces = Interfaces::of_peers(&[
            peer("fe80::2%wg-b", "fe80::2%wg-b", "", "10.0.0.2"),
            peer("10.255.0.1", "10.255.0.1", "", "10.0.0.9"),
            // Unnumbered: the address found on the interface.
            peer("", "fe80::3%wg-c", "wg-c", "10.0.0.3"),
        ]);
        assert_eq!(interfaces.neighbors.len(), 2, "{interfaces:?}");
        let mut path = ipv6("fd00:77::", 64, &["fe80::2"], "fe80::2");
        path.source_id = "10.0.0.2".into();
        let on = |address: &str, tunnel: &str| NexthopSpec::AddressOnTunnel {
            address: address.parse().unwrap(),
            tunnel: tunnel.into(),
        };
        assert_eq!(
            shown(decode(&path, BOTH, &interfaces)),
            offer("fd00:77::/64", on("fe80::2", "wg-b"))
        );
        let path = ipv6("fd00:78::", 64, &["::", "fe80::3"], "fe80::3");
        assert_eq!(
            shown(decode(&path, BOTH, &interfaces)),
            offer("fd00:78::/64", on("fe80::3", "wg-c"))
        );
        // A neighbor not listed (yet): refused, and marked for a new list.
        let path = ipv6("fd00:79::", 64, &["fe80::4"], "fe80::4");
        let update = decode(&path, BOTH, &interfaces).unwrap();
        assert!(unknown_neighbor(&update), "{update:?}");

        // One address on two tunnels (as on dn42): the BGP identifier
        // tells them apart, or the path is refused.
        let interfaces = Interfaces::of_peers(&[
            peer("fe80::2%wg-b", "fe80::2%wg-b", "", "10.0.0.2"),
            peer("fe80::2%wg-d", "fe80::2%wg-d", "", "10.0.0.4"),
        ]);
        let mut path = ipv6("fd00:77::", 64, &["fe80::2"], "fe80::2");
        path.source_id = "10.0.0.4".into();
        assert_eq!(
            shown(decode(&path, BOTH, &interfaces)),
            offer("fd00:77::/64", on("fe80::2", "wg-d"))
        );
        path.source_id = "10.0.0.7".into();
        assert!(matches!(
            decode(&path, BOTH, &interfaces),
            Some(Update::Invalid { reason, .. }) if reason.contains("does not tell which")
        ));
    }

    #[test]
    fn other_families_are_left_and_bad_paths_refused_with_a_reason() {
        let path = ipv4("192.168.77.0", 24, "10.255.0.1");
        let only_ipv6 = Families {
            ipv4: false,
            ipv6: true,
        };
        assert!(decode(&path, only_ipv6, &NONE).is_none());
        let host_bits = ipv4("192.168.77.1", 24, "10.255.0.1");
        assert!(matches!(
            decode(&host_bits, BOTH, &NONE),
            Some(Update::Invalid { .. })
        ));
        let no_next_hop = ipv4("192.168.77.0", 24, "0.0.0.0");
        assert!(
            matches!(decode(&no_next_hop, BOTH, &NONE), Some(Update::Invalid { reason, .. }) if reason.contains("no usable next hop"))
        );
    }
}
