//! The built-in BGP speaker's I/O: the protocol itself (wire format,
//! sessions, decision, policy) is the `wgd-bgp` crate, re-exported here;
//! this module runs it over TCP and feeds the bridge.
//!
//! - `speaker`: sessions over TCP (tokio), one bridge owner
//!   `bgp:<neighbor>` per neighbor, networks, nexthop tracking;
//! - `socket`: binding, MD5 and TTL security on the sockets;
//! - `bfd`: BFD over the neighbors' tunnels (the `wgd-bfd` sessions over
//!   UDP), which takes a BGP session down when its tunnel stops carrying
//!   packets;
//! - `rpki`: origin validation's RTR client (`wgd-rtr`) over TCP to the
//!   configured caches, whose VRPs the decision validates paths against;
//! - `service`: the gRPC `BgpService` (`wgd bgp summary`, `wgd bgp routes`);
//! - `metrics`: the speaker's Prometheus metrics.

pub use wgd_bgp::{decision, packet, policy, session, types};

pub mod bfd;
pub mod metrics;
pub mod rpki;
pub mod service;
pub mod socket;
pub mod speaker;
