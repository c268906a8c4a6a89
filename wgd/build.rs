//! Puts the git commit wgd is built from into `WGD_GIT_COMMIT`, for
//! `wgd --version`. A packager building from a tarball (no `.git`) can
//! set `WGD_GIT_COMMIT` themselves; otherwise it is "unknown".
//!
//! Also writes wgd's man pages and shell completions, from the same clap
//! definitions as the binary (`src/cli.rs`), under
//! `target/<profile>/share/`, where `cargo deb` takes them from (it can
//! only package files that exist after the build).

use std::path::{Path, PathBuf};
use std::process::Command;

// Only the definitions and `pages` are used here.
#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=WGD_GIT_COMMIT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = match std::env::var("WGD_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => git(&manifest, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo::rustc-env=WGD_GIT_COMMIT={commit}");
    for file in watched(&manifest) {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    write_manual(&commit);
}

/// The man pages and completions, for packaging. A failure here is a
/// warning: a build does not need them.
fn write_manual(commit: &str) {
    println!("cargo::rerun-if-changed=src/cli.rs");
    println!("cargo::rerun-if-changed=man/wgd.toml.txt");
    let Some(share) = wgd_manual::share_dir() else {
        println!(
            "cargo::warning=cannot tell the target folder from OUT_DIR: no man pages for packaging"
        );
        return;
    };
    // Built once per run of this script: the pages keep it.
    let version: &'static str =
        Box::leak(format!("{} (commit {commit})", env!("CARGO_PKG_VERSION")).into_boxed_str());
    let command = <cli::Cli as clap::CommandFactory>::command().version(version);
    if let Err(error) = wgd_manual::install(&share, &command, &cli::pages(version)) {
        println!(
            "cargo::warning=cannot write the man pages and completions under {}: {error}",
            share.display()
        );
    }
}

/// The files whose change means another commit: HEAD (a checkout, in a
/// worktree its own), the branch it points at, and packed-refs (where a
/// branch lives after `git gc`). Only files that exist: cargo reruns a
/// script on every build while a watched file is missing.
fn watched(manifest: &Path) -> Vec<PathBuf> {
    let (Some(git_dir), Some(common_dir)) = (
        git(manifest, &["rev-parse", "--absolute-git-dir"]),
        git(
            manifest,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        ),
    ) else {
        return Vec::new();
    };
    let (git_dir, common_dir) = (PathBuf::from(git_dir), PathBuf::from(common_dir));
    let mut files = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(manifest, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(common_dir.join(branch));
    }
    files.retain(|file| file.is_file());
    files
}

/// `git <args>` run in `directory`, its output trimmed; `None` when git is
/// missing, fails, or says nothing.
fn git(directory: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}
