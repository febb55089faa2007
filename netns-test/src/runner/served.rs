//! The parent's side of the fork server ([`super::server`]): forking it once, before `main`,
//! asking it for a test's child, and watching that child through the test's socket.
//!
//! Whatever the server cannot do for a test (it did not start, it died, it does not know the
//! test's name, the environment is too big for a request) goes the direct path instead, as if
//! there were no server: [`spawn`] returns `None` before anything of the test ran.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::Mode;
use super::server::{REQUEST_LIMIT, Request, send};
use super::spawn::{Release, Spawned, io_error, pipe, spawn_error};
use crate::error::Error;
use crate::settings::{Settings, internal};

/// Whether a test's child goes through the fork server: `NETNS_TEST_FORK_SERVER` if set,
/// otherwise yes (whenever the server runs).
pub(super) fn wanted(settings: &Settings) -> bool {
    settings.fork_server.unwrap_or(true)
}

/// The parent's socket to its server, or -1 when it has none.
static CONTROL: AtomicI32 = AtomicI32::new(-1);

/// Set once the server has gone: every later test takes the direct path.
static GONE: AtomicBool = AtomicBool::new(false);

fn control() -> Option<RawFd> {
    let control = CONTROL.load(Ordering::Relaxed);
    (control >= 0 && !GONE.load(Ordering::Relaxed)).then_some(control)
}

/// Forks the server, in the first test constructor of a process of the test binary that the
/// runner did not start (see [`crate::__private::run_child_early`]): before `main`, when the
/// process is still single-threaded, so the fork is a complete copy with every test registered
/// and needs no `exec`. No server is forked where the harness's arguments select no
/// `#[netns_test]` (filters that match none, `--list`, how nextest asks for the tests), nor with
/// `NETNS_TEST_FORK_SERVER=0` or `NETNS_TEST_MODE=sudo`, nor in a process that the runner
/// started for some key (sudo mode's elevated process); any other process of the binary pays
/// for the fork and an idle server even when it runs plain tests only.
pub(crate) fn start_early() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::Relaxed)
        || internal::child_key().is_some()
        || internal::fork_server_refused()
    {
        return;
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") || !super::server::may_run_a_test(&args) {
        return;
    }
    let ahead = super::server::default_topology_tests(&args);
    let Ok((ours, theirs)) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
    else {
        return;
    };
    // SAFETY: getpid(2) takes no arguments.
    let parent = unsafe { libc::getpid() };
    // SAFETY: this process has one thread (the constructors run before `main`), so the copy
    // may go on as any process would; it never returns from `serve`.
    match unsafe { libc::fork() } {
        0 => {
            drop(ours);
            super::server::serve_forked(theirs, parent, ahead)
        }
        pid if pid > 0 => {
            drop(theirs);
            CONTROL.store(ours.into_raw_fd(), Ordering::Relaxed);
        }
        _ => {}
    }
}

/// One message from the test's socket: its first byte and the `i32` after it (0 if none), or
/// `None` at end of file (the server has gone).
fn receive(socket: RawFd, flags: libc::c_int) -> io::Result<Option<(u8, i32)>> {
    let mut message = [0u8; 5];
    loop {
        // SAFETY: recv(2) into a buffer on the stack.
        let read = unsafe { libc::recv(socket, message.as_mut_ptr().cast(), message.len(), flags) };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if read == 0 {
            return Ok(None);
        }
        let value =
            if read == 5 { i32::from_ne_bytes([message[1], message[2], message[3], message[4]]) } else { 0 };
        return Ok(Some((message[0], value)));
    }
}

/// Asks the server for the child of test `key` in `mode` (root or rootless). `Ok(None)`: take
/// the direct path (nothing of the test has run).
pub(super) fn spawn(key: &str, mode: Mode) -> Result<Option<Spawned>, Error> {
    let Some(control) = control() else { return Ok(None) };
    let cwd =
        std::env::current_dir().map_err(io_error("reading the working directory for the test's child"))?;
    let request = Request {
        key: OsString::from(key),
        rootless: mode == Mode::Rootless,
        cwd: cwd.into_os_string(),
        env: internal::environment(),
    }
    .encode();
    if request.len() > REQUEST_LIMIT {
        return Ok(None);
    }
    let (status_read, status_write) = pipe().map_err(io_error("creating the report pipe"))?;
    let (release_read, release_write) = pipe().map_err(io_error("creating the release pipe"))?;
    let (stdout_read, stdout_write) = pipe().map_err(io_error("creating the output pipe"))?;
    let (stderr_read, stderr_write) = pipe().map_err(io_error("creating the error pipe"))?;
    let (socket, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|errno| Error::io("creating the test's socket to the fork server", errno.into()))?;
    let fds = [&theirs, &status_write, &release_read, &stdout_write, &stderr_write].map(AsRawFd::as_raw_fd);
    if send(control, &request, &fds).is_err() {
        GONE.store(true, Ordering::Relaxed);
        return Ok(None);
    }
    drop((theirs, status_write, release_read, stdout_write, stderr_write));
    let mut status = File::from(status_read);
    let (mut pid, mut exit, mut running) = (None, None, false);
    while pid.is_none() || !(running || exit.is_some()) {
        match receive(socket.as_raw_fd(), 0) {
            Ok(Some((b'P', value))) => pid = Some(value),
            Ok(Some((b'R', _))) => running = true,
            Ok(Some((b'S', value))) => exit = Some(ExitStatus::from_raw(value)),
            Ok(Some((b'N', _))) => return Ok(None),
            Ok(Some((b'E', errno))) => {
                let flags = super::spawn::unshare_flags(mode);
                return Err(spawn_error(&mut status, io::Error::from_raw_os_error(errno), mode, flags));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                // The server has gone before the test ran: the direct path starts it afresh.
                GONE.store(true, Ordering::Relaxed);
                return Ok(None);
            }
        }
    }
    let pid = pid.expect("the loop ends with a PID");
    if !running {
        return Err(Error::io(
            "starting the test's child process through the fork server",
            io::Error::other(format!("it ended before it ran the test ({})", exit.expect("checked"))),
        ));
    }
    Ok(Some(Spawned {
        process: super::spawn::Process::Served(Served { pid, socket, exit: None }),
        status,
        release: Some(Release(File::from(release_write))),
        stdout: File::from(stdout_read),
        stderr: File::from(stderr_read),
        mode,
    }))
}

/// A test's child started by the server: its supervisor's PID, and the test's socket, on which
/// the server sends its wait status and takes the timeout's signals.
pub(crate) struct Served {
    pid: i32,
    socket: OwnedFd,
    exit: Option<ExitStatus>,
}

impl Served {
    pub(super) fn id(&self) -> i32 {
        self.pid
    }

    /// The descriptor that becomes readable when the child has exited.
    pub(super) fn exit_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The child's wait status once the server has reaped it. A server that has gone killed
    /// its children: that is SIGKILL.
    pub(super) fn try_wait(&mut self, flags: libc::c_int) -> Option<ExitStatus> {
        while self.exit.is_none() {
            match receive(self.socket.as_raw_fd(), flags) {
                Ok(Some((b'S', value))) => self.exit = Some(ExitStatus::from_raw(value)),
                Ok(Some(_)) => {}
                Ok(None) => self.exit = Some(ExitStatus::from_raw(libc::SIGKILL)),
                Err(_) => break,
            }
        }
        self.exit
    }

    /// Waits for the child's wait status.
    pub(super) fn wait(&mut self) -> Option<ExitStatus> {
        self.try_wait(0)
    }

    /// Has the server send `signal` to the child's process group, unless it has exited.
    pub(super) fn signal_group(&self, signal: nix::sys::signal::Signal) {
        if self.exit.is_none() {
            // A server gone is no signal here.
            super::server::tell(self.socket.as_raw_fd(), &[b'K', signal as u8]);
        }
    }
}
