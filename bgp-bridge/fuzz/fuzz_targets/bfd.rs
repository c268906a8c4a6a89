//! Fuzz target for the BFD control packet decoder and the session that
//! takes what it decodes: arbitrary bytes as one datagram must not panic;
//! a packet that decodes (without authentication) encodes to the same
//! fields; the session, fed the datagram, keeps to its states.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wgd_bfd::{ControlPacket, Input, Session, SessionConfig, Timers};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ControlPacket::decode(data)
        && !packet.authentication
    {
        assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
    }
    let now = Instant::now();
    let config = SessionConfig {
        timers: Timers::default(),
        local_discriminator: 1,
        control_plane_independent: false,
        seed: 0,
    };
    let mut session = Session::new(config, now);
    session.handle(now, Input::Received { payload: data, ttl: 255 });
    session.handle(now + Duration::from_secs(5), Input::Tick);
});
