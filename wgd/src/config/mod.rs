//! Config files to typed values.
//!
//! `load` reads a file and hands its text to one of two readers: `toml_file`
//! for `wgd.toml` (daemon settings and any number of tunnels) or `wg_quick`
//! for a wg-quick `.conf` (one tunnel, named after the file). Both check
//! every field with the parsers in `values`, write what is wrong into a
//! `Report` (file, line, message) and hand back the typed pieces; `Report`
//! turns them into a `Config` when nothing was wrong, or into every error
//! found otherwise. A config is accepted or refused whole, with one
//! exception: the wg-quick files a wgd.toml takes in with `[daemon]
//! include` (`include`) are each read on their own, and a broken one is
//! left out (or, on `reload`, its last good version kept) with its errors
//! in `Config::included`.
//!
//! Reading is pure but for two things the file format asks for: key files
//! (`private_key_file`, `preshared_key_file`) and endpoint host names,
//! which resolve when the file is read.

mod include;
mod model;
mod toml_file;
pub(crate) mod values;
mod wg_quick;

pub use model::*;
pub(crate) use toml_file::serde_message;
pub use values::offline;

use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// Reads and checks the config file at `path`.
///
/// `.conf` files are wg-quick files, `.toml` files are wgd.toml; any other
/// name is read as wg-quick when it has an `[Interface]` section. Errors and
/// notices name the file by its absolute path.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_file(path, None, None)
}

/// Reads the config at `path` again, as `load` does; an included file that
/// is broken now keeps the tunnel `previous` had from it (its last good
/// version).
pub fn reload(path: &Path, previous: &Config) -> Result<Config, ConfigErrors> {
    load_file(path, None, Some(previous))
}

fn load_file(
    path: &Path,
    format: Option<Format>,
    previous: Option<&Config>,
) -> Result<Config, ConfigErrors> {
    let unreadable = |path: &Path, error: std::io::Error| {
        let mut report = Report::new(path);
        let reason = values::describe_io(&error);
        report.error(0, format!("cannot read the file: {reason}"));
        ConfigErrors(report.errors)
    };
    let path = std::path::absolute(path).map_err(|error| unreadable(path, error))?;
    // The text may hold private keys: wipe it once it is parsed.
    let text = std::fs::read_to_string(&path)
        .map(zeroize::Zeroizing::new)
        .map_err(|error| unreadable(&path, error))?;
    let mut config = parse_text(&path, &text, format, previous)?;
    // Key files others can read are refused; a config that holds keys
    // itself gets wg-quick's warning, so that existing setups still load.
    let mode = std::fs::metadata(&path)
        .map(|meta| std::os::unix::fs::PermissionsExt::mode(&meta.permissions()));
    if let Ok(mode) = mode
        && mode & 0o077 != 0
        && holds_inline_keys(&text)
    {
        config.notices.insert(
            0,
            Notice {
                file: path.clone(),
                line: 0,
                message: format!(
                    "holds key material and is readable by group or others (mode {:04o}); fix it with: chmod 600 {}",
                    mode & 0o7777,
                    path.display()
                ),
            },
        );
    }
    Ok(config)
}

/// Whether a config's text has a private or preshared key in it (not a
/// key file's name).
fn holds_inline_keys(text: &str) -> bool {
    text.lines().any(|line| {
        let key = line
            .split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        matches!(
            key.as_str(),
            "privatekey" | "presharedkey" | "private_key" | "preshared_key"
        )
    })
}

/// Checks `text` as if it were the content of `path`, with the same choice
/// of format as `load`. Only key files are read. `path` is used as given
/// (in messages, in `Config::source`, and as the base of relative key file
/// paths), so tests can name a file that does not exist.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    parse_text(path, text, None, None)
}

fn parse_text(
    path: &Path,
    text: &str,
    format: Option<Format>,
    previous: Option<&Config>,
) -> Result<Config, ConfigErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut report = Report::new(path);
    let (daemon, tunnels, included) = match format.unwrap_or_else(|| Format::of(path, text)) {
        Format::WgQuick => {
            let tunnel = wg_quick::parse(text, &mut report);
            (
                DaemonConfig::default(),
                tunnel.into_iter().collect(),
                vec![],
            )
        }
        Format::Toml => toml_file::parse(text, &mut report, previous),
    };
    report.finish(daemon, tunnels, included)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    WgQuick,
    Toml,
}

impl Format {
    fn of(path: &Path, text: &str) -> Self {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("conf") => Format::WgQuick,
            Some("toml") => Format::Toml,
            _ if wg_quick::has_interface_section(text) => Format::WgQuick,
            _ => Format::Toml,
        }
    }
}

/// What the readers found wrong or worth telling, by line, while they build
/// the typed values.
#[derive(Debug)]
struct Report {
    file: PathBuf,
    errors: Vec<ConfigError>,
    notices: Vec<Notice>,
}

impl Report {
    fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            errors: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Relative key file paths start here.
    fn directory(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: redact(&message.into()),
        });
    }

    fn notice(&mut self, line: usize, message: impl Into<String>) {
        self.notices.push(Notice {
            file: self.file.clone(),
            line,
            message: redact(&message.into()),
        });
    }

    fn finish(
        mut self,
        daemon: DaemonConfig,
        tunnels: Vec<TunnelConfig>,
        included: Vec<IncludedFile>,
    ) -> Result<Config, ConfigErrors> {
        // WireGuard silently drops a peer with the device's own key: the
        // tunnel would come up without it, and every `up` would add it again.
        // (Included tunnels passed this in their own file.)
        for tunnel in &tunnels {
            let own = tunnel.private_key.public_key();
            for peer in tunnel.peers.iter().filter(|peer| peer.public_key == own) {
                self.error(
                    peer.line,
                    format!(
                        "tunnel \"{}\": a peer's public key is the tunnel's own (the public key of its private key); WireGuard would ignore that peer",
                        tunnel.name
                    ),
                );
            }
        }
        // Readers check in passes (fields, then across tunnels and peers);
        // the user reads the file top to bottom.
        self.errors.sort_by_key(|error| error.line);
        // The file's own notices first, then the included files'.
        let own = self.file.clone();
        self.notices
            .sort_by_key(|notice| (notice.file != own, notice.file.clone(), notice.line));
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        Ok(Config {
            source: self.file,
            daemon,
            tunnels,
            notices: self.notices,
            included,
        })
    }
}

/// 1-based line of a byte offset in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
}

/// The `/0` prefixes among `prefixes`.
fn default_prefixes(prefixes: &[IpNet]) -> Vec<IpNet> {
    prefixes
        .iter()
        .filter(|prefix| prefix.prefix_len() == 0)
        .copied()
        .collect()
}

/// Told when a peer's AllowedIPs hold a `/0` and the tunnel routes its
/// AllowedIPs in the main table: a wg-quick user expects all traffic to
/// go through the tunnel, and wgd does not do that.
fn default_route_notice(
    field: &str,
    defaults: &[IpNet],
    tunnel: &TunnelName,
    remedy: &str,
) -> String {
    let prefixes = defaults
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{field} {prefixes}: wgd routes no default route through {tunnel} and adds no fwmark \
         table or rules (unlike wg-quick); routes for the other {field} go in the main table. \
         To send all traffic through the tunnel, {remedy}."
    )
}

impl Config {
    /// Whether `path` is a file this config takes in with `[daemon] include`.
    pub fn includes(&self, path: &Path) -> bool {
        self.included.iter().any(|file| file.path == path)
    }

    /// Resolves the endpoints written as host names again (dynamic DNS): an
    /// endpoint whose name no longer resolves keeps its last address.
    /// Returns how many endpoints changed.
    pub fn refresh_endpoints(&mut self) -> usize {
        let mut changed = 0;
        for peer in self
            .tunnels
            .iter_mut()
            .flat_map(|tunnel| tunnel.peers.iter_mut())
        {
            let Some(endpoint) = peer.endpoint.as_mut() else {
                continue;
            };
            if endpoint.written.parse::<std::net::SocketAddr>().is_ok() {
                continue;
            }
            if let Ok(fresh) = values::endpoint(&endpoint.written)
                && fresh.address != endpoint.address
            {
                endpoint.address = fresh.address;
                changed += 1;
            }
        }
        changed
    }
}

/// Hides anything in a message that could be key material: a run of
/// [`KEY_LIKE_RUN`] or more base64 characters. Messages echo values to name
/// what is wrong, and a malformed line can carry a key (two lines joined, a
/// key pasted into the wrong field); one rule here covers every echo.
fn redact(message: &str) -> String {
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut out = String::with_capacity(message.len());
    let mut run = String::new();
    for c in message.chars().chain(std::iter::once('\n')) {
        if is_base64(c) {
            run.push(c);
            continue;
        }
        if run.len() >= KEY_LIKE_RUN {
            out.push_str("(hidden)");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Keys are 44 characters; names and values wgd echoes are far shorter
/// without a separator. A public key is hidden too: messages about a peer
/// also give its line.
const KEY_LIKE_RUN: usize = 32;

/// What the format tests share.
#[cfg(test)]
mod testing {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// The errors for `text` read as `file`, one printed line each.
    pub(super) fn error_lines(file: &str, text: &str) -> Vec<String> {
        match super::parse_str(Path::new(file), text) {
            Ok(config) => panic!("{file} was accepted: {config:?}"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// The one error for `text` read as `file`.
    pub(super) fn error_line(file: &str, text: &str) -> String {
        let mut lines = error_lines(file, text);
        assert_eq!(lines.len(), 1, "expected one error, got {lines:#?}");
        lines.remove(0)
    }

    /// Writes a key file with `mode` and returns its path.
    pub(super) fn write_key(directory: &Path, name: &str, key: &str, mode: u32) -> PathBuf {
        let path = directory.join(name);
        fs::write(&path, format!("{key}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const SEED: &str = "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 51820\n\
                        PrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=\n";

    #[test]
    fn load_reads_a_conf_file_and_names_it_absolutely() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("wg7.conf");
        fs::write(&path, SEED).unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.source, path);
        assert!(config.source.is_absolute());
        assert_eq!(config.tunnels[0].name.as_str(), "wg7");
    }

    #[test]
    fn load_reports_an_unreadable_file_at_line_zero() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing.toml");
        let errors = load(&path).unwrap_err();
        assert_eq!(
            errors.to_string(),
            format!(
                "{}: cannot read the file: no such file or directory",
                path.display()
            )
        );
    }

    #[test]
    fn other_names_are_wg_quick_when_they_have_an_interface_section() {
        let config = parse_str(Path::new("/etc/wireguard/wg9"), SEED).unwrap();
        assert_eq!(config.tunnels[0].name.as_str(), "wg9");
        let text = "# no tunnels yet\n[daemon]\nbackend = \"userspace\"\n";
        let config = parse_str(Path::new("/etc/wgd/config"), text).unwrap();
        assert!(config.tunnels.is_empty());
        assert_eq!(config.daemon.backend, BackendChoice::Userspace);
    }

    #[test]
    fn lowercase_interface_header_means_wg_quick() {
        let text = SEED.replace("[Interface]", "  [interface]  # here");
        let config = parse_str(Path::new("wg3"), &text).unwrap();
        assert_eq!(config.tunnels[0].listen_port, Some(51820));
    }

    #[test]
    fn a_file_readable_by_others_is_still_read_but_key_files_are_not() {
        // The config file itself may be world-readable when its keys live in
        // key files; only key files are checked.
        let directory = tempfile::tempdir().unwrap();
        let key = testing::write_key(
            directory.path(),
            "k.key",
            "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=",
            0o640,
        );
        let path = directory.path().join("wgd.toml");
        fs::write(
            &path,
            "[[tunnel]]\nname = \"wg-k\"\nprivate_key_file = \"k.key\"\n",
        )
        .unwrap();
        let errors = load(&path).unwrap_err();
        assert_eq!(
            errors.to_string(),
            format!(
                "{}:3: tunnel \"wg-k\": private key file {key} is readable by group or others \
                 (mode 0640); fix it with: chmod 600 {key}",
                path.display(),
                key = key.display()
            )
        );
    }

    #[test]
    fn a_readable_file_with_inline_keys_loads_with_a_warning() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("wg7.conf");
        fs::write(
            &path,
            "[Interface]\nPrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=\n",
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let config = load(&path).unwrap();
        assert_eq!(
            config.notices[0].to_string(),
            format!(
                "{}: holds key material and is readable by group or others (mode 0644); fix it with: chmod 600 {}",
                path.display(),
                path.display()
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path).unwrap().notices.is_empty());
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 4), 3);
        assert_eq!(line_at("a\nb\nc", 99), 3);
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn key_like_runs_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact(
                "ListenPort \"518y = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSZ18SEE=\": not a number"
            ),
            "ListenPort \"518y = (hidden)\": not a number"
        );
        let plain = "peer \"site-b\": endpoint \"x:99999\": port out of range";
        assert_eq!(redact(plain), plain);
    }
}
