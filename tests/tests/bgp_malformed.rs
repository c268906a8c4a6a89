//! The built-in BGP speaker against malformed UPDATEs from its neighbor,
//! handled as RFC 7606 says: an UPDATE with a bad ORIGIN, AS_PATH or
//! NEXT_HOP, or whose last attribute runs past the path attributes, is
//! treated as a withdrawal of the routes it carries and the session stays
//! up; a malformed MP_REACH_NLRI resets the session with a NOTIFICATION.
//!
//! The neighbor is a raw BGP peer written here: site B runs
//! `tests/scripts/bgp_peer.py`, which connects from B's tunnel address to
//! A's port 179 and only moves bytes between the TCP connection and its
//! stdin/stdout. Everything on the wire is built and read by this file
//! from the layouts of RFC 4271 (messages, attributes), RFC 4760 (MP-BGP)
//! and RFC 5492 / RFC 6793 (capabilities), so each malformation is exactly
//! the one named.
//!
//! Extended messages (RFC 8654) too: A offers them; an UPDATE longer than
//! 4096 octets is refused with Message Header Error / Bad Message Length
//! when the peer did not offer them, and taken when it did.
//!
//! Needs `python3`, besides what every end-to-end test needs.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use wgd_labs::wait_for;
use wgd_tests::bgp::has_route;
use wgd_tests::bridge::BridgeLab;

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;
/// A's `hold_time`.
const LOCAL_HOLD: u16 = 30;
/// The hold time the peer offers: the smaller one is agreed (RFC 4271
/// 4.2), so A sends a KEEPALIVE every 3 s, which the test waits for to
/// prove the session survived an UPDATE.
const PEER_HOLD: u16 = 9;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);
const DEADLINE: Duration = Duration::from_secs(10);

/// Message header: marker, length, type (RFC 4271 4.1).
const HEADER_LEN: usize = 19;
/// Without extended messages (RFC 8654).
const MAX_MESSAGE_LEN: usize = 4096;
/// With them.
const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// Message Header Error / Bad Message Length (RFC 4271 6.1).
const MESSAGE_HEADER_ERROR: u8 = 1;
const BAD_MESSAGE_LENGTH: u8 = 2;
/// Capability code of extended messages (RFC 8654 3).
const EXTENDED_MESSAGE_CAPABILITY: u8 = 6;
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;

/// Attribute flags (RFC 4271 4.3): well-known attributes are transitive,
/// MP_REACH_NLRI and MULTI_EXIT_DISC optional non-transitive.
const WELL_KNOWN: u8 = 0x40;
const OPTIONAL: u8 = 0x80;
/// Attribute type codes.
const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MULTI_EXIT_DISC: u8 = 4;
const MP_REACH_NLRI: u8 = 14;
/// AS_PATH segment type.
const AS_SEQUENCE: u8 = 2;
/// UPDATE Message Error (RFC 4271 4.5) and the subcode RFC 4760 7 names
/// for an incorrect MP_REACH_NLRI.
const UPDATE_MESSAGE_ERROR: u8 = 3;
const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;

// ---------------------------------------------------------------------------
// Messages, octet by octet.

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(HEADER_LEN + body.len()).expect("a message under 64 KiB");
    let mut out = vec![0xff; 16];
    out.extend(length.to_be_bytes());
    out.push(kind);
    out.extend(body);
    out
}

fn octet(length: usize) -> u8 {
    u8::try_from(length).expect("a length that fits one octet")
}

/// The peer's OPEN: version 4, AS 65002, its hold time, B's tunnel address
/// as BGP identifier, and one Capabilities parameter (RFC 5492) with
/// MP-BGP for IPv4 and IPv6 unicast (RFC 4760 8) and 4-octet AS numbers
/// (RFC 6793).
fn open() -> Vec<u8> {
    open_offering(false)
}

/// [`open`], with extended messages (RFC 8654: code 6, no value) if asked.
fn open_offering(extended_messages: bool) -> Vec<u8> {
    let mut capabilities = Vec::new();
    if extended_messages {
        capabilities.extend([EXTENDED_MESSAGE_CAPABILITY, 0]);
    }
    for afi in [1u16, 2] {
        capabilities.extend([1, 4]);
        capabilities.extend(afi.to_be_bytes());
        capabilities.extend([0, 1]);
    }
    capabilities.extend([65, 4]);
    capabilities.extend(PEER_AS.to_be_bytes());
    let mut body = vec![4];
    body.extend(u16::try_from(PEER_AS).expect("a 2-octet AS").to_be_bytes());
    body.extend(PEER_HOLD.to_be_bytes());
    body.extend(tunnel_b().octets());
    body.push(octet(2 + capabilities.len()));
    body.extend([2, octet(capabilities.len())]);
    body.extend(capabilities);
    message(OPEN, &body)
}

fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// An UPDATE (RFC 4271 4.3): withdrawn routes and path attributes, each
/// after its 2-octet length, then the NLRI. `attributes` goes in as given,
/// so a malformed attribute list keeps its Total Path Attribute Length
/// right.
fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16::try_from(withdrawn.len()).expect("short").to_be_bytes());
    body.extend(withdrawn);
    body.extend(
        u16::try_from(attributes.len())
            .expect("short")
            .to_be_bytes(),
    );
    body.extend(attributes);
    body.extend(nlri);
    message(UPDATE, &body)
}

/// One path attribute with a 1-octet length, taken from `value`.
fn attribute(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, code, octet(value.len())];
    out.extend(value);
    out
}

fn origin(value: u8) -> Vec<u8> {
    attribute(WELL_KNOWN, ORIGIN, &[value])
}

/// AS_PATH with one AS_SEQUENCE of 4-octet AS numbers (both sides
/// announce 4-octet AS support).
fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut value = vec![AS_SEQUENCE, octet(asns.len())];
    for asn in asns {
        value.extend(asn.to_be_bytes());
    }
    attribute(WELL_KNOWN, AS_PATH, &value)
}

fn next_hop(octets: &[u8]) -> Vec<u8> {
    attribute(WELL_KNOWN, NEXT_HOP, octets)
}

/// MP_REACH_NLRI for IPv6 unicast (RFC 4760 3): AFI 2, SAFI 1, the next
/// hop after its length octet (16 octets when well formed), a reserved
/// octet, the NLRI.
fn mp_reach_ipv6(next_hop: &[u8], prefixes: &[&str]) -> Vec<u8> {
    let mut value = vec![0, 2, 1, octet(next_hop.len())];
    value.extend(next_hop);
    value.push(0);
    value.extend(nlri(prefixes));
    attribute(OPTIONAL, MP_REACH_NLRI, &value)
}

/// Prefixes as `<length, prefix>` pairs, with as many octets of the
/// address as the length covers (RFC 4271 4.3).
fn nlri(prefixes: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for prefix in prefixes {
        let (address, length) = prefix.split_once('/').expect("a prefix");
        let length: u8 = length.parse().expect("a prefix length");
        let octets = match address.parse::<IpAddr>().expect("an address") {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        out.push(length);
        out.extend(&octets[..usize::from(length).div_ceil(8)]);
    }
    out
}

fn tunnel_b() -> Ipv4Addr {
    BridgeLab::TUNNEL_B.parse().expect("B's tunnel address")
}

fn tunnel_b6() -> Ipv6Addr {
    BridgeLab::TUNNEL_B6
        .parse()
        .expect("B's tunnel IPv6 address")
}

/// ORIGIN IGP, AS_PATH [65002], NEXT_HOP B, announcing B's LAN: a route
/// A takes.
fn good_ipv4() -> Vec<u8> {
    let attributes = [
        origin(0),
        as_path(&[PEER_AS]),
        next_hop(&tunnel_b().octets()),
    ]
    .concat();
    update(&[], &attributes, &nlri(&[BridgeLab::FAR_LAN]))
}

/// B's IPv6 LAN via B's tunnel address, in an MP_REACH_NLRI encoded first
/// (RFC 7606 5.1).
fn good_ipv6() -> Vec<u8> {
    let attributes = [
        mp_reach_ipv6(&tunnel_b6().octets(), &[BridgeLab::FAR_LAN6]),
        origin(0),
        as_path(&[PEER_AS]),
    ]
    .concat();
    update(&[], &attributes, &[])
}

/// The last attribute of a list, cut short: a MULTI_EXIT_DISC whose length
/// says 4 octets while the list ends after 2 of them.
fn overrunning_med() -> Vec<u8> {
    vec![OPTIONAL, MULTI_EXIT_DISC, 4, 0, 0]
}

// ---------------------------------------------------------------------------
// The peer: the script in B's namespace, and this side of its pipes.

#[derive(Debug)]
enum Event {
    /// A whole message from A: its type and body (after the header).
    Message(u8, Vec<u8>),
    /// Bytes that are no BGP message (then nothing more is read).
    Garbled(String),
    /// The TCP connection ended.
    Closed,
}

struct Peer {
    child: Child,
    writer: Arc<Mutex<ChildStdin>>,
    events: Receiver<Event>,
    /// While set, a KEEPALIVE goes to A every [`KEEPALIVE_EVERY`].
    keepalives: Arc<AtomicBool>,
    log: PathBuf,
}

impl Peer {
    /// Starts the script in B, connecting from B's tunnel address to A's
    /// port 179 (A's speaker accepts its neighbor's connections; its own
    /// attempts toward B's port 179 are refused, since nothing listens
    /// there, so no collision).
    fn connect(lab: &BridgeLab) -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bgp_peer.py");
        let log = lab.b.dir().join("bgp_peer.log");
        let mut child = Command::new("ip")
            .args(["netns", "exec", lab.b.name(), "python3"])
            .arg(&script)
            .args([
                "--connect",
                BridgeLab::TUNNEL_A,
                "--source",
                BridgeLab::TUNNEL_B,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?)
            .spawn()
            .context("starting python3 in B (is it installed?)")?;
        let stdin = child.stdin.take().context("the peer's stdin")?;
        let stdout = child.stdout.take().context("the peer's stdout")?;
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || read_messages(stdout, &sender));
        Ok(Self {
            child,
            writer: Arc::new(Mutex::new(stdin)),
            events,
            keepalives: Arc::new(AtomicBool::new(false)),
            log,
        })
    }

    fn send(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.write_all(bytes)?;
        writer.flush()?;
        Ok(())
    }

    /// What the script said on stderr.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next message of A's that is not an UPDATE (A's own UPDATEs, its
    /// End-of-RIB markers, are not what these tests are about).
    fn next(&self, within: Duration) -> anyhow::Result<(u8, Vec<u8>)> {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Message(UPDATE, _)) => {}
                Ok(Event::Message(kind, body)) => return Ok((kind, body)),
                Ok(Event::Garbled(what)) => bail!("A sent no BGP message: {what}"),
                Ok(Event::Closed) => bail!("A closed the connection"),
                Err(RecvTimeoutError::Timeout) => bail!("nothing from A within {within:?}"),
                Err(RecvTimeoutError::Disconnected) => bail!("the peer's reader is gone"),
            }
        }
    }

    /// OPEN both ways (`open` is ours), then KEEPALIVE both ways (RFC 4271 8): A's OPEN
    /// is checked (AS, hold time, identifier, the capabilities asked for).
    /// From then on the peer keeps the session alive.
    fn establish(&self, open: &[u8]) -> anyhow::Result<()> {
        self.send(open)?;
        let (kind, body) = self.next(DEADLINE)?;
        ensure!(kind == OPEN, "A's first message: {}", describe(kind, &body));
        check_open(&body)?;
        self.send(&keepalive())?;
        let (kind, body) = self.next(DEADLINE)?;
        ensure!(
            kind == KEEPALIVE,
            "A's answer to our OPEN: {}",
            describe(kind, &body)
        );
        self.keepalives.store(true, Ordering::SeqCst);
        let (writer, running) = (self.writer.clone(), self.keepalives.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                std::thread::sleep(KEEPALIVE_EVERY);
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                if !running.load(Ordering::SeqCst) || writer.write_all(&keepalive()).is_err() {
                    break;
                }
                let _ = writer.flush();
            }
        });
        Ok(())
    }

    /// A still speaks on this connection: whatever it sent so far was no
    /// NOTIFICATION nor a close, and a KEEPALIVE sent after now arrives.
    fn expect_fresh_keepalive(&self) -> anyhow::Result<()> {
        loop {
            match self.events.try_recv() {
                Ok(Event::Message(NOTIFICATION, body)) => {
                    bail!("A sent {}", describe(NOTIFICATION, &body))
                }
                Ok(Event::Message(..)) => {}
                Ok(Event::Garbled(what)) => bail!("A sent no BGP message: {what}"),
                Ok(Event::Closed) => bail!("A closed the connection"),
                Err(_) => break,
            }
        }
        let (kind, body) = self.next(KEEPALIVE_EVERY * 3)?;
        ensure!(kind == KEEPALIVE, "A sent {}", describe(kind, &body));
        Ok(())
    }

    /// A's NOTIFICATION (code, subcode, data), skipping its KEEPALIVEs.
    fn expect_notification(&self) -> anyhow::Result<(u8, u8, Vec<u8>)> {
        loop {
            let (kind, body) = self.next(DEADLINE)?;
            match (kind, body.as_slice()) {
                (KEEPALIVE, _) => {}
                (NOTIFICATION, [code, subcode, data @ ..]) => {
                    return Ok((*code, *subcode, data.to_vec()));
                }
                _ => bail!("A sent {} instead of a NOTIFICATION", describe(kind, &body)),
            }
        }
    }

    /// The connection ends (after a NOTIFICATION A sends nothing more).
    fn expect_closed(&self) -> anyhow::Result<()> {
        match self.events.recv_timeout(DEADLINE) {
            Ok(Event::Closed) => Ok(()),
            Ok(other) => bail!("A sent more after its NOTIFICATION: {other:?}"),
            Err(_) => bail!("A left the connection open after its NOTIFICATION"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.keepalives.store(false, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Cuts the stream from A into messages, checking each header.
fn read_messages(mut stdout: impl Read, events: &Sender<Event>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while buffer.len() >= HEADER_LEN {
            let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
            if buffer[..16] != [0xff; 16]
                || !(HEADER_LEN..=MAX_EXTENDED_MESSAGE_LEN).contains(&length)
            {
                let _ = events.send(Event::Garbled(format!("{:02x?}", &buffer[..HEADER_LEN])));
                return;
            }
            if buffer.len() < length {
                break;
            }
            let whole: Vec<u8> = buffer.drain(..length).collect();
            let _ = events.send(Event::Message(whole[18], whole[HEADER_LEN..].to_vec()));
        }
        match stdout.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = events.send(Event::Closed);
                return;
            }
            Ok(read) => buffer.extend(&chunk[..read]),
        }
    }
}

fn describe(kind: u8, body: &[u8]) -> String {
    match (kind, body) {
        (NOTIFICATION, [code, subcode, data @ ..]) => {
            format!("NOTIFICATION {code}/{subcode} data {data:02x?}")
        }
        _ => format!("a message of type {kind} ({} octets)", body.len()),
    }
}

/// A's OPEN (RFC 4271 4.2): version 4, AS 65001 (it fits 2 octets), hold
/// time 30, identifier 10.255.0.0 (its lowest tunnel address), and among
/// its capabilities MP-BGP for both unicast families and 4-octet AS 65001.
fn check_open(body: &[u8]) -> anyhow::Result<()> {
    let [
        version,
        as_high,
        as_low,
        hold_high,
        hold_low,
        a,
        b,
        c,
        d,
        length,
        parameters @ ..,
    ] = body
    else {
        bail!("A's OPEN is {} octets", body.len());
    };
    ensure!(*version == 4, "A's OPEN: version {version}");
    let my_as = u32::from(u16::from_be_bytes([*as_high, *as_low]));
    ensure!(my_as == LOCAL_AS, "A's OPEN: AS {my_as}");
    let hold = u16::from_be_bytes([*hold_high, *hold_low]);
    ensure!(hold == LOCAL_HOLD, "A's OPEN: hold time {hold}");
    let identifier = Ipv4Addr::new(*a, *b, *c, *d);
    ensure!(
        identifier.to_string() == BridgeLab::TUNNEL_A,
        "A's OPEN: identifier {identifier}"
    );
    ensure!(
        usize::from(*length) == parameters.len(),
        "A's OPEN: parameters"
    );
    let mut capabilities = Vec::new();
    let mut rest = parameters;
    while let [kind, length, tail @ ..] = rest {
        let value = tail
            .get(..usize::from(*length))
            .context("A's OPEN: a parameter runs past the end")?;
        if *kind == 2 {
            let mut list = value;
            while let [code, length, tail @ ..] = list {
                let value = tail
                    .get(..usize::from(*length))
                    .context("A's OPEN: a capability runs past its parameter")?;
                capabilities.push((*code, value.to_vec()));
                list = &tail[usize::from(*length)..];
            }
        }
        rest = &tail[usize::from(*length)..];
    }
    for wanted in [
        (1, vec![0, 1, 0, 1]),
        (1, vec![0, 2, 0, 1]),
        (65, LOCAL_AS.to_be_bytes().to_vec()),
        (EXTENDED_MESSAGE_CAPABILITY, Vec::new()),
    ] {
        ensure!(
            capabilities.contains(&wanted),
            "A's OPEN lacks capability {wanted:?}: {capabilities:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A, as an operator sees it.

/// Site A's `[bgp]`: AS 65001 and B as its neighbor on the tunnel.
fn speaker_config() -> String {
    format!(
        "\n[bgp]\nasn = {LOCAL_AS}\nhold_time = {LOCAL_HOLD}\n\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {PEER_AS}\n",
        BridgeLab::TUNNEL_B
    )
}

fn api(lab: &BridgeLab) -> &str {
    lab.socket.to_str().unwrap_or_default()
}

/// B's line of `wgd bgp summary --json` in A.
fn neighbor(lab: &BridgeLab) -> anyhow::Result<serde_json::Value> {
    let text = lab
        .wgd
        .run(&lab.a, &["bgp", "summary", "--json", "--api", api(lab)])?;
    let summary: serde_json::Value = serde_json::from_str(&text)?;
    Ok(summary["neighbors"][0].clone())
}

fn established(lab: &BridgeLab) -> bool {
    neighbor(lab).is_ok_and(|neighbor| neighbor["state"] == "established")
}

/// `wgd bgp routes --json --prefix <prefix>` in A.
fn paths(lab: &BridgeLab, prefix: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = lab.wgd.run(
        &lab.a,
        &[
            "bgp",
            "routes",
            "--json",
            "--prefix",
            prefix,
            "--api",
            api(lab),
        ],
    )?;
    Ok(serde_json::from_str(&text)?)
}

/// A line of A's log holding every one of `words`.
fn logged(lab: &BridgeLab, words: &[&str]) -> bool {
    lab.log()
        .lines()
        .any(|line| words.iter().all(|word| line.contains(word)))
}

/// What a failure message needs: A's BGP view and both logs.
fn report(lab: &BridgeLab, peer: &Peer) -> String {
    let summary = lab
        .wgd
        .run(&lab.a, &["bgp", "summary", "--api", api(lab)])
        .unwrap_or_else(|error| error.to_string());
    let routes = lab.kernel_routes().unwrap_or_default().join("\n");
    format!(
        "\nwgd bgp summary:\n{summary}\nA's kernel (proto 200):\n{routes}\n\
         bgp_peer.py:\n{}\nwgd log:\n{}",
        peer.log(),
        lab.log()
    )
}

/// A's daemon still runs and answers, and its log shows no panic.
fn alive(lab: &mut BridgeLab) -> anyhow::Result<()> {
    let running = lab
        .daemon
        .as_mut()
        .is_some_and(|daemon| daemon.is_running());
    ensure!(running, "A's daemon exited:\n{}", lab.log());
    ensure!(
        !lab.log().contains("panicked"),
        "A's daemon panicked:\n{}",
        lab.log()
    );
    neighbor(lab).context("wgd bgp summary after the UPDATE")?;
    Ok(())
}

/// A lab whose daemon has B as an established neighbor, with the peer
/// that B is.
fn session() -> anyhow::Result<(BridgeLab, Peer)> {
    session_with(&open())
}

/// [`session`], B sending `open`.
fn session_with(open: &[u8]) -> anyhow::Result<(BridgeLab, Peer)> {
    let lab = BridgeLab::new(&speaker_config())?;
    let peer = Peer::connect(&lab)?;
    peer.establish(open)
        .map_err(|error| anyhow!("{error:#}{}", report(&lab, &peer)))?;
    wait_for(DEADLINE, "the session established in A", || {
        established(&lab)
    })
    .map_err(|error| anyhow!("{error}{}", report(&lab, &peer)))?;
    Ok((lab, peer))
}

/// Sends a well-formed UPDATE and waits for its route in A's kernel.
fn announce(lab: &BridgeLab, peer: &Peer, message: &[u8], prefix: &str) -> anyhow::Result<()> {
    peer.send(message)?;
    wait_for(DEADLINE, &format!("{prefix} in A's kernel"), || {
        has_route(lab, prefix)
    })
    .map_err(|error| anyhow!("{error}{}", report(lab, peer)))
}

/// Treat-as-withdraw (RFC 7606 2): after `message`, which re-announces
/// `prefix` malformed, the route leaves A's kernel and its RIB, A logs the
/// attribute it blamed, and the session stays established on the same
/// connection (no reset counted, a KEEPALIVE after the UPDATE, no
/// NOTIFICATION).
fn treated_as_withdraw(
    lab: &mut BridgeLab,
    peer: &Peer,
    message: &[u8],
    prefix: &str,
    blamed: &str,
) -> anyhow::Result<()> {
    peer.send(message)?;
    let context =
        |error: &dyn std::fmt::Display, lab: &BridgeLab| anyhow!("{error:#}{}", report(lab, peer));
    wait_for(DEADLINE, &format!("{prefix} to leave A's kernel"), || {
        !has_route(lab, prefix)
    })
    .map_err(|error| context(&error, lab))?;
    // Gone from the kernel, which a reset would also do: the session must
    // still be the same one.
    peer.expect_fresh_keepalive()
        .map_err(|error| context(&error, lab))?;
    let state = neighbor(lab)?;
    ensure!(
        state["state"] == "established" && state["resets"] == 0,
        "the session did not stay up: {state:#}{}",
        report(lab, peer)
    );
    let listed = paths(lab, prefix)?;
    ensure!(
        listed.is_empty(),
        "wgd bgp routes still lists {prefix}: {listed:#?}"
    );
    wait_for(DEADLINE, "A's log to name the error", || {
        logged(lab, &[blamed, "treated as withdraw"])
    })
    .map_err(|error| context(&error, lab))?;
    alive(lab)
}

// ---------------------------------------------------------------------------

#[test]
fn malformed_updates_are_handled_as_rfc_7606_says() -> anyhow::Result<()> {
    let (mut lab, peer) = session()?;
    let lan = BridgeLab::FAR_LAN;
    let lan6 = BridgeLab::FAR_LAN6;

    // 1. A well-formed UPDATE: the route is in A's kernel, through B's
    // tunnel address at eBGP's distance, and in `wgd bgp routes`.
    announce(&lab, &peer, &good_ipv4(), lan)?;
    let routes = lab.kernel_routes()?;
    let expected = format!(
        "{lan} via {} dev {} metric 20 onlink",
        BridgeLab::TUNNEL_B,
        lab.tunnel_a
    );
    ensure!(routes.contains(&expected), "{routes:#?}");
    let listed = paths(&lab, lan)?;
    ensure!(
        listed.len() == 1
            && listed[0]["neighbor"] == BridgeLab::TUNNEL_B
            && listed[0]["next_hop"] == BridgeLab::TUNNEL_B
            && listed[0]["as_path"] == "65002"
            && listed[0]["origin"] == "igp"
            && listed[0]["best"] == true,
        "wgd bgp routes --prefix {lan}: {listed:#?}"
    );
    alive(&mut lab)?;
    println!("case 1 (well-formed UPDATE): {lan} installed and listed");

    // 2. ORIGIN 7, a value no RFC defines: RFC 7606 7.1, treat-as-withdraw.
    let bad_origin = [
        origin(7),
        as_path(&[PEER_AS]),
        next_hop(&tunnel_b().octets()),
    ]
    .concat();
    treated_as_withdraw(
        &mut lab,
        &peer,
        &update(&[], &bad_origin, &nlri(&[lan])),
        lan,
        "ORIGIN",
    )?;
    println!("case 2 (ORIGIN 7): {lan} withdrawn, session established");

    // 3. Back with a good UPDATE; then an AS_PATH whose segment says 2 AS
    // numbers (8 octets) while the attribute holds 4 octets after the
    // segment header: RFC 7606 7.2, treat-as-withdraw.
    announce(&lab, &peer, &good_ipv4(), lan)?;
    println!("case 3: {lan} back after a good UPDATE");
    let mut segment = vec![AS_SEQUENCE, 2];
    segment.extend(PEER_AS.to_be_bytes());
    let bad_as_path = [
        origin(0),
        attribute(WELL_KNOWN, AS_PATH, &segment),
        next_hop(&tunnel_b().octets()),
    ]
    .concat();
    treated_as_withdraw(
        &mut lab,
        &peer,
        &update(&[], &bad_as_path, &nlri(&[lan])),
        lan,
        "AS_PATH",
    )?;
    println!("case 3 (AS_PATH segment overrun): {lan} withdrawn, session established");

    // 4. NEXT_HOP of 5 octets (an IPv4 address and one more): RFC 7606
    // 7.3, treat-as-withdraw.
    announce(&lab, &peer, &good_ipv4(), lan)?;
    let mut five = tunnel_b().octets().to_vec();
    five.push(0);
    let bad_next_hop = [origin(0), as_path(&[PEER_AS]), next_hop(&five)].concat();
    treated_as_withdraw(
        &mut lab,
        &peer,
        &update(&[], &bad_next_hop, &nlri(&[lan])),
        lan,
        "NEXT_HOP",
    )?;
    println!("case 4 (NEXT_HOP of length 5): {lan} withdrawn, session established");

    // 5. An attribute running past the path attributes. B's IPv6 LAN is
    // announced well formed (and the IPv4 one again), then re-announced in
    // an UPDATE whose MP_REACH_NLRI comes first, as RFC 7606 5.1 has
    // senders encode it, followed by ORIGIN, AS_PATH and a MULTI_EXIT_DISC
    // whose length (4) runs 2 octets past the Total Path Attribute Length.
    // This is the first case of RFC 7606 4: the attribute list cannot be
    // parsed to its end, but the Total Path Attribute Length still frames
    // the list, and the only NLRI, in the MP_REACH_NLRI before the break,
    // was read whole; so "treat-as-withdraw" MUST be used (no stronger
    // error was met): fd00:77::/64 is withdrawn, the session stays, and
    // the IPv4 route, which this UPDATE does not carry, stays too.
    announce(&lab, &peer, &good_ipv4(), lan)?;
    announce(&lab, &peer, &good_ipv6(), lan6)?;
    let truncated = [
        mp_reach_ipv6(&tunnel_b6().octets(), &[lan6]),
        origin(0),
        as_path(&[PEER_AS]),
        overrunning_med(),
    ]
    .concat();
    treated_as_withdraw(
        &mut lab,
        &peer,
        &update(&[], &truncated, &[]),
        lan6,
        "attribute runs past the end",
    )?;
    ensure!(
        has_route(&lab, lan),
        "{lan}, not in the UPDATE, went too{}",
        report(&lab, &peer)
    );
    println!(
        "case 5 (MULTI_EXIT_DISC past the attribute list, after MP_REACH_NLRI): \
         {lan6} withdrawn, {lan} kept, session established"
    );

    // 6. MP_REACH_NLRI for IPv6 with a 5-octet next hop. RFC 7606 7.11: a
    // next hop length other than the one expected makes the attribute
    // malformed, and since the next hop comes before the NLRI, the NLRI
    // cannot be located reliably: "session reset" (or "AFI/SAFI disable",
    // which wgd does not do) MUST be used. The NOTIFICATION is UPDATE
    // Message Error / Optional Attribute Error (RFC 4760 7) carrying the
    // attribute (RFC 4271 6.3). The session goes down and B's routes leave
    // A's kernel (B announced no graceful restart).
    let bad_mp_reach = mp_reach_ipv6(&[0xfd, 0, 2, 0x55, 0], &[lan6]);
    let attributes = [bad_mp_reach.clone(), origin(0), as_path(&[PEER_AS])].concat();
    peer.send(&update(&[], &attributes, &[]))?;
    let (code, subcode, data) = peer
        .expect_notification()
        .map_err(|error| anyhow!("{error:#}{}", report(&lab, &peer)))?;
    ensure!(
        code == UPDATE_MESSAGE_ERROR,
        "NOTIFICATION {code}/{subcode}, not an UPDATE Message Error"
    );
    ensure!(
        subcode == OPTIONAL_ATTRIBUTE_ERROR && data == bad_mp_reach,
        "NOTIFICATION {code}/{subcode} data {data:02x?}: expected 3/9 with the attribute \
         {bad_mp_reach:02x?}"
    );
    peer.expect_closed()?;
    wait_for(DEADLINE, "A to see the session down", || !established(&lab))
        .map_err(|error| anyhow!("{error}{}", report(&lab, &peer)))?;
    let state = neighbor(&lab)?;
    let last_error = state["last_error"].as_str().unwrap_or_default();
    ensure!(
        last_error.starts_with("sent NOTIFICATION") && last_error.contains("(3/9)"),
        "last_error: {state:#}"
    );
    ensure!(state["resets"] == 1, "resets: {state:#}");
    wait_for(DEADLINE, "B's routes to leave A's kernel", || {
        !has_route(&lab, lan) && !has_route(&lab, lan6)
    })
    .map_err(|error| anyhow!("{error}{}", report(&lab, &peer)))?;
    alive(&mut lab)?;
    println!(
        "case 6 (MP_REACH_NLRI next hop of length 5): NOTIFICATION {code}/{subcode} read, \
         connection closed, neighbor {} with last_error {last_error:?}",
        state["state"]
    );
    Ok(())
}

/// The truncated attribute of RFC 7606 4 in a plain IPv4 UPDATE: ORIGIN,
/// AS_PATH, NEXT_HOP, then a MULTI_EXIT_DISC whose length runs 2 octets
/// past the Total Path Attribute Length, into the NLRI (192.168.77.0/24)
/// that follows. The UPDATE itself is framed (Withdrawn Routes Length and
/// Total Path Attribute Length fit the message, RFC 4271 6.3), so the
/// NLRI can be located; no MP_REACH_NLRI was met before the break (RFC
/// 7606 5.1 has senders put it first) and no other error: RFC 7606 4
/// says "treat-as-withdraw" MUST be used, the Total Path Attribute Length
/// relied upon to find the NLRI. So the route is withdrawn and the session
/// stays up, although this session carries IPv6 too.
#[test]
fn an_attribute_past_the_list_of_an_ipv4_update_is_treat_as_withdraw() -> anyhow::Result<()> {
    let (mut lab, peer) = session()?;
    let lan = BridgeLab::FAR_LAN;
    announce(&lab, &peer, &good_ipv4(), lan)?;
    let truncated = [
        origin(0),
        as_path(&[PEER_AS]),
        next_hop(&tunnel_b().octets()),
        overrunning_med(),
    ]
    .concat();
    treated_as_withdraw(
        &mut lab,
        &peer,
        &update(&[], &truncated, &nlri(&[lan])),
        lan,
        "attribute runs past the end",
    )?;
    println!(
        "IPv4 UPDATE with MULTI_EXIT_DISC past the attribute list: {lan} withdrawn, \
         session established"
    );
    Ok(())
}

/// An UPDATE longer than 4096 octets: B's LAN and 1100 more /24s (4
/// octets of NLRI each) after ORIGIN, AS_PATH and NEXT_HOP.
fn long_update() -> Vec<u8> {
    let attributes = [
        origin(0),
        as_path(&[PEER_AS]),
        next_hop(&tunnel_b().octets()),
    ]
    .concat();
    let mut prefixes = vec![BridgeLab::FAR_LAN.to_owned()];
    prefixes.extend((0..1100u32).map(|n| format!("172.{}.{}.0/24", 16 + n / 256, n % 256)));
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let message = update(&[], &attributes, &nlri(&prefixes));
    assert!(message.len() > MAX_MESSAGE_LEN, "{} octets", message.len());
    message
}

/// RFC 8654 not negotiated (B did not offer it): an UPDATE of more than
/// 4096 octets is refused on its header alone, with Message Header Error /
/// Bad Message Length carrying the length field (RFC 4271 6.1), and the
/// session closes.
#[test]
fn an_update_over_4096_octets_without_extended_messages_is_a_bad_length() -> anyhow::Result<()> {
    let (mut lab, peer) = session()?;
    let message = long_update();
    peer.send(&message)?;
    let (code, subcode, data) = peer
        .expect_notification()
        .map_err(|error| anyhow!("{error:#}{}", report(&lab, &peer)))?;
    ensure!(
        (code, subcode) == (MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH) && data == message[16..18],
        "NOTIFICATION {code}/{subcode} data {data:02x?}: expected 1/2 with {:02x?}",
        &message[16..18]
    );
    peer.expect_closed()?;
    ensure!(
        !has_route(&lab, BridgeLab::FAR_LAN),
        "the long UPDATE's routes went in{}",
        report(&lab, &peer)
    );
    alive(&mut lab)?;
    println!(
        "UPDATE of {} octets, no extended messages: NOTIFICATION 1/2 data {data:02x?}",
        message.len()
    );
    Ok(())
}

/// RFC 8654 negotiated (B offered it, A offers it): the same UPDATE is
/// taken whole and the session stays up.
#[test]
fn extended_messages_take_an_update_over_4096_octets() -> anyhow::Result<()> {
    let (mut lab, peer) = session_with(&open_offering(true))?;
    let message = long_update();
    announce(&lab, &peer, &message, BridgeLab::FAR_LAN)?;
    wait_for(DEADLINE, "the UPDATE's last prefix in A's kernel", || {
        has_route(&lab, "172.20.75.0/24")
    })
    .map_err(|error| anyhow!("{error}{}", report(&lab, &peer)))?;
    peer.expect_fresh_keepalive()
        .map_err(|error| anyhow!("{error:#}{}", report(&lab, &peer)))?;
    let state = neighbor(&lab)?;
    ensure!(
        state["state"] == "established" && state["resets"] == 0,
        "the session did not stay up: {state:#}"
    );
    alive(&mut lab)?;
    println!(
        "UPDATE of {} octets with extended messages: 1101 routes in, session established",
        message.len()
    );
    Ok(())
}
