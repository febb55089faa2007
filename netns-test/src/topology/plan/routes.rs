//! Routes: static routes checked against the node's subnets, and automatic routes computed
//! with at most one breadth-first search per node and address family.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{PlannedNode, PlannedRoute, Segment, err, family, parse_cidr};
use crate::topology::{NodeKind, RouteSpec, TopologyError, TopologyErrorKind};

/// The subnets of a node's interfaces, to find the one a gateway is on in time independent of
/// the node's number of interfaces.
struct Connected {
    subnets: HashSet<IpNet>,
    /// The distinct prefix lengths of `subnets`, with their family.
    lengths: Vec<(usize, u8)>,
}

impl Connected {
    fn of(node: &PlannedNode) -> Connected {
        let subnets: HashSet<IpNet> =
            node.ifaces.iter().flat_map(|i| i.addrs.iter().map(IpNet::trunc)).collect();
        let mut lengths: Vec<(usize, u8)> =
            subnets.iter().map(|subnet| (family(subnet.addr()), subnet.prefix_len())).collect();
        lengths.sort_unstable();
        lengths.dedup();
        Connected { subnets, lengths }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        self.lengths
            .iter()
            .filter(|(f, _)| *f == family(addr))
            .any(|&(_, len)| IpNet::new(addr, len).is_ok_and(|net| self.subnets.contains(&net.trunc())))
    }
}

/// Validates static routes, with what it learnt of each node kept for the next route.
pub(super) struct StaticRoutes {
    connected: Vec<Option<Connected>>,
    destinations: HashSet<(usize, IpNet)>,
}

impl StaticRoutes {
    pub(super) fn new(nodes: usize) -> Self {
        StaticRoutes { connected: (0..nodes).map(|_| None).collect(), destinations: HashSet::new() }
    }

    pub(super) fn plan(
        &mut self,
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
            err(
                TopologyErrorKind::InvalidRoute { node: route.node.clone(), route: written.clone(), reason },
                at,
            )
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
            let net =
                parse_cidr(&route.to).map_err(|e| invalid(format!("destination `{}`: {e}", route.to)))?;
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
        let connected = self.connected[node_index].get_or_insert_with(|| Connected::of(node));
        if !connected.contains(via) {
            let subnets: Vec<String> =
                node.ifaces.iter().flat_map(|i| i.addrs.iter().map(|a| a.trunc().to_string())).collect();
            let subnets =
                if subnets.is_empty() { "it has no addresses".to_string() } else { subnets.join(", ") };
            return Err(err(
                TopologyErrorKind::GatewayNotOnSubnet {
                    node: node.name.clone(),
                    gateway: via.to_string(),
                    subnets,
                },
                at,
            ));
        }
        if !self.destinations.insert((node_index, to)) {
            return Err(invalid(format!("node `{}` already has a route to {to}", node.name)));
        }
        node.routes.push(PlannedRoute { to, via });
        Ok(())
    }
}

/// A node's place on a segment: the first address it has there of each family, which is the
/// gateway the other members route through.
#[derive(Clone, Copy)]
struct Attachment {
    segment: usize,
    gateway: [Option<IpAddr>; 2],
}

/// The topology as automatic routing sees it, built once.
struct RouteGraph {
    /// Per node, the segments it is on, in segment order.
    attachments: Vec<Vec<Attachment>>,
    /// Per segment, its routers (in member order) and their gateway addresses there.
    routers: Vec<Vec<(usize, [Option<IpAddr>; 2])>>,
    /// Every subnet of the topology; the lists below hold indexes into it.
    subnets: Vec<IpNet>,
    index_of: HashMap<IpNet, u32>,
    /// Per segment and family, its distinct subnets, in the order its addresses come.
    subnets_on: Vec<[Vec<u32>; 2]>,
    /// Per node and family, the subnets it is connected to.
    connected: Vec<[Vec<u32>; 2]>,
    /// Per node, the segment of its NAT's outside interface, if it is a NAT.
    nat_outside: Vec<Option<usize>>,
}

impl RouteGraph {
    /// `nat_ifaces`: per node, its NAT's outside interface (empty: no NATs).
    fn new(nodes: &[PlannedNode], segments: &[Segment], nat_ifaces: &[Option<usize>]) -> RouteGraph {
        let mut subnets = Vec::new();
        let mut index_of: HashMap<IpNet, u32> = HashMap::new();
        let mut connected: Vec<[Vec<u32>; 2]> = vec![Default::default(); nodes.len()];
        for (n, node) in nodes.iter().enumerate() {
            for addr in node.ifaces.iter().flat_map(|iface| &iface.addrs) {
                let subnet = addr.trunc();
                let id = *index_of.entry(subnet).or_insert_with(|| {
                    subnets.push(subnet);
                    (subnets.len() - 1) as u32
                });
                connected[n][family(subnet.addr())].push(id);
            }
        }
        let mut attachments: Vec<Vec<Attachment>> = vec![Vec::new(); nodes.len()];
        let mut subnets_on: Vec<[Vec<u32>; 2]> = Vec::with_capacity(segments.len());
        // `seen[id] == s + 1`: subnet `id` is already listed for segment `s`.
        let mut seen = vec![0usize; subnets.len()];
        for (s, segment) in segments.iter().enumerate() {
            let mut on: [Vec<u32>; 2] = Default::default();
            for &(n, i) in &segment.members {
                // A node's members of one segment are merged into one attachment.
                let attachment = match attachments[n].last_mut() {
                    Some(last) if last.segment == s => last,
                    _ => {
                        attachments[n].push(Attachment { segment: s, gateway: [None; 2] });
                        attachments[n].last_mut().expect("just pushed")
                    }
                };
                for addr in &nodes[n].ifaces[i].addrs {
                    let f = family(addr.addr());
                    attachment.gateway[f].get_or_insert(addr.addr());
                    let id = index_of[&addr.trunc()];
                    if seen[id as usize] != s + 1 {
                        seen[id as usize] = s + 1;
                        on[f].push(id);
                    }
                }
            }
            subnets_on.push(on);
        }
        let mut routers: Vec<Vec<(usize, [Option<IpAddr>; 2])>> = Vec::with_capacity(segments.len());
        let mut listed = vec![usize::MAX; nodes.len()];
        for (s, segment) in segments.iter().enumerate() {
            let mut on = Vec::new();
            for &(n, _) in &segment.members {
                if nodes[n].kind != NodeKind::Router || listed[n] == s {
                    continue;
                }
                listed[n] = s;
                let at = attachments[n]
                    .binary_search_by_key(&s, |a| a.segment)
                    .expect("the node is on the segment");
                on.push((n, attachments[n][at].gateway));
            }
            routers.push(on);
        }
        let mut nat_outside = vec![None; nodes.len()];
        for (s, segment) in segments.iter().enumerate() {
            for &(n, i) in &segment.members {
                if nat_ifaces.get(n).copied().flatten() == Some(i) {
                    nat_outside[n] = Some(s);
                }
            }
        }
        RouteGraph { attachments, routers, subnets, index_of, subnets_on, connected, nat_outside }
    }
}

/// What automatic routing gives a node for one address family.
enum Uplink {
    /// Nothing to route.
    None,
    /// One default route, through the node's single uplink `via` on router `gateway`.
    Default { via: IpAddr, gateway: usize },
    /// A route per subnet.
    Routes(Vec<PlannedRoute>),
}

/// The state of the breadth-first searches, reused from one to the next: a mark is current
/// when it equals the search's stamp, so nothing is cleared between searches.
struct Search {
    stamp: u32,
    visited: Vec<u32>,
    /// The subnets already routed or connected in this search.
    routed: Vec<u32>,
    /// For each node reached: the gateway address of the first hop towards it, and its router.
    first_hop: Vec<(IpAddr, usize)>,
    /// The nodes whose path from the start leaves a NAT through its outside interface.
    exited: Vec<u32>,
    queue: VecDeque<usize>,
}

impl Search {
    fn new(graph: &RouteGraph) -> Search {
        let nodes = graph.attachments.len();
        Search {
            stamp: 0,
            visited: vec![0; nodes],
            routed: vec![0; graph.subnets.len()],
            first_hop: vec![(IpAddr::from([0, 0, 0, 0]), 0); nodes],
            exited: vec![0; nodes],
            queue: VecDeque::new(),
        }
    }

    /// The routes of family `f` from `start`, which already has `statics`: a breadth-first
    /// search over routers from `start`, each subnet routed via the first hop of the path that
    /// reaches it first. With `collapse`, a start whose routes would all leave through one
    /// gateway (a single uplink) gets a default route through it instead; when it has only one
    /// router neighbour, that is known at once and the search ends at the first subnet routed.
    fn routes_from(
        &mut self,
        graph: &RouteGraph,
        start: usize,
        f: usize,
        statics: &[PlannedRoute],
        collapse: bool,
    ) -> Uplink {
        self.stamp += 1;
        let stamp = self.stamp;
        for &id in &graph.connected[start][f] {
            self.routed[id as usize] = stamp;
        }
        let mut static_default = false;
        for route in statics.iter().filter(|route| family(route.to.addr()) == f) {
            static_default |= route.to.prefix_len() == 0;
            if let Some(&id) = graph.index_of.get(&route.to) {
                self.routed[id as usize] = stamp;
            }
        }
        let collapse = collapse && !static_default;
        // NATs translate IPv4 only: they shape IPv4 routes alone.
        let nat_outside = |node: usize| if f == 0 { graph.nat_outside[node] } else { None };
        self.visited[start] = stamp;
        self.queue.clear();
        self.queue.push_back(start);
        let mut routes = Vec::new();
        // The first hop of the nearest path out of a NAT: the subnets beyond it are reached by
        // a default route through it.
        let mut exit: Option<(IpAddr, usize)> = None;
        let mut single = false;
        while let Some(current) = self.queue.pop_front() {
            let outside = nat_outside(current);
            for attachment in &graph.attachments[current] {
                if attachment.gateway[f].is_none() {
                    continue;
                }
                // Leaving a NAT through its outside interface: what lies beyond is reached by
                // default route.
                let exits = self.exited[current] == stamp || outside == Some(attachment.segment);
                if current != start {
                    let (via, gateway) = self.first_hop[current];
                    for &id in &graph.subnets_on[attachment.segment][f] {
                        if self.routed[id as usize] != stamp {
                            if exits {
                                self.routed[id as usize] = stamp;
                                exit.get_or_insert((via, gateway));
                                continue;
                            }
                            if single {
                                return Uplink::Default { via, gateway };
                            }
                            self.routed[id as usize] = stamp;
                            routes.push(PlannedRoute { to: graph.subnets[id as usize], via });
                        }
                    }
                }
                for &(neighbour, gateways) in &graph.routers[attachment.segment] {
                    let Some(address) = gateways[f] else { continue };
                    if self.visited[neighbour] == stamp {
                        continue;
                    }
                    // Nothing outside a NAT routes through it to the inside: a NAT reached
                    // through its outside interface leads nowhere.
                    if nat_outside(neighbour) == Some(attachment.segment) {
                        continue;
                    }
                    self.visited[neighbour] = stamp;
                    self.first_hop[neighbour] =
                        if current == start { (address, neighbour) } else { self.first_hop[current] };
                    if exits {
                        self.exited[neighbour] = stamp;
                    }
                    self.queue.push_back(neighbour);
                }
            }
            if current == start {
                single = collapse && self.queue.len() == 1;
            }
        }
        if static_default {
            exit = None;
        }
        match (routes.first(), exit) {
            (None, None) => Uplink::None,
            (None, Some((via, gateway))) => Uplink::Default { via, gateway },
            // Every route leaves through one gateway, although the start has other router
            // neighbours (that lead nowhere new).
            (Some(&PlannedRoute { via, .. }), exit)
                if collapse
                    && routes.iter().all(|route| route.via == via)
                    && exit.is_none_or(|(exit_via, _)| exit_via == via) =>
            {
                let gateway = graph.attachments[start]
                    .iter()
                    .flat_map(|attachment| &graph.routers[attachment.segment])
                    .find(|(_, gateways)| gateways[f] == Some(via))
                    .map(|&(router, _)| router)
                    .expect("the gateway is a router on a segment of the start");
                Uplink::Default { via, gateway }
            }
            (Some(_), exit) => {
                if let Some((via, _)) = exit {
                    routes.push(PlannedRoute { to: default_prefix(f), via });
                }
                Uplink::Routes(routes)
            }
        }
    }
}

/// `0.0.0.0/0` or `::/0`.
fn default_prefix(f: usize) -> IpNet {
    if f == 0 { IpNet::V4(Ipv4Net::default()) } else { IpNet::V6(Ipv6Net::default()) }
}

/// The IPv4 gateway of the default route automatic routing would give node `start` if no
/// node were a NAT (its single uplink), for finding a NAT's outside interface.
pub(super) fn plain_default_gateway(
    nodes: &[PlannedNode],
    segments: &[Segment],
    start: usize,
) -> Option<IpAddr> {
    let graph = RouteGraph::new(nodes, segments, &[]);
    let mut search = Search::new(&graph);
    match search.routes_from(&graph, start, 0, &nodes[start].routes, true) {
        Uplink::Default { via, .. } => Some(via),
        Uplink::None | Uplink::Routes(_) => None,
    }
}

/// Adds, for every host and router and each address family, a route to every subnet it is not
/// connected to, via the first hop of a shortest path that crosses only routers; or one default
/// route for a node with a single uplink, unless its uplink's single uplink is the node itself.
/// Static routes to the same prefix win. With NATs (`nat_ifaces`: per node, its NAT's outside
/// interface), no path enters a NAT through its outside interface, and the subnets a path
/// reaches after leaving a NAT through it are reached by one default route through the path's
/// first hop.
pub(super) fn add_auto_routes(nodes: &mut [PlannedNode], segments: &[Segment], nat_ifaces: &[Option<usize>]) {
    let graph = RouteGraph::new(nodes, segments, nat_ifaces);
    let mut search = Search::new(&graph);
    let mut uplinks: Vec<[Uplink; 2]> = Vec::with_capacity(nodes.len());
    for (start, node) in nodes.iter().enumerate() {
        let mut found = [Uplink::None, Uplink::None];
        if node.kind != NodeKind::Switch {
            for (f, uplink) in found.iter_mut().enumerate() {
                if !graph.connected[start][f].is_empty() {
                    *uplink = search.routes_from(&graph, start, f, &node.routes, true);
                }
            }
        }
        uplinks.push(found);
    }
    // Two routers that are each other's single uplink would bounce packets for addresses
    // outside the topology between them: they get routes per subnet.
    let mutual: Vec<(usize, usize)> = (0..nodes.len())
        .flat_map(|start| (0..2).map(move |f| (start, f)))
        .filter(|&(start, f)| match uplinks[start][f] {
            Uplink::Default { gateway, .. } => {
                matches!(uplinks[gateway][f], Uplink::Default { gateway: back, .. } if back == start)
            }
            _ => false,
        })
        .collect();
    for (start, f) in mutual {
        uplinks[start][f] = search.routes_from(&graph, start, f, &nodes[start].routes, false);
    }
    for (node, found) in nodes.iter_mut().zip(uplinks) {
        for (f, uplink) in found.into_iter().enumerate() {
            match uplink {
                Uplink::None => {}
                Uplink::Default { via, .. } => node.routes.push(PlannedRoute { to: default_prefix(f), via }),
                Uplink::Routes(routes) => node.routes.extend(routes),
            }
        }
    }
}
