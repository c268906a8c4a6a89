//! The BFD control packet (RFC 5880 4.1): 24 octets, then an optional
//! authentication section that this implementation does not use.
//!
//! ```text
//!  0       1       2       3
//!  Vers|Diag  Sta|P F C A D M  Detect Mult  Length
//!  My Discriminator
//!  Your Discriminator
//!  Desired Min TX Interval      (microseconds)
//!  Required Min RX Interval     (microseconds)
//!  Required Min Echo RX Interval (microseconds)
//! ```
//!
//! [`ControlPacket::decode`] applies every check of RFC 5880 6.8.6 that can
//! be made without a session; the rest (authentication in use or not, a
//! Your Discriminator that names no session) is [`crate::Session`]'s.

use std::fmt;

/// The protocol version this implementation speaks (RFC 5880 4.1).
pub const VERSION: u8 = 1;
/// The length of a control packet without authentication.
pub const MIN_LEN: usize = 24;
/// The shortest control packet that can carry an authentication section
/// (its type and length octets, RFC 5880 6.8.6).
pub const MIN_LEN_AUTH: usize = 26;

/// A session state, as sent in the Sta field (RFC 5880 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The name used in status output and logs.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "admin-down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a session last left Up, or why it is not up (the Diag field, RFC
/// 5880 4.1). Codes without a name here (9 to 31) are kept as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Reserved(u8),
}

impl Diagnostic {
    /// The code on the wire (5 bits).
    pub fn code(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(code) => code & 0x1f,
        }
    }

    /// The diagnostic a 5-bit code names.
    pub fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::None => f.write_str("no diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("control detection time expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborSignaledSessionDown => {
                f.write_str("neighbor signaled session down")
            }
            Diagnostic::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdministrativelyDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Reserved(code) => write!(f, "diagnostic {code}"),
        }
    }
}

/// One control packet, its fields as numbers (intervals in microseconds,
/// as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diagnostic: Diagnostic,
    pub state: State,
    /// P: the sender asks for a Final (a poll sequence, RFC 5880 6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// A: an authentication section follows (never set by us).
    pub authentication: bool,
    /// D: the sender wants demand mode (never set by us).
    pub demand: bool,
    pub detect_multiplier: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

/// Why a received control packet is discarded (RFC 5880 6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} octets: shorter than a control packet (24)")]
    Truncated(usize),
    #[error("version {0}: only version 1 is spoken")]
    Version(u8),
    #[error("length field {length}: at least {min} with the A bit {a}")]
    LengthTooSmall {
        length: u8,
        min: u8,
        a: &'static str,
    },
    #[error("length field {length}: more than the {received} octets received")]
    LengthTooLarge { length: u8, received: usize },
    #[error("detect multiplier is zero")]
    ZeroMultiplier,
    #[error("the multipoint bit is set")]
    Multipoint,
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
}

impl ControlPacket {
    /// Reads one control packet from a UDP payload, discarding it (with the
    /// reason) as RFC 5880 6.8.6 says. Octets after the Length field's end
    /// are ignored; an authentication section is left to the caller (the
    /// `authentication` flag says one is there).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        if payload.len() < MIN_LEN {
            return Err(DecodeError::Truncated(payload.len()));
        }
        let version = payload[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = payload[1];
        let authentication = flags & 0x04 != 0;
        let length = payload[3];
        let (min, a) = if authentication {
            (MIN_LEN_AUTH, "set")
        } else {
            (MIN_LEN, "clear")
        };
        if usize::from(length) < min {
            return Err(DecodeError::LengthTooSmall {
                length,
                min: min as u8,
                a,
            });
        }
        if usize::from(length) > payload.len() {
            return Err(DecodeError::LengthTooLarge {
                length,
                received: payload.len(),
            });
        }
        let detect_multiplier = payload[2];
        if detect_multiplier == 0 {
            return Err(DecodeError::ZeroMultiplier);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |at: usize| {
            u32::from_be_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        let my_discriminator = word(4);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let state = State::from_bits(flags >> 6);
        let your_discriminator = word(8);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        Ok(ControlPacket {
            diagnostic: Diagnostic::from_code(payload[0]),
            state,
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            control_plane_independent: flags & 0x08 != 0,
            authentication,
            demand: flags & 0x02 != 0,
            detect_multiplier,
            my_discriminator,
            your_discriminator,
            desired_min_tx: word(12),
            required_min_rx: word(16),
            required_min_echo_rx: word(20),
        })
    }

    /// The 24 octets of this packet (without authentication: the A bit is
    /// sent as given, and the caller that sets it appends the section and
    /// fixes the length).
    pub fn encode(&self) -> [u8; MIN_LEN] {
        let mut out = [0u8; MIN_LEN];
        out[0] = (VERSION << 5) | self.diagnostic.code();
        out[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.authentication) << 2)
            | (u8::from(self.demand) << 1);
        out[2] = self.detect_multiplier;
        out[3] = MIN_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diagnostic: Diagnostic::ControlDetectionTimeExpired,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: true,
            authentication: false,
            demand: false,
            detect_multiplier: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx: 300_000,
            required_min_rx: 250_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn encodes_the_fields_where_rfc_5880_puts_them() {
        let bytes = sample().encode();
        assert_eq!(
            bytes,
            [
                0x21, 0xe8, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                0x00, 0x03, 0xd0, 0x90, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn round_trips_every_state_diagnostic_and_flag() {
        for state in [State::AdminDown, State::Down, State::Init, State::Up] {
            for code in 0..32 {
                for flags in 0..16u8 {
                    let packet = ControlPacket {
                        diagnostic: Diagnostic::from_code(code),
                        state,
                        poll: flags & 1 != 0,
                        final_: flags & 2 != 0,
                        control_plane_independent: flags & 4 != 0,
                        demand: flags & 8 != 0,
                        ..sample()
                    };
                    assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
                }
            }
        }
    }

    #[test]
    fn diagnostic_codes_round_trip() {
        for code in 0..32 {
            assert_eq!(Diagnostic::from_code(code).code(), code);
        }
        assert_eq!(
            Diagnostic::ControlDetectionTimeExpired.to_string(),
            "control detection time expired"
        );
    }

    #[test]
    fn ignores_octets_after_the_length() {
        let mut bytes = sample().encode().to_vec();
        bytes.extend_from_slice(&[0xff; 8]);
        assert_eq!(ControlPacket::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn discards_what_rfc_5880_6_8_6_says_to() {
        let good = sample().encode();
        let with = |change: &dyn Fn(&mut [u8; 24])| {
            let mut bytes = good;
            change(&mut bytes);
            ControlPacket::decode(&bytes)
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(DecodeError::Truncated(23))
        );
        assert_eq!(ControlPacket::decode(&[]), Err(DecodeError::Truncated(0)));
        assert_eq!(with(&|b| b[0] = (2 << 5) | 1), Err(DecodeError::Version(2)));
        assert_eq!(with(&|b| b[0] = 1), Err(DecodeError::Version(0)));
        assert_eq!(
            with(&|b| b[3] = 23),
            Err(DecodeError::LengthTooSmall {
                length: 23,
                min: 24,
                a: "clear"
            })
        );
        assert_eq!(
            with(&|b| b[1] |= 0x04),
            Err(DecodeError::LengthTooSmall {
                length: 24,
                min: 26,
                a: "set"
            })
        );
        assert_eq!(
            with(&|b| b[3] = 25),
            Err(DecodeError::LengthTooLarge {
                length: 25,
                received: 24
            })
        );
        assert_eq!(with(&|b| b[2] = 0), Err(DecodeError::ZeroMultiplier));
        assert_eq!(with(&|b| b[1] |= 0x01), Err(DecodeError::Multipoint));
        assert_eq!(
            with(&|b| b[4..8].fill(0)),
            Err(DecodeError::ZeroMyDiscriminator)
        );
        assert_eq!(
            with(&|b| b[8..12].fill(0)),
            Err(DecodeError::ZeroYourDiscriminator(State::Up))
        );
        assert_eq!(
            with(&|b| {
                b[8..12].fill(0);
                b[1] = (2 << 6) | (b[1] & 0x3f);
            }),
            Err(DecodeError::ZeroYourDiscriminator(State::Init))
        );
        // Your Discriminator zero is how a session starts (Down) or says it
        // was shut (AdminDown).
        for state in [0u8, 1] {
            let decoded = with(&|b| {
                b[8..12].fill(0);
                b[1] = (state << 6) | (b[1] & 0x3f);
            })
            .unwrap();
            assert_eq!(decoded.your_discriminator, 0);
        }
    }

    #[test]
    fn an_authenticated_packet_decodes_with_its_flag() {
        let mut bytes = sample().encode().to_vec();
        bytes[1] |= 0x04;
        bytes[3] = 28;
        bytes.extend_from_slice(&[1, 4, 0, 0]);
        let decoded = ControlPacket::decode(&bytes).unwrap();
        assert!(decoded.authentication);
    }
}
