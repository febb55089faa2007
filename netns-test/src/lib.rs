//! Run each test in its own network, under plain `cargo test`.
//!
//! Put `#[netns_test]` on a test and it runs in a fresh child process inside its own network
//! namespace, wired to a peer namespace by a veth pair, with nothing left behind on the host:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! use netns_test::{Network, netns_test};
//!
//! #[netns_test]
//! fn echo_across_the_veth(net: &Network) {
//!     // The peer node `test1` holds veth1 = 1.1.1.1/24; the body runs in `test0`
//!     // (veth0 = 1.1.1.2/24). A socket created in a node stays in it.
//!     let listener = net.node("test1").run(|| TcpListener::bind("1.1.1.1:7000")).unwrap();
//!     let server = std::thread::spawn(move || {
//!         let (mut stream, _) = listener.accept().unwrap();
//!         let mut buffer = [0u8; 5];
//!         stream.read_exact(&mut buffer).unwrap();
//!         stream.write_all(&buffer).unwrap();
//!     });
//!     let mut client = TcpStream::connect("1.1.1.1:7000").unwrap();
//!     client.write_all(b"hello").unwrap();
//!     let mut reply = [0u8; 5];
//!     client.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"hello");
//!     server.join().unwrap();
//! }
//! ```
//!
//! # How it works
//! The attribute turns the function into an ordinary `#[test]`. When libtest (or nextest) runs
//! it, the test re-executes its own binary for exactly this test, in new network, mount, UTS
//! and PID namespaces (plus a user namespace when not root), with a `/proc` of its own PID
//! namespace (so `ps`, `pgrep`, `/proc/<pid>` and `kill` see the test's processes only). The
//! child builds the topology in-process with netlink, waits until every link reports carrier,
//! then runs the body. The
//! parent relays the child's output (libtest shows it when the test fails) and reports a panic
//! with its message and location, an error, a signal, or a timeout. Namespaces are held by file
//! descriptor only, so however the child dies, the kernel removes everything it made.
//!
//! # Reachability, latency and loss
//! [`Node::ping`] pings from any node with iputils' options and statistics, blocking or async;
//! [`Network::ping_all`] checks every pair of nodes at once. Both fail assertions with
//! iputils' summary:
//!
//! ```no_run
//! # use std::time::Duration;
//! # fn body(net: &netns_test::Network) -> netns_test::Result<()> {
//! let stats = net.local().ping("1.1.1.1").count(5).interval(Duration::ZERO).run()?;
//! stats.assert_loss_at_most(0.0).assert_rtt_at_most(Duration::from_millis(10));
//! net.ping_all()?.assert_all_reachable();
//! # Ok(()) }
//! ```
//!
//! See the [`ping`] module.
//!
//! # Topologies
//! Anything beyond the default pair of hosts is a few lines of [`TopologyBuilder`] or a
//! topology file ([`Topology::from_toml`]): hosts, routers and switches, IPv4 and IPv6, MTUs,
//! static and automatic routes, hostnames, and node names that resolve. At runtime a
//! [`LinkHandle`] goes down and up, is cut silently, or flaps, and [`Network::partition`]
//! splits the nodes into groups (the guards are in [`fault`]); the waits of [`wait`] replace
//! sleeps (a listener bound, an address usable, a route, a link ready).
//!
//! # Link conditions
//! A link may have [`Conditions`] per direction (delay, jitter, loss, rate, reorder, duplicate,
//! corrupt), given in the topology and changed while the test runs. They are applied by a
//! user-space engine that works on any kernel, or by netem where the kernel has it; every
//! random decision comes from a seed, printed when a test fails, so that `NETNS_TEST_SEED`
//! replays it. Loss, duplication and corruption spare ARP and IPv6 neighbour discovery unless
//! [`Conditions::impair_neighbour_discovery`] says otherwise. Links can be captured to pcap
//! files.
//!
//! ```no_run
//! use std::time::Duration;
//! use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};
//!
//! fn wan() -> TopologyBuilder {
//!     let slow = Conditions::new().delay(Duration::from_millis(10)).loss(0.01);
//!     Topology::builder()
//!         .host("client")
//!         .host("server")
//!         .link(Link::new("client", "server").addrs("10.0.0.1/24", "10.0.0.2/24").conditions(slow).capture())
//! }
//!
//! #[netns_test(topology = wan)]
//! fn survives_a_lossy_wan(net: &Network) {
//!     let stats = net.local().ping("10.0.0.2").count(100).interval(Duration::ZERO).run().unwrap();
//!     stats.assert_rtt_at_most(Duration::from_millis(30)).assert_loss_at_most(0.05);
//!     net.link("client", "server").set_conditions(Conditions::new().delay(Duration::from_millis(50))).unwrap();
//! }
//! ```
//!
//! # Firewalls
//! A host or router may have stateful [`Firewall`]s, presets (`block_inbound`, `udp_blocked`,
//! `corporate`, `pmtu_blackhole`) or [`FirewallRule`](topology::FirewallRule)s of your own,
//! given in the topology ([`TopologyBuilder::firewall`], a file's `[firewall]` table) and
//! replaced at runtime with [`Node::set_firewall`]. The kernel's nftables applies them through
//! netlink, rootless too, with no `nft` binary; a failed test lists what each rule dropped.
//!
//! # Modules
//! The names a test writes are at the crate root; the rest is in the module of its concept:
//! [`topology`] (the model, its file format and its errors), [`conditions`] (link
//! conditions and their counters), [`ping`] (the pinger and its statistics), [`wait`]
//! (readiness waits), [`fault`] (cuts, partitions and flaps) and [`probe`] (what this machine
//! can do).
//!
//! # The attribute
//! - `#[netns_test]` or `#[netns_test::test]`, on `fn` or `async fn` (a current-thread tokio
//!   runtime runs it), returning `()` or `Result<(), E>` with `E: Debug` (a [`TestOutcome`]).
//! - At most one parameter, the network: `net: &Network` (or `net: Network`). With rstest, put
//!   `#[rstest]` above `#[netns_test::test]` and call [`network()`] in the body.
//! - `timeout = "30s"`: the child is killed after that long (default 60 s, or
//!   `NETNS_TEST_TIMEOUT`). Any duration greater than zero, in the grammar of every duration
//!   of netns-test (see [Environment](#environment)): `"1.5s"`, `"1m 30s"`; the compiler
//!   evaluates it with the library's own parser, so a bad one is a compile error.
//! - Composes with `#[ignore]`, `#[should_panic]` and an existing `#[test]` written below it.
//!   A `#[test]` written above it expands first. From Rust 1.88 (which tells the attribute
//!   what is written above it), a function without parameters that is not `async` still makes
//!   one test, and a function with a parameter or an `async fn` is a compile error that says
//!   to move `#[test]` below; with older compilers, write it below.
//! - `topology = function`: a function returning a [`Topology`], a [`TopologyBuilder`] or a
//!   `Result<Topology, _>`; `topology_file = "tests/topologies/x.toml"`: a topology file,
//!   relative to the crate's `Cargo.toml`. The default is [`Topology::pair`].
//! - `crate = path`: where the generated code finds this crate when it goes by another name
//!   (a renamed dependency, or a crate that re-exports it), instead of `::netns_test`: with
//!   `lab = { package = "netns-test", ... }`, write `#[lab::test(crate = lab)]`.
//!
//! # Environment
//! A variable left unset means the default.
//! - `NETNS_TEST_TIMEOUT=90s`: the timeout of tests that set none (greater than zero).
//! - `NETNS_TEST_KEEP_ON_FAILURE=1` (for 10 minutes, or a duration such as `30m`): keep a
//!   failed test's child alive and print an `nsenter` command for each node (its network and
//!   UTS namespaces, the test's PID and mount namespaces), until Enter is pressed.
//! - `NETNS_TEST_MODE=root|rootless`: force a mode (`rootless`: a user namespace even when
//!   running as root).
//! - `NETNS_TEST_SEED=1234`: the seed of every link's random decisions, a whole number (a failed
//!   test prints the one it ran with).
//! - `NETNS_TEST_LINK_ENGINE=auto|userspace|netem`: what applies link conditions (`auto`: netem
//!   where the kernel has it, unless a link is captured or its loss, duplication or corruption
//!   spares neighbour discovery, which only the engine can do).
//! - `NETNS_TEST_CAPTURE=1`: capture every link with conditions; `NETNS_TEST_KEEP_CAPTURES=1`:
//!   keep captures of tests that pass; `NETNS_TEST_ARTIFACTS=dir`: where captures go (default
//!   `target/netns-test/<test>/`).
//! - `NETNS_TEST_TRACE=1`: how long each step of bringing the network up took (and the
//!   topology's one validation).
//! - `NETNS_TEST_REPORT=always|failure`: write the report (`report.html`, `report.json`, next
//!   to the captures) for tests that pass too, or for failed tests only (the default).
//! - `NETNS_TEST_FORK_SERVER=auto|1|0`: start tests' children from the fork server (a copy of
//!   the test binary's process made before `main`, which forks each child instead of an `exec`
//!   per test); `auto`, the default, and `1` do. Sudo mode never does.
//! - `NETNS_TEST_BUILD_AHEAD=1|0`: whether the fork server keeps a spare child with fresh
//!   namespaces and the default topology already up, for the next test without `topology` or
//!   `topology_file` (the default: yes; never with `NETNS_TEST_TRACE=1` or in sudo mode). Each
//!   spare serves one test; the README's list of these variables says when none is built.
//!
//! One grammar for all: a flag (`TRACE`, `CAPTURE`, `KEEP_CAPTURES`, `BUILD_AHEAD`, and
//! `KEEP_ON_FAILURE` besides its duration) is `1`, `true`, `yes` or `on`, or `0`, `false`, `no`
//! or `off`; a word (`root`, `auto`, ...) is one of those listed; both in any case, surrounding spaces ignored.
//! A duration is written as everywhere in netns-test (the attribute's `timeout`, topology
//! files): numbers with a unit, added up, such as `30s`, `1.5s`, `250ms` or `1m 30s` (units
//! ns, us/µs, ms, s, m/min, h, d, w, M for months, y and their long forms). Any other value,
//! an empty one included, is [`Error::Setting`], naming the variable, the value and what it
//! takes: a test fails with it, and [`sandbox`] returns it, before starting a child.

// Lets the crate's own tests use `#[netns_test]`, whose expansion names `::netns_test`.
extern crate self as netns_test;

pub mod conditions;
mod error;
mod impair;
mod names;
mod netlink;
mod network;
mod ns;
pub mod packets;
pub mod picture;
pub mod ping;
pub mod probe;
mod runner;
mod settings;
mod time;
pub mod timeline;
pub mod topology;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use conditions::Conditions;
pub use error::{Error, Result};
pub use netns_test_macros::{netns_test, test};
pub use network::InterfaceCounters;
pub use network::process;
pub use network::{Interface, LinkHandle, Network, Node, fault, nat, wait};
pub use runner::{DEFAULT_TEST_TIMEOUT, TestOutcome};
pub use topology::Firewall;
pub use topology::{Link, NodeKind, Topology, TopologyBuilder};
pub use wait::Protocol;

/// The network of the running test, for code that does not get it as a parameter (rstest
/// cases, helpers).
///
/// # Panics
/// Outside a `#[netns_test]` body or a [`sandbox`] body. [`try_network`] returns an error
/// instead.
#[track_caller]
pub fn network() -> &'static Network {
    match try_network() {
        Ok(network) => network,
        Err(error) => panic!("{error}"),
    }
}

/// The network of the running test, or [`Error::NotInTest`].
pub fn try_network() -> Result<&'static Network> {
    runner::child::network().ok_or(Error::NotInTest("netns_test::network()"))
}

/// Runs `body` in a fresh child process of the current program, inside `topology`, and waits
/// for it: the same machinery as `#[netns_test]`, for programs (examples, tools) rather than
/// tests. The body returns what a test may ([`TestOutcome`]): `()` or `Result<(), E>`.
///
/// The child re-executes the program from `main`, so code before this call runs again in the
/// child (with its standard output discarded). A program may call `sandbox` several times, in
/// a loop too, as long as it makes the same calls in the same order on every run: the child
/// skips the calls before its own (they return `Ok(())` at once) and exits after its body.
///
/// # Errors
/// [`Error::Child`] when the body panics, returns `Err` or the network cannot be built, with
/// the same message a test would fail with; [`Error::Isolation`] when this machine does not let
/// the program create namespaces.
///
/// ```no_run
/// use netns_test::{sandbox, Topology};
///
/// fn main() -> Result<(), netns_test::Error> {
///     sandbox(Topology::pair(), |net| {
///         println!("nodes: {:?}", net.nodes().iter().map(|n| n.name()).collect::<Vec<_>>());
///     })
/// }
/// ```
#[track_caller]
pub fn sandbox<R>(topology: Topology, body: impl FnOnce(&'static Network) -> R) -> Result<()>
where
    R: TestOutcome,
{
    let caller = std::panic::Location::caller();
    let site = format!("{}:{}", caller.file(), caller.line());
    runner::run_sandbox(site, topology, |network| body(network).into_outcome().map(|()| None)).map(drop)
}

/// [`sandbox`], with the value the body returns brought back from the child (through JSON):
/// measure something inside an isolated network and use it outside.
///
/// A child meets the sandbox calls made before its own again and skips them: those return
/// `T::default()` there, a placeholder nothing uses, since the child exits after its body.
///
/// # Errors
/// As [`sandbox`]; also when the value cannot be serialized or read back.
///
/// ```no_run
/// use netns_test::{sandbox_with, Topology};
///
/// let loss = sandbox_with(Topology::pair(), |net| {
///     net.local().ping("1.1.1.1").count(10).run().map(|stats| stats.loss())
/// })?;
/// assert_eq!(loss, 0.0);
/// # Ok::<(), netns_test::Error>(())
/// ```
#[track_caller]
pub fn sandbox_with<T, E>(
    topology: Topology,
    body: impl FnOnce(&'static Network) -> Result<T, E>,
) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default,
    E: std::fmt::Debug,
{
    let caller = std::panic::Location::caller();
    let site = format!("{}:{}", caller.file(), caller.line());
    let value = runner::run_sandbox(site, topology, |network| match body(network) {
        Ok(value) => {
            serde_json::to_string(&value).map(Some).map_err(|e| format!("cannot send the value back: {e}"))
        }
        Err(error) => Err(format!("{error:?}")),
    })?;
    // No value: this is a child skipping an earlier call.
    let Some(text) = value else { return Ok(T::default()) };
    serde_json::from_str(&text)
        .map_err(|e| Error::Child(format!("cannot read the sandbox's value back: {e}")))
}
