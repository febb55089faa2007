//! Privileges: sudo mode (`NETNS_TEST_MODE=sudo`), where only the `#[netns_test]` child is
//! root, and the errors of the modes that cannot run.
//!
//! `cargo xtask ci` runs this binary as an unprivileged user with passwordless sudo in sudo
//! mode (user `netnstest`), and checks afterwards that every file under its `target/` belongs
//! to that user; the drivers here run it as `nobody`, who has no sudo rights.

use std::process::Command;

use netns_test::{Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

fn in_sudo_mode() -> bool {
    std::env::var("NETNS_TEST_MODE").is_ok_and(|mode| mode.trim().eq_ignore_ascii_case("sudo"))
}

/// In sudo mode, a plain `#[test]` runs in the unprivileged test binary, never as root.
#[test]
fn plain_tests_never_run_as_root_in_sudo_mode() {
    if in_sudo_mode() {
        assert!(!nix::unistd::geteuid().is_root(), "a plain #[test] ran as root in sudo mode");
    } else {
        println!("not in sudo mode: nothing to observe (cargo xtask ci runs this binary in sudo mode)");
    }
}

fn captured_pair() -> TopologyBuilder {
    Topology::builder()
        .host("a")
        .host("b")
        .link(Link::new("a", "b").addrs("192.0.2.1/24", "192.0.2.2/24").capture())
}

/// In sudo mode the child is root; its capture (kept with `NETNS_TEST_KEEP_CAPTURES=1`) is
/// handed back to the user, which `cargo xtask ci` checks.
#[netns_test(topology = captured_pair)]
fn sudo_children_are_root_and_their_captures_are_the_users(net: &Network) {
    if in_sudo_mode() {
        assert!(nix::unistd::geteuid().is_root(), "the child of sudo mode is not root");
    }
    let stats = net.node("a").ping("192.0.2.2").count(3).interval(std::time::Duration::ZERO).run().unwrap();
    stats.assert_reachable();
}

#[netns_test]
fn subject_in_a_namespace(_net: &Network) {}

/// As a user sudo refuses (`nobody` has no sudo rights), the test fails with the reason and
/// the sudoers line that would allow it.
#[test]
fn driver_sudo_mode_without_passwordless_sudo_names_the_sudoers_line() {
    if !nix::unistd::geteuid().is_root() {
        println!("not root: cannot run the subject as a user without sudo rights; nothing to observe");
        return;
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "subject_in_a_namespace", "--include-ignored", "--nocapture"])
        .env("NETNS_TEST_MODE", "sudo")
        .stdin(std::process::Stdio::null());
    let outcome = run_subject(&mut command);
    assert!(!outcome.status.success(), "{}", outcome.all());
    let text = outcome.all();
    assert!(
        text.contains(
            "NETNS_TEST_MODE=sudo: `sudo -n` did not start the test's child as root without a password"
        ),
        "{text}"
    );
    let deps = std::env::current_exe().unwrap().parent().unwrap().display().to_string();
    assert!(text.contains(&format!("nobody ALL=(root) NOPASSWD:SETENV: {deps}/*")), "{text}");
    if std::path::Path::new("/usr/bin/sudo").exists() {
        assert!(text.contains("a password is required"), "{text}");
    }
    // Not a pass in disguise: the body never ran.
    assert!(!text.contains("test subject_in_a_namespace ... ok"), "{text}");
}

/// The subject runs as root in sudo mode too: sudo mode as root is root mode through sudo.
#[test]
fn driver_sudo_mode_as_root_runs_the_child() {
    if !std::path::Path::new("/usr/bin/sudo").exists() || !nix::unistd::geteuid().is_root() {
        println!("no sudo here, or not root: nothing to observe");
        return;
    }
    let outcome = run_subject(
        subject("sudo_children_are_root_and_their_captures_are_the_users").env("NETNS_TEST_MODE", "sudo"),
    );
    assert!(outcome.status.success(), "{}", outcome.all());
}

/// Runs `subject_in_a_namespace` as `nobody` inside a user namespace of its own whose
/// `user.max_user_namespaces` is 0: user namespaces are refused there, and the host's settings
/// are left alone. Root maps root and `nobody` into it from outside (a map of two users needs
/// a writer privileged in the parent namespace).
fn run_with_user_namespaces_refused() -> netns_test_tests::Outcome {
    use std::io::Write;
    let script = "read go; exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv \
                  --reuid=65534 --regid=65534 --clear-groups -- \"$0\" --exact subject_in_a_namespace \
                  --include-ignored --nocapture' \"$0\"";
    let mut holder = Command::new("unshare")
        .args(["--user", "--", "sh", "-c", script])
        .arg(std::env::current_exe().unwrap())
        .env_remove("NETNS_TEST_MODE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare starts");
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let pid = holder.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Readiness: the holder is in its new user namespace once its ns link differs from ours.
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns == ours) {
        assert!(std::time::Instant::now() < deadline, "unshare --user did not enter a new namespace");
        std::thread::yield_now();
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 1\n65534 65534 1\n").expect(map);
    }
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let output = holder.wait_with_output().unwrap();
    netns_test_tests::Outcome {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: std::time::Duration::ZERO,
    }
}

/// As an unprivileged user where user namespaces are refused, a namespace test fails with what
/// was tried and the remedies, in order; it neither passes nor is skipped.
#[test]
fn driver_user_namespaces_refused_names_the_cause_and_the_remedies() {
    if !nix::unistd::geteuid().is_root() {
        println!("not root: cannot make a user namespace with two users; nothing to observe");
        return;
    }
    let outcome = run_with_user_namespaces_refused();
    assert!(!outcome.status.success(), "{}", outcome.all());
    let text = outcome.all();
    assert!(text.contains("netns-test cannot start the test's child here; it tried:"), "{text}");
    assert!(text.contains("- root: the test binary is not root (uid 65534)"), "{text}");
    assert!(
        text.contains("- rootless: user namespaces are refused: unshare(CLONE_NEWUSER) failed (No space left on device): user.max_user_namespaces is 0"),
        "{text}"
    );
    assert!(text.contains("- sudo: not tried"), "{text}");
    let apparmor = text.find("kernel.apparmor_restrict_unprivileged_userns=0").expect("AppArmor remedy");
    let max = text.find("user.max_user_namespaces=65536").expect("limit remedy");
    let container = text.find("docker run --privileged").expect("container remedy");
    assert!(apparmor < max && max < container, "{text}");
    assert!(!text.contains("test subject_in_a_namespace ... ok"), "{text}");
}

/// The AppArmor case, where a user namespace is created but the capabilities inside it are
/// denied, simulated: `__NETNS_TEST_USERNS_FAULT=caps-denied` makes the runner's probe drop
/// every capability right after creating the user namespace (this machine has no AppArmor
/// restriction), and the runner's real decision refuses rootless mode with the cause.
#[test]
fn driver_denied_capabilities_in_a_user_namespace_are_recognised() {
    let mut command = if nix::unistd::geteuid().is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "subject_in_a_namespace", "--include-ignored", "--nocapture"])
            .stdin(std::process::Stdio::null());
        command
    } else {
        subject("subject_in_a_namespace")
    };
    command.env_remove("NETNS_TEST_MODE").env("__NETNS_TEST_USERNS_FAULT", "caps-denied");
    let outcome = run_subject(&mut command);
    assert!(!outcome.status.success(), "{}", outcome.all());
    let text = outcome.all();
    assert!(
        text.contains("- rootless: a user namespace was created, but writing /proc/self/setgroups in the new user namespace failed (Permission denied): capabilities inside it are denied"),
        "{text}"
    );
    assert!(text.contains("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"), "{text}");
    assert!(text.contains("NETNS_TEST_MODE=sudo"), "{text}");
}
