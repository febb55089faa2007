//! The netlink runtime: one background thread that drives every netlink connection of a
//! network.
//!
//! rtnetlink is asynchronous, while the test body may be synchronous or run its own runtime.
//! Keeping the netlink connections on a dedicated current-thread runtime lets both kinds of test
//! call the network's API (cut a link, wait for a carrier) without nesting runtimes.

use std::future::Future;
use std::sync::mpsc;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// A current-thread tokio runtime running on its own thread until dropped.
#[derive(Debug)]
pub(crate) struct NetlinkRuntime {
    handle: Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NetlinkRuntime {
    /// Starts the netlink thread.
    pub(crate) fn start() -> Result<Self> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Error::io("starting the netlink runtime", error))?;
        let handle = runtime.handle().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("netns-test-netlink".into())
            .spawn(move || {
                // Either a shutdown message or the sender being dropped ends the loop.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|error| Error::io("starting the netlink thread", error))?;
        Ok(NetlinkRuntime { handle, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// The runtime's handle, for spawning connection tasks and entering its context.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Starts `future` on the netlink thread; the caller goes on and waits for it later.
    pub(crate) fn spawn<F>(&self, future: F) -> Pending<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&self.handle, future)
    }

    /// Runs `future` on the netlink thread and blocks the caller until it completes.
    ///
    /// # Panics
    /// When called from the netlink thread itself, which would deadlock.
    pub(crate) fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let netlink_thread = self.thread.as_ref().map(|thread| thread.thread().id());
        assert!(
            netlink_thread != Some(thread::current().id()),
            "netns-test: a blocking netlink call was made from the netlink thread"
        );
        self.spawn(future).wait()
    }
}

/// Starts `future` on the runtime of `handle` (a netlink thread's); the caller waits for it
/// later with [`Pending::wait`].
pub(crate) fn spawn_on<F>(handle: &Handle, future: F) -> Pending<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, receiver) = mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = sender.send(future.await);
    });
    Pending { receiver }
}

/// A future running on the netlink thread, to wait for later (see [`NetlinkRuntime::spawn`]).
#[must_use = "the result is lost unless waited for"]
pub(crate) struct Pending<T> {
    receiver: mpsc::Receiver<T>,
}

impl<T> Pending<T> {
    /// Blocks until the future has completed.
    pub(crate) fn wait(self) -> T {
        self.receiver.recv().expect("the netns-test netlink thread stopped while a request was pending")
    }
}

impl Drop for NetlinkRuntime {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
