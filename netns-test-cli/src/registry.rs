//! Where running labs find each other: a per-user runtime directory with one entry per lab
//! (`<dir>/<name>/lab.json` and its control socket `<dir>/<name>/control.sock`), never a
//! global name. An entry whose `up` process is gone is stale: it is ignored and removed.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CliError;

/// `$XDG_RUNTIME_DIR/netns-test`, else `/tmp/netns-test-<uid>`, created with mode 0700.
pub(crate) fn runtime_dir() -> Result<PathBuf, CliError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(base) => PathBuf::from(base).join("netns-test"),
        None => PathBuf::from(format!("/tmp/netns-test-{}", nix::unistd::geteuid())),
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(CliError::io(format!("creating {}", dir.display()), error)),
    }
    // A directory of another user's (in /tmp, made before us) must not be trusted.
    let meta =
        fs::symlink_metadata(&dir).map_err(|e| CliError::io(format!("reading {}", dir.display()), e))?;
    if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != nix::unistd::geteuid().as_raw() {
        return Err(CliError::Usage(format!("{} is not a directory of this user's", dir.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| CliError::io(format!("restricting {}", dir.display()), e))?;
    }
    Ok(dir)
}

/// What `lab.json` says about a running lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The lab's name.
    pub(crate) name: String,
    /// The `netns-test up` process holding it.
    pub(crate) pid: i32,
    /// The topology file, or `None` for the seed pair.
    pub(crate) file: Option<String>,
}

/// The directory of the lab `name`.
pub(crate) fn entry_dir(name: &str) -> Result<PathBuf, CliError> {
    Ok(runtime_dir()?.join(name))
}

/// Whether process `pid` exists (a zombie counts as gone).
pub(crate) fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The entry of a running lab called `name`; a stale one is removed.
pub(crate) fn find(name: &str) -> Result<Option<Entry>, CliError> {
    let dir = entry_dir(name)?;
    let Ok(text) = fs::read_to_string(dir.join("lab.json")) else { return Ok(None) };
    match serde_json::from_str::<Entry>(&text) {
        Ok(entry) if alive(entry.pid) => Ok(Some(entry)),
        _ => {
            let _ = fs::remove_dir_all(&dir);
            Ok(None)
        }
    }
}

/// Every running lab, by name; stale entries are removed.
pub(crate) fn list() -> Result<Vec<Entry>, CliError> {
    let dir = runtime_dir()?;
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| CliError::io(format!("reading {}", dir.display()), e))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut labs = Vec::new();
    for name in names {
        if let Some(entry) = find(&name)? {
            labs.push(entry);
        } else {
            // A directory without a readable lab.json is an entry being made or a stale one:
            // a lab writes lab.json before anything else, so only a dead one lacks it for long.
            let _ = fs::remove_dir(dir.join(&name));
        }
    }
    Ok(labs)
}

/// A running lab, or [`CliError::UnknownLab`] naming the running ones.
pub(crate) fn require(name: &str) -> Result<Entry, CliError> {
    match find(name)? {
        Some(entry) => Ok(entry),
        None => {
            let known: Vec<String> = list()?.into_iter().map(|e| e.name).collect();
            Err(CliError::UnknownLab { name: name.to_string(), known: known.join(", ") })
        }
    }
}
