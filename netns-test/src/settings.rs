//! Every `NETNS_TEST_*` environment variable, read in one place, once per process.
//!
//! The runner reads the [`Settings`] in the parent before it starts a test's child, and the
//! child reads them at its start (it inherits the environment); each hands the values down as
//! data, so nothing below reads the environment. A bad value is [`Error::Setting`], naming the
//! variable, the value and what it takes: the parent fails the test with it before starting a
//! child. Nothing is silently ignored or silently taken as "on".
//!
//! The grammar, for every variable:
//! - a flag is `1`, `true`, `yes` or `on`, or `0`, `false`, `no` or `off`, in any case;
//! - a duration is [`crate::time::parse`]'s, the one of topology files and of the attribute's
//!   `timeout` (`30s`, `1.5s`, `1m 30s`);
//! - a word (`root`, `auto`, ...) is one of those listed, in any case;
//! - surrounding spaces are ignored; an unset variable means the default, and a variable set
//!   to nothing (or to something that is not UTF-8, except for a path) is an error like any
//!   other value outside the grammar.
//!
//! The runner's own variables, from a parent to the child it starts, are listed here too
//! ([`internal`]), so that the network can clear them from the programs it starts.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::time::{self, DurationError};

/// How a test's child gets its privileges (`NETNS_TEST_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// New namespaces owned by the initial user namespace: the parent is root.
    Root,
    /// A new user namespace in which the child is root: the parent need not be.
    Rootless,
    /// The parent stays unprivileged and starts only the test's child through `sudo -n`, which
    /// then runs as root (as in `Root`); what the child writes is handed back to the user.
    Sudo,
}

/// What applies link conditions (`NETNS_TEST_LINK_ENGINE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkEngine {
    /// netem where the kernel has it and no link needs the user-space engine.
    #[default]
    Auto,
    /// The user-space engine.
    Userspace,
    /// netem; an error where the kernel has none.
    Netem,
}

/// The values of the `NETNS_TEST_*` variables, each already checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `NETNS_TEST_TIMEOUT`: the timeout of a test that sets none.
    pub timeout: Option<Duration>,
    /// `NETNS_TEST_KEEP_ON_FAILURE`: how long a failed test's child is kept for inspection.
    pub keep_on_failure: Option<Duration>,
    /// `NETNS_TEST_MODE`: the mode asked for; see [`Settings::mode`].
    pub forced_mode: Option<Mode>,
    /// `NETNS_TEST_TRACE`: print how long each step took.
    pub trace: bool,
    /// `NETNS_TEST_SEED`: the seed of the link conditions, replacing the topology's.
    pub seed: Option<u64>,
    /// `NETNS_TEST_LINK_ENGINE`.
    pub link_engine: LinkEngine,
    /// `NETNS_TEST_CAPTURE`: capture every link with conditions.
    pub capture: bool,
    /// `NETNS_TEST_KEEP_CAPTURES`: keep the captures of tests that pass.
    pub keep_captures: bool,
    /// `NETNS_TEST_ARTIFACTS`: where captures go, instead of `target/netns-test/`.
    pub artifacts: Option<PathBuf>,
    /// `NETNS_TEST_REPORT=always`: write `report.html` and `report.json` for tests that pass
    /// too (`failure`, the default: for failed tests only).
    pub report_always: bool,
    /// `NETNS_TEST_FORK_SERVER`: whether tests' children come from the fork server (a `fork`
    /// per test instead of an `exec` of the test binary); `None` (unset or `auto`): yes.
    pub fork_server: Option<bool>,
    /// `NETNS_TEST_BUILD_AHEAD`: whether the fork server builds the default topology's network
    /// in a spare process before a test on it asks; `None` (unset): yes.
    pub build_ahead: Option<bool>,
}

/// How long a failed child is kept when `NETNS_TEST_KEEP_ON_FAILURE` is a "yes" without a
/// duration.
pub(crate) const DEFAULT_KEEP: Duration = Duration::from_secs(600);

/// What a flag takes, for messages.
const FLAG: &str = "1, true, yes or on, or 0, false, no or off";

/// A value outside a variable's grammar; [`Error::Setting`] once it leaves this module (kept
/// apart so that the settings read once can hand out their error again).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Invalid {
    variable: &'static str,
    value: String,
    expected: &'static str,
    problem: Option<String>,
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        let Invalid { variable, value, expected, problem } = invalid;
        Error::Setting { variable, value, expected, problem }
    }
}

/// One variable's value, as the lookup found it.
struct Raw {
    variable: &'static str,
    value: OsString,
}

impl Raw {
    fn invalid(&self, expected: &'static str, problem: Option<String>) -> Invalid {
        Invalid {
            variable: self.variable,
            value: self.value.to_string_lossy().into_owned(),
            expected,
            problem,
        }
    }

    /// The value as text, trimmed; an error when it is empty or not UTF-8.
    fn text(&self, expected: &'static str) -> Result<&str, Invalid> {
        let Some(text) = self.value.to_str() else {
            return Err(self.invalid(expected, Some("it is not UTF-8".into())));
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(self.invalid(expected, Some("it is empty (unset it for the default)".into())));
        }
        Ok(text)
    }

    /// The value as one of `words` (compared in any case).
    fn word<T: Copy>(&self, expected: &'static str, words: &[(&str, T)]) -> Result<T, Invalid> {
        let text = self.text(expected)?;
        words
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(text))
            .map(|(_, value)| *value)
            .ok_or_else(|| self.invalid(expected, None))
    }

    fn flag(&self) -> Result<bool, Invalid> {
        self.word(FLAG, &FLAGS)
    }
}

/// The flag grammar.
const FLAGS: [(&str, bool); 8] = [
    ("1", true),
    ("true", true),
    ("yes", true),
    ("on", true),
    ("0", false),
    ("false", false),
    ("no", false),
    ("off", false),
];

impl Settings {
    /// Reads every variable through `lookup` (the environment, or a table in tests).
    ///
    /// # Errors
    /// The first variable, in the order of the fields, whose value is outside its grammar.
    fn read(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Settings, Invalid> {
        let raw = |variable: &'static str| lookup(variable).map(|value| Raw { variable, value });
        let mut settings = Settings::default();
        if let Some(raw) = raw("NETNS_TEST_TIMEOUT") {
            const EXPECTED: &str = "a duration greater than zero, such as \"30s\", \"1.5s\" or \"1m 30s\"";
            let text = raw.text(EXPECTED)?;
            let timeout = time::parse_timeout(text).map_err(|error| duration_error(&raw, EXPECTED, error))?;
            settings.timeout = Some(timeout);
        }
        if let Some(raw) = raw("NETNS_TEST_KEEP_ON_FAILURE") {
            const EXPECTED: &str = "1, true, yes or on (keep for 10m), 0, false, no or off, or a duration \
                                    such as \"10m\"";
            let text = raw.text(EXPECTED)?;
            settings.keep_on_failure = match FLAGS.iter().find(|(word, _)| word.eq_ignore_ascii_case(text)) {
                Some((_, true)) => Some(DEFAULT_KEEP),
                Some((_, false)) => None,
                None => Some(time::parse(text).map_err(|error| duration_error(&raw, EXPECTED, error))?),
            };
        }
        if let Some(raw) = raw("NETNS_TEST_MODE") {
            settings.forced_mode = Some(raw.word(
                "root, rootless or sudo",
                &[("root", Mode::Root), ("rootless", Mode::Rootless), ("sudo", Mode::Sudo)],
            )?);
        }
        if let Some(raw) = raw("NETNS_TEST_TRACE") {
            settings.trace = raw.flag()?;
        }
        if let Some(raw) = raw("NETNS_TEST_SEED") {
            const EXPECTED: &str = "a whole number from 0 to 18446744073709551615, such as 1234";
            let text = raw.text(EXPECTED)?;
            // `u64::from_str` takes a leading `+`; a seed is written as a failure prints it.
            let seed = text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse().ok()).flatten();
            settings.seed = Some(seed.ok_or_else(|| raw.invalid(EXPECTED, None))?);
        }
        if let Some(raw) = raw("NETNS_TEST_LINK_ENGINE") {
            settings.link_engine = raw.word(
                "auto, userspace or netem",
                &[
                    ("auto", LinkEngine::Auto),
                    ("userspace", LinkEngine::Userspace),
                    ("netem", LinkEngine::Netem),
                ],
            )?;
        }
        if let Some(raw) = raw("NETNS_TEST_CAPTURE") {
            settings.capture = raw.flag()?;
        }
        if let Some(raw) = raw("NETNS_TEST_KEEP_CAPTURES") {
            settings.keep_captures = raw.flag()?;
        }
        if let Some(raw) = raw("NETNS_TEST_REPORT") {
            settings.report_always =
                raw.word("always or failure", &[("always", true), ("failure", false)])?;
        }
        if let Some(raw) = raw("NETNS_TEST_FORK_SERVER") {
            const EXPECTED: &str = "auto, or 1, true, yes or on, or 0, false, no or off";
            settings.fork_server = if raw.text(EXPECTED)?.eq_ignore_ascii_case("auto") {
                None
            } else {
                Some(raw.word(EXPECTED, &FLAGS)?)
            };
        }
        if let Some(raw) = raw("NETNS_TEST_BUILD_AHEAD") {
            settings.build_ahead = Some(raw.flag()?);
        }
        if let Some(raw) = raw("NETNS_TEST_ARTIFACTS") {
            // A path need not be UTF-8; it must not be empty.
            if raw.value.is_empty() {
                return Err(raw.invalid("a directory", Some("it is empty (unset it for the default)".into())));
            }
            settings.artifacts = Some(PathBuf::from(&raw.value));
        }
        Ok(settings)
    }

    /// The mode `NETNS_TEST_MODE` asks for, else root when the effective user is root, else
    /// rootless. The runner does not take this guess for an unprivileged user: it chooses
    /// rootless only when a probe shows that rootless mode really works here, and fails with
    /// what it tried otherwise.
    pub fn mode(&self) -> Mode {
        match self.forced_mode {
            Some(mode) => mode,
            None if nix::unistd::geteuid().is_root() => Mode::Root,
            None => Mode::Rootless,
        }
    }
}

fn duration_error(raw: &Raw, expected: &'static str, error: DurationError) -> Invalid {
    let text = raw.value.to_string_lossy();
    raw.invalid(expected, Some(error.message(text.trim())))
}

/// The settings of this process, read from the environment the first time they are asked for.
///
/// # Errors
/// [`Error::Setting`] for the first variable with a bad value, every time.
pub fn get() -> Result<&'static Settings> {
    static SETTINGS: OnceLock<Result<Settings, Invalid>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| Settings::read(|variable| std::env::var_os(variable)))
        .as_ref()
        .map_err(|invalid| invalid.clone().into())
}

/// The runner's own variables, from a parent to the child it starts. The leading double
/// underscore marks them internal: they are not settings, and the crate docs do not list them.
pub(crate) mod internal {
    use std::ffi::OsString;
    use std::os::fd::RawFd;

    /// The key (exact test name, or sandbox call site) the child runs.
    pub(crate) const CHILD: &str = "__NETNS_TEST_CHILD";
    /// `status,release,stdout` descriptor numbers.
    pub(crate) const FDS: &str = "__NETNS_TEST_FDS";
    /// In sudo mode, `uid:gid` of the user who started the tests, from the unprivileged parent
    /// to the process that `sudo` starts: what the child writes is handed back to them.
    pub(crate) const SUDO_OWNER: &str = "__NETNS_TEST_SUDO_OWNER";
    /// A fault to inject into the user namespace probe, for tests of the mode decision on
    /// machines that do not have the fault: `caps-denied` drops every capability right after
    /// the user namespace is created, as AppArmor's `apparmor_restrict_unprivileged_userns`
    /// does.
    pub(crate) const USERNS_FAULT: &str = "__NETNS_TEST_USERNS_FAULT";
    /// All of them, to clear from programs started in nodes.
    pub(crate) const ALL: [&str; 4] = [CHILD, FDS, SUDO_OWNER, USERNS_FAULT];

    /// The prefixes of the variables that `sudo` keeps for the child in sudo mode
    /// (`--preserve-env`): the settings, the runner's own, Rust's (`RUST_BACKTRACE`, ...),
    /// cargo's and nextest's (tests may read them at run time).
    const PRESERVED_PREFIXES: [&str; 5] = ["NETNS_TEST_", "__NETNS_TEST_", "RUST_", "CARGO_", "NEXTEST_"];

    /// The names of this process's variables that sudo mode keeps for the child, plus `PATH`.
    /// `HOME` is not among them: programs run as root must not write into the user's home.
    pub(crate) fn sudo_preserved() -> Vec<String> {
        let mut names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| PRESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
            .filter(|name| !name.contains(','))
            .collect();
        names.push("PATH".into());
        names.sort();
        names
    }

    /// `uid:gid` handed over in sudo mode, when this process was started for it.
    pub(crate) fn sudo_owner() -> Option<(u32, u32)> {
        let text = std::env::var(SUDO_OWNER).ok()?;
        let (uid, gid) = text.split_once(':')?;
        Some((uid.parse().ok()?, gid.parse().ok()?))
    }

    /// Whether the user namespace probe is to simulate AppArmor's denial of capabilities.
    pub(crate) fn userns_caps_denied() -> bool {
        std::env::var_os(USERNS_FAULT).is_some_and(|value| value == "caps-denied")
    }

    /// Whether `NETNS_TEST_FORK_SERVER` says no, or `NETNS_TEST_MODE` asks for sudo mode,
    /// which the server does not serve (read before `main`, where the settings are not read
    /// yet: any other value, a bad one included, leaves the decision to the settings the
    /// parent reads for each test).
    pub(crate) fn fork_server_refused() -> bool {
        let is = |variable: &str, words: &[&str]| {
            std::env::var_os(variable).is_some_and(|value| {
                let value = value.to_string_lossy();
                words.iter().any(|word| word.eq_ignore_ascii_case(value.trim()))
            })
        };
        is("NETNS_TEST_FORK_SERVER", &["0", "false", "no", "off"]) || is("NETNS_TEST_MODE", &["sudo"])
    }

    /// This process's whole environment: the fork server's children get the requesting
    /// parent's, as an `exec`ed child inherits it.
    pub(crate) fn environment() -> Vec<(OsString, OsString)> {
        std::env::vars_os().collect()
    }

    /// Replaces this process's environment with `variables`.
    ///
    /// # Safety
    /// No other thread may exist (`std::env::set_var`'s rule).
    pub(crate) unsafe fn replace_environment(variables: &[(OsString, OsString)]) {
        // SAFETY: forwarded to the caller.
        unsafe {
            for (variable, _) in std::env::vars_os() {
                std::env::remove_var(variable);
            }
            for (variable, value) in variables {
                std::env::set_var(variable, value);
            }
        }
    }

    /// A spare test process of the fork server learns its key and descriptors when a test
    /// claims it, with threads already running: it cannot set the marker's variables, so it
    /// records them here, where [`child_key`] and [`child_fds`] look first.
    static CLAIMED: std::sync::OnceLock<(OsString, [RawFd; 3])> = std::sync::OnceLock::new();

    /// Records the key and descriptors of the test that claimed this spare process.
    pub(crate) fn claimed_as_child(key: OsString, fds: [RawFd; 3]) {
        let _ = CLAIMED.set((key, fds));
    }

    /// The mode in which the fork server may build networks ahead, or `None` when the settings
    /// say no (`NETNS_TEST_BUILD_AHEAD=0`) or ask for what a network built ahead cannot give: a
    /// trace of the test's own bring-up, printed as it happens (`NETNS_TEST_TRACE`), sudo mode,
    /// or a value the test's process would refuse. The mode is the one a test would start in unless the rootless probe says
    /// otherwise (then a spare dies and the server stops building ahead). Read from the
    /// environment each time: the fork server must not cache settings that its fresh children
    /// would inherit.
    pub(crate) fn building_ahead_mode() -> Option<super::Mode> {
        let settings = super::Settings::read(|variable| std::env::var_os(variable)).ok()?;
        let mode = settings.mode();
        let wanted = settings.build_ahead.unwrap_or(true) && !settings.trace;
        (wanted && mode != super::Mode::Sudo).then_some(mode)
    }

    /// The key this process was started as the child for, if it was.
    pub(crate) fn child_key() -> Option<OsString> {
        if let Some((key, _)) = CLAIMED.get() {
            return Some(key.clone());
        }
        std::env::var_os(CHILD)
    }

    /// The descriptors the parent passed: status, release, stdout.
    pub(crate) fn child_fds() -> Option<[RawFd; 3]> {
        if let Some((_, fds)) = CLAIMED.get() {
            return Some(*fds);
        }
        let text = std::env::var(FDS).ok()?;
        let fds: Vec<RawFd> = text.split(',').filter_map(|fd| fd.parse().ok()).collect();
        fds.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, Invalid> {
        Settings::read(|variable| {
            pairs.iter().find(|(name, _)| *name == variable).map(|(_, value)| OsString::from(value))
        })
    }

    fn refused(variable: &str, value: &str) -> String {
        let invalid = read(&[(variable, value)]).expect_err(value);
        assert_eq!(invalid.variable, variable);
        assert_eq!(invalid.value, value);
        Error::from(invalid).to_string()
    }

    #[test]
    fn unset_is_the_default() {
        assert_eq!(read(&[]), Ok(Settings::default()));
        let defaults = Settings::default();
        assert_eq!(defaults.link_engine, LinkEngine::Auto);
        assert!(!defaults.trace && !defaults.capture && !defaults.keep_captures);
    }

    #[test]
    fn the_flag_grammar() {
        for variable in
            ["NETNS_TEST_TRACE", "NETNS_TEST_CAPTURE", "NETNS_TEST_KEEP_CAPTURES", "NETNS_TEST_BUILD_AHEAD"]
        {
            let flag = |value: &str| {
                let settings =
                    read(&[(variable, value)]).unwrap_or_else(|e| panic!("{variable}={value}: {e:?}"));
                match variable {
                    "NETNS_TEST_TRACE" => settings.trace,
                    "NETNS_TEST_CAPTURE" => settings.capture,
                    "NETNS_TEST_BUILD_AHEAD" => settings.build_ahead.expect("set"),
                    _ => settings.keep_captures,
                }
            };
            for on in ["1", "true", "yes", "on", "TRUE", "Yes", " on "] {
                assert!(flag(on), "{variable}={on}");
            }
            for off in ["0", "false", "no", "off", "OFF", "False"] {
                assert!(!flag(off), "{variable}={off}");
            }
            // Never silently on: `false` used to turn capture on (anything but `0` did).
            for bad in ["", " ", "2", "y", "enable", "truee", "1s"] {
                let message = refused(variable, bad);
                assert!(message.starts_with(&format!("invalid {variable}={bad:?}: ")), "{message}");
                assert!(message.contains("expected 1, true, yes or on, or 0, false, no or off"), "{message}");
            }
        }
    }

    #[test]
    fn the_fork_server_is_auto_or_a_flag() {
        let server = |value| read(&[("NETNS_TEST_FORK_SERVER", value)]).unwrap().fork_server;
        assert_eq!(read(&[]).unwrap().fork_server, None);
        assert_eq!(server("auto"), None);
        assert_eq!(server(" AUTO "), None);
        assert_eq!(server("1"), Some(true));
        assert_eq!(server("off"), Some(false));
        let message = refused("NETNS_TEST_FORK_SERVER", "sometimes");
        assert!(
            message.contains("expected auto, or 1, true, yes or on, or 0, false, no or off"),
            "{message}"
        );
        assert!(refused("NETNS_TEST_FORK_SERVER", "").contains("it is empty"));
    }

    #[test]
    fn timeouts_are_durations_greater_than_zero() {
        let timeout = |value| read(&[("NETNS_TEST_TIMEOUT", value)]).unwrap().timeout;
        assert_eq!(timeout("90s"), Some(Duration::from_secs(90)));
        assert_eq!(timeout("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout("1m 30s"), Some(Duration::from_secs(90)));
        // A deadline beyond the clock saturates; it is no error.
        assert_eq!(timeout("400000000000y"), Some(Duration::from_secs(400_000_000_000 * 31_557_600)));
        assert_eq!(
            refused("NETNS_TEST_TIMEOUT", "fast"),
            "invalid NETNS_TEST_TIMEOUT=\"fast\": `fast` is not a duration; write numbers with a unit, \
             e.g. \"30s\", \"1.5ms\" or \"1m 30s\"; expected a duration greater than zero, such as \
             \"30s\", \"1.5s\" or \"1m 30s\""
        );
        assert!(refused("NETNS_TEST_TIMEOUT", "0s").contains("`0s` is zero"));
        assert!(refused("NETNS_TEST_TIMEOUT", "18446744073709551615s 1000ms").contains("is too long"));
    }

    #[test]
    fn keep_on_failure_is_a_flag_or_a_duration() {
        let keep = |value| read(&[("NETNS_TEST_KEEP_ON_FAILURE", value)]).unwrap().keep_on_failure;
        assert_eq!(keep("1"), Some(DEFAULT_KEEP));
        assert_eq!(keep("Yes"), Some(DEFAULT_KEEP));
        assert_eq!(keep("off"), None);
        assert_eq!(keep("0"), None);
        assert_eq!(keep("10m"), Some(Duration::from_secs(600)));
        assert_eq!(keep("6s"), Some(Duration::from_secs(6)));
        // It used to fall back to ten minutes on anything it could not read.
        let message = refused("NETNS_TEST_KEEP_ON_FAILURE", "forever");
        assert!(message.contains("`forever` is not a duration"), "{message}");
        assert!(message.contains("or a duration such as \"10m\""), "{message}");
        refused("NETNS_TEST_KEEP_ON_FAILURE", "");
    }

    #[test]
    fn words_in_any_case() {
        let mode = |value| read(&[("NETNS_TEST_MODE", value)]).unwrap().forced_mode;
        assert_eq!(mode("root"), Some(Mode::Root));
        assert_eq!(mode("Rootless"), Some(Mode::Rootless));
        assert_eq!(mode("SUDO"), Some(Mode::Sudo));
        assert_eq!(
            refused("NETNS_TEST_MODE", "user"),
            "invalid NETNS_TEST_MODE=\"user\": expected root, rootless or sudo"
        );
        let engine = |value| read(&[("NETNS_TEST_LINK_ENGINE", value)]).unwrap().link_engine;
        assert_eq!(engine("auto"), LinkEngine::Auto);
        assert_eq!(engine("userspace"), LinkEngine::Userspace);
        assert_eq!(engine("NETEM"), LinkEngine::Netem);
        assert_eq!(
            refused("NETNS_TEST_LINK_ENGINE", "kernel"),
            "invalid NETNS_TEST_LINK_ENGINE=\"kernel\": expected auto, userspace or netem"
        );
    }

    #[test]
    fn seeds_are_whole_numbers() {
        let seed = |value| read(&[("NETNS_TEST_SEED", value)]).unwrap().seed;
        assert_eq!(seed("1234"), Some(1234));
        assert_eq!(seed(" 18446744073709551615 "), Some(u64::MAX));
        for bad in ["-1", "+1", "0x10", "1.5", "18446744073709551616", "seed"] {
            let message = refused("NETNS_TEST_SEED", bad);
            assert!(message.contains("expected a whole number from 0 to 18446744073709551615"), "{message}");
        }
    }

    #[test]
    fn artifacts_are_a_directory() {
        let artifacts = read(&[("NETNS_TEST_ARTIFACTS", "/tmp/out")]).unwrap().artifacts;
        assert_eq!(artifacts, Some(PathBuf::from("/tmp/out")));
        assert_eq!(
            refused("NETNS_TEST_ARTIFACTS", ""),
            "invalid NETNS_TEST_ARTIFACTS=\"\": it is empty (unset it for the default); expected a directory"
        );
    }

    #[test]
    fn values_that_are_not_utf8_are_errors_but_paths_may_be() {
        use std::os::unix::ffi::OsStringExt;
        let bytes = || OsString::from_vec(vec![b'o', 0xff]);
        let invalid = Settings::read(|variable| (variable == "NETNS_TEST_SEED").then(bytes)).unwrap_err();
        assert_eq!(invalid.problem.as_deref(), Some("it is not UTF-8"));
        let settings = Settings::read(|variable| (variable == "NETNS_TEST_ARTIFACTS").then(bytes)).unwrap();
        assert_eq!(settings.artifacts, Some(PathBuf::from(bytes())));
    }

    /// The one place: no other file of the library reads the environment.
    #[test]
    fn only_this_module_reads_the_environment() {
        fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/settings.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (number, line) in text.lines().enumerate() {
                        if ["env::var(", "env::var_os(", "env::vars("].iter().any(|call| line.contains(call))
                        {
                            found.push(format!("{}:{}: {}", path.display(), number + 1, line.trim()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
        assert!(found.is_empty(), "read the environment in settings.rs:\n{}", found.join("\n"));
    }
}
