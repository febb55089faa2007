//! Namespaces held by file descriptor, and moving threads into them.
//!
//! A namespace lives as long as something refers to it: a process inside it or an open file
//! descriptor. netns-test only ever holds descriptors (never a `/run/netns` bind mount), so
//! when the test process dies, however it dies, its namespaces go with it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::thread;

use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, Result};

/// The namespaces of one node: its network namespace and, when the node has its own hostname,
/// its UTS namespace.
#[derive(Debug)]
pub(crate) struct NsFds {
    pub(crate) net: OwnedFd,
    pub(crate) uts: Option<OwnedFd>,
}

impl NsFds {
    /// The namespaces the calling thread is in now.
    pub(crate) fn of_current_thread(with_uts: bool) -> io::Result<Self> {
        Ok(NsFds {
            net: open_thread_ns("net")?,
            uts: if with_uts { Some(open_thread_ns("uts")?) } else { None },
        })
    }

    /// Moves the calling thread into these namespaces. Only this thread moves: other threads
    /// and the process as a whole stay where they are.
    pub(crate) fn enter(&self) -> io::Result<()> {
        setns(self.net.as_fd(), CloneFlags::CLONE_NEWNET)?;
        if let Some(uts) = &self.uts {
            setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS)?;
        }
        Ok(())
    }

    /// The raw descriptors, for code that runs between `fork` and `exec` where nothing may
    /// allocate.
    pub(crate) fn raw(&self) -> (RawFd, Option<RawFd>) {
        (self.net.as_raw_fd(), self.uts.as_ref().map(|fd| fd.as_raw_fd()))
    }
}

/// Opens `/proc/thread-self/ns/<kind>`: the namespace of the calling thread, which after a
/// per-thread `unshare` or `setns` differs from `/proc/self/ns/<kind>`.
fn open_thread_ns(kind: &str) -> io::Result<OwnedFd> {
    let file = File::open(format!("/proc/thread-self/ns/{kind}"))?;
    Ok(file.into())
}

/// Writes a sysctl of the calling thread's network namespace (`/proc/sys/net` shows the
/// namespace of the thread that opens it).
pub(crate) fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
    file.write_all(value.as_bytes())
}

/// A namespace made by a worker thread: its request's index, and the namespace or the error.
type Made<T> = (usize, Result<(NsFds, T)>);

/// What each new namespace needs: a name for messages, whether it gets its own hostname.
pub(crate) struct NsRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) hostname: bool,
}

/// Creates one network namespace (and UTS namespace where asked) per request and runs `setup`
/// inside each, on a few short-lived threads, while the calling thread runs `meanwhile`.
///
/// Each worker thread `unshare`s again for every namespace it makes, so a hundred nodes cost a
/// couple of threads, not a hundred (thread pressure on small CI machines ends in `EAGAIN`).
pub(crate) fn create_namespaces<T, F, M, R>(
    requests: &[NsRequest<'_>],
    setup: F,
    meanwhile: M,
) -> Result<(Vec<(NsFds, T)>, R)>
where
    T: Send,
    F: Fn(usize, &NsFds) -> Result<T> + Sync,
    M: FnOnce() -> Result<R>,
{
    if requests.is_empty() {
        return Ok((Vec::new(), meanwhile()?));
    }
    let workers = requests.len().min(thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4));
    let setup = &setup;
    let mut here = None;
    let results: Vec<Vec<Made<T>>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                thread::Builder::new().name("netns-test-mkns".into()).spawn_scoped(scope, move || {
                    (worker..requests.len())
                        .step_by(workers)
                        .map(|index| (index, make_one(&requests[index], index, setup)))
                        .collect()
                })
            })
            .collect();
        here = Some(meanwhile());
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(error) => vec![(usize::MAX, Err(Error::io("starting a namespace thread", error)))],
            })
            .collect()
    });
    let mut slots: Vec<Option<(NsFds, T)>> = (0..requests.len()).map(|_| None).collect();
    for (index, result) in results.into_iter().flatten() {
        let made = result?;
        slots[index] = Some(made);
    }
    let made = slots.into_iter().map(|slot| slot.expect("every namespace request is handled")).collect();
    Ok((made, here.expect("ran inside the scope")?))
}

/// Sets `lo` of the calling thread's network namespace up (`ip link set lo up`), with an
/// ioctl on the spot rather than a netlink round trip through the control thread.
pub(crate) fn loopback_up() -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
    // SAFETY: an ifreq is plain data; the ioctls read and write only inside it.
    unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An offload of `ethtool -K` that [`set_offload`] changes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Offload {
    /// `tso`: TCP segmentation offload (`ETHTOOL_STSO`).
    Tso,
    /// `gro`: generic receive offload (`ETHTOOL_SGRO`).
    Gro,
}

/// Turns an offload of interface `ifname` of the calling thread's network namespace on or off
/// (`ethtool -K <ifname> tso|gro on|off`), with the `SIOCETHTOOL` ioctl on `socket`, a socket
/// made in that namespace.
pub(crate) fn set_offload(socket: &impl AsRawFd, ifname: &str, offload: Offload, on: bool) -> io::Result<()> {
    let command: u32 = match offload {
        Offload::Tso => 0x1f,
        Offload::Gro => 0x2c,
    };
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    // struct ethtool_value { u32 cmd; u32 data; }
    let mut value = [command, u32::from(on)];
    // SAFETY: an ifreq is plain data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(ifname.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
    // SAFETY: `request` names the interface and points at `value`, both alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn make_one<T, F>(request: &NsRequest<'_>, index: usize, setup: &F) -> Result<(NsFds, T)>
where
    F: Fn(usize, &NsFds) -> Result<T>,
{
    let mut flags = CloneFlags::CLONE_NEWNET;
    if request.hostname {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(|errno| {
        let step =
            format!("creating the namespace of node `{}` ({})", request.name, unshare_call(flags.bits()));
        match errno {
            nix::errno::Errno::ENOSPC => limit_error(step, flags.bits(), errno.into(), false),
            _ => Error::io(step, errno.into()),
        }
    })?;
    if request.hostname {
        nix::unistd::sethostname(request.name).map_err(|errno| {
            Error::io(format!("setting the hostname of node `{}`", request.name), errno.into())
        })?;
    }
    let fds = NsFds::of_current_thread(request.hostname)
        .map_err(|error| Error::io(format!("opening the namespace of node `{}`", request.name), error))?;
    let value = setup(index, &fds)?;
    Ok((fds, value))
}

/// The kinds of namespace netns-test makes, in the order the kernel creates them in one
/// `unshare`, each with its name in messages and the per-user limit it counts against
/// (`/proc/sys/user/<limit>`).
const KINDS: [(libc::c_int, &str, &str); 5] = [
    (libc::CLONE_NEWUSER, "user", "max_user_namespaces"),
    (libc::CLONE_NEWNS, "mount", "max_mnt_namespaces"),
    (libc::CLONE_NEWUTS, "UTS", "max_uts_namespaces"),
    (libc::CLONE_NEWPID, "PID", "max_pid_namespaces"),
    (libc::CLONE_NEWNET, "network", "max_net_namespaces"),
];

/// `unshare(CLONE_NEWNET | ...)` for `flags`, as messages write it.
pub(crate) fn unshare_call(flags: libc::c_int) -> String {
    let names: Vec<&str> = [
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags & flag != 0)
    .map(|(_, name)| name)
    .collect();
    format!("unshare({})", names.join(" | "))
}

/// The error for an `unshare` of `flags` that failed with `ENOSPC`: a per-user namespace
/// limit was reached. It names the limit and how to raise it, since running as root does not
/// lift it. `rootless`: the caller is unprivileged and makes its namespaces inside a new user
/// namespace (`flags` has `CLONE_NEWUSER`).
pub(crate) fn limit_error(step: String, flags: libc::c_int, source: io::Error, rootless: bool) -> Error {
    Error::Isolation { step, source, remedy: limit_remedy(flags, rootless) }
}

/// What to do about `ENOSPC` from an `unshare` of `flags`: the limit reached and how to raise it.
pub(crate) fn limit_remedy(flags: libc::c_int, rootless: bool) -> String {
    remedy_for(flags, reached_limit(flags), rootless)
}

/// The current value of a per-user namespace limit, as this process's user namespace has it.
fn limit_value(limit: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/user/{limit}"))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|_| "unreadable".to_string())
}

/// Which kind of namespace in `flags` the kernel refuses now, found by trying each alone (with
/// the user namespace first where `flags` has one, since that is where the others are then
/// counted) in a short-lived child that never executes anything. `None` when no single kind
/// fails any more (other processes may have ended theirs meanwhile).
fn reached_limit(flags: libc::c_int) -> Option<usize> {
    use std::os::unix::process::CommandExt;
    let user = flags & libc::CLONE_NEWUSER;
    KINDS.iter().position(|&(kind, _, _)| {
        if flags & kind == 0 {
            return false;
        }
        let attempt = user | kind;
        let mut command = std::process::Command::new("/");
        // SAFETY: unshare(2) and reading errno are async-signal-safe, and the closure always
        // fails, so the child exits before exec, and nothing else runs in it.
        unsafe {
            command.pre_exec(move || {
                if libc::unshare(attempt) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Err(io::Error::from_raw_os_error(libc::ECANCELED))
            });
        }
        command.spawn().map(drop).err().and_then(|error| error.raw_os_error()) == Some(libc::ENOSPC)
    })
}

/// The remedy for `ENOSPC` from an `unshare` of `flags`, given the kind found at its limit.
fn remedy_for(flags: libc::c_int, reached: Option<usize>, rootless: bool) -> String {
    match reached {
        Some(index) => {
            let (_, what, limit) = KINDS[index];
            let value = limit_value(limit);
            let mut text = format!(
                "The kernel limits how many {what} namespaces each user may hold, and that limit \
                 is reached: user.{limit} = {value} (/proc/sys/user/{limit}). Running as root does \
                 not lift it. Raise it, for example:\n    sudo sysctl -w user.{limit}=65536\n\
                 (inside a container or a user namespace, the limit may be set there or on the \
                 host), or end the processes that hold {what} namespaces."
            );
            if rootless && index == 0 {
                text.push_str(" Running as root also avoids it: root mode makes no user namespace.");
            }
            text
        }
        None => {
            let limits: Vec<String> = KINDS
                .iter()
                .filter(|(kind, _, _)| flags & kind != 0)
                .map(|(_, _, limit)| format!("user.{limit} = {}", limit_value(limit)))
                .collect();
            format!(
                "The kernel limits how many namespaces of each kind each user may hold, and one of \
                 these limits was reached (/proc/sys/user/; a container's or an enclosing user \
                 namespace's limit counts too): {}. Running as root does not lift them. Raise the \
                 one at its limit, for example `sudo sysctl -w user.max_net_namespaces=65536`, or \
                 end the processes that hold namespaces.",
                limits.join(", ")
            )
        }
    }
}
