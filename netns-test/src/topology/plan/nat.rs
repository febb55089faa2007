//! NATs: each on a router, with its outside interface resolved (given, else the interface of
//! the router's default route, static or automatic), its outside address, and its outside
//! link marked as carried by the link engine, where the translator runs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::addrs::Segment;
use super::routes::plain_default_gateway;
use super::{Middle, PlannedLink, PlannedNode, err};
use crate::topology::{Model, Nat, NodeKind, TopologyError, TopologyErrorKind};

/// A NAT resolved for bring-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedNat {
    /// The router's node index.
    pub(crate) router: usize,
    /// The router's outside interface (an index into its interfaces).
    pub(crate) iface: usize,
    /// The plan index of the outside link.
    pub(crate) link: usize,
    /// The router's end of that link (0: a, 1: b).
    pub(crate) slot: usize,
    /// The router's first IPv4 address on the outside interface: the translated source.
    pub(crate) outside: Ipv4Addr,
    /// The behaviour, validated.
    pub(crate) nat: Nat,
    /// The MAC address of the outside link's other end, for the neighbour entry that sends
    /// inside packets to the outside address out of the outside interface (hairpinning).
    pub(crate) peer_mac: [u8; 6],
}

/// Resolves every NAT of `model`, marking each outside link carried. Runs after static
/// routes are planned (a static default route names the outside interface) and before
/// indexes are assigned (the outside link's middle devices get theirs with the others).
pub(super) fn resolve(
    model: &Model,
    by_name: &HashMap<&str, usize>,
    nodes: &[PlannedNode],
    links: &mut [PlannedLink],
    segments: &[Segment],
) -> Result<Vec<PlannedNat>, TopologyError> {
    let mut nats: Vec<PlannedNat> = Vec::with_capacity(model.nats.len());
    for spec in &model.nats {
        let at = spec.location.as_ref();
        let router = *by_name.get(spec.router.as_str()).ok_or_else(|| {
            err(TopologyErrorKind::UnknownNode { name: spec.router.clone(), context: "a NAT".into() }, at)
        })?;
        let node = &nodes[router];
        if node.kind != NodeKind::Router {
            let kind = TopologyErrorKind::NatOnNonRouter {
                node: node.name.clone(),
                kind: node.kind.as_str().to_string(),
            };
            return Err(err(kind, at));
        }
        if nats.iter().any(|other| other.router == router) {
            return Err(err(TopologyErrorKind::DuplicateNat { router: node.name.clone() }, at));
        }
        let invalid =
            |reason: String| err(TopologyErrorKind::InvalidNat { router: node.name.clone(), reason }, at);
        let (first, last) = spec.nat.ports;
        if first == 0 || first > last {
            let why = if first > last { "inverted (empty)" } else { "holds port 0" };
            return Err(invalid(format!("the port range {first}-{last} is {why}")));
        }
        if spec.nat.udp_timeout.is_zero() {
            return Err(invalid("the UDP timeout is zero".into()));
        }
        let interfaces = || {
            let names: Vec<String> = node.ifaces.iter().map(|iface| format!("`{}`", iface.name)).collect();
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        };
        let outside_error = |reason: String| {
            err(
                TopologyErrorKind::NatOutside { router: node.name.clone(), reason, interfaces: interfaces() },
                at,
            )
        };
        let iface = match &spec.nat.outside {
            Some(name) => node
                .ifaces
                .iter()
                .position(|iface| &iface.name == name)
                .ok_or_else(|| outside_error(format!("`{name}` is no interface of it")))?,
            None => default_iface(node, router, model.auto_routes, nodes, segments).ok_or_else(|| {
                outside_error(if model.auto_routes {
                    "is ambiguous: it has no static default route, and automatic routes give it none \
                     (it has several uplinks)"
                        .to_string()
                } else {
                    "is ambiguous: it has no default route".to_string()
                })
            })?,
        };
        let planned = &node.ifaces[iface];
        let outside = planned
            .addrs
            .iter()
            .find_map(|addr| match addr {
                IpNet::V4(v4) => Some(v4.addr()),
                IpNet::V6(_) => None,
            })
            .ok_or_else(|| outside_error(format!("`{}` has no IPv4 address", planned.name)))?;
        let link = planned.link;
        let slot = usize::from(links[link].ends[1] == (router, iface));
        links[link].middle.get_or_insert_with(Middle::default);
        nats.push(PlannedNat {
            router,
            iface,
            link,
            slot,
            outside,
            nat: spec.nat.clone(),
            // Known once indexes are assigned: see `fill_peer_macs`.
            peer_mac: [0; 6],
        });
    }
    Ok(nats)
}

/// The interface of `node`'s IPv4 default route: its static one, else (with automatic routes)
/// the one automatic routing would give it without NATs.
fn default_iface(
    node: &PlannedNode,
    index: usize,
    auto_routes: bool,
    nodes: &[PlannedNode],
    segments: &[Segment],
) -> Option<usize> {
    let static_default = node.routes.iter().find(|route| route.to.prefix_len() == 0 && route.via.is_ipv4());
    let via = match static_default {
        Some(route) => route.via,
        None if auto_routes => plain_default_gateway(nodes, segments, index)?,
        None => return None,
    };
    iface_towards(node, via)
}

/// The interface of `node` on whose subnet `via` is.
fn iface_towards(node: &PlannedNode, via: IpAddr) -> Option<usize> {
    node.ifaces.iter().position(|iface| iface.addrs.iter().any(|addr| addr.trunc().contains(&via)))
}

/// Fills in each NAT's `peer_mac`, once every interface has its MAC address.
pub(super) fn fill_peer_macs(nats: &mut [PlannedNat], nodes: &[PlannedNode], links: &[PlannedLink]) {
    for nat in nats {
        let (peer, iface) = links[nat.link].ends[1 - nat.slot];
        nat.peer_mac = nodes[peer].ifaces[iface].mac;
    }
}

/// Per node, the index of its NAT's outside interface, if it is a NAT.
pub(super) fn outside_ifaces(nats: &[PlannedNat], nodes: usize) -> Vec<Option<usize>> {
    let mut outside = vec![None; nodes];
    for nat in nats {
        outside[nat.router] = Some(nat.iface);
    }
    outside
}

#[cfg(test)]
mod tests {
    use crate::topology::{Link, Nat, Topology, TopologyBuilder};

    fn routes(builder: TopologyBuilder) -> impl Fn(&str) -> Vec<String> {
        let topology = builder.auto_routes().build().unwrap();
        move |name: &str| {
            let plan = topology.plan();
            let node = plan.nodes.iter().find(|n| n.name == name).unwrap();
            node.routes.iter().map(|r| format!("{} via {}", r.to, r.via)).collect()
        }
    }

    /// Two inside routers behind `home`, then the ISP and a server.
    fn home() -> TopologyBuilder {
        Topology::builder()
            .host("laptop")
            .router("inner")
            .router("home")
            .router("isp")
            .host("server")
            .link(Link::new("laptop", "inner").addrs("192.168.2.2/24", "192.168.2.1/24"))
            .link(Link::new("inner", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
            .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
            .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24"))
    }

    #[test]
    fn nothing_outside_routes_to_the_inside_and_the_inside_defaults_towards_the_nat() {
        let plain = routes(home());
        assert_eq!(plain("isp"), ["0.0.0.0/0 via 203.0.113.2"]);
        // Two router neighbours: automatic routes give `home` no default route of its own,
        // so the outside interface is named.
        let routes = routes(home().nat("home", Nat::port_restricted().outside("eth1")));
        assert_eq!(routes("isp"), Vec::<String>::new(), "no route into the NAT");
        assert_eq!(routes("server"), ["0.0.0.0/0 via 198.51.100.1"]);
        assert_eq!(routes("home"), ["192.168.2.0/24 via 192.168.1.2", "0.0.0.0/0 via 203.0.113.1"]);
        assert_eq!(routes("inner"), ["0.0.0.0/0 via 192.168.1.1"]);
        assert_eq!(routes("laptop"), ["0.0.0.0/0 via 192.168.2.1"]);
    }

    #[test]
    fn a_cgnat_in_front_of_a_home_nat_stacks() {
        let stacked = Topology::builder()
            .host("laptop")
            .router("home")
            .router("cgnat")
            .router("isp")
            .host("server")
            .link(Link::new("laptop", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
            .link(Link::new("home", "cgnat").addrs("100.64.0.2/24", "100.64.0.1/24"))
            .link(Link::new("cgnat", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
            .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24"))
            .nat("home", Nat::port_restricted())
            .nat("cgnat", Nat::symmetric().outside("eth1"));
        let routes = routes(stacked);
        assert_eq!(routes("isp"), Vec::<String>::new());
        assert_eq!(routes("cgnat"), ["0.0.0.0/0 via 203.0.113.1"], "nothing into the home NAT");
        assert_eq!(routes("home"), ["0.0.0.0/0 via 100.64.0.1"]);
        assert_eq!(routes("laptop"), ["0.0.0.0/0 via 192.168.1.1"]);
    }

    #[test]
    fn the_outside_interface_is_that_of_the_default_route() {
        let home = || {
            Topology::builder()
                .host("laptop")
                .router("home")
                .router("isp")
                .host("server")
                .link(Link::new("laptop", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
                .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
                .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24"))
        };
        let topology = home().nat("home", Nat::full_cone()).auto_routes().build().unwrap();
        let nat = &topology.plan().nats[0];
        let router = &topology.plan().nodes[nat.router];
        assert_eq!(router.ifaces[nat.iface].name, "eth1");
        assert_eq!(nat.outside.to_string(), "203.0.113.2");
        assert!(topology.plan().links[nat.link].middle.is_some(), "the engine carries the outside link");
        // A static default route names it too, without automatic routes.
        let topology =
            home().nat("home", Nat::full_cone()).default_route("home", "203.0.113.1").build().unwrap();
        assert_eq!(topology.plan().nats[0].iface, 1);
    }
}
