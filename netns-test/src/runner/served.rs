//! The parent's side of the fork server ([`super::server`]): starting it once, asking it for
//! a test's child, and watching that child through the test's socket.
//!
//! Whatever the server cannot do for a test (it did not start, it died, it does not know the
//! test's name, the environment is too big for a request) goes the direct path instead, as if
//! there were no server: [`spawn`] returns `None` before anything of the test ran.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::Mode;
use super::server::{REQUEST_LIMIT, Request, send};
use super::spawn::{Release, Spawned, io_error, spawn_error};
use crate::error::Error;
use crate::settings::{Settings, internal};

/// How long the parent waits for a new server to say it is ready before it gives up on it.
const HELLO_LIMIT: Duration = Duration::from_secs(10);

/// Whether a test's child goes through the fork server: `NETNS_TEST_FORK_SERVER` if set;
/// otherwise yes unless the harness was asked for `--exact` names, which is how nextest runs
/// each test (one per process) and how one test is run by name: there a server would cost an
/// `exec` of its own and save nothing.
pub(super) fn wanted(settings: &Settings) -> bool {
    settings.fork_server.unwrap_or_else(|| !std::env::args_os().any(|arg| arg == "--exact"))
}

/// The parent's socket to its server.
struct Client {
    control: OwnedFd,
}

/// Set once the server has gone: every later test takes the direct path.
static GONE: AtomicBool = AtomicBool::new(false);

fn client() -> Option<&'static Client> {
    static CLIENT: OnceLock<Option<Client>> = OnceLock::new();
    CLIENT.get_or_init(start).as_ref().filter(|_| !GONE.load(Ordering::Relaxed))
}

/// Starts the server, from a thread of its own that lives as long as this process: the
/// server's death signal follows the thread that started it, and a test's thread ends with
/// its test.
fn start() -> Option<Client> {
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ok()?;
    let (started, on_start) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("netns-test-fork-server".into()).spawn(move || {
        let theirs_raw = theirs.as_raw_fd();
        // SAFETY: getpid(2) takes no arguments.
        let parent = unsafe { libc::getpid() };
        let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(&exe)
            .env(internal::SERVER, theirs_raw.to_string())
            .env_remove(internal::CHILD)
            .env_remove(internal::FDS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: raw system calls on values copied before the fork (see `fork.rs`).
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(theirs_raw, libc::F_SETFD, 0) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command.spawn();
        drop(theirs);
        let Ok(mut child) = child else {
            let _ = started.send(false);
            return;
        };
        let _ = started.send(true);
        let _ = child.wait();
        GONE.store(true, Ordering::Relaxed);
    });
    if spawned.is_err() || on_start.recv() != Ok(true) {
        return None;
    }
    let mut hello = [0u8; 1];
    let ready = wait_readable(ours.as_fd(), HELLO_LIMIT)
        // SAFETY: recv(2) into a buffer on the stack.
        && unsafe { libc::recv(ours.as_raw_fd(), hello.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) } == 1
        && hello[0] == b'H';
    // A server that did not say hello is killed when `ours` closes (it sees end of file).
    ready.then_some(Client { control: ours })
}

fn wait_readable(fd: BorrowedFd<'_>, limit: Duration) -> bool {
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    let timeout =
        nix::poll::PollTimeout::try_from(limit.as_millis() as i32).unwrap_or(nix::poll::PollTimeout::MAX);
    matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0)
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

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Asks the server for the child of test `key` in `mode` (root or rootless). `Ok(None)`: take
/// the direct path (nothing of the test has run).
pub(super) fn spawn(key: &str, mode: Mode) -> Result<Option<Spawned>, Error> {
    let Some(client) = client() else { return Ok(None) };
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
    if send(client.control.as_raw_fd(), &request, &fds).is_err() {
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
            let message = [b'K', signal as u8];
            // SAFETY: send(2) from a buffer on the stack; a server gone is no signal here.
            unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    message.as_ptr().cast(),
                    message.len(),
                    libc::MSG_NOSIGNAL,
                );
            }
        }
    }
}
