//! The config's static routes (`[[bridge.route]]`) into the bridge, under
//! owner `config`, at start and on every reload (the routes a reload
//! leaves out are withdrawn, those it keeps are offered again and change
//! nothing); and the nexthops to run BFD to: the config routes' with
//! `bfd`, and those `wgd route add --bfd` asked for (the service keeps
//! them beside the static routes).

use std::collections::BTreeSet;

use bgp_bridge::bgp::bfd::{BfdNexthop, Timers};
use bgp_bridge::engine::{Bridge, ResultPrefix, Update};
use bgp_bridge::rib::{RouteFilter, RouteStatus};
use bgp_bridge::service::BfdRequests;
use bgp_bridge::{NexthopSpec, Owner, RouteSpec};
use ipnet::IpNet;

use crate::config::{BfdSettings, Config, StaticRoute};

/// The owner of the config's routes.
pub const OWNER: &str = "config";

/// Makes the bridge's routes of owner `config` those of `config`.
pub async fn apply(bridge: &Bridge, config: &Config) {
    let owner = Owner::new(OWNER);
    let routes = &config.daemon.bridge.routes;
    let wanted: BTreeSet<IpNet> = routes.iter().map(|route| route.prefix).collect();
    let present = match bridge
        .routes(RouteFilter {
            owner: Some(owner.clone()),
            ..RouteFilter::default()
        })
        .await
    {
        Ok(present) => present,
        Err(error) => {
            tracing::error!(%error, "cannot read the config's routes from the bridge");
            return;
        }
    };
    let mut updates: Vec<Update> = present
        .iter()
        .filter(|record| !wanted.contains(&record.prefix))
        .map(|record| Update::Withdraw(record.prefix))
        .collect();
    updates.extend(routes.iter().map(|route| Update::Offer(spec(route))));
    if updates.is_empty() {
        return;
    }
    let results = match bridge.static_updates(owner, updates).await {
        Ok(results) => results,
        Err(error) => {
            tracing::error!(%error, "cannot give the config's routes to the bridge");
            return;
        }
    };
    for result in results {
        let line = routes
            .iter()
            .find(|route| ResultPrefix::Read(route.prefix) == result.prefix)
            .map_or(0, |route| route.line);
        let file = config.source.display();
        match &result.status {
            RouteStatus::Refused(reason) => {
                tracing::error!(prefix = %result.prefix, "{file}:{line}: route refused: {reason}");
            }
            RouteStatus::Queued(reason) => {
                tracing::warn!(prefix = %result.prefix, "{file}:{line}: route waits: {reason}");
            }
            _ => {}
        }
    }
}

/// A config route as the bridge takes it.
fn spec(route: &StaticRoute) -> RouteSpec {
    let tunnel = route.tunnel.as_ref().map(|name| name.as_str().to_owned());
    let nexthop = match (route.via, tunnel) {
        (Some(address), Some(tunnel)) => NexthopSpec::AddressOnTunnel { address, tunnel },
        (Some(address), None) => NexthopSpec::Address(address),
        (None, Some(tunnel)) => NexthopSpec::Tunnel(tunnel),
        (None, None) => unreachable!("the config reader wants via or tunnel"),
    };
    RouteSpec {
        prefix: route.prefix,
        nexthops: vec![nexthop],
        distance: route.distance,
        metric: route.metric,
    }
}

/// The nexthops to run BFD to: the config routes' with `bfd` (their own
/// timers), then those of `requests` (the `[bfd]` defaults).
pub fn bfd_nexthops(config: &Config, requests: &BfdRequests) -> Vec<BfdNexthop> {
    let mut nexthops: Vec<BfdNexthop> = config
        .daemon
        .bridge
        .routes
        .iter()
        .filter_map(|route| {
            Some(BfdNexthop {
                address: route.via?,
                tunnel: route.tunnel.as_ref().map(|name| name.as_str().to_owned()),
                timers: timers(&route.bfd?)?,
            })
        })
        .collect();
    if let Some(defaults) = timers(&config.daemon.bfd) {
        for (address, tunnel) in requests.nexthops() {
            let known = nexthops
                .iter()
                .any(|nexthop| nexthop.address == address && nexthop.tunnel == tunnel);
            if !known {
                nexthops.push(BfdNexthop {
                    address,
                    tunnel,
                    timers: defaults,
                });
            }
        }
    }
    nexthops
}

/// The config reader checked the ranges: `Timers` takes them.
fn timers(bfd: &BfdSettings) -> Option<Timers> {
    Timers::new(bfd.transmit_interval, bfd.receive_interval, bfd.multiplier).ok()
}
