use std::collections::VecDeque;

use super::*;
use crate::conditions::Conditions;
use crate::topology::Topology;

#[test]
fn pair_plan() {
    let topology = Topology::pair();
    let plan = topology.plan();
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
    let plan = topology.plan();
    let routes = |name: &str| -> Vec<String> {
        let node = plan.nodes.iter().find(|n| n.name == name).unwrap();
        node.routes.iter().map(|r| format!("{} via {}", r.to, r.via)).collect()
    };
    // The hosts have a single uplink each: one default route.
    assert_eq!(routes("a"), ["0.0.0.0/0 via 10.0.1.1"]);
    assert_eq!(routes("b"), ["0.0.0.0/0 via 10.0.3.1"]);
    // Each router's single uplink is the other: routes per subnet, so that packets to
    // addresses outside the topology are not bounced between them.
    assert_eq!(routes("r1"), ["10.0.3.0/24 via 10.0.2.2"]);
    assert_eq!(routes("r2"), ["10.0.1.0/24 via 10.0.2.1"]);
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
    let plan = topology.plan();
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
    let plan = topology.plan();
    assert_eq!(plan.local, 1, "the first non-switch node is local");
    let sw = &plan.nodes[0];
    assert_eq!(sw.bridge.as_ref().map(|bridge| (bridge.name.as_str(), bridge.index)), Some(("br0", 2)));
    assert_eq!(sw.ifaces.iter().map(|i| i.index).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(plan.nodes[1].ifaces[0].index, 5);
}

/// The automatic routes as the first version computed them, pair by pair and list by list,
/// followed by the single-uplink rule: the reference the fast version must agree with.
fn reference_auto_routes(nodes: &mut [PlannedNode], segments: &[Segment]) {
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
    let owner = |nodes: &[PlannedNode], addr: IpAddr| {
        nodes.iter().position(|n| n.ifaces.iter().any(|i| i.addrs.iter().any(|a| a.addr() == addr))).unwrap()
    };
    // Per node and family: the routes per subnet.
    let mut found: Vec<[Vec<PlannedRoute>; 2]> = vec![Default::default(); nodes.len()];
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
                        reached_segments.push((segment, first_hop[current].unwrap()));
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
                            Some(if current == start { gateway } else { first_hop[current].unwrap() });
                        queue.push_back(neighbour);
                    }
                }
            }
            let routes = &mut found[start][usize::from(!v4)];
            for (segment, via) in reached_segments {
                for &(member, iface) in &segments[segment].members {
                    for addr in &nodes[member].ifaces[iface].addrs {
                        let subnet = addr.trunc();
                        if subnet.addr().is_ipv4() != v4 || connected.contains(&subnet) {
                            continue;
                        }
                        let exists = nodes[start].routes.iter().any(|r| r.to == subnet)
                            || routes.iter().any(|r| r.to == subnet);
                        if !exists {
                            routes.push(PlannedRoute { to: subnet, via });
                        }
                    }
                }
            }
        }
    }
    // The single-uplink rule.
    let single = |nodes: &[PlannedNode], found: &[[Vec<PlannedRoute>; 2]], node: usize, f: usize| {
        let routes = &found[node][f];
        let static_default =
            nodes[node].routes.iter().any(|r| r.to.prefix_len() == 0 && family(r.to.addr()) == f);
        match routes.first() {
            Some(first) if !static_default && routes.iter().all(|r| r.via == first.via) => Some(first.via),
            _ => None,
        }
    };
    let mut additions: Vec<Vec<PlannedRoute>> = vec![Vec::new(); nodes.len()];
    for node in 0..nodes.len() {
        for f in 0..2 {
            match single(nodes, &found, node, f) {
                Some(via)
                    if single(nodes, &found, owner(nodes, via), f)
                        .is_none_or(|back| owner(nodes, back) != node) =>
                {
                    let to = if f == 0 { "0.0.0.0/0" } else { "::/0" };
                    additions[node].push(PlannedRoute { to: to.parse().unwrap(), via });
                }
                _ => additions[node].extend(found[node][f].iter().cloned()),
            }
        }
    }
    for (node, routes) in nodes.iter_mut().zip(additions) {
        node.routes.extend(routes);
    }
}

/// A small deterministic generator, so that a failure replays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// A random valid topology: hosts, routers and switches, point-to-point links and switch
/// ports, IPv4 everywhere and IPv6 on some links, a few static routes.
fn random_topology(seed: u64) -> crate::topology::TopologyBuilder {
    let mut rng = Lcg(seed);
    let count = 2 + rng.below(12);
    let mut builder = Topology::builder();
    let mut kinds = Vec::new();
    for n in 0..count {
        let kind = [NodeKind::Host, NodeKind::Router, NodeKind::Router, NodeKind::Switch][rng.below(4)];
        let name = format!("n{n}");
        builder = match kind {
            NodeKind::Host => builder.host(&name),
            NodeKind::Router => builder.router(&name),
            NodeKind::Switch => builder.switch(&name),
        };
        kinds.push(kind);
    }
    if kinds.iter().all(|k| *k == NodeKind::Switch) {
        builder = builder.host("extra");
        kinds.push(NodeKind::Host);
    }
    let mut next_port = vec![1usize; kinds.len()];
    for link in 0..rng.below(3 * kinds.len()) {
        let (a, b) = (rng.below(kinds.len()), rng.below(kinds.len()));
        if a == b || (kinds[a] == NodeKind::Switch && kinds[b] == NodeKind::Switch) {
            continue;
        }
        let name = |i: usize| if i < count { format!("n{i}") } else { "extra".to_string() };
        let v6 = rng.below(3) == 0;
        let mut spec = Link::new(name(a), name(b));
        for (end, other) in [(a, b), (b, a)] {
            if kinds[end] == NodeKind::Switch {
                continue;
            }
            if kinds[other] == NodeKind::Switch {
                // Each switch has its own subnet; ports are numbered within it.
                let port = next_port[other];
                next_port[other] += 1;
                spec =
                    spec.addr(&name(end), format!("10.{}.{}.{}/16", 100 + other, port / 200, port % 200 + 1));
                if v6 {
                    spec = spec.addr(&name(end), format!("fd00:{other}::{port:x}/64"));
                }
            } else {
                let host = if end == a { 1 } else { 2 };
                spec = spec.addr(&name(end), format!("10.0.{link}.{host}/24"));
                if v6 {
                    spec = spec.addr(&name(end), format!("fd01:{link}::{host}/64"));
                }
            }
        }
        builder = builder.link(spec);
    }
    builder
}

#[test]
fn auto_routes_agree_with_the_reference_on_random_topologies() {
    let mut compared = 0;
    for seed in 0..3000 {
        let Ok(without) = random_topology(seed).build() else { continue };
        let with = random_topology(seed).auto_routes().build().unwrap();
        let mut nodes = without.plan().nodes.clone();
        let segments = segments(&nodes, &without.plan().links);
        reference_auto_routes(&mut nodes, &segments);
        for (fast, slow) in with.plan().nodes.iter().zip(&nodes) {
            assert_eq!(fast.routes, slow.routes, "seed {seed}, node `{}`", fast.name);
        }
        compared += 1;
    }
    assert!(compared > 2000, "only {compared} random topologies were valid");
}

/// A star: a hub router, edge routers around it, a host behind each.
fn star(edges: usize) -> crate::topology::TopologyBuilder {
    let mut builder = Topology::builder().router("hub");
    for e in 0..edges {
        let (edge, host) = (format!("e{e}"), format!("h{e}"));
        builder = builder
            .router(&edge)
            .host(&host)
            .link(Link::new("hub", &edge).addrs(format!("10.1.{e}.1/24"), format!("10.1.{e}.2/24")))
            .link(Link::new(&edge, &host).addrs(format!("10.2.{e}.1/24"), format!("10.2.{e}.2/24")));
    }
    builder.auto_routes()
}

#[test]
fn single_uplinks_get_one_default_route() {
    let topology = star(3).build().unwrap();
    let plan = topology.plan();
    let routes = |name: &str| -> Vec<String> {
        let node = plan.nodes.iter().find(|n| n.name == name).unwrap();
        node.routes.iter().map(|r| format!("{} via {}", r.to, r.via)).collect()
    };
    assert_eq!(routes("h1"), ["0.0.0.0/0 via 10.2.1.1"]);
    assert_eq!(routes("e1"), ["0.0.0.0/0 via 10.1.1.1"]);
    assert_eq!(
        routes("hub"),
        ["10.2.0.0/24 via 10.1.0.2", "10.2.1.0/24 via 10.1.1.2", "10.2.2.0/24 via 10.1.2.2"]
    );
}

#[test]
fn a_static_default_route_keeps_routes_per_subnet() {
    let topology = star(2).route("h0", "default", "10.2.0.1").build().unwrap();
    let h0 = &topology.plan().nodes.iter().find(|n| n.name == "h0").unwrap().routes;
    let routes: Vec<String> = h0.iter().map(|r| format!("{} via {}", r.to, r.via)).collect();
    assert_eq!(routes[0], "0.0.0.0/0 via 10.2.0.1", "the static route comes first");
    assert_eq!(routes.len(), 1 + 3, "and then one per subnet not connected: {routes:?}");
}

#[test]
fn default_interface_names_skip_the_taken_ones() {
    let topology = Topology::builder()
        .host("a")
        .host("b")
        .link(Link::new("a", "b").ifnames("eth1", "x"))
        .link(Link::new("a", "b"))
        .link(Link::new("a", "b"))
        .build()
        .unwrap();
    let names: Vec<&str> = topology.plan().nodes[0].ifaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth1", "eth0", "eth2"]);
    let names: Vec<&str> = topology.plan().nodes[1].ifaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["x", "eth0", "eth1"]);
}

#[test]
fn ports_of_big_switches_get_their_own_queue() {
    let switch = |ports: usize| {
        let mut builder = Topology::builder().switch("sw");
        for i in 0..ports {
            let link = Link::new(format!("h{i}"), "sw");
            let link = if i == 0 { link.conditions(crate::conditions::Conditions::new()) } else { link };
            builder = builder.host(format!("h{i}")).link(link);
        }
        builder.build().unwrap()
    };
    // The README and the rustdoc of `TopologyBuilder::switch` say 128.
    assert_eq!(OWN_QUEUE_ABOVE_PORTS, 128);
    assert!(switch(128).plan().links.iter().all(|link| !link.own_queue));
    let big = switch(129);
    assert!(!big.plan().links[0].own_queue, "a link with conditions is left as it is");
    assert!(big.plan().links[1..].iter().all(|link| link.own_queue));
}

#[test]
fn invalid_conditions_are_a_topology_error_carrying_the_condition_error() {
    let link = Link::new("a", "b").conditions_from("b", Conditions::new().loss(2.0));
    let error = Topology::builder().host("a").host("b").link(link).build().unwrap_err();
    let TopologyErrorKind::InvalidCondition { link, source } = &error.kind else {
        panic!("{error:?}");
    };
    assert_eq!((link.as_str(), source.field), ("link 1 (`a` – `b`) from `b`", "loss"));
    assert_eq!(
        error.to_string(),
        "link 1 (`a` – `b`) from `b`: invalid condition loss = 2: must be a probability from 0 to 1 \
         (0.05 is 5 %)"
    );
    let stray = Link::new("a", "b").conditions_from("c", Conditions::new());
    let error = Topology::builder().host("a").host("b").link(stray).build().unwrap_err();
    assert_eq!(
        error.kind,
        TopologyErrorKind::ConditionsForOtherNode { link: "link 1 (`a` – `b`)".into(), node: "c".into() }
    );
}

#[test]
fn the_plan_carries_macs_middle_ends_and_capture_names() {
    let topology = Topology::builder()
        .host("a")
        .switch("sw")
        .host("b")
        .link(Link::new("a", "sw").addr("a", "10.0.0.1/24"))
        .link(Link::new("b", "sw").addr("b", "10.0.0.2/24").conditions(Conditions::new()))
        .build()
        .unwrap();
    let plan = topology.plan();
    let a = &plan.nodes[0].ifaces[0];
    assert_eq!((a.index, a.mac), (2, [0x02, 0x6e, 0x74, 0, 0, 2]));
    let bridge = plan.nodes[1].bridge.as_ref().unwrap();
    assert_eq!((bridge.name.as_str(), bridge.index, bridge.mac), ("br0", 3, [0x02, 0x6e, 0x74, 0, 0, 3]));
    assert!(plan.links[0].middle.is_none());
    let middle = plan.links[1].middle.as_ref().unwrap();
    let names: Vec<(&str, u32)> =
        middle.ends.iter().chain([&middle.bridge]).map(|d| (d.name.as_str(), d.index)).collect();
    assert_eq!(names, [("m1a", 7), ("m1b", 8), ("m1br", 9)], "after every node interface");
    assert_eq!(middle.ends[1].mac, [0x02, 0x6e, 0x74, 0, 0, 8]);
    assert_eq!(middle.capture_file, "link2-b-sw.pcap");
}

#[test]
fn neighbours_across_a_link_come_from_both_sides_through_switches() {
    // a – sw – {b, c}: across a–sw, a may wait for b and c, and b and c for a.
    let topology = Topology::builder()
        .host("a")
        .switch("sw")
        .host("b")
        .host("c")
        .link(Link::new("a", "sw").addr("a", "10.0.0.1/24"))
        .link(Link::new("b", "sw").addr("b", "10.0.0.2/24"))
        .link(Link::new("c", "sw").addr("c", "10.0.0.3/24"))
        .build()
        .unwrap();
    let plan = topology.plan();
    let mut entries: Vec<(usize, String)> =
        plan.neighbours_across(0).iter().map(|n| (n.node, n.addr.to_string())).collect();
    entries.sort();
    assert_eq!(
        entries,
        [(0, "10.0.0.2".into()), (0, "10.0.0.3".into()), (2, "10.0.0.1".into()), (3, "10.0.0.1".into())]
    );
    let b_iface = &plan.nodes[2].ifaces[0];
    let entry =
        plan.neighbours_across(0).into_iter().find(|n| n.node == 0 && n.addr.to_string() == "10.0.0.2");
    assert_eq!(entry.map(|n| n.mac), Some(b_iface.mac));
}

#[test]
fn routes_through_an_interface_are_those_via_its_subnets() {
    let topology = Topology::builder()
        .host("a")
        .router("r1")
        .router("r2")
        .link(Link::new("a", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("a", "r2").addrs("10.0.2.2/24", "10.0.2.1/24"))
        .route("a", "10.9.0.0/16", "10.0.2.1")
        .build()
        .unwrap();
    let plan = topology.plan();
    assert!(plan.routes_through(0, 0).is_empty());
    let through: Vec<String> =
        plan.routes_through(0, 1).iter().map(|r| format!("{} via {}", r.to, r.via)).collect();
    assert_eq!(through, ["10.9.0.0/16 via 10.0.2.1"]);
}
