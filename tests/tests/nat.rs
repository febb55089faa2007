//! NAT routers (issue 10): the behaviour of every mapping × filtering combination, classified
//! from the inside as RFC 5780 does it (UDP reflectors on two outside addresses and two
//! ports), with TCP and ICMP echo through each; port preservation; hairpinning; ICMP errors
//! (fragmentation needed, time exceeded) back through the NAT; seeded ports; the runtime
//! handle; and bad input.
//!
//! Negative results never wait for a timeout: after a probe that the NAT may filter, a
//! control datagram that it always lets in follows on the same path, and whichever arrives
//! first says whether the probe crossed; where no such path exists (hairpinning), the NAT's
//! counters say what it did with the probe.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use netns_test::nat::MappingProtocol;
use netns_test::topology::{Filtering, Mapping, Nat, TopologyErrorKind};
use netns_test::{Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::eventually;

/// The reflectors' two addresses and two ports.
const A1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const A2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
const P1: u16 = 3478;
const P2: u16 = 3479;
/// The NAT's outside address.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const WAIT: Duration = Duration::from_secs(10);

/// The inside packets to the outside address a NAT has dealt with: hairpinned, filtered
/// while hairpinning, or turned back to the router.
fn turned(counters: &netns_test::nat::NatCounters) -> u64 {
    counters.hairpinned + counters.bounced + counters.filtered
}

/// client — home (the NAT) — isp — server, the server holding both reflector addresses.
fn home(nat: Nat) -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("home")
        .router("isp")
        .host("server")
        .link(Link::new("client", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
        .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
        .link(
            Link::new("isp", "server")
                .addrs("198.51.100.1/24", "198.51.100.2/24")
                .addr("server", "198.51.100.3/24"),
        )
        .nat("home", nat)
        .auto_routes()
        .random_seed(4787)
}

/// UDP reflectors in the server: `[address][port]`, A1/A2 × P1/P2.
struct Reflectors([[UdpSocket; 2]; 2]);

impl Reflectors {
    fn bind(net: &Network) -> Reflectors {
        net.node("server").run(|| {
            let bind = |addr: Ipv4Addr, port: u16| {
                let socket = UdpSocket::bind((addr, port)).expect("binding a reflector");
                socket.set_read_timeout(Some(WAIT)).unwrap();
                socket
            };
            Reflectors([[bind(A1, P1), bind(A1, P2)], [bind(A2, P1), bind(A2, P2)]])
        })
    }

    fn at(&self, addr: usize, port: usize) -> &UdpSocket {
        &self.0[addr][port]
    }

    /// The source the reflector at `(addr, port)` sees a datagram from: the mapping.
    fn observed(&self, addr: usize, port: usize) -> SocketAddrV4 {
        let mut buffer = [0u8; 64];
        let (_, from) = self.at(addr, port).recv_from(&mut buffer).expect("the reflector receives");
        match from {
            SocketAddr::V4(from) => from,
            SocketAddr::V6(from) => panic!("an IPv6 source {from}"),
        }
    }
}

fn reflector(addr: usize, port: usize) -> SocketAddrV4 {
    SocketAddrV4::new([A1, A2][addr], [P1, P2][port])
}

/// A UDP socket of the client (the local node) at `port`.
fn client_socket(port: u16) -> UdpSocket {
    let socket = UdpSocket::bind((CLIENT, port)).expect("binding a client socket");
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

/// The first datagram `socket` receives.
fn first(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buffer = [0u8; 64];
    let (len, from) = socket.recv_from(&mut buffer).expect("a datagram arrives");
    (String::from_utf8_lossy(&buffer[..len]).into_owned(), from)
}

/// The mapping behaviour, RFC 5780 §4.3: one socket, three destinations.
fn classify_mapping(reflectors: &Reflectors, port: u16) -> (Mapping, SocketAddrV4) {
    let socket = client_socket(port);
    socket.send_to(b"m", reflector(0, 0)).unwrap();
    let first = reflectors.observed(0, 0);
    socket.send_to(b"m", reflector(0, 1)).unwrap();
    let other_port = reflectors.observed(0, 1);
    socket.send_to(b"m", reflector(1, 0)).unwrap();
    let other_addr = reflectors.observed(1, 0);
    assert_eq!(*first.ip(), OUTSIDE, "the NAT's outside address is the source");
    let mapping = if first != other_port {
        Mapping::AddressAndPortDependent
    } else if first != other_addr {
        Mapping::AddressDependent
    } else {
        Mapping::EndpointIndependent
    };
    (mapping, first)
}

/// The filtering behaviour, RFC 5780 §4.4: a mapping made towards A1:P1 only, then a probe
/// from another address and port, then one from A1's other port; each followed by a control
/// from A1:P1, which the NAT always lets in.
fn classify_filtering(reflectors: &Reflectors, port: u16) -> Filtering {
    let socket = client_socket(port);
    socket.send_to(b"f", reflector(0, 0)).unwrap();
    let mapped = reflectors.observed(0, 0);
    let crosses = |addr: usize, port: usize| {
        reflectors.at(addr, port).send_to(b"probe", mapped).unwrap();
        reflectors.at(0, 0).send_to(b"control", mapped).unwrap();
        let (text, _) = first(&socket);
        if text == "probe" {
            assert_eq!(first(&socket).0, "control");
            true
        } else {
            false
        }
    };
    if crosses(1, 1) {
        Filtering::EndpointIndependent
    } else if crosses(0, 1) {
        Filtering::AddressDependent
    } else {
        Filtering::AddressAndPortDependent
    }
}

/// A TCP connection from the client to the server through the NAT, seen from the server as
/// coming from the outside address; and ICMP echo.
fn tcp_and_ping_cross(net: &Network) {
    let listener = net.node("server").run(|| TcpListener::bind((A1, 8080)).unwrap());
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((A1, 8080)), WAIT).expect("TCP connects");
    let (mut accepted, from) = listener.accept().unwrap();
    assert_eq!(from.ip(), OUTSIDE, "the server sees the NAT's outside address");
    use std::io::{Read, Write};
    stream.write_all(b"hello").unwrap();
    let mut buffer = [0u8; 5];
    accepted.read_exact(&mut buffer).unwrap();
    accepted.write_all(b"world").unwrap();
    stream.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"world");
    let ping =
        net.local().ping(A1.to_string().as_str()).count(3).interval(Duration::from_millis(20)).run().unwrap();
    assert_eq!(ping.received(), 3, "{ping}");
    let mappings = net.nat("home").unwrap().mappings().unwrap();
    assert!(
        mappings.iter().any(|m| m.protocol == MappingProtocol::Tcp && *m.inside.ip() == CLIENT),
        "{mappings:?}"
    );
    assert!(mappings.iter().any(|m| m.protocol == MappingProtocol::Icmp), "{mappings:?}");
}

/// Classifies the NAT and checks TCP and ICMP echo across it.
fn classifies_as(net: &Network, mapping: Mapping, filtering: Filtering) {
    let reflectors = Reflectors::bind(net);
    let (found, first) = classify_mapping(&reflectors, 40000);
    assert_eq!(found, mapping, "mapping behaviour");
    assert_eq!(first.port(), 40000, "the inside port is preserved");
    assert_eq!(classify_filtering(&reflectors, 40001), filtering, "filtering behaviour");
    tcp_and_ping_cross(net);
}

macro_rules! combination {
    ($name:ident, $mapping:ident, $filtering:ident) => {
        mod $name {
            use super::*;

            fn topology() -> TopologyBuilder {
                home(Nat::new(Mapping::$mapping, Filtering::$filtering))
            }

            #[netns_test(topology = topology)]
            fn classifies_as_configured(net: &Network) {
                classifies_as(net, Mapping::$mapping, Filtering::$filtering);
            }
        }
    };
}

combination!(eim_eif, EndpointIndependent, EndpointIndependent);
combination!(eim_adf, EndpointIndependent, AddressDependent);
combination!(eim_apdf, EndpointIndependent, AddressAndPortDependent);
combination!(adm_eif, AddressDependent, EndpointIndependent);
combination!(adm_adf, AddressDependent, AddressDependent);
combination!(adm_apdf, AddressDependent, AddressAndPortDependent);
combination!(apdm_eif, AddressAndPortDependent, EndpointIndependent);
combination!(apdm_adf, AddressAndPortDependent, AddressDependent);
combination!(apdm_apdf, AddressAndPortDependent, AddressAndPortDependent);

fn no_port_preservation() -> TopologyBuilder {
    home(Nat::port_restricted().port_preservation(false))
}

#[netns_test(topology = no_port_preservation)]
fn without_port_preservation_the_outside_port_is_drawn(net: &Network) {
    let reflectors = Reflectors::bind(net);
    let (mapping, first) = classify_mapping(&reflectors, 40000);
    assert_eq!(mapping, Mapping::EndpointIndependent);
    assert_ne!(first.port(), 40000, "the port was drawn, not kept");
    assert!((1024..=60999).contains(&first.port()), "{first}");
}

/// Two inside sockets reach each other through the NAT's outside address: each first sends
/// to the reflector (its mapping), `a` then opens its filter towards `b`'s mapping, and `b`
/// sends to `a`'s mapping. Returns whether the NAT hairpinned it (and `a` got it from `b`'s
/// mapping) rather than turning it back to the router's own stack (and `a` got nothing).
fn hairpins(net: &Network) -> bool {
    let reflectors = Reflectors::bind(net);
    let (a, b) = (client_socket(41000), client_socket(41001));
    a.send_to(b"a", reflector(0, 0)).unwrap();
    let a_out = reflectors.observed(0, 0);
    b.send_to(b"b", reflector(0, 0)).unwrap();
    let b_out = reflectors.observed(0, 0);
    let home = net.nat("home").unwrap();
    // `a` sends to `b`'s mapping: with hairpinning, its own filter now admits `b`'s mapping
    // (`b`'s filter drops this one).
    let before = home.counters();
    a.send_to(b"open", b_out).unwrap();
    assert!(eventually(WAIT, || turned(&home.counters()) > turned(&before)), "the NAT saw `open`");
    let before = home.counters();
    b.send_to(b"hairpin", a_out).unwrap();
    assert!(eventually(WAIT, || turned(&home.counters()) > turned(&before)), "the NAT saw `hairpin`");
    let after = home.counters();
    if after.hairpinned > before.hairpinned {
        let (text, from) = first(&a);
        assert_eq!((text.as_str(), from), ("hairpin", SocketAddr::V4(b_out)), "from b's mapping");
        return true;
    }
    assert_eq!(after.bounced, before.bounced + 1, "{after}");
    a.set_nonblocking(true).unwrap();
    assert!(a.recv_from(&mut [0u8; 16]).is_err(), "nothing reached `a`");
    false
}

fn hairpinning() -> TopologyBuilder {
    home(Nat::port_restricted())
}

fn no_hairpinning() -> TopologyBuilder {
    home(Nat::port_restricted().hairpin(false))
}

#[netns_test(topology = hairpinning)]
fn a_hairpinning_nat_turns_inside_packets_to_its_outside_address_back(net: &Network) {
    assert!(hairpins(net));
}

#[netns_test(topology = no_hairpinning)]
fn without_hairpinning_they_reach_the_router_itself(net: &Network) {
    assert!(!hairpins(net));
    assert_eq!(net.nat("home").unwrap().counters().hairpinned, 0);
}

/// The far link's MTU is 1280: a DF datagram above it gets "fragmentation needed" from `isp`.
fn small_far_mtu() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("home")
        .router("isp")
        .host("server")
        .link(Link::new("client", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
        .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
        .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24").mtu(1280))
        .nat("home", Nat::symmetric())
        .auto_routes()
}

#[netns_test(topology = small_far_mtu)]
fn fragmentation_needed_crosses_the_nat_back_to_the_sender(net: &Network) {
    use netns_test::ping::{IcmpErrorKind, ProbeError};
    let ping = net.local().ping("198.51.100.2").size(1400).dont_fragment(true).count(1).run().unwrap();
    let Some(ProbeError::Icmp(error)) = ping.probes()[0].error() else { panic!("no ICMP error: {ping}") };
    assert_eq!(error.kind(), IcmpErrorKind::FragmentationNeeded, "{error}");
    assert_eq!(error.mtu(), Some(1280), "{error}");
    assert_eq!(error.from(), Ipv4Addr::new(203, 0, 113, 1), "{error}");
}

#[netns_test(topology = small_far_mtu)]
fn traceroute_through_the_nat_shows_the_outside_hops(net: &Network) {
    // ICMP echo probes with growing TTLs (`traceroute -I`): the inside hop, then the hops
    // outside, whose "time exceeded" the NAT translates back, then the server.
    let hop = |ttl: u8| {
        let ping = net.local().ping("198.51.100.2").ttl(ttl).count(1).timeout(WAIT).run().unwrap();
        ping.probes()[0].from().unwrap_or_else(|| panic!("no answer at TTL {ttl}: {ping}"))
    };
    let hops: Vec<String> = (1..=3).map(|ttl| hop(ttl).to_string()).collect();
    assert_eq!(hops, ["192.168.1.1", "203.0.113.1", "198.51.100.2"]);
}

#[netns_test(topology = hairpinning)]
fn rebind_gives_the_next_packet_a_new_outside_port(net: &Network) {
    use netns_test::timeline::EventKind;
    let reflectors = Reflectors::bind(net);
    let socket = client_socket(42000);
    socket.send_to(b"1", reflector(0, 0)).unwrap();
    let before = reflectors.observed(0, 0);
    let home = net.nat("home").unwrap();
    let mappings = home.mappings().unwrap();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0].protocol, MappingProtocol::Udp);
    assert_eq!(mappings[0].inside, SocketAddrV4::new(CLIENT, 42000));
    assert_eq!(mappings[0].outside, before);
    assert_eq!(mappings[0].remotes, [reflector(0, 0)]);
    home.rebind().unwrap();
    assert!(home.mappings().unwrap().is_empty());
    socket.send_to(b"2", reflector(0, 0)).unwrap();
    let after = reflectors.observed(0, 0);
    assert_ne!(after, before, "a new mapping");
    assert_eq!(home.mappings().unwrap()[0].outside, after);
    assert!(net.events().iter().any(|event| event.kind == EventKind::NatRebound && event.subject == "home"));
}

#[netns_test(topology = hairpinning)]
fn set_changes_the_behaviour_mid_test(net: &Network) {
    use netns_test::timeline::EventKind;
    let reflectors = Reflectors::bind(net);
    assert_eq!(classify_filtering(&reflectors, 43000), Filtering::AddressAndPortDependent);
    let home = net.nat("home").unwrap();
    home.set(Nat::full_cone()).unwrap();
    assert_eq!(classify_filtering(&reflectors, 43001), Filtering::EndpointIndependent);
    home.set(Nat::symmetric()).unwrap();
    assert_eq!(classify_mapping(&reflectors, 43002).0, Mapping::AddressAndPortDependent);
    assert_eq!(net.events().iter().filter(|event| event.kind == EventKind::NatSet).count(), 2);
    let (first, last) = (2000, 1000);
    let error = home.set(Nat::symmetric().ports(first..=last)).unwrap_err();
    assert!(matches!(error, netns_test::Error::Nat { .. }), "{error:?}");
    assert!(error.to_string().contains("2000-1000 is inverted"), "{error}");
    let error = home.set(Nat::symmetric().outside("eth0")).unwrap_err();
    assert!(error.to_string().contains("cannot change at runtime"), "{error}");
    let error = net.nat("isp").unwrap_err();
    assert_eq!(error.to_string(), "NAT on `isp`: the topology puts no NAT there; the NATs are on `home`");
}

fn seeded() -> TopologyBuilder {
    home(Nat::symmetric().port_preservation(false))
}

/// Prints the outside ports of three mappings, for `the_same_seed_gives_the_same_ports`.
#[netns_test(topology = seeded)]
#[ignore = "run by the_same_seed_gives_the_same_ports"]
fn prints_outside_ports(net: &Network) {
    let reflectors = Reflectors::bind(net);
    let socket = client_socket(44000);
    let ports: Vec<String> = [(0, 0), (0, 1), (1, 0)]
        .into_iter()
        .map(|(addr, port)| {
            socket.send_to(b"s", reflector(addr, port)).unwrap();
            reflectors.observed(addr, port).port().to_string()
        })
        .collect();
    println!("outside ports: {}", ports.join(" "));
}

#[test]
fn the_same_seed_gives_the_same_ports() {
    let ports = |seed: &str| {
        let outcome = netns_test_tests::run_subject(
            netns_test_tests::subject("prints_outside_ports").env("NETNS_TEST_SEED", seed),
        );
        assert!(outcome.status.success(), "{}", outcome.all());
        let line = outcome.stdout.lines().find_map(|line| line.split_once("outside ports: "));
        line.unwrap_or_else(|| panic!("{}", outcome.all())).1.to_string()
    };
    let first = ports("11");
    assert_eq!(ports("11"), first, "the same seed, the same ports");
    assert_ne!(ports("12"), first, "another seed, other ports");
}

#[test]
fn bad_nats_are_typed_errors_naming_the_item() {
    let kind = |builder: TopologyBuilder| builder.build().unwrap_err().kind;
    let on_host = kind(home(Nat::full_cone()).nat("client", Nat::full_cone()));
    assert_eq!(on_host, TopologyErrorKind::NatOnNonRouter { node: "client".into(), kind: "host".into() });
    let with_switch = home(Nat::full_cone())
        .switch("lan")
        .link(Link::new("lan", "client"))
        .nat("lan", Nat::full_cone())
        .build()
        .unwrap_err();
    assert_eq!(with_switch.to_string(), "a NAT is given to switch `lan`; only a router can be a NAT");
    let twice = kind(home(Nat::full_cone()).nat("home", Nat::symmetric()));
    assert_eq!(twice, TopologyErrorKind::DuplicateNat { router: "home".into() });
    let unknown = home(Nat::full_cone()).nat("nowhere", Nat::symmetric()).build().unwrap_err();
    assert_eq!(unknown.to_string(), "a NAT refers to unknown node `nowhere`");
    let (first, last) = (5000, 4000);
    let inverted = home(Nat::full_cone().ports(first..=last)).build().unwrap_err();
    assert_eq!(
        inverted.to_string(),
        "the NAT on router `home`: the port range 5000-4000 is inverted (empty)"
    );
    let unknown_iface = home(Nat::full_cone().outside("wan")).build().unwrap_err();
    assert_eq!(
        unknown_iface.to_string(),
        "the outside interface of the NAT on router `home` `wan` is no interface of it; name it with \
         `outside` (its interfaces: `eth0`, `eth1`)"
    );
    // A router between two routers, without a default route: which side is outside?
    let ambiguous = Topology::builder()
        .router("a")
        .router("middle")
        .router("b")
        .link(Link::new("a", "middle").addrs("10.0.1.1/24", "10.0.1.2/24"))
        .link(Link::new("middle", "b").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .nat("middle", Nat::symmetric())
        .auto_routes()
        .build()
        .unwrap_err();
    assert!(matches!(ambiguous.kind, TopologyErrorKind::NatOutside { .. }), "{ambiguous:?}");
    assert!(ambiguous.to_string().contains("is ambiguous"), "{ambiguous}");
    assert!(ambiguous.to_string().contains("(its interfaces: `eth0`, `eth1`)"), "{ambiguous}");
}

#[test]
fn an_unknown_preset_in_a_file_names_its_line_and_column() {
    let text = "[nodes]\nlan = \"host\"\nhome = \"router\"\n\n[[links]]\na = \"lan\"\nb = \"home\"\n\n[nat]\nhome = \"cone\"\n";
    let error = Topology::from_toml(text, "home.toml").unwrap_err();
    assert_eq!(
        error.to_string(),
        "home.toml:10:8: unknown NAT preset `cone` for router `home`; the presets are `full-cone`, \
         `restricted-cone`, `port-restricted`, `symmetric`"
    );
    let text = text.replace("home = \"cone\"", "home = { preset = \"full\", hairpin = false }");
    let error = Topology::from_toml(&text, "home.toml").unwrap_err();
    assert!(error.to_string().starts_with("home.toml:10:19: unknown NAT preset `full`"), "{error}");
}

#[test]
fn a_file_and_the_builder_make_the_same_nat() {
    let text = r#"
auto_routes = true
seed = 4787
[nodes]
client = "host"
home = "router"
isp = "router"
server = "host"
[[links]]
a = "client"
b = "home"
addrs = { client = "192.168.1.2/24", home = "192.168.1.1/24" }
[[links]]
a = "home"
b = "isp"
addrs = { home = "203.0.113.2/24", isp = "203.0.113.1/24" }
[[links]]
a = "isp"
b = "server"
addrs = { isp = "198.51.100.1/24", server = ["198.51.100.2/24", "198.51.100.3/24"] }
[nat]
home = { mapping = "address-dependent", filtering = "endpoint-independent", hairpin = false, port_preservation = false, udp_timeout = "30s", outside = "eth1", ports = "2000-2999" }
"#;
    let from_file = Topology::from_toml(text, "home.toml").unwrap();
    let nat = Nat::new(Mapping::AddressDependent, Filtering::EndpointIndependent)
        .hairpin(false)
        .port_preservation(false)
        .udp_timeout(Duration::from_secs(30))
        .outside("eth1")
        .ports(2000..=2999);
    assert_eq!(from_file, home(nat).build().unwrap());
}

// README begin: nat
fn behind_a_home_nat() -> TopologyBuilder {
    Topology::builder()
        .host("laptop")
        .router("home")
        .router("isp")
        .host("server")
        .link(Link::new("laptop", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
        .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
        .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24"))
        .nat("home", Nat::port_restricted()) // outside: the interface of home's default route
        .auto_routes() // nothing outside routes to 192.168.1.0/24; the laptop defaults to home
}

#[netns_test(topology = behind_a_home_nat)]
fn the_server_sees_the_nat(net: &Network) -> Result<(), Box<dyn std::error::Error>> {
    let server = net.node("server").run(|| UdpSocket::bind("198.51.100.2:3478"))?;
    let laptop = UdpSocket::bind("192.168.1.2:5000")?;
    laptop.send_to(b"hello", "198.51.100.2:3478")?;
    let (_, seen) = server.recv_from(&mut [0; 16])?;
    assert_eq!(seen.to_string(), "203.0.113.2:5000"); // the inside port is preserved
    let home = net.nat("home")?;
    assert_eq!(home.mappings()?[0].outside.to_string(), "203.0.113.2:5000");
    home.rebind()?; // forget every mapping: the next packet gets a new outside port
    laptop.send_to(b"again", "198.51.100.2:3478")?;
    let (_, seen) = server.recv_from(&mut [0; 16])?;
    assert_ne!(seen.port(), 5000);
    Ok(())
}
// README end

#[test]
fn the_readme_shows_the_nat_example_tested_here() {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let region = include_str!("nat.rs").split("// README begin: nat\n").nth(1).unwrap();
    let region = region.split("// README end").next().unwrap();
    assert!(squeeze(include_str!("../../README.md")).contains(&squeeze(region)), "README: {region}");
}

/// One UDP traceroute probe from the client to `A1` with `ttl`: who answered (the
/// `SO_EE_OFFENDER` of the ICMP error the socket queues with `IP_RECVERR`), and whether it
/// said "port unreachable" (the destination) rather than "time exceeded".
fn udp_probe(ttl: u32) -> (Ipv4Addr, bool) {
    use std::os::fd::AsRawFd;
    let socket = UdpSocket::bind((CLIENT, 0)).unwrap();
    socket.set_ttl(ttl).unwrap();
    let fd = socket.as_raw_fd();
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a valid pointer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "IP_RECVERR");
    socket.send_to(b"probe", (A1, 33434)).unwrap();
    let mut poll = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: polls one valid pollfd; POLLERR is reported whatever `events` asks.
    let ready = unsafe { libc::poll(&mut poll, 1, WAIT.as_millis() as i32) };
    assert_eq!(ready, 1, "an ICMP error came back at TTL {ttl}");
    let mut data = [0u8; 64];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: msghdr is plain data; the pointers set below stay valid during recvmsg.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of_val(&control);
    // SAFETY: `message` describes valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut message, libc::MSG_ERRQUEUE) };
    assert!(n >= 0, "recvmsg(MSG_ERRQUEUE): {}", std::io::Error::last_os_error());
    // SAFETY: walks the control messages the kernel wrote into `message`'s buffer.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_RECVERR {
                let error = libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>();
                let offender = error.add(1).cast::<libc::sockaddr_in>().read_unaligned();
                let from = Ipv4Addr::from(u32::from_be(offender.sin_addr.s_addr));
                let unreachable = (*error).ee_type == 3 && (*error).ee_code == 3;
                return (from, unreachable);
            }
            cmsg = libc::CMSG_NXTHDR(&message, cmsg);
        }
    }
    panic!("no IP_RECVERR message at TTL {ttl}");
}

#[netns_test(topology = hairpinning)]
fn a_udp_traceroute_through_the_nat_shows_the_outside_hops(net: &Network) {
    let hops: Vec<(String, bool)> =
        (1..=3).map(udp_probe).map(|(from, end)| (from.to_string(), end)).collect();
    assert_eq!(
        hops,
        [("192.168.1.1".into(), false), ("203.0.113.1".into(), false), ("198.51.100.2".into(), true)],
        "{:?}",
        net.nat("home").unwrap().counters()
    );
}

/// Fails on purpose after making one mapping, for `a_failure_lists_the_nat_mappings`.
#[netns_test(topology = hairpinning)]
#[ignore = "run by a_failure_lists_the_nat_mappings"]
fn fails_after_one_mapping(net: &Network) {
    let reflectors = Reflectors::bind(net);
    client_socket(45000).send_to(b"x", reflector(0, 0)).unwrap();
    let mapped = reflectors.observed(0, 0);
    panic!("failing on purpose, mapped to {mapped}");
}

#[test]
fn a_failure_lists_the_nat_mappings() {
    let outcome = netns_test_tests::run_subject(&mut netns_test_tests::subject("fails_after_one_mapping"));
    assert!(!outcome.status.success(), "{}", outcome.all());
    let text = outcome.all();
    let mapped = text.split("mapped to ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    assert!(text.contains("NAT mappings:\n  home (203.0.113.2): translated 1 out / 0 in"), "{text}");
    let line = format!("  home: udp 192.168.1.2:45000 -> {mapped} with 198.51.100.2:3478");
    assert!(text.contains(&line), "{line} in {text}");
}

#[test]
fn the_readme_nat_table_is_a_valid_one() {
    let readme = include_str!("../../README.md");
    let block = readme.split("```toml\n[nat]").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let text = format!(
        "[nodes]\nhome = \"router\"\ncgnat = \"router\"\nlab = \"router\"\na = \"host\"\nb = \"host\"\nc = \"host\"\n\n\
         [[links]]\na = \"home\"\nb = \"a\"\naddrs = {{ home = \"10.0.1.1/24\", a = \"10.0.1.2/24\" }}\n\n\
         [[links]]\na = \"cgnat:eth1\"\nb = \"b\"\naddrs = {{ cgnat = \"10.0.2.1/24\", b = \"10.0.2.2/24\" }}\n\n\
         [[links]]\na = \"lab\"\nb = \"c\"\naddrs = {{ lab = \"10.0.3.1/24\", c = \"10.0.3.2/24\" }}\n\n\
         [[routes]]\nnode = \"home\"\nto = \"default\"\nvia = \"10.0.1.2\"\n\n\
         [[routes]]\nnode = \"lab\"\nto = \"default\"\nvia = \"10.0.3.2\"\n\n[nat]{block}"
    );
    let from_file = Topology::from_toml(&text, "README.md").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let builder = Topology::builder()
        .router("home")
        .router("cgnat")
        .router("lab")
        .host("a")
        .host("b")
        .host("c")
        .link(Link::new("home", "a").addrs("10.0.1.1/24", "10.0.1.2/24"))
        .link(Link::new("cgnat", "b").ifnames("eth1", "eth0").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .link(Link::new("lab", "c").addrs("10.0.3.1/24", "10.0.3.2/24"))
        .default_route("home", "10.0.1.2")
        .default_route("lab", "10.0.3.2")
        .nat("home", Nat::port_restricted())
        .nat(
            "cgnat",
            Nat::symmetric()
                .hairpin(false)
                .port_preservation(false)
                .udp_timeout(Duration::from_secs(30))
                .outside("eth1")
                .ports(1024..=4095),
        )
        .nat("lab", Nat::new(Mapping::AddressDependent, Filtering::EndpointIndependent));
    assert_eq!(from_file, builder.build().unwrap());
}
