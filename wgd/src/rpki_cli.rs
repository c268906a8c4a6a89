//! `wgd rpki`: the daemon's RPKI caches and VRPs, and `wgd rpki validate`,
//! as text or JSON.

use std::fmt::Write as _;

use wgd_proto::v1 as api;

/// The caches (one line each: address, preference, state, version,
/// session and serial, last update, intervals, last error) under the VRP
/// and route counts, or JSON.
pub fn render(rpki: &api::RpkiResponse, json: bool) -> String {
    if json {
        let servers: Vec<serde_json::Value> = rpki
            .servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "address": s.address,
                    "preference": s.preference,
                    "state": s.state,
                    "source": s.source,
                    "version": s.version,
                    "session_id": s.session_id,
                    "serial": s.serial,
                    "last_update_seconds": s.last_update_seconds,
                    "refresh": s.refresh,
                    "retry": s.retry,
                    "expire": s.expire,
                    "last_error": (!s.last_error.is_empty()).then_some(&s.last_error),
                })
            })
            .collect();
        let value = serde_json::json!({
            "servers": servers,
            "vrps": { "ipv4": rpki.vrps_ipv4, "ipv6": rpki.vrps_ipv6 },
            "routes": {
                "valid": rpki.routes_valid,
                "invalid": rpki.routes_invalid,
                "not-found": rpki.routes_not_found,
            },
        });
        return serde_json::to_string_pretty(&value).expect("rpki serialises") + "\n";
    }
    let mut out = format!(
        "VRPs: {} IPv4, {} IPv6\nroutes: {} valid, {} invalid, {} not found\n\n",
        rpki.vrps_ipv4,
        rpki.vrps_ipv6,
        rpki.routes_valid,
        rpki.routes_invalid,
        rpki.routes_not_found
    );
    let header = [
        "SERVER",
        "PREF",
        "STATE",
        "VERSION",
        "SESSION/SERIAL",
        "LAST UPDATE",
        "REFRESH/RETRY/EXPIRE",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 8]> = rpki
        .servers
        .iter()
        .map(|s| {
            let state = if s.source {
                format!("{} (in use)", s.state)
            } else {
                s.state.clone()
            };
            let serial = match (s.session_id, s.serial) {
                (Some(session), Some(serial)) => format!("{session}/{serial}"),
                _ => "-".to_owned(),
            };
            [
                s.address.clone(),
                s.preference.to_string(),
                state,
                s.version.to_string(),
                serial,
                s.last_update_seconds
                    .map(|seconds| format!("{} ago", crate::routes_cli::duration(seconds)))
                    .unwrap_or_else(|| "-".to_owned()),
                format!("{}/{}/{}s", s.refresh, s.retry, s.expire),
                if s.last_error.is_empty() {
                    "-".to_owned()
                } else {
                    s.last_error.clone()
                },
            ]
        })
        .collect();
    out.push_str(&crate::routes_cli::table(header, &rows));
    out
}

/// `wgd rpki validate`: the state, then the covering VRPs.
pub fn render_validation(
    prefix: &str,
    origin_as: u32,
    answer: &api::RpkiValidateResponse,
    json: bool,
) -> String {
    if json {
        let covering: Vec<serde_json::Value> = answer
            .covering
            .iter()
            .map(|vrp| {
                serde_json::json!({
                    "prefix": vrp.prefix,
                    "max_length": vrp.max_length,
                    "asn": vrp.asn,
                })
            })
            .collect();
        let value = serde_json::json!({
            "prefix": prefix,
            "origin_as": origin_as,
            "state": answer.state,
            "covering": covering,
        });
        return serde_json::to_string_pretty(&value).expect("validation serialises") + "\n";
    }
    let mut out = format!("{prefix} from AS{origin_as}: {}\n", answer.state);
    for vrp in &answer.covering {
        let _ = writeln!(out, "  VRP {}-{} AS{}", vrp.prefix, vrp.max_length, vrp.asn);
    }
    out
}

/// An origin AS as written: `65001` or `AS65001`.
pub fn parse_asn(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix("AS")
        .or_else(|| text.strip_prefix("as"))
        .unwrap_or(text);
    digits
        .parse()
        .map_err(|_| format!("origin AS \"{text}\": expected a number like 65001 or AS65001"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_counts_read_plainly() {
        let rpki = api::RpkiResponse {
            servers: vec![
                api::RpkiServer {
                    address: "127.0.0.1:8282".into(),
                    preference: 1,
                    state: "up".into(),
                    source: true,
                    version: 1,
                    session_id: Some(7),
                    serial: Some(42),
                    last_update_seconds: Some(65),
                    refresh: 3600,
                    retry: 600,
                    expire: 7200,
                    last_error: String::new(),
                },
                api::RpkiServer {
                    address: "[2001:db8::1]:323".into(),
                    preference: 2,
                    state: "down".into(),
                    last_error: "cannot connect".into(),
                    ..api::RpkiServer::default()
                },
            ],
            vrps_ipv4: 3,
            vrps_ipv6: 1,
            routes_valid: 5,
            routes_invalid: 2,
            routes_not_found: 9,
        };
        let text = render(&rpki, false);
        assert!(
            text.starts_with("VRPs: 3 IPv4, 1 IPv6\nroutes: 5 valid, 2 invalid, 9 not found\n")
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[3].starts_with("SERVER"), "{text}");
        assert!(
            lines[4].contains("up (in use)") && lines[4].contains("7/42"),
            "{text}"
        );
        assert!(lines[4].contains("00:01:05 ago"), "{text}");
        assert!(lines[5].contains("cannot connect"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render(&rpki, true)).unwrap();
        assert_eq!(json["vrps"]["ipv4"], 3);
        assert_eq!(json["routes"]["not-found"], 9);
        assert_eq!(json["servers"][0]["serial"], 42);
        assert_eq!(json["servers"][1]["serial"], serde_json::Value::Null);
    }

    #[test]
    fn validation_and_origin_as() {
        let answer = api::RpkiValidateResponse {
            state: "invalid".into(),
            covering: vec![api::Vrp {
                prefix: "10.0.0.0/8".into(),
                max_length: 16,
                asn: 65001,
            }],
        };
        assert_eq!(
            render_validation("10.1.2.0/24", 65001, &answer, false),
            "10.1.2.0/24 from AS65001: invalid\n  VRP 10.0.0.0/8-16 AS65001\n"
        );
        assert_eq!(parse_asn("AS65001"), Ok(65001));
        assert_eq!(parse_asn("65001"), Ok(65001));
        assert!(parse_asn("ASX").is_err());
    }
}
