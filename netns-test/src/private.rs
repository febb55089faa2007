//! What the `#[netns_test]` expansion calls. Not a public API: it may change in any release.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::network::Network;
use crate::runner::TestOutcome;
use crate::topology::{Topology, TopologyBuilder};

/// The `NETNS_TEST_*` settings as the runner reads them, for the workspace's own tools too:
/// `cargo xtask bench`'s floor takes its mode and trace from them, as a test does.
pub use crate::settings::{LinkEngine, Mode, Settings, get as settings};

/// Where a test's topology comes from.
pub enum TopologySource {
    /// [`Topology::pair`].
    Default,
    /// A function of the user's.
    Function(Box<dyn FnOnce() -> Result<Topology>>),
    /// A topology file, included at compile time.
    File {
        /// The path as written in the attribute, for messages.
        path: &'static str,
        /// The file's contents.
        contents: &'static str,
    },
}

impl TopologySource {
    /// Wraps the `topology = ...` function.
    pub fn from_fn<F, T>(function: F) -> Self
    where
        F: FnOnce() -> T + 'static,
        T: IntoTopology,
    {
        TopologySource::Function(Box::new(move || function().into_topology()))
    }

    fn load(self) -> Result<Topology> {
        match self {
            TopologySource::Default => Ok(Topology::pair()),
            TopologySource::Function(function) => function(),
            TopologySource::File { path, contents } => Ok(Topology::from_toml(contents, path)?),
        }
    }
}

/// What a `topology = ...` function may return.
#[diagnostic::on_unimplemented(
    message = "a netns_test topology function must return a Topology, a TopologyBuilder or a Result<Topology, _>"
)]
pub trait IntoTopology {
    /// Converts into a validated topology.
    fn into_topology(self) -> Result<Topology>;
}

impl IntoTopology for Topology {
    fn into_topology(self) -> Result<Topology> {
        Ok(self)
    }
}

impl IntoTopology for TopologyBuilder {
    fn into_topology(self) -> Result<Topology> {
        Ok(self.build()?)
    }
}

impl<E: Into<Error>> IntoTopology for std::result::Result<Topology, E> {
    fn into_topology(self) -> Result<Topology> {
        self.map_err(Into::into)
    }
}

/// The attribute's options.
pub struct TestSpec {
    /// The test's name as libtest knows it (`module::path::function`).
    pub name: String,
    /// `timeout = "..."`.
    pub timeout: Option<Duration>,
    /// `topology = ...` or `topology_file = "..."`.
    pub topology: TopologySource,
    /// The file of the test function.
    pub file: &'static str,
    /// The line of the test function.
    pub line: u32,
}

/// The attribute's `timeout = "..."`, evaluated by the compiler: the expansion puts it in a
/// constant, so a bad value is a compile error at the literal, from the grammar the settings and
/// topology files use (`time::parse`).
///
/// # Panics
/// On a duration that grammar refuses, or zero, with a message that says why (at compile time
/// when called in a constant, as the attribute does).
#[track_caller]
pub const fn timeout(text: &str) -> Duration {
    match crate::time::parse_timeout(text) {
        Ok(duration) => duration,
        Err(error) => panic!("{}", error.timeout_message()),
    }
}

/// What a test function's parameter may be.
#[diagnostic::on_unimplemented(
    message = "the parameter of a #[netns_test] function must be the network: `net: &netns_test::Network`"
)]
pub trait FromNetwork {
    /// Gets the parameter from the network.
    fn from_network(network: &'static Network) -> Self;
}

impl FromNetwork for &'static Network {
    fn from_network(network: &'static Network) -> Self {
        network
    }
}

impl FromNetwork for Network {
    fn from_network(network: &'static Network) -> Self {
        network.clone()
    }
}

/// Runs an `async fn` test body on a current-thread tokio runtime in the child.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("netns-test: cannot start the test's tokio runtime")
        .block_on(future)
}

/// The expansion of `#[netns_test]`: runs `body` in a fresh child with the network of `spec`.
///
/// # Panics
/// When the test fails, with a message that says how.
#[track_caller]
pub fn run_test<R: TestOutcome>(spec: TestSpec, body: impl FnOnce(&'static Network) -> R) {
    let TestSpec { name, timeout, topology, file, line } = spec;
    let default_topology = matches!(topology, TopologySource::Default);
    let result = crate::runner::run_test(
        &name,
        timeout,
        default_topology,
        move || topology.load(),
        |network| body(network).into_outcome(),
    );
    if let Err(error) = result {
        match error {
            Error::Child(message) => panic!("{message}"),
            other => panic!("test `{name}` ({file}:{line}) could not run: {other:?}"),
        }
    }
}

pub use crate::runner::naming::test_name;
use crate::runner::naming::{is_test_name, run_on_test_thread};
/// A test's entry in the registry of the fork server, filled by constructors of its own
/// (`.init_array.60000`) before the unprioritised ones run [`run_child_early`].
pub use crate::runner::server::Registration;

/// The constructor that the `#[netns_test]` expansion puts in `.init_array` for each test: the
/// dynamic loader calls it before `main` in every process of the test binary.
///
/// In the child started for this very test, it runs the test function `test` at once, on a
/// thread named after the test as the harness would: the child skips the harness's start (its
/// arguments, its list of every test of the binary, its filter), and `test` never returns
/// there (the child exits with its verdict). In every other process it returns at once: one
/// cached check for the runner's marker, then a name comparison in a child started for
/// another test (a name that does not match leaves the child to the harness, as before);
/// the first call in a process the runner did not start forks the fork server
/// (`runner::served::start_early`), whose copy never returns from here.
///
/// Running before `main` differs from the harness in what Rust's start has not done yet: a
/// stack overflow in the body ends the child with SIGSEGV instead of the runtime's message and
/// SIGABRT (no guard-page handler is installed), and constructors of other crates may not have
/// run yet. SIGPIPE is ignored here, as Rust's start does; `std::env::args()` works.
pub fn run_child_early(module_path: &'static str, function: &'static str, test: fn()) {
    if !crate::runner::child::started_as_some_child() {
        crate::runner::served::start_early();
        return;
    }
    let Some(key) = crate::settings::internal::child_key() else { return };
    // Every test's constructor gets here in a child: the name is compared without making it.
    if !is_test_name(key.as_encoded_bytes(), module_path, function) {
        return;
    }
    let name = test_name(module_path, function);
    // SAFETY: signal(2) with a constant disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    run_on_test_thread(name, test)
}

/// For the `netns-test` command's labs: whether this process is the child that a `sandbox`
/// call started (code before the call must then not repeat what the parent did).
pub fn is_sandbox_child() -> bool {
    crate::runner::child::is_sandbox_child()
}

/// For the `netns-test` command's labs: the descriptors, in this process, of `node`'s network
/// namespace and of its UTS namespace (`None`: the process's own), for a program outside to
/// enter the node with `setns`.
pub fn node_namespace_fds(node: &crate::Node) -> (std::os::fd::RawFd, Option<std::os::fd::RawFd>) {
    node.fds().raw()
}
