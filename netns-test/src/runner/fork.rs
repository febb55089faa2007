//! The code that runs between `fork` and `exec`, in the child of a multi-threaded parent.
//!
//! Read it by one rule: **only raw system calls, on memory prepared before `fork`.** The child
//! is a copy of one thread of a process whose other threads may have held the allocator's or
//! any other lock at the moment of the fork, and nothing will ever release them: nothing here
//! allocates, takes a lock, formats text, panics or calls into the standard library beyond
//! `libc` (no `std::io` writes, no `Vec`, no `String`; errors are `io::Error::last_os_error()`
//! and `from_raw_os_error`, which allocate nothing). Everything the code needs ([`PreExec`]:
//! descriptor numbers, namespace flags, the uid and gid maps as bytes) is built in
//! [`spawn`](super::spawn::spawn) before the fork; paths are C string literals; buffers are on
//! the stack. A failing step writes a two-byte marker to the report pipe and returns the
//! error, which `Command::spawn` carries back to the parent.
//!
//! The same rule holds for the two processes that entering the PID namespace leaves behind
//! (the supervisor and the PID 1 init; only the init where the fork server made the PID
//! namespace itself, [`PreExec::run_as_init`]): they never `exec` and never return; they wait
//! (`waitpid`), pass one wait status on a pipe, and `_exit`.

use crate::ns::userns::write_file;
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use super::spawn::Step;

/// Everything `pre_exec` needs, prepared before `fork` so that nothing allocates after it.
pub(super) struct PreExec {
    /// The PID of the parent, to notice that it died before `PR_SET_PDEATHSIG` took hold.
    pub(super) parent: libc::pid_t,
    /// The report pipe, where a failing step writes its marker.
    pub(super) report_fd: RawFd,
    /// The descriptors the child keeps across `exec` (made inheritable here).
    pub(super) inherit: [RawFd; 3],
    /// The `unshare` flags.
    pub(super) flags: libc::c_int,
    /// `uid_map` and `gid_map` contents for rootless mode.
    pub(super) maps: Option<(Vec<u8>, Vec<u8>)>,
}

impl PreExec {
    /// Runs in the child between `fork` and `exec`.
    pub(super) fn run(&self) -> io::Result<()> {
        self.steps(None)
    }

    /// Runs in a child of the fork server that is already the init (PID 1) of a PID namespace
    /// the server made for it (root mode; see `server::Forker`): the same steps as [`run`]
    /// without a PID namespace of its own, then the init's part, which reports the test's wait
    /// status on `status_fd` to the server. The calling process goes on as the test, PID 2.
    /// `server_fd` is the server's pidfd: the parent's PID reads 0 from inside the namespace.
    ///
    /// [`run`]: PreExec::run
    pub(super) fn run_as_init(&self, status_fd: RawFd, server_fd: RawFd) -> io::Result<()> {
        self.steps(Some((status_fd, server_fd)))
    }

    /// The steps of [`run`](PreExec::run), or of [`run_as_init`](PreExec::run_as_init) with
    /// the init's status pipe and the server's pidfd.
    fn steps(&self, as_init: Option<(RawFd, RawFd)>) -> io::Result<()> {
        // SAFETY: only async-signal-safe system calls on memory prepared before fork.
        unsafe {
            if libc::setpgid(0, 0) != 0 {
                return Err(self.fail(Step::ProcessGroup));
            }
            // The child dies with the thread that started it, whatever kills that thread.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(self.fail(Step::ParentDeath));
            }
            let parent_gone = match as_init {
                None => libc::getppid() != self.parent,
                Some((_, server_fd)) => {
                    let mut poll = libc::pollfd { fd: server_fd, events: libc::POLLIN, revents: 0 };
                    let gone = libc::poll(&mut poll, 1, 0) != 0;
                    libc::close(server_fd);
                    gone
                }
            };
            if parent_gone {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            for fd in self.inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(self.fail(Step::Inherit));
                }
            }
            let flags = match as_init {
                None => self.flags,
                // Rootless children make their own PID namespace (see `server::Forker`).
                Some(_) if self.maps.is_some() => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
                Some(_) => self.flags & !libc::CLONE_NEWPID,
            };
            if libc::unshare(flags) != 0 {
                return Err(self.fail(Step::Unshare));
            }
            if let Some((uid_map, gid_map)) = &self.maps {
                if !write_file(c"/proc/self/setgroups", b"deny") {
                    return Err(self.fail(Step::Setgroups));
                }
                if !write_file(c"/proc/self/uid_map", uid_map) {
                    return Err(self.fail(Step::UidMap));
                }
                if !write_file(c"/proc/self/gid_map", gid_map) {
                    return Err(self.fail(Step::GidMap));
                }
            }
            // Mounts made by the test (the generated hosts file) must never propagate back to
            // the host's mount namespace.
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(self.fail(Step::MountPrivate));
            }
            match as_init {
                None => self.enter_pid_namespace(),
                Some((status_fd, _)) => self.fork_the_test(status_fd),
            }
        }
    }

    /// In the init the server made: forks the test, PID 2, which returns; the init stays in
    /// [`init`] and reports the test's wait status on `status_fd`.
    ///
    /// # Safety
    /// Only between `fork` and `exec`, in that init.
    unsafe fn fork_the_test(&self, status_fd: RawFd) -> io::Result<()> {
        // SAFETY: raw system calls; the init branch never returns.
        unsafe {
            let init_fd = pidfd_of_self();
            let test_pid = fork_raw();
            if test_pid < 0 {
                return Err(self.fail(Step::Init));
            }
            if test_pid > 0 {
                init(test_pid, status_fd);
            }
            die_with_parent(init_fd);
            libc::close(status_fd);
        }
        Ok(())
    }

    /// Records which step failed on the report pipe and returns the error.
    fn fail(&self, step: Step) -> io::Error {
        let error = io::Error::last_os_error();
        let marker = [b'!', step as u8];
        // SAFETY: write(2) on a descriptor we own, from a buffer on the stack.
        unsafe {
            libc::write(self.report_fd, marker.as_ptr().cast(), marker.len());
        }
        error
    }

    /// Puts the process that will `exec` into the new PID namespace, as PID 2 under a tiny
    /// init.
    ///
    /// `unshare(CLONE_NEWPID)` only moves the caller's future children, and a process whose
    /// children go to another PID namespace cannot start threads (`EINVAL`), so the test must
    /// be a child. Three processes result:
    /// - this one stays in the parent's PID namespace as the supervisor: it ignores SIGTERM
    ///   (a timeout's SIGTERM is for the test), waits for the init and exits exactly as the
    ///   test did, so the parent sees the test's own exit status or signal;
    /// - the init, PID 1: it reaps orphans (daemons that programs in nodes forked) and reports
    ///   the test's wait status to the supervisor through a pipe. When it exits, the kernel
    ///   kills everything left in the namespace;
    /// - the test, PID 2, with ordinary signal semantics (unlike PID 1, which ignores signals it
    ///   has no handler for, `raise` included).
    ///
    /// Each dies with its parent (`PR_SET_PDEATHSIG`), so killing the parent, or just the
    /// supervisor, ends everything.
    ///
    /// # Safety
    /// Only between `fork` and `exec`.
    unsafe fn enter_pid_namespace(&self) -> io::Result<()> {
        // SAFETY: raw system calls on stack memory; the supervisor and init branches never
        // return (see `supervise` and `init`).
        unsafe {
            let mut status_pipe = [0 as libc::c_int; 2];
            if libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(self.fail(Step::Init));
            }
            let supervisor = pidfd_of_self();
            let init_pid = fork_raw();
            if init_pid < 0 {
                return Err(self.fail(Step::Init));
            }
            if init_pid > 0 {
                supervise(init_pid, status_pipe[0]);
            }
            // The init, PID 1 of the new namespace.
            die_with_parent(supervisor);
            let init_fd = pidfd_of_self();
            let test_pid = fork_raw();
            if test_pid < 0 {
                return Err(self.fail(Step::Init));
            }
            if test_pid > 0 {
                init(test_pid, status_pipe[1]);
            }
            // The test, PID 2: it goes on to exec.
            die_with_parent(init_fd);
            libc::close(status_pipe[0]);
            libc::close(status_pipe[1]);
        }
        Ok(())
    }
}

/// The `pre_exec` of `sudo` in sudo mode: a session of its own, so that sudo finds no
/// controlling terminal and runs the command without a pseudo-terminal (which would relay the
/// child's channels through pipes of its own), and so that a timeout's signal reaches sudo's
/// whole process group. `setsid` is one raw system call.
pub(super) fn before_sudo() -> io::Result<()> {
    // SAFETY: setsid(2) takes no arguments.
    if unsafe { libc::setsid() } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A pidfd for process `pid`, or -1 where the kernel has none (before 5.3). A raw system call
/// on no memory: safe here, and used by the parent too.
pub(super) fn pidfd_open(pid: libc::pid_t) -> libc::c_int {
    // SAFETY: pidfd_open(2) takes no memory arguments.
    unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int }
}

/// A pidfd for the calling process, or -1 where the kernel has none.
fn pidfd_of_self() -> libc::c_int {
    // SAFETY: getpid(2) takes no arguments.
    pidfd_open(unsafe { libc::getpid() })
}

/// A fork that skips libc's atfork handlers (a raw clone without `CLONE_VM`): they must not run
/// in a child of a multi-threaded process.
///
/// # Safety
/// Only between `fork` and `exec`.
unsafe fn fork_raw() -> libc::pid_t {
    // SAFETY: clone(2) with only SIGCHLD behaves as fork(2).
    unsafe {
        libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
            as libc::pid_t
    }
}

/// Arranges SIGKILL when the parent (known by `parent_fd`, its pidfd) exits, and exits at once
/// if it already has.
///
/// # Safety
/// Raw system calls only.
unsafe fn die_with_parent(parent_fd: libc::c_int) {
    // SAFETY: prctl and poll on stack memory.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if parent_fd >= 0 {
            let mut poll = libc::pollfd { fd: parent_fd, events: libc::POLLIN, revents: 0 };
            if libc::poll(&mut poll, 1, 0) != 0 {
                libc::_exit(1);
            }
            libc::close(parent_fd);
        }
    }
}

/// Closes every descriptor but `keep`, so that end of file on the parent's pipes marks the
/// end of the test process itself.
///
/// # Safety
/// Raw system calls only; `keep` must be a valid descriptor number.
unsafe fn close_all_but(keep: libc::c_int) {
    /// close_range(2), or a loop over the low descriptors on kernels before 5.9.
    ///
    /// # Safety
    /// Raw system calls only.
    unsafe fn close_range(first: u32, last: u32) {
        // SAFETY: close_range(2) and close(2) on descriptor numbers.
        unsafe {
            if libc::syscall(libc::SYS_close_range, first, last, 0u32) != 0 {
                for fd in first..=last.min(4095) {
                    libc::close(fd as libc::c_int);
                }
            }
        }
    }
    let keep = keep as u32;
    // SAFETY: forwarded to the caller.
    unsafe {
        if keep > 0 {
            close_range(0, keep - 1);
        }
        close_range(keep + 1, u32::MAX);
    }
}

/// PID 1 of the test's namespace: reaps every child, and when the test ends, writes its wait
/// status to the supervisor and exits (which kills whatever is left in the namespace).
///
/// # Safety
/// Only in the init branch of `enter_pid_namespace`.
unsafe fn init(test_pid: libc::pid_t, status_fd: libc::c_int) -> ! {
    // SAFETY: raw system calls only.
    unsafe {
        let name: &CStr = c"netns-test-init";
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        close_all_but(status_fd);
        let mut status: libc::c_int = 0;
        loop {
            let waited = libc::waitpid(-1, &mut status, 0);
            if waited == test_pid {
                break;
            }
            if waited < 0 && *libc::__errno_location() != libc::EINTR {
                status = 127 << 8;
                break;
            }
        }
        let bytes = status.to_ne_bytes();
        libc::write(status_fd, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0);
    }
}

/// The supervisor between the parent and the namespace: waits for the init and exits the way
/// the test did (re-raising the signal that killed it).
///
/// # Safety
/// Only in the supervisor branch of `enter_pid_namespace`.
unsafe fn supervise(init_pid: libc::pid_t, status_fd: libc::c_int) -> ! {
    // SAFETY: raw system calls only.
    unsafe {
        let name: &CStr = c"netns-test-sup";
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        // A timeout's SIGTERM is meant for the test; SIGKILL still ends this process.
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        close_all_but(status_fd);
        let mut init_status: libc::c_int = 0;
        while libc::waitpid(init_pid, &mut init_status, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
        let mut bytes = [0u8; 4];
        let read = libc::read(status_fd, bytes.as_mut_ptr().cast(), bytes.len());
        if read != bytes.len() as isize {
            // The init died without reporting: it was killed (SIGKILL from the parent).
            libc::_exit(128 + libc::SIGKILL);
        }
        let status = libc::c_int::from_ne_bytes(bytes);
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let signal = libc::WTERMSIG(status);
        // Die of the same signal, without a core dump of this process.
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
}
