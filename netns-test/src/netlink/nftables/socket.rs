//! Talking to the kernel: one `NETLINK_NETFILTER` socket per call, opened in the calling
//! thread's network namespace, closed when the call returns.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send, setsockopt,
    socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::Family;
use super::attr;
use super::batch::Batch;
use super::dump::{self, RuleDump};
use super::sys::*;

/// How long the kernel may take to answer before the call gives up: it answers at once, so
/// this only bounds a call that something has gone badly wrong with.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Enough for any datagram the kernel sends on a netlink socket (dumps fill at most 32 KiB,
/// or a page if that is larger).
const RECEIVE_BUFFER: usize = 1 << 17;

/// Dumps interrupted by a concurrent change are retried this often.
const DUMP_ATTEMPTS: usize = 3;

/// nftables refused a request: which one, the error it gave, and the kernel's own words
/// (extended acknowledgement) when it gave any. Carried inside the `io::Error` that [`apply`]
/// and [`list_rules`] return, whose kind follows the error number.
#[derive(Debug)]
pub(crate) struct Refused {
    what: String,
    errno: i32,
    message: Option<String>,
}

impl Refused {
    /// The request, in nft's words.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// The error number (`ENOENT`, `EPERM`...).
    pub(crate) fn errno(&self) -> i32 {
        self.errno
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::Error::from_raw_os_error(self.errno).kind(), self)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nftables refused `{}`: {}", self.what, io::Error::from_raw_os_error(self.errno))?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// Applies `batch` to the nftables of the calling thread's network namespace, all of it or
/// (if one request fails) none of it, and waits for the kernel's answer to every request.
///
/// # Errors
/// The first request the kernel refused, as a [`Refused`] naming it (`add chain inet t c`)
/// inside an `io::Error` of the matching kind; or what failed opening the socket, sending, or
/// waiting for the answer.
pub(crate) fn apply(batch: &Batch) -> io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let socket = Socket::open()?;
    socket.send(&batch.encode(true))?;
    let end = batch.requests().len() as u32 + 1;
    let mut pending: BTreeMap<u32, String> =
        batch.requests().iter().map(|request| (request.seq, request.what.clone())).collect();
    pending.insert(0, "begin a batch (is nf_tables in the kernel?)".to_owned());
    pending.insert(end, "end a batch".to_owned());
    // Begin and end are answered only if refused.
    socket.acknowledged(pending, &[0, end])
}

/// The rules of `table` (of `chain` only, if given) in the calling thread's network
/// namespace, in chain order (`nft list table` / `nft list chain`).
///
/// # Errors
/// A [`Refused`] inside an `io::Error` (`ENOENT` for a table or chain that does not exist);
/// or what failed opening the socket, sending, or waiting for the answer.
pub(crate) fn list_rules(family: Family, table: &str, chain: Option<&str>) -> io::Result<Vec<RuleDump>> {
    let what = match chain {
        Some(chain) => format!("list chain {family} {table} {chain}"),
        None => format!("list table {family} {table}"),
    };
    let exists = dump::exists_request(family, table, chain, 1)?;
    let request = dump::request(family, table, chain, 2)?;
    let socket = Socket::open()?;
    socket.send(&exists)?;
    socket.acknowledged(BTreeMap::from([(1, what.clone())]), &[])?;
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    for _ in 0..DUMP_ATTEMPTS {
        socket.send(&request)?;
        let mut rules = Vec::new();
        let mut interrupted = false;
        'dump: loop {
            let len = socket.receive(&mut buffer, || what.clone())?;
            for message in messages(&buffer[..len]) {
                interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
                match message.kind {
                    NLMSG_DONE => break 'dump,
                    NLMSG_ERROR => match message.error() {
                        Some((0, _)) | None => {}
                        Some((errno, text)) => return Err(Refused { what, errno, message: text }.into_io()),
                    },
                    kind if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => {
                        rules.extend(dump::parse_rule(message.payload));
                    }
                    _ => {}
                }
            }
        }
        if !interrupted {
            return Ok(rules);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        format!("{what}: the rules kept changing during {DUMP_ATTEMPTS} dumps"),
    ))
}

/// A `NETLINK_NETFILTER` socket of the calling thread's network namespace.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        let context = |step: &'static str| move |errno: nix::Error| os_error(errno, step);
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(context("opening a NETLINK_NETFILTER socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(context("binding a NETLINK_NETFILTER socket"))?;
        let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(context("setting SO_RCVTIMEO"))?;
        // Errors name the kernel's reason where it gives one, and echo only the failed
        // request's header. Both are optional: a kernel without them answers without them.
        let _ = set_netlink_option(&fd, NETLINK_EXT_ACK);
        let _ = set_netlink_option(&fd, NETLINK_CAP_ACK);
        Ok(Socket(fd))
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = send(self.0.as_raw_fd(), bytes, MsgFlags::empty())
            .map_err(|errno| os_error(errno, "sending to nftables"))?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!(
                "sending to nftables: {sent} of {} bytes sent",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Waits until the kernel has acknowledged every request of `pending` (sequence number →
    /// what it asks, in nft's words) but those of `optional`, which it answers only to refuse.
    fn acknowledged(&self, mut pending: BTreeMap<u32, String>, optional: &[u32]) -> io::Result<()> {
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        while let Some((_, first)) = pending.iter().find(|(seq, _)| !optional.contains(seq)) {
            let first = first.clone();
            let len = self.receive(&mut buffer, || first)?;
            for message in messages(&buffer[..len]) {
                let Some((errno, text)) = message.error() else { continue };
                let what = pending.remove(&message.seq).unwrap_or_default();
                if errno != 0 {
                    return Err(Refused { what, errno, message: text }.into_io());
                }
            }
        }
        Ok(())
    }

    /// One datagram from the kernel; `waiting_for` names what it should answer, for the
    /// timeout's message.
    fn receive(&self, buffer: &mut [u8], waiting_for: impl FnOnce() -> String) -> io::Result<usize> {
        match recv(self.0.as_raw_fd(), buffer, MsgFlags::empty()) {
            Ok(len) => Ok(len),
            Err(nix::errno::Errno::EAGAIN) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nftables did not answer `{}` within {ANSWER_TIMEOUT:?}", waiting_for()),
            )),
            Err(errno) => Err(os_error(errno, "receiving from nftables")),
        }
    }
}

/// An error number with what was being done, keeping the number's kind.
fn os_error(errno: nix::errno::Errno, what: &str) -> io::Error {
    io::Error::new(io::Error::from(errno).kind(), format!("{what}: {errno}"))
}

/// Sets a boolean `SOL_NETLINK` option, which nix has no wrapper for.
fn set_netlink_option(fd: &impl AsFd, option: i32) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket borrowed for the call, and the option value is a live
    // c_int whose size is passed with it.
    let result = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            SOL_NETLINK,
            option,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A netlink message of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// What follows the `nlmsghdr`.
    pub(crate) payload: &'a [u8],
}

impl Message<'_> {
    /// For an `NLMSG_ERROR`, the error number (0 for an acknowledgement) and the kernel's
    /// message (`NLMSGERR_ATTR_MSG`) if it sent one.
    pub(crate) fn error(&self) -> Option<(i32, Option<String>)> {
        if self.kind != NLMSG_ERROR {
            return None;
        }
        let code = i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?);
        // The failed request's header follows, then its payload unless the error is capped,
        // then the extended acknowledgement's attributes.
        let echoed = self.payload.get(4..4 + NLMSG_HDRLEN)?;
        let echoed_len = u32::from_ne_bytes(echoed[..4].try_into().ok()?) as usize;
        let skip = if self.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            attr::align(echoed_len.max(NLMSG_HDRLEN))
        };
        let text = (self.flags & NLM_F_ACK_TLVS != 0)
            .then(|| self.payload.get(4 + skip..))
            .flatten()
            .and_then(|tlvs| attr::find(tlvs, NLMSGERR_ATTR_MSG))
            .map(attr::string);
        Some((code.saturating_neg(), text))
    }
}

/// The messages of a datagram, up to the first that does not fit.
pub(crate) fn messages(bytes: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let header = rest.get(..NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes(header[..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return None;
        }
        let message = Message {
            kind: u16::from_ne_bytes([header[4], header[5]]),
            flags: u16::from_ne_bytes([header[6], header[7]]),
            seq: u32::from_ne_bytes(header[8..12].try_into().ok()?),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        rest = rest.get(attr::align(len)..).unwrap_or(&[]);
        Some(message)
    })
}
