//! A routing program's side of the bridge's gRPC `Session`, as the fib and
//! restart scenarios drive it: open as an owner, push every prefix in
//! batches without waiting between them (a window of batches in flight),
//! read the results, and say how many routes ended in each state.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use wgd_proto::v1 as api;
use wgd_proto::v1::session_response::Kind;

/// Routes per `RouteBatch`: far under gRPC's 4 MiB message limit both
/// ways, large enough that per-message costs vanish.
pub const BATCH: usize = 5_000;
/// Batches sent ahead of their results.
const WINDOW: usize = 8;

#[derive(Debug)]
pub struct Session {
    requests: mpsc::Sender<api::SessionRequest>,
    responses: tonic::Streaming<api::SessionResponse>,
    pub stale_routes: u64,
    next_id: u64,
}

/// What became of a push.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub installed: usize,
    pub withdrawn: usize,
    pub other: usize,
    /// From the first request sent to the last result read.
    pub elapsed: Duration,
}

impl Session {
    pub async fn open(socket: &Path, owner: &str, hold_seconds: u32) -> anyhow::Result<Self> {
        let mut client = wgd::daemon::api::connect_routes(socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let (requests, outgoing) = mpsc::channel(WINDOW);
        requests
            .send(api::SessionRequest {
                kind: Some(api::session_request::Kind::Hello(api::Hello {
                    owner: owner.to_owned(),
                    hold_time_seconds: hold_seconds,
                })),
            })
            .await?;
        let mut responses = client
            .session(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        match responses.message().await?.and_then(|r| r.kind) {
            Some(Kind::Welcome(welcome)) => Ok(Self {
                requests,
                responses,
                stale_routes: welcome.stale_routes,
                next_id: 1,
            }),
            other => anyhow::bail!("the session did not start with a Welcome: {other:?}"),
        }
    }

    /// Builds the batches for `prefixes`, each through `nexthop(prefix)`
    /// (before any clock starts: a routing program has its routes ready).
    pub fn batches<'a, P: std::fmt::Display>(
        &mut self,
        prefixes: &[P],
        nexthop: impl Fn(&P) -> &'a str,
        operation: api::route_update::Operation,
    ) -> Vec<api::SessionRequest> {
        prefixes
            .chunks(BATCH)
            .map(|chunk| {
                let id = self.next_id;
                self.next_id += 1;
                api::SessionRequest {
                    kind: Some(api::session_request::Kind::Batch(api::RouteBatch {
                        id,
                        updates: chunk
                            .iter()
                            .map(|prefix| api::RouteUpdate {
                                operation: operation.into(),
                                route: Some(api::Route {
                                    prefix: prefix.to_string(),
                                    nexthops: vec![api::Nexthop {
                                        address: nexthop(prefix).to_owned(),
                                        tunnel: String::new(),
                                        bfd: false,
                                    }],
                                    distance: None,
                                    metric: 0,
                                }),
                            })
                            .collect(),
                    })),
                }
            })
            .collect()
    }

    /// Sends `batches` (and an EndOfRib after them with `end_of_rib`),
    /// keeping the channel's window full, and reads one result per batch
    /// (and the EndOfRib's answer).
    pub async fn push(
        &mut self,
        batches: Vec<api::SessionRequest>,
        end_of_rib: bool,
    ) -> anyhow::Result<Outcome> {
        let expected = batches.len();
        let started = Instant::now();
        let requests = self.requests.clone();
        let sender = tokio::spawn(async move {
            for batch in batches {
                if requests.send(batch).await.is_err() {
                    return;
                }
            }
            if end_of_rib {
                let _ = requests
                    .send(api::SessionRequest {
                        kind: Some(api::session_request::Kind::EndOfRib(api::EndOfRib {})),
                    })
                    .await;
            }
        });
        let mut outcome = Outcome::default();
        let mut results = 0;
        let mut end_seen = !end_of_rib;
        while results < expected || !end_seen {
            let message = self
                .responses
                .message()
                .await?
                .context("the session ended")?;
            match message.kind {
                Some(Kind::BatchResult(result)) => {
                    results += 1;
                    for route in result.results {
                        match api::RouteState::try_from(route.state) {
                            Ok(api::RouteState::Installed) => outcome.installed += 1,
                            Ok(api::RouteState::Withdrawn) => outcome.withdrawn += 1,
                            _ => outcome.other += 1,
                        }
                    }
                }
                Some(Kind::EndOfRib(_)) => end_seen = true,
                _ => {}
            }
        }
        outcome.elapsed = started.elapsed();
        sender.await.context("the sending task")?;
        Ok(outcome)
    }
}
