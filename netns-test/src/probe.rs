//! What this machine can do: privileges, user namespaces, and the kernel features that
//! netns-test uses, each with a verdict and a remedy.
//!
//! [`host_checks`] runs anywhere without privileges; [`namespace_checks`] runs inside a test or
//! [`sandbox`](crate::sandbox) child and tries each feature in a scratch namespace of its own.
//! `cargo xtask doctor` prints both.

use std::fmt;
use std::fs;

use crate::ns::ScratchError;
use crate::ns::userns::Rootless;

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
    fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).ok().map(|v| v.trim().to_string())
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
        return Some(
            "user.max_user_namespaces is 0; raise it: sudo sysctl -w user.max_user_namespaces=65536".into(),
        );
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
            text.push_str(&format!("This machine blocks the rootless mode: {blocker}\n"));
        }
    }
    text.push_str(
        "Either:\n\
         - run the tests as root, or through a sudo runner in .cargo/config.toml:\n      \
           [target.'cfg(target_os = \"linux\")']\n      \
           runner = \"sudo -E\"\n\
         - or in sudo mode, where only the test's child runs as root: NETNS_TEST_MODE=sudo\n\
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
    let version: Vec<u32> = release.split(['.', '-']).take(2).filter_map(|p| p.parse().ok()).collect();
    let recent = version.as_slice() >= [5, 3].as_slice();
    checks.push(Check {
        name: "kernel",
        verdict: if recent { Verdict::Ok } else { Verdict::Warning },
        detail: format!("Linux {release}"),
        remedy: (!recent).then(|| "kernels before 5.3 lack pidfd; timeouts fall back to polling".into()),
    });
    let root = nix::unistd::geteuid().is_root();
    checks.push(Check {
        name: "privileges",
        verdict: Verdict::Ok,
        detail: if root {
            "root: tests run in root mode".into()
        } else {
            "not root: the mode checks say which mode the tests run in".into()
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

/// Checks that need a network namespace of their own: each feature is tried for real in a
/// scratch namespace made for the purpose (so a test's own network is never disturbed).
///
/// Call it inside a `#[netns_test]` body or a [`sandbox`](crate::sandbox) body; elsewhere the
/// scratch namespace cannot be made and every check reports why.
pub fn namespace_checks() -> Vec<Check> {
    match crate::ns::in_scratch("netns-test-probe", scratch_checks) {
        Ok(checks) => checks,
        Err(error) => {
            // ENOSPC is a namespace limit, which privileges do not lift.
            let remedy = match error {
                ScratchError::Unshare(nix::errno::Errno::ENOSPC) => {
                    Some(crate::ns::limit_remedy(libc::CLONE_NEWNET, false))
                }
                ScratchError::Panicked => None,
                _ => Some(isolation_remedy(!nix::unistd::geteuid().is_root())),
            };
            vec![Check { name: "namespaces", verdict: Verdict::Missing, detail: error.to_string(), remedy }]
        }
    }
}

async fn scratch_checks() -> Vec<Check> {
    use rtnetlink::{LinkBridge, LinkVeth};
    let mut checks = Vec::new();
    let handle = match rtnetlink::new_connection() {
        Ok((connection, handle, _)) => {
            tokio::spawn(connection);
            handle
        }
        Err(error) => {
            checks.push(Check {
                name: "netlink",
                verdict: Verdict::Missing,
                detail: format!("cannot open a netlink socket: {error}"),
                remedy: None,
            });
            return checks;
        }
    };
    let veth = handle.link().add(LinkVeth::new("probe0", "probe1").build()).execute().await;
    checks.push(feature_check(
        "veth",
        veth.map_err(|e| e.to_string()),
        "veth pairs can be created",
        "the kernel needs CONFIG_VETH (module veth)",
    ));
    let bridge = handle.link().add(LinkBridge::new("probebr").build()).execute().await;
    checks.push(feature_check(
        "bridge",
        bridge.map_err(|e| e.to_string()),
        "Linux bridges can be created (switch nodes)",
        "the kernel needs CONFIG_BRIDGE (module bridge); switch nodes fail without it",
    ));
    let netem = crate::impair::netem_available();
    checks.push(Check {
        name: "netem qdisc",
        verdict: if netem.is_ok() { Verdict::Ok } else { Verdict::Warning },
        detail: match &netem {
            Ok(()) => "sch_netem works: link conditions can run in the kernel".into(),
            Err(_) => "sch_netem is missing: link conditions run in the user-space engine instead".into(),
        },
        remedy: netem.err().map(|error| error.to_string()),
    });
    let raw =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::ICMPV4));
    checks.push(feature_check(
        "raw ICMP sockets",
        raw.map(drop).map_err(|e| e.to_string()),
        "raw ICMP sockets open (the pinger)",
        "needs CAP_NET_RAW in the test's namespaces",
    ));
    let packet = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None);
    checks.push(feature_check(
        "AF_PACKET sockets",
        packet.map(drop).map_err(|e| e.to_string()),
        "packet sockets open (the user-space link engine)",
        "the kernel needs CONFIG_PACKET; impaired links fail without it",
    ));
    let ipv6 = std::path::Path::new("/proc/sys/net/ipv6").is_dir();
    checks.push(feature_check(
        "IPv6",
        if ipv6 { Ok(()) } else { Err("/proc/sys/net/ipv6 is missing".to_string()) },
        "IPv6 is enabled",
        "boot without ipv6.disable=1; IPv6 topologies fail without it",
    ));
    checks.push(feature_check(
        "nftables",
        nftables_works(),
        "nftables takes an inet table with conntrack and reject rules (firewalls), without nft",
        "the kernel needs CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, CONFIG_NFT_CT and CONFIG_NFT_REJECT; \
         firewalls fail without them",
    ));
    checks
}

/// Whether this namespace's nftables takes what a firewall needs: an `inet` table, a base
/// chain, a rule matching `ct state` with a counter, and a TCP reset; removed again.
fn nftables_works() -> Result<(), String> {
    use crate::netlink::nftables::{
        BaseChain, Batch, ChainType, Family, Hook, Policy, Reject, Rule, apply, ct_state, proto,
    };
    let table = "netns_test_probe";
    let mut batch = Batch::new();
    let input =
        BaseChain { kind: ChainType::Filter, hook: Hook::Input, priority: 0, policy: Some(Policy::Accept) };
    let rule =
        Rule::new(Family::Inet, table, "input").ct_state(ct_state::NEW).dport(proto::TCP, 9..=9).counter();
    let made = batch
        .add_table(Family::Inet, table)
        .and_then(|()| batch.add_chain(Family::Inet, table, "input", Some(&input)))
        .and_then(|()| batch.add_rule(&rule.reject(Reject::TcpReset)))
        .and_then(|()| apply(&batch));
    let mut cleanup = Batch::new();
    let removed = cleanup.delete_table(Family::Inet, table).and_then(|()| apply(&cleanup));
    made.and(removed).map_err(|error| error.to_string())
}

fn feature_check(name: &'static str, result: Result<(), String>, ok: &str, remedy: &str) -> Check {
    match result {
        Ok(()) => Check { name, verdict: Verdict::Ok, detail: ok.to_string(), remedy: None },
        Err(error) => {
            Check { name, verdict: Verdict::Missing, detail: error, remedy: Some(remedy.to_string()) }
        }
    }
}

/// What the rootless probe found, as a verdict line: whether rootless mode works, and what
/// happened.
pub(crate) fn rootless_detail(found: Rootless) -> (bool, String) {
    match found {
        Rootless::Works => (
            true,
            "works: a user namespace was created, and inside it setgroups, the uid and gid maps, a \
             network namespace and a netlink request all succeeded"
                .into(),
        ),
        Rootless::Refused(errno) => {
            let cause = userns_blocker()
                .map(|blocker| format!(": {}", blocker.split(';').next().unwrap_or_default()))
                .unwrap_or_default();
            (
                false,
                format!(
                    "user namespaces are refused: unshare(CLONE_NEWUSER) failed ({}){cause}",
                    errno.desc()
                ),
            )
        }
        Rootless::FailedInside(step, errno) => (
            false,
            format!(
                "a user namespace was created, but {step} failed ({}): capabilities inside it are denied, \
                 as AppArmor's kernel.apparmor_restrict_unprivileged_userns{} does",
                errno.desc(),
                if read_sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
                    " (which is 1 here)"
                } else {
                    ""
                }
            ),
        ),
        Rootless::NotProbed(errno) => (false, format!("the probe could not run ({})", errno.desc())),
    }
}

/// The rootless probe of this process, run once (in a forked process, see `ns::userns`).
pub(crate) fn rootless() -> Rootless {
    static FOUND: std::sync::OnceLock<Rootless> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| crate::ns::userns::probe(crate::settings::internal::userns_caps_denied()))
}

/// The remedies when no mode works, in order.
pub(crate) fn mode_remedies() -> String {
    "Remedies, in order:\n\
     - AppArmor (Ubuntu 23.10 and later) denies capabilities in user namespaces: allow them with \
       `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or with an AppArmor profile \
       for the test binaries (`userns,`), or use sudo mode: NETNS_TEST_MODE=sudo (in \
       .cargo/config.toml [env], with a sudoers line for the test binaries; the error of sudo mode \
       names it);\n\
     - user namespaces refused: `sudo sysctl -w user.max_user_namespaces=65536` (when it is 0), or \
       `sudo sysctl -w kernel.unprivileged_userns_clone=1` (Debian, older kernels);\n\
     - in a container: `docker run --privileged`, or `--cap-add SYS_ADMIN --cap-add NET_ADMIN \
       --security-opt seccomp=unconfined --security-opt apparmor=unconfined`;\n\
     - or run the tests as root.\n\
     `cargo xtask doctor` shows the verdict of each mode here."
        .into()
}

/// The verdict of each mode on this machine: root, rootless (probed for real), sudo
/// (`sudo -n true`).
pub fn mode_checks() -> Vec<Check> {
    let root = nix::unistd::geteuid().is_root();
    let mut checks = vec![Check {
        name: "mode root",
        verdict: if root { Verdict::Ok } else { Verdict::Missing },
        detail: if root {
            "root: tests run in root mode (the default)".into()
        } else {
            format!("not root (uid {})", nix::unistd::geteuid())
        },
        remedy: None,
    }];
    let (works, detail) = rootless_detail(rootless());
    checks.push(Check {
        name: "mode rootless",
        verdict: if works { Verdict::Ok } else { Verdict::Missing },
        detail: if works && !root { format!("{detail} (the default here)") } else { detail },
        remedy: (!works).then(mode_remedies),
    });
    let sudo = std::process::Command::new("sudo")
        .args(["-n", "true"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let (verdict, detail) = match sudo {
        Ok(status) if status.success() => {
            (Verdict::Ok, "passwordless sudo works: NETNS_TEST_MODE=sudo can start children as root".into())
        }
        Ok(_) => (
            Verdict::Missing,
            "sudo -n wants a password here: NETNS_TEST_MODE=sudo fails with the sudoers line that \
             allows it (the test binaries' directory, NOPASSWD:SETENV)"
                .to_string(),
        ),
        Err(_) => (Verdict::Missing, "sudo is not installed".to_string()),
    };
    checks.push(Check { name: "mode sudo", verdict, detail, remedy: None });
    checks
}
