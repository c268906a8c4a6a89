//! MRT files (RFC 6396), TABLE_DUMP_V2: a PEER_INDEX_TABLE naming the
//! peers, then one RIB record per prefix with each peer's entry for it.
//!
//! [`write`] turns a [`Table`](crate::table::Table) into such a file, as
//! one peer's RIB, for `gobgp mrt inject`; [`read`] takes one peer's
//! routes out of a file (ours, or a collector's dump a user has) as a
//! table for any feeder.

mod read;
mod write;

pub use read::read;
pub use write::write;

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;
const RIB_IPV6_UNICAST: u16 = 4;
/// Timestamp, type, subtype, length.
const HEADER: usize = 12;
