//! The gRPC `RouteService` (`proto/wgd/v1/route.proto`) over a `Bridge`.
//!
//! Requests are read into the bridge's typed values here, at the edge: a
//! route that does not parse becomes a refusal in its place in the batch,
//! never an error for the whole call. A session's stream carries, out,
//! the answers to its requests, the nexthop changes it registered for, and
//! wgd's tunnel events; when the stream in ends (or breaks, as when the
//! client dies), the session is closed and the bridge keeps its routes for
//! the hold time. A session's requests go to the bridge as they are read,
//! a few ahead of their answers (which go out in order): the next batch
//! is read and parsed while the bridge works on this one and the kernel
//! takes the one before.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wgd_proto::v1 as api;
use wgd_proto::v1::route_service_server::RouteService;

use crate::engine::{Bridge, BridgeError, ResultPrefix, Update, UpdateResult};
use crate::policy;
use crate::rib::{RouteFilter, RouteRecord, RouteStatus};
use crate::route::{DEFAULT_DISTANCE, NexthopEvent, NexthopSpec, Owner, RouteSpec, ScopedAddress};

/// Answers a session may have waiting for its client before it stops
/// reading the client's requests.
const SESSION_QUEUE: usize = 64;

/// Requests of a session handed to the bridge and not yet answered. The
/// bridge prepares a batch in the RIB while the kernel takes the one
/// before, and the service reads the next while the bridge works: with
/// one batch at a time, each of the three would wait for the others.
const SESSION_IN_FLIGHT: usize = 4;

/// The owner of unary calls that name none.
pub const DEFAULT_STATIC_OWNER: &str = "cli";

/// The service: a handle on the bridge, and wgd's tunnel events.
#[derive(Debug, Clone)]
pub struct RouteApi {
    pub bridge: Bridge,
    pub tunnel_events: broadcast::Sender<api::TunnelEvent>,
    /// Where `AddRoutes` puts the nexthops it asks BFD for; without it,
    /// such a route is refused.
    pub bfd_requests: Option<BfdRequests>,
}

/// A nexthop to run BFD to: an address, and its tunnel when named.
pub type BfdTarget = (IpAddr, Option<String>);

/// The BFD nexthops of each route that asked, by owner and prefix.
pub type BfdRequestMap = BTreeMap<(String, IpNet), Vec<BfdTarget>>;

/// The nexthops `AddRoutes` asked BFD for (`Nexthop.bfd`), per owner and
/// prefix: the route added again without it, or deleted, drops its
/// request. Kept in a file beside the static routes, so that they outlive
/// a restart as the routes do; the daemon runs a BFD session to each.
#[derive(Debug, Clone)]
pub struct BfdRequests {
    requests: Arc<watch::Sender<BfdRequestMap>>,
    file: Option<PathBuf>,
}

/// One request as the file keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRequest {
    owner: String,
    prefix: IpNet,
    nexthops: Vec<StoredTarget>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredTarget {
    address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel: Option<String>,
}

impl BfdRequests {
    /// The requests kept in `file` (none when it is not there).
    pub fn load(file: Option<PathBuf>) -> BfdRequests {
        let mut requests = BTreeMap::new();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<Vec<StoredRequest>>(&bytes) {
                    Ok(stored) => {
                        for request in stored {
                            let targets = request
                                .nexthops
                                .into_iter()
                                .map(|target| (target.address, target.tunnel))
                                .collect();
                            requests.insert((request.owner, request.prefix), targets);
                        }
                    }
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "cannot read the kept BFD requests");
                    }
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "cannot read the kept BFD requests");
                }
            }
        }
        BfdRequests {
            requests: Arc::new(watch::Sender::new(requests)),
            file,
        }
    }

    /// The route of `owner` for `prefix` asks BFD for `targets` now (none:
    /// it asks nothing).
    fn set(&self, owner: &Owner, prefix: IpNet, targets: Vec<BfdTarget>) {
        let key = (owner.to_string(), prefix);
        let changed = self.requests.send_if_modified(|requests| {
            if targets.is_empty() {
                requests.remove(&key).is_some()
            } else if requests.get(&key) == Some(&targets) {
                false
            } else {
                requests.insert(key, targets);
                true
            }
        });
        if changed {
            self.save();
        }
    }

    fn save(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let stored: Vec<StoredRequest> = self
            .requests
            .borrow()
            .iter()
            .map(|((owner, prefix), targets)| StoredRequest {
                owner: owner.clone(),
                prefix: *prefix,
                nexthops: targets
                    .iter()
                    .map(|(address, tunnel)| StoredTarget {
                        address: *address,
                        tunnel: tunnel.clone(),
                    })
                    .collect(),
            })
            .collect();
        let write = || -> std::io::Result<()> {
            let text = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
            let partial = path.with_extension("json.new");
            std::fs::write(&partial, text)?;
            std::fs::rename(&partial, path)
        };
        if let Err(error) = write() {
            tracing::error!(path = %path.display(), %error, "cannot keep the BFD requests");
        }
    }

    /// Every nexthop asked for, once.
    pub fn nexthops(&self) -> Vec<BfdTarget> {
        let set: BTreeSet<BfdTarget> = self.requests.borrow().values().flatten().cloned().collect();
        set.into_iter().collect()
    }

    /// Tells of every change.
    pub fn subscribe(&self) -> watch::Receiver<BfdRequestMap> {
        self.requests.subscribe()
    }
}

/// The nexthops of `route` that ask for BFD; an error for one without an
/// address.
fn bfd_targets(route: &api::Route) -> Result<Vec<BfdTarget>, String> {
    let mut targets = Vec::new();
    for nexthop in route.nexthops.iter().filter(|nexthop| nexthop.bfd) {
        match parse_nexthop(nexthop)? {
            NexthopSpec::Address(address) => targets.push((address, None)),
            NexthopSpec::AddressOnTunnel { address, tunnel } => {
                targets.push((address, Some(tunnel)))
            }
            NexthopSpec::Tunnel(tunnel) => {
                return Err(format!(
                    "bfd on nexthop dev {tunnel}: BFD needs the nexthop's address (via ADDRESS)"
                ));
            }
        }
    }
    Ok(targets)
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<api::SessionResponse, Status>> + Send>>;

impl From<BridgeError> for Status {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::SessionExists(_) => Status::already_exists(error.to_string()),
            BridgeError::StaticOwner(_)
            | BridgeError::SessionOwner(_)
            | BridgeError::SessionClosed(_) => Status::failed_precondition(error.to_string()),
            BridgeError::Stopped => Status::unavailable(error.to_string()),
        }
    }
}

/// Reads one route of a request; the error is the refusal's reason.
pub fn parse_route(route: &api::Route) -> Result<RouteSpec, String> {
    let prefix = parse_prefix(&route.prefix)?;
    let nexthops = route
        .nexthops
        .iter()
        .map(parse_nexthop)
        .collect::<Result<Vec<_>, _>>()?;
    let distance = match route.distance {
        None => DEFAULT_DISTANCE,
        Some(distance) => u8::try_from(distance)
            .map_err(|_| format!("distance {distance}: out of range (0..=255)"))?,
    };
    Ok(RouteSpec {
        prefix,
        nexthops,
        distance,
        metric: route.metric,
    })
}

/// A prefix as written; a bare address is its host route.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("no prefix".into());
    }
    if let Ok(prefix) = text.parse::<IpNet>() {
        return Ok(prefix);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("\"{text}\" is not a prefix"))
}

/// A nexthop: an address, a tunnel, or both; a link-local address may
/// carry its tunnel as `fe80::2%dn42b` instead of in `tunnel`.
fn parse_nexthop(nexthop: &api::Nexthop) -> Result<NexthopSpec, String> {
    let tunnel = nexthop.tunnel.trim();
    let address = nexthop.address.trim();
    let scoped = if address.is_empty() {
        None
    } else {
        Some(
            address
                .parse::<ScopedAddress>()
                .map_err(|reason| format!("nexthop {reason}"))?,
        )
    };
    let scope = scoped.as_ref().and_then(|scoped| scoped.tunnel.clone());
    let tunnel = match (scope, tunnel) {
        (Some(scope), "") => scope,
        (Some(scope), tunnel) if scope != tunnel => {
            return Err(format!(
                "nexthop \"{address}\" names tunnel {scope}, and the nexthop's tunnel is {tunnel}"
            ));
        }
        (_, tunnel) => tunnel.to_owned(),
    };
    match (scoped.map(|scoped| scoped.address), tunnel.is_empty()) {
        (Some(address), true) => Ok(NexthopSpec::Address(address)),
        (Some(address), false) => Ok(NexthopSpec::AddressOnTunnel { address, tunnel }),
        (None, false) => Ok(NexthopSpec::Tunnel(tunnel)),
        (None, true) => Err("a nexthop needs an address or a tunnel".into()),
    }
}

fn nexthop_message(nexthop: &NexthopSpec) -> api::Nexthop {
    match nexthop {
        NexthopSpec::Address(address) => api::Nexthop {
            address: address.to_string(),
            tunnel: String::new(),
            bfd: false,
        },
        NexthopSpec::Tunnel(tunnel) => api::Nexthop {
            address: String::new(),
            tunnel: tunnel.clone(),
            bfd: false,
        },
        NexthopSpec::AddressOnTunnel { address, tunnel } => api::Nexthop {
            address: address.to_string(),
            tunnel: tunnel.clone(),
            bfd: false,
        },
    }
}

fn state(status: &RouteStatus) -> api::RouteState {
    match status {
        RouteStatus::Installed => api::RouteState::Installed,
        RouteStatus::Refused(_) => api::RouteState::Refused,
        RouteStatus::Queued(_) => api::RouteState::Queued,
        RouteStatus::Standby { .. } => api::RouteState::Standby,
        RouteStatus::Withdrawn => api::RouteState::Withdrawn,
        RouteStatus::Failed(_) => api::RouteState::Failed,
    }
}

fn result_message(result: UpdateResult) -> api::RouteResult {
    api::RouteResult {
        state: state(&result.status).into(),
        reason: result.status.reason(),
        prefix: prefix_text(result.prefix),
    }
}

/// A result's prefix as `IpNet` writes it; an IPv4 one (a full table's
/// bulk) without the formatting machinery, several times faster.
fn prefix_text(prefix: ResultPrefix) -> String {
    match prefix {
        ResultPrefix::Read(IpNet::V4(net)) => {
            let mut text = String::with_capacity(18);
            for (index, octet) in net.addr().octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                push_decimal(&mut text, octet);
            }
            text.push('/');
            push_decimal(&mut text, net.prefix_len());
            text
        }
        ResultPrefix::Read(prefix) => prefix.to_string(),
        ResultPrefix::Unread(text) => text,
    }
}

fn push_decimal(text: &mut String, value: u8) {
    if value >= 100 {
        text.push(char::from(b'0' + value / 100));
    }
    if value >= 10 {
        text.push(char::from(b'0' + value / 10 % 10));
    }
    text.push(char::from(b'0' + value % 10));
}

pub fn record_message(record: &RouteRecord) -> api::RouteEntry {
    api::RouteEntry {
        prefix: record.prefix.to_string(),
        owner: record.owner.to_string(),
        nexthops: record.nexthops.iter().map(nexthop_message).collect(),
        distance: u32::from(record.distance),
        metric: record.metric,
        state: state(&record.status).into(),
        reason: record.status.reason(),
        stale: record.stale,
    }
}

fn nexthop_update(event: NexthopEvent) -> api::NexthopUpdate {
    api::NexthopUpdate {
        address: event.address.to_string(),
        reachable: event.reachable,
        tunnel: event.tunnel.unwrap_or_default(),
        reason: event.reason,
    }
}

fn route_updates(updates: Vec<api::RouteUpdate>) -> Vec<Update> {
    use api::route_update::Operation;
    updates
        .into_iter()
        .map(|update| {
            let route = update.route.unwrap_or_default();
            let parsed = match Operation::try_from(update.operation) {
                Ok(Operation::Add | Operation::Replace) => parse_route(&route).map(Update::Offer),
                Ok(Operation::Delete) => parse_prefix(&route.prefix).map(Update::Withdraw),
                Ok(Operation::Unspecified) | Err(_) => {
                    Err(format!("unknown operation {}", update.operation))
                }
            };
            parsed.unwrap_or_else(|reason| Update::Invalid {
                prefix: route.prefix,
                reason,
            })
        })
        .collect()
}

/// An answer of a session on its way: the bridge's, in the order of the
/// requests.
type PendingAnswer =
    Pin<Box<dyn std::future::Future<Output = Result<api::session_response::Kind, Status>> + Send>>;

/// A bridge's reply, or the bridge gone.
async fn replied<T>(answer: tokio::sync::oneshot::Receiver<T>) -> Result<T, Status> {
    answer.await.map_err(|_| Status::from(BridgeError::Stopped))
}

fn owner_of(name: &str, default: Option<&str>) -> Result<Owner, Status> {
    let name = name.trim();
    let name = match (name.is_empty(), default) {
        (false, _) => name,
        (true, Some(default)) => default,
        (true, None) => return Err(Status::invalid_argument("the Hello must name an owner")),
    };
    if name.len() > 64 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Status::invalid_argument(format!(
            "owner \"{}\": at most 64 characters, no spaces",
            name.escape_default()
        )));
    }
    policy::check_owner(name).map_err(|refusal| Status::invalid_argument(refusal.to_string()))?;
    Ok(Owner::new(name))
}

#[tonic::async_trait]
impl RouteService for RouteApi {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<api::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        use api::session_request::Kind as In;
        use api::session_response::Kind as Out;
        let mut incoming = request.into_inner();
        let hello = match incoming.message().await? {
            Some(api::SessionRequest {
                kind: Some(In::Hello(hello)),
            }) => hello,
            _ => return Err(Status::invalid_argument("a session starts with a Hello")),
        };
        let owner = owner_of(&hello.owner, None)?;
        let hold = (hello.hold_time_seconds > 0)
            .then(|| Duration::from_secs(u64::from(hello.hold_time_seconds)));
        let (nexthop_sender, nexthop_events) = mpsc::unbounded_channel();
        let welcome = self
            .bridge
            .open(owner.clone(), hold, nexthop_sender)
            .await?;
        // Bounded: a client that stops reading slows its own session down
        // (its requests wait) instead of growing the daemon's memory.
        let (out, outgoing) = mpsc::channel::<Result<api::SessionResponse, Status>>(SESSION_QUEUE);
        let respond = |kind| Ok(api::SessionResponse { kind: Some(kind) });
        let _ = out
            .send(respond(Out::Welcome(api::Welcome {
                stale_routes: welcome.stale_routes,
            })))
            .await;

        // Nexthop changes and tunnel events, as long as the session lives.
        let forward = out.clone();
        let mut tunnel_events = self.tunnel_events.subscribe();
        let mut nexthop_events = nexthop_events;
        let pump = tokio::spawn(async move {
            loop {
                let kind = tokio::select! {
                    event = nexthop_events.recv() => match event {
                        Some(event) => Out::Nexthop(nexthop_update(event)),
                        None => break,
                    },
                    event = tunnel_events.recv() => match event {
                        Ok(event) => Out::TunnelEvent(event),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                };
                if forward
                    .send(Ok(api::SessionResponse { kind: Some(kind) }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });

        // The answers, in order, as the bridge gives them: a task of their
        // own, so that the requests after them are read and handed on
        // meanwhile (at most SESSION_IN_FLIGHT ahead).
        let (answers, mut waiting) = mpsc::channel::<PendingAnswer>(SESSION_IN_FLIGHT);
        tokio::spawn(async move {
            while let Some(answer) = waiting.recv().await {
                match answer.await {
                    Ok(kind) => {
                        if out.send(respond(kind)).await.is_err() {
                            break;
                        }
                    }
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        break;
                    }
                }
            }
        });

        let bridge = self.bridge.clone();
        tokio::spawn(async move {
            loop {
                let message = match incoming.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(%owner, %status, "session stream broke");
                        break;
                    }
                };
                let (answer, last): (PendingAnswer, bool) = match message.kind {
                    Some(In::Batch(batch)) => {
                        let updates = route_updates(batch.updates);
                        match bridge.submit_session_updates(owner.clone(), welcome.session, updates)
                        {
                            Ok(results) => {
                                let id = batch.id;
                                let answer = async move {
                                    let results = replied(results).await??;
                                    Ok(Out::BatchResult(api::BatchResult {
                                        id,
                                        results: results.into_iter().map(result_message).collect(),
                                    }))
                                };
                                (Box::pin(answer), false)
                            }
                            Err(error) => (Box::pin(std::future::ready(Err(error.into()))), true),
                        }
                    }
                    Some(In::EndOfRib(_)) => match bridge.submit_end_of_rib(owner.clone()) {
                        Ok(withdrawn) => {
                            let answer = async move {
                                let withdrawn = replied(withdrawn).await?;
                                Ok(Out::EndOfRib(api::EndOfRibResult { withdrawn }))
                            };
                            (Box::pin(answer), false)
                        }
                        Err(error) => (Box::pin(std::future::ready(Err(error.into()))), true),
                    },
                    Some(In::Nexthops(registration)) => {
                        let parse = |list: &[String]| -> Result<Vec<ScopedAddress>, String> {
                            list.iter()
                                .map(|text| text.parse::<ScopedAddress>())
                                .collect()
                        };
                        match (
                            parse(&registration.register),
                            parse(&registration.unregister),
                        ) {
                            (Ok(register), Ok(unregister)) => {
                                bridge.register(owner.clone(), register, unregister);
                                continue;
                            }
                            (Err(reason), _) | (_, Err(reason)) => {
                                let status = Status::invalid_argument(format!("nexthop {reason}"));
                                (Box::pin(std::future::ready(Err(status))), true)
                            }
                        }
                    }
                    Some(In::Hello(_)) => {
                        let status = Status::invalid_argument("a session sends one Hello, first");
                        (Box::pin(std::future::ready(Err(status))), true)
                    }
                    None => continue,
                };
                if answers.send(answer).await.is_err() || last {
                    break;
                }
            }
            bridge.close(owner, welcome.session);
            pump.abort();
        });
        let stream = ReceiverStream::new(outgoing);
        Ok(Response::new(Box::pin(stream) as SessionStream))
    }

    async fn add_routes(
        &self,
        request: Request<api::AddRoutesRequest>,
    ) -> Result<Response<api::AddRoutesResponse>, Status> {
        let request = request.into_inner();
        let owner = owner_of(&request.owner, Some(DEFAULT_STATIC_OWNER))?;
        let mut asked = Vec::new();
        let updates = request
            .routes
            .iter()
            .map(|route| {
                let targets = bfd_targets(route).and_then(|targets| {
                    if !targets.is_empty() && self.bfd_requests.is_none() {
                        return Err("bfd: this server runs no BFD".to_owned());
                    }
                    Ok(targets)
                });
                match parse_route(route).and_then(|spec| targets.map(|targets| (spec, targets))) {
                    Ok((spec, targets)) => {
                        asked.push((spec.prefix, targets));
                        Update::Offer(spec)
                    }
                    Err(reason) => Update::Invalid {
                        prefix: route.prefix.clone(),
                        reason,
                    },
                }
            })
            .collect();
        let results = self.bridge.static_updates(owner.clone(), updates).await?;
        if let Some(requests) = &self.bfd_requests {
            for (prefix, targets) in asked {
                let refused = results.iter().any(|result| {
                    result.prefix == ResultPrefix::Read(prefix)
                        && matches!(result.status, RouteStatus::Refused(_))
                });
                if !refused {
                    requests.set(&owner, prefix, targets);
                }
            }
        }
        Ok(Response::new(api::AddRoutesResponse {
            results: results.into_iter().map(result_message).collect(),
        }))
    }

    async fn delete_routes(
        &self,
        request: Request<api::DeleteRoutesRequest>,
    ) -> Result<Response<api::DeleteRoutesResponse>, Status> {
        let request = request.into_inner();
        let owner = owner_of(&request.owner, Some(DEFAULT_STATIC_OWNER))?;
        let updates = request
            .prefixes
            .iter()
            .map(|text| match parse_prefix(text) {
                Ok(prefix) => Update::Withdraw(prefix),
                Err(reason) => Update::Invalid {
                    prefix: text.clone(),
                    reason,
                },
            })
            .collect();
        let results = self.bridge.static_updates(owner.clone(), updates).await?;
        if let Some(requests) = &self.bfd_requests {
            for prefix in request
                .prefixes
                .iter()
                .filter_map(|text| parse_prefix(text).ok())
            {
                requests.set(&owner, prefix, Vec::new());
            }
        }
        Ok(Response::new(api::DeleteRoutesResponse {
            results: results.into_iter().map(result_message).collect(),
        }))
    }

    async fn list_routes(
        &self,
        request: Request<api::ListRoutesRequest>,
    ) -> Result<Response<api::ListRoutesResponse>, Status> {
        let request = request.into_inner();
        let filter = RouteFilter {
            owner: (!request.owner.is_empty()).then(|| Owner::new(request.owner.clone())),
            prefix: if request.prefix.is_empty() {
                None
            } else {
                Some(parse_prefix(&request.prefix).map_err(Status::invalid_argument)?)
            },
            tunnel: (!request.tunnel.is_empty()).then(|| request.tunnel.clone()),
        };
        let routes = self.bridge.routes(filter).await?;
        Ok(Response::new(api::ListRoutesResponse {
            routes: routes.iter().map(record_message).collect(),
        }))
    }

    async fn get_statistics(
        &self,
        _: Request<api::GetStatisticsRequest>,
    ) -> Result<Response<api::GetStatisticsResponse>, Status> {
        let statistics = self.bridge.statistics().await?;
        let counters = &statistics.counters;
        Ok(Response::new(api::GetStatisticsResponse {
            owners: statistics
                .owners
                .iter()
                .map(|owner| api::OwnerStatistics {
                    owner: owner.owner.to_string(),
                    connected: owner.connected,
                    routes: owner.counts.routes,
                    installed: owner.counts.installed,
                    queued: owner.counts.queued,
                    standby: owner.counts.standby,
                    stale: owner.counts.stale,
                    failed: owner.counts.failed,
                    hold_remaining_seconds: owner.hold_remaining.map(|d| d.as_secs()),
                    prefix_limit: owner.prefix_limit,
                })
                .collect(),
            kernel_routes: counters.kernel_routes,
            fib_operations: counters.fib_operations,
            fib_errors: counters.fib_errors,
            endpoint_pins: counters.endpoint_pins,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_requests_follow_their_routes_and_outlive_a_restart() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("bfd-routes.json");
        let requests = BfdRequests::load(Some(file.clone()));
        assert!(requests.nexthops().is_empty());
        let cli = Owner::new("cli");
        let (lan, lan2): (IpNet, IpNet) = (
            "192.168.77.0/24".parse().unwrap(),
            "192.168.78.0/24".parse().unwrap(),
        );
        let b: IpAddr = "10.255.0.1".parse().unwrap();
        let c: IpAddr = "fe80::2".parse().unwrap();
        requests.set(&cli, lan, vec![(b, None)]);
        requests.set(&cli, lan2, vec![(b, None), (c, Some("wg-c".into()))]);
        assert_eq!(
            requests.nexthops(),
            [(b, None), (c, Some("wg-c".to_owned()))]
        );
        // A new daemon reads them back.
        let again = BfdRequests::load(Some(file.clone()));
        assert_eq!(again.nexthops(), requests.nexthops());
        // A route added again without bfd, or deleted, asks nothing.
        again.set(&cli, lan2, Vec::new());
        assert_eq!(again.nexthops(), [(b, None)]);
        again.set(&cli, lan, Vec::new());
        assert!(BfdRequests::load(Some(file)).nexthops().is_empty());
    }

    #[test]
    fn result_prefixes_are_written_as_ipnet_writes_them() {
        for text in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.168.100.0/24",
            "255.255.255.255/32",
            "1.20.3.0/27",
            "2001:db8::/32",
        ] {
            let prefix: IpNet = text.parse().unwrap();
            assert_eq!(prefix_text(ResultPrefix::Read(prefix)), prefix.to_string());
        }
        for octet in 0..=255u8 {
            let prefix = IpNet::from(IpAddr::from([octet, 0, octet, octet]));
            assert_eq!(prefix_text(ResultPrefix::Read(prefix)), prefix.to_string());
        }
        assert_eq!(
            prefix_text(ResultPrefix::Unread(" not a prefix".into())),
            " not a prefix"
        );
    }

    #[test]
    fn bfd_needs_a_nexthop_address() {
        let nexthop = |address: &str, tunnel: &str, bfd: bool| api::Nexthop {
            address: address.into(),
            tunnel: tunnel.into(),
            bfd,
        };
        let route = |nexthops| api::Route {
            prefix: "192.0.2.0/24".into(),
            nexthops,
            distance: None,
            metric: 0,
        };
        let targets = bfd_targets(&route(vec![
            nexthop("10.255.0.1", "", true),
            nexthop("fe80::2%wg-c", "", true),
            nexthop("10.254.0.2", "", false),
        ]))
        .unwrap();
        assert_eq!(
            targets,
            [
                ("10.255.0.1".parse().unwrap(), None),
                ("fe80::2".parse().unwrap(), Some("wg-c".to_owned()))
            ]
        );
        assert!(
            bfd_targets(&route(vec![nexthop("", "wg-b", true)]))
                .unwrap_err()
                .contains("BFD needs the nexthop's address")
        );
    }

    #[test]
    fn requests_are_read_into_routes_or_refusals() {
        let route = api::Route {
            prefix: "192.0.2.0/24".into(),
            nexthops: vec![
                api::Nexthop {
                    address: "10.255.0.1".into(),
                    tunnel: String::new(),
                    bfd: false,
                },
                api::Nexthop {
                    address: String::new(),
                    tunnel: "wg-b".into(),
                    bfd: false,
                },
            ],
            distance: None,
            metric: 5,
        };
        let spec = parse_route(&route).unwrap();
        assert_eq!(spec.distance, DEFAULT_DISTANCE);
        assert_eq!(spec.nexthops[1], NexthopSpec::Tunnel("wg-b".into()));
        assert_eq!(parse_prefix("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(
            parse_prefix("10.0.0.0/33").unwrap_err(),
            "\"10.0.0.0/33\" is not a prefix"
        );
        let bad = api::Route {
            distance: Some(300),
            ..route.clone()
        };
        assert_eq!(
            parse_route(&bad).unwrap_err(),
            "distance 300: out of range (0..=255)"
        );
        let bad = api::Route {
            nexthops: vec![api::Nexthop::default()],
            ..route
        };
        assert_eq!(
            parse_route(&bad).unwrap_err(),
            "a nexthop needs an address or a tunnel"
        );
        // RFC 8950: an IPv4 route through a link-local IPv6 nexthop, its
        // tunnel given either way.
        let nexthop = |address: &str, tunnel: &str| api::Nexthop {
            address: address.into(),
            tunnel: tunnel.into(),
            bfd: false,
        };
        let on_dn42b = NexthopSpec::AddressOnTunnel {
            address: "fe80::2".parse().unwrap(),
            tunnel: "dn42b".into(),
        };
        assert_eq!(
            parse_nexthop(&nexthop("fe80::2", "dn42b")),
            Ok(on_dn42b.clone())
        );
        assert_eq!(
            parse_nexthop(&nexthop("fe80::2%dn42b", "")),
            Ok(on_dn42b.clone())
        );
        assert_eq!(
            parse_nexthop(&nexthop("fe80::2%dn42b", "dn42b")),
            Ok(on_dn42b)
        );
        assert_eq!(
            parse_nexthop(&nexthop("fe80::2%dn42b", "dn42c")).unwrap_err(),
            "nexthop \"fe80::2%dn42b\" names tunnel dn42b, and the nexthop's tunnel is dn42c"
        );
        assert_eq!(
            parse_nexthop(&nexthop("fe80::2%", "")).unwrap_err(),
            "nexthop \"fe80::2%\": no tunnel after %"
        );
        assert!(owner_of("", None).is_err());
        assert_eq!(owner_of("", Some("cli")).unwrap(), Owner::new("cli"));
        assert!(owner_of("bgp:1.2.3.4", None).is_err());
        assert!(owner_of("two words", None).is_err());
    }
}
