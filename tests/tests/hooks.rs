//! Per-packet hooks on engine links: drop lists, each verdict, seeded decisions that replay,
//! and a hook's panic failing the test; and the drop-list example of the README (a UDP
//! request/retry protocol written here).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netns_test::packets::{Frame, Hook, HookContext, Verdict};
use netns_test::timeline::EventKind;
use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

/// Two hosts over a link the engine carries (perfect conditions).
fn client_server() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .host("server")
        .link(Link::new("client", "server").addrs("10.0.0.1/24", "10.0.0.2/24").conditions(Conditions::new()))
}

const SERVER: &str = "10.0.0.2:7000";

/// A socket bound in the server and one in the client, connected to it.
fn sockets(net: &Network) -> (UdpSocket, UdpSocket) {
    let server = net.node("server").run(|| UdpSocket::bind(SERVER).unwrap());
    let client = net.node("client").run(|| {
        let socket = UdpSocket::bind("10.0.0.1:0").unwrap();
        socket.connect(SERVER).unwrap();
        socket
    });
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (client, server)
}

/// Receives one datagram as text, or `None` when nothing comes within the socket's timeout.
fn receive(socket: &UdpSocket) -> Option<String> {
    let mut buffer = [0u8; 1500];
    let n = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// Sends datagrams `1..=count` then `end`, and returns the numbers received before `end`
/// (a perfect link keeps their order, so nothing sent before `end` arrives after it).
fn numbers_through(client: &UdpSocket, server: &UdpSocket, count: u32) -> Vec<u32> {
    for n in 1..=count {
        client.send(n.to_string().as_bytes()).unwrap();
    }
    client.send(b"end").unwrap();
    let mut received = Vec::new();
    loop {
        match receive(server).as_deref() {
            Some("end") => return received,
            Some(text) => received.push(text.parse().unwrap()),
            None => panic!("`end` never came; received {received:?}"),
        }
    }
}

#[netns_test(topology = client_server)]
fn a_drop_list_drops_exactly_the_3rd_and_5th_datagram_on_every_run(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    for run in 0..3 {
        let udp = |frame: &Frame<'_>| frame.udp().is_some();
        let guard = link.hook_from("client", Hook::drop_nth_matching([3, 5], "UDP", udp)).unwrap();
        let received = numbers_through(&client, &server, 8);
        assert_eq!(received, [1, 2, 4, 6, 7, 8], "run {run}");
        let counts = guard.counts();
        assert_eq!((counts.dropped, counts.seen - counts.passed), (2, 2), "run {run}: {counts}");
        drop(guard);
    }
    let (forward, backward) = (link.counters_from("client").unwrap(), link.counters_from("server").unwrap());
    assert_eq!((forward.hook_drops, backward.hook_drops), (6, 0));
    let kinds: Vec<EventKind> = net.events().iter().map(|event| event.kind).collect();
    let installs = kinds.iter().filter(|kind| **kind == EventKind::HookInstalled).count();
    let removals = kinds.iter().filter(|kind| **kind == EventKind::HookRemoved).count();
    assert_eq!((installs, removals), (3, 3), "{kinds:?}");
    let removal = net.events().into_iter().rfind(|event| event.kind == EventKind::HookRemoved).unwrap();
    assert_eq!(removal.subject, "client:eth0 → server:eth0");
    assert!(removal.detail.contains("dropped 2"), "{removal:?}");
}

#[netns_test(topology = client_server)]
fn drop_nth_counts_every_frame_and_the_index_starts_at_zero(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    // Once the client has resolved the server's address (the first datagram), nothing but
    // the datagrams crosses (the nodes have no IPv6): the 2nd frame is the 2nd datagram.
    assert_eq!(numbers_through(&client, &server, 1), [1]);
    let guard = link.hook_from("client", Hook::drop_nth([2])).unwrap();
    let received = numbers_through(&client, &server, 4);
    assert_eq!(guard.dropped_indexes(), [1], "the 2nd frame has index 1");
    assert_eq!(guard.counts().dropped, 1);
    assert_eq!(received, [1, 3, 4]);
}

#[netns_test(topology = client_server)]
fn a_delayed_datagram_arrives_after_the_one_sent_next(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    let delay = Duration::from_millis(500);
    let _guard = link
        .hook_from("client", move |frame: &Frame<'_>, _: &mut HookContext| {
            if frame.udp_payload() == Some(b"slow") { Verdict::Delay(delay) } else { Verdict::Pass }
        })
        .unwrap();
    let sent = Instant::now();
    client.send(b"slow").unwrap();
    client.send(b"fast").unwrap();
    assert_eq!(receive(&server).as_deref(), Some("fast"));
    assert_eq!(receive(&server).as_deref(), Some("slow"));
    // A lower bound only: the hook's delay is the least the datagram can have taken.
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
}

#[netns_test(topology = client_server)]
fn a_duplicated_datagram_arrives_twice(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    let guard = link
        .hook_from("client", |frame: &Frame<'_>, _: &mut HookContext| {
            if frame.udp_payload() == Some(b"twice") { Verdict::Duplicate } else { Verdict::Pass }
        })
        .unwrap();
    client.send(b"twice").unwrap();
    client.send(b"end").unwrap();
    let received: Vec<String> = std::iter::from_fn(|| receive(&server)).take(3).collect();
    assert_eq!(received, ["twice", "twice", "end"]);
    assert_eq!(guard.counts().duplicated, 1);
}

#[netns_test(topology = client_server)]
fn a_replaced_datagram_arrives_with_the_hooks_bytes(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    let guard = link
        .hook_from("client", |frame: &Frame<'_>, _: &mut HookContext| {
            if frame.udp_payload() != Some(b"hello") {
                return Verdict::Pass;
            }
            let mut bytes = frame.bytes().to_vec();
            let payload = bytes.len() - 5;
            bytes[payload..].make_ascii_uppercase();
            // IPv4 lets a UDP datagram go without a checksum (0): the changed payload needs
            // no new one.
            let checksum = 14 + 20 + 6;
            bytes[checksum..checksum + 2].fill(0);
            Verdict::Replace(bytes)
        })
        .unwrap();
    client.send(b"hello").unwrap();
    assert_eq!(receive(&server).as_deref(), Some("HELLO"));
    assert_eq!(guard.counts().replaced, 1);
}

#[netns_test(topology = client_server)]
fn a_second_hook_on_one_direction_is_refused_and_a_plain_link_has_none(net: &Network) {
    let link = net.link("client", "server");
    let first = link.hook_from("client", |_: &Frame<'_>, _: &mut HookContext| Verdict::Pass).unwrap();
    let error = link.hook_from("client", Hook::drop_nth([1])).unwrap_err().to_string();
    assert!(error.contains("client:eth0 → server:eth0") && error.contains("closure"), "{error}");
    // The other direction is free, and so is this one once the first guard is gone.
    let other = link.hook_from("server", Hook::drop_nth([1])).unwrap();
    drop(first);
    drop(link.hook_from("client", Hook::drop_nth([1])).unwrap());
    drop(other);
    let error = link.hook_from("nobody", Hook::drop_nth([1])).unwrap_err().to_string();
    assert!(error.contains("nobody"), "{error}");
}

#[netns_test]
fn a_link_without_conditions_takes_no_hook(net: &Network) {
    let link = net.link(net.local().name(), "test1");
    let error = link.hook_from("test1", Hook::drop_nth([1])).unwrap_err().to_string();
    assert!(error.contains("without conditions"), "{error}");
}

/// Drops each UDP datagram with probability ½, from the hook's seeded generator, and prints
/// which of 40 arrived.
#[netns_test(topology = client_server)]
#[ignore = "run by random_hook_decisions_replay_with_the_seed"]
fn subject_random_drops(net: &Network) {
    let (client, server) = sockets(net);
    // Address resolution first: datagrams sent while the client's neighbour entry is still
    // unresolved leave in a different order from run to run, and the generator's draws go to
    // frames in the order they arrive.
    assert_eq!(numbers_through(&client, &server, 1), [1]);
    let link = net.link("client", "server");
    let _guard = link
        .hook_from("client", |frame: &Frame<'_>, ctx: &mut HookContext| {
            if frame.udp().is_some() && frame.udp_payload() != Some(b"end") && ctx.chance(0.5) {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        })
        .unwrap();
    let received = numbers_through(&client, &server, 40);
    println!("received: {received:?}");
}

#[test]
fn random_hook_decisions_replay_with_the_seed() {
    let run = |seed: &str| {
        let outcome = run_subject(subject("subject_random_drops").env("NETNS_TEST_SEED", seed));
        assert!(outcome.status.success(), "{}", outcome.all());
        let text = outcome.all();
        let line = text.lines().find_map(|line| line.find("received: ").map(|at| &line[at..]));
        line.expect("the subject prints").to_string()
    };
    let first = run("42");
    assert_eq!(first, run("42"), "one seed, one set of drops");
    assert_ne!(first, run("43"), "another seed, other drops");
    assert_ne!(first, format!("received: {:?}", (1..=40).collect::<Vec<u32>>()), "some were dropped");
}

#[netns_test(topology = client_server)]
#[ignore = "fails on purpose; run by a_panicking_hook_fails_the_test_with_its_message"]
fn subject_hook_panics(net: &Network) {
    let (client, server) = sockets(net);
    let link = net.link("client", "server");
    let guard = link
        .hook_from("client", |frame: &Frame<'_>, _: &mut HookContext| {
            if frame.udp_payload() == Some(b"boom") {
                panic!("the hook met a datagram it cannot take");
            }
            Verdict::Pass
        })
        .unwrap();
    client.send(b"boom").unwrap();
    // The frame that met the panic passes, and so do those after it: the link goes on.
    assert_eq!(receive(&server).as_deref(), Some("boom"));
    client.send(b"after").unwrap();
    assert_eq!(receive(&server).as_deref(), Some("after"));
    assert!(guard.panicked());
    println!("the link carried on");
}

#[test]
fn a_panicking_hook_fails_the_test_with_its_message() {
    let outcome = run_subject(&mut subject("subject_hook_panics"));
    let text = outcome.all();
    assert!(!outcome.status.success(), "{text}");
    assert!(text.contains("the link carried on"), "{text}");
    let failure = text
        .lines()
        .skip_while(|line| !line.contains("subject_hook_panics` panicked at"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(failure.contains("tests/hooks.rs:"), "the hook's location: {text}");
    assert!(
        failure.contains("a per-packet hook on client:eth0 → server:eth0 (closure) panicked: the hook met a datagram it cannot take"),
        "{text}"
    );
    assert!(text.contains("hook_panicked client:eth0 → server:eth0"), "on the timeline: {text}");
}

// The README's drop-list example: a request/retry protocol over UDP. The client sends a
// request and, when no reply comes within its timeout, sends it again; the server answers
// each request it gets. Dropping the first request shows the retry.

/// The client of the example protocol: sends `request` until a reply comes, at most
/// `attempts` times; returns the reply and how many sends it took.
fn request_with_retry(socket: &UdpSocket, request: &[u8], attempts: u32) -> Option<(String, u32)> {
    // Long enough that a reply is never late on a loaded machine: only a dropped request
    // makes the client retry.
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for attempt in 1..=attempts {
        socket.send(request).unwrap();
        let mut buffer = [0u8; 1500];
        if let Ok(n) = socket.recv(&mut buffer) {
            return Some((String::from_utf8_lossy(&buffer[..n]).into_owned(), attempt));
        }
    }
    None
}

#[netns_test(topology = client_server)]
fn the_client_retries_a_dropped_request(net: &Network) {
    let server = net.node("server").run(|| UdpSocket::bind(SERVER).unwrap());
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1500];
        while let Ok((n, peer)) = server.recv_from(&mut buffer) {
            let reply = [b"re: ".as_slice(), &buffer[..n]].concat();
            server.send_to(&reply, peer).unwrap();
        }
    });
    let client = net.node("client").run(|| {
        let socket = UdpSocket::bind("10.0.0.1:0").unwrap();
        socket.connect(SERVER).unwrap();
        socket
    });
    // README begin: drop list
    let link = net.link("client", "server");
    // Drop the 1st UDP datagram from client to server: the first request.
    let drops = link.hook_from("client", Hook::drop_nth_matching([1], "UDP", |f| f.udp().is_some())).unwrap();
    let (reply, attempts) = request_with_retry(&client, b"ping", 20).expect("a reply");
    assert_eq!(reply, "re: ping");
    assert_eq!(attempts, 2, "the first request was dropped, the retry answered");
    assert_eq!(drops.counts().dropped, 1);
    // README end
}

#[test]
fn the_readme_shows_the_drop_list_example_tested_here() {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let region = include_str!("hooks.rs").split("// README begin: drop list\n").nth(1).unwrap();
    let region = region.split("// README end").next().unwrap();
    assert!(squeeze(include_str!("../../README.md")).contains(&squeeze(region)), "README: {region}");
}
