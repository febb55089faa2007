//! `cargo xtask sudo-cargo-test` (and a step of `cargo xtask ci`): issue 12's literal
//! acceptance, `NETNS_TEST_MODE=sudo cargo test`, run by the unprivileged user `netnstest`
//! with passwordless sudo for its test binaries only, from a copy of the repository that it
//! owns, building into a target directory of its own; then every file under that copy
//! (its `target/` with the kept captures included) must belong to `netnstest`.
//!
//! `netnstest` gets a toolchain without any change to `/root`'s permissions: the active
//! toolchain (the sysroot of the `cargo` running this) is hard-linked into the run's
//! directory (`cp -al`: the same read-only files, no copy of its 1.4 GB; a copy where the
//! link fails), and the crates the lock file names are a copy of root's cargo registry, so
//! that cargo runs offline (`CARGO_NET_OFFLINE=true`). Root needs nothing else of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Result, output, run as sh};

/// What `netnstest` runs, in its copy of the repository: the README's sudo-mode command, on
/// the test binaries that show sudo mode (`privileges`: a plain `#[test]` that sees a
/// non-root uid, a `#[netns_test]` child that is root, its kept capture handed back) and the
/// seed topology's namespace tests (`seed`).
pub(crate) const COMMAND: &str =
    "NETNS_TEST_MODE=sudo cargo test -p netns-test-tests --test privileges --test seed";

/// The user of the run (the one the archive run of `cargo xtask ci` uses too).
const USER: &str = crate::ci::SUDO_USER;

/// The sudoers file of this run, removed when it ends, however it ends.
const SUDOERS: &str = "/etc/sudoers.d/netns-test-ci-cargo";

pub(crate) fn run() -> Result {
    if !nix::unistd::geteuid().is_root() {
        return Err("sudo-cargo-test needs root: it creates the `netnstest` user and its sudoers file".into());
    }
    let dir = PathBuf::from(format!("/var/tmp/netns-test-cargo-{}", std::process::id()));
    let result = run_in(&dir);
    let _ = std::fs::remove_file(SUDOERS);
    if result.is_ok() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    } else {
        eprintln!("xtask: the sudo-mode cargo test run's directory is kept: {}", dir.display());
    }
    result
}

fn run_in(dir: &Path) -> Result {
    let _ = std::fs::remove_dir_all(dir);
    let (home, src, toolchain) = (dir.join("home"), dir.join("src"), dir.join("toolchain"));
    let cargo_home = home.join(".cargo");
    for path in [&cargo_home, &src] {
        std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    crate::ci::ensure_sudo_user()?;
    // The sources as a clean checkout has them, and the crates of the lock file.
    sh(Command::new("bash").arg("-c").arg(format!("git archive HEAD | tar -x -C {}", src.display())))?;
    let registry = root_cargo_home().join("registry");
    sh(Command::new("cp").arg("-a").arg(&registry).arg(&cargo_home))?;
    // Everything so far is the user's; the toolchain's links stay root's files.
    sh(Command::new("chown").args(["-R", &format!("{USER}:"), &dir.display().to_string()]))?;
    let sysroot = sysroot()?;
    if sh(Command::new("cp").arg("-al").arg(&sysroot).arg(&toolchain)).is_err() {
        let _ = std::fs::remove_dir_all(&toolchain);
        sh(Command::new("cp").arg("-a").arg(&sysroot).arg(&toolchain))?;
    }
    let deps = src.join("target/debug/deps");
    std::fs::write(SUDOERS, format!("{USER} ALL=(root) NOPASSWD:SETENV: {}/*\n", deps.display()))
        .map_err(|e| format!("writing {SUDOERS}: {e}"))?;
    sh(Command::new("chmod").args(["0440", SUDOERS]))?;

    eprintln!("xtask: as {USER}, in {}: {COMMAND}", src.display());
    let started = std::time::Instant::now();
    let mut command = Command::new("setpriv");
    command
        .args([&format!("--reuid={USER}"), &format!("--regid={USER}"), "--init-groups", "--"])
        .args(["bash", "-c", &format!("cd {} && {COMMAND}", src.display())])
        // Nothing of root's environment (rustup's and cargo's variables name root's homes).
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", toolchain.join("bin").display()),
        )
        .env("HOME", &home)
        .env("USER", USER)
        .env("CARGO_HOME", &cargo_home)
        .env("CARGO_NET_OFFLINE", "true")
        .env("NETNS_TEST_KEEP_CAPTURES", "1");
    for name in ["CARGO_BUILD_JOBS", "LANG", "TERM"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    sh(&mut command)?;
    eprintln!("xtask: the sudo-mode cargo test took {:.1}s", started.elapsed().as_secs_f64());

    let kept = src.join("target/netns-test/sudo_children_are_root_and_their_captures_are_the_users");
    if !kept.is_dir() {
        return Err(format!(
            "the sudo-mode cargo test kept no capture to check the owner of ({})",
            kept.display()
        ));
    }
    let uid: u32 =
        output(Command::new("id").args(["-u", USER]))?.trim().parse().map_err(|e| format!("{e}"))?;
    let (count, foreign) = crate::util::not_owned_by(&src, uid)?;
    if !foreign.is_empty() {
        return Err(format!(
            "{} of the {count} files the sudo-mode cargo test left do not belong to {USER}: {foreign:?}",
            foreign.len()
        ));
    }
    eprintln!("xtask: all {count} files of {USER}'s checkout and target directory belong to {USER}");
    Ok(())
}

/// Root's cargo home: `CARGO_HOME`, else `~/.cargo`.
fn root_cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
    })
}

/// The sysroot of the toolchain whose `cargo` runs this (`CARGO` is `<sysroot>/bin/cargo`).
fn sysroot() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| env!("CARGO").into());
    let cargo = cargo.canonicalize().map_err(|e| format!("{}: {e}", cargo.display()))?;
    cargo
        .parent()
        .and_then(Path::parent)
        .filter(|sysroot| sysroot.join("bin/rustc").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not in a toolchain's bin/ next to rustc", cargo.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_names_the_command_this_step_runs() {
        let readme = std::fs::read_to_string(crate::util::root().join("README.md")).unwrap();
        let ci = readme.split("\n## CI\n").nth(1).expect("README has a CI section");
        let squeezed: String = ci.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squeezed.contains(&format!("`{}`", super::COMMAND)),
            "README's CI section: {}",
            super::COMMAND
        );
        assert!(squeezed.contains("`cargo xtask sudo-cargo-test`"));
    }
}
