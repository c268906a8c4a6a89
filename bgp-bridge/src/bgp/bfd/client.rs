//! `wgd run`'s side of the BFD process: finds the process at its socket
//! (one left running by a previous `wgd run` is adopted) or starts one,
//! declares the sessions wanted each time they change, and turns what the
//! process says into [`Report`]s for the handle.
//!
//! The process is started in a process group of its own, so that what
//! stops `wgd run` (a signal to its group, `kill -9`) does not stop it. If
//! it goes away, `wgd run` starts another a second later; the sessions
//! start over with it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::runtime::{Declared, Report, SessionStatus};
use super::wire::{ToClient, ToHost, WireSession};

/// Where the BFD process lives and how to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdHost {
    /// Its Unix socket.
    pub socket: PathBuf,
    /// The program and arguments that start it (`wgd bfdd --socket ...`).
    pub command: Vec<String>,
    /// Its log (stderr), appended to.
    pub log: PathBuf,
}

/// How long a started process has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Shutdown` waits for the process's goodbye.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(4);

pub fn spawn(
    host: BfdHost,
    mut declared: watch::Receiver<Vec<Declared>>,
    reports: mpsc::UnboundedSender<Report>,
    mut shutdown: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    tokio::spawn(async move {
        loop {
            let stream = match UnixStream::connect(&host.socket).await {
                Ok(stream) => stream,
                Err(_) if declared.borrow().is_empty() => {
                    // Nothing to run and nobody to adopt: wait for sessions.
                    tokio::select! {
                        changed = declared.changed() => if changed.is_err() { return },
                        request = shutdown.recv() => {
                            if let Some(done) = request { let _ = done.send(()); }
                            return;
                        }
                    }
                    continue;
                }
                Err(_) => match start(&host).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%error, socket = %host.socket.display(), "cannot start the BFD process");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            tracing::info!(socket = %host.socket.display(), "BFD: connected to the BFD process");
            match converse(stream, &mut declared, &reports, &mut shutdown).await {
                Ended::Shutdown(done) => {
                    let _ = done.send(());
                    return;
                }
                Ended::Handle => return,
                Ended::Lost => {
                    tracing::warn!("BFD: the BFD process is gone; starting another");
                    let _ = reports.send(Report::Status(Vec::new()));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

enum Ended {
    /// Asked to end the process; it did (or did not answer in time).
    Shutdown(oneshot::Sender<()>),
    /// The handle is gone: the process keeps the sessions.
    Handle,
    /// The connection broke.
    Lost,
}

async fn converse(
    stream: UnixStream,
    declared: &mut watch::Receiver<Vec<Declared>>,
    reports: &mpsc::UnboundedSender<Report>,
    shutdown: &mut mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) -> Ended {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut send = async |message: &ToHost| {
        let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        writer.write_all(&line).await
    };
    let declaration =
        |sessions: &[Declared]| ToHost::Declare(sessions.iter().map(WireSession::from).collect());
    let first = declaration(&declared.borrow_and_update());
    if send(&first).await.is_err() {
        return Ended::Lost;
    }
    loop {
        tokio::select! {
            changed = declared.changed() => {
                if changed.is_err() {
                    return Ended::Handle;
                }
                let message = declaration(&declared.borrow_and_update());
                if send(&message).await.is_err() {
                    return Ended::Lost;
                }
            }
            request = shutdown.recv() => {
                let Some(done) = request else { return Ended::Handle };
                if send(&ToHost::Shutdown).await.is_ok() {
                    let goodbye = async {
                        while let Ok(Some(line)) = lines.next_line().await {
                            match serde_json::from_str::<ToClient>(&line) {
                                Ok(ToClient::Bye) => break,
                                Ok(message) => read(message, reports),
                                Err(_) => {}
                            }
                        }
                    };
                    if tokio::time::timeout(SHUTDOWN_TIMEOUT, goodbye).await.is_err() {
                        tracing::warn!("BFD: the BFD process did not say goodbye in time");
                    }
                }
                return Ended::Shutdown(done);
            }
            line = lines.next_line() => match line {
                Ok(Some(line)) => match serde_json::from_str::<ToClient>(&line) {
                    Ok(message) => read(message, reports),
                    Err(error) => tracing::warn!(%error, "BFD: a line from the BFD process that is no message"),
                },
                Ok(None) | Err(_) => return Ended::Lost,
            },
        }
    }
}

fn read(message: ToClient, reports: &mpsc::UnboundedSender<Report>) {
    match message {
        ToClient::Status(wire) => {
            let status: Result<Vec<SessionStatus>, _> =
                wire.iter().map(SessionStatus::try_from).collect();
            match status {
                Ok(status) => {
                    let _ = reports.send(Report::Status(status));
                }
                Err(error) => tracing::warn!(%error, "BFD: status refused"),
            }
        }
        ToClient::Change(change) => match change.read() {
            Ok((change, bgp)) => {
                let _ = reports.send(Report::Change { change, bgp });
            }
            Err(error) => tracing::warn!(%error, "BFD: state change refused"),
        },
        ToClient::Refused(reason) => {
            tracing::warn!(%reason, "BFD: the BFD process refused the sessions declared")
        }
        ToClient::Bye => {}
    }
}

/// Starts the process in a process group of its own and connects to it.
async fn start(host: &BfdHost) -> std::io::Result<UnixStream> {
    let (program, arguments) = host
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command to start the BFD process"))?;
    if let Some(parent) = host.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&host.log)?;
    let mut child = std::process::Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()?;
    tracing::info!(pid = child.id(), log = %host.log.display(), "BFD: started the BFD process");
    // Reaped when it ends while `wgd run` lives.
    std::thread::spawn(move || child.wait());
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        match UnixStream::connect(&host.socket).await {
            Ok(stream) => return Ok(stream),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
