//! `wgd route add|del` and `wgd routes`: the route bridge from the command
//! line, through the running daemon's `RouteService`. Routes added here are
//! static: they stay until deleted, across restarts of the daemon.

use std::fmt::Write as _;

use wgd_proto::v1 as api;

/// Reads `via [inet|inet6] ADDR [dev TUNNEL]` and `dev TUNNEL` groups, as
/// `ip route` writes them; several groups make an ECMP route. An IPv4 route
/// may go through an IPv6 address (`via fe80::2 dev dn42b`, RFC 8950); a
/// link-local one names its tunnel with `dev`, or as `fe80::2%dn42b`.
pub fn parse_nexthops(words: &[String]) -> Result<Vec<api::Nexthop>, String> {
    let mut nexthops: Vec<api::Nexthop> = Vec::new();
    let mut words = words.iter().map(String::as_str).peekable();
    while let Some(word) = words.next() {
        let value = |words: &mut std::iter::Peekable<_>| -> Result<String, String> {
            words
                .next()
                .map(|value: &str| value.to_owned())
                .ok_or_else(|| format!("\"{word}\" needs a value"))
        };
        match word {
            "via" => {
                // `ip route`'s family word: the address says it already.
                if matches!(words.peek(), Some(&("inet" | "inet6"))) {
                    words.next();
                }
                let address = value(&mut words)?;
                let mut tunnel = String::new();
                if words.peek() == Some(&"dev") {
                    words.next();
                    tunnel = value(&mut words)?;
                }
                nexthops.push(api::Nexthop {
                    address,
                    tunnel,
                    bfd: false,
                });
            }
            "dev" => nexthops.push(api::Nexthop {
                address: String::new(),
                tunnel: value(&mut words)?,
                bfd: false,
            }),
            other => {
                return Err(format!(
                    "unexpected \"{other}\": expected via ADDRESS [dev TUNNEL] or dev TUNNEL"
                ));
            }
        }
    }
    if nexthops.is_empty() {
        return Err("no nexthop: give via ADDRESS [dev TUNNEL] or dev TUNNEL".into());
    }
    Ok(nexthops)
}

pub fn state_name(state: i32) -> &'static str {
    match api::RouteState::try_from(state) {
        Ok(api::RouteState::Installed) => "installed",
        Ok(api::RouteState::Refused) => "refused",
        Ok(api::RouteState::Queued) => "queued",
        Ok(api::RouteState::Standby) => "standby",
        Ok(api::RouteState::Withdrawn) => "withdrawn",
        Ok(api::RouteState::Failed) => "failed",
        Ok(api::RouteState::Unspecified) | Err(_) => "unknown",
    }
}

pub fn describe_nexthop(nexthop: &api::Nexthop) -> String {
    match (nexthop.address.is_empty(), nexthop.tunnel.is_empty()) {
        (false, true) => format!("via {}", nexthop.address),
        (false, false) => format!("via {} dev {}", nexthop.address, nexthop.tunnel),
        _ => format!("dev {}", nexthop.tunnel),
    }
}

/// A nexthop of a route for `prefix`, as `ip route` shows it: an IPv6
/// gateway of an IPv4 route reads `via inet6 fe80::2 dev dn42b`.
pub fn describe_route_nexthop(prefix: &str, nexthop: &api::Nexthop) -> String {
    let text = describe_nexthop(nexthop);
    let prefix_v4 = !prefix.contains(':');
    if prefix_v4 && nexthop.address.contains(':') {
        return text.replacen("via ", "via inet6 ", 1);
    }
    text
}

/// One line per result: `192.0.2.0/24: installed`, with the reason if any.
pub fn describe_result(result: &api::RouteResult) -> String {
    let state = state_name(result.state);
    if result.reason.is_empty() {
        format!("{}: {state}", result.prefix)
    } else {
        format!("{}: {state}: {}", result.prefix, result.reason)
    }
}

/// `wgd routes`: a table, or JSON.
pub fn render_routes(routes: &[api::RouteEntry], json: bool) -> String {
    if json {
        let list: Vec<serde_json::Value> = routes
            .iter()
            .map(|route| {
                serde_json::json!({
                    "prefix": route.prefix,
                    "owner": route.owner,
                    "nexthops": route.nexthops.iter().map(|n| serde_json::json!({
                        "address": (!n.address.is_empty()).then_some(&n.address),
                        "tunnel": (!n.tunnel.is_empty()).then_some(&n.tunnel),
                        // `inet6` for an IPv4 route's IPv6 gateway (RFC 8950).
                        "family": (!n.address.is_empty()).then(|| {
                            if n.address.contains(':') { "inet6" } else { "inet" }
                        }),
                    })).collect::<Vec<_>>(),
                    "distance": route.distance,
                    "metric": route.metric,
                    "state": state_name(route.state),
                    "installed": route.state == api::RouteState::Installed as i32,
                    "reason": (!route.reason.is_empty()).then_some(&route.reason),
                    "stale": route.stale,
                })
            })
            .collect();
        return serde_json::to_string_pretty(&list).expect("routes serialise") + "\n";
    }
    let rows: Vec<[String; 6]> = routes
        .iter()
        .map(|route| {
            let nexthops: Vec<String> = route
                .nexthops
                .iter()
                .map(|nexthop| describe_route_nexthop(&route.prefix, nexthop))
                .collect();
            let mut state = state_name(route.state).to_owned();
            if route.stale {
                state.push_str(" (stale)");
            }
            [
                route.prefix.clone(),
                route.owner.clone(),
                nexthops.join(", "),
                format!("{}/{}", route.distance, route.metric),
                state,
                route.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "PREFIX",
        "OWNER",
        "NEXTHOPS",
        "DIST/METRIC",
        "STATE",
        "WHY NOT",
    ];
    table(header, &rows)
}

/// `wgd bgp summary`: one line per neighbor, or JSON.
pub fn render_bgp_summary(summary: &api::BgpSummaryResponse, json: bool) -> String {
    if json {
        let neighbors: Vec<serde_json::Value> = summary
            .neighbors
            .iter()
            .map(|n| {
                serde_json::json!({
                    "neighbor": n.address,
                    "tunnel": (!n.tunnel.is_empty()).then_some(&n.tunnel),
                    "remote_as": n.remote_as,
                    "state": n.state,
                    "state_seconds": n.state_seconds,
                    "prefixes_received": n.prefixes_received,
                    "prefixes_accepted": n.prefixes_accepted,
                    "prefixes_sent": n.prefixes_sent,
                    "messages_received": n.messages_received,
                    "messages_sent": n.messages_sent,
                    "resets": n.resets,
                    "prefixes_blocked": n.prefixes_blocked,
                    "last_error": (!n.last_error.is_empty()).then_some(&n.last_error),
                })
            })
            .collect();
        let value = serde_json::json!({
            "asn": summary.asn,
            "router_id": summary.router_id,
            "neighbors": neighbors,
        });
        return serde_json::to_string_pretty(&value).expect("summary serialises") + "\n";
    }
    let mut out = format!(
        "BGP router identifier {}, local AS {}\n",
        summary.router_id, summary.asn
    );
    let header = [
        "NEIGHBOR", "TUNNEL", "AS", "STATE", "UP/DOWN", "RCVD", "ACCEPTED", "SENT",
    ];
    let rows: Vec<[String; 8]> = summary
        .neighbors
        .iter()
        .map(|n| {
            [
                n.address.clone(),
                n.tunnel.clone(),
                n.remote_as.to_string(),
                n.state.clone(),
                duration(n.state_seconds),
                n.prefixes_received.to_string(),
                n.prefixes_accepted.to_string(),
                n.prefixes_sent.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(header, &rows));
    for n in &summary.neighbors {
        if !n.last_error.is_empty() {
            let _ = writeln!(out, "{}: last error: {}", n.address, n.last_error);
        }
        if n.prefixes_blocked > 0 {
            let _ = writeln!(
                out,
                "{}: prefix limit reached: {} announcements of new prefixes not taken",
                n.address, n.prefixes_blocked
            );
        }
    }
    out
}

/// `1d02h`, `03:04:05`, like routers print session ages.
/// Rows under a header, each column as wide as its widest cell, two
/// spaces between columns, no trailing spaces.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.into_iter());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

pub(crate) fn duration(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    }
}

/// `wgd bgp routes`: paths with the best marked, or JSON.
pub fn render_bgp_paths(paths: &[api::BgpPath], json: bool) -> String {
    if json {
        let list: Vec<serde_json::Value> = paths
            .iter()
            .map(|p| {
                serde_json::json!({
                    "prefix": p.prefix,
                    "neighbor": (!p.neighbor.is_empty()).then_some(&p.neighbor),
                    "next_hop": (!p.next_hop.is_empty()).then_some(&p.next_hop),
                    "as_path": p.as_path,
                    "origin": p.origin,
                    "med": p.med,
                    "local_pref": p.local_pref,
                    "communities": p.communities,
                    "large_communities": p.large_communities,
                    "extended_communities": p.extended_communities,
                    "best": p.best,
                    "stale": p.stale,
                    "rpki": (!p.rpki.is_empty()).then_some(&p.rpki),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&list).expect("paths serialise") + "\n";
    }
    // Origin validation's state last, when it is on.
    let validating = paths.iter().any(|p| !p.rpki.is_empty());
    let mut out = String::from(if validating {
        "  PREFIX / NEXT HOP / FROM / AS PATH / ORIGIN / RPKI\n"
    } else {
        "  PREFIX / NEXT HOP / FROM / AS PATH / ORIGIN\n"
    });
    for p in paths {
        let marker = match (p.best, p.stale) {
            (true, false) => "*>",
            (true, true) => "S>",
            (false, true) => "S ",
            (false, false) => "* ",
        };
        let from = if p.neighbor.is_empty() {
            "local"
        } else {
            &p.neighbor
        };
        let next_hop = if p.next_hop.is_empty() {
            "-"
        } else {
            &p.next_hop
        };
        let _ = write!(
            out,
            "{marker} {} via {next_hop} from {from} [{}] {}",
            p.prefix, p.as_path, p.origin
        );
        if validating {
            let rpki = if p.rpki.is_empty() { "-" } else { &p.rpki };
            let _ = write!(out, " {rpki}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn nexthops_read_like_ip_route() {
        let nexthops =
            parse_nexthops(&words("via 10.255.0.1 via 10.254.0.2 dev wg-hub dev wg-c")).unwrap();
        let described: Vec<String> = nexthops.iter().map(describe_nexthop).collect();
        assert_eq!(
            described,
            ["via 10.255.0.1", "via 10.254.0.2 dev wg-hub", "dev wg-c"]
        );
        assert_eq!(
            parse_nexthops(&words("via")).unwrap_err(),
            "\"via\" needs a value"
        );
        assert!(parse_nexthops(&words("gateway 1.2.3.4")).is_err());
        // RFC 8950, in ip route's words too.
        let nexthops = parse_nexthops(&words(
            "via fe80::2 dev dn42b via inet6 fe80::3 dev dn42c via fe80::4%dn42d",
        ))
        .unwrap();
        let described: Vec<String> = nexthops
            .iter()
            .map(|nexthop| describe_route_nexthop("172.20.2.0/27", nexthop))
            .collect();
        assert_eq!(
            described,
            [
                "via inet6 fe80::2 dev dn42b",
                "via inet6 fe80::3 dev dn42c",
                "via inet6 fe80::4%dn42d"
            ]
        );
        assert_eq!(
            describe_route_nexthop("fd42::/48", &nexthops[0]),
            "via fe80::2 dev dn42b"
        );
        assert!(parse_nexthops(&[]).is_err());
    }

    #[test]
    fn routes_render_as_a_table() {
        let routes = vec![api::RouteEntry {
            prefix: "192.0.2.0/24".into(),
            owner: "ctl".into(),
            nexthops: vec![api::Nexthop {
                address: "10.255.0.1".into(),
                tunnel: String::new(),
                bfd: false,
            }],
            distance: 20,
            metric: 0,
            state: api::RouteState::Queued as i32,
            reason: "tunnel wg-b is down".into(),
            stale: true,
        }];
        let text = render_routes(&routes, false);
        assert_eq!(
            text,
            "PREFIX        OWNER  NEXTHOPS        DIST/METRIC  STATE           WHY NOT\n\
             192.0.2.0/24  ctl    via 10.255.0.1  20/0         queued (stale)  tunnel wg-b is down\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_routes(&routes, true)).unwrap();
        assert_eq!(json[0]["state"], "queued");
        assert_eq!(json[0]["installed"], false);
        assert_eq!(json[0]["nexthops"][0]["family"], "inet");

        let routes = vec![api::RouteEntry {
            prefix: "172.20.2.0/27".into(),
            owner: "cli".into(),
            nexthops: vec![api::Nexthop {
                address: "fe80::2".into(),
                tunnel: "dn42b".into(),
                bfd: false,
            }],
            distance: 1,
            metric: 0,
            state: api::RouteState::Installed as i32,
            reason: String::new(),
            stale: false,
        }];
        assert_eq!(
            render_routes(&routes, false),
            "PREFIX         OWNER  NEXTHOPS                     DIST/METRIC  STATE      WHY NOT\n\
             172.20.2.0/27  cli    via inet6 fe80::2 dev dn42b  1/0          installed\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_routes(&routes, true)).unwrap();
        assert_eq!(json[0]["nexthops"][0]["address"], "fe80::2");
        assert_eq!(json[0]["nexthops"][0]["tunnel"], "dn42b");
        assert_eq!(json[0]["nexthops"][0]["family"], "inet6");
    }

    #[test]
    fn bgp_paths_show_their_validation_state_when_there_is_one() {
        let path = |prefix: &str, rpki: &str| api::BgpPath {
            prefix: prefix.into(),
            neighbor: "10.255.0.1".into(),
            next_hop: "10.255.0.1".into(),
            as_path: "65002".into(),
            origin: "igp".into(),
            best: true,
            rpki: rpki.into(),
            ..api::BgpPath::default()
        };
        let plain = render_bgp_paths(&[path("192.0.2.0/24", "")], false);
        assert_eq!(
            plain,
            "  PREFIX / NEXT HOP / FROM / AS PATH / ORIGIN\n\
             *> 192.0.2.0/24 via 10.255.0.1 from 10.255.0.1 [65002] igp\n"
        );
        let validated = render_bgp_paths(
            &[
                path("192.0.2.0/24", "valid"),
                path("198.51.100.0/24", "not-found"),
            ],
            false,
        );
        let lines: Vec<&str> = validated.lines().collect();
        assert!(lines[0].ends_with("/ RPKI"), "{validated}");
        assert!(lines[1].ends_with("igp valid"), "{validated}");
        assert!(lines[2].ends_with("igp not-found"), "{validated}");
        let json: serde_json::Value =
            serde_json::from_str(&render_bgp_paths(&[path("192.0.2.0/24", "invalid")], true))
                .unwrap();
        assert_eq!(json[0]["rpki"], "invalid");
        let json: serde_json::Value =
            serde_json::from_str(&render_bgp_paths(&[path("192.0.2.0/24", "")], true)).unwrap();
        assert_eq!(json[0]["rpki"], serde_json::Value::Null);
    }
}
