//! Which mode a test's child starts in: the one `NETNS_TEST_MODE` asks for; else root when the
//! test binary is root; else rootless when the probe shows that it really works here (a user
//! namespace is created *and* the capabilities inside it are usable, which catches AppArmor's
//! restriction); else an error that names what was tried, why each failed, and the remedies.
//! Sudo mode is never guessed: it is asked for.

use super::Mode;
use crate::error::Error;
use crate::ns::userns::Rootless;
use crate::settings::Settings;

/// The mode of the children of this process, as `settings` ask and the machine allows.
pub(crate) fn select(settings: &Settings) -> Result<Mode, Error> {
    if let Some(mode) = settings.forced_mode {
        return Ok(mode);
    }
    let root = nix::unistd::geteuid().is_root();
    // The probe forks; a root test binary needs none.
    decide(
        root,
        if root { Rootless::NotProbed(nix::errno::Errno::UnknownErrno) } else { crate::probe::rootless() },
    )
}

/// The decision, from what was found.
fn decide(root: bool, rootless: Rootless) -> Result<Mode, Error> {
    if root {
        return Ok(Mode::Root);
    }
    let (works, detail) = crate::probe::rootless_detail(rootless);
    if works {
        return Ok(Mode::Rootless);
    }
    let tried = format!(
        "- root: the test binary is not root (uid {})\n\
         - rootless: {detail}\n\
         - sudo: not tried (it is never guessed; set NETNS_TEST_MODE=sudo)",
        nix::unistd::geteuid()
    );
    Err(Error::NoMode { tried, remedies: crate::probe::mode_remedies() })
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::ns::userns::ProbeStep;

    #[test]
    fn root_first_then_a_working_rootless() {
        assert_eq!(decide(true, Rootless::Refused(Errno::EPERM)).unwrap(), Mode::Root);
        assert_eq!(decide(false, Rootless::Works).unwrap(), Mode::Rootless);
    }

    /// What the AppArmor restriction looks like (simulated by the probe's fault switch, see
    /// `ns::userns`): never taken for a working rootless mode.
    #[test]
    fn denied_capabilities_are_no_mode() {
        let probed = crate::ns::userns::probe(true);
        assert_eq!(probed, Rootless::FailedInside(ProbeStep::Setgroups, Errno::EACCES));
        let text = decide(false, probed).unwrap_err().to_string();
        assert!(text.contains("a user namespace was created, but writing /proc/self/setgroups"), "{text}");
        assert!(text.contains("capabilities inside it are denied"), "{text}");
        let apparmor = text.find("kernel.apparmor_restrict_unprivileged_userns=0").expect("AppArmor remedy");
        let max = text.find("user.max_user_namespaces=65536").expect("max_user_namespaces remedy");
        let container = text.find("--privileged").expect("container remedy");
        assert!(apparmor < max && max < container, "remedies out of order: {text}");
        assert!(text.contains("NETNS_TEST_MODE=sudo"), "{text}");
    }

    #[test]
    fn refused_user_namespaces_are_no_mode() {
        let text = decide(false, Rootless::Refused(Errno::ENOSPC)).unwrap_err().to_string();
        assert!(text.contains("user namespaces are refused: unshare(CLONE_NEWUSER) failed"), "{text}");
        assert!(text.contains("- sudo: not tried"), "{text}");
    }
}
