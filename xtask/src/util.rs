//! Small helpers shared by the subcommands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An error message for the user.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of `xtask/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs a command in the workspace root, echoing it, and fails unless it succeeds.
pub(crate) fn run(command: &mut Command) -> Result {
    eprintln!("$ {}", render(command));
    let status =
        command.current_dir(root()).status().map_err(|e| format!("cannot run {}: {e}", render(command)))?;
    if status.success() { Ok(()) } else { Err(format!("`{}` failed: {status}", render(command))) }
}

/// Runs a command and returns its standard output.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let out =
        command.current_dir(root()).output().map_err(|e| format!("cannot run {}: {e}", render(command)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}\n{}",
            render(command),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line, for messages.
pub(crate) fn render(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median of some durations.
pub(crate) fn median(samples: &mut [Duration]) -> Duration {
    assert!(!samples.is_empty(), "median of no samples");
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 { samples[mid] } else { (samples[mid - 1] + samples[mid]) / 2 }
}

/// Milliseconds with two decimals.
pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// Builds the tests of `package` and returns the path of its test binary `target`.
pub(crate) fn test_binary(package: &str, target: &str) -> Result<PathBuf> {
    let json = output(Command::new(env!("CARGO")).args([
        "test",
        "--no-run",
        "--quiet",
        "--message-format=json",
        "--package",
        package,
        "--test",
        target,
    ]))?;
    json.lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"test\":true"))
        .filter(|line| line.contains(&format!("\"name\":\"{target}\"")))
        .find_map(|line| {
            let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = line[start..].find('"')?;
            Some(PathBuf::from(&line[start..start + end]))
        })
        .ok_or_else(|| format!("cargo did not report the test binary `{target}` of `{package}`"))
}

/// How many files are under `top`, and those not owned by `uid`.
pub(crate) fn not_owned_by(top: &Path, uid: u32) -> Result<(usize, Vec<String>)> {
    let (mut count, mut foreign, mut stack) = (0, Vec::new(), vec![top.to_path_buf()]);
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        count += 1;
        if std::os::unix::fs::MetadataExt::uid(&meta) != uid {
            foreign.push(path.display().to_string());
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            stack.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
    Ok((count, foreign))
}
