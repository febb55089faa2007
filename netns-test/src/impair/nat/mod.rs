//! The user-space NAT translator: the RFC 4787 behaviours that the kernel's conntrack cannot
//! express (address-dependent mapping, port-preserving symmetric NAT, seeded port allocation,
//! a mapping table a test can read), applied to Ethernet frames one at a time.
//!
//! It sits on a NAT router's outside link. Frames leaving the router are
//! [`Direction::Outbound`], frames arriving from the outside are [`Direction::Inbound`]; for
//! each, [`Translator::process`] rewrites the frame in place and says what to do with it
//! ([`Verdict`]). It knows nothing of sockets, threads or clocks: the caller hands it the time
//! (monotonic nanoseconds), so a test can replay any sequence exactly.
//!
//! # What it translates
//! - IPv4 UDP and TCP (the ports), and ICMP echo (the identifier stands for the port).
//! - ICMP errors (destination unreachable, time exceeded, parameter problem) with the IPv4
//!   header and the first 8 bytes of transport header they embed, so that PMTU discovery and
//!   traceroute work through the NAT (RFC 5508): an inbound error about a packet the NAT
//!   translated gets its outer destination and inner source rewritten; an outbound error about
//!   a packet the NAT translated inbound (sent by an inside host, or by the router itself) gets
//!   its outer source and inner destination rewritten.
//! - Fragments: the first fragment of a datagram is translated by its transport header, and
//!   the translation is remembered by (source, destination, protocol, IP identifier) for 30 s
//!   so that later fragments get the same addresses. A later fragment that arrives before its
//!   first (or after the 30 s) is dropped outbound, where it would leak an inside address, and
//!   passed untouched inbound, where it may be for the router itself.
//! - Every checksum is updated incrementally (RFC 1624): the IPv4 header, UDP (a zero UDP
//!   checksum means "none" and stays zero), TCP, ICMP (which covers the embedded packet), and
//!   the embedded IPv4 header's and transport header's own checksums.
//!
//! Anything else passes untouched (ARP, IPv6, and inbound traffic that no mapping claims,
//! which goes to the router's own stack), except that outbound IPv4 from an inside address
//! that cannot be translated (another protocol, an ICMP type other than echo request and the
//! errors) is dropped rather than leaked with a private source address.
//!
//! # Behaviour (RFC 4787)
//! - Mapping ([`NatConfig::mapping`]): an inside endpoint keeps one outside port for every
//!   remote (endpoint-independent), one per remote address (address-dependent), or one per
//!   remote address and port (address-and-port-dependent).
//! - Filtering ([`NatConfig::filtering`]): an inbound packet to a mapped port is let in from
//!   any remote (endpoint-independent), from a remote address the mapping has sent to
//!   (address-dependent), or only from a remote address and port it has sent to
//!   (address-and-port-dependent). Filtered packets are dropped silently.
//! - Outside ports come from [`NatConfig::ports`] (by default 1024–60999; the router keeps
//!   61000–65535 for its own sockets, so that an inbound packet to a mapped port is never
//!   meant for the router itself). With port preservation the inside port is kept when it is
//!   in the range and free; otherwise, and without preservation, a port is drawn from a ChaCha
//!   stream seeded by [`NatConfig::seed`]: the same seed and the same traffic give the same
//!   ports, another seed other ports. One outside port belongs to one mapping at a time.
//! - Mappings expire after [`Timeouts`] without outbound traffic (RFC 4787 REQ-6: only
//!   outbound packets refresh a mapping). TCP mappings use a long timeout once the remote has
//!   answered and a short one while opening and after a RST or a FIN in each direction
//!   (RFC 5382 REQ-5).
//! - Hairpinning: an inside packet to the outside address and a mapped port is translated at
//!   both ends (source to the sender's mapping, destination to the target's inside endpoint,
//!   filtered as if it came from outside) and turned back ([`Verdict::Hairpin`]). Without
//!   hairpinning, or to a port no mapping holds, such a packet was addressed to the router
//!   itself and is turned back untouched ([`Verdict::Bounce`]).
//!
//! The tables are readable ([`Translator::mappings`]), can be forgotten at once
//! ([`Translator::rebind`]), and the behaviour can change at runtime
//! ([`Translator::reconfigure`]).

mod checksum;
mod frame;
mod table;
mod translate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

pub(crate) use table::MappingView;
#[cfg(test)]
pub(crate) use translate::NatCounters;
pub(crate) use translate::Translator;

/// What an RFC 4787 mapping or filtering behaviour depends on, beyond the inside endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dependence {
    /// Nothing: one mapping (or one filter) for every remote endpoint.
    EndpointIndependent,
    /// The remote's address.
    AddressDependent,
    /// The remote's address and port.
    AddressAndPortDependent,
}

impl fmt::Display for Dependence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dependence::EndpointIndependent => "endpoint-independent",
            Dependence::AddressDependent => "address-dependent",
            Dependence::AddressAndPortDependent => "address-and-port-dependent",
        })
    }
}

/// The transport protocols the translator maps. ICMP means ICMP echo, whose identifier is
/// its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Protocol {
    Udp,
    Tcp,
    Icmp,
}

impl Protocol {
    fn from_number(number: u8) -> Option<Protocol> {
        match number {
            frame::field::PROTO_UDP => Some(Protocol::Udp),
            frame::field::PROTO_TCP => Some(Protocol::Tcp),
            frame::field::PROTO_ICMP => Some(Protocol::Icmp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Icmp => "icmp",
        })
    }
}

/// Which way a frame crosses the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    /// From the router towards the outside: inside endpoints become outside ones.
    Outbound,
    /// From the outside towards the router: mapped outside endpoints become inside ones.
    Inbound,
}

/// What the TCP or UDP checksum field of a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L4Checksum {
    /// The finished checksum.
    Complete,
    /// Only the pseudo-header sum, not complemented, for the sender's offload to finish
    /// (`CHECKSUM_PARTIAL`, a `virtio_net_hdr` with `VIRTIO_NET_HDR_F_NEEDS_CSUM`): address
    /// changes update it, port changes must not. ICMP checksums are always complete.
    Partial,
}

/// What to do with a frame once [`Translator::process`] has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    /// Forward it as it was: not the NAT's business.
    Pass,
    /// Forward it in its direction: it was translated.
    Translated,
    /// Send it back the way it came (its MAC addresses are swapped): an inside packet to a
    /// mapped outside endpoint, translated at both ends.
    Hairpin,
    /// Send it back the way it came (its MAC addresses are swapped) untranslated: an inside
    /// packet to the router's outside address that no hairpin translation claims, which the
    /// router's own stack must answer.
    Bounce,
    /// Drop it.
    Drop(DropReason),
}

/// Why the translator dropped a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DropReason {
    /// The filtering behaviour refused an inbound packet to a mapped port.
    Filtered,
    /// An outbound packet from an inside address that cannot be translated: another protocol,
    /// an ICMP message other than echo request or an error about a translated packet, or a
    /// later fragment whose first fragment was not seen.
    Untranslatable,
    /// No outside port was free for a new mapping.
    PortsExhausted,
    /// Not a well-formed IPv4 packet (a truncated header, a transport header cut short).
    Malformed,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Filtered => "filtered",
            DropReason::Untranslatable => "untranslatable",
            DropReason::PortsExhausted => "ports exhausted",
            DropReason::Malformed => "malformed",
        })
    }
}

/// A non-empty range of outside ports, first and last included, none of them 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The default: 1024–60999, below the 61000–65535 that the router keeps for its sockets.
    pub(crate) const DEFAULT: PortRange = PortRange { first: 1024, last: 60999 };

    /// The ports `first..=last`.
    ///
    /// # Errors
    /// [`NatConfigError::PortRange`] when `first > last` or `first` is 0.
    pub(crate) fn new(first: u16, last: u16) -> Result<PortRange, NatConfigError> {
        if first == 0 || first > last {
            return Err(NatConfigError::PortRange { first, last });
        }
        Ok(PortRange { first, last })
    }

    pub(crate) fn first(&self) -> u16 {
        self.first
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn last(&self) -> u16 {
        self.last
    }

    pub(crate) fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// How many ports the range holds (at least 1).
    pub(crate) fn len(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::DEFAULT
    }
}

/// How long a mapping lives without outbound traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// UDP. RFC 4787 REQ-5 asks for at least 2 minutes and recommends 5; default 5 minutes.
    pub(crate) udp: Duration,
    /// TCP once the remote has answered. RFC 5382 REQ-5: at least 2 hours 4 minutes, the
    /// default.
    pub(crate) tcp_established: Duration,
    /// TCP while opening, and after a RST or a FIN in each direction. RFC 5382: 4 minutes,
    /// the default.
    pub(crate) tcp_transitory: Duration,
    /// ICMP echo. RFC 5508 REQ-1: at least 60 seconds, the default.
    pub(crate) icmp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: Duration::from_secs(300),
            tcp_established: Duration::from_secs(7440),
            tcp_transitory: Duration::from_secs(240),
            icmp: Duration::from_secs(60),
        }
    }
}

/// Everything the translator of one NAT needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NatConfig {
    /// The router's address on its outside interface: the source of translated packets.
    pub(crate) outside: Ipv4Addr,
    pub(crate) mapping: Dependence,
    pub(crate) filtering: Dependence,
    /// Whether inside packets to mapped outside endpoints are translated and turned back.
    pub(crate) hairpin: bool,
    /// Whether a new mapping keeps the inside port when it is in range and free.
    pub(crate) port_preservation: bool,
    /// Where outside ports are allocated.
    pub(crate) ports: PortRange,
    pub(crate) timeouts: Timeouts,
    /// The seed of port allocation.
    pub(crate) seed: u64,
}

impl NatConfig {
    /// A NAT at `outside` with these behaviours, hairpinning, port preservation, the default
    /// port range and timeouts, and seed 0.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(outside: Ipv4Addr, mapping: Dependence, filtering: Dependence) -> NatConfig {
        NatConfig {
            outside,
            mapping,
            filtering,
            hairpin: true,
            port_preservation: true,
            ports: PortRange::DEFAULT,
            timeouts: Timeouts::default(),
            seed: 0,
        }
    }
}

/// A configuration the translator cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NatConfigError {
    /// An inverted range, or one that starts at port 0.
    PortRange { first: u16, last: u16 },
}

impl fmt::Display for NatConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatConfigError::PortRange { first, last } if first > last => {
                write!(f, "the port range {first}-{last} is inverted (empty)")
            }
            NatConfigError::PortRange { first, last } => {
                write!(f, "the port range {first}-{last} starts at port 0, which is not a port")
            }
        }
    }
}

impl std::error::Error for NatConfigError {}

/// Nanoseconds of a duration, saturating (a timeout of centuries never overflows).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl From<crate::topology::Mapping> for Dependence {
    fn from(mapping: crate::topology::Mapping) -> Dependence {
        use crate::topology::Mapping;
        match mapping {
            Mapping::EndpointIndependent => Dependence::EndpointIndependent,
            Mapping::AddressDependent => Dependence::AddressDependent,
            Mapping::AddressAndPortDependent => Dependence::AddressAndPortDependent,
        }
    }
}

impl From<crate::topology::Filtering> for Dependence {
    fn from(filtering: crate::topology::Filtering) -> Dependence {
        use crate::topology::Filtering;
        match filtering {
            Filtering::EndpointIndependent => Dependence::EndpointIndependent,
            Filtering::AddressDependent => Dependence::AddressDependent,
            Filtering::AddressAndPortDependent => Dependence::AddressAndPortDependent,
        }
    }
}

impl NatConfig {
    /// The translator's configuration of the NAT `nat` (validated by planning), at `outside`,
    /// allocating ports from `seed`.
    ///
    /// # Errors
    /// [`NatConfigError::PortRange`] for a port range planning would have refused (a NAT
    /// given at runtime is checked here).
    pub(crate) fn of(
        nat: &crate::topology::Nat,
        outside: Ipv4Addr,
        seed: u64,
    ) -> Result<NatConfig, NatConfigError> {
        let (first, last) = nat.ports;
        Ok(NatConfig {
            outside,
            mapping: nat.mapping.into(),
            filtering: nat.filtering.into(),
            hairpin: nat.hairpin,
            port_preservation: nat.port_preservation,
            ports: PortRange::new(first, last)?,
            timeouts: Timeouts { udp: nat.udp_timeout, ..Timeouts::default() },
            seed,
        })
    }
}
