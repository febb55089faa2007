//! NAT routers at runtime: what bring-up sets on a NAT router, and [`NatHandle`], which a
//! test gets from [`Network::nat`] to read the mapping table, forget it, or change the
//! behaviour.
//!
//! The translator itself runs in the link engine, on the router's outside link
//! (`impair/nat/`). Bring-up gives the router what that needs: its own sockets take local
//! ports 61000–65535, its outside interface accepts packets from its own outside address (a
//! hairpinned packet comes back with it as source), and a policy rule before the `local`
//! table sends inside packets to the outside address out of the outside interface, where the
//! translator hairpins them or turns them back to the router's own stack.

use std::fmt;
use std::net::SocketAddrV4;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{Network, Node};
use crate::error::{Error, Result, name_list};
use crate::impair::monotonic_ns;
use crate::impair::nat::{MappingView, NatConfig, Protocol as NatProtocol, Translator};
use crate::netlink::At;
use crate::timeline::EventKind;
use crate::topology::{Nat, Plan, PlannedNat};

/// The routing table of a NAT router's rule for inside packets to its outside address.
const NAT_TABLE: u32 = 4787;
/// The preference of that rule, before the `local` table's.
const NAT_RULE_PREF: u32 = 100;
/// Where the `local` table's rule moves to (it is at 0, before every other rule, by default).
const LOCAL_RULE_PREF: u32 = 200;

/// Gives each NAT router of `plan` its sysctls, rules and routes (see the module docs).
pub(super) fn set_up_routers(plan: &Plan, nodes: &[Node]) -> Result<()> {
    for nat in &plan.nats {
        let node = &nodes[nat.router];
        let outside = &plan.nodes[nat.router].ifaces[nat.iface];
        let name = outside.name.clone();
        crate::ns::run_in(node.fds(), "netns-test-nat", || crate::ns::setup::nat_router(&name)).map_err(
            |e| Error::io(format!("entering router `{}` to set its NAT sysctls", node.name()), e.into()),
        )??;
        let inside: Vec<String> = plan.nodes[nat.router]
            .ifaces
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != nat.iface)
            .map(|(_, iface)| iface.name.clone())
            .collect();
        let handle = node.netlink().handle.clone();
        let (router, address, index, mac) =
            (node.name().to_string(), nat.outside, outside.index, nat.peer_mac);
        node.netlink_rt().block_on(async move {
            let at = At { node: &router, handle: &handle };
            at.move_local_rule(LOCAL_RULE_PREF).await?;
            for iface in &inside {
                at.add_rule_to(NAT_RULE_PREF, iface, address, NAT_TABLE).await?;
            }
            at.add_device_route(address, index, &name, NAT_TABLE).await?;
            at.add_static_neighbour(index, address.into(), mac).await
        })?;
    }
    Ok(())
}

/// The transport protocol of a NAT mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MappingProtocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// ICMP echo: the endpoints' ports are echo identifiers.
    Icmp,
}

impl fmt::Display for MappingProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MappingProtocol::Udp => "udp",
            MappingProtocol::Tcp => "tcp",
            MappingProtocol::Icmp => "icmp",
        })
    }
}

/// One live mapping of a NAT, as [`NatHandle::mappings`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatMapping {
    /// UDP, TCP or ICMP echo.
    pub protocol: MappingProtocol,
    /// The inside endpoint.
    pub inside: SocketAddrV4,
    /// The outside endpoint it is mapped to: the router's outside address and a port.
    pub outside: SocketAddrV4,
    /// The remote endpoints it has sent to, in address order (for ICMP, port 0).
    pub remotes: Vec<SocketAddrV4>,
    /// Since its last outbound packet.
    pub idle: Duration,
}

impl NatMapping {
    fn of(view: MappingView) -> NatMapping {
        NatMapping {
            protocol: match view.protocol {
                NatProtocol::Udp => MappingProtocol::Udp,
                NatProtocol::Tcp => MappingProtocol::Tcp,
                NatProtocol::Icmp => MappingProtocol::Icmp,
            },
            inside: view.inside,
            outside: view.outside,
            remotes: view.remotes,
            idle: view.idle,
        }
    }
}

impl fmt::Display for NatMapping {
    /// `udp 192.168.1.2:5000 -> 203.0.113.2:5000 with 198.51.100.2:3478`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {} with ", self.protocol, self.inside, self.outside)?;
        let remotes: Vec<String> = self.remotes.iter().map(ToString::to_string).collect();
        f.write_str(&remotes.join(", "))
    }
}

/// A NAT of a running network: see [`Network::nat`].
#[derive(Clone)]
pub struct NatHandle {
    network: Network,
    /// The NAT's index in the plan.
    index: usize,
}

impl fmt::Debug for NatHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatHandle").field("router", &self.router()).finish()
    }
}

impl Network {
    /// The NAT on router `router` ([`TopologyBuilder::nat`](crate::TopologyBuilder::nat)).
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// let home = net.nat("home")?;
    /// for mapping in home.mappings()? {
    ///     println!("{mapping}");
    /// }
    /// home.rebind()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Nat`] when the topology puts no NAT on `router` (the message names the
    /// routers that have one).
    pub fn nat(&self, router: &str) -> Result<NatHandle> {
        let plan = self.plan();
        let found = plan.nats.iter().position(|nat| plan.nodes[nat.router].name == router);
        match found {
            Some(index) => Ok(NatHandle { network: self.clone(), index }),
            None => {
                let routers = plan.nats.iter().map(|nat| plan.nodes[nat.router].name.as_str());
                Err(Error::Nat {
                    router: router.to_string(),
                    reason: format!("the topology puts no NAT there; the NATs are on {}", name_list(routers)),
                })
            }
        }
    }
}

impl NatHandle {
    fn planned(&self) -> &PlannedNat {
        &self.network.plan().nats[self.index]
    }

    fn translator(&self) -> &Mutex<Translator> {
        self.network.backend().expect("a network with a NAT has a backend").nat(self.index)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Translator) -> T) -> T {
        f(&mut self.translator().lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The router's name.
    pub fn router(&self) -> &str {
        &self.network.plan().nodes[self.planned().router].name
    }

    /// The NAT's outside address: the source of the packets it translates.
    pub fn outside_address(&self) -> std::net::Ipv4Addr {
        self.planned().outside
    }

    /// Changes the behaviour from the next packet on. A change of mapping behaviour or port
    /// range forgets every mapping (they were made under rules that no longer hold); other
    /// changes keep them, and the new filtering, UDP timeout, hairpinning and port
    /// preservation apply to them at once. The outside interface cannot change.
    ///
    /// # Errors
    /// [`Error::Nat`] for an empty or inverted port range, a zero UDP timeout, or another
    /// outside interface than the running one.
    pub fn set(&self, nat: Nat) -> Result<()> {
        let planned = self.planned();
        let plan = self.network.plan();
        let router = self.router().to_string();
        let invalid = |reason: String| Error::Nat { router: router.clone(), reason };
        let iface = &plan.nodes[planned.router].ifaces[planned.iface].name;
        if let Some(asked) = nat.outside_interface().filter(|asked| *asked != iface) {
            return Err(invalid(format!(
                "the outside interface is `{iface}` and cannot change at runtime (asked for `{asked}`)"
            )));
        }
        if nat.udp_timeout.is_zero() {
            return Err(invalid("the UDP timeout is zero".into()));
        }
        let detail = nat.to_string();
        self.with(|translator| {
            let seed = translator.config().seed;
            let config = NatConfig::of(&nat, planned.outside, seed).map_err(|e| invalid(e.to_string()))?;
            translator.reconfigure(config);
            Ok::<(), Error>(())
        })?;
        self.network.timeline().record(EventKind::NatSet, router, detail);
        Ok(())
    }

    /// Forgets every mapping (the NAT rebinding of QUIC test suites): each inside endpoint's
    /// next packet gets a new outside port, even with port preservation, and packets to the
    /// old outside ports are no longer let in.
    ///
    /// # Errors
    /// None today; the result is for symmetry with the other runtime methods.
    pub fn rebind(&self) -> Result<()> {
        let forgotten = self.with(|translator| {
            let forgotten = translator.mappings(monotonic_ns()).len();
            translator.rebind();
            forgotten
        });
        self.network.timeline().record(
            EventKind::NatRebound,
            self.router().to_string(),
            format!("{forgotten} mappings forgotten"),
        );
        Ok(())
    }

    /// The live mappings, by protocol and outside port.
    ///
    /// # Errors
    /// None today; the result is for symmetry with the other runtime methods.
    pub fn mappings(&self) -> Result<Vec<NatMapping>> {
        let views = self.with(|translator| translator.mappings(monotonic_ns()));
        Ok(views.into_iter().map(NatMapping::of).collect())
    }

    /// What the translator did so far.
    pub fn counters(&self) -> NatCounters {
        let counters = self.with(|translator| translator.counters());
        NatCounters {
            translated_out: counters.translated_out,
            translated_in: counters.translated_in,
            hairpinned: counters.hairpinned,
            bounced: counters.bounced,
            passed: counters.passed,
            filtered: counters.filtered,
            untranslatable: counters.untranslatable,
            ports_exhausted: counters.exhausted,
            malformed: counters.malformed,
        }
    }
}

/// What a NAT's translator did to the frames of its outside link ([`NatHandle::counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatCounters {
    /// Packets translated on their way out.
    pub translated_out: u64,
    /// Packets translated on their way in.
    pub translated_in: u64,
    /// Inside packets to a mapped outside endpoint, translated and turned back inside.
    pub hairpinned: u64,
    /// Inside packets to the outside address turned back to the router's own stack.
    pub bounced: u64,
    /// Frames that were not the NAT's business (ARP, IPv6, the router's own traffic).
    pub passed: u64,
    /// Inbound packets the filtering behaviour dropped.
    pub filtered: u64,
    /// Outbound packets dropped rather than leaked with an inside address (another protocol,
    /// an ICMP message that is neither echo nor an error about a translated packet).
    pub untranslatable: u64,
    /// New mappings refused because no outside port was free.
    pub ports_exhausted: u64,
    /// Frames that were not well-formed IPv4.
    pub malformed: u64,
}

impl fmt::Display for NatCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "translated {} out / {} in, hairpinned {}, bounced {}, passed {}, dropped: filtered {}, \
             untranslatable {}, ports exhausted {}, malformed {}",
            self.translated_out,
            self.translated_in,
            self.hairpinned,
            self.bounced,
            self.passed,
            self.filtered,
            self.untranslatable,
            self.ports_exhausted,
            self.malformed
        )
    }
}

impl Network {
    /// One line per NAT with its counters, then one per mapping, for a failure report.
    pub(super) fn nat_summaries(&self) -> crate::timeline::Section {
        let mut lines = Vec::new();
        for index in 0..self.plan().nats.len() {
            let handle = NatHandle { network: self.clone(), index };
            lines.push(format!("{} ({}): {}", handle.router(), handle.outside_address(), handle.counters()));
            for mapping in handle.mappings().unwrap_or_default() {
                lines.push(format!("{}: {mapping}", handle.router()));
            }
        }
        crate::timeline::Section { title: "NAT mappings".into(), lines }
    }
}
