//! The one error type of the crate.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::topology::TopologyError;

/// Everything that can go wrong in netns-test.
///
/// Messages say what failed and name the item (node, link, address); environment problems
/// (missing privileges, a kernel feature that is not there) carry the remedy in the message.
/// `Debug` prints the message followed by its chain of causes, so a test returning
/// `Result<(), netns_test::Error>` fails with a readable report.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process may not create the namespaces a test needs: it lacks the privileges, or a
    /// per-user namespace limit is reached (`ENOSPC`; the remedy names the limit).
    #[error("cannot isolate the test: {step} failed ({source})\n\n{remedy}")]
    Isolation {
        /// The step that failed, e.g. `unshare(CLONE_NEWUSER | CLONE_NEWNET)`.
        step: String,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
        /// What to do about it.
        remedy: String,
    },
    /// A netlink request failed.
    #[error("{what} in node `{node}` failed")]
    Netlink {
        /// The node whose namespace the request was for.
        node: String,
        /// The request, in the words of the `ip` command it mirrors.
        what: String,
        /// The error netlink returned.
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// A system call or file operation failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A readiness wait did not see its condition before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition that was awaited.
        what: String,
        /// How long the wait lasted.
        after: Duration,
    },
    /// A node name that the network does not have.
    #[error("unknown node `{name}`; the network has {known}")]
    UnknownNode {
        /// The name that was asked for.
        name: String,
        /// The names that exist, for the message.
        known: String,
    },
    /// An interface name that a node does not have.
    #[error("node `{node}` has no interface `{name}`; it has {known}")]
    UnknownInterface {
        /// The node that was asked.
        node: String,
        /// The interface name that was asked for.
        name: String,
        /// The interfaces the node has, for the message.
        known: String,
    },
    /// No link matches a [`Network::link`](crate::Network::link) request.
    #[error("no link joins `{a}` and `{b}`; the links of `{node}` are {}", name_list(.links.iter().map(String::as_str)))]
    UnknownLink {
        /// The first end as asked for: `node` or `node:interface`.
        a: String,
        /// The second end as asked for.
        b: String,
        /// The node of the first end.
        node: String,
        /// That node's links, each as `node:interface – peer:interface`.
        links: Vec<String>,
    },
    /// More than one link matches a [`Network::link`](crate::Network::link) request: the
    /// nodes are joined by parallel links, and an interface must say which.
    #[error("{}", ambiguous_link(.a, .b, .candidates))]
    AmbiguousLink {
        /// The first end as asked for: `node` or `node:interface`.
        a: String,
        /// The second end as asked for.
        b: String,
        /// The links that match, each as its two ends `node:interface`.
        candidates: Vec<[String; 2]>,
    },
    /// The topology is invalid.
    #[error(transparent)]
    Topology(Box<TopologyError>),
    /// A kernel feature the request needs is missing.
    #[error("{feature} is not available: {reason}")]
    Unsupported {
        /// The feature, e.g. `sch_netem`.
        feature: String,
        /// Why, and what would provide it.
        reason: String,
    },
    /// Link conditions out of range, refused before they reach the link, whichever backend
    /// carries it.
    #[error("{link}, {direction}: {source}")]
    InvalidConditions {
        /// The link, as topology errors name it: "link 1 (`client` – `server`)".
        link: String,
        /// The direction the conditions were for.
        direction: crate::conditions::Direction,
        /// The field, the value and the allowed range.
        #[source]
        source: crate::conditions::ConditionError,
    },
    /// A partition that cannot be made: a node that does not exist, a switch, or a node in
    /// two groups.
    #[error("cannot partition the network into {groups}: {reason}")]
    InvalidPartition {
        /// The node at fault.
        node: String,
        /// The groups as given, e.g. `[["n1"], ["n2", "n3"]]`.
        groups: String,
        /// What is wrong with the node.
        reason: String,
    },
    /// Periodic outages that cannot be scheduled: a period or a length of zero, or outages
    /// as long as their period.
    #[error("invalid outages on {link}: {reason}")]
    InvalidOutages {
        /// The link, as the timeline names it: `a:eth0 – b:eth0`.
        link: String,
        /// What is wrong, with the values given.
        reason: String,
    },
    /// A ping could not start: an invalid option, or a target that does not resolve.
    #[error("cannot ping `{target}` from node `{node}`: {reason}")]
    Ping {
        /// The node the ping was to be sent from.
        node: String,
        /// The target as given.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// A `NETNS_TEST_*` environment variable holds a value outside its grammar (see the
    /// crate docs' Environment section). A test fails with it before its child starts.
    #[error("invalid {variable}={value:?}: {}expected {expected}", .problem.as_ref().map_or(String::new(), |p| format!("{p}; ")))]
    Setting {
        /// The variable, e.g. `NETNS_TEST_TIMEOUT`.
        variable: &'static str,
        /// Its value (with any bytes that are not UTF-8 replaced).
        value: String,
        /// What the variable takes, e.g. "root or rootless".
        expected: &'static str,
        /// What is wrong with the value, when there is more to say than that it is not one of
        /// those (a duration too long to represent, an empty value).
        problem: Option<String>,
    },
    /// `NETNS_TEST_MODE=sudo`, and `sudo -n` did not start the test's child as root: there is
    /// no sudo, or it wants a password. The remedy names the sudoers line that allows it.
    #[error(
        "NETNS_TEST_MODE=sudo: `sudo -n` did not start the test's child as root without a \
         password ({said})\n{remedy}"
    )]
    Sudo {
        /// What sudo said (or why it could not run).
        said: String,
        /// What to do about it: the sudoers line.
        remedy: String,
    },
    /// No mode can start the test's child here: not root, and rootless mode does not work
    /// (the probe says why). Names what was tried, why each failed, and the remedies in order.
    #[error("netns-test cannot start the test's child here; it tried:\n{tried}\n{remedies}")]
    NoMode {
        /// Each mode tried and why it failed, one per line.
        tried: String,
        /// What to do, in order.
        remedies: String,
    },
    /// A sandboxed child process failed (see [`sandbox`](crate::sandbox)).
    #[error("{0}")]
    Child(String),
    /// A function that only works inside a netns test was called elsewhere.
    #[error("{0} can only be called inside a #[netns_test] test or a netns_test::sandbox body")]
    NotInTest(&'static str),
    /// A runtime change named an address the node does not have
    /// ([`Network::renumber`](crate::Network::renumber)).
    #[error("node `{node}` has no address `{address}`; it has {known}")]
    UnknownAddress {
        /// The node.
        node: String,
        /// The address as given.
        address: String,
        /// The node's addresses, listed.
        known: String,
    },
    /// A NAT asked for by router name that the topology does not have, or a change of a NAT
    /// that cannot be made at runtime.
    #[error("NAT on `{router}`: {reason}")]
    Nat {
        /// The router named.
        router: String,
        /// What is wrong: no NAT there (with the routers that have one), an invalid setting.
        reason: String,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.to_string();
        f.write_str(&message)?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            // Some messages already quote their cause; do not say it twice.
            let cause_text = cause.to_string();
            if !message.contains(&cause_text) {
                write!(f, "\n  caused by: {cause_text}")?;
            }
            source = cause.source();
        }
        Ok(())
    }
}

impl From<TopologyError> for Error {
    fn from(error: TopologyError) -> Self {
        Error::Topology(Box::new(error))
    }
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    pub(crate) fn netlink(
        node: impl Into<String>,
        what: impl Into<String>,
        source: rtnetlink::Error,
    ) -> Self {
        Error::Netlink { node: node.into(), what: what.into(), source: Box::new(source) }
    }
}

/// The message of [`Error::AmbiguousLink`]: the candidates, and how to name one of them.
fn ambiguous_link(a: &str, b: &str, candidates: &[[String; 2]]) -> String {
    let links: Vec<String> = candidates.iter().map(|[x, y]| format!("{x} – {y}")).collect();
    let example = candidates.get(1).map_or(a, |[x, _]| x.as_str());
    format!(
        "`{a}` and `{b}` are joined by {} links, {}; name an interface to choose one, as in \
         `link(\"{example}\", \"{b}\")`",
        candidates.len(),
        name_list(links.iter().map(String::as_str))
    )
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats a list of names for an error message: "`a`, `b` and `c`".
pub(crate) fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => "none".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The text of a panic's payload (a `&str` or a `String`, as `panic!` makes them), for the
/// failures that report a panic: a test body's, a per-packet hook's.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_cause_chain() {
        let error = Error::io("opening /proc/self/ns/net", io::Error::from_raw_os_error(2));
        let text = format!("{error:?}");
        assert!(text.starts_with("opening /proc/self/ns/net failed"), "{text}");
        assert!(text.contains("caused by: No such file or directory"), "{text}");
    }

    #[test]
    fn name_lists_read_naturally() {
        assert_eq!(name_list([]), "none");
        assert_eq!(name_list(["a"]), "`a`");
        assert_eq!(name_list(["a", "b", "c"]), "`a`, `b` and `c`");
    }
}
