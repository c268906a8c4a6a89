//! The socket options BGP sessions need and no safe wrapper offers: TCP MD5
//! signatures (RFC 2385, `TCP_MD5SIG`) and the generalized TTL security
//! mechanism (RFC 5082: send with TTL 255, accept only TTL 255, so a packet
//! from further away than one hop cannot reach the session).
//!
//! This is the workspace's one module with `unsafe`: two `setsockopt`
//! calls on a socket the caller owns, each with a value laid out here as
//! the kernel's headers define it.
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// `struct tcp_md5sig` of <linux/tcp.h>.
#[repr(C)]
struct TcpMd5Sig {
    address: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; 80],
}

/// Signs (and requires signatures on) every segment exchanged with `peer`
/// on this socket, or on the connections a listening socket accepts from
/// it. On an IPv6 socket an IPv4 peer is given as its mapped address.
pub fn set_md5(socket: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.is_empty() || key.len() > 80 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TCP MD5 key has 1 to 80 bytes",
        ));
    }
    let family = socket_family(socket)?;
    // SAFETY: an all-zero `sockaddr_storage` and key array are valid values.
    let mut signature: TcpMd5Sig = unsafe { std::mem::zeroed() };
    signature.key_len = key.len() as u16;
    signature.key[..key.len()].copy_from_slice(key);
    let storage = &mut signature.address as *mut libc::sockaddr_storage;
    match (family, peer) {
        (libc::AF_INET, IpAddr::V4(v4)) => {
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for
            // any `sockaddr_*`; we write one whole `sockaddr_in` at its start.
            unsafe { storage.cast::<libc::sockaddr_in>().write(address) };
        }
        (libc::AF_INET6, peer) => {
            let v6 = match peer {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let address = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for a `sockaddr_in6`.
            unsafe { storage.cast::<libc::sockaddr_in6>().write(address) };
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv6 peer on an IPv4 socket",
            ));
        }
    }
    setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &signature)
}

/// RFC 5082 with one hop: this socket sends with TTL (hop limit) 255 and
/// drops what arrives with less than 255.
pub fn set_ttl_security(socket: &impl AsRawFd) -> io::Result<()> {
    let max: libc::c_int = 255;
    match socket_family(socket)? {
        libc::AF_INET => {
            setsockopt(socket, libc::IPPROTO_IP, libc::IP_TTL, &max)?;
            setsockopt(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &max)
        }
        _ => {
            setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &max)?;
            setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &max)?;
            // IPv4 peers on a dual-stack socket.
            setsockopt(socket, libc::IPPROTO_IP, libc::IP_TTL, &max)?;
            setsockopt(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &max)
        }
    }
}

/// Sends with TTL (hop limit) 255 without checking what arrives: for a
/// listening socket, whose accepted connections get the check one by one.
pub fn send_with_ttl_255(socket: &impl AsRawFd) -> io::Result<()> {
    let max: libc::c_int = 255;
    if socket_family(socket)? == libc::AF_INET6 {
        setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &max)?;
    }
    setsockopt(socket, libc::IPPROTO_IP, libc::IP_TTL, &max)
}

fn socket_family(socket: &impl AsRawFd) -> io::Result<libc::c_int> {
    // SAFETY: an all-zero `sockaddr_storage` is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `length` are valid for writes of the sizes given.
    let result = unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(storage.ss_family))
}

fn setsockopt<T>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_on_loopback_sockets() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_md5(&v4, "127.0.0.1".parse().unwrap(), b"secret").unwrap();
        set_ttl_security(&v4).unwrap();
        assert!(set_md5(&v4, "::1".parse().unwrap(), b"secret").is_err());
        assert!(set_md5(&v4, "127.0.0.1".parse().unwrap(), b"").is_err());
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        set_md5(&v6, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        set_ttl_security(&v6).unwrap();
    }
}
