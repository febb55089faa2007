//! Durations however large never panic: each is either accepted (a deadline too far for the
//! clock is as good as none) or refused with an error naming it.

use std::net::IpAddr;
use std::time::Duration;

use netns_test::{Conditions, Error, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{Running, run_subject, subject};

#[netns_test]
fn waits_accept_duration_max(net: &Network) {
    let peer: IpAddr = "1.1.1.1".parse().unwrap();
    net.local().route_ready(peer).timeout(Duration::MAX).wait().unwrap();
    net.link("test0", "test1").ready().timeout(Duration::MAX).wait().unwrap();
    net.local()
        .runtime()
        .block_on(async { net.local().route_ready(peer).timeout(Duration::MAX).await })
        .unwrap();
}

#[netns_test]
fn a_flap_of_duration_max_stops_when_dropped(net: &Network) {
    let link = net.link("test0", "test1");
    let flap = link.flap(Duration::MAX, Duration::MAX).unwrap();
    drop(flap);
    link.ready().wait().unwrap();
    net.local().ping("1.1.1.1").run().unwrap().assert_reachable();
}

#[netns_test]
fn ping_durations_over_a_day_are_refused(net: &Network) {
    let node = net.local();
    for (name, ping) in [
        ("interval", node.ping("1.1.1.1").interval(Duration::MAX)),
        ("timeout", node.ping("1.1.1.1").timeout(Duration::MAX)),
        ("deadline", node.ping("1.1.1.1").deadline(Duration::MAX)),
    ] {
        match ping.run() {
            Err(error @ Error::Ping { .. }) => {
                assert!(
                    error
                        .to_string()
                        .contains(&format!("`{name}` 18446744073709551615.999999999s is longer than a day")),
                    "{error}"
                )
            }
            other => panic!("expected a ping error for `{name}`, got {other:?}"),
        }
    }
}

/// The default pair, its link with (perfect) conditions that may change at runtime.
fn conditioned_pair() -> TopologyBuilder {
    Topology::builder().host("test0").host("test1").link(
        Link::new("test0", "test1")
            .ifnames("veth0", "veth1")
            .addrs("1.1.1.2/24", "1.1.1.1/24")
            .conditions(Conditions::new()),
    )
}

#[netns_test(topology = conditioned_pair)]
fn conditions_with_delays_over_an_hour_are_refused(net: &Network) {
    let error = net
        .link("test0", "test1")
        .set_conditions(Conditions::new().delay(Duration::MAX))
        .expect_err("a delay of Duration::MAX");
    let text = chain(&error);
    assert!(text.contains("delay"), "{text}");
    let error = Topology::builder()
        .host("a")
        .host("b")
        .link(Link::new("a", "b").conditions(Conditions::new().jitter(Duration::MAX)))
        .build()
        .expect_err("a jitter of Duration::MAX");
    let text = chain(&error);
    assert!(text.contains("jitter"), "{text}");
}

/// An error and its sources, one after the other.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(&format!(": {error}"));
        source = error.source();
    }
    text
}

#[test]
fn huge_delays_in_a_topology_file_are_errors() {
    let file = |delay: &str| {
        format!(
            "[nodes]\na = \"host\"\nb = \"host\"\n[[links]]\na = \"a\"\nb = \"b\"\nconditions = {{ delay = \"{delay}\" }}\n"
        )
    };
    // humantime panics on the first ("overflow in Duration::new").
    for (delay, reason) in [
        ("18446744073709551615s 1000ms", "is too long for a duration"),
        ("400000000000y", "delay"),
        ("99999999999999999999999999999999999999999h", "is too long for a duration"),
    ] {
        let error = Topology::from_toml(&file(delay), "bug.toml").expect_err(delay);
        assert!(error.to_string().contains(reason), "{delay}: {error}");
        assert!(error.to_string().contains("bug.toml:7:"), "{delay}: {error}");
    }
}

#[netns_test]
#[ignore = "run by the drivers below, with NETNS_TEST_TIMEOUT set"]
fn subject_pings(net: &Network) {
    net.local().ping("1.1.1.1").run().unwrap().assert_reachable();
}

#[test]
fn driver_a_huge_netns_test_timeout_is_no_timeout() {
    let outcome = run_subject(subject("subject_pings").env("NETNS_TEST_TIMEOUT", "400000000000y"));
    assert!(outcome.status.success(), "{}", outcome.all());
    assert!(!outcome.all().contains("panicked"), "{}", outcome.all());
}

#[test]
fn driver_an_unrepresentable_netns_test_timeout_is_an_error_naming_it() {
    let outcome =
        run_subject(subject("subject_pings").env("NETNS_TEST_TIMEOUT", "18446744073709551615s 1000ms"));
    assert!(!outcome.status.success(), "{}", outcome.all());
    let text = outcome.all();
    assert!(text.contains("invalid NETNS_TEST_TIMEOUT=\"18446744073709551615s 1000ms\""), "{text}");
    assert!(text.contains("is too long for a duration"), "{text}");
    assert!(!text.contains("overflow"), "{text}");
}

#[netns_test]
#[ignore = "fails on purpose; run by driver_a_huge_keep_on_failure_keeps_the_child"]
fn subject_fails() {
    panic!("look inside");
}

#[test]
fn driver_a_huge_keep_on_failure_keeps_the_child() {
    let running = Running::start(subject("subject_fails").env("NETNS_TEST_KEEP_ON_FAILURE", "400000000000y"));
    running.wait_for_line("is kept alive for inspection", Duration::from_secs(30));
    running.wait_for_line("it ends by itself in", Duration::from_secs(5));
    // The parent now waits for Enter, for ever: it must not have panicked computing when the
    // wait ends. A panic would be printed at once; two seconds without one, on a loaded
    // machine, may miss it but never flags a correct run.
    assert_eq!(running.next_line_within(Duration::from_secs(2)), None);
    let mut running = running;
    assert!(running.child.try_wait().unwrap().is_none(), "the kept test ended by itself");
}
