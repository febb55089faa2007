//! The attribute's forms: sync and async, `Result`, rstest cases and values, and an existing
//! `#[test]` above or below it.

use netns_test::{Network, netns_test};
use rstest::rstest;

#[netns_test]
fn sync_without_parameter() {
    assert!(std::fs::read_to_string("/proc/self/net/dev").unwrap().contains("veth0"));
}

#[netns_test]
fn by_value_parameter(net: Network) {
    assert_eq!(net.local().name(), "test0");
}

#[netns_test]
fn result_ok(net: &Network) -> Result<(), netns_test::Error> {
    let node = net.try_node("test1")?;
    node.interface("veth1")?;
    Ok(())
}

#[netns_test]
async fn async_result_with_question_mark() -> Result<(), std::io::Error> {
    let socket = tokio::net::UdpSocket::bind("1.1.1.2:0").await?;
    socket.send_to(b"x", "1.1.1.1:9").await?;
    Ok(())
}

#[netns_test::test]
fn path_form() {}

#[netns_test(timeout = "20s")]
fn with_timeout() {}

#[netns_test]
#[test]
fn test_attribute_below() {
    assert!(netns_test::try_network().is_ok());
}

#[test]
#[netns_test]
fn test_attribute_above() {
    assert!(netns_test::try_network().is_ok());
}

#[test]
#[should_panic(expected = "expected failure")]
#[netns_test]
fn test_attribute_above_with_should_panic_between() {
    panic!("expected failure");
}

#[test]
fn every_form_is_registered_once() {
    // libtest lists what was registered: a `#[test]` above or below `#[netns_test]` must not
    // make a second entry.
    let output = std::process::Command::new(std::env::current_exe().unwrap()).arg("--list").output().unwrap();
    let listing = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = listing.lines().filter_map(|line| line.strip_suffix(": test")).collect();
    for name in
        ["test_attribute_above", "test_attribute_above_with_should_panic_between", "test_attribute_below"]
    {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} in\n{listing}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{listing}");
}

#[rstest]
#[case(1, "1.1.1.1")]
#[case(2, "1.1.1.2")]
#[netns_test::test]
fn rstest_cases(#[case] last: u8, #[case] address: &str) {
    let net = netns_test::network();
    let owner =
        net.nodes().iter().find(|node| node.addrs().iter().any(|a| a.to_string() == address)).unwrap();
    assert_eq!(owner.name(), if last == 1 { "test1" } else { "test0" });
}

#[rstest]
#[netns_test::test]
fn rstest_values(#[values("test0", "test1")] node: &str) {
    assert!(netns_test::network().try_node(node).is_ok());
}

#[netns_test]
#[ignore = "shows that #[ignore] is kept; runs with --include-ignored"]
fn ignored_but_valid() {}
