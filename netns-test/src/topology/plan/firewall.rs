//! Firewalls checked once and resolved for the kernel: each rule's addresses parsed, its
//! ports checked, its outside interface found, and its direction turned into the netfilter
//! hooks (input, forward, output) and interface matches it needs. Kernel-neutral data; the
//! network layer encodes it for nftables.

use std::collections::HashMap;
use std::ops::Bound;

use ipnet::IpNet;

use super::{PlannedNode, err, parse_cidr};
use crate::error::name_list;
use crate::topology::firewall::{Action, IcmpMatch, Protocol, Scope, ports_text};
use crate::topology::{Firewall, FirewallRule, NodeKind, TopologyError, TopologyErrorKind};

/// The firewalls of one node, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeFirewalls {
    /// The plan's index of the node.
    pub(crate) node: usize,
    pub(crate) firewalls: Vec<PlannedFirewall>,
}

/// One firewall: its name, and its rules for each hook ([`HOOKS`] order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedFirewall {
    pub(crate) name: String,
    pub(crate) chains: [Vec<PlannedRule>; 3],
}

/// The hooks a firewall's rules go to, in the order of [`PlannedFirewall::chains`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterHook {
    Input,
    Forward,
    Output,
}

pub(crate) const HOOKS: [FilterHook; 3] = [FilterHook::Input, FilterHook::Forward, FilterHook::Output];

impl FilterHook {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FilterHook::Input => "input",
            FilterHook::Forward => "forward",
            FilterHook::Output => "output",
        }
    }
}

/// One rule for one hook, every match resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedRule {
    pub(crate) iif: Option<String>,
    pub(crate) oif: Option<String>,
    pub(crate) from: Option<IpNet>,
    pub(crate) to: Option<IpNet>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) dport: Option<(u16, u16)>,
    pub(crate) sport: Option<(u16, u16)>,
    pub(crate) established: bool,
    pub(crate) icmp: Option<IcmpMatch>,
    pub(crate) action: Action,
    /// `<firewall>.<rule> <name>: <rule in words>`, the rule's comment in the kernel, by which
    /// the failure report finds its counter.
    pub(crate) comment: String,
}

/// What checking a node's firewalls needs to know of the node: at planning, from its plan;
/// at runtime, kept by the [`Node`](crate::Node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeFacts {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) ifaces: Vec<String>,
    /// The interfaces its default routes leave through (IPv4 and IPv6, without repeats).
    pub(crate) default_ifaces: Vec<String>,
}

impl NodeFacts {
    pub(crate) fn of(index: usize, node: &PlannedNode) -> NodeFacts {
        let mut default_ifaces: Vec<String> = Vec::new();
        for route in node.routes.iter().filter(|route| route.to.prefix_len() == 0) {
            let through =
                node.ifaces.iter().find(|iface| iface.addrs.iter().any(|a| a.trunc().contains(&route.via)));
            if let Some(iface) = through {
                if !default_ifaces.contains(&iface.name) {
                    default_ifaces.push(iface.name.clone());
                }
            }
        }
        NodeFacts {
            index,
            name: node.name.clone(),
            kind: node.kind,
            ifaces: node.ifaces.iter().map(|iface| iface.name.clone()).collect(),
            default_ifaces,
        }
    }
}

/// The longest comment a rule gets (the kernel takes 127 bytes).
const COMMENT_MAX: usize = 120;

/// Checks `firewalls` for the node `facts` describes and resolves them.
///
/// # Errors
/// The first invalid item: a switch, an outside interface that the node does not have or
/// that cannot be found, an address range that does not parse, a port range that is empty,
/// inverted or without a protocol that has ports, a rule mixing IPv4 and IPv6.
pub(crate) fn plan_firewalls(
    facts: &NodeFacts,
    firewalls: &[Firewall],
) -> Result<NodeFirewalls, TopologyError> {
    let mut planned = Vec::with_capacity(firewalls.len());
    for (number, firewall) in firewalls.iter().enumerate() {
        let at = firewall.location.as_ref();
        if facts.kind == NodeKind::Switch {
            return Err(err(TopologyErrorKind::FirewallOnSwitch { switch: facts.name.clone() }, at));
        }
        let outside = outside(facts, firewall).map_err(|reason| {
            let kind = TopologyErrorKind::FirewallOutside {
                node: facts.name.clone(),
                firewall: firewall.name.clone(),
                reason,
            };
            err(kind, at)
        })?;
        let mut chains: [Vec<PlannedRule>; 3] = Default::default();
        for (index, rule) in firewall.rules.iter().enumerate() {
            let context =
                || format!("rule `{rule}` of the {} firewall of node `{}`", firewall.name, facts.name);
            let base = resolve(rule, &context).map_err(|kind| err(kind, at))?;
            let mut comment = format!("{}.{} {}: {rule}", number + 1, index + 1, firewall.name);
            if comment.len() > COMMENT_MAX {
                let mut end = COMMENT_MAX;
                while !comment.is_char_boundary(end) {
                    end -= 1;
                }
                comment.truncate(end);
            }
            let base = PlannedRule { comment, ..base };
            let router = facts.kind == NodeKind::Router;
            let o = outside.clone();
            let inbound = [(FilterHook::Input, o.clone(), None), (FilterHook::Forward, o.clone(), None)];
            let outbound = [(FilterHook::Output, None, o.clone()), (FilterHook::Forward, None, o.clone())];
            let sent = [(FilterHook::Forward, None, o.clone()), (FilterHook::Output, None, o.clone())];
            let places: Vec<(FilterHook, Option<String>, Option<String>)> = match rule.scope {
                Scope::Inbound => inbound.to_vec(),
                Scope::Outbound => outbound.to_vec(),
                Scope::Sent => sent.to_vec(),
                Scope::Both => inbound.into_iter().chain(outbound).collect(),
            };
            for (hook, iif, oif) in places {
                // A host forwards nothing.
                if hook == FilterHook::Forward && !router {
                    continue;
                }
                let slot = HOOKS.iter().position(|h| *h == hook).expect("a hook");
                // A rule in both directions without an outside interface is the same rule twice
                // in forward.
                let rule = PlannedRule { iif, oif, ..base.clone() };
                if !chains[slot].contains(&rule) {
                    chains[slot].push(rule);
                }
            }
        }
        planned.push(PlannedFirewall { name: firewall.name.clone(), chains });
    }
    Ok(NodeFirewalls { node: facts.index, firewalls: planned })
}

/// Checks and resolves the firewalls of a model, once its routes are planned (a router's
/// outside interface follows its default route): one entry per node that has any, in node
/// order.
pub(super) fn plan_all(
    given: &[(String, Firewall)],
    by_name: &HashMap<&str, usize>,
    nodes: &[PlannedNode],
) -> Result<Vec<NodeFirewalls>, TopologyError> {
    let mut per_node: Vec<Vec<Firewall>> = vec![Vec::new(); nodes.len()];
    for (node, firewall) in given {
        let index = *by_name.get(node.as_str()).ok_or_else(|| {
            let context = format!("the {} firewall", firewall.name);
            err(TopologyErrorKind::UnknownNode { name: node.clone(), context }, firewall.location.as_ref())
        })?;
        per_node[index].push(firewall.clone());
    }
    let mut planned = Vec::new();
    for (index, firewalls) in per_node.iter().enumerate().filter(|(_, f)| !f.is_empty()) {
        planned.push(plan_firewalls(&NodeFacts::of(index, &nodes[index]), firewalls)?);
    }
    Ok(planned)
}

/// The interface a firewall's inbound and outbound rules filter, `None` for all of them.
fn outside(facts: &NodeFacts, firewall: &Firewall) -> Result<Option<String>, String> {
    let ifaces = || name_list(facts.ifaces.iter().map(String::as_str));
    if let Some(name) = &firewall.outside {
        if !facts.ifaces.contains(name) {
            return Err(format!(
                "its outside interface `{name}` is not one of the node's; it has {}",
                ifaces()
            ));
        }
        return Ok(Some(name.clone()));
    }
    if facts.kind != NodeKind::Router || !firewall.is_directional() {
        return Ok(None);
    }
    match facts.default_ifaces.as_slice() {
        [one] => Ok(Some(one.clone())),
        [] => Err(format!(
            "router `{}` has no default route to find its outside interface by; name it with \
             `.outside(...)` (`outside = ...` in a file): its interfaces are {}",
            facts.name,
            ifaces()
        )),
        several => Err(format!(
            "the default routes of router `{}` leave through {}, so its outside interface is ambiguous; \
             name it with `.outside(...)` (`outside = ...` in a file)",
            facts.name,
            name_list(several.iter().map(String::as_str))
        )),
    }
}

/// A rule's matches checked and parsed (without its hook and interfaces yet).
fn resolve(rule: &FirewallRule, context: &dyn Fn() -> String) -> Result<PlannedRule, TopologyErrorKind> {
    let invalid =
        |reason: &str| TopologyErrorKind::InvalidFirewallRule { rule: context(), reason: reason.into() };
    let address =
        |text: &Option<String>| -> Result<Option<IpNet>, TopologyErrorKind> {
            text.as_ref()
                .map(|text| {
                    parse_cidr(text).map(|net| net.trunc()).map_err(|reason| {
                        TopologyErrorKind::InvalidAddress { value: text.clone(), context: context(), reason }
                    })
                })
                .transpose()
        };
    let (from, to) = (address(&rule.from)?, address(&rule.to)?);
    if let (Some(from), Some(to)) = (from, to) {
        if from.addr().is_ipv4() != to.addr().is_ipv4() {
            return Err(invalid("its source and destination ranges are of different address families"));
        }
    }
    let ports = |ports: &Option<(Bound<u16>, Bound<u16>)>| -> Result<Option<(u16, u16)>, TopologyErrorKind> {
        let Some((start, end)) = ports else { return Ok(None) };
        if !matches!(rule.protocol, Some(Protocol::Tcp | Protocol::Udp)) {
            return Err(invalid("ports need a protocol that has them: add `.tcp()` or `.udp()`"));
        }
        let first = match *start {
            Bound::Included(port) => u32::from(port),
            Bound::Excluded(port) => u32::from(port) + 1,
            Bound::Unbounded => 0,
        };
        let (last, empty) = match *end {
            Bound::Included(port) => (i64::from(port), false),
            Bound::Excluded(port) => (i64::from(port) - 1, i64::from(port) <= i64::from(first)),
            Bound::Unbounded => (65535, false),
        };
        let range = |reason: &str| TopologyErrorKind::InvalidPortRange {
            rule: context(),
            range: ports_text(&(*start, *end)),
            reason: reason.into(),
        };
        if empty || first > 65535 {
            return Err(range("it is empty"));
        }
        if last < i64::from(first) {
            return Err(range("it is inverted: the first port is above the last"));
        }
        Ok(Some((first as u16, last as u16)))
    };
    let (dport, sport) = (ports(&rule.dport)?, ports(&rule.sport)?);
    Ok(PlannedRule {
        iif: None,
        oif: None,
        from,
        to,
        protocol: rule.protocol,
        dport,
        sport,
        established: rule.established,
        icmp: rule.icmp,
        action: rule.action,
        comment: String::new(),
    })
}
