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

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::types::{Asn, Attributes};
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
    }
}

impl Set {
    pub fn is_empty(&self) -> bool {
        self.add_communities.is_empty() && self.local_preference.is_none() && self.med.is_none()
    }

    /// The attributes with the changes made; the same `Arc` when there are
    /// none, so that routes keep sharing them.
    pub fn apply(&self, attributes: &Arc<Attributes>) -> Arc<Attributes> {
        if self.is_empty() {
            return Arc::clone(attributes);
        }
        let mut changed = Attributes::clone(attributes);
        let mut communities = std::mem::take(&mut changed.communities).into_vec();
        for community in &self.add_communities {
            if !communities.contains(&community.0) {
                communities.push(community.0);
            }
        }
        changed.communities = communities.into_boxed_slice();
        if let Some(local_preference) = self.local_preference {
            changed.local_pref = Some(local_preference);
        }
        if let Some(med) = self.med {
            changed.med = Some(med);
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
                    },
                },
            ],
            default: Verdict::Deny,
        };
        let attributes = attributes();
        let taken = policy.apply(&net("10.1.0.0/16"), &attributes).unwrap();
        assert_eq!(taken.local_pref, Some(200));
        assert_eq!(taken.med, Some(5));
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
        assert_eq!(taken.local_pref, Some(200));

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
}
