//! The parent side: supervise the child, relay its output, enforce the timeout, and turn
//! whatever happened into one readable verdict.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::Mode;
use super::protocol::{Failure, NodeFds, Report};
use super::spawn::{Spawned, spawn};
use crate::error::Error;
use crate::settings::{DEFAULT_KEEP, Settings};
use crate::trace::Trace;

/// How long a timed-out child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading output after the child exited (its init and any program started
/// in a node die with it, so the pipes close at once unless something is badly wrong).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What to run and how to judge it.
pub(crate) struct Launch {
    /// Child key: exact test name or sandbox call site.
    pub(crate) key: String,
    /// How the failure message names the run, e.g. "test `foo`".
    pub(crate) label: String,
    /// Arguments for the re-executed binary.
    pub(crate) args: Vec<OsString>,
    pub(crate) timeout: Option<Duration>,
}

/// Runs the child to completion, as `settings` say (mode, keep-on-failure, trace). `Ok` only
/// when it reported success and exited with status 0, with the value a sandbox body returned.
pub(crate) fn run(launch: &Launch, settings: &Settings) -> Result<Option<String>, Error> {
    let trace = Trace::new("parent", settings.trace);
    let spawned = spawn(&launch.key, &launch.args, settings.mode())?;
    trace.mark("child started (exec done)");
    Supervisor::new(spawned, launch, settings.keep_on_failure, trace).run()
}

struct Stream {
    file: Option<File>,
    pending: Vec<u8>,
}

impl Stream {
    fn new(file: File) -> Self {
        Stream { file: Some(file), pending: Vec::new() }
    }

    /// Reads what is available; returns the complete lines (or everything, at end of file).
    fn read_lines(&mut self) -> Vec<u8> {
        let Some(file) = &mut self.file else {
            return Vec::new();
        };
        let mut buffer = [0u8; 16 * 1024];
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => {
                self.file = None;
                std::mem::take(&mut self.pending)
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buffer[..n]);
                match self.pending.iter().rposition(|b| *b == b'\n') {
                    Some(end) => {
                        let rest = self.pending.split_off(end + 1);
                        std::mem::replace(&mut self.pending, rest)
                    }
                    None => Vec::new(),
                }
            }
        }
    }
}

struct Supervisor<'a> {
    child: Child,
    release: Option<File>,
    mode: Mode,
    launch: &'a Launch,
    keep: Option<Duration>,
    stdout: Stream,
    stderr: Stream,
    status: Stream,
    pidfd: Option<OwnedFd>,
    reports: Vec<Report>,
    exit: Option<ExitStatus>,
    timed_out: bool,
    kept: bool,
    started: Instant,
    trace: Trace,
}

impl<'a> Supervisor<'a> {
    fn new(spawned: Spawned, launch: &'a Launch, keep: Option<Duration>, trace: Trace) -> Self {
        let Spawned { child, status, release, stdout, stderr, mode } = spawned;
        let pid = child.id() as libc::pid_t;
        // A negative result means the kernel has no pidfd_open.
        let pidfd = super::fork::pidfd_open(pid);
        // SAFETY: a fresh descriptor from pidfd_open that nothing else owns.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
        Supervisor {
            child,
            release,
            mode,
            launch,
            keep,
            stdout: Stream::new(stdout),
            stderr: Stream::new(stderr),
            status: Stream::new(status),
            pidfd,
            reports: Vec::new(),
            exit: None,
            timed_out: false,
            kept: false,
            started: Instant::now(),
            trace,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn run(mut self) -> Result<Option<String>, Error> {
        let deadline = self.launch.timeout.map(|timeout| crate::time::later(self.started, timeout));
        let mut kill_at: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        loop {
            let open = self.stdout.file.is_some() || self.stderr.file.is_some() || self.status.file.is_some();
            if self.exit.is_some() && !open {
                break;
            }
            let now = Instant::now();
            if drain_until.is_some_and(|until| now >= until) {
                break;
            }
            if let Some(deadline) = deadline {
                if now >= deadline && !self.timed_out && self.exit.is_none() {
                    self.timed_out = true;
                    if self.keep.is_some() {
                        self.keep_child("timed out");
                    }
                    let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGTERM);
                    kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
            if kill_at.is_some_and(|at| now >= at) && self.exit.is_none() {
                let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
                kill_at = None;
            }
            let wake =
                [deadline.filter(|_| !self.timed_out), kill_at, drain_until].into_iter().flatten().min();
            self.poll_once(wake);
            // A child that reported success has flushed its output and is exiting: the verdict
            // is known, and waiting for the kernel to tear its namespaces and processes down
            // (half a millisecond, every test) would only slow the suite. It is reaped in the
            // background.
            if self.exit.is_none() && self.reports.iter().any(|r| matches!(r, Report::Passed { .. })) {
                break;
            }
            if self.exit.is_none() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.trace.mark("child exited");
                    self.exit = Some(status);
                    drain_until = Some(Instant::now() + DRAIN_LIMIT);
                }
            }
        }
        let passed = self.reports.iter().any(|r| matches!(r, Report::Passed { .. }));
        if self.exit.is_none() && !passed {
            self.exit = self.child.wait().ok();
        }
        self.trace.mark("output drained");
        self.verdict()
    }

    fn poll_once(&mut self, wake: Option<Instant>) {
        // Without a pidfd (kernels before 5.3) exit is noticed by polling every 20 ms.
        let tick =
            if self.pidfd.is_some() || self.exit.is_some() { None } else { Some(Duration::from_millis(20)) };
        let until = wake.map(|at| at.saturating_duration_since(Instant::now()));
        let timeout = match (until, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = match timeout {
            Some(duration) => {
                PollTimeout::try_from(duration.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let flags = PollFlags::POLLIN;
        let borrowed: [Option<BorrowedFd<'_>>; 4] = [
            self.stdout.file.as_ref().map(|f| f.as_fd()),
            self.stderr.file.as_ref().map(|f| f.as_fd()),
            self.status.file.as_ref().map(|f| f.as_fd()),
            self.pidfd.as_ref().filter(|_| self.exit.is_none()).map(|f| f.as_fd()),
        ];
        let slots: Vec<usize> = (0..4).filter(|i| borrowed[*i].is_some()).collect();
        let mut fds: Vec<PollFd<'_>> =
            slots.iter().map(|i| PollFd::new(borrowed[*i].expect("present"), flags)).collect();
        if poll(&mut fds, timeout).is_err() {
            return;
        }
        let ready: Vec<usize> = slots
            .iter()
            .zip(&fds)
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(slot, _)| *slot)
            .collect();
        drop(fds);
        for slot in ready {
            match slot {
                0 => relay(&self.stdout.read_lines(), false),
                1 => relay(&self.stderr.read_lines(), true),
                2 => {
                    let lines = self.status.read_lines();
                    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if let Some(report) = Report::parse(line) {
                            self.trace.mark(match report {
                                Report::Ready { .. } => "child reported its network ready",
                                Report::Passed { .. } => "child reported success",
                                Report::Failed(_) => "child reported failure",
                            });
                            let failed = matches!(report, Report::Failed(_));
                            self.reports.push(report);
                            if failed {
                                if self.keep.is_some() {
                                    self.keep_child("failed");
                                }
                                // The failed child waits for this before it exits.
                                self.release = None;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Keeps the child alive for a person to look inside, then lets it go.
    fn keep_child(&mut self, what: &str) {
        if self.kept {
            return;
        }
        self.kept = true;
        // Flush what the child printed so far, so the person sees it before the hints.
        relay(&self.stdout.read_available(), false);
        relay(&self.stderr.read_available(), true);
        let ready = self.reports.iter().find_map(|report| match report {
            Report::Ready { pid, nodes, .. } => Some((*pid as i32, nodes.clone())),
            _ => None,
        });
        let keep = self.keep.unwrap_or(DEFAULT_KEEP);
        let text = match &ready {
            Some((pid, nodes)) => keep_message(&self.launch.label, what, *pid, self.mode, Some(nodes), keep),
            None => keep_message(&self.launch.label, what, self.pid(), self.mode, None, keep),
        };
        let mut terminal = Terminal::open();
        terminal.say(&text);
        terminal.wait_for_enter(keep);
        // Closing the release pipe lets a failed child exit; a hung one is killed by the caller.
        self.release = None;
    }

    fn verdict(mut self) -> Result<Option<String>, Error> {
        // Everything the child wrote has been relayed by now.
        relay(&self.stdout.read_available(), false);
        relay(&self.stderr.read_available(), true);
        let label = &self.launch.label;
        let failure = self.reports.iter().find_map(|report| match report {
            Report::Failed(failure) => Some(failure.clone()),
            _ => None,
        });
        let passed = self.reports.iter().find_map(|report| match report {
            Report::Passed { value } => Some(value.clone()),
            _ => None,
        });
        let exit = self.exit;
        let message = if self.timed_out {
            let timeout =
                self.launch.timeout.map(|t| humantime::format_duration(t).to_string()).unwrap_or_default();
            let phase = if self.reports.iter().any(|r| matches!(r, Report::Ready { .. })) {
                "while the test body was running"
            } else {
                "while the network was being set up"
            };
            format!(
                "{label} timed out after {timeout} {phase}; its process group was killed \
                 (raise it with #[netns_test(timeout = \"...\")] or NETNS_TEST_TIMEOUT)"
            )
        } else if let Some(failure) = failure {
            match failure {
                Failure::Panic { message, location: Some(location) } => {
                    format!("{label} panicked at {location}:\n{message}")
                }
                Failure::Panic { message, location: None } => format!("{label} panicked:\n{message}"),
                Failure::Error { message } => format!("{label} returned an error: {message}"),
                Failure::Setup { message } => {
                    format!("{label}: could not set up the network: {message}")
                }
            }
        } else if let (Some(value), true) = (&passed, exit.is_none_or(|status| status.success())) {
            let value = value.clone();
            if exit.is_none() {
                reap_in_background(self.child);
            }
            return Ok(value);
        } else {
            // The child reports Ready just before the body starts: an exit after it, without a
            // verdict, came from the body (or code it called), not from test selection.
            let body_started = self.reports.iter().any(|r| matches!(r, Report::Ready { .. }));
            match exit {
                Some(status) if status.signal().is_some() => {
                    let signal = status.signal().expect("checked");
                    let name = Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("an unknown signal");
                    let core = if status.core_dumped() { " (core dumped)" } else { "" };
                    format!("{label}: the child process was killed by {name} (signal {signal}){core}")
                }
                Some(status) if body_started => format!(
                    "{label}: the body exited the process with {} before the test finished \
                     (std::process::exit in the body or in code it called?); a body passes by \
                     returning",
                    status.code().map_or("an unknown status".to_string(), |c| format!("status {c}"))
                ),
                Some(status) if status.success() => format!(
                    "{label}: the child process ran no test: `{}` did not select exactly this test \
                     (is the test name generated by another macro?)",
                    self.launch.key
                ),
                Some(status) => format!(
                    "{label}: the child process exited with {} before reporting a result",
                    status.code().map_or("an unknown status".to_string(), |c| format!("code {c}"))
                ),
                None => format!("{label}: the child process could not be waited for"),
            }
        };
        self.release = None;
        Err(Error::Child(message + &self.replay_hints()))
    }

    /// The seed and the captures of a failed run: how to replay it and what to look at.
    fn replay_hints(&self) -> String {
        let Some((seed, captures)) = self.reports.iter().find_map(|report| match report {
            Report::Ready { seed, captures, .. } => Some((*seed, captures)),
            _ => None,
        }) else {
            return String::new();
        };
        let mut text = String::new();
        if let Some(seed) = seed {
            text.push_str(&format!(
                "\nlink conditions seed: {seed} (replay the same decisions with NETNS_TEST_SEED={seed})"
            ));
        }
        for capture in captures {
            text.push_str(&format!("\ncapture: {capture}"));
        }
        text
    }
}

impl Stream {
    /// Everything readable without blocking, including a trailing partial line.
    fn read_available(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(file) = &self.file {
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => out.extend(self.read_lines()),
                _ => break,
            }
        }
        out.extend(std::mem::take(&mut self.pending));
        out
    }
}

/// Waits for children whose verdict is already known, on one thread for the whole process, so
/// that they do not stay zombies.
fn reap_in_background(child: Child) {
    use std::sync::Mutex;
    use std::sync::mpsc::{Sender, channel};
    static REAPER: Mutex<Option<Sender<Child>>> = Mutex::new(None);
    let mut reaper = REAPER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let sender = reaper.get_or_insert_with(|| {
        let (sender, receiver) = channel::<Child>();
        // Without the thread, the zombies stay until the test binary exits, which is harmless.
        let _ = std::thread::Builder::new().name("netns-test-reaper".into()).spawn(move || {
            for mut child in receiver {
                let _ = child.wait();
            }
        });
        sender
    });
    let _ = sender.send(child);
}

/// Writes the child's output through `print!`/`eprint!`, so that libtest's capture keeps it
/// and shows it only when the test fails.
fn relay(bytes: &[u8], stderr: bool) {
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    if stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

fn keep_message(
    label: &str,
    what: &str,
    pid: i32,
    mode: Mode,
    nodes: Option<&[NodeFds]>,
    keep: Duration,
) -> String {
    let mut text = format!(
        "\nnetns-test: {label} {what}; its process {pid} is kept alive for inspection \
         (NETNS_TEST_KEEP_ON_FAILURE).\n"
    );
    let user = match mode {
        Mode::Root => String::new(),
        Mode::Rootless => format!("--user=/proc/{pid}/ns/user --preserve-credentials "),
    };
    // The PID namespace too, so that `ps` and /proc in the test's mount namespace (whose /proc
    // is the test's) show the test's processes. The reported PID is the test process itself,
    // inside that namespace; without a report it is the supervisor outside it, whose children
    // go there.
    match nodes {
        Some(nodes) => {
            text.push_str("Enter a node with:\n");
            let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
            for node in nodes {
                let net = node.net.map_or(format!("/proc/{pid}/ns/net"), |fd| format!("/proc/{pid}/fd/{fd}"));
                let uts = node.uts.map_or(format!("/proc/{pid}/ns/uts"), |fd| format!("/proc/{pid}/fd/{fd}"));
                text.push_str(&format!(
                    "  {:width$}  nsenter {user}--pid=/proc/{pid}/ns/pid --mount=/proc/{pid}/ns/mnt \
                     --uts={uts} --net={net}\n",
                    node.name
                ));
            }
        }
        None => {
            text.push_str(&format!(
                "The network was not ready; its namespace: nsenter {user}\
                 --pid=/proc/{pid}/ns/pid_for_children --mount=/proc/{pid}/ns/mnt \
                 --uts=/proc/{pid}/ns/uts --net=/proc/{pid}/ns/net\n"
            ));
        }
    }
    text.push_str(&format!(
        "Press Enter to end it (it ends by itself in {}).\n",
        humantime::format_duration(keep)
    ));
    text
}

/// The person's terminal, bypassing libtest's output capture.
struct Terminal {
    tty: Option<File>,
}

impl Terminal {
    fn open() -> Self {
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok();
        Terminal { tty }
    }

    fn say(&mut self, text: &str) {
        let written = self.tty.as_mut().is_some_and(|tty| tty.write_all(text.as_bytes()).is_ok());
        if !written {
            let _ = io::stderr().write_all(text.as_bytes());
        }
    }

    /// Waits until a line is entered on the terminal or `limit` passes.
    fn wait_for_enter(&mut self, limit: Duration) {
        let until = crate::time::deadline_after(limit);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(tty) = &mut self.tty else {
                std::thread::sleep(left);
                return;
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)) {
                Ok(0) => return,
                Ok(_) => {
                    let mut byte = [0u8; 256];
                    match tty.read(&mut byte) {
                        Ok(n) if n > 0 && byte[..n].contains(&b'\n') => return,
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
                Err(_) => return,
            }
        }
    }
}
