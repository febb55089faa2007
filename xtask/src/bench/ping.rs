//! Ping rate and latency, ours against iputils, in one run on the same veth pair: inside a
//! `netns_test::sandbox` with the default pair topology, from `test0` to 1.1.1.1, iputils
//! `ping -n -q -i 0 -c 1000` and our pinger with the same count and a zero interval, in
//! interleaved rounds so that machine noise hits both alike.
//!
//! Rate: both pingers are timed the same way, from the outside. A round times a run of 1000
//! probes and a run of one probe; the difference between the best of each is the cost of 999
//! probes, with start-up (a process for iputils, a socket for ours) cancelled out. The best,
//! not the median: on a shared machine other processes only ever add time, and often to more
//! than half of the rounds. iputils' own "time" would not do: it is rounded to the
//! millisecond, and 1000 probes take about three.
//!
//! RTT: the mean over every reply of every round. Ours comes from the nanosecond RTTs it
//! records; iputils' from its per-reply times (a third run per round, without `-q`; see
//! [`parse_iputils`]). Both time a probe the same way, from a clock read just before the send
//! to the kernel's receive timestamp of the reply.

use std::time::{Duration, Instant};

use netns_test::ping::PingStats;
use netns_test::{Network, Node, Topology, sandbox};

use crate::util::Result;

const PEER: &str = "1.1.1.1";
const COUNT: u64 = 1000;
/// "Within 2 µs" counts as meeting the RTT goal, whatever the ratio.
const RTT_SLACK: Duration = Duration::from_micros(2);

pub(crate) fn run(quick: bool) -> Result {
    let rounds = if quick { 5 } else { 101 };
    sandbox(Topology::pair(), move |net| measure(net, rounds)).map_err(|error| format!("{error:?}"))
}

/// One pinger's samples.
#[derive(Default)]
struct Samples {
    /// Wall time of a run of [`COUNT`] probes.
    full: Vec<Duration>,
    /// Wall time of a run of one probe.
    single: Vec<Duration>,
    /// Replies and their summed RTT.
    replies: u64,
    rtt: Duration,
}

impl Samples {
    fn add_rtt(&mut self, replies: u64, mean: Duration) {
        self.replies += replies;
        self.rtt += mean * replies as u32;
    }

    /// Probes per second beyond the first: `COUNT - 1` over the extra time of the full run.
    /// Best of the rounds: other processes on the machine only ever add time.
    fn rate(&self) -> f64 {
        let best = |samples: &[Duration]| samples.iter().copied().min().unwrap_or_default();
        let extra = best(&self.full).saturating_sub(best(&self.single));
        (COUNT - 1) as f64 / extra.as_secs_f64()
    }

    fn avg(&self) -> Duration {
        self.rtt / self.replies as u32
    }
}

fn timed<T>(run: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let started = Instant::now();
    let value = run()?;
    Ok((started.elapsed(), value))
}

/// Our pinger: `count` probes at a zero interval, all answered.
fn ours(node: &Node, count: u64) -> Result<PingStats> {
    let stats = node.ping(PEER).count(count).interval(Duration::ZERO).run().map_err(|e| format!("{e:?}"))?;
    if stats.received() != count {
        return Err(format!("our pinger lost probes on the veth pair:\n{stats}"));
    }
    Ok(stats)
}

/// iputils `ping -i 0`: the number of replies and their mean RTT.
fn iputils(node: &Node, count: u64, quiet: bool) -> Result<(u64, Option<Duration>)> {
    let count_text = count.to_string();
    let mut args = vec!["-n", "-i", "0", "-c", &count_text, PEER];
    if quiet {
        args.insert(0, "-q");
    }
    let output = node
        .command("ping")
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run iputils `ping` (apt-get install iputils-ping): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let parsed = parse_iputils(&text).ok_or_else(|| format!("cannot read iputils' output:\n{text}"))?;
    if (parsed.0, parsed.1) != (count, count) {
        return Err(format!("iputils lost probes on the veth pair:\n{text}"));
    }
    Ok((parsed.1, parsed.2))
}

fn measure(net: &Network, rounds: usize) -> Result {
    let node = net.local();
    // One untimed round each: neighbour resolution, page cache, CPU caches.
    ours(node, COUNT)?;
    iputils(node, COUNT, true)?;

    let (mut mine, mut theirs) = (Samples::default(), Samples::default());
    let mut last: Option<PingStats> = None;
    for round in 0..rounds {
        // Alternate which goes first, so that neither always follows the other.
        for our_turn in [round % 2 == 0, round % 2 == 1] {
            if our_turn {
                let (time, stats) = timed(|| ours(node, COUNT))?;
                mine.full.push(time);
                mine.single.push(timed(|| ours(node, 1))?.0);
                mine.add_rtt(stats.received(), stats.rtt_avg().ok_or("no RTT")?);
                last = Some(stats);
            } else {
                theirs.full.push(timed(|| iputils(node, COUNT, true))?.0);
                theirs.single.push(timed(|| iputils(node, 1, true))?.0);
                let (replies, mean) = iputils(node, COUNT, false)?;
                theirs.add_rtt(replies, mean.ok_or("iputils printed no reply times")?);
            }
        }
    }

    let (ours_pps, iputils_pps) = (mine.rate(), theirs.rate());
    let (ours_avg, iputils_avg) = (mine.avg(), theirs.avg());
    let rate_ratio = ours_pps / iputils_pps;
    let rtt_ratio = ours_avg.as_secs_f64() / iputils_avg.as_secs_f64();
    let rate_met = rate_ratio >= 1.0;
    let rtt_met = rtt_ratio <= 1.2 || ours_avg <= iputils_avg + RTT_SLACK;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ping: {rounds} interleaved rounds of {COUNT} probes at interval 0, test0 -> {PEER} over the seed's veth pair"
    );
    if let Some(last) = last {
        println!("  our last round:\n    {}", last.to_string().replace('\n', "\n    "));
    }
    println!("  ours      {ours_pps:>10.0} probes/s   avg RTT {:>7.3} µs", us(ours_avg));
    println!("  iputils   {iputils_pps:>10.0} probes/s   avg RTT {:>7.3} µs", us(iputils_avg));
    println!(
        "  rate ratio {rate_ratio:.3} (goal: at least 1: {}), RTT ratio {rtt_ratio:.3} (goal: at most 1.2 or within 2 µs: {})",
        if rate_met { "met" } else { "NOT met" },
        if rtt_met { "met" } else { "NOT met" },
    );
    println!(
        "ping: ours_pps={ours_pps:.0} iputils_pps={iputils_pps:.0} rate_ratio={rate_ratio:.3} ours_avg_us={:.3} iputils_avg_us={:.3} rtt_ratio={rtt_ratio:.3}",
        us(ours_avg),
        us(iputils_avg)
    );
    Ok(())
}

/// Transmitted and received from iputils' summary, and the mean of its per-reply times:
///
/// ```text
/// 64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.004 ms
/// ...
/// 1000 packets transmitted, 1000 received, 0% packet loss, time 3ms
/// ```
///
/// The mean comes from the per-reply times rather than the summary's `avg`, which iputils
/// truncates to whole microseconds, most of a veth round trip. Each reply's time is a
/// difference of two microsecond timestamps, off by less than a microsecond either way, so the
/// mean of a thousand of them is good to a few nanoseconds. With `-q` there are no per-reply
/// times, and no mean.
fn parse_iputils(text: &str) -> Option<(u64, u64, Option<Duration>)> {
    let counts = text.lines().find(|line| line.contains("packets transmitted"))?;
    let numbers: Vec<u64> =
        counts.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    let times: Vec<f64> = text
        .lines()
        .filter_map(|line| line.split(" time=").nth(1)?.strip_suffix(" ms")?.parse().ok())
        .collect();
    let mean = (!times.is_empty()).then(|| {
        let mean_ms = times.iter().sum::<f64>() / times.len() as f64;
        Duration::from_nanos((mean_ms * 1e6).round() as u64)
    });
    Some((*numbers.first()?, *numbers.get(1)?, mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iputils_output() {
        let text = "PING 1.1.1.1 (1.1.1.1) 56(84) bytes of data.\n\
                    64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.004 ms\n\
                    64 bytes from 1.1.1.1: icmp_seq=2 ttl=64 time=0.001 ms\n\
                    \n--- 1.1.1.1 ping statistics ---\n\
                    2 packets transmitted, 2 received, 0% packet loss, time 9ms\n\
                    rtt min/avg/max/mdev = 0.001/0.002/0.004/0.001 ms, ipg/ewma 0.009/0.004 ms\n";
        assert_eq!(parse_iputils(text), Some((2, 2, Some(Duration::from_nanos(2500)))));
        let quiet = "--- 1.1.1.1 ping statistics ---\n\
                     1000 packets transmitted, 999 received, 0.1% packet loss, time 3ms\n";
        assert_eq!(parse_iputils(quiet), Some((1000, 999, None)));
        assert_eq!(parse_iputils("ping: connect: Network is unreachable\n"), None);
    }
}
