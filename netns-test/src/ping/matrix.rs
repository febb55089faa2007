//! All-pairs reachability: every address of every host and router, pinged from every other
//! host and router, all at once.

use std::fmt;
use std::net::IpAddr;

use super::engine::Engine;
use super::{Ping, PingStats};
use crate::error::Result;
use crate::network::{Network, Node};
use crate::topology::NodeKind;

/// How many pairs [`Network::ping_all`] pings at once. Enough to keep every CPU busy; few
/// enough that the ARP broadcasts of pairs starting together fit the kernel's backlogs even on
/// a switch with hundreds of hosts.
const ALL_PAIRS_WINDOW: usize = 128;

/// The outcome of [`Network::ping_all`]: one [`PingStats`] per (source node, target address)
/// pair, where the target address belongs to another host or router.
///
/// `Display` prints a table, a row per source and a column per address: `ok` when every probe
/// was answered, `X` when none was, the loss otherwise, and `-` for the node's own addresses.
#[derive(Clone, Debug)]
pub struct PingMatrix {
    sources: Vec<String>,
    /// Each target address with the node it belongs to.
    targets: Vec<(String, IpAddr)>,
    /// Row-major, `sources.len()` rows of `targets.len()`; `None` for a node's own address.
    cells: Vec<Option<PingStats>>,
}

impl Network {
    /// Pings every address of every host and router from every other host and router,
    /// concurrently (up to 128 pairs at once), with one probe each and the default timeout: the
    /// reachability matrix of the network in one call (Mininet's `pingAll`, without its
    /// N·(N−1) sequential `ping` processes). Each pair's finished ping is on the network's
    /// timeline, as a single [`Ping::run`]'s is.
    ///
    /// # Errors
    /// As [`Ping::run`].
    pub fn ping_all(&self) -> Result<PingMatrix> {
        self.ping_all_with(|ping| ping)
    }

    /// [`ping_all`](Self::ping_all), with each pair's [`Ping`] configured by `configure`, e.g.
    /// `net.ping_all_with(|ping| ping.count(3).interval(Duration::ZERO))`.
    ///
    /// # Errors
    /// As [`Ping::run`].
    pub fn ping_all_with(&self, mut configure: impl FnMut(Ping) -> Ping) -> Result<PingMatrix> {
        let nodes: Vec<&Node> = self
            .nodes()
            .iter()
            .filter(|node| matches!(node.kind(), NodeKind::Host | NodeKind::Router))
            .collect();
        let targets: Vec<(String, IpAddr)> = nodes
            .iter()
            .flat_map(|node| node.addrs().into_iter().map(|addr| (node.name().to_string(), addr)))
            .collect();
        let mut requests = Vec::new();
        let mut pairs = Vec::new();
        for (row, node) in nodes.iter().enumerate() {
            for (column, (owner, addr)) in targets.iter().enumerate() {
                if owner != node.name() {
                    let ping = configure(node.ping(*addr));
                    requests.push(ping.request()?);
                    pairs.push((row * targets.len() + column, ping));
                }
            }
        }
        let mut cells: Vec<Option<PingStats>> = vec![None; nodes.len() * targets.len()];
        let results = if requests.is_empty() {
            Vec::new()
        } else {
            Engine::open(requests)?.window(ALL_PAIRS_WINDOW).run()?
        };
        // Each pair's ping is on the timeline, as a single ping's is.
        for ((cell, ping), stats) in pairs.into_iter().zip(results) {
            ping.record(&stats);
            cells[cell] = Some(stats);
        }
        Ok(PingMatrix { sources: nodes.iter().map(|node| node.name().to_string()).collect(), targets, cells })
    }
}

impl PingMatrix {
    /// The statistics of the pings from node `from` to address `to`; `None` when `from` is not
    /// a host or router of the network, or `to` is not another one's address.
    pub fn get(&self, from: &str, to: IpAddr) -> Option<&PingStats> {
        let row = self.sources.iter().position(|source| source == from)?;
        let column = self.targets.iter().position(|(_, addr)| *addr == to)?;
        self.cells[row * self.targets.len() + column].as_ref()
    }

    /// Every pair's statistics, row by row.
    pub fn pairs(&self) -> impl Iterator<Item = &PingStats> {
        self.cells.iter().flatten()
    }

    /// The pairs where no probe was answered.
    pub fn unreachable(&self) -> Vec<&PingStats> {
        self.pairs().filter(|stats| !stats.is_reachable()).collect()
    }

    /// Whether every pair got at least one reply.
    pub fn is_all_reachable(&self) -> bool {
        self.pairs().all(PingStats::is_reachable)
    }

    /// Asserts that every pair got at least one reply.
    ///
    /// # Panics
    /// When some did not; the message lists them with their summaries, and the matrix.
    #[track_caller]
    pub fn assert_all_reachable(&self) -> &Self {
        let unreachable = self.unreachable();
        if !unreachable.is_empty() {
            let mut message =
                format!("{} of {} pairs are unreachable:\n", unreachable.len(), self.pairs().count());
            for stats in unreachable {
                message.push_str(&format!("\n{}\n", stats.failure("no reply")));
            }
            panic!("{message}\n{self}");
        }
        self
    }
}

impl fmt::Display for PingMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.pairs().count();
        let reachable = self.pairs().filter(|stats| stats.is_reachable()).count();
        writeln!(f, "ping all: {reachable} of {total} pairs reachable")?;
        let header: Vec<String> = self.targets.iter().map(|(node, addr)| format!("{node} {addr}")).collect();
        let cell = |stats: Option<&PingStats>| match stats {
            None => "-".to_string(),
            Some(stats) if stats.received() == stats.transmitted() => "ok".to_string(),
            Some(stats) if stats.received() == 0 => "X".to_string(),
            Some(stats) => format!("{:.0}% loss", stats.loss() * 100.0),
        };
        let rows: Vec<Vec<String>> = (0..self.sources.len())
            .map(|row| {
                (0..self.targets.len())
                    .map(|column| cell(self.cells[row * self.targets.len() + column].as_ref()))
                    .collect()
            })
            .collect();
        let first = self.sources.iter().map(String::len).max().unwrap_or(0).max("from \\ to".len());
        let widths: Vec<usize> = (0..self.targets.len())
            .map(|column| {
                rows.iter().map(|row| row[column].len()).chain([header[column].len()]).max().unwrap_or(0)
            })
            .collect();
        // Lines are padded column by column, then trimmed, so none ends in spaces.
        let mut line = format!("{:first$}", "from \\ to");
        for (title, width) in header.iter().zip(&widths) {
            line.push_str(&format!("  {title:width$}"));
        }
        write!(f, "{}", line.trim_end())?;
        for (source, row) in self.sources.iter().zip(&rows) {
            let mut line = format!("{source:first$}");
            for (text, width) in row.iter().zip(&widths) {
                line.push_str(&format!("  {text:width$}"));
            }
            write!(f, "\n{}", line.trim_end())?;
        }
        Ok(())
    }
}
