//! Helpers shared by the integration tests: running one of the current test binary's own
//! tests as a separate process and looking at how it ended, and looking for what a test left
//! behind on the host.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a test binary run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status of the test binary.
    pub status: ExitStatus,
    /// Everything it printed on standard output.
    pub stdout: String,
    /// Everything it printed on standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// Standard output and standard error together, for assertions and messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A command that runs exactly one test of the current test binary (ignored tests included),
/// without a controlling terminal (so that keep-on-failure cannot wait on a person).
pub fn subject(name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary knows its path"));
    command
        .args(["--exact", name, "--include-ignored", "--nocapture", "--test-threads=1"])
        .env_remove("NETNS_TEST_KEEP_ON_FAILURE")
        .stdin(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command
}

/// [`subject`] once for each way the runner starts a test's child, named: `direct` (an `exec`
/// of the test binary per test, forced with `NETNS_TEST_FORK_SERVER=0`), `served` (a fork of
/// the fork server, forced with `NETNS_TEST_FORK_SERVER=1`, with `NETNS_TEST_BUILD_AHEAD=0`)
/// and `ahead` (the defaults: a spare child of the fork server, its namespaces made and the
/// default topology built before the test asked, for a test on the default topology; any other
/// is served as by `served`). Sudo mode always takes the direct path.
pub fn subjects(name: &str) -> [(&'static str, Command); 3] {
    ["direct", "served", "ahead"].map(|path| {
        let mut command = subject(name);
        match path {
            "direct" => command.env("NETNS_TEST_FORK_SERVER", "0"),
            "served" => command.env("NETNS_TEST_FORK_SERVER", "1").env("NETNS_TEST_BUILD_AHEAD", "0"),
            _ => command.env_remove("NETNS_TEST_FORK_SERVER").env_remove("NETNS_TEST_BUILD_AHEAD"),
        };
        (path, command)
    })
}

/// The fork servers that process `parent` started: its children that [`is_fork_server`].
pub fn fork_servers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc is readable").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent's PID is the second field after the command name in parentheses.
        let ppid =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) && is_fork_server(pid) {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` is alive and a fork server (it goes by the server's name).
pub fn is_fork_server(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim_end() == "netns-test-srv")
}

/// Runs one test of the current binary to completion.
pub fn run_subject(command: &mut Command) -> Outcome {
    let started = Instant::now();
    let output = command.output().expect("the test binary starts");
    Outcome {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A test binary running in the background, its standard output and error read line by line.
/// Dropping it kills the process, so that a failed assertion leaves nothing running.
pub struct Running {
    /// The process.
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` with standard output and error piped.
    pub fn start(command: &mut Command) -> Running {
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the test binary starts");
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for stream in [stdout, stderr] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running { child, lines }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no line containing {needle:?} within {limit:?}: {error}"),
            }
        }
    }

    /// The next line, if one comes within `limit`.
    pub fn next_line_within(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Waits for a line containing `marker` and returns what follows it. (libtest may print
    /// the test's name on the same line first.)
    pub fn wait_for(&self, marker: &str, limit: Duration) -> String {
        let line = self.wait_for_line(marker, limit);
        let (_, rest) = line.split_once(marker).expect("the line contains the marker");
        rest.trim().to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc is readable").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut cmdline = Vec::new();
        if std::fs::File::open(entry.path().join("cmdline"))
            .and_then(|mut f| f.read_to_end(&mut cmdline))
            .is_ok()
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

/// The processes that hold network namespace `inode` (`net:[inode]`), as their namespace or
/// through an open descriptor. Only the processes this user may inspect are seen.
pub fn holders_of_netns(inode: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc is readable").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let links = std::fs::read_link(entry.path().join("ns/net")).into_iter().chain(
            std::fs::read_dir(entry.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok()),
        );
        if links.into_iter().any(|link| link.to_string_lossy() == inode) {
            found.push(pid);
        }
    }
    found
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The inode name (`net:[4026532...]`) of a network namespace file.
pub fn netns_inode(path: impl AsRef<Path>) -> String {
    std::fs::read_link(path).expect("a namespace link").to_string_lossy().into_owned()
}

/// Whether a TCP connection from node `from` reaches a listener that node `to` opens on
/// `addr` (within two seconds).
pub fn tcp_reaches(from: &netns_test::Node, to: &netns_test::Node, addr: std::net::IpAddr) -> bool {
    let listener = to
        .run(|| std::net::TcpListener::bind((addr, 0)))
        .unwrap_or_else(|e| panic!("binding {addr} in node `{}`: {e}", to.name()));
    let target = std::net::SocketAddr::new(addr, listener.local_addr().expect("bound").port());
    from.run(|| std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).is_ok())
}

/// Keeps the tests that measure time from sharing the CPUs with tests that saturate them: on
/// two CPUs, a TCP transfer at full speed delays the link engine's wake-ups by a scheduler tick
/// unless it runs with real-time priority, which rootless mode cannot give it. A file lock
/// (the same one the library's own link tests take), held until dropped.
pub fn cpu_exclusive() -> nix::fcntl::Flock<std::fs::File> {
    let path = std::env::temp_dir().join("netns-test-link-cpu.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        // Created by another user (root and rootless runs share /tmp): reading is enough to lock.
        .or_else(|_| std::fs::File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, errno)| panic!("cannot lock {}: {errno}", path.display()))
}

/// The goodput in bits per second of one TCP transfer of `bytes` from the test's own node to
/// a listener that node `test1` opens on `addr`: the bytes over the time from the connect to
/// the last byte read.
pub fn tcp_goodput(net: &netns_test::Network, addr: &str, bytes: usize) -> f64 {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    let listener = net.node("test1").run(|| std::net::TcpListener::bind(addr)).expect("binding the listener");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let mut buffer = vec![0u8; 64 << 10];
        let mut received = 0;
        while received < bytes {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        (received, std::time::Instant::now())
    });
    let start = std::time::Instant::now();
    let mut client = std::net::TcpStream::connect(addr).expect("connecting");
    let chunk = vec![0u8; 64 << 10];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        client.write_all(&chunk[..n]).expect("sending");
        sent += n;
    }
    let (received, end) = server.join().expect("the server thread");
    assert_eq!(received, bytes, "the transfer arrived whole");
    bytes as f64 * 8.0 / (end - start).as_secs_f64()
}
