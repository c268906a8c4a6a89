use super::*;

fn vrp(prefix: &str, max_length: u8, asn: u32) -> Vrp {
    Vrp {
        prefix: prefix.parse().unwrap(),
        max_length,
        asn,
    }
}

fn client(preferences: &[u8]) -> Client {
    Client::new(ClientConfig {
        preferences: preferences.to_vec(),
        expire: None,
    })
}

/// The PDUs of the `Send`s to `server` among `actions`.
fn sent(actions: &[Action], server: usize) -> Vec<Pdu> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(to, bytes) if *to == server => {
                Some(Pdu::decode(bytes).unwrap().unwrap().1)
            }
            _ => None,
        })
        .collect()
}

fn updates(actions: &[Action]) -> Vec<VrpUpdate> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Update(update) => Some(update.clone()),
            _ => None,
        })
        .collect()
}

fn bytes(version: u8, pdus: &[Pdu]) -> Vec<u8> {
    pdus.iter().flat_map(|pdu| pdu.encode(version)).collect()
}

fn intervals(refresh: u32, retry: u32, expire: u32) -> Intervals {
    Intervals {
        refresh,
        retry,
        expire,
    }
}

/// A cache's whole answer to a query.
fn answer(session: u16, serial: u32, announce: &[(Vrp, bool)], given: Intervals) -> Vec<Pdu> {
    let mut pdus = vec![Pdu::CacheResponse { session }];
    pdus.extend(announce.iter().map(|(vrp, announce)| Pdu::Prefix {
        announce: *announce,
        vrp: *vrp,
    }));
    pdus.push(Pdu::EndOfData {
        session,
        serial,
        intervals: Some(given),
    });
    pdus
}

#[test]
fn reset_query_then_data_at_end_of_data_then_serial_queries() {
    let start = Instant::now();
    let mut client = client(&[1]);
    assert_eq!(client.handle(start, Input::Start), vec![Action::Connect(0)]);
    let actions = client.handle(start, Input::Connected(0));
    assert_eq!(sent(&actions, 0), vec![Pdu::ResetQuery]);
    assert_eq!(actions[0], Action::Send(0, Pdu::ResetQuery.encode(1)));

    let a = vrp("10.0.0.0/8", 16, 65001);
    let b = vrp("2001:db8::/32", 48, 65002);
    let stream = bytes(
        1,
        &answer(7, 100, &[(a, true), (b, true)], intervals(60, 10, 600)),
    );
    // Split anywhere: nothing is handed over before End of Data.
    let (head, tail) = stream.split_at(30);
    assert_eq!(client.handle(start, Input::Received(0, head)), vec![]);
    let actions = client.handle(start, Input::Received(0, tail));
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![a, b])]);
    let status = &client.status()[0];
    assert_eq!(status.state, ServerState::Up);
    assert!(status.source);
    assert_eq!((status.session, status.serial), (Some(7), Some(100)));
    assert_eq!(status.intervals, intervals(60, 10, 600));

    // The refresh interval brings a Serial Query.
    assert_eq!(
        client.next_deadline(),
        Some(start + Duration::from_secs(60))
    );
    let later = start + Duration::from_secs(60);
    let actions = client.handle(later, Input::Tick);
    assert_eq!(
        sent(&actions, 0),
        vec![Pdu::SerialQuery {
            session: 7,
            serial: 100
        }]
    );
    // Its answer goes out as a delta, in order.
    let actions = client.handle(
        later,
        Input::Received(
            0,
            &bytes(1, &answer(7, 101, &[(a, false)], intervals(60, 10, 600))),
        ),
    );
    assert_eq!(updates(&actions), vec![VrpUpdate::Delta(vec![(a, false)])]);

    // A Serial Notify brings a Serial Query at once.
    let actions = client.handle(
        later,
        Input::Received(
            0,
            &Pdu::SerialNotify {
                session: 7,
                serial: 102,
            }
            .encode(1),
        ),
    );
    assert_eq!(
        sent(&actions, 0),
        vec![Pdu::SerialQuery {
            session: 7,
            serial: 101
        }]
    );
    // An empty answer changes nothing.
    let actions = client.handle(
        later,
        Input::Received(0, &bytes(1, &answer(7, 102, &[], intervals(60, 10, 600)))),
    );
    assert_eq!(updates(&actions), vec![]);
    assert_eq!(client.status()[0].serial, Some(102));
}

#[test]
fn a_version_0_cache_is_asked_again_in_version_0() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    // RFC 8210 7: the cache refuses version 1 and closes.
    let refusal = Pdu::ErrorReport {
        code: ErrorCode::UnsupportedProtocolVersion,
        pdu: Pdu::ResetQuery.encode(1),
        text: String::new(),
    }
    .encode(0);
    let actions = client.handle(start, Input::Received(0, &refusal));
    assert_eq!(actions, vec![Action::Close(0), Action::Connect(0)]);
    let actions = client.handle(start, Input::Connected(0));
    assert_eq!(actions, vec![Action::Send(0, Pdu::ResetQuery.encode(0))]);
    // Version 0 End of Data: no intervals, the defaults stay.
    let a = vrp("192.0.2.0/24", 24, 64500);
    let mut pdus = answer(3, 1, &[(a, true)], intervals(1, 1, 1));
    pdus.pop();
    pdus.push(Pdu::EndOfData {
        session: 3,
        serial: 1,
        intervals: None,
    });
    let actions = client.handle(start, Input::Received(0, &bytes(0, &pdus)));
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![a])]);
    let status = &client.status()[0];
    assert_eq!(status.version, 0);
    assert_eq!(status.intervals, Intervals::default());
    assert_eq!(
        client.next_deadline(),
        Some(start + Duration::from_secs(3600))
    );
}

#[test]
fn a_cache_answering_in_version_0_is_spoken_to_in_version_0() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    let mut pdus = answer(3, 1, &[], intervals(1, 1, 1));
    pdus.pop();
    pdus.push(Pdu::EndOfData {
        session: 3,
        serial: 1,
        intervals: None,
    });
    let actions = client.handle(start, Input::Received(0, &bytes(0, &pdus)));
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![])]);
    let later = start + Duration::from_secs(3600);
    let actions = client.handle(later, Input::Tick);
    assert_eq!(
        actions,
        vec![Action::Send(
            0,
            Pdu::SerialQuery {
                session: 3,
                serial: 1
            }
            .encode(0)
        )]
    );
    // A version 1 PDU now is an error (RFC 8210 7).
    let actions = client.handle(
        later,
        Input::Received(
            0,
            &Pdu::SerialNotify {
                session: 3,
                serial: 2,
            }
            .encode(1),
        ),
    );
    assert!(matches!(
        sent(&actions, 0)[..],
        [Pdu::ErrorReport {
            code: ErrorCode::UnexpectedProtocolVersion,
            ..
        }]
    ));
    assert_eq!(actions.last(), Some(&Action::Close(0)));
}

#[test]
fn corrupt_data_is_reported_and_the_connection_closed_then_retried_with_backoff() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    // A prefix with no Cache Response before it.
    let actions = client.handle(
        start,
        Input::Received(
            0,
            &Pdu::Prefix {
                announce: true,
                vrp: vrp("10.0.0.0/8", 8, 1),
            }
            .encode(1),
        ),
    );
    assert!(matches!(
        sent(&actions, 0)[..],
        [Pdu::ErrorReport {
            code: ErrorCode::CorruptData,
            ..
        }]
    ));
    assert_eq!(actions.last(), Some(&Action::Close(0)));
    assert_eq!(client.status()[0].state, ServerState::Down);
    // Backoff: 1 s, then 2 s, 4 s...
    assert_eq!(client.next_deadline(), Some(start + Duration::from_secs(1)));
    let at = start + Duration::from_secs(1);
    assert_eq!(client.handle(at, Input::Tick), vec![Action::Connect(0)]);
    client.handle(at, Input::ConnectFailed(0));
    assert_eq!(client.next_deadline(), Some(at + Duration::from_secs(2)));
    // Garbage: an unknown PDU type.
    let at = at + Duration::from_secs(2);
    client.handle(at, Input::Tick);
    client.handle(at, Input::Connected(0));
    let actions = client.handle(at, Input::Received(0, &[1, 5, 0, 0, 0, 0, 0, 8]));
    assert!(matches!(
        sent(&actions, 0)[..],
        [Pdu::ErrorReport {
            code: ErrorCode::UnsupportedPduType,
            ..
        }]
    ));
}

#[test]
fn cache_reset_brings_a_reset_query_and_the_old_data_stays_until_its_end() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    let a = vrp("10.0.0.0/8", 8, 1);
    let b = vrp("10.0.0.0/8", 8, 2);
    client.handle(
        start,
        Input::Received(
            0,
            &bytes(1, &answer(1, 1, &[(a, true)], intervals(60, 10, 600))),
        ),
    );
    let later = start + Duration::from_secs(60);
    client.handle(later, Input::Tick);
    let actions = client.handle(later, Input::Received(0, &Pdu::CacheReset.encode(1)));
    assert_eq!(actions, vec![Action::Send(0, Pdu::ResetQuery.encode(1))]);
    let actions = client.handle(
        later,
        Input::Received(
            0,
            &bytes(1, &answer(2, 5, &[(b, true)], intervals(60, 10, 600))),
        ),
    );
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![b])]);
    assert_eq!(client.status()[0].session, Some(2));
}

#[test]
fn no_data_available_is_asked_again_after_the_retry_interval() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    let actions = client.handle(
        start,
        Input::Received(
            0,
            &Pdu::ErrorReport {
                code: ErrorCode::NoDataAvailable,
                pdu: Vec::new(),
                text: "starting".into(),
            }
            .encode(1),
        ),
    );
    assert_eq!(actions, vec![]);
    assert_eq!(client.status()[0].state, ServerState::Syncing);
    assert_eq!(
        client.next_deadline(),
        Some(start + Duration::from_secs(600))
    );
    let actions = client.handle(start + Duration::from_secs(600), Input::Tick);
    assert_eq!(sent(&actions, 0), vec![Pdu::ResetQuery]);
}

#[test]
fn data_expires_when_every_cache_is_gone_past_the_expire_interval() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    let a = vrp("10.0.0.0/8", 8, 1);
    client.handle(
        start,
        Input::Received(
            0,
            &bytes(1, &answer(1, 1, &[(a, true)], intervals(30, 5, 100))),
        ),
    );
    client.handle(start, Input::Closed(0));
    // Reconnects keep failing; the data stays until the expire time.
    let mut now = start;
    let mut expired = Vec::new();
    while now < start + Duration::from_secs(101) {
        now = client.next_deadline().unwrap();
        for action in client.handle(now, Input::Tick) {
            match action {
                Action::Connect(0) => {
                    client.handle(now, Input::ConnectFailed(0));
                }
                Action::Update(update) => expired.push((now, update)),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(
        expired,
        vec![(start + Duration::from_secs(100), VrpUpdate::Reset(vec![]))]
    );
    assert!(!client.status()[0].source);
    // Back: a Reset Query, not a Serial Query (the data is gone).
    client.handle(now, Input::Tick);
    let actions = client.handle(now, Input::Connected(0));
    assert_eq!(sent(&actions, 0), vec![Pdu::ResetQuery]);
}

#[test]
fn the_expire_interval_can_be_set_locally() {
    let start = Instant::now();
    let mut client = Client::new(ClientConfig {
        preferences: vec![1],
        expire: Some(Duration::from_secs(5)),
    });
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    client.handle(
        start,
        Input::Received(0, &bytes(1, &answer(1, 1, &[], intervals(30, 5, 7200)))),
    );
    client.handle(start, Input::Closed(0));
    let actions = client.handle(start + Duration::from_secs(5), Input::Tick);
    assert!(updates(&actions).contains(&VrpUpdate::Reset(vec![])));
}

#[test]
fn a_reconnected_source_is_asked_for_what_changed() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    client.handle(
        start,
        Input::Received(0, &bytes(1, &answer(4, 9, &[], intervals(30, 5, 100)))),
    );
    client.handle(start, Input::Closed(0));
    let at = start + Duration::from_secs(1);
    assert_eq!(client.handle(at, Input::Tick), vec![Action::Connect(0)]);
    let actions = client.handle(at, Input::Connected(0));
    assert_eq!(
        sent(&actions, 0),
        vec![Pdu::SerialQuery {
            session: 4,
            serial: 9
        }]
    );
    // The cache restarted with another session: a Reset Query instead.
    let actions = client.handle(
        at,
        Input::Received(0, &Pdu::CacheResponse { session: 5 }.encode(1)),
    );
    assert_eq!(sent(&actions, 0), vec![Pdu::ResetQuery]);
}

#[test]
fn the_most_preferred_cache_that_is_up_serves_and_lesser_ones_stand_by() {
    let start = Instant::now();
    // Cache 0 is the less preferred (5), cache 1 the preferred (1).
    let mut client = client(&[5, 1]);
    let actions = client.handle(start, Input::Start);
    assert_eq!(actions, vec![Action::Connect(0), Action::Connect(1)]);
    client.handle(start, Input::ConnectFailed(1));
    client.handle(start, Input::Connected(0));
    let a = vrp("10.0.0.0/8", 8, 1);
    let b = vrp("10.0.0.0/8", 8, 2);
    let actions = client.handle(
        start,
        Input::Received(
            0,
            &bytes(1, &answer(1, 1, &[(a, true)], intervals(30, 5, 100))),
        ),
    );
    // The lesser cache serves meanwhile.
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![a])]);
    assert!(client.status()[0].source);
    // The preferred one is retried, and when its data is complete it
    // replaces the lesser one's, which is closed.
    let at = start + Duration::from_secs(1);
    assert_eq!(client.handle(at, Input::Tick), vec![Action::Connect(1)]);
    let actions = client.handle(at, Input::Connected(1));
    assert_eq!(sent(&actions, 1), vec![Pdu::ResetQuery]);
    let actions = client.handle(
        at,
        Input::Received(
            1,
            &bytes(1, &answer(2, 1, &[(b, true)], intervals(30, 5, 100))),
        ),
    );
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![b])]);
    assert!(actions.contains(&Action::Close(0)));
    let status = client.status();
    assert!(status[1].source && !status[0].source);
    assert_eq!(status[0].state, ServerState::Down);
    // While it serves, the lesser one is not reconnected.
    assert_eq!(client.next_deadline(), Some(at + Duration::from_secs(30)));
    // The preferred one goes: the lesser one is connected again at once,
    // and its set replaces the preferred one's.
    let actions = client.handle(at, Input::Closed(1));
    assert_eq!(actions, vec![Action::Connect(0)]);
    let actions = client.handle(at, Input::Connected(0));
    assert_eq!(sent(&actions, 0), vec![Pdu::ResetQuery]);
    let actions = client.handle(
        at,
        Input::Received(
            0,
            &bytes(1, &answer(1, 2, &[(a, true)], intervals(30, 5, 100))),
        ),
    );
    assert_eq!(updates(&actions), vec![VrpUpdate::Reset(vec![a])]);
    assert!(client.status()[0].source);
}

#[test]
fn a_query_without_answer_closes_the_connection_after_the_retry_interval() {
    let start = Instant::now();
    let mut client = client(&[1]);
    client.handle(start, Input::Start);
    client.handle(start, Input::Connected(0));
    assert_eq!(
        client.next_deadline(),
        Some(start + Duration::from_secs(600))
    );
    let actions = client.handle(start + Duration::from_secs(600), Input::Tick);
    assert_eq!(actions, vec![Action::Close(0)]);
    assert_eq!(client.status()[0].last_error, "no answer to a query");
}
