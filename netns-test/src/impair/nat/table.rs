//! The mapping table: which inside endpoint owns which outside port, whom it has sent to,
//! when it expires, and how new outside ports are chosen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::frame::field;
use super::{Dependence, Direction, NatConfig, PortRange, Protocol, Timeouts, nanos};

/// The remote endpoints a mapping remembers at most. Beyond it the one sent to least recently
/// is forgotten (and, with address or address-and-port-dependent filtering, filtered again);
/// it bounds memory when an inside server talks to very many peers.
const MAX_REMOTES: usize = 1024;

/// Random draws before allocation falls back to scanning the range for a free port.
const RANDOM_PROBES: u32 = 32;

/// How often, at most, expired mappings are swept away (lookups check expiry themselves, so
/// this only bounds memory).
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

/// The ChaCha stream of port allocation, apart from the streams a link's decisions use, so
/// that one seed can drive both without the two being correlated.
const ALLOCATION_STREAM: u64 = 0x4e41_5430;

/// What identifies a mapping from the inside: the inside endpoint and as much of the remote
/// as the mapping behaviour depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    protocol: Protocol,
    inside: SocketAddrV4,
    remote_addr: Option<Ipv4Addr>,
    remote_port: Option<u16>,
}

impl Key {
    fn new(protocol: Protocol, inside: SocketAddrV4, remote: SocketAddrV4, mapping: Dependence) -> Key {
        let (remote_addr, remote_port) = match mapping {
            Dependence::EndpointIndependent => (None, None),
            Dependence::AddressDependent => (Some(*remote.ip()), None),
            Dependence::AddressAndPortDependent => (Some(*remote.ip()), Some(remote.port())),
        };
        Key { protocol, inside, remote_addr, remote_port }
    }
}

/// Where a TCP mapping's connection is, for its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TcpPhase {
    /// Opened from the inside, not yet answered.
    Opening,
    /// The remote has answered.
    Established,
    /// A RST, or a FIN in each direction, was seen.
    Closing,
}

struct Mapping {
    key: Key,
    created: u64,
    refreshed: u64,
    /// Every remote endpoint sent to, with the time of the last packet to it.
    remotes: BTreeMap<SocketAddrV4, u64>,
    tcp: TcpPhase,
    fin_out: bool,
    fin_in: bool,
}

impl Mapping {
    fn timeout(&self, timeouts: &Timeouts) -> Duration {
        match (self.key.protocol, self.tcp) {
            (Protocol::Udp, _) => timeouts.udp,
            (Protocol::Icmp, _) => timeouts.icmp,
            (Protocol::Tcp, TcpPhase::Established) => timeouts.tcp_established,
            (Protocol::Tcp, TcpPhase::Opening | TcpPhase::Closing) => timeouts.tcp_transitory,
        }
    }

    fn expired(&self, now: u64, timeouts: &Timeouts) -> bool {
        now >= self.refreshed.saturating_add(nanos(self.timeout(timeouts)))
    }

    fn allows(&self, remote: SocketAddrV4, filtering: Dependence) -> bool {
        match filtering {
            Dependence::EndpointIndependent => true,
            Dependence::AddressDependent => {
                let ip = *remote.ip();
                self.remotes
                    .range(SocketAddrV4::new(ip, 0)..=SocketAddrV4::new(ip, u16::MAX))
                    .next()
                    .is_some()
            }
            Dependence::AddressAndPortDependent => self.remotes.contains_key(&remote),
        }
    }

    fn record_remote(&mut self, remote: SocketAddrV4, now: u64) {
        self.remotes.insert(remote, now);
        if self.remotes.len() > MAX_REMOTES {
            let oldest = self.remotes.iter().min_by_key(|(_, last)| **last).map(|(remote, _)| *remote);
            if let Some(oldest) = oldest {
                self.remotes.remove(&oldest);
            }
        }
    }
}

/// What the table says of an inbound packet to an outside port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// No live mapping holds the port.
    Unmapped,
    /// A mapping holds it, and its filter refuses this remote.
    Filtered,
    /// A mapping holds it and lets this remote in: the inside endpoint.
    Allowed(SocketAddrV4),
}

/// Every mapping of one NAT, and its port allocator.
pub(crate) struct Table {
    by_outside: HashMap<(Protocol, u16), Mapping>,
    by_key: HashMap<Key, u16>,
    /// The outside ports of the mappings the last [`Table::rebind`] forgot: new mappings take
    /// other ports while any is free.
    retired: HashSet<(Protocol, u16)>,
    rng: ChaCha8Rng,
    next_sweep: u64,
}

impl Table {
    pub(crate) fn new(seed: u64) -> Table {
        Table {
            by_outside: HashMap::new(),
            by_key: HashMap::new(),
            retired: HashSet::new(),
            rng: allocator(seed),
            next_sweep: 0,
        }
    }

    /// Restarts port allocation from `seed`.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.rng = allocator(seed);
    }

    /// The outside port of the mapping for a packet from `inside` to `remote`, made if there is
    /// none, refreshed and told of `remote` either way; `None` when no port is free.
    pub(crate) fn outbound(
        &mut self,
        protocol: Protocol,
        inside: SocketAddrV4,
        remote: SocketAddrV4,
        now: u64,
        config: &NatConfig,
    ) -> Option<u16> {
        self.sweep(now, &config.timeouts);
        let key = Key::new(protocol, inside, remote, config.mapping);
        let port = match self.live_port(&key, now, &config.timeouts) {
            Some(port) => port,
            None => {
                let port = self.allocate(protocol, inside.port(), now, config)?;
                let mapping = Mapping {
                    key,
                    created: now,
                    refreshed: now,
                    remotes: BTreeMap::new(),
                    tcp: TcpPhase::Opening,
                    fin_out: false,
                    fin_in: false,
                };
                self.by_outside.insert((protocol, port), mapping);
                self.by_key.insert(key, port);
                port
            }
        };
        let mapping = self.by_outside.get_mut(&(protocol, port)).expect("the mapping was just found or made");
        mapping.refreshed = now;
        mapping.record_remote(remote, now);
        Some(port)
    }

    /// Whether an inbound packet from `remote` to outside port `port` has a mapping that lets
    /// it in under `filtering`. It does not refresh the mapping.
    pub(crate) fn inbound(
        &mut self,
        protocol: Protocol,
        port: u16,
        remote: SocketAddrV4,
        filtering: Dependence,
        now: u64,
        timeouts: &Timeouts,
    ) -> Inbound {
        self.sweep(now, timeouts);
        match self.live_mapping(protocol, port, now, timeouts) {
            None => Inbound::Unmapped,
            Some(mapping) if mapping.allows(remote, filtering) => Inbound::Allowed(mapping.key.inside),
            Some(_) => Inbound::Filtered,
        }
    }

    /// Whether a live mapping holds outside port `port`.
    pub(crate) fn is_mapped(&mut self, protocol: Protocol, port: u16, now: u64, timeouts: &Timeouts) -> bool {
        self.live_mapping(protocol, port, now, timeouts).is_some()
    }

    /// The outside port of the live mapping that a packet from `inside` to `remote` would use,
    /// without making one or refreshing it: for ICMP errors about inbound packets.
    pub(crate) fn find_outbound(
        &mut self,
        protocol: Protocol,
        inside: SocketAddrV4,
        remote: SocketAddrV4,
        now: u64,
        config: &NatConfig,
    ) -> Option<u16> {
        let key = Key::new(protocol, inside, remote, config.mapping);
        self.live_port(&key, now, &config.timeouts)
    }

    /// Follows a TCP mapping's connection through the flags of a segment it carried.
    pub(crate) fn tcp_segment(&mut self, port: u16, flags: u8, direction: Direction) {
        let Some(mapping) = self.by_outside.get_mut(&(Protocol::Tcp, port)) else { return };
        if flags & field::TCP_RST != 0 {
            mapping.tcp = TcpPhase::Closing;
            return;
        }
        match direction {
            Direction::Outbound => {
                // A new connection from a mapping whose last one closed.
                if flags & (field::TCP_SYN | field::TCP_ACK) == field::TCP_SYN
                    && mapping.tcp == TcpPhase::Closing
                {
                    mapping.tcp = TcpPhase::Opening;
                    mapping.fin_out = false;
                    mapping.fin_in = false;
                }
                mapping.fin_out |= flags & field::TCP_FIN != 0;
            }
            Direction::Inbound => {
                if mapping.tcp == TcpPhase::Opening {
                    mapping.tcp = TcpPhase::Established;
                }
                mapping.fin_in |= flags & field::TCP_FIN != 0;
            }
        }
        if mapping.fin_out && mapping.fin_in {
            mapping.tcp = TcpPhase::Closing;
        }
    }

    /// Forgets every mapping, and keeps their outside ports for last, so that every inside
    /// endpoint's next packet gets a new outside port, port preservation or not, while the
    /// range has another free one.
    pub(crate) fn rebind(&mut self) {
        self.retired = self.by_outside.keys().copied().collect();
        self.by_outside.clear();
        self.by_key.clear();
    }

    /// The live mappings, by protocol and outside port.
    pub(crate) fn views(&self, now: u64, config: &NatConfig) -> Vec<MappingView> {
        let mut views: Vec<MappingView> = self
            .by_outside
            .iter()
            .filter(|(_, mapping)| !mapping.expired(now, &config.timeouts))
            .map(|(&(protocol, port), mapping)| MappingView {
                protocol,
                inside: mapping.key.inside,
                outside: SocketAddrV4::new(config.outside, port),
                remotes: mapping.remotes.keys().copied().collect(),
                age: Duration::from_nanos(now.saturating_sub(mapping.created)),
                idle: Duration::from_nanos(now.saturating_sub(mapping.refreshed)),
            })
            .collect();
        views.sort_by_key(|view| (view.protocol, view.outside.port()));
        views
    }

    /// The port of the live mapping `key`, removing it if it has expired.
    fn live_port(&mut self, key: &Key, now: u64, timeouts: &Timeouts) -> Option<u16> {
        let port = *self.by_key.get(key)?;
        self.live_mapping(key.protocol, port, now, timeouts).map(|_| port)
    }

    /// The live mapping of outside port `port`, removing it if it has expired.
    fn live_mapping(
        &mut self,
        protocol: Protocol,
        port: u16,
        now: u64,
        timeouts: &Timeouts,
    ) -> Option<&Mapping> {
        if self.by_outside.get(&(protocol, port))?.expired(now, timeouts) {
            self.remove(protocol, port);
            return None;
        }
        self.by_outside.get(&(protocol, port))
    }

    fn remove(&mut self, protocol: Protocol, port: u16) {
        if let Some(mapping) = self.by_outside.remove(&(protocol, port)) {
            self.by_key.remove(&mapping.key);
        }
    }

    fn sweep(&mut self, now: u64, timeouts: &Timeouts) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.saturating_add(SWEEP_INTERVAL_NS);
        let expired: Vec<(Protocol, u16)> = self
            .by_outside
            .iter()
            .filter(|(_, mapping)| mapping.expired(now, timeouts))
            .map(|(outside, _)| *outside)
            .collect();
        for (protocol, port) in expired {
            self.remove(protocol, port);
        }
    }

    /// A free outside port for a new mapping of `inside_port`, reclaiming it from an expired
    /// mapping if one still holds it.
    fn allocate(
        &mut self,
        protocol: Protocol,
        inside_port: u16,
        now: u64,
        config: &NatConfig,
    ) -> Option<u16> {
        let ports = config.ports;
        let chosen = if config.port_preservation
            && ports.contains(inside_port)
            && self.usable(protocol, inside_port, false, now, config)
        {
            Some(inside_port)
        } else {
            self.pick(protocol, ports, now, config)
        };
        if let Some(port) = chosen {
            self.remove(protocol, port);
        }
        chosen
    }

    /// A free port drawn from the seeded stream: a few random draws, then a scan from a random
    /// start, then the same scan allowing the ports of the mappings a rebind forgot.
    fn pick(&mut self, protocol: Protocol, ports: PortRange, now: u64, config: &NatConfig) -> Option<u16> {
        for _ in 0..RANDOM_PROBES {
            let port = self.draw(ports);
            if self.usable(protocol, port, false, now, config) {
                return Some(port);
            }
        }
        let start = self.draw(ports);
        [false, true].into_iter().find_map(|retired_too| {
            (0..ports.len())
                .map(|i| nth(ports, start, i))
                .find(|&port| self.usable(protocol, port, retired_too, now, config))
        })
    }

    /// Whether `port` may go to a new mapping: no live mapping holds it, and it is not retired
    /// (unless `retired_too`).
    fn usable(&self, protocol: Protocol, port: u16, retired_too: bool, now: u64, config: &NatConfig) -> bool {
        (retired_too || !self.retired.contains(&(protocol, port)))
            && self.by_outside.get(&(protocol, port)).is_none_or(|m| m.expired(now, &config.timeouts))
    }

    /// A port of `ports` drawn uniformly (the modulo bias of a 64-bit draw over at most 65535
    /// values is below 2^-48).
    fn draw(&mut self, ports: PortRange) -> u16 {
        nth(ports, 0, (self.rng.next_u64() % u64::from(ports.len())) as u32)
    }
}

/// The `i`-th port of `ports` counting from `start`, wrapping around.
fn nth(ports: PortRange, start: u16, i: u32) -> u16 {
    let offset = (u32::from(start.wrapping_sub(ports.first())) + i) % ports.len();
    ports.first() + offset as u16
}

fn allocator(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(ALLOCATION_STREAM);
    rng
}

/// A mapping, as a test or a failure report reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MappingView {
    pub(crate) protocol: Protocol,
    /// The inside endpoint (for ICMP, the port is the echo identifier).
    pub(crate) inside: SocketAddrV4,
    /// The outside endpoint it is mapped to.
    pub(crate) outside: SocketAddrV4,
    /// The remote endpoints it has sent to, in address order (for ICMP, port 0).
    pub(crate) remotes: Vec<SocketAddrV4>,
    /// Since the mapping was made.
    pub(crate) age: Duration,
    /// Since its last outbound packet.
    pub(crate) idle: Duration,
}

impl fmt::Display for MappingView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {} with ", self.protocol, self.inside, self.outside)?;
        for (i, remote) in self.remotes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{remote}")?;
        }
        write!(f, " (age {:.1?}, idle {:.1?})", self.age, self.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NatConfig {
        NatConfig::new(
            Ipv4Addr::new(203, 0, 113, 1),
            Dependence::EndpointIndependent,
            Dependence::EndpointIndependent,
        )
    }

    fn inside(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port)
    }

    fn remote(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), port)
    }

    #[test]
    fn nth_wraps_around_the_range() {
        let ports = PortRange::new(10, 14).expect("a range");
        let walk: Vec<u16> = (0..7).map(|i| nth(ports, 13, i)).collect();
        assert_eq!(walk, [13, 14, 10, 11, 12, 13, 14]);
        let all = PortRange::new(1, u16::MAX).expect("a range");
        assert_eq!((nth(all, u16::MAX, 0), nth(all, u16::MAX, 1)), (u16::MAX, 1));
    }

    #[test]
    fn every_port_of_a_small_range_is_used_before_it_runs_out() {
        let mut config = config();
        config.ports = PortRange::new(2000, 2009).expect("a range");
        config.port_preservation = false;
        let mut table = Table::new(1);
        let mut ports: Vec<u16> = (0..10)
            .map(|i| table.outbound(Protocol::Udp, inside(5000 + i), remote(1), 0, &config).expect("a port"))
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, (2000..2010).collect::<Vec<_>>());
        assert_eq!(table.outbound(Protocol::Udp, inside(6000), remote(1), 0, &config), None);
        // Protocols have ports of their own.
        assert!(table.outbound(Protocol::Tcp, inside(6000), remote(1), 0, &config).is_some());
    }

    #[test]
    fn an_expired_mapping_gives_its_port_back() {
        let mut config = config();
        config.ports = PortRange::new(2000, 2000).expect("a range");
        let mut table = Table::new(1);
        assert_eq!(table.outbound(Protocol::Udp, inside(5000), remote(1), 0, &config), Some(2000));
        let timeout = nanos(config.timeouts.udp);
        assert_eq!(table.outbound(Protocol::Udp, inside(5001), remote(1), timeout - 1, &config), None);
        assert_eq!(table.outbound(Protocol::Udp, inside(5001), remote(1), timeout, &config), Some(2000));
        assert_eq!(table.views(timeout, &config).len(), 1);
    }

    #[test]
    fn a_rebind_puts_the_old_ports_last_but_does_not_lose_them() {
        let mut config = config();
        config.ports = PortRange::new(2000, 2001).expect("a range");
        let mut table = Table::new(1);
        assert_eq!(table.outbound(Protocol::Udp, inside(2000), remote(1), 0, &config), Some(2000));
        table.rebind();
        assert_eq!(
            table.outbound(Protocol::Udp, inside(2000), remote(1), 1, &config),
            Some(2001),
            "not preserved"
        );
        table.rebind();
        // 2001 is retired now and 2000 free: preservation applies again.
        assert_eq!(table.outbound(Protocol::Udp, inside(2000), remote(1), 2, &config), Some(2000));
        table.rebind();
        // A one-port range still works after a rebind.
        config.ports = PortRange::new(2000, 2000).expect("a range");
        assert_eq!(table.outbound(Protocol::Udp, inside(2000), remote(1), 3, &config), Some(2000));
    }

    #[test]
    fn remotes_are_bounded_by_forgetting_the_least_recent() {
        let config = config();
        let mut table = Table::new(1);
        for i in 0..=MAX_REMOTES as u64 {
            table.outbound(Protocol::Udp, inside(5000), remote(1 + i as u16), i, &config).expect("a port");
        }
        let views = table.views(MAX_REMOTES as u64, &config);
        assert_eq!(views[0].remotes.len(), MAX_REMOTES);
        assert!(!views[0].remotes.contains(&remote(1)) && views[0].remotes.contains(&remote(2)));
    }
}
