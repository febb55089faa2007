//! What this machine can do: privileges, user namespaces, and the kernel features that
//! netns-test uses, each with a verdict and a remedy.
//!
//! [`host_checks`] runs anywhere without privileges; [`namespace_checks`] runs inside a test or
//! [`sandbox`](crate::sandbox) child and tries each feature in a scratch namespace of its own.
//! `cargo xtask doctor` prints both.

use std::fmt;
use std::fs;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Works.
    Ok,
    /// Works partly, or something to know.
    Warning,
    /// Missing: the features that need it fail with a precise error.
    Missing,
}

/// One capability check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `veth`.
    pub name: &'static str,
    /// Whether it is there.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do when it is missing.
    pub remedy: Option<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.verdict {
            Verdict::Ok => "ok     ",
            Verdict::Warning => "warning",
            Verdict::Missing => "MISSING",
        };
        write!(f, "{mark}  {:<22} {}", self.name, self.detail)?;
        if let Some(remedy) = &self.remedy {
            for line in remedy.lines() {
                write!(f, "\n{:33}{line}", "")?;
            }
        }
        Ok(())
    }
}

fn read_sysctl(key: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .ok()
        .map(|v| v.trim().to_string())
}

/// Why unprivileged user namespaces are unavailable here, if a sysctl says so.
fn userns_blocker() -> Option<String> {
    if read_sysctl("kernel.unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "kernel.unprivileged_userns_clone is 0; enable it: sudo sysctl -w kernel.unprivileged_userns_clone=1"
                .into(),
        );
    }
    if read_sysctl("user.max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces is 0; raise it: sudo sysctl -w user.max_user_namespaces=65536".into());
    }
    if read_sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+); allow them: \
             sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
                .into(),
        );
    }
    None
}

/// The remedy printed when the child's namespaces cannot be created.
pub(crate) fn isolation_remedy(rootless: bool) -> String {
    let mut text = String::from(
        "netns-test runs every test in new namespaces, which needs root or unprivileged user namespaces.\n",
    );
    if rootless {
        if let Some(blocker) = userns_blocker() {
            text.push_str(&format!(
                "This machine blocks the rootless mode: {blocker}\n"
            ));
        }
    }
    text.push_str(
        "Either:\n\
         - run the tests as root, or through a sudo runner in .cargo/config.toml:\n      \
           [target.'cfg(target_os = \"linux\")']\n      \
           runner = \"sudo -E\"\n\
         - or allow unprivileged user namespaces (rootless mode):\n      \
           sudo sysctl -w kernel.unprivileged_userns_clone=1             (Debian, older kernels)\n      \
           sudo sysctl -w user.max_user_namespaces=65536                 (when it is 0)\n      \
           sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 23.10 and later)\n\
         - in a container: give it CAP_SYS_ADMIN (docker run --privileged, or --cap-add SYS_ADMIN \
           with a seccomp profile that allows unshare).\n\
         See the Troubleshooting section of the netns-test README; `cargo xtask doctor` checks all of this.",
    );
    text
}

/// Checks that need no privileges: who we are, the kernel, user namespace settings.
pub fn host_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let version: Vec<u32> = release
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    let recent = version.as_slice() >= [5, 3].as_slice();
    checks.push(Check {
        name: "kernel",
        verdict: if recent {
            Verdict::Ok
        } else {
            Verdict::Warning
        },
        detail: format!("Linux {release}"),
        remedy: (!recent)
            .then(|| "kernels before 5.3 lack pidfd; timeouts fall back to polling".into()),
    });
    let root = nix::unistd::geteuid().is_root();
    checks.push(Check {
        name: "privileges",
        verdict: Verdict::Ok,
        detail: if root {
            "root: tests run in root mode".into()
        } else {
            "not root: tests run in rootless mode".into()
        },
        remedy: None,
    });
    let blocker = userns_blocker();
    checks.push(Check {
        name: "user namespaces",
        verdict: match (&blocker, root) {
            (None, _) => Verdict::Ok,
            (Some(_), true) => Verdict::Warning,
            (Some(_), false) => Verdict::Missing,
        },
        detail: match &blocker {
            None => "unprivileged user namespaces are allowed (rootless mode works)".into(),
            Some(_) => "unprivileged user namespaces are blocked (rootless mode fails)".into(),
        },
        remedy: blocker,
    });
    checks
}
