//! What happened to a test's network, and when: links taken down and up, cut and healed,
//! partitions, flaps, condition changes, finished pings, programs started in nodes and their
//! exit status, and notes the test adds itself.
//!
//! The network keeps one `Timeline` from the moment it is up; its clones (held by links and
//! fault guards) add to the same record. A failed test's report carries the record to the
//! parent, which prints it after the failure, so a reader sees what the network went through
//! without rerunning the test. [`Network::events`](crate::Network::events) returns it to the
//! test itself.
//!
//! The record is bounded: past [`CAPACITY`] events the oldest go, and the report says how many.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The most events a timeline keeps; older ones are dropped (and counted) past it.
pub const CAPACITY: usize = 10_000;

/// One thing that happened to the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// When, counted from the moment the network was up.
    pub at: Duration,
    /// What kind of thing happened.
    pub kind: EventKind,
    /// What it happened to: a link (`a:eth0 – b:eth0`), a node, or the network.
    pub subject: String,
    /// The particulars, in words: new conditions, the groups of a partition, a note's text.
    pub detail: String,
}

/// The kinds of [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The network finished coming up (the first event of every timeline).
    NetworkUp,
    /// A link was set administratively down.
    LinkDown,
    /// A link was set up again.
    LinkUp,
    /// A link was cut silently ([`LinkHandle::cut`](crate::LinkHandle::cut)).
    Cut,
    /// A cut link was healed.
    CutHealed,
    /// The network was partitioned ([`Network::partition`](crate::Network::partition)).
    Partition,
    /// A partition was healed.
    PartitionHealed,
    /// A link started flapping.
    FlapStarted,
    /// A flapping link was stopped (it is up again).
    FlapStopped,
    /// A link's conditions changed at runtime.
    Conditions,
    /// A note the test added ([`Network::note`](crate::Network::note)).
    Note,
    /// A link started dropping everything for a while
    /// ([`LinkHandle::blackhole`](crate::LinkHandle::blackhole)); the detail is how long.
    BlackholeStarted,
    /// A blackhole ended: its time was up, or its guard was dropped early.
    BlackholeEnded,
    /// One of a link's periodic outages began
    /// ([`LinkHandle::outages`](crate::LinkHandle::outages)); the detail is the schedule.
    OutageStarted,
    /// One of a link's periodic outages ended.
    OutageEnded,
    /// A per-packet hook was installed on one direction of a link
    /// ([`LinkHandle::hook_from`](crate::LinkHandle::hook_from)); the detail describes it.
    HookInstalled,
    /// A per-packet hook was removed (its guard dropped); the detail sums up what it decided
    /// and which frames it dropped.
    HookRemoved,
    /// A per-packet hook panicked and was removed; the detail is its message. The test fails
    /// with it.
    HookPanicked,
    /// A ping finished ([`Ping::run`](crate::ping::Ping::run), or one pair of
    /// [`Network::ping_all`](crate::Network::ping_all)): its subject is `node → target`,
    /// its detail iputils' summary on one line.
    Ping,
    /// A node's firewalls were replaced ([`Node::set_firewall`](crate::Node::set_firewall)):
    /// its subject is the node, its detail the new firewalls' names (`none` when removed).
    Firewall,
    /// A link was added at runtime ([`Network::add_link`](crate::Network::add_link)); the
    /// detail lists the ends' addresses.
    LinkAdded,
    /// A link was removed at runtime ([`LinkHandle::remove`](crate::LinkHandle::remove)).
    LinkRemoved,
    /// An address was replaced ([`Network::renumber`](crate::Network::renumber)): the subject
    /// is `node:interface`, the detail `old → new`.
    Renumbered,
    /// A node's default route was set ([`Node::set_default_route`](crate::Node::set_default_route));
    /// the detail is the gateway.
    DefaultRoute,
    /// A host was moved from one link to another ([`Network::replug`](crate::Network::replug)).
    Replugged,
    /// A NAT's behaviour changed ([`NatHandle::set`](crate::nat::NatHandle::set)); the
    /// subject is the router, the detail the new behaviour.
    NatSet,
    /// A NAT forgot its mappings ([`NatHandle::rebind`](crate::nat::NatHandle::rebind)).
    NatRebound,
    /// A program started in a node ([`Node::command`](crate::Node::command)): its subject is
    /// the node, its detail the process id and the command line.
    ProgramStarted,
    /// A program started in a node exited: its detail is the command line and the exit
    /// status (or the signal that ended it).
    ProgramExited,
}

impl EventKind {
    /// The kind's name as the report writes it (`link_down`, `cut_healed`, …).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::NetworkUp => "network_up",
            EventKind::LinkDown => "link_down",
            EventKind::LinkUp => "link_up",
            EventKind::Cut => "cut",
            EventKind::CutHealed => "cut_healed",
            EventKind::Partition => "partition",
            EventKind::PartitionHealed => "partition_healed",
            EventKind::FlapStarted => "flap_started",
            EventKind::FlapStopped => "flap_stopped",
            EventKind::Conditions => "conditions",
            EventKind::Note => "note",
            EventKind::BlackholeStarted => "blackhole_started",
            EventKind::BlackholeEnded => "blackhole_ended",
            EventKind::OutageStarted => "outage_started",
            EventKind::OutageEnded => "outage_ended",
            EventKind::HookInstalled => "hook_installed",
            EventKind::HookRemoved => "hook_removed",
            EventKind::HookPanicked => "hook_panicked",
            EventKind::Ping => "ping",
            EventKind::Firewall => "firewall",
            EventKind::LinkAdded => "link_added",
            EventKind::LinkRemoved => "link_removed",
            EventKind::Renumbered => "renumbered",
            EventKind::DefaultRoute => "default_route",
            EventKind::Replugged => "replugged",
            EventKind::NatSet => "nat_set",
            EventKind::NatRebound => "nat_rebound",
            EventKind::ProgramStarted => "program_started",
            EventKind::ProgramExited => "program_exited",
        }
    }
}

impl fmt::Display for Event {
    /// `+1.234s cut a:eth0 – b:eth0`, then ` (detail)` when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{:.3}s {} {}", self.at.as_secs_f64(), self.kind.name(), self.subject)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The record of a network's events, shared by its clones.
#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    record: Mutex<Record>,
}

#[derive(Debug)]
struct Record {
    /// Where the clock starts.
    start: Instant,
    events: VecDeque<Event>,
    /// Events dropped from the front past [`CAPACITY`].
    dropped: u64,
}

/// A timeline's events as a failure report carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recorded {
    /// The events kept, oldest first.
    pub(crate) events: Vec<Event>,
    /// How many older events were dropped to keep the record bounded.
    pub(crate) dropped: u64,
}

/// What a failed child reports about its network: sections of current state (the link
/// counters; NAT mappings and firewall drops where the network has them), then the timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Observations {
    /// Titled blocks of lines, printed in order.
    pub(crate) sections: Vec<Section>,
    /// The network's events.
    pub(crate) timeline: Recorded,
    /// The topology's picture (SVG), for the failure report.
    #[serde(default)]
    pub(crate) picture: String,
}

/// One titled block of a failure's observations (`link counters:` and one line per direction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) lines: Vec<String>,
}

impl Observations {
    /// The text a failure message ends with: each non-empty section, then at most
    /// `timeline_lines` events.
    pub(crate) fn summary(&self, timeline_lines: usize) -> String {
        let mut text = String::new();
        for section in self.sections.iter().filter(|section| !section.lines.is_empty()) {
            text.push_str(&format!("\n{}:", section.title));
            for line in &section.lines {
                text.push_str(&format!("\n  {line}"));
            }
        }
        text + &self.timeline.summary(timeline_lines)
    }
}

impl Timeline {
    /// A timeline whose clock starts now, with a [`EventKind::NetworkUp`] event.
    pub(crate) fn start(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        let record = Record { start: Instant::now(), events: VecDeque::new(), dropped: 0 };
        let timeline = Timeline { inner: Arc::new(Inner { record: Mutex::new(record) }) };
        timeline.record(EventKind::NetworkUp, subject, detail);
        timeline
    }

    /// Starts the clock again, now, and moves the events so far (those of a network built
    /// ahead, before its test was known) to its start: the test's own events are timed from
    /// when it was handed the network.
    pub(crate) fn restart(&self) {
        let mut record = self.inner.record.lock().unwrap_or_else(PoisonError::into_inner);
        record.start = Instant::now();
        for event in &mut record.events {
            event.at = Duration::ZERO;
        }
    }

    /// Adds an event that happens now.
    pub(crate) fn record(&self, kind: EventKind, subject: impl Into<String>, detail: impl Into<String>) {
        let mut record = self.inner.record.lock().unwrap_or_else(PoisonError::into_inner);
        let event =
            Event { at: record.start.elapsed(), kind, subject: subject.into(), detail: detail.into() };
        if record.events.len() >= CAPACITY {
            record.events.pop_front();
            record.dropped += 1;
        }
        record.events.push_back(event);
    }

    /// The events kept so far, oldest first, and how many were dropped.
    pub(crate) fn recorded(&self) -> Recorded {
        let record = self.inner.record.lock().unwrap_or_else(PoisonError::into_inner);
        Recorded { events: record.events.iter().cloned().collect(), dropped: record.dropped }
    }
}

impl Recorded {
    /// The lines a failure message ends with: at most `limit` events (the first one, then the
    /// latest), and how many are left out.
    pub(crate) fn summary(&self, limit: usize) -> String {
        if self.events.is_empty() {
            return String::new();
        }
        let mut text = String::from("\ntimeline (from the moment the network was up):");
        let skipped = self.events.len().saturating_sub(limit.max(1));
        let mut lines = self.events.iter();
        if skipped > 0 {
            if let Some(first) = lines.next() {
                text.push_str(&format!("\n  {first}"));
            }
            text.push_str(&format!("\n  … {} more", skipped as u64 + self.dropped));
            for event in lines.skip(skipped) {
                text.push_str(&format!("\n  {event}"));
            }
        } else {
            if self.dropped > 0 {
                text.push_str(&format!("\n  … {} earlier events dropped", self.dropped));
            }
            for event in lines {
                text.push_str(&format!("\n  {event}"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_the_network_up_and_keeps_order() {
        let timeline = Timeline::start("network", "3 nodes");
        timeline.record(EventKind::Cut, "a:eth0 – b:eth0", "");
        timeline.clone().record(EventKind::CutHealed, "a:eth0 – b:eth0", "");
        let recorded = timeline.recorded();
        let kinds: Vec<EventKind> = recorded.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::NetworkUp, EventKind::Cut, EventKind::CutHealed]);
        assert!(recorded.events.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(recorded.dropped, 0);
    }

    /// A network built ahead is handed to its test later: the test's events are timed from
    /// the hand-over, and the network's own move to it.
    #[test]
    fn a_restart_times_later_events_from_it() {
        let timeline = Timeline::start("network", "2 nodes");
        std::thread::sleep(Duration::from_millis(200));
        timeline.restart();
        timeline.record(EventKind::Note, "network", "after the hand-over");
        let recorded = timeline.recorded();
        assert_eq!(recorded.events[0].kind, EventKind::NetworkUp);
        assert_eq!(recorded.events[0].at, Duration::ZERO);
        assert!(recorded.events[1].at < Duration::from_millis(200), "{:?}", recorded.events[1].at);
    }

    #[test]
    fn stays_bounded_and_counts_what_it_dropped() {
        let timeline = Timeline::start("network", "");
        for i in 0..CAPACITY + 5 {
            timeline.record(EventKind::Note, "network", i.to_string());
        }
        let recorded = timeline.recorded();
        assert_eq!(recorded.events.len(), CAPACITY);
        assert_eq!(recorded.dropped, 6, "the network_up event and the first five notes");
        assert_eq!(recorded.events.last().unwrap().detail, (CAPACITY + 4).to_string());
    }

    #[test]
    fn summary_shows_the_first_and_the_latest_events() {
        let timeline = Timeline::start("network", "");
        for i in 0..10 {
            timeline.record(EventKind::Note, "network", format!("n{i}"));
        }
        let text = timeline.recorded().summary(3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "", "the summary starts on a new line");
        assert!(lines[1].starts_with("timeline"), "{text}");
        assert!(lines[2].contains("network_up"), "{text}");
        assert_eq!(lines[3].trim(), "… 8 more", "{text}");
        assert!(lines[4].ends_with("(n8)") && lines[5].ends_with("(n9)"), "{text}");
        assert_eq!(lines.len(), 6, "{text}");
        let all = timeline.recorded().summary(100);
        assert_eq!(all.lines().count(), 2 + 11, "{all}");
    }

    #[test]
    fn observations_print_sections_before_the_timeline() {
        let observations = Observations {
            sections: vec![
                Section { title: "link counters".into(), lines: vec!["a → b: in 1".into()] },
                Section { title: "empty".into(), lines: vec![] },
            ],
            timeline: Timeline::start("network", "").recorded(),
            picture: String::new(),
        };
        let text = observations.summary(10);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines[..2], ["link counters:", "  a → b: in 1"], "{text}");
        assert!(lines[2].starts_with("timeline"), "{text}");
        assert!(!text.contains("empty"), "{text}");
    }

    #[test]
    fn events_display_with_their_offset() {
        let event = Event {
            at: Duration::from_millis(1234),
            kind: EventKind::Conditions,
            subject: "a:eth0 – b:eth0".into(),
            detail: "delay 20ms".into(),
        };
        assert_eq!(event.to_string(), "+1.234s conditions a:eth0 – b:eth0 (delay 20ms)");
    }
}
