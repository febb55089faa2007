//! The live network of a test: its nodes (`node.rs`), brought up from the topology's plan
//! (`build.rs`), its links at runtime (`link.rs`), faults that end when their guard drops
//! ([`fault`]), and readiness waits ([`wait`]).

mod build;
mod capture;
pub mod fault;
mod link;
pub mod nat;
mod node;
mod observe;
mod paths;
pub mod process;
pub mod wait;

use std::fmt;
use std::os::fd::RawFd;
use std::sync::Arc;

pub use link::LinkHandle;
pub use node::InterfaceCounters;
pub use node::{Interface, Node};

use crate::error::{Error, Result, name_list};
use crate::impair::{Backend, MIDDLE};
use crate::netlink::NetlinkRuntime;
use crate::timeline::{Event, EventKind, Timeline};
use crate::topology::{Plan, Topology};

/// The network of a test: every node of its topology, alive for the whole test.
///
/// Get it as the test function's parameter (`fn t(net: &Network)`) or with
/// [`network()`](crate::network()). Cloning is cheap: clones share one network.
#[derive(Clone)]
pub struct Network {
    inner: Arc<NetworkInner>,
}

struct NetworkInner {
    nodes: Vec<Node>,
    local: usize,
    topology: Topology,
    plan: Arc<Plan>,
    /// The links with conditions, when there are any.
    backend: Option<Backend>,
    /// The paths as they are now: the links added and removed at runtime, the addresses and
    /// routes changed (`paths.rs`), and each link's cuts.
    paths: Arc<paths::Paths>,
    /// What happened to the network since it came up.
    timeline: Timeline,
    /// The periodic outages the topology gives its links, running for the network's life.
    /// (Their threads hold the network; a test's network lives until its process exits.)
    scheduled: std::sync::Mutex<Vec<fault::Outages>>,
    // Dropped last: the nodes' netlink connections run on it.
    netlink_rt: Arc<NetlinkRuntime>,
}

// A panic cannot leave a network or node half-updated: their state is the kernel's, reached
// through channels to the netlink thread. So they may cross `catch_unwind`, as a test that
// expects a panic needs.
impl std::panic::UnwindSafe for Network {}
impl std::panic::RefUnwindSafe for Network {}
impl std::panic::UnwindSafe for Node {}
impl std::panic::RefUnwindSafe for Node {}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("local", &self.local().name())
            .field("nodes", &self.inner.nodes)
            .finish()
    }
}

impl Network {
    pub(crate) fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    pub(crate) fn backend(&self) -> Option<&Backend> {
        self.inner.backend.as_ref()
    }

    pub(crate) fn netlink_rt(&self) -> &NetlinkRuntime {
        &self.inner.netlink_rt
    }

    pub(crate) fn timeline(&self) -> &Timeline {
        &self.inner.timeline
    }

    /// What happened to the network since it came up, oldest first: links down and up, cuts,
    /// partitions, flaps, condition changes and the test's own [`note`](Self::note)s. A failed
    /// test prints the latest of them after its failure.
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// use netns_test::timeline::EventKind;
    /// drop(net.link(net.local().name(), "test1").cut()?);
    /// let kinds: Vec<EventKind> = net.events().iter().map(|event| event.kind).collect();
    /// assert_eq!(kinds, [EventKind::NetworkUp, EventKind::Cut, EventKind::CutHealed]);
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.inner.timeline.recorded().events
    }

    /// Adds a note to the network's timeline (`"client started"`, `"second handshake"`), so
    /// that a failure report shows the test's own steps among the network's events.
    pub fn note(&self, text: impl Into<String>) {
        self.inner.timeline.record(EventKind::Note, "test", text);
    }

    /// The network's runtime paths.
    fn paths(&self) -> &paths::Paths {
        &self.inner.paths
    }

    /// The seed of the link conditions, when the network has links with conditions.
    pub fn random_seed(&self) -> Option<u64> {
        self.inner.backend.as_ref().map(Backend::seed)
    }

    /// The capture files being written (see [`Link::capture`](crate::Link::capture)).
    pub fn captures(&self) -> Vec<std::path::PathBuf> {
        self.inner.backend.as_ref().map(|c| c.captures().to_vec()).unwrap_or_default()
    }

    /// The node the test body runs in.
    pub fn local(&self) -> &Node {
        &self.inner.nodes[self.inner.local]
    }

    /// The node called `name`.
    ///
    /// # Panics
    /// When there is no such node; the message lists the nodes there are. Use
    /// [`try_node`](Self::try_node) to get an error instead.
    #[track_caller]
    pub fn node(&self, name: &str) -> &Node {
        match self.try_node(name) {
            Ok(node) => node,
            Err(error) => panic!("{error}"),
        }
    }

    /// The node called `name`, or [`Error::UnknownNode`].
    pub fn try_node(&self, name: &str) -> Result<&Node> {
        self.inner.nodes.iter().find(|node| node.name() == name).ok_or_else(|| Error::UnknownNode {
            name: name.to_string(),
            known: name_list(self.inner.nodes.iter().map(Node::name)),
        })
    }

    /// All nodes, in the order of the topology.
    pub fn nodes(&self) -> &[Node] {
        &self.inner.nodes
    }

    /// The topology this network was built from.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// What the kernel reports about every node, in a stable text form: interfaces with their
    /// state, MTU, MAC address (fixed by the topology) and addresses, and routes. Two networks built from equivalent topologies
    /// (a file and builder code, say) have equal dumps.
    ///
    /// # Errors
    /// A netlink failure.
    pub fn dump(&self) -> Result<String> {
        let mut text = String::new();
        for node in &self.inner.nodes {
            text.push_str(&node.dump()?);
        }
        Ok(text)
    }

    /// Where each node's namespaces are held, for the runner's `nsenter` hints: the nodes in
    /// order, then the middle namespace when there is one.
    pub(crate) fn namespaces(&self) -> Vec<HeldNamespaces> {
        let nodes = self.inner.nodes.iter().enumerate().map(|(index, node)| {
            let (net, uts) = node.fds().raw();
            let own = index == self.inner.local;
            HeldNamespaces {
                name: node.name().to_string(),
                net: (!own).then_some(net),
                uts: if own { None } else { uts },
            }
        });
        let middle = self.inner.backend.iter().map(|backend| HeldNamespaces {
            name: format!("({MIDDLE})"),
            net: Some(backend.middle().raw().0),
            uts: None,
        });
        nodes.chain(middle).collect()
    }

    /// Starts the periodic outages of the topology's links ([`Link::outages`](crate::Link::outages)),
    /// validated by the plan.
    fn start_scheduled_outages(&self) -> Result<()> {
        let mut scheduled = Vec::new();
        for (index, planned) in self.plan().links.iter().enumerate() {
            if let Some((every, length)) = planned.outages {
                let ends = planned.ends.map(|(node, _)| &self.inner.nodes[node]);
                scheduled.push(LinkHandle::new(self, index, ends)?.outages(every, length)?);
            }
        }
        *self.inner.scheduled.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = scheduled;
        Ok(())
    }

    /// Writes the captures out, for a test that failed.
    pub(crate) fn flush_captures(&self) {
        if let Some(backend) = &self.inner.backend {
            backend.flush();
        }
    }

    /// Removes the captures of a test that passed, unless asked to keep them.
    pub(crate) fn discard_captures(&self) {
        if let Some(backend) = &self.inner.backend {
            backend.discard_captures();
        }
    }
}

/// Where the namespaces of one node are held in this process (sent to the runner's parent
/// as they are, for `nsenter` hints).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HeldNamespaces {
    pub(crate) name: String,
    /// The descriptor of its network namespace; `None` for the process's own.
    pub(crate) net: Option<RawFd>,
    /// The descriptor of its UTS namespace; `None` for the process's own.
    pub(crate) uts: Option<RawFd>,
}
