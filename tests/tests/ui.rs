//! Every compile error a user of `#[netns_test]` can hit, with its designed message.

use std::path::Path;
use std::process::Command;

#[test]
fn attribute_misuse_is_a_precise_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}

/// The source of a crate whose test build puts `#[test]` above `#[netns_test]` on every form.
const TEST_ABOVE: &str = r#"
use netns_test::{Network, netns_test};

#[test]
#[netns_test]
fn without_parameter() {}

#[test]
#[netns_test]
fn with_parameter(net: &Network) {
    let _ = net;
}

#[test]
#[netns_test]
async fn asynchronous() {}
"#;

/// Checks `source` as the `src/lib.rs` of a crate of its own, in a test build (`cargo check
/// --tests`), with netns-test as the dependency `dependency`: compile errors that only a test
/// build shows, which trybuild does not make (it builds binaries, where `#[test]` removes the
/// function). Returns the compiler's short messages; the crate must fail to build.
fn check_test_build(name: &str, dependency: &str, source: &str) -> String {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("the tests crate is in the workspace");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"netns-test-{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[dependencies]\n{dependency} = {{ package = \"netns-test\", path = {:?} }}\n\n\
         [workspace]\n",
        workspace.join("netns-test")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    // The workspace's versions, and trybuild's target directory and flags, so that the
    // dependencies trybuild checked are reused (with other flags they are checked again, only
    // slower).
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let flags = r#"["--cfg", "trybuild", "--verbose", "-A", "dead_code"]"#;
    let output = Command::new(env!("CARGO"))
        .args(["check", "--tests", "--offline", "--quiet", "--message-format=short"])
        .arg(format!("--config=build.rustflags={flags}"))
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target.join("tests").join("trybuild"))
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}

/// `#[test]` above `#[netns_test]` expands only in a test build. The function without a
/// parameter builds; the two forms that the built-in `#[test]` refuses before `#[netns_test]`
/// expands get one precise error each.
#[test]
fn test_attribute_above_is_a_precise_compile_error_where_it_cannot_work() {
    let stderr = check_test_build("ui-test-above", "netns-test", TEST_ABOVE);
    let ours: Vec<&str> =
        stderr.lines().filter(|line| line.contains("#[test] above #[netns_test] expands first")).collect();
    assert_eq!(ours.len(), 2, "{stderr}");
    assert!(ours[0].starts_with("src/lib.rs:9:1: error:"), "{stderr}");
    assert!(ours[0].contains("refuses a function with a parameter"), "{stderr}");
    assert!(ours[1].starts_with("src/lib.rs:15:1: error:"), "{stderr}");
    assert!(ours[1].contains("refuses an `async fn`"), "{stderr}");
    for line in ours {
        assert!(line.contains("write #[test] below #[netns_test], or leave it out"), "{stderr}");
    }
    assert!(!stderr.contains("src/lib.rs:5"), "the form without a parameter builds:\n{stderr}");
}

/// A body that returns what a test cannot: the error names the trait and what it takes.
const BAD_RETURN: &str = r#"
#[netns_test::netns_test]
fn returns_a_number() -> u32 {
    7
}
"#;

#[test]
fn a_body_returning_something_else_is_a_precise_compile_error() {
    let stderr = check_test_build("ui-bad-return", "netns-test", BAD_RETURN);
    let ours: Vec<&str> = stderr.lines().filter(|line| line.contains(": error")).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].starts_with("src/lib.rs:"), "{stderr}");
    assert!(
        ours[0].contains(
            "a #[netns_test] function or a sandbox body must return () or Result<(), E> with E: Debug"
        ),
        "{stderr}"
    );
}

/// A crate that knows netns-test under another name: `crate = ...` tells the attribute where
/// to find it, for every option (the timeout's constant too); without it, the expansion's
/// `::netns_test` does not resolve.
const RENAMED: &str = r#"
#[lab::test(crate = lab, timeout = "1.5s")]
fn through_the_renamed_dependency(net: &lab::Network) {
    let _ = net;
}

fn two_hosts() -> lab::TopologyBuilder {
    lab::Topology::builder().host("a").host("b").link(lab::Link::new("a", "b"))
}

#[lab::test(crate = lab, topology = two_hosts)]
async fn with_a_topology_function() {}

#[lab::test]
fn without_the_option() {}
"#;

#[test]
fn the_crate_option_finds_netns_test_under_another_name() {
    let stderr = check_test_build("ui-crate-option", "lab", RENAMED);
    let errors: Vec<&str> = stderr.lines().filter(|line| line.contains(": error")).collect();
    // Only the function without the option fails to find the crate.
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("src/lib.rs:14:1: error"), "{stderr}");
    assert!(errors[0].contains("`netns_test`"), "{stderr}");
}
