//! `wgd-lab`: runs a containerlab topology file with network namespaces,
//! on a machine without containers, and checks what the lab claims.
//!
//! `up` reads the topology ([`topology`]) and its checks file ([`checks`]),
//! makes the nodes and links ([`lab`], recording each step in [`state`]),
//! waits for the checks to pass, and prints a report ([`report`]) with a
//! picture ([`svg`]). `check` does the last two for a lab that is up,
//! `exec` runs a command in a node ([`node`]), `down` removes everything.

mod checks;
mod cli;
mod lab;
mod node;
mod report;
mod state;
mod svg;
mod topology;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};

use checks::{Checks, Verdict};
use cli::{Cli, Command};
use node::NodeShell;
use state::LabState;
use topology::Topology;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.name.as_deref()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wgd-lab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let load = |file: &Path| -> anyhow::Result<Topology> {
        let mut topology = Topology::load(file)?;
        if let Some(name) = name {
            topology.name = topology::checked_name(name)?;
        }
        Ok(topology)
    };
    match command {
        Command::Up {
            file,
            no_check,
            wgd,
            svg,
        } => {
            let topology = load(&file)?;
            let checks = Checks::load(&topology)?;
            let bin_dir = wgd_dir(wgd.as_deref())?;
            let state = lab::up(&topology, &bin_dir).with_context(|| {
                format!(
                    "lab \"{}\" is left as far as it got; `wgd-lab --name {} down {}` removes it",
                    topology.name,
                    topology.name,
                    file.display()
                )
            })?;
            println!(
                "lab {} is up: {} namespaces",
                topology.name,
                state.nodes.len()
            );
            let run_checks = (!no_check).then_some(None);
            report(&topology, &state, &checks, run_checks, svg.as_deref())
        }
        Command::Check {
            file,
            svg,
            checks,
            since,
        } => {
            let topology = load(&file)?;
            let checks = match checks {
                Some(path) => Checks::load_from(&path, &topology)?,
                None => Checks::load(&topology)?,
            };
            let state = up_state(&topology.name, &file)?;
            let since = match since {
                Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
                }
                Some(seconds) => bail!("--since {seconds}: expected seconds since the epoch"),
                None => None,
            };
            report(&topology, &state, &checks, Some(since), svg.as_deref())
        }
        Command::Down { file } => {
            let lab = match name {
                Some(name) => topology::checked_name(name)?,
                None => topology::lab_name(&file)?,
            };
            let removed = lab::down(&lab)?;
            if removed.namespaces.is_empty() && removed.directory.is_none() {
                println!("lab {lab}: nothing to remove");
            } else {
                println!(
                    "lab {lab} is down: removed namespaces [{}], stopped {} processes, removed {}",
                    removed.namespaces.join(", "),
                    removed.processes,
                    removed
                        .directory
                        .map(|dir| dir.display().to_string())
                        .unwrap_or_else(|| "no state directory".into())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => Ok(wgd_manual::print_completions(Cli::command(), shell)),
        Command::Man { dir } => {
            for page in cli::pages() {
                let path = page.write_to(&dir).with_context(|| {
                    format!("writing {} into {}", page.file_name, dir.display())
                })?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec {
            file,
            node,
            command,
        } => {
            let topology = load(&file)?;
            let state = up_state(&topology.name, &file)?;
            let shell = lab::shell(&state, &topology, &node)?;
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            let status = shell
                .command(&argv)
                .status()
                .with_context(|| format!("running {} in node \"{node}\"", command.join(" ")))?;
            Ok(ExitCode::from(
                status.code().map_or(1, |code| code.clamp(0, 255) as u8),
            ))
        }
    }
}

fn up_state(lab: &str, file: &Path) -> anyhow::Result<LabState> {
    match LabState::load(lab)? {
        Some(state) => Ok(state),
        None => bail!(
            "lab \"{lab}\" is not up: `wgd-lab --name {lab} up {}` first",
            file.display()
        ),
    }
}

/// The directory whose `wgd` the nodes run. Never under /run: a node has
/// its own.
fn wgd_dir(asked: Option<&Path>) -> anyhow::Result<PathBuf> {
    let binary = match asked {
        Some(path) => {
            if path.file_name().and_then(|name| name.to_str()) != Some("wgd") {
                bail!(
                    "--wgd {}: the binary must be named wgd (node commands call it by that name)",
                    path.display()
                );
            }
            path.canonicalize()
                .with_context(|| format!("--wgd {}", path.display()))?
        }
        None => {
            let beside = std::env::current_exe()?.with_file_name("wgd");
            let on_path = std::env::var_os("PATH")
                .map(|path| {
                    std::env::split_paths(&path)
                        .map(|dir| dir.join("wgd"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            std::iter::once(beside)
                .chain(on_path)
                .find(|candidate| candidate.is_file())
                .context("no wgd binary beside wgd-lab or on PATH: build it (`cargo build -p wgd --bins`) or give --wgd")?
        }
    };
    let dir = binary.parent().unwrap_or(Path::new("/")).to_owned();
    if dir.starts_with("/run") {
        bail!(
            "{}: a wgd under /run is not visible in the nodes (each has its own /run)",
            binary.display()
        );
    }
    Ok(dir)
}

fn shells(topology: &Topology, state: &LabState) -> BTreeMap<String, NodeShell> {
    state
        .nodes
        .iter()
        .filter_map(|node| {
            Some((
                node.name.clone(),
                lab::shell(state, topology, &node.name).ok()?,
            ))
        })
        .collect()
}

/// Runs the checks (if asked: `Some`, with the time of the change they
/// follow if there is one), reads the nodes, prints the report and writes
/// the picture; fails if a check failed.
fn report(
    topology: &Topology,
    state: &LabState,
    checks: &Checks,
    run_checks: Option<Option<SystemTime>>,
    svg: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let shells = shells(topology, state);
    let verdict: Option<Verdict> = run_checks.map(|since| {
        let mut verdict = checks::converge(checks, &shells);
        verdict.since = since;
        verdict
    });
    let views = report::observe(state, &shells);
    let picture = svg::draw(topology, &views);
    let mut written = Vec::new();
    let own = state.dir().join(format!("{}.svg", topology.name));
    for path in std::iter::once(own.as_path()).chain(svg) {
        std::fs::write(path, &picture).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    print!(
        "{}",
        report::render(
            topology,
            &views,
            verdict.as_ref(),
            checks.file.as_deref(),
            &written
        )
    );
    Ok(match verdict {
        Some(verdict) if !verdict.passed() => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}
