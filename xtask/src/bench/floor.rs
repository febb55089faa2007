//! The floor: the kernel work of one seed test done in-process by a minimal program with no
//! framework, so that the other benchmarks can be read as ratios to it, measured in the same
//! run.
//!
//! One cycle: fork; in the child, `unshare(CLONE_NEWNET)` for the local side (in rootless mode
//! together with `CLONE_NEWUSER`, and the uid and gid maps written), a second
//! `unshare(CLONE_NEWNET)` for the peer and `setns` back, one veth pair made by one netlink
//! request with the peer end created in place in the peer namespace (`IFLA_NET_NS_FD`),
//! 1.1.1.2/24 and 1.1.1.1/24, `lo` and both ends up, the carrier of both ends awaited on link
//! notifications (never a sleep), one ICMP echo each way on raw sockets, exit; the parent
//! waits for the child. A cycle is timed from just before the fork to just after the wait.
//! Namespaces are held by file descriptor and socket only: the kernel removes them (in the
//! background, as for a test) when the child exits, and nothing touches the root namespace.
//!
//! With `NETNS_TEST_TRACE=1`, as for the library, each cycle prints its steps on standard
//! error, in milliseconds since the fork, to be read beside the library's trace.
//!
//! The cycles run one after the other in a process of their own (`cargo xtask floor-cycles
//! N`): that process is single-threaded, so its forked child may allocate and use the standard
//! library freely.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::util::{Result, render};

/// The local end's address (`veth0` in the child's own namespace) and the peer's (`veth1`).
const LOCAL: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
/// Interface indexes as the library plans them: distinct for the two ends, since the kernel
/// treats a link event of a veth whose index equals its peer's as not urgent and delays it by
/// up to a second. `lo` is 1 in every namespace.
const LOOPBACK_INDEX: u32 = 1;
const LOCAL_INDEX: u32 = 2;
const PEER_INDEX: u32 = 3;
/// How long one netlink answer, the carrier or one echo reply may take before the cycle fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Netlink numbers from `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`,
/// `linux/veth.h`, `linux/if_addr.h` and `linux/icmp.h`; the libc crate lacks most of them.
mod nl {
    pub(super) const HEADER: usize = 16;
    pub(super) const NLMSG_ERROR: u16 = 2;
    pub(super) const RTM_NEWLINK: u16 = 16;
    pub(super) const RTM_GETLINK: u16 = 18;
    pub(super) const RTM_NEWADDR: u16 = 20;
    pub(super) const NLM_F_REQUEST: u16 = 0x1;
    pub(super) const NLM_F_ACK: u16 = 0x4;
    pub(super) const NLM_F_EXCL: u16 = 0x200;
    pub(super) const NLM_F_CREATE: u16 = 0x400;
    pub(super) const RTMGRP_LINK: u32 = 1;
    pub(super) const IFLA_IFNAME: u16 = 3;
    pub(super) const IFLA_OPERSTATE: u16 = 16;
    pub(super) const IFLA_LINKINFO: u16 = 18;
    pub(super) const IFLA_NET_NS_FD: u16 = 28;
    pub(super) const IFLA_INFO_KIND: u16 = 1;
    pub(super) const IFLA_INFO_DATA: u16 = 2;
    pub(super) const VETH_INFO_PEER: u16 = 1;
    pub(super) const IFA_ADDRESS: u16 = 1;
    pub(super) const IFA_LOCAL: u16 = 2;
    pub(super) const IF_OPER_UP: u8 = 6;
    /// The attribute type without the nested and byte-order flags.
    pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;
    pub(super) const ICMP_FILTER: libc::c_int = 1;
    pub(super) const ICMP_ECHOREPLY: u8 = 0;
    pub(super) const ICMP_ECHO: u8 = 8;
}

/// How the cycle gets its privileges, as the library decides it: `NETNS_TEST_MODE=root|rootless`,
/// else root when the effective user is root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Root,
    /// A new user namespace per cycle, in which the child is root (uid and gid maps written).
    Rootless {
        uid: u32,
        gid: u32,
    },
}

impl Mode {
    fn detect() -> Mode {
        let rootless =
            Mode::Rootless { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() };
        match std::env::var("NETNS_TEST_MODE").as_deref() {
            Ok("rootless") => rootless,
            Ok("root") => Mode::Root,
            _ if nix::unistd::geteuid().is_root() => Mode::Root,
            _ => rootless,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Root => "root",
            Mode::Rootless { .. } => "rootless",
        }
    }
}

/// The times of some floor cycles run one after the other.
pub(crate) struct Cycles {
    /// Each cycle, fork to wait.
    pub(crate) each: Vec<Duration>,
    /// The whole loop: the sum of the cycles and the little between them.
    pub(crate) total: Duration,
    /// `root` or `rootless`.
    pub(crate) mode: String,
}

/// Runs `cycles` floor cycles in a process of their own (this program's `floor-cycles`), one
/// after the other, and returns their times.
pub(crate) fn run(cycles: usize) -> Result<Cycles> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the xtask binary: {e}"))?;
    let mut command = Command::new(exe);
    command.args(["floor-cycles", &cycles.to_string()]).stdin(Stdio::null()).stderr(Stdio::inherit());
    let output = command.output().map_err(|e| format!("cannot run {}: {e}", render(&command)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed: {}", render(&command), output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse(&text).ok_or_else(|| format!("unexpected output of `{}`:\n{text}", render(&command)))
}

/// Reads [`serve`]'s output: `mode <name>`, one line of nanoseconds per cycle, `total <ns>`.
fn parse(text: &str) -> Option<Cycles> {
    let mut lines = text.lines();
    let mode = lines.next()?.strip_prefix("mode ")?.to_string();
    let (mut each, mut total) = (Vec::new(), None);
    for line in lines {
        match line.strip_prefix("total ") {
            Some(ns) => total = Some(Duration::from_nanos(ns.parse().ok()?)),
            None => each.push(Duration::from_nanos(line.parse().ok()?)),
        }
    }
    Some(Cycles { each, total: total?, mode })
}

/// `cargo xtask floor-cycles N`: runs `cycles` cycles one after the other and prints their
/// times (see [`parse`]). Must run in a single-threaded process.
pub(crate) fn serve(cycles: usize) -> Result {
    // A forked child of a multi-threaded process may only make async-signal-safe calls, and
    // the child's part of a cycle allocates.
    let threads =
        std::fs::read_dir("/proc/self/task").map_err(|e| format!("reading /proc/self/task: {e}"))?.count();
    if threads != 1 {
        return Err(format!(
            "the floor must run in a single-threaded process; this one has {threads} threads"
        ));
    }
    let mode = Mode::detect();
    let trace = std::env::var_os("NETNS_TEST_TRACE").is_some_and(|value| value != "0");
    let mut each = Vec::new();
    let started = Instant::now();
    for _ in 0..cycles {
        each.push(cycle(mode, trace)?);
    }
    let total = started.elapsed();
    let mut text = format!("mode {}\n", mode.name());
    for time in each {
        text.push_str(&format!("{}\n", time.as_nanos()));
    }
    text.push_str(&format!("total {}\n", total.as_nanos()));
    io::stdout().write_all(text.as_bytes()).map_err(|e| format!("writing the floor's times: {e}"))
}

/// The steps of a cycle on standard error when tracing, in milliseconds since the fork.
#[derive(Clone, Copy)]
struct Trace(Option<Instant>);

impl Trace {
    fn mark(self, step: &str) {
        if let Some(start) = self.0 {
            eprintln!("floor: {:>8.3} ms  {step}", start.elapsed().as_secs_f64() * 1e3);
        }
    }
}

/// One cycle, timed from just before the fork to just after the wait.
fn cycle(mode: Mode, trace: bool) -> Result<Duration> {
    let started = Instant::now();
    let trace = Trace(trace.then_some(started));
    // SAFETY: this process is single-threaded (see `serve`), so the child is a full copy of
    // it and may do anything the parent could; it ends with `_exit`, so it never returns into
    // the parent's code nor flushes the parent's buffers.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let code = match child(mode, trace) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("floor cycle ({}): {error}", mode.name());
                    1
                }
            };
            // SAFETY: `_exit` only ends the process.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
            WaitStatus::Exited(_, 0) => {
                let elapsed = started.elapsed();
                trace.mark("child exited and reaped");
                Ok(elapsed)
            }
            status => Err(format!("a floor cycle failed ({status:?}); its error is above")),
        },
    }
}

/// The child's part of a cycle.
fn child(mode: Mode, trace: Trace) -> io::Result<()> {
    let step =
        |what: &'static str| move |error: io::Error| io::Error::new(error.kind(), format!("{what}: {error}"));
    match mode {
        Mode::Root => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| step("unshare(CLONE_NEWNET)")(e.into()))?
        }
        Mode::Rootless { uid, gid } => {
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
                .map_err(|e| step("unshare(CLONE_NEWUSER | CLONE_NEWNET)")(e.into()))?;
            std::fs::write("/proc/self/setgroups", "deny").map_err(step("writing /proc/self/setgroups"))?;
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n")).map_err(step("writing uid_map"))?;
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n")).map_err(step("writing gid_map"))?;
        }
    }
    // Sockets belong to the namespace they are made in, whichever namespace the process moves
    // to later: each side's are made while the process is in that side's namespace.
    let local_ns = File::open("/proc/self/ns/net").map_err(step("opening the local namespace"))?;
    let mut local = Rtnl::open(LOCAL_INDEX).map_err(step("opening netlink (local)"))?;
    let local_icmp = icmp_socket().map_err(step("opening a raw ICMP socket (local)"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| step("unshare(CLONE_NEWNET) for the peer")(e.into()))?;
    let peer_ns = File::open("/proc/self/ns/net").map_err(step("opening the peer namespace"))?;
    let mut peer = Rtnl::open(PEER_INDEX).map_err(step("opening netlink (peer)"))?;
    let peer_icmp = icmp_socket().map_err(step("opening a raw ICMP socket (peer)"))?;
    setns(local_ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| step("setns back to the local side")(e.into()))?;
    trace.mark("both namespaces made, their sockets open");

    local
        .request(Request::link(nl::RTM_NEWLINK, 0, LOOPBACK_INDEX, true))
        .map_err(step("ip link set lo up"))?;
    local.request(veth(&peer_ns)).map_err(step("ip link add veth0 up type veth peer veth1 netns <peer>"))?;
    trace.mark("lo up, veth pair created");
    local
        .request(Request::address(LOCAL_INDEX, LOCAL, 24))
        .map_err(step("ip addr add 1.1.1.2/24 dev veth0"))?;
    peer.request(Request::link(nl::RTM_NEWLINK, 0, LOOPBACK_INDEX, true))
        .map_err(step("ip link set lo up (peer)"))?;
    peer.request(Request::address(PEER_INDEX, PEER, 24)).map_err(step("ip addr add 1.1.1.1/24 dev veth1"))?;
    peer.request(Request::link(nl::RTM_NEWLINK, 0, PEER_INDEX, true))
        .map_err(step("ip link set veth1 up"))?;
    trace.mark("addresses added, lo and veth1 up in the peer");
    await_carrier(&mut local, &mut peer).map_err(step("waiting for the carrier"))?;
    trace.mark("carrier on both ends");
    echo(&local_icmp, PEER, 1).map_err(step("ping 1.1.1.1 from the local side"))?;
    echo(&peer_icmp, LOCAL, 2).map_err(step("ping 1.1.1.2 from the peer"))?;
    trace.mark("one echo each way");
    Ok(())
}

/// `ip link add veth0 up type veth peer name veth1 netns <peer>`, indexes fixed: both ends in
/// one request, the peer end created in place in its namespace. The peer end cannot be created
/// up (the kernel refuses with `ENOTCONN`); it is set up through its own namespace.
fn veth(peer_ns: &File) -> Request {
    let mut request = Request::link(nl::RTM_NEWLINK, nl::NLM_F_CREATE | nl::NLM_F_EXCL, LOCAL_INDEX, true);
    request.attr(nl::IFLA_IFNAME, b"veth0\0");
    let info = request.begin(nl::IFLA_LINKINFO);
    request.attr(nl::IFLA_INFO_KIND, b"veth");
    let data = request.begin(nl::IFLA_INFO_DATA);
    let peer = request.begin(nl::VETH_INFO_PEER);
    request.ifinfo(PEER_INDEX, false);
    request.attr(nl::IFLA_IFNAME, b"veth1\0");
    request.attr(nl::IFLA_NET_NS_FD, &(peer_ns.as_raw_fd() as u32).to_ne_bytes());
    request.end(peer);
    request.end(data);
    request.end(info);
    request
}

/// One netlink request being built: header, fixed part, attributes (all 4-byte aligned).
struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        // Length and sequence number are filled in when sent; the kernel needs no port id.
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | nl::NLM_F_REQUEST | nl::NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        Request { buf }
    }

    /// A link request (`struct ifinfomsg`) for link `index`, setting it up when `up`.
    fn link(kind: u16, flags: u16, index: u32, up: bool) -> Self {
        let mut request = Request::new(kind, flags);
        request.ifinfo(index, up);
        request
    }

    /// `ip addr add <addr>/<prefix> dev <index>` (`struct ifaddrmsg` and attributes).
    fn address(index: u32, addr: Ipv4Addr, prefix: u8) -> Self {
        let mut request = Request::new(nl::RTM_NEWADDR, nl::NLM_F_CREATE | nl::NLM_F_EXCL);
        request.buf.extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
        request.buf.extend_from_slice(&index.to_ne_bytes());
        request.attr(nl::IFA_LOCAL, &addr.octets());
        request.attr(nl::IFA_ADDRESS, &addr.octets());
        request
    }

    /// A `struct ifinfomsg`: family, padding, type, index, flags, change mask.
    fn ifinfo(&mut self, index: u32, up: bool) {
        let up = if up { libc::IFF_UP as u32 } else { 0 };
        self.buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&up.to_ne_bytes());
        self.buf.extend_from_slice(&up.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let start = self.begin(kind);
        self.buf.extend_from_slice(payload);
        self.end(start);
    }

    /// Starts an attribute (nested ones are closed by [`end`](Self::end) in reverse order).
    fn begin(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        start
    }

    fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// A `NETLINK_ROUTE` socket of one namespace, subscribed to its link notifications, and what
/// they last said about the one link the cycle waits for.
struct Rtnl {
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
    fn open(watch: u32) -> io::Result<Self> {
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
    fn request(&mut self, mut request: Request) -> io::Result<()> {
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
fn await_carrier(a: &mut Rtnl, b: &mut Rtnl) -> io::Result<()> {
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
fn icmp_socket() -> io::Result<Socket> {
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
fn echo(socket: &Socket, to: Ipv4Addr, id: u16) -> io::Result<()> {
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

    #[test]
    fn requests_are_aligned_netlink_messages() {
        let mut request = Request::address(2, LOCAL, 24);
        let bytes = request.finish(7).to_vec();
        // Header (16) + ifaddrmsg (8) + two 8-byte IPv4 attributes.
        assert_eq!(bytes.len(), 40);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 40);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        assert_eq!(&bytes[24..32], &[8, 0, 2, 0, 1, 1, 1, 2]);
        // Nested attributes: each level's length covers what it holds, padding included.
        let file = File::open("/dev/null").unwrap();
        let mut veth = veth(&file);
        let bytes = veth.finish(1).to_vec();
        assert_eq!(bytes.len() % 4, 0);
        let linkinfo = 16 + 16 + 12;
        assert_eq!(u16::from_ne_bytes([bytes[linkinfo + 2], bytes[linkinfo + 3]]), nl::IFLA_LINKINFO);
        assert_eq!(
            usize::from(u16::from_ne_bytes([bytes[linkinfo], bytes[linkinfo + 1]])),
            bytes.len() - linkinfo
        );
    }

    #[test]
    fn reads_its_own_output() {
        let cycles = parse("mode root\n1500000\n1600000\ntotal 3200000\n").unwrap();
        assert_eq!(cycles.each, [Duration::from_micros(1500), Duration::from_micros(1600)]);
        assert_eq!(cycles.total, Duration::from_micros(3200));
        assert_eq!(cycles.mode, "root");
        assert!(parse("1500000\ntotal 1\n").is_none());
        assert!(parse("mode root\n1500000\n").is_none());
    }
}
