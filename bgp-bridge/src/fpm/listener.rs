//! The FPM listener: the thin tokio layer around [`super::Feed`].
//!
//! zebra connects (and, when the connection breaks, connects again every
//! 3 s); one connection is served at a time, a new one replacing the old.
//! Each connection is a bridge session of owner `fpm` with the configured
//! hold time, and its own `Feed` (zebra's nexthop ids mean nothing across
//! connections). zebra replays every route it has on each connection, so a
//! reconnect is a session coming back: the routes it re-sends change
//! nothing in the kernel, and the others go at End-of-RIB. zebra sends no
//! end marker; the replay is taken as over when no frame has come for
//! `replay_quiet` (zebra pauses about 1 s when its output buffer is full)
//! and the connection is at least `replay_settle` old: after zebra itself
//! restarts, FRR's daemons reconnect to it on a 10 s timer counted from
//! the crash and only then send their routes again, a few seconds after
//! zebra's own replay. A route FRR dropped while the connection was down
//! goes at that End-of-RIB; if zebra does not come back, all of them go
//! when the hold time runs out.
//!
//! Bytes are read as they come, split into frames, decoded, applied to the
//! feed, and what changed goes to the bridge as one batch per read. A
//! netlink message that does not parse is logged with its length and
//! skipped; a frame header that cannot be right (version, type, length)
//! means the stream is out of step: the connection is closed, and zebra
//! connects again and replays.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::decode::{self, FPM_DEFAULT_PORT, Frames};
use super::{Feed, OWNER};
use crate::engine::{Bridge, Update};
use crate::rib::RouteStatus;
use crate::route::{Owner, TunnelView};

/// Settings of the listener, from `[fpm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmConfig {
    /// Where zebra connects (`fpm address` in zebra's config).
    pub listen: SocketAddr,
    /// zebra's kernel table whose routes are taken (254: main).
    pub table: u32,
    /// How long zebra's routes stay once it is gone; `None`: the bridge's
    /// default hold time.
    pub hold: Option<Duration>,
    /// zebra's replay is over when no frame came for this long...
    pub replay_quiet: Duration,
    /// ...and the connection is at least this old.
    pub replay_settle: Duration,
}

impl FpmConfig {
    pub const DEFAULT_REPLAY_QUIET: Duration = Duration::from_secs(3);
    pub const DEFAULT_REPLAY_SETTLE: Duration = Duration::from_secs(15);

    pub fn new(listen: SocketAddr, table: u32, hold: Option<Duration>) -> Self {
        Self {
            listen,
            table,
            hold,
            replay_quiet: Self::DEFAULT_REPLAY_QUIET,
            replay_settle: Self::DEFAULT_REPLAY_SETTLE,
        }
    }
}

impl Default for FpmConfig {
    fn default() -> Self {
        Self::new(
            SocketAddr::from(([127, 0, 0, 1], FPM_DEFAULT_PORT)),
            254,
            None,
        )
    }
}

/// A connection as the listener reads it (a TCP stream; a pipe in tests).
pub type Stream = Box<dyn AsyncRead + Send + Unpin>;

/// The handle the daemon keeps: it passes the tunnel view on.
#[derive(Debug, Clone)]
pub struct Fpm {
    tunnels: watch::Sender<TunnelView>,
    local: SocketAddr,
}

impl Fpm {
    /// Listens for zebra on `config.listen` (an error if the address
    /// cannot be bound) and feeds the bridge. `view` names the tunnels
    /// behind zebra's interface indexes.
    pub async fn start(
        config: FpmConfig,
        bridge: Bridge,
        view: TunnelView,
    ) -> std::io::Result<Fpm> {
        let listener = TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            tracing::warn!(
                %local,
                "FPM listens beyond loopback: whoever can connect can put routes in the kernel"
            );
        }
        tracing::info!(%local, table = config.table, "listening for zebra over FPM");
        let (connections, incoming) = mpsc::channel::<(Stream, String)>(4);
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        if connections
                            .send((Box::new(stream), peer.to_string()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "FPM listener");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let (tunnels, tunnel_updates) = watch::channel(view);
        tokio::spawn(run(config, bridge, tunnel_updates, incoming));
        Ok(Fpm { tunnels, local })
    }

    /// wgd's latest view of its tunnels.
    pub fn set_tunnels(&self, view: TunnelView) {
        self.tunnels.send_if_modified(|current| {
            let changed = *current != view;
            *current = view;
            changed
        });
    }

    /// The address bound (the port, when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// One connection from zebra.
struct Connection {
    stream: Stream,
    peer: String,
    /// Bytes of a frame not all there yet.
    buffer: Vec<u8>,
    feed: Feed,
    session: u64,
    opened: Instant,
    last_frame: Instant,
    /// End-of-RIB was sent for this connection.
    replayed: bool,
    frames: u64,
}

/// Serves the connections `incoming` brings, one at a time, until it
/// closes.
pub async fn run(
    config: FpmConfig,
    bridge: Bridge,
    mut tunnels: watch::Receiver<TunnelView>,
    mut incoming: mpsc::Receiver<(Stream, String)>,
) {
    let owner = Owner::new(OWNER);
    let mut view = tunnels.borrow_and_update().clone();
    let mut current: Option<Connection> = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut tunnels_open = true;
    loop {
        let replay_over = current
            .as_ref()
            .filter(|c| !c.replayed)
            .map(|c| (c.opened + config.replay_settle).max(c.last_frame + config.replay_quiet));
        tokio::select! {
            next = incoming.recv() => {
                let Some((stream, peer)) = next else { break };
                if let Some(old) = current.take() {
                    end(&bridge, &owner, old, "a new connection from zebra replaces it");
                }
                current = open(&config, &bridge, &owner, stream, peer).await;
            }
            read = read_some(&mut current, &mut chunk) => {
                let Some(connection) = current.as_mut() else { continue };
                match read {
                    Ok(0) => {
                        if let Some(old) = current.take() {
                            end(&bridge, &owner, old, "zebra closed the connection");
                        }
                    }
                    Err(error) => {
                        if let Some(old) = current.take() {
                            end(&bridge, &owner, old, &format!("read error: {error}"));
                        }
                    }
                    Ok(count) => {
                        let broken = receive(connection, &chunk[..count]);
                        feed(&bridge, &owner, connection, &view).await;
                        if let Some(error) = broken
                            && let Some(old) = current.take()
                        {
                            end(&bridge, &owner, old, &format!("{error}; zebra will connect again"));
                        }
                    }
                }
            }
            changed = tunnels.changed(), if tunnels_open => {
                if changed.is_err() {
                    tunnels_open = false;
                    continue;
                }
                view = tunnels.borrow_and_update().clone();
                if let Some(connection) = current.as_mut() {
                    connection.feed.tunnels_changed();
                    feed(&bridge, &owner, connection, &view).await;
                }
            }
            () = sleep_until(replay_over) => {
                if let Some(connection) = current.as_mut() {
                    connection.replayed = true;
                    match bridge.end_of_rib(owner.clone()).await {
                        Ok(withdrawn) => tracing::info!(
                            peer = %connection.peer,
                            routes = connection.feed.offered_count(),
                            withdrawn,
                            "zebra's replay is over: routes it did not send again are withdrawn"
                        ),
                        Err(error) => tracing::warn!(%error, "FPM end-of-RIB"),
                    }
                }
            }
        }
    }
    if let Some(old) = current.take() {
        end(&bridge, &owner, old, "the listener stopped");
    }
}

/// A new connection: its bridge session.
async fn open(
    config: &FpmConfig,
    bridge: &Bridge,
    owner: &Owner,
    stream: Stream,
    peer: String,
) -> Option<Connection> {
    let (nexthops, _ignored) = mpsc::unbounded_channel();
    match bridge.open(owner.clone(), config.hold, nexthops).await {
        Ok(welcome) => {
            tracing::info!(
                %peer,
                session = welcome.session,
                stale = welcome.stale_routes,
                "zebra connected over FPM"
            );
            let now = Instant::now();
            Some(Connection {
                stream,
                peer,
                buffer: Vec::new(),
                feed: Feed::new(config.table),
                session: welcome.session,
                opened: now,
                last_frame: now,
                replayed: false,
                frames: 0,
            })
        }
        Err(error) => {
            tracing::error!(%peer, %error, "cannot open the bridge session for zebra; connection closed");
            None
        }
    }
}

/// The connection is over: its routes stay for the hold time.
fn end(bridge: &Bridge, owner: &Owner, connection: Connection, why: &str) {
    tracing::info!(
        peer = %connection.peer,
        why,
        frames = connection.frames,
        routes = connection.feed.offered_count(),
        "FPM connection ended; zebra's routes stay for the hold time"
    );
    bridge.close(owner.clone(), connection.session);
}

async fn read_some(current: &mut Option<Connection>, chunk: &mut [u8]) -> std::io::Result<usize> {
    match current {
        Some(connection) => connection.stream.read(chunk).await,
        None => std::future::pending().await,
    }
}

/// Splits what came into frames and applies their messages to the feed.
/// A broken frame header is returned: the stream is out of step.
fn receive(connection: &mut Connection, bytes: &[u8]) -> Option<decode::FrameError> {
    connection.buffer.extend_from_slice(bytes);
    let mut frames = Frames::new(&connection.buffer);
    let mut broken = None;
    let mut count = 0;
    for frame in frames.by_ref() {
        match frame {
            Ok(payload) => {
                count += 1;
                for message in decode::decode_frame(payload) {
                    match message {
                        Ok(message) => connection.feed.apply(message),
                        Err(error) => tracing::warn!(
                            peer = %connection.peer,
                            length = error.length,
                            kind = error.kind,
                            reason = %error.reason,
                            "FPM: a netlink message that does not parse; skipped"
                        ),
                    }
                }
            }
            Err(error) => broken = Some(error),
        }
    }
    let consumed = frames.consumed();
    connection.buffer.drain(..consumed);
    if count > 0 {
        connection.frames += count;
        connection.last_frame = Instant::now();
    }
    broken
}

/// Sends the feed's changes to the bridge as one batch.
async fn feed(bridge: &Bridge, owner: &Owner, connection: &mut Connection, view: &TunnelView) {
    let batch = connection.feed.updates(view);
    if let Some((prefix, reason)) = batch.skipped.first() {
        for (prefix, reason) in &batch.skipped {
            tracing::debug!(%prefix, %reason, "FPM: zebra's route not taken");
        }
        tracing::info!(
            count = batch.skipped.len(),
            first = %prefix,
            %reason,
            "FPM: zebra's routes not taken"
        );
    }
    if batch.updates.is_empty() {
        return;
    }
    let offered: Vec<Option<ipnet::IpNet>> = batch
        .updates
        .iter()
        .map(|update| match update {
            Update::Offer(spec) => Some(spec.prefix),
            _ => None,
        })
        .collect();
    let results = match bridge
        .session_updates(owner.clone(), connection.session, batch.updates)
        .await
    {
        Ok(results) => results,
        Err(error) => {
            tracing::warn!(%error, "cannot feed the bridge zebra's routes");
            return;
        }
    };
    let mut refused = 0;
    let mut first = None;
    for (result, prefix) in results.iter().zip(offered) {
        if let (RouteStatus::Refused(reason), Some(prefix)) = (&result.status, prefix) {
            tracing::debug!(%prefix, %reason, "FPM: the bridge refused zebra's route");
            // Not kept by the bridge: offered again when it changes.
            connection.feed.refused(prefix);
            refused += 1;
            first.get_or_insert((prefix, reason.clone()));
        }
    }
    if let Some((prefix, reason)) = first {
        tracing::info!(
            refused,
            first = %prefix,
            %reason,
            "FPM: the bridge refused some of zebra's routes"
        );
    }
    tracing::debug!(updates = results.len(), refused, "FPM: fed the bridge");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
