//! The NAT gallery (issue 10): UDP hole punching between two peers behind independent NATs
//! through a rendezvous server, which succeeds for cone NATs and fails for symmetric ×
//! symmetric; and a carrier-grade NAT in front of two home NATs, with and without hairpinning.
//!
//! Failures are observed, not waited out: a hole punch has failed once the NAT counted the
//! peer's datagram as filtered, and then nothing is waiting at the socket.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use netns_test::topology::Nat;
use netns_test::{Network, netns_test};
use netns_test_tests::eventually;
use rstest::rstest;

const WAIT: Duration = Duration::from_secs(10);

/// The inside packets to the outside address a NAT has dealt with: hairpinned, filtered
/// while hairpinning, or turned back to the router.
fn turned(counters: &netns_test::nat::NatCounters) -> u64 {
    counters.hairpinned + counters.bounced + counters.filtered
}

fn udp(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

fn receive(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buffer = [0u8; 128];
    let (len, from) = socket.recv_from(&mut buffer).expect("a datagram arrives");
    (String::from_utf8_lossy(&buffer[..len]).into_owned(), from)
}

/// A minimal hole-punch client pair: both register with the rendezvous server, which tells
/// each the other's public endpoint; alice punches towards bob, then bob towards alice.
/// Returns whether bob's datagram reached alice (and alice's answer bob).
fn hole_punch(net: &Network) -> bool {
    let server = net.node("rendezvous").run(|| udp("192.0.2.2:3478"));
    let alice = udp("192.168.1.2:5000");
    let bob = net.node("bob").run(|| udp("192.168.2.2:5000"));
    alice.send_to(b"register alice", "192.0.2.2:3478").unwrap();
    let (_, alice_public) = receive(&server);
    bob.send_to(b"register bob", "192.0.2.2:3478").unwrap();
    let (_, bob_public) = receive(&server);
    // The rendezvous server introduces them.
    server.send_to(bob_public.to_string().as_bytes(), alice_public).unwrap();
    server.send_to(alice_public.to_string().as_bytes(), bob_public).unwrap();
    let bob_seen_by_alice: SocketAddr = receive(&alice).0.parse().unwrap();
    let alice_seen_by_bob: SocketAddr = receive(&bob).0.parse().unwrap();
    // Alice's punch opens her NAT towards bob (bob's NAT may drop it).
    alice.send_to(b"punch", bob_seen_by_alice).unwrap();
    let nat_a = net.nat("nat-a").unwrap();
    let before = nat_a.counters();
    bob.send_to(b"hello alice", alice_seen_by_bob).unwrap();
    let outcome = eventually(WAIT, || {
        let now = nat_a.counters();
        now.translated_in > before.translated_in || now.filtered > before.filtered
    });
    assert!(outcome, "bob's datagram never reached nat-a: {}", nat_a.counters());
    if nat_a.counters().filtered > before.filtered {
        alice.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 16];
        assert!(alice.recv_from(&mut buffer).is_err(), "nothing reached alice");
        return false;
    }
    let (text, from) = receive(&alice);
    assert_eq!((text.as_str(), from), ("hello alice", bob_seen_by_alice));
    alice.send_to(b"hello bob", from).unwrap();
    // Behind an endpoint-independent filter, alice's punch reached bob first.
    let (mut text, mut from) = receive(&bob);
    if text == "punch" {
        (text, from) = receive(&bob);
    }
    assert_eq!((text.as_str(), from), ("hello bob", alice_seen_by_bob));
    true
}

#[rstest]
#[case::full_cone("full-cone", "full-cone", true)]
#[case::restricted_cone("restricted-cone", "restricted-cone", true)]
#[case::port_restricted("port-restricted", "port-restricted", true)]
#[case::symmetric_and_port_restricted("symmetric", "port-restricted", false)]
#[case::symmetric_and_symmetric("symmetric", "symmetric", false)]
#[netns_test::test(topology_file = "topologies/hole-punch.toml")]
fn hole_punching(#[case] a: &str, #[case] b: &str, #[case] succeeds: bool) {
    let net = netns_test::network();
    net.nat("nat-a").unwrap().set(Nat::preset(a).unwrap()).unwrap();
    net.nat("nat-b").unwrap().set(Nat::preset(b).unwrap()).unwrap();
    assert_eq!(hole_punch(net), succeeds, "{a} × {b}");
}

/// The laptop (behind `home`) and the phone (behind `flat`) share the CGNAT's public address;
/// each learns its public endpoint from the server, the laptop opens its home NAT towards the
/// phone's, and the phone sends to the laptop's. Returns whether the CGNAT hairpinned it to
/// the laptop, rather than turning it back to its own stack.
fn reach_each_other_through_the_cgnat(net: &Network) -> bool {
    let server = net.node("server").run(|| udp("203.0.113.1:3478"));
    let laptop = udp("192.168.1.2:6000");
    let phone = net.node("phone").run(|| udp("192.168.2.2:6000"));
    laptop.send_to(b"who am i", "203.0.113.1:3478").unwrap();
    let (_, laptop_public) = receive(&server);
    phone.send_to(b"who am i", "203.0.113.1:3478").unwrap();
    let (_, phone_public) = receive(&server);
    assert_eq!(laptop_public.ip(), phone_public.ip(), "one public address for both");
    let cgnat = net.nat("cgnat").unwrap();
    let before = cgnat.counters();
    laptop.send_to(b"open", phone_public).unwrap();
    assert!(eventually(WAIT, || turned(&cgnat.counters()) > turned(&before)), "the CGNAT saw `open`");
    let before = cgnat.counters();
    phone.send_to(b"hello laptop", laptop_public).unwrap();
    assert!(eventually(WAIT, || turned(&cgnat.counters()) > turned(&before)), "the CGNAT saw `hello laptop`");
    let after = cgnat.counters();
    if after.hairpinned > before.hairpinned {
        let (text, from) = receive(&laptop);
        assert_eq!((text.as_str(), from), ("hello laptop", phone_public));
        return true;
    }
    assert_eq!(after.bounced, before.bounced + 1, "{after}");
    laptop.set_nonblocking(true).unwrap();
    assert!(laptop.recv_from(&mut [0u8; 16]).is_err(), "nothing reached the laptop");
    false
}

#[netns_test(topology_file = "topologies/cgnat.toml")]
fn two_homes_behind_a_hairpinning_cgnat_reach_each_other(net: &Network) {
    assert!(reach_each_other_through_the_cgnat(net));
    assert!(net.nat("cgnat").unwrap().counters().hairpinned >= 1);
}

#[netns_test(topology_file = "topologies/cgnat.toml")]
fn without_hairpinning_the_cgnat_keeps_them_apart(net: &Network) {
    net.nat("cgnat").unwrap().set(Nat::port_restricted().hairpin(false)).unwrap();
    assert!(!reach_each_other_through_the_cgnat(net));
}
