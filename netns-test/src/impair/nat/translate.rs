//! The translator: what each frame is, and how it is rewritten.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::checksum::Delta;
use super::frame::{self, Ipv4, Piece, field, get16, set_addr, set16};
use super::table::{Inbound, Table};
use super::{Dependence, Direction, DropReason, L4Checksum, MappingView, NatConfig, Protocol, Verdict};

/// How long the translation of a fragmented datagram's first fragment is kept for the later
/// ones: the kernel's default reassembly timeout (`net.ipv4.ipfrag_time`).
const FRAGMENT_TIMEOUT_NS: u64 = 30_000_000_000;

/// Fragmented datagrams remembered at most; beyond it the oldest is forgotten.
const MAX_FRAGMENTED: usize = 1024;

/// One NAT: its configuration, mappings, fragment translations and counters.
pub(crate) struct Translator {
    config: NatConfig,
    table: Table,
    fragments: Fragments,
    counters: NatCounters,
}

impl Translator {
    pub(crate) fn new(config: NatConfig) -> Translator {
        Translator {
            config,
            table: Table::new(config.seed),
            fragments: Fragments::default(),
            counters: NatCounters::default(),
        }
    }

    pub(crate) fn config(&self) -> &NatConfig {
        &self.config
    }

    /// Changes the behaviour from the next frame on. A change of mapping behaviour, outside
    /// address or port range forgets every mapping, as [`Translator::rebind`] does (they were
    /// made under rules that no longer hold); other changes keep them, and the new filtering,
    /// timeouts, hairpinning and port preservation apply to them at once. A new seed restarts
    /// port allocation from it.
    pub(crate) fn reconfigure(&mut self, config: NatConfig) {
        let forget = config.mapping != self.config.mapping
            || config.outside != self.config.outside
            || config.ports != self.config.ports;
        if config.seed != self.config.seed {
            self.table.reseed(config.seed);
        }
        self.config = config;
        if forget {
            self.rebind();
        }
    }

    /// Forgets every mapping (the NAT rebinding of QUIC test suites): every inside endpoint's
    /// next packet gets a new outside port, even with port preservation, while the range has
    /// a free port other than those of the forgotten mappings. Inbound packets to the old
    /// ports are no longer translated.
    pub(crate) fn rebind(&mut self) {
        self.table.rebind();
        self.fragments = Fragments::default();
    }

    /// The live mappings at time `now`, by protocol and outside port.
    pub(crate) fn mappings(&self, now: u64) -> Vec<MappingView> {
        self.table.views(now, &self.config)
    }

    pub(crate) fn counters(&self) -> NatCounters {
        self.counters
    }

    /// Decides the fate of `frame` (an Ethernet frame) crossing in `direction` at `now`
    /// (monotonic nanoseconds), rewriting it in place. For [`Verdict::Hairpin`] and
    /// [`Verdict::Bounce`] its MAC addresses are swapped, ready to go back out of the port it
    /// came in by. `l4` says what its TCP or UDP checksum field holds.
    pub(crate) fn process(
        &mut self,
        frame: &mut [u8],
        direction: Direction,
        l4: L4Checksum,
        now: u64,
    ) -> Verdict {
        let verdict = self.decide(frame, direction, l4, now);
        self.counters.count(verdict, direction);
        if matches!(verdict, Verdict::Hairpin | Verdict::Bounce) {
            frame::swap_macs(frame);
        }
        verdict
    }

    fn decide(&mut self, frame: &mut [u8], direction: Direction, l4: L4Checksum, now: u64) -> Verdict {
        if frame::ethertype(frame) != Some(field::ETHERTYPE_IPV4) {
            return Verdict::Pass;
        }
        let Some(ip) = Ipv4::parse(frame, field::ETH_LEN, false) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        match direction {
            Direction::Outbound => self.outbound(frame, &ip, l4, now),
            Direction::Inbound => self.inbound(frame, &ip, l4, now),
        }
    }

    fn outbound(&mut self, frame: &mut [u8], ip: &Ipv4, l4: L4Checksum, now: u64) -> Verdict {
        let outside = self.config.outside;
        if ip.src == outside {
            // The router's own packet. Its ICMP errors may be about a packet translated inbound
            // (a time exceeded while forwarding it inwards), whose embedded copy shows the
            // inside endpoint.
            return match transport(frame, ip, false) {
                Transport::Error => self.outbound_error(frame, ip, now, true),
                _ => Verdict::Pass,
            };
        }
        if ip.piece == Piece::Later {
            return self
                .later_fragment(frame, ip, Direction::Outbound, now)
                .unwrap_or(Verdict::Drop(DropReason::Untranslatable));
        }
        if ip.dst == outside {
            return self.hairpin(frame, ip, l4, now);
        }
        let (protocol, inside, remote, flags) = match transport(frame, ip, false) {
            Transport::Ports { protocol, src, dst, flags } => {
                (protocol, SocketAddrV4::new(ip.src, src), SocketAddrV4::new(ip.dst, dst), flags)
            }
            Transport::EchoRequest { id } => {
                (Protocol::Icmp, SocketAddrV4::new(ip.src, id), SocketAddrV4::new(ip.dst, 0), 0)
            }
            Transport::Error => return self.outbound_error(frame, ip, now, false),
            Transport::Truncated => return Verdict::Drop(DropReason::Malformed),
            Transport::EchoReply { .. } | Transport::OtherIcmp | Transport::Other => {
                return Verdict::Drop(DropReason::Untranslatable);
            }
        };
        let Some(port) = self.table.outbound(protocol, inside, remote, now, &self.config) else {
            return Verdict::Drop(DropReason::PortsExhausted);
        };
        if protocol == Protocol::Tcp {
            self.table.tcp_segment(port, flags, Direction::Outbound);
        }
        self.remember_first(ip, (outside, ip.dst), Verdict::Translated, Direction::Outbound, now);
        rewrite(frame, ip, protocol, End::Source, SocketAddrV4::new(outside, port), l4);
        Verdict::Translated
    }

    /// An inside packet to the outside address: translated at both ends and turned back if a
    /// mapping holds its destination port and hairpinning is on, else meant for the router.
    fn hairpin(&mut self, frame: &mut [u8], ip: &Ipv4, l4: L4Checksum, now: u64) -> Verdict {
        let (protocol, src, dst, flags) = match transport(frame, ip, false) {
            Transport::Ports { protocol, src, dst, flags } => (protocol, src, dst, flags),
            Transport::Truncated => return Verdict::Drop(DropReason::Malformed),
            _ => return Verdict::Bounce,
        };
        let outside = self.config.outside;
        if !self.config.hairpin || !self.table.is_mapped(protocol, dst, now, &self.config.timeouts) {
            return Verdict::Bounce;
        }
        let inside = SocketAddrV4::new(ip.src, src);
        let Some(port) =
            self.table.outbound(protocol, inside, SocketAddrV4::new(outside, dst), now, &self.config)
        else {
            return Verdict::Drop(DropReason::PortsExhausted);
        };
        // Filtered as if it came from outside, from the sender's outside endpoint.
        let from = SocketAddrV4::new(outside, port);
        let target = match self.table.inbound(
            protocol,
            dst,
            from,
            self.config.filtering,
            now,
            &self.config.timeouts,
        ) {
            Inbound::Allowed(target) => target,
            Inbound::Filtered => return Verdict::Drop(DropReason::Filtered),
            Inbound::Unmapped => return Verdict::Bounce,
        };
        if protocol == Protocol::Tcp {
            self.table.tcp_segment(port, flags, Direction::Outbound);
            self.table.tcp_segment(dst, flags, Direction::Inbound);
        }
        self.remember_first(ip, (outside, *target.ip()), Verdict::Hairpin, Direction::Outbound, now);
        rewrite(frame, ip, protocol, End::Source, from, l4);
        rewrite(frame, ip, protocol, End::Destination, target, l4);
        Verdict::Hairpin
    }

    fn inbound(&mut self, frame: &mut [u8], ip: &Ipv4, l4: L4Checksum, now: u64) -> Verdict {
        if ip.dst != self.config.outside {
            return Verdict::Pass;
        }
        if ip.piece == Piece::Later {
            return self.later_fragment(frame, ip, Direction::Inbound, now).unwrap_or(Verdict::Pass);
        }
        let (protocol, port, remote, flags) = match transport(frame, ip, false) {
            Transport::Ports { protocol, src, dst, flags } => {
                (protocol, dst, SocketAddrV4::new(ip.src, src), flags)
            }
            Transport::EchoReply { id } => (Protocol::Icmp, id, SocketAddrV4::new(ip.src, 0), 0),
            Transport::Error => return self.inbound_error(frame, ip, now),
            Transport::Truncated => return Verdict::Drop(DropReason::Malformed),
            // Echo requests and everything else are for the router itself.
            Transport::EchoRequest { .. } | Transport::OtherIcmp | Transport::Other => return Verdict::Pass,
        };
        let inside = match self.table.inbound(
            protocol,
            port,
            remote,
            self.config.filtering,
            now,
            &self.config.timeouts,
        ) {
            Inbound::Allowed(inside) => inside,
            Inbound::Filtered => return Verdict::Drop(DropReason::Filtered),
            Inbound::Unmapped => return Verdict::Pass,
        };
        if protocol == Protocol::Tcp {
            self.table.tcp_segment(port, flags, Direction::Inbound);
        }
        self.remember_first(ip, (ip.src, *inside.ip()), Verdict::Translated, Direction::Inbound, now);
        rewrite(frame, ip, protocol, End::Destination, inside, l4);
        Verdict::Translated
    }

    /// An ICMP error arriving from outside about a packet that left through the NAT: the
    /// embedded packet's source is a mapped outside endpoint, and its destination must be one
    /// that mapping sent to.
    fn inbound_error(&mut self, frame: &mut [u8], ip: &Ipv4, now: u64) -> Verdict {
        let Some(inner) = embedded(frame, ip) else { return Verdict::Drop(DropReason::Malformed) };
        if inner.src != self.config.outside || inner.piece == Piece::Later {
            return Verdict::Pass;
        }
        let (protocol, port, remote) = match transport(frame, &inner, true) {
            Transport::Ports { protocol, src, dst, .. } => (protocol, src, SocketAddrV4::new(inner.dst, dst)),
            Transport::EchoRequest { id } => (Protocol::Icmp, id, SocketAddrV4::new(inner.dst, 0)),
            _ => return Verdict::Pass,
        };
        let timeouts = self.config.timeouts;
        match self.table.inbound(protocol, port, remote, Dependence::AddressAndPortDependent, now, &timeouts)
        {
            Inbound::Allowed(inside) => {
                rewrite_error(
                    frame,
                    ip,
                    &inner,
                    protocol,
                    End::Destination,
                    *inside.ip(),
                    End::Source,
                    inside,
                );
                Verdict::Translated
            }
            Inbound::Filtered => Verdict::Drop(DropReason::Filtered),
            Inbound::Unmapped => Verdict::Pass,
        }
    }

    /// An ICMP error leaving for the outside about a packet the NAT translated inbound: the
    /// embedded packet's destination is an inside endpoint. `from_router`: the router sent it
    /// (its source is already the outside address), and if it is about anything else it is
    /// the router's own business.
    fn outbound_error(&mut self, frame: &mut [u8], ip: &Ipv4, now: u64, from_router: bool) -> Verdict {
        let refuse = |reason| if from_router { Verdict::Pass } else { Verdict::Drop(reason) };
        let Some(inner) = embedded(frame, ip) else { return refuse(DropReason::Malformed) };
        if inner.piece == Piece::Later {
            return refuse(DropReason::Untranslatable);
        }
        let (protocol, inside, remote) = match transport(frame, &inner, true) {
            Transport::Ports { protocol, src, dst, .. } => {
                (protocol, SocketAddrV4::new(inner.dst, dst), SocketAddrV4::new(inner.src, src))
            }
            Transport::EchoReply { id } => {
                (Protocol::Icmp, SocketAddrV4::new(inner.dst, id), SocketAddrV4::new(inner.src, 0))
            }
            _ => return refuse(DropReason::Untranslatable),
        };
        let Some(port) = self.table.find_outbound(protocol, inside, remote, now, &self.config) else {
            return refuse(DropReason::Untranslatable);
        };
        let outside = self.config.outside;
        rewrite_error(
            frame,
            ip,
            &inner,
            protocol,
            End::Source,
            outside,
            End::Destination,
            SocketAddrV4::new(outside, port),
        );
        Verdict::Translated
    }

    /// A fragment after the first: the addresses its first fragment got, if it was seen.
    fn later_fragment(
        &mut self,
        frame: &mut [u8],
        ip: &Ipv4,
        direction: Direction,
        now: u64,
    ) -> Option<Verdict> {
        let key = FragmentKey::of(ip, direction);
        let remembered = self.fragments.recall(&key, now)?;
        let mut delta = Delta::default();
        delta.addr(set_addr(frame, ip.at + field::IP_SRC, remembered.src), remembered.src);
        delta.addr(set_addr(frame, ip.at + field::IP_DST, remembered.dst), remembered.dst);
        update_checksum(frame, ip.at + field::IP_CHECKSUM, delta);
        Some(remembered.verdict)
    }

    /// Remembers the translation of a first fragment for the fragments that follow it.
    fn remember_first(
        &mut self,
        ip: &Ipv4,
        (src, dst): (Ipv4Addr, Ipv4Addr),
        verdict: Verdict,
        direction: Direction,
        now: u64,
    ) {
        if ip.piece == Piece::First {
            self.fragments
                .remember(FragmentKey::of(ip, direction), Remembered { src, dst, verdict, at: now });
        }
    }
}

/// What a packet's transport header says, as far as the translator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// UDP or TCP (`flags`: TCP's, or 0).
    Ports {
        protocol: Protocol,
        src: u16,
        dst: u16,
        flags: u8,
    },
    EchoRequest {
        id: u16,
    },
    EchoReply {
        id: u16,
    },
    /// Destination unreachable, time exceeded or parameter problem.
    Error,
    OtherIcmp,
    /// Another protocol.
    Other,
    /// Shorter than its header.
    Truncated,
}

/// The transport header of the packet at `ip`. An `embedded` packet (the copy in an ICMP
/// error) need only have its first 8 bytes.
fn transport(bytes: &[u8], ip: &Ipv4, embedded: bool) -> Transport {
    let header = &bytes[ip.transport..ip.end];
    let need = match Protocol::from_number(ip.protocol) {
        None => return Transport::Other,
        Some(Protocol::Tcp) if !embedded => field::TCP_MIN_LEN,
        Some(Protocol::Udp | Protocol::Tcp) => field::UDP_LEN,
        Some(Protocol::Icmp) => field::ICMP_MIN_LEN,
    };
    if header.len() < need {
        return Transport::Truncated;
    }
    match ip.protocol {
        field::PROTO_ICMP => {
            let id = get16(header, field::ICMP_ECHO_ID);
            match header[field::ICMP_TYPE] {
                field::ICMP_ECHO_REQUEST => Transport::EchoRequest { id },
                field::ICMP_ECHO_REPLY => Transport::EchoReply { id },
                field::ICMP_UNREACHABLE | field::ICMP_TIME_EXCEEDED | field::ICMP_PARAMETER_PROBLEM => {
                    Transport::Error
                }
                _ => Transport::OtherIcmp,
            }
        }
        protocol => Transport::Ports {
            protocol: if protocol == field::PROTO_TCP { Protocol::Tcp } else { Protocol::Udp },
            src: get16(header, field::SRC_PORT),
            dst: get16(header, field::DST_PORT),
            flags: if protocol == field::PROTO_TCP && !embedded { header[field::TCP_FLAGS] } else { 0 },
        },
    }
}

/// The packet an ICMP error at `ip` embeds, if it holds an IPv4 header and 8 bytes of
/// transport header.
fn embedded(bytes: &[u8], ip: &Ipv4) -> Option<Ipv4> {
    let inner = Ipv4::parse(&bytes[..ip.end], ip.transport + field::ICMP_ERROR_PAYLOAD, true)?;
    (inner.transport_len() >= field::EMBEDDED_TRANSPORT_LEN).then_some(inner)
}

/// Which end of a packet a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Source,
    Destination,
}

impl End {
    fn addr_at(self, ip: &Ipv4) -> usize {
        ip.at + if self == End::Source { field::IP_SRC } else { field::IP_DST }
    }

    /// Where the port of this end is: a UDP or TCP port, or the echo identifier of ICMP.
    fn port_at(self, ip: &Ipv4, protocol: Protocol) -> usize {
        ip.transport
            + match (protocol, self) {
                (Protocol::Icmp, _) => field::ICMP_ECHO_ID,
                (_, End::Source) => field::SRC_PORT,
                (_, End::Destination) => field::DST_PORT,
            }
    }
}

/// Where the transport checksum of a packet is, if the buffer holds it.
fn transport_checksum_at(ip: &Ipv4, protocol: Protocol) -> Option<usize> {
    let offset = match protocol {
        Protocol::Udp => field::UDP_CHECKSUM,
        Protocol::Tcp => field::TCP_CHECKSUM,
        Protocol::Icmp => field::ICMP_CHECKSUM,
    };
    (ip.transport_len() >= offset + 2).then_some(ip.transport + offset)
}

/// Rewrites one end of the packet at `ip` to `to`, with its IPv4 and transport checksums.
fn rewrite(frame: &mut [u8], ip: &Ipv4, protocol: Protocol, end: End, to: SocketAddrV4, l4: L4Checksum) {
    let mut header = Delta::default();
    header.addr(set_addr(frame, end.addr_at(ip), *to.ip()), *to.ip());
    update_checksum(frame, ip.at + field::IP_CHECKSUM, header);
    let mut port = Delta::default();
    port.word(set16(frame, end.port_at(ip, protocol), to.port()), to.port());
    let Some(at) = transport_checksum_at(ip, protocol) else { return };
    match (protocol, l4) {
        // ICMP has no pseudo-header and is never offloaded.
        (Protocol::Icmp, _) => {
            update_checksum(frame, at, port);
        }
        (_, L4Checksum::Partial) => {
            // The pseudo-header sum: addresses are in it, ports are not.
            set16(frame, at, header.apply_to_sum(get16(frame, at)));
        }
        (_, L4Checksum::Complete) => {
            header.add(port);
            update_transport_checksum(frame, at, protocol, header);
        }
    }
}

/// Rewrites an ICMP error at `ip`: the outer `outer_end` address to `outer`, and the embedded
/// packet's `inner_end` address and port to `inner`, with the outer IPv4 checksum, the ICMP
/// checksum, and the embedded IPv4 and transport checksums (where the copy holds them).
#[allow(clippy::too_many_arguments)]
fn rewrite_error(
    frame: &mut [u8],
    ip: &Ipv4,
    embedded: &Ipv4,
    protocol: Protocol,
    outer_end: End,
    outer: Ipv4Addr,
    inner_end: End,
    inner: SocketAddrV4,
) {
    let mut outer_header = Delta::default();
    outer_header.addr(set_addr(frame, outer_end.addr_at(ip), outer), outer);
    update_checksum(frame, ip.at + field::IP_CHECKSUM, outer_header);

    // Every word changed inside the ICMP message, for its checksum.
    let mut icmp = Delta::default();
    let mut inner_header = Delta::default();
    let old_addr = set_addr(frame, inner_end.addr_at(embedded), *inner.ip());
    inner_header.addr(old_addr, *inner.ip());
    icmp.add(inner_header);
    icmp.add(update_checksum(frame, embedded.at + field::IP_CHECKSUM, inner_header));
    let mut port = Delta::default();
    port.word(set16(frame, inner_end.port_at(embedded, protocol), inner.port()), inner.port());
    icmp.add(port);
    if let Some(at) = transport_checksum_at(embedded, protocol) {
        let mut transport = port;
        if protocol != Protocol::Icmp {
            transport.add(inner_header);
        }
        icmp.add(update_transport_checksum(frame, at, protocol, transport));
    }
    update_checksum(frame, ip.transport + field::ICMP_CHECKSUM, icmp);
}

/// Applies `delta` to the checksum at `at`, returning the change of the checksum word itself
/// (for a checksum that covers this one).
fn update_checksum(frame: &mut [u8], at: usize, delta: Delta) -> Delta {
    let old = get16(frame, at);
    let new = delta.apply(old);
    set16(frame, at, new);
    let mut change = Delta::default();
    change.word(old, new);
    change
}

/// [`update_checksum`] for a transport checksum: a UDP checksum of 0 means "none" and stays
/// 0, and a computed 0 is sent as 0xffff (RFC 768).
fn update_transport_checksum(frame: &mut [u8], at: usize, protocol: Protocol, delta: Delta) -> Delta {
    let old = get16(frame, at);
    if protocol == Protocol::Udp && old == 0 {
        return Delta::default();
    }
    let mut new = delta.apply(old);
    if protocol == Protocol::Udp && new == 0 {
        new = 0xffff;
    }
    set16(frame, at, new);
    let mut change = Delta::default();
    change.word(old, new);
    change
}

/// What identifies the fragments of one datagram, as they arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragmentKey {
    direction: Direction,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

impl FragmentKey {
    fn of(ip: &Ipv4, direction: Direction) -> FragmentKey {
        FragmentKey { direction, src: ip.src, dst: ip.dst, protocol: ip.protocol, ident: ip.ident }
    }
}

/// The addresses a first fragment was given, and its verdict.
#[derive(Clone, Copy, Debug)]
struct Remembered {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    verdict: Verdict,
    at: u64,
}

/// The translations of first fragments, oldest first.
#[derive(Default)]
struct Fragments {
    entries: HashMap<FragmentKey, Remembered>,
    order: VecDeque<(FragmentKey, u64)>,
}

impl Fragments {
    fn remember(&mut self, key: FragmentKey, remembered: Remembered) {
        self.entries.insert(key, remembered);
        self.order.push_back((key, remembered.at));
        while self.order.len() > MAX_FRAGMENTED {
            self.forget_oldest();
        }
    }

    fn recall(&mut self, key: &FragmentKey, now: u64) -> Option<Remembered> {
        while self.order.front().is_some_and(|(_, at)| now >= at.saturating_add(FRAGMENT_TIMEOUT_NS)) {
            self.forget_oldest();
        }
        self.entries.get(key).copied()
    }

    fn forget_oldest(&mut self) {
        if let Some((key, at)) = self.order.pop_front() {
            // A key remembered again since is not forgotten with its older entry.
            if self.entries.get(&key).is_some_and(|entry| entry.at == at) {
                self.entries.remove(&key);
            }
        }
    }
}

/// What a translator did with the frames it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NatCounters {
    /// Outbound frames translated.
    pub(crate) translated_out: u64,
    /// Inbound frames translated.
    pub(crate) translated_in: u64,
    /// Inside frames translated at both ends and turned back.
    pub(crate) hairpinned: u64,
    /// Inside frames to the outside address turned back untouched, for the router.
    pub(crate) bounced: u64,
    /// Frames passed untouched.
    pub(crate) passed: u64,
    /// Inbound frames the filter refused.
    pub(crate) filtered: u64,
    /// Outbound frames that could not be translated.
    pub(crate) untranslatable: u64,
    /// Outbound frames that found no free outside port.
    pub(crate) exhausted: u64,
    /// Malformed frames.
    pub(crate) malformed: u64,
}

impl NatCounters {
    fn count(&mut self, verdict: Verdict, direction: Direction) {
        let counter = match (verdict, direction) {
            (Verdict::Pass, _) => &mut self.passed,
            (Verdict::Translated, Direction::Outbound) => &mut self.translated_out,
            (Verdict::Translated, Direction::Inbound) => &mut self.translated_in,
            (Verdict::Hairpin, _) => &mut self.hairpinned,
            (Verdict::Bounce, _) => &mut self.bounced,
            (Verdict::Drop(DropReason::Filtered), _) => &mut self.filtered,
            (Verdict::Drop(DropReason::Untranslatable), _) => &mut self.untranslatable,
            (Verdict::Drop(DropReason::PortsExhausted), _) => &mut self.exhausted,
            (Verdict::Drop(DropReason::Malformed), _) => &mut self.malformed,
        };
        *counter += 1;
    }
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
            self.exhausted,
            self.malformed
        )
    }
}

impl fmt::Debug for Translator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translator").field("config", &self.config).field("counters", &self.counters).finish()
    }
}
