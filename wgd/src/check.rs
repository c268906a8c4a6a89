//! `wgd check -c FILE`: what `wgd run -c FILE` would refuse or leave out,
//! found without changing anything, for a unit's `ExecStartPre=` or an
//! operator about to send SIGHUP.
//!
//! The file goes through the same `config::load` as `wgd run` (its
//! includes and key files with it), then through the same check of the
//! `[bridge]` and tunnel source addresses against the host's addresses,
//! which only reads them. Where `wgd run` starts anyway and leaves a
//! broken included file out, `check` counts its errors too: the operator
//! asked what is wrong.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, Config, ConfigError};
use crate::daemon::routes;

/// What `check` found.
#[derive(Debug)]
pub struct Findings {
    /// The config, when its own file was accepted (its notices in it).
    pub config: Option<Config>,
    /// Every problem, each at its file and line: the file's own in line
    /// order, then the included files', then the source addresses'.
    pub errors: Vec<ConfigError>,
}

/// Reads and checks the config at `path` as `wgd run` would at start.
pub fn check(path: &Path) -> Findings {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            return Findings {
                config: None,
                errors: errors.0,
            };
        }
    };
    let mut errors: Vec<ConfigError> = config
        .included
        .iter()
        .flat_map(|file| file.errors.iter().cloned())
        .collect();
    // As at the start of `wgd run`: an address the config's own tunnels
    // bring counts.
    if let Err(missing) = routes::check_sources(&config, true) {
        errors.extend(missing.0);
    }
    Findings {
        config: Some(config),
        errors,
    }
}

impl Findings {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The closing line: what the config holds when it passed
    /// (`2 tunnels (wg-a, wg-b), BGP with 1 neighbor`), else how many
    /// errors and what `wgd run` would do with them.
    pub fn verdict(&self) -> String {
        let count = plural(self.errors.len(), "error");
        let Some(config) = &self.config else {
            return format!("{count}: `wgd run` would refuse this config");
        };
        // Source addresses the host lacks stop `wgd run`; a broken
        // included file does not.
        if self
            .errors
            .iter()
            .any(|error| !config.includes(&error.file))
        {
            return format!("{count}: `wgd run` would refuse this config");
        }
        if !self.passed() {
            let left_out: Vec<String> = config
                .included
                .iter()
                .filter(|file| !file.errors.is_empty())
                .map(|file| file.path.display().to_string())
                .collect();
            return format!("{count}: `wgd run` would leave out {}", left_out.join(", "));
        }
        let mut text = plural(config.tunnels.len(), "tunnel");
        if !config.tunnels.is_empty() {
            let names: Vec<&str> = config
                .tunnels
                .iter()
                .map(|tunnel| tunnel.name.as_str())
                .collect();
            let _ = write!(text, " ({})", names.join(", "));
        }
        if let Some(bgp) = &config.daemon.bgp {
            let _ = write!(
                text,
                ", BGP with {}",
                plural(bgp.neighbors.len(), "neighbor")
            );
        }
        if config.daemon.fpm.is_some() {
            text.push_str(", FPM");
        }
        text
    }
}

/// `1 error`, `2 errors`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
