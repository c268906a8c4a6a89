//! The gRPC `BgpService` (`proto/wgd/v1/bgp.proto`): the speaker's status
//! as `wgd bgp summary`, `wgd bgp routes` and `wgd bfd` show it.

use std::time::SystemTime;

use tonic::{Request, Response, Status};
use wgd_proto::v1 as api;
use wgd_proto::v1::bgp_service_server::BgpService;

use super::session::State;
use super::speaker::Speaker;
use super::types::{AsSegment, Attributes, NeighborId, NeighborIdError, Origin};

#[derive(Debug, Clone)]
pub struct BgpApi {
    /// `None` when the config has no `[bgp]`.
    pub speaker: Option<Speaker>,
    /// The BFD sessions (the speaker's neighbors' and static routes'
    /// nexthops'), with or without a speaker.
    pub bfd: Option<super::bfd::Bfd>,
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "opensent",
        State::OpenConfirm => "openconfirm",
        State::Established => "established",
    }
}

fn as_path_text(segments: &[AsSegment]) -> String {
    segments
        .iter()
        .map(|segment| {
            let join = |asns: &[u32]| {
                asns.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            match segment {
                AsSegment::Sequence(asns) => join(asns),
                AsSegment::Set(asns) => format!("{{{}}}", join(asns)),
                AsSegment::ConfedSequence(asns) => format!("({})", join(asns)),
                AsSegment::ConfedSet(asns) => format!("[{}]", join(asns)),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The nexthop as received: the global one, and the link-local one beside
/// it (RFC 2545) after a comma, as `2001:db8::2,fe80::2`.
fn next_hop_text(attributes: &Attributes) -> String {
    match (
        attributes.next_hop.address(),
        attributes.next_hop.link_local(),
    ) {
        (Some(next_hop), Some(link_local)) if next_hop != link_local => {
            format!("{next_hop},{link_local}")
        }
        (Some(next_hop), _) => next_hop.to_string(),
        (None, _) => String::new(),
    }
}

/// A route target or origin as a policy names it (`rt:65000:1`), any
/// other extended community as its octets in hex.
fn extended_community_text(value: u64) -> String {
    match super::policy::ExtendedCommunity::of(value) {
        Some(community) => community.to_string(),
        None => format!("{value:#018x}"),
    }
}

impl BgpApi {
    fn speaker(&self) -> Result<&Speaker, Status> {
        self.speaker
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("no [bgp] in the daemon's config"))
    }
}

#[tonic::async_trait]
impl BgpService for BgpApi {
    async fn get_summary(
        &self,
        _: Request<api::BgpSummaryRequest>,
    ) -> Result<Response<api::BgpSummaryResponse>, Status> {
        let status = self.speaker()?.status();
        let now = SystemTime::now();
        Ok(Response::new(api::BgpSummaryResponse {
            asn: status.asn,
            router_id: status
                .router_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            neighbors: status
                .neighbors
                .iter()
                .map(|neighbor| api::BgpNeighbor {
                    address: neighbor.id.to_string(),
                    tunnel: neighbor.tunnel.clone().unwrap_or_default(),
                    remote_as: neighbor.remote_as,
                    state: state_name(neighbor.state).to_owned(),
                    state_seconds: now
                        .duration_since(neighbor.since)
                        .map(|elapsed| elapsed.as_secs())
                        .unwrap_or(0),
                    prefixes_received: neighbor.prefixes_received,
                    prefixes_accepted: neighbor.prefixes_accepted,
                    prefixes_sent: neighbor.prefixes_sent,
                    messages_received: neighbor.messages_received,
                    messages_sent: neighbor.messages_sent,
                    last_error: neighbor.last_error.clone(),
                    description: neighbor.description.clone().unwrap_or_default(),
                    resets: neighbor.resets,
                    prefixes_blocked: neighbor.prefixes_blocked,
                })
                .collect(),
        }))
    }

    async fn list_bfd_sessions(
        &self,
        _: Request<api::BfdSessionsRequest>,
    ) -> Result<Response<api::BfdSessionsResponse>, Status> {
        let now = SystemTime::now();
        let millis =
            |duration: std::time::Duration| u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let sessions = match (&self.bfd, &self.speaker) {
            (Some(bfd), _) => bfd.status(),
            (None, Some(speaker)) => speaker.bfd(),
            (None, None) => Vec::new(),
        };
        let sessions = sessions
            .into_iter()
            .map(|session| api::BfdSession {
                peer: session.neighbor.to_string(),
                tunnel: session.tunnel.unwrap_or_default(),
                clients: session
                    .clients
                    .names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                state: session.state.name().to_owned(),
                remote_state: session.remote_state.name().to_owned(),
                local_discriminator: session.local_discriminator,
                remote_discriminator: session.remote_discriminator,
                transmit_interval_ms: millis(session.timers.desired_min_tx()),
                receive_interval_ms: millis(session.timers.required_min_rx()),
                multiplier: u32::from(session.timers.detect_multiplier()),
                negotiated_transmit_ms: millis(session.transmit_interval),
                detection_time_ms: session.detection_time.map(millis).unwrap_or(0),
                uptime_seconds: session
                    .up_since
                    .and_then(|since| now.duration_since(since).ok())
                    .map(|up| up.as_secs())
                    .unwrap_or(0),
                diagnostic_code: u32::from(session.diagnostic.code()),
                diagnostic: session.diagnostic.to_string(),
                state_changes: session.state_changes,
            })
            .collect();
        Ok(Response::new(api::BfdSessionsResponse { sessions }))
    }

    async fn list_paths(
        &self,
        request: Request<api::BgpPathsRequest>,
    ) -> Result<Response<api::BgpPathsResponse>, Status> {
        let request = request.into_inner();
        // `fe80::2%dn42b` or an address, however the address is written.
        let neighbor: Option<NeighborId> = match request.neighbor.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|error: NeighborIdError| {
                Status::invalid_argument(format!("neighbor \"{text}\": {error}"))
            })?),
        };
        let paths = self.speaker()?.paths().await;
        let paths = paths
            .iter()
            .filter(|path| neighbor.is_none() || path.neighbor == neighbor)
            .filter(|path| request.prefix.is_empty() || path.prefix.to_string() == request.prefix)
            .map(|path| api::BgpPath {
                prefix: path.prefix.to_string(),
                neighbor: path.neighbor.map(|a| a.to_string()).unwrap_or_default(),
                next_hop: next_hop_text(&path.attributes),
                as_path: as_path_text(&path.attributes.as_path.to_segments()),
                origin: match path.attributes.origin {
                    Origin::Igp => "igp",
                    Origin::Egp => "egp",
                    Origin::Incomplete => "incomplete",
                }
                .to_owned(),
                med: path.attributes.med(),
                local_pref: path.attributes.local_pref(),
                communities: path
                    .attributes
                    .communities
                    .iter()
                    .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                    .collect(),
                best: path.best,
                stale: path.stale,
                reason: String::new(),
                large_communities: path
                    .attributes
                    .large_communities()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                extended_communities: path
                    .attributes
                    .extended_communities()
                    .iter()
                    .map(|value| extended_community_text(*value))
                    .collect(),
                rpki: path
                    .validity
                    .map(|validity| validity.as_str().to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(api::BgpPathsResponse { paths }))
    }

    async fn get_rpki(
        &self,
        _: Request<api::RpkiRequest>,
    ) -> Result<Response<api::RpkiResponse>, Status> {
        let status = self.speaker()?.status();
        let rpki = status.rpki.ok_or_else(|| {
            Status::failed_precondition("no [[rpki.server]] in the daemon's config")
        })?;
        let now = SystemTime::now();
        Ok(Response::new(api::RpkiResponse {
            servers: rpki
                .servers
                .iter()
                .map(|server| api::RpkiServer {
                    address: server.address.to_string(),
                    preference: u32::from(server.preference),
                    state: server.state.to_owned(),
                    source: server.source,
                    version: u32::from(server.version),
                    session_id: server.session.map(u32::from),
                    serial: server.serial,
                    last_update_seconds: server.last_update.map(|at| {
                        now.duration_since(at)
                            .map(|elapsed| elapsed.as_secs())
                            .unwrap_or(0)
                    }),
                    refresh: server.refresh,
                    retry: server.retry,
                    expire: server.expire,
                    last_error: server.last_error.clone(),
                })
                .collect(),
            vrps_ipv4: rpki.vrps_ipv4 as u64,
            vrps_ipv6: rpki.vrps_ipv6 as u64,
            routes_valid: rpki.routes[0] as u64,
            routes_invalid: rpki.routes[1] as u64,
            routes_not_found: rpki.routes[2] as u64,
        }))
    }

    async fn validate_route(
        &self,
        request: Request<api::RpkiValidateRequest>,
    ) -> Result<Response<api::RpkiValidateResponse>, Status> {
        let request = request.into_inner();
        let prefix: ipnet::IpNet = request.prefix.parse().map_err(|_| {
            Status::invalid_argument(format!("prefix \"{}\": not a prefix", request.prefix))
        })?;
        let validation = self
            .speaker()?
            .validate(prefix, request.origin_as)
            .await
            .ok_or_else(|| {
                Status::failed_precondition("no [[rpki.server]] in the daemon's config")
            })?;
        Ok(Response::new(api::RpkiValidateResponse {
            state: validation.validity.as_str().to_owned(),
            covering: validation
                .covering
                .iter()
                .map(|vrp| api::Vrp {
                    prefix: vrp.prefix.to_string(),
                    max_length: u32::from(vrp.max_length),
                    asn: vrp.asn,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::types::NextHop;

    #[test]
    fn next_hops_read_as_received() {
        let with = |next_hop: &str, link_local: Option<&str>| Attributes {
            next_hop: NextHop::new(
                Some(next_hop.parse().unwrap()),
                link_local.map(|address| address.parse().unwrap()),
            ),
            ..Attributes::default()
        };
        assert_eq!(next_hop_text(&with("10.0.0.1", None)), "10.0.0.1");
        assert_eq!(next_hop_text(&with("fe80::2", None)), "fe80::2");
        // FRR's link-local in both fields reads once.
        assert_eq!(next_hop_text(&with("fe80::2", Some("fe80::2"))), "fe80::2");
        assert_eq!(
            next_hop_text(&with("2001:db8::2", Some("fe80::2"))),
            "2001:db8::2,fe80::2"
        );
        assert_eq!(next_hop_text(&Attributes::default()), "");
    }

    #[test]
    fn extended_communities_read_as_policies_name_them() {
        assert_eq!(extended_community_text(0x0002_fde9_0000_0007), "rt:65001:7");
        assert_eq!(
            extended_community_text(0x0203_fcde_3121_0009),
            "ro:4242420001:9"
        );
        assert_eq!(
            extended_community_text(0x0102_c000_0201_0005),
            "rt:192.0.2.1:5"
        );
        assert_eq!(
            extended_community_text(0x030c_0000_0000_0007),
            "0x030c000000000007"
        );
    }
}
