//! A picture of a topology, as SVG: the nodes by kind (hosts as boxes, routers as circles,
//! switches as double circles, with their firewalls), and the links labelled with their
//! interface names, addresses and conditions. `netns-test graph` writes it to a file, and a failure report shows it.
//!
//! The layout is `layout-rs`'s (a Sugiyama-style layered layout); this module only says what
//! to draw. It takes the topology as data and asks nothing of a running network.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::conditions::Conditions;
use crate::topology::{NodeKind, Topology};

/// The topology as an SVG document (without an XML declaration, so that it can also be put
/// inline in an HTML page). Every node's name is a text element of the picture, and so is
/// each link's label: `a:eth0 10.0.0.1/24 — b:eth0 10.0.0.2/24`, then its conditions.
pub fn svg(topology: &Topology) -> String {
    let plan = topology.plan();
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let handles: Vec<_> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let mut label = format!("{} ({})", node.name, node.kind.as_str());
            // Its firewalls as the topology gives them: one by name, several by number.
            if let Some(given) = plan.firewalls.iter().find(|given| given.node == index) {
                match given.firewalls.as_slice() {
                    [one] => label.push_str(&format!(" · {}", one.name)),
                    several => label.push_str(&format!(" · {} firewalls", several.len())),
                }
            }
            let (shape, fill) = match node.kind {
                NodeKind::Host => (ShapeKind::new_box(&label), "lightyellow"),
                NodeKind::Router => (ShapeKind::new_circle(&label), "lightblue"),
                NodeKind::Switch => (ShapeKind::new_double_circle(&label), "lightgreen"),
            };
            let look = StyleAttr::new(Color::fast("black"), 2, Some(Color::fast(fill)), 4, 14);
            let width = (label.chars().count() as f64 * 9.0 + 30.0).max(80.0);
            let size = match node.kind {
                NodeKind::Host => Point::new(width, 44.0),
                NodeKind::Router | NodeKind::Switch => Point::new(width, width),
            };
            graph.add_node(Element::create(shape, look, Orientation::LeftToRight, size))
        })
        .collect();
    for link in &plan.links {
        let end = |(node, iface): (usize, usize)| {
            let node = &plan.nodes[node];
            let iface = &node.ifaces[iface];
            let addrs: Vec<String> = iface.addrs.iter().map(ToString::to_string).collect();
            let mut text = format!("{}:{}", node.name, iface.name);
            if !addrs.is_empty() {
                text.push(' ');
                text.push_str(&addrs.join(","));
            }
            text
        };
        let mut label = format!("{} — {}", end(link.ends[0]), end(link.ends[1]));
        if let Some(conditions) = conditions_label(&link.conditions[0], &link.conditions[1]) {
            label.push_str(" · ");
            label.push_str(&conditions);
        }
        if link.capture {
            label.push_str(" · captured");
        }
        let look = StyleAttr::new(Color::fast("black"), 2, None, 0, 12);
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::None,
            LineStyleKind::Normal,
            &label,
            &look,
            &None,
            &None,
        );
        graph.add_edge(arrow, handles[link.ends[0].0], handles[link.ends[1].0]);
    }
    let mut writer = SVGWriter::new();
    if !handles.is_empty() {
        graph.do_it(false, false, false, &mut writer);
    }
    let text = writer.finalize();
    // The declaration would be out of place inside an HTML page.
    match text.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(text.clone(), |(_, body)| body.trim_start().to_string()),
        None => text,
    }
}

/// The words of a link's conditions: one text when both directions agree, else each
/// direction's; `None` for a link without any.
fn conditions_label(a_to_b: &Conditions, b_to_a: &Conditions) -> Option<String> {
    let none = Conditions::default();
    match (*a_to_b == none, *b_to_a == none) {
        (true, true) => None,
        _ if a_to_b == b_to_a => Some(a_to_b.to_string()),
        _ => Some(format!("→ {} · ← {}", words(a_to_b), words(b_to_a))),
    }
}

fn words(conditions: &Conditions) -> String {
    if *conditions == Conditions::default() { "none".to_string() } else { conditions.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Link;
    use std::time::Duration;

    #[test]
    fn every_node_and_link_is_drawn() {
        let topology = Topology::builder()
            .host("client")
            .router("gw")
            .switch("sw")
            .host("server")
            .link(Link::new("client", "gw").addrs("10.0.1.2/24", "10.0.1.1/24"))
            .link(
                Link::new("gw", "sw")
                    .addr("gw", "10.0.2.1/24")
                    .conditions(Conditions::new().delay(Duration::from_millis(20))),
            )
            .link(Link::new("sw", "server").addr("server", "10.0.2.2/24"))
            .build()
            .unwrap();
        let svg = svg(&topology);
        assert!(svg.starts_with("<svg"), "{svg}");
        for name in ["client (host)", "gw (router)", "sw (switch)", "server (host)", "delay 20ms"] {
            assert!(svg.contains(name), "{name} missing from {svg}");
        }
        assert!(svg.contains("client:"), "{svg}");
    }

    #[test]
    fn firewalls_are_named_on_their_nodes() {
        use crate::topology::Firewall;
        let topology = Topology::builder()
            .host("client")
            .host("server")
            .link(Link::new("client", "server").addrs("10.0.0.1/24", "10.0.0.2/24"))
            .firewall("client", Firewall::block_inbound())
            .firewall("server", Firewall::udp_blocked())
            .firewall("server", Firewall::pmtu_blackhole())
            .build()
            .unwrap();
        let svg = svg(&topology);
        assert!(svg.contains("client (host) · block-inbound"), "{svg}");
        assert!(svg.contains("server (host) · 2 firewalls"), "{svg}");
    }

    #[test]
    fn the_pair_is_drawn() {
        let svg = svg(&Topology::pair());
        assert!(svg.contains("1.1.1.2/24") && svg.contains("1.1.1.1/24"), "{svg}");
    }
}
