//! The RPKI to Router protocol for wgd, without I/O (RFC 8210 version 1,
//! RFC 6810 version 0): no sockets and no clock of its own. The speaker
//! runs a [`Client`] over TCP to the configured caches and validates the
//! origins of the routes it receives against the VRPs it gets.
//!
//! - `pdu`: the PDUs, their encoding and their decoding from a byte
//!   stream (each says how much of the stream it took);
//! - `client`: the client over several caches with preferences: queries,
//!   End of Data and its intervals, version fallback, expiry. Events and
//!   time go in through [`Client::handle`]; connects, bytes, closes and
//!   [`VrpUpdate`]s come out as [`Action`]s;
//! - `vrp`: the VRPs of the cache in use ([`VrpTable`], which takes the
//!   updates and says which VRP prefixes changed) and route origin
//!   validation (RFC 6811): [`VrpTable::validate`] gives a [`Validity`].
//!
//! The caller keeps the table (the BGP decision process holds it beside
//! the routes it validates) and the TCP connections.

pub mod client;
pub mod pdu;
pub mod vrp;

pub use client::{Action, Client, ClientConfig, Input, ServerState, ServerStatus};
pub use pdu::{DecodeError, ErrorCode, Intervals, Pdu};
pub use vrp::{Validity, Vrp, VrpTable, VrpUpdate};
