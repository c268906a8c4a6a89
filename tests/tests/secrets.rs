//! No key material in anything wgd says: command output, logs, the API,
//! metrics or its records.
//!
//! Two sites, A (a wgd.toml) and B (a wg-quick `.conf`), each with a tunnel
//! to the other and a preshared key, go up with `WGD_LOG=trace`; a ping makes
//! them shake hands; A's peer changes (dry run, then for real). A is then run
//! by the daemon, which serves status, events and metrics and reloads on
//! SIGHUP. Everything wgd printed, logged or wrote along the way is kept as
//! [`Said`] and searched for both private keys and the preshared key, as
//! base64, as hex (WireGuard's UAPI) and as a list of bytes (Rust's `Debug`);
//! the public keys must be there, so that the search looks in the right
//! places. Last, configs with malformed keys and `wgd pubkey` must not echo
//! what they were given.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::{
    KeyPair, Wgd, preshared_key, rewrite_config, scrape_metrics, sighup, underlay, write_config,
};

const METRICS: &str = "127.0.0.1:9586";
const A_ADDRESS: &str = "10.88.0.1";
const B_ADDRESS: &str = "10.88.0.2";

/// A secret as the tests look for it: the base64 text of a key, and its
/// bytes, to look for in the other spellings.
struct Secret {
    what: &'static str,
    base64: String,
    bytes: Vec<u8>,
}

impl Secret {
    fn new(what: &'static str, base64: &str) -> Self {
        let bytes = decode_base64(base64);
        assert_eq!(bytes.len(), 32, "{what} is not a WireGuard key");
        Self {
            what,
            base64: base64.to_owned(),
            bytes,
        }
    }

    /// Where in `text` the secret appears, in any spelling: the spelling and
    /// the 1-based line.
    fn find_in(&self, text: &str) -> Option<(&'static str, usize)> {
        let hex: String = self
            .bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // `Debug` of a byte array; the first half is proof enough.
        let list = self.bytes[..16]
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        text.lines().enumerate().find_map(|(index, line)| {
            let spelling = if line.contains(&self.base64) {
                "base64"
            } else if line.to_ascii_lowercase().contains(&hex) {
                "hex"
            } else if line.contains(&list) {
                "a list of bytes"
            } else {
                return None;
            };
            Some((spelling, index + 1))
        })
    }
}

/// Standard base64 (with padding) to bytes.
///
/// # Panics
/// On anything else: the input comes from `wg`.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |symbol: u8| -> u32 {
        let index = ALPHABET
            .iter()
            .position(|&letter| letter == symbol)
            .unwrap_or_else(|| panic!("{:?} is not base64", symbol as char));
        u32::try_from(index).expect("under 64")
    };
    let symbols: Vec<u8> = text.trim().trim_end_matches('=').bytes().collect();
    let mut bytes = Vec::new();
    for chunk in symbols.chunks(4) {
        let bits = chunk
            .iter()
            .fold(0, |bits, &symbol| (bits << 6) | value(symbol));
        let bits = bits << (6 * (4 - chunk.len()));
        let whole = bits.to_be_bytes();
        bytes.extend_from_slice(&whole[1..chunk.len()]);
    }
    bytes
}

/// Bytes to standard base64 with padding.
fn encode_base64(bytes: &[u8]) -> String {
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let mut whole = [0; 4];
        whole[1..=chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes(whole);
        for index in 0..4 {
            if index <= chunk.len() {
                let symbol = (bits >> (18 - 6 * index)) & 0x3f;
                text.push(char::from(ALPHABET[symbol as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Everything wgd said, by where it said it.
#[derive(Default)]
struct Said(Vec<(String, String)>);

impl Said {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push((source.into(), text.into()));
    }

    /// Adds a command's stdout and stderr; it must have exited with 0.
    fn add_output(&mut self, source: &str, output: &Output) -> String {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "`{source}` failed ({}):\n{stderr}{stdout}",
            output.status
        );
        self.add(format!("{source} (stdout)"), stdout.clone());
        self.add(format!("{source} (stderr)"), stderr);
        stdout
    }

    /// Adds every file under `dir`, by path.
    fn add_files(&mut self, dir: &Path) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                self.add_files(&path);
            } else {
                let bytes =
                    fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                self.add(
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                );
            }
        }
    }

    fn text_of(&self, source: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _)| name == source)
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("nothing was collected from {source}"))
    }

    fn assert_shows(&self, source: &str, what: &str, text: &str) {
        assert!(
            self.text_of(source).contains(text),
            "{source} lacks {what} ({text}), so it is not the output this test means to search:\n{}",
            self.text_of(source)
        );
    }
}

/// One site: a namespace, its tunnel and its config.
struct Site {
    namespace: Namespace,
    tunnel: String,
    keys: KeyPair,
    /// wgd with trace logs.
    wgd: Wgd,
}

impl Site {
    fn new(prefix: &str, wgd: &Wgd) -> Self {
        Self {
            namespace: Namespace::new(prefix).expect("a namespace"),
            tunnel: unique_name(&format!("wg{prefix}")),
            keys: KeyPair::generate().expect("keys"),
            wgd: wgd.clone(),
        }
    }

    /// `wgd <args>` here, with trace logs, whatever its exit status.
    fn wgd(&self, args: &[&str]) -> Output {
        self.wgd.output(&self.namespace, args).expect("run wgd")
    }

    fn spawn_wgd(&self, args: &[&str]) -> Daemon {
        self.wgd.spawn(&self.namespace, args).expect("spawn wgd")
    }

    /// Where wgd keeps its records here.
    fn state(&self) -> PathBuf {
        Wgd::state_dir(&self.namespace)
    }
}

/// The keepalive of the site's one peer, as `wg show` reads it.
fn keepalive(site: &Site) -> Option<u16> {
    let listing = site
        .namespace
        .check(&["wg", "show", &site.tunnel, "persistent-keepalive"])
        .ok()?;
    // "<public key>\t<seconds or off>"
    listing.trim().rsplit('\t').next()?.parse().ok()
}

struct Lab {
    a: Site,
    b: Site,
    psk: String,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let wgd = Wgd::new().expect("wgd").with_env("WGD_LOG", "trace");
        let (a, b) = (Site::new("seca", &wgd), Site::new("secb", &wgd));
        let (a_ns, b_ns) = (&a.namespace, &b.namespace);
        underlay(a_ns, "198.18.88.1/24", b_ns, "198.18.88.2/24").expect("a veth pair");
        Self {
            a,
            b,
            psk: preshared_key().expect("a preshared key"),
            dir: tempfile::tempdir().expect("a directory"),
        }
    }

    fn api(&self) -> PathBuf {
        self.dir.path().join("a.sock")
    }

    /// Site A's wgd.toml, with `keepalive` for its peer.
    fn a_config(&self, keepalive: u16) -> String {
        format!(
            r#"[daemon]
api = "unix:{api}"
metrics = "{METRICS}"
reconcile_interval = 300

[[tunnel]]
name = "{tunnel}"
private_key = "{private}"
listen_port = 51820
address = ["{A_ADDRESS}/24"]

[[tunnel.peer]]
name = "site-b"
public_key = "{public}"
preshared_key = "{psk}"
endpoint = "198.18.88.2:51820"
persistent_keepalive = {keepalive}
allowed_ips = ["{B_ADDRESS}/32"]
"#,
            api = self.api().display(),
            tunnel = self.a.tunnel,
            private = self.a.keys.private,
            public = self.b.keys.public,
            psk = self.psk,
        )
    }

    /// Site B's wg-quick file (its tunnel is named after it).
    fn b_config(&self) -> String {
        format!(
            "[Interface]\nAddress = {B_ADDRESS}/24\nListenPort = 51820\nPrivateKey = {}\nTable = off\n\n\
             [Peer]\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = {A_ADDRESS}/32\n\
             Endpoint = 198.18.88.1:51820\n",
            self.b.keys.private, self.a.keys.public, self.psk
        )
    }

    fn write(&self, name: &str, text: &str) -> String {
        rewrite_config(self.dir.path(), name, text).expect("a config")
    }

    fn ping_until_answered(&self, what: &str) {
        wait_for(Duration::from_secs(20), what, || {
            self.a.namespace.pings(B_ADDRESS).unwrap_or(false)
        })
        .unwrap_or_else(|error| panic!("{error}"));
    }

    fn metrics(&self) -> String {
        scrape_metrics(&self.a.namespace, METRICS)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The namespaces take the tunnels and wireguard-go with them; this
        // also removes wgd's records the tidy way.
        let a_config = self.dir.path().join("a.toml");
        let b_config = self.dir.path().join(format!("{}.conf", self.b.tunnel));
        for (site, config) in [(&self.a, a_config), (&self.b, b_config)] {
            let _ = site.wgd(&["down", config.to_str().expect("a UTF-8 path")]);
        }
    }
}

#[test]
fn no_key_material_in_output_logs_api_metrics_or_records() {
    let lab = Lab::new();
    let (a, b) = (&lab.a, &lab.b);
    let mut said = Said::default();

    // Both sites up, with trace logs; they shake hands.
    let a_config = lab.write("a.toml", &lab.a_config(25));
    let b_config = lab.write(&format!("{}.conf", b.tunnel), &lab.b_config());
    said.add_output("wgd up (A)", &a.wgd(&["up", &a_config]));
    said.add_output("wgd up (B)", &b.wgd(&["up", &b_config]));
    lab.ping_until_answered("a ping across the tunnel after `wgd up`");

    // A's peer changes: planned, then applied to the running device.
    let a_config = lab.write("a.toml", &lab.a_config(7));
    said.add_output(
        "wgd up --dry-run (A)",
        &a.wgd(&["up", "--dry-run", &a_config]),
    );
    said.add_output("wgd up, peer changed (A)", &a.wgd(&["up", &a_config]));
    assert_eq!(
        keepalive(a),
        Some(7),
        "the peer change did not reach the device"
    );

    // What wgd reads from the devices itself (no daemon yet).
    for (site, name, config) in [(a, "A", &a_config), (b, "B", &b_config)] {
        said.add_output(&format!("wgd status ({name})"), &site.wgd(&["status"]));
        said.add_output(
            &format!("wgd status --json ({name})"),
            &site.wgd(&["status", "--json"]),
        );
        said.add_output(
            &format!("wgd down --dry-run ({name})"),
            &site.wgd(&["down", "--dry-run", config]),
        );
    }
    said.add_output("wgd down (A)", &a.wgd(&["down", &a_config]));

    // The daemon brings A back, serves the API and metrics, and reloads.
    let mut daemon = a.spawn_wgd(&["run", "-c", &a_config]);
    wait_for(Duration::from_secs(20), "the daemon's API socket", || {
        lab.api().exists()
    })
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    let events = a.spawn_wgd(&["events", "--json", "-c", &a_config]);
    lab.ping_until_answered("a ping across the tunnel the daemon made");
    wait_for(
        Duration::from_secs(20),
        "tunnel-up and peer-handshake events",
        || {
            let log = events.log();
            log.contains("tunnel-up")
                && log
                    .lines()
                    .any(|line| line.contains("peer-handshake") && line.contains(&b.keys.public))
        },
    )
    .unwrap_or_else(|error| panic!("{error}\nevents:\n{}", events.log()));
    said.add_output(
        "wgd status -c (A, from the daemon)",
        &a.wgd(&["status", "-c", &a_config]),
    );
    said.add_output(
        "wgd status --json -c (A, from the daemon)",
        &a.wgd(&["status", "--json", "-c", &a_config]),
    );
    wait_for(Duration::from_secs(20), "the tunnel in the metrics", || {
        lab.metrics().contains(&b.keys.public)
    })
    .unwrap_or_else(|error| panic!("{error}\nmetrics:\n{}", lab.metrics()));
    said.add("metrics (A)", lab.metrics());

    lab.write("a.toml", &lab.a_config(9));
    sighup(&a.namespace, &daemon).expect("SIGHUP");
    wait_for(
        Duration::from_secs(20),
        "the reloaded peer on the device",
        || keepalive(a) == Some(9),
    )
    .unwrap_or_else(|error| panic!("{error}\ndaemon log:\n{}", daemon.log()));
    let exit = daemon.stop().expect("stop the daemon");
    assert!(exit.success(), "daemon exit: {exit}\n{}", daemon.log());
    said.add("the daemon's log (A)", daemon.log());
    said.add("wgd events --json (A)", events.log());
    drop(events);
    said.add_files(&a.state());
    said.add_files(&b.state());

    // The outputs are the ones meant: they show the public keys.
    let (a_public, b_public) = (a.keys.public.as_str(), b.keys.public.as_str());
    for (source, public) in [
        ("wgd up (A) (stdout)", a_public),
        ("wgd up (A) (stdout)", b_public),
        ("wgd up (B) (stdout)", a_public),
        ("wgd up --dry-run (A) (stdout)", b_public),
        ("wgd status (A) (stdout)", b_public),
        ("wgd status --json (A) (stdout)", a_public),
        ("wgd status --json (A) (stdout)", b_public),
        ("wgd status --json (B) (stdout)", a_public),
        (
            "wgd status --json -c (A, from the daemon) (stdout)",
            a_public,
        ),
        (
            "wgd status --json -c (A, from the daemon) (stdout)",
            b_public,
        ),
        ("metrics (A)", b_public),
        ("wgd events --json (A)", b_public),
    ] {
        said.assert_shows(source, "a public key", public);
    }
    said.assert_shows("the daemon's log (A)", "its tunnel", &a.tunnel);
    // `status` falls back to reading the devices itself when the API does
    // not answer; its trace shows that it spoke HTTP/2 (gRPC) instead.
    said.assert_shows(
        "wgd status --json -c (A, from the daemon) (stderr)",
        "a gRPC exchange with the daemon",
        "h2::",
    );
    said.assert_shows("wgd up, peer changed (A) (stderr)", "a trace log", "TRACE");

    let secrets = [
        Secret::new("site A's private key", &a.keys.private),
        Secret::new("site B's private key", &b.keys.private),
        Secret::new("the preshared key", &lab.psk),
    ];
    let mut leaks = Vec::new();
    for (source, text) in &said.0 {
        for secret in &secrets {
            if let Some((spelling, line)) = secret.find_in(text) {
                leaks.push(format!(
                    "{source}, line {line}: {} in {spelling}",
                    secret.what
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "key material in what wgd said:\n{}",
        leaks.join("\n")
    );
    for site in [a, b] {
        let record = format!("tunnels/{}.json", site.tunnel);
        assert!(
            said.0.iter().any(|(source, _)| source.ends_with(&record)),
            "wgd's record of {} was not collected",
            site.tunnel
        );
    }
}

/// `wgd up` on a file with a malformed key: it must be refused, with an
/// error that does not repeat the key's text.
fn assert_refused_without_echo(
    wgd: &Wgd,
    namespace: &Namespace,
    path: &Path,
    echo: &str,
    reason: &str,
) {
    let output = wgd
        .output(namespace, &["up", path.to_str().expect("a UTF-8 path")])
        .expect("run wgd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let file = path.display();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{file}: `wgd up` should refuse it:\n{stderr}"
    );
    assert!(
        stderr.contains(reason),
        "{file}: expected {reason:?} in:\n{stderr}"
    );
    for text in [&stderr, &stdout] {
        assert!(
            !text.contains(echo),
            "{file}: wgd repeats the malformed key's text"
        );
    }
}

#[test]
fn malformed_keys_are_not_repeated_in_errors() {
    let wgd = Wgd::new().expect("wgd");
    let namespace = Namespace::new("secbad").expect("a namespace");
    let dir = namespace.dir();
    let keys = KeyPair::generate().expect("keys");
    let peer = KeyPair::generate().expect("keys");
    let short = encode_base64(&decode_base64(&keys.private)[..31]);
    assert_eq!(decode_base64(&short).len(), 31);
    let another_psk = decode_base64(&preshared_key().expect("a preshared key"));
    let long = encode_base64(&[another_psk, vec![7]].concat());
    let garbage = "s3cret!preshared+key+garbage#1";
    let conf_garbage = "s3cret!preshared+key+garbage";
    let tunnel = unique_name("wgsec");

    let toml = |private: &str, psk: &str| {
        format!(
            "[[tunnel]]\nname = \"{tunnel}\"\nprivate_key = \"{private}\"\n\n\
             [[tunnel.peer]]\npublic_key = \"{}\"\npreshared_key = \"{psk}\"\n",
            peer.public
        )
    };
    let conf = |private: &str, psk: &str| {
        format!(
            "[Interface]\nPrivateKey = {private}\n\n[Peer]\nPublicKey = {}\nPresharedKey = {psk}\n",
            peer.public
        )
    };
    let psk = preshared_key().expect("a preshared key");
    let cases = [
        (
            "short.toml".to_owned(),
            toml(&short, &psk),
            short.as_str(),
            "decodes to 31 bytes",
        ),
        (
            "psk.toml".to_owned(),
            toml(&keys.private, garbage),
            garbage,
            "preshared_key: not valid base64",
        ),
        (
            "long.toml".to_owned(),
            toml(&keys.private, &long),
            long.as_str(),
            "decodes to 33 bytes",
        ),
        (
            format!("{tunnel}.conf"),
            conf(&short, &psk),
            short.as_str(),
            "PrivateKey: decodes to 31 bytes",
        ),
        (
            "psk.conf".to_owned(),
            conf(&keys.private, conf_garbage),
            conf_garbage,
            "PresharedKey: not valid base64",
        ),
    ];
    for (name, text, echo, reason) in &cases {
        let path = write_config(dir, name, text).expect("a config");
        assert_refused_without_echo(&wgd, &namespace, &path, echo, reason);
    }

    // A key file holding a key of the wrong length.
    let key_file = write_config(dir, "short.key", &format!("{short}\n")).expect("a key file");
    let text = format!(
        "[[tunnel]]\nname = \"{tunnel}\"\nprivate_key_file = \"{}\"\n",
        key_file.display()
    );
    let path = write_config(dir, "key-file.toml", &text).expect("a config");
    assert_refused_without_echo(&wgd, &namespace, &path, &short, "decodes to 31 bytes");
    assert!(
        !namespace
            .interfaces()
            .expect("interfaces")
            .contains(&tunnel),
        "a refused config made {tunnel}"
    );
}

#[test]
fn pubkey_prints_only_the_public_key() {
    let wgd = Wgd::new().expect("wgd");
    let pubkey = |input: &str| {
        wgd.output_with_stdin(&["pubkey"], input)
            .expect("wgd pubkey")
    };
    let keys = KeyPair::generate().expect("keys");
    let output = pubkey(&format!("{}\n", keys.private));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", keys.public),
        "`wgd pubkey` should print the public key and nothing else"
    );
    assert!(
        output.stderr.is_empty(),
        "`wgd pubkey` wrote on stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A key it cannot read is not repeated either.
    let short = encode_base64(&decode_base64(&keys.private)[..31]);
    for input in [short.as_str(), "s3cret!not+a+key"] {
        let output = pubkey(&format!("{input}\n"));
        assert!(!output.status.success(), "`wgd pubkey` took {input:?}");
        for stream in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(input),
                "`wgd pubkey` repeats the malformed key's text"
            );
        }
    }
}

#[test]
fn base64_round_trips() {
    for length in 0..=34 {
        let bytes: Vec<u8> = (0..length).map(|index| (index * 37 + 11) as u8).collect();
        assert_eq!(
            decode_base64(&encode_base64(&bytes)),
            bytes,
            "{length} bytes"
        );
    }
    assert_eq!(encode_base64(b"short"), "c2hvcnQ=");
    assert_eq!(decode_base64("c2hvcnQ="), b"short");
}

#[test]
fn secrets_are_found_in_every_spelling() {
    let keys = KeyPair::generate().expect("keys");
    let secret = Secret::new("a private key", &keys.private);
    let hex: String = secret
        .bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    let found = |text: &str| secret.find_in(text);
    assert_eq!(
        found(&format!("a\nkey={}", keys.private)),
        Some(("base64", 2))
    );
    assert_eq!(
        found(&format!("private_key={}", hex.to_lowercase())),
        Some(("hex", 1))
    );
    assert_eq!(found(&hex), Some(("hex", 1)));
    assert_eq!(
        found(&format!("Key({:?})", secret.bytes)),
        Some(("a list of bytes", 1))
    );
    assert_eq!(found(&keys.public), None);
}
