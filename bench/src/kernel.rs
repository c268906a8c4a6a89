//! The harness's own view of a namespace's kernel, over raw rtnetlink: how
//! many routes of a protocol the main tables (IPv4 and IPv6) hold (a
//! dump, counted, or followed from route notifications: [`Watch`]), and
//! the packed writer that is the machine's floor for installing routes.
//!
//! Each call runs on a short-lived thread that enters the namespace
//! (`setns` changes only the calling thread), so the harness itself stays
//! in the root namespace. Messages are built by hand here: the writer must
//! be the thinnest thing that can put a route in the kernel, with nothing
//! of wgd's own code in it.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use crate::prefixes::Prefix;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
/// The multicast groups of IPv4 and IPv6 route changes.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RT_TABLE_MAIN: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTNH_F_ONLINK: u32 = 4;

/// Bytes per `send` for the packed writer: the kernel takes a datagram
/// this size at once, and more per call gains little.
const SEND_BYTES: usize = 64 << 10;
const RECEIVE_BYTES: usize = 256 << 10;

/// Runs `work` on a thread inside namespace `namespace` and returns its
/// result.
pub fn in_namespace<T: Send + 'static>(
    namespace: &str,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let namespace = namespace.to_owned();
    let handle = std::thread::spawn(move || -> anyhow::Result<T> {
        enter(&namespace)?;
        work()
    });
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the netlink thread panicked"))?
}

/// Moves the calling thread into network namespace `namespace`.
fn enter(namespace: &str) -> anyhow::Result<()> {
    let path = format!("/var/run/netns/{namespace}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {path}"))
}

/// Starts a thread inside namespace `namespace` that runs `open` there,
/// then `work` with what it opened; returns once `open` has succeeded,
/// or with its error.
fn spawn_in<S: 'static>(
    namespace: &str,
    what: &str,
    open: impl FnOnce() -> anyhow::Result<S> + Send + 'static,
    work: impl FnOnce(S) + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let namespace = namespace.to_owned();
    let (ready, started) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || match enter(&namespace).and_then(|()| open()) {
        Ok(opened) => {
            let _ = ready.send(Ok(()));
            work(opened);
        }
        Err(error) => {
            let _ = ready.send(Err(error));
        }
    });
    started
        .recv()
        .with_context(|| format!("the {what} thread did not start"))??;
    Ok(thread)
}

/// A NETLINK_ROUTE socket opened in the calling thread's namespace.
fn open_socket() -> anyhow::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    socket.bind_auto().context("netlink bind")?;
    let _ = socket.set_netlink_get_strict_chk(true);
    let _ = socket.set_cap_ack(true);
    let _ = socket.set_rx_buf_sz(8 << 20);
    Ok(socket)
}

fn begin(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    start
}

fn end(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

#[allow(clippy::too_many_arguments)]
fn route_header(
    buf: &mut Vec<u8>,
    family: u8,
    dst_len: u8,
    protocol: u8,
    scope: u8,
    kind: u8,
    flags: u32,
) {
    buf.extend_from_slice(&[family, dst_len, 0, 0, RT_TABLE_MAIN, protocol, scope, kind]);
    buf.extend_from_slice(&flags.to_ne_bytes());
}

fn attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len() as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// One netlink message out of a datagram: (type, flags, seq, payload).
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        if len < 16 || len > rest.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let flags = u16::from_ne_bytes(rest[6..8].try_into().ok()?);
        let seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        let payload = &rest[16..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        Some((kind, flags, seq, payload))
    })
}

fn receive(socket: &Socket, buffer: &mut Vec<u8>, flags: libc::c_int) -> io::Result<usize> {
    loop {
        buffer.clear();
        match socket.recv(buffer, flags) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The value of attribute `wanted` of a route message, if it has one.
fn route_attribute(payload: &[u8], wanted: u16) -> Option<&[u8]> {
    let mut rest = payload.get(12..)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == wanted {
            return Some(&rest[4..len]);
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

/// The outgoing interface of a route message (`RTA_OIF`), if it has one.
fn route_oif(payload: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(
        route_attribute(payload, RTA_OIF)?
            .get(..4)?
            .try_into()
            .ok()?,
    ))
}

/// Routes of `protocol` in the main tables of the calling thread's
/// namespace (through interface `oif` only, if given).
fn count_here(socket: &Socket, protocol: u8, oif: Option<u32>) -> anyhow::Result<usize> {
    let mut count = 0;
    dump(socket, protocol, |payload| {
        if oif.is_none_or(|oif| route_oif(payload) == Some(oif)) {
            count += 1;
        }
    })?;
    Ok(count)
}

/// Dumps the main IPv4 and IPv6 tables and gives `visit` each route
/// message of `protocol`.
fn dump(socket: &Socket, protocol: u8, mut visit: impl FnMut(&[u8])) -> anyhow::Result<()> {
    for family in [AF_INET, AF_INET6] {
        dump_family(socket, family, protocol, &mut visit)?;
    }
    Ok(())
}

/// Dumps the main table of `family`; a dump the kernel flags as
/// interrupted is read again (and `visit` sees its routes again).
fn dump_family(
    socket: &Socket,
    family: u8,
    protocol: u8,
    visit: &mut impl FnMut(&[u8]),
) -> anyhow::Result<()> {
    'again: for _ in 0..5 {
        let mut request = Vec::with_capacity(64);
        let start = begin(&mut request, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1);
        route_header(&mut request, family, 0, protocol, RT_SCOPE_UNIVERSE, 0, 0);
        attribute(
            &mut request,
            RTA_TABLE,
            &u32::from(RT_TABLE_MAIN).to_ne_bytes(),
        );
        end(&mut request, start);
        socket.send(&request, 0).context("netlink send")?;
        let mut buffer = Vec::with_capacity(RECEIVE_BYTES);
        let mut interrupted = false;
        loop {
            let len = receive(socket, &mut buffer, 0).context("netlink receive")?;
            for (kind, flags, _, payload) in messages(&buffer[..len]) {
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_DONE if interrupted => continue 'again,
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
                        if errno == 0 {
                            return Ok(());
                        }
                        bail!("route dump: {}", io::Error::from_raw_os_error(-errno));
                    }
                    // Filtered by the kernel already (strict checking);
                    // checked again for kernels that do not.
                    RTM_NEWROUTE
                        if payload.len() >= 12
                            && payload[0] == family
                            && payload[4] == RT_TABLE_MAIN
                            && payload[5] == protocol =>
                    {
                        visit(payload);
                    }
                    _ => {}
                }
            }
        }
    }
    bail!("the route table kept changing while it was read")
}

/// A protocol's routes in a namespace's main tables (IPv4 and IPv6),
/// followed from the kernel's route notifications on a thread of its own,
/// so that waiting for a count costs no dump per look: a dump of a
/// million routes takes a core a third of a second, which polling would
/// take from the daemons being measured. Notifications lost to a full
/// socket buffer (`ENOBUFS`) cost one dump to catch up.
#[derive(Debug)]
pub struct Watch {
    seen: Arc<(Mutex<Seen>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Seen {
    count: usize,
    /// The lowest count published since [`Watch::take_lowest`].
    lowest: usize,
    /// When the count last changed (as the watching thread read it).
    changed: Instant,
    failed: Option<String>,
}

impl Watch {
    pub fn new(namespace: &str, protocol: u8) -> anyhow::Result<Self> {
        let seen = Arc::new((
            Mutex::new(Seen {
                count: 0,
                lowest: usize::MAX,
                changed: Instant::now(),
                failed: None,
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (seen.clone(), stop.clone());
        let thread = spawn_in(
            namespace,
            "watching",
            || Ok((subscribe()?, open_socket()?)),
            move |(notices, dumps)| {
                if let Err(error) = follow(&notices, &dumps, protocol, &shared, &stopping) {
                    let (seen, wake) = &*shared;
                    seen.lock().unwrap_or_else(PoisonError::into_inner).failed =
                        Some(format!("{error:#}"));
                    wake.notify_all();
                }
            },
        )?;
        Ok(Watch {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Waits until `condition` holds for the count (it is asked again at
    /// each change, and every 200 ms), at most `deadline` after `since`;
    /// returns the time from `since` to the change that made it hold.
    pub fn until(
        &self,
        since: Instant,
        deadline: Duration,
        what: &str,
        mut condition: impl FnMut(usize) -> anyhow::Result<bool>,
    ) -> anyhow::Result<Duration> {
        let (lock, wake) = &*self.seen;
        let mut seen = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            crate::check_interrupted()?;
            if let Some(failed) = &seen.failed {
                bail!("watching the routes: {failed}");
            }
            if condition(seen.count)? {
                return Ok(seen.changed.saturating_duration_since(since));
            }
            if since.elapsed() > deadline {
                bail!(
                    "timed out after {deadline:?} waiting for {what} ({} routes)",
                    seen.count
                );
            }
            seen = wake
                .wait_timeout(seen, Duration::from_millis(200))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Watch {
    /// The lowest count seen since the last call (every notification read
    /// counts, not samples), and the count now; starts again from that.
    pub fn take_lowest(&self) -> anyhow::Result<(usize, usize)> {
        let mut seen = self.seen.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(failed) = &seen.failed {
            bail!("watching the routes: {failed}");
        }
        let lowest = seen.lowest.min(seen.count);
        seen.lowest = seen.count;
        Ok((lowest, seen.count))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A socket on the IPv4 and IPv6 route groups, with a buffer for a burst of a
/// million changes and a receive timeout (so that its thread can stop).
fn subscribe() -> anyhow::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    socket.bind_auto().context("netlink bind")?;
    socket
        .add_membership(RTNLGRP_IPV4_ROUTE)
        .context("joining the IPv4 route group")?;
    socket
        .add_membership(RTNLGRP_IPV6_ROUTE)
        .context("joining the IPv6 route group")?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &(1 << 30))
        .context("SO_RCVBUFFORCE")?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .context("SO_RCVTIMEO")?;
    Ok(socket)
}

/// Reads route notifications into the set of `protocol`'s prefixes until
/// told to stop; dumps the table at the start and after lost messages.
fn follow(
    notices: &Socket,
    dumps: &Socket,
    protocol: u8,
    shared: &(Mutex<Seen>, Condvar),
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut prefixes = dump_prefixes(dumps, protocol)?;
    let (lock, wake) = shared;
    let publish = |count: usize| {
        let mut seen = lock.lock().unwrap_or_else(PoisonError::into_inner);
        seen.lowest = seen.lowest.min(count);
        if seen.count != count {
            seen.count = count;
            seen.changed = Instant::now();
            wake.notify_all();
        }
    };
    publish(prefixes.len());
    let mut buffer = Vec::with_capacity(RECEIVE_BYTES);
    while !stop.load(Ordering::SeqCst) {
        match receive(notices, &mut buffer, 0) {
            Ok(len) => {
                for (kind, _, _, payload) in messages(&buffer[..len]) {
                    let Some(prefix) = route_prefix(payload, protocol) else {
                        continue;
                    };
                    match kind {
                        RTM_NEWROUTE => prefixes.insert(prefix),
                        RTM_DELROUTE => prefixes.remove(&prefix),
                        _ => false,
                    };
                }
                publish(prefixes.len());
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                prefixes = dump_prefixes(dumps, protocol)?;
                publish(prefixes.len());
            }
            Err(error) => return Err(error).context("reading route notifications"),
        }
    }
    Ok(())
}

/// A route's prefix: family, address (left-aligned), length.
type RoutePrefix = (u8, u128, u8);

/// The prefix of a route of `protocol` in a main table.
fn route_prefix(payload: &[u8], protocol: u8) -> Option<RoutePrefix> {
    if payload.len() < 12
        || !matches!(payload[0], AF_INET | AF_INET6)
        || payload[4] != RT_TABLE_MAIN
        || payload[5] != protocol
    {
        return None;
    }
    // The default route has no destination attribute.
    let mut address = [0u8; 16];
    if let Some(value) = route_attribute(payload, RTA_DST) {
        let len = value.len().min(16);
        address[..len].copy_from_slice(&value[..len]);
    }
    Some((payload[0], u128::from_be_bytes(address), payload[1]))
}

/// The prefixes of `protocol` in the main tables, by one dump.
fn dump_prefixes(socket: &Socket, protocol: u8) -> anyhow::Result<HashSet<RoutePrefix>> {
    let mut prefixes = HashSet::new();
    dump(socket, protocol, |payload| {
        if let Some(prefix) = route_prefix(payload, protocol) {
            prefixes.insert(prefix);
        }
    })?;
    Ok(prefixes)
}

/// (protocol, outgoing interface, where the answer goes).
type Request = (
    u8,
    Option<u32>,
    std::sync::mpsc::Sender<anyhow::Result<usize>>,
);

/// A counter of one protocol's routes in one namespace, on a thread that
/// lives inside it (so polling costs one dump, not a thread and a socket).
#[derive(Debug)]
pub struct Counter {
    requests: std::sync::mpsc::Sender<Request>,
}

impl Counter {
    pub fn new(namespace: &str) -> anyhow::Result<Self> {
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        spawn_in(namespace, "counting", open_socket, move |socket| {
            for (protocol, oif, reply) in incoming {
                let _ = reply.send(count_here(&socket, protocol, oif));
            }
        })?;
        Ok(Self { requests })
    }

    /// Routes of `protocol` in the main tables (IPv4 and IPv6), now.
    pub fn count(&self, protocol: u8) -> anyhow::Result<usize> {
        self.count_via(protocol, None)
    }

    /// Routes of `protocol` through interface `oif` (all, if `None`).
    pub fn count_via(&self, protocol: u8, oif: Option<u32>) -> anyhow::Result<usize> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .send((protocol, oif, reply))
            .map_err(|_| anyhow::anyhow!("the counting thread is gone"))?;
        answer
            .recv()
            .map_err(|_| anyhow::anyhow!("the counting thread is gone"))?
    }
}

/// What the packed writer does to each prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add,
    Delete,
}

/// Writes `prefixes` (via `gateway` dev `ifindex` onlink, `protocol`,
/// `metric`) the fastest simple way: as many requests per `send` as fit in
/// 64 KiB, none asking for an acknowledgement (the kernel answers only
/// refusals), and one acknowledged no-op at the end as a barrier. Returns
/// how many requests the kernel refused. Runs in the calling thread's
/// namespace: call it through [`in_namespace`].
pub fn write_packed(
    prefixes: &[Prefix],
    operation: Operation,
    gateway: Ipv4Addr,
    ifindex: u32,
    protocol: u8,
    metric: u32,
) -> anyhow::Result<usize> {
    let socket = open_socket()?;
    let mut buffer = Vec::with_capacity(SEND_BYTES + 256);
    let mut answers = Vec::with_capacity(RECEIVE_BYTES);
    let mut refused = 0;
    let mut seq = 1u32;
    let drain = |answers: &mut Vec<u8>, refused: &mut usize| -> anyhow::Result<()> {
        loop {
            match receive(&socket, answers, libc::MSG_DONTWAIT) {
                Ok(len) => {
                    *refused += messages(&answers[..len])
                        .filter(|(kind, ..)| *kind == NLMSG_ERROR)
                        .count();
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error).context("netlink receive"),
            }
        }
    };
    for chunk in prefixes.chunks(512) {
        buffer.clear();
        for prefix in chunk {
            let (kind, flags, scope) = match operation {
                Operation::Add => (
                    RTM_NEWROUTE,
                    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
                    RT_SCOPE_UNIVERSE,
                ),
                Operation::Delete => (RTM_DELROUTE, NLM_F_REQUEST, RT_SCOPE_NOWHERE),
            };
            let start = begin(&mut buffer, kind, flags, seq);
            seq = seq.wrapping_add(1);
            let route_flags = if operation == Operation::Add {
                RTNH_F_ONLINK
            } else {
                0
            };
            route_header(
                &mut buffer,
                AF_INET,
                prefix.len,
                protocol,
                scope,
                RTN_UNICAST,
                route_flags,
            );
            attribute(&mut buffer, RTA_DST, &prefix.address.to_be_bytes());
            attribute(&mut buffer, RTA_PRIORITY, &metric.to_ne_bytes());
            if operation == Operation::Add {
                attribute(&mut buffer, RTA_OIF, &ifindex.to_ne_bytes());
                attribute(&mut buffer, RTA_GATEWAY, &gateway.octets());
            }
            end(&mut buffer, start);
        }
        socket.send(&buffer, 0).context("netlink send")?;
        drain(&mut answers, &mut refused)?;
    }
    // The barrier: every request before it has been processed once it is
    // acknowledged.
    buffer.clear();
    let barrier = seq;
    let start = begin(&mut buffer, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, barrier);
    end(&mut buffer, start);
    socket.send(&buffer, 0).context("netlink send")?;
    loop {
        let len = receive(&socket, &mut answers, 0).context("netlink receive")?;
        let mut done = false;
        for (kind, _, message_seq, _) in messages(&answers[..len]) {
            if kind != NLMSG_ERROR {
                continue;
            }
            if message_seq == barrier {
                done = true;
            } else {
                refused += 1;
            }
        }
        if done {
            return Ok(refused);
        }
    }
}

/// The index of interface `name` in namespace `namespace`.
pub fn ifindex(namespace: &str, name: &str) -> anyhow::Result<u32> {
    let output = std::process::Command::new("ip")
        .args(["-n", namespace, "-o", "link", "show", "dev", name])
        .output()
        .context("running ip")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(':')
        .next()
        .and_then(|index| index.trim().parse().ok())
        .with_context(|| format!("no interface {name} in {namespace}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_walked_by_their_lengths() {
        let mut buf = Vec::new();
        let a = begin(&mut buf, NLMSG_NOOP, NLM_F_REQUEST, 7);
        attribute(&mut buf, RTA_DST, &[1, 2, 3]);
        end(&mut buf, a);
        let b = begin(&mut buf, NLMSG_DONE, 0, 8);
        end(&mut buf, b);
        let seen: Vec<_> = messages(&buf)
            .map(|(kind, _, seq, _)| (kind, seq))
            .collect();
        assert_eq!(seen, [(NLMSG_NOOP, 7), (NLMSG_DONE, 8)]);
    }
}
