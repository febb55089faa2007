//! The parent side: supervise the child, relay its output, enforce the timeout, and turn
//! whatever happened into one readable verdict.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::Mode;
use super::keep;
use super::protocol::{Failure, Ready, Report};
use super::spawn::{Process, Spawned, spawn};
use crate::error::Error;
use crate::settings::{DEFAULT_KEEP, Settings};
use crate::timeline::Observations;
use crate::trace::Trace;

use super::report::{self, Facts};
use crate::impair::backend::artifacts_dir;

/// Where a run's report goes, and whether a passing run writes one too.
struct ReportPlan {
    dir: std::path::PathBuf,
    always: bool,
}

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
    /// Whether a failure writes a report (`report.html`, `report.json`) into the test's
    /// artifacts directory: tests do, sandboxes do not.
    pub(crate) report: bool,
    /// Whether the child may come from the fork server (`super::server`).
    pub(crate) fork_server: bool,
}

/// Runs the child to completion, as `settings` say (mode, keep-on-failure, trace). `Ok` only
/// when it reported success and exited with status 0, with the value a sandbox body returned.
pub(crate) fn run(launch: &Launch, settings: &Settings) -> Result<Option<String>, Error> {
    let trace = Trace::new("parent", settings.trace);
    let spawned = spawn(&launch.key, &launch.args, super::mode::select(settings)?, launch.fork_server)?;
    trace.mark("child started (exec done)");
    let mut supervisor = Supervisor::new(spawned, launch, settings.keep_on_failure, trace);
    if launch.report {
        supervisor.report = Some(ReportPlan {
            dir: artifacts_dir(settings.artifacts.as_deref(), &launch.key),
            always: settings.report_always,
        });
    }
    supervisor.run()
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

/// The child's verdict on its run.
enum Verdict {
    /// The body finished; a sandbox body's value, as JSON.
    Passed(Option<String>),
    /// The body or the setup failed.
    Failed(Failure),
}

/// The most timeline events a failure message shows (the first, then the latest).
const TIMELINE_LINES: usize = 40;

struct Supervisor<'a> {
    child: Process,
    release: Option<super::spawn::Release>,
    mode: Mode,
    launch: &'a Launch,
    keep: Option<Duration>,
    stdout: Stream,
    stderr: Stream,
    status: Stream,
    pidfd: Option<OwnedFd>,
    /// The child's report that its network is up: the body started after it.
    ready: Option<Ready>,
    /// The child's verdict, the first it reported.
    verdict: Option<Verdict>,
    /// The network's state and what it went through, reported by a failed child.
    observed: Option<Observations>,
    exit: Option<ExitStatus>,
    timed_out: bool,
    kept: bool,
    /// Sudo mode: whether sudo started the elevated process, and what it said until then.
    elevated: bool,
    sudo_said: Vec<u8>,
    started: Instant,
    trace: Trace,
    /// Where to write the report, for a test.
    report: Option<ReportPlan>,
    /// What the child printed, kept (bounded) for the report.
    printed: [Vec<u8>; 2],
}

impl<'a> Supervisor<'a> {
    fn new(spawned: Spawned, launch: &'a Launch, keep: Option<Duration>, trace: Trace) -> Self {
        let Spawned { process: child, status, release, stdout, stderr, mode } = spawned;
        // A child of the fork server is watched through its socket to the server.
        let pidfd = match child {
            Process::Direct(_) => super::fork::pidfd_open(child.id()),
            Process::Served(_) => -1,
        };
        // SAFETY: a fresh descriptor from pidfd_open that nothing else owns; a negative result
        // means the kernel has no pidfd_open.
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
            ready: None,
            verdict: None,
            observed: None,
            exit: None,
            timed_out: false,
            kept: false,
            elevated: false,
            sudo_said: Vec::new(),
            started: Instant::now(),
            trace,
            report: None,
            printed: [Vec::new(), Vec::new()],
        }
    }

    /// Relays what the child printed, and keeps it for the report.
    fn pass_on(&mut self, bytes: &[u8], stderr: bool) {
        if self.report.is_some() {
            let kept = &mut self.printed[usize::from(stderr)];
            let room = (report::OUTPUT_LIMIT + 1).saturating_sub(kept.len());
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        relay(bytes, stderr);
    }

    /// Writes the report when this run has one; returns the failure message's line naming it.
    fn write_report(&self, message: Option<&str>) -> String {
        let Some(plan) = &self.report else { return String::new() };
        if message.is_none() && !plan.always {
            return String::new();
        }
        let empty = Observations::default();
        let (seed, captures) = match &self.ready {
            Some(ready) => (ready.seed, ready.captures.as_slice()),
            None => (None, &[][..]),
        };
        let facts = Facts {
            test: &self.launch.key,
            message,
            seed,
            captures,
            observed: self.observed.as_ref().unwrap_or(&empty),
            stdout: &self.printed[0],
            stderr: &self.printed[1],
        };
        match report::Report::new(&facts).write(&plan.dir) {
            Ok(path) => format!("\nreport: {}", path.display()),
            Err(error) => format!("\nreport: not written to {} ({error})", plan.dir.display()),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id()
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
                    self.child.signal_group(Signal::SIGTERM);
                    kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
            if kill_at.is_some_and(|at| now >= at) && self.exit.is_none() {
                self.child.signal_group(Signal::SIGKILL);
                kill_at = None;
            }
            let wake =
                [deadline.filter(|_| !self.timed_out), kill_at, drain_until].into_iter().flatten().min();
            self.poll_once(wake);
            // A child that reported success has flushed its output and is exiting: the verdict
            // is known, and waiting for the kernel to tear its namespaces and processes down
            // (half a millisecond, every test) would only slow the suite. It is reaped in the
            // background. In sudo mode the elevated process hands the child's files back to the
            // user after the child exits, so the verdict waits for that.
            if self.exit.is_none() && self.passed() && self.mode != Mode::Sudo {
                break;
            }
            if self.exit.is_none() {
                if let Some(status) = self.child.try_wait() {
                    self.trace.mark("child exited");
                    self.exit = Some(status);
                    drain_until = Some(Instant::now() + DRAIN_LIMIT);
                }
            }
        }
        if self.exit.is_none() && !self.passed() {
            self.exit = self.child.wait();
        }
        self.trace.mark("output drained");
        self.verdict()
    }

    fn passed(&self) -> bool {
        matches!(self.verdict, Some(Verdict::Passed(_)))
    }

    fn poll_once(&mut self, wake: Option<Instant>) {
        // Without a pidfd (kernels before 5.3) exit is noticed by polling every 20 ms.
        let exit_fd = self.pidfd.as_ref().map(AsFd::as_fd).or_else(|| self.child.exit_fd());
        let tick =
            if exit_fd.is_some() || self.exit.is_some() { None } else { Some(Duration::from_millis(20)) };
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
            exit_fd.filter(|_| self.exit.is_none()),
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
                0 => {
                    let bytes = self.stdout.read_lines();
                    self.pass_on(&bytes, false);
                }
                1 => {
                    let bytes = self.stderr.read_lines();
                    if self.mode == Mode::Sudo && !self.elevated {
                        self.sudo_said.extend_from_slice(&bytes);
                    }
                    self.pass_on(&bytes, true);
                }
                2 => {
                    let lines = self.status.read_lines();
                    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if let Some(report) = Report::parse(line) {
                            self.take(report);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Takes one report into the state: the first `Ready` and the first verdict count.
    fn take(&mut self, report: Report) {
        match report {
            Report::Ready(ready) => {
                self.trace.mark("child reported its network ready");
                self.ready.get_or_insert(ready);
            }
            Report::Passed { value } => {
                self.trace.mark("child reported success");
                self.verdict.get_or_insert(Verdict::Passed(value));
            }
            Report::Elevated => self.elevated = true,
            Report::Observed(observations) => {
                self.observed.get_or_insert(observations);
            }
            Report::Failed(failure) => {
                self.trace.mark("child reported failure");
                self.verdict.get_or_insert(Verdict::Failed(failure));
                if self.keep.is_some() {
                    self.keep_child("failed");
                }
                // The failed child waits for this before it exits.
                self.release = None;
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
        let bytes = self.stdout.read_available();
        self.pass_on(&bytes, false);
        let bytes = self.stderr.read_available();
        self.pass_on(&bytes, true);
        let limit = self.keep.unwrap_or(DEFAULT_KEEP);
        let label = &self.launch.label;
        match &self.ready {
            Some(ready) => keep::hold(label, what, ready.pid as i32, self.mode, Some(&ready.nodes), limit),
            None => keep::hold(label, what, self.pid(), self.mode, None, limit),
        }
        // Closing the release pipe lets a failed child exit; a hung one is killed by the caller.
        self.release = None;
    }

    fn verdict(mut self) -> Result<Option<String>, Error> {
        // Everything the child wrote has been relayed by now.
        let bytes = self.stdout.read_available();
        self.pass_on(&bytes, false);
        let bytes = self.stderr.read_available();
        self.pass_on(&bytes, true);
        let label = &self.launch.label;
        let exit = self.exit;
        // The child reports Ready just before the body starts.
        let body_started = self.ready.is_some();
        if self.mode == Mode::Sudo && !self.elevated && !self.timed_out {
            self.release = None;
            return Err(super::sudo::refused(&String::from_utf8_lossy(&self.sudo_said)));
        }
        let message = if self.timed_out {
            let timeout =
                self.launch.timeout.map(|t| humantime::format_duration(t).to_string()).unwrap_or_default();
            let phase = if body_started {
                "while the test body was running"
            } else {
                "while the network was being set up"
            };
            format!(
                "{label} timed out after {timeout} {phase}; its process group was killed \
                 (raise it with #[netns_test(timeout = \"...\")] or NETNS_TEST_TIMEOUT)"
            )
        } else if let Some(Verdict::Failed(failure)) = &self.verdict {
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
        } else if let (Some(Verdict::Passed(value)), true) =
            (&mut self.verdict, exit.is_none_or(|status| status.success()))
        {
            let value = value.take();
            let _ = self.write_report(None);
            if exit.is_none() {
                reap_in_background(self.child);
            }
            return Ok(value);
        } else {
            // An exit after Ready without a verdict came from the body (or code it called),
            // not from test selection.
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
        let report = self.write_report(Some(&message));
        Err(Error::Child(message + &report + &self.replay_hints()))
    }

    /// The seed and the captures of a failed run: how to replay it and what to look at.
    fn replay_hints(&self) -> String {
        let Some(Ready { seed, captures, .. }) = &self.ready else {
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
        if let Some(observed) = &self.observed {
            text.push_str(&observed.summary(TIMELINE_LINES));
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
/// that they do not stay zombies. The fork server reaps its own.
fn reap_in_background(child: Process) {
    let Process::Direct(child) = child else { return };
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
