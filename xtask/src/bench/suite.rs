//! Suite throughput: a generated test binary of 1000 trivial seed `#[netns_test]`s and 1000
//! plain `#[test]`s, run with default parallelism by libtest (the binary itself, as `cargo
//! test` runs it) and by `cargo nextest run`, next to 1000 cycles of the floor (see
//! [`super::floor`]) run one after the other, and the same 1000 shared out over one process per
//! CPU at once (the kernel work alone on every CPU: the ceiling of any runner here).
//!
//! The crate is generated under `target/bench-suite/` (never in the repository) and depends on
//! the library by path, with the workspace's `dev` profile, so that it is built as the
//! workspace's own tests are. Both kinds of test live in one binary (modules `seed` and
//! `plain`, selected by name filter), so that both pay for the same binary: its size, its
//! start and its list of 2000 tests.
//!
//! Each test's completion is timed as its status line arrives (libtest's `test ... ok` on
//! standard output, nextest's `PASS` on standard error), so that the first and the last tenth
//! of the run can be compared: if namespaces whose cleanup the kernel has not finished yet
//! made later ones slower to create, the last tenth would take longer.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::floor;
use crate::util::{Result, ms, render, root};

/// How many tests of each kind the generated binary has.
const TESTS: usize = 1000;

pub(crate) fn run(quick: bool) -> Result {
    // The quick run takes the first hundred of each kind (`seed::t00..`, `plain::t00..`).
    let (count, prefix) = if quick { (100, "t00") } else { (TESTS, "t") };
    let binary = build()?;
    let manifest = crate_dir().join("Cargo.toml");
    let seed_filter = format!("seed::{prefix}");
    let plain_filter = format!("plain::{prefix}");

    // Each namespace-heavy phase is followed by a light one, which gives the kernel a moment to
    // catch up with the previous phase's namespace cleanup before the next heavy phase.
    let mut mode = String::new();
    let floor_run = counted(|| {
        let floor = floor::run(count)?;
        mode = floor.mode;
        let done = floor
            .each
            .iter()
            .scan(Duration::ZERO, |at, cycle| {
                *at += *cycle;
                Some(*at)
            })
            .collect();
        Ok(Run { total: floor.total, done, netns: None })
    })?;
    // The same cycles spread over every CPU: the most that any runner could reach here. Two
    // heavy phases in a row, so the kernel's cleanup of the first is awaited before the second.
    settle(floor_run.netns.map(|(before, _)| before));
    let floor_parallel = floor::run_parallel(count, cpus())?;
    let plain = counted(|| libtest(&binary, &plain_filter, count))?;
    let seed = counted(|| libtest(&binary, &seed_filter, count))?;
    let nextest_plain = counted(|| nextest(&manifest, &plain_filter, count))?;
    let nextest_seed = counted(|| nextest(&manifest, &seed_filter, count))?;

    let floor_per_s = floor_run.per_second();
    let tenth = count / 10;
    println!(
        "suite: {count} tests of each kind, default parallelism ({} CPUs), in the order they ran",
        cpus()
    );
    println!(
        "  {:<38} {:>9} {:>10} {:>13} {:>13} {:>17}",
        "",
        "tests/s",
        "x floor",
        format!("first {tenth}"),
        format!("last {tenth}"),
        "netns allocated"
    );
    let row = |label: &str, run: &Run| {
        let (first, last) = run.tenths();
        let netns = run.netns.map_or("-".to_string(), |(before, after)| format!("{before} -> {after}"));
        println!(
            "  {label:<38} {:>9.0} {:>9.2}x {:>10} ms {:>10} ms {netns:>17}",
            run.per_second(),
            run.per_second() / floor_per_s,
            ms(first),
            ms(last)
        );
    };
    row(&format!("floor, one cycle at a time ({mode})"), &floor_run);
    let parallel_per_s = count as f64 / floor_parallel.as_secs_f64();
    println!(
        "  {:<38} {parallel_per_s:>9.0} {:>9.2}x",
        format!("floor, {} processes at once", cpus()),
        parallel_per_s / floor_per_s
    );
    row("plain #[test], cargo test", &plain);
    row("seed #[netns_test], cargo test", &seed);
    row("plain #[test], cargo nextest run", &nextest_plain);
    row("seed #[netns_test], cargo nextest run", &nextest_seed);
    let tests_per_s = seed.per_second();
    let ratio = tests_per_s / floor_per_s;
    let (first10, last10) = seed.tenths();
    println!(
        "  netns allocated: the kernel's net namespaces not yet freed, machine-wide (/proc/slabinfo), \
         before and after each run"
    );
    println!(
        "  cargo test runs seed tests at {ratio:.2}x the floor's single-core rate (goal: at least 1.5x, \
         and 3x the baseline tests/s recorded in BENCHMARKS.md)"
    );
    println!(
        "  the floor on every CPU at once reaches {:.2}x its single-core rate: no runner on this \
         machine can run seed tests faster than that ({parallel_per_s:.0} tests/s)",
        parallel_per_s / floor_per_s
    );
    println!(
        "suite: tests_per_s={tests_per_s:.0} nextest_tests_per_s={:.0} floor_per_s={floor_per_s:.0} \
         ratio={ratio:.2} first10_ms={} last10_ms={}",
        nextest_seed.per_second(),
        ms(first10),
        ms(last10)
    );
    Ok(())
}

/// One run of some tests: its wall time and when each test was done, from the run's start.
struct Run {
    total: Duration,
    done: Vec<Duration>,
    /// [`namespaces_allocated`] before and after the run.
    netns: Option<(u64, u64)>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.done.len() as f64 / self.total.as_secs_f64()
    }

    /// How long the first tenth of the tests took to be done (from the run's start), and how
    /// long the last tenth took (from the completion of the test before it).
    fn tenths(&self) -> (Duration, Duration) {
        let mut done = self.done.clone();
        done.sort();
        let tenth = (done.len() / 10).max(1);
        let first = done[tenth - 1];
        let before_last = done.len().checked_sub(tenth + 1).map_or(Duration::ZERO, |i| done[i]);
        (first, done[done.len() - 1].saturating_sub(before_last))
    }
}

/// Runs `run` and notes how many network namespaces the kernel held before and after it.
fn counted(run: impl FnOnce() -> Result<Run>) -> Result<Run> {
    let before = namespaces_allocated();
    let mut done = run()?;
    done.netns = before.zip(namespaces_allocated());
    Ok(done)
}

/// How many network namespaces the kernel has allocated and not yet freed, on the whole
/// machine: the live ones and those whose cleanup (asynchronous, after their last process and
/// descriptor are gone) has not finished. From `/proc/slabinfo`, which only root may read.
fn namespaces_allocated() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("net_namespace "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits (ten seconds at most) until the kernel holds no more network namespaces than
/// `level`: the cleanup of the runs before has caught up. There is no notification for it, so
/// the count is polled.
fn settle(level: Option<u64>) {
    let Some(level) = level else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    while namespaces_allocated().is_some_and(|now| now > level) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The generated crate's directory.
fn crate_dir() -> PathBuf {
    root().join("target").join("bench-suite")
}

/// Generates the crate (files rewritten only when they change, so that cargo does not rebuild
/// for nothing), builds its test binary and returns its path.
fn build() -> Result<PathBuf> {
    let dir = crate_dir();
    let profile = dev_profile()?;
    let manifest = format!(
        "# Generated by `cargo xtask bench suite`; not part of the repository.\n\
         [package]\nname = \"netns-test-bench-suite\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A workspace of its own, outside the repository's.\n[workspace]\n\n\
         [dev-dependencies]\nnetns-test = {{ path = {:?} }}\n\n\
         # The repository's dev profile, so that the library is built as for its own tests.\n{profile}",
        root().join("netns-test").display().to_string()
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(
        &dir.join("src/lib.rs"),
        "//! Generated by `cargo xtask bench suite`: see tests/suite.rs.\n",
    )?;
    write_if_changed(&dir.join("tests/suite.rs"), &test_source())?;
    // The same dependency versions as the repository's (cargo prunes what the crate does not use).
    if !dir.join("Cargo.lock").exists() {
        let lock = std::fs::read_to_string(root().join("Cargo.lock"))
            .map_err(|e| format!("reading Cargo.lock: {e}"))?;
        write_if_changed(&dir.join("Cargo.lock"), &lock)?;
    }
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["test", "--no-run", "--message-format=json", "--test", "suite", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(root().join("target"));
    eprintln!("xtask: building the generated suite in {} (minutes the first time)", dir.display());
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", render(&command)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed: {}", render(&command), output.status));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"test\":true"))
        .find_map(|line| {
            let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = line[start..].find('"')?;
            Some(PathBuf::from(&line[start..start + end]))
        })
        .ok_or_else(|| format!("`{}` reported no test binary", render(&command)))
}

/// The `[profile.dev]` section of the repository's `Cargo.toml`, as written there.
fn dev_profile() -> Result<String> {
    let text =
        std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| format!("reading Cargo.toml: {e}"))?;
    profile_section(&text).ok_or_else(|| "the workspace's Cargo.toml has no [profile.dev]".to_string())
}

/// The `[profile.dev]` section of a manifest: up to the next section's header, the newline
/// before it included.
fn profile_section(text: &str) -> Option<String> {
    let section = &text[text.find("[profile.dev]")?..];
    let end = section[1..].find("\n[").map_or(section.len(), |i| i + 2);
    Some(section[..end].to_string())
}

/// The generated tests: `seed::t0000..` with the default topology and a body that only looks
/// at it (as `netns_seed` of `tests/tests/overhead.rs`), `plain::t0000..` with a body as
/// trivial.
fn test_source() -> String {
    let mut text = String::from(
        "//! Generated by `cargo xtask bench suite`: trivial seed #[netns_test]s and plain #[test]s.\n\n\
         mod seed {\n    use netns_test::{Network, netns_test};\n",
    );
    for i in 0..TESTS {
        let _ = write!(
            text,
            "\n    #[netns_test]\n    fn t{i:04}(net: &Network) {{\n        \
             assert_eq!(net.local().interfaces()[0].name(), \"veth0\");\n    }}\n"
        );
    }
    text.push_str("}\n\nmod plain {\n");
    for i in 0..TESTS {
        let _ = write!(
            text,
            "\n    #[test]\n    fn t{i:04}() {{\n        assert_eq!(std::hint::black_box({i}_u32).wrapping_add(1), {});\n    }}\n",
            i + 1
        );
    }
    text.push_str("}\n");
    text
}

fn write_if_changed(path: &Path, contents: &str) -> Result {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Runs the tests matching `filter` with libtest's default parallelism, as `cargo test` runs
/// the binary, and times each test's completion by its `test <name> ... ok` line.
fn libtest(binary: &Path, filter: &str, count: usize) -> Result<Run> {
    let mut command = Command::new(binary);
    // Default parallelism, whatever the caller's environment would choose instead.
    command.arg(filter).env_remove("RUST_TEST_THREADS").stdout(Stdio::piped()).stderr(Stdio::inherit());
    timed(command, count, |line| line.starts_with("test ") && line.ends_with(" ... ok"), |_| false)
}

/// Runs the tests matching `filter` under `cargo nextest run` with its default parallelism,
/// and times each test's completion by its `PASS` line. The run's clock starts when nextest
/// says `Starting`, after cargo has checked the build and nextest has listed the tests.
fn nextest(manifest: &Path, filter: &str, count: usize) -> Result<Run> {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["nextest", "run", "--test", "suite", "--no-fail-fast", "--color", "never"])
        .args(["--status-level", "pass", "--final-status-level", "none", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(root().join("target"))
        .arg(filter)
        .env_remove("NEXTEST_TEST_THREADS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    timed(
        command,
        count,
        |line| line.trim_start().starts_with("PASS ["),
        |line| line.trim_start().starts_with("Starting "),
    )
}

/// Runs `command`, which pipes one stream (standard output or standard error), and reads it
/// line by line as it comes: each line `done` accepts is a test done, timed from the start,
/// which is the command's start or, if `start` accepts a line, that line's arrival. The run
/// ends when the command exits; it must succeed with `count` tests done.
fn timed(
    mut command: Command,
    count: usize,
    done: impl Fn(&str) -> bool,
    start: impl Fn(&str) -> bool,
) -> Result<Run> {
    let label = render(&command);
    let mut started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot run {label}: {e}"))?;
    let stream: Box<dyn std::io::Read> = match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), _) => Box::new(stdout),
        (None, Some(stderr)) => Box::new(stderr),
        (None, None) => return Err(format!("`{label}` has no piped output")),
    };
    let (mut times, mut log) = (Vec::new(), String::new());
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("reading the output of {label}: {e}"))?;
        let now = Instant::now();
        if start(&line) {
            started = now;
        } else if done(&line) {
            times.push(now - started);
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().map_err(|e| format!("waiting for {label}: {e}"))?;
    let total = started.elapsed();
    if !status.success() {
        return Err(format!("`{label}` failed: {status}\n{log}"));
    }
    if times.len() != count {
        return Err(format!("`{label}` passed {} tests, not {count}:\n{log}", times.len()));
    }
    Ok(Run { total, done: times, netns: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_are_a_hundred_completions_each() {
        // Tests done at 1, 2, ..., 1000 ms, in any order: the 100th at 100 ms, and the last
        // hundred from 900 ms to 1000 ms.
        let mut done: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        done.reverse();
        let run = Run { total: Duration::from_secs(1), done, netns: None };
        assert_eq!(run.tenths(), (Duration::from_millis(100), Duration::from_millis(100)));
        assert_eq!(run.per_second(), 1000.0);
    }

    #[test]
    fn the_generated_binary_has_both_kinds() {
        let source = test_source();
        assert_eq!(source.matches("#[netns_test]\n").count(), TESTS);
        assert_eq!(source.matches("#[test]\n").count(), TESTS);
        assert!(source.contains("fn t0999(net: &Network)"));
        assert!(source.contains("fn t0999()"));
    }

    #[test]
    fn the_dev_profile_section_is_copied_alone() {
        let manifest =
            "[workspace]\nmembers = []\n\n[profile.dev]\nopt-level = 1\n\n[profile.release]\nlto = true\n";
        assert_eq!(profile_section(manifest).unwrap(), "[profile.dev]\nopt-level = 1\n\n");
        let last = "[package]\n[profile.dev]\ndebug = false\n";
        assert_eq!(profile_section(last).unwrap(), "[profile.dev]\ndebug = false\n");
        assert_eq!(profile_section("[package]\n"), None);
    }
}
