//! Programs started in a node: [`Node::command`](crate::Node::command)'s [`Command`], and the
//! [`Child`] it spawns. Both are `std::process`'s, with each program's start and exit (its
//! exit status) on the network's timeline, so that a failed test's report shows what ran
//! where and how it ended.
//!
//! A [`Command`] dereferences to its [`std::process::Command`], so every getter and
//! `std::os::unix::process::CommandExt` method is there; the builder methods below return
//! the [`Command`] itself, so that a chain such as `node.command("ip").args(["addr"]).output()`
//! is recorded. [`into_std`](Command::into_std) gives the plain command (for
//! `tokio::process::Command::from`, say), whose program is then not recorded.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use crate::timeline::EventKind;

use super::Node;

/// A program to run inside a node, made by [`Node::command`](crate::Node::command): a
/// [`std::process::Command`] whose runs are on the network's timeline
/// ([`EventKind::ProgramStarted`] and [`EventKind::ProgramExited`], with the exit status).
pub struct Command {
    inner: std::process::Command,
    node: Node,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("node", &self.node.name()).field("command", &self.inner).finish()
    }
}

impl Deref for Command {
    type Target = std::process::Command;
    fn deref(&self) -> &std::process::Command {
        &self.inner
    }
}

impl DerefMut for Command {
    fn deref_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }
}

impl Command {
    pub(super) fn new(inner: std::process::Command, node: Node) -> Command {
        Command { inner, node }
    }

    /// The program and its arguments as the timeline writes them: `ip addr show veth0`.
    fn line(&self) -> String {
        let mut line = self.inner.get_program().to_string_lossy().into_owned();
        for arg in self.inner.get_args() {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// Adds an argument ([`std::process::Command::arg`]).
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments ([`std::process::Command::args`]).
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable ([`std::process::Command::env`]).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, value);
        self
    }

    /// Sets environment variables ([`std::process::Command::envs`]).
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable ([`std::process::Command::env_remove`]).
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Clears the environment ([`std::process::Command::env_clear`]).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the working directory ([`std::process::Command::current_dir`]).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets standard input ([`std::process::Command::stdin`]).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self
    }

    /// Sets standard output ([`std::process::Command::stdout`]).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self
    }

    /// Sets standard error ([`std::process::Command::stderr`]).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self
    }

    /// Starts the program ([`std::process::Command::spawn`]); its start is on the timeline,
    /// and its exit once the returned [`Child`] sees it.
    ///
    /// # Errors
    /// As [`std::process::Command::spawn`] (nothing is recorded then).
    pub fn spawn(&mut self) -> io::Result<Child> {
        let child = self.inner.spawn()?;
        let line = self.line();
        self.node.record(
            EventKind::ProgramStarted,
            self.node.name().to_string(),
            format!("pid {}: {line}", child.id()),
        );
        Ok(Child { inner: child, node: self.node.clone(), line, exited: false })
    }

    /// Runs the program to its end, its standard streams inherited unless set
    /// ([`std::process::Command::status`]); its start and exit are on the timeline.
    ///
    /// # Errors
    /// As [`std::process::Command::status`] (nothing is recorded when it cannot start).
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// Runs the program to its end and collects its output
    /// ([`std::process::Command::output`]: standard output and error captured, standard
    /// input empty, unless set); its start and exit are on the timeline, the exit with the
    /// start of what it wrote (each stream on one line, at most 200 characters). A program
    /// that cannot be started shows as started, then exited with the error.
    ///
    /// # Errors
    /// As [`std::process::Command::output`].
    pub fn output(&mut self) -> io::Result<Output> {
        let (line, name) = (self.line(), self.node.name().to_string());
        self.node.record(EventKind::ProgramStarted, name.clone(), line.clone());
        let output = self.inner.output();
        let detail = match &output {
            Ok(output) => format!("{line}: {}{}", output.status, excerpts(output)),
            Err(error) => format!("{line}: not started: {error}"),
        };
        self.node.record(EventKind::ProgramExited, name, detail);
        output
    }

    /// The plain [`std::process::Command`], for APIs that take one; what it runs is not
    /// recorded.
    pub fn into_std(self) -> std::process::Command {
        self.inner
    }
}

/// A program started by [`Command::spawn`]: a [`std::process::Child`] (which it
/// dereferences to, for `stdin`, `stdout`, `stderr` and `id`) whose exit goes on the
/// network's timeline when [`wait`](Self::wait), [`try_wait`](Self::try_wait) or
/// [`wait_with_output`](Self::wait_with_output) sees it. One still running when the test
/// ends has no exit event.
pub struct Child {
    inner: std::process::Child,
    node: Node,
    line: String,
    exited: bool,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("node", &self.node.name()).field("child", &self.inner).finish()
    }
}

impl Deref for Child {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.inner
    }
}

impl DerefMut for Child {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.inner
    }
}

impl Child {
    fn exited(&mut self, status: ExitStatus) {
        if !self.exited {
            self.exited = true;
            let detail = format!("pid {}: {}: {status}", self.inner.id(), self.line);
            self.node.record(EventKind::ProgramExited, self.node.name().to_string(), detail);
        }
    }

    /// Waits for the program to exit ([`std::process::Child::wait`]) and records its exit.
    ///
    /// # Errors
    /// As [`std::process::Child::wait`].
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.inner.wait()?;
        self.exited(status);
        Ok(status)
    }

    /// Whether the program has exited ([`std::process::Child::try_wait`]); records its exit
    /// when it has.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = self.inner.try_wait()?;
        if let Some(status) = status {
            self.exited(status);
        }
        Ok(status)
    }

    /// Waits for the program to exit, collecting what it wrote to piped streams
    /// ([`std::process::Child::wait_with_output`]), and records its exit with the start of
    /// that output, as [`Command::output`] does.
    ///
    /// # Errors
    /// As [`std::process::Child::wait_with_output`].
    pub fn wait_with_output(self) -> io::Result<Output> {
        let Child { inner, node, line, exited } = self;
        let pid = inner.id();
        let output = inner.wait_with_output()?;
        if !exited {
            let detail = format!("pid {pid}: {line}: {}{}", output.status, excerpts(&output));
            node.record(EventKind::ProgramExited, node.name().to_string(), detail);
        }
        Ok(output)
    }

    /// The plain [`std::process::Child`]; its exit is then not recorded.
    pub fn into_inner(self) -> std::process::Child {
        self.inner
    }
}

/// The most of each captured stream an exit event quotes.
const EXCERPT: usize = 200;

/// `; stdout: …; stderr: …`: the start of what the program wrote to the streams it was given
/// as pipes (on one line, at most [`EXCERPT`] characters each), for the exit event.
fn excerpts(output: &Output) -> String {
    let mut text = String::new();
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let words = String::from_utf8_lossy(bytes);
        let words: Vec<&str> = words.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let joined = words.join(" ");
        let mut excerpt: String = joined.chars().take(EXCERPT).collect();
        if excerpt.len() < joined.len() {
            excerpt.push('…');
        }
        text.push_str(&format!("; {name}: {excerpt}"));
    }
    text
}
