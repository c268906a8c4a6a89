//! A site running `wgd run` with its route bridge, and the far site its
//! tunnel reaches, for the bridge's end-to-end tests.
//!
//! Site A runs the daemon (the bridge lives there); site B brings its end
//! of the tunnel up with `wgd up` and has a LAN host on `lo`
//! ([`BridgeLab::FAR_LAN_HOST`]), so a route A learns toward it can be
//! proven by a ping. Tests talk to A's daemon as a routing program would,
//! over gRPC on its socket ([`BridgeLab::client`]), and read A's kernel
//! the way an operator would (`ip route ... proto 200`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_proto::v1 as api;
use wgd_proto::v1::route_service_client::RouteServiceClient;

use crate::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;

#[derive(Debug)]
pub struct BridgeLab {
    pub wgd: Wgd,
    pub a: Namespace,
    pub b: Namespace,
    pub tunnel_a: String,
    pub tunnel_b: String,
    pub config_a: String,
    pub socket: PathBuf,
    pub daemon: Option<Daemon>,
    /// The router between the sites, when the underlay is routed.
    pub router: Option<Namespace>,
    /// B's underlay address, the endpoint of A's peer.
    pub endpoint_b: &'static str,
    /// A's interface on the underlay.
    pub underlay_a: String,
}

impl BridgeLab {
    /// A's underlay address, which B's tunnel sends to.
    pub const UNDERLAY_A: &'static str = "198.18.0.1";
    /// B's underlay address: the endpoint of A's peer.
    pub const UNDERLAY_B: &'static str = "198.18.0.2";
    pub const TUNNEL_A: &'static str = "10.255.0.0";
    /// B's tunnel address: the nexthop of routes A learns.
    pub const TUNNEL_B: &'static str = "10.255.0.1";
    pub const TUNNEL_B6: &'static str = "fd00:255::1";
    pub const FAR_LAN: &'static str = "192.168.77.0/24";
    pub const FAR_LAN6: &'static str = "fd00:77::/64";
    pub const FAR_LAN6_HOST: &'static str = "fd00:77::1";
    pub const FAR_LAN_HOST: &'static str = "192.168.77.1";
    /// A's Prometheus endpoint, on A's own loopback.
    pub const METRICS: &'static str = "127.0.0.1:9586";

    /// Across a routed underlay: B's endpoint is reached through A's
    /// default route (metric 100, as DHCP installs it) via a router.
    pub const ROUTED_ENDPOINT_B: &'static str = "198.18.1.2";
    pub const ROUTER_A_SIDE: &'static str = "198.18.0.2";
    pub const ROUTER_B_SIDE: &'static str = "198.18.1.1";

    /// Both sites, A's daemon running with `bridge` as its `[bridge]`
    /// section (empty for the defaults), and the tunnel's first handshake
    /// done. The sites share one underlay subnet.
    pub fn new(bridge: &str) -> anyhow::Result<Self> {
        Self::build(bridge, false)
    }

    /// The same, with a router between the sites: each reaches the other's
    /// endpoint through its default route.
    pub fn routed(bridge: &str) -> anyhow::Result<Self> {
        Self::build(bridge, true)
    }

    fn build(bridge: &str, routed: bool) -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let a = Namespace::new("bra")?;
        let b = Namespace::new("brb")?;
        let (router, underlay_a, endpoint_a, endpoint_b) = if routed {
            let router = Namespace::new("brr")?;
            router.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            let (underlay_a, _) = underlay(
                &a,
                &format!("{}/30", Self::UNDERLAY_A),
                &router,
                &format!("{}/30", Self::ROUTER_A_SIDE),
            )?;
            underlay(
                &router,
                &format!("{}/30", Self::ROUTER_B_SIDE),
                &b,
                &format!("{}/30", Self::ROUTED_ENDPOINT_B),
            )?;
            a.add_route(&format!("default via {} metric 100", Self::ROUTER_A_SIDE))?;
            b.add_route(&format!("default via {} metric 100", Self::ROUTER_B_SIDE))?;
            (
                Some(router),
                underlay_a,
                Self::UNDERLAY_A,
                Self::ROUTED_ENDPOINT_B,
            )
        } else {
            let (underlay_a, _) = underlay(
                &a,
                &format!("{}/30", Self::UNDERLAY_A),
                &b,
                &format!("{}/30", Self::UNDERLAY_B),
            )?;
            (None, underlay_a, Self::UNDERLAY_A, Self::UNDERLAY_B)
        };
        b.add_address("lo", &format!("{}/24", Self::FAR_LAN_HOST))?;
        b.add_address("lo", &format!("{}/64", Self::FAR_LAN6_HOST))?;
        let (keys_a, keys_b) = (KeyPair::generate()?, KeyPair::generate()?);
        let (tunnel_a, tunnel_b) = (unique_name("wga"), unique_name("wgb"));
        let socket = a.dir().join("wgd.sock");
        let config_a = format!(
            "[daemon]\napi = \"{}\"\nmetrics = \"{}\"\n\n[bridge]\n{bridge}\n\n\
             [[tunnel]]\nname = \"{tunnel_a}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"{}/31\", \"fd00:255::/127\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{}:{PORT}\"\npersistent_keepalive = 1\n",
            socket.display(),
            Self::METRICS,
            keys_a.private,
            Self::TUNNEL_A,
            keys_b.public,
            endpoint_b,
        );
        let config_b = format!(
            "[[tunnel]]\nname = \"{tunnel_b}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"{}/31\", \"fd00:255::1/127\"]\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{}:{PORT}\"\npersistent_keepalive = 1\n",
            keys_b.private,
            Self::TUNNEL_B,
            keys_a.public,
            endpoint_a,
        );
        let config_a = write_config(a.dir(), "a.toml", &config_a)?
            .to_str()
            .context("a UTF-8 path")?
            .to_owned();
        let config_b = write_config(b.dir(), "b.toml", &config_b)?;
        wgd.run(&b, &["up", config_b.to_str().context("a UTF-8 path")?])?;
        let mut lab = Self {
            wgd,
            a,
            b,
            tunnel_a,
            tunnel_b,
            config_a,
            socket,
            daemon: None,
            router,
            endpoint_b,
            underlay_a,
        };
        lab.start_daemon()?;
        wait_for(Duration::from_secs(10), "the first handshake", || {
            lab.handshake_age().is_some_and(|age| age < 60)
        })?;
        Ok(lab)
    }

    /// Starts A's `wgd run` and waits until its API answers.
    pub fn start_daemon(&mut self) -> anyhow::Result<()> {
        let daemon = self.wgd.spawn(&self.a, &["run", "-c", &self.config_a])?;
        self.daemon = Some(daemon);
        let result = wait_for(Duration::from_secs(10), "the daemon's API", || {
            self.wgd
                .run(
                    &self.a,
                    &["routes", "--api", self.socket.to_str().unwrap_or_default()],
                )
                .is_ok()
        });
        if let Err(error) = result {
            let log = self.daemon.as_ref().map(Daemon::log).unwrap_or_default();
            anyhow::bail!("{error}\ndaemon log:\n{log}");
        }
        Ok(())
    }

    /// `kill -9` of A's daemon: nothing it could clean up.
    pub fn kill_daemon(&mut self) -> anyhow::Result<()> {
        if let Some(mut daemon) = self.daemon.take() {
            self.a.check(&["kill", "-9", &daemon.pid().to_string()])?;
            wait_for(Duration::from_secs(5), "the killed daemon to exit", || {
                !daemon.is_running()
            })?;
        }
        Ok(())
    }

    /// Seconds since A's latest handshake with B, from `wgd status`.
    pub fn handshake_age(&self) -> Option<u64> {
        let status = self.wgd.status(&self.a).ok()?;
        let tunnel = status.tunnel(&self.tunnel_a)?;
        tunnel.peers.first()?.latest_handshake_age_seconds
    }

    /// A gRPC client on A's daemon.
    pub async fn client(&self) -> anyhow::Result<RouteServiceClient<tonic::transport::Channel>> {
        Ok(wgd::daemon::api::connect_routes(&self.socket).await?)
    }

    /// A's routes with wgd's protocol number, as `ip route show proto 200`
    /// lists them (both families, all tables; the filter leaves the
    /// protocol out of each line).
    pub fn kernel_routes(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for family in ["-4", "-6"] {
            let text = self.a.check(&[
                "ip", "-N", family, "route", "show", "table", "all", "proto", "200",
            ])?;
            lines.extend(text.lines().map(|line| line.trim_end().to_owned()));
        }
        Ok(lines)
    }

    /// How many routes of wgd A's kernel has.
    pub fn kernel_count(&self) -> anyhow::Result<usize> {
        Ok(self.kernel_routes()?.len())
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }
}

/// A gRPC `Session` on A's daemon, as a routing program holds one.
#[derive(Debug)]
pub struct SessionClient {
    pub requests: tokio::sync::mpsc::Sender<api::SessionRequest>,
    pub responses: tonic::Streaming<api::SessionResponse>,
    pub welcome: api::Welcome,
}

impl SessionClient {
    /// Opens a session as `owner` with a hold time, and reads its Welcome.
    pub async fn open(lab: &BridgeLab, owner: &str, hold_seconds: u32) -> anyhow::Result<Self> {
        Self::open_on(&lab.socket, owner, hold_seconds).await
    }

    /// Opens a session on the daemon whose API socket is `socket`.
    pub async fn open_on(
        socket: &std::path::Path,
        owner: &str,
        hold_seconds: u32,
    ) -> anyhow::Result<Self> {
        let mut client = wgd::daemon::api::connect_routes(socket).await?;
        let (requests, outgoing) = tokio::sync::mpsc::channel(8);
        requests.send(hello(owner, hold_seconds)).await?;
        let mut responses = client
            .session(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        match responses.message().await?.and_then(|r| r.kind) {
            Some(api::session_response::Kind::Welcome(welcome)) => Ok(Self {
                requests,
                responses,
                welcome,
            }),
            other => anyhow::bail!("the session did not start with a Welcome: {other:?}"),
        }
    }

    /// Opens a session as `owner` on the daemon at `socket`, sends
    /// `routes` as one batch and End-of-RIB, and reads both answers; an
    /// error unless every route was installed. The session stays open.
    pub async fn announce(
        socket: &std::path::Path,
        owner: &str,
        hold_seconds: u32,
        routes: Vec<api::Route>,
    ) -> anyhow::Result<Self> {
        let mut session = Self::open_on(socket, owner, hold_seconds).await?;
        let count = routes.len();
        session
            .send(batch(1, routes, api::route_update::Operation::Add))
            .await?;
        session.send(end_of_rib()).await?;
        let api::session_response::Kind::BatchResult(result) = session.next().await? else {
            anyhow::bail!("no BatchResult");
        };
        let installed = result
            .results
            .iter()
            .filter(|r| r.state() == api::RouteState::Installed)
            .count();
        anyhow::ensure!(
            installed == count,
            "{installed} of {count} routes installed: {:?}",
            result
                .results
                .iter()
                .find(|r| r.state() != api::RouteState::Installed)
        );
        let api::session_response::Kind::EndOfRib(_) = session.next().await? else {
            anyhow::bail!("no EndOfRibResult");
        };
        Ok(session)
    }

    pub async fn send(&self, request: api::SessionRequest) -> anyhow::Result<()> {
        self.requests
            .send(request)
            .await
            .map_err(|_| anyhow::anyhow!("the session's request stream is closed"))
    }

    /// The next message from the daemon; an error if the session ended.
    pub async fn next(&mut self) -> anyhow::Result<api::session_response::Kind> {
        self.responses
            .message()
            .await?
            .and_then(|response| response.kind)
            .context("the session ended")
    }
}

/// A route through B's tunnel address.
pub fn route_via(prefix: &str, nexthop: &str) -> api::Route {
    api::Route {
        prefix: prefix.to_owned(),
        nexthops: vec![api::Nexthop {
            address: nexthop.to_owned(),
            tunnel: String::new(),
            bfd: false,
        }],
        distance: None,
        metric: 0,
    }
}

/// `count` distinct /24s from 100.64.0.0 up, for bulk tests.
pub fn bulk_prefixes(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| {
            let index = u32::try_from(index).expect("fewer than 2^32 prefixes");
            let base = u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + (index << 8);
            format!("{}/24", std::net::Ipv4Addr::from(base))
        })
        .collect()
}

/// Sends `routes` as one batch on a session and returns its results.
pub fn batch(
    id: u64,
    routes: Vec<api::Route>,
    operation: api::route_update::Operation,
) -> api::SessionRequest {
    api::SessionRequest {
        kind: Some(api::session_request::Kind::Batch(api::RouteBatch {
            id,
            updates: routes
                .into_iter()
                .map(|route| api::RouteUpdate {
                    operation: operation.into(),
                    route: Some(route),
                })
                .collect(),
        })),
    }
}

pub fn hello(owner: &str, hold_time_seconds: u32) -> api::SessionRequest {
    api::SessionRequest {
        kind: Some(api::session_request::Kind::Hello(api::Hello {
            owner: owner.to_owned(),
            hold_time_seconds,
        })),
    }
}

pub fn end_of_rib() -> api::SessionRequest {
    api::SessionRequest {
        kind: Some(api::session_request::Kind::EndOfRib(api::EndOfRib {})),
    }
}
