//! The gRPC `TunnelService` on the daemon's Unix socket, and the client
//! `wgd status` uses to reach it.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status as GrpcStatus};
use wgd_proto::v1 as api;
use wgd_proto::v1::tunnel_service_client::TunnelServiceClient;
use wgd_proto::v1::tunnel_service_server::{TunnelService, TunnelServiceServer};

use super::Snapshot;
use super::events::{Event, EventKind};
use crate::status::{Status, TunnelStatus};

impl From<&Event> for api::TunnelEvent {
    fn from(event: &Event) -> Self {
        use api::tunnel_event::Kind;
        let kind = match &event.kind {
            EventKind::TunnelUp => Kind::TunnelUp(api::TunnelUp {}),
            EventKind::TunnelDown { reason } => Kind::TunnelDown(api::TunnelDown {
                reason: reason.clone(),
            }),
            EventKind::PeerHandshake {
                public_key,
                endpoint,
            } => Kind::PeerHandshake(api::PeerHandshake {
                public_key: public_key.clone(),
                endpoint: endpoint.clone().unwrap_or_default(),
            }),
            EventKind::PeerDead {
                public_key,
                latest_handshake_age_seconds,
            } => Kind::PeerDead(api::PeerDead {
                public_key: public_key.clone(),
                latest_handshake_age_seconds: *latest_handshake_age_seconds,
            }),
            EventKind::BfdStateChange {
                peer,
                from,
                to,
                diagnostic,
                diagnostic_code,
            } => Kind::BfdStateChange(api::BfdStateChange {
                peer: peer.clone(),
                from: from.clone(),
                to: to.clone(),
                diagnostic: diagnostic.clone(),
                diagnostic_code: u32::from(*diagnostic_code),
            }),
        };
        api::TunnelEvent {
            unix_time: event
                .time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            tunnel: event.tunnel.clone(),
            kind: Some(kind),
        }
    }
}

/// The service: reads the daemon's latest snapshot and its event channel.
#[derive(Debug, Clone)]
pub struct TunnelApi {
    pub snapshot: Snapshot,
    pub events: broadcast::Sender<Event>,
    /// The config's `peer_dead_after`, as of the latest reload.
    pub dead_after: watch::Receiver<Duration>,
    /// The daemon's network namespace (0 when unknown).
    pub netns_cookie: u64,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<api::TunnelEvent, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl TunnelService for TunnelApi {
    async fn list_tunnels(
        &self,
        request: Request<api::ListTunnelsRequest>,
    ) -> Result<Response<api::ListTunnelsResponse>, GrpcStatus> {
        let name = request.into_inner().name;
        let tunnels = self
            .snapshot
            .read()
            .tunnels
            .iter()
            .filter(|tunnel| name.is_empty() || tunnel.name == name)
            .map(api::Tunnel::from)
            .collect();
        Ok(Response::new(api::ListTunnelsResponse {
            tunnels,
            netns_cookie: self.netns_cookie,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _request: Request<api::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, GrpcStatus> {
        // Subscribe first, then read the snapshot: no change falls between.
        let live = BroadcastStream::new(self.events.subscribe()).filter_map(|event| match event {
            Ok(event) => Some(Ok(api::TunnelEvent::from(&event))),
            // A slow reader missed some events; it keeps the rest.
            Err(_) => None,
        });
        let dead_after = *self.dead_after.borrow();
        let current = current_state(&self.snapshot.read(), dead_after, SystemTime::now());
        let replay = tokio_stream::iter(
            current
                .iter()
                .map(|event| Ok(api::TunnelEvent::from(event)))
                .collect::<Vec<_>>(),
        );
        Ok(Response::new(Box::pin(replay.chain(live))))
    }
}

/// The state a new watcher starts from, as events: each tunnel up or down,
/// each peer's latest handshake, and the peers whose latest handshake is
/// older than `dead_after`. A peer never heard from is not called dead
/// here: the live stream gives it `dead_after` from when the daemon first
/// saw it, which a snapshot cannot tell.
pub fn current_state(status: &Status, dead_after: Duration, now: SystemTime) -> Vec<Event> {
    let mut events = Vec::new();
    for tunnel in &status.tunnels {
        let event = |kind| Event {
            time: now,
            tunnel: tunnel.name.clone(),
            kind,
        };
        events.push(event(match &tunnel.reason {
            None if tunnel.up => EventKind::TunnelUp,
            reason => EventKind::TunnelDown {
                reason: reason.clone().unwrap_or_else(|| "down".into()),
            },
        }));
        for peer in &tunnel.peers {
            let Some(age) = peer.latest_handshake_age_seconds else {
                continue;
            };
            events.push(event(EventKind::PeerHandshake {
                public_key: peer.public_key.clone(),
                endpoint: peer.endpoint.clone(),
            }));
            if age > dead_after.as_secs() {
                events.push(event(EventKind::PeerDead {
                    public_key: peer.public_key.clone(),
                    latest_handshake_age_seconds: Some(age),
                }));
            }
        }
    }
    events
}

/// Binds the API socket (mode 0660), replacing a stale one.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("another daemon answers on {}", path.display()),
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Everything the daemon serves on each of its gRPC sockets.
#[derive(Debug, Clone)]
pub struct Services {
    pub tunnels: TunnelApi,
    pub routes: bgp_bridge::service::RouteApi,
    pub bgp: bgp_bridge::bgp::service::BgpApi,
    pub health: super::health::Health,
}

impl Services {
    /// The services, health and reflection on `server`.
    pub fn router(
        self,
        mut server: tonic::transport::Server,
    ) -> Result<tonic::transport::server::Router, super::health::ReflectionError> {
        let router = server
            .add_service(TunnelServiceServer::new(self.tunnels))
            .add_service(wgd_proto::v1::route_service_server::RouteServiceServer::new(self.routes))
            .add_service(wgd_proto::v1::bgp_service_server::BgpServiceServer::new(
                self.bgp,
            ));
        super::health::add_to(router, &self.health)
    }
}

/// Serves on the Unix socket until the server fails.
pub async fn serve(
    listener: tokio::net::UnixListener,
    services: Services,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    services
        .router(tonic::transport::Server::builder())?
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
        .await?;
    Ok(())
}

/// A client on the daemon's Unix socket.
pub async fn connect(
    path: &Path,
) -> Result<TunnelServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    Ok(TunnelServiceClient::new(channel(path).await?))
}

/// A route client on the daemon's Unix socket.
pub async fn connect_routes(
    path: &Path,
) -> Result<
    wgd_proto::v1::route_service_client::RouteServiceClient<tonic::transport::Channel>,
    tonic::transport::Error,
> {
    Ok(wgd_proto::v1::route_service_client::RouteServiceClient::new(channel(path).await?))
}

/// A BGP client on the daemon's Unix socket.
pub async fn connect_bgp(
    path: &Path,
) -> Result<
    wgd_proto::v1::bgp_service_client::BgpServiceClient<tonic::transport::Channel>,
    tonic::transport::Error,
> {
    Ok(wgd_proto::v1::bgp_service_client::BgpServiceClient::new(
        channel(path).await?,
    ))
}

pub(crate) async fn channel(
    path: &Path,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = tonic::transport::Endpoint::from_static("http://wgd.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await?;
    Ok(channel)
}

/// A daemon answered from another network namespace: its tunnels are not
/// this namespace's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: the daemon there runs in another network namespace (cookie {daemon}, this one {own})"
)]
pub struct OtherNamespace {
    pub path: String,
    pub daemon: u64,
    pub own: u64,
}

/// Asks a running daemon for its tunnels. Fails if the daemon runs in
/// another network namespace than the caller (socket paths are shared by
/// all namespaces), so that the caller reads its own devices instead.
pub async fn fetch_status(path: &Path) -> Result<Status, Box<dyn std::error::Error + Send + Sync>> {
    let own = crate::state::namespace_cookie()?;
    let mut client = connect(path).await?;
    let response = client
        .list_tunnels(api::ListTunnelsRequest::default())
        .await?
        .into_inner();
    if response.netns_cookie != own {
        return Err(OtherNamespace {
            path: path.display().to_string(),
            daemon: response.netns_cookie,
            own,
        }
        .into());
    }
    Ok(Status {
        tunnels: response
            .tunnels
            .into_iter()
            .map(TunnelStatus::from)
            .collect(),
    })
}

/// One line for `wgd events`: text, or JSON with `json`.
pub fn describe_event(event: &api::TunnelEvent, json: bool) -> String {
    use api::tunnel_event::Kind;
    let (kind, detail) = match &event.kind {
        Some(Kind::TunnelUp(_)) => ("tunnel-up", serde_json::json!({})),
        Some(Kind::TunnelDown(down)) => {
            ("tunnel-down", serde_json::json!({ "reason": down.reason }))
        }
        Some(Kind::PeerHandshake(peer)) => (
            "peer-handshake",
            serde_json::json!({ "peer": peer.public_key, "endpoint": peer.endpoint }),
        ),
        Some(Kind::PeerDead(peer)) => (
            "peer-dead",
            serde_json::json!({ "peer": peer.public_key, "latest_handshake_age_seconds": peer.latest_handshake_age_seconds }),
        ),
        Some(Kind::BfdStateChange(change)) => (
            "bfd-state",
            serde_json::json!({ "peer": change.peer, "from": change.from, "to": change.to, "diagnostic": change.diagnostic }),
        ),
        None => ("unknown", serde_json::json!({})),
    };
    if json {
        serde_json::json!({ "time": event.unix_time, "tunnel": event.tunnel, "event": kind, "detail": detail }).to_string()
    } else {
        let mut line = format!("{} {} {kind}", event.unix_time, event.tunnel);
        if let serde_json::Value::Object(fields) = detail {
            for (key, value) in fields {
                match value {
                    serde_json::Value::String(text) => line.push_str(&format!(" {key}={text}")),
                    serde_json::Value::Null => {}
                    other => line.push_str(&format!(" {key}={other}")),
                }
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{PeerStatus, TunnelStatus};

    fn peer(key: &str, age: Option<u64>, dead_after: u64) -> PeerStatus {
        PeerStatus {
            name: None,
            public_key: key.into(),
            endpoint: None,
            allowed_ips: vec![],
            latest_handshake_age_seconds: age,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
            alive: age.is_some_and(|age| age <= dead_after),
        }
    }

    #[test]
    fn replay_calls_dead_only_the_peers_whose_handshake_is_too_old() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let status = Status {
            tunnels: vec![TunnelStatus {
                name: "wg-a".into(),
                up: true,
                backend: None,
                public_key: None,
                listen_port: None,
                addresses: vec![],
                peer_addresses: Default::default(),
                mtu: None,
                reason: None,
                peers: vec![
                    peer("fresh", None, 180),
                    peer("recent", Some(180), 180),
                    peer("silent", Some(181), 180),
                ],
            }],
        };
        let kinds: Vec<EventKind> = current_state(&status, Duration::from_secs(180), now)
            .into_iter()
            .map(|event| event.kind)
            .collect();
        let handshake = |key: &str| EventKind::PeerHandshake {
            public_key: key.into(),
            endpoint: None,
        };
        assert_eq!(
            kinds,
            vec![
                EventKind::TunnelUp,
                handshake("recent"),
                handshake("silent"),
                EventKind::PeerDead {
                    public_key: "silent".into(),
                    latest_handshake_age_seconds: Some(181)
                },
            ]
        );
    }
}
