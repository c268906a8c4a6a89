//! The route bridge's refusals, end to end: every route the bridge must
//! not take (host bits set, loopback, multicast, link-local, "this
//! network", a nexthop off wgd's tunnels or on this host's own tunnel
//! address, an unknown tunnel, a prefix that does not parse, over the
//! owner's prefix limit) is refused on its own, with its reason, through
//! the unary API, a session and the CLI alike, while the good routes of
//! the same batch go in; and A's kernel changes by exactly those good
//! routes, nothing else (a full `ip route show table all` of both
//! families, compared line by line).
//!
//! Also: a session may not take one of wgd's own owner names; with
//! `allow_other_interfaces` a nexthop on the underlay is taken; and a route
//! that is not wgd's (another protocol) in the very kernel slot a learned
//! route wants (prefix, table, metric) is never changed or deleted: the
//! learned route fails with the kernel's "File exists", and deleting it
//! leaves the other route where it was.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use wgd_proto::v1 as api;
use wgd_proto::v1::route_service_client::RouteServiceClient;
use wgd_tests::bridge::{BridgeLab, batch, hello, route_via};

use api::RouteState::{Failed, Installed, Refused, Withdrawn};
use api::route_update::Operation;

type Client = RouteServiceClient<tonic::transport::Channel>;

/// One route's result as the test expects it: prefix, state, reason.
type Outcome = (String, api::RouteState, String);

fn outcome(prefix: &str, state: api::RouteState, reason: &str) -> Outcome {
    (prefix.to_owned(), state, reason.to_owned())
}

fn installed(prefix: &str) -> Outcome {
    outcome(prefix, Installed, "")
}

fn refused(prefix: &str, reason: &str) -> Outcome {
    outcome(prefix, Refused, reason)
}

fn outcomes(results: &[api::RouteResult]) -> Vec<Outcome> {
    results
        .iter()
        .map(|result| (result.prefix.clone(), result.state(), result.reason.clone()))
        .collect()
}

/// A route straight into a tunnel (`dev TUNNEL`).
fn route_dev(prefix: &str, tunnel: &str) -> api::Route {
    api::Route {
        prefix: prefix.to_owned(),
        nexthops: vec![api::Nexthop {
            address: String::new(),
            tunnel: tunnel.to_owned(),
            bfd: false,
        }],
        distance: None,
        metric: 0,
    }
}

/// Every route of A's kernel, both families, every table, protocols as
/// numbers: what "the kernel did not change" is checked against.
fn snapshot(lab: &BridgeLab) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for family in ["-4", "-6"] {
        let text = lab
            .a
            .check(&["ip", "-N", family, "route", "show", "table", "all"])?;
        lines.extend(text.lines().map(|line| line.trim_end().to_owned()));
    }
    Ok(lines)
}

/// Lines of `after` not in `before`, and lines of `before` not in `after`
/// (as multisets).
fn diff(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let mut removed: Vec<String> = before.to_vec();
    let mut added = Vec::new();
    for line in after {
        match removed.iter().position(|old| old == line) {
            Some(index) => {
                removed.remove(index);
            }
            None => added.push(line.clone()),
        }
    }
    (added, removed)
}

/// A's kernel is exactly as in `before`.
#[track_caller]
fn assert_kernel_unchanged(lab: &BridgeLab, before: &[String], when: &str) {
    let after = snapshot(lab).expect("ip route show");
    let (added, removed) = diff(before, &after);
    assert!(
        added.is_empty() && removed.is_empty(),
        "{when}: A's kernel changed\nadded:\n{}\nremoved:\n{}\ndaemon log:\n{}",
        added.join("\n"),
        removed.join("\n"),
        lab.log()
    );
}

/// A's kernel is `before` plus one route of wgd's (proto 200) for each of
/// `prefixes`, and nothing else changed. The new lines.
#[track_caller]
fn assert_kernel_gained(lab: &BridgeLab, before: &[String], prefixes: &[&str]) -> Vec<String> {
    let after = snapshot(lab).expect("ip route show");
    let (added, removed) = diff(before, &after);
    let mut gained: Vec<&str> = added
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    gained.sort_unstable();
    let mut wanted = prefixes.to_vec();
    wanted.sort_unstable();
    assert!(
        removed.is_empty() && gained == wanted && added.iter().all(|l| l.contains(" proto 200 ")),
        "A's kernel should have gained wgd's routes for {wanted:?} and nothing else\n\
         added:\n{}\nremoved:\n{}\ndaemon log:\n{}",
        added.join("\n"),
        removed.join("\n"),
        lab.log()
    );
    added
}

/// The prefixes an owner has in the bridge (any state).
async fn listed(client: &mut Client, owner: &str) -> anyhow::Result<Vec<api::RouteEntry>> {
    Ok(client
        .list_routes(api::ListRoutesRequest {
            owner: owner.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .routes)
}

async fn add(client: &mut Client, routes: Vec<api::Route>) -> anyhow::Result<Vec<Outcome>> {
    let response = client
        .add_routes(api::AddRoutesRequest {
            owner: String::new(),
            routes,
        })
        .await?;
    Ok(outcomes(&response.into_inner().results))
}

async fn delete(client: &mut Client, prefixes: &[&str]) -> anyhow::Result<Vec<Outcome>> {
    let response = client
        .delete_routes(api::DeleteRoutesRequest {
            owner: String::new(),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        })
        .await?;
    Ok(outcomes(&response.into_inner().results))
}

/// A gRPC session of one owner, as a routing program holds it.
struct Session {
    requests: mpsc::Sender<api::SessionRequest>,
    responses: tonic::Streaming<api::SessionResponse>,
}

impl Session {
    async fn open(client: &mut Client, owner: &str) -> anyhow::Result<Self> {
        let (requests, outgoing) = mpsc::channel(8);
        requests.send(hello(owner, 0)).await?;
        let mut responses = client
            .session(ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        match responses.message().await?.and_then(|r| r.kind) {
            Some(api::session_response::Kind::Welcome(_)) => Ok(Self {
                requests,
                responses,
            }),
            other => bail!("the session did not start with a Welcome: {other:?}"),
        }
    }

    /// Sends one batch and waits for its results (skipping tunnel events
    /// and nexthop updates).
    async fn batch(
        &mut self,
        id: u64,
        routes: Vec<api::Route>,
        operation: Operation,
    ) -> anyhow::Result<Vec<Outcome>> {
        self.requests.send(batch(id, routes, operation)).await?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.responses.message())
                .await
                .context("no BatchResult within 10 s")??;
            match message.and_then(|r| r.kind) {
                Some(api::session_response::Kind::BatchResult(result)) => {
                    assert_eq!(result.id, id, "the BatchResult echoes its batch's id");
                    return Ok(outcomes(&result.results));
                }
                Some(
                    api::session_response::Kind::TunnelEvent(_)
                    | api::session_response::Kind::Nexthop(_),
                ) => {}
                other => bail!("expected a BatchResult, got {other:?}"),
            }
        }
    }
}

/// The default lab: every refusal reason through `AddRoutes`, a session
/// and the CLI; reserved owner names; a foreign route in wgd's slot.
#[tokio::test(flavor = "multi_thread")]
async fn bad_routes_are_refused_one_by_one_and_the_kernel_keeps_its_routes() -> anyhow::Result<()> {
    let lab = BridgeLab::new("")?;
    let mut client = lab.client().await?;
    let tunnel = lab.tunnel_a.clone();
    let via = BridgeLab::TUNNEL_B;
    let untouched = snapshot(&lab)?;
    assert!(
        lab.kernel_routes()?.is_empty(),
        "no route of wgd's before the test"
    );

    // --- AddRoutes: bad routes between good ones ----------------------
    let routes = vec![
        route_via("198.51.100.0/24", via),
        route_via("192.0.2.1/24", via),
        route_via("127.0.0.0/8", via),
        route_dev("::1/128", &tunnel),
        route_via("224.0.0.0/4", via),
        route_via("239.1.0.0/16", via),
        route_dev("ff02::/16", &tunnel),
        route_via("169.254.0.0/16", via),
        route_dev("2001:db8:1::/48", &tunnel),
        route_dev("fe80::/64", &tunnel),
        route_via("0.0.0.0/8", via),
        route_via("0.1.0.0/16", via),
        route_via("100.100.1.0/24", BridgeLab::UNDERLAY_B),
        route_via("100.100.2.0/24", BridgeLab::TUNNEL_A),
        route_dev("100.100.3.0/24", "wgnosuch0"),
        route_via("10.0.0.0/33", via),
        route_via("not-a-prefix", via),
        route_via("100.100.4.0/24", "bogus"),
        route_via("100.100.5.0/24", "127.0.0.1"),
        route_via("198.51.101.0/24", via),
    ];
    let expected = vec![
        installed("198.51.100.0/24"),
        refused(
            "192.0.2.1/24",
            "host bits set (the network is 192.0.2.0/24)",
        ),
        refused("127.0.0.0/8", "loopback prefix (within 127.0.0.0/8)"),
        refused("::1/128", "loopback prefix (within ::1/128)"),
        refused("224.0.0.0/4", "multicast prefix (within 224.0.0.0/4)"),
        refused("239.1.0.0/16", "multicast prefix (within 224.0.0.0/4)"),
        refused("ff02::/16", "multicast prefix (within ff00::/8)"),
        refused(
            "169.254.0.0/16",
            "link-local prefix (within 169.254.0.0/16)",
        ),
        installed("2001:db8:1::/48"),
        refused("fe80::/64", "link-local prefix (within fe80::/10)"),
        refused("0.0.0.0/8", "\"this network\" prefix (within 0.0.0.0/8)"),
        refused("0.1.0.0/16", "\"this network\" prefix (within 0.0.0.0/8)"),
        refused(
            "100.100.1.0/24",
            "nexthop 198.18.0.2 is not on any of wgd's tunnels (allow_other_interfaces is off)",
        ),
        refused(
            "100.100.2.0/24",
            &format!("nexthop 10.255.0.0 is this host's own address on {tunnel}"),
        ),
        refused("100.100.3.0/24", "no tunnel named \"wgnosuch0\""),
        refused("10.0.0.0/33", "\"10.0.0.0/33\" is not a prefix"),
        refused("not-a-prefix", "\"not-a-prefix\" is not a prefix"),
        refused("100.100.4.0/24", "nexthop \"bogus\" is not an address"),
        refused("100.100.5.0/24", "nexthop 127.0.0.1 is a loopback address"),
        installed("198.51.101.0/24"),
    ];
    let results = add(&mut client, routes).await?;
    assert_eq!(results, expected, "daemon log:\n{}", lab.log());
    let good = ["198.51.100.0/24", "2001:db8:1::/48", "198.51.101.0/24"];
    let lines = assert_kernel_gained(&lab, &untouched, &good);
    assert!(
        lines.contains(&format!(
            "198.51.100.0/24 via {via} dev {tunnel} proto 200 metric 20 onlink"
        )),
        "{lines:?}"
    );
    // A refused route is not kept either: the owner has the good ones only.
    let mut kept: Vec<String> = listed(&mut client, "cli")
        .await?
        .into_iter()
        .map(|route| route.prefix)
        .collect();
    kept.sort();
    let mut good_sorted: Vec<String> = good.iter().map(|p| (*p).to_owned()).collect();
    good_sorted.sort();
    assert_eq!(
        kept, good_sorted,
        "the bridge keeps only the routes it took"
    );
    let with_good = snapshot(&lab)?;

    // A refused replacement leaves the owner's route as it was.
    let results = add(
        &mut client,
        vec![route_via("198.51.100.0/24", BridgeLab::UNDERLAY_B)],
    )
    .await?;
    assert_eq!(
        results,
        [refused(
            "198.51.100.0/24",
            "nexthop 198.18.0.2 is not on any of wgd's tunnels (allow_other_interfaces is off)"
        )]
    );
    assert_kernel_unchanged(&lab, &with_good, "a refused replacement");

    let results = delete(&mut client, &good).await?;
    assert_eq!(
        results,
        good.map(|prefix| outcome(prefix, Withdrawn, "")).to_vec()
    );
    assert_kernel_unchanged(&lab, &untouched, "after deleting the good routes");

    // --- A session: the same, in a batch ------------------------------
    let mut session = Session::open(&mut client, "refusal-speaker").await?;
    let routes = vec![
        route_via("192.0.2.128/25", via),
        route_via("192.0.2.1/24", via),
        route_via("127.1.0.0/16", via),
        route_via("239.1.0.0/16", via),
        route_dev("fe80::/64", &tunnel),
        route_via("169.254.169.0/24", via),
        route_via("0.1.0.0/16", via),
        route_via("100.100.1.0/24", BridgeLab::UNDERLAY_B),
        route_via("100.100.2.0/24", BridgeLab::TUNNEL_A),
        route_dev("100.100.3.0/24", "wgnosuch0"),
        route_via("300.0.0.0/8", via),
        route_dev("2001:db8:2::/48", &tunnel),
    ];
    let expected = vec![
        installed("192.0.2.128/25"),
        refused(
            "192.0.2.1/24",
            "host bits set (the network is 192.0.2.0/24)",
        ),
        refused("127.1.0.0/16", "loopback prefix (within 127.0.0.0/8)"),
        refused("239.1.0.0/16", "multicast prefix (within 224.0.0.0/4)"),
        refused("fe80::/64", "link-local prefix (within fe80::/10)"),
        refused(
            "169.254.169.0/24",
            "link-local prefix (within 169.254.0.0/16)",
        ),
        refused("0.1.0.0/16", "\"this network\" prefix (within 0.0.0.0/8)"),
        refused(
            "100.100.1.0/24",
            "nexthop 198.18.0.2 is not on any of wgd's tunnels (allow_other_interfaces is off)",
        ),
        refused(
            "100.100.2.0/24",
            &format!("nexthop 10.255.0.0 is this host's own address on {tunnel}"),
        ),
        refused("100.100.3.0/24", "no tunnel named \"wgnosuch0\""),
        refused("300.0.0.0/8", "\"300.0.0.0/8\" is not a prefix"),
        installed("2001:db8:2::/48"),
    ];
    let results = session.batch(1, routes, Operation::Add).await?;
    assert_eq!(results, expected, "daemon log:\n{}", lab.log());
    let session_good = ["192.0.2.128/25", "2001:db8:2::/48"];
    assert_kernel_gained(&lab, &untouched, &session_good);
    let results = session
        .batch(
            2,
            session_good
                .iter()
                .map(|prefix| route_via(prefix, via))
                .collect(),
            Operation::Delete,
        )
        .await?;
    assert_eq!(
        results,
        session_good
            .map(|prefix| outcome(prefix, Withdrawn, ""))
            .to_vec()
    );
    assert_kernel_unchanged(&lab, &untouched, "after the session withdrew its routes");
    drop(session);

    // --- Owner names that are wgd's own --------------------------------
    for owner in ["bgp:x", "bgp:192.0.2.1", "fpm", "adopted"] {
        let (requests, outgoing) = mpsc::channel(1);
        requests.send(hello(owner, 0)).await?;
        let status = match client.session(ReceiverStream::new(outgoing)).await {
            Ok(_) => panic!("a session as {owner:?} was accepted"),
            Err(status) => status,
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(
            status.message(),
            format!("owner name \"{owner}\" is reserved for wgd")
        );
        drop(requests);
    }
    let status = client
        .add_routes(api::AddRoutesRequest {
            owner: "fpm".into(),
            routes: vec![route_via("198.51.100.0/24", via)],
        })
        .await
        .expect_err("AddRoutes as fpm");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_kernel_unchanged(&lab, &untouched, "after the reserved owners");

    // --- The CLI ------------------------------------------------------
    let output = lab
        .wgd
        .output(&lab.a, &["route", "add", "127.0.0.0/8", "via", via])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "`wgd route add 127.0.0.0/8` succeeded: {output:?}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line == "127.0.0.0/8: refused: loopback prefix (within 127.0.0.0/8)"),
        "stderr of `wgd route add 127.0.0.0/8`:\n{stderr}"
    );
    assert_kernel_unchanged(&lab, &untouched, "after `wgd route add 127.0.0.0/8`");

    // --- A route that is not wgd's, in the slot wgd would use ----------
    let foreign = "203.0.113.0/24";
    let foreign_v6 = "2001:db8:ff::/48";
    lab.a.check(&[
        "ip", "route", "add", foreign, "via", via, "dev", &tunnel, "metric", "20", "onlink",
    ])?;
    lab.a.check(&[
        "ip", "-6", "route", "add", foreign_v6, "dev", &tunnel, "metric", "20",
    ])?;
    let with_foreign = snapshot(&lab)?;
    let foreign_lines: Vec<String> = with_foreign
        .iter()
        .filter(|line| line.starts_with("203.0.113.0/24 ") || line.starts_with("2001:db8:ff::/48 "))
        .cloned()
        .collect();
    assert_eq!(foreign_lines.len(), 2, "{foreign_lines:?}");
    assert!(
        foreign_lines
            .iter()
            .all(|line| !line.contains(" proto 200 ")),
        "{foreign_lines:?}"
    );
    let results_over_foreign = add(
        &mut client,
        vec![
            route_via(foreign, via),
            route_dev(foreign_v6, &tunnel),
            route_via("198.51.102.0/24", via),
        ],
    )
    .await?;
    assert_eq!(
        results_over_foreign.iter().map(|r| r.1).collect::<Vec<_>>(),
        [Failed, Failed, Installed],
        "{results_over_foreign:?}\ndaemon log:\n{}",
        lab.log()
    );
    for (prefix, _, reason) in &results_over_foreign[..2] {
        assert!(
            reason.contains("File exists"),
            "{prefix}: the kernel's EEXIST should be the reason, not {reason:?}"
        );
    }
    assert_kernel_gained(&lab, &with_foreign, &["198.51.102.0/24"]);
    let listed_foreign: Vec<api::RouteEntry> = listed(&mut client, "cli")
        .await?
        .into_iter()
        .filter(|route| route.prefix == foreign || route.prefix == foreign_v6)
        .collect();
    assert!(
        listed_foreign.len() == 2 && listed_foreign.iter().all(|r| r.state() == Failed),
        "wgd routes shows the learned routes as failed: {listed_foreign:?}"
    );
    let results = delete(&mut client, &[foreign, foreign_v6, "198.51.102.0/24"]).await?;
    assert!(
        results.iter().all(|result| result.1 == Withdrawn),
        "{results:?}"
    );
    assert_kernel_unchanged(
        &lab,
        &with_foreign,
        "after deleting the learned routes over foreign ones",
    );
    // (Implied by the snapshot; said once more the way an operator looks.)
    let now = snapshot(&lab)?;
    for line in &foreign_lines {
        assert!(now.contains(line), "the foreign route `{line}` is gone");
    }

    // Checked last, so that the kernel checks above run whatever it says:
    // the owner is told the kernel's error once, as `FibError` words it.
    for (prefix, _, reason) in &results_over_foreign[..2] {
        assert_eq!(
            reason, "kernel refused: File exists",
            "{prefix}: the reason of a route the kernel refused"
        );
    }
    Ok(())
}

/// `prefix_limit = 3`: an owner's 4th prefix is refused, a replacement of
/// one of its 3 is not, and a withdrawal makes room again; through the
/// unary API and a session (each owner has its own count).
#[tokio::test(flavor = "multi_thread")]
async fn the_prefix_limit_refuses_the_owners_next_prefix_only() -> anyhow::Result<()> {
    let lab = BridgeLab::new("prefix_limit = 3")?;
    let mut client = lab.client().await?;
    let tunnel = lab.tunnel_a.clone();
    let via = BridgeLab::TUNNEL_B;
    let limit = "over the owner's prefix limit of 3";
    let untouched = snapshot(&lab)?;

    let results = add(
        &mut client,
        vec![
            route_via("198.51.100.0/24", via),
            route_via("198.51.101.0/24", via),
            route_via("198.51.102.0/24", via),
            route_via("198.51.103.0/24", via),
        ],
    )
    .await?;
    assert_eq!(
        results,
        [
            installed("198.51.100.0/24"),
            installed("198.51.101.0/24"),
            installed("198.51.102.0/24"),
            refused("198.51.103.0/24", limit),
        ],
        "daemon log:\n{}",
        lab.log()
    );
    let three = ["198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"];
    assert_kernel_gained(&lab, &untouched, &three);
    let with_three = snapshot(&lab)?;

    // The 4th alone: still refused, nothing moves.
    let results = add(&mut client, vec![route_via("198.51.103.0/24", via)]).await?;
    assert_eq!(results, [refused("198.51.103.0/24", limit)]);
    assert_kernel_unchanged(&lab, &with_three, "the 4th prefix, alone");

    // Replacing one of the 3 is no new prefix: taken, and the kernel
    // route is replaced in place.
    let results = add(&mut client, vec![route_dev("198.51.101.0/24", &tunnel)]).await?;
    assert_eq!(results, [installed("198.51.101.0/24")], "{}", lab.log());
    let (added, removed) = diff(&with_three, &snapshot(&lab)?);
    assert_eq!(
        (added, removed),
        (
            vec![format!(
                "198.51.101.0/24 dev {tunnel} proto 200 scope 253 metric 20"
            )],
            vec![format!(
                "198.51.101.0/24 via {via} dev {tunnel} proto 200 metric 20 onlink"
            )]
        ),
        "the replacement should change the one kernel route"
    );

    // A withdrawal makes room for the 4th.
    assert_eq!(
        delete(&mut client, &["198.51.100.0/24"]).await?,
        [outcome("198.51.100.0/24", Withdrawn, "")]
    );
    assert_eq!(
        add(&mut client, vec![route_via("198.51.103.0/24", via)]).await?,
        [installed("198.51.103.0/24")]
    );

    // A session's owner has its own 3.
    let before_session = snapshot(&lab)?;
    let mut session = Session::open(&mut client, "limited-speaker").await?;
    let results = session
        .batch(
            1,
            vec![
                route_via("192.0.2.0/26", via),
                route_via("192.0.2.64/26", via),
                route_via("127.0.0.0/8", via),
                route_via("192.0.2.128/26", via),
                route_via("192.0.2.192/26", via),
                route_via("192.0.2.0/26", via),
            ],
            Operation::Add,
        )
        .await?;
    assert_eq!(
        results,
        [
            installed("192.0.2.0/26"),
            installed("192.0.2.64/26"),
            refused("127.0.0.0/8", "loopback prefix (within 127.0.0.0/8)"),
            installed("192.0.2.128/26"),
            refused("192.0.2.192/26", limit),
            installed("192.0.2.0/26"),
        ],
        "a refused route takes no room; a re-sent one is a replacement\ndaemon log:\n{}",
        lab.log()
    );
    assert_kernel_gained(
        &lab,
        &before_session,
        &["192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26"],
    );
    Ok(())
}

/// `allow_other_interfaces = true`: a nexthop on the underlay is taken and
/// resolved by the kernel; the prefix checks still hold.
#[tokio::test(flavor = "multi_thread")]
async fn other_interfaces_are_allowed_when_the_config_says_so() -> anyhow::Result<()> {
    let lab = BridgeLab::new("allow_other_interfaces = true")?;
    let mut client = lab.client().await?;
    let untouched = snapshot(&lab)?;
    let results = add(
        &mut client,
        vec![
            route_via("192.0.2.0/24", BridgeLab::UNDERLAY_B),
            route_via("127.0.0.0/8", BridgeLab::UNDERLAY_B),
            route_via("100.100.2.0/24", BridgeLab::TUNNEL_A),
        ],
    )
    .await?;
    assert_eq!(
        results,
        [
            installed("192.0.2.0/24"),
            refused("127.0.0.0/8", "loopback prefix (within 127.0.0.0/8)"),
            refused(
                "100.100.2.0/24",
                &format!(
                    "nexthop 10.255.0.0 is this host's own address on {}",
                    lab.tunnel_a
                )
            ),
        ],
        "daemon log:\n{}",
        lab.log()
    );
    let added = assert_kernel_gained(&lab, &untouched, &["192.0.2.0/24"]);
    assert!(
        added[0].starts_with(&format!("192.0.2.0/24 via {} dev ", BridgeLab::UNDERLAY_B))
            && !added[0].contains(&format!("dev {} ", lab.tunnel_a)),
        "the route goes via the underlay neighbour: {added:?}"
    );
    let ours = lab.kernel_routes()?;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0].starts_with("192.0.2.0/24 via 198.18.0.2 "),
        "{ours:?}"
    );
    Ok(())
}
