//! How a `#[netns_test]` ends: panics, errors, signals and timeouts become readable failures,
//! and nothing is left behind however the test process dies.
//!
//! The `subject_*` tests fail on purpose; they are ignored and run by the `driver_*` tests,
//! which start this binary again for one subject and look at the outcome, once with the
//! child started directly and once through the fork server (`subjects`).

use std::process::Command;
use std::time::Duration;

use netns_test::{Network, netns_test};
use netns_test_tests::{
    Running, eventually, fork_servers_of, holders_of_netns, is_fork_server, processes_with, run_subject,
    subject, subjects,
};

/// Starts, in node `test1`, a shell that forks a `sleep` into the background and exits: the
/// kind of daemon that escapes its parent. `marker` appears in its command line.
fn start_daemon(net: &Network, marker: &str) {
    let status = net
        .node("test1")
        .command("sh")
        .arg("-c")
        .arg(format!("sh -c 'sleep 600; : {marker}' >/dev/null 2>&1 &"))
        .status()
        .expect("sh runs");
    assert!(status.success());
}

fn hang() -> ! {
    loop {
        std::thread::park();
    }
}

#[netns_test]
#[ignore = "fails on purpose; run by driver_panic_message_and_location"]
fn subject_panics() {
    let answer = 42;
    panic!("the body says no: {answer}");
}

#[test]
fn driver_panic_message_and_location() {
    for (path, mut command) in subjects("subject_panics") {
        let outcome = run_subject(&mut command);
        assert!(!outcome.status.success(), "{path}: {}", outcome.all());
        let text = outcome.all();
        assert!(text.contains("test `subject_panics` panicked at tests/tests/runner.rs:"), "{path}: {text}");
        assert!(text.contains("the body says no: 42"), "{path}: {text}");
    }
}

#[netns_test]
#[ignore = "fails on purpose; run by driver_error_result"]
fn subject_returns_err() -> Result<(), String> {
    Err("the peer hung up".to_string())
}

#[test]
fn driver_error_result() {
    for (path, mut command) in subjects("subject_returns_err") {
        let outcome = run_subject(&mut command);
        assert!(!outcome.status.success());
        assert!(
            outcome.all().contains("test `subject_returns_err` returned an error: \"the peer hung up\""),
            "{path}: {}",
            outcome.all()
        );
    }
}

#[netns_test]
#[ignore = "fails on purpose; run by driver_signal"]
fn subject_aborts() {
    std::process::abort();
}

#[test]
fn driver_signal() {
    for (path, mut command) in subjects("subject_aborts") {
        let outcome = run_subject(&mut command);
        assert!(!outcome.status.success());
        assert!(
            outcome
                .all()
                .contains("test `subject_aborts`: the child process was killed by SIGABRT (signal 6)"),
            "{path}: {}",
            outcome.all()
        );
    }
}

#[netns_test]
#[ignore = "exits on purpose; run by driver_exit_in_the_body"]
fn subject_exits_with_status_zero() {
    std::process::exit(0);
}

#[test]
fn driver_exit_in_the_body() {
    // Status 0 without a verdict, after the body started: neither a pass nor a selection problem.
    for (path, mut command) in subjects("subject_exits_with_status_zero") {
        let outcome = run_subject(&mut command);
        assert!(!outcome.status.success(), "{path}: {}", outcome.all());
        let text = outcome.all();
        assert!(
            text.contains(
                "test `subject_exits_with_status_zero`: the body exited the process with status 0 \
                 before the test finished"
            ),
            "{path}: {text}"
        );
        assert!(!text.contains("ran no test"), "{path}: {text}");
    }
}

// A fraction of a second, as NETNS_TEST_TIMEOUT and topology files write durations.
#[netns_test(timeout = "1.5s")]
#[ignore = "hangs on purpose; run by driver_timeout_kills_everything"]
fn subject_hangs(net: &Network) {
    start_daemon(net, "netns-test-marker-timeout");
    hang();
}

#[test]
fn driver_timeout_kills_everything() {
    for (path, mut command) in subjects("subject_hangs") {
        let outcome = run_subject(&mut command);
        assert!(!outcome.status.success());
        let text = outcome.all();
        assert!(
            text.contains("test `subject_hangs` timed out after 1s 500ms while the test body was running"),
            "{path}: {text}"
        );
        assert!(outcome.elapsed < Duration::from_secs(20), "{path}: took {:?}", outcome.elapsed);
        assert!(
            eventually(Duration::from_secs(10), || processes_with("netns-test-marker-timeout").is_empty()),
            "{path}: the daemon outlived the timed-out test: {:?}",
            processes_with("netns-test-marker-timeout")
        );
    }
}

#[netns_test]
#[ignore = "run by driver_the_child_has_the_parents_environment_and_directory"]
fn subject_prints_its_environment() {
    let value = std::env::var("NETNS_TEST_PROBE_VALUE").unwrap_or_default();
    println!("probe: {value} in {}", std::env::current_dir().unwrap().display());
}

#[test]
fn driver_the_child_has_the_parents_environment_and_directory() {
    // The fork server was started long before, elsewhere: the request carries both.
    for (path, mut command) in subjects("subject_prints_its_environment") {
        let outcome = run_subject(command.env("NETNS_TEST_PROBE_VALUE", "a value").current_dir("/tmp"));
        assert!(outcome.status.success(), "{path}: {}", outcome.all());
        assert!(outcome.stdout.contains("probe: a value in /tmp"), "{path}: {}", outcome.all());
    }
}

#[netns_test]
#[ignore = "run by driver_a_test_on_the_default_topology_is_handed_a_network_built_ahead"]
fn subject_on_the_default_topology(net: &Network) {
    // The runner's marker is in the environment of a child that was started for its test; a
    // spare learns its test when handed it, with threads running, and keeps the marker aside.
    let marker = std::env::var_os("__NETNS_TEST_CHILD").is_some();
    net.local().ping("1.1.1.1").count(2).run().expect("the pinger runs").assert_reachable();
    net.node("test1").ping("1.1.1.2").count(1).run().expect("the pinger runs").assert_reachable();
    println!("marker in the environment: {marker}; the pair answers both ways");
}

#[test]
fn driver_a_test_on_the_default_topology_is_handed_a_network_built_ahead() {
    let sudo = std::env::var("NETNS_TEST_MODE").is_ok_and(|mode| mode.trim().eq_ignore_ascii_case("sudo"));
    for (path, mut command) in subjects("subject_on_the_default_topology") {
        let outcome = run_subject(&mut command);
        assert!(outcome.status.success(), "{path}: {}", outcome.all());
        let ahead = path == "ahead" && !sudo;
        let expected = format!("marker in the environment: {}; the pair answers both ways", !ahead);
        assert!(outcome.stdout.contains(&expected), "{path}: {}", outcome.all());
    }
}

#[test]
#[ignore = "run by driver_a_test_whose_environment_changed_gets_a_child_of_its_own"]
fn subject_late_environment_a_changes_it() {
    // SAFETY: the subject's harness runs one test at a time (`--test-threads=1`).
    unsafe { std::env::set_var("NETNS_TEST_PROBE_LATE", "set by the test before") };
}

#[netns_test]
#[ignore = "run by driver_a_test_whose_environment_changed_gets_a_child_of_its_own"]
fn subject_late_environment_b_reads_it(net: &Network) {
    assert_eq!(net.local().interfaces()[0].name(), "veth0");
    println!("late: {}", std::env::var("NETNS_TEST_PROBE_LATE").unwrap_or_default());
}

/// A spare's settings and environment are the process's at its start: a test whose
/// environment has changed since (here by the test run before it) must not be handed one.
#[test]
fn driver_a_test_whose_environment_changed_gets_a_child_of_its_own() {
    for (path, command) in subjects("subject_late_environment_") {
        // Both subjects, one at a time in the order of their names: the filter is not exact.
        let args = command.get_args().filter(|arg| *arg != "--exact");
        let mut command_without_exact = Command::new(command.get_program());
        command_without_exact.args(args.collect::<Vec<_>>()).stdin(std::process::Stdio::null());
        for (variable, value) in command.get_envs() {
            match value {
                Some(value) => command_without_exact.env(variable, value),
                None => command_without_exact.env_remove(variable),
            };
        }
        let mut command = command_without_exact;
        let outcome = run_subject(&mut command);
        assert!(outcome.status.success(), "{path}: {}", outcome.all());
        assert!(outcome.stdout.contains("late: set by the test before"), "{path}: {}", outcome.all());
        assert!(outcome.stdout.contains("2 passed"), "{path}: {}", outcome.all());
    }
}

#[netns_test]
#[ignore = "runs until killed; run by driver_sigkill_leaves_nothing"]
fn subject_until_killed(net: &Network) {
    start_daemon(net, "netns-test-marker-sigkill");
    let local = netns_test_tests::netns_inode("/proc/thread-self/ns/net");
    let peer = net.node("test1").run(|| netns_test_tests::netns_inode("/proc/thread-self/ns/net"));
    println!("namespaces: {local} {peer}");
    hang();
}

#[test]
fn driver_sigkill_leaves_nothing() {
    for (path, mut command) in subjects("subject_until_killed") {
        sigkill_leaves_nothing(path, &mut command);
    }
}

fn sigkill_leaves_nothing(path: &str, command: &mut Command) {
    let running = Running::start(command);
    let line = running.wait_for("namespaces:", Duration::from_secs(30));
    let inodes: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(inodes.len(), 2, "{path}: {line}");
    // Waited for, not sampled once: a process's command line reads empty while it is in the
    // middle of its `exec` (the daemon's shell execs its inner shell in the background).
    assert!(
        eventually(Duration::from_secs(10), || !processes_with("netns-test-marker-sigkill").is_empty()),
        "{path}: the daemon runs while the test does ({line})"
    );
    // In sudo mode the child's namespaces are root's, which this unprivileged binary cannot
    // look into: only the processes (whose command lines anyone may read) are observed. Sudo
    // mode has no fork server.
    let sudo = std::env::var("NETNS_TEST_MODE").is_ok_and(|mode| mode.trim().eq_ignore_ascii_case("sudo"));
    let inodes = if sudo { Vec::new() } else { inodes };
    for inode in &inodes {
        assert!(!holders_of_netns(inode).is_empty(), "{path}: {inode} is alive while the test runs");
    }
    let servers = fork_servers_of(running.child.id());
    assert_eq!(servers.len(), usize::from(path != "direct" && !sudo), "{path}: fork servers {servers:?}");

    // SIGKILL the test binary itself: no destructor, no handler, nothing of ours runs.
    let mut running = running;
    running.child.kill().expect("kill the test binary");
    running.child.wait().expect("reap it");

    assert!(
        eventually(Duration::from_secs(10), || processes_with("netns-test-marker-sigkill").is_empty()),
        "{path}: processes outlived the killed test binary: {:?}",
        processes_with("netns-test-marker-sigkill")
    );
    for inode in &inodes {
        assert!(
            eventually(Duration::from_secs(10), || holders_of_netns(inode).is_empty()),
            "{path}: namespace {inode} is still held by {:?}",
            holders_of_netns(inode)
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || !servers.iter().any(|pid| is_fork_server(*pid))),
        "{path}: the fork server outlived the killed test binary: {servers:?}"
    );
}

#[netns_test]
#[ignore = "fails on purpose; run by driver_keep_on_failure"]
fn subject_fails_and_is_kept(net: &Network) {
    start_daemon(net, "netns-test-marker-kept");
    panic!("look inside");
}

#[test]
fn driver_keep_on_failure() {
    for (path, mut command) in subjects("subject_fails_and_is_kept") {
        keep_on_failure(path, command.env("NETNS_TEST_KEEP_ON_FAILURE", "6s"));
    }
}

fn keep_on_failure(path: &str, command: &mut Command) {
    let started = std::time::Instant::now();
    let running = Running::start(command);
    running.wait_for_line("is kept alive for inspection", Duration::from_secs(30));
    let hint = running.wait_for_line("  test1 ", Duration::from_secs(5));
    let command = hint.split_once("nsenter").map(|(_, rest)| rest.trim()).expect("an nsenter command");
    // In sudo mode the kept child is root's: the hint says `sudo nsenter`, and this
    // unprivileged binary (whose sudo rights cover the test binaries only) cannot follow it.
    let sudo = std::env::var("NETNS_TEST_MODE").is_ok_and(|mode| mode.trim().eq_ignore_ascii_case("sudo"));
    assert_eq!(hint.contains("sudo nsenter"), sudo, "{path}: {hint}");
    if !sudo {
        enter_the_kept_child(&hint, command);
    }
    running.wait_for_line("it ends by itself in 6s", Duration::from_secs(5));
    // Without a terminal nobody presses Enter: the kept child ends when the bound elapses,
    // and the test still fails.
    let mut running = running;
    let status = running.child.wait().expect("reap");
    assert!(!status.success(), "{path}");
    assert!(started.elapsed() >= Duration::from_secs(6), "{path}: ended after {:?}", started.elapsed());
}

/// Follows the keep-on-failure hint into node `test1` of the kept child.
fn enter_the_kept_child(hint: &str, command: &str) {
    let mut nsenter = Command::new("nsenter");
    nsenter.args(command.split_whitespace()).args(["cat", "/proc/self/net/dev"]);
    let output = nsenter.output().expect("nsenter runs");
    let dev = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{hint}: {}", String::from_utf8_lossy(&output.stderr));
    assert!(dev.contains("veth1") && !dev.contains("veth0"), "{dev}");
    // The same command enters the test's PID namespace and its /proc: ps lists the test's init,
    // the test, the daemon it started and ps itself, and nothing of the host's.
    let mut nsenter = Command::new("nsenter");
    nsenter.args(command.split_whitespace()).args(["ps", "-e", "-o", "pid=,comm=,args="]);
    let output = nsenter.output().expect("nsenter runs");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{hint}: {}", String::from_utf8_lossy(&output.stderr));
    // The direct path executes the test binary as /proc/self/exe, hence its name `exe`; a fork
    // of the fork server has the test binary's own (15 bytes of it, as `comm` keeps).
    let binary = std::env::current_exe().unwrap();
    let own: String = binary.file_name().unwrap().to_string_lossy().chars().take(15).collect();
    for line in listing.lines() {
        let comm = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            ["netns-test-init", "exe", own.as_str(), "sh", "sleep", "ps"].contains(&comm),
            "{line} in\n{listing}"
        );
    }
    assert!(listing.lines().any(|line| line.trim().starts_with("1 netns-test-init")), "{listing}");
    assert!(listing.contains("netns-test-marker-kept"), "{listing}");
}

#[netns_test]
#[should_panic(expected = "expected failure")]
fn should_panic_composes() {
    panic!("expected failure");
}

#[netns_test]
#[ignore = "run without privileges by driver_without_privileges_the_failure_says_how_to_fix_it"]
fn subject_needs_namespaces() {}

#[test]
fn driver_without_privileges_the_failure_says_how_to_fix_it() {
    // Root mode forced on an unprivileged user: unshare(CLONE_NEWNET) fails with EPERM, as it
    // does for a user without root and without user namespaces.
    for server in ["0", "1"] {
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", "subject_needs_namespaces", "--include-ignored", "--nocapture"]);
            command
        } else {
            subject("subject_needs_namespaces")
        };
        let outcome =
            run_subject(command.env("NETNS_TEST_MODE", "root").env("NETNS_TEST_FORK_SERVER", server));
        assert!(!outcome.status.success());
        let text = outcome.all();
        assert!(text.contains("cannot isolate the test: unshare(CLONE_NEWNET"), "server {server}: {text}");
        assert!(text.contains("Operation not permitted"), "server {server}: {text}");
        assert!(text.contains("runner = \"sudo -E\""), "server {server}: {text}");
        assert!(text.contains("kernel.apparmor_restrict_unprivileged_userns=0"), "server {server}: {text}");
    }
}

/// Runs `subject_needs_namespaces` as root of a new user namespace whose
/// `user.max_net_namespaces` is `limit`: a namespace limit of its own, which leaves the host's
/// settings alone.
fn run_under_net_namespace_limit(limit: u32, server: &str) -> netns_test_tests::Outcome {
    let script = format!(
        "echo {limit} > /proc/sys/user/max_net_namespaces && \
         exec \"$0\" --exact subject_needs_namespaces --include-ignored --nocapture"
    );
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--", "sh", "-c", &script])
        .arg(std::env::current_exe().unwrap())
        .env_remove("NETNS_TEST_MODE")
        .env_remove("NETNS_TEST_KEEP_ON_FAILURE")
        .env("NETNS_TEST_FORK_SERVER", server)
        .stdin(std::process::Stdio::null());
    run_subject(&mut command)
}

#[test]
fn driver_namespace_limit_names_the_limit() {
    for server in ["0", "1"] {
        let outcome = run_under_net_namespace_limit(0, server);
        assert!(!outcome.status.success());
        let text = outcome.all();
        assert!(text.contains("cannot isolate the test: unshare(CLONE_NEWNET"), "server {server}: {text}");
        assert!(text.contains("No space left on device"), "server {server}: {text}");
        assert!(
            text.contains("user.max_net_namespaces = 0 (/proc/sys/user/max_net_namespaces)"),
            "server {server}: {text}"
        );
        assert!(text.contains("sudo sysctl -w user.max_net_namespaces=65536"), "server {server}: {text}");
        // Not the permission advice: privileges do not lift a limit.
        assert!(!text.contains("runner = \"sudo -E\""), "server {server}: {text}");
    }
}

#[test]
fn driver_namespace_limit_while_building_the_network() {
    // One network namespace allowed: the test's own. The peer node's is refused.
    for server in ["0", "1"] {
        let outcome = run_under_net_namespace_limit(1, server);
        assert!(!outcome.status.success());
        let text = outcome.all();
        assert!(
            text.contains("creating the namespace of node `test1` (unshare(CLONE_NEWNET))"),
            "server {server}: {text}"
        );
        assert!(
            text.contains("user.max_net_namespaces = 1 (/proc/sys/user/max_net_namespaces)"),
            "server {server}: {text}"
        );
        assert!(!text.contains("runner = \"sudo -E\""), "server {server}: {text}");
    }
}
