//! The degradation ladder, as a test of one's own protocol walks it: one test per preset
//! (rstest `#[values]`), each asserting that a TCP transfer's goodput stays within the
//! bounds expected of that rung. The transfers are small, so that the ladder stays quick
//! even on the satellite rungs' long round trips.

use netns_test::{Conditions, Link, Topology, TopologyBuilder};
use netns_test_tests::{cpu_exclusive, tcp_goodput};
use rstest::rstest;

/// Two hosts joined by a link whose conditions the test sets.
fn ladder() -> TopologyBuilder {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(Link::new("test0", "test1").addrs("1.1.1.2/24", "1.1.1.1/24").conditions(Conditions::new()))
        .random_seed(2024)
}

/// For each rung: the bytes to send, and the goodput in Mbit/s expected at least and at
/// most. The most is the preset's rate less the headers (1460 bytes of TCP payload in each
/// 1514-byte frame); the least leaves room for slow start over the rung's round trip, its
/// bursty loss, and a loaded machine.
fn bounds(preset: &str) -> (usize, f64, f64) {
    match preset {
        "lan" => (16 << 20, 50.0, 1000.0),
        "wifi" => (2 << 20, 5.0, 50.0),
        "wifi_congested" => (256 << 10, 0.5, 5.0),
        "mobile_4g" => (512 << 10, 1.0, 12.0),
        "mobile_3g" => (128 << 10, 0.2, 1.6),
        "satellite_leo" => (1 << 20, 3.0, 50.0),
        "satellite_geo" => (256 << 10, 0.2, 10.0),
        "lossy" => (64 << 10, 0.05, 1.0),
        _ => unreachable!("{preset} is not a preset"),
    }
}

#[rstest]
#[netns_test::test(topology = ladder, timeout = "300s")]
fn goodput_stays_within_the_rungs_bounds(
    #[values(
        "lan",
        "wifi",
        "wifi_congested",
        "mobile_4g",
        "mobile_3g",
        "satellite_leo",
        "satellite_geo",
        "lossy"
    )]
    preset: &str,
) {
    let net = netns_test::network();
    let _cpu = cpu_exclusive();
    net.link("test0", "test1").set_conditions(Conditions::preset(preset).unwrap()).unwrap();
    let (bytes, least, most) = bounds(preset);
    let most = most * 1460.0 / 1514.0;
    let goodput = tcp_goodput(net, "1.1.1.1:7000", bytes) / 1e6;
    eprintln!("{preset}: {goodput:.3} Mbit/s");
    assert!(
        goodput >= least && goodput <= most,
        "{preset}: {goodput:.3} Mbit/s, expected {least} to {most:.3} Mbit/s"
    );
}
