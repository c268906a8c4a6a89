//! The `wgd` command line: runs the commands `cli` defines.

mod cli;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, FromArgMatches};
use cli::{BackendArg, BgpCommand, Cli, Command, MeshCommand, RouteAction, RpkiCommand};
use wgd::config::{self, BackendChoice, Config};
use wgd::keys::PrivateKey;
use wgd::reconcile::Host;
use wgd::system::Depth;

/// `wgd --version`: the version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WGD_GIT_COMMIT"),
    ")"
);

fn load(file: &Path) -> Result<Config, ExitCode> {
    match config::load(file) {
        Ok(config) => {
            for notice in &config.notices {
                eprintln!("notice: {notice}");
            }
            // A broken included file does not stop the others.
            for file in config
                .included
                .iter()
                .filter(|file| !file.errors.is_empty())
            {
                for error in &file.errors {
                    eprintln!("error: {error}");
                }
                eprintln!("warning: {} is left out", file.path.display());
            }
            Ok(config)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Err(ExitCode::from(2))
        }
    }
}

fn init_logging() {
    init_logging_at("info");
}

/// Logs to stderr at `default` unless `WGD_LOG` says otherwise. The device
/// library's own log lines are always off: at trace level they print
/// netlink messages that hold keys.
fn init_logging_at(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WGD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        .add_directive(
            "defguard_wireguard_rs=off"
                .parse()
                .expect("a valid directive"),
        );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A full table is a million small allocations made on one thread (the
/// speaker) and freed on another (the bridge): glibc's malloc spent a
/// third of the bridge thread's time consolidating them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (the 16th of `mi_option_e` in
/// its `mimalloc.h`), which libmimalloc-sys does not name; the test below
/// checks that it is the option whose default is a second.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Pages mimalloc no longer uses go back to the system 10 ms after they
/// empty, not a second (its default): a full table arrives in bursts, and
/// what each burst's buffers freed was still resident when the table was
/// in. `wgd-bench bgp --feeder replay`, 1M real-shaped: RSS 217-271 ->
/// 205 B per prefix (0 ms: 190-208, and withdrawing slower).
fn return_freed_pages_sooner() {
    #[allow(unsafe_code)]
    // SAFETY: sets one of the allocator's options, read on its next purge.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 10)
    };
}

fn main() -> ExitCode {
    return_freed_pages_sooner();
    let matches = Cli::command().version(VERSION).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Mesh { action } => mesh(action),
        Command::Genkey => {
            println!("{}", PrivateKey::generate().to_base64());
            ExitCode::SUCCESS
        }
        Command::Pubkey => {
            let mut text = zeroize::Zeroizing::new(String::new());
            if std::io::stdin().read_to_string(&mut text).is_err() {
                eprintln!("cannot read a key on stdin");
                return ExitCode::FAILURE;
            }
            match PrivateKey::from_base64(&text) {
                Ok(key) => {
                    println!("{}", key.public_key());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("private key on stdin: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Up {
            file,
            dry_run,
            backend,
        } => {
            let mut config = match load(&file) {
                Ok(config) => config,
                Err(code) => return code,
            };
            if let Some(backend) = backend {
                config.daemon.backend = match backend {
                    BackendArg::Auto => BackendChoice::Auto,
                    BackendArg::Kernel => BackendChoice::Kernel,
                    BackendArg::Userspace => BackendChoice::Userspace,
                };
            }
            init_logging_quiet();
            runtime().block_on(async {
                let host = match Host::open() {
                    Ok(host) => host,
                    Err(error) => return fail(error),
                };
                match host.reconcile(&config, dry_run, false).await {
                    Ok(outcome) => report(&outcome, dry_run),
                    Err(error) => fail(error),
                }
            })
        }
        Command::Down { target, dry_run } => {
            init_logging_quiet();
            let path = Path::new(&target);
            let (source, names) = if path.is_file() {
                match std::path::absolute(path) {
                    Ok(source) => (Some(source), vec![]),
                    Err(error) => return fail(error),
                }
            } else {
                (None, vec![target.clone()])
            };
            runtime().block_on(async {
                let host = match Host::open() {
                    Ok(host) => host,
                    Err(error) => return fail(error),
                };
                match host.down(source.as_deref(), &names, dry_run).await {
                    Ok(outcome) if outcome.actions.is_empty() && outcome.errors.is_empty() => {
                        eprintln!("{target}: no tunnel that wgd created here matches");
                        ExitCode::FAILURE
                    }
                    Ok(outcome) => report(&outcome, dry_run),
                    Err(error) => fail(error),
                }
            })
        }
        Command::Status { json, config, api } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(status(json, config, api))
        }
        Command::Events { json, config, api } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(events(json, config, api))
        }
        Command::Route {
            action,
            config,
            api,
        } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(route(action, config, api))
        }
        Command::Routes {
            json,
            owner,
            tunnel,
            prefix,
            config,
            api,
        } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            let request = wgd_proto::v1::ListRoutesRequest {
                owner: owner.unwrap_or_default(),
                prefix: prefix.unwrap_or_default(),
                tunnel: tunnel.unwrap_or_default(),
            };
            runtime().block_on(routes(json, request, config, api))
        }
        Command::Bgp { what, config, api } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(bgp(what, config, api))
        }
        Command::Rpki {
            what,
            json,
            config,
            api,
        } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(rpki(what, json, config, api))
        }
        Command::Bfd { json, config, api } => {
            init_logging_quiet();
            let config = match config.as_deref().map(load).transpose() {
                Ok(config) => config,
                Err(code) => return code,
            };
            runtime().block_on(bfd(json, config, api))
        }
        Command::Bfdd { socket, grace_time } => {
            init_logging();
            let grace = std::time::Duration::from_secs(grace_time);
            runtime().block_on(async {
                match bgp_bridge::bgp::bfd::host::serve(&socket, grace).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => fail(error),
                }
            })
        }
        Command::Check { config } => check(&config),
        Command::Completions { shell } => wgd_manual::print_completions(Cli::command(), shell),
        Command::Man { dir } => {
            for page in cli::pages(VERSION) {
                match page.write_to(&dir) {
                    Ok(path) => println!("wrote {}", path.display()),
                    Err(error) => return fail(format!("{}: {error}", dir.display())),
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            config,
            down_on_exit,
        } => {
            init_logging();
            runtime().block_on(async {
                match wgd::daemon::run(&config, down_on_exit).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => fail(error),
                }
            })
        }
    }
}

fn mesh(action: MeshCommand) -> ExitCode {
    let refused = |errors: config::ConfigErrors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    };
    match action {
        MeshCommand::Init { file } => {
            let mesh = match wgd::mesh::load(&file) {
                Ok(mesh) => mesh,
                Err(errors) => return refused(errors),
            };
            match wgd::mesh::init(&mesh) {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        println!("{outcome}");
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            }
        }
        MeshCommand::Render { file, site, output } => {
            let mesh = match wgd::mesh::load(&file) {
                Ok(mesh) => mesh,
                Err(errors) => return refused(errors),
            };
            let text = match wgd::mesh::render(&mesh, &site) {
                Ok(text) => text,
                Err(errors) => return refused(errors),
            };
            let path = match output {
                Some(path) if path.as_os_str() == "-" => {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                    return ExitCode::SUCCESS;
                }
                Some(path) => path,
                None => {
                    let own = mesh.sites.iter().find(|each| each.name == site);
                    wgd::mesh::config_path(&mesh, own.expect("render found the site"))
                }
            };
            match wgd::mesh::write_rendered(&path, &text) {
                Ok(()) => {
                    println!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            }
        }
        MeshCommand::Check { file } => match wgd::mesh::check(&file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(errors) => refused(errors),
        },
    }
}

/// `wgd check`: notices and errors on stderr, one per line, then a verdict
/// (on stdout when the config passed).
fn check(file: &Path) -> ExitCode {
    init_logging_quiet();
    let findings = wgd::check::check(file);
    for notice in findings.config.iter().flat_map(|config| &config.notices) {
        eprintln!("notice: {notice}");
    }
    for error in &findings.errors {
        eprintln!("{error}");
    }
    if findings.passed() {
        println!("{}: ok: {}", file.display(), findings.verdict());
        ExitCode::SUCCESS
    } else {
        eprintln!("{}: {}", file.display(), findings.verdict());
        ExitCode::FAILURE
    }
}

/// One-shot commands log warnings only; their output is the actions.
fn init_logging_quiet() {
    init_logging_at("warn");
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// Prints what was done (or would be), then what failed; fails if anything did.
fn report(outcome: &wgd::reconcile::Outcome, dry_run: bool) -> ExitCode {
    if outcome.errors.is_empty() || !outcome.actions.is_empty() {
        print_actions(&outcome.actions, dry_run);
    }
    for error in &outcome.errors {
        eprintln!("error: {error}");
    }
    if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_actions(actions: &[wgd::plan::Action], dry_run: bool) {
    let mut out = std::io::stdout().lock();
    if actions.is_empty() {
        let _ = writeln!(out, "nothing to do: the host matches the config");
        return;
    }
    let marker = if dry_run { "[dry-run]" } else { "[#]" };
    for action in actions {
        for line in action.to_string().lines() {
            let _ = writeln!(out, "{marker} {line}");
        }
    }
}

/// The daemon's socket: as asked, from the config, or the one this
/// namespace's daemon left a pointer to.
fn api_socket(host: &Host, config: Option<&Config>, api: Option<PathBuf>) -> Option<PathBuf> {
    api.or_else(|| config.map(|config| config.daemon.api.clone()))
        .or_else(|| {
            std::fs::read_to_string(wgd::daemon::api_pointer(host))
                .ok()
                .map(PathBuf::from)
        })
}

/// The route client of this namespace's daemon (never another
/// namespace's, whose socket path may be the same).
/// The socket of this namespace's daemon, checked to be this namespace's
/// (every namespace sees the same file system, so a socket path may lead
/// to another namespace's daemon).
async fn daemon_socket(config: Option<&Config>, api: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    let host = Host::open().map_err(fail)?;
    let Some(path) = api_socket(&host, config, api) else {
        return Err(fail(
            "no daemon runs in this namespace (give -c FILE or --api SOCKET)",
        ));
    };
    if let Err(error) = wgd::daemon::api::fetch_status(&path).await {
        return Err(fail(format!("{}: {error}", path.display())));
    }
    Ok(path)
}

/// The route client of this namespace's daemon.
async fn route_client(
    config: Option<&Config>,
    api: Option<PathBuf>,
) -> Result<
    wgd_proto::v1::route_service_client::RouteServiceClient<tonic::transport::Channel>,
    ExitCode,
> {
    let path = daemon_socket(config, api).await?;
    wgd::daemon::api::connect_routes(&path)
        .await
        .map_err(|error| fail(format!("{}: {error}", path.display())))
}

async fn route(action: RouteAction, config: Option<Config>, api: Option<PathBuf>) -> ExitCode {
    use wgd::routes_cli::{describe_result, parse_nexthops};
    let mut client = match route_client(config.as_ref(), api).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let results = match action {
        RouteAction::Add {
            prefix,
            nexthop,
            metric,
            distance,
            owner,
            bfd,
        } => {
            let mut nexthops = match parse_nexthops(&nexthop) {
                Ok(nexthops) => nexthops,
                Err(error) => return fail(error),
            };
            if bfd {
                if let Some(without) = nexthops.iter().find(|nexthop| nexthop.address.is_empty()) {
                    return fail(format!(
                        "--bfd: dev {} has no address to run BFD to: give via ADDRESS dev {}",
                        without.tunnel, without.tunnel
                    ));
                }
                for nexthop in &mut nexthops {
                    nexthop.bfd = true;
                }
            }
            let request = wgd_proto::v1::AddRoutesRequest {
                owner,
                routes: vec![wgd_proto::v1::Route {
                    prefix,
                    nexthops,
                    distance,
                    metric,
                }],
            };
            client
                .add_routes(request)
                .await
                .map(|response| response.into_inner().results)
        }
        RouteAction::Del { prefix, owner } => client
            .delete_routes(wgd_proto::v1::DeleteRoutesRequest {
                owner,
                prefixes: vec![prefix],
            })
            .await
            .map(|response| response.into_inner().results),
    };
    let results = match results {
        Ok(results) => results,
        Err(status) => return fail(status.message()),
    };
    let mut code = ExitCode::SUCCESS;
    for result in &results {
        let refused = matches!(
            wgd_proto::v1::RouteState::try_from(result.state),
            Ok(wgd_proto::v1::RouteState::Refused | wgd_proto::v1::RouteState::Failed)
        );
        if refused {
            eprintln!("{}", describe_result(result));
            code = ExitCode::FAILURE;
        } else {
            println!("{}", describe_result(result));
        }
    }
    code
}

async fn routes(
    json: bool,
    request: wgd_proto::v1::ListRoutesRequest,
    config: Option<Config>,
    api: Option<PathBuf>,
) -> ExitCode {
    let mut client = match route_client(config.as_ref(), api).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.list_routes(request).await {
        Ok(response) => {
            let text = wgd::routes_cli::render_routes(&response.into_inner().routes, json);
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(status) => fail(status.message()),
    }
}

/// The daemon's BGP service (which also answers for BFD), or why not.
async fn bgp_client(
    config: Option<&Config>,
    api: Option<PathBuf>,
) -> Result<wgd_proto::v1::bgp_service_client::BgpServiceClient<tonic::transport::Channel>, ExitCode>
{
    let path = daemon_socket(config, api).await?;
    wgd::daemon::api::connect_bgp(&path)
        .await
        .map_err(|error| fail(format!("{}: {error}", path.display())))
}

async fn bgp(what: BgpCommand, config: Option<Config>, api: Option<PathBuf>) -> ExitCode {
    let mut client = match bgp_client(config.as_ref(), api).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let text = match what {
        BgpCommand::Summary { json } => {
            match client
                .get_summary(wgd_proto::v1::BgpSummaryRequest {})
                .await
            {
                Ok(response) => wgd::routes_cli::render_bgp_summary(&response.into_inner(), json),
                Err(status) => return fail(status.message()),
            }
        }
        BgpCommand::Routes {
            json,
            neighbor,
            prefix,
        } => {
            let request = wgd_proto::v1::BgpPathsRequest {
                neighbor: neighbor.unwrap_or_default(),
                prefix: prefix.unwrap_or_default(),
            };
            match client.list_paths(request).await {
                Ok(response) => {
                    wgd::routes_cli::render_bgp_paths(&response.into_inner().paths, json)
                }
                Err(status) => return fail(status.message()),
            }
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// `wgd rpki`: the daemon's RPKI caches, or one route's validation.
async fn rpki(
    what: Option<RpkiCommand>,
    json: bool,
    config: Option<Config>,
    api: Option<PathBuf>,
) -> ExitCode {
    let mut client = match bgp_client(config.as_ref(), api).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let text = match what {
        None => match client.get_rpki(wgd_proto::v1::RpkiRequest {}).await {
            Ok(response) => wgd::rpki_cli::render(&response.into_inner(), json),
            Err(status) => return fail(status.message()),
        },
        Some(RpkiCommand::Validate { prefix, origin_as }) => {
            let origin_as = match wgd::rpki_cli::parse_asn(&origin_as) {
                Ok(asn) => asn,
                Err(message) => return fail(message),
            };
            let request = wgd_proto::v1::RpkiValidateRequest {
                prefix: prefix.clone(),
                origin_as,
            };
            match client.validate_route(request).await {
                Ok(response) => wgd::rpki_cli::render_validation(
                    &prefix,
                    origin_as,
                    &response.into_inner(),
                    json,
                ),
                Err(status) => return fail(status.message()),
            }
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// `wgd bfd`: the daemon's BFD sessions.
async fn bfd(json: bool, config: Option<Config>, api: Option<PathBuf>) -> ExitCode {
    let mut client = match bgp_client(config.as_ref(), api).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let request = wgd_proto::v1::BfdSessionsRequest {};
    let text = match client.list_bfd_sessions(request).await {
        Ok(response) => wgd::bfd_cli::render(&response.into_inner().sessions, json),
        Err(status) => return fail(status.message()),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

async fn events(json: bool, config: Option<Config>, api: Option<PathBuf>) -> ExitCode {
    let path = match daemon_socket(config.as_ref(), api).await {
        Ok(path) => path,
        Err(code) => return code,
    };
    let mut client = match wgd::daemon::api::connect(&path).await {
        Ok(client) => client,
        Err(error) => return fail(format!("{}: {error}", path.display())),
    };
    let mut stream = match client
        .watch_events(wgd_proto::v1::WatchEventsRequest {})
        .await
    {
        Ok(response) => response.into_inner(),
        Err(error) => return fail(error.message()),
    };
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                let line = wgd::daemon::api::describe_event(&event, json);
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return ExitCode::SUCCESS;
                }
            }
            Ok(None) => return ExitCode::SUCCESS,
            // A daemon that stops drops the connection mid-stream.
            Err(error) => {
                eprintln!("the daemon closed the event stream ({})", error.message());
                return ExitCode::SUCCESS;
            }
        }
    }
}

async fn status(json: bool, config: Option<Config>, api: Option<PathBuf>) -> ExitCode {
    let host = match Host::open() {
        Ok(host) => host,
        Err(error) => return fail(error),
    };
    let api = api_socket(&host, config.as_ref(), api);
    let from_daemon = match &api {
        Some(path) if path.exists() => wgd::daemon::api::fetch_status(path).await.ok(),
        _ => None,
    };
    let status = match from_daemon {
        Some(status) => status,
        None => {
            let actual = match host.observe(config.as_ref(), Depth::Tunnels).await {
                Ok(actual) => actual,
                Err(error) => return fail(error),
            };
            let dead_after = config
                .as_ref()
                .map(|config| config.daemon.peer_dead_after)
                .unwrap_or(Duration::from_secs(180));
            wgd::status::collect(&actual, config.as_ref(), dead_after, SystemTime::now())
        }
    };
    let text = if json {
        serde_json::to_string_pretty(&status).expect("status serialises") + "\n"
    } else {
        status.to_string()
    };
    // A reader that stops early (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_defaults_to_a_second() {
        #[allow(unsafe_code)]
        // SAFETY: reads one of the allocator's options.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(
            delay,
            1000,
            "mimalloc's option {} is not the purge delay",
            super::PURGE_DELAY
        );
    }
}
