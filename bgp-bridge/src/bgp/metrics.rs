//! The BGP speaker's Prometheus metrics, read from its status at scrape
//! time: session state, prefixes per neighbor (and those a prefix limit
//! blocked), messages in and out, resets with the latest reason, and
//! origin validation's VRPs, caches and paths per state when RPKI is on;
//! and each BFD session's state (a collector of its own: static routes'
//! nexthops have BFD without a speaker).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::bfd::{BfdStatus, State as BfdState};
use super::rpki::RpkiStatus;
use super::service::state_name;
use super::session::State;
use super::speaker::{NeighborStatus, Speaker};

/// Adds the speaker's metrics to `registry`.
pub fn register(registry: &mut Registry, speaker: &Speaker) {
    registry.register_collector(Box::new(SpeakerCollector {
        speaker: speaker.clone(),
    }));
}

#[derive(Debug)]
struct SpeakerCollector {
    speaker: Speaker,
}

impl Collector for SpeakerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.speaker.status();
        let neighbors = &status.neighbors;
        per_neighbor(
            &mut encoder,
            neighbors,
            "bgp_session_established",
            "1 when the BGP session is established.",
            |n| ConstGauge::new(i64::from(n.state == State::Established)),
        )?;
        let mut family = encoder.encode_descriptor(
            "bgp_session_state",
            "The session's state, as a label (1 for the current one).",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for neighbor in neighbors {
            let name = neighbor.id.to_string();
            let labels = [
                ("neighbor", name.as_str()),
                ("state", state_name(neighbor.state)),
            ];
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "bgp_prefixes",
            "Prefixes per neighbor: received, accepted (carried to the kernel), sent.",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for neighbor in neighbors {
            let name = neighbor.id.to_string();
            for (kind, value) in [
                ("received", neighbor.prefixes_received),
                ("accepted", neighbor.prefixes_accepted),
                ("sent", neighbor.prefixes_sent),
            ] {
                let labels = [("neighbor", name.as_str()), ("kind", kind)];
                ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        per_neighbor(
            &mut encoder,
            neighbors,
            "bgp_messages_received",
            "BGP messages received.",
            |n| ConstCounter::new(n.messages_received),
        )?;
        per_neighbor(
            &mut encoder,
            neighbors,
            "bgp_messages_sent",
            "BGP messages sent.",
            |n| ConstCounter::new(n.messages_sent),
        )?;
        per_neighbor(
            &mut encoder,
            neighbors,
            "bgp_prefixes_blocked",
            "Announcements of new prefixes not taken: the prefix limit was reached with prefix_limit_action = \"block\".",
            |n| ConstCounter::new(n.prefixes_blocked),
        )?;
        per_neighbor(
            &mut encoder,
            neighbors,
            "bgp_resets",
            "Established sessions that went down.",
            |n| ConstCounter::new(n.resets),
        )?;
        let mut family = encoder.encode_descriptor(
            "bgp_last_reset",
            "Why the session last went down (the reason is the label).",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for neighbor in neighbors.iter().filter(|n| !n.last_error.is_empty()) {
            let name = neighbor.id.to_string();
            let labels = [
                ("neighbor", name.as_str()),
                ("reason", neighbor.last_error.as_str()),
            ];
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
        match &status.rpki {
            Some(rpki) => rpki_metrics(&mut encoder, rpki),
            None => Ok(()),
        }
    }
}

/// Adds the BFD sessions' metrics (the neighbors' and the static routes'
/// nexthops') to `registry`.
pub fn register_bfd(registry: &mut Registry, bfd: &super::bfd::Bfd) {
    registry.register_collector(Box::new(BfdCollector { bfd: bfd.clone() }));
}

#[derive(Debug)]
struct BfdCollector {
    bfd: super::bfd::Bfd,
}

impl Collector for BfdCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        bfd(&mut encoder, &self.bfd.status())
    }
}

/// VRPs per family, each cache's state, and received paths per
/// validation state.
fn rpki_metrics(encoder: &mut DescriptorEncoder, rpki: &RpkiStatus) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "rpki_vrps",
        "VRPs in use for origin validation, per address family.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for (name, count) in [("ipv4", rpki.vrps_ipv4), ("ipv6", rpki.vrps_ipv6)] {
        ConstGauge::new(count as i64).encode(family.encode_family(&[("family", name)])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "rpki_server_up",
        "1 when the RTR connection to the cache is up and synchronised.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for server in &rpki.servers {
        let address = server.address.to_string();
        ConstGauge::new(i64::from(server.state == "up"))
            .encode(family.encode_family(&[("server", address.as_str())])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "rpki_server_serial",
        "The serial of the cache's last End of Data.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for server in &rpki.servers {
        if let Some(serial) = server.serial {
            let address = server.address.to_string();
            ConstGauge::new(i64::from(serial))
                .encode(family.encode_family(&[("server", address.as_str())])?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "bgp_routes_validation",
        "Received paths per origin validation state (RFC 6811), counted every 5 s.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for (state, count) in ["valid", "invalid", "not-found"].iter().zip(rpki.routes) {
        ConstGauge::new(count as i64).encode(family.encode_family(&[("state", *state)])?)?;
    }
    Ok(())
}

/// Each BFD session: whether it is up, and how often it changed state.
fn bfd(encoder: &mut DescriptorEncoder, sessions: &[BfdStatus]) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "bfd_session_up",
        "1 when the BFD session with the neighbor is up.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for session in sessions {
        let name = session.neighbor.to_string();
        let labels = [
            ("neighbor", name.as_str()),
            ("tunnel", session.tunnel.as_deref().unwrap_or("")),
        ];
        ConstGauge::new(i64::from(session.state == BfdState::Up))
            .encode(family.encode_family(&labels)?)?;
    }
    let mut family = encoder.encode_descriptor(
        "bfd_state_changes",
        "State changes of the BFD session (down, init, up, ...).",
        None,
        ConstCounter::<u64>::TYPE,
    )?;
    for session in sessions {
        let name = session.neighbor.to_string();
        ConstCounter::new(session.state_changes)
            .encode(family.encode_family(&[("neighbor", name.as_str())])?)?;
    }
    Ok(())
}

fn per_neighbor<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    neighbors: &[NeighborStatus],
    name: &str,
    help: &str,
    value: impl Fn(&NeighborStatus) -> M,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for neighbor in neighbors {
        let name = neighbor.id.to_string();
        value(neighbor).encode(family.encode_family(&[("neighbor", name.as_str())])?)?;
    }
    Ok(())
}
