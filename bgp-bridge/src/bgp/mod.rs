//! The built-in BGP speaker (in progress). Cores without I/O, each taking
//! bytes and time in and giving bytes and actions out:
//!
//! - `types`: what the parts share (families, path attributes, updates,
//!   what a session negotiated);
//! - `session`: one neighbor's finite state machine (RFC 4271 8): OPEN
//!   exchange and capabilities, timers, collision detection, graceful
//!   restart; it hands UPDATE bodies up;
//! - `update`: UPDATE decoding with the error handling of RFC 7606, and
//!   encoding for export;
//! - `decision`: Adj-RIB-In per neighbor, the decision process of RFC 4271
//!   9.1, policy, and what to export.
//!
//! A thin tokio layer (`speaker`) will run sessions over TCP and feed the
//! bridge as owner `bgp:<neighbor>`.

pub mod decision;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod session;
pub mod socket;
pub mod speaker;
pub mod types;
pub mod update;
