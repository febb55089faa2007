//! Namespaces held by file descriptor, and running code inside them.
//!
//! A namespace lives as long as something refers to it: a process inside it or an open file
//! descriptor. netns-test only ever holds descriptors (never a `/run/netns` bind mount), so
//! when the test process dies, however it dies, its namespaces go with it. Only a thread
//! moves into a namespace (`setns` and `unshare` act on the calling thread), so code runs
//! inside one on a thread of its own: [`run_in`] for a namespace that exists, [`in_scratch`]
//! for a scratch one made for the purpose; [`setup`] sets a fresh one up from inside.

mod limits;
pub(crate) mod setup;
pub(crate) mod userns;

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::thread;

use nix::sched::{CloneFlags, setns, unshare};

pub(crate) use limits::{limit_error, limit_remedy, unshare_call};

use crate::error::{Error, Result};

/// The namespaces of one node: its network namespace and, when the node has its own hostname,
/// its UTS namespace.
#[derive(Debug)]
pub(crate) struct NsFds {
    pub(crate) net: OwnedFd,
    pub(crate) uts: Option<OwnedFd>,
}

impl NsFds {
    /// The namespaces the calling thread is in now.
    pub(crate) fn of_current_thread(with_uts: bool) -> io::Result<Self> {
        Ok(NsFds {
            net: open_thread_ns("net")?,
            uts: if with_uts { Some(open_thread_ns("uts")?) } else { None },
        })
    }

    /// Moves the calling thread into these namespaces. Only this thread moves: other threads
    /// and the process as a whole stay where they are.
    pub(crate) fn enter(&self) -> io::Result<()> {
        setns(self.net.as_fd(), CloneFlags::CLONE_NEWNET)?;
        if let Some(uts) = &self.uts {
            setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS)?;
        }
        Ok(())
    }

    /// The raw descriptors, for code that runs between `fork` and `exec` where nothing may
    /// allocate.
    pub(crate) fn raw(&self) -> (RawFd, Option<RawFd>) {
        (self.net.as_raw_fd(), self.uts.as_ref().map(|fd| fd.as_raw_fd()))
    }
}

/// Opens `/proc/thread-self/ns/<kind>`: the namespace of the calling thread, which after a
/// per-thread `unshare` or `setns` differs from `/proc/self/ns/<kind>`.
fn open_thread_ns(kind: &str) -> io::Result<OwnedFd> {
    let file = File::open(format!("/proc/thread-self/ns/{kind}"))?;
    Ok(file.into())
}

/// Why code could not run inside a namespace.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The thread could not be started.
    Start(io::Error),
    /// The thread could not enter the namespace.
    Enter(io::Error),
}

impl From<RunError> for io::Error {
    fn from(error: RunError) -> Self {
        match error {
            RunError::Start(error) | RunError::Enter(error) => error,
        }
    }
}

/// Runs `f` on a new thread called `thread` that has entered `fds`, and returns what it
/// returns; a panic in `f` is resumed in the caller. `f` may borrow from the caller. Sockets
/// it makes stay in the namespace when the thread ends.
///
/// # Errors
/// The thread could not be started, or could not enter the namespaces.
pub(crate) fn run_in<T: Send>(
    fds: &NsFds,
    thread: &str,
    f: impl FnOnce() -> T + Send,
) -> Result<T, RunError> {
    let entered = on_thread(thread, || {
        fds.enter()?;
        Ok(f())
    });
    entered.map_err(RunError::Start)?.map_err(RunError::Enter)
}

/// Runs `f` on a new thread called `name` and returns what it returns; a panic in `f` is
/// resumed in the caller. `f` may borrow from the caller.
///
/// # Errors
/// The thread could not be started.
pub(crate) fn on_thread<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    thread::scope(|scope| {
        let handle = thread::Builder::new().name(name.into()).spawn_scoped(scope, f)?;
        Ok(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Why a scratch namespace could not be used.
#[derive(Debug)]
pub(crate) enum ScratchError {
    /// The thread could not be started.
    Start(io::Error),
    /// `unshare(CLONE_NEWNET)` failed.
    Unshare(nix::errno::Errno),
    /// The runtime could not be started.
    Runtime(io::Error),
    /// The code run there panicked.
    Panicked,
}

impl fmt::Display for ScratchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScratchError::Start(error) => write!(f, "cannot start a thread: {error}"),
            ScratchError::Unshare(errno) => write!(f, "cannot create a scratch network namespace: {errno}"),
            ScratchError::Runtime(error) => write!(f, "cannot start a runtime: {error}"),
            ScratchError::Panicked => f.write_str("the thread panicked"),
        }
    }
}

/// Runs the future that `f` makes on a new thread called `thread`, inside a scratch network
/// namespace made for the purpose (so no test's network is ever disturbed; it goes away with
/// the thread), with a current-thread tokio runtime.
///
/// # Errors
/// The thread, the namespace or the runtime could not be made, or the future panicked.
pub(crate) fn in_scratch<F, Fut>(thread: &str, f: F) -> Result<Fut::Output, ScratchError>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future,
    Fut::Output: Send,
{
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name(thread.into())
            .spawn_scoped(scope, || {
                unshare(CloneFlags::CLONE_NEWNET).map_err(ScratchError::Unshare)?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ScratchError::Runtime)?;
                Ok(runtime.block_on(f()))
            })
            .map_err(ScratchError::Start)?;
        handle.join().unwrap_or(Err(ScratchError::Panicked))
    })
}

/// A namespace made by a worker thread: its request's index, and the namespace or the error.
type Made<T> = (usize, Result<(NsFds, T)>);

/// What each new namespace needs: a name for messages, whether it gets its own hostname.
pub(crate) struct NsRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) hostname: bool,
}

/// Creates one network namespace (and UTS namespace where asked) per request and runs `setup`
/// inside each, on a few short-lived threads, while the calling thread runs `meanwhile`. An
/// error of `meanwhile` is returned before any of `setup`'s (a `setup` may wait for something
/// `meanwhile` makes, and fail because it did not).
///
/// Each worker thread `unshare`s again for every namespace it makes, so a hundred nodes cost a
/// couple of threads, not a hundred (thread pressure on small CI machines ends in `EAGAIN`).
pub(crate) fn create_namespaces<T, F, M, R>(
    requests: &[NsRequest<'_>],
    setup: F,
    meanwhile: M,
) -> Result<(Vec<(NsFds, T)>, R)>
where
    T: Send,
    F: Fn(usize, &NsFds) -> Result<T> + Sync,
    M: FnOnce() -> Result<R>,
{
    if requests.is_empty() {
        return Ok((Vec::new(), meanwhile()?));
    }
    // One namespace needs one worker; asking for the parallelism reads the cgroup's CPU quota
    // (three files), a cost the pair topology of most tests need not pay.
    let workers = match requests.len() {
        1 => 1,
        n => n.min(thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4)),
    };
    let setup = &setup;
    let mut here = None;
    let results: Vec<Vec<Made<T>>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                thread::Builder::new().name("netns-test-mkns".into()).spawn_scoped(scope, move || {
                    (worker..requests.len())
                        .step_by(workers)
                        .map(|index| (index, make_one(&requests[index], index, setup)))
                        .collect()
                })
            })
            .collect();
        here = Some(meanwhile());
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(error) => vec![(usize::MAX, Err(Error::io("starting a namespace thread", error)))],
            })
            .collect()
    });
    // The calling thread's failure first: workers that wait on it fail because of it.
    let here = here.expect("ran inside the scope")?;
    let mut slots: Vec<Option<(NsFds, T)>> = (0..requests.len()).map(|_| None).collect();
    for (index, result) in results.into_iter().flatten() {
        let made = result?;
        slots[index] = Some(made);
    }
    let made = slots.into_iter().map(|slot| slot.expect("every namespace request is handled")).collect();
    Ok((made, here))
}

fn make_one<T, F>(request: &NsRequest<'_>, index: usize, setup: &F) -> Result<(NsFds, T)>
where
    F: Fn(usize, &NsFds) -> Result<T>,
{
    let mut flags = CloneFlags::CLONE_NEWNET;
    if request.hostname {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(|errno| {
        let step =
            format!("creating the namespace of node `{}` ({})", request.name, unshare_call(flags.bits()));
        match errno {
            nix::errno::Errno::ENOSPC => limit_error(step, flags.bits(), errno.into(), false),
            _ => Error::io(step, errno.into()),
        }
    })?;
    if request.hostname {
        nix::unistd::sethostname(request.name).map_err(|errno| {
            Error::io(format!("setting the hostname of node `{}`", request.name), errno.into())
        })?;
    }
    let fds = NsFds::of_current_thread(request.hostname)
        .map_err(|error| Error::io(format!("opening the namespace of node `{}`", request.name), error))?;
    let value = setup(index, &fds)?;
    Ok((fds, value))
}
