//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.
//!
//! 1. `cargo xtask layers` (imports run down the layer order of `ARCHITECTURE.md`),
//!    `cargo fmt --check`, `cargo clippy --all-targets -D warnings`.
//! 2. A snapshot of the root network namespace.
//! 3. The README's test command, `cargo test --workspace`, as the current user (root in CI).
//! 4. The namespace tests again under `cargo nextest run`.
//! 5. The same test binaries as an unprivileged user (`nobody`), i.e. in rootless mode.
//! 6. Sharding (issue 12): `cargo nextest list` of each of the recipes' partitions, which
//!    together list every test exactly once; the recipes' archive (`recipes::ARCHIVE`), run
//!    from another directory as the unprivileged user `netnstest` with passwordless sudo for
//!    the archive's binaries only, in sudo mode, one partition after the other
//!    (`recipes::PARTITION`); then every file it left belongs to `netnstest`. Then
//!    `NETNS_TEST_MODE=sudo cargo test` itself as `netnstest`, in a checkout and target
//!    directory of its own, with a toolchain linked from root's (`sudo_cargo.rs`); every file
//!    there belongs to `netnstest` afterwards.
//! 7. `cargo doc` with warnings denied; the README's `cargo install --path netns-test-cli`
//!    (into a directory of its own), whose `netns-test check` then validates a file.
//! 8. The root namespace snapshot again: it must be identical.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{Result, output, root, run as sh};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip the rootless run (for machines without an unprivileged user or user namespaces).
    #[arg(long)]
    no_rootless: bool,
    /// Skip the sudo-mode runs as `netnstest`, of the nextest archive and of `cargo test` (they
    /// need root, to create that user and its sudoers files).
    #[arg(long)]
    no_sudo: bool,
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
    partitions_cover_the_suite()?;
    flake_hunt()?;
    if args.no_sudo {
        eprintln!("xtask: sudo-mode archive run skipped (--no-sudo)");
    } else if nix::unistd::geteuid().is_root() {
        sudo_archive_run()?;
        crate::sudo_cargo::run()?;
    } else {
        eprintln!("xtask: not root: cannot create the `netnstest` user for the sudo-mode archive run");
    }
    let after = snapshot()?;

    sh(Command::new(cargo).args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    install_cli()?;

    if before != after {
        let diff = diff_lines(&before, &after);
        return Err(format!("the root network namespace changed during the tests:\n{diff}"));
    }
    eprintln!("xtask: the root network namespace is unchanged");
    eprintln!("xtask: ci passed");
    Ok(())
}

/// The README's installation line, `cargo install --path netns-test-cli`, into a directory of
/// its own (`--root`, so nothing of the machine's changes; `--target-dir target`, so the
/// release build stays with the others); the installed `netns-test` then checks a topology
/// file as the README's next line does. The lines after it are run by the CLI's test
/// `the_readme_install_check_and_graph_lines_work`.
fn install_cli() -> Result {
    let dir = std::env::temp_dir().join(format!("netns-test-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    sh(Command::new(env!("CARGO"))
        .args(["install", "--path", "netns-test-cli", "--locked", "--target-dir", "target", "--root"])
        .arg(&dir))?;
    let installed = dir.join("bin/netns-test");
    let checked = output(Command::new(&installed).args(["check", "tests/topologies/wan.toml"]))?;
    if !checked.contains("valid (3 nodes)") {
        return Err(format!("{} check tests/topologies/wan.toml said: {checked}", installed.display()));
    }
    eprintln!("xtask: cargo install --path netns-test-cli installs a netns-test that checks files");
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
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
        // Test harnesses only, not the examples and binaries `cargo test` also builds (a
        // binary's own target says `"test":true` too; harnesses alone live in `deps/`).
        .filter(|line| line.contains("\"test\":true"))
        .filter(|line| field(line, "\"executable\":\"").is_some_and(|path| path.contains("/deps/")))
        .filter_map(|line| {
            Some((field(line, "\"name\":\"")?, PathBuf::from(field(line, "\"executable\":\"")?)))
        })
        .collect())
}

/// The sharding steps alone (`cargo xtask sharding`).
pub(crate) fn sharding() -> Result {
    partitions_cover_the_suite()?;
    flake_hunt()?;
    sudo_archive_run()
}

/// The test ids (`binary-id test-name`) that `cargo nextest list` prints, with `extra` args.
fn nextest_list(extra: &[&str]) -> Result<Vec<String>> {
    let text = output(
        Command::new(env!("CARGO"))
            .args(["nextest", "list", "--workspace", "--message-format", "oneline"])
            .args(extra),
    )?;
    Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect())
}

/// The recipes' partitions together list every test of the suite exactly once.
fn partitions_cover_the_suite() -> Result {
    let mut all = nextest_list(&[])?;
    all.sort();
    let mut seen = Vec::new();
    for k in 1..=crate::recipes::PARTITIONS {
        let partition = format!("count:{k}/{}", crate::recipes::PARTITIONS);
        let listed = nextest_list(&["--partition", &partition])?;
        eprintln!("xtask: nextest partition {partition}: {} tests", listed.len());
        seen.extend(listed);
    }
    seen.sort();
    if seen != all {
        let twice: Vec<_> = seen.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0].clone()).collect();
        let missing: Vec<_> = all.iter().filter(|t| !seen.contains(t)).cloned().collect();
        return Err(format!(
            "the {} nextest partitions do not list every test once: twice {twice:?}, never {missing:?}",
            crate::recipes::PARTITIONS
        ));
    }
    eprintln!("xtask: {} partitions list all {} tests, each once", crate::recipes::PARTITIONS, all.len());
    Ok(())
}

/// The README's flake-hunting recipe on the deliberately flaky test: it fails within its fifty
/// runs and prints the seed, and that seed replays the failure.
fn flake_hunt() -> Result {
    let recipe = crate::recipes::FLAKE_HUNT;
    eprintln!("$ {recipe}");
    let out =
        Command::new("bash").args(["-c", recipe]).current_dir(root()).output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Err(format!(
            "the flake-hunting recipe passed fifty runs of a test that fails one in five:\n{text}"
        ));
    }
    let marker = "replay the same decisions with NETNS_TEST_SEED=";
    let seed = text
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| format!("the flake-hunting recipe's failure printed no seed:\n{text}"))?
        .to_string();
    let replay = format!("{recipe} --stress-count 1");
    let replay = replay.replacen("--stress-count 50 ", "", 1);
    let again = Command::new("bash")
        .args(["-c", &replay])
        .current_dir(root())
        .env("NETNS_TEST_SEED", &seed)
        .output()
        .map_err(|e| e.to_string())?;
    if again.status.success() {
        return Err(format!("NETNS_TEST_SEED={seed} did not replay the failure of the flake-hunting recipe"));
    }
    eprintln!("xtask: flake hunting stopped at the first failure, seed {seed}, which replays it");
    Ok(())
}

/// The user of the sudo-mode run: unprivileged, with passwordless sudo for the archive's test
/// binaries only.
pub(crate) const SUDO_USER: &str = "netnstest";

/// The sudoers file of the sudo-mode run, removed when the run ends, however it ends.
const SUDOERS: &str = "/etc/sudoers.d/netns-test-ci";

/// Creates the unprivileged user `netnstest` unless it exists (no home, no login shell).
pub(crate) fn ensure_sudo_user() -> Result {
    if Command::new("id")
        .arg(SUDO_USER)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| !s.success())
    {
        sh(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SUDO_USER,
        ]))?;
    }
    Ok(())
}

/// Builds the recipes' archive here as root, then runs it as `netnstest` from another
/// directory in sudo mode, partition by partition, and checks who owns what it left.
fn sudo_archive_run() -> Result {
    let result = sudo_archive_run_inner();
    let _ = std::fs::remove_file(SUDOERS);
    result
}

fn sudo_archive_run_inner() -> Result {
    let dir = PathBuf::from(format!("/var/tmp/netns-test-sudo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (src, extract, artifacts) = (dir.join("src"), dir.join("extract"), dir.join("artifacts"));
    for path in [&src, &extract] {
        std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    ensure_sudo_user()?;
    // Exactly the archive's binaries, with SETENV for sudo mode's --preserve-env.
    let sudoers = SUDOERS;
    let deps = extract.join("target/debug/deps");
    std::fs::write(sudoers, format!("{SUDO_USER} ALL=(root) NOPASSWD:SETENV: {}/*\n", deps.display()))
        .map_err(|e| format!("writing {sudoers}: {e}"))?;
    sh(Command::new("chmod").args(["0440", sudoers]))?;
    sh(Command::new("bash").arg("-c").arg(crate::recipes::ARCHIVE))?;
    let archive = dir.join("netns-tests.tar.zst");
    std::fs::rename(root().join("netns-tests.tar.zst"), &archive)
        .map_err(|e| format!("moving the archive: {e}"))?;
    // The sources the tests read at run time (--workspace-remap), as a clean checkout has them.
    sh(Command::new("bash").arg("-c").arg(format!("git archive HEAD | tar -x -C {}", src.display())))?;
    // `netnstest` has no toolchain: it runs cargo-nextest itself, which is what `cargo nextest`
    // runs; and it skips the `ui` binary, whose trybuild tests need cargo, and the lab CLI's
    // tests, whose `netns-test up` is a program of its own rather than a `#[netns_test]` child
    // (sudo mode elevates those children only; the CLI runs as root and rootless elsewhere).
    let nextest = output(Command::new("bash").arg("-c").arg("command -v cargo-nextest"))?;
    std::fs::copy(nextest.trim(), dir.join("cargo-nextest"))
        .map_err(|e| format!("copying cargo-nextest: {e}"))?;
    std::fs::rename(&archive, src.join("netns-tests.tar.zst"))
        .map_err(|e| format!("moving the archive: {e}"))?;
    sh(Command::new("chown").args(["-R", &format!("{SUDO_USER}:"), &dir.display().to_string()]))?;
    let started = std::time::Instant::now();
    for k in 1..=crate::recipes::PARTITIONS {
        let recipe = crate::recipes::partition(k);
        let command =
            recipe.replacen("cargo nextest", &format!("{}/cargo-nextest nextest", dir.display()), 1);
        let line = format!(
            "{command} --extract-to {} --extract-overwrite -E 'not binary(ui) and not package(netns-test-cli)'",
            extract.display()
        );
        eprintln!("xtask: sudo mode as {SUDO_USER}, partition {k}: {recipe}");
        sh(Command::new("setpriv")
            .args([&format!("--reuid={SUDO_USER}"), &format!("--regid={SUDO_USER}"), "--init-groups", "--"])
            .args(["bash", "-c", &format!("cd {} && {line}", src.display())])
            .env("HOME", &dir)
            .env("NETNS_TEST_MODE", "sudo")
            .env("NETNS_TEST_KEEP_CAPTURES", "1")
            .env("NETNS_TEST_ARTIFACTS", &artifacts))?;
    }
    eprintln!("xtask: the sudo-mode partitions took {:.1}s", started.elapsed().as_secs_f64());
    let uid = output(Command::new("id").args(["-u", SUDO_USER]))?
        .trim()
        .parse::<u32>()
        .map_err(|e| e.to_string())?;
    let (count, foreign) = crate::util::not_owned_by(&dir, uid)?;
    if !artifacts.join("sudo_children_are_root_and_their_captures_are_the_users").is_dir() {
        return Err("the sudo-mode run left no kept capture to check the owner of".into());
    }
    if !foreign.is_empty() {
        return Err(format!("files the sudo-mode run left that {SUDO_USER} does not own: {foreign:?}"));
    }
    eprintln!("xtask: all {count} files of the sudo-mode run belong to {SUDO_USER}");
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}
