//! Big topologies: a long chain of routers with automatic routes, validated once and brought
//! up well within the default timeout; a switch with the most ports a Linux bridge takes, and
//! ARP across it.
//!
//! The `subject_*` tests are ignored and run by the `driver_*` tests, which start this binary
//! again for one subject with `NETNS_TEST_TRACE=1` and read its trace.

use std::time::Duration;

use netns_test::{Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

/// Routers in the chain.
const ROUTERS: usize = 300;

/// `client`, routers `r1` to `r300` in a line, `server`; link `k` (from 1) is 10.k/256.k%256.0/24
/// with .1 on its left end and .2 on its right end.
fn chain() -> TopologyBuilder {
    let addr = |k: usize, host: u8| format!("10.{}.{}.{host}/24", k / 256, k % 256);
    let mut builder = Topology::builder().host("client");
    let names: Vec<String> = std::iter::once("client".to_string())
        .chain((1..=ROUTERS).map(|r| format!("r{r}")))
        .chain(std::iter::once("server".to_string()))
        .collect();
    for router in &names[1..=ROUTERS] {
        builder = builder.router(router);
    }
    builder = builder.host("server");
    for (k, pair) in names.windows(2).enumerate() {
        builder = builder.link(Link::new(&pair[0], &pair[1]).addrs(addr(k + 1, 1), addr(k + 1, 2)));
    }
    builder.auto_routes()
}

/// Lets `node` answer with the largest TTL, so that its replies cross as many hops as the
/// requests did (replies start with `net.ipv4.ip_default_ttl`, 64).
fn reply_with_ttl_255(node: &netns_test::Node) {
    node.run(|| std::fs::write("/proc/sys/net/ipv4/ip_default_ttl", "255"))
        .unwrap_or_else(|e| panic!("setting ip_default_ttl in `{}`: {e}", node.name()));
}

#[netns_test(topology = chain, timeout = "10m")]
#[ignore = "run by driver_a_300_router_chain_is_validated_once_and_comes_up"]
fn subject_chain_of_300_routers(net: &Network) {
    // 301 hops separate client and server, more than any TTL allows (255): each end pings the
    // middle of the chain instead, so that together they cross every router both ways.
    let (left, right) = (net.node("r150"), net.node("r151"));
    reply_with_ttl_255(left);
    reply_with_ttl_255(right);
    let middle = "10.0.151.1"; // r150's end of link 151, towards r151
    net.node("client")
        .ping(middle)
        .ttl(255)
        .count(3)
        .interval(Duration::from_millis(10))
        .run()
        .unwrap()
        .assert_reachable();
    let middle = "10.0.151.2"; // r151's end of the same link
    net.node("server")
        .ping(middle)
        .ttl(255)
        .count(3)
        .interval(Duration::from_millis(10))
        .run()
        .unwrap()
        .assert_reachable();
    // And the far ends of the chain route to each other's subnets.
    net.node("r1").route_ready("10.1.45.2".parse().unwrap()).timeout(Duration::from_secs(1)).wait().unwrap();
}

#[test]
fn driver_a_300_router_chain_is_validated_once_and_comes_up() {
    let outcome = run_subject(subject("subject_chain_of_300_routers").env("NETNS_TEST_TRACE", "1"));
    let text = outcome.all();
    assert!(outcome.status.success(), "{text}");
    let planned: Vec<&str> = text.lines().filter(|line| line.contains("validated and planned")).collect();
    assert_eq!(planned.len(), 1, "the topology is validated exactly once:\n{text}");
    assert!(text.contains("the topology's plan reused, not validated again"), "{text}");
    // For the record (no absolute time is asserted): how long the whole child took.
    let ready = text.lines().find(|line| line.contains("every link reported ready")).unwrap_or("");
    let routes = text.lines().find(|line| line.contains("routes added")).unwrap_or("");
    println!("{}\n{ready}\n{routes}\nwhole test: {:?}", planned[0], outcome.elapsed);
}

/// 1023 hosts on one switch, the most ports a Linux bridge takes, in one /16, with neighbour
/// resolution left to ARP.
fn full_switch() -> TopologyBuilder {
    let mut builder = Topology::builder().switch("sw");
    for i in 1..=1023 {
        let name = format!("h{i}");
        let addr = format!("10.7.{}.{}/16", i / 250, i % 250 + 1);
        builder = builder.host(&name).link(Link::new(&name, "sw").addr(&name, addr));
    }
    builder.local("h1023")
}

#[netns_test(topology = full_switch, timeout = "10m")]
fn arp_works_across_a_switch_with_1023_ports(net: &Network) {
    // Each ARP request of h1023 is flooded to 1022 ports. The bridge floods its newest ports
    // first, so the first hosts are the ones whose copies would overflow the kernel's shared
    // backlog (1000 frames): ping those, and some in the middle. Sequentially, to leave the
    // machine-wide neighbour table room (a few entries per target).
    let from = net.local();
    for i in (1..=30).chain(500..=509) {
        let target = net.node(&format!("h{i}")).addr().unwrap();
        // A generous timeout per probe: on a loaded machine a reply may be late, but without
        // the switch's own queues no ARP reply ever comes.
        let ping =
            from.ping(target).count(3).interval(Duration::from_millis(100)).timeout(Duration::from_secs(10));
        let stats = ping.run().unwrap();
        assert!(stats.is_reachable(), "h1023 cannot reach h{i} ({target}) across the switch:\n{stats}");
    }
}
