//! What the child tells the parent, one JSON object per line on a dedicated pipe (the child's
//! stdout and stderr belong to the test body). The environment variables that tell a child
//! which test it runs and where its pipes are are listed with the settings
//! ([`crate::settings::internal`]).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::timeline::Observations;

/// One message from the child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub(crate) enum Report {
    /// The network is up and the body is about to run.
    Ready(Ready),
    /// The body finished successfully; a sandbox body's value, as JSON.
    Passed {
        /// The value, for `sandbox_with`.
        value: Option<String>,
    },
    /// What the network went through, sent just before [`Report::Failed`] when the body
    /// fails, for the parent to print after the failure.
    Observed(Observations),
    /// The body or the setup failed.
    Failed(Failure),
    /// Sudo mode: `sudo` started the elevated process, which starts the child as root. A sudo
    /// child that exits without it was refused by sudo.
    Elevated,
}

/// What the child says once its network is up, just before the body runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ready {
    /// The test process's PID in the parent's PID namespace (it is PID 2 in its own).
    pub(crate) pid: u32,
    /// The nodes and the descriptors (in the child) that hold their namespaces.
    pub(crate) nodes: Vec<NodeFds>,
    /// The seed of the link conditions, when the network has links with conditions.
    pub(crate) seed: Option<u64>,
    /// The capture files being written.
    pub(crate) captures: Vec<String>,
}

/// Where a node's namespaces are held in the child, for `nsenter` hints: `None` is the
/// child's own namespace (`/proc/PID/ns/net`, `/proc/PID/ns/uts`).
pub(crate) use crate::network::HeldNamespaces as NodeFds;

/// Why a child failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub(crate) enum Failure {
    /// The body panicked.
    Panic { message: String, location: Option<String> },
    /// The body returned `Err`.
    Error { message: String },
    /// The network could not be built.
    Setup { message: String },
}

impl Report {
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()
    }

    pub(crate) fn parse(line: &[u8]) -> Option<Report> {
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let reports = [
            Report::Ready(Ready {
                pid: 42,
                nodes: vec![NodeFds { name: "test1".into(), net: Some(7), uts: None }],
                seed: Some(7),
                captures: vec!["target/netns-test/t/link1-a-b.pcap".into()],
            }),
            Report::Passed { value: None },
            Report::Passed { value: Some("[1.5,2]".into()) },
            Report::Failed(Failure::Panic {
                message: "boom\nsecond line".into(),
                location: Some("a.rs:1:2".into()),
            }),
            Report::Failed(Failure::Error { message: "Err(\"x\")".into() }),
            Report::Observed(Observations::default()),
        ];
        for report in reports {
            let mut buffer = Vec::new();
            report.write_to(&mut buffer).unwrap();
            assert_eq!(buffer.iter().filter(|b| **b == b'\n').count(), 1, "one line per report");
            assert_eq!(Report::parse(buffer.trim_ascii_end()), Some(report));
        }
    }
}
