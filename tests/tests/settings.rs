//! The `NETNS_TEST_*` environment variables: a value outside a variable's grammar fails the
//! test with an error naming the variable, the value and what it takes, and a flag is on only
//! when it says so.
//!
//! The `subject_*` tests are ignored and run by the `driver_*` tests, which start this binary
//! again for one subject with a variable set.

use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

#[netns_test]
#[ignore = "run by the drivers below, with a variable set"]
fn subject_passes(net: &Network) {
    net.local().ping("1.1.1.1").run().unwrap().assert_reachable();
}

/// Runs [`subject_passes`] with `variable=value` and checks that it fails, before its child
/// starts, with the error that names both.
fn refused(variable: &str, value: &str, expected: &str) {
    let outcome = run_subject(subject("subject_passes").env(variable, value));
    let text = outcome.all();
    assert!(!outcome.status.success(), "{variable}={value:?} was accepted:\n{text}");
    assert!(text.contains("test `subject_passes` (tests/tests/settings.rs:"), "{text}");
    assert!(text.contains(&format!("could not run: invalid {variable}={value:?}: ")), "{text}");
    assert!(text.contains(&format!("expected {expected}")), "{text}");
    // Refused before any namespace was made: no child, hence no network.
    assert!(!text.contains("link conditions"), "{text}");
}

#[test]
fn driver_a_bad_timeout_names_the_variable() {
    refused("NETNS_TEST_TIMEOUT", "soon", "a duration greater than zero");
    refused("NETNS_TEST_TIMEOUT", "0s", "a duration greater than zero");
}

#[test]
fn driver_a_bad_keep_on_failure_names_the_variable() {
    // It used to be read as ten minutes.
    refused("NETNS_TEST_KEEP_ON_FAILURE", "forever", "1, true, yes or on (keep for 10m)");
}

#[test]
fn driver_a_bad_mode_names_the_variable() {
    // It used to be ignored.
    refused("NETNS_TEST_MODE", "user", "root, rootless or sudo");
}

#[test]
fn driver_a_bad_trace_names_the_variable() {
    // Anything but `0` used to turn tracing on.
    refused("NETNS_TEST_TRACE", "false!", "1, true, yes or on, or 0, false, no or off");
}

#[test]
fn driver_a_bad_seed_names_the_variable() {
    refused("NETNS_TEST_SEED", "0x1234", "a whole number from 0 to 18446744073709551615");
}

#[test]
fn driver_a_bad_link_engine_names_the_variable() {
    refused("NETNS_TEST_LINK_ENGINE", "kernel", "auto, userspace or netem");
}

#[test]
fn driver_a_bad_capture_names_the_variable() {
    refused("NETNS_TEST_CAPTURE", "all", "1, true, yes or on, or 0, false, no or off");
}

#[test]
fn driver_a_bad_keep_captures_names_the_variable() {
    refused("NETNS_TEST_KEEP_CAPTURES", "2", "1, true, yes or on, or 0, false, no or off");
}

#[test]
fn driver_a_bad_report_names_the_variable() {
    refused("NETNS_TEST_REPORT", "sometimes", "always or failure");
}

#[test]
fn driver_a_bad_fork_server_names_the_variable() {
    refused("NETNS_TEST_FORK_SERVER", "maybe", "auto, or 1, true, yes or on, or 0, false, no or off");
}

#[test]
fn driver_an_empty_artifacts_names_the_variable() {
    refused("NETNS_TEST_ARTIFACTS", "", "a directory");
}

/// The seed pair, its link with (perfect) conditions: carried by the engine, capturable.
fn conditioned_pair() -> TopologyBuilder {
    Topology::builder().host("test0").host("test1").link(
        Link::new("test0", "test1")
            .ifnames("veth0", "veth1")
            .addrs("1.1.1.2/24", "1.1.1.1/24")
            .conditions(Conditions::new()),
    )
}

#[netns_test(topology = conditioned_pair)]
#[ignore = "run by driver_capture_is_on_only_when_it_says_so"]
fn subject_counts_its_captures(net: &Network) {
    println!("captures: {}", net.captures().len());
}

#[test]
fn driver_capture_is_on_only_when_it_says_so() {
    let captures = |value: &str| {
        let outcome = run_subject(
            subject("subject_counts_its_captures")
                .env("NETNS_TEST_CAPTURE", value)
                .env("NETNS_TEST_LINK_ENGINE", "userspace"),
        );
        let text = outcome.all();
        assert!(outcome.status.success(), "NETNS_TEST_CAPTURE={value}:\n{text}");
        let line =
            text.lines().find_map(|line| line.split_once("captures: ")).map(|(_, n)| n.trim().to_string());
        line.unwrap_or_else(|| panic!("no capture count in:\n{text}"))
    };
    // `false` used to turn capture on: anything but `0` did.
    for off in ["false", "No"] {
        assert_eq!(captures(off), "0", "NETNS_TEST_CAPTURE={off}");
    }
    for on in ["1", "on"] {
        assert_eq!(captures(on), "1", "NETNS_TEST_CAPTURE={on}");
    }
}
