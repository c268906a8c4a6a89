//! The bridge's Prometheus metrics, added to wgd's registry: routes per
//! owner and state, wgd's routes in the kernel, endpoint pins, FIB
//! operations and errors (read from the engine's counters at scrape time),
//! and the time each FIB batch took (a histogram the engine observes).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::Bridge;

/// Adds the bridge's metrics to `registry` (names under its prefix).
pub fn register(registry: &mut Registry, bridge: &Bridge) {
    registry.register_with_unit(
        "bridge_batch",
        "Time to program one batch of routes into the kernel",
        Unit::Seconds,
        bridge.batch_seconds(),
    );
    registry.register_collector(Box::new(BridgeCollector {
        bridge: bridge.clone(),
    }));
}

#[derive(Debug)]
struct BridgeCollector {
    bridge: Bridge,
}

impl Collector for BridgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.bridge.counters();
        let mut family = encoder.encode_descriptor(
            "bridge_routes",
            "Routes offered to the bridge, by owner and state (stale counts routes kept from before, whatever their state).",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for (owner, counts) in &counters.owners {
            for (state, value) in [
                ("installed", counts.installed),
                ("queued", counts.queued),
                ("standby", counts.standby),
                ("failed", counts.failed),
                ("stale", counts.stale),
            ] {
                let labels = [("owner", owner.as_str()), ("state", state)];
                ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        single(
            &mut encoder,
            "bridge_kernel_routes",
            "wgd's routes in the kernel, endpoint pins included.",
            ConstGauge::new(counters.kernel_routes as i64),
        )?;
        single(
            &mut encoder,
            "bridge_endpoint_pins",
            "Tunnel endpoint host routes pinned to the underlay because a learned route covers them.",
            ConstGauge::new(counters.endpoint_pins as i64),
        )?;
        single(
            &mut encoder,
            "bridge_fib_operations",
            "Route adds, replaces and removes sent to the kernel.",
            ConstCounter::new(counters.fib_operations),
        )?;
        single(
            &mut encoder,
            "bridge_fib_errors",
            "Route operations the kernel refused.",
            ConstCounter::new(counters.fib_errors),
        )
    }
}

fn single<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> std::fmt::Result {
    let encoder = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    metric.encode(encoder)
}
