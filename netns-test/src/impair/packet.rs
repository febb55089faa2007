//! AF_PACKET sockets on the middle ends of an impaired link, and the ethtool call that turns
//! checksum offload off.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ns::{self, NsFds};

use super::gso::VNET_LEN;

/// One middle end of an impaired link: the namespace it lives in, and its interface.
#[derive(Clone, Debug)]
pub(crate) struct Port {
    /// The namespace that holds the interface (the middle namespace).
    pub(crate) netns: Arc<NsFds>,
    /// The interface's index in that namespace.
    pub(crate) ifindex: u32,
    /// The interface's name, for messages.
    pub(crate) ifname: String,
}

/// A raw socket bound to one interface, exchanging whole Ethernet frames preceded by a
/// `virtio_net_hdr`.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

/// Socket buffers large enough for a burst of 64 KB superframes; set with the `FORCE`
/// options, which as root ignore `net.core.rmem_max`.
const BUFFER: libc::c_int = 8 << 20;

impl PacketSocket {
    /// Opens the socket inside the port's namespace and binds it to the port's interface.
    pub(crate) fn open(port: &Port) -> Result<Self> {
        let what = || format!("opening an AF_PACKET socket on `{}` (ifindex {})", port.ifname, port.ifindex);
        let opened = ns::run_in(&port.netns, "netns-test-link", || open_bound(port.ifindex));
        let fd = opened.map_err(io::Error::from).and_then(|fd| fd).map_err(|e| Error::io(what(), e))?;
        Ok(PacketSocket { fd })
    }

    /// Reads one frame (with its `virtio_net_hdr` first) into `buffer`. Returns its full
    /// length, which is larger than the buffer if the frame was cut, or `None` when no frame is
    /// waiting.
    pub(crate) fn recv(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: the buffer is valid for writes of its length for the duration of the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        }
        Ok(Some(n as usize))
    }

    /// Sends one frame, `virtio_net_hdr` first, out of the bound interface.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the buffer is valid for reads of its length for the duration of the call.
        let n = unsafe {
            libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT)
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Frames the kernel dropped because this socket's buffer was full, since the last call.
    pub(crate) fn drops(&self) -> u64 {
        let mut stats = [0u32; 2];
        let mut len = mem::size_of_val(&stats) as libc::socklen_t;
        // SAFETY: `stats` is a `struct tpacket_stats` (two u32s) and `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                stats.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 { u64::from(stats[1]) } else { 0 }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn open_bound(ifindex: u32) -> io::Result<OwnedFd> {
    bound_packet_socket(ifindex, libc::SOCK_NONBLOCK, |fd| {
        // The virtio header tells which frames are GSO superframes or carry a partial checksum.
        set_option(fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        // Frames the engine sends out of this interface would otherwise be read back.
        set_option(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        // Frames go straight to the veth: there is nothing for a qdisc to do on a middle end.
        set_option(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        if set_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, BUFFER).is_err() {
            set_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, BUFFER)?;
        }
        if set_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, BUFFER).is_err() {
            set_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, BUFFER)?;
        }
        Ok(())
    })
}

/// A raw packet socket (`SOCK_CLOEXEC` and `flags`) of the calling thread's namespace that
/// receives every frame of interface `ifindex`, and only of it: the engine's ports and the
/// live captures of `network/capture.rs` open theirs here.
///
/// It is opened with protocol 0, so it receives nothing until it is bound and no frame of
/// another interface slips in between `socket()` and `bind()`; `configure` sets the options
/// that must be in place before the first frame arrives.
pub(crate) fn bound_packet_socket(
    ifindex: u32,
    flags: libc::c_int,
    configure: impl FnOnce(&OwnedFd) -> io::Result<()>,
) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    configure(&fd)?;
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    address.sll_ifindex = ifindex as i32;
    // SAFETY: `address` is a valid sockaddr_ll and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const address).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn set_option(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a c_int and the length says so.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The largest frame read: a 64 KB GSO superframe plus its headers and the virtio header.
pub(crate) const MAX_FRAME: usize = VNET_LEN + 65_536 + 1024;

/// Turns transmit checksum offload of interface `ifname` in `netns` on or off (`ethtool -K
/// <ifname> tx on|off`).
///
/// The engine does not need it: it reads partial checksums and superframes through the
/// virtio header. It is for a link whose frames are read by something that cannot, such as a
/// capture program or a forwarder without `PACKET_VNET_HDR`: with tx checksumming off, the
/// sender completes every checksum and, since TSO depends on it, sends no superframe.
#[cfg(test)]
pub(crate) fn set_tx_checksum(netns: &NsFds, ifname: &str, on: bool) -> Result<()> {
    use crate::ns::setup::{Offload, set_offload};
    let what = || format!("ethtool -K {ifname} tx {}", if on { "on" } else { "off" });
    let set = ns::run_in(netns, "netns-test-link", || {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
        set_offload(&socket, ifname, Offload::TxChecksum, on)
    });
    set.map_err(io::Error::from).and_then(|set| set).map_err(|e| Error::io(what(), e))
}
