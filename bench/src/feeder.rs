//! The harness's own BGP peer for the bgp scenario (`--feeder replay`):
//! it listens on the peer's end of a receiver's tunnel, takes the session
//! the receiver opens, and sends the prefix set as UPDATEs encoded before
//! the session came up, as fast as the receiver reads them; then the
//! withdrawals the same way. The figures then measure the receivers
//! alone: gobgpd reports a session with a large RIB established late, and
//! takes over a minute to withdraw a million routes.
//!
//! The table is the one the MRT file gives gobgpd ([`Table`]): the same
//! prefixes with the same attributes, the peer's AS in front of each AS
//! path and the peer's tunnel address as next hop; each UPDATE carries
//! prefixes of one attribute set, as many as fit.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::prefixes::Prefix;
use crate::table::Table;

const MAX_MESSAGE: usize = 4096;
const HEADER: usize = 19;
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
/// Hold time offered; keepalives go every third of it.
const HOLD_SECONDS: u16 = 90;
/// Bytes per write: whole messages, up to this much.
const CHUNK: usize = 64 << 10;

/// A message stream cut into writes of whole messages.
#[derive(Debug, Default)]
pub struct Stream {
    chunks: Vec<Vec<u8>>,
    pub messages: usize,
}

impl Stream {
    fn push(&mut self, message: &[u8]) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() + message.len() <= CHUNK => chunk.extend_from_slice(message),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.extend_from_slice(message);
                self.chunks.push(chunk);
            }
        }
        self.messages += 1;
    }
}

/// The table's announcements and withdrawals, encoded.
#[derive(Debug)]
pub struct Updates {
    pub announce: Stream,
    pub withdraw: Stream,
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![0xff; 16];
    message.extend_from_slice(&((HEADER + body.len()) as u16).to_be_bytes());
    message.push(kind);
    message.extend_from_slice(body);
    message
}

fn nlri(prefix: &Prefix) -> impl Iterator<Item = u8> {
    let octets = usize::from(prefix.len).div_ceil(8);
    std::iter::once(prefix.len).chain(prefix.address.to_be_bytes().into_iter().take(octets))
}

/// The UPDATEs for `table` from AS `peer_as` with next hop `next_hop`.
pub fn encode(table: &Table, peer_as: u32, next_hop: Ipv4Addr) -> Updates {
    let mut announce = Stream::default();
    for (set, group) in table.sets.iter().zip(table.groups()) {
        if group.is_empty() {
            continue;
        }
        let attributes = set.encode(Some(peer_as), next_hop);
        let mut body = Vec::with_capacity(MAX_MESSAGE);
        let start = |body: &mut Vec<u8>| {
            body.clear();
            body.extend_from_slice(&0u16.to_be_bytes()); // no withdrawn routes
            body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
            body.extend_from_slice(&attributes);
        };
        start(&mut body);
        let empty = body.len();
        for prefix in group.iter().map(|&index| &table.prefixes[index as usize]) {
            if HEADER + body.len() + 5 > MAX_MESSAGE {
                announce.push(&message(UPDATE, &body));
                start(&mut body);
            }
            body.extend(nlri(prefix));
        }
        if body.len() > empty {
            announce.push(&message(UPDATE, &body));
        }
    }
    let mut withdraw = Stream::default();
    let mut withdrawn = Vec::with_capacity(MAX_MESSAGE);
    let flush = |withdrawn: &mut Vec<u8>, withdraw: &mut Stream| {
        let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
        body.append(withdrawn);
        body.extend_from_slice(&0u16.to_be_bytes()); // no attributes
        withdraw.push(&message(UPDATE, &body));
    };
    for prefix in &table.prefixes {
        if HEADER + 2 + withdrawn.len() + 5 + 2 > MAX_MESSAGE {
            flush(&mut withdrawn, &mut withdraw);
        }
        withdrawn.extend(nlri(prefix));
    }
    if !withdrawn.is_empty() {
        flush(&mut withdrawn, &mut withdraw);
    }
    Updates { announce, withdraw }
}

/// A listening socket on the peer's side of one receiver's tunnel.
#[derive(Debug)]
pub struct Feeder {
    listener: TcpListener,
    asn: u32,
    id: Ipv4Addr,
}

impl Feeder {
    /// Listens on `address`, port 179, inside namespace `namespace`.
    pub fn listen(namespace: &str, address: Ipv4Addr, asn: u32) -> anyhow::Result<Self> {
        let listener = crate::kernel::in_namespace(namespace, move || {
            TcpListener::bind(SocketAddr::from((address, 179)))
                .with_context(|| format!("listening on {address}:179"))
        })?;
        listener.set_nonblocking(true)?;
        Ok(Feeder {
            listener,
            asn,
            id: address,
        })
    }

    /// Takes the receiver's connection and brings the session up (OPEN
    /// both ways, then the receiver's KEEPALIVE). A connection that fails
    /// on the way (a receiver of an earlier run) is dropped and the next
    /// one taken.
    pub fn accept(&self, deadline: Duration) -> anyhow::Result<Session> {
        let started = Instant::now();
        let mut last_error = None;
        loop {
            crate::check_interrupted()?;
            match self.listener.accept() {
                Ok((stream, _)) => match self.open(stream) {
                    Ok(session) => return Ok(session),
                    Err(error) => last_error = Some(error),
                },
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error).context("accepting the receiver's session"),
            }
            if started.elapsed() > deadline {
                let why = last_error.map_or_else(
                    || "no connection came".to_owned(),
                    |error| format!("{error:#}"),
                );
                bail!("no BGP session with the receiver within {deadline:?}: {why}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn open(&self, mut stream: TcpStream) -> anyhow::Result<Session> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let two_octet = u16::try_from(self.asn).unwrap_or(23456); // AS_TRANS
        let mut open = vec![4];
        open.extend_from_slice(&two_octet.to_be_bytes());
        open.extend_from_slice(&HOLD_SECONDS.to_be_bytes());
        open.extend_from_slice(&self.id.octets());
        // Capabilities: multiprotocol IPv4 unicast, 4-octet AS numbers.
        let mut capabilities = vec![1, 4, 0, 1, 0, 1, 65, 4];
        capabilities.extend_from_slice(&self.asn.to_be_bytes());
        open.push(2 + capabilities.len() as u8);
        open.extend_from_slice(&[2, capabilities.len() as u8]);
        open.extend_from_slice(&capabilities);
        stream.write_all(&message(OPEN, &open))?;
        let (kind, body) = read_message(&mut stream)?;
        match kind {
            OPEN if offers_four_octet_as(&body) => {}
            OPEN => bail!("the receiver's OPEN offers no 4-octet AS numbers"),
            NOTIFICATION => bail!("the receiver sent a NOTIFICATION {body:?}"),
            other => bail!("the receiver sent message type {other} before its OPEN"),
        }
        stream.write_all(&message(KEEPALIVE, &[]))?;
        loop {
            match read_message(&mut stream)? {
                (KEEPALIVE, _) => break,
                (NOTIFICATION, body) => bail!("the receiver sent a NOTIFICATION {body:?}"),
                _ => {}
            }
        }
        stream.set_read_timeout(None)?;
        Session::start(stream)
    }
}

fn read_message(stream: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; HEADER];
    stream
        .read_exact(&mut header)
        .context("reading a BGP header")?;
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    anyhow::ensure!(
        (HEADER..=MAX_MESSAGE).contains(&len),
        "a BGP message of {len} bytes"
    );
    let mut body = vec![0; len - HEADER];
    stream
        .read_exact(&mut body)
        .context("reading a BGP message")?;
    Ok((header[18], body))
}

/// Whether an OPEN's optional parameters carry capability 65.
fn offers_four_octet_as(open: &[u8]) -> bool {
    let Some(params) = open.get(10..) else {
        return false;
    };
    let mut at = 0;
    while at + 2 <= params.len() {
        let (kind, len) = (params[at], usize::from(params[at + 1]));
        let value = params.get(at + 2..at + 2 + len).unwrap_or(&[]);
        if kind == 2 {
            let mut inner = 0;
            while inner + 2 <= value.len() {
                if value[inner] == 65 {
                    return true;
                }
                inner += 2 + usize::from(value[inner + 1]);
            }
        }
        at += 2 + len;
    }
    false
}

/// An established session: a thread reads (and drops) what the receiver
/// sends, another sends keepalives; [`Session::send`] writes UPDATEs.
#[derive(Debug)]
pub struct Session {
    stream: Arc<Mutex<TcpStream>>,
    stop: Arc<AtomicBool>,
    /// The receiver's NOTIFICATION or the end of its stream, if either came.
    ended: Arc<Mutex<Option<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Session {
    fn start(stream: TcpStream) -> anyhow::Result<Self> {
        let mut reader = stream.try_clone()?;
        let stream = Arc::new(Mutex::new(stream));
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(Mutex::new(None));
        let said = ended.clone();
        let reading = std::thread::spawn(move || {
            let end = loop {
                match read_message(&mut reader) {
                    Ok((NOTIFICATION, body)) => break format!("NOTIFICATION {body:?}"),
                    Ok(_) => {}
                    Err(error) => break format!("{error:#}"),
                }
            };
            *said.lock().unwrap_or_else(PoisonError::into_inner) = Some(end);
        });
        let (writer, stopping) = (stream.clone(), stop.clone());
        let keeping = std::thread::spawn(move || {
            let every = Duration::from_secs(u64::from(HOLD_SECONDS) / 3);
            let mut last = Instant::now();
            while !stopping.load(Ordering::SeqCst) {
                // Short steps, so that the end of the session is not held up.
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= every {
                    let mut stream = writer.lock().unwrap_or_else(PoisonError::into_inner);
                    if stream.write_all(&message(KEEPALIVE, &[])).is_err() {
                        return;
                    }
                    last = Instant::now();
                }
            }
        });
        Ok(Session {
            stream,
            stop,
            ended,
            threads: vec![reading, keeping],
        })
    }

    /// Writes the stream's messages, as fast as the receiver takes them.
    pub fn send(&self, messages: &Stream) -> anyhow::Result<()> {
        for chunk in &messages.chunks {
            crate::check_interrupted()?;
            let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
            stream.write_all(chunk).with_context(|| {
                format!(
                    "sending UPDATEs (the receiver: {})",
                    self.ended().unwrap_or_else(|| "no word".into())
                )
            })?;
        }
        Ok(())
    }

    /// How the receiver ended the session, if it did.
    pub fn ended(&self) -> Option<String> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        {
            let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
            // Cease, administrative shutdown.
            let _ = stream.write_all(&message(NOTIFICATION, &[6, 2]));
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::table::Kind;

    /// Every prefix is announced once and withdrawn once, in messages
    /// no longer than BGP allows, each announcement carrying prefixes of
    /// one attribute set.
    #[test]
    fn updates_carry_every_prefix_once_within_the_size_limit() {
        for kind in [Kind::Real, Kind::Uniform] {
            updates_carry_every_prefix_once(kind);
        }
    }

    fn updates_carry_every_prefix_once(kind: Kind) {
        let table = Table::generate(kind, 1, 20_000);
        let prefixes = table.prefixes.clone();
        let set_of: HashMap<Prefix, u32> =
            prefixes.iter().copied().zip(table.set_of.clone()).collect();
        let updates = encode(&table, 65002, "10.255.0.1".parse().unwrap());
        let walk = |stream: &Stream, withdrawn: bool| {
            let mut seen = Vec::new();
            for chunk in &stream.chunks {
                let mut at = 0;
                while at < chunk.len() {
                    let len = usize::from(u16::from_be_bytes([chunk[at + 16], chunk[at + 17]]));
                    assert!(len <= MAX_MESSAGE);
                    assert_eq!(chunk[at + 18], UPDATE);
                    let body = &chunk[at + HEADER..at + len];
                    let withdrawn_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let attributes_at = 2 + withdrawn_len;
                    let attributes_len = usize::from(u16::from_be_bytes([
                        body[attributes_at],
                        body[attributes_at + 1],
                    ]));
                    let routes = if withdrawn {
                        assert_eq!(attributes_len, 0);
                        &body[2..attributes_at]
                    } else {
                        assert_eq!(withdrawn_len, 0);
                        &body[attributes_at + 2 + attributes_len..]
                    };
                    let first = seen.len();
                    let mut i = 0;
                    while i < routes.len() {
                        let len = routes[i];
                        let octets = usize::from(len).div_ceil(8);
                        let mut address = [0u8; 4];
                        address[..octets].copy_from_slice(&routes[i + 1..i + 1 + octets]);
                        seen.push(Prefix {
                            address: u32::from_be_bytes(address),
                            len,
                        });
                        i += 1 + octets;
                    }
                    if !withdrawn {
                        let sets: HashSet<u32> = seen[first..].iter().map(|p| set_of[p]).collect();
                        assert_eq!(sets.len(), 1, "{kind:?}: one set per UPDATE");
                    }
                    at += len;
                }
            }
            seen.sort_by_key(|p| (p.address, p.len));
            seen
        };
        let mut expected = prefixes.clone();
        expected.sort_by_key(|p| (p.address, p.len));
        assert_eq!(walk(&updates.announce, false), expected);
        assert_eq!(walk(&updates.withdraw, true), expected);
        match kind {
            Kind::Uniform => assert!(
                updates.announce.messages < 20_000 / 4,
                "many prefixes per UPDATE"
            ),
            Kind::Real => assert!(
                (table.sets.len()..table.sets.len() + 100).contains(&updates.announce.messages),
                "an UPDATE per set, a few more for sets too large for one: {} for {} sets",
                updates.announce.messages,
                table.sets.len()
            ),
        }
    }

    #[test]
    fn an_open_without_four_octet_as_is_told_apart() {
        // Version, AS, hold, id, then capabilities: MP only; then MP and AS4.
        let mut open = vec![4, 0xfd, 0xea, 0, 90, 10, 0, 0, 1];
        assert!(!offers_four_octet_as(&[open.clone(), vec![0]].concat()));
        open.extend_from_slice(&[8, 2, 6, 1, 4, 0, 1, 0, 1]);
        assert!(!offers_four_octet_as(&open));
        let with = [
            &open[..9],
            &[16, 2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4, 0, 0, 0xfd, 0xea],
        ]
        .concat();
        assert!(offers_four_octet_as(&with));
    }
}
