//! Validation: a [`Model`] becomes a [`Plan`], with every name resolved, every address
//! parsed, interface indexes assigned and routes computed, or a [`TopologyError`] naming the
//! first offending item. Nothing touches the kernel here.
//!
//! Every step takes time in proportion to what it reads and what it produces: names, addresses,
//! subnets and routes are looked up by hashing, never by rescanning a list, and automatic routes
//! come from at most one breadth-first search per node and address family.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::{EndSpec, Link, Location, Model, NodeKind, TopologyError, TopologyErrorKind};
use crate::conditions::ValidConditions;

mod addrs;
mod names;
mod nat;
mod neighbours;
mod routes;

use addrs::{Segment, check_duplicate_addresses, check_subnets, parse_cidr, parse_host_addr, segments};
use names::{IfaceNames, check_ifname, check_node_name};
pub(crate) use nat::PlannedNat;
pub(crate) use neighbours::Neighbour;
pub(crate) use neighbours::mac_for;
use neighbours::static_neighbours;
use routes::{StaticRoutes, add_auto_routes};

/// The largest number of ports a Linux bridge accepts.
const MAX_BRIDGE_PORTS: usize = 1023;
/// Switches with more ports than this deliver the frames they flood through each receiving
/// interface's own queue (see [`PlannedLink::own_queue`]).
pub(crate) const OWN_QUEUE_ABOVE_PORTS: usize = 128;
/// The name of the bridge device in a switch's namespace.
pub(crate) const BRIDGE_NAME: &str = "br0";

/// A topology resolved for creation: everything bringing it up and running it needs, as data.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub(crate) nodes: Vec<PlannedNode>,
    pub(crate) links: Vec<PlannedLink>,
    pub(crate) local: usize,
    /// Permanent neighbour entries to add ([`TopologyBuilder::static_arp`](super::TopologyBuilder::static_arp)).
    pub(crate) static_neighbours: Vec<Neighbour>,
    /// Whether any interface has an IPv6 address; without one, links get no IPv6 link-local
    /// address at all (multicast on large bridges otherwise floods the machine).
    pub(crate) ipv6: bool,
    /// The seed of the link conditions given with the topology.
    pub(crate) random_seed: Option<u64>,
    /// The NATs, in the order given.
    pub(crate) nats: Vec<PlannedNat>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedNode {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) hostname: bool,
    /// A switch's bridge device.
    pub(crate) bridge: Option<Device>,
    pub(crate) ifaces: Vec<PlannedIface>,
    pub(crate) routes: Vec<PlannedRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedIface {
    pub(crate) name: String,
    /// The interface index, unique in the whole topology.
    pub(crate) index: u32,
    /// The MAC address, fixed by the index.
    pub(crate) mac: [u8; 6],
    pub(crate) addrs: Vec<IpNet>,
    /// The plan's index of the link this interface is an end of.
    pub(crate) link: usize,
}

/// A device the plan creates that is no node's interface: a switch's bridge, or a middle end
/// or middle bridge of a link with conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) name: String,
    /// The interface index, unique in the whole topology.
    pub(crate) index: u32,
    /// The MAC address, fixed by the index.
    pub(crate) mac: [u8; 6],
}

impl Device {
    fn new(name: String, index: u32) -> Self {
        Device { name, index, mac: mac_for(index) }
    }
}

/// Where a link with conditions (or a capture) crosses the middle namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Middle {
    /// The middle ends: the one facing end a (`m<link>a`), the one facing end b (`m<link>b`).
    pub(crate) ends: [Device; 2],
    /// The bridge joining them when netem carries the link (`m<link>br`).
    pub(crate) bridge: Device,
    /// The name of the link's capture file, `link<N>-<a>-<b>.pcap`, in the test's directory.
    pub(crate) capture_file: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedLink {
    /// `(node, interface)` indexes of both ends.
    pub(crate) ends: [(usize, usize); 2],
    pub(crate) mtu: Option<u32>,
    /// The conditions a→b and b→a, validated.
    pub(crate) conditions: [ValidConditions; 2],
    /// Whether every frame is written to a pcap file.
    pub(crate) capture: bool,
    /// For a link with conditions or a capture: its middle ends in the middle namespace.
    pub(crate) middle: Option<Middle>,
    /// Whether the link is a port of a switch with more than [`OWN_QUEUE_ABOVE_PORTS`] ports
    /// and does not cross the middle namespace. A veth delivers what it receives into the
    /// CPU's backlog, which holds `net.core.netdev_max_backlog` frames (1000, settable only in
    /// the root namespace) for every namespace of the machine: one broadcast flooded to a
    /// thousand ports overflows it, and ARP across the switch then fails silently. So the end
    /// facing the switch receives through its own NAPI queue (GRO on, which gives a veth one),
    /// and the switch's port sends without TSO, since a veth uses that queue only for frames
    /// from a device without TSO.
    pub(crate) own_queue: bool,
    /// "link 2 (`a` – `b`)", for messages.
    pub(crate) label: String,
    /// Periodic outages from bring-up on, validated: (every, for).
    pub(crate) outages: Option<(Duration, Duration)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedRoute {
    pub(crate) to: IpNet,
    pub(crate) via: IpAddr,
}

impl Plan {
    /// The routes of `node` through interface `iface` (a gateway on one of its subnets): the
    /// kernel deletes them when the interface goes down.
    pub(crate) fn routes_through(&self, node: usize, iface: usize) -> Vec<PlannedRoute> {
        let subnets: Vec<IpNet> = self.nodes[node].ifaces[iface].addrs.iter().map(IpNet::trunc).collect();
        let through = |route: &&PlannedRoute| subnets.iter().any(|subnet| subnet.contains(&route.via));
        self.nodes[node].routes.iter().filter(through).cloned().collect()
    }
}

fn err(kind: TopologyErrorKind, location: Option<&Location>) -> TopologyError {
    TopologyError { kind, location: location.cloned().map(Box::new) }
}

fn link_label(index: usize, link: &Link) -> String {
    format!("link {} (`{}` – `{}`)", index + 1, link.ends[0].node, link.ends[1].node)
}

/// The index of an address family in per-family arrays: 0 for IPv4, 1 for IPv6.
fn family(addr: IpAddr) -> usize {
    usize::from(addr.is_ipv6())
}

pub(crate) fn plan(model: &Model) -> Result<Plan, TopologyError> {
    if model.nodes.is_empty() {
        return Err(err(TopologyErrorKind::Empty, model.nodes_location.as_ref()));
    }
    let mut nodes: Vec<PlannedNode> = Vec::with_capacity(model.nodes.len());
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(model.nodes.len());
    for spec in &model.nodes {
        check_node_name(&spec.name).map_err(|reason| {
            err(
                TopologyErrorKind::InvalidNodeName { name: spec.name.clone(), reason },
                spec.location.as_ref(),
            )
        })?;
        if by_name.insert(&spec.name, nodes.len()).is_some() {
            return Err(err(
                TopologyErrorKind::DuplicateNode { name: spec.name.clone() },
                spec.location.as_ref(),
            ));
        }
        nodes.push(PlannedNode {
            name: spec.name.clone(),
            kind: spec.kind,
            hostname: model.hostnames && spec.kind != NodeKind::Switch,
            bridge: None,
            ifaces: Vec::new(),
            routes: Vec::new(),
        });
    }

    let mut names: Vec<IfaceNames> = (0..nodes.len()).map(|_| IfaceNames::default()).collect();
    let mut links = Vec::with_capacity(model.links.len());
    for (index, link) in model.links.iter().enumerate() {
        links.push(plan_link(index, link, &by_name, &mut nodes, &mut names)?);
    }
    drop(names);

    for (node, spec) in nodes.iter().zip(&model.nodes) {
        if node.kind == NodeKind::Switch && node.ifaces.len() > MAX_BRIDGE_PORTS {
            let kind =
                TopologyErrorKind::TooManySwitchPorts { switch: node.name.clone(), ports: node.ifaces.len() };
            return Err(err(kind, spec.location.as_ref()));
        }
    }
    // These errors concern an interface; report them at the link that declares it.
    let at_link = |(kind, link): (TopologyErrorKind, usize)| err(kind, model.links[link].location.as_ref());
    check_duplicate_addresses(&nodes).map_err(at_link)?;
    let segments = segments(&nodes, &links);
    check_subnets(&nodes, &segments).map_err(at_link)?;

    let local = match &model.local {
        Some(name) => {
            let at = model.local_location.as_ref();
            let index = *by_name.get(name.as_str()).ok_or_else(|| {
                err(
                    TopologyErrorKind::UnknownNode {
                        name: name.clone(),
                        context: "the `local` setting".into(),
                    },
                    at,
                )
            })?;
            if nodes[index].kind == NodeKind::Switch {
                return Err(err(TopologyErrorKind::LocalIsSwitch { name: name.clone() }, at));
            }
            index
        }
        None => nodes.iter().position(|node| node.kind != NodeKind::Switch).ok_or_else(|| {
            err(TopologyErrorKind::OnlySwitches { count: nodes.len() }, model.nodes_location.as_ref())
        })?,
    };

    let mut static_routes = StaticRoutes::new(nodes.len());
    for route in &model.routes {
        static_routes.plan(route, &by_name, &mut nodes)?;
    }
    // NATs need the static routes (a static default route names the outside interface), and
    // mark their outside links carried before indexes are assigned.
    let mut nats = nat::resolve(model, &by_name, &nodes, &mut links, &segments)?;
    assign_indexes(&mut nodes, &mut links);
    nat::fill_peer_macs(&mut nats, &nodes, &links);
    for node in &nodes {
        if node.kind == NodeKind::Switch && node.ifaces.len() > OWN_QUEUE_ABOVE_PORTS {
            for iface in &node.ifaces {
                let link = &mut links[iface.link];
                link.own_queue = link.middle.is_none();
            }
        }
    }
    if model.auto_routes {
        let nat_ifaces = nat::outside_ifaces(&nats, nodes.len());
        add_auto_routes(&mut nodes, &segments, &nat_ifaces);
    }

    let static_neighbours = if model.static_arp { static_neighbours(&nodes, &segments) } else { Vec::new() };
    let ipv6 = nodes.iter().flat_map(|n| &n.ifaces).flat_map(|i| &i.addrs).any(|a| matches!(a, IpNet::V6(_)));
    Ok(Plan { nodes, links, local, static_neighbours, ipv6, random_seed: model.random_seed, nats })
}

/// Gives every bridge and interface an index unique across the whole topology (`lo` is 1 in
/// every namespace), and the MAC address that goes with it. Unique, because the kernel treats
/// a link event of a veth whose index equals its peer's as not urgent and delays it up to a
/// second; a carrier wait would then stall that long.
fn assign_indexes(nodes: &mut [PlannedNode], links: &mut [PlannedLink]) {
    let mut next: u32 = 2;
    let mut take = || {
        let index = next;
        next += 1;
        index
    };
    for node in nodes.iter_mut() {
        if node.kind == NodeKind::Switch {
            node.bridge = Some(Device::new(BRIDGE_NAME.to_string(), take()));
        }
        for iface in &mut node.ifaces {
            iface.index = take();
            iface.mac = mac_for(iface.index);
        }
    }
    for (index, link) in links.iter_mut().enumerate() {
        if let Some(middle) = &mut link.middle {
            let [a, b] = link.ends.map(|(node, _)| &nodes[node].name);
            *middle = Middle {
                ends: [Device::new(format!("m{index}a"), take()), Device::new(format!("m{index}b"), take())],
                bridge: Device::new(format!("m{index}br"), take()),
                capture_file: format!("link{}-{a}-{b}.pcap", index + 1),
            };
        }
    }
}

fn plan_link(
    index: usize,
    link: &Link,
    by_name: &HashMap<&str, usize>,
    nodes: &mut [PlannedNode],
    names: &mut [IfaceNames],
) -> Result<PlannedLink, TopologyError> {
    let label = link_label(index, link);
    let at = link.location.as_ref();
    let mut node_of = [0usize; 2];
    for (slot, end) in link.ends.iter().enumerate() {
        node_of[slot] = *by_name.get(end.node.as_str()).ok_or_else(|| {
            err(TopologyErrorKind::UnknownNode { name: end.node.clone(), context: label.clone() }, at)
        })?;
    }
    if node_of[0] == node_of[1] {
        return Err(err(TopologyErrorKind::SelfLink { node: link.ends[0].node.clone(), link: label }, at));
    }
    if let Some((node, address)) = link.stray_addrs.first() {
        return Err(err(
            TopologyErrorKind::AddressForOtherNode {
                link: label,
                node: node.clone(),
                address: address.clone(),
            },
            at,
        ));
    }
    let kinds = [nodes[node_of[0]].kind, nodes[node_of[1]].kind];
    if kinds == [NodeKind::Switch, NodeKind::Switch] {
        return Err(err(
            TopologyErrorKind::SwitchToSwitch {
                link: label,
                a: link.ends[0].node.clone(),
                b: link.ends[1].node.clone(),
            },
            at,
        ));
    }
    let has_v6 = link.ends.iter().flat_map(|e| &e.addrs).any(|a| a.contains(':'));
    if let Some(mtu) = link.mtu {
        let min = if has_v6 { 1280 } else { 68 };
        if !(min..=65535).contains(&mtu) {
            let reason = if has_v6 {
                "with IPv6 addresses the MTU must be between 1280 and 65535".to_string()
            } else {
                "the MTU must be between 68 and 65535".to_string()
            };
            return Err(err(TopologyErrorKind::InvalidMtu { link: label, mtu, reason }, at));
        }
    }
    let mut ends = [(0usize, 0usize); 2];
    for (slot, end) in link.ends.iter().enumerate() {
        let node = &mut nodes[node_of[slot]];
        let iface =
            plan_end(end, node, &mut names[node_of[slot]], index, &label).map_err(|kind| err(kind, at))?;
        ends[slot] = (node_of[slot], node.ifaces.len());
        node.ifaces.push(iface);
    }
    if let Some(node) = &link.stray_conditions {
        let kind = TopologyErrorKind::ConditionsForOtherNode { link: label, node: node.clone() };
        return Err(err(kind, at));
    }
    let mut conditions: [ValidConditions; 2] = Default::default();
    for (slot, given) in link.conditions.iter().enumerate() {
        conditions[slot] = ValidConditions::new(given.clone()).map_err(|source| {
            let link = format!("{label} from `{}`", link.ends[slot].node);
            err(TopologyErrorKind::InvalidCondition { link, source }, at)
        })?;
    }
    if let Some((every, length)) = link.outages {
        crate::conditions::validate_outages(every, length)
            .map_err(|source| err(TopologyErrorKind::InvalidCondition { link: label.clone(), source }, at))?;
    }
    // Conditions given at all (perfect ones too: they may change at runtime) or a capture
    // put the link through the middle namespace; `assign_indexes` fills its devices in.
    let carried = link.capture || link.conditions_given;
    Ok(PlannedLink {
        ends,
        mtu: link.mtu,
        conditions,
        capture: link.capture,
        middle: carried.then(Middle::default),
        own_queue: false,
        label,
        outages: link.outages,
    })
}

fn plan_end(
    end: &EndSpec,
    node: &PlannedNode,
    names: &mut IfaceNames,
    link: usize,
    label: &str,
) -> Result<PlannedIface, TopologyErrorKind> {
    let is_switch = node.kind == NodeKind::Switch;
    let name = match &end.ifname {
        Some(name) => {
            check_ifname(&node.name, name, is_switch)?;
            name.clone()
        }
        None => names.next_default(),
    };
    if !names.taken.insert(name.clone()) {
        return Err(TopologyErrorKind::DuplicateInterface { node: node.name.clone(), name });
    }
    let context = || format!("interface `{name}` of node `{}`", node.name);
    let mut addrs = Vec::with_capacity(end.addrs.len());
    for text in &end.addrs {
        if is_switch {
            return Err(TopologyErrorKind::AddressOnSwitch {
                switch: node.name.clone(),
                link: label.to_string(),
                address: text.clone(),
            });
        }
        addrs.push(parse_host_addr(text).map_err(|reason| TopologyErrorKind::InvalidAddress {
            value: text.clone(),
            context: context(),
            reason,
        })?);
    }
    Ok(PlannedIface { name, index: 0, mac: [0; 6], addrs, link })
}

#[cfg(test)]
mod tests;
