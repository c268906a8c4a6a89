//! The host, as seen and changed by wgd: rtnetlink for links, addresses,
//! routes and rules (`netlink`), and WireGuard devices (`device`).
//!
//! `observe` reads everything the planner compares into an `ActualState`.

pub mod device;
pub mod netlink;

use std::collections::BTreeSet;

use netlink_packet_route::link::InfoKind;

use crate::actual::{ActualState, Backend, Link};
use crate::state::TunnelRecord;

pub use device::{DeviceError, DeviceHandle};
pub use netlink::{Netlink, NetlinkError};

/// Why the host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("read wgd state in {dir}: {source}")]
    State { dir: String, source: std::io::Error },
}

/// The backend of an existing interface, from its link kind.
pub fn backend_of(kind: Option<&InfoKind>, name: &str) -> Option<Backend> {
    match kind {
        Some(InfoKind::Wireguard) => Some(Backend::Kernel),
        Some(InfoKind::Tun) if device::uapi_socket(name).exists() => Some(Backend::Userspace),
        _ => None,
    }
}

/// What `observe` reads besides the interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Links and devices only: enough for status, cheap to poll.
    Tunnels,
    /// Also routes, rules and tables in use: what the planner needs.
    Full,
}

/// Reads the interfaces named in `names` and in `records`, and at
/// `Depth::Full` the routes through them, the rules and the tables in use.
pub async fn observe(
    netlink: &Netlink,
    names: impl IntoIterator<Item = String>,
    records: std::collections::BTreeMap<String, TunnelRecord>,
    depth: Depth,
) -> Result<ActualState, ObserveError> {
    let mut wanted: BTreeSet<String> = names.into_iter().collect();
    wanted.extend(records.keys().cloned());
    let mut actual = ActualState {
        records,
        ..Default::default()
    };
    let mut routes = Vec::new();
    if depth == Depth::Full {
        let (found, tables) = netlink.routes().await?;
        routes = found;
        actual.rules = netlink.rules().await?;
        actual.used_tables = tables.into_iter().collect();
    }
    for summary in netlink.links().await? {
        if !wanted.contains(&summary.name) {
            continue;
        }
        let backend = backend_of(summary.kind.as_ref(), &summary.name);
        let device = match backend {
            Some(backend) => match DeviceHandle::new(&summary.name, backend).read() {
                Ok(device) => Some(device),
                Err(error) => {
                    tracing::warn!(tunnel = %summary.name, %error, "device unreadable");
                    None
                }
            },
            None => None,
        };
        let addresses = netlink.addresses(summary.index).await?;
        let link = Link {
            index: summary.index,
            // A tun whose wireguard-go is gone is still ours to recreate.
            backend: backend.or(match summary.kind {
                Some(InfoKind::Tun) => Some(Backend::Userspace),
                _ => None,
            }),
            up: summary.up,
            mtu: summary.mtu,
            addresses: addresses.all,
            kernel_made: addresses.kernel_made,
            device,
            routes: routes
                .iter()
                .filter(|(oif, _)| *oif == summary.index)
                .map(|(_, route)| *route)
                .collect(),
        };
        actual.links.insert(summary.name, link);
    }
    Ok(actual)
}
