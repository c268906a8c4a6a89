//! Malformed configs are refused whole, before anything changes.
//!
//! One namespace stands for a router: an uplink with addresses and a default
//! route, and a tunnel wgd already manages (with a route of its own). Each
//! case takes a valid file (a wgd.toml with two tunnels, or a wg-quick
//! `.conf`), breaks one thing in it, and runs `wgd up` and `wgd up --dry-run`
//! on it. Both must exit 2 with one line on stderr, `<file>:<line>: <message>`,
//! where the line is the one marked `# error` in the file (the offending
//! value, or the table header for a missing key). Then the namespace must be
//! as it was: interfaces, addresses, rules, routes, wgd's records, and no
//! wireguard-go socket for any of the file's tunnels, the valid one included.
//! Last, the unbroken files go up, to show the checks could have failed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wgd_labs::{Namespace, unique_name};
use wgd_tests::routing::{RoutingState, describe};
use wgd_tests::{KeyPair, Wgd, write_config};

/// Marks the line a case's error must name.
const MARK: &str = "# error";

/// wireguard-go's UAPI sockets, shared by every namespace.
const WIREGUARD_SOCKETS: &str = "/var/run/wireguard";

/// Two tunnels; a case breaks the first (or, for conflicts, the second) and
/// the other stays valid, so that "refused whole" can be seen.
const TOML: &str = r#"[[tunnel]]
name = "TUNNEL_A"
private_key = "PRIVATE_A"
listen_port = 51820
address = ["10.1.0.1/24", "fd00:1::1/64"]

[[tunnel.peer]]
name = "site-b"
public_key = "PUBLIC_B"
endpoint = "192.0.2.2:51820"
persistent_keepalive = 25
allowed_ips = ["10.1.0.2/32"]

[[tunnel]]
name = "TUNNEL_B"
private_key = "PRIVATE_B"
listen_port = 51821
address = ["10.2.0.1/24"]

[[tunnel.peer]]
public_key = "PUBLIC_A"
endpoint = "192.0.2.3:51820"
"#;

/// One tunnel, named after the file (`TUNNEL_A.conf`).
const CONF: &str = "[Interface]
Address = 10.3.0.1/24
ListenPort = 51822
PrivateKey = PRIVATE_A
Table = off

[Peer]
PublicKey = PUBLIC_B
AllowedIPs = 10.3.0.2/32
Endpoint = 192.0.2.2:51820
PersistentKeepalive = 25
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Conf,
}

/// Where the error must point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The line marked with [`MARK`].
    Mark,
    /// Line 0: the file as a whole (a wg-quick tunnel's name is its file name).
    File,
}

struct Case {
    kind: &'static str,
    format: Format,
    /// Each replaces the first occurrence of its left side in the template.
    edits: &'static [(&'static str, &'static str)],
    /// The file's stem, for `.conf` files (where it names the tunnel).
    stem: &'static str,
    at: At,
    /// Part of the message, after the tokens are filled in.
    phrase: &'static str,
}

const fn toml(
    kind: &'static str,
    edits: &'static [(&'static str, &'static str)],
    phrase: &'static str,
) -> Case {
    Case {
        kind,
        format: Format::Toml,
        edits,
        stem: "wgd",
        at: At::Mark,
        phrase,
    }
}

const fn conf(
    kind: &'static str,
    edits: &'static [(&'static str, &'static str)],
    phrase: &'static str,
) -> Case {
    Case {
        kind,
        format: Format::Conf,
        edits,
        stem: "TUNNEL_A",
        at: At::Mark,
        phrase,
    }
}

const CASES: &[Case] = &[
    // wgd.toml
    toml(
        "toml: private key not base64",
        &[(
            r#"private_key = "PRIVATE_A""#,
            r#"private_key = "not-a-key!" # error"#,
        )],
        r#"tunnel "TUNNEL_A": private_key: not valid base64"#,
    ),
    toml(
        "toml: peer public key of the wrong length",
        &[(
            r#"public_key = "PUBLIC_B""#,
            r#"public_key = "c2hvcnQ=" # error"#,
        )],
        r#"peer "site-b": public_key: decodes to 5 bytes, a WireGuard key has 32"#,
    ),
    toml(
        "toml: address prefix too long",
        &[(
            r#"address = ["10.1.0.1/24", "fd00:1::1/64"]"#,
            r#"address = ["10.1.0.1/33", "fd00:1::1/64"] # error"#,
        )],
        r#"address "10.1.0.1/33": prefix length must be 0..=32"#,
    ),
    toml(
        "toml: allowed_ips with host bits",
        &[(
            r#"allowed_ips = ["10.1.0.2/32"]"#,
            r#"allowed_ips = ["10.1.0.2/16"] # error"#,
        )],
        r#"allowed_ips "10.1.0.2/16": host bits set (did you mean 10.1.0.0/16?)"#,
    ),
    toml(
        "toml: listen_port out of range",
        &[("listen_port = 51820", "listen_port = 70000 # error")],
        r#"tunnel "TUNNEL_A": listen_port 70000: port out of range"#,
    ),
    toml(
        "toml: listen_port taken by the other tunnel",
        &[("listen_port = 51821", "listen_port = 51820 # error")],
        r#"tunnel "TUNNEL_B": listen_port 51820 is already used by tunnel "TUNNEL_A""#,
    ),
    toml(
        "toml: duplicate tunnel name",
        &[(r#"name = "TUNNEL_B""#, r#"name = "TUNNEL_A" # error"#)],
        r#"duplicate tunnel name "TUNNEL_A""#,
    ),
    toml(
        "toml: tunnel name over 15 bytes",
        &[(
            r#"name = "TUNNEL_A""#,
            r#"name = "TUNNEL_A-overlong" # error"#,
        )],
        "interface names have at most 15",
    ),
    toml(
        "toml: unknown key in a tunnel",
        &[(
            "listen_port = 51820",
            "listen_port = 51820\nlisten_prot = 51820 # error",
        )],
        r#"unknown key "listen_prot""#,
    ),
    toml(
        "toml: unknown key in a peer",
        &[(
            "persistent_keepalive = 25",
            "persistent_keepalive = 25\nkeepalive = 25 # error",
        )],
        r#"unknown key "keepalive""#,
    ),
    toml(
        "toml: private key file readable by group",
        &[(
            r#"private_key = "PRIVATE_A""#,
            r#"private_key_file = "KEY_FILE" # error"#,
        )],
        "private key file KEY_FILE is readable by group or others (mode 0640); \
         fix it with: chmod 600 KEY_FILE",
    ),
    toml(
        "toml: peer without public key",
        &[
            ("[[tunnel.peer]]", "[[tunnel.peer]] # error"),
            ("public_key = \"PUBLIC_B\"\n", ""),
        ],
        r#"peer "site-b": missing public_key"#,
    ),
    toml(
        "toml: endpoint without port",
        &[(
            r#"endpoint = "192.0.2.2:51820""#,
            r#"endpoint = "192.0.2.2" # error"#,
        )],
        r#"endpoint "192.0.2.2": expected host:port or [IPv6]:port"#,
    ),
    toml(
        "toml: endpoint port out of range",
        &[(
            r#"endpoint = "192.0.2.2:51820""#,
            r#"endpoint = "192.0.2.2:99999" # error"#,
        )],
        r#"endpoint "192.0.2.2:99999": port out of range"#,
    ),
    toml(
        "toml: MTU too small for IPv6",
        &[(
            r#"address = ["10.1.0.1/24", "fd00:1::1/64"]"#,
            "address = [\"10.1.0.1/24\", \"fd00:1::1/64\"]\nmtu = 1000 # error",
        )],
        "mtu 1000: out of range for a tunnel with IPv6 addresses (1280..=65535)",
    ),
    toml(
        "toml: table with routes = \"none\"",
        &[(
            "listen_port = 51820",
            "listen_port = 51820\nroutes = \"none\"\ntable = 100 # error",
        )],
        r#"table 100 needs routes = "allowed-ips" (routes is "none")"#,
    ),
    toml(
        "toml: unknown prefix_limit_action",
        &[(
            r#"endpoint = "192.0.2.3:51820""#,
            "endpoint = \"192.0.2.3:51820\"\n\n[bgp]\nasn = 65001\n\n[[bgp.neighbor]]\n\
             address = \"10.1.0.2\"\nremote_as = 65002\nprefix_limit = 10\n\
             prefix_limit_action = \"drop\" # error",
        )],
        r#"prefix_limit_action "drop": expected "reset" (the session, the default) or "block" (new prefixes)"#,
    ),
    toml(
        "toml: large community of two parts",
        &[(
            r#"endpoint = "192.0.2.3:51820""#,
            "endpoint = \"192.0.2.3:51820\"\n\n[bgp]\nasn = 65001\n\n[[bgp.neighbor]]\n\
             address = \"10.1.0.2\"\nremote_as = 65002\n\n[[bgp.neighbor.import.rules]]\n\
             action = \"deny\"\nmatch.large_community = \"4242420001:1\" # error",
        )],
        r#"large community "4242420001:1": expected asn:value:value"#,
    ),
    toml(
        "toml: AS path length bounds upside down",
        &[(
            r#"endpoint = "192.0.2.3:51820""#,
            "endpoint = \"192.0.2.3:51820\"\n\n[bgp]\nasn = 65001\n\n[[bgp.neighbor]]\n\
             address = \"10.1.0.2\"\nremote_as = 65002\n\n[[bgp.neighbor.import.rules]]\n\
             action = \"deny\"\nmatch.as_path_length = { ge = 10, le = 2 } # error",
        )],
        "as_path_length: ge 10 is above le 2",
    ),
    toml(
        "toml: unterminated string",
        &[(
            r#"endpoint = "192.0.2.2:51820""#,
            r#"endpoint = "192.0.2.2:51820 # error"#,
        )],
        "basic string",
    ),
    // wg-quick .conf
    conf(
        "conf: private key not base64",
        &[("PrivateKey = PRIVATE_A", "PrivateKey = not-a-key! # error")],
        "PrivateKey: not valid base64",
    ),
    conf(
        "conf: interface without private key",
        &[
            ("[Interface]", "[Interface] # error"),
            ("PrivateKey = PRIVATE_A\n", ""),
        ],
        "[Interface] has no PrivateKey",
    ),
    conf(
        "conf: peer public key of the wrong length",
        &[("PublicKey = PUBLIC_B", "PublicKey = c2hvcnQ= # error")],
        "PublicKey: decodes to 5 bytes, a WireGuard key has 32",
    ),
    conf(
        "conf: address not an address",
        &[("Address = 10.3.0.1/24", "Address = 10.3.0/24 # error")],
        r#"Address "10.3.0/24": not an IP address"#,
    ),
    conf(
        "conf: AllowedIPs prefix too long",
        &[(
            "AllowedIPs = 10.3.0.2/32",
            "AllowedIPs = 10.3.0.2/32, fd00:3::/129 # error",
        )],
        r#"AllowedIPs "fd00:3::/129": prefix length must be 0..=128"#,
    ),
    conf(
        "conf: ListenPort out of range",
        &[("ListenPort = 51822", "ListenPort = 65536 # error")],
        r#"ListenPort "65536": port out of range"#,
    ),
    conf(
        "conf: duplicate ListenPort",
        &[(
            "ListenPort = 51822",
            "ListenPort = 51822\nListenPort = 51823 # error",
        )],
        r#"duplicate key "ListenPort" (first at line 3)"#,
    ),
    conf(
        "conf: unknown key in [Interface]",
        &[(
            "ListenPort = 51822",
            "ListenPort = 51822\nListenPrt = 51822 # error",
        )],
        r#"unknown key "ListenPrt" in [Interface]"#,
    ),
    conf(
        "conf: unknown key in [Peer]",
        &[(
            "PersistentKeepalive = 25",
            "PersistentKeepalive = 25\nKeepalive = 25 # error",
        )],
        r#"unknown key "Keepalive" in [Peer]"#,
    ),
    conf(
        "conf: peer without public key",
        &[("[Peer]", "[Peer] # error"), ("PublicKey = PUBLIC_B\n", "")],
        "[Peer] has no PublicKey",
    ),
    conf(
        "conf: IPv6 endpoint without brackets",
        &[(
            "Endpoint = 192.0.2.2:51820",
            "Endpoint = 2001:db8::1:51820 # error",
        )],
        "an IPv6 address needs brackets",
    ),
    conf(
        "conf: MTU out of range",
        &[(
            "ListenPort = 51822",
            "ListenPort = 51822\nMTU = 99999 # error",
        )],
        r#"MTU "99999": out of range (576..=65535)"#,
    ),
    conf(
        "conf: key outside any section",
        &[("[Interface]", "Table = off # error\n[Interface]")],
        r#"key "Table" is outside any section; put it under [Interface] or [Peer]"#,
    ),
    conf(
        "conf: Table not a table",
        &[("Table = off", "Table = 0ff # error")],
        r#"Table "0ff": expected off, auto, main or a table number"#,
    ),
    Case {
        kind: "conf: file name over 15 bytes",
        format: Format::Conf,
        edits: &[],
        stem: "TUNNEL_A-overlong",
        at: At::File,
        phrase: "interface names have at most 15 (a wg-quick file names its tunnel after the file)",
    },
];

/// The names and keys a case's tokens stand for, fresh for each case so
/// that nothing of one case can be mistaken for another's.
struct Tokens {
    tunnel_a: String,
    tunnel_b: String,
    a: KeyPair,
    b: KeyPair,
    key_file: PathBuf,
}

impl Tokens {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            tunnel_a: unique_name("wgbad"),
            tunnel_b: unique_name("wgok"),
            a: KeyPair::generate()?,
            b: KeyPair::generate()?,
            key_file: dir.join("a.key"),
        })
    }

    fn fill(&self, text: &str) -> String {
        text.replace("TUNNEL_A", &self.tunnel_a)
            .replace("TUNNEL_B", &self.tunnel_b)
            .replace("PRIVATE_A", &self.a.private)
            .replace("PRIVATE_B", &self.b.private)
            .replace("PUBLIC_A", &self.a.public)
            .replace("PUBLIC_B", &self.b.public)
            .replace("KEY_FILE", self.key_file.to_str().expect("a UTF-8 path"))
    }

    /// Tunnel names a file of the case could have made: the long one of
    /// the over-long cases included, in case it were cut short or accepted.
    fn tunnel_names(&self) -> Vec<String> {
        let a = &self.tunnel_a;
        vec![a.clone(), self.tunnel_b.clone(), format!("{a}-overlong")]
    }
}

/// What a refused config must leave exactly as it was.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    interfaces: Vec<String>,
    addresses: String,
    routing: RoutingState,
    /// wgd's records (its wireguard-go logs aside: a running tunnel may
    /// write to its log at any time).
    records: BTreeMap<PathBuf, String>,
}

impl Host {
    fn capture(namespace: &Namespace, state: &Path) -> anyhow::Result<Self> {
        let mut records = BTreeMap::new();
        read_records(state, &mut records)?;
        Ok(Self {
            interfaces: namespace.interfaces()?,
            addresses: namespace.check(&["ip", "-o", "address", "show"])?,
            routing: RoutingState::capture(namespace)?,
            records,
        })
    }
}

fn read_records(dir: &Path, records: &mut BTreeMap<PathBuf, String>) -> anyhow::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            read_records(&path, records)?;
        } else if path.extension().is_none_or(|extension| extension != "log") {
            records.insert(path.clone(), fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// The router the cases run on, and wgd as the test drives it.
struct Router {
    namespace: Namespace,
    wgd: Wgd,
    /// A tunnel wgd manages here before any case runs.
    kept: String,
    kept_config: PathBuf,
}

impl Router {
    fn new() -> anyhow::Result<Self> {
        let wgd = Wgd::new()?;
        let namespace = Namespace::new("badcfg")?;
        let uplink = unique_name("up");
        namespace.add_stub(&uplink)?;
        namespace.add_address(&uplink, "192.0.2.10/24")?;
        namespace.add_address(&uplink, "2001:db8:10::10/64")?;
        namespace.add_route("default via 192.0.2.1")?;

        let kept = unique_name("wgkeep");
        let keys = (KeyPair::generate()?, KeyPair::generate()?);
        let text = format!(
            "[[tunnel]]\nname = \"{kept}\"\nprivate_key = \"{}\"\nlisten_port = 51830\n\
             address = [\"10.99.0.1/24\"]\nroutes = \"allowed-ips\"\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"192.0.2.99:51830\"\n\
             allowed_ips = [\"10.99.1.0/24\"]\n",
            keys.0.private, keys.1.public
        );
        let kept_config = write_config(namespace.dir(), "kept.toml", &text)?;
        let router = Self {
            namespace,
            wgd,
            kept,
            kept_config,
        };
        router.up(&router.kept_config)?;
        router.namespace.settle(Duration::from_secs(10))?;
        let routes = router.namespace.check(&["ip", "route", "show"])?;
        assert!(
            routes.contains(&format!("10.99.1.0/24 dev {}", router.kept)),
            "the kept tunnel's route is missing, so the cases would not show that \
             wgd's own routes stay:\n{routes}"
        );
        Ok(router)
    }

    fn up(&self, config: &Path) -> Result<String, wgd_labs::Error> {
        let path = config.to_str().expect("a UTF-8 path");
        self.wgd.run(&self.namespace, &["up", path])
    }

    fn capture(&self) -> anyhow::Result<Host> {
        Host::capture(&self.namespace, &Wgd::state_dir(&self.namespace))
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        // The namespace would take the interface and wireguard-go with it;
        // `down` also removes wgd's record, and says so if it cannot.
        let path = self.kept_config.to_str().expect("a UTF-8 path");
        if let Err(error) = self.wgd.run(&self.namespace, &["down", path]) {
            eprintln!("taking the kept tunnel down: {error}");
        }
    }
}

/// Writes the case's file in `dir`: the template with the case's edits.
fn write_case(case: &Case, tokens: &Tokens, dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let mut text = match case.format {
        Format::Toml => TOML,
        Format::Conf => CONF,
    }
    .to_owned();
    for (from, to) in case.edits {
        assert!(
            text.contains(from),
            "{}: the edit {from:?} does not apply to the template",
            case.kind
        );
        text = text.replacen(from, to, 1);
    }
    let text = tokens.fill(&text);
    let file_name = match case.format {
        Format::Toml => format!("{}.toml", tokens.fill(case.stem)),
        Format::Conf => format!("{}.conf", tokens.fill(case.stem)),
    };
    let path = write_config(dir, &file_name, &text)?;
    if text.contains(tokens.key_file.to_str().expect("a UTF-8 path")) {
        fs::write(&tokens.key_file, format!("{}\n", tokens.a.private))?;
        fs::set_permissions(&tokens.key_file, fs::Permissions::from_mode(0o640))?;
    }
    Ok((path, text))
}

/// 1-based line of the marked line, or 0 for the file as a whole.
fn expected_line(case: &Case, text: &str) -> usize {
    match case.at {
        At::File => 0,
        At::Mark => {
            let marked: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| line.contains(MARK))
                .map(|(index, _)| index + 1)
                .collect();
            assert_eq!(marked.len(), 1, "{}: mark exactly one line", case.kind);
            marked[0]
        }
    }
}

/// `wgd <args>` must exit 2 and print one line: `<file>:<line>: <message>`
/// with `phrase` in the message and no private key. Returns that line.
fn assert_refused(
    router: &Router,
    case: &Case,
    args: &[&str],
    path: &Path,
    line: usize,
    tokens: &Tokens,
) -> anyhow::Result<String> {
    let output = router.wgd.output(&router.namespace, args)?;
    let (kind, command) = (case.kind, args.join(" "));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{kind}: `wgd {command}` exit status {} (expected 2)\nstderr:\n{stderr}stdout:\n{stdout}",
        output.status
    );
    assert!(
        stdout.is_empty(),
        "{kind}: `wgd {command}` printed on stdout:\n{stdout}"
    );
    assert!(
        stderr.ends_with('\n') && stderr.lines().count() == 1,
        "{kind}: `wgd {command}` should print exactly one line on stderr, printed:\n{stderr}"
    );
    let printed = stderr.trim_end();
    // Line 0 is the file as a whole: "file: message".
    let prefix = if line == 0 {
        format!("{}: ", path.display())
    } else {
        format!("{}:{line}: ", path.display())
    };
    let message = printed.strip_prefix(&prefix).unwrap_or_else(|| {
        panic!("{kind}: expected the error to start with {prefix:?}, got:\n{printed}")
    });
    let phrase = tokens.fill(case.phrase);
    assert!(
        message.contains(&phrase),
        "{kind}: expected {phrase:?} in the message, got:\n{printed}"
    );
    for private in [&tokens.a.private, &tokens.b.private] {
        assert!(
            !printed.contains(private.as_str()),
            "{kind}: the error shows a private key"
        );
    }
    Ok(printed.to_owned())
}

fn assert_unchanged(router: &Router, case: &Case, before: &Host, tokens: &Tokens) {
    let kind = case.kind;
    let after = router.capture().expect("capture the host after the case");
    for name in tokens.tunnel_names() {
        assert!(
            !after.interfaces.contains(&name),
            "{kind}: the refused file brought up {name}"
        );
        let socket = Path::new(WIREGUARD_SOCKETS).join(format!("{name}.sock"));
        assert!(
            !socket.exists(),
            "{kind}: the refused file started wireguard-go ({} exists)",
            socket.display()
        );
    }
    assert_eq!(
        before.interfaces, after.interfaces,
        "{kind}: interfaces changed"
    );
    assert_eq!(
        before.addresses, after.addresses,
        "{kind}: addresses changed"
    );
    let changes = before.routing.changes(&after.routing);
    assert!(
        changes.is_empty(),
        "{kind}: rules or routes changed:\n{}",
        describe(&changes)
    );
    assert_eq!(
        before.records, after.records,
        "{kind}: wgd's records changed"
    );
}

/// Runs one case: `up` and `up --dry-run` refuse the file with the same
/// line, and the host is as it was before the case.
fn check_case(router: &Router, index: usize, case: &Case) -> anyhow::Result<()> {
    let dir = router.namespace.dir().join(format!("case{index}"));
    fs::create_dir(&dir)?;
    let tokens = Tokens::new(&dir)?;
    let (path, text) = write_case(case, &tokens, &dir)?;
    let line = expected_line(case, &text);
    let file = path.to_str().expect("a UTF-8 path");

    let before = router.capture()?;
    let error = assert_refused(router, case, &["up", file], &path, line, &tokens)?;
    assert_unchanged(router, case, &before, &tokens);
    let dry_run = ["up", "--dry-run", file];
    let dry = assert_refused(router, case, &dry_run, &path, line, &tokens)?;
    assert_eq!(
        error, dry,
        "{}: `up --dry-run` and `up` disagree",
        case.kind
    );
    assert_unchanged(router, case, &before, &tokens);
    Ok(())
}

#[test]
fn malformed_configs_are_refused_whole_with_one_line_naming_file_and_line() -> anyhow::Result<()> {
    let router = Router::new()?;
    let baseline = router.namespace.interfaces()?;

    // Every case runs, so that one failure does not hide the others; each
    // failed assertion has already printed its message.
    let mut failed = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check_case(&router, index, case)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failed.push(format!("{}: {error:#}", case.kind)),
            Err(_) => failed.push(case.kind.to_owned()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n")
    );

    // The files as the cases broke them were valid: both go up, the TOML
    // one with both tunnels, so the absence checks above could have failed.
    let pristine = router.namespace.dir().join("pristine");
    fs::create_dir(&pristine)?;
    let tokens = Tokens::new(&pristine)?;
    for (template, file_name, names) in [
        (
            TOML,
            "wgd.toml".to_owned(),
            vec![tokens.tunnel_a.clone(), tokens.tunnel_b.clone()],
        ),
        (
            CONF,
            format!("{}.conf", tokens.tunnel_b),
            vec![tokens.tunnel_b.clone()],
        ),
    ] {
        // The .conf tunnel is named after its file: TUNNEL_B, free here.
        let path = write_config(&pristine, &file_name, &tokens.fill(template))?;
        router.up(&path)?;
        let interfaces = router.namespace.interfaces()?;
        for name in &names {
            assert!(
                interfaces.contains(name),
                "{file_name} unbroken did not bring up {name}: {interfaces:?}"
            );
        }
        router
            .wgd
            .run(&router.namespace, &["down", path.to_str().expect("UTF-8")])?;
    }
    assert_eq!(
        router.namespace.interfaces()?,
        baseline,
        "`wgd down` of the unbroken files left interfaces behind"
    );
    Ok(())
}
