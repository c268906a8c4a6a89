//! RTR PDUs (RFC 8210 5, and RFC 6810 for version 0): the common header
//! (version, type, a 16-bit field that is the session id, the error code,
//! or zero, and the length), then each type's fixed fields. A PDU
//! decodes from the front of a byte stream ([`Pdu::decode`] says how many
//! bytes it took, or that more are needed) and encodes to its bytes.
//!
//! Router Key PDUs (type 9, version 1) are decoded only far enough to be
//! skipped: wgd does no BGPsec. A PDU's own version is kept: the client
//! checks it against the session's.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::vrp::Vrp;

/// The protocol versions the client speaks: 1 (RFC 8210), else 0 (RFC 6810).
pub const VERSION_1: u8 = 1;
pub const VERSION_0: u8 = 0;

/// A PDU longer than this is refused (the longest a cache sends in
/// practice is an Error Report quoting a PDU, or a Router Key).
pub const MAX_LENGTH: u32 = 64 * 1024;

const HEADER: usize = 8;

/// PDU type codes (RFC 8210 5).
mod kind {
    pub const SERIAL_NOTIFY: u8 = 0;
    pub const SERIAL_QUERY: u8 = 1;
    pub const RESET_QUERY: u8 = 2;
    pub const CACHE_RESPONSE: u8 = 3;
    pub const IPV4_PREFIX: u8 = 4;
    pub const IPV6_PREFIX: u8 = 6;
    pub const END_OF_DATA: u8 = 7;
    pub const CACHE_RESET: u8 = 8;
    pub const ROUTER_KEY: u8 = 9;
    pub const ERROR_REPORT: u8 = 10;
}

/// Error codes of the Error Report PDU (RFC 8210 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    CorruptData,
    InternalError,
    NoDataAvailable,
    InvalidRequest,
    UnsupportedProtocolVersion,
    UnsupportedPduType,
    WithdrawalOfUnknownRecord,
    DuplicateAnnouncement,
    UnexpectedProtocolVersion,
    Other(u16),
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::CorruptData => 0,
            ErrorCode::InternalError => 1,
            ErrorCode::NoDataAvailable => 2,
            ErrorCode::InvalidRequest => 3,
            ErrorCode::UnsupportedProtocolVersion => 4,
            ErrorCode::UnsupportedPduType => 5,
            ErrorCode::WithdrawalOfUnknownRecord => 6,
            ErrorCode::DuplicateAnnouncement => 7,
            ErrorCode::UnexpectedProtocolVersion => 8,
            ErrorCode::Other(code) => code,
        }
    }

    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ErrorCode::CorruptData,
            1 => ErrorCode::InternalError,
            2 => ErrorCode::NoDataAvailable,
            3 => ErrorCode::InvalidRequest,
            4 => ErrorCode::UnsupportedProtocolVersion,
            5 => ErrorCode::UnsupportedPduType,
            6 => ErrorCode::WithdrawalOfUnknownRecord,
            7 => ErrorCode::DuplicateAnnouncement,
            8 => ErrorCode::UnexpectedProtocolVersion,
            other => ErrorCode::Other(other),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ErrorCode::CorruptData => "corrupt data",
            ErrorCode::InternalError => "internal error",
            ErrorCode::NoDataAvailable => "no data available",
            ErrorCode::InvalidRequest => "invalid request",
            ErrorCode::UnsupportedProtocolVersion => "unsupported protocol version",
            ErrorCode::UnsupportedPduType => "unsupported PDU type",
            ErrorCode::WithdrawalOfUnknownRecord => "withdrawal of unknown record",
            ErrorCode::DuplicateAnnouncement => "duplicate announcement received",
            ErrorCode::UnexpectedProtocolVersion => "unexpected protocol version",
            ErrorCode::Other(code) => return write!(f, "error {code}"),
        };
        f.write_str(text)
    }
}

/// The intervals a version 1 End of Data gives, in seconds (RFC 8210 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
}

impl Default for Intervals {
    /// RFC 8210 6's defaults, which a version 0 session uses.
    fn default() -> Self {
        Self {
            refresh: 3600,
            retry: 600,
            expire: 7200,
        }
    }
}

/// One PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    SerialNotify {
        session: u16,
        serial: u32,
    },
    SerialQuery {
        session: u16,
        serial: u32,
    },
    ResetQuery,
    CacheResponse {
        session: u16,
    },
    /// An IPv4 or IPv6 Prefix PDU: a VRP announced (or withdrawn).
    Prefix {
        announce: bool,
        vrp: Vrp,
    },
    /// `intervals` only in version 1.
    EndOfData {
        session: u16,
        serial: u32,
        intervals: Option<Intervals>,
    },
    CacheReset,
    /// Skipped (no BGPsec).
    RouterKey,
    ErrorReport {
        code: ErrorCode,
        /// The PDU in error, as sent (may be empty).
        pdu: Vec<u8>,
        text: String,
    },
}

/// Why bytes are not a PDU; the error code to report it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("unsupported PDU type {0}")]
    Type(u8),
    #[error("PDU type {kind}: bad length {length}")]
    Length { kind: u8, length: u32 },
    #[error("prefix {prefix_len}, max length {max_len}: not a prefix of the family")]
    Prefix { prefix_len: u8, max_len: u8 },
    #[error("error report: bad inner lengths")]
    ErrorReport,
}

impl DecodeError {
    /// The code to answer with in an Error Report (RFC 8210 12).
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Version(_) => ErrorCode::UnsupportedProtocolVersion,
            DecodeError::Type(_) => ErrorCode::UnsupportedPduType,
            _ => ErrorCode::CorruptData,
        }
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl Pdu {
    /// The PDU at the front of `bytes` and its length, `Ok(None)` when
    /// more bytes are needed. The version is the PDU's own (0 or 1).
    pub fn decode(bytes: &[u8]) -> Result<Option<(u8, Pdu, usize)>, DecodeError> {
        if bytes.len() < HEADER {
            return Ok(None);
        }
        let version = bytes[0];
        let kind = bytes[1];
        let field = u16_at(bytes, 2);
        let length = u32_at(bytes, 4);
        if version > VERSION_1 {
            return Err(DecodeError::Version(version));
        }
        if !(HEADER as u32..=MAX_LENGTH).contains(&length) {
            return Err(DecodeError::Length { kind, length });
        }
        let length_usize = length as usize;
        // The fixed length of each type, checked before waiting for the
        // body (a wrong length is an error at once, not a stall).
        let fixed = match kind {
            kind::SERIAL_NOTIFY | kind::SERIAL_QUERY => Some(12),
            kind::RESET_QUERY | kind::CACHE_RESPONSE | kind::CACHE_RESET => Some(8),
            kind::IPV4_PREFIX => Some(20),
            kind::IPV6_PREFIX => Some(32),
            kind::END_OF_DATA if version == VERSION_0 => Some(12),
            kind::END_OF_DATA => Some(24),
            kind::ROUTER_KEY if version == VERSION_1 => None,
            kind::ERROR_REPORT => None,
            other => return Err(DecodeError::Type(other)),
        };
        if let Some(fixed) = fixed
            && fixed != length
        {
            return Err(DecodeError::Length { kind, length });
        }
        if bytes.len() < length_usize {
            return Ok(None);
        }
        let body = &bytes[HEADER..length_usize];
        let pdu = match kind {
            kind::SERIAL_NOTIFY => Pdu::SerialNotify {
                session: field,
                serial: u32_at(body, 0),
            },
            kind::SERIAL_QUERY => Pdu::SerialQuery {
                session: field,
                serial: u32_at(body, 0),
            },
            kind::RESET_QUERY => Pdu::ResetQuery,
            kind::CACHE_RESPONSE => Pdu::CacheResponse { session: field },
            kind::IPV4_PREFIX | kind::IPV6_PREFIX => {
                let announce = body[0] & 1 == 1;
                let (prefix_len, max_len) = (body[1], body[2]);
                let bad = || DecodeError::Prefix {
                    prefix_len,
                    max_len,
                };
                let prefix = if kind == kind::IPV4_PREFIX {
                    let octets: [u8; 4] = [body[4], body[5], body[6], body[7]];
                    IpNet::V4(
                        Ipv4Net::new(Ipv4Addr::from(octets), prefix_len)
                            .map_err(|_| bad())?
                            .trunc(),
                    )
                } else {
                    let mut octets = [0; 16];
                    octets.copy_from_slice(&body[4..20]);
                    IpNet::V6(
                        Ipv6Net::new(Ipv6Addr::from(octets), prefix_len)
                            .map_err(|_| bad())?
                            .trunc(),
                    )
                };
                if max_len < prefix_len || max_len > prefix.max_prefix_len() {
                    return Err(bad());
                }
                let asn = u32_at(body, body.len() - 4);
                Pdu::Prefix {
                    announce,
                    vrp: Vrp {
                        prefix,
                        max_length: max_len,
                        asn,
                    },
                }
            }
            kind::END_OF_DATA => Pdu::EndOfData {
                session: field,
                serial: u32_at(body, 0),
                intervals: (version == VERSION_1).then(|| Intervals {
                    refresh: u32_at(body, 4),
                    retry: u32_at(body, 8),
                    expire: u32_at(body, 12),
                }),
            },
            kind::CACHE_RESET => Pdu::CacheReset,
            kind::ROUTER_KEY => Pdu::RouterKey,
            _ => {
                // Error Report: the PDU in error and a text, each after
                // its length; both must fit the PDU exactly.
                let bad = || DecodeError::ErrorReport;
                if body.len() < 8 {
                    return Err(bad());
                }
                let pdu_len = u32_at(body, 0) as usize;
                let rest = &body[4..];
                if rest.len() < pdu_len + 4 {
                    return Err(bad());
                }
                let pdu = rest[..pdu_len].to_vec();
                let rest = &rest[pdu_len..];
                let text_len = u32_at(rest, 0) as usize;
                if rest.len() - 4 != text_len {
                    return Err(bad());
                }
                Pdu::ErrorReport {
                    code: ErrorCode::from_code(field),
                    pdu,
                    text: String::from_utf8_lossy(&rest[4..]).into_owned(),
                }
            }
        };
        Ok(Some((version, pdu, length_usize)))
    }

    /// The PDU's bytes in `version`.
    pub fn encode(&self, version: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        let mut header = |kind: u8, field: u16| {
            out.extend_from_slice(&[version, kind]);
            out.extend_from_slice(&field.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        };
        match self {
            Pdu::SerialNotify { session, serial } => {
                header(kind::SERIAL_NOTIFY, *session);
                out.extend_from_slice(&serial.to_be_bytes());
            }
            Pdu::SerialQuery { session, serial } => {
                header(kind::SERIAL_QUERY, *session);
                out.extend_from_slice(&serial.to_be_bytes());
            }
            Pdu::ResetQuery => header(kind::RESET_QUERY, 0),
            Pdu::CacheResponse { session } => header(kind::CACHE_RESPONSE, *session),
            Pdu::Prefix { announce, vrp } => {
                let v4 = matches!(vrp.prefix, IpNet::V4(_));
                header(
                    if v4 {
                        kind::IPV4_PREFIX
                    } else {
                        kind::IPV6_PREFIX
                    },
                    0,
                );
                out.extend_from_slice(&[
                    u8::from(*announce),
                    vrp.prefix.prefix_len(),
                    vrp.max_length,
                    0,
                ]);
                match vrp.prefix {
                    IpNet::V4(net) => out.extend_from_slice(&net.addr().octets()),
                    IpNet::V6(net) => out.extend_from_slice(&net.addr().octets()),
                }
                out.extend_from_slice(&vrp.asn.to_be_bytes());
            }
            Pdu::EndOfData {
                session,
                serial,
                intervals,
            } => {
                header(kind::END_OF_DATA, *session);
                out.extend_from_slice(&serial.to_be_bytes());
                if version == VERSION_1 {
                    let intervals = intervals.unwrap_or_default();
                    for value in [intervals.refresh, intervals.retry, intervals.expire] {
                        out.extend_from_slice(&value.to_be_bytes());
                    }
                }
            }
            Pdu::CacheReset => header(kind::CACHE_RESET, 0),
            // Never sent; an empty key (SKI, ASN) keeps the encoding total.
            Pdu::RouterKey => {
                header(kind::ROUTER_KEY, 0);
                out.extend_from_slice(&[0; 24]);
            }
            Pdu::ErrorReport { code, pdu, text } => {
                header(kind::ERROR_REPORT, code.code());
                out.extend_from_slice(&(pdu.len() as u32).to_be_bytes());
                out.extend_from_slice(pdu);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
        let length = out.len() as u32;
        out[4..8].copy_from_slice(&length.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrp(prefix: &str, max_length: u8, asn: u32) -> Vrp {
        Vrp {
            prefix: prefix.parse().unwrap(),
            max_length,
            asn,
        }
    }

    #[test]
    fn every_pdu_round_trips_in_both_versions() {
        let pdus = [
            Pdu::SerialNotify {
                session: 7,
                serial: 42,
            },
            Pdu::SerialQuery {
                session: 7,
                serial: u32::MAX,
            },
            Pdu::ResetQuery,
            Pdu::CacheResponse { session: 0xbeef },
            Pdu::Prefix {
                announce: true,
                vrp: vrp("192.0.2.0/24", 24, 64496),
            },
            Pdu::Prefix {
                announce: false,
                vrp: vrp("2001:db8::/32", 48, 0),
            },
            Pdu::CacheReset,
            Pdu::ErrorReport {
                code: ErrorCode::NoDataAvailable,
                pdu: Pdu::ResetQuery.encode(1),
                text: "not yet".into(),
            },
        ];
        for version in [VERSION_0, VERSION_1] {
            for pdu in &pdus {
                let bytes = pdu.encode(version);
                assert_eq!(
                    Pdu::decode(&bytes),
                    Ok(Some((version, pdu.clone(), bytes.len()))),
                    "{pdu:?}"
                );
            }
        }
        let v1 = Pdu::EndOfData {
            session: 3,
            serial: 9,
            intervals: Some(Intervals {
                refresh: 60,
                retry: 10,
                expire: 900,
            }),
        };
        assert_eq!(v1.encode(1).len(), 24);
        assert_eq!(Pdu::decode(&v1.encode(1)).unwrap().unwrap().1, v1);
        // Version 0 has no intervals.
        let v0 = v1.encode(0);
        assert_eq!(v0.len(), 12);
        assert_eq!(
            Pdu::decode(&v0).unwrap().unwrap().1,
            Pdu::EndOfData {
                session: 3,
                serial: 9,
                intervals: None
            }
        );
    }

    #[test]
    fn the_wire_format_is_the_rfcs() {
        // RFC 8210 5.6: IPv4 Prefix, announce 10.1.0.0/16-24 AS 65001.
        let bytes = Pdu::Prefix {
            announce: true,
            vrp: vrp("10.1.0.0/16", 24, 65001),
        }
        .encode(1);
        assert_eq!(
            bytes,
            [
                1, 4, 0, 0, 0, 0, 0, 20, 1, 16, 24, 0, 10, 1, 0, 0, 0, 0, 0xfd, 0xe9
            ]
        );
        assert_eq!(Pdu::ResetQuery.encode(1), [1, 2, 0, 0, 0, 0, 0, 8]);
        assert_eq!(
            Pdu::SerialQuery {
                session: 0x0102,
                serial: 5
            }
            .encode(0),
            [0, 1, 1, 2, 0, 0, 0, 12, 0, 0, 0, 5]
        );
    }

    #[test]
    fn partial_input_waits_and_streams_split() {
        let mut stream = Pdu::CacheResponse { session: 1 }.encode(1);
        stream.extend(
            Pdu::Prefix {
                announce: true,
                vrp: vrp("10.0.0.0/8", 8, 1),
            }
            .encode(1),
        );
        for cut in 0..8 {
            assert_eq!(Pdu::decode(&stream[..cut]), Ok(None));
        }
        let (_, first, used) = Pdu::decode(&stream).unwrap().unwrap();
        assert_eq!(first, Pdu::CacheResponse { session: 1 });
        assert_eq!(Pdu::decode(&stream[used..used + 19]), Ok(None));
        assert!(matches!(
            Pdu::decode(&stream[used..]),
            Ok(Some((1, Pdu::Prefix { .. }, 20)))
        ));
    }

    #[test]
    fn bad_pdus_are_refused_with_their_code() {
        let mut bytes = Pdu::ResetQuery.encode(1);
        bytes[0] = 2;
        assert_eq!(
            Pdu::decode(&bytes).unwrap_err().code(),
            ErrorCode::UnsupportedProtocolVersion
        );
        let mut bytes = Pdu::ResetQuery.encode(1);
        bytes[1] = 5;
        assert_eq!(
            Pdu::decode(&bytes).unwrap_err().code(),
            ErrorCode::UnsupportedPduType
        );
        // A Router Key is version 1 only.
        let mut bytes = Pdu::RouterKey.encode(1);
        assert_eq!(Pdu::decode(&bytes).unwrap().unwrap().1, Pdu::RouterKey);
        bytes[0] = 0;
        assert!(Pdu::decode(&bytes).is_err());
        // Fixed lengths are checked from the header alone.
        let mut bytes = Pdu::ResetQuery.encode(1);
        bytes[7] = 12;
        assert_eq!(
            Pdu::decode(&bytes[..8]),
            Err(DecodeError::Length {
                kind: 2,
                length: 12
            })
        );
        // A huge length is refused rather than waited for.
        let mut bytes = Pdu::RouterKey.encode(1);
        bytes[4..8].copy_from_slice(&(MAX_LENGTH + 1).to_be_bytes());
        assert!(Pdu::decode(&bytes).is_err());
        // Prefix longer than the family, max length below the prefix's.
        let mut bytes = Pdu::Prefix {
            announce: true,
            vrp: vrp("10.0.0.0/8", 8, 1),
        }
        .encode(1);
        bytes[9] = 33;
        bytes[10] = 33;
        assert!(matches!(
            Pdu::decode(&bytes),
            Err(DecodeError::Prefix { .. })
        ));
        bytes[9] = 24;
        bytes[10] = 16;
        assert!(matches!(
            Pdu::decode(&bytes),
            Err(DecodeError::Prefix { .. })
        ));
        // An Error Report whose inner lengths overrun it.
        let mut bytes = Pdu::ErrorReport {
            code: ErrorCode::InternalError,
            pdu: vec![],
            text: "x".into(),
        }
        .encode(1);
        bytes[11] = 200;
        assert_eq!(Pdu::decode(&bytes), Err(DecodeError::ErrorReport));
    }

    #[test]
    fn host_bits_of_a_prefix_are_cleared() {
        let mut bytes = Pdu::Prefix {
            announce: true,
            vrp: vrp("10.0.0.0/8", 8, 1),
        }
        .encode(1);
        bytes[13] = 7;
        let (_, pdu, _) = Pdu::decode(&bytes).unwrap().unwrap();
        assert_eq!(
            pdu,
            Pdu::Prefix {
                announce: true,
                vrp: vrp("10.0.0.0/8", 8, 1)
            }
        );
    }
}
