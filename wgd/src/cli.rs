//! The `wgd` command line as clap sees it: commands, arguments and their
//! help. `main` runs them; the build script reads the same definitions
//! for the man pages and completions (so nothing here may use the `wgd`
//! library).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "wgd",
    version,
    about = "WireGuard tunnels for routers: no routes, no rules, unless asked",
    long_about = "wgd brings up WireGuard interfaces from a declarative config (its own \
                  wgd.toml, or wg-quick .conf files as they are) with AllowedIPs 0.0.0.0/0, ::/0 \
                  and no routes, no rules and no fwmark, so that static routes, OSPF or BGP own \
                  the routing table. `wgd run` is the daemon: it keeps the tunnels as the config \
                  says, serves a gRPC API and metrics, and hosts the route bridge and the \
                  built-in BGP speaker. The config is described in wgd.toml(5)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Auto,
    Kernel,
    Userspace,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the tunnels of a wgd.toml or wg-quick .conf file up (or in line with it).
    Up {
        file: PathBuf,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Override the config's backend choice.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },
    /// Take down the tunnels of a config file, or one tunnel by name.
    Down {
        /// A config file or a tunnel name.
        target: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Show tunnels and peers (from the running daemon when there is one).
    Status {
        #[arg(long)]
        json: bool,
        /// The config whose daemon to ask (its [daemon] api) and whose peer names to show.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long)]
        api: Option<PathBuf>,
    },
    /// Follow the running daemon's events (tunnel up/down, handshakes, dead peers), one per line.
    Events {
        #[arg(long)]
        json: bool,
        /// The config whose daemon to ask (its [daemon] api).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long)]
        api: Option<PathBuf>,
    },
    /// Add or delete a static route through the running daemon's bridge.
    Route {
        #[command(subcommand)]
        action: RouteAction,
        /// The config whose daemon to ask (its [daemon] api).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long, global = true)]
        api: Option<PathBuf>,
    },
    /// List the bridge's routes: owner, nexthops, installed or why not.
    Routes {
        #[arg(long)]
        json: bool,
        /// Only this owner's routes.
        #[arg(long)]
        owner: Option<String>,
        /// Only routes with a nexthop on this tunnel.
        #[arg(long)]
        tunnel: Option<String>,
        /// Only routes for exactly this prefix.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(short, long)]
        config: Option<PathBuf>,
        #[arg(long)]
        api: Option<PathBuf>,
    },
    /// The built-in BGP speaker: `wgd bgp summary`, `wgd bgp routes`.
    Bgp {
        #[command(subcommand)]
        what: BgpCommand,
        /// The config whose daemon to ask (its [daemon] api).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long, global = true)]
        api: Option<PathBuf>,
    },
    /// BFD sessions over the tunnels: peer, tunnel, state, intervals, uptime, last diagnostic.
    Bfd {
        #[arg(long)]
        json: bool,
        /// The config whose daemon to ask (its [daemon] api).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long)]
        api: Option<PathBuf>,
    },
    /// Origin validation: RPKI caches (state, serial, last update) and VRP counts.
    Rpki {
        #[command(subcommand)]
        what: Option<RpkiCommand>,
        #[arg(long, global = true)]
        json: bool,
        /// The config whose daemon to ask (its [daemon] api).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        /// The daemon's API socket.
        #[arg(long, global = true)]
        api: Option<PathBuf>,
    },
    /// Site meshes: key pairs and every site's wgd.toml from one mesh file.
    Mesh {
        #[command(subcommand)]
        action: MeshCommand,
    },
    /// Print a new private key.
    Genkey,
    /// Read a private key on stdin, print its public key.
    Pubkey,
    /// Check a config as `wgd run -c FILE` would, changing nothing: every
    /// error with its file and line; exit status 1 if there is one.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the shell completion script for wgd.
    Completions {
        #[arg(value_enum)]
        shell: wgd_manual::Shell,
    },
    /// Write wgd's man pages into a folder: wgd(8), one per command, and wgd.toml(5).
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run the daemon: reconcile at start, on SIGHUP and periodically.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Take the tunnels down when exiting (default: leave them up).
        #[arg(long)]
        down_on_exit: bool,
    },
    /// The BFD process `wgd run` starts: it holds the BFD sessions so
    /// that they outlive a restart of `wgd run`. Not for use by hand.
    #[command(hide = true)]
    Bfdd {
        /// The Unix socket `wgd run` talks to it on.
        #[arg(long)]
        socket: PathBuf,
        /// Seconds the sessions wait for `wgd run` to declare them again
        /// before they go AdminDown.
        #[arg(long, default_value_t = 120)]
        grace_time: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BgpCommand {
    /// Neighbors: AS, state, uptime, prefixes received, accepted and sent.
    Summary {
        #[arg(long)]
        json: bool,
    },
    /// Paths from neighbors and originated here, best ones marked `*>`.
    Routes {
        #[arg(long)]
        json: bool,
        /// Only this neighbor's paths: its address, and for a link-local
        /// one its tunnel (`10.0.0.2`, `fe80::2%dn42b`).
        #[arg(long)]
        neighbor: Option<String>,
        /// Only paths for exactly this prefix.
        #[arg(long)]
        prefix: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RpkiCommand {
    /// The validation state of a route (valid, invalid, not-found) and the VRPs covering it.
    Validate {
        /// The route's prefix, like 192.0.2.0/24.
        prefix: String,
        /// Its origin AS, like 65001 or AS65001.
        origin_as: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Make each site's missing key pair in <mesh dir>/<site>/ (never replaces a key).
    Init { file: PathBuf },
    /// Write one site's wgd.toml (default <mesh dir>/<site>/wgd.toml).
    Render {
        file: PathBuf,
        site: String,
        /// Where to write it; `-` prints it.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check the mesh, its keys and every site's config; every problem, one per line.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum RouteAction {
    /// `wgd route add 192.0.2.0/24 via 10.255.0.1` or `... dev wg-b`; several
    /// `via` make an ECMP route.
    Add {
        prefix: String,
        /// via ADDRESS [dev TUNNEL] | dev TUNNEL, repeated for ECMP.
        #[arg(num_args = 1.., required = true)]
        nexthop: Vec<String>,
        #[arg(long, default_value_t = 0)]
        metric: u32,
        /// Lower wins between owners (default 20).
        #[arg(long)]
        distance: Option<u32>,
        #[arg(long, default_value = "cli")]
        owner: String,
        /// Run BFD to each nexthop's address over its tunnel ([bfd]'s
        /// timers); while a session is down, after it has been up, routes
        /// through that address are not installed.
        #[arg(long)]
        bfd: bool,
    },
    /// Delete a static route.
    Del {
        prefix: String,
        #[arg(long, default_value = "cli")]
        owner: String,
    },
}

/// wgd's man pages: wgd(8) and a page per command, from the definitions
/// above with `version` as the version; wgd.toml(5) from its description
/// in `man/wgd.toml.txt`.
pub fn pages(version: &'static str) -> Vec<wgd_manual::Page> {
    use clap::CommandFactory;
    let mut pages = wgd_manual::command_pages(
        Cli::command().version(version),
        "8",
        &["wgd.toml(5)", "wgd-lab(8)", "wg(8)", "wireguard-go(8)"],
    );
    pages.push(wgd_manual::format_page(
        "wgd.toml",
        "5",
        &format!("wgd {version}"),
        include_str!("../man/wgd.toml.txt"),
    ));
    pages
}
