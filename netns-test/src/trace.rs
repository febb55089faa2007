//! `NETNS_TEST_TRACE=1`: how long each step of a test's life took, on standard error (shown
//! with the test's output): the parent's view (child started, network ready, body finished,
//! child exited) and the child's (each step of bringing the network up). Whether it is on is
//! the caller's to say, from the settings.

use std::time::Instant;

/// A stopwatch that prints each step, or does nothing when tracing is off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trace {
    start: Option<Instant>,
    side: &'static str,
}

impl Trace {
    /// Starts the clock when `on`; `side` prefixes each line (`parent`, `network`).
    pub(crate) fn new(side: &'static str, on: bool) -> Self {
        Trace { start: on.then(Instant::now), side }
    }

    /// Prints the time since the start, and the step.
    pub(crate) fn mark(&self, step: &str) {
        if let Some(start) = self.start {
            eprintln!("netns-test {}: {:>8.3} ms  {step}", self.side, start.elapsed().as_secs_f64() * 1e3);
        }
    }
}
