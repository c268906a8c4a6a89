//! The kernel FIB programmer: writes the RIB's `FibOp`s into a kernel
//! routing table over raw rtnetlink, and reads back the routes there.
//!
//! Data flows one way per call, blocking, from the thread that owns the
//! [`KernelFib`] (the daemon gives it a thread of its own):
//!
//! - [`KernelFib::apply`]: `FibOp`s → route requests packed into one reused
//!   buffer (`wire`) → one `send` per window of requests, closed by an
//!   `NLMSG_NOOP` that asks for an acknowledgement → the kernel processes
//!   the whole datagram inside `send` and answers only the requests it
//!   refused, then the barrier → each refusal is matched to its op by
//!   sequence number; every op before the barrier that was not refused
//!   succeeded. One result per op comes back, in order.
//! - [`KernelFib::dump_ours`], [`KernelFib::count_ours`],
//!   [`KernelFib::underlay_route`] and [`KernelFib::underlay_routes`]: an
//!   `RTM_GETROUTE` dump per family (filtered by the kernel to the table,
//!   and to `RTPROT_WGD` for our own) → [`KernelRoute`] values.
//!
//! An IPv4 route through an IPv6 gateway (RFC 8950) is written with
//! `RTA_VIA` (`via inet6 fe80::2 dev X`) and read back the same way; a
//! route's preferred source (`src`) is `RTA_PREFSRC`, which the kernel
//! takes only for an address of the host ([`KernelFib::local_addresses`]).
//!
//! Every route wgd writes carries `RTPROT_WGD` and the one priority given at
//! [`KernelFib::open`]: that is how wgd finds its own routes again after a
//! restart, how a delete is kept from touching a route someone else added,
//! and why an `Add` over someone else's route fails instead of replacing it.

mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use crate::route::{FibNexthop, FibOp, RTPROT_WGD};
use wire::{AF_INET, AF_INET6, RouteHeader, RouteView};

/// The kernel's main routing table.
pub const MAIN_TABLE: u32 = wire::RT_TABLE_MAIN;
/// The table of the host's own addresses.
const LOCAL_TABLE: u32 = 255;
/// A route of the local table (`local 192.0.2.0/24 dev lo`).
const RTN_LOCAL: u8 = 2;
const RTN_BLACKHOLE: u8 = 6;
const RTN_UNREACHABLE: u8 = 7;

/// Receive buffer asked for; the kernel caps it at `net.core.rmem_max` (and
/// doubles it). It bounds how many requests go in one `send`: in the worst
/// case every one of them is refused, and all refusals must fit.
const RECEIVE_BUFFER_BYTES: libc::c_int = 4 << 20;
/// What one acknowledgement costs in the receive buffer: a small skb's
/// true size (measured 833 bytes on 6.18), with margin. Too small a guess
/// shows as `FibError::Unanswered` when a whole window is refused.
const ACK_COST_BYTES: usize = 1024;
/// Requests per `send` at most, whatever the receive buffer allows.
const MAX_WINDOW: usize = 4096;
/// Bytes per `send`: the kernel takes up to `wmem_default` (about 208 KiB)
/// in one datagram; more per call gains little.
const SEND_BYTES: usize = 64 << 10;
/// Dump parts are at most 32 KiB; 64 KiB is never truncated.
const RECEIVE_BYTES: usize = 64 << 10;
/// A dump that the kernel flags as interrupted by a concurrent change is
/// read again, this many times at most.
const DUMP_ATTEMPTS: usize = 5;

/// Why a route could not be written, or the table not read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FibError {
    /// The kernel refused a request: `errno` (positive) and, when the
    /// kernel said more (extended ack), its message.
    #[error("kernel refused: {}{}", errno_text(*.errno), detail_text(.detail))]
    Kernel { errno: i32, detail: Option<String> },
    /// The netlink socket itself failed.
    #[error("netlink {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    /// The kernel's answers overflowed the receive buffer, so whether this
    /// request succeeded is unknown: read the table back to find out.
    #[error("no answer from the kernel (its acknowledgements overflowed the receive buffer)")]
    Unanswered,
    /// A reply that did not parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
    /// A route to add or replace with no nexthop.
    #[error("a route needs at least one nexthop")]
    NoNexthop,
    /// More nexthops than fit in one netlink attribute.
    #[error("{0} nexthops do not fit in one netlink message")]
    TooManyNexthops(usize),
    /// Table 0 is not a table (the kernel reads it as "any" or "main").
    #[error("table 0 is not a routing table")]
    NoTable,
    /// Every dump of the table was interrupted by concurrent changes.
    #[error("the routing table kept changing while it was read ({DUMP_ATTEMPTS} attempts)")]
    DumpInterrupted,
}

impl FibError {
    /// The kernel's errno (positive, e.g. `libc::EEXIST`) if the kernel
    /// refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FibError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn io(action: &'static str) -> impl FnOnce(io::Error) -> FibError {
        move |source| FibError::Io {
            action,
            source: Arc::new(source),
        }
    }
}

/// "File exists" for `EEXIST`: the system's text without "(os error 17)".
fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// ": Nexthop device is not up", or nothing.
fn detail_text(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|detail| format!(": {detail}"))
        .unwrap_or_default()
}

impl From<wire::Malformed> for FibError {
    fn from(malformed: wire::Malformed) -> Self {
        FibError::Malformed(malformed.0)
    }
}

/// A route as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub prefix: IpNet,
    /// Empty for a route whose nexthop is not an interface or gateway (a
    /// nexthop object only, for instance).
    pub nexthops: Vec<KernelNexthop>,
    pub priority: u32,
    pub protocol: u8,
    /// `src`, the preferred source address, if the route has one.
    pub source: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelNexthop {
    /// 0 if the kernel gave none.
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
}

impl KernelRoute {
    fn from_view(view: &RouteView<'_>, prefix: IpNet) -> Self {
        KernelRoute {
            prefix,
            nexthops: view
                .nexthops()
                .map(|(ifindex, gateway)| KernelNexthop { ifindex, gateway })
                .collect(),
            priority: view.priority,
            protocol: view.protocol,
            source: view.source,
        }
    }
}

/// A NETLINK_ROUTE socket in one network namespace, writing wgd's routes to
/// one table with one priority.
pub struct KernelFib {
    socket: Socket,
    table: u32,
    priority: u32,
    next_seq: u32,
    /// Requests per `send`: all their refusals fit in the receive buffer.
    window: usize,
    send_buffer: Vec<u8>,
    receive_buffer: Vec<u8>,
    /// Per request of the current window: whether the kernel answered it.
    answered: Vec<bool>,
}

impl fmt::Debug for KernelFib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelFib")
            .field("table", &self.table)
            .field("priority", &self.priority)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A route of the host's as [`KernelFib::fold_host_routes`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoute {
    pub prefix: IpNet,
    pub table: u32,
    /// `RTPROT_*` (2: the kernel's own; [`RTPROT_WGD`]: the bridge's).
    pub protocol: u8,
    /// `RTN_*` (1: unicast).
    pub kind: u8,
    /// The output interface of a route with one nexthop; 0 for none (a
    /// multipath route's are in its nexthops).
    pub oif: u32,
}

impl KernelFib {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network
    /// namespace. Routes go in `table` (254 is main), all with kernel
    /// priority (metric) `priority` and protocol `RTPROT_WGD`. (The kernel
    /// stores IPv6 priority 0 as 1024.)
    pub fn open(table: u32, priority: u32) -> Result<Self, FibError> {
        if table == 0 {
            return Err(FibError::NoTable);
        }
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(FibError::io("open"))?;
        socket.bind_auto().map_err(FibError::io("bind"))?;
        // Best effort, each: without them (kernels before 4.3, 4.12, 4.20)
        // acks are larger, say less, and dumps are filtered here only.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_netlink_get_strict_chk(true);
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER_BYTES);
        let receive_buffer_bytes = socket
            .get_rx_buf_sz()
            .map_err(FibError::io("read the receive buffer size"))?;
        // One place is kept for the barrier's own acknowledgement.
        let window = (receive_buffer_bytes / ACK_COST_BYTES)
            .saturating_sub(1)
            .clamp(1, MAX_WINDOW);
        tracing::debug!(table, priority, window, "kernel FIB opened");
        Ok(KernelFib {
            socket,
            table,
            priority,
            next_seq: 1,
            window,
            send_buffer: Vec::with_capacity(SEND_BYTES + 4096),
            receive_buffer: Vec::with_capacity(RECEIVE_BYTES),
            answered: Vec::with_capacity(window),
        })
    }

    pub fn table(&self) -> u32 {
        self.table
    }

    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Applies `ops` in order and returns one result per op, in the same
    /// order. A refused op fails alone: the ops after it are still applied.
    pub fn apply(&mut self, ops: &[FibOp]) -> Vec<Result<(), FibError>> {
        let mut results = Vec::with_capacity(ops.len());
        results.resize(ops.len(), Ok(()));
        let mut done = 0;
        while done < ops.len() {
            done += self.apply_window(&ops[done..], &mut results[done..]);
        }
        let failed = results.iter().filter(|result| result.is_err()).count();
        tracing::debug!(ops = ops.len(), failed, "kernel FIB changes applied");
        results
    }

    /// Sends as many of `ops` as one window holds, reads the answers into
    /// `results`, and returns how many ops it took.
    fn apply_window(&mut self, ops: &[FibOp], results: &mut [Result<(), FibError>]) -> usize {
        let first_seq = self.next_seq;
        self.send_buffer.clear();
        let mut taken = 0;
        let mut sent = 0;
        for (offset, op) in ops.iter().enumerate() {
            if sent == self.window || self.send_buffer.len() >= SEND_BYTES {
                break;
            }
            let seq = first_seq.wrapping_add(offset as u32);
            match encode(&mut self.send_buffer, op, seq, self.table, self.priority) {
                Ok(()) => sent += 1,
                Err(error) => results[offset] = Err(error),
            }
            taken = offset + 1;
        }
        let barrier_seq = first_seq.wrapping_add(taken as u32);
        self.next_seq = barrier_seq.wrapping_add(1);
        if sent == 0 {
            return taken;
        }
        // Routes ask for no acknowledgement: the kernel answers refusals
        // only, and the barrier after them says that the rest succeeded.
        let barrier = wire::begin_message(
            &mut self.send_buffer,
            wire::NLMSG_NOOP,
            wire::NLM_F_REQUEST | wire::NLM_F_ACK,
            barrier_seq,
        );
        wire::end_message(&mut self.send_buffer, barrier);

        let results = &mut results[..taken];
        if let Err(error) = self.send() {
            for result in results.iter_mut().filter(|result| result.is_ok()) {
                *result = Err(error.clone());
            }
            return taken;
        }
        self.answered.clear();
        self.answered.resize(taken, false);
        if let Err(error) = self.read_answers(ops, results, first_seq, barrier_seq) {
            for (result, _) in results
                .iter_mut()
                .zip(&self.answered)
                .filter(|(result, answered)| result.is_ok() && !**answered)
            {
                *result = Err(error.clone());
            }
        }
        taken
    }

    fn send(&mut self) -> Result<(), FibError> {
        loop {
            match self.socket.send(&self.send_buffer, 0) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(FibError::io("send")(error)),
            }
        }
    }

    /// Reads the kernel's answers to one window up to its barrier. An error
    /// applies to every op not answered.
    fn read_answers(
        &mut self,
        ops: &[FibOp],
        results: &mut [Result<(), FibError>],
        first_seq: u32,
        barrier_seq: u32,
    ) -> Result<(), FibError> {
        // After an overrun, some answers were dropped and the barrier may be
        // one of them: read what is queued, without waiting.
        let mut overrun = false;
        loop {
            let flags = if overrun { libc::MSG_DONTWAIT } else { 0 };
            let len = match self.receive(flags) {
                Ok(len) => len,
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!(
                        window = self.window,
                        "kernel FIB acknowledgements overflowed the receive buffer"
                    );
                    overrun = true;
                    continue;
                }
                Err(error) if overrun && error.kind() == io::ErrorKind::WouldBlock => {
                    return Err(FibError::Unanswered);
                }
                Err(error) => return Err(FibError::io("receive")(error)),
            };
            let mut barrier_seen = false;
            for message in wire::messages(&self.receive_buffer[..len]) {
                let message = message?;
                if message.kind != wire::NLMSG_ERROR {
                    continue;
                }
                let ack = wire::parse_ack(&message)?;
                if message.seq == barrier_seq {
                    barrier_seen = true;
                    continue;
                }
                // Answers to an earlier call (read too late) are not ours.
                let offset = message.seq.wrapping_sub(first_seq) as usize;
                if offset >= results.len() {
                    continue;
                }
                self.answered[offset] = true;
                results[offset] = match (&ops[offset], ack.errno) {
                    (_, 0) => Ok(()),
                    // Already gone: what a remove wants.
                    (FibOp::Remove { .. }, libc::ENOENT | libc::ESRCH) => Ok(()),
                    (_, errno) => Err(FibError::Kernel {
                        errno,
                        detail: ack.message.map(str::to_owned),
                    }),
                };
            }
            if barrier_seen {
                return if overrun {
                    Err(FibError::Unanswered)
                } else {
                    Ok(())
                };
            }
        }
    }

    /// Receives one datagram into the receive buffer; its length.
    fn receive(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            self.receive_buffer.clear();
            match self
                .socket
                .recv(&mut self.receive_buffer, flags | libc::MSG_TRUNC)
            {
                Ok(len) if len > self.receive_buffer.len() => {
                    return Err(io::Error::other(format!(
                        "a {len}-byte datagram did not fit the receive buffer"
                    )));
                }
                Ok(len) => return Ok(len),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Every route in the table carrying `RTPROT_WGD`, IPv4 then IPv6.
    pub fn dump_ours(&mut self) -> Result<Vec<KernelRoute>, FibError> {
        self.dump_ours_as(|route| route)
    }

    /// Every route in the table carrying `RTPROT_WGD`, IPv4 then IPv6,
    /// each made into what the caller keeps as it is read: a full table is
    /// never held twice, as routes and as what they are made into.
    pub fn dump_ours_as<T>(
        &mut self,
        mut make: impl FnMut(KernelRoute) -> T,
    ) -> Result<Vec<T>, FibError> {
        self.consistently(|fib| {
            let mut routes = Vec::new();
            for family in [AF_INET, AF_INET6] {
                fib.dump(family, fib.table, RTPROT_WGD, |view| {
                    if let Some(prefix) = view.prefix() {
                        routes.push(make(KernelRoute::from_view(view, prefix)));
                    }
                })?;
            }
            Ok(routes)
        })
    }

    /// The prefixes of the routes in the table carrying `RTPROT_WGD`, IPv4
    /// then IPv6, each family in the kernel's order.
    pub fn prefixes_ours(&mut self) -> Result<Vec<IpNet>, FibError> {
        self.consistently(|fib| {
            let mut prefixes = Vec::new();
            for family in [AF_INET, AF_INET6] {
                fib.dump(family, fib.table, RTPROT_WGD, |view| {
                    prefixes.extend(view.prefix());
                })?;
            }
            Ok(prefixes)
        })
    }

    /// Every route of every table, IPv4 then IPv6, each shown to `step`
    /// as it is read (into `init()`'s state, made again if the dump is
    /// interrupted and read again): the host's routes as wgd's tunnel
    /// planner reads them, with a full table among them, and none held.
    pub fn fold_host_routes<S>(
        &mut self,
        init: impl Fn() -> S,
        mut step: impl FnMut(&mut S, HostRoute),
    ) -> Result<S, FibError> {
        self.consistently(|fib| {
            let mut state = init();
            for family in [AF_INET, AF_INET6] {
                fib.dump(family, 0, 0, |view| {
                    if let Some(prefix) = view.prefix() {
                        let route = HostRoute {
                            prefix,
                            table: view.table,
                            protocol: view.protocol,
                            kind: view.kind,
                            oif: view.oif,
                        };
                        step(&mut state, route);
                    }
                })?;
            }
            Ok(state)
        })
    }

    /// How many routes in the table carry `RTPROT_WGD` (a dump, counted).
    pub fn count_ours(&mut self) -> Result<usize, FibError> {
        self.consistently(|fib| {
            let mut count = 0;
            for family in [AF_INET, AF_INET6] {
                fib.dump(family, fib.table, RTPROT_WGD, |_| count += 1)?;
            }
            Ok(count)
        })
    }

    /// The route the kernel would use for `destination` if wgd's own routes
    /// were absent: the longest prefix among the main table's unicast routes
    /// not carrying `RTPROT_WGD`, the lowest priority between equals. The
    /// underlay route a tunnel endpoint's host route is pinned to.
    ///
    /// A dump of the main table: with a full table there, ask for many
    /// destinations at once with [`underlay_routes`](Self::underlay_routes).
    pub fn underlay_route(&mut self, destination: IpAddr) -> Result<Option<KernelRoute>, FibError> {
        let mut routes = self.underlay_routes(&[destination])?;
        Ok(routes.pop().flatten())
    }

    /// [`underlay_route`](Self::underlay_route) for each of `destinations`,
    /// in the same order, from one dump per family.
    pub fn underlay_routes(
        &mut self,
        destinations: &[IpAddr],
    ) -> Result<Vec<Option<KernelRoute>>, FibError> {
        self.consistently(|fib| {
            let mut best: Vec<Option<KernelRoute>> = vec![None; destinations.len()];
            for family in [AF_INET, AF_INET6] {
                if !destinations
                    .iter()
                    .any(|destination| family_of(*destination) == family)
                {
                    continue;
                }
                fib.dump(family, MAIN_TABLE, 0, |view| {
                    if view.protocol == RTPROT_WGD || view.kind != wire::RTN_UNICAST {
                        return;
                    }
                    let Some(prefix) = view.prefix() else { return };
                    for (destination, best) in destinations.iter().zip(&mut best) {
                        if !prefix.contains(destination) {
                            continue;
                        }
                        let better = best.as_ref().is_none_or(|best| {
                            (prefix.prefix_len(), std::cmp::Reverse(view.priority))
                                > (best.prefix.prefix_len(), std::cmp::Reverse(best.priority))
                        });
                        if better {
                            *best = Some(KernelRoute::from_view(view, prefix));
                        }
                    }
                })?;
            }
            Ok(best)
        })
    }

    /// Whether the kernel has a route for exactly each of `prefixes` that
    /// wgd did not add: a unicast route in the main table (a connected
    /// subnet, a static route) or a local one (an address with that prefix
    /// on `lo`). What a BGP speaker needs to originate a network only while
    /// it is there.
    pub fn present(&mut self, prefixes: &[IpNet]) -> Result<Vec<bool>, FibError> {
        self.consistently(|fib| {
            let mut present = vec![false; prefixes.len()];
            for family in [AF_INET, AF_INET6] {
                if !prefixes
                    .iter()
                    .any(|prefix| family_of(prefix.addr()) == family)
                {
                    continue;
                }
                for (table, kinds) in [
                    // Blackhole and unreachable routes anchor aggregates.
                    (
                        MAIN_TABLE,
                        &[wire::RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE][..],
                    ),
                    (LOCAL_TABLE, &[RTN_LOCAL][..]),
                ] {
                    fib.dump(family, table, 0, |view| {
                        if view.protocol == RTPROT_WGD || !kinds.contains(&view.kind) {
                            return;
                        }
                        let Some(found) = view.prefix() else { return };
                        for (prefix, present) in prefixes.iter().zip(&mut present) {
                            *present |= *prefix == found;
                        }
                    })?;
                }
            }
            Ok(present)
        })
    }

    /// The addresses of this host (of every interface, `lo` included):
    /// the host routes of the local table, which is where the kernel looks
    /// when a route names a preferred source (`src`).
    pub fn local_addresses(&mut self) -> Result<BTreeSet<IpAddr>, FibError> {
        self.consistently(|fib| {
            let mut addresses = BTreeSet::new();
            for family in [AF_INET, AF_INET6] {
                fib.dump(family, LOCAL_TABLE, 0, |view| {
                    if view.kind != RTN_LOCAL {
                        return;
                    }
                    if let Some(prefix) = view.prefix()
                        && prefix.prefix_len() == prefix.max_prefix_len()
                    {
                        addresses.insert(prefix.addr());
                    }
                })?;
            }
            Ok(addresses)
        })
    }

    /// Runs `read` again while the kernel says a dump it made was
    /// interrupted by a concurrent change.
    fn consistently<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<T, FibError>,
    ) -> Result<T, FibError> {
        for _ in 0..DUMP_ATTEMPTS {
            match read(self) {
                Err(FibError::DumpInterrupted) => continue,
                other => return other,
            }
        }
        Err(FibError::DumpInterrupted)
    }

    /// Dumps one family's routes of `table` (every table's with 0; with
    /// `protocol`, if not 0) and shows each to `visit`. The kernel filters
    /// too where it can (strict checking); this filters again for kernels
    /// that do not.
    fn dump(
        &mut self,
        family: u8,
        table: u32,
        protocol: u8,
        mut visit: impl FnMut(&RouteView<'_>),
    ) -> Result<(), FibError> {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.send_buffer.clear();
        let start = wire::begin_message(
            &mut self.send_buffer,
            wire::RTM_GETROUTE,
            wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
            seq,
        );
        wire::put_route_header(
            &mut self.send_buffer,
            RouteHeader {
                family,
                destination_len: 0,
                table: header_table(table),
                protocol,
                scope: wire::RT_SCOPE_UNIVERSE,
                kind: 0,
                flags: 0,
            },
        );
        if table != 0 {
            wire::put_u32_attribute(&mut self.send_buffer, wire::RTA_TABLE, table);
        }
        wire::end_message(&mut self.send_buffer, start);
        self.send()?;

        let mut interrupted = false;
        loop {
            let len = self.receive(0).map_err(FibError::io("receive"))?;
            for message in wire::messages(&self.receive_buffer[..len]) {
                let message = message?;
                // Late answers to an earlier call are not this dump's.
                if message.seq != seq {
                    continue;
                }
                interrupted |= message.flags & wire::NLM_F_DUMP_INTR != 0;
                match message.kind {
                    wire::NLMSG_DONE if interrupted => return Err(FibError::DumpInterrupted),
                    wire::NLMSG_DONE => return Ok(()),
                    wire::NLMSG_ERROR => {
                        let ack = wire::parse_ack(&message)?;
                        return match ack.errno {
                            // A table that does not exist yet (strict
                            // checking) holds no routes.
                            0 | libc::ENOENT => Ok(()),
                            errno => Err(FibError::Kernel {
                                errno,
                                detail: ack.message.map(str::to_owned),
                            }),
                        };
                    }
                    wire::RTM_NEWROUTE => {
                        let view = wire::parse_route(message.payload)?;
                        if view.family == family
                            && (table == 0 || view.table == table)
                            && (protocol == 0 || view.protocol == protocol)
                        {
                            visit(&view);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn family_of(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// The table in the header: itself if it fits, otherwise unspecified and
/// only in `RTA_TABLE` (which is sent for every table but 0, and wins).
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(wire::RT_TABLE_UNSPEC)
}

/// Writes `op` as one route request (no acknowledgement asked) at the end
/// of `buf`; on error `buf` is left as it was.
fn encode(
    buf: &mut Vec<u8>,
    op: &FibOp,
    seq: u32,
    table: u32,
    priority: u32,
) -> Result<(), FibError> {
    let (kind, flags, prefix, nexthops, source) = match op {
        FibOp::Add {
            prefix,
            nexthops,
            source,
        } => (
            wire::RTM_NEWROUTE,
            wire::NLM_F_CREATE | wire::NLM_F_EXCL,
            prefix,
            nexthops.as_slice(),
            *source,
        ),
        FibOp::Replace {
            prefix,
            nexthops,
            source,
        } => (
            wire::RTM_NEWROUTE,
            wire::NLM_F_CREATE | wire::NLM_F_REPLACE,
            prefix,
            nexthops.as_slice(),
            *source,
        ),
        FibOp::Remove { prefix } => (wire::RTM_DELROUTE, 0, prefix, &[][..], None),
    };
    let family = family_of(prefix.addr());
    let scope = if kind == wire::RTM_DELROUTE {
        // Matches a route of any scope.
        wire::RT_SCOPE_NOWHERE
    } else if nexthops.is_empty() {
        return Err(FibError::NoNexthop);
    } else if family == AF_INET && nexthops.iter().all(|nexthop| nexthop.gateway.is_none()) {
        // A plain `dev` route, as `ip route add … dev` makes it.
        wire::RT_SCOPE_LINK
    } else {
        wire::RT_SCOPE_UNIVERSE
    };
    let route_flags = match nexthops {
        [single] => u32::from(nexthop_flags(single)),
        _ => 0,
    };

    let start = wire::begin_message(buf, kind, wire::NLM_F_REQUEST | flags, seq);
    wire::put_route_header(
        buf,
        RouteHeader {
            family,
            destination_len: prefix.prefix_len(),
            table: header_table(table),
            protocol: RTPROT_WGD,
            scope,
            kind: wire::RTN_UNICAST,
            flags: route_flags,
        },
    );
    wire::put_u32_attribute(buf, wire::RTA_TABLE, table);
    if prefix.prefix_len() > 0 {
        match prefix.addr() {
            IpAddr::V4(address) => wire::put_attribute(buf, wire::RTA_DST, &address.octets()),
            IpAddr::V6(address) => wire::put_attribute(buf, wire::RTA_DST, &address.octets()),
        }
    }
    wire::put_u32_attribute(buf, wire::RTA_PRIORITY, priority);
    // Only of the route's own family: the kernel has no other.
    match (family, source) {
        (AF_INET, Some(IpAddr::V4(source))) => {
            wire::put_attribute(buf, wire::RTA_PREFSRC, &source.octets());
        }
        (AF_INET6, Some(IpAddr::V6(source))) => {
            wire::put_attribute(buf, wire::RTA_PREFSRC, &source.octets());
        }
        _ => {}
    }
    match nexthops {
        [] => {}
        [single] => {
            if single.ifindex != 0 {
                wire::put_u32_attribute(buf, wire::RTA_OIF, single.ifindex);
            }
            if let Some(gateway) = single.gateway {
                wire::put_gateway(buf, family, gateway);
            }
        }
        several => {
            if put_multipath(buf, family, several).is_err() {
                buf.truncate(start);
                return Err(FibError::TooManyNexthops(several.len()));
            }
        }
    }
    wire::end_message(buf, start);
    Ok(())
}

fn put_multipath(
    buf: &mut Vec<u8>,
    family: u8,
    nexthops: &[FibNexthop],
) -> Result<(), wire::TooLong> {
    let multipath = wire::begin_nested(buf, wire::RTA_MULTIPATH);
    for nexthop in nexthops {
        let entry = wire::begin_nexthop(buf, nexthop_flags(nexthop), nexthop.ifindex);
        if let Some(gateway) = nexthop.gateway {
            wire::put_gateway(buf, family, gateway);
        }
        wire::end_nexthop(buf, entry)?;
    }
    wire::end_nested(buf, multipath)
}

/// A gateway through a named interface is on-link: tunnels are
/// point-to-point, and the gateway is often outside any connected subnet.
fn nexthop_flags(nexthop: &FibNexthop) -> u8 {
    if nexthop.gateway.is_some() && nexthop.ifindex != 0 {
        wire::RTNH_F_ONLINK
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_error_reads_as_a_reason() {
        let error = FibError::Kernel {
            errno: libc::EEXIST,
            detail: None,
        };
        assert_eq!(error.to_string(), "kernel refused: File exists");
        let error = FibError::Kernel {
            errno: libc::ENETDOWN,
            detail: Some("Nexthop device is not up".into()),
        };
        assert_eq!(
            error.to_string(),
            "kernel refused: Network is down: Nexthop device is not up"
        );
    }

    #[test]
    fn an_add_without_nexthop_is_refused_before_the_kernel() {
        let mut buf = Vec::new();
        let op = FibOp::add("10.0.0.0/8".parse().unwrap(), Vec::new());
        assert!(matches!(
            encode(&mut buf, &op, 1, MAIN_TABLE, 20),
            Err(FibError::NoNexthop)
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn too_many_nexthops_leave_the_buffer_as_it_was() {
        let mut buf = vec![1, 2, 3, 4];
        let nexthops = (0..5000)
            .map(|index| FibNexthop {
                tunnel: "wg0".into(),
                ifindex: 3,
                gateway: Some(IpAddr::from([10, 0, (index / 256) as u8, index as u8])),
                peer: None,
            })
            .collect();
        let op = FibOp::replace("10.0.0.0/8".parse().unwrap(), nexthops);
        assert!(matches!(
            encode(&mut buf, &op, 1, MAIN_TABLE, 20),
            Err(FibError::TooManyNexthops(5000))
        ));
        assert_eq!(buf, [1, 2, 3, 4]);
    }
}
