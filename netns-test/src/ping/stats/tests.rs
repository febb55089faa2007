use std::net::Ipv4Addr;

use super::summary::{FormatG, ReplyTime};
use super::*;

const TARGET: IpAddr = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));

fn reply(micros: u64) -> Reply {
    Reply { from: TARGET, ttl: Some(64), rtt: Duration::from_micros(micros), bytes: 64 }
}

fn probe(seq: u16, rtt: Option<u64>, duplicates: &[u64]) -> Probe {
    Probe {
        seq,
        sent: Duration::from_secs(u64::from(seq) - 1),
        reply: rtt.map(reply),
        duplicates: duplicates.iter().copied().map(reply).collect(),
        error: None,
    }
}

fn stats(probes: Vec<Probe>, errors: u64, time: Duration, flood: bool) -> PingStats {
    let received = probes.iter().filter(|p| p.reply.is_some()).count() as u64;
    let duplicates = probes.iter().map(|p| p.duplicates.len() as u64).sum();
    let counters = Counters {
        transmitted: probes.len() as u64,
        received,
        duplicates,
        corrupted: 0,
        errors,
        time,
        ewma_x8: 0,
    };
    PingStats::new("test0".into(), "1.1.1.1".into(), TARGET, 56, flood, counters, probes)
}

#[test]
fn figures_follow_iputils() {
    // Four probes: 100, 200 and 400 µs, one lost, and a duplicate of the first at 300 µs.
    let stats = stats(
        vec![
            probe(1, Some(100), &[300]),
            probe(2, Some(200), &[]),
            probe(3, None, &[]),
            probe(4, Some(400), &[]),
        ],
        0,
        Duration::from_millis(3003),
        false,
    );
    assert_eq!((stats.transmitted(), stats.received(), stats.duplicates()), (4, 3, 1));
    // Duplicates do not count as received: 1 of 4 lost.
    assert_eq!(stats.loss(), 0.25);
    // RTT figures include the duplicate: mean of 100, 300, 200, 400 = 250; population
    // standard deviation sqrt((150² + 50² + 50² + 150²) / 4) = 111.803 µs.
    assert_eq!(stats.rtt_min(), Some(Duration::from_micros(100)));
    assert_eq!(stats.rtt_avg(), Some(Duration::from_micros(250)));
    assert_eq!(stats.rtt_max(), Some(Duration::from_micros(400)));
    assert_eq!(stats.rtt_mdev().map(|d| d.as_nanos()), Some(111_803));
    assert_eq!(
        stats.to_string(),
        "--- 1.1.1.1 ping statistics ---\n\
         4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 3003ms\n\
         rtt min/avg/max/mdev = 0.100/0.250/0.400/0.111 ms"
    );
}

#[test]
fn a_run_without_replies_has_no_rtt_line() {
    let stats = stats(
        vec![probe(1, None, &[]), probe(2, None, &[]), probe(3, None, &[])],
        3,
        Duration::from_millis(2030),
        false,
    );
    assert_eq!(stats.loss(), 1.0);
    assert!(!stats.is_reachable());
    assert_eq!(stats.rtt_avg(), None);
    assert_eq!(stats.rtt_percentile(50.0), None);
    assert_eq!(
        stats.to_string(),
        "--- 1.1.1.1 ping statistics ---\n\
         3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2030ms"
    );
}

#[test]
fn loss_prints_like_printf_g() {
    // 2 of 3 lost: iputils prints 66.6667%.
    let stats = stats(
        vec![probe(1, Some(50), &[]), probe(2, None, &[]), probe(3, None, &[])],
        0,
        Duration::ZERO,
        false,
    );
    assert!(stats.to_string().contains(", 66.6667% packet loss, time 0ms"), "{stats}");
    assert_eq!(FormatG(0.0).to_string(), "0");
    assert_eq!(FormatG(100.0).to_string(), "100");
    assert_eq!(FormatG(33.333_332_061_767_58).to_string(), "33.3333");
    assert_eq!(FormatG(1.5).to_string(), "1.5");
    assert_eq!(FormatG(0.0001).to_string(), "0.0001");
    assert_eq!(FormatG(0.000_012_5).to_string(), "1.25e-05");
}

#[test]
fn flood_runs_print_ipg_and_ewma() {
    let mut stats =
        stats(vec![probe(1, Some(10), &[]), probe(2, Some(12), &[])], 0, Duration::from_micros(9), true);
    // iputils: ewma starts at the first RTT times 8, then moves by (rtt - ewma/8).
    stats.ewma_x8 = 80 + 12 - 10;
    assert!(
        stats
            .to_string()
            .ends_with("rtt min/avg/max/mdev = 0.010/0.011/0.012/0.001 ms, ipg/ewma 0.009/0.010 ms"),
        "{stats}"
    );
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let probes = (1..=10).map(|i| probe(i, Some(u64::from(i) * 10), &[])).collect();
    let stats = stats(probes, 0, Duration::ZERO, false);
    let micros = |p: f64| stats.rtt_percentile(p).map(|d| d.as_micros());
    assert_eq!(micros(0.0), Some(10));
    assert_eq!(micros(50.0), Some(50));
    assert_eq!(micros(90.0), Some(90));
    assert_eq!(micros(95.0), Some(100));
    assert_eq!(micros(100.0), Some(100));
    assert_eq!(micros(101.0), None);
    assert_eq!(micros(f64::NAN), None);
}

#[test]
fn reply_times_print_like_iputils() {
    let text = |micros| ReplyTime(Duration::from_micros(micros)).to_string();
    assert_eq!(text(45), "0.045 ms");
    assert_eq!(text(1234), "1.23 ms");
    assert_eq!(text(12_345), "12.3 ms");
    assert_eq!(text(123_456), "123 ms");
}

#[test]
fn the_transcript_lists_replies_duplicates_and_errors() {
    let mut probes = vec![probe(1, Some(45), &[60]), probe(2, None, &[])];
    probes[1].error = Some(ProbeError::Icmp(IcmpError {
        from: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 2)),
        kind: IcmpErrorKind::DestinationUnreachable,
        code: 1,
        mtu: None,
    }));
    let stats = stats(probes, 1, Duration::from_secs(1), false);
    let text = format!("{stats:#}");
    assert!(
        text.starts_with(
            "PING 1.1.1.1 (1.1.1.1) 56(84) bytes of data.\n\
             64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.045 ms\n\
             64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.060 ms (DUP!)\n\
             From 1.1.1.2 icmp_seq=2 Destination Host Unreachable\n\
             \n\
             --- 1.1.1.1 ping statistics ---\n"
        ),
        "{text}"
    );
}
