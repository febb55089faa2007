//! The README's flake-hunting recipe needs a test that fails now and then: this one, ignored so
//! that the suite never runs it by accident. `cargo xtask ci` runs the recipe on it.

use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};

fn lossy_pair() -> TopologyBuilder {
    Topology::builder().host("a").host("b").link(
        Link::new("a", "b").addrs("192.0.2.1/24", "192.0.2.2/24").conditions(Conditions::new().loss(0.1)),
    )
}

/// One echo over a link that loses a tenth of its frames: the request and the reply both get
/// through about four times in five, so fifty runs all pass once in thirty thousand. Each run
/// has a new seed unless `NETNS_TEST_SEED` replays one.
#[netns_test(topology = lossy_pair)]
#[ignore = "deliberately flaky: the README's flake-hunting recipe runs it"]
fn a_deliberately_flaky_test(net: &Network) {
    let stats = net
        .node("a")
        .ping("192.0.2.2")
        .count(1)
        .timeout(std::time::Duration::from_millis(300))
        .run()
        .unwrap();
    stats.assert_reachable();
}
