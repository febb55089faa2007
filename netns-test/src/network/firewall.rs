//! Firewalls in the kernel: a node's planned firewalls encoded as one nftables batch (the
//! `netns_test_firewall` table of the `inet` family, so IPv4 and IPv6 alike) and applied in
//! the node's namespace through the nfnetlink encoder (no `nft` binary); the same batch
//! replaces them at runtime ([`Node::set_firewall`]); their drops by rule for a failure
//! report.
//!
//! The table has a base chain per hook a firewall uses (`input`, `forward`, `output`, all
//! `policy accept`), which lets loopback through and then jumps to each firewall's chain for
//! that hook in turn (`<n>-<name>-<hook>`). In a firewall's chain, `allow` is `return` (on to
//! the next firewall), `drop` and `reject` are final: so firewalls compose as middleboxes in a
//! row.

use std::io;
use std::sync::Mutex;

use super::{Network, Node};
use crate::error::{Error, Result};
use crate::netlink::nftables::{
    self, BaseChain, Batch, ChainType, CmpOp, Expr, Family, Hook, PayloadBase, Policy, Register, Reject,
    Rule, Verdict, ct_state, proto,
};
use crate::timeline::{EventKind, Section};
use crate::topology::firewall::{Action, Protocol};
use crate::topology::{
    FilterHook, Firewall, HOOKS, NodeFacts, NodeFirewalls, Plan, PlannedFirewall, PlannedRule, plan_firewalls,
};

/// The table every firewall of a node lives in.
const TABLE: &str = "netns_test_firewall";

/// What a node keeps of its firewalls: what checking new ones needs to know of it, and the
/// names of those installed now (empty: none).
#[derive(Debug)]
pub(crate) struct FirewallState {
    facts: NodeFacts,
    installed: Mutex<Vec<String>>,
}

impl FirewallState {
    /// The state of node `index` of `plan` before bring-up: nothing installed yet.
    pub(super) fn of(plan: &Plan, index: usize) -> FirewallState {
        FirewallState { facts: NodeFacts::of(index, &plan.nodes[index]), installed: Mutex::new(Vec::new()) }
    }

    fn installed(&self) -> Vec<String> {
        self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_installed(&self, names: Vec<String>) {
        *self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = names;
    }
}

/// The hook of a base chain.
fn kernel_hook(hook: FilterHook) -> Hook {
    match hook {
        FilterHook::Input => Hook::Input,
        FilterHook::Forward => Hook::Forward,
        FilterHook::Output => Hook::Output,
    }
}

/// The batch that replaces the node's firewall table with `firewalls` (with none, removes it):
/// `add table` (so that the `delete` finds one), `delete table`, then the new table, all in
/// one transaction.
fn batch(firewalls: &[PlannedFirewall]) -> io::Result<Batch> {
    let mut batch = Batch::new();
    batch.add_table(Family::Inet, TABLE)?;
    batch.delete_table(Family::Inet, TABLE)?;
    if firewalls.is_empty() {
        return Ok(batch);
    }
    batch.add_table(Family::Inet, TABLE)?;
    let mut rules = Vec::new();
    for (slot, hook) in HOOKS.iter().enumerate() {
        let users: Vec<(usize, &PlannedFirewall)> =
            firewalls.iter().enumerate().filter(|(_, firewall)| !firewall.chains[slot].is_empty()).collect();
        if users.is_empty() {
            continue;
        }
        let base = BaseChain {
            kind: ChainType::Filter,
            hook: kernel_hook(*hook),
            priority: 0,
            policy: Some(Policy::Accept),
        };
        batch.add_chain(Family::Inet, TABLE, hook.name(), Some(&base))?;
        let base_rule = || Rule::new(Family::Inet, TABLE, hook.name());
        match hook {
            FilterHook::Input => rules.push(base_rule().iifname("lo").verdict(Verdict::Accept)),
            FilterHook::Output => rules.push(base_rule().oifname("lo").verdict(Verdict::Accept)),
            FilterHook::Forward => {}
        }
        for (number, firewall) in users {
            let chain = format!("{}-{}-{}", number + 1, firewall.name, hook.name());
            batch.add_chain(Family::Inet, TABLE, &chain, None)?;
            rules.push(base_rule().verdict(Verdict::Jump(chain.clone())));
            for rule in &firewall.chains[slot] {
                rules.extend(encode(rule, &chain));
            }
        }
    }
    for rule in &rules {
        batch.add_rule(rule)?;
    }
    Ok(batch)
}

/// The nftables rules of one planned rule (a reject of every protocol is three: a TCP RST,
/// an ICMP port unreachable for UDP, administratively prohibited for the rest), all with its
/// comment.
fn encode(planned: &PlannedRule, chain: &str) -> Vec<Rule> {
    let mut rule = Rule::new(Family::Inet, TABLE, chain);
    if let Some(iif) = &planned.iif {
        rule = rule.iifname(iif);
    }
    if let Some(oif) = &planned.oif {
        rule = rule.oifname(oif);
    }
    let mut v6 = None;
    for (net, source) in [(planned.from, true), (planned.to, false)] {
        rule = match (net, source) {
            (None, _) => rule,
            (Some(ipnet::IpNet::V4(net)), true) => rule.ip_saddr(net),
            (Some(ipnet::IpNet::V4(net)), false) => rule.ip_daddr(net),
            (Some(ipnet::IpNet::V6(net)), true) => rule.ip6_saddr(net),
            (Some(ipnet::IpNet::V6(net)), false) => rule.ip6_daddr(net),
        };
        if let Some(net) = net {
            v6 = Some(net.addr().is_ipv6());
        }
    }
    if planned.established {
        rule = rule.ct_state(ct_state::ESTABLISHED | ct_state::RELATED);
    }
    if let Some(icmp) = planned.icmp {
        let (family, protocol) =
            if icmp.v6 { (Family::Ipv6, proto::ICMPV6) } else { (Family::Ipv4, proto::ICMP) };
        rule = rule.nfproto(family).l4proto(protocol);
        let load = Expr::Payload { base: PayloadBase::Transport, offset: 0, len: 1, dreg: Register::R1 };
        let cmp = |op, value: u8| Expr::Cmp { sreg: Register::R1, op, data: vec![value] };
        let (first, last) = icmp.types;
        rule = if first == last {
            rule.expr(load).expr(cmp(CmpOp::Eq, first))
        } else {
            rule.expr(load).expr(cmp(CmpOp::Gte, first)).expr(cmp(CmpOp::Lte, last))
        };
        if let Some(code) = icmp.code {
            let load = Expr::Payload { base: PayloadBase::Transport, offset: 1, len: 1, dreg: Register::R1 };
            rule = rule.expr(load).expr(cmp(CmpOp::Eq, code));
        }
    }
    let with_ports = |rule: Rule, number: u8| {
        let mut rule = rule;
        if let Some((first, last)) = planned.sport {
            rule = rule.sport(number, first..=last);
        }
        match planned.dport {
            Some((first, last)) => rule.dport(number, first..=last),
            None if planned.sport.is_none() => rule.l4proto(number),
            None => rule,
        }
    };
    // Each variant: the rule with its protocol match, and how it rejects.
    let variants: Vec<(Rule, Reject)> = match planned.protocol {
        Some(Protocol::Tcp) => vec![(with_ports(rule, proto::TCP), Reject::TcpReset)],
        Some(Protocol::Udp) => vec![(with_ports(rule, proto::UDP), Reject::Icmpx(1))],
        Some(Protocol::Icmp) => match v6 {
            Some(false) => vec![(rule.l4proto(proto::ICMP), Reject::Icmpx(3))],
            Some(true) => vec![(rule.l4proto(proto::ICMPV6), Reject::Icmpx(3))],
            None => vec![
                (rule.clone().l4proto(proto::ICMP), Reject::Icmpx(3)),
                (rule.l4proto(proto::ICMPV6), Reject::Icmpx(3)),
            ],
        },
        None if planned.action == Action::Reject => vec![
            (rule.clone().l4proto(proto::TCP), Reject::TcpReset),
            (rule.clone().l4proto(proto::UDP), Reject::Icmpx(1)),
            (rule, Reject::Icmpx(3)),
        ],
        None => vec![(rule, Reject::Icmpx(3))],
    };
    variants
        .into_iter()
        .map(|(rule, reject)| {
            let rule = rule.counter();
            let rule = match planned.action {
                Action::Allow => rule.verdict(Verdict::Return),
                Action::Drop => rule.verdict(Verdict::Drop),
                Action::Reject => rule.reject(reject),
            };
            rule.comment(&planned.comment)
        })
        .collect()
}

/// The error of a batch the kernel refused in node `node`: nftables missing or not permitted
/// is [`Error::Unsupported`], anything else [`Error::Io`].
fn refused(node: &str, error: io::Error) -> Error {
    let errno = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<nftables::Refused>())
        .map(nftables::Refused::errno)
        .or(error.raw_os_error());
    match errno {
        Some(libc::EPERM | libc::EACCES | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP) => {
            Error::Unsupported {
                feature: "nftables".into(),
                reason: format!(
                    "the kernel refused the firewall of node `{node}` ({error}); firewalls need nf_tables \
                     with the inet family, conntrack and reject (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, \
                     CONFIG_NFT_CT, CONFIG_NFT_REJECT) and CAP_NET_ADMIN in the node's namespace"
                ),
            }
        }
        _ => Error::io(format!("applying the firewall of node `{node}` through nftables"), error),
    }
}

/// Applies `batch` in the namespace of `node`, on the calling thread (which it moves there).
fn apply_here(node: &Node, batch: &Batch) -> Result<()> {
    node.fds().enter().map_err(|e| Error::io(format!("entering node `{}`", node.name()), e))?;
    nftables::apply(batch).map_err(|e| refused(node.name(), e))
}

/// Applies the firewalls of `plan` at bring-up, once links, addresses and routes are up: one
/// batch per node that has any, from one short-lived thread that visits those nodes in turn.
pub(super) fn apply_planned(plan: &Plan, nodes: &[Node]) -> Result<()> {
    if plan.firewalls.is_empty() {
        return Ok(());
    }
    let visit = || -> Result<()> {
        for NodeFirewalls { node, firewalls } in &plan.firewalls {
            let node = &nodes[*node];
            let batch = batch(firewalls)
                .map_err(|e| Error::io(format!("encoding the firewall of node `{}`", node.name()), e))?;
            apply_here(node, &batch)?;
            node.firewall_state().set_installed(firewalls.iter().map(|f| f.name.clone()).collect());
        }
        Ok(())
    };
    crate::ns::on_thread("netns-test-firewall", visit)
        .map_err(|e| Error::io("starting a thread to apply firewalls", e))?
}

impl Node {
    /// Replaces the node's firewalls with `firewalls`, in one atomic nftables transaction:
    /// a packet sees the old rules or the new ones, never a mix. An empty list removes them.
    /// Connections the kernel already tracks keep their state. The change is on the
    /// network's timeline. A router's outside interface, unless named, is the one its default
    /// route in the topology leaves through.
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// use netns_test::topology::Firewall;
    /// let gw = net.node("gw");
    /// gw.set_firewall([Firewall::block_inbound(), Firewall::pmtu_blackhole()])?;
    /// gw.set_firewall([])?; // no firewall any more
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Topology`] for an invalid firewall (the same errors as in a topology: a switch,
    /// an outside interface the node does not have or that cannot be found, a bad address or
    /// port range); [`Error::Unsupported`] when the kernel refuses nftables; another failure
    /// to apply.
    pub fn set_firewall(&self, firewalls: impl IntoIterator<Item = Firewall>) -> Result<()> {
        let firewalls: Vec<Firewall> = firewalls.into_iter().collect();
        let state = self.firewall_state();
        let planned = plan_firewalls(&state.facts, &firewalls)?;
        let batch = batch(&planned.firewalls)
            .map_err(|e| Error::io(format!("encoding the firewall of node `{}`", self.name()), e))?;
        crate::ns::on_thread("netns-test-firewall", || apply_here(self, &batch))
            .map_err(|e| Error::io("starting a thread to apply a firewall", e))??;
        let names: Vec<String> = firewalls.iter().map(|f| f.name().to_string()).collect();
        let detail = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        state.set_installed(names);
        self.record(EventKind::Firewall, self.name().to_string(), detail);
        Ok(())
    }
}

impl Network {
    /// One line per firewall rule that drops or rejects, on every node with a firewall: how
    /// many packets it stopped (its variants summed), from the kernel's counters.
    pub(super) fn firewall_drops(&self) -> Section {
        let nodes: Vec<&Node> =
            self.nodes().iter().filter(|node| !node.firewall_state().installed().is_empty()).collect();
        let visit = || {
            let mut lines = Vec::new();
            for node in &nodes {
                if let Err(error) = node.fds().enter() {
                    lines.push(format!("{}: unreadable: entering the node: {error}", node.name()));
                    continue;
                }
                match nftables::list_rules(Family::Inet, TABLE, None) {
                    Ok(rules) => {
                        // By comment, in the table's order, variants summed.
                        let mut counts: Vec<(String, u64, u64)> = Vec::new();
                        for rule in rules {
                            let stops = rule.verdict == Some(Verdict::Drop)
                                || rule.expressions.iter().any(|name| name == "reject");
                            let (Some(comment), Some(counter), true) = (rule.comment, rule.counter, stops)
                            else {
                                continue;
                            };
                            match counts.iter_mut().find(|(seen, _, _)| *seen == comment) {
                                Some(entry) => {
                                    entry.1 += counter.packets;
                                    entry.2 += counter.bytes;
                                }
                                None => counts.push((comment, counter.packets, counter.bytes)),
                            }
                        }
                        for (comment, packets, bytes) in counts {
                            lines.push(format!("{}: {comment}: {packets} packets/{bytes} B", node.name()));
                        }
                    }
                    Err(error) => lines.push(format!("{}: unreadable: {error}", node.name())),
                }
            }
            lines
        };
        let lines = if nodes.is_empty() {
            Vec::new()
        } else {
            crate::ns::on_thread("netns-test-firewall", visit)
                .unwrap_or_else(|error| vec![format!("unreadable: starting a thread: {error}")])
        };
        Section { title: "firewall drops".into(), lines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nftables_refused_or_missing_is_unsupported_and_the_rest_an_io_error() {
        for errno in [libc::EPERM, libc::EPROTONOSUPPORT, libc::EOPNOTSUPP] {
            let error = refused("gw", io::Error::from_raw_os_error(errno));
            let Error::Unsupported { feature, reason } = &error else { panic!("{error:?}") };
            assert_eq!(feature, "nftables");
            assert!(reason.starts_with("the kernel refused the firewall of node `gw` ("), "{reason}");
            assert!(reason.contains("CONFIG_NF_TABLES_INET"), "{reason}");
        }
        let error = refused("gw", io::Error::from_raw_os_error(libc::ENOBUFS));
        assert!(matches!(error, Error::Io { .. }), "{error:?}");
        assert_eq!(error.to_string(), "applying the firewall of node `gw` through nftables failed");
    }

    fn facts(kind: crate::topology::NodeKind) -> NodeFacts {
        NodeFacts {
            index: 0,
            name: "gw".into(),
            kind,
            ifaces: vec!["eth0".into(), "eth1".into()],
            default_ifaces: vec!["eth1".into()],
        }
    }

    /// A rule's interfaces (in, out) and comment.
    type Placed = (Option<String>, Option<String>, String);

    /// Per hook, the (iif, oif, comment) of each rule of the first firewall.
    fn placed(kind: crate::topology::NodeKind, firewall: Firewall) -> Vec<Vec<Placed>> {
        let planned = plan_firewalls(&facts(kind), &[firewall]).expect("valid");
        planned.firewalls[0]
            .chains
            .iter()
            .map(|rules| rules.iter().map(|r| (r.iif.clone(), r.oif.clone(), r.comment.clone())).collect())
            .collect()
    }

    #[test]
    fn directions_become_hooks_and_interfaces() {
        use crate::topology::NodeKind::{Host, Router};
        let eth1 = || Some("eth1".to_string());
        // A router: inbound is input and forward in through its outside interface (the
        // default route's).
        let router = placed(Router, Firewall::block_inbound());
        assert_eq!(router[0].len(), 3);
        assert_eq!(router[1].len(), 3);
        assert!(router[2].is_empty());
        assert_eq!(router[0][2], (eth1(), None, "1.3 block-inbound: drop inbound".into()));
        assert_eq!(
            router[1][0],
            (eth1(), None, "1.1 block-inbound: allow inbound established,related".into())
        );
        // A host: input only, every interface.
        let host = placed(Host, Firewall::block_inbound());
        assert_eq!((host[0].len(), host[1].len(), host[2].len()), (3, 0, 0));
        assert_eq!(
            host[0][1],
            (None, None, "1.2 block-inbound: allow inbound icmpv6 neighbour discovery".into())
        );
        // Outbound on a router: output and forward out through the outside.
        let corporate = placed(Router, Firewall::corporate());
        assert_eq!((corporate[0].len(), corporate[1].len(), corporate[2].len()), (0, 6, 6));
        assert_eq!(corporate[2][1], (None, eth1(), "1.2 corporate: allow outbound tcp dport 80".into()));
        // What a node sends or forwards, on every interface; both directions, once per hook.
        let blackhole = placed(Router, Firewall::pmtu_blackhole());
        assert_eq!((blackhole[0].len(), blackhole[1].len(), blackhole[2].len()), (0, 2, 2));
        assert_eq!(
            blackhole[1][0],
            (None, None, "1.1 pmtu-blackhole: drop sent or forwarded icmp fragmentation-needed".into())
        );
        let udp = placed(Router, Firewall::udp_blocked());
        assert_eq!((udp[0].len(), udp[1].len(), udp[2].len()), (3, 3, 3));
        // With an outside interface, a rule of both directions is in forward twice.
        let explicit = placed(Router, Firewall::udp_blocked().outside("eth0"));
        assert_eq!((explicit[0].len(), explicit[1].len(), explicit[2].len()), (3, 6, 3));
        assert_eq!(explicit[1][1].1, Some("eth0".into()));
    }

    #[test]
    fn every_preset_encodes_and_a_reject_of_any_protocol_is_three_rules() {
        use crate::topology::NodeKind::Router;
        let all: Vec<Firewall> = crate::topology::firewall::PRESETS.iter().map(|(_, make)| make()).collect();
        let planned = plan_firewalls(&facts(Router), &all).expect("valid");
        let batch = batch(&planned.firewalls).expect("encodes");
        // add, delete, add table; three base chains and their firewall chains.
        let chains = batch.requests().iter().filter(|r| r.what.starts_with("add chain")).count();
        assert_eq!(chains, 3 + 2 + 3 + 2 + 2, "{:?}", batch.requests());
        let reject = PlannedRule {
            iif: None,
            oif: None,
            from: None,
            to: None,
            protocol: None,
            dport: None,
            sport: None,
            established: false,
            icmp: None,
            action: Action::Reject,
            comment: "1.1 custom: reject".into(),
        };
        let rules = encode(&reject, "c");
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().all(|rule| rule.comment.as_deref() == Some("1.1 custom: reject")));
        assert_eq!(encode(&PlannedRule { action: Action::Drop, ..reject }, "c").len(), 1);
    }
}
