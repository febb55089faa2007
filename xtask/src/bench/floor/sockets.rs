//! The floor's sockets: netlink requests built by hand and read back (`NETLINK_ROUTE`, with the
//! link notifications that tell when the carrier is on), and raw ICMP echo.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::STEP_TIMEOUT;

/// Netlink numbers from `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`,
/// `linux/veth.h`, `linux/if_addr.h` and `linux/icmp.h`; the libc crate lacks most of them.
pub(super) mod nl {
    pub(crate) const HEADER: usize = 16;
    pub(crate) const NLMSG_ERROR: u16 = 2;
    pub(crate) const RTM_NEWLINK: u16 = 16;
    pub(crate) const RTM_GETLINK: u16 = 18;
    pub(crate) const RTM_NEWADDR: u16 = 20;
    pub(crate) const NLM_F_REQUEST: u16 = 0x1;
    pub(crate) const NLM_F_ACK: u16 = 0x4;
    pub(crate) const NLM_F_EXCL: u16 = 0x200;
    pub(crate) const NLM_F_CREATE: u16 = 0x400;
    pub(crate) const RTMGRP_LINK: u32 = 1;
    pub(crate) const IFLA_IFNAME: u16 = 3;
    pub(crate) const IFLA_OPERSTATE: u16 = 16;
    pub(crate) const IFLA_LINKINFO: u16 = 18;
    pub(crate) const IFLA_NET_NS_FD: u16 = 28;
    pub(crate) const IFLA_INFO_KIND: u16 = 1;
    pub(crate) const IFLA_INFO_DATA: u16 = 2;
    pub(crate) const VETH_INFO_PEER: u16 = 1;
    pub(crate) const IFA_ADDRESS: u16 = 1;
    pub(crate) const IFA_LOCAL: u16 = 2;
    pub(crate) const IF_OPER_UP: u8 = 6;
    /// The attribute type without the nested and byte-order flags.
    pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;
    pub(crate) const ICMP_FILTER: libc::c_int = 1;
    pub(crate) const ICMP_ECHOREPLY: u8 = 0;
    pub(crate) const ICMP_ECHO: u8 = 8;
}

/// One netlink request being built: header, fixed part, attributes (all 4-byte aligned).
pub(super) struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub(super) fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        // Length and sequence number are filled in when sent; the kernel needs no port id.
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | nl::NLM_F_REQUEST | nl::NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        Request { buf }
    }

    /// A link request (`struct ifinfomsg`) for link `index`, setting it up when `up`.
    pub(super) fn link(kind: u16, flags: u16, index: u32, up: bool) -> Self {
        let mut request = Request::new(kind, flags);
        request.ifinfo(index, up);
        request
    }

    /// `ip addr add <addr>/<prefix> dev <index>` (`struct ifaddrmsg` and attributes).
    pub(super) fn address(index: u32, addr: Ipv4Addr, prefix: u8) -> Self {
        let mut request = Request::new(nl::RTM_NEWADDR, nl::NLM_F_CREATE | nl::NLM_F_EXCL);
        request.buf.extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
        request.buf.extend_from_slice(&index.to_ne_bytes());
        request.attr(nl::IFA_LOCAL, &addr.octets());
        request.attr(nl::IFA_ADDRESS, &addr.octets());
        request
    }

    /// A `struct ifinfomsg`: family, padding, type, index, flags, change mask.
    pub(super) fn ifinfo(&mut self, index: u32, up: bool) {
        let up = if up { libc::IFF_UP as u32 } else { 0 };
        self.buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&up.to_ne_bytes());
        self.buf.extend_from_slice(&up.to_ne_bytes());
    }

    pub(super) fn attr(&mut self, kind: u16, payload: &[u8]) {
        let start = self.begin(kind);
        self.buf.extend_from_slice(payload);
        self.end(start);
    }

    /// Starts an attribute (nested ones are closed by [`end`](Self::end) in reverse order).
    pub(super) fn begin(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        start
    }

    pub(super) fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    pub(super) fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// A `NETLINK_ROUTE` socket of one namespace, subscribed to its link notifications, and what
/// they last said about the one link the cycle waits for.
pub(super) struct Rtnl {
    socket: Socket,
    seq: u32,
    watch: u32,
    ready: bool,
    /// Notifications were dropped (`ENOBUFS`): the link's state must be asked for again.
    overrun: bool,
}

impl Rtnl {
    /// Opens the socket in the calling thread's network namespace; `watch` is the link whose
    /// readiness [`await_carrier`] waits for.
    pub(super) fn open(watch: u32) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )?;
        // SAFETY: a sockaddr_nl is plain data.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        address.nl_groups = nl::RTMGRP_LINK;
        // SAFETY: `address` is a valid sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const address).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.set_read_timeout(Some(STEP_TIMEOUT))?;
        Ok(Rtnl { socket, seq: 0, watch, ready: false, overrun: false })
    }

    /// Sends `request` and reads until the kernel acknowledges it, noting link notifications
    /// that arrive meanwhile.
    pub(super) fn request(&mut self, mut request: Request) -> io::Result<()> {
        self.seq += 1;
        self.socket.send(request.finish(self.seq))?;
        loop {
            if let Some(outcome) = self.receive(Some(self.seq))? {
                return outcome;
            }
        }
    }

    /// Reads one datagram; returns the outcome of request `wanted` if its answer was in it.
    fn receive(&mut self, wanted: Option<u32>) -> io::Result<Option<io::Result<()>>> {
        let mut buffer = [0u8; 16384];
        let len = match (&self.socket).read(&mut buffer) {
            Ok(len) => len,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                self.overrun = true;
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let mut rest = &buffer[..len];
        let mut outcome = None;
        while rest.len() >= nl::HEADER {
            let size = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
            if size < nl::HEADER || size > rest.len() {
                break;
            }
            let body = &rest[nl::HEADER..size];
            match kind {
                nl::NLMSG_ERROR if Some(seq) == wanted && body.len() >= 4 => {
                    let code = i32::from_ne_bytes(body[0..4].try_into().expect("4 bytes"));
                    outcome = Some(if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-code)) });
                }
                nl::RTM_NEWLINK => self.note(body),
                _ => {}
            }
            rest = &rest[size.next_multiple_of(4).min(rest.len())..];
        }
        Ok(outcome)
    }

    /// Notes a link message: the watched link is ready when up, with carrier
    /// (`IFF_LOWER_UP`) and operationally up (the kernel's link watcher has run; until then
    /// the device drops frames), as the library waits for it.
    fn note(&mut self, body: &[u8]) {
        if body.len() < 16 || u32::from_ne_bytes(body[4..8].try_into().expect("4 bytes")) != self.watch {
            return;
        }
        let flags = u32::from_ne_bytes(body[8..12].try_into().expect("4 bytes"));
        let mut operstate = None;
        let mut attrs = &body[16..];
        while attrs.len() >= 4 {
            let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & nl::NLA_TYPE_MASK;
            if len < 4 || len > attrs.len() {
                break;
            }
            if kind == nl::IFLA_OPERSTATE && len >= 5 {
                operstate = Some(attrs[4]);
            }
            attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
        }
        let wanted = (libc::IFF_UP | libc::IFF_LOWER_UP) as u32;
        self.ready = flags & wanted == wanted && operstate == Some(nl::IF_OPER_UP);
    }

    /// `ip link show dev <watch>`, after lost notifications: the answer goes through
    /// [`note`](Self::note).
    fn query(&mut self) -> io::Result<()> {
        self.overrun = false;
        self.request(Request::link(nl::RTM_GETLINK, 0, self.watch, false))
    }
}

/// Waits until both watched links are ready, reading both sockets' notifications as they come.
pub(super) fn await_carrier(a: &mut Rtnl, b: &mut Rtnl) -> io::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        for side in [&mut *a, &mut *b] {
            if side.overrun {
                side.query()?;
            }
        }
        if a.ready && b.ready {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no carrier after {STEP_TIMEOUT:?}"),
            ));
        }
        let readable = {
            let mut fds = [
                PollFd::new(a.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(b.socket.as_fd(), PollFlags::POLLIN),
            ];
            poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX))?;
            fds.map(|fd| fd.revents().is_some_and(|events| !events.is_empty()))
        };
        for (side, readable) in [(&mut *a, readable[0]), (&mut *b, readable[1])] {
            if readable {
                side.receive(None)?;
            }
        }
    }
}

/// A raw ICMP socket of the calling thread's namespace that receives only echo replies (a raw
/// socket also sees the echo requests the peer sends; the kernel filters them out).
pub(super) fn icmp_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let filter: u32 = !(1 << nl::ICMP_ECHOREPLY);
    // SAFETY: ICMP_FILTER takes a u32 mask of the ICMP types to drop; `filter` is one.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_RAW,
            nl::ICMP_FILTER,
            (&raw const filter).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.set_read_timeout(Some(STEP_TIMEOUT))?;
    Ok(socket)
}

/// Sends one echo request to `to` and waits for its reply.
pub(super) fn echo(socket: &Socket, to: Ipv4Addr, id: u16) -> io::Result<()> {
    let [id_high, id_low] = id.to_be_bytes();
    let mut request = [nl::ICMP_ECHO, 0, 0, 0, id_high, id_low, 0, 1, b'f', b'l', b'o', b'o', b'r', 0, 0, 0];
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    socket.send_to(&request, &SockAddr::from(SocketAddrV4::new(to, 0)))?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut buffer = [0u8; 256];
    loop {
        // The reply comes with its IP header.
        let len = (&*socket).read(&mut buffer)?;
        let header = usize::from(buffer[0] & 0x0f) * 4;
        if len >= header + 8
            && buffer[header] == nl::ICMP_ECHOREPLY
            && buffer[header + 4..header + 6] == id.to_be_bytes()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no echo reply from {to}")));
        }
    }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        // An echo request (id 1, seq 1, no payload) and its well-known checksum.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
        // A message that carries its own checksum sums to zero.
        assert_eq!(checksum(&[8, 0, 0xf7, 0xfd, 0, 1, 0, 1]), 0);
    }
}
