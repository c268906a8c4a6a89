//! Health and reflection on the daemon's gRPC sockets, so that standard
//! tools (grpc_health_probe, grpcurl, Python's grpcio clients) can ask
//! whether wgd is serving and what it serves, without wgd's `.proto` files.
//!
//! `grpc.health.v1.Health` answers for each of wgd's services and for the
//! whole daemon (the empty name). Facts flow one way, from the daemon into
//! [`Health`], which publishes a status per service:
//!
//! - until the first reconcile is done, every service is NOT_SERVING (the
//!   tunnels the config asks for may not exist yet);
//! - `RouteService` and `BgpService` need the bridge: once its engine or
//!   its FIB writer has stopped they are NOT_SERVING for good (routes can
//!   no longer reach the kernel), and so is the daemon as a whole.
//!
//! Reflection (v1 and v1alpha) describes wgd's services, health and
//! reflection itself, from descriptors compiled into the binary.

use std::sync::{Arc, Mutex, PoisonError};

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use wgd_proto::v1::bgp_service_server::BgpServiceServer;
use wgd_proto::v1::route_service_server::RouteServiceServer;
use wgd_proto::v1::tunnel_service_server::TunnelServiceServer;

use super::api::TunnelApi;

/// The name health checks use for `wgd.v1.TunnelService`.
pub const TUNNEL_SERVICE: &str = <TunnelServiceServer<TunnelApi> as NamedService>::NAME;
/// The name health checks use for `wgd.v1.RouteService`.
pub const ROUTE_SERVICE: &str =
    <RouteServiceServer<bgp_bridge::service::RouteApi> as NamedService>::NAME;
/// The name health checks use for `wgd.v1.BgpService`.
pub const BGP_SERVICE: &str =
    <BgpServiceServer<bgp_bridge::bgp::service::BgpApi> as NamedService>::NAME;

/// What the statuses are made from.
#[derive(Debug, Clone, Copy)]
struct Facts {
    reconciled: bool,
    bridge_running: bool,
}

impl Facts {
    /// Each service's status, the daemon's (`""`) last.
    fn statuses(self) -> [(&'static str, ServingStatus); 4] {
        let status = |serving: bool| {
            if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        let routes = self.reconciled && self.bridge_running;
        [
            (TUNNEL_SERVICE, status(self.reconciled)),
            (ROUTE_SERVICE, status(routes)),
            (BGP_SERVICE, status(routes)),
            ("", status(routes)),
        ]
    }
}

/// The daemon's health, shared by every socket it serves on. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
    facts: Arc<Mutex<Facts>>,
}

impl Health {
    /// Every service NOT_SERVING, until told otherwise.
    pub async fn new() -> Self {
        let health = Health {
            reporter: HealthReporter::new(),
            facts: Arc::new(Mutex::new(Facts {
                reconciled: false,
                bridge_running: true,
            })),
        };
        health.publish().await;
        health
    }

    /// The `grpc.health.v1.Health` service, answering from this state.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }

    /// The first reconcile is done.
    pub async fn reconciled(&self) {
        self.change(|facts| facts.reconciled = true).await;
    }

    /// The bridge's engine or FIB writer has stopped.
    pub async fn bridge_stopped(&self) {
        self.change(|facts| facts.bridge_running = false).await;
    }

    /// Marks the route services NOT_SERVING when `bridge` stops.
    pub fn follow(&self, bridge: bgp_bridge::engine::Bridge) {
        let health = self.clone();
        tokio::spawn(async move {
            bridge.stopped().await;
            tracing::error!("the route bridge stopped: routes no longer reach the kernel");
            health.bridge_stopped().await;
        });
    }

    async fn change(&self, change: impl FnOnce(&mut Facts)) {
        change(&mut self.facts.lock().unwrap_or_else(PoisonError::into_inner));
        self.publish().await;
    }

    async fn publish(&self) {
        let facts = *self.facts.lock().unwrap_or_else(PoisonError::into_inner);
        for (service, status) in facts.statuses() {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// A reflection service could not be built from the compiled-in
/// descriptors (a build defect, not a runtime condition).
pub type ReflectionError = tonic_reflection::server::Error;

/// Adds reflection (v1 and v1alpha) and health to `router`'s services.
pub fn add_to(
    router: tonic::transport::server::Router,
    health: &Health,
) -> Result<tonic::transport::server::Router, ReflectionError> {
    Ok(router
        .add_service(health.service())
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?))
}

/// Reflection over wgd's services, health and both versions of
/// reflection, so that either version lists everything the socket serves.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(wgd_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(facts: Facts) -> Vec<(&'static str, bool)> {
        facts
            .statuses()
            .into_iter()
            .map(|(service, status)| (service, status == ServingStatus::Serving))
            .collect()
    }

    #[test]
    fn nothing_serves_before_the_first_reconcile() {
        let facts = Facts {
            reconciled: false,
            bridge_running: true,
        };
        assert!(serving(facts).iter().all(|(_, serving)| !serving));
    }

    #[test]
    fn a_stopped_bridge_stops_the_route_services_and_the_daemon_only() {
        let facts = Facts {
            reconciled: true,
            bridge_running: false,
        };
        assert_eq!(
            serving(facts),
            vec![
                ("wgd.v1.TunnelService", true),
                ("wgd.v1.RouteService", false),
                ("wgd.v1.BgpService", false),
                ("", false),
            ]
        );
        let facts = Facts {
            reconciled: true,
            bridge_running: true,
        };
        assert!(serving(facts).iter().all(|(_, serving)| *serving));
    }

    #[test]
    fn reflection_builds_from_the_compiled_in_descriptors() {
        assert!(reflection().build_v1().is_ok());
        assert!(reflection().build_v1alpha().is_ok());
    }
}
