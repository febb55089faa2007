//! The test runner: one fresh child process per test, in its own namespaces.
//!
//! The parent side ([`parent`]) re-executes the current binary for exactly one test (or one
//! [`sandbox`](crate::sandbox) call), relays its output and judges the outcome; the child side
//! ([`child`]) builds the network, runs the body and reports over a pipe ([`protocol`]).

pub(crate) mod child;
pub(crate) mod parent;
pub(crate) mod protocol;
pub(crate) mod spawn;

use std::ffi::OsString;
use std::time::Duration;

pub(crate) use spawn::Mode;

use crate::error::{Error, Result};
use crate::network::Network;
use crate::topology::Topology;

/// The timeout of a test that sets none and runs without `NETNS_TEST_TIMEOUT`.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The remedy text for a failure to create namespaces.
pub(crate) fn probe_hint(mode: Mode) -> String {
    crate::probe::isolation_remedy(mode == Mode::Rootless)
}

/// The timeout for a test: its own, else `NETNS_TEST_TIMEOUT`, else [`DEFAULT_TEST_TIMEOUT`].
pub(crate) fn timeout_for(own: Option<Duration>) -> Result<Duration> {
    if let Some(own) = own {
        return Ok(own);
    }
    match std::env::var("NETNS_TEST_TIMEOUT") {
        // A timeout too long for the clock is as good as none: the parent saturates it.
        Ok(text) => crate::time::parse_duration(&text).map_err(|error| {
            Error::io(
                format!(
                    "reading NETNS_TEST_TIMEOUT={text:?} (expected a duration such as \"30s\" or \"2m\")"
                ),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, error),
            )
        }),
        Err(_) => Ok(DEFAULT_TEST_TIMEOUT),
    }
}

/// Runs one test: in the parent, starts and judges the child; in the child, runs the body.
pub(crate) fn run_test(
    name: &str,
    timeout: Option<Duration>,
    topology: impl FnOnce() -> Result<Topology>,
    body: impl FnOnce(&'static Network) -> std::result::Result<(), String>,
) -> Result<()> {
    if let Some(context) = child::context(name) {
        child::run(context, topology, |network| body(network).map(|()| None));
    }
    let launch = parent::Launch {
        key: name.to_string(),
        label: format!("test `{name}`"),
        args: ["--exact", "--nocapture", "--test-threads=1", "--include-ignored"]
            .into_iter()
            .map(OsString::from)
            .chain(std::iter::once(OsString::from(name)))
            .collect(),
        timeout: Some(timeout_for(timeout)?),
    };
    parent::run(&launch).map(drop)
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
        child::run(context, || Ok(topology), body);
    }
    if child::is_sandbox_child() {
        return Ok(None);
    }
    let launch = parent::Launch {
        label: "the sandbox".to_string(),
        args: std::env::args_os().skip(1).collect(),
        timeout: None,
        key,
    };
    parent::run(&launch)
}
