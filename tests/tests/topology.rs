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
    assert_ne!(file, Topology::pair());
}

#[test]
fn the_default_topology_is_the_pair_and_each_default_timeout_has_its_own_name() {
    let pair = Topology::pair();
    assert_eq!(Topology::default(), pair);
    assert_eq!(pair.node_names().collect::<Vec<_>>(), ["test0", "test1"]);
    assert_eq!(pair.local(), "test0");
    assert_eq!(netns_test::DEFAULT_TEST_TIMEOUT, Duration::from_secs(60));
    assert_eq!(netns_test::ping::DEFAULT_PROBE_TIMEOUT, Duration::from_secs(2));
    assert_eq!(netns_test::wait::DEFAULT_WAIT_TIMEOUT, Duration::from_secs(10));
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
    assert_eq!(
        (icmp.kind(), icmp.code(), icmp.mtu()),
        (netns_test::ping::IcmpErrorKind::FragmentationNeeded, 4, Some(1400)),
        "{icmp}"
    );
    // The summary says so as iputils does.
    let summary = format!("{too_big:#}");
    assert!(summary.contains("icmp_seq=1 Frag needed and DF set (mtu = 1400)"), "{summary}");
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

    let split: netns_test::fault::Partition = net.partition(&[&["n1"], &["n2", "n3"]]).unwrap();
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

#[netns_test(topology = cluster)]
fn hosts_behind_a_switch_reach_a_restored_host_at_once(net: &Network) {
    let retry = Duration::from_secs(3);
    for node in ["n1", "n2"] {
        net.node(node)
            .run(|| std::fs::write("/proc/sys/net/ipv4/neigh/eth0/retrans_time_ms", "3000"))
            .unwrap();
    }
    let (n1, n2) = (net.node("n1"), net.node("n2"));
    let link = net.link("n1", "sw");
    let reaches_at_once = |from: &netns_test::Node, to: &str| {
        from.ping(to).count(1).timeout(retry / 2).run().unwrap().assert_reachable();
    };
    let unanswered = |from: &netns_test::Node, to: &str| {
        assert_eq!(from.ping(to).count(1).timeout(Duration::from_millis(50)).run().unwrap().received(), 0);
    };

    // A cut between n1 and the switch: n1 and n2 start resolving each other, in vain.
    let cut: netns_test::fault::Cut = link.cut().unwrap();
    unanswered(n1, "10.1.0.2");
    unanswered(n2, "10.1.0.1");
    assert!(ip(n2, &["neigh", "show", "10.1.0.1"]).contains("INCOMPLETE"));
    drop(cut);
    reaches_at_once(n1, "10.1.0.2");
    reaches_at_once(n2, "10.1.0.1");

    // The same when the link comes back up: n2, behind the switch, was resolving n1.
    link.down().unwrap();
    ip(n2, &["neigh", "flush", "dev", "eth0"]);
    unanswered(n2, "10.1.0.1");
    assert!(ip(n2, &["neigh", "show", "10.1.0.1"]).contains("INCOMPLETE"));
    link.up().unwrap();
    reaches_at_once(n2, "10.1.0.1");
}

#[netns_test(topology = cluster)]
fn a_partition_that_cannot_be_made_names_the_node_and_the_groups(net: &Network) {
    let refused = |groups: &[&[&str]]| {
        let error = net.partition(groups).unwrap_err();
        let netns_test::Error::InvalidPartition { node, .. } = &error else {
            panic!("a typed error: {error:?}");
        };
        (node.clone(), error.to_string())
    };
    assert_eq!(
        refused(&[&["n1"], &["sw", "n2"]]),
        (
            "sw".into(),
            "cannot partition the network into [[\"n1\"], [\"sw\", \"n2\"]]: `sw` is a switch, which \
             forwards for every group; list hosts and routers"
                .into()
        )
    );
    assert_eq!(
        refused(&[&["n1", "n2"], &["n3", "n1"]]),
        (
            "n1".into(),
            "cannot partition the network into [[\"n1\", \"n2\"], [\"n3\", \"n1\"]]: node `n1` is in \
             groups 1 and 2; a node belongs to one group"
                .into()
        )
    );
    let (node, text) = refused(&[&["n1"], &["n4"]]);
    assert_eq!(node, "n4");
    assert!(
        text.starts_with(
            "cannot partition the network into [[\"n1\"], [\"n4\"]]: there is no node `n4`; \
             the network has `n1`, `n2`, `n3` and `sw`"
        ),
        "{text}"
    );
    // Nothing was installed: the nodes still reach each other.
    assert!(tcp_reaches(net.node("n1"), net.node("n3"), net.node("n3").addr().unwrap()));
}

/// Two hosts joined twice, and a third host beside them.
fn parallel_links() -> TopologyBuilder {
    Topology::builder()
        .host("a")
        .host("b")
        .host("c")
        .link(Link::new("a", "b").addrs("10.0.1.1/24", "10.0.1.2/24"))
        .link(Link::new("a", "b").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .link(Link::new("c", "a").addrs("10.0.3.3/24", "10.0.3.1/24"))
}

#[netns_test(topology = parallel_links)]
fn parallel_links_are_named_by_their_interfaces(net: &Network) {
    let (a, b) = (net.node("a"), net.node("b"));
    let first: IpAddr = "10.0.1.2".parse().unwrap();
    let second: IpAddr = "10.0.2.2".parse().unwrap();

    // Two links join a and b: naming only the nodes is ambiguous, and the error lists both.
    let error = net.try_link("a", "b").unwrap_err();
    assert!(matches!(&error, netns_test::Error::AmbiguousLink { candidates, .. } if candidates.len() == 2));
    assert_eq!(
        error.to_string(),
        "`a` and `b` are joined by 2 links, `a:eth0 – b:eth0` and `a:eth1 – b:eth1`; name an interface \
         to choose one, as in `link(\"a:eth1\", \"b\")`"
    );

    // An interface on either end picks one; the other link keeps carrying traffic.
    let second_link = net.link("a:eth1", "b");
    assert_eq!(second_link.ends().map(|(node, iface)| (node.name(), iface)), [("a", "eth1"), ("b", "eth1")]);
    let cut = second_link.cut().unwrap();
    assert!(!tcp_reaches(a, b, second), "the cut link carries nothing");
    assert!(tcp_reaches(a, b, first), "the other link still carries traffic");
    drop(cut);
    assert!(tcp_reaches(a, b, second));
    let from_b = net.link("b:eth0", "a");
    assert_eq!(from_b.ends().map(|(node, iface)| (node.name(), iface)), [("b", "eth0"), ("a", "eth0")]);
    net.link("a", "b:eth1").down().unwrap();
    assert!(tcp_reaches(a, b, first), "only the second link went down");
    net.link("a:eth1", "b:eth1").up().unwrap();
    assert!(tcp_reaches(a, b, second));

    // A single link needs no interface, and ends that do not meet are errors that say so.
    assert_eq!(net.link("a", "c").ends()[0].1, "eth2");
    let error = net.try_link("a:eth0", "b:eth1").unwrap_err();
    assert_eq!(
        error.to_string(),
        "no link joins `a:eth0` and `b:eth1`; the links of `a` are `a:eth0 – b:eth0`, `a:eth1 – b:eth1` \
         and `a:eth2 – c:eth0`"
    );
    let error = net.try_link("a:eth7", "b").unwrap_err();
    assert!(
        matches!(error, netns_test::Error::UnknownInterface { ref name, .. } if name == "eth7"),
        "{error}"
    );
}

/// What `ip <args>` prints in `node`.
fn ip(node: &netns_test::Node, args: &[&str]) -> String {
    let output = node.command("ip").args(args).output().unwrap();
    assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[netns_test]
fn a_cut_link_drops_silently_and_heals(net: &Network) {
    let test1 = net.node("test1");
    let peer: IpAddr = "1.1.1.1".parse().unwrap();
    let link = net.link("test0", "test1");
    let cut = link.cut().unwrap();
    // Both ends keep their carrier: the break is in the middle, not at the ends.
    assert!(ip(net.local(), &["-o", "link", "show", "veth0"]).contains("LOWER_UP"));
    assert!(ip(test1, &["-o", "link", "show", "veth1"]).contains("LOWER_UP"));
    // But the link carries nothing, so it is not ready, even after going down and up.
    let error = link.ready().timeout(Duration::from_millis(50)).wait().unwrap_err();
    assert!(error.to_string().contains("to carry traffic (up with carrier, and not cut)"), "{error}");
    link.down().unwrap();
    link.up().unwrap();
    assert!(link.ready().timeout(Duration::from_millis(50)).wait().is_err(), "still cut");
    assert!(!tcp_reaches(net.local(), test1, peer));
    drop(cut);
    link.ready().wait().unwrap();
    assert!(tcp_reaches(net.local(), test1, peer));
}

#[netns_test]
fn a_healed_cut_carries_the_next_packet_at_once(net: &Network) {
    // The kernel retries an unanswered ARP request after retrans_time_ms (1 s by default);
    // 3 s makes a wait for that retry unmistakable next to a round trip on a veth.
    let retry = Duration::from_secs(3);
    for (node, iface) in [("test0", "veth0"), ("test1", "veth1")] {
        let path = format!("/proc/sys/net/ipv4/neigh/{iface}/retrans_time_ms");
        net.node(node).run(|| std::fs::write(&path, retry.as_millis().to_string())).unwrap();
    }
    let (test0, test1) = (net.local(), net.node("test1"));
    let link = net.link("test0", "test1");
    let cut = link.cut().unwrap();
    // During the cut, each end starts resolving the other, and the cut drops the requests.
    assert_eq!(
        test0.ping("1.1.1.1").count(1).timeout(Duration::from_millis(50)).run().unwrap().received(),
        0
    );
    assert_eq!(
        test1.ping("1.1.1.2").count(1).timeout(Duration::from_millis(50)).run().unwrap().received(),
        0
    );
    assert!(ip(test0, &["neigh", "show", "1.1.1.1"]).contains("INCOMPLETE"));
    cut.heal().unwrap();
    link.ready().wait().unwrap();
    // The next packet each way crosses without waiting for the ARP retry, still seconds away:
    // half the retry interval is ample for it, and far too short for the retry.
    for (from, to) in [(test0, "1.1.1.1"), (test1, "1.1.1.2")] {
        let stats = from.ping(to).count(1).timeout(retry / 2).run().unwrap();
        stats.assert_reachable();
    }
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
    let absent = test1.address_ready("1.1.1.9".parse().unwrap()).timeout(Duration::from_millis(20)).wait();
    assert!(
        matches!(&absent, Err(netns_test::Error::Timeout { what, after })
            if what == "address 1.1.1.9 to be usable in node `test1`" && *after == Duration::from_millis(20)),
        "{absent:?}"
    );
    net.local().route_ready("1.1.1.77".parse().unwrap()).wait().unwrap();
    let no_route =
        net.local().route_ready("8.8.8.8".parse().unwrap()).timeout(Duration::from_millis(20)).wait();
    assert!(
        matches!(&no_route, Err(netns_test::Error::Timeout { what, .. }) if what.contains("a route to 8.8.8.8")),
        "the test network has no route to the outside: {no_route:?}"
    );
}

#[netns_test]
async fn readiness_waits_are_awaitable(net: &Network) {
    let test1 = net.node("test1");
    let listener = test1.spawn(async { tokio::net::TcpListener::bind("1.1.1.1:7200").await.unwrap() });
    test1.listening(Protocol::Tcp, "1.1.1.1:7200".parse().unwrap()).await.unwrap();
    let _listener = listener.await.unwrap();
    tokio::net::TcpStream::connect("1.1.1.1:7200").await.unwrap();
}
