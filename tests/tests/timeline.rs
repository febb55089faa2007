//! The network's timeline: what happened to it and when, as the test reads it and as a failure
//! prints it.

use std::time::Duration;

use netns_test::timeline::EventKind;
use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

fn line_with_conditions() -> TopologyBuilder {
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(Link::new("test0", "test1").addrs("1.1.1.2/24", "1.1.1.1/24").conditions(Conditions::new()))
}

#[netns_test(topology = line_with_conditions)]
fn events_record_faults_and_changes_in_order(net: &Network) {
    let link = net.link("test0", "test1");
    drop(link.cut().unwrap());
    link.set_conditions_from("test0", Conditions::new().delay(Duration::from_millis(5))).unwrap();
    link.down().unwrap();
    link.up().unwrap();
    drop(net.partition(&[&["test0"], &["test1"]]).unwrap());
    net.note("done");
    let events = net.events();
    let kinds: Vec<EventKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::NetworkUp,
            EventKind::Cut,
            EventKind::CutHealed,
            EventKind::Conditions,
            EventKind::LinkDown,
            EventKind::LinkUp,
            EventKind::Partition,
            EventKind::PartitionHealed,
            EventKind::Note,
        ]
    );
    assert!(events.windows(2).all(|pair| pair[0].at <= pair[1].at), "{events:#?}");
    assert_eq!(events[1].subject, "test0:eth0 – test1:eth0", "{events:#?}");
    assert!(events[3].detail.contains("from test0"), "{events:#?}");
    assert_eq!(events[6].detail, "test0 | test1");
    assert_eq!(events[8].detail, "done");
}

#[netns_test]
#[ignore = "fails on purpose; run by a_failure_prints_the_timeline"]
fn subject_fails_after_a_cut(net: &Network) {
    let cut = net.link(net.local().name(), "test1").cut().unwrap();
    net.note("the service is asked while the link is cut");
    cut.heal().unwrap();
    panic!("the service misbehaved");
}

#[test]
fn a_failure_prints_the_timeline() {
    let outcome = run_subject(&mut subject("subject_fails_after_a_cut"));
    assert!(!outcome.status.success());
    let text = outcome.all();
    let timeline: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("timeline (from the moment the network was up):"))
        .skip(1)
        .take_while(|line| line.starts_with("  +"))
        .collect();
    let kinds: Vec<&str> = timeline.iter().filter_map(|line| line.split_whitespace().nth(1)).collect();
    assert_eq!(kinds, ["network_up", "cut", "note", "cut_healed"], "{text}");
    assert!(timeline[2].ends_with("(the service is asked while the link is cut)"), "{text}");
}
