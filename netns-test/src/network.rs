//! The live network of a test: its nodes, their interfaces, and running code inside them.

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::oneshot;

use crate::error::{Error, Result, name_list};
use crate::impair::Backend;
use crate::netlink::NetlinkRuntime;
use crate::netlink::{At, NodeNetlink, VethEnd};
use crate::ns::{self, NsFds, NsRequest};
use crate::runner::protocol::{NodeFds, env};
use crate::topology::{NodeKind, Plan, PlannedLink, Topology};
use crate::trace::Trace;

/// How long bringing a network up may wait for the kernel to report its links ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

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
    carrier: Option<Backend>,
    /// How many cuts each link of the plan has now (a link is ready only when it has none).
    cuts: Vec<AtomicUsize>,
    // Dropped last: the nodes' netlink connections run on it.
    netlink_rt: Arc<NetlinkRuntime>,
}

// A panic cannot leave a network or node half-updated: their state is the kernel's, reached
// through channels to the control thread. So they may cross `catch_unwind`, as a test that
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
    /// Builds `topology`. Its local node is the calling process's own network namespace, so
    /// this only ever runs inside a test's child process; `test` names the test (for the
    /// directory of its captures).
    pub(crate) fn start(topology: &Topology, test: &str) -> Result<Network> {
        let trace = Trace::new("network");
        // The topology was validated and planned once, when it was made; bring-up works from
        // that plan.
        let plan = Arc::clone(topology.plan());
        let netlink_rt = Arc::new(NetlinkRuntime::start()?);
        trace.mark("netlink thread started (the topology's plan reused, not validated again)");
        let local = plan.local;

        // The other nodes' namespaces are made on worker threads while this thread configures
        // the local node, the namespace the child process was born in.
        // Links with conditions cross a hidden wire namespace, made last.
        let others: Vec<usize> = (0..plan.nodes.len()).filter(|i| *i != local).collect();
        let has_wire = plan.links.iter().any(|link| link.wire.is_some());
        let mut requests: Vec<NsRequest<'_>> = others
            .iter()
            .map(|&i| NsRequest { name: &plan.nodes[i].name, hostname: plan.nodes[i].hostname })
            .collect();
        if has_wire {
            requests.push(NsRequest { name: WIRE, hostname: false });
        }
        let open_node = |index: usize| -> Result<NodeNetlink> {
            configure_namespace(&plan, index)?;
            NodeNetlink::open(netlink_rt.handle())
                .map_err(|e| Error::io(format!("opening netlink in node `{}`", plan.nodes[index].name), e))
        };
        let (mut made, (local_fds, local_netlink)) = ns::create_namespaces(
            &requests,
            |k, _| match others.get(k) {
                Some(&index) => open_node(index),
                None => {
                    configure_wire()?;
                    NodeNetlink::open(netlink_rt.handle())
                        .map_err(|e| Error::io("opening netlink in the wire namespace", e))
                }
            },
            || {
                let local_spec = &plan.nodes[local];
                let netlink = open_node(local)?;
                let fds = NsFds::of_current_thread(local_spec.hostname)
                    .map_err(|e| Error::io("opening the test's own namespaces", e))?;
                trace.mark("local node configured");
                Ok((fds, netlink))
            },
        )?;

        trace.mark(&format!("{} namespaces created", requests.len()));
        let wire_ns = if has_wire { made.pop() } else { None };
        let mut slots: Vec<Option<(NsFds, NodeNetlink)>> = (0..plan.nodes.len()).map(|_| None).collect();
        slots[local] = Some((local_fds, local_netlink));
        for (k, made) in made.into_iter().enumerate() {
            slots[others[k]] = Some(made);
        }
        let nodes: Vec<Node> = slots
            .into_iter()
            .zip(&plan.nodes)
            .enumerate()
            .map(|(index, (slot, spec))| {
                let (fds, netlink) = slot.expect("every node has namespaces");
                Node::new(&plan, index, spec.kind, fds, netlink, Arc::clone(&netlink_rt))
            })
            .collect();

        let wire_ns = wire_ns.map(|(fds, netlink)| (Arc::new(fds), netlink));
        let wiring: Vec<(String, NodeNetlink, i32)> = nodes
            .iter()
            .map(|node| (node.name().to_string(), node.inner.netlink.clone(), node.inner.fds.raw().0))
            .chain(wire_ns.iter().map(|(fds, netlink)| (WIRE.to_string(), netlink.clone(), fds.raw().0)))
            .collect();
        let wired = netlink_rt.spawn(wire(Arc::clone(&plan), wiring, trace));
        // While the control thread wires the network, this thread makes node names resolve for
        // the body and for every program it starts, and names the local node.
        crate::names::install_hosts_file(&crate::names::hosts_file(&plan))?;
        let local_spec = &plan.nodes[local];
        if local_spec.hostname {
            nix::unistd::sethostname(&local_spec.name).map_err(|e| {
                Error::io(format!("setting the hostname of node `{}`", local_spec.name), e.into())
            })?;
        }
        trace.mark("hosts file installed");
        wired.wait()?;
        if plan.links.iter().any(|link| link.own_queue) {
            give_own_queues(&plan, &nodes)?;
            trace.mark("the ports of big switches given their own receive queues");
        }

        let carrier = match wire_ns {
            Some((fds, netlink)) => {
                let seed = crate::impair::network_seed(plan.random_seed)?;
                let carrier = Backend::start(&plan, seed, fds, netlink, &netlink_rt, test)?;
                trace.mark("links with conditions carried");
                Some(carrier)
            }
            None => None,
        };
        let cuts = plan.links.iter().map(|_| AtomicUsize::new(0)).collect();
        let inner =
            NetworkInner { nodes, local, topology: topology.clone(), plan, carrier, cuts, netlink_rt };
        Ok(Network { inner: Arc::new(inner) })
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    pub(crate) fn carrier(&self) -> Option<&Backend> {
        self.inner.carrier.as_ref()
    }

    pub(crate) fn netlink_rt(&self) -> &NetlinkRuntime {
        &self.inner.netlink_rt
    }

    /// The number of cuts plan link `link` has now.
    pub(crate) fn cuts(&self, link: usize) -> &AtomicUsize {
        &self.inner.cuts[link]
    }

    /// The seed of the link conditions, when the network has links with conditions.
    pub fn random_seed(&self) -> Option<u64> {
        self.inner.carrier.as_ref().map(Backend::seed)
    }

    /// The capture files being written (see [`Link::capture`](crate::Link::capture)).
    pub fn captures(&self) -> Vec<std::path::PathBuf> {
        self.inner.carrier.as_ref().map(|c| c.captures().to_vec()).unwrap_or_default()
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

    pub(crate) fn node_fds(&self) -> Vec<NodeFds> {
        let nodes = self.inner.nodes.iter().enumerate().map(|(index, node)| {
            let (net, uts) = node.inner.fds.raw();
            let own = index == self.inner.local;
            NodeFds {
                name: node.name().to_string(),
                net: (!own).then_some(net),
                uts: if own { None } else { uts },
            }
        });
        let wire = self.inner.carrier.iter().map(|carrier| NodeFds {
            name: format!("({WIRE})"),
            net: Some(carrier.middle().raw().0),
            uts: None,
        });
        nodes.chain(wire).collect()
    }
}

/// The name of the namespace that carries the links with conditions.
const WIRE: &str = "wire";

/// Brings `lo` up in the wire namespace, and keeps its middle ends from making IPv6
/// link-local addresses (and so router solicitations and MLD reports).
fn configure_wire() -> Result<()> {
    ns::loopback_up().map_err(|e| Error::io("setting lo up in the wire namespace", e))?;
    ns::write_sysctl("net.ipv6.conf.default.addr_gen_mode", "1")
        .map_err(|e| Error::io("setting net.ipv6.conf.default.addr_gen_mode in the wire namespace", e))
}

/// Brings `lo` up and sets the sysctls of a fresh namespace, from a thread inside it.
fn configure_namespace(plan: &Plan, index: usize) -> Result<()> {
    let node = &plan.nodes[index];
    ns::loopback_up().map_err(|e| Error::io(format!("setting lo up in node `{}`", node.name), e))?;
    // Let unprivileged programs in the node use ICMP echo sockets (`ping` without setuid). A
    // user namespace maps only group 0, and the kernel refuses a range with unmapped groups.
    if ns::write_sysctl("net.ipv4.ping_group_range", "0 2147483647").is_err() {
        ns::write_sysctl("net.ipv4.ping_group_range", "0 0").map_err(|e| {
            Error::io(format!("setting net.ipv4.ping_group_range in node `{}`", node.name), e)
        })?;
    }
    let mut settings: Vec<(&str, &str)> = Vec::new();
    if plan.ipv6 {
        // Addresses are added with IFA_F_NODAD; link-local ones must not wait for DAD either,
        // and addresses must survive a link going down and up again.
        settings.extend([
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.keep_addr_on_down", "1"),
            ("net.ipv6.conf.default.keep_addr_on_down", "1"),
        ]);
    } else {
        // No IPv6 link-local addresses, hence no router solicitations or MLD reports.
        settings.push(("net.ipv6.conf.default.addr_gen_mode", "1"));
    }
    if node.kind == NodeKind::Router {
        settings.push(("net.ipv4.ip_forward", "1"));
        if plan.ipv6 {
            settings.push(("net.ipv6.conf.all.forwarding", "1"));
        }
    }
    for (key, value) in settings {
        ns::write_sysctl(key, value)
            .map_err(|e| Error::io(format!("setting {key}={value} in node `{}`", node.name), e))?;
    }
    Ok(())
}

/// Sets the offloads of the links that [`PlannedLink::own_queue`] marks: GRO on at the end
/// facing the switch, TSO off at the switch's port. One short-lived thread visits each
/// namespace concerned in turn (a thread per node would cost more than the ioctls).
fn give_own_queues(plan: &Plan, nodes: &[Node]) -> Result<()> {
    use crate::ns::Offload;
    // Per node concerned: its interfaces to change.
    let work: Vec<(usize, Vec<&str>)> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let ifaces = node.ifaces.iter().filter(|iface| plan.links[iface.link].own_queue);
            (index, ifaces.map(|iface| iface.name.as_str()).collect::<Vec<_>>())
        })
        .filter(|(_, ifaces)| !ifaces.is_empty())
        .collect();
    let visit = || -> Result<()> {
        for (index, changes) in &work {
            let name = &plan.nodes[*index].name;
            nix::sched::setns(&nodes[*index].inner.fds.net, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io(format!("entering node `{name}` to set offloads"), e.into()))?;
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)
                .map_err(|e| Error::io(format!("opening a socket in node `{name}`"), e))?;
            let (offload, on) = if plan.nodes[*index].kind == NodeKind::Switch {
                (Offload::Tso, false)
            } else {
                (Offload::Gro, true)
            };
            for &ifname in changes {
                ns::set_offload(&socket, ifname, offload, on).map_err(|e| {
                    let what = format!("{offload:?}").to_lowercase();
                    let state = if on { "on" } else { "off" };
                    Error::io(format!("ethtool -K {ifname} {what} {state} in node `{name}`"), e)
                })?;
            }
        }
        Ok(())
    };
    thread::scope(|scope| {
        thread::Builder::new()
            .name("netns-test-offload".into())
            .spawn_scoped(scope, visit)
            .map_err(|e| Error::io("starting a thread to set offloads", e))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Creates links, addresses and routes, and waits until every link is ready.
async fn wire(plan: Arc<Plan>, nodes: Vec<(String, NodeNetlink, i32)>, trace: Trace) -> Result<()> {
    use futures_util::future::try_join_all;
    let at = |index: usize| At { node: &nodes[index].0, handle: &nodes[index].1.handle };

    try_join_all(plan.nodes.iter().enumerate().filter_map(|(index, node)| {
        node.bridge
            .map(|bridge| async move { at(index).add_bridge(bridge, crate::topology::BRIDGE_NAME).await })
    }))
    .await?;
    if plan.nodes.iter().any(|node| node.bridge.is_some()) {
        trace.mark("bridges created");
    }

    // The wire namespace, when there is one, follows the nodes in `nodes`.
    let wire_at = plan.nodes.len();
    // Each pair: the end made by the request, in its own namespace (`sender`); the end made
    // in place by the same request; the namespace of that second end, which cannot be created
    // up and is set up afterwards (`receiver`).
    let mut pairs: Vec<(usize, VethEnd, VethEnd, usize)> = Vec::new();
    for (index, link) in plan.links.iter().enumerate() {
        let end = |slot: usize| {
            let (node, iface) = link.ends[slot];
            let spec = &plan.nodes[node];
            VethEnd {
                node: spec.name.clone(),
                name: spec.ifaces[iface].name.clone(),
                index: spec.ifaces[iface].index,
                netns: nodes[node].2,
                mtu: link.mtu,
                controller: spec.bridge,
            }
        };
        match link.wire {
            None => {
                // A switch's port is created in the switch's namespace, where its bridge is
                // known.
                let main = if plan.nodes[link.ends[1].0].kind == NodeKind::Switch { 1 } else { 0 };
                pairs.push((link.ends[main].0, end(main), end(1 - main), link.ends[1 - main].0));
            }
            Some(wire) => {
                let names = PlannedLink::wire_names(index);
                for slot in 0..2 {
                    let middle = VethEnd {
                        node: WIRE.to_string(),
                        name: names[slot].clone(),
                        index: wire[slot],
                        netns: nodes[wire_at].2,
                        mtu: link.mtu,
                        controller: None,
                    };
                    pairs.push((link.ends[slot].0, end(slot), middle, wire_at));
                }
            }
        }
    }
    try_join_all(pairs.iter().map(|(sender, a, b, receiver)| async move {
        at(*sender).add_veth(a, b).await?;
        at(*receiver).set_link_up(b.index, &b.name, true).await
    }))
    .await?;
    trace.mark(&format!("{} veth pairs created", plan.links.len()));

    try_join_all(plan.nodes.iter().enumerate().flat_map(|(index, node)| {
        node.ifaces.iter().flat_map(move |iface| {
            iface
                .addrs
                .iter()
                .map(move |addr| async move { at(index).add_address(iface.index, &iface.name, *addr).await })
        })
    }))
    .await?;
    trace.mark("addresses added");

    let deadline = Instant::now() + READY_TIMEOUT;
    try_join_all(plan.nodes.iter().enumerate().flat_map(|(index, node)| {
        let nodes = &nodes;
        node.ifaces.iter().map(move |iface| async move {
            let netlink = &nodes[index].1;
            netlink.links.wait(&netlink.handle, iface.index, deadline, |s| s.ready()).await.map_err(|last| {
                Error::Timeout {
                    what: format!(
                        "interface `{}` of node `{}` to be up with carrier (last state: {last:?})",
                        iface.name, node.name
                    ),
                    after: READY_TIMEOUT,
                }
            })
        })
    }))
    .await?;
    if let Some((_, wire, _)) = nodes.get(wire_at) {
        try_join_all(plan.links.iter().enumerate().filter_map(|(index, link)| link.wire.map(|w| (index, w))).flat_map(
            |(index, w)| {
                let names = PlannedLink::wire_names(index);
                (0..2).map(move |slot| {
                    let name = names[slot].clone();
                    async move {
                        wire.links.wait(&wire.handle, w[slot], deadline, |s| s.ready()).await.map_err(|last| {
                            Error::Timeout {
                                what: format!("interface `{name}` of the wire namespace to be up (last state: {last:?})"),
                                after: READY_TIMEOUT,
                            }
                        })
                    }
                })
            },
        ))
        .await?;
    }
    trace.mark("every link reported ready");

    try_join_all(plan.nodes.iter().enumerate().flat_map(|(index, node)| {
        node.routes.iter().map(move |route| async move { at(index).add_route(route.to, route.via).await })
    }))
    .await?;
    trace.mark("routes added");

    try_join_all(plan.static_neighbours.iter().map(|&(node, index, addr, mac)| async move {
        at(node).add_static_neighbour(index, addr, mac).await
    }))
    .await?;
    if !plan.static_neighbours.is_empty() {
        trace.mark(&format!("{} static neighbour entries added", plan.static_neighbours.len()));
    }
    Ok(())
}

/// One interface of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    name: String,
    index: u32,
    /// The plan's index of the link this interface belongs to.
    pub(crate) link: usize,
    addrs: Vec<IpNet>,
    peer_node: String,
    peer_name: String,
}

impl Interface {
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
    kind: NodeKind,
    interfaces: Vec<Interface>,
    fds: Arc<NsFds>,
    netlink: NodeNetlink,
    runtime: OnceLock<NodeRuntime>,
    netlink_rt: Arc<NetlinkRuntime>,
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
            .field("interfaces", &self.inner.interfaces)
            .finish()
    }
}

impl Node {
    fn new(
        plan: &Plan,
        index: usize,
        kind: NodeKind,
        fds: NsFds,
        netlink: NodeNetlink,
        netlink_rt: Arc<NetlinkRuntime>,
    ) -> Node {
        let spec = &plan.nodes[index];
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
                }
            })
            .collect();
        Node {
            inner: Arc::new(NodeInner {
                name: spec.name.clone(),
                kind,
                interfaces,
                fds: Arc::new(fds),
                netlink,
                runtime: OnceLock::new(),
                netlink_rt,
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

    /// The node's interfaces (not counting `lo` and a switch's bridge).
    pub fn interfaces(&self) -> &[Interface] {
        &self.inner.interfaces
    }

    /// The interface called `name`, or [`Error::UnknownInterface`].
    pub fn interface(&self, name: &str) -> Result<&Interface> {
        self.inner.interfaces.iter().find(|i| i.name == name).ok_or_else(|| Error::UnknownInterface {
            node: self.inner.name.clone(),
            name: name.to_string(),
            known: name_list(self.inner.interfaces.iter().map(|i| i.name.as_str())),
        })
    }

    /// Every address of the node, IPv4 first, in interface order.
    pub fn addrs(&self) -> Vec<IpAddr> {
        let all = self.inner.interfaces.iter().flat_map(|i| i.addrs.iter().map(IpNet::addr));
        let (mut v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = all.partition(IpAddr::is_ipv4);
        v4.extend(v6);
        v4
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
        let fds = &self.inner.fds;
        let name = &self.inner.name;
        thread::scope(|scope| {
            let thread = thread::Builder::new()
                .name(format!("node-{name}"))
                .spawn_scoped(scope, move || {
                    fds.enter()
                        .unwrap_or_else(|e| panic!("cannot enter the namespace of node `{name}`: {e}"));
                    f()
                })
                .unwrap_or_else(|e| panic!("cannot start a thread for node `{name}`: {e}"));
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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

    /// A [`Command`] that runs `program` inside the node (its network namespace, and its UTS
    /// namespace when it has its own hostname). Programs also stay in the test's PID namespace,
    /// so nothing they start outlives the test.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        for name in env::ALL {
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
        command
    }

    /// This node's part of [`Network::dump`].
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

    pub(crate) fn netlink(&self) -> &NodeNetlink {
        &self.inner.netlink
    }

    pub(crate) fn netlink_rt(&self) -> &NetlinkRuntime {
        &self.inner.netlink_rt
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
