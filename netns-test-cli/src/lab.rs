//! `up` and `down`: a lab is a `sandbox` whose body serves the control socket until `down`.
//!
//! `netns-test up` is the sandbox's parent; the network lives in its child, which the kernel
//! kills when the parent dies (`PR_SET_PDEATHSIG`), so the namespaces, held by descriptor
//! only, go with it however `up` ends. The runtime entry is removed by `up` itself on a clean
//! end, and by a small janitor process (started first, in a process group of its own) when
//! `up` is killed: the janitor notices its parent's end of a pipe close.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::control::{self, Reply, Request, ask};
use crate::registry::{self, Entry};
use crate::{CliError, load};

/// Where the sandbox child finds its entry (the parent's runtime directory, which the child,
/// as uid 0 of a user namespace, would not compute the same).
const ENTRY_VAR: &str = "NETNS_TEST_LAB_ENTRY";

/// `up`: brings the topology up and holds it.
pub(crate) fn up(file: Option<&Path>, name: Option<String>, interactive: bool) -> Result<(), CliError> {
    let topology = load(file)?;
    let name = name.unwrap_or_else(|| {
        file.and_then(|f| f.file_stem()).map_or("seed".to_string(), |s| s.to_string_lossy().into_owned())
    });
    if name.is_empty()
        || name.len() > 64
        || name.starts_with('.')
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(CliError::Usage(format!(
            "invalid lab name `{name}`: use up to 64 letters, digits, `-`, `_` or `.` (not first)"
        )));
    }
    // The sandbox child re-runs this function up to the `sandbox` call, which runs its body;
    // what comes before the call is the parent's alone.
    let child = netns_test::__private::is_sandbox_child();
    let mut janitor = None;
    let mut prompt = None;
    let ended = Arc::new(AtomicBool::new(false));
    let entry = if child {
        PathBuf::from(std::env::var_os(ENTRY_VAR).unwrap_or_default())
    } else {
        let entry = create_entry(&name, file)?;
        // The janitor's stdin is this pipe: it reads end of file when this process ends.
        janitor = Some(
            Command::new("/proc/self/exe")
                .arg("__janitor")
                .arg(&entry)
                .arg(std::process::id().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| CliError::io("starting the lab's janitor", e))?,
        );
        // SAFETY: no other thread runs yet; the variable is read by the sandbox child only.
        unsafe { std::env::set_var(ENTRY_VAR, &entry) };
        if interactive {
            ignore_interrupts();
            let (name, entry, ended) = (name.clone(), entry.clone(), Arc::clone(&ended));
            prompt = Some(std::thread::spawn(move || prompt_loop(&name, &entry, &ended)));
        }
        entry
    };
    let result = netns_test::sandbox(topology, |net| serve(net, &name, &entry));
    ended.store(true, Ordering::SeqCst);
    let _ = std::fs::remove_dir_all(&entry);
    drop(janitor);
    if let Some(prompt) = prompt {
        // The prompt ends by itself once it saw the lab end (or it asked for the end).
        drop(prompt);
    }
    match result {
        Ok(()) => {
            println!("lab {name} is down");
            Ok(())
        }
        Err(error) => Err(CliError::NetnsTest(error)),
    }
}

/// Makes `<runtime dir>/<name>` with its `lab.json`, atomically (a directory renamed into
/// place), or fails when a live lab has the name.
fn create_entry(name: &str, file: Option<&Path>) -> Result<PathBuf, CliError> {
    if registry::find(name)?.is_some() {
        return Err(CliError::Exists(name.to_string()));
    }
    let dir = registry::runtime_dir()?;
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temporary);
    std::fs::create_dir(&temporary)
        .map_err(|e| CliError::io(format!("creating {}", temporary.display()), e))?;
    let entry = Entry {
        name: name.to_string(),
        pid: std::process::id() as i32,
        file: file.map(|f| std::fs::canonicalize(f).unwrap_or(f.to_path_buf()).display().to_string()),
    };
    std::fs::write(temporary.join("lab.json"), serde_json::to_vec(&entry).expect("serializes"))
        .map_err(|e| CliError::io("writing lab.json", e))?;
    let target = dir.join(name);
    if std::fs::rename(&temporary, &target).is_err() {
        let _ = std::fs::remove_dir_all(&temporary);
        return Err(CliError::Exists(name.to_string()));
    }
    Ok(target)
}

/// The lab's body, in the sandbox child: the control socket, then what to tell the person.
fn serve(net: &'static netns_test::Network, name: &str, entry: &Path) -> Result<(), String> {
    let socket = entry.join("control.sock");
    let listener = UnixListener::bind(&socket).map_err(|e| format!("binding {}: {e}", socket.display()))?;
    let mut text = format!("lab {name}: {} nodes\n", net.nodes().len());
    for node in control::describe(net) {
        text.push_str(&format!("  {} ({})\n", node.name, node.kind));
        for iface in &node.interfaces {
            text.push_str(&format!("    {iface}\n"));
        }
        text.push_str(&format!(
            "    enter: netns-test shell {name} {0}   run: netns-test exec {name} {0} -- CMD\n",
            node.name
        ));
    }
    text.push_str(&format!("lab {name} is up; Ctrl-C, SIGTERM or `netns-test down {name}` ends it\n"));
    print!("{text}");
    control::serve(net, &socket, listener);
    Ok(())
}

/// `down`: asks the lab to end, then waits until its `up` process has exited.
pub(crate) fn down(name: &str) -> Result<(), CliError> {
    let entry = registry::require(name)?;
    let socket = registry::entry_dir(name)?.join("control.sock");
    match ask(&socket, &Request::Down)?.0 {
        Reply::Ok { .. } => {}
        Reply::Error { message } => return Err(CliError::Lab(message)),
        other => return Err(CliError::Lab(format!("unexpected reply {other:?}"))),
    }
    wait_exit(entry.pid, Duration::from_secs(30));
    println!("lab {name} is down");
    Ok(())
}

/// Waits on a pidfd until `pid` exits, or `limit` passes.
fn wait_exit(pid: i32, limit: Duration) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return;
    }
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let millis = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd; the descriptor is closed right after.
    unsafe {
        libc::poll(&mut poll, 1, millis);
        libc::close(fd);
    }
}

/// The janitor: waits for end of file on stdin (its `up` process ended), then removes the
/// entry if it still belongs to that process.
pub(crate) fn janitor(dir: &Path, pid: i32) {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let owned = std::fs::read_to_string(dir.join("lab.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Entry>(&text).ok())
        .is_some_and(|entry| entry.pid == pid);
    if owned {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Ctrl-C at the prompt's terminal reaches the command running in a node, not the lab: a
/// handler that does nothing (unlike SIG_IGN, it does not pass on to the programs started).
fn ignore_interrupts() {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: installs an async-signal-safe handler that does nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// Completion of node names (any word) and the built-in words, for the prompt.
struct Names(Vec<String>);

impl rustyline::completion::Completer for Names {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos].rfind(' ').map_or(0, |i| i + 1);
        let word = &line[start..pos];
        Ok((start, self.0.iter().filter(|name| name.starts_with(word)).cloned().collect()))
    }
}
impl rustyline::hint::Hinter for Names {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Names {}
impl rustyline::validate::Validator for Names {}
impl rustyline::Helper for Names {}

/// The interactive prompt, on a thread of `up`: waits for the lab's socket, then reads lines
/// until `exit` or end of input, and ends the lab.
fn prompt_loop(name: &str, entry: &Path, ended: &AtomicBool) {
    let socket = entry.join("control.sock");
    // The socket appears once the network is up; its bring-up takes well under a minute.
    let deadline = Instant::now() + Duration::from_secs(120);
    let nodes = loop {
        if ended.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        if let Ok((Reply::Info { nodes, .. }, _)) = ask(&socket, &Request::Info) {
            break nodes;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let mut words = names.clone();
    words.extend(["nodes", "dump", "help", "exit"].map(String::from));
    let Ok(mut editor) = rustyline::Editor::<Names, rustyline::history::DefaultHistory>::new() else {
        return;
    };
    editor.set_helper(Some(Names(words)));
    let help = "NODE COMMAND...   run COMMAND (with sh -c) in NODE, e.g. `client ping -c1 server`\n\
                nodes             the nodes\n\
                dump              every node's addresses and routes\n\
                exit              end the lab (or Ctrl-D)";
    println!("type `help` for the commands");
    loop {
        let line = match editor.readline(&format!("{name}> ")) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let (first, rest) = line.split_once(' ').map_or((line, ""), |(a, b)| (a, b.trim()));
        match first {
            "exit" | "quit" => break,
            "help" => println!("{help}"),
            "nodes" => println!("{}", names.join(" ")),
            "dump" => match ask(&socket, &Request::Dump) {
                Ok((Reply::Ok { text }, _)) => print!("{text}"),
                Ok((other, _)) => println!("{other:?}"),
                Err(error) => println!("{error}"),
            },
            node if names.iter().any(|n| n == node) && !rest.is_empty() => {
                // A process of its own: joining the node's namespaces needs a single thread.
                let status = Command::new("/proc/self/exe")
                    .args(["exec", name, node, "--", "sh", "-c"])
                    .arg(OsString::from(rest))
                    .status();
                match status {
                    Ok(status) if !status.success() => println!("({status})"),
                    Ok(_) => {}
                    Err(error) => println!("cannot run it: {error}"),
                }
            }
            other => println!("unknown node or command `{other}`; nodes: {}; `help`", names.join(" ")),
        }
        if ended.load(Ordering::SeqCst) {
            return;
        }
    }
    let _ = ask(&socket, &Request::Down);
}
