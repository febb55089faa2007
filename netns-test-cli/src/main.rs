//! The `netns-test` command: check and draw topology files, bring one up as a lab that lives
//! in its own namespaces (nothing in `/run/netns` or the root namespace, nothing left when it
//! ends), and look inside a running lab. See the README's "Lab" section.

mod capture;
mod control;
mod enter;
mod lab;
mod registry;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use control::{Reply, Request, ask};

/// Bring netns-test topologies up as labs, look inside them, draw them.
#[derive(Parser)]
#[command(name = "netns-test", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a topology file; errors are printed as FILE:LINE:COLUMN: message, and the exit
    /// code is 0 for a valid file, 1 for an invalid one.
    Check {
        /// The topology file.
        file: PathBuf,
    },
    /// Bring a topology up (the seed pair, veth0 1.1.1.2/24 ⇄ veth1 1.1.1.1/24, without a
    /// file) and hold it until Ctrl-C, SIGTERM or `netns-test down NAME`.
    Up {
        /// The topology file.
        file: Option<PathBuf>,
        /// The lab's name (default: the file's stem, or `seed`).
        #[arg(long)]
        name: Option<String>,
        /// A prompt where `NODE COMMAND...` runs a command in a node.
        #[arg(long, short)]
        interactive: bool,
    },
    /// List the running labs.
    Ls,
    /// End a running lab.
    Down {
        /// The lab.
        name: String,
    },
    /// Run a program in a node of a running lab (its network, hostname, hosts file and PID
    /// view); exits with the program's exit code.
    Exec {
        /// The lab.
        name: String,
        /// The node.
        node: String,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// Start a shell ($SHELL, else /bin/sh) in a node of a running lab.
    Shell {
        /// The lab.
        name: String,
        /// The node.
        node: String,
    },
    /// Ping node (or address) B from node A, with iputils' summary.
    Ping {
        /// The lab.
        name: String,
        /// The node pinging.
        a: String,
        /// The node (its first address) or address pinged.
        b: String,
        /// How many echo requests.
        #[arg(long, short, default_value_t = 3)]
        count: u64,
    },
    /// Every node's addresses and routes (`ip addr`, `ip route`).
    Dump {
        /// The lab.
        name: String,
    },
    /// Change a link's conditions while the lab runs (values as in topology files).
    Set {
        /// The lab.
        name: String,
        /// The link, as `A-B` (its two nodes).
        link: String,
        /// Delay, e.g. `20ms`.
        #[arg(long)]
        delay: Option<String>,
        /// Jitter, e.g. `2ms`.
        #[arg(long)]
        jitter: Option<String>,
        /// Loss, e.g. `1%`.
        #[arg(long)]
        loss: Option<String>,
        /// Rate, e.g. `10mbit`.
        #[arg(long)]
        rate: Option<String>,
        /// Reordering, e.g. `5%`.
        #[arg(long)]
        reorder: Option<String>,
        /// Duplication, e.g. `1%`.
        #[arg(long)]
        duplicate: Option<String>,
        /// Corruption, e.g. `1%`.
        #[arg(long)]
        corrupt: Option<String>,
    },
    /// Write the frames crossing a link (at its first node's end) to a pcap file.
    Capture {
        /// The lab.
        name: String,
        /// The link, as `A-B`; frames are read at A's interface.
        link: String,
        /// The pcap file to write.
        #[arg(short = 'w', long = "write")]
        file: PathBuf,
        /// Stop after this many frames (default: until interrupted).
        #[arg(short, long)]
        count: Option<u64>,
    },
    /// Draw a topology file as SVG: nodes by kind, links with interfaces, addresses and
    /// conditions.
    Graph {
        /// The topology file (the seed pair without one).
        file: Option<PathBuf>,
        /// Where to write the SVG.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Internal: removes a lab's entry once its `up` process has ended, however it ended.
    #[command(hide = true, name = "__janitor")]
    Janitor { dir: PathBuf, pid: i32 },
}

/// Why a subcommand failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad arguments.
    Usage(String),
    /// A file or socket operation.
    Io { what: String, source: std::io::Error },
    /// No running lab has this name.
    UnknownLab { name: String, known: String },
    /// The lab refused the request (an unknown node or link, invalid conditions, ...).
    Lab(String),
    /// A lab of this name runs already.
    Exists(String),
    /// The library's error (an invalid topology, namespaces not allowed, ...).
    NetnsTest(netns_test::Error),
}

impl CliError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io { what: what.into(), source }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(text) | CliError::Lab(text) => f.write_str(text),
            CliError::Io { what, source } => write!(f, "{what}: {source}"),
            CliError::UnknownLab { name, known } if known.is_empty() => {
                write!(f, "no lab named `{name}` is running (no lab is running)")
            }
            CliError::UnknownLab { name, known } => {
                write!(f, "no lab named `{name}` is running; running: {known}")
            }
            CliError::Exists(name) => write!(f, "a lab named `{name}` is running already (pick --name)"),
            CliError::NetnsTest(error) => write!(f, "{error}"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { file } => return check(&file),
        Command::Up { file, name, interactive } => lab::up(file.as_deref(), name, interactive),
        Command::Ls => ls(),
        Command::Down { name } => lab::down(&name),
        Command::Exec { name, node, command } => {
            match enter::exec(&name, &node, &command[0], &command[1..]) {
                Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(error) => Err(error),
            }
        }
        Command::Shell { name, node } => {
            let shell =
                std::env::var_os("SHELL").filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into());
            match enter::exec(&name, &node, &shell, &[]) {
                Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(error) => Err(error),
            }
        }
        Command::Ping { name, a, b, count } => simple(&name, Request::Ping { from: a, to: b, count }),
        Command::Dump { name } => simple(&name, Request::Dump),
        Command::Set { name, link, delay, jitter, loss, rate, reorder, duplicate, corrupt } => {
            let mut conditions = serde_json::Map::new();
            for (key, value) in [
                ("delay", delay),
                ("jitter", jitter),
                ("loss", loss),
                ("rate", rate),
                ("reorder", reorder),
                ("duplicate", duplicate),
                ("corrupt", corrupt),
            ] {
                if let Some(value) = value {
                    conditions.insert(key.to_string(), serde_json::Value::String(value));
                }
            }
            simple(&name, Request::Set { link, conditions: serde_json::Value::Object(conditions) })
        }
        Command::Capture { name, link, file, count } => capture::capture(&name, &link, &file, count),
        Command::Graph { file, output } => graph(file.as_deref(), &output),
        Command::Janitor { dir, pid } => {
            lab::janitor(&dir, pid);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("netns-test: {error}");
            ExitCode::from(2)
        }
    }
}

/// `check`: 0 valid, 1 invalid, 2 unreadable.
fn check(file: &std::path::Path) -> ExitCode {
    match netns_test::Topology::from_file(file) {
        Ok(topology) => {
            println!("{}: valid ({} nodes)", file.display(), topology.node_names().count());
            ExitCode::SUCCESS
        }
        Err(netns_test::Error::Topology(error)) => {
            // The error starts with FILE:LINE:COLUMN when it has a position.
            eprintln!("{error}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("netns-test: {error}");
            ExitCode::from(2)
        }
    }
}

fn load(file: Option<&std::path::Path>) -> Result<netns_test::Topology, CliError> {
    match file {
        Some(file) => netns_test::Topology::from_file(file).map_err(CliError::NetnsTest),
        None => Ok(netns_test::Topology::pair()),
    }
}

fn graph(file: Option<&std::path::Path>, output: &std::path::Path) -> Result<(), CliError> {
    let svg = netns_test::picture::svg(&load(file)?);
    std::fs::write(output, svg).map_err(|e| CliError::io(format!("writing {}", output.display()), e))?;
    println!("wrote {}", output.display());
    Ok(())
}

fn ls() -> Result<(), CliError> {
    let labs = registry::list()?;
    if labs.is_empty() {
        println!("no lab is running");
    }
    for lab in labs {
        println!("{}\tpid {}\t{}", lab.name, lab.pid, lab.file.as_deref().unwrap_or("(seed pair)"));
    }
    Ok(())
}

/// A request whose reply is text to print.
fn simple(name: &str, request: Request) -> Result<(), CliError> {
    registry::require(name)?;
    let socket = registry::entry_dir(name)?.join("control.sock");
    match ask(&socket, &request)?.0 {
        Reply::Ok { text } => {
            print!("{text}");
            if !text.ends_with('\n') && !text.is_empty() {
                println!();
            }
            Ok(())
        }
        Reply::Error { message } => Err(CliError::Lab(message)),
        other => Err(CliError::Lab(format!("unexpected reply {other:?}"))),
    }
}
