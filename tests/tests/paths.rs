//! Paths that change while the test runs: links added and removed, addresses renumbered,
//! default routes set, and a host replugged from one router to another mid-connection.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use netns_test::timeline::EventKind;
use netns_test::topology::TopologyErrorKind;
use netns_test::{Conditions, Error, Link, Network, Topology, TopologyBuilder, netns_test};

/// How long a test waits for an answer that must come.
const ANSWER: Duration = Duration::from_secs(10);

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A client behind r1, and r2 beside it; both routers reach the server's two subnets.
fn two_uplinks() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("r1", "server").addrs("10.0.10.1/24", "10.0.10.2/24"))
        .link(Link::new("r2", "server").addrs("10.0.20.1/24", "10.0.20.2/24"))
        .auto_routes()
}

/// The lines of `node`'s part of the dump that are routes.
fn routes(net: &Network, node: &str) -> Vec<String> {
    let dump = net.node(node).dump().unwrap();
    dump.lines()
        .filter(|line| line.trim_start().starts_with("route "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[netns_test(topology = two_uplinks)]
fn an_added_link_carries_traffic_and_auto_routes_use_it(net: &Network) {
    let client = net.local();
    assert_eq!(
        routes(net, "client"),
        ["route 10.0.1.0/24 dev eth0 proto kernel", "route default via 10.0.1.1 dev eth0"]
    );
    // Without the link, r2's subnet is unreachable from the client.
    client.ping("10.0.20.1").count(1).timeout(Duration::from_millis(300)).run().unwrap().assert_unreachable();

    let link = net.add_link(Link::new("client", "r2").addrs("10.0.2.2/24", "10.0.2.1/24")).unwrap();
    let [(a, a_if), (b, b_if)] = link.ends();
    assert_eq!((a.name(), a_if, b.name(), b_if), ("client", "eth1", "r2", "eth1"));
    client.ping("10.0.2.1").count(2).run().unwrap().assert_reachable().assert_loss_at_most(0.0);
    // The client has two uplinks now: planning gives it routes per subnet, and the server's
    // subnet beside r2 goes through r2; the server answers through r2 too.
    let client_routes = routes(net, "client");
    assert!(
        client_routes.contains(&"route 10.0.20.0/24 via 10.0.2.1 dev eth1".to_string()),
        "{client_routes:?}"
    );
    assert!(
        client_routes.contains(&"route 10.0.10.0/24 via 10.0.1.1 dev eth0".to_string()),
        "{client_routes:?}"
    );
    assert!(!client_routes.iter().any(|route| route.starts_with("route default")), "{client_routes:?}");
    assert!(routes(net, "server").contains(&"route 10.0.2.0/24 via 10.0.20.1 dev eth1".to_string()));
    client.ping("10.0.20.2").count(2).run().unwrap().assert_reachable();
    assert!(netns_test_tests::tcp_reaches(client, net.node("server"), addr("10.0.20.2")));
    // The new interface is the node's, by name, and the handle is found again by its ends.
    assert_eq!(client.interface("eth1").unwrap().addrs(), ["10.0.2.2/24".parse().unwrap()]);
    assert_eq!(format!("{:?}", net.link("client", "r2")), format!("{link:?}"));
    let added = net.events().into_iter().find(|event| event.kind == EventKind::LinkAdded).unwrap();
    assert_eq!(
        added.to_string().split_once(' ').unwrap().1,
        "link_added client:eth1 – r2:eth1 (10.0.2.2/24 – 10.0.2.1/24)"
    );
}

/// The interfaces of the calling thread's namespace that have an IPv6 address, from
/// `/proc/thread-self/net/if_inet6` (one line per address, the interface name last).
fn ipv6_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
    text.lines().filter_map(|line| line.split_whitespace().last().map(str::to_string)).collect()
}

#[netns_test(topology = two_uplinks)]
fn a_link_added_to_a_network_without_ipv6_has_no_link_local_addresses(net: &Network) {
    // Node namespaces have no namespace-wide `addr_gen_mode`: each end is told in a request of
    // its own, at bring-up and here alike. Once the link carries traffic, both ends have
    // carrier, and the kernel would have given them link-local addresses by then.
    net.add_link(Link::new("client", "r2").addrs("10.0.2.2/24", "10.0.2.1/24")).unwrap();
    net.local().ping("10.0.2.1").count(1).run().unwrap().assert_reachable();
    for ifaces in [ipv6_interfaces(), net.node("r2").run(ipv6_interfaces)] {
        assert!(ifaces.iter().all(|name| name == "lo"), "{ifaces:?}");
    }
}

#[netns_test(topology = two_uplinks)]
fn a_removed_link_leaves_the_network_as_it_was(net: &Network) {
    let before = net.dump().unwrap();
    let link = net.add_link(Link::new("client", "r2").addrs("10.0.2.2/24", "10.0.2.1/24")).unwrap();
    net.local().ping("10.0.2.1").count(1).run().unwrap().assert_reachable();
    let again = link.clone();
    link.remove().unwrap();
    // Interfaces, addresses and routes: exactly those of the topology again.
    assert_eq!(net.dump().unwrap(), before);
    net.local()
        .ping("10.0.2.1")
        .count(1)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap()
        .assert_unreachable();
    assert!(net.local().interface("eth1").is_err());
    assert!(net.try_link("client", "r2").is_err());
    let error = again.remove().unwrap_err();
    assert!(matches!(error, Error::Unsupported { .. }), "{error}");
    assert!(error.to_string().contains("the link was removed"), "{error}");

    // A link of the topology goes the same way, and the routes around it with it.
    net.link("client", "r1").remove().unwrap();
    assert_eq!(routes(net, "client"), Vec::<String>::new());
    assert!(net.local().interfaces().is_empty());
    let kinds: Vec<EventKind> =
        net.events().iter().map(|event| event.kind).filter(|kind| *kind != EventKind::Ping).collect();
    assert_eq!(
        kinds,
        [EventKind::NetworkUp, EventKind::LinkAdded, EventKind::LinkRemoved, EventKind::LinkRemoved]
    );
}

#[netns_test(topology = two_uplinks)]
fn renumbering_replaces_an_address_and_keeps_the_routes(net: &Network) {
    let client = net.local();
    net.renumber("client", "10.0.1.2/24", "10.0.1.50/24").unwrap();
    assert_eq!(client.addrs(), [addr("10.0.1.50")]);
    let dump = client.dump().unwrap();
    assert!(dump.contains("10.0.1.50/24") && !dump.contains("10.0.1.2/"), "{dump}");
    // The new address answers, the old one does not, and the default route is still there.
    net.node("r1").ping("10.0.1.50").count(1).run().unwrap().assert_reachable();
    net.node("r1")
        .ping("10.0.1.2")
        .count(1)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap()
        .assert_unreachable();
    assert!(routes(net, "client").contains(&"route default via 10.0.1.1 dev eth0".to_string()));
    client.ping("10.0.10.2").count(1).run().unwrap().assert_reachable();
    // Names resolve to the new address, for the pinger and for programs.
    assert_eq!(net.node("r1").ping("client").count(1).run().unwrap().addr(), addr("10.0.1.50"));
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(hosts.lines().any(|line| line.starts_with("10.0.1.50") && line.contains("client")), "{hosts}");
    let event = net.events().into_iter().find(|event| event.kind == EventKind::Renumbered).unwrap();
    assert_eq!(
        (event.subject.as_str(), event.detail.as_str()),
        ("client:eth0", "10.0.1.2/24 → 10.0.1.50/24")
    );

    // A gateway renumbered: the routes through it follow.
    net.renumber("r1", "10.0.1.1/24", "10.0.1.254/24").unwrap();
    assert!(routes(net, "client").contains(&"route default via 10.0.1.254 dev eth0".to_string()));
    client.ping("10.0.10.2").count(1).run().unwrap().assert_reachable();
}

/// Two hosts on a switch, and a third beside them, linked to one of them only.
fn switch_and_a_straggler() -> TopologyBuilder {
    Topology::builder()
        .switch("sw")
        .host("h1")
        .host("h2")
        .host("h3")
        .link(Link::new("h1", "sw").addr("h1", "10.0.0.1/24"))
        .link(Link::new("h2", "sw").addr("h2", "10.0.0.2/24"))
        .link(Link::new("h3", "h1").addrs("10.0.9.3/24", "10.0.9.1/24"))
        .local("h3")
}

#[netns_test(topology = switch_and_a_straggler)]
fn a_link_added_to_a_switch_is_a_port_of_its_bridge(net: &Network) {
    let h3 = net.local();
    h3.ping("10.0.0.2").count(1).timeout(Duration::from_millis(300)).run().unwrap().assert_unreachable();
    let port = net.add_link(Link::new("h3", "sw").addr("h3", "10.0.0.3/24")).unwrap();
    assert_eq!(format!("{port:?}"), "LinkHandle { a: h3:eth1, b: sw:eth2 }");
    h3.ping("10.0.0.2").count(2).run().unwrap().assert_reachable();
    h3.ping("h2").count(1).run().unwrap().assert_reachable();
    assert!(netns_test_tests::tcp_reaches(h3, net.node("h1"), addr("10.0.0.1")));
    port.remove().unwrap();
    h3.ping("10.0.0.2").count(1).timeout(Duration::from_millis(300)).run().unwrap().assert_unreachable();
}

/// A client with two uplinks and a static default route through r1; the server's default
/// route is through r2.
fn two_gateways() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("client", "r2").addrs("10.0.2.2/24", "10.0.2.1/24"))
        .link(Link::new("r1", "server").addrs("10.0.10.1/24", "10.0.10.2/24"))
        .link(Link::new("r2", "server").addrs("10.0.20.1/24", "10.0.20.2/24"))
        .default_route("client", "10.0.1.1")
        .default_route("server", "10.0.20.1")
}

#[netns_test(topology = two_gateways)]
fn a_new_default_route_sends_traffic_through_the_other_router(net: &Network) {
    let client = net.local();
    // r1 knows no way to r2's far subnet (the server's address beside r2).
    client.ping("10.0.20.2").count(1).timeout(Duration::from_millis(300)).run().unwrap().assert_unreachable();
    let r2_port = net.node("r2").interface("eth0").unwrap();
    let r1_port = net.node("r1").interface("eth0").unwrap();
    let (r1_before, r2_before) = (r1_port.counters().unwrap(), r2_port.counters().unwrap());

    client.set_default_route("10.0.2.1").unwrap();
    assert!(routes(net, "client").contains(&"route default via 10.0.2.1 dev eth1".to_string()));
    assert!(!routes(net, "client").iter().any(|route| route.contains("via 10.0.1.1")));
    client.ping("10.0.20.2").count(5).run().unwrap().assert_reachable().assert_loss_at_most(0.0);
    let (r1_after, r2_after) = (r1_port.counters().unwrap(), r2_port.counters().unwrap());
    // The five echo requests entered r2 and their replies left it (ARP too, so at least
    // five each way); r1 carried none of them.
    assert!(r2_after.rx_packets - r2_before.rx_packets >= 5, "{r2_before} → {r2_after}");
    assert!(r2_after.tx_packets - r2_before.tx_packets >= 5, "{r2_before} → {r2_after}");
    assert!(r1_after.rx_packets - r1_before.rx_packets < 5, "{r1_before} → {r1_after}");
    let event = net.events().into_iter().find(|event| event.kind == EventKind::DefaultRoute).unwrap();
    assert_eq!((event.subject.as_str(), event.detail.as_str()), ("client", "via 10.0.2.1"));
}

/// `two_gateways` with IPv6 beside IPv4 on every link, and IPv6 default routes too.
fn two_gateways_dual_stack() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .link(
            Link::new("client", "r1")
                .addrs("10.0.1.2/24", "10.0.1.1/24")
                .addrs("fd00:1::2/64", "fd00:1::1/64"),
        )
        .link(
            Link::new("client", "r2")
                .addrs("10.0.2.2/24", "10.0.2.1/24")
                .addrs("fd00:2::2/64", "fd00:2::1/64"),
        )
        .link(
            Link::new("r1", "server")
                .addrs("10.0.10.1/24", "10.0.10.2/24")
                .addrs("fd00:10::1/64", "fd00:10::2/64"),
        )
        .link(
            Link::new("r2", "server")
                .addrs("10.0.20.1/24", "10.0.20.2/24")
                .addrs("fd00:20::1/64", "fd00:20::2/64"),
        )
        .default_route("client", "10.0.1.1")
        .default_route("client", "fd00:1::1")
        .default_route("server", "10.0.20.1")
        .default_route("server", "fd00:20::1")
}

#[netns_test(topology = two_gateways_dual_stack)]
fn the_default_route_replaced_is_the_gateways_family_and_ipv6_renumbers_at_once(net: &Network) {
    let client = net.local();
    client
        .ping("fd00:20::2")
        .count(1)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap()
        .assert_unreachable();
    client.set_default_route("fd00:2::1").unwrap();
    let routes = routes(net, "client");
    // The IPv6 default route moved to r2; the IPv4 one is still through r1.
    assert!(routes.contains(&"route default via fd00:2::1 dev eth1".to_string()), "{routes:?}");
    assert!(routes.contains(&"route default via 10.0.1.1 dev eth0".to_string()), "{routes:?}");
    assert!(!routes.iter().any(|route| route.contains("fd00:1::1")), "{routes:?}");
    client.ping("fd00:20::2").count(2).run().unwrap().assert_reachable();
    client.ping("10.0.20.2").count(1).timeout(Duration::from_millis(300)).run().unwrap().assert_unreachable();

    // An IPv6 address renumbered is usable at once: no duplicate-address detection to wait for.
    net.renumber("client", "fd00:2::2/64", "fd00:2::99/64").unwrap();
    let udp = client.run(|| UdpSocket::bind("[fd00:2::99]:0")).unwrap();
    assert!(
        client.dump().unwrap().contains("fd00:2::99/64") && !client.dump().unwrap().contains("fd00:2::2/")
    );
    let echo = net.node("server").run(|| UdpSocket::bind("[fd00:20::2]:7001")).unwrap();
    echo.set_read_timeout(Some(ANSWER)).unwrap();
    udp.send_to(b"hello", "[fd00:20::2]:7001").unwrap();
    let mut buffer = [0u8; 8];
    assert_eq!(echo.recv_from(&mut buffer).unwrap().1, udp.local_addr().unwrap());

    // A static route's gateway renumbered: the route follows it.
    net.renumber("r2", "fd00:2::1/64", "fd00:2::fe/64").unwrap();
    assert!(self::routes(net, "client").contains(&"route default via fd00:2::fe dev eth1".to_string()));
    client.ping("fd00:20::2").count(1).run().unwrap().assert_reachable();
}

/// A pair whose link has (perfect) conditions, so that the link engine runs, and a router.
fn engine_running() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24").conditions(Conditions::new()))
        .link(Link::new("r1", "server").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .auto_routes()
        .random_seed(7)
}

#[netns_test(topology = engine_running)]
fn an_added_link_with_conditions_is_carried_by_the_engine(net: &Network) {
    let slow = Conditions::new().delay(Duration::from_millis(20));
    let link = net
        .add_link(Link::new("client", "server").addrs("10.0.3.1/24", "10.0.3.2/24").conditions(slow))
        .unwrap();
    let stats = net.local().ping("10.0.3.2").count(3).run().unwrap();
    stats.assert_reachable().assert_loss_at_most(0.0);
    // 20 ms each way.
    assert!(stats.rtt_min().unwrap() >= Duration::from_millis(40), "{stats}");
    let counters = link.counters_from("client").unwrap();
    assert!(counters.frames_out >= 3, "{counters:?}");
    // Its conditions change as a topology link's do.
    link.set_conditions(Conditions::new()).unwrap();
    let fast = net.local().ping("10.0.3.2").count(3).run().unwrap();
    assert!(fast.rtt_min().unwrap() < Duration::from_millis(20), "{fast}");
    // Removed, the engine stops carrying it: its far end is gone, and its counters keep
    // their last values.
    let again = link.clone();
    link.remove().unwrap();
    assert!(net.local().interface("eth1").is_err());
    let counters = again.counters_from("client").unwrap();
    assert!(counters.frames_out >= 6, "{counters:?}");
    net.local().ping("10.0.2.2").count(1).run().unwrap().assert_reachable();
}

/// Wi-Fi and cellular: a client on a 5 ms link to access router `r1`, and a second access
/// router `r2`, both uplinked to `core` in front of the server.
fn wifi_and_cellular() -> TopologyBuilder {
    let wifi = Conditions::new().delay(Duration::from_millis(5));
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .router("core")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24").conditions(wifi))
        .link(Link::new("r1", "core").addrs("10.0.10.1/24", "10.0.10.2/24"))
        .link(Link::new("r2", "core").addrs("10.0.20.1/24", "10.0.20.2/24"))
        .link(Link::new("core", "server").addrs("10.0.100.1/24", "10.0.100.2/24"))
        .auto_routes()
}

#[netns_test(topology = wifi_and_cellular)]
fn a_host_on_a_link_with_conditions_replugs_into_another(net: &Network) {
    let server = SocketAddr::from(([10, 0, 100, 2], 7000));
    let _echo = echo_server(net, server);
    let mut stream = net.local().run(|| TcpStream::connect(server)).unwrap();
    exchange(&mut stream, 0, 10).unwrap();
    let rtt = |net: &Network| net.local().ping("10.0.100.2").count(3).run().unwrap().rtt_min().unwrap();
    assert!(rtt(net) >= Duration::from_millis(10));
    let wifi = net.link("client", "r1");
    let cellular = Conditions::new().delay(Duration::from_millis(40));
    let new = net
        .replug(
            wifi.clone(),
            Link::new("client", "r2").addrs("10.0.1.2/24", "10.0.1.1/24").conditions(cellular),
        )
        .unwrap();
    // The same connection goes on through `r2`, over the new link's conditions.
    exchange(&mut stream, 10, 10).unwrap();
    assert!(rtt(net) >= Duration::from_millis(80));
    assert!(new.counters_from("client").unwrap().frames_out >= 3);
    // The old link's counters are those it had when it went.
    let before = wifi.counters_from("client").unwrap();
    exchange(&mut stream, 20, 10).unwrap();
    assert_eq!(wifi.counters_from("client").unwrap(), before);
}

/// Exchanges numbered messages over `stream` (the server echoes each) from `first` on, for
/// `count` messages.
fn exchange(stream: &mut TcpStream, first: u64, count: u64) -> std::io::Result<()> {
    for n in first..first + count {
        stream.write_all(&n.to_be_bytes())?;
        let mut answer = [0u8; 8];
        stream.read_exact(&mut answer)?;
        assert_eq!(u64::from_be_bytes(answer), n);
    }
    Ok(())
}

/// A TCP echo server on `addr` in node `server`, for one connection.
fn echo_server(net: &Network, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let listener = net.node("server").run(|| TcpListener::bind(addr)).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut message = [0u8; 8];
        while stream.read_exact(&mut message).is_ok() {
            if stream.write_all(&message).is_err() {
                break;
            }
        }
    })
}

#[netns_test(topology_file = "topologies/uplink-replug.toml")]
fn a_replugged_host_that_keeps_its_address_keeps_its_tcp_connection(net: &Network) {
    let server = SocketAddr::new(addr("10.0.100.2"), 7000);
    let echo = echo_server(net, server);
    let mut stream = net.local().run(|| TcpStream::connect_timeout(&server, ANSWER)).unwrap();
    stream.set_read_timeout(Some(ANSWER)).unwrap();
    exchange(&mut stream, 0, 50).unwrap();
    let r2_port_before = net.node("r2").interface("eth1").unwrap().counters().unwrap();

    // The client's uplink moves from r1 to r2, with the same subnet and gateway address.
    let old = net.link("client", "r1");
    let new = net.replug(old, Link::new("client", "r2").addrs("10.0.1.2/24", "10.0.1.1/24")).unwrap();
    assert_eq!(format!("{new:?}"), "LinkHandle { a: client:eth0, b: r2:eth0 }");
    // The core router's way back to the client now goes through r2.
    assert!(routes(net, "core").contains(&"route 10.0.1.0/24 via 10.0.12.1 dev eth1".to_string()));
    assert!(routes(net, "client").contains(&"route default via 10.0.1.1 dev eth0".to_string()));

    // The same connection goes on (what was in flight is retransmitted), through r2.
    exchange(&mut stream, 50, 50).unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), addr("10.0.1.2"));
    let r2_port_after = net.node("r2").interface("eth1").unwrap().counters().unwrap();
    assert!(r2_port_after.tx_packets - r2_port_before.tx_packets >= 50, "{r2_port_before} → {r2_port_after}");
    drop(stream);
    echo.join().unwrap();
    let kinds: Vec<EventKind> = net.events().iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::NetworkUp, EventKind::LinkRemoved, EventKind::LinkAdded, EventKind::Replugged]
    );
    let replugged = net.events().into_iter().find(|event| event.kind == EventKind::Replugged).unwrap();
    assert_eq!(replugged.detail, "client – r1 → client:eth0 – r2:eth0");
}

#[netns_test(topology_file = "topologies/uplink-replug.toml")]
fn a_replugged_host_with_a_new_address_migrates_udp_and_strands_tcp(net: &Network) {
    let server = SocketAddr::new(addr("10.0.100.2"), 7000);
    let echo = echo_server(net, server);
    let mut stream = net.local().run(|| TcpStream::connect_timeout(&server, ANSWER)).unwrap();
    exchange(&mut stream, 0, 5).unwrap();
    let udp_server = net.node("server").run(|| UdpSocket::bind("10.0.100.2:7001")).unwrap();
    udp_server.set_read_timeout(Some(ANSWER)).unwrap();
    // The client's socket is bound to no address: each datagram leaves from the address of
    // the route to the server, which changes with the uplink.
    let udp = net.local().run(|| UdpSocket::bind("0.0.0.0:5000")).unwrap();
    let receive = |socket: &UdpSocket| {
        let mut buffer = [0u8; 16];
        socket.recv_from(&mut buffer).unwrap().1
    };
    udp.send_to(b"before", "10.0.100.2:7001").unwrap();
    assert_eq!(receive(&udp_server), "10.0.1.2:5000".parse().unwrap());

    let old = net.link("client", "r1");
    net.replug(old, Link::new("client", "r2").addrs("10.0.2.2/24", "10.0.2.1/24")).unwrap();
    assert_eq!(net.local().addrs(), [addr("10.0.2.2")]);
    // Datagrams carry on from the new address and the same port: the server sees the peer
    // migrate, as a QUIC server does.
    udp.send_to(b"after", "10.0.100.2:7001").unwrap();
    assert_eq!(receive(&udp_server), "10.0.2.2:5000".parse().unwrap());
    // The TCP connection is bound to an address the client no longer has: the core router has
    // no route back to it, so nothing answers.
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let error = exchange(&mut stream, 5, 1).unwrap_err();
    assert!(matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{error}");
    drop(stream);
    drop(echo);
}

#[netns_test(topology = two_uplinks)]
fn bad_runtime_changes_are_typed_errors_naming_the_item(net: &Network) {
    let topology = |error: Error| match error {
        Error::Topology(error) => error.kind,
        other => panic!("expected a topology error, got {other}"),
    };
    let kind = topology(net.add_link(Link::new("client", "nowhere")).unwrap_err());
    assert!(matches!(&kind, TopologyErrorKind::UnknownNode { name, .. } if name == "nowhere"), "{kind:?}");
    let kind = topology(net.add_link(Link::new("client", "r2").ifnames("eth0", "eth0")).unwrap_err());
    assert!(
        matches!(&kind, TopologyErrorKind::DuplicateInterface { node, name } if node == "client" && name == "eth0"),
        "{kind:?}"
    );
    let kind =
        topology(net.add_link(Link::new("client", "r2").addrs("10.0.1.1/24", "10.0.1.9/24")).unwrap_err());
    assert!(matches!(&kind, TopologyErrorKind::DuplicateAddress { .. }), "{kind:?}");
    let kind =
        topology(net.add_link(Link::new("client", "r2").addrs("10.0.2.300/24", "10.0.2.1/24")).unwrap_err());
    assert!(matches!(&kind, TopologyErrorKind::InvalidAddress { .. }), "{kind:?}");
    let error = net.add_link(Link::new("client", "r2").conditions(Conditions::new())).unwrap_err();
    assert!(matches!(error, Error::Unsupported { .. }), "{error}");
    assert!(
        error.to_string().contains("conditions on link 4 (`client` – `r2`), added at runtime"),
        "{error}"
    );

    let error = net.renumber("client", "10.0.9.9/24", "10.0.1.3/24").unwrap_err();
    assert_eq!(error.to_string(), "node `client` has no address `10.0.9.9/24`; it has `10.0.1.2/24`");
    let kind = topology(net.renumber("client", "10.0.1.2/24", "10.0.9.2/24").unwrap_err());
    assert!(matches!(&kind, TopologyErrorKind::AddressOutsideSubnet { .. }), "{kind:?}");
    let kind = topology(net.local().set_default_route("10.0.7.1").unwrap_err());
    assert!(
        matches!(&kind, TopologyErrorKind::GatewayNotOnSubnet { node, gateway, .. } if node == "client" && gateway == "10.0.7.1"),
        "{kind:?}"
    );
    let kind = topology(net.local().set_default_route("not-an-address").unwrap_err());
    assert!(matches!(&kind, TopologyErrorKind::InvalidRoute { .. }), "{kind:?}");
    let error = net.replug(net.link("r1", "server"), Link::new("client", "r2")).unwrap_err();
    assert!(error.to_string().contains("the moving node"), "{error}");

    // Nothing was changed by any of them.
    assert_eq!(net.events().len(), 1);
    assert_eq!(net.local().addrs(), [addr("10.0.1.2")]);
    net.local().ping("10.0.10.2").count(1).run().unwrap().assert_reachable();
}
