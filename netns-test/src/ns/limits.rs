//! Per-user namespace limits: when `unshare` fails with `ENOSPC`, which limit was reached and
//! how to raise it.

use std::io;

use crate::error::Error;

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
