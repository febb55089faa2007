//! The pinger, from a downstream crate's point of view.

use std::net::IpAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use netns_test::ping::{IcmpErrorKind, PingStats, ProbeError, Source};
use netns_test::{Conditions, Error, Link, Network, Topology, TopologyBuilder, netns_test};

const PEER: &str = "1.1.1.1";
const LOCAL: &str = "1.1.1.2";

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// client -- r1 -- server, IPv4 and IPv6 on both links, routes through r1.
fn routed() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .host("server")
        .link(
            Link::new("client", "r1")
                .addrs("10.0.1.2/24", "10.0.1.1/24")
                .addrs("fd00:1::2/64", "fd00:1::1/64"),
        )
        .link(
            Link::new("r1", "server")
                .addrs("10.0.2.1/24", "10.0.2.2/24")
                .addrs("fd00:2::1/64", "fd00:2::2/64"),
        )
        .auto_routes()
}

/// The default pair with IPv6 addresses only.
fn ipv6_pair() -> TopologyBuilder {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(Link::new("test0", "test1").ifnames("veth0", "veth1").addrs("fd00::2/64", "fd00::1/64"))
}

/// Two hosts on two subnets with nothing between them but a router that has no routes to hand
/// out: the hosts reach the router, not each other.
fn unrouted() -> TopologyBuilder {
    Topology::builder()
        .host("a")
        .router("r")
        .host("b")
        .link(Link::new("a", "r").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("r", "b").addrs("10.0.2.1/24", "10.0.2.2/24"))
}

fn assert_clean(stats: &PingStats, count: u64, from: IpAddr) {
    assert_eq!((stats.transmitted(), stats.received(), stats.duplicates()), (count, count, 0), "{stats:#}");
    assert_eq!(stats.loss(), 0.0, "{stats}");
    for probe in stats.probes() {
        assert_eq!(probe.from(), Some(from), "{stats:#}");
        assert_eq!(probe.ttl(), Some(64), "{stats:#}");
    }
}

#[netns_test]
fn the_seed_pair_pings_both_ways_without_loss(net: &Network) -> netns_test::Result<()> {
    let there = net.local().ping(PEER).count(20).interval(Duration::ZERO).run()?;
    println!("{there}");
    assert_clean(&there, 20, addr(PEER));
    there.assert_reachable().assert_loss_at_most(0.0);
    assert!(
        there.to_string().starts_with(
            "--- 1.1.1.1 ping statistics ---\n20 packets transmitted, 20 received, 0% packet loss"
        )
    );

    let back = net.node("test1").ping(LOCAL).count(5).interval(Duration::from_millis(10)).run()?;
    println!("{back}");
    assert_clean(&back, 5, addr(LOCAL));
    // Five probes 10 ms apart: the last leaves about 40 ms after the first.
    assert!(back.time() >= Duration::from_millis(40), "{back}");
    Ok(())
}

#[netns_test]
fn targets_may_be_nodes_and_node_names(net: &Network) -> netns_test::Result<()> {
    let by_name = net.local().ping("test1").count(2).interval(Duration::ZERO).run()?;
    assert_eq!((by_name.addr(), by_name.target(), by_name.received()), (addr(PEER), "test1", 2));
    assert!(by_name.to_string().starts_with("--- test1 ping statistics ---"), "{by_name}");
    let by_node = net.node("test1").ping(net.local()).run()?;
    assert_eq!((by_node.addr(), by_node.received()), (addr(LOCAL), 1));
    Ok(())
}

#[netns_test]
fn count_and_deadline_stop_when_count_probes_are_answered(net: &Network) -> netns_test::Result<()> {
    // ping -c 3 -w 10: three answers end the run long before the deadline.
    let started = Instant::now();
    let stats = net
        .local()
        .ping(PEER)
        .count(3)
        .interval(Duration::from_millis(5))
        .deadline(Duration::from_secs(10))
        .run()?;
    assert_eq!((stats.transmitted(), stats.received()), (3, 3), "{stats}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stats}");
    // A deadline alone keeps sending until it passes.
    let stats = net
        .local()
        .ping(PEER)
        .interval(Duration::from_millis(20))
        .deadline(Duration::from_millis(300))
        .run()?;
    assert!(stats.transmitted() >= 3, "{stats}");
    // The last probe may leave just before the deadline, with no time left for its reply.
    assert!(stats.transmitted() - stats.received() <= 1, "{stats}");
    Ok(())
}

#[netns_test]
fn an_address_without_a_host_loses_every_probe(net: &Network) -> netns_test::Result<()> {
    // 1.1.1.3 is on the link's subnet, but nobody answers ARP for it.
    let stats = net
        .local()
        .ping("1.1.1.3")
        .count(3)
        .interval(Duration::ZERO)
        .timeout(Duration::from_millis(300))
        .run()?;
    println!("{stats}");
    stats.assert_unreachable();
    assert_eq!((stats.transmitted(), stats.received(), stats.loss()), (3, 0, 1.0), "{stats}");
    assert!(stats.to_string().contains("3 packets transmitted, 0 received"), "{stats}");
    assert!(stats.to_string().contains("100% packet loss"), "{stats}");
    Ok(())
}

#[netns_test]
fn an_address_without_a_route_fails_to_send(net: &Network) -> netns_test::Result<()> {
    let stats = net.local().ping("10.9.9.9").count(2).interval(Duration::ZERO).run()?;
    stats.assert_unreachable();
    assert_eq!(stats.transmitted(), 2, "iputils counts refused probes as sent: {stats:#}");
    let Some(ProbeError::Send { errno }) = stats.probes()[0].error() else { panic!("{stats:#}") };
    assert_eq!(std::io::Error::from_raw_os_error(*errno).kind(), std::io::ErrorKind::NetworkUnreachable);
    assert!(format!("{stats:#}").contains("ping: sendmsg: Network is unreachable"), "{stats:#}");
    Ok(())
}

#[netns_test(topology = routed)]
fn ttl_1_through_a_router_gets_time_exceeded_from_the_router(net: &Network) -> netns_test::Result<()> {
    let client = net.node("client");
    client.ping("10.0.2.2").count(3).interval(Duration::ZERO).run()?.assert_loss_at_most(0.0);

    let stats = client
        .ping("10.0.2.2")
        .ttl(1)
        .count(3)
        .interval(Duration::ZERO)
        .timeout(Duration::from_secs(1))
        .run()?;
    println!("{stats:#}");
    stats.assert_unreachable();
    // The kernel rate-limits ICMP errors, so not every probe need get one; those that do name
    // the router's address on the client's link.
    assert!(stats.errors() >= 1, "{stats:#}");
    for probe in stats.probes().iter().filter(|probe| probe.error().is_some()) {
        let Some(ProbeError::Icmp(error)) = probe.error() else { panic!("{stats:#}") };
        assert_eq!(
            (error.kind(), error.code(), error.from()),
            (IcmpErrorKind::TimeExceeded, 0, addr("10.0.1.1"))
        );
        assert_eq!(probe.from(), Some(addr("10.0.1.1")));
    }
    assert!(stats.to_string().contains(&format!("+{} errors", stats.errors())), "{stats}");
    assert!(format!("{stats:#}").contains("From 10.0.1.1 icmp_seq=1 Time to live exceeded"), "{stats:#}");

    // The same over IPv6: hop limit exceeded, reported by the router.
    let stats = client.ping("fd00:2::2").ttl(1).count(1).timeout(Duration::from_secs(1)).run()?;
    let Some(ProbeError::Icmp(error)) = stats.probes()[0].error() else {
        panic!("no ICMPv6 error: {stats:#}")
    };
    assert_eq!((error.kind(), error.from()), (IcmpErrorKind::TimeExceeded, addr("fd00:1::1")));
    Ok(())
}

#[netns_test]
fn concurrent_pingers_in_one_node_see_only_their_own_replies(net: &Network) {
    // Both ping the same address with the same sequence numbers, 2 ms apart, for half a
    // second: had either taken the other's replies, it would count duplicates. One runs on a
    // thread with the blocking API, the other on the node's tokio runtime with the async one.
    let node = net.local();
    let ping = || node.ping(PEER).count(250).interval(Duration::from_millis(2));
    let barrier = Barrier::new(2);
    let (blocking, asynchronous) = std::thread::scope(|scope| {
        let blocking = scope.spawn(|| {
            barrier.wait();
            let start = Instant::now();
            (start, ping().run().unwrap(), Instant::now())
        });
        barrier.wait();
        let start = Instant::now();
        let stats = node.runtime().block_on(node.spawn(ping().run_async())).unwrap().unwrap();
        (blocking.join().unwrap(), (start, stats, Instant::now()))
    });
    // Each run takes half a second; they overlap unless a thread stalled for that long.
    assert!(blocking.0 < asynchronous.2 && asynchronous.0 < blocking.2, "the two runs did not overlap");
    assert_clean(&blocking.1, 250, addr(PEER));
    assert_clean(&asynchronous.1, 250, addr(PEER));
}

#[netns_test(topology = ipv6_pair)]
async fn ipv6_pings_both_ways(net: &Network) -> netns_test::Result<()> {
    let there = net.local().ping("fd00::1").count(10).interval(Duration::ZERO).run_async().await?;
    println!("{there}");
    assert_clean(&there, 10, addr("fd00::1"));
    let back = net.node("test1").ping("fd00::2").count(10).interval(Duration::ZERO).run()?;
    assert_clean(&back, 10, addr("fd00::2"));
    Ok(())
}

#[netns_test(topology = routed)]
fn ping_all_covers_every_address_from_every_host_and_router(net: &Network) -> netns_test::Result<()> {
    let matrix = net.ping_all()?;
    println!("{matrix}");
    matrix.assert_all_reachable();
    // Eight addresses: client and server have two each, r1 four; every node pings every
    // address but its own.
    assert_eq!(matrix.pairs().count(), 6 + 4 + 6);
    let across = matrix.get("client", addr("fd00:2::2")).expect("client pinged the server");
    assert_eq!(across.received(), 1);
    assert!(matrix.get("client", addr("10.0.1.2")).is_none(), "a node does not ping itself");
    assert!(matrix.to_string().starts_with("ping all: 16 of 16 pairs reachable\n"), "{matrix}");

    let thorough = net.ping_all_with(|ping| ping.count(3).interval(Duration::ZERO))?;
    assert!(thorough.pairs().all(|stats| stats.transmitted() == 3 && stats.received() == 3), "{thorough}");
    Ok(())
}

#[netns_test(topology = unrouted)]
fn ping_all_shows_what_is_unreachable(net: &Network) -> netns_test::Result<()> {
    let matrix = net.ping_all_with(|ping| ping.timeout(Duration::from_millis(300)))?;
    println!("{matrix}");
    assert!(!matrix.is_all_reachable());
    let unreachable: Vec<(String, IpAddr)> =
        matrix.unreachable().iter().map(|stats| (stats.node().to_string(), stats.addr())).collect();
    assert_eq!(
        unreachable,
        [
            ("a".to_string(), addr("10.0.2.1")),
            ("a".to_string(), addr("10.0.2.2")),
            ("b".to_string(), addr("10.0.1.2")),
            ("b".to_string(), addr("10.0.1.1")),
        ],
        "{matrix}"
    );
    let text = matrix.to_string();
    assert!(
        text.starts_with(
            "ping all: 4 of 8 pairs reachable\nfrom \\ to  a 10.0.1.2  r 10.0.1.1  r 10.0.2.1  b 10.0.2.2\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("\nb          X           X           ok          -"), "{text}");
    let panic = std::panic::catch_unwind(|| {
        matrix.assert_all_reachable();
    })
    .expect_err("the matrix is not all reachable");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("4 of 8 pairs are unreachable:"), "{message}");
    assert!(message.contains("ping from node `a` to 10.0.2.2: no reply"), "{message}");
    Ok(())
}

#[netns_test]
fn source_selects_the_address_or_interface(net: &Network) -> netns_test::Result<()> {
    let node = net.local();
    assert_eq!(node.ping(PEER).source(LOCAL).run()?.received(), 1);
    assert_eq!(node.ping(PEER).source("veth0").run()?.received(), 1);
    assert_eq!(
        node.ping(PEER)
            .source(Source::Interface("lo".into()))
            .timeout(Duration::from_millis(200))
            .run()?
            .received(),
        0
    );
    match node.ping(PEER).source("eth7").run() {
        Err(Error::UnknownInterface { name, .. }) => assert_eq!(name, "eth7"),
        other => panic!("expected an unknown-interface error, got {other:?}"),
    }
    match node.ping(PEER).source("1.1.1.9").run() {
        Err(error @ Error::Io { .. }) => {
            assert!(error.to_string().contains("binding a raw ICMP socket to 1.1.1.9"), "{error}")
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    Ok(())
}

#[netns_test]
fn invalid_options_are_errors_that_name_them(net: &Network) {
    let node = net.local();
    let reason = |result: netns_test::Result<PingStats>| match result {
        Err(error @ Error::Ping { .. }) => error.to_string(),
        other => panic!("expected a ping error, got {other:?}"),
    };
    assert_eq!(
        reason(node.ping(PEER).count(0).run()),
        "cannot ping `1.1.1.1` from node `test0`: `count` must be at least 1"
    );
    assert!(
        reason(node.ping(PEER).size(70_000).run())
            .contains("`size` 70000 is larger than the largest IPv4 echo payload, 65507 bytes")
    );
    assert!(reason(node.ping(PEER).ttl(0).run()).contains("`ttl` must be 1 to 255"));
    assert!(
        reason(node.ping(PEER).timeout(Duration::ZERO).run()).contains("`timeout` must be longer than zero")
    );
    assert!(
        reason(node.ping(PEER).deadline(Duration::ZERO).run())
            .contains("`deadline` must be longer than zero")
    );
    assert!(reason(node.ping("fd00::1").source(LOCAL).run()).contains("different IP versions"));
    assert!(
        reason(node.ping(PEER).timeout(Duration::MAX).run())
            .contains("`timeout` 18446744073709551615.999999999s is longer than a day")
    );
    assert!(
        reason(node.ping(PEER).interval(Duration::from_secs(86_401)).run())
            .contains("`interval` 86401s is longer than a day")
    );
    assert_eq!(
        reason(node.ping("nowhere").run()),
        "cannot ping `nowhere` from node `test0`: `nowhere` is neither an IP address nor a node of the network, which has `test0` and `test1`"
    );
    assert!(reason(node.ping("test1").source("fd00::2").run()).contains("node `test1` has no IPv6 address"));
}

#[netns_test]
fn large_payloads_are_echoed(net: &Network) -> netns_test::Result<()> {
    // Larger than the link's MTU: the kernel fragments the probe and reassembles the reply.
    let stats = net.local().ping(PEER).size(4000).count(2).interval(Duration::ZERO).run()?;
    assert_eq!(stats.received(), 2, "{stats}");
    assert_eq!(stats.probes()[0].reply().map(|reply| reply.bytes()), Some(4008));
    Ok(())
}

/// iputils' figures from its output: transmitted, received, and each reply's time in µs.
fn parse_iputils(output: &str) -> (u64, u64, Vec<u64>) {
    let summary = output
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{output}"));
    let numbers: Vec<u64> =
        summary.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    let times = output
        .lines()
        .filter_map(|line| line.split("time=").nth(1))
        .map(|time| {
            let ms: f64 = time.trim_end_matches(" ms").parse().unwrap_or_else(|_| panic!("{output}"));
            (ms * 1000.0).round() as u64
        })
        .collect();
    (numbers[0], numbers[1], times)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[netns_test]
fn agrees_with_iputils_ping_on_the_same_link(net: &Network) -> netns_test::Result<()> {
    let ours = net.local().ping(PEER).count(20).interval(Duration::from_millis(10)).run()?;
    let output = net
        .local()
        .command("ping")
        .args(["-n", "-c", "20", "-i", "0.01", PEER])
        .output()
        .unwrap_or_else(|e| panic!("cannot run iputils `ping` (CI must install iputils-ping): {e}"));
    let output = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{ours}\n\niputils:\n{output}");
    let (transmitted, received, times) = parse_iputils(&output);
    assert_eq!((ours.transmitted(), ours.received()), (transmitted, received));
    assert_eq!(times.len() as u64, received, "{output}");
    // Same order of magnitude: the medians within a factor of ten of each other, with 100 µs
    // of slack for a loaded machine.
    let ours_median = ours.rtt_percentile(50.0).expect("replies").as_micros() as u64;
    let theirs_median = median(times);
    assert!(
        ours_median <= 10 * theirs_median + 100 && theirs_median <= 10 * ours_median + 100,
        "median RTT: ours {ours_median} µs, iputils {theirs_median} µs"
    );
    Ok(())
}

/// The seed pair, with a fifth of the probes lost on their way out (seeded) and no ARP, so that
/// every frame that crosses is a probe or its reply.
fn lossy_pair() -> TopologyBuilder {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(
            Link::new("test0", "test1")
                .ifnames("veth0", "veth1")
                .addrs("1.1.1.2/24", "1.1.1.1/24")
                .conditions_from("test0", Conditions::new().loss(0.2).seed(8)),
        )
        .static_arp()
}

/// iputils' `time` figure from its summary line, the time from its first probe to its last.
fn iputils_time(output: &str) -> Duration {
    let ms = output
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .and_then(|line| line.rsplit("time ").next())
        .and_then(|time| time.trim().trim_end_matches("ms").parse().ok())
        .unwrap_or_else(|| panic!("no time in iputils' summary:\n{output}"));
    Duration::from_millis(ms)
}

#[netns_test(topology = lossy_pair)]
fn a_lost_probe_does_not_slow_a_flood_down_more_than_iputils(net: &Network) -> netns_test::Result<()> {
    // A flood sends the next probe when the latest one is answered, or 10 ms after it. Each
    // loss costs 10 ms, then; a lost probe still waiting out its (long) timeout must not hold
    // back the probes after it, as it does not in iputils.
    let ours =
        net.local().ping(PEER).count(200).interval(Duration::ZERO).timeout(Duration::from_secs(1)).run()?;
    let output = net
        .local()
        .command("ping")
        .args(["-n", "-q", "-f", "-c", "200", PEER])
        .output()
        .unwrap_or_else(|e| panic!("cannot run iputils `ping` (CI must install iputils-ping): {e}"));
    let output = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{ours}\n\niputils:\n{output}");
    let (transmitted, received, _) = parse_iputils(&output);
    assert!(transmitted == 200 && received < 190, "the link loses probes: {output}");
    assert!(ours.received() < 190, "the link loses probes: {ours}");
    // Both lose about 40 probes, 0.4 s of pauses; twice iputils' time, with 100 ms of slack
    // for a loaded machine, is far below the 2 s of pausing after every probe.
    let theirs = iputils_time(&output);
    assert!(
        ours.time() <= 2 * theirs + Duration::from_millis(100),
        "flood over a lossy link: ours took {:?}, iputils {theirs:?}\n{ours}",
        ours.time()
    );
    Ok(())
}
