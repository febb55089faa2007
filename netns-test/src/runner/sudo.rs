//! Sudo mode (`NETNS_TEST_MODE=sudo`): the test binary stays unprivileged, and only the
//! test's child is started through `sudo -n`.
//!
//! `sudo` closes every descriptor but the standard three, so the child's channels travel on
//! those: standard input is one Unix socket that carries both the reports (child to parent)
//! and the release (the parent shuts its writing half down), standard output is the output
//! pipe, standard error the error pipe. What sudo starts is the test binary again, as root:
//! the **elevated** process. It says so on the socket ([`Report::Elevated`]), starts the real
//! child in root mode with those channels (the same code as root mode), forwards a timeout's
//! signals to it, and when it has exited, hands the test's artifacts directory back to the
//! user who started the tests, then exits as the child did. A sudo that exits without the
//! report refused: [`refused`] is the error, with the sudoers line that allows it.
//!
//! sudo keeps the variables the child needs with `--preserve-env=LIST`
//! ([`internal::sudo_preserved`]), which sudoers allows with the `SETENV` tag (implied by a
//! rule for `ALL`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::protocol::{Failure, Report};
use super::spawn::{ChildEnds, Release, Spawned, io_error, start};
use super::{Mode, fork};
use crate::error::Error;
use crate::settings::{self, internal};

/// Starts `args` of the current executable through `sudo -n`, as the elevated process for
/// `key`.
pub(super) fn spawn(key: &str, args: &[OsString]) -> Result<Spawned, Error> {
    let (parent_end, child_end) = UnixStream::pair().map_err(io_error("creating the report socket"))?;
    let (stdout_read, stdout_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| Error::io("creating the output pipe", errno.into()))?;
    // sudo matches the program's real path against the sudoers rules, so this is that path.
    let exe = std::env::current_exe().map_err(io_error("finding the test binary's path for sudo"))?;
    let owner = format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid());
    let mut preserved = internal::sudo_preserved();
    preserved.extend([internal::CHILD.to_string(), internal::SUDO_OWNER.to_string()]);
    preserved.sort();
    preserved.dedup();
    let mut command = Command::new("sudo");
    command
        .arg("-n")
        .arg(format!("--preserve-env={}", preserved.join(",")))
        .arg("--")
        .arg(&exe)
        .args(args)
        .env(internal::CHILD, key)
        .env(internal::SUDO_OWNER, owner)
        .env_remove(internal::FDS)
        .stdin(Stdio::from(OwnedFd::from(child_end)))
        .stdout(Stdio::from(stdout_write))
        .stderr(Stdio::piped());
    // SAFETY: `before_sudo` makes one raw system call (see `fork.rs`).
    unsafe {
        command.pre_exec(fork::before_sudo);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(refused("sudo is not installed: there is no `sudo` in PATH"));
        }
        Err(error) => return Err(Error::io("starting `sudo -n` for the test's child", error)),
    };
    // The command holds the child's ends now; the parent keeps its own.
    drop(command);
    let stderr = File::from(OwnedFd::from(child.stderr.take().expect("stderr is piped")));
    let status = parent_end.try_clone().map_err(io_error("duplicating the report socket"))?;
    Ok(Spawned {
        process: super::spawn::Process::Direct(child),
        status: File::from(OwnedFd::from(status)),
        release: Some(Release(File::from(OwnedFd::from(parent_end)))),
        stdout: File::from(stdout_read),
        stderr,
        mode: Mode::Sudo,
    })
}

/// The error of a sudo that did not start the elevated process, with the sudoers line that
/// would allow it.
pub(super) fn refused(said: &str) -> Error {
    let said = said.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join("; ");
    let said = if said.is_empty() { "sudo exited without starting it".to_string() } else { said };
    Error::Sudo { said, remedy: remedy() }
}

/// The sudoers line for this user and the directory of this test binary.
pub(crate) fn sudoers_line(user: &str, binaries: &Path) -> String {
    format!("{user} ALL=(root) NOPASSWD:SETENV: {}/*", binaries.display())
}

fn remedy() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("#{}", nix::unistd::getuid()), |user| user.name);
    let binaries = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/path/to/target/debug/deps"));
    format!(
        "Allow {user} to start the test binaries as root without a password, with this line in \
         /etc/sudoers.d/netns-test (edit it with `sudo visudo -f /etc/sudoers.d/netns-test`):\n    \
         {line}\n\
         SETENV lets sudo keep the variables the child needs (--preserve-env). The line lets {user} \
         run any program in that directory as root, and {user} can write there: give it to CI users \
         and to users who may be root anyway. Or run the tests as root, or in rootless mode where \
         user namespaces are allowed (`cargo xtask doctor` says which modes work here).",
        line = sudoers_line(&user, &binaries)
    )
}

/// Whether this process was started by sudo for some key (and is not yet its child).
fn elevated_key() -> Option<(OsString, (u32, u32))> {
    let owner = internal::sudo_owner()?;
    // The child started from here has its descriptors in the environment; this process not.
    if internal::child_fds().is_some() {
        return None;
    }
    Some((internal::child_key()?, owner))
}

/// Whether this process is the elevated process of some `sandbox` call of this program.
pub(super) fn is_elevated_sandbox() -> bool {
    elevated_key().is_some_and(|(key, _)| key.to_str().is_some_and(|key| key.starts_with("sandbox#")))
}

/// In the process sudo started for `key`: runs the child and exits. Elsewhere, returns.
pub(super) fn elevate_if_asked(key: &str) {
    if let Some((marker, owner)) = elevated_key() {
        if marker == key {
            elevated(key, owner);
        }
    }
}

/// The child's process group, for the signal handler.
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let group = CHILD_GROUP.load(Ordering::Relaxed);
    if group > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// The elevated process: starts the child as root on the channels sudo kept (0, 1 and 2),
/// waits for it, hands its files back to `owner`, and exits as it did.
fn elevated(key: &str, owner: (u32, u32)) -> ! {
    // PR_SET_PDEATHSIG does not survive sudo's exec (a set-user-ID program): if sudo dies (a
    // timeout's SIGKILL), so does this process, and with it the child.
    // SAFETY: prctl(2) with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: sudo passed the report socket as standard input, and nothing else owns it.
    let mut channel = unsafe { File::from_raw_fd(libc::STDIN_FILENO) };
    let _ = Report::Elevated.write_to(&mut channel);
    let outcome = run_child(key, &channel);
    hand_over(key, owner);
    match outcome {
        Ok(status) => exit_like(status),
        Err(message) => {
            // A failed start may have left a step marker without a newline on the socket.
            let _ = channel.write_all(b"\n");
            let _ = Report::Failed(Failure::Setup { message }).write_to(&mut channel);
            std::process::exit(1);
        }
    }
}

fn run_child(key: &str, channel: &File) -> Result<ExitStatus, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(format!(
            "NETNS_TEST_MODE=sudo: sudo started the test's child as uid {}, not as root",
            nix::unistd::geteuid()
        ));
    }
    let dup = |what: &str, fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned().map_err(|error| format!("duplicating the {what}: {error}"))
    };
    let ends = ChildEnds {
        status: dup("report socket", channel.as_fd())?,
        release: dup("report socket", channel.as_fd())?,
        stdout: dup("output pipe", std::io::stdout().as_fd())?,
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut child = start(key, &args, Mode::Root, ends, Stdio::inherit())
        .map_err(|failed| format!("starting the test's child process as root: {}", failed.source))?;
    CHILD_GROUP.store(child.id() as i32, Ordering::Relaxed);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `forward` only calls kill(2), which is async-signal-safe.
        unsafe {
            libc::signal(signal, forward as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
    // The parent's death closes its end of the socket (POLLHUP): then the child must go too,
    // as in the other modes where it dies with the parent.
    let pidfd = fork::pidfd_open(child.id() as libc::pid_t);
    if pidfd >= 0 {
        // SAFETY: a fresh descriptor from pidfd_open that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        loop {
            let mut fds = [
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(channel.as_fd(), PollFlags::empty()),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let hung_up =
                fds[1].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
            if hung_up {
                forward(libc::SIGKILL);
                break;
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                break;
            }
        }
    }
    child.wait().map_err(|error| format!("waiting for the test's child process: {error}"))
}

/// Hands what the child wrote under the test's artifacts directory back to `owner`: the
/// directory, everything in it, and the artifacts root above it when root made it.
fn hand_over(key: &str, (uid, gid): (u32, u32)) {
    let Ok(settings) = settings::get() else {
        return;
    };
    let dir = crate::impair::backend::artifacts_dir(settings.artifacts.as_deref(), key);
    if let Some(base) = dir.parent() {
        chown_if_root(base, uid, gid);
    }
    chown_tree(&dir, uid, gid);
}

fn chown_if_root(path: &Path, uid: u32, gid: u32) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.uid() == 0) {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    chown_if_root(path, uid, gid);
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

/// Exits with the child's status, or dies of the signal that killed it (so that sudo, and
/// the parent behind it, see the same).
fn exit_like(status: ExitStatus) -> ! {
    let _ = std::io::stdout().flush();
    if let Some(signal) = status.signal() {
        // raise(3), not kill(2): a signal sent to the whole process may be taken by another
        // thread while this one goes on to exit with a status instead.
        // SAFETY: signal(2), sigprocmask(2) and raise(3) on a set on the stack.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sudoers_line_names_the_user_and_the_binaries() {
        assert_eq!(
            sudoers_line("alice", Path::new("/home/alice/p/target/debug/deps")),
            "alice ALL=(root) NOPASSWD:SETENV: /home/alice/p/target/debug/deps/*"
        );
    }

    #[test]
    fn what_sudo_said_is_in_the_error() {
        let text = refused("sudo: a password is required\n").to_string();
        assert!(text.contains("(sudo: a password is required)"), "{text}");
        assert!(text.contains("ALL=(root) NOPASSWD:SETENV: "), "{text}");
        assert!(refused("").to_string().contains("(sudo exited without starting it)"));
    }
}
