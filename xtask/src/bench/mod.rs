//! `cargo xtask bench [overhead|ping|topology|link|suite|nat|all]`: side-by-side comparisons in one run,
//! each ending with one `name: key=value ...` summary line.

mod floor;
mod link;
mod nat;
mod overhead;
mod ping;
mod suite;
mod topology;
mod validation;

use std::process::Command;

use clap::ValueEnum;

use crate::util::Result;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    /// Cost per test: plain #[test], #[netns_test] and the seed's shell procedure, beside the floor.
    Overhead,
    /// Ping rate and RTT: our pinger against iputils `ping -i 0` on the same veth pair.
    Ping,
    /// Validation alone at 100 to 5000 nodes; a 10- and a 100-host star: bring-up, all-pairs
    /// reachability, teardown; Mininet beside.
    Topology,
    /// Link conditions: engine throughput against a plain veth, delay and loss accuracy.
    Link,
    /// Suite throughput: 1000 seed #[netns_test]s and 1000 plain tests under cargo test and
    /// nextest, beside 1000 floor cycles.
    Suite,
    /// NAT: bring-up of the two-NATs topology with and without NAT, UDP through the NAT
    /// against a plain routed path.
    Nat,
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
    /// Run the benchmarks in this process, without the root-namespace check around them (the
    /// checking process starts this one).
    #[arg(long, hide = true)]
    unchecked: bool,
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

/// Runs the benchmarks in a child process and checks that the root network namespace, and the
/// absence of `/run/netns`, are the same after them as before.
///
/// The check wraps a child rather than the code below because sandboxed benchmarks re-execute
/// this program, and each re-executed child runs the code before its `sandbox` call again: a
/// snapshot taken there would be taken in every child, inside its namespaces.
pub(crate) fn run(args: &Args) -> Result {
    if args.unchecked {
        return run_unchecked(args);
    }
    let before = crate::ci::snapshot()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let which = args.which.to_possible_value().expect("no variant is skipped");
    let mut command = Command::new(exe);
    command.args(["bench", which.get_name(), "--unchecked"]);
    if args.quick {
        command.arg("--quick");
    }
    let status =
        command.status().map_err(|e| format!("cannot run {}: {e}", crate::util::render(&command)))?;
    let after = crate::ci::snapshot()?;
    if before != after {
        let diff = crate::ci::diff_lines(&before, &after);
        return Err(format!("the root network namespace changed during the benchmarks:\n{diff}"));
    }
    eprintln!("xtask: the root network namespace is unchanged, and /run/netns as it was");
    if status.success() { Ok(()) } else { Err(format!("the benchmarks failed: {status}")) }
}

/// Whether `program` is in `PATH`.
pub(super) fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn run_unchecked(args: &Args) -> Result {
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
    if all || args.which == Which::Nat {
        nat::run(args.quick)?;
    }
    if all || args.which == Which::Overhead {
        overhead::run(args.quick)?;
    }
    if all || args.which == Which::Suite {
        suite::run(args.quick)?;
    }
    Ok(())
}

/// `cargo xtask floor-cycles N` (see [`floor`]).
pub(crate) fn floor_cycles(cycles: usize) -> Result {
    floor::serve(cycles)
}
