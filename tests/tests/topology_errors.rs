//! Every kind of invalid topology gives a typed error that names the offending item, from
//! the builder and, with file, line and column, from a topology file. Nothing is created:
//! these are plain tests.

use netns_test::topology::{TopologyError, TopologyErrorKind};
use netns_test::{Link, Topology};

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

#[test]
fn interface_names_the_kernel_would_rename_or_refuse() {
    let error_for = |name: &str| builder_error(two_hosts().link(Link::new("a", "b").ifnames(name, "eth0")));
    let error = error_for("e%d");
    assert_eq!(
        error.to_string(),
        "invalid interface name `e%d` of node `a`: `%` is not allowed: Linux reads it as a number to fill in \
         and renames the interface (`e%d` becomes `e0`)"
    );
    assert!(error_for("a%b").to_string().contains("`%` is not allowed"));
    for reserved in ["all", "default"] {
        let error = error_for(reserved);
        assert_eq!(
            error.to_string(),
            format!(
                "invalid interface name `{reserved}` of node `a`: `{reserved}` is reserved: \
                 /proc/sys/net/ipv4/conf/{reserved} and /proc/sys/net/ipv6/conf/{reserved} hold the settings \
                 of every interface, and Linux refuses an interface of that name"
            )
        );
    }
    // The kernel counts byte 0xA0 as whitespace: `à` is C3 A0 in UTF-8, `é` (C3 A9) is fine.
    let error = error_for("eth-à");
    assert!(error.to_string().contains("character 'à' is encoded with byte 0xA0"), "{error}");
    two_hosts().link(Link::new("a", "b").ifnames("eth-é", "eth0")).build().unwrap();
    assert!(error_for("eth\u{a0}0").to_string().contains("whitespace"));
}

#[test]
fn addresses_the_kernel_takes_but_cannot_use() {
    let error_for = |addr: &str| {
        builder_error(two_hosts().link(Link::new("a", "b").addrs(addr, "10.0.0.2/24"))).to_string()
    };
    assert_eq!(
        error_for("10.0.0.1/0"),
        "invalid address `10.0.0.1/0` for interface `eth0` of node `a`: its subnet 0.0.0.0/0 starts in \
         0.0.0.0/8, for which Linux installs no route, so nothing on the link would be reachable; use a prefix \
         length of at least 5"
    );
    assert!(error_for("10.0.0.1/4").contains("use a prefix length of at least 5"));
    assert_eq!(
        error_for("0.0.0.1/8"),
        "invalid address `0.0.0.1/8` for interface `eth0` of node `a`: addresses in 0.0.0.0/8 mean \"this \
         network\": Linux sends nothing from them"
    );
    assert!(error_for("255.255.255.255/32").contains("the limited broadcast address"));
    let error = builder_error(
        two_hosts().link(Link::new("a", "b").addrs("::ffff:10.0.0.1/96", "::ffff:10.0.0.2/96")),
    );
    assert!(error.to_string().contains("IPv4-mapped addresses (::ffff:0:0/96)"), "{error}");
    // A prefix of 5 leaves 0.0.0.0/8: 10.0.0.0/5 is an ordinary (large) subnet.
    two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/5", "10.0.0.2/5")).build().unwrap();
}

#[test]
fn prefix_lengths_out_of_range_say_so() {
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/33", "10.0.0.2/24")));
    assert_eq!(
        error.to_string(),
        "invalid address `10.0.0.1/33` for interface `eth0` of node `a`: prefix length 33 is over 32"
    );
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("fd00::1/129", "fd00::2/64")));
    assert!(error.to_string().ends_with("prefix length 129 is over 128"), "{error}");
    let error = builder_error(two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/x", "10.0.0.2/24")));
    assert!(error.to_string().ends_with("prefix length `x` is not a whole number from 0 to 32"), "{error}");
    let linked = two_hosts().link(Link::new("a", "b").addrs("10.0.0.1/24", "10.0.0.2/24"));
    let error = builder_error(linked.route("a", "10.9.0.0/33", "10.0.0.2"));
    assert_eq!(
        error.to_string(),
        "invalid route `10.9.0.0/33 via 10.0.0.2` of node `a`: destination `10.9.0.0/33`: prefix length 33 is over 32"
    );
}

/// The file errors that concern no single item point at the `local` key, the `[nodes]` table,
/// or the file's first line.
#[test]
fn file_errors_without_an_item_still_have_a_location() {
    let at = |error: &TopologyError| {
        error.location.as_ref().map(|l| (l.file.display().to_string(), l.line, l.column))
    };
    let error = file_error("# nothing here\n");
    assert_eq!(error.to_string(), "bug.toml:1:1: the topology has no nodes");
    assert_eq!(at(&error), Some(("bug.toml".to_string(), 1, 1)));
    let error = file_error("");
    assert_eq!(error.to_string(), "bug.toml:1:1: the topology has no nodes");
    let error = file_error("auto_routes = true\n");
    assert_eq!(error.to_string(), "bug.toml:1:1: the topology has no nodes");
    let error = file_error("auto_routes = true\n\n[nodes]\n");
    assert_eq!(error.to_string(), "bug.toml:3:1: the topology has no nodes", "the empty [nodes] table");

    let error = file_error("hostnames = true\nlocal = \"c\"\n[nodes]\na = \"host\"\n");
    assert_eq!(error.to_string(), "bug.toml:2:9: the `local` setting refers to unknown node `c`");
    let error = file_error("local = \"sw\"\n[nodes]\nh = \"host\"\nsw = \"switch\"\n");
    assert_eq!(
        error.to_string(),
        "bug.toml:1:9: the local node `sw` is a switch; the test body must run in a host or router"
    );
    let error = file_error("# switches only\n[nodes]\ns1 = \"switch\"\ns2 = \"switch\"\n");
    assert_eq!(
        error.to_string(),
        "bug.toml:2:1: the topology has only switches (2); the test body runs in a host or router, so add one"
    );
    assert_eq!(error.kind, TopologyErrorKind::OnlySwitches { count: 2 });
    let error = builder_error(Topology::builder().switch("s"));
    assert_eq!(error.location, None, "the builder has no file");
}

#[test]
fn wrong_types_in_files_name_the_key() {
    let links = "[nodes]\na = \"host\"\nb = \"host\"\n[[links]]\na = \"a\"\nb = \"b\"\n";
    let error = file_error(&format!("{links}mtu = \"big\"\n"));
    assert_eq!(error.to_string(), "bug.toml:7:7: key `mtu`: invalid type: string \"big\", expected u32");
    let error = file_error(&format!("{links}addrs = {{ a = 5 }}\n"));
    assert_eq!(
        error.to_string(),
        "bug.toml:7:15: key `addrs.a`: invalid type: integer `5`, expected an address such as \"10.0.0.1/24\", \
         or a list of them"
    );
    let error = file_error(&format!("{links}addrs = {{ a = [\"10.0.0.1/24\", 5] }}\n"));
    assert!(error.to_string().contains("key `addrs.a`: invalid type: integer `5`"), "{error}");
    let error = file_error("auto_routes = \"yes\"\n[nodes]\na = \"host\"\n");
    assert_eq!(
        error.to_string(),
        "bug.toml:1:15: key `auto_routes`: invalid type: string \"yes\", expected a boolean"
    );
    let error = file_error("[nodes]\na = 1\n");
    assert_eq!(
        error.to_string(),
        "bug.toml:2:5: key `a`: invalid type: integer `1`, expected \"host\", \"router\" or \"switch\""
    );
    let error = file_error(&format!("{links}conditions = {{ delay = 5 }}\n"));
    assert!(
        error.to_string().starts_with("bug.toml:7:24: key `conditions.delay`: invalid type: integer `5`"),
        "{error}"
    );
    // A comment or a string with brackets before the value does not confuse the key.
    let error = file_error(&format!("{links}# [x] {{ y = 1\nmtu = \"a = [\" \n[[links]]\n"));
    assert!(error.to_string().contains("key `mtu`"), "{error}");
}
