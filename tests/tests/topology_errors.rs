//! Every kind of invalid topology gives a typed error that names the offending item, from
//! the builder and, with file, line and column, from a topology file. Nothing is created:
//! these are plain tests.

use netns_test::{Link, Topology, TopologyError, TopologyErrorKind};

fn builder_error(builder: netns_test::TopologyBuilder) -> TopologyError {
    builder.build().expect_err("the topology is invalid")
}

fn file_error(text: &str) -> TopologyError {
    Topology::from_toml(text, "bug.toml").expect_err("the topology file is invalid")
}

fn two_hosts() -> netns_test::TopologyBuilder {
    Topology::builder().host("a").host("b")
}

#[test]
fn empty() {
    let error = builder_error(Topology::builder());
    assert_eq!(error.kind, TopologyErrorKind::Empty);
    assert_eq!(error.to_string(), "the topology has no nodes");
}

#[test]
fn invalid_and_duplicate_node_names() {
    let error = builder_error(Topology::builder().host("web server"));
    assert_eq!(
        error.to_string(),
        "invalid node name `web server`: character ' ' is not allowed; use letters, digits, `-` and `_`"
    );
    let long = "n".repeat(64);
    assert!(builder_error(Topology::builder().host(&long)).to_string().contains("64 bytes long"));
    let error = builder_error(Topology::builder().host("a").router("a"));
    assert_eq!(error.to_string(), "duplicate node `a`");
}

#[test]
fn unknown_node_in_a_link() {
    let error = builder_error(two_hosts().link(Link::new("a", "c")));
    assert_eq!(error.to_string(), "link 1 (`a` – `c`) refers to unknown node `c`");
    assert!(matches!(error.kind, TopologyErrorKind::UnknownNode { ref name, .. } if name == "c"));
}

#[test]
fn link_to_itself() {
    let error = builder_error(two_hosts().link(Link::new("a", "b")).link(Link::new("b", "b")));
    assert_eq!(error.to_string(), "link 2 (`b` – `b`) connects node `b` to itself");
}

#[test]
fn interface_names() {
    let error = builder_error(two_hosts().link(Link::new("a", "b").ifnames("a-very-long-name0", "eth0")));
    assert_eq!(
        error.to_string(),
        "interface name `a-very-long-name0` of node `a` is 17 bytes long; Linux allows at most 15"
    );
    let error = builder_error(two_hosts().link(Link::new("a", "b").ifnames("eth/0", "eth0")));
    assert_eq!(
        error.to_string(),
        "invalid interface name `eth/0` of node `a`: `/`, `:` and whitespace are not allowed"
    );
    let error = builder_error(
        two_hosts()
            .link(Link::new("a", "b").ifnames("eth0", "eth0"))
            .link(Link::new("a", "b").ifnames("eth0", "eth1")),
    );
    assert_eq!(error.to_string(), "node `a` has two interfaces named `eth0`");
    let error = builder_error(two_hosts().link(Link::new("a", "b").ifnames("lo", "eth0")));
    assert!(error.to_string().contains("already taken"), "{error}");
}

#[test]
fn bad_addresses() {
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.300/24", "10.0.0.2/24")));
    assert_eq!(
        error.to_string(),
        "invalid address `10.0.0.300/24` for interface `eth0` of node `a`: invalid IP address syntax"
    );
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.1", "10.0.0.2/24")));
    assert_eq!(
        error.to_string(),
        "invalid address `10.0.0.1` for interface `eth0` of node `a`: the prefix length is missing, e.g. `10.0.0.1/24`"
    );
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.0/24", "10.0.0.2/24")));
    assert!(error.to_string().contains("network or broadcast address of 10.0.0.0/24"), "{error}");
}

#[test]
fn duplicate_address() {
    let error = builder_error(
        Topology::builder()
            .host("a")
            .host("b")
            .host("c")
            .link(Link::new("a", "b").addrs("10.0.0.1/24", "10.0.0.2/24"))
            .link(Link::new("a", "c").addrs("10.0.1.1/24", "10.0.0.2/24")),
    );
    assert_eq!(
        error.to_string(),
        "address 10.0.0.2 is given to both interface `eth0` of node `b` and interface `eth0` of node `c`"
    );
}

#[test]
fn address_for_a_node_that_is_not_an_end() {
    let error = builder_error(
        Topology::builder().host("a").host("b").host("c").link(Link::new("a", "b").addr("c", "10.0.0.3/24")),
    );
    assert_eq!(
        error.to_string(),
        "link 1 (`a` – `b`) gives address 10.0.0.3/24 to node `c`, which is not one of its ends"
    );
}

#[test]
fn address_outside_the_link_subnet() {
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/24", "10.0.1.2/24")));
    assert_eq!(
        error.to_string(),
        "address 10.0.0.1/24 of interface `eth0` of node `a` is outside the subnet 10.0.1.0/24 of its link \
         (10.0.1.2/24 on interface `eth0` of node `b`)"
    );
}

#[test]
fn switches() {
    let error = builder_error(
        Topology::builder()
            .host("h")
            .switch("sw")
            .link(Link::new("h", "sw").addrs("10.0.0.1/24", "10.0.0.2/24")),
    );
    assert_eq!(
        error.to_string(),
        "link 1 (`h` – `sw`) gives address 10.0.0.2/24 to switch `sw`; switches have no addresses"
    );
    let error = builder_error(Topology::builder().switch("s1").switch("s2").link(Link::new("s1", "s2")));
    assert_eq!(
        error.to_string(),
        "link 1 (`s1` – `s2`) connects switch `s1` to switch `s2`; link switches through a router or a host"
    );
    let error =
        builder_error(Topology::builder().switch("sw").host("h").link(Link::new("h", "sw")).local("sw"));
    assert_eq!(
        error.to_string(),
        "the local node `sw` is a switch; the test body must run in a host or router"
    );
}

#[test]
fn a_switch_takes_at_most_1023_ports() {
    let mut builder = Topology::builder().switch("sw");
    for i in 0..1024 {
        builder = builder.host(format!("h{i}")).link(Link::new(format!("h{i}"), "sw"));
    }
    let error = builder_error(builder);
    assert_eq!(error.to_string(), "switch `sw` has 1024 ports; a Linux bridge takes at most 1023");
}

#[test]
fn mtu_range() {
    let error = builder_error(two_hosts().link(Link::new("a", "b").mtu(40)));
    assert_eq!(error.to_string(), "link 1 (`a` – `b`) has MTU 40; the MTU must be between 68 and 65535");
    let error =
        builder_error(two_hosts().link(Link::new("a", "b").addrs("fd00::1/64", "fd00::2/64").mtu(1000)));
    assert_eq!(
        error.to_string(),
        "link 1 (`a` – `b`) has MTU 1000; with IPv6 addresses the MTU must be between 1280 and 65535"
    );
}

#[test]
fn routes() {
    let linked = || two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/24", "10.0.0.2/24"));
    let error = builder_error(linked().route("a", "10.9.0.0/16", "10.5.0.1"));
    assert_eq!(
        error.to_string(),
        "gateway 10.5.0.1 of node `a` is not on a subnet the node is connected to (10.0.0.0/24)"
    );
    let error = builder_error(linked().route("a", "10.9.0.0/33", "10.0.0.2"));
    assert!(
        error.to_string().starts_with("invalid route `10.9.0.0/33 via 10.0.0.2` of node `a`: destination"),
        "{error}"
    );
    let error = builder_error(linked().route("a", "10.9.0.1/16", "10.0.0.2"));
    assert!(error.to_string().ends_with("has host bits set; did you mean 10.9.0.0/16?"), "{error}");
    let error = builder_error(linked().route("zz", "default", "10.0.0.2"));
    assert_eq!(error.to_string(), "route `default via 10.0.0.2` refers to unknown node `zz`");
    let error = builder_error(linked().route("a", "fd00::/64", "10.0.0.2"));
    assert!(error.to_string().contains("different address families"), "{error}");
}

#[test]
fn unknown_local() {
    let error = builder_error(two_hosts().local("c"));
    assert_eq!(error.to_string(), "the `local` setting refers to unknown node `c`");
}

#[test]
fn file_errors_carry_file_line_and_column() {
    let error = file_error(
        "[nodes]\n\
         a = \"host\"\n\
         b = \"host\"\n\
         \n\
         [[links]]\n\
         a = \"a\"\n\
         b = \"c\"\n",
    );
    assert_eq!(error.to_string(), "bug.toml:5:1: link 1 (`a` – `c`) refers to unknown node `c`");
    assert_eq!(error.location.as_ref().map(|l| l.line), Some(5));

    let error = file_error(
        "[nodes]\n\
         a = \"host\"\n\
         b = \"host\"\n\
         [[links]]\n\
         a = \"a\"\n\
         b = \"b\"\n\
         addrs = { a = \"10.0.0.1/24\", b = \"10.0.1.2/24\" }\n",
    );
    assert!(
        error.to_string().starts_with("bug.toml:4:1: address 10.0.0.1/24 of interface `eth0` of node `a`"),
        "{error}"
    );

    let error = file_error(
        "[nodes]\n\
         a = \"host\"\n\
         b = \"host\"\n\
         [[links]]\n\
         a = \"a\"\n\
         b = \"b\"\n\
         addrs = { a = \"10.0.0.1/24\", b = \"10.0.0.2/24\" }\n\
         [[routes]]\n\
         node = \"a\"\n\
         to = \"default\"\n\
         via = \"192.168.1.1\"\n",
    );
    assert_eq!(
        error.to_string(),
        "bug.toml:8:1: gateway 192.168.1.1 of node `a` is not on a subnet the node is connected to (10.0.0.0/24)"
    );
}

#[test]
fn file_syntax_and_schema_errors() {
    let error = file_error("[nodes]\na = \"host\"\na = \"router\"\n");
    assert_eq!(error.location.as_ref().map(|l| (l.line, l.column)), Some((3, 1)), "{error}");
    assert!(error.to_string().contains("duplicate key"), "{error}");

    let error = file_error("[nodes]\na = \"hub\"\n");
    assert_eq!(error.location.as_ref().map(|l| l.line), Some(2), "{error}");
    assert!(
        error.to_string().contains("unknown variant `hub`, expected one of `host`, `router`, `switch`"),
        "{error}"
    );

    let error = file_error("[nodes]\na = \"host\"\n[[links]]\na = \"a\"\nb = \"a\"\nmtuu = 1400\n");
    assert!(error.to_string().contains("unknown field `mtuu`"), "{error}");
    assert_eq!(error.location.as_ref().map(|l| l.line), Some(6), "{error}");
}

#[test]
fn reading_a_missing_file_names_it() {
    let error = Topology::from_file("no/such/topology.toml").unwrap_err();
    assert!(error.to_string().starts_with("reading topology file no/such/topology.toml failed"), "{error}");
}

#[test]
fn the_example_files_are_valid() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/topologies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Topology::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
