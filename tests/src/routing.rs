//! Snapshots of a namespace's policy rules and routes, and the difference
//! between two of them that a tunnel manager is not entitled to make.
//!
//! Bringing a tunnel up legitimately adds the kernel's own routes for the
//! tunnel's addresses (`proto kernel` on the tunnel's interface: the connected
//! subnet, the local and broadcast entries, IPv6 link-local and multicast).
//! Anything else that appears or disappears, in any table, or any change to
//! the rules, is a change to the host's routing.

use std::collections::BTreeSet;
use std::fmt;

use wgd_labs::Namespace;

/// `ip -4/-6 rule` and `ip -4/-6 route show table all`, one line per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingState {
    tables: Vec<(&'static str, BTreeSet<String>)>,
}

/// One line that appeared in or disappeared from a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The command whose listing changed, e.g. `ip -4 rule`.
    pub listing: &'static str,
    pub added: bool,
    pub line: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.added { '+' } else { '-' };
        write!(f, "{sign} {}: {}", self.listing, self.line)
    }
}

const LISTINGS: [&str; 4] = [
    "ip -4 rule",
    "ip -6 rule",
    "ip -4 route show table all",
    "ip -6 route show table all",
];

impl RoutingState {
    /// Reads the rules and every routing table of `namespace`.
    pub fn capture(namespace: &Namespace) -> Result<Self, wgd_labs::Error> {
        let mut tables = Vec::new();
        for listing in LISTINGS {
            let argv: Vec<&str> = listing.split_whitespace().collect();
            let lines = namespace
                .check(&argv)?
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|line| !line.is_empty())
                .collect();
            tables.push((listing, lines));
        }
        Ok(Self { tables })
    }

    /// Every change from `self` to `after`, in order of listing.
    pub fn changes(&self, after: &Self) -> Vec<Change> {
        let mut changes = Vec::new();
        for ((listing, before), (_, now)) in self.tables.iter().zip(&after.tables) {
            changes.extend(before.difference(now).map(|line| Change {
                listing,
                added: false,
                line: line.clone(),
            }));
            changes.extend(now.difference(before).map(|line| Change {
                listing,
                added: true,
                line: line.clone(),
            }));
        }
        changes
    }

    /// The changes from `self` to `after` other than the kernel's own routes
    /// on `tunnel`: what bringing `tunnel` up did to the rest of the host.
    pub fn changes_beyond(&self, after: &Self, tunnel: &str) -> Vec<Change> {
        self.changes(after)
            .into_iter()
            .filter(|change| !is_connected_route_on(change, tunnel))
            .collect()
    }

    /// The lines of one listing (one of `ip -4 rule`, `ip -6 rule`,
    /// `ip -4 route show table all`, `ip -6 route show table all`).
    pub fn lines(&self, listing: &str) -> impl Iterator<Item = &str> {
        self.tables
            .iter()
            .filter(move |(name, _)| *name == listing)
            .flat_map(|(_, lines)| lines.iter().map(String::as_str))
    }
}

/// A route that appeared, on `tunnel`, installed by the kernel itself.
fn is_connected_route_on(change: &Change, tunnel: &str) -> bool {
    let words: Vec<&str> = change.line.split_whitespace().collect();
    let has = |key: &str, value: &str| words.windows(2).any(|pair| pair == [key, value]);
    change.added && change.listing.contains("route") && has("dev", tunnel) && has("proto", "kernel")
}

/// Changes one per line, for assertion messages.
pub fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rules4: &[&str], routes4: &[&str]) -> RoutingState {
        let set = |lines: &[&str]| lines.iter().map(|line| (*line).to_owned()).collect();
        RoutingState {
            tables: vec![
                (LISTINGS[0], set(rules4)),
                (LISTINGS[1], BTreeSet::new()),
                (LISTINGS[2], set(routes4)),
                (LISTINGS[3], BTreeSet::new()),
            ],
        }
    }

    const RULES: &[&str] = &[
        "0: from all lookup local",
        "32766: from all lookup main",
        "32767: from all lookup default",
    ];
    const ROUTES: &[&str] = &["default via 192.0.2.1 dev up0"];

    #[test]
    fn connected_routes_on_the_tunnel_are_allowed() {
        let before = state(RULES, ROUTES);
        let mut routes = ROUTES.to_vec();
        routes.extend([
            "10.0.0.0/24 dev wg0 proto kernel scope link src 10.0.0.1",
            "local 10.0.0.1 dev wg0 table local proto kernel scope host src 10.0.0.1",
            "broadcast 10.0.0.255 dev wg0 table local proto kernel scope link src 10.0.0.1",
        ]);
        let after = state(RULES, &routes);
        assert_eq!(before.changes(&after).len(), 3);
        assert_eq!(before.changes_beyond(&after, "wg0"), []);
    }

    #[test]
    fn wg_quick_style_hijack_is_reported() {
        let before = state(RULES, ROUTES);
        let mut rules = RULES.to_vec();
        rules.extend([
            "32764: from all lookup main suppress_prefixlength 0",
            "32765: not from all fwmark 0xca6c lookup 51820",
        ]);
        let mut routes = ROUTES.to_vec();
        routes.push("default dev wg0 table 51820 scope link");
        let changes = before.changes_beyond(&state(&rules, &routes), "wg0");
        assert_eq!(
            describe(&changes),
            "+ ip -4 rule: 32764: from all lookup main suppress_prefixlength 0\n\
             + ip -4 rule: 32765: not from all fwmark 0xca6c lookup 51820\n\
             + ip -4 route show table all: default dev wg0 table 51820 scope link"
        );
    }

    #[test]
    fn routes_elsewhere_or_removed_are_reported() {
        let before = state(RULES, ROUTES);
        // A kernel route on another interface, and the default route gone.
        let after = state(RULES, &["10.9.0.0/24 dev wg00 proto kernel scope link"]);
        let changes = before.changes_beyond(&after, "wg0");
        assert_eq!(changes.len(), 2, "{}", describe(&changes));
        assert!(changes.iter().any(|change| !change.added));
    }
}
