//! Topologies from files and from the builder: routes, switches, MTU, IPv6, names,
//! partitions, link control and readiness waits.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use netns_test::{Link, Network, Protocol, Topology, TopologyBuilder, netns_test};
use netns_test_tests::tcp_reaches;

/// The builder twin of `topologies/two-routers.toml`.
fn two_routers() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .host("monitor")
        .link(Link::new("client", "r1").ifnames("eth0", "eth0").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("r1", "r2").ifnames("eth1", "eth0").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .link(Link::new("r2", "server").ifnames("eth1", "eth0").addrs("10.0.3.1/24", "10.0.3.2/24"))
        .link(Link::new("monitor", "r1").addrs("10.0.4.2/24", "10.0.4.1/24"))
        .auto_routes()
        .hostnames()
        .local("client")
}

const TWO_ROUTERS_DUMP: &str = include_str!("../topologies/two-routers.dump");

#[test]
fn a_topology_equals_its_builder_twin() {
    let file =
        Topology::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/two-routers.toml")).unwrap();
    assert_eq!(file, two_routers().build().unwrap(), "equal topologies describe the same network");
    assert_ne!(file, Topology::seed());
}

#[netns_test(topology_file = "topologies/two-routers.toml")]
fn auto_routes_reach_every_host_across_two_routers(net: &Network) {
    // Every address of every host and router, from every other one, at once.
    let matrix = net.ping_all().unwrap();
    matrix.assert_all_reachable();
    // Five nodes with eight addresses in all: each pings the addresses of the others.
    assert_eq!(matrix.pairs().count(), 5 * 8 - 8, "{matrix}");
    // And a transport connection across both routers.
    assert!(tcp_reaches(net.node("client"), net.node("server"), "10.0.3.2".parse().unwrap()));
}

#[netns_test(topology_file = "topologies/two-routers.toml")]
fn the_file_builds_the_expected_network(net: &Network) {
    assert_eq!(net.dump().unwrap(), TWO_ROUTERS_DUMP);
}

#[netns_test(topology = two_routers)]
fn the_builder_builds_the_same_network_as_the_file(net: &Network) {
    assert_eq!(net.dump().unwrap(), TWO_ROUTERS_DUMP);
}

#[netns_test(topology_file = "topologies/star4.toml")]
fn four_hosts_on_a_switch_reach_each_other(net: &Network) {
    assert_eq!(net.local().name(), "h1", "the first host is local");
    for from in ["h1", "h2", "h3", "h4"] {
        for to in ["h1", "h2", "h3", "h4"] {
            if from != to {
                let addr = net.node(to).addr().unwrap();
                assert!(tcp_reaches(net.node(from), net.node(to), addr), "{from} -> {to}");
            }
        }
    }
}

/// A path whose middle hop has a smaller MTU.
fn narrow_hop() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("r1", "r2").addrs("10.0.2.1/24", "10.0.2.2/24").mtu(1400))
        .link(Link::new("r2", "server").addrs("10.0.3.1/24", "10.0.3.2/24"))
        .auto_routes()
}

#[netns_test(topology = narrow_hop)]
fn a_1400_byte_hop_stops_larger_unfragmentable_pings(net: &Network) {
    let client = net.local();
    // 1372 bytes of payload + 8 (ICMP) + 20 (IPv4) = 1400: fits the narrow hop.
    let fits = client.ping("10.0.3.2").size(1372).dont_fragment(true).count(3).run().unwrap();
    fits.assert_reachable().assert_loss_at_most(0.0);
    // One byte more does not, and r1 says so, with the MTU of the next hop.
    let too_big = client.ping("10.0.3.2").size(1373).dont_fragment(true).count(1).run().unwrap();
    too_big.assert_unreachable();
    let error = too_big.probes()[0].error().expect("an ICMP error came back").to_string();
    assert!(error.contains("10.0.1.1") || error.contains("10.0.2.1"), "{error}");
    let icmp = match too_big.probes()[0].error() {
        Some(netns_test::ping::ProbeError::Icmp(icmp)) => icmp.clone(),
        other => panic!("expected fragmentation needed, got {other:?}"),
    };
    assert_eq!(icmp.mtu(), Some(1400), "{icmp}");
    // The same size crosses when the routers may fragment it.
    client.ping("10.0.3.2").size(1373).count(1).run().unwrap().assert_reachable();
}

fn big_switch() -> TopologyBuilder {
    let mut builder = Topology::builder().switch("sw").static_arp();
    for i in 1..=40 {
        let name = format!("h{i}");
        builder = builder.host(&name).link(Link::new(&name, "sw").addr(&name, format!("10.2.0.{i}/24")));
    }
    builder
}

#[netns_test(topology = big_switch)]
fn static_arp_lets_a_large_switch_reach_all_pairs(net: &Network) {
    // 40 × 39 = 1560 neighbour entries: more than the kernel's host-wide table takes when
    // they are learnt, but permanent entries do not count.
    net.ping_all().unwrap().assert_all_reachable();
    let neighbours = net.node("h1").command("ip").args(["neigh", "show", "10.2.0.2"]).output().unwrap();
    let text = String::from_utf8_lossy(&neighbours.stdout);
    let h2_mac = net.node("h2").dump().unwrap();
    let mac =
        h2_mac.lines().find(|l| l.contains("10.2.0.2/24")).and_then(|l| l.split_whitespace().nth(4)).unwrap();
    assert!(text.contains(mac) && text.contains("PERMANENT"), "{text} / {mac}");
}

#[netns_test(topology_file = "topologies/ipv6-router.toml")]
fn ipv6_across_a_router(net: &Network) {
    let b: IpAddr = "fd00:2::2".parse().unwrap();
    assert!(tcp_reaches(net.node("a"), net.node("b"), b));
    let a: IpAddr = "fd00:1::2".parse().unwrap();
    assert!(tcp_reaches(net.node("b"), net.node("a"), a));
}

fn cluster() -> TopologyBuilder {
    Topology::builder()
        .host("n1")
        .host("n2")
        .host("n3")
        .switch("sw")
        .link(Link::new("n1", "sw").addr("n1", "10.1.0.1/24"))
        .link(Link::new("n2", "sw").addr("n2", "10.1.0.2/24"))
        .link(Link::new("n3", "sw").addr("n3", "10.1.0.3/24"))
}

#[netns_test(topology = cluster)]
fn a_partition_blocks_then_heals(net: &Network) {
    let (n1, n2, n3) = (net.node("n1"), net.node("n2"), net.node("n3"));
    let addr = |node: &netns_test::Node| node.addr().unwrap();
    assert!(tcp_reaches(n1, n2, addr(n2)) && tcp_reaches(n1, n3, addr(n3)));

    let split = net.partition(&[&["n1"], &["n2", "n3"]]).unwrap();
    assert!(!tcp_reaches(n1, n2, addr(n2)), "n1 reaches n2 across the partition");
    assert!(!tcp_reaches(n3, n1, addr(n1)), "n3 reaches n1 across the partition");
    assert!(tcp_reaches(n2, n3, addr(n3)), "n2 and n3 are on the same side");
    split.heal().unwrap();

    assert!(tcp_reaches(n1, n2, addr(n2)) && tcp_reaches(n3, n1, addr(n1)));
    {
        let _guard = net.partition(&[&["n1", "n2"], &["n3"]]).unwrap();
        assert!(!tcp_reaches(n2, n3, addr(n3)));
    }
    assert!(tcp_reaches(n2, n3, addr(n3)), "dropping the guard heals");
}

#[netns_test]
fn a_cut_link_drops_silently_and_heals(net: &Network) {
    let test1 = net.node("test1");
    let peer: IpAddr = "1.1.1.1".parse().unwrap();
    let cut = net.link("test0", "test1").cut().unwrap();
    // Both ends keep their carrier: the break is in the middle, not at the ends.
    net.link("test0", "test1").ready().timeout(Duration::from_millis(100)).wait().unwrap();
    assert!(!tcp_reaches(net.local(), test1, peer));
    drop(cut);
    assert!(tcp_reaches(net.local(), test1, peer));
}

#[netns_test]
fn a_link_goes_down_and_comes_back(net: &Network) {
    let link = net.link("test0", "test1");
    link.down().unwrap();
    // Down is visible locally: there is no route any more, so connecting fails at once.
    let error =
        TcpStream::connect_timeout(&"1.1.1.1:9".parse().unwrap(), Duration::from_secs(2)).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
    link.up().unwrap();
    assert!(tcp_reaches(net.local(), net.node("test1"), "1.1.1.1".parse().unwrap()));
}

#[netns_test(topology_file = "topologies/two-routers.toml")]
fn node_names_resolve_in_the_body_and_in_programs(net: &Network) {
    let server = net.node("server");
    let listener = server.run(|| TcpListener::bind("10.0.3.2:8080")).unwrap();
    let accepted = std::thread::spawn(move || listener.accept().map(|_| ()));
    TcpStream::connect("server:8080").expect("`server` resolves and is reachable");
    accepted.join().unwrap().unwrap();

    let output = net.node("monitor").command("getent").args(["hosts", "server"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).split_whitespace().next(), Some("10.0.3.2"));
    // `hostnames = true`: each node has its own hostname.
    let hostname = net.node("r2").command("hostname").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "r2");
    let here = nix::unistd::gethostname().unwrap();
    assert_eq!(here.to_string_lossy(), "client");
}

#[netns_test]
fn readiness_waits(net: &Network) {
    let test1 = net.node("test1");
    let addr: SocketAddr = "1.1.1.1:7100".parse().unwrap();
    // Nothing listens yet: the wait times out with a message naming the condition.
    let error = test1.listening(Protocol::Tcp, addr).timeout(Duration::from_millis(50)).wait().unwrap_err();
    assert!(error.to_string().contains("a Tcp socket bound to 1.1.1.1:7100 in node `test1`"), "{error}");

    // A server started in the background becomes ready some time later.
    let server = test1.clone();
    let started = std::thread::spawn(move || {
        let listener = server.run(|| TcpListener::bind(addr)).unwrap();
        listener.accept().map(|_| ())
    });
    test1.listening(Protocol::Tcp, addr).wait().unwrap();
    TcpStream::connect(addr).expect("the listener is there once the wait returns");
    started.join().unwrap().unwrap();

    let udp = test1.run(|| std::net::UdpSocket::bind("0.0.0.0:7101")).unwrap();
    test1.listening(Protocol::Udp, "1.1.1.1:7101".parse().unwrap()).wait().unwrap();
    drop(udp);

    test1.address_ready("1.1.1.1".parse().unwrap()).wait().unwrap();
    net.local().route_ready("1.1.1.77".parse().unwrap()).wait().unwrap();
    let no_route =
        net.local().route_ready("8.8.8.8".parse().unwrap()).timeout(Duration::from_millis(20)).wait();
    assert!(no_route.is_err(), "the test network has no route to the outside");
}

#[netns_test]
async fn readiness_waits_are_awaitable(net: &Network) {
    let test1 = net.node("test1");
    let listener = test1.spawn(async { tokio::net::TcpListener::bind("1.1.1.1:7200").await.unwrap() });
    test1.listening(Protocol::Tcp, "1.1.1.1:7200".parse().unwrap()).await.unwrap();
    let _listener = listener.await.unwrap();
    tokio::net::TcpStream::connect("1.1.1.1:7200").await.unwrap();
}
