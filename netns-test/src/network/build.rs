//! Bringing a network up from its topology's plan: the namespaces, the bridges, veth pairs,
//! addresses and routes, the wait for every link to be ready, and the backend of the links
//! with conditions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::node::Directory;
use super::{Network, NetworkInner, Node};
use crate::error::{Error, Result};
use crate::impair::{Backend, MIDDLE};
use crate::netlink::{At, NetlinkRuntime, NodeNetlink, VethEnd};
use crate::ns::setup::{Offload, Setup};
use crate::ns::{self, NsFds, NsRequest};
use crate::settings::Settings;
use crate::timeline::Timeline;
use crate::topology::{NodeKind, Plan, PlannedIface, Topology};
use crate::trace::Trace;

/// How long bringing a network up may wait for the kernel to report its links ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Network {
    /// Builds `topology`. Its local node is the calling process's own network namespace, so
    /// this only ever runs inside a test's child process; `test` names the test (for the
    /// directory of its captures). `settings` gives the child's settings, read once at its
    /// start: it runs on the calling thread while the other nodes' namespaces are being made,
    /// so that whatever the caller must do first (the child mounts its own `/proc` there)
    /// overlaps the kernel's work.
    pub(crate) fn start(
        topology: &Topology,
        test: &str,
        settings: impl FnOnce() -> Result<&'static Settings>,
    ) -> Result<Network> {
        // The topology was validated and planned once, when it was made; bring-up works from
        // that plan.
        let plan = Arc::clone(topology.plan());
        let local = plan.local;

        // The other nodes' namespaces are made on worker threads while this thread reads the
        // settings, starts the netlink thread and configures the local node, the namespace the
        // child process was born in. A worker waits for the netlink thread only to open its
        // connections, after its namespace is made and set up.
        // Links with conditions cross the middle namespace, made last.
        let others: Vec<usize> = (0..plan.nodes.len()).filter(|i| *i != local).collect();
        let has_middle = plan.links.iter().any(|link| link.middle.is_some());
        let mut requests: Vec<NsRequest<'_>> = others
            .iter()
            .map(|&i| NsRequest { name: &plan.nodes[i].name, hostname: plan.nodes[i].hostname })
            .collect();
        if has_middle {
            requests.push(NsRequest { name: MIDDLE, hostname: false });
        }
        let runtime = Handoff::default();
        let open_netlink = |place: &str| -> Result<NodeNetlink> {
            let netlink_rt = runtime.wait().ok_or_else(|| {
                Error::io(format!("opening netlink in {place}"), std::io::Error::other("no netlink thread"))
            })?;
            NodeNetlink::open(netlink_rt.handle())
                .map_err(|e| Error::io(format!("opening netlink in {place}"), e))
        };
        let set_up_node = |index: usize| -> Result<()> {
            let node = &plan.nodes[index];
            let forwarding = node.kind == NodeKind::Router;
            // Without IPv6, a node's veth ends get no link-local address from their requests
            // (`create_links`); a switch's bridge needs the namespace's default.
            let link_local_per_interface = node.bridge.is_none();
            let setup = Setup { ping: true, ipv6: plan.ipv6, forwarding, link_local_per_interface };
            ns::setup::set_up(&format!("node `{}`", node.name), setup)
        };
        let (mut made, (settings, trace, netlink_rt, local_fds, local_netlink)) = ns::create_namespaces(
            &requests,
            |k, _| match others.get(k) {
                Some(&index) => {
                    set_up_node(index)?;
                    open_netlink(&format!("node `{}`", plan.nodes[index].name))
                }
                None => {
                    // Its middle ends make no IPv6 link-local address (and so send no router
                    // solicitation or MLD report).
                    let setup = Setup {
                        ping: false,
                        ipv6: false,
                        forwarding: false,
                        link_local_per_interface: false,
                    };
                    ns::setup::set_up("the middle namespace", setup)?;
                    open_netlink("the middle namespace")
                }
            },
            || {
                // Whatever happens here, the workers stop waiting when `runtime` is dropped or
                // set.
                let runtime = runtime.setter();
                let settings = settings()?;
                let trace = Trace::new("network", settings.trace);
                let netlink_rt = Arc::new(NetlinkRuntime::start()?);
                runtime.set(Arc::clone(&netlink_rt));
                trace.mark("netlink thread started (the topology's plan reused, not validated again)");
                set_up_node(local)?;
                let netlink = NodeNetlink::open(netlink_rt.handle()).map_err(|e| {
                    Error::io(format!("opening netlink in node `{}`", plan.nodes[local].name), e)
                })?;
                let fds = NsFds::of_current_thread(plan.nodes[local].hostname)
                    .map_err(|e| Error::io("opening the test's own namespaces", e))?;
                trace.mark("local node configured");
                Ok((settings, trace, netlink_rt, fds, netlink))
            },
        )?;

        trace.mark(&format!("{} namespaces created", requests.len()));
        let middle = if has_middle { made.pop() } else { None };
        let mut slots: Vec<Option<(NsFds, NodeNetlink)>> = (0..plan.nodes.len()).map(|_| None).collect();
        slots[local] = Some((local_fds, local_netlink));
        for (k, made) in made.into_iter().enumerate() {
            slots[others[k]] = Some(made);
        }
        let directory = Arc::new(Directory::of(&plan));
        let node_timeline = Arc::new(std::sync::OnceLock::new());
        let paths = Arc::new(super::paths::Paths::new(topology));
        let nodes: Vec<Node> = slots
            .into_iter()
            .zip(&plan.nodes)
            .enumerate()
            .map(|(index, (slot, spec))| {
                let (fds, netlink) = slot.expect("every node has namespaces");
                let (netlink_rt, directory) = (Arc::clone(&netlink_rt), Arc::clone(&directory));
                Node::new(
                    &plan,
                    index,
                    spec.kind,
                    fds,
                    netlink,
                    netlink_rt,
                    directory,
                    Arc::clone(&node_timeline),
                    Arc::clone(&paths),
                )
            })
            .collect();
        paths.set_nodes(&nodes);

        let middle = middle.map(|(fds, netlink)| (Arc::new(fds), netlink));
        let namespaces: Vec<(String, NodeNetlink, i32)> = nodes
            .iter()
            .map(|node| (node.name().to_string(), node.netlink().clone(), node.fds().raw().0))
            .chain(middle.iter().map(|(fds, netlink)| (MIDDLE.to_string(), netlink.clone(), fds.raw().0)))
            .collect();
        let linked = netlink_rt.spawn(create_links(Arc::clone(&plan), namespaces, trace));
        // While the netlink thread creates the links, this thread makes node names resolve for
        // the body and for every program it starts, and names the local node.
        crate::names::install_hosts_file(&crate::names::hosts_file(&plan))?;
        let local_spec = &plan.nodes[local];
        if local_spec.hostname {
            nix::unistd::sethostname(&local_spec.name).map_err(|e| {
                Error::io(format!("setting the hostname of node `{}`", local_spec.name), e.into())
            })?;
        }
        trace.mark("hosts file installed");
        linked.wait()?;
        if plan.links.iter().any(|link| link.own_queue) {
            give_own_queues(&plan, &nodes)?;
            trace.mark("the ports of big switches given their own receive queues");
        }
        if !plan.firewalls.is_empty() {
            super::firewall::apply_planned(&plan, &nodes)?;
            trace.mark("firewalls applied");
        }

        if !plan.nats.is_empty() {
            super::nat::set_up_routers(&plan, &nodes)?;
            trace.mark("NAT routers set up");
        }
        let backend = match middle {
            Some((fds, netlink)) => {
                let seed = crate::impair::network_seed(settings.seed, plan.random_seed);
                let backend = Backend::start(&plan, seed, fds, netlink, &netlink_rt, test, settings)?;
                trace.mark("links with conditions carried");
                Some(backend)
            }
            None => None,
        };
        let summary = format!("{} nodes, {} links", plan.nodes.len(), plan.links.len());
        let timeline = Timeline::start("network", summary);
        let _ = node_timeline.set(timeline.clone());
        let inner = NetworkInner {
            nodes,
            local,
            topology: topology.clone(),
            plan,
            backend,
            paths,
            timeline,
            scheduled: Default::default(),
            netlink_rt,
        };
        let network = Network { inner: Arc::new(inner) };
        network.start_scheduled_outages()?;
        Ok(network)
    }
}

/// Sets the offloads of the links that [`PlannedLink::own_queue`] marks: GRO on at the end
/// facing the switch, TSO off at the switch's port. One short-lived thread visits each
/// namespace concerned in turn (a thread per node would cost more than the ioctls).
fn give_own_queues(plan: &Plan, nodes: &[Node]) -> Result<()> {
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
            nix::sched::setns(&nodes[*index].fds().net, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io(format!("entering node `{name}` to set offloads"), e.into()))?;
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)
                .map_err(|e| Error::io(format!("opening a socket in node `{name}`"), e))?;
            let (offload, on) = if plan.nodes[*index].kind == NodeKind::Switch {
                (Offload::Tso, false)
            } else {
                (Offload::Gro, true)
            };
            for &ifname in changes {
                ns::setup::set_offload(&socket, ifname, offload, on).map_err(|e| {
                    let what = offload.ethtool_name();
                    let state = if on { "on" } else { "off" };
                    Error::io(format!("ethtool -K {ifname} {what} {state} in node `{name}`"), e)
                })?;
            }
        }
        Ok(())
    };
    ns::on_thread("netns-test-offload", visit)
        .map_err(|e| Error::io("starting a thread to set offloads", e))?
}

/// Creates bridges, veth pairs, addresses and routes, and waits until every link is ready.
/// `namespaces` are the nodes in plan order, then the middle namespace when there is one: for
/// each, its name, its netlink connections and the descriptor of its network namespace.
async fn create_links(
    plan: Arc<Plan>,
    namespaces: Vec<(String, NodeNetlink, i32)>,
    trace: Trace,
) -> Result<()> {
    use futures_util::future::try_join_all;
    let at = |index: usize| At { node: &namespaces[index].0, handle: &namespaces[index].1.handle };

    try_join_all(plan.nodes.iter().enumerate().filter_map(|(index, node)| {
        node.bridge
            .as_ref()
            .map(|bridge| async move { at(index).add_bridge(bridge.index, &bridge.name, bridge.mac).await })
    }))
    .await?;
    if plan.nodes.iter().any(|node| node.bridge.is_some()) {
        trace.mark("bridges created");
    }

    // The middle namespace, when there is one, follows the nodes.
    let middle_at = plan.nodes.len();
    // Each pair: the end made by the request, in its own namespace (`sender`); the end made
    // in place by the same request; the namespace of that second end, which cannot be created
    // up and is set up afterwards (`receiver`); and the pair's ends that are interfaces of
    // nodes, with their node, whose addresses are added as soon as the pair exists.
    type Pair<'p> = (usize, VethEnd, VethEnd, usize, Vec<(usize, &'p PlannedIface)>);
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    for link in &plan.links {
        let end = |slot: usize| {
            let (node, iface) = link.ends[slot];
            let (spec, iface) = (&plan.nodes[node], &plan.nodes[node].ifaces[iface]);
            VethEnd {
                node: spec.name.clone(),
                name: iface.name.clone(),
                index: iface.index,
                mac: iface.mac,
                netns: namespaces[node].2,
                mtu: link.mtu,
                controller: spec.bridge.as_ref().map(|bridge| bridge.index),
            }
        };
        let iface = |slot: usize| {
            let (node, iface) = link.ends[slot];
            (node, &plan.nodes[node].ifaces[iface])
        };
        match &link.middle {
            None => {
                // A switch's port is created in the switch's namespace, where its bridge is
                // known.
                let main = if plan.nodes[link.ends[1].0].kind == NodeKind::Switch { 1 } else { 0 };
                let ifaces = vec![iface(0), iface(1)];
                pairs.push((link.ends[main].0, end(main), end(1 - main), link.ends[1 - main].0, ifaces));
            }
            Some(middle) => {
                for (slot, device) in middle.ends.iter().enumerate() {
                    let middle_end = VethEnd {
                        node: MIDDLE.to_string(),
                        name: device.name.clone(),
                        index: device.index,
                        mac: device.mac,
                        netns: namespaces[middle_at].2,
                        mtu: link.mtu,
                        controller: None,
                    };
                    pairs.push((link.ends[slot].0, end(slot), middle_end, middle_at, vec![iface(slot)]));
                }
            }
        }
    }
    let ipv6 = plan.ipv6;
    try_join_all(pairs.iter().map(|(sender, a, b, receiver, ifaces)| async move {
        at(*sender).add_veth(a, b).await?;
        // The second end comes up (and the pair gets carrier) while the addresses are added:
        // an address may be added to an interface that is down.
        let up = async {
            if !ipv6 {
                // No link-local address on either end, said before `b` comes up: the pair has
                // no carrier until then.
                futures_util::future::try_join(
                    at(*sender).set_no_link_local(a.index, &a.name),
                    at(*receiver).set_no_link_local(b.index, &b.name),
                )
                .await?;
            }
            at(*receiver).set_link_up(b.index, &b.name, true).await
        };
        let addresses = try_join_all(ifaces.iter().flat_map(|&(node, iface)| {
            iface
                .addrs
                .iter()
                .map(move |addr| async move { at(node).add_address(iface.index, &iface.name, *addr).await })
        }));
        futures_util::future::try_join(up, addresses).await
    }))
    .await?;
    trace.mark(&format!("{} veth pairs created, with their addresses", plan.links.len()));

    // Every interface of the nodes, then every middle end.
    let deadline = Instant::now() + READY_TIMEOUT;
    let node_ifaces = plan.nodes.iter().enumerate().flat_map(|(index, node)| {
        node.ifaces
            .iter()
            .map(move |iface| (index, iface.index, &iface.name, format!("node `{}`", node.name)))
    });
    let middle_ends = plan.links.iter().filter_map(|link| link.middle.as_ref()).flat_map(|middle| {
        middle.ends.iter().map(|end| (middle_at, end.index, &end.name, "the middle namespace".to_string()))
    });
    try_join_all(node_ifaces.chain(middle_ends).map(|(at, ifindex, name, place)| {
        let netlink = &namespaces[at].1;
        async move {
            netlink.links.wait(&netlink.handle, ifindex, deadline, |s| s.ready()).await.map_err(|last| {
                Error::Timeout {
                    what: format!(
                        "interface `{name}` of {place} to be up with carrier (last state: {last:?})"
                    ),
                    after: READY_TIMEOUT,
                }
            })
        }
    }))
    .await?;
    trace.mark("every link reported ready");

    try_join_all(plan.nodes.iter().enumerate().flat_map(|(index, node)| {
        node.routes.iter().map(move |route| async move { at(index).add_route(route.to, route.via).await })
    }))
    .await?;
    trace.mark("routes added");

    try_join_all(plan.static_neighbours.iter().map(|entry| async move {
        at(entry.node).add_static_neighbour(entry.ifindex, entry.addr, entry.mac).await
    }))
    .await?;
    if !plan.static_neighbours.is_empty() {
        trace.mark(&format!("{} static neighbour entries added", plan.static_neighbours.len()));
    }
    Ok(())
}

/// The netlink thread, from the thread that starts it to the workers that make namespaces
/// meanwhile: [`Handoff::wait`] blocks until it is set, or until its setter is dropped unset
/// (the starting thread failed), which gives `None`.
#[derive(Default)]
struct Handoff {
    slot: std::sync::Mutex<Option<Option<Arc<NetlinkRuntime>>>>,
    changed: std::sync::Condvar,
}

impl Handoff {
    fn wait(&self) -> Option<Arc<NetlinkRuntime>> {
        let mut slot = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(value) = slot.as_ref() {
                return value.clone();
            }
            slot = self.changed.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn setter(&self) -> HandoffSetter<'_> {
        HandoffSetter(self)
    }

    fn put(&self, value: Option<Arc<NetlinkRuntime>>) {
        let mut slot = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(value);
        }
        self.changed.notify_all();
    }
}

/// Sets a [`Handoff`] once; dropped unset (an error, a panic), it tells the waiters there is
/// nothing to wait for.
struct HandoffSetter<'a>(&'a Handoff);

impl HandoffSetter<'_> {
    fn set(&self, value: Arc<NetlinkRuntime>) {
        self.0.put(Some(value));
    }
}

impl Drop for HandoffSetter<'_> {
    fn drop(&mut self) {
        self.0.put(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_releases_its_waiters_with_the_runtime_or_with_nothing() {
        // A setter dropped unset (the starting thread failed): the waiter gets nothing.
        let handoff = Handoff::default();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| handoff.wait().is_none());
            drop(handoff.setter());
            assert!(waiter.join().expect("the waiter returns"));
        });
        // Set, then dropped: the waiters get the runtime, before and after the drop.
        let handoff = Handoff::default();
        let runtime = Arc::new(NetlinkRuntime::start().expect("a netlink runtime starts"));
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| handoff.wait().is_some_and(|got| Arc::ptr_eq(&got, &runtime)));
            let setter = handoff.setter();
            setter.set(Arc::clone(&runtime));
            drop(setter);
            assert!(waiter.join().expect("the waiter returns"));
        });
        assert!(handoff.wait().is_some_and(|got| Arc::ptr_eq(&got, &runtime)));
    }
}
