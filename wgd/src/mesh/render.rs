//! One site's `wgd.toml`: a tunnel to each other site, in the order of the
//! mesh file, and with BGP a `[bgp]` that originates the site's LANs and
//! has one neighbor per tunnel.
//!
//! The text depends only on the mesh and the public keys, so rendering
//! twice gives the same bytes. It names the private key by file
//! (`private.key`, beside it), so `<mesh dir>/<site>/` is what a site
//! deploys as `/etc/wgd/`. `validate` reads it back with `wgd up`'s parser
//! from that place.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::keys::PRIVATE_KEY_FILE;
use super::{Mesh, WriteError, layout};
use crate::config::{self, Config, ConfigError, values};
use crate::keys::PublicKey;

/// The name of a rendered config in its site's directory.
pub(super) const CONFIG_FILE: &str = "wgd.toml";

/// The `wgd.toml` of site `index`; `public_keys` holds every site's.
pub(super) fn text(mesh: &Mesh, index: usize, public_keys: &[PublicKey]) -> String {
    let own = &mesh.sites[index];
    let source = mesh.file.file_name().map_or_else(
        || "the mesh file".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    let others: Vec<(usize, &super::Site)> = mesh
        .sites
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .collect();
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        out,
        "# Site \"{}\" of the mesh in {source}, rendered by `wgd mesh render`:\n\
         # change the mesh file and render again rather than edit this file.\n\
         # The private key is {PRIVATE_KEY_FILE}, beside this file.",
        own.name
    );
    if let (Some(defaults), Some(asn)) = (&mesh.bgp, own.asn) {
        let networks: Vec<String> = own.lans.iter().map(|lan| format!("\"{lan}\"")).collect();
        let _ = write!(
            out,
            "\n[bgp]\nasn = {asn}\nnetworks = [{}]\n",
            networks.join(", ")
        );
        if let Some(hold_time) = defaults.hold_time {
            let _ = writeln!(out, "hold_time = {hold_time}");
        }
        if let Some(graceful_restart) = defaults.graceful_restart {
            let _ = writeln!(out, "graceful_restart = {graceful_restart}");
        }
        if let Some(restart_time) = defaults.restart_time {
            let _ = writeln!(out, "restart_time = {restart_time}");
        }
        if let Some(max_paths) = defaults.max_paths {
            let _ = writeln!(out, "max_paths = {max_paths}");
        }
        for (_, other) in &others {
            let _ = write!(
                out,
                "\n[[bgp.neighbor]]\ntunnel = \"{}\"\nremote_as = {}\ndescription = \"{}\"\n",
                layout::tunnel_name(own, other),
                other.asn.unwrap_or_default(),
                other.name
            );
            if defaults.bfd.is_some() {
                let _ = writeln!(out, "bfd = true");
            }
        }
        if let Some(bfd) = defaults.bfd {
            let _ = writeln!(out, "\n[bfd]");
            for (key, value) in [
                ("transmit_interval", bfd.transmit_interval),
                ("receive_interval", bfd.receive_interval),
                ("multiplier", bfd.multiplier),
            ] {
                if let Some(value) = value {
                    let _ = writeln!(out, "{key} = {value}");
                }
            }
        }
    }
    for (other_index, other) in &others {
        let mut addresses = vec![format!(
            "\"{}\"",
            layout::address4(mesh.pool, index, *other_index)
        )];
        if let Some(pool6) = mesh.pool6 {
            addresses.push(format!(
                "\"{}\"",
                layout::address6(pool6, index, *other_index)
            ));
        }
        let _ = write!(
            out,
            "\n[[tunnel]]\nname = \"{}\"\nprivate_key_file = \"{PRIVATE_KEY_FILE}\"\n\
             listen_port = {}\naddress = [{}]\n",
            layout::tunnel_name(own, other),
            layout::listen_port(mesh.listen_port, *other_index),
            addresses.join(", ")
        );
        if let Some(mtu) = mesh.mtu {
            let _ = writeln!(out, "mtu = {mtu}");
        }
        let _ = write!(
            out,
            "\n[[tunnel.peer]]\nname = \"{}\"\npublic_key = \"{}\"\n",
            other.name, public_keys[*other_index]
        );
        if let Some(endpoint) = &other.endpoint {
            let port = layout::listen_port(mesh.listen_port, index);
            let _ = writeln!(out, "endpoint = \"{}\"", endpoint.with_port(port));
        }
        if let Some(seconds) = keepalive(mesh, index) {
            let _ = writeln!(out, "persistent_keepalive = {seconds}");
        }
    }
    out
}

/// A site without an endpoint is reached only after it sends, through
/// whatever NAT is in front of it: it keeps its tunnels open itself.
const KEEPALIVE_WITHOUT_ENDPOINT: u16 = 25;

fn keepalive(mesh: &Mesh, index: usize) -> Option<u16> {
    mesh.persistent_keepalive.or_else(|| {
        mesh.sites[index]
            .endpoint
            .is_none()
            .then_some(KEEPALIVE_WITHOUT_ENDPOINT)
    })
}

/// Reads `text` back as `wgd up` would from `<mesh dir>/<site>/wgd.toml`.
/// Its errors are the mesh's, at the site's line.
pub(super) fn validate(mesh: &Mesh, index: usize, text: &str) -> Result<Config, Vec<ConfigError>> {
    let site = &mesh.sites[index];
    let path = mesh.site_directory(site).join(CONFIG_FILE);
    config::parse_str(&path, text).map_err(|errors| {
        errors
            .0
            .into_iter()
            .map(|error| ConfigError {
                file: mesh.file.clone(),
                line: site.line,
                message: format!(
                    "site \"{}\": its rendered {CONFIG_FILE} would be refused: line {}: {}",
                    site.name, error.line, error.message
                ),
            })
            .collect()
    })
}

/// Writes `text` to `path` (mode 0600) by way of a temporary file beside
/// it and a rename.
pub(super) fn write(path: &Path, text: &str) -> Result<(), WriteError> {
    let error = |path: &Path, error: std::io::Error| WriteError {
        path: path.to_path_buf(),
        reason: values::describe_io(&error),
    };
    let name = path.file_name().map_or_else(
        || CONFIG_FILE.into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
        });
    if let Err(failure) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error(&temporary, failure));
    }
    std::fs::rename(&temporary, path).map_err(|failure| {
        let _ = std::fs::remove_file(&temporary);
        error(path, failure)
    })
}

/// Where `render` writes a site's config unless told otherwise.
pub(super) fn default_path(mesh: &Mesh, site: &super::Site) -> std::path::PathBuf {
    mesh.site_directory(site).join(CONFIG_FILE)
}
