//! Per-test overhead, median wall time of one test run as its own process:
//! - a plain `#[test]`;
//! - a `#[netns_test]` with the seed topology ready (its child created, wired, awaited);
//! - the seed's shell procedure as the seed writes it (`ip netns add test1`, `ip link add veth0
//!   type veth peer name veth1`, `ip link set veth1 netns test1`, addresses, links up, one
//!   iputils ping each way, teardown), run inside a scratch network and mount namespace, with
//!   a fresh `/run`, so that neither the root namespace nor the host's `/run` is touched.
//!
//! The three run interleaved with cycles of the floor (the same kernel work in-process, see
//! [`super::floor`]), so that machine noise hits them alike. Then the cost per test within a
//! suite: forty plain tests, and forty seed `#[netns_test]`s, per run of the binary, one test
//! at a time, so the binary's own start is shared as in a real suite; floor cycles in between
//! again. Every figure is printed as a ratio to the floor's median cycle, and the overhead of a
//! `#[netns_test]` over a plain `#[test]` as a multiple of the floor.

use std::process::Command;
use std::time::{Duration, Instant};

use super::floor;
use crate::util::{Result, median, ms};

/// How many tests of each kind the suite runs have (see `tests/tests/overhead.rs`).
const SUITE: u32 = 40;
/// Floor cycles per round; each round's floor runs in a fresh process, which costs a process
/// start outside the cycles' times.
const FLOOR_CYCLES: usize = 2;

/// The seed procedure. `/run` gets a fresh tmpfs inside the scratch mount namespace, where
/// `ip netns add` then makes `/run/netns`: nothing appears on the host. (A `mkdir` under the
/// host's `/run` would: a mount namespace separates mounts, not the files of a filesystem that
/// both namespaces have mounted. For the same reason `mount -n`: without it, util-linux's
/// `mount` makes `/run/mount` for its table before the new `/run` covers the host's.)
const SEED_SCRIPT: &str = r#"
set -e
mount -n -t tmpfs tmpfs /run
ip netns add test1
ip link add veth0 type veth peer name veth1
ip link set veth1 netns test1
ip addr add 1.1.1.2/24 dev veth0
ip netns exec test1 ip addr add 1.1.1.1/24 dev veth1
ip link set lo up
ip link set veth0 up
ip netns exec test1 ip link set lo up
ip netns exec test1 ip link set veth1 up
ping -c 1 -W 2 -q 1.1.1.1 >/dev/null
ip netns exec test1 ping -c 1 -W 2 -q 1.1.1.2 >/dev/null
ip netns del test1
"#;

pub(crate) fn run(quick: bool) -> Result {
    let runs = if quick { 10 } else { 60 };
    let binary = crate::util::test_binary("netns-test-tests", "overhead")?;
    for (program, package) in [("ip", "iproute2"), ("ping", "iputils-ping")] {
        if !super::installed(program) {
            return Err(format!("`{program}` is not installed (apt-get install {package})"));
        }
    }

    let mut plain_cmd = Command::new(&binary);
    plain_cmd.args(["--exact", "plain", "--test-threads=1", "-q"]);
    let mut netns_cmd = Command::new(&binary);
    netns_cmd.args(["--exact", "netns_seed", "--test-threads=1", "-q"]);
    let mut script_cmd = Command::new("unshare");
    script_cmd.args(["--net", "--mount", "--propagation", "private", "sh", "-c", SEED_SCRIPT]);

    // One untimed round warms the page cache and the binaries.
    for command in [&mut plain_cmd, &mut netns_cmd, &mut script_cmd] {
        time(command)?;
    }
    // The floor's untimed round; it says which mode the floor runs in (root or rootless).
    let floor_mode = floor::run(1)?.mode;
    let (mut plain, mut netns, mut script, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(time(&mut plain_cmd)?);
        netns.push(time(&mut netns_cmd)?);
        script.push(time(&mut script_cmd)?);
        floor.extend(floor::run(FLOOR_CYCLES)?.each);
    }
    // Within a suite: forty tests of each kind in one run of the binary, one at a time.
    let suite_runs = if quick { 3 } else { 11 };
    let mut suite_plain_cmd = Command::new(&binary);
    suite_plain_cmd.args(["suite_plain::", "--test-threads=1", "-q"]);
    let mut suite_netns_cmd = Command::new(&binary);
    suite_netns_cmd.args(["suite_netns::", "--test-threads=1", "-q"]);
    let (mut suite_plain, mut suite_netns) = (Vec::new(), Vec::new());
    for _ in 0..suite_runs {
        suite_plain.push(time(&mut suite_plain_cmd)? / SUITE);
        suite_netns.push(time(&mut suite_netns_cmd)? / SUITE);
        floor.extend(floor::run(FLOOR_CYCLES)?.each);
    }
    let (suite_plain, suite_netns) = (median(&mut suite_plain), median(&mut suite_netns));
    let floor_cycles = floor.len();
    let floor = median(&mut floor);
    let x = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();

    let slow_scripts = script.iter().filter(|d| **d > Duration::from_millis(900)).count();
    let (plain, netns, script) = (median(&mut plain), median(&mut netns), median(&mut script));
    let over = netns.saturating_sub(plain);
    let speedup = script.as_secs_f64() / netns.as_secs_f64();
    let (ratio, suite_ratio) = (x(over), x(suite_netns.saturating_sub(suite_plain)));
    println!("overhead: median wall time per test, {runs} interleaved runs each; x = multiple of the floor");
    println!(
        "  floor (the seed's kernel work)   {:>9} ms   (1.00x; median of {floor_cycles} cycles, {floor_mode})",
        ms(floor)
    );
    println!("  plain #[test]                    {:>9} ms   ({:.2}x)", ms(plain), x(plain));
    println!(
        "  #[netns_test], seed topology     {:>9} ms   ({:.2}x; +{} ms over plain = {ratio:.2}x the floor; goal: at most 1.5x)",
        ms(netns),
        x(netns),
        ms(over)
    );
    println!(
        "  seed shell procedure             {:>9} ms   ({:.1}x; {slow_scripts} of {runs} runs stalled on the first ARP)",
        ms(script),
        x(script)
    );
    println!("  #[netns_test] is {speedup:.1}x cheaper than the shell procedure (goal: at least 15x)");
    let suite_over = suite_netns.saturating_sub(suite_plain);
    let suite_speedup = script.as_secs_f64() / suite_netns.as_secs_f64();
    println!(
        "within a suite: {SUITE} tests of each kind per run of the binary, one at a time, median of {suite_runs}"
    );
    println!(
        "  plain #[test]                    {:>9} ms per test ({:.2}x)",
        ms(suite_plain),
        x(suite_plain)
    );
    println!(
        "  #[netns_test], seed topology     {:>9} ms per test ({:.2}x; +{} ms over plain = {suite_ratio:.2}x the floor; \
         {suite_speedup:.1}x cheaper than the shell procedure)",
        ms(suite_netns),
        x(suite_netns),
        ms(suite_over)
    );
    println!(
        "overhead: plain_ms={} netns_test_ms={} seed_script_ms={} speedup_vs_script={speedup:.1} \
         suite_plain_ms={} suite_netns_test_ms={} suite_speedup_vs_script={suite_speedup:.1} \
         floor_ms={} ratio_to_floor={ratio:.2} suite_ratio_to_floor={suite_ratio:.2}",
        ms(plain),
        ms(netns),
        ms(script),
        ms(suite_plain),
        ms(suite_netns),
        ms(floor)
    );
    Ok(())
}

fn time(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let output = command.output().map_err(|e| format!("cannot run {}: {e}", crate::util::render(command)))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "`{}` failed: {}\n{}{}",
            crate::util::render(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(elapsed)
}
