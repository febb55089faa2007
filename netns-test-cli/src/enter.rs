//! Entering a node of a running lab from outside it, as `nsenter` would: the lab passes the
//! namespaces by descriptor (its user namespace when rootless, its mount namespace with the
//! node names' hosts file and its own `/proc`, its PID namespace, and the node's UTS and
//! network namespaces), and this process joins them before starting the program, which is
//! therefore a process of the lab: it dies with it.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::CliError;
use crate::control::{Reply, Request, ask};
use crate::registry;

/// Joins the namespaces of `node` of the lab `lab`. Must run while this process has a single
/// thread (the kernel allows joining a user namespace only then).
pub(crate) fn enter(lab: &str, node: &str) -> Result<(), CliError> {
    registry::require(lab)?;
    let socket = registry::entry_dir(lab)?.join("control.sock");
    let (reply, fds) = ask(&socket, &Request::Enter { node: node.to_string() })?;
    match reply {
        Reply::Enter if fds.len() == 5 => {}
        Reply::Error { message } => return Err(CliError::Lab(message)),
        other => return Err(CliError::Lab(format!("unexpected reply {other:?}"))),
    }
    let [user, mnt, pid, uts, net]: [OwnedFd; 5] = fds.try_into().expect("five checked");
    let cwd = std::env::current_dir().ok();
    // Root mode: the lab shares this process's user namespace, which cannot be joined again.
    let own_user = std::fs::metadata("/proc/self/ns/user").map(|m| m.ino()).ok();
    let lab_user = std::fs::File::from(user.try_clone().map_err(|e| CliError::io("duplicating", e))?)
        .metadata()
        .map(|m| m.ino())
        .ok();
    if own_user != lab_user {
        join(&user, libc::CLONE_NEWUSER, "user")?;
    }
    join(&mnt, libc::CLONE_NEWNS, "mount")?;
    join(&pid, libc::CLONE_NEWPID, "PID")?;
    join(&uts, libc::CLONE_NEWUTS, "UTS")?;
    join(&net, libc::CLONE_NEWNET, "network")?;
    // Joining a mount namespace moves to its root directory; the lab shares this machine's
    // files, so the directory the command was given in is there too.
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(())
}

fn join(fd: &OwnedFd, kind: libc::c_int, what: &str) -> Result<(), CliError> {
    // SAFETY: setns on a descriptor this function borrows; no memory is involved.
    if unsafe { libc::setns(fd.as_raw_fd(), kind) } != 0 {
        return Err(CliError::io(
            format!("joining the lab's {what} namespace"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Runs `program` with `args` in `node` of `lab` and returns its exit code (128 + the signal
/// for a program killed by one).
pub(crate) fn exec(lab: &str, node: &str, program: &OsString, args: &[OsString]) -> Result<i32, CliError> {
    enter(lab, node)?;
    // A new PID namespace applies to children only: the program is started, not executed.
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| CliError::io(format!("starting {}", program.to_string_lossy()), e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
