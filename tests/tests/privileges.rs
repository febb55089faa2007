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
