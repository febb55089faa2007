//! MAC addresses and neighbour entries: the permanent entries of `static_arp`, and the entries
//! a node may be left resolving across a link that was cut or down.

use std::net::{IpAddr, Ipv6Addr};

use super::{Plan, PlannedNode, Segment};
use crate::topology::NodeKind;

/// The MAC address of the interface (or bridge) with interface index `index`: locally
/// administered, fixed by the topology, so captures and neighbour tables read the same on
/// every run. Tests in parallel reuse them, each in its own namespaces.
pub(crate) fn mac_for(index: u32) -> [u8; 6] {
    let [_, a, b, c] = index.to_be_bytes();
    [0x02, 0x6e, 0x74, a, b, c]
}

/// A neighbour entry of node `node` (a plan index): on its interface `ifindex`, address
/// `addr` is at `mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Neighbour {
    pub(crate) node: usize,
    pub(crate) ifindex: u32,
    pub(crate) addr: IpAddr,
    pub(crate) mac: [u8; 6],
}

/// For every interface, a permanent neighbour entry for every address of the other
/// interfaces on its segment.
pub(super) fn static_neighbours(nodes: &[PlannedNode], segments: &[Segment]) -> Vec<Neighbour> {
    let mut entries = Vec::new();
    for segment in segments {
        for &(node, iface) in &segment.members {
            let ifindex = nodes[node].ifaces[iface].index;
            for &(other_node, other_iface) in &segment.members {
                if (other_node, other_iface) == (node, iface) {
                    continue;
                }
                let other = &nodes[other_node].ifaces[other_iface];
                for addr in &other.addrs {
                    entries.push(Neighbour { node, ifindex, addr: addr.addr(), mac: other.mac });
                }
            }
        }
    }
    entries
}

impl Plan {
    /// The neighbour entries that hosts and routers on either side of link `link` may hold
    /// for the addresses on the other side: each end, or, for an end on a switch, every host
    /// and router interface reachable through switches from it without crossing the link.
    pub(crate) fn neighbours_across(&self, link: usize) -> Vec<Neighbour> {
        let sides = self.link_sides(link);
        let mut entries = Vec::new();
        for (here, there) in [(&sides[0], &sides[1]), (&sides[1], &sides[0])] {
            let across: Vec<(IpAddr, [u8; 6])> =
                there.iter().flat_map(|&(node, iface)| self.answers_for(node, iface)).collect();
            for &(node, iface) in here {
                let ifindex = self.nodes[node].ifaces[iface].index;
                entries.extend(across.iter().map(|&(addr, mac)| Neighbour { node, ifindex, addr, mac }));
            }
        }
        entries
    }

    /// The `(node, interface)` of hosts and routers on either side of link `link`.
    fn link_sides(&self, link: usize) -> [Vec<(usize, usize)>; 2] {
        let side = |start: (usize, usize)| {
            let mut members = Vec::new();
            let mut switches = Vec::new();
            let mut pending = vec![(start, link)];
            while let Some(((node, iface), through)) = pending.pop() {
                if self.nodes[node].kind != NodeKind::Switch {
                    members.push((node, iface));
                    continue;
                }
                if switches.contains(&node) {
                    continue;
                }
                switches.push(node);
                for port in &self.nodes[node].ifaces {
                    if port.link == through || port.link == link {
                        continue;
                    }
                    let ends = self.links[port.link].ends;
                    let far = if ends[0].0 == node { ends[1] } else { ends[0] };
                    pending.push((far, port.link));
                }
            }
            members
        };
        let ends = self.links[link].ends;
        [side(ends[0]), side(ends[1])]
    }

    /// The addresses interface `iface` of `node` answers for, with its MAC: the topology's, and
    /// the IPv6 link-local address the kernel derives from the MAC (EUI-64) where the topology
    /// has IPv6.
    fn answers_for(&self, node: usize, iface: usize) -> Vec<(IpAddr, [u8; 6])> {
        let spec = &self.nodes[node].ifaces[iface];
        let mac = spec.mac;
        let mut addrs: Vec<(IpAddr, [u8; 6])> = spec.addrs.iter().map(|addr| (addr.addr(), mac)).collect();
        if self.ipv6 {
            let [a, b, c, d, e, f] = mac;
            let link_local =
                Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]);
            addrs.push((IpAddr::V6(link_local), mac));
        }
        addrs
    }
}
