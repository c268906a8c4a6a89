//! Fuzz target for UPDATE decoding: arbitrary bytes (a session-settings
//! octet, then an UPDATE body) through `bgp::packet::fuzz`, which decodes
//! them, must not panic, and checks that what decodes re-encodes into
//! UPDATEs that decode cleanly.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bgp_bridge::bgp::packet::fuzz(data);
});
