//! Fuzz target for the RTR PDU decoder and the client that takes what it
//! decodes: arbitrary bytes as a cache's stream must not panic; a PDU that
//! decodes encodes to the same PDU; the client, fed the stream in two
//! pieces, keeps to its actions (a close follows any error report).

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wgd_rtr::{Action, Client, ClientConfig, Input, Pdu};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((version, pdu, used))) = Pdu::decode(rest) {
        if pdu != Pdu::RouterKey {
            assert_eq!(
                Pdu::decode(&pdu.encode(version)),
                Ok(Some((version, pdu.clone(), pdu.encode(version).len())))
            );
        }
        rest = &rest[used..];
    }
    let now = Instant::now();
    let mut client = Client::new(ClientConfig {
        preferences: vec![1, 2],
        expire: None,
    });
    client.handle(now, Input::Start);
    client.handle(now, Input::Connected(0));
    let (head, tail) = data.split_at(data.len() / 2);
    for piece in [head, tail] {
        let actions = client.handle(now, Input::Received(0, piece));
        for action in &actions {
            if let Action::Send(_, bytes) = action {
                assert!(Pdu::decode(bytes).is_ok_and(|pdu| pdu.is_some()));
            }
        }
    }
    client.handle(now + Duration::from_secs(7200), Input::Tick);
});
