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

#[netns_test]
fn ping_all_puts_each_pair_on_the_timeline(net: &Network) {
    net.ping_all().unwrap().assert_all_reachable();
    let pings: Vec<_> = net.events().into_iter().filter(|event| event.kind == EventKind::Ping).collect();
    let mut subjects: Vec<&str> = pings.iter().map(|event| event.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["test0 → 1.1.1.1", "test1 → 1.1.1.2"], "{pings:#?}");
    for ping in &pings {
        assert!(ping.detail.starts_with("1 packets transmitted, 1 received"), "{pings:#?}");
    }
}

#[netns_test]
fn programs_started_in_nodes_are_on_the_timeline_with_their_exit_status(net: &Network) {
    use std::os::unix::process::ExitStatusExt;
    let node = net.node("test1");
    let output = node.command("sh").args(["-c", "echo hello; exit 3"]).output().unwrap();
    assert_eq!((output.status.code(), output.stdout.as_slice()), (Some(3), &b"hello\n"[..]));
    assert!(node.command("true").status().unwrap().success());
    let mut sleep = node.command("sleep").arg("600").spawn().unwrap();
    let pid = sleep.id();
    sleep.kill().unwrap();
    assert_eq!(sleep.wait().unwrap().signal(), Some(libc::SIGKILL));
    let missing = node.command("/nonexistent/program").output();
    assert!(missing.is_err());

    let events: Vec<_> = net
        .events()
        .into_iter()
        .filter(|event| matches!(event.kind, EventKind::ProgramStarted | EventKind::ProgramExited))
        .map(|event| (event.kind.name(), event.subject, event.detail))
        .collect();
    let expected = [
        ("program_started", "sh -c echo hello; exit 3".to_string()),
        ("program_exited", "sh -c echo hello; exit 3: exit status: 3; stdout: hello".to_string()),
        ("program_started", "true".to_string()),
        ("program_exited", "true: exit status: 0".to_string()),
        ("program_started", format!("pid {pid}: sleep 600")),
        ("program_exited", format!("pid {pid}: sleep 600: signal: 9 (SIGKILL)")),
        ("program_started", "/nonexistent/program".to_string()),
    ];
    assert_eq!(events.len(), expected.len() + 1, "{events:#?}");
    for ((kind, subject, detail), (want_kind, want_detail)) in events.iter().zip(&expected) {
        assert_eq!((kind, subject.as_str()), (want_kind, "test1"), "{events:#?}");
        // `true` run by `status()` is spawned, so its detail starts with its pid.
        assert!(
            detail == want_detail || detail.ends_with(&format!(": {want_detail}")),
            "{detail} ≠ {want_detail}"
        );
    }
    let last = &events[expected.len()];
    assert!(last.0 == "program_exited" && last.2.contains("not started"), "{events:#?}");
}
