//! RPKI for the speaker: the `wgd-rtr` client over TCP to the configured
//! caches. The speaker's task owns an [`Rpki`]; the connections are small
//! tasks around it that only move bytes, and tell it what happened
//! through the callback it was made with ([`RpkiEvent`]s, tagged with the
//! connect attempt or connection they belong to, so that news from a
//! connection already given up is dropped).
//!
//! In: the events and the clock. Out: the [`VrpUpdate`]s of the client,
//! which the speaker applies to the `LocRib` (it holds the VRP table and
//! validates its paths against it), and the status `wgd rpki` shows.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wgd_rtr::{Action, Client, ClientConfig, Input, VrpTable, VrpUpdate};

/// A connect that has not succeeded by then has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[rpki]`: the caches, and the expire interval if it is set here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiConfig {
    pub servers: Vec<RpkiServer>,
    /// Replaces the caches' expire interval (RFC 8210 6).
    pub expire: Option<Duration>,
}

/// `[[rpki.server]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiServer {
    pub address: SocketAddr,
    /// Lower is preferred.
    pub preference: u8,
}

/// One cache as `wgd rpki` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiServerStatus {
    pub address: SocketAddr,
    pub preference: u8,
    /// down, connecting, syncing, up.
    pub state: &'static str,
    /// The VRPs in use came from it.
    pub source: bool,
    pub version: u8,
    pub session: Option<u16>,
    pub serial: Option<u32>,
    pub last_update: Option<SystemTime>,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub last_error: String,
}

/// Origin validation as `wgd rpki` and the metrics show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpkiStatus {
    pub servers: Vec<RpkiServerStatus>,
    pub vrps_ipv4: usize,
    pub vrps_ipv6: usize,
    /// Received paths valid, invalid and not found, as last counted.
    pub routes: [usize; 3],
}

/// What the connections tell the speaker's task.
#[derive(Debug)]
pub enum RpkiEvent {
    Connected(usize, u64, TcpStream),
    ConnectFailed(usize, u64, String),
    Received(usize, u64, Vec<u8>),
    Closed(usize, u64),
}

enum Outgoing {
    Bytes(Vec<u8>),
    Close,
}

/// A cache's connection: the attempt or connection the events must name.
#[derive(Debug, Default)]
struct Connection {
    number: u64,
    writer: Option<mpsc::UnboundedSender<Outgoing>>,
    reader: Option<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outgoing::Bytes(bytes) => write!(f, "Bytes({})", bytes.len()),
            Outgoing::Close => f.write_str("Close"),
        }
    }
}

type Notify = std::sync::Arc<dyn Fn(RpkiEvent) + Send + Sync>;

/// The RTR client and its connections (see the module comment).
pub struct Rpki {
    client: Client,
    servers: Vec<RpkiServer>,
    connections: Vec<Connection>,
    next_number: u64,
    notify: Notify,
}

impl std::fmt::Debug for Rpki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpki")
            .field("client", &self.client)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Rpki {
    pub fn new(config: &RpkiConfig, notify: impl Fn(RpkiEvent) + Send + Sync + 'static) -> Self {
        let client = Client::new(ClientConfig {
            preferences: config
                .servers
                .iter()
                .map(|server| server.preference)
                .collect(),
            expire: config.expire,
        });
        Self {
            client,
            servers: config.servers.clone(),
            connections: config
                .servers
                .iter()
                .map(|_| Connection::default())
                .collect(),
            next_number: 1,
            notify: std::sync::Arc::new(notify),
        }
    }

    pub fn start(&mut self) -> Vec<VrpUpdate> {
        self.drive(Input::Start)
    }

    pub fn tick(&mut self) -> Vec<VrpUpdate> {
        self.drive(Input::Tick)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.client.next_deadline().map(Instant::from_std)
    }

    pub fn event(&mut self, event: RpkiEvent) -> Vec<VrpUpdate> {
        match event {
            RpkiEvent::Connected(server, number, stream) => {
                if !self.current(server, number) {
                    return Vec::new();
                }
                self.open(server, stream);
                self.drive(Input::Connected(server))
            }
            RpkiEvent::ConnectFailed(server, number, reason) => {
                if !self.current(server, number) {
                    return Vec::new();
                }
                tracing::debug!(server = %self.servers[server].address, %reason, "cannot connect to the RPKI cache");
                self.drive(Input::ConnectFailed(server))
            }
            RpkiEvent::Received(server, number, bytes) => {
                if !self.current(server, number) {
                    return Vec::new();
                }
                self.drive(Input::Received(server, &bytes))
            }
            RpkiEvent::Closed(server, number) => {
                if !self.current(server, number) {
                    return Vec::new();
                }
                self.connections[server].writer = None;
                self.connections[server].reader = None;
                tracing::info!(server = %self.servers[server].address, "RPKI cache connection closed");
                self.drive(Input::Closed(server))
            }
        }
    }

    /// The caches and the table's counts (the route counts are the
    /// caller's).
    pub fn status(&self, table: Option<&VrpTable>, routes: [usize; 3]) -> RpkiStatus {
        let now = std::time::Instant::now();
        let wall = SystemTime::now();
        let (vrps_ipv4, vrps_ipv6) = table.map(VrpTable::counts).unwrap_or_default();
        RpkiStatus {
            servers: self
                .client
                .status()
                .into_iter()
                .zip(&self.servers)
                .map(|(status, server)| RpkiServerStatus {
                    address: server.address,
                    preference: status.preference,
                    state: status.state.as_str(),
                    source: status.source,
                    version: status.version,
                    session: status.session,
                    serial: status.serial,
                    last_update: status
                        .last_update
                        .map(|at| wall - now.saturating_duration_since(at)),
                    refresh: status.intervals.refresh,
                    retry: status.intervals.retry,
                    expire: status.intervals.expire,
                    last_error: status.last_error,
                })
                .collect(),
            vrps_ipv4,
            vrps_ipv6,
            routes,
        }
    }

    fn current(&self, server: usize, number: u64) -> bool {
        self.connections
            .get(server)
            .is_some_and(|connection| connection.number == number)
    }

    fn drive(&mut self, input: Input<'_>) -> Vec<VrpUpdate> {
        let actions = self.client.handle(std::time::Instant::now(), input);
        let mut updates = Vec::new();
        for action in actions {
            match action {
                Action::Connect(server) => self.connect(server),
                Action::Send(server, bytes) => {
                    if let Some(writer) = &self.connections[server].writer {
                        let _ = writer.send(Outgoing::Bytes(bytes));
                    }
                }
                Action::Close(server) => {
                    if let Some(writer) = self.connections[server].writer.take() {
                        let _ = writer.send(Outgoing::Close);
                    }
                    if let Some(reader) = self.connections[server].reader.take() {
                        reader.abort();
                    }
                    // Whatever the closed connection still says is old news.
                    self.connections[server].number = self.next_number;
                    self.next_number += 1;
                }
                Action::Update(update) => updates.push(update),
            }
        }
        updates
    }

    fn connect(&mut self, server: usize) {
        let number = self.next_number;
        self.next_number += 1;
        let connection = &mut self.connections[server];
        connection.number = number;
        connection.writer = None;
        let address = self.servers[server].address;
        let notify = self.notify.clone();
        tokio::spawn(async move {
            let event =
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
                    Ok(Ok(stream)) => RpkiEvent::Connected(server, number, stream),
                    Ok(Err(error)) => RpkiEvent::ConnectFailed(server, number, error.to_string()),
                    Err(_) => RpkiEvent::ConnectFailed(server, number, "timed out".into()),
                };
            notify(event);
        });
    }

    /// Starts the reader and writer of a new connection.
    fn open(&mut self, server: usize, stream: TcpStream) {
        let number = self.connections[server].number;
        tracing::info!(server = %self.servers[server].address, "RPKI cache connected");
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let (sender, mut outgoing) = mpsc::unbounded_channel();
        self.connections[server].writer = Some(sender);
        let notify = self.notify.clone();
        let reader_task = tokio::spawn(async move {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        notify(RpkiEvent::Received(server, number, buffer[..read].to_vec()))
                    }
                }
            }
            notify(RpkiEvent::Closed(server, number));
        });
        self.connections[server].reader = Some(reader_task.abort_handle());
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                match message {
                    Outgoing::Bytes(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Outgoing::Close => break,
                }
            }
            let _ = writer.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use wgd_rtr::{Pdu, Vrp};

    /// A cache's answer: Cache Response, the prefixes, End of Data.
    fn answer(session: u16, serial: u32, prefixes: &[(Vrp, bool)]) -> Vec<u8> {
        let mut pdus = vec![Pdu::CacheResponse { session }];
        pdus.extend(prefixes.iter().map(|(vrp, announce)| Pdu::Prefix {
            announce: *announce,
            vrp: *vrp,
        }));
        pdus.push(Pdu::EndOfData {
            session,
            serial,
            intervals: Some(wgd_rtr::Intervals {
                refresh: 3600,
                retry: 1,
                expire: 7200,
            }),
        });
        pdus.iter().flat_map(|pdu| pdu.encode(1)).collect()
    }

    #[tokio::test]
    async fn vrps_come_over_tcp_and_a_lost_cache_is_asked_what_changed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let vrp = Vrp {
            prefix: "192.0.2.0/24".parse().unwrap(),
            max_length: 24,
            asn: 65001,
        };
        // The cache: a full set on the first connection, which it then
        // closes; on the next, the answer to a Serial Query.
        let cache = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut query = [0; 8];
            stream.read_exact(&mut query).await.unwrap();
            assert_eq!(query[..], Pdu::ResetQuery.encode(1)[..]);
            stream
                .write_all(&answer(9, 1, &[(vrp, true)]))
                .await
                .unwrap();
            drop(stream);
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut query = [0; 12];
            stream.read_exact(&mut query).await.unwrap();
            let expected = Pdu::SerialQuery {
                session: 9,
                serial: 1,
            };
            assert_eq!(query[..], expected.encode(1)[..]);
            stream
                .write_all(&answer(9, 2, &[(vrp, false)]))
                .await
                .unwrap();
            stream
        });
        let (events, mut incoming) = mpsc::unbounded_channel();
        let config = RpkiConfig {
            servers: vec![RpkiServer {
                address,
                preference: 1,
            }],
            expire: None,
        };
        let mut rpki = Rpki::new(&config, move |event| {
            let _ = events.send(event);
        });
        let mut updates = rpki.start();
        let deadline = Instant::now() + Duration::from_secs(10);
        while updates.len() < 2 {
            let wake = rpki.next_deadline().unwrap_or(deadline).min(deadline);
            tokio::select! {
                Some(event) = incoming.recv() => updates.extend(rpki.event(event)),
                () = tokio::time::sleep_until(wake) => {
                    assert!(Instant::now() < deadline, "{updates:?}");
                    updates.extend(rpki.tick());
                }
            }
        }
        assert_eq!(
            updates,
            vec![
                VrpUpdate::Reset(vec![vrp]),
                VrpUpdate::Delta(vec![(vrp, false)])
            ]
        );
        let status = rpki.status(None, [0; 3]);
        assert_eq!(status.servers[0].state, "up");
        assert_eq!(status.servers[0].serial, Some(2));
        assert_eq!(status.servers[0].retry, 1);
        drop(cache.await.unwrap());
    }
}
