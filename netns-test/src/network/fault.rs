//! Faults that end when their guard drops: a cut link ([`Cut`]), a partition of the network
//! ([`Partition`]), a flapping link ([`Flap`]), a link that drops everything for a while
//! ([`Blackhole`]) and periodic outages ([`Outages`]).
//!
//! A cut and a partition are ingress filters that drop frames silently (classic BPF on tc's
//! `clsact` hook), held by one guard type that removes them when it heals; a flap is a
//! thread that sets the link down and up until its guard stops it.
//!
//! ```no_run
//! # use std::time::Duration;
//! # fn body(net: &netns_test::Network) -> netns_test::Result<()> {
//! let cut = net.link("client", "r1").cut()?;          // frames dropped in the middle
//! cut.heal()?;                                        // or drop the guard
//! let split = net.partition(&[&["n1"], &["n2", "n3"]])?;
//! drop(split);                                        // healed
//! let _flap = net.link("r1", "r2").flap(Duration::from_millis(100), Duration::from_millis(400))?;
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::{LinkHandle, Network, Node};
use crate::error::{Error, Result, name_list};
use crate::netlink::At;
use crate::netlink::tc::{SockFilter, cbpf};
use crate::timeline::{EventKind, Timeline};
use crate::topology::NodeKind;

mod timed;

pub use timed::{Blackhole, Outages};

/// tc filter priorities for cuts and partitions, unique in the process so that guards never
/// remove each other's filters.
static NEXT_PRIO: AtomicU16 = AtomicU16::new(1);

fn next_prio() -> u16 {
    NEXT_PRIO.fetch_add(1, Ordering::Relaxed)
}

impl Network {
    /// Splits the network: every node listed in one group stops receiving IP packets from the
    /// nodes of the other groups, silently (as a firewall dropping them would), until the
    /// returned guard is dropped or [`heal`](Partition::heal)ed. Nodes in no group (routers,
    /// switches) keep forwarding for everyone.
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// let split = net.partition(&[&["n1"], &["n2", "n3"]])?;
    /// // n1 and the others cannot reach each other here.
    /// split.heal()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidPartition`] naming the node and the groups for an unknown node, a node
    /// listed twice or a switch listed; a netlink failure.
    pub fn partition(&self, groups: &[&[&str]]) -> Result<Partition> {
        let invalid = |node: &str, reason: String| Error::InvalidPartition {
            node: node.to_string(),
            groups: format!("{groups:?}"),
            reason,
        };
        let mut members: Vec<(usize, Node)> = Vec::new();
        for (group, names) in groups.iter().enumerate() {
            for name in *names {
                let node = self.try_node(name).map_err(|_| {
                    invalid(
                        name,
                        format!(
                            "there is no node `{name}`; the network has {}",
                            name_list(self.nodes().iter().map(Node::name))
                        ),
                    )
                })?;
                if node.kind() == NodeKind::Switch {
                    return Err(invalid(
                        name,
                        format!(
                            "`{name}` is a switch, which forwards for every group; list hosts and routers"
                        ),
                    ));
                }
                if let Some((first, _)) = members.iter().find(|(_, n)| n.name() == *name) {
                    let place = if *first == group {
                        format!("listed twice in group {}", group + 1)
                    } else {
                        format!("in groups {} and {}", first + 1, group + 1)
                    };
                    return Err(invalid(
                        name,
                        format!("node `{name}` is {place}; a node belongs to one group"),
                    ));
                }
                members.push((group, node.clone()));
            }
        }
        // Each filter joins the guard once installed, so that an error here heals what was
        // installed when it drops the guard.
        let groups_text = groups.iter().map(|group| group.join(" ")).collect::<Vec<_>>().join(" | ");
        let mut fault = Fault::new(Healing::Partition, self.timeline().clone(), "network", groups_text);
        let prio = next_prio();
        for (group, node) in &members {
            let foreign: Vec<IpAddr> =
                members.iter().filter(|(g, _)| g != group).flat_map(|(_, other)| other.addrs()).collect();
            if foreign.is_empty() {
                continue;
            }
            let program = cbpf::drop_from(&foreign);
            for iface in node.interfaces() {
                fault.install(Filter::new(node, iface.index(), iface.name(), prio), &program)?;
            }
        }
        Ok(Partition(fault.in_effect()))
    }
}

impl LinkHandle {
    /// Cuts the link silently: both ends stay up with carrier, but every frame is dropped on
    /// arrival, as an unplugged cable somewhere in the middle would. The link comes back when
    /// the guard drops (or [`heal`](Cut::heal)s), ready to carry the next packet at once: the
    /// neighbour entries that nodes on either side were resolving across the link during the
    /// cut (or failed to resolve) are resolved from the topology's addresses, as an answer
    /// would, instead of waiting for the kernel's next retry (up to a second, by default).
    /// While the link is cut, [`ready`](Self::ready) waits.
    ///
    /// # Errors
    /// A netlink failure installing the filters.
    pub fn cut(&self) -> Result<Cut> {
        self.cut_as(Healing::Cut(self.clone()), String::new()).map(Cut)
    }

    /// Cuts the link (see [`cut`](Self::cut)), recorded as `healing` says, with `detail`.
    fn cut_as(&self, healing: Healing, detail: String) -> Result<Fault> {
        let prio = next_prio();
        // Counted before the first filter goes in, so that `ready` never takes a cut link for
        // a ready one; the guard uncounts it when it heals, and heals what was installed when
        // an error here drops it.
        self.cuts().fetch_add(1, Ordering::Release);
        let mut fault = Fault::new(healing, self.timeline().clone(), self.subject(), detail);
        for (node, ifindex, ifname) in self.interfaces() {
            fault.install(Filter::new(node, ifindex, ifname, prio), &cbpf::drop_all())?;
        }
        Ok(fault.in_effect())
    }

    /// Makes the link flap: down for `down`, up for `up`, again and again, from a background
    /// thread, until the guard is dropped; the link is then up, with its routes. The nodes see
    /// each change, as with [`down`](Self::down) and [`up`](Self::up).
    ///
    /// # Errors
    /// The background thread cannot be started.
    pub fn flap(&self, down: Duration, up: Duration) -> Result<Flap> {
        let link = self.clone();
        let detail =
            format!("down {}, up {}", humantime::format_duration(down), humantime::format_duration(up));
        self.timeline().record(EventKind::FlapStarted, self.subject(), detail);
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let signal = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("netns-test-flap".into())
            .spawn(move || -> Result<()> {
                let (lock, changed) = &*signal;
                // Sleeps that end early when the guard is dropped.
                let pause = |length: Duration| -> bool {
                    let stopped = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (stopped, _) = changed
                        .wait_timeout_while(stopped, length, |stopped| !*stopped)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *stopped
                };
                loop {
                    link.down()?;
                    let stopped = pause(down);
                    link.up()?;
                    if stopped || pause(up) {
                        link.timeline().record(EventKind::FlapStopped, link.subject(), "");
                        return Ok(());
                    }
                }
            })
            .map_err(|e| Error::io("starting the flap thread", e))?;
        Ok(Flap { stop, thread: Some(thread) })
    }
}

/// One ingress filter of a fault: on interface `index` (`name`) of `node`, at `prio`.
#[derive(Clone, Debug)]
struct Filter {
    node: Node,
    index: u32,
    name: String,
    prio: u16,
}

impl Filter {
    fn new(node: &Node, index: u32, name: &str, prio: u16) -> Self {
        Filter { node: node.clone(), index, name: name.to_string(), prio }
    }

    /// Requests against the filter's node.
    fn at(&self) -> At<'_> {
        At { node: self.node.name(), handle: &self.node.netlink().handle }
    }

    /// `tc qdisc add dev <name> clsact` (where there is none yet), then the filter with
    /// `program`.
    fn install(&self, program: &[SockFilter]) -> Result<()> {
        let (filter, program) = (self.clone(), program.to_vec());
        self.node.netlink_rt().block_on(async move {
            let at = filter.at();
            at.ensure_clsact(filter.index, &filter.name).await?;
            at.add_ingress_filter(filter.index, &filter.name, filter.prio, &program).await
        })
    }

    /// `tc filter del dev <name> ingress prio <prio>`.
    fn remove(&self) -> Result<()> {
        let filter = self.clone();
        self.node.netlink_rt().block_on(async move {
            filter.at().del_ingress_filter(filter.index, &filter.name, filter.prio).await
        })
    }
}

/// What healing a [`Fault`] does besides removing its filters.
#[derive(Debug)]
enum Healing {
    /// Nothing: a partition filters by source address, so neighbour resolution went on.
    Partition,
    /// Uncounts the cut of the link and resolves the neighbour entries left waiting across
    /// it, so that the link carries the next packet at once.
    Cut(LinkHandle),
    /// A cut for a time ([`LinkHandle::blackhole`]): heals as a cut does.
    Blackhole(LinkHandle),
    /// One outage of a periodic schedule ([`LinkHandle::outages`]): heals as a cut does.
    Outage(LinkHandle),
}

impl Healing {
    /// The events that record the fault and its healing.
    fn kinds(&self) -> (EventKind, EventKind) {
        match self {
            Healing::Partition => (EventKind::Partition, EventKind::PartitionHealed),
            Healing::Cut(_) => (EventKind::Cut, EventKind::CutHealed),
            Healing::Blackhole(_) => (EventKind::BlackholeStarted, EventKind::BlackholeEnded),
            Healing::Outage(_) => (EventKind::OutageStarted, EventKind::OutageEnded),
        }
    }
}

/// The ingress filters of one fault, removed when it heals: on [`heal`](Self::heal), or on
/// drop (which can only print an error).
#[derive(Debug)]
struct Fault {
    filters: Vec<Filter>,
    healing: Healing,
    healed: bool,
    /// Where the fault and its healing are recorded, under which subject and with what detail.
    timeline: Timeline,
    subject: String,
    detail: String,
    /// Whether its start is on the timeline (then its healing is recorded too).
    recorded: bool,
}

impl Fault {
    /// A fault with no filter yet, to be recorded on `timeline` once in effect.
    fn new(healing: Healing, timeline: Timeline, subject: impl Into<String>, detail: String) -> Self {
        let subject = subject.into();
        Fault { filters: Vec::new(), healing, healed: false, timeline, subject, detail, recorded: false }
    }

    /// Records the fault's start, once every filter is in: the timeline says when the fault
    /// took effect, not when its installation began (which a loaded machine can make tens of
    /// milliseconds earlier).
    fn in_effect(mut self) -> Self {
        let detail = std::mem::take(&mut self.detail);
        self.timeline.record(self.healing.kinds().0, self.subject.as_str(), detail);
        self.recorded = true;
        self
    }

    /// Installs `filter` with `program`, and keeps it for healing.
    fn install(&mut self, filter: Filter, program: &[SockFilter]) -> Result<()> {
        filter.install(program)?;
        self.filters.push(filter);
        Ok(())
    }

    /// Removes every filter, then does what the fault's kind needs; the first error.
    fn heal(&mut self) -> Result<()> {
        self.healed = true;
        // Every filter is removed, whatever errors come; the first is reported.
        let removed = self.filters.iter().map(Filter::remove).fold(Ok(()), Result::and);
        // Recorded once the filters are out: the link carries frames again from here (the
        // neighbour refresh below only spares the next packet a resolution).
        if self.recorded {
            self.timeline.record(self.healing.kinds().1, self.subject.as_str(), "");
        }
        let healed = match &self.healing {
            Healing::Partition => Ok(()),
            Healing::Cut(link) | Healing::Blackhole(link) | Healing::Outage(link) => {
                let refreshed = link.refresh_neighbours();
                link.cuts().fetch_sub(1, Ordering::Release);
                refreshed
            }
        };
        removed.and(healed)
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        if !self.healed {
            if let Err(error) = self.heal() {
                let what = match self.healing {
                    Healing::Partition => "healing a partition",
                    Healing::Cut(_) => "restoring a cut link",
                    Healing::Blackhole(_) => "ending a blackhole",
                    Healing::Outage(_) => "ending an outage",
                };
                eprintln!("netns-test: {what} failed: {error:?}");
            }
        }
    }
}

/// A partition of the network; dropping it heals the network.
#[derive(Debug)]
#[must_use = "the partition heals as soon as this guard is dropped"]
pub struct Partition(Fault);

impl Partition {
    /// Heals the partition now, reporting any error (dropping the guard heals too, but can
    /// only print an error).
    ///
    /// # Errors
    /// A netlink failure removing a filter.
    pub fn heal(mut self) -> Result<()> {
        self.0.heal()
    }
}

/// A cut link; dropping it restores the link.
#[derive(Debug)]
#[must_use = "the link is restored as soon as this guard is dropped"]
pub struct Cut(Fault);

impl Cut {
    /// Restores the link now, reporting any error. When this returns, the link carries
    /// traffic again at once (see [`LinkHandle::cut`]).
    ///
    /// # Errors
    /// A netlink failure removing a filter or refreshing a neighbour entry.
    pub fn heal(mut self) -> Result<()> {
        self.0.heal()
    }
}

/// A flapping link; dropping it stops the flapping with the link up.
#[derive(Debug)]
#[must_use = "the link stops flapping as soon as this guard is dropped"]
pub struct Flap {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Flap {
    /// Stops the flapping now and reports any error the flapping met.
    ///
    /// # Errors
    /// The first netlink failure of the flapping thread.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        let (lock, changed) = &*self.stop;
        *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        changed.notify_all();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for Flap {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            eprintln!("netns-test: the flapping link failed: {error:?}");
        }
    }
}
