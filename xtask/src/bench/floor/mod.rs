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

mod sockets;

use std::fs::File;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns_test::__private::{self as library, Settings};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use self::sockets::{Request, Rtnl, await_carrier, echo, icmp_socket, nl};
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

/// How the cycle gets its privileges, as the library decides it (its settings read
/// `NETNS_TEST_MODE`, else root when the effective user is root).
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
    fn of(settings: &Settings) -> Mode {
        match settings.mode() {
            // Sudo mode's child is root; the floor runs in-process, so it measures root's work.
            library::Mode::Root | library::Mode::Sudo => Mode::Root,
            library::Mode::Rootless => {
                Mode::Rootless { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
            }
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

/// Runs `cycles` floor cycles split over `processes` processes of their own ([`run`] each, from
/// a thread of this one) running at the same time, one cycle after the other inside each, and
/// returns the longest of their loops: the time in which every CPU doing the kernel work alone
/// gets through them, timed as [`run`]'s loop is (without the processes' own starts), the
/// ceiling of any runner's parallel throughput on this machine.
pub(crate) fn run_parallel(cycles: usize, processes: usize) -> Result<Duration> {
    let processes = processes.clamp(1, cycles.max(1));
    // The cycles shared out as evenly as they go: the first processes take one more.
    let share = |index: usize| cycles / processes + usize::from(index < cycles % processes);
    let loops = std::thread::scope(|scope| {
        let running: Vec<_> = (0..processes).map(|index| scope.spawn(move || run(share(index)))).collect();
        running
            .into_iter()
            .map(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<Result<Vec<Cycles>>>()
    })?;
    Ok(loops.iter().map(|each| each.total).max().unwrap_or_default())
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
    // The library's settings, with its grammar and its errors for a bad value.
    let settings = library::settings().map_err(|error| error.to_string())?;
    let mode = Mode::of(settings);
    let trace = settings.trace;
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

#[cfg(test)]
mod tests {
    use super::*;

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
