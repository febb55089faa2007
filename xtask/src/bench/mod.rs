//! `cargo xtask bench [overhead|ping|topology|link|all]`: side-by-side comparisons in one run,
//! each ending with one `name: key=value ...` summary line.

mod link;
mod overhead;
mod ping;
mod topology;
mod validation;

use clap::ValueEnum;

use crate::util::Result;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    /// Cost per test: plain #[test], #[netns_test], and the seed's shell procedure.
    Overhead,
    /// Ping rate and RTT: our pinger against iputils `ping -i 0` on the same veth pair.
    Ping,
    /// Validation alone at 100 to 5000 nodes; a 10- and a 100-host star: bring-up, all-pairs
    /// reachability, teardown; Mininet beside.
    Topology,
    /// Link conditions: engine throughput against a plain veth, delay and loss accuracy.
    Link,
    /// Everything.
    All,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Fewer iterations, for a quick check that the benchmark works.
    #[arg(long)]
    quick: bool,
}

/// Set by the outermost `cargo xtask bench` and inherited by every process it starts.
const OUTER_RUN: &str = "XTASK_BENCH_OUTER_RUN";

static SANDBOX_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is a sandbox child of a benchmark: a re-execution of `cargo xtask bench`
/// that runs everything before its own `sandbox` call again. Measurements made in-process,
/// outside any sandbox, are skipped there.
pub(crate) fn in_sandbox_child() -> bool {
    SANDBOX_CHILD.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn run(args: &Args) -> Result {
    if std::env::var_os(OUTER_RUN).is_some() {
        SANDBOX_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
    } else {
        // SAFETY: no other thread runs yet: the benchmarks have not started.
        unsafe { std::env::set_var(OUTER_RUN, "1") };
    }
    let all = args.which == Which::All;
    // Sandboxed benchmarks re-execute this program, whose children run the code before their
    // `sandbox` call again (earlier `sandbox` calls return at once): run them before the rest,
    // or each child of `all` would repeat the overhead benchmark.
    if all || args.which == Which::Ping {
        ping::run(args.quick)?;
    }
    if all || args.which == Which::Topology {
        topology::run(args.quick)?;
    }
    if all || args.which == Which::Link {
        link::run(args.quick)?;
    }
    if all || args.which == Which::Overhead {
        overhead::run(args.quick)?;
    }
    Ok(())
}
