//! The `wgd-lab` command line as clap sees it. `main` runs it; the build
//! script reads the same definitions for the man pages and completions
//! (so nothing here may use the rest of the crate).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wgd-lab",
    version,
    about = "Run containerlab topologies as network namespaces and check them",
    long_about = "wgd-lab reads a containerlab topology file (*.clab.yml) and makes its nodes \
                  as network namespaces joined by veth pairs, on a machine without containers, \
                  runs each node's commands (wgd, FRR, BIRD, GoBGP), then waits for the checks \
                  of the lab's checks file (<lab>.checks.toml) to pass and prints a report with \
                  a picture. Run as root."
)]
pub struct Cli {
    /// Run the lab under this name instead of the file's (as
    /// `containerlab deploy --name`): namespaces are `<name>-<node>`.
    #[arg(long, global = true, value_name = "NAME")]
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the lab, wait for its checks to pass, print the report.
    Up {
        file: PathBuf,
        /// Make the lab and report, without waiting for the checks.
        #[arg(long)]
        no_check: bool,
        /// The `wgd` that node commands run (default: the one beside
        /// wgd-lab, else the first on PATH).
        #[arg(long, value_name = "PATH")]
        wgd: Option<PathBuf>,
        /// Also write the picture here.
        #[arg(long, value_name = "PATH")]
        svg: Option<PathBuf>,
    },
    /// Wait for the checks of a lab that is up to pass; print the report.
    Check {
        file: PathBuf,
        /// Also write the picture here.
        #[arg(long, value_name = "PATH")]
        svg: Option<PathBuf>,
        /// Another checks file instead of the lab's own (what must hold
        /// after a change, such as a cut tunnel).
        #[arg(long, value_name = "PATH")]
        checks: Option<PathBuf>,
        /// When the change the checks follow was made, in seconds since
        /// the epoch (`date +%s.%N`): the report then says how long after
        /// it every check passed (a reroute time, after a cut).
        #[arg(long, value_name = "SECONDS")]
        since: Option<f64>,
    },
    /// Remove everything the lab made (also after a crash of `up`).
    Down { file: PathBuf },
    /// Print the shell completion script for wgd-lab.
    Completions {
        #[arg(value_enum)]
        shell: wgd_manual::Shell,
    },
    /// Write wgd-lab's man pages into a folder: wgd-lab(8) and one per command.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run a command in a node: `wgd-lab exec FILE NODE -- CMD...`.
    Exec {
        file: PathBuf,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// wgd-lab's man pages: wgd-lab(8) and a page per command.
pub fn pages() -> Vec<wgd_manual::Page> {
    use clap::CommandFactory;
    wgd_manual::command_pages(
        Cli::command(),
        "8",
        &["wgd(8)", "wgd.toml(5)", "ip-netns(8)"],
    )
}
