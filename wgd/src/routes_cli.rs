//! `wgd route add|del` and `wgd routes`: the route bridge from the command
//! line, through the running daemon's `RouteService`. Routes added here are
//! static: they stay until deleted, across restarts of the daemon.

use std::fmt::Write as _;

use wgd_proto::v1 as api;

/// Reads `via ADDR [dev TUNNEL]` and `dev TUNNEL` groups, as `ip route`
/// writes them; several groups make an ECMP route.
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
                let address = value(&mut words)?;
                let mut tunnel = String::new();
                if words.peek() == Some(&"dev") {
                    words.next();
                    tunnel = value(&mut words)?;
                }
                nexthops.push(api::Nexthop { address, tunnel });
            }
            "dev" => nexthops.push(api::Nexthop {
                address: String::new(),
                tunnel: value(&mut words)?,
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
            let nexthops: Vec<String> = route.nexthops.iter().map(describe_nexthop).collect();
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
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index == 5 {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
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
    }
}
