//! The child side: build the network, run the body, report, exit.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use super::protocol::{Failure, Ready, Report};
use super::spawn::adopt_fd;
use crate::error::{Result, panic_message};
use crate::network::Network;
use crate::settings::{self, internal};
use crate::topology::Topology;

/// What the parent handed to this child.
pub(crate) struct ChildContext {
    key: String,
    status: File,
    release: File,
    stdout: RawFd,
    /// `NETNS_TEST_KEEP_CAPTURES`, once the settings are read.
    keep_captures: bool,
    /// `NETNS_TEST_REPORT=always`: send the observations after a success too.
    report_always: bool,
}

/// Returns the context when this process is the child for `key`: the marker names `key` and
/// the process is PID 2 of its own PID namespace, under the init the parent started. (Programs
/// started in a node lose the marker and get other PIDs.)
pub(crate) fn context(key: &str) -> Option<ChildContext> {
    let started_as_child = nix::unistd::getpid().as_raw() == 2 && nix::unistd::getppid().as_raw() == 1;
    if internal::child_key()? != key || !started_as_child {
        return None;
    }
    let [status, release, stdout] = internal::child_fds()?;
    // SAFETY: the parent passed these descriptors for this process alone, and this function
    // runs once per child (it exits at the end of `run`).
    let (status, release) = unsafe { (adopt_fd(status), adopt_fd(release)) };
    Some(ChildContext {
        key: key.to_string(),
        status,
        release,
        stdout,
        keep_captures: false,
        report_always: false,
    })
}

/// Whether this process was started as a runner child for some key (the marker is set and the
/// process is PID 2 under the init of its own PID namespace), decided once per process: every
/// test's constructor asks ([`crate::__private::run_child_early`]) before `main`.
pub(crate) fn started_as_some_child() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    match STATE.load(Ordering::Relaxed) {
        NO => false,
        YES => true,
        _ => {
            let yes = internal::child_key().is_some()
                && nix::unistd::getpid().as_raw() == 2
                && nix::unistd::getppid().as_raw() == 1;
            STATE.store(if yes { YES } else { NO }, Ordering::Relaxed);
            yes
        }
    }
}

/// Whether this process is a sandbox child (started for some `sandbox` call of this program).
pub(crate) fn is_sandbox_child() -> bool {
    internal::child_key().is_some_and(|key| key.to_str().is_some_and(|key| key.starts_with("sandbox#")))
        && nix::unistd::getpid().as_raw() == 2
        && nix::unistd::getppid().as_raw() == 1
}

/// The network of this child, once built.
static NETWORK: OnceLock<Network> = OnceLock::new();

pub(crate) fn network() -> Option<&'static Network> {
    NETWORK.get()
}

/// The last panics seen by the hook: message, location and thread, so that the failure report
/// can say where the body panicked (a payload carries no location).
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn install_panic_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let message = panic_message(info.payload());
        let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        if let (Some(location), Ok(mut panics)) = (location, PANICS.lock()) {
            if panics.len() >= 16 {
                panics.remove(0);
            }
            panics.push((message, location));
        }
        previous(info);
    }));
}

/// What a test process does before its body, up to a built network: the panic hook, its own
/// `/proc`, the settings, the network. A spare process of the fork server does it before it
/// knows its test ([`build_ahead`]).
struct Prepared {
    /// This process's PID in the parent's PID namespace.
    pid: u32,
    settings: std::result::Result<&'static settings::Settings, String>,
    network: std::result::Result<Network, String>,
}

impl Prepared {
    fn new(key: &str, topology: impl FnOnce() -> Result<Topology>) -> Prepared {
        install_panic_hook();
        // The parent's /proc still shows this process under its PID outside (for the nsenter
        // hints); the test's own /proc, mounted next, knows it only as PID 2.
        let pid = pid_in_parent_namespace();
        // The parent read the same settings before starting this child, and would have failed
        // on a bad value; the child reads them for itself rather than trusting the environment
        // blind. Both steps run while the network's other namespaces are being made, or alone
        // when its topology cannot be made.
        let prepared = std::cell::Cell::new(false);
        let prepare = || {
            prepared.set(true);
            mount_own_proc();
            settings::get()
        };
        let network = topology()
            .and_then(|topology| Network::start(&topology, key, prepare))
            .map_err(|error| format!("{error:?}"));
        if !prepared.get() {
            let _ = prepare();
        }
        let settings = settings::get().map_err(|error| format!("{error:?}"));
        Prepared { pid, settings, network }
    }
}

/// The network built ahead in this spare process, until a test claims it.
static AHEAD: Mutex<Option<Prepared>> = Mutex::new(None);

/// In a spare process of the fork server (PID 2 of its fresh namespaces, its test not known
/// yet): builds the default topology ([`Topology::pair`]), for the first test on it that the
/// server hands this process. Only the default topology is built ahead: the server knows which
/// tests use it from their registration, and no other is known before the test is.
pub(crate) fn build_ahead() {
    // The key names the test in the directories of captures, which only links with
    // conditions have: the pair has none.
    let prepared = Prepared::new("", || Ok(Topology::pair()));
    if let Ok(mut ahead) = AHEAD.lock() {
        *ahead = Some(prepared);
    }
}

/// Builds the network (or takes the one built ahead, for a test on the default topology), runs
/// `body` in it and exits the process with the verdict. Never returns.
pub(crate) fn run(
    mut context: ChildContext,
    default_topology: bool,
    topology: impl FnOnce() -> Result<Topology>,
    body: impl FnOnce(&'static Network) -> std::result::Result<Option<String>, String>,
) -> ! {
    let ahead = AHEAD.lock().ok().and_then(|mut ahead| ahead.take());
    // From here on, standard output is the parent's pipe: what the test harness printed before
    // (its "running 1 test" banner) went to /dev/null.
    let _ = std::io::stdout().flush();
    // SAFETY: dup2 onto standard output of a descriptor the parent passed us; then close it.
    unsafe {
        libc::dup2(context.stdout, libc::STDOUT_FILENO);
        libc::close(context.stdout);
    }
    let prepared = match ahead {
        Some(prepared) if default_topology => {
            if let Ok(network) = &prepared.network {
                network.timeline().restart();
            }
            prepared
        }
        Some(_) => {
            // The server hands a spare only to a test registered on the default topology.
            let message =
                format!("test `{}` was handed a network built ahead for another topology", context.key);
            finish(&mut context, Err(Failure::Setup { message }))
        }
        None => Prepared::new(&context.key.clone(), topology),
    };
    let pid = prepared.pid;
    let settings = match prepared.settings {
        Ok(settings) => settings,
        Err(message) => finish(&mut context, Err(Failure::Setup { message })),
    };
    context.keep_captures = settings.keep_captures;
    context.report_always = settings.report_always;
    let network = match prepared.network {
        Ok(network) => network,
        Err(message) => finish(&mut context, Err(Failure::Setup { message })),
    };
    let nodes = network.namespaces();
    let network: &'static Network = NETWORK.get_or_init(|| network);
    let seed = network.random_seed();
    let captures = network.captures().iter().map(|path| path.display().to_string()).collect();
    let _ = Report::Ready(Ready { pid, nodes, seed, captures }).write_to(&mut context.status);

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(network)));
    let verdict = match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(Failure::Error { message }),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let location = PANICS
                .lock()
                .ok()
                .and_then(|panics| panics.iter().rev().find(|(m, _)| *m == message).map(|(_, l)| l.clone()));
            Err(Failure::Panic { message, location })
        }
    };
    let verdict = with_hook_panic(network, verdict);
    finish(&mut context, verdict)
}

/// The verdict, unless a per-packet hook panicked: then the test fails with the hook's panic
/// (its message and location), whatever the body did, since what the body saw after it is
/// not what the test meant to check.
fn with_hook_panic(
    network: &Network,
    verdict: std::result::Result<Option<String>, Failure>,
) -> std::result::Result<Option<String>, Failure> {
    let Some((raw, message)) = network.hook_panic() else { return verdict };
    let location = PANICS
        .lock()
        .ok()
        .and_then(|panics| panics.iter().rev().find(|(m, _)| *m == raw).map(|(_, l)| l.clone()));
    let message = match verdict {
        Ok(_) => message,
        Err(
            Failure::Panic { message: body, .. }
            | Failure::Error { message: body }
            | Failure::Setup { message: body },
        ) => {
            format!("{message}\n(the test body failed as well: {body})")
        }
    };
    Err(Failure::Panic { message, location })
}

/// This process's PID in the parent's PID namespace, read from the /proc the process started
/// with (it belongs to the parent's PID namespace, or one above it, where the parent and a
/// person running `nsenter` look).
fn pid_in_parent_namespace() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Mounts a procfs of the test's own PID namespace over `/proc`, so that `/proc/<pid>`, `ps`,
/// `pgrep` and `kill` agree on the PIDs that the body and the programs it starts see.
///
/// The mount is made in the test's private mount namespace (made `rprivate` before `exec`), so
/// the host never sees it, and it goes away with the namespace. Rootless, the kernel allows it
/// because the test's user namespace owns both the PID and the mount namespace, and the flags
/// keep those the host's `/proc` has locked (`nosuid`, `nodev`, `noexec`). Where it still
/// refuses (a container whose `/proc` is partly masked), the test goes on with the host's
/// `/proc` and says so in its output.
fn mount_own_proc() {
    use nix::mount::{MsFlags, mount};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(errno) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
        eprintln!(
            "netns-test: /proc shows the host's processes, not the test's: mounting a /proc for \
             the test's PID namespace failed ({errno})"
        );
    }
}

/// Reports the verdict, waits for the parent's release after a failure, and exits without
/// running destructors: the kernel frees the namespaces with the process, faster than any
/// orderly teardown. Captures are written out before a failure is reported, and removed after
/// a success (unless `NETNS_TEST_KEEP_CAPTURES` keeps them).
fn finish(context: &mut ChildContext, verdict: std::result::Result<Option<String>, Failure>) -> ! {
    if let Some(network) = NETWORK.get() {
        match verdict {
            Ok(_) if context.keep_captures => {}
            Ok(_) => network.discard_captures(),
            Err(_) => network.flush_captures(),
        }
        if verdict.is_err() || context.report_always {
            let _ = Report::Observed(network.observations()).write_to(&mut context.status);
        }
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let failed = verdict.is_err();
    let report = match verdict {
        Ok(value) => Report::Passed { value },
        Err(failure) => Report::Failed(failure),
    };
    let _ = report.write_to(&mut context.status);
    if failed {
        // The parent closes the release pipe at once, or after a person has looked inside
        // (keep-on-failure). Either way, read returns end of file.
        let mut byte = [0u8; 1];
        let _ = context.release.read(&mut byte);
    }
    std::process::exit(i32::from(failed));
}
