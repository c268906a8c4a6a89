//! Per-neighbor import and export policy of the BGP speaker. Pure values,
//! read from the config file as they are (serde), and one question asked of
//! them: what becomes of this route?
//!
//! A `Policy` is an ordered list of `Rule`s. The first rule whose `Match`
//! holds decides: `deny` drops the route, `permit` takes it with the rule's
//! `Set` applied (add communities, set LOCAL_PREF, set MED). A route no rule
//! matches gets the policy's `default`, `permit` unless said otherwise: an
//! empty policy imports everything and exports the best routes.
//!
//! ```toml
//! [[bgp.neighbor.import.rules]]
//! action = "permit"
//! match.prefix_list = [{ prefix = "10.0.0.0/8", le = 24 }]
//! set.local_preference = 200
//! set.add_communities = ["65000:10"]
//! ```
//!
//! Conditions: a prefix list (`ge`/`le` bounds, IPv4 and IPv6 alike), an
//! AS anywhere in the path, the origin AS (the path's last), the
//! neighboring AS (its first), the path's length (`{ ge = 1, le = 10 }`,
//! an AS_SET counting one as in the decision), an RFC 1997 community, an
//! RFC 8092 large community, an RFC 4360 route target or origin. Changes:
//! communities and large communities deleted (by pattern) then added,
//! LOCAL_PREF, MED.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::types::{
    Administrator, Asn, Attributes, ExtendedKind, LargeCommunity, route_target_or_origin,
};
pub use wgd_rtr::Validity;

/// Permit or deny, for a rule or a prefix list entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    #[default]
    Permit,
    Deny,
}

/// An import or export policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What a route that no rule matches gets.
    #[serde(default)]
    pub default: Verdict,
}

/// One rule: when `matches` holds, `action` (and `set` if it permits).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub action: Verdict,
    #[serde(default, rename = "match")]
    pub matches: Match,
    #[serde(default)]
    pub set: Set,
}

/// What a route must be for a rule to apply: every condition given holds
/// (an empty `Match` matches every route).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// The prefix must be permitted by this list: the first entry that
    /// covers it decides, and a prefix no entry covers is not permitted.
    /// Empty: any prefix.
    #[serde(default)]
    pub prefix_list: Vec<PrefixListEntry>,
    /// The AS_PATH must contain this AS (in any segment).
    pub as_path_contains: Option<Asn>,
    /// The route must carry this community.
    pub community: Option<Community>,
    /// The route must carry this large community (RFC 8092),
    /// `"4242420001:1:2"`.
    pub large_community: Option<LargeCommunity>,
    /// The route must carry this route target or route origin extended
    /// community (RFC 4360): `"rt:65000:1"`, `"ro:192.0.2.1:5"`.
    pub extended_community: Option<ExtendedCommunity>,
    /// The AS_PATH's length, as the decision counts it (an AS_SET is one,
    /// confederation segments nothing), must be within these bounds.
    pub as_path_length: Option<LengthRange>,
    /// The AS that originated the route: the last AS of the path (none
    /// when the path ends in an AS_SET or is empty: no match).
    pub origin_as: Option<Asn>,
    /// The neighboring AS: the first AS of the path's first AS_SEQUENCE,
    /// as the decision's MED comparison reads it (BIRD's `bgp_path.first`
    /// but for a path that starts with an AS_SET, where BIRD has none).
    pub neighbor_as: Option<Asn>,
    /// The route's origin validation state must be this (RFC 6811; every
    /// route is `not-found` when no RPKI cache is configured).
    pub rpki: Option<Validity>,
}

/// What a permitting rule changes. Nothing, by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Set {
    /// Added to the route's communities (those it has already stay once).
    #[serde(default)]
    pub add_communities: Vec<Community>,
    pub local_preference: Option<u32>,
    pub med: Option<u32>,
    /// Added to the route's large communities (those it has stay once).
    #[serde(default)]
    pub add_large_communities: Vec<LargeCommunity>,
    /// Communities taken off the route, before any are added: a standard
    /// one as `asn:value` (or a well-known name), a large one as
    /// `asn:value:value`; `*` in place of a number takes any
    /// (`"65000:*"`, `"4242420001:*:*"`).
    #[serde(default)]
    pub delete_communities: Vec<CommunityPattern>,
}

/// A prefix list entry: prefixes inside `prefix` whose length is `prefix`'s
/// own, or in `ge..=le` when either is given (`ge` alone: up to the
/// address length; `le` alone: from `prefix`'s length).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPrefixListEntry")]
pub struct PrefixListEntry {
    pub action: Verdict,
    pub prefix: IpNet,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefixListEntry {
    #[serde(default)]
    action: Verdict,
    prefix: IpNet,
    ge: Option<u8>,
    le: Option<u8>,
}

impl TryFrom<RawPrefixListEntry> for PrefixListEntry {
    type Error = String;

    fn try_from(raw: RawPrefixListEntry) -> Result<Self, String> {
        PrefixListEntry::new(raw.action, raw.prefix, raw.ge, raw.le)
    }
}

impl PrefixListEntry {
    /// An entry, checked: `prefix len <= ge <= le <= address length`. Host
    /// bits of `prefix` are cleared.
    pub fn new(
        action: Verdict,
        prefix: IpNet,
        ge: Option<u8>,
        le: Option<u8>,
    ) -> Result<Self, String> {
        let len = prefix.prefix_len();
        let max = prefix.max_prefix_len();
        if let Some(ge) = ge
            && !(len..=max).contains(&ge)
        {
            return Err(format!("{prefix}: ge {ge} is not within {len}..={max}"));
        }
        if let Some(le) = le
            && !(ge.unwrap_or(len)..=max).contains(&le)
        {
            return Err(format!(
                "{prefix}: le {le} is not within {}..={max}",
                ge.unwrap_or(len)
            ));
        }
        Ok(Self {
            action,
            prefix: prefix.trunc(),
            ge,
            le,
        })
    }

    /// Whether the entry covers `prefix` (its verdict aside).
    pub fn covers(&self, prefix: &IpNet) -> bool {
        let len = prefix.prefix_len();
        let (low, high) = match (self.ge, self.le) {
            (None, None) => (self.prefix.prefix_len(), self.prefix.prefix_len()),
            (ge, le) => (
                ge.unwrap_or(self.prefix.prefix_len()),
                le.unwrap_or(self.prefix.max_prefix_len()),
            ),
        };
        (low..=high).contains(&len) && self.prefix.contains(prefix)
    }
}

/// An RFC 1997 community, `asn:value` in the config (or one of the
/// well-known names `no-export`, `no-advertise`, `no-export-subconfed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
}

impl FromStr for Community {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "no-export" => return Ok(Community::NO_EXPORT),
            "no-advertise" => return Ok(Community::NO_ADVERTISE),
            "no-export-subconfed" => return Ok(Community::NO_EXPORT_SUBCONFED),
            _ => {}
        }
        let invalid = || format!("community {text:?}: expected asn:value, each 0..=65535");
        let (high, low) = text.split_once(':').ok_or_else(invalid)?;
        let high: u16 = high.parse().map_err(|_| invalid())?;
        let low: u16 = low.parse().map_err(|_| invalid())?;
        Ok(Community((u32::from(high) << 16) | u32::from(low)))
    }
}

impl TryFrom<String> for Community {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::NO_EXPORT => f.write_str("no-export"),
            Community::NO_ADVERTISE => f.write_str("no-advertise"),
            Community::NO_EXPORT_SUBCONFED => f.write_str("no-export-subconfed"),
            Community(value) => write!(f, "{}:{}", value >> 16, value & 0xFFFF),
        }
    }
}

/// Bounds on a number (the AS_PATH length): `ge`, `le` or both, each
/// inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawLengthRange")]
pub struct LengthRange {
    pub ge: Option<u32>,
    pub le: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLengthRange {
    ge: Option<u32>,
    le: Option<u32>,
}

impl TryFrom<RawLengthRange> for LengthRange {
    type Error = String;

    fn try_from(raw: RawLengthRange) -> Result<Self, String> {
        match (raw.ge, raw.le) {
            (None, None) => Err("as_path_length: give ge, le or both".to_owned()),
            (Some(ge), Some(le)) if ge > le => {
                Err(format!("as_path_length: ge {ge} is above le {le}"))
            }
            (ge, le) => Ok(Self { ge, le }),
        }
    }
}

impl LengthRange {
    pub fn contains(&self, length: usize) -> bool {
        let length = u32::try_from(length).unwrap_or(u32::MAX);
        self.ge.is_none_or(|ge| length >= ge) && self.le.is_none_or(|le| length <= le)
    }
}

/// A route target or route origin to match (RFC 4360): `rt:` or `ro:`,
/// then the global administrator (an AS, or an IPv4 address), then the
/// local number. However the route encodes it (a 2-octet or 4-octet AS
/// type) the same AS matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExtendedCommunity {
    pub kind: ExtendedKind,
    pub administrator: Administrator,
    pub local: u32,
}

impl FromStr for ExtendedCommunity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("extended community {text:?}: {why}");
        let mut parts = text.splitn(3, ':');
        let kind = match parts.next() {
            Some("rt") => ExtendedKind::Target,
            Some("ro") => ExtendedKind::Origin,
            _ => {
                return Err(invalid(
                    "expected rt:<asn or IPv4>:<number> (route target) or ro:... (route origin)",
                ));
            }
        };
        let (Some(administrator), Some(local)) = (parts.next(), parts.next()) else {
            return Err(invalid("expected rt:<asn or IPv4>:<number>"));
        };
        let local: u32 = local
            .parse()
            .map_err(|_| invalid("the last part is not a number"))?;
        // RFC 4360: 6 octets for both parts, so one of them is short.
        let (administrator, local_max) = match administrator.parse::<Ipv4Addr>() {
            Ok(address) => (Administrator::Ipv4(address), u32::from(u16::MAX)),
            Err(_) => match administrator.parse::<Asn>() {
                Ok(asn) if asn <= u32::from(u16::MAX) => (Administrator::As(asn), u32::MAX),
                Ok(asn) => (Administrator::As(asn), u32::from(u16::MAX)),
                Err(_) => {
                    return Err(invalid(
                        "the middle part is neither an AS nor an IPv4 address",
                    ));
                }
            },
        };
        if local > local_max {
            return Err(invalid(&format!(
                "{local} does not fit beside that administrator (0..={local_max})"
            )));
        }
        Ok(Self {
            kind,
            administrator,
            local,
        })
    }
}

impl TryFrom<String> for ExtendedCommunity {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl ExtendedCommunity {
    /// The route target or origin an extended community's 8 octets hold,
    /// if they hold one.
    pub fn of(value: u64) -> Option<Self> {
        let (kind, administrator, local) = route_target_or_origin(value)?;
        Some(Self {
            kind,
            administrator,
            local,
        })
    }

    /// Whether one of a route's extended communities is this one.
    fn carried_by(&self, attributes: &Attributes) -> bool {
        attributes
            .extended_communities()
            .iter()
            .any(|value| Self::of(*value) == Some(*self))
    }
}

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ExtendedKind::Target => "rt",
            ExtendedKind::Origin => "ro",
        };
        match self.administrator {
            Administrator::As(asn) => write!(f, "{kind}:{asn}:{}", self.local),
            Administrator::Ipv4(address) => write!(f, "{kind}:{address}:{}", self.local),
        }
    }
}

/// Communities to delete: a standard one or a large one, each number
/// given (`Some`) or any (`None`, written `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum CommunityPattern {
    Standard([Option<u16>; 2]),
    Large([Option<u32>; 3]),
}

impl FromStr for CommunityPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(Community(value)) = text.parse::<Community>() {
            return Ok(Self::Standard([
                Some((value >> 16) as u16),
                Some(value as u16),
            ]));
        }
        let invalid = || {
            format!(
                "community {text:?}: expected asn:value (0..=65535 each) or asn:value:value (large), a number or * each"
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        fn part<T: FromStr>(text: &str) -> Result<Option<T>, ()> {
            match text {
                "*" => Ok(None),
                number => number.parse().map(Some).map_err(|_| ()),
            }
        }
        match parts[..] {
            [asn, value] => Ok(Self::Standard([
                part(asn).map_err(|()| invalid())?,
                part(value).map_err(|()| invalid())?,
            ])),
            [global, local1, local2] => Ok(Self::Large([
                part(global).map_err(|()| invalid())?,
                part(local1).map_err(|()| invalid())?,
                part(local2).map_err(|()| invalid())?,
            ])),
            _ => Err(invalid()),
        }
    }
}

impl TryFrom<String> for CommunityPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl CommunityPattern {
    fn matches_standard(&self, community: u32) -> bool {
        let parts = [(community >> 16) as u16, community as u16];
        match self {
            Self::Standard(pattern) => pattern
                .iter()
                .zip(parts)
                .all(|(want, have)| want.is_none_or(|want| want == have)),
            Self::Large(_) => false,
        }
    }

    fn matches_large(&self, community: &LargeCommunity) -> bool {
        let parts = [community.global, community.local1, community.local2];
        match self {
            Self::Large(pattern) => pattern
                .iter()
                .zip(parts)
                .all(|(want, have)| want.is_none_or(|want| want == have)),
            Self::Standard(_) => false,
        }
    }
}

/// What a policy makes of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'p> {
    Deny,
    /// Taken, with these changes (none when no rule matched).
    Permit(Option<&'p Set>),
}

impl Policy {
    /// The outcome for a route that is not validated (`not-found`).
    pub fn judge(&self, prefix: &IpNet, attributes: &Attributes) -> Outcome<'_> {
        self.judge_validated(prefix, attributes, Validity::NotFound)
    }

    /// Whether a rule looks at origin validation: only then can a route's
    /// new validation state change what the policy makes of it.
    pub fn matches_rpki(&self) -> bool {
        self.rules.iter().any(|rule| rule.matches.rpki.is_some())
    }

    /// The outcome for a route, without applying it (callers that see the
    /// same attributes for many prefixes apply each `Set` once), given its
    /// origin validation state.
    pub fn judge_validated(
        &self,
        prefix: &IpNet,
        attributes: &Attributes,
        validity: Validity,
    ) -> Outcome<'_> {
        let rule = self.rules.iter().find(|rule| {
            rule.matches.holds(prefix, attributes)
                && rule.matches.rpki.is_none_or(|rpki| rpki == validity)
        });
        match (rule, self.default) {
            (Some(rule), _) if rule.action == Verdict::Deny => Outcome::Deny,
            (Some(rule), _) => Outcome::Permit(Some(&rule.set)),
            (None, Verdict::Permit) => Outcome::Permit(None),
            (None, Verdict::Deny) => Outcome::Deny,
        }
    }

    /// The route's attributes after the policy, `None` when it is denied.
    pub fn apply(&self, prefix: &IpNet, attributes: &Arc<Attributes>) -> Option<Arc<Attributes>> {
        match self.judge(prefix, attributes) {
            Outcome::Deny => None,
            Outcome::Permit(None) => Some(Arc::clone(attributes)),
            Outcome::Permit(Some(set)) => Some(set.apply(attributes)),
        }
    }
}

impl Match {
    pub fn holds(&self, prefix: &IpNet, attributes: &Attributes) -> bool {
        let prefix_permitted = self.prefix_list.is_empty()
            || self
                .prefix_list
                .iter()
                .find(|entry| entry.covers(prefix))
                .is_some_and(|entry| entry.action == Verdict::Permit);
        prefix_permitted
            && self
                .as_path_contains
                .is_none_or(|asn| attributes.contains_as(asn))
            && self
                .community
                .is_none_or(|community| attributes.communities.contains(&community.0))
            && self
                .large_community
                .is_none_or(|community| attributes.large_communities().contains(&community))
            && self
                .extended_community
                .is_none_or(|community| community.carried_by(attributes))
            && self
                .as_path_length
                .is_none_or(|range| range.contains(attributes.as_path_len()))
            && self
                .origin_as
                .is_none_or(|asn| attributes.as_path.origin_as() == Some(asn))
            && self
                .neighbor_as
                .is_none_or(|asn| attributes.first_as() == Some(asn))
    }
}

impl Set {
    pub fn is_empty(&self) -> bool {
        self.add_communities.is_empty()
            && self.local_preference.is_none()
            && self.med.is_none()
            && self.add_large_communities.is_empty()
            && self.delete_communities.is_empty()
    }

    /// The attributes with the changes made; the same `Arc` when there are
    /// none, so that routes keep sharing them.
    pub fn apply(&self, attributes: &Arc<Attributes>) -> Arc<Attributes> {
        if self.is_empty() {
            return Arc::clone(attributes);
        }
        let mut changed = Attributes::clone(attributes);
        let mut communities = std::mem::take(&mut changed.communities).into_vec();
        if !self.delete_communities.is_empty() {
            communities.retain(|community| {
                !self
                    .delete_communities
                    .iter()
                    .any(|pattern| pattern.matches_standard(*community))
            });
        }
        if !self.delete_communities.is_empty() || !self.add_large_communities.is_empty() {
            changed.change_rare(|rare| {
                let mut large = std::mem::take(&mut rare.large_communities).into_vec();
                large.retain(|community| {
                    !self
                        .delete_communities
                        .iter()
                        .any(|pattern| pattern.matches_large(community))
                });
                for community in &self.add_large_communities {
                    if !large.contains(community) {
                        large.push(*community);
                    }
                }
                rare.large_communities = large.into_boxed_slice();
            });
        }
        for community in &self.add_communities {
            if !communities.contains(&community.0) {
                communities.push(community.0);
            }
        }
        changed.communities = communities.into_boxed_slice();
        if let Some(local_preference) = self.local_preference {
            changed.set_local_pref(Some(local_preference));
        }
        if let Some(med) = self.med {
            changed.set_med(Some(med));
        }
        Arc::new(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AsSegment;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn entry(action: Verdict, prefix: &str, ge: Option<u8>, le: Option<u8>) -> PrefixListEntry {
        PrefixListEntry::new(action, net(prefix), ge, le).unwrap()
    }

    fn attributes() -> Arc<Attributes> {
        Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![65001, 65002])].into(),
            communities: vec![(65001 << 16) | 7].into(),
            ..Attributes::default()
        })
    }

    #[test]
    fn prefix_list_entry_lengths() {
        let exact = entry(Verdict::Permit, "10.0.0.0/8", None, None);
        assert!(exact.covers(&net("10.0.0.0/8")));
        assert!(!exact.covers(&net("10.1.0.0/16")));
        assert!(!exact.covers(&net("0.0.0.0/0")));

        let le = entry(Verdict::Permit, "10.0.0.0/8", None, Some(24));
        assert!(le.covers(&net("10.0.0.0/8")));
        assert!(le.covers(&net("10.1.2.0/24")));
        assert!(!le.covers(&net("10.1.2.128/25")));
        assert!(!le.covers(&net("11.0.0.0/16")));

        let ge = entry(Verdict::Permit, "10.0.0.0/8", Some(16), None);
        assert!(!ge.covers(&net("10.0.0.0/8")));
        assert!(ge.covers(&net("10.1.0.0/16")));
        assert!(ge.covers(&net("10.1.2.3/32")));

        let both = entry(Verdict::Permit, "2001:db8::/32", Some(40), Some(48));
        assert!(!both.covers(&net("2001:db8::/36")));
        assert!(both.covers(&net("2001:db8:100::/40")));
        assert!(both.covers(&net("2001:db8:1::/48")));
        assert!(!both.covers(&net("2001:db8:1::/56")));
        assert!(!both.covers(&net("10.0.0.0/8")));

        let any = entry(Verdict::Permit, "0.0.0.0/0", None, Some(32));
        assert!(any.covers(&net("192.0.2.1/32")));
        assert!(!any.covers(&net("::/0")));
    }

    #[test]
    fn prefix_list_entry_bounds_are_checked() {
        assert!(PrefixListEntry::new(Verdict::Permit, net("10.0.0.0/16"), Some(8), None).is_err());
        assert!(
            PrefixListEntry::new(Verdict::Permit, net("10.0.0.0/8"), Some(24), Some(16)).is_err()
        );
        assert!(PrefixListEntry::new(Verdict::Permit, net("10.0.0.0/8"), None, Some(33)).is_err());
        let entry = PrefixListEntry::new(Verdict::Permit, net("10.1.2.3/8"), None, None).unwrap();
        assert_eq!(entry.prefix, net("10.0.0.0/8"));
    }

    #[test]
    fn first_covering_entry_decides_and_nothing_covered_is_not_permitted() {
        let matches = Match {
            prefix_list: vec![
                entry(Verdict::Deny, "10.66.0.0/16", None, Some(32)),
                entry(Verdict::Permit, "10.0.0.0/8", None, Some(24)),
            ],
            ..Match::default()
        };
        let attributes = attributes();
        assert!(matches.holds(&net("10.1.0.0/16"), &attributes));
        assert!(!matches.holds(&net("10.66.1.0/24"), &attributes));
        assert!(!matches.holds(&net("192.0.2.0/24"), &attributes));
    }

    #[test]
    fn as_path_and_community_conditions() {
        let attributes = attributes();
        let prefix = net("192.0.2.0/24");
        let with = |as_path_contains, community| Match {
            as_path_contains,
            community,
            ..Match::default()
        };
        assert!(with(Some(65002), None).holds(&prefix, &attributes));
        assert!(!with(Some(65003), None).holds(&prefix, &attributes));
        assert!(with(None, Some("65001:7".parse().unwrap())).holds(&prefix, &attributes));
        assert!(!with(None, Some("65001:8".parse().unwrap())).holds(&prefix, &attributes));
        assert!(!with(Some(65002), Some("65001:8".parse().unwrap())).holds(&prefix, &attributes));
        assert!(Match::default().holds(&prefix, &attributes));
    }

    #[test]
    fn first_matching_rule_decides_and_sets() {
        let policy = Policy {
            rules: vec![
                Rule {
                    action: Verdict::Deny,
                    matches: Match {
                        as_path_contains: Some(64666),
                        ..Match::default()
                    },
                    set: Set::default(),
                },
                Rule {
                    action: Verdict::Permit,
                    matches: Match {
                        prefix_list: vec![entry(Verdict::Permit, "10.0.0.0/8", None, Some(24))],
                        ..Match::default()
                    },
                    set: Set {
                        add_communities: vec![
                            "65000:1".parse().unwrap(),
                            Community(65001 << 16 | 7),
                        ],
                        local_preference: Some(200),
                        med: Some(5),
                        ..Set::default()
                    },
                },
            ],
            default: Verdict::Deny,
        };
        let attributes = attributes();
        let taken = policy.apply(&net("10.1.0.0/16"), &attributes).unwrap();
        assert_eq!(taken.local_pref(), Some(200));
        assert_eq!(taken.med(), Some(5));
        assert_eq!(
            taken.communities,
            vec![(65001 << 16) | 7, 65000 << 16 | 1].into()
        );
        // Unmatched: the default (deny here).
        assert_eq!(policy.apply(&net("192.0.2.0/24"), &attributes), None);
        // The deny rule comes first.
        let looped = Arc::new(Attributes {
            as_path: vec![AsSegment::Sequence(vec![65001, 64666])].into(),
            ..Attributes::default()
        });
        assert_eq!(policy.apply(&net("10.1.0.0/16"), &looped), None);
    }

    #[test]
    fn empty_policy_permits_and_shares_attributes() {
        let attributes = attributes();
        let taken = Policy::default()
            .apply(&net("192.0.2.0/24"), &attributes)
            .unwrap();
        assert!(Arc::ptr_eq(&taken, &attributes));
    }

    #[test]
    fn rpki_condition() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "rules": [{ "action": "deny", "match": { "rpki": "invalid" } }]
        }))
        .unwrap();
        assert!(policy.matches_rpki());
        assert!(!Policy::default().matches_rpki());
        let attributes = attributes();
        let prefix = net("192.0.2.0/24");
        assert_eq!(
            policy.judge_validated(&prefix, &attributes, Validity::Invalid),
            Outcome::Deny
        );
        for validity in [Validity::Valid, Validity::NotFound] {
            assert_eq!(
                policy.judge_validated(&prefix, &attributes, validity),
                Outcome::Permit(None)
            );
        }
        // Unvalidated routes are not found.
        assert_eq!(policy.judge(&prefix, &attributes), Outcome::Permit(None));
        let not_found: Policy = serde_json::from_value(serde_json::json!({
            "rules": [{ "action": "deny", "match": { "rpki": "not-found" } }]
        }))
        .unwrap();
        assert_eq!(not_found.judge(&prefix, &attributes), Outcome::Deny);
        assert!(
            serde_json::from_value::<Policy>(serde_json::json!({
                "rules": [{ "action": "deny", "match": { "rpki": "unknown" } }]
            }))
            .is_err()
        );
    }

    #[test]
    fn communities_parse_and_print() {
        assert_eq!("65000:100".parse(), Ok(Community(65000 << 16 | 100)));
        assert_eq!("no-export".parse(), Ok(Community::NO_EXPORT));
        assert!("65536:1".parse::<Community>().is_err());
        assert!("65000".parse::<Community>().is_err());
        assert_eq!(Community(65000 << 16 | 100).to_string(), "65000:100");
        assert_eq!(Community::NO_ADVERTISE.to_string(), "no-advertise");
    }

    #[test]
    fn policy_deserializes_from_config_values() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "rules": [
                {
                    "action": "permit",
                    "match": {
                        "prefix_list": [
                            { "prefix": "10.66.0.0/16", "le": 32, "action": "deny" },
                            { "prefix": "10.0.0.0/8", "le": 24 }
                        ],
                        "community": "65001:7"
                    },
                    "set": { "local_preference": 200, "add_communities": ["no-export"] }
                },
                { "action": "deny", "match": { "as_path_contains": 64666 } }
            ],
            "default": "deny"
        }))
        .unwrap();
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(policy.default, Verdict::Deny);
        assert_eq!(policy.rules[0].matches.prefix_list[0].action, Verdict::Deny);
        assert_eq!(
            policy.rules[0].matches.prefix_list[1].action,
            Verdict::Permit
        );
        assert_eq!(
            policy.rules[0].set.add_communities,
            vec![Community::NO_EXPORT]
        );
        let taken = policy.apply(&net("10.1.0.0/16"), &attributes()).unwrap();
        assert_eq!(taken.local_pref(), Some(200));

        // Bad values are refused with the reason.
        let error = serde_json::from_value::<Policy>(serde_json::json!({
            "rules": [{ "action": "permit", "match": { "prefix_list": [
                { "prefix": "10.0.0.0/8", "ge": 4 }
            ] } }]
        }))
        .unwrap_err();
        assert!(error.to_string().contains("ge 4"), "{error}");
        assert!(serde_json::from_value::<Policy>(serde_json::json!({ "rulez": [] })).is_err());
        assert!(
            serde_json::from_value::<Policy>(serde_json::json!({
                "rules": [{ "action": "permit", "set": { "add_communities": ["x"] } }]
            }))
            .is_err()
        );
    }

    fn with_rare(change: impl FnOnce(&mut crate::types::Rare)) -> Arc<Attributes> {
        let mut attributes = Attributes::clone(&attributes());
        attributes.change_rare(change);
        Arc::new(attributes)
    }

    fn large(text: &str) -> LargeCommunity {
        text.parse().unwrap()
    }

    #[test]
    fn large_community_condition() {
        let prefix = net("172.20.1.0/24");
        let tagged = with_rare(|rare| {
            rare.large_communities = vec![large("4242420001:1:2"), large("64511:3:4")].into();
        });
        let condition = |text: &str| Match {
            large_community: Some(large(text)),
            ..Match::default()
        };
        assert!(condition("4242420001:1:2").holds(&prefix, &tagged));
        assert!(condition("64511:3:4").holds(&prefix, &tagged));
        assert!(!condition("4242420001:1:3").holds(&prefix, &tagged));
        assert!(!condition("4242420001:1:2").holds(&prefix, &attributes()));
        assert!("4242420001:1".parse::<LargeCommunity>().is_err());
        assert!("4242420001:1:2:3".parse::<LargeCommunity>().is_err());
        assert!("4294967296:1:2".parse::<LargeCommunity>().is_err());
        assert_eq!(large("4242420001:1:2").to_string(), "4242420001:1:2");
    }

    #[test]
    fn extended_community_condition() {
        let prefix = net("172.20.1.0/24");
        // rt:65001:7 as a two-octet-AS type, ro:4242420001:9 as a
        // four-octet one, rt:192.0.2.1:5 as an IPv4 one.
        let tagged = with_rare(|rare| {
            rare.extended_communities = vec![
                0x0002_fde9_0000_0007,
                0x0203_fcde_3121_0009,
                0x0102_c000_0201_0005,
            ]
            .into();
        });
        let condition = |text: &str| Match {
            extended_community: Some(text.parse().unwrap()),
            ..Match::default()
        };
        assert!(condition("rt:65001:7").holds(&prefix, &tagged));
        assert!(condition("ro:4242420001:9").holds(&prefix, &tagged));
        assert!(condition("rt:192.0.2.1:5").holds(&prefix, &tagged));
        assert!(!condition("ro:65001:7").holds(&prefix, &tagged));
        assert!(!condition("rt:4242420001:9").holds(&prefix, &tagged));
        assert!(!condition("rt:65001:7").holds(&prefix, &attributes()));
        for bad in [
            "65001:7",
            "xx:65001:7",
            "rt:65001",
            "rt:4242420001:70000",
            "rt:a.b:1",
        ] {
            assert!(bad.parse::<ExtendedCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn as_path_conditions() {
        let prefix = net("172.20.1.0/24");
        let path = |segments: Vec<AsSegment>| {
            Arc::new(Attributes {
                as_path: segments.into(),
                ..Attributes::default()
            })
        };
        // Length 3: two in the sequence, the set counting one.
        let aggregated = path(vec![
            AsSegment::Sequence(vec![65001, 65002]),
            AsSegment::Set(vec![65003, 65004, 65005]),
        ]);
        let long = path(vec![AsSegment::Sequence((65001..65012).collect())]);
        let length = |ge, le| Match {
            as_path_length: Some(LengthRange { ge, le }),
            ..Match::default()
        };
        assert!(length(None, Some(3)).holds(&prefix, &aggregated));
        assert!(!length(None, Some(2)).holds(&prefix, &aggregated));
        assert!(length(Some(3), None).holds(&prefix, &aggregated));
        assert!(!length(Some(4), Some(10)).holds(&prefix, &aggregated));
        assert!(!length(None, Some(10)).holds(&prefix, &long));
        assert!(length(Some(11), Some(11)).holds(&prefix, &long));

        let origin = |asn| Match {
            origin_as: Some(asn),
            ..Match::default()
        };
        let neighbor = |asn| Match {
            neighbor_as: Some(asn),
            ..Match::default()
        };
        assert!(origin(65011).holds(&prefix, &long));
        assert!(!origin(65001).holds(&prefix, &long));
        // Ends in an AS_SET: no origin AS to match.
        for asn in [65002, 65003, 65005] {
            assert!(!origin(asn).holds(&prefix, &aggregated), "{asn}");
        }
        assert!(neighbor(65001).holds(&prefix, &long));
        assert!(neighbor(65001).holds(&prefix, &aggregated));
        assert!(!neighbor(65002).holds(&prefix, &aggregated));
        assert!(!neighbor(65001).holds(&prefix, &path(Vec::new())));
    }

    #[test]
    fn length_ranges_are_checked() {
        let range = |value| serde_json::from_value::<LengthRange>(value);
        assert_eq!(
            range(serde_json::json!({ "le": 10 })).unwrap(),
            LengthRange {
                ge: None,
                le: Some(10)
            }
        );
        assert!(range(serde_json::json!({})).is_err());
        let error = range(serde_json::json!({ "ge": 5, "le": 4 })).unwrap_err();
        assert!(error.to_string().contains("ge 5 is above le 4"), "{error}");
        assert!(range(serde_json::json!({ "lt": 4 })).is_err());
    }

    #[test]
    fn overlay_prefix_lists_bound_both_families() {
        // What overlay communities ask: their space, with length bounds.
        let matches = Match {
            prefix_list: vec![
                entry(Verdict::Permit, "172.20.0.0/14", Some(21), Some(29)),
                entry(Verdict::Permit, "fd00::/8", Some(44), Some(64)),
            ],
            ..Match::default()
        };
        let attributes = attributes();
        for taken in [
            "172.20.0.0/21",
            "172.23.255.248/29",
            "172.22.1.0/24",
            "fd42:4242::/44",
            "fdff:1:2:3::/64",
            "fd00::/48",
        ] {
            assert!(matches.holds(&net(taken), &attributes), "{taken}");
        }
        for refused in [
            "172.20.0.0/14",
            "172.20.0.0/20",
            "172.20.1.0/30",
            "172.24.0.0/24",
            "fd00::/8",
            "fd42::/43",
            "fd42:4242:1:2::/65",
            "fe80::/64",
            "2001:db8::/48",
        ] {
            assert!(!matches.holds(&net(refused), &attributes), "{refused}");
        }
    }

    #[test]
    fn sets_delete_then_add_communities() {
        let tagged = with_rare(|rare| {
            rare.large_communities = vec![
                large("4242420001:1:2"),
                large("4242420001:3:4"),
                large("64511:1:2"),
            ]
            .into();
        });
        let mut tagged = Attributes::clone(&tagged);
        tagged.communities = vec![
            65001 << 16 | 7,
            65001 << 16 | 8,
            65002 << 16 | 7,
            0xFFFF_FF01,
        ]
        .into();
        let tagged = Arc::new(tagged);
        let set: Set = serde_json::from_value(serde_json::json!({
            "delete_communities": ["65001:*", "no-export", "4242420001:*:*"],
            "add_communities": ["65001:9"],
            "add_large_communities": ["4242420001:5:6", "64511:1:2"]
        }))
        .unwrap();
        let changed = set.apply(&tagged);
        assert_eq!(
            changed.communities,
            vec![65002 << 16 | 7, 65001 << 16 | 9].into()
        );
        assert_eq!(
            changed.large_communities(),
            [large("64511:1:2"), large("4242420001:5:6")]
        );
        // The rest as they were.
        assert_eq!(changed.as_path, tagged.as_path);

        // Exact patterns, and a large pattern never takes a standard one.
        let set: Set = serde_json::from_value(serde_json::json!({
            "delete_communities": ["65001:7", "*:*:2"]
        }))
        .unwrap();
        let changed = set.apply(&tagged);
        assert_eq!(
            changed.communities,
            vec![65001 << 16 | 8, 65002 << 16 | 7, 0xFFFF_FF01].into()
        );
        assert_eq!(changed.large_communities(), [large("4242420001:3:4")]);
        // Deleting every large community leaves no empty Rare behind.
        let set: Set = serde_json::from_value(serde_json::json!({
            "delete_communities": ["*:*:*"]
        }))
        .unwrap();
        let plain = Arc::new(Attributes {
            rare: crate::types::Rare {
                large_communities: vec![large("1:2:3")].into(),
                ..crate::types::Rare::default()
            }
            .boxed(),
            ..Attributes::default()
        });
        assert_eq!(set.apply(&plain).rare, None);

        for bad in ["65001", "65536:*", "1:2:3:4", "a:b", "*:4294967296:1"] {
            assert!(bad.parse::<CommunityPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn new_conditions_deserialize_from_config_values() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "rules": [{
                "action": "deny",
                "match": {
                    "large_community": "4242420001:1:2",
                    "extended_community": "rt:65000:1",
                    "as_path_length": { "ge": 2, "le": 10 },
                    "origin_as": 4242420002u32,
                    "neighbor_as": 4242420001u32
                }
            }]
        }))
        .unwrap();
        let matches = &policy.rules[0].matches;
        assert_eq!(matches.large_community, Some(large("4242420001:1:2")));
        assert_eq!(
            matches.as_path_length,
            Some(LengthRange {
                ge: Some(2),
                le: Some(10)
            })
        );
        assert_eq!(matches.origin_as, Some(4_242_420_002));
        assert_eq!(matches.neighbor_as, Some(4_242_420_001));
        let error = serde_json::from_value::<Policy>(serde_json::json!({
            "rules": [{ "action": "permit", "match": { "large_community": "1:2" } }]
        }))
        .unwrap_err();
        assert!(error.to_string().contains("large community"), "{error}");
    }
}
