//! Validation: a [`Topology`] becomes a [`Plan`], with every name resolved, every address
//! parsed, interface indexes assigned and routes computed, or a [`TopologyError`] naming the
//! first offending item. Nothing touches the kernel here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{EndSpec, Link, Location, NodeKind, RouteSpec, Topology, TopologyError, TopologyErrorKind};
use crate::link::Conditions;

/// The largest number of ports a Linux bridge accepts.
const MAX_BRIDGE_PORTS: usize = 1023;
/// The name of the bridge device in a switch's namespace.
pub(crate) const BRIDGE_NAME: &str = "br0";

/// A topology resolved for creation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub(crate) nodes: Vec<PlannedNode>,
    pub(crate) links: Vec<PlannedLink>,
    pub(crate) local: usize,
    /// Permanent neighbour entries to add: `(node, interface index, neighbour address, MAC)`.
    pub(crate) static_neighbours: Vec<(usize, u32, IpAddr, [u8; 6])>,
    /// Whether any interface has an IPv6 address; without one, links get no IPv6 link-local
    /// address at all (multicast on large bridges otherwise floods the machine).
    pub(crate) ipv6: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedNode {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) hostname: bool,
    /// The interface index of a switch's bridge device.
    pub(crate) bridge: Option<u32>,
    pub(crate) ifaces: Vec<PlannedIface>,
    pub(crate) routes: Vec<PlannedRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedIface {
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) addrs: Vec<IpNet>,
    pub(crate) link: usize,
    pub(crate) mtu: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedLink {
    /// `(node, interface)` indexes of both ends.
    pub(crate) ends: [(usize, usize); 2],
    pub(crate) mtu: Option<u32>,
    /// The conditions a→b and b→a.
    pub(crate) conditions: [Conditions; 2],
    /// Whether every frame is written to a pcap file.
    pub(crate) capture: bool,
    /// For a link carried through the wire namespace: the interface indexes there of its
    /// middle end facing end a (`w<link>a`), the one facing end b (`w<link>b`), and of the
    /// bridge joining them when netem carries the link (`w<link>br`).
    pub(crate) wire: Option<[u32; 3]>,
    /// "link 2 (`a` – `b`)", for messages.
    pub(crate) label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedRoute {
    pub(crate) to: IpNet,
    pub(crate) via: IpAddr,
}

fn err(kind: TopologyErrorKind, location: Option<&Location>) -> TopologyError {
    TopologyError { kind, location: location.cloned().map(Box::new) }
}

fn link_label(index: usize, link: &Link) -> String {
    format!("link {} (`{}` – `{}`)", index + 1, link.ends[0].node, link.ends[1].node)
}

pub(crate) fn plan(topology: &Topology) -> Result<Plan, TopologyError> {
    if topology.nodes.is_empty() {
        return Err(TopologyErrorKind::Empty.into());
    }
    let mut nodes: Vec<PlannedNode> = Vec::with_capacity(topology.nodes.len());
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for spec in &topology.nodes {
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
            hostname: topology.hostnames && spec.kind != NodeKind::Switch,
            bridge: None,
            ifaces: Vec::new(),
            routes: Vec::new(),
        });
    }

    let mut links = Vec::with_capacity(topology.links.len());
    for (index, link) in topology.links.iter().enumerate() {
        links.push(plan_link(index, link, &by_name, &mut nodes)?);
    }

    assign_indexes(&mut nodes, &mut links);
    for (node, spec) in nodes.iter().zip(&topology.nodes) {
        if node.kind == NodeKind::Switch && node.ifaces.len() > MAX_BRIDGE_PORTS {
            let kind =
                TopologyErrorKind::TooManySwitchPorts { switch: node.name.clone(), ports: node.ifaces.len() };
            return Err(err(kind, spec.location.as_ref()));
        }
    }
    // These errors concern an interface; report them at the link that declares it.
    let at_link =
        |(kind, link): (TopologyErrorKind, usize)| err(kind, topology.links[link].location.as_ref());
    check_duplicate_addresses(&nodes).map_err(at_link)?;
    let segments = segments(&nodes, &links);
    check_subnets(&nodes, &segments).map_err(at_link)?;

    let local = match &topology.local {
        Some(name) => {
            let index = *by_name.get(name.as_str()).ok_or_else(|| TopologyErrorKind::UnknownNode {
                name: name.clone(),
                context: "the `local` setting".into(),
            })?;
            if nodes[index].kind == NodeKind::Switch {
                return Err(TopologyErrorKind::LocalIsSwitch { name: name.clone() }.into());
            }
            index
        }
        None => match nodes.iter().position(|node| node.kind != NodeKind::Switch) {
            Some(index) => index,
            None => {
                return Err(TopologyErrorKind::LocalIsSwitch { name: nodes[0].name.clone() }.into());
            }
        },
    };

    for route in &topology.routes {
        plan_route(route, &by_name, &mut nodes)?;
    }
    if topology.auto_routes {
        add_auto_routes(&mut nodes, &segments);
    }

    let static_neighbours =
        if topology.static_arp { static_neighbours(&nodes, &segments) } else { Vec::new() };
    let ipv6 = nodes.iter().flat_map(|n| &n.ifaces).flat_map(|i| &i.addrs).any(|a| matches!(a, IpNet::V6(_)));
    Ok(Plan { nodes, links, local, static_neighbours, ipv6 })
}

/// The MAC address of the interface (or bridge) with interface index `index`: locally
/// administered, fixed by the topology, so captures and neighbour tables read the same on
/// every run. Tests in parallel reuse them, each in its own namespaces.
pub(crate) fn mac_for(index: u32) -> [u8; 6] {
    let [_, a, b, c] = index.to_be_bytes();
    [0x02, 0x6e, 0x74, a, b, c]
}

/// Gives every bridge and interface an index unique across the whole topology (`lo` is 1 in
/// every namespace). Unique, because the kernel treats a link event of a veth whose index
/// equals its peer's as not urgent and delays it up to a second; a carrier wait would then
/// stall that long.
fn assign_indexes(nodes: &mut [PlannedNode], links: &mut [PlannedLink]) {
    let mut next: u32 = 2;
    let mut take = || {
        let index = next;
        next += 1;
        index
    };
    for node in nodes {
        if node.kind == NodeKind::Switch {
            node.bridge = Some(take());
        }
        for iface in &mut node.ifaces {
            iface.index = take();
        }
    }
    for link in links {
        if let Some(wire) = &mut link.wire {
            *wire = [take(), take(), take()];
        }
    }
}

fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "it is {} bytes long; node names become hostnames, at most 63 bytes",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("character {bad:?} is not allowed; use letters, digits, `-` and `_`"));
    }
    if name.starts_with('-') {
        return Err("it starts with `-`".into());
    }
    Ok(())
}

fn check_ifname(node: &str, name: &str, is_switch: bool) -> Result<(), TopologyErrorKind> {
    let invalid = |reason: &str| TopologyErrorKind::InvalidInterfaceName {
        node: node.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 15 {
        return Err(TopologyErrorKind::InterfaceNameTooLong {
            node: node.into(),
            name: name.into(),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(invalid("`.` and `..` are not interface names"));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(invalid("`/`, `:` and whitespace are not allowed"));
    }
    if name == "lo" || (is_switch && name == BRIDGE_NAME) {
        return Err(invalid("the name is already taken by the node's own device"));
    }
    Ok(())
}

fn plan_link(
    index: usize,
    link: &Link,
    by_name: &HashMap<&str, usize>,
    nodes: &mut [PlannedNode],
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
        let iface = plan_end(end, node, index, link.mtu, &label).map_err(|kind| err(kind, at))?;
        ends[slot] = (node_of[slot], node.ifaces.len());
        node.ifaces.push(iface);
    }
    if let Some(node) = &link.stray_conditions {
        let kind = TopologyErrorKind::InvalidCondition {
            link: label,
            field: "conditions_from".into(),
            value: format!("`{node}`"),
            reason: "the node is not an end of this link".into(),
        };
        return Err(err(kind, at));
    }
    for (slot, conditions) in link.conditions.iter().enumerate() {
        conditions
            .validate()
            .map_err(|error| err(error.for_link(format!("{label} from `{}`", link.ends[slot].node)), at))?;
    }
    // Conditions given at all (perfect ones too: they may change at runtime) or a capture
    // put the link through the wire namespace.
    let carried = link.capture || link.conditions_given;
    Ok(PlannedLink {
        ends,
        mtu: link.mtu,
        conditions: link.conditions.clone(),
        capture: link.capture,
        wire: carried.then_some([0, 0, 0]),
        label,
    })
}

impl PlannedLink {
    /// The names of the middle ends and of the bridge in the wire namespace, for link `index`.
    pub(crate) fn wire_names(index: usize) -> [String; 3] {
        [format!("w{index}a"), format!("w{index}b"), format!("w{index}br")]
    }
}

fn plan_end(
    end: &EndSpec,
    node: &PlannedNode,
    link: usize,
    mtu: Option<u32>,
    label: &str,
) -> Result<PlannedIface, TopologyErrorKind> {
    let is_switch = node.kind == NodeKind::Switch;
    let name = match &end.ifname {
        Some(name) => {
            check_ifname(&node.name, name, is_switch)?;
            if node.ifaces.iter().any(|iface| &iface.name == name) {
                return Err(TopologyErrorKind::DuplicateInterface {
                    node: node.name.clone(),
                    name: name.clone(),
                });
            }
            name.clone()
        }
        None => (0..)
            .map(|k| format!("eth{k}"))
            .find(|candidate| !node.ifaces.iter().any(|iface| &iface.name == candidate))
            .expect("some ethN name is free"),
    };
    let context = format!("interface `{name}` of node `{}`", node.name);
    let mut addrs = Vec::with_capacity(end.addrs.len());
    for text in &end.addrs {
        if is_switch {
            return Err(TopologyErrorKind::AddressOnSwitch {
                switch: node.name.clone(),
                link: label.to_string(),
                address: text.clone(),
            });
        }
        addrs.push(parse_host_addr(text, &context)?);
    }
    Ok(PlannedIface { name, index: 0, addrs, link, mtu })
}

/// Parses an interface address in CIDR notation.
pub(crate) fn parse_host_addr(text: &str, context: &str) -> Result<IpNet, TopologyErrorKind> {
    let invalid = |reason: String| TopologyErrorKind::InvalidAddress {
        value: text.to_string(),
        context: context.to_string(),
        reason,
    };
    if !text.contains('/') {
        return Err(invalid("the prefix length is missing, e.g. `10.0.0.1/24`".into()));
    }
    let net: IpNet = text.trim().parse().map_err(|e| invalid(format!("{e}")))?;
    let addr = net.addr();
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(invalid(
            "unspecified, multicast and loopback addresses cannot be given to an interface".into(),
        ));
    }
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 && (addr == IpAddr::V4(v4.network()) || addr == IpAddr::V4(v4.broadcast())) {
            return Err(invalid(format!("it is the network or broadcast address of {}", net.trunc())));
        }
    }
    Ok(net)
}

fn iface_label(node: &PlannedNode, iface: &PlannedIface) -> String {
    format!("interface `{}` of node `{}`", iface.name, node.name)
}

/// The first address given twice, with the link of its second occurrence.
fn check_duplicate_addresses(nodes: &[PlannedNode]) -> Result<(), (TopologyErrorKind, usize)> {
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for node in nodes {
        for iface in &node.ifaces {
            for addr in &iface.addrs {
                let here = iface_label(node, iface);
                if let Some(first) = seen.insert(addr.addr(), here.clone()) {
                    let kind = TopologyErrorKind::DuplicateAddress {
                        address: addr.addr().to_string(),
                        first,
                        second: here,
                    };
                    return Err((kind, iface.link));
                }
            }
        }
    }
    Ok(())
}

/// A layer-2 segment: the interfaces of one point-to-point link, or every host-side interface
/// of the links to one switch. Members are `(node, interface)` indexes.
pub(crate) struct Segment {
    members: Vec<(usize, usize)>,
}

fn segments(nodes: &[PlannedNode], links: &[PlannedLink]) -> Vec<Segment> {
    let mut switch_segment: BTreeMap<usize, usize> = BTreeMap::new();
    let mut segments: Vec<Segment> = Vec::new();
    for link in links {
        let switch_end = link.ends.iter().find(|(node, _)| nodes[*node].kind == NodeKind::Switch);
        match switch_end {
            Some(&(switch, _)) => {
                let other =
                    *link.ends.iter().find(|(node, _)| *node != switch).expect("switch links have two ends");
                let index = *switch_segment.entry(switch).or_insert_with(|| {
                    segments.push(Segment { members: Vec::new() });
                    segments.len() - 1
                });
                segments[index].members.push(other);
            }
            None => segments.push(Segment { members: link.ends.to_vec() }),
        }
    }
    segments
}

/// The first address that shares no subnet with the rest of its segment, with its link.
fn check_subnets(nodes: &[PlannedNode], segments: &[Segment]) -> Result<(), (TopologyErrorKind, usize)> {
    for segment in segments {
        for &(node, iface) in &segment.members {
            for addr in &nodes[node].ifaces[iface].addrs {
                let others: Vec<(IpNet, usize, usize)> = segment
                    .members
                    .iter()
                    .filter(|member| **member != (node, iface))
                    .flat_map(|&(n, i)| nodes[n].ifaces[i].addrs.iter().map(move |a| (*a, n, i)))
                    .filter(|(other, _, _)| other.addr().is_ipv4() == addr.addr().is_ipv4())
                    .collect();
                let Some(&(first, n, i)) = others.first() else {
                    continue;
                };
                let shares = others.iter().any(|(other, _, _)| other.trunc() == addr.trunc());
                if !shares {
                    let kind = TopologyErrorKind::AddressOutsideSubnet {
                        address: addr.to_string(),
                        interface: iface_label(&nodes[node], &nodes[node].ifaces[iface]),
                        subnet: first.trunc().to_string(),
                        other: format!("{first} on {}", iface_label(&nodes[n], &nodes[n].ifaces[i])),
                    };
                    return Err((kind, nodes[node].ifaces[iface].link));
                }
            }
        }
    }
    Ok(())
}

fn plan_route(
    route: &RouteSpec,
    by_name: &HashMap<&str, usize>,
    nodes: &mut [PlannedNode],
) -> Result<(), TopologyError> {
    let at = route.location.as_ref();
    let written = format!("{} via {}", route.to, route.via);
    let node_index = *by_name.get(route.node.as_str()).ok_or_else(|| {
        err(
            TopologyErrorKind::UnknownNode {
                name: route.node.clone(),
                context: format!("route `{written}`"),
            },
            at,
        )
    })?;
    let node = &mut nodes[node_index];
    let invalid = |reason: String| {
        err(TopologyErrorKind::InvalidRoute { node: route.node.clone(), route: written.clone(), reason }, at)
    };
    if node.kind == NodeKind::Switch {
        return Err(invalid("a switch has no routes".into()));
    }
    let via: IpAddr =
        route.via.trim().parse().map_err(|e| invalid(format!("gateway `{}`: {e}", route.via)))?;
    let to: IpNet = if route.to.trim() == "default" {
        match via {
            IpAddr::V4(_) => "0.0.0.0/0".parse().expect("valid prefix"),
            IpAddr::V6(_) => "::/0".parse().expect("valid prefix"),
        }
    } else {
        let net: IpNet =
            route.to.trim().parse().map_err(|e| invalid(format!("destination `{}`: {e}", route.to)))?;
        if net != net.trunc() {
            return Err(invalid(format!(
                "destination {net} has host bits set; did you mean {}?",
                net.trunc()
            )));
        }
        net
    };
    if to.addr().is_ipv4() != via.is_ipv4() {
        return Err(invalid("the destination and the gateway are of different address families".into()));
    }
    let connected: Vec<IpNet> = node.ifaces.iter().flat_map(|i| i.addrs.iter().map(IpNet::trunc)).collect();
    if !connected.iter().any(|subnet| subnet.contains(&via)) {
        let subnets = if connected.is_empty() {
            "it has no addresses".to_string()
        } else {
            connected.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        return Err(err(
            TopologyErrorKind::GatewayNotOnSubnet {
                node: node.name.clone(),
                gateway: via.to_string(),
                subnets,
            },
            at,
        ));
    }
    if node.routes.iter().any(|existing| existing.to == to) {
        return Err(invalid(format!("node `{}` already has a route to {to}", node.name)));
    }
    node.routes.push(PlannedRoute { to, via });
    Ok(())
}

/// For every interface, a permanent neighbour entry for every address of the other
/// interfaces on its segment.
fn static_neighbours(nodes: &[PlannedNode], segments: &[Segment]) -> Vec<(usize, u32, IpAddr, [u8; 6])> {
    let mut entries = Vec::new();
    for segment in segments {
        for &(node, iface) in &segment.members {
            let index = nodes[node].ifaces[iface].index;
            for &(other_node, other_iface) in &segment.members {
                if (other_node, other_iface) == (node, iface) {
                    continue;
                }
                let other = &nodes[other_node].ifaces[other_iface];
                for addr in &other.addrs {
                    entries.push((node, index, addr.addr(), mac_for(other.index)));
                }
            }
        }
    }
    entries
}

/// Adds, for every host and router and each address family, a route to every subnet it is not
/// connected to, via the first hop of a shortest path that crosses only routers. Static routes
/// to the same prefix win.
fn add_auto_routes(nodes: &mut [PlannedNode], segments: &[Segment]) {
    // Which segments each node sits on.
    let mut node_segments: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (index, segment) in segments.iter().enumerate() {
        for &(node, _) in &segment.members {
            node_segments[node].push(index);
        }
    }
    let addrs_on = |nodes: &[PlannedNode], node: usize, segment: usize, v4: bool| -> Vec<IpNet> {
        segments[segment]
            .members
            .iter()
            .filter(|(n, _)| *n == node)
            .flat_map(|&(n, i)| nodes[n].ifaces[i].addrs.clone())
            .filter(|a| a.addr().is_ipv4() == v4)
            .collect()
    };
    let mut new_routes: Vec<(usize, PlannedRoute)> = Vec::new();
    for start in 0..nodes.len() {
        if nodes[start].kind == NodeKind::Switch {
            continue;
        }
        for v4 in [true, false] {
            let connected: Vec<IpNet> = nodes[start]
                .ifaces
                .iter()
                .flat_map(|i| i.addrs.iter().map(IpNet::trunc))
                .filter(|a| a.addr().is_ipv4() == v4)
                .collect();
            if connected.is_empty() {
                continue;
            }
            // Breadth-first search over nodes; `first_hop[n]` is the gateway address that leads
            // from `start` towards `n`.
            let mut first_hop: Vec<Option<IpAddr>> = vec![None; nodes.len()];
            let mut visited = vec![false; nodes.len()];
            visited[start] = true;
            let mut queue = VecDeque::from([start]);
            let mut reached_segments: Vec<(usize, IpAddr)> = Vec::new();
            while let Some(current) = queue.pop_front() {
                if current != start && nodes[current].kind != NodeKind::Router {
                    continue;
                }
                for &segment in &node_segments[current] {
                    if addrs_on(nodes, current, segment, v4).is_empty() {
                        continue;
                    }
                    if current != start {
                        let hop = first_hop[current].expect("visited nodes have a first hop");
                        reached_segments.push((segment, hop));
                    }
                    for &(neighbour, _) in &segments[segment].members {
                        if visited[neighbour] || nodes[neighbour].kind == NodeKind::Switch {
                            continue;
                        }
                        let Some(gateway) = addrs_on(nodes, neighbour, segment, v4).first().map(IpNet::addr)
                        else {
                            continue;
                        };
                        visited[neighbour] = true;
                        first_hop[neighbour] =
                            Some(if current == start { gateway } else { first_hop[current].expect("set") });
                        queue.push_back(neighbour);
                    }
                }
            }
            for (segment, via) in reached_segments {
                for &(member, iface) in &segments[segment].members {
                    for addr in &nodes[member].ifaces[iface].addrs {
                        let subnet = addr.trunc();
                        if subnet.addr().is_ipv4() != v4 || connected.contains(&subnet) {
                            continue;
                        }
                        let exists = nodes[start].routes.iter().any(|r| r.to == subnet)
                            || new_routes.iter().any(|(n, r)| *n == start && r.to == subnet);
                        if !exists {
                            new_routes.push((start, PlannedRoute { to: subnet, via }));
                        }
                    }
                }
            }
        }
    }
    for (node, route) in new_routes {
        nodes[node].routes.push(route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn seed_plan() {
        let plan = Topology::seed().plan().unwrap();
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.local, 0);
        assert!(!plan.ipv6);
        let a = &plan.nodes[0].ifaces[0];
        assert_eq!((a.name.as_str(), a.index), ("veth0", 2));
        assert_eq!(a.addrs, vec!["1.1.1.2/24".parse::<IpNet>().unwrap()]);
        let b = &plan.nodes[1].ifaces[0];
        assert_eq!((b.name.as_str(), b.index), ("veth1", 3), "indexes are unique across nodes");
    }

    #[test]
    fn auto_routes_cross_two_routers() {
        let topology = Topology::builder()
            .host("a")
            .router("r1")
            .router("r2")
            .host("b")
            .link(Link::new("a", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
            .link(Link::new("r1", "r2").addrs("10.0.2.1/24", "10.0.2.2/24"))
            .link(Link::new("r2", "b").addrs("10.0.3.1/24", "10.0.3.2/24"))
            .auto_routes()
            .build()
            .unwrap();
        let plan = topology.plan().unwrap();
        let routes = |name: &str| -> Vec<String> {
            let node = plan.nodes.iter().find(|n| n.name == name).unwrap();
            node.routes.iter().map(|r| format!("{} via {}", r.to, r.via)).collect()
        };
        assert_eq!(routes("a"), ["10.0.2.0/24 via 10.0.1.1", "10.0.3.0/24 via 10.0.1.1"]);
        assert_eq!(routes("r1"), ["10.0.3.0/24 via 10.0.2.2"]);
        assert_eq!(routes("r2"), ["10.0.1.0/24 via 10.0.2.1"]);
        assert_eq!(routes("b"), ["10.0.2.0/24 via 10.0.3.1", "10.0.1.0/24 via 10.0.3.1"]);
    }

    #[test]
    fn hosts_do_not_forward_in_auto_routes() {
        // b sits between a and c but is a host, so a gets no route to c's subnet.
        let topology = Topology::builder()
            .host("a")
            .host("b")
            .host("c")
            .link(Link::new("a", "b").addrs("10.0.1.1/24", "10.0.1.2/24"))
            .link(Link::new("b", "c").addrs("10.0.2.1/24", "10.0.2.2/24"))
            .auto_routes()
            .build()
            .unwrap();
        let plan = topology.plan().unwrap();
        assert!(plan.nodes[0].routes.is_empty());
    }

    #[test]
    fn switch_ports_are_numbered_after_their_bridge() {
        let topology = Topology::builder()
            .switch("sw")
            .host("h1")
            .host("h2")
            .link(Link::new("h1", "sw").addr("h1", "10.0.0.1/24"))
            .link(Link::new("h2", "sw").addr("h2", "10.0.0.2/24"))
            .build()
            .unwrap();
        let plan = topology.plan().unwrap();
        assert_eq!(plan.local, 1, "the first non-switch node is local");
        let sw = &plan.nodes[0];
        assert_eq!(sw.bridge, Some(2));
        assert_eq!(sw.ifaces.iter().map(|i| i.index).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(plan.nodes[1].ifaces[0].index, 5);
    }
}
