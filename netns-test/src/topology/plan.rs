//! Validation: a [`Model`] becomes a [`Plan`], with every name resolved, every address
//! parsed, interface indexes assigned and routes computed, or a [`TopologyError`] naming the
//! first offending item. Nothing touches the kernel here.
//!
//! Every step takes time in proportion to what it reads and what it produces: names, addresses,
//! subnets and routes are looked up by hashing, never by rescanning a list, and automatic routes
//! come from at most one breadth-first search per node and address family.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{EndSpec, Link, Location, Model, NodeKind, TopologyError, TopologyErrorKind};
use crate::conditions::Conditions;

mod routes;

use routes::{StaticRoutes, add_auto_routes};

/// The largest number of ports a Linux bridge accepts.
const MAX_BRIDGE_PORTS: usize = 1023;
/// Switches with more ports than this deliver the frames they flood through each receiving
/// interface's own queue (see [`PlannedLink::own_queue`]).
pub(crate) const OWN_QUEUE_ABOVE_PORTS: usize = 128;
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
    /// The seed of the link conditions given with the topology.
    pub(crate) random_seed: Option<u64>,
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
    /// Whether the link is a port of a switch with more than [`OWN_QUEUE_ABOVE_PORTS`] ports
    /// and is not carried through the wire namespace. A veth delivers what it receives into the
    /// CPU's backlog, which holds `net.core.netdev_max_backlog` frames (1000, settable only in
    /// the root namespace) for every namespace of the machine: one broadcast flooded to a
    /// thousand ports overflows it, and ARP across the switch then fails silently. So the end
    /// facing the switch receives through its own NAPI queue (GRO on, which gives a veth one),
    /// and the switch's port sends without TSO, since a veth uses that queue only for frames
    /// from a device without TSO.
    pub(crate) own_queue: bool,
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

    assign_indexes(&mut nodes, &mut links);
    for (node, spec) in nodes.iter().zip(&model.nodes) {
        if node.kind == NodeKind::Switch && node.ifaces.len() > MAX_BRIDGE_PORTS {
            let kind =
                TopologyErrorKind::TooManySwitchPorts { switch: node.name.clone(), ports: node.ifaces.len() };
            return Err(err(kind, spec.location.as_ref()));
        }
        if node.kind == NodeKind::Switch && node.ifaces.len() > OWN_QUEUE_ABOVE_PORTS {
            for iface in &node.ifaces {
                let link = &mut links[iface.link];
                link.own_queue = link.wire.is_none();
            }
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
    if model.auto_routes {
        add_auto_routes(&mut nodes, &segments);
    }

    let static_neighbours = if model.static_arp { static_neighbours(&nodes, &segments) } else { Vec::new() };
    let ipv6 = nodes.iter().flat_map(|n| &n.ifaces).flat_map(|i| &i.addrs).any(|a| matches!(a, IpNet::V6(_)));
    Ok(Plan { nodes, links, local, static_neighbours, ipv6, random_seed: model.random_seed })
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

/// Checks an interface name as the kernel's `dev_valid_name` does, and refuses the names the
/// kernel would rename or reject later, when the interface is created.
fn check_ifname(node: &str, name: &str, is_switch: bool) -> Result<(), TopologyErrorKind> {
    let invalid = |reason: String| TopologyErrorKind::InvalidInterfaceName {
        node: node.to_string(),
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if name.len() > 15 {
        return Err(TopologyErrorKind::InterfaceNameTooLong {
            node: node.into(),
            name: name.into(),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(invalid("`.` and `..` are not interface names".into()));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(invalid("`/`, `:` and whitespace are not allowed".into()));
    }
    // The kernel's isspace() also counts byte 0xA0, which is part of the UTF-8 encoding of
    // characters such as `à`.
    if let Some(c) = name.chars().find(|c| c.encode_utf8(&mut [0; 4]).bytes().any(|b| b == 0xA0)) {
        return Err(invalid(format!(
            "character {c:?} is encoded with byte 0xA0, which Linux counts as whitespace in interface names"
        )));
    }
    if name.contains('%') {
        return Err(invalid(
            "`%` is not allowed: Linux reads it as a number to fill in and renames the interface \
             (`e%d` becomes `e0`)"
                .into(),
        ));
    }
    if name == "all" || name == "default" {
        return Err(invalid(format!(
            "`{name}` is reserved: /proc/sys/net/ipv4/conf/{name} and /proc/sys/net/ipv6/conf/{name} hold \
             the settings of every interface, and Linux refuses an interface of that name"
        )));
    }
    if name == "lo" || (is_switch && name == BRIDGE_NAME) {
        return Err(invalid("the name is already taken by the node's own device".into()));
    }
    Ok(())
}

/// The interface names a node has so far, and where to look for its next default name.
#[derive(Default)]
struct IfaceNames {
    taken: HashSet<String>,
    /// Every `eth<k>` below this is taken: names are only ever added.
    next_default: usize,
}

impl IfaceNames {
    /// The first free name among `eth0`, `eth1`, ...
    fn next_default(&mut self) -> String {
        loop {
            let candidate = format!("eth{}", self.next_default);
            self.next_default += 1;
            if !self.taken.contains(&candidate) {
                return candidate;
            }
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
        let iface = plan_end(end, node, &mut names[node_of[slot]], index, link.mtu, &label)
            .map_err(|kind| err(kind, at))?;
        ends[slot] = (node_of[slot], node.ifaces.len());
        node.ifaces.push(iface);
    }
    if let Some(node) = &link.stray_conditions {
        let kind = TopologyErrorKind::ConditionsForOtherNode { link: label, node: node.clone() };
        return Err(err(kind, at));
    }
    for (slot, conditions) in link.conditions.iter().enumerate() {
        conditions.validate().map_err(|source| {
            let link = format!("{label} from `{}`", link.ends[slot].node);
            err(TopologyErrorKind::InvalidCondition { link, source }, at)
        })?;
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
        own_queue: false,
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
    names: &mut IfaceNames,
    link: usize,
    mtu: Option<u32>,
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
    Ok(PlannedIface { name, index: 0, addrs, link, mtu })
}

/// Parses a prefix in CIDR notation (`10.0.0.1/24`, `fd00::/64`), host bits allowed; the
/// reason when it does not parse.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let Some((addr, len)) = text.split_once('/') else {
        return Err("the prefix length is missing, e.g. `10.0.0.1/24`".into());
    };
    let addr: IpAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len.parse::<u64>() {
        Ok(len) if len <= max => len as u8,
        Ok(len) => return Err(format!("prefix length {len} is over {max}")),
        Err(_) => return Err(format!("prefix length `{len}` is not a whole number from 0 to {max}")),
    };
    Ok(match addr {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, len).expect("the length is in range")),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, len).expect("the length is in range")),
    })
}

/// Parses an interface address in CIDR notation, refusing those the kernel accepts but that
/// cannot carry traffic; the reason when it is refused.
fn parse_host_addr(text: &str) -> Result<IpNet, String> {
    let net = parse_cidr(text)?;
    let addr = net.addr();
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err("unspecified, multicast and loopback addresses cannot be given to an interface".into());
    }
    match net {
        IpNet::V4(v4) => {
            let first = v4.addr().octets()[0];
            if v4.addr().is_broadcast() {
                return Err("255.255.255.255 is the limited broadcast address, not an interface's".into());
            }
            if first == 0 {
                return Err(
                    "addresses in 0.0.0.0/8 mean \"this network\": Linux sends nothing from them".into()
                );
            }
            if v4.network().octets()[0] == 0 {
                // For a subnet in 0.0.0.0/8 Linux installs no route, so every send fails with
                // ENETUNREACH. The shortest prefix that leaves it: the first octet's top bit.
                return Err(format!(
                    "its subnet {} starts in 0.0.0.0/8, for which Linux installs no route, so nothing on \
                     the link would be reachable; use a prefix length of at least {}",
                    net.trunc(),
                    first.leading_zeros() + 1
                ));
            }
            if v4.prefix_len() < 31 && (v4.addr() == v4.network() || v4.addr() == v4.broadcast()) {
                return Err(format!("it is the network or broadcast address of {}", net.trunc()));
            }
        }
        IpNet::V6(v6) => {
            if v6.addr().to_ipv4_mapped().is_some() {
                return Err("IPv4-mapped addresses (::ffff:0:0/96) stand for IPv4 peers of IPv6 sockets; \
                            Linux never sends them as IPv6"
                    .into());
            }
        }
    }
    Ok(net)
}

fn iface_label(node: &PlannedNode, iface: &PlannedIface) -> String {
    format!("interface `{}` of node `{}`", iface.name, node.name)
}

/// The first address given twice, with the link of its second occurrence.
fn check_duplicate_addresses(nodes: &[PlannedNode]) -> Result<(), (TopologyErrorKind, usize)> {
    let mut seen: HashMap<IpAddr, (usize, usize)> = HashMap::new();
    for (n, node) in nodes.iter().enumerate() {
        for (i, iface) in node.ifaces.iter().enumerate() {
            for addr in &iface.addrs {
                if let Some((first_node, first_iface)) = seen.insert(addr.addr(), (n, i)) {
                    let kind = TopologyErrorKind::DuplicateAddress {
                        address: addr.addr().to_string(),
                        first: iface_label(&nodes[first_node], &nodes[first_node].ifaces[first_iface]),
                        second: iface_label(node, iface),
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
    let mut switch_segment: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut segments: Vec<Segment> = Vec::new();
    for link in links {
        let switch_end = link.ends.iter().find(|(node, _)| nodes[*node].kind == NodeKind::Switch);
        match switch_end {
            Some(&(switch, _)) => {
                let other =
                    *link.ends.iter().find(|(node, _)| *node != switch).expect("switch links have two ends");
                let index = *switch_segment[switch].get_or_insert_with(|| {
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
///
/// An address passes when no other member of its segment has an address of its family, or
/// when another member has one in the same subnet: counted per subnet, not by comparing pairs.
fn check_subnets(nodes: &[PlannedNode], segments: &[Segment]) -> Result<(), (TopologyErrorKind, usize)> {
    // Per subnet: how many distinct members have an address in it, and the last one counted.
    let mut members_in: HashMap<IpNet, (usize, usize)> = HashMap::new();
    for segment in segments {
        members_in.clear();
        let addrs = |&(node, iface): &(usize, usize)| &nodes[node].ifaces[iface].addrs;
        let mut members_of_family = [0usize; 2];
        for (position, member) in segment.members.iter().enumerate() {
            let mut has = [false; 2];
            for addr in addrs(member) {
                has[family(addr.addr())] = true;
                let entry = members_in.entry(addr.trunc()).or_insert((0, usize::MAX));
                if entry.1 != position {
                    *entry = (entry.0 + 1, position);
                }
            }
            for f in 0..2 {
                members_of_family[f] += usize::from(has[f]);
            }
        }
        for (position, &(node, iface)) in segment.members.iter().enumerate() {
            for addr in addrs(&(node, iface)) {
                let f = family(addr.addr());
                if members_of_family[f] < 2 || members_in[&addr.trunc()].0 >= 2 {
                    continue;
                }
                // The address of the family that comes first on another member defines the
                // subnet the message names.
                let (first, n, i) = segment
                    .members
                    .iter()
                    .enumerate()
                    .filter(|(other, _)| *other != position)
                    .flat_map(|(_, &(n, i))| nodes[n].ifaces[i].addrs.iter().map(move |a| (*a, n, i)))
                    .find(|(other, _, _)| family(other.addr()) == f)
                    .expect("another member has an address of the family");
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

#[cfg(test)]
mod tests;
