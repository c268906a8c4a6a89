//! The BFD process (`wgd bfdd`): the sessions live here, apart from `wgd
//! run`, so that they outlive it (a restart, `kill -9` included). Its
//! packets say so: the C bit (control plane independent, RFC 5880 4.1).
//!
//! In: one client at a time on a Unix socket (`wgd run`; a new one takes
//! the place of the old), with its declarations (`wire::ToHost`). Out: to
//! that client, the sessions' status and state changes from the runtime.
//!
//! Adoption: a client that connects finds the sessions as they are; what
//! it declares is made or changed (an unchanged session is not touched),
//! and what it has not declared by the end of the grace time goes
//! AdminDown. Without a client the sessions stay as they are for the grace
//! time; then they go AdminDown and the process ends. A client's
//! `Shutdown` does the same at once.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixListener;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::runtime::{Command, Declared, Report, Runtime, SessionStatus};
use super::wire::{ToClient, ToHost, WireChange, WireStatus};
use crate::bgp::types::NeighborId;

/// Why the BFD process cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("a BFD process already answers at {0}")]
    Running(PathBuf),
    #[error("BFD process socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
}

struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn send(&mut self, message: &ToClient) -> io::Result<()> {
        let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line).await
    }
}

/// Serves the sessions at `socket` until told to end, or until the grace
/// time has passed with no client.
pub async fn serve(socket: &Path, grace: Duration) -> Result<(), HostError> {
    let listener = bind(socket)?;
    tracing::info!(socket = %socket.display(), grace_s = grace.as_secs(), "BFD process listening");
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (reports, mut report_receiver) = mpsc::unbounded_channel();
    let runtime = Runtime::spawn(command_receiver, reports, true);
    let mut client: Option<Client> = None;
    let mut status: Vec<SessionStatus> = Vec::new();
    // What the client last declared; the sessions it found and has not
    // declared yet, and until when they are kept.
    let mut declared: Vec<Declared> = Vec::new();
    let mut adoptable: BTreeSet<NeighborId> = BTreeSet::new();
    let mut grace_until = Some(Instant::now() + grace);
    let mut ending = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracing::info!("BFD process: a client connected; it adopts the sessions");
                    let mut new = connect(stream);
                    if send_status(&mut new, &status).await.is_ok() {
                        client = Some(new);
                        declared.clear();
                        adoptable = status.iter().map(|session| session.status.neighbor).collect();
                        grace_until = Some(Instant::now() + grace);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "BFD process: accept");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            line = next_line(&mut client) => match line {
                Ok(Some(line)) => match serde_json::from_str::<ToHost>(&line) {
                    Ok(ToHost::Declare(sessions)) => {
                        let read: Result<Vec<Declared>, _> =
                            sessions.iter().map(Declared::try_from).collect();
                        match read {
                            Ok(sessions) => {
                                for session in &sessions {
                                    adoptable.remove(&session.neighbor);
                                }
                                declared = sessions.clone();
                                let spare = adoptable.clone();
                                let _ = commands.send(Command::Declare { sessions, spare });
                            }
                            Err(error) => {
                                tracing::warn!(%error, "BFD process: declaration refused");
                                if let Some(client) = client.as_mut() {
                                    let _ = client.send(&ToClient::Refused(error.to_string())).await;
                                }
                            }
                        }
                    }
                    Ok(ToHost::Shutdown) => {
                        tracing::info!("BFD process: told to end; sessions go AdminDown");
                        ending = true;
                        let _ = commands.send(Command::Declare { sessions: Vec::new(), spare: BTreeSet::new() });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "BFD process: a line that is no message");
                        if let Some(client) = client.as_mut() {
                            let _ = client.send(&ToClient::Refused(format!("not a message: {error}"))).await;
                        }
                    }
                },
                Ok(None) | Err(_) => {
                    tracing::info!(grace_s = grace.as_secs(), "BFD process: the client is gone; the sessions stay for the grace time");
                    client = None;
                    grace_until = Some(Instant::now() + grace);
                    adoptable.clear();
                    if status.is_empty() {
                        break;
                    }
                }
            },
            () = sleep_until(grace_until) => {
                grace_until = None;
                if client.is_some() {
                    if !adoptable.is_empty() {
                        tracing::info!(sessions = adoptable.len(), "BFD process: grace time over; sessions not declared again go AdminDown");
                        adoptable.clear();
                        let _ = commands.send(Command::Declare { sessions: declared.clone(), spare: BTreeSet::new() });
                    }
                } else {
                    tracing::info!("BFD process: grace time over with no client; sessions go AdminDown");
                    break;
                }
            }
            report = report_receiver.recv() => {
                let Some(report) = report else { break };
                let message = match report {
                    Report::Status(now) => {
                        status = now;
                        ToClient::Status(status.iter().map(WireStatus::from).collect())
                    }
                    Report::Change { change, bgp } => ToClient::Change(WireChange::new(&change, bgp)),
                };
                if let Some(open) = client.as_mut()
                    && open.send(&message).await.is_err()
                {
                    client = None;
                    grace_until = Some(Instant::now() + grace);
                }
                if ending && status.is_empty() {
                    // The AdminDowns are out: the client may go on.
                    if let Some(open) = client.as_mut() {
                        let _ = open.send(&ToClient::Bye).await;
                    }
                    break;
                }
            }
        }
    }
    // Every session AdminDown, told for a little while, then gone.
    drop(commands);
    let _ = std::fs::remove_file(socket);
    drop(listener);
    // The runtime tells its neighbors for a little while, then ends.
    let mut runtime = runtime;
    loop {
        tokio::select! {
            _ = &mut runtime => break,
            _ = report_receiver.recv() => {}
        }
    }
    drop(client);
    tracing::info!("BFD process: ended");
    Ok(())
}

/// The listening socket, owner only; a socket file nobody answers on is
/// left by a process that is gone, and is replaced.
fn bind(socket: &Path) -> Result<UnixListener, HostError> {
    let error = |source| HostError::Socket {
        path: socket.to_path_buf(),
        source,
    };
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(HostError::Running(socket.to_path_buf()));
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let listener = UnixListener::bind(socket).map_err(error)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(listener)
}

fn connect(stream: UnixStream) -> Client {
    let (reader, writer) = stream.into_split();
    Client {
        lines: BufReader::new(reader).lines(),
        writer,
    }
}

async fn send_status(client: &mut Client, status: &[SessionStatus]) -> io::Result<()> {
    client
        .send(&ToClient::Status(status.iter().map(WireStatus::from).collect()))
        .await
}

async fn next_line(client: &mut Option<Client>) -> io::Result<Option<String>> {
    match client {
        Some(client) => client.lines.next_line().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
