//! The UDP side of single-hop BFD (RFC 5881): a socket per session to
//! send from (bound to its tunnel, a source port of 49152-65535, TTL 255)
//! and a socket per tunnel and family that hears port 3784 with each
//! datagram's TTL or hop limit. Datagrams read go to the runtime through
//! a channel.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage, bind,
    recvmsg, setsockopt, socket, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use wgd_bfd::{CONTROL_PORT, REQUIRED_TTL, SOURCE_PORTS};

/// A datagram to port 3784.
pub(super) struct Datagram {
    pub tunnel: String,
    pub from: IpAddr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// A UDP socket bound to `tunnel`, of the family of `v6`.
fn tunnel_socket(tunnel: &str, v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(tunnel),
    )?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
}

fn unspecified(v6: bool, port: u16) -> SockaddrStorage {
    let address = if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    };
    SockaddrStorage::from(address)
}

/// The socket a session sends from (RFC 5881 4, 5): bound to its tunnel,
/// a source port of 49152-65535 kept for the session's life, TTL or hop
/// limit 255.
pub(super) fn sender(tunnel: &str, v6: bool, discriminator: u32) -> io::Result<UdpSocket> {
    let fd = tunnel_socket(tunnel, v6)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6Ttl, &i32::from(REQUIRED_TTL))?;
    } else {
        setsockopt(&fd, sockopt::Ipv4Ttl, &i32::from(REQUIRED_TTL))?;
    }
    let (first, last) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let span = u32::from(last - first) + 1;
    let start = discriminator % span;
    let mut bound = Err(io::Error::from(io::ErrorKind::AddrInUse));
    for offset in 0..span {
        let port = first + ((start + offset) % span) as u16;
        match bind(fd.as_raw_fd(), &unspecified(v6, port)) {
            Ok(()) => {
                bound = Ok(());
                break;
            }
            Err(nix::errno::Errno::EADDRINUSE) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    bound?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// The socket that hears port 3784 on a tunnel, with each datagram's TTL
/// or hop limit.
pub(super) fn receiver(tunnel: &str, v6: bool) -> io::Result<UdpSocket> {
    let fd = tunnel_socket(tunnel, v6)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4RecvTtl, &true)?;
    }
    bind(fd.as_raw_fd(), &unspecified(v6, CONTROL_PORT))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

pub(super) async fn read(
    socket: UdpSocket,
    tunnel: String,
    datagrams: mpsc::UnboundedSender<Datagram>,
) {
    let mut buffer = [0u8; 512];
    loop {
        let received = socket
            .async_io(Interest::READABLE, || {
                receive_with_ttl(&socket, &mut buffer)
            })
            .await;
        match received {
            Ok((length, from, ttl)) => {
                let datagram = Datagram {
                    tunnel: tunnel.clone(),
                    from,
                    ttl,
                    payload: buffer[..length].to_vec(),
                };
                if datagrams.send(datagram).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%tunnel, %error, "BFD: receive failed");
                // The tunnel went away under it, say: the runtime opens a
                // new one when it is back; do not spin meanwhile.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One datagram: its length, source address, and TTL or hop limit (0 when
/// the kernel did not say, which no session accepts).
fn receive_with_ttl(socket: &impl AsFd, buffer: &mut [u8]) -> io::Result<(usize, IpAddr, u8)> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut control = nix::cmsg_space!(libc::c_int);
    let message = recvmsg::<SockaddrStorage>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let mut ttl = 0u8;
    for control in message.cmsgs()? {
        match control {
            ControlMessageOwned::Ipv4Ttl(value) | ControlMessageOwned::Ipv6HopLimit(value) => {
                ttl = u8::try_from(value).unwrap_or(0);
            }
            _ => {}
        }
    }
    let from = message
        .address
        .as_ref()
        .and_then(|address| {
            address
                .as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .ok_or_else(|| io::Error::other("a datagram without a source address"))?;
    Ok((message.bytes, from, ttl))
}
