//! The config readers take outside input: whatever bytes they are given,
//! they return a config or errors of the form `file:line: message`, never
//! panic, and never echo key text. Valid files are mutated many times over
//! with a fixed seed, so a failure replays.

use std::path::Path;

use wgd::config::{offline, parse_str};

const PRIVATE: &str = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=";
const PRESHARED: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

const TOML: &str = r#"[daemon]
api = "unix:/run/wgd/test.sock"
metrics = "127.0.0.1:9586"
peer_dead_after = 180

[[tunnel]]
name = "wg-b"
private_key = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE="
listen_port = 51821
address = ["10.255.0.0/31", "fd00:255::/127"]
routes = "allowed-ips"
table = 100
mtu = 1420

[[tunnel.peer]]
name = "site-b"
public_key = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c="
preshared_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
endpoint = "192.0.2.7:51821"
persistent_keepalive = 25
allowed_ips = ["0.0.0.0/0", "::/0", "10.1.0.0/16"]
"#;

const WG_QUICK: &str = "[Interface]
Address = 10.0.0.1/24, fd00::1/64
SaveConfig = true
ListenPort = 51820
PrivateKey = GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=
Table = auto
PostUp = echo %i # a comment
DNS = 192.0.2.53

[Peer]
PublicKey = uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=
PresharedKey = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
AllowedIPs = 0.0.0.0/0
AllowedIPs = 10.9.0.0/16
Endpoint = 192.168.100.61:51820
PersistentKeepalive = 25
";

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "=",
    "[",
    "]",
    "\"",
    "#",
    "\n",
    ",",
    "/",
    ":",
    "0",
    "99999",
    "-1",
    "/33",
    "::",
    "[[tunnel]]",
    "[Peer]",
    "[Interface]",
    "name",
    "AllowedIPs",
    "é",
    "\u{0}",
    "0x",
    "true",
    " ",
    "[[tunnel.peer]]",
    "'''",
];

fn mutate(text: &str, random: &mut Random) -> String {
    let mut bytes: Vec<char> = text.chars().collect();
    for _ in 0..1 + random.below(4) {
        let at = random.below(bytes.len() + 1);
        match random.below(5) {
            0 if at < bytes.len() => {
                let end = (at + 1 + random.below(12)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 | 2 => {
                let piece = PIECES[random.below(PIECES.len())];
                bytes.splice(at..at, piece.chars());
            }
            3 => {
                // Duplicate a line.
                let text: String = bytes.iter().collect();
                let lines: Vec<&str> = text.lines().collect();
                let line = lines[random.below(lines.len())].to_owned();
                let mut out: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
                out.insert(random.below(out.len() + 1), line);
                bytes = out.join("\n").chars().collect();
            }
            _ if at < bytes.len() => bytes[at] = char::from(b' ' + (random.below(95) as u8)),
            _ => {}
        }
    }
    bytes.into_iter().collect()
}

fn check(path: &str, original: &str, seed: u64) {
    let mut random = Random(seed);
    let mut rejected = 0;
    for round in 0..4000 {
        let text = mutate(original, &mut random);
        // Offline: a mutated address may read as a host name; no DNS query leaves.
        let result = std::panic::catch_unwind(|| offline(|| parse_str(Path::new(path), &text)));
        let result =
            result.unwrap_or_else(|_| panic!("round {round}: the parser panicked on:\n{text}"));
        let Err(errors) = result else { continue };
        rejected += 1;
        assert!(
            !errors.0.is_empty(),
            "round {round}: rejected with no error:\n{text}"
        );
        for error in &errors.0 {
            let printed = error.to_string();
            let rest = printed
                .strip_prefix(&format!("{path}:"))
                .unwrap_or_else(|| panic!("round {round}: error without the file: {printed}"));
            // "file:line: message", or "file: message" for the file as a
            // whole (line 0).
            let message = if error.line == 0 {
                rest.strip_prefix(' ')
                    .unwrap_or_else(|| panic!("round {round}: {printed}"))
            } else {
                let (line, message) = rest
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("round {round}: error without a line: {printed}"));
                assert_eq!(
                    line.parse::<usize>().ok(),
                    Some(error.line),
                    "round {round}: line is not the error's: {printed}"
                );
                message
            };
            assert!(
                !message.is_empty() && !printed.contains('\n'),
                "round {round}: {printed:?}"
            );
            // No three quarters of a key, anywhere in the message.
            for secret in [PRIVATE, PRESHARED] {
                for window in secret.as_bytes().windows(32) {
                    let window = std::str::from_utf8(window).expect("base64 is ASCII");
                    assert!(
                        !printed.contains(window),
                        "round {round}: key text in an error: {printed}\ninput:\n{text}"
                    );
                }
            }
        }
    }
    // The mutations must really reach the error paths.
    assert!(
        rejected > 1000,
        "only {rejected} of 4000 mutations were rejected"
    );
}

#[test]
fn mutated_toml_files_get_errors_not_panics() {
    assert!(parse_str(Path::new("wgd.toml"), TOML).is_ok());
    check("wgd.toml", TOML, 0x5eed_0001);
}

#[test]
fn mutated_wg_quick_files_get_errors_not_panics() {
    assert!(parse_str(Path::new("wg0.conf"), WG_QUICK).is_ok());
    check("wg0.conf", WG_QUICK, 0x5eed_0002);
}
