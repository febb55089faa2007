//! Firewalls: the model a test or a topology file gives a node ([`Firewall`], made of
//! [`FirewallRule`]s or taken from a preset). Planning checks and resolves it
//! (`plan/firewall.rs`); bring-up and [`Node::set_firewall`](crate::Node::set_firewall) hand
//! it to the kernel's nftables (`network/firewall.rs`).

use std::fmt;
use std::ops::{Bound, RangeBounds};

use super::Location;

/// What a rule does with the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Lets the packet through this firewall (the next firewall of the node still sees it).
    Allow,
    /// Discards it silently.
    Drop,
    /// Discards it and answers: a TCP RST for TCP, ICMP port unreachable for UDP, ICMP
    /// administratively prohibited for anything else.
    Reject,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Drop => "drop",
            Action::Reject => "reject",
        }
    }
}

/// Which packets of a node a rule sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Inbound and outbound.
    Both,
    /// Into the node (a host), or in through the outside interface (a router: to it or through it).
    Inbound,
    /// Out of the node (a host), or out through the outside interface (a router: from it or through it).
    Outbound,
    /// What the node sends or forwards, whatever the direction (`pmtu_blackhole`).
    Sent,
}

/// The transport protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    /// ICMP for IPv4, ICMPv6 for IPv6.
    Icmp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// An ICMP match of a preset: the family, a range of types, and a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IcmpMatch {
    pub(crate) v6: bool,
    pub(crate) types: (u8, u8),
    pub(crate) code: Option<u8>,
}

/// One rule of a [`Firewall`]: an action (allow, drop or reject), and what it matches: a
/// direction, a protocol, source and destination address ranges, a destination port range.
/// What is not given matches everything.
///
/// ```
/// use netns_test::topology::FirewallRule;
/// let rule = FirewallRule::reject().inbound().tcp().ports(8000..=8080).from("10.0.0.0/8");
/// assert_eq!(rule.to_string(), "reject inbound tcp from 10.0.0.0/8 dport 8000-8080");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a rule does nothing until it is added to a firewall"]
pub struct FirewallRule {
    pub(crate) action: Action,
    pub(crate) scope: Scope,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) dport: Option<(Bound<u16>, Bound<u16>)>,
    pub(crate) sport: Option<(Bound<u16>, Bound<u16>)>,
    /// Presets only: the packet belongs to a known connection (`ct state established,related`).
    pub(crate) established: bool,
    /// Presets only: ICMP types.
    pub(crate) icmp: Option<IcmpMatch>,
    /// Presets only: the description, instead of one made of the matches.
    pub(crate) label: Option<&'static str>,
}

impl FirewallRule {
    fn new(action: Action) -> Self {
        FirewallRule {
            action,
            scope: Scope::Both,
            protocol: None,
            from: None,
            to: None,
            dport: None,
            sport: None,
            established: false,
            icmp: None,
            label: None,
        }
    }

    /// A rule that lets what it matches through this firewall (a later firewall of the same
    /// node may still stop it).
    pub fn allow() -> Self {
        FirewallRule::new(Action::Allow)
    }

    /// A rule that discards what it matches without a word: a TCP connect waits out its
    /// timeout.
    pub fn drop() -> Self {
        FirewallRule::new(Action::Drop)
    }

    /// A rule that discards what it matches and says so: a TCP RST to TCP (a connect fails at
    /// once with `ECONNREFUSED`), an ICMP (or ICMPv6) port unreachable to UDP, administratively
    /// prohibited to anything else.
    pub fn reject() -> Self {
        FirewallRule::new(Action::Reject)
    }

    /// Only packets coming in: to a host; on a router, entering through its outside interface
    /// (to the router itself or through it).
    pub fn inbound(mut self) -> Self {
        self.scope = Scope::Inbound;
        self
    }

    /// Only packets going out: from a host; on a router, leaving through its outside interface
    /// (from the router itself or through it).
    pub fn outbound(mut self) -> Self {
        self.scope = Scope::Outbound;
        self
    }

    /// Only TCP.
    pub fn tcp(mut self) -> Self {
        self.protocol = Some(Protocol::Tcp);
        self
    }

    /// Only UDP.
    pub fn udp(mut self) -> Self {
        self.protocol = Some(Protocol::Udp);
        self
    }

    /// Only ICMP (IPv4) and ICMPv6 (IPv6).
    pub fn icmp(mut self) -> Self {
        self.protocol = Some(Protocol::Icmp);
        self
    }

    /// Only packets whose source address is in `cidr` (`10.0.0.0/8`, `fd00::/8`, or one
    /// address as `10.0.0.1/32`). Checked when the topology is built or the firewall set.
    pub fn from(mut self, cidr: impl Into<String>) -> Self {
        self.from = Some(cidr.into());
        self
    }

    /// Only packets whose destination address is in `cidr`.
    pub fn to(mut self, cidr: impl Into<String>) -> Self {
        self.to = Some(cidr.into());
        self
    }

    /// Only packets to destination port `port` (with [`tcp`](Self::tcp) or [`udp`](Self::udp)).
    pub fn port(self, port: u16) -> Self {
        self.ports(port..=port)
    }

    /// Only packets to a destination port in `ports` (`8000..=8080`, `1024..`), with
    /// [`tcp`](Self::tcp) or [`udp`](Self::udp). An empty or inverted range is a
    /// [`TopologyError`](super::TopologyError) when the rule is checked.
    pub fn ports(mut self, ports: impl RangeBounds<u16>) -> Self {
        self.dport = Some((ports.start_bound().cloned(), ports.end_bound().cloned()));
        self
    }

    fn source_port(mut self, port: u16) -> Self {
        self.sport = Some((Bound::Included(port), Bound::Included(port)));
        self
    }

    /// Only packets of connections the node's conntrack has already seen both ways, and the
    /// ICMP errors related to them (`ct state established,related`): the replies of a stateful
    /// firewall.
    pub fn established(mut self) -> Self {
        self.established = true;
        self
    }

    fn icmp_types(mut self, v6: bool, types: (u8, u8), code: Option<u8>, label: &'static str) -> Self {
        self.icmp = Some(IcmpMatch { v6, types, code });
        self.label = Some(label);
        self
    }

    fn sent(mut self) -> Self {
        self.scope = Scope::Sent;
        self
    }
}

/// A port range as written: `80`, `8000-8080`, `1024-` (to 65535), with `..` ranges' ends.
pub(crate) fn ports_text(ports: &(Bound<u16>, Bound<u16>)) -> String {
    let start = match ports.0 {
        Bound::Included(port) => port.to_string(),
        Bound::Excluded(port) => format!("{port}<"),
        Bound::Unbounded => "0".into(),
    };
    match ports.1 {
        Bound::Included(port) if ports.0 == Bound::Included(port) => start,
        Bound::Included(port) => format!("{start}-{port}"),
        Bound::Excluded(port) => format!("{start}-<{port}"),
        Bound::Unbounded => format!("{start}-65535"),
    }
}

impl fmt::Display for FirewallRule {
    /// The rule in words, as the failure report names it: `reject inbound tcp dport 81`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action.name())?;
        match self.scope {
            Scope::Both => {}
            Scope::Inbound => f.write_str(" inbound")?,
            Scope::Outbound => f.write_str(" outbound")?,
            Scope::Sent => f.write_str(" sent or forwarded")?,
        }
        if self.established {
            f.write_str(" established,related")?;
        }
        if let Some(label) = self.label {
            write!(f, " {label}")?;
        }
        if let Some(protocol) = self.protocol {
            write!(f, " {}", protocol.name())?;
        }
        if let Some(from) = &self.from {
            write!(f, " from {from}")?;
        }
        if let Some(to) = &self.to {
            write!(f, " to {to}")?;
        }
        if let Some(ports) = &self.sport {
            write!(f, " sport {}", ports_text(ports))?;
        }
        if let Some(ports) = &self.dport {
            write!(f, " dport {}", ports_text(ports))?;
        }
        Ok(())
    }
}

/// A stateful firewall on a host or router, applied by the kernel's nftables (no `nft`
/// binary needed; rootless too): a preset, or rules of your own.
///
/// - On a **host** it filters what the host receives and sends, on all its interfaces
///   (loopback excepted).
/// - On a **router** its inbound and outbound rules filter what crosses the router's
///   **outside** interface: the one named with [`outside`](Self::outside), else the one its
///   default route leaves through (a router with neither is a
///   [`TopologyError`](super::TopologyError) naming its interfaces). Inbound means entering
///   there (to the router or through it), outbound leaving there.
///
/// Within a firewall the first rule that matches a packet decides; a packet no rule matches
/// passes. A node may have several firewalls ([`TopologyBuilder::firewall`](super::TopologyBuilder::firewall)
/// more than once): they compose in order, like middleboxes in a row, and a packet passes
/// only if each lets it through.
///
/// ```
/// use netns_test::topology::{Firewall, FirewallRule};
/// use netns_test::{Link, Topology};
/// let topology = Topology::builder()
///     .host("client")
///     .router("gw")
///     .host("server")
///     .link(Link::new("client", "gw").addrs("10.0.1.2/24", "10.0.1.1/24"))
///     .link(Link::new("gw", "server").addrs("10.0.2.1/24", "10.0.2.2/24"))
///     .auto_routes()
///     .firewall("gw", Firewall::block_inbound().outside("eth1"))
///     .firewall("server", Firewall::new().rule(FirewallRule::reject().inbound().tcp().port(22)))
///     .build()?;
/// # let _ = topology;
/// # Ok::<(), netns_test::topology::TopologyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a firewall does nothing until it is given to a node"]
pub struct Firewall {
    /// The preset's name (`block-inbound`), or `custom`.
    pub(crate) name: String,
    pub(crate) rules: Vec<FirewallRule>,
    pub(crate) outside: Option<String>,
    /// For a file: where the firewall is written.
    pub(crate) location: Option<Location>,
}

/// A preset's name in topology files, and its constructor.
pub(crate) type Preset = (&'static str, fn() -> Firewall);

/// The presets.
pub(crate) const PRESETS: [Preset; 4] = [
    ("block-inbound", Firewall::block_inbound),
    ("udp-blocked", Firewall::udp_blocked),
    ("corporate", Firewall::corporate),
    ("pmtu-blackhole", Firewall::pmtu_blackhole),
];

/// ICMPv6 neighbour discovery (router solicitation to redirect, types 133 to 137), which
/// conntrack does not track: presets that drop what is not established let it through, or
/// IPv6 neighbours would never resolve.
fn neighbour_discovery() -> FirewallRule {
    FirewallRule::allow().icmp_types(true, (133, 137), None, "icmpv6 neighbour discovery")
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall::new()
    }
}

impl Firewall {
    /// A firewall without rules (it lets everything through), for rules of your own.
    pub fn new() -> Self {
        Firewall::with("custom", Vec::new())
    }

    fn with(name: &str, rules: Vec<FirewallRule>) -> Self {
        Firewall { name: name.into(), rules, outside: None, location: None }
    }

    /// Stateful, as RFC 6092 asks of home gateways: replies to what went out come in (and the
    /// ICMP errors related to them), new inbound connections are dropped.
    /// (`block-inbound` in a file.)
    pub fn block_inbound() -> Self {
        Firewall::with(
            "block-inbound",
            vec![
                FirewallRule::allow().inbound().established(),
                neighbour_discovery().inbound(),
                FirewallRule::drop().inbound(),
            ],
        )
    }

    /// The hotel or captive-portal shape: all UDP dropped, both ways, except DNS (to or from
    /// port 53); TCP and the rest pass. (`udp-blocked` in a file.)
    pub fn udp_blocked() -> Self {
        Firewall::with(
            "udp-blocked",
            vec![
                FirewallRule::allow().udp().port(53),
                FirewallRule::allow().udp().source_port(53),
                FirewallRule::drop().udp(),
            ],
        )
    }

    /// Outbound TCP to ports 80 and 443 and UDP to port 53 only; replies to those, and to
    /// inbound connections, go out too; every other new outbound packet is dropped.
    /// (`corporate` in a file.)
    pub fn corporate() -> Self {
        Firewall::with(
            "corporate",
            vec![
                FirewallRule::allow().outbound().established(),
                FirewallRule::allow().outbound().tcp().port(80),
                FirewallRule::allow().outbound().tcp().port(443),
                FirewallRule::allow().outbound().udp().port(53),
                neighbour_discovery().outbound(),
                FirewallRule::drop().outbound(),
            ],
        )
    }

    /// A PMTU blackhole: the node neither sends nor forwards ICMP "fragmentation needed" or
    /// ICMPv6 "packet too big", so a sender with DF set never learns the path MTU. It acts on
    /// every interface, or with [`outside`](Self::outside) on the messages leaving through
    /// that one. (`pmtu-blackhole` in a file.)
    pub fn pmtu_blackhole() -> Self {
        Firewall::with(
            "pmtu-blackhole",
            vec![
                FirewallRule::drop().sent().icmp_types(false, (3, 3), Some(4), "icmp fragmentation-needed"),
                FirewallRule::drop().sent().icmp_types(true, (2, 2), None, "icmpv6 packet-too-big"),
            ],
        )
    }

    /// Adds a rule after the firewall's others.
    pub fn rule(mut self, rule: FirewallRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Names the interface whose crossing the inbound and outbound rules filter (on a host,
    /// they then filter that interface alone).
    pub fn outside(mut self, iface: impl Into<String>) -> Self {
        self.outside = Some(iface.into());
        self
    }

    /// The preset's name (`block-inbound`), or `custom`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its rules depend on the outside interface (inbound or outbound ones).
    pub(crate) fn is_directional(&self) -> bool {
        self.rules.iter().any(|rule| matches!(rule.scope, Scope::Inbound | Scope::Outbound))
    }
}
