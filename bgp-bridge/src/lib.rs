//! bgp-bridge: the route bridge between routing software and the kernel, on
//! top of wgd's tunnels.
//!
//! Data flows one way: route sources (gRPC sessions in `service`, FRR's
//! zebra over FPM in `fpm`, the built-in BGP speaker in `bgp`) offer
//! `RouteSpec`s as an `Owner` to the `engine` → `policy` checks each one →
//! the `rib` keeps every owner's routes per prefix, picks the best
//! (distance, then metric), resolves its nexthops onto tunnels from the
//! `TunnelView` wgd gives it, and answers with `Changes` → the engine has
//! the `fib` programmer write them to the kernel in batches (endpoint pins
//! first, so a learned route never captures a tunnel's own encrypted
//! packets), and wgd applies the AllowedIPs changes of multi-peer tunnels.
//! Tunnel changes flow back in as a new `TunnelView`: routes through a
//! tunnel that went down leave the kernel (kept in the RIB with the reason)
//! and owners that registered the nexthops are told.
//!
//! The RIB, policy, BGP cores and FPM decoder are pure; the FIB, the gRPC
//! services, the FPM listener and the BGP speaker's tokio layer are the thin
//! I/O around them.

pub mod bgp;
pub mod engine;
pub mod fib;
pub mod fpm;
pub mod metrics;
pub mod policy;
pub mod rib;
pub mod route;
pub mod service;

pub use route::*;
