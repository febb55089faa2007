//! Live captures: on a link the engine carries and on a plain one, waiting for a frame with a
//! deadline, counting, a bounded ring's drops, pcap files; and the README's example, the TCP
//! handshake seen on the link.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use netns_test::{Conditions, Error, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::eventually;

fn client_server() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .host("server")
        .link(Link::new("client", "server").addrs("10.0.0.1/24", "10.0.0.2/24").conditions(Conditions::new()))
}

#[netns_test(topology = client_server)]
fn the_tcp_handshake_is_seen_on_the_link(net: &Network) {
    // README begin: handshake
    let link = net.link("client", "server");
    let (to_server, to_client) = (link.capture_from("client").unwrap(), link.capture_from("server").unwrap());
    let listener = net.node("server").run(|| TcpListener::bind("10.0.0.2:8080").unwrap());
    let _stream = net.node("client").run(|| TcpStream::connect("10.0.0.2:8080").unwrap());
    let _accepted = listener.accept().unwrap();
    let timeout = Duration::from_secs(10);
    let syn = to_server.wait_for("TCP SYN", timeout, |f| f.is_tcp_syn()).unwrap();
    let syn_ack = to_client.wait_for("TCP SYN-ACK", timeout, |f| f.is_tcp_syn_ack()).unwrap();
    let ack = to_server
        .wait_for("the handshake's ACK", timeout, |f| f.tcp_flags() == Some(0x10) && f.tcp().is_some())
        .unwrap();
    assert!(syn.at <= ack.at, "{syn:?} {syn_ack:?} {ack:?}");
    assert_eq!(to_server.count(|f| f.is_tcp_syn()), 1, "the client sent exactly one SYN");
    assert_eq!(syn.frame().tcp().unwrap().get_destination(), 8080);
    // README end
}

#[test]
fn the_readme_shows_the_handshake_example_tested_here() {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let region = include_str!("capture.rs").split("// README begin: handshake\n").nth(1).unwrap();
    let region = region.split("// README end").next().unwrap();
    assert!(squeeze(include_str!("../../README.md")).contains(&squeeze(region)), "README: {region}");
}

#[netns_test(topology = client_server)]
fn waiting_for_a_frame_that_never_comes_times_out(net: &Network) {
    let capture = net.link("client", "server").capture_from("client").unwrap();
    let error = capture.wait_for("TCP SYN", Duration::from_millis(100), |f| f.is_tcp_syn()).unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("client → server:eth0 (TCP SYN)"), "{error}");
    // A deadline as long as any: it never overflows (it returns at once here, as a frame
    // seen before the call counts).
    let _ping = net.node("client").ping("server").count(1).run().unwrap();
    capture.wait_for("echo request", Duration::MAX, |f| f.is_echo_request()).unwrap();
}

#[netns_test]
fn counting_echo_requests_on_a_plain_link_equals_the_pingers_count(net: &Network) {
    // The pair's link has no conditions: no engine carries it, and a capture leaves it so.
    assert_eq!(net.random_seed(), None, "no backend");
    let peer = net.node("test1");
    let capture = peer.capture(peer.interfaces()[0].name()).unwrap();
    let stats = net.local().ping("test1").count(15).interval(Duration::ZERO).run().unwrap();
    let requests = || capture.count(|f| f.is_echo_request()) as u64;
    let replies = || capture.count(|f| f.is_echo_reply()) as u64;
    // The capture thread may still be reading the last frames: wait for them, then compare.
    eventually(Duration::from_secs(10), || {
        requests() >= stats.transmitted() && replies() >= stats.received()
    });
    assert_eq!(requests(), stats.transmitted());
    assert_eq!(replies(), stats.received());
    assert_eq!(capture.dropped(), 0);
    let link = net.link(net.local().name(), "test1");
    let direction = link.capture_from(net.local().name()).unwrap();
    net.local().ping("test1").count(3).interval(Duration::ZERO).run().unwrap();
    eventually(Duration::from_secs(10), || direction.count(|f| f.is_echo_request()) >= 3);
    assert_eq!(direction.count(|f| f.is_echo_request()), 3);
    assert_eq!(direction.count(|f| f.is_echo_reply()), 0, "only the direction asked for");
}

#[netns_test]
fn a_full_ring_counts_what_it_could_not_keep(net: &Network) {
    let peer = net.node("test1");
    let capture = peer.capture_bounded(peer.interfaces()[0].name(), 300).unwrap();
    let stats = net.local().ping("test1").count(10).interval(Duration::ZERO).run().unwrap();
    let seen = || capture.frames().len() as u64 + capture.dropped();
    eventually(Duration::from_secs(10), || seen() >= 2 * stats.received());
    assert!(capture.bytes() <= 300, "{}", capture.bytes());
    assert!(capture.dropped() > 0, "20 frames of 98 bytes do not fit in 300");
    assert!(seen() >= 2 * stats.received(), "every frame is kept or counted");
}

#[netns_test]
fn a_capture_writes_a_pcap_file(net: &Network) {
    let peer = net.node("test1");
    let capture = peer.capture(peer.interfaces()[0].name()).unwrap();
    net.local().ping("test1").count(2).interval(Duration::ZERO).run().unwrap();
    eventually(Duration::from_secs(10), || capture.count(|f| f.is_echo_reply()) >= 2);
    let dir = std::env::temp_dir().join(format!("netns-test-capture-{}", std::process::id()));
    let path = dir.join("ping.pcap");
    capture.write_pcap(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(&bytes[..4], &0xa1b2_3c4d_u32.to_ne_bytes(), "nanosecond pcap magic");
    let frames = capture.frames();
    let expected: usize = 24 + frames.iter().map(|frame| 16 + frame.bytes.len()).sum::<usize>();
    assert_eq!(bytes.len(), expected);
}
