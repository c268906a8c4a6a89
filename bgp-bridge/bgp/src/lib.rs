//! BGP for wgd, without I/O: no tokio, no sockets, no clock of its own.
//! Each part takes bytes and time in and gives bytes and actions out; the
//! speaker in `bgp-bridge` runs them over TCP and feeds the route table.
//!
//! - `types`: what the parts share (families, path attributes, updates,
//!   what a session negotiated, neighbor names);
//! - `packet`: the wire format, one file per message (`message`: the
//!   header and KEEPALIVE, NOTIFICATION, ROUTE-REFRESH; `open`: OPEN and
//!   its capabilities) and for UPDATE its decoding (RFC 7606 error
//!   handling), its attributes and its encoding;
//! - `session`: one neighbor's finite state machine (RFC 4271 8): OPEN
//!   exchange and capabilities, timers, collision detection, graceful
//!   restart; it hands UPDATE bodies up;
//! - `decision`: Adj-RIB-In per neighbor, the decision process of RFC 4271
//!   9.1, and what to export;
//! - `policy`: import and export rules.

pub mod decision;
pub mod packet;
pub mod policy;
pub mod prefix_map;
pub mod session;
pub mod types;
