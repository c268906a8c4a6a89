//! bgp-bridge: the route bridge between routing software and the kernel, on
//! top of wgd's tunnels.
//!
//! Not built yet; this crate holds its place in the workspace. What it will
//! hold, and which way data will flow through it (see DESIGN.md):
//! route sources (a gRPC session stream modelled on zebra's API, FRR's
//! zebra over FPM, a built-in BGP speaker) → RIB (routes per owner) →
//! policy (validate, limit, guard against routing a tunnel into itself) →
//! best route per prefix → FIB programmer (batched netlink into the main
//! table) and AllowedIPs programmer (multi-peer tunnels). Tunnel events from
//! wgd drive nexthop tracking back the other way.
//!
//! Nothing in it is used by `wgd` today: wgd installs no routes of its own
//! beyond what a tunnel's `routes` mode asks for.
