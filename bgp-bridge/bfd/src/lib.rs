//! BFD for wgd, without I/O (RFC 5880 asynchronous mode, single hop as
//! RFC 5881 runs it): no sockets and no clock of its own. The daemon runs
//! a [`Session`] per tunnel neighbor over UDP and tells the BGP speaker when
//! the path through the tunnel stops carrying packets.
//!
//! - `packet`: the control packet (RFC 5880 4.1), its encoding, and its
//!   decoding with the checks of RFC 5880 6.8.6 that need no session;
//! - `session`: one neighbor's state machine (AdminDown, Down, Init, Up),
//!   the negotiated intervals, the detection time, jittered transmission
//!   and the poll sequence. Received packets and time go in through
//!   [`Session::handle`]; packets to send and state changes come out as
//!   [`Action`]s.
//!
//! The UDP side (RFC 5881: destination port 3784, a fixed source port in
//! 49152-65535, TTL or hop limit 255 sent and required on receipt) belongs
//! to the caller; [`CONTROL_PORT`], [`SOURCE_PORTS`] and [`REQUIRED_TTL`]
//! name its numbers.

pub mod packet;
pub mod session;

pub use packet::{ControlPacket, DecodeError, Diagnostic, State};
pub use session::{Action, Input, Session, SessionConfig, Timers, TimersError, Transition};

/// The UDP port single-hop BFD control packets are sent to (RFC 5881 4).
pub const CONTROL_PORT: u16 = 3784;
/// The source ports a single-hop session may use (RFC 5881 4); a session
/// keeps one for its whole life.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// The TTL (IPv4) or hop limit (IPv6) every control packet is sent with,
/// and the only one accepted without authentication (RFC 5881 5).
pub const REQUIRED_TTL: u8 = 255;
