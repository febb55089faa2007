//! Link conditions: TCP throughput over a plain veth and over a user-space engine link with no
//! impairment (the engine's cost), and how exactly delay and loss are applied.
//!
//! Everything runs inside a `netns_test::sandbox` child (this program re-executed in fresh
//! namespaces), so nothing touches the host's network.

use netns_test::{Topology, sandbox};

use crate::util::Result;

pub(crate) fn run(quick: bool) -> Result {
    sandbox(Topology::seed(), move |_| {
        let report = netns_test::__private::link_bench(quick);
        for (round, (veth, engine)) in report.runs.iter().enumerate() {
            println!(
                "throughput round {}: veth {veth:.0} Mbit/s, engine {engine:.0} Mbit/s ({:.2}x)",
                round + 1,
                engine / veth
            );
        }
        println!(
            "per-packet path (superframes cut into wire packets): engine {:.0} Mbit/s",
            report.per_packet_mbps
        );
        println!(
            "delay 10 ms each way: {} pings, median RTT {:.3} ms, p90 {:.3} ms",
            report.pings, report.rtt_20ms_median_ms, report.rtt_20ms_p90_ms
        );
        println!("loss 10 % a->b: {} probes, {:.2} % lost", report.loss_probes, report.loss10_measured_pct);
        println!(
            "link: veth_mbps={:.0} engine_mbps={:.0} ratio={:.2} rtt_20ms_median_ms={:.3} loss10_measured_pct={:.2}",
            report.veth_mbps,
            report.engine_mbps,
            report.engine_mbps / report.veth_mbps,
            report.rtt_20ms_median_ms,
            report.loss10_measured_pct
        );
    })
    .map_err(|error| format!("the link benchmark failed: {error:?}"))
}
