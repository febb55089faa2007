use std::net::Ipv4Addr;

use super::*;
use crate::ping::icmp::IcmpErrorKind;

const TARGET: IpAddr = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));
const ROUTER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1));
const MS: Duration = Duration::from_millis(1);

fn settings(count: Option<u64>, interval: Duration, deadline: Option<Duration>) -> Settings {
    Settings { count, interval, timeout: 100 * MS, deadline, size: 56 }
}

/// A session on a fake clock: `t0` plus milliseconds; the realtime clock runs alongside.
struct Clock {
    t0: Instant,
}

impl Clock {
    fn at(&self, ms: u64) -> (Instant, Duration) {
        (self.t0 + Duration::from_millis(ms), Duration::from_secs(1_000_000) + Duration::from_millis(ms))
    }
}

fn send(session: &mut Session, clock: &Clock, ms: u64) -> u16 {
    let (now, wall) = clock.at(ms);
    session.update(now, wall);
    assert!(session.is_due(now), "a probe is due at {ms} ms");
    let probe = session.next_probe();
    let seq = u16::from_be_bytes([probe[6], probe[7]]);
    session.sent(now, wall);
    seq
}

fn reply(session: &mut Session, clock: &Clock, seq: u16, ms: u64) {
    let payload = [0u8; 56];
    let reply = EchoReply { ident: 7, seq, ttl: Some(64), len: 64, payload: &payload, checksum_ok: true };
    let (now, wall) = clock.at(ms);
    session.on_reply(&reply, TARGET, None, wall);
    session.update(now, wall);
}

fn new(settings: Settings) -> (Session, Clock) {
    (Session::new("test0".into(), "1.1.1.1".into(), TARGET, 7, settings), Clock { t0: Instant::now() })
}

#[test]
fn a_count_sends_that_many_probes_then_waits_for_the_replies() {
    let (mut session, clock) = new(settings(Some(3), 10 * MS, None));
    assert_eq!(send(&mut session, &clock, 0), 1);
    reply(&mut session, &clock, 1, 1);
    assert!(!session.is_due(clock.at(5).0), "the interval has not passed");
    assert_eq!(session.wake_at(), Some(clock.at(10).0));
    assert_eq!(send(&mut session, &clock, 10), 2);
    assert_eq!(send(&mut session, &clock, 20), 3);
    session.update(clock.at(30).0, clock.at(30).1);
    assert!(!session.is_due(clock.at(30).0), "three probes were asked for");
    assert!(!session.is_finished(), "probes 2 and 3 are pending");
    // Probe 2 times out at 110 ms; probe 3 is answered late but within its timeout.
    session.update(clock.at(110).0, clock.at(110).1);
    assert!(!session.is_finished());
    reply(&mut session, &clock, 3, 115);
    assert!(session.is_finished());
    let stats = session.into_stats();
    assert_eq!((stats.transmitted(), stats.received()), (3, 2));
    assert_eq!(stats.probes()[2].rtt(), Some(95 * MS));
    assert_eq!(stats.time(), 20 * MS);
}

#[test]
fn a_zero_interval_sends_when_the_previous_probe_is_answered() {
    let (mut session, clock) = new(settings(Some(2), Duration::ZERO, None));
    send(&mut session, &clock, 0);
    assert!(!session.is_due(clock.at(0).0), "probe 1 is in flight");
    reply(&mut session, &clock, 1, 0);
    assert!(session.is_due(clock.at(0).0));
    send(&mut session, &clock, 0);
    // Without a reply, the next probe would wait for iputils' 10 ms.
    let (mut unanswered, clock) = new(settings(None, Duration::ZERO, Some(50 * MS)));
    send(&mut unanswered, &clock, 0);
    assert!(!unanswered.is_due(clock.at(9).0));
    assert!(unanswered.is_due(clock.at(10).0));
}

#[test]
fn a_lost_probe_does_not_hold_back_a_flood() {
    // Probe 1 is lost, and waits out its 100 ms timeout; probe 2 leaves 10 ms after it.
    let (mut session, clock) = new(settings(Some(4), Duration::ZERO, None));
    assert_eq!(send(&mut session, &clock, 0), 1);
    assert!(!session.is_due(clock.at(9).0));
    assert_eq!(send(&mut session, &clock, 10), 2);
    // Probe 2 is answered: probe 3 goes at once, although probe 1 is still pending.
    reply(&mut session, &clock, 2, 11);
    assert!(session.is_due(clock.at(11).0), "the latest probe is answered");
    assert_eq!(send(&mut session, &clock, 11), 3);
    // A late answer to an earlier probe does not stand for the latest one's.
    assert!(!session.is_due(clock.at(12).0));
    reply(&mut session, &clock, 1, 12);
    assert!(!session.is_due(clock.at(12).0), "probe 3 is unanswered");
    assert!(session.is_due(clock.at(21).0));
    // An ICMP error answers the latest probe as a reply does.
    assert_eq!(send(&mut session, &clock, 21), 4);
    let error = QuotedError {
        kind: IcmpErrorKind::TimeExceeded,
        code: 0,
        mtu: None,
        family: Family::V4,
        destination: TARGET,
        ident: 7,
        seq: 4,
    };
    session.on_error(&error, ROUTER, clock.at(22).1);
    session.update(clock.at(22).0, clock.at(22).1);
    assert_eq!((session.received, session.errors), (2, 1));
}

#[test]
fn a_refused_probe_after_an_answered_one_waits_10_ms() {
    // Probe 1 is answered, then the kernel refuses probe 2: iputils waits 10 ms after it.
    let (mut session, clock) = new(settings(Some(3), Duration::ZERO, None));
    send(&mut session, &clock, 0);
    reply(&mut session, &clock, 1, 0);
    let (now, wall) = clock.at(0);
    session.next_probe();
    session.send_failed(now, wall, SendFailure::Refused(libc::ENETUNREACH));
    assert!(!session.is_due(clock.at(9).0));
    assert!(session.is_due(clock.at(10).0));
}

#[test]
fn late_replies_count_as_lost_and_duplicates_apart() {
    let (mut session, clock) = new(settings(Some(2), Duration::ZERO, None));
    send(&mut session, &clock, 0);
    reply(&mut session, &clock, 1, 1);
    reply(&mut session, &clock, 1, 2);
    send(&mut session, &clock, 2);
    // The reply to probe 2 arrives after its 100 ms timeout.
    reply(&mut session, &clock, 2, 103);
    assert!(session.is_finished());
    let stats = session.into_stats();
    assert_eq!((stats.received(), stats.duplicates()), (1, 1));
    assert_eq!(stats.loss(), 0.5);
    assert_eq!(stats.rtts().count(), 2, "the duplicate's RTT counts");
}

#[test]
fn a_deadline_keeps_sending_past_the_count_until_enough_are_answered() {
    // ping -c 2 -w 1: probes 1 and 2 are lost, 3 and 4 answered.
    let (mut session, clock) = new(settings(Some(2), 10 * MS, Some(1000 * MS)));
    for (ms, seq) in [(0, 1), (10, 2), (20, 3)] {
        assert_eq!(send(&mut session, &clock, ms), seq);
    }
    reply(&mut session, &clock, 3, 21);
    assert!(!session.is_finished());
    assert_eq!(send(&mut session, &clock, 30), 4);
    reply(&mut session, &clock, 4, 31);
    assert!(session.is_finished(), "two probes are answered");
    assert_eq!(session.into_stats().transmitted(), 4);
}

#[test]
fn replies_count_when_stamped_before_the_end_however_late_they_are_read() {
    let (mut session, clock) = new(settings(None, 10 * MS, Some(25 * MS)));
    send(&mut session, &clock, 0);
    send(&mut session, &clock, 10);
    session.update(clock.at(30).0, clock.at(30).1);
    assert!(session.is_finished(), "the deadline has passed");
    // Both replies are read after the end; only the one the kernel stamped before counts.
    reply(&mut session, &clock, 1, 20);
    reply(&mut session, &clock, 2, 31);
    let stats = session.into_stats();
    assert_eq!((stats.transmitted(), stats.received()), (2, 1));
}

#[test]
fn a_deadline_ends_the_run() {
    let (mut session, clock) = new(settings(None, 10 * MS, Some(25 * MS)));
    send(&mut session, &clock, 0);
    send(&mut session, &clock, 10);
    send(&mut session, &clock, 20);
    assert_eq!(session.wake_at(), Some(clock.at(25).0));
    session.update(clock.at(25).0, clock.at(25).1);
    assert!(session.is_finished());
    assert_eq!(session.into_stats().loss(), 1.0);
}

#[test]
fn errors_answer_probes_and_name_their_sender() {
    let (mut session, clock) = new(settings(Some(2), Duration::ZERO, None));
    send(&mut session, &clock, 0);
    let error = |seq| QuotedError {
        kind: IcmpErrorKind::TimeExceeded,
        code: 0,
        mtu: None,
        family: Family::V4,
        destination: TARGET,
        ident: 7,
        seq,
    };
    session.on_error(&error(1), ROUTER, clock.at(0).1);
    session.update(clock.at(0).0, clock.at(0).1);
    assert!(session.is_due(clock.at(0).0), "the error answered probe 1");
    // An error quoting a request to another destination is not ours.
    session.on_error(&QuotedError { destination: ROUTER, ..error(1) }, ROUTER, clock.at(0).1);
    send(&mut session, &clock, 0);
    session.on_error(&error(2), ROUTER, clock.at(0).1);
    session.update(clock.at(0).0, clock.at(0).1);
    assert!(session.is_finished(), "two probes answered, by errors");
    let stats = session.into_stats();
    assert_eq!((stats.received(), stats.errors()), (0, 2));
    assert_eq!(stats.probes()[0].from(), Some(ROUTER));
    let Some(ProbeError::Icmp(error)) = stats.probes()[1].error() else { panic!("no ICMP error recorded") };
    assert_eq!(error.kind(), IcmpErrorKind::TimeExceeded);
}

#[test]
fn an_error_ends_a_run_with_a_deadline() {
    let (mut session, clock) = new(settings(Some(5), 10 * MS, Some(1000 * MS)));
    send(&mut session, &clock, 0);
    let error = QuotedError {
        kind: IcmpErrorKind::DestinationUnreachable,
        code: 1,
        mtu: None,
        family: Family::V4,
        destination: TARGET,
        ident: 7,
        seq: 1,
    };
    session.on_error(&error, ROUTER, clock.at(1).1);
    session.update(clock.at(1).0, clock.at(1).1);
    assert!(session.is_finished(), "iputils stops at the first error when -w is given");
}

#[test]
fn refused_sends_count_as_transmitted_and_lost() {
    let (mut session, clock) = new(settings(Some(2), Duration::ZERO, None));
    let (now, wall) = clock.at(0);
    session.update(now, wall);
    session.next_probe();
    session.send_failed(now, wall, SendFailure::Refused(libc::ENETUNREACH));
    assert!(!session.is_due(clock.at(5).0), "iputils waits 10 ms after a failed send");
    assert!(session.is_due(clock.at(10).0));
    let (now, wall) = clock.at(10);
    session.next_probe();
    session.send_failed(now, wall, SendFailure::Refused(libc::ENETUNREACH));
    session.update(now, wall);
    assert!(session.is_finished());
    let stats = session.into_stats();
    assert_eq!((stats.transmitted(), stats.received(), stats.errors()), (2, 0, 0));
    assert_eq!(stats.probes()[0].error(), Some(&ProbeError::Send { errno: libc::ENETUNREACH }));
}

#[test]
fn a_probe_refused_for_lack_of_buffers_is_retried_then_lost() {
    // The timeout of `settings` is 100 ms.
    let (mut session, clock) = new(settings(Some(1), Duration::ZERO, None));
    for ms in [0, 1, 50, 99] {
        let (now, wall) = clock.at(ms);
        session.update(now, wall);
        assert!(session.is_due(now), "retried at {ms} ms");
        session.next_probe();
        session.send_failed(now, wall, SendFailure::Retry);
    }
    let (now, wall) = clock.at(100);
    session.next_probe();
    session.send_failed(now, wall, SendFailure::Retry);
    session.update(now, wall);
    assert!(session.is_finished(), "given up after the probe's timeout");
    let stats = session.into_stats();
    assert_eq!((stats.transmitted(), stats.received()), (1, 0));
    assert_eq!(stats.probes()[0].error(), Some(&ProbeError::Send { errno: libc::ENOBUFS }));
}

#[test]
fn sequence_numbers_wrap_to_the_latest_probe() {
    let (mut session, clock) = new(settings(None, Duration::ZERO, Some(Duration::from_secs(3600))));
    for _ in 0..65_537 {
        let (now, wall) = clock.at(0);
        session.next_probe();
        session.sent(now, wall);
    }
    // Probe 65537 went out with sequence number 1, like probe 1.
    assert_eq!(session.index_of(1), Some(65_536));
    assert_eq!(session.index_of(2), Some(1));
    assert_eq!(session.index_of(0), Some(65_535));
}
