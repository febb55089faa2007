//! Faults in time: a blackhole (a cut that heals by itself when its time is up) and periodic
//! outages (a cut every period, for a length).
//!
//! Both are the cut of [`LinkHandle::cut`] (tc ingress filters that drop every frame at
//! both ends), installed and removed by a timer thread of the guard's own. So they work on
//! every link, with or without conditions, whichever backend carries it, and they are
//! recorded on the timeline as they start and end. Their edges are as precise as a thread's
//! wake-up and two netlink requests: well under a millisecond on an idle machine; on a loaded
//! one, as late as the scheduler runs those threads (usually milliseconds, now and then more
//! than a hundred). An edge is never early: a blackhole not healed by hand lasts at least its duration.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Healing, LinkHandle};
use crate::conditions::validate_outages;
use crate::error::{Error, Result};
use crate::time::{deadline_after, later};

/// The stop signal a guard gives its timer thread.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl Stop {
    /// Waits until `deadline` or until stopped, whichever comes first; whether stopped.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *stopped {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stopped = self.changed.wait_timeout(stopped, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }
}

/// A timer thread and its stop signal, behind both guards.
#[derive(Debug)]
struct Timer {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Timer {
    fn start(name: &str, body: impl FnOnce(&Stop) -> Result<()> + Send + 'static) -> Result<Timer> {
        let stop = Arc::new(Stop::default());
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&signal))
            .map_err(|e| Error::io(format!("starting the {name} thread"), e))?;
        Ok(Timer { stop, thread: Some(thread) })
    }

    /// Stops the thread when `early`, then waits for it; its result.
    fn finish(&mut self, early: bool) -> Result<()> {
        if early {
            self.stop.stop();
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl LinkHandle {
    /// Drops every frame on the link for `duration`, then heals by itself: a
    /// [`cut`](Self::cut) with a timer. Dropping the guard (or [`heal`](Blackhole::heal))
    /// before the time is up heals the link at once; [`wait`](Blackhole::wait) waits for the
    /// end. The timeline records `blackhole_started` and `blackhole_ended`, so a failed test
    /// shows when the link was dark. Works on any link, with or without conditions.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// let dark = net.link("client", "server").blackhole(Duration::from_millis(500))?;
    /// // ... the client's retries go nowhere for half a second ...
    /// dark.wait()?; // the link carries traffic again
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A netlink failure installing the filters, or the timer thread cannot start.
    pub fn blackhole(&self, duration: Duration) -> Result<Blackhole> {
        let detail = format!("for {}", humantime::format_duration(duration));
        let mut fault = self.cut_as(Healing::Blackhole(self.clone()), detail)?;
        // The deadline counts from the moment the filters are in.
        let deadline = deadline_after(duration);
        let timer = Timer::start("netns-test-blackhole", move |stop| {
            stop.wait_until(deadline);
            fault.heal()
        })?;
        Ok(Blackhole(timer))
    }

    /// Cuts the link for `length` once every `every`, from a timer thread, until the guard
    /// drops: the first outage starts `every` from now, the next `2 × every` from now, and so
    /// on (the schedule does not drift with the thread's wake-ups). Dropping the guard during
    /// an outage ends it at once. Each outage is recorded on the timeline (`outage_started`,
    /// `outage_ended`).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// let _outages = net.link("client", "server").outages(Duration::from_secs(10), Duration::from_secs(1))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidOutages`] for a period or a length of zero, or a length not shorter
    /// than the period; the timer thread cannot start. A netlink failure during the outages
    /// ends them, and is returned by [`Outages::stop`].
    pub fn outages(&self, every: Duration, length: Duration) -> Result<Outages> {
        validate_outages(every, length)
            .map_err(|error| Error::InvalidOutages { link: self.subject(), reason: error.to_string() })?;
        let text = |d: Duration| humantime::format_duration(d).to_string();
        let detail = format!("every {} for {}", text(every), text(length));
        let link = self.clone();
        let start = Instant::now();
        let timer = Timer::start("netns-test-outages", move |stop| {
            // Sums of exact durations: the schedule does not drift. Past what a Duration
            // holds, `later` waits as long as it ever waits.
            let mut begin = every;
            loop {
                if stop.wait_until(later(start, begin)) {
                    return Ok(());
                }
                let mut fault = link.cut_as(Healing::Outage(link.clone()), detail.clone())?;
                let stopped = stop.wait_until(later(start, begin.saturating_add(length)));
                fault.heal()?;
                if stopped {
                    return Ok(());
                }
                begin = begin.saturating_add(every);
            }
        })?;
        Ok(Outages(timer))
    }
}

/// A link dropping every frame for a while ([`LinkHandle::blackhole`]); dropping the guard
/// heals it at once.
#[derive(Debug)]
#[must_use = "the blackhole heals as soon as this guard is dropped"]
pub struct Blackhole(Timer);

impl Blackhole {
    /// Heals the link now, before the time is up, reporting any error.
    ///
    /// # Errors
    /// A netlink failure removing a filter or refreshing a neighbour entry.
    pub fn heal(mut self) -> Result<()> {
        self.0.finish(true)
    }

    /// Waits until the time is up and the link is healed, reporting any error.
    ///
    /// # Errors
    /// As [`heal`](Self::heal).
    pub fn wait(mut self) -> Result<()> {
        self.0.finish(false)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        if let Err(error) = self.0.finish(true) {
            eprintln!("netns-test: ending a blackhole failed: {error:?}");
        }
    }
}

/// A link's periodic outages ([`LinkHandle::outages`]); dropping the guard stops them with the
/// link healed.
#[derive(Debug)]
#[must_use = "the outages stop as soon as this guard is dropped"]
pub struct Outages(Timer);

impl Outages {
    /// Stops the outages now (healing one in progress) and reports any error they met.
    ///
    /// # Errors
    /// The first netlink failure of the timer thread.
    pub fn stop(mut self) -> Result<()> {
        self.0.finish(true)
    }
}

impl Drop for Outages {
    fn drop(&mut self) {
        if let Err(error) = self.0.finish(true) {
            eprintln!("netns-test: the periodic outages failed: {error:?}");
        }
    }
}
