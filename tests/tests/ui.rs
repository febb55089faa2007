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

/// `#[test]` above `#[netns_test]` expands only in a test build, which trybuild does not make
/// (it builds binaries, where `#[test]` removes the function): this case is a crate of its own,
/// built with `cargo test --no-run`. The function without a parameter builds; the two forms
/// that the built-in `#[test]` refuses before `#[netns_test]` expands get one precise error each.
#[test]
fn test_attribute_above_is_a_precise_compile_error_where_it_cannot_work() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("the tests crate is in the workspace");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-test-above");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"netns-test-ui-test-above\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[dependencies]\nnetns-test = {{ path = {:?} }}\n\n[workspace]\n",
        workspace.join("netns-test")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), TEST_ABOVE).unwrap();
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
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
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
