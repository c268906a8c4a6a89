//! `[daemon] include`: the wg-quick files a wgd.toml takes in, one tunnel
//! each, named after its file as `wgd up x.conf` names it.
//!
//! `candidates` expands the patterns into files and reads each with the
//! wg-quick reader, on its own: a broken file yields its errors, not a
//! refused wgd.toml. `toml_file` then checks the tunnels against the
//! file's own and each other (names, listen ports) and takes in the good
//! ones; for a broken file it takes the last good version the previous
//! config had, if any, so a typo saved in one peer's file never takes that
//! peering down, and never touches the others.

use std::path::{Path, PathBuf};

use super::model::{Config, ConfigError, IncludedFile, Notice, TunnelConfig, TunnelName};

/// One file an include pattern matched, as read.
#[derive(Debug)]
pub(super) struct Candidate {
    pub path: PathBuf,
    /// The tunnel named after the file, when that is a valid name.
    pub name: Option<TunnelName>,
    /// Its tunnel, or what is wrong with the file.
    pub read: Result<TunnelConfig, Vec<ConfigError>>,
    pub notices: Vec<Notice>,
    /// The tunnel the previous config took from this file.
    pub last_good: Option<TunnelConfig>,
}

impl Candidate {
    /// The record of this file in the config, once `toml_file` decided.
    pub fn outcome(&self, errors: Vec<ConfigError>, kept: bool) -> IncludedFile {
        IncludedFile {
            path: self.path.clone(),
            tunnel: self.name.clone(),
            errors,
            kept,
        }
    }
}

/// Whether a pattern's file name has wildcards.
fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Why a pattern cannot be used; checked when wgd.toml is read.
pub(super) fn check_pattern(pattern: &Path) -> Result<(), String> {
    let folder = pattern.parent().unwrap_or(Path::new("/"));
    if has_wildcards(&folder.to_string_lossy()) {
        return Err("wildcards are taken in the file name only, like /etc/wireguard/*.conf".into());
    }
    let name = pattern
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        return Err("names a folder; give files, like /etc/wireguard/*.conf".into());
    }
    if name.contains('[') {
        return Err("[...] classes are not taken; use * and ?".into());
    }
    Ok(())
}

/// `*` any run of characters, `?` one; a leading dot is matched only by a
/// dot (hidden files and editors' swap files stay out), as in the shell.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The files the patterns name, sorted and once each. A pattern without
/// wildcards names its file whether it exists or not (a missing one is
/// then reported); a pattern with them names the files it matches now.
pub(super) fn expand(patterns: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pattern in patterns {
        let name = pattern
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !has_wildcards(&name) {
            files.push(pattern.clone());
            continue;
        }
        let folder = pattern.parent().unwrap_or(Path::new("/"));
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.path().is_file();
            if is_file && matches(&name, &file_name) {
                files.push(folder.join(file_name));
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// Reads every file the patterns name; `previous` gives the last good
/// version of each file's tunnel.
pub(super) fn candidates(patterns: &[PathBuf], previous: Option<&Config>) -> Vec<Candidate> {
    expand(patterns)
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|stem| TunnelName::new(&stem.to_string_lossy()).ok());
            let last_good = previous.and_then(|previous| last_good(previous, &path));
            let (read, notices) = match super::load_file(&path, Some(super::Format::WgQuick), None)
            {
                Ok(mut config) => {
                    let notices = std::mem::take(&mut config.notices);
                    match config.tunnels.pop() {
                        Some(tunnel) => (Ok(tunnel), notices),
                        None => (Err(vec![]), notices),
                    }
                }
                Err(errors) => (Err(errors.0), vec![]),
            };
            Candidate {
                path,
                name,
                read,
                notices,
                last_good,
            }
        })
        .collect()
}

/// The tunnel `previous` took from the file at `path`.
fn last_good(previous: &Config, path: &Path) -> Option<TunnelConfig> {
    let file = previous
        .included
        .iter()
        .find(|file| file.path == path && (file.errors.is_empty() || file.kept))?;
    let name = file.tunnel.as_ref()?;
    previous
        .tunnels
        .iter()
        .find(|tunnel| &tunnel.name == name)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_in_the_shell() {
        assert!(matches("*.conf", "dn42a.conf"));
        assert!(!matches("*.conf", ".hidden.conf"));
        assert!(!matches("*.conf", "dn42a.conf.swp"));
        assert!(matches("dn42?.conf", "dn42a.conf"));
        assert!(!matches("dn42?.conf", "dn42ab.conf"));
        assert!(matches("*", "x"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("wg-*", "wg-"));
    }

    #[test]
    fn patterns_take_wildcards_in_the_file_name_only() {
        assert!(check_pattern(Path::new("/etc/wireguard/*.conf")).is_ok());
        assert!(check_pattern(Path::new("/etc/wireguard/wg0.conf")).is_ok());
        assert!(check_pattern(Path::new("/etc/*/x.conf")).is_err());
        assert!(check_pattern(Path::new("/etc/wireguard/[ab].conf")).is_err());
    }

    #[test]
    fn expansion_is_sorted_and_skips_folders_and_hidden_files() {
        let directory = tempfile::tempdir().unwrap();
        for name in ["b.conf", "a.conf", ".a.conf.swp", ".x.conf", "c.txt"] {
            std::fs::write(directory.path().join(name), "").unwrap();
        }
        std::fs::create_dir(directory.path().join("d.conf")).unwrap();
        let patterns = vec![
            directory.path().join("*.conf"),
            directory.path().join("a.conf"),
            directory.path().join("missing.conf"),
            directory.path().join("nowhere/*.conf"),
        ];
        let names: Vec<String> = expand(&patterns)
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.conf", "b.conf", "missing.conf"]);
    }

    /// A wg-quick file of one dn42-style peering.
    fn peering(port: u16, address: &str) -> String {
        format!(
            "[Interface]\nPrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=\n\
             ListenPort = {port}\nAddress = {address}\nTable = off\n\
             [Peer]\nPublicKey = uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=\n\
             AllowedIPs = 172.16.0.0/12, fd00::/8, fe80::/10\n"
        )
    }

    fn write(directory: &Path, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = directory.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn names(config: &Config) -> Vec<&str> {
        config
            .tunnels
            .iter()
            .map(|tunnel| tunnel.name.as_str())
            .collect()
    }

    const WGD_TOML: &str = "[daemon]\ninclude = [\"peers/*.conf\"]\n\
        [[tunnel]]\nname = \"core\"\nprivate_key = \"GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=\"\n\
        listen_port = 51820\naddress = [\"10.0.0.1/31\"]\n\
        [bgp]\nasn = 4242420001\nrouter_id = \"172.20.1.1\"\n\
        [[bgp.neighbor]]\naddress = \"fe80::2%dn42a\"\nremote_as = 4242420002\n\
        [[bgp.neighbor]]\ntunnel = \"dn42b\"\nremote_as = 4242420003\n";

    #[test]
    fn included_files_are_tunnels_of_the_config_that_neighbors_name() {
        let directory = tempfile::tempdir().unwrap();
        let peers = directory.path().join("peers");
        std::fs::create_dir(&peers).unwrap();
        write(
            &peers,
            "dn42a.conf",
            &peering(51921, "172.20.1.1/32 peer 172.20.2.1/32, fe80::1/64"),
        );
        write(
            &peers,
            "dn42b.conf",
            &peering(51922, "172.20.1.1/32 peer 172.20.3.1/32, fe80::1/64"),
        );
        let path = write(directory.path(), "wgd.toml", WGD_TOML);
        let config = super::super::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(names(&config), ["core", "dn42a", "dn42b"]);
        assert_eq!(config.source, path);
        assert_eq!(
            config.daemon.include,
            [directory.path().join("peers/*.conf")]
        );
        assert!(config.included.iter().all(|file| file.errors.is_empty()));
        let neighbors = &config.daemon.bgp.as_ref().unwrap().neighbors;
        assert_eq!(neighbors[0].address.to_string(), "fe80::2");
        assert_eq!(neighbors[0].tunnel.as_ref().unwrap().as_str(), "dn42a");
        assert_eq!(neighbors[1].address.to_string(), "172.20.3.1");
    }

    #[test]
    fn a_broken_file_is_left_out_and_keeps_its_last_good_version_on_reload() {
        let directory = tempfile::tempdir().unwrap();
        let peers = directory.path().join("peers");
        std::fs::create_dir(&peers).unwrap();
        write(&peers, "dn42a.conf", &peering(51921, "fe80::1/64"));
        let b = write(
            &peers,
            "dn42b.conf",
            &peering(51922, "172.20.1.1/32 peer 172.20.3.1/32"),
        );
        let path = write(directory.path(), "wgd.toml", WGD_TOML);
        let first = super::super::load(&path).unwrap();

        // Broken: reported with its file and line, the rest goes on.
        write(
            &peers,
            "dn42b.conf",
            &peering(51922, "172.20.1.1/32 peer 172.20.3.1/32")
                .replace("ListenPort = 51922", "ListenPort = 5192x"),
        );
        write(&peers, "dn42c.conf", &peering(51923, "fe80::1/64"));
        let fresh = super::super::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(names(&fresh), ["core", "dn42a", "dn42c"]);
        let broken = fresh.included.iter().find(|file| file.path == b).unwrap();
        assert!(!broken.kept);
        assert_eq!(
            broken.errors[0].to_string(),
            format!("{}:3: ListenPort \"5192x\": not a number", b.display())
        );
        // The neighbor named by the broken tunnel waits for a good file.
        let neighbors = &fresh.daemon.bgp.as_ref().unwrap().neighbors;
        assert_eq!(neighbors.len(), 1);
        assert!(
            fresh
                .notices
                .iter()
                .any(|notice| notice.message.contains("on tunnel \"dn42b\" is left out")),
            "{:?}",
            fresh.notices
        );

        // On reload, the tunnel keeps what it had.
        let reloaded = super::super::reload(&path, &first).unwrap();
        assert_eq!(names(&reloaded), ["core", "dn42a", "dn42b", "dn42c"]);
        let kept = reloaded
            .included
            .iter()
            .find(|file| file.path == b)
            .unwrap();
        assert!(kept.kept);
        assert_eq!(kept.errors.len(), 1);
        assert_eq!(reloaded.daemon.bgp.as_ref().unwrap().neighbors.len(), 2);
        // ...and again on the next, from the kept version.
        let again = super::super::reload(&path, &reloaded).unwrap();
        assert_eq!(names(&again), ["core", "dn42a", "dn42b", "dn42c"]);

        // A removed file's tunnel is gone; a neighbor still naming it is
        // an error of the wgd.toml, which is then refused whole.
        std::fs::remove_file(&b).unwrap();
        let errors = super::super::reload(&path, &again).unwrap_err();
        assert!(
            errors.to_string().ends_with(
                "wgd.toml:15: tunnel \"dn42b\": no such tunnel ([[tunnel]] or included file)"
            ),
            "{errors}"
        );
        let without = &WGD_TOML[..WGD_TOML.find("[[bgp.neighbor]]\ntunnel").unwrap()];
        write(directory.path(), "wgd.toml", without);
        let removed = super::super::reload(&path, &again).unwrap();
        assert_eq!(names(&removed), ["core", "dn42a", "dn42c"]);
    }

    #[test]
    fn a_file_that_clashes_with_wgd_toml_is_left_out() {
        let directory = tempfile::tempdir().unwrap();
        let peers = directory.path().join("peers");
        std::fs::create_dir(&peers).unwrap();
        let a = write(&peers, "dn42a.conf", &peering(51820, "fe80::1/64"));
        let core = write(&peers, "core.conf", &peering(51999, "fe80::1/64"));
        let text = WGD_TOML.replace("[bgp]", "[bgpx]");
        let text = &text[..text.find("[bgpx]").unwrap()];
        let path = write(directory.path(), "wgd.toml", text);
        let config = super::super::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(names(&config), ["core"]);
        let errors: Vec<String> = config
            .included
            .iter()
            .flat_map(|file| file.errors.iter().map(ToString::to_string))
            .collect();
        assert_eq!(
            errors,
            [
                format!(
                    "{}:1: tunnel \"core\" is already defined ({}:4)",
                    core.display(),
                    path.display()
                ),
                format!(
                    "{}:1: ListenPort 51820 is already used by tunnel \"core\" ({}:4)",
                    a.display(),
                    path.display()
                ),
            ]
        );
    }

    #[test]
    fn addresses_the_hooks_add_serve_the_neighbors() {
        // The file as the dn42 guide writes it: addresses from PostUp only.
        let directory = tempfile::tempdir().unwrap();
        let peers = directory.path().join("peers");
        std::fs::create_dir(&peers).unwrap();
        let hooked = |peer: &str| {
            format!(
                "[Interface]\nPrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=\n\
                 ListenPort = 5192{}\n\
                 PostUp = ip addr add dev %i 172.20.1.1/32 peer {peer}/32\n\
                 PostUp = ip addr add dev %i fe80::1/64\nTable = off\n\
                 [Peer]\nPublicKey = uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=\n\
                 Endpoint = 198.51.100.2:51922\n\
                 AllowedIPs = 172.16.0.0/12, 10.0.0.0/8, fd00::/8, fe80::/10\n",
                peer.len() % 10
            )
        };
        write(&peers, "dn42a.conf", &hooked("172.20.2.1"));
        write(&peers, "dn42b.conf", &hooked("172.20.3.11"));
        let path = write(directory.path(), "wgd.toml", WGD_TOML);
        let config = super::super::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        let dn42a = &config.tunnels[1];
        assert!(dn42a.addresses.is_empty());
        assert_eq!(
            dn42a
                .hook_addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["172.20.1.1/32 peer 172.20.2.1/32", "fe80::1/64"]
        );
        let neighbors = &config.daemon.bgp.as_ref().unwrap().neighbors;
        assert_eq!(neighbors[0].address.to_string(), "fe80::2");
        assert_eq!(neighbors[1].address.to_string(), "172.20.3.11");
    }
}
