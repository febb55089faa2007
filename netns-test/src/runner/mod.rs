//! The test runner: one fresh child process per test, in its own namespaces.
//!
//! The parent side ([`parent`]) re-executes the current binary for exactly one test (or one
//! [`sandbox`](crate::sandbox) call), relays its output and judges the outcome; the child side
//! ([`child`]) builds the network, runs the body and reports over a pipe ([`protocol`]).

pub(crate) mod child;
mod fork;
mod keep;
mod mode;
pub(crate) mod naming;
pub(crate) mod parent;
pub(crate) mod protocol;
mod report;
pub(crate) mod served;
pub(crate) mod server;
pub(crate) mod spawn;
mod sudo;

use std::ffi::OsString;
use std::fmt::Debug;
use std::time::Duration;

pub(crate) use crate::settings::Mode;

use crate::error::Result;
use crate::network::Network;
use crate::topology::Topology;

/// The timeout of a test that sets none and runs without `NETNS_TEST_TIMEOUT`.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test body may return: `()`, or `Result<(), E>` with `E: Debug`, as for a plain
/// `#[test]`. The body of a `#[netns_test]` function and of a [`sandbox`](crate::sandbox)
/// call are bound by it.
///
/// A body passes when it returns `()` or `Ok(())`; an `Err` fails it with the error printed by
/// `Debug` (for [`Error`](crate::Error), its message and its chain of causes). Implement it for
/// a type of your own to let bodies return that type.
#[diagnostic::on_unimplemented(
    message = "a #[netns_test] function or a sandbox body must return () or Result<(), E> with E: Debug"
)]
pub trait TestOutcome {
    /// `Ok(())` when the body passed, else the message it fails with.
    ///
    /// # Errors
    /// The failure's message.
    fn into_outcome(self) -> std::result::Result<(), String>;
}

impl TestOutcome for () {
    fn into_outcome(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> TestOutcome for std::result::Result<(), E> {
    fn into_outcome(self) -> std::result::Result<(), String> {
        self.map_err(|error| format!("{error:?}"))
    }
}

/// The remedy text for a failure to create namespaces.
pub(crate) fn probe_hint(mode: Mode) -> String {
    crate::probe::isolation_remedy(mode == Mode::Rootless)
}

/// Runs one test: in the parent, starts and judges the child; in the child, runs the body.
pub(crate) fn run_test(
    name: &str,
    timeout: Option<Duration>,
    default_topology: bool,
    topology: impl FnOnce() -> Result<Topology>,
    body: impl FnOnce(&'static Network) -> std::result::Result<(), String>,
) -> Result<()> {
    if let Some(context) = child::context(name) {
        child::run(context, default_topology, topology, |network| body(network).map(|()| None));
    }
    sudo::elevate_if_asked(name);
    let settings = crate::settings::get()?;
    // A timeout too long for the clock is as good as none: the parent saturates it.
    let timeout = timeout.or(settings.timeout).unwrap_or(DEFAULT_TEST_TIMEOUT);
    let launch = parent::Launch {
        key: name.to_string(),
        label: format!("test `{name}`"),
        args: ["--exact", "--nocapture", "--test-threads=1", "--include-ignored"]
            .into_iter()
            .map(OsString::from)
            .chain(std::iter::once(OsString::from(name)))
            .collect(),
        timeout: Some(timeout),
        report: true,
        fork_server: served::wanted(settings),
    };
    parent::run(&launch, settings).map(drop)
}

/// Runs `body` in a child process of the current program (see [`crate::sandbox`]).
///
/// The child re-executes the program from `main`, so it meets the same `sandbox` calls in the
/// same order: each call is keyed by its call site and by how many sandbox calls the process
/// made before it. In the child, the matching call runs its body; the calls before it return
/// `Ok(())` at once, without starting anything.
pub(crate) fn run_sandbox(
    site: String,
    topology: Topology,
    body: impl FnOnce(&'static Network) -> std::result::Result<Option<String>, String>,
) -> Result<Option<String>> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = format!("sandbox#{call}@{site}");
    if let Some(context) = child::context(&key) {
        child::run(context, false, || Ok(topology), body);
    }
    sudo::elevate_if_asked(&key);
    if child::is_sandbox_child() || sudo::is_elevated_sandbox() {
        return Ok(None);
    }
    let settings = crate::settings::get()?;
    let launch = parent::Launch {
        label: "the sandbox".to_string(),
        args: std::env::args_os().skip(1).collect(),
        timeout: None,
        report: false,
        // A sandbox's child starts the program again from `main`, which a fork of the server
        // (stopped before `main`) cannot do.
        fork_server: false,
        key,
    };
    parent::run(&launch, settings)
}
