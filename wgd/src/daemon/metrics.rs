//! Prometheus metrics in the text format, on the configured address.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::Status;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TunnelLabels {
    pub tunnel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub tunnel: String,
    pub peer: String,
}

/// Every metric wgd exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub tunnel_up: Family<TunnelLabels, Gauge>,
    pub peer_handshake_age: Family<PeerLabels, Gauge>,
    pub peer_alive: Family<PeerLabels, Gauge>,
    pub peer_rx_bytes: Family<PeerLabels, Gauge>,
    pub peer_tx_bytes: Family<PeerLabels, Gauge>,
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub userspace_restarts: Counter,
}

impl Metrics {
    pub fn register(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::with_prefix("wgd");
        registry.register(
            "tunnel_up",
            "1 when the tunnel's interface is up and its device readable",
            self.tunnel_up.clone(),
        );
        registry.register(
            "peer_latest_handshake_age_seconds",
            "Seconds since the peer's latest handshake (absent if none yet)",
            self.peer_handshake_age.clone(),
        );
        registry.register(
            "peer_alive",
            "1 when the peer shook hands within the dead interval",
            self.peer_alive.clone(),
        );
        registry.register(
            "peer_receive_bytes",
            "Bytes received from the peer",
            self.peer_rx_bytes.clone(),
        );
        registry.register(
            "peer_transmit_bytes",
            "Bytes sent to the peer",
            self.peer_tx_bytes.clone(),
        );
        registry.register("reconciles", "Reconciles run", self.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "userspace_restarts",
            "wireguard-go processes restarted after they died",
            self.userspace_restarts.clone(),
        );
        registry
    }

    /// Sets the gauges from a snapshot (series of vanished peers go).
    pub fn observe(&self, status: &Status) {
        self.tunnel_up.clear();
        for family in [
            &self.peer_handshake_age,
            &self.peer_alive,
            &self.peer_rx_bytes,
            &self.peer_tx_bytes,
        ] {
            family.clear();
        }
        for tunnel in &status.tunnels {
            self.tunnel_up
                .get_or_create(&TunnelLabels {
                    tunnel: tunnel.name.clone(),
                })
                .set(i64::from(tunnel.up));
            for peer in &tunnel.peers {
                let labels = PeerLabels {
                    tunnel: tunnel.name.clone(),
                    peer: peer.public_key.clone(),
                };
                if let Some(age) = peer.latest_handshake_age_seconds {
                    self.peer_handshake_age
                        .get_or_create(&labels)
                        .set(age.try_into().unwrap_or(i64::MAX));
                }
                self.peer_alive
                    .get_or_create(&labels)
                    .set(i64::from(peer.alive));
                self.peer_rx_bytes
                    .get_or_create(&labels)
                    .set(peer.rx_bytes.try_into().unwrap_or(i64::MAX));
                self.peer_tx_bytes
                    .get_or_create(&labels)
                    .set(peer.tx_bytes.try_into().unwrap_or(i64::MAX));
            }
        }
    }
}

/// Serves `GET /metrics` until the task is dropped.
pub async fn serve(address: SocketAddr, registry: Arc<Registry>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        axum::http::StatusCode::OK,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        [(axum::http::header::CONTENT_TYPE, "text/plain")],
                        "encoding failed".to_owned(),
                    ),
                }
            }
        }),
    );
    axum::serve(listener, app).await
}
