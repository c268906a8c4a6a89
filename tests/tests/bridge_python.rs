//! The Python example `examples/inject_routes.py` against a live `wgd run`:
//! a user who follows `examples/README.md` injects two prefixes through a
//! gRPC session with it, sees them reported and listed as installed, finds
//! them in the kernel via the far site's tunnel address after the script
//! has ended (the session's hold time keeps them), and pings the far LAN
//! through them. A refused prefix makes the script fail with the reason,
//! and its `--static` and `--delete` modes add and remove a route that
//! outlives any session.
//!
//! Needs `python3` with `grpcio` and `grpcio-tools` (`scripts/setup`
//! installs them), besides what every end-to-end test needs.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::Context;
use wgd_labs::wait_for;
use wgd_tests::bridge::BridgeLab;

const OTHER_PREFIX: &str = "100.64.1.0/24";
const STATIC_PREFIX: &str = "100.64.2.0/24";
const DEADLINE: Duration = Duration::from_secs(10);

/// The example, from the repository root.
fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/inject_routes.py")
}

/// What one run of the example printed, and whether it succeeded.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The lines of stdout that mention `prefix` (its per-route result and
    /// its line in the listing).
    fn lines_of(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(prefix))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\nstdout:\n{}\nstderr:\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// `python3 examples/inject_routes.py --socket <A's socket> <args>`, run
/// from the test (the socket is a file, reachable from any namespace).
fn inject(lab: &BridgeLab, args: &[&str]) -> anyhow::Result<Run> {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new("python3")
        .arg(example())
        .arg("--socket")
        .arg(&lab.socket)
        .args(args)
        .output()
        .context("running python3 (is it installed?)")?;
    Ok(Run {
        success: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Fails early, and says what to do, if the example's modules are missing.
fn python_grpc() -> anyhow::Result<()> {
    let output = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .context("running python3 (is it installed?)")?;
    anyhow::ensure!(
        output.status.success(),
        "python3 lacks grpcio or grpcio-tools (run scripts/setup):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Whether A's kernel has `prefix` via B's tunnel address, from wgd.
fn in_kernel(lab: &BridgeLab, prefix: &str) -> bool {
    let via = format!("{prefix} via {} ", BridgeLab::TUNNEL_B);
    lab.kernel_routes()
        .is_ok_and(|routes| routes.iter().any(|line| line.starts_with(&via)))
}

#[test]
fn the_python_example_injects_lists_and_deletes_routes() -> anyhow::Result<()> {
    python_grpc()?;
    let lab = BridgeLab::new("")?;

    // A session that ends when the script does: its routes stay for the
    // hold time.
    let run = inject(
        &lab,
        &[
            "--owner",
            "example",
            "--nexthop",
            BridgeLab::TUNNEL_B,
            "--hold",
            "300",
            BridgeLab::FAR_LAN,
            OTHER_PREFIX,
        ],
    )?;
    assert!(run.success, "{run}\ndaemon log:\n{}", lab.log());
    for prefix in [BridgeLab::FAR_LAN, OTHER_PREFIX] {
        let lines = run.lines_of(prefix);
        assert_eq!(lines.len(), 2, "{prefix}: no result and listing in\n{run}");
        assert!(
            lines.iter().all(|line| line.contains("INSTALLED")),
            "{prefix} not installed:\n{run}"
        );
        let listed = format!("example via {}", BridgeLab::TUNNEL_B);
        let listed_line = lines[1].split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            listed_line.contains(&listed),
            "{prefix} not listed as `{listed}`:\n{run}"
        );
    }
    assert!(
        run.stdout.contains("routes=2 installed=2"),
        "no statistics for the owner:\n{run}"
    );

    wait_for(DEADLINE, "both prefixes in A's kernel via B", || {
        in_kernel(&lab, BridgeLab::FAR_LAN) && in_kernel(&lab, OTHER_PREFIX)
    })
    .with_context(|| format!("kernel: {:?}\n{}", lab.kernel_routes(), lab.log()))?;
    assert!(
        lab.a.pings(BridgeLab::FAR_LAN_HOST)?,
        "no ping from A to {} over the injected route",
        BridgeLab::FAR_LAN_HOST
    );

    // A refused prefix: the script says why and fails; the other owner's
    // routes are untouched.
    let run = inject(
        &lab,
        &[
            "--owner",
            "example-bad",
            "--nexthop",
            BridgeLab::TUNNEL_B,
            "127.0.0.0/8",
        ],
    )?;
    assert!(!run.success, "a refused route, yet exit 0:\n{run}");
    let refused = run.lines_of("127.0.0.0/8");
    assert!(
        refused
            .first()
            .is_some_and(|line| line.contains("REFUSED") && line.contains("loopback")),
        "no refusal with its reason:\n{run}"
    );
    assert!(run.stderr.contains("refused"), "{run}");
    assert!(in_kernel(&lab, BridgeLab::FAR_LAN) && in_kernel(&lab, OTHER_PREFIX));

    // --static adds a route that stays until --delete removes it.
    let run = inject(
        &lab,
        &["--static", "--nexthop", BridgeLab::TUNNEL_B, STATIC_PREFIX],
    )?;
    assert!(run.success, "{run}\ndaemon log:\n{}", lab.log());
    assert!(
        run.lines_of(STATIC_PREFIX)
            .iter()
            .all(|line| line.contains("INSTALLED")),
        "{run}"
    );
    wait_for(DEADLINE, "the static route in A's kernel", || {
        in_kernel(&lab, STATIC_PREFIX)
    })?;
    let run = inject(&lab, &["--delete", STATIC_PREFIX])?;
    assert!(run.success, "{run}\ndaemon log:\n{}", lab.log());
    assert!(
        run.lines_of(STATIC_PREFIX)
            .first()
            .is_some_and(|line| line.contains("WITHDRAWN")),
        "{run}"
    );
    wait_for(DEADLINE, "the static route to leave A's kernel", || {
        !in_kernel(&lab, STATIC_PREFIX)
    })?;
    assert!(
        in_kernel(&lab, BridgeLab::FAR_LAN),
        "{:?}",
        lab.kernel_routes()
    );
    Ok(())
}
