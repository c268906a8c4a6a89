//! Prometheus metrics in the text format, on the configured address.
//!
//! Two sources: `Metrics` holds the counters of what the daemon did
//! (reconciles, failed ones, wireguard-go restarts), bumped as it goes;
//! `StatusCollector` encodes tunnels and peers from the daemon's latest
//! status snapshot at scrape time, so a scrape sees one whole snapshot and
//! a peer's series exist exactly as long as the peer does.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::Snapshot;
use crate::status::{PeerStatus, Status};

/// The daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub userspace_restarts: Counter,
}

impl Metrics {
    /// Every metric wgd exports: these counters, and the tunnels and peers
    /// of `snapshot`.
    pub fn register(&self, snapshot: Snapshot) -> Registry {
        let mut registry = Registry::with_prefix("wgd");
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
        registry.register_collector(Box::new(StatusCollector { snapshot }));
        registry
    }
}

/// Tunnels and peers, read from the snapshot on each scrape.
#[derive(Debug)]
struct StatusCollector {
    snapshot: Snapshot,
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_status(&self.snapshot.read(), &mut encoder)
    }
}

fn encode_status(status: &Status, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "tunnel_up",
        "1 when the tunnel's interface is up and its device readable.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for tunnel in &status.tunnels {
        let labels = [("tunnel", tunnel.name.as_str())];
        ConstGauge::new(i64::from(tunnel.up)).encode(family.encode_family(&labels)?)?;
    }
    encode_peers(
        encoder,
        status,
        "peer_latest_handshake_age",
        "Seconds since the peer's latest handshake (absent if none yet).",
        Some(&Unit::Seconds),
        |peer| peer.latest_handshake_age_seconds.map(ConstGauge::new),
    )?;
    encode_peers(
        encoder,
        status,
        "peer_alive",
        "1 when the peer shook hands within the dead interval.",
        None,
        |peer| Some(ConstGauge::new(i64::from(peer.alive))),
    )?;
    encode_peers(
        encoder,
        status,
        "peer_receive",
        "Bytes received from the peer (since its device was created).",
        Some(&Unit::Bytes),
        |peer| Some(ConstCounter::new(peer.rx_bytes)),
    )?;
    encode_peers(
        encoder,
        status,
        "peer_transmit",
        "Bytes sent to the peer (since its device was created).",
        Some(&Unit::Bytes),
        |peer| Some(ConstCounter::new(peer.tx_bytes)),
    )
}

/// One metric with a series per peer that has a `value`, labelled
/// `tunnel`, `peer` (its public key) and `name` when the config gives one.
fn encode_peers<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    status: &Status,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl Fn(&PeerStatus) -> Option<M>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, M::TYPE)?;
    for tunnel in &status.tunnels {
        for peer in &tunnel.peers {
            let Some(metric) = value(peer) else { continue };
            let mut labels = vec![
                ("tunnel", tunnel.name.as_str()),
                ("peer", peer.public_key.as_str()),
            ];
            if let Some(peer_name) = &peer.name {
                labels.push(("name", peer_name.as_str()));
            }
            metric.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::TunnelStatus;

    fn peer(key: &str, name: Option<&str>, age: Option<u64>, bytes: u64) -> PeerStatus {
        PeerStatus {
            name: name.map(Into::into),
            public_key: key.into(),
            endpoint: None,
            allowed_ips: vec![],
            latest_handshake_age_seconds: age,
            rx_bytes: bytes,
            tx_bytes: bytes * 2,
            persistent_keepalive: None,
            alive: age.is_some(),
        }
    }

    fn scrape(metrics: &Metrics, snapshot: &Snapshot) -> String {
        let registry = metrics.register(snapshot.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn scrapes_encode_the_latest_snapshot_whole() {
        let snapshot = Snapshot::default();
        let metrics = Metrics::default();
        metrics.reconciles.inc();
        snapshot.replace(Status {
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
                    peer("b-key", Some("site-b"), Some(7), 100),
                    peer("ghost-key", None, None, 0),
                ],
            }],
        });
        let text = scrape(&metrics, &snapshot);
        for line in [
            "# TYPE wgd_tunnel_up gauge",
            "wgd_tunnel_up{tunnel=\"wg-a\"} 1",
            "# TYPE wgd_peer_latest_handshake_age_seconds gauge",
            "# UNIT wgd_peer_latest_handshake_age_seconds seconds",
            "wgd_peer_latest_handshake_age_seconds{tunnel=\"wg-a\",peer=\"b-key\",name=\"site-b\"} 7",
            "wgd_peer_alive{tunnel=\"wg-a\",peer=\"b-key\",name=\"site-b\"} 1",
            "wgd_peer_alive{tunnel=\"wg-a\",peer=\"ghost-key\"} 0",
            "# TYPE wgd_peer_receive_bytes counter",
            "wgd_peer_receive_bytes_total{tunnel=\"wg-a\",peer=\"b-key\",name=\"site-b\"} 100",
            "wgd_peer_transmit_bytes_total{tunnel=\"wg-a\",peer=\"b-key\",name=\"site-b\"} 200",
            "wgd_peer_receive_bytes_total{tunnel=\"wg-a\",peer=\"ghost-key\"} 0",
            "wgd_reconciles_total 1",
            "wgd_userspace_restarts_total 0",
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "no {line:?} in:\n{text}"
            );
        }
        // No handshake, no age: absent rather than zero.
        assert!(
            !text.contains(
                "wgd_peer_latest_handshake_age_seconds{tunnel=\"wg-a\",peer=\"ghost-key\""
            ),
            "{text}"
        );

        // The next snapshot replaces the series: a vanished peer's go.
        snapshot.replace(Status { tunnels: vec![] });
        let text = scrape(&metrics, &snapshot);
        assert!(!text.contains("tunnel=\"wg-a\""), "{text}");
        assert!(text.contains("# TYPE wgd_tunnel_up gauge"), "{text}");
    }
}
