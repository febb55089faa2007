//! One node of the running network: a namespace, its interfaces, and the three ways to run
//! code inside it (a closure on a thread, a task on the node's runtime, a program).

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak, mpsc};
use std::thread;

use ipnet::IpNet;
use tokio::sync::oneshot;

use crate::error::{Error, Result, name_list};
use crate::netlink::{NetlinkRuntime, NodeNetlink};
use crate::ns::{self, NsFds, RunError};
use crate::settings::internal;
use crate::topology::{NodeKind, Plan};

/// One interface of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    name: String,
    index: u32,
    /// The plan's index of the link this interface belongs to.
    pub(super) link: usize,
    addrs: Vec<IpNet>,
    peer_node: String,
    peer_name: String,
    /// Where the interface's kernel counters are read.
    kernel: Kernel,
}

/// What an [`Interface`] needs to read its kernel counters: its node's netlink connection.
/// Two interfaces are equal by their data; this part does not take part.
#[derive(Clone)]
struct Kernel {
    node: String,
    netlink: NodeNetlink,
    netlink_rt: Arc<NetlinkRuntime>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kernel")
    }
}

impl PartialEq for Kernel {
    fn eq(&self, _: &Kernel) -> bool {
        true
    }
}

impl Eq for Kernel {}

/// The kernel's counters of one interface (`ip -s link`, netlink's `IFLA_STATS64`), as
/// [`Interface::counters`] reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterfaceCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received (Ethernet headers included).
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Received packets the kernel dropped.
    pub rx_dropped: u64,
    /// Packets to send that the kernel dropped.
    pub tx_dropped: u64,
    /// Bad packets received.
    pub rx_errors: u64,
    /// Packets that could not be sent.
    pub tx_errors: u64,
}

impl fmt::Display for InterfaceCounters {
    /// `rx 12 packets/1200 B (dropped 0, errors 0), tx …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} packets/{} B (dropped {}, errors {}), tx {} packets/{} B (dropped {}, errors {})",
            self.rx_packets,
            self.rx_bytes,
            self.rx_dropped,
            self.rx_errors,
            self.tx_packets,
            self.tx_bytes,
            self.tx_dropped,
            self.tx_errors
        )
    }
}

impl Interface {
    /// The kernel's counters of the interface now: packets, bytes, drops and errors each way
    /// (netlink's 64-bit statistics, as `ip -s link show` prints them).
    ///
    /// # Errors
    /// A netlink failure.
    pub fn counters(&self) -> Result<InterfaceCounters> {
        let Kernel { node, netlink, netlink_rt } = &self.kernel;
        let (node, handle, index) = (node.clone(), netlink.handle.clone(), self.index);
        let stats = netlink_rt.block_on(async move {
            crate::netlink::At { node: &node, handle: &handle }.stats64(index).await
        })?;
        Ok(InterfaceCounters {
            rx_packets: stats.rx_packets,
            tx_packets: stats.tx_packets,
            rx_bytes: stats.rx_bytes,
            tx_bytes: stats.tx_bytes,
            rx_dropped: stats.rx_dropped,
            tx_dropped: stats.tx_dropped,
            rx_errors: stats.rx_errors,
            tx_errors: stats.tx_errors,
        })
    }

    /// The interface name, e.g. `veth0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel's interface index in the node's namespace.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The addresses with their prefix lengths.
    pub fn addrs(&self) -> &[IpNet] {
        &self.addrs
    }

    /// The node at the other end of the link.
    pub fn peer_node(&self) -> &str {
        &self.peer_node
    }

    /// The interface at the other end of the link.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }
}

/// One node: a network namespace, its interfaces, and ways to run code inside it.
///
/// Sockets stay in the namespace they were created in, so a socket made inside a node (in
/// [`run`](Self::run), [`spawn`](Self::spawn) or a [`command`](Self::command)) may be used from
/// anywhere afterwards. Cloning is cheap.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    name: String,
    /// The plan's index of the node.
    index: usize,
    kind: NodeKind,
    /// Its interfaces now: the topology's, changed by the network's runtime paths
    /// (`paths.rs`: links added and removed, addresses replaced).
    interfaces: RwLock<Vec<Interface>>,
    fds: Arc<NsFds>,
    netlink: NodeNetlink,
    runtime: OnceLock<NodeRuntime>,
    netlink_rt: Arc<NetlinkRuntime>,
    /// Every node's addresses, by name, shared by the network's nodes.
    directory: Arc<Directory>,
    /// The network's timeline, shared by its nodes, set once the network is up.
    timeline: Arc<OnceLock<crate::timeline::Timeline>>,
    /// The network's runtime paths, shared by its nodes.
    paths: Arc<super::paths::Paths>,
}

/// A node held weakly, by what the node itself holds (the network's paths).
pub(super) struct WeakNode(Weak<NodeInner>);

impl WeakNode {
    pub(super) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

/// The nodes of a network and their addresses (IPv4 first, in interface order), by name:
/// what code handed a node needs to resolve the name of another (the pinger's targets). The
/// runtime paths keep it current.
#[derive(Debug)]
pub(crate) struct Directory {
    nodes: RwLock<Vec<(String, Vec<IpAddr>)>>,
}

impl Directory {
    /// The directory of the nodes of `plan`.
    pub(super) fn of(plan: &Plan) -> Directory {
        let nodes = plan
            .nodes
            .iter()
            .map(|node| {
                let all = node.ifaces.iter().flat_map(|iface| iface.addrs.iter().map(IpNet::addr));
                (node.name.clone(), v4_first(all))
            })
            .collect();
        Directory { nodes: RwLock::new(nodes) }
    }

    /// The addresses of node `name`, or `None` when the network has no such node.
    pub(crate) fn addrs(&self, name: &str) -> Option<Vec<IpAddr>> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        nodes.iter().find(|(node, _)| node == name).map(|(_, addrs)| addrs.clone())
    }

    /// The node names, in the order of the topology.
    pub(crate) fn names(&self) -> Vec<String> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        nodes.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Records that node `name` now has `addrs` (in interface order).
    fn set(&self, name: &str, addrs: Vec<IpAddr>) {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, known)) = nodes.iter_mut().find(|(node, _)| node == name) {
            *known = v4_first(addrs.into_iter());
        }
    }
}

/// `addrs`, IPv4 first, each family in its order.
fn v4_first(addrs: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    let (mut v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = addrs.partition(IpAddr::is_ipv4);
    v4.extend(v6);
    v4
}

/// A current-thread runtime on a thread inside the node, started on first use.
struct NodeRuntime {
    handle: tokio::runtime::Handle,
    // Dropping the sender ends the runtime's thread.
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("kind", &self.inner.kind)
            .field("interfaces", &self.interfaces())
            .finish()
    }
}

impl Node {
    // Each argument is a distinct part of the node, passed once from bring-up; a struct for
    // this one call would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        plan: &Plan,
        index: usize,
        kind: NodeKind,
        fds: NsFds,
        netlink: NodeNetlink,
        netlink_rt: Arc<NetlinkRuntime>,
        directory: Arc<Directory>,
        timeline: Arc<OnceLock<crate::timeline::Timeline>>,
        paths: Arc<super::paths::Paths>,
    ) -> Node {
        let spec = &plan.nodes[index];
        let kernel =
            Kernel { node: spec.name.clone(), netlink: netlink.clone(), netlink_rt: Arc::clone(&netlink_rt) };
        let interfaces = spec
            .ifaces
            .iter()
            .map(|iface| {
                let link = &plan.links[iface.link];
                let (peer, peer_iface) =
                    *link.ends.iter().find(|(node, _)| *node != index).expect("links join two nodes");
                Interface {
                    name: iface.name.clone(),
                    index: iface.index,
                    link: iface.link,
                    addrs: iface.addrs.clone(),
                    peer_node: plan.nodes[peer].name.clone(),
                    peer_name: plan.nodes[peer].ifaces[peer_iface].name.clone(),
                    kernel: kernel.clone(),
                }
            })
            .collect();
        Node {
            inner: Arc::new(NodeInner {
                name: spec.name.clone(),
                index,
                kind,
                interfaces: RwLock::new(interfaces),
                fds: Arc::new(fds),
                netlink,
                runtime: OnceLock::new(),
                netlink_rt,
                directory,
                timeline,
                paths,
            }),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Host, router or switch.
    pub fn kind(&self) -> NodeKind {
        self.inner.kind
    }

    /// The node's interfaces now (not counting `lo` and a switch's bridge): the topology's,
    /// with the links [added](super::Network::add_link) and [removed](super::LinkHandle::remove)
    /// at runtime and the addresses [renumbered](super::Network::renumber) since.
    pub fn interfaces(&self) -> Vec<Interface> {
        self.inner.interfaces.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The interface called `name` now, or [`Error::UnknownInterface`].
    pub fn interface(&self, name: &str) -> Result<Interface> {
        let interfaces = self.inner.interfaces.read().unwrap_or_else(PoisonError::into_inner);
        interfaces.iter().find(|i| i.name == name).cloned().ok_or_else(|| Error::UnknownInterface {
            node: self.inner.name.clone(),
            name: name.to_string(),
            known: name_list(interfaces.iter().map(|i| i.name.as_str())),
        })
    }

    /// Every address of the node now, IPv4 first, in interface order.
    pub fn addrs(&self) -> Vec<IpAddr> {
        let interfaces = self.inner.interfaces.read().unwrap_or_else(PoisonError::into_inner);
        v4_first(interfaces.iter().flat_map(|i| i.addrs.iter().map(IpNet::addr)))
    }

    /// The node's first address (IPv4 preferred), if it has one.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addrs().first().copied()
    }

    /// Runs `f` on a new thread inside the node and returns its result; a panic in `f` is
    /// resumed in the caller. `f` may borrow from the caller.
    ///
    /// # Panics
    /// When the thread cannot be started or cannot enter the node's namespace.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let name = &self.inner.name;
        ns::run_in(&self.inner.fds, &format!("node-{name}"), f).unwrap_or_else(|error| match error {
            RunError::Start(e) => panic!("cannot start a thread for node `{name}`: {e}"),
            RunError::Enter(e) => panic!("cannot enter the namespace of node `{name}`: {e}"),
        })
    }

    /// Spawns `future` on the node's runtime: a current-thread tokio runtime on a thread inside
    /// the node, started on first use. Sockets the task creates are in the node.
    ///
    /// # Panics
    /// When the runtime's thread cannot be started or cannot enter the node's namespace.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    /// The handle of the node's runtime (see [`spawn`](Self::spawn)).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        let runtime = self.inner.runtime.get_or_init(|| {
            start_runtime(&self.inner.name, Arc::clone(&self.inner.fds))
                .unwrap_or_else(|e| panic!("cannot start the runtime of node `{}`: {e:?}", self.inner.name))
        });
        &runtime.handle
    }

    /// A [`Command`](crate::process::Command) that runs `program` inside the node (its
    /// network namespace, and its UTS namespace when it has its own hostname): a
    /// [`std::process::Command`] whose start and exit, with its exit status, go on the
    /// network's timeline. Programs also stay in the test's PID namespace, so nothing they
    /// start outlives the test.
    pub fn command(&self, program: impl AsRef<OsStr>) -> super::process::Command {
        let mut command = Command::new(program);
        for name in internal::ALL {
            command.env_remove(name);
        }
        let fds = Arc::clone(&self.inner.fds);
        // SAFETY: the closure makes raw setns(2) calls on descriptors that `fds` keeps open.
        unsafe {
            command.pre_exec(move || {
                let (net, uts) = fds.raw();
                if libc::setns(net, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(uts) = uts {
                    if libc::setns(uts, libc::CLONE_NEWUTS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        super::process::Command::new(command, self.clone())
    }

    /// This node's part of [`Network::dump`](super::Network::dump).
    ///
    /// # Errors
    /// A netlink failure.
    pub fn dump(&self) -> Result<String> {
        let handle = self.inner.netlink.handle.clone();
        let header = format!("node {} ({})\n", self.inner.name, self.inner.kind.as_str());
        let name = self.inner.name.clone();
        let body = self.inner.netlink_rt.block_on(async move { crate::netlink::dump::dump(&handle).await });
        body.map(|body| header + &body)
            .map_err(|source| Error::netlink(name, "ip addr show; ip route show", source))
    }

    /// The plan's index of the node.
    pub(super) fn index(&self) -> usize {
        self.inner.index
    }

    /// The namespaces the node is held by.
    pub(crate) fn fds(&self) -> &NsFds {
        &self.inner.fds
    }

    /// Adds an event to the network's timeline (once the network is up).
    pub(crate) fn record(&self, kind: crate::timeline::EventKind, subject: String, detail: String) {
        if let Some(timeline) = self.inner.timeline.get() {
            timeline.record(kind, subject, detail);
        }
    }

    /// The network's nodes and their addresses, by name.
    pub(crate) fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    pub(crate) fn netlink(&self) -> &NodeNetlink {
        &self.inner.netlink
    }

    pub(crate) fn netlink_rt(&self) -> &NetlinkRuntime {
        &self.inner.netlink_rt
    }

    /// The network's runtime paths.
    pub(super) fn paths(&self) -> &super::paths::Paths {
        &self.inner.paths
    }

    pub(super) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// Replaces the node's interfaces with what `change` makes of them (the runtime paths'
    /// bookkeeping, after the kernel changed), and updates the network's directory.
    pub(super) fn change_interfaces(&self, change: impl FnOnce(&mut Vec<Interface>)) {
        let mut interfaces = self.inner.interfaces.write().unwrap_or_else(PoisonError::into_inner);
        change(&mut interfaces);
        let addrs = interfaces.iter().flat_map(|i| i.addrs.iter().map(IpNet::addr)).collect();
        drop(interfaces);
        self.inner.directory.set(&self.inner.name, addrs);
    }

    /// A new interface of this node, for a link added at runtime (plan index `link`).
    pub(super) fn new_interface(
        &self,
        name: String,
        index: u32,
        link: usize,
        addrs: Vec<IpNet>,
        peer: (String, String),
    ) -> Interface {
        let kernel = Kernel {
            node: self.inner.name.clone(),
            netlink: self.inner.netlink.clone(),
            netlink_rt: Arc::clone(&self.inner.netlink_rt),
        };
        Interface { name, index, link, addrs, peer_node: peer.0, peer_name: peer.1, kernel }
    }
}

impl Interface {
    /// Replaces the interface's addresses (runtime bookkeeping).
    pub(super) fn set_addrs(&mut self, addrs: Vec<IpNet>) {
        self.addrs = addrs;
    }
}

fn start_runtime(name: &str, fds: Arc<NsFds>) -> Result<NodeRuntime> {
    let (ready, receive) = mpsc::sync_channel(1);
    let (stop, stopped) = oneshot::channel::<()>();
    let thread_name = format!("node-{name}-rt");
    thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let setup = || -> std::io::Result<tokio::runtime::Runtime> {
                fds.enter()?;
                let for_workers = Arc::clone(&fds);
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    // Blocking-pool threads may be started from any thread; put them in the
                    // node too.
                    .on_thread_start(move || {
                        if let Err(error) = for_workers.enter() {
                            panic!("a runtime thread could not enter its node's namespace: {error}");
                        }
                    })
                    .build()
            };
            match setup() {
                Ok(runtime) => {
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    let _ = runtime.block_on(stopped);
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }
        })
        .map_err(|e| Error::io(format!("starting the runtime thread of node `{name}`"), e))?;
    let handle = receive
        .recv()
        .map_err(|_| {
            Error::io(format!("starting the runtime of node `{name}`"), std::io::ErrorKind::Other.into())
        })?
        .map_err(|e| Error::io(format!("starting the runtime of node `{name}`"), e))?;
    Ok(NodeRuntime { handle, _stop: stop })
}
