//! The gobgpd feeder's side of the bgp scenario: its config with every
//! receiver a neighbor, its RIB loaded from the MRT file and emptied, and
//! the session down it times (`gobgp neighbor disable` with the table in).

use std::time::{Duration, Instant};

use wgd_tests::gobgp::Gobgp;

use super::{PEER_AS, Receiver, Shutdown, deadline, peak_rss, reset_peaks};
use crate::check_interrupted;
use crate::kernel::Watch;
use crate::progress;

/// gobgpd: AS 65002, every receiver a neighbor on its tunnel, each
/// administratively down until its turn; IPv6 unicast too with `ipv6`.
pub fn gobgp_config(receivers: &[Receiver], ipv6: bool) -> String {
    let ipv6 = if ipv6 {
        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n"
    } else {
        ""
    };
    let mut text = format!(
        "[global.config]\n  as = {PEER_AS}\n  router-id = \"{}\"\n",
        receivers
            .first()
            .map_or("10.255.0.1".to_owned(), |r| r.link().address_b())
    );
    for receiver in receivers {
        text.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n\
             \x20   admin-down = true\n\
             \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 90\n    keepalive-interval = 30\n\
             \x20 [neighbors.transport.config]\n    local-address = \"{}\"\n\
             \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n{ipv6}",
            receiver.link().address_a(),
            receiver.kind.asn(),
            receiver.link().address_b(),
        ));
    }
    text
}

/// Both families of gobgpd's global RIB.
const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

/// Empties gobgpd's global RIB, both families.
pub fn empty(gobgp: &Gobgp) -> anyhow::Result<()> {
    for family in FAMILIES {
        gobgp.cli(&["global", "rib", "-a", family, "del", "all"])?;
    }
    Ok(())
}

/// Loads the MRT file into gobgpd's RIB (emptied first) and waits until
/// it holds all `size` prefixes. The file is injected again if the RIB
/// stops growing short of that (see [`crate::mrt::write`]).
pub fn load(gobgp: &Gobgp, mrt: &str, size: usize) -> anyhow::Result<()> {
    empty(gobgp)?;
    for _ in 0..3 {
        gobgp.cli(&["mrt", "inject", "global", mrt])?;
        let mut last = (usize::MAX, Instant::now());
        loop {
            check_interrupted()?;
            let have = rib_size(gobgp)?;
            if have == size {
                return Ok(());
            }
            anyhow::ensure!(
                have < size,
                "gobgpd holds {have} prefixes, more than {size}"
            );
            if have != last.0 {
                last = (have, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(3) {
                progress(format!(
                    "bgp: gobgpd took {have} of {size} prefixes; injecting again"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    anyhow::bail!("gobgpd did not take all {size} prefixes from {mrt}")
}

/// gobgpd's global export policy: next-hop self towards every neighbor
/// (the MRT file carries one next hop; each receiver must see its own
/// tunnel's).
pub const NEXT_HOP_SELF: &str = "\n[global.apply-policy.config]\n  export-policy-list = [\"next-hop-self\"]\n\
  default-export-policy = \"accept-route\"\n\n[[policy-definitions]]\n  name = \"next-hop-self\"\n\
  [[policy-definitions.statements]]\n    name = \"all\"\n\
    [policy-definitions.statements.actions]\n      route-disposition = \"accept-route\"\n\
    [policy-definitions.statements.actions.bgp-actions]\n      set-next-hop = \"self\"\n";

/// Destinations in gobgpd's global RIB, both families.
fn rib_size(gobgp: &Gobgp) -> anyhow::Result<usize> {
    let mut size = 0;
    for family in FAMILIES {
        let text = gobgp.cli(&["global", "rib", "-a", family, "summary"])?;
        // "Table ipv4-unicast\nDestination: 100000, Path: 100000"
        size += text
            .split("Destination:")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|number| number.trim().parse::<usize>().ok())
            .unwrap_or(0);
    }
    Ok(size)
}

/// Disables gobgpd's neighbor (a Cease, administrative shutdown) with the
/// table in the receiver's kernel and times the emptying; then enables it
/// and waits for the table again (not timed).
pub fn shut_down(
    gobgp: &Gobgp,
    neighbor: &str,
    watch: &Watch,
    receiver: &Receiver,
    size: usize,
) -> anyhow::Result<Shutdown> {
    reset_peaks(receiver)?;
    let disabled = Instant::now();
    gobgp.cli(&["neighbor", neighbor, "disable"])?;
    let time = watch.until(
        disabled,
        deadline(size),
        "no route left after gobgpd's shutdown",
        |count| Ok(count == 0),
    )?;
    let shutdown = Shutdown {
        time,
        peak: peak_rss(receiver)?,
        left: receiver.counter.count(receiver.kind.protocol())?,
    };
    let enabled = Instant::now();
    gobgp.cli(&["neighbor", neighbor, "enable"])?;
    watch.until(
        enabled,
        deadline(size),
        "all routes back after the shutdown",
        |count| Ok(count == size),
    )?;
    Ok(shutdown)
}
