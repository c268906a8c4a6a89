//! Fuzz target for the FPM reader: arbitrary bytes as a stream from zebra
//! through `fpm::fuzz`, which splits them into frames, decodes their
//! netlink messages and applies them to a feed, and must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bgp_bridge::fpm::fuzz(data);
});
