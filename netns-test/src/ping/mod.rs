//! The ICMP pinger: reachability, latency and loss, with iputils' statistics.
//!
//! [`Node::ping`] starts a [`Ping`] from any node of the test's network (the test body's own
//! included); [`run`](Ping::run) blocks, [`run_async`](Ping::run_async) awaits. Both return
//! [`PingStats`]: iputils' counters and RTT figures, a record per probe, a `Display` that prints
//! iputils' summary block, and assertions that fail with that summary.
//! [`Network::ping_all`](crate::Network::ping_all) pings every address from every host and
//! router at once and returns a [`PingMatrix`].
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use netns_test::{Network, netns_test};
//!
//! #[netns_test]
//! fn the_peer_answers(net: &Network) -> netns_test::Result<()> {
//!     let stats = net.local().ping("1.1.1.1").count(5).interval(Duration::ZERO).run()?;
//!     println!("{stats}");
//!     stats.assert_loss_at_most(0.0).assert_rtt_at_most(Duration::from_millis(50));
//!     net.ping_all()?.assert_all_reachable();
//!     Ok(())
//! }
//! ```
//!
//! # How it works
//! Each pinger sends from a raw ICMP (or ICMPv6) socket created inside its source node, so the
//! probes take that node's routes and addresses. Probes are built and parsed with
//! `pnet_packet`, carry an echo identifier no other pinger of the process holds at the time
//! (a kernel filter on the socket passes only replies with it, so concurrent pingers in one
//! node never see each other's replies; the pingers of `ping_all` share a socket per node and
//! tell their replies apart by it), and are timed from just before `sendto` to the kernel's
//! receive timestamp (`SO_TIMESTAMPNS`), as iputils times them. ICMP errors that quote a probe
//! (time exceeded, destination unreachable) answer it and are recorded with the address that
//! sent them.
//!
//! Counts, intervals and deadlines behave as iputils' `-c`, `-i` and `-w`; the differences
//! are that a run without count or deadline sends one probe rather than pinging forever, and
//! that the [`timeout`](Ping::timeout) applies to each probe (see there).

mod assert;
mod engine;
mod icmp;
mod ident;
mod matrix;
mod session;
mod socket;
mod stats;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use icmp::IcmpErrorKind;
pub use matrix::PingMatrix;
pub use socket::Source;
pub use stats::{IcmpError, PingStats, Probe, ProbeError, Reply};

use self::engine::{Engine, Request};
use self::icmp::Family;
use self::session::Settings;
use crate::error::{Error, Result, name_list};
use crate::network::Node;

/// The default interval between probes, as iputils'.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The default time a probe waits for its reply. iputils waits up to 10 s; in a test network
/// a reply that takes two seconds means something is broken, and unreachable targets should
/// not slow a test down more than that.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The default payload size in bytes, as iputils' (64-byte ICMP messages).
pub const DEFAULT_SIZE: usize = 56;
/// The longest `interval`, `timeout` or `deadline` a ping accepts.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// What to ping: an address, or a node of the test's network (its first address, IPv4
/// preferred, or the first of the source address's family when [`Ping::source`] names one).
///
/// Converts from `IpAddr`, `Ipv4Addr`, `Ipv6Addr`, `&Node`, and strings: a string that parses
/// as an address is one, anything else is a node name, resolved when the ping runs.
#[derive(Clone, Debug)]
pub struct PingTarget(TargetKind);

#[derive(Clone, Debug)]
enum TargetKind {
    Addr(IpAddr),
    Name(String),
    Node(Node),
}

impl PingTarget {
    /// The target as written, as the summary names it.
    fn label(&self) -> String {
        match &self.0 {
            TargetKind::Addr(addr) => addr.to_string(),
            TargetKind::Name(name) => name.clone(),
            TargetKind::Node(node) => node.name().to_string(),
        }
    }

    /// The address to ping from node `from`: the target's own, or the first of `family` (of
    /// any family when `None`) of the node the target names, looked up in `from`'s directory
    /// of the network's nodes.
    fn resolve(&self, from: &Node, family: Option<Family>) -> std::result::Result<IpAddr, String> {
        let (name, addrs) = match &self.0 {
            TargetKind::Addr(addr) => return Ok(*addr),
            TargetKind::Node(node) => (node.name(), node.addrs()),
            TargetKind::Name(name) => {
                let directory = from.directory();
                let addrs = directory.addrs(name).ok_or_else(|| {
                    format!(
                        "`{name}` is neither an IP address nor a node of the network, which has {}",
                        name_list(directory.names().iter().map(String::as_str))
                    )
                })?;
                (name.as_str(), addrs)
            }
        };
        match family {
            None => addrs.first().copied(),
            Some(family) => addrs.iter().copied().find(|addr| Family::of(*addr) == family),
        }
        .ok_or_else(|| match family {
            None => format!("node `{name}` has no address"),
            Some(Family::V4) => format!("node `{name}` has no IPv4 address"),
            Some(Family::V6) => format!("node `{name}` has no IPv6 address"),
        })
    }
}

impl From<IpAddr> for PingTarget {
    fn from(addr: IpAddr) -> PingTarget {
        PingTarget(TargetKind::Addr(addr))
    }
}

impl From<Ipv4Addr> for PingTarget {
    fn from(addr: Ipv4Addr) -> PingTarget {
        PingTarget(TargetKind::Addr(addr.into()))
    }
}

impl From<Ipv6Addr> for PingTarget {
    fn from(addr: Ipv6Addr) -> PingTarget {
        PingTarget(TargetKind::Addr(addr.into()))
    }
}

impl From<&str> for PingTarget {
    fn from(text: &str) -> PingTarget {
        match text.parse() {
            Ok(addr) => PingTarget(TargetKind::Addr(addr)),
            Err(_) => PingTarget(TargetKind::Name(text.to_string())),
        }
    }
}

impl From<String> for PingTarget {
    fn from(text: String) -> PingTarget {
        PingTarget::from(text.as_str())
    }
}

impl From<&Node> for PingTarget {
    fn from(node: &Node) -> PingTarget {
        PingTarget(TargetKind::Node(node.clone()))
    }
}

impl fmt::Display for PingTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// A ping from one node to one target: iputils' `ping` as a builder. Nothing is sent until
/// [`run`](Self::run) or [`run_async`](Self::run_async).
///
/// | method | iputils | default |
/// |---|---|---|
/// | [`count`](Self::count) | `-c` | 1, unless a deadline is set |
/// | [`interval`](Self::interval) | `-i` | 1 s |
/// | [`timeout`](Self::timeout) | `-W` (per probe here) | 2 s |
/// | [`deadline`](Self::deadline) | `-w` | none |
/// | [`size`](Self::size) | `-s` | 56 bytes |
/// | [`ttl`](Self::ttl) | `-t` | the node's default (64) |
/// | [`source`](Self::source) | `-I` | chosen by the node's routes |
/// | [`dont_fragment`](Self::dont_fragment) | `-M do` | off |
///
/// ```no_run
/// # use std::time::Duration;
/// # fn body(net: &netns_test::Network) -> netns_test::Result<()> {
/// let stats = net.node("test1").ping("1.1.1.2").count(100).interval(Duration::ZERO).run()?;
/// assert_eq!(stats.loss(), 0.0, "{stats}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a ping does nothing until `run` or `run_async` is called"]
pub struct Ping {
    node: Node,
    target: PingTarget,
    count: Option<u64>,
    interval: Duration,
    timeout: Duration,
    deadline: Option<Duration>,
    size: usize,
    ttl: Option<u8>,
    source: Option<Source>,
    dont_fragment: bool,
}

impl Node {
    /// A ping from this node to `target` (an address, a node, or a node's name); see [`Ping`].
    pub fn ping(&self, target: impl Into<PingTarget>) -> Ping {
        Ping {
            node: self.clone(),
            target: target.into(),
            count: None,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_PROBE_TIMEOUT,
            deadline: None,
            size: DEFAULT_SIZE,
            ttl: None,
            source: None,
            dont_fragment: false,
        }
    }
}

impl Ping {
    /// How many probes to send (`ping -c`), at least 1. With a [`deadline`](Self::deadline),
    /// probes are sent until `count` of them are answered or the deadline passes, as with
    /// `ping -c N -w T`. Without either, one probe is sent (iputils would ping forever).
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// The time between probes (`ping -i`). Zero sends the next probe as soon as the previous
    /// one is answered, or 10 ms after it when no answer has come (`ping -i 0`, `ping -f`).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long each probe waits for its reply; a later reply counts as lost. iputils' `-W`
    /// only bounds the wait after the last probe; here each probe has its own timeout, and the
    /// run ends when every probe is answered or timed out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest the whole run may take (`ping -w`); pending probes then count as lost.
    /// Without a [`count`](Self::count), probes are sent until the deadline. As with iputils,
    /// an ICMP error ends a run that has a deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The payload size in bytes (`ping -s`); at most 65507 for IPv4 and 65527 for IPv6.
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// The TTL (IPv4) or hop limit (IPv6) of the probes (`ping -t`), 1 to 255.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Forbids fragmentation (`ping -M do`): IPv4 probes carry the DF bit, so routers answer
    /// one too large for the next hop with [`FragmentationNeeded`](IcmpErrorKind::FragmentationNeeded)
    /// and that hop's MTU instead of fragmenting it (IPv6 routers never fragment, and answer
    /// with [`PacketTooBig`](IcmpErrorKind::PacketTooBig) either way); the node itself refuses
    /// to send a probe larger than the path MTU it has learnt (`EMSGSIZE`).
    pub fn dont_fragment(mut self, dont_fragment: bool) -> Self {
        self.dont_fragment = dont_fragment;
        self
    }

    /// Sends from this address or through this interface (`ping -I`): an address given as
    /// text is one, anything else is an interface name.
    pub fn source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Pings on the calling thread until done.
    ///
    /// # Errors
    /// [`Error::Ping`] for an invalid option (a zero count, timeout or deadline, a TTL of 0, a
    /// size too large for the IP version, a duration over a day) or a target that does not
    /// resolve,
    /// [`Error::UnknownInterface`] for a source interface the node lacks, and [`Error::Io`]
    /// when the socket cannot be opened or used. Lost probes are not errors: they show in the
    /// statistics.
    pub fn run(self) -> Result<PingStats> {
        let stats = Engine::open(vec![self.request()?])?.run()?;
        let stats = stats.into_iter().next().expect("one pinger, one result");
        self.record(&stats);
        Ok(stats)
    }

    /// Puts the finished ping on the network's timeline, with iputils' summary on one line.
    pub(super) fn record(&self, stats: &PingStats) {
        let text = stats.to_string();
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let target = lines
            .next()
            .and_then(|header| header.strip_prefix("--- ")?.strip_suffix(" ping statistics ---"))
            .map_or_else(|| self.target.label(), str::to_string);
        let detail: Vec<&str> = lines.collect();
        self.node.record(
            crate::timeline::EventKind::Ping,
            format!("{} → {target}", self.node.name()),
            detail.join("; "),
        );
    }

    /// Pings on the current tokio runtime (the body of an `async` test, or a node's runtime
    /// through [`Node::spawn`]) until done, without blocking it. The runtime needs its I/O and
    /// time drivers (`enable_all`), as those of netns-test have; sleeps then have tokio's
    /// millisecond resolution, so sub-millisecond intervals are rounded up.
    ///
    /// # Errors
    /// As [`run`](Self::run); also [`Error::Ping`] outside a tokio runtime.
    pub async fn run_async(self) -> Result<PingStats> {
        let request = self.request()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(self.error("`run_async` must be awaited inside a tokio runtime; use `run` elsewhere"));
        }
        let stats = Engine::open(vec![request])?.run_async().await?;
        let stats = stats.into_iter().next().expect("one pinger, one result");
        self.record(&stats);
        Ok(stats)
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Ping { node: self.node.name().to_string(), target: self.target.label(), reason: reason.into() }
    }

    /// Checks the options and resolves the target.
    pub(crate) fn request(&self) -> Result<Request> {
        if self.count == Some(0) {
            return Err(self.error("`count` must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(self.error("`timeout` must be longer than zero"));
        }
        if self.deadline.is_some_and(|deadline| deadline.is_zero()) {
            return Err(self.error("`deadline` must be longer than zero"));
        }
        if self.ttl == Some(0) {
            return Err(self.error("`ttl` must be 1 to 255"));
        }
        // Longer durations would overflow the clock arithmetic, and mean no test anyway.
        let durations =
            [("interval", Some(self.interval)), ("timeout", Some(self.timeout)), ("deadline", self.deadline)];
        if let Some((name, value)) = durations
            .into_iter()
            .find_map(|(name, value)| value.filter(|v| *v > MAX_DURATION).map(|v| (name, v)))
        {
            return Err(self.error(format!("`{name}` {value:?} is longer than a day")));
        }
        let source_family = match &self.source {
            Some(Source::Addr(addr)) => Some(Family::of(*addr)),
            _ => None,
        };
        let target = self.target.resolve(&self.node, source_family).map_err(|reason| self.error(reason))?;
        let family = Family::of(target);
        if source_family.is_some_and(|source| source != family) {
            return Err(self.error("the source address and the target are of different IP versions"));
        }
        if self.size > family.max_payload() {
            return Err(self.error(format!(
                "`size` {} is larger than the largest {} echo payload, {} bytes",
                self.size,
                if family == Family::V4 { "IPv4" } else { "IPv6" },
                family.max_payload()
            )));
        }
        Ok(Request {
            node: self.node.clone(),
            label: self.target.label(),
            target,
            settings: Settings {
                count: self.count.or(if self.deadline.is_some() { None } else { Some(1) }),
                interval: self.interval,
                timeout: self.timeout,
                deadline: self.deadline,
                size: self.size,
            },
            ttl: self.ttl,
            source: self.source.clone(),
            dont_fragment: self.dont_fragment,
        })
    }
}
