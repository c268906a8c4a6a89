//! `wgd bfd`: the daemon's BFD sessions as a table, or as JSON.

use wgd_proto::v1 as api;

/// One line per session (peer, tunnel, state, configured and negotiated
/// intervals, uptime, last diagnostic), or JSON.
pub fn render(sessions: &[api::BfdSession], json: bool) -> String {
    if json {
        let sessions: Vec<serde_json::Value> = sessions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "peer": s.peer,
                    "tunnel": (!s.tunnel.is_empty()).then_some(&s.tunnel),
                    "for": s.clients,
                    "state": s.state,
                    "remote_state": s.remote_state,
                    "local_discriminator": s.local_discriminator,
                    "remote_discriminator": s.remote_discriminator,
                    "transmit_interval_ms": s.transmit_interval_ms,
                    "receive_interval_ms": s.receive_interval_ms,
                    "multiplier": s.multiplier,
                    "negotiated_transmit_ms": s.negotiated_transmit_ms,
                    "detection_time_ms": (s.detection_time_ms > 0).then_some(s.detection_time_ms),
                    "uptime_seconds": (s.state == "up").then_some(s.uptime_seconds),
                    "diagnostic_code": s.diagnostic_code,
                    "diagnostic": s.diagnostic,
                    "state_changes": s.state_changes,
                })
            })
            .collect();
        let value = serde_json::json!({ "sessions": sessions });
        return serde_json::to_string_pretty(&value).expect("sessions serialise") + "\n";
    }
    if sessions.is_empty() {
        return "no BFD sessions (bfd = true on a [[bgp.neighbor]] or a [[bridge.route]], or \
                `wgd route add ... --bfd`, starts one)\n"
            .to_owned();
    }
    let header = [
        "PEER",
        "TUNNEL",
        "FOR",
        "STATE",
        "INTERVALS",
        "NEGOTIATED",
        "UPTIME",
        "LAST DIAGNOSTIC",
    ];
    let rows: Vec<[String; 8]> = sessions
        .iter()
        .map(|s| {
            let detection = match s.detection_time_ms {
                0 => "-".to_owned(),
                ms => format!("{ms}ms"),
            };
            [
                s.peer.clone(),
                if s.tunnel.is_empty() {
                    "-".to_owned()
                } else {
                    s.tunnel.clone()
                },
                s.clients.join(","),
                s.state.clone(),
                format!(
                    "{}/{}ms x{}",
                    s.transmit_interval_ms, s.receive_interval_ms, s.multiplier
                ),
                format!("tx {}ms, detect {detection}", s.negotiated_transmit_ms),
                if s.state == "up" {
                    crate::routes_cli::duration(s.uptime_seconds)
                } else {
                    "-".to_owned()
                },
                format!("{} ({})", s.diagnostic, s.diagnostic_code),
            ]
        })
        .collect();
    crate::routes_cli::table(header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(state: &str) -> api::BfdSession {
        api::BfdSession {
            peer: "10.255.0.1".into(),
            tunnel: "wg-b".into(),
            state: state.into(),
            remote_state: state.into(),
            local_discriminator: 7,
            remote_discriminator: 9,
            transmit_interval_ms: 300,
            receive_interval_ms: 300,
            multiplier: 3,
            negotiated_transmit_ms: 300,
            detection_time_ms: 900,
            uptime_seconds: 3725,
            diagnostic_code: 1,
            diagnostic: "control detection time expired".into(),
            state_changes: 3,
            clients: vec!["bgp".into(), "nexthop".into()],
        }
    }

    #[test]
    fn a_table_with_a_line_per_session() {
        let text = render(&[session("up")], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("PEER"), "{text}");
        for part in [
            "10.255.0.1",
            "wg-b",
            "bgp,nexthop",
            " up ",
            "300/300ms x3",
            "tx 300ms, detect 900ms",
            "01:02:05",
            "control detection time expired (1)",
        ] {
            assert!(lines[1].contains(part), "{part} not in {text}");
        }
        // A session that is down has no uptime.
        assert!(
            render(&[session("down")], false)
                .lines()
                .nth(1)
                .unwrap()
                .contains(" - ")
        );
    }

    #[test]
    fn json_names_every_field() {
        let value: serde_json::Value =
            serde_json::from_str(&render(&[session("down")], true)).unwrap();
        let first = &value["sessions"][0];
        assert_eq!(first["peer"], "10.255.0.1");
        assert_eq!(first["state"], "down");
        assert_eq!(first["detection_time_ms"], 900);
        assert_eq!(first["uptime_seconds"], serde_json::Value::Null);
        assert_eq!(first["diagnostic_code"], 1);
        assert_eq!(first["state_changes"], 3);
        assert_eq!(first["for"], serde_json::json!(["bgp", "nexthop"]));
    }
}
