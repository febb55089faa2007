//! `cargo xtask doctor`: what this machine can do, each check with a verdict and a remedy.
//!
//! The host checks and the verdict of each mode (root, rootless, sudo) run here; the kernel features are tried inside a `netns_test::sandbox`
//! child, exactly where tests would use them.

use netns_test::Topology;
use netns_test::probe::{Check, Verdict, host_checks, mode_checks, namespace_checks};

use crate::util::Result;

pub(crate) fn run() -> Result {
    let host = host_checks();
    print_checks(&host);
    // The verdict of each mode: root, rootless (probed for real), sudo.
    print_checks(&mode_checks());
    let sandboxed = netns_test::sandbox(Topology::pair(), |_| {
        let checks = namespace_checks();
        print_checks(&checks);
        if checks.iter().any(|check| check.verdict == Verdict::Missing) {
            Err("some features are missing".to_string())
        } else {
            Ok(())
        }
    });
    match sandboxed {
        Ok(()) => {
            println!("\nAll good: netns-test can run here.");
            Ok(())
        }
        Err(netns_test::Error::Child(message)) if message.contains("some features are missing") => {
            Err("some kernel features are missing; the tests that need them fail with the reason shown"
                .into())
        }
        Err(error) => {
            println!("MISSING  namespaces             {error}");
            Err("netns-test cannot create namespaces here; see the remedy above".into())
        }
    }
}

fn print_checks(checks: &[Check]) {
    for check in checks {
        println!("{check}");
    }
}
