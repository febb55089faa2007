//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.
//!
//! 1. `cargo xtask layers` (imports run down the layer order of `ARCHITECTURE.md`),
//!    `cargo fmt --check`, `cargo clippy --all-targets -D warnings`.
//! 2. A snapshot of the root network namespace.
//! 3. The README's test command, `cargo test --workspace`, as the current user (root in CI).
//! 4. The namespace tests again under `cargo nextest run`.
//! 5. The same test binaries as an unprivileged user (`nobody`), i.e. in rootless mode.
//! 6. `cargo doc` with warnings denied.
//! 7. The root namespace snapshot again: it must be identical.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{Result, output, root, run as sh};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip the rootless run (for machines without an unprivileged user or user namespaces).
    #[arg(long)]
    no_rootless: bool,
}

/// Test binaries the rootless run skips: `ui` only checks compile errors (and needs a writable
/// target directory); the proc-macro crate's tests are pure and link the toolchain's
/// `libstd.so` dynamically, which `nobody` cannot read in root's rustup directory.
const COMPILE_ONLY: &[&str] = &["ui", "netns_test_macros"];

pub(crate) fn run(args: &Args) -> Result {
    let cargo = env!("CARGO");
    crate::layers::run()?;
    sh(Command::new(cargo).args(["fmt", "--all", "--", "--check"]))?;
    sh(Command::new(cargo).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;

    let before = snapshot()?;
    sh(Command::new(cargo).args(["test", "--workspace"]))?;
    sh(Command::new(cargo).args([
        "nextest",
        "run",
        "--package",
        "netns-test-tests",
        "--test",
        "seed",
        "--test",
        "runner",
    ]))?;
    if args.no_rootless {
        eprintln!("xtask: rootless run skipped (--no-rootless)");
    } else if nix::unistd::geteuid().is_root() {
        rootless_run()?;
    } else {
        eprintln!("xtask: already unprivileged: `cargo test` above ran in rootless mode");
    }
    let after = snapshot()?;

    sh(Command::new(cargo).args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;

    if before != after {
        let diff = diff_lines(&before, &after);
        return Err(format!("the root network namespace changed during the tests:\n{diff}"));
    }
    eprintln!("xtask: the root network namespace is unchanged");
    eprintln!("xtask: ci passed");
    Ok(())
}

/// The root namespace snapshot, from the shared tool when present, else the repository's copy,
/// and whether `/run/netns` exists: the snapshot lists the namespaces in it, which says nothing
/// of an empty directory, and nothing may create even that.
pub(crate) fn snapshot() -> Result<String> {
    let shared = root().join("../shared/tools/rootns-snapshot");
    let tool = if shared.is_file() { shared } else { root().join(".ci/rootns-snapshot") };
    let mut text = output(Command::new("bash").arg(tool))?;
    let run_netns = std::fs::symlink_metadata("/run/netns").is_ok();
    text.push_str(&format!(
        "# /run/netns
{}
",
        if run_netns { "exists" } else { "absent" }
    ));
    Ok(text)
}

/// The lines only in `before` (`- `) and only in `after` (`+ `).
pub(crate) fn diff_lines(before: &str, after: &str) -> String {
    let gone = before.lines().filter(|line| !after.lines().any(|l| l == *line)).map(|l| format!("- {l}"));
    let new = after.lines().filter(|line| !before.lines().any(|l| l == *line)).map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}

/// Runs every namespace test binary of the workspace as `nobody`, from copies in a temporary
/// directory (the checkout itself need not be readable by `nobody`).
fn rootless_run() -> Result {
    use std::os::unix::fs::PermissionsExt;
    let binaries = test_binaries()?;
    // One directory per run, so that two CI runs on one machine never share it.
    let dir = std::env::temp_dir().join(format!("netns-test-rootless-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    sh(Command::new("chown").arg("nobody").arg(&out))?;
    for (name, binary) in binaries {
        if COMPILE_ONLY.contains(&name.as_str()) {
            continue;
        }
        let copy = dir.join(&name);
        std::fs::copy(&binary, &copy).map_err(|e| format!("copying {}: {e}", binary.display()))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", copy.display()))?;
        eprintln!("xtask: rootless: {name}");
        sh(Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "--"])
            .arg(&copy)
            .args(["--test-threads=2"])
            .env("HOME", &out)
            .env("NETNS_TEST_ARTIFACTS", &out))?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}

/// `(target name, path)` of every test binary of the workspace, built if needed.
fn test_binaries() -> Result<Vec<(String, PathBuf)>> {
    let json = output(Command::new(env!("CARGO")).args([
        "test",
        "--workspace",
        "--no-run",
        "--quiet",
        "--message-format=json",
    ]))?;
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(key)? + key.len();
        let end = line[start..].find('"')?;
        Some(line[start..start + end].to_string())
    };
    Ok(json
        .lines()
        .filter(|line| {
            line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"executable\":\"")
        })
        // Test harnesses only, not the examples `cargo test` also builds.
        .filter(|line| line.contains("\"test\":true"))
        .filter_map(|line| {
            Some((field(line, "\"name\":\"")?, PathBuf::from(field(line, "\"executable\":\"")?)))
        })
        .collect())
}
