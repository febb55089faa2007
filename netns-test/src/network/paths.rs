//! Paths that change while the test runs: links added ([`Network::add_link`]) and removed
//! ([`LinkHandle::remove`]), addresses replaced ([`Network::renumber`]), default routes set
//! ([`Node::set_default_route`]), and a host moved from one link to another
//! ([`Network::replug`]). This file is the state and the kernel work; `paths/change.rs` the
//! changes as the test calls them.
//!
//! [`Network::add_link`]: crate::Network::add_link
//! [`LinkHandle::remove`]: crate::LinkHandle::remove
//! [`Network::renumber`]: crate::Network::renumber
//! [`Network::replug`]: crate::Network::replug
//!
//! The network keeps the topology's model as it is now, every interface name written out (so
//! that planning it again names each interface as the kernel has it), and that model planned.
//! Each change edits a copy of the model and plans it again, with the validation of the
//! topology itself: a bad change is the typed error planning gives, naming the link, node or
//! route. Only then is the kernel changed: the veth pair and addresses of the change, then, on
//! every node, the routes the new plan adds, replaces or drops. So automatic routes after a
//! change are exactly those of the topology with that change made. The interfaces of a link
//! added at runtime take indexes above every index of the running network, and the MAC
//! addresses planning gives those indexes (planning the changed model numbers interfaces
//! afresh, so only its names, addresses and routes are taken).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;

mod change;

use super::Node;
use super::node::WeakNode;
use crate::conditions::Direction;
use crate::error::{Error, Result};
use crate::impair::{Backend, MIDDLE};
use crate::netlink::{At, VethEnd};
use crate::topology::{Device, Link, Model, NodeKind, Plan, PlannedRoute, Topology, mac_for, plan_model};

/// How long a change waits for the kernel to report a new link ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime state of a network's paths, shared by the network and its nodes.
pub(crate) struct Paths {
    state: Mutex<State>,
    /// The network's nodes, set once they exist (weak: the nodes hold this).
    nodes: OnceLock<Vec<WeakNode>>,
}

struct State {
    /// The topology's model as it is now, with every interface name written out.
    model: Model,
    /// The key of each link of `model`: the plan index for the topology's own links, the
    /// next number for each link added. Handles and interfaces name links by key.
    keys: Vec<usize>,
    /// `model`, planned: the routes each node has, and its interfaces' names and addresses.
    plan: Plan,
    /// The next free interface index of the network.
    next_index: u32,
    /// How many cuts each link has now, by key (a link is ready only when it has none).
    cuts: Vec<Arc<AtomicUsize>>,
    /// The keys of the links that cross the middle namespace (those with conditions or a
    /// capture, of the topology or added at runtime).
    carried: HashSet<usize>,
}

/// What a [`LinkHandle`](crate::LinkHandle) holds of one end, taken from the paths when it is made.
pub(super) struct EndFacts {
    pub(super) ifname: String,
    pub(super) ifindex: u32,
    pub(super) leaving: Direction,
    pub(super) routes: Vec<PlannedRoute>,
}

impl Paths {
    /// The paths of a network brought up from `topology`.
    pub(super) fn new(topology: &Topology) -> Paths {
        let plan = topology.plan();
        let mut model = topology.model().clone();
        for (link, planned) in model.links.iter_mut().zip(&plan.links) {
            for (end, &(node, iface)) in link.ends.iter_mut().zip(&planned.ends) {
                end.ifname = Some(plan.nodes[node].ifaces[iface].name.clone());
            }
        }
        let nodes = plan.nodes.iter();
        let indexes = nodes
            .flat_map(|node| {
                node.ifaces.iter().map(|iface| iface.index).chain(node.bridge.iter().map(|b| b.index))
            })
            .chain(
                plan.links
                    .iter()
                    .filter_map(|link| link.middle.as_ref())
                    .flat_map(|middle| middle.ends.iter().map(|end| end.index).chain([middle.bridge.index])),
            );
        let next_index = indexes.max().unwrap_or(1) + 1;
        let state = State {
            keys: (0..model.links.len()).collect(),
            model,
            plan: Plan::clone(plan),
            next_index,
            cuts: plan.links.iter().map(|_| Arc::new(AtomicUsize::new(0))).collect(),
            carried: (0..plan.links.len()).filter(|&index| plan.links[index].middle.is_some()).collect(),
        };
        Paths { state: Mutex::new(state), nodes: OnceLock::new() }
    }

    /// Records the network's nodes, once they exist.
    pub(super) fn set_nodes(&self, nodes: &[Node]) {
        let _ = self.nodes.set(nodes.iter().map(Node::downgrade).collect());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn node(&self, index: usize) -> Option<Node> {
        self.nodes.get()?.get(index)?.upgrade()
    }

    /// The cut count of link `key`.
    pub(super) fn cuts(&self, key: usize) -> Arc<AtomicUsize> {
        Arc::clone(&self.state().cuts[key])
    }

    /// Whether link `key` crosses the middle namespace.
    pub(super) fn carried(&self, key: usize) -> bool {
        self.state().carried.contains(&key)
    }

    /// What a handle of link `key` holds of the ends at nodes `asked` (plan indexes), in
    /// that order; `None` for a link that was removed.
    pub(super) fn ends(&self, key: usize, asked: [usize; 2]) -> Option<[EndFacts; 2]> {
        let state = self.state();
        let position = state.keys.iter().position(|&k| k == key)?;
        let planned = &state.plan.links[position];
        let facts = asked.map(|node| {
            let slot = usize::from(planned.ends[0].0 != node);
            let (_, iface) = planned.ends[slot];
            let live = self.node(node).and_then(|n| n.interfaces().into_iter().find(|i| i.link == key));
            EndFacts {
                ifname: state.plan.nodes[node].ifaces[iface].name.clone(),
                ifindex: live.map_or(0, |i| i.index()),
                leaving: Direction::BOTH[slot],
                routes: state.plan.routes_through(node, iface),
            }
        });
        Some(facts)
    }
}

/// A change validated and planned, not yet made.
struct Change {
    model: Model,
    keys: Vec<usize>,
    plan: Plan,
}

impl State {
    /// Validates and plans `model` with `keys`: the same checks as the topology's.
    fn plan(&self, model: Model, keys: Vec<usize>) -> Result<Change> {
        let plan = plan_model(&model)?;
        if plan.ipv6 && !self.plan.ipv6 {
            return Err(Error::Unsupported {
                feature: "IPv6 addresses added at runtime to a network built without any".into(),
                reason: "its namespaces were set up for IPv4 only (no IPv6 forwarding on routers, \
                         no link-local addresses); give one interface of the topology an IPv6 address"
                    .into(),
            });
        }
        Ok(Change { model, keys, plan })
    }

    /// Takes `change` as the network's state.
    fn commit(&mut self, change: Change) {
        self.model = change.model;
        self.keys = change.keys;
        self.plan = change.plan;
    }
}

/// Runs `future` on the netlink thread of `node`.
fn block_on<T: Send + 'static>(
    node: &Node,
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    node.netlink_rt().block_on(future)
}

/// Makes node `node`'s routes go from `old` to `new`: drops what `new` lacks, replaces a route
/// whose gateway changed, adds what is new. A route the kernel dropped already (with its
/// interface) is fine.
fn apply_routes(node: &Node, old: &[PlannedRoute], new: &[PlannedRoute]) -> Result<()> {
    let dropped: Vec<PlannedRoute> =
        old.iter().filter(|route| !new.iter().any(|n| n.to == route.to)).cloned().collect();
    let changed: Vec<PlannedRoute> = new.iter().filter(|route| !old.contains(route)).cloned().collect();
    if dropped.is_empty() && changed.is_empty() {
        return Ok(());
    }
    let (name, handle) = (node.name().to_string(), node.netlink().handle.clone());
    block_on(node, async move {
        let at = At { node: &name, handle: &handle };
        for route in dropped {
            at.delete_route(route.to, route.via).await?;
        }
        for route in changed {
            at.replace_route(route.to, route.via).await?;
        }
        Ok(())
    })
}

/// The routes of the plan's nodes, for comparing two plans.
fn routes_of(plan: &Plan) -> Vec<Vec<PlannedRoute>> {
    plan.nodes.iter().map(|node| node.routes.clone()).collect()
}

impl Paths {
    /// Makes every node's routes those of `new` (from `old`).
    fn apply_all_routes(&self, old: &Plan, new: &Plan) -> Result<()> {
        for (index, (before, after)) in routes_of(old).iter().zip(routes_of(new)).enumerate() {
            if let Some(node) = self.node(index) {
                apply_routes(&node, before, &after)?;
            }
        }
        Ok(())
    }

    /// Rewrites the hosts file for the addresses of `plan`, so that node names resolve to the
    /// addresses they have now.
    fn rewrite_hosts(plan: &Plan) -> Result<()> {
        crate::names::install_hosts_file(&crate::names::hosts_file(plan))
    }

    /// Creates the veth pair of model link `position` of `change` (key `key`), its
    /// addresses, and waits until both ends are ready; records the interfaces on the nodes.
    /// A link with conditions crosses the middle namespace, as the topology's do, and
    /// `backend` carries it.
    fn create_link(
        &self,
        state: &mut State,
        change: &Change,
        position: usize,
        key: usize,
        backend: Option<&Backend>,
    ) -> Result<()> {
        let planned = &change.plan.links[position];
        let nodes = planned.ends.map(|(node, _)| self.node(node).expect("the network's nodes are alive"));
        let indexes = [state.next_index, state.next_index + 1];
        let carrier = match (&planned.middle, backend) {
            (None, _) => None,
            (Some(_), Some(backend)) => Some(backend),
            (Some(_), None) => {
                return Err(Error::Unsupported {
                    feature: format!("conditions on {}, added at runtime", planned.label),
                    reason: "the network has no link with conditions, so nothing carries one; give a \
                             link of the topology conditions (`Conditions::new()` for a perfect one)"
                        .into(),
                });
            }
        };
        let ends: [VethEnd; 2] = std::array::from_fn(|slot| {
            let (node, iface) = planned.ends[slot];
            let spec = &change.plan.nodes[node];
            VethEnd {
                node: spec.name.clone(),
                name: spec.ifaces[iface].name.clone(),
                index: indexes[slot],
                mac: mac_for(indexes[slot]),
                netns: nodes[slot].fds().raw().0,
                mtu: planned.mtu,
                controller: state.plan.nodes[node].bridge.as_ref().map(|bridge| bridge.index),
            }
        });
        match carrier {
            None => {
                // A switch's port is created in the switch's namespace, where its bridge is known.
                let main = usize::from(nodes[1].kind() == NodeKind::Switch);
                let [first, second] = ends;
                let (made, other) = if main == 0 { (first, second) } else { (second, first) };
                let (maker, receiver) = (&nodes[main], &nodes[1 - main]);
                let receiver = (receiver.name().to_string(), receiver.netlink().handle.clone());
                veth(maker, made, other, receiver, !state.plan.ipv6)?;
                state.next_index += 2;
            }
            Some(backend) => {
                // `A:eth ⇄ middle:m<key>a` and `middle:m<key>b ⇄ B:eth`, as bring-up makes a
                // topology link with conditions.
                let middle: [Device; 2] = std::array::from_fn(|slot| {
                    let index = state.next_index + 2 + slot as u32;
                    Device { name: format!("m{key}{}", ["a", "b"][slot]), index, mac: mac_for(index) }
                });
                let netlink = backend.middle_netlink();
                for (slot, end) in ends.into_iter().enumerate() {
                    let device = &middle[slot];
                    let middle_end = VethEnd {
                        node: MIDDLE.to_string(),
                        name: device.name.clone(),
                        index: device.index,
                        mac: device.mac,
                        netns: backend.middle().raw().0,
                        mtu: planned.mtu,
                        controller: None,
                    };
                    veth(
                        &nodes[slot],
                        end,
                        middle_end,
                        (MIDDLE.to_string(), netlink.handle.clone()),
                        !state.plan.ipv6,
                    )?;
                }
                state.next_index += 4;
                let (handle, links) = (netlink.handle.clone(), netlink.links.clone());
                let waited = middle.clone();
                nodes[0].netlink_rt().block_on(async move {
                    let deadline = Instant::now() + READY_TIMEOUT;
                    for device in waited {
                        links.wait(&handle, device.index, deadline, |status| status.ready()).await.map_err(
                            |last| Error::Timeout {
                                what: format!(
                                    "interface `{}` of the middle namespace to be up with carrier (last state: {last:?})",
                                    device.name
                                ),
                                after: READY_TIMEOUT,
                            },
                        )?;
                    }
                    Ok::<(), Error>(())
                })?;
                backend.attach_runtime(key, planned.label.clone(), &middle, planned.conditions.clone())?;
                state.carried.insert(key);
            }
        }
        for (slot, node) in nodes.iter().enumerate() {
            let (n, iface) = planned.ends[slot];
            let spec = change.plan.nodes[n].ifaces[iface].clone();
            let (peer, peer_iface) = planned.ends[1 - slot];
            let peer_name = change.plan.nodes[peer].ifaces[peer_iface].name.clone();
            let (name, handle, index) =
                (node.name().to_string(), node.netlink().handle.clone(), indexes[slot]);
            let (ifname, addrs, links) =
                (spec.name.clone(), spec.addrs.clone(), node.netlink().links.clone());
            block_on(node, async move {
                let at = At { node: &name, handle: &handle };
                for addr in addrs {
                    at.add_address(index, &ifname, addr).await?;
                }
                let deadline = Instant::now() + READY_TIMEOUT;
                links.wait(&handle, index, deadline, |status| status.ready()).await.map_err(|last| {
                    Error::Timeout {
                        what: format!("interface `{ifname}` of node `{name}` to be up with carrier (last state: {last:?})"),
                        after: READY_TIMEOUT,
                    }
                })
            })?;
            let interface = node.new_interface(
                spec.name,
                indexes[slot],
                key,
                spec.addrs,
                (change.plan.nodes[peer].name.clone(), peer_name),
            );
            node.change_interfaces(|interfaces| interfaces.push(interface));
            // The new plan's routes through the new interface: those that did not change since
            // the old plan went with the interface they used (a host moved with its address
            // keeps its default route's gateway, and the kernel deleted that route).
            let (name, handle) = (node.name().to_string(), node.netlink().handle.clone());
            let through = change.plan.routes_through(n, iface);
            block_on(node, async move {
                let at = At { node: &name, handle: &handle };
                for route in through {
                    at.add_route_again(route.to, route.via).await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Deletes link `key` (at model position `position` of the current state): its veth pair,
    /// or for a carried link both of its pairs through the middle namespace once `backend` has
    /// stopped carrying it; then forgets its interfaces.
    fn delete_link(
        &self,
        state: &mut State,
        position: usize,
        key: usize,
        backend: Option<&Backend>,
    ) -> Result<()> {
        let planned = &state.plan.links[position];
        // A plain link is one veth pair: deleting one end deletes both. A carried link is two
        // pairs through the middle namespace, which the engine stops carrying first.
        let carried = state.carried.contains(&key);
        if carried {
            if let Some(backend) = backend {
                backend.detach(key)?;
            }
        }
        let ends = if carried { &planned.ends[..] } else { &planned.ends[..1] };
        for &(node, _) in ends {
            let node = self.node(node).expect("the network's nodes are alive");
            let iface =
                node.interfaces().into_iter().find(|i| i.link == key).expect("a link's ends are interfaces");
            let (name, handle, index, ifname) = (
                node.name().to_string(),
                node.netlink().handle.clone(),
                iface.index(),
                iface.name().to_string(),
            );
            block_on(
                &node,
                async move { At { node: &name, handle: &handle }.delete_link(index, &ifname).await },
            )?;
        }
        for (end, _) in planned.ends {
            if let Some(node) = self.node(end) {
                node.change_interfaces(|interfaces| interfaces.retain(|i| i.link != key));
            }
        }
        state.carried.remove(&key);
        Ok(())
    }

    /// Refuses to remove or replace link `key` when something runs on it for the whole test:
    /// the topology's outages, or a NAT translating on it.
    fn check_removable(state: &State, key: usize, what: &str) -> Result<()> {
        let position = state.keys.iter().position(|&k| k == key);
        if position.is_some_and(|position| state.model.links[position].outages.is_some()) {
            return Err(Error::Unsupported {
                feature: format!("{what} a link with outages"),
                reason: "the topology's outages run on the link for the whole test".into(),
            });
        }
        if let Some(nat) =
            position.and_then(|position| state.plan.nats.iter().find(|nat| nat.link == position))
        {
            return Err(Error::Unsupported {
                feature: format!("{what} the outside link of a NAT"),
                reason: format!(
                    "the NAT on router `{}` translates on it for the whole test",
                    state.plan.nodes[nat.router].name
                ),
            });
        }
        Ok(())
    }
}

/// Creates the veth pair `made` ⇄ `other` from node `maker`'s namespace, and sets `other` up
/// in its own (`receiver`: its namespace's name and netlink handle).
///
/// In a network without IPv6 (`no_link_local`), both ends get `addrgenmode none` before
/// `other` comes up, as at bring-up: node namespaces have no namespace-wide default for it
/// (see `build.rs`), and a link-local address would send router solicitations and MLD
/// reports into the test's links.
fn veth(
    maker: &Node,
    made: VethEnd,
    other: VethEnd,
    receiver: (String, rtnetlink::Handle),
    no_link_local: bool,
) -> Result<()> {
    let (maker_name, maker_handle) = (maker.name().to_string(), maker.netlink().handle.clone());
    let (other_index, other_name) = (other.index, other.name.clone());
    block_on(maker, async move {
        let at_maker = At { node: &maker_name, handle: &maker_handle };
        let at_receiver = At { node: &receiver.0, handle: &receiver.1 };
        at_maker.add_veth(&made, &other).await?;
        if no_link_local {
            futures_util::future::try_join(
                at_maker.set_no_link_local(made.index, &made.name),
                at_receiver.set_no_link_local(other_index, &other_name),
            )
            .await?;
        }
        at_receiver.set_link_up(other_index, &other_name, true).await
    })
}

/// Refuses what a link added at runtime cannot have yet.
fn check_addable(link: &Link) -> Result<()> {
    if link.capture || link.outages.is_some() {
        let label = format!("the link `{}` – `{}`", link.ends[0].node, link.ends[1].node);
        return Err(Error::Unsupported {
            feature: format!("a capture or outages on {label}, added at runtime"),
            reason: "the capture files and outage schedules are the topology's; add the link without \
                     them and call `LinkHandle::outages` or `capture_from` on its handle"
                .into(),
        });
    }
    Ok(())
}

/// Pins the interface names planning gave model link `position` into the model.
fn pin_names(change: &mut Change, position: usize) {
    let planned = &change.plan.links[position];
    for (end, &(node, iface)) in change.model.links[position].ends.iter_mut().zip(&planned.ends) {
        end.ifname = Some(change.plan.nodes[node].ifaces[iface].name.clone());
    }
}

/// Drops the static routes of `model` whose gateway is on no subnet of its node any more (the
/// kernel deletes them with the interface that reached the gateway).
fn drop_stranded_routes(model: &mut Model) {
    let subnets = |node: &str| -> Vec<IpNet> {
        let ends = model.links.iter().flat_map(|link| &link.ends).filter(|end| end.node == node);
        ends.flat_map(|end| &end.addrs)
            .filter_map(|addr| addr.parse::<IpNet>().ok())
            .map(|net| net.trunc())
            .collect()
    };
    let keep: Vec<bool> = model
        .routes
        .iter()
        .map(|route| match route.via.trim().parse::<IpAddr>() {
            Ok(via) => subnets(&route.node).iter().any(|subnet| subnet.contains(&via)),
            Err(_) => true,
        })
        .collect();
    let mut keep = keep.into_iter();
    model.routes.retain(|_| keep.next().unwrap_or(true));
}

/// `ends` as the timeline names a link: `a:eth0 – b:eth0`.
fn subject(plan: &Plan, position: usize) -> String {
    let ends = plan.links[position]
        .ends
        .map(|(node, iface)| format!("{}:{}", plan.nodes[node].name, plan.nodes[node].ifaces[iface].name));
    ends.join(" – ")
}

/// The addresses of both ends of model link `position`, for the timeline.
fn addresses(plan: &Plan, position: usize) -> String {
    let ends = plan.links[position].ends.map(|(node, iface)| {
        let addrs: Vec<String> =
            plan.nodes[node].ifaces[iface].addrs.iter().map(ToString::to_string).collect();
        if addrs.is_empty() { "-".to_string() } else { addrs.join(" ") }
    });
    ends.join(" – ")
}

#[cfg(test)]
mod tests;
