//! The quickstart, end to end: two network namespaces joined by a veth pair, 1.1.1.2/24 on
//! one end and 1.1.1.1/24 on the other, pinged both ways, with iputils' output.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! It works as root and as an ordinary user (rootless mode, which needs unprivileged user
//! namespaces). Nothing touches the host's own network: the namespaces live inside a child
//! process, held by file descriptor only, and vanish with it.

use std::process::ExitCode;
use std::time::Duration;

use netns_test::{Link, Network, Topology, sandbox};

/// The default topology, a pair of hosts, spelled out with the builder (it is also
/// [`Topology::pair`]).
fn pair() -> Result<Topology, netns_test::topology::TopologyError> {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(Link::new("test0", "test1").ifnames("veth0", "veth1").addrs("1.1.1.2/24", "1.1.1.1/24"))
        .build()
}

/// Pings each end from the other and prints what iputils' `ping -c 3 -i 0.2` would.
fn ping_both_ways(net: &Network) -> netns_test::Result<()> {
    for (from, to) in [("test0", "1.1.1.1"), ("test1", "1.1.1.2")] {
        let node = net.node(from);
        let local = node.addr().map(|addr| addr.to_string()).unwrap_or_default();
        println!("{from} ({local})$ ping -c 3 -i 0.2 {to}");
        let stats = node.ping(to).count(3).interval(Duration::from_millis(200)).run()?;
        println!("{stats:#}\n");
        stats.assert_loss_at_most(0.0);
    }
    Ok(())
}

fn main() -> ExitCode {
    let result =
        pair().map_err(netns_test::Error::from).and_then(|topology| sandbox(topology, ping_both_ways));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: {error:?}");
            ExitCode::FAILURE
        }
    }
}
