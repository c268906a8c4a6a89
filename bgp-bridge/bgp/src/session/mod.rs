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

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netgauze_bgp_pkt::capabilities::BgpCapability;
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_iana::address_family::{AddressFamily, AddressType};
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFrom;
use tracing::{debug, info, warn};

use crate::packet::HEADER_LEN;
pub use crate::packet::message::describe;
use crate::packet::message::*;
use crate::packet::open::*;
use crate::types::{Asn, Family, GracefulRestart, MAX_MESSAGE_LEN, Negotiated, Notification};

/// Hold time while waiting for the neighbor's OPEN (RFC 4271 8.2.2
/// suggests 4 minutes).
const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);
/// The longest wait between two connection attempts (unless
/// `connect_retry` itself is longer).
const CONNECT_RETRY_CAP: Duration = Duration::from_secs(60);
/// The restart time is a 12-bit field (RFC 4724 3).
const MAX_RESTART_TIME: u16 = 0x0fff;
/// Capability code of MP-BGP (RFC 4760 8).
const MULTIPROTOCOL_CAPABILITY: u8 = 1;
/// Capability code of extended messages (RFC 8654 3).
const EXTENDED_MESSAGE_CAPABILITY: u8 = 6;

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

#[cfg(test)]
mod tests;
