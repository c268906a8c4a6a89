use super::*;

/// The fuzz harness, shared by `fuzz/fuzz_targets/update.rs` and the
/// property test: the first octet picks the session (4-octet AS, eBGP,
/// IPv6 negotiated, RFC 8950), the rest is an UPDATE body. Decoding must
/// not panic, and what decodes must encode into UPDATEs that decode again
/// cleanly, to a subset of the same routes (a subset: attributes that fill a
/// message alone are left out by `encode`).
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let Some((&settings, body)) = data.split_first() else {
        return;
    };
    let session = fuzz_session(settings);
    let Decoded::Update { update, problems } = decode(body, &session) else {
        return;
    };
    let withdraw = problems
        .iter()
        .any(|problem| problem.action == Action::TreatAsWithdraw);
    assert!(
        !withdraw || update.announced.is_empty(),
        "withdrawn yet announced"
    );
    for problem in &problems {
        let _ = problem.to_string();
    }
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        for message in encode(family, &update.announced, &update.withdrawn, &session) {
            assert!(
                message.len() <= session.max_message_len(),
                "{} octets",
                message.len()
            );
            match decode(&message[HEADER_LEN..], &session) {
                Decoded::Update {
                    update: again,
                    problems,
                } => {
                    assert!(problems.is_empty(), "re-encoded: {problems:?}");
                    for route in &again.announced {
                        assert!(
                            update.announced.iter().any(|(prefix, attributes)| {
                                *prefix == route.0 && attributes.next_hop == route.1.next_hop
                            }),
                            "re-encoded: {route:?} came from nowhere"
                        );
                    }
                }
                Decoded::Reset(notification) => panic!("re-encoded: {notification:?}"),
            }
        }
    }
}

/// The session `fuzz` decodes under: AS 65000, the neighbor 65001 when
/// `settings & 2` (eBGP), 65000 otherwise; `& 1` 4-octet AS, `& 4` IPv6
/// unicast besides IPv4, `& 8` RFC 8950, `& 16` RFC 8654.
pub(super) fn fuzz_session(settings: u8) -> Negotiated {
    Negotiated {
        local_as: 65000,
        remote_as: if settings & 2 != 0 { 65001 } else { 65000 },
        remote_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        four_octet_as: settings & 1 != 0,
        families: if settings & 4 != 0 {
            vec![Family::Ipv4Unicast, Family::Ipv6Unicast]
        } else {
            vec![Family::Ipv4Unicast]
        },
        route_refresh: true,
        extended_next_hop_ipv4: settings & 8 != 0,
        extended_messages: settings & 16 != 0,
        peer_graceful_restart: None,
    }
}
