//! Raw ICMP and ICMPv6 sockets: opened inside a node, filtered in the kernel, timestamped by
//! the kernel on receive.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{
    self as nix_socket, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, sockopt,
};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};

use super::icmp::{Family, icmpv4_type, icmpv6_type};
use crate::error::{Error, Result, name_list};
use crate::network::Node;

/// Where probes leave from, when not left to the routing table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Send from this address (iputils `-I 10.0.0.1`): it must be one of the node's.
    Addr(IpAddr),
    /// Send through this interface (iputils `-I eth0`), with `SO_BINDTODEVICE`.
    Interface(String),
}

impl From<IpAddr> for Source {
    fn from(addr: IpAddr) -> Source {
        Source::Addr(addr)
    }
}

impl From<std::net::Ipv4Addr> for Source {
    fn from(addr: std::net::Ipv4Addr) -> Source {
        Source::Addr(addr.into())
    }
}

impl From<std::net::Ipv6Addr> for Source {
    fn from(addr: std::net::Ipv6Addr) -> Source {
        Source::Addr(addr.into())
    }
}

/// An address if `text` parses as one, otherwise an interface name (as iputils' `-I` reads it).
impl From<&str> for Source {
    fn from(text: &str) -> Source {
        match text.parse() {
            Ok(addr) => Source::Addr(addr),
            Err(_) => Source::Interface(text.to_string()),
        }
    }
}

impl From<String> for Source {
    fn from(text: String) -> Source {
        Source::from(text.as_str())
    }
}

/// What a socket must be set up with; pingers that agree on it may share one socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SocketKey {
    pub(crate) node: String,
    pub(crate) family: Family,
    pub(crate) ttl: Option<u8>,
    pub(crate) source: Option<Source>,
    pub(crate) dont_fragment: bool,
}

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Datagram {
    pub(crate) len: usize,
    pub(crate) from: IpAddr,
    /// The kernel's receive time (`CLOCK_REALTIME`), from `SCM_TIMESTAMPNS`.
    pub(crate) time: Option<Duration>,
    /// The hop limit, from `IPV6_HOPLIMIT` (IPv6 only: IPv4 has it in the header).
    pub(crate) hop_limit: Option<u8>,
}

/// A raw ICMP or ICMPv6 socket in non-blocking mode.
#[derive(Debug)]
pub(crate) struct IcmpSocket {
    socket: Socket,
    family: Family,
}

impl IcmpSocket {
    /// Opens a socket inside `node` as `key` describes. With `ident`, the kernel passes on only
    /// the echo replies that carry it (and every error, whose quoted request is checked later):
    /// a raw socket otherwise receives every ICMP message that reaches the node, including the
    /// replies of every other pinger there.
    pub(crate) fn open(node: &Node, key: &SocketKey, ident: Option<u16>) -> Result<IcmpSocket> {
        let name = node.name();
        let what = |step: &str| format!("{step} for a raw ICMP socket in node `{name}`");
        let (domain, protocol) = match key.family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        // The socket belongs to the namespace of the thread that creates it.
        let socket = node
            .run(|| Socket::new(domain, Type::RAW.nonblocking().cloexec(), Some(protocol)))
            .map_err(|e| Error::io(format!("opening a raw ICMP socket in node `{name}`"), e))?;
        socket
            .attach_filter(&filter(key.family, ident))
            .map_err(|e| Error::io(what("attaching the filter"), e))?;
        nix_socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .map_err(|e| Error::io(what("setting SO_TIMESTAMPNS"), e.into()))?;
        if key.family == Family::V6 {
            socket.set_recv_hoplimit_v6(true).map_err(|e| Error::io(what("setting IPV6_RECVHOPLIMIT"), e))?;
        }
        if let Some(ttl) = key.ttl {
            match key.family {
                Family::V4 => socket.set_ttl_v4(u32::from(ttl)),
                Family::V6 => socket.set_unicast_hops_v6(u32::from(ttl)),
            }
            .map_err(|e| Error::io(what(&format!("setting the TTL to {ttl}")), e))?;
        }
        if key.dont_fragment {
            // `ping -M do`: the DF bit on every probe, and no local fragmentation either.
            let (level, name, value) = match key.family {
                Family::V4 => (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO),
                Family::V6 => (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO),
            };
            // SAFETY: setsockopt(2) on an open socket with a pointer to a local c_int.
            let result = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    level,
                    name,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if result != 0 {
                return Err(Error::io(what("forbidding fragmentation"), std::io::Error::last_os_error()));
            }
        }
        match &key.source {
            None => {}
            Some(Source::Addr(addr)) => {
                socket.bind(&SockAddr::from(SocketAddr::new(*addr, 0))).map_err(|e| {
                    Error::io(
                        format!(
                            "binding a raw ICMP socket to {addr} in node `{name}` (is it the node's address?)"
                        ),
                        e,
                    )
                })?;
            }
            Some(Source::Interface(interface)) => {
                socket.bind_device(Some(interface.as_bytes())).map_err(|e| match e.raw_os_error() {
                    Some(libc::ENODEV) => Error::UnknownInterface {
                        node: name.to_string(),
                        name: interface.clone(),
                        known: name_list(node.interfaces().iter().map(|i| i.name()).chain(["lo"])),
                    },
                    _ => Error::io(what(&format!("binding to interface `{interface}`")), e),
                })?;
            }
        }
        Ok(IcmpSocket { socket, family: key.family })
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// Sends one ICMP message.
    pub(crate) fn send_to(&self, message: &[u8], to: &SockAddr) -> io::Result<()> {
        self.socket.send_to(message, to).map(drop)
    }

    /// Receives one datagram into `buffer`, or `None` when nothing is queued. `control` is
    /// scratch space for the control messages ([`control_buffer`]).
    pub(crate) fn recv(&self, buffer: &mut [u8], control: &mut [u8]) -> io::Result<Option<Datagram>> {
        loop {
            let mut iov = [io::IoSliceMut::new(&mut *buffer)];
            let message = match nix_socket::recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut *control),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => message,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
                Err(errno) => return Err(errno.into()),
            };
            let from = message.address.as_ref().and_then(|address| match address.family() {
                Some(nix_socket::AddressFamily::Inet) => address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())),
                Some(nix_socket::AddressFamily::Inet6) => {
                    address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
                }
                _ => None,
            });
            // A raw IP socket always names the sender; skip anything that does not.
            let Some(from) = from else { continue };
            let mut time = None;
            let mut hop_limit = None;
            for cmsg in message.cmsgs().map_err(io::Error::from)? {
                match cmsg {
                    ControlMessageOwned::ScmTimestampns(stamp) => {
                        time = Some(Duration::new(stamp.tv_sec() as u64, stamp.tv_nsec() as u32));
                    }
                    ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = u8::try_from(limit).ok(),
                    _ => {}
                }
            }
            return Ok(Some(Datagram { len: message.bytes, from, time, hop_limit }));
        }
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Room for the control messages [`IcmpSocket::recv`] asks for.
pub(crate) fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::sys::time::TimeSpec, libc::c_int)
}

/// A classic BPF program that passes echo replies (only those carrying `ident`, when given) and
/// the ICMP errors that may quote an echo request, and drops the rest: neighbour discovery,
/// other pingers' replies, echo requests addressed to the node.
fn filter(family: Family, ident: Option<u16>) -> Vec<SockFilter> {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // An IPv4 raw socket's filter sees the IP header first, so X is loaded with its length and
    // the ICMP fields are read relative to it; an ICMPv6 socket's filter sees the ICMPv6
    // message at offset 0.
    let (prologue, load_type, load_ident, reply, errors) = match family {
        Family::V4 => (
            Some(SockFilter::new(LDX_MSH, 0, 0, 0)),
            LD_B_IND,
            LD_H_IND,
            icmpv4_type::ECHO_REPLY,
            // IPv4 has three error types that quote a datagram; the fourth slot repeats one.
            [
                icmpv4_type::DESTINATION_UNREACHABLE,
                icmpv4_type::TIME_EXCEEDED,
                icmpv4_type::PARAMETER_PROBLEM,
                icmpv4_type::PARAMETER_PROBLEM,
            ],
        ),
        Family::V6 => (
            None,
            LD_B_ABS,
            LD_H_ABS,
            icmpv6_type::ECHO_REPLY,
            [
                icmpv6_type::DESTINATION_UNREACHABLE,
                icmpv6_type::PACKET_TOO_BIG,
                icmpv6_type::TIME_EXCEEDED,
                icmpv6_type::PARAMETER_PROBLEM,
            ],
        ),
    };
    // Layout after the prologue (jump offsets count from the next instruction):
    //  0 type        1 reply? -> 7   2..=5 error? -> 10   6 drop
    //  7 ident       8 ours? -> 10    9 drop              10 accept
    let ident_check = match ident {
        Some(ident) => SockFilter::new(JEQ, 1, 0, u32::from(ident)),
        None => SockFilter::new(JA, 0, 0, 1),
    };
    prologue
        .into_iter()
        .chain([
            SockFilter::new(load_type, 0, 0, 0),
            SockFilter::new(JEQ, 5, 0, u32::from(reply)),
            SockFilter::new(JEQ, 7, 0, u32::from(errors[0])),
            SockFilter::new(JEQ, 6, 0, u32::from(errors[1])),
            SockFilter::new(JEQ, 5, 0, u32::from(errors[2])),
            SockFilter::new(JEQ, 4, 0, u32::from(errors[3])),
            SockFilter::new(RET, 0, 0, 0),
            SockFilter::new(load_ident, 0, 0, 4),
            ident_check,
            SockFilter::new(RET, 0, 0, 0),
            SockFilter::new(RET, 0, 0, u32::MAX),
        ])
        .collect()
}
