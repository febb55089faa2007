//! The rootless probe: does a user namespace of this user really work here?
//!
//! Creating one is not enough. Ubuntu 23.10 and later (AppArmor's
//! `kernel.apparmor_restrict_unprivileged_userns=1`, GitHub's `ubuntu-24.04` runners) let
//! `unshare(CLONE_NEWUSER)` succeed and then deny every capability inside, so tools fail late,
//! on `setgroups` or netlink. The probe does in a forked process what a rootless test does:
//! create the user namespace, write `setgroups` and the uid and gid maps, create a network
//! namespace, and set its `lo` up over netlink. The first step that fails, and its error, is the
//! verdict.
//!
//! The forked process runs between `fork` and `_exit` in a copy of a multi-threaded process,
//! under the rule of `runner/fork.rs`: raw system calls on memory prepared before the fork.

use std::fmt;

use nix::errno::Errno;

/// The steps of the probe, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeStep {
    /// `unshare(CLONE_NEWUSER)`.
    CreateUserNs,
    /// Writing `deny` to `/proc/self/setgroups`.
    Setgroups,
    /// Writing `/proc/self/uid_map`.
    UidMap,
    /// Writing `/proc/self/gid_map`.
    GidMap,
    /// `unshare(CLONE_NEWNET)` inside the user namespace.
    CreateNetNs,
    /// Opening a netlink socket in it.
    NetlinkSocket,
    /// Setting `lo` up over netlink (`RTM_NEWLINK`), which needs `CAP_NET_ADMIN` there.
    NetlinkSetUp,
}

const STEPS: [ProbeStep; 7] = [
    ProbeStep::CreateUserNs,
    ProbeStep::Setgroups,
    ProbeStep::UidMap,
    ProbeStep::GidMap,
    ProbeStep::CreateNetNs,
    ProbeStep::NetlinkSocket,
    ProbeStep::NetlinkSetUp,
];

impl fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeStep::CreateUserNs => "unshare(CLONE_NEWUSER)",
            ProbeStep::Setgroups => "writing /proc/self/setgroups in the new user namespace",
            ProbeStep::UidMap => "writing /proc/self/uid_map",
            ProbeStep::GidMap => "writing /proc/self/gid_map",
            ProbeStep::CreateNetNs => "unshare(CLONE_NEWNET) inside the user namespace",
            ProbeStep::NetlinkSocket => "opening a netlink socket inside it",
            ProbeStep::NetlinkSetUp => "setting lo up over netlink inside it (CAP_NET_ADMIN)",
        })
    }
}

/// What the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rootless {
    /// Every step worked: rootless mode works.
    Works,
    /// The user namespace could not be created.
    Refused(Errno),
    /// The user namespace was created, then `step` failed: capabilities inside it are denied
    /// (AppArmor's restriction, or a seccomp profile), or something else broke.
    FailedInside(ProbeStep, Errno),
    /// The probe itself could not run (fork or pipe failed).
    NotProbed(Errno),
}

/// Runs the probe in a forked process. `simulate_caps_denied` drops every capability right
/// after the user namespace is created, which is what AppArmor's restriction amounts to: the
/// following steps then fail as they do there.
pub(crate) fn probe(simulate_caps_denied: bool) -> Rootless {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let uid_map = format!("0 {uid} 1\n").into_bytes();
    let gid_map = format!("0 {gid} 1\n").into_bytes();
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) into a local array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Rootless::NotProbed(Errno::last());
    }
    // SAFETY: clone(2) with only SIGCHLD behaves as fork(2); the child runs `probe_child`,
    // raw system calls only, and never returns.
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    } as libc::pid_t;
    if pid == 0 {
        // SAFETY: in the forked child; see `probe_child`.
        unsafe { probe_child(pipe[1], &uid_map, &gid_map, simulate_caps_denied) }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(pipe[1]) };
    if pid < 0 {
        let errno = Errno::last();
        // SAFETY: closing the read end.
        unsafe { libc::close(pipe[0]) };
        return Rootless::NotProbed(errno);
    }
    let mut result = [0u8; 8];
    // SAFETY: read(2) into a local buffer; the child has written or exited.
    let read = unsafe { libc::read(pipe[0], result.as_mut_ptr().cast(), result.len()) };
    // SAFETY: closing the read end and reaping the child.
    unsafe {
        libc::close(pipe[0]);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 && Errno::last() == Errno::EINTR {}
    }
    if read != 8 {
        return Rootless::NotProbed(Errno::EPIPE);
    }
    let step = u32::from_ne_bytes(result[..4].try_into().expect("4 bytes"));
    let errno = Errno::from_raw(i32::from_ne_bytes(result[4..].try_into().expect("4 bytes")));
    match STEPS.get(step as usize) {
        None => Rootless::Works,
        Some(ProbeStep::CreateUserNs) => Rootless::Refused(errno),
        Some(step) => Rootless::FailedInside(*step, errno),
    }
}

/// The forked child: every step, then one result (`step index, errno`; an index past the
/// steps means all worked) on `out`, then `_exit`.
///
/// # Safety
/// Only in the child of the fork in `probe`.
unsafe fn probe_child(out: libc::c_int, uid_map: &[u8], gid_map: &[u8], caps_denied: bool) -> ! {
    // SAFETY: raw system calls on memory prepared before the fork and on the stack.
    unsafe {
        let report = |step: usize, errno: i32| -> ! {
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&(step as u32).to_ne_bytes());
            bytes[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(out, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        };
        let errno = || *libc::__errno_location();
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            report(0, errno());
        }
        if caps_denied {
            // capset(2) to nothing: effective, permitted and inheritable emptied.
            let mut header = [0x2008_0522u32, 0];
            let data = [0u32; 6];
            libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr());
        }
        if !write_file(c"/proc/self/setgroups", b"deny") {
            report(1, errno());
        }
        if !write_file(c"/proc/self/uid_map", uid_map) {
            report(2, errno());
        }
        if !write_file(c"/proc/self/gid_map", gid_map) {
            report(3, errno());
        }
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            report(4, errno());
        }
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE);
        if fd < 0 {
            report(5, errno());
        }
        // RTM_NEWLINK for ifindex 1 (lo in a new namespace) with IFF_UP, asking for an ack:
        // nlmsghdr (len, type, flags, seq, pid) then ifinfomsg (family, type, index, flags,
        // change).
        let mut request = [0u8; 32];
        request[0..4].copy_from_slice(&32u32.to_ne_bytes());
        request[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
        request[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        request[8..12].copy_from_slice(&1u32.to_ne_bytes());
        request[20..24].copy_from_slice(&1i32.to_ne_bytes());
        request[24..28].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        request[28..32].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        if libc::send(fd, request.as_ptr().cast(), request.len(), 0) != request.len() as isize {
            report(6, errno());
        }
        let mut reply = [0u8; 256];
        let got = libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0);
        if got < 20 {
            report(6, if got < 0 { errno() } else { libc::EPROTO });
        }
        // An NLMSG_ERROR message; its error field is 0 for an ack, else a negative errno.
        let error = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if error != 0 {
            report(6, -error);
        }
        report(STEPS.len(), 0)
    }
}

/// `open` + `write` + `close`, allocation-free.
///
/// # Safety
/// Raw system calls only.
pub(crate) unsafe fn write_file(path: &std::ffi::CStr, contents: &[u8]) -> bool {
    // SAFETY: raw system calls on a NUL-terminated path and a borrowed buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let written = libc::write(fd, contents.as_ptr().cast(), contents.len());
        libc::close(fd);
        written == contents.len() as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine allows user namespaces (the rootless run of `cargo xtask ci` shows it).
    #[test]
    fn the_probe_works_here() {
        assert_eq!(probe(false), Rootless::Works);
    }

    /// The simulation of AppArmor's restriction: the user namespace is created, and the first
    /// step that needs a capability inside it fails with "Permission denied", as on Ubuntu 24.04.
    #[test]
    fn denied_capabilities_are_recognised() {
        assert_eq!(probe(true), Rootless::FailedInside(ProbeStep::Setgroups, Errno::EACCES));
    }
}
