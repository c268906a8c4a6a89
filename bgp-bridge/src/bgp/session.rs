//! One BGP neighbor's session (RFC 4271 8): the finite state machine, the
//! OPEN exchange and its capabilities, the keepalive and hold timers,
//! connect retry with backoff, connection collisions (RFC 4271 6.8) and
//! what graceful restart (RFC 4724) asks of the receiving side. No sockets
//! and no clock: time and bytes come in as arguments, actions go out as
//! values.
//!
//! Data flow, all through [`Session::handle`]`(now, input) -> Vec<Action>`:
//!
//! - in from the operator: [`Input::Start`], [`Input::Stop`];
//! - in from the TCP layer: [`Input::Connected`] (our connect succeeded),
//!   [`Input::ConnectFailed`], [`Input::Accepted`] (an incoming connection
//!   from this neighbor), [`Input::Received`] (bytes, in any chunking),
//!   [`Input::Closed`];
//! - in from the clock: [`Input::Tick`], due at [`Session::next_deadline`];
//! - in from the layers above: [`Input::SendUpdate`] (a whole UPDATE made
//!   by `update`), [`Input::RequestRefresh`], [`Input::Reset`] (a
//!   NOTIFICATION `update` asks for);
//! - out to the TCP layer: [`Action::Connect`], [`Action::CancelConnect`],
//!   [`Action::Send`] (whole messages), [`Action::Disconnect`];
//! - out to the layers above: [`Action::Established`] with what was
//!   [`Negotiated`], [`Action::Update`] (an UPDATE body for `update` to
//!   decode), [`Action::RouteRefresh`], [`Action::Down`] (why, and whether
//!   to keep the neighbor's routes as stale for a while).
//!
//! One `Session` per neighbor holds every TCP connection to it, each named
//! by the [`ConnectionId`] the TCP layer gave it: usually one, two while a
//! collision lasts (our connection and the neighbor's cross), briefly a new
//! one beside an established one when the neighbor restarts. Collisions are
//! settled here, when an OPEN brings the neighbor's BGP identifier (see
//! [`resolve_collision`]).
//!
//! On the wire: the message header (marker, length, type; RFC 4271 6.1) is
//! checked here, so that a bad one draws the right NOTIFICATION and UPDATE
//! bodies go up untouched. Messages are 4096 octets at most; once both
//! OPENs announced extended messages (RFC 8654), UPDATEs and
//! NOTIFICATIONs may be 65535 each way (OPEN and KEEPALIVE never). OPEN
//! and ROUTE-REFRESH are encoded and decoded with `netgauze-bgp-pkt`;
//! KEEPALIVE and NOTIFICATION are a header and two octets, framed here,
//! and a received NOTIFICATION is kept as numbers so that a code this
//! speaker does not know is still reported as sent.
//!
//! Choices where the RFCs leave room:
//! - a started session never sits in Idle: after a failure it waits in
//!   Active for its next connect (and accepts the neighbor's connections
//!   meanwhile); the wait doubles from `connect_retry` after each failure up
//!   to a minute, and starts again from `connect_retry` once a session was
//!   established;
//! - a collision is settled as soon as either connection brings an OPEN,
//!   the other connection may still be in OpenSent (the OPEN tells us the
//!   identifier, which RFC 4271 6.8 allows us to use);
//! - keepalives go out every hold/3 with no jitter, so that tests can
//!   predict them;
//! - routes are kept for the neighbor's restart time (RFC 4724) only when
//!   we announced graceful restart ourselves: a session configured without
//!   it neither asks nor helps.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, ExtendedNextHopEncoding, ExtendedNextHopEncodingCapability,
    FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::iana::RouteRefreshSubcode;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::{AddressFamily, AddressType};
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::{ParseFrom, ParseFromWithOneInput};
use tracing::{debug, info, warn};

use super::types::{
    AS_TRANS, Asn, Family, GracefulRestart, MAX_MESSAGE_LEN, Negotiated, Notification,
};

/// Octets of the message header: marker, length, type.
const HEADER_LEN: usize = 19;
/// Hold time while waiting for the neighbor's OPEN (RFC 4271 8.2.2
/// suggests 4 minutes).
const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);
/// The longest wait between two connection attempts (unless
/// `connect_retry` itself is longer).
const CONNECT_RETRY_CAP: Duration = Duration::from_secs(60);
/// The restart time is a 12-bit field (RFC 4724 3).
const MAX_RESTART_TIME: u16 = 0x0fff;
/// Optional parameter type of capabilities (RFC 5492).
const CAPABILITIES_PARAMETER: u8 = 2;
/// Capability code of MP-BGP (RFC 4760 8).
const MULTIPROTOCOL_CAPABILITY: u8 = 1;
/// Capability code of extended messages (RFC 8654 3).
const EXTENDED_MESSAGE_CAPABILITY: u8 = 6;

/// Message types (RFC 4271 4.1, RFC 2918 3).
mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// NOTIFICATION error codes and the subcodes this module sends (RFC 4271
/// 4.5, RFC 4486, RFC 6608).
mod error {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
}

/// What one neighbor's session is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: Asn,
    pub remote_as: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Seconds we propose; 0 (no keepalives, no hold timer) or at least 3.
    pub hold_time: u16,
    /// The first wait before connecting again; it doubles after each
    /// failure, up to a minute.
    pub connect_retry: Duration,
    /// Never connect; wait for the neighbor to.
    pub passive: bool,
    /// Families to announce (MP-BGP, RFC 4760).
    pub families: Vec<Family>,
    /// Announce route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Announce IPv4 unicast with IPv6 nexthops (RFC 8950).
    pub extended_next_hop_ipv4: bool,
    /// Announce extended messages (RFC 8654): once the neighbor announces
    /// them too, UPDATEs and NOTIFICATIONs may be up to 65535 octets.
    pub extended_messages: bool,
    /// Announce graceful restart (RFC 4724), and keep the routes of a
    /// neighbor that announced it while it restarts.
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl SessionConfig {
    /// The usual defaults: hold time 90 s, first retry after 1 s, active,
    /// IPv4 and IPv6 unicast, route refresh, no RFC 8950, no RFC 8654, no
    /// graceful restart.
    pub fn new(local_as: Asn, remote_as: Asn, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            remote_as,
            router_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(1),
            passive: false,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            route_refresh: true,
            extended_next_hop_ipv4: false,
            extended_messages: false,
            graceful_restart: None,
        }
    }
}

/// Our side of graceful restart (RFC 4724 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the neighbor should keep our routes while we restart (at
    /// most 4095).
    pub restart_time: u16,
    /// Set the Restart State (R) bit: we have just restarted.
    pub restarting: bool,
    /// Set the Forwarding State (F) bit of every family: our routes stayed
    /// in the kernel across the restart.
    pub forwarding_preserved: bool,
}

/// A configuration [`Session::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: must be 0 or at least 3 (RFC 4271 4.2)")]
    HoldTime(u16),
    #[error("router id 0.0.0.0 is not a valid BGP identifier")]
    RouterId,
    #[error("{0} AS 0 is reserved (RFC 7607)")]
    ZeroAs(&'static str),
    #[error("connect retry must be longer than zero")]
    ConnectRetry,
    #[error("no address family configured")]
    NoFamily,
    #[error("restart time {0} s: at most 4095 (RFC 4724 3)")]
    RestartTime(u16),
}

/// Names one TCP connection. The TCP layer picks it, unique among this
/// session's connections, and the session uses it in [`Action::Send`] and
/// [`Action::Disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the neighbor.
    Outgoing,
    /// The neighbor connected to us.
    Incoming,
}

/// What happens to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Begin: connect (unless passive) and accept the neighbor's
    /// connections.
    Start,
    /// End: NOTIFICATION Cease / Administrative Shutdown on every
    /// connection, then Idle.
    Stop,
    /// Our connection (asked by [`Action::Connect`]) is up.
    Connected(ConnectionId),
    /// Our connection attempt failed.
    ConnectFailed,
    /// The way to the neighbor just opened (its tunnel came up, or was
    /// made anew): a session waiting to connect again connects now rather
    /// than after its backoff.
    RetryNow,
    /// The neighbor connected to us.
    Accepted(ConnectionId),
    /// Bytes read from a connection, any chunking.
    Received(ConnectionId, &'a [u8]),
    /// The connection was closed or reset by the neighbor, or failed.
    Closed(ConnectionId),
    /// Time passed: give it at or after [`Session::next_deadline`].
    Tick,
    /// A whole UPDATE message (header included, as `update::encode` makes
    /// them) to send if the session is established; dropped otherwise.
    SendUpdate(Vec<u8>),
    /// Ask the neighbor to send its routes of this family again.
    RequestRefresh(Family),
    /// Send this NOTIFICATION on the established connection and close it
    /// (`update` found an error RFC 7606 resolves by a reset).
    Reset(Notification),
}

/// What the session asks of the layers around it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the neighbor and answer with
    /// [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect,
    /// Abandon the connection attempt in progress, without answering.
    CancelConnect,
    /// Write these bytes (whole messages) on the connection.
    Send(ConnectionId, Vec<u8>),
    /// Close the connection once what was sent on it is written.
    Disconnect(ConnectionId),
    /// The session is established (one at a time): exchange routes.
    Established(Negotiated),
    /// An UPDATE's body (the message without its 19-octet header) for
    /// `update::decode`.
    Update(Vec<u8>),
    /// The neighbor asks us to send our routes of this family again.
    RouteRefresh(Family),
    /// The session ended or the attempt failed.
    Down(Down),
}

/// Why and how a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub reason: DownReason,
    /// The session had been established: its routes go (or, with
    /// `retain`, go stale).
    pub was_established: bool,
    /// Graceful restart (RFC 4724 4.2): keep the neighbor's routes of these
    /// families, marked stale, for this long, or until the session is back
    /// and the neighbor says End-of-RIB.
    pub retain: Option<Retention>,
}

/// Routes to keep as stale while a neighbor restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub families: Vec<Family>,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We found an error (a hold timer expiry, a bad message, a stop or a
    /// reset asked from above) and sent this NOTIFICATION.
    Sent(Notification),
    /// The neighbor sent this NOTIFICATION.
    Received(Notification),
    /// The connection closed without a NOTIFICATION.
    Closed,
    /// The neighbor connected again while the session was still
    /// established: it restarted (RFC 4724 4.2).
    PeerRestarted,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Sent(notification) => {
                write!(f, "sent NOTIFICATION {}", describe(notification))
            }
            DownReason::Received(notification) => {
                write!(f, "received NOTIFICATION {}", describe(notification))
            }
            DownReason::Closed => f.write_str("connection closed"),
            DownReason::PeerRestarted => f.write_str("neighbor reconnected (restarted)"),
        }
    }
}

/// The states of RFC 4271 8.2.2; for a session with two connections, the
/// furthest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// Which of two connections to the same neighbor survives (RFC 4271 6.8):
/// the one opened by the speaker with the higher BGP identifier; with equal
/// identifiers (allowed between ASes), the one opened by the speaker with
/// the higher AS number (RFC 6286 2.3).
pub fn resolve_collision(
    local_id: Ipv4Addr,
    local_as: Asn,
    remote_id: Ipv4Addr,
    remote_as: Asn,
) -> Direction {
    if (u32::from(local_id), local_as) > (u32::from(remote_id), remote_as) {
        Direction::Outgoing
    } else {
        Direction::Incoming
    }
}

/// A NOTIFICATION in words: `Cease / Administrative Shutdown (6/2):
/// "maintenance"`.
pub fn describe(notification: &Notification) -> String {
    let Notification {
        code,
        subcode,
        data,
    } = notification;
    let mut text = match subcode_name(*code, *subcode) {
        Some(subcode_name) => format!("{} / {subcode_name}", code_name(*code)),
        None if *subcode == 0 => code_name(*code).to_owned(),
        None => format!("{} / subcode {subcode}", code_name(*code)),
    };
    text.push_str(&format!(" ({code}/{subcode})"));
    if let Some(message) = shutdown_message(notification) {
        text.push_str(&format!(": {message:?}"));
    } else if !data.is_empty() {
        text.push_str(", data ");
        for octet in data.iter().take(32) {
            text.push_str(&format!("{octet:02x}"));
        }
        if data.len() > 32 {
            text.push('…');
        }
    }
    text
}

fn code_name(code: u8) -> &'static str {
    match code {
        1 => "Message Header Error",
        2 => "OPEN Message Error",
        3 => "UPDATE Message Error",
        4 => "Hold Timer Expired",
        5 => "Finite State Machine Error",
        6 => "Cease",
        7 => "ROUTE-REFRESH Message Error",
        _ => "unknown error code",
    }
}

fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (1, 1) => "Connection Not Synchronized",
        (1, 2) => "Bad Message Length",
        (1, 3) => "Bad Message Type",
        (2, 1) => "Unsupported Version Number",
        (2, 2) => "Bad Peer AS",
        (2, 3) => "Bad BGP Identifier",
        (2, 4) => "Unsupported Optional Parameter",
        (2, 6) => "Unacceptable Hold Time",
        (2, 7) => "Unsupported Capability",
        (2, 11) => "Role Mismatch",
        (3, 1) => "Malformed Attribute List",
        (3, 2) => "Unrecognized Well-known Attribute",
        (3, 3) => "Missing Well-known Attribute",
        (3, 4) => "Attribute Flags Error",
        (3, 5) => "Attribute Length Error",
        (3, 6) => "Invalid ORIGIN Attribute",
        (3, 8) => "Invalid NEXT_HOP Attribute",
        (3, 9) => "Optional Attribute Error",
        (3, 10) => "Invalid Network Field",
        (3, 11) => "Malformed AS_PATH",
        (5, 1) => "Receive Unexpected Message in OpenSent State",
        (5, 2) => "Receive Unexpected Message in OpenConfirm State",
        (5, 3) => "Receive Unexpected Message in Established State",
        (6, 1) => "Maximum Number of Prefixes Reached",
        (6, 2) => "Administrative Shutdown",
        (6, 3) => "Peer De-configured",
        (6, 4) => "Administrative Reset",
        (6, 5) => "Connection Rejected",
        (6, 6) => "Other Configuration Change",
        (6, 7) => "Connection Collision Resolution",
        (6, 8) => "Out of Resources",
        (6, 9) => "Hard Reset",
        (6, 10) => "BFD Down",
        (7, 1) => "Invalid Message Length",
        _ => return None,
    })
}

/// The operator's message of a Cease / Administrative Shutdown or Reset
/// (RFC 9003): a length octet, then UTF-8.
fn shutdown_message(notification: &Notification) -> Option<&str> {
    let Notification {
        code: error::CEASE,
        subcode: error::ADMINISTRATIVE_SHUTDOWN | error::ADMINISTRATIVE_RESET,
        data,
    } = notification
    else {
        return None;
    };
    let (length, text) = data.split_first()?;
    let text = text.get(..usize::from(*length)).filter(|_| *length > 0)?;
    std::str::from_utf8(text).ok()
}

/// One neighbor's session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Our OPEN, the same on every connection.
    open: Vec<u8>,
    started: bool,
    /// An [`Action::Connect`] is outstanding.
    connecting: bool,
    /// When to connect next, or, while connecting, when to give up on the
    /// attempt and start another.
    retry_at: Option<Instant>,
    /// Failed attempts since the last established session: the backoff
    /// exponent.
    failures: u32,
    connections: Vec<Connection>,
    /// Whole messages received, on every connection (for statistics).
    messages_received: u64,
}

#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    direction: Direction,
    phase: Phase,
    /// Received bytes not yet a whole message.
    buffer: Vec<u8>,
    /// The longest UPDATE or NOTIFICATION taken and sent: 4096 octets
    /// until the OPENs agreed on extended messages (RFC 8654 4).
    max_message_len: usize,
    /// `None`: no hold timer (negotiated 0).
    hold: Option<Duration>,
    hold_deadline: Option<Instant>,
    keepalive: Option<Duration>,
    keepalive_deadline: Option<Instant>,
}

#[derive(Debug)]
enum Phase {
    /// Our OPEN is sent; waiting for the neighbor's.
    OpenSent,
    /// Both OPENs are through; waiting for the neighbor's KEEPALIVE.
    OpenConfirm(Box<Agreed>),
    Established(Box<Agreed>),
}

/// What the neighbor's OPEN settled.
#[derive(Debug)]
struct Agreed {
    negotiated: Negotiated,
    /// What to keep if this session fails (graceful restart).
    retain: Option<Retention>,
}

/// How a connection ends.
enum End {
    Sent(Notification),
    Received(Notification),
    Closed,
    /// The loser of a collision: Cease / Connection Collision Resolution,
    /// and no [`Action::Down`], since the other connection carries on.
    Collision,
    PeerRestarted,
}

impl Session {
    pub fn new(mut config: SessionConfig) -> Result<Self, ConfigError> {
        if config.hold_time == 1 || config.hold_time == 2 {
            return Err(ConfigError::HoldTime(config.hold_time));
        }
        if config.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if config.local_as == 0 {
            return Err(ConfigError::ZeroAs("local"));
        }
        if config.remote_as == 0 {
            return Err(ConfigError::ZeroAs("remote"));
        }
        if config.connect_retry.is_zero() {
            return Err(ConfigError::ConnectRetry);
        }
        config.families.sort();
        config.families.dedup();
        if config.families.is_empty() {
            return Err(ConfigError::NoFamily);
        }
        if let Some(graceful_restart) = &config.graceful_restart
            && graceful_restart.restart_time > MAX_RESTART_TIME
        {
            return Err(ConfigError::RestartTime(graceful_restart.restart_time));
        }
        Ok(Self {
            open: open_message(&config),
            config,
            started: false,
            connecting: false,
            retry_at: None,
            failures: 0,
            connections: Vec::new(),
            messages_received: 0,
        })
    }

    /// Whole messages received so far, on every connection.
    pub fn messages_received(&self) -> u64 {
        self.messages_received
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        if !self.started {
            return State::Idle;
        }
        let furthest = self
            .connections
            .iter()
            .map(|connection| match connection.phase {
                Phase::OpenSent => State::OpenSent,
                Phase::OpenConfirm(_) => State::OpenConfirm,
                Phase::Established(_) => State::Established,
            });
        furthest.max().unwrap_or(if self.connecting {
            State::Connect
        } else {
            State::Active
        })
    }

    /// What the established session negotiated.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.connections
            .iter()
            .find_map(|connection| match &connection.phase {
                Phase::Established(agreed) => Some(&agreed.negotiated),
                _ => None,
            })
    }

    /// When the session next needs an [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.connections
            .iter()
            .flat_map(|connection| [connection.hold_deadline, connection.keepalive_deadline])
            .chain([self.retry_at])
            .flatten()
            .min()
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Start => self.start(now, &mut actions),
            Input::Stop => self.stop(now, &mut actions),
            Input::Connected(id) => self.connected(now, id, &mut actions),
            Input::ConnectFailed => self.connect_failed(now),
            Input::RetryNow => self.retry_now(now, &mut actions),
            Input::Accepted(id) => self.accepted(now, id, &mut actions),
            Input::Received(id, bytes) => self.received(now, id, bytes, &mut actions),
            Input::Closed(id) => {
                if let Some(index) = self.index_of(id) {
                    self.close(now, index, End::Closed, &mut actions);
                }
            }
            Input::Tick => self.tick(now, &mut actions),
            Input::SendUpdate(message) => self.send_update(now, message, &mut actions),
            Input::RequestRefresh(family) => self.request_refresh(now, family, &mut actions),
            Input::Reset(notification) => match self.established_index() {
                Some(index) => self.close(now, index, End::Sent(notification), &mut actions),
                None => debug!(notification = %describe(&notification), "reset: no session"),
            },
        }
        actions
    }

    fn start(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        self.failures = 0;
        if !self.config.passive {
            self.connect(now, actions);
        }
    }

    fn stop(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        self.started = false;
        self.retry_at = None;
        if self.connecting {
            self.connecting = false;
            actions.push(Action::CancelConnect);
        }
        // The established connection last, so that its Down is the one
        // reported.
        self.connections
            .sort_by_key(|connection| matches!(connection.phase, Phase::Established(_)));
        let shutdown = Notification {
            code: error::CEASE,
            subcode: error::ADMINISTRATIVE_SHUTDOWN,
            data: Vec::new(),
        };
        while !self.connections.is_empty() {
            self.close(now, 0, End::Sent(shutdown.clone()), actions);
        }
    }

    fn connect(&mut self, now: Instant, actions: &mut Vec<Action>) {
        actions.push(Action::Connect);
        self.connecting = true;
        self.retry_at = Some(now + self.backoff());
    }

    /// `connect_retry`, doubled for each failure, at most a minute.
    fn backoff(&self) -> Duration {
        let cap = CONNECT_RETRY_CAP.max(self.config.connect_retry);
        let factor = 1u32.checked_shl(self.failures).unwrap_or(u32::MAX);
        self.config
            .connect_retry
            .checked_mul(factor)
            .map_or(cap, |wait| wait.min(cap))
    }

    /// After a failure: wait, then connect, unless something else is going
    /// on (a connection in progress will schedule this when it ends).
    fn schedule_retry(&mut self, now: Instant) {
        if self.started
            && !self.config.passive
            && !self.connecting
            && self.retry_at.is_none()
            && self.connections.is_empty()
        {
            self.retry_at = Some(now + self.backoff());
            self.failures = self.failures.saturating_add(1);
        }
    }

    fn connected(&mut self, now: Instant, id: ConnectionId, actions: &mut Vec<Action>) {
        if !self.connecting {
            // Cancelled meanwhile.
            actions.push(Action::Disconnect(id));
            return;
        }
        self.connecting = false;
        self.retry_at = None;
        self.open_connection(now, id, Direction::Outgoing, actions);
    }

    fn connect_failed(&mut self, now: Instant) {
        if !self.connecting {
            return;
        }
        self.connecting = false;
        self.retry_at = None;
        debug!(failures = self.failures, "connect failed");
        self.schedule_retry(now);
    }

    fn retry_now(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.started
            && !self.config.passive
            && !self.connecting
            && self.connections.is_empty()
            && self.retry_at.is_some()
        {
            self.failures = 0;
            self.connect(now, actions);
        }
    }

    fn accepted(&mut self, now: Instant, id: ConnectionId, actions: &mut Vec<Action>) {
        if !self.started {
            actions.push(Action::Disconnect(id));
            return;
        }
        // A neighbor opens a second connection only after giving up on its
        // first: that one is stale. (Opened first, so that closing the
        // stale one does not look like the last attempt failing.)
        let stale = self
            .connections
            .iter()
            .find(|connection| {
                connection.direction == Direction::Incoming
                    && !matches!(connection.phase, Phase::Established(_))
            })
            .map(|connection| connection.id);
        self.open_connection(now, id, Direction::Incoming, actions);
        if let Some(index) = stale.and_then(|stale| self.index_of(stale)) {
            self.close(now, index, End::Collision, actions);
        }
    }

    fn open_connection(
        &mut self,
        now: Instant,
        id: ConnectionId,
        direction: Direction,
        actions: &mut Vec<Action>,
    ) {
        self.connections.push(Connection {
            id,
            direction,
            phase: Phase::OpenSent,
            buffer: Vec::new(),
            max_message_len: MAX_MESSAGE_LEN,
            hold: Some(OPEN_SENT_HOLD),
            hold_deadline: Some(now + OPEN_SENT_HOLD),
            keepalive: None,
            keepalive_deadline: None,
        });
        actions.push(Action::Send(id, self.open.clone()));
    }

    fn index_of(&self, id: ConnectionId) -> Option<usize> {
        self.connections
            .iter()
            .position(|connection| connection.id == id)
    }

    fn established_index(&self) -> Option<usize> {
        self.connections
            .iter()
            .position(|connection| matches!(connection.phase, Phase::Established(_)))
    }

    fn received(
        &mut self,
        now: Instant,
        id: ConnectionId,
        bytes: &[u8],
        actions: &mut Vec<Action>,
    ) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        let mut buffer = std::mem::take(&mut self.connections[index].buffer);
        buffer.extend_from_slice(bytes);
        let mut offset = 0;
        while let Some(index) = self.index_of(id) {
            let max = self.connections[index].max_message_len;
            match frame_length(&buffer[offset..], max) {
                Ok(None) => break,
                Ok(Some(length)) => {
                    let message = &buffer[offset..offset + length];
                    offset += length;
                    self.receive(now, id, message, actions);
                }
                Err(notification) => {
                    if let Some(index) = self.index_of(id) {
                        self.close(now, index, End::Sent(notification), actions);
                    }
                }
            }
        }
        if let Some(index) = self.index_of(id) {
            buffer.drain(..offset);
            self.connections[index].buffer = buffer;
        }
    }

    /// One whole message whose header is checked.
    fn receive(
        &mut self,
        now: Instant,
        id: ConnectionId,
        message: &[u8],
        actions: &mut Vec<Action>,
    ) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        self.messages_received += 1;
        let body = &message[HEADER_LEN..];
        let connection = &mut self.connections[index];
        match (message[HEADER_LEN - 1], &connection.phase) {
            (message_type::NOTIFICATION, _) => {
                let notification = Notification {
                    code: body[0],
                    subcode: body[1],
                    data: body[2..].to_vec(),
                };
                self.close(now, index, End::Received(notification), actions);
            }
            (message_type::OPEN, Phase::OpenSent) => {
                self.receive_open(now, index, message, actions)
            }
            (message_type::KEEPALIVE, Phase::OpenConfirm(_)) => self.establish(now, index, actions),
            (message_type::KEEPALIVE, Phase::Established(_)) => connection.restart_hold(now),
            (message_type::UPDATE, Phase::Established(_)) => {
                connection.restart_hold(now);
                actions.push(Action::Update(body.to_vec()));
            }
            (message_type::ROUTE_REFRESH, Phase::Established(agreed)) => {
                let family = requested_refresh(self.config.route_refresh, &agreed.negotiated, body);
                connection.restart_hold(now);
                actions.extend(family.map(Action::RouteRefresh));
            }
            (_, phase) => {
                let subcode = match phase {
                    Phase::OpenSent => 1,
                    Phase::OpenConfirm(_) => 2,
                    Phase::Established(_) => 3,
                };
                let notification = Notification {
                    code: error::FSM,
                    subcode,
                    data: Vec::new(),
                };
                self.close(now, index, End::Sent(notification), actions);
            }
        }
    }

    fn receive_open(
        &mut self,
        now: Instant,
        index: usize,
        message: &[u8],
        actions: &mut Vec<Action>,
    ) {
        let peer = match decode_open(message) {
            Ok(peer) => peer,
            Err(notification) => return self.close(now, index, End::Sent(notification), actions),
        };
        if peer.asn != self.config.remote_as {
            let notification = Notification {
                code: error::OPEN_MESSAGE,
                subcode: error::BAD_PEER_AS,
                data: Vec::new(),
            };
            return self.close(now, index, End::Sent(notification), actions);
        }
        let internal = self.config.local_as == self.config.remote_as;
        if internal && peer.id == self.config.router_id {
            let notification = Notification {
                code: error::OPEN_MESSAGE,
                subcode: error::BAD_BGP_IDENTIFIER,
                data: peer.id.octets().to_vec(),
            };
            return self.close(now, index, End::Sent(notification), actions);
        }
        let id = self.connections[index].id;
        let direction = self.connections[index].direction;

        // Collisions (RFC 4271 6.8), settled now that the neighbor's
        // identifier is known. For an established other: whether the
        // neighbor announced graceful restart on it.
        let others: Vec<(ConnectionId, Direction, Option<bool>)> = self
            .connections
            .iter()
            .filter(|other| other.id != id)
            .map(|other| {
                let established = match &other.phase {
                    Phase::Established(agreed) => {
                        Some(agreed.negotiated.peer_graceful_restart.is_some())
                    }
                    _ => None,
                };
                (other.id, other.direction, established)
            })
            .collect();
        for (other_id, other_direction, established) in others {
            let keep_new = match established {
                // RFC 4724 4.2: a neighbor that announced graceful restart
                // and connects again has restarted; without it, the
                // established session stands.
                Some(peer_can_restart) => {
                    peer_can_restart && self.config.graceful_restart.is_some()
                }
                // Two of the neighbor's connections: the older was
                // abandoned.
                None if other_direction == direction => true,
                None => {
                    let kept = resolve_collision(
                        self.config.router_id,
                        self.config.local_as,
                        peer.id,
                        peer.asn,
                    );
                    kept == direction
                }
            };
            let (loser, end) = match (keep_new, established) {
                (true, Some(_)) => (other_id, End::PeerRestarted),
                (true, None) => (other_id, End::Collision),
                (false, _) => (id, End::Collision),
            };
            info!(
                connection = loser.0,
                kept = if keep_new { id.0 } else { other_id.0 },
                "connection collision"
            );
            if let Some(loser_index) = self.index_of(loser) {
                self.close(now, loser_index, end, actions);
            }
            if !keep_new {
                return;
            }
        }

        let agreed = negotiate(&self.config, &peer);
        let Some(index) = self.index_of(id) else {
            return;
        };
        let connection = &mut self.connections[index];
        connection.max_message_len = agreed.negotiated.max_message_len();
        let hold = Duration::from_secs(u64::from(agreed.negotiated.hold_time));
        if hold.is_zero() {
            connection.hold = None;
            connection.hold_deadline = None;
            connection.keepalive = None;
            connection.keepalive_deadline = None;
        } else {
            connection.hold = Some(hold);
            connection.hold_deadline = Some(now + hold);
            connection.keepalive = Some(hold / 3);
            connection.keepalive_deadline = Some(now + hold / 3);
        }
        connection.phase = Phase::OpenConfirm(Box::new(agreed));
        actions.push(Action::Send(id, keepalive_message()));
    }

    fn establish(&mut self, now: Instant, index: usize, actions: &mut Vec<Action>) {
        let connection = &mut self.connections[index];
        let phase = std::mem::replace(&mut connection.phase, Phase::OpenSent);
        let Phase::OpenConfirm(agreed) = phase else {
            connection.phase = phase;
            return;
        };
        let negotiated = agreed.negotiated.clone();
        connection.phase = Phase::Established(agreed);
        connection.restart_hold(now);
        info!(
            connection = connection.id.0,
            remote_as = negotiated.remote_as,
            remote_id = %negotiated.remote_id,
            hold_time = negotiated.hold_time,
            "session established"
        );
        self.failures = 0;
        self.retry_at = None;
        if self.connecting {
            self.connecting = false;
            actions.push(Action::CancelConnect);
        }
        actions.push(Action::Established(negotiated));
    }

    fn tick(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let ids: Vec<ConnectionId> = self
            .connections
            .iter()
            .map(|connection| connection.id)
            .collect();
        for id in ids {
            let Some(index) = self.index_of(id) else {
                continue;
            };
            let connection = &mut self.connections[index];
            if connection.hold_deadline.is_some_and(|at| at <= now) {
                let notification = Notification {
                    code: error::HOLD_TIMER_EXPIRED,
                    subcode: 0,
                    data: Vec::new(),
                };
                self.close(now, index, End::Sent(notification), actions);
                continue;
            }
            if let Some(interval) = connection.keepalive
                && connection.keepalive_deadline.is_some_and(|at| at <= now)
            {
                connection.keepalive_deadline = Some(now + interval);
                actions.push(Action::Send(id, keepalive_message()));
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            if self.connecting {
                // The attempt took too long: start another (RFC 4271 8.2.2,
                // Connect state, ConnectRetryTimer expires).
                actions.push(Action::CancelConnect);
                self.connecting = false;
                self.failures = self.failures.saturating_add(1);
                self.connect(now, actions);
            } else if self.started && !self.config.passive && self.connections.is_empty() {
                self.connect(now, actions);
            }
        }
    }

    fn send_update(&mut self, now: Instant, message: Vec<u8>, actions: &mut Vec<Action>) {
        let Some(index) = self.established_index() else {
            debug!("UPDATE dropped: session not established");
            return;
        };
        let connection = &mut self.connections[index];
        if !is_whole_update(&message, connection.max_message_len) {
            warn!(
                length = message.len(),
                max = connection.max_message_len,
                "UPDATE dropped: not a whole UPDATE message within the session's maximum"
            );
            return;
        }
        // Sending an UPDATE restarts the keepalive timer (RFC 4271 4.4).
        connection.keepalive_deadline = connection.keepalive.map(|interval| now + interval);
        actions.push(Action::Send(connection.id, message));
    }

    fn request_refresh(&mut self, now: Instant, family: Family, actions: &mut Vec<Action>) {
        let Some(index) = self.established_index() else {
            debug!(%family, "route refresh not sent: session not established");
            return;
        };
        let connection = &mut self.connections[index];
        let Phase::Established(agreed) = &connection.phase else {
            return;
        };
        let negotiated = &agreed.negotiated;
        if !negotiated.route_refresh || !negotiated.families.contains(&family) {
            warn!(%family, "route refresh not sent: not negotiated");
            return;
        }
        connection.keepalive_deadline = connection.keepalive.map(|interval| now + interval);
        actions.push(Action::Send(connection.id, route_refresh_message(family)));
    }

    /// Ends a connection: NOTIFICATION and close as `end` says, then
    /// [`Action::Down`] if the session itself ended: the established
    /// connection, or the last attempt.
    fn close(&mut self, now: Instant, index: usize, end: End, actions: &mut Vec<Action>) {
        let connection = self.connections.remove(index);
        let id = connection.id;
        let reason = match end {
            End::Sent(notification) => {
                actions.push(Action::Send(id, notification_message(&notification)));
                actions.push(Action::Disconnect(id));
                Some(DownReason::Sent(notification))
            }
            End::Collision => {
                let notification = Notification {
                    code: error::CEASE,
                    subcode: error::CONNECTION_COLLISION_RESOLUTION,
                    data: Vec::new(),
                };
                actions.push(Action::Send(id, notification_message(&notification)));
                actions.push(Action::Disconnect(id));
                None
            }
            End::Received(notification) => {
                actions.push(Action::Disconnect(id));
                Some(DownReason::Received(notification))
            }
            End::PeerRestarted => {
                actions.push(Action::Disconnect(id));
                Some(DownReason::PeerRestarted)
            }
            End::Closed => Some(DownReason::Closed),
        };
        let (was_established, retain) = match connection.phase {
            Phase::Established(agreed) => (true, agreed.retain),
            _ => (false, None),
        };
        match reason {
            Some(reason) if was_established || self.connections.is_empty() => {
                // RFC 4724 4.2: the routes stay while the neighbor restarts
                // when the session failed underneath (TCP, hold timer), not
                // when either side reset it with a NOTIFICATION.
                let graceful = match &reason {
                    DownReason::Closed | DownReason::PeerRestarted => true,
                    DownReason::Sent(notification) => {
                        notification.code == error::HOLD_TIMER_EXPIRED
                    }
                    DownReason::Received(_) => false,
                };
                let retain = retain.filter(|_| graceful);
                info!(
                    connection = id.0,
                    was_established,
                    retain_seconds = retain.as_ref().map(|retain| retain.duration.as_secs()),
                    "session down: {reason}"
                );
                actions.push(Action::Down(Down {
                    reason,
                    was_established,
                    retain,
                }));
            }
            Some(reason) => debug!(connection = id.0, "connection closed: {reason}"),
            None => {}
        }
        self.schedule_retry(now);
    }
}

impl Connection {
    fn restart_hold(&mut self, now: Instant) {
        self.hold_deadline = self.hold.map(|hold| now + hold);
    }
}

/// The length of the message at the start of `buffer` once it is all
/// there, after checking its header (RFC 4271 6.1): an UPDATE or
/// NOTIFICATION may be `max` octets (4096, or 65535 with extended
/// messages), an OPEN 4096 whatever was agreed (RFC 8654 4).
fn frame_length(buffer: &[u8], max: usize) -> Result<Option<usize>, Notification> {
    let header_error = |subcode: u8, data: Vec<u8>| Notification {
        code: error::MESSAGE_HEADER,
        subcode,
        data,
    };
    let marker = &buffer[..buffer.len().min(16)];
    if marker.iter().any(|octet| *octet != 0xff) {
        return Err(header_error(error::CONNECTION_NOT_SYNCHRONIZED, Vec::new()));
    }
    if buffer.len() < HEADER_LEN {
        return Ok(None);
    }
    let length_field = [buffer[16], buffer[17]];
    let length = usize::from(u16::from_be_bytes(length_field));
    let bad_length = || header_error(error::BAD_MESSAGE_LENGTH, length_field.to_vec());
    if !(HEADER_LEN..=max).contains(&length) {
        return Err(bad_length());
    }
    let (shortest, longest) = match buffer[18] {
        message_type::OPEN => (29, MAX_MESSAGE_LEN),
        message_type::UPDATE => (23, max),
        message_type::NOTIFICATION => (21, max),
        message_type::KEEPALIVE => (19, 19),
        message_type::ROUTE_REFRESH => (23, 23),
        other => return Err(header_error(error::BAD_MESSAGE_TYPE, vec![other])),
    };
    if !(shortest..=longest).contains(&length) {
        return Err(bad_length());
    }
    Ok((buffer.len() >= length).then_some(length))
}

fn is_whole_update(message: &[u8], max: usize) -> bool {
    matches!(frame_length(message, max), Ok(Some(length)) if length == message.len())
        && message[HEADER_LEN - 1] == message_type::UPDATE
}

/// A message of a type and body, with its header.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = HEADER_LEN + body.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&[0xff; 16]);
    message.extend_from_slice(&(length as u16).to_be_bytes());
    message.push(kind);
    message.extend_from_slice(body);
    message
}

fn keepalive_message() -> Vec<u8> {
    frame(message_type::KEEPALIVE, &[])
}

fn notification_message(notification: &Notification) -> Vec<u8> {
    let mut body = vec![notification.code, notification.subcode];
    // Data beyond what fits in a message is dropped.
    let room = MAX_MESSAGE_LEN - HEADER_LEN - body.len();
    body.extend_from_slice(&notification.data[..notification.data.len().min(room)]);
    frame(message_type::NOTIFICATION, &body)
}

fn encode(message: &BgpMessage) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(message.len());
    message
        .write(&mut bytes)
        .expect("an OPEN of a few capabilities or a ROUTE-REFRESH fits in a message");
    bytes
}

fn route_refresh_message(family: Family) -> Vec<u8> {
    encode(&BgpMessage::RouteRefresh(BgpRouteRefreshMessage::new(
        address_type(family),
        RouteRefreshSubcode::NormalRequest,
    )))
}

/// Our OPEN (RFC 4271 4.2) and its capabilities.
fn open_message(config: &SessionConfig) -> Vec<u8> {
    let mut capabilities: Vec<BgpCapability> = config
        .families
        .iter()
        .map(|family| {
            BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
                address_type(*family),
            ))
        })
        .collect();
    if config.route_refresh {
        capabilities.push(BgpCapability::RouteRefresh);
    }
    if config.extended_messages {
        capabilities.push(BgpCapability::ExtendedMessage);
    }
    if config.extended_next_hop_ipv4 {
        capabilities.push(BgpCapability::ExtendedNextHopEncoding(
            ExtendedNextHopEncodingCapability::new(vec![ExtendedNextHopEncoding::new(
                AddressType::Ipv4Unicast,
                AddressFamily::IPv6,
            )]),
        ));
    }
    if let Some(graceful_restart) = &config.graceful_restart {
        let families: Vec<GracefulRestartAddressFamily> = config
            .families
            .iter()
            .map(|family| {
                GracefulRestartAddressFamily::new(
                    graceful_restart.forwarding_preserved,
                    address_type(*family),
                )
            })
            .collect();
        capabilities.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                graceful_restart.restarting,
                false,
                graceful_restart.restart_time,
                families,
            ),
        ));
    }
    capabilities.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        config.local_as,
    )));
    let my_as = u16::try_from(config.local_as).unwrap_or(AS_TRANS as u16);
    encode(&BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        config.hold_time,
        config.router_id,
        vec![BgpOpenMessageParameter::Capabilities(capabilities.into())],
    )))
}

/// What the neighbor's OPEN says.
struct PeerOpen {
    /// From the 4-octet AS capability when present.
    asn: Asn,
    hold_time: u16,
    id: Ipv4Addr,
    /// Those that could be decoded.
    capabilities: Vec<BgpCapability>,
    /// Codes of all capabilities, decoded or not.
    capability_codes: Vec<u8>,
}

/// Checks and reads an OPEN (a whole message): version, hold time and
/// identifier by `netgauze-bgp-pkt`, which answers the NOTIFICATION RFC
/// 4271 6.2 calls for.
fn decode_open(message: &[u8]) -> Result<PeerOpen, Notification> {
    // Capabilities are read below, one by one; errors in them are not the
    // OPEN's (RFC 5492: ignore what is not understood).
    let mut context = BgpParsingContext::new(
        true,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    );
    let open = match BgpMessage::parse(&mut SliceReader::new(message), &mut context) {
        Ok(BgpMessage::Open(open)) => open,
        Ok(_) => unreachable!("the header said OPEN"),
        Err(parse_error) => {
            let notification = notification_of(&BgpNotificationMessage::from(parse_error));
            return Err(notification);
        }
    };
    // The optional parameters follow version, AS, hold time, identifier
    // and their own length: 10 octets into the body.
    let parameters = message.get(HEADER_LEN + 10..).unwrap_or_default();
    let (capabilities, capability_codes) = capabilities_in(parameters);
    let asn = capabilities
        .iter()
        .find_map(|capability| match capability {
            BgpCapability::FourOctetAs(four_octet_as) => Some(four_octet_as.asn4()),
            _ => None,
        })
        .unwrap_or(Asn::from(open.my_as()));
    Ok(PeerOpen {
        asn,
        hold_time: open.hold_time(),
        id: open.bgp_id(),
        capabilities,
        capability_codes,
    })
}

/// The capabilities of OPEN optional parameters, each decoded from its own
/// octets: one that is malformed or unknown costs only itself (the
/// library, told to carry on after a bad capability, would resume in the
/// middle of it). Also the codes of all, decoded or not.
fn capabilities_in(mut parameters: &[u8]) -> (Vec<BgpCapability>, Vec<u8>) {
    let mut capabilities = Vec::new();
    let mut codes = Vec::new();
    while let [kind, length, rest @ ..] = parameters {
        let Some(value) = rest.get(..usize::from(*length)) else {
            break;
        };
        if *kind == CAPABILITIES_PARAMETER {
            let mut tlvs = value;
            while let [code, length, ..] = tlvs {
                let Some(tlv) = tlvs.get(..2 + usize::from(*length)) else {
                    break;
                };
                codes.push(*code);
                match BgpCapability::parse(&mut SliceReader::new(tlv)) {
                    Ok(capability) => capabilities.push(capability),
                    Err(parse_error) => debug!(%parse_error, "capability ignored"),
                }
                tlvs = &tlvs[tlv.len()..];
            }
        }
        parameters = &rest[value.len()..];
    }
    (capabilities, codes)
}

/// Code, subcode and data of one of the library's NOTIFICATIONs.
fn notification_of(message: &BgpNotificationMessage) -> Notification {
    let mut bytes = Vec::with_capacity(message.len());
    if message.write(&mut bytes).is_ok()
        && let [code, subcode, data @ ..] = bytes.as_slice()
    {
        return Notification {
            code: *code,
            subcode: *subcode,
            data: data.to_vec(),
        };
    }
    Notification {
        code: error::OPEN_MESSAGE,
        subcode: 0,
        data: Vec::new(),
    }
}

/// What our configuration and the neighbor's OPEN agree on.
fn negotiate(config: &SessionConfig, peer: &PeerOpen) -> Agreed {
    // A multiprotocol capability we could not decode still means the
    // neighbor does not imply IPv4 unicast.
    let multiprotocol = peer.capability_codes.contains(&MULTIPROTOCOL_CAPABILITY);
    let mut announced = Vec::new();
    let mut route_refresh = false;
    let mut four_octet_as = false;
    let mut extended_next_hop_ipv4 = false;
    let mut graceful_restart = None;
    for capability in &peer.capabilities {
        match capability {
            BgpCapability::MultiProtocolExtensions(multiprotocol_extensions) => {
                announced.extend(family_of(multiprotocol_extensions.address_type()));
            }
            BgpCapability::RouteRefresh | BgpCapability::CiscoRouteRefresh => {
                route_refresh = true;
            }
            BgpCapability::FourOctetAs(_) => four_octet_as = true,
            BgpCapability::ExtendedNextHopEncoding(extended_next_hop) => {
                extended_next_hop_ipv4 |= extended_next_hop.encodings().iter().any(|encoding| {
                    encoding.address_type() == AddressType::Ipv4Unicast
                        && encoding.next_hop_afi() == AddressFamily::IPv6
                });
            }
            BgpCapability::GracefulRestartCapability(capability) => {
                graceful_restart = Some(capability);
            }
            _ => {}
        }
    }
    // RFC 4760 8: a speaker without the capability carries IPv4 unicast.
    if !multiprotocol {
        announced.push(Family::Ipv4Unicast);
    }
    let families: Vec<Family> = config
        .families
        .iter()
        .copied()
        .filter(|family| announced.contains(family))
        .collect();
    if families.is_empty() {
        warn!(
            remote_as = peer.asn,
            "no address family in common with the neighbor"
        );
    }
    let retain = match (&config.graceful_restart, graceful_restart) {
        (Some(_), Some(capability)) if capability.time() > 0 => {
            let kept: Vec<Family> = capability
                .address_families()
                .iter()
                .filter_map(|family| family_of(family.address_type()))
                .filter(|family| families.contains(family))
                .collect();
            (!kept.is_empty()).then(|| Retention {
                families: kept,
                duration: Duration::from_secs(u64::from(capability.time())),
            })
        }
        _ => None,
    };
    let peer_graceful_restart = graceful_restart.map(|capability| GracefulRestart {
        restarted: capability.restart(),
        restart_time: capability.time(),
        preserved: capability
            .address_families()
            .iter()
            .filter(|family| family.forwarding_state())
            .filter_map(|family| family_of(family.address_type()))
            .collect(),
    });
    Agreed {
        negotiated: Negotiated {
            local_as: config.local_as,
            remote_as: peer.asn,
            remote_id: peer.id,
            hold_time: config.hold_time.min(peer.hold_time),
            four_octet_as,
            families,
            route_refresh: config.route_refresh && route_refresh,
            extended_next_hop_ipv4: config.extended_next_hop_ipv4 && extended_next_hop_ipv4,
            // RFC 8654 4 lets a speaker that announced the capability take
            // large messages whatever the neighbor announced; like BIRD and
            // FRR, both ways need both announcements here.
            extended_messages: config.extended_messages
                && peer.capability_codes.contains(&EXTENDED_MESSAGE_CAPABILITY),
            peer_graceful_restart,
        },
        retain,
    }
}

/// The family of a ROUTE-REFRESH we should answer; others are ignored
/// (RFC 2918 4).
fn requested_refresh(announced: bool, negotiated: &Negotiated, body: &[u8]) -> Option<Family> {
    if !announced {
        debug!("ROUTE-REFRESH ignored: route refresh not announced");
        return None;
    }
    let family = BgpRouteRefreshMessage::parse(&mut SliceReader::new(body))
        .ok()
        .and_then(|refresh| family_of(refresh.address_type()));
    match family {
        Some(family) if negotiated.families.contains(&family) => Some(family),
        _ => {
            debug!(body = ?body, "ROUTE-REFRESH ignored: family not negotiated");
            None
        }
    }
}

fn address_type(family: Family) -> AddressType {
    match family {
        Family::Ipv4Unicast => AddressType::Ipv4Unicast,
        Family::Ipv6Unicast => AddressType::Ipv6Unicast,
    }
}

fn family_of(address_type: AddressType) -> Option<Family> {
    match address_type {
        AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
        AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL_AS: Asn = 4_200_000_002;
    const PEER_AS: Asn = 4_200_000_001;
    const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const OUT: ConnectionId = ConnectionId(1);
    const IN: ConnectionId = ConnectionId(2);
    const V4: Family = Family::Ipv4Unicast;
    const V6: Family = Family::Ipv6Unicast;

    /// An OPEN as FRR 8.4 sends it with `bgp graceful-restart`, written
    /// octet by octet from RFC 4271 4.2 and the capability RFCs: AS
    /// 4200000001 (AS_TRANS in the 2-octet field), hold time 180, identifier
    /// 192.0.2.2, each capability in its own optional parameter.
    const FRR_OPEN: &str = "
        ffffffff ffffffff ffffffff ffffffff 0065 01
        04 5ba0 00b4 c0000202 48
        02 06 01 04 0001 00 01                  # MP-BGP IPv4 unicast
        02 06 01 04 0002 00 01                  # MP-BGP IPv6 unicast
        02 02 80 00                             # route refresh (pre-standard code)
        02 02 02 00                             # route refresh
        02 02 46 00                             # enhanced route refresh
        02 06 41 04 fa56ea01                    # 4-octet AS 4200000001
        02 0a 45 08 0001 01 01 0002 01 01       # ADD-PATH receive, IPv4 and IPv6
        02 08 49 06 04 66727231 00              # FQDN frr1
        02 0c 40 0a 4078 0001 01 80 0002 01 80  # graceful restart: N, 120 s, F for both
    ";

    /// Hex octets; whitespace is skipped, and `#` comments to the end of
    /// the line.
    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(str::split_whitespace)
            .collect();
        assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
        (0..digits.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&digits[at..at + 2], 16).unwrap())
            .collect()
    }

    fn frr_open() -> Vec<u8> {
        hex(FRR_OPEN)
    }

    fn at(t0: Instant, seconds: f64) -> Instant {
        t0 + Duration::from_secs_f64(seconds)
    }

    fn config() -> SessionConfig {
        SessionConfig {
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: 120,
                restarting: false,
                forwarding_preserved: true,
            }),
            ..SessionConfig::new(LOCAL_AS, PEER_AS, LOCAL_ID)
        }
    }

    fn multiprotocol(family: Family) -> BgpCapability {
        BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
            address_type(family),
        ))
    }

    fn graceful_restart(restarted: bool, time: u16, families: &[Family]) -> BgpCapability {
        let families: Vec<GracefulRestartAddressFamily> = families
            .iter()
            .map(|family| GracefulRestartAddressFamily::new(true, address_type(*family)))
            .collect();
        BgpCapability::GracefulRestartCapability(GracefulRestartCapability::new(
            restarted, false, time, families,
        ))
    }

    /// A neighbor's OPEN built with the library.
    fn open(asn: Asn, hold_time: u16, id: Ipv4Addr, capabilities: Vec<BgpCapability>) -> Vec<u8> {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
        let parameters = if capabilities.is_empty() {
            vec![]
        } else {
            vec![BgpOpenMessageParameter::Capabilities(capabilities.into())]
        };
        encode(&BgpMessage::Open(BgpOpenMessage::new(
            my_as, hold_time, id, parameters,
        )))
    }

    /// A neighbor with MP-BGP for both families, route refresh and 4-octet
    /// AS, but no graceful restart.
    fn plain_open(hold_time: u16) -> Vec<u8> {
        open(
            PEER_AS,
            hold_time,
            PEER_ID,
            vec![
                multiprotocol(V4),
                multiprotocol(V6),
                BgpCapability::RouteRefresh,
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        )
    }

    fn notification(code: u8, subcode: u8, data: &[u8]) -> Notification {
        Notification {
            code,
            subcode,
            data: data.to_vec(),
        }
    }

    /// Feeds bytes in odd pieces: 1, 7, 13, 2, 29, 64 octets, again.
    fn feed(session: &mut Session, now: Instant, id: ConnectionId, bytes: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut rest = bytes;
        for size in [1, 7, 13, 2, 29, 64].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            actions.extend(session.handle(now, Input::Received(id, piece)));
            rest = tail;
        }
        actions
    }

    /// Start, connect, and take the neighbor's OPEN and KEEPALIVE (in one
    /// stream, cut in odd places).
    fn establish(config: SessionConfig, peer_open: &[u8], now: Instant) -> (Session, Negotiated) {
        let mut session = Session::new(config).unwrap();
        assert_eq!(session.handle(now, Input::Start), [Action::Connect]);
        let actions = session.handle(now, Input::Connected(OUT));
        assert!(
            matches!(actions.as_slice(), [Action::Send(OUT, _)]),
            "{actions:?}"
        );
        let mut stream = peer_open.to_vec();
        stream.extend(keepalive_message());
        let actions = feed(&mut session, now, OUT, &stream);
        match actions.as_slice() {
            [
                Action::Send(OUT, keepalive),
                Action::Established(negotiated),
            ] if *keepalive == keepalive_message() => {
                assert_eq!(session.state(), State::Established);
                assert_eq!(session.negotiated(), Some(negotiated));
                // The OPEN and the KEEPALIVE, however they were split.
                assert_eq!(session.messages_received(), 2);
                (session, negotiated.clone())
            }
            other => panic!("not established: {other:?}"),
        }
    }

    /// A session in OpenSent on `OUT`.
    fn open_sent(config: SessionConfig, now: Instant) -> Session {
        let mut session = Session::new(config).unwrap();
        session.handle(now, Input::Start);
        session.handle(now, Input::Connected(OUT));
        assert_eq!(session.state(), State::OpenSent);
        session
    }

    /// What sending `notification` and closing looks like.
    fn closed_with(
        id: ConnectionId,
        notification: Notification,
        was_established: bool,
    ) -> Vec<Action> {
        vec![
            Action::Send(id, notification_message(&notification)),
            Action::Disconnect(id),
            Action::Down(Down {
                reason: DownReason::Sent(notification),
                was_established,
                retain: None,
            }),
        ]
    }

    fn down_of(actions: &[Action]) -> &Down {
        actions
            .iter()
            .find_map(|action| match action {
                Action::Down(down) => Some(down),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no Down in {actions:?}"))
    }

    #[test]
    fn our_open_announces_what_is_configured() {
        let config = SessionConfig {
            extended_next_hop_ipv4: true,
            ..config()
        };
        let t0 = Instant::now();
        let mut session = Session::new(config).unwrap();
        assert_eq!(session.state(), State::Idle);
        assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
        assert_eq!(session.state(), State::Connect);
        let actions = session.handle(t0, Input::Connected(OUT));
        let [Action::Send(OUT, bytes)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        let mut context = BgpParsingContext::default();
        let Ok(BgpMessage::Open(open)) =
            BgpMessage::parse(&mut SliceReader::new(bytes), &mut context)
        else {
            panic!("not an OPEN");
        };
        assert_eq!(open.version(), 4);
        assert_eq!(open.my_as(), 23456, "AS_TRANS for a 4-octet AS");
        assert_eq!(open.hold_time(), 90);
        assert_eq!(open.bgp_id(), LOCAL_ID);
        let expected = [
            multiprotocol(V4),
            multiprotocol(V6),
            BgpCapability::RouteRefresh,
            BgpCapability::ExtendedNextHopEncoding(ExtendedNextHopEncodingCapability::new(vec![
                ExtendedNextHopEncoding::new(AddressType::Ipv4Unicast, AddressFamily::IPv6),
            ])),
            graceful_restart(false, 120, &[V4, V6]),
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(LOCAL_AS)),
        ];
        let announced: Vec<BgpCapability> = open.capabilities().into_iter().cloned().collect();
        assert_eq!(announced, expected);
        assert_eq!(session.state(), State::OpenSent);
    }

    #[test]
    fn our_open_carries_a_two_octet_as_as_is_and_the_restart_bit() {
        let config = SessionConfig {
            local_as: 65001,
            route_refresh: false,
            families: vec![V6],
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: 300,
                restarting: true,
                forwarding_preserved: true,
            }),
            ..config()
        };
        let message = open_message(&config);
        let mut context = BgpParsingContext::default();
        let Ok(BgpMessage::Open(open)) =
            BgpMessage::parse(&mut SliceReader::new(&message), &mut context)
        else {
            panic!("not an OPEN");
        };
        assert_eq!(open.my_as(), 65001);
        let announced: Vec<BgpCapability> = open.capabilities().into_iter().cloned().collect();
        assert_eq!(
            announced,
            [
                multiprotocol(V6),
                graceful_restart(true, 300, &[V6]),
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(65001)),
            ]
        );
    }

    #[test]
    fn frr_open_establishes_with_four_octet_as() {
        let t0 = Instant::now();
        let (_, negotiated) = establish(config(), &frr_open(), t0);
        assert_eq!(
            negotiated,
            Negotiated {
                local_as: LOCAL_AS,
                remote_as: PEER_AS,
                remote_id: PEER_ID,
                hold_time: 90,
                four_octet_as: true,
                families: vec![V4, V6],
                route_refresh: true,
                extended_next_hop_ipv4: false,
                extended_messages: false,
                peer_graceful_restart: Some(GracefulRestart {
                    restarted: false,
                    restart_time: 120,
                    preserved: vec![V4, V6],
                }),
            }
        );
        assert!(negotiated.is_ebgp());
    }

    #[test]
    fn open_exchange_goes_through_open_confirm() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &frr_open());
        assert_eq!(actions, [Action::Send(OUT, keepalive_message())]);
        assert_eq!(session.state(), State::OpenConfirm);
        assert_eq!(session.negotiated(), None);
        let actions = feed(&mut session, t0, OUT, &keepalive_message());
        assert!(matches!(actions.as_slice(), [Action::Established(_)]));
    }

    #[test]
    fn families_are_the_intersection() {
        let t0 = Instant::now();
        let ipv6_only = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![
                multiprotocol(V6),
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        );
        let (_, negotiated) = establish(config(), &ipv6_only, t0);
        assert_eq!(negotiated.families, [V6]);
        assert!(!negotiated.route_refresh);

        // No multiprotocol capability at all: IPv4 unicast (RFC 4760 8).
        let bare = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
                PEER_AS,
            ))],
        );
        let (_, negotiated) = establish(config(), &bare, t0);
        assert_eq!(negotiated.families, [V4]);
        let (_, negotiated) = establish(
            SessionConfig {
                families: vec![V6],
                ..config()
            },
            &bare,
            t0,
        );
        assert_eq!(negotiated.families, []);
    }

    #[test]
    fn two_octet_neighbor_is_known_by_its_as_field() {
        let t0 = Instant::now();
        let config = SessionConfig {
            remote_as: 65002,
            ..config()
        };
        let (_, negotiated) = establish(config, &open(65002, 30, PEER_ID, vec![]), t0);
        assert_eq!(negotiated.remote_as, 65002);
        assert!(!negotiated.four_octet_as);
        assert_eq!(negotiated.hold_time, 30);
        assert_eq!(negotiated.peer_graceful_restart, None);
    }

    #[test]
    fn extended_next_hop_needs_both_sides() {
        let t0 = Instant::now();
        let with_extended_next_hop = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![
                multiprotocol(V4),
                BgpCapability::ExtendedNextHopEncoding(ExtendedNextHopEncodingCapability::new(
                    vec![ExtendedNextHopEncoding::new(
                        AddressType::Ipv4Unicast,
                        AddressFamily::IPv6,
                    )],
                )),
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        );
        let configured = SessionConfig {
            extended_next_hop_ipv4: true,
            ..config()
        };
        let (_, negotiated) = establish(configured.clone(), &with_extended_next_hop, t0);
        assert!(negotiated.extended_next_hop_ipv4);
        let (_, negotiated) = establish(config(), &with_extended_next_hop, t0);
        assert!(!negotiated.extended_next_hop_ipv4);
        let (_, negotiated) = establish(configured, &plain_open(90), t0);
        assert!(!negotiated.extended_next_hop_ipv4);
    }

    #[test]
    fn a_malformed_capability_costs_only_itself() {
        // One parameter: an MP-BGP capability of unknown AFI 0x4000, then
        // the 4-octet AS.
        let message = hex("
            ffffffff ffffffff ffffffff ffffffff 002b 01
            04 5ba0 005a c0000202 0e
            02 0c 01 04 4000 00 01 41 04 fa56ea01
        ");
        let t0 = Instant::now();
        let (_, negotiated) = establish(config(), &message, t0);
        assert_eq!(negotiated.remote_as, PEER_AS);
        assert!(negotiated.four_octet_as);
        // The peer announced multiprotocol, none of ours.
        assert_eq!(negotiated.families, []);
    }

    #[test]
    fn bad_peer_as_draws_2_2() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &open(65099, 90, PEER_ID, vec![]));
        assert_eq!(actions, closed_with(OUT, notification(2, 2, &[]), false));
        // The 4-octet capability wins over the 2-octet field.
        let mut session = open_sent(config(), t0);
        let lying = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
                4_200_000_099,
            ))],
        );
        let actions = feed(&mut session, t0, OUT, &lying);
        assert_eq!(actions, closed_with(OUT, notification(2, 2, &[]), false));
        assert_eq!(session.state(), State::Active);
    }

    #[test]
    fn hold_time_one_or_two_draws_2_6() {
        let t0 = Instant::now();
        for hold_time in [1u16, 2] {
            let mut session = open_sent(config(), t0);
            let actions = feed(&mut session, t0, OUT, &plain_open(hold_time));
            let expected = notification(2, 6, &hold_time.to_be_bytes());
            assert_eq!(actions, closed_with(OUT, expected, false));
        }
    }

    #[test]
    fn bad_identifier_draws_2_3() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        let actions = feed(
            &mut session,
            t0,
            OUT,
            &open(PEER_AS, 90, Ipv4Addr::UNSPECIFIED, vec![]),
        );
        assert_eq!(
            actions,
            closed_with(OUT, notification(2, 3, &[0, 0, 0, 0]), false)
        );

        // iBGP: the neighbor may not share our identifier.
        let internal = SessionConfig {
            remote_as: LOCAL_AS,
            ..config()
        };
        let same_id = open(
            LOCAL_AS,
            90,
            LOCAL_ID,
            vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
                LOCAL_AS,
            ))],
        );
        let mut session = open_sent(internal, t0);
        let actions = feed(&mut session, t0, OUT, &same_id);
        assert_eq!(
            actions,
            closed_with(OUT, notification(2, 3, &LOCAL_ID.octets()), false)
        );

        // eBGP: it may (RFC 6286).
        let same_id = open(
            PEER_AS,
            90,
            LOCAL_ID,
            vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
                PEER_AS,
            ))],
        );
        let (_, negotiated) = establish(config(), &same_id, t0);
        assert_eq!(negotiated.remote_id, LOCAL_ID);
    }

    #[test]
    fn unsupported_version_draws_2_1() {
        let t0 = Instant::now();
        let mut message = plain_open(90);
        message[HEADER_LEN] = 3;
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &message);
        assert_eq!(
            actions,
            closed_with(OUT, notification(2, 1, &[0, 4]), false)
        );
    }

    #[test]
    fn keepalives_every_third_of_hold_and_hold_expiry_after_silence() {
        let t0 = Instant::now();
        let (mut session, negotiated) = establish(config(), &plain_open(9), t0);
        assert_eq!(negotiated.hold_time, 9);
        assert_eq!(session.next_deadline(), Some(at(t0, 3.0)));
        assert_eq!(session.handle(at(t0, 2.999), Input::Tick), []);
        let keepalive = vec![Action::Send(OUT, keepalive_message())];
        assert_eq!(session.handle(at(t0, 3.0), Input::Tick), keepalive);
        assert_eq!(session.next_deadline(), Some(at(t0, 6.0)));
        assert_eq!(session.handle(at(t0, 6.0), Input::Tick), keepalive);
        assert_eq!(session.next_deadline(), Some(at(t0, 9.0)));
        assert_eq!(session.handle(at(t0, 8.999), Input::Tick), []);
        assert_eq!(session.state(), State::Established);
        let actions = session.handle(at(t0, 9.0), Input::Tick);
        assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), true));
        assert_eq!(session.state(), State::Active);
    }

    #[test]
    fn what_the_neighbor_sends_restarts_the_hold_timer() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(9), t0);
        assert_eq!(
            feed(&mut session, at(t0, 5.0), OUT, &keepalive_message()),
            []
        );
        session.handle(at(t0, 6.0), Input::Tick);
        assert_eq!(
            session.handle(at(t0, 9.0), Input::Tick),
            [Action::Send(OUT, keepalive_message())]
        );
        let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
        assert_eq!(
            feed(&mut session, at(t0, 13.0), OUT, &update),
            [Action::Update(vec![0, 0, 0, 0])]
        );
        assert_eq!(
            session.handle(at(t0, 21.999), Input::Tick).len(),
            1,
            "one keepalive"
        );
        let actions = session.handle(at(t0, 22.0), Input::Tick);
        assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), true));
    }

    #[test]
    fn sending_an_update_postpones_the_keepalive() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        assert_eq!(session.next_deadline(), Some(at(t0, 30.0)));
        let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
        let actions = session.handle(at(t0, 20.0), Input::SendUpdate(update.clone()));
        assert_eq!(actions, [Action::Send(OUT, update)]);
        assert_eq!(session.next_deadline(), Some(at(t0, 50.0)));
    }

    #[test]
    fn open_sent_waits_four_minutes_for_the_open() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        assert_eq!(session.next_deadline(), Some(at(t0, 240.0)));
        assert_eq!(session.handle(at(t0, 239.9), Input::Tick), []);
        let actions = session.handle(at(t0, 240.0), Input::Tick);
        assert_eq!(actions, closed_with(OUT, notification(4, 0, &[]), false));
    }

    #[test]
    fn hold_time_zero_runs_no_timers() {
        let t0 = Instant::now();
        let (mut session, negotiated) = establish(config(), &plain_open(0), t0);
        assert_eq!(negotiated.hold_time, 0);
        assert_eq!(session.next_deadline(), None);
        assert_eq!(session.handle(at(t0, 100_000.0), Input::Tick), []);
        assert_eq!(session.state(), State::Established);
    }

    #[test]
    fn collision_keeps_our_connection_when_our_identifier_is_higher() {
        let t0 = Instant::now();
        let config = SessionConfig {
            router_id: Ipv4Addr::new(192, 0, 2, 9),
            ..config()
        };
        let mut session = open_sent(config, t0);
        let actions = session.handle(t0, Input::Accepted(IN));
        assert!(
            matches!(actions.as_slice(), [Action::Send(IN, _)]),
            "{actions:?}"
        );
        // The neighbor's OPEN on its own connection: that one goes.
        let actions = feed(&mut session, t0, IN, &plain_open(90));
        let cease = notification(6, 7, &[]);
        assert_eq!(
            actions,
            [
                Action::Send(IN, notification_message(&cease)),
                Action::Disconnect(IN)
            ]
        );
        assert_eq!(session.state(), State::OpenSent);
        let actions = feed(&mut session, t0, OUT, &plain_open(90));
        assert_eq!(actions, [Action::Send(OUT, keepalive_message())]);
        let actions = feed(&mut session, t0, OUT, &keepalive_message());
        assert!(matches!(actions.as_slice(), [Action::Established(_)]));
    }

    #[test]
    fn collision_keeps_our_connection_when_its_open_comes_first() {
        let t0 = Instant::now();
        let config = SessionConfig {
            router_id: Ipv4Addr::new(192, 0, 2, 9),
            ..config()
        };
        let mut session = open_sent(config, t0);
        session.handle(t0, Input::Accepted(IN));
        let actions = feed(&mut session, t0, OUT, &plain_open(90));
        let cease = notification(6, 7, &[]);
        assert_eq!(
            actions,
            [
                Action::Send(IN, notification_message(&cease)),
                Action::Disconnect(IN),
                Action::Send(OUT, keepalive_message()),
            ]
        );
        assert_eq!(session.state(), State::OpenConfirm);
    }

    #[test]
    fn collision_keeps_the_neighbors_connection_when_its_identifier_is_higher() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        session.handle(t0, Input::Accepted(IN));
        let actions = feed(&mut session, t0, OUT, &plain_open(90));
        let cease = notification(6, 7, &[]);
        assert_eq!(
            actions,
            [
                Action::Send(OUT, notification_message(&cease)),
                Action::Disconnect(OUT)
            ]
        );
        let actions = feed(&mut session, t0, IN, &plain_open(90));
        assert_eq!(actions, [Action::Send(IN, keepalive_message())]);
        let actions = feed(&mut session, t0, IN, &keepalive_message());
        assert!(matches!(actions.as_slice(), [Action::Established(_)]));
        // No connection attempt left behind: only the session's timers.
        assert_eq!(session.next_deadline(), Some(at(t0, 30.0)));
    }

    #[test]
    fn collision_rule() {
        let low = Ipv4Addr::new(10, 0, 0, 1);
        let high = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(resolve_collision(high, 1, low, 2), Direction::Outgoing);
        assert_eq!(resolve_collision(low, 2, high, 1), Direction::Incoming);
        // Equal identifiers: the higher AS (RFC 6286).
        assert_eq!(
            resolve_collision(low, 65002, low, 65001),
            Direction::Outgoing
        );
        assert_eq!(
            resolve_collision(low, 65001, low, 65002),
            Direction::Incoming
        );
    }

    #[test]
    fn a_new_connection_loses_to_an_established_session() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = session.handle(t0, Input::Accepted(IN));
        assert!(matches!(actions.as_slice(), [Action::Send(IN, _)]));
        let actions = feed(&mut session, t0, IN, &plain_open(90));
        let cease = notification(6, 7, &[]);
        assert_eq!(
            actions,
            [
                Action::Send(IN, notification_message(&cease)),
                Action::Disconnect(IN)
            ]
        );
        assert_eq!(session.state(), State::Established);
    }

    #[test]
    fn a_restarted_neighbor_replaces_its_established_session() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &frr_open(), t0);
        session.handle(at(t0, 1.0), Input::Accepted(IN));
        let restarted = hex(&FRR_OPEN.replace("4078", "c078"));
        let actions = feed(&mut session, at(t0, 1.0), IN, &restarted);
        let down = Down {
            reason: DownReason::PeerRestarted,
            was_established: true,
            retain: Some(Retention {
                families: vec![V4, V6],
                duration: Duration::from_secs(120),
            }),
        };
        assert_eq!(
            actions,
            [
                Action::Disconnect(OUT),
                Action::Down(down),
                Action::Send(IN, keepalive_message()),
            ]
        );
        let actions = feed(&mut session, at(t0, 1.0), IN, &keepalive_message());
        let [Action::Established(negotiated)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert!(negotiated.peer_graceful_restart.as_ref().unwrap().restarted);
    }

    #[test]
    fn a_second_incoming_connection_replaces_a_stale_one() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig {
            passive: true,
            ..config()
        })
        .unwrap();
        session.handle(t0, Input::Start);
        session.handle(t0, Input::Accepted(IN));
        let actions = session.handle(t0, Input::Accepted(ConnectionId(3)));
        let cease = notification(6, 7, &[]);
        assert_eq!(
            actions,
            [
                Action::Send(ConnectionId(3), session.open.clone()),
                Action::Send(IN, notification_message(&cease)),
                Action::Disconnect(IN),
            ]
        );
        assert_eq!(session.state(), State::OpenSent);
        assert_eq!(session.next_deadline(), Some(at(t0, 240.0)));
    }

    #[test]
    fn connect_retry_backs_off_to_a_minute() {
        let t0 = Instant::now();
        let mut session = Session::new(config()).unwrap();
        let mut now = t0;
        assert_eq!(session.handle(now, Input::Start), [Action::Connect]);
        let mut waits = Vec::new();
        for _ in 0..9 {
            assert_eq!(session.handle(now, Input::ConnectFailed), []);
            assert_eq!(session.state(), State::Active);
            let next = session.next_deadline().unwrap();
            waits.push((next - now).as_secs_f64());
            assert_eq!(
                session.handle(next - Duration::from_millis(1), Input::Tick),
                []
            );
            now = next;
            assert_eq!(session.handle(now, Input::Tick), [Action::Connect]);
            assert_eq!(session.state(), State::Connect);
        }
        assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
    }

    #[test]
    fn a_slow_connect_is_abandoned_and_tried_again() {
        let t0 = Instant::now();
        let mut session = Session::new(config()).unwrap();
        session.handle(t0, Input::Start);
        assert_eq!(session.next_deadline(), Some(at(t0, 1.0)));
        assert_eq!(
            session.handle(at(t0, 1.0), Input::Tick),
            [Action::CancelConnect, Action::Connect]
        );
        assert_eq!(session.next_deadline(), Some(at(t0, 3.0)));
        // A late answer to an abandoned attempt is refused.
        session.handle(at(t0, 2.0), Input::Stop);
        assert_eq!(
            session.handle(at(t0, 2.0), Input::Connected(OUT)),
            [Action::Disconnect(OUT)]
        );
    }

    #[test]
    fn a_session_that_went_down_connects_again_from_the_first_wait() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = session.handle(at(t0, 5.0), Input::Closed(OUT));
        assert_eq!(
            actions,
            [Action::Down(Down {
                reason: DownReason::Closed,
                was_established: true,
                retain: None,
            })]
        );
        assert_eq!(session.state(), State::Active);
        assert_eq!(session.next_deadline(), Some(at(t0, 6.0)));
        assert_eq!(session.handle(at(t0, 6.0), Input::Tick), [Action::Connect]);
    }

    #[test]
    fn retry_now_cuts_the_wait_short() {
        let t0 = Instant::now();
        let mut session = Session::new(config()).unwrap();
        assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
        // Connecting, or connected: nothing to cut short.
        assert_eq!(session.handle(t0, Input::RetryNow), []);
        session.handle(t0, Input::ConnectFailed);
        session.handle(at(t0, 1.0), Input::Tick);
        session.handle(at(t0, 1.0), Input::ConnectFailed);
        assert!(session.next_deadline().unwrap() > at(t0, 2.0));
        // Waiting to connect again: now.
        assert_eq!(
            session.handle(at(t0, 1.5), Input::RetryNow),
            [Action::Connect]
        );
        assert_eq!(session.handle(at(t0, 1.5), Input::RetryNow), []);
        // A passive session still never connects.
        let mut passive = Session::new(SessionConfig {
            passive: true,
            ..config()
        })
        .unwrap();
        passive.handle(t0, Input::Start);
        assert_eq!(passive.handle(t0, Input::RetryNow), []);
    }

    #[test]
    fn a_passive_session_never_connects() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig {
            passive: true,
            ..config()
        })
        .unwrap();
        assert_eq!(session.handle(t0, Input::Start), []);
        assert_eq!(session.state(), State::Active);
        assert_eq!(session.next_deadline(), None);
        let actions = session.handle(t0, Input::Accepted(IN));
        assert_eq!(actions, [Action::Send(IN, session.open.clone())]);
        let actions = session.handle(t0, Input::Closed(IN));
        assert!(matches!(actions.as_slice(), [Action::Down(_)]));
        assert_eq!(session.next_deadline(), None);
        assert_eq!(session.handle(at(t0, 3600.0), Input::Tick), []);
    }

    #[test]
    fn connections_are_refused_before_start() {
        let t0 = Instant::now();
        let mut session = Session::new(config()).unwrap();
        assert_eq!(
            session.handle(t0, Input::Accepted(IN)),
            [Action::Disconnect(IN)]
        );
        assert_eq!(session.state(), State::Idle);
    }

    #[test]
    fn a_received_notification_ends_the_session_without_reply() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &frr_open(), t0);
        let shutdown = hex("
            ffffffff ffffffff ffffffff ffffffff 0021 03
            06 02 0b 6d61696e74656e616e6365
        ");
        let actions = feed(&mut session, t0, OUT, &shutdown);
        let received = notification(6, 2, b"\x0bmaintenance");
        assert_eq!(
            actions,
            [
                Action::Disconnect(OUT),
                Action::Down(Down {
                    reason: DownReason::Received(received),
                    was_established: true,
                    retain: None,
                }),
            ]
        );
        assert_eq!(
            down_of(&actions).reason.to_string(),
            "received NOTIFICATION Cease / Administrative Shutdown (6/2): \"maintenance\""
        );
    }

    #[test]
    fn notifications_read_as_words() {
        assert_eq!(
            describe(&notification(4, 0, &[])),
            "Hold Timer Expired (4/0)"
        );
        assert_eq!(
            describe(&notification(6, 7, &[])),
            "Cease / Connection Collision Resolution (6/7)"
        );
        assert_eq!(
            describe(&notification(6, 42, &[])),
            "Cease / subcode 42 (6/42)"
        );
        assert_eq!(
            describe(&notification(1, 2, &[0x10, 0x01])),
            "Message Header Error / Bad Message Length (1/2), data 1001"
        );
        assert_eq!(
            describe(&notification(9, 9, &[])),
            "unknown error code / subcode 9 (9/9)"
        );
        // A neighbor's code this speaker does not know still ends the session.
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = feed(
            &mut session,
            t0,
            OUT,
            &frame(message_type::NOTIFICATION, &[6, 42]),
        );
        assert_eq!(
            down_of(&actions).reason,
            DownReason::Received(notification(6, 42, &[]))
        );
    }

    #[test]
    fn malformed_headers_draw_message_header_errors() {
        let marker = "ffffffff ffffffff ffffffff ffffffff";
        let cases = [
            ("fe", notification(1, 1, &[])),
            (&format!("fffffffe {marker}"), notification(1, 1, &[])),
            (
                &format!("{marker} 0012 04"),
                notification(1, 2, &[0x00, 0x12]),
            ),
            (
                &format!("{marker} 1001 02"),
                notification(1, 2, &[0x10, 0x01]),
            ),
            (&format!("{marker} 0013 09"), notification(1, 3, &[9])),
            (
                &format!("{marker} 0014 04 00"),
                notification(1, 2, &[0x00, 0x14]),
            ),
            (
                &format!("{marker} 001c 01"),
                notification(1, 2, &[0x00, 0x1c]),
            ),
            (
                &format!("{marker} 0014 03 06"),
                notification(1, 2, &[0x00, 0x14]),
            ),
            (
                &format!("{marker} 0018 05"),
                notification(1, 2, &[0x00, 0x18]),
            ),
        ];
        let t0 = Instant::now();
        for (bytes, expected) in cases {
            let mut session = open_sent(config(), t0);
            let actions = feed(&mut session, t0, OUT, &hex(bytes));
            assert_eq!(actions, closed_with(OUT, expected, false), "{bytes}");
        }
        // The same when established, after good messages in the same read.
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let mut stream = keepalive_message();
        stream.extend(hex(&format!("{marker} 0013 09")));
        let actions = session.handle(t0, Input::Received(OUT, &stream));
        assert_eq!(actions, closed_with(OUT, notification(1, 3, &[9]), true));
    }

    #[test]
    fn unexpected_messages_draw_fsm_errors() {
        let t0 = Instant::now();
        let mut session = open_sent(config(), t0);
        let actions = feed(&mut session, t0, OUT, &keepalive_message());
        assert_eq!(actions, closed_with(OUT, notification(5, 1, &[]), false));

        let mut session = open_sent(config(), t0);
        feed(&mut session, t0, OUT, &plain_open(90));
        let actions = feed(
            &mut session,
            t0,
            OUT,
            &frame(message_type::UPDATE, &[0, 0, 0, 0]),
        );
        assert_eq!(actions, closed_with(OUT, notification(5, 2, &[]), false));

        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = feed(&mut session, t0, OUT, &plain_open(90));
        assert_eq!(actions, closed_with(OUT, notification(5, 3, &[]), true));
    }

    #[test]
    fn routes_are_retained_on_hold_expiry_and_close_when_the_neighbor_can_restart() {
        let t0 = Instant::now();
        let retention = Some(Retention {
            families: vec![V4, V6],
            duration: Duration::from_secs(120),
        });
        let (mut session, _) = establish(config(), &frr_open(), t0);
        let actions = session.handle(at(t0, 90.0), Input::Tick);
        let down = down_of(&actions);
        assert_eq!(down.reason, DownReason::Sent(notification(4, 0, &[])));
        assert_eq!(down.retain, retention);

        let (mut session, _) = establish(config(), &frr_open(), t0);
        let actions = session.handle(at(t0, 10.0), Input::Closed(OUT));
        assert_eq!(down_of(&actions).retain, retention);
    }

    #[test]
    fn routes_are_not_retained_without_graceful_restart_on_both_sides() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = session.handle(at(t0, 90.0), Input::Tick);
        assert_eq!(down_of(&actions).retain, None);

        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = session.handle(t0, Input::Closed(OUT));
        assert_eq!(down_of(&actions).retain, None);

        // We did not announce it: we do not help either.
        let without = SessionConfig {
            graceful_restart: None,
            ..config()
        };
        let (mut session, _) = establish(without, &frr_open(), t0);
        let actions = session.handle(t0, Input::Closed(OUT));
        assert_eq!(down_of(&actions).retain, None);
    }

    #[test]
    fn routes_are_not_retained_after_a_notification() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &frr_open(), t0);
        let actions = feed(
            &mut session,
            t0,
            OUT,
            &frame(message_type::NOTIFICATION, &[6, 4]),
        );
        assert_eq!(down_of(&actions).retain, None);

        let (mut session, _) = establish(config(), &frr_open(), t0);
        let actions = session.handle(t0, Input::Reset(notification(3, 1, &[])));
        assert_eq!(down_of(&actions).retain, None);

        let (mut session, _) = establish(config(), &frr_open(), t0);
        let actions = session.handle(t0, Input::Stop);
        assert_eq!(down_of(&actions).retain, None);
    }

    #[test]
    fn retained_families_are_those_the_neighbor_listed() {
        let t0 = Instant::now();
        let ipv4_restarts = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![
                multiprotocol(V4),
                multiprotocol(V6),
                graceful_restart(false, 30, &[V4]),
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        );
        let (mut session, _) = establish(config(), &ipv4_restarts, t0);
        let actions = session.handle(t0, Input::Closed(OUT));
        assert_eq!(
            down_of(&actions).retain,
            Some(Retention {
                families: vec![V4],
                duration: Duration::from_secs(30),
            })
        );
        // A helper that lists no family keeps nothing of its own.
        let helper = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![
                graceful_restart(false, 120, &[]),
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        );
        let (mut session, negotiated) = establish(config(), &helper, t0);
        assert!(negotiated.peer_graceful_restart.is_some());
        let actions = session.handle(t0, Input::Closed(OUT));
        assert_eq!(down_of(&actions).retain, None);
    }

    #[test]
    fn updates_go_up_as_bodies_and_down_as_whole_messages() {
        let t0 = Instant::now();
        let update = frame(message_type::UPDATE, &[0, 0, 0, 0]);
        let mut session = open_sent(config(), t0);
        assert_eq!(session.handle(t0, Input::SendUpdate(update.clone())), []);

        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let mut stream = update.clone();
        stream.extend(frame(message_type::UPDATE, &[0, 0, 0, 3, 0x40, 1, 1, 0]));
        assert_eq!(
            feed(&mut session, t0, OUT, &stream),
            [
                Action::Update(vec![0, 0, 0, 0]),
                Action::Update(vec![0, 0, 0, 3, 0x40, 1, 1, 0]),
            ]
        );
        assert_eq!(
            session.handle(t0, Input::SendUpdate(update.clone())),
            [Action::Send(OUT, update)]
        );
        // Not a whole UPDATE: dropped.
        assert_eq!(session.handle(t0, Input::SendUpdate(vec![0, 0, 0, 0])), []);
        assert_eq!(
            session.handle(t0, Input::SendUpdate(keepalive_message())),
            []
        );
    }

    /// A neighbor like `plain_open`, with extended messages.
    fn extended_open() -> Vec<u8> {
        open(
            PEER_AS,
            90,
            PEER_ID,
            vec![
                multiprotocol(V4),
                multiprotocol(V6),
                BgpCapability::ExtendedMessage,
                BgpCapability::FourOctetAs(FourOctetAsCapability::new(PEER_AS)),
            ],
        )
    }

    /// An UPDATE of `length` octets in all (an unknown optional attribute
    /// fills it; the session does not read bodies).
    fn update_of(length: usize) -> Vec<u8> {
        let value = length - HEADER_LEN - 4 - 4;
        let mut body = vec![0, 0];
        body.extend_from_slice(&((value + 4) as u16).to_be_bytes());
        body.extend_from_slice(&[0xd0, 99]);
        body.extend_from_slice(&(value as u16).to_be_bytes());
        body.resize(body.len() + value, 0);
        let message = frame(message_type::UPDATE, &body);
        assert_eq!(message.len(), length);
        message
    }

    #[test]
    fn extended_messages_are_offered_and_need_both_sides() {
        let t0 = Instant::now();
        let extended = SessionConfig {
            extended_messages: true,
            ..config()
        };
        // Offered: capability 6 with no value, in our OPEN.
        let ours = open_message(&extended);
        let parameters = &ours[HEADER_LEN + 10..];
        let (_, codes) = capabilities_in(parameters);
        assert!(codes.contains(&EXTENDED_MESSAGE_CAPABILITY), "{codes:?}");
        assert!(
            !capabilities_in(&open_message(&config())[HEADER_LEN + 10..])
                .1
                .contains(&6)
        );

        let (_, negotiated) = establish(extended.clone(), &extended_open(), t0);
        assert!(negotiated.extended_messages);
        assert_eq!(negotiated.max_message_len(), 65535);
        let (_, negotiated) = establish(extended, &plain_open(90), t0);
        assert!(!negotiated.extended_messages);
        assert_eq!(negotiated.max_message_len(), 4096);
        let (_, negotiated) = establish(config(), &extended_open(), t0);
        assert!(!negotiated.extended_messages);
    }

    #[test]
    fn large_updates_both_ways_with_extended_messages() {
        let t0 = Instant::now();
        let extended = SessionConfig {
            extended_messages: true,
            ..config()
        };
        let (mut session, _) = establish(extended, &extended_open(), t0);
        for length in [4097, 20_000, 65535] {
            let update = update_of(length);
            let actions = feed(&mut session, t0, OUT, &update);
            assert_eq!(
                actions,
                [Action::Update(update[HEADER_LEN..].to_vec())],
                "{length}"
            );
            assert_eq!(
                session.handle(t0, Input::SendUpdate(update.clone())),
                [Action::Send(OUT, update)],
                "{length}"
            );
        }
        // KEEPALIVE stays 19 octets, OPEN (refused here anyway) 4096.
        let mut long_open = frame(message_type::OPEN, &[0; 4097 - HEADER_LEN]);
        long_open.truncate(HEADER_LEN);
        let actions = feed(&mut session, t0, OUT, &long_open);
        assert_eq!(
            actions,
            closed_with(OUT, notification(1, 2, &[0x10, 0x01]), true)
        );
    }

    #[test]
    fn an_update_over_4096_octets_without_extended_messages_is_a_bad_length() {
        let t0 = Instant::now();
        // We offered, the neighbor did not: not negotiated.
        let extended = SessionConfig {
            extended_messages: true,
            ..config()
        };
        let (mut session, _) = establish(extended, &plain_open(90), t0);
        let update = update_of(4097);
        // Refused before the body arrives: the header is enough.
        let actions = feed(&mut session, t0, OUT, &update[..HEADER_LEN]);
        assert_eq!(
            actions,
            closed_with(OUT, notification(1, 2, &[0x10, 0x01]), true)
        );
        // Nor do we send one.
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        assert_eq!(session.handle(t0, Input::SendUpdate(update_of(4097))), []);
        let fits = update_of(4096);
        assert_eq!(
            session.handle(t0, Input::SendUpdate(fits.clone())),
            [Action::Send(OUT, fits)]
        );
    }

    #[test]
    fn route_refresh_both_ways() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let refresh_ipv6 = route_refresh_message(V6);
        assert_eq!(
            feed(&mut session, t0, OUT, &refresh_ipv6),
            [Action::RouteRefresh(V6)]
        );
        let actions = session.handle(t0, Input::RequestRefresh(V4));
        let [Action::Send(OUT, bytes)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        let mut context = BgpParsingContext::default();
        let Ok(BgpMessage::RouteRefresh(refresh)) =
            BgpMessage::parse(&mut SliceReader::new(bytes), &mut context)
        else {
            panic!("not a ROUTE-REFRESH");
        };
        assert_eq!(refresh.address_type(), AddressType::Ipv4Unicast);

        // A family that was not negotiated, or a neighbor without the
        // capability: nothing.
        let ipv4_only = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![multiprotocol(V4), BgpCapability::RouteRefresh],
        );
        let (mut session, _) = establish(
            SessionConfig {
                remote_as: 23456,
                ..config()
            },
            &ipv4_only,
            t0,
        );
        assert_eq!(feed(&mut session, t0, OUT, &refresh_ipv6), []);
        assert_eq!(session.handle(t0, Input::RequestRefresh(V6)), []);
        let (mut session, _) = establish(config(), &frr_open(), t0);
        assert_eq!(session.handle(t0, Input::RequestRefresh(V6)).len(), 1);
        let no_refresh = open(
            PEER_AS,
            90,
            PEER_ID,
            vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
                PEER_AS,
            ))],
        );
        let (mut session, _) = establish(config(), &no_refresh, t0);
        assert_eq!(session.handle(t0, Input::RequestRefresh(V4)), []);
    }

    #[test]
    fn stop_sends_cease_administrative_shutdown() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let actions = session.handle(t0, Input::Stop);
        assert_eq!(actions, closed_with(OUT, notification(6, 2, &[]), true));
        assert_eq!(session.state(), State::Idle);
        assert_eq!(session.next_deadline(), None);

        let mut session = Session::new(config()).unwrap();
        session.handle(t0, Input::Start);
        assert_eq!(session.handle(t0, Input::Stop), [Action::CancelConnect]);
        assert_eq!(session.next_deadline(), None);
        assert_eq!(session.handle(t0, Input::Start), [Action::Connect]);
    }

    #[test]
    fn stop_reports_the_established_session_once() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        session.handle(t0, Input::Accepted(IN));
        let actions = session.handle(t0, Input::Stop);
        let downs: Vec<&Down> = actions
            .iter()
            .filter_map(|action| match action {
                Action::Down(down) => Some(down),
                _ => None,
            })
            .collect();
        assert_eq!(downs.len(), 1);
        assert!(downs[0].was_established);
        assert!(actions.contains(&Action::Disconnect(IN)));
        assert!(actions.contains(&Action::Disconnect(OUT)));
    }

    #[test]
    fn reset_from_update_sends_its_notification() {
        let t0 = Instant::now();
        let (mut session, _) = establish(config(), &plain_open(90), t0);
        let malformed = notification(3, 1, &[]);
        let actions = session.handle(t0, Input::Reset(malformed.clone()));
        assert_eq!(actions, closed_with(OUT, malformed, true));
    }

    #[test]
    fn config_is_checked() {
        let refused = |config: SessionConfig| Session::new(config).unwrap_err();
        assert_eq!(
            refused(SessionConfig {
                hold_time: 2,
                ..config()
            }),
            ConfigError::HoldTime(2)
        );
        assert_eq!(
            refused(SessionConfig {
                router_id: Ipv4Addr::UNSPECIFIED,
                ..config()
            }),
            ConfigError::RouterId
        );
        assert_eq!(
            refused(SessionConfig {
                families: vec![],
                ..config()
            }),
            ConfigError::NoFamily
        );
        assert_eq!(
            refused(SessionConfig {
                graceful_restart: Some(GracefulRestartConfig {
                    restart_time: 4096,
                    restarting: false,
                    forwarding_preserved: false,
                }),
                ..config()
            }),
            ConfigError::RestartTime(4096)
        );
        assert!(
            Session::new(SessionConfig {
                hold_time: 0,
                ..config()
            })
            .is_ok()
        );
    }
}
