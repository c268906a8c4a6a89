//! Writes wgd-lab's man pages and shell completions, from the same clap
//! definitions as the binary (`src/cli.rs`), under
//! `target/<profile>/share/`, where `cargo deb -p wgd` takes them from.

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cli.rs");
    let Some(share) = wgd_manual::share_dir() else {
        println!(
            "cargo::warning=cannot tell the target folder from OUT_DIR: no man pages for packaging"
        );
        return;
    };
    let command = <cli::Cli as clap::CommandFactory>::command();
    if let Err(error) = wgd_manual::install(&share, &command, &cli::pages()) {
        println!(
            "cargo::warning=cannot write the man pages and completions under {}: {error}",
            share.display()
        );
    }
}
