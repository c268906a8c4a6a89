//! The router's side of RTR over several caches (RFC 8210 with fallback
//! to RFC 6810), without I/O: connection events, received bytes and time
//! go in through [`Client::handle`]; connects, bytes to send, closes and
//! VRP updates come out as [`Action`]s.
//!
//! Caches are ranked by preference (lower first), then by their order in
//! the config. The client keeps the VRPs of one cache, the *source*. While
//! the source is connected and synchronised it *serves*: only caches
//! ranked above it are (re)connected, and one that completes a Reset
//! Query becomes the source in its place (its whole set replaces the old
//! one) and the lesser one is closed. When no cache serves, every cache
//! is tried, with a backoff that doubles from a second up to the retry
//! interval (60 s at most), and the data kept stays in use until the
//! source's expire interval has passed since its last End of Data: then
//! the data expires (an empty reset goes out) and every route is not
//! found again (RFC 8210 6).
//!
//! Each connection starts with a Reset Query, or a Serial Query to the
//! source whose session and serial the client knows. A Serial Notify, and
//! the refresh interval after each End of Data, bring a Serial Query.
//! Prefix PDUs are kept until End of Data and then handed over together
//! (RFC 8210 5.8). Version 1 is asked first; a cache that answers with
//! Unsupported Protocol Version is asked again in version 0 on a new
//! connection, and one that answers a version 1 query in version 0 is
//! spoken to in version 0 (RFC 8210 7). The intervals are those of the
//! last version 1 End of Data, RFC 8210's defaults otherwise.

use std::time::{Duration, Instant};

use crate::pdu::{ErrorCode, Intervals, Pdu, VERSION_0, VERSION_1};
use crate::vrp::{Vrp, VrpUpdate};

/// The first wait before reconnecting, doubled at each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting, whatever the retry interval.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The client's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// Each cache's preference (lower is preferred), in config order; a
    /// cache is named by its index here.
    pub preferences: Vec<u8>,
    /// Replaces the caches' expire interval when set.
    pub expire: Option<Duration>,
}

/// What goes into the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Begin: connect to the caches.
    Start,
    Connected(usize),
    ConnectFailed(usize),
    Received(usize, &'a [u8]),
    /// The cache closed the connection (or it broke).
    Closed(usize),
    /// Time passed (see [`Client::next_deadline`]).
    Tick,
}

/// What the client asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Connect(usize),
    Send(usize, Vec<u8>),
    /// Close the connection (after sending what was asked before).
    Close(usize),
    /// The VRPs to validate with changed.
    Update(VrpUpdate),
}

/// A cache's connection as `wgd rpki` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Not connected (and not wanted while a better cache serves).
    Down,
    Connecting,
    /// Connected, its data not complete yet.
    Syncing,
    /// Connected and synchronised.
    Up,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Down => "down",
            ServerState::Connecting => "connecting",
            ServerState::Syncing => "syncing",
            ServerState::Up => "up",
        }
    }
}

/// One cache, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub preference: u8,
    pub state: ServerState,
    /// The VRPs in use came from this cache.
    pub source: bool,
    pub version: u8,
    pub session: Option<u16>,
    pub serial: Option<u32>,
    pub last_update: Option<Instant>,
    pub intervals: Intervals,
    pub last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    Open,
}

/// A Cache Response's data until its End of Data.
#[derive(Debug)]
struct Pending {
    reset: bool,
    session: u16,
    vrps: Vec<(Vrp, bool)>,
}

#[derive(Debug)]
struct Server {
    preference: u8,
    link: Link,
    /// The version to speak (1 until the cache says otherwise).
    version: u8,
    /// The connection's first PDU came: the version is settled.
    agreed: bool,
    /// This connection has had an End of Data.
    synced: bool,
    buffer: Vec<u8>,
    session: Option<u16>,
    serial: Option<u32>,
    intervals: Intervals,
    pending: Option<Pending>,
    /// A query is out (since then); answered at End of Data.
    query_sent: Option<Instant>,
    /// The query was a Reset Query.
    query_reset: bool,
    next_query: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_update: Option<Instant>,
    last_error: String,
}

/// The RTR client (see the module comment).
#[derive(Debug)]
pub struct Client {
    servers: Vec<Server>,
    /// The cache the VRPs in use came from.
    source: Option<usize>,
    /// When the VRPs in use expire.
    expire_at: Option<Instant>,
    expire: Option<Duration>,
}

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value.max(1)))
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        let servers = config
            .preferences
            .iter()
            .map(|&preference| Server {
                preference,
                link: Link::Down,
                version: VERSION_1,
                agreed: false,
                synced: false,
                buffer: Vec::new(),
                session: None,
                serial: None,
                intervals: Intervals::default(),
                pending: None,
                query_sent: None,
                query_reset: false,
                next_query: None,
                retry_at: None,
                backoff: FIRST_BACKOFF,
                last_update: None,
                last_error: String::new(),
            })
            .collect();
        Self {
            servers,
            source: None,
            expire_at: None,
            expire: config.expire,
        }
    }

    fn rank(&self, server: usize) -> (u8, usize) {
        (self.servers[server].preference, server)
    }

    /// The source, when it is connected and synchronised.
    fn serving(&self) -> Option<usize> {
        self.source.filter(|&source| {
            self.servers[source].link == Link::Open && self.servers[source].synced
        })
    }

    /// Whether a cache should be connected now.
    fn wanted(&self, server: usize) -> bool {
        self.serving()
            .is_none_or(|serving| self.rank(server) <= self.rank(serving))
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Start => {
                for server in &mut self.servers {
                    server.retry_at = Some(now);
                }
            }
            Input::Connected(server) if server < self.servers.len() => {
                let entry = &mut self.servers[server];
                entry.link = Link::Open;
                entry.agreed = false;
                entry.synced = false;
                entry.buffer.clear();
                entry.pending = None;
                entry.retry_at = None;
                self.query(server, now, &mut actions);
            }
            Input::ConnectFailed(server) if server < self.servers.len() => {
                self.servers[server].last_error = "cannot connect".into();
                self.down(server, now, false);
            }
            Input::Closed(server)
                if self
                    .servers
                    .get(server)
                    .is_some_and(|s| s.link == Link::Open) =>
            {
                self.down(server, now, false);
            }
            Input::Received(server, bytes)
                if self
                    .servers
                    .get(server)
                    .is_some_and(|s| s.link == Link::Open) =>
            {
                self.servers[server].buffer.extend_from_slice(bytes);
                self.read(server, now, &mut actions);
            }
            _ => {}
        }
        self.poll(now, &mut actions);
        actions
    }

    /// The next time [`Input::Tick`] is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let servers = self.servers.iter().enumerate().flat_map(|(index, server)| {
            let retry = (server.link == Link::Down && self.wanted(index))
                .then_some(server.retry_at)
                .flatten();
            let open = server.link == Link::Open;
            let query = open.then_some(server.next_query).flatten();
            let timeout = open
                .then(|| {
                    server
                        .query_sent
                        .map(|sent| sent + seconds(server.intervals.retry))
                })
                .flatten();
            [retry, query, timeout]
        });
        servers.chain([self.expire_at]).flatten().min()
    }

    /// Every cache, in config order.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .enumerate()
            .map(|(index, server)| ServerStatus {
                preference: server.preference,
                state: match server.link {
                    Link::Down => ServerState::Down,
                    Link::Connecting => ServerState::Connecting,
                    Link::Open if server.synced => ServerState::Up,
                    Link::Open => ServerState::Syncing,
                },
                source: self.source == Some(index),
                version: server.version,
                session: server.session,
                serial: server.serial,
                last_update: server.last_update,
                intervals: server.intervals,
                last_error: server.last_error.clone(),
            })
            .collect()
    }

    /// Timers, connects and closes that are due.
    fn poll(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.expire_at.is_some_and(|at| at <= now) {
            self.expire_at = None;
            if let Some(source) = self.source.take() {
                self.servers[source].serial = None;
                self.servers[source].session = None;
            }
            actions.push(Action::Update(VrpUpdate::Reset(Vec::new())));
        }
        for server in 0..self.servers.len() {
            let wanted = self.wanted(server);
            let entry = &mut self.servers[server];
            match entry.link {
                Link::Down if wanted => {
                    let due = *entry.retry_at.get_or_insert(now);
                    if due <= now {
                        entry.link = Link::Connecting;
                        entry.retry_at = None;
                        actions.push(Action::Connect(server));
                    }
                }
                Link::Open if !wanted => {
                    actions.push(Action::Close(server));
                    entry.link = Link::Down;
                    entry.retry_at = None;
                    entry.pending = None;
                    entry.query_sent = None;
                }
                Link::Open => {
                    let timed_out = entry
                        .query_sent
                        .is_some_and(|sent| sent + seconds(entry.intervals.retry) <= now);
                    if timed_out {
                        entry.last_error = "no answer to a query".into();
                        actions.push(Action::Close(server));
                        self.down(server, now, false);
                    } else if entry.query_sent.is_none()
                        && entry.next_query.is_some_and(|at| at <= now)
                    {
                        self.query(server, now, actions);
                    }
                }
                Link::Down | Link::Connecting => {}
            }
        }
    }

    /// Sends a query: a Serial Query to the source whose session and
    /// serial are known, a Reset Query otherwise.
    fn query(&mut self, server: usize, now: Instant, actions: &mut Vec<Action>) {
        let is_source = self.source == Some(server);
        let entry = &mut self.servers[server];
        let pdu = match (is_source, entry.session, entry.serial) {
            (true, Some(session), Some(serial)) => Pdu::SerialQuery { session, serial },
            _ => Pdu::ResetQuery,
        };
        entry.query_reset = pdu == Pdu::ResetQuery;
        entry.query_sent = Some(now);
        entry.next_query = None;
        actions.push(Action::Send(server, pdu.encode(entry.version)));
    }

    /// The connection is gone: reconnect after the backoff (at once when
    /// `now_again`, for a version fallback).
    fn down(&mut self, server: usize, now: Instant, now_again: bool) {
        let entry = &mut self.servers[server];
        entry.link = Link::Down;
        entry.pending = None;
        entry.query_sent = None;
        entry.next_query = None;
        entry.buffer = Vec::new();
        if now_again {
            entry.retry_at = Some(now);
        } else {
            entry.retry_at = Some(now + entry.backoff);
            let cap = seconds(entry.intervals.retry).min(MAX_BACKOFF);
            entry.backoff = (entry.backoff * 2).min(cap).max(FIRST_BACKOFF);
        }
    }

    /// Reports an error to the cache and closes the connection.
    fn fail(
        &mut self,
        server: usize,
        now: Instant,
        code: ErrorCode,
        pdu: Vec<u8>,
        text: String,
        actions: &mut Vec<Action>,
    ) {
        let version = self.servers[server].version;
        actions.push(Action::Send(
            server,
            Pdu::ErrorReport {
                code,
                pdu,
                text: text.clone(),
            }
            .encode(version),
        ));
        actions.push(Action::Close(server));
        self.servers[server].last_error = text;
        self.down(server, now, false);
    }

    /// Decodes and takes the PDUs buffered from a cache. What is taken
    /// leaves the buffer once at the end (a full set is half a million
    /// PDUs in a few hundred reads: not a move of the buffer each).
    fn read(&mut self, server: usize, now: Instant, actions: &mut Vec<Action>) {
        let mut buffer = std::mem::take(&mut self.servers[server].buffer);
        let mut at = 0;
        while self.servers[server].link == Link::Open {
            match Pdu::decode(&buffer[at..]) {
                Ok(None) => break,
                Ok(Some((version, pdu, used))) => {
                    at += used;
                    self.take(server, now, version, pdu, actions);
                }
                Err(error) => {
                    let quoted = buffer[at..buffer.len().min(at + 8)].to_vec();
                    self.fail(
                        server,
                        now,
                        error.code(),
                        quoted,
                        error.to_string(),
                        actions,
                    );
                    return;
                }
            }
        }
        // A connection closed meanwhile starts again with an empty buffer.
        if self.servers[server].link == Link::Open {
            buffer.drain(..at);
            self.servers[server].buffer = buffer;
        }
    }

    fn take(
        &mut self,
        server: usize,
        now: Instant,
        version: u8,
        pdu: Pdu,
        actions: &mut Vec<Action>,
    ) {
        let entry = &mut self.servers[server];
        // A version 0 cache refuses a version 1 query this way and closes
        // (RFC 8210 7): ask again in version 0.
        if let Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            ..
        } = pdu
            && entry.version == VERSION_1
            && !entry.agreed
        {
            entry.version = VERSION_0;
            entry.last_error = "cache speaks RTR version 0".into();
            actions.push(Action::Close(server));
            self.down(server, now, true);
            return;
        }
        if !entry.agreed && version < entry.version {
            entry.version = version;
        }
        if version != entry.version {
            let quoted = pdu.encode(version);
            let text = format!(
                "PDU of version {version} in a version {} session",
                entry.version
            );
            self.fail(
                server,
                now,
                ErrorCode::UnexpectedProtocolVersion,
                quoted,
                text,
                actions,
            );
            return;
        }
        entry.agreed = true;
        match pdu {
            Pdu::SerialNotify { .. } => {
                if entry.synced && entry.query_sent.is_none() && self.source == Some(server) {
                    self.query(server, now, actions);
                }
            }
            Pdu::CacheResponse { session } => {
                if !entry.query_reset && entry.session != Some(session) {
                    // The cache restarted under a new session: its serials
                    // mean nothing now.
                    entry.session = None;
                    entry.serial = None;
                    self.query(server, now, actions);
                    return;
                }
                entry.pending = Some(Pending {
                    reset: entry.query_reset,
                    session,
                    vrps: Vec::new(),
                });
            }
            Pdu::Prefix { announce, vrp } => match &mut entry.pending {
                // A reset's answer only announces.
                Some(pending) if !pending.reset || announce => {
                    pending.vrps.push((vrp, announce));
                }
                _ => {
                    let quoted = Pdu::Prefix { announce, vrp }.encode(version);
                    self.fail(
                        server,
                        now,
                        ErrorCode::CorruptData,
                        quoted,
                        "prefix outside a cache response".into(),
                        actions,
                    );
                }
            },
            Pdu::EndOfData {
                session,
                serial,
                intervals,
            } => {
                let Some(pending) = entry.pending.take().filter(|p| p.session == session) else {
                    let quoted = Pdu::EndOfData {
                        session,
                        serial,
                        intervals,
                    }
                    .encode(version);
                    self.fail(
                        server,
                        now,
                        ErrorCode::CorruptData,
                        quoted,
                        "end of data outside its cache response".into(),
                        actions,
                    );
                    return;
                };
                self.end_of_data(server, now, pending, serial, intervals, actions);
            }
            Pdu::CacheReset => {
                // The data in use stays until the new set is complete.
                entry.session = None;
                entry.serial = None;
                entry.pending = None;
                entry.query_reset = true;
                entry.query_sent = Some(now);
                actions.push(Action::Send(server, Pdu::ResetQuery.encode(entry.version)));
            }
            Pdu::RouterKey => {}
            Pdu::ErrorReport { code, text, .. } => {
                entry.last_error = format!("cache reports {code}: {text}");
                if code == ErrorCode::NoDataAvailable {
                    // Not ready yet: ask again after the retry interval.
                    entry.query_sent = None;
                    entry.next_query = Some(now + seconds(entry.intervals.retry));
                } else {
                    actions.push(Action::Close(server));
                    self.down(server, now, false);
                }
            }
            Pdu::SerialQuery { .. } | Pdu::ResetQuery => {
                let quoted = pdu.encode(version);
                self.fail(
                    server,
                    now,
                    ErrorCode::InvalidRequest,
                    quoted,
                    "a query from the cache".into(),
                    actions,
                );
            }
        }
    }

    fn end_of_data(
        &mut self,
        server: usize,
        now: Instant,
        pending: Pending,
        serial: u32,
        intervals: Option<Intervals>,
        actions: &mut Vec<Action>,
    ) {
        let entry = &mut self.servers[server];
        entry.session = Some(pending.session);
        entry.serial = Some(serial);
        if let Some(intervals) = intervals {
            entry.intervals = intervals;
        }
        entry.synced = true;
        entry.query_sent = None;
        entry.next_query = Some(now + seconds(entry.intervals.refresh));
        entry.backoff = FIRST_BACKOFF;
        entry.last_update = Some(now);
        entry.last_error.clear();
        let expire = self
            .expire
            .unwrap_or_else(|| seconds(entry.intervals.expire));
        if pending.reset {
            // A complete set: it replaces what is in use when it comes from
            // a cache ranked at least as high as the one serving.
            if self.wanted(server) {
                let vrps = pending.vrps.into_iter().map(|(vrp, _)| vrp).collect();
                actions.push(Action::Update(VrpUpdate::Reset(vrps)));
                self.source = Some(server);
                self.expire_at = Some(now + expire);
            }
        } else if self.source == Some(server) {
            if !pending.vrps.is_empty() {
                actions.push(Action::Update(VrpUpdate::Delta(pending.vrps)));
            }
            self.expire_at = Some(now + expire);
        }
    }
}

#[cfg(test)]
mod tests;
