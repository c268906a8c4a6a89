//! Each site's key pair, in `<mesh dir>/<site>/`: `private.key` (mode
//! 0600, in a directory of mode 0700) and `public.key`.
//!
//! `init` makes what is missing and never replaces a key, so it can run
//! again after sites are added. `read` checks what is there: a site may
//! hold only `public.key` (its private key made and kept on the router
//! itself); a `public.key` beside a `private.key` must be its public key;
//! no two sites may share a key.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::{Mesh, WriteError};
use crate::config::{ConfigError, values};
use crate::keys::{PrivateKey, PublicKey};

pub(super) const PRIVATE_KEY_FILE: &str = "private.key";
const PUBLIC_KEY_FILE: &str = "public.key";

/// What `init` did for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOutcome {
    pub site: String,
    /// Files made, by name (`private.key`, `public.key`).
    pub created: Vec<&'static str>,
    /// Files that were there and were left as they are.
    pub kept: Vec<&'static str>,
}

impl fmt::Display for KeyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |files: &[&str]| {
            files
                .iter()
                .map(|file| format!("{}/{file}", self.site))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match (self.created.is_empty(), self.kept.is_empty()) {
            (false, true) => write!(f, "created {}", list(&self.created)),
            (true, _) => write!(f, "kept {}", list(&self.kept)),
            (false, false) => write!(
                f,
                "created {}, kept {}",
                list(&self.created),
                list(&self.kept)
            ),
        }
    }
}

/// Makes each site's missing key files.
pub(super) fn init(mesh: &Mesh) -> Result<Vec<KeyOutcome>, WriteError> {
    let mut outcomes = Vec::new();
    for site in &mesh.sites {
        let directory = mesh.site_directory(site);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .map_err(|error| write_error(&directory, &error))?;
        let private_path = directory.join(PRIVATE_KEY_FILE);
        let public_path = directory.join(PUBLIC_KEY_FILE);
        let mut outcome = KeyOutcome {
            site: site.name.clone(),
            created: Vec::new(),
            kept: Vec::new(),
        };
        let public = if private_path.exists() {
            outcome.kept.push(PRIVATE_KEY_FILE);
            // A public.key that is missing is made from the private key;
            // one that is there is `read`'s to check.
            if public_path.exists() {
                None
            } else {
                let text = std::fs::read_to_string(&private_path)
                    .map(Zeroizing::new)
                    .map_err(|error| write_error(&private_path, &error))?;
                let private = PrivateKey::from_base64(&text).map_err(|reason| WriteError {
                    path: private_path.clone(),
                    reason: format!("cannot make public.key from it: {reason}"),
                })?;
                Some(private.public_key())
            }
        } else if public_path.exists() {
            // The site made its own key pair and handed in its public key.
            None
        } else {
            let private = PrivateKey::generate();
            let text = Zeroizing::new(format!("{}\n", private.to_base64()));
            create_file(&private_path, text.as_bytes(), 0o600)?;
            outcome.created.push(PRIVATE_KEY_FILE);
            Some(private.public_key())
        };
        match public {
            Some(public) => {
                create_file(&public_path, format!("{public}\n").as_bytes(), 0o644)?;
                outcome.created.push(PUBLIC_KEY_FILE);
            }
            None => outcome.kept.push(PUBLIC_KEY_FILE),
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Writes a new file (never over one) with `mode`.
fn create_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|error| write_error(path, &error))
}

fn write_error(path: &Path, error: &std::io::Error) -> WriteError {
    WriteError {
        path: path.to_path_buf(),
        reason: values::describe_io(error),
    }
}

/// One site's keys, as far as rendering needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SiteKeys {
    pub public: PublicKey,
    /// Whether `private.key` is there (and valid).
    pub private: bool,
}

/// The keys of `sites` (name, line of their table in `file`), in order;
/// `None` for a site whose keys are wrong, with the reason in `errors`.
pub(super) fn read(
    file: &Path,
    sites: &[(String, usize)],
    errors: &mut Vec<ConfigError>,
) -> Vec<Option<SiteKeys>> {
    let directory = file.parent().unwrap_or(Path::new("/"));
    let mut error = |line: usize, message: String| {
        errors.push(ConfigError {
            file: file.to_path_buf(),
            line,
            message,
        });
    };
    let mut seen: HashMap<PublicKey, (&str, usize)> = HashMap::new();
    let mut keys = Vec::new();
    for (name, line) in sites {
        let read = read_site(&directory.join(name));
        let site_keys = match read {
            Ok(site_keys) => site_keys,
            Err(reason) => {
                error(*line, format!("site \"{name}\": {reason}"));
                keys.push(None);
                continue;
            }
        };
        match seen.entry(site_keys.public) {
            Entry::Occupied(first) => {
                let (other, other_line) = first.get();
                error(
                    *line,
                    format!(
                        "site \"{name}\": its public key is also site \"{other}\"'s (line {other_line}): every site needs a key pair of its own (remove {name}/*.key and run wgd mesh init again)"
                    ),
                );
                keys.push(None);
            }
            Entry::Vacant(slot) => {
                slot.insert((name, *line));
                keys.push(Some(site_keys));
            }
        }
    }
    keys
}

fn read_site(directory: &Path) -> Result<SiteKeys, String> {
    let private_path = directory.join(PRIVATE_KEY_FILE);
    let public_path = directory.join(PUBLIC_KEY_FILE);
    let private = if private_path.exists() {
        Some(values::key_file(
            directory,
            PRIVATE_KEY_FILE,
            "private key",
            PrivateKey::from_base64,
        )?)
    } else {
        None
    };
    let public = if public_path.exists() {
        let shown = public_path.display();
        let text = std::fs::read_to_string(&public_path)
            .map_err(|error| format!("cannot read {shown}: {}", values::describe_io(&error)))?;
        Some(PublicKey::from_base64(&text).map_err(|reason| format!("{shown}: {reason}"))?)
    } else {
        None
    };
    match (private, public) {
        (None, None) => Err(format!(
            "no {PRIVATE_KEY_FILE} or {PUBLIC_KEY_FILE} in {} (run wgd mesh init)",
            directory.display()
        )),
        (Some(private), Some(public)) if private.public_key() != public => Err(format!(
            "{} is not the public key of {}",
            public_path.display(),
            private_path.display()
        )),
        (Some(private), _) => Ok(SiteKeys {
            public: private.public_key(),
            private: true,
        }),
        (None, Some(public)) => Ok(SiteKeys {
            public,
            private: false,
        }),
    }
}
