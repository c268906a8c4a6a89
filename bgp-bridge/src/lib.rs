//! bgp-bridge: the route bridge between routing software and the kernel, on
//! top of wgd's tunnels.
//!
//! Data flows one way: route sources (gRPC sessions, later FPM and the
//! built-in BGP speaker) offer `RouteSpec`s as an `Owner` → `policy` checks
//! each one → the `rib` keeps every owner's routes per prefix, picks the
//! best (distance, then metric), resolves its nexthops onto tunnels from the
//! `TunnelView` wgd gives it, and answers with `Changes` → the `fib`
//! programmer writes them to the kernel in batches, and wgd applies the
//! AllowedIPs changes of multi-peer tunnels. Tunnel changes flow back in as a
//! new `TunnelView`: routes through a tunnel that went down leave the kernel
//! (kept in the RIB with the reason) and owners that registered the
//! nexthops are told. `guard` keeps learned routes from capturing a tunnel's
//! own encrypted packets.
//!
//! The RIB, policy and guard are pure; the FIB and the gRPC service are the
//! thin I/O around them.

pub mod bgp;
pub mod engine;
pub mod fib;
pub mod metrics;
pub mod policy;
pub mod rib;
pub mod route;
pub mod service;

pub use route::*;
