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
use crate::engine::sleep_until;

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
        .send(&ToClient::Status(
            status.iter().map(WireStatus::from).collect(),
        ))
        .await
}

async fn next_line(client: &mut Option<Client>) -> io::Result<Option<String>> {
    match client {
        Some(client) => client.lines.next_line().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The process's adoption rules over its socket, with sessions whose
    //! tunnel is not there (so no packet leaves): no root needed.

    use super::*;
    use crate::bgp::bfd::Clients;
    use crate::bgp::bfd::wire::WireSession;
    use wgd_bfd::Timers;

    struct Peer {
        lines: Lines<BufReader<OwnedReadHalf>>,
        writer: OwnedWriteHalf,
    }

    impl Peer {
        async fn connect(socket: &Path) -> Peer {
            let mut last = None;
            for _ in 0..200 {
                match UnixStream::connect(socket).await {
                    Ok(stream) => {
                        let (reader, writer) = stream.into_split();
                        return Peer {
                            lines: BufReader::new(reader).lines(),
                            writer,
                        };
                    }
                    Err(error) => last = Some(error),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("no BFD process at {}: {last:?}", socket.display());
        }

        async fn send(&mut self, message: &ToHost) {
            let mut line = serde_json::to_vec(message).unwrap();
            line.push(b'\n');
            self.writer.write_all(&line).await.unwrap();
        }

        async fn declare(&mut self, addresses: &[&str]) {
            let sessions = addresses
                .iter()
                .map(|address| {
                    WireSession::from(&Declared {
                        neighbor: address.parse().unwrap(),
                        address: address.parse().unwrap(),
                        tunnel: None,
                        timers: Timers::default(),
                        clients: Clients {
                            bgp: true,
                            nexthop: false,
                        },
                    })
                })
                .collect();
            self.send(&ToHost::Declare(sessions)).await;
        }

        async fn next(&mut self) -> Option<ToClient> {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .expect("a message in time")
                .ok()??;
            Some(serde_json::from_str(&line).unwrap())
        }

        /// The next status that satisfies `done`: (peer, discriminator)s.
        async fn status_until(
            &mut self,
            done: impl Fn(&[(String, u32)]) -> bool,
        ) -> Vec<(String, u32)> {
            loop {
                match self.next().await {
                    Some(ToClient::Status(sessions)) => {
                        let sessions: Vec<(String, u32)> = sessions
                            .iter()
                            .map(|s| (s.neighbor.clone(), s.local_discriminator))
                            .collect();
                        if done(&sessions) {
                            return sessions;
                        }
                    }
                    Some(_) => {}
                    None => panic!("the BFD process hung up"),
                }
            }
        }
    }

    /// The process serving a socket in a folder of its own (kept as long
    /// as the `TempDir` is).
    fn start(
        grace: Duration,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        tokio::task::JoinHandle<Result<(), HostError>>,
    ) {
        let folder = tempfile::tempdir().unwrap();
        let socket = folder.path().join("bfd.sock");
        let server = tokio::spawn({
            let socket = socket.clone();
            async move { serve(&socket, grace).await }
        });
        (folder, socket, server)
    }

    fn names(sessions: &[(String, u32)]) -> Vec<&str> {
        sessions.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_new_client_adopts_what_it_declares_and_the_rest_goes_after_the_grace_time() {
        let grace = Duration::from_millis(600);
        let (_folder, socket, server) = start(grace);

        let mut first = Peer::connect(&socket).await;
        first.declare(&["10.0.0.2", "10.0.0.4"]).await;
        let before = first.status_until(|s| s.len() == 2).await;
        // A second process refuses to start beside it.
        assert!(matches!(
            serve(&socket, grace).await,
            Err(HostError::Running(_))
        ));
        // A bad declaration is refused whole; nothing changes.
        first
            .send(&ToHost::Declare(vec![WireSession {
                neighbor: "fe80::9".to_owned(),
                address: "fe80::9".parse().unwrap(),
                tunnel: None,
                ifindex: 0,
                timers: Timers::default().into(),
                bgp: true,
                nexthop: false,
            }]))
            .await;
        loop {
            match first.next().await {
                Some(ToClient::Refused(reason)) => {
                    assert!(reason.contains("fe80::9"), "{reason}");
                    break;
                }
                Some(ToClient::Status(sessions)) => assert_eq!(sessions.len(), 2),
                other => panic!("{other:?}"),
            }
        }

        // `wgd run` killed: the sessions stay.
        drop(first);
        let mut second = Peer::connect(&socket).await;
        let found = second.status_until(|_| true).await;
        assert_eq!(found, before, "the sessions as they were");
        // It declares one again: that one is untouched (same
        // discriminator), the other stays until the grace time is over.
        second.declare(&["10.0.0.2"]).await;
        let after = second.status_until(|s| s.len() == 1).await;
        assert_eq!(names(&after), ["10.0.0.2"]);
        assert_eq!(after[0], before[0]);

        // Told to end: Bye, the socket gone, the process over.
        second.send(&ToHost::Shutdown).await;
        loop {
            match second.next().await {
                Some(ToClient::Bye) => break,
                Some(_) => {}
                None => panic!("no Bye"),
            }
        }
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the process ends")
            .unwrap()
            .unwrap();
        assert!(!socket.exists());
    }

    #[tokio::test]
    async fn with_no_client_back_the_process_ends_after_the_grace_time() {
        let grace = Duration::from_millis(300);
        let (_folder, socket, server) = start(grace);
        let mut client = Peer::connect(&socket).await;
        client.declare(&["10.0.0.2"]).await;
        client.status_until(|s| s.len() == 1).await;
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the process ends")
            .unwrap()
            .unwrap();
    }
}
