//! Addresses: parsing, refusing what Linux takes but cannot use, duplicates, and the subnets
//! of each layer-2 segment.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{PlannedIface, PlannedLink, PlannedNode, family};
use crate::topology::{NodeKind, TopologyErrorKind};

/// Parses a prefix in CIDR notation (`10.0.0.1/24`, `fd00::/64`), host bits allowed; the
/// reason when it does not parse.
pub(super) fn parse_cidr(text: &str) -> Result<IpNet, String> {
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
pub(super) fn parse_host_addr(text: &str) -> Result<IpNet, String> {
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
pub(super) fn check_duplicate_addresses(nodes: &[PlannedNode]) -> Result<(), (TopologyErrorKind, usize)> {
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
    pub(super) members: Vec<(usize, usize)>,
}

pub(super) fn segments(nodes: &[PlannedNode], links: &[PlannedLink]) -> Vec<Segment> {
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
pub(super) fn check_subnets(
    nodes: &[PlannedNode],
    segments: &[Segment],
) -> Result<(), (TopologyErrorKind, usize)> {
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
