//! Site meshes: one file describes every site of a full mesh, and each
//! site's `wgd.toml` is derived from it.
//!
//! `file` reads the mesh file (`mesh.toml`) into a [`Mesh`]: the sites in
//! the order written, the tunnel pools, the defaults; it finds everything
//! the file alone can show (names, overlaps, a pool too small, two sites
//! that cannot reach each other). `layout` is what a pair of sites shares,
//! computed from their places in the file: tunnel names, `/31` and `/127`,
//! listen ports. `keys` makes and reads each site's key pair in
//! `<mesh dir>/<site>/`. `render` writes one site's `wgd.toml` and reads it
//! back with the parser `wgd up` uses, so that nothing rendered is refused
//! later. [`check`] runs all of it over every site.
//!
//! Appending a site renumbers nothing: pair `(i, j)`, `i < j`, takes the
//! `j*(j-1)/2 + i`-th subnet of the pool, and site `i`'s tunnel to `j`
//! listens on `listen_port + j + 1`, so the pairs and ports of the sites
//! already there stay as they are.

mod file;
mod keys;
mod layout;
mod render;

use std::fmt;
use std::path::{Path, PathBuf};

pub use file::{BgpDefaults, Host, Mesh, Site};
pub use keys::KeyOutcome;

use crate::config::{ConfigError, ConfigErrors};

/// A file `init` or `render` could not write.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

/// Reads the mesh file at `path` and checks what the file alone shows
/// (not the keys).
pub fn load(path: &Path) -> Result<Mesh, ConfigErrors> {
    let reading = file::read(path);
    match reading.mesh {
        Some(mesh) if reading.errors.is_empty() => Ok(mesh),
        _ => Err(sorted(reading.errors)),
    }
}

/// Makes the key pairs that are missing; never replaces a key.
pub fn init(mesh: &Mesh) -> Result<Vec<KeyOutcome>, WriteError> {
    keys::init(mesh)
}

/// What a mesh that passed [`check`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub file: PathBuf,
    pub sites: usize,
    /// Pairs of sites, each joined by one tunnel.
    pub pairs: u128,
    /// `/31`s in the IPv4 pool.
    pub capacity: u128,
    pub pool: ipnet::Ipv4Net,
    /// Sites whose directory holds only `public.key` (their private key
    /// stays on the router): their configs are rendered there.
    pub public_only: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ok: {} sites, {} tunnels (each site has {}), {} of the {} /31s of {} in use; \
             names, endpoints, keys and addresses unique; every pair of sites can reach each other",
            self.file.display(),
            self.sites,
            self.pairs,
            self.sites.saturating_sub(1),
            self.pairs,
            self.capacity,
            self.pool
        )?;
        if !self.public_only.is_empty() {
            write!(
                f,
                " (not rendered here, holding only public.key: {})",
                self.public_only.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Checks the mesh file at `path`, its keys, and every site's rendered
/// config; every problem found, in the order of the file.
pub fn check(path: &Path) -> Result<Summary, ConfigErrors> {
    let reading = file::read(path);
    let mut errors = reading.errors;
    let keys = keys::read(&reading.file, &reading.sites, &mut errors);
    let Some(mesh) = reading.mesh.filter(|_| errors.is_empty()) else {
        return Err(sorted(errors));
    };
    let keys: Vec<keys::SiteKeys> = keys.into_iter().flatten().collect();
    let public_keys: Vec<_> = keys.iter().map(|keys| keys.public).collect();
    for (index, site_keys) in keys.iter().enumerate() {
        if site_keys.private {
            let text = render::text(&mesh, index, &public_keys);
            if let Err(refused) = render::validate(&mesh, index, &text) {
                errors.extend(refused);
            }
        }
    }
    if !errors.is_empty() {
        return Err(sorted(errors));
    }
    Ok(Summary {
        file: mesh.file.clone(),
        sites: mesh.sites.len(),
        pairs: layout::pairs(mesh.sites.len()),
        capacity: layout::capacity4(mesh.pool),
        pool: mesh.pool,
        public_only: mesh
            .sites
            .iter()
            .zip(&keys)
            .filter(|(_, keys)| !keys.private)
            .map(|(site, _)| site.name.clone())
            .collect(),
    })
}

/// The `wgd.toml` of the site named `site`, checked as `wgd up` would read
/// it from `<mesh dir>/<site>/wgd.toml`. Refused when any site's keys are
/// wrong (a key two sites share breaks both).
pub fn render(mesh: &Mesh, site: &str) -> Result<String, ConfigErrors> {
    let Some(index) = mesh.sites.iter().position(|each| each.name == site) else {
        let names: Vec<&str> = mesh.sites.iter().map(|each| each.name.as_str()).collect();
        return Err(ConfigErrors(vec![ConfigError {
            file: mesh.file.clone(),
            line: 0,
            message: format!(
                "no site \"{site}\" in the mesh (its sites: {})",
                names.join(", ")
            ),
        }]));
    };
    let mut errors = Vec::new();
    let sites: Vec<(String, usize)> = mesh
        .sites
        .iter()
        .map(|each| (each.name.clone(), each.line))
        .collect();
    let keys = keys::read(&mesh.file, &sites, &mut errors);
    if !errors.is_empty() {
        return Err(sorted(errors));
    }
    let keys: Vec<keys::SiteKeys> = keys.into_iter().flatten().collect();
    if !keys[index].private {
        let own = &mesh.sites[index];
        return Err(ConfigErrors(vec![ConfigError {
            file: mesh.file.clone(),
            line: own.line,
            message: format!(
                "site \"{site}\": no private.key in {}: render the site where its private key is",
                mesh.site_directory(own).display()
            ),
        }]));
    }
    let public_keys: Vec<_> = keys.iter().map(|keys| keys.public).collect();
    let text = render::text(mesh, index, &public_keys);
    render::validate(mesh, index, &text).map_err(sorted)?;
    Ok(text)
}

/// Writes a rendered config to `path` (mode 0600) through a temporary file
/// beside it, so a reader never sees half a file.
pub fn write_rendered(path: &Path, text: &str) -> Result<(), WriteError> {
    render::write(path, text)
}

/// Where `render` writes a site's config by default:
/// `<mesh dir>/<site>/wgd.toml`.
pub fn config_path(mesh: &Mesh, site: &Site) -> PathBuf {
    render::default_path(mesh, site)
}

fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|error| error.line);
    ConfigErrors(errors)
}

#[cfg(test)]
mod tests;
