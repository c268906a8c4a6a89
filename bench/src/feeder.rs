//! The harness's own BGP peer for the bgp scenario (`--feeder replay`):
//! it listens on the peer's end of a receiver's tunnel, takes the session
//! the receiver opens, and sends the prefix set as UPDATEs encoded before
//! the session came up, as fast as the receiver reads them; then the
//! withdrawals the same way, and at the end a Cease that takes the
//! session down ([`Session::cease`]). The figures then measure the receivers
//! alone: gobgpd reports a session with a large RIB established late, and
//! takes over a minute to withdraw a million routes.
//!
//! The table is the one the MRT file gives gobgpd ([`Table`]): the same
//! prefixes with the same attributes, the peer's AS in front of each AS
//! path and the peer's tunnel address as next hop (its IPv6 one for
//! IPv6 routes, in MP_REACH_NLRI); each UPDATE carries prefixes of one
//! attribute set and family, as many as fit.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::prefixes::IpPrefix;
use crate::table::{
    EXTENDED_LENGTH, IPV6_UNICAST, MP_UNREACH_NLRI, NextHop, OPTIONAL, PathAttributes, Table,
};

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
    /// Each message, whole, in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(|chunk| {
            let mut rest = chunk.as_slice();
            std::iter::from_fn(move || {
                let length = usize::from(u16::from_be_bytes([*rest.get(16)?, *rest.get(17)?]));
                let (message, after) = rest.split_at_checked(length)?;
                rest = after;
                Some(message)
            })
        })
    }

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

/// End-of-RIB for IPv4 unicast (an empty UPDATE), and for IPv6 unicast
/// too with `ipv6` (an empty MP_UNREACH_NLRI), RFC 4724 2.
pub fn end_of_rib(ipv6: bool) -> Stream {
    let mut stream = Stream::default();
    stream.push(&message(UPDATE, &withdrawal(false, &[])));
    if ipv6 {
        stream.push(&message(UPDATE, &withdrawal(true, &[])));
    }
    stream
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

/// The next hops the peer gives: its addresses on the receiver's tunnel.
#[derive(Debug, Clone, Copy)]
pub struct NextHops {
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

/// The body of an UPDATE announcing `nlri` with attribute set `set`:
/// IPv4 NLRI after the attributes, IPv6 inside MP_REACH_NLRI.
fn announcement(
    set: &PathAttributes,
    peer_as: u32,
    next_hops: NextHops,
    ipv6: bool,
    nlri: &[u8],
) -> Vec<u8> {
    let attributes = if ipv6 {
        set.encode(Some(peer_as), NextHop::V6(next_hops.ipv6, nlri))
    } else {
        set.encode(Some(peer_as), NextHop::V4(next_hops.ipv4))
    };
    let mut body = Vec::with_capacity(MAX_MESSAGE);
    body.extend_from_slice(&0u16.to_be_bytes()); // no withdrawn routes
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(&attributes);
    if !ipv6 {
        body.extend_from_slice(nlri);
    }
    body
}

/// The body of an UPDATE withdrawing `nlri`: IPv4 in the withdrawn
/// routes, IPv6 in MP_UNREACH_NLRI.
fn withdrawal(ipv6: bool, nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(MAX_MESSAGE);
    if ipv6 {
        let len = IPV6_UNICAST.len() + nlri.len();
        body.extend_from_slice(&0u16.to_be_bytes()); // no withdrawn routes
        body.extend_from_slice(&((4 + len) as u16).to_be_bytes());
        body.extend_from_slice(&[OPTIONAL | EXTENDED_LENGTH, MP_UNREACH_NLRI]);
        body.extend_from_slice(&(len as u16).to_be_bytes());
        body.extend_from_slice(&IPV6_UNICAST);
        body.extend_from_slice(nlri);
    } else {
        body.extend_from_slice(&(nlri.len() as u16).to_be_bytes());
        body.extend_from_slice(nlri);
        body.extend_from_slice(&0u16.to_be_bytes()); // no attributes
    }
    body
}

/// The longest NLRI of a prefix of the family: its length, its address.
fn longest_nlri(ipv6: bool) -> usize {
    if ipv6 { 17 } else { 5 }
}

/// The UPDATEs for `table` from AS `peer_as` with `next_hops`: each
/// announcement carries prefixes of one attribute set and family, as
/// many as fit; withdrawals as many prefixes of a family as fit.
pub fn encode(table: &Table, peer_as: u32, next_hops: NextHops) -> Updates {
    let mut announce = Stream::default();
    let mut nlri = Vec::with_capacity(MAX_MESSAGE);
    for (set, group) in table.groups() {
        let set = &table.sets[set as usize];
        let ipv6 = matches!(table.prefixes[group[0] as usize], IpPrefix::V6(_));
        // What every prefix is added to; an MP_REACH_NLRI past 255
        // octets takes one more for its length.
        let empty = announcement(set, peer_as, next_hops, ipv6, &[]).len() + 1;
        nlri.clear();
        for &index in &group {
            if HEADER + empty + nlri.len() + longest_nlri(ipv6) > MAX_MESSAGE {
                announce.push(&message(
                    UPDATE,
                    &announcement(set, peer_as, next_hops, ipv6, &nlri),
                ));
                nlri.clear();
            }
            nlri.extend(table.prefixes[index as usize].nlri());
        }
        if !nlri.is_empty() {
            announce.push(&message(
                UPDATE,
                &announcement(set, peer_as, next_hops, ipv6, &nlri),
            ));
        }
    }
    let mut withdraw = Stream::default();
    // IPv4, IPv6: the prefixes of each waiting for a message.
    let mut withdrawn = [
        Vec::with_capacity(MAX_MESSAGE),
        Vec::with_capacity(MAX_MESSAGE),
    ];
    let empty = [withdrawal(false, &[]).len(), withdrawal(true, &[]).len()];
    for prefix in &table.prefixes {
        let ipv6 = matches!(prefix, IpPrefix::V6(_));
        let family = usize::from(ipv6);
        if HEADER + empty[family] + withdrawn[family].len() + longest_nlri(ipv6) > MAX_MESSAGE {
            withdraw.push(&message(UPDATE, &withdrawal(ipv6, &withdrawn[family])));
            withdrawn[family].clear();
        }
        withdrawn[family].extend(prefix.nlri());
    }
    for (family, nlri) in withdrawn.iter().enumerate() {
        if !nlri.is_empty() {
            withdraw.push(&message(UPDATE, &withdrawal(family == 1, nlri)));
        }
    }
    Updates { announce, withdraw }
}

/// A listening socket on the peer's side of one receiver's tunnel.
#[derive(Debug)]
pub struct Feeder {
    listener: TcpListener,
    asn: u32,
    id: Ipv4Addr,
    /// Whether the OPEN offers IPv6 unicast too.
    ipv6: bool,
}

impl Feeder {
    /// Listens on `address`, port 179, inside namespace `namespace`; its
    /// sessions carry IPv4 unicast, and IPv6 unicast with `ipv6`.
    pub fn listen(
        namespace: &str,
        address: Ipv4Addr,
        asn: u32,
        ipv6: bool,
    ) -> anyhow::Result<Self> {
        let listener = crate::kernel::in_namespace(namespace, move || {
            TcpListener::bind(SocketAddr::from((address, 179)))
                .with_context(|| format!("listening on {address}:179"))
        })?;
        listener.set_nonblocking(true)?;
        Ok(Feeder {
            listener,
            asn,
            id: address,
            ipv6,
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
        // Capabilities: multiprotocol IPv4 (and IPv6) unicast, 4-octet AS
        // numbers.
        let mut capabilities = vec![1, 4, 0, 1, 0, 1];
        if self.ipv6 {
            capabilities.extend_from_slice(&[1, 4, 0, 2, 0, 1]);
        }
        capabilities.extend_from_slice(&[65, 4]);
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

    /// Ends the session as an operator would: a NOTIFICATION Cease /
    /// Administrative Shutdown, then the TCP connection closed. Returns
    /// when the NOTIFICATION was handed to the socket, where a receiver's
    /// "session down" is timed from.
    pub fn cease(mut self) -> Instant {
        self.close()
    }

    fn close(&mut self) -> Instant {
        self.stop.store(true, Ordering::SeqCst);
        let sent = {
            let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
            let sent = Instant::now();
            // Cease (6), Administrative Shutdown (2), RFC 4486.
            let _ = stream.write_all(&message(NOTIFICATION, &[6, 2]));
            let _ = stream.shutdown(std::net::Shutdown::Both);
            sent
        };
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        sent
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Not again after [`Session::cease`].
        if !self.threads.is_empty() {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use std::net::IpAddr;

    use super::*;
    use crate::prefixes::{Prefix, Prefix6};
    use crate::table::{Kind, MP_REACH_NLRI, NEXT_HOP};

    /// Prefixes of `len` NLRI-encoded in `bytes`, of a family whose
    /// addresses have `octets` octets.
    fn prefixes_in(mut bytes: &[u8], ipv6: bool) -> Vec<IpPrefix> {
        let mut prefixes = Vec::new();
        while let [len, rest @ ..] = bytes {
            let significant = usize::from(*len).div_ceil(8);
            let mut address = [0u8; 16];
            address[..significant].copy_from_slice(&rest[..significant]);
            prefixes.push(if ipv6 {
                IpPrefix::V6(Prefix6 {
                    address: u128::from_be_bytes(address),
                    len: *len,
                })
            } else {
                IpPrefix::V4(Prefix {
                    address: u32::from_be_bytes(address[..4].try_into().unwrap()),
                    len: *len,
                })
            });
            bytes = &rest[significant..];
        }
        prefixes
    }

    /// What one UPDATE carries: announced prefixes (with the next hop
    /// they go with), withdrawn prefixes.
    fn parse(body: &[u8]) -> (Vec<IpPrefix>, Option<IpAddr>, Vec<IpPrefix>) {
        let withdrawn_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let mut withdrawn = prefixes_in(&body[2..2 + withdrawn_len], false);
        let at = 2 + withdrawn_len;
        let attributes_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
        let mut attributes = &body[at + 2..at + 2 + attributes_len];
        let mut announced = prefixes_in(&body[at + 2 + attributes_len..], false);
        let mut next_hop = None;
        while let [flags, code, rest @ ..] = attributes {
            let (len, rest) = if flags & EXTENDED_LENGTH != 0 {
                (
                    usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                    &rest[2..],
                )
            } else {
                (usize::from(rest[0]), &rest[1..])
            };
            let value = &rest[..len];
            match *code {
                NEXT_HOP => {
                    next_hop = Some(IpAddr::from(<[u8; 4]>::try_from(value).unwrap()));
                }
                MP_REACH_NLRI => {
                    assert_eq!(&value[..4], &[0, 2, 1, 16]);
                    next_hop = Some(IpAddr::from(<[u8; 16]>::try_from(&value[4..20]).unwrap()));
                    announced.extend(prefixes_in(&value[21..], true));
                }
                MP_UNREACH_NLRI => {
                    assert_eq!(&value[..3], &IPV6_UNICAST);
                    withdrawn.extend(prefixes_in(&value[3..], true));
                }
                _ => {}
            }
            attributes = &rest[len..];
        }
        (announced, next_hop, withdrawn)
    }

    /// Every prefix is announced once and withdrawn once, in messages
    /// no longer than BGP allows, each announcement carrying prefixes of
    /// one attribute set and family, with the family's next hop.
    #[test]
    fn updates_carry_every_prefix_once_within_the_size_limit() {
        for (kind, ipv6) in [(Kind::Real, 0), (Kind::Uniform, 0), (Kind::Real, 4_000)] {
            updates_carry_every_prefix_once(kind, ipv6);
        }
    }

    fn updates_carry_every_prefix_once(kind: Kind, ipv6: usize) {
        let table = Table::generate(kind, 1, 20_000, ipv6);
        let set_of: HashMap<IpPrefix, u32> = table
            .prefixes
            .iter()
            .copied()
            .zip(table.set_of.clone())
            .collect();
        let next_hops = NextHops {
            ipv4: "10.255.0.1".parse().unwrap(),
            ipv6: "fd77::1".parse().unwrap(),
        };
        let updates = encode(&table, 65002, next_hops);
        let messages = |stream: &Stream| -> Vec<Vec<u8>> {
            let mut all = Vec::new();
            for chunk in &stream.chunks {
                let mut at = 0;
                while at < chunk.len() {
                    let len = usize::from(u16::from_be_bytes([chunk[at + 16], chunk[at + 17]]));
                    assert!(len <= MAX_MESSAGE);
                    assert_eq!(chunk[at + 18], UPDATE);
                    all.push(chunk[at + HEADER..at + len].to_vec());
                    at += len;
                }
            }
            all
        };
        let mut announced = Vec::new();
        for body in messages(&updates.announce) {
            let (prefixes, next_hop, withdrawn) = parse(&body);
            assert!(withdrawn.is_empty());
            let sets: HashSet<u32> = prefixes.iter().map(|p| set_of[p]).collect();
            assert_eq!(sets.len(), 1, "{kind:?}: one set per UPDATE");
            let families: HashSet<bool> = prefixes
                .iter()
                .map(|p| matches!(p, IpPrefix::V6(_)))
                .collect();
            let expected = match families.iter().collect::<Vec<_>>()[..] {
                [false] => IpAddr::V4(next_hops.ipv4),
                [true] => IpAddr::V6(next_hops.ipv6),
                _ => panic!("one family per UPDATE"),
            };
            assert_eq!(next_hop, Some(expected));
            announced.extend(prefixes);
        }
        let mut withdrawn = Vec::new();
        for body in messages(&updates.withdraw) {
            let (prefixes, _, gone) = parse(&body);
            assert!(prefixes.is_empty());
            withdrawn.extend(gone);
        }
        let mut expected = table.prefixes.clone();
        expected.sort();
        announced.sort();
        withdrawn.sort();
        assert_eq!(announced, expected);
        assert_eq!(withdrawn, expected);
        let groups = table.groups().len();
        match kind {
            Kind::Uniform => assert!(
                updates.announce.messages < 20_000 / 4,
                "many prefixes per UPDATE"
            ),
            Kind::Real => assert!(
                (groups..groups + 100).contains(&updates.announce.messages),
                "an UPDATE per set and family, a few more for sets too large for one: {} for {groups}",
                updates.announce.messages,
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
