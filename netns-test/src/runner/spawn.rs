//! Starting the child: re-executing the current binary in fresh namespaces.
//!
//! The namespaces are made in `pre_exec`, between `fork` and `exec`, where the child is still
//! single-threaded: `unshare(CLONE_NEWUSER)` is only allowed there, and the whole process
//! (`/proc/self/net` included) ends up inside. That code is in [`super::fork`], under its own
//! rules; this file builds the `Command` and everything it needs before the fork, and turns a
//! failed start into an error.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::fork::PreExec;
use super::served::Served;
use super::{Mode, probe_hint};
use crate::error::Error;
use crate::settings::internal;

/// A started child and the parent's ends of its pipes.
pub(crate) struct Spawned {
    pub(crate) process: Process,
    pub(crate) status: File,
    pub(crate) release: Option<Release>,
    pub(crate) stdout: File,
    pub(crate) stderr: File,
    pub(crate) mode: Mode,
}

/// The steps of `pre_exec` that can fail, reported to the parent as `!<step>` on the status pipe
/// (the error value alone would not say which step it came from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Step {
    ProcessGroup = b'g',
    ParentDeath = b'd',
    Inherit = b'i',
    Unshare = b'u',
    Setgroups = b's',
    UidMap = b'm',
    GidMap = b'n',
    MountPrivate = b'p',
    Init = b'c',
}

impl Step {
    fn from_byte(byte: u8) -> Option<Step> {
        [
            Step::ProcessGroup,
            Step::ParentDeath,
            Step::Inherit,
            Step::Unshare,
            Step::Setgroups,
            Step::UidMap,
            Step::GidMap,
            Step::MountPrivate,
            Step::Init,
        ]
        .into_iter()
        .find(|step| *step as u8 == byte)
    }

    fn describe(self, mode: Mode) -> &'static str {
        match self {
            Step::ProcessGroup => "setpgid(0, 0)",
            Step::ParentDeath => "prctl(PR_SET_PDEATHSIG)",
            Step::Inherit => "passing the report pipes to the child",
            Step::Unshare => match mode {
                Mode::Root | Mode::Sudo => {
                    "unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID)"
                }
                Mode::Rootless => {
                    "unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID)"
                }
            },
            Step::Setgroups => "writing /proc/self/setgroups",
            Step::UidMap => "writing /proc/self/uid_map",
            Step::GidMap => "writing /proc/self/gid_map",
            Step::MountPrivate => "making the child's mounts private (mount --make-rprivate /)",
            Step::Init => "starting the test process in its PID namespace (clone)",
        }
    }
}

/// A pipe whose ends close on `exec`.
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((read, write))
}

/// The child's process as the parent sees it: its own child (the direct path), or one the
/// fork server started for it.
pub(crate) enum Process {
    Direct(Child),
    Served(Served),
}

impl Process {
    /// The PID of the child (its supervisor), which leads its process group.
    pub(crate) fn id(&self) -> i32 {
        match self {
            Process::Direct(child) => child.id() as i32,
            Process::Served(served) => served.id(),
        }
    }

    /// A descriptor that becomes readable when the child has exited, when the parent has one
    /// that is not a pidfd (which the caller opens for a direct child).
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Process::Direct(_) => None,
            Process::Served(served) => Some(served.exit_fd()),
        }
    }

    /// The exit status, if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        match self {
            Process::Direct(child) => child.try_wait().ok().flatten(),
            Process::Served(served) => served.try_wait(libc::MSG_DONTWAIT),
        }
    }

    /// Waits for the child to exit.
    pub(crate) fn wait(&mut self) -> Option<ExitStatus> {
        match self {
            Process::Direct(child) => child.wait().ok(),
            Process::Served(served) => served.wait(),
        }
    }

    /// Sends `signal` to the child's process group (the server does it for a child of its own,
    /// and only while the child has not been reaped).
    pub(crate) fn signal_group(&self, signal: Signal) {
        match self {
            Process::Direct(child) => {
                let _ = killpg(Pid::from_raw(child.id() as i32), signal);
            }
            Process::Served(served) => served.signal_group(signal),
        }
    }
}

/// The `unshare` flags of a child in `mode`.
pub(super) fn unshare_flags(mode: Mode) -> libc::c_int {
    let flags = libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWPID;
    if mode == Mode::Rootless { flags | libc::CLONE_NEWUSER } else { flags }
}

/// Starts `args` of the current executable as the child for `key`, in `mode`; through the
/// fork server when `fork_server` says so and the server can (root and rootless mode).
pub(crate) fn spawn(key: &str, args: &[OsString], mode: Mode, fork_server: bool) -> Result<Spawned, Error> {
    // A process started as the child for `key` that did not recognise itself as such must not
    // start another child: that would recurse until the kernel's namespace limits stop it.
    if internal::child_key().is_some_and(|marker| marker == key) {
        return Err(Error::io(
            format!("starting the child for `{key}` from a process that was itself started as that child"),
            io::Error::new(io::ErrorKind::InvalidInput, "refusing to recurse"),
        ));
    }
    if mode == Mode::Sudo {
        return super::sudo::spawn(key, args);
    }
    if fork_server {
        if let Some(spawned) = super::served::spawn(key, mode)? {
            return Ok(spawned);
        }
    }
    let (status_read, status_write) = pipe().map_err(io_error("creating the report pipe"))?;
    let (release_read, release_write) = pipe().map_err(io_error("creating the release pipe"))?;
    let (stdout_read, stdout_write) = pipe().map_err(io_error("creating the output pipe"))?;
    let ends = ChildEnds { status: status_write, release: release_read, stdout: stdout_write };
    let mut status = File::from(status_read);
    let mut child = match start(key, args, mode, ends, Stdio::piped()) {
        Ok(child) => child,
        Err(failed) => return Err(failed.into_error(&mut status)),
    };
    let stderr = File::from(OwnedFd::from(child.stderr.take().expect("stderr is piped")));
    Ok(Spawned {
        process: Process::Direct(child),
        status,
        release: Some(Release(File::from(release_write))),
        stdout: File::from(stdout_read),
        stderr,
        mode,
    })
}

pub(super) fn io_error(what: &str) -> impl FnOnce(io::Error) -> Error {
    let what = what.to_string();
    move |source| Error::io(what, source)
}

/// The child's ends of its channels to the parent: where it writes its reports, where it
/// waits for its release, and where its standard output goes.
pub(super) struct ChildEnds {
    pub(super) status: OwnedFd,
    pub(super) release: OwnedFd,
    pub(super) stdout: OwnedFd,
}

/// A spawn that failed: `Command::spawn`'s error, before the step is known.
pub(super) struct StartFailed {
    pub(super) source: io::Error,
    mode: Mode,
    flags: libc::c_int,
}

impl StartFailed {
    /// The error, named by the step the child wrote on the report pipe (read from its
    /// parent's end, `status`) before it failed.
    fn into_error(self, status: &mut File) -> Error {
        spawn_error(status, self.source, self.mode, self.flags)
    }
}

/// Starts the child for `key` in fresh namespaces (root or rootless) with `ends` as its
/// channels.
pub(super) fn start(
    key: &str,
    args: &[OsString],
    mode: Mode,
    ends: ChildEnds,
    stderr: Stdio,
) -> Result<Child, StartFailed> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let flags = unshare_flags(mode);
    let maps = match mode {
        Mode::Root | Mode::Sudo => None,
        Mode::Rootless => Some((format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes())),
    };
    let inherit = [ends.status.as_raw_fd(), ends.release.as_raw_fd(), ends.stdout.as_raw_fd()];
    let pre_exec = PreExec {
        parent: nix::unistd::getpid().as_raw(),
        report_fd: ends.status.as_raw_fd(),
        inherit,
        flags,
        maps,
    };

    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    // Executing /proc/self/exe works even when cargo has replaced the file on disk meanwhile.
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0(&exe)
        .args(args)
        .env(internal::CHILD, key)
        .env(internal::FDS, format!("{},{},{}", inherit[0], inherit[1], inherit[2]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: the closure only makes raw system calls on data prepared before fork (see
    // `fork.rs`), which is what `pre_exec` requires.
    unsafe {
        command.pre_exec(move || pre_exec.run());
    }
    let spawned = command.spawn();
    drop(ends);
    spawned.map_err(|source| StartFailed { source, mode, flags })
}

/// The parent's end of the release channel: dropping it releases a failed child. On a socket
/// (sudo mode, where one socket carries both the reports and the release) it shuts the
/// writing half down, since the reports' descriptor keeps the socket itself open.
pub(crate) struct Release(pub(super) File);

impl Drop for Release {
    fn drop(&mut self) {
        // On a pipe this fails with ENOTSOCK, and closing the descriptor does the work.
        let _ = nix::sys::socket::shutdown(self.0.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    }
}

/// Turns a failed spawn into an error that names the step and says how to fix it.
pub(super) fn spawn_error(status: &mut File, source: io::Error, mode: Mode, flags: libc::c_int) -> Error {
    let mut marker = [0u8; 2];
    // The child wrote its marker before failing; it has exited, so the read cannot block.
    let step = match status.read(&mut marker) {
        Ok(2) if marker[0] == b'!' => Step::from_byte(marker[1]),
        _ => None,
    };
    match step {
        // A namespace limit, not a permission: the permission advice would not help.
        Some(Step::Unshare) if source.raw_os_error() == Some(libc::ENOSPC) => crate::ns::limit_error(
            Step::Unshare.describe(mode).to_string(),
            flags,
            source,
            mode == Mode::Rootless,
        ),
        Some(step @ (Step::Unshare | Step::Setgroups | Step::UidMap | Step::GidMap | Step::MountPrivate)) => {
            Error::Isolation { step: step.describe(mode).to_string(), source, remedy: probe_hint(mode) }
        }
        Some(step) => {
            Error::io(format!("starting the test's child process: {}", step.describe(mode)), source)
        }
        None => Error::io("starting the test's child process", source),
    }
}

/// Takes ownership of a descriptor number passed in the environment.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process.
pub(crate) unsafe fn adopt_fd(fd: RawFd) -> File {
    // SAFETY: guaranteed by the caller.
    unsafe { File::from_raw_fd(fd) }
}
