//! The topologies the documentation shows, brought up as written and checked with
//! `ping_all()`: the README's topology file and builder example, the crate documentation's
//! builder examples, and every file under `tests/topologies/`.
//!
//! The README's TOML is read from README.md itself; the Rust examples are copied here, and a
//! test checks that the documentation still shows exactly this code.

use std::time::Duration;

use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};

const README: &str = include_str!("../../README.md");
const LIB_DOCS: &str = include_str!("../../netns-test/src/lib.rs");
const TOPOLOGY_DOCS: &str = include_str!("../../netns-test/src/topology/mod.rs");
const THIS_FILE: &str = include_str!("examples.rs");

/// The README's ```toml blocks that are topologies (the others are Cargo manifests).
fn readme_topology_files() -> Vec<&'static str> {
    README
        .split("```toml\n")
        .skip(1)
        .map(|block| block.split("```").next().expect("split yields a first part"))
        .filter(|block| block.contains("[nodes]"))
        .collect()
}

fn readme_topology_file() -> netns_test::Result<Topology> {
    Ok(Topology::from_toml(readme_topology_files()[0], "README.md")?)
}

// The README's builder example.
fn behind_two_routers() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .router("r2")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24").mtu(1400))
        .link(Link::new("r1", "r2").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .link(Link::new("r2", "server").addrs("10.0.3.1/24", "10.0.3.2/24"))
        .auto_routes() // shortest paths through routers, for every subnet
        .hostnames() // every node gets its own hostname
}

// The crate documentation's example of link conditions (src/lib.rs).
fn wan() -> TopologyBuilder {
    let slow = Conditions::new().delay(Duration::from_millis(10)).loss(0.01);
    Topology::builder()
        .host("client")
        .host("server")
        .link(Link::new("client", "server").addrs("10.0.0.1/24", "10.0.0.2/24").conditions(slow).capture())
}

// The example of `TopologyBuilder`'s documentation (src/topology/mod.rs), before its `build()`.
fn client_router_server() -> TopologyBuilder {
    Topology::builder()
        .host("client")
        .router("r1")
        .host("server")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
        .link(Link::new("r1", "server").addrs("10.0.2.1/24", "10.0.2.2/24"))
        .auto_routes()
}

// The README's example of presets, buffers, blackholes and outages, run below.
fn walk_the_ladder(net: &Network) -> netns_test::Result<()> {
    let link = net.link("test0", "test1"); // built with conditions, so they may change
    link.set_conditions(Conditions::mobile_3g())?;
    link.set_conditions(Conditions::satellite_geo().delay(Duration::from_millis(250)))?;
    link.set_conditions(Conditions::new().rate(2_000_000).buffer(Duration::from_millis(50)))?;
    let dark = link.blackhole(Duration::from_millis(500))?; // nothing crosses for 500 ms
    dark.wait()?; // or drop it to heal at once
    let outages = link.outages(Duration::from_secs(10), Duration::from_secs(1))?;
    outages.stop()?; // or drop it
    Ok(())
}

// The README's gallery example of an uplink replugged mid-connection
// (`topologies/uplink-replug.toml`), run below.
fn replug_the_uplink(net: &Network) -> Result<(), Box<dyn std::error::Error>> {
    let server = std::net::SocketAddr::from(([10, 0, 100, 2], 7000));
    let listener = net.node("server").run(|| std::net::TcpListener::bind(server))?;
    let client = net.local().run(|| std::net::TcpStream::connect(server))?;
    let (_accepted, _) = listener.accept()?;
    // Wi-Fi to cellular, or one access router to another: the same address on a new link.
    let old = net.link("client", "r1");
    let new = net.replug(old, Link::new("client", "r2").addrs("10.0.1.2/24", "10.0.1.1/24"))?;
    assert_eq!(client.local_addr()?.ip().to_string(), "10.0.1.2"); // the connection goes on
    net.local().ping("10.0.100.2").count(1).run()?.assert_reachable();
    new.remove()?; // unplugged: the client reaches nothing now
    Ok(())
}

/// The pair topology with a link that has conditions (a perfect link), for `walk_the_ladder`.
fn changeable_pair() -> TopologyBuilder {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(Link::new("test0", "test1").addrs("1.1.1.2/24", "1.1.1.1/24").conditions(Conditions::new()))
}

#[netns_test(topology = changeable_pair)]
fn the_readme_ladder_example_runs(net: &Network) {
    walk_the_ladder(net).unwrap();
    let kinds: Vec<_> = net.events().iter().map(|event| event.kind.name()).collect();
    assert!(kinds.contains(&"blackhole_started") && kinds.contains(&"blackhole_ended"), "{kinds:?}");
}

/// Text without whitespace or comment markers, to compare code across indentations.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|line| line.trim_start().trim_start_matches("//!").trim_start_matches("///"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The text of function `name` in this file, from `fn` to its closing brace.
fn function(name: &str) -> &'static str {
    let start = THIS_FILE.find(&format!("\nfn {name}(")).expect("the function is in this file") + 1;
    let end = THIS_FILE[start..].find("\n}\n").expect("the function ends") + start + 2;
    &THIS_FILE[start..end]
}

/// The body of function `name` (between its outer braces).
fn body(name: &str) -> &'static str {
    let function = function(name);
    &function[function.find('{').expect("a body") + 1..function.len() - 1]
}

#[test]
fn the_documentation_shows_exactly_the_examples_tested_here() {
    assert_eq!(readme_topology_files().len(), 1, "one topology file in the README, brought up below");
    assert!(squeeze(README).contains(&squeeze(function("behind_two_routers"))), "README: behind_two_routers");
    assert!(squeeze(LIB_DOCS).contains(&squeeze(function("wan"))), "src/lib.rs: wan");
    assert!(squeeze(README).contains(&squeeze(function("walk_the_ladder"))), "README: walk_the_ladder");
    assert!(squeeze(README).contains(&squeeze(function("replug_the_uplink"))), "README: replug_the_uplink");
    assert!(
        squeeze(TOPOLOGY_DOCS).contains(&squeeze(body("client_router_server"))),
        "src/topology/mod.rs: the TopologyBuilder example"
    );
}

#[netns_test(topology = readme_topology_file)]
fn the_readme_topology_file_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology = behind_two_routers)]
fn the_readme_builder_example_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology = wan)]
fn the_conditions_example_reaches_all_pairs(net: &Network) {
    // 1 % loss each way: five probes per pair, so that a pair fails only if all five are lost.
    net.ping_all_with(|ping| ping.count(5).interval(Duration::from_millis(10)))
        .unwrap()
        .assert_all_reachable();
}

#[netns_test(topology = client_router_server)]
fn the_builder_documentation_example_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology_file = "topologies/ipv6-router.toml")]
fn topology_file_ipv6_router_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology_file = "topologies/star4.toml")]
fn topology_file_star4_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology_file = "topologies/two-routers.toml")]
fn topology_file_two_routers_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology_file = "topologies/uplink-replug.toml")]
fn topology_file_uplink_replug_reaches_all_pairs(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
}

#[netns_test(topology_file = "topologies/uplink-replug.toml")]
fn the_readme_replug_example_runs(net: &Network) {
    replug_the_uplink(net).unwrap();
    net.local()
        .ping("10.0.100.2")
        .count(1)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap()
        .assert_unreachable();
}

#[netns_test(topology_file = "topologies/wan.toml")]
fn topology_file_wan_reaches_all_pairs(net: &Network) {
    // 2 % loss on the WAN hop: five probes per pair.
    net.ping_all_with(|ping| ping.count(5).interval(Duration::from_millis(10)))
        .unwrap()
        .assert_all_reachable();
}

#[test]
fn every_topology_file_is_brought_up_above() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/topologies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().replace('-', "_");
            // NAT topologies do not reach all pairs (nothing outside reaches inside): the NAT
            // gallery brings them up and shows what they do.
            let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
            if include_str!("nat_gallery.rs").contains(&format!("\"topologies/{file_name}\"")) {
                continue;
            }
            assert!(
                THIS_FILE.contains(&format!("fn topology_file_{name}_reaches_all_pairs")),
                "{} has no test here",
                path.display()
            );
        }
    }
}
