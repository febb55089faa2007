//! Keep-on-failure (`NETNS_TEST_KEEP_ON_FAILURE`): a failed or timed-out child is kept alive
//! while a person looks inside, with an `nsenter` command per node, until Enter is pressed on
//! the terminal or the bound passes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::Mode;
use super::protocol::NodeFds;

/// Tells the person how to enter the kept child `pid` (its nodes, when its network was up),
/// then waits for Enter on the terminal, or `limit` without one.
pub(super) fn hold(
    label: &str,
    what: &str,
    pid: i32,
    mode: Mode,
    nodes: Option<&[NodeFds]>,
    limit: Duration,
) {
    let text = keep_message(label, what, pid, mode, nodes, limit);
    let mut terminal = Terminal::open();
    terminal.say(&text);
    terminal.wait_for_enter(limit);
}

fn keep_message(
    label: &str,
    what: &str,
    pid: i32,
    mode: Mode,
    nodes: Option<&[NodeFds]>,
    keep: Duration,
) -> String {
    let mut text = format!(
        "\nnetns-test: {label} {what}; its process {pid} is kept alive for inspection \
         (NETNS_TEST_KEEP_ON_FAILURE).\n"
    );
    let user = match mode {
        // In sudo mode the kept child is root's, and so is entering it.
        Mode::Root | Mode::Sudo => String::new(),
        Mode::Rootless => format!("--user=/proc/{pid}/ns/user --preserve-credentials "),
    };
    let sudo = if mode == Mode::Sudo { "sudo " } else { "" };
    // The PID namespace too, so that `ps` and /proc in the test's mount namespace (whose /proc
    // is the test's) show the test's processes. The reported PID is the test process itself,
    // inside that namespace; without a report it is the supervisor outside it, whose children
    // go there.
    match nodes {
        Some(nodes) => {
            text.push_str("Enter a node with:\n");
            let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
            for node in nodes {
                let net = node.net.map_or(format!("/proc/{pid}/ns/net"), |fd| format!("/proc/{pid}/fd/{fd}"));
                let uts = node.uts.map_or(format!("/proc/{pid}/ns/uts"), |fd| format!("/proc/{pid}/fd/{fd}"));
                text.push_str(&format!(
                    "  {:width$}  {sudo}nsenter {user}--pid=/proc/{pid}/ns/pid --mount=/proc/{pid}/ns/mnt \
                     --uts={uts} --net={net}\n",
                    node.name
                ));
            }
        }
        None => {
            text.push_str(&format!(
                "The network was not ready; its namespace: {sudo}nsenter {user}\
                 --pid=/proc/{pid}/ns/pid_for_children --mount=/proc/{pid}/ns/mnt \
                 --uts=/proc/{pid}/ns/uts --net=/proc/{pid}/ns/net\n"
            ));
        }
    }
    text.push_str(&format!(
        "Press Enter to end it (it ends by itself in {}).\n",
        humantime::format_duration(keep)
    ));
    text
}

/// The person's terminal, bypassing libtest's output capture.
struct Terminal {
    tty: Option<File>,
}

impl Terminal {
    fn open() -> Self {
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok();
        Terminal { tty }
    }

    fn say(&mut self, text: &str) {
        let written = self.tty.as_mut().is_some_and(|tty| tty.write_all(text.as_bytes()).is_ok());
        if !written {
            let _ = io::stderr().write_all(text.as_bytes());
        }
    }

    /// Waits until a line is entered on the terminal or `limit` passes.
    fn wait_for_enter(&mut self, limit: Duration) {
        let until = crate::time::deadline_after(limit);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(tty) = &mut self.tty else {
                std::thread::sleep(left);
                return;
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)) {
                Ok(0) => return,
                Ok(_) => {
                    let mut byte = [0u8; 256];
                    match tty.read(&mut byte) {
                        Ok(n) if n > 0 && byte[..n].contains(&b'\n') => return,
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
                Err(_) => return,
            }
        }
    }
}
