//! The `netns-test` command driven as a user drives it: `check`, `graph`, and a lab brought up
//! with `up` in a child process, then `ls`, `exec`, `ping`, `set`, `dump`, `capture` and
//! `down`; `up` killed with SIGTERM or SIGKILL leaves nothing behind. Each test has a runtime
//! directory of its own (`XDG_RUNTIME_DIR`), so parallel tests never see each other's labs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netns-test");
/// How long a lab may take to come up on a loaded machine; only a bound, never waited out.
const UP_LIMIT: Duration = Duration::from_secs(120);

/// A scratch directory of this test's: its runtime directory and files.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netns-test-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        Scratch(dir)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.env("XDG_RUNTIME_DIR", self.0.join("run")).stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("netns-test starts")
    }

    /// Runs `args`, which must succeed, and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&output.stderr));
        text
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const LAB: &str = r#"
hostnames = true

[nodes]
client = "host"
server = "host"

[[links]]
a = "client"
b = "server"
addrs = { client = "10.9.0.1/24", server = "10.9.0.2/24" }
conditions = { delay = "1ms" }
"#;

/// `netns-test up` as a child process, with its output read line by line.
struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Up {
    fn start(scratch: &Scratch, args: &[&str]) -> Up {
        let mut child = scratch
            .command()
            .arg("up")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("netns-test up starts");
        let (send, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = send.send(line);
                }
            });
        }
        let mut up = Up { child, lines, seen: String::new() };
        up.wait_for(" is up;");
        up
    }

    /// Waits for a line containing `needle` (bounded by [`UP_LIMIT`]).
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + UP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(_) => panic!("no line with {needle:?} from netns-test up; it printed:\n{}", self.seen),
            }
        }
    }

    /// The `up` process and everything started under it, from /proc.
    fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.child.id()];
        let mut next = 0;
        while next < all.len() {
            let pid = all[next];
            next += 1;
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                for task in tasks.flatten() {
                    let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                    all.extend(children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
                }
            }
        }
        all
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Polls `condition` until it holds or `limit` passes.
fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_run_netns() {
    assert!(!Path::new("/run/netns").exists(), "/run/netns must never be created");
}

#[test]
fn check_says_valid_or_where_the_error_is() {
    let scratch = Scratch::new("check");
    let good = scratch.file("good.toml", LAB);
    let output = scratch.run(&["check", good.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid (2 nodes)"), "{output:?}");

    let bad = scratch.file("bad.toml", "[nodes]\nclient = \"host\"\nserver = \"hots\"\n");
    let output = scratch.run(&["check", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with(&format!("{}:3:10:", bad.display())), "{stderr}");

    let output = scratch.run(&["check", "/nonexistent/topology.toml"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn graph_draws_every_node_and_link() {
    let scratch = Scratch::new("graph");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/topologies/wan.toml");
    let svg = scratch.0.join("topo.svg");
    scratch.ok(&["graph", file.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let document = roxmltree::Document::parse(&text).expect("the picture is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let words: Vec<&str> = document.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
    for node in ["client (host)", "router (router)", "server (host)"] {
        assert!(words.contains(&node), "{node} missing: {words:?}");
    }
    let links: Vec<&&str> = words.iter().filter(|w| w.contains(" — ")).collect();
    assert_eq!(links.len(), 2, "one label per link: {words:?}");
    assert!(
        links.iter().any(|l| l.contains("router:eth1 10.2.0.1/24") && l.contains("delay 15ms")),
        "{links:?}"
    );
}

/// A one-request HTTP server inside a node: `exec` runs this test binary there.
#[test]
#[ignore = "run inside a lab by a_lab_comes_up_runs_commands_and_goes_down"]
fn http_subject() {
    let listener = TcpListener::bind("0.0.0.0:8000").unwrap();
    println!("listening");
    let (mut stream, _) = listener.accept().unwrap();
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request).unwrap();
    stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 17\r\n\r\nhello from server").unwrap();
}

#[test]
fn a_lab_comes_up_runs_commands_and_goes_down() {
    let scratch = Scratch::new("lab");
    let file = scratch.file("web.toml", LAB);
    let mut up = Up::start(&scratch, &[file.to_str().unwrap(), "--name", "web"]);
    assert!(
        up.seen.contains("10.9.0.1/24") && up.seen.contains("netns-test shell web client"),
        "{}",
        up.seen
    );
    assert!(scratch.ok(&["ls"]).starts_with("web\t"), "ls lists the lab");

    // A node's addresses, hostname and PID view.
    let addrs = scratch.ok(&["exec", "web", "server", "--", "ip", "-br", "addr"]);
    assert!(addrs.contains("10.9.0.2/24") && !addrs.contains("10.9.0.1/24"), "{addrs}");
    assert_eq!(scratch.ok(&["exec", "web", "client", "--", "hostname"]).trim(), "client");
    let pid: u32 =
        scratch.ok(&["exec", "web", "client", "--", "sh", "-c", "echo $$"]).trim().parse().unwrap();
    assert!(pid < 100, "a process of the lab's PID namespace, not the host's: {pid}");
    let code = scratch.run(&["exec", "web", "client", "--", "sh", "-c", "exit 7"]).status.code();
    assert_eq!(code, Some(7), "exec exits with the program's code");
    let unknown = scratch.run(&["exec", "web", "nosuch", "--", "true"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("nosuch"));
    let unknown = scratch.run(&["dump", "nolab"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no lab named `nolab`"), "{unknown:?}");

    // curl between nodes, by name.
    let test_binary = std::env::current_exe().unwrap();
    let mut server = scratch
        .command()
        .args(["exec", "web", "server", "--"])
        .arg(&test_binary)
        .args(["--exact", "http_subject", "--include-ignored", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(ready.read_line(&mut line).unwrap() > 0, "the server ended before listening");
    }
    let page = scratch.ok(&["exec", "web", "client", "--", "curl", "-sS", "http://server:8000/"]);
    assert_eq!(page, "hello from server");
    assert!(server.wait().unwrap().success());

    // ping, set and dump.
    let ping = scratch.ok(&["ping", "web", "client", "server"]);
    assert!(ping.contains("3 packets transmitted, 3 received"), "{ping}");
    scratch.ok(&["set", "web", "client-server", "--delay", "40ms"]);
    let slow = scratch.ok(&["ping", "web", "client", "server", "--count", "2"]);
    let min: f64 = slow
        .split("rtt min/avg/max/mdev = ")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|min| min.parse().ok())
        .unwrap_or_else(|| panic!("{slow}"));
    assert!(min >= 39.0, "40 ms each way is a floor for the round trip: {slow}");
    let bad = scratch.run(&["set", "web", "client-nosuch", "--delay", "1ms"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown link `client-nosuch`"), "{bad:?}");
    let dump = scratch.ok(&["dump", "web"]);
    assert!(dump.contains("node client") && dump.contains("10.9.0.2/24"), "{dump}");

    // capture: tshark reads what it wrote.
    let pcap = scratch.0.join("link.pcap");
    let mut capture = scratch
        .command()
        .args(["capture", "web", "client-server", "-c", "4", "-w"])
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = BufReader::new(capture.stderr.take().unwrap());
    line.clear();
    started.read_line(&mut line).unwrap();
    assert!(line.starts_with("capturing on client:eth0"), "{line}");
    scratch.ok(&["ping", "web", "client", "server", "--count", "2"]);
    assert!(capture.wait().unwrap().success());
    let tshark = Command::new("tshark").args(["-r"]).arg(&pcap).args(["-Y", "icmp"]).output();
    match tshark {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success() && text.contains("10.9.0.1") && text.contains("ICMP"), "{text}");
        }
        Err(error) => panic!("tshark is needed (apt-get install tshark): {error}"),
    }

    // down ends it, and nothing is left.
    let processes = up.processes();
    scratch.ok(&["down", "web"]);
    assert!(up.child.wait().unwrap().success());
    assert!(eventually(UP_LIMIT, || processes.iter().all(|pid| !alive(*pid))), "{processes:?} still run");
    assert_eq!(scratch.ok(&["ls"]).trim(), "no lab is running");
    assert_eq!(
        std::fs::read_dir(scratch.0.join("run/netns-test")).unwrap().count(),
        0,
        "the entry is removed"
    );
    assert_no_run_netns();
}

fn killed_with(signal: libc::c_int, name: &str) {
    let scratch = Scratch::new(name);
    let up = Up::start(&scratch, &["--name", name]);
    let processes = up.processes();
    assert!(processes.len() >= 3, "up, the lab's supervisor and its janitor at least: {processes:?}");
    // SAFETY: kill(2) on the process this test started.
    assert_eq!(unsafe { libc::kill(up.child.id() as i32, signal) }, 0);
    assert!(
        eventually(UP_LIMIT, || processes.iter().all(|pid| !alive(*pid))),
        "processes left after signal {signal}: {:?}",
        processes.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    let entries = scratch.0.join("run/netns-test");
    assert!(
        eventually(UP_LIMIT, || std::fs::read_dir(&entries).map(|d| d.count() == 0).unwrap_or(true)),
        "the runtime entry is left"
    );
    assert_eq!(scratch.ok(&["ls"]).trim(), "no lab is running");
    assert_no_run_netns();
}

#[test]
fn sigkill_of_up_leaves_nothing() {
    killed_with(libc::SIGKILL, "killed");
}

#[test]
fn sigterm_of_up_leaves_nothing() {
    killed_with(libc::SIGTERM, "terminated");
}

/// The README's shell block that starts with `start`.
fn readme_block(start: &str) -> &'static str {
    include_str!("../../README.md")
        .split("```sh\n")
        .map(|block| block.split("```").next().unwrap())
        .find(|block| block.starts_with(start))
        .unwrap_or_else(|| panic!("the README has a shell block that starts with `{start}`"))
}

/// The README's walk-through of the seed pair, run as written (the shell reads no command
/// from an empty standard input, and leaves).
#[test]
fn the_readme_walkthrough_works() {
    let block = readme_block("netns-test up ");
    let commands: Vec<Vec<&str>> = block
        .lines()
        .map(|line| line.split(" #").next().unwrap().split_whitespace().collect::<Vec<_>>())
        .filter(|words| !words.is_empty())
        .collect();
    assert_eq!(commands[0], ["netns-test", "up"]);
    let scratch = Scratch::new("readme");
    let mut up = Up::start(&scratch, &[]);
    assert!(up.seen.contains("veth0 1.1.1.2/24") && up.seen.contains("veth1 1.1.1.1/24"), "{}", up.seen);
    let mut outputs = String::new();
    for words in &commands[1..] {
        assert_eq!(words[0], "netns-test");
        outputs.push_str(&scratch.ok(&words[1..]));
    }
    assert!(outputs.starts_with("seed\t"), "ls names the lab `seed`: {outputs}");
    assert!(outputs.contains("inet 1.1.1.2/24"), "{outputs}");
    assert!(outputs.contains("1.1.1.0/24 dev veth1"), "{outputs}");
    assert!(outputs.contains("3 packets transmitted, 3 received"), "{outputs}");
    assert!(up.child.wait().unwrap().success(), "down ended it");
    up.wait_for("lab seed is down");
}

/// `up --interactive` in a pseudo-terminal (`script` from util-linux makes one): a command
/// runs in a node, the up arrow brings it back from history, Tab completes a node's name, and
/// `exit` ends the lab.
#[test]
fn the_interactive_prompt_runs_commands_in_nodes() {
    let scratch = Scratch::new("interactive");
    let file = scratch.file("web.toml", LAB);
    let line = format!("{BIN} up --interactive --name inter {}", file.display());
    let mut child = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("XDG_RUNTIME_DIR", scratch.0.join("run"))
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux) starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Whatever happens, `script` ends, and the lab with it (its terminal hangs up).
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let (send, output) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || send.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str, count: usize| {
        let deadline = Instant::now() + UP_LIMIT;
        while seen.matches(needle).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match output.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {needle:?} (×{count}) from the prompt; it printed:\n{seen}"),
            }
        }
    };
    // Each input is sent once the prompt is back: the editor reads keys only then.
    wait_for("inter> ", 1);
    stdin.write_all(b"client echo out-$(hostname)\r").unwrap();
    wait_for("out-client", 1);
    wait_for("inter> ", 2);
    // The up arrow, then Enter: the same command again, from history.
    stdin.write_all(b"\x1b[A\r").unwrap();
    wait_for("out-client", 2);
    wait_for("inter> ", 3);
    // Tab completes `ser` to `server`.
    stdin.write_all(b"ser\t echo done-$(hostname)\r").unwrap();
    wait_for("done-server", 1);
    wait_for("inter> ", 4);
    stdin.write_all(b"exit\r").unwrap();
    wait_for("lab inter is down", 1);
    assert!(child.0.wait().unwrap().success());
    assert_eq!(scratch.ok(&["ls"]).trim(), "no lab is running");
}

/// The README's installation block as written: `cargo install --path netns-test-cli` installs
/// this package's `netns-test` binary (the one these tests drive), and the `check` and
/// `graph` lines that follow run from the repository's root (a scratch directory that has the
/// repository's `tests/` where they name it, so that `wan.svg` lands there) with that binary
/// first on `PATH`.
#[test]
fn the_readme_install_check_and_graph_lines_work() {
    let block = readme_block("cargo install ");
    let lines: Vec<&str> = block
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines[0], "cargo install --path netns-test-cli", "{block}");
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(package.file_name().and_then(|name| name.to_str()), Some("netns-test-cli"));
    let manifest = include_str!("../Cargo.toml");
    assert!(manifest.contains("[[bin]]\nname = \"netns-test\""), "the package installs `netns-test`");
    assert!(lines[1..].iter().all(|line| line.starts_with("netns-test ")), "{block}");

    let scratch = Scratch::new("install");
    std::fs::create_dir(scratch.0.join("bin")).unwrap();
    std::os::unix::fs::symlink(BIN, scratch.0.join("bin/netns-test")).unwrap();
    std::os::unix::fs::symlink(package.join("../tests"), scratch.0.join("tests")).unwrap();
    let path = format!("{}:{}", scratch.0.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("sh")
        .args(["-e", "-c", &lines[1..].join("\n")])
        .current_dir(&scratch.0)
        .env("PATH", path)
        .env("XDG_RUNTIME_DIR", scratch.0.join("run"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("valid (3 nodes)"), "{stdout}");
    let svg = std::fs::read_to_string(scratch.0.join("wan.svg")).expect("graph wrote wan.svg");
    let document = roxmltree::Document::parse(&svg).expect("the picture is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
}
