//! NAT routers in the model: [`Nat`], its RFC 4787 [`Mapping`] and [`Filtering`] behaviours,
//! and the classic presets. [`TopologyBuilder::nat`](super::TopologyBuilder::nat) puts one on
//! a router; a file writes it in a `[nat]` table.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// How a NAT chooses the outside endpoint of an inside endpoint's packets (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mapping {
    /// One outside endpoint for every remote ("cone" NATs).
    EndpointIndependent,
    /// One outside endpoint per remote address.
    AddressDependent,
    /// One outside endpoint per remote address and port ("symmetric" NATs).
    AddressAndPortDependent,
}

/// Which remotes may send to a mapped outside endpoint (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filtering {
    /// Any remote ("full cone").
    EndpointIndependent,
    /// Remotes at an address the mapping has sent to ("restricted cone").
    AddressDependent,
    /// Remotes at an address and port the mapping has sent to ("port-restricted cone").
    AddressAndPortDependent,
}

impl Mapping {
    /// Its name in RFC 4787's words, as a topology file writes it: `endpoint-independent`,
    /// `address-dependent` or `address-and-port-dependent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::AddressDependent => "address-dependent",
            Mapping::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// Every mapping behaviour, in the order of RFC 4787.
    pub const ALL: [Mapping; 3] =
        [Mapping::EndpointIndependent, Mapping::AddressDependent, Mapping::AddressAndPortDependent];
}

impl Filtering {
    /// Its name in RFC 4787's words, as a topology file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "endpoint-independent",
            Filtering::AddressDependent => "address-dependent",
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// Every filtering behaviour, in the order of RFC 4787.
    pub const ALL: [Filtering; 3] =
        [Filtering::EndpointIndependent, Filtering::AddressDependent, Filtering::AddressAndPortDependent];
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Filtering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The behaviour of a NAT on a router: what [`TopologyBuilder::nat`](super::TopologyBuilder::nat)
/// puts there, and what [`NatHandle::set`](crate::nat::NatHandle::set) changes it to.
///
/// It translates IPv4 UDP, TCP and ICMP echo, and ICMP errors with the headers they embed, on
/// the router's outside interface; IPv6 crosses it untouched. By default it hairpins, keeps
/// the inside port when it is free (port preservation), allocates outside ports in
/// 1024–60999 and forgets a UDP mapping after 5 minutes without outbound traffic.
///
/// ```
/// use std::time::Duration;
/// use netns_test::topology::{Filtering, Mapping, Nat};
/// let home = Nat::port_restricted().hairpin(false).udp_timeout(Duration::from_secs(30));
/// assert_eq!(home.mapping(), Mapping::EndpointIndependent);
/// assert_eq!(home.filtering(), Filtering::AddressAndPortDependent);
/// let odd = Nat::new(Mapping::AddressDependent, Filtering::EndpointIndependent).outside("wan");
/// assert_eq!(odd.outside_interface(), Some("wan"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nat {
    pub(crate) mapping: Mapping,
    pub(crate) filtering: Filtering,
    pub(crate) hairpin: bool,
    pub(crate) port_preservation: bool,
    pub(crate) udp_timeout: Duration,
    pub(crate) outside: Option<String>,
    /// First and last outside port, as given (checked when the topology is built).
    pub(crate) ports: (u16, u16),
}

impl Nat {
    /// A NAT with these behaviours, and the defaults above.
    pub fn new(mapping: Mapping, filtering: Filtering) -> Nat {
        Nat {
            mapping,
            filtering,
            hairpin: true,
            port_preservation: true,
            udp_timeout: Duration::from_secs(300),
            outside: None,
            ports: (1024, 60999),
        }
    }

    /// Full cone: endpoint-independent mapping and filtering.
    pub fn full_cone() -> Nat {
        Nat::new(Mapping::EndpointIndependent, Filtering::EndpointIndependent)
    }

    /// Restricted cone: endpoint-independent mapping, address-dependent filtering.
    pub fn restricted_cone() -> Nat {
        Nat::new(Mapping::EndpointIndependent, Filtering::AddressDependent)
    }

    /// Port-restricted cone: endpoint-independent mapping, address-and-port-dependent
    /// filtering (what most home routers do).
    pub fn port_restricted() -> Nat {
        Nat::new(Mapping::EndpointIndependent, Filtering::AddressAndPortDependent)
    }

    /// Symmetric: address-and-port-dependent mapping and filtering.
    pub fn symmetric() -> Nat {
        Nat::new(Mapping::AddressAndPortDependent, Filtering::AddressAndPortDependent)
    }

    /// The preset called `name` in a topology file: `full-cone`, `restricted-cone`,
    /// `port-restricted` or `symmetric`.
    pub fn preset(name: &str) -> Option<Nat> {
        match name {
            "full-cone" => Some(Nat::full_cone()),
            "restricted-cone" => Some(Nat::restricted_cone()),
            "port-restricted" => Some(Nat::port_restricted()),
            "symmetric" => Some(Nat::symmetric()),
            _ => None,
        }
    }

    /// The names [`Nat::preset`] knows.
    pub const PRESETS: [&'static str; 4] = ["full-cone", "restricted-cone", "port-restricted", "symmetric"];

    /// Whether an inside packet to a mapped outside endpoint is translated and turned back to
    /// the inside (hairpinning, RFC 4787 REQ-9). Without it, such a packet reaches the router
    /// itself.
    pub fn hairpin(mut self, on: bool) -> Nat {
        self.hairpin = on;
        self
    }

    /// Whether a new mapping keeps the inside port when it is in the port range and free.
    pub fn port_preservation(mut self, on: bool) -> Nat {
        self.port_preservation = on;
        self
    }

    /// How long a UDP mapping lives without outbound traffic (RFC 4787 REQ-5 asks for at
    /// least 2 minutes; shorter ones are allowed for tests). Zero is a [`TopologyError`](super::TopologyError).
    pub fn udp_timeout(mut self, timeout: Duration) -> Nat {
        self.udp_timeout = timeout;
        self
    }

    /// The router's outside interface. Without it, the interface the router's default route
    /// leaves through (a static one, else the one automatic routes would give it).
    pub fn outside(mut self, iface: impl Into<String>) -> Nat {
        self.outside = Some(iface.into());
        self
    }

    /// The outside ports allocated, `first..=last` (default 1024–60999; the router keeps
    /// 61000–65535 for its own sockets). An empty or inverted range, or one holding port 0,
    /// is a [`TopologyError`](super::TopologyError).
    pub fn ports(mut self, range: RangeInclusive<u16>) -> Nat {
        self.ports = (*range.start(), *range.end());
        self
    }

    /// The mapping behaviour.
    pub fn mapping(&self) -> Mapping {
        self.mapping
    }

    /// The filtering behaviour.
    pub fn filtering(&self) -> Filtering {
        self.filtering
    }

    /// Whether it hairpins.
    pub fn hairpins(&self) -> bool {
        self.hairpin
    }

    /// Whether it preserves ports.
    pub fn preserves_ports(&self) -> bool {
        self.port_preservation
    }

    /// The outside interface given with [`Nat::outside`].
    pub fn outside_interface(&self) -> Option<&str> {
        self.outside.as_deref()
    }
}

impl fmt::Display for Nat {
    /// `endpoint-independent mapping, address-and-port-dependent filtering, hairpin, port
    /// preservation`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mapping, {} filtering", self.mapping, self.filtering)?;
        if self.hairpin {
            f.write_str(", hairpin")?;
        }
        if self.port_preservation {
            f.write_str(", port preservation")?;
        }
        Ok(())
    }
}
